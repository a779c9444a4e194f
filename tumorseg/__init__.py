"""tumorseg: brain-tumor segmentation of multimodal MRI with a 3D U-Net.

Stages, in pipeline order:

- ``tumorseg.data``       load and validate cases, discover datasets, build the synthetic sample set
- ``tumorseg.patches``    sub-volume sampling, standardization, the h5 patch store, ``VolumeDataGenerator``
- ``tumorseg.model``      the 3D U-Net builder and its losses/metrics
- ``tumorseg.train``      training with checkpoints, logs and a manifest
- ``tumorseg.inference``  whole-scan prediction (tiling, stitching, mirroring, clean-up), scoring
- ``tumorseg.metrics``    Dice, sensitivity/specificity, HD95, BraTS regions
- ``tumorseg.viz``        label overlays, grids, GIFs, patch views, a viewer, ``predict_and_viz``
- ``tumorseg.course``     public tests, student release and the autograder

Array layout convention: images are ``(X, Y, Z, C)`` on disk and in ``load_case``;
everything that touches the model is channels-first ``(C, X, Y, Z)``.
"""

import os as _os

__version__ = "0.1.0"

# TensorFlow (2.21) turns its oneDNN kernels on by default only on AVX512-class CPUs; elsewhere
# (AVX2-only AMD and older Intel) Conv3D and its gradient fall back to Eigen, about 3x slower and
# with about 3x the memory.  The flag must be set before TensorFlow is first imported, and every
# import of the package passes here first.  A value the user set is kept (0 restores Eigen).
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
