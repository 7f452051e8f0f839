"""Class overlap for the device phantoms: atypical benign and malignant lesions.

The typical classes (``LESIONS``) never overlap: every malignant lesion is spiculated, taller
than wide and shadows, every benign one is a smooth wider-than-tall oval, so a classifier can
reach 100 %. Real breast lesions overlap: some benign lesions are lobulated or irregular
(fibroadenomas with macrolobulation, fibrocystic change, fat necrosis, sclerosing adenosis:
the false positives of BI-RADS 4), and some cancers are circumscribed, oval and cast no
shadow (medullary, mucinous and many high-grade / triple-negative carcinomas). With
probability ``overlap`` a device phantom uses its class's atypical appearance
(``ATYPICAL_LESIONS``); every lesion's echo level also varies by +-``ECHO_JITTER_DB`` (between
patients), so that the echo level alone does not separate the classes either.

An atypical malignant lesion is drawn from nearly the same ranges as a typical benign one, so
at ``overlap = p`` roughly p / 2 of a balanced set is ambiguous from the image alone: expect a
classifier on the originals to stay below 1 - p / 2 (90 % at the default p = 0.2), not at 100 %.
The choice of p is a modelling choice (docs/simulator.md).

The variant of an image depends only on its seed (its own random stream, separate from the
one that draws the outline and the speckle), so it is known without simulating the image.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .config import LESIONS, LesionConfig

DEFAULT_OVERLAP = 0.2
ECHO_JITTER_DB = 2.0
_VARIANT_STREAM = 0x0A7F  # second seed word of the variant's random stream

ATYPICAL_LESIONS: dict[str, LesionConfig] = {
    # lobulated / irregular, rounder than typical (not clearly parallel), a few short spikes,
    # heterogeneous; no shadow
    "benign": LesionConfig(width_frac=(0.26, 0.38), height_ratio=(0.75, 1.10),
                           aspect_limits=(0.65, 1.15), rotation_deg=20.0,
                           depth_frac=(0.35, 0.52), lobulation=0.14, irregularity=0.07,
                           spicules=(0, 3), spicule_length=(0.15, 0.40),
                           echogenicity_db=-17.0, heterogeneity_db=2.5),
    # circumscribed oval, wider than tall, smooth, no posterior shadow
    "malignant": LesionConfig(width_frac=(0.28, 0.42), height_ratio=(0.55, 0.75),
                              aspect_limits=(0.45, 0.85), rotation_deg=10.0,
                              depth_frac=(0.36, 0.56), lobulation=0.05, irregularity=0.01,
                              echogenicity_db=-19.0, heterogeneity_db=2.0),
}


@dataclass(frozen=True)
class LesionVariant:
    """The lesion appearance one phantom uses: its config and whether it is atypical."""

    config: LesionConfig
    atypical: bool
    echo_offset_db: float


def variant_rng(seed: int) -> np.random.Generator:
    """The random stream that decides an image's variant (independent of its outline/speckle)."""
    return np.random.default_rng([int(seed), _VARIANT_STREAM])


def lesion_variant(label: str, seed: int, overlap: float = DEFAULT_OVERLAP,
                   echo_jitter_db: float = ECHO_JITTER_DB,
                   lesions: dict[str, LesionConfig] | None = None,
                   atypical: dict[str, LesionConfig] | None = None) -> LesionVariant:
    """Appearance of the lesion of class ``label`` in the image with seed ``seed``.

    Atypical with probability ``overlap`` (0 = never, 1 = always); the echo level of either
    variant is shifted by a uniform offset in +-``echo_jitter_db``.
    """
    if not 0.0 <= float(overlap) <= 1.0:
        raise ValueError(f"overlap must be within [0, 1], got {overlap!r}")
    typical_table = LESIONS if lesions is None else lesions
    atypical_table = ATYPICAL_LESIONS if atypical is None else atypical
    if label not in typical_table:
        raise ValueError(f"unknown class {label!r}; choose from {', '.join(typical_table)}")
    rng = variant_rng(seed)
    is_atypical = bool(rng.random() < float(overlap))
    offset = float(rng.uniform(-echo_jitter_db, echo_jitter_db)) if echo_jitter_db > 0 else 0.0
    base = (atypical_table if is_atypical else typical_table)[label]
    config = dataclasses.replace(base, echogenicity_db=base.echogenicity_db + offset)
    return LesionVariant(config=config, atypical=is_atypical, echo_offset_db=offset)


IRREGULAR_SOLIDITY = 0.98  # below: an irregular (lobulated / spiculated) margin


def outline_solidity(x: np.ndarray, z: np.ndarray) -> float:
    """Area of a closed outline over the area of its convex hull (1 = convex, e.g. an oval).

    The usual CAD descriptor of margin irregularity: the presets give >= 0.99 for typical
    benign and atypical (circumscribed) malignant lesions, 0.8-0.98 for lobulated atypical
    benign ones and 0.55-0.8 for spiculated malignant ones.
    """
    from scipy.spatial import ConvexHull

    x = np.asarray(x, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    area = 0.5 * abs(np.dot(x, np.roll(z, 1)) - np.dot(z, np.roll(x, 1)))  # shoelace
    return float(area / ConvexHull(np.column_stack([x, z])).volume)
