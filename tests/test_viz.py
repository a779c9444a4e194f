"""Visualisations: overlay colours, grid, GIF, patch view, slice viewer, overview figure."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import imageio.v3 as iio  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tumorseg.viz import (  # noqa: E402
    get_labeled_image,
    gif_frames,
    plot_image_grid,
    slice_viewer,
    visualize_data_gif,
    visualize_patch,
)
from tumorseg.viz.viewer import viewer_frame  # noqa: E402

SHAPE = (24, 20, 12)


def _volume(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small 'head': a bright ellipsoid on a zero background, FLAIR in 100..900, a tumor."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    brain = x**2 + y**2 + z**2 < 0.8
    image = np.zeros(SHAPE + (4,))
    image[brain] = rng.uniform(100, 900, size=(brain.sum(), 4))
    label = np.zeros(SHAPE)
    label[8:14, 8:12, 4:8] = 1
    label[10:12, 9:11, 5:7] = 2
    label[11, 10, 6] = 3
    return image, label


# ---------------------------------------------------------------- get_labeled_image


def test_labeled_image_colours_and_grey():
    image, label = _volume()
    before = image.copy()
    out = get_labeled_image(image, label)
    assert out.shape == SHAPE + (3,) and out.dtype == np.uint8
    np.testing.assert_array_equal(image, before)  # input untouched (the original scaled in place)
    flair = image[..., 0]
    grey = np.rint((flair - flair.min()) / (flair.max() - flair.min()) * 255)
    bg = label == 0
    for c in range(3):
        np.testing.assert_array_equal(out[..., c][bg], grey[bg])
    assert out[9, 8, 4].tolist() == [255, 0, 0]  # edema only
    assert out[10, 9, 5].tolist() == [0, 255, 0]  # non-enhancing
    assert out[11, 10, 6].tolist() == [0, 0, 255]  # enhancing
    assert (out[label == 1] == [255, 0, 0]).all()


def test_labeled_image_no_wraparound_at_max_flair():
    image, label = _volume()
    image[9, 8, 4, 0] = image[..., 0].max() + 500  # the brightest voxel lies under edema
    out = get_labeled_image(image, label)
    assert out[9, 8, 4].tolist() == [255, 0, 0]
    # soft one-hot: grey 255 * 0.6 + red 255 * 0.9 exceeds 255 and must clip, not wrap
    onehot = np.zeros(SHAPE + (4,))
    onehot[..., 0] = 1.0
    onehot[9, 8, 4] = [0.6, 0.9, 0.0, 0.0]
    out = get_labeled_image(image, onehot, is_categorical=True)
    assert out[9, 8, 4].tolist() == [255, 153, 153]
    assert out[0, 0, 0].tolist() == [0, 0, 0]  # background outside the head is black


def test_labeled_image_categorical_matches_codes():
    image, label = _volume()
    onehot = np.eye(4)[label.astype(int)]
    np.testing.assert_array_equal(
        get_labeled_image(image, onehot, is_categorical=True), get_labeled_image(image, label)
    )
    with pytest.raises(ValueError):
        get_labeled_image(image, label[..., :5])


# ---------------------------------------------------------------- plot_image_grid


def _shown(fig) -> list[np.ndarray]:
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes]


def test_image_grid_layout_and_seed():
    image, label = _volume()
    labeled = get_labeled_image(image, label)
    fig = plot_image_grid(labeled, seed=3)
    assert len(fig.axes) == 18
    assert tuple(fig.get_size_inches()) == (16, 9)
    assert all(len(ax.get_xticks()) == 0 and len(ax.get_yticks()) == 0 for ax in fig.axes)
    assert fig.subplotpars.wspace == 0 and fig.subplotpars.hspace == 0
    shapes = [a.shape for a in _shown(fig)]
    # rows: coronal (X, Z) -> (Z, X), transversal (X, Y) -> (Y, X), sagittal (Y, Z) -> (Z, Y)
    assert shapes[:6] == [(12, 24, 3)] * 6
    assert shapes[6:12] == [(20, 24, 3)] * 6
    assert shapes[12:] == [(12, 20, 3)] * 6
    assert all(a.any() for a in _shown(fig))  # every slice cuts the head
    again = _shown(plot_image_grid(labeled, seed=3))
    for a, b in zip(_shown(fig), again):
        np.testing.assert_array_equal(a, b)
    others = [_shown(plot_image_grid(labeled, seed=s)) for s in range(4, 8)]
    assert any(not np.array_equal(o[0], _shown(fig)[0]) for o in others)


# ---------------------------------------------------------------- GIF


def test_gif_frames_layout():
    image, label = _volume()
    labeled = get_labeled_image(image, label)
    frames = gif_frames(labeled)
    nx, ny, nz = SHAPE
    assert frames.shape == (24, 24 + 3, nz + nz + ny, 3)
    bar = (frames[:, -1, :, 0] == 128).sum(axis=1)  # progress bar length grows every frame
    assert bar[-1] == nz + nz + ny and (np.diff(bar) > 0).all()
    np.testing.assert_array_equal(frames[5, :ny, :nz], labeled[5])
    np.testing.assert_array_equal(frames[5, :nx, nz : 2 * nz], labeled[:, 5])
    np.testing.assert_array_equal(frames[23, :nx, 2 * nz :], labeled[:, :, nz - 1])
    np.testing.assert_array_equal(frames[23, :nx, nz : 2 * nz], labeled[:, ny - 1])


def test_gif_written_with_frames_and_durations(tmp_path):
    image, label = _volume()
    labeled = get_labeled_image(image, label)
    path = tmp_path / "sub" / "sweep.gif"
    shown = visualize_data_gif(labeled, path=path, duration_ms=70)
    assert Path(shown.filename) == path and path.is_file()
    back = iio.imread(path, index=None)
    assert back.shape[:3] == (24, 27, 44)
    with iio.imopen(path, "r", plugin="pillow") as f:
        durations = [f.metadata(index=i)["duration"] for i in range(back.shape[0])]
    assert durations == [70] * 24
    # frame 9: labeled[9] is in the first panel; its edema voxel (y=8, z=4) stays red
    assert back[9, 8, 4, :3].tolist() == pytest.approx([255, 0, 0], abs=12)
    assert not list(tmp_path.joinpath("sub").glob(".*"))  # no temp file left behind


def test_gif_default_path_is_a_fresh_temp_file():
    image, label = _volume()
    labeled = get_labeled_image(image, label)[:6, :6, :4]
    a = Path(visualize_data_gif(labeled).filename)
    b = Path(visualize_data_gif(labeled).filename)
    try:
        assert a != b and a.parent == Path(tempfile.gettempdir()) and a.suffix == ".gif"
        assert iio.imread(a, index=None).shape[0] == 6
    finally:
        a.unlink(missing_ok=True)
        b.unlink(missing_ok=True)


# ---------------------------------------------------------------- patch and viewer


def test_visualize_patch_shows_slice_z():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(16, 16, 4))
    y = (X > 0).astype(float)
    fig = visualize_patch(X, y, z=2)
    assert len(fig.axes) == 2
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), X[:, :, 2])
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), y[:, :, 2])
    assert fig.axes[0].images[0].get_cmap().name == "Greys_r"


def test_slice_viewer_controls_and_frames():
    import ipywidgets as widgets

    image, label = _volume()
    w = slice_viewer(image, label)
    assert isinstance(w, widgets.interactive)
    slider, axis, overlay = w.children[:3]
    assert isinstance(slider, widgets.IntSlider)
    assert isinstance(axis, widgets.Dropdown) and set(axis.options) == {
        "axial",
        "coronal",
        "sagittal",
    }
    assert isinstance(overlay, widgets.Checkbox) and overlay.value is True
    assert slider.max == SHAPE[2] - 1 and 4 <= slider.value <= 7  # starts on a tumor slice
    axis.value = "sagittal"
    assert slider.max == SHAPE[0] - 1 and 8 <= slider.value <= 13
    overlay.value = False  # re-renders without raising (Agg backend)

    labeled = get_labeled_image(image, label)
    grey = labeled[..., 0].copy()
    grey[label > 0] = 0
    on = viewer_frame(labeled, grey, "axial", 4, True)
    off = viewer_frame(labeled, grey, "axial", 4, False)
    assert on.shape == off.shape == (SHAPE[1], SHAPE[0], 3)
    assert (on == [255, 0, 0]).all(axis=-1).sum() == (label[:, :, 4] == 1).sum()
    assert not (off == [255, 0, 0]).all(axis=-1).any()
    assert (off[..., 0] == off[..., 1]).all()


# ---------------------------------------------------------------- overview


def _dataset(root: Path, n: int = 2) -> Path:
    training = []
    for i in range(1, n + 1):
        image, label = _volume(i)
        for sub, arr in (
            ("imagesTr", image.astype(np.float32)),
            ("labelsTr", label.astype(np.uint8)),
        ):
            (root / sub).mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(arr, np.eye(4)), str(root / sub / f"BRATS_{i:03d}.nii.gz"))
        training.append(
            {
                "image": f"./imagesTr/BRATS_{i:03d}.nii.gz",
                "label": f"./labelsTr/BRATS_{i:03d}.nii.gz",
            }
        )
    (root / "dataset.json").write_text(json.dumps({"training": training}))
    return root


def test_overview_png(tmp_path):
    from tumorseg.viz.overview import main, tumor_slice

    _, label = _volume()
    assert tumor_slice(label) in (4, 5, 6, 7)
    assert tumor_slice(np.zeros(SHAPE)) == SHAPE[2] // 2
    root = _dataset(tmp_path / "ds", n=2)
    out = tmp_path / "fig" / "overview.png"
    assert main(["--data", str(root), "--out", str(out), "--cases", "3"]) == 0
    png = iio.imread(out)
    assert png.ndim == 3 and png.shape[1] == 1500 and png.shape[0] > 500
    assert [p.name for p in out.parent.iterdir()] == ["overview.png"]
    assert main(["--data", str(tmp_path / "nothing"), "--out", str(out)]) == 1
