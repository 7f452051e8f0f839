"""Horovod glue in one place: ranks, GPU pinning, threads, deterministic sharding, seeds.

Generation (``tf_usaug.augment``) is embarrassingly parallel: every rank enumerates the same
work items, takes a deterministic share, and never all-reduces anything per optimisation
step; the only collectives are a start barrier, a per-round progress count and a final
barrier. Training helpers (learning-rate scaling, optimizer wrapping, broadcasts) live
further down in this module.

Without ``horovodrun`` everything degrades to one rank, with no Horovod import at all.
Lines that only exist because of Horovod are marked ``# Horovod:``.
"""
from __future__ import annotations

import hashlib
import heapq
import os
import time
from dataclasses import dataclass, field
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
    """Pin TensorFlow's intra-op pool to ``threads`` (call before any op runs)."""
    import tensorflow as tf

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


def init(threads: int | None = None, use_horovod: bool | None = None) -> Context:
    """Initialise the job: Horovod when launched by horovodrun, else a single rank.

    Pins one GPU per local rank and sets the CPU thread count (default: cores / local size).
    """
    if use_horovod is None:
        use_horovod = under_launcher()
    if not use_horovod:
        ctx = Context()
    else:
        import horovod.tensorflow as hvd  # Horovod

        hvd.init()  # Horovod
        ctx = Context(hvd.rank(), hvd.size(), hvd.local_rank(), hvd.local_size(), hvd)
    pin_gpu(ctx.local_rank)
    configure_threads(threads if threads else default_threads(ctx.local_size))
    return ctx


def item_seed(global_seed: int, key: str) -> int:
    """A 31-bit seed derived from (global seed, item key): independent of ranks and order."""
    digest = hashlib.sha256(f"{int(global_seed)}\x00{key}".encode()).digest()
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
