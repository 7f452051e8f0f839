"""The classifier's data: splits by SOURCE image, augmented children of training originals
only, image loading and the per-epoch ``tf.data`` pipeline.

Rules (docs/classifier.md):

* The split is made on the originals of ``--data``, stratified by label: paper 002's 70/15/15
  (:func:`tf_usaug.data.datasets.split`), or with ``--folds K --fold I`` stratified k-fold
  (paper 004 sec. 2.3; :func:`tf_usaug.data.datasets.stratified_kfold`): test = fold I,
  validation = a stratified, seeded 15 % of the other folds.
* Augmented images (``--augmented OUT``, rows of ``OUT/manifest.jsonl``) join the TRAINING
  split only, and only when their parent (the row's ``content``) is a training original; the
  children of validation and test originals are dropped and counted. Paper 002 split after
  augmenting, so children of one image landed in train and test; we split first.
* Validation and test hold untouched originals only. A child takes its parent's label.

Labels are the sorted class names; index ``i`` is ``class_names[i]``.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ... import log as _log
from ...data.datasets import Sample, discover, split, stratified_kfold
from ...errors import DatasetError, InputError
from ...files import file_digest
from ...pipeline.outputs import read_manifest
from .config import ClassifierConfig

SPLITS = ("train", "val", "test")
#: Training images are held in memory when they take at most this many bytes (float32);
#: larger training sets (hundreds of thousands of augmented images) are read per batch.
MEMORY_BUDGET_BYTES = 2 << 30


@dataclass(frozen=True)
class Example:
    """One image the classifier sees.

    Attributes:
        path: the image file.
        label: class index.
        source: key of the original it is (or descends from).
        augmented: True for a row of an augmentation output folder.
    """

    path: Path
    label: int
    source: str
    augmented: bool = False


@dataclass
class ClassifierData:
    """The split, ready to load: ``train`` (originals + children), ``val``, ``test``."""

    class_names: tuple[str, ...]
    train: list[Example]
    val: list[Example]
    test: list[Example]
    augmented: dict = field(default_factory=dict)  # counts: added, dropped_val, ...
    fingerprint: str = ""

    def split_record(self, cfg: ClassifierConfig) -> dict:
        """``RUN/splits.json``: which originals went where, and what became of the children."""
        return {"class_names": list(self.class_names), "folds": cfg.folds, "fold": cfg.fold,
                "seed": cfg.seed, "fractions": None if cfg.folds else list(cfg.fractions),
                **{name: sorted({e.source for e in getattr(self, name) if not e.augmented})
                   for name in SPLITS},
                "augmented": self.augmented}


# ----------------------------------------------------------------------------- the split


def labelled_originals(source: str | os.PathLike) -> tuple[list[Sample], tuple[str, ...]]:
    """The originals of ``--data`` and their sorted class names (DatasetError if unusable)."""
    samples = discover(source)
    unlabelled = [s for s in samples if s.label is None]
    if unlabelled:
        raise DatasetError(source, f"{len(unlabelled)} of {len(samples)} images have no label "
                           f"(e.g. {unlabelled[0].image.name}); give class sub-folders "
                           "(ROOT/<class>/<image>) or a CSV with a label column")
    names = tuple(sorted({s.label for s in samples}))
    if len(names) < 2:
        raise DatasetError(source, f"only one class ({names[0]}) found; a classifier needs at "
                           "least two (one sub-folder per class)")
    return samples, names


def split_originals(samples: Sequence[Sample], cfg: ClassifierConfig) -> dict[str, list[Sample]]:
    """train/val/test ORIGINALS: 70/15/15, or test = fold ``cfg.fold`` of ``cfg.folds``."""
    where = cfg.data
    if cfg.folds is None:
        parts = split(samples, cfg.fractions, cfg.seed)
    else:
        if cfg.folds > len(samples):
            raise DatasetError(where, f"--folds {cfg.folds} is more than the {len(samples)} "
                               "images")
        fold = stratified_kfold(samples, cfg.folds, cfg.seed)[cfg.fold]
        rest = split(fold["train"], (1.0 - cfg.val_fraction, cfg.val_fraction, 0.0), cfg.seed)
        parts = {"train": rest["train"], "val": rest["val"], "test": fold["test"]}
    for name in SPLITS:
        if not parts[name]:
            raise DatasetError(where, f"too few images ({len(samples)}) for a {name} split; "
                               "add images or change --folds")
    if len({s.label for s in parts["train"]}) < 2:
        raise DatasetError(where, "the training split holds one class only; add images")
    return parts


# ----------------------------------------------------------------------------- augmented rows


def _parent_index(samples: Sequence[Sample]) -> tuple[dict[str, Sample], dict]:
    """Look-ups of an original by resolved path and by its last two path parts."""
    by_path = {os.path.realpath(s.image): s for s in samples}
    by_tail: dict[tuple[str, ...], Sample | None] = {}
    for s in samples:
        tail = Path(s.image).parts[-2:]
        by_tail[tail] = None if tail in by_tail else s  # None: ambiguous
    return by_path, by_tail


def _find_parent(content: str, folder: Path, by_path, by_tail) -> Sample | None:
    """The original a manifest row came from: its path as recorded (absolute, or relative to
    this process's folder or to the augmentation folder's parent), else its class folder and
    file name when they are unique among the originals."""
    path = Path(content)
    for cand in ([path] if path.is_absolute() else [path, folder.parent / path]):
        hit = by_path.get(os.path.realpath(cand))
        if hit is not None:
            return hit
    return by_tail.get(path.parts[-2:])


def augmented_examples(folders: Sequence[Path], parts: dict[str, list[Sample]],
                       class_index: dict[str, int]) -> tuple[list[Example], dict]:
    """Rows of the augmentation folders whose parent is a training original.

    Returns:
        ``(examples, counts)``; counts: ``added``, ``dropped_val``, ``dropped_test`` (children
        of validation/test originals), ``unknown_parent`` (parent not among the originals).
    """
    split_of = {s.key: name for name in SPLITS for s in parts[name]}
    by_path, by_tail = _parent_index([s for name in SPLITS for s in parts[name]])
    examples: list[Example] = []
    counts = {"added": 0, "dropped_val": 0, "dropped_test": 0, "unknown_parent": 0}
    for folder in folders:
        folder = Path(folder)
        manifest = folder / "manifest.jsonl"
        try:
            rows = read_manifest(manifest)
        except ValueError as exc:
            raise DatasetError(manifest, f"unreadable manifest ({exc})") from None
        matched = 0
        for line, row in enumerate(rows, 1):
            if not isinstance(row, dict) or "output" not in row or "content" not in row:
                raise DatasetError(manifest, f"row {line} lacks 'output' or 'content'")
            parent = _find_parent(str(row["content"]), folder, by_path, by_tail)
            if parent is None:
                counts["unknown_parent"] += 1
                continue
            matched += 1
            where = split_of[parent.key]
            if where != "train":
                counts[f"dropped_{where}"] += 1
                continue
            image = folder / row["output"]
            if not image.is_file():
                raise DatasetError(manifest, f"row {line}: image {image} not found")
            examples.append(Example(image, class_index[parent.label], parent.key, True))
        if rows and not matched:
            raise DatasetError(manifest, f"none of its {len(rows)} rows comes from an image of "
                               "--data (augment the same originals you train on)")
    counts["added"] = len(examples)
    return examples, counts


# ----------------------------------------------------------------------------- all of it


def prepare_data(cfg: ClassifierConfig) -> ClassifierData:
    """Discover, split and extend the data of ``cfg`` (reads manifests, decodes no image)."""
    samples, names = labelled_originals(cfg.data)
    index = {name: i for i, name in enumerate(names)}
    parts = split_originals(samples, cfg)
    children, counts = augmented_examples(cfg.augmented, parts, index)

    def originals(name):
        return [Example(s.image, index[s.label], s.key) for s in parts[name]]

    digest = hashlib.sha256()
    for s in samples:  # names, labels and sizes: cheap, and changes with the data
        digest.update(f"{s.key}\0{s.label}\0{os.path.getsize(s.image)}\n".encode())
    for folder in cfg.augmented:
        digest.update(file_digest(Path(folder) / "manifest.jsonl").encode())
    return ClassifierData(names, originals("train") + children, originals("val"),
                          originals("test"), counts, digest.hexdigest()[:32])


def describe(data: ClassifierData) -> str:
    """One line: the split sizes per class and what became of the augmented rows."""
    def per_class(examples):
        counts = np.bincount([e.label for e in examples], minlength=len(data.class_names))
        return "/".join(str(int(c)) for c in counts)

    n_orig = sum(not e.augmented for e in data.train)
    text = (f"{len(data.class_names)} classes ({', '.join(data.class_names)}); train "
            f"{n_orig} originals ({per_class([e for e in data.train if not e.augmented])})")
    if any(data.augmented.values()):
        a = data.augmented
        text += (f" + {a['added']} augmented; dropped {a['dropped_val'] + a['dropped_test']} "
                 f"children of val/test originals, {a['unknown_parent']} of unknown parents")
    return text + f"; val {len(data.val)} ({per_class(data.val)}); test {len(data.test)} " \
                  f"({per_class(data.test)})"


# ----------------------------------------------------------------------------- images


def load_images(examples: Sequence[Example], size: int) -> np.ndarray:
    """Grey images ``[N, size, size]`` float32 in [0, 1].

    Raises:
        DatasetError: naming the first unreadable file; ``.details`` lists them all.
    """
    from ...data.image_io import read_image, resize

    out = np.empty((len(examples), size, size), np.float32)
    problems = []
    for i, example in enumerate(examples):
        try:
            image, _ = read_image(example.path)
        except InputError as exc:
            problems.append((example.path, exc.reason))
            continue
        out[i] = resize(image, size, kind="image")
    if problems:
        path, reason = problems[0]
        exc = DatasetError(path, f"{reason}" + (f" (and {len(problems) - 1} more unreadable "
                                                "images, listed below)" if len(problems) > 1
                                                else ""))
        exc.details = [f"  {p}: {r}" for p, r in problems[1:]]
        raise exc
    return out


class TrainImages:
    """The training images: in memory when they fit :data:`MEMORY_BUDGET_BYTES`, else read
    from disk per batch (the same values either way)."""

    def __init__(self, examples: Sequence[Example], size: int):
        self.examples = list(examples)
        self.size = int(size)
        self.labels = np.array([e.label for e in self.examples], np.int32)
        fits = len(self.examples) * self.size ** 2 * 4 <= MEMORY_BUDGET_BYTES
        self.array = load_images(self.examples, self.size) if fits else None
        if not fits:
            _log.get().info("    %d training images do not fit in memory: read per batch",
                            len(self.examples))

    def __len__(self) -> int:
        return len(self.examples)

    def get(self, i: int) -> np.ndarray:
        if self.array is not None:
            return self.array[i]
        return load_images([self.examples[i]], self.size)[0]


def epoch_order(n: int, global_batch: int, seed: int, epoch: int) -> np.ndarray:
    """The sample indices of one epoch, ``steps * global_batch`` long.

    A permutation drawn from ``(seed, epoch)`` alone (so a resumed run draws the same), its
    last batch filled up with the permutation's first indices: every sample is seen every
    epoch and every step has a full global batch, which splits evenly over the ranks.
    """
    order = np.random.default_rng([int(seed), 0xC1A5, int(epoch)]).permutation(n)
    steps = -(-n // global_batch)
    return np.resize(order, steps * global_batch)


def train_dataset(images: TrainImages, order: np.ndarray, per_rank_batch: int, ctx):
    """This rank's batches of one epoch: ``(grey [b, H, W, 1], label [b])`` in ``order``.

    The global order is sharded element-wise (``ds.shard``), so rank ``r`` takes elements
    ``r, r + size, ...`` of every global batch (its ``per_rank_batch`` share).
    """
    import tensorflow as tf

    from ...distributed import shard_dataset

    ds = tf.data.Dataset.from_tensor_slices(order.astype(np.int64))
    ds = shard_dataset(ds, ctx)  # Horovod: each rank its share of every global batch

    def load(i):
        return images.get(int(i))[..., None], images.labels[int(i)]

    ds = ds.map(lambda i: tf.numpy_function(load, [i], (tf.float32, tf.int32)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(lambda x, y: (tf.ensure_shape(x, (images.size, images.size, 1)),
                              tf.ensure_shape(y, ())))
    return ds.batch(per_rank_batch, drop_remainder=True).prefetch(2)
