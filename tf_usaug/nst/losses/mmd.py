"""Maximum mean discrepancy style loss (Li et al. 2017; paper 002 eqs. 6-8): poly, linear, Gaussian, BN kernels."""
from __future__ import annotations

import tensorflow as tf

from .config import MMD_KERNELS, _TINY, _plain_python
from .common import (_as_float, _channels, _check_rank, _flatten_samples, _flatten_weights,
                     _probabilities, _scalar)


# --------------------------------------------------------------------------- MMD (Li et al.)


def _second_moment(samples, probs) -> tf.Tensor:
    """``S_d = sum_k p_dk f_k f_k^T``: ``[B, S, c]``, ``[B, D, S]`` -> ``[B, D, c, c]``."""
    weighted = samples[:, None] * probs[..., None]
    return tf.linalg.matmul(weighted, samples[:, None], transpose_a=True)


def _weighted_mean(samples, probs) -> tf.Tensor:
    """``mu_d = sum_k p_dk f_k``: ``[B, D, c]``."""
    return tf.linalg.matmul(probs, samples)


def _subsample(samples, probs, max_samples: int, sample_offset):
    """Every ``stride``-th sample (from ``sample_offset mod stride``) so that at most
    ``max_samples`` remain; probabilities are renormalised per label.

    Deterministic (graph-safe, no RNG); the engine may rotate ``sample_offset`` per step so
    every position is visited.
    """
    count = samples.shape[1] if samples.shape[1] is not None else tf.shape(samples)[1]
    stride = (count + max_samples - 1) // max_samples
    # a fixed number of samples whatever the offset, so shapes stay static (XLA)
    start = tf.math.floormod(tf.cast(sample_offset, tf.int32), stride)
    index = start + stride * tf.range(count // stride)
    kept = tf.gather(samples, index, axis=1)
    kept_probs = tf.gather(probs, index, axis=2)
    mass = tf.reduce_sum(kept_probs, axis=-1, keepdims=True)
    return kept, kept_probs / tf.maximum(mass, _TINY)


def _kernel_statistics(kernel: str, samples, probs, *, poly_offset: float = 0.0,
                       max_samples: int = 1024, sample_offset=0,
                       bn_epsilon: float = 1e-5) -> dict:
    """What one side of an MMD needs, per label: a dict of tensors (precomputable targets).

    poly: second-moment matrix of ``[f, sqrt(c)]`` (so ``k = (x^T y + c)^2``); linear: mean;
    bn: mean and std; gaussian: mean, mean squared norm (for the bandwidth) and the
    (subsampled) samples with their probabilities.
    """
    if kernel == "poly":
        if poly_offset:
            ones = tf.ones_like(samples[..., :1]) * tf.sqrt(_scalar(poly_offset, samples.dtype))
            samples = tf.concat([samples, ones], axis=-1)
        return {"second_moment": _second_moment(samples, probs)}
    mean = _weighted_mean(samples, probs)
    if kernel == "linear":
        return {"mean": mean}
    if kernel == "bn":
        centred = samples[:, None] - mean[:, :, None]
        variance = tf.reduce_sum(probs[..., None] * tf.square(centred), axis=2)
        return {"mean": mean, "std": tf.sqrt(variance + bn_epsilon)}
    if kernel == "gaussian":
        mean_sq_norm = tf.linalg.matmul(probs, tf.reduce_sum(tf.square(samples), -1)[..., None])
        kept, kept_probs = _subsample(samples, probs, max_samples, sample_offset)
        return {"mean": mean, "mean_sq_norm": mean_sq_norm[..., 0],
                "samples": kept, "probs": kept_probs}
    raise ValueError(f"unknown MMD kernel {kernel!r}; expected one of {MMD_KERNELS}")


def _gaussian_bandwidth(stats_x: dict, stats_y: dict) -> tf.Tensor:
    """sigma^2 = E||z - z'||^2 over the pooled distribution P = (P_x + P_y) / 2, per label.

    Li et al. 2017 set sigma^2 to the mean squared distance of sample pairs; here it is exact
    and O(M N) through ``E||z - z'||^2 = 2 (E||z||^2 - ||E z||^2)`` (self-pairs included),
    computed in-graph on all positions and held constant (stop_gradient). ``[B, D]``.
    """
    mean = 0.5 * (stats_x["mean"] + stats_y["mean"])
    mean_sq_norm = 0.5 * (stats_x["mean_sq_norm"] + stats_y["mean_sq_norm"])
    sigma2 = 2.0 * (mean_sq_norm - tf.reduce_sum(tf.square(mean), axis=-1))
    return tf.stop_gradient(tf.maximum(sigma2, _TINY))


def _gaussian_kernel_mean(a, pa, b, pb, sigma2) -> tf.Tensor:
    """``sum_ij pa_di pb_dj exp(-||a_i - b_j||^2 / (2 sigma2_d))`` -> ``[B, D]``."""
    sq_a = tf.reduce_sum(tf.square(a), axis=-1)
    sq_b = tf.reduce_sum(tf.square(b), axis=-1)
    dist = sq_a[:, :, None] + sq_b[:, None, :] - 2.0 * tf.linalg.matmul(a, b, transpose_b=True)
    dist = tf.maximum(dist, 0.0)
    kernel = tf.exp(-dist[:, None] / (2.0 * sigma2[..., None, None]))  # [B, D, Sa, Sb]
    return tf.reduce_sum(pa * tf.linalg.matmul(kernel, pb[..., None])[..., 0], axis=-1)


def _kernel_discrepancy(kernel: str, stats_x: dict, stats_y: dict, sigma2=None) -> tf.Tensor:
    """MMD^2 (biased V-statistic) between two sides' statistics, per label ``[B, D]``.

    poly: ``sum_ij (S_x - S_y)_ij^2`` (the Gram identity of Li et al. sec. 3, O(M N^2));
    linear: ``||mu_x - mu_y||^2``; bn: ``sum_c (mu_x - mu_y)^2 + (sigma_x - sigma_y)^2``
    (Li et al.'s BN-statistics matching, not an MMD but its moment-matching cousin);
    gaussian: ``E k(x,x') + E k(y,y') - 2 E k(x,y)`` on the subsampled positions.
    """
    if kernel == "poly":
        diff = stats_x["second_moment"] - stats_y["second_moment"]
        return tf.reduce_sum(tf.square(diff), axis=[-2, -1])
    if kernel == "linear":
        return tf.reduce_sum(tf.square(stats_x["mean"] - stats_y["mean"]), axis=-1)
    if kernel == "bn":
        return (tf.reduce_sum(tf.square(stats_x["mean"] - stats_y["mean"]), axis=-1)
                + tf.reduce_sum(tf.square(stats_x["std"] - stats_y["std"]), axis=-1))
    if kernel == "gaussian":
        if sigma2 is None:
            sigma2 = _gaussian_bandwidth(stats_x, stats_y)
        else:
            sigma2 = tf.ones_like(stats_x["mean"][..., 0]) * _scalar(sigma2, stats_x["mean"].dtype)
        x, px, y, py = stats_x["samples"], stats_x["probs"], stats_y["samples"], stats_y["probs"]
        return (_gaussian_kernel_mean(x, px, x, px, sigma2)
                + _gaussian_kernel_mean(y, py, y, py, sigma2)
                - 2.0 * _gaussian_kernel_mean(x, px, y, py, sigma2))
    raise ValueError(f"unknown MMD kernel {kernel!r}; expected one of {MMD_KERNELS}")


def _present(mass_x, mass_y, dtype) -> tf.Tensor:
    """1 where a label is present on both sides, 0 where either side is empty: ``[B, D]``."""
    return tf.cast((mass_x > 0) & (mass_y > 0), dtype)


@_plain_python
def mmd2(x, y, kernel: str = "poly", x_weights=None, y_weights=None, *,
         poly_offset: float = 0.0, sigma2=None, max_samples: int = 1024, sample_offset=0,
         bn_epsilon: float = 1e-5) -> tf.Tensor:
    """Squared MMD between the feature distributions of x and y (Li et al. 2017, sec. 3).

    Biased V-statistic ``E k(x,x') + E k(y,y') - 2 E k(x,y)`` over positions (and references).
    Kernels: "poly" ``(x^T y + c)^2`` computed through second moments (O(M N^2), never
    O(M^2)); "linear" ``x^T y``; "gaussian" ``exp(-||x - y||^2 / (2 sigma^2))`` with sigma^2 the
    pooled mean squared pairwise distance under stop_gradient unless given (O(M^2): at most
    ``max_samples`` positions per side enter, by a fixed stride starting at ``sample_offset``);
    "bn" BN-statistics matching (per-channel mean and std).

    Args:
        x, y: ``[B, ..., c]`` features, e.g. ``[B, h, w, c]`` or ``[B, n, h, w, c]``; the two
            may have different numbers of positions.
        kernel: one of ``MMD_KERNELS``.
        x_weights, y_weights: optional non-negative sample weights ``[B, ...]`` (one label) or
            ``[B, D, ...]`` (D labels, then the result is summed over labels; a label empty on
            either side contributes 0).
        poly_offset: c of the polynomial kernel (0: Gram equivalence).
        sigma2: fixed Gaussian bandwidth; None estimates it.
        max_samples: Gaussian kernel cap on positions per side.
        sample_offset: int (tensor) rotating the Gaussian subsample.
        bn_epsilon: variance floor of the "bn" kernel.

    Returns:
        ``[B]``.
    """
    x, y = _as_float(x), _as_float(y)
    y = tf.cast(y, x.dtype)
    _check_rank(x, (3, 4, 5), "x")
    _check_rank(y, (3, 4, 5), "y")
    options = dict(poly_offset=poly_offset, max_samples=max_samples, bn_epsilon=bn_epsilon)
    sides = []
    for feats, weights, offset in ((x, x_weights, sample_offset), (y, y_weights, 0)):
        flat = _flatten_samples(feats)
        probs, mass = _probabilities(_flatten_weights(weights, feats), tf.shape(flat)[1],
                                     tf.shape(flat)[0], flat.dtype)
        sides.append((_kernel_statistics(kernel, flat, probs, sample_offset=offset, **options),
                      mass))
    (stats_x, mass_x), (stats_y, mass_y) = sides
    per_label = _kernel_discrepancy(kernel, stats_x, stats_y, sigma2)
    return tf.reduce_sum(per_label * _present(mass_x, mass_y, per_label.dtype), axis=-1)


@_plain_python
def mmd_style_loss(gen, style, kernel: str = "poly", **mmd_options) -> tf.Tensor:
    """MMD style loss, paper 002 eq. 6: ``L_MMD = 1/(4 N^2) MMD^2[F_l, F_l(I_s)]``.

    With ``kernel="poly"`` (c = 0) this equals the Gram loss E_l of eq. 4 exactly (Li et al.
    2017). The same 1/(4N^2) is kept for every kernel (Li et al. use kernel-specific
    normalisers; a constant factor per kernel that ``mmd_weight`` absorbs).

    Args:
        gen: generated features ``[B, h, w, c]``.
        style: style features ``[B, h', w', c]`` or ``[B, n, h', w', c]`` (n references pooled).
        kernel: one of ``MMD_KERNELS``.
        **mmd_options: passed to ``mmd2`` (weights, poly_offset, sigma2, max_samples, ...).

    Returns:
        ``[B]``.
    """
    gen = _as_float(gen)
    channels = _channels(gen, gen.dtype)
    return mmd2(gen, style, kernel, **mmd_options) / (4.0 * tf.square(channels))
