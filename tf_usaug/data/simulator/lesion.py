"""Lesion outlines and their acoustic shadow (pure functions of a random generator).

benign: smooth oval, wider than tall; malignant: irregular, spiculated, taller than wide
(Stavros et al., Radiology 196:123-134, 1995; ACR BI-RADS ultrasound lexicon).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import LesionConfig, ProbeConfig


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
