"""The work units of an evaluation, each run on one rank, each resumable.

* ``generate <arm>``: a shared augmentation job over ALL of device A's originals (arms whose
  outputs depend only on their original and the style pool: traditional, srad, nst-no-lrp).
  Each original is augmented once; fold i later takes the children of its training originals
  only. Done = ``work/generated/<arm>.json`` with the evaluation's fingerprint.
* ``<arm> fold i``: (``nst``: link fold i's training originals, run the augment job on them
  with LRP of fold i's originals-only classifier; ``gan``: train a GAN per class on them,
  then run the augment job with it, :mod:`.gan_arm`) -> write the fold's training set (its
  training originals' children) -> train the classifier -> check its split -> measure ->
  ``work/results/<arm>/fold<i>.json``, written atomically and last: a rerun reuses it when its
  fingerprint matches, and continues the libraries' own resumable work otherwise (finished
  augmentations are skipped, a killed classifier continues from its last epoch).

Phase 1 holds the shared jobs and every ``none`` fold (nst needs fold i's ``none`` model);
phase 2 every other arm x fold. :func:`phases` lists them with a rough cost, by which the job
shards them over the ranks (:func:`tf_usaug.distributed.shard`).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from .. import log as _log
from ..files import write_json
from ..rundir import fingerprint
from . import augmentation, gan_arm, measure, training
from .config import ARMS, BenefitConfig
from .devices import link_samples
from .folds import IN_DOMAIN, Plan
from .layout import ReportDir

log = _log.get().getChild("evaluation")  # passes the libraries' quiet filter (library.py)


@dataclass
class Setup:
    """What every unit needs (identical on every rank)."""

    cfg: BenefitConfig
    plan: Plan
    paths: ReportDir
    data_folder: Path     # device A's BUSI folder (the classifier's data, the augment content)
    arms: tuple[str, ...]  # resolved, ``none`` first
    size: int
    threads: int
    fingerprint: str      # of the evaluation's settings (run.json)
    rank: int = 0


@dataclass(frozen=True)
class Unit:
    kind: str          # "generate" or "fold"
    arm: str
    fold: int | None
    cost: float

    @property
    def name(self) -> str:
        return f"generate {self.arm}" if self.kind == "generate" else \
            f"{self.arm} fold {self.fold}"


def _cost(setup: Setup, arm: str, per_fold_items: int) -> float:
    """Rough seconds: NST iterations dominate generation, epochs x images training, GAN
    steps x classes."""
    a = ARMS[arm]
    per = setup.cfg.per_image * (setup.cfg.iterations / 50 if a.method == "nst" else 0.1)
    cost = per_fold_items * per * (setup.size / 64) ** 2
    if a.method == "gan":
        side = gan_arm.gan_size(setup.size) / 64
        cost += (gan_arm.train_steps(setup.cfg, setup.size) * 0.5
                 * len(setup.plan.class_names) * side ** 2)
    return cost


def phases(setup: Setup) -> list[list[Unit]]:
    """``[phase 1 units, phase 2 units]`` (see the module docstring)."""
    n_all = len(setup.plan.samples)
    train_cost = setup.cfg.epochs * n_all * (setup.size / 64) ** 2 * 0.05
    first, second = [], []
    for arm in setup.arms:
        a = ARMS[arm]
        if a.method is not None and not a.per_fold:
            first.append(Unit("generate", arm, None, _cost(setup, arm, n_all)))
    for fold in setup.plan.folds:
        first.append(Unit("fold", "none", fold.index, train_cost))
        for arm in setup.arms[1:]:
            a = ARMS[arm]
            children = len(fold.train) * setup.cfg.per_image
            extra = _cost(setup, arm, len(fold.train)) if a.per_fold else 0.0
            second.append(Unit("fold", arm, fold.index,
                               train_cost * (1 + children / max(1, n_all)) + extra))
    return [first, second]


# ----------------------------------------------------------------------------- done or not


def result_fingerprint(setup: Setup, arm: str, fold: int) -> str:
    own = gan_arm.arm_settings(setup.cfg, arm)
    return fingerprint({"evaluation": setup.fingerprint, **own}, arm=arm, fold=fold)


def read_result(setup: Setup, arm: str, fold: int) -> dict | None:
    """The stored result of ``arm`` x ``fold`` when it matches this evaluation, else None."""
    path = setup.paths.result(arm, fold)
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if result.get("fingerprint") == result_fingerprint(setup, arm, fold) else None


def _marker(setup: Setup, arm: str) -> dict | None:
    try:
        marker = json.loads(setup.paths.generated(arm).read_text())
    except (OSError, ValueError):
        return None
    return marker if marker.get("fingerprint") == setup.fingerprint else None


def _generated(setup: Setup, arm: str) -> bool:
    return _marker(setup, arm) is not None


def generated_markers(setup: Setup) -> dict:
    """arm -> the marker of its shared augmentation job (those that ran)."""
    return {arm: m for arm in setup.arms if (m := _marker(setup, arm)) is not None}


def is_done(setup: Setup, unit: Unit) -> bool:
    """A fold unit with its result; a shared job with its marker, or whose folds are all done."""
    if unit.kind == "fold":
        return read_result(setup, unit.arm, unit.fold) is not None
    return _generated(setup, unit.arm) or all(
        read_result(setup, unit.arm, f.index) is not None for f in setup.plan.folds)


# ----------------------------------------------------------------------------- running


def run_unit(setup: Setup, unit: Unit) -> dict:
    """Run one unit (it is not done); returns its result (fold) or marker (generate)."""
    t0 = time.perf_counter()
    if unit.kind == "generate":
        log.info("==> generate %s: %d originals of %s x %d", unit.arm,
                 len(setup.plan.samples), setup.plan.train_device, setup.cfg.per_image)
        summary = augmentation.generate(_augment_config(setup, unit.arm, None), setup.cfg.verbose,
                                        setup.rank)
        marker = {"arm": unit.arm, "fingerprint": setup.fingerprint,
                  "images": summary.get("images"), "complete": summary.get("complete"),
                  "seconds": round(time.perf_counter() - t0, 3)}
        write_json(setup.paths.generated(unit.arm), marker)
        log.info("    generate %s: %s images in %.1f s", unit.arm, marker["images"],
                 marker["seconds"])
        return marker
    return _run_fold(setup, unit.arm, unit.fold, t0)


def _augment_config(setup: Setup, arm: str, fold: int | None):
    paths, a = setup.paths, ARMS[arm]
    content = setup.data_folder if fold is None else paths.content(fold)
    model = paths.run("none", fold) if a.relevance else None
    return augmentation.augment_config(
        a, setup.cfg, size=setup.size, threads=setup.threads, content=content,
        out=paths.augmented(arm, fold), styles=paths.styles, cache=paths.relevance_cache,
        relevance_model=model, model=paths.gan(fold) if a.method == "gan" else None)


def _run_fold(setup: Setup, arm: str, index: int, t0: float) -> dict:
    cfg, paths, plan = setup.cfg, setup.paths, setup.plan
    a, fold = ARMS[arm], plan.folds[index]
    k = len(plan.folds)
    log.info("==> %s fold %d/%d: %s", arm, index + 1, k,
             "train on originals" if a.method is None else
             ("augment the fold's training originals, train" if a.per_fold
              else "train on originals + shared children"))
    seconds: dict = {}

    # The fold's training set: its training originals' children (nst: made for this fold).
    rows: list[dict] = []
    augmented = None
    if a.method is not None:
        folder = paths.augmented(arm, index if a.per_fold else None)
        if a.per_fold:
            link_samples([plan.samples[key] for key in fold.train], paths.content(index))
            if a.method == "gan":  # the fold's GANs see its training originals only
                t = time.perf_counter()
                gan_arm.clear_stale(cfg, paths.gan(index), folder,
                                    paths.training_set(arm, index), paths.run(arm, index))
                gan_arm.train(cfg, gan_arm.gan_config(
                    cfg, content=paths.content(index), out=paths.gan(index), size=setup.size,
                    threads=setup.threads), setup.rank)
                seconds["train_gan"] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            augmentation.generate(_augment_config(setup, arm, index), cfg.verbose, setup.rank)
            seconds["generate"] = round(time.perf_counter() - t, 3)
        rows = augmentation.fold_rows(augmentation.read_rows(folder), folder, fold, plan)
        expected = len(fold.train) * cfg.per_image
        if len(rows) != expected:
            raise RuntimeError(f"{folder}: {len(rows)} children of fold {index}'s training "
                               f"originals, expected {expected} (an incomplete augmentation)")
        augmented = augmentation.write_training_set(rows, paths.training_set(arm, index))

    # Train with the same seeds as every other arm; check the split it made.
    t = time.perf_counter()
    run_dir = paths.run(arm, index)
    result = training.train(training.classifier_config(
        cfg, data=setup.data_folder, out=run_dir, fold=fold, size=setup.size,
        threads=setup.threads, augmented=augmented), setup.rank)
    seconds["train"] = round(time.perf_counter() - t, 3)
    splits = training.check_splits(run_dir, fold, len(rows))

    # Measure on untouched originals; what the children kept of their contents.
    t = time.perf_counter()
    run = measure.load_run(run_dir)
    predictions = measure.predict_sets(run, plan.test_sets(fold), plan.class_names)
    transplant = None
    if a.method is not None:
        transplant = measure.transplant(rows, plan.samples, plan.class_names,
                                        measure.load_run(paths.run("none", index)),
                                        setup.size, a.relevance)
    seconds["evaluate"] = round(time.perf_counter() - t, 3)
    metrics = result.metrics
    record = {
        "arm": arm, "fold": index, "fingerprint": result_fingerprint(setup, arm, index),
        "rank": setup.rank, "seconds": seconds,
        "run": paths.relative(run_dir),
        "training_set": paths.relative(augmented) if augmented else None,
        "classifier": {"epochs_run": metrics.get("epochs_run"),
                       "best_epoch": metrics.get("best_epoch"),
                       "train_images": metrics.get("train_images"),
                       "val_images": metrics.get("val_images")},
        "splits": splits,
        "metrics": measure.set_metrics(predictions, plan.class_names),
        "predictions": predictions,
        "transplant": transplant,
    }
    write_json(paths.result(arm, index), record)  # last: the unit is done
    m = record["metrics"]
    log.info("    %s fold %d/%d: %s (%.1f s)", arm, index + 1, k, "; ".join(
        f"{name} acc {m[name]['accuracy']:.3f}" for name in (IN_DOMAIN, *plan.unseen)),
        time.perf_counter() - t0)
    return record
