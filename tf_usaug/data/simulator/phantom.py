"""Image formation (TGC, log compression) and the public API ``simulate_phantom``."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .config import MIN_SIZE, ProbeConfig, SimulationConfig
from .lesion import sample_lesion, shadow_loss_db
from .acoustics import beamform, make_scatterers, probe_param, simulate_iq, transmit_delays


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
