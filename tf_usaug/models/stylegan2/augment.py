"""Adaptive discriminator augmentation (Karras et al. 2020b, "Training generative adversarial
networks with limited data"), for one grey channel.

Every image the discriminator sees (real and generated, in both the G and the D step) passes
through the same random pipeline; each transformation is applied with probability ``p``, so
at ``p < 0.8`` the generator cannot learn the augmentations ("non-leaking", sec. 2.2). The
pipeline is differentiable in the images (the G step and R1 back-propagate through it).

Groups (sec. 2.3, Appendix B; parameter distributions as StyleGAN2-ADA's ``AugmentPipe``):

* geometric, composed into ONE affine map per image and applied by a single bilinear
  resampling with reflection at the borders: x-flip, 90-degree rotations, integer
  translation (uniform in +-1/8 of the side, rounded to pixels) -- the "pixel blitting" group
  -- then isotropic scaling (lognormal, sigma = 0.2 octaves), rotation (uniform in +-180
  degrees, applied before and after the anisotropic scaling, each with probability
  ``1 - sqrt(1 - p)``), anisotropic scaling (lognormal 0.2) and fractional translation
  (normal, sigma = 1/8 of the side);
* colour: brightness (add N(0, 0.2)) and contrast (multiply by 2^N(0, 0.5)), on the [-1, 1]
  scale. ADA's luma flip, hue rotation and saturation act on the three RGB channels around
  the luma axis: with one grey channel hue and saturation are the identity and the luma flip
  is negation (an inverted ultrasound image), so they are left out (docs/stylegan2.md).

ADA's wavelet-filtered resampling (anti-aliasing) is replaced by bilinear sampling: at the
training sides on a CPU (32-64 px) it is the shorter choice.

The strength ``p`` is steered by the overfitting heuristic ``r_t = E[sign(D_train)]`` (eq. 1
of sec. 3): :func:`ada_update` is the pure update rule.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

#: StyleGAN2-ADA AugmentPipe defaults.
XINT_MAX, SCALE_STD, ROTATE_MAX, ANISO_STD, XFRAC_STD = 0.125, 0.2, 1.0, 0.2, 0.125
BRIGHTNESS_STD, CONTRAST_STD = 0.2, 0.5


# ----------------------------------------------------------------------------- the controller


def ada_adjustment(batch_size: int, interval: int, ada_kimg: float) -> float:
    """How far one update moves ``p``: ``batch * interval / (ada_kimg * 1000)``, so ``p`` can
    go 0 -> 1 in ``ada_kimg`` thousand images (sec. 3: 500k)."""
    return float(batch_size) * float(interval) / (float(ada_kimg) * 1000.0)


def ada_update(p: float, rt: float, target: float = 0.6, batch_size: int = 64,
               interval: int = 4, ada_kimg: float = 500.0) -> float:
    """The next augmentation probability (Karras et al. 2020b sec. 3):
    ``p + sign(r_t - target) * adjustment``, clipped to [0, 1].

    Args:
        p: the current probability.
        rt: ``E[sign(D(x_real))]`` over the last ``interval`` minibatches (eq. 1's r_t).
        target: the r_t to hold (0.6).
        batch_size / interval / ada_kimg: see :func:`ada_adjustment`.
    """
    step = ada_adjustment(batch_size, interval, ada_kimg)
    return float(min(1.0, max(0.0, p + float(np.sign(rt - target)) * step)))


# ----------------------------------------------------------------------------- parameters


def _matrix(rows):
    """``[B, 3, 3]`` from nine ``[B]`` tensors (row-major)."""
    return tf.reshape(tf.stack(rows, axis=-1), [-1, 3, 3])


def _translate(tx, ty):
    one, zero = tf.ones_like(tx), tf.zeros_like(tx)
    return _matrix([one, zero, tx, zero, one, ty, zero, zero, one])


def _scale(sx, sy):
    one, zero = tf.ones_like(sx), tf.zeros_like(sx)
    return _matrix([sx, zero, zero, zero, sy, zero, zero, zero, one])


def _rotate(theta):
    c, s = tf.cos(theta), tf.sin(theta)
    one, zero = tf.ones_like(theta), tf.zeros_like(theta)
    return _matrix([c, -s, zero, s, c, zero, zero, zero, one])


def geometric_matrices(batch: int, size: int, p, seed, pipeline: str = "bgc"):
    """Per-image inverse maps ``[B, 3, 3]`` (output pixel -> input pixel, coordinates
    centred on the image) drawn from ``seed`` (``[2]`` int32); each transform with
    probability ``p``, otherwise the identity. ``pipeline`` "b" is blitting only."""
    p = tf.cast(p, tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), 16)
    u = lambda i, shape=(batch,): tf.random.stateless_uniform(shape, seeds[i])  # noqa: E731
    n = lambda i: tf.random.stateless_normal((batch,), seeds[i])  # noqa: E731
    on = lambda i, prob=p: tf.cast(u(i) < prob, tf.float32)  # noqa: E731
    eye = tf.eye(3, batch_shape=[batch])
    G = eye
    # Pixel blitting: x-flip, 90-degree rotations, integer translation.
    flip = tf.floor(u(0) * 2) * on(1)
    G = G @ _scale(1 - 2 * flip, tf.ones_like(flip))
    quarter = tf.floor(u(2) * 4) * on(3)
    G = G @ _rotate(-math.pi / 2 * quarter)
    t = (tf.random.stateless_uniform((batch, 2), seeds[4]) * 2 - 1) * XINT_MAX
    t = tf.round(t * size) * on(5)[:, None]
    G = G @ _translate(-t[:, 0], -t[:, 1])
    if "g" in pipeline:
        # General geometric: scale, rotation, anisotropic scale, rotation, fractional shift.
        s = tf.pow(2.0, n(6) * SCALE_STD * on(7))
        G = G @ _scale(1 / s, 1 / s)
        p_rot = 1 - tf.sqrt(tf.maximum(1 - p, 0.0))
        theta = (u(8) * 2 - 1) * math.pi * ROTATE_MAX * on(9, p_rot)
        G = G @ _rotate(-theta)
        a = tf.pow(2.0, n(10) * ANISO_STD * on(11))
        G = G @ _scale(1 / a, a)
        theta = (u(12) * 2 - 1) * math.pi * ROTATE_MAX * on(13, p_rot)
        G = G @ _rotate(-theta)
        t = tf.random.stateless_normal((batch, 2), seeds[14]) * XFRAC_STD * size * on(15)[:, None]
        G = G @ _translate(-t[:, 0], -t[:, 1])
    return G


def colour_parameters(batch: int, p, seed):
    """``(brightness [B], contrast [B])``: N(0, 0.2) and 2^N(0, 0.5), each with probability
    ``p`` (else 0 and 1)."""
    p = tf.cast(p, tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), 4)
    on = lambda i: tf.cast(tf.random.stateless_uniform((batch,), seeds[i]) < p,  # noqa: E731
                           tf.float32)
    b = tf.random.stateless_normal((batch,), seeds[0]) * BRIGHTNESS_STD * on(1)
    c = tf.pow(2.0, tf.random.stateless_normal((batch,), seeds[2]) * CONTRAST_STD * on(3))
    return b, c


# ----------------------------------------------------------------------------- applying


def _reflect(index, n: int):
    """Integer pixel indices reflected into ``[0, n)`` (mirror without repeating the edge)."""
    if n == 1:
        return tf.zeros_like(index)
    period = 2 * (n - 1)
    i = tf.math.floormod(index, period)
    return tf.where(i > n - 1, period - i, i)


def resample(images, matrices):
    """``images`` ``[B, H, W, C]`` sampled bilinearly at ``matrices @ (x, y, 1)`` of every
    output pixel (centred coordinates), reflecting beyond the borders. Exact at integer
    positions (the identity, flips, quarter turns and integer shifts move pixels only)."""
    b, h, w = tf.shape(images)[0], images.shape[1], images.shape[2]
    ys, xs = tf.meshgrid(tf.range(h, dtype=tf.float32) - (h - 1) / 2,
                         tf.range(w, dtype=tf.float32) - (w - 1) / 2, indexing="ij")
    coords = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1]),
                       tf.ones([h * w])], axis=0)                      # [3, HW]
    src = tf.einsum("bij,jn->bin", tf.cast(matrices, tf.float32), coords)
    sx, sy = src[:, 0] + (w - 1) / 2, src[:, 1] + (h - 1) / 2          # [B, HW]
    x0, y0 = tf.floor(sx), tf.floor(sy)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    batch_idx = tf.tile(tf.range(b)[:, None], [1, h * w])

    def tap(yy, xx):
        idx = tf.stack([batch_idx, _reflect(yy, h), _reflect(xx, w)], axis=-1)
        return tf.gather_nd(images, idx)                               # [B, HW, C]

    out = ((1 - fy) * ((1 - fx) * tap(y0, x0) + fx * tap(y0, x0 + 1))
           + fy * ((1 - fx) * tap(y0 + 1, x0) + fx * tap(y0 + 1, x0 + 1)))
    return tf.reshape(out, tf.shape(images))


def apply_colour(images, brightness, contrast):
    """``contrast * (x + brightness)`` per image (ADA's colour matrix, collapsed to one
    channel: brightness first, then contrast around 0, mid-grey on the [-1, 1] scale)."""
    return (images + brightness[:, None, None, None]) * contrast[:, None, None, None]


def ada_augment(images, p, seed, pipeline: str = "bgc", global_batch: int | None = None,
                offset: int = 0):
    """The ADA pipeline on ``[B, S, S, 1]`` images in [-1, 1]: geometric, then colour
    ("c" in ``pipeline``), every transform with probability ``p``, parameters from ``seed``
    (``[2]`` int32). ``p = 0`` returns the images unchanged.

    ``global_batch`` / ``offset``: the images are rows ``offset ... offset + B - 1`` of a
    global batch (one Horovod rank's slice): the parameters are drawn for the global batch
    and sliced, so every image gets the transform it would get in one process."""
    batch, size = tf.shape(images)[0], images.shape[1]
    total = batch if global_batch is None else int(global_batch)
    rows = slice(offset, offset + batch) if global_batch is not None else slice(None)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), 2)
    x = resample(images, geometric_matrices(total, size, p, seeds[0], pipeline)[rows])
    if "c" in pipeline:
        bri, con = colour_parameters(total, p, seeds[1])
        x = apply_colour(x, bri[rows], con[rows])
    return x
