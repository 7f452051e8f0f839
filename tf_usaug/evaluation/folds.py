"""Who is trained, tested and styled on what: folds by source image, the style pool, the test sets.

Rules (docs/benefit.md):

* The training device's ORIGINALS are split into stratified folds by source image BEFORE any
  augmentation (:func:`tf_usaug.data.datasets.stratified_kfold`, seeded). Fold i's test
  originals are never augmented for fold i and never seen by its classifier; its training
  originals are divided into training and validation by the classifier's own rule
  (:func:`tf_usaug.models.classifier.data.split_originals`, a stratified 15 %), so the split
  here IS the classifier's (and each run's ``splits.json`` is checked against it).
* Only a fold's training originals have their children in its training set; validation and
  test hold untouched originals only.
* Every other test device (an unseen scanner) gives a stratified, seeded share
  (``style_fraction``) of its images to the NST style pool, used unlabelled, and is tested on
  the rest only: no image is both a style reference and a test image. The pool lies outside
  every test fold, so outputs that depend only on their original and the pool may be made
  once and shared by all folds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..data.datasets import Sample, split, stratified_kfold
from ..errors import UsageError

#: Name of the training device's in-domain test set in the report.
IN_DOMAIN = "in-domain"


@dataclass(frozen=True)
class Fold:
    """One fold: keys of the training device's originals in each split."""

    index: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"index": self.index, "train": list(self.train), "val": list(self.val),
                "test": list(self.test)}


@dataclass(frozen=True)
class Plan:
    """The samples every stage works on (identical on every rank).

    Attributes:
        train_device: device A.
        class_names: the sorted classes of device A (the classifier's indices).
        samples: device A's originals by key.
        folds: the :class:`Fold` list.
        style_pool: unseen device -> its held-out style references (used unlabelled).
        unseen: unseen device -> its test samples (those outside the style pool).
    """

    train_device: str
    class_names: tuple[str, ...]
    samples: dict[str, Sample]
    folds: list[Fold]
    style_pool: dict[str, list[Sample]]
    unseen: dict[str, list[Sample]]

    def test_sets(self, fold: Fold) -> dict[str, list[Sample]]:
        """Test set name -> samples: the fold's in-domain originals, then each unseen device."""
        return {IN_DOMAIN: [self.samples[k] for k in fold.test], **self.unseen}

    def as_dict(self) -> dict:
        return {"train_device": self.train_device, "class_names": list(self.class_names),
                "folds": [f.as_dict() for f in self.folds],
                "style_pool": {d: [s.key for s in ss] for d, ss in self.style_pool.items()},
                "unseen": {d: [s.key for s in ss] for d, ss in self.unseen.items()}}


def check_folds(samples: Sequence[Sample], k: int, device: str) -> None:
    """Every test fold must hold every class (so each fold has sensitivity, specificity and
    ROC-AUC): ``k`` at most the smallest class's count."""
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.label] = counts.get(s.label, 0) + 1
    if len(counts) < 2:
        raise UsageError(f"--train-device {device} has one class only ({', '.join(counts)}); "
                         "a classifier needs two")
    label, smallest = min(counts.items(), key=lambda kv: (kv[1], kv[0]))
    if k > smallest:
        raise UsageError(f"--folds {k} is too many: device {device} has {smallest} "
                         f"{label} images, and every test fold must hold every class (use "
                         f"--folds {smallest} or fewer)")


def make_folds(samples: Sequence[Sample], k: int, seed: int, data_folder: Path) -> list[Fold]:
    """Stratified folds of the originals, with the classifier's own train/validation rule."""
    from ..models.classifier.config import ClassifierConfig
    from ..models.classifier.data import split_originals

    folds = []
    for i, part in enumerate(stratified_kfold(list(samples), k, seed)):
        parts = split_originals(samples, ClassifierConfig(data=data_folder, folds=k, fold=i,
                                                          seed=seed))
        test = tuple(s.key for s in part["test"])
        if tuple(s.key for s in parts["test"]) != test:  # one rule, applied twice
            raise RuntimeError(f"fold {i}: the classifier's test split differs from the fold's")
        folds.append(Fold(i, tuple(s.key for s in parts["train"]),
                          tuple(s.key for s in parts["val"]), test))
    return folds


def split_style_pool(samples: Sequence[Sample], fraction: float, seed: int, device: str
                     ) -> tuple[list[Sample], list[Sample]]:
    """``(style pool, test set)`` of an unseen device: stratified by class, seeded."""
    parts = split(list(samples), (fraction, 0.0, 1.0 - fraction), seed)
    pool, test = parts["train"], parts["test"]
    if not pool or not test:
        raise UsageError(f"device {device} has {len(samples)} images: too few for a style pool "
                         f"of --style-fraction {fraction} and a test set (add images or "
                         "change --style-fraction)")
    return pool, test


def make_plan(devices: dict[str, list[Sample]], train_device: str, test_devices: Sequence[str],
              k: int, seed: int, style_fraction: float, data_folder: Path) -> Plan:
    """The :class:`Plan` of an evaluation (UsageError for folds or devices that cannot work).

    Args:
        devices: device -> samples (:class:`~.devices.DeviceSet.devices`).
        train_device: device A.
        test_devices: the devices tested (A among them or not; A is always tested in-domain).
        k: folds.
        seed: folds and style pool.
        style_fraction: share of every unseen device held out as the style pool.
        data_folder: device A's BUSI folder (the classifier's ``data``).
    """
    samples = devices[train_device]
    check_folds(samples, k, train_device)
    names = tuple(sorted({s.label for s in samples}))
    pool: dict[str, list[Sample]] = {}
    unseen: dict[str, list[Sample]] = {}
    for device in test_devices:
        if device == train_device:
            continue
        extra = sorted({s.label for s in devices[device]} - set(names))
        if extra:
            raise UsageError(f"device {device} has classes {', '.join(extra)} that "
                             f"--train-device {train_device} lacks ({', '.join(names)}); the "
                             "classifier cannot predict them")
        styles, test = split_style_pool(devices[device], style_fraction, seed, device)
        pool[device] = styles
        unseen[device] = test
    folds = make_folds(samples, k, seed, data_folder)
    return Plan(train_device, names, {s.key: s for s in samples}, folds, pool, unseen)
