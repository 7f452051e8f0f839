"""Cut the imaging sector out of an ultrasound scanner screenshot.

Clinical screenshots carry, around the B-mode scan, patient/scanner text, depth tick marks,
thin UI lines, flat UI panels and a grey-scale ("brightness") bar; paper 001 (Menini 2020,
sec. 3.1) removes the brightness bar of the HC18 screenshots in pre-processing before style
transfer. The scan itself is the one large region that is both bright (non-background) and
textured (speckle), so :func:`scan_mask` keeps exactly that:

1. ``fg``: a median filter (``median_size``) erases strokes thinner than half its window
   (1-px text strokes, ticks, lines); what stays brighter than ``dark_threshold`` is
   foreground;
2. ``textured``: the local mean (``texture_window``) of ``|I - G_1.0 * I|`` (detail left after
   a sigma = 1 px Gaussian) exceeds ``texture_threshold``; flat panels and smooth grey ramps
   have none, speckle has plenty;
3. evidence ``fg & textured`` is closed (``close_size``) and its holes filled (dark cysts and
   heart chambers inside the sector), then opened (``open_size``) so that everything thinner
   than the opening (text lines, bars, bridges) falls away; the largest component is the scan;
4. the opening rounds corners off, so evidence pixels within half the opening's size of
   that component are added back before the bounding box is taken (half: a right-angled
   corner loses 0.41 opening radii, while annotations a few pixels away stay out).

Sizes are fractions of the image's shorter side, so the same configuration works at 240 and
at 1000 pixels. Paper 001 gives no values: the defaults were chosen on pydicom's ultrasound
example screenshots and on synthetic screenshots (``tests/test_crop.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open: image[y0:y1, x0:x1]


@dataclass(frozen=True)
class CropConfig:
    """Parameters of :func:`scan_mask` (sizes: fractions of the image's shorter side).

    Attributes:
        median_size: median filter window (0.01, at least 3 px): erases 1-px strokes, lines
            and ticks, yet is too small to bridge text written 2-3 px from the scan.
        dark_threshold: background level (0.03, about 8/255) of the median-filtered image.
        texture_window: window of the local mean of the detail (0.03).
        texture_threshold: mean ``|I - G_1 * I|`` that counts as speckle (0.006, i.e. 1.5
            grey levels; speckle gives 0.02-0.1, flat panels and ramps ~0).
        close_size: closing disk that makes porous speckle evidence solid (0.01, at least
            3 px); kept small for the same reason as ``median_size``.
        open_size: opening disk (0.05): text lines, bars, toolbars and bridges thinner than
            this are removed; ultrasound scans are far thicker. These three sizes were
            chosen on the four pydicom ultrasound screenshots and the synthetic ones of
            ``tests/test_crop.py`` (0.03 / 0.03 / 0.08 glued the text block above the scan of
            the 320x240 ``examples_rgb_color.dcm`` to the crop).
        min_area: smallest scan, as a fraction of the image area (0.02); below it nothing is
            cropped.
        remove_bar: blank brightness bars first (:func:`remove_brightness_bars`).
    """

    median_size: float = 0.01
    dark_threshold: float = 0.03
    texture_window: float = 0.03
    texture_threshold: float = 0.006
    close_size: float = 0.01
    open_size: float = 0.05
    min_area: float = 0.02
    remove_bar: bool = True


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


def crop_to_scan(image: np.ndarray, cfg: CropConfig = CropConfig(),
                 bar_cfg: BarConfig = BarConfig()) -> tuple[np.ndarray, Box]:
    """Crop a screenshot to the bounding box of its ultrasound scan (module docstring).

    Args:
        image: grey ``HxW`` float image in [0, 1].
        cfg: detection parameters.
        bar_cfg: brightness-bar parameters (used when ``cfg.remove_bar``).

    Returns:
        ``(cropped, (y0, y1, x0, x1))`` with ``cropped = image[y0:y1, x0:x1]`` (a copy);
        the whole image when no scan of at least ``cfg.min_area`` is found.
    """
    image = _check_image(image)
    y0, y1, x0, x1 = scan_box(image, cfg, bar_cfg)
    return image[y0:y1, x0:x1].copy(), (y0, y1, x0, x1)


def scan_box(image: np.ndarray, cfg: CropConfig = CropConfig(),
             bar_cfg: BarConfig = BarConfig()) -> Box:
    """Bounding box ``(y0, y1, x0, x1)`` (half-open) of :func:`scan_mask`; full image if empty."""
    mask = scan_mask(image, cfg, bar_cfg)
    if not mask.any():
        return 0, int(image.shape[0]), 0, int(image.shape[1])
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def scan_mask(image: np.ndarray, cfg: CropConfig = CropConfig(),
              bar_cfg: BarConfig = BarConfig()) -> np.ndarray:
    """Bool ``HxW`` mask of the scan: the largest bright, textured region (steps 1-4 above).

    All False when the largest region is smaller than ``cfg.min_area`` of the image.
    """
    image = _check_image(image)
    if cfg.remove_bar:
        image, _ = remove_brightness_bars(image, bar_cfg)
    side = min(image.shape)
    evidence = speckle_evidence(image, cfg)
    solid = cv2.morphologyEx(evidence.astype(np.uint8), cv2.MORPH_CLOSE,
                             _disk(_odd_size(cfg.close_size, side)))
    solid = ndimage.binary_fill_holes(solid).astype(np.uint8)
    opening = _disk(_odd_size(cfg.open_size, side))
    opened = cv2.morphologyEx(solid, cv2.MORPH_OPEN, opening)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    if count < 2:
        return np.zeros(image.shape, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[largest, cv2.CC_STAT_AREA] < cfg.min_area * image.size:
        return np.zeros(image.shape, dtype=bool)
    region = (labels == largest).astype(np.uint8)
    reach = _disk(_odd_size(cfg.open_size / 2, side))  # step 4: corners, not neighbours
    corners = cv2.dilate(region, reach).astype(bool) & evidence
    return ndimage.binary_fill_holes(region.astype(bool) | corners)


def speckle_evidence(image: np.ndarray, cfg: CropConfig = CropConfig()) -> np.ndarray:
    """Bool ``HxW``: median-filtered foreground that is also locally textured (steps 1-2)."""
    image = _check_image(image)
    side = min(image.shape)
    grey8 = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    median = cv2.medianBlur(grey8, _odd_size(cfg.median_size, side))  # uint8: any odd size
    foreground = median > cfg.dark_threshold * 255.0
    detail = np.abs(image - cv2.GaussianBlur(image, (0, 0), 1.0))
    window = _odd_size(cfg.texture_window, side)
    texture = cv2.boxFilter(detail, -1, (window, window), borderType=cv2.BORDER_REFLECT)
    return foreground & (texture > cfg.texture_threshold)


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


def _odd_size(fraction: float, side: int) -> int:
    """``fraction * side`` rounded to an odd number of pixels, at least 3."""
    return max(3, int(round(fraction * side)) | 1)


def _disk(size: int) -> np.ndarray:
    """Elliptic (disk) structuring element ``size x size``."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


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
