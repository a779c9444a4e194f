"""Ensembles: the shipped manifest's ``members`` loaded as one model, mirror passes spread."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tumorseg.inference.postprocess import Mirror, Postprocess, mirrored
from tumorseg.model.ensemble import Ensemble


def _recorder(calls: list, tag: str, scale: float):
    def predict(batch: np.ndarray) -> np.ndarray:
        calls.append((tag, batch.copy()))
        return scale * batch[:, :3]

    return predict


def test_mirrored_spreads_the_passes_over_the_members():
    rng = np.random.default_rng(0)
    batch = rng.random((1, 4, 6, 5, 4)).astype(np.float32)
    calls: list = []
    run = mirrored([_recorder(calls, "a", 1.0), _recorder(calls, "b", 3.0)], Mirror.X)
    out = run(batch)
    # two passes, not four: member a as is, member b mirrored along x
    assert [c[0] for c in calls] == ["a", "b"]
    np.testing.assert_array_equal(calls[0][1], batch)
    np.testing.assert_array_equal(calls[1][1], np.flip(batch, 2))
    # both outputs are put back in place before the mean
    np.testing.assert_allclose(out, 2.0 * batch[:, :3], rtol=1e-6)


def test_more_members_than_mirrors_gives_each_member_a_pass():
    batch = np.ones((1, 4, 4, 4, 4), np.float32)
    calls: list = []
    members = [_recorder(calls, t, 1.0) for t in "abc"]
    mirrored(members, Mirror.NONE)(batch)
    assert [c[0] for c in calls] == ["a", "b", "c"]
    calls.clear()
    mirrored(members[:1], Mirror.X)(batch)  # one model: the usual two passes
    assert [c[0] for c in calls] == ["a", "a"]


def test_predict_volume_runs_an_ensemble_in_the_passes_of_one_model():
    from tumorseg.inference.predict import predict_volume

    rng = np.random.default_rng(1)
    image = np.zeros((24, 24, 16, 4), np.float32)
    image[4:20, 4:20, 2:14] = rng.uniform(1, 2, (16, 16, 12, 4))
    calls: list = []

    def member(scale):
        def f(batch):
            calls.append(scale)
            return np.clip(scale * np.abs(batch[:, :3]) / 4, 0, 1)

        return f

    ens = Ensemble([member(1.0), member(2.0)], {"tta": "x", "standardize": "none"})
    probs = predict_volume(image, ens, postprocess=Postprocess.NONE)
    assert calls == [1.0, 2.0]  # one tile, two passes
    single = predict_volume(
        image, member(1.0), tta="x", standardize="none", postprocess=Postprocess.NONE
    )
    assert probs.shape == single.shape == (3, 24, 24, 16)
    assert not np.allclose(probs, single)


@pytest.mark.slow
def test_load_pretrained_reads_members_once_and_averages_them(tmp_path):
    from tumorseg.model import load_pretrained, unet_model_3d
    from tumorseg.model.pretrained import model_record

    config = {"n_base_filters": 2, "input_shape": [4, 16, 16, 16]}
    for i, name in enumerate(("a", "b")):
        m = unet_model_3d("mse", **config)
        m.set_weights([w + 0.01 * (i + 1) for w in m.get_weights()])
        m.save_weights(tmp_path / f"{name}.weights.h5")
        (tmp_path / f"{name}.json").write_text(json.dumps({"config": config, "seed": i}))
    top = {"config": config, "threshold": 0.4, "members": ["a.weights.h5", "b.weights.h5"]}
    (tmp_path / "a.json").write_text(json.dumps(top))
    ens, manifest = load_pretrained(tmp_path / "a.weights.h5", precision="float32")
    assert isinstance(ens, Ensemble) and len(ens.members) == 2
    assert ens.threshold == 0.4 and ens.manifest["members"] == top["members"]
    x = np.random.default_rng(2).random((1, 4, 16, 16, 16)).astype(np.float32)
    a, b = (np.asarray(m.predict_on_batch(x)) for m in ens.members)
    assert not np.allclose(a, b)
    np.testing.assert_allclose(ens.predict_on_batch(x), (a + b) / 2, rtol=1e-6)
    one, _ = load_pretrained(tmp_path / "a.weights.h5", ensemble=False, precision="float32")
    np.testing.assert_allclose(one.predict_on_batch(x), a, rtol=1e-6)
    record = model_record(tmp_path / "a.weights.h5")
    assert [r.split("@")[0] for r in record["members"]] == ["a.weights.h5", "b.weights.h5"]
    with pytest.raises(FileNotFoundError, match="c.weights.h5"):
        top["members"].append("c.weights.h5")
        (tmp_path / "a.json").write_text(json.dumps(top))
        load_pretrained(tmp_path / "a.weights.h5")


@pytest.mark.slow
def test_ship_model_add_member_ships_an_ensemble_beside_the_weights(
    tmp_path, batch_weights, repo_root
):
    import shutil

    from conftest import load_file_module

    from tumorseg.model import load_pretrained

    dest = tmp_path / "model_pretrained.weights.h5"
    shutil.copyfile(batch_weights, dest)
    shutil.copyfile(batch_weights.with_name("tiny.json"), tmp_path / "model_pretrained.json")
    (tmp_path / "reproduce.txt").write_text("tumorseg train ...\n")
    ship = load_file_module(repo_root / "scripts" / "ship_model.py", "ship_model_add")
    argv = [str(dest), "--dest", str(dest), "--add-member", str(batch_weights)]
    argv += ["--reproduce", str(tmp_path / "reproduce.txt"), "--selection", "s", "--machine", "m"]
    before = dest.read_bytes()
    assert ship.main(argv) == 0
    assert dest.read_bytes() == before  # the first member stays as it was
    manifest = json.loads((tmp_path / "model_pretrained.json").read_text())
    assert manifest["members"] == ["model_pretrained.weights.h5", "model_member1.weights.h5"]
    assert (tmp_path / "model_member1.json").is_file()
    model, _ = load_pretrained(dest, input_shape=(4, None, None, None), precision="float32")
    assert isinstance(model, Ensemble) and len(model.members) == 2
    with pytest.raises(SystemExit):  # adding members to another file than the shipped one
        ship.main([str(batch_weights), *argv[1:]])


def test_auto_inference_precision_is_bf16_only_with_native_bf16_and_onednn():
    from tumorseg.model.pretrained import InferencePrecision, choose_inference_precision

    bf16, f32 = InferencePrecision.BF16, InferencePrecision.FLOAT32
    assert choose_inference_precision(["avx2", "avx512f", "avx512_bf16"], True) is bf16
    assert choose_inference_precision(["amx_bf16"], True) is bf16
    # the Eigen path emulates bfloat16: 577 s against 56 s for float32 on one real scan
    assert choose_inference_precision(["avx512_bf16"], False) is f32
    assert choose_inference_precision(["avx2", "avx512f"], True) is f32
    assert InferencePrecision("float32").resolve() is f32
    assert InferencePrecision.BF16.resolve() is bf16


def test_a_manifest_setting_per_precision_is_picked_for_the_precision_loaded(tmp_path):
    from tumorseg.inference.settings import InferenceSettings, resolve_settings
    from tumorseg.model.pretrained import InferencePrecision, for_precision, load_pretrained

    per = {"tta": "x", "tumour_tta": {"bf16": "xz", "float32": "none"}}
    assert for_precision(per, InferencePrecision.BF16)["tumour_tta"] == "xz"
    assert for_precision(per, InferencePrecision.FLOAT32)["tumour_tta"] == "none"
    assert for_precision({"tumour_tta": {"bf16": "xz"}}, InferencePrecision.FLOAT32) == {}
    assert for_precision({"tumour_tta": "xyz"}, InferencePrecision.FLOAT32)["tumour_tta"] == "xyz"
    assert per["tumour_tta"] == {"bf16": "xz", "float32": "none"}  # a copy
    # read raw (not through load_pretrained), the float32 entry: the fewer passes
    assert InferenceSettings.from_manifest(per).tumour_tta is Mirror.NONE
    # load_pretrained attaches the resolved manifest, so every code path reads one value
    import shutil

    from tumorseg.resources import manifest_path, pretrained_weights

    shipped = pretrained_weights()
    weights = tmp_path / "m.weights.h5"
    shutil.copy(shipped, weights)
    manifest = json.loads(manifest_path(shipped).read_text())
    manifest.pop("members", None)
    manifest["tumour_tta"] = {"bf16": "xyz", "float32": "none"}
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    for precision, expected in (("bf16", Mirror.XYZ), ("float32", Mirror.NONE)):
        model, resolved = load_pretrained(weights, precision=precision)
        assert resolve_settings(model).tumour_tta is expected
        assert resolved["tumour_tta"] == expected.value
    # the shipped ensemble's first member alone (the notebook's model) runs without them
    shipped_manifest = json.loads(manifest_path(shipped).read_text())
    if shipped_manifest.get("members") and shipped_manifest.get("tumour_tta"):
        one, _ = load_pretrained(ensemble=False, precision="bf16")
        assert resolve_settings(one).tumour_tta is Mirror.NONE


def test_mirror_flips_begin_with_the_left_right_passes():
    assert Mirror.XZ.flips == [(), (0,), (2,), (0, 2)]
    assert Mirror.XY.flips == [(), (0,), (1,), (0, 1)]
    assert Mirror.XYZ.flips[:2] == Mirror.X.flips == [(), (0,)]
    assert len(set(Mirror.XYZ.flips)) == 8


def test_extra_passes_are_those_the_first_mirroring_has_not_made():
    from tumorseg.inference.postprocess import extra_passes, pass_plan

    assert pass_plan(2, Mirror.X) == [(0, ()), (1, (0,))]
    # two members: x made (a, as is) and (b, left-right); xz adds (a, z) and (b, x+z)
    assert extra_passes(2, Mirror.XZ, Mirror.X) == [(0, (2,)), (1, (0, 2))]
    assert len(extra_passes(2, Mirror.XYZ, Mirror.X)) == 6
    assert extra_passes(2, Mirror.NONE, Mirror.X) == []
    assert extra_passes(1, Mirror.X, Mirror.X) == []
    # mirrored runs exactly the listed passes
    batch = np.random.default_rng(2).random((1, 4, 6, 5, 4)).astype(np.float32)
    calls: list = []
    run = mirrored(
        [_recorder(calls, "a", 1.0), _recorder(calls, "b", 3.0)],
        Mirror.XZ,
        passes=extra_passes(2, Mirror.XZ, Mirror.X),
    )
    out = run(batch)
    assert [c[0] for c in calls] == ["a", "b"]
    np.testing.assert_array_equal(calls[0][1], np.flip(batch, 4))
    np.testing.assert_array_equal(calls[1][1], np.flip(batch, (2, 4)))
    np.testing.assert_allclose(out, 2.0 * batch[:, :3], rtol=1e-6)


def _lopsided_scan():
    """A 48x48x32 'brain' of ones with a bright 'tumour' block, and a member whose output
    leans towards +Z (so that passes mirrored along z differ) and sees the block in channel 0."""
    image = np.zeros((48, 48, 32, 4), np.float32)
    image[4:44, 4:44, 2:30] = 1.0
    image[20:28, 20:28, 12:20, 0] = 5.0

    def member(batch: np.ndarray) -> np.ndarray:
        ramp = np.linspace(0.0, 0.08, batch.shape[4], dtype=np.float32)[None, None, None, :]
        p = (batch[:, :1] > 2.0).astype(np.float32) * 0.6 + ramp
        return np.repeat(p, 3, axis=1)

    return image, member


def test_tumour_tta_adds_passes_only_around_the_tumour():
    from tumorseg.inference.predict import TUMOUR_BLEND, predict_volume

    image, member = _lopsided_scan()
    options = dict(standardize="none", postprocess=Postprocess.NONE, tile=(48, 48, 16))
    ens = Ensemble([member, member], {"tta": "x"})
    base = predict_volume(image, ens, **options)
    both = predict_volume(image, ens, tumour_tta="xz", **options)
    full = predict_volume(image, ens, tta="xz", **options)
    changed = np.argwhere(np.abs(both - base).max(axis=0) > 1e-6)
    assert changed.size  # the z-mirrored passes moved something ...
    # ... and only near the tumour block (x 20:28, z 12:20), within the blend margin + a tile
    # multiple of 8 around it
    lo, hi = changed.min(axis=0), changed.max(axis=0)
    assert lo[0] >= 20 - TUMOUR_BLEND - 8 and hi[0] < 28 + TUMOUR_BLEND + 8
    # at the tumour itself the result is the four-pass mean that tta="xz" gives everywhere
    np.testing.assert_allclose(
        both[:, 22:26, 22:26, 14:18], full[:, 22:26, 22:26, 14:18], atol=0.03
    )
    # far from it, the first passes' mean is kept exactly
    np.testing.assert_array_equal(both[:, 4:8, 4:8], base[:, 4:8, 4:8])
    # no tumour, no extra passes
    quiet = image.copy()
    quiet[..., 0] = np.minimum(quiet[..., 0], 1.0)
    ramp_only = Ensemble(
        [lambda b: np.zeros_like(b[:, :3]), lambda b: np.zeros_like(b[:, :3])], {"tta": "x"}
    )
    np.testing.assert_array_equal(
        predict_volume(quiet, ramp_only, tumour_tta="xyz", **options),
        predict_volume(quiet, ramp_only, **options),
    )
