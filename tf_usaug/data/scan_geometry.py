"""Pure geometry of the scan-region detector: robust line and edge fits, fan masks, runs in
profiles (steps 3-6 of :mod:`tf_usaug.data.scan_region`)."""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open: image[y0:y1, x0:x1]


def run_around(profile, level: float, centre: int, smooth: int) -> tuple[int, int] | None:
    """``(start, stop)`` of the run around ``centre`` where ``profile`` smoothed over
    ``smooth`` samples reaches ``level``; each end then sits on the steepest 3-against-3
    step of the raw profile within ``smooth`` of it (a 1-px line beside it is no step)."""
    flags = ndimage.uniform_filter1d(profile, smooth) >= level
    if not flags[centre]:
        return None
    false = np.flatnonzero(~flags)
    start = int(false[false < centre].max()) + 1 if (false < centre).any() else 0
    stop = int(false[false > centre].min()) if (false > centre).any() else flags.size
    padded = np.pad(profile, 3, mode="edge")
    before = ndimage.uniform_filter1d(padded, 3, origin=1)[3:-3]   # mean of [i-3, i)
    after = ndimage.uniform_filter1d(padded, 3, origin=-1)[3:-3]   # mean of [i, i+3)
    if stop < profile.size:
        lo = max(0, stop - smooth)
        stop = lo + int(np.argmax((before - after)[lo:stop + smooth + 1]))
    if start > 0:
        lo = max(0, start - smooth)
        start = lo + int(np.argmax((after - before)[lo:start + smooth + 1]))
    return start, stop


def box_iou(a: Box, b: Box) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[2], b[2]))
    union = (a[1] - a[0]) * (a[3] - a[2]) + (b[1] - b[0]) * (b[3] - b[2]) - inter
    return inter / union if union > 0 else 0.0


def odd(fraction: float, side: int, least: int) -> int:
    """``fraction * side`` rounded to an odd number of pixels, at least ``least``."""
    return max(least, int(round(fraction * side)) | 1)


def disk(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def fan_mask(geo: dict, size: tuple[int, int], pad: float | None = None,
              outer: bool = True) -> np.ndarray:
    """The fan (``pad`` None) or, with ``pad``, its angles widened by ``pad`` rad below the
    apex (``outer``: and not beyond the outer arc)."""
    (ya, xa), (t_left, t_right), (r_min, r_max) = geo["apex"], geo["angles"], geo["radii"]
    yy, xx = np.mgrid[0:size[0], 0:size[1]].astype(np.float32)
    r, theta = np.hypot(xx - xa, yy - ya), np.arctan2(xx - xa, yy - ya)
    if pad is None:
        return (r <= r_max) & (r >= r_min) & (theta >= t_left) & (theta <= t_right)
    mask = (theta >= t_left - pad) & (theta <= t_right + pad) & (yy >= ya)
    return mask & (r <= r_max) if outer else mask


def column_mask(geo: dict, size: tuple[int, int]) -> np.ndarray:
    out = np.zeros(size, bool)
    out[:, max(0, geo["box"][2] - 2):geo["box"][3] + 2] = True
    return out


def tapers(region) -> bool:
    """True when the region's top quarter is much narrower than its bottom quarter."""
    rows = np.flatnonzero(region.any(axis=1))
    quarter = max(1, rows.size // 4)
    spans = [np.flatnonzero(region[part].any(axis=0)) for part in (rows[:quarter],
                                                                   rows[-quarter:])]
    return np.ptp(spans[0]) + 1 < 0.6 * (np.ptp(spans[1]) + 1)


def ransac_line(y, x, tol: float, outer: int, trials: int = 300):
    """``(slope, intercept)`` of ``x = intercept + slope * y`` with the most samples within
    ``tol``; among lines with 0.8 of that support the outermost at the middle row (``outer``
    -1: leftmost). Deterministic (fixed seed)."""
    n = y.size
    if n < 4:
        return None
    i, j = np.random.default_rng(0).integers(n, size=(2, trials))
    dy = (y[j] - y[i]).astype(np.float64)
    valid = np.abs(dy) >= max(3.0, 0.1 * (y.max() - y.min()))
    if not valid.any():
        return None
    i, j, dy = i[valid], j[valid], dy[valid]
    slope = (x[j] - x[i]) / dy
    inter = x[i] - slope * y[i]
    resid = np.abs(x[None, :] - (inter[:, None] + slope[:, None] * y[None, :]))
    counts = (resid <= tol).sum(axis=1)
    strong = np.flatnonzero(counts >= 0.8 * counts.max())
    pick = int(strong[np.argmax(outer * (inter[strong] + slope[strong] * np.median(y)))])
    inliers = resid[pick] <= tol
    if inliers.sum() < 2 or np.ptp(y[inliers]) == 0:
        return None
    slope, inter = np.polyfit(y[inliers].astype(np.float64), x[inliers].astype(np.float64), 1)
    return float(slope), float(inter)


def vertical_fit(x, tol: float) -> tuple[float, float]:
    """``(value, share)``: the x most samples share within ``tol``, and their share."""
    v = np.sort(x.astype(np.float64))
    counts = np.searchsorted(v, v + 2 * tol, side="right") - np.arange(v.size)
    start = int(np.argmax(counts))
    return float(np.median(v[start:start + counts[start]])), counts[start] / v.size


def edge_value(values, tol: float, outer: int) -> float:
    """Where most samples end: median of the outermost window of width ``2 tol`` holding at
    least half as many samples as the fullest one, a tenth of them side by side (text glued
    to an edge ends level too, but letter by letter). ``outer`` -1: small values are outer."""
    values = np.asarray(values, dtype=np.float64)
    v = np.sort(values)
    if v.size == 0:
        return 0.0
    ends = np.searchsorted(v, v + 2 * tol, side="right")
    counts = ends - np.arange(v.size)
    strong = np.flatnonzero(counts >= max(2, 0.5 * counts.max()))
    for start in (strong if outer < 0 else strong[::-1]):
        flags = np.concatenate([[0], (values >= v[start]) & (values <= v[start] + 2 * tol), [0]])
        edges = np.flatnonzero(np.diff(flags.astype(np.int8)))
        if (edges[1::2] - edges[::2]).max() >= max(2, 0.15 * v.size):
            return float(np.median(v[start:ends[start]]))
    start = int(np.argmax(counts))
    return float(np.median(v[start:ends[start]]))
