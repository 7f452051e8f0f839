"""SRAD (Yu & Acton 2002): numpy vs TF vs a plain per-pixel loop, filter properties, bad input."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from tf_usaug.metrics import image as image_metrics
from tf_usaug.filters.srad import SRADConfig, srad, whole_image_q0
from tf_usaug.filters.srad_tf import srad_multiscale, srad_multiscale_tf, srad_tf

TF_TOL = 1e-5  # float32 TF against the float64 numpy reference


def per_pixel_srad(image, iterations, dt=0.05, q0=None, roi=None, rho=1 / 6, eps=1e-6):
    """Independent reference: Yu & Acton's equations pixel by pixel, as printed.

    I + eps in every division by I (the module's documented epsilon), replicated borders.
    """
    img = np.asarray(image, np.float64).copy()
    h, w = img.shape
    for n in range(iterations):
        if roi is not None:
            y0, y1, x0, x1 = roi
            region = img[y0:y1, x0:x1]
            q0_sq = region.var() / (region.mean() + eps) ** 2
        else:
            q0_sq = (q0 * math.exp(-rho * n * dt)) ** 2
        coeff = np.zeros_like(img)
        for i in range(h):
            for j in range(w):
                centre = img[i, j]
                north, south = img[max(i - 1, 0), j], img[min(i + 1, h - 1), j]
                west, east = img[i, max(j - 1, 0)], img[i, min(j + 1, w - 1)]
                grad_sq = ((south - centre) ** 2 + (east - centre) ** 2       # forward
                           + (centre - north) ** 2 + (centre - west) ** 2)    # backward
                laplacian = north + south + west + east - 4 * centre
                shifted = centre + eps
                q_sq = ((0.5 * grad_sq / shifted ** 2 - (1 / 16) * (laplacian / shifted) ** 2)
                        / (1 + 0.25 * laplacian / shifted) ** 2)
                c = 1 / (1 + (q_sq - q0_sq) / (q0_sq * (1 + q0_sq)))
                coeff[i, j] = min(max(c, 0.0), 1.0)
        updated = img.copy()
        for i in range(h):
            for j in range(w):
                centre = img[i, j]
                south_i, east_j = min(i + 1, h - 1), min(j + 1, w - 1)
                divergence = (coeff[south_i, j] * (img[south_i, j] - centre)
                              + coeff[i, j] * (img[max(i - 1, 0), j] - centre)
                              + coeff[i, east_j] * (img[i, east_j] - centre)
                              + coeff[i, j] * (img[i, max(j - 1, 0)] - centre))
                updated[i, j] = centre + dt / 4 * divergence
        img = updated
    return img


def speckled(clean, looks, rng):
    """Multiplicative fully developed speckle: intensity x Gamma(looks, 1/looks), clipped to 1."""
    return np.clip(clean * rng.gamma(looks, 1.0 / looks, size=clean.shape), 0, 1).astype(
        np.float32)


@pytest.fixture
def small_image(rng):
    """9x11 speckled image with a black stripe (exercises the eps guard) and an edge."""
    image = rng.uniform(0.05, 1.0, size=(9, 11))
    image[:, 7:] *= 0.3
    image[:, 3] = 0.0
    return image.astype(np.float32)


@pytest.fixture
def flat_speckle(rng):
    return speckled(np.full((64, 64), 0.5), looks=4, rng=rng)


def test_config_defaults_are_the_papers():
    cfg = SRADConfig()
    assert (cfg.iterations, cfg.scales, cfg.dt, cfg.q0) == (10, 8, 0.05, None)
    assert cfg.rho == pytest.approx(1 / 6) and 0 < cfg.eps < 1e-3
    image = np.full((8, 8), 0.5, np.float32)
    image[2, 3] = 0.9
    series = srad_multiscale(image, backend="numpy", **SRADConfig(scales=2).multiscale_kwargs())
    assert len(series) == 2
    np.testing.assert_array_equal(series[1], srad(image, 2 * cfg.iterations))


@pytest.mark.parametrize("mode", ["schedule", "roi"])
def test_numpy_and_tf_match_per_pixel_loop(small_image, mode):
    kwargs = {"q0": 0.4} if mode == "schedule" else {"roi": (0, 9, 8, 11)}
    expected = per_pixel_srad(small_image, iterations=6, dt=0.2, **kwargs)
    got_numpy = srad(small_image, iterations=6, dt=0.2, **kwargs)
    got_tf = srad_tf(small_image[None], iterations=6, dt=0.2, **kwargs).numpy()[0]
    assert got_numpy.dtype == np.float32 and got_numpy.shape == small_image.shape
    np.testing.assert_allclose(got_numpy, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got_tf, expected, rtol=0, atol=TF_TOL)
    assert np.abs(expected - small_image).max() > 1e-2  # the filter did something


def test_default_q0_is_whole_image_estimate_at_t0(small_image):
    q0 = whole_image_q0(small_image)
    assert q0 == pytest.approx(small_image.std() / small_image.mean(), rel=1e-5)
    np.testing.assert_allclose(srad(small_image, 5), per_pixel_srad(small_image, 5, q0=q0),
                               atol=1e-6)


@pytest.mark.parametrize("mode", ["schedule", "roi"])
def test_tf_equals_numpy_on_a_batch(rng, mode):
    images = np.stack([speckled(np.full((40, 48), level), 6, rng) for level in (0.3, 0.6, 0.9)])
    images[1, :, 24:] *= 0.5
    if mode == "roi":  # one ROI per image
        kwargs_tf = {"roi": [(0, 20, 0, 20), (5, 35, 0, 20), (10, 30, 10, 40)]}
        kwargs_np = [{"roi": box} for box in kwargs_tf["roi"]]
    else:  # default q0: estimated per image
        kwargs_tf, kwargs_np = {}, [{}, {}, {}]
    got = srad_tf(images[..., None], iterations=20, **kwargs_tf).numpy()
    assert got.shape == images.shape + (1,) and got.dtype == np.float32
    for image, kwargs, result in zip(images, kwargs_np, got[..., 0]):
        np.testing.assert_allclose(result, srad(image, iterations=20, **kwargs), atol=TF_TOL)


def test_tf_chunks_give_the_same_result(rng):
    images = np.stack([speckled(np.full((16, 20), 0.5), 4, rng) for _ in range(5)])
    boxes = [(0, 8, 0, 8), (8, 16, 0, 8), (0, 16, 10, 20), (4, 12, 4, 12), (0, 4, 0, 20)]
    whole = srad_tf(images, 10, roi=boxes, chunk_pixels=10 ** 9).numpy()
    chunked = srad_tf(images, 10, roi=boxes, chunk_pixels=2 * 16 * 20).numpy()  # 2 + 2 + 1
    np.testing.assert_allclose(chunked, whole, atol=1e-6)  # same maths, other XLA shapes
    np.testing.assert_allclose(whole[3], srad(images[3], 10, roi=boxes[3]), atol=TF_TOL)
    with pytest.raises(ValueError, match="chunk_pixels"):
        srad_tf(images, 10, chunk_pixels=0)


def test_tf_per_image_q0_and_graph_mode_match(rng):
    images = np.stack([speckled(np.full((32, 32), 0.5), 4, rng) for _ in range(2)])
    got = srad_tf(images, iterations=10, q0=[0.2, 0.6]).numpy()
    for image, q0, result in zip(images, (0.2, 0.6), got):
        np.testing.assert_allclose(result, srad(image, 10, q0=q0), atol=TF_TOL)
    not_compiled = srad_tf(images, iterations=10, q0=[0.2, 0.6], jit_compile=False).numpy()
    np.testing.assert_allclose(not_compiled, got, atol=1e-6)


def test_zero_iterations_is_identity(small_image):
    np.testing.assert_array_equal(srad(small_image, 0), small_image)
    np.testing.assert_array_equal(srad_tf(small_image[None], 0).numpy()[0], small_image)


@pytest.mark.parametrize("mode", ["schedule", "roi"])
def test_speckle_index_of_flat_region_drops(flat_speckle, mode):
    region = (8, 56, 8, 56)
    kwargs = {"roi": region} if mode == "roi" else {}
    before = image_metrics.speckle_index(flat_speckle, region)
    after_numpy = image_metrics.speckle_index(srad(flat_speckle, 80, **kwargs), region)
    after_tf = image_metrics.speckle_index(srad_tf(flat_speckle[None], 80, **kwargs)[0], region)
    assert before == pytest.approx(0.5, abs=0.05)  # 4-look speckle: 1/sqrt(4)
    assert after_numpy < 0.4 * before
    assert after_tf == pytest.approx(after_numpy, rel=1e-4)


def test_mean_is_preserved(small_image, flat_speckle):
    # Eq. (58) is a flux form (each pixel pair exchanges c_S (I_S - I) with opposite signs)
    # and replicated borders have no outward flux: the mean is conserved exactly, so the
    # tolerance is float round-off: 1e-12 relative in float64, 1e-6 for the float64 numpy
    # path (float32 output), 1e-5 for float32 TF after 80 iterations.
    reference = per_pixel_srad(small_image, 4, q0=0.5)
    assert reference.mean() == pytest.approx(small_image.mean(dtype=np.float64), rel=1e-12)
    for image in (small_image, flat_speckle):
        expected = image.mean(dtype=np.float64)
        assert srad(image, 80).mean(dtype=np.float64) == pytest.approx(expected, rel=1e-6)
        tf_result = srad_tf(image[None], 80).numpy()
        assert tf_result.mean(dtype=np.float64) == pytest.approx(expected, rel=1e-5)


def test_update_stays_within_input_range_for_dt_up_to_one(small_image):
    # Eq. (61) with c in [0, 1] is a convex combination of the pixel and its neighbours when
    # dt <= 1: no new minima or maxima (black stays >= 0), in both implementations.
    low, high = small_image.min(), small_image.max()
    for result in (srad(small_image, 30, dt=1.0),
                   srad_tf(small_image[None], 30, dt=1.0).numpy()[0]):
        assert result.min() >= low - 1e-6 and result.max() <= high + 1e-6


def test_edges_survive_better_than_equally_smoothing_gaussian():
    # Step 0.2 | 0.8 under 16-look speckle; SRAD with the paper's 8 x 10 iterations, q0 from a
    # flat ROI. A Gaussian blur is tuned (bisection on sigma) to the SAME speckle index in that
    # flat region; then compare the contrast of the two pixel columns next to the edge.
    rng = np.random.default_rng(3)
    height, width, edge = 96, 96, 48
    clean = np.full((height, width), 0.2)
    clean[:, edge:] = 0.8
    noisy = speckled(clean, looks=16, rng=rng)
    flat = (8, 88, 8, 36)
    inner, outer = (0, height, edge, edge + 1), (0, height, edge - 1, edge)

    filtered = srad(noisy, 80, roi=flat)
    target = image_metrics.speckle_index(filtered, flat)
    low, high = 0.05, 10.0
    for _ in range(50):
        sigma = 0.5 * (low + high)
        blurred = gaussian_filter(noisy.astype(np.float64), sigma, mode="nearest")
        low, high = (sigma, high) if image_metrics.speckle_index(blurred, flat) > target else (low, sigma)
    blurred = gaussian_filter(noisy.astype(np.float64), high, mode="nearest")
    assert image_metrics.speckle_index(blurred, flat) == pytest.approx(target, rel=1e-3)
    assert target < 0.5 * image_metrics.speckle_index(noisy, flat)

    srad_contrast = image_metrics.edge_contrast(filtered, inner, outer)
    gauss_contrast = image_metrics.edge_contrast(blurred, inner, outer)
    assert srad_contrast > 1.25 * gauss_contrast
    assert srad_contrast <= image_metrics.edge_contrast(clean, inner, outer) + 0.05


def test_multiscale_is_one_continuous_diffusion(flat_speckle):
    image = flat_speckle[:32, :40]
    series_np = srad_multiscale(image, backend="numpy")
    series_tf = srad_multiscale(image)  # TF is the default backend
    assert len(series_np) == len(series_tf) == 8
    for scale, (a, b) in enumerate(zip(series_np, series_tf), start=1):
        assert a.shape == image.shape and a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(b, a, atol=TF_TOL)
        if scale in (1, 3):
            np.testing.assert_allclose(a, srad(image, scale * 10), atol=1e-6)
    indices = [image_metrics.speckle_index(s) for s in series_np]
    assert all(later < earlier for earlier, later in zip(indices, indices[1:]))
    batch_series = srad_multiscale_tf(np.stack([image, image])[..., None], scales=2,
                                      iterations_per_scale=5, roi=(0, 16, 0, 16))
    assert len(batch_series) == 2 and tuple(batch_series[1].shape) == (2, 32, 40, 1)
    np.testing.assert_allclose(batch_series[1].numpy()[1, ..., 0],
                               srad(image, 10, roi=(0, 16, 0, 16)), atol=TF_TOL)


@pytest.mark.parametrize("bad, message", [
    (np.full((8, 8), np.nan), "NaN"),
    (np.full((8, 8), np.inf), "NaN or infinite"),
    (-np.ones((8, 8)), "negative"),
    (np.ones((2, 8, 8)), "HxW"),
    (np.ones(8), "HxW"),
    (np.ones((0, 8)), "empty"),
    (np.ones((8, 8), complex), "real numbers"),
])
def test_bad_image_raises(bad, message):
    with pytest.raises(ValueError, match=message):
        srad(bad)


@pytest.mark.parametrize("bad, message", [
    (np.full((1, 8, 8), np.nan), "NaN"),
    (-np.ones((1, 8, 8)), "negative"),
    (np.ones((8, 8)), r"\[B, H, W\]"),
    (np.ones((1, 8, 8, 3)), r"\[B, H, W\]"),
    (np.ones((1, 8, 8), bool), "real numbers"),
])
def test_bad_batch_raises(bad, message):
    with pytest.raises(ValueError, match=message):
        srad_tf(bad)


@pytest.mark.parametrize("kwargs, message", [
    ({"dt": 0.0}, "dt"),
    ({"dt": 1.5}, "dt"),
    ({"iterations": -1}, "iterations"),
    ({"iterations": 2.5}, "iterations"),
    ({"rho": -1.0}, "rho"),
    ({"q0": 0.0}, "q0"),
    ({"q0": [0.1, 0.2, 0.3]}, "q0"),
    ({"roi": (0, 9, 0, 4)}, "outside"),
    ({"roi": (3, 3, 0, 4)}, "empty"),
    ({"roi": (0, 4, 0, 4), "q0": 0.3}, "not both"),
    ({"roi": [(0, 4, 0, 4)] * 3}, "boxes"),
])
def test_bad_parameters_raise(kwargs, message):
    image = np.full((8, 8), 0.5, np.float32)
    with pytest.raises(ValueError, match=message):
        srad_tf(np.stack([image, image]), **kwargs)
    if "boxes" not in message:  # a list of boxes is a batch-only argument
        with pytest.raises(ValueError, match=message):
            srad(image, **kwargs)


def test_bad_multiscale_arguments_raise():
    image = np.full((8, 8), 0.5, np.float32)
    with pytest.raises(ValueError, match="backend"):
        srad_multiscale(image, backend="torch")
    with pytest.raises(ValueError, match="scales"):
        srad_multiscale(image, scales=0, backend="numpy")
    with pytest.raises(ValueError, match="HxW"):
        srad_multiscale(image[None])


@pytest.mark.slow
def test_tf_throughput_target():
    # Paper-size work on this 2-core box: >= 50 Mpx*iterations/s for B = 8 at 256x256.
    rng = np.random.default_rng(0)
    batch = speckled(np.full((8, 256, 256), 0.5), 8, rng)
    srad_tf(batch, 10)  # compile
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        srad_tf(batch, 10).numpy()
        best = min(best, time.perf_counter() - start)
    assert batch.size * 10 / 1e6 / best >= 50
