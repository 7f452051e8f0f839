"""Masked ('augmented') Gram style loss: styles matched label by label (paper 001 eqs. 2.5 / 3.1)."""
from __future__ import annotations

import tensorflow as tf

from .config import _plain_python
from .common import _as_float, _check_rank, _static_hw, downsample_mask
from .mmd import mmd_style_loss


@_plain_python
def masked_gram_style_loss(gen, style, content_masks, style_masks=None) -> tf.Tensor:
    """Augmented (masked) Gram style loss, paper 001 eqs. 2.5 and 3.1, at one layer.

    ``sum_d 1/(4 N^2) sum_ij (S_d(I_hat) - S_d(I_s))_ij^2`` where ``S_d`` is the Gram of the
    features masked by label d, divided by the label's mass ``sum m^2`` (so each label compares
    the style *within* its region, independent of region size; a full mask equals the plain
    Gram loss).
    Generated features take the content masks (eq. 2.5); the style takes ``style_masks`` when
    given (eq. 2.5), else the content masks too (eq. 3.1). Masks are area-downsampled to each
    side's layer size. Labels empty on either side contribute 0. Paper 001 normalises by
    1/(2 C^2); we keep paper 002's 1/(4 N^2) of eq. 4.

    Args:
        gen: ``[B, h, w, c]``.
        style: ``[B, h', w', c]``.
        content_masks: ``[B, D, H, W]`` label masks at image resolution.
        style_masks: ``[B, D, H', W']`` or None.

    Returns:
        ``[B]``.
    """
    gen, style = _as_float(gen), _as_float(style)
    _check_rank(gen, (4,), "gen")
    _check_rank(style, (4,), "style")
    style_masks = content_masks if style_masks is None else style_masks
    gen_weights = tf.square(downsample_mask(content_masks, _static_hw(gen)))
    style_weights = tf.square(downsample_mask(style_masks, _static_hw(style)))
    return mmd_style_loss(gen, style, "poly", x_weights=gen_weights, y_weights=style_weights)
