"""The public tests pass the instructor's solutions and catch typical student mistakes.

The solutions are read from the instructor notebook's UNQ cells (the single source), so these
tests also guard the notebook's exercise code.
"""

from __future__ import annotations

import re
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from tumorseg.course import public_tests as pt
from tumorseg.course.release import INSTRUCTOR

keras = pytest.importorskip("keras")
ops = keras.ops

UNQ_HEADER = "# UNQ_C{n} (UNIQUE CELL IDENTIFIER, DO NOT EDIT)"


def _namespace(sources: list[str]) -> dict:
    ns = {"np": np, "keras": keras, "ops": ops}
    for source in sources:
        exec(compile(source, "<cell>", "exec"), ns)
    return ns


@pytest.fixture(scope="module")
def unq_sources() -> dict[int, str]:
    nb = nbformat.read(INSTRUCTOR, as_version=4)
    found = {}
    for cell in nb.cells:
        match = re.fullmatch(r"unq-c(\d)", cell.get("id", ""))
        if match:
            found[int(match.group(1))] = cell.source
    return found


@pytest.fixture(scope="module")
def solutions(unq_sources) -> dict:
    return _namespace([unq_sources[n] for n in sorted(unq_sources)])


def test_notebook_has_six_unq_cells_with_exact_headers(unq_sources):
    assert sorted(unq_sources) == [1, 2, 3, 4, 5, 6]
    for n, source in unq_sources.items():
        assert source.splitlines()[0] == UNQ_HEADER.format(n=n)
        assert "### START CODE HERE" in source and "### END CODE HERE" in source


@pytest.mark.parametrize(
    "test_name, fn_name",
    [
        ("test_get_sub_volume", "get_sub_volume"),
        ("test_standardize", "standardize"),
        ("test_single_class_dice_coefficient", "single_class_dice_coefficient"),
        ("test_dice_coefficient", "dice_coefficient"),
        ("test_soft_dice_loss", "soft_dice_loss"),
        ("test_compute_class_sens_spec", "compute_class_sens_spec"),
    ],
)
def test_solutions_pass(solutions, capsys, test_name, fn_name):
    getattr(pt, test_name)(solutions[fn_name])
    assert capsys.readouterr().out.strip().splitlines()[-1] == pt.PASSED


def test_notebook_values_from_solutions(solutions):
    """The values the notebook's test cells must print come out of the solutions."""
    s = solutions
    eye = np.eye(2)[:, :, None]
    a = np.array([[1.0, 1.0], [0.0, 0.0]])[:, :, None]
    b = np.array([[1.0, 1.0], [0.0, 1.0]])[:, :, None]
    assert round(float(s["single_class_dice_coefficient"](a, eye, epsilon=1)), 4) == 0.6
    assert round(float(s["single_class_dice_coefficient"](b, eye, epsilon=1)), 4) == 0.8333
    multi = s["dice_coefficient"](np.stack([a, b]), np.stack([eye, eye]), epsilon=1)
    assert round(float(multi), 4) == 0.7167
    sens, spec = s["compute_class_sens_spec"](eye[None], b[None], 0)
    assert (round(float(sens), 4), float(spec)) == (0.6667, 1.0)


def test_global_rng_state_is_restored(solutions, capsys):
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    pt.test_get_sub_volume(solutions["get_sub_volume"])
    assert np.random.rand() == expected


# ---------------------------------------------------------------- typical mistakes


def _variant(source: str, old: str, new: str) -> str:
    assert old in source, f"{old!r} not in the solution; update this test"
    return source.replace(old, new)


def _fails(test, fn, *fragments: str) -> str:
    with pytest.raises(AssertionError) as info:
        test(fn)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_get_sub_volume_wrong_draw_order(unq_sources):
    src = _variant(
        unq_sources[1],
        "start_x = np.random.randint(0, orig_x - output_x + 1)\n"
        "        start_y = np.random.randint(0, orig_y - output_y + 1)",
        "start_y = np.random.randint(0, orig_y - output_y + 1)\n"
        "        start_x = np.random.randint(0, orig_x - output_x + 1)",
    )
    _fails(pt.test_get_sub_volume, _namespace([src])["get_sub_volume"], "order x, y, z")


def test_get_sub_volume_without_copy(unq_sources):
    src = _variant(unq_sources[1], "X = np.copy(image[", "X = (image[")
    _fails(pt.test_get_sub_volume, _namespace([src])["get_sub_volume"], "must be a copy")


def test_get_sub_volume_off_by_one_range(unq_sources):
    src = _variant(unq_sources[1], "orig_x - output_x + 1", "orig_x - output_x")
    _fails(pt.test_get_sub_volume, _namespace([src])["get_sub_volume"])


def test_get_sub_volume_keeps_background_class(unq_sources):
    src = _variant(unq_sources[1], "y = y[1:, :, :, :]", "y = y")
    _fails(pt.test_get_sub_volume, _namespace([src])["get_sub_volume"], "background class dropped")


def test_get_sub_volume_give_up_message_counts_tries(unq_sources):
    src = _variant(unq_sources[1], "tries += 1", "tries += 0\n        max_tries -= 1")
    _fails(pt.test_get_sub_volume, _namespace([src])["get_sub_volume"], "Tried 7 times")


def test_get_sub_volume_non_strict_threshold(unq_sources):
    src = _variant(
        unq_sources[1], "bgrd_ratio < background_threshold", "bgrd_ratio <= background_threshold"
    )
    _fails(pt.test_get_sub_volume, _namespace([src])["get_sub_volume"])


def test_standardize_stale_value_on_constant_slice():
    def standardize(image):  # the classic bug: reuses the previous slice when std == 0
        out = np.zeros(image.shape)
        scaled = np.zeros(image.shape[1:3])
        for c in range(image.shape[0]):
            for z in range(image.shape[3]):
                sl = image[c, :, :, z]
                if sl.std() != 0:
                    scaled = (sl - sl.mean()) / sl.std()
                out[c, :, :, z] = scaled
        return out

    _fails(pt.test_standardize, standardize, "constant", "previous slice")


def test_standardize_divides_by_zero():
    def standardize(image):
        mean = image.mean(axis=(1, 2), keepdims=True)
        return (image - mean) / image.std(axis=(1, 2), keepdims=True)

    with np.errstate(all="ignore"):
        _fails(pt.test_standardize, standardize, "NaN/inf", "std 0")


def test_standardize_whole_channel_statistics():
    def standardize(image):
        out = np.zeros(image.shape)
        for c in range(image.shape[0]):
            ch = image[c]
            out[c] = (ch - ch.mean()) / ch.std()
        return out

    _fails(pt.test_standardize, standardize, "is not standardized")


def test_standardize_zeros_like_truncates_integers(unq_sources):
    src = _variant(unq_sources[2], "np.zeros(image.shape)", "np.zeros_like(image)")
    _fails(pt.test_standardize, _namespace([src])["standardize"], "integer image")


def test_dice_without_epsilon_in_numerator(unq_sources):
    src = _variant(unq_sources[3], "axis=axis) + epsilon\n", "axis=axis)\n")
    _fails(
        pt.test_single_class_dice_coefficient,
        _namespace([src])["single_class_dice_coefficient"],
        "epsilon",
    )


def test_dice_cast_to_float32_is_reported(unq_sources):
    src = _variant(
        unq_sources[3], "return dice_coefficient", "return ops.cast(dice_coefficient, 'float32')"
    )
    _fails(
        pt.test_single_class_dice_coefficient,
        _namespace([src])["single_class_dice_coefficient"],
        "float64",
    )


def test_multi_class_dice_without_mean(unq_sources):
    src = _variant(
        unq_sources[4],
        "ops.mean(dice_numerator / dice_denominator)",
        "dice_numerator / dice_denominator",
    )
    _fails(pt.test_dice_coefficient, _namespace([src])["dice_coefficient"], "single number")


def test_multi_class_dice_ignoring_axis(unq_sources):
    src = _variant(unq_sources[4], "axis=axis", "axis=(1, 2, 3)")
    _fails(pt.test_dice_coefficient, _namespace([src])["dice_coefficient"], "axis=(2, 3, 4)")


def test_soft_dice_without_squares(unq_sources):
    src = _variant(unq_sources[5], "y_true ** 2", "y_true").replace("y_pred ** 2", "y_pred")
    _fails(pt.test_soft_dice_loss, _namespace([src])["soft_dice_loss"], "test case 2")


def test_sens_spec_python_floats_are_reported(unq_sources):
    src = _variant(
        unq_sources[6],
        "return sensitivity, specificity",
        "return float(sensitivity), float(specificity)",
    )
    _fails(
        pt.test_compute_class_sens_spec,
        _namespace([src])["compute_class_sens_spec"],
        "numpy.float64",
    )


def test_sens_spec_ignoring_class_num(unq_sources):
    src = _variant(unq_sources[6], "class_pred = pred[class_num]", "class_pred = pred[0]")
    src = src.replace("class_label = label[class_num]", "class_label = label[0]")
    _fails(
        pt.test_compute_class_sens_spec, _namespace([src])["compute_class_sens_spec"], "class_num=1"
    )


def test_changed_default_is_reported(unq_sources):
    src = _variant(unq_sources[1], "background_threshold=0.95", "background_threshold=0.9")
    _fails(
        pt.test_get_sub_volume,
        _namespace([src])["get_sub_volume"],
        "'background_threshold' should default to 0.95",
    )


def test_exceptions_inside_student_code_become_assertion_errors():
    def standardize(image):
        out = None
        for c in None:  # a placeholder left in place
            out = c
        return out

    message = _fails(pt.test_standardize, standardize, "TypeError", "failing line: for c in None:")
    assert "START CODE HERE" in message


# ---------------------------------------------------------------- inside model.fit


def _numpy_only(source: str) -> str:
    """The solution with keras.ops replaced by numpy: right values on arrays, but it cannot
    run on the symbolic tensors of model.fit."""
    return source.replace("ops.sum", "np.sum").replace("ops.mean", "np.mean")


@pytest.mark.parametrize(
    "n, test_name, fn_name",
    [
        (3, "test_single_class_dice_coefficient", "single_class_dice_coefficient"),
        (4, "test_dice_coefficient", "dice_coefficient"),
        (5, "test_soft_dice_loss", "soft_dice_loss"),
    ],
)
def test_numpy_only_dice_fails_with_the_keras_hint(unq_sources, n, test_name, fn_name):
    src = _numpy_only(unq_sources[n])
    assert "ops." not in src.split("START CODE HERE")[1]
    fn = _namespace([src])[fn_name]
    values = fn(np.ones((2, 2, 2, 2)), np.ones((2, 2, 2, 2)))
    assert np.isfinite(values).all()  # it does work on numpy arrays
    message = _fails(
        getattr(pt, test_name),
        fn,
        "symbolic tensors",
        "model.fit",
        "use keras.ops (imported as ops), not numpy",
    )
    assert "NotImplementedError" in message or "numpy" in message


def test_single_class_dice_ignoring_axis_fails(unq_sources):
    src = _variant(
        unq_sources[3], "ops.sum(y_true * y_pred, axis=axis)", "ops.sum(y_true * y_pred)"
    )
    src = src.replace(
        "ops.sum(y_true, axis=axis) + ops.sum(y_pred, axis=axis)",
        "ops.sum(y_true) + ops.sum(y_pred)",
    )
    _fails(
        pt.test_single_class_dice_coefficient,
        _namespace([src])["single_class_dice_coefficient"],
        "axis=(1, 2, 3)",
        "(2,)",
    )


# ---------------------------------------------------------------- what the student sees


def test_failure_traceback_is_short_and_hides_the_test_internals():
    from IPython.core import ultratb

    def get_sub_volume(
        image,
        label,
        orig_x=240,
        orig_y=240,
        orig_z=155,
        output_x=160,
        output_y=160,
        output_z=16,
        num_classes=4,
        max_tries=1000,
        background_threshold=0.95,
    ):
        return None

    try:
        pt.test_get_sub_volume(get_sub_volume)
    except AssertionError:
        text = ultratb.VerboseTB(theme_name="nocolor").text(*sys.exc_info())
    else:
        pytest.fail("the public test passed a placeholder")
    frames = [line for line in text.splitlines() if line.startswith(("File ", "Cell "))]
    assert len(frames) == 2, text  # this test's call, then one clean frame of public_tests
    for internal in (
        "patch_problem",
        "replay_corners",
        "_close",
        "_fail(",
        "_toy_volume",
        "[[0, 2], [0, 3]]",
        "np.random.seed(3)\n",
    ):
        assert internal not in text.split("AssertionError:")[0], (internal, text)
    assert "returned None for call 1" in text  # the message itself is kept


def test_public_tests_are_not_collected_by_pytest(tmp_path):
    (tmp_path / "test_imports.py").write_text(
        "from tumorseg.course.public_tests import *  # noqa: F403\n"
        "from tumorseg.course.public_tests import test_standardize  # noqa: F401\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--collect-only",
            "-p",
            "no:cacheprovider",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "no tests collected" in done.stdout, done.stdout
    assert all(
        getattr(pt, name).__test__ is False for name in pt.__all__ if name.startswith("test_")
    )
