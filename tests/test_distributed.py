"""tf_usaug.distributed: sharding and seeds, training helpers on one rank, and 2-rank training.

The 2-rank tests start ``tests/support/hvd_train_tiny.py`` once under ``horovodrun -np 2
--gloo`` and once as a plain process (the 1-rank reference), then compare the weights and
records each rank wrote.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tf_usaug.distributed import context as dist_context
from tf_usaug.distributed import training as dist_training
from tf_usaug.distributed.context import Context

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "support" / "hvd_train_tiny.py"
_spec = importlib.util.spec_from_file_location("hvd_train_tiny", TINY)
tiny = importlib.util.module_from_spec(_spec)  # its model, data and constants
_spec.loader.exec_module(tiny)


# ----------------------------------------------------------------------------- shard / seeds

def greedy_reference(costs, size):
    """Independent LPT: each unit, largest first, to the least-loaded rank (numpy argmin)."""
    loads = np.zeros(size)
    owner = np.empty(len(costs), dtype=int)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        owner[i] = int(np.argmin(loads))  # argmin takes the lowest rank on ties
        loads[owner[i]] += costs[i]
    return owner


def test_shard_known_plan():
    # LPT by hand: 5->r0, 4->r1, 3->r1 (7), 3->r0 (8), 3->r1 (10).
    costs = [5, 4, 3, 3, 3]
    assert dist_context.shard(costs, 0, 2) == [0, 3]
    assert dist_context.shard(costs, 1, 2) == [1, 2, 4]


@pytest.mark.parametrize("size", [1, 2, 3, 8])
def test_shard_is_a_balanced_deterministic_partition(size, rng):
    costs = rng.uniform(0.1, 10.0, size=37).tolist()
    plans = [dist_context.shard(costs, r, size) for r in range(size)]
    assert plans == [dist_context.shard(costs, r, size) for r in range(size)]  # deterministic
    flat = sorted(i for plan in plans for i in plan)
    assert flat == list(range(len(costs)))  # disjoint and covering
    owner = greedy_reference(costs, size)
    assert plans == [sorted(np.flatnonzero(owner == r).tolist()) for r in range(size)]
    loads = [sum(costs[i] for i in plan) for plan in plans]
    assert max(loads) - min(loads) <= max(costs) + 1e-9


@pytest.mark.parametrize("n, size", [(10, 3), (8, 4), (3, 5)])
def test_shard_equal_costs_deal_round_robin(n, size):
    plans = [dist_context.shard([1.0] * n, r, size) for r in range(size)]
    assert plans == [list(range(r, n, size)) for r in range(size)]
    assert max(map(len, plans)) - min(map(len, plans)) <= 1


def test_shard_edges_and_bad_rank():
    assert dist_context.shard([], 0, 3) == []
    assert dist_context.shard([2.0, 1.0], 0, 1) == [0, 1]
    for rank, size in [(-1, 2), (2, 2), (0, 0)]:
        with pytest.raises(ValueError):
            dist_context.shard([1.0], rank, size)


def test_item_seed_is_stable():
    # Independent derivation: first 4 bytes of sha256("seed\0key") as little-endian, 31 bits.
    digest = hashlib.sha256(b"42\x00benign/benign (1).png").digest()
    expected = struct.unpack("<I", digest[:4])[0] & 0x7FFFFFFF
    assert dist_context.item_seed(42, "benign/benign (1).png") == expected
    # Pinned: changing the derivation would silently change every augmented dataset.
    assert dist_context.item_seed(0, "a") == 1218452063


def test_item_seed_differs_by_key_and_seed():
    seeds = {dist_context.item_seed(s, k) for s in range(5) for k in ("a", "b", "c", "ab")}
    assert len(seeds) == 20
    assert all(0 <= s < 2 ** 31 for s in seeds)
    assert dist_context.item_seed(np.int64(3), "x") == dist_context.item_seed(3, "x")


# -------------------------------------------------------------------- pure training helpers

def test_training_config_defaults_and_validation():
    cfg = dist_training.HorovodTrainingConfig()
    assert (cfg.warmup_epochs, cfg.momentum_correction, cfg.root_rank) == (5, True, 0)
    for bad in [dict(warmup_epochs=-1), dict(warmup_epochs=2.5), dict(root_rank=-1)]:
        with pytest.raises(ValueError):
            dist_training.HorovodTrainingConfig(**bad)


def test_writer_and_verbosity():
    assert dist_training.is_writer(Context()) and dist_training.fit_verbosity(Context()) == 2
    rank1 = Context(rank=1, size=2)
    assert not dist_training.is_writer(rank1) and dist_training.fit_verbosity(rank1, 1) == 0


def test_scaled_learning_rate_and_batch_split():
    assert dist_training.scaled_learning_rate(1e-4, Context()) == 1e-4
    assert dist_training.scaled_learning_rate(1e-4, Context(size=8)) == pytest.approx(8e-4)
    assert dist_training.per_rank_batch_size(32, Context(size=8)) == 4
    assert dist_training.per_rank_batch_size(32, Context()) == 32
    for call in [lambda: dist_training.scaled_learning_rate(0.0, Context()),
                 lambda: dist_training.per_rank_batch_size(32, Context(size=3)),
                 lambda: dist_training.per_rank_batch_size(0, Context())]:
        with pytest.raises(ValueError):
            call()


@pytest.mark.parametrize("n, batch, size", [(10, 2, 4), (16, 4, 2), (33, 4, 8), (7, 7, 1)])
def test_shard_steps_fit_the_smallest_shard(n, batch, size):
    steps = dist_training.shard_steps(n, batch, Context(size=size))
    shard_sizes = [len(range(r, n, size)) for r in range(size)]  # what ds.shard deals
    assert all(steps * batch <= s for s in shard_sizes)
    assert (steps + 1) * batch > min(shard_sizes)


def test_shard_steps_rejects_too_little_data():
    with pytest.raises(ValueError):
        dist_training.shard_steps(7, 4, Context(size=2))
    with pytest.raises(ValueError):
        dist_training.shard_steps(8, 0, Context())


def horovod_callback_multiplier(epoch, batch, steps_per_epoch, warmup_epochs, size):
    """Horovod's LearningRateWarmupCallback factor, transcribed in its epoch form."""
    e = epoch + batch / steps_per_epoch + 1.0 / steps_per_epoch
    return 1.0 / size * (e * (size - 1) / warmup_epochs + 1)


@pytest.mark.parametrize("size, spe, warmup_epochs", [(2, 2, 2), (8, 5, 3), (3, 1, 1)])
def test_warmup_multiplier_matches_horovods_callback(size, spe, warmup_epochs):
    for epoch in range(warmup_epochs + 2):
        for batch in range(spe):
            step = epoch * spe + batch
            expected = (horovod_callback_multiplier(epoch, batch, spe, warmup_epochs, size)
                        if epoch < warmup_epochs else 1.0)
            assert dist_training.warmup_multiplier(step, warmup_epochs * spe, size) == \
                pytest.approx(expected, rel=1e-12)


def test_warmup_multiplier_ramp_shape():
    steps = np.arange(12)
    factor = dist_training.warmup_multiplier(steps, 8, 4)
    assert factor[0] == pytest.approx((1 + 3 / 8) / 4)  # about lr / size at step 0
    assert factor[7] == 1.0 and np.all(factor[7:] == 1.0)
    assert np.all(np.diff(factor) >= 0) and np.all(factor <= 1.0)
    np.testing.assert_allclose(np.diff(factor[:8]), 3 / 8 / 4)  # linear
    assert np.all(dist_training.warmup_multiplier(steps, 8, 1) == 1.0)
    assert np.all(dist_training.warmup_multiplier(steps, 0, 4) == 1.0)
    for args in [(-1, 8, 2), (0, 2.5, 2), (0, -1, 2), (0, 4, 0)]:
        with pytest.raises(ValueError):
            dist_training.warmup_multiplier(*args)


# ----------------------------------------------------------- training helpers on one rank (TF)

@pytest.fixture(scope="module")
def tf():
    import tensorflow

    return tensorflow


def tiny_model(tf):
    return tiny.build_model(tf, rank=0)


def test_shard_dataset(tf):
    ds = tf.data.Dataset.range(10)
    assert dist_training.shard_dataset(ds, Context()) is ds
    shards = [[int(v) for v in dist_training.shard_dataset(ds, Context(rank=r, size=3))] for r in range(3)]
    assert shards == [list(range(r, 10, 3)) for r in range(3)]


def test_warmup_schedule_scales_floats_and_schedules(tf):
    size, warmup = 4, 6
    schedule = dist_training.warmup_schedule(0.4, warmup, Context(size=size))
    steps = np.arange(10)
    got = np.array([float(schedule(s)) for s in steps])
    np.testing.assert_allclose(got, 0.4 * dist_training.warmup_multiplier(steps, warmup, size), rtol=1e-6)

    cosine = tf.keras.optimizers.schedules.CosineDecay(5e-4, decay_steps=20, alpha=1e-6 / 5e-4)
    warm_cosine = dist_training.warmup_schedule(cosine, warmup, Context(size=size))
    expected = [float(cosine(s)) * dist_training.warmup_multiplier(s, warmup, size) for s in steps]
    np.testing.assert_allclose([float(warm_cosine(s)) for s in steps], expected, rtol=1e-6)

    single = dist_training.warmup_schedule(cosine, warmup, Context())
    np.testing.assert_allclose([float(single(s)) for s in steps],
                               [float(cosine(s)) for s in steps], rtol=1e-7)

    clone = type(warm_cosine).from_config(warm_cosine.get_config())
    np.testing.assert_allclose([float(clone(s)) for s in steps], expected, rtol=1e-6)


def test_warmup_schedule_drives_an_optimizer(tf):
    schedule = dist_training.warmup_schedule(0.2, 4, Context(size=2))
    for opt in [tf.keras.optimizers.SGD(schedule), tf.keras.optimizers.legacy.SGD(schedule)]:
        var = tf.Variable([1.0])
        for step in range(6):  # gradient 1: each step moves the variable by -lr(step)
            before = float(var[0])
            opt.apply_gradients([(tf.constant([1.0]), var)])
            assert before - float(var[0]) == pytest.approx(
                0.2 * dist_training.warmup_multiplier(step, 4, 2), rel=1e-6)


def test_wrap_optimizer_and_tape_are_identity_on_one_rank(tf):
    opt = tf.keras.optimizers.SGD(0.1)
    assert dist_training.wrap_optimizer(opt, Context(), compression=None) is opt
    legacy = tf.keras.optimizers.legacy.Adam(0.1)
    assert dist_training.wrap_optimizer(legacy, Context()) is legacy
    with tf.GradientTape() as tape:
        pass
    assert dist_training.distributed_tape(tape, Context()) is tape
    with pytest.raises(TypeError):
        dist_training.wrap_optimizer("sgd", Context())


def test_optimizer_variables_both_families(tf):
    model = tiny_model(tf)
    new = tf.keras.optimizers.SGD(0.1, momentum=0.9)
    new.build(model.trainable_variables)
    # iteration count + one momentum slot per trainable variable
    assert len(dist_training.optimizer_variables(new)) == 1 + len(model.trainable_variables)
    legacy = tf.keras.optimizers.legacy.SGD(0.1, momentum=0.9)
    legacy.apply_gradients(zip([tf.zeros_like(v) for v in model.trainable_variables],
                               model.trainable_variables))
    assert len(dist_training.optimizer_variables(legacy)) == 1 + len(model.trainable_variables)


def test_broadcast_initial_state_on_one_rank(tf):
    model = tiny_model(tf)
    before = [w.copy() for w in model.get_weights()]
    opt = tf.keras.optimizers.Adam(1e-3)
    dist_training.broadcast_initial_state(model, opt, Context())
    # Slots built up front (so several ranks could broadcast them before step 1).
    assert len(dist_training.optimizer_variables(opt)) == 1 + 2 * len(model.trainable_variables)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    dist_training.broadcast_initial_state(model, None, Context())
    with pytest.raises(ValueError):
        dist_training.broadcast_initial_state(tf.keras.Sequential([tf.keras.layers.Dense(1)]), opt,
                                     Context())
    with pytest.raises(ValueError):
        dist_training.broadcast_initial_state(model, opt, Context(), root_rank=1)


def test_average_metrics_on_one_rank():
    out = dist_training.average_metrics({"loss": np.float32(0.25), "acc": 1}, Context(), weight=3)
    assert out == {"acc": 1.0, "loss": 0.25} and all(type(v) is float for v in out.values())
    assert dist_training.average_metrics({}, Context()) == {}
    for weight in [0.0, -1.0, float("nan")]:
        with pytest.raises(ValueError):
            dist_training.average_metrics({"loss": 1.0}, Context(), weight=weight)


def test_fit_callbacks_on_one_rank(tf, tmp_path):
    stop = tf.keras.callbacks.EarlyStopping(patience=7)
    csv = tf.keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    cbs = dist_training.fit_callbacks(Context(), 1e-4, extra=[stop], writer_only=[csv],
                             checkpoint_path=tmp_path / "w.h5", log_dir=tmp_path / "tb")
    assert [type(c).__name__ for c in cbs] == ["EarlyStopping", "ModelCheckpoint",
                                               "TensorBoard", "CSVLogger"]
    assert cbs[0] is stop and cbs[-1] is csv
    assert dist_training.fit_callbacks(Context(), 1e-4) == []
    with pytest.raises(ValueError):
        dist_training.fit_callbacks(Context(), 0.0)
    with pytest.raises(ValueError):
        dist_training.fit_callbacks(Context(), 1e-4, dist_training.HorovodTrainingConfig(root_rank=1))


# ------------------------------------------------------------- 1-rank run and 2-rank run

def _run(cmd, out: Path, timeout: float = 600) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               HOROVOD_GLOO_TIMEOUT_SECONDS="120", PYTHONPATH=str(REPO))
    proc = subprocess.run([*map(str, cmd), str(TINY), "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    ranks = sorted(out.glob("rank*.json"))
    return {int(p.stem[4:]): {**json.loads(p.read_text()),
                              "weights": dict(np.load(p.with_suffix(".npz")))} for p in ranks}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The tiny script as a plain process: one rank, whole global batches."""
    out = tmp_path_factory.mktemp("reference")
    return out, _run([sys.executable], out)


@pytest.fixture(scope="module")
def hvd_run(tmp_path_factory, horovodrun):
    """The tiny script under ``horovodrun -np 2 --gloo``: half of every batch per rank."""
    out = tmp_path_factory.mktemp("hvd2")
    return out, _run([horovodrun, "-np", "2", "--gloo", "-H", "localhost:2", sys.executable], out)


def test_single_process_run_needs_no_horovod(reference_run):
    out, runs = reference_run
    assert list(runs) == [0]
    record = runs[0]
    assert record["horovod_imported"] is False
    assert record["checks"]["size"] == 1
    assert record["checks"]["shard_of_range6"] == list(range(6))
    assert record["runs"]["fit_new"]["callbacks"] == ["Recorder", "ModelCheckpoint",
                                                      "TensorBoard"]
    assert (out / "ckpt_from_rank0.weights.h5").is_file()
    # On one rank the warm-up is a no-op: the learning rate never moves.
    np.testing.assert_allclose(record["runs"]["warmup_legacy_momentum"]["lr"],
                               tiny.LEARNING_RATE, rtol=1e-6)


@pytest.mark.hvd
@pytest.mark.parametrize("mode", ["fit_new", "fit_legacy", "tape", "tape_legacy"])
def test_two_ranks_equal_one_rank_on_the_combined_batch(mode, hvd_run, reference_run):
    (_, runs), (_, ref) = hvd_run, reference_run
    assert sorted(runs) == [0, 1]
    w0, w1, w_ref = runs[0]["weights"][mode], runs[1]["weights"][mode], ref[0]["weights"][mode]
    np.testing.assert_array_equal(w0, w1)  # rank 1 started elsewhere: broadcast + averaging
    np.testing.assert_allclose(w0, w_ref, rtol=1e-12, atol=1e-12)
    assert not np.allclose(w_ref, np.concatenate([w.ravel() for w in tiny.initial_weights(0)]))
    # Averaged epoch losses (float32 Keras metrics) equal the 1-rank losses.
    assert runs[0]["runs"][mode]["loss"] == runs[1]["runs"][mode]["loss"]
    np.testing.assert_allclose(runs[0]["runs"][mode]["loss"], ref[0]["runs"][mode]["loss"],
                               rtol=1e-6)


@pytest.mark.hvd
@pytest.mark.parametrize("mode", ["plain_tape", "wrapped_optimizer_plain_tape"])
def test_without_the_distributed_tape_ranks_drift_apart(mode, hvd_run, reference_run):
    """Negative controls: a plain tape (even with a DistributedOptimizer) averages nothing."""
    (_, runs), (_, ref) = hvd_run, reference_run
    w0, w1 = runs[0]["weights"][mode], runs[1]["weights"][mode]
    assert np.max(np.abs(w0 - w1)) > 1e-2
    assert np.max(np.abs(w0 - ref[0]["weights"][mode])) > 1e-2


@pytest.mark.hvd
def test_fit_warmup_follows_the_custom_loop_schedule(hvd_run, tf):
    _, runs = hvd_run
    spe = runs[0]["runs"]["warmup_new_momentum"]["steps_per_epoch"]
    warmup_steps, lr = tiny.WARMUP_EPOCHS * spe, tiny.LEARNING_RATE
    schedule = dist_training.warmup_schedule(lr, warmup_steps, Context(size=2))
    for mode in ["warmup_new_momentum", "warmup_legacy_momentum"]:
        for rank in (0, 1):
            trace = np.array(runs[rank]["runs"][mode]["lr"])
            steps = np.arange(len(trace))
            assert len(trace) == (tiny.WARMUP_EPOCHS + 1) * spe
            np.testing.assert_allclose(trace, lr * dist_training.warmup_multiplier(steps, warmup_steps, 2),
                                       rtol=1e-6)
            np.testing.assert_allclose(trace, [float(schedule(s)) for s in steps], rtol=1e-6)
        np.testing.assert_array_equal(runs[0]["weights"][mode], runs[1]["weights"][mode])
    # Momentum correction (Goyal et al. 2017): m * lr_t / lr_(t-1) during the warm-up, on the
    # legacy optimizer only; the Keras >= 2.11 SGD keeps its float momentum (and no crash).
    trace = np.array(runs[0]["runs"]["warmup_legacy_momentum"]["lr"])
    previous = np.concatenate([[lr], trace[:-1]])
    expected = np.where(np.arange(len(trace)) < warmup_steps,
                        tiny.MOMENTUM * trace / previous, tiny.MOMENTUM)
    np.testing.assert_allclose(runs[0]["runs"]["warmup_legacy_momentum"]["momentum"], expected,
                               rtol=1e-5)
    assert set(runs[0]["runs"]["warmup_new_momentum"]["momentum"]) == {tiny.MOMENTUM}


@pytest.mark.hvd
def test_callback_order_and_rank0_only_writes(hvd_run):
    out, runs = hvd_run
    assert runs[0]["runs"]["warmup_new_momentum"]["callbacks"] == [
        "BroadcastInitialStateCallback", "MetricAverageCallback", "LearningRateWarmupCallback",
        "Recorder"]
    assert runs[0]["runs"]["fit_new"]["callbacks"] == [
        "BroadcastInitialStateCallback", "MetricAverageCallback", "Recorder", "ModelCheckpoint",
        "TensorBoard"]
    assert runs[1]["runs"]["fit_new"]["callbacks"] == [
        "BroadcastInitialStateCallback", "MetricAverageCallback", "Recorder"]
    assert (out / "ckpt_from_rank0.weights.h5").is_file()
    assert (out / "tensorboard_from_rank0").is_dir()
    assert not list(out.glob("*rank1.weights.h5")) and not (out / "tensorboard_from_rank1").exists()


@pytest.mark.hvd
def test_collective_helpers_on_two_ranks(hvd_run):
    _, runs = hvd_run
    for rank in (0, 1):
        checks = runs[rank]["checks"]
        assert checks["size"] == 2 and checks["is_writer"] is (rank == 0)
        assert checks["shard_of_range6"] == [rank, rank + 2, rank + 4]
        assert checks["mean_of_rank"] == {"one": 1.0, "rank": 0.5}
        assert checks["weighted_mean_of_rank"] == pytest.approx(2 / 3)  # (0*1 + 1*2) / 3
        assert checks["mismatched_names_raise"] is True  # on both ranks: nobody hangs


def test_pin_cpus_gives_each_local_rank_its_own_cores(monkeypatch):
    calls = {}
    monkeypatch.setattr(dist_context.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(dist_context.os, "sched_setaffinity", lambda tid, cpus: calls.setdefault(tid, cpus))
    assert dist_context.pin_cpus(local_rank=1, local_size=4, threads=2) == [2, 3]
    assert calls and all(cpus == [2, 3] for cpus in calls.values())  # every thread of ours
    assert os.getpid() in calls
    calls.clear()
    assert dist_context.pin_cpus(0, 1, 2) is None            # a lone process is left alone
    assert dist_context.pin_cpus(0, 8, 2) is None            # not enough cores for every rank
    monkeypatch.setenv("TF_USAUG_PIN_CPUS", "0")
    assert dist_context.pin_cpus(1, 4, 2) is None and not calls
