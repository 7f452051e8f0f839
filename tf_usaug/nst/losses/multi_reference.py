"""Multi-reference style (mr2NST, Wang et al. 2020; paper 002 eq. 9): element-wise max over references,
histogram specification."""
from __future__ import annotations

import tensorflow as tf

from .config import _plain_python
from .common import _as_float, _check_rank, _flatten_samples
from .mmd import mmd_style_loss


# --------------------------------------------------------------------------- multi-reference


@_plain_python
def histogram_specification(source, reference) -> tf.Tensor:
    """Map source values so that, per channel, their distribution is the reference's.

    Rank / quantile matching (``H`` of paper 002 eq. 9 / Wang et al. 2020, matching a density
    histogram, here in its continuous limit without binning): the source value of rank k (of
    S) becomes the reference quantile at ``(k + 1/2) / S`` (Hazen plotting position, linear
    interpolation between sorted reference values). Exact when both have the same number of
    samples: the output is then a permutation of the reference values in the source's rank
    order. Ties in the source are broken by position. Gradients reach ``reference`` only.

    Args:
        source: ``[B, ..., c]``.
        reference: ``[B, ..., c]`` (any number of samples, e.g. ``[B, n, h, w, c]``).

    Returns:
        Same shape as ``source``.
    """
    source = _as_float(source)
    reference = tf.cast(_as_float(reference), source.dtype)
    _check_rank(source, (3, 4, 5), "source")
    _check_rank(reference, (3, 4, 5), "reference")
    src = tf.transpose(_flatten_samples(source), [0, 2, 1])      # [B, c, S]
    ref = tf.sort(tf.transpose(_flatten_samples(reference), [0, 2, 1]), axis=-1)  # [B, c, R]
    num_src, num_ref = tf.shape(src)[-1], tf.shape(ref)[-1]
    ranks = tf.cast(tf.range(num_src), tf.float64)
    position = (ranks + 0.5) * tf.cast(num_ref, tf.float64) / tf.cast(num_src, tf.float64) - 0.5
    position = tf.clip_by_value(position, 0.0, tf.cast(num_ref - 1, tf.float64))
    lower = tf.cast(tf.floor(position), tf.int32)
    upper = tf.minimum(lower + 1, num_ref - 1)
    frac = tf.cast(position - tf.floor(position), source.dtype)
    quantiles = (tf.gather(ref, lower, axis=-1) * (1.0 - frac)
                 + tf.gather(ref, upper, axis=-1) * frac)          # [B, c, S], by rank
    order = tf.argsort(src, axis=-1, stable=True)
    rank_of = tf.argsort(order, axis=-1, stable=True)               # inverse permutation
    matched = tf.gather(quantiles, rank_of, axis=-1, batch_dims=2)
    return tf.reshape(tf.transpose(matched, [0, 2, 1]), tf.shape(source))


@_plain_python
def multi_reference_target(style_features) -> tf.Tensor:
    """Multi-reference target map, paper 002 eq. 9 (mr2NST, Wang et al. 2020).

    ``H(M(F(I_s1), ..., F(I_sn)), h_bar)``: the element-wise max over the n references'
    feature maps, then histogram specification (per channel) to the density histogram of the
    references' pooled values. One reference gives back its own features exactly.

    Args:
        style_features: ``[B, n, h, w, c]`` (references of one size).

    Returns:
        ``[B, h, w, c]``; its Gram is ``G_l`` of eqs. 8-9.
    """
    style = _as_float(style_features)
    _check_rank(style, (5,), "style_features")
    return histogram_specification(tf.reduce_max(style, axis=1), style)


@_plain_python
def multi_reference_style_loss(gen, target) -> tf.Tensor:
    """Multi-reference style loss E_l, paper 002 eqs. 7-8: the Gram loss against G(target).

    ``1/(4 N^2) sum (G(I_hat)/M - G(target)/M_t)^2``, i.e. eq. 8 with both Grams per position,
    so ``target`` (from ``multi_reference_target``) may have another size than ``gen``.

    Args:
        gen: ``[B, h, w, c]``.
        target: ``[B, h', w', c]``.

    Returns:
        ``[B]``.
    """
    gen = _as_float(gen)
    _check_rank(gen, (4,), "gen")
    _check_rank(tf.convert_to_tensor(target), (4,), "target")
    return mmd_style_loss(gen, target, kernel="poly")
