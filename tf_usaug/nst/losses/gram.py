"""Gram matrices and the Gram style loss (paper 002 eqs. 3-5; Gatys et al.), average style (paper 001)."""
from __future__ import annotations

import tensorflow as tf

from .config import _plain_python
from .common import _as_float, _channels, _check_rank, _flatten_samples


# --------------------------------------------------------------------------- Gram


@_plain_python
def gram_matrix(features, mask=None) -> tf.Tensor:
    """Gram matrix ``G = F^T F`` summed over positions, paper 002 eq. 5.

    Args:
        features: ``[B, h, w, c]``.
        mask: optional ``[B, h, w]`` or ``[B, h, w, 1]`` multiplying the features first
            (paper 001 eq. 2.5: ``F_d = F M_d``).

    Returns:
        ``[B, c, c]``.
    """
    features = _as_float(features)
    _check_rank(features, (4,), "features")
    if mask is not None:
        mask = tf.convert_to_tensor(mask)
        _check_rank(mask, (3, 4), "mask")
        if mask.shape.rank == 3:
            mask = mask[..., None]
        features = features * tf.cast(mask, features.dtype)
    flat = _flatten_samples(features)
    return tf.linalg.matmul(flat, flat, transpose_a=True)


@_plain_python
def gram_style_loss(gen, target_gram, num_positions=None) -> tf.Tensor:
    """Gram style loss E_l, paper 002 eqs. 4 / 8: ``1/(4 N^2 M^2) sum (G(I_hat) - G_t)^2``.

    Args:
        gen: generated features ``[B, h, w, c]``.
        target_gram: ``[B, c, c]`` Gram (eq. 5, summed over positions) of the target, computed
            at the same number of positions M (e.g. ``gram_matrix(style)``).
        num_positions: M; default ``h * w`` of ``gen``.

    Returns:
        ``[B]``.
    """
    gen = _as_float(gen)
    gram = gram_matrix(gen)
    target_gram = tf.cast(target_gram, gram.dtype)
    if num_positions is None:
        num_positions = tf.shape(gen)[1] * tf.shape(gen)[2]
    positions = tf.cast(num_positions, gram.dtype)
    channels = _channels(gen, gram.dtype)
    sq = tf.reduce_sum(tf.square(gram - target_gram), axis=[1, 2])
    return sq / (4.0 * tf.square(channels) * tf.square(positions))


@_plain_python
def average_style_gram(style_features, mode: str = "gram", mask=None) -> tf.Tensor:
    """Average style target over n references, paper 001 sec. 3.2.

    ``mode="gram"``: mean of the references' Grams, ``1/n sum_r G(F_r)`` (Gram space);
    ``mode="feature"``: Gram of the mean feature map, ``G(1/n sum_r F_r)`` (feature space).
    The result is summed over positions like eq. 5, so it is a valid ``target_gram`` for
    ``gram_style_loss`` at the references' size.

    Args:
        style_features: ``[B, n, h, w, c]``.
        mode: "gram" or "feature".
        mask: optional ``[B, h, w]`` (shared) or ``[B, n, h, w]`` (per reference) multiplying
            the features first.

    Returns:
        ``[B, c, c]``.
    """
    style = _as_float(style_features)
    _check_rank(style, (5,), "style_features")
    if mode not in ("gram", "feature"):
        raise ValueError(f"average_style_gram: mode must be 'gram' or 'feature', got {mode!r}")
    if mask is not None:
        mask = tf.cast(tf.convert_to_tensor(mask), style.dtype)
        _check_rank(mask, (3, 4), "mask")
        mask = mask[:, None, ..., None] if mask.shape.rank == 3 else mask[..., None]
        style = style * mask
    if mode == "feature":
        return gram_matrix(tf.reduce_mean(style, axis=1))
    shape = tf.shape(style)
    per_ref = tf.reshape(style, tf.stack([shape[0] * shape[1], shape[2], shape[3], shape[4]]))
    grams = gram_matrix(per_ref)
    grams = tf.reshape(grams, tf.stack([shape[0], shape[1], shape[4], shape[4]]))
    return tf.reduce_mean(grams, axis=1)
