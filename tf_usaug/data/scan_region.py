"""Find the imaging region (rectangle, sector or convex fan) of an ultrasound screenshot.

:func:`detect_scan_region` works on the pixels, :func:`dicom_scan_region` reads the DICOM
SequenceOfUltrasoundRegions. Sizes are fractions of the shorter image side (200-1200 px).
Steps and reasons (details, numbers: docs/scan_region.md):

1. Speckle evidence: most of a ``texture_window`` box is non-flat (4-neighbour Laplacian, so
   grey ramps are flat) and little of it is "ground" (near the box's darkest value). Text,
   ticks and icons lie on a flat ground even where their strokes are dense; speckle has
   almost none. Brightness is not used: a bright band or a dark cyst is no scan edge.
2. Core: after an opening, the largest thick component plus thick bands above/below it (a
   dark layer across the scan splits it); holes (dark anatomy) filled.
3. Geometry: each side (first/last core pixel per row) is a RANSAC line, so a cyst on the
   edge (inward on some rows) or UI glued to it (outward) is an outlier. Near-vertical
   lines make a rectangle, top/bottom voted by the columns; lines opening downwards make a
   fan: apex at their crossing, radii voted by angle bins, so apex and arcs are extrapolated
   under dark anatomy. A convex probe's inner arc must be concentric with the apex. Evidence
   inside the fitted fan (a tip cut off by a dark band) joins and the fit is redone.
4. Display floor: pixels a few levels above the background (an empty fan drawn at level 1)
   that touch the core join when they lie inside the fitted angles.
5. Edges move from the evidence's inset to the intensity step (texture bleeds over JPEG
   ringing, the step does not); rectangle edges near a textured frame border snap onto it,
   so a bare scan gives the whole frame.
6. Display window: a black image area in a grey frame (cardiac scanners, with flanks fading
   to black) that the fit covers poorly gives the sector inscribed in the window.

Nothing found (constant or tiny image): the whole frame, shape "rectangle".
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from ..errors import ImageError
from .scan_geometry import (Box, box_iou, column_mask, disk, edge_value, fan_mask, odd,
                            ransac_line, run_around, tapers, vertical_fit)


@dataclass(frozen=True)
class ScanRegionConfig:
    """Parameters of :func:`detect_scan_region` (sizes: fractions of the shorter side).

    Tuned on :mod:`tf_usaug.data.screenshots` seeds 0-2999 and pydicom's ultrasound files.
    flat_tolerance: |Laplacian| of a flat pixel. texture_window (>= 5 px), texture_fraction:
    non-flat share of speckle (speckle 0.9-1, text 0.2-0.6). ground_levels, ground_fraction:
    ground is within 4 levels of the box's darkest value; more than 0.3 of it is UI.
    open_size: opening disk. min_area: smallest scan (of the image area). merge_fraction,
    merge_thickness: bands joining the main component (a toolbar is thinner than 0.1).
    edge_tolerance: residual of an edge line or arc (>= 1.5 px). rectangle_slope: |dx/dy|
    of a rectangle's sides. sector_ratio, arc_support: a fan is convex when its inner radius
    is at least 0.15 of the outer one and 0.2 of the angle bins start on that arc.
    floor_levels: display floor above the background. growth_inside: share of a joining
    component inside the fitted fan. lit_levels, snap_range: edge step (lit = 3x3 median
    20 levels above background) searched within 0.04. snap (at least snap_pixels):
    rectangle edges this close to the frame may move onto it. window_fill, window_iou:
    display window (share of rows and columns off the frame level; used when the fit
    overlaps it less than 0.85). min_side: smaller images are returned whole. work_side:
    larger images are detected at this shorter side (INTER_AREA), the region scaled back.
    smooth_side: an image with no speckle at 1 px (an upscaled frame is smooth there) and
    a shorter side of at least twice this is searched again at half its size.
    """

    flat_tolerance: float = 2.5 / 255
    texture_window: float = 0.03
    texture_fraction: float = 0.7
    ground_levels: int = 4
    ground_fraction: float = 0.3
    open_size: float = 0.03
    min_area: float = 0.01
    merge_fraction: float = 0.05
    merge_thickness: float = 0.1
    edge_tolerance: float = 0.006
    rectangle_slope: float = 0.06
    sector_ratio: float = 0.15
    arc_support: float = 0.2
    floor_levels: float = 12 / 255
    growth_inside: float = 0.9
    lit_levels: float = 20 / 255
    snap_range: float = 0.04
    snap: float = 0.04
    snap_pixels: float = 3.0
    window_fill: float = 0.6
    window_iou: float = 0.85
    min_side: int = 24
    work_side: int = 4096
    smooth_side: int = 150


@dataclass(frozen=True)
class ScanRegion:
    """The imaging region of one frame.

    Attributes:
        box: ``(y0, y1, x0, x1)``, half-open bounding box inside the frame.
        mask: bool ``HxW``, the region's shape inside the frame.
        shape: "rectangle", "sector" or "convex".
        source: "image" (detected from pixels) or "dicom" (SequenceOfUltrasoundRegions).
    """

    box: Box
    mask: np.ndarray
    shape: str
    source: str


# ----------------------------------------------------------------------------- public API


def detect_scan_region(image: np.ndarray, cfg: ScanRegionConfig = ScanRegionConfig()
                       ) -> ScanRegion:
    """Imaging region of a grey ``HxW`` image in [0, 1] (steps: module docstring).

    Raises:
        ValueError: not a 2-D numeric array, empty, NaN/inf, or values outside [0, 1].
    """
    u = _check_image(image)
    height, width = u.shape
    side = min(height, width)
    if side < cfg.min_side:
        return _whole(height, width)
    if side > cfg.work_side:  # detect at about work_side px, map the region back
        return _rescaled(u, cfg, cfg.work_side / side)
    u8 = np.round(np.clip(u, 0.0, 1.0) * 255.0).astype(np.uint8)
    nonflat = np.abs(cv2.Laplacian(u8, cv2.CV_16S, ksize=1)) > cfg.flat_tolerance * 255.0
    found = _core(u8, nonflat, cfg, side)
    if found is None and side >= 2 * cfg.smooth_side:  # smooth at 1 px (an upscaled frame):
        return _rescaled(u, cfg, 0.5)                  # look again at half the size
    if found is None:
        return _whole(height, width)
    core, labels = found
    tol = max(1.5, cfg.edge_tolerance * side)
    geo = _fit(core, tol, cfg)
    if geo is None:  # no straight edges: the evidence's bounding box
        result = _bbox_region(core)
        geo = dict(shape="sector" if tapers(core) else "rectangle")
    else:
        if geo["shape"] != "rectangle":  # step 3: parts inside the fan, e.g. a cut-off tip
            inside = fan_mask(geo, core.shape, pad=0.01, outer=True)
            parts = _joining(labels * ~core, inside, cfg.growth_inside)
            if parts is not None:
                core = core | ndimage.binary_fill_holes(parts)
                geo = _fit(core, tol, cfg) or geo
        floor = _floor(u8, core, cfg, side)  # step 4
        inside = column_mask(geo, core.shape) if geo["shape"] == "rectangle" else \
            fan_mask(geo, core.shape, pad=0.01, outer=False)
        parts = _joining(floor, inside, cfg.growth_inside) if floor is not None else None
        if parts is not None:
            core = ndimage.binary_fill_holes(core | parts)
            geo = _fit(core, tol, cfg) or geo
        inset = max(0, int(round((cfg.texture_fraction - 0.5)
                                 * odd(cfg.texture_window, side, 5))) - 1)
        result = _render(_refine(geo, u8, nonflat, cfg, side, inset), nonflat,
                         max(cfg.snap_pixels, cfg.snap * side))
    window = _display_window(u8, core, cfg)  # step 6
    if window is not None and box_iou(window, result.box) < cfg.window_iou:
        return _inscribe(geo["shape"], window, (height, width))
    return result


def _rescaled(u, cfg: ScanRegionConfig, scale: float) -> ScanRegion:
    """The region found on ``u`` resized by ``scale`` (INTER_AREA), mapped back to ``u``."""
    height, width = u.shape
    small = cv2.resize(u, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    found = detect_scan_region(small, cfg)
    if found.shape == "rectangle":
        y0, y1, x0, x1 = (v / scale for v in found.box)
        return _box_region((max(0, round(y0)), min(height, round(y1)), max(0, round(x0)),
                            min(width, round(x1))), (height, width))
    mask = cv2.resize(found.mask.astype(np.uint8), (width, height),
                      interpolation=cv2.INTER_NEAREST).astype(bool)
    return _bbox_region(mask, found.shape)


def dicom_scan_region(path: str | os.PathLike) -> ScanRegion | None:
    """The largest tissue (RegionDataType 1; else any) region of a DICOM file's
    SequenceOfUltrasoundRegions, clipped to Rows x Columns; None when there is none.

    DICOM's MaxX1/MaxY1 are inclusive, the box is half-open. The header records a rectangle,
    not the fan inside it: ``mask`` is the box, ``shape`` "rectangle". Raises ImageError when
    the header cannot be read.
    """
    import pydicom

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            height, width = int(ds.Rows), int(ds.Columns)
            regions = list(ds.get("SequenceOfUltrasoundRegions", None) or [])
    except Exception as exc:  # not DICOM, no Rows/Columns, truncated header ...
        raise ImageError(path, f"cannot read the DICOM header ({exc})") from exc
    boxes = []
    for item in regions:
        try:
            x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
            x1, y1 = int(item.RegionLocationMaxX1) + 1, int(item.RegionLocationMaxY1) + 1
        except (AttributeError, TypeError, ValueError):
            continue
        y0, y1, x0, x1 = max(0, y0), min(height, y1), max(0, x0), min(width, x1)
        if y1 > y0 and x1 > x0:
            tissue = int(item.get("RegionDataType", 0) or 0) == 1
            boxes.append((tissue, (y1 - y0) * (x1 - x0), (y0, y1, x0, x1)))
    if not boxes:
        return None
    box = max(boxes)[2]
    mask = np.zeros((height, width), bool)
    mask[box[0]:box[1], box[2]:box[3]] = True
    return ScanRegion(box, mask, "rectangle", "dicom")


# ----------------------------------------------------------------------------- steps


def _core(u8, nonflat, cfg: ScanRegionConfig, side: int):
    """Steps 1-2: ``(filled core, evidence labels)``, or None without a large component."""
    box = (odd(cfg.texture_window, side, 5),) * 2
    texture = cv2.boxFilter(nonflat.astype(np.float32), -1, box, borderType=cv2.BORDER_REFLECT)
    smooth = cv2.medianBlur(u8, 3).astype(np.int16)  # JPEG noise off flat panels
    ground = (smooth <= cv2.erode(smooth, np.ones(box, np.uint8)) + cfg.ground_levels)
    ground = cv2.boxFilter(ground.astype(np.float32), -1, box, borderType=cv2.BORDER_REFLECT)
    evidence = (texture >= cfg.texture_fraction) & (ground <= cfg.ground_fraction)
    evidence = cv2.morphologyEx(evidence.astype(np.uint8), cv2.MORPH_OPEN,
                                disk(odd(cfg.open_size, side, 3)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(evidence, connectivity=8)
    if count < 2:
        return None
    x, y, w, h, areas = (stats[1:, k] for k in range(5))
    thick = np.minimum(w, h) >= cfg.merge_thickness * side
    best = int(np.argmax(np.where(thick, areas, 0) if thick.any() else areas))
    if areas[best] < cfg.min_area * u8.size:
        return None
    overlap = np.minimum(x + w, x[best] + w[best]) - np.maximum(x, x[best])  # above/below
    keep = (areas >= cfg.merge_fraction * areas[best]) & thick \
        & (overlap >= 0.5 * np.minimum(w, w[best]))
    keep[best] = True
    return ndimage.binary_fill_holes(np.isin(labels, 1 + np.flatnonzero(keep))), labels


def _floor(u8, core, cfg: ScanRegionConfig, side: int):
    """Step 4: labels of display-floor components touching the core (None when none)."""
    background = int(np.bincount(u8.ravel(), minlength=256).argmax())
    median = cv2.medianBlur(u8, 3)
    floor = (median > background) & (median <= background + cfg.floor_levels * 255.0)
    floor = cv2.morphologyEx(floor.astype(np.uint8), cv2.MORPH_OPEN,
                             disk(odd(cfg.open_size, side, 3))).astype(bool) & ~core
    _, labels = cv2.connectedComponents(floor.astype(np.uint8), connectivity=8)
    touch = cv2.dilate(core.astype(np.uint8), disk(5)).astype(bool)
    ids = np.unique(labels[touch & floor])
    return np.where(np.isin(labels, ids[ids > 0]), labels, 0) if (ids > 0).any() else None


def _joining(labels, inside, share: float):
    """Union of the labelled components with at least ``share`` of their pixels ``inside``."""
    sizes = np.bincount(labels.ravel())
    within = np.bincount(labels[inside], minlength=sizes.size)
    ids = np.flatnonzero((within >= share * sizes) & (sizes > 0))
    ids = ids[ids > 0]
    return np.isin(labels, ids) if ids.size else None


def _fit(region, tol: float, cfg: ScanRegionConfig) -> dict | None:
    """Step 3: rectangle or fan parameters of a bool region (None when nothing fits)."""
    rows = np.flatnonzero(region.any(axis=1))
    if rows.size < 4:
        return None
    first = region[rows].argmax(axis=1)
    last = region.shape[1] - 1 - region[rows, ::-1].argmax(axis=1)
    left, right = ransac_line(rows, first, tol, -1), ransac_line(rows, last, tol, +1)
    if left is None or right is None:
        return None
    fan = left[0] < -cfg.rectangle_slope / 2 and right[0] > cfg.rectangle_slope / 2
    upright = [abs(line[0]) < cfg.rectangle_slope for line in (left, right)]
    if any(upright) and not all(upright):  # a cyst along one side of a rectangle can tilt
        vertical = [vertical_fit(v, tol) for v in (first, last)]  # its line: try it vertical
        if min(vertical[0][1], vertical[1][1]) >= 0.25:
            left, right = (0.0, vertical[0][0]), (0.0, vertical[1][0])
    (bl, al), (br, ar) = left, right
    if abs(bl) < cfg.rectangle_slope and abs(br) < cfg.rectangle_slope:
        near = lambda x, line: x[np.abs(x - line[1] - line[0] * rows) <= tol]  # noqa: E731
        x0 = int(round(np.median(near(first, left) if near(first, left).size else first)))
        x1 = int(round(np.median(near(last, right) if near(last, right).size else last))) + 1
        sub = region[:, max(0, x0):min(region.shape[1], x1)]
        has = sub.any(axis=0)
        if x1 - x0 < 4 or not has.any():
            return None
        y0 = edge_value(sub.argmax(axis=0)[has], tol, outer=-1)
        y1 = edge_value(region.shape[0] - 1 - sub[::-1].argmax(axis=0)[has], tol, outer=+1)
        return dict(shape="rectangle", box=(int(round(y0)), int(round(y1)) + 1, x0, x1))
    if not fan:
        return None
    ya = (ar - al) / (bl - br)
    xa = al + bl * ya
    if ya > rows[0] + 2 * tol:  # apex below the top of the region: not a fan
        return None
    t_left, t_right = np.arctan(bl), np.arctan(br)
    ys, xs = np.nonzero(region)
    r, theta = np.hypot(xs - xa, ys - ya), np.arctan2(xs - xa, ys - ya)
    nbins = int(np.clip((r.max() - r.min()) * (t_right - t_left) / 3, 12, 256))
    bins = np.floor((theta - t_left) / (t_right - t_left) * nbins).astype(int)
    ok = (bins >= 0) & (bins < nbins)
    if ok.sum() < 10:
        return None
    bins, r, ys, xs = bins[ok], r[ok], ys[ok], xs[ok]
    r_hi, r_lo = np.full(nbins, -np.inf), np.full(nbins, np.inf)
    np.maximum.at(r_hi, bins, r)
    np.minimum.at(r_lo, bins, r)
    filled = np.isfinite(r_hi)
    h, w = region.shape  # bins ending on the frame border are censored (the fan goes on) ...
    hit = ((ys >= h - 2) | (xs <= 1) | (xs >= w - 2)) & (r >= r_hi[bins] - 1.0)
    far = np.isin(np.arange(nbins), bins[hit]) & filled
    if far.sum() < 0.3 * filled.sum():  # ... unless only a few: glued labels, not the fan
        far[:] = False
    free = filled & ~far
    r_max = edge_value(r_hi[free], tol, outer=+1) if free.sum() >= 3 else 0.0
    if far.any():
        r_max = max(r_max, float(r_hi[far].max()))
    r_min = edge_value(r_lo[filled], tol, outer=-1)
    concentric = (np.abs(r_lo[filled] - r_min) <= 2 * tol).mean() >= cfg.arc_support
    shape = "convex" if r_min >= cfg.sector_ratio * r_max and concentric else "sector"
    return dict(shape=shape, apex=(float(ya), float(xa)), angles=(t_left, t_right),
                radii=(0.0 if shape == "sector" else r_min, r_max), left=left, right=right)


def _refine(geo: dict, u8, nonflat, cfg: ScanRegionConfig, side: int, inset: int
            ) -> dict:
    """Step 5: edges pushed out by ``inset``, then moved to the intensity step: the last
    offset (within ``snap_range``) up to which the lit share along the edge stays at least
    half of its value inside. Edges whose inside is mostly unlit (dark anatomy, display
    floor) keep the texture estimate."""
    background = int(np.bincount(u8.ravel(), minlength=256).argmax())
    lit = cv2.medianBlur(u8, 3) > background + cfg.lit_levels * 255.0
    # a smooth lit surface (a grey-scale bar glued to the edge) is no scan: lit pixels need
    # half of their 5x5 neighbours non-flat; even smoothed speckle has most
    lit &= cv2.boxFilter(nonflat.astype(np.float32), -1, (5, 5)) >= 0.5
    reach = max(3, int(round(cfg.snap_range * side)))
    height, width = u8.shape

    def share(ys, xs):  # lit share of the in-frame samples (nan when too few)
        ys, xs = np.round(ys).astype(int), np.round(xs).astype(int)
        ok = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        return float(lit[ys[ok], xs[ok]].mean()) if ok.sum() >= 8 else np.nan

    def step(sample) -> int:  # outward offset (px) of the step; 0 when unclear
        offsets = np.arange(-3 * reach, reach + 1)
        values = np.array([sample(d) for d in offsets])
        near = slice(2 * reach, 2 * reach + reach // 2 + 1)  # offsets -reach .. -reach/2
        ref = np.nanmedian(values[near]) if np.isfinite(values[near]).any() else 0.0
        if ref >= 0.3:  # inside is lit: walk out to the first unlit offset
            below = np.flatnonzero(~(values >= 0.5 * ref))  # nan counts as unlit
            below = below[below >= near.stop]
            return int(offsets[below[0] - 1]) if below.size else reach
        deep = values[:reach]  # the estimate lies outside the scan (glued UI, JPEG
        if not np.isfinite(deep).any() or np.nanmedian(deep) < 0.3:  # ringing): walk in
            return 0
        lit = np.flatnonzero(values[:near.stop] >= 0.5 * np.nanmedian(deep))
        return int(offsets[lit[-1]])
    if geo["shape"] == "rectangle":
        y0, y1, x0, x1 = geo["box"]
        y0, x0, y1, x1 = y0 - inset, x0 - inset, y1 + inset, x1 + inset
        in_y, in_x = np.arange(y0 + reach, y1 - reach), np.arange(x0 + reach, x1 - reach)
        if in_y.size >= 8 and in_x.size >= 8:
            x0 -= step(lambda d: share(in_y, np.full(in_y.size, x0 - d)))
            x1 += step(lambda d: share(in_y, np.full(in_y.size, x1 - 1 + d)))
            y0 -= step(lambda d: share(np.full(in_x.size, y0 - d), in_x))
            y1 += step(lambda d: share(np.full(in_x.size, y1 - 1 + d), in_x))
        return dict(geo, box=(int(y0), int(y1), int(x0), int(x1)))
    (bl, al), (br, ar) = geo["left"], geo["right"]
    r_min, r_max = geo["radii"]
    ya = geo["apex"][0]
    al, ar = al - inset * np.hypot(1, bl), ar + inset * np.hypot(1, br)
    shift = ya - (ar - al) / (bl - br)  # the apex moves up as the lines move out
    r_min, r_max, ya = r_min + shift - inset, r_max + shift + inset, ya - shift
    for sign, slope in ((-1.0, bl), (1.0, br)):  # left, right line along their normal
        ys = ya + np.cos(np.arctan(slope)) * np.linspace(r_min + 0.15 * (r_max - r_min),
                                                         r_max - 0.15 * (r_max - r_min), 64)
        norm, inter = np.hypot(1, slope), (al if sign < 0 else ar)
        moved = sign * step(lambda d: share(ys, inter + sign * d * norm + slope * ys)) * norm
        al, ar = (al + moved, ar) if sign < 0 else (al, ar + moved)
    shift = ya - (ar - al) / (bl - br)
    ya, xa = ya - shift, al + bl * (ya - shift)
    thetas = np.linspace(np.arctan(bl), np.arctan(br), 66)[1:-1]
    arc = lambda rad: (ya + rad * np.cos(thetas), xa + rad * np.sin(thetas))  # noqa: E731
    r_max += shift
    r_max += step(lambda d: share(*arc(r_max + d)))
    tip = None  # a phased array's sector starts a little below the apex: first lit row
    for y in range(max(0, int(np.ceil(ya))), min(height, int(ya + 0.08 * r_max))):
        xs = np.arange(int(np.ceil(xa + (y - ya) * bl)), int(xa + (y - ya) * br) + 1)
        xs = xs[(xs >= 0) & (xs < width)]
        if xs.size >= 3 and lit[y, xs].mean() >= 0.5:
            tip = (y - ya) / np.cos(max(abs(np.arctan(bl)), abs(np.arctan(br))))
            break
    if tip is not None and geo["shape"] == "convex":  # a textured tip at an apex inside the
        y = int(round(ya + tip * np.cos(np.arctan(br))))  # frame, reached by lit side lines:
        radii = np.linspace(0.15, 0.85, 32) * (r_min + shift)  # not labels or a banner near
        edges = [share(ya + radii * np.cos(t), xa + radii * np.sin(t))  # a convex probe's
                 for t in (np.arctan(bl), np.arctan(br))]  # virtual apex
        xs = np.arange(max(0, int(xa) - 2), min(width, int(xa) + 3))
        if ya < 0 or np.nanmean(edges) < 0.5 or nonflat[y:y + 3, xs].mean() < 0.5:
            tip = None
    shape = geo["shape"]
    if shape == "convex" and tip is None:
        r_min += shift
        r_min -= step(lambda d: share(*arc(r_min - d)))
    else:  # a lit tip at the apex: a sector, even if dark anatomy hides its middle
        shape, r_min = "sector", tip or 0.0
    return dict(geo, shape=shape, left=(bl, al), right=(br, ar), apex=(float(ya), float(xa)),
                radii=(max(0.0, float(r_min)), float(r_max)))


def _render(geo: dict, nonflat, snap: float) -> ScanRegion:
    """Mask and box of the geometry; rectangle edges near the frame snapped onto it."""
    height, width = nonflat.shape
    if geo["shape"] != "rectangle":
        mask = fan_mask(geo, nonflat.shape)
        return _bbox_region(mask, geo["shape"]) if mask.any() else _whole(height, width)
    y0, y1, x0, x1 = geo["box"]
    y0, x0, y1, x1 = max(0, y0), max(0, x0), min(height, y1), min(width, x1)
    rim = lambda strip: strip.size > 0 and strip.mean() >= 0.5  # noqa: E731 textured gap
    y0 = 0 if y0 < snap and rim(nonflat[:y0, x0:x1]) else y0
    y1 = height if height - y1 < snap and rim(nonflat[y1:, x0:x1]) else y1
    x0 = 0 if x0 < snap and rim(nonflat[y0:y1, :x0]) else x0
    x1 = width if width - x1 < snap and rim(nonflat[y0:y1, x1:]) else x1
    if y1 <= y0 or x1 <= x0:
        return _whole(height, width)
    return _box_region((y0, y1, x0, x1), nonflat.shape)


def _display_window(u8, region, cfg: ScanRegionConfig) -> Box | None:
    """Step 6: a rectangle in another grey level than the frame's background (0 in a frame
    of 1 or more) around the evidence: ``window_fill`` of its rows and columns differ from the
    frame level, bands outside three of its sides have that level, and its own background is
    one flat level. None when there is no such window."""
    height, width = u8.shape
    median = cv2.medianBlur(u8, 3)
    border = np.concatenate([median[0], median[-1], median[:, 0], median[:, -1]])
    frame = int(np.bincount(border, minlength=256).argmax())
    if frame == 0:
        return None
    slack = 2 if frame >= 3 else 0  # JPEG noise around a grey frame; a frame at 1-2 is exact
    other = np.abs(median.astype(np.int16) - frame) > slack
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    smooth = odd(cfg.texture_window, min(height, width), 3)  # bridges JPEG blocks
    run_x = run_around(other[rows[0]:rows[-1] + 1].mean(axis=0), cfg.window_fill,
                        (cols[0] + cols[-1]) // 2, smooth)
    run_y = None if run_x is None else run_around(
        other[:, run_x[0]:run_x[1]].mean(axis=1), cfg.window_fill, (rows[0] + rows[-1]) // 2,
        smooth)
    if run_y is None:
        return None
    y0, y1, x0, x1 = box = (run_y[0], run_y[1], run_x[0], run_x[1])
    if min(y0, x0, height - y1, width - x1) < 3 or (y1 - y0) * (x1 - x0) > 0.9 * u8.size \
            or region[y0:y1, x0:x1].sum() < 0.9 * region.sum() \
            or min(y1 - y0, x1 - x0) < cfg.merge_thickness * min(height, width):
        return None
    bands = [other[max(0, y0 - 6):y0 - 2, x0:x1], other[y1 + 2:y1 + 6, x0:x1],
             other[y0:y1, max(0, x0 - 6):x0 - 2], other[y0:y1, x1 + 2:x1 + 6]]
    shares = sorted(float(b.mean()) if b.size else 1.0 for b in bands)
    if shares[2] > 0.5 or np.mean(shares) > 0.4:  # one side may hold a ruler or labels
        return None
    empty = ~cv2.dilate(region.astype(np.uint8), disk(9)).astype(bool)[y0:y1, x0:x1]
    levels = np.bincount(median[y0:y1, x0:x1][empty], minlength=256)
    if levels.sum() == 0 or abs(int(levels.argmax()) - frame) <= slack \
            or levels.max() < 0.5 * levels.sum():
        return None
    return box


def _inscribe(shape: str, box: Box, size: tuple[int, int]) -> ScanRegion:
    """A display window's region: the window, or (for a fan) the sector inscribed in it, apex
    at its top centre: cardiac scanners, which draw such windows, use phased arrays."""
    if shape == "rectangle":
        return _box_region(box, size)
    y0, y1, x0, x1 = box
    half = float(np.arcsin(min(1.0, (x1 - x0) / 2.0 / (y1 - y0))))
    geo = dict(apex=(float(y0), (x0 + x1 - 1) / 2.0), angles=(-half, half),
               radii=(0.0, float(y1 - y0)))
    mask = fan_mask(geo, size) & _box_region(box, size).mask
    return _bbox_region(mask, "sector") if mask.any() else _box_region(box, size)


# ----------------------------------------------------------------------------- helpers


def _check_image(image) -> np.ndarray:
    """Float32 2-D view of ``image``; ValueError for other shapes and non-finite values."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"detect_scan_region: expected a grey HxW image, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"detect_scan_region: expected a numeric image, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"detect_scan_region: empty image, shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError("detect_scan_region: the image contains NaN or infinite values")
    if arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
        raise ValueError(f"detect_scan_region: expected values in [0, 1], got "
                         f"[{arr.min():g}, {arr.max():g}] (divide 8-bit images by 255)")
    return arr


def _box_region(box: Box, size: tuple[int, int]) -> ScanRegion:
    mask = np.zeros(size, bool)
    mask[box[0]:box[1], box[2]:box[3]] = True
    return ScanRegion(tuple(int(v) for v in box), mask, "rectangle", "image")


def _whole(height: int, width: int) -> ScanRegion:
    return _box_region((0, height, 0, width), (height, width))


def _bbox_region(mask, shape: str = "rectangle") -> ScanRegion:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    if shape == "rectangle":
        return _box_region(box, mask.shape)
    return ScanRegion(box, mask, shape, "image")
