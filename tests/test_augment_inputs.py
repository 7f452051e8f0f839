"""The job's inputs end to end through the CLI: scan regions and fits, bad files, the report."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from test_augment import augment, make_busi
from tf_usaug.data.screenshots import make_screenshot
from tf_usaug.pipeline.outputs import read_manifest

TRAD = ("--method", "traditional", "--size", "48", "--per-image", "1", "--seed", "1")


def box_iou(a, b) -> float:
    ay0, ay1, ax0, ax1 = a
    by0, by1, bx0, bx1 = b
    inter = max(0, min(ay1, by1) - max(ay0, by0)) * max(0, min(ax1, bx1) - max(ax0, bx0))
    union = (ay1 - ay0) * (ax1 - ax0) + (by1 - by0) * (bx1 - bx0) - inter
    return inter / union


def write_screenshots(folder: Path, seeds, kind=None) -> dict[str, tuple]:
    """Screenshots as 8-bit PNGs in a flat folder; returns file name -> true scan box."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for seed in seeds:
        shot = make_screenshot(seed, kind)
        name = f"shot_{seed:03d}.png"
        cv2.imwrite(str(folder / name), np.round(shot.image * 255).astype(np.uint8))
        truth[name] = tuple(int(v) for v in shot.box)
    return truth


def test_crop_auto_works_on_the_scan_region_and_pad_keeps_its_aspect_ratio(tmp_path):
    truth = write_screenshots(tmp_path / "shots", range(4), kind="rectangle")
    out = tmp_path / "out"
    augment("--content", tmp_path / "shots", "--out", out, *TRAD)
    rows = read_manifest(out / "manifest.jsonl")
    assert len(rows) == 4
    for row in rows:
        y0, y1, x0, x1 = row["crop"]
        assert row["fit"] == "pad"
        assert box_iou(row["crop"], truth[Path(row["content"]).name]) >= 0.9
        h, w = cv2.imread(str(out / row["output"]), cv2.IMREAD_UNCHANGED).shape
        assert max(h, w) == 48
        # the output has the region's aspect ratio (up to rounding to whole pixels)
        assert abs(h / w - (y1 - y0) / (x1 - x0)) <= 1.5 / min(h, w)


def test_crop_none_and_stretch_give_the_whole_frame_as_a_square(tmp_path):
    write_screenshots(tmp_path / "shots", [7])
    out = tmp_path / "out"
    augment("--content", tmp_path / "shots", "--out", out, "--crop", "none", "--fit", "stretch",
            *TRAD)
    row, = read_manifest(out / "manifest.jsonl")
    h, w = cv2.imread(row["content"], cv2.IMREAD_UNCHANGED).shape
    assert row["crop"] == [0, h, 0, w] and row["fit"] == "stretch"
    assert cv2.imread(str(out / row["output"]), cv2.IMREAD_UNCHANGED).shape == (48, 48)


def test_fit_crop_records_the_centred_square_it_used(tmp_path):
    truth = write_screenshots(tmp_path / "shots", [3], kind="rectangle")
    out = tmp_path / "out"
    augment("--content", tmp_path / "shots", "--out", out, "--fit", "crop", *TRAD)
    row, = read_manifest(out / "manifest.jsonl")
    y0, y1, x0, x1 = row["crop"]
    assert y1 - y0 == x1 - x0          # a square of the original pixels ...
    ty0, ty1, tx0, tx1 = truth[Path(row["content"]).name]
    assert ty0 - 4 <= y0 and y1 <= ty1 + 4 and tx0 - 4 <= x0 and x1 <= tx1 + 4  # ... inside
    assert cv2.imread(str(out / row["output"]), cv2.IMREAD_UNCHANGED).shape == (48, 48)


def make_bad_folder(root: Path) -> dict[str, str]:
    """One good image and three bad ones; returns bad file name -> expected words."""
    make_busi(root, per_class=1, size=40)
    (root / "benign" / "empty.png").write_bytes(b"")
    good = (root / "benign" / "benign_0.png").read_bytes()
    (root / "malignant" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "malignant" / "notes.png").write_text("not an image at all\n")
    return {"empty.png": "empty", "truncated.png": "", "notes.png": ""}


def test_every_bad_file_is_listed_in_one_error_and_nothing_is_written(tmp_path):
    bad = make_bad_folder(tmp_path / "data")
    out = tmp_path / "out"
    proc = augment("--content", tmp_path / "data", "--out", out, *TRAD, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    head = [line for line in lines if line.startswith("error:")]
    assert len(head) == 1 and "3 of 5 input files cannot be used" in head[0]
    assert "--skip-bad" in head[0]
    for name in bad:
        listed = [line for line in lines if name in line]
        assert len(listed) == 1, (name, proc.stderr)
    assert not out.exists()


def test_skip_bad_goes_on_and_lists_the_skipped_files_in_the_summary(tmp_path):
    bad = make_bad_folder(tmp_path / "data")
    out = tmp_path / "out"
    augment("--content", tmp_path / "data", "--out", out, "--skip-bad", *TRAD)
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(Path(s["path"]).name for s in summary["skipped"]) == sorted(bad)
    assert all(s["reason"] for s in summary["skipped"])
    assert summary["images"] == 2 and summary["complete"]
    assert len(read_manifest(out / "manifest.jsonl")) == 2


def test_a_bad_mask_is_reported_with_the_mask_file(tmp_path):
    data = make_busi(tmp_path / "data", per_class=1, size=40)
    mask = data / "benign" / "benign_0_mask.png"
    cv2.imwrite(str(mask), np.zeros((20, 20), np.uint8))
    proc = augment("--content", data, "--out", tmp_path / "out", *TRAD, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(mask) in proc.stderr and "size" in proc.stderr


def test_the_report_is_written_at_the_end_and_after_a_resume(tmp_path):
    data = make_busi(tmp_path / "data", per_class=2, size=40)
    out = tmp_path / "out"
    augment("--content", data, "--out", out, *TRAD)
    index = out / "index.html"
    html = index.read_text()
    rows = read_manifest(out / "manifest.jsonl")
    for row in rows:
        assert row["output"] in html
    index.unlink()
    augment("--content", data, "--out", out, *TRAD)          # nothing new, report again
    assert index.is_file()
    augment("--content", data, "--out", tmp_path / "out2", "--no-report", *TRAD)
    assert not (tmp_path / "out2" / "index.html").exists()


@pytest.mark.parametrize("flag", ["--no-relevance", None])
def test_a_missing_backbone_weights_file_is_one_line(tmp_path, flag):
    args = ["--content", make_busi(tmp_path / "data", per_class=1), "--out", tmp_path / "out",
            "--size", "32", "--iterations", "2", "--per-image", "1",
            "--weights", tmp_path / "missing.h5"]
    if flag:
        args.append(flag)
    else:
        args += ["--relevance-weights", "none"]
    proc = augment(*args, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "missing.h5" in proc.stderr
