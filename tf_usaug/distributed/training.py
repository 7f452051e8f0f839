"""Data-parallel training with Horovod: the canonical pattern for Keras ``fit`` and custom loops.

Every helper takes the ``Context`` from :func:`tf_usaug.distributed.init` and is the identity
(or its single-process equivalent) when ``ctx.hvd`` is None; Horovod is imported only then.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence
import numpy as np

from .context import Context


# =========================================================================================
# Training: the canonical Horovod pattern (Sergeev & Del Balso 2018; Panigrahi et al. 2025,
# "Distributed augmented model training using Horovod") for Keras ``fit`` and for custom
# GradientTape loops. Every helper takes the ``Context`` from ``init`` and is the identity
# (or its single-process equivalent) when ``ctx.hvd`` is None; Horovod is imported only then.
#
#   fit:          opt = wrap_optimizer(SGD(scaled_learning_rate(lr, ctx)), ctx)
#                 model.compile(optimizer=opt, ...)
#                 model.fit(shard_dataset(ds, ctx)..., callbacks=fit_callbacks(ctx, ...))
#   custom loop:  broadcast_initial_state(model, opt, ctx)        # once, before step 1
#                 tape = distributed_tape(tape, ctx)               # every step
#                 opt.apply_gradients(zip(tape.gradient(loss, vs), vs))   # plain optimizer
# =========================================================================================


@dataclass(frozen=True)
class HorovodTrainingConfig:
    """Settings of data-parallel training shared by every trainer.

    Args:
        warmup_epochs: whole epochs over which the learning rate ramps linearly from
            ``lr / size`` up to the size-scaled ``lr``; 0 disables the warm-up. Default 5:
            Goyal et al. 2017, sec. 2.2 ("gradual warmup" over the first 5 epochs), also the
            default of Horovod's ``LearningRateWarmupCallback``.
        momentum_correction: while the warm-up changes the learning rate, scale SGD momentum
            by ``lr_new / lr_old`` (Goyal et al. 2017, sec. 3, "momentum correction"). Only
            possible where the optimizer keeps momentum in a variable (Keras legacy
            optimizers); skipped with a warning for the Keras >= 2.11 optimizers.
        root_rank: the rank whose initial weights and optimizer state every rank starts from
            (``BroadcastGlobalVariablesCallback(0)`` in Panigrahi et al. 2025).
    """

    warmup_epochs: int = 5
    momentum_correction: bool = True
    root_rank: int = 0

    def __post_init__(self):
        if int(self.warmup_epochs) != self.warmup_epochs or self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be a whole number >= 0, got {self.warmup_epochs}")
        if self.root_rank < 0:
            raise ValueError(f"root_rank must be >= 0, got {self.root_rank}")


def is_writer(ctx: Context) -> bool:
    """True on the one rank (0) that writes checkpoints, logs, TensorBoard events and prints."""
    return ctx.rank == 0


def fit_verbosity(ctx: Context, verbose: int = 2) -> int:
    """Keras ``verbose`` for fit/evaluate: ``verbose`` on the writer rank, 0 on the others."""
    return int(verbose) if is_writer(ctx) else 0


def scaled_learning_rate(base_lr: float, ctx: Context) -> float:
    """Linear scaling rule: ``base_lr * size`` (Goyal et al. 2017, sec. 2.1; Horovod examples).

    Use it when every rank keeps the paper's batch, so the global batch grows ``size``-fold.
    When the paper's global batch is split between the ranks instead (``per_rank_batch_size``),
    every step is the single-process step and ``base_lr`` stays as it is.

    Args:
        base_lr: the single-process learning rate (e.g. 1e-4 for the ResNet50 classifier,
            Panigrahi et al. 2025).
        ctx: the job context.
    """
    if not base_lr > 0:
        raise ValueError(f"base_lr must be > 0, got {base_lr}")
    return float(base_lr) * ctx.size


def per_rank_batch_size(global_batch: int, ctx: Context) -> int:
    """Per-rank batch that keeps the global batch at ``global_batch`` (no learning-rate scaling).

    Args:
        global_batch: samples per optimisation step summed over all ranks; must be a
            multiple of ``size`` so every rank's half-batch mean weighs the same.
        ctx: the job context.
    """
    if global_batch < 1 or global_batch % ctx.size:
        raise ValueError(f"global batch {global_batch} cannot be split evenly over "
                         f"{ctx.size} ranks")
    return global_batch // ctx.size


def shard_steps(n_samples: int, per_rank_batch: int, ctx: Context) -> int:
    """Steps per epoch that every rank can take on its ``shard_dataset`` share: the same on all.

    Every step is a collective (gradient allreduce), so a rank with one batch more than the
    others would wait forever. ``ds.shard`` gives shards of ``n // size`` or ``n // size + 1``
    samples; this counts full batches of the smallest one. Pass it as ``steps_per_epoch`` (and
    ``.repeat()`` the dataset) or ``.take()`` it.

    Args:
        n_samples: samples in the unsharded dataset.
        per_rank_batch: batch size of one rank.
        ctx: the job context.
    """
    if per_rank_batch < 1:
        raise ValueError(f"per_rank_batch must be >= 1, got {per_rank_batch}")
    steps = (int(n_samples) // ctx.size) // int(per_rank_batch)
    if steps < 1:
        raise ValueError(f"{n_samples} samples over {ctx.size} ranks do not fill one batch of "
                         f"{per_rank_batch} per rank")
    return steps


def shard_dataset(dataset, ctx: Context):
    """This rank's share of a ``tf.data.Dataset``: elements ``rank, rank + size, ...``.

    Shard first, before shuffling, augmenting and batching, so the shards are disjoint and
    each rank only decodes its own files. The dataset itself on a single rank.
    """
    if ctx.size == 1:
        return dataset
    return dataset.shard(ctx.size, ctx.rank)  # Horovod: one disjoint shard per rank


def _warmup_ramp(progress, warmup_steps: int, size: int):
    """``(1 + progress (size - 1) / warmup_steps) / size``: numbers, numpy or TF tensors."""
    return (1.0 + progress * (size - 1) / warmup_steps) / size


def _check_warmup(warmup_steps: int, size: int) -> None:
    if int(warmup_steps) != warmup_steps or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be a whole number >= 0, got {warmup_steps}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")


def warmup_multiplier(step, warmup_steps: int, size: int):
    """Gradual warm-up factor in ``(0, 1]`` of the size-scaled learning rate at 0-based ``step``.

    ``(1 + min(step + 1, W) (size - 1) / W) / size`` with ``W = warmup_steps``: the rate ramps
    linearly from about ``lr / size`` (the single-process rate) to ``lr``, reached at the last
    warm-up step, then stays (Goyal et al. 2017, sec. 2.2). It is the factor Horovod's
    ``LearningRateWarmupCallback`` applies before batch ``step`` (it evaluates the ramp at the
    end of the batch, hence ``step + 1``), so custom loops warm up exactly like ``fit``.

    Args:
        step: optimizer step (number or numpy array), counted from 0.
        warmup_steps: ``warmup_epochs * steps_per_epoch``; 0 means no warm-up (factor 1).
        size: number of ranks.
    """
    _check_warmup(warmup_steps, size)
    step = np.asarray(step, dtype=np.float64)
    if np.any(step < 0):
        raise ValueError("step must be >= 0")
    if warmup_steps == 0 or size == 1:
        return np.ones_like(step)[()]
    return _warmup_ramp(np.minimum(step + 1.0, warmup_steps), warmup_steps, size)[()]


@functools.lru_cache(maxsize=None)
def _warmup_schedule_class():
    """The Keras ``LearningRateSchedule`` behind ``warmup_schedule`` (TF imported on first use)."""
    import tensorflow as tf

    schedules = tf.keras.optimizers.schedules

    class WarmupSchedule(schedules.LearningRateSchedule):
        """``learning_rate(step) * warmup_multiplier(step, warmup_steps, size)``."""

        def __init__(self, learning_rate, warmup_steps: int, size: int):
            _check_warmup(warmup_steps, size)
            self.learning_rate = learning_rate
            self.warmup_steps = int(warmup_steps)
            self.size = int(size)

        def __call__(self, step):
            if isinstance(self.learning_rate, schedules.LearningRateSchedule):
                base = tf.convert_to_tensor(self.learning_rate(step))
            else:
                base = tf.convert_to_tensor(self.learning_rate, tf.float32)
            if self.warmup_steps == 0 or self.size == 1:
                return base
            progress = tf.minimum(tf.cast(step, base.dtype) + 1.0, float(self.warmup_steps))
            return base * _warmup_ramp(progress, self.warmup_steps, self.size)

        def get_config(self):
            lr = self.learning_rate
            if isinstance(lr, schedules.LearningRateSchedule):
                lr = schedules.serialize(lr)
            return {"learning_rate": lr, "warmup_steps": self.warmup_steps, "size": self.size}

        @classmethod
        def from_config(cls, config):
            config = dict(config)
            if isinstance(config["learning_rate"], dict):
                config["learning_rate"] = schedules.deserialize(config["learning_rate"])
            return cls(**config)

    WarmupSchedule.__module__ = __name__
    return tf.keras.utils.register_keras_serializable("tf_usaug")(WarmupSchedule)


def warmup_schedule(learning_rate, warmup_steps: int, ctx: Context):
    """Learning-rate schedule for custom loops: ``learning_rate`` times ``warmup_multiplier``.

    Pass it as an optimizer's ``learning_rate``; the optimizer evaluates it at its own step
    counter, so it matches ``fit_callbacks``' warm-up step for step.

    Args:
        learning_rate: the size-scaled rate, a float or a Keras schedule (e.g. the multitask
            network's cosine decay), which is then multiplied by the warm-up factor.
        warmup_steps: ``warmup_epochs * steps_per_epoch``; 0 for none.
        ctx: the job context (its ``size``; one rank gives the plain ``learning_rate``).
    """
    return _warmup_schedule_class()(learning_rate, warmup_steps, ctx.size)


def _optimizer_kind(optimizer) -> str:
    """``"new"`` (``keras.optimizers.Optimizer``, Keras >= 2.11) or ``"legacy"``."""
    import tensorflow as tf

    if isinstance(optimizer, tf.keras.optimizers.legacy.Optimizer):
        return "legacy"
    if isinstance(optimizer, tf.keras.optimizers.Optimizer):
        return "new"
    raise TypeError(f"expected a Keras optimizer, got {type(optimizer).__name__}")


def optimizer_variables(optimizer) -> list:
    """The optimizer's state (iteration count, slots) for both Keras optimizer families."""
    _optimizer_kind(optimizer)
    variables = optimizer.variables  # a method on legacy optimizers, a list on new ones
    return list(variables() if callable(variables) else variables)


def wrap_optimizer(optimizer, ctx: Context, **horovod_kwargs):
    """The optimizer for ``model.fit``: gradients averaged over ranks before every update.

    ``horovod.tensorflow.keras.DistributedOptimizer`` (Horovod 0.28.1 accepts both the Keras
    >= 2.11 optimizers and ``tf.keras.optimizers.legacy``); the optimizer itself on one rank.
    Only for ``fit``/``train_on_batch``: in a custom loop, ``apply_gradients`` of the wrapped
    optimizer does not average anything on TF >= 2.4; use ``distributed_tape`` there.

    Args:
        optimizer: a Keras optimizer built with the (scaled) learning rate.
        ctx: the job context.
        **horovod_kwargs: passed to ``DistributedOptimizer`` (e.g. ``compression``,
            ``backward_passes_per_step``).
    """
    _optimizer_kind(optimizer)
    if ctx.hvd is None:
        return optimizer
    import horovod.tensorflow.keras as hvd_keras  # Horovod

    return hvd_keras.DistributedOptimizer(optimizer, **horovod_kwargs)  # Horovod: average grads


def distributed_tape(tape, ctx: Context, **horovod_kwargs):
    """A GradientTape whose ``gradient`` returns the average over ranks (custom loops).

    Wrap the tape after the forward pass, then apply its gradients with a plain optimizer.
    The tape itself on one rank.

    Args:
        tape: the ``tf.GradientTape`` that recorded the loss (persistent ones work too).
        ctx: the job context.
        **horovod_kwargs: passed to ``hvd.DistributedGradientTape`` (e.g. ``compression``).
    """
    if ctx.hvd is None:
        return tape
    return ctx.hvd.DistributedGradientTape(tape, **horovod_kwargs)  # Horovod: allreduce grads


def _build_optimizer_state(optimizer, var_list) -> None:
    """Create the optimizer's slot variables now where Keras allows it (new optimizers).

    Legacy optimizers create theirs (zeros, hence equal on every rank) at the first step.
    """
    if _optimizer_kind(optimizer) == "new":
        optimizer.build(var_list)


def broadcast_initial_state(model, optimizer, ctx: Context, root_rank: int = 0) -> None:
    """Give every rank ``root_rank``'s weights and optimizer state (custom loops).

    Call once, after building model and optimizer and before the first step: new-style
    optimizers are built here so their slots exist and are sent too, and every rank's first
    gradient is then taken at the same weights. (Horovod's examples broadcast after the first
    step instead, because slots are created there; with legacy optimizers whose state was
    restored from a checkpoint on ``root_rank`` only, call it once more after step 1.)

    Args:
        model: a built Keras model (or layer); all its variables are sent.
        optimizer: its Keras optimizer, or None (e.g. a model that is only evaluated).
        ctx: the job context.
        root_rank: the rank whose state wins.
    """
    variables = list(model.variables)
    if not variables:
        raise ValueError(f"{model.name} has no variables yet: build it (an Input layer or one "
                         "call on a batch) before broadcasting its initial state")
    if not 0 <= root_rank < ctx.size:
        raise ValueError(f"root_rank {root_rank} out of range for size {ctx.size}")
    if optimizer is not None:
        _build_optimizer_state(optimizer, model.trainable_variables)
    if ctx.hvd is None:
        return
    ctx.hvd.broadcast_variables(variables, root_rank=root_rank)  # Horovod: same start weights
    opt_vars = optimizer_variables(optimizer) if optimizer is not None else []
    if opt_vars:
        ctx.hvd.broadcast_variables(opt_vars, root_rank=root_rank)  # Horovod: same slots


def average_metrics(values: Mapping[str, float], ctx: Context,
                    weight: float = 1.0) -> dict[str, float]:
    """Weighted mean of each metric over ranks (custom loops; ``fit`` has MetricAverageCallback).

    Every rank must call it at the same point with the same metric names; names and weights
    are checked after one allgather, so a mismatch raises on every rank instead of hanging.

    Args:
        values: metric name -> this rank's value (e.g. mean loss over its shard).
        ctx: the job context.
        weight: this rank's weight, e.g. its number of samples when shards are uneven
            (``ds.shard`` sizes differ by one); equal weights give the plain mean.
    """
    local = (sorted((str(k), float(v)) for k, v in values.items()), float(weight))
    gathered = ctx.allgather_object(local)  # Horovod (identity on one rank)
    names = [tuple(k for k, _ in items) for items, _ in gathered]
    if any(n != names[0] for n in names):
        raise ValueError(f"ranks report different metrics: {sorted(set(names))}")
    weights = np.array([w for _, w in gathered], dtype=np.float64)
    if not (np.all(np.isfinite(weights)) and np.all(weights >= 0) and weights.sum() > 0):
        raise ValueError("metric weights must be finite, >= 0 and not all 0, "
                         f"got {weights.tolist()}")
    table = np.array([[v for _, v in items] for items, _ in gathered], dtype=np.float64)
    means = weights @ table.reshape(len(gathered), len(names[0])) / weights.sum()
    return {name: float(m) for name, m in zip(names[0], means)}


@functools.lru_cache(maxsize=None)
def _horovod_fit_callback_classes():
    """Horovod's broadcast and warm-up callbacks, refined for Keras 2.14 (imported on use)."""
    import tensorflow as tf
    import horovod.tensorflow.keras as hvd_keras  # Horovod

    from .. import log as _log

    class BroadcastInitialStateCallback(hvd_keras.callbacks.BroadcastGlobalVariablesCallback):
        """Horovod's broadcast after the first batch, preceded by one before the first step.

        The early one (model already built: every rank's first gradient is taken at
        ``root_rank``'s weights, so a 2-rank run equals the 1-rank run on the combined
        batch); Horovod's own one after batch 1 still covers lazily built models and
        optimizer state restored on ``root_rank`` only.
        """

        def __init__(self, ctx: Context, root_rank: int = 0):
            super().__init__(root_rank)
            self.ctx = ctx

        def on_train_begin(self, logs=None):
            if self.model.variables:
                broadcast_initial_state(self.model, self.model.optimizer, self.ctx,
                                        self.root_rank)

    class LearningRateWarmupCallback(hvd_keras.callbacks.LearningRateWarmupCallback):
        """Horovod's warm-up; momentum correction only where the optimizer allows it.

        Horovod assigns ``optimizer.momentum`` through ``K.set_value``, which fails on the
        Keras >= 2.11 optimizers (a Python float there, baked into the traced step).
        """

        def on_train_begin(self, logs=None):
            momentum = getattr(self.model.optimizer, "momentum", None)
            if self.momentum_correction and not isinstance(momentum, tf.Variable):
                self.momentum_correction = False
                if momentum and hvd_keras.rank() == 0:  # Horovod: print on rank 0 only
                    _log.get().warning(
                        "warm-up without momentum correction: %s keeps momentum as a float; "
                        "use tf.keras.optimizers.legacy.%s to have it corrected",
                        type(self.model.optimizer).__name__, type(self.model.optimizer).__name__)
            super().on_train_begin(logs)

    return BroadcastInitialStateCallback, LearningRateWarmupCallback


def fit_callbacks(ctx: Context, initial_lr: float, cfg: HorovodTrainingConfig | None = None, *,
                  extra: Sequence = (), writer_only: Sequence = (),
                  checkpoint_path: str | Path | None = None, log_dir: str | Path | None = None,
                  steps_per_epoch: int | None = None, verbose: int = 0) -> list:
    """Keras callbacks for ``model.fit`` in Horovod's order.

    1. broadcast ``cfg.root_rank``'s weights and optimizer state (before step 1 and after
       batch 1); 2. average each epoch's metrics over ranks, BEFORE anything that reads them;
    3. warm the learning rate up from ``initial_lr / size`` to ``initial_lr`` over
    ``cfg.warmup_epochs``; 4. ``extra`` on every rank; 5. on the writer rank only:
    ``ModelCheckpoint(checkpoint_path)`` (weights), ``TensorBoard(log_dir)``, ``writer_only``.
    On one rank: just 4 and 5, with no Horovod import.

    Args:
        ctx: the job context.
        initial_lr: the rate the warm-up ends at: the size-scaled rate the optimizer was
            built with (``scaled_learning_rate``).
        cfg: warm-up length, momentum correction, root rank (``HorovodTrainingConfig``).
        extra: metric-driven callbacks every rank must run (ReduceLROnPlateau,
            EarlyStopping): they see averaged metrics, so all ranks decide alike.
        writer_only: callbacks that write files (CSVLogger, image dumps).
        checkpoint_path: weights file (Keras placeholders like ``{epoch:03d}`` allowed).
        log_dir: TensorBoard folder.
        steps_per_epoch: for the warm-up when Keras cannot infer it (repeated datasets).
        verbose: 1 prints the end of the warm-up (writer rank only).
    """
    import tensorflow as tf

    cfg = cfg or HorovodTrainingConfig()
    if not initial_lr > 0:
        raise ValueError(f"initial_lr must be > 0, got {initial_lr}")
    if not 0 <= cfg.root_rank < ctx.size:
        raise ValueError(f"root_rank {cfg.root_rank} out of range for size {ctx.size}")
    callbacks: list = []
    if ctx.hvd is not None:
        import horovod.tensorflow.keras as hvd_keras  # Horovod

        broadcast_cls, warmup_cls = _horovod_fit_callback_classes()
        callbacks.append(broadcast_cls(ctx, cfg.root_rank))  # Horovod: same initial state
        callbacks.append(hvd_keras.callbacks.MetricAverageCallback())  # Horovod: before readers
        if cfg.warmup_epochs > 0 and ctx.size > 1:
            callbacks.append(warmup_cls(  # Horovod: ramp lr/size -> lr (Goyal et al. 2017)
                initial_lr=float(initial_lr), warmup_epochs=int(cfg.warmup_epochs),
                momentum_correction=cfg.momentum_correction, steps_per_epoch=steps_per_epoch,
                verbose=fit_verbosity(ctx, verbose)))
    callbacks.extend(extra)
    if is_writer(ctx):  # Horovod: checkpoints and logs on rank 0 only
        if checkpoint_path is not None:
            callbacks.append(tf.keras.callbacks.ModelCheckpoint(str(checkpoint_path),
                                                                save_weights_only=True))
        if log_dir is not None:
            callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=str(log_dir)))
        callbacks.extend(writer_only)
    return callbacks
