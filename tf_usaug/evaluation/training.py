"""One classifier per arm and fold, through :mod:`tf_usaug.models.classifier`.

Every arm's fold i is the same :class:`~tf_usaug.models.classifier.ClassifierConfig` but for
its ``augmented`` folder: data = device A's BUSI folder, ``folds=K, fold=i``, the same seed
(so the same split, initial weights and batch-order rule), the same backbone, size and
epochs. The classifier splits the originals itself, by the rule :mod:`.folds` used to plan;
:func:`check_splits` compares its ``splits.json`` with the plan after training and refuses a
run whose split differs (a bug, never silently accepted): same train, validation and test
originals, every child of the training set added, none dropped or unmatched.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..models.classifier import ClassifierConfig
from .config import BenefitConfig
from .folds import Fold


def classifier_config(cfg: BenefitConfig, *, data: Path, out: Path, fold: Fold, size: int,
                      threads: int, augmented: Path | None) -> ClassifierConfig:
    """The classifier of one arm and fold (``resume=True``: a killed run continues)."""
    return ClassifierConfig(data=Path(data), out=Path(out),
                            augmented=(Path(augmented),) if augmented else (),
                            backbone=cfg.backbone, size=size, epochs=cfg.epochs,
                            folds=cfg.folds, fold=fold.index, seed=cfg.seed, resume=True,
                            threads=threads, verbose=cfg.verbose)


def train(ccfg: ClassifierConfig, rank: int):
    """Train (or resume, or read back) one classifier on this rank alone."""
    from ..models.classifier import train_classifier
    from .library import library_call

    with library_call(ccfg.verbose, rank):
        return train_classifier(ccfg)


def check_splits(run: Path, fold: Fold, children: int) -> dict:
    """The run's ``splits.json`` against the plan (RuntimeError on any difference)."""
    record = json.loads((Path(run) / "splits.json").read_text())
    problems = [f"{name}: {len(record[name])} originals, planned {len(planned)}"
                for name, planned in (("train", fold.train), ("val", fold.val),
                                      ("test", fold.test))
                if sorted(record[name]) != sorted(planned)]
    aug = record.get("augmented") or {}
    if children and aug.get("added") != children:
        problems.append(f"{aug.get('added')} children added, planned {children}")
    for key in ("dropped_val", "dropped_test", "unknown_parent"):
        if aug.get(key):
            problems.append(f"{aug[key]} children {key}")
    if problems:
        raise RuntimeError(f"{run}: the classifier's split is not the planned fold "
                           f"{fold.index} ({'; '.join(problems)})")
    return {"train": len(fold.train), "val": len(fold.val), "test": len(fold.test),
            "children": children, "checked": True}
