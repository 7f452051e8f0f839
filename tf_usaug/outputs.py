"""Results on disk: atomic writes, one record per finished item, merged manifest and summary.

Layout of an output folder::

    OUT/images/<label>/<name>.png        augmented image (8-bit grey)
    OUT/images/<label>/<name>_mask.png   its mask, transformed with it (BUSI naming)
    OUT/heatmaps/<label>/<name>.png      LRP relevance overlay (method nst)
    OUT/records/<label>/<name>.json      the item's manifest row, written LAST (= item done)
    OUT/ranks/rank-<r>.json              per-rank timing of the latest run
    OUT/manifest.jsonl                   all records, merged by rank 0, sorted by output
    OUT/summary.json                     totals and throughput of the latest run

Every file is written under a temporary name in its own folder and renamed into place, so a
killed run leaves either the old file or the new one, never half of one; an item counts as
done only when its record exists, and a rerun skips done items.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

TMP_PREFIX = ".tmp-"


def _file_mode() -> int:
    """Permissions a plainly created file gets (0666 minus the umask); mkstemp gives 0600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a grey image: float in [0, 1] -> 8-bit, bool -> 0/255."""
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr8 = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint8:
        arr8 = arr
    else:
        arr8 = np.round(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    ok, buf = cv2.imencode(".png", arr8)
    if not ok:  # pragma: no cover - cv2 only fails on invalid shapes
        raise ValueError(f"cannot encode an image of shape {arr.shape} as PNG")
    return buf.tobytes()


def write_png(path: str | Path, image: np.ndarray) -> Path:
    return atomic_write_bytes(path, encode_png(image))


def write_json(path: str | Path, obj) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


class OutputDir:
    """The output folder of one augmentation job (see the module docstring for the layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def image_path(self, name: str) -> Path:
        return self.root / "images" / f"{name}.png"

    def mask_path(self, name: str) -> Path:
        return self.root / "images" / f"{name}_mask.png"

    def heatmap_path(self, name: str) -> Path:
        return self.root / "heatmaps" / f"{name}.png"

    def record_path(self, name: str) -> Path:
        return self.root / "records" / f"{name}.json"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.json"

    def rank_path(self, rank: int) -> Path:
        return self.root / "ranks" / f"rank-{rank}.json"

    def relative(self, path: Path) -> str:
        return Path(path).relative_to(self.root).as_posix()

    def is_done(self, name: str) -> bool:
        return self.record_path(name).is_file()

    def write_record(self, name: str, record: dict) -> Path:
        """Write the item's record; call after its image files, it marks the item done."""
        return write_json(self.record_path(name), record)

    def remove_stale_temporaries(self) -> int:
        """Delete temp files a killed run left behind. Call on rank 0 before other ranks start."""
        n = 0
        if self.root.is_dir():
            for tmp in self.root.rglob(TMP_PREFIX + "*"):
                if tmp.is_file():
                    tmp.unlink(missing_ok=True)
                    n += 1
        return n

    def read_records(self, names: Iterable[str]) -> list[dict]:
        rows = []
        for name in names:
            path = self.record_path(name)
            if path.is_file():
                rows.append(json.loads(path.read_text()))
        return rows

    def write_manifest(self, names: Iterable[str]) -> int:
        """Merge the records of ``names`` (in that order) into manifest.jsonl atomically."""
        rows = self.read_records(names)
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        atomic_write_bytes(self.manifest_path, text.encode())
        return len(rows)


def read_manifest(path: str | Path) -> list[dict]:
    """Rows of a manifest.jsonl file."""
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]
