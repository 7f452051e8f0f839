"""Simulator configuration: probes (PROBES), lesion appearance, imaging; defaults with their source."""
from __future__ import annotations

from dataclasses import dataclass, field


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
            (PyMUST's ``pfield`` default; why not ``simus``'s own -100 dB: docs/simulator.md).
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
