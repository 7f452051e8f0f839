"""Dataset layouts (BUSI folder, flat folder, CSV) and deterministic stratified splits.

:func:`discover` recognises three layouts:

(a) BUSI (Al-Dhabyani et al. 2020, the dataset of paper 002): ``ROOT/<class>/<name>.png``
    with ``<name>_mask.png`` and optionally ``<name>_mask_1.png``, ``<name>_mask_2.png``, ...
    (several lesions; :func:`load_sample` merges them with OR). The class is the sub-folder's
    name; the key is ``<class>/<name>``, e.g. ``benign/benign (1)``. Images in deeper folders
    of a class folder belong to the class too (key ``<class>/<sub>/<name>``).
(b) a flat folder of images: no labels (label None); masks optional, same ``_mask`` naming;
    the key is the file stem.
(c) a CSV file with the columns ``image,mask,label`` (other columns are ignored): paths
    relative to the CSV's folder (absolute paths also work); ``mask`` and ``label`` may be
    empty; several masks of one image are joined with ``;``. Keys are file stems; stems that
    occur twice (``a/x.png``, ``b/x.png``) get a short hash of their relative path appended.

A single image file is also accepted (one unlabelled sample), which is handy for style
references. Files named like masks are never listed as images.

:func:`split` (paper 002, sec. "Methodology": 70 % train, 15 % validation, 15 % test) and
:func:`stratified_kfold` (paper 004, sec. 2.3: stratified k-fold cross-validation) keep every
class's proportions; both are deterministic functions of ``seed``.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .image_io import IMAGE_EXTENSIONS, is_image_file, read_image, read_mask, resize
from ..errors import DatasetError  # noqa: F401  (raised here; importable from here too)

#: ``<stem>_mask`` or ``<stem>_mask_<n>`` (BUSI's naming of one or several lesion masks).
MASK_PATTERN = re.compile(r"^(?P<stem>.+)_mask(?:_(?P<index>\d+))?$", re.IGNORECASE)

#: Columns a dataset CSV must have (more are allowed and ignored).
CSV_COLUMNS: tuple[str, ...] = ("image", "mask", "label")

#: Paper 002: "the dataset were split into 70% training, 15% validation, and 15% test set".
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    """One image with its masks and label.

    Attributes:
        key: unique id and output-name stem, e.g. ``"benign/benign (1)"`` (BUSI) or
            ``"img_001"`` (flat folder, CSV).
        image: the image file.
        masks: its mask files, merged with OR by :func:`load_sample` (may be empty).
        label: the class, or None when unlabelled.
    """

    key: str
    image: Path
    masks: tuple[Path, ...] = ()
    label: str | None = None


# ----------------------------------------------------------------------------- discovery


def discover(source: str | os.PathLike) -> list[Sample]:
    """Find the samples of a BUSI folder, a flat folder, a CSV or one image file.

    Args:
        source: folder (BUSI class sub-folders or flat), ``.csv`` file, or an image file.

    Returns:
        Samples sorted by key (keys are unique).

    Raises:
        DatasetError: missing source, no images, images mixed with class folders, two images
            with one stem in a folder, a mask without its image, a bad or dangling CSV.
    """
    source = Path(source)
    if not source.exists():
        raise DatasetError(source, "no such file or folder")
    if source.is_file():
        if source.suffix.lower() == ".csv":
            samples = _discover_csv(source)
        elif is_image_file(source):
            samples = _discover_single(source)
        else:
            raise DatasetError(source, "expected a folder, a .csv file or an image file "
                               f"({', '.join(IMAGE_EXTENSIONS)})")
    else:
        samples = _discover_folder(source)
    if not samples:
        raise DatasetError(source, f"no images found (looked for {', '.join(IMAGE_EXTENSIONS)} "
                           "files directly in the folder or in class sub-folders)")
    return sorted(samples, key=lambda s: s.key)


def discover_images(source: str | os.PathLike) -> list[Path]:
    """Image files of any :func:`discover` layout, sorted by key (e.g. a style-image folder)."""
    return [s.image for s in discover(source)]


def mask_stem(path: str | os.PathLike) -> str | None:
    """The image stem a mask file belongs to (``x_mask_1.png`` -> ``x``), None for images."""
    match = MASK_PATTERN.match(Path(path).stem)
    return match.group("stem") if match else None


def _mask_order(path: Path) -> tuple[int, str]:
    """Sort key: ``x_mask`` first, then ``x_mask_1``, ``x_mask_2``, ... ``x_mask_10``."""
    match = MASK_PATTERN.match(path.stem)
    index = match.group("index") if match else None
    return (int(index) + 1 if index is not None else 0, path.name)


def _discover_folder(folder: Path) -> list[Sample]:
    """BUSI (class sub-folders) or flat layout; a folder holding both is an error."""
    top = _scan_folder(folder, label=None, prefix="")
    class_dirs = [p for p in _visible_subfolders(folder) if _has_image(p)]
    if top and class_dirs:
        raise DatasetError(folder, "mixes images at the top level with class sub-folders ("
                           f"{', '.join(p.name for p in class_dirs)}); use one layout: "
                           "ROOT/<class>/<image> or a flat folder of images")
    if top:
        return top
    samples: list[Sample] = []
    for sub in class_dirs:
        samples += _scan_folder(sub, label=sub.name, prefix=f"{sub.name}/")
    return samples


def _has_image(folder: Path) -> bool:
    """True when ``folder`` or a visible sub-folder holds at least one (visible) image file."""
    return any(_is_listed_image(p) for p in folder.iterdir()) or any(
        _has_image(p) for p in _visible_subfolders(folder))


def _visible_subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_listed_image(path: Path) -> bool:
    """A visible file with an image extension; hidden files (``.x.png``, and macOS's
    AppleDouble ``._x.png`` companions that copies from a Mac leave beside each image) are not
    images."""
    return not path.name.startswith(".") and path.is_file() and is_image_file(path)


def _scan_folder(folder: Path, label: str | None, prefix: str) -> list[Sample]:
    """The images of one folder, each with its ``_mask`` / ``_mask_<n>`` files."""
    files = sorted(p for p in folder.iterdir() if _is_listed_image(p))
    images: dict[str, Path] = {}
    for path in files:
        if mask_stem(path) is not None:
            continue
        if path.stem in images:
            raise DatasetError(path, f"two images share the stem '{path.stem}' "
                               f"({images[path.stem].name}, {path.name}); rename one")
        images[path.stem] = path
    masks: dict[str, list[Path]] = defaultdict(list)
    for path in files:
        stem = mask_stem(path)
        if stem is None:
            continue
        if stem not in images:
            raise DatasetError(path, f"mask without its image (no {stem}.* image beside it)")
        masks[stem].append(path)
    samples = [Sample(f"{prefix}{stem}", image, tuple(sorted(masks[stem], key=_mask_order)),
                      label) for stem, image in images.items()]
    if label is not None:  # a class folder's sub-folders belong to the class (any depth)
        for sub in _visible_subfolders(folder):
            samples += _scan_folder(sub, label, f"{prefix}{sub.name}/")
    return samples


def _discover_single(path: Path) -> list[Sample]:
    """One image file given directly: its masks are looked up beside it."""
    if mask_stem(path) is not None:
        raise DatasetError(path, "is a mask (named <image>_mask...), not an image")
    masks = [p for p in path.parent.iterdir()
             if _is_listed_image(p) and mask_stem(p) == path.stem]
    return [Sample(path.stem, path, tuple(sorted(masks, key=_mask_order)), None)]


# ----------------------------------------------------------------------------- CSV


def _discover_csv(path: Path) -> list[Sample]:
    """Rows ``image,mask,label`` -> samples (paths relative to the CSV's folder)."""
    rows = _read_csv_rows(path)
    root = path.parent
    entries: list[tuple[Path, tuple[Path, ...], str | None]] = []
    first_line: dict[Path, int] = {}
    for line, row in rows:
        image = _csv_file(path, line, root, row["image"], "image")
        resolved = image.resolve()
        if resolved in first_line:
            raise DatasetError(path, f"line {line}: image {row['image']} is already listed on "
                               f"line {first_line[resolved]}")
        first_line[resolved] = line
        masks = tuple(_csv_file(path, line, root, m.strip(), "mask")
                      for m in row["mask"].split(";") if m.strip())
        entries.append((image, masks, row["label"] or None))
    stems = defaultdict(int)
    for image, _, _ in entries:
        stems[image.stem] += 1
    return [Sample(_csv_key(image, root, stems[image.stem] > 1), image, masks, label)
            for image, masks, label in entries]


def _read_csv_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs with lower-case column names and stripped values."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [(c or "").strip().lower() for c in (reader.fieldnames or [])]
            missing = [c for c in CSV_COLUMNS if c not in columns]
            if missing:
                raise DatasetError(path, f"CSV lacks the column(s) {', '.join(missing)} (needs "
                                   f"{','.join(CSV_COLUMNS)}; found {','.join(columns) or 'none'})")
            rows = []
            for raw in reader:
                row = {(k or "").strip().lower(): (v or "").strip()
                       for k, v in raw.items() if isinstance(v, str) or v is None}
                if any(row.values()):  # blank lines are allowed
                    rows.append((reader.line_num, row))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(path, f"cannot read CSV ({exc})") from exc
    return rows


def _csv_file(csv_path: Path, line: int, root: Path, name: str, column: str) -> Path:
    """Resolve one CSV cell to an existing image file (DatasetError naming CSV, line, file)."""
    if not name:
        raise DatasetError(csv_path, f"line {line}: empty '{column}' field")
    file = root / name
    if not file.is_file():
        raise DatasetError(csv_path, f"line {line}: {column} file not found: {file}")
    if not is_image_file(file):
        raise DatasetError(csv_path, f"line {line}: {column} file {file} has an unsupported "
                           f"extension (supported: {', '.join(IMAGE_EXTENSIONS)})")
    return file


def _csv_key(image: Path, root: Path, collides: bool) -> str:
    """File stem, plus 8 hex digits of the relative path's SHA-1 when the stem is not unique."""
    if not collides:
        return image.stem
    try:
        rel = image.relative_to(root).as_posix()
    except ValueError:  # absolute path outside the CSV's folder
        rel = image.as_posix()
    return f"{image.stem}-{hashlib.sha1(rel.encode('utf-8')).hexdigest()[:8]}"


# ----------------------------------------------------------------------------- loading


def load_sample(sample: Sample, size: int | tuple[int, int] | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a sample's image and its masks merged with OR, optionally resized.

    Args:
        sample: from :func:`discover`.
        size: None keeps the original size; an int (square) or ``(H, W)`` resizes the image
            (area/bilinear) and the mask (nearest) with :func:`tf_usaug.data.image_io.resize`.

    Returns:
        ``(image, mask)``: float32 ``HxW`` in [0, 1] and bool ``HxW`` (None without masks).

    Raises:
        ImageError: unreadable image or mask, or a mask whose size differs from its image's.
    """
    image, shape = read_image(sample.image)
    mask = None
    for path in sample.masks:
        lesion = read_mask(path, shape=shape)
        mask = lesion if mask is None else (mask | lesion)
    if size is not None:
        image = resize(image, size, kind="image")
        if mask is not None:
            mask = resize(mask, size, kind="mask")
    return image, mask


# ----------------------------------------------------------------------------- splits


def split(samples: Sequence[Sample], fractions: Sequence[float] = DEFAULT_FRACTIONS,
          seed: int = 0) -> dict[str, list[Sample]]:
    """Deterministic train/val/test split, stratified by label (paper 002: 70/15/15).

    Each class (unlabelled samples form one class) is shuffled with a generator seeded by
    ``(seed, class)`` and cut by :func:`stratum_counts`, so a class gets ``n * fraction``
    samples per split up to rounding (floor or ceil). A class's order depends only on
    ``seed`` and its own members, so adding a class does not reshuffle the others (a tie in
    rounding may still move one sample at a cut).

    Args:
        samples: the samples to split (their order does not matter).
        fractions: (train, val, test) shares, non-negative, summing to 1.
        seed: shuffling seed.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted by key; disjoint and
        together exactly ``samples``.
    """
    fractions = _check_fractions(fractions)
    parts: dict[str, list[Sample]] = {name: [] for name in SPLIT_NAMES}
    shortfall = np.zeros(len(SPLIT_NAMES))
    for members in _shuffled_strata(samples, seed).values():
        counts = stratum_counts(len(members), fractions, shortfall)
        shortfall += np.asarray(fractions) * len(members) - counts
        bounds = np.cumsum(counts)
        for name, start, stop in zip(SPLIT_NAMES, (0, *bounds[:-1]), bounds):
            parts[name] += members[start:stop]
    return {name: sorted(part, key=lambda s: s.key) for name, part in parts.items()}


def stratified_kfold(samples: Sequence[Sample], k: int, seed: int = 0
                     ) -> list[dict[str, list[Sample]]]:
    """Stratified k-fold cross-validation folds (paper 004, sec. 2.3).

    Each class is shuffled as in :func:`split` and dealt round-robin over the folds, the next
    class starting where the previous one stopped: every fold holds ``floor`` or ``ceil`` of
    ``n_class / k`` of each class and fold sizes differ by at most one.

    Args:
        samples: the samples.
        k: number of folds, ``2 <= k <= len(samples)``.
        seed: shuffling seed.

    Returns:
        ``k`` dicts ``{"train": [...], "test": [...]}`` (sorted by key); the test parts are
        disjoint and cover ``samples``; each train part is the complement of its test part.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= len(samples):
        raise ValueError(f"stratified_kfold: k must be an integer in [2, {len(samples)}] "
                         f"(the number of samples), got {k!r}")
    tests: list[list[Sample]] = [[] for _ in range(k)]
    offset = 0
    for members in _shuffled_strata(samples, seed).values():
        for i, sample in enumerate(members):
            tests[(offset + i) % k].append(sample)
        offset += len(members)
    folds = []
    for i, test in enumerate(tests):
        train = [s for j, other in enumerate(tests) if j != i for s in other]
        folds.append({"train": sorted(train, key=lambda s: s.key),
                      "test": sorted(test, key=lambda s: s.key)})
    return folds


def stratum_counts(n: int, fractions: Sequence[float],
                   shortfall: Sequence[float] | None = None) -> np.ndarray:
    """Split ``n`` items by ``fractions`` with largest-remainder (Hamilton) rounding.

    Every count is ``floor(n f)`` or ``ceil(n f)`` and the counts sum to ``n``. Equal
    remainders go to the split with the larger ``shortfall`` (how far the splits so far lag
    their ideal totals), then to the earlier split, so that across classes the rounding does
    not always favour the same split. Example: ``n = 10``, (0.7, 0.15, 0.15) -> (7, 2, 1).
    """
    ideal = np.asarray(fractions, dtype=np.float64) * n
    counts = np.floor(ideal + 1e-9).astype(int)
    remainder = np.round(ideal - counts, 9)
    lag = np.zeros(len(counts)) if shortfall is None else np.asarray(shortfall, np.float64)
    order = np.lexsort((np.arange(len(counts)), -lag, -remainder))
    for i in order[: n - int(counts.sum())]:
        counts[i] += 1
    return counts


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Three non-negative finite numbers summing to 1 (within 1e-6)."""
    values = tuple(float(f) for f in fractions)
    if (len(values) != 3 or not all(np.isfinite(values)) or min(values) < 0
            or abs(sum(values) - 1.0) > 1e-6):
        raise ValueError(f"split: fractions must be three non-negative numbers (train, val, "
                         f"test) summing to 1, got {tuple(fractions)}")
    return values  # type: ignore[return-value]


def _shuffled_strata(samples: Sequence[Sample], seed: int) -> dict[str | None, list[Sample]]:
    """Samples grouped by label (sorted labels, None last), each group shuffled by seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    groups: dict[str | None, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[sample.label].append(sample)
    out = {}
    for label in sorted(groups, key=lambda x: (x is None, x or "")):
        members = sorted(groups[label], key=lambda s: s.key)
        rng = np.random.default_rng([int(seed), _label_code(label)])
        out[label] = [members[i] for i in rng.permutation(len(members))]
    return out


def _label_code(label: str | None) -> int:
    """Stable integer for a label (CRC-32; unlabelled samples use 2**32)."""
    return 2 ** 32 if label is None else zlib.crc32(label.encode("utf-8"))
