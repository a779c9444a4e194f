"""tumorseg: brain-tumor segmentation of multimodal MRI with a 3D U-Net.

Stages, in pipeline order:

- ``tumorseg.data``       load and validate cases, discover datasets, build the synthetic sample set
- ``tumorseg.patches``    sub-volume sampling, standardization, the h5 patch store, ``VolumeDataGenerator``
- ``tumorseg.model``      the 3D U-Net builder and its losses/metrics
- ``tumorseg.train``      training with checkpoints, logs and a manifest
- ``tumorseg.inference``  whole-scan prediction (tiling, stitching) and ``predict_and_viz``
- ``tumorseg.metrics``    Dice, sensitivity/specificity, HD95, BraTS regions
- ``tumorseg.viz``        label overlays, grids, GIFs, patch views, an interactive viewer
- ``tumorseg.course``     public tests, student release and the autograder

Array layout convention: images are ``(X, Y, Z, C)`` on disk and in ``load_case``;
everything that touches the model is channels-first ``(C, X, Y, Z)``.
"""

__version__ = "0.1.0"
