"""The manifest's evaluation record: figures per case, and a new run beside them."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tumorseg.inference.cli import print_record_comparison
from tumorseg.inference.record import MEAN_ROW, compare_with_record, evaluation_record


def _table(cases: dict[str, float], error: str | None = None) -> pd.DataFrame:
    rows = []
    for case, d in cases.items():
        row = {"case": case}
        for r in ("WT", "TC", "ET"):
            row[f"{r}_dice"], row[f"{r}_hd95"] = d, 10 * (1 - d)
        rows.append(row)
    table = pd.DataFrame(rows)
    if error is not None:
        table["error"] = [error if i == 0 else None for i in range(len(table))]
    return table


def test_record_keeps_per_case_figures_and_the_previous_model():
    new, old = _table({"A": 0.9, "B": 0.7}), _table({"A": 0.8, "B": 0.5})
    rec = evaluation_record(new, {"threshold": 0.4, "tta": "x"}, "valid/", previous=old)
    assert rec["n"] == 2 and rec["options"]["tta"] == "x" and rec["set"] == "valid/"
    assert rec["per_case"]["A"]["WT_dice"] == 0.9 and rec["per_case"]["B"]["ET_hd95"] == 3.0
    assert rec["mean"]["TC_dice"] == pytest.approx(0.8)
    assert rec["mean"]["WT_hd95_median"] == pytest.approx(2.0)
    assert rec["previous_model"]["per_case"]["B"]["ET_dice"] == 0.5
    json.dumps(rec)  # JSON-ready


def test_record_leaves_failed_cases_out():
    rec = evaluation_record(_table({"A": 0.0, "B": 0.6}, error="truncated"), {}, "set")
    assert list(rec["per_case"]) == ["B"] and rec["n"] == 1


def test_comparison_sets_this_run_beside_the_record(tmp_path, capsys):
    rec = evaluation_record(_table({"A": 0.9, "B": 0.7}), {}, "valid/", _table({"A": 0.5}))
    frame = compare_with_record(_table({"A": 0.95, "C": 0.1}), rec)
    assert list(frame.index) == ["A", MEAN_ROW]  # C is not in the record
    assert frame.loc["A", "WT_dice"] == 0.95 and frame.loc["A", "WT_dice_record"] == 0.9
    assert frame.loc["A", "ET_dice_previous"] == 0.5
    assert compare_with_record(_table({"C": 0.1}), rec).empty

    weights = tmp_path / "m.weights.h5"
    weights.write_bytes(b"")
    manifest = {"evaluation": {"patches": {}, "real_valid": rec}}
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    print_record_comparison(_table({"B": 0.6}), str(weights))
    out = capsys.readouterr().out
    assert "evaluation record 'real_valid' (valid/)" in out and "WT_dice_record" in out
    assert "0.7" in out
    (tmp_path / "m.json").write_text(json.dumps({}))
    print_record_comparison(_table({"B": 0.6}), str(weights))
    assert "hold none of these cases" in capsys.readouterr().out
