"""The run folder of a GAN (either family): what is written, when, and the RunDir rules.

    RUN/generator.keras        the generator (inference: ``training=False``)
    RUN/gan.json               GanInfo: model type (the registry key), size, z_dim, classes ...
    RUN/metrics.json           losses per history row, training seconds, kimg (written LAST)
    RUN/training_curves.png    the history rows' losses
    RUN/grids/step-*.png       sample grids of fixed latents (``grids.py``)
    RUN/tensorboard/           the history rows as TensorBoard scalars, and the grids
    RUN/checkpoints/           the whole training state (``checkpoint.py``)
    RUN/run.json, RUN/.lock    the settings and the lock (:class:`tf_usaug.rundir.RunDir`)

A per-class run (``--per-class``) holds one such folder per class, ``RUN/<class>/``, and an
index ``RUN/gan.json`` with ``per_class: true`` and ``runs: {class: folder}``.
"""
from __future__ import annotations

import dataclasses
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ...files import atomic_write_bytes, write_json
from .. import run_common
from .checkpoint import read_state
from .grids import GRID_DIR

GENERATOR_FILE = "generator.keras"
INFO_FILE = "gan.json"
METRICS_FILE = run_common.METRICS_FILE
CURVES_FILE = "training_curves.png"
TENSORBOARD_DIR = run_common.TENSORBOARD_DIR
RESULT_FILES = (GENERATOR_FILE, INFO_FILE, METRICS_FILE, CURVES_FILE)
INFO_FORMAT = 1
#: Config fields that never change the results (a resumed run ends with the same weights
#: whatever the checkpoint, grid and log intervals).
NOT_SETTINGS = ("out", "data", "resume", "overwrite", "threads", "verbose", "checkpoint_every",
                "grid_every", "log_every")


@dataclass
class GanInfo:
    """``RUN/gan.json``: what a caller needs to sample the generator, and what made it."""

    model: str                         # registry key: "wgan", "stylegan2"
    size: int = 0
    z_dim: int = 0
    conditional: bool = False
    classes: list[str] = field(default_factory=list)
    class_filter: list[str] | None = None   # the classes this model saw (per-class sub-runs)
    generator: str = GENERATOR_FILE
    steps: int = 0
    kimg: float = 0.0
    data: str = ""
    images: int = 0
    seed: int = 0
    per_class: bool = False
    runs: dict[str, str] = field(default_factory=dict)   # per-class index: class -> folder
    extra: dict = field(default_factory=dict)   # family-specific settings
    format: int = INFO_FORMAT

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "GanInfo":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def run_settings(cfg, data_fingerprint: str, not_settings: Iterable[str] = NOT_SETTINGS) -> dict:
    """The config less what does not change the results, the data folder resolved and the
    training pixels' hash; JSON-normalised (compared with ``RUN/run.json``)."""
    skip = set(not_settings)
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}
    values.update(data=str(Path(cfg.data).resolve()), data_fingerprint=data_fingerprint)
    return json.loads(json.dumps(values, default=str))


def remove_results(run_dir: str | Path) -> None:
    """Delete a previous run's results (``--overwrite``), keeping run.json and the lock."""
    run_common.remove_results(run_dir, RESULT_FILES)
    shutil.rmtree(Path(run_dir) / GRID_DIR, ignore_errors=True)


def take_gan_run_dir(rundir, cfg, job: str, settings: dict, held, total: float,
                     unit: str = "steps"):
    """Lock ``--out``, compare settings with run.json, and decide: start, resume or done.

    Args:
        rundir: the :class:`~tf_usaug.rundir.RunDir` of ``cfg.out``; cfg: has ``out``,
            ``resume``, ``overwrite``; job: its name in run.json; settings: what must match.
        held: an ``ExitStack`` that keeps the lock.
        total: the run's length in ``unit`` ("steps" or "kimg").

    Returns:
        ``(state, stored, note)`` as :func:`tf_usaug.models.run_common.take_run_dir`.
    """
    state = read_state(cfg.out)
    done_at = (lambda s: s.step) if unit == "steps" else (lambda s: s.kimg)
    done = state is not None and done_at(state) >= total
    progress = f"{state.step} steps, {state.kimg:.3f} kimg of {total:g} {unit}" if state else ""
    position = (f"{state.step} steps" if done else f"step {state.step}") if state else ""
    return run_common.take_run_dir(rundir, cfg, job, settings, held, state=state,
                                   has_model=(Path(cfg.out) / GENERATOR_FILE).exists(),
                                   done=done, progress=progress, position=position,
                                   remove=lambda: remove_results(cfg.out))


# ----------------------------------------------------------------------------- writing


def tensorboard_writer(run_dir: str | Path, enabled: bool = True):
    """A ``tf.summary`` file writer for ``RUN/tensorboard`` (None when not ``enabled``:
    ranks other than 0)."""
    if not enabled:
        return None
    import tensorflow as tf

    return tf.summary.create_file_writer(str(Path(run_dir) / TENSORBOARD_DIR))


def write_scalars(writer, step: int, values: Mapping[str, float], prefix: str = "") -> None:
    """Every numeric value of ``values`` as a TensorBoard scalar at ``step``."""
    if writer is None:
        return
    import tensorflow as tf

    with writer.as_default(step=step):
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                tf.summary.scalar(prefix + key, value)


def write_grid_summary(writer, step: int, grid) -> None:
    """A sample grid (``HxW`` in [0, 1]) as a TensorBoard image."""
    if writer is None:
        return
    import numpy as np
    import tensorflow as tf

    with writer.as_default(step=step):
        tf.summary.image("samples", np.asarray(grid, np.float32)[None, ..., None])


def plot_curves(history: Sequence[dict], keys: Sequence[str], path: str | Path) -> Path:
    """One panel per key of the history rows (x: step), as a PNG."""
    from matplotlib.figure import Figure

    steps = [row["step"] for row in history]
    fig = Figure(figsize=(3.3 * max(1, len(keys)), 3.0))
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, max(1, len(keys)), i + 1)
        ax.plot(steps, [row.get(key, float("nan")) for row in history], "-", lw=1.2)
        ax.set_xlabel("step")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def write_results(run_dir: str | Path, generator, info: GanInfo, metrics: dict,
                  curve_keys: Sequence[str] = ()) -> None:
    """Everything a finished run leaves (the writer rank only): generator, gan.json, curves,
    metrics.json last (its presence means finished)."""
    run_dir = Path(run_dir)
    run_common.save_model(generator, run_dir, info.generator)
    write_json(run_dir / INFO_FILE, info.to_json())
    if curve_keys and metrics.get("history"):
        plot_curves(metrics["history"], curve_keys, run_dir / CURVES_FILE)
    write_json(run_dir / METRICS_FILE, metrics)


def read_info(run_dir: str | Path) -> GanInfo | None:
    """``RUN/gan.json``, or None when there is none (a run that has not finished)."""
    path = Path(run_dir) / INFO_FILE
    if not path.is_file():
        return None
    return GanInfo.from_json(json.loads(path.read_text()))


# ----------------------------------------------------------------------------- start-up


def start_ranks(rundir, cfg, job: str, settings: dict, held, total: float,
                unit: str = "steps", ctx=None):
    """The start-up both GAN loops share: rank 0 takes the run folder before TensorFlow
    starts (:func:`take_gan_run_dir`), the ranks start (GPU pinning, CPU threads; TensorFlow
    quiet unless verbose) and every rank gets rank 0's verdict.

    Returns:
        ``(ctx, log, state, stored, note)``: the context, the job's logger, the state to
        resume from (None: start), the stored metrics of a finished run, a line to log.
    """
    from ... import log as _log
    from ...cli import rank_from_env

    verdict = (take_gan_run_dir(rundir, cfg, job, settings, held, total, unit)
               if rank_from_env() == 0 else None)
    ctx = ctx or run_common.init_context(cfg.threads)
    log = _log.setup(cfg.verbose, ctx.rank)
    state, stored, note = ctx.allgather_object(verdict)[0]  # Horovod: rank 0's verdict
    return ctx, log, state, stored, note


def rank_batch(batch_size: int, ctx) -> tuple[int, slice]:
    """``(per-rank batch, this rank's slice of a global batch)``; UsageError unless the
    global ``--batch-size`` splits evenly over the ranks."""
    from ... import distributed as dist
    from ...errors import UsageError

    if batch_size % ctx.size:
        raise UsageError(f"--batch-size {batch_size} is the global batch: it must be a "
                         f"multiple of the {ctx.size} ranks")
    per_rank = dist.per_rank_batch_size(batch_size, ctx)
    return per_rank, slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)
