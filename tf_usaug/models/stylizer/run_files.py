"""The run folder of a stylizer: what is written at the end, and how other tools use it.

    RUN/model.keras           the transform network: built-in Keras layers + NoiseInjection
    RUN/stylizer.json         how to call it: inputs, side multiple, training size, settings
    RUN/metrics.json          evaluation-batch losses before and after training, history
    RUN/training_curves.png   total, content and style loss per history row
    RUN/tensorboard/          the same rows as TensorBoard scalars
    RUN/checkpoints/          resume state (``checkpoint.py``)
    RUN/cache/                relevance maps and views (with --relevance-model)
    RUN/run.json              the settings (``tf_usaug.rundir``)

Example (a notebook)::

    run = load_stylizer_run("runs/stylizer")
    outputs = stylize(run, [read_image(p)[0] for p in paths], seed=0)   # [N, H, W]
    again = stylize(run, images, seed=0)     # the same noise: the same outputs
    other = stylize(run, images, seed=1)     # other noise: other outputs
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
from ...files import atomic_write_bytes, path_digest, write_json
from ...rundir import RunDir
from .. import run_common
from .checkpoint import read_state
from .config import SIDE_MULTIPLE, StylizerConfig

MODEL_FILE = "model.keras"
INFO_FILE = "stylizer.json"
METRICS_FILE = run_common.METRICS_FILE
CURVES_FILE = "training_curves.png"
TENSORBOARD_DIR = run_common.TENSORBOARD_DIR
RESULT_FILES = (MODEL_FILE, INFO_FILE, METRICS_FILE, CURVES_FILE)
JOB = "train-stylizer"
INFO_FORMAT = 1
#: Config fields that do not change the results, or enter run_settings in another form
#: (a resumed run ends with the same weights whatever the checkpoint interval).
_NOT_SETTINGS = ("out", "resume", "overwrite", "threads", "verbose", "content", "styles",
                 "weights", "relevance_model", "cache", "checkpoint_every")


# ----------------------------------------------------------------------------- the folder


def _identity(value) -> str | None:
    """Weights / models as recorded: names as they are, files by their content hash."""
    if value is None or str(value).lower() in ("imagenet", "none"):
        return None if value is None else str(value).lower()
    path = Path(value)
    if path.is_dir() and (path / "model.keras").is_file():  # a run: its model, not its logs
        path = path / "model.keras"
    return "sha256:" + path_digest(path)


def run_settings(cfg: StylizerConfig, data_fingerprint: str) -> dict:
    """Everything that changes the results, JSON-normalised (compared with ``RUN/run.json``):
    the config, the input folders and a hash of the training squares, the weights and the
    relevance classifier by their bytes."""
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_SETTINGS}
    values.update(content=str(Path(cfg.content).resolve()),
                  styles=str(Path(cfg.styles).resolve()), data_fingerprint=data_fingerprint,
                  weights=_identity(cfg.weights), relevance_model=_identity(cfg.relevance_model))
    return json.loads(json.dumps(values, default=str))


def take_run_dir(rundir: RunDir, cfg: StylizerConfig, settings: dict, held):
    """Lock ``--out`` (for the life of ``held``), compare the settings with run.json, decide.

    Returns:
        ``(state, stored, note)``: the state to resume from (None: start over), the stored
        metrics when the run is complete, a line to log.

    Raises:
        OutputError: other settings without ``--overwrite``; a run there without
            ``--resume`` or ``--overwrite``.
    """
    state = read_state(cfg.out)
    done = state is not None and state.step >= cfg.steps
    progress = f"{state.step} of {cfg.steps} steps" if state else ""
    position = (f"{state.step} steps" if done else f"step {state.step}") if state else ""
    return run_common.take_run_dir(rundir, cfg, JOB, settings, held, state=state,
                                   has_model=(cfg.out / MODEL_FILE).exists(), done=done,
                                   progress=progress, position=position,
                                   remove=lambda: remove_results(cfg.out))


def remove_results(run_dir: str | Path) -> None:
    """Delete a previous run's results (``--overwrite``), keeping run.json, the lock and the
    relevance cache (keyed by image and classifier bytes, so it stays valid)."""
    run_common.remove_results(run_dir, RESULT_FILES)


# ----------------------------------------------------------------------------- writing


def run_info(cfg: StylizerConfig, content_layer: str, style_layers: Sequence[str],
             steps: int) -> dict:
    """``RUN/stylizer.json``: what a caller needs to run the model, and what made it."""
    return {"format": INFO_FORMAT, "inputs": ["image [B, H, W, 1] float32 in [0, 1]",
                                              "noise_seed [B, 2] int32"],
            "side_multiple": SIDE_MULTIPLE, "size": cfg.size, "steps": steps,
            "filters": list(cfg.filters), "residual_blocks": cfg.residual_blocks,
            "noise_layers": cfg.noise_layers, "noise_init": cfg.noise_init,
            "backbone": cfg.backbone, "weights": str(cfg.weights),
            "content_layer": content_layer,
            "style_layers": list(style_layers), "n_styles": cfg.n_styles,
            "content": str(Path(cfg.content).resolve()),
            "styles": str(Path(cfg.styles).resolve()),
            "relevance_model": None if cfg.relevance_model is None else str(cfg.relevance_model),
            "seed": cfg.seed}


def save_model(model, run_dir: str | Path) -> Path:
    """``RUN/model.keras``, written atomically."""
    return run_common.save_model(model, run_dir, MODEL_FILE)


def plot_training_curves(history: Sequence[dict], path: str | Path) -> Path:
    """Total, content and style loss per history row (mean over its steps), as a PNG."""
    from matplotlib.figure import Figure

    steps = [row["step"] for row in history]
    fig = Figure(figsize=(11, 3.2))
    for i, key in enumerate(("total", "content", "style")):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.plot(steps, [row[key] for row in history], "-", lw=1.2)
        ax.set_xlabel("step")
        ax.set_title(f"{key} loss (balanced)")
        ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def write_results(run_dir: str | Path, model, info: dict, metrics: dict) -> None:
    """Everything a finished run leaves (the writer rank only); metrics.json last."""
    run_dir = Path(run_dir)
    save_model(model, run_dir)
    write_json(run_dir / INFO_FILE, info)
    plot_training_curves(metrics["history"], run_dir / CURVES_FILE)
    write_json(run_dir / METRICS_FILE, metrics)


# ----------------------------------------------------------------------------- reading


@dataclass
class StylizerRun:
    """A trained stylizer: ``load_stylizer_run(RUN)``; call it with :func:`stylize`."""

    model: object            # keras.Model, inputs [image, noise_seed]
    info: dict               # RUN/stylizer.json
    path: Path
    _forward: object = field(default=None, repr=False)

    def forward(self, images: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """The model on ``[B, H, W, 1]`` (sides multiples of 4) and ``[B, 2]`` seeds."""
        if self._forward is None:
            import tensorflow as tf

            self._forward = tf.function(lambda x, s: self.model([x, s], training=False),
                                        reduce_retracing=True)
        return np.asarray(self._forward(images, seeds), np.float32)


def check_stylizer_run(path: str | Path) -> Path:
    """``path`` if it is a finished stylizer run (no TensorFlow: usable in argument checks).

    Raises:
        InputError: no such folder, not a stylizer run, or not finished.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "no such run folder (train one with python -m tf_usaug.train "
                               "stylizer --styles DIR --out RUN)")
    info = path / INFO_FILE
    if not info.is_file():
        if (path / "preprocessing.json").is_file():
            raise InputError(path, f"not a stylizer run (no {INFO_FILE}): a classifier run")
        if read_state(path) is not None:
            raise InputError(path, "the stylizer run has not finished (continue it with "
                                   "python -m tf_usaug.train stylizer ... --resume)")
        raise InputError(path, f"not a stylizer run (no {MODEL_FILE} and {INFO_FILE}; train "
                               "one with python -m tf_usaug.train stylizer)")
    try:
        data = json.loads(info.read_text())
        int(data["side_multiple"]), int(data["size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(info, f"not a stylizer run's info file ({exc})") from None
    if not (path / MODEL_FILE).is_file():
        raise InputError(path / MODEL_FILE, "missing (the run has not finished)")
    return path


def load_stylizer_run(path: str | Path) -> StylizerRun:
    """The transform network and its info from a finished run folder.

    Raises:
        InputError: not a finished stylizer run, or its model cannot be loaded.
    """
    path = check_stylizer_run(path)
    from tensorflow import keras

    from . import networks  # noqa: F401  (registers NoiseInjection for the loader)

    try:
        model = keras.models.load_model(str(path / MODEL_FILE), compile=False)
    except (OSError, ValueError, ImportError, TypeError) as exc:
        raise InputError(path / MODEL_FILE,
                         f"cannot load the model ({str(exc).splitlines()[0]})") from None
    return StylizerRun(model, json.loads((path / INFO_FILE).read_text()), path)


def stylize(run: StylizerRun | str | Path, images: Sequence[np.ndarray],
            seed: int | Sequence[int] | None = None, batch_size: int = 8):
    """Restyle grey images (float32 ``HxW`` in [0, 1], any size) with a trained stylizer.

    Args:
        run: a :class:`StylizerRun` or its folder.
        images: the contents; images of one shape are run in batches.
        seed: the noise. An int ``s``: image ``i`` gets seed pair ``(s, i)``; a sequence: one
            seed per image (pair ``(s_i, 0)``; the augmentation job passes each item's seed);
            None: fresh seeds from the operating system (a new draw each call).
        batch_size: images per model call (outputs do not depend on it beyond rounding).

    Returns:
        ``[N, H, W]`` float32 in [0, 1] when all images share one shape, else a list.
    """
    from .networks import noise_seeds, pad_to_multiple

    if not isinstance(run, StylizerRun):
        run = load_stylizer_run(run)
    images = [np.asarray(im, np.float32) for im in images]
    if not images:
        return np.zeros((0, 0, 0), np.float32)
    if any(im.ndim != 2 for im in images):
        raise ValueError("stylize: expected grey HxW images")
    if seed is None:
        seed = np.random.default_rng().integers(0, 2 ** 31, len(images)).tolist()
    seeds = noise_seeds(seed, len(images))
    if len(seeds) != len(images):
        raise ValueError(f"stylize: {len(seeds)} seeds for {len(images)} images")
    multiple = int(run.info.get("side_multiple", SIDE_MULTIPLE))
    out: list[np.ndarray | None] = [None] * len(images)
    by_shape: dict[tuple, list[int]] = {}
    for i, im in enumerate(images):
        by_shape.setdefault(im.shape, []).append(i)
    for shape, idx in by_shape.items():
        for start in range(0, len(idx), batch_size):
            part = idx[start:start + batch_size]
            padded, (h, w) = pad_to_multiple(np.stack([images[i] for i in part]), multiple)
            result = run.forward(padded[..., None], seeds[part])[:, :h, :w, 0]
            for i, r in zip(part, result):
                out[i] = np.clip(r, 0.0, 1.0)
    return np.stack(out) if len(by_shape) == 1 else out
