"""The job's inputs: every file checked before any work, scan regions found, regions fitted.

* :func:`validate_inputs` reads every content image, its masks and every style reference once
  (sharded over the ranks) and returns all problems together, so a folder with three bad files
  fails once with three lines, not three times with one.
* :class:`InputPreparer` turns a sample into the working square: the scan region
  (``--crop auto``: DICOM ``SequenceOfUltrasoundRegions`` when present, else
  :func:`tf_usaug.data.scan_region.detect_scan_region`; ``--crop none``: the whole frame),
  fitted by :mod:`tf_usaug.data.fit` (``--fit pad|crop|stretch``). Style references take the
  region's centred square (``crop``): letterbox padding would enter the style statistics as
  black tissue. With ``--fit stretch`` they are stretched like the contents (the behaviour
  before these options).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..data.datasets import Sample, load_sample
from ..data.fit import Box, Placement, cut_output, fit_to_square, used_box
from ..data.image_io import read_image
from ..errors import InputError, UsageError
from ..files import file_digest

CROPS = ("auto", "none")
_DICOM_SUFFIXES = (".dcm", ".dicom")


def check_crop(crop: str) -> str:
    if crop not in CROPS:
        raise UsageError(f"unknown --crop {crop!r}; choose from {', '.join(CROPS)}")
    return crop


# --------------------------------------------------------------------------- validation


def _problem(exc: Exception, fallback: Path) -> tuple[str, str]:
    path = getattr(exc, "path", None) or fallback
    reason = getattr(exc, "reason", None) or str(exc)
    return str(path), reason


def _check(read, path: Path, files: Sequence[Path]) -> tuple[tuple[str, str] | None, dict]:
    """Run ``read()``; returns ``(problem or None, {file: sha256})`` for ``files``."""
    try:
        read()
        return None, {str(f): file_digest(f) for f in files}
    except InputError as exc:
        return _problem(exc, path), {}
    except OSError as exc:
        return (str(getattr(exc, "filename", None) or path), exc.strerror or str(exc)), {}


def validate_inputs(contents: Sequence[Sample], styles: Sequence[Path], rank: int = 0,
                    size: int = 1,
                    gather: Callable[[object], list] | None = None
                    ) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Every unusable input as ``(path, reason)`` (sorted, no repeats), and the content hash of
    every usable file (images, masks, style references) as ``{path: sha256}``.

    Rank ``r`` of ``size`` checks every ``size``-th file from ``r``; ``gather`` (the context's
    ``allgather_object``) collects the ranks' results, so each file is read once per job.
    """
    content_paths = {Path(s.image) for s in contents}
    jobs = [(functools.partial(load_sample, s), Path(s.image), (Path(s.image), *s.masks))
            for s in contents]
    jobs += [(functools.partial(read_image, Path(p)), Path(p), (Path(p),))
             for p in dict.fromkeys(styles) if Path(p) not in content_paths]
    problems, digests = [], {}
    for read, path, files in jobs[rank::size]:
        problem, found = _check(read, path, files)
        if problem is not None:
            problems.append(problem)
        digests.update(found)
    if gather is not None and size > 1:
        parts = gather((problems, digests))
        problems = [p for part, _ in parts for p in part]
        digests = {k: v for _, part in parts for k, v in part.items()}
    return sorted(set(map(tuple, problems))), digests


# --------------------------------------------------------------------------- preparation


@dataclass(frozen=True)
class Prepared:
    """A content sample in the working square.

    Attributes:
        image: ``size x size`` float32 in [0, 1].
        mask: ``size x size`` bool, or None without masks.
        place: where the region sits in the square (cut outputs with :meth:`cut`).
        crop: the original-pixel box ``(y0, y1, x0, x1)`` that the output shows.
    """

    image: np.ndarray
    mask: np.ndarray | None
    place: Placement
    crop: Box

    def cut(self, square: np.ndarray) -> np.ndarray:
        return cut_output(square, self.place)


class InputPreparer:
    """Reads inputs into the working square; remembers each file's scan region (per process)."""

    def __init__(self, size: int, crop: str = "auto", fit: str = "pad"):
        self.size, self.crop, self.fit = int(size), check_crop(crop), fit
        self._boxes: dict[Path, Box] = {}
        self._styles: dict[Path, np.ndarray] = {}

    def region_box(self, path: Path, image: np.ndarray) -> Box:
        """The scan region of ``image`` (read from ``path``), cached by path."""
        path = Path(path)
        if path not in self._boxes:
            h, w = image.shape
            box: Box = (0, h, 0, w)
            if self.crop == "auto":
                from ..data.scan_region import detect_scan_region, dicom_scan_region

                region = None
                if path.suffix.lower() in _DICOM_SUFFIXES:
                    region = dicom_scan_region(path)
                if region is None:
                    region = detect_scan_region(image)
                box = tuple(int(v) for v in region.box)
            self._boxes[path] = box
        return self._boxes[path]

    def content(self, sample: Sample) -> Prepared:
        image, mask = load_sample(sample)
        y0, y1, x0, x1 = box = self.region_box(sample.image, image)
        square, place = fit_to_square(image[y0:y1, x0:x1], self.size, self.fit)
        mask_sq = None
        if mask is not None:
            mask_sq, _ = fit_to_square(mask[y0:y1, x0:x1], self.size, self.fit, kind="mask")
        return Prepared(square, mask_sq, place, used_box(box, place))

    def style(self, path: Path) -> np.ndarray:
        """A style reference in the working square (region's centred square; see module doc)."""
        path = Path(path)
        if path not in self._styles:
            image, _ = read_image(path)
            y0, y1, x0, x1 = self.region_box(path, image)
            fit = "stretch" if self.fit == "stretch" else "crop"
            self._styles[path], _ = fit_to_square(image[y0:y1, x0:x1], self.size, fit)
        return self._styles[path]
