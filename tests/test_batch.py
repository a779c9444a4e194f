"""Batch work: ``predict DATA --out DIR`` (resume, atomic writes, broken cases, MSD and BraTS
layouts, the batch benchmark's copy of a dataset), the shard rule on predict/evaluate/score/grade,
``tumorseg merge``, and bad input to every command.

Everything runs in this process on tiny synthetic cases (``tests/conftest.py``) with a tiny
U-Net (``batch_weights``), through the command lines themselves (``tumorseg.cli.main``).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import load_file_module, write_tiny_case, write_tiny_dataset

from tumorseg.atomic import atomic_path
from tumorseg.batch import FAILURES_CSV, Shard, terminate_cleanly
from tumorseg.cli import main
from tumorseg.errors import USER_ERROR
from tumorseg.labels import BRATS_LABEL_MAP, BRATS_SEG_SUFFIX, BRATS_SUFFIXES

ROOT = Path(__file__).resolve().parents[1]

#: Broken cases, each with what its error message must say.
BROKEN = {
    "missing": "not found",
    "truncated": "truncated",
    "not_nifti": "not a readable NIfTI",
    "wrong_shape": "dimension",
    "channels": "channel",
    "extension": "not a readable NIfTI",
}


def broken_id(kind: str) -> str:
    """The case id of ``write_broken_case``'s case: its image's name without .nii.gz."""
    return f"BAD_{kind}" + (".png" if kind == "extension" else "")


def write_broken_case(root: Path, kind: str, seed: int = 99) -> tuple[str, str]:
    """Add one broken case of ``kind`` to the MSD folder ``root`` (image broken, label good);
    returns its dataset.json entry's image and label paths (relative)."""
    name = f"BAD_{kind}.nii.gz" if kind != "extension" else f"BAD_{kind}.png"
    image, label = root / "imagesTr" / name, root / "labelsTr" / f"BAD_{kind}.nii.gz"
    write_tiny_case(image.with_name(f"BAD_{kind}.nii.gz"), label, (24, 24, 16), seed)
    affine = np.diag([1.2, 0.9, 2.0, 1.0])
    if kind == "extension":  # a good NIfTI under a name that is not
        image.with_name(f"BAD_{kind}.nii.gz").rename(image)
    elif kind == "missing":
        image.unlink()
    elif kind == "truncated":
        data = image.read_bytes()
        image.write_bytes(data[: len(data) // 2])
    elif kind == "not_nifti":
        image.write_bytes(gzip.compress(b"this is a text file, not an image\n" * 20))
    elif kind == "wrong_shape":
        nib.save(nib.Nifti1Image(np.ones((24, 24, 16), np.float32), affine), image)
    elif kind == "channels":
        nib.save(nib.Nifti1Image(np.ones((24, 24, 16, 3), np.float32), affine), image)
    return f"./imagesTr/{name}", f"./labelsTr/BAD_{kind}.nii.gz"


def broken_dataset(root: Path, good: int = 2, kinds: tuple[str, ...] = tuple(BROKEN)) -> Path:
    """``good`` tiny cases and one broken case per kind, all listed in dataset.json."""
    write_tiny_dataset(root, good)
    meta = json.loads((root / "dataset.json").read_text())
    for kind in kinds:
        image, label = write_broken_case(root, kind)
        meta["training"].append({"image": image, "label": label})
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def brats_dataset(msd: Path, root: Path) -> Path:
    """The cases of the MSD folder ``msd`` as a BraTS-layout folder ``root``: per case
    ``<case>/<case>_{flair,t1,t1ce,t2}.nii.gz`` (one channel each, same affine) and
    ``<case>_seg.nii.gz`` in raw BraTS codes (1 core, 2 edema, 4 enhancing); returns root."""
    from tumorseg.data import open_dataset

    for case in open_dataset(msd):
        img = nib.load(case.image_paths[0])
        image = np.asarray(img.dataobj)
        folder = root / case.id
        folder.mkdir(parents=True)
        for c, suffix in enumerate(BRATS_SUFFIXES):
            nib.save(
                nib.Nifti1Image(image[..., c], img.affine), folder / f"{case.id}_{suffix}.nii.gz"
            )
        label = np.asarray(nib.load(case.label_path).dataobj)
        raw = np.zeros_like(label)
        for code, course in BRATS_LABEL_MAP.items():
            raw[label == course] = code
        seg = folder / f"{case.id}_{BRATS_SEG_SUFFIX}.nii.gz"
        nib.save(nib.Nifti1Image(raw, img.affine), seg)
    return root


def maps(folder: Path) -> dict[str, np.ndarray]:
    """Case id -> label map of every ``<case>.nii.gz`` of a folder."""
    return {
        p.name[: -len(".nii.gz")]: np.asarray(nib.load(p).dataobj)
        for p in sorted(folder.glob("*.nii.gz"))
    }


def hidden_files(folder: Path) -> list[str]:
    """Names starting with '.' in ``folder`` other than the lock files: temporary files."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and "lock" not in p.name]


# --------------------------------------------------------------------------- the shard rule
def test_the_shard_rule_splits_any_list_exactly_and_the_same_everywhere():
    keys = [f"case-{i:02d}" for i in range(11)]
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 11, 13):
        shards = [Shard(i, n).select(list(rng.permutation(keys))) for i in range(n)]
        assert sorted(k for s in shards for k in s) == keys  # each item in exactly one shard
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
        # the documented rule: sorted keys, position i goes to shard i mod N
        assert shards == [[k for j, k in enumerate(keys) if j % n == i] for i in range(n)]
    assert Shard.parse(" 2/5 ") == Shard(2, 5) and str(Shard(2, 5)) == "2/5"
    for bad in ("3/3", "-1/2", "0/0", "a/b", "1", "1/2/3"):
        with pytest.raises(ValueError, match="shard"):
            Shard.parse(bad)


def test_a_bad_shard_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["score", "--pred", "p", "--labels", "l", "--shard", "3/3"])
    assert info.value.code == USER_ERROR
    assert "--shard: shard 3/3 does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------- predict DATA
def test_sharded_predict_writes_what_one_run_writes_and_a_rerun_nothing(
    tiny_data, batch_weights, tmp_path, capsys
):
    weights = ["--weights", str(batch_weights)]
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert main(["predict", str(tiny_data), "--out", str(whole), *weights]) == 0
    assert (
        capsys.readouterr().out.splitlines()[-1]
        == "5 written, 0 already there, 0 failed; label coding msd"
    )
    for i in range(3):
        argv = ["predict", str(tiny_data), "--out", str(sharded), "--shard", f"{i}/3"]
        assert main([*argv, *weights]) == 0
        assert capsys.readouterr().out.splitlines()[-1].startswith(f"{2 if i < 2 else 1} written")
    one, three = maps(whole), maps(sharded)
    assert list(one) == [f"BRATS_{i:03d}" for i in range(1, 6)] and list(three) == list(one)
    for case, labels in one.items():
        assert labels.dtype == np.uint8 and len(np.unique(labels)) > 1, case  # real maps
        np.testing.assert_array_equal(three[case], labels, err_msg=case)
    # ... that differ from case to case, so a map written under the wrong name would show
    assert len({labels.tobytes() for labels in one.values()}) == len(one)
    ref = nib.load(tiny_data / "imagesTr" / "BRATS_002.nii.gz")
    assert one["BRATS_002"].shape == ref.shape[:3]
    np.testing.assert_allclose(nib.load(whole / "BRATS_002.nii.gz").affine, ref.affine)
    assert sorted(p.name for p in sharded.iterdir() if p.suffix == ".json") == [
        f"run-shard-{i}-of-3.json" for i in range(3)
    ]
    assert hidden_files(whole) == [] and hidden_files(sharded) == []
    assert not (whole / FAILURES_CSV).exists()

    # a rerun rewrites nothing
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in whole.glob("*.nii.gz")}
    assert main(["predict", str(tiny_data), "--out", str(whole), *weights]) == 0
    assert (
        capsys.readouterr().out.splitlines()[-1]
        == "0 written, 5 already there, 0 failed; label coding msd"
    )
    after = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in whole.glob("*.nii.gz")}
    assert after == before

    # the run record: arguments, model id, package version, outcome
    record = json.loads((whole / "run.json").read_text())
    assert record["command"] == "tumorseg predict" and record["shard"] == "0/1"
    assert record["arguments"]["source"] == str(tiny_data)
    assert record["arguments"]["threshold"] is None  # not given: the manifest's, as applied
    assert record["model"]["settings"]["threshold"] == 0.5
    assert record["model"]["id"].startswith("tiny.weights.h5@")
    assert (
        record["model"]["sha256"]
        == __import__("hashlib").sha256(batch_weights.read_bytes()).hexdigest()
    )
    assert record["tumorseg"] == __import__("tumorseg").__version__
    assert record["outcome"]["existing"] == 5 and record["finished"] >= record["started"]


def test_predict_on_a_brats_layout_folder_writes_what_the_msd_folder_gives(
    tiny_data, batch_weights, tmp_path, capsys
):
    """``predict DATA --out DIR`` on BraTS case folders (``<case>/<case>_flair.nii.gz`` ...):
    one ``<case>.nii.gz`` per case folder, equal to the map of the same case in MSD layout."""
    weights = ["--weights", str(batch_weights)]
    brats = brats_dataset(tiny_data, tmp_path / "brats")
    for data, out in ((tiny_data, "from_msd"), (brats, "from_brats")):
        assert main(["predict", str(data), "--out", str(tmp_path / out), *weights]) == 0
        assert (
            capsys.readouterr().out.splitlines()[-1]
            == "5 written, 0 already there, 0 failed; label coding msd"
        )
    msd, from_brats = maps(tmp_path / "from_msd"), maps(tmp_path / "from_brats")
    assert list(from_brats) == list(msd) == [f"BRATS_{i:03d}" for i in range(1, 6)]
    for case, labels in msd.items():
        np.testing.assert_array_equal(from_brats[case], labels, err_msg=case)
    np.testing.assert_allclose(
        nib.load(tmp_path / "from_brats" / "BRATS_003.nii.gz").affine,
        nib.load(tiny_data / "imagesTr" / "BRATS_003.nii.gz").affine,
    )


def _bench_batch():
    """``benchmarks/bench_batch.py`` as a module."""
    return load_file_module(ROOT / "benchmarks" / "bench_batch.py", "bench_batch")


def test_the_batch_benchmark_copies_a_brats_folder_that_predict_reads(
    tiny_data, batch_weights, tmp_path, capsys
):
    """The batch benchmark's copy of its --data (its first N cases, cropped or linked) keeps a
    BraTS folder in BraTS layout: once it made MSD images of the FLAIR file alone, every case
    failed (3 dimensions, not 4), the workers wrote no maps and the benchmark crashed."""
    from tumorseg.data import open_dataset

    bench = _bench_batch()
    source = open_dataset(brats_dataset(tiny_data, tmp_path / "brats"))
    box = (slice(6, 18), slice(6, 18), slice(2, 14))  # centre 12 voxels of (24, 24, 16)
    for crop in (None, 12):
        copy = open_dataset(bench.crop_dataset(source.root, tmp_path / f"copy-{crop}", 3, crop))
        assert copy.layout == "brats" and copy.ids == source.ids[:3]
        for cid in copy.ids:
            image, label = copy[cid].load()
            want_image, want_label = source[cid].load()
            if crop:
                want_image, want_label = want_image[box], want_label[box]
            np.testing.assert_array_equal(image, want_image, err_msg=cid)
            np.testing.assert_array_equal(label, want_label, err_msg=cid)
    out = tmp_path / "maps"
    argv = ["predict", str(tmp_path / "copy-12"), "--out", str(out)]
    assert main([*argv, "--weights", str(batch_weights)]) == 0
    assert (
        capsys.readouterr().out.splitlines()[-1].startswith("3 written, 0 already there, 0 failed")
    )
    assert {case: labels.shape for case, labels in maps(out).items()} == {
        cid: (12, 12, 12) for cid in source.ids[:3]
    }


def test_broken_cases_are_named_and_skipped_and_never_clobber_a_map(
    batch_weights, tmp_path, capsys
):
    data = broken_dataset(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    keep = b"a map from an earlier, good run"
    (out / "BAD_truncated.nii.gz").write_bytes(keep)
    argv = ["predict", str(data), "--out", str(out), "--weights", str(batch_weights)]
    assert main([*argv, "--overwrite"]) == 1
    captured = capsys.readouterr()
    assert (
        captured.out.splitlines()[-1].split(";")[0]
        == f"2 written, 0 already there, {len(BROKEN)} failed"
    )
    err = [line for line in captured.err.splitlines() if " failed: " in line]
    assert len(err) == len(BROKEN) and "Traceback" not in captured.err
    failures = pd.read_csv(out / FAILURES_CSV, keep_default_na=False)
    assert failures["case"].tolist() == sorted(map(broken_id, BROKEN))
    for kind, needle in BROKEN.items():
        name = f"BAD_{kind}" + (".png" if kind == "extension" else ".nii.gz")
        line = next(x for x in err if x.startswith(f"tumorseg predict: {broken_id(kind)} "))
        assert str(data / "imagesTr" / name) in line and needle in line, line
        reason = failures.set_index("case").loc[broken_id(kind), "error"]
        assert str(data / "imagesTr" / name) in reason
    written = sorted(p.name for p in out.glob("*.nii.gz"))  # the good ones ...
    assert written == ["BAD_truncated.nii.gz", "BRATS_001.nii.gz", "BRATS_002.nii.gz"]
    assert (out / "BAD_truncated.nii.gz").read_bytes() == keep  # ... and the old map kept
    assert hidden_files(out) == []
    assert json.loads((out / "run.json").read_text())["outcome"]["failed"] == len(BROKEN)

    # the case is repaired: the next run writes it and takes it off the list
    write_tiny_case(data / "imagesTr" / "BAD_channels.nii.gz", None, (24, 24, 16), 5)
    assert main(argv) == 1
    assert capsys.readouterr().out.splitlines()[-1].split(";")[0] == (
        f"1 written, 3 already there, {len(BROKEN) - 2} failed"
    )  # BAD_truncated: its (old) map is there, so it is skipped without --overwrite
    left = pd.read_csv(out / FAILURES_CSV)["case"].tolist()
    assert "BAD_channels" not in left and "BAD_truncated" not in left
    assert len(left) == len(BROKEN) - 2


def test_sigterm_leaves_no_temporary_file(tmp_path):
    """What Slurm and Kubernetes send on a time limit or a cancel: the write under way is
    dropped, the old file kept, and nothing is left beside it."""
    target = tmp_path / "case.nii.gz"
    target.write_bytes(b"old")
    with pytest.raises(SystemExit) as info, terminate_cleanly():
        with atomic_path(target, suffix=".nii.gz") as tmp:
            tmp.write_bytes(b"half a map")
            os.kill(os.getpid(), signal.SIGTERM)
            pytest.fail("SIGTERM did not stop the block")
    assert info.value.code == 143
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.nii.gz"]
    assert target.read_bytes() == b"old"


# --------------------------------------------------------------------------- bad input
def _single(tmp_path: Path, kind: str) -> Path:
    """One broken single-case input of ``kind`` (see ``BROKEN``)."""
    root = tmp_path / "single"
    image, _ = write_broken_case(root, kind)
    return root / image


@pytest.mark.parametrize("kind", list(BROKEN))
def test_bad_input_to_predict_is_one_line_naming_the_file(kind, tmp_path, capsys):
    source = _single(tmp_path, kind)
    out = tmp_path / "seg.nii.gz"
    out.write_bytes(b"previous output")
    with pytest.raises(SystemExit) as info:
        main(["predict", str(source), "--out", str(out), "--weights", "NOT-LOADED"])
    err = capsys.readouterr().err
    assert info.value.code == USER_ERROR
    assert err.count("\n") == 1 and err.startswith("tumorseg predict: error: ")
    assert str(source) in err and "Traceback" not in err
    assert out.read_bytes() == b"previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.nii.gz", "single"]


@pytest.mark.parametrize(
    "source, out, needle",
    [
        ("case", "seg.png", "name --out with .nii.gz or .nii"),
        ("case", "segs", "name --out with .nii.gz or .nii"),
        ("data", "seg.nii.gz", "pass a folder for --out"),
        ("data", "file.txt", "pass a folder for --out"),
    ],
)
def test_predict_checks_out_before_any_work(
    source, out, needle, tiny_data, tmp_path, monkeypatch, capsys
):
    from tumorseg.inference import cli

    def no_work(*args):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(cli, "load_model", no_work)
    path = tiny_data / "imagesTr" / "BRATS_001.nii.gz" if source == "case" else tiny_data
    (tmp_path / "file.txt").write_text("a file")
    with pytest.raises(SystemExit) as info:
        main(["predict", str(path), "--out", str(tmp_path / out)])
    err = capsys.readouterr().err
    assert info.value.code == USER_ERROR and needle in err and str(tmp_path / out) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_bad_predictions_to_score_are_rows_with_the_reason(tiny_data, tmp_path, capsys):
    labels = tiny_data / "labelsTr"
    pred = tmp_path / "pred"
    shutil.copytree(labels, pred)  # perfect predictions ...
    data = (pred / "BRATS_002.nii.gz").read_bytes()
    (pred / "BRATS_002.nii.gz").write_bytes(data[: len(data) // 2])  # ... one truncated
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.uint8), np.eye(4)), pred / "BRATS_004.nii.gz")
    out = tmp_path / "scores.json"
    assert main(["score", "--pred", str(pred), "--labels", str(tiny_data), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "5 case(s): 3 scored, 2 failed" in captured.out
    doc = json.loads(out.read_text())
    assert (doc["scored"], doc["failed"]) == (3, 2)
    rows = {row["case"]: row for row in doc["cases"]}
    assert str(pred / "BRATS_002.nii.gz") in rows["BRATS_002"]["error"]
    assert "shape" in rows["BRATS_004"]["error"] and rows["BRATS_004"]["WT_dice"] is None
    assert rows["BRATS_001"]["error"] == "" and rows["BRATS_001"]["WT_dice"] == 1.0
    assert doc["summary"]["WT"]["dice_mean"] == 1.0  # the failed cases are left out
    for case in ("BRATS_002", "BRATS_004"):
        assert f"tumorseg score: {case} failed: {pred / case}.nii.gz" in captured.err


# --------------------------------------------------------------------------- evaluate + merge
def test_evaluate_shards_merge_to_the_unsharded_table(batch_weights, tmp_path, capsys):
    data = broken_dataset(tmp_path / "data", good=4, kinds=("truncated",))
    weights = ["--weights", str(batch_weights)]
    whole, saved = tmp_path / "whole.csv", tmp_path / "saved"
    base = ["evaluate", "--data", str(data), *weights]
    assert main([*base, "--out", str(whole), "--save", str(saved)]) == 1
    out = capsys.readouterr()
    assert "5 case(s): 4 scored, 1 failed" in out.out
    assert f"tumorseg evaluate: BAD_truncated failed: {data / 'imagesTr'}" in out.err
    parts = [tmp_path / "part0.csv", tmp_path / "part1.json"]
    for i, part in enumerate(parts):
        main([*base, "--out", str(part), "--shard", f"{i}/2"])
    capsys.readouterr()
    merged = tmp_path / "merged.csv"
    assert main(["merge", "--out", str(merged), *map(str, parts)]) == 1  # one case failed
    assert "5 case(s): 4 scored, 1 failed" in capsys.readouterr().out

    one, two = pd.read_csv(whole), pd.read_csv(merged)
    assert two["case"].tolist() == one["case"].tolist() == sorted(one["case"])
    columns = [c for c in one.columns if c.endswith(("_dice", "_hd95"))]
    assert len(columns) == 6
    pd.testing.assert_frame_equal(two[columns], one[columns])  # the failed row too: NaN
    assert one.loc[one["case"] == "BAD_truncated", "error"].str.contains("truncated").all()
    assert one["error"].isna().sum() == 4  # empty for the scored cases
    assert one.loc[one["error"].isna(), "WT_dice"].notna().all()

    # the summary leaves the failed case out, and the merged JSON carries the same one
    from tumorseg.inference.score import read_table, summary

    expected = summary(read_table(whole))
    assert np.isclose(expected.loc["WT", "dice_mean"], one["WT_dice"].mean())  # NaN skipped
    assert main(["merge", "--out", str(tmp_path / "merged.json"), *map(str, parts)]) == 1
    doc = json.loads((tmp_path / "merged.json").read_text())
    assert (doc["scored"], doc["failed"]) == (4, 1)
    for region in ("WT", "TC", "ET"):
        for stat in ("dice_mean", "hd95_median"):
            value = expected.loc[region, stat]  # CSV parts hold 6 significant digits
            assert doc["summary"][region][stat] == pytest.approx(value, rel=1e-5)

    # --save kept the scored maps: score rescores them to the same Dice without predicting
    assert sorted(maps(saved)) == [f"BRATS_{i:03d}" for i in range(1, 5)]
    assert json.loads((saved / "run.json").read_text())["outcome"]["failed"] == ["BAD_truncated"]
    rescored = tmp_path / "rescored.csv"
    assert main(["score", "--pred", str(saved), "--labels", str(data), "--out", str(rescored)]) == 0
    again = pd.read_csv(rescored)
    scored = one[one["error"].isna()].reset_index(drop=True)
    pd.testing.assert_frame_equal(again[columns], scored[columns])


def test_score_shards_merge_to_the_unsharded_table(tiny_data, tmp_path, capsys):
    pred = tmp_path / "pred"
    shutil.copytree(tiny_data / "labelsTr", pred)
    labels = np.asarray(nib.load(pred / "BRATS_003.nii.gz").dataobj).copy()
    labels[labels == 3] = 1
    nib.save(
        nib.Nifti1Image(labels, nib.load(pred / "BRATS_003.nii.gz").affine),
        pred / "BRATS_003.nii.gz",
    )
    base = ["score", "--pred", str(pred), "--labels", str(tiny_data)]
    assert main([*base, "--out", str(tmp_path / "whole.json")]) == 0
    parts = [tmp_path / f"part{i}.json" for i in range(3)]  # JSON: full precision
    for i, part in enumerate(parts):
        assert main([*base, "--out", str(part), "--shard", f"{i}/3"]) == 0
    assert [len(json.loads(p.read_text())["cases"]) for p in parts] == [2, 2, 1]
    assert main(["merge", "--out", str(tmp_path / "merged.json"), *map(str, parts)]) == 0
    capsys.readouterr()
    one = json.loads((tmp_path / "whole.json").read_text())
    two = json.loads((tmp_path / "merged.json").read_text())
    assert [r["case"] for r in two["cases"]] == [r["case"] for r in one["cases"]]
    assert two == one  # every row, in order, and the summary
    assert one["cases"][2]["ET_dice"] == 0.0  # the altered case is really scored


def test_merge_refuses_overlapping_or_mixed_parts(tiny_data, tmp_path, capsys):
    pred = tmp_path / "pred"
    shutil.copytree(tiny_data / "labelsTr", pred)
    part = tmp_path / "part.csv"
    assert main(["score", "--pred", str(pred), "--labels", str(tiny_data), "--out", str(part)]) == 0
    capsys.readouterr()
    (tmp_path / "grades").mkdir()
    (tmp_path / "grades" / "results.csv").write_text("submission,total\n")
    previous = tmp_path / "merged.csv"
    previous.write_text("previous output")
    for parts, needle in (
        ([part, part], "is also in"),
        ([part, tmp_path / "grades"], "a grades part"),
        ([part, tmp_path / "nothing.csv"], "not found"),
        ([tmp_path / "pred"], "without results.csv"),
    ):
        with pytest.raises(SystemExit) as info:
            main(["merge", "--out", str(previous), *map(str, parts)])
        err = capsys.readouterr().err
        assert info.value.code == USER_ERROR and needle in err, err
        assert err.startswith("tumorseg merge: error: ") and err.count("\n") == 1
    assert previous.read_text() == "previous output"
    foreign = tmp_path / "foreign"  # a grades --out that holds someone else's results.csv
    foreign.mkdir()
    (foreign / "results.csv").write_text("name,grade\nalice,A\n")
    with pytest.raises(SystemExit) as info:
        main(["merge", "--out", str(foreign), str(tmp_path / "grades")])
    assert info.value.code == USER_ERROR and "no 'submission' column" in capsys.readouterr().err
    assert (foreign / "results.csv").read_text() == "name,grade\nalice,A\n"


# --------------------------------------------------------------------------- grade + merge
def test_grade_shards_merge_to_the_unsharded_folder(tmp_path, fake_grading, capsys):
    """Grading is faked (as in test_grader): the shard and merge machinery is what is tested."""
    subs = tmp_path / "subs"
    (subs / "x").mkdir(parents=True)
    for i, name in enumerate(["carol", "alice", "bob", "dave"]):
        (subs / f"{name}.ipynb").write_text(str(i + 1))
    (subs / "x" / "alice.ipynb").write_text("6")  # a second alice: named alice-2 everywhere
    args = [str(subs), str(subs / "x"), "--no-sandbox", "--quiet"]
    assert main(["grade", *args, "--out", str(tmp_path / "whole")]) == 0
    for i in range(2):
        assert main(["grade", *args, "--out", str(tmp_path / f"g{i}"), "--shard", f"{i}/2"]) == 0
    parts = [tmp_path / "g0", tmp_path / "g1"]
    assert main(["merge", "--out", str(tmp_path / "merged"), *map(str, parts)]) == 0
    capsys.readouterr()
    rows = [len(pd.read_csv(p / "results.csv")) for p in parts]
    assert rows == [3, 2]
    whole = (tmp_path / "whole" / "results.csv").read_text()
    assert (tmp_path / "merged" / "results.csv").read_text() == whole
    assert "alice-2.ipynb" in whole
    reports = sorted(p.name for p in (tmp_path / "whole").glob("*.json"))
    assert sorted(p.name for p in (tmp_path / "merged").glob("*.json")) == reports
    for name in reports:
        a = json.loads((tmp_path / "whole" / name).read_text())
        b = json.loads((tmp_path / "merged" / name).read_text())
        assert a == b, name
