"""The data/model contract lives in tumorseg.contract, and every stage uses the same rule."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

import tumorseg
from tumorseg.contract import PATCH_SIZE, THRESHOLD, is_on
from tumorseg.inference import probabilities_to_labels
from tumorseg.metrics import hard_dice_per_class

PACKAGE = Path(tumorseg.__file__).parent


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name != "contract.py":
            yield path, ast.parse(path.read_text())


def test_no_patch_size_or_default_mode_literal_outside_the_contract():
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple) and all(isinstance(e, ast.Constant) for e in node.elts):
                if tuple(e.value for e in node.elts) in {PATCH_SIZE, (4, *PATCH_SIZE)}:
                    found.append(f"{path.name}:{node.lineno}")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                defaults = node.args.defaults + [d for d in node.args.kw_defaults if d]
                found += [
                    f"{path.name}:{d.lineno} default 'brain'"
                    for d in defaults
                    if isinstance(d, ast.Constant) and d.value == "brain"
                ]
            if isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Constant):
                if node.value.value == "brain":  # dataclass field defaults
                    found.append(f"{path.name}:{node.lineno} field 'brain'")
    assert found == []


def test_a_class_is_on_strictly_above_the_threshold_everywhere():
    probs = np.full((1, 3, 2, 2, 2), THRESHOLD, np.float32)
    probs[0, 0, 0, 0, 0] = THRESHOLD + 1e-3
    truth = np.zeros_like(probs)
    truth[0, 0, 0, 0, 0] = 1
    assert is_on(probs).sum() == 1
    # training validation and the label rule agree on a probability exactly at the threshold
    np.testing.assert_array_equal(hard_dice_per_class(probs, truth)[0], [1.0, 1.0, 1.0])
    labels = probabilities_to_labels(probs[0])
    assert labels[0, 0, 0] == 1 and int((labels > 0).sum()) == 1
