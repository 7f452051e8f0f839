"""Horovod glue in one place: ranks, GPU pinning, threads, deterministic sharding, seeds.

Generation (``tf_usaug.augment``) is embarrassingly parallel: every rank enumerates the same
work items, takes a deterministic share, and never all-reduces anything per optimisation
step; the only collectives are a start barrier, a per-round progress count and a final
barrier. Training helpers (learning-rate scaling, optimizer wrapping, broadcasts) are in
:mod:`tf_usaug.distributed.training`.

Without ``horovodrun`` everything degrades to one rank, with no Horovod import at all.
Lines that only exist because of Horovod are marked ``# Horovod:``.
"""
from __future__ import annotations

import hashlib
import heapq
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# Variables that horovodrun (Gloo or MPI) or an MPI/SLURM launcher sets in each worker.
_LAUNCHER_RANK_VARS = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


def under_launcher() -> bool:
    """True when this process was started by horovodrun / mpirun (more than a plain python)."""
    return any(v in os.environ for v in _LAUNCHER_RANK_VARS)


@dataclass
class Context:
    """Where this process stands in the job. ``hvd`` is None for a single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    hvd: Any = field(default=None, repr=False)
    cpus: list[int] | None = None  # the CPUs this process is bound to (None: not bound)
    node_cpus: list[int] | None = None  # those it could use before binding (when bound)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce_sum(self, values: Sequence[float]) -> np.ndarray:
        """Sum a small vector over ranks (identity on one rank)."""
        arr = np.asarray(values, dtype=np.float64)
        if self.hvd is None:
            return arr
        import tensorflow as tf

        # Horovod: a collective; every rank must call it the same number of times.
        out = self.hvd.allreduce(tf.constant(arr), op=self.hvd.Sum, name=None)
        return np.asarray(out.numpy(), dtype=np.float64)

    def barrier(self) -> float:
        """Wait for every rank; returns the seconds spent waiting."""
        t0 = time.perf_counter()
        if self.hvd is not None:
            self.allreduce_sum([0.0])  # Horovod: an allreduce is a barrier
        return time.perf_counter() - t0

    def allgather_object(self, obj: Any) -> list:
        """Gather one picklable object per rank onto every rank."""
        if self.hvd is None:
            return [obj]
        return list(self.hvd.allgather_object(obj))  # Horovod


def default_threads(local_size: int) -> int:
    """CPU threads for one rank: the cores shared evenly between the ranks of this node."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, local_size))


def configure_threads(threads: int) -> None:
    """Pin TensorFlow's intra-op pool, and OpenCV's, to ``threads`` (call before any op runs)."""
    import cv2
    import tensorflow as tf

    cv2.setNumThreads(int(threads))
    tf.config.threading.set_intra_op_parallelism_threads(int(threads))
    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, int(threads))))


def pin_gpu(local_rank: int) -> str | None:
    """Make exactly one GPU visible to this rank (memory growth on). Returns its name."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    gpu = gpus[local_rank % len(gpus)]
    tf.config.experimental.set_memory_growth(gpu, True)
    tf.config.set_visible_devices(gpu, "GPU")  # Horovod: one GPU per local rank
    return gpu.name


def pin_cpus(local_rank: int, local_size: int, threads: int) -> list[int] | None:
    """Bind this process, all its threads, to CPUs of its own: local rank r takes CPUs
    ``[r * threads, (r + 1) * threads)`` of those it may use.

    Only with several ranks on the node (a lone process is left to the scheduler: two
    independent jobs must not both bind to CPU 0), when the allowed CPUs suffice for every
    local rank and no launcher has narrowed them already (SLURM ``--cpu-bind``), and not with
    ``TF_USAUG_PIN_CPUS=0``. Unbound one-thread
    ranks on a two-core machine let the scheduler move TensorFlow's threads between cores and
    lose up to 30 % of their speed to each other (measured: 9.4 s instead of 6.3 s per batch);
    bound, each keeps the speed it has alone.

    Returns:
        The CPUs bound to, or None when nothing was changed.
    """
    if not hasattr(os, "sched_setaffinity") or os.environ.get("TF_USAUG_PIN_CPUS") == "0":
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if local_size < 2 or threads < 1 or local_size * threads > len(allowed):
        return None
    cpus = allowed[local_rank * threads:(local_rank + 1) * threads]
    bind_process(cpus)
    return cpus


def bind_process(cpus: Sequence[int]) -> None:
    """Bind this process, every thread it has and those it starts later, to ``cpus``."""
    tasks = Path("/proc/self/task")
    for tid in ([int(t) for t in os.listdir(tasks)] if tasks.is_dir() else [0]):
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:  # a thread that ended meanwhile
            pass


def init(threads: int | None = None, use_horovod: bool | None = None,
         cycle_time_ms: float | None = None) -> Context:
    """Initialise the job: Horovod when launched by horovodrun, else a single rank.

    Pins one GPU per local rank, sets the CPU thread count (default: cores / local size) and,
    where the node has a core for every thread of every local rank, binds each rank to its
    own cores (:func:`pin_cpus`).

    Args:
        threads: CPU threads per rank (TensorFlow intra-op pool, OpenCV).
        use_horovod: force Horovod on/off (default: on under a launcher).
        cycle_time_ms: Horovod's background cycle (``HOROVOD_CYCLE_TIME``) unless the
            environment sets one. Every cycle coordinates all ranks even when nothing is
            pending: at Horovod's default (about 1 ms) an idle Gloo rank burns about 9 % of a
            core (measured here). Training keeps the default (gradient latency); the
            generation job, with one small collective per batch, passes 50.
    """
    if use_horovod is None:
        use_horovod = under_launcher()
    if not use_horovod:
        ctx = Context()
    else:
        import horovod.tensorflow as hvd  # Horovod

        if cycle_time_ms is not None:
            os.environ.setdefault("HOROVOD_CYCLE_TIME", str(cycle_time_ms))  # Horovod
        hvd.init()  # Horovod
        ctx = Context(hvd.rank(), hvd.size(), hvd.local_rank(), hvd.local_size(), hvd)
    pin_gpu(ctx.local_rank)
    threads = threads if threads else default_threads(ctx.local_size)
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    ctx.cpus = pin_cpus(ctx.local_rank, ctx.local_size, threads)
    ctx.node_cpus = allowed if ctx.cpus is not None else None
    configure_threads(threads)
    return ctx


def item_seed(global_seed: int, key: str) -> int:
    """A 31-bit seed derived from (global seed, item key): independent of ranks and order."""
    digest = hashlib.sha256(f"{int(global_seed)}\x00{key}".encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def shard(costs: Sequence[float], rank: int, size: int) -> list[int]:
    """Indices of the work units this rank takes, balanced by cost.

    Longest-processing-time-first: units sorted by decreasing cost (ties by index) go to the
    least-loaded rank (ties by rank). Deterministic, so every rank computes the same plan
    without communicating. Equal costs reduce to a round-robin deal.
    """
    if not 0 <= rank < size:
        raise ValueError(f"rank {rank} out of range for size {size}")
    order = sorted(range(len(costs)), key=lambda i: (-float(costs[i]), i))
    heap = [(0.0, r) for r in range(size)]
    mine = []
    for i in order:
        load, r = heapq.heappop(heap)
        if r == rank:
            mine.append(i)
        heapq.heappush(heap, (load + float(costs[i]), r))
    return sorted(mine)
