"""Pure helpers of the pixel optimisation: Adam (Kingma & Ba 2015, Algorithm 1), the iteration
split across scales, resizing, seeded noise."""
from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np
import tensorflow as tf

from .config import MIN_SCALE_SIDE, _TINY


# ---------------------------------------------------------------------------- pure helpers


def adam_update(grad, m, v, step, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """One Adam step (Kingma & Ba 2015, Algorithm 1), element-wise.

    Args:
        grad: gradient, any shape; m, v: first / second moment estimates, same shape.
        step: the 1-based index of this step (for the bias correction).
        learning_rate, beta_1, beta_2, epsilon: Adam's hyper-parameters.
    Returns:
        ``(delta, m, v)``: the parameter change to *add* and the new moments.
    """
    m = beta_1 * m + (1.0 - beta_1) * grad
    v = beta_2 * v + (1.0 - beta_2) * tf.square(grad)
    step = tf.cast(step, grad.dtype)
    m_hat = m / (1.0 - tf.pow(tf.constant(beta_1, grad.dtype), step))
    v_hat = v / (1.0 - tf.pow(tf.constant(beta_2, grad.dtype), step))
    return -learning_rate * m_hat / (tf.sqrt(v_hat) + epsilon), m, v


def relative_change(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """``|previous - current| / |previous|`` per element (0 where both are 0)."""
    previous = np.asarray(previous, np.float64)
    current = np.asarray(current, np.float64)
    denominator = np.maximum(np.abs(previous), _TINY)
    return np.abs(previous - current) / denominator


def split_iterations(total: int, fractions: Sequence[float]) -> list[int]:
    """Split ``total`` steps into integer shares proportional to ``fractions`` (sum = total).

    Largest-remainder rounding, so ``split_iterations(1000, (1, 1)) == [500, 500]``.
    """
    weights = np.asarray(fractions, np.float64)
    exact = total * weights / weights.sum()
    shares = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - shares), kind="stable")[: total - shares.sum()]:
        shares[index] += 1
    return shares.tolist()


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(round(scale * height), round(scale * width))``, at least ``MIN_SCALE_SIDE`` (or
    the full side when the image is smaller than that)."""
    def side(n):
        return int(min(n, max(MIN_SCALE_SIDE, round(scale * n))))
    return side(height), side(width)


def resize_stack(images: tf.Tensor, size: tuple[int, int], method: str) -> tf.Tensor:
    """Resize ``[..., H, W]`` stacks of grey images / maps to ``size`` (no-op if equal).

    ``method="area"`` for downsampling (anti-aliased, mean-preserving), "bilinear" to upsample.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    lead = tf.shape(images)[:-2]
    flat = tf.reshape(images, tf.concat([[-1], tf.shape(images)[-2:]], 0))[..., None]
    out = tf.image.resize(flat, size, method=method)[..., 0]
    return tf.reshape(out, tf.concat([lead, size], 0))


def noise_generator(seed: int, content: np.ndarray) -> np.random.Generator:
    """A generator seeded by ``seed`` and the bytes of one content image (batch-independent)."""
    digest = zlib.crc32(np.ascontiguousarray(content, np.float32).tobytes())
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, digest])


def _as_batch(array, name: str, ndim: Sequence[int]) -> np.ndarray:
    """float32 array of an allowed rank with finite values (ValueError otherwise)."""
    array = np.asarray(array, np.float32)
    if array.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, "
                         f"got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array
