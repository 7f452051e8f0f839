"""Neural-style-transfer losses as pure TensorFlow functions (paper 002 eqs. 1-9, 14; paper 001).

Conventions (the contract with :mod:`tf_usaug.nst.stylizer`):

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

One file per term (a reader finds an equation by file name):

    config.py           StyleLossConfig (defaults = the papers' values), KINDS, MMD_KERNELS
    content.py          content loss (002 eq. 2, LRP-weighted), total variation
    gram.py             Gram matrix and Gram style loss (002 eqs. 3-5), average style (001)
    mmd.py              MMD^2 with poly / linear / Gaussian / BN kernels (002 eqs. 6-8)
    multi_reference.py  mr2NST: element-wise max target, histogram specification (002 eq. 9)
    masked.py           masked ("augmented") Gram loss (001 eqs. 2.5 / 3.1)
    fused.py            all Gram-type terms as one second-moment distance (hand-written gradient)
    style.py            the combined style loss of a config (002 eq. 14)
    layers.py           which style layers carry statistics at a size (positions >= channels)
    common.py           dtype, flattening, sample weights and masks
"""
from .config import (StyleLossConfig, KINDS, MMD_KERNELS, AVERAGES)
from .common import downsample_mask
from .content import (content_loss, total_variation_loss)
from .gram import (gram_matrix, gram_style_loss, average_style_gram)
from .mmd import (mmd2, mmd_style_loss)
from .multi_reference import (histogram_specification, multi_reference_target,
                              multi_reference_style_loss)
from .masked import masked_gram_style_loss
from .fused import second_moment_distance
from .style import (build_style_targets, style_loss)
from .layers import (describe_left_out, is_thin, usable_style_layers)
