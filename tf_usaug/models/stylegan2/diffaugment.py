"""DiffAugment (Zhao et al. 2020, "Differentiable augmentation for data-efficient GAN
training"), for one grey channel: the same random, differentiable transformation ``T`` of
real and generated images in the D step AND of the generated images in the G step (paper
004 eq. 1: ``L_G = E_z[f_G(-D(T(G(z))))]``), always on (no probability).

Operations (Zhao et al.'s ``DiffAugment_pytorch.py``; paper 004: translation and cutout):

* translation: shift by whole pixels, uniform in ``[-r S, r S]`` (``r = 1/8``) per axis,
  uncovered pixels zero (:func:`translate`);
* cutout: one square of side ``r S`` (``r = 1/2``, a quarter of the image's area) centred
  uniformly, set to zero (:func:`cutout`);
* brightness (add U(-0.5, 0.5)) and contrast (scale around the image mean by U(0.5, 1.5)):
  Zhao et al.'s "color" without saturation, which is the identity on one channel.

"Zero" is zero on the networks' [-1, 1] scale (mid-grey), as in Zhao et al.'s code. The
maths are pure functions of explicit shifts and offsets; :func:`diffaugment` draws them from
a seed.
"""
from __future__ import annotations

import tensorflow as tf


def translation_shift(size: int, ratio: float = 0.125) -> int:
    """The largest shift in pixels: ``int(size * ratio + 0.5)``."""
    return int(size * ratio + 0.5)


def cutout_side(size: int, ratio: float = 0.5) -> int:
    """The cutout square's side: ``int(size * ratio + 0.5)``."""
    return int(size * ratio + 0.5)


def translate(images, shift_y, shift_x):
    """``out[b, i, j] = x[b, i + dy_b, j + dx_b]`` where that lies inside, else 0.

    Args:
        images: ``[B, H, W, C]``.
        shift_y / shift_x: ``[B]`` int shifts.
    """
    h, w = images.shape[1], images.shape[2]
    b = tf.shape(images)[0]
    rows = tf.range(h)[None, :] + tf.cast(shift_y, tf.int32)[:, None]   # [B, H]
    cols = tf.range(w)[None, :] + tf.cast(shift_x, tf.int32)[:, None]   # [B, W]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])           # zeros around
    rows = tf.clip_by_value(rows + 1, 0, h + 1)
    cols = tf.clip_by_value(cols + 1, 0, w + 1)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)                 # [B, H, W+2, C]
    return tf.gather(out, cols, axis=2, batch_dims=1)


def cutout_mask(size_hw, centre_y, centre_x, side: int):
    """``[B, H, W, 1]`` float mask: 0 inside the square of ``side`` whose rows are
    ``centre - side // 2 ... centre - side // 2 + side - 1`` (clipped to the image), else 1."""
    h, w = size_hw
    top = tf.cast(centre_y, tf.int32)[:, None] - side // 2
    left = tf.cast(centre_x, tf.int32)[:, None] - side // 2
    r = tf.range(h)[None, :]
    c = tf.range(w)[None, :]
    in_rows = tf.logical_and(r >= top, r < top + side)                 # [B, H]
    in_cols = tf.logical_and(c >= left, c < left + side)               # [B, W]
    inside = tf.logical_and(in_rows[:, :, None], in_cols[:, None, :])
    return tf.cast(tf.logical_not(inside), tf.float32)[..., None]


def cutout(images, centre_y, centre_x, side: int):
    """``images`` with each one's square set to zero (:func:`cutout_mask`)."""
    return images * cutout_mask((images.shape[1], images.shape[2]), centre_y, centre_x, side)


def brightness(images, delta):
    """``x + delta_b`` (Zhao et al.: delta ~ U(-0.5, 0.5))."""
    return images + tf.cast(delta, images.dtype)[:, None, None, None]


def contrast(images, factor):
    """``(x - mean_b) * factor_b + mean_b`` (Zhao et al.: factor ~ U(0.5, 1.5))."""
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * tf.cast(factor, images.dtype)[:, None, None, None] + mean


def diffaugment(images, seed, ops=("translation", "cutout"), translation_ratio: float = 0.125,
                cutout_ratio: float = 0.5, global_batch: int | None = None, offset: int = 0):
    """Apply ``ops`` in Zhao et al.'s order (colour, translation, cutout) with parameters drawn
    from ``seed`` (``[2]`` int32) to ``[B, S, S, C]`` images. ``global_batch`` / ``offset``:
    the images are one rank's rows of a global batch; the parameters are drawn for the
    global batch and sliced (as in one process)."""
    b, h, w = tf.shape(images)[0], images.shape[1], images.shape[2]
    n = b if global_batch is None else int(global_batch)
    rows = slice(offset, offset + b) if global_batch is not None else slice(None)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), 6)

    def uniform(i, low=0.0, high=1.0, dtype=tf.float32):
        return tf.random.stateless_uniform([n], seeds[i], low, high, dtype)[rows]

    x = images
    if "brightness" in ops:
        x = brightness(x, uniform(0) - 0.5)
    if "contrast" in ops:
        x = contrast(x, uniform(1) + 0.5)
    if "translation" in ops:
        sy, sx = translation_shift(h, translation_ratio), translation_shift(w, translation_ratio)
        x = translate(x, uniform(2, -sy, sy + 1, tf.int32), uniform(3, -sx, sx + 1, tf.int32))
    if "cutout" in ops:
        side = cutout_side(h, cutout_ratio)
        cy = uniform(4, 0, h + (1 - side % 2), tf.int32)
        cx = uniform(5, 0, w + (1 - side % 2), tf.int32)
        x = cutout(x, cy, cx, side)
    return x
