"""The benefit evaluation (tf_usaug.evaluation, ``python -m tf_usaug.evaluate benefit``).

On a tiny generated two-device set (devices A and B, 8 benign + 8 malignant each, 40 px, with
masks; B has coarser speckle and a darker background), 32 px, one epoch, two folds, arms
none and traditional: the splits are by source image (no child of a validation or test
original in any training set, the classifier's splits.json equal to the plan), the report
files exist and the HTML loads its plots by relative path, a rerun reuses every finished
arm x fold, a deleted result is recomputed to the same values, and bad input ends in one line
with exit code 2. Device discovery, the plan and the statistics are checked without
TensorFlow; the nst arms (`slow`) and a two-rank run (`hvd`, `slow`) end to end.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import DEMO, REPO, run_module
from tf_usaug import evaluate
from tf_usaug.data.datasets import discover, stratified_kfold
from tf_usaug.evaluation.devices import discover_devices, link_flat, link_samples
from tf_usaug.evaluation.folds import make_plan
from tf_usaug.evaluation.plots import roc_points
from tf_usaug.evaluation.statistics import (min_wilcoxon_p, paired_tests, power_note,
                                            summarize)
from tf_usaug.files import write_png
from tf_usaug.metrics.classification import roc_auc

PER_CLASS = 8
ARGS = ("--train-device", "a", "--test-devices", "A,B", "--arms", "none,traditional",
        "--folds", "2", "--size", "32", "--per-image", "1", "--epochs", "1", "--threads", "2",
        "--seed", "1")


def phantom(label: str, device: str, rng: np.random.Generator, size: int = 40):
    """A dark oval lesion (its mask) in speckle; malignant ones cast a shadow below it."""
    yy, xx = np.mgrid[:size, :size] / size
    cy, cx = rng.uniform(0.3, 0.45), rng.uniform(0.35, 0.65)
    noise = rng.standard_normal((size, size))
    if device == "B":  # coarser speckle, darker
        noise = (noise + np.roll(noise, 1, 1) + np.roll(noise, -1, 1)) / 2
    image = np.clip((0.55 if device == "A" else 0.45) + 0.15 * noise, 0, 1)
    mask = ((yy - cy) / 0.12) ** 2 + ((xx - cx) / 0.18) ** 2 < 1
    image[mask] *= 0.3
    if label == "malignant":
        image[(yy > cy + 0.1) & (np.abs(xx - cx) < 0.12)] *= 0.4
    return image.astype(np.float32), mask


def make_devices(root: Path, layout: str = "folders", per_class: int = PER_CLASS) -> Path:
    rng = np.random.default_rng(0)
    for device in ("A", "B"):
        for label in ("benign", "malignant"):
            for i in range(per_class):
                image, mask = phantom(label, device, rng)
                base = (root / device / label / f"{label}_{i:02d}" if layout == "folders"
                        else root / label / f"{device}_{label}_{i:02d}")
                write_png(f"{base}.png", image)
                write_png(f"{base}_mask.png", mask)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_devices(tmp_path_factory.mktemp("bench") / "bench")


@pytest.fixture(scope="module")
def evaluation(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("benefit") / "report"
    proc = run_module("tf_usaug.evaluate", "benefit", "--data", data, "--out", out, *ARGS)
    return out, proc


def one_error_line(rc: int, err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), (rc, err)
    return lines[0]


# ----------------------------------------------------------------------------- end to end


def test_report_files_exist_and_the_html_loads_its_images_by_relative_path(evaluation):
    out, proc = evaluation
    for name in ("report.json", "report.md", "report.html", "run.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["command"].startswith("python -m tf_usaug.evaluate benefit --data ")
    assert list(report["arms"]) == ["none", "traditional"]
    assert list(report["test_sets"]) == ["in-domain", "B"]
    for arm in report["arms"]:
        for test_set in report["test_sets"]:
            acc = report["metrics"][arm][test_set]["accuracy"]
            assert acc["n"] == 2 and 0 <= acc["mean"] <= 1 and acc["sd"] is not None
    t = report["tests"]["in-domain"]["none"]["traditional"]["accuracy"]
    assert {"t_test_p", "wilcoxon_p", "mean_difference", "note"} <= set(t)
    assert "little power" in t["note"]
    lp = report["transplant"]["traditional"]["label_preservation"]
    assert lp["n"] == 2 and 0 <= lp["mean"] <= 1
    assert report["transplant"]["traditional"]["cnr_relative_change"]["n"] == 2
    html = (out / "report.html").read_text()
    sources = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(sources) == 4  # metric bars and ROC curves of both test sets
    for src in sources:
        assert not src.startswith(("/", "http", "file:")) and (out / src).is_file(), src
    assert "<script" not in html and "http://" not in html and "https://" not in html
    md = (out / "report.md").read_text()
    assert "| none |" in md and "| traditional |" in md and "](plots/" in md
    stages = [line for line in proc.stderr.splitlines() if line.startswith("==>")]
    assert stages[0].startswith("==> data:") and stages[-1].startswith("==> report:")
    assert not any("epoch 1/1" in line for line in proc.stderr.splitlines())  # quiet library


def test_splits_are_by_source_and_no_child_of_a_test_original_is_trained_on(evaluation, data):
    out, _ = evaluation
    plan = json.loads((out / "work" / "plan.json").read_text())
    originals = discover(data / "A")
    expected = stratified_kfold(originals, 2, 1)  # by source image, before augmenting
    tests = [set(f["test"]) for f in plan["folds"]]
    assert tests == [{s.key for s in f["test"]} for f in expected]
    assert set.union(*tests) == {s.key for s in originals} and not tests[0] & tests[1]
    real = {os.path.realpath(s.image): s.key for s in originals}
    for fold in plan["folds"]:
        i, train = fold["index"], set(fold["train"])
        assert not train & (set(fold["val"]) | set(fold["test"]))
        rows = [json.loads(line) for line in
                (out / f"work/sets/traditional/fold{i}/manifest.jsonl").read_text().splitlines()]
        parents = {real[os.path.realpath(r["content"])] for r in rows}
        assert parents == train  # every training original's child, nothing else
        for r in rows:
            assert (out / f"work/sets/traditional/fold{i}" / r["output"]).is_file()
        for arm in ("none", "traditional"):
            splits = json.loads((out / f"work/runs/{arm}/fold{i}/splits.json").read_text())
            assert (set(splits["train"]), set(splits["val"]), set(splits["test"])) == \
                (train, set(fold["val"]), set(fold["test"]))
            if arm == "traditional":
                assert splits["augmented"] == {"added": len(rows), "dropped_val": 0,
                                               "dropped_test": 0, "unknown_parent": 0}
    # unseen device: style pool and test set disjoint, the pool never tested
    pool, unseen = set(plan["style_pool"]["B"]), set(plan["unseen"]["B"])
    assert pool and unseen and not pool & unseen and len(pool) + len(unseen) == 2 * PER_CLASS
    result = json.loads((out / "work/results/none/fold0.json").read_text())
    assert set(result["predictions"]["B"]["keys"]) == unseen
    assert set(result["predictions"]["in-domain"]["keys"]) == set(plan["folds"][0]["test"])


def test_resume_reuses_finished_results_and_recomputes_a_missing_one(evaluation, data):
    out, _ = evaluation
    results = sorted((out / "work" / "results").rglob("*.json"))
    assert len(results) == 4
    before = {p: p.read_bytes() for p in results}
    proc = run_module("tf_usaug.evaluate", "benefit", "--data", data, "--out", out, *ARGS)
    assert "5 units (5 done, reused)" in proc.stderr
    assert "==> none fold" not in proc.stderr and "==> generate" not in proc.stderr
    assert {p: p.read_bytes() for p in results} == before
    gone = out / "work/results/traditional/fold1.json"
    old = json.loads(gone.read_text())
    gone.unlink()
    proc = run_module("tf_usaug.evaluate", "benefit", "--data", data, "--out", out, *ARGS)
    assert "5 units (4 done, reused)" in proc.stderr
    assert "==> traditional fold 2/2" in proc.stderr and "==> none fold" not in proc.stderr
    new = json.loads(gone.read_text())
    assert new["metrics"] == old["metrics"] and new["predictions"] == old["predictions"]
    assert all(p.read_bytes() == b for p, b in before.items() if p != gone)
    # other settings are refused, naming them
    proc = run_module("tf_usaug.evaluate", "benefit", "--data", data, "--out", out, *ARGS,
                      "--per-image", "2", check=False)
    assert "per_image 1 -> 2" in one_error_line(proc.returncode, proc.stderr)


GAN_ARGS = [*ARGS[:ARGS.index("--arms")], "--folds", "2", "--size", "32", "--per-image", "1",
            "--epochs", "1", "--threads", "2", "--seed", "1", "--arms", "gan", "--gan", "wgan",
            "--gan-preset", "tiny", "--gan-steps", "2"]


@pytest.fixture(scope="module")
def gan_evaluation(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("benefit_gan") / "report"
    run_module("tf_usaug.evaluate", "benefit", "--data", data, "--out", out, *GAN_ARGS)
    return out


def test_gan_arm_trains_each_folds_gans_on_its_training_originals_only(gan_evaluation):
    """``--arms gan``: per fold one tiny wgan per class on the fold's training originals; its
    images are children of those originals with their labels."""
    out = gan_evaluation
    report = json.loads((out / "report.json").read_text())
    assert list(report["arms"]) == ["none", "gan"]
    assert report["arms"]["gan"] == {**report["arms"]["gan"], "gan": "wgan",
                                     "gan_preset": "tiny", "gan_steps": 2}
    assert 0 <= report["transplant"]["gan"]["label_preservation"]["mean"] <= 1
    for fold in (0, 1):
        train = set(report["plan"]["folds"][fold]["train"])
        run = out / f"work/gan/fold{fold}"
        info = json.loads((run / "gan.json").read_text())
        assert info["per_class"] and sorted(info["runs"]) == ["benign", "malignant"]
        for label in ("benign", "malignant"):
            sub = json.loads((run / label / "gan.json").read_text())
            assert sub["steps"] == 2 and sub["size"] == 32
            assert sub["images"] == sum(k.startswith(label + "/") for k in train)
        rows = [json.loads(line) for line in (out / f"work/aug/gan/fold{fold}/manifest.jsonl")
                .read_text().splitlines()]
        parents = {Path(r["parent"]).parent.name + "/" + Path(r["parent"]).stem for r in rows}
        assert parents == train and len(rows) == len(train)  # no val or test original
        assert all(r["label"] == Path(r["parent"]).parent.name for r in rows)


@pytest.mark.slow
def test_other_gan_settings_retrain_the_gans_and_keep_the_other_arms(gan_evaluation, data):
    out = gan_evaluation
    none = {p: p.read_bytes() for p in (out / "work/results/none").glob("*.json")}
    args = [*GAN_ARGS[:-1], "3"]
    proc = run_module("tf_usaug.evaluate", "benefit", "--data", data, "--out", out, *args)
    assert "4 units (2 done, reused)" in proc.stderr and "==> gan fold 1/2" in proc.stderr
    assert {p: p.read_bytes() for p in none} == none
    sub = json.loads((out / "work/gan/fold0/benign/gan.json").read_text())
    assert sub["steps"] == 3
    assert json.loads((out / "report.json").read_text())["arms"]["gan"]["gan_steps"] == 3


@pytest.mark.parametrize("change, message", [
    (("--train-device", "C"), "--train-device C: no such device"),
    (("--test-devices", "A,Z"), "--test-devices Z: no such device"),
    (("--arms", "none,magic"), "unknown arm 'magic'"),
    (("--arms", "gan", "--gan-steps", "0"), "--gan-steps must be a whole number >= 1"),
    (("--folds", "9"), "--folds 9 is too many"),
    (("--folds", "1"), "--folds must be a whole number >= 2"),
    (("--test-devices", "A", "--arms", "nst"), "add one to --test-devices"),
    (("--per-image", "9", "--arms", "srad"), "at most 8 outputs per image"),
    (("--style-fraction", "1.5"), "--style-fraction must lie strictly between 0 and 1"),
])
def test_bad_input_is_one_line_and_exit_2(data, tmp_path, capsys, change, message):
    args = dict(zip(ARGS[::2], ARGS[1::2]))
    args.update(zip(change[::2], change[1::2]))
    argv = ["benefit", "--data", str(data), "--out", str(tmp_path / "r"),
            *(x for kv in args.items() for x in kv)]
    rc = evaluate.main(argv)
    line = one_error_line(rc, capsys.readouterr().err)
    assert message in line, line
    assert not (tmp_path / "r").exists()  # nothing written


def test_out_inside_data_and_a_bad_layout_are_refused(data, tmp_path, capsys):
    rc = evaluate.main(["benefit", "--data", str(data), "--out", str(data / "rep"),
                        "--train-device", "A"])
    assert "lies inside --data" in one_error_line(rc, capsys.readouterr().err)
    flat = tmp_path / "flat"
    write_png(flat / "x.png", np.zeros((8, 8), np.float32))
    rc = evaluate.main(["benefit", "--data", str(flat), "--out", str(tmp_path / "r"),
                        "--train-device", "A"])
    assert "holds images at the top level" in one_error_line(rc, capsys.readouterr().err)


# ----------------------------------------------------------------------------- pieces


def test_devices_in_both_layouts_and_links_keep_the_keys(data, tmp_path):
    folders = discover_devices(data)
    assert folders.layout == "folders" and list(folders.devices) == ["A", "B"]
    assert folders.resolve("b", "--x") == "B"
    demo = discover_devices(DEMO)
    assert demo.layout == "prefix" and list(demo.devices) == ["l11-5v", "p4-2v"]
    assert demo.resolve("L11-5v", "--train-device") == "l11-5v"
    assert all(len(s) == 16 and all(x.masks for x in s) for s in demo.devices.values())
    linked = link_samples(demo.devices["l11-5v"], tmp_path / "a")
    again = discover(linked)
    assert [(s.key, s.label, len(s.masks)) for s in again] == \
        [(s.key, s.label, len(s.masks)) for s in demo.devices["l11-5v"]]
    link_samples(demo.devices["l11-5v"], tmp_path / "a")  # a rerun keeps the links
    flat = link_flat(demo.devices["p4-2v"][:3], tmp_path / "styles", prefix="p4-2v__")
    assert all(s.label is None and not s.masks for s in discover(flat))
    prefixed = make_devices(tmp_path / "prefixed", layout="prefix", per_class=2)
    assert {d: len(s) for d, s in discover_devices(prefixed).devices.items()} == {"A": 4, "B": 4}
    write_png(prefixed / "benign" / "nodevice.png", np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="does not start with <device>_benign_"):
        discover_devices(prefixed)


def test_plan_holds_out_a_stratified_style_pool_never_tested(data):
    devices = discover_devices(data)
    plan = make_plan(devices.devices, "A", ["A", "B"], 4, 0, 0.25, data / "A")
    pool, test = plan.style_pool["B"], plan.unseen["B"]
    assert len(pool) == 4 and {s.label for s in pool} == {"benign", "malignant"}
    assert not {s.key for s in pool} & {s.key for s in test} and len(test) == 12
    for fold in plan.folds:  # every test fold holds every class; train/val/test disjoint
        assert {plan.samples[k].label for k in fold.test} == {"benign", "malignant"}
        assert len(set(fold.train) | set(fold.val) | set(fold.test)) == 2 * PER_CLASS


def test_statistics_by_hand():
    s = summarize([0.5, 0.7, None, 0.9])
    assert s["mean"] == pytest.approx(0.7) and s["sd"] == pytest.approx(0.2) and s["n"] == 3
    assert summarize([0.5])["sd"] is None
    from scipy import stats

    # differences 0.1, 0.2, 0.3: t = 0.2 / (0.1 / sqrt 3) = 3.464 on 2 df; Wilcoxon exact:
    # all three positive, p = 2 / 2^3
    t = paired_tests([0.6, 0.7, 0.8], [0.5, 0.5, 0.5])
    assert t["mean_difference"] == pytest.approx(0.2)
    assert t["t_test_p"] == pytest.approx(2 * stats.t.sf(0.2 / (0.1 / np.sqrt(3)), 2))
    assert t["wilcoxon_p"] == pytest.approx(0.25)
    same = paired_tests([0.6, 0.6], [0.6, 0.6])
    assert same["t_test_p"] is None and same["wilcoxon_p"] is None
    assert "undefined" in same["note"]
    assert paired_tests([0.6, None], [0.5, 0.4])["n"] == 1
    assert min_wilcoxon_p(5) == 0.0625 and "0.0625" in power_note(5)


def test_roc_points_give_the_rank_auc():
    rng = np.random.default_rng(3)
    labels = rng.random(40) < 0.5
    scores = np.round(rng.random(40), 1)  # many ties
    fpr, tpr = roc_points(labels, scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.trapz(tpr, fpr) == pytest.approx(roc_auc(labels, scores))


# ----------------------------------------------------------------------------- slow ones


@pytest.mark.slow
def test_nst_arms_end_to_end_with_relevance_of_each_folds_own_classifier(tmp_path):
    """nst and nst-no-lrp at 32 px, 2 iterations, on the bundled demo data (probes as devices)."""
    out = tmp_path / "report"
    proc = run_module("tf_usaug.evaluate", "benefit", "--data", DEMO, "--out", out,
                      "--train-device", "L11-5v", "--arms", "nst,nst-no-lrp", "--folds", "2",
                      "--size", "32", "--per-image", "1", "--epochs", "1", "--iterations", "2",
                      "--nst-weights", "none", "--n-styles", "1", "--threads", "2")
    report = json.loads((out / "report.json").read_text())
    assert list(report["arms"]) == ["none", "nst", "nst-no-lrp"]
    assert list(report["test_sets"]) == ["in-domain", "p4-2v"]
    mass = report["transplant"]["nst"]["relevance_mass"]
    assert mass["n"] == 2 and 0 <= mass["mean"] <= 1
    assert "relevance_mass" not in report["transplant"]["nst-no-lrp"]
    pool = {os.path.realpath(p) for p in (out / "work/styles").iterdir()}
    for fold in (0, 1):
        rows = [json.loads(line) for line in (out / f"work/aug/nst/fold{fold}/manifest.jsonl")
                .read_text().splitlines()]
        train = set(report["plan"]["folds"][fold]["train"])
        assert {Path(r["content"]).parent.name + "/" + Path(r["content"]).stem
                for r in rows} == train  # nst of fold i: fold i's training originals only
        for r in rows:
            assert r["relevance"] and {os.path.realpath(s) for s in r["styles"]} <= pool
        run = json.loads((out / f"work/aug/nst/fold{fold}/run.json").read_text())
        assert run["settings"]["relevance_model"].startswith("sha256:")
    tested = set(report["plan"]["unseen"]["p4-2v"])
    assert not tested & set(report["plan"]["style_pool"]["p4-2v"])
    assert "Traceback" not in proc.stderr


@pytest.mark.hvd
@pytest.mark.slow
def test_two_ranks_give_the_results_of_one(data, tmp_path, horovodrun):
    """Units sharded over two Horovod ranks: the same per-fold results as one process."""
    import subprocess
    import sys

    args = list(ARGS)
    args[args.index("--threads") + 1] = "1"  # one thread per rank on two cores, both runs
    one = tmp_path / "one"
    run_module("tf_usaug.evaluate", "benefit", "--data", data, "--out", one, *args)
    two = tmp_path / "two"
    proc = subprocess.run([horovodrun, "-np", "2", "-H", "localhost:2", "--gloo",
                           sys.executable, "-m", "tf_usaug.evaluate", "benefit", "--data",
                           str(data), "--out", str(two), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ranks = set()
    for path in sorted((one / "work/results").rglob("*.json")):
        a = json.loads(path.read_text())
        b = json.loads((two / path.relative_to(one)).read_text())
        assert a["metrics"] == b["metrics"] and a["predictions"] == b["predictions"], path
        ranks.add(b["rank"])
    assert ranks == {0, 1}
    report = json.loads((two / "report.json").read_text())
    assert report["timings"]["ranks"] == 2
