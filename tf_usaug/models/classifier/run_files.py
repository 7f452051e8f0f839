"""The run folder of a classifier: what is written at the end, and how other tools load it.

    RUN/model.keras           the trained model (best validation epoch), built-in layers only
    RUN/preprocessing.json    grey image -> model input, class names (``preprocessing.py``)
    RUN/metrics.json          test (and validation) metrics, training summary
    RUN/splits.json           which originals went to train/val/test, augmented rows' fate
    RUN/confusion_matrix.png  test confusion matrix
    RUN/training_curves.png   loss and accuracy per epoch (train and validation)
    RUN/tensorboard/          TensorBoard event files (per epoch)
    RUN/checkpoints/          resume state (``checkpoint.py``)
    RUN/run.json              the settings (``tf_usaug.rundir``)

Example (a notebook, or the benefit report)::

    run = load_classifier_run("runs/busi_resnet50")
    probs = predict(run, [read_image(p)[0] for p in paths])   # [N, classes]
"""
from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from ...errors import InputError
from ...files import atomic_write_bytes, file_digest, write_json
from ...rundir import RunDir
from .. import run_common
from .checkpoint import read_state
from .config import ClassifierConfig
from .preprocessing import Preprocessing

MODEL_FILE = "model.keras"
METRICS_FILE = run_common.METRICS_FILE
SPLITS_FILE = "splits.json"
CONFUSION_FILE = "confusion_matrix.png"
CURVES_FILE = "training_curves.png"
TENSORBOARD_DIR = run_common.TENSORBOARD_DIR
RESULT_FILES = (MODEL_FILE, METRICS_FILE, CONFUSION_FILE, CURVES_FILE, "preprocessing.json",
                SPLITS_FILE)
JOB = "train-classifier"
#: Config fields that do not change the results, or enter run_settings in another form.
_NOT_SETTINGS = ("out", "resume", "overwrite", "threads", "verbose", "data", "augmented",
                 "weights")


class ClassifierRun(NamedTuple):
    """A trained classifier: ``model, preprocessing = load_classifier_run(path)``."""

    model: object  # keras.Model
    preprocessing: Preprocessing


# ----------------------------------------------------------------------------- the folder


def run_settings(cfg: ClassifierConfig, data) -> dict:
    """Everything that changes the results, JSON-normalised (compared with ``RUN/run.json``):
    the resolved config, the data (folders, and a fingerprint of the originals' names, labels
    and sizes and of the augmentation manifests) and the weights file's hash."""
    weights = cfg.weights
    if weights.lower() not in ("imagenet", "none"):
        weights = {"file": str(Path(weights).resolve()), "sha256": file_digest(weights)}
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_SETTINGS}
    values.update(data=str(Path(cfg.data).resolve()), weights=weights,
                  augmented=[str(Path(p).resolve()) for p in cfg.augmented],
                  data_fingerprint=data.fingerprint)
    return json.loads(json.dumps(values, default=str))


def take_run_dir(rundir: RunDir, cfg: ClassifierConfig, settings: dict, held):
    """Lock ``--out`` (for the life of ``held``), compare the settings with run.json, decide.

    Returns:
        ``(state, stored, note)``: the :class:`TrainingState` to resume from (None: start
        over), the stored metrics when the run is already complete, a line to log.

    Raises:
        OutputError: other settings without ``--overwrite``; a run there without
            ``--resume`` or ``--overwrite``.
    """
    state = read_state(cfg.out)
    done = state is not None and (state.epoch >= cfg.epochs or state.stopped_early)
    progress = f"{state.epoch} of at most {cfg.epochs} epochs" if state else ""
    position = (f"{state.epoch} epochs" if done else f"epoch {state.epoch}") if state else ""
    return run_common.take_run_dir(rundir, cfg, JOB, settings, held, state=state,
                                   has_model=(cfg.out / MODEL_FILE).exists(), done=done,
                                   progress=progress, position=position,
                                   remove=lambda: remove_results(cfg.out))


# ----------------------------------------------------------------------------- writing


def save_model(model, run_dir: str | Path) -> Path:
    """``RUN/model.keras``, written atomically."""
    return run_common.save_model(model, run_dir, MODEL_FILE)


def _png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return buf.getvalue()


def plot_confusion_matrix(cm: Sequence[Sequence[int]], class_names: Sequence[str],
                          path: str | Path, title: str = "test confusion matrix") -> Path:
    """The matrix as a PNG: rows true class, columns predicted, counts in the cells."""
    from matplotlib.figure import Figure

    cm = np.asarray(cm)
    k = len(class_names)
    fig = Figure(figsize=(1.2 * k + 2.2, 1.2 * k + 1.6))
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(1, int(cm.max())))
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(k), class_names, rotation=30, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return atomic_write_bytes(path, _png_bytes(fig))


def plot_training_curves(history: Sequence[dict], path: str | Path) -> Path:
    """Loss and accuracy per epoch, training and validation, as a PNG."""
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(9, 3.4))
    for i, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.plot(epochs, [r[metric] for r in history], "o-", label="train")
        ax.plot(epochs, [r[f"val_{metric}"] for r in history], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    return atomic_write_bytes(path, _png_bytes(fig))


def write_results(run_dir: str | Path, model, preprocessing: Preprocessing, metrics: dict,
                  history: Sequence[dict]) -> None:
    """Everything a finished run leaves (the writer rank only); metrics.json last."""
    run_dir = Path(run_dir)
    save_model(model, run_dir)
    preprocessing.save(run_dir)
    plot_confusion_matrix(metrics["test"]["confusion_matrix"], preprocessing.class_names,
                          run_dir / CONFUSION_FILE)
    plot_training_curves(history, run_dir / CURVES_FILE)
    write_json(run_dir / METRICS_FILE, metrics)


def remove_results(run_dir: str | Path) -> None:
    """Delete a previous run's results (``--overwrite``), keeping run.json, the lock."""
    run_common.remove_results(run_dir, RESULT_FILES)


# ----------------------------------------------------------------------------- reading


def load_classifier_run(run_dir: str | Path) -> ClassifierRun:
    """The model and its preprocessing from a finished run folder.

    Raises:
        InputError: no such run, or its model cannot be loaded.
    """
    run_dir = Path(run_dir)
    preprocessing = Preprocessing.load(run_dir)
    path = run_dir / MODEL_FILE
    if not path.is_file():
        raise InputError(path, "no model (the run has not finished; rerun it with --resume)")
    from tensorflow import keras

    try:
        model = keras.models.load_model(str(path), compile=False)
    except (OSError, ValueError, ImportError) as exc:
        raise InputError(path, f"cannot load the model ({str(exc).splitlines()[0]})") from None
    return ClassifierRun(model, preprocessing)


def predict(run: ClassifierRun, images: Sequence[np.ndarray], batch_size: int = 32
            ) -> np.ndarray:
    """Class probabilities ``[N, classes]`` of grey images (float32 ``HxW`` in [0, 1], any
    size), columns in ``run.preprocessing.class_names`` order."""
    model, preprocessing = run
    out = [np.asarray(model(preprocessing.prepare(images[i:i + batch_size]), training=False))
           for i in range(0, len(images), batch_size)]
    k = len(preprocessing.class_names)
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, k))
