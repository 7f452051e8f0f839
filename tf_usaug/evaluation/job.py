"""The benefit evaluation (library side of ``python -m tf_usaug.evaluate benefit``):
:func:`run_benefit`, one function in commented phases.

Does augmenting device A's training images help a classifier, in-domain and on an unseen
scanner? Every arm (``none``, ``traditional``, ``srad``, ``nst``, ``nst-no-lrp``) is trained
per fold with the same seeds and tested on the same untouched originals; the report gives
mean +- sd over folds, paired tests against ``none`` and ``traditional``, and what the
augmented images kept of their contents (docs/benefit.md).

Horovod (``horovodrun -np N``): every rank plans the same work; the units of each phase
(:mod:`.units`) are dealt out by cost (:func:`tf_usaug.distributed.shard`) and each runs on
its rank alone; a barrier ends each phase (phase 2 reads phase 1's files, so the report
folder must be shared); rank 0 gathers the results and writes the report. Lines that exist
because of Horovod are marked ``# Horovod:``.
"""
from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
from pathlib import Path

from .. import distributed as dist
from .. import log as _log
from ..cli import rank_from_env
from ..data.datasets import discover
from ..errors import UsageError
from ..files import file_digest, path_digest, write_json
from ..rundir import RunDir, fingerprint
from .augmentation import check_arm
from .config import ARMS, BenefitConfig, check_config, resolved_arms
from .devices import DeviceSet, discover_devices, link_flat, link_samples
from .folds import IN_DOMAIN, make_plan
from .layout import ReportDir
from .library import one_gpu_per_rank
from .report import build_report, write_report
from .units import Setup, generated_markers, is_done, phases, read_result, run_unit

JOB = "evaluate-benefit"


def _data_fingerprint(devices: DeviceSet) -> str:
    """sha256 over every device's keys, labels and file contents (images and masks)."""
    digest = hashlib.sha256()
    for device, samples in devices.devices.items():
        for s in samples:
            files = [file_digest(p) for p in (s.image, *s.masks)]
            digest.update(f"{device}\0{s.key}\0{s.label}\0{','.join(files)}\n".encode())
    return digest.hexdigest()[:32]


def _weights_identity(weights: str) -> str:
    if str(weights).lower() in ("imagenet", "none"):
        return str(weights).lower()
    if not Path(weights).is_file():
        raise UsageError(f"--nst-weights {weights}: file not found (give imagenet, none or an "
                         "existing .h5 file)")
    return "sha256:" + path_digest(weights)


def run_settings(cfg: BenefitConfig, devices: DeviceSet, train: str, tests, size: int) -> dict:
    """What changes the results (compared with ``REPORT/run.json``). The arms are not among
    them: a rerun may add or drop arms and reuses the others' results."""
    return {"data": str(Path(cfg.data).resolve()), "layout": devices.layout,
            "data_fingerprint": _data_fingerprint(devices), "train_device": train,
            "test_devices": sorted(tests), "folds": cfg.folds, "seed": cfg.seed, "size": size,
            "per_image": cfg.per_image, "iterations": cfg.iterations, "epochs": cfg.epochs,
            "backbone": cfg.backbone, "nst_weights": _weights_identity(cfg.nst_weights),
            "n_styles": cfg.n_styles, "style_fraction": float(cfg.style_fraction)}


def _classifier_size(cfg: BenefitConfig) -> int:
    """The size every job uses: ``--size``, else the backbone's (classifier checks apply)."""
    from ..models.classifier import ClassifierConfig

    return ClassifierConfig(data=Path(cfg.data), out=Path(cfg.out) / "work", size=cfg.size,
                            backbone=cfg.backbone, epochs=cfg.epochs, folds=cfg.folds, fold=0,
                            seed=cfg.seed).resolved().size


def run_benefit(cfg: BenefitConfig) -> dict:
    """Run (or resume) one benefit evaluation; returns the report (rank 0; others ``{}``)."""
    t_start = time.perf_counter()
    # Check arguments, devices and folds: nothing is built or written before this passes.
    check_config(cfg)
    arms = resolved_arms(cfg.arms)
    paths = ReportDir(cfg.out)
    rundir = RunDir(paths.root)
    rundir.check_target()
    devices = discover_devices(cfg.data)
    train = devices.resolve(cfg.train_device, "--train-device")
    tests = list(dict.fromkeys([train, *(devices.resolve(d, "--test-devices")
                                          for d in (cfg.test_devices or devices.devices))]))
    size = _classifier_size(cfg)
    for arm in arms:
        check_arm(ARMS[arm], cfg, size)
    if len(tests) < 2 and any(ARMS[a].method == "nst" for a in arms):
        raise UsageError("the nst arms take their style references from an unseen device: "
                         "add one to --test-devices (or leave the nst arms out)")
    data_folder = (devices.folders[train].resolve() if devices.layout == "folders"
                   else paths.data(train))
    plan = make_plan(devices.devices, train, tests, cfg.folds, cfg.seed, cfg.style_fraction,
                     data_folder)
    settings = run_settings(cfg, devices, train, tests, size)

    with contextlib.ExitStack() as held:
        # Take the report folder (rank 0, before TensorFlow starts): lock, settings.
        if rank_from_env() == 0:
            held.enter_context(rundir)  # the lock; the kernel drops it if we are killed
            has_results = paths.work.exists() or paths.report_json.exists()
            if rundir.check_settings(JOB, settings, cfg.overwrite, has_results):
                _start_over(paths)

        # Start the ranks: one GPU each, CPU threads; our stage lines on every rank. A single
        # process with nothing left to run (a rerun that rewrites the report) starts no
        # TensorFlow.
        setup = Setup(cfg, plan, paths, data_folder, arms, size, 0, fingerprint(settings))
        work = phases(setup)
        if dist.under_launcher() or not all(is_done(setup, u) for p in work for u in p):
            one_gpu_per_rank()
            ctx = dist.init(cfg.threads)
        else:
            ctx = dist.Context()
        setup.threads = cfg.threads or dist.default_threads(ctx.local_size)
        setup.rank = ctx.rank
        log = _setup_log(cfg.verbose, ctx.rank)
        if ctx.is_root:
            _describe(log, devices, plan, tests)
            _prepare_folders(paths, devices, plan, data_folder)
        ctx.barrier()  # Horovod: every rank sees the linked folders

        # Run the phases: each rank its share of the pending units, a barrier between phases.
        pending = [[u for u in phase if not is_done(setup, u)] for phase in work]
        pending = ctx.allgather_object(pending)[0]  # Horovod: rank 0's view, on every rank
        n_all, n_pending = sum(map(len, work)), sum(map(len, pending))
        if ctx.is_root:
            log.info("==> plan: arms %s; %d units (%d done, reused), %d rank(s)",
                     ", ".join(arms), n_all, n_all - n_pending, ctx.size)
        for phase in pending:
            mine = dist.shard([u.cost for u in phase], ctx.rank, ctx.size)
            for i in mine:
                run_unit(setup, phase[i])
            ctx.barrier()  # Horovod: the next phase reads this one's results

        # Report (rank 0): every arm x fold from its result file.
        report: dict = {}
        if ctx.is_root:
            results = {arm: {f.index: read_result(setup, arm, f.index) for f in plan.folds}
                       for arm in arms}
            missing = [f"{a} fold {f}" for a, per in results.items() for f, r in per.items()
                       if r is None]
            if missing:
                raise RuntimeError(f"results missing after the run: {', '.join(missing)}")
            report = build_report(cfg, plan, devices, arms, results, settings, paths,
                                  time.perf_counter() - t_start, ctx.size,
                                  generated_markers(setup))
            write_report(report, results, paths)
            log.info("==> report: %s (in-domain accuracy %s)", paths.report_html, ", ".join(
                f"{a} {report['metrics'][a][IN_DOMAIN]['accuracy']['mean']:.3f}" for a in arms))
        ctx.barrier()  # Horovod: nobody returns before rank 0 has written
    return report


def _setup_log(verbose: bool, rank: int):
    import logging

    _log.setup(verbose, rank)
    ours = _log.get().getChild("evaluation")
    ours.setLevel(logging.DEBUG if verbose else logging.INFO)  # unit lines from every rank
    return ours


def _describe(log, devices: DeviceSet, plan, tests) -> None:
    log.info("==> data: %s; train on %s, test on %s", devices.describe(), plan.train_device,
             ", ".join(f"{d} ({'in-domain' if d == plan.train_device else 'unseen'})"
                       for d in tests))
    f = plan.folds[0]
    log.info("==> folds: %d stratified folds of %s's %d originals by source image (fold 1: "
             "%d train, %d val, %d test); style pool: %d images of %s, never tested; "
             "unseen test: %s", len(plan.folds), plan.train_device, len(plan.samples),
             len(f.train), len(f.val), len(f.test),
             sum(map(len, plan.style_pool.values())), ", ".join(plan.unseen) or "none",
             ", ".join(f"{d} {len(s)}" for d, s in plan.unseen.items()) or "none")


def _prepare_folders(paths: ReportDir, devices: DeviceSet, plan, data_folder: Path) -> None:
    """Device A as a BUSI folder (prefix layout), the style pool, the plan (rank 0)."""
    if devices.layout == "prefix":
        link_samples(plan.samples.values(), data_folder)
    found = sorted(s.key for s in discover(data_folder))
    if found != sorted(plan.samples):
        raise RuntimeError(f"{data_folder}: holds other images than device "
                           f"{plan.train_device} ({len(found)} vs {len(plan.samples)})")
    for device, pool in plan.style_pool.items():
        link_flat(pool, paths.styles, prefix=f"{device}__")
    write_json(paths.plan, plan.as_dict())


def _start_over(paths: ReportDir) -> None:
    """``--overwrite`` with other settings: the old work and report go."""
    shutil.rmtree(paths.work, ignore_errors=True)
    shutil.rmtree(paths.plots, ignore_errors=True)
    for p in (paths.report_json, paths.report_md, paths.report_html):
        p.unlink(missing_ok=True)
