"""Pixel-optimisation engine of the neural style transfer (paper 002, Gatys et al. 2016).

``Stylizer(backbone_cfg, style_cfg, nst_cfg).stylize(contents, styles)`` optimises a batch of
``B`` grey images at once: Adam on the pixels, initialised from the content images, minimising
per image ``alpha * L_content + beta * L_style (+ tv_weight * L_tv)`` (paper 002 eq. 1) with the
losses of :mod:`tf_usaug.nst.losses`. The batch objective is the *sum* of the per-image losses, so
every image receives exactly its own gradient; Adam is element-wise and early stopping is
decided per image, so a batch gives (up to float rounding) the same images as ``B`` separate
runs.

Design, in the order the work happens:

* **Multi-resolution** (mr2NST, Wang et al. 2020): the images are optimised at each of
  ``scales`` in turn (coarse first), the result bilinearly upsampled to initialise the next
  scale; ``scale_fractions`` splits the iteration budget (equal by default).
* **Constants once per batch and scale**: content features, the style targets of
  ``losses.build_style_targets`` and the loss normalisers are computed before the loop.
* **Thin layers left out**, per scale: a style layer with fewer positions than channels at
  that size gets no target and no term (``losses.usable_style_layers``, switch:
  ``StyleLossConfig.min_positions_per_channel``; docs/losses.md), logged once.
* **Loss balancing** (``normalize="initial"``, default): every style layer's term is divided by
  its value for the content image, and the content loss by its value for an all-zero feature
  map (a relative feature error). Each style layer therefore starts at ``w_l`` whatever its
  magnitude (ResNet50 layers differ by orders of magnitude, more so with random weights) and
  ``beta`` / ``alpha`` are dimensionless. ``normalize="none"`` uses the raw losses.
* **One compiled step** for the whole batch, run ``check_every`` times inside one
  ``tf.function`` (a ``tf.while_loop``: no Python between steps; ``xla=True`` jit-compiles
  the step). Only the pixels are watched by the gradient tape: the backbone is frozen (and
  its batch normalisation folded, see :mod:`tf_usaug.nst.backbones`), so no weight gradient is
  ever computed.
* **Early stop per image**: every ``check_every`` steps the relative change of an image's total
  loss is compared with ``tol``; after ``patience`` small changes in a row the image stops
  (its pixels freeze). When half of a batch has stopped, the rest continues as a smaller batch.

Determinism: the result depends only on the inputs and the configuration (no random state
unless ``init_noise > 0``, whose noise is seeded by ``seed`` and the content image's bytes, so
it does not depend on the batch either). Float reductions in oneDNN / cuDNN kernels may differ
with the thread count, the batch size and the hardware, so bit-identical results need the same
machine and ``--threads``; on GPUs set ``TF_DETERMINISTIC_OPS=1`` for reproducible cuDNN
backward passes.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import tensorflow as tf

from . import losses
from .backbones import BackboneConfig, FeatureExtractor, build_extractor
from .config import STYLE_SCALE_FLOOR, _TINY, NSTConfig, OptimState, Problem, StylizeResult
from .optim import (_as_batch, adam_update, noise_generator, relative_change, resize_stack,
                    scaled_size, split_iterations)


# ---------------------------------------------------------------------------- the engine


class Stylizer:
    """Batched, multi-resolution NST: build once, call :meth:`stylize` per batch.

    Args:
        backbone_cfg: feature extractor (default ResNet50, ImageNet weights).
        style_cfg: style loss (default paper 002's MMD + multi-reference loss).
        nst_cfg: optimisation settings (default :class:`NSTConfig`).
        extractor: an already built extractor to share (then ``backbone_cfg`` is ignored).

    Example::

        stylizer = Stylizer(BackboneConfig(weights="none"), StyleLossConfig(), NSTConfig())
        result = stylizer.stylize(contents, styles)      # [B, H, W], [B, n, H, W] in [0, 1]
        result.images, result.final["style"] / result.initial["style"]
    """

    def __init__(self, backbone_cfg: BackboneConfig | None = None,
                 style_cfg: losses.StyleLossConfig | None = None,
                 nst_cfg: NSTConfig | None = None, extractor: FeatureExtractor | None = None):
        self.backbone_cfg = backbone_cfg or BackboneConfig()
        self.style_cfg = style_cfg or losses.StyleLossConfig()
        self.cfg = nst_cfg or NSTConfig()
        self.extractor = extractor or build_extractor(self.backbone_cfg,
                                                      mixed_precision=self.cfg.mixed_precision)
        self.style_layers = tuple(self.extractor.style_layers)
        self.content_layer = self.extractor.content_layer
        if self.style_cfg.layer_weights is not None:
            for layer in self.style_layers:
                self.style_cfg.layer_weight(layer)  # raises if a style layer has no weight
        self._features = tf.function(self.extractor.__call__, reduce_retracing=True)
        self._step = (tf.function(self._step_graph, jit_compile=True) if self.cfg.xla
                      else self._step_graph)
        self._run_steps = tf.function(self._run_steps_graph)
        self._evaluate = tf.function(self._loss_terms)
        # (h, w) -> ([(layer left out, shape)], [thin layers kept because all were thin])
        self._left_out: dict[tuple[int, int], tuple[list, list]] = {}
        self._reported = ("", "")

    # ------------------------------------------------------------------ constants per batch

    def prepare(self, contents, styles, content_weights=None, masks=None,
                style_masks=None) -> Problem:
        """Constants of one batch at the resolution of ``contents``.

        Args:
            contents: ``[B, H, W, 1]`` float32 tensor in [0, 1].
            styles: ``[B, n, H, W]`` references at the same size.
            content_weights: None or ``[B, H, W]`` non-negative map (e.g. LRP relevance).
            masks: None or ``[B, D, H, W]`` content label masks (paper 001 eq. 2.5 / 3.1).
            style_masks: None or ``[B, D, H, W]`` / ``[B, n, D, H, W]`` style label masks.
        Returns:
            A :class:`Problem` for :meth:`run_steps` and :meth:`evaluate`.
        """
        batch, refs = int(styles.shape[0]), int(styles.shape[1])
        height, width = int(styles.shape[2]), int(styles.shape[3])
        style_features = self._features(tf.reshape(styles, [batch * refs, height, width, 1]))
        style_features = {
            layer: tf.reshape(style_features[layer],
                              tf.concat([[batch, refs], tf.shape(style_features[layer])[1:]], 0))
            for layer in self.style_layers}
        # thin layers (fewer positions than channels at this size) carry no statistics: left
        # out of the targets, so the loss skips them (docs/losses.md, "Thin layers")
        ratio = self.style_cfg.min_positions_per_channel
        shapes = {layer: tuple(int(d) for d in f.shape[2:]) for layer, f in style_features.items()}
        usable = losses.usable_style_layers(shapes, ratio)
        self._left_out[(height, width)] = (
            [(layer, shapes[layer]) for layer in self.style_layers if not usable[layer]],
            [layer for layer in self.style_layers
             if usable[layer] and losses.is_thin(shapes[layer], ratio)])
        style_features = {layer: f for layer, f in style_features.items() if usable[layer]}
        if masks is not None and style_masks is None:
            style_masks = masks  # paper 001 eq. 3.1: content masks select the style regions
        targets = losses.build_style_targets(style_features, self.style_cfg, style_masks)
        content_all = self._features(contents)
        content_features = content_all[self.content_layer]
        if content_weights is not None:
            content_weights = losses.downsample_mask(content_weights,
                                                     tuple(content_features.shape[1:3]))
        ones = tf.ones([batch], tf.float32)
        problem = Problem(content_features, content_weights, targets, masks, ones,
                          {layer: ones for layer in targets}, ones)
        if self.cfg.normalize == "none":
            return problem
        raw = self._evaluate(contents, problem, tf.constant(0))
        zero_content = losses.content_loss(tf.zeros_like(content_features), content_features,
                                           weight=content_weights)
        style_scales = {}
        for layer in targets:
            weight = self.style_cfg.layer_weight(layer)
            if weight <= 0:
                style_scales[layer] = ones
                continue
            # the style loss of an all-zero feature map: the energy of the target statistics
            zero_style = losses.style_loss({layer: tf.zeros_like(content_all[layer])},
                                           {layer: targets[layer]}, self.style_cfg,
                                           masks=masks) / weight
            style_scales[layer] = tf.maximum(raw[f"style/{layer}"] / weight,
                                             STYLE_SCALE_FLOOR * zero_style + _TINY)
        tv_scale = tf.maximum(raw["tv"], _TINY) if self.cfg.tv_weight > 0 else ones
        return problem._replace(content_scale=tf.maximum(zero_content, _TINY),
                                style_scales=style_scales, tv_scale=tv_scale)

    # ------------------------------------------------------------------ the objective

    def _loss_terms(self, pixels, problem: Problem, step) -> dict[str, tf.Tensor]:
        """Per-image loss terms ``{name: [B]}`` of pixels ``[B, H, W, 1]`` (graph code)."""
        return self.loss_terms_from_features(self.extractor(pixels), problem, step, pixels)

    def loss_terms_from_features(self, features: dict, problem: Problem, step,
                                 pixels=None) -> dict[str, tf.Tensor]:
        """Per-image loss terms ``{name: [B]}`` of the generated images' features.

        Args:
            features: ``{layer: [B, h, w, c]}`` from the extractor.
            problem: the batch's constants (:meth:`prepare`).
            step: int scalar, rotates the Gaussian-MMD subsample (``losses.style_loss``).
            pixels: ``[B, H, W, 1]``, needed only with ``tv_weight > 0``.
        Returns:
            "content", "style/<layer>", "style", ("tv"), "total", each ``[B]``.
        """
        terms = {"content": losses.content_loss(features[self.content_layer],
                                                problem.content_features,
                                                weight=problem.content_weights)
                 / problem.content_scale}
        style = None
        for layer in self.style_layers:
            if layer not in problem.style_targets:  # a thin layer at this size: left out
                terms[f"style/{layer}"] = tf.zeros_like(terms["content"])
                continue
            value = losses.style_loss({layer: features[layer]},
                                      {layer: problem.style_targets[layer]}, self.style_cfg,
                                      masks=problem.masks, sample_offset=step)
            value = value / problem.style_scales[layer]
            terms[f"style/{layer}"] = value
            style = value if style is None else style + value
        terms["style"] = style
        total = self.cfg.content_weight * terms["content"] + self.cfg.style_weight * style
        if self.cfg.tv_weight > 0:
            terms["tv"] = losses.total_variation_loss(pixels) / problem.tv_scale
            total += self.cfg.tv_weight * terms["tv"]
        terms["total"] = total
        return terms

    def evaluate(self, pixels, problem: Problem) -> dict[str, np.ndarray]:
        """Loss terms of ``pixels`` ``[B, H, W, 1]`` for ``problem`` as numpy ``{name: [B]}``."""
        terms = self._evaluate(tf.convert_to_tensor(pixels, tf.float32), problem, tf.constant(0))
        return {name: value.numpy().astype(np.float64) for name, value in terms.items()}

    # ------------------------------------------------------------------ optimisation

    def initial_state(self, pixels) -> OptimState:
        """Fresh Adam state starting at ``pixels`` ``[B, H, W, 1]``, every image active."""
        pixels = tf.convert_to_tensor(pixels, tf.float32)
        zeros = tf.zeros_like(pixels)
        scale = 2.0 ** 15 if self.cfg.mixed_precision else 1.0
        return OptimState(pixels, zeros, zeros, tf.constant(0), tf.ones([pixels.shape[0]]),
                          tf.constant(scale, tf.float32), tf.constant(0))

    def _objective_gradient(self, pixels, problem, step, loss_scale):
        """Loss terms and the gradient of ``loss_scale * sum_i total_i`` w.r.t. the pixels."""
        with tf.GradientTape() as tape:
            tape.watch(pixels)
            terms = self._loss_terms(pixels, problem, step)
            objective = tf.reduce_sum(terms["total"]) * loss_scale
        return terms, tape.gradient(objective, pixels)

    def _step_graph(self, pixels, m, v, step, loss_scale, good, active, problem: Problem):
        """One Adam step of the whole batch (graph code); returns the new values and the
        ``[3, B]`` (content, style, total) losses of the starting point."""
        cfg = self.cfg
        terms, grad = self._objective_gradient(pixels, problem, step, loss_scale)
        if cfg.mixed_precision:
            finite = tf.reduce_all(tf.math.is_finite(grad))
            grad = tf.where(finite, grad / loss_scale, tf.zeros_like(grad))
        else:
            finite = tf.constant(True)
        next_step = step + tf.cast(finite, tf.int32)
        delta, new_m, new_v = adam_update(grad, m, v, tf.maximum(next_step, 1),
                                          cfg.learning_rate, cfg.beta_1, cfg.beta_2,
                                          cfg.epsilon)
        keep = active[:, None, None, None] * tf.cast(finite, tf.float32)
        pixels = tf.clip_by_value(pixels + keep * delta, 0.0, 1.0)
        m = keep * new_m + (1.0 - keep) * m
        v = keep * new_v + (1.0 - keep) * v
        if cfg.mixed_precision:  # dynamic loss scaling (Micikevicius et al. 2018)
            grow = tf.logical_and(finite, good + 1 >= 2000)
            loss_scale = tf.where(finite, tf.where(grow, loss_scale * 2.0, loss_scale),
                                  tf.maximum(loss_scale / 2.0, 1.0))
            good = tf.where(tf.logical_and(finite, tf.logical_not(grow)), good + 1, 0)
        totals = tf.stack([terms["content"], terms["style"], terms["total"]])
        return pixels, m, v, next_step, loss_scale, good, totals

    def _run_steps_graph(self, state: OptimState, problem: Problem, steps):
        """``steps`` Adam steps in one ``tf.while_loop`` (no Python between steps); returns
        the new state and the loss terms ``[3, B]`` of the last step's starting point.

        With ``xla`` only the step is compiled (``self._step``): XLA:CPU runs a whole
        compiled while loop an order of magnitude slower than the same step called from it.
        """
        def body(index, pixels, m, v, step, loss_scale, good, _):
            out = self._step(pixels, m, v, step, loss_scale, good, state.active, problem)
            return (index + 1, *out)

        batch = tf.shape(state.pixels)[0]
        init = (tf.constant(0), state.pixels, state.m, state.v, state.step, state.loss_scale,
                state.good_steps, tf.zeros(tf.stack([3, batch]), tf.float32))
        _, pixels, m, v, step, loss_scale, good, totals = tf.while_loop(
            lambda index, *_: index < steps, body, init)
        return OptimState(pixels, m, v, step, state.active, loss_scale, good), totals

    def run_steps(self, state: OptimState, problem: Problem, steps: int):
        """Run ``steps`` Adam steps; returns ``(state, totals)`` with ``totals`` ``[3, B]``
        (content, style, total) of the last step's starting point."""
        return self._run_steps(state, problem, tf.constant(int(steps)))

    # ------------------------------------------------------------------ the public call

    def warm_up(self, batch: int, refs: int, height: int, width: int,
                content_weights: bool = True) -> float:
        """Trace (and compile) every step function for one batch shape before real work.

        Runs :meth:`stylize` on a noise batch of that shape with one iteration per scale:
        ``tf.function`` traces depend on shapes, not on the iteration count, so the first real
        batch then runs at full speed. Graph building is start-up cost (several seconds for
        ResNet50 on a CPU); a job that measures its generation throughput calls this first.

        Returns:
            Seconds spent.
        """
        start = time.perf_counter()
        cfg = self.cfg
        self.cfg = dataclasses.replace(cfg, iterations=len(cfg.scales), scale_fractions=None)
        try:
            rng = np.random.default_rng(0)
            self.stylize(rng.random((batch, height, width), np.float32),
                         rng.random((batch, refs, height, width), np.float32),
                         content_weights=(np.ones((batch, height, width), np.float32)
                                          if content_weights else None))
        finally:
            self.cfg = cfg
        return time.perf_counter() - start

    def stylize(self, contents, styles, content_weights=None, masks=None,
                style_masks=None) -> StylizeResult:
        """Stylise ``B`` content images, each with its own style references.

        Args:
            contents: ``[B, H, W]`` float32 in [0, 1].
            styles: ``[B, n, H', W']`` (n references per image) or ``[B, H', W']``, in
                [0, 1]; resized to ``H x W`` when the size differs.
            content_weights: None or ``[B, H, W]`` non-negative per-pixel weights of the
                content loss (e.g. ``relevance.relevance_to_weight``); area-downsampled to the
                content layer's size. A map of ones equals no map.
            masks: None or ``[B, D, H, W]`` (or ``[B, H, W]``) content label masks for the
                masked style loss (paper 001 eqs. 2.5 / 3.1).
            style_masks: None or ``[B, D, H', W']`` / ``[B, n, D, H', W']`` style label masks.
        Returns:
            :class:`StylizeResult`.
        """
        contents, styles, content_weights, masks, style_masks = self._check_inputs(
            contents, styles, content_weights, masks, style_masks)
        parts = []
        for start in range(0, contents.shape[0], self.cfg.batch_size):
            chunk = slice(start, start + self.cfg.batch_size)
            parts.append(self._stylize_batch(
                contents[chunk], styles[chunk],
                None if content_weights is None else content_weights[chunk],
                None if masks is None else masks[chunk],
                None if style_masks is None else style_masks[chunk]))
        return StylizeResult(
            images=np.concatenate([p.images for p in parts]),
            initial={k: np.concatenate([p.initial[k] for p in parts]) for k in parts[0].initial},
            final={k: np.concatenate([p.final[k] for p in parts]) for k in parts[0].final},
            history=[h for p in parts for h in p.history],
            iterations=np.concatenate([p.iterations for p in parts]))

    def _check_inputs(self, contents, styles, content_weights, masks, style_masks):
        """Validate and convert the inputs of :meth:`stylize` (ValueError on bad input)."""
        contents = _as_batch(contents, "contents", (3,))
        if contents.shape[0] == 0:
            raise ValueError("contents is empty")
        if contents.min() < 0.0 or contents.max() > 1.0:
            raise ValueError(f"contents must lie in [0, 1], got [{contents.min()}, "
                             f"{contents.max()}]")
        styles = _as_batch(styles, "styles", (3, 4))
        if styles.ndim == 3:
            styles = styles[:, None]
        if styles.shape[0] != contents.shape[0] or styles.shape[1] < 1:
            raise ValueError(f"styles {styles.shape} must be [B, n, H, W] with the B = "
                             f"{contents.shape[0]} of contents and n >= 1")
        if styles.min() < 0.0 or styles.max() > 1.0:
            raise ValueError(f"styles must lie in [0, 1], got [{styles.min()}, {styles.max()}]")
        size = contents.shape[1:]
        if styles.shape[2:] != size:
            styles = resize_stack(styles, size, "area").numpy()
        if content_weights is not None:
            content_weights = _as_batch(content_weights, "content_weights", (3,))
            if content_weights.shape != contents.shape:
                raise ValueError(f"content_weights {content_weights.shape} must have the "
                                 f"shape of contents {contents.shape}")
            if content_weights.min() < 0:
                raise ValueError("content_weights must be non-negative")
        if masks is not None:
            masks = _as_batch(masks, "masks", (3, 4))
            if masks.ndim == 3:
                masks = masks[:, None]
            if masks.shape[0] != contents.shape[0] or masks.shape[2:] != size:
                raise ValueError(f"masks {masks.shape} must be [B, D, H, W] with B, H, W of "
                                 f"contents {contents.shape}")
        if style_masks is not None:
            if masks is None:
                raise ValueError("style_masks need the content masks too (masks=...)")
            style_masks = _as_batch(style_masks, "style_masks", (4, 5))
            if style_masks.shape[0] != contents.shape[0]:
                raise ValueError(f"style_masks {style_masks.shape} must start with B = "
                                 f"{contents.shape[0]}")
            if style_masks.shape[-2:] != size:
                style_masks = resize_stack(style_masks, size, "area").numpy()
        return contents, styles, content_weights, masks, style_masks

    def _scale_problem(self, contents, styles, content_weights, masks, style_masks, size):
        """Inputs resized to ``size`` and their :class:`Problem`; returns (content, problem)."""
        content = resize_stack(contents, size, "area")[..., None]
        problem = self.prepare(
            content, resize_stack(styles, size, "area"),
            None if content_weights is None else resize_stack(content_weights, size, "area"),
            None if masks is None else resize_stack(masks, size, "area"),
            None if style_masks is None else resize_stack(style_masks, size, "area"))
        return content, problem

    def _stylize_batch(self, contents, styles, content_weights, masks,
                       style_masks) -> StylizeResult:
        """Stylise at most ``batch_size`` images (see :meth:`stylize`)."""
        cfg = self.cfg
        batch, height, width = contents.shape
        inputs = (contents, styles, content_weights, masks, style_masks)
        full_content, full_problem = self._scale_problem(*inputs, (height, width))
        initial = self.evaluate(full_content, full_problem)

        pixels = contents.copy()
        if cfg.init_noise > 0:
            for i in range(batch):
                noise = noise_generator(cfg.seed, contents[i]).standard_normal((height, width))
                pixels[i] = np.clip(contents[i] + cfg.init_noise * noise, 0.0, 1.0)
        pixels = tf.convert_to_tensor(pixels[..., None])
        fractions = cfg.scale_fractions or (1.0,) * len(cfg.scales)
        budgets = split_iterations(cfg.iterations, fractions)
        iterations = np.zeros(batch, np.int64)
        history = [{k: [] for k in ("scale", "iteration", "content", "style", "total")}
                   for _ in range(batch)]
        for scale_index, (scale, budget) in enumerate(zip(cfg.scales, budgets)):
            if budget == 0:
                continue
            size = scaled_size(height, width, scale)
            if size != tuple(pixels.shape[1:3]):
                method = "area" if size[0] < pixels.shape[1] else "bilinear"
                pixels = tf.clip_by_value(tf.image.resize(pixels, size, method=method), 0.0, 1.0)
            if size == (height, width):
                problem = full_problem
            else:
                problem = self._scale_problem(*inputs, size)[1]
            pixels = self._optimise_scale(pixels, problem, budget, scale_index, iterations,
                                          history)
        if tuple(pixels.shape[1:3]) != (height, width):
            pixels = tf.clip_by_value(
                tf.image.resize(pixels, (height, width), method="bilinear"), 0.0, 1.0)
        final = self.evaluate(pixels, full_problem)
        self._report_left_out()
        return StylizeResult(
            images=pixels.numpy()[..., 0].astype(np.float32), initial=initial, final=final,
            history=[{k: np.asarray(v) for k, v in h.items()} for h in history],
            iterations=iterations)

    def _report_left_out(self) -> None:
        """Log the style layers left out at each size optimised so far, once per new set of
        sizes (one line), and warn when every layer was thin (the shallowest is kept)."""
        from .. import log as _log

        report = losses.describe_left_out(self._left_out)
        if report == self._reported:
            return
        self._reported = report
        if report[0]:
            _log.get().info("style layers left out (fewer positions than %g x channels, "
                            "StyleLossConfig.min_positions_per_channel): %s",
                            self.style_cfg.min_positions_per_channel, report[0])
        if report[1]:
            _log.get().warning("every style layer has fewer positions than channels; the "
                               "shallowest is kept anyway: %s (a larger working size avoids "
                               "this)", report[1])

    def _optimise_scale(self, pixels, problem: Problem, budget: int, scale_index: int,
                        iterations: np.ndarray, history: list) -> tf.Tensor:
        """Optimise one scale with per-image early stopping; updates ``iterations`` and
        ``history`` in place and returns the pixels ``[B, h, w, 1]``."""
        cfg = self.cfg
        batch = int(pixels.shape[0])
        running = np.arange(batch)               # images still in the compiled batch
        state = self.initial_state(pixels)
        results = [None] * batch                  # final pixels of images that left the batch
        previous = np.full(batch, np.nan)
        calm = np.zeros(batch, np.int64)
        done = 0
        while done < budget and running.size:
            steps = min(cfg.check_every, budget - done)
            state, totals = self.run_steps(state, problem, steps)
            totals = totals.numpy().astype(np.float64)
            active = state.active.numpy() > 0
            done += steps
            for slot, image in enumerate(running):
                if not active[slot]:
                    continue
                iterations[image] += steps
                record = history[image]
                record["scale"].append(scale_index)
                record["iteration"].append(int(iterations[image]) - 1)
                for row, name in enumerate(("content", "style", "total")):
                    record[name].append(totals[row, slot])
                if cfg.tol > 0 and np.isfinite(previous[image]):
                    small = relative_change(previous[image], totals[2, slot]) < cfg.tol
                    calm[image] = calm[image] + 1 if small else 0
                previous[image] = totals[2, slot]
                if calm[image] >= cfg.patience:
                    active[slot] = False
            if active.all():
                continue
            state = state._replace(active=tf.constant(active, tf.float32))
            if 2 * active.sum() <= running.size:  # shrink the compiled batch
                for slot in np.flatnonzero(~active):
                    results[running[slot]] = state.pixels[slot]
                keep = np.flatnonzero(active)
                running = running[keep]
                state, problem = _gather_batch(state, problem, keep)
        for slot, image in enumerate(running):
            results[image] = state.pixels[slot]
        return tf.stack(results)


def _gather_batch(state: OptimState, problem: Problem, keep: np.ndarray):
    """The rows ``keep`` of every batch-first tensor of ``state`` and ``problem``."""
    index = tf.constant(keep, tf.int32)

    def take(t):
        return t if t is None else tf.gather(t, index)

    state = state._replace(pixels=take(state.pixels), m=take(state.m), v=take(state.v),
                           active=take(state.active))
    problem = tf.nest.map_structure(take, problem)
    return state, problem
