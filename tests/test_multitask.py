"""The multitask trainer and its ablation end to end (paper 000): the run folder, the loss
going down, MaskAug switching on after its warm-up, resume after kill -9 ending with the
uninterrupted weights, refused reruns and one-line errors; the evaluation's splits and its
report (the full ablation CLI is a slow test)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DEMO, REPO, kill_then_resume, run_module
from tf_usaug import evaluate, train

STYLES = DEMO / "benign"  # stands in for another source's references
RUN_ARGS = ("--size", "32", "--epochs", "4", "--filters", "4", "8", "8", "8",
            "--head-channels", "8", "--feataug", "--mixstyle", "--maskaug",
            "--maskaug-warmup", "1", "--maskaug-p", "1", "--wct-steps", "10", "--lr", "3e-3",
            "--threads", "2")


def one_error_line(rc: int, err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert rc == 2 and "Traceback" not in err and lines[-1].startswith("error: "), (rc, err)
    return lines[-1]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mt") / "run"
    proc = run_module("tf_usaug.train", "multitask", "--data", DEMO, "--styles", STYLES,
                      "--out", out, *RUN_ARGS)
    return out, proc


def test_run_folder_metrics_and_model(cli_run):
    from tf_usaug.data.datasets import discover, load_sample
    from tf_usaug.models.multitask import load_multitask_run, predict

    out, proc = cli_run
    for name in ("model.keras", "multitask.json", "metrics.json", "training_curves.png",
                 "run.json", "checkpoints/state.json", "checkpoints/wct.index"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").iterdir())
    metrics = json.loads((out / "metrics.json").read_text())
    history = metrics["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert metrics["train_images"] + metrics["val_images"] == 32
    assert metrics["val_images"] == 6  # 20 % of each class, rounded
    # a few steps lower the loss (eq. 2)
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(abs(r["loss"] - (r["seg_ce"] + r["dice"] + r["cls_ce"])) < 1e-4 for r in history)
    # MaskAug only after its warm-up epoch; MixStyleAug takes the other images
    assert history[0]["maskaug_images"] == 0 and history[0]["mixstyle_images"] == 32
    assert all(r["maskaug_images"] + r["mixstyle_images"] == 32 for r in history)
    lrs = [r["lr"] for r in history]
    assert lrs[0] == pytest.approx(3e-3) and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert metrics["wct"]["last_loss"] < metrics["wct"]["first_loss"]
    info = json.loads((out / "multitask.json").read_text())
    assert info["class_names"] == ["benign", "malignant"] and info["feataug"]
    run = load_multitask_run(out)
    images = np.stack([load_sample(s, 32)[0] for s in discover(DEMO)[:3]])
    masks, scores = predict(run, images)
    assert masks.shape == (3, 32, 32) and scores.shape == (3,)
    assert np.all((masks >= 0) & (masks <= 1)) and np.all((scores > 0) & (scores < 1))
    again, _ = predict(run, images)
    np.testing.assert_array_equal(again, masks)  # FeatAug is off at inference
    assert "epoch 4/4" in proc.stderr and "==> wrote" in proc.stderr


def test_resume_after_kill_ends_with_the_uninterrupted_weights(cli_run, tmp_path, capsys):
    from tf_usaug.models.multitask import load_multitask_run

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tf_usaug.train", "multitask", "--data", str(DEMO),
           "--styles", str(STYLES), "--out", str(out), *RUN_ARGS]
    stopped, _ = kill_then_resume(cmd, "epoch", 2, capsys, "model.keras")
    assert 2 <= stopped["epoch"] < 4

    ref_out, _ = cli_run
    ref, got = load_multitask_run(ref_out).model, load_multitask_run(out).model
    for a, b in zip(ref.get_weights(), got.get_weights()):
        np.testing.assert_array_equal(a, b)  # bit for bit: FeatAug streams, WCT, AdamW
    strip = lambda run: [{k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
                         for r in json.loads((run / "metrics.json").read_text())["history"]]
    assert strip(out) == strip(ref_out)
    other = run_module("tf_usaug.train", *cmd[3:-6], "--maskaug-warmup", "2", "--maskaug-p",
                       "1", "--wct-steps", "10", "--lr", "3e-3", check=False)
    assert other.returncode == 2 and "other settings" in other.stderr


def _write_png(path: Path, image: np.ndarray) -> None:
    from tf_usaug.files import write_png

    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, image)


def test_bad_input_one_line_exit_2(tmp_path, capsys):
    data = tmp_path / "data"
    for label in ("benign", "malignant"):
        for i in range(3):
            _write_png(data / label / f"{label}_{i}.png", np.full((20, 20), 0.5, np.float32))
            if i:
                _write_png(data / label / f"{label}_{i}_mask.png", np.ones((20, 20), np.float32))
    out = tmp_path / "run"
    rc = train.main(["multitask", "--data", str(data), "--out", str(out), "--size", "32"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()  # the error, then one line per further file
    assert rc == 2 and "Traceback" not in err and len(lines) == 2, err
    assert lines[0].startswith("error: ") and "benign_0.png" in lines[0]
    assert "no mask" in lines[0] and "1 more" in lines[0] and "malignant_0.png" in lines[1]
    for args, text in ((("--size", "40"), "multiple of 16"),
                       (("--mixstyle",), "--styles is required"),
                       (("--filters", "4", "0", "4", "4"), "four positive"),
                       (("--maskaug-p", "1.5"), "--maskaug-p"),
                       (("--resume", "--overwrite"), "give one of them")):
        rc = train.main(["multitask", "--data", str(DEMO), "--out", str(out), *args])
        assert text in one_error_line(rc, capsys.readouterr().err)
    assert not out.exists()
    one = tmp_path / "one"
    _write_png(one / "benign" / "a.png", np.full((20, 20), 0.5, np.float32))
    _write_png(one / "benign" / "a_mask.png", np.ones((20, 20), np.float32))
    rc = train.main(["multitask", "--data", str(one), "--out", str(out)])
    assert "exactly two classes" in one_error_line(rc, capsys.readouterr().err)


# ----------------------------------------------------------------------------- evaluation


def test_ablation_splits_are_disjoint_and_by_source_image():
    from tf_usaug.evaluation.devices import discover_devices
    from tf_usaug.evaluation.multitask.job import plan_seed

    devices = discover_devices(DEMO).devices
    plans = [plan_seed(devices, "l11-5v", ["l11-5v", "p4-2v"], s, 0.2, 0.25) for s in (0, 1)]
    for plan in plans:
        train = {s.image for s in plan["train"]}
        test_a = {s.image for s in plan["test"]["l11-5v"]}
        test_b = {s.image for s in plan["test"]["p4-2v"]}
        styles = {s.image for s in plan["styles"]}
        assert not train & test_a and not styles & test_b and not styles & (train | test_a)
        assert train | test_a == {s.image for s in devices["l11-5v"]}
        assert styles | test_b == {s.image for s in devices["p4-2v"]}
        assert len(test_a) == 4 and len(styles) == 4  # 20 % / 25 % of 16, per class
    assert {s.key for s in plans[0]["train"]} != {s.key for s in plans[1]["train"]}


def test_aggregate_and_report_from_known_results(tmp_path):
    from tf_usaug.evaluation.multitask.config import ROWS
    from tf_usaug.evaluation.multitask.report import aggregate, write_report

    rows, devices = ["traditional", "mixstyle"], ["a", "b"]
    values = {"traditional": [0.5, 0.6, 0.7], "mixstyle": [0.6, 0.8, 0.75]}
    results = {r: {s: {"metrics": {d: {"dsc": values[r][s], "auroc": values[r][s] / 2}
                                   for d in devices}} for s in range(3)} for r in rows}
    summary = aggregate(results, rows, devices)
    s = summary["summary"]["mixstyle"]["b"]["dsc"]
    assert s["mean"] == pytest.approx(np.mean(values["mixstyle"]))
    assert s["sd"] == pytest.approx(np.std(values["mixstyle"], ddof=1))
    t = summary["tests"]["a"]["mixstyle"]["auroc"]
    assert t["mean_difference"] == pytest.approx(np.mean([0.05, 0.1, 0.025]))
    from scipy import stats

    assert t["t_test_p"] == pytest.approx(stats.ttest_rel([0.3, 0.4, 0.375],
                                                          [0.25, 0.3, 0.35]).pvalue)
    report = {"command": "cmd", "train_device": "a", "test_devices": devices, "rows": rows,
              "row_labels": {r: ROWS[r].label for r in rows}, "seeds": 3,
              "images": {"train": 10, "styles": 2, "test": {"a": 3, "b": 4}},
              **summary, "wall_seconds": 1.0}
    write_report(report, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| + MixStyleAug | 71.7 ± 10.4 |" in md
    html = (tmp_path / "report.html").read_text()
    assert 'src="plots/dsc.png"' in html and (tmp_path / "plots" / "auroc.png").is_file()
    assert json.loads((tmp_path / "report.json").read_text())["rows"] == rows


def test_evaluate_multitask_bad_arguments(tmp_path, capsys):
    for args, text in ((("--train-device", "nope"), "no such device"),
                       (("--train-device", "l11-5v", "--rows", "traditional,bogus"),
                        "unknown --rows")):
        rc = evaluate.main(["multitask", "--data", str(DEMO), "--out", str(tmp_path / "r"),
                            *args])
        assert text in one_error_line(rc, capsys.readouterr().err)


@pytest.mark.slow
def test_evaluate_multitask_end_to_end(tmp_path):
    out = tmp_path / "report"
    args = ("multitask", "--data", DEMO, "--train-device", "l11-5v", "--out", out,
            "--rows", "traditional,all", "--seeds", "2", "--size", "32", "--epochs", "2",
            "--filters", "4", "8", "8", "8", "--wct-steps", "10", "--maskaug-warmup", "1",
            "--threads", "2")
    run_module("tf_usaug.evaluate", *args)
    report = json.loads((out / "report.json").read_text())
    assert report["rows"] == ["traditional", "all"] and report["seed_list"] == [0, 1]
    for d in ("l11-5v", "p4-2v"):
        assert report["summary"]["all"][d]["dsc"]["n"] == 2
    assert (out / "report.html").is_file() and (out / "plots" / "dsc.png").is_file()
    again = run_module("tf_usaug.evaluate", *args)  # every result is kept: nothing retrained
    assert "train" not in "".join(l for l in again.stderr.splitlines() if l.startswith("==> seed"))


@pytest.mark.hvd
@pytest.mark.slow
def test_two_horovod_ranks_train_one_run(horovodrun, tmp_path):
    out = tmp_path / "run"
    args = list(RUN_ARGS[:-2])  # without --threads 2
    proc = subprocess.run([horovodrun, "-np", "2", "-H", "localhost:2", "--gloo", sys.executable,
                           "-m", "tf_usaug.train", "multitask", "--data", str(DEMO), "--styles",
                           str(STYLES), "--out", str(out), *args, "--threads", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert json.loads((out / "metrics.json").read_text())["ranks"] == 2
    # both ranks' shares counted: every one of the 32 batch positions per epoch
    assert all(r["maskaug_images"] + r["mixstyle_images"] == 32 for r in history)
    assert "(8 per rank x 2)" in proc.stdout + proc.stderr
