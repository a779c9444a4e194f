"""Visualisations: label overlays, slice grids, GIF sweeps, patch views, an interactive viewer,
and ``predict_and_viz`` (segment a whole scan and plot it against the ground truth).

Arrays are (X, Y, Z, ...) as loaded by ``tumorseg.data.load_case``. matplotlib, imageio,
IPython and ipywidgets are imported only when a function needs them.
"""

from tumorseg.viz.gif import gif_frames, visualize_data_gif
from tumorseg.viz.labeled import get_labeled_image
from tumorseg.viz.plots import plot_image_grid, visualize_patch
from tumorseg.viz.prediction import predict_and_viz
from tumorseg.viz.viewer import slice_viewer

__all__ = [
    "get_labeled_image",
    "gif_frames",
    "plot_image_grid",
    "predict_and_viz",
    "slice_viewer",
    "visualize_data_gif",
    "visualize_patch",
]
