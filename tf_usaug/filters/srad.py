"""Speckle reducing anisotropic diffusion (SRAD): numpy reference and batched TensorFlow.

Paper 002 (Panigrahi et al., AAAI 2025, "Experiments") denoises every image with the SRAD filter
of Yu & Acton (2002, "Speckle reducing anisotropic diffusion", IEEE TIP 11(11):1260-1270),
``n_t = 10`` iterations per scale and ``L = 8`` scales, giving a multi-scale series in which the
speckle decreases with the scale.

One SRAD iteration, in Yu & Acton's discretisation (grid step h = 1, equation numbers of the
paper; the 4 neighbours N, S, W, E of pixel (i, j) are replicated at the border, i.e. Neumann
boundary conditions)::

    d_k   = I_k - I                          k in {N, S, W, E}  (one-sided differences)
    |grad I|^2 = sum_k d_k^2                 forward + backward differences   (52, 53)
    lap I = sum_k d_k                        4-neighbour Laplacian            (54)
    q^2   = [1/2 (|grad I|/I)^2 - 1/16 (lap I/I)^2] / [1 + 1/4 lap I/I]^2    (31, 35)
    c     = 1 / (1 + (q^2 - q0^2) / (q0^2 (1 + q0^2)))  clipped to [0, 1]   (33)
    d     = c_S (I_S - I) + c (I_N - I) + c_E (I_E - I) + c (I_W - I)        (58)
    I    <- I + dt/4 * d                                                     (61)

with c_S = c(i+1, j), c_E = c(i, j+1): the neighbour's coefficient on the forward side, which
makes the update a flux form, so the image mean is conserved exactly (up to round-off).

The speckle scale q0(t) is either measured each iteration in a homogeneous region of interest
(q0 = std / mean of the ROI, Yu & Acton's homogeneous-region estimate) or follows the schedule
q0(t) = q0 exp(-rho t), t = iteration * dt. When neither ``q0`` nor ``roi`` is given, q0 is
estimated ONCE, at t = 0, as std / mean of the whole image (it then includes structure as well
as speckle, which over-estimates q0 and smooths somewhat more than a clean ROI would).

Numerical safety: every division by I uses I + eps instead (``eps = 1e-6`` for images in
[0, 1]), so black pixels (outside the scan sector) give a finite q. Algebraically
q^2 = (1/4) [sum_k d_k^2 + sum_k (d_k - lap I / 4)^2] / (I + eps + lap I / 4)^2,
which is the formula above evaluated at I + eps, written so that the numerator is a sum of
squares (never negative through round-off) and the denominator is eps plus the mean of the four
neighbours (never zero for non-negative images). q0^2 is floored at eps so that a perfectly
flat ROI (q0 = 0) cannot divide by zero.

Two implementations share the maths above (``instantaneous_cv_sq``, ``diffusion_coefficient``,
``divergence``, ``srad_step`` work on numpy arrays and TF tensors alike):
``srad`` (numpy, one HxW image, float64 internally, the reference) and ``srad_tf`` (a batch
[B, H, W] or [B, H, W, 1], float32, the whole iteration loop in one XLA-compiled
``tf.function``; CPU or GPU), in :mod:`tf_usaug.filters.srad_tf` with ``srad_multiscale``
(which uses the TF path by default).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np


Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open like array slicing


@dataclass(frozen=True)
class SRADConfig:
    """SRAD settings; defaults are the papers' values.

    Attributes:
        iterations: diffusion iterations per scale, n_t = 10 (paper 002, "Experiments").
        scales: number of scales of the multi-scale series, L = 8 (paper 002).
        dt: time step per iteration, 0.05 (Yu & Acton 2002; the explicit update of eq. (61)
            is a convex combination of neighbours, so it keeps I >= 0, for dt <= 1).
        q0: speckle scale at t = 0; None estimates it from the whole image at t = 0 (or from
            the ROI every iteration when a ROI is given).
        rho: decay rate of the exponential schedule q0(t) = q0 exp(-rho t), 1/6
            (Yu & Acton 2002).
        eps: added to the intensity in every division by I, and the floor of q0^2 (1e-6,
            images in [0, 1]; ours, not the paper's).
    """

    iterations: int = 10
    scales: int = 8
    dt: float = 0.05
    q0: float | None = None
    rho: float = 1.0 / 6.0
    eps: float = 1e-6

    def multiscale_kwargs(self) -> dict:
        """Keyword arguments of ``srad_multiscale`` / ``srad_multiscale_tf`` for this config.

        Example:
            >>> series = srad_multiscale_tf(batch, **SRADConfig().multiscale_kwargs())
        """
        return {"scales": self.scales, "iterations_per_scale": self.iterations, "dt": self.dt,
                "q0": self.q0, "rho": self.rho, "eps": self.eps}


_DEFAULT = SRADConfig()


# --------------------------------------------------------------------------------------------
# The maths, once, for numpy arrays and TF tensors (last two axes are rows, columns)
# --------------------------------------------------------------------------------------------

class ArrayOps(NamedTuple):
    """The few array functions whose spelling differs between numpy and TensorFlow."""

    concat: Callable  # (sequence of arrays, axis) -> array
    minimum: Callable
    maximum: Callable
    exp: Callable


NUMPY_OPS = ArrayOps(np.concatenate, np.minimum, np.maximum, np.exp)


def neighbours(image, ops: ArrayOps):
    """North, south, west and east neighbours of every pixel, replicated at the border.

    Args:
        image: array [..., H, W].
        ops: ``NUMPY_OPS`` or the TF equivalent.

    Returns:
        (north, south, west, east), each shaped like ``image``: north[i, j] = I[i-1, j] etc.,
        with the border row/column repeated (Neumann boundary: no flux across the border).
    """
    north = ops.concat([image[..., :1, :], image[..., :-1, :]], -2)
    south = ops.concat([image[..., 1:, :], image[..., -1:, :]], -2)
    west = ops.concat([image[..., :, :1], image[..., :, :-1]], -1)
    east = ops.concat([image[..., :, 1:], image[..., :, -1:]], -1)
    return north, south, west, east


def instantaneous_cv_sq(image, north, south, west, east, eps: float):
    """Squared instantaneous coefficient of variation q^2 (Yu & Acton 2002, eqs. 31, 35, 52-54).

    q^2 = [1/2 (|grad I|/I)^2 - 1/16 (lap I / I)^2] / [1 + 1/4 lap I / I]^2 evaluated with
    I + eps in the divisions, in the algebraically identical, round-off-safe form
    (1/4) [sum d_k^2 + sum (d_k - mean d)^2] / (I + eps + mean d)^2 (see the module docstring).

    Args:
        image: intensities I >= 0, [..., H, W].
        north, south, west, east: the 4 neighbours of ``neighbours``.
        eps: added to I in the divisions.
    """
    diffs = (north - image, south - image, west - image, east - image)
    mean_diff = (diffs[0] + diffs[1] + diffs[2] + diffs[3]) * 0.25  # lap I / 4
    sum_sq = diffs[0] * diffs[0] + diffs[1] * diffs[1] + diffs[2] * diffs[2] + diffs[3] * diffs[3]
    centred = [d - mean_diff for d in diffs]
    spread = (centred[0] * centred[0] + centred[1] * centred[1]
              + centred[2] * centred[2] + centred[3] * centred[3])
    denominator = image + eps + mean_diff  # = eps + mean of the 4 neighbours
    return 0.25 * (sum_sq + spread) / (denominator * denominator)


def diffusion_coefficient(q_sq, q0_sq, ops: ArrayOps):
    """Diffusion coefficient c(q) = 1 / (1 + (q^2 - q0^2) / (q0^2 (1 + q0^2))), clipped to [0, 1].

    Yu & Acton 2002, eq. (33). Written as q0^2 (1 + q0^2) / (q^2 + q0^4), the same value,
    positive for every q^2 >= 0, so only the upper clip can act (c = 1 where q <= q0).

    Args:
        q_sq: q^2 of ``instantaneous_cv_sq``.
        q0_sq: q0(t)^2 > 0, broadcastable to ``q_sq``.
        ops: ``NUMPY_OPS`` or the TF equivalent.
    """
    return ops.minimum(q0_sq * (1.0 + q0_sq) / (q_sq + q0_sq * q0_sq), 1.0)


def divergence(image, north, south, west, east, coeff, ops: ArrayOps):
    """Discrete divergence of c grad I (Yu & Acton 2002, eq. 58).

    d = c(i+1,j) (I_S - I) + c(i,j) (I_N - I) + c(i,j+1) (I_E - I) + c(i,j) (I_W - I):
    the neighbour's coefficient on the forward (south, east) side, the pixel's own on the
    backward side, so the flux between two pixels is counted once with opposite signs.
    The replicated border makes the coefficient of the missing neighbour irrelevant (its
    difference is 0).
    """
    _, coeff_south, _, coeff_east = neighbours(coeff, ops)
    return (coeff_south * (south - image) + coeff * (north - image)
            + coeff_east * (east - image) + coeff * (west - image))


def srad_step(image, q0_sq, dt: float, eps: float, ops: ArrayOps):
    """One SRAD iteration I <- I + dt/4 * div(c(q) grad I) (Yu & Acton 2002, eqs. 31-61).

    Args:
        image: I >= 0, [..., H, W].
        q0_sq: q0(t)^2 for this iteration, broadcastable to ``image`` (floored by the caller).
        dt: time step.
        eps: see ``instantaneous_cv_sq``.
        ops: ``NUMPY_OPS`` or the TF equivalent.
    """
    north, south, west, east = neighbours(image, ops)
    q_sq = instantaneous_cv_sq(image, north, south, west, east, eps)
    coeff = diffusion_coefficient(q_sq, q0_sq, ops)
    return image + (0.25 * dt) * divergence(image, north, south, west, east, coeff, ops)


def q0_sq_from_moments(mean, variance, eps: float, ops: ArrayOps):
    """q0^2 = var / mean^2 of a homogeneous speckle region (Yu & Acton 2002), floored at eps.

    Population variance (ddof = 0), mean + eps in the division.
    """
    return ops.maximum(variance / ((mean + eps) * (mean + eps)), eps)


def q0_sq_schedule(q0_sq_initial, t, rho: float, eps: float, ops: ArrayOps):
    """q0(t)^2 for the schedule q0(t) = q0 exp(-rho t), floored at eps (Yu & Acton 2002)."""
    return ops.maximum(q0_sq_initial * ops.exp(-2.0 * rho * t), eps)


# --------------------------------------------------------------------------------------------
# Input checks shared by both implementations
# --------------------------------------------------------------------------------------------

def _check_dtype(dtype, what: str) -> None:
    """ValueError unless ``dtype`` (numpy) holds real numbers (floats or integers)."""
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise ValueError(f"{what} must hold real numbers, got dtype {dtype}")


def _check_finite_non_negative(all_finite: bool, low: float, what: str) -> None:
    """ValueError for NaN/inf or negative intensities (given the reductions of the data)."""
    if not all_finite:
        raise ValueError(f"{what} contains NaN or infinite values")
    if low < 0:
        raise ValueError(f"{what} has negative values (min {low:g}); SRAD needs intensities "
                         ">= 0 (grey images in [0, 1])")


def _check_not_empty(shape, what: str) -> None:
    if any(side == 0 for side in shape):
        raise ValueError(f"{what} is empty (shape {tuple(shape)})")


def _check_params(iterations: int, dt: float, rho: float, eps: float) -> None:
    if isinstance(iterations, bool) or int(iterations) != iterations or iterations < 0:
        raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
    if not 0 < dt <= 1:
        raise ValueError(f"dt must be in (0, 1] (stability of eq. 61), got {dt!r}")
    if not (rho >= 0 and math.isfinite(rho)):
        raise ValueError(f"rho must be a finite number >= 0, got {rho!r}")
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")


def _check_box(roi: Sequence[int], shape: tuple[int, int]) -> Box:
    """Validate a ROI (y0, y1, x0, x1) against an image shape (H, W)."""
    try:
        y0, y1, x0, x1 = (int(v) for v in roi)
    except (TypeError, ValueError):
        raise ValueError(f"roi must be 4 integers (y0, y1, x0, x1), got {roi!r}") from None
    h, w = shape
    if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
        raise ValueError(f"roi {roi!r} is empty or outside the {h}x{w} image "
                         "(need 0 <= y0 < y1 <= H and 0 <= x0 < x1 <= W)")
    return y0, y1, x0, x1


def _check_q0(q0, count: int) -> np.ndarray:
    """q0 as a float64 vector of ``count`` positive values (scalar broadcast)."""
    values = np.asarray(q0, dtype=np.float64).reshape(-1)
    if values.size == 1:
        values = np.repeat(values, count)
    if values.size != count:
        raise ValueError(f"q0 needs 1 or {count} values (one per image), got {values.size}")
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"q0 must be finite and > 0, got {q0!r}")
    return values


def whole_image_q0(image: np.ndarray, eps: float = _DEFAULT.eps) -> float:
    """Default speckle scale q0 = std / mean of the whole image (used at t = 0 only).

    Args:
        image: HxW intensities >= 0.
        eps: added to the mean, and the floor of q0^2 (as in ``q0_sq_from_moments``).
    """
    image = np.asarray(image, dtype=np.float64)
    return math.sqrt(float(q0_sq_from_moments(image.mean(), image.var(), eps, NUMPY_OPS)))


# --------------------------------------------------------------------------------------------
# numpy reference: one HxW image
# --------------------------------------------------------------------------------------------

def _srad_numpy(image: np.ndarray, iterations: int, dt: float, roi: Box | None,
                q0_sq_initial: float, rho: float, eps: float, start_iteration: int) -> np.ndarray:
    """Iterate ``srad_step`` on a float64 image; q0 from the ROI or the schedule."""
    for n in range(start_iteration, start_iteration + iterations):
        if roi is not None:
            region = image[roi[0]:roi[1], roi[2]:roi[3]]
            q0_sq = q0_sq_from_moments(region.mean(), region.var(), eps, NUMPY_OPS)
        else:
            q0_sq = q0_sq_schedule(q0_sq_initial, n * dt, rho, eps, NUMPY_OPS)
        image = srad_step(image, q0_sq, dt, eps, NUMPY_OPS)
    return image


def _prepare_numpy(image, roi, q0, dt, rho, eps, iterations) -> tuple[np.ndarray, Box | None,
                                                                        float]:
    """Checked float64 image, ROI box and initial q0^2 for the numpy path."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"srad expects one grey HxW image, got shape {image.shape} "
                         "(use srad_tf for batches)")
    _check_not_empty(image.shape, "image")
    _check_dtype(image.dtype, "image")
    _check_finite_non_negative(bool(np.all(np.isfinite(image))), float(image.min()), "image")
    _check_params(iterations, dt, rho, eps)
    if roi is not None and q0 is not None:
        raise ValueError("give either roi (q0 measured every iteration) or q0 (exponential "
                         "schedule), not both")
    image = image.astype(np.float64)
    box = _check_box(roi, image.shape) if roi is not None else None
    q0_value = float(_check_q0(q0, 1)[0]) if q0 is not None else whole_image_q0(image, eps)
    return image, box, q0_value ** 2


def srad(image, iterations: int = _DEFAULT.iterations, dt: float = _DEFAULT.dt,
         roi: Sequence[int] | None = None, q0: float | None = _DEFAULT.q0,
         rho: float = _DEFAULT.rho, eps: float = _DEFAULT.eps) -> np.ndarray:
    """SRAD-filter one grey image with numpy (the reference implementation).

    Yu & Acton 2002, eqs. (31)-(61); see the module docstring for the discretisation.

    Args:
        image: HxW array of intensities >= 0 (grey images in [0, 1]).
        iterations: number of iterations (n_t = 10 in paper 002).
        dt: time step, 0 < dt <= 1.
        roi: (y0, y1, x0, x1) of a homogeneous speckle region: q0 = std/mean of it, measured
            on the current image every iteration. Excludes ``q0``.
        q0: speckle scale at t = 0 of the schedule q0(t) = q0 exp(-rho t); None (and no ROI):
            std/mean of the whole input image.
        rho: decay rate of the schedule.
        eps: numerical floor (see ``SRADConfig``).

    Returns:
        The filtered HxW float32 image.

    Example:
        >>> smooth = srad(noisy, iterations=10, roi=(10, 40, 10, 40))
    """
    image, box, q0_sq = _prepare_numpy(image, roi, q0, dt, rho, eps, iterations)
    return _srad_numpy(image, int(iterations), dt, box, q0_sq, rho, eps, 0).astype(np.float32)
