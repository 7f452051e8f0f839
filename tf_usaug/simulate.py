"""PyMUST B-mode phantoms of breast lesions (benign / malignant) with exact masks.

This is how the bundled demo data (``tf_usaug/demo_data``) was made, and how to make more::

    python -m tf_usaug.simulate --out phantoms --n 8 --probe L11-5v,P4-2v --seed 0

One image, step by step (each step is a small function below):

1. Lesion outline, star-shaped around its centre. ``benign``: smooth oval, wider than tall.
   ``malignant``: irregular, spiculated, taller than wide. These are the sonographic
   descriptors that separate the two classes (Stavros et al., Radiology 196:123-134, 1995;
   ACR BI-RADS ultrasound lexicon).
2. Scatterers uniformly at random, at a density set like PyMUST's ``genscat`` by a spacing
   in shortest wavelengths (per probe, see ``PROBES``), Rayleigh amplitudes (as in
   ``genscat``) scaled by a smooth tissue texture and the lesion's lower echogenicity.
3. RF signals with ``pymust.simus`` (Garcia, CMPB 2022) for 3 unfocused transmits: tilted
   plane waves for the linear ``L11-5v``, diverging waves for the phased ``P4-2v``. For each
   transmit, the scatterers behind the lesion lose the excess attenuation of their transmit
   and echo paths through it (posterior acoustic shadowing; PyMUST itself only models a
   uniform attenuation).
4. I/Q demodulation (``rf2iq``), delay-and-sum beamforming (``dasmtx``; Perrot et al.,
   Ultrasonics 2021) evaluated directly at the Cartesian output pixels (so the phased-array
   sector needs no polar-to-Cartesian interpolation), coherent compounding of the transmits
   (Montaldo et al., IEEE TUFFC 2009; Papadacci et al., IEEE TUFFC 2014).
5. Intensity averaged over ``oversample`` x ``oversample`` sub-pixels, time-gain compensation
   fitted on the tissue, log compression with a 50 dB dynamic range into [0, 1].

The mask is the lesion outline evaluated at the same pixel centres as the image, so it is
exact in the output grid. Everything is deterministic for a given seed.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import multiprocessing
import os
import sys
import time
import types
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from tf_usaug import _log

CLASSES = ("benign", "malignant")
MIN_SIZE = 16


# --------------------------------------------------------------------------------------
# Configuration: one dataclass per concept, defaults with their source
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeConfig:
    """Transducer, field of view and transmit sequence of one simulated probe.

    Args:
        name: ``pymust.getparam`` name (Verasonics transducers: element count, pitch, fc, ...).
        fov_width: lateral extent of the square image (m); the image is ``fov_width`` deep too.
        fov_top: depth of the first image row (m).
        wave: ``"plane"`` (linear array, Montaldo et al. 2009) or ``"diverging"`` (phased
            array, Papadacci et al. 2014); also sets the ray geometry of the shadow
            (parallel vertical rays, or rays from the array centre).
        tilts_deg: transmit tilt angles, coherently compounded (one ``simus`` run each).
        sector_deg: angular width of the diverging waves (``pymust.txdelay(param, tilt,
            width)``); unused for plane waves.
        scatterer_spacing: mean scatterer spacing in units of the probe's shortest -6 dB
            wavelength: density 0.4 / spacing^2, as in PyMUST ``genscat``, which recommends
            a spacing <= 1.
    """

    name: str
    fov_width: float
    fov_top: float
    wave: str
    tilts_deg: tuple[float, ...] = (-5.0, 0.0, 5.0)
    sector_deg: float = 0.0
    scatterer_spacing: float = 1.0


# Linear 7.6 MHz: 3 cm x 3 cm from 5 mm depth, inside the 3.8 cm aperture (breast imaging).
# Phased 2.7 MHz: a 4 cm x 4 cm rectangle from 2 cm depth, inscribed in the 80-degree sector
# of its diverging waves: coarser, laterally elongated speckle from the same lesion model.
# Scatterer spacing: simus' cost per scatterer is ~3x higher for the linear array (twice the
# elements, more frequency samples), so it gets half genscat's density (spacing 1.4, ~10k
# scatterers; at 128 x 128 with 2 x 2 oversampling the speckle looks the same as at 1.0)
# while the phased array gets 1.6x it (spacing 0.8, ~9k scatterers): enough scatterers per
# (large) resolution cell for its speckle and shadows to be developed.
PROBES: dict[str, ProbeConfig] = {
    "L11-5v": ProbeConfig("L11-5v", fov_width=30e-3, fov_top=5e-3, wave="plane",
                          tilts_deg=(-5.0, 0.0, 5.0), scatterer_spacing=1.4),
    "P4-2v": ProbeConfig("P4-2v", fov_width=40e-3, fov_top=20e-3, wave="diverging",
                         tilts_deg=(-6.0, 0.0, 6.0), sector_deg=80.0, scatterer_spacing=0.8),
}


@dataclass(frozen=True)
class LesionConfig:
    """Shape and acoustics of one lesion class (ranges are sampled uniformly per image).

    Args:
        width_frac: lesion width before irregularities, as a fraction of the image width.
        height_ratio: height / width of the base ellipse.
        aspect_limits: (min, max) of the final bounding-box height / width; a lateral scale
            enforces it after spicules and lobes are added (wider-than-tall < 1 < taller).
        rotation_deg: maximum absolute rotation of the base ellipse.
        depth_frac: depth of the lesion centre, as a fraction of the image height.
        lobulation: amplitude of the low-order (2-4 lobes) radial harmonics, relative.
        irregularity: amplitude of the high-order (5-9) radial harmonics, relative.
        spicules: (min, max) number of spicules (thin radial spikes).
        spicule_length: spicule length range, as a fraction of the local radius.
        spicule_halfwidth: angular half-width range of a spicule at its base (rad).
        echogenicity_db: scatterer amplitude inside the lesion relative to tissue (hypoechoic).
        heterogeneity_db: standard deviation of the smooth internal echo texture.
        excess_attenuation: attenuation of the lesion above that of the tissue
            (dB/cm/MHz), lost by echoes whose transmit or return path crosses the lesion
            (posterior acoustic shadowing); 0 = no shadow.
    """

    width_frac: tuple[float, float]
    height_ratio: tuple[float, float]
    aspect_limits: tuple[float, float]
    rotation_deg: float
    depth_frac: tuple[float, float]
    lobulation: float = 0.0
    irregularity: float = 0.0
    spicules: tuple[int, int] = (0, 0)
    spicule_length: tuple[float, float] = (0.0, 0.0)
    spicule_halfwidth: tuple[float, float] = (0.10, 0.18)
    echogenicity_db: float = -20.0
    heterogeneity_db: float = 0.0
    excess_attenuation: float = 0.0


# Stavros et al. (1995), BI-RADS: benign = oval, circumscribed, parallel to the skin (wider
# than tall), hypo/anechoic; malignant = irregular, spiculated, not parallel (taller than
# wide), hypoechoic and heterogeneous, posterior acoustic shadowing. The excess attenuation
# of 1.2 dB/cm/MHz is a modelling choice: behind 1 cm of lesion (both ways) it removes
# ~6.5 dB at 2.7 MHz (P4-2v) and ~18 dB at 7.6 MHz (L11-5v): visible shadows on both probes,
# weaker at the lower frequency as in real scans.
LESIONS: dict[str, LesionConfig] = {
    "benign": LesionConfig(width_frac=(0.30, 0.45), height_ratio=(0.50, 0.68),
                           aspect_limits=(0.40, 0.80), rotation_deg=10.0, depth_frac=(0.38, 0.58),
                           lobulation=0.04, echogenicity_db=-20.0, heterogeneity_db=1.5),
    "malignant": LesionConfig(width_frac=(0.20, 0.28), height_ratio=(1.35, 1.70),
                              aspect_limits=(1.20, 1.90), rotation_deg=10.0,
                              depth_frac=(0.30, 0.40), lobulation=0.06, irregularity=0.08,
                              spicules=(5, 10), spicule_length=(0.3, 0.7),
                              echogenicity_db=-16.0, heterogeneity_db=3.0,
                              excess_attenuation=1.2),
}


@dataclass(frozen=True)
class SimulationConfig:
    """Acoustic simulation and image formation settings shared by all probes and classes.

    Args:
        attenuation: tissue attenuation (dB/cm/MHz); 0.5 is PyMUST's typical soft-tissue value.
        max_scatterers_per_pixel: cap on the scatterer count per output pixel, which keeps
            tiny grids (tests) fast; it never binds at 128 x 128.
        margin_wavelengths: scatterers extend this many wavelengths beyond the image so that
            the point spread function sees tissue at the borders.
        db_threshold: spectral components below this level are skipped by ``simus``
            (PyMUST's ``pfield`` default; ``simus``'s own -100 dB changes grey levels by
            < 2e-5 and takes ~10 % longer).
        oversample: beamform on an ``oversample``-times finer grid and average the intensity
            (speckle is finer than a 128-pixel image of a 3 cm field of view).
        dynamic_range_db: log-compression range; clinical B-mode uses 40-60 dB.
        tissue_grey: grey level of the median tissue echo after time-gain compensation.
        tgc_smoothing: width (Gaussian sigma, fraction of the image height) of the smoothing
            of the per-row tissue echo level (dB) that time-gain compensation removes.
        texture_db: standard deviation of the smooth tissue echogenicity texture.
        texture_length: correlation length of that texture (m).
        path_samples: samples along each ray when measuring the path through the lesion.
        das_chunk: beamformed points per ``dasmtx`` call (bounds the memory of the DAS matrix).
    """

    attenuation: float = 0.5
    max_scatterers_per_pixel: float = 6.0
    margin_wavelengths: float = 8.0
    db_threshold: float = -60.0
    oversample: int = 2
    dynamic_range_db: float = 50.0
    tissue_grey: float = 0.55
    tgc_smoothing: float = 0.04
    texture_db: float = 2.5
    texture_length: float = 2.5e-3
    path_samples: int = 64
    das_chunk: int = 16384
    probes: dict = field(default_factory=lambda: dict(PROBES))
    lesions: dict = field(default_factory=lambda: dict(LESIONS))


# --------------------------------------------------------------------------------------
# Lesion geometry (pure functions of a random generator)
# --------------------------------------------------------------------------------------
N_ANGLES = 1024  # resolution of the polar radius table of a lesion outline


@dataclass(frozen=True)
class Lesion:
    """A star-shaped lesion: radius table over polar angle around its centre.

    A point (x, z) is inside when ``r < radius(phi)`` with ``r, phi`` the polar coordinates
    of ``((x - cx) / x_scale, z - cz)``; ``phi`` is measured from +x towards +z (depth).
    """

    cx: float
    cz: float
    radii: np.ndarray  # shape (N_ANGLES,), m, at angles 2*pi*k/N_ANGLES
    x_scale: float = 1.0

    def radius(self, phi: np.ndarray) -> np.ndarray:
        """Outline radius (m) at polar angles ``phi`` (rad), periodic linear interpolation."""
        angles = np.arange(N_ANGLES) * (2 * np.pi / N_ANGLES)
        return np.interp(np.mod(phi, 2 * np.pi), angles, self.radii, period=2 * np.pi)

    def contains(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Boolean array: which points (x, z) (m) lie inside the lesion."""
        u = (np.asarray(x, dtype=np.float64) - self.cx) / self.x_scale
        v = np.asarray(z, dtype=np.float64) - self.cz
        return np.hypot(u, v) < self.radius(np.arctan2(v, u))

    def outline(self) -> tuple[np.ndarray, np.ndarray]:
        """The outline as (x, z) arrays (m), one point per table angle."""
        phi = np.arange(N_ANGLES) * (2 * np.pi / N_ANGLES)
        return (self.cx + self.x_scale * self.radii * np.cos(phi),
                self.cz + self.radii * np.sin(phi))

    def bounding_radius(self) -> float:
        """Radius (m) of a circle around (cx, cz) that contains the whole lesion."""
        return float(self.radii.max() * max(1.0, self.x_scale))


def ellipse_radius(phi: np.ndarray, semi_x: float, semi_z: float, rotation: float) -> np.ndarray:
    """Polar radius of a centred ellipse with semi-axes (semi_x, semi_z) rotated by ``rotation``.

    r(phi) = a b / sqrt((b cos t)^2 + (a sin t)^2), t = phi - rotation.
    """
    t = phi - rotation
    return semi_x * semi_z / np.hypot(semi_z * np.cos(t), semi_x * np.sin(t))


def radial_harmonics(phi: np.ndarray, orders: range, amplitude: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Relative radius modulation sum_k a_k cos(k phi + psi_k), a_k ~ amplitude * N(0, 1/K)."""
    if amplitude <= 0:
        return np.zeros_like(phi)
    ks = np.asarray(list(orders), dtype=np.float64)
    a = rng.normal(0.0, amplitude / np.sqrt(len(ks)), size=len(ks))
    psi = rng.uniform(0.0, 2 * np.pi, size=len(ks))
    return (a[:, None] * np.cos(ks[:, None] * phi[None, :] + psi[:, None])).sum(axis=0)


def spicule_profile(phi: np.ndarray, centres: np.ndarray, halfwidths: np.ndarray,
                    lengths: np.ndarray) -> np.ndarray:
    """Relative radius added by spicules: triangles in angle, ``lengths`` high at ``centres``."""
    if len(centres) == 0:
        return np.zeros_like(phi)
    d = np.angle(np.exp(1j * (phi[None, :] - centres[:, None])))  # wrapped to (-pi, pi]
    tri = np.clip(1.0 - np.abs(d) / halfwidths[:, None], 0.0, None)
    return (lengths[:, None] * tri).max(axis=0)


def aspect_scale(xs: np.ndarray, zs: np.ndarray, limits: tuple[float, float]) -> float:
    """Lateral scale s making the bounding-box height / (s * width) fall within ``limits``."""
    aspect = np.ptp(zs) / np.ptp(xs)
    lo, hi = limits
    # height / (s * width) = aspect / s  in [lo, hi]  <=>  s in [aspect / hi, aspect / lo]
    s_min = aspect / hi if np.isfinite(hi) else 0.0
    s_max = aspect / lo if lo > 0 else np.inf
    return float(np.clip(1.0, s_min, s_max))


def sample_lesion(label: str, rng: np.random.Generator, probe: ProbeConfig,
                  cfg: LesionConfig) -> Lesion:
    """Random lesion of class ``label`` inside the probe's field of view.

    Args:
        label: ``"benign"`` or ``"malignant"`` (only used in error messages).
        rng: the image's random generator.
        probe: field of view the lesion must fit into (with a 5 % margin).
        cfg: shape ranges of the class (``LESIONS[label]``).
    """
    width = probe.fov_width
    phi = np.arange(N_ANGLES) * (2 * np.pi / N_ANGLES)
    semi_x = 0.5 * width * rng.uniform(*cfg.width_frac)
    semi_z = semi_x * rng.uniform(*cfg.height_ratio)
    rotation = np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))
    base = ellipse_radius(phi, semi_x, semi_z, rotation)
    base = base * (1.0 + radial_harmonics(phi, range(2, 5), cfg.lobulation, rng)
                   + radial_harmonics(phi, range(5, 10), cfg.irregularity, rng))
    base = np.maximum(base, 0.3 * min(semi_x, semi_z))
    n_spicules = int(rng.integers(cfg.spicules[0], cfg.spicules[1] + 1))
    centres = rng.uniform(0.0, 2 * np.pi, size=n_spicules)
    halfwidths = rng.uniform(*cfg.spicule_halfwidth, size=n_spicules)
    lengths = rng.uniform(*cfg.spicule_length, size=n_spicules)
    radii = base * (1.0 + spicule_profile(phi, centres, halfwidths, lengths))

    x_scale = aspect_scale(radii * np.cos(phi), radii * np.sin(phi), cfg.aspect_limits)
    half_w = x_scale * np.max(np.abs(radii * np.cos(phi)))
    half_h = np.max(np.abs(radii * np.sin(phi)))
    margin = 0.05 * width
    if 2 * (half_w + margin) > width or 2 * (half_h + margin) > width:
        raise ValueError(f"{label} lesion of {2 * half_w:.4f} x {2 * half_h:.4f} m does not fit "
                         f"a {width:.4f} m field of view; reduce width_frac")
    cx = rng.uniform(-0.2, 0.2) * width
    cz = probe.fov_top + rng.uniform(*cfg.depth_frac) * width
    # keep the whole outline (with margin) inside the image
    cx = float(np.clip(cx, -width / 2 + margin + half_w, width / 2 - margin - half_w))
    cz = float(np.clip(cz, probe.fov_top + margin + half_h,
                       probe.fov_top + width - margin - half_h))
    return Lesion(cx=cx, cz=cz, radii=radii.astype(np.float64), x_scale=x_scale)


def lesion_path_length(lesion: Lesion, x: np.ndarray, z: np.ndarray, origin_x: np.ndarray,
                       origin_z: np.ndarray, samples: int = 64) -> np.ndarray:
    """Length (m) of the straight ray from (origin_x, origin_z) to (x, z) inside the lesion.

    Only the part of each ray inside the lesion's bounding circle is sampled (``samples``
    midpoints), so rays that miss the lesion cost nothing and return exactly 0.
    """
    x, z, ox, oz = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                         for a in (x, z, origin_x, origin_z)))
    dx, dz = x - ox, z - oz
    seg = np.hypot(dx, dz)
    # |o + t d - c|^2 = rho^2  ->  a t^2 + 2 b t + c0 = 0
    rho = lesion.bounding_radius()
    fx, fz = ox - lesion.cx, oz - lesion.cz
    a = np.maximum(dx * dx + dz * dz, 1e-30)
    b = fx * dx + fz * dz
    c0 = fx * fx + fz * fz - rho * rho
    disc = b * b - a * c0
    hit = disc > 0
    sq = np.sqrt(np.where(hit, disc, 0.0))
    t0 = np.clip((-b - sq) / a, 0.0, 1.0)
    t1 = np.clip((-b + sq) / a, 0.0, 1.0)
    hit &= t1 > t0
    out = np.zeros(x.shape, dtype=np.float64)
    if not hit.any():
        return out
    frac = (np.arange(samples) + 0.5) / samples
    t = t0[hit, None] + (t1 - t0)[hit, None] * frac[None, :]
    px = ox[hit, None] + t * dx[hit, None]
    pz = oz[hit, None] + t * dz[hit, None]
    inside = lesion.contains(px, pz).mean(axis=1)
    out[hit] = seg[hit] * (t1 - t0)[hit] * inside
    return out


def ray_origins(probe: ProbeConfig, x: np.ndarray, z: np.ndarray,
                tilt_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Where the straight ray reaching (x, z) leaves the probe surface (z = 0).

    Plane wave tilted by theta (propagating along (sin theta, cos theta), as pymust.txdelay
    fires element x at x sin(theta) / c): (x - z tan(theta), 0); theta = 0 is also the path
    of the echo back to a linear array. Phased array (diverging waves and echoes): its centre.
    """
    x, z = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(z, dtype=np.float64))
    if probe.wave == "plane":
        return x - z * np.tan(np.deg2rad(tilt_deg)), np.zeros_like(z)
    return np.zeros_like(x), np.zeros_like(z)


def shadow_loss_db(lesion: Lesion, lesion_cfg: LesionConfig, probe: ProbeConfig, fc: float,
                   x: np.ndarray, z: np.ndarray, tilt_deg: float, samples: int) -> np.ndarray:
    """Two-way excess loss (dB) of the echo from (x, z) for one transmit: posterior shadowing.

    loss = alpha_excess [dB/cm/MHz] x f_c [MHz] x (L_transmit + L_echo) [cm], with L the path
    lengths through the lesion along the transmit ray (tilted plane wave, or from the phased
    array's centre) and along the echo's way back (straight up, or to the centre).
    """
    if lesion_cfg.excess_attenuation <= 0:
        return np.zeros(np.broadcast(x, z).shape)
    path = lesion_path_length(lesion, x, z, *ray_origins(probe, x, z, tilt_deg), samples)
    path = path + lesion_path_length(lesion, x, z, *ray_origins(probe, x, z, 0.0), samples)
    return lesion_cfg.excess_attenuation * (fc / 1e6) * 100.0 * path


# --------------------------------------------------------------------------------------
# Scatterers
# --------------------------------------------------------------------------------------
def smooth_field(rng: np.random.Generator, extent: tuple[float, float, float, float],
                 length: float, x: np.ndarray, z: np.ndarray, grid: int = 96) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field of correlation ``length`` at (x, z).

    White noise on a ``grid`` x ``grid`` lattice over ``extent = (x0, x1, z0, z1)``, Gaussian
    filtered, normalised, and interpolated (bilinear) at the query points.
    """
    x0, x1, z0, z1 = extent
    noise = rng.standard_normal((grid, grid))
    cell = max(x1 - x0, z1 - z0) / (grid - 1)
    smooth = ndimage.gaussian_filter(noise, sigma=max(length / cell, 0.5), mode="wrap")
    smooth = (smooth - smooth.mean()) / max(smooth.std(), 1e-12)
    rows = (np.asarray(z) - z0) / (z1 - z0) * (grid - 1)
    cols = (np.asarray(x) - x0) / (x1 - x0) * (grid - 1)
    return ndimage.map_coordinates(smooth, [rows, cols], order=1, mode="nearest")


def shortest_wavelength(param) -> float:
    """Shortest wavelength at -6 dB (m): c / (fc (1 + bandwidth/200)), as in PyMUST genscat."""
    return float(param.get("c", 1540.0) / (param.fc * (1 + param.bandwidth / 200.0)))


def scatterer_count(area: float, spacing: float, size: int, max_per_pixel: float) -> int:
    """Number of scatterers: genscat's density 0.4 / spacing^2 over ``area`` (m^2, spacing in
    m), capped at ``max_per_pixel`` x size^2."""
    return int(round(min(area * 0.4 / spacing ** 2, max_per_pixel * size * size)))


def make_scatterers(rng: np.random.Generator, lesion: Lesion, lesion_cfg: LesionConfig,
                    probe: ProbeConfig, param, size: int,
                    cfg: SimulationConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scatterer positions (x, z) and reflection coefficients of one phantom, before shadowing.

    RC = Rayleigh(1)/sqrt(pi/2) (as in genscat) x 10^(echo / 20), with echo (dB) a smooth
    tissue texture outside the lesion and the lesion's echogenicity + heterogeneity inside.
    """
    spacing = probe.scatterer_spacing * shortest_wavelength(param)
    margin = cfg.margin_wavelengths * param.c / param.fc
    x0, x1 = -probe.fov_width / 2 - margin, probe.fov_width / 2 + margin
    z0, z1 = max(probe.fov_top - margin, param.pitch), probe.fov_top + probe.fov_width + margin
    n = scatterer_count((x1 - x0) * (z1 - z0), spacing, size, cfg.max_scatterers_per_pixel)
    xs = rng.uniform(x0, x1, n)
    zs = rng.uniform(z0, z1, n)
    amplitude = rng.rayleigh(1.0, n) / np.sqrt(np.pi / 2)

    extent = (x0, x1, z0, z1)
    echo_db = cfg.texture_db * smooth_field(rng, extent, cfg.texture_length, xs, zs)
    inside = lesion.contains(xs, zs)
    internal = smooth_field(rng, extent, cfg.texture_length, xs, zs)
    echo_db = np.where(inside, lesion_cfg.echogenicity_db + lesion_cfg.heterogeneity_db * internal,
                       echo_db)
    return xs, zs, amplitude * 10.0 ** (echo_db / 20.0)


# --------------------------------------------------------------------------------------
# Acoustics: PyMUST
# --------------------------------------------------------------------------------------
class _NumpyWithConcat(types.ModuleType):
    """NumPy as ``pymust.simus`` sees it on NumPy 1.x: the real module plus ``concat``."""

    def __init__(self):
        super().__init__("numpy")
        self.concat = np.concatenate

    def __getattr__(self, name):
        return getattr(np, name)


@functools.lru_cache(maxsize=1)
def _pymust():
    """Import PyMUST; on NumPy < 2 give ``pymust.simus`` the ``np.concat`` it calls (0.1.9)."""
    import pymust

    if not hasattr(np, "concat"):
        importlib.import_module("pymust.simus").np = _NumpyWithConcat()
    return pymust


def probe_param(probe: ProbeConfig, cfg: SimulationConfig):
    """PyMUST parameters of the probe: getparam + sampling at 4 fc + tissue attenuation."""
    pm = _pymust()
    param = pm.getparam(probe.name)
    param.fs = 4 * param.fc  # simus' default and minimum
    param.c = 1540.0
    param.attenuation = cfg.attenuation
    return param


def transmit_delays(probe: ProbeConfig, param, tilt_deg: float) -> np.ndarray:
    """Transmit delays (1 x Nelements, s) of one plane or diverging wave."""
    pm = _pymust()
    scratch = param.copy()  # txdelay writes param.TXdelay, which dasmtx would then check
    tilt = np.deg2rad(tilt_deg)
    if probe.wave == "plane":
        delays = pm.txdelay(scratch, tilt)
    elif probe.wave == "diverging":
        delays = pm.txdelay(scratch, tilt, np.deg2rad(probe.sector_deg))
    else:
        raise ValueError(f"unknown wave type {probe.wave!r}; expected 'plane' or 'diverging'")
    return np.asarray(delays, dtype=np.float64).reshape(1, -1)


def simulate_iq(xs: np.ndarray, zs: np.ndarray, rc: np.ndarray, delays: np.ndarray, param,
                cfg: SimulationConfig) -> np.ndarray:
    """I/Q signals (time x elements) received after one transmit: pymust.simus + rf2iq."""
    pm = _pymust()
    options = pm.utils.Options()
    options.dBThresh = cfg.db_threshold
    # one segment per element: its far field (width^2 / lambda < 1 mm) starts above the image
    options.ElementSplitting = 1
    options.WaitBar = False
    rf, _ = pm.simus(xs.astype(np.float32), zs.astype(np.float32), rc.astype(np.float32),
                     delays, param.copy(), options)
    return pm.rf2iq(rf, param.copy())


def beamform(iq: np.ndarray, x: np.ndarray, z: np.ndarray, delays: np.ndarray, param,
             chunk: int) -> np.ndarray:
    """Delay-and-sum of I/Q signals at points (x, z) (pymust.dasmtx, f-number from the
    element directivity), ``chunk`` points at a time. Returns complex values shaped like x."""
    pm = _pymust()
    das_param = param.copy()
    das_param.fnumber = None  # dasmtx: estimate the f-number from the element directivity
    flat_iq = iq.reshape(-1, order="F")
    xf, zf = x.reshape(-1), z.reshape(-1)
    out = np.empty(xf.shape, dtype=np.complex128)
    for start in range(0, xf.size, chunk):
        sl = slice(start, start + chunk)
        das = pm.dasmtx(1j * np.array(iq.shape), xf[sl], zf[sl], delays, das_param, "linear")
        out[sl] = das.tocsr() @ flat_iq
    return out.reshape(x.shape)


# --------------------------------------------------------------------------------------
# Image formation
# --------------------------------------------------------------------------------------
def pixel_centres(probe: ProbeConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, Z) meshes (m) of the centres of an n x n pixel grid over the field of view."""
    step = probe.fov_width / n
    xs = -probe.fov_width / 2 + (np.arange(n) + 0.5) * step
    zs = probe.fov_top + (np.arange(n) + 0.5) * step
    return np.meshgrid(xs, zs)


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping ``factor`` x ``factor`` blocks (shape divisible by factor)."""
    h, w = image.shape
    return image.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def tgc_profile_db(db_image: np.ndarray, tissue: np.ndarray, smoothing: float) -> np.ndarray:
    """Time-gain compensation (dB per row): median dB of the tissue pixels of each row,
    interpolated over rows with too little tissue and Gaussian-smoothed in depth (sigma =
    ``smoothing`` x height). Subtracting it puts the median tissue echo at 0 dB at every depth.
    """
    n_rows = db_image.shape[0]
    rows = np.arange(n_rows)
    valid = tissue.sum(axis=1) >= max(3, tissue.shape[1] // 8)
    if not valid.any():
        return np.full(n_rows, float(np.median(db_image)))
    medians = np.array([np.median(db_image[r][tissue[r]]) for r in rows[valid]])
    profile = np.interp(rows, rows[valid], medians)
    return ndimage.gaussian_filter1d(profile, sigma=max(smoothing * n_rows, 0.5), mode="nearest")


def log_compress(db_image: np.ndarray, dynamic_range_db: float, tissue_grey: float) -> np.ndarray:
    """Grey levels in [0, 1]: ``tissue_grey + dB / dynamic_range`` clipped (0 dB = tissue)."""
    return np.clip(tissue_grey + db_image / dynamic_range_db, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------
def resolve_probe(probe: str, cfg: SimulationConfig | None = None) -> ProbeConfig:
    """The ProbeConfig named ``probe`` (case-insensitive), or ValueError listing the choices."""
    probes = (cfg or SimulationConfig()).probes
    for name, conf in probes.items():
        if name.lower() == str(probe).lower():
            return conf
    raise ValueError(f"unknown probe {probe!r}; choose from {', '.join(probes)}")


def simulate_phantom(label: str, probe: str, seed: int, size: int = 128,
                     config: SimulationConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one B-mode phantom with a lesion and its exact mask.

    Args:
        label: ``"benign"`` or ``"malignant"``.
        probe: ``"L11-5v"`` (linear, 7.6 MHz) or ``"P4-2v"`` (phased, 2.7 MHz).
        seed: non-negative integer; the same seed gives the same image, bit for bit.
        size: output side in pixels (>= 16); the physical field of view does not change.
        config: simulation settings (defaults: ``SimulationConfig()``).

    Returns:
        ``(image, mask)``: float32 ``size x size`` in [0, 1] (row 0 = shallowest) and the
        bool lesion mask on the same pixel grid.

    Example:
        >>> image, mask = simulate_phantom("malignant", "L11-5v", seed=3, size=64)
    """
    cfg = config or SimulationConfig()
    if label not in cfg.lesions:
        raise ValueError(f"unknown class {label!r}; choose from {', '.join(cfg.lesions)}")
    probe_cfg = resolve_probe(probe, cfg)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE}, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    lesion_cfg = cfg.lesions[label]
    rng = np.random.default_rng(int(seed))
    param = probe_param(probe_cfg, cfg)

    lesion = sample_lesion(label, rng, probe_cfg, lesion_cfg)
    xs, zs, rc = make_scatterers(rng, lesion, lesion_cfg, probe_cfg, param, int(size), cfg)

    fine_x, fine_z = pixel_centres(probe_cfg, int(size) * cfg.oversample)
    compound = np.zeros(fine_x.shape, dtype=np.complex128)
    for tilt in probe_cfg.tilts_deg:
        delays = transmit_delays(probe_cfg, param, tilt)
        loss_db = shadow_loss_db(lesion, lesion_cfg, probe_cfg, param.fc, xs, zs, tilt,
                                 cfg.path_samples)
        iq = simulate_iq(xs, zs, rc * 10.0 ** (-loss_db / 20.0), delays, param, cfg)
        compound += beamform(iq, fine_x, fine_z, delays, param, cfg.das_chunk)
    intensity = block_mean(np.abs(compound) ** 2, cfg.oversample)
    db_image = 10.0 * np.log10(intensity / max(float(intensity.max()), 1e-300) + 1e-12)

    px, pz = pixel_centres(probe_cfg, int(size))
    mask = lesion.contains(px, pz)
    tissue = ~ndimage.binary_dilation(mask, iterations=2)
    for tilt in probe_cfg.tilts_deg:  # compensate the gain on unshadowed tissue only
        tissue &= shadow_loss_db(lesion, lesion_cfg, probe_cfg, param.fc, px, pz, tilt,
                                 cfg.path_samples) <= 0
    db_image = db_image - tgc_profile_db(db_image, tissue, cfg.tgc_smoothing)[:, None]
    return log_compress(db_image, cfg.dynamic_range_db, cfg.tissue_grey), mask


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------
def item_name(probe: str, label: str, index: int) -> str:
    """File stem of one phantom, unique across probes: ``l11-5v_benign_000``."""
    return f"{probe.lower()}_{label}_{index:03d}"


@dataclass(frozen=True)
class Item:
    """One phantom to write: where, which class/probe, and its own seed."""

    out: Path
    probe: str
    label: str
    index: int
    seed: int
    size: int

    @property
    def image_path(self) -> Path:
        return self.out / self.label / f"{item_name(self.probe, self.label, self.index)}.png"

    @property
    def mask_path(self) -> Path:
        return self.out / self.label / f"{item_name(self.probe, self.label, self.index)}_mask.png"

    def done(self) -> bool:
        return self.image_path.exists() and self.mask_path.exists()


def plan_items(out: Path, probes: list[str], labels: list[str], n: int, seed: int,
               size: int) -> list[Item]:
    """All phantoms of a run; each seed is ``item_seed(seed, "probe/label/index")`` so that
    probes, classes and indices are independent and any subset can be (re)made alone."""
    from tf_usaug.distributed import item_seed

    return [Item(out, p, lab, i, item_seed(seed, f"{p.lower()}/{lab}/{i}"), size)
            for p in probes for lab in labels for i in range(n)]


def write_item(item: Item) -> float:
    """Simulate one phantom and write image + mask atomically (mask first); returns seconds."""
    from tf_usaug.outputs import atomic_write_bytes, encode_png

    t0 = time.perf_counter()
    image, mask = simulate_phantom(item.label, item.probe, item.seed, item.size)
    atomic_write_bytes(item.mask_path, encode_png(mask))
    atomic_write_bytes(item.image_path, encode_png(image))
    return time.perf_counter() - t0


class _UsageError(Exception):
    """Bad command-line arguments: one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line instead of usage + traceback
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m tf_usaug.simulate``."""
    parser = _Parser(
        prog="python -m tf_usaug.simulate",
        description="Simulate B-mode breast-lesion phantoms with PyMUST and write them in the "
                    "BUSI layout: OUT/<class>/<probe>_<class>_<i>.png + ..._mask.png.")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--n", required=True, type=int, help="images per class and probe (>= 1)")
    parser.add_argument("--probe", required=True,
                        help=f"probe(s), comma-separated: {', '.join(PROBES)}")
    parser.add_argument("--seed", required=True, type=int, help="global seed (>= 0)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--classes", default=",".join(CLASSES),
                        help="comma-separated classes (default benign,malignant)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes (default 1; results do not depend on it)")
    parser.add_argument("--verbose", action="store_true", help="more detail")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and validate; raises _UsageError with a one-line message."""
    args = build_parser().parse_args(argv)
    probes = []
    for name in filter(None, (p.strip() for p in args.probe.split(","))):
        try:
            probes.append(resolve_probe(name).name)
        except ValueError as exc:
            raise _UsageError(f"--probe: {exc}") from None
    labels = [c.strip() for c in args.classes.split(",") if c.strip()]
    unknown = [c for c in labels if c not in CLASSES]
    if not probes:
        raise _UsageError("--probe: give at least one probe")
    if not labels or unknown:
        raise _UsageError(f"--classes: unknown class(es) {unknown or labels}; "
                          f"choose from {', '.join(CLASSES)}")
    if args.n < 1:
        raise _UsageError(f"--n must be >= 1, got {args.n}")
    if args.size < MIN_SIZE:
        raise _UsageError(f"--size must be >= {MIN_SIZE}, got {args.size}")
    if args.seed < 0:
        raise _UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.jobs < 1:
        raise _UsageError(f"--jobs must be >= 1, got {args.jobs}")
    if args.out.exists() and not args.out.is_dir():
        raise _UsageError(f"{args.out}: --out exists and is not a folder")
    args.probes = list(dict.fromkeys(probes))
    args.labels = list(dict.fromkeys(labels))
    return args


def run(items: list[Item], jobs: int) -> list[float]:
    """Write the items (skipping done ones) with a progress bar; returns seconds per image."""
    from tqdm import tqdm

    seconds = []
    with tqdm(total=len(items), unit="img", disable=None, file=sys.stderr) as bar:
        if jobs == 1:
            for item in items:
                seconds.append(write_item(item))
                bar.update()
        else:
            # Fresh (spawned) workers with one BLAS thread each: `jobs` processes share the
            # cores instead of oversubscribing them; results are per-item, order-free.
            with _single_threaded_blas(), ProcessPoolExecutor(
                    max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(write_item, item) for item in items]
                for fut in as_completed(futures):
                    seconds.append(fut.result())
                    bar.update()
    return seconds


@contextlib.contextmanager
def _single_threaded_blas():
    """Environment inherited by worker processes started inside: one BLAS/OpenMP thread."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update({k: "1" for k in names})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv: list[str] | None = None) -> int:
    """``python -m tf_usaug.simulate``; returns the exit code (2 for bad arguments)."""
    try:
        args = parse_args(argv)
    except _UsageError as exc:
        print(f"tf_usaug.simulate: error: {exc}", file=sys.stderr)
        return 2
    log = _log.setup(args.verbose)
    with _log.Stage(f"plan {args.n} x {'/'.join(args.labels)} x {'/'.join(args.probes)} "
                    f"phantoms ({args.size}x{args.size}) in {args.out}", log):
        items = plan_items(args.out, args.probes, args.labels, args.n, args.seed, args.size)
        todo = [it for it in items if not it.done()]
        if len(todo) < len(items):
            log.info("    %d already written, skipped", len(items) - len(todo))
    t0 = time.perf_counter()
    try:
        with _log.Stage(f"simulate {len(todo)} phantoms with PyMUST ({args.jobs} process"
                        f"{'es' if args.jobs > 1 else ''})", log):
            seconds = run(todo, args.jobs)
    except OSError as exc:
        print(f"{exc.filename or args.out}: error: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if seconds:
        log.info("    wrote %d image+mask pairs in %.1f s (%.1f s per image)", len(seconds),
                 time.perf_counter() - t0, float(np.mean(seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
