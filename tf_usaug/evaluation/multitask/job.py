"""The multitask ablation across scanners: :func:`run_multitask_eval` (library side of
``python -m tf_usaug.evaluate multitask``).

Per seed ``s``:

1. Device A's originals are split by source image, stratified, seeded: ``1 - test_fraction``
   train (the trainer takes 20 % of it for validation), ``test_fraction`` test.
2. Every other device gives ``style_fraction`` of its originals as the reference pool of
   MixStyleAug / MaskAug; its other originals are its test set (never seen in training, not
   even as references).
3. Each row trains the multitask network (``tf_usaug.models.multitask``) on A's training
   originals with the same seed; the runs resume after a kill.
4. Each run is tested on the untouched test originals: DSC (eq. 3, per image, mean) and
   AUROC per device.

Then mean +- sd over seeds and paired tests (same seed = same split, same initial weights)
of every row against ``traditional``; ``report.{json,md,html}`` and plots.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ...data.datasets import split
from ...errors import UsageError
from ...files import write_json
from ...rundir import RunDir
from ..devices import discover_devices, link_flat, link_samples
from ..folds import split_style_pool
from .config import METRICS, REFERENCE, ROWS, MultitaskEvalConfig, check_config

JOB = "evaluate-multitask"


def plan_seed(devices, train: str, tests, seed: int, test_fraction: float,
              style_fraction: float) -> dict:
    """``{"train", "test": {device: samples}, "styles"}`` of one seed (see the module)."""
    parts = split(devices[train], (1.0 - test_fraction, 0.0, test_fraction), seed)
    out = {"train": parts["train"], "test": {train: parts["test"]}, "styles": []}
    for device in tests:
        if device == train:
            continue
        pool, test = split_style_pool(devices[device], style_fraction, seed, device)
        out["styles"] += pool
        out["test"][device] = test
    if not out["styles"]:
        raise UsageError("no style references: give at least one --test-devices device "
                         "besides --train-device (its style share is the reference pool)")
    return out


def measure(run_dir: Path, test_sets: dict, size: int) -> dict:
    """DSC (mean over images) and AUROC of a finished run on each test set."""
    from ...metrics.classification import roc_auc
    from ...models.multitask.data import load_samples
    from ...models.multitask.losses import dsc
    from ...models.multitask.run_files import load_multitask_run, predict

    run = load_multitask_run(run_dir)
    names = tuple(run.info["class_names"])
    out = {}
    for device, samples in test_sets.items():
        data = load_samples(samples, size, names)
        seg, score = predict(run, data.images)
        per_image = [dsc(p > 0.5, m > 0.5) for p, m in zip(seg, data.masks)]
        out[device] = {"dsc": float(np.mean(per_image)), "auroc": roc_auc(
            data.labels.tolist(), score.tolist()), "images": len(samples),
            "dsc_per_image": [round(v, 5) for v in per_image]}
    return out


def run_multitask_eval(cfg: MultitaskEvalConfig) -> dict:
    """Train every row for every seed, test, aggregate, write the report; returns it."""
    from ... import log as _log
    from ...models.multitask import MultitaskConfig
    from ...models.multitask.training_loop import train_multitask
    from .report import aggregate, write_report

    t0 = time.perf_counter()
    check_config(cfg)
    out = Path(cfg.out)
    devices = discover_devices(cfg.data)
    train = devices.resolve(cfg.train_device, "--train-device")
    tests = [devices.resolve(d, "--test-devices") for d in (cfg.test_devices
                                                             or tuple(devices.devices))]
    tests = [train] + [d for d in dict.fromkeys(tests) if d != train]
    rows = [REFERENCE] + [r for r in cfg.rows if r != REFERENCE]
    log = _log.setup(cfg.verbose, 0)
    rundir = RunDir(out)
    rundir.check_target()
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()
                if k not in ("out", "threads", "overwrite", "verbose", "command", "data")}
    settings["data"] = str(Path(cfg.data).resolve())
    results: dict = {r: {} for r in rows}
    with rundir:
        rundir.check_settings(JOB, json.loads(json.dumps(settings, default=str)),
                              cfg.overwrite, (out / "results").exists())
        log.info("==> data: %s; train on %s, test on %s; rows %s; %d seeds", devices.describe(),
                 train, ", ".join(tests), ", ".join(rows), cfg.seeds)
        plans = {}
        for seed in range(cfg.seeds):
            plan = plans[seed] = plan_seed(devices.devices, train, tests, seed,
                                           cfg.test_fraction, cfg.style_fraction)
            data_dir = link_samples(plan["train"], out / "data" / f"seed{seed}" / "train")
            style_dir = link_flat(plan["styles"], out / "data" / f"seed{seed}" / "styles")
            for row in rows:
                path = out / "results" / row / f"seed{seed}.json"
                if path.is_file() and not cfg.overwrite:
                    results[row][seed] = json.loads(path.read_text())
                    continue
                spec = ROWS[row]
                run_dir = out / "runs" / row / f"seed{seed}"
                with _log.Stage(f"seed {seed}, {spec.label}: train", log):
                    res = train_multitask(MultitaskConfig(
                        data=data_dir, styles=style_dir if (spec.mixstyle or spec.maskaug)
                        else None, out=run_dir, size=cfg.size, epochs=cfg.epochs,
                        batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                        filters=tuple(cfg.filters),
                        feataug=spec.feataug, mixstyle=spec.mixstyle, maskaug=spec.maskaug,
                        maskaug_warmup=cfg.maskaug_warmup, wct_steps=cfg.wct_steps, seed=seed,
                        threads=cfg.threads, resume=not cfg.overwrite,
                        overwrite=cfg.overwrite, verbose=cfg.verbose))
                record = {"row": row, "seed": seed, "metrics": measure(run_dir, plan["test"],
                                                                        cfg.size),
                          "val": res.metrics["final"],
                          "train_seconds": res.metrics["train_seconds"]}
                write_json(path, record)
                results[row][seed] = record
                log.info("seed %d, %s: %s", seed, spec.label, "; ".join(
                    f"{d} DSC {m['dsc']:.3f} AUROC "
                    + ("n/a" if m["auroc"] is None else f"{m['auroc']:.3f}")
                    for d, m in record["metrics"].items()))
        summary = aggregate(results, rows, tests)
        report = {"command": cfg.command, "settings": settings, "train_device": train,
                  "test_devices": tests, "rows": rows,
                  "row_labels": {r: ROWS[r].label for r in rows}, "seeds": cfg.seeds,
                  "images": {"train": len(plans[0]["train"]), "styles": len(plans[0]["styles"]),
                             "test": {d: len(s) for d, s in plans[0]["test"].items()}},
                  "metrics": list(METRICS), **summary,
                  "wall_seconds": round(time.perf_counter() - t0, 1)}
        write_report(report, out)
    log.info("==> wrote %s/report.md, report.html, report.json", out)
    return report
