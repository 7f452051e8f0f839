"""Content loss (paper 002 eq. 2, LRP-weighted) and total variation."""
from __future__ import annotations

import tensorflow as tf

from .config import _plain_python
from .common import _area_resize, _as_float, _check_rank, _static_hw


# --------------------------------------------------------------------------- content and TV


@_plain_python
def content_loss(gen, content, weight=None, normalize: bool = True) -> tf.Tensor:
    """Content loss, paper 002 eq. 2, with an optional per-position weight (LRP relevance).

    ``L_c = 1/2 sum_{ij} weight_j (F(I_hat) - F(I_c))_ij^2``. With ``normalize=True`` (default)
    the sum is divided by ``h*w*c``, which is paper 001 eq. 2.2 and keeps the value independent
    of the layer and the image size (the engine runs several resolutions); ``normalize=False``
    is eq. 2 exactly. The normaliser ignores ``weight``, so a weight of ones equals no weight.

    Args:
        gen: features of the generated image ``[B, h, w, c]``.
        content: features of the content image, same shape.
        weight: None, ``[B, h, w]`` or ``[B, h, w, 1]`` non-negative map multiplying the squared
            error; a map of another spatial size is area-resized to ``(h, w)`` first.
        normalize: divide by ``h*w*c``.

    Returns:
        ``[B]``.
    """
    gen, content = _as_float(gen), _as_float(content)
    content = tf.cast(content, gen.dtype)
    _check_rank(gen, (4,), "gen")
    if gen.shape.is_fully_defined() and content.shape.is_fully_defined() and \
            gen.shape != content.shape:
        raise ValueError(f"content_loss: gen {gen.shape} and content {content.shape} differ")
    squared = tf.square(gen - content)
    if weight is not None:
        weight = tf.convert_to_tensor(weight)
        _check_rank(weight, (3, 4), "weight")
        if weight.shape.rank == 3:
            weight = weight[..., None]
        weight_hw, gen_hw = tuple(weight.shape[1:3]), tuple(gen.shape[1:3])
        if None in weight_hw or None in gen_hw or weight_hw != gen_hw:
            weight = _area_resize(weight[..., 0], _static_hw(gen))[..., None]
        squared = squared * tf.cast(weight, gen.dtype)
    total = 0.5 * tf.reduce_sum(squared, axis=[1, 2, 3])
    if normalize:
        total = total / tf.cast(tf.reduce_prod(tf.shape(gen)[1:]), gen.dtype)
    return total


@_plain_python
def total_variation_loss(images, normalize: bool = True) -> tf.Tensor:
    """Anisotropic total variation ``sum |I(y+1,x) - I(y,x)| + |I(y,x+1) - I(y,x)|``.

    The regulariser of Johnson et al. / Mahendran & Vedaldi that paper 001 (sec. 3.2) drops for
    its smoothing effect; off by default in the engine. Same value as
    ``tf.image.total_variation``; ``normalize`` divides by ``H*W*C``.

    Args:
        images: ``[B, H, W, C]``.
        normalize: divide by the number of pixel values.

    Returns:
        ``[B]``.
    """
    images = _as_float(images)
    _check_rank(images, (4,), "images")
    dy = tf.abs(images[:, 1:] - images[:, :-1])
    dx = tf.abs(images[:, :, 1:] - images[:, :, :-1])
    total = tf.reduce_sum(dy, axis=[1, 2, 3]) + tf.reduce_sum(dx, axis=[1, 2, 3])
    if normalize:
        total = total / tf.cast(tf.reduce_prod(tf.shape(images)[1:]), images.dtype)
    return total
