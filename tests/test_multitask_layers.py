"""The multitask network's maths (paper 000): FeatAug (eq. 1) against numpy, identity at
inference and its statistics in training; max-pool argmax indices and max-unpooling against
numpy; loss eq. 2 and DSC eq. 3 against numpy; the WCT's moments; the cosine schedule; the
augmentations' seeding; the network's save / load."""
from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tf_usaug.models.multitask.augment import augment_batch, augmix_mix  # noqa: E402
from tf_usaug.models.multitask.layers import (STD_EPSILON, FeatAug, MaxPoolWithArgmax,  # noqa
                                              MaxUnpool, feat_aug)
from tf_usaug.models.multitask.losses import dice_loss, dsc, multitask_loss  # noqa: E402
from tf_usaug.models.multitask.training_loop import cosine_learning_rate  # noqa: E402
from tf_usaug.models.multitask.wct import wct  # noqa: E402


def _moments(a):
    return a.mean(axis=(1, 2)), np.sqrt(a.var(axis=(1, 2)) + STD_EPSILON)


# ----------------------------------------------------------------------------- FeatAug


def test_feat_aug_matches_numpy_eq1_and_leaves_unselected_images(rng):
    a = rng.normal(2.0, 3.0, (3, 5, 6, 4)).astype(np.float32)
    ns = rng.normal(0, 0.1, (3, 1, 1, 4)).astype(np.float32)
    nm = rng.normal(0, 0.1, (3, 1, 1, 4)).astype(np.float32)
    apply = np.array([True, False, True])
    got = feat_aug(tf.constant(a), tf.constant(ns), tf.constant(nm), tf.constant(apply)).numpy()
    a64 = a.astype(np.float64)
    mu = a64.mean(axis=(1, 2), keepdims=True)
    sd = np.sqrt(a64.var(axis=(1, 2), keepdims=True) + STD_EPSILON)
    want = (a64 - mu) / sd * (sd + ns) + (mu + nm)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got[1], a[1])
    # the augmented channels' statistics are the shifted ones
    mean, std = _moments(got.astype(np.float64))
    np.testing.assert_allclose(mean[0], mu[0, 0, 0] + nm[0, 0, 0], atol=1e-4)
    np.testing.assert_allclose(std[0], np.abs(sd[0, 0, 0] + ns[0, 0, 0]), atol=1e-3)


def test_feataug_layer_is_identity_at_inference(rng):
    layer = FeatAug(p=1.0, sigma=0.5)
    x = tf.constant(rng.normal(size=(4, 8, 8, 3)).astype(np.float32))
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())  # default: inference
    assert int(layer.calls.numpy()) == 0


def test_feataug_layer_shifts_statistics_by_n_0_01_in_training(rng):
    layer = FeatAug(p=1.0, mu=0.0, sigma=0.1, seed=3)
    x = rng.normal(1.0, 2.0, (16, 12, 12, 64)).astype(np.float32)
    y = layer(tf.constant(x), training=True).numpy().astype(np.float64)
    mx, sx = _moments(x.astype(np.float64))
    my, sy = _moments(y)
    d_mean, d_std = (my - mx).ravel(), (sy - sx).ravel()  # 1024 draws each
    assert abs(d_mean.mean()) < 0.02 and abs(d_std.mean()) < 0.02
    assert 0.085 < d_mean.std() < 0.115 and 0.085 < d_std.std() < 0.115
    assert abs(np.corrcoef(d_mean, d_std)[0, 1]) < 0.15  # independent draws
    assert int(layer.calls.numpy()) == 1


def test_feataug_probability_and_reproducible_stream(rng):
    x = tf.constant(rng.normal(size=(400, 4, 4, 2)).astype(np.float32))
    layer = FeatAug(p=0.5, seed=7)
    y = layer(x, training=True).numpy()
    changed = np.any(np.abs(y - x.numpy()) > 1e-6, axis=(1, 2, 3))
    assert 0.4 < changed.mean() < 0.6
    z = layer(x, training=True).numpy()  # the next call: other draws
    assert not np.allclose(y, z)
    again = FeatAug(p=0.5, seed=7)
    again(x, training=False)
    np.testing.assert_array_equal(again(x, training=True).numpy(), y)  # same (seed, call 0)
    again.calls.assign(1)  # a restored counter continues the stream
    np.testing.assert_array_equal(again(x, training=True).numpy(), z)


# ----------------------------------------------------------------------------- pooling


def test_max_pool_indices_and_unpool_match_numpy(rng):
    x = rng.permutation(2 * 6 * 8 * 3).reshape(2, 6, 8, 3).astype(np.float32)  # no ties
    pooled, idx = MaxPoolWithArgmax()(tf.constant(x))
    pooled, idx = pooled.numpy(), idx.numpy()
    b, h, w, c = x.shape
    want = x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    np.testing.assert_array_equal(pooled, want)
    flat = x.ravel()
    np.testing.assert_array_equal(flat[idx], pooled)  # indices name the maxima, batch included
    bi, yi, xi, ci = np.unravel_index(idx, x.shape)
    np.testing.assert_array_equal(bi, np.arange(b)[:, None, None, None] + 0 * idx)
    np.testing.assert_array_equal(ci, np.arange(c)[None, None, None, :] + 0 * idx)
    assert np.all(yi // 2 == np.arange(h // 2)[None, :, None, None])
    assert np.all(xi // 2 == np.arange(w // 2)[None, None, :, None])
    restored = MaxUnpool()([tf.constant(pooled), tf.constant(idx)]).numpy()
    expect = np.zeros_like(flat)
    expect[idx.ravel()] = pooled.ravel()
    np.testing.assert_array_equal(restored, expect.reshape(x.shape))
    assert np.count_nonzero(restored) == pooled.size


def test_unpool_passes_gradients_to_the_pooled_values(rng):
    x = tf.constant(rng.normal(size=(1, 4, 4, 2)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        pooled, idx = MaxPoolWithArgmax()(x)
        y = tf.reduce_sum(MaxUnpool()([pooled, idx]) * 2.0)
    g = tape.gradient(y, x).numpy()
    mask = np.zeros(x.shape, bool).ravel()
    mask[idx.numpy().ravel()] = True
    np.testing.assert_allclose(g.ravel()[mask], 2.0)
    np.testing.assert_allclose(g.ravel()[~mask], 0.0)


# ----------------------------------------------------------------------------- losses


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _bce(z, t):
    p = _sigmoid(z)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def test_multitask_loss_matches_numpy_eq2(rng):
    seg = rng.normal(size=(3, 8, 8, 1))
    masks = (rng.random((3, 8, 8, 1)) < 0.3).astype(np.float64)
    cls = rng.normal(size=(3, 1))
    labels = np.array([1.0, 0.0, 1.0])
    got = multitask_loss(tf.constant(seg, tf.float32), tf.constant(cls, tf.float32),
                         tf.constant(masks, tf.float32), tf.constant(labels, tf.float32))
    p = _sigmoid(seg).reshape(3, -1)
    g = masks.reshape(3, -1)
    dice = 1 - (2 * (p * g).sum(1) + 1) / (p.sum(1) + g.sum(1) + 1)
    seg_ce = _bce(seg, masks).reshape(3, -1).mean(1)
    cls_ce = _bce(cls[:, 0], labels)
    np.testing.assert_allclose(got["dice"].numpy(), dice, rtol=1e-5)
    np.testing.assert_allclose(got["seg_ce"].numpy(), seg_ce, rtol=1e-5)
    np.testing.assert_allclose(got["cls_ce"].numpy(), cls_ce, rtol=1e-5)
    np.testing.assert_allclose(got["total"].numpy(), seg_ce + dice + cls_ce, rtol=1e-5)


def test_dice_loss_limits():
    masks = np.zeros((2, 4, 4, 1), np.float32)
    masks[0, :2] = 1
    perfect = np.where(masks > 0, 30.0, -30.0).astype(np.float32)
    np.testing.assert_allclose(dice_loss(perfect, masks).numpy(), [0.0, 0.0], atol=1e-6)
    wrong = -perfect
    assert dice_loss(wrong, masks).numpy()[0] > 0.85


def test_dsc_eq3_known_values():
    g = np.zeros((4, 4), bool)
    g[:2, :2] = True  # 4 pixels
    p = np.zeros((4, 4), bool)
    p[:2, :3] = True  # 6 pixels, TP 4, FP 2, FN 0
    assert dsc(p, g) == pytest.approx(8 / 10)
    assert dsc(g, g) == 1.0 and dsc(~g & g, g) == 0.0
    assert dsc(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0  # nothing to find, nothing found


# ----------------------------------------------------------------------------- WCT, schedule


def test_wct_gives_the_style_moments_and_keeps_the_outside(rng):
    # well-conditioned covariances: epsilon (1e-5) is negligible against their eigenvalues
    content = rng.normal(size=(16, 16, 3)) @ (rng.normal(size=(3, 3)) + 3 * np.eye(3))
    style = rng.normal(5.0, 1.0, (12, 12, 3)) @ (rng.normal(size=(3, 3)) + 3 * np.eye(3))
    out = wct(content, style).astype(np.float64).reshape(-1, 3)
    s = style.reshape(-1, 3)
    np.testing.assert_allclose(out.mean(0), s.mean(0), atol=1e-4)
    np.testing.assert_allclose(np.cov(out, rowvar=False, bias=True),
                               np.cov(s, rowvar=False, bias=True), atol=2e-3, rtol=2e-3)
    cr = np.zeros((16, 16), bool)
    cr[4:10, 3:12] = True
    sr = np.zeros((12, 12), bool)
    sr[:5] = True
    masked = wct(content, style, cr, sr).astype(np.float64)
    np.testing.assert_allclose(masked[~cr], content[~cr], atol=1e-5)
    np.testing.assert_allclose(masked[cr].mean(0), style[sr].mean(0), atol=1e-4)


def test_cosine_schedule_endpoints_and_monotone():
    rates = [cosine_learning_rate(e, 300, 5e-4, 1e-6) for e in range(301)]
    assert rates[0] == pytest.approx(5e-4) and rates[300] == pytest.approx(1e-6)
    assert rates[150] == pytest.approx((5e-4 + 1e-6) / 2)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert rates[1] == pytest.approx(1e-6 + 0.5 * (5e-4 - 1e-6) * (1 + math.cos(math.pi / 300)))


# ----------------------------------------------------------------------------- augmentation


def test_augmix_mix_and_batch_draws_do_not_depend_on_the_slicing(rng):
    a, b = rng.random((4, 4)).astype(np.float32), rng.random((4, 4)).astype(np.float32)
    np.testing.assert_allclose(augmix_mix(a, b, 0.25), 0.25 * a + 0.75 * b, rtol=1e-6)
    images = rng.random((4, 32, 32)).astype(np.float32)
    masks = (rng.random((4, 32, 32)) < 0.2).astype(np.float32)
    kw = dict(epoch=3, seed=5, traditional=True, mixstyle=False, maskaug=False, maskaug_p=0.5,
              alpha=1.0, n_references=0)
    whole, wm, _ = augment_batch(images, masks, np.arange(4), **kw)
    first, fm, _ = augment_batch(images[:2], masks[:2], np.arange(2), **kw)
    second, sm, _ = augment_batch(images[2:], masks[2:], np.arange(2, 4), **kw)
    np.testing.assert_array_equal(whole, np.concatenate([first, second]))  # rank-independent
    np.testing.assert_array_equal(wm, np.concatenate([fm, sm]))
    assert not np.allclose(whole, images)  # transformed
    other, _, _ = augment_batch(images, masks, np.arange(4), **{**kw, "epoch": 4})
    assert not np.allclose(other, whole)  # each epoch draws afresh
    assert set(np.unique(wm)) <= {0.0, 1.0}


# ----------------------------------------------------------------------------- the network


def test_network_shapes_save_and_load(tmp_path, rng):
    from tensorflow import keras

    from tf_usaug.models.multitask.networks import build_multitask_net

    net = build_multitask_net(32, (4, 8, 8, 8), head_channels=8, feataug=True, seed=1)
    x = rng.random((2, 32, 32, 1)).astype(np.float32)
    seg, cls = net(x, training=False)
    assert seg.shape == (2, 32, 32, 1) and cls.shape == (2, 1)
    names = [l.name for l in net.layers]
    assert sum(n.endswith("_feataug") for n in names) == 4
    assert sum(n.endswith("_unpool") for n in names) == 4
    assert [l.filters for l in net.layers if l.name == "cls_conv"] == [8]
    net.save(str(tmp_path / "m.keras"))
    back = keras.models.load_model(str(tmp_path / "m.keras"), compile=False)
    s2, c2 = back(x, training=False)
    np.testing.assert_allclose(s2.numpy(), seg.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c2.numpy(), cls.numpy(), rtol=1e-5, atol=1e-6)
    assert isinstance(back.get_layer("enc2_feataug"), FeatAug)
    assert back.get_layer("enc2_feataug").get_config()["sigma"] == 0.1
