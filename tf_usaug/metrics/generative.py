"""Generative-model metrics (pure numpy): FID, KID, MMD, 1-NN accuracy, MS-SSIM, SSIM, JS.

How real and generated (fake) images differ, for the GAN trainers (papers 003 and 004). The
maths here works on arrays only; features come from :mod:`tf_usaug.metrics.features`, folders
and the command line from :mod:`tf_usaug.evaluation.gan` (docs/gan_metrics.md).

Library API (stable; the GAN trainers call it)
----------------------------------------------
Feature-space metrics, ``real`` ``[n, d]`` and ``fake`` ``[m, d]`` float arrays:

* ``feature_statistics(features) -> (mu [d], sigma [d, d])`` (sample covariance, ddof 1)
* ``frechet_distance(mu1, sigma1, mu2, sigma2) -> float``  (Heusel et al. 2017, eq. 6)
* ``fid(real, fake) -> float``  (the two calls above)
* ``polynomial_kernel(x, y, degree=3, coef0=1.0) -> [n, m]``  ((x.y / d + coef0) ** degree)
* ``mmd2_unbiased(k_xx, k_yy, k_xy) -> float``  (Gretton et al. 2012, eq. 3)
* ``kid(real, fake, subsets=100, subset_size=1000, seed=0) -> {"mean", "sd", "values",
  "subsets", "subset_size"}``  (Binkowski et al. 2018)
* ``gaussian_mmd(real, fake, sigma=1.0) -> float``  (Xu et al. 2018, paper 003's "MMD")
* ``one_nn_accuracy(real, fake) -> {"accuracy", "real", "fake"}``  (leave-one-out 1-NN
  two-sample test, Lopez-Paz & Oquab 2017 / Xu et al. 2018: 0.5 ideal, 1 separable,
  well below 0.5: the fakes copy the reals)
* ``repeated(metric, real, fake, repeats=10, sample=100, seed=0) -> {"mean", "sd",
  "values", "repeats", "sample"}``  (paper 003's protocol: 10 tests of 100 random images
  from each set; ``metric(real, fake)`` returns a float or a dict of floats)

Image metrics, grey ``HxW`` images in ``[0, 1]``:

* ``ms_ssim(a, b, scales=None) -> float``  (Wang et al. 2003, eq. 7; 5 scales when the image
  allows, fewer for small images: :func:`ms_ssim_scales`)
* ``ms_ssim_diversity(images, repeats=10, sample=32, seed=0) -> {"mean", "sd", "values",
  "repeats", "sample"}``  (paper 003: mean pairwise MS-SSIM; lower = more diverse)
* ``mean_ssim(real_images, fake_images, max_pairs=1000, seed=0) -> {"mean", "sd",
  "pairs"}``  (paper 004: SSIM of real vs fake pairs, :func:`tf_usaug.metrics.image.ssim`)
* ``histogram_js(real_images, fake_images, bins=256) -> float``  (paper 004: JS distance
  of the pooled grey-value histograms, :func:`tf_usaug.metrics.image.histogram_js_distance`)

The job (folders in, ``OUT/metrics.json`` out), in :mod:`tf_usaug.evaluation.gan`:

* ``GanMetricsConfig(real, fake, out=None, features="inception", ...)``
* ``evaluate_gan(cfg) -> dict``  (reads two folders; writes ``OUT/metrics.json`` and
  ``OUT/metrics.md`` when ``cfg.out`` is set)
* ``score_images(real_images, fake_images, cfg, extractor=None) -> dict``  (the same on
  in-memory images, e.g. a trainer's samples; ``extractor`` reuses a built feature network)
* returned keys: ``fid`` (float), ``kid`` / ``mmd`` / ``ms_ssim_fake`` / ``ms_ssim_real`` /
  ``ssim`` (``{"mean", "sd", ...}``), ``one_nn`` (``{"accuracy", "real", "fake"}``, each
  ``{"mean", "sd"}``), ``js_distance`` (float), ``real`` / ``fake`` (folder and image
  count), ``features`` (name and dimension), ``settings``
* CLI: ``python -m tf_usaug.evaluate gan --real DIR --fake DIR [--features
  inception|pixels|MODEL.keras|RUN] [--weights PATH] [--out OUT]``

Every function raises ``ValueError`` on unusable arrays (wrong shapes, too few samples, NaN);
the job turns those about a folder into :class:`tf_usaug.errors.InputError` naming it.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from .image import histogram_js_distance, ssim
from .ms_ssim import (MS_SSIM_WEIGHTS, SSIM_K1, SSIM_K2, WINDOW_SIGMA,  # noqa: F401
                      WINDOW_SIZE, as_grey, gaussian_window, ms_ssim, ms_ssim_scales)



# ----------------------------------------------------------------------------- checks


def _features(x, what: str, min_rows: int = 1) -> np.ndarray:
    """float64 ``[n, d]`` copy of a feature matrix (a vector is one feature per sample)."""
    array = np.asarray(x, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{what} must be a [samples, features] array, got shape {array.shape}")
    if array.shape[0] < min_rows:
        raise ValueError(f"{what} needs at least {min_rows} samples, got {array.shape[0]}")
    if array.shape[1] == 0:
        raise ValueError(f"{what} has no feature columns")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return array


def _pair(real, fake, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    real, fake = _features(real, "real", min_rows), _features(fake, "fake", min_rows)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: {real.shape[1]} vs "
                         f"{fake.shape[1]}")
    return real, fake


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def mean_sd(values: Sequence[float]) -> dict:
    """``{"mean", "sd"}`` of a list (sample sd, ddof 1; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0}


# ----------------------------------------------------------------------------- FID


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[d]`` and sample covariance ``[d, d]`` (ddof 1, as TTUR / pytorch-fid) of features.

    Needs at least 2 samples (a covariance of one sample is undefined).
    """
    x = _features(features, "features", min_rows=2)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _clip_round_off(values: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with round-off removed: those below d * eps * max|lambda|
    (numpy's numerical-rank tolerance) are 0, so a singular covariance's null space adds
    nothing under a square root (sqrt(1e-16) would add 1e-8 per direction)."""
    tol = values.shape[0] * np.finfo(np.float64).eps * max(float(np.abs(values).max()), 0.0)
    return np.where(values > tol, values, 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root by eigen-decomposition (round-off eigenvalues -> 0)."""
    sym = 0.5 * (matrix + matrix.T)
    values, vectors = np.linalg.eigh(sym)
    return (vectors * np.sqrt(_clip_round_off(values))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance of two Gaussians (Heusel et al. 2017, eq. 6; Dowson & Landau 1982).

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    The trace of the square root is computed without a non-symmetric ``sqrtm``:
    S1 S2 = S1^(1/2) (S1^(1/2) S2) has the eigenvalues of the symmetric PSD matrix
    M = S1^(1/2) S2 S1^(1/2), so Tr (S1 S2)^(1/2) = sum_i sqrt(lambda_i(M)). This is real by
    construction (no tiny imaginary parts to discard) and stays defined for the singular
    covariances of fewer samples than feature dimensions; eigenvalues at round-off level
    (below d * eps * the largest, negative ones included) count as 0. Equal to
    ``scipy.linalg.sqrtm``'s answer where that one is defined.

    Returns:
        d^2 (the FID when the Gaussians are fitted to Inception features), >= 0.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2,
                                                                                   np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2,
                                                                                   np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"frechet_distance: shapes do not match: mu {mu1.shape} / {mu2.shape}, "
                         f"sigma {s1.shape} / {s2.shape}")
    for name, a in (("mu1", mu1), ("mu2", mu2), ("sigma1", s1), ("sigma2", s2)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"frechet_distance: {name} contains NaN or infinite values")
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    eigenvalues = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    trace_sqrt = float(np.sum(np.sqrt(_clip_round_off(eigenvalues))))
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)
    return max(value, 0.0)  # round-off can give -1e-12 for identical inputs


def fid(real, fake) -> float:
    """Fréchet distance of the Gaussians fitted to two feature sets (>= 2 samples each)."""
    real, fake = _pair(real, fake, min_rows=2)
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


# ----------------------------------------------------------------------------- KID


def polynomial_kernel(x, y, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """k(x, y) = (x . y / d + coef0) ** degree, ``[n, m]`` (Binkowski et al. 2018, sec. 4)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(k_xx, k_yy, k_xy) -> float:
    """Unbiased MMD^2 from kernel matrices (Gretton et al. 2012, eq. 3: the U-statistic).

    MMD_u^2 = sum_{i!=j} k(x_i, x_j) / (n(n-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
              - 2 sum_{i,j} k(x_i, y_j) / (n m).

    It can be negative (it estimates 0 without bias when the distributions agree).
    """
    k_xx, k_yy, k_xy = (np.asarray(k, np.float64) for k in (k_xx, k_yy, k_xy))
    n, m = k_xx.shape[0], k_yy.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"unbiased MMD needs >= 2 samples per set, got {n} and {m}")
    if k_xx.shape != (n, n) or k_yy.shape != (m, m) or k_xy.shape != (n, m):
        raise ValueError(f"kernel shapes do not match: {k_xx.shape}, {k_yy.shape}, "
                         f"{k_xy.shape}")
    xx = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(xx + yy - 2.0 * k_xy.mean())


def kid(real, fake, subsets: int = 100, subset_size: int = 1000, seed=0) -> dict:
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2, cubic kernel.

    As their reference code: ``subsets`` times, draw ``s = min(n, m, subset_size)`` samples of
    each set without replacement, compute :func:`mmd2_unbiased` with
    :func:`polynomial_kernel` (degree 3, coef0 1, scaled by 1/d), report mean and sd over the
    subsets. Unlike FID it has no bias at small n: its expectation is the population MMD^2.
    When both sets have ``s`` samples every subset is the whole set: computed once (sd 0).

    Returns:
        ``{"mean", "sd", "values", "subsets", "subset_size"}`` (sd with ddof 1).
    """
    real, fake = _pair(real, fake, min_rows=2)
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"kid needs subsets >= 1 and subset_size >= 2, got {subsets}, "
                         f"{subset_size}")
    rng = _rng(seed)
    s = min(real.shape[0], fake.shape[0], int(subset_size))
    if s == real.shape[0] == fake.shape[0]:
        subsets = 1  # every subset would be the whole of both sets
    values = []
    for _ in range(int(subsets)):
        x = real[rng.choice(real.shape[0], s, replace=False)]
        y = fake[rng.choice(fake.shape[0], s, replace=False)]
        values.append(mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(y, y),
                                    polynomial_kernel(x, y)))
    return {**mean_sd(values), "values": [float(v) for v in values],
            "subsets": int(subsets), "subset_size": int(s)}


# ----------------------------------------------------------------------------- MMD, 1-NN


def squared_distances(x, y) -> np.ndarray:
    """||x_i - y_j||^2, ``[n, m]`` (clipped at 0 against round-off)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.clip(d, 0.0, None)


def gaussian_mmd(real, fake, sigma: float = 1.0) -> float:
    """Kernel MMD with a Gaussian kernel, as Xu et al. 2018 score GANs (paper 003's "MMD").

    k(a, b) = exp(-||a - b||^2 / (2 sigma^2 s)), with the bandwidth scale s the mean squared
    distance between the real samples (diagonal included), and

        MMD = sqrt( mean k(X, X) + mean k(Y, Y) - 2 mean k(X, Y) )

    over all pairs, self-pairs included (the biased V-statistic, >= 0, at most sqrt(2)); Xu et
    al.'s reference code (``GAN-Metrics``, ``mmd(Mxx, Mxy, Myy, sigma=1)``) does exactly this.
    Paper 003 (Liang & Chen, Table I) reports 0.109-0.160 with it.
    """
    real, fake = _pair(real, fake, min_rows=1)
    if not sigma > 0:
        raise ValueError(f"gaussian_mmd: sigma must be > 0, got {sigma!r}")
    d_xx, d_yy, d_xy = (squared_distances(real, real), squared_distances(fake, fake),
                        squared_distances(real, fake))
    scale = float(d_xx.mean())
    if scale == 0.0:  # all real samples identical: fall back to the pooled spread, else 1
        scale = float(np.concatenate([d_xy.ravel(), d_yy.ravel()]).mean()) or 1.0
    gamma = 1.0 / (2.0 * sigma * sigma * scale)
    value = (np.exp(-gamma * d_xx).mean() + np.exp(-gamma * d_yy).mean()
             - 2.0 * np.exp(-gamma * d_xy).mean())
    return math.sqrt(max(float(value), 0.0))


def one_nn_accuracy(real, fake) -> dict:
    """Leave-one-out 1-nearest-neighbour two-sample accuracy (Lopez-Paz & Oquab 2017; Xu et
    al. 2018).

    Pool the real (label 1) and fake (label 0) samples; classify each by the label of its
    nearest other sample (Euclidean; ties go to the lower index, reals first). Accuracy 0.5:
    the sets are indistinguishable; 1: separable; well below 0.5: each fake sits on a real
    (memorised training images).

    Returns:
        ``{"accuracy", "real", "fake"}``: over all samples, over the reals, over the fakes.
    """
    real, fake = _pair(real, fake, min_rows=1)
    n, m = real.shape[0], fake.shape[0]
    pooled = np.concatenate([real, fake])
    labels = np.concatenate([np.ones(n, bool), np.zeros(m, bool)])
    d = squared_distances(pooled, pooled)
    np.fill_diagonal(d, np.inf)
    predicted = labels[np.argmin(d, axis=1)]
    correct = predicted == labels
    return {"accuracy": float(correct.mean()), "real": float(correct[:n].mean()),
            "fake": float(correct[n:].mean())}


def repeated(metric: Callable, real, fake, repeats: int = 10, sample: int = 100,
             seed=0) -> dict:
    """Paper 003's protocol: ``metric`` on ``repeats`` random draws of ``sample`` items each.

    Liang & Chen (sec. III-B): "MMD and 1-NN are calculated by averaging values of 10 test
    with 100 randomly selected images from each distribution". Each draw is without
    replacement; a set smaller than ``sample`` is used whole. When both are, all draws would
    agree and the metric is computed once (``repeats`` 1, sd 0).

    Args:
        metric: ``metric(real_subset, fake_subset) -> float`` or ``-> dict`` of floats.

    Returns:
        ``{"mean", "sd", "values", "repeats", "sample"}`` for a float metric; for a dict
        metric, ``{key: {"mean", "sd", "values"}}`` plus ``repeats`` and ``sample``.
        ``sample`` is the (real, fake) sizes drawn.
    """
    if repeats < 1 or sample < 1:
        raise ValueError(f"repeated needs repeats >= 1 and sample >= 1, got {repeats}, {sample}")
    real, fake = np.asarray(real), np.asarray(fake)
    rng = _rng(seed)
    n_real, n_fake = min(len(real), int(sample)), min(len(fake), int(sample))
    if n_real == len(real) and n_fake == len(fake):
        repeats = 1
    results = []
    for _ in range(int(repeats)):
        x = real[rng.choice(len(real), n_real, replace=False)]
        y = fake[rng.choice(len(fake), n_fake, replace=False)]
        results.append(metric(x, y))
    info = {"repeats": int(repeats), "sample": [n_real, n_fake]}
    if isinstance(results[0], dict):
        return {**{k: {**mean_sd([r[k] for r in results]),
                       "values": [float(r[k]) for r in results]} for k in results[0]}, **info}
    return {**mean_sd(results), "values": [float(v) for v in results], **info}


# ----------------------------------------------------------------------------- MS-SSIM


def _distinct_pairs(n: int) -> np.ndarray:
    i, j = np.triu_indices(n, k=1)
    return np.stack([i, j], axis=1)


def ms_ssim_diversity(images: Sequence, repeats: int = 10, sample: int = 32, seed=0) -> dict:
    """Mean pairwise MS-SSIM of a set of images (paper 003; Odena et al. 2017): lower = more
    diverse.

    Liang & Chen (sec. III-B): "MS-SSIM is calculated by averaging 10 test among 32 randomly
    selected images". Each test draws ``sample`` images without replacement (all when fewer)
    and averages :func:`ms_ssim` over every distinct pair of them; mean and sd over the tests
    (one test when the set has at most ``sample`` images: every test would be the same).
    """
    images = [as_grey(im, f"image {i}") for i, im in enumerate(images)]
    if len(images) < 2:
        raise ValueError(f"ms_ssim_diversity needs >= 2 images, got {len(images)}")
    rng = _rng(seed)
    k = min(len(images), int(sample))
    if k == len(images):
        repeats = 1
    values = []
    for _ in range(int(repeats)):
        chosen = rng.choice(len(images), k, replace=False)
        values.append(float(np.mean([ms_ssim(images[chosen[i]], images[chosen[j]])
                                     for i, j in _distinct_pairs(k)])))
    return {**mean_sd(values), "values": values, "repeats": int(repeats), "sample": k}


# ----------------------------------------------------------------------------- SSIM, JS


def mean_ssim(real_images: Sequence, fake_images: Sequence, max_pairs: int = 1000,
              seed=0) -> dict:
    """Mean SSIM between real and fake images (paper 004, Maack et al. 2022, Table 1).

    Maack et al. report "the mean structural similarity index (SSIM) ... between ... the real
    images from the testset and the generated images" as mean +- sd without saying which
    pairs; here every (real, fake) pair, or ``max_pairs`` of them drawn at random without
    replacement when there are more. Each pair's SSIM is :func:`tf_usaug.metrics.image.ssim`
    (scikit-image, 7x7 window, data range 1).

    Returns:
        ``{"mean", "sd", "pairs"}``.
    """
    n, m = len(real_images), len(fake_images)
    if n < 1 or m < 1:
        raise ValueError(f"mean_ssim needs images in both sets, got {n} and {m}")
    total = n * m
    rng = _rng(seed)
    chosen = (np.arange(total) if total <= max_pairs
              else np.sort(rng.choice(total, int(max_pairs), replace=False)))
    values = [ssim(real_images[p // m], fake_images[p % m]) for p in chosen]
    return {**mean_sd(values), "pairs": int(len(values))}


def histogram_js(real_images: Sequence, fake_images: Sequence, bins: int = 256) -> float:
    """Jensen-Shannon distance of the pooled grey-value histograms of two image sets (paper
    004), base 2, in [0, 1]: :func:`tf_usaug.metrics.image.histogram_js_distance` over every
    pixel of each set (images may differ in size)."""
    if len(real_images) < 1 or len(fake_images) < 1:
        raise ValueError("histogram_js needs images in both sets")
    pool = lambda images: np.concatenate([np.asarray(im, np.float64).ravel()  # noqa: E731
                                          for im in images])
    return histogram_js_distance(pool(real_images), pool(fake_images), bins=bins)
