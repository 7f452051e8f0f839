"""What every trainer's run folder shares (classifier, stylizer, the trainers to come).

``RUN/`` holds ``run.json`` and ``.lock`` (:class:`tf_usaug.rundir.RunDir`), the results
(each trainer's ``RESULT_FILES``), ``checkpoints/`` and ``tensorboard/``. These helpers clear
the results for ``--overwrite``, read the stored metrics of a finished run, and switch on
TensorFlow's deterministic ops for exact resumes.
"""
from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Callable, Iterable

from ..files import TMP_PREFIX

METRICS_FILE = "metrics.json"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_DIR = "checkpoints"


def remove_results(run_dir: str | Path, result_files: Iterable[str]) -> None:
    """Delete a previous run's results (``--overwrite``), keeping run.json and the lock."""
    run_dir = Path(run_dir)
    for name in result_files:
        (run_dir / name).unlink(missing_ok=True)
    for name in (CHECKPOINT_DIR, TENSORBOARD_DIR):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for tmp in run_dir.glob(TMP_PREFIX + "*"):
        tmp.unlink(missing_ok=True)


def read_metrics(run_dir: str | Path) -> dict | None:
    """``RUN/metrics.json`` of a finished run, else None."""
    path = Path(run_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


@contextlib.contextmanager
def op_determinism(enabled: bool):
    """TensorFlow's deterministic ops for the run; the previous setting afterwards."""
    from tensorflow.python.framework import config as tf_config

    before = tf_config.is_op_determinism_enabled()
    if enabled and not before:
        tf_config.enable_op_determinism()
    try:
        yield
    finally:
        if enabled and not before:
            tf_config.disable_op_determinism()


def take_run_dir(rundir, cfg, job: str, settings: dict, held, *, state, has_model: bool,
                 done: bool, progress: str, position: str, remove: Callable[[], None]):
    """Lock ``--out`` (for the life of ``held``), compare the settings with run.json, decide.

    Args:
        rundir: the :class:`tf_usaug.rundir.RunDir` of ``cfg.out``.
        cfg: the trainer's config (``out``, ``resume``, ``overwrite``).
        job: the job's name in run.json; settings: what must match it.
        state: the stored training state (None: no checkpoint yet).
        has_model: a model file is there (a run that finished or stopped mid-way).
        done: ``state`` is the end of training; progress: e.g. "12 of at most 20 epochs";
            position: where training stands, e.g. "epoch 12" (complete: "12 epochs").
        remove: deletes the previous results (start over).

    Returns:
        ``(state, stored, note)``: the state to resume from (None: start over), the stored
        metrics when the run is complete, a line to log.

    Raises:
        OutputError: other settings without ``--overwrite``; a run there without
            ``--resume`` or ``--overwrite``.
    """
    from ..errors import OutputError

    held.enter_context(rundir)  # the lock; the kernel drops it if we are killed
    rundir.check_settings(job, settings, cfg.overwrite, state is not None or has_model)
    if cfg.overwrite or state is None:
        remove()  # start over (a run killed before its first checkpoint, too)
        return None, None, "nothing to resume: starting" if cfg.resume else None
    if not cfg.resume:
        raise OutputError(f"--out {cfg.out} holds a {'finished' if done else 'started'} run of "
                          f"these settings ({progress}); pass --resume to continue it or "
                          "--overwrite to start over")
    for tmp in [*cfg.out.glob(TMP_PREFIX + "*"),
                *(cfg.out / CHECKPOINT_DIR).glob(TMP_PREFIX + "*")]:
        tmp.unlink(missing_ok=True)
    stored = read_metrics(cfg.out) if done else None
    if stored is not None:
        return state, stored, f"==> {cfg.out} is complete ({position}): nothing to do"
    return state, None, f"==> resume: {cfg.out} after {position}"


def init_context(threads):
    """``distributed.init``; in a process where TensorFlow already runs (a notebook's second
    run) its thread pools cannot change, so a single process keeps them."""
    from .. import distributed as dist

    try:
        return dist.init(threads)
    except RuntimeError:
        if dist.under_launcher():
            raise
        return dist.Context()


def save_model(model, run_dir: str | Path, name: str = "model.keras") -> Path:
    """``RUN/<name>``, written under a temporary name and renamed (atomic)."""
    import os

    path = Path(run_dir) / name
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}.{name}")
    try:
        model.save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
