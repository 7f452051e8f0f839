"""Atomic file writes shared by every job: a killed process leaves the old file or the new one.

Every file is written under a temporary name (``.tmp-<name>.<random>``) in its own folder,
fsynced and renamed into place, so readers never see half a file.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

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
    import cv2

    ok, buf = cv2.imencode(".png", arr8)
    if not ok:  # pragma: no cover - cv2 only fails on invalid shapes
        raise ValueError(f"cannot encode an image of shape {arr.shape} as PNG")
    return buf.tobytes()


def write_png(path: str | Path, image: np.ndarray) -> Path:
    return atomic_write_bytes(path, encode_png(image))


def write_json(path: str | Path, obj) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


@functools.lru_cache(maxsize=4096)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (memoised per process on path, size and mtime: weights are big)."""
    st = os.stat(path)
    return _digest(os.fspath(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def path_digest(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a folder's files (relative names and bytes, sorted)."""
    path = Path(path)
    if not path.is_dir():
        return file_digest(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode("utf-8", "surrogateescape") + b"\0")
        h.update(file_digest(f).encode())
    return h.hexdigest()
