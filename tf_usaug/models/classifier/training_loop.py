"""The classifier's training loop: :func:`train_classifier` (library side of
``python -m tf_usaug.train classifier``), one function in commented phases.

Data-parallel with Horovod (``horovodrun -np N``): the GLOBAL batch (paper 002: 32) is split
evenly over the ranks (``per_rank_batch_size``), so every step is the single-process step on
the same samples and the learning rate stays the paper's (no linear scaling, no warm-up);
gradients are averaged by the distributed tape; rank 0's initial (or resumed) state is
broadcast; batch-norm statistics are averaged over the ranks after every epoch, so every rank
holds the same model when it validates; only rank 0 writes. Lines that exist because of
Horovod are marked ``# Horovod:``.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import distributed as dist
from ... import log as _log
from ...cli import rank_from_env
from ...errors import UsageError
from ...files import write_json
from ...metrics.classification import classification_metrics
from ...rundir import RunDir
from ..run_common import init_context, op_determinism
from . import run_files
from .checkpoint import (TrainingState, early_stopping_update, mark_epoch, plateau_update,
                         restore_checkpoint, save_checkpoint)
from .config import ClassifierConfig
from .data import (ClassifierData, TrainImages, describe, epoch_order, load_images,
                   prepare_data, train_dataset)
from .preprocessing import Preprocessing
from .run_files import run_settings


@dataclass
class ClassifierResult:
    """What :func:`train_classifier` returns (also in ``RUN/metrics.json``)."""

    out: Path
    metrics: dict            # metrics.json: "test", "val", training summary, history
    epochs: int              # epochs trained in all (this call and earlier ones)
    best_epoch: int
    stopped_early: bool
    resumed_from: int        # epochs already finished when this call started
    seconds: float           # wall time of this call


def train_classifier(cfg: ClassifierConfig) -> ClassifierResult:
    """Train, validate and test one classifier; write its run folder (``run_files.py``).

    Args:
        cfg: the settings (:class:`ClassifierConfig`; None fields take the backbone's
            defaults).

    Returns:
        The :class:`ClassifierResult`; with ``cfg.resume`` on a finished run, the stored one.
    """
    t_start = time.perf_counter()
    # Check settings, paths and data: nothing is built or written before this passes.
    cfg = cfg.resolved()
    rundir = RunDir(cfg.out)
    rundir.check_target()
    data = prepare_data(cfg)

    with contextlib.ExitStack() as held:
        # Take the run folder (rank 0, before TensorFlow starts): lock, settings, then resume
        # or start over.
        verdict = (run_files.take_run_dir(rundir, cfg, run_settings(cfg, data), held)
                   if rank_from_env() == 0 else None)

        # Start the ranks: GPU pinning, CPU threads; TensorFlow quiet unless verbose.
        ctx = init_context(cfg.threads)
        log = _log.setup(cfg.verbose, ctx.rank)
        state, stored, note = ctx.allgather_object(verdict)[0]  # Horovod: rank 0's verdict
        log.info("==> data: %s", describe(data))
        if note:
            log.info(note)
        if stored is not None:
            return _result(cfg, stored, state.epoch, t_start)
        resumed_from = state.epoch if state else 0
        global_batch = _global_batch(cfg.batch_size, len(data.train), ctx)
        per_rank = dist.per_rank_batch_size(global_batch, ctx)

        # Load images: every original once (bad files all reported together), then the rest.
        val_x, test_x = load_images(data.val, cfg.size), load_images(data.test, cfg.size)
        train = TrainImages(data.train, cfg.size)

        # Construct the network and the optimiser (deterministic ops: exact resumes).
        import tensorflow as tf

        from .networks import build_classifier, reseed_random_layers

        held.enter_context(op_determinism(cfg.deterministic))
        pre = Preprocessing.for_backbone(cfg.backbone, cfg.defaults.mode, cfg.size,
                                         data.class_names)
        model = build_classifier(cfg.backbone, len(data.class_names), cfg.size, cfg.weights,
                                 hidden_units=cfg.hidden_units, dropout=cfg.dropout,
                                 leaky_relu_alpha=cfg.leaky_relu_alpha, seed=cfg.seed)
        optimizer = _optimizer(tf, cfg)
        optimizer.build(model.trainable_variables)
        log.info("==> model: %s, %s parameters, %d px, %s lr %g, global batch %d (%d per rank "
                 "x %d)", cfg.backbone, f"{model.count_params():,}", cfg.size, cfg.optimizer,
                 cfg.learning_rate, global_batch, per_rank, ctx.size)

        # Resume: rank 0 reads the last finished epoch; every rank starts from rank 0's state.
        if state is None:
            state = TrainingState(learning_rate=cfg.learning_rate, ranks=ctx.size)
        elif ctx.is_root:
            restore_checkpoint(cfg.out, state.latest, model, optimizer)
        if state.ranks != ctx.size:
            log.warning("resuming a %d-rank run on %d ranks: it continues, but not bit for bit",
                        state.ranks, ctx.size)
            state.ranks = ctx.size
        optimizer.learning_rate.assign(state.learning_rate)
        dist.broadcast_initial_state(model, optimizer, ctx)  # Horovod: rank 0's state everywhere
        train_step = _make_train_step(tf, model, optimizer, pre, len(data.class_names), ctx)
        writer = tf.summary.create_file_writer(str(cfg.out / run_files.TENSORBOARD_DIR)) \
            if dist.is_writer(ctx) else None

        # Train: an epoch's batch order and dropout masks come from (seed, epoch) alone.
        if state.epoch < cfg.epochs and not state.stopped_early:
            log.info("==> train: epochs %d-%d of at most %d (%d steps each)", state.epoch + 1,
                     cfg.epochs, cfg.epochs, -(-len(train) // global_batch))
        while state.epoch < cfg.epochs and not state.stopped_early:
            t_epoch = time.perf_counter()
            reseed_random_layers(model, dist.item_seed(cfg.seed, f"dropout/{state.epoch}/"
                                                                 f"{ctx.rank}"))
            order = epoch_order(len(train), global_batch, cfg.seed, state.epoch)
            losses, correct = [], 0
            for x, y in train_dataset(train, order, per_rank, ctx):
                loss, hits = train_step(x, y)
                losses.append(float(loss))
                correct += int(hits)
            trained = dist.average_metrics(  # Horovod: mean over ranks
                {"loss": np.mean(losses), "accuracy": correct / (len(losses) * per_rank)}, ctx)
            _average_batchnorm_statistics(model, ctx)  # Horovod: one model on every rank
            val_probs = _predict(tf, model, pre, val_x, ctx)
            val_loss = _cross_entropy(_labels(data.val), val_probs)
            state.epoch += 1
            row = {"epoch": state.epoch, **trained, "val_loss": val_loss,
                   "val_accuracy": float(np.mean(val_probs.argmax(1) == _labels(data.val))),
                   "learning_rate": state.learning_rate,
                   "seconds": round(time.perf_counter() - t_epoch, 3)}
            improved, _ = early_stopping_update(state, val_loss, cfg.early_stopping_patience)
            optimizer.learning_rate.assign(plateau_update(
                state, val_loss, cfg.plateau_factor, cfg.plateau_patience,
                cfg.plateau_min_delta, cfg.min_learning_rate))
            state.history.append(row)
            mark_epoch(state, improved)
            if dist.is_writer(ctx):  # Horovod: rank 0 writes the checkpoint and the logs
                save_checkpoint(cfg.out, model, optimizer, state)
                with writer.as_default(step=state.epoch):
                    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
                        tf.summary.scalar(key, row[key])
            log.info("epoch %d/%d: loss %.4f acc %.3f | val loss %.4f acc %.3f | lr %.2g%s "
                     "(%.1f s)", state.epoch, cfg.epochs, row["loss"], row["accuracy"],
                     val_loss, row["val_accuracy"], row["learning_rate"],
                     " | early stop" if state.stopped_early else "", row["seconds"])

        # Evaluate the best epoch on untouched originals: validation and test.
        if cfg.restore_best and state.best and state.best != state.latest:
            if ctx.is_root:
                restore_checkpoint(cfg.out, state.best, model)
            dist.broadcast_initial_state(model, None, ctx)  # Horovod: rank 0's best weights
        log.info("==> evaluate: epoch %d on %d validation and %d test originals",
                 state.best_epoch if cfg.restore_best else state.epoch, len(val_x), len(test_x))
        metrics = {name: classification_metrics(_labels(examples),
                                                _predict(tf, model, pre, x, ctx), data.class_names)
                   for name, examples, x in (("test", data.test, test_x),
                                             ("val", data.val, val_x))}
        metrics.update(_summary(cfg, data, state, ctx.size))

        # Write the results (rank 0): model, preprocessing, metrics, plots.
        if dist.is_writer(ctx):
            writer.close()
            write_json(cfg.out / run_files.SPLITS_FILE, data.split_record(cfg))
            run_files.write_results(cfg.out, model, pre, metrics, state.history)
        ctx.barrier()  # Horovod: nobody returns before rank 0 has written
    test = metrics["test"]
    log.info("==> wrote %s: test accuracy %.3f, F1 %s, ROC-AUC %s (%.1f s)", cfg.out,
             test["accuracy"], _fmt(test.get("f1", test.get("macro", {}).get("f1"))),
             _fmt(test.get("roc_auc", test.get("macro", {}).get("roc_auc"))),
             time.perf_counter() - t_start)
    return _result(cfg, metrics, resumed_from, t_start)


# ----------------------------------------------------------------------------- the steps


def _make_train_step(tf, model, optimizer, pre: Preprocessing, n_classes: int, ctx):
    """One optimisation step on this rank's share of a global batch: (mean loss, hits)."""
    loss_fn = tf.keras.losses.CategoricalCrossentropy()  # paper 002: one-hot, categorical CE

    @tf.function
    def train_step(grey, labels):
        x = pre.tf_to_input(grey)
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            loss = loss_fn(tf.one_hot(labels, n_classes), probs)
        tape = dist.distributed_tape(tape, ctx)  # Horovod: gradients averaged over ranks
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        hits = tf.reduce_sum(tf.cast(tf.argmax(probs, -1, output_type=tf.int32) == labels,
                                     tf.int32))
        return loss, hits

    return train_step


def _predict(tf, model, pre: Preprocessing, images: np.ndarray, ctx, batch: int = 64):
    """Probabilities of ``images`` (in order): each rank predicts every ``size``-th image."""
    mine = np.arange(ctx.rank, len(images), ctx.size)
    probs = [model(pre.to_input(images[mine[i:i + batch]]), training=False).numpy()
             for i in range(0, len(mine), batch)]
    probs = np.concatenate(probs) if probs else np.zeros((0, len(pre.class_names)), np.float32)
    out = np.empty((len(images), len(pre.class_names)), np.float64)
    for idx, part in ctx.allgather_object((mine, probs)):  # Horovod: every rank's share
        out[idx] = part
    return out


def _average_batchnorm_statistics(model, ctx) -> None:
    """Average the moving means/variances over the ranks (each saw its own batches); other
    non-trainable variables (integer counters) are equal on every rank already."""
    if ctx.hvd is None:
        return
    variables = [v for v in model.non_trainable_variables if v.dtype.is_floating]
    averaged = ctx.hvd.grouped_allreduce(variables, op=ctx.hvd.Average)  # Horovod
    for var, value in zip(variables, averaged):
        var.assign(value)


def _cross_entropy(labels: np.ndarray, probs: np.ndarray) -> float:
    """Keras's categorical cross-entropy (probabilities clipped to [1e-7, 1 - 1e-7])."""
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1 - 1e-7)
    return float(-np.mean(np.log(p)))


def _labels(examples) -> np.ndarray:
    return np.array([e.label for e in examples], np.int64)


# ----------------------------------------------------------------------------- set-up



def _global_batch(batch_size: int, n_train: int, ctx) -> int:
    """The global batch: ``batch_size``, or the training set (rounded down to a multiple of
    the ranks) when that is smaller."""
    if batch_size % ctx.size:
        raise UsageError(f"--batch-size {batch_size} is the global batch: it must be a "
                         f"multiple of the {ctx.size} ranks")
    batch = min(batch_size, n_train)
    batch -= batch % ctx.size
    if batch < ctx.size:
        raise UsageError(f"{n_train} training images cannot feed {ctx.size} ranks")
    return batch


def _optimizer(tf, cfg: ClassifierConfig):
    if cfg.optimizer == "sgd":  # paper 002: SGD, eta 1e-4, momentum 0.9
        return tf.keras.optimizers.SGD(cfg.learning_rate, momentum=cfg.momentum)
    return tf.keras.optimizers.Adam(cfg.learning_rate)



def _summary(cfg: ClassifierConfig, data: ClassifierData, state: TrainingState,
             ranks: int) -> dict:
    n_aug = sum(e.augmented for e in data.train)
    return {"backbone": cfg.backbone, "size": cfg.size, "class_names": list(data.class_names),
            "positive_class": data.class_names[-1] if len(data.class_names) == 2 else None,
            "epochs_run": state.epoch, "best_epoch": state.best_epoch,
            "evaluated_epoch": state.best_epoch if cfg.restore_best else state.epoch,
            "stopped_early": state.stopped_early, "ranks": ranks,
            "train_images": {"originals": len(data.train) - n_aug, "augmented": n_aug},
            "val_images": len(data.val), "test_images": len(data.test),
            "augmented": data.augmented, "history": state.history}


def _result(cfg: ClassifierConfig, metrics: dict, resumed_from: int, t_start: float):
    return ClassifierResult(cfg.out, metrics, metrics["epochs_run"], metrics["best_epoch"],
                            metrics["stopped_early"], resumed_from,
                            time.perf_counter() - t_start)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
