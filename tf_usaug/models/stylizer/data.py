"""Training data of the stylizer: contents and style references in memory, and every random
choice of a step as a function of ``(seed, step)`` alone.

* Contents (the training originals) and style references are read once, their scan region cut
  out (``crop="auto"``) and fitted to the training square the way the augmentation job fits
  them (:class:`tf_usaug.pipeline.inputs.InputPreparer`): contents letterboxed (``pad``),
  references as the region's centred square (``crop``: padding would count as black tissue in
  the style statistics).
* Step ``s`` takes the global batch positions ``s*B ... s*B + B - 1`` of an endless sequence of
  per-epoch permutations (epoch ``e`` drawn from ``(seed, e)``); image ``i`` of the batch draws
  its ``n`` references and its noise seed from ``item_seed(seed, "<what>/<s>/<i>")``. Nothing
  random is kept in memory between steps, so a run resumed at step ``s`` continues exactly, and
  the batch does not depend on the number of ranks (each rank takes its slice of it).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ...data.datasets import Sample, discover
from ...data.fit import fit_to_square
from ...data.image_io import read_image, read_mask
from ...distributed.context import item_seed
from ...errors import DatasetError, InputError

_DICOM_SUFFIXES = (".dcm", ".dicom")


@dataclass
class StylizerData:
    """The images of one training run (all ``size x size`` float32 in [0, 1])."""

    contents: np.ndarray            # [N, S, S]
    styles: np.ndarray              # [M, S, S]
    content_samples: list[Sample]
    style_paths: list[Path]
    own_style: dict[int, int]       # content index -> index of the same file among the styles

    def __len__(self) -> int:
        return len(self.contents)


def _region(path: Path, image: np.ndarray, crop: str) -> np.ndarray:
    """The scan region of ``image`` (the whole frame with ``crop="none"``)."""
    if crop == "none":
        return image
    from ...data.scan_region import detect_scan_region, dicom_scan_region

    region = dicom_scan_region(path) if path.suffix.lower() in _DICOM_SUFFIXES else None
    if region is None:
        region = detect_scan_region(image)
    y0, y1, x0, x1 = (int(v) for v in region.box)
    return image[y0:y1, x0:x1]


def load_square(path: Path, size: int, crop: str, fit: str) -> np.ndarray:
    """One image as the training square (scan region, fitted)."""
    image, _ = read_image(path)
    square, _ = fit_to_square(_region(Path(path), image, crop), size, fit)
    return square.astype(np.float32)


def load_data(content: Path, styles: Path, size: int, crop: str = "auto") -> StylizerData:
    """Discover and read the contents and references; every unreadable file reported at once.

    Raises:
        DatasetError: an unusable layout, or unreadable files (the first in the message, the
            others in ``.details``, one line each).
    """
    samples = discover(content)
    style_paths = [s.image for s in discover(styles)]
    problems, total = [], len(samples) + len(style_paths)
    contents = np.zeros((len(samples), size, size), np.float32)
    for i, sample in enumerate(samples):
        try:
            contents[i] = load_square(sample.image, size, crop, "pad")
            for mask in sample.masks:  # a broken mask is a broken sample, as in the job
                read_mask(mask)
        except InputError as exc:
            problems.append((str(exc.path or sample.image), exc.reason))
    refs = np.zeros((len(style_paths), size, size), np.float32)
    for j, path in enumerate(style_paths):
        try:
            refs[j] = load_square(path, size, crop, "crop")
        except InputError as exc:
            problems.append((str(exc.path or path), exc.reason))
    if problems:
        path, reason = problems[0]
        more = len(problems) - 1
        exc = DatasetError(path, reason + (f" (and {more} more unreadable file"
                                           f"{'s' if more > 1 else ''} of {total}, listed "
                                           "below)" if more else ""))
        exc.details = [f"  {p}: {r}" for p, r in problems[1:]]
        raise exc
    by_path = {Path(p).resolve(): j for j, p in enumerate(style_paths)}
    own = {i: by_path[Path(s.image).resolve()] for i, s in enumerate(samples)
           if Path(s.image).resolve() in by_path}
    return StylizerData(contents, refs, list(samples), list(style_paths), own)


# ----------------------------------------------------------------------------- random choices


@functools.lru_cache(maxsize=8)
def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([int(seed), 0x5717, int(epoch)]).permutation(n)


def step_indices(n: int, global_batch: int, seed: int, step: int) -> np.ndarray:
    """Content indices of step ``step``'s global batch (epochs of seeded permutations)."""
    positions = np.arange(step * global_batch, (step + 1) * global_batch, dtype=np.int64)
    return np.array([_permutation(n, seed, int(g // n))[g % n] for g in positions], np.int64)


def draw_references(rng: np.random.Generator, pool: int, n: int, own: int | None = None
                    ) -> np.ndarray:
    """``n`` reference indices of ``pool``: without replacement, the content's own file
    excluded when another is left; repeated in a random order when the pool is smaller."""
    candidates = np.array([j for j in range(pool) if j != own] or [own], np.int64)
    if len(candidates) >= n:
        return candidates[rng.choice(len(candidates), size=n, replace=False)]
    order = rng.permutation(len(candidates))
    return candidates[order[np.arange(n) % len(order)]]


def batch_choices(data: StylizerData, indices: Sequence[int], n_styles: int, seed: int,
                  key: str) -> tuple[np.ndarray, np.ndarray]:
    """References ``[B, n]`` and noise seeds ``[B]`` of a batch named ``key`` (e.g. ``12``
    for step 12, ``eval``); image ``i`` draws from ``item_seed(seed, "<what>/<key>/<i>")``."""
    refs = np.stack([draw_references(np.random.default_rng(item_seed(seed, f"styles/{key}/{i}")),
                                     len(data.styles), n_styles, data.own_style.get(int(c)))
                     for i, c in enumerate(indices)]) if len(indices) else \
        np.zeros((0, n_styles), np.int64)
    noise = np.array([item_seed(seed, f"noise/{key}/{i}") for i in range(len(indices))],
                     np.int64)
    return refs, noise


def eval_indices(n: int, count: int) -> np.ndarray:
    """The fixed evaluation (and calibration) batch: the first ``count`` contents."""
    return np.arange(min(n, count), dtype=np.int64)
