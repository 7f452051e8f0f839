"""ADA and DiffAugment (tf_usaug.models.stylegan2.augment / diffaugment) against numpy.

The p controller as a pure function (step size, direction, clipping, 0 -> 1 in 500k images);
the ADA pipeline is the identity at p = 0, changes every image at p = 1, and its blitting
transforms move pixels exactly like numpy's flip / rot90 / reflected shift; gradients flow to
the images; DiffAugment's zero-padded translation and its cutout (a quarter of the image at
ratio 1/2) equal numpy constructions; brightness / contrast formulas.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tf_usaug.models.stylegan2 import augment as ada  # noqa: E402
from tf_usaug.models.stylegan2 import diffaugment as da  # noqa: E402


# ----------------------------------------------------------------------------- the controller


def test_ada_update_steps_toward_the_target_and_clips():
    step = 64 * 4 / 500_000
    assert ada.ada_adjustment(64, 4, 500) == pytest.approx(step)
    assert ada.ada_update(0.3, 0.9, 0.6, 64, 4, 500) == pytest.approx(0.3 + step)  # overfits
    assert ada.ada_update(0.3, 0.1, 0.6, 64, 4, 500) == pytest.approx(0.3 - step)
    assert ada.ada_update(0.3, 0.6, 0.6, 64, 4, 500) == pytest.approx(0.3)        # sign 0
    assert ada.ada_update(0.0, -1.0) == 0.0 and ada.ada_update(1.0, 1.0) == 1.0   # clipped
    assert ada.ada_update(0.99, 1.0, 0.6, 64, 4, 1) == 1.0
    # From 0 to 1 takes 500k images when r_t stays above the target (Karras et al. sec. 3).
    p, images = 0.0, 0
    while p < 1.0:
        p = ada.ada_update(p, 0.8, 0.6, 64, 4, 500)
        images += 64 * 4
    assert images == pytest.approx(500_000, abs=64 * 4)


# ----------------------------------------------------------------------------- ADA pipeline


def _images(rng, b=6, s=16):
    return tf.constant(rng.uniform(-1, 1, (b, s, s, 1)).astype(np.float32))


@pytest.mark.parametrize("pipeline", ["bg", "bgc"])
def test_ada_is_the_identity_at_p0_and_changes_every_image_at_p1(rng, pipeline):
    x = _images(rng)
    seed = tf.constant([3, 4])
    np.testing.assert_array_equal(ada.ada_augment(x, 0.0, seed, pipeline).numpy(), x.numpy())
    y = ada.ada_augment(x, 1.0, seed, pipeline).numpy()
    assert all(np.abs(y[i] - x.numpy()[i]).max() > 1e-3 for i in range(len(y)))
    np.testing.assert_array_equal(y, ada.ada_augment(x, 1.0, seed, pipeline).numpy())  # seeded
    assert not np.array_equal(y, ada.ada_augment(x, 1.0, tf.constant([3, 5]), pipeline))


def test_blitting_moves_pixels_like_numpy(rng):
    x = _images(rng, b=1, s=8)
    img = x.numpy()[0, :, :, 0]
    eye = np.eye(3, dtype=np.float32)
    flip = np.diag([-1, 1, 1]).astype(np.float32)      # output x -> input -x
    out = ada.resample(x, flip[None]).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(out, img[:, ::-1])
    quarter = ada._rotate(tf.constant([-math.pi / 2])).numpy()
    out = ada.resample(x, quarter).numpy()[0, :, :, 0]
    np.testing.assert_allclose(out, np.rot90(img, k=-1), atol=1e-5)  # a quarter turn
    shift = eye.copy()
    shift[0, 2], shift[1, 2] = -2, 1                  # input = output + (-2, +1)
    out = ada.resample(x, shift[None]).numpy()[0, :, :, 0]
    padded = np.pad(img, 3, mode="reflect")           # reflection without repeating the edge
    np.testing.assert_array_equal(out, padded[3 + 1:3 + 1 + 8, 3 - 2:3 - 2 + 8])


def test_gradients_reach_the_images(rng):
    x = _images(rng, b=2, s=8)
    weights = tf.constant(rng.normal(size=(2, 8, 8, 1)).astype(np.float32))
    for p in (0.0, 1.0):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(ada.ada_augment(x, p, tf.constant([1, 2])) * weights)
        grad = tape.gradient(y, x).numpy()
        if p == 0:
            np.testing.assert_allclose(grad, weights.numpy(), rtol=1e-6)
        else:
            assert np.abs(grad).sum() > 0


def test_colour_is_contrast_times_shifted_brightness(rng):
    x = _images(rng, b=2, s=4)
    b, c = np.array([0.1, -0.3], np.float32), np.array([2.0, 0.5], np.float32)
    out = ada.apply_colour(x, tf.constant(b), tf.constant(c)).numpy()
    np.testing.assert_allclose(out, (x.numpy() + b[:, None, None, None]) * c[:, None, None, None],
                               rtol=1e-6)
    bri, con = ada.colour_parameters(4000, 0.5, tf.constant([0, 1]))
    applied = np.mean(bri.numpy() != 0)   # each with probability p
    assert 0.45 < applied < 0.55 and 0.45 < np.mean(con.numpy() != 1) < 0.55
    assert 0.15 < np.std(bri.numpy()[bri.numpy() != 0]) < 0.25   # N(0, 0.2)


# ----------------------------------------------------------------------------- DiffAugment


def test_translation_is_zero_padded_like_numpy(rng):
    x = _images(rng, b=3, s=8)
    dy, dx = np.array([2, -3, 0]), np.array([-1, 0, 8])
    out = da.translate(x, tf.constant(dy), tf.constant(dx)).numpy()
    for b in range(3):
        ref = np.zeros((8, 8), np.float32)
        for i in range(8):
            for j in range(8):
                if 0 <= i + dy[b] < 8 and 0 <= j + dx[b] < 8:
                    ref[i, j] = x.numpy()[b, i + dy[b], j + dx[b], 0]
        np.testing.assert_array_equal(out[b, :, :, 0], ref)
    assert da.translation_shift(64) == 8 and da.translation_shift(256) == 32  # 1/8


def test_cutout_removes_a_quarter_of_the_image(rng):
    s = 16
    side = da.cutout_side(s)
    assert side == 8 and da.cutout_side(256) == 128           # ratio 1/2: area 1/4
    x = tf.constant(rng.uniform(0.5, 1, (2, s, s, 1)).astype(np.float32))
    out = da.cutout(x, tf.constant([8, 2]), tf.constant([6, 15]), side).numpy()
    ref = x.numpy().copy()
    ref[0, 4:12, 2:10] = 0                                    # inside: 8 x 8 = 64 = 256 / 4
    ref[1, 0:6, 11:16] = 0                                    # clipped at the borders
    np.testing.assert_array_equal(out, ref)
    assert np.mean(out[0] == 0) == pytest.approx(0.25)
    y = da.diffaugment(x, tf.constant([5, 6]), ("cutout",)).numpy()
    assert all(0 < np.mean(y[i] == 0) <= 0.25 for i in range(2))


def test_diffaugment_colour_formulas_and_seeding(rng):
    x = _images(rng, b=2, s=4)
    out = da.brightness(x, tf.constant([0.25, -0.5])).numpy()
    np.testing.assert_allclose(out, x.numpy() + np.array([0.25, -0.5])[:, None, None, None],
                               rtol=1e-6)
    out = da.contrast(x, tf.constant([1.5, 0.5])).numpy()
    mean = x.numpy().mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, (x.numpy() - mean) * np.array([1.5, 0.5])[:, None, None,
                                                                                None] + mean,
                               rtol=1e-5, atol=1e-6)
    ops = ("brightness", "contrast", "translation", "cutout")
    a = da.diffaugment(x, tf.constant([1, 1]), ops).numpy()
    np.testing.assert_array_equal(a, da.diffaugment(x, tf.constant([1, 1]), ops).numpy())
    assert not np.array_equal(a, x.numpy())


def test_a_ranks_slice_gets_the_transforms_of_one_process(rng):
    x = _images(rng, b=4, s=8)
    seed = tf.constant([2, 9])
    whole = ada.ada_augment(x, 1.0, seed).numpy()
    part = ada.ada_augment(x[2:], 1.0, seed, global_batch=4, offset=2).numpy()
    np.testing.assert_allclose(part, whole[2:], atol=1e-6)
    ops = ("brightness", "contrast", "translation", "cutout")
    whole = da.diffaugment(x, seed, ops).numpy()
    part = da.diffaugment(x[1:3], seed, ops, global_batch=4, offset=1).numpy()
    np.testing.assert_allclose(part, whole[1:3], atol=1e-6)
