"""Visualisations: overlay colours, grid, GIF, patch view, slice viewer, overview figure."""

from __future__ import annotations

import base64
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
from tumorseg.viz.labeled import scale_to_uint8  # noqa: E402
from tumorseg.viz.plots import plot_prediction_views, take_slice  # noqa: E402
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


def test_labeled_image_in_chunks_equals_one_piece(monkeypatch):
    """Colouring a few z-slices at a time gives the same picture as the whole volume at once
    (the grey scale spans the volume, not the chunk), for codes and for a soft one-hot."""
    from tumorseg.viz import labeled

    rng = np.random.default_rng(3)
    image = rng.uniform(0, 1000, size=(9, 7, 11, 4))
    image[..., 5:, 0] += 4000  # the brightest FLAIR lies outside the first chunks
    codes = rng.integers(0, 4, size=image.shape[:3]).astype(float)
    soft = rng.dirichlet(np.ones(4), size=image.shape[:3])

    def one_piece(onehot):
        grey = scale_to_uint8(image[..., 0]) * onehot[..., 0].astype(np.float32)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        for k, colour in labeled.CLASS_COLORS.items():
            rgb += onehot[..., k, None].astype(np.float32) * np.asarray(colour, np.float32)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)

    monkeypatch.setattr(labeled, "CHUNK_SLICES", 3)  # 11 slices: chunks of 3, 3, 3 and 2
    np.testing.assert_array_equal(
        get_labeled_image(image, codes), one_piece(np.eye(4)[codes.astype(int)])
    )
    np.testing.assert_array_equal(
        get_labeled_image(image, soft, is_categorical=True), one_piece(soft)
    )


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
    # rows: coronal (X, Z) -> (Z, X), axial (X, Y) -> (Y, X), sagittal (Y, Z) -> (Z, Y)
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


def test_gif_frames_layout_matches_the_grid_orientation():
    image, label = _volume()
    labeled = get_labeled_image(image, label)
    frames = gif_frames(labeled)
    nx, ny, nz = SHAPE
    # panels: coronal (Z, X), axial (Y, X), sagittal (Z, Y), as in plot_image_grid
    assert frames.shape == (24, ny + 3, nx + nx + ny, 3)
    bar = (frames[:, -1, :, 0] == 128).sum(axis=1)  # progress bar length grows every frame
    assert bar[-1] == nx + nx + ny and (np.diff(bar) > 0).all()
    top = (ny - nz) // 2  # the shorter panels are centred vertically
    np.testing.assert_array_equal(frames[5, top : top + nz, :nx], take_slice(labeled, 1, 5))
    np.testing.assert_array_equal(frames[5, :ny, nx : 2 * nx], take_slice(labeled, 2, 5))
    np.testing.assert_array_equal(frames[5, top : top + nz, 2 * nx :], take_slice(labeled, 0, 5))
    # indices past an axis stay on its last slice
    np.testing.assert_array_equal(frames[23, :ny, nx : 2 * nx], take_slice(labeled, 2, nz - 1))
    np.testing.assert_array_equal(frames[23, top : top + nz, :nx], take_slice(labeled, 1, ny - 1))
    # the same picture as the grid shows for that slice (superior/anterior up)
    grid = plot_image_grid(labeled, seed=3)
    shown = np.asarray(grid.axes[6].images[0].get_array())  # first axial slice
    z = int(grid.axes[6].get_title(loc="left").removeprefix("z="))
    np.testing.assert_array_equal(frames[z, :ny, nx : 2 * nx], shown)


def test_gif_frames_step():
    image, label = _volume()
    labeled = get_labeled_image(image, label)
    every = gif_frames(labeled)
    third = gif_frames(labeled, step=3)
    assert third.shape[0] == 8  # indices 0, 3, ..., 21 of the longest axis (24)
    np.testing.assert_array_equal(third[:, :-3], every[::3, :-3])
    with pytest.raises(ValueError):
        gif_frames(labeled, step=0)


def test_gif_written_with_frames_durations_and_colours(tmp_path):
    image, label = _volume()
    labeled = get_labeled_image(image, label)
    path = tmp_path / "sub" / "sweep.gif"
    shown = visualize_data_gif(labeled, path=path, duration_ms=70, step=1)
    assert path.read_bytes() == shown.data and shown.data[:6] == b"GIF89a"
    back = iio.imread(path, index=None)
    assert back.shape[:3] == (24, 23, 68)
    with iio.imopen(path, "r", plugin="pillow") as f:
        durations = [f.metadata(index=i)["duration"] for i in range(back.shape[0])]
    assert durations == [70] * 24
    # frame 4, axial panel (columns 24..47): voxel (9, 8, 4) is edema and stays pure red
    assert back[4, 20 - 1 - 8, 24 + 9, :3].tolist() == [255, 0, 0]
    # grey is quantized to 32 levels: within half a level step of the original
    frame = gif_frames(labeled)[4, :20]
    grey = (frame[..., 0] == frame[..., 1]) & (frame[..., 1] == frame[..., 2])
    err = np.abs(back[4, :20, :, 0].astype(int) - frame[..., 0].astype(int))[grey]
    assert err.max() <= 255 / 31 / 2 + 0.5
    assert not list(tmp_path.joinpath("sub").glob(".*"))  # no temp file left behind


def test_gif_leaves_no_file_behind():
    image, label = _volume()
    labeled = get_labeled_image(image, label)[:6, :6, :4]
    temp = Path(tempfile.gettempdir())
    before = set(temp.iterdir())
    shown = visualize_data_gif(labeled, step=1)
    assert set(temp.iterdir()) - before == set()
    assert shown.data[:6] == b"GIF89a" and shown._repr_mimebundle_()[0].keys() == {"image/gif"}
    assert iio.imread(shown.data, index=None, extension=".gif").shape[0] == 6


def test_gif_of_a_sample_case_stays_light(sample_data):
    """The notebook's GIF of a 240x240x155 case: under 1.5 MB as base64 in the notebook."""
    from tumorseg.data import open_dataset

    image, label = open_dataset(sample_data)["BRATS_001"].load()
    shown = visualize_data_gif(get_labeled_image(image, label))
    encoded = len(base64.b64encode(shown.data))
    print(f"GIF: {len(shown.data) / 1e6:.2f} MB, {encoded / 1e6:.2f} MB as base64")
    assert encoded < 1.5e6
    assert iio.imread(shown.data, index=None, extension=".gif").shape[0] == 80


# ---------------------------------------------------------------- patch, prediction views, viewer


def test_visualize_patch_shows_slice_z_with_titles():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(16, 16, 4))
    y = (X > 0).astype(float)
    fig = visualize_patch(X, y, z=2)
    assert len(fig.axes) == 2
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), X[:, :, 2])
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), y[:, :, 2])
    assert fig.axes[0].images[0].get_cmap().name == "Greys_r"
    assert [a.get_title() for a in fig.axes] == ["image, z=2", "label, z=2"]
    fig = visualize_patch(X, y, z=1, titles=("FLAIR", "prediction"))
    assert [a.get_title() for a in fig.axes] == ["FLAIR, z=1", "prediction, z=1"]


def test_prediction_views_share_one_scale():
    image, label = _volume()
    truth = get_labeled_image(image, label)
    pred = get_labeled_image(image, np.where(label == 2, 3, label))
    fig = plot_prediction_views(truth, pred, (11, 10, 99))  # z is clamped to 11
    assert len(fig.axes) == 6
    fig_w, fig_h = fig.get_size_inches()
    scales = set()
    for ax, (rgb, axis, index) in zip(
        fig.axes, [(t, a, i) for t in (truth, pred) for a, i in ((0, 11), (1, 10), (2, 11))]
    ):
        shown = np.asarray(ax.images[0].get_array())
        np.testing.assert_array_equal(shown, take_slice(rgb, axis, index))
        box = ax.get_position()
        scales.add(round(box.width * fig_w / shown.shape[1], 9))
        scales.add(round(box.height * fig_h / shown.shape[0], 9))
    assert len(scales) == 1  # inches per voxel, the same in every panel and direction
    assert [ax.get_xlabel() for ax in fig.axes[:3]] == ["Sagittal", "Coronal", "Axial"]
    assert [fig.axes[0].get_ylabel(), fig.axes[3].get_ylabel()] == ["Ground Truth", "Prediction"]
    import matplotlib.pyplot as plt

    plt.close(fig)


def _picture(viewer) -> np.ndarray:
    return iio.imread(viewer.children[3].value, extension=".png")


def test_slice_viewer_draws_once_per_change():
    import ipywidgets as widgets

    image, label = _volume()
    viewer = slice_viewer(image, label)
    assert isinstance(viewer, widgets.VBox)
    axis, overlay = viewer.children[0].children
    slider, caption, picture = viewer.children[1:]
    assert isinstance(slider, widgets.IntSlider) and isinstance(picture, widgets.Image)
    assert isinstance(axis, widgets.Dropdown) and list(axis.options) == [
        "axial",
        "coronal",
        "sagittal",
    ]
    assert isinstance(overlay, widgets.Checkbox) and overlay.value is True
    assert picture.format == "png" and viewer.draws == 1
    labeled = get_labeled_image(image, label)
    grey = np.clip(np.rint(scale_to_uint8(image[..., 0])), 0, 255).astype(np.uint8)

    def expect(name: str, index: int, on: bool) -> None:
        np.testing.assert_array_equal(
            _picture(viewer), viewer_frame(labeled, grey, name, index, on)
        )
        shown = "labels on FLAIR" if on else "FLAIR only"
        assert caption.value == f"<b>{name}</b> slice {index} of 0–{slider.max}, {shown}"

    assert slider.max == SHAPE[2] - 1 and 4 <= slider.value <= 7  # starts on a tumor slice
    assert slider.layout.width == "600px" and not slider.continuous_update
    expect("axial", slider.value, True)
    # picture scaled so the longest axis (24 voxels) spans 480 px: axial is (Y, X) = 20 x 24
    assert (picture.width, picture.height) == ("480", "400")

    axis.value = "sagittal"  # longer axis: the range grows, one drawing
    assert viewer.draws == 2
    assert slider.max == SHAPE[0] - 1 and 8 <= slider.value <= 13
    expect("sagittal", slider.value, True)
    slider.value = 20
    assert viewer.draws == 3
    expect("sagittal", 20, True)
    axis.value = "axial"  # shorter axis while the slider is past its end: still one drawing
    assert viewer.draws == 4 and slider.max == SHAPE[2] - 1 and 4 <= slider.value <= 7
    expect("axial", slider.value, True)
    overlay.value = False
    assert viewer.draws == 5
    expect("axial", slider.value, False)
    axis.value = "coronal"
    assert viewer.draws == 6 and slider.max == SHAPE[1] - 1
    expect("coronal", slider.value, False)


def test_viewer_frame():
    image, label = _volume()
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
    from tumorseg.viz.cli import main
    from tumorseg.viz.overview import tumor_slice

    _, label = _volume()
    assert tumor_slice(label) in (4, 5, 6, 7)
    assert tumor_slice(np.zeros(SHAPE)) == SHAPE[2] // 2
    root = _dataset(tmp_path / "ds", n=2)
    out = tmp_path / "fig" / "overview.png"
    assert main(["--data", str(root), "--out", str(out), "--cases", "3"]) == 0
    png = iio.imread(out)
    assert png.ndim == 3 and png.shape[1] == 1500 and png.shape[0] > 500
    assert [p.name for p in out.parent.iterdir()] == ["overview.png"]
    with pytest.raises(SystemExit) as info:
        main(["--data", str(tmp_path / "nothing"), "--out", str(out)])
    assert info.value.code == 2
