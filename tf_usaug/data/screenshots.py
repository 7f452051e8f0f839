"""Synthetic ultrasound scanner screenshots with known imaging region (for testing detectors).

:func:`make_screenshot` draws, on a canvas wider than high (300-800 px high), one B-mode scan
of a linear ("rectangle"), phased ("sector") or curvilinear ("convex") probe and the clutter
real scanner screens put around and on it:

* B-mode: a complex Gaussian field filtered with an anisotropic PSF in beam space (depth x
  lateral, so the lateral grain widens with depth in fans), its Rayleigh envelope scaled by
  an echogenicity map (smooth field, tissue layers, bright specular lines, 1-3 large near-black
  anechoic regions, often cut by the scan's edge: a cyst at the skin, an "eye globe" half
  circle, a dark band across most of the width), depth attenuation partly undone by TGC, then
  log compression (45-65 dB) and an optional display floor of 1-3 grey levels inside the scan;
* UI: burned-in text blocks in the corners, a text column beside the scan and text inside the
  empty corners of a fan's bounding box, a logo, a header banner, thin separator lines, a depth
  ruler with ticks and numbers 2-12 px from the scan's edge, focus markers, a grey-scale bar, a
  tool palette of small icons (some filled bright) on a flat panel, and measurement crosses with
  a dotted line INSIDE the scan.

The truth is the geometric region (anechoic parts included) clipped to the canvas: its mask and
its bounding box ``(y0, y1, x0, x1)`` (half-open). Everything is a function of ``seed`` only.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

KINDS = ("rectangle", "sector", "convex")
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX)
_WORDS = ("GEN", "THI", "PEN", "RES", "2D", "CFM", "HGen", "Gn 60", "C 61", "DR 66", "FR 28",
          "MI 1.1", "TIS 0.4", "TIB 0.2", "AO 100%", "L12-5", "C5-1", "S5-1", "11cm", "4.0cm",
          "ABDOMEN", "THYROID", "OB", "CARDIAC", "P21", "3/3/4", "Page 1/3", "LYMPH NODE",
          "HOSPITAL", "DEPT RAD", "Frz", "Cine 118", "Dist 1.06 cm", "Area 2.4 cm2")


@dataclass(frozen=True)
class Screenshot:
    """One synthetic screenshot and its truth.

    Attributes:
        image: float32 ``HxW`` grey image in [0, 1] (quantised to 8 bits like a screen grab).
        box: ``(y0, y1, x0, x1)`` half-open bounding box of the imaging region.
        mask: bool ``HxW``, the imaging region (its geometry, dark anatomy included).
        kind: "rectangle", "sector" or "convex".
        jpeg_quality: JPEG quality the screenshot was saved with (None: lossless).
        window: True when the fan sits in a black display window inside a brighter frame
            and its flanks fade to black (the cardiac-scanner case).
    """

    image: np.ndarray
    box: tuple[int, int, int, int]
    mask: np.ndarray
    kind: str
    jpeg_quality: int | None = None
    window: bool = False


def make_screenshot(seed: int, kind: str | None = None) -> Screenshot:
    """A deterministic synthetic screenshot for ``seed`` (kind drawn at random when None)."""
    rng = np.random.default_rng([int(seed), 7321])
    kind = KINDS[int(rng.integers(3))] if kind is None else kind
    if kind not in KINDS:
        raise ValueError(f"make_screenshot: kind must be one of {KINDS}, got {kind!r}")
    height = int(rng.integers(300, 801))
    width = int(round(height * rng.uniform(1.25, 1.8)))
    geo = _geometry(rng, kind, height, width)
    mask = geo["mask"]
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    # display window (cardiac style): the sector's flanks fade to black inside a black image
    # area drawn in a dark grey frame (then the window is the only trace of the fan's size)
    window = kind == "sector" and rng.random() < 0.35 and box[1] + 8 < height
    background = int(rng.integers(4, 20)) if window else int(rng.choice([0, 0, 0, 8, 16]))
    canvas = np.full((height, width), background, np.float32) / 255.0
    if window:
        m = int(rng.integers(0, 3))
        canvas[box[0] - m:box[1] + m, box[2] - m:box[3] + m] = 0.0
    bmode = _bmode(rng, geo, height, width, window)
    canvas[mask] = bmode[mask]
    img8 = np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8)
    _draw_ui(rng, img8, geo)
    _draw_calipers(rng, img8, mask)
    quality = int(rng.integers(60, 96)) if rng.random() < 0.3 else None  # saved as JPEG
    if quality is not None:
        _, data = cv2.imencode(".jpg", img8, [cv2.IMWRITE_JPEG_QUALITY, quality])
        img8 = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return Screenshot(img8.astype(np.float32) / 255.0, box, mask, kind, quality, window)


# ----------------------------------------------------------------------------- geometry


def _geometry(rng, kind: str, height: int, width: int) -> dict:
    """Scan mask plus beam coordinates (depth ``d`` and lateral ``l`` in px) of every pixel."""
    top = int(height * rng.uniform(0.07, 0.14))               # header banner and text
    depth = int((height - top) * rng.uniform(0.72, 0.95))
    y0 = top + int(rng.integers(2, max(3, height - top - depth)))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "rectangle":
        sw = int(min(depth * rng.uniform(0.6, 1.5), width * 0.7))
        x0 = int(rng.integers(int(0.1 * width), width - sw - int(0.1 * width)))
        mask = (yy >= y0) & (yy < y0 + depth) & (xx >= x0) & (xx < x0 + sw)
        return dict(kind=kind, mask=mask, d=yy - y0, l=xx - x0, depth=depth, lateral=sw,
                    box=(y0, y0 + depth, x0, x0 + sw), apex=None)
    if kind == "sector":
        half = np.deg2rad(rng.uniform(30, 45))
        r_min, r_max = depth * rng.uniform(0.0, 0.04), float(depth)
    else:
        half = np.deg2rad(rng.uniform(20, 35))
        r_min = depth * rng.uniform(0.25, 0.6)
        r_max = r_min + depth
    half = min(half, np.arcsin(min(0.99, 0.36 * width / r_max)))  # fits the canvas
    ya = y0 - r_min * np.cos(half)  # the inner arc's ends touch row y0
    span = 2 * r_max * np.sin(half)
    xa = rng.uniform(0.12 * width + span / 2, 0.88 * width - span / 2)
    r = np.hypot(xx - xa, yy - ya)
    theta = np.arctan2(xx - xa, yy - ya)
    mask = (r >= r_min) & (r < r_max) & (np.abs(theta) < half)
    return dict(kind=kind, mask=mask, d=r - r_min, l=(theta + half) * (r_min + r_max) / 2,
                depth=int(r_max - r_min), lateral=int((r_min + r_max) * half) + 1,
                box=None, apex=(ya, xa, r_min, r_max, half))


# ----------------------------------------------------------------------------- B-mode


def _bmode(rng, geo: dict, height: int, width: int, dark_flanks: bool = False) -> np.ndarray:
    """Log-compressed speckle image of the whole canvas (only ``geo['mask']`` is used)."""
    mask, d, lat = geo["mask"], geo["d"], geo["l"]
    nd, nl = geo["depth"] + 4, geo["lateral"] + 4
    s_ax, s_lat = rng.uniform(0.6, 1.3), rng.uniform(1.4, 3.0)
    field = rng.standard_normal((2, nd, nl)).astype(np.float32)
    field = [cv2.GaussianBlur(f, (0, 0), sigmaX=s_lat, sigmaY=s_ax) for f in field]
    env = np.hypot(field[0], field[1])
    env = cv2.remap(env, np.clip(lat, 0, nl - 1), np.clip(d, 0, nd - 1), cv2.INTER_LINEAR)
    echo = _echogenicity(rng, geo, height, width)
    if dark_flanks:  # fading to -70 dB towards both sides, from 30-50% off the axis
        side = np.abs(2 * lat / geo["lateral"] - 1)
        start = rng.uniform(0.3, 0.5)
        echo = echo * 10 ** (-7 * np.clip((side - start) / (0.9 - start), 0, 1) ** 1.5)
    atten = 10 ** (-rng.uniform(3, 14) * np.clip(d, 0, None) / geo["depth"] / 20)
    noise = 0.0 if dark_flanks else 0.002  # electronic noise; the cardiac case rejects it
    amp = env * np.sqrt(echo) * atten + noise * rng.rayleigh(size=env.shape).astype(np.float32)
    ref = np.percentile(amp[mask], 99.5)
    dr = rng.uniform(45, 65)
    img = (20 * np.log10(np.maximum(amp, 1e-6) / ref) + dr) / dr * rng.uniform(0.7, 0.95)
    floor = 0.0 if dark_flanks else rng.choice([0, 0, 1, 2, 3]) / 255.0
    return np.clip(img, floor, 1).astype(np.float32)


def _echogenicity(rng, geo: dict, height: int, width: int) -> np.ndarray:
    """Echogenicity map: smooth field x layers x specular lines x anechoic regions."""
    mask, d = geo["mask"], geo["d"]
    small = rng.standard_normal((max(4, height // 40), max(4, width // 40))).astype(np.float32)
    echo = np.exp(0.5 * cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.5), (width, height)))
    depth = geo["depth"]
    for _ in range(int(rng.integers(1, 4))):                     # tissue layers
        a = rng.uniform(0, depth)
        b = a + rng.uniform(0.05, 0.2) * depth
        echo[(d >= a) & (d < b)] *= rng.uniform(0.3, 2.0)
    lines = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(1, 5))):                     # specular reflectors
        yc = rng.uniform(0.05, 0.9) * depth
        pts = np.stack([np.linspace(0, width, 12), yc + np.cumsum(rng.normal(0, 3, 12))], 1)
        pts[:, 1] += _row_of(geo, d, yc) - yc
        cv2.polylines(lines, [pts.astype(np.int32)], False, 1, int(rng.integers(1, 4)))
    echo[lines > 0] *= rng.uniform(4, 10)
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    dark = np.zeros((height, width), np.uint8)
    for i in range(int(rng.integers(1, 4))):                     # anechoic regions
        ry = rng.uniform(0.12, 0.3) * (y1 - y0)
        rx = min(ry * rng.uniform(0.8, 2.0), 0.35 * (x1 - x0))
        style = rng.choice(["inside", "top", "side", "globe", "band"], p=[.2, .25, .2, .2, .15])
        if i == 0 and style == "inside":
            style = "top"
        cx = x0 + rng.uniform(0.25, 0.75) * (x1 - x0)
        cy = y0 + rng.uniform(0.3, 0.8) * (y1 - y0)
        if style == "top":            # cyst touching the skin line, cut by the top edge
            k = int(rng.integers(len(ys)))
            cx = xs[k]
            cy = ys[xs == xs[k]].min() + rng.uniform(-0.4, 0.3) * ry
        elif style == "side":         # cut by a lateral edge
            row = int(rng.uniform(y0 + ry, y1 - ry / 2))
            inside = np.flatnonzero(mask[row])
            if inside.size:
                cx = (inside[0] if rng.random() < 0.5 else inside[-1]) + rng.normal(0, 0.2 * rx)
                cy = row
        elif style == "globe":        # big circle whose top half is cut off by the scan edge
            rx = ry = rng.uniform(0.2, 0.35) * (x1 - x0)
            cx = rng.uniform(x0 + 0.4 * rx, x1 - 0.4 * rx)
            cy = ys[xs == int(np.clip(cx, x0, x1))].min() + rng.uniform(-0.2, 0.2) * ry
        elif style == "band":         # dark layer across most of the width
            rx, ry = rng.uniform(0.7, 1.0) * (x1 - x0), rng.uniform(0.04, 0.1) * (y1 - y0)
            cx, cy = (x0 + x1) / 2 + rng.normal(0, 0.1) * (x1 - x0), rng.uniform(y0 + 3 * ry, y1 - 3 * ry)
        trial = dark.copy()
        cv2.ellipse(trial, (int(cx), int(cy)), (int(rx), int(ry)), float(rng.normal(0, 10)),
                    0, 360, 1, -1)
        if trial[mask].mean() <= 0.35 and _edges_visible(trial, geo):
            dark = trial              # large dark anatomy, but no edge of the scan hidden
    echo[dark > 0] *= 10 ** rng.uniform(-7, -5.5)   # -55 to -70 dB: near black
    return echo


def _edges_visible(dark: np.ndarray, geo: dict, most: float = 0.7) -> bool:
    """True when at most ``most`` of each edge band (5% of depth / width) is dark."""
    mask, d, lat = geo["mask"], geo["d"], geo["l"]
    bands = (d < 0.05 * geo["depth"], d > 0.95 * geo["depth"],
             lat < 0.05 * geo["lateral"], lat > 0.95 * geo["lateral"])
    return all(dark[mask & band].mean() <= most for band in bands if (mask & band).any())


def _row_of(geo: dict, d: np.ndarray, depth_px: float) -> float:
    """Canvas row at the centre of the scan where the depth is ``depth_px``."""
    ys, xs = np.nonzero(geo["mask"])
    xc = int(np.median(xs))
    col = d[:, xc]
    return float(np.argmin(np.abs(col - depth_px)))


# ----------------------------------------------------------------------------- UI


def _text(rng, img, text, org, scale, value=None, thick=None, font=None, avoid=None):
    """Burn text (anti-aliased like a screen font); skipped where it would cross box ``avoid``."""
    font = font if font is not None else _FONTS[int(rng.integers(len(_FONTS)))]
    thick = int(thick or rng.integers(1, 3))
    value = int(value if value is not None else rng.integers(150, 256))
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    x, y = int(org[0]), int(org[1])
    if avoid is not None:
        y0, y1, x0, x1 = avoid
        if x < x1 + 2 and x + tw > x0 - 2 and y + base > y0 - 2 and y - th < y1 + 2:
            return
    cv2.putText(img, text, (x, y), font, scale, value, thick, cv2.LINE_AA)


def _words(rng, n=None):
    return " ".join(rng.choice(_WORDS, size=n or int(rng.integers(1, 3))))


def _draw_ui(rng, img: np.ndarray, geo: dict) -> None:
    """Text, banner, logo, lines, ruler, focus marks, grey bar and tool palette around the scan."""
    height, width = img.shape
    ys, xs = np.nonzero(geo["mask"])
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    scale = height / 900 * rng.uniform(0.9, 1.4)
    line_h = int(32 * scale) + 4
    if rng.random() < 0.5:                                       # header banner
        img[: int(0.06 * height)] = np.maximum(img[: int(0.06 * height)], int(rng.integers(40, 90)))
    _text(rng, img, rng.choice(["PHILIPS", "SIEMENS", "GE", "SONO"]), (8, line_h),
          scale * 1.2, 255, 2 + int(rng.integers(0, 2)), cv2.FONT_HERSHEY_DUPLEX)
    box = (y0, y1, x0, x1)
    for i in range(int(rng.integers(2, 7))):                     # top-left block
        _text(rng, img, _words(rng), (8, line_h * (i + 2)), scale, avoid=box)
    for i in range(int(rng.integers(2, 5))):                     # top-right block
        _text(rng, img, _words(rng), (width - int(220 * scale) - 8, line_h * (i + 1)), scale,
              avoid=box)
    _text(rng, img, _words(rng, 3), (int(width * 0.35), height - 8), scale, avoid=box)
    side_x = x1 + int(rng.integers(40, 70)) if rng.random() < 0.5 else 6
    for i in range(int(rng.integers(3, 9))):                     # settings column
        _text(rng, img, _words(rng, 1), (side_x, y0 + line_h * (i + 1)), scale * 0.9, avoid=box)
    if geo["kind"] != "rectangle":                               # text in a fan's empty corners
        _text(rng, img, _words(rng, 1), (x0 + 4, y0 + line_h), scale * 0.9)
        _text(rng, img, _words(rng, 1), (x1 - int(90 * scale), y0 + line_h), scale * 0.9)
    if rng.random() < 0.6:                                       # thin separator lines
        yl = max(1, y0 - int(rng.integers(3, 15)))
        cv2.line(img, (0, yl), (width, yl), int(rng.integers(60, 200)), 1)
    if rng.random() < 0.3:
        cv2.line(img, (x1 + 3, 0), (x1 + 3, height), int(rng.integers(60, 160)), 1)
    # depth ruler with ticks just outside the scan edge
    side = 1 if rng.random() < 0.6 else -1
    xr = (x1 + int(rng.integers(2, 12))) if side > 0 else (x0 - int(rng.integers(2, 12)))
    value = int(rng.integers(160, 256))
    cv2.line(img, (xr, y0), (xr, y1), value, 1)
    step = int(rng.integers(18, 45))
    for k, yt in enumerate(range(y0, y1, step)):
        length = 10 if k % 5 == 0 else 5
        cv2.line(img, (xr, yt), (xr + side * length, yt), value, 1 + (k % 5 == 0))
        if k % 5 == 0:
            _text(rng, img, str(k // 5), (xr + side * 14 - (side < 0) * 12, yt + 5),
                  scale * 0.8, value, 1)
    for _ in range(int(rng.integers(1, 3))):                     # focus markers
        yf = int(rng.uniform(y0, y1))
        xf = x0 - 10 if side > 0 else x1 + 10
        tri = np.array([[xf, yf - 5], [xf, yf + 5], [xf + 8 * (1 if side > 0 else -1), yf]])
        cv2.fillPoly(img, [tri.astype(np.int32)], 255)
    _grey_bar(rng, img, x0, x1, y0, y1)
    _palette(rng, img, x0, x1)


def _grey_bar(rng, img, x0, x1, y0, y1) -> None:
    """Vertical grey-scale bar (ramp) beside the scan, with a thin frame."""
    height, width = img.shape
    bw = int(rng.integers(8, 26))
    bh = int((y1 - y0) * rng.uniform(0.25, 0.5))
    gap = int(rng.integers(10, 45))
    bx = x1 + gap if (x1 + gap + bw < width - 2 and rng.random() < 0.6) else x0 - gap - bw
    bx = int(np.clip(bx, 1, width - bw - 2))
    by = int(y0 + rng.uniform(0, 0.3) * (y1 - y0))
    ramp = 255 * np.linspace(1, 0, bh) ** rng.uniform(0.7, 1.4)   # display gamma curve
    img[by:by + bh, bx:bx + bw] = np.round(ramp)[:, None].astype(np.uint8)
    cv2.rectangle(img, (bx - 1, by - 1), (bx + bw, by + bh), 200, 1)


def _palette(rng, img, x0, x1) -> None:
    """Tool palette: a flat panel with small icons (outlines, filled, some bright)."""
    height, width = img.shape
    size = int(height * rng.uniform(0.03, 0.05))
    n = int(rng.integers(4, 9))
    left_room, right_room = x0, width - x1
    px = 4 if left_room > right_room else width - size - 8
    py = int(height * rng.uniform(0.3, 0.5))
    img[py - 4:py + n * (size + 6), px - 3:px + size + 4] = int(rng.integers(20, 70))
    for i in range(n):
        top = py + i * (size + 6)
        value = int(rng.integers(120, 256))
        shape = int(rng.integers(4))
        if shape == 0:
            cv2.rectangle(img, (px, top), (px + size, top + size), value, -1 if rng.random() < .4 else 1)
        elif shape == 1:
            cv2.circle(img, (px + size // 2, top + size // 2), size // 2, value, -1 if rng.random() < .4 else 1)
        elif shape == 2:
            cv2.line(img, (px, top + size), (px + size, top), value, 2)
            cv2.line(img, (px, top), (px + size, top + size), value, 2)
        else:
            _text(rng, img, rng.choice(["A", "M", "B", "P"]), (px + 2, top + size - 2),
                  size / 30, value, 1)


def _draw_calipers(rng, img: np.ndarray, mask: np.ndarray) -> None:
    """Measurement crosses and a dotted line between them, inside the scan."""
    ys, xs = np.nonzero(mask)
    for _ in range(int(rng.integers(1, 3))):
        k = rng.integers(len(ys), size=2)
        p, q = (int(xs[k[0]]), int(ys[k[0]])), (int(xs[k[1]]), int(ys[k[1]]))
        arm = int(rng.integers(4, 9))
        value = int(rng.integers(200, 256))
        for cx, cy in (p, q):
            cv2.line(img, (cx - arm, cy), (cx + arm, cy), value, 1)
            cv2.line(img, (cx, cy - arm), (cx, cy + arm), value, 1)
        n = max(2, int(np.hypot(q[0] - p[0], q[1] - p[1]) / 6))
        for t in np.linspace(0, 1, n)[1:-1]:
            cv2.circle(img, (int(p[0] + t * (q[0] - p[0])), int(p[1] + t * (q[1] - p[1]))), 1,
                       value, -1)
