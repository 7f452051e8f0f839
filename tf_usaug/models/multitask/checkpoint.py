"""The whole training state of a multitask run, saved after every epoch so that
``--resume`` continues exactly.

``RUN/checkpoints/``:

    epoch-0003.*   TensorFlow checkpoint: the network (FeatAug's call counters, i.e. its
                   random streams, included), the optimiser (iteration count, AdamW moments)
    wct.*          the style-transfer autoencoder (trained once, before the first epoch)
    state.json     everything else, written LAST and atomically: epochs done, the history
                   rows, the checkpoint's name, the autoencoder's reconstruction losses

A kill at any moment leaves ``state.json`` naming a complete checkpoint. The learning rate is
a function of the epoch (cosine), and every other random choice of epoch ``e`` (batch order,
augmentation) is drawn from ``(seed, e)``; nothing else needs saving.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import OutputError
from ...files import write_json
from ..run_common import CHECKPOINT_DIR

STATE_FILE = "state.json"
WCT_NAME = "wct"
RNG_SCHEME = ("batches: permutation(seed, epoch); augmentation of global position g in epoch "
              "e: item_seed(seed, 'aug/<e>/<g>'); FeatAug: stateless (layer seed, call count)")


@dataclass
class MultitaskState:
    """What a checkpoint needs besides the weights and the optimiser variables."""

    epoch: int = 0                         # epochs finished
    history: list[dict] = field(default_factory=list)
    latest: str | None = None
    wct: dict | None = None                # {"first_loss", "last_loss", "steps"} once trained
    ranks: int = 1
    seconds: float = 0.0
    rng: str = RNG_SCHEME

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "MultitaskState":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def _checkpoint(**objects):
    import tensorflow as tf

    return tf.train.Checkpoint(**{k: v for k, v in objects.items() if v is not None})


def save_wct(run_dir: str | Path, encoder, decoder) -> None:
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _checkpoint(encoder=encoder, decoder=decoder).write(str(folder / WCT_NAME))


def restore_wct(run_dir: str | Path, encoder, decoder) -> None:
    _read(checkpoint_dir(run_dir) / WCT_NAME, encoder=encoder, decoder=decoder)


def save_checkpoint(run_dir: str | Path, model, optimizer, state: MultitaskState) -> None:
    """Write the checkpoint of ``state.epoch``, then ``state.json``, then drop older ones.
    Call on the writer rank only."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    state.latest = f"epoch-{state.epoch:04d}"
    _checkpoint(model=model, optimizer=optimizer).write(str(folder / state.latest))
    write_json(folder / STATE_FILE, state.to_json())
    for path in folder.glob("epoch-*"):
        if path.name.split(".")[0] != state.latest:
            path.unlink(missing_ok=True)


def read_state(run_dir: str | Path) -> MultitaskState | None:
    """The state of the last checkpoint, or None when the run has none yet."""
    path = checkpoint_dir(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return MultitaskState.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise OutputError(f"{path}: unreadable training state ({exc}); rerun with "
                          "--overwrite to start over") from None


def _read(prefix: Path, **objects) -> None:
    import tensorflow as tf

    try:
        _checkpoint(**objects).read(str(prefix)).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise OutputError(f"{prefix}: checkpoint does not fit this model ({exc}); rerun with "
                          "--overwrite to start over") from None


def restore_checkpoint(run_dir: str | Path, name: str, model, optimizer) -> None:
    """Load checkpoint ``name`` into ``model`` and ``optimizer`` (built first)."""
    _read(checkpoint_dir(run_dir) / name, model=model, optimizer=optimizer)
