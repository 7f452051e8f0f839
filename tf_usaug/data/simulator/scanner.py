"""Device phantoms: a lesion imaged by one of the ``DEVICES`` scanner presets.

Same physics as :func:`tf_usaug.data.simulator.simulate_phantom` (scatterers, PyMUST simus,
I/Q, delay-and-sum, coherent compounding, tissue-fitted TGC), plus what makes one scanner's
images look unlike another's:

* the imaging area of its probe geometry (``ImagingArea``: rectangle, convex fan, sector),
  black outside, inside the square image that bounds it;
* its transmit centre frequency (speckle grain), transmits and element count;
* its display chain: residual TGC curve, dynamic range and gain (:func:`display`);
* a lesion that is, with probability ``overlap``, atypical for its class (``appearance``).

    >>> p = simulate_device_phantom("malignant", "phased-c", seed=3, size=64)
    >>> p.image, p.mask, p.area, p.info["atypical"]
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .acoustics import _pymust, beamform, make_scatterers, probe_param, simulate_iq
from .appearance import DEFAULT_OVERLAP, IRREGULAR_SOLIDITY, lesion_variant, outline_solidity
from .config import MIN_SIZE, ProbeConfig, SimulationConfig
from .devices import GEOMETRIES, LESION_REGION, DeviceConfig, resolve_device
from .lesion import Lesion, lesion_path_length, sample_lesion
from .phantom import block_mean, log_compress, tgc_profile_db


# --------------------------------------------------------------------------------------
# Geometry (pure)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImagingArea:
    """Where a probe forms an image, in the (x, z) plane of PyMUST (m, z = depth).

    ``linear``: |x| <= half_width, 0 <= z <= r_max. ``sector`` and ``convex``: polar
    coordinates (r, theta) around (0, apex_z), theta from the +z axis: r_min <= r <= r_max
    and |theta| <= half_angle. Sector: apex_z = 0, r_min = 0; convex: apex_z = -apothem,
    r_min = the array's radius of curvature.
    """

    geometry: str
    r_max: float
    half_width: float = 0.0
    apex_z: float = 0.0
    r_min: float = 0.0
    half_angle: float = 0.0

    def contains(self, x: np.ndarray, z: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Boolean array: which points lie in the area, grown outwards by ``margin`` (m)
        (never behind a convex array: r >= r_min always)."""
        x = np.asarray(x, dtype=np.float64)
        z = np.asarray(z, dtype=np.float64)
        if self.geometry == "linear":
            return (np.abs(x) <= self.half_width + margin) & (z >= 0) & (z <= self.r_max + margin)
        u = z - self.apex_z
        r = np.hypot(x, u)
        theta = np.arctan2(x, u)
        slack = np.arctan2(margin, np.maximum(r, 1e-9)) if margin > 0 else 0.0
        inner = self.r_min if self.geometry == "convex" else max(self.r_min - margin, 0.0)
        return ((r >= inner) & (r <= self.r_max + margin) & (u > 0)
                & (np.abs(theta) <= self.half_angle + slack))

    def bounds(self) -> tuple[float, float, float, float]:
        """Bounding box ``(x0, x1, z0, z1)`` of the area (m)."""
        if self.geometry == "linear":
            return -self.half_width, self.half_width, 0.0, self.r_max
        x1 = self.r_max * np.sin(self.half_angle)
        z0 = self.apex_z + self.r_min * np.cos(self.half_angle)
        return -float(x1), float(x1), float(z0), float(self.apex_z + self.r_max)


@dataclass(frozen=True)
class Window:
    """The square image: side (m), lateral centre 0, first row at depth ``top``."""

    side: float
    top: float


def imaging_area(device: DeviceConfig, pitch: float, n_elements: int,
                 radius: float = np.inf) -> ImagingArea:
    """The imaging area of ``device`` on an array of ``n_elements`` at ``pitch`` (m)."""
    if device.geometry not in GEOMETRIES:
        raise ValueError(f"unknown geometry {device.geometry!r}; choose from "
                         f"{', '.join(GEOMETRIES)}")
    if device.geometry == "linear":
        return ImagingArea("linear", r_max=device.depth, half_width=n_elements * pitch / 2)
    if device.geometry == "sector":
        return ImagingArea("sector", r_max=device.depth,
                           half_angle=float(np.deg2rad(device.sector_deg) / 2))
    if not np.isfinite(radius):
        raise ValueError(f"device {device.name!r}: a convex geometry needs a convex probe")
    # as PyMUST's getElementPositions: chord between the end elements, apothem below it
    half_arc = np.arcsin(pitch / 2 / radius) * (n_elements - 1)
    chord = 2 * radius * np.sin(half_arc)
    apothem = np.sqrt(radius ** 2 - chord ** 2 / 4)
    return ImagingArea("convex", r_max=radius + device.depth, apex_z=-float(apothem),
                       r_min=float(radius), half_angle=float(np.arctan2(chord / 2, apothem)))


def square_window(area: ImagingArea) -> Window:
    """The smallest square around the area's bounding box, centred on it."""
    x0, x1, z0, z1 = area.bounds()
    side = max(x1 - x0, z1 - z0)
    return Window(side=float(side), top=float((z0 + z1) / 2 - side / 2))


def window_centres(window: Window, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, Z) meshes (m) of the centres of an n x n pixel grid over the window."""
    step = window.side / n
    xs = -window.side / 2 + (np.arange(n) + 0.5) * step
    zs = window.top + (np.arange(n) + 0.5) * step
    return np.meshgrid(xs, zs)


def tgc_curve_db(points: tuple[float, ...], z: np.ndarray, z0: float, z1: float) -> np.ndarray:
    """Residual TGC (dB) at depths ``z``: ``points`` evenly spread from z0 to z1, linear in
    between, constant beyond."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.size == 1:
        return np.full(np.shape(z), float(pts[0]))
    return np.interp(z, np.linspace(z0, z1, pts.size), pts)


def display(db_flat: np.ndarray, area: np.ndarray, z_rows: np.ndarray, device: DeviceConfig,
            depth_span: tuple[float, float], tissue_grey: float) -> np.ndarray:
    """Grey image of a TGC-flattened dB image (tissue at 0 dB) on ``device``'s display.

    grey = clip(tissue_grey + (dB + TGC(z) + gain) / dynamic range, 0, 1), 0 outside the area.
    """
    curve = tgc_curve_db(device.tgc_db, np.asarray(z_rows), *depth_span)
    grey = log_compress(db_flat + curve[:, None] + device.gain_db, device.dynamic_range_db,
                        tissue_grey)
    return np.where(area, grey, np.float32(0.0)).astype(np.float32)


def lesion_aspect(lesion: Lesion) -> float:
    """Height / width of the lesion outline's bounding box (< 1: wider than tall)."""
    ox, oz = lesion.outline()
    return float(np.ptp(oz) / np.ptp(ox))


def virtual_source_delays(xe: np.ndarray, ze: np.ndarray, x0: float, z0: float,
                          c: float) -> np.ndarray:
    """Transmit delays (1 x N, s) of a wave diverging from the virtual source (x0, z0) behind
    the array: the element nearest to it fires first."""
    d = np.hypot(np.ravel(xe) - x0, np.ravel(ze) - z0)
    return ((d - d.min()) / c).reshape(1, -1)


# --------------------------------------------------------------------------------------
# Transmits and shadows
# --------------------------------------------------------------------------------------
def device_param(device: DeviceConfig, cfg: SimulationConfig):
    """PyMUST parameters: the probe's, with the device's centre frequency and elements."""
    param = probe_param(ProbeConfig(device.probe, 0.0, 0.0, "plane"), cfg)
    param.fc = float(device.fc_mhz) * 1e6
    param.fs = 4 * param.fc
    if device.elements is not None:
        param.Nelements = int(device.elements)
    return param


def transmits(device: DeviceConfig, param, area: ImagingArea) -> list[tuple[np.ndarray, tuple]]:
    """``(delays, origin)`` per transmit; origin: ``("plane", tilt)`` or ``("point", x, z)``,
    where the transmit rays of the shadow model start."""
    pm = _pymust()
    out = []
    for tilt_deg in device.tilts_deg:
        tilt = float(np.deg2rad(tilt_deg))
        scratch = param.copy()  # txdelay writes param.TXdelay, which dasmtx would then check
        if device.geometry == "linear":
            delays = np.asarray(pm.txdelay(scratch, tilt), dtype=np.float64).reshape(1, -1)
            out.append((delays, ("plane", tilt)))
        elif device.geometry == "sector":
            width = float(np.deg2rad(device.sector_deg))
            delays = np.asarray(pm.txdelay(scratch, tilt, width), dtype=np.float64).reshape(1, -1)
            origo = importlib.import_module("pymust.txdelay").angles2origo
            x0, z0 = origo((param.Nelements - 1) * param.pitch, np.array([[tilt]]),
                           np.array([[width]]))
            out.append((delays, ("point", float(np.ravel(x0)[0]), float(np.ravel(z0)[0]))))
        else:  # convex: the centre of curvature, moved sideways by the tilt
            xe, ze, _, _ = param.getElementPositions()
            x0, z0 = -area.apex_z * np.tan(tilt), area.apex_z
            out.append((virtual_source_delays(xe, ze, x0, z0, param.c), ("point", x0, z0)))
    return out


def echo_origin(area: ImagingArea, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the echo from (x, z) is taken to return to: straight up (linear), the sector's
    apex, or the convex array's centre of curvature."""
    x, z = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(z, dtype=np.float64))
    if area.geometry == "linear":
        return x, np.zeros_like(z)
    return np.zeros_like(x), np.full_like(z, area.apex_z)


def device_shadow_loss_db(lesion: Lesion, excess_attenuation: float, fc: float, area: ImagingArea,
                          origin: tuple, x: np.ndarray, z: np.ndarray,
                          samples: int) -> np.ndarray:
    """Two-way excess loss (dB) behind the lesion for one transmit (as ``shadow_loss_db``):
    alpha x f_c [MHz] x (path of the transmit ray + path of the echo) through the lesion [cm]."""
    x, z = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(z, dtype=np.float64))
    if excess_attenuation <= 0:
        return np.zeros(x.shape)
    if origin[0] == "plane":
        ox, oz = x - z * np.tan(origin[1]), np.zeros_like(z)
    else:
        ox, oz = np.full_like(x, origin[1]), np.full_like(z, origin[2])
    path = lesion_path_length(lesion, x, z, ox, oz, samples)
    path = path + lesion_path_length(lesion, x, z, *echo_origin(area, x, z), samples)
    return excess_attenuation * (fc / 1e6) * 100.0 * path


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DevicePhantom:
    """One simulated device image.

    Attributes:
        image: float32 size x size grey levels in [0, 1], 0 outside the imaging area.
        mask: bool lesion mask on the same pixels.
        area: bool imaging area on the same pixels.
        db: echo level (dB, float64; tissue at 0 dB) after the tissue-fitted TGC, before
            the device's display chain (``display(db, area, ...)`` gives ``image``);
            meaningless outside ``area``.
        info: what the generator drew (JSON-serialisable): ``atypical``, ``shadow``,
            ``irregular`` (solidity < 0.98), ``solidity``, ``aspect`` (height / width),
            ``echogenicity_db``, ``excess_attenuation``, ``lesion_px`` ...
    """

    image: np.ndarray
    mask: np.ndarray
    area: np.ndarray
    db: np.ndarray
    info: dict


def device_geometry(device: DeviceConfig, cfg: SimulationConfig | None = None):
    """``(param, area, window)`` of a device (PyMUST parameters, imaging area, square image)."""
    param = device_param(device, cfg or SimulationConfig())
    area = imaging_area(device, float(param.pitch), int(param.Nelements), float(param.radius))
    return param, area, square_window(area)


def simulate_device_phantom(label: str, device: str | DeviceConfig, seed: int, size: int = 128,
                            overlap: float = DEFAULT_OVERLAP,
                            config: SimulationConfig | None = None) -> DevicePhantom:
    """Simulate one B-mode phantom of class ``label`` as scanner ``device`` shows it.

    Args:
        label: ``"benign"`` or ``"malignant"``.
        device: a ``DEVICES`` name (case-insensitive) or a ``DeviceConfig``.
        seed: non-negative integer; the same seed gives the same image, bit for bit.
        size: output side in pixels (>= 16); the physical field of view does not change.
        overlap: probability that the lesion is atypical for its class (``appearance``).
        config: shared simulation settings (defaults: ``SimulationConfig()``).

    Example:
        >>> p = simulate_device_phantom("benign", "linear-a", seed=1, size=64)
    """
    cfg = config or SimulationConfig()
    dev = device if isinstance(device, DeviceConfig) else resolve_device(device)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE}, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    size, seed = int(size), int(seed)
    variant = lesion_variant(label, seed, overlap)
    lesion_cfg = variant.config
    param, area, window = device_geometry(dev, cfg)
    rng = np.random.default_rng(seed)

    region = ProbeConfig(dev.probe, fov_width=LESION_REGION, fov_top=dev.lesion_top, wave="plane")
    lesion = sample_lesion(label, rng, region, lesion_cfg)
    box = ProbeConfig(dev.probe, fov_width=window.side, fov_top=window.top, wave="plane",
                      scatterer_spacing=dev.scatterer_spacing)
    xs, zs, rc = make_scatterers(rng, lesion, lesion_cfg, box, param, size, cfg)
    keep = area.contains(xs, zs, margin=cfg.margin_wavelengths * param.c / param.fc)
    xs, zs, rc = xs[keep], zs[keep], rc[keep]

    px, pz = window_centres(window, size)
    in_area = area.contains(px, pz)
    fine_x, fine_z = window_centres(window, size * cfg.oversample)
    fine = np.repeat(np.repeat(in_area, cfg.oversample, axis=0), cfg.oversample, axis=1)
    compound = np.zeros(int(fine.sum()), dtype=np.complex128)
    sequence = transmits(dev, param, area)
    for delays, origin in sequence:
        loss_db = device_shadow_loss_db(lesion, lesion_cfg.excess_attenuation, param.fc, area,
                                        origin, xs, zs, cfg.path_samples)
        iq = simulate_iq(xs, zs, rc * 10.0 ** (-loss_db / 20.0), delays, param, cfg)
        compound += beamform(iq, fine_x[fine], fine_z[fine], delays, param, cfg.das_chunk)
    power = np.zeros(fine.shape)
    power[fine] = np.abs(compound) ** 2
    intensity = block_mean(power, cfg.oversample)
    peak = max(float(intensity[in_area].max()), 1e-300)
    db_image = 10.0 * np.log10(intensity / peak + 1e-12)

    mask = lesion.contains(px, pz)
    tissue = in_area & ~ndimage.binary_dilation(mask, iterations=2)
    for _, origin in sequence:  # fit the gain on unshadowed tissue only
        tissue &= device_shadow_loss_db(lesion, lesion_cfg.excess_attenuation, param.fc, area,
                                        origin, px, pz, cfg.path_samples) <= 0
    db_flat = db_image - tgc_profile_db(db_image, tissue, cfg.tgc_smoothing)[:, None]
    _, _, z0, z1 = area.bounds()
    image = display(db_flat, in_area, pz[:, 0], dev, (z0, z1), cfg.tissue_grey)
    solidity = outline_solidity(*lesion.outline())
    info = {
        "device": dev.name, "label": label, "seed": seed, "size": size,
        "atypical": variant.atypical, "shadow": bool(lesion_cfg.excess_attenuation > 0),
        "excess_attenuation": float(lesion_cfg.excess_attenuation),
        "echogenicity_db": float(lesion_cfg.echogenicity_db),
        "solidity": solidity, "irregular": bool(solidity < IRREGULAR_SOLIDITY),
        "aspect": lesion_aspect(lesion),
        "lesion_px": int(mask.sum()),
    }
    return DevicePhantom(image=image, mask=mask, area=in_area, db=db_flat, info=info)
