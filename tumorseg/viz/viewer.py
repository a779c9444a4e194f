"""An interactive slice viewer for notebooks (ipywidgets).

Each change of a control renders one picture, a PNG of the slice, and sets it as the value of
an ``ipywidgets.Image``: the browser swaps the whole picture at once, so it never shows a
cleared or half-drawn output, and the picture lives in the widget's state, so it comes back
after a page reload.  Changing the axis updates the slider's range and value without a second
drawing.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from tumorseg.viz.labeled import get_labeled_image, scale_to_uint8
from tumorseg.viz.plots import take_slice

if TYPE_CHECKING:
    import ipywidgets

#: Axis choices of the viewer: display name -> axis of the (X, Y, Z) volume.
VIEWER_AXES = {"axial": 2, "coronal": 1, "sagittal": 0}
#: On-screen size of the picture's longer side, in CSS pixels (the slice is scaled to it).
DISPLAY_PX = 480


def viewer_frame(
    labeled: np.ndarray, grey: np.ndarray, axis: str, index: int, overlay: bool
) -> np.ndarray:
    """The picture the viewer shows: (H, W, 3) uint8 slice ``index`` along ``axis`` (a key of
    :data:`VIEWER_AXES`), of ``labeled`` (X, Y, Z, 3) when ``overlay`` else of ``grey``
    (X, Y, Z) uint8 scaled FLAIR, rotated for display."""
    ax = VIEWER_AXES[axis]
    if overlay:
        return take_slice(labeled, ax, index)
    g = take_slice(grey, ax, index)
    return np.repeat(g[..., None], 3, axis=-1)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 picture as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").save(buffer, "png")
    return buffer.getvalue()


def best_slice(tumor: np.ndarray, axis: str) -> int:
    """Index along ``axis`` of the slice of the boolean (X, Y, Z) ``tumor`` mask with the most
    tumor voxels (the middle slice when there is no tumor)."""
    ax = VIEWER_AXES[axis]
    counts = tumor.sum(axis=tuple(a for a in range(3) if a != ax))
    return int(np.argmax(counts)) if counts.any() else tumor.shape[ax] // 2


def slice_viewer(image: np.ndarray, label: np.ndarray) -> ipywidgets.VBox:
    """Browse a case interactively: a slice slider, an axis dropdown and an overlay toggle.

    ``image``: (X, Y, Z, 4) float (FLAIR in channel 0); ``label``: (X, Y, Z) codes 0..3.
    Returns an ``ipywidgets.VBox`` (display it, or make it a cell's last expression): a row
    with the axis Dropdown and the overlay Checkbox, the IntSlider (as wide as the picture), a
    caption (HTML: axis, slice, overlay; updated after the picture) and the picture (Image,
    PNG, its longer side 480 px). It starts on the axial slice with the most tumor; an axis change
    jumps to that axis's slice with the most tumor. Every change draws exactly once;
    ``viewer.draws`` counts the drawings.
    """
    import ipywidgets as widgets

    labeled = get_labeled_image(image, label)
    grey = np.clip(np.rint(scale_to_uint8(np.asarray(image)[..., 0])), 0, 255).astype(np.uint8)
    shape = grey.shape
    tumor = np.asarray(label) > 0
    longest = max(shape)

    slider = widgets.IntSlider(
        value=best_slice(tumor, "axial"),
        min=0,
        max=shape[VIEWER_AXES["axial"]] - 1,
        description="slice",
        continuous_update=False,
        layout=widgets.Layout(width=f"{DISPLAY_PX + 120}px"),  # ~2 px per slice for 240 slices
    )
    axis_dd = widgets.Dropdown(
        options=list(VIEWER_AXES),
        value="axial",
        description="axis",
        layout=widgets.Layout(width="180px"),
        style={"description_width": "40px"},
    )
    overlay_cb = widgets.Checkbox(value=True, description="label overlay", indent=False)
    caption = widgets.HTML()
    picture = widgets.Image(format="png")
    viewer = widgets.VBox([widgets.HBox([axis_dd, overlay_cb]), slider, caption, picture])
    viewer.draws = 0
    busy = False  # True while an axis change moves the slider: no drawing for those steps

    def draw() -> None:
        axis, index = axis_dd.value, slider.value
        rgb = viewer_frame(labeled, grey, axis, index, overlay_cb.value)
        scale = DISPLAY_PX / longest
        # width, height and value in one message: the browser swaps the whole picture at once
        with picture.hold_sync():
            picture.width = str(round(rgb.shape[1] * scale))
            picture.height = str(round(rgb.shape[0] * scale))
            picture.value = png_bytes(rgb)
        # the caption follows the picture: once it shows, the picture is there
        caption.value = (
            f"<b>{axis}</b> slice {index} of 0–{shape[VIEWER_AXES[axis]] - 1}, "
            f"{'labels on FLAIR' if overlay_cb.value else 'FLAIR only'}"
        )
        viewer.draws += 1

    def on_axis(change) -> None:
        nonlocal busy
        busy = True
        try:
            with slider.hold_sync():
                slider.max = max(slider.max, shape[VIEWER_AXES[change["new"]]] - 1)
                slider.value = best_slice(tumor, change["new"])
                slider.max = shape[VIEWER_AXES[change["new"]]] - 1
        finally:
            busy = False
        draw()

    def on_change(change) -> None:
        if not busy:
            draw()

    axis_dd.observe(on_axis, names="value")
    slider.observe(on_change, names="value")
    overlay_cb.observe(on_change, names="value")
    draw()
    return viewer
