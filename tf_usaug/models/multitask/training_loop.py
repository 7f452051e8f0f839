"""The multitask network's training loop: :func:`train_multitask` (library side of ``python
-m tf_usaug.train multitask``), one function in commented phases.

Paper 000 sec. 2.4: loss eq. 2 (``losses.py``), AdamW, lr 5e-4 annealed per epoch by a cosine
to 1e-6 over all epochs, batch 16; every training image augmented afresh each epoch
(``augment.py``: traditional, MixStyleAug, MaskAug after its warm-up), FeatAug inside the
network (``layers.py``). Validation (20 % of the originals) after every epoch: loss, DSC
(eq. 3) and AUROC.

Data-parallel with Horovod (``horovodrun -np N``): the GLOBAL batch is split evenly over the
ranks; every rank draws the same global batch from ``(seed, epoch)`` and augments and trains
on its slice; gradients are averaged by the distributed tape; rank 0's initial (or resumed)
state is broadcast; only rank 0 writes. Lines that exist because of Horovod are marked
``# Horovod:``.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import distributed as dist
from ... import log as _log
from ...cli import rank_from_env
from ...errors import UsageError
from ...rundir import RunDir
from ..run_common import init_context, op_determinism
from . import run_files
from .checkpoint import (MultitaskState, restore_checkpoint, restore_wct, save_checkpoint,
                         save_wct)
from .config import MultitaskConfig
from .data import epoch_batches, load_data, load_styles, train_val_split


@dataclass
class MultitaskResult:
    """What :func:`train_multitask` returns (also in ``RUN/metrics.json``)."""

    out: Path
    metrics: dict
    epochs: int              # epochs trained in all
    resumed_from: int        # epochs already finished when this call started
    seconds: float


def cosine_learning_rate(epoch: int, epochs: int, lr: float, min_lr: float) -> float:
    """Cosine annealing per epoch (Loshchilov & Hutter 2016; paper 000 sec. 2.4): ``min_lr +
    (lr - min_lr) (1 + cos(pi e / E)) / 2`` for epoch ``e`` of ``E`` (restart period E)."""
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * epoch / epochs))


def train_multitask(cfg: MultitaskConfig) -> MultitaskResult:
    """Train the network; write its run folder (``run_files.py``).

    Returns:
        The :class:`MultitaskResult`; with ``cfg.resume`` on a finished run, the stored one.
    """
    t_start = time.perf_counter()
    # Check settings, paths and data: nothing is built or written before this passes.
    cfg = cfg.resolved()
    rundir = RunDir(cfg.out)
    rundir.check_target()
    data = load_data(cfg.data, cfg.size)
    styles = load_styles(cfg.styles, cfg.size) if cfg.styles is not None else None
    if (cfg.mixstyle or cfg.maskaug) and not len(styles):
        raise UsageError(f"--styles {cfg.styles}: no images")
    train_idx, val_idx = train_val_split(data, cfg.val_fraction, cfg.seed)
    train, val = data.subset(train_idx), data.subset(val_idx)
    digest = hashlib.sha256(data.images.tobytes() + data.masks.tobytes()
                            + data.labels.tobytes())
    if styles is not None:
        digest.update(styles.tobytes())

    with contextlib.ExitStack() as held:
        # Take the run folder (rank 0, before TensorFlow starts): lock, settings, decide.
        verdict = (run_files.take_run_dir(rundir, cfg, run_files.run_settings(
            cfg, digest.hexdigest()), held) if rank_from_env() == 0 else None)

        # Start the ranks: GPU pinning, CPU threads; TensorFlow quiet unless verbose.
        ctx = init_context(cfg.threads)
        log = _log.setup(cfg.verbose, ctx.rank)
        state, stored, note = ctx.allgather_object(verdict)[0]  # Horovod: rank 0's verdict
        log.info("==> data: %d originals from %s (%d train, %d validation; %s positive), %s, "
                 "%d px", len(data), cfg.data, len(train), len(val), data.class_names[1],
                 f"{len(styles)} references from {cfg.styles}" if styles is not None
                 else "no references", cfg.size)
        if note:
            log.info(note)
        if stored is not None:
            return MultitaskResult(cfg.out, stored, state.epoch, state.epoch,
                                   time.perf_counter() - t_start)
        resumed_from = state.epoch if state else 0
        if cfg.batch_size % ctx.size:
            raise UsageError(f"--batch-size {cfg.batch_size} is the global batch: it must be "
                             f"a multiple of the {ctx.size} ranks")
        per_rank = dist.per_rank_batch_size(cfg.batch_size, ctx)
        mine = slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)

        # Construct the network and the optimiser (deterministic ops: exact resumes).
        import tensorflow as tf

        from .losses import dsc, multitask_loss
        from .networks import build_multitask_net

        held.enter_context(op_determinism(cfg.deterministic))
        net = build_multitask_net(cfg.size, cfg.filters, cfg.head_channels, cfg.feataug,
                                  cfg.feataug_p, cfg.feataug_mu, cfg.feataug_sigma, cfg.seed)
        optimizer = tf.keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay)
        optimizer.build(net.trainable_variables)
        log.info("==> model: %s parameters, filters %s, FeatAug %s, MixStyleAug %s, MaskAug %s"
                 "; AdamW lr %g -> %g (cosine), global batch %d (%d per rank x %d)",
                 f"{net.count_params():,}", "-".join(map(str, cfg.filters)),
                 "on" if cfg.feataug else "off", "on" if cfg.mixstyle else "off",
                 f"from epoch {cfg.warmup + 1}" if cfg.maskaug else "off", cfg.learning_rate,
                 cfg.min_learning_rate, cfg.batch_size, per_rank, ctx.size)

        # Style transfer network (MixStyleAug / MaskAug): trained once on reconstruction of
        # the training originals and the references (rank 0), then read by every rank.
        transfer, wct_info = None, state.wct if state else None
        if cfg.mixstyle or cfg.maskaug:
            from .wct import StyleTransfer, build_autoencoder, train_autoencoder

            if state is None and ctx.is_root:
                with _log.Stage(f"style transfer autoencoder ({cfg.wct_steps} reconstruction "
                                "steps)", log):
                    enc, dec, losses = train_autoencoder(
                        np.concatenate([train.images, styles]), cfg.wct_channels,
                        cfg.wct_steps, cfg.seed)
                save_wct(cfg.out, enc, dec)  # Horovod: rank 0 writes
                wct_info = {"steps": cfg.wct_steps, "first_loss": losses[0],
                            "last_loss": float(np.mean(losses[-10:]))}
                log.info("autoencoder reconstruction MSE %.5f -> %.5f", losses[0],
                         wct_info["last_loss"])
            ctx.barrier()  # Horovod: the autoencoder exists before any rank reads it
            if state is not None or not ctx.is_root:
                enc, dec = build_autoencoder(cfg.wct_channels, cfg.seed)
                restore_wct(cfg.out, enc, dec)
            wct_info = ctx.allgather_object(wct_info)[0]  # Horovod: rank 0's numbers
            transfer = StyleTransfer(enc, dec)
            transfer.references = styles

        # Resume; every rank starts from rank 0's weights and optimiser.
        if state is None:
            state = MultitaskState(ranks=ctx.size, wct=wct_info)
        elif ctx.is_root:
            restore_checkpoint(cfg.out, state.latest, net, optimizer)
        if state.ranks != ctx.size:
            log.warning("resuming a %d-rank run on %d ranks: it continues, but not bit for bit",
                        state.ranks, ctx.size)
            state.ranks = ctx.size
        dist.broadcast_initial_state(net, optimizer, ctx)  # Horovod: rank 0's state everywhere

        @tf.function
        def train_step(x, m, y):
            with tf.GradientTape() as tape:
                seg, cls = net(x, training=True)
                terms = multitask_loss(seg, cls, m, y)
                objective = tf.reduce_mean(terms["total"])
            tape = dist.distributed_tape(tape, ctx)  # Horovod: gradients averaged over ranks
            grads = tape.gradient(objective, net.trainable_variables)
            optimizer.apply_gradients(zip(grads, net.trainable_variables))
            return {k: tf.reduce_mean(v) for k, v in terms.items()}

        @tf.function(reduce_retracing=True)
        def forward(x):
            return net(x, training=False)

        def predict(images):
            segs, scores = [], []
            for start in range(0, len(images), 16):
                seg, cls = forward(images[start:start + 16, ..., None])
                segs.append(seg.numpy()[..., 0])
                scores.append(cls.numpy()[:, 0])
            return np.concatenate(segs), np.concatenate(scores)

        def evaluate(part):
            from ...metrics.classification import roc_auc

            seg, cls = predict(part.images)
            terms = multitask_loss(tf.constant(seg[..., None]), tf.constant(cls[:, None]),
                                   tf.constant(part.masks[..., None]),
                                   tf.constant(part.labels.astype(np.float32)))
            return {"val_loss": float(tf.reduce_mean(terms["total"])),
                    "val_dsc": float(np.mean([dsc(s > 0, m > 0.5)
                                              for s, m in zip(seg, part.masks)])),
                    "val_auroc": roc_auc(part.labels.tolist(), cls.tolist())}

        writer = tf.summary.create_file_writer(str(cfg.out / run_files.TENSORBOARD_DIR)) \
            if dist.is_writer(ctx) else None

        # Train: epoch e draws its batches and augmentation from (seed, e) alone.
        if state.epoch < cfg.epochs:
            log.info("==> train: epochs %d-%d of %d, %d steps each, validation after each",
                     state.epoch + 1, cfg.epochs, cfg.epochs,
                     -(-len(train) // cfg.batch_size))
        while state.epoch < cfg.epochs:
            t_epoch = time.perf_counter()
            epoch = state.epoch
            lr = cosine_learning_rate(epoch, cfg.epochs, cfg.learning_rate,
                                      cfg.min_learning_rate)
            optimizer.learning_rate.assign(lr)
            masking = cfg.maskaug and epoch >= cfg.warmup
            reference_regions = (predict(styles)[0] > 0) if masking else None
            sums, counts = {}, {"mixstyle": 0, "maskaug": 0}
            batches = epoch_batches(len(train), cfg.batch_size, cfg.seed, epoch)
            for step, positions in enumerate(batches):
                local = positions[mine]
                x, m, n = _augment(cfg, train, local, step * cfg.batch_size + np.arange(
                    cfg.batch_size)[mine], epoch, masking, transfer, predict,
                    reference_regions)
                terms = train_step(x[..., None], m[..., None],
                                   train.labels[local].astype(np.float32))
                for k, v in dist.average_metrics(  # Horovod: mean over ranks
                        {k: float(v) for k, v in terms.items()}, ctx).items():
                    sums[k] = sums.get(k, 0.0) + v
                for k in counts:
                    counts[k] += n[k]
            mixed, masked = ctx.allreduce_sum([counts["mixstyle"], counts["maskaug"]])
            counts = {"mixstyle": int(mixed), "maskaug": int(masked)}  # Horovod: all ranks'
            state.epoch += 1
            row = {"epoch": state.epoch, "lr": lr,
                   **{("loss" if k == "total" else k): v / len(batches) for k, v in sums.items()},
                   **evaluate(val), "mixstyle_images": counts["mixstyle"],
                   "maskaug_images": counts["maskaug"]}
            seconds = time.perf_counter() - t_epoch
            state.seconds += seconds
            row["seconds"] = round(seconds, 3)
            state.history.append(row)
            if writer is not None:
                with writer.as_default(step=state.epoch):
                    for key in ("loss", "seg_ce", "dice", "cls_ce", "val_loss", "val_dsc",
                                "val_auroc", "lr"):
                        if row.get(key) is not None:
                            tf.summary.scalar(key, row[key])
            log.info("epoch %d/%d: loss %.4f (seg CE %.4f, Dice %.4f, cls CE %.4f), validation "
                     "loss %.4f DSC %.3f AUROC %s, lr %.2e%s, %.1f s", state.epoch, cfg.epochs,
                     row["loss"], row["seg_ce"], row["dice"], row["cls_ce"], row["val_loss"],
                     row["val_dsc"], "n/a" if row["val_auroc"] is None
                     else f"{row['val_auroc']:.3f}", lr,
                     f", MaskAug {counts['maskaug']} images" if masking else "", seconds)
            if dist.is_writer(ctx):
                save_checkpoint(cfg.out, net, optimizer, state)  # Horovod: rank 0 writes

        # Write the results (rank 0): model, info, curves, metrics.
        metrics = {"final": {k: state.history[-1][k] for k in ("val_loss", "val_dsc",
                                                              "val_auroc")},
                   "epochs": state.epoch, "train_images": len(train), "val_images": len(val),
                   "val_keys": [s.key for s in val.samples], "references": 0 if styles is None
                   else len(styles), "class_names": list(data.class_names),
                   "wct": state.wct, "ranks": state.ranks,
                   "train_seconds": round(state.seconds, 3), "history": state.history}
        if dist.is_writer(ctx):
            writer.close()
            run_files.write_results(cfg.out, net, run_files.run_info(
                cfg, data.class_names, state.epoch), metrics)
        ctx.barrier()  # Horovod: nobody returns before rank 0 has written
    log.info("==> wrote %s: validation DSC %.3f, AUROC %s (%.1f s)", cfg.out,
             metrics["final"]["val_dsc"], "n/a" if metrics["final"]["val_auroc"] is None
             else f"{metrics['final']['val_auroc']:.3f}", time.perf_counter() - t_start)
    return MultitaskResult(cfg.out, metrics, state.epoch, resumed_from,
                           time.perf_counter() - t_start)


def _augment(cfg, train, local, positions, epoch, masking, transfer, predict, regions):
    """This rank's share of a batch, augmented (``augment.augment_batch``)."""
    from .augment import augment_batch

    return augment_batch(
        train.images[local], train.masks[local], positions, epoch=epoch, seed=cfg.seed,
        traditional=cfg.traditional, mixstyle=cfg.mixstyle, maskaug=masking,
        maskaug_p=cfg.maskaug_p, alpha=cfg.mixstyle_alpha,
        n_references=0 if transfer is None else len(transfer.references), transfer=transfer,
        predict_regions=lambda images: predict(images)[0] > 0, reference_regions=regions)
