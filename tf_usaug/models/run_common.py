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
from typing import Iterable

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
