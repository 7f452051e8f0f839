"""The whole training state of a stylizer run, saved every ``checkpoint_every`` steps so that
``--resume`` continues exactly.

``RUN/checkpoints/``:

    step-00000500.*  TensorFlow checkpoint: the transform network's weights (noise scales
                     included) and the optimiser (iteration count, Adam moments)
    state.json       everything else, written LAST and atomically: steps done, the loss
                     scales measured before training, the initial evaluation, the history
                     rows and the running sums of the row in progress, the checkpoint's name

A kill at any moment leaves ``state.json`` naming a complete checkpoint (the previous one when
the newest was half written). Random state needs no saving: every random choice of step ``s``
(batch, references, noise) is drawn from ``(seed, s)`` (``data.py``), and the noise layers use
stateless ops; ``state.json`` records the seed scheme for the reader. Only the latest
checkpoint is kept.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import OutputError
from ...files import write_json

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"
#: How the random state of a step is derived (recorded in state.json; see data.py).
RNG_SCHEME = ("batch: permutation(seed, epoch); references and noise of image i at step s: "
              "item_seed(seed, 'styles|noise/<s>/<i>'); noise layers: stateless, seed folded "
              "with the layer's salt")


@dataclass
class StylizerState:
    """What a checkpoint needs besides the weights and the optimiser variables."""

    step: int = 0                          # optimisation steps finished
    scales: dict | None = None             # the loss balancing (losses.PerceptualLoss)
    initial: dict | None = None            # evaluation-batch losses before training
    history: list[dict] = field(default_factory=list)
    pending: dict = field(default_factory=lambda: {"count": 0, "sums": {}})
    latest: str | None = None              # checkpoint prefix (a name in CHECKPOINT_DIR)
    ranks: int = 1
    seconds: float = 0.0                   # training time so far (all calls)
    rng: str = RNG_SCHEME

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "StylizerState":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def accumulate(self, losses: dict[str, float]) -> None:
        """Add one step's mean losses to the history row in progress."""
        sums = self.pending["sums"]
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + float(value)
        self.pending["count"] += 1

    def close_row(self, seconds: float) -> dict | None:
        """Turn the row in progress into a history row (mean over its steps)."""
        count = self.pending["count"]
        if not count:
            return None
        row = {"step": self.step, **{k: v / count for k, v in self.pending["sums"].items()},
               "steps": count, "seconds": round(seconds, 3)}
        self.history.append(row)
        self.pending = {"count": 0, "sums": {}}
        return row


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def _checkpoint(model, optimizer=None):
    import tensorflow as tf

    return tf.train.Checkpoint(model=model, **({"optimizer": optimizer} if optimizer else {}))


def save_checkpoint(run_dir: str | Path, model, optimizer, state: StylizerState) -> None:
    """Write the checkpoint of ``state.step``, then ``state.json``, then drop older ones.
    Call on the writer rank only."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    state.latest = checkpoint_name(state.step)
    _checkpoint(model, optimizer).write(str(folder / state.latest))
    write_json(folder / STATE_FILE, state.to_json())
    for path in folder.glob("step-*"):
        if path.name.split(".")[0] != state.latest:
            path.unlink(missing_ok=True)


def read_state(run_dir: str | Path) -> StylizerState | None:
    """The state of the last checkpoint, or None when the run has none yet."""
    path = checkpoint_dir(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return StylizerState.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise OutputError(f"{path}: unreadable training state ({exc}); rerun with "
                          "--overwrite to start over") from None


def restore_checkpoint(run_dir: str | Path, name: str, model, optimizer) -> None:
    """Load checkpoint ``name`` into ``model`` and ``optimizer`` (built first)."""
    import tensorflow as tf

    prefix = checkpoint_dir(run_dir) / name
    try:
        _checkpoint(model, optimizer).read(str(prefix)).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise OutputError(f"{prefix}: checkpoint does not fit this model ({exc}); rerun with "
                          "--overwrite to start over") from None
