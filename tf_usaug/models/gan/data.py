"""Training images of a GAN: a folder of originals read once into grey squares in [-1, 1].

* :func:`load_gan_data` lists the originals with :func:`tf_usaug.data.datasets.discover` (BUSI
  ``ROOT/<class>/<image>``: the class is the sub-folder, ``*_mask*.png`` files are never
  images; a flat folder or a CSV works too), reads each grey image with
  :func:`~tf_usaug.data.datasets.load_sample` and fits it to ``size x size``
  (:func:`tf_usaug.data.fit.fit_to_square`; ``stretch`` by default as paper 004 resizes its
  BUSI images, ``crop`` is paper 003's square cut, ``pad`` letterboxes), then scales
  ``[0, 1]`` to ``[-1, 1]`` (paper 003 sec. III-B: "normalized to the range [-1, 1]").
* Classes are the sorted label names; ``labels[i]`` indexes them. ``classes=`` keeps only
  some labels (``--per-class`` trains one class's model at a time); ``conditional=True``
  needs a label on every image.
* :func:`batch_indices` draws a global batch from a :class:`numpy.random.Generator` whose state
  the checkpoint keeps (``checkpoint.TrainingState.numpy_rng``): every rank draws the same
  global batch and takes its slice, so the batches do not depend on the number of ranks.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ...data.datasets import Sample, discover, load_sample
from ...data.fit import FITS, fit_to_square
from ...errors import DatasetError, UsageError

#: Smallest and largest square side the GAN families accept (powers of two).
MIN_SIZE, MAX_SIZE = 8, 1024


@dataclass
class GanData:
    """The images of one training run."""

    images: np.ndarray              # [N, S, S] float32 in [-1, 1]
    labels: np.ndarray              # [N] int32, index into ``classes``; -1 unlabelled
    classes: tuple[str, ...]        # sorted class names (empty for unlabelled data)
    samples: list[Sample]
    source: Path

    def __len__(self) -> int:
        return len(self.images)

    def fingerprint(self) -> str:
        """sha256 of the pixels, labels and class names (what training sees)."""
        h = hashlib.sha256(np.ascontiguousarray(self.images).tobytes())
        h.update(np.ascontiguousarray(self.labels, np.int32).tobytes())
        h.update("\n".join(self.classes).encode())
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        """Images per class (``{"": n}`` for unlabelled data)."""
        if not self.classes:
            return {"": len(self)}
        return {c: int(np.sum(self.labels == i)) for i, c in enumerate(self.classes)}


def check_size(size) -> int:
    """A power of two between :data:`MIN_SIZE` and :data:`MAX_SIZE` (the conv stacks double or
    halve the side per layer)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIZE \
            or size > MAX_SIZE or size & (size - 1):
        raise UsageError(f"--size must be a power of two between {MIN_SIZE} and {MAX_SIZE} "
                         f"(the networks double or halve the side per layer), got {size!r}")
    return size


def check_fit(fit: str) -> str:
    if fit not in FITS:
        raise UsageError(f"unknown --fit {fit!r}; choose from {', '.join(FITS)}")
    return fit


def data_classes(samples: Sequence[Sample]) -> tuple[str, ...]:
    """Sorted class names of ``samples`` (unlabelled ones have none)."""
    return tuple(sorted({s.label for s in samples if s.label is not None}))


def load_gan_data(source: str | Path, size: int, *, fit: str = "stretch",
                  classes: Sequence[str] | None = None, conditional: bool = False,
                  all_classes: Sequence[str] | None = None) -> GanData:
    """Read the originals of ``source`` into ``size x size`` squares in [-1, 1].

    Args:
        source: BUSI folder (``ROOT/<class>/<image>``), flat folder, CSV or one image.
        size: the square side (:func:`check_size`).
        fit: ``stretch`` (default), ``crop`` or ``pad`` (:mod:`tf_usaug.data.fit`).
        classes: keep only images of these labels (None: all).
        conditional: every image must carry a label (the class-conditional models).
        all_classes: the class names ``labels`` index (default: those of the kept images);
            a per-class sub-run passes the whole folder's so indices stay comparable.

    Raises:
        DatasetError: no images, unlabelled images with ``conditional``, or an unknown class.
        ImageError: an unreadable image (the message names it).
    """
    source = Path(source)
    check_size(size)
    check_fit(fit)
    samples = discover(source)
    if not samples:
        raise DatasetError(source, "no images found (expected ROOT/<class>/<image> or a "
                                   "folder or CSV of images)")
    present = data_classes(samples)
    if classes is not None:
        unknown = sorted(set(classes) - set(present))
        if unknown:
            raise DatasetError(source, f"no images of class {unknown[0]!r} (classes here: "
                                       f"{', '.join(present) or 'none, the images are unlabelled'})")
        samples = [s for s in samples if s.label in set(classes)]
    if conditional:
        unlabelled = [s for s in samples if s.label is None]
        if unlabelled:
            raise DatasetError(source, f"--conditional needs labelled images, but "
                                       f"{unlabelled[0].image} has no class (use the BUSI "
                                       "layout ROOT/<class>/<image> or a CSV with labels)")
        if len(data_classes(samples)) < 2:
            raise DatasetError(source, "--conditional needs at least two classes, found "
                                       f"{len(data_classes(samples))}")
    names = tuple(all_classes) if all_classes is not None else data_classes(samples)
    index = {c: i for i, c in enumerate(names)}
    images = np.empty((len(samples), size, size), np.float32)
    for i, sample in enumerate(samples):
        image, _ = load_sample(sample)
        square, _ = fit_to_square(image, size, fit)
        images[i] = np.clip(square, 0.0, 1.0) * 2.0 - 1.0
    labels = np.array([index.get(s.label, -1) for s in samples], np.int32)
    return GanData(images, labels, names, samples, source)


def to_unit(images: np.ndarray) -> np.ndarray:
    """``[-1, 1]`` -> ``[0, 1]`` (clipped): what the generators' outputs become on disk."""
    return np.clip((np.asarray(images, np.float32) + 1.0) * 0.5, 0.0, 1.0)


def batch_indices(rng: np.random.Generator, n: int, batch: int) -> np.ndarray:
    """``batch`` image indices drawn uniformly with replacement from ``rng``.

    With replacement because a small set (50-400 originals) and a batch of 32 give no clean
    epochs anyway, and one draw per step keeps the RNG state the only thing to checkpoint.
    """
    return rng.integers(0, n, size=batch)
