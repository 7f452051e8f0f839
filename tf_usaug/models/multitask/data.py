"""Training data of the multitask network: originals, masks, labels and references in
memory, the validation split, and the batches of every epoch as a function of
``(seed, epoch)`` alone.

* ``data``: labelled originals with masks (``tf_usaug.data.datasets.discover``), exactly two
  classes (the last sorted name is the positive class of the classifier's sigmoid), resized
  to ``size`` and scaled to [0, 1] (paper 000 sec. 3: "normalized by dividing 255").
* Validation: ``val_fraction`` of the originals, stratified by class and seeded
  (``datasets.split``), before any augmentation (paper 000: 20 %).
* Batches: epoch ``e`` is the permutation of the training indices drawn from ``(seed, e)``,
  cut into ``ceil(N / B)`` global batches; the last is filled up from the start of the
  permutation, so every batch is full and splits evenly over the ranks.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.datasets import Sample, discover, load_sample, split
from ...data.image_io import read_image, resize
from ...errors import DatasetError, InputError


@dataclass
class MultitaskData:
    """Images ``[N, S, S]`` float32 in [0, 1], masks ``[N, S, S]`` float32 {0, 1},
    labels ``[N]`` int (1: ``class_names[1]``)."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    samples: list[Sample]
    class_names: tuple[str, str]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices) -> "MultitaskData":
        idx = np.asarray(indices, np.int64)
        return MultitaskData(self.images[idx], self.masks[idx], self.labels[idx],
                             [self.samples[i] for i in idx], self.class_names)


def _raise(problems: list[tuple[str, str]], total: int) -> None:
    path, reason = problems[0]
    more = len(problems) - 1
    exc = DatasetError(path, reason + (f" (and {more} more unusable file"
                                       f"{'s' if more > 1 else ''} of {total}, listed below)"
                                       if more else ""))
    exc.details = [f"  {p}: {r}" for p, r in problems[1:]]
    raise exc


def load_samples(samples: list[Sample], size: int, class_names=None) -> MultitaskData:
    """Read labelled samples with masks; every problem reported at once (DatasetError)."""
    if class_names is None:
        class_names = tuple(sorted({str(s.label) for s in samples if s.label is not None}))
    images = np.zeros((len(samples), size, size), np.float32)
    masks = np.zeros((len(samples), size, size), np.float32)
    labels = np.zeros(len(samples), np.int64)
    problems = []
    for i, sample in enumerate(samples):
        if sample.label is None or str(sample.label) not in class_names:
            problems.append((str(sample.image), "no class: give class folders "
                             "<class>/<name>.png (two classes)"))
            continue
        if not sample.masks:
            problems.append((str(sample.image), "no mask: the multitask network needs "
                             f"{Path(sample.image).stem}_mask.png beside it"))
            continue
        try:
            image, mask = load_sample(sample, size)
        except InputError as exc:
            problems.append((str(exc.path or sample.image), exc.reason))
            continue
        images[i], masks[i] = image, mask
        labels[i] = class_names.index(str(sample.label))
    if problems:
        _raise(problems, len(samples))
    return MultitaskData(images, masks, labels, list(samples), tuple(class_names))


def load_data(source: Path, size: int) -> MultitaskData:
    """The training originals of ``source`` (two classes, masks)."""
    samples = discover(source)
    names = sorted({str(s.label) for s in samples if s.label is not None})
    if len(names) != 2:
        raise DatasetError(source, f"needs exactly two classes (class folders), found "
                           f"{len(names)}{': ' + ', '.join(names) if names else ''}")
    return load_samples(samples, size, tuple(names))


def load_styles(source: Path, size: int) -> np.ndarray:
    """Reference images ``[M, S, S]`` (resized, grey, [0, 1]); unreadable files reported."""
    paths = [s.image for s in discover(source)]
    out = np.zeros((len(paths), size, size), np.float32)
    problems = []
    for j, path in enumerate(paths):
        try:
            out[j] = resize(read_image(path)[0], size, kind="image")
        except InputError as exc:
            problems.append((str(exc.path or path), exc.reason))
    if problems:
        _raise(problems, len(paths))
    return out


def train_val_split(data: MultitaskData, val_fraction: float, seed: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)``: stratified by class, seeded, by source image."""
    parts = split(data.samples, (1.0 - val_fraction, val_fraction, 0.0), seed)
    where = {s.key: i for i, s in enumerate(data.samples)}
    train = np.array(sorted(where[s.key] for s in parts["train"]), np.int64)
    val = np.array(sorted(where[s.key] for s in parts["val"]), np.int64)
    if not len(train) or not len(val):
        raise DatasetError(data.samples[0].image if data.samples else "--data",
                           f"{len(data)} images are too few for a training and a validation "
                           f"split of {val_fraction}")
    return train, val


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """Positions ``[steps, B]`` (into the training indices) of epoch ``epoch``."""
    order = np.random.default_rng([int(seed), 0x4D75, int(epoch)]).permutation(n)
    steps = -(-n // batch_size)
    return order[np.arange(steps * batch_size) % n].reshape(steps, batch_size)
