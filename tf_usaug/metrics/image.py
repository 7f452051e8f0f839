"""Image-quality metrics: PSNR, SSIM, speckle index, edge contrast, histogram JS distance.

Plain numpy on grey images in [0, 1] (arrays or eager tensors), one number per call. Used to
check the SRAD filter (speckle index in a flat region, contrast across an edge), the NST output
(PSNR / SSIM against the content image, paper 001) and synthetic-vs-real grey-value
distributions (Jensen-Shannon distance, paper 004).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from skimage.metrics import structural_similarity

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open like array slicing


def _as_image(image, what: str) -> np.ndarray:
    """float64 copy of a real, finite, non-empty array (ValueError otherwise)."""
    array = np.asarray(image)
    if array.size == 0:
        raise ValueError(f"{what} is empty (shape {array.shape})")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{what} must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return array


def _as_grey_2d(image, what: str) -> np.ndarray:
    """HxW float64 image; an HxWx1 image loses its channel axis."""
    array = _as_image(image, what)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{what} must be a grey HxW (or HxWx1) image, got shape {array.shape}")
    return array


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")


def psnr(a, b, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio 10 log10(data_range^2 / MSE) in dB.

    Args:
        a, b: arrays of one shape (an image or a stack; the MSE runs over all elements).
        data_range: peak-to-peak range of the data (1 for images in [0, 1]).

    Returns:
        PSNR in dB; ``inf`` for identical inputs.
    """
    a, b = _as_image(a, "a"), _as_image(b, "b")
    _same_shape(a, b)
    if not (data_range > 0 and math.isfinite(data_range)):
        raise ValueError(f"data_range must be finite and > 0, got {data_range!r}")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range ** 2 / mse)


def ssim(a, b, gaussian_weights: bool = False) -> float:
    """Mean structural similarity (Wang et al. 2004) of two grey images in [0, 1].

    Wraps ``skimage.metrics.structural_similarity`` with ``data_range=1``, K1 = 0.01,
    K2 = 0.03. Window: by default scikit-image's 7x7 uniform window with sample covariances;
    ``gaussian_weights=True`` uses Wang et al.'s Gaussian window (sigma 1.5, 11x11 support)
    with population covariances instead. The image sides must be at least 7 (11 with the
    Gaussian window).

    Args:
        a, b: HxW (or HxWx1) images of one shape.
        gaussian_weights: Gaussian instead of uniform window (see above).

    Returns:
        Mean SSIM in [-1, 1]; 1 for identical images.
    """
    a, b = _as_grey_2d(a, "a"), _as_grey_2d(b, "b")
    _same_shape(a, b)
    window = 11 if gaussian_weights else 7
    if min(a.shape) < window:
        raise ValueError(f"ssim needs images of at least {window}x{window}, got {a.shape}")
    if gaussian_weights:
        value = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
    else:
        value = structural_similarity(a, b, data_range=1.0, win_size=7)
    return float(value)


def _region_values(image: np.ndarray, region, what: str) -> np.ndarray:
    """Pixels of ``image`` inside a box (y0, y1, x0, x1) or a boolean mask; all if None."""
    if region is None:
        return image.reshape(-1)
    mask = np.asarray(region)
    if mask.dtype == bool:
        if mask.shape != image.shape:
            raise ValueError(f"{what} mask has shape {mask.shape}, image has {image.shape}")
        values = image[mask]
    else:
        if image.ndim != 2 or mask.shape != (4,):
            raise ValueError(f"{what} must be a boolean mask or a box (y0, y1, x0, x1) of a "
                             f"2-D image, got {region!r}")
        y0, y1, x0, x1 = (int(v) for v in mask)
        h, w = image.shape
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise ValueError(f"{what} {region!r} is empty or outside the {h}x{w} image")
        values = image[y0:y1, x0:x1].reshape(-1)
    if values.size == 0:
        raise ValueError(f"{what} selects no pixels")
    return values


def speckle_index(image, region: Box | np.ndarray | None = None) -> float:
    """Speckle index std / mean of the intensities (the coefficient of variation).

    For fully developed speckle on a flat region it is the speckle contrast; it falls as a
    despeckling filter smooths (Yu & Acton 2002 estimate q0 from it on a homogeneous region).

    Args:
        image: array of intensities >= 0.
        region: a box (y0, y1, x0, x1), a boolean mask of the image's shape, or None for all
            pixels. Population std (ddof = 0).
    """
    values = _region_values(_as_image(image, "image"), region, "region")
    mean = float(values.mean())
    if mean <= 0:
        raise ValueError(f"speckle index needs a region with a positive mean, got {mean:g}")
    return float(values.std()) / mean


def edge_contrast(image, inner, outer) -> float:
    """Michelson contrast |m_in - m_out| / (m_in + m_out) between two bands along an edge.

    With thin bands on the two sides of an edge (e.g. the pixel columns right next to a step)
    it measures how sharp the edge is: a blurred edge mixes the two sides and the contrast
    falls; a preserved edge keeps the contrast of the clean step.

    Args:
        image: array of intensities >= 0.
        inner, outer: boolean masks (image shape) or boxes (y0, y1, x0, x1) of the two bands.

    Returns:
        Contrast in [0, 1] (for non-negative images).
    """
    image = _as_image(image, "image")
    mean_in = float(_region_values(image, inner, "inner").mean())
    mean_out = float(_region_values(image, outer, "outer").mean())
    if mean_in + mean_out <= 0:
        raise ValueError("edge contrast needs bands with a positive total mean")
    return abs(mean_in - mean_out) / (mean_in + mean_out)


def grey_histogram(image, bins: int = 256,
                   value_range: Sequence[float] = (0.0, 1.0)) -> np.ndarray:
    """Normalised grey-value histogram (sums to 1) over ``bins`` equal bins of ``value_range``.

    Args:
        image: array of any shape (all its values are counted).
        bins: number of bins (256: one per 8-bit grey level).
        value_range: (low, high); values outside it are a ValueError, not silently dropped.
    """
    values = _as_image(image, "image").reshape(-1)
    low, high = (float(v) for v in value_range)
    if isinstance(bins, bool) or int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range!r}")
    if values.min() < low or values.max() > high:
        raise ValueError(f"values span [{values.min():g}, {values.max():g}], outside "
                         f"value_range [{low:g}, {high:g}]")
    counts, _ = np.histogram(values, bins=int(bins), range=(low, high))
    return counts / counts.sum()


def js_distance(p, q) -> float:
    """Jensen-Shannon distance sqrt(JSD(p, q)) of two discrete distributions, base 2, in [0, 1].

    JSD = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2 (Lin 1991); 0 log 0 = 0.
    """
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"distributions must be 1-D of one length, got {p.shape} and {q.shape}")
    if np.any(p < 0) or np.any(q < 0) or not (p.sum() > 0 and q.sum() > 0):
        raise ValueError("distributions must be non-negative with a positive sum")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl_to_m(x: np.ndarray) -> float:
        support = x > 0
        return float(np.sum(x[support] * np.log2(x[support] / m[support])))

    divergence = 0.5 * kl_to_m(p) + 0.5 * kl_to_m(q)
    return math.sqrt(min(max(divergence, 0.0), 1.0))  # clamp round-off outside [0, 1]


def histogram_js_distance(a, b, bins: int = 256,
                          value_range: Sequence[float] = (0.0, 1.0)) -> float:
    """Jensen-Shannon distance of the grey-value histograms of ``a`` and ``b`` (paper 004).

    Maack et al. (CDBME 2022) compare the grey-value distributions of real and synthetic
    ultrasound images with it: 0 for identical histograms, 1 (base 2) for disjoint ones.

    Args:
        a, b: images or stacks of images (any shapes; all values are counted).
        bins: histogram bins over ``value_range`` (256 grey levels).
        value_range: (low, high) of the grey values, (0, 1) for our images.
    """
    return js_distance(grey_histogram(a, bins, value_range), grey_histogram(b, bins, value_range))
