"""The run folder of a multitask network: what is written at the end, and how other tools
use it.

    RUN/model.keras           the network (built-in Keras layers + FeatAug, MaxPoolWithArgmax,
                              MaxUnpool): image -> [segmentation logits, classification logit]
    RUN/multitask.json        how to call it: size, class names (the positive one), settings
    RUN/metrics.json          validation DSC / AUROC / losses per epoch, the final ones
    RUN/training_curves.png   losses, validation DSC and AUROC per epoch
    RUN/tensorboard/          the same rows as TensorBoard scalars
    RUN/checkpoints/          resume state (``checkpoint.py``)
    RUN/run.json              the settings (``tf_usaug.rundir``)

Example (a notebook)::

    run = load_multitask_run("runs/mt")
    masks, scores = predict(run, images)   # [N, S, S] lesion probability, [N] P(positive)
"""
from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import InputError
from ...files import atomic_write_bytes, write_json
from ...rundir import RunDir
from .. import run_common
from .checkpoint import read_state
from .config import MultitaskConfig

MODEL_FILE = "model.keras"
INFO_FILE = "multitask.json"
METRICS_FILE = run_common.METRICS_FILE
CURVES_FILE = "training_curves.png"
TENSORBOARD_DIR = run_common.TENSORBOARD_DIR
RESULT_FILES = (MODEL_FILE, INFO_FILE, METRICS_FILE, CURVES_FILE)
JOB = "train-multitask"
INFO_FORMAT = 1
_NOT_SETTINGS = ("out", "resume", "overwrite", "threads", "verbose", "data", "styles")


def run_settings(cfg: MultitaskConfig, data_fingerprint: str) -> dict:
    """Everything that changes the results (compared with ``RUN/run.json``)."""
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_SETTINGS}
    values.update(data=str(Path(cfg.data).resolve()),
                  styles=None if cfg.styles is None else str(Path(cfg.styles).resolve()),
                  data_fingerprint=data_fingerprint)
    return json.loads(json.dumps(values, default=str))


def take_run_dir(rundir: RunDir, cfg: MultitaskConfig, settings: dict, held):
    """Lock ``--out``, compare settings, decide: ``(state, stored, note)``
    (:func:`tf_usaug.models.run_common.take_run_dir`)."""
    state = read_state(cfg.out)
    done = state is not None and state.epoch >= cfg.epochs
    progress = f"{state.epoch} of {cfg.epochs} epochs" if state else ""
    position = (f"{state.epoch} epochs" if done else f"epoch {state.epoch}") if state else ""
    return run_common.take_run_dir(
        rundir, cfg, JOB, settings, held, state=state,
        has_model=(cfg.out / MODEL_FILE).exists(), done=done, progress=progress,
        position=position, remove=lambda: run_common.remove_results(cfg.out, RESULT_FILES))


# ----------------------------------------------------------------------------- writing


def run_info(cfg: MultitaskConfig, class_names: Sequence[str], epochs: int) -> dict:
    return {"format": INFO_FORMAT,
            "inputs": "image [B, S, S, 1] float32 in [0, 1] (S a multiple of 16)",
            "outputs": ["segmentation logits [B, S, S, 1]", "classification logit [B, 1]"],
            "size": cfg.size, "class_names": list(class_names),
            "positive_class": class_names[1], "epochs": epochs,
            "filters": list(cfg.filters), "feataug": cfg.feataug, "mixstyle": cfg.mixstyle,
            "maskaug": cfg.maskaug, "traditional": cfg.traditional, "seed": cfg.seed,
            "data": str(Path(cfg.data).resolve()),
            "styles": None if cfg.styles is None else str(Path(cfg.styles).resolve())}


def plot_training_curves(history: Sequence[dict], path: str | Path) -> Path:
    """Training and validation loss, validation DSC and AUROC per epoch, as a PNG."""
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(11, 3.2))
    panels = ((("loss", "train"), ("val_loss", "validation")), (("val_dsc", "DSC"),),
              (("val_auroc", "AUROC"),))
    for i, (series, title) in enumerate(zip(panels, ("loss (eq. 2)", "validation DSC",
                                                      "validation AUROC"))):
        ax = fig.add_subplot(1, 3, i + 1)
        for key, label in series:
            ax.plot(epochs, [np.nan if row.get(key) is None else row[key] for row in history],
                    "-o", ms=3, lw=1.2, label=label)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def write_results(run_dir: str | Path, model, info: dict, metrics: dict) -> None:
    """Everything a finished run leaves (writer rank only); metrics.json last."""
    run_dir = Path(run_dir)
    run_common.save_model(model, run_dir, MODEL_FILE)
    write_json(run_dir / INFO_FILE, info)
    plot_training_curves(metrics["history"], run_dir / CURVES_FILE)
    write_json(run_dir / METRICS_FILE, metrics)


# ----------------------------------------------------------------------------- reading


@dataclass
class MultitaskRun:
    """A trained network: ``load_multitask_run(RUN)``; call it with :func:`predict`."""

    model: object
    info: dict
    path: Path
    _forward: object = field(default=None, repr=False)

    def forward(self, images: np.ndarray):
        if self._forward is None:
            import tensorflow as tf

            self._forward = tf.function(lambda x: self.model(x, training=False),
                                        reduce_retracing=True)
        seg, cls = self._forward(images)
        return np.asarray(seg), np.asarray(cls)


def load_multitask_run(path: str | Path) -> MultitaskRun:
    """The network and its info from a finished run folder.

    Raises:
        InputError: not a finished multitask run, or its model cannot be loaded.
    """
    path = Path(path)
    if not (path / INFO_FILE).is_file() or not (path / MODEL_FILE).is_file():
        raise InputError(path, f"not a finished multitask run (no {INFO_FILE} and "
                               f"{MODEL_FILE}; train one with python -m tf_usaug.train "
                               "multitask, or continue it with --resume)")
    from tensorflow import keras

    from . import layers  # noqa: F401  (registers the custom layers for the loader)

    try:
        model = keras.models.load_model(str(path / MODEL_FILE), compile=False)
    except (OSError, ValueError, ImportError, TypeError) as exc:
        raise InputError(path / MODEL_FILE,
                         f"cannot load the model ({str(exc).splitlines()[0]})") from None
    return MultitaskRun(model, json.loads((path / INFO_FILE).read_text()), path)


def predict(run: MultitaskRun | str | Path, images: np.ndarray, batch_size: int = 16
            ) -> tuple[np.ndarray, np.ndarray]:
    """Lesion probabilities ``[N, S, S]`` and P(positive class) ``[N]`` of images
    ``[N, S, S]`` in [0, 1] (S a multiple of 16; the run's size for its best results)."""
    if not isinstance(run, MultitaskRun):
        run = load_multitask_run(run)
    images = np.asarray(images, np.float32)
    segs, scores = [], []
    for start in range(0, len(images), batch_size):
        seg, cls = run.forward(images[start:start + batch_size, ..., None])
        segs.append(1.0 / (1.0 + np.exp(-seg[..., 0])))
        scores.append(1.0 / (1.0 + np.exp(-cls[:, 0])))
    if not segs:
        return np.zeros((0,) + images.shape[1:], np.float32), np.zeros(0, np.float32)
    return np.concatenate(segs).astype(np.float32), np.concatenate(scores).astype(np.float32)
