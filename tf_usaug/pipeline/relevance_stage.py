"""Which relevance maps a rank asks for: its own, or on a small job the whole job's, one
child process per node.

Every rank of an NST job runs the relevance stage (``python -m tf_usaug.relevance``, its own
process) beside its stylizer's start-up. The child's fixed cost (TensorFlow, the classifier,
BatchNorm folding, the analyzer, the first graph run: about 15-20 s of CPU at 64 px,
``benchmarks/startup.py``) is paid once per child; each map then costs 0.3-0.6 s on a CPU
core. With one child per rank, a small job on a node whose ranks share its cores pays that
fixed cost once per rank, while the ranks' own start-up competes for the same cores: the
job's start-up grows with the rank count (issue 12, docs/performance.md).

So (:func:`share_relevance`): when the job needs at most :data:`SHARED_MAX` maps and the node runs
several ranks, every rank asks for EVERY map of the job, under one lock file in the cache
(:func:`cache_lock`). The first rank to take the lock runs one child for all of them; the
others then find them cached and start no child (:func:`~tf_usaug.xai.relevance.ensure_relevance`
returns at once). Larger jobs keep one child per rank for its own maps, in parallel on every
GPU. The maps are computed one image per analyze call, so they are the same bytes whichever
rank computes them, and the outputs stay independent of the rank count. Several nodes on one
shared cache: each node's first rank computes the missing maps (duplicate work on small jobs
only, identical bytes written atomically); a file system without locks degrades the same way.
"""
from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import NamedTuple, Sequence

#: A job with at most this many maps runs one relevance child per node (see the module
#: docstring): about the maps one child computes in the time of its own fixed cost.
SHARED_MAX = 64
LOCK_NAME = ".relevance.lock"


class NodeWork(NamedTuple):
    """What the job knows beyond a rank's own batches: every rank's pending batches, the
    number of ranks on this node and, when the ranks are bound to CPUs of their own, every
    CPU the node's ranks hold together (the one child per node runs on all of them, with as
    many threads, instead of on its rank's share)."""

    batches: Sequence[Sequence]
    local_size: int = 1
    cpus: Sequence[int] | None = None


def share_relevance(job_images: int, local_size: int) -> bool:
    """One child per node computes every rank's maps: a job of at most :data:`SHARED_MAX`
    content images with several ranks on the node (else each rank computes its own)."""
    return local_size > 1 and job_images <= SHARED_MAX


@contextlib.contextmanager
def cache_lock(cache: Path, enabled: bool = True):
    """Hold ``CACHE/.relevance.lock`` exclusively (blocking) while the block runs; the kernel
    drops it when the process dies. A file system without locks: no lock (see above)."""
    if not enabled:
        yield
        return
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / LOCK_NAME, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
