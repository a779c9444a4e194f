"""The 3D U-Net: builder, one-sample losses/metrics (wrapped per sample), the shipped weights."""

from tumorseg.model.losses import (
    batch_dice_bce_loss,
    dice_bce_loss,
    dice_class,
    dice_coefficient,
    per_sample,
    soft_dice_loss,
)
from tumorseg.model.pretrained import load_pretrained
from tumorseg.model.summary import unet_summary
from tumorseg.model.unet import unet_model_3d

__all__ = [
    "unet_model_3d",
    "unet_summary",
    "load_pretrained",
    "dice_coefficient",
    "soft_dice_loss",
    "dice_bce_loss",
    "batch_dice_bce_loss",
    "dice_class",
    "per_sample",
]
