"""Helpers for the brain-tumor segmentation course notebook, which imports this module as ``util``.

This module is a thin facade: every name below is re-exported from the ``tumorseg``
package, where the code, its tests and its full docstrings live; the library stays organised by
pipeline stage.  ``util.py`` at the top of a checkout re-exports it, and the autograder copies
this file as ``util.py`` into each grading folder, so it imports nothing but ``tumorseg``.
"""

from tumorseg.quiet import import_backend

# Keras/TensorFlow without the C++ runtime's start-up lines (tumorseg/quiet.py)
keras = import_backend()

from tumorseg.contract import targets_for  # noqa: E402
from tumorseg.data import DataError, load_case, open_dataset  # noqa: E402
from tumorseg.inference import Postprocess, predict_volume, probabilities_to_labels  # noqa: E402
from tumorseg.metrics import region_scores, sens_spec_table  # noqa: E402
from tumorseg.model import load_pretrained, unet_model_3d, unet_summary  # noqa: E402
from tumorseg.patches import VolumeDataGenerator, standardize_patch  # noqa: E402
from tumorseg.viz import (  # noqa: E402
    get_labeled_image,
    plot_image_grid,
    predict_and_viz,
    slice_viewer,
    visualize_data_gif,
    visualize_patch,
)


def release_memory() -> None:
    """Give back the memory of models the notebook no longer names: call it after ``del model``
    (and of anything that holds the model, such as a callback or ``fit``'s ``History``).  It
    clears Keras's global state (``keras.backend.clear_session``) and collects Python's
    garbage, so the next model does not stack on top of the previous one.  Then it hands the
    freed C heap back to the system (``tumorseg.hardware.trim_heap``), which TensorFlow's
    Eigen path (oneDNN off) otherwise keeps after training."""
    from tumorseg.hardware import trim_heap

    keras.backend.clear_session(free_memory=True)
    trim_heap()


__all__ = [
    # data: read one case as (240, 240, 155, 4) float64 image + (240, 240, 155) label
    "DataError",  # the one error type for bad input files; its message names the file and the fix
    "load_case",  # (image_path, label_path) -> (image (X,Y,Z,4) float64, label (X,Y,Z) float64)
    "open_dataset",  # discover cases in an MSD or BraTS 2020/2021 folder
    # visualisation
    "get_labeled_image",  # FLAIR in grey with edema red, non-enhancing green, enhancing blue
    "plot_image_grid",  # coronal / axial / sagittal rows of a labeled (X,Y,Z,3) volume
    "visualize_data_gif",  # animated sweep through the three axes, returned as an IPython Image
    "visualize_patch",  # z-slice of an image patch next to its label
    "slice_viewer",  # interactive ipywidgets viewer: slice slider, axis choice, overlay toggle
    # model, data feeding, prediction
    "unet_model_3d",  # the course's 3D U-Net, channels-first (4,X,Y,Z) -> (3,X,Y,Z)
    "load_pretrained",  # the shipped model and its manifest
    "unet_summary",  # levels, filters and parameter count of a U-Net (model.summary(): every layer)
    "VolumeDataGenerator",  # keras PyDataset over the h5 patch store
    "standardize_patch",  # the standardization the generator and the predictor apply
    "predict_volume",  # whole-scan probabilities (3,X,Y,Z) by batched, overlapping tiles
    "probabilities_to_labels",  # the one label rule: (3,X,Y,Z) probabilities -> (X,Y,Z) labels
    "targets_for",  # class targets (..., 3, X,Y,Z) -> what a model's outputs learn (classes/regions)
    "predict_and_viz",  # whole scan: predict, threshold, plot ground truth against prediction
    "Postprocess",  # whole-scan clean-up rules; Postprocess.NONE turns the manifest's off
    "release_memory",  # after `del model`: free Keras's global state and the deleted model
    # evaluation
    "sens_spec_table",  # per-class sensitivity/specificity as a pandas DataFrame
    "region_scores",  # BraTS WT/TC/ET Dice, HD95, sensitivity, specificity
]
