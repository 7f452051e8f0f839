"""What a relevance map means, measured against a lesion mask.

* :func:`relevance_mass_accuracy` (Arras, Osman & Samek 2022, "CLEVR-XAI", eq. 1): the
  share of the positive relevance that falls inside the ground-truth mask,
  ``sum_{p in mask} max(R_p, 0) / sum_p max(R_p, 0)``. A map that ignores the lesion scores
  about the lesion's area fraction; one that concentrates on it scores near 1.
* :func:`pointing_game` (Zhang et al. 2018): 1 when the map's maximum lies in the mask
  (widened by ``tolerance`` pixels, the original uses 15 px at 224 px), else 0.
* :func:`area_fraction`: the chance level of the mass accuracy.

All are plain numpy on one ``HxW`` map and a bool mask of the same shape.
"""
from __future__ import annotations

import numpy as np


def _check(relevance, mask) -> tuple[np.ndarray, np.ndarray]:
    r, m = np.asarray(relevance, dtype=np.float64), np.asarray(mask, dtype=bool)
    if r.ndim != 2 or r.shape != m.shape:
        raise ValueError(f"relevance {r.shape} and mask {m.shape} must be the same HxW shape")
    return r, m


def relevance_mass_accuracy(relevance, mask) -> float | None:
    """Positive relevance inside ``mask`` over all positive relevance; None without any
    positive relevance or with an empty mask (undefined)."""
    r, m = _check(relevance, mask)
    positive = np.clip(r, 0.0, None)
    total = positive.sum()
    if total <= 0 or not m.any():
        return None
    return float(positive[m].sum() / total)


def area_fraction(mask) -> float:
    """Share of the frame the mask covers (what a map blind to the lesion scores on average)."""
    m = np.asarray(mask, dtype=bool)
    return float(m.mean()) if m.size else 0.0


def pointing_game(relevance, mask, tolerance: int = 0) -> int | None:
    """1 when the maximum of ``relevance`` lies within ``tolerance`` pixels (Chebyshev) of the
    mask, else 0; None for an empty mask. Ties: the first maximum in row-major order."""
    r, m = _check(relevance, mask)
    if not m.any():
        return None
    y, x = np.unravel_index(int(np.argmax(r)), r.shape)
    t = int(tolerance)
    return int(m[max(0, y - t):y + t + 1, max(0, x - t):x + t + 1].any())
