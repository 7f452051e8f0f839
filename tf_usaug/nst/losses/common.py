"""Small helpers shared by the losses: dtype promotion, flattening, sample weights, masks."""
from __future__ import annotations

import tensorflow as tf

from .config import _TINY, _plain_python


# --------------------------------------------------------------------------- small helpers


def _as_float(x) -> tf.Tensor:
    """Tensor in a dtype fit for loss sums: float16/bfloat16 become float32."""
    x = tf.convert_to_tensor(x)
    if x.dtype in (tf.float16, tf.bfloat16) or not x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    return x


def _check_rank(x: tf.Tensor, ranks: tuple, name: str) -> None:
    if x.shape.rank is not None and x.shape.rank not in ranks:
        raise ValueError(f"{name} must have rank {' or '.join(map(str, ranks))}, "
                         f"got shape {x.shape}")


def _scalar(value, dtype) -> tf.Tensor:
    """A Python number or tensor as ``dtype`` (a Python float must not pass through float32)."""
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return tf.cast(value, dtype)
    return tf.constant(value, dtype)


def _channels(x: tf.Tensor, dtype) -> tf.Tensor:
    """N_l: the channel count of features as a scalar of ``dtype``."""
    return tf.cast(tf.shape(x)[-1], dtype)


def _flatten_samples(x: tf.Tensor) -> tf.Tensor:
    """``[B, ..., c]`` -> ``[B, S, c]``: every position (of every reference) is one sample."""
    shape = tf.shape(x)
    return tf.reshape(x, tf.stack([shape[0], -1, shape[-1]]))


def _static_hw(x: tf.Tensor) -> tuple:
    """(h, w) of ``[..., h, w, c]`` features, static ints where known, else scalar tensors."""
    dyn = tf.shape(x)
    h, w = x.shape[-3], x.shape[-2]
    return (h if h is not None else dyn[-3], w if w is not None else dyn[-2])


def _probabilities(weights: tf.Tensor | None, num_samples, batch, dtype):
    """Normalise sample weights ``[B, D, S]`` per label; None -> uniform ``[B, 1, S]``.

    Returns (probabilities ``[B, D, S]``, mass ``[B, D]``). An empty label (mass 0) gets all-zero
    probabilities instead of 0/0.
    """
    if weights is None:
        mass = tf.ones(tf.stack([batch, 1]), dtype)
        probs = tf.ones(tf.stack([batch, 1, num_samples]), dtype) / tf.cast(num_samples, dtype)
        return probs, mass
    weights = tf.cast(weights, dtype)
    mass = tf.reduce_sum(weights, axis=-1)
    return weights / tf.maximum(mass, _TINY)[..., None], mass


def _flatten_weights(weights, x: tf.Tensor) -> tf.Tensor | None:
    """Sample weights for ``x`` ``[B, ..., c]`` as ``[B, D, S]``.

    ``weights`` of rank ``rank(x) - 1`` (``[B, ...]``) is one label; rank ``rank(x)``
    (``[B, D, ...]``) is ``D`` labels.
    """
    if weights is None:
        return None
    weights = tf.convert_to_tensor(weights)
    if x.shape.rank is None or weights.shape.rank is None:
        raise ValueError("sample weights and samples need known ranks")
    if weights.shape.rank == x.shape.rank - 1:
        weights = weights[:, None]
    elif weights.shape.rank != x.shape.rank:
        raise ValueError(f"weights of shape {weights.shape} do not fit samples of shape {x.shape}"
                         " (expected [B, ...] or [B, D, ...] over the samples' positions)")
    shape = tf.shape(weights)
    return tf.reshape(weights, tf.stack([shape[0], shape[1], -1]))


# --------------------------------------------------------------------------- masks


def _area_matrix(size_in, size_out) -> tf.Tensor:
    """``[size_out, size_in]`` box-filter weights: output cell i averages the input pixels it
    overlaps, ``A[i, y] = |[i s, (i+1) s] & [y, y+1]| / s`` with ``s = size_in / size_out``."""
    scale = tf.cast(size_in, tf.float32) / tf.cast(size_out, tf.float32)
    low = tf.cast(tf.range(size_out), tf.float32)[:, None] * scale
    pixel = tf.cast(tf.range(size_in), tf.float32)[None, :]
    overlap = tf.minimum(low + scale, pixel + 1.0) - tf.maximum(low, pixel)
    return tf.maximum(overlap, 0.0) / scale


def _area_resize(maps, hw) -> tf.Tensor:
    """Area-resize the last two axes ``[..., H, W]`` to ``hw``: ``A_h @ maps @ A_w^T``.

    The same box filter as ``tf.image.resize(method="area")``, but as two matmuls, so it also
    compiles under XLA (``jit_compile=True``), where ResizeArea has no kernel.
    """
    maps = tf.cast(maps, tf.float32)
    shape = tf.shape(maps)
    in_h = maps.shape[-2] if maps.shape[-2] is not None else shape[-2]
    in_w = maps.shape[-1] if maps.shape[-1] is not None else shape[-1]
    rows = tf.linalg.matmul(_area_matrix(in_h, hw[0]), maps)
    return tf.linalg.matmul(rows, _area_matrix(in_w, hw[1]), transpose_b=True)


@_plain_python
def downsample_mask(mask, hw) -> tf.Tensor:
    """Resize label masks to a layer's spatial size by area (average) pooling.

    Area pooling keeps each label's mean coverage (exactly, also for non-integer ratios), so
    a soft boundary value is the fraction of the cell the label covers. Paper 001 (sec. 3.2)
    instead mimics VGG19 with 3x3 averages and nearest-neighbour halving; area pooling is the
    backbone-agnostic equivalent (ResNet50 strides are not VGG's). Same values as
    ``tf.image.resize(method="area")``, computed with matmuls so it also runs under XLA.

    Args:
        mask: ``[B, D, H, W]`` (D labels) or ``[B, H, W]`` masks at image resolution.
        hw: target ``(h, w)``.

    Returns:
        float32 ``[B, D, h, w]`` (or ``[B, h, w]``) in [0, 1] for binary input.
    """
    mask = tf.convert_to_tensor(mask)
    _check_rank(mask, (3, 4), "mask")
    return _area_resize(mask, hw)


def _mask_weights(masks, hw) -> tf.Tensor:
    """Sample weights ``m^2`` ``[B, D, h*w]`` of label masks ``[B, D, H, W]`` at a layer."""
    masks = tf.convert_to_tensor(masks)
    _check_rank(masks, (4,), "masks")
    low = downsample_mask(masks, hw)
    shape = tf.shape(low)
    return tf.reshape(tf.square(low), tf.stack([shape[0], shape[1], -1]))


def _reference_distribution(features, weights, average):
    """Samples and per-label probabilities of n references ``[B, n, h, w, c]``.

    ``weights``: None or ``[B, D, n, h*w]``. ``average``: None pools all positions of all
    references (weights proportional to mask mass); "gram" gives each reference equal total
    probability (the mean of the references' statistics, paper 001 "Gram space");
    "feature" averages the feature maps (and the weights) over references first.

    Returns (samples ``[B, S, c]``, probabilities ``[B, D, S]``, mass ``[B, D]``).
    """
    shape = tf.shape(features)
    batch, refs, channels = shape[0], shape[1], shape[4]
    if average == "feature":
        samples = _flatten_samples(tf.reduce_mean(features, axis=1))
        if weights is not None:
            weights = tf.reduce_mean(weights, axis=2)
        probs, mass = _probabilities(weights, tf.shape(samples)[1], batch, samples.dtype)
        return samples, probs, mass
    samples = tf.reshape(features, tf.stack([batch, -1, channels]))
    per_ref = shape[2] * shape[3]
    if weights is None:
        weights = tf.ones(tf.stack([batch, 1, refs, per_ref]), samples.dtype)
    weights = tf.cast(weights, samples.dtype)
    mass = tf.reduce_sum(weights, axis=[2, 3])
    if average == "gram":
        # each reference's distribution normalised on its own, then an equal-weight mixture
        # (references empty for a label drop out of that label's mixture)
        probs = weights / tf.maximum(tf.reduce_sum(weights, axis=-1, keepdims=True), _TINY)
        probs = probs / tf.maximum(tf.reduce_sum(probs, axis=[2, 3], keepdims=True), _TINY)
    else:
        probs = weights / tf.maximum(mass, _TINY)[..., None, None]
    probs_shape = tf.shape(probs)
    return samples, tf.reshape(probs, tf.stack([batch, probs_shape[1], -1])), mass
