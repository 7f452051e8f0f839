"""A rerun never mixes two runs, and every failure a user can fix is one line (exit 2).

Each case here failed before the run record, item fingerprints, the folder lock and the
checks before any work existed (see docs/augment.md, "Reruns").
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO, run_module
from test_augment import augment, make_busi, small_classifier  # noqa: F401  (fixture)
from tf_usaug.pipeline.outputs import read_manifest
from tf_usaug.rundir import RunDir

TRAD = ("--method", "traditional")


def files_on_disk(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for sub in ("images", "heatmaps", "records")
            for p in (out / sub).rglob("*") if p.is_file()}


def files_in_manifest(out: Path) -> set[str]:
    listed = set()
    for row in read_manifest(out / "manifest.jsonl"):
        listed.update(v for k, v in row.items() if k in ("output", "mask", "heatmap") and v)
        listed.add("records/" + row["output"][len("images/"):-len(".png")] + ".json")
    return listed


def one_error_line(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# --------------------------------------------------------------------------- fingerprints
def test_a_rerun_with_other_settings_is_refused_naming_them(tmp_path):
    data, out = make_busi(tmp_path / "data"), tmp_path / "out"
    augment("--content", data, "--out", out, *TRAD, "--seed", "0", "--size", "64",
            "--per-image", "2")
    before = {p: p.read_bytes() for p in (out / "images").rglob("*.png")}
    proc = augment("--content", data, "--out", out, *TRAD, "--seed", "5", "--size", "32",
                   "--per-image", "1", check=False)
    line = one_error_line(proc)
    for needle in ("seed 0 -> 5", "size 64 -> 32", "per_image 2 -> 1", "--overwrite",
                   "new --out"):
        assert needle in line, line
    assert {p: p.read_bytes() for p in (out / "images").rglob("*.png")} == before


def test_overwrite_regenerates_and_removes_what_no_longer_belongs(tmp_path):
    data, out = make_busi(tmp_path / "data"), tmp_path / "out"
    augment("--content", data, "--out", out, *TRAD, "--seed", "0", "--size", "64",
            "--per-image", "2")
    augment("--content", data, "--out", out, *TRAD, "--seed", "5", "--size", "32",
            "--per-image", "1", "--overwrite")
    rows = read_manifest(out / "manifest.jsonl")
    assert len(rows) == 4 and all(r["global_seed"] == 5 for r in rows)
    assert files_on_disk(out) == files_in_manifest(out)
    for row in rows:
        assert cv2.imread(str(out / row["output"]), cv2.IMREAD_UNCHANGED).shape == (32, 32)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generated_this_run"] == 4 and summary["config"]["seed"] == 5


def test_overwrite_keeps_outputs_that_still_match(tmp_path):
    data, out = make_busi(tmp_path / "data"), tmp_path / "out"
    args = ("--content", data, "--out", out, *TRAD, "--size", "32")
    augment(*args, "--per-image", "1")
    first = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")}
    augment(*args, "--per-image", "2", "--overwrite")       # more per image: k=0 still matches
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generated_this_run"] == 4 and summary["images"] == 8
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())


def test_an_item_whose_input_changed_is_regenerated_alone(tmp_path):
    data, out = make_busi(tmp_path / "data"), tmp_path / "out"
    args = ("--content", data, "--out", out, *TRAD, "--size", "32", "--per-image", "1")
    augment(*args)
    outputs = {r["content"]: out / r["output"] for r in read_manifest(out / "manifest.jsonl")}
    changed = data / "benign" / "benign_0.png"
    old_bytes = outputs[str(changed)].read_bytes()
    others = {c: p.read_bytes() for c, p in outputs.items() if c != str(changed)}
    img = cv2.imread(str(changed), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(changed), 255 - img)                    # same name, new content
    augment(*args)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generated_this_run"] == 1
    assert outputs[str(changed)].read_bytes() != old_bytes
    assert {c: outputs[c].read_bytes() for c in others} == others


def test_outputs_of_removed_inputs_are_removed_so_manifest_and_disk_agree(tmp_path):
    data, out = make_busi(tmp_path / "data"), tmp_path / "out"
    args = ("--content", data, "--out", out, *TRAD, "--size", "32", "--per-image", "1")
    augment(*args)
    (data / "malignant" / "malignant_1.png").unlink()
    (data / "malignant" / "malignant_1_mask.png").unlink()
    proc = augment(*args)
    assert "removed 1 outputs" in proc.stderr
    assert len(read_manifest(out / "manifest.jsonl")) == 3
    assert files_on_disk(out) == files_in_manifest(out)


def test_a_folder_of_results_without_a_run_record_is_refused(tmp_path):
    data, out = make_busi(tmp_path / "data"), tmp_path / "out"
    augment("--content", data, "--out", out, *TRAD, "--size", "32", "--per-image", "1")
    (out / "run.json").unlink()                             # as an older version left it
    line = one_error_line(augment("--content", data, "--out", out, *TRAD, "--size", "32",
                                  "--per-image", "1", check=False))
    assert "without a run record" in line and "--overwrite" in line


def test_simulate_refuses_a_rerun_with_another_seed_and_overwrite_remakes_it(tmp_path):
    out = tmp_path / "phantoms"
    base = ("--out", out, "--n", "1", "--probe", "L11-5v", "--classes", "benign",
            "--size", "16")
    run_module("tf_usaug.simulate", *base, "--seed", "0")
    image = out / "benign" / "l11-5v_benign_000.png"
    first = image.read_bytes()
    proc = run_module("tf_usaug.simulate", *base, "--seed", "1", check=False)
    assert "seed 0 -> 1" in one_error_line(proc)
    assert image.read_bytes() == first
    run_module("tf_usaug.simulate", *base, "--seed", "1", "--overwrite")
    assert image.read_bytes() != first


# --------------------------------------------------------------------------- one line, exit 2
@pytest.mark.parametrize("flags,needle", [
    (["--size", "100000"], "--size must be between 8 and 16384"),
    (["--size", "8000", "--method", "nst", "--no-relevance"], "GiB"),
    (["--per-image", "1000000000"], "split the work"),
    (["--weights", "/nonexistent/w.h5", "--method", "nst", "--no-relevance"],
     "/nonexistent/w.h5: file not found"),
])
def test_impossible_arguments_are_refused_before_any_work(tmp_path, flags, needle):
    data = make_busi(tmp_path / "data", per_class=1)
    proc = augment("--content", data, "--out", tmp_path / "out", *TRAD, *flags, check=False)
    assert needle in one_error_line(proc)
    assert "==>" not in proc.stderr and not (tmp_path / "out").exists()


def test_out_naming_a_file_an_empty_name_or_an_unwritable_place(tmp_path):
    data = make_busi(tmp_path / "data", per_class=1)
    a_file = tmp_path / "taken.txt"
    a_file.write_text("keep me\n")
    line = one_error_line(augment("--content", data, "--out", a_file, *TRAD, check=False))
    assert "is not a folder" in line and a_file.read_text() == "keep me\n"
    assert "must not be empty" in one_error_line(
        augment("--content", data, "--out", "", *TRAD, check=False))
    line = one_error_line(augment("--content", data, "--out", "/sys/tf_usaug_out", *TRAD,
                                  check=False))
    assert "/sys/tf_usaug_out" in line


def test_a_full_disk_is_one_line(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        data = make_busi(tmp_path / "data", per_class=4, size=96)
        proc = augment("--content", data, "--out", mnt / "out", *TRAD, "--size", "96",
                       "--per-image", "4", "--no-report", check=False)
        assert "No space left on device" in one_error_line(proc)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def _sigint_as_in_a_terminal():
    """SIGINT at its default and unblocked in the child, as in a terminal. Ignored or blocked
    signals are inherited through exec: after the earlier tests of the full suite the child
    otherwise never got a KeyboardInterrupt and finished (CI, exit 0)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_cleanly_with_a_manifest_of_what_is_done(tmp_path):
    data, out = make_busi(tmp_path / "data", per_class=6), tmp_path / "out"
    cmd = [sys.executable, "-m", "tf_usaug.augment", "--no-progress", "--content", str(data),
           "--out", str(out), *TRAD, "--size", "64", "--per-image", "40", "--batch-size", "1"]
    # 480 outputs at about 100/s on an idle machine: seconds of work left after the third
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_as_in_a_terminal)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "records").rglob("*.json"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "interrupted" in stderr
    rows = read_manifest(out / "manifest.jsonl")
    records = list((out / "records").rglob("*.json"))
    assert 3 <= len(rows) == len(records) < 480
    augment("--content", data, "--out", out, *TRAD, "--size", "64", "--per-image", "40",
            "--batch-size", "1")                                # the rerun finishes the rest
    assert len(read_manifest(out / "manifest.jsonl")) == 480


def test_a_second_job_into_the_same_folder_is_refused_naming_the_holder(tmp_path):
    data, out = make_busi(tmp_path / "data", per_class=1), tmp_path / "out"
    with RunDir(out):
        line = one_error_line(augment("--content", data, "--out", out, *TRAD, check=False))
    assert f"pid {os.getpid()}" in line and "in use" in line
    augment("--content", data, "--out", out, *TRAD, "--size", "32")   # free again


# --------------------------------------------------------------------------- inputs
def test_a_file_name_that_is_not_utf8_works(tmp_path):
    data = make_busi(tmp_path / "data", per_class=1)
    raw = os.fsencode(data / "benign") + b"/caf\xe9.png"
    os.rename(data / "benign" / "benign_0.png", raw)
    os.rename(data / "benign" / "benign_0_mask.png", raw[:-4] + b"_mask.png")
    out = tmp_path / "out"
    augment("--content", data, "--out", out, *TRAD, "--size", "32", "--per-image", "1")
    rows = read_manifest(out / "manifest.jsonl")
    assert len(rows) == 2 and any("caf" in r["output"] for r in rows)
    assert (out / "index.html").is_file()


def test_images_in_deeper_folders_of_a_class_are_included(tmp_path):
    data = make_busi(tmp_path / "data", per_class=1)
    deeper = data / "malignant" / "clinic_b" / "2024"
    deeper.mkdir(parents=True)
    cv2.imwrite(str(deeper / "case.png"), np.full((40, 40), 90, np.uint8))
    (data / "benign_only").mkdir()                     # and a class held only in sub-folders
    (data / "benign_only" / "sub").mkdir()
    cv2.imwrite(str(data / "benign_only" / "sub" / "x.png"), np.full((40, 40), 60, np.uint8))
    out = tmp_path / "out"
    augment("--content", data, "--out", out, *TRAD, "--size", "32", "--per-image", "1")
    rows = {r["output"]: r for r in read_manifest(out / "manifest.jsonl")}
    assert rows["images/malignant/clinic_b/2024/case__traditional000.png"]["label"] == "malignant"
    assert rows["images/benign_only/sub/x__traditional000.png"]["label"] == "benign_only"


def test_out_in_a_folder_the_csv_takes_images_from_is_refused(tmp_path):
    data = make_busi(tmp_path / "data", per_class=1)
    csv = tmp_path / "lists" / "set.csv"
    csv.parent.mkdir()
    csv.write_text("image,mask,label\n" + "".join(
        f"{p},,{p.parent.name}\n" for p in sorted(data.rglob("*_0.png"))))
    for out in (data / "benign", data / "benign" / "aug"):
        line = one_error_line(augment("--content", csv, "--out", out, *TRAD, check=False))
        assert "outside your data" in line
    assert not (data / "benign" / "aug").exists() and not (data / "benign" / "records").exists()


def test_the_relevance_stage_leaves_no_list_file_in_the_cache(tmp_path, small_classifier):
    from test_augment import nst_args

    data = make_busi(tmp_path / "data", per_class=1)
    out = tmp_path / "out"
    augment(*nst_args(data, out, small_classifier))
    leftovers = [p.name for p in (out / "cache").iterdir() if p.name.startswith(".")]
    assert leftovers == []
