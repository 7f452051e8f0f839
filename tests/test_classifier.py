"""The task classifier (tf_usaug.models.classifier, ``python -m tf_usaug.train classifier``).

On a tiny generated BUSI-layout set (24 images, 32 px: a dark oval for "benign", an oval with
an acoustic shadow below it for "malignant") and a hand-built augmentation folder whose
manifest gives each original two children: splits by source image, the CLI end to end, exact
resume after kill -9, one-line errors, refused reruns, the networks and the training-state
rules against Keras's own callbacks, and a 2-rank Horovod run.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, kill_then_resume, run_module
from tf_usaug import train
from tf_usaug.data.datasets import discover, stratified_kfold
from tf_usaug.data.image_io import read_image
from tf_usaug.files import write_png
from tf_usaug.models.classifier import ClassifierConfig
from tf_usaug.models.classifier.checkpoint import (TrainingState, early_stopping_update,
                                                   plateau_update)
from tf_usaug.models.classifier.data import epoch_order, prepare_data
from tf_usaug.models.classifier.preprocessing import Preprocessing

SIZE = 32
# Shared by the end-to-end run and the resume test, so the first is the second's reference.
RUN_ARGS = ("--backbone", "small", "--size", str(SIZE), "--epochs", "8", "--batch-size", "8",
            "--threads", "2", "--seed", "3")


def synthetic_image(label: str, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """Speckle-like background with a dark oval; malignant ones cast a shadow below it."""
    yy, xx = np.mgrid[:size, :size] / size
    cy, cx = rng.uniform(0.25, 0.4), rng.uniform(0.3, 0.7)
    image = np.clip(0.55 + 0.15 * rng.standard_normal((size, size)), 0, 1)
    image[((yy - cy) / 0.1) ** 2 + ((xx - cx) / 0.16) ** 2 < 1] *= 0.25
    if label == "malignant":
        image[(yy > cy) & (np.abs(xx - cx) < 0.12)] *= 0.35
    return image.astype(np.float32)


def make_data(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for label in ("benign", "malignant"):
        for i in range(per_class):
            write_png(root / label / f"{label}_{i:02d}.png", synthetic_image(label, rng))
    return root


def make_augmented(folder: Path, data: Path, children: int = 2) -> Path:
    """An augmentation output folder by hand: ``children`` rows per original, their
    ``content`` absolute for benign and relative to the folder's parent for malignant, plus
    one row whose parent is not an original."""
    rows = []
    for sample in discover(data):
        content = str(sample.image) if sample.label == "benign" else \
            os.path.relpath(sample.image, folder.parent)
        for k in range(children):
            rel = f"images/{sample.key}_k{k}.png"
            image = read_image(sample.image)[0]
            write_png(folder / rel, np.fliplr(image) if k else image)
            rows.append({"output": rel, "content": content, "label": sample.label,
                         "mask": None})
    write_png(folder / "images/stranger.png", np.zeros((8, 8), np.float32))
    rows.append({"output": "images/stranger.png", "content": "/elsewhere/benign/x.png",
                 "label": "benign", "mask": None})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("classifier")
    data = make_data(root / "data")
    return data, make_augmented(root / "aug", data)


@pytest.fixture(scope="module")
def cli_run(dataset, tmp_path_factory):
    """One uninterrupted CLI run (with the augmented folder): (out, completed process)."""
    data, aug = dataset
    out = tmp_path_factory.mktemp("run") / "out"
    proc = run_module("tf_usaug.train", "classifier", "--data", data, "--augmented", aug,
                      "--out", out, *RUN_ARGS)
    return out, proc


def one_error_line(rc: int, stderr: str) -> str:
    """The one ``error:`` line of a failed run (stage lines before it are allowed)."""
    assert rc == 2, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), stderr
    assert all(line.startswith("==> ") for line in lines[:-1]), stderr
    return lines[-1]


def main_in_process(capsys, *args) -> str:
    """``python -m tf_usaug.train`` in this process (checks fail before TensorFlow runs)."""
    rc = train.main([str(a) for a in args])
    return one_error_line(rc, capsys.readouterr().err)


# ----------------------------------------------------------------------------- splits


def test_children_stay_in_the_split_of_their_source(dataset):
    data, aug = dataset
    split = prepare_data(ClassifierConfig(data=data, augmented=(aug,), seed=1).resolved())
    originals = {name: {e.source for e in getattr(split, name) if not e.augmented}
                 for name in ("train", "val", "test")}
    assert sum(map(len, originals.values())) == 24
    assert not (originals["train"] & originals["val"] or originals["train"] & originals["test"]
                or originals["val"] & originals["test"])
    children = [e for e in split.train if e.augmented]
    assert {e.source for e in children} == originals["train"]  # both path forms matched
    assert len(children) == 2 * len(originals["train"])
    assert all(not e.augmented for e in split.val + split.test)  # untouched originals only
    assert split.augmented == {"added": len(children), "dropped_val": 2 * len(split.val),
                               "dropped_test": 2 * len(split.test), "unknown_parent": 1}
    assert (len(originals["val"]), len(originals["test"])) == (4, 4)  # 70/15/15 of 2 x 12


def test_kfold_tests_one_fold_and_validates_on_the_rest(dataset):
    data, _ = dataset
    samples = discover(data)
    for fold in range(4):
        split = prepare_data(ClassifierConfig(data=data, folds=4, fold=fold).resolved())
        expected = {s.key for s in stratified_kfold(samples, 4, 0)[fold]["test"]}
        assert {e.source for e in split.test} == expected
        assert {e.source for e in split.val}.isdisjoint(expected)
        assert 2 <= len(split.val) <= 3 and {e.label for e in split.val} == {0, 1}  # 15 % of 18
        assert len(split.train) + len(split.val) + len(split.test) == 24


def test_epoch_order_is_a_function_of_seed_and_epoch():
    a = epoch_order(10, 4, seed=1, epoch=3)
    assert len(a) == 12 and sorted(a[:10]) == list(range(10)) and list(a[10:]) == list(a[:2])
    assert np.array_equal(a, epoch_order(10, 4, 1, 3))
    assert not np.array_equal(a, epoch_order(10, 4, 1, 4))


# ----------------------------------------------------------------------------- the CLI


def test_cli_end_to_end_writes_the_run_folder(cli_run, dataset):
    out, proc = cli_run
    for name in ("model.keras", "preprocessing.json", "metrics.json", "splits.json",
                 "confusion_matrix.png", "training_curves.png", "run.json"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    stages = [line for line in proc.stderr.splitlines() if line.startswith("==>")]
    assert [s.split(":")[0] for s in stages] == ["==> data", "==> model", "==> train",
                                                "==> evaluate", "==> wrote " + str(out)]
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    assert test["positive_class"] == "malignant" and test["n"] == 4
    for key in ("accuracy", "sensitivity", "specificity", "precision", "f1", "roc_auc"):
        assert 0.0 <= test[key] <= 1.0, key
    assert metrics["train_images"] == {"originals": 16, "augmented": 32}
    history = metrics["history"]
    assert history[-1]["loss"] < history[0]["loss"]  # it learns ...
    assert test["accuracy"] >= 0.75 and metrics["val"]["accuracy"] >= 0.75  # ... beyond chance
    splits = json.loads((out / "splits.json").read_text())
    assert splits["augmented"]["unknown_parent"] == 1 and len(splits["test"]) == 4


def test_run_folder_loads_and_predicts_like_the_run(cli_run, dataset):
    from tf_usaug.models.classifier import load_classifier_run, predict

    out, _ = cli_run
    run = load_classifier_run(out)
    assert run.preprocessing == Preprocessing.load(out / "preprocessing.json")
    assert run.preprocessing.class_names == ("benign", "malignant")
    splits = json.loads((out / "splits.json").read_text())
    data, _ = dataset
    images = [read_image(data / f"{key}.png")[0] for key in splits["test"]]  # 48 px originals
    probs = predict(run, images)
    assert probs.shape == (4, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    metrics = json.loads((out / "metrics.json").read_text())["test"]
    labels = [int(key.startswith("malignant")) for key in splits["test"]]
    assert np.mean(probs.argmax(1) == labels) == metrics["accuracy"]


def test_resume_after_kill_ends_with_the_uninterrupted_weights(cli_run, dataset, tmp_path,
                                                               capsys):
    import tensorflow as tf

    data, aug = dataset
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tf_usaug.train", "classifier", "--data", str(data),
           "--augmented", str(aug), "--out", str(out), *RUN_ARGS]
    stopped, _ = kill_then_resume(cmd, "epoch", 2, capsys, "model.keras")
    assert 2 <= stopped["epoch"] < 8

    ref_out, _ = cli_run
    ref = tf.keras.models.load_model(ref_out / "model.keras")
    got = tf.keras.models.load_model(out / "model.keras")
    for a, b in zip(ref.get_weights(), got.get_weights()):
        np.testing.assert_array_equal(a, b)

    def trace(run):
        m = json.loads((run / "metrics.json").read_text())
        return [{k: v for k, v in r.items() if k != "seconds"} for r in m["history"]], m["test"]

    assert trace(out) == trace(ref_out)  # losses, learning rates, epochs and test metrics
    in_process = [a for a in cmd[3:] if a not in ("--threads", "2")]  # keep pytest's pools
    assert train.main([*in_process, "--resume"]) == 0  # complete: nothing to do
    assert "is complete (8 epochs): nothing to do" in capsys.readouterr().err


def test_rerun_with_other_settings_is_refused_naming_them(cli_run, dataset, capsys):
    out, _ = cli_run
    data, aug = dataset
    before = (out / "metrics.json").read_bytes()
    line = main_in_process(capsys, "classifier", "--data", data, "--augmented", aug, "--out",
                           out, *RUN_ARGS[:-2], "--seed", "4", "--lr", "0.01")
    for needle in ("seed 3 -> 4", "learning_rate 0.001 -> 0.01", "--overwrite"):
        assert needle in line, line
    assert (out / "metrics.json").read_bytes() == before


def test_bad_input_is_one_line(tmp_path, dataset, capsys):
    data, _ = dataset
    flat = tmp_path / "flat"
    write_png(flat / "a.png", np.zeros((8, 8), np.float32))
    one_class = tmp_path / "one"
    write_png(one_class / "benign" / "a.png", np.zeros((8, 8), np.float32))
    out = tmp_path / "out"
    cases = [
        (("--data", flat), "have no label"),
        (("--data", one_class), "only one class (benign)"),
        (("--data", data, "--backbone", "vgg99"), "invalid choice: 'vgg99'"),
        (("--data", data, "--weights", tmp_path / "missing.h5"), "weights file not found"),
        (("--data", data, "--backbone", "small", "--weights", "imagenet"), "no ImageNet"),
        (("--data", data, "--folds", "4"), "--folds K and --fold I go together"),
        (("--data", data, "--folds", "4", "--fold", "4"), "--fold must be in [0, 3]"),
        (("--data", tmp_path / "nowhere"), "no such file or folder"),
        (("--data", data, "--augmented", flat), "no manifest.jsonl"),
        (("--data", data, "--resume", "--overwrite"), "give one of them"),
    ]
    assert "lies inside --data" in main_in_process(capsys, "classifier", "--data", data,
                                                   "--out", data / "run")
    for args, needle in cases:
        assert needle in main_in_process(capsys, "classifier", "--out", out, *args), args
    assert not out.exists()  # nothing written before the checks pass
    assert "the following arguments are required: MODEL" in main_in_process(capsys)


def test_library_api_trains_with_kfold(dataset, tmp_path):
    from tf_usaug.models.classifier import train_classifier

    data, _ = dataset
    result = train_classifier(ClassifierConfig(data=data, out=tmp_path / "run", backbone="small",
                                               size=SIZE, epochs=5, folds=3, fold=2))
    history = result.metrics["history"]
    assert result.epochs == len(history) and result.resumed_from == 0
    assert history[-1]["loss"] < history[0]["loss"]
    assert result.metrics["test"]["n"] == 8 and result.metrics["test"]["accuracy"] > 0.5
    assert json.loads((tmp_path / "run" / "splits.json").read_text())["fold"] == 2


# ----------------------------------------------------------------------------- networks


def test_networks_build_and_reload(tmp_path):
    import tensorflow as tf

    from tf_usaug.models.classifier.networks import build_classifier, reseed_random_layers

    model = build_classifier("small", 2, 32, "none", seed=5)
    x = np.random.default_rng(0).random((3, 32, 32, 1), np.float32)
    model.save(tmp_path / "m.keras")
    clone = tf.keras.models.load_model(tmp_path / "m.keras")  # built-in layers only
    np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), rtol=1e-6)
    reseed_random_layers(model, 7)
    first = model(x, training=True).numpy()
    reseed_random_layers(model, 7)
    np.testing.assert_array_equal(first, model(x, training=True).numpy())  # dropout masks


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet50", "efficientnetb2"])
def test_imagenet_backbones_build(backbone):
    from tf_usaug.models.classifier.networks import build_classifier

    model = build_classifier(backbone, 3, 32, "none")
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 3)
    assert model.layers[-1].name == "predictions"
    assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)


def test_preprocessing_matches_keras_and_round_trips(tmp_path):
    import tensorflow as tf

    grey = np.random.default_rng(1).random((2, 8, 8), np.float32)
    pre = Preprocessing.for_backbone("resnet50", "caffe", 8, ["a", "b", "c"])
    expected = tf.keras.applications.resnet50.preprocess_input(np.repeat(grey[..., None] * 255,
                                                                          3, axis=-1))
    np.testing.assert_allclose(pre.to_input(grey), expected, atol=1e-4)
    np.testing.assert_allclose(pre.tf_to_input(grey[..., None]).numpy(), expected, atol=1e-4)
    assert pre.positive_class is None and pre.channels == 3
    pre.save(tmp_path)
    assert Preprocessing.load(tmp_path) == pre
    assert pre.prepare([np.zeros((20, 30), np.float32)]).shape == (1, 8, 8, 3)


# ----------------------------------------------------------------------------- state rules


def keras_trace(callback_cls, losses, **kwargs):
    """Learning rates / stop flags of a Keras callback fed ``losses`` as val_loss."""
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.SGD(1.0), loss="mse")
    cb = callback_cls(monitor="val_loss", **kwargs)
    cb.set_model(model)
    cb.on_train_begin()
    trace = []
    for epoch, loss in enumerate(losses):
        cb.on_epoch_end(epoch, {"val_loss": loss})
        trace.append((float(tf.keras.backend.get_value(model.optimizer.learning_rate)),
                      bool(model.stop_training)))
    return trace


def test_plateau_and_early_stopping_follow_keras():
    import tensorflow as tf

    losses = [1.0, 0.9, 0.95, 0.9, 0.91, 0.92, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    state, lrs = TrainingState(learning_rate=1.0), []
    for loss in losses:
        lrs.append(plateau_update(state, loss, factor=0.1, patience=2, min_delta=1e-4,
                                  min_lr=1e-3))
    expected = keras_trace(tf.keras.callbacks.ReduceLROnPlateau, losses, factor=0.1,
                           patience=2, min_delta=1e-4, min_lr=1e-3)
    np.testing.assert_allclose(lrs, [lr for lr, _ in expected], rtol=1e-6)
    assert min(lrs) == pytest.approx(1e-3)

    state, stops = TrainingState(), []
    for loss in losses:
        state.epoch += 1
        stops.append(early_stopping_update(state, loss, patience=3)[1])
    expected = keras_trace(tf.keras.callbacks.EarlyStopping, losses, patience=3)
    first = stops.index(True)
    assert first == [s for _, s in expected].index(True) == 4  # 3 epochs without a new best
    assert state.best_epoch == 7 and state.early_best == 0.5


# ----------------------------------------------------------------------------- job scripts


def _script(path: str, *args: str, **env: str) -> list[str]:
    """Run a job script; returns the words of the command it launched (or printed)."""
    keep = {k: v for k, v in os.environ.items() if k not in (
        "NP", "HOSTS", "PYTHON", "HOROVODRUN", "EXTRA", "MODULE", "DRY_RUN", "JOB_CMD",
        "LAUNCHER", "OUT_DIR", "DATA_DIR", "AUGMENTED_DIRS", "BACKBONE", "JOB_ARGS")}
    proc = subprocess.run(["bash", str(REPO / path), *args], cwd=REPO, env={**keep, **env},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("+ ")]
    assert len(shown) == 1, proc.stdout + proc.stderr
    return shlex.split(shown[0][2:])


def test_job_scripts_build_the_classifier_command(tmp_path):
    words = _script("hvd_jobs/train_classifier.sh", "--data", "d", "--out", "a b", DRY_RUN="1",
                    NP="2", PYTHON="py", HOROVODRUN="hvdrun")
    assert words == ["hvdrun", "-np", "2", "-H", "localhost:2", "--gloo", "py", "-m",
                     "tf_usaug.train", "classifier", "--data", "d", "--out", "a b"]
    fake = tmp_path / "horovodrun"  # launches nothing; the script prints its command
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    env = dict(REPO_DIR=str(REPO), PYTHON=sys.executable, HOROVODRUN=str(fake), NP="2",
               HOSTS="localhost:2")
    words = _script("slurm/train_classifier.sbatch", **env, AUGMENTED_DIRS="a1 a2",
                    JOB_ARGS="--folds 5 --fold 1")
    assert words[words.index("-m"):] == [
        "-m", "tf_usaug.train", "classifier", "--data", "data/busi", "--backbone", "resnet50",
        "--augmented", "a1", "--augmented", "a2", "--folds", "5", "--fold", "1", "--out",
        "runs/classifier", "--resume"]  # a resubmitted job continues its run
    words = _script("slurm/train_classifier.sbatch", "--data", "x", "--overwrite", **env)
    assert words[-5:] == ["--data", "x", "--overwrite", "--out", "runs/classifier"]
    if shutil.which("shellcheck"):
        lint = subprocess.run(["shellcheck", "-x", "hvd_jobs/train_classifier.sh",
                               "slurm/train_classifier.sbatch"], cwd=REPO, capture_output=True,
                              text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr


# ----------------------------------------------------------------------------- Horovod


@pytest.mark.hvd
def test_two_ranks_train_and_only_rank0_writes(dataset, tmp_path, horovodrun):
    data, _ = dataset
    out = tmp_path / "out"
    env = dict(os.environ, HOROVOD_GLOO_TIMEOUT_SECONDS="120", PYTHONPATH=str(REPO))
    proc = subprocess.run([horovodrun, "-np", "2", "--gloo", "-H", "localhost:2",
                           sys.executable, "-m", "tf_usaug.train", "classifier", "--data",
                           str(data), "--out", str(out), "--backbone", "small", "--size",
                           str(SIZE), "--epochs", "2", "--threads", "1"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ranks"] == 2 and metrics["epochs_run"] == 2
    assert "global batch 8 (4 per rank x 2)" in proc.stdout + proc.stderr
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert "[1]<stderr>:==>" not in proc.stdout + proc.stderr  # stage lines from rank 0 only


# ----------------------------------------------------------------------------- relevance


def test_augment_explains_the_trained_run(cli_run, dataset, tmp_path):
    """``augment --relevance-model RUN``: the run's model, input mode and size; the cache key
    names the model file's bytes, so retraining gives new maps."""
    from tf_usaug.pipeline.config import AugmentConfig
    from tf_usaug.pipeline.methods import relevance_config
    from tf_usaug.xai.relevance import cache_key, classifier_run

    run, _ = cli_run
    data, _ = dataset
    assert classifier_run(run) == (run / "model.keras", "signed", SIZE)
    assert classifier_run(run / "model.keras") == (run / "model.keras", "signed", SIZE)
    assert classifier_run(data) is None
    cfg = relevance_config(AugmentConfig(relevance_model=str(run), size=64, seed=1))
    assert (cfg.model, cfg.preprocess, cfg.size) == (str(run / "model.keras"), "signed", SIZE)
    image = next(data.rglob("*.png"))
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    key = cache_key(image, cfg)
    assert cache_key(image, relevance_config(AugmentConfig(relevance_model=str(copy), size=64,
                                                           seed=1))) == key  # same bytes
    (copy / "model.keras").write_bytes((copy / "model.keras").read_bytes() + b"\0")
    assert cache_key(image, relevance_config(AugmentConfig(relevance_model=str(copy), size=64,
                                                           seed=1))) != key
    out = tmp_path / "out"
    proc = run_module("tf_usaug.augment", "--content", data, "--out", out, "--method", "nst",
                      "--size", "32", "--per-image", "1", "--iterations", "2", "--weights",
                      "none", "--n-styles", "1", "--relevance-model", run, "--seed", "2",
                      "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "RANDOM" not in proc.stderr
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert rows and all(Path(r["relevance"]).is_file() for r in rows)
    proc = run_module("tf_usaug.augment", "--content", data, "--out", tmp_path / "bad",
                      "--method", "nst", "--relevance-model", data, check=False)
    assert "not a classifier run" in one_error_line(proc.returncode, proc.stderr)


def test_random_relevance_classifier_is_seeded_and_named():
    from tf_usaug.xai.relevance import RelevanceConfig, model_identity

    a, b = RelevanceConfig(weights="none", seed=0), RelevanceConfig(weights="none", seed=1)
    assert model_identity(a) != model_identity(b) and "seed:0" in model_identity(a)
    assert model_identity(RelevanceConfig(weights="imagenet")) == "resnet50|imagenet"
    assert "--seed" in a.cli_args()
