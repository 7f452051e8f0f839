"""The stylizer's perceptual loss: the NST engine's own terms on a frozen loss network.

``L = alpha L_c / s_c + beta sum_l L_s,l / s_l (+ tv_weight L_tv / s_tv)`` per image (paper
002 eq. 1; Johnson et al. 2016 eqs. 2-5 with paper 002's terms), where

* ``L_c`` is :func:`tf_usaug.nst.losses.content_loss` on the backbone's content layer,
  weighted by the content's LRP relevance map when a classifier run is given (paper 002 eq. 2);
* ``L_s,l`` is :func:`tf_usaug.nst.losses.style_loss` of layer ``l`` against
  :func:`~tf_usaug.nst.losses.build_style_targets` of the image's ``n`` references
  (``StyleLossConfig()``: poly-MMD + multi-reference, paper 002 eq. 14); layers with fewer
  positions than channels at the training size are left out (docs/losses.md, thin layers);
* ``s_c``, ``s_l``, ``s_tv`` are constants measured once on a calibration batch before training
  (:meth:`PerceptualLoss.calibrate`): the content loss of an all-zero feature map, each style
  layer's loss at the content images themselves (the identity mapping; floored like the NST
  engine's), the TV of the contents. They make the terms dimensionless like the NST engine's
  per-image ``normalize="initial"`` (docs/nst.md), but are one set for the whole training,
  so a step's loss is comparable with every other step's.

No gradient reaches the loss network (frozen, batch norm folded); only the transform network
is trained.
"""
from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from ...nst import losses as L
from ...nst.backbones import FeatureExtractor
from ...nst.config import STYLE_SCALE_FLOOR

_TINY = 1e-30


class PerceptualLoss:
    """Content + style (+ TV) terms of generated images against contents and references.

    Args:
        extractor: the frozen loss network (:func:`tf_usaug.nst.backbones.build_extractor`).
        style_cfg: the style loss (``StyleLossConfig()``, optionally with an average).
        size: the training side; decides which style layers carry statistics.
        content_weight / style_weight / tv_weight: alpha, beta and the TV weight.
        scales: ``{"content": s_c, "style/<layer>": s_l, "tv": s_tv}`` from :meth:`calibrate`
            (None: ones, i.e. raw losses, until calibrated).
    """

    def __init__(self, extractor: FeatureExtractor, style_cfg: L.StyleLossConfig, size: int,
                 content_weight: float = 1.0, style_weight: float = 1.0,
                 tv_weight: float = 0.0, scales: Mapping[str, float] | None = None):
        self.extractor = extractor
        self.style_cfg = style_cfg
        self.content_layer = extractor.content_layer
        self.content_weight, self.style_weight = float(content_weight), float(style_weight)
        self.tv_weight = float(tv_weight)
        shapes = extractor.feature_shapes(size, size)
        usable = L.usable_style_layers({l: shapes[l] for l in extractor.style_layers},
                                       style_cfg.min_positions_per_channel)
        self.style_layers = tuple(l for l in extractor.style_layers if usable[l])
        self.left_out = tuple((l, shapes[l]) for l in extractor.style_layers if not usable[l])
        self.scales = dict(scales) if scales else {}

    # ------------------------------------------------------------------ constants of a batch

    def features(self, contents, styles):
        """One backbone pass over contents ``[B, H, W, 1]`` and references ``[B, n, H, W, 1]``:
        ``(content features [B, h, w, c], style targets)`` (constants: no gradient)."""
        batch, refs = tf.shape(styles)[0], tf.shape(styles)[1]
        hw1 = tf.shape(styles)[2:]
        flat = tf.reshape(styles, tf.concat([[batch * refs], hw1], 0))
        feats = self.extractor(tf.concat([contents, flat], 0))
        content = tf.stop_gradient(feats[self.content_layer][:batch])
        style = {}
        for layer in self.style_layers:
            f = tf.stop_gradient(feats[layer][batch:])
            style[layer] = tf.reshape(f, tf.concat([[batch, refs], tf.shape(f)[1:]], 0))
        return content, L.build_style_targets(style, self.style_cfg)

    # ------------------------------------------------------------------ the terms

    def raw_terms(self, generated, content_features, targets, content_weights=None
                  ) -> dict[str, tf.Tensor]:
        """Unbalanced terms ``{name: [B]}`` of generated images ``[B, H, W, 1]``."""
        feats = self.extractor(generated)
        terms = {"content": L.content_loss(feats[self.content_layer], content_features,
                                           weight=content_weights)}
        for layer in self.style_layers:
            terms[f"style/{layer}"] = L.style_loss({layer: feats[layer]},
                                                   {layer: targets[layer]}, self.style_cfg)
        if self.tv_weight > 0:
            terms["tv"] = L.total_variation_loss(generated)
        return terms

    def terms(self, generated, content_features, targets, content_weights=None
              ) -> dict[str, tf.Tensor]:
        """Balanced terms ``{"content", "style/<layer>", "style", ("tv"), "total"}``, each
        ``[B]``."""
        raw = self.raw_terms(generated, content_features, targets, content_weights)
        out = {name: value / self.scales.get(name, 1.0) for name, value in raw.items()}
        out["style"] = tf.add_n([out[f"style/{l}"] for l in self.style_layers])
        total = self.content_weight * out["content"] + self.style_weight * out["style"]
        if self.tv_weight > 0:
            total += self.tv_weight * out["tv"]
        out["total"] = total
        return out

    # ------------------------------------------------------------------ balancing

    def calibrate(self, contents, styles, content_weights=None) -> dict[str, float]:
        """Measure the scales on a calibration batch and keep them (see the module doc).

        Returns:
            ``{"content": s_c, "style/<layer>": s_l[, "tv": s_tv]}`` as Python floats
            (stored in the training state, so a resumed run uses the same).
        """
        contents = tf.convert_to_tensor(contents, tf.float32)
        content_features, targets = self.features(contents, tf.convert_to_tensor(styles,
                                                                                 tf.float32))
        feats = self.extractor(contents)
        zero = L.content_loss(tf.zeros_like(content_features), content_features,
                              weight=content_weights)
        scales = {"content": max(float(tf.reduce_mean(zero)), _TINY)}
        for layer in self.style_layers:
            at_content = L.style_loss({layer: feats[layer]}, {layer: targets[layer]},
                                      self.style_cfg)
            energy = L.style_loss({layer: tf.zeros_like(feats[layer])}, {layer: targets[layer]},
                                  self.style_cfg)
            scales[f"style/{layer}"] = max(float(tf.reduce_mean(at_content)),
                                           STYLE_SCALE_FLOOR * float(tf.reduce_mean(energy)),
                                           _TINY)
        if self.tv_weight > 0:
            scales["tv"] = max(float(tf.reduce_mean(L.total_variation_loss(contents))), _TINY)
        self.scales = scales
        return dict(scales)
