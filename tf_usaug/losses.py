"""Neural-style-transfer losses as pure TensorFlow functions (paper 002 eqs. 1-9, 14; paper 001).

Conventions (the contract with ``tf_usaug.nst``):

* Features of one backbone layer are ``[B, h, w, c]`` float tensors; style references come as
  ``[B, n, h, w, c]`` (``n`` references per image, pooled as samples of one style
  distribution) or ``[B, h, w, c]`` (one reference).
* Every loss returns a per-image vector ``[B]``: batch entries never mix, so a batch of ``B``
  problems optimises exactly like ``B`` separate runs (the engine sums the vector).
* Everything is graph-safe (``tf.function``): no numpy, no Python-side randomness, Python
  branches only on configuration and static ranks. Gradients are finite everywhere, also at
  identical inputs (no ``sqrt`` at 0; the Gaussian bandwidth is under ``stop_gradient``).
* Half-precision inputs are promoted to float32; float32/float64 are kept as they are.

The maths in one place (Li et al. 2017, "Demystifying Neural Style Transfer", sec. 3): a
layer's feature vectors ``f_1..f_M`` (rows of ``F``, ``N`` channels) are samples of a
distribution. With sample probabilities ``p_k`` (uniform ``1/M`` without masks) the
*second-moment matrix* is ``S = sum_k p_k f_k f_k^T = G / M`` (eq. 5 Gram over positions),
and the Gram loss of eq. 4 is

    E_l = 1/(4 N^2 M^2) sum_ij (G(I) - G(I_s))_ij^2 = 1/(4 N^2) sum_ij (S(I) - S(I_s))_ij^2
        = 1/(4 N^2) MMD^2[F_l, F_l(I_s)]  with k(x, y) = (x^T y)^2            (eq. 6)

(the biased V-statistic MMD). All style terms here are computed from such statistics, which
makes them independent of the two images' sizes (the engine is multi-resolution) and lets
masks enter as sample weights. Masked ("augmented", paper 001 eqs. 2.5 / 3.1) statistics use
weights ``m^2`` for the downsampled mask ``m`` (the Gram of ``m * F``), normalised per label
by the label's mass, so a full mask equals no mask.
"""
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
            hand-written gradient (see ``fused_second_moment_distance``): the same loss and
            gradient, about a third less work per step. False keeps one Gram distance per
            term (the reference the tests compare against).
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


# --------------------------------------------------------------------------- small helpers


def _as_float(x) -> tf.Tensor:
    """Tensor in a dtype fit for loss sums: float16/bfloat16 become float32."""
    x = tf.convert_to_tensor(x)
    if x.dtype in (tf.float16, tf.bfloat16) or not x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    return x


def _check_rank(x: tf.Tensor, ranks: tuple, name: str) -> None:
    if x.shape.rank is not None and x.shape.rank not in ranks:
        raise ValueError(f"{name} must have rank {' or '.join(map(str, ranks))}, "
                         f"got shape {x.shape}")


def _scalar(value, dtype) -> tf.Tensor:
    """A Python number or tensor as ``dtype`` (a Python float must not pass through float32)."""
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return tf.cast(value, dtype)
    return tf.constant(value, dtype)


def _channels(x: tf.Tensor, dtype) -> tf.Tensor:
    """N_l: the channel count of features as a scalar of ``dtype``."""
    return tf.cast(tf.shape(x)[-1], dtype)


def _flatten_samples(x: tf.Tensor) -> tf.Tensor:
    """``[B, ..., c]`` -> ``[B, S, c]``: every position (of every reference) is one sample."""
    shape = tf.shape(x)
    return tf.reshape(x, tf.stack([shape[0], -1, shape[-1]]))


def _static_hw(x: tf.Tensor) -> tuple:
    """(h, w) of ``[..., h, w, c]`` features, static ints where known, else scalar tensors."""
    dyn = tf.shape(x)
    h, w = x.shape[-3], x.shape[-2]
    return (h if h is not None else dyn[-3], w if w is not None else dyn[-2])


def _probabilities(weights: tf.Tensor | None, num_samples, batch, dtype):
    """Normalise sample weights ``[B, D, S]`` per label; None -> uniform ``[B, 1, S]``.

    Returns (probabilities ``[B, D, S]``, mass ``[B, D]``). An empty label (mass 0) gets all-zero
    probabilities instead of 0/0.
    """
    if weights is None:
        mass = tf.ones(tf.stack([batch, 1]), dtype)
        probs = tf.ones(tf.stack([batch, 1, num_samples]), dtype) / tf.cast(num_samples, dtype)
        return probs, mass
    weights = tf.cast(weights, dtype)
    mass = tf.reduce_sum(weights, axis=-1)
    return weights / tf.maximum(mass, _TINY)[..., None], mass


def _flatten_weights(weights, x: tf.Tensor) -> tf.Tensor | None:
    """Sample weights for ``x`` ``[B, ..., c]`` as ``[B, D, S]``.

    ``weights`` of rank ``rank(x) - 1`` (``[B, ...]``) is one label; rank ``rank(x)``
    (``[B, D, ...]``) is ``D`` labels.
    """
    if weights is None:
        return None
    weights = tf.convert_to_tensor(weights)
    if x.shape.rank is None or weights.shape.rank is None:
        raise ValueError("sample weights and samples need known ranks")
    if weights.shape.rank == x.shape.rank - 1:
        weights = weights[:, None]
    elif weights.shape.rank != x.shape.rank:
        raise ValueError(f"weights of shape {weights.shape} do not fit samples of shape {x.shape}"
                         " (expected [B, ...] or [B, D, ...] over the samples' positions)")
    shape = tf.shape(weights)
    return tf.reshape(weights, tf.stack([shape[0], shape[1], -1]))


# --------------------------------------------------------------------------- masks


def _area_matrix(size_in, size_out) -> tf.Tensor:
    """``[size_out, size_in]`` box-filter weights: output cell i averages the input pixels it
    overlaps, ``A[i, y] = |[i s, (i+1) s] & [y, y+1]| / s`` with ``s = size_in / size_out``."""
    scale = tf.cast(size_in, tf.float32) / tf.cast(size_out, tf.float32)
    low = tf.cast(tf.range(size_out), tf.float32)[:, None] * scale
    pixel = tf.cast(tf.range(size_in), tf.float32)[None, :]
    overlap = tf.minimum(low + scale, pixel + 1.0) - tf.maximum(low, pixel)
    return tf.maximum(overlap, 0.0) / scale


def _area_resize(maps, hw) -> tf.Tensor:
    """Area-resize the last two axes ``[..., H, W]`` to ``hw``: ``A_h @ maps @ A_w^T``.

    The same box filter as ``tf.image.resize(method="area")``, but as two matmuls, so it also
    compiles under XLA (``jit_compile=True``), where ResizeArea has no kernel.
    """
    maps = tf.cast(maps, tf.float32)
    shape = tf.shape(maps)
    in_h = maps.shape[-2] if maps.shape[-2] is not None else shape[-2]
    in_w = maps.shape[-1] if maps.shape[-1] is not None else shape[-1]
    rows = tf.linalg.matmul(_area_matrix(in_h, hw[0]), maps)
    return tf.linalg.matmul(rows, _area_matrix(in_w, hw[1]), transpose_b=True)


@_plain_python
def downsample_mask(mask, hw) -> tf.Tensor:
    """Resize label masks to a layer's spatial size by area (average) pooling.

    Area pooling keeps each label's mean coverage (exactly, also for non-integer ratios), so
    a soft boundary value is the fraction of the cell the label covers. Paper 001 (sec. 3.2)
    instead mimics VGG19 with 3x3 averages and nearest-neighbour halving; area pooling is the
    backbone-agnostic equivalent (ResNet50 strides are not VGG's). Same values as
    ``tf.image.resize(method="area")``, computed with matmuls so it also runs under XLA.

    Args:
        mask: ``[B, D, H, W]`` (D labels) or ``[B, H, W]`` masks at image resolution.
        hw: target ``(h, w)``.

    Returns:
        float32 ``[B, D, h, w]`` (or ``[B, h, w]``) in [0, 1] for binary input.
    """
    mask = tf.convert_to_tensor(mask)
    _check_rank(mask, (3, 4), "mask")
    return _area_resize(mask, hw)


def _mask_weights(masks, hw) -> tf.Tensor:
    """Sample weights ``m^2`` ``[B, D, h*w]`` of label masks ``[B, D, H, W]`` at a layer."""
    masks = tf.convert_to_tensor(masks)
    _check_rank(masks, (4,), "masks")
    low = downsample_mask(masks, hw)
    shape = tf.shape(low)
    return tf.reshape(tf.square(low), tf.stack([shape[0], shape[1], -1]))


# --------------------------------------------------------------------------- content and TV


@_plain_python
def content_loss(gen, content, weight=None, normalize: bool = True) -> tf.Tensor:
    """Content loss, paper 002 eq. 2, with an optional per-position weight (LRP relevance).

    ``L_c = 1/2 sum_{ij} weight_j (F(I_hat) - F(I_c))_ij^2``. With ``normalize=True`` (default)
    the sum is divided by ``h*w*c``, which is paper 001 eq. 2.2 and keeps the value independent
    of the layer and the image size (the engine runs several resolutions); ``normalize=False``
    is eq. 2 exactly. The normaliser ignores ``weight``, so a weight of ones equals no weight.

    Args:
        gen: features of the generated image ``[B, h, w, c]``.
        content: features of the content image, same shape.
        weight: None, ``[B, h, w]`` or ``[B, h, w, 1]`` non-negative map multiplying the squared
            error; a map of another spatial size is area-resized to ``(h, w)`` first.
        normalize: divide by ``h*w*c``.

    Returns:
        ``[B]``.
    """
    gen, content = _as_float(gen), _as_float(content)
    content = tf.cast(content, gen.dtype)
    _check_rank(gen, (4,), "gen")
    if gen.shape.is_fully_defined() and content.shape.is_fully_defined() and \
            gen.shape != content.shape:
        raise ValueError(f"content_loss: gen {gen.shape} and content {content.shape} differ")
    squared = tf.square(gen - content)
    if weight is not None:
        weight = tf.convert_to_tensor(weight)
        _check_rank(weight, (3, 4), "weight")
        if weight.shape.rank == 3:
            weight = weight[..., None]
        weight_hw, gen_hw = tuple(weight.shape[1:3]), tuple(gen.shape[1:3])
        if None in weight_hw or None in gen_hw or weight_hw != gen_hw:
            weight = _area_resize(weight[..., 0], _static_hw(gen))[..., None]
        squared = squared * tf.cast(weight, gen.dtype)
    total = 0.5 * tf.reduce_sum(squared, axis=[1, 2, 3])
    if normalize:
        total = total / tf.cast(tf.reduce_prod(tf.shape(gen)[1:]), gen.dtype)
    return total


@_plain_python
def total_variation_loss(images, normalize: bool = True) -> tf.Tensor:
    """Anisotropic total variation ``sum |I(y+1,x) - I(y,x)| + |I(y,x+1) - I(y,x)|``.

    The regulariser of Johnson et al. / Mahendran & Vedaldi that paper 001 (sec. 3.2) drops for
    its smoothing effect; off by default in the engine. Same value as
    ``tf.image.total_variation``; ``normalize`` divides by ``H*W*C``.

    Args:
        images: ``[B, H, W, C]``.
        normalize: divide by the number of pixel values.

    Returns:
        ``[B]``.
    """
    images = _as_float(images)
    _check_rank(images, (4,), "images")
    dy = tf.abs(images[:, 1:] - images[:, :-1])
    dx = tf.abs(images[:, :, 1:] - images[:, :, :-1])
    total = tf.reduce_sum(dy, axis=[1, 2, 3]) + tf.reduce_sum(dx, axis=[1, 2, 3])
    if normalize:
        total = total / tf.cast(tf.reduce_prod(tf.shape(images)[1:]), images.dtype)
    return total


# --------------------------------------------------------------------------- Gram


@_plain_python
def gram_matrix(features, mask=None) -> tf.Tensor:
    """Gram matrix ``G = F^T F`` summed over positions, paper 002 eq. 5.

    Args:
        features: ``[B, h, w, c]``.
        mask: optional ``[B, h, w]`` or ``[B, h, w, 1]`` multiplying the features first
            (paper 001 eq. 2.5: ``F_d = F M_d``).

    Returns:
        ``[B, c, c]``.
    """
    features = _as_float(features)
    _check_rank(features, (4,), "features")
    if mask is not None:
        mask = tf.convert_to_tensor(mask)
        _check_rank(mask, (3, 4), "mask")
        if mask.shape.rank == 3:
            mask = mask[..., None]
        features = features * tf.cast(mask, features.dtype)
    flat = _flatten_samples(features)
    return tf.linalg.matmul(flat, flat, transpose_a=True)


@_plain_python
def gram_style_loss(gen, target_gram, num_positions=None) -> tf.Tensor:
    """Gram style loss E_l, paper 002 eqs. 4 / 8: ``1/(4 N^2 M^2) sum (G(I_hat) - G_t)^2``.

    Args:
        gen: generated features ``[B, h, w, c]``.
        target_gram: ``[B, c, c]`` Gram (eq. 5, summed over positions) of the target, computed
            at the same number of positions M (e.g. ``gram_matrix(style)``).
        num_positions: M; default ``h * w`` of ``gen``.

    Returns:
        ``[B]``.
    """
    gen = _as_float(gen)
    gram = gram_matrix(gen)
    target_gram = tf.cast(target_gram, gram.dtype)
    if num_positions is None:
        num_positions = tf.shape(gen)[1] * tf.shape(gen)[2]
    positions = tf.cast(num_positions, gram.dtype)
    channels = _channels(gen, gram.dtype)
    sq = tf.reduce_sum(tf.square(gram - target_gram), axis=[1, 2])
    return sq / (4.0 * tf.square(channels) * tf.square(positions))


@_plain_python
def average_style_gram(style_features, mode: str = "gram", mask=None) -> tf.Tensor:
    """Average style target over n references, paper 001 sec. 3.2.

    ``mode="gram"``: mean of the references' Grams, ``1/n sum_r G(F_r)`` (Gram space);
    ``mode="feature"``: Gram of the mean feature map, ``G(1/n sum_r F_r)`` (feature space).
    The result is summed over positions like eq. 5, so it is a valid ``target_gram`` for
    ``gram_style_loss`` at the references' size.

    Args:
        style_features: ``[B, n, h, w, c]``.
        mode: "gram" or "feature".
        mask: optional ``[B, h, w]`` (shared) or ``[B, n, h, w]`` (per reference) multiplying
            the features first.

    Returns:
        ``[B, c, c]``.
    """
    style = _as_float(style_features)
    _check_rank(style, (5,), "style_features")
    if mode not in ("gram", "feature"):
        raise ValueError(f"average_style_gram: mode must be 'gram' or 'feature', got {mode!r}")
    if mask is not None:
        mask = tf.cast(tf.convert_to_tensor(mask), style.dtype)
        _check_rank(mask, (3, 4), "mask")
        mask = mask[:, None, ..., None] if mask.shape.rank == 3 else mask[..., None]
        style = style * mask
    if mode == "feature":
        return gram_matrix(tf.reduce_mean(style, axis=1))
    shape = tf.shape(style)
    per_ref = tf.reshape(style, tf.stack([shape[0] * shape[1], shape[2], shape[3], shape[4]]))
    grams = gram_matrix(per_ref)
    grams = tf.reshape(grams, tf.stack([shape[0], shape[1], shape[4], shape[4]]))
    return tf.reduce_mean(grams, axis=1)


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


@_plain_python
def masked_gram_style_loss(gen, style, content_masks, style_masks=None) -> tf.Tensor:
    """Augmented (masked) Gram style loss, paper 001 eqs. 2.5 and 3.1, at one layer.

    ``sum_d 1/(4 N^2) sum_ij (S_d(I_hat) - S_d(I_s))_ij^2`` where ``S_d`` is the Gram of the
    features masked by label d, divided by the label's mass ``sum m^2`` (so each label compares
    the style *within* its region, independent of region size; a full mask equals the plain
    Gram loss).
    Generated features take the content masks (eq. 2.5); the style takes ``style_masks`` when
    given (eq. 2.5), else the content masks too (eq. 3.1). Masks are area-downsampled to each
    side's layer size. Labels empty on either side contribute 0. Paper 001 normalises by
    1/(2 C^2); we keep paper 002's 1/(4 N^2) of eq. 4.

    Args:
        gen: ``[B, h, w, c]``.
        style: ``[B, h', w', c]``.
        content_masks: ``[B, D, H, W]`` label masks at image resolution.
        style_masks: ``[B, D, H', W']`` or None.

    Returns:
        ``[B]``.
    """
    gen, style = _as_float(gen), _as_float(style)
    _check_rank(gen, (4,), "gen")
    _check_rank(style, (4,), "style")
    style_masks = content_masks if style_masks is None else style_masks
    gen_weights = tf.square(downsample_mask(content_masks, _static_hw(gen)))
    style_weights = tf.square(downsample_mask(style_masks, _static_hw(style)))
    return mmd_style_loss(gen, style, "poly", x_weights=gen_weights, y_weights=style_weights)


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


# --------------------------------------------------------------------------- per-config loss


def _reference_distribution(features, weights, average):
    """Samples and per-label probabilities of n references ``[B, n, h, w, c]``.

    ``weights``: None or ``[B, D, n, h*w]``. ``average``: None pools all positions of all
    references (weights proportional to mask mass); "gram" gives each reference equal total
    probability (the mean of the references' statistics, paper 001 "Gram space");
    "feature" averages the feature maps (and the weights) over references first.

    Returns (samples ``[B, S, c]``, probabilities ``[B, D, S]``, mass ``[B, D]``).
    """
    shape = tf.shape(features)
    batch, refs, channels = shape[0], shape[1], shape[4]
    if average == "feature":
        samples = _flatten_samples(tf.reduce_mean(features, axis=1))
        if weights is not None:
            weights = tf.reduce_mean(weights, axis=2)
        probs, mass = _probabilities(weights, tf.shape(samples)[1], batch, samples.dtype)
        return samples, probs, mass
    samples = tf.reshape(features, tf.stack([batch, -1, channels]))
    per_ref = shape[2] * shape[3]
    if weights is None:
        weights = tf.ones(tf.stack([batch, 1, refs, per_ref]), samples.dtype)
    weights = tf.cast(weights, samples.dtype)
    mass = tf.reduce_sum(weights, axis=[2, 3])
    if average == "gram":
        # each reference's distribution normalised on its own, then an equal-weight mixture
        # (references empty for a label drop out of that label's mixture)
        probs = weights / tf.maximum(tf.reduce_sum(weights, axis=-1, keepdims=True), _TINY)
        probs = probs / tf.maximum(tf.reduce_sum(probs, axis=[2, 3], keepdims=True), _TINY)
    else:
        probs = weights / tf.maximum(mass, _TINY)[..., None, None]
    probs_shape = tf.shape(probs)
    return samples, tf.reshape(probs, tf.stack([batch, probs_shape[1], -1])), mass


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
