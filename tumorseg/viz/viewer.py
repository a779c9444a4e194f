"""An interactive slice viewer for notebooks (ipywidgets)."""

from __future__ import annotations

import numpy as np

from tumorseg.viz.labeled import get_labeled_image, scale_to_uint8
from tumorseg.viz.plots import take_slice

#: Axis choices of the viewer: display name -> axis of the (X, Y, Z) volume.
VIEWER_AXES = {"axial": 2, "coronal": 1, "sagittal": 0}


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


def slice_viewer(image: np.ndarray, label: np.ndarray):
    """Browse a case interactively: a slice slider, an axis dropdown and an overlay toggle.

    ``image``: (X, Y, Z, 4) float (FLAIR in channel 0); ``label``: (X, Y, Z) codes 0..3.
    Returns the ``ipywidgets.interactive`` widget (display it, or make it a cell's last
    expression). Its ``children`` are the IntSlider, Dropdown and Checkbox, then the output.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    labeled = get_labeled_image(image, label)
    grey = np.clip(np.rint(scale_to_uint8(np.asarray(image)[..., 0])), 0, 255).astype(np.uint8)
    shape = grey.shape
    tumor = np.asarray(label) > 0
    start_axis = "axial"

    def best(axis: str) -> int:
        ax = VIEWER_AXES[axis]
        counts = tumor.sum(axis=tuple(a for a in range(3) if a != ax))
        return int(np.argmax(counts)) if counts.any() else shape[ax] // 2

    slider = widgets.IntSlider(
        value=best(start_axis),
        min=0,
        max=shape[VIEWER_AXES[start_axis]] - 1,
        description="slice",
        continuous_update=False,
    )
    axis_dd = widgets.Dropdown(options=list(VIEWER_AXES), value=start_axis, description="axis")
    overlay_cb = widgets.Checkbox(value=True, description="label overlay")

    def on_axis(change) -> None:
        n = shape[VIEWER_AXES[change["new"]]]
        slider.max = n - 1
        slider.value = best(change["new"])

    axis_dd.observe(on_axis, names="value")

    def show(index: int, axis: str, overlay: bool) -> None:
        index = min(index, shape[VIEWER_AXES[axis]] - 1)
        fig, ax = plt.subplots(figsize=(6, 6))
        ax.imshow(viewer_frame(labeled, grey, axis, index, overlay))
        ax.set_title(f"{axis} slice {index}")
        ax.set_xticks([])
        ax.set_yticks([])
        plt.show()

    return widgets.interactive(show, index=slider, axis=axis_dd, overlay=overlay_cb)
