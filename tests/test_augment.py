"""The main job end to end through its CLI, on tiny images: outputs, resume, bad input, ranks."""
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
from tf_usaug.pipeline.outputs import read_manifest


def make_busi(root: Path, per_class: int = 2, size: int = 40, seed: int = 0) -> Path:
    """A tiny BUSI-layout dataset: speckle images with an elliptical lesion and its mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    for label in ("benign", "malignant"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cy, cx = rng.integers(size // 3, 2 * size // 3, 2)
            ry, rx = (size // 8, size // 5) if label == "benign" else (size // 5, size // 8)
            lesion = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            img = rng.rayleigh(0.35, (size, size)) * np.where(lesion, 0.3, 1.0)
            img8 = np.clip(img / img.max() * 255, 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / label / f"{label}_{i}.png"), img8)
            cv2.imwrite(str(root / label / f"{label}_{i}_mask.png"), lesion.astype(np.uint8) * 255)
    return root


def augment(*args, check=True, timeout=900, env=None):
    return run_module("tf_usaug.augment", "--no-progress", *args, check=check, timeout=timeout,
                      env=env)


def outputs_of(out: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every image/mask/heatmap written."""
    files = {}
    for sub in ("images", "heatmaps"):
        for p in sorted((out / sub).rglob("*.png")):
            files[p.relative_to(out).as_posix()] = p.read_bytes()
    return files


TRAD = ("--method", "traditional", "--size", "32", "--per-image", "2", "--seed", "3")


def test_traditional_end_to_end_manifest_summary_and_resume(tmp_path):
    data = make_busi(tmp_path / "data")
    out = tmp_path / "out"
    augment("--content", data, "--out", out, *TRAD)
    rows = read_manifest(out / "manifest.jsonl")
    assert len(rows) == 4 * 2
    required = {"output", "content", "mask", "label", "method", "params", "seed", "rank",
                "seconds"}
    for row in rows:
        assert required <= set(row)
        img = cv2.imread(str(out / row["output"]), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(out / row["mask"]), cv2.IMREAD_UNCHANGED)
        assert img.shape == mask.shape == (32, 32)
        assert row["label"] in ("benign", "malignant")
        assert row["output"].startswith(f"images/{row['label']}/")   # BUSI layout again
        assert row["method"] == "traditional" and "rotation_deg" in row["params"]
    assert len({r["output"] for r in rows}) == len(rows)
    assert len({r["seed"] for r in rows}) == len(rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 8 and summary["ranks"] == 1 and summary["complete"]
    assert summary["images_per_second"] > 0 and summary["seconds"] > 0

    # A rerun skips finished items: nothing regenerated, files untouched.
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")}
    augment("--content", data, "--out", out, *TRAD)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generated_this_run"] == 0 and summary["images"] == 8
    assert mtimes == {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")}

    # An interrupted run (records missing, a partial temp file) is completed, nothing else.
    before = outputs_of(out)
    victim = sorted((out / "records").rglob("*.json"))[0]
    victim.unlink()
    (victim.parent / ".tmp-half.png.x").write_bytes(b"partial")
    augment("--content", data, "--out", out, *TRAD)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generated_this_run"] == 1 and summary["images"] == 8
    assert outputs_of(out) == before                     # same seed -> same bytes
    assert not list(out.rglob(".tmp-*"))


def test_srad_method_writes_the_scale_series(tmp_path):
    data = make_busi(tmp_path / "data", per_class=1)
    out = tmp_path / "out"
    augment("--content", data, "--out", out, "--method", "srad", "--size", "32",
            "--per-image", "3", "--no-srad")
    rows = read_manifest(out / "manifest.jsonl")
    assert sorted(r["params"]["scale"] for r in rows) == [1, 1, 2, 2, 3, 3]
    # Later scales are smoother: the speckle index falls along the series.
    by_content = {}
    for r in rows:
        img = cv2.imread(str(out / r["output"]), cv2.IMREAD_UNCHANGED).astype(float)
        by_content.setdefault(r["content"], {})[r["params"]["scale"]] = img.std()
    for stds in by_content.values():
        assert stds[3] < stds[1]


@pytest.mark.parametrize("case", ["corrupt", "empty", "mask_size", "out_inside", "missing"])
def test_bad_input_gives_one_clear_line_and_keeps_outputs(tmp_path, case):
    data = make_busi(tmp_path / "data", per_class=1)
    out = tmp_path / "out"
    augment("--content", data, "--out", out, *TRAD)
    kept = outputs_of(out)
    args = ["--content", data, "--out", out, *TRAD, "--per-image", "3"]
    if case == "corrupt":
        bad = data / "benign" / "broken.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
        needle = "broken.png"
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        args[1] = tmp_path / "empty"
        needle = "empty"
    elif case == "mask_size":
        cv2.imwrite(str(data / "malignant" / "malignant_0_mask.png"), np.zeros((7, 9), np.uint8))
        needle = "malignant_0_mask.png"
    elif case == "out_inside":
        args[3] = data / "aug"
        needle = "--out"
    else:
        args[1] = tmp_path / "nope"
        needle = "nope"
    proc = augment(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 3, proc.stderr
    for rel, data_bytes in kept.items():                 # nothing already written is lost
        assert (out / rel).read_bytes() == data_bytes


# --------------------------------------------------------------------------------------------
# NST through the CLI (tiny: 32x32, few iterations, random weights, a small relevance model)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_classifier(tmp_path_factory) -> Path:
    """A small Keras classifier (conv + BN + residual + GAP + dense) saved as .h5."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((None, None, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU()(x)
    y = tf.keras.layers.Conv2D(8, 3, padding="same")(x)
    y = tf.keras.layers.BatchNormalization()(y)
    x = tf.keras.layers.ReLU()(tf.keras.layers.Add()([x, y]))
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(2, activation="softmax")(x)
    model = tf.keras.Model(inp, out)
    path = tmp_path_factory.mktemp("clf") / "clf.h5"
    model.save(path)
    return path


def nst_args(data, out, clf, *extra):
    return ("--content", data, "--out", out, "--method", "nst", "--size", "32",
            "--per-image", "1", "--iterations", "20", "--weights", "none", "--batch-size", "2",
            "--n-styles", "2", "--relevance-model", clf, "--relevance-weights", "none",
            "--seed", "5", *extra)


def test_nst_end_to_end_manifest_has_losses_relevance_and_heatmaps(tmp_path, small_classifier):
    data = make_busi(tmp_path / "data", per_class=2)
    out = tmp_path / "out"
    augment(*nst_args(data, out, small_classifier))
    rows = read_manifest(out / "manifest.jsonl")
    assert len(rows) == 4
    for row in rows:
        assert {"styles", "losses", "iterations", "relevance", "heatmap"} <= set(row)
        assert len(row["styles"]) == 2 and row["content"] not in row["styles"]
        assert 1 <= row["iterations"] <= 20
        assert row["losses"]["final"]["style"] < row["losses"]["initial"]["style"]
        assert (out / row["heatmap"]).is_file() and Path(row["relevance"]).is_file()
        assert cv2.imread(str(out / row["output"]), cv2.IMREAD_UNCHANGED).shape == (32, 32)
        assert 0.0 <= row["relevance_mass_in_mask"] <= 1.0  # every row here has a mask
    # Relevance maps are cached: a second run into a new folder reuses them.
    cache_files = sorted((out / "cache").rglob("*.npy"))
    assert len(cache_files) == 4
    out2 = tmp_path / "out2"
    proc = augment(*nst_args(data, out2, small_classifier, "--cache", out / "cache"))
    assert sorted((out / "cache").rglob("*.npy")) == cache_files
    assert outputs_of(out2)["images/benign/benign_0__nst000.png"] == \
        outputs_of(out)["images/benign/benign_0__nst000.png"]
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------------------------
# Horovod: np=2 gives the same outputs as one process; kill -9 of a rank, then resume.
# --------------------------------------------------------------------------------------------
def hvd_augment(horovodrun, np_, *args, timeout=900):
    cmd = [horovodrun, "-np", str(np_), "--gloo", sys.executable, "-m", "tf_usaug.augment",
           "--no-progress", "--threads", "1", *map(str, args)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.hvd
def test_two_ranks_produce_the_same_outputs_as_one(tmp_path, horovodrun, small_classifier):
    data = make_busi(tmp_path / "data", per_class=2)
    one, two = tmp_path / "np1", tmp_path / "np2"
    args = nst_args(data, one, small_classifier)
    augment(*args, "--threads", "1")
    proc = hvd_augment(horovodrun, 2, *nst_args(data, two, small_classifier))
    a, b = outputs_of(one), outputs_of(two)
    assert a.keys() == b.keys() and len(a) >= 8
    assert a == b                                       # byte-identical, whatever the ranks
    # a small job: one relevance child on the node computed the maps of both ranks
    text = proc.stdout + proc.stderr
    assert text.count("wrote 4 relevance maps") == 1 and "wrote 2 relevance maps" not in text
    assert "one child per node for the job's 4" in text
    rows = read_manifest(two / "manifest.jsonl")
    assert {r["rank"] for r in rows} == {0, 1}
    summary = json.loads((two / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["images"] == 4
    assert [s["rank"] for s in summary["per_rank"]] == [0, 1]
    assert all(s["busy_seconds"] > 0 for s in summary["per_rank"])


def _rank_pids(rank: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            env = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"tf_usaug.augment" in cmd and f"HOROVOD_RANK={rank}\x00".encode() in env:
            pids.append(int(proc.name))
    return pids


@pytest.mark.hvd
def test_kill_one_rank_then_rerun_completes_every_item_once(tmp_path, horovodrun):
    data = make_busi(tmp_path / "data", per_class=4, size=32)
    out = tmp_path / "out"
    n_items = 8 * 3
    args = ["--content", data, "--out", out, "--method", "nst", "--no-relevance",
            "--weights", "none", "--size", "32", "--iterations", "40", "--per-image", "3",
            "--batch-size", "1", "--n-styles", "2", "--seed", "1"]
    cmd = [horovodrun, "-np", "2", "--gloo", sys.executable, "-m", "tf_usaug.augment",
           "--no-progress", "--threads", "1", *map(str, args)]
    launcher = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(out.glob("records/*/*.json"))) < 4:
        time.sleep(0.2)
    victims = _rank_pids(1)
    assert victims, "rank 1 not found"
    os.kill(victims[0], signal.SIGKILL)
    try:
        launcher.wait(timeout=120)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    done_before = {p: p.stat().st_mtime_ns for p in out.glob("records/*/*.json")}
    assert 0 < len(done_before) < n_items
    assert not (out / "manifest.jsonl").exists()

    hvd_augment(horovodrun, 2, *args)
    rows = read_manifest(out / "manifest.jsonl")
    assert len(rows) == n_items and len({r["output"] for r in rows}) == n_items
    assert not list(out.rglob(".tmp-*"))
    for p, mtime in done_before.items():                # finished items were not redone
        assert p.stat().st_mtime_ns == mtime
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["generated_this_run"] == n_items - len(done_before)
    # every image is a complete PNG
    for r in rows:
        assert cv2.imread(str(out / r["output"]), cv2.IMREAD_UNCHANGED) is not None


# --------------------------------------------------------------------------------------------
# Bad input on the NST path and bad arguments: one line, exit 2, before any work
# --------------------------------------------------------------------------------------------
def test_nst_corrupt_content_is_one_clear_error_before_any_model(tmp_path, small_classifier):
    data = make_busi(tmp_path / "data", per_class=1)
    (data / "benign" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    proc = augment(*nst_args(data, tmp_path / "out", small_classifier), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "1 of 3 input files cannot be used" in errors[0], proc.stderr
    listed = [line for line in proc.stderr.splitlines() if "broken.png" in line]
    assert len(listed) == 1 and "not a readable PNG image" in listed[0]
    assert "relevance maps" not in proc.stderr        # stopped before the relevance stage


@pytest.mark.parametrize("flags,needle", [
    (["--srad-scale", "0"], "--no-srad"),
    (["--n-styles", "0"], "--n-styles"),
    (["--threads", "0"], "--threads"),
    (["--method", "nst", "--size", "16"], "--no-relevance"),
    (["--method", "nst", "--weights", "WEIGHTS"], "--relevance-weights"),
])
def test_bad_arguments_are_one_clear_line(tmp_path, flags, needle):
    weights = tmp_path / "backbone_notop.h5"
    weights.write_bytes(b"not really weights")
    flags = [str(weights) if f == "WEIGHTS" else f for f in flags]
    proc = augment("--content", make_busi(tmp_path / "data", per_class=1), "--out",
                   tmp_path / "out", *flags, check=False)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_every_item_gets_the_same_number_of_style_references(tmp_path):
    from tf_usaug.pipeline.config import AugmentConfig
    from tf_usaug.pipeline.plan import plan_items
    from tf_usaug.data.datasets import discover

    data = make_busi(tmp_path / "data", per_class=2)
    contents = discover(data)
    # a two-image pool that holds one content image: that item has one candidate only
    pool = [contents[0].image, contents[1].image]
    items = plan_items(AugmentConfig(content=data, method="nst", n_styles=2, per_image=2,
                                     style_pool="any"),
                       contents, pool)
    assert {len(it.styles) for it in items} == {1}
    assert all(it.sample.image not in it.styles for it in items)
    items = plan_items(AugmentConfig(content=data, method="nst", n_styles=2, per_image=2,
                                     style_pool="any"),
                       contents, [c.image for c in contents])
    assert {len(it.styles) for it in items} == {2}
