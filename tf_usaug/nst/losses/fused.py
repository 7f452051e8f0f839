"""Fused evaluation of the Gram-type terms: one distance to the weighted mean second-moment target,
with a hand-written gradient (equal to the per-term sum; see :func:`second_moment_distance`)."""
from __future__ import annotations

import tensorflow as tf

from .config import StyleLossConfig, _plain_python
from .common import _as_float, _channels, _flatten_samples, _reference_distribution


# --------------------------------------------------------------------------- fused second moments


@_plain_python
def second_moment_distance(samples, target, factor=None, target_energy=None) -> tf.Tensor:
    """``||F^T F / M - C||_F^2`` per image, with a hand-written gradient.

    The kernel of every Gram-type style term: ``S = F^T F / M`` is the second-moment matrix of
    the generated features ``F`` (``[B, M, N]``, eq. 5 divided by M) and ``C`` a constant
    target. Two exact ways to evaluate it, chosen by cost from the static shapes:

    * Gram form, ``O(M N^2)``: ``D = F^T F / M - C``; value ``||D||^2``; gradient
      ``4/M F D`` (one matmul, where autodiff of ``tf.square(gram - C)`` costs two).
    * Kernel form, ``O(M^2 N + M R N)``, when ``C = Z^T Z`` with a factor ``Z`` (``[B, R, N]``)
      and ``M + R < N``: value ``||F F^T||^2 / M^2 - 2 ||F Z^T||^2 / M + ||C||^2`` (the kernel
      form of the c = 0 polynomial MMD, Li et al. 2017 sec. 3), gradient
      ``4/M^2 (F F^T) F - 4/M (F Z^T) Z``. Deep layers of small images (ResNet50's
      ``conv4_block6_out`` at 128 px: M = 64, N = 1024) never form an ``N x N`` matrix.

    Args:
        samples: ``[B, M, N]`` generated features, one row per position.
        target: ``[B, N, N]`` constant target ``C``.
        factor: optional ``[B, R, N]`` with ``Z^T Z = C`` (enables the kernel form).
        target_energy: optional ``[B]`` ``||C||^2`` (computed from ``target`` if None).

    Returns:
        ``[B]``; no gradient flows to ``target`` or ``factor`` (they are constants).
    """
    samples = _as_float(samples)
    dtype = samples.dtype
    target = tf.stop_gradient(tf.cast(target, dtype))
    positions = tf.cast(tf.shape(samples)[1], dtype)
    count, channels = samples.shape[1], samples.shape[2]
    rank = None if factor is None else factor.shape[1]
    kernel_form = (None not in (count, channels, rank)) and count + rank < channels

    if kernel_form:
        factor = tf.stop_gradient(tf.cast(factor, dtype))
        if target_energy is None:
            target_energy = tf.reduce_sum(tf.square(target), axis=[1, 2])
        energy = tf.stop_gradient(tf.cast(target_energy, dtype))

        @tf.custom_gradient
        def distance(features):
            kernel = tf.linalg.matmul(features, features, transpose_b=True)      # [B, M, M]
            cross = tf.linalg.matmul(features, factor, transpose_b=True)         # [B, M, R]
            value = (tf.reduce_sum(tf.square(kernel), axis=[1, 2]) / tf.square(positions)
                     - 2.0 * tf.reduce_sum(tf.square(cross), axis=[1, 2]) / positions + energy)

            def grad(upstream):
                g = (4.0 / tf.square(positions)) * tf.linalg.matmul(kernel, features) \
                    - (4.0 / positions) * tf.linalg.matmul(cross, factor)
                return g * tf.cast(upstream, dtype)[:, None, None]

            # the three terms cancel as S -> C: rounding must not make a distance negative
            return tf.maximum(value, 0.0), grad
    else:
        @tf.custom_gradient
        def distance(features):
            diff = tf.linalg.matmul(features, features, transpose_a=True) / positions - target

            def grad(upstream):
                factor_ = (4.0 / positions) * tf.cast(upstream, dtype)[:, None, None]
                return tf.linalg.matmul(features, diff) * factor_

            return tf.reduce_sum(tf.square(diff), axis=[1, 2]), grad

    return distance(samples)


def _fused_target(entry: dict, features, mr_features, cfg: StyleLossConfig) -> dict | None:
    """One target for all second-moment terms of an unmasked layer loss.

    ``sum_t w_t ||S - S_t||^2 = W ||S - C||^2 + sum_t w_t ||S_t - C||^2`` with ``W = sum_t
    w_t`` and ``C = sum_t w_t S_t / W`` (the weighted mean target; the constant is the
    targets' weighted spread, >= 0). The factor ``Z`` with ``Z^T Z = C`` stacks every
    target's samples scaled by ``sqrt(w_t p_k / W)``; it is kept only when it has fewer rows
    than channels (otherwise the kernel form of ``second_moment_distance`` never pays).
    """
    weights = {name: w for name, w in cfg.term_weights.items() if w > 0}
    if not weights:
        return None
    total = sum(weights.values())
    moments = {name: entry[name]["second_moment"][:, 0] for name in weights}  # [B, N, N]
    target = tf.add_n([w * moments[name] for name, w in weights.items()]) / total
    constant = tf.add_n([w * tf.reduce_sum(tf.square(moments[name] - target), axis=[1, 2])
                         for name, w in weights.items()])
    parts = []
    for name, w in weights.items():
        if name == "multi_reference":
            samples = _flatten_samples(mr_features)
            probs = tf.ones_like(samples[..., 0]) / tf.cast(tf.shape(samples)[1], samples.dtype)
        else:
            samples, probs, _ = _reference_distribution(features, None, cfg.average)
            probs = probs[:, 0]
        parts.append(samples * tf.sqrt(probs * (w / total))[..., None])
    factor = tf.concat(parts, axis=1)
    out = {"target": target, "energy": tf.reduce_sum(tf.square(target), axis=[1, 2]),
           "constant": constant}
    if factor.shape[1] is not None and factor.shape[2] is not None \
            and factor.shape[1] < factor.shape[2]:
        out["factor"] = factor
    return out


def _fused_layer_loss(gen, fused: dict, cfg: StyleLossConfig) -> tf.Tensor:
    """``(W ||S - C||^2 + constant) / (4 N^2)``: the unmasked layer loss of ``_fused_target``."""
    samples = _flatten_samples(gen)
    height, width = gen.shape[-3], gen.shape[-2]
    # static M and N pick the cheaper form of second_moment_distance at trace time
    samples.set_shape([gen.shape[0], height * width if height and width else None,
                       gen.shape[-1]])
    total = sum(w for w in cfg.term_weights.values() if w > 0)
    dtype = samples.dtype
    distance = second_moment_distance(samples, fused["target"], fused.get("factor"),
                                      fused["energy"])
    value = total * distance + tf.cast(fused["constant"], dtype)
    return value / (4.0 * tf.square(_channels(gen, dtype)))
