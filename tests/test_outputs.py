"""Atomic writes, records and manifest merging."""
import json
import os

import cv2
import numpy as np
import pytest

from tf_usaug.pipeline.outputs import OutputDir, atomic_write_bytes, read_manifest, write_json
from tf_usaug.files import encode_png


def test_encode_png_round_trips_8bit_values():
    img = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    dec = cv2.imdecode(np.frombuffer(encode_png(img), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(dec, np.round(img * 255).astype(np.uint8))
    mask = np.eye(8, dtype=bool)
    dec = cv2.imdecode(np.frombuffer(encode_png(mask), np.uint8), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(dec)) == {0, 255}


def test_atomic_write_gives_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "x.bin", b"data")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "a" / "file.bin"
    atomic_write_bytes(target, b"old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]  # no temp left


def test_records_manifest_and_stale_temporaries(tmp_path):
    out = OutputDir(tmp_path)
    names = ["benign/a__nst000", "benign/a__nst001", "malignant/b__nst000"]
    for n in names[::-1]:
        out.write_record(n, {"output": f"images/{n}.png", "label": n.split("/")[0]})
    assert all(out.is_done(n) for n in names)
    assert not out.is_done("benign/zzz")
    stale = tmp_path / "images" / "benign" / ".tmp-x.png.abc"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"partial")
    assert out.remove_stale_temporaries() == 1 and not stale.exists()
    assert out.write_manifest(names + ["missing/item"]) == 3
    rows = read_manifest(out.manifest_path)
    assert [r["output"] for r in rows] == [f"images/{n}.png" for n in names]


def test_write_json_is_valid_json(tmp_path):
    p = write_json(tmp_path / "s.json", {"b": 1, "a": [1, 2]})
    assert json.loads(p.read_text()) == {"a": [1, 2], "b": 1}


def test_background_work_returns_its_value_and_raises_its_error_in_the_caller():
    import threading

    from tf_usaug.errors import RelevanceError
    from tf_usaug.pipeline.background import in_background

    go = threading.Event()
    job = in_background(lambda: go.wait(5) and 42, name="t")
    assert job.finished is None  # still waiting: it runs beside the caller
    go.set()
    assert job.result() == 42 and job.finished is not None

    def fail():
        raise RelevanceError("model.keras: cannot load the classifier")

    with pytest.raises(RelevanceError, match="model.keras"):
        in_background(fail).result()
