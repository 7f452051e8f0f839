"""Tiny data-parallel training run for tests/test_distributed.py.

Run it two ways from the repository root:

    python tests/support/hvd_train_tiny.py --out REF                     # 1 rank, whole batch
    horovodrun -np 2 --gloo -H localhost:2 python tests/support/hvd_train_tiny.py --out HVD

Both train the same float64 two-layer network on the same 16 samples with a global batch of
8: one rank sees whole batches, two ranks see 4 samples each (``ds.shard`` deals even samples
to rank 0 and odd ones to rank 1, so the two half-batches make up the 1-rank batch). Plain SGD
without momentum makes averaged half-batch gradients equal the whole-batch gradient, so every
mode below must end at the reference weights up to float error (except the two negative
controls, which must not). Ranks other than 0 start from different weights, so the ranks only
agree if rank 0's state was broadcast before the first step.

Each rank writes ``OUT/rank<r>.npz`` (final weights, one flat vector per mode) and
``OUT/rank<r>.json`` (losses, learning-rate traces, callback order, small checks).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tf_usaug import distributed as dist  # noqa: E402

N_SAMPLES = 16
GLOBAL_BATCH = 8
EPOCHS = 2
LEARNING_RATE = 0.1
N_FEATURES = 3
HIDDEN = 4
WARMUP_EPOCHS = 2
MOMENTUM = 0.9


def synthetic_data() -> tuple[np.ndarray, np.ndarray]:
    """Fixed regression data: y = tanh(x w) + noise."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N_SAMPLES, N_FEATURES))
    y = np.tanh(x @ np.array([[0.5], [-1.0], [2.0]])) + 0.1 * rng.normal(size=(N_SAMPLES, 1))
    return x, y


def initial_weights(rank: int) -> list[np.ndarray]:
    """Weights every mode starts from; shifted on ranks > 0 so only a broadcast aligns them."""
    rng = np.random.default_rng(11)
    shapes = [(N_FEATURES, HIDDEN), (HIDDEN,), (HIDDEN, 1), (1,)]
    return [0.5 * rng.normal(size=s) + 0.25 * rank for s in shapes]


def build_model(tf, rank: int):
    model = tf.keras.Sequential([
        tf.keras.Input((N_FEATURES,), dtype="float64"),
        tf.keras.layers.Dense(HIDDEN, activation="tanh", dtype="float64"),
        tf.keras.layers.Dense(1, dtype="float64"),
    ])
    model.set_weights(initial_weights(rank))
    return model


def flat_weights(model) -> np.ndarray:
    return np.concatenate([w.ravel() for w in model.get_weights()])


def sharded_batches(tf, ctx):
    """This rank's share of every global batch, in order."""
    x, y = synthetic_data()
    ds = dist.shard_dataset(tf.data.Dataset.from_tensor_slices((x, y)), ctx)
    return ds.batch(dist.per_rank_batch_size(GLOBAL_BATCH, ctx), drop_remainder=True)


def make_recorder(tf):
    """Callback recording the learning rate (and momentum) per batch and the loss per epoch."""

    class Recorder(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.lr, self.momentum, self.loss = [], [], []

        def on_train_batch_begin(self, batch, logs=None):
            opt = self.model.optimizer
            self.lr.append(float(tf.keras.backend.get_value(opt.learning_rate)))
            momentum = getattr(opt, "momentum", 0.0)
            self.momentum.append(float(tf.keras.backend.get_value(momentum)))

        def on_epoch_end(self, epoch, logs=None):
            self.loss.append(float(logs["loss"]))

    return Recorder()


def train_fit(tf, ctx, optimizer, out: Path, warmup_epochs: int = 0, epochs: int = EPOCHS,
              writers: bool = False) -> dict:
    """``model.fit`` with the wrapped optimizer and ``fit_callbacks``; returns its records."""
    model = build_model(tf, ctx.rank)
    model.compile(optimizer=dist.wrap_optimizer(optimizer, ctx), loss="mse")
    recorder = make_recorder(tf)
    steps = dist.shard_steps(N_SAMPLES, dist.per_rank_batch_size(GLOBAL_BATCH, ctx), ctx)
    callbacks = dist.fit_callbacks(
        ctx, LEARNING_RATE, dist.HorovodTrainingConfig(warmup_epochs=warmup_epochs),
        extra=[recorder], steps_per_epoch=steps,
        checkpoint_path=out / f"ckpt_from_rank{ctx.rank}.weights.h5" if writers else None,
        log_dir=out / f"tensorboard_from_rank{ctx.rank}" if writers else None)
    model.fit(sharded_batches(tf, ctx), epochs=epochs, callbacks=callbacks,
              verbose=dist.fit_verbosity(ctx, 0))
    return {"weights": flat_weights(model), "loss": recorder.loss, "lr": recorder.lr,
            "momentum": recorder.momentum, "callbacks": [type(c).__name__ for c in callbacks],
            "steps_per_epoch": steps}


def train_custom_loop(tf, ctx, optimizer, *, tape_wrapper: bool, wrap_opt: bool = False) -> dict:
    """GradientTape loop: broadcast before step 1, distributed tape, metrics averaged per epoch."""
    model = build_model(tf, ctx.rank)
    if wrap_opt:
        optimizer = dist.wrap_optimizer(optimizer, ctx)
    mse = tf.keras.losses.MeanSquaredError()

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = mse(y, model(x, training=True))
        if tape_wrapper:
            tape = dist.distributed_tape(tape, ctx)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    dist.broadcast_initial_state(model, optimizer, ctx)
    losses = []
    for _ in range(EPOCHS):
        batch_losses = [float(train_step(x, y)) for x, y in sharded_batches(tf, ctx)]
        losses.append(dist.average_metrics({"loss": np.mean(batch_losses)}, ctx)["loss"])
    return {"weights": flat_weights(model), "loss": losses}


def collective_checks(tf, ctx) -> dict:
    """Small results of the non-training helpers, to compare between ranks."""
    checks = {
        "size": ctx.size,
        "is_writer": dist.is_writer(ctx),
        "shard_of_range6": [int(v) for v in dist.shard_dataset(tf.data.Dataset.range(6), ctx)],
        "mean_of_rank": dist.average_metrics({"rank": ctx.rank, "one": 1.0}, ctx),
        "weighted_mean_of_rank": dist.average_metrics({"rank": ctx.rank}, ctx,
                                                      weight=ctx.rank + 1)["rank"],
    }
    try:
        dist.average_metrics({f"name_on_rank{ctx.rank}": 1.0}, ctx)
        checks["mismatched_names_raise"] = False
    except ValueError:
        checks["mismatched_names_raise"] = True
    return checks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    ctx = dist.init(threads=1)
    import tensorflow as tf

    args.out.mkdir(parents=True, exist_ok=True)
    sgd, legacy_sgd = tf.keras.optimizers.SGD, tf.keras.optimizers.legacy.SGD
    runs = {
        "fit_new": train_fit(tf, ctx, sgd(LEARNING_RATE), args.out, writers=True),
        "fit_legacy": train_fit(tf, ctx, legacy_sgd(LEARNING_RATE), args.out),
        # Warm-up over 2 of 3 epochs; momentum correction on legacy SGD only.
        "warmup_new_momentum": train_fit(tf, ctx, sgd(LEARNING_RATE, momentum=MOMENTUM), args.out,
                                         warmup_epochs=WARMUP_EPOCHS, epochs=WARMUP_EPOCHS + 1),
        "warmup_legacy_momentum": train_fit(tf, ctx, legacy_sgd(LEARNING_RATE, momentum=MOMENTUM),
                                            args.out, warmup_epochs=WARMUP_EPOCHS,
                                            epochs=WARMUP_EPOCHS + 1),
        "tape": train_custom_loop(tf, ctx, sgd(LEARNING_RATE), tape_wrapper=True),
        "tape_legacy": train_custom_loop(tf, ctx, legacy_sgd(LEARNING_RATE), tape_wrapper=True),
        # Negative controls: no gradient averaging, so the ranks drift apart.
        "plain_tape": train_custom_loop(tf, ctx, sgd(LEARNING_RATE), tape_wrapper=False),
        "wrapped_optimizer_plain_tape": train_custom_loop(tf, ctx, sgd(LEARNING_RATE),
                                                          tape_wrapper=False, wrap_opt=True),
    }
    np.savez(args.out / f"rank{ctx.rank}.npz", **{k: v.pop("weights") for k, v in runs.items()})
    record = {"runs": runs, "checks": collective_checks(tf, ctx),
              "horovod_imported": "horovod" in sys.modules}
    (args.out / f"rank{ctx.rank}.json").write_text(json.dumps(record, indent=1))
    ctx.barrier()
    return 0


if __name__ == "__main__":
    sys.exit(main())
