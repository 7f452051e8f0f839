"""Scanner screenshots: cut out the scan (:func:`crop_to_scan`) and find grey-scale bars.

Clinical screenshots carry, around the B-mode scan, patient/scanner text, depth tick marks,
thin UI lines, flat UI panels and a grey-scale ("brightness") bar; paper 001 (Menini 2020,
sec. 3.1) removes the brightness bar of the HC18 screenshots in pre-processing before style
transfer.

* :func:`crop_to_scan` crops to the imaging region that
  :func:`tf_usaug.data.scan_region.detect_scan_region` finds (rectangle, sector or convex
  fan; how and why: docs/scan_region.md). The augmentation job does the same with
  ``--crop auto``.
* :func:`find_brightness_bars` / :func:`remove_brightness_bars` locate and blank vertical
  grey-scale bars: narrow strips, flat from left to right, ramping monotonically in y.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .scan_region import ScanRegionConfig, detect_scan_region

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open: image[y0:y1, x0:x1]


@dataclass(frozen=True)
class BarConfig:
    """Parameters of :func:`find_brightness_bars` (paper 001 sec. 3.1 names the bar, no values).

    Attributes:
        min_length: shortest bar (its non-black part), fraction of the image height (0.1).
        min_range: grey-level span from one end of the bar to the other (0.5).
        max_width: widest bar, fraction of the image width (0.06).
        flat_tolerance: largest left-right difference inside the bar (0.02, ~5/255).
        max_step: largest change between two rows of the bar (0.1): a ramp, not an edge.
        margin: pixels blanked around the detected bar (its frame, anti-aliasing) (2).
    """

    min_length: float = 0.1
    min_range: float = 0.5
    max_width: float = 0.06
    flat_tolerance: float = 0.02
    max_step: float = 0.1
    margin: int = 2


# ----------------------------------------------------------------------------- public API


def crop_to_scan(image: np.ndarray, cfg: ScanRegionConfig | None = None
                 ) -> tuple[np.ndarray, Box]:
    """Crop a screenshot to the bounding box of its scan region.

    Args:
        image: grey ``HxW`` float image in [0, 1].
        cfg: detection parameters (default :class:`ScanRegionConfig`).

    Returns:
        ``(cropped, (y0, y1, x0, x1))`` with ``cropped = image[y0:y1, x0:x1]`` (a copy);
        the whole image when it shows no UI around the scan.
    """
    image = _check_image(image)
    region = detect_scan_region(image, cfg or ScanRegionConfig())
    y0, y1, x0, x1 = (int(v) for v in region.box)
    return image[y0:y1, x0:x1].copy(), (y0, y1, x0, x1)


def find_brightness_bars(image: np.ndarray, cfg: BarConfig = BarConfig()) -> list[Box]:
    """Locate vertical grey-scale bars: narrow strips, flat left to right, ramping in y.

    After a 5x1 vertical median (which erases 1-2 px marker lines drawn across a bar), a
    column belongs to a bar over its longest run of rows where the pixel equals its left and
    right neighbours (within ``flat_tolerance``) and each row-to-row step is monotone (one sign
    for the whole run) and below ``max_step``; without its black ends the run must be
    ``min_length`` of the height and span ``min_range`` grey levels. Adjacent such columns
    (at least 2, at most ``max_width`` of the width) form one bar.

    Args:
        image: grey ``HxW`` float image in [0, 1].
        cfg: bar parameters.

    Returns:
        ``(y0, y1, x0, x1)`` (half-open) of each bar, left to right; empty when none.
    """
    image = _check_image(image)
    height, width = image.shape
    ramps = _column_ramps(ndimage.median_filter(image, size=(5, 1), mode="nearest"), cfg)
    bars: list[Box] = []
    group: list[int] = []
    for x in range(width + 1):  # x == width closes the last group
        if x < width and ramps[x] is not None and (not group or x == group[-1] + 1):
            group.append(x)
            continue
        if 2 <= len(group) <= max(2, cfg.max_width * width):
            y0 = min(ramps[g][0] for g in group)
            y1 = max(ramps[g][1] for g in group)
            bars.append((y0, y1, group[0], group[-1] + 1))
        group = [x] if x < width and ramps[x] is not None else []
    return bars


def remove_brightness_bars(image: np.ndarray, cfg: BarConfig = BarConfig()
                           ) -> tuple[np.ndarray, list[Box]]:
    """Blank (set to 0, the background) every brightness bar and ``cfg.margin`` px around it.

    Paper 001 (sec. 3.1) removes the brightness bar of clinical screenshots before NST.

    Args:
        image: grey ``HxW`` float image in [0, 1].
        cfg: bar parameters.

    Returns:
        ``(image_without_bars, boxes)``; the input itself (not a copy) when there is no bar.
    """
    image = _check_image(image)
    boxes = find_brightness_bars(image, cfg)
    if not boxes:
        return image, boxes
    out = image.copy()
    m = int(cfg.margin)
    for y0, y1, x0, x1 in boxes:
        out[max(0, y0 - m):y1 + m, max(0, x0 - m):x1 + m] = 0.0
    return out, boxes


# ----------------------------------------------------------------------------- helpers


def _check_image(image: np.ndarray) -> np.ndarray:
    """A 2-D float32 copy-free view of ``image`` (ValueError for other shapes)."""
    arr = np.asarray(image)
    if arr.ndim != 2 or min(arr.shape) < 3:
        raise ValueError(f"crop: expected a grey HxW image (at least 3x3), got shape {arr.shape}")
    return arr.astype(np.float32, copy=False)


def _column_ramps(image: np.ndarray, cfg: BarConfig) -> list[tuple[int, int] | None]:
    """Per column, the rows ``(y0, y1)`` of its longest bar-like ramp, or None (see caller)."""
    height, width = image.shape
    padded = np.pad(image, ((0, 0), (1, 1)), mode="edge")
    flat = ((np.abs(image - padded[:, :-2]) <= cfg.flat_tolerance)
            & (np.abs(image - padded[:, 2:]) <= cfg.flat_tolerance))
    step = np.diff(image, axis=0)                      # (H-1, W): row y -> y+1
    smooth = flat[1:] & flat[:-1] & (np.abs(step) <= cfg.max_step)
    min_rows = cfg.min_length * height
    ramps: list[tuple[int, int] | None] = []
    for x in range(width):
        best = None
        for sign in (1.0, -1.0):  # brightening downwards, then darkening downwards
            monotone = smooth[:, x] & (sign * step[:, x] >= -cfg.flat_tolerance / 4)
            for start, stop in _true_runs(monotone):   # steps start..stop-1: rows start..stop
                if stop - start + 1 < min_rows:
                    continue
                lit = _lit_rows(image[start:stop + 1, x], cfg.flat_tolerance)
                if lit is None:
                    continue
                first, last = start + lit[0], start + lit[1]  # the ramp without dark ends
                span = abs(float(image[last, x]) - float(image[first, x]))
                long_enough = last - first + 1 >= min_rows
                if long_enough and span >= cfg.min_range and (
                        best is None or last + 1 - first > best[1] - best[0]):
                    best = (first, last + 1)
        ramps.append(best)
    return ramps


def _lit_rows(values: np.ndarray, dark: float) -> tuple[int, int] | None:
    """First and last index whose value exceeds ``dark`` (None when all are dark)."""
    lit = np.flatnonzero(values > dark)
    return (int(lit[0]), int(lit[-1])) if lit.size else None


def _true_runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` (stop exclusive) of every run of True in a 1-D bool array."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))
