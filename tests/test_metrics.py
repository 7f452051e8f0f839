"""Image metrics against known values and independent per-window / closed-form computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from tf_usaug.metrics.image import (edge_contrast, grey_histogram, histogram_js_distance,
                                    js_distance, psnr,
                                    speckle_index, ssim)


def windowed_ssim(a, b, weights, sample_covariance):
    """Mean SSIM over every window fully inside the image, written out window by window."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    size = weights.shape[0]
    n = weights.size
    scores = []
    for i in range(a.shape[0] - size + 1):
        for j in range(a.shape[1] - size + 1):
            x, y = a[i:i + size, j:j + size], b[i:i + size, j:j + size]
            mx, my = np.sum(weights * x), np.sum(weights * y)
            vx, vy = np.sum(weights * (x - mx) ** 2), np.sum(weights * (y - my) ** 2)
            cxy = np.sum(weights * (x - mx) * (y - my))
            if sample_covariance:
                vx, vy, cxy = (v * n / (n - 1) for v in (vx, vy, cxy))
            scores.append((2 * mx * my + c1) * (2 * cxy + c2)
                          / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(scores))


@pytest.fixture
def pair(rng):
    a = rng.uniform(0, 1, size=(16, 19))
    b = np.clip(a + rng.normal(0, 0.1, size=a.shape), 0, 1)
    return a, b


def test_psnr_known_values(pair):
    zeros = np.zeros((8, 8))
    assert psnr(zeros, zeros) == math.inf
    assert psnr(zeros, np.full((8, 8), 0.1)) == pytest.approx(20.0)  # MSE 0.01 -> 20 dB
    assert psnr(zeros, np.full((8, 8), 25.5), data_range=255) == pytest.approx(20.0)
    a, b = pair
    mse = np.mean((a - b) ** 2)
    assert psnr(a, b) == pytest.approx(-10 * math.log10(mse))
    assert psnr(a[None], b[None]) == pytest.approx(psnr(a, b))  # stacks: MSE over all


def test_ssim_identical_is_one_and_matches_window_by_window(pair):
    a, b = pair
    assert ssim(a, a) == pytest.approx(1.0)
    uniform = np.full((7, 7), 1 / 49)
    assert ssim(a, b) == pytest.approx(windowed_ssim(a, b, uniform, True), abs=1e-10)
    assert ssim(a, b) == pytest.approx(ssim(b, a))
    assert ssim(a[..., None], b[..., None]) == pytest.approx(ssim(a, b))
    taps = np.exp(-0.5 * (np.arange(-5, 6) / 1.5) ** 2)
    gaussian = np.outer(taps, taps) / np.outer(taps, taps).sum()
    assert ssim(a, b, gaussian_weights=True) == pytest.approx(
        windowed_ssim(a, b, gaussian, False), abs=1e-10)
    assert ssim(a, 1 - a) < 0  # anti-correlated structure


def test_speckle_index_known_values(rng):
    two_level = np.array([[1.0, 3.0], [3.0, 1.0]])
    assert speckle_index(two_level) == pytest.approx(0.5)  # mean 2, std 1
    image = np.ones((6, 6))
    image[0, 0] = 9.0  # outside the region: changes the whole-image index only
    image[3:5, 3:5] = two_level
    assert speckle_index(image) != pytest.approx(0.5)
    assert speckle_index(image, (3, 5, 3, 5)) == pytest.approx(0.5)
    mask = np.zeros_like(image, bool)
    mask[3:5, 3:5] = True
    assert speckle_index(image, mask) == pytest.approx(0.5)
    # fully developed speckle with L looks (Gamma intensity) has contrast 1/sqrt(L)
    for looks in (1, 4):
        sample = rng.gamma(looks, 1.0 / looks, size=(400, 400))
        assert speckle_index(sample) == pytest.approx(1 / math.sqrt(looks), rel=0.02)


def test_edge_contrast_of_a_step_and_a_blur():
    step = np.full((10, 10), 0.2)
    step[:, 5:] = 0.8
    inner, outer = (0, 10, 5, 6), (0, 10, 4, 5)
    assert edge_contrast(step, inner, outer) == pytest.approx(0.6)  # 0.6 / 1.0
    assert edge_contrast(step, outer, inner) == pytest.approx(0.6)
    blurred = step.copy()
    blurred[:, 4:6] = 0.5 * (0.2 + 0.8)
    assert edge_contrast(blurred, inner, outer) == pytest.approx(0.0)
    masks = [np.zeros((10, 10), bool) for _ in range(2)]
    masks[0][:, 5], masks[1][:, 4] = True, True
    assert edge_contrast(step, *masks) == pytest.approx(0.6)


def test_js_distance_known_values(rng):
    image = rng.uniform(0, 1, size=(32, 32))
    assert histogram_js_distance(image, image) == pytest.approx(0.0, abs=1e-12)
    dark, bright = np.full((8, 8), 0.1), np.full((8, 8), 0.9)
    assert histogram_js_distance(dark, bright) == pytest.approx(1.0)  # disjoint, base 2
    half = np.concatenate([dark, bright])
    # p = (1, 0), q = (1/2, 1/2): JSD = 1/2 log2(4/3) + 1/4 (log2(2/3) + 1)
    expected = math.sqrt(0.5 * math.log2(4 / 3) + 0.25 * (math.log2(2 / 3) + 1))
    assert histogram_js_distance(dark, half) == pytest.approx(expected)
    other = rng.beta(2, 5, size=(40, 24))
    hist_a, hist_b = grey_histogram(image, 64), grey_histogram(other, 64)
    assert hist_a.sum() == pytest.approx(1.0) and hist_a.shape == (64,)
    assert histogram_js_distance(image, other, bins=64) == pytest.approx(
        jensenshannon(hist_a, hist_b, base=2), abs=1e-12)
    assert js_distance([3, 1], [1, 3]) == pytest.approx(js_distance([0.25, 0.75], [0.75, 0.25]))


@pytest.mark.parametrize("call, message", [
    (lambda: psnr(np.zeros((4, 4)), np.zeros((4, 5))), "shape"),
    (lambda: psnr(np.full((4, 4), np.nan), np.zeros((4, 4))), "NaN"),
    (lambda: psnr(np.zeros((4, 4)), np.zeros((4, 4)), data_range=0), "data_range"),
    (lambda: ssim(np.zeros((5, 5)), np.zeros((5, 5))), "at least 7x7"),
    (lambda: ssim(np.zeros((2, 8, 8)), np.zeros((2, 8, 8))), "HxW"),
    (lambda: speckle_index(np.zeros((4, 4))), "positive mean"),
    (lambda: speckle_index(np.ones((4, 4)), (0, 5, 0, 2)), "outside"),
    (lambda: speckle_index(np.ones((4, 4)), np.zeros((4, 4), bool)), "no pixels"),
    (lambda: speckle_index(np.ones((4, 4)), np.ones((3, 3), bool)), "mask"),
    (lambda: edge_contrast(np.zeros((4, 4)), (0, 4, 0, 1), (0, 4, 1, 2)), "positive"),
    (lambda: histogram_js_distance(np.full((4, 4), 1.5), np.zeros((4, 4))), "value_range"),
    (lambda: histogram_js_distance(np.zeros((4, 4)), np.zeros((4, 4)), bins=0), "bins"),
    (lambda: histogram_js_distance(np.array(["a"]), np.zeros(1)), "real numbers"),
    (lambda: js_distance([1, 0], [1, 0, 0]), "1-D"),
    (lambda: js_distance([-1, 2], [1, 0]), "non-negative"),
])
def test_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()
