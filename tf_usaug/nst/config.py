"""Configuration and result types of the NST engine: :class:`NSTConfig` (the papers' values).

The engine and its design: :mod:`tf_usaug.nst.stylizer`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import tensorflow as tf


NORMALIZATIONS = ("initial", "none")
#: Smallest image side optimised at any scale: ResNet50's stride-16 stage needs 2x2 cells.
MIN_SCALE_SIDE = 32
_TINY = 1e-30
#: Under normalize="initial", a style layer's initial loss is floored at this fraction of the
#: loss of an all-zero feature map (the target's own energy): a content image whose style
#: already matches (0/0) counts as converged instead of amplifying rounding noise.
STYLE_SCALE_FLOOR = 1e-3


@dataclass
class NSTConfig:
    """Optimisation defaults of the NST engine, one source of truth.

    Args:
        iterations: Adam steps per image over all scales; 1000 (paper 002, "XAI-based NST
            augmented model training", Step 1).
        content_weight: alpha of paper 002 eq. 1; 1 (paper 002 Step 1).
        style_weight: beta of eq. 1; 1. Paper 002 gives only "gamma beta'" (no value).
            With the default ``normalize="initial"`` both terms are relative errors (the
            style starts at ``sum_l w_l`` over the layers used, 4 unless thin layers are left
            out (docs/losses.md), the content at 0), so alpha = beta = 1 weighs
            a unit of relative style error like a unit of relative content-feature error
            (measured on the demo data: docs/nst.md).
        learning_rate: Adam step size on [0, 1] pixels; 0.01. Paper 001 (sec. 4.2, Fig. 4.1)
            found 5e-3 best for 3000 single-scale iterations; Adam moves a pixel by about
            one step size per iteration at most, and with a third of that budget (split over
            two scales) 0.01 lets a pixel cross the grey range within 100 steps.
        beta_1, beta_2, epsilon: Adam moments (Kingma & Ba 2015 defaults).
        tv_weight: total-variation weight; 0 (off: paper 001 sec. 3.2 drops it for its
            smoothing, paper 002 has none).
        batch_size: images optimised together; 8.
        scales: image-size factors, coarse to fine (mr2NST, Wang et al. 2020); (0.5, 1.0).
        scale_fractions: share of ``iterations`` for each scale; None = equal shares.
        normalize: "initial" (each term relative to its value at the content image, see the
            module docstring) or "none" (raw losses).
        tol: early stop when an image's total loss changes by less than this fraction
            between two checks ``patience`` times in a row; 0 disables early stopping.
        patience: consecutive small changes needed to stop.
        check_every: steps between checks; also the spacing of ``StylizeResult.history``.
        xla: compile the optimisation step with XLA (``jit_compile``): for GPUs (on CPUs
            it is slower, see docs/nst.md).
        mixed_precision: run the backbone in float16 (GPU tensor cores) with dynamic loss
            scaling; pixels, Adam and the losses stay float32.
        init_noise: standard deviation of Gaussian noise added to the content image to
            initialise the pixels (0: start from the content image, paper 002).
        seed: seeds that noise (together with the content image's bytes).
    """

    iterations: int = 1000
    content_weight: float = 1.0
    style_weight: float = 1.0
    learning_rate: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    tv_weight: float = 0.0
    batch_size: int = 8
    scales: tuple[float, ...] = (0.5, 1.0)
    scale_fractions: tuple[float, ...] | None = None
    normalize: str = "initial"
    tol: float = 1e-3
    patience: int = 3
    check_every: int = 10
    xla: bool = False
    mixed_precision: bool = False
    init_noise: float = 0.0
    seed: int = 0

    def __post_init__(self):
        self.scales = tuple(float(s) for s in self.scales)
        if self.iterations < 0:
            raise ValueError(f"NSTConfig.iterations must be >= 0, got {self.iterations}")
        if not self.scales or any(not (0.0 < s <= 1.0) for s in self.scales):
            raise ValueError(f"NSTConfig.scales must be factors in (0, 1], got {self.scales}")
        if list(self.scales) != sorted(self.scales):
            raise ValueError(f"NSTConfig.scales must go from coarse to fine, got {self.scales}")
        if self.scale_fractions is not None:
            self.scale_fractions = tuple(float(f) for f in self.scale_fractions)
            if len(self.scale_fractions) != len(self.scales) or \
                    any(f < 0 for f in self.scale_fractions) or sum(self.scale_fractions) <= 0:
                raise ValueError("NSTConfig.scale_fractions needs one non-negative share per "
                                 f"scale, got {self.scale_fractions} for {self.scales}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"NSTConfig.normalize must be one of {NORMALIZATIONS}, "
                             f"got {self.normalize!r}")
        for name in ("content_weight", "style_weight", "tv_weight", "tol", "init_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"NSTConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"NSTConfig.learning_rate must be > 0, got {self.learning_rate}")
        if self.batch_size < 1 or self.check_every < 1 or self.patience < 1:
            raise ValueError("NSTConfig.batch_size, check_every and patience must be >= 1")


@dataclass
class StylizeResult:
    """What ``Stylizer.stylize`` returns, per image ``i`` of the ``B`` inputs.

    Attributes:
        images: ``[B, H, W]`` float32 in [0, 1], the stylised images.
        initial, final: ``{name: [B]}`` loss terms of the content image and of the result,
            both at full resolution: "content" and "style" (normalised as configured,
            unweighted), "tv" (when ``tv_weight > 0``), "total" (the weighted objective) and
            "style/<layer>" (one layer's weighted term).
        history: per image ``{"scale", "iteration", "content", "style", "total"}`` arrays,
            the losses every ``check_every`` steps while the image was optimised, at that
            scale's resolution ("scale" indexes ``NSTConfig.scales``; "iteration" is the
            number of steps, over all scales, taken before the recorded loss).
        iterations: ``[B]`` Adam steps each image took (fewer than configured after an early
            stop).
    """

    images: np.ndarray
    initial: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    history: list[dict[str, np.ndarray]] = field(default_factory=list)
    iterations: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


class Problem(NamedTuple):
    """Constants of one batch at one resolution (tensors with the batch first, or None).

    ``content_features`` ``[B, h, w, c]`` of the content layer; ``content_weights``
    ``[B, h, w]`` at that layer's size; ``style_targets`` from ``losses.build_style_targets``;
    ``masks`` ``[B, D, H, W]`` content label masks; ``content_scale`` ``[B]`` and
    ``style_scales`` ``{layer: [B]}`` / ``tv_scale`` ``[B]`` divide the raw terms.
    """

    content_features: tf.Tensor
    content_weights: tf.Tensor | None
    style_targets: dict
    masks: tf.Tensor | None
    content_scale: tf.Tensor
    style_scales: dict
    tv_scale: tf.Tensor


class OptimState(NamedTuple):
    """Adam state of a batch: pixels ``[B, H, W, 1]``, moments, step count, active flags."""

    pixels: tf.Tensor
    m: tf.Tensor
    v: tf.Tensor
    step: tf.Tensor          # int32 scalar: Adam steps taken (bias correction)
    active: tf.Tensor        # float32 [B]: 1 = still optimising, 0 = frozen
    loss_scale: tf.Tensor    # float32 scalar: dynamic loss scale (1 without mixed precision)
    good_steps: tf.Tensor    # int32 scalar: finite steps since the last loss-scale change
