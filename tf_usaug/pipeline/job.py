"""The augmentation job (library side of ``python -m tf_usaug.augment``): multiply a folder of ultrasound images into a labelled, traceable augmented set.

    python -m tf_usaug.augment                       # the bundled demo data -> ./usaug_out/
    python -m tf_usaug.augment --content BUSI/ --styles other_scanner/ --out aug/ --per-image 5
    horovodrun -np 8 python -m tf_usaug.augment ...  # same outputs, eight ranks

Methods: ``nst`` (default; paper 002: ResNet50 style transfer with the MMD + multi-reference
style loss and an LRP-weighted content loss), ``traditional`` (rotation, translation, scaling,
elastic deformation; paper 000 sec. 2.1) and ``srad`` (the SRAD multi-scale series; paper 002).
Outputs are SRAD-filtered unless ``--no-srad`` (paper 002 denoises its augmented images).

Work is a list of items (content image, k) enumerated identically on every rank, grouped into
fixed batches (so a batch, and therefore every output, does not depend on the number of
ranks), and dealt out by cost. Each item's randomness comes from ``item_seed(seed, name)``.
Finished items are skipped on a rerun; see :mod:`tf_usaug.pipeline.outputs` for the on-disk contract.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path

from .. import log as _log
from ..data.datasets import discover
from ..errors import BadInputsError
from ..files import write_json, write_png
from ..rundir import RunDir, fingerprint
from .config import AugmentConfig
from .inputs import validate_inputs
from .methods import METHOD_CLASSES
from .relevance_stage import NodeWork
from .outputs import OutputDir
from .plan import (WorkItem, check_gan_labels, check_paths, make_batches, plan_items,
                   style_pool)
from .settings import check_config, check_plan_size, item_settings, run_settings


def _write_item(out: OutputDir, item: WorkItem, image, mask, extras: dict, cfg: AugmentConfig,
                rank: int, seconds: float) -> None:
    img_path = write_png(out.image_path(item.name), image)
    mask_rel = None
    if mask is not None:
        mask_rel = out.relative(write_png(out.mask_path(item.name), mask))
    record = {
        "output": out.relative(img_path),
        "content": str(item.sample.image),
        "content_masks": [str(m) for m in item.sample.masks],
        "mask": mask_rel,
        "label": item.sample.label,
        "method": cfg.method,
        "k": item.k,
        "seed": item.seed,
        "global_seed": cfg.seed,
        "srad": cfg.srad,
        "fingerprint": item.fingerprint,
        "rank": rank,
        "seconds": round(seconds, 4),
        "params": {},
    }
    record.update(extras)
    out.write_record(item.name, record)


def _without(problems, contents, styles):
    """Contents and styles less those whose image (or a mask) is among ``problems``."""
    if not problems:
        return list(contents), list(styles)
    bad = {Path(path) for path, _ in problems}
    good = [s for s in contents if Path(s.image) not in bad and not bad.intersection(s.masks)]
    return good, [p for p in styles if Path(p) not in bad]


def _fingerprinted(items: list[WorkItem], cfg: AugmentConfig, digests: dict) -> list[WorkItem]:
    """Items with the fingerprint of what makes them: settings and their input files' bytes."""
    settings = item_settings(cfg)
    return [dataclasses.replace(it, fingerprint=fingerprint(
        settings, name=it.name, k=it.k, seed=it.seed,
        content=digests[str(it.sample.image)],
        masks=[digests[str(m)] for m in it.sample.masks],
        styles=[[str(p), digests[str(p)]] for p in it.styles])) for it in items]


def run(cfg: AugmentConfig) -> dict:
    """Run the augmentation job (on every rank when under horovodrun). Returns the summary."""
    from .. import distributed

    # Check arguments and paths: nothing is read, built or written before this passes.
    check_config(cfg)
    rundir = RunDir(cfg.out)
    rundir.check_target()
    contents = discover(cfg.content)
    styles = style_pool(cfg, contents)
    check_paths(cfg, contents, styles)
    check_plan_size(len(contents), cfg)
    check_gan_labels(cfg, contents)

    t_start = time.perf_counter()
    # one small collective per batch: a slow Horovod cycle leaves the cores to the work
    ctx = distributed.init(cfg.threads, cycle_time_ms=50)
    log = _log.setup(cfg.verbose, ctx.rank)

    # Read every input once (sharded over the ranks): all problems at once, content hashes.
    problems, digests = validate_inputs(contents, styles, ctx.rank, ctx.size,
                                         ctx.allgather_object)
    if problems and not cfg.skip_bad:
        raise BadInputsError(problems, total=len(contents) + len(set(styles) - {
            s.image for s in contents}))
    contents, styles = _without(problems, contents, styles)
    if problems:
        log.warning("skipping %d unusable input file(s) (--skip-bad); listed in summary.json",
                    len(problems))
        if not contents:
            raise BadInputsError(problems, total=len(problems))

    # Take the output folder: one job at a time, and never a mix of two runs' settings.
    out = OutputDir(cfg.out)
    with contextlib.ExitStack() as held:
        if ctx.is_root:
            held.enter_context(rundir)  # the lock; the kernel drops it if we are killed
            has_results = (out.root / "records").is_dir() or out.manifest_path.exists()
            if rundir.check_settings("augment", run_settings(cfg), cfg.overwrite, has_results):
                log.info("settings changed (--overwrite): outputs that do not match them are "
                         "regenerated, the others kept")
            stale = out.remove_stale_temporaries()
            if stale:
                log.info("removed %d partial files left by an interrupted run", stale)
        ctx.barrier()  # Horovod: nobody scans or writes before rank 0 has checked and cleaned up

        # Plan: the same items and batches on every rank; done = a record with its fingerprint.
        items = _fingerprinted(plan_items(cfg, contents, styles), cfg, digests)
        if cfg.method == "nst" and items and len(items[0].styles) < cfg.n_styles:
            log.warning("only %d style references per output (asked --n-styles %d): the style "
                        "pool is that small", len(items[0].styles), cfg.n_styles)
        done = {it.name for it in items if out.is_done(it.name, it.fingerprint)}
        batches = make_batches(items, cfg.batch_size)
        pending = [b for b in batches if not all(it.name in done for it in b)]
        costs = [sum(1 for it in b if it.name not in done) for b in pending]
        shares = [distributed.shard(costs, r, ctx.size) for r in range(ctx.size)]
        mine = [pending[i] for i in shares[ctx.rank]]
        log.info("==> %s: %d content images x %d = %d outputs (%d already done), %d rank(s), "
                 "method %s, %dx%d", cfg.content, len(contents), cfg.per_image, len(items),
                 len(done), ctx.size, cfg.method, cfg.size, cfg.size)

        try:
            # Prepare the method (relevance stage, models, tracing): start-up, timed apart.
            method = METHOD_CLASSES[cfg.method](cfg, out, NodeWork(pending, ctx.local_size,
                                                                  ctx.node_cpus))
            t_prepare = time.perf_counter()
            method.prepare(mine)
            prepare_seconds = time.perf_counter() - t_prepare

            # Generate: one batch per round and rank; each finished item is on disk at once.
            rounds = max((len(s) for s in shares), default=0)
            written, busy, idle = _generate(method, mine, rounds, done, len(items), out, cfg,
                                            ctx, log)
        except KeyboardInterrupt:
            # Ctrl-C: what is finished is on disk; leave its manifest, then stop (exit 130).
            if ctx.is_root:
                n = out.write_manifest([it.name for it in items],
                                       {it.name: it.fingerprint for it in items})
                log.warning("interrupted: the manifest lists the %d finished outputs; rerun "
                            "the same command to finish", n)
            raise

        # Summarise: manifest (what exists and matches), summary, report.
        stats = {"rank": ctx.rank, "images": written, "busy_seconds": round(busy, 3),
                 "idle_seconds": round(idle, 3), "prepare_seconds": round(prepare_seconds, 3),
                 "cpus": ctx.cpus, "host": os.uname().nodename}
        write_json(out.rank_path(ctx.rank), stats)
        per_rank = ctx.allgather_object(stats)
        summary = {}
        if ctx.is_root:
            summary = _finish(out, items, per_rank, problems, cfg, ctx.size,
                              time.perf_counter() - t_start, log)
    ctx.barrier()
    return summary


def _generate(method, mine, rounds: int, done: set, total: int, out: OutputDir,
              cfg: AugmentConfig, ctx, log) -> tuple[int, float, float]:
    """Run this rank's batches; returns (images written, busy seconds, idle seconds)."""
    bar = None
    if ctx.is_root and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=len(done), unit="img", desc="augment",
                   dynamic_ncols=True, file=sys.stderr)
    busy, written = 0.0, 0
    for r in range(rounds):
        n_new = 0
        if r < len(mine):
            batch = mine[r]
            t0, cpu0 = time.perf_counter(), time.process_time()
            loaded = [method.inputs.content(it.sample) for it in batch]
            results = method.run(batch, loaded)
            seconds = (time.perf_counter() - t0) / max(1, len(batch))
            for item, prepared, (image, mask, extras) in zip(batch, loaded, results):
                if item.name in done:  # finished by an earlier, interrupted run
                    continue
                extras = {**extras, "crop": list(prepared.crop), "fit": cfg.fit}
                mask = None if mask is None else prepared.cut(mask)
                _write_item(out, item, prepared.cut(image), mask, extras, cfg, ctx.rank, seconds)
                n_new += 1
            busy += time.perf_counter() - t0
            written += n_new
            log.debug("rank %d: batch %d/%d, %d images in %.2f s (CPU %.2f s)", ctx.rank, r + 1,
                      len(mine), len(batch), time.perf_counter() - t0,
                      time.process_time() - cpu0)
        total_new = int(ctx.allreduce_sum([n_new])[0])  # Horovod: global progress per round
        if bar is not None:
            bar.update(total_new)
    idle = ctx.barrier()  # Horovod: wait for the slowest rank
    if bar is not None:
        bar.close()
    return written, busy, idle


def _finish(out: OutputDir, items, per_rank, problems, cfg: AugmentConfig, ranks: int,
            wall: float, log) -> dict:
    """Rank 0's end of a run: manifest, pruning, summary.json and the report."""
    rows = out.read_records([it.name for it in items], {it.name: it.fingerprint for it in items})
    n_manifest = out.write_rows(rows)
    removed = out.prune(rows)
    if removed:
        log.info("removed %d outputs that no longer belong to this run (their inputs or "
                 "settings changed)", removed)
    new = sum(s["images"] for s in per_rank)
    busy_total = sum(s["busy_seconds"] for s in per_rank)
    summary = {
        "images": n_manifest,
        "expected_images": len(items),
        "complete": n_manifest == len(items),
        "generated_this_run": new,
        "seconds": round(wall, 3),
        "images_per_second": round(new / wall, 4) if wall > 0 else 0.0,
        "images_per_busy_second": round(new / busy_total * ranks, 4) if busy_total else 0.0,
        "prepare_seconds": max(s["prepare_seconds"] for s in per_rank),
        "ranks": ranks,
        "per_rank": sorted(per_rank, key=lambda s: s["rank"]),
        "method": cfg.method,
        "skipped": [{"path": path, "reason": reason} for path, reason in problems],
        "config": {k: (str(v) if isinstance(v, Path) else v)
                   for k, v in dataclasses.asdict(cfg).items()},
    }
    write_json(out.summary_path, summary)
    if cfg.report:
        from ..report.run_index import write_run_index

        write_run_index(out.root, rows=rows, summary=summary)
    log.info("==> wrote %d images (%d new) to %s in %.1f s (%.2f img/s); manifest: %s",
             n_manifest, new, out.root, wall, summary["images_per_second"], out.manifest_path)
    return summary
