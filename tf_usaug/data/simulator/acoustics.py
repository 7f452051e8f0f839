"""Scatterers and the acoustics: PyMUST simus (Garcia, CMPB 2022), I/Q, delay-and-sum beamforming."""
from __future__ import annotations

import functools
import importlib
import types

import numpy as np
from scipy import ndimage

from .config import LesionConfig, ProbeConfig, SimulationConfig
from .lesion import Lesion


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
