"""Style-loss configuration (:class:`StyleLossConfig`, the papers' values) and shared constants."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import tensorflow as tf


KINDS = ("proposed", "gram", "mmd", "multi_reference")
MMD_KERNELS = ("poly", "linear", "gaussian", "bn")
AVERAGES = (None, "feature", "gram")

# Floor for masses and bandwidths: only guards 0/0 (empty labels, constant features).
_TINY = 1e-12

# The functions branch only on Python values (configuration, static ranks), so AutoGraph has
# nothing to convert; skipping it saves seconds of tracing in every tf.function that calls them.
_plain_python = tf.autograph.experimental.do_not_convert


# --------------------------------------------------------------------------- configuration


@dataclass
class StyleLossConfig:
    """Which style loss the NST engine minimises, with the papers' defaults.

    Args:
        kind: "proposed" (paper 002 eq. 14, our reading: MMD + multi-reference), "gram"
            (Gatys, paper 002 eqs. 3-5), "mmd" (Li et al. 2017, paper 002 eq. 6) or
            "multi_reference" (mr2NST, Wang et al. 2020, paper 002 eqs. 7-9).
        mmd_kernel: kernel of the MMD term: "poly" (paper 002: 2nd-order polynomial),
            "linear", "gaussian" or "bn" (BN-statistics matching) from Li et al. 2017.
        poly_offset: ``c`` in ``k = (x^T y + c)^2``; 0 (Li et al. 2017) makes MMD = Gram loss.
        mmd_weight: ``a`` in L_ps = sum_l w_l (a L_MMD,l + b E_l^mr); 1.0 (eq. 14 gives no
            relative weight, so both terms count equally).
        multi_reference_weight: ``b`` in the same sum; 1.0.
        layer_weights: ``{layer: w_l}``; None means w_l = 1.0 for every style layer
            (paper 002, "Step 1"). A dict must name every style layer.
        average: None (references pooled as samples), "feature" (mean of the references'
            feature maps, then statistics) or "gram" (mean of the references' statistics,
            i.e. of their Gram matrices) - paper 001 sec. 3.2. Applies to the Gram and MMD
            terms; the multi-reference term always combines references by eq. 9.
        gaussian_max_samples: cap on the positions per side entering the O(M^2) Gaussian
            kernel sums; more positions are subsampled with a fixed stride. Not a paper
            value: 1024 bounds the kernel matrix to 1024^2 entries per image and label.
        gaussian_sigma2: kernel bandwidth sigma^2; None estimates it in-graph from the data
            (mean squared pairwise distance, Li et al. 2017), under stop_gradient.
        bn_epsilon: added to variances before the square root of the "bn" kernel (the usual
            batch-norm 1e-5; keeps the gradient finite for dead channels).
        fused: evaluate the second-moment terms (Gram, poly-MMD with c = 0, multi-reference)
            of an unmasked loss as one distance to their weighted mean target, with a
            hand-written gradient (see ``second_moment_distance``): the same loss and
            gradient with less work per step (docs/losses.md). False keeps one Gram distance per
            term (the reference the tests compare against).
        min_positions_per_channel: the engine (``Stylizer``) leaves out, at each size it
            optimises at, every style layer with fewer than this many positions ``h*w`` per
            channel (``usable_style_layers``): a second-moment matrix of ``M`` positions has
            rank <= M, so with ``M < N`` channels it pins the reference's features (and copies
            its content) instead of constraining their statistics (docs/losses.md). Not a
            paper value; 1.0 (at 64 px this leaves out ResNet50's ``conv3_block4_out`` and
            ``conv4_block6_out``, at 224 px ``conv4_block6_out``); 0 keeps every layer (the
            papers' behaviour). The loss functions themselves use whatever layers they get.
    """

    kind: str = "proposed"
    mmd_kernel: str = "poly"
    poly_offset: float = 0.0
    mmd_weight: float = 1.0
    multi_reference_weight: float = 1.0
    layer_weights: Mapping[str, float] | None = None
    average: str | None = None
    gaussian_max_samples: int = 1024
    gaussian_sigma2: float | None = None
    bn_epsilon: float = 1e-5
    fused: bool = True
    min_positions_per_channel: float = 1.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"StyleLossConfig.kind must be one of {KINDS}, got {self.kind!r}")
        if self.mmd_kernel not in MMD_KERNELS:
            raise ValueError(f"StyleLossConfig.mmd_kernel must be one of {MMD_KERNELS}, "
                             f"got {self.mmd_kernel!r}")
        if self.average not in AVERAGES:
            raise ValueError(f"StyleLossConfig.average must be one of {AVERAGES}, "
                             f"got {self.average!r}")
        if self.kind == "multi_reference" and self.average is not None:
            raise ValueError("StyleLossConfig.average has no effect with kind='multi_reference' "
                             "(eq. 9 combines the references by an element-wise max)")
        for name in ("mmd_weight", "multi_reference_weight", "poly_offset"):
            if getattr(self, name) < 0:
                raise ValueError(f"StyleLossConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.gaussian_max_samples < 1:
            raise ValueError("StyleLossConfig.gaussian_max_samples must be >= 1")
        if self.gaussian_sigma2 is not None and self.gaussian_sigma2 <= 0:
            raise ValueError("StyleLossConfig.gaussian_sigma2 must be > 0 or None")
        if self.bn_epsilon <= 0:
            raise ValueError("StyleLossConfig.bn_epsilon must be > 0")
        if not self.min_positions_per_channel >= 0:
            raise ValueError(f"StyleLossConfig.min_positions_per_channel must be >= 0 (0 keeps "
                             f"every style layer), got {self.min_positions_per_channel}")

    def layer_weight(self, layer: str) -> float:
        """w_l of eq. 3 / 7 for ``layer`` (1.0 without ``layer_weights``, paper 002)."""
        if self.layer_weights is None:
            return 1.0
        if layer not in self.layer_weights:
            raise ValueError(f"StyleLossConfig.layer_weights has no weight for style layer "
                             f"{layer!r} (it names {sorted(self.layer_weights)})")
        return float(self.layer_weights[layer])

    @property
    def uses_mmd(self) -> bool:
        return self.kind in ("proposed", "mmd")

    @property
    def uses_multi_reference(self) -> bool:
        return self.kind in ("proposed", "multi_reference")

    @property
    def term_weights(self) -> dict:
        """``{target name: weight}`` of the terms summed per layer (before ``w_l``)."""
        if self.kind == "gram":
            return {"gram": 1.0}
        weights = {}
        if self.uses_mmd:
            weights["mmd"] = self.mmd_weight
        if self.uses_multi_reference:
            weights["multi_reference"] = self.multi_reference_weight
        return weights

    @property
    def second_moment_only(self) -> bool:
        """True when every term compares plain (c = 0) second moments (Gram-type terms)."""
        return not self.uses_mmd or (self.mmd_kernel == "poly" and self.poly_offset == 0)
