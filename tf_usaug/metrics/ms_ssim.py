"""Multi-scale structural similarity (Wang, Simoncelli & Bovik 2003) in float64 numpy.

The maths behind paper 003's diversity score (:func:`tf_usaug.metrics.generative.
ms_ssim_diversity`): Gaussian-weighted SSIM terms on valid window positions, 2x2 block-average
pyramid, the standard exponents; fewer scales for images under 176 px (:func:`ms_ssim_scales`).
Checked against a sliding-window reference and TensorFlow's ``tf.image.ssim_multiscale``
(tests/test_generative_metrics.py).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: Wang et al. 2003, sec. 3.2: exponents beta_j = gamma_j (and alpha_M) of the five scales.
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: SSIM constants (Wang et al. 2004): C1 = (K1 L)^2, C2 = (K2 L)^2 with L = 1.
SSIM_K1, SSIM_K2 = 0.01, 0.03
#: Gaussian window of SSIM / MS-SSIM: 11 x 11, sigma 1.5 (Wang et al. 2004).
WINDOW_SIZE, WINDOW_SIGMA = 11, 1.5


def as_grey(image, what: str) -> np.ndarray:
    """float64 HxW copy of a grey image (an HxWx1 image loses its channel axis)."""
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{what} must be a grey HxW image, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return array


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> np.ndarray:
    """1-D normalised Gaussian taps (the separable SSIM window)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-x * x / (2.0 * sigma * sigma))
    return taps / taps.sum()


def _filter_valid(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation (no padding) of the trailing two axes with ``taps``."""
    k = taps.shape[0]
    rows = sum(taps[i] * image[..., i:image.shape[-2] - k + 1 + i, :] for i in range(k))
    return sum(taps[i] * rows[..., :, i:image.shape[-1] - k + 1 + i] for i in range(k))


def _ssim_terms(a: np.ndarray, b: np.ndarray, taps: np.ndarray) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure term cs over the valid window positions.

    l = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), cs = (2 s_ab + C2) / (s_a^2 + s_b^2 + C2)
    (Wang et al. 2004, eqs. 6 and 9 with C3 = C2 / 2), Gaussian-weighted local statistics.
    """
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    mu_a, mu_b = _filter_valid(a, taps), _filter_valid(b, taps)
    var_a = _filter_valid(a * a, taps) - mu_a * mu_a
    var_b = _filter_valid(b * b, taps) - mu_b * mu_b
    cov = _filter_valid(a * b, taps) - mu_a * mu_b
    cs = (2.0 * cov + c2) / (var_a + var_b + c2)
    luminance = (2.0 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1)
    return float(np.mean(luminance * cs)), float(np.mean(cs))


def _downsample(image: np.ndarray) -> np.ndarray:
    """2x2 block average (Wang et al. 2003's low-pass filter and factor-2 subsampling); an odd
    last row or column is dropped."""
    h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    x = image[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def ms_ssim_scales(shape: Sequence[int], window: int = WINDOW_SIZE) -> int:
    """Scales MS-SSIM can use on an image: at most 5, the coarsest at least ``window`` px.

    Wang et al. 2003 use M = 5 (side >= 11 * 2^4 = 176 px with the 11-px window); smaller
    images get the largest M with min(H, W) // 2^(M-1) >= 11 (e.g. 64 px: 3 scales, 32 px: 2,
    16 px: 1, i.e. plain SSIM). 0 when the image is smaller than the window.
    """
    side = min(int(s) for s in shape)
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and side >= window:
        scales += 1
        side //= 2
    return scales


def ms_ssim(a, b, scales: int | None = None) -> float:
    """Multi-scale SSIM (Wang et al. 2003, eq. 7) of two grey images in [0, 1].

    MS-SSIM = l_M^{a_M} prod_{j=1..M} cs_j^{b_j}, with l and cs the mean luminance and
    contrast-structure terms at scale j (scale 1 the full image, each next one a 2x2 block
    average of the previous), Gaussian 11x11 window (sigma 1.5), K1 = 0.01, K2 = 0.03, and
    the standard exponents :data:`MS_SSIM_WEIGHTS`. With fewer than 5 scales (small images,
    :func:`ms_ssim_scales`) the first M exponents are used, renormalised to sum to 1, so the
    index stays on the same 0-1 scale. Negative cs / SSIM means (anti-correlated images) are
    clipped to 0 before the power, as TensorFlow's ``ssim_multiscale`` does.

    Args:
        a, b: grey ``HxW`` images of one shape.
        scales: number of scales (default: as many as the size allows, at most 5).

    Returns:
        MS-SSIM in [0, 1]; 1 for identical images.
    """
    a, b = as_grey(a, "a"), as_grey(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"ms_ssim: images differ in shape: {a.shape} vs {b.shape}")
    possible = ms_ssim_scales(a.shape)
    if possible == 0:
        raise ValueError(f"ms_ssim needs images of at least {WINDOW_SIZE}x{WINDOW_SIZE}, got "
                         f"{a.shape}")
    m = possible if scales is None else int(scales)
    if not 1 <= m <= possible:
        raise ValueError(f"ms_ssim: {a.shape} images allow 1-{possible} scales, got {scales}")
    weights = np.asarray(MS_SSIM_WEIGHTS[:m])
    weights = weights / weights.sum()
    taps = gaussian_window()
    value = 1.0
    for j in range(m):
        ssim_j, cs_j = _ssim_terms(a, b, taps)
        term = ssim_j if j == m - 1 else cs_j  # l_M cs_M at the coarsest scale
        value *= max(term, 0.0) ** weights[j]
        if j < m - 1:
            a, b = _downsample(a), _downsample(b)
    return float(value)
