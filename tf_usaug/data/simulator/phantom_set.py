"""Writing a phantom set: one seeded item per image, atomic writes, resumable, in parallel."""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path


from .phantom import simulate_phantom


def item_name(probe: str, label: str, index: int) -> str:
    """File stem of one phantom, unique across probes: ``l11-5v_benign_000``."""
    return f"{probe.lower()}_{label}_{index:03d}"


@dataclass(frozen=True)
class Item:
    """One phantom to write: where, which class/probe, and its own seed."""

    out: Path
    probe: str
    label: str
    index: int
    seed: int
    size: int

    @property
    def image_path(self) -> Path:
        return self.out / self.label / f"{item_name(self.probe, self.label, self.index)}.png"

    @property
    def mask_path(self) -> Path:
        return self.out / self.label / f"{item_name(self.probe, self.label, self.index)}_mask.png"

    def done(self) -> bool:
        return self.image_path.exists() and self.mask_path.exists()


def plan_items(out: Path, probes: list[str], labels: list[str], n: int, seed: int,
               size: int) -> list[Item]:
    """All phantoms of a run; each seed is ``item_seed(seed, "probe/label/index")`` so that
    probes, classes and indices are independent and any subset can be (re)made alone."""
    from ...distributed import item_seed

    return [Item(out, p, lab, i, item_seed(seed, f"{p.lower()}/{lab}/{i}"), size)
            for p in probes for lab in labels for i in range(n)]


def write_item(item: Item) -> float:
    """Simulate one phantom and write image + mask atomically (mask first); returns seconds."""
    from ...files import atomic_write_bytes, encode_png

    t0 = time.perf_counter()
    image, mask = simulate_phantom(item.label, item.probe, item.seed, item.size)
    atomic_write_bytes(item.mask_path, encode_png(mask))
    atomic_write_bytes(item.image_path, encode_png(image))
    return time.perf_counter() - t0


def run(items: list, jobs: int, writer=None) -> list[float]:
    """Write the items with a progress bar; returns seconds per image.

    ``writer(item) -> seconds`` writes one item (default :func:`write_item`); with ``jobs > 1``
    it must be a module-level function (it is sent to spawned worker processes).
    """
    from tqdm import tqdm

    writer = write_item if writer is None else writer
    seconds = []
    with tqdm(total=len(items), unit="img", disable=None, file=sys.stderr) as bar:
        if jobs == 1:
            for item in items:
                seconds.append(writer(item))
                bar.update()
        else:
            # Fresh (spawned) workers with one BLAS thread each: `jobs` processes share the
            # cores instead of oversubscribing them; results are per-item, order-free.
            with _single_threaded_blas(), ProcessPoolExecutor(
                    max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(writer, item) for item in items]
                for fut in as_completed(futures):
                    seconds.append(fut.result())
                    bar.update()
    return seconds


@contextlib.contextmanager
def _single_threaded_blas():
    """Environment inherited by worker processes started inside: one BLAS/OpenMP thread."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update({k: "1" for k in names})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def prune_phantoms(out: Path, items: list, pattern: str = "*/*.png") -> int:
    """Delete the PNGs in ``out/<class>/`` (or ``pattern``) that belong to none of ``items``;
    returns how many."""
    keep = {p for it in items for p in (it.image_path, it.mask_path)}
    removed = 0
    for path in sorted(Path(out).glob(pattern)):
        if path not in keep:
            path.unlink()
            removed += 1
    return removed
