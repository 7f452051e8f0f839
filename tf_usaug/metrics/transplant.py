"""What an augmentation keeps of its content: the class evidence and the lesion's contrast.

Plain numpy on grey ``HxW`` images and bool masks of the same shape.

* :func:`label_preservation`: the share of augmented outputs that a classifier trained on
  ORIGINALS assigns the label of their content image. An augmentation that destroys the
  lesion's appearance (or paints another class's texture on it) lowers it.
* :func:`lesion_cnr`: the contrast-to-noise ratio of the lesion against the tissue around it,

      CNR = |mean_in - mean_ring| / sqrt(var_in + var_ring)

  (the usual ultrasound definition, e.g. Patterson & Foster 1983; variances with ddof = 0),
  where "in" is the mask and the ring is the mask dilated by ``w`` pixels (Euclidean
  distance between pixel centres, ``<= w``) minus the mask, clipped to the frame
  (:func:`ring_mask`). The width grows with the lesion (:func:`ring_width`):

      w = max(1, round(RING_WIDTH_FRACTION * d_eq)),   d_eq = 2 sqrt(area / pi),

  ``d_eq`` being the diameter of the disc with the lesion's area. With the fraction 0.25 the
  ring around a disc covers ``1.5^2 - 1 = 1.25`` times the lesion's area, so both means are
  estimated from about as many pixels; the ring stays close enough to share the lesion's depth
  (attenuation, time-gain compensation) and wide enough to reach past a blurred border. A
  posterior shadow below the lesion falls partly in the ring and lowers its mean: the CNR then
  measures the lesion together with its shadow, as a reader sees it.
* :func:`relative_change` / :func:`cnr_change`: ``(CNR_output - CNR_content) / CNR_content``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

#: Ring width as a fraction of the lesion's equivalent diameter (see the module docstring).
RING_WIDTH_FRACTION = 0.25


def label_preservation(predicted: Sequence[int], content_labels: Sequence[int]) -> float | None:
    """Share of outputs whose predicted class equals their content's label; None when empty.

    Args:
        predicted: class index the originals' classifier gives each output (argmax).
        content_labels: class index of each output's content image.
    """
    p = np.asarray(predicted, dtype=np.int64).ravel()
    t = np.asarray(content_labels, dtype=np.int64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"predicted and content_labels differ in length ({p.size} vs {t.size})")
    return float(np.mean(p == t)) if p.size else None


def _mask(mask) -> np.ndarray:
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"a mask must be HxW, got shape {m.shape}")
    return m


def ring_width(mask, fraction: float = RING_WIDTH_FRACTION) -> int:
    """``max(1, round(fraction * d_eq))`` pixels, ``d_eq = 2 sqrt(area / pi)`` (half up); 0 for
    an empty mask."""
    area = int(_mask(mask).sum())
    if area == 0:
        return 0
    d_eq = 2.0 * math.sqrt(area / math.pi)
    return max(1, int(math.floor(fraction * d_eq + 0.5)))


def dilate(mask, radius: int) -> np.ndarray:
    """Pixels within Euclidean distance ``radius`` (pixel centres) of the mask, in the frame.

    The disc is applied row by row: for a row offset ``dy`` the mask is dilated along x by
    ``floor(sqrt(r^2 - dy^2))`` (a running window over cumulative sums) and shifted by ``dy``,
    so the cost is ``O((2 r + 1) H W)``.
    """
    m = _mask(mask)
    r = int(radius)
    if r < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if r == 0 or not m.any():
        return m.copy()
    h, w = m.shape
    csum = np.concatenate([np.zeros((h, 1), np.int64), np.cumsum(m, axis=1, dtype=np.int64)], 1)
    cols = np.arange(w)
    out = np.zeros_like(m)
    for dy in range(-r, r + 1):
        half = int(math.isqrt(r * r - dy * dy))
        hi = np.minimum(cols + half + 1, w)
        lo = np.maximum(cols - half, 0)
        row_dilated = (csum[:, hi] - csum[:, lo]) > 0  # any mask pixel within +-half along x
        if dy >= 0:  # out[y] |= row_dilated[y - dy]
            out[dy:] |= row_dilated[:h - dy]
        else:
            out[:h + dy] |= row_dilated[-dy:]
    return out


def ring_mask(mask, width: int | None = None, fraction: float = RING_WIDTH_FRACTION
              ) -> np.ndarray:
    """The tissue ring around a lesion: ``dilate(mask, width) & ~mask``, clipped to the frame.

    Args:
        mask: the lesion (bool ``HxW``).
        width: ring width in pixels; None: :func:`ring_width` of the mask.
        fraction: the width's fraction of the equivalent diameter when ``width`` is None.
    """
    m = _mask(mask)
    w = ring_width(m, fraction) if width is None else int(width)
    return dilate(m, w) & ~m


def cnr(image, inside, outside) -> float | None:
    """``|mean_in - mean_out| / sqrt(var_in + var_out)`` (ddof 0); None when a region is empty
    or both are constant."""
    img = np.asarray(image, dtype=np.float64)
    a, b = _mask(inside), _mask(outside)
    if img.shape != a.shape or a.shape != b.shape:
        raise ValueError(f"image {img.shape} and masks {a.shape}, {b.shape} must be one HxW shape")
    if not a.any() or not b.any():
        return None
    x, y = img[a], img[b]
    noise = math.sqrt(float(x.var() + y.var()))
    if noise == 0.0:
        return None
    return float(abs(x.mean() - y.mean()) / noise)


def lesion_cnr(image, mask, fraction: float = RING_WIDTH_FRACTION) -> float | None:
    """CNR of the mask against its ring (:func:`ring_mask`); None for an empty mask or ring."""
    m = _mask(mask)
    if not m.any():
        return None
    return cnr(image, m, ring_mask(m, fraction=fraction))


def relative_change(output_value: float | None, content_value: float | None) -> float | None:
    """``(output - content) / |content|``; None when either is None or the content is 0."""
    if output_value is None or content_value is None or content_value == 0:
        return None
    return float((output_value - content_value) / abs(content_value))


def cnr_change(output, output_mask, content, content_mask,
               fraction: float = RING_WIDTH_FRACTION) -> dict:
    """Lesion CNR of an output and of its content, each with its own mask, and the relative
    change: ``{"content_cnr", "output_cnr", "relative_change"}`` (values may be None)."""
    before = lesion_cnr(content, content_mask, fraction)
    after = lesion_cnr(output, output_mask, fraction)
    return {"content_cnr": before, "output_cnr": after,
            "relative_change": relative_change(after, before)}
