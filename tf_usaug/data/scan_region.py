"""Find the imaging region (rectangle, sector or convex fan) of an ultrasound screenshot.

A scanner screenshot holds one B-mode scan and, around it (and on it), burned-in text, depth
rulers with ticks, grey-scale bars, tool palettes, logos, thin lines and measurement crosses.
:func:`detect_scan_region` finds the scan from the pixels; :func:`dicom_scan_region` reads it
from the DICOM header (SequenceOfUltrasoundRegions) when the file carries one.

Detection, and why (sizes are fractions of the image's shorter side, 200 to 1200 px):

1. **Texture evidence.** Speckle changes at (almost) every pixel; UI does not. A pixel is
   *non-flat* when its 4-neighbour Laplacian exceeds ``flat_tolerance`` (a Laplacian, not a
   gradient, so that smooth grey-scale ramps count as flat). Evidence is where at least
   ``texture_fraction`` of a ``texture_window`` box is non-flat: speckle scores ~1 even where
   dim, while text, ticks, icons and panels leave most of their window flat (background
   between strokes) and score 0.2-0.5. Brightness is *not* used: a bright band or a dark cyst
   says nothing about where the scan ends.
2. **Core.** An opening (``open_size``) removes what is still thin (ruler lines touching the
   scan, text touching it); holes (dark anatomy inside) are filled. The largest component is
   the scan; further components of at least ``merge_fraction`` of its area that share its rows
   or columns are added (a dark layer across the scan splits it into bands, and the old
   largest-component rule then kept one band).
3. **Geometry, robust to dark anatomy and to attachments.** The leftmost and rightmost core
   pixel of every row are fitted with one straight line each by RANSAC (the line most rows
   agree with within ``edge_tolerance``). A dark cyst touching the edge moves the profile
   inward on *some* rows, UI glued to the edge moves it outward on some rows; both are
   outliers, and the edge is recovered from the rows where it is intact (old approach: bounding
   box of a bright blob, which any cyst or glued label moved). Two near-vertical lines
   (``rectangle_slope``) give a rectangle whose top and bottom are the row most columns end at
   (cluster vote, outermost strong cluster); two lines opening downwards give a fan: apex =
   their intersection, angles = their slopes, outer (and, for a convex probe, inner) radius =
   the radius most angle bins end at. The apex and arcs are thus extrapolated even where dark
   anatomy hides them. Inner radius below ``sector_ratio`` of the outer one: "sector".
4. **Display floor.** Some scanners draw the empty part of the fan one grey level above the
   background. Pixels between the background level and ``floor_levels`` above it, connected to
   the core, extend it when at least ``growth_inside`` of them lie inside the fitted geometry's
   angular (or column) range; this recovers the depth of a fan whose deep part is anechoic,
   while a dim frame around the whole display is refused.
5. **Edges.** The evidence stops ~``texture_fraction - 0.5`` windows inside the true edge; the
   region is grown back by that margin. A rectangle edge closer than ``snap`` to the frame is
   moved onto it, so a bare scan without UI (no margin) yields the whole frame.

No evidence at all (constant image, tiny image) gives the whole frame, shape "rectangle".
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from ..errors import ImageError, UsageError

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open: image[y0:y1, x0:x1]


@dataclass(frozen=True)
class ScanRegionConfig:
    """Parameters of :func:`detect_scan_region` (sizes: fractions of the shorter side).

    Attributes:
        flat_tolerance: |Laplacian| at or below which a pixel is flat (2.5/255: one quantisation
            step of a ramp or of JPEG noise is flat; speckle is not).
        texture_window: box in which the non-flat fraction is measured (0.03, >= 5 px: about a
            text line, so text blocks cannot fill it).
        texture_fraction: non-flat fraction that counts as speckle (0.75; speckle 0.9-1,
            text and icons 0.2-0.6).
        ground_levels, ground_fraction: a pixel within ``ground_levels`` grey levels of the
            darkest pixel of its ``texture_window`` is "ground"; text, icons and rulers lie on
            a flat ground (the background or a panel) that covers more than
            ``ground_fraction`` (0.3) of their window even where their strokes are dense
            enough to pass ``texture_fraction``; speckle has a few percent.
        open_size: opening disk removing thin remains (0.03, >= 3 px).
        min_area: smallest scan, fraction of the image area (0.01); below: whole frame.
        merge_fraction: other components of at least this fraction of the largest one that
            overlap its rows or columns by half are part of the scan (0.2) ...
        merge_thickness: ... when at least this thick in both directions (0.1; a toolbar
            under the scan is thinner).
        edge_tolerance: residual (px, as fraction; >= 1.5 px) of an edge line or arc (0.006).
        rectangle_slope: both side lines steeper than this (|dx/dy|) is a rectangle (0.06).
        sector_ratio: inner / outer radius below which a fan is a "sector" (0.15).
        floor_levels: display floor: grey levels above the background still counted (12/255).
        growth_inside: fraction of a floor component that must lie in the fitted geometry's
            range to be added (0.9).
        snap: rectangle edges this close to the frame border are moved onto it (0.04).
        window_fill: an enclosed flat area of one grey level around the scan that fills at
            least this fraction of its bounding box is the display's image area (0.97).
        min_side: images with a shorter side below this many pixels are returned whole (24).
    """

    flat_tolerance: float = 2.5 / 255
    texture_window: float = 0.03
    texture_fraction: float = 0.75
    ground_levels: int = 2
    ground_fraction: float = 0.3
    open_size: float = 0.03
    min_area: float = 0.01
    merge_fraction: float = 0.2
    merge_thickness: float = 0.1
    edge_tolerance: float = 0.006
    rectangle_slope: float = 0.06
    sector_ratio: float = 0.15
    floor_levels: float = 12 / 255
    growth_inside: float = 0.9
    lit_levels: float = 20 / 255
    snap_range: float = 0.04
    snap: float = 0.04
    window_fill: float = 0.6
    window_iou: float = 0.85
    min_side: int = 24


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
    """Detect the imaging region of a grey ``HxW`` image in [0, 1] (module docstring).

    Raises:
        ValueError: not a 2-D array, or NaN/inf values.
    """
    u = _check_image(image)
    height, width = u.shape
    if min(height, width) < cfg.min_side:
        return _whole(height, width)
    side = min(height, width)
    u8 = np.round(np.clip(u, 0.0, 1.0) * 255.0).astype(np.uint8)
    nonflat = np.abs(cv2.Laplacian(u8, cv2.CV_16S, ksize=1)) > cfg.flat_tolerance * 255.0
    core = _core(u8, nonflat, cfg, side)
    if core is None:
        return _whole(height, width)
    tol = max(1.5, cfg.edge_tolerance * side)
    geo = _fit_geometry(core, tol, cfg)
    if geo is None:
        return _bbox_region(core)
    grown = _grow_floor(u8, core, geo, cfg, side)
    if grown is not None:
        geo = _fit_geometry(grown, tol, cfg) or geo
    margin = max(0, int(round((cfg.texture_fraction - 0.5) * _odd(cfg.texture_window, side,
                                                                  5))) - 1)
    found = _render(_refine(geo, u8, cfg, side, margin), nonflat, cfg.snap * side)
    window = _display_window(u8, grown if grown is not None else core, cfg)
    if window is not None and _box_iou(window, found.box) < cfg.window_iou:
        return _inscribe(geo, window, (height, width))
    return found


def dicom_scan_region(path: str | os.PathLike) -> ScanRegion | None:
    """The B-mode region of a DICOM file's SequenceOfUltrasoundRegions, clipped to the frame.

    Regions with RegionDataType 1 (tissue) are preferred; among them (or among all regions
    when none is tissue) the largest after clipping is returned. The DICOM region is a
    rectangle (the fan inside it is not recorded): ``mask`` is the box, ``shape``
    "rectangle". Coordinates are inclusive in DICOM (MaxX1 is the last column) and half-open
    here. Returns None when the file has no regions or none overlaps the frame.

    Raises:
        ImageError: the file cannot be read as DICOM.
    """
    import pydicom

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            height, width = int(ds.Rows), int(ds.Columns)
            regions = list(ds.get("SequenceOfUltrasoundRegions", None) or [])
    except Exception as exc:
        raise ImageError(path, f"cannot read the DICOM header ({exc})") from exc
    boxes = []
    for item in regions:
        try:
            x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
            x1, y1 = int(item.RegionLocationMaxX1) + 1, int(item.RegionLocationMaxY1) + 1
        except (AttributeError, TypeError, ValueError):
            continue
        y0, y1 = max(0, y0), min(height, y1)
        x0, x1 = max(0, x0), min(width, x1)
        if y1 > y0 and x1 > x0:
            tissue = int(item.get("RegionDataType", 0) or 0) == 1
            boxes.append((tissue, (y1 - y0) * (x1 - x0), (y0, y1, x0, x1)))
    if not boxes:
        return None
    _, _, box = max(boxes)
    mask = np.zeros((height, width), bool)
    mask[box[0]:box[1], box[2]:box[3]] = True
    return ScanRegion(box, mask, "rectangle", "dicom")


def scan_region(source, frame: int = 0, cfg: ScanRegionConfig = ScanRegionConfig(),
                prefer_dicom: bool = True) -> ScanRegion:
    """Region of an image array or file: DICOM regions when present (and preferred), else
    :func:`detect_scan_region` on the pixels (read with ``tf_usaug.data.image_io``)."""
    if isinstance(source, np.ndarray):
        return detect_scan_region(source, cfg)
    if not isinstance(source, (str, os.PathLike)):
        raise UsageError(f"scan_region: expected an image array or a path, got "
                         f"{type(source).__name__}")
    from .image_io import read_image

    image, _ = read_image(source, frame=frame)
    if prefer_dicom and Path(source).suffix.lower() in (".dcm", ".dicom", ""):
        try:
            region = dicom_scan_region(source)
        except ImageError:
            region = None
        if region is not None and region.mask.shape == image.shape:
            return region
    return detect_scan_region(image, cfg)


# ----------------------------------------------------------------------------- steps


def _core(u8: np.ndarray, nonflat: np.ndarray, cfg: ScanRegionConfig, side: int
          ) -> np.ndarray | None:
    """Steps 1-2: filled speckle evidence of the scan (None when there is none)."""
    window = _odd(cfg.texture_window, side, 5)
    box = (window, window)
    fraction = cv2.boxFilter(nonflat.astype(np.float32), -1, box, borderType=cv2.BORDER_REFLECT)
    lowest = cv2.erode(u8, np.ones(box, np.uint8)).astype(np.int16)
    ground = (u8.astype(np.int16) <= lowest + cfg.ground_levels).astype(np.float32)
    ground = cv2.boxFilter(ground, -1, box, borderType=cv2.BORDER_REFLECT)
    evidence = ((fraction >= cfg.texture_fraction)
                & (ground <= cfg.ground_fraction)).astype(np.uint8)
    evidence = cv2.morphologyEx(evidence, cv2.MORPH_OPEN, _disk(_odd(cfg.open_size, side, 3)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(evidence, connectivity=8)
    if count < 2:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    thick = np.minimum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
    thick = thick >= cfg.merge_thickness * side
    best = int(np.argmax(np.where(thick, areas, 0) if thick.any() else areas))
    if areas[best] < cfg.min_area * nonflat.size:
        return None
    keep = [best + 1]
    bx, by, bw, bh = stats[best + 1, :4]
    for i in np.flatnonzero(areas >= cfg.merge_fraction * areas[best]):
        x, y, w, h = stats[i + 1, :4]
        if i == best or min(w, h) < cfg.merge_thickness * side:  # a toolbar, not a band
            continue
        x_overlap = min(x + w, bx + bw) - max(x, bx)
        y_overlap = min(y + h, by + bh) - max(y, by)
        if x_overlap >= 0.5 * min(w, bw) or y_overlap >= 0.5 * min(h, bh):
            keep.append(i + 1)
    core = np.isin(labels, keep)
    if len(keep) > 1:  # bridge the gap between bands before filling
        core = _hull_fill(core)
    return ndimage.binary_fill_holes(core)


def _fit_geometry(region: np.ndarray, tol: float, cfg: ScanRegionConfig,
                  lines: dict | None = None) -> dict | None:
    """Step 3: rectangle or fan parameters of a bool region (None when nothing fits)."""
    rows = np.flatnonzero(region.any(axis=1))
    if rows.size < 4:
        return None
    first = region[rows].argmax(axis=1)
    last = region.shape[1] - 1 - region[rows, ::-1].argmax(axis=1)
    if lines is None:
        left, right = _ransac_line(rows, first, tol), _ransac_line(rows, last, tol)
        if left is None or right is None:
            return None
    else:
        left, right = lines["left"], lines["right"]
    (bl, al), (br, ar) = left, right
    if abs(bl) < cfg.rectangle_slope and abs(br) < cfg.rectangle_slope:
        x0 = _line_value(rows, first, left, tol, np.median)
        x1 = _line_value(rows, last, right, tol, np.median) + 1
        x0, x1 = int(round(x0)), int(round(x1))
        if x1 - x0 < 4:
            return None
        cols = np.arange(max(0, x0), min(region.shape[1], x1))
        sub = region[:, cols]
        has = sub.any(axis=0)
        if not has.any():
            return None
        tops = sub.argmax(axis=0)[has]
        bottoms = region.shape[0] - 1 - sub[::-1].argmax(axis=0)[has]
        y0 = _edge_value(tops, tol, outer=-1)
        y1 = _edge_value(bottoms, tol, outer=+1) + 1
        return dict(shape="rectangle", box=(int(round(y0)), int(round(y1)), x0, x1),
                    left=left, right=right)
    if not (bl < -cfg.rectangle_slope / 2 and br > cfg.rectangle_slope / 2):
        return None
    ya = (ar - al) / (bl - br)
    xa = al + bl * ya
    if ya > rows[0] + 2 * tol:  # apex below the top of the region: not a fan
        return None
    t_left, t_right = np.arctan(bl), np.arctan(br)
    ys, xs = np.nonzero(region)
    r = np.hypot(xs - xa, ys - ya)
    theta = np.arctan2(xs - xa, ys - ya)
    r_out = max(float(r.max()) - float(r.min()), 1.0)
    nbins = int(np.clip(r_out * (t_right - t_left) / 3, 12, 256))
    bins = np.floor((theta - t_left) / (t_right - t_left) * nbins).astype(int)
    ok = (bins >= 0) & (bins < nbins)
    if ok.sum() < 10:
        return None
    bins, r, ys, xs = bins[ok], r[ok], ys[ok], xs[ok]
    r_hi = np.full(nbins, -np.inf)
    r_lo = np.full(nbins, np.inf)
    np.maximum.at(r_hi, bins, r)
    np.minimum.at(r_lo, bins, r)
    filled = np.isfinite(r_hi)
    # bins whose farthest pixel lies on the frame border are censored (the fan goes on)
    h, w = region.shape
    far = np.zeros(nbins, bool)
    at_border = (ys >= h - 2) | (xs <= 1) | (xs >= w - 2)
    hit = at_border & (r >= r_hi[bins] - 1.0)
    far[np.unique(bins[hit])] = True
    free = filled & ~far
    r_max = _edge_value(r_hi[free], tol, outer=+1) if free.sum() >= 3 else 0.0
    if (filled & far).any():
        r_max = max(r_max, float(r_hi[filled & far].max()))
    r_min = _edge_value(r_lo[filled], tol, outer=-1)
    shape = "sector" if r_min < cfg.sector_ratio * r_max else "convex"
    return dict(shape=shape, apex=(float(ya), float(xa)), angles=(t_left, t_right),
                radii=(0.0 if shape == "sector" else r_min, r_max), left=left, right=right)


def _grow_floor(u8: np.ndarray, core: np.ndarray, geo: dict, cfg: ScanRegionConfig,
                side: int) -> np.ndarray | None:
    """Step 4: core plus the connected display-floor pixels inside the fitted range."""
    background = int(np.bincount(u8.ravel(), minlength=256).argmax())
    median = cv2.medianBlur(u8, 3)
    floor = (median > background) & (median <= background + cfg.floor_levels * 255.0)
    floor = cv2.morphologyEx(floor.astype(np.uint8), cv2.MORPH_OPEN,
                             _disk(_odd(cfg.open_size, side, 3))).astype(bool) & ~core
    if not floor.any():
        return None
    touch = cv2.dilate(core.astype(np.uint8), _disk(5)).astype(bool)
    count, labels = cv2.connectedComponents(floor.astype(np.uint8), connectivity=8)
    ids = np.unique(labels[touch & floor])
    ids = ids[ids > 0]
    if ids.size == 0:
        return None
    inside = _in_range(geo, core.shape)
    grown = core.copy()
    for i in ids:
        part = labels == i
        if (part & inside).sum() >= cfg.growth_inside * part.sum():
            grown |= part
    if (grown == core).all():
        return None
    return ndimage.binary_fill_holes(grown)


def _refine(geo: dict, u8: np.ndarray, cfg: ScanRegionConfig, side: int, margin: int
            ) -> dict:
    """Step 5a: push every edge out by ``margin`` (the evidence stops inside the scan), then
    move it to the scan's intensity step: the outermost offset within ``snap_range`` up to
    which the share of lit pixels (3x3 median above the background by ``lit_levels``) along
    the edge stays at least half of its value just inside. Texture bleeds over JPEG ringing
    and touching UI; the step does not. Edges whose inside is mostly unlit (dark anatomy,
    a display floor) keep the texture estimate."""
    background = int(np.bincount(u8.ravel(), minlength=256).argmax())
    lit = cv2.medianBlur(u8, 3) > background + cfg.lit_levels * 255.0
    reach = max(3, int(round(cfg.snap_range * side)))
    height, width = u8.shape

    def share(ys, xs):  # lit share of the in-frame samples (nan when none)
        ys, xs = np.round(ys).astype(int), np.round(xs).astype(int)
        ok = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        return float(lit[ys[ok], xs[ok]].mean()) if ok.sum() >= 8 else np.nan

    def step(sample) -> int:  # outward offset (px) of the intensity step, 0 when unclear
        offsets = np.arange(-reach, reach + 1)
        values = np.array([sample(d) for d in offsets])
        inner = values[: reach // 2 + 1]
        if not np.isfinite(inner).any() or np.nanmedian(inner) < 0.3:
            return 0
        below = np.flatnonzero(~(values >= 0.5 * np.nanmedian(inner)))  # nan counts as below
        below = below[below > reach // 2]
        return int(offsets[below[0] - 1]) if below.size else reach

    if geo["shape"] == "rectangle":
        y0, y1, x0, x1 = geo["box"]
        y0, x0, y1, x1 = y0 - margin, x0 - margin, y1 + margin, x1 + margin
        inner_y = np.arange(y0 + reach, y1 - reach)
        inner_x = np.arange(x0 + reach, x1 - reach)
        if inner_y.size >= 8 and inner_x.size >= 8:
            dx0 = step(lambda d: share(inner_y, np.full(inner_y.size, x0 - d)))
            dx1 = step(lambda d: share(inner_y, np.full(inner_y.size, x1 - 1 + d)))
            dy0 = step(lambda d: share(np.full(inner_x.size, y0 - d), inner_x))
            dy1 = step(lambda d: share(np.full(inner_x.size, y1 - 1 + d), inner_x))
            y0, y1, x0, x1 = y0 - dy0, y1 + dy1, x0 - dx0, x1 + dx1
        return dict(geo, box=(int(y0), int(y1), int(x0), int(x1)))
    (bl, al), (br, ar) = geo["left"], geo["right"]
    ya, _ = geo["apex"]
    r_min, r_max = geo["radii"]
    al, ar = al - margin * np.hypot(1, bl), ar + margin * np.hypot(1, br)
    ya2 = (ar - al) / (bl - br)
    r_min, r_max = r_min + (ya - ya2) - margin, r_max + (ya - ya2) + margin
    ya, xa = ya2, al + bl * ya2
    for side_name in ("left", "right"):
        slope, inter = (bl, al) if side_name == "left" else (br, ar)
        sign = -1.0 if side_name == "left" else 1.0
        span = r_max - r_min
        ys = ya + np.cos(np.arctan(slope)) * np.linspace(r_min + 0.15 * span,
                                                         r_max - 0.15 * span, 64)
        norm = np.hypot(1, slope)
        d = step(lambda d: share(ys, inter + sign * d * norm + slope * ys))
        if side_name == "left":
            al = al - d * norm
        else:
            ar = ar + d * norm
    ya2 = (ar - al) / (bl - br)
    shift = ya - ya2
    ya, xa = ya2, al + bl * ya2
    t_left, t_right = np.arctan(bl), np.arctan(br)
    thetas = np.linspace(t_left, t_right, 66)[1:-1]
    r_max += shift
    r_max += step(lambda d: share(ya + (r_max + d) * np.cos(thetas),
                                  xa + (r_max + d) * np.sin(thetas)))
    if geo["shape"] == "convex":
        r_min += shift
        r_min -= step(lambda d: share(ya + (r_min - d) * np.cos(thetas),
                                      xa + (r_min - d) * np.sin(thetas)))
    else:
        r_min = 0.0
    return dict(geo, left=(bl, al), right=(br, ar), apex=(float(ya), float(xa)),
                angles=(t_left, t_right), radii=(max(0.0, float(r_min)), float(r_max)))


def _render(geo: dict, nonflat: np.ndarray, snap: float) -> ScanRegion:
    """Step 5b: mask and box of the geometry; rectangle edges near the frame snapped."""
    shape = nonflat.shape
    height, width = shape
    if geo["shape"] == "rectangle":
        y0, y1, x0, x1 = geo["box"]
        y0, x0, y1, x1 = max(0, y0), max(0, x0), min(height, y1), min(width, x1)
        # a narrow gap to the frame border that is itself textured is the scan's rim
        textured = lambda strip: strip.size > 0 and strip.mean() >= 0.5  # noqa: E731
        y0 = 0 if y0 < snap and textured(nonflat[:y0, x0:x1]) else y0
        y1 = height if height - y1 < snap and textured(nonflat[y1:, x0:x1]) else y1
        x0 = 0 if x0 < snap and textured(nonflat[y0:y1, :x0]) else x0
        x1 = width if width - x1 < snap and textured(nonflat[y0:y1, x1:]) else x1
        if y1 <= y0 or x1 <= x0:
            return _whole(height, width)
        box = (y0, y1, x0, x1)
        mask = np.zeros(shape, bool)
        mask[box[0]:box[1], box[2]:box[3]] = True
        return ScanRegion(tuple(int(v) for v in box), mask, "rectangle", "image")
    ya, xa = geo["apex"]
    t_left, t_right = geo["angles"]
    r_min, r_max = geo["radii"]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.hypot(xx - xa, yy - ya)
    theta = np.arctan2(xx - xa, yy - ya)
    mask = (r <= r_max) & (r >= r_min) & (theta >= t_left) & (theta <= t_right)
    if not mask.any():
        return _whole(height, width)
    return _bbox_region(mask, geo["shape"])


def _display_window(u8: np.ndarray, region: np.ndarray, cfg: ScanRegionConfig) -> Box | None:
    """Step 6: the display's image area, a rectangle whose pixels (tissue and empty) all
    differ from the frame's background level while a band around it has that level (e.g. 0
    inside a frame of 1); None when there is no such window."""
    height, width = u8.shape
    median = cv2.medianBlur(u8, 3)
    border = np.concatenate([median[0], median[-1], median[:, 0], median[:, -1]])
    border_level = int(np.bincount(border, minlength=256).argmax())
    other = median != border_level
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    smooth = _odd(cfg.texture_window, min(height, width), 3)  # JPEG blocks of the frame level
    run_x = _run_around(other[rows[0]:rows[-1] + 1].mean(axis=0), cfg.window_fill,
                        (cols[0] + cols[-1]) // 2, smooth)
    if run_x is None:
        return None
    run_y = _run_around(other[:, run_x[0]:run_x[1]].mean(axis=1), cfg.window_fill,
                        (rows[0] + rows[-1]) // 2, smooth)
    if run_y is None:
        return None
    y0, y1, x0, x1 = box = (run_y[0], run_y[1], run_x[0], run_x[1])
    area = (y1 - y0) * (x1 - x0)
    if min(y0, x0, height - y1, width - x1) < 3 or area > 0.9 * u8.size \
            or region[y0:y1, x0:x1].sum() < 0.9 * region.sum() \
            or min(y1 - y0, x1 - x0) < cfg.merge_thickness * min(height, width):
        return None
    sides = [other[max(0, y0 - 6):y0 - 2, x0:x1], other[y1 + 2:y1 + 6, x0:x1],
             other[y0:y1, max(0, x0 - 6):x0 - 2], other[y0:y1, x1 + 2:x1 + 6]]
    fractions = [float(side.mean()) if side.size else 1.0 for side in sides]
    if max(fractions) > 0.5 or np.mean(fractions) > 0.35:  # not framed by the background
        return None
    empty = ~cv2.dilate(region.astype(np.uint8), _disk(5)).astype(bool)[y0:y1, x0:x1]
    levels = median[y0:y1, x0:x1][empty]
    if levels.size == 0 or np.bincount(levels).argmax() == border_level:
        return None  # the window's own background must be another grey level
    return box


def _run_around(profile: np.ndarray, level: float, centre: int, smooth: int
                ) -> tuple[int, int] | None:
    """``(start, stop)`` of the run around ``centre`` where ``profile`` (smoothed over
    ``smooth`` samples, to bridge JPEG blocks) reaches ``level``; each end is then moved to
    the outermost sample within ``smooth`` of it where the raw profile reaches ``level``."""
    flags = ndimage.uniform_filter1d(profile, smooth) >= level
    if not flags[centre]:
        return None
    false = np.flatnonzero(~flags)
    start = int(false[false < centre].max()) + 1 if (false < centre).any() else 0
    stop = int(false[false > centre].min()) if (false > centre).any() else flags.size
    raw = np.flatnonzero(profile >= level)
    near = raw[(raw >= start - smooth) & (raw <= start + smooth)]
    start = int(near.min()) if near.size else start
    near = raw[(raw >= stop - 1 - smooth) & (raw <= stop - 1 + smooth)]
    stop = int(near.max()) + 1 if near.size else stop
    return start, stop


def _inscribe(geo: dict, box: Box, shape: tuple[int, int]) -> ScanRegion:
    """The region filling a display window: the window itself, or the sector inscribed in it
    (apex at the top centre, radius = window height, angle from its width): the cardiac
    scanners that draw such windows use phased arrays."""
    y0, y1, x0, x1 = box
    mask = np.zeros(shape, bool)
    if geo["shape"] == "rectangle":
        mask[y0:y1, x0:x1] = True
        return ScanRegion(box, mask, "rectangle", "image")
    ya, xa, r_max = float(y0), (x0 + x1 - 1) / 2.0, float(y1 - y0)
    half = float(np.arcsin(min(1.0, (x1 - x0) / 2.0 / r_max)))
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    r = np.hypot(xx - xa, yy - ya)
    mask = (r < r_max) & (np.abs(np.arctan2(xx - xa, yy - ya)) <= half)
    mask[:y0] = mask[y1:] = False
    mask[:, :x0] = mask[:, x1:] = False
    return ScanRegion(box, mask, "sector", "image")


# ----------------------------------------------------------------------------- helpers


def _check_image(image) -> np.ndarray:
    """Float32 2-D view of ``image``; ValueError for other shapes and non-finite values."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"detect_scan_region: expected a grey HxW image, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"detect_scan_region: expected a numeric image, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if arr.size and not np.isfinite(arr).all():
        raise ValueError("detect_scan_region: the image contains NaN or infinite values")
    if arr.size == 0:
        raise ValueError(f"detect_scan_region: empty image, shape {arr.shape}")
    return arr


def _box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(y0, y1, x0, x1)`` boxes."""
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[2], b[2]))
    union = (a[1] - a[0]) * (a[3] - a[2]) + (b[1] - b[0]) * (b[3] - b[2]) - inter
    return inter / union if union > 0 else 0.0


def _whole(height: int, width: int) -> ScanRegion:
    return ScanRegion((0, height, 0, width), np.ones((height, width), bool), "rectangle",
                      "image")


def _bbox_region(mask: np.ndarray, shape: str = "rectangle") -> ScanRegion:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    if shape == "rectangle":
        mask = np.zeros(mask.shape, bool)
        mask[box[0]:box[1], box[2]:box[3]] = True
    return ScanRegion(box, mask, shape, "image")


def _odd(fraction: float, side: int, least: int) -> int:
    """``fraction * side`` rounded to an odd number of pixels, at least ``least``."""
    return max(least, int(round(fraction * side)) | 1)


def _disk(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _hull_fill(mask: np.ndarray) -> np.ndarray:
    """Mask of the convex hull of ``mask`` (joins bands of one scan split by a dark layer)."""
    pts = cv2.findNonZero(mask.astype(np.uint8))
    out = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(out, cv2.convexHull(pts), 1)
    return out.astype(bool)


def _ransac_line(y: np.ndarray, x: np.ndarray, tol: float, trials: int = 300
                 ) -> tuple[float, float] | None:
    """``(slope, intercept)`` of ``x = intercept + slope * y`` most samples agree with."""
    n = y.size
    if n < 4:
        return None
    rng = np.random.default_rng(0)  # deterministic
    i, j = rng.integers(n, size=trials), rng.integers(n, size=trials)
    dy = (y[j] - y[i]).astype(np.float64)
    valid = np.abs(dy) >= max(3.0, 0.1 * (y.max() - y.min()))
    if not valid.any():
        return None
    i, j, dy = i[valid], j[valid], dy[valid]
    slope = (x[j] - x[i]) / dy
    inter = x[i] - slope * y[i]
    resid = np.abs(x[None, :] - (inter[:, None] + slope[:, None] * y[None, :]))
    counts = (resid <= tol).sum(axis=1)
    inliers = resid[int(np.argmax(counts))] <= tol
    if inliers.sum() < 2 or np.ptp(y[inliers]) == 0:
        return None
    slope, inter = np.polyfit(y[inliers].astype(np.float64), x[inliers].astype(np.float64), 1)
    return float(slope), float(inter)


def _line_value(y, x, line, tol, reduce) -> float:
    """``reduce`` of the samples within ``tol`` of ``line`` (all samples when none)."""
    slope, inter = line
    near = np.abs(x - (inter + slope * y)) <= tol
    return float(reduce(x[near] if near.any() else x))


def _edge_value(values: np.ndarray, tol: float, outer: int) -> float:
    """Where most samples end: the outermost window of width ``2 tol`` holding at least half
    as many samples as the fullest one (``outer`` -1: smallest values are outer)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    if v.size == 0:
        return 0.0
    ends = np.searchsorted(v, v + 2 * tol, side="right")
    counts = ends - np.arange(v.size)
    strong = np.flatnonzero(counts >= max(2, 0.5 * counts.max()))
    if strong.size == 0:
        strong = np.array([int(np.argmax(counts))])
    start = int(strong[0] if outer < 0 else strong[-1])
    return float(np.median(v[start:ends[start]]))


def _in_range(geo: dict, shape: tuple[int, int]) -> np.ndarray:
    """Bool mask of the fitted geometry's column range (rectangle) or angle range (fan)."""
    height, width = shape
    if geo["shape"] == "rectangle":
        _, _, x0, x1 = geo["box"]
        out = np.zeros(shape, bool)
        out[:, max(0, x0 - 2):x1 + 2] = True
        return out
    ya, xa = geo["apex"]
    t_left, t_right = geo["angles"]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = np.arctan2(xx - xa, yy - ya)
    pad = 0.01
    return (theta >= t_left - pad) & (theta <= t_right + pad) & (yy >= ya)
