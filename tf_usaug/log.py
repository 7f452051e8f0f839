"""Human-facing output: one line per stage, details only with --verbose."""
from __future__ import annotations

import logging
import os
import sys
import time

_LOGGER = logging.getLogger("tf_usaug")


def setup(verbose: bool = False, rank: int = 0) -> logging.Logger:
    """Configure logging once per process.

    Rank 0 prints stage lines; other ranks print only warnings unless ``verbose``.
    ``verbose`` also lets TensorFlow's own C++/Python logging through.
    """
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    level = logging.INFO if (rank == 0 or verbose) else logging.WARNING
    if verbose:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    prefix = f"[rank {rank}] " if rank else ""
    handler.setFormatter(logging.Formatter(prefix + "%(message)s"))
    _LOGGER.handlers[:] = [handler]
    _LOGGER.setLevel(level)
    _LOGGER.propagate = False
    if not verbose:
        try:  # absl/TF python warnings ("5 out of the last 5 calls ... retracing")
            import absl.logging
            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:  # pragma: no cover
            pass
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return _LOGGER


def get() -> logging.Logger:
    return _LOGGER


class Stage:
    """Context manager that prints ``==> name`` and ``    done in X s``."""

    def __init__(self, name: str, logger: logging.Logger | None = None):
        self.name = name
        self.log = logger or _LOGGER
        self.seconds = 0.0

    def __enter__(self):
        self.log.info("==> %s", self.name)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.seconds = time.perf_counter() - self._t0
        if exc_type is None:
            self.log.debug("    %s done in %.1f s", self.name, self.seconds)
        return False
