"""tf_usaug.nst.losses against independent float64 numpy references and analytic identities.

Tiny tensors only: the whole file runs in seconds on a CPU.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_usaug.nst import losses as L

B, H, W, C = 2, 4, 5, 3


# ----------------------------------------------------------------------------- numpy references


def np_gram(feats, mask=None):
    """eq. 5 for one image [h, w, c] -> [c, c]."""
    f = feats if mask is None else feats * mask[..., None]
    f = f.reshape(-1, f.shape[-1])
    return f.T @ f


def np_gram_loss(gen, style):
    """eq. 4 for one image, same size."""
    m, n = gen.shape[0] * gen.shape[1], gen.shape[-1]
    return np.sum((np_gram(gen) - np_gram(style)) ** 2) / (4 * n**2 * m**2)


def np_mmd2_brute(x, y, kernel, px=None, py=None):
    """Biased MMD^2 by explicit O(M^2) kernel sums; x [M, c], y [K, c], probabilities px, py."""
    px = np.full(len(x), 1 / len(x)) if px is None else px / px.sum()
    py = np.full(len(y), 1 / len(y)) if py is None else py / py.sum()
    kxx = np.array([[kernel(a, b) for b in x] for a in x])
    kyy = np.array([[kernel(a, b) for b in y] for a in y])
    kxy = np.array([[kernel(a, b) for b in y] for a in x])
    return px @ kxx @ px + py @ kyy @ py - 2 * px @ kxy @ py


def np_pooled_sigma2(x, y, px=None, py=None):
    """Mean squared distance over all pairs of the mixture (P_x + P_y) / 2, brute force."""
    px = np.full(len(x), 1 / len(x)) if px is None else px / px.sum()
    py = np.full(len(y), 1 / len(y)) if py is None else py / py.sum()
    z, p = np.concatenate([x, y]), np.concatenate([px, py]) / 2
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    return p @ d2 @ p


def np_hazen_match(source, reference):
    """Histogram specification of a 1-D source to a 1-D reference by Hazen quantiles."""
    s = len(source)
    quantiles = np.quantile(reference, (np.arange(s) + 0.5) / s, method="hazen")
    out = np.empty(s)
    out[np.argsort(source, kind="stable")] = quantiles
    return out


def feats(rng, *shape):
    return rng.normal(size=shape).astype(np.float64)


def t(x):
    return tf.constant(x)


# ----------------------------------------------------------------------------- Gram


def test_gram_matrix_matches_numpy_with_and_without_mask(rng):
    f = feats(rng, B, H, W, C)
    mask = rng.random((B, H, W))
    got = L.gram_matrix(t(f)).numpy()
    got_masked = L.gram_matrix(t(f), t(mask)).numpy()
    got_masked4 = L.gram_matrix(t(f), t(mask[..., None])).numpy()
    for b in range(B):
        np.testing.assert_allclose(got[b], np_gram(f[b]), rtol=1e-12)
        np.testing.assert_allclose(got_masked[b], np_gram(f[b], mask[b]), rtol=1e-12)
    np.testing.assert_allclose(got_masked4, got_masked, rtol=1e-12)


def test_gram_style_loss_is_eq4(rng):
    g, s = feats(rng, B, H, W, C), feats(rng, B, H, W, C)
    got = L.gram_style_loss(t(g), L.gram_matrix(t(s))).numpy()
    np.testing.assert_allclose(got, [np_gram_loss(g[b], s[b]) for b in range(B)], rtol=1e-10)
    # explicit M scales as 1/M^2
    got_m = L.gram_style_loss(t(g), L.gram_matrix(t(s)), num_positions=2 * H * W).numpy()
    np.testing.assert_allclose(got_m, got / 4, rtol=1e-10)


# ----------------------------------------------------------------------------- MMD kernels


def test_poly_mmd_equals_gram_loss_and_brute_force(rng):
    g, s = feats(rng, B, H, W, C), feats(rng, B, H, W, C)
    mmd_loss = L.mmd_style_loss(t(g), t(s), kernel="poly").numpy()
    gram_loss = L.gram_style_loss(t(g), L.gram_matrix(t(s))).numpy()
    np.testing.assert_allclose(mmd_loss, gram_loss, rtol=1e-10)  # Li et al. 2017, eq. 6
    poly = lambda a, b: float(a @ b) ** 2  # noqa: E731
    for b in range(B):
        brute = np_mmd2_brute(g[b].reshape(-1, C), s[b].reshape(-1, C), poly)
        np.testing.assert_allclose(mmd_loss[b], brute / (4 * C**2), rtol=1e-10)


def test_poly_mmd_with_offset_and_unequal_sizes_matches_brute_force(rng):
    g, s = feats(rng, 1, 3, 4, C), feats(rng, 1, 2, 2, 5, C)  # 12 vs 20 samples
    c = 0.7
    got = L.mmd2(t(g), t(s), "poly", poly_offset=c).numpy()[0]
    brute = np_mmd2_brute(g.reshape(-1, C), s.reshape(-1, C), lambda a, b: (a @ b + c) ** 2)
    np.testing.assert_allclose(got, brute, rtol=1e-10)


def test_linear_mmd_is_squared_distance_of_means(rng):
    g, s = feats(rng, B, H, W, C), feats(rng, B, 2, 3, 3, C)
    got = L.mmd2(t(g), t(s), "linear").numpy()
    want = [np.sum((g[b].reshape(-1, C).mean(0) - s[b].reshape(-1, C).mean(0)) ** 2)
            for b in range(B)]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    brute = np_mmd2_brute(g[0].reshape(-1, C), s[0].reshape(-1, C), lambda a, b: a @ b)
    np.testing.assert_allclose(got[0], brute, rtol=1e-9)


def test_gaussian_mmd_matches_brute_force_with_estimated_bandwidth(rng):
    g, s = feats(rng, B, H, W, C), feats(rng, B, 2, 3, 3, C) + 0.5
    got = L.mmd2(t(g), t(s), "gaussian").numpy()
    for b in range(B):
        x, y = g[b].reshape(-1, C), s[b].reshape(-1, C)
        sigma2 = np_pooled_sigma2(x, y)
        kern = lambda a, c, s2=sigma2: np.exp(-np.sum((a - c) ** 2) / (2 * s2))  # noqa: E731
        np.testing.assert_allclose(got[b], np_mmd2_brute(x, y, kern), rtol=1e-9)


def test_gaussian_mmd_fixed_bandwidth_and_weights_match_brute_force(rng):
    g, s = feats(rng, 1, H, W, C), feats(rng, 1, H, W, C)
    wg, ws = rng.random((1, H, W)), rng.random((1, H, W))
    got = L.mmd2(t(g), t(s), "gaussian", x_weights=t(wg), y_weights=t(ws), sigma2=2.5).numpy()
    kern = lambda a, c: np.exp(-np.sum((a - c) ** 2) / 5.0)  # noqa: E731
    want = np_mmd2_brute(g.reshape(-1, C), s.reshape(-1, C), kern, wg.ravel(), ws.ravel())
    np.testing.assert_allclose(got[0], want, rtol=1e-9)


def test_gaussian_mmd_subsamples_by_stride_with_full_data_bandwidth(rng):
    g, s = feats(rng, 1, 4, 4, C), feats(rng, 1, 4, 4, C) * 2
    x, y = g.reshape(-1, C), s.reshape(-1, C)
    sigma2 = np_pooled_sigma2(x, y)  # bandwidth from all 16 + 16 positions
    kern = lambda a, c: np.exp(-np.sum((a - c) ** 2) / (2 * sigma2))  # noqa: E731
    got = L.mmd2(t(g), t(s), "gaussian", max_samples=5).numpy()[0]  # stride ceil(16/5) = 4
    np.testing.assert_allclose(got, np_mmd2_brute(x[0::4], y[0::4], kern), rtol=1e-9)
    got_off = L.mmd2(t(g), t(s), "gaussian", max_samples=5, sample_offset=6).numpy()[0]
    np.testing.assert_allclose(got_off, np_mmd2_brute(x[2::4], y[0::4], kern), rtol=1e-9)


def test_bn_kernel_matches_numpy(rng):
    g, s = feats(rng, B, H, W, C), feats(rng, B, 2, H, W, C) * 3
    eps = 1e-5
    got = L.mmd2(t(g), t(s), "bn", bn_epsilon=eps).numpy()
    for b in range(B):
        x, y = g[b].reshape(-1, C), s[b].reshape(-1, C)
        want = (np.sum((x.mean(0) - y.mean(0)) ** 2)
                + np.sum((np.sqrt(x.var(0) + eps) - np.sqrt(y.var(0) + eps)) ** 2))
        np.testing.assert_allclose(got[b], want, rtol=1e-10)


@pytest.mark.parametrize("kernel", L.MMD_KERNELS)
def test_mmd_labels_sum_per_label_mmds_and_skip_empty_labels(rng, kernel):
    g, s = feats(rng, 1, H, W, C), feats(rng, 1, H, W, C)
    wg, ws = rng.random((1, 2, H, W)), rng.random((1, 2, H, W))
    ws_empty = ws.copy()
    ws_empty[:, 1] = 0.0
    kw = dict(sigma2=1.5) if kernel == "gaussian" else {}
    per_label = [L.mmd2(t(g), t(s), kernel, t(wg[:, d]), t(ws[:, d]), **kw).numpy()
                 for d in range(2)]
    got = L.mmd2(t(g), t(s), kernel, t(wg), t(ws), **kw).numpy()
    np.testing.assert_allclose(got, per_label[0] + per_label[1], rtol=1e-10)
    got_empty = L.mmd2(t(g), t(s), kernel, t(wg), t(ws_empty), **kw).numpy()
    np.testing.assert_allclose(got_empty, per_label[0], rtol=1e-10)


# ----------------------------------------------------------------------------- histograms / mr


def test_histogram_specification_equal_sizes_is_exact_and_keeps_rank_order(rng):
    src, ref = feats(rng, B, H, W, C), rng.exponential(size=(B, H, W, C))
    out = L.histogram_specification(t(src), t(ref)).numpy()
    assert out.shape == src.shape
    for b in range(B):
        for ch in range(C):
            o, s, r = out[b, ..., ch].ravel(), src[b, ..., ch].ravel(), ref[b, ..., ch].ravel()
            np.testing.assert_allclose(np.sort(o), np.sort(r), rtol=1e-12)  # target histogram
            np.testing.assert_array_equal(np.argsort(o), np.argsort(s))  # rank order kept


def test_histogram_specification_unequal_sizes_matches_hazen_quantiles(rng):
    src, ref = feats(rng, 1, 3, 4, 2), rng.gamma(2.0, size=(1, 3, 5, 7, 2))
    out = L.histogram_specification(t(src), t(ref)).numpy()
    for ch in range(2):
        want = np_hazen_match(src[0, ..., ch].ravel(), ref[0, ..., ch].ravel())
        np.testing.assert_allclose(out[0, ..., ch].ravel(), want, rtol=1e-12)


def test_multi_reference_target_is_max_then_histogram_match(rng):
    style = feats(rng, B, 3, H, W, C)
    got = L.multi_reference_target(t(style)).numpy()
    for b in range(B):
        peak = style[b].max(axis=0)
        for ch in range(C):
            want = np_hazen_match(peak[..., ch].ravel(), style[b, ..., ch].ravel())
            np.testing.assert_allclose(got[b, ..., ch].ravel(), want, rtol=1e-12)
    one = feats(rng, B, 1, H, W, C)
    np.testing.assert_allclose(L.multi_reference_target(t(one)).numpy(), one[:, 0], rtol=1e-12)


def test_one_reference_multi_reference_loss_equals_gram_loss(rng):
    g, s = feats(rng, B, H, W, C), feats(rng, B, 1, H, W, C)
    target = L.multi_reference_target(t(s))
    got = L.multi_reference_style_loss(t(g), target).numpy()
    np.testing.assert_allclose(got, [np_gram_loss(g[b], s[b, 0]) for b in range(B)], rtol=1e-10)
    cfg_mr, cfg_gram = L.StyleLossConfig(kind="multi_reference"), L.StyleLossConfig(kind="gram")
    mr = L.style_loss({"l": t(g)}, L.build_style_targets({"l": t(s)}, cfg_mr), cfg_mr).numpy()
    gram = L.style_loss({"l": t(g)}, L.build_style_targets({"l": t(s)}, cfg_gram), cfg_gram)
    np.testing.assert_allclose(mr, gram.numpy(), rtol=1e-10)


# ----------------------------------------------------------------------------- proposed / config


def _loss(kind, gen, style, **cfg_kw):
    cfg = L.StyleLossConfig(kind=kind, **cfg_kw)
    return L.style_loss(gen, L.build_style_targets(style, cfg), cfg).numpy()


def test_proposed_is_weighted_sum_of_mmd_and_multi_reference(rng):
    gen = {"a": t(feats(rng, B, H, W, C)), "b": t(feats(rng, B, 2, 3, 4))}
    style = {"a": t(feats(rng, B, 3, H, W, C)), "b": t(feats(rng, B, 3, 3, 2, 4))}
    for kernel in L.MMD_KERNELS:
        kw = dict(mmd_kernel=kernel, layer_weights={"a": 0.5, "b": 2.0})
        got = _loss("proposed", gen, style, mmd_weight=0.3, multi_reference_weight=1.7, **kw)
        want = (0.3 * _loss("mmd", gen, style, **kw)
                + 1.7 * _loss("multi_reference", gen, style, layer_weights=kw["layer_weights"]))
        np.testing.assert_allclose(got, want, rtol=1e-10)


def test_proposed_with_one_reference_is_twice_the_gram_loss(rng):
    g, s = feats(rng, B, H, W, C), feats(rng, B, H, W, C)
    got = _loss("proposed", {"l": t(g)}, {"l": t(s)})
    np.testing.assert_allclose(got, [2 * np_gram_loss(g[b], s[b]) for b in range(B)], rtol=1e-10)


def test_layer_weights_weight_the_per_layer_losses(rng):
    gen = {"a": t(feats(rng, B, H, W, C)), "b": t(feats(rng, B, 2, 2, C)), "extra": t(0.0)}
    style = {"a": t(feats(rng, B, H, W, C)), "b": t(feats(rng, B, 2, 2, C))}
    a = _loss("gram", {"a": gen["a"]}, {"a": style["a"]})
    b = _loss("gram", {"b": gen["b"]}, {"b": style["b"]})
    np.testing.assert_allclose(_loss("gram", gen, style), a + b, rtol=1e-10)  # w_l = 1
    np.testing.assert_allclose(_loss("gram", gen, style, layer_weights={"a": 0.25, "b": 3.0}),
                               0.25 * a + 3.0 * b, rtol=1e-10)


def test_style_loss_accepts_a_different_generated_size(rng):
    # Gram statistics are per position, so a 6x6 generated map compares with 4x5 references
    # like eq. 4 with the target Gram rescaled to the generated image's M.
    g, s = feats(rng, B, 6, 6, C), feats(rng, B, H, W, C)
    got = _loss("gram", {"l": t(g)}, {"l": t(s)})
    scaled = L.gram_matrix(t(s)) * (36 / (H * W))
    np.testing.assert_allclose(got, L.gram_style_loss(t(g), scaled).numpy(), rtol=1e-10)


@pytest.mark.parametrize("mode", ["gram", "feature"])
def test_average_style_targets(rng, mode):
    g, s = feats(rng, B, H, W, C), feats(rng, B, 3, H, W, C)
    avg = L.average_style_gram(t(s), mode=mode).numpy()
    for b in range(B):
        want = (np.mean([np_gram(s[b, r]) for r in range(3)], axis=0) if mode == "gram"
                else np_gram(s[b].mean(axis=0)))
        np.testing.assert_allclose(avg[b], want, rtol=1e-10)
    got = _loss("gram", {"l": t(g)}, {"l": t(s)}, average=mode)
    np.testing.assert_allclose(got, L.gram_style_loss(t(g), t(avg)).numpy(), rtol=1e-10)
    if mode == "gram":  # pooling equally sized references is the Gram-space average
        np.testing.assert_allclose(_loss("gram", {"l": t(g)}, {"l": t(s)}), got, rtol=1e-10)


# ----------------------------------------------------------------------------- masks


def test_downsample_mask_preserves_mean_coverage(rng):
    mask = (rng.random((B, 3, 16, 20)) > 0.6).astype(np.float32)
    for hw in [(8, 10), (5, 7), (3, 3), (1, 1)]:
        low = L.downsample_mask(t(mask), hw).numpy()
        assert low.shape == (B, 3, *hw)
        assert low.min() >= 0.0 and low.max() <= 1.0 + 1e-6
        np.testing.assert_allclose(low.mean(axis=(2, 3)), mask.mean(axis=(2, 3)), atol=1e-6)
        np.testing.assert_allclose(  # the box filter of TF's own area resize
            low, tf.transpose(tf.image.resize(np.moveaxis(mask, 1, -1), hw, method="area"),
                              [0, 3, 1, 2]).numpy(), atol=1e-6)
    low = L.downsample_mask(t(mask[:, 0]), (4, 5)).numpy()
    np.testing.assert_allclose(low, mask[:, 0].reshape(B, 4, 4, 5, 4).mean(axis=(2, 4)),
                               atol=1e-6)


def test_full_mask_equals_no_mask(rng):
    g, s = feats(rng, B, H, W, C), feats(rng, B, 2, H, W, C)
    full = np.ones((B, 1, 8, 10))
    np.testing.assert_allclose(L.masked_gram_style_loss(t(g), t(s[:, 0]), t(full)).numpy(),
                               L.gram_style_loss(t(g), L.gram_matrix(t(s[:, 0]))).numpy(),
                               rtol=1e-10)
    for kind in L.KINDS:
        cfg = L.StyleLossConfig(kind=kind)
        targets = L.build_style_targets({"l": t(s)}, cfg)
        plain = L.style_loss({"l": t(g)}, targets, cfg).numpy()
        np.testing.assert_allclose(L.style_loss({"l": t(g)}, targets, cfg, masks=t(full)),
                                   plain, rtol=1e-10)
        masked_targets = L.build_style_targets({"l": t(s)}, cfg, style_masks=t(full))
        np.testing.assert_allclose(L.style_loss({"l": t(g)}, masked_targets, cfg, t(full)),
                                   plain, rtol=1e-10)


def _np_masked_loss(g, s, mask_g, mask_s):
    """sum over labels of 1/(4N^2) ||S_d(g) - S_d(s)||^2, S_d = sum m^2 f f^T / sum m^2."""
    total = 0.0
    for d in range(mask_g.shape[0]):
        sg = np_gram(g, mask_g[d]) / np.sum(mask_g[d] ** 2)
        ss = np_gram(s, mask_s[d]) / np.sum(mask_s[d] ** 2)
        total += np.sum((sg - ss) ** 2) / (4 * g.shape[-1] ** 2)
    return total


def _label_masks(rng, shape, labels=3):
    """One-hot label masks [B, labels, h, w] at image resolution, every label present."""
    ids = rng.integers(0, labels, size=shape)
    ids[:, :labels, 0] = np.arange(labels)
    return np.stack([(ids == d) for d in range(labels)], axis=1).astype(np.float64)


def np_block_mean(masks, factor):
    """Area downsampling by an integer factor: [B, D, fh, fw] -> [B, D, h, w]."""
    b, d, hh, ww = masks.shape
    return masks.reshape(b, d, hh // factor, factor, ww // factor, factor).mean(axis=(3, 5))


def test_masked_style_loss_eq_2_5_and_3_1_match_numpy(rng):
    g, s = feats(rng, B, H, W, C), feats(rng, B, H, W, C)
    # masks at twice the layer resolution: downsampling gives soft boundary values
    content_masks, style_masks = _label_masks(rng, (B, 8, 10)), _label_masks(rng, (B, 8, 10))
    content_low, style_low = np_block_mean(content_masks, 2), np_block_mean(style_masks, 2)
    assert np.any((content_low > 0) & (content_low < 1))
    eq31 = L.masked_gram_style_loss(t(g), t(s), t(content_masks)).numpy()
    eq25 = L.masked_gram_style_loss(t(g), t(s), t(content_masks), t(style_masks)).numpy()
    for b in range(B):
        np.testing.assert_allclose(eq31[b], _np_masked_loss(g[b], s[b], content_low[b],
                                                             content_low[b]), rtol=1e-6)
        np.testing.assert_allclose(eq25[b], _np_masked_loss(g[b], s[b], content_low[b],
                                                             style_low[b]), rtol=1e-6)
    cfg = L.StyleLossConfig(kind="gram")
    via_targets_31 = L.style_loss({"l": t(g)}, L.build_style_targets({"l": t(s)}, cfg), cfg,
                                  masks=t(content_masks)).numpy()
    targets_25 = L.build_style_targets({"l": t(s)}, cfg, style_masks=t(style_masks))
    via_targets_25 = L.style_loss({"l": t(g)}, targets_25, cfg, masks=t(content_masks)).numpy()
    np.testing.assert_allclose(via_targets_31, eq31, rtol=1e-10)
    # eq. 3.1 precomputed: the content masks handed over as style masks
    targets_31 = L.build_style_targets({"l": t(s)}, cfg, style_masks=t(content_masks))
    np.testing.assert_allclose(L.style_loss({"l": t(g)}, targets_31, cfg, t(content_masks)),
                               eq31, rtol=1e-10)
    np.testing.assert_allclose(via_targets_25, eq25, rtol=1e-10)


def test_gram_space_average_with_unequal_reference_masks(rng):
    g, s = feats(rng, 1, H, W, C), feats(rng, 1, 2, H, W, C)
    content = np.ones((1, 1, H, W))
    style = np.zeros((1, 2, 1, H, W))
    style[0, 0, 0] = 1.0  # reference 0 fully, reference 1 only in its top row
    style[0, 1, 0, 0] = 1.0
    cfg_gram = L.StyleLossConfig(kind="gram", average="gram")
    cfg_pool = L.StyleLossConfig(kind="gram")
    target_gram = L.build_style_targets({"l": t(s)}, cfg_gram, style_masks=t(style))
    target_pool = L.build_style_targets({"l": t(s)}, cfg_pool, style_masks=t(style))
    got_gram = L.style_loss({"l": t(g)}, target_gram, cfg_gram, masks=t(content)).numpy()
    got_pool = L.style_loss({"l": t(g)}, target_pool, cfg_pool, masks=t(content)).numpy()
    per_ref = [np_gram(s[0, r], style[0, r, 0]) / style[0, r, 0].sum() for r in range(2)]
    pooled = (np_gram(s[0, 0], style[0, 0, 0]) + np_gram(s[0, 1], style[0, 1, 0])) / (H * W + W)
    gen_moment = np_gram(g[0]) / (H * W)
    np.testing.assert_allclose(got_gram, np.sum((gen_moment - np.mean(per_ref, axis=0)) ** 2)
                               / (4 * C**2), rtol=1e-10)
    np.testing.assert_allclose(got_pool, np.sum((gen_moment - pooled) ** 2) / (4 * C**2),
                               rtol=1e-10)


def test_per_reference_style_masks_match_shared_masks_when_equal(rng):
    g, s = feats(rng, 1, H, W, C), feats(rng, 1, 2, H, W, C)
    masks = (rng.random((1, 2, H, W)) > 0.4).astype(np.float64)
    masks[:, :, 0, 0] = 1.0
    per_ref = np.repeat(masks[:, None], 2, axis=1)  # [B, n, D, H, W]
    for kind in L.KINDS:
        cfg = L.StyleLossConfig(kind=kind)
        shared = L.style_loss({"l": t(g)}, L.build_style_targets({"l": t(s)}, cfg, t(masks)),
                              cfg, masks=t(masks)).numpy()
        each = L.style_loss({"l": t(g)}, L.build_style_targets({"l": t(s)}, cfg, t(per_ref)),
                            cfg, masks=t(masks)).numpy()
        np.testing.assert_allclose(each, shared, rtol=1e-10)


# ----------------------------------------------------------------------------- content and TV


def test_content_loss_eq2_normalisation_and_weights(rng):
    g, c = feats(rng, B, H, W, C), feats(rng, B, H, W, C)
    raw = L.content_loss(t(g), t(c), normalize=False).numpy()
    np.testing.assert_allclose(raw, 0.5 * ((g - c) ** 2).sum(axis=(1, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(L.content_loss(t(g), t(c)).numpy(), raw / (H * W * C), rtol=1e-12)
    ones = np.ones((B, H, W))
    np.testing.assert_allclose(L.content_loss(t(g), t(c), t(ones)).numpy(),
                               L.content_loss(t(g), t(c)).numpy(), rtol=1e-12)
    weight = rng.random((B, H, W))
    want = 0.5 * (weight[..., None] * (g - c) ** 2).sum(axis=(1, 2, 3)) / (H * W * C)
    np.testing.assert_allclose(L.content_loss(t(g), t(c), t(weight)).numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(L.content_loss(t(g), t(c), t(weight[..., None])).numpy(), want,
                               rtol=1e-12)
    # a weight map at twice the layer resolution is area-pooled to it first
    fine = np.repeat(np.repeat(weight, 2, axis=1), 2, axis=2).astype(np.float32)
    np.testing.assert_allclose(L.content_loss(t(g), t(c), t(fine)).numpy(), want, rtol=1e-6)


def test_total_variation_matches_numpy_and_tf(rng):
    img = rng.random((B, 6, 7, 1))
    want = (np.abs(np.diff(img, axis=1)).sum(axis=(1, 2, 3))
            + np.abs(np.diff(img, axis=2)).sum(axis=(1, 2, 3)))
    got = L.total_variation_loss(t(img), normalize=False).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(got, tf.image.total_variation(t(img)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(L.total_variation_loss(t(img)).numpy(), want / 42, rtol=1e-12)
    np.testing.assert_allclose(L.total_variation_loss(t(np.full((1, 5, 5, 1), 0.3))), [0.0])


# ----------------------------------------------------------------------------- zero, gradients


def _all_losses():
    """(name, fn(gen, other) -> [B]) for every loss, with other the target-side features."""
    def via_config(kind, **kw):
        cfg = L.StyleLossConfig(kind=kind, **kw)
        return lambda gen, other: L.style_loss({"l": gen}, L.build_style_targets(
            {"l": tf.stack([other, other * 0.5 + 0.2], axis=1)}, cfg), cfg)

    cases = [
        ("content", lambda gen, other: L.content_loss(gen, other)),
        ("content_weighted", lambda gen, other: L.content_loss(gen, other,
                                                               tf.ones_like(gen[..., 0]))),
        ("gram", lambda gen, other: L.gram_style_loss(gen, L.gram_matrix(other))),
        ("multi_reference", lambda gen, other: L.multi_reference_style_loss(
            gen, L.multi_reference_target(other[:, None]))),
        ("masked_gram", lambda gen, other: L.masked_gram_style_loss(
            gen, other, tf.ones([B, 2, 8, 10], gen.dtype) * [[[[1.0]], [[0.5]]]])),
        ("tv_difference", lambda gen, other: L.total_variation_loss(gen - other)),
    ]
    cases += [(f"mmd_{k}", lambda gen, other, k=k: L.mmd_style_loss(gen, other, k))
              for k in L.MMD_KERNELS]
    cases += [(f"config_{kind}", via_config(kind)) for kind in L.KINDS]
    cases += [("config_proposed_gaussian", via_config("proposed", mmd_kernel="gaussian")),
              ("config_proposed_bn", via_config("proposed", mmd_kernel="bn")),
              ("config_gram_feature_avg", via_config("gram", average="feature"))]
    return cases


ZERO_AT_IDENTITY = {"content", "content_weighted", "gram", "multi_reference", "masked_gram",
                    "tv_difference", "mmd_poly", "mmd_linear", "mmd_gaussian", "mmd_bn"}


@pytest.mark.parametrize("name,fn", _all_losses(), ids=[c[0] for c in _all_losses()])
def test_losses_zero_at_identity_and_finite_gradients(rng, name, fn):
    base = np.maximum(feats(rng, B, H, W, C), 0.0)  # ReLU-like, with zeros
    base[..., 0] = 0.0  # a dead channel: zero variance (bn sqrt) and zero Gram row
    points = {"identical": (base, base), "different": (base, base[::-1] * 1.5 + 0.1),
              "constant": (np.full((B, H, W, C), 0.5), np.full((B, H, W, C), 0.5))}
    for point, (gen, other) in points.items():
        gen_v = tf.Variable(gen)
        with tf.GradientTape() as tape:
            value = fn(gen_v, t(other))
        grad = tape.gradient(value, gen_v)
        assert value.shape == (B,), (name, point)
        assert grad is not None and np.all(np.isfinite(grad.numpy())), (name, point)
        if point != "different" and name in ZERO_AT_IDENTITY:
            np.testing.assert_allclose(value.numpy(), 0.0, atol=1e-12, err_msg=f"{name} {point}")
            np.testing.assert_allclose(grad.numpy(), 0.0, atol=1e-9, err_msg=f"{name} {point}")
        if point == "different":
            assert np.all(value.numpy() > 0), name


def test_histogram_specification_gradient_reaches_reference_finitely(rng):
    src, ref = t(feats(rng, 1, 3, 3, 2)), tf.Variable(feats(rng, 1, 2, 3, 3, 2))
    with tf.GradientTape() as tape:
        out = L.histogram_specification(src, ref)
        value = tf.reduce_sum(out * out)
    grad = tape.gradient(value, ref).numpy()
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_gaussian_bandwidth_is_held_constant(rng):
    g, s = feats(rng, 1, H, W, C), feats(rng, 1, H, W, C) + 1.0
    sigma2 = np_pooled_sigma2(g.reshape(-1, C), s.reshape(-1, C))
    grads = []
    for kw in ({}, {"sigma2": sigma2}):
        v = tf.Variable(g)
        with tf.GradientTape() as tape:
            value = L.mmd2(v, t(s), "gaussian", **kw)
        grads.append(tape.gradient(value, v).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-9)


# ----------------------------------------------------------------------------- batch, graph


@pytest.mark.parametrize("kind,kernel", [("proposed", "poly"), ("gram", "poly"),
                                         ("mmd", "gaussian"), ("mmd", "bn"),
                                         ("multi_reference", "poly")])
def test_batch_equals_stack_of_single_images(rng, kind, kernel):
    gen = {"a": feats(rng, 3, H, W, C), "b": feats(rng, 3, 2, 3, 4)}
    style = {"a": feats(rng, 3, 2, H, W, C), "b": feats(rng, 3, 2, 2, 2, 4)}
    masks = (rng.random((3, 2, 8, 10)) > 0.3).astype(np.float64)
    masks[:, :, 0, 0] = 1.0
    cfg = L.StyleLossConfig(kind=kind, mmd_kernel=kernel, gaussian_max_samples=7)
    for m in (None, masks):
        batch = L.style_loss({k: t(v) for k, v in gen.items()},
                             L.build_style_targets({k: t(v) for k, v in style.items()}, cfg),
                             cfg, masks=None if m is None else t(m)).numpy()
        single = [L.style_loss({k: t(v[i:i + 1]) for k, v in gen.items()},
                               L.build_style_targets({k: t(v[i:i + 1]) for k, v in style.items()},
                                                     cfg),
                               cfg, masks=None if m is None else t(m[i:i + 1])).numpy()[0]
                  for i in range(3)]
        np.testing.assert_allclose(batch, single, rtol=1e-10)
    c = feats(rng, 3, H, W, C)
    np.testing.assert_allclose(L.content_loss(t(gen["a"]), t(c)).numpy(),
                               [L.content_loss(t(gen["a"][i:i + 1]), t(c[i:i + 1])).numpy()[0]
                                for i in range(3)], rtol=1e-12)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_style_loss_in_tf_function_matches_eager_and_differentiates(rng, jit_compile):
    cfg = L.StyleLossConfig(mmd_kernel="gaussian", gaussian_max_samples=8)
    style = {"a": tf.constant(feats(rng, B, 2, H, W, C), tf.float32)}
    targets = L.build_style_targets(style, cfg)
    gen = tf.Variable(feats(rng, B, H, W, C).astype(np.float32))
    masks = tf.constant((rng.random((B, 2, 7, 9)) > 0.3).astype(np.float32))  # soft when pooled

    @tf.function(jit_compile=jit_compile)
    def step(targets, masks, offset):
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(L.style_loss({"a": gen}, targets, cfg, masks, offset))
        return value, tape.gradient(value, gen)

    value, grad = step(targets, masks, tf.constant(3))
    eager = tf.reduce_sum(L.style_loss({"a": gen}, targets, cfg, masks, 3))
    np.testing.assert_allclose(value.numpy(), eager.numpy(), rtol=1e-5)
    assert np.all(np.isfinite(grad.numpy()))


def test_half_precision_inputs_are_promoted(rng):
    g = tf.constant(feats(rng, B, H, W, C), tf.float16)
    s = tf.constant(feats(rng, B, H, W, C), tf.float16)
    got = L.mmd_style_loss(g, s)
    assert got.dtype == tf.float32
    want = L.mmd_style_loss(tf.cast(g, tf.float32), tf.cast(s, tf.float32))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs", [dict(kind="wct"), dict(mmd_kernel="rbf"),
                                    dict(average="median"), dict(mmd_weight=-1.0),
                                    dict(kind="multi_reference", average="gram"),
                                    dict(gaussian_max_samples=0), dict(gaussian_sigma2=0.0),
                                    dict(poly_offset=-0.5), dict(bn_epsilon=0.0)])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        L.StyleLossConfig(**kwargs)


def test_config_defaults_are_the_papers():
    cfg = L.StyleLossConfig()
    assert (cfg.kind, cfg.mmd_kernel, cfg.poly_offset) == ("proposed", "poly", 0.0)
    assert (cfg.mmd_weight, cfg.multi_reference_weight, cfg.average) == (1.0, 1.0, None)
    assert cfg.layer_weight("any_layer") == 1.0


def test_bad_inputs_raise_clear_errors(rng):
    g, s = t(feats(rng, B, H, W, C)), t(feats(rng, B, 2, H, W, C))
    with pytest.raises(ValueError, match="unknown MMD kernel"):
        L.mmd2(g, s, "rbf")
    with pytest.raises(ValueError, match="rank"):
        L.gram_matrix(s)
    with pytest.raises(ValueError, match="differ"):
        L.content_loss(g, t(feats(rng, B, H, W, C + 1)))
    with pytest.raises(ValueError, match="weights"):
        L.mmd2(g, s, "linear", x_weights=t(np.ones((B, H))))
    with pytest.raises(ValueError, match="mode"):
        L.average_style_gram(s, mode="median")
    cfg = L.StyleLossConfig(kind="gram")
    targets = L.build_style_targets({"l": s}, cfg, style_masks=t(np.ones((B, 2, 8, 10))))
    with pytest.raises(ValueError, match="content masks"):
        L.style_loss({"l": g}, targets, cfg)
    with pytest.raises(ValueError, match="labels"):
        L.style_loss({"l": g}, targets, cfg, masks=t(np.ones((B, 3, 8, 10))))
    with pytest.raises(KeyError, match="'l'"):
        L.style_loss({"other": g}, targets, cfg)
    cfg_w = L.StyleLossConfig(kind="gram", layer_weights={"other": 1.0})
    with pytest.raises(ValueError, match="layer_weights"):
        L.style_loss({"l": g}, L.build_style_targets({"l": s}, cfg_w), cfg_w)
    with pytest.raises(ValueError, match="same StyleLossConfig"):
        L.style_loss({"l": g}, L.build_style_targets({"l": s}, cfg), L.StyleLossConfig())
    with pytest.raises(ValueError, match="no style targets"):
        L.style_loss({"l": g}, {}, cfg)


# ----------------------------------------------------------------------------- fused second moments


def np_second_moment_distance(f, c):
    """||F^T F / M - C||^2 and its gradient 4/M F (F^T F / M - C) for one image, float64."""
    m = f.shape[0]
    d = f.T @ f / m - c
    return np.sum(d * d), 4.0 / m * f @ d


@pytest.mark.parametrize("form", ["gram", "kernel"])
def test_second_moment_distance_matches_numpy_in_both_forms(rng, form):
    # kernel form needs M + R < N: 4 positions, 5 factor rows, 12 channels
    m, r, n = (4, 5, 12) if form == "kernel" else (9, 20, 3)
    f, z = feats(rng, B, m, n), feats(rng, B, r, n)
    c = np.einsum("brn,brk->bnk", z, z)
    v = tf.Variable(f)
    with tf.GradientTape() as tape:
        value = L.second_moment_distance(v, t(c), factor=t(z))
    grad = tape.gradient(value, v).numpy()
    want = [np_second_moment_distance(f[b], c[b]) for b in range(B)]
    np.testing.assert_allclose(value.numpy(), [w[0] for w in want], rtol=1e-10)
    np.testing.assert_allclose(grad, np.stack([w[1] for w in want]), rtol=1e-9, atol=1e-12)
    # upstream gradients other than ones are honoured per image
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(L.second_moment_distance(v, t(c), factor=t(z)) * t(np.array([2.0, -1.0])))
    np.testing.assert_allclose(tape.gradient(value, v).numpy()[1], -want[1][1], rtol=1e-9)


def _fused_vs_plain(style_shape, gen_shape, rng, **cfg_kw):
    gen = feats(rng, *gen_shape)
    style = {"l": t(feats(rng, *style_shape))}
    out = []
    for fused in (True, False):
        cfg = L.StyleLossConfig(fused=fused, **cfg_kw)
        targets = L.build_style_targets(style, cfg)
        assert ("fused" in targets["l"]) == fused
        v = tf.Variable(gen)
        with tf.GradientTape() as tape:
            value = L.style_loss({"l": v}, targets, cfg)
        out.append((value.numpy(), tape.gradient(value, v).numpy(), targets["l"]))
    return out


@pytest.mark.parametrize("kind,average", [(k, a) for k in L.KINDS for a in L.AVERAGES
                                          if k != "multi_reference" or a is None])
@pytest.mark.parametrize("shape", ["few_channels", "many_channels"])
def test_fused_loss_equals_the_per_term_loss(rng, kind, average, shape):
    # few channels: Gram form; many channels (M = 4, R = 3 * 4 < N = 24): kernel form
    hw, n = ((H, W), C) if shape == "few_channels" else ((2, 2), 24)
    (got, got_grad, fused_targets), (want, want_grad, _) = _fused_vs_plain(
        (B, 2, *hw, n), (B, *hw, n), rng, kind=kind, average=average,
        mmd_weight=0.3, multi_reference_weight=1.7)
    assert ("factor" in fused_targets["fused"]) == (shape == "many_channels")
    np.testing.assert_allclose(got, want, rtol=1e-9)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-8, atol=1e-12)


def test_fused_path_only_where_it_is_exact(rng):
    style = {"l": t(feats(rng, B, 2, H, W, C))}
    for kw in (dict(mmd_kernel="gaussian"), dict(mmd_kernel="bn"), dict(poly_offset=0.5)):
        cfg = L.StyleLossConfig(**kw)
        assert "fused" not in L.build_style_targets(style, cfg)["l"], kw
    masks = t(np.ones((B, 1, 8, 10)))
    assert "fused" not in L.build_style_targets(style, L.StyleLossConfig(), masks)["l"]
    # content masks at loss time use the masked per-term path, also with fused targets
    cfg = L.StyleLossConfig()
    gen = t(feats(rng, B, H, W, C))
    masked = L.style_loss({"l": gen}, L.build_style_targets(style, cfg), cfg, masks=masks)
    plain = L.style_loss({"l": gen}, L.build_style_targets(style, cfg), cfg)
    np.testing.assert_allclose(masked.numpy(), plain.numpy(), rtol=1e-9)  # full mask


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_fused_kernel_form_in_tf_function_matches_eager(rng, jit_compile):
    cfg = L.StyleLossConfig()
    style = {"a": tf.constant(feats(rng, B, 2, 2, 2, 24), tf.float32)}
    targets = L.build_style_targets(style, cfg)
    assert "factor" in targets["a"]["fused"]
    gen = tf.Variable(feats(rng, B, 2, 2, 24).astype(np.float32))

    @tf.function(jit_compile=jit_compile)
    def step(targets):
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(L.style_loss({"a": gen}, targets, cfg))
        return value, tape.gradient(value, gen)

    value, grad = step(targets)
    with tf.GradientTape() as tape:
        eager = tf.reduce_sum(L.style_loss({"a": gen}, targets, L.StyleLossConfig(fused=False)))
    np.testing.assert_allclose(value.numpy(), eager.numpy(), rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), tape.gradient(eager, gen).numpy(), rtol=1e-4,
                               atol=1e-6)


# ----------------------------------------------------------------------------- thin style layers

# (h, w, c) of ResNet50's default style layers (strides 2, 4, 8, 16), by hand
RESNET50_STYLE_SHAPES = {
    64: {"conv1_relu": (32, 32, 64), "conv2_block3_out": (16, 16, 256),
         "conv3_block4_out": (8, 8, 512), "conv4_block6_out": (4, 4, 1024)},
    128: {"conv1_relu": (64, 64, 64), "conv2_block3_out": (32, 32, 256),
          "conv3_block4_out": (16, 16, 512), "conv4_block6_out": (8, 8, 1024)},
    224: {"conv1_relu": (112, 112, 64), "conv2_block3_out": (56, 56, 256),
          "conv3_block4_out": (28, 28, 512), "conv4_block6_out": (14, 14, 1024)},
}


@pytest.mark.parametrize("size,left_out", [
    (64, {"conv3_block4_out", "conv4_block6_out"}),   # 64 < 512, 16 < 1024 (256 = 256 stays)
    (128, {"conv3_block4_out", "conv4_block6_out"}),  # 256 < 512, 64 < 1024
    (224, {"conv4_block6_out"}),                      # 784 >= 512, 196 < 1024
])
def test_usable_style_layers_of_resnet50(size, left_out):
    shapes = RESNET50_STYLE_SHAPES[size]
    weights = L.usable_style_layers(shapes)
    assert list(weights) == list(shapes)                  # the order of the layers given
    assert {layer for layer, w in weights.items() if w == 0.0} == left_out
    assert {layer for layer, w in weights.items() if w == 1.0} == set(shapes) - left_out
    assert L.usable_style_layers(shapes, 0.0) == dict.fromkeys(shapes, 1.0)  # switched off
    # leading batch / reference dimensions are ignored
    assert L.usable_style_layers({k: (2, 3, *v) for k, v in shapes.items()}) == weights


def test_usable_style_layers_ratio_and_fallback():
    shapes = RESNET50_STYLE_SHAPES[64]
    # a ratio of 2 also leaves out conv2_block3_out (256 positions < 2 x 256)
    assert L.usable_style_layers(shapes, 2.0) == {
        "conv1_relu": 1.0, "conv2_block3_out": 0.0, "conv3_block4_out": 0.0,
        "conv4_block6_out": 0.0}
    # every layer thin: the shallowest (most positions per channel) is kept, in any order
    thin = {"deep": (2, 2, 1024), "shallow": (16, 16, 512), "mid": (4, 4, 512)}
    assert L.usable_style_layers(thin) == {"deep": 0.0, "shallow": 1.0, "mid": 0.0}
    assert L.is_thin(thin["shallow"]) and not L.is_thin(thin["shallow"], 0.5)
    assert L.usable_style_layers({}) == {}
    with pytest.raises(ValueError, match="min_positions_per_channel"):
        L.usable_style_layers(shapes, -1.0)
    with pytest.raises(ValueError, match=r"\(h, w, c\)"):
        L.usable_style_layers({"l": (4, 4)})


def test_thin_layer_rule_config_and_description():
    assert L.StyleLossConfig().min_positions_per_channel == 1.0
    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="min_positions_per_channel"):
            L.StyleLossConfig(min_positions_per_channel=bad)
    text = L.describe_left_out({
        (32, 32): ([("conv2_block3_out", (8, 8, 256))], []),
        (64, 64): ([("conv4_block6_out", (4, 4, 1024))], []),
        (16, 16): ([], ["conv1_relu"])})
    assert text == ("at 64x64 conv4_block6_out (4x4 positions, 1024 channels); "
                    "at 32x32 conv2_block3_out (8x8 positions, 256 channels)",
                    "conv1_relu at 16x16")
    assert L.describe_left_out({(64, 64): ([], [])}) == ("", "")
