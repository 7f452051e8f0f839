"""The combined style loss of a :class:`StyleLossConfig`: targets per layer, then the per-image loss
(paper 002 eq. 14: the proposed L_ps = MMD + multi-reference)."""
from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from .config import StyleLossConfig, _plain_python
from .common import (_as_float, _channels, _check_rank, _flatten_samples, _mask_weights,
                     _probabilities, _reference_distribution, _static_hw, downsample_mask)
from .mmd import _kernel_discrepancy, _kernel_statistics, _present
from .multi_reference import multi_reference_target
from .fused import _fused_layer_loss, _fused_target


# --------------------------------------------------------------------------- per-config loss


def _kernel_options(cfg: StyleLossConfig, sample_offset=0) -> dict:
    return dict(poly_offset=cfg.poly_offset, max_samples=cfg.gaussian_max_samples,
                sample_offset=sample_offset, bn_epsilon=cfg.bn_epsilon)


def _layer_statistics(features, mr_features, cfg: StyleLossConfig, style_weights,
                      mr_weights) -> dict:
    """Constant style-side statistics of one layer for ``cfg`` (a dict of tensors)."""
    out = {}
    if cfg.kind == "gram":
        samples, probs, mass = _reference_distribution(features, style_weights, cfg.average)
        out["gram"] = _kernel_statistics("poly", samples, probs)
        out["mass"] = mass
    if cfg.uses_mmd:
        samples, probs, mass = _reference_distribution(features, style_weights, cfg.average)
        out["mmd"] = _kernel_statistics(cfg.mmd_kernel, samples, probs, **_kernel_options(cfg))
        out["mass"] = mass
    if cfg.uses_multi_reference:
        samples = _flatten_samples(mr_features)
        probs, mass = _probabilities(mr_weights, tf.shape(samples)[1], tf.shape(samples)[0],
                                     samples.dtype)
        out["multi_reference"] = _kernel_statistics("poly", samples, probs)
        out["multi_reference_mass"] = mass
    return out


def _style_weights(masks, features) -> tuple:
    """Label-mask sample weights for references ``[B, n, h, w, c]``.

    ``masks``: ``[B, D, H, W]`` (shared by all references) or ``[B, n, D, H, W]``. Returns
    (weights ``[B, D, n, h*w]`` for the pooled references, weights ``[B, D, h*w]`` for the
    multi-reference map: the element-wise max of the references' masks, like eq. 9).
    """
    masks = tf.convert_to_tensor(masks)
    _check_rank(masks, (4, 5), "style_masks")
    hw = _static_hw(features)
    refs = tf.shape(features)[1]
    if masks.shape.rank == 4:
        low = tf.square(downsample_mask(masks, hw))                        # [B, D, h, w]
        shape = tf.shape(low)
        flat = tf.reshape(low, tf.stack([shape[0], shape[1], 1, -1]))
        return tf.tile(flat, tf.stack([1, 1, refs, 1])), flat[:, :, 0]
    shape = tf.shape(masks)
    merged = tf.reshape(masks, tf.concat([[shape[0] * shape[1]], shape[2:]], axis=0))
    low = tf.square(downsample_mask(merged, hw))                           # [B*n, D, h, w]
    low_shape = tf.shape(low)
    per_ref = tf.reshape(low, tf.stack([shape[0], shape[1], low_shape[1], -1]))
    per_ref = tf.transpose(per_ref, [0, 2, 1, 3])                          # [B, D, n, h*w]
    return per_ref, tf.reduce_max(per_ref, axis=2)


@_plain_python
def build_style_targets(style_features: Mapping[str, tf.Tensor],
                        cfg: StyleLossConfig | None = None, style_masks=None) -> dict:
    """Precompute the constant style targets of every layer once, before optimisation.

    Per layer: the raw references (``"features"``, needed when content masks arrive later,
    eq. 3.1), the multi-reference map of eq. 9 (``"multi_reference_features"``) when the kind
    uses it, and the statistics each term compares against (second moments for Gram / poly-MMD /
    multi-reference, means and stds for linear / bn, subsampled samples for gaussian), with the
    averaging of ``cfg.average`` (paper 001 sec. 3.2) applied. Without style masks, when every
    term compares plain second moments (``cfg.second_moment_only``, the default), also
    ``"fused"``: their weighted mean target for ``second_moment_distance``. A nested dict of
    tensors, so it can be passed into a ``tf.function``.

    Args:
        style_features: ``{layer: [B, n, h, w, c]}`` (or ``[B, h, w, c]`` for one reference).
        cfg: the style loss configuration (default: ``StyleLossConfig()``).
        style_masks: optional label masks of the style images at image resolution,
            ``[B, D, H, W]`` (one per image, shared by its references) or ``[B, n, D, H, W]``
            (paper 001 eq. 2.5). Then ``style_loss`` needs the content masks.

    Returns:
        ``{layer: {name: tensor or dict of tensors}}``.
    """
    cfg = cfg or StyleLossConfig()
    targets = {}
    for layer in sorted(style_features):
        features = _as_float(style_features[layer])
        _check_rank(features, (4, 5), f"style_features[{layer!r}]")
        if features.shape.rank == 4:
            features = features[:, None]
        entry = {"features": features}
        style_weights = mr_weights = None
        if style_masks is not None:
            style_weights, mr_weights = _style_weights(style_masks, features)
            entry["style_weights"] = style_weights
        mr_features = None
        if cfg.uses_multi_reference:
            mr_features = multi_reference_target(features)
            entry["multi_reference_features"] = mr_features
        entry.update(_layer_statistics(features, mr_features, cfg, style_weights, mr_weights))
        if cfg.fused and cfg.second_moment_only and style_masks is None:
            fused = _fused_target(entry, features, mr_features, cfg)
            if fused is not None:
                entry["fused"] = fused
        targets[layer] = entry
    return targets


def _layer_style_loss(gen, target: dict, cfg: StyleLossConfig, masks, sample_offset):
    """One layer's style loss ``[B]`` (before w_l) for ``cfg.kind``."""
    gen = _as_float(gen)
    _check_rank(gen, (4,), "gen_features")
    samples = _flatten_samples(gen)
    batch, count = tf.shape(samples)[0], tf.shape(samples)[1]
    needed = list(cfg.term_weights)
    if any(key not in target for key in needed):
        raise ValueError(f"style targets lack {needed} for kind={cfg.kind!r}: build them with "
                         "build_style_targets and the same StyleLossConfig")
    if masks is None and cfg.fused and "fused" in target:
        return _fused_layer_loss(gen, target["fused"], cfg)
    style_masked = "style_weights" in target
    if style_masked and masks is None:
        raise ValueError("style targets were built with style masks; style_loss needs the "
                         "content masks (masks=[B, D, H, W])")
    gen_weights = None if masks is None else _mask_weights(masks, _static_hw(gen))
    if style_masked:
        labels, style_labels = gen_weights.shape[1], target["style_weights"].shape[1]
        if labels is not None and style_labels is not None and labels != style_labels:
            raise ValueError(f"content masks have {labels} labels but the style masks given to "
                             f"build_style_targets have {style_labels}")
    gen_probs, gen_mass = _probabilities(gen_weights, count, batch, samples.dtype)

    if masks is not None and not style_masked:
        # paper 001 eq. 3.1: no style masks, the content masks select the style regions too
        features = target["features"]
        style_weights, mr_weights = _style_weights(masks, features)
        target = _layer_statistics(features, target.get("multi_reference_features"), cfg,
                                   style_weights, mr_weights)

    normaliser = 4.0 * tf.square(_channels(gen, samples.dtype))

    def term(kernel, stats, mass, options):
        stats = tf.nest.map_structure(lambda t: tf.cast(t, samples.dtype), stats)
        gen_stats = _kernel_statistics(kernel, samples, gen_probs, **options)
        sigma2 = cfg.gaussian_sigma2 if kernel == "gaussian" else None
        per_label = _kernel_discrepancy(kernel, gen_stats, stats, sigma2)
        present = _present(gen_mass, tf.cast(mass, samples.dtype), samples.dtype)
        return tf.reduce_sum(per_label * present, axis=-1) / normaliser

    if cfg.kind == "gram":
        return term("poly", target["gram"], target["mass"], {})
    total = tf.zeros(tf.stack([batch]), samples.dtype)
    if cfg.uses_mmd:
        total += cfg.mmd_weight * term(cfg.mmd_kernel, target["mmd"], target["mass"],
                                       _kernel_options(cfg, sample_offset))
    if cfg.uses_multi_reference:
        total += cfg.multi_reference_weight * term("poly", target["multi_reference"],
                                                   target["multi_reference_mass"], {})
    return total


@_plain_python
def style_loss(gen_features: Mapping[str, tf.Tensor], targets: Mapping[str, dict],
               cfg: StyleLossConfig | None = None, masks=None, sample_offset=0) -> tf.Tensor:
    """Style loss ``sum_l w_l L_l`` over the target layers (paper 002 eqs. 3 / 7 / 14).

    Per layer, by ``cfg.kind``:

    * "gram": E_l of eq. 4 (references pooled or averaged per ``cfg.average``);
    * "mmd": ``1/(4N^2) MMD^2`` of eq. 6 with ``cfg.mmd_kernel``;
    * "multi_reference": E_l of eq. 8 against the Gram of the eq. 9 target;
    * "proposed": ``L_ps = a L_MMD + b E_l^mr`` with a = ``mmd_weight``, b =
      ``multi_reference_weight`` (both 1). Paper 002's eq. 14 is garbled as printed (an MMD^2
      multiplied by a sum of squared feature pairs); its text says the proposed loss
      "combines L_MMDstyle (eq. 6) and L_multi-ref (eqs. 7 and 8)" with w_l = 1, so we read it
      as their sum per layer. Both terms share the 1/(4N^2) scale: with one reference and the
      c = 0 polynomial kernel each equals the Gram loss, so L_ps = 2 E_l.

    With ``masks`` (content label masks, paper 001 eq. 2.5) every term compares per-label
    statistics (generated side: content masks; style side: the style masks given to
    ``build_style_targets``, else the content masks again, eq. 3.1). For eq. 3.1 without style
    masks the style side's masked statistics are recomputed from the stored references on every
    call (about n times the generated side's cost); when the content masks are known before
    optimisation, pass them as ``style_masks`` to ``build_style_targets`` instead - the same
    loss, precomputed once.

    Args:
        gen_features: ``{layer: [B, h, w, c]}`` of the generated images; must contain every
            target layer (other layers are ignored).
        targets: from ``build_style_targets`` with the same ``cfg``.
        cfg: the configuration (default ``StyleLossConfig()``).
        masks: optional ``[B, D, H, W]`` content label masks at image resolution.
        sample_offset: int (tensor) rotating the Gaussian-kernel subsample, e.g. the step.

    Returns:
        ``[B]``.
    """
    cfg = cfg or StyleLossConfig()
    if not targets:
        raise ValueError("style_loss: no style targets (empty dict)")
    total = None
    for layer in sorted(targets):
        if layer not in gen_features:
            raise KeyError(f"style_loss: no generated features for style layer {layer!r} "
                           f"(have {sorted(gen_features)})")
        term = cfg.layer_weight(layer) * _layer_style_loss(
            gen_features[layer], targets[layer], cfg, masks, sample_offset)
        total = term if total is None else total + term
    return total
