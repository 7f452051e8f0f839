"""The arms' augmented images: jobs of ``python -m tf_usaug.augment``'s library, and the part
of their outputs that each fold trains on.

* :func:`augment_config` is the :class:`~tf_usaug.pipeline.config.AugmentConfig` of an arm:
  the augment job's defaults (SRAD-filtered outputs, paper 002; batch 8) with the
  evaluation's size, seed, ``per_image`` and NST settings; ``crop="none"`` and ``fit="pad"``,
  because the classifier sees whole frames: the children show what their parents show, with
  the parents' aspect ratio. NST takes its references from the style pool (unseen devices'
  held-out images); ``nst`` explains fold i's own originals-only classifier by LRP
  (``relevance_model`` = that run folder), ``nst-no-lrp`` uses the plain content loss;
  ``gan`` samples fold i's per-class GAN (``model``, :mod:`.gan_arm`).
* :func:`generate` runs the job (:func:`tf_usaug.pipeline.job.run`): resumable by itself
  (finished items are skipped), on this rank alone (:mod:`.library`).
* :func:`fold_rows` / :func:`write_training_set` keep the rows whose parent is one of the
  fold's TRAINING originals and write them as the manifest of the fold's training set, so no
  child of a validation or test original even reaches the classifier.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Sequence

from ..files import atomic_write_bytes
from ..pipeline.config import AugmentConfig
from ..pipeline.outputs import read_manifest
from .config import Arm, BenefitConfig
from .folds import Fold, Plan


def augment_config(arm: Arm, cfg: BenefitConfig, *, size: int, threads: int, content: Path,
                   out: Path, styles: Path | None, cache: Path,
                   relevance_model: Path | None = None,
                   model: Path | None = None) -> AugmentConfig:
    """The augment job of ``arm`` (see the module docstring); ``model``: the GAN run of
    ``gan``."""
    nst = arm.method == "nst"
    return AugmentConfig(
        content=Path(content), styles=Path(styles) if nst and styles else None, out=Path(out),
        method=arm.method, model=Path(model) if model else None, per_image=cfg.per_image,
        size=size, seed=cfg.seed,
        n_styles=cfg.n_styles, iterations=cfg.iterations, weights=cfg.nst_weights,
        relevance=bool(arm.relevance),
        relevance_model=str(relevance_model) if relevance_model else "resnet50",
        cache=Path(cache) if nst else None, crop="none", fit="pad", report=True,
        threads=threads, verbose=cfg.verbose, progress=False)


def check_arm(arm: Arm, cfg: BenefitConfig, size: int) -> None:
    """The augment job's own checks of ``arm``'s settings, before any work (the relevance
    classifier and the GAN do not exist yet: the GAN's trainer checks its settings)."""
    from ..pipeline.settings import check_config

    if arm.method is None:
        return
    if arm.method == "gan":
        from . import gan_arm

        gan_arm.check(cfg, size)
        return
    probe = augment_config(arm._replace(relevance=False), cfg, size=size, threads=1,
                           content=Path("."), out=Path("."), styles=None, cache=Path("."))
    check_config(probe)


def generate(acfg: AugmentConfig, verbose: bool, rank: int) -> dict:
    """Run one augment job on this rank alone; returns its summary."""
    from ..pipeline.job import run
    from .library import library_call

    with library_call(verbose, rank):
        return run(acfg)


def read_rows(folder: Path) -> list[dict]:
    """The manifest rows of an augmentation folder (empty when it has none)."""
    path = Path(folder) / "manifest.jsonl"
    return read_manifest(path) if path.is_file() else []


def _real(path: str | os.PathLike, base: Path) -> str:
    p = Path(path)
    return os.path.realpath(p if p.is_absolute() else base / p)


def fold_rows(rows: Iterable[dict], folder: Path, fold: Fold, plan: Plan) -> list[dict]:
    """Rows of ``folder``'s manifest whose parent is one of ``fold``'s training originals,
    each with ``key`` (the parent's key) and ``image`` / ``mask_file`` (absolute paths)."""
    parents = {os.path.realpath(plan.samples[k].image): k for k in fold.train}
    out = []
    for row in rows:
        key = parents.get(_real(row["content"], folder.parent))
        if key is None:
            continue
        out.append({**row, "key": key, "image": str(Path(folder) / row["output"]),
                    "mask_file": str(Path(folder) / row["mask"]) if row.get("mask") else None})
    return sorted(out, key=lambda r: r["image"])


def write_training_set(rows: Sequence[dict], dest: Path) -> Path:
    """``dest/manifest.jsonl``: the fold's children, paths relative to ``dest`` (the
    classifier reads ``dest / output``). Same rows, same bytes: a rerun resumes."""
    dest = Path(dest)
    lines = []
    for row in rows:
        line = {k: v for k, v in row.items() if k not in ("key", "image", "mask_file")}
        line["output"] = os.path.relpath(row["image"], dest)
        line["mask"] = os.path.relpath(row["mask_file"], dest) if row.get("mask_file") else None
        lines.append(json.dumps(line, sort_keys=True) + "\n")
    atomic_write_bytes(dest / "manifest.jsonl", "".join(lines).encode())
    return dest
