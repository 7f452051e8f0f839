"""Cut the imaging sector out of an ultrasound scanner screenshot.

Clinical screenshots carry, around the B-mode scan, patient/scanner text, depth tick marks,
thin UI lines, flat UI panels and a grey-scale ("brightness") bar; paper 001 (Menini 2020,
sec. 3.1) removes the brightness bar of the HC18 screenshots in pre-processing before style
transfer. The scan itself is the one large region that is both bright (non-background) and
textured (speckle), so :func:`scan_mask` keeps exactly that:

1. ``fg``: a median filter (``median_size``) erases strokes thinner than half its window
   (text, ticks, 1-px lines); what stays brighter than ``dark_threshold`` is foreground;
2. ``textured``: the local mean (``texture_window``) of ``|I - G_1.0 * I|`` (detail left after
   a sigma = 1 px Gaussian) exceeds ``texture_threshold``; flat panels and smooth grey ramps
   have none, speckle has plenty;
3. evidence ``fg & textured`` is closed (``close_size``) and its holes filled (dark cysts and
   heart chambers inside the sector), then opened (``open_size``) so that everything thinner
   than the opening (text lines, bars, bridges) falls away; the largest component is the scan;
4. the opening rounds corners off, so pixels of the evidence within one opening radius of
   that component are added back before the bounding box is taken.

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
        median_size: median filter window (0.03) - wider than text strokes and tick marks.
        dark_threshold: background level (0.03, about 8/255) of the median-filtered image.
        texture_window: window of the local mean of the detail (0.03).
        texture_threshold: mean ``|I - G_1 * I|`` that counts as speckle (0.006, i.e. 1.5
            grey levels; speckle gives 0.02-0.1, flat panels and ramps ~0).
        close_size: closing disk that makes porous speckle evidence solid (0.03).
        open_size: opening disk (0.08): text lines, bars, toolbars and bridges thinner than
            this are removed; ultrasound scans are far thicker.
        min_area: smallest scan, as a fraction of the image area (0.02); below it nothing is
            cropped.
        remove_bar: blank a detected brightness bar first (:func:`find_brightness_bar`).
    """

    median_size: float = 0.03
    dark_threshold: float = 0.03
    texture_window: float = 0.03
    texture_threshold: float = 0.006
    close_size: float = 0.03
    open_size: float = 0.08
    min_area: float = 0.02
    remove_bar: bool = True


@dataclass(frozen=True)
class BarConfig:
    """Parameters of :func:`find_brightness_bar` (paper 001 sec. 3.1 names the bar, no values).

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
        image, _ = remove_brightness_bar(image, bar_cfg)
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
    corners = cv2.dilate(region, opening).astype(bool) & evidence  # step 4
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


def find_brightness_bar(image: np.ndarray, cfg: BarConfig = BarConfig()) -> Box | None:
    """Locate a vertical grey-scale bar: a narrow strip, flat left to right, ramping in y.

    A column belongs to the bar over its longest run of rows where the pixel equals its left
    and right neighbours (within ``flat_tolerance``) and each row-to-row step is monotone (one
    sign for the whole run) and below ``max_step``; without its black ends the run must be
    ``min_length`` of the height and span ``min_range`` grey levels. Adjacent such columns form the bar (widest group no
    wider than ``max_width``).

    Args:
        image: grey ``HxW`` float image in [0, 1].
        cfg: bar parameters.

    Returns:
        ``(y0, y1, x0, x1)`` (half-open) of the bar, or None when there is none.
    """
    image = _check_image(image)
    height, width = image.shape
    runs = _column_ramps(image, cfg)
    columns = [x for x in range(width) if runs[x] is not None]
    best: list[int] = []
    group: list[int] = []
    for x in columns + [None]:  # sentinel closes the last group
        if x is not None and group and x == group[-1] + 1:
            group.append(x)
            continue
        if len(group) > len(best) and len(group) <= max(2, cfg.max_width * width):
            best = group
        group = [x] if x is not None else []
    if len(best) < 2:
        return None
    y0 = min(runs[x][0] for x in best)
    y1 = max(runs[x][1] for x in best)
    return y0, y1, best[0], best[-1] + 1


def remove_brightness_bar(image: np.ndarray, cfg: BarConfig = BarConfig()
                          ) -> tuple[np.ndarray, Box | None]:
    """Blank (set to 0, the background) a brightness bar and ``cfg.margin`` pixels around it.

    Args:
        image: grey ``HxW`` float image in [0, 1].
        cfg: bar parameters.

    Returns:
        ``(image_without_bar, box_or_None)``; the input is returned unchanged (not copied)
        when no bar is found.
    """
    image = _check_image(image)
    box = find_brightness_bar(image, cfg)
    if box is None:
        return image, None
    y0, y1, x0, x1 = box
    m = int(cfg.margin)
    out = image.copy()
    out[max(0, y0 - m):y1 + m, max(0, x0 - m):x1 + m] = 0.0
    return out, box


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
    """Per column, the (y0, y1) rows of its longest flat monotone ramp, or None (see caller)."""
    height, width = image.shape
    padded = np.pad(image, ((0, 0), (1, 1)), mode="edge")
    flat = ((np.abs(image - padded[:, :-2]) <= cfg.flat_tolerance)
            & (np.abs(image - padded[:, 2:]) <= cfg.flat_tolerance))
    step = np.diff(image, axis=0)                      # (H-1, W): row y -> y+1
    pair_flat = flat[1:] & flat[:-1]
    small = np.abs(step) <= cfg.max_step
    min_rows = cfg.min_length * height
    runs: list[tuple[int, int] | None] = []
    for x in range(width):
        best = None
        for sign in (1.0, -1.0):  # brightening downwards, then darkening downwards
            ok = pair_flat[:, x] & small[:, x] & (sign * step[:, x] >= -cfg.flat_tolerance / 4)
            run = _longest_true_run(ok)
            if run is None:
                continue
            rows = _lit_rows(image[run[0]:run[1] + 1, x], cfg.flat_tolerance)
            if rows is None:
                continue
            first, last = run[0] + rows[0], run[0] + rows[1]  # the ramp without dark ends
            span = abs(float(image[last, x]) - float(image[first, x]))
            if last - first + 1 >= min_rows and span >= cfg.min_range:
                if best is None or last + 1 - first > best[1] - best[0]:
                    best = (first, last + 1)
        runs.append(best)
    return runs


def _lit_rows(values: np.ndarray, dark: float) -> tuple[int, int] | None:
    """First and last index whose value exceeds ``dark`` (None when all are dark)."""
    lit = np.flatnonzero(values > dark)
    return (int(lit[0]), int(lit[-1])) if lit.size else None


def _longest_true_run(flags: np.ndarray) -> tuple[int, int] | None:
    """(start, end_exclusive) of the longest run of True in a 1-D bool array, or None."""
    if not flags.any():
        return None
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[0::2], edges[1::2]
    i = int(np.argmax(ends - starts))
    return int(starts[i]), int(ends[i])
