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
from pathlib import Path
from typing import Iterable, Mapping

from ..files import TMP_PREFIX, atomic_write_bytes, write_json


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

    def read_record(self, name: str) -> dict | None:
        """The item's record, or None when it has none (or an unreadable one)."""
        try:
            return json.loads(self.record_path(name).read_text())
        except (OSError, ValueError):
            return None

    def is_done(self, name: str, fingerprint: str | None = None) -> bool:
        """The item has a record (made from ``fingerprint``'s settings and inputs, if given)."""
        if fingerprint is None:
            return self.record_path(name).is_file()
        record = self.read_record(name)
        return record is not None and record.get("fingerprint") == fingerprint

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

    def read_records(self, names: Iterable[str],
                     fingerprints: Mapping[str, str] | None = None) -> list[dict]:
        """Records of ``names`` that exist (and carry the expected fingerprint, if given)."""
        rows = []
        for name in names:
            record = self.read_record(name)
            if record is None:
                continue
            if fingerprints is not None and record.get("fingerprint") != fingerprints[name]:
                continue
            rows.append(record)
        return rows

    def prune(self, rows: Iterable[dict]) -> int:
        """Delete every result file that belongs to none of ``rows``; returns the records removed.

        Keeps the folder's results and its manifest in agreement after inputs were removed
        or settings changed (``--overwrite``).
        """
        keep = set()
        for row in rows:
            keep.update(row.get(k) for k in ("output", "mask", "heatmap"))
            keep.add(self.relative(self.record_path(_name_of(row["output"]))))
        keep.discard(None)
        removed = 0
        for sub in ("records", "images", "heatmaps"):
            folder = self.root / sub
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*"), reverse=True):
                if path.is_file() and self.relative(path) not in keep:
                    removed += sub == "records"
                    path.unlink()
                elif path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
        return removed

    def write_manifest(self, names: Iterable[str],
                       fingerprints: Mapping[str, str] | None = None) -> int:
        """Merge the records of ``names`` (in that order) into manifest.jsonl atomically."""
        return self.write_rows(self.read_records(names, fingerprints))

    def write_rows(self, rows: Iterable[dict]) -> int:
        """Write ``rows`` as manifest.jsonl atomically; returns their number."""
        rows = list(rows)
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        atomic_write_bytes(self.manifest_path, text.encode())
        return len(rows)


def _name_of(output: str) -> str:
    """Item name of an output path ``images/<name>.png``."""
    return output[len("images/"):-len(".png")]


def read_manifest(path: str | Path) -> list[dict]:
    """Rows of a manifest.jsonl file."""
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]
