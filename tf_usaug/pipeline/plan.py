"""Planning: the work items and batches of a job, identical on every rank.

Work is a list of items (content image, k) enumerated identically on every rank, grouped into
fixed batches (so a batch, and therefore every output, does not depend on the number of
ranks). Each item's randomness comes from ``item_seed(seed, name)``, its style references
included: without ``--styles`` they come from the content images of its own label
(``--style-pool same-label``, default) or from all of them (``any``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.datasets import Sample, discover
from ..errors import UsageError
from .config import STYLE_POOLS, AugmentConfig


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
    """Enumerate the work items deterministically (order: content key, then k).

    Every item draws ``n`` references from its candidates with its own seed: ``n`` is
    ``cfg.n_styles``, or fewer when the pool is that small (the same ``n`` for every item, so
    that batches stack). Without ``--styles`` and with ``style_pool="same-label"`` an item's
    candidates are the other pool images of its label (see :func:`same_label_candidates`).
    """
    from ..distributed import item_seed

    pool = [(Path(p), Path(p).resolve()) for p in style_pool]
    candidates_of = {}
    for sample in contents:
        own = Path(sample.image).resolve()
        candidates_of[sample.key] = [p for p, real in pool if real != own] or [p for p, _ in pool]
    # one n for every item, so that batches stack (a small pool that holds some content images
    # leaves those items one candidate fewer)
    n_styles = min([cfg.n_styles] + [len(c) for c in candidates_of.values()])
    if cfg.method == "nst" and uses_same_label(cfg):
        candidates_of = same_label_candidates(contents, style_pool, n_styles, candidates_of)
    items = []
    for sample in contents:
        candidates = candidates_of[sample.key]
        for k in range(cfg.per_image):
            name = f"{sample.key}__{cfg.method}{k:03d}"
            seed = item_seed(cfg.seed, name)
            styles: tuple[Path, ...] = ()
            if cfg.method == "nst":
                styles = draw_styles(np.random.default_rng(seed), candidates, n_styles)
            items.append(WorkItem(name, sample, k, seed, styles))
    return items


def check_gan_labels(cfg: AugmentConfig, contents: Sequence[Sample]) -> None:
    """``--method gan``: each original's K outputs are generated for its class (docs/gan.md),
    so every content label must be one the model generates; unlabelled contents need a model
    without classes. Raises :class:`UsageError` naming the labels and the model. Nothing to
    check for other methods."""
    if cfg.method != "gan":
        return
    from ..models.gan.registry import covered_classes, read_gan_info

    covered = covered_classes(read_gan_info(cfg.model))
    labels = sorted({s.label for s in contents if s.label is not None})
    unlabelled = [s for s in contents if s.label is None]
    if covered is None and labels:
        raise UsageError(f"--model {cfg.model} generates images without a class, but the "
                         f"content images are labelled ({', '.join(labels)}): train the GAN "
                         "with --per-class or --conditional so its outputs carry a class")
    if covered is not None and unlabelled:
        raise UsageError(f"--model {cfg.model} generates classes ({', '.join(covered)}) but "
                         f"{unlabelled[0].image} has no label: give labelled contents (BUSI "
                         "folder ROOT/<class>/<image> or a CSV with labels)")
    missing = [label for label in labels if label not in (covered or [])]
    if missing:
        raise UsageError(f"--model {cfg.model} cannot generate class {missing[0]!r} of the "
                         f"content images (it covers {', '.join(covered or [])}); train it "
                         "on originals of every class")


def draw_styles(rng: np.random.Generator, candidates: Sequence[Path], n: int
                ) -> tuple[Path, ...]:
    """``n`` of ``candidates``: without replacement, or, when there are fewer than ``n``,
    all of them in a random order, repeated in that order up to ``n``."""
    if len(candidates) >= n:
        picks = rng.choice(len(candidates), size=n, replace=False)
    else:
        order = rng.permutation(len(candidates))
        picks = [order[i % len(order)] for i in range(n)]
    return tuple(candidates[i] for i in picks)


def uses_same_label(cfg: AugmentConfig) -> bool:
    """True when references are drawn from the content's own label (no --styles folder)."""
    check_style_pool(cfg.style_pool)
    return cfg.styles is None and cfg.style_pool == "same-label"


def check_style_pool(value: str) -> None:
    if value not in STYLE_POOLS:
        raise UsageError(f"unknown --style-pool {value!r}; choose from {', '.join(STYLE_POOLS)}")


def same_label_candidates(contents: Sequence[Sample], style_pool: Sequence[Path], n: int,
                          fallback: dict[str, list[Path]] | None = None
                          ) -> dict[str, list[Path]]:
    """``{content key: its style candidates}`` for ``--style-pool same-label``.

    A labelled content image draws from the pool images of its own label other than itself
    (labels are those of ``contents``; pool images that are not content images have none).
    A label with fewer other images than ``n`` repeats them (:func:`draw_styles`); a label
    with one image takes that image itself, so its outputs keep their own style; both say so
    in one warning. An unlabelled content image draws from ``fallback[key]`` (the whole pool,
    as ``--style-pool any``), which the log says once. Raises :class:`UsageError` naming the
    label when a labelled image has no candidate at all (not even itself in the pool).
    """
    from .. import log as _log

    log = _log.get()
    pool = [(Path(p), Path(p).resolve()) for p in style_pool]
    label_of: dict[Path, str | None] = {}
    for sample in contents:
        label_of.setdefault(Path(sample.image).resolve(), sample.label)
    by_label: dict[str | None, list[tuple[Path, Path]]] = {}
    for p, real in pool:  # pool order kept: the draw depends on nothing else
        by_label.setdefault(label_of.get(real), []).append((p, real))
    out, short, unlabelled = {}, {}, 0
    for sample in contents:
        if sample.label is None:
            unlabelled += 1
            out[sample.key] = list((fallback or {}).get(sample.key)
                                   or [p for p, _ in pool])
            continue
        own = Path(sample.image).resolve()
        same = by_label.get(sample.label, [])
        others = [p for p, real in same if real != own]
        if len(others) < n:
            short[sample.label] = min(len(others), short.get(sample.label, len(others)))
        if not others:
            others = [p for p, _ in same]
        if not others:
            raise UsageError(f"--style-pool same-label: label {sample.label!r} has no image in "
                             f"the style pool to take {sample.image}'s style from; add images "
                             "of that label, or pass --style-pool any or --styles DIR")
        out[sample.key] = others
    if unlabelled == len(contents) and contents:
        log.info("--style-pool same-label: the content images have no labels, so every "
                 "output draws its style references from all of them (as --style-pool any)")
    elif unlabelled:
        log.info("--style-pool same-label: %d content image(s) have no label and draw their "
                 "style references from all content images (as --style-pool any)", unlabelled)
    if short:
        what = ", ".join(f"{label!r} ({count} other image{'s' if count != 1 else ''})"
                         for label, count in sorted(short.items()))
        log.warning("--style-pool same-label: too few images for %d references per output in "
                    "label(s) %s: their outputs repeat references (a label of one image is its "
                    "own reference, its outputs keep their style); --style-pool any draws "
                    "from every label", n, what)
    return out


def make_batches(items: Sequence[WorkItem], batch_size: int) -> list[list[WorkItem]]:
    """Fixed consecutive groups: a batch's content never depends on the number of ranks."""
    return [list(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]


def style_pool(cfg: AugmentConfig, contents: Sequence[Sample]) -> list[Path]:
    """The style references of a job: --styles, else the content set itself (method nst only).

    Which of them an item may draw (``--style-pool``) is decided by :func:`plan_items`.
    """
    if cfg.method != "nst":
        return []
    check_style_pool(cfg.style_pool)
    if cfg.styles is None:
        return [s.image for s in contents]
    return [s.image for s in discover(cfg.styles)]
