"""Fitting a scan region into the square working size, and back: ``pad``, ``crop``, ``stretch``.

The NST backbone, the SRAD filter and the relevance classifier work on ``size x size`` squares;
scan regions are rarely square (a linear probe's rectangle is wide, a phased array's sector
tall). Stretching them to a square distorts the speckle, whose shape is what the style loss
matches, so the default is to letterbox:

* ``pad`` (default): scale the region so that its longer side is ``size`` (aspect ratio
  kept), centre it on a black square (black is what a scanner shows outside the scan), work
  on the square, then cut the padding off the output: the output has the region's aspect
  ratio, ``size`` pixels along its longer side.
* ``crop``: the largest centred square of the region, scaled to ``size``; the output is square
  and shows only that square of the region (the manifest's ``crop`` box says which).
* ``stretch``: the region scaled to ``size x size`` (aspect ratio lost; the behaviour before
  this option existed).

Images are resized with :func:`tf_usaug.data.image_io.resize` (area when shrinking, bilinear when
growing) and masks with exact nearest neighbour, so masks stay aligned with their images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from .image_io import resize

FITS = ("pad", "crop", "stretch")
Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open


@dataclass(frozen=True)
class Placement:
    """Where a region sits in the working square, to cut the output back out.

    Attributes:
        fit: "pad", "crop" or "stretch".
        size: side of the working square.
        inner: ``(y0, y1, x0, x1)`` of the region's pixels inside the square (``pad``: the part
            that is not padding; otherwise the whole square).
        used: the part of the input region that the square shows, relative to the region
            (``crop``: the centred square; otherwise the whole region).
    """

    fit: str
    size: int
    inner: Box
    used: Box

    @property
    def output_shape(self) -> tuple[int, int]:
        y0, y1, x0, x1 = self.inner
        return y1 - y0, x1 - x0


def check_fit(fit: str) -> str:
    if fit not in FITS:
        raise UsageError(f"unknown --fit {fit!r}; choose from {', '.join(FITS)}")
    return fit


def placement(region_shape: tuple[int, int], size: int, fit: str = "pad") -> Placement:
    """The placement of an ``H x W`` region in a ``size x size`` square under ``fit``."""
    check_fit(fit)
    h, w = (int(v) for v in region_shape)
    if h < 1 or w < 1 or size < 1:
        raise ValueError(f"placement: empty region {h}x{w} or size {size}")
    whole: Box = (0, size, 0, size)
    if fit == "stretch":
        return Placement(fit, size, whole, (0, h, 0, w))
    if fit == "crop":
        side = min(h, w)
        y0, x0 = (h - side) // 2, (w - side) // 2
        return Placement(fit, size, whole, (y0, y0 + side, x0, x0 + side))
    scale = size / max(h, w)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    top, left = (size - nh) // 2, (size - nw) // 2
    return Placement(fit, size, (top, top + nh, left, left + nw), (0, h, 0, w))


def fit_to_square(region: np.ndarray, size: int, fit: str = "pad", kind: str = "image"
                  ) -> tuple[np.ndarray, Placement]:
    """Put a 2-D region (image or mask) into a ``size x size`` square; returns it and its placement."""
    region = np.asarray(region)
    if region.ndim != 2:
        raise ValueError(f"fit_to_square: expected a 2-D HxW array, got shape {region.shape}")
    place = placement(region.shape, size, fit)
    uy0, uy1, ux0, ux1 = place.used
    y0, y1, x0, x1 = place.inner
    scaled = resize(region[uy0:uy1, ux0:ux1], (y1 - y0, x1 - x0), kind=kind)
    if (y0, y1, x0, x1) == (0, size, 0, size):
        return scaled, place
    square = np.zeros((size, size), dtype=scaled.dtype)
    square[y0:y1, x0:x1] = scaled
    return square, place


def cut_output(square: np.ndarray, place: Placement) -> np.ndarray:
    """The part of a working-square output that shows the region (drops ``pad``'s padding)."""
    y0, y1, x0, x1 = place.inner
    return np.asarray(square)[..., y0:y1, x0:x1]


def used_box(region_box: Box, place: Placement) -> Box:
    """The original-pixel box ``(y0, y1, x0, x1)`` that an output shows."""
    ry0, _, rx0, _ = (int(v) for v in region_box)
    uy0, uy1, ux0, ux1 = place.used
    return ry0 + uy0, ry0 + uy1, rx0 + ux0, rx0 + ux1
