"""Planning: the work items and batches of a job, identical on every rank.

Work is a list of items (content image, k) enumerated identically on every rank, grouped into
fixed batches (so a batch, and therefore every output, does not depend on the number of
ranks). Each item's randomness comes from ``item_seed(seed, name)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.datasets import Sample, discover
from ..errors import UsageError
from .config import AugmentConfig


@dataclass(frozen=True)
class WorkItem:
    """One output image: the k-th augmentation of one content sample."""

    name: str                     # output name, e.g. "benign/l11-5v_benign_000__nst000"
    sample: Sample
    k: int
    seed: int
    styles: tuple[Path, ...] = field(default=())
    fingerprint: str = ""         # hash of the settings and input bytes that make it


def check_paths(cfg: AugmentConfig, contents: Sequence[Sample] = (),
                styles: Sequence[Path] = ()) -> None:
    """Refuse an output folder that is, holds or lies inside a folder the inputs come from.

    Checked against the ``--content`` / ``--styles`` arguments and against the folder of every
    input file (a CSV may list images anywhere), so the job never writes into a dataset.
    """
    out = Path(cfg.out).resolve()
    sources: dict[Path, str] = {}
    for name, src in (("--content", cfg.content), ("--styles", cfg.styles)):
        if src is not None:
            src = Path(src).resolve()
            sources.setdefault(src.parent if src.is_file() else src, name)
    for sample in contents:
        for path in (sample.image, *sample.masks):
            sources.setdefault(Path(path).resolve().parent, "--content")
    for path in styles:
        sources.setdefault(Path(path).resolve().parent, "--styles")
    for root, name in sources.items():
        if out == root or root in out.parents:
            raise UsageError(f"--out {cfg.out} is inside {root}, a folder of the {name} inputs; "
                             "choose an output folder outside your data")
        if out in root.parents:
            raise UsageError(f"{root}, a folder of the {name} inputs, lies inside --out "
                             f"{cfg.out}; choose an output folder outside your data")


def plan_items(cfg: AugmentConfig, contents: Sequence[Sample],
               style_pool: Sequence[Path]) -> list[WorkItem]:
    """Enumerate the work items deterministically (order: content key, then k)."""
    from ..distributed import item_seed

    pool = [(Path(p), Path(p).resolve()) for p in style_pool]
    candidates_of = {}
    for sample in contents:
        own = Path(sample.image).resolve()
        candidates_of[sample.key] = [p for p, real in pool if real != own] or [p for p, _ in pool]
    # one n for every item, so that batches stack (a small pool that holds some content images
    # leaves those items one candidate fewer)
    n_styles = min([cfg.n_styles] + [len(c) for c in candidates_of.values()])
    items = []
    for sample in contents:
        candidates = candidates_of[sample.key]
        for k in range(cfg.per_image):
            name = f"{sample.key}__{cfg.method}{k:03d}"
            seed = item_seed(cfg.seed, name)
            styles: tuple[Path, ...] = ()
            if cfg.method == "nst":
                rng = np.random.default_rng(seed)
                picks = rng.choice(len(candidates), size=n_styles, replace=False)
                styles = tuple(candidates[i] for i in picks)
            items.append(WorkItem(name, sample, k, seed, styles))
    return items


def make_batches(items: Sequence[WorkItem], batch_size: int) -> list[list[WorkItem]]:
    """Fixed consecutive groups: a batch's content never depends on the number of ranks."""
    return [list(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]


def style_pool(cfg: AugmentConfig, contents: Sequence[Sample]) -> list[Path]:
    """The style references of a job: --styles, else the content set itself (method nst only)."""
    if cfg.method != "nst":
        return []
    if cfg.styles is None:
        return [s.image for s in contents]
    return [s.image for s in discover(cfg.styles)]
