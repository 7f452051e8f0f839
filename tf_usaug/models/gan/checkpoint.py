"""The whole training state of a GAN run, saved so that ``--resume`` continues exactly.

``RUN/checkpoints/``:

    step-00000500.*  TensorFlow checkpoint: every network's weights (batch-norm moving
                     statistics included), every optimiser's iteration count and Adam moments,
                     the ``tf.random.Generator`` state (latents, interpolation weights)
    state.json       everything else (:class:`TrainingState`), written LAST and atomically:
                     step, kimg, extra scalars (ADA p ...), history rows and the running sums
                     of the row in progress, the numpy Generator's bit-generator state (batch
                     draws), training seconds, the checkpoint's name

A kill at any moment leaves ``state.json`` naming a complete checkpoint (the previous one when
the newest was half written); only the latest checkpoint is kept. (A public StyleGAN2-ADA port
restarts its kimg counter and augmentation strength at zero on resume; here both are state.)
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ...errors import OutputError
from ...files import write_json

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"


@dataclass
class TrainingState:
    """What a checkpoint holds besides the TensorFlow variables."""

    step: int = 0                          # training iterations finished
    kimg: float = 0.0                      # thousands of real images shown (global batch)
    extras: dict = field(default_factory=dict)   # further scalars, e.g. {"ada_p": 0.3}
    history: list[dict] = field(default_factory=list)
    pending: dict = field(default_factory=lambda: {"count": 0, "sums": {}})
    numpy_rng: dict | None = None          # np.random.Generator.bit_generator.state
    latest: str | None = None              # checkpoint prefix (a name in CHECKPOINT_DIR)
    ranks: int = 1
    seconds: float = 0.0                   # training time so far (all calls)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "TrainingState":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    # the numpy Generator (batch draws): its state travels in state.json
    def make_rng(self, seed: int) -> np.random.Generator:
        """The Generator to continue with: restored from ``numpy_rng``, else fresh from seed."""
        rng = np.random.default_rng(seed)
        if self.numpy_rng is not None:
            rng.bit_generator.state = self.numpy_rng
        return rng

    def capture_rng(self, rng: np.random.Generator) -> None:
        self.numpy_rng = rng.bit_generator.state

    # history rows: the mean of each scalar over the steps since the last row
    def accumulate(self, values: Mapping[str, float]) -> None:
        sums = self.pending["sums"]
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + float(value)
        self.pending["count"] += 1

    def close_row(self, seconds: float) -> dict | None:
        count = self.pending["count"]
        if not count:
            return None
        row = {"step": self.step, "kimg": round(self.kimg, 4),
               **{k: v / count for k, v in self.pending["sums"].items()},
               "steps": count, "seconds": round(seconds, 3)}
        self.history.append(row)
        self.pending = {"count": 0, "sums": {}}
        return row


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def read_state(run_dir: str | Path) -> TrainingState | None:
    """The state of the last checkpoint, or None when the run has none yet."""
    path = checkpoint_dir(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return TrainingState.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise OutputError(f"{path}: unreadable training state ({exc}); rerun with "
                          "--overwrite to start over") from None


class GanCheckpoint:
    """Save and restore every network, optimiser and the TF random generator of a run.

    Args:
        run_dir: the run folder (checkpoints go to ``RUN/checkpoints/``).
        networks: ``{name: keras model}``, e.g. generator, critic, encoder, code_critic.
        optimizers: ``{name: keras optimizer}`` (built before :meth:`restore`).
        tf_rng: a ``tf.random.Generator`` whose state is saved too (or None).
    """

    def __init__(self, run_dir: str | Path, networks: Mapping, optimizers: Mapping,
                 tf_rng=None):
        import tensorflow as tf

        self.folder = checkpoint_dir(run_dir)
        objects = {f"net_{k}": v for k, v in networks.items()}
        objects.update({f"opt_{k}": v for k, v in optimizers.items()})
        if tf_rng is not None:
            objects["tf_rng"] = tf_rng
        self._checkpoint = tf.train.Checkpoint(**objects)

    def save(self, state: TrainingState, rng: np.random.Generator | None = None) -> Path:
        """Write the checkpoint of ``state.step``, then ``state.json``, then drop older ones.
        Call on the writer rank only."""
        if rng is not None:
            state.capture_rng(rng)
        self.folder.mkdir(parents=True, exist_ok=True)
        state.latest = checkpoint_name(state.step)
        self._checkpoint.write(str(self.folder / state.latest))
        write_json(self.folder / STATE_FILE, state.to_json())
        for path in self.folder.glob("step-*"):
            if path.name.split(".")[0] != state.latest:
                path.unlink(missing_ok=True)
        return self.folder / state.latest

    def restore(self, state: TrainingState) -> None:
        """Load ``state.latest`` into the networks, optimisers and generator."""
        import tensorflow as tf

        prefix = self.folder / str(state.latest)
        try:
            self._checkpoint.read(str(prefix)).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as exc:
            raise OutputError(f"{prefix}: checkpoint does not fit these networks "
                              f"({str(exc).splitlines()[0]}); rerun with --overwrite to start "
                              "over") from None
