"""Named scanner presets (``DEVICES``): the same lesions as seen by three different scanners.

A classifier trained on one scanner's images and tested on another's meets a *scanner shift*:
the anatomy is the same, but probe, geometry, frequency and the operator's display settings
are not. The presets differ in exactly those five things, each chosen within the range of
real breast / general-purpose machines (values and reasons: docs/simulator.md, "Devices and
the benchmark set"):

``linear-a``  high-end breast linear array (Verasonics L11-5v, 7.6 MHz): a rectangle as wide
              as the 38.4 mm aperture and 40 mm deep, fine speckle, 3 tilted plane waves.
              Nearly flat TGC that lets the far field fade by 3 dB, a wide 60 dB dynamic
              range (soft, grey look), no extra gain.
``convex-b``  general-purpose convex array (C5-2v, 3.57 MHz, 49.6 mm radius, the central 64
              of its 128 elements: a 37-degree fan) to 50 mm below the skin, coarser speckle,
              3 diverging waves from virtual sources behind the array. The near field is
              left 3 dB too bright (TGC sliders not pulled back), 50 dB range, +3 dB gain.
``phased-c``  cardiac-style phased array (P4-2v, 2.72 MHz): an 80-degree sector from a point
              apex to 55 mm, the coarsest, laterally stretched speckle, 3 diverging waves.
              The TGC over-compensates depth (+3 dB at the bottom), a narrow 40 dB range
              (contrasty) and -3 dB gain (darker).

How each setting acts on the image (``tf_usaug.data.simulator.scanner``):

* ``geometry`` / ``depth`` / ``sector_deg`` / ``elements`` give the imaging area (a rectangle,
  an annular convex fan or a sector); the square image is the area's bounding square, pixels
  outside the area are black (0), as on a scanner screen.
* ``fc_mhz`` is the transmit centre frequency: speckle grain scales with the wavelength, so
  the lower the frequency the coarser the grain; attenuation and shadows scale with it too.
* ``tgc_db``: residual depth gain left by the operator's TGC sliders (dB at evenly spaced
  depths, top to bottom). The simulator first compensates the tissue attenuation exactly
  (as ``simulate_phantom`` does), then applies this curve, so the curve is what you see.
* ``dynamic_range_db``: log-compression range; a narrower range spreads the same echoes over
  more grey levels (more contrast, a wider histogram).
* ``gain_db``: overall gain; shifts every echo, the median tissue grey becomes
  ``tissue_grey + gain_db / dynamic_range_db``.

Lesions are placed in a 30 mm x 30 mm region starting ``lesion_top`` below the array (inside
every preset's imaging area), so they have the same physical size on every device and differ
in pixels only through each device's field of view.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceConfig:
    """One scanner preset: probe, imaging geometry, transmit, and display settings.

    Args:
        name: preset name (``DEVICES`` key, also the file-name prefix).
        probe: ``pymust.getparam`` transducer name (element pitch, count, radius, bandwidth).
        geometry: ``"linear"`` (rectangle under the aperture), ``"convex"`` (annular fan
            around the array's centre of curvature) or ``"sector"`` (fan from the centre of
            a phased array).
        fc_mhz: transmit centre frequency (MHz).
        depth: imaging depth (m): below the array (linear, sector radius) or below the
            array's arc (convex).
        elements: active elements (the central ones); None = all of the probe's.
        sector_deg: angular width of the sector (``"sector"``), also the width of its
            diverging waves; unused otherwise (the convex fan is the array's own arc).
        tilts_deg: transmit steering angles, coherently compounded (one ``simus`` run each):
            plane-wave tilts (linear), diverging-wave tilts (sector), virtual-source angles
            seen from the centre of curvature (convex).
        scatterer_spacing: mean scatterer spacing in shortest -6 dB wavelengths (see
            ``ProbeConfig.scatterer_spacing``).
        tgc_db: residual time-gain curve (dB) at evenly spaced depths from the top row to
            the bottom row, linearly interpolated.
        dynamic_range_db: log-compression range (dB).
        gain_db: overall display gain (dB).
        lesion_top: depth (m) of the top of the 30 mm x 30 mm region holding the lesion.
    """

    name: str
    probe: str
    geometry: str
    fc_mhz: float
    depth: float
    elements: int | None = None
    sector_deg: float = 0.0
    tilts_deg: tuple[float, ...] = (-5.0, 0.0, 5.0)
    scatterer_spacing: float = 1.0
    tgc_db: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    dynamic_range_db: float = 50.0
    gain_db: float = 0.0
    lesion_top: float = 10e-3


GEOMETRIES = ("linear", "convex", "sector")
LESION_REGION = 30e-3  # side (m) of the square region in which lesions are placed

# Scatterer spacing, as for PROBES (docs/simulator.md): the 128-element linear array costs
# ~3x more per scatterer and gets 0.4x genscat's density (spacing 1.6, ~12.5k scatterers);
# the 64-element arrays, with their larger resolution cells, get 1.6x it (spacing 0.8,
# ~11k (sector) and ~19k (convex) scatterers in their fans).
DEVICES: dict[str, DeviceConfig] = {
    "linear-a": DeviceConfig(
        "linear-a", probe="L11-5v", geometry="linear", fc_mhz=7.6, depth=40e-3,
        tilts_deg=(-5.0, 0.0, 5.0), scatterer_spacing=1.6,
        tgc_db=(0.0, 0.0, 0.0, -1.0, -3.0), dynamic_range_db=60.0, gain_db=0.0,
        lesion_top=8e-3),
    "convex-b": DeviceConfig(
        "convex-b", probe="C5-2v", geometry="convex", fc_mhz=3.57, depth=50e-3, elements=64,
        tilts_deg=(-4.0, 0.0, 4.0), scatterer_spacing=0.8,
        tgc_db=(3.0, 1.5, 0.0, 0.0, 0.5), dynamic_range_db=50.0, gain_db=3.0,
        lesion_top=10e-3),
    "phased-c": DeviceConfig(
        "phased-c", probe="P4-2v", geometry="sector", fc_mhz=2.72, depth=55e-3,
        sector_deg=80.0, tilts_deg=(-6.0, 0.0, 6.0), scatterer_spacing=0.8,
        tgc_db=(-3.0, -1.5, 0.0, 1.5, 3.0), dynamic_range_db=40.0, gain_db=-3.0,
        lesion_top=20e-3),
}


def resolve_device(name: str, devices: dict[str, DeviceConfig] | None = None) -> DeviceConfig:
    """The preset called ``name`` (case-insensitive), or ValueError listing the choices."""
    table = DEVICES if devices is None else devices
    for key, conf in table.items():
        if key.lower() == str(name).strip().lower():
            return conf
    raise ValueError(f"unknown device {name!r}; choose from {', '.join(table)}")
