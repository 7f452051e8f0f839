"""The whole training state, saved after every epoch so ``--resume`` continues exactly.

``RUN/checkpoints/``:

    epoch-0007.*     TensorFlow checkpoint: weights (BN statistics included), optimiser
                     (iteration count, momentum slots, learning rate)
    state.json       everything else, written LAST and atomically: epochs done, learning
                     rate, ReduceLROnPlateau's best/wait/cooldown, EarlyStopping's
                     best/wait/best epoch, the history, the latest and best checkpoints

A kill at any moment leaves ``state.json`` naming a complete checkpoint (the one before, if the
newest was half written). Random state needs no saving: the batch order and the dropout masks
of epoch ``e`` are drawn from ``(seed, e)`` (``data.epoch_order``,
``networks.reseed_random_layers``). Only the latest and the best checkpoints are kept.

The plateau and early-stopping rules are Keras's ``ReduceLROnPlateau`` and ``EarlyStopping``
(Keras 2.14, mode "min" on the validation loss) as pure functions of this state.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import OutputError
from ...files import write_json

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"


@dataclass
class TrainingState:
    """What an epoch boundary needs besides the weights and optimiser variables."""

    epoch: int = 0                      # epochs finished
    learning_rate: float = 0.0
    plateau_best: float = math.inf      # ReduceLROnPlateau
    plateau_wait: int = 0
    plateau_cooldown: int = 0
    early_best: float = math.inf        # EarlyStopping
    early_wait: int = 0
    best_epoch: int = 0                 # 1-based epoch of the lowest validation loss
    stopped_early: bool = False
    latest: str | None = None           # checkpoint prefixes (names in CHECKPOINT_DIR)
    best: str | None = None
    ranks: int = 1
    history: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        for key in ("plateau_best", "early_best"):  # JSON has no infinity
            data[key] = None if math.isinf(data[key]) else data[key]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "TrainingState":
        data = dict(data)
        for key in ("plateau_best", "early_best"):
            data[key] = math.inf if data.get(key) is None else float(data[key])
        return cls(**data)


def plateau_update(state: TrainingState, val_loss: float, factor: float, patience: int,
                   min_delta: float, min_lr: float, cooldown: int = 0) -> float:
    """Keras ``ReduceLROnPlateau.on_epoch_end`` (mode min): returns the next learning rate.

    Improvement means ``val_loss < best - min_delta``; after ``patience`` epochs without one
    the rate is multiplied by ``factor`` (not below ``min_lr``) and the count restarts.
    """
    if state.plateau_cooldown > 0:
        state.plateau_cooldown -= 1
        state.plateau_wait = 0
    if val_loss < state.plateau_best - min_delta:
        state.plateau_best = val_loss
        state.plateau_wait = 0
    elif state.plateau_cooldown <= 0:
        state.plateau_wait += 1
        if state.plateau_wait >= patience and state.learning_rate > min_lr:
            state.learning_rate = max(state.learning_rate * factor, min_lr)
            state.plateau_cooldown = cooldown
            state.plateau_wait = 0
    return state.learning_rate


def early_stopping_update(state: TrainingState, val_loss: float, patience: int,
                          min_delta: float = 0.0) -> tuple[bool, bool]:
    """Keras ``EarlyStopping.on_epoch_end`` (mode min) for the epoch just finished
    (``state.epoch`` already counts it). Returns ``(improved, stop)``."""
    state.early_wait += 1
    improved = val_loss < state.early_best - min_delta
    if improved:
        state.early_best = val_loss
        state.best_epoch = state.epoch
        state.early_wait = 0
    stop = state.early_wait >= patience and state.epoch > 1
    state.stopped_early = state.stopped_early or stop
    return improved, stop


# ----------------------------------------------------------------------------- files


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def _checkpoint(model, optimizer=None):
    import tensorflow as tf

    return tf.train.Checkpoint(model=model, **({"optimizer": optimizer} if optimizer else {}))


def checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def mark_epoch(state: TrainingState, improved: bool) -> None:
    """Name the checkpoint of the epoch just finished as latest (and best when ``improved``);
    on every rank, so all agree on which weights the run ends with."""
    state.latest = checkpoint_name(state.epoch)
    if improved or state.best is None:
        state.best = state.latest


def save_checkpoint(run_dir: str | Path, model, optimizer, state: TrainingState) -> None:
    """Write checkpoint ``state.latest``, then ``state.json``, then drop the checkpoints no
    longer named (neither latest nor best). Call on the writer rank only."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _checkpoint(model, optimizer).write(str(folder / state.latest))
    write_json(folder / STATE_FILE, state.to_json())
    keep = {state.latest, state.best}
    for path in folder.glob("epoch-*"):
        if path.name.split(".")[0] not in keep:
            path.unlink(missing_ok=True)


def read_state(run_dir: str | Path) -> TrainingState | None:
    """The state of the last finished epoch, or None when the run has none yet."""
    path = checkpoint_dir(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return TrainingState.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise OutputError(f"{path}: unreadable training state ({exc}); rerun with "
                          "--overwrite to start over") from None


def restore_checkpoint(run_dir: str | Path, name: str, model, optimizer=None) -> None:
    """Load checkpoint ``name`` into ``model`` (and ``optimizer``, which must be built)."""
    prefix = checkpoint_dir(run_dir) / name
    status = _checkpoint(model, optimizer).read(str(prefix))
    try:
        if optimizer is None:
            status.expect_partial().assert_existing_objects_matched()
        else:
            status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as exc:
        raise OutputError(f"{prefix}: checkpoint does not fit this model ({exc}); rerun with "
                          "--overwrite to start over") from None
