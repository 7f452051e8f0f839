"""Calling the augmentation and classifier libraries from inside the evaluation.

The evaluation shards whole work units (an augmentation set, one arm x fold) over the Horovod
ranks; each unit runs on ONE rank, as a single-process job. The libraries decide whether they
are part of a Horovod job from the launcher's variables (``HOROVOD_RANK``, ...): a classifier
trained on rank 3 alone must not wait for gradients from ranks that train other classifiers.
:func:`library_call` therefore hides those variables for the call (the process's Horovod
state is untouched; the evaluation's own collectives run outside such calls), keeps the
libraries' stage lines quiet unless ``--verbose`` and restores this process's log set-up.

:func:`one_gpu_per_rank` narrows ``CUDA_VISIBLE_DEVICES`` to the rank's own GPU before
TensorFlow starts, so the libraries' own GPU pinning (device 0 of what they see) is the same
GPU, and TensorFlow accepts the repeated, identical settings.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os

from .. import log as _log

# distributed.context.under_launcher() and cli.rank_from_env() read these.
_LAUNCHER_RANK_VARS = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
# Local rank as horovodrun, Open MPI, SLURM and MPICH set it.
_LOCAL_RANK_VARS = ("HOROVOD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID",
                    "MPI_LOCALRANKID")


class _LibraryInfo(logging.Filter):
    """Drops the libraries' INFO lines (their ``==>`` stages, epochs); warnings pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


@contextlib.contextmanager
def library_call(verbose: bool, rank: int):
    """Run a library job on this rank alone and quietly (see the module docstring)."""
    saved = {k: os.environ.pop(k) for k in _LAUNCHER_RANK_VARS if k in os.environ}
    logger = _log.get()
    quiet = None if verbose else _LibraryInfo()
    if quiet is not None:
        logger.addFilter(quiet)  # on the "tf_usaug" logger only: our child logger passes
    try:
        yield
    finally:
        os.environ.update(saved)
        if quiet is not None:
            logger.removeFilter(quiet)
        _log.setup(verbose, rank)  # the library set the log up for its own rank 0
        _release_models()


def _release_models() -> None:
    """Free the Keras models a finished job built (one process runs many jobs)."""
    import sys

    if "tensorflow" in sys.modules:
        import tensorflow as tf

        tf.keras.backend.clear_session()
    gc.collect()


def local_rank_from_env() -> int | None:
    for var in _LOCAL_RANK_VARS:
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                return None
    return None


def one_gpu_per_rank() -> None:
    """Under a launcher, let this rank see its own GPU only (call before TensorFlow starts)."""
    if not any(v in os.environ for v in _LAUNCHER_RANK_VARS):
        return
    local = local_rank_from_env()
    if local is None:
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
    else:  # the node's GPUs, as the driver's device files show them
        import re

        ids = sorted((n[len("nvidia"):] for n in os.listdir("/dev")
                      if re.fullmatch(r"nvidia\d+", n)), key=int) if os.path.isdir("/dev") \
            else []
    if ids:  # none: GPUs hidden on purpose, or a CPU node
        os.environ["CUDA_VISIBLE_DEVICES"] = ids[local % len(ids)]
