"""The improved alpha-WGAN-GP (paper 003; tf_usaug.models.wgan, ``python -m tf_usaug.train
wgan``).

Eq. 3's losses against numpy, both gradient penalties on critics with known gradients, the
networks' layers, norms and activations per paper 003 (at 256 px too), output ranges, the
update order (code critic, encoder, critic, generator: each optimiser stepped once per
iteration), the CLI end to end at 16 px (a few steps move the losses as expected), exact
resume after kill -9 (weights, optimiser moments, step, random state), refused reruns,
one-line errors, per-class and conditional runs sampled through ``load_gan_run``, and a
2-rank Horovod run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DEMO, REPO, kill_then_resume, one_error_line, run_module
from tf_usaug import train

SIZE = 16
TINY = ("--size", str(SIZE), "--batch-size", "4", "--width", "4", "--max-channels", "16",
        "--code-units", "16", "--z-dim", "8", "--seed", "3")
# Shared by the end-to-end run and the resume test, so the first is the second's reference.
RUN_ARGS = (*TINY, "--steps", "60", "--checkpoint-every", "4", "--log-every", "10",
            "--grid-every", "30", "--threads", "2")


def tiny_config(**kw):
    from tf_usaug.models.wgan.config import WganConfig

    return WganConfig(data=DEMO, size=SIZE, batch_size=4, width=4, max_channels=16,
                      code_units=16, z_dim=8, seed=3, **kw)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One uninterrupted CLI run on the demo phantoms: (out, completed process)."""
    out = tmp_path_factory.mktemp("wgan") / "run"
    proc = run_module("tf_usaug.train", "wgan", "--data", DEMO, "--out", out, *RUN_ARGS)
    return out, proc



def checkpoint_values(run: Path) -> dict:
    """Every variable of the run's latest checkpoint by name (weights, moments, RNG)."""
    import tensorflow as tf

    state = json.loads((run / "checkpoints" / "state.json").read_text())
    reader = tf.train.load_checkpoint(str(run / "checkpoints" / state["latest"]))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


# ----------------------------------------------------------------------------- eq. 3


def test_losses_follow_eq_3():
    from tf_usaug.models.wgan import losses

    rng = np.random.default_rng(0)
    dr, df, dx = (rng.normal(size=(6, 1)).astype(np.float32) for _ in range(3))
    real, rec = (rng.random((6, 4, 4, 1)).astype(np.float32) for _ in range(2))
    l1 = np.abs(real - rec).mean()
    np.testing.assert_allclose(float(losses.l1_distance(real, rec)), l1, rtol=1e-6)
    np.testing.assert_allclose(float(losses.critic_loss(dr, df, dx, 0.3, 10.0)),
                               -2 * dr.mean() + df.mean() + dx.mean() + 3.0, rtol=1e-5)
    np.testing.assert_allclose(float(losses.generator_loss(df, dx, real, rec, 10.0)),
                               -df.mean() - dx.mean() + 10 * l1, rtol=1e-5)
    np.testing.assert_allclose(float(losses.code_critic_loss(dr, df, 0.2, 10.0)),
                               -dr.mean() + df.mean() + 2.0, rtol=1e-5)
    np.testing.assert_allclose(float(losses.encoder_loss(df)), -df.mean(), rtol=1e-6)
    np.testing.assert_allclose(float(losses.encoder_loss(df, dx, real, rec, 10.0)),
                               -df.mean() - dx.mean() + 10 * l1, rtol=1e-5)
    eps = np.array([0.0, 0.25, 1.0, 0.5, 0.1, 0.9], np.float32)
    mixed = losses.interpolate(real, rec, eps).numpy()
    np.testing.assert_allclose(mixed, eps[:, None, None, None] * real
                               + (1 - eps[:, None, None, None]) * rec, rtol=1e-6)


def test_gradient_penalties_on_critics_with_known_gradients():
    import tensorflow as tf

    from tf_usaug.models.wgan.losses import gradient_penalty

    rng = np.random.default_rng(1)
    real, fake = (rng.normal(size=(5, 3, 3, 1)).astype(np.float32) for _ in range(2))
    eps = rng.random(5).astype(np.float32)
    w = rng.normal(size=(3, 3, 1)).astype(np.float32)
    linear = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])  # noqa: E731  grad = w everywhere
    np.testing.assert_allclose(float(gradient_penalty(linear, real, fake, eps)),
                               (np.linalg.norm(w) - 1) ** 2, rtol=1e-5)
    unit = w / np.linalg.norm(w)  # a 1-Lipschitz critic with |grad| = 1: no penalty
    assert float(gradient_penalty(lambda x: tf.reduce_sum(x * unit, axis=[1, 2, 3]), real,
                                  fake, eps)) < 1e-8
    # codes [B, d]: f(z) = |z|^2 / 2 has grad z, so the penalty is E[(|z_p| - 1)^2]
    zr, zg = (rng.normal(size=(7, 4)).astype(np.float32) for _ in range(2))
    e = rng.random(7).astype(np.float32)
    zp = e[:, None] * zr + (1 - e[:, None]) * zg
    want = np.mean((np.linalg.norm(zp, axis=1) - 1) ** 2)
    got = gradient_penalty(lambda z: 0.5 * tf.reduce_sum(z * z, axis=1), zr, zg, e)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


# ----------------------------------------------------------------------------- networks


def _layers(model, cls):
    return [layer for layer in model.layers if type(layer).__name__ == cls]


def test_networks_follow_paper_003_at_256_px():
    from tf_usaug.models.wgan.config import WganConfig
    from tf_usaug.models.wgan.networks import build_networks

    nets = build_networks(WganConfig(data=DEMO))  # the paper's sizes: 256 px, z 256
    G, D, E, CD = (nets[k] for k in ("generator", "critic", "encoder", "code_critic"))
    assert G.output_shape == (None, 256, 256, 1) and G.input_shape == (None, 256)
    first = _layers(G, "Conv2DTranspose")
    convs = _layers(G, "Conv2D")
    assert len(first) == 1 and first[0].kernel_size == (4, 4) and len(convs) == 6
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert len(_layers(G, "BatchNormalization")) == 6 and len(_layers(G, "ReLU")) == 6
    assert G.layers[-1].get_config()["activation"] == "tanh"
    assert [c.filters for c in [*first, *convs]] == [512, 512, 512, 512, 256, 128, 1]
    assert len(_layers(G, "UpSampling2D")) == 6  # 4 -> 256: every 3x3 layer doubles
    for net, norm, count in ((D, "GroupNormalization", 5), (E, "BatchNormalization", 6)):
        convs = _layers(net, "Conv2D")
        assert len(convs) == 7 and all(c.kernel_size == (4, 4) for c in convs)
        assert [c.strides for c in convs] == [(2, 2)] * 6 + [(1, 1)]
        lrelu = _layers(net, "LeakyReLU")
        assert len(lrelu) == 6 and all(abs(float(l.alpha) - 0.2) < 1e-7 for l in lrelu)
        assert len(_layers(net, norm)) == count
    assert not _layers(D, "BatchNormalization")  # instance norm, not batch norm, in D
    assert all(n.groups in (-1, n.input_shape[-1]) for n in _layers(D, "GroupNormalization"))
    names = [layer.name for layer in D.layers]
    assert "in1" not in names and {"in2", "in6"} <= set(names)  # IN on layers 2-6 only
    assert not _layers(E, "GroupNormalization") and E.output_shape == (None, 256)
    assert D.output_shape == (None, 1)
    dense = _layers(CD, "Dense")
    assert [d.units for d in dense] == [750, 750, 1] and len(_layers(CD, "LeakyReLU")) == 2


def test_small_sizes_keep_seven_layers_and_the_output_range():
    import tensorflow as tf

    from tf_usaug.models.wgan.networks import (build_critic, build_generator, critic_plan,
                                               generator_plan)

    assert [up for _, up, _ in generator_plan(64, 8, 64)] == [False, False, False, True, True,
                                                             True, True]
    assert [s for s, _, _ in generator_plan(64, 8, 64)] == [4, 4, 4, 8, 16, 32, 64]
    assert [s for s, _, _ in critic_plan(64, 8, 64)] == [32, 16, 8, 4, 4, 4, 1]
    G = build_generator(SIZE, 8, 4, 16, n_classes=2)
    z = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32) * 20
    y = np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 1]]
    out = G([z, y], training=False).numpy()
    assert out.shape == (5, SIZE, SIZE, 1) and out.min() >= -1 and out.max() <= 1
    assert len(_layers(G, "Conv2DTranspose")) + len(_layers(G, "Conv2D")) == 7
    D = build_critic(SIZE, 4, 16, n_classes=2)
    assert D([tf.zeros((5, SIZE, SIZE, 1)), y]).shape == (5, 1)
    # instance norm: every sample and channel normalised over H x W by itself
    norm = _layers(D, "GroupNormalization")[0]
    x = np.random.default_rng(2).normal(3.0, 2.0, (2, 4, 4, norm.input_shape[-1]))
    got = norm(x.astype(np.float32)).numpy()
    want = (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(
        x.var(axis=(1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(got, want, atol=1e-4)
    with pytest.raises(ValueError):
        generator_plan(512, 8, 64)  # seven layers reach 256 px at most


def test_update_order_steps_each_optimiser_once_per_iteration():
    import tensorflow as tf

    from tf_usaug.distributed.context import Context
    from tf_usaug.models.wgan.networks import build_networks
    from tf_usaug.models.wgan.training_loop import UPDATE_ORDER, _make_train_step

    order = []

    class Recording(tf.keras.optimizers.Adam):
        def apply_gradients(self, grads_and_vars, **kw):
            order.append(self.tag)  # once per call in the traced program
            return super().apply_gradients(grads_and_vars, **kw)

    cfg = tiny_config()
    nets = build_networks(cfg)
    opts = {}
    for name in UPDATE_ORDER:
        opts[name] = Recording(cfg.learning_rate)
        opts[name].tag = name
        opts[name].build(nets[name].trainable_variables)
    step = _make_train_step(tf, nets, opts, tf.random.Generator.from_seed(0), cfg, Context(),
                            4, 0)
    x = np.random.default_rng(0).uniform(-1, 1, (4, SIZE, SIZE, 1)).astype(np.float32)
    before = [v.numpy().copy() for v in nets["generator"].trainable_variables]
    for _ in range(3):
        values = step(x, np.zeros((4, 0), np.float32))
    assert order == list(UPDATE_ORDER)  # traced once: CD, E, D, G
    assert {k: int(o.iterations) for k, o in opts.items()} == {k: 3 for k in UPDATE_ORDER}
    assert any(not np.array_equal(a, b.numpy())
               for a, b in zip(before, nets["generator"].trainable_variables))
    assert set(values) >= {"loss_critic", "loss_generator", "loss_code_critic", "loss_encoder",
                           "gp_image", "gp_code", "wasserstein", "l1"}
    assert all(np.isfinite(float(v)) for v in values.values())


# ----------------------------------------------------------------------------- the CLI


def test_cli_end_to_end_writes_the_run_folder(cli_run):
    out, proc = cli_run
    for name in ("generator.keras", "gan.json", "metrics.json", "training_curves.png",
                 "run.json", "checkpoints/state.json", "grids/step-00000030.png",
                 "grids/step-00000060.png"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    stages = [line.split(":")[0] for line in proc.stderr.splitlines() if line.startswith("==>")]
    assert stages == ["==> data", "==> model", "==> train", f"==> wrote {out}"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 60 and metrics["images"] == 32 and len(metrics["history"]) == 6
    assert metrics["kimg"] == pytest.approx(0.24) and metrics["train_seconds"] > 0
    first, last = metrics["history"][0], metrics["history"][-1]
    # a few steps move the losses as expected: the critic learns to tell real from fake
    # (its penalty on the generator side falls from the random start), the reconstruction
    # gets closer, and the code critic's penalty keeps it near 1-Lipschitz
    assert last["gp_image"] < first["gp_image"]
    assert last["l1"] < first["l1"]
    assert last["loss_critic"] < first["loss_critic"]
    info = json.loads((out / "gan.json").read_text())
    assert info["model"] == "wgan" and info["size"] == SIZE and info["z_dim"] == 8
    assert info["steps"] == 60 and not info["conditional"]


def test_samples_come_from_the_saved_generator(cli_run):
    from tf_usaug.data.image_io import read_image
    from tf_usaug.distributed.context import item_seed
    from tf_usaug.models.gan import generate, load_gan_run

    out, _ = cli_run
    run = load_gan_run(out)
    a = generate(run, 6, seed=1)
    assert a.shape == (6, SIZE, SIZE) and a.min() >= 0 and a.max() <= 1
    seeds = [item_seed(1, "gan/2"), item_seed(1, "gan/3")]  # image i from its own seed
    np.testing.assert_allclose(a[2:4], generate(run, 2, seed=seeds), atol=1e-6)
    assert np.abs(a[0] - a[1]).mean() > 1e-3  # two seeds, two images
    grid = read_image(out / "grids" / "step-00000060.png")[0]
    assert grid.shape == (8 * SIZE + 7, 8 * SIZE + 7)


@pytest.mark.slow
def test_resume_after_kill_ends_with_the_uninterrupted_state(cli_run, tmp_path, capsys):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tf_usaug.train", "wgan", "--data", str(DEMO), "--out",
           str(out), *RUN_ARGS]
    stopped, _ = kill_then_resume(cmd, "step", 8, capsys, "generator.keras")
    assert 8 <= stopped["step"] < 60

    ref_out, _ = cli_run
    ref, got = checkpoint_values(ref_out), checkpoint_values(out)
    assert set(ref) == set(got)
    kinds = {"moments": 0, "iterations": 0, "rng": 0}
    for name in ref:  # bit for bit: every network, every optimiser's moments, the TF RNG
        np.testing.assert_array_equal(ref[name], got[name], err_msg=name)
        kinds["moments"] += "opt_" in name and "/_variables/" in name and bool(np.any(got[name]))
        kinds["iterations"] += "opt_" in name and "iteration" in name
        kinds["rng"] += name.startswith("tf_rng")
    assert kinds["iterations"] == 4 and kinds["rng"] == 1 and kinds["moments"] > 8
    assert {int(v) for k, v in got.items() if "opt_" in k and "iteration" in k} == {60}

    def trace(run):
        s = json.loads((run / "checkpoints" / "state.json").read_text())
        m = json.loads((run / "metrics.json").read_text())
        rows = [{k: v for k, v in r.items() if k != "seconds"} for r in m["history"]]
        return s["step"], s["kimg"], s["numpy_rng"], rows

    assert trace(out) == trace(ref_out)
    in_process = cmd[3:-2]  # without "--threads 2": keep pytest's pools
    assert train.main([*in_process, "--resume"]) == 0  # complete: nothing to do
    assert "is complete (60 steps): nothing to do" in capsys.readouterr().err


def test_rerun_with_other_settings_is_refused_naming_them(cli_run, capsys):
    out, _ = cli_run
    before = (out / "metrics.json").read_bytes()
    args = list(RUN_ARGS[:-2])
    args[args.index("--seed") + 1] = "4"
    rc = train.main(["wgan", "--data", str(DEMO), "--out", str(out), *args, "--lr", "0.01"])
    line = one_error_line(rc, capsys.readouterr().err)
    for needle in ("seed 3 -> 4", "learning_rate 0.0002 -> 0.01", "--overwrite"):
        assert needle in line, line
    assert (out / "metrics.json").read_bytes() == before


def test_bad_arguments_are_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    base = ("wgan", "--out", str(out))
    flat = tmp_path / "flat"
    flat.mkdir()
    from tf_usaug.files import write_png

    write_png(flat / "a.png", np.zeros((8, 8), np.float32))
    cases = [
        ((), "the following arguments are required: --data"),
        (("--data", tmp_path / "nowhere"), "no such file or folder"),
        (("--data", DEMO, "--size", "48"), "--size must be a power of two from 8 to 256"),
        (("--data", DEMO, "--size", "512"), "--size must be a power of two from 8 to 256"),
        (("--data", DEMO, "--steps", "0"), "--steps must be a whole number >= 1"),
        (("--data", DEMO, "--lr", "-1"), "--lr must be > 0"),
        (("--data", DEMO, "--per-class", "--conditional"), "not allowed with argument"),
        (("--data", DEMO, "--resume", "--overwrite"), "give one of them"),
        (("--data", DEMO, "--fit", "squash"), "invalid choice: 'squash'"),
        (("--data", flat, "--conditional", "--size", "8"), "--conditional needs labelled"),
        (("--data", flat, "--per-class", "--size", "8"), "--per-class needs labelled"),
    ]
    for args, needle in cases:
        rc = train.main([*base, *map(str, args)])
        assert needle in one_error_line(rc, capsys.readouterr().err), args
    rc = train.main(["wgan", "--data", str(flat), "--out", str(flat / "run")])
    assert "lies inside --data" in one_error_line(rc, capsys.readouterr().err)
    assert not (flat / "run").exists() and not out.exists()  # nothing written


@pytest.mark.slow
def test_per_class_and_conditional_runs_generate_labelled_images(tmp_path):
    from tf_usaug.models.gan import generate, load_gan_run

    per = tmp_path / "per"
    proc = run_module("tf_usaug.train", "wgan", "--data", DEMO, "--out", per, *TINY,
                      "--steps", "6", "--per-class", "--threads", "2")
    assert proc.stderr.count("==> data: 16 images") == 2  # one model per class
    for name in ("benign", "malignant"):
        info = json.loads((per / name / "gan.json").read_text())
        assert info["class_filter"] == [name] and info["steps"] == 6
    index = json.loads((per / "gan.json").read_text())
    assert index["per_class"] and index["runs"] == {"benign": "benign",
                                                    "malignant": "malignant"}
    run = load_gan_run(per)
    images = generate(run, 4, seed=0, label=["benign", "malignant", "benign", "malignant"])
    assert images.shape == (4, SIZE, SIZE)
    again = run_module("tf_usaug.train", "wgan", "--data", DEMO, "--out", per, *TINY,
                       "--steps", "6", "--per-class", "--threads", "2", "--resume")
    assert again.stderr.count("nothing to do") == 2

    cond = tmp_path / "cond"
    run_module("tf_usaug.train", "wgan", "--data", DEMO, "--out", cond, *TINY, "--steps", "6",
               "--conditional", "--threads", "2")
    info = json.loads((cond / "gan.json").read_text())
    assert info["conditional"] and info["classes"] == ["benign", "malignant"]
    run = load_gan_run(cond)
    a = generate(run, 2, seed=[5, 5], label=["benign", "malignant"])
    assert np.abs(a[0] - a[1]).max() > 0  # same latent, other class: another image


def test_job_scripts_build_the_wgan_command(tmp_path):
    words = _script("hvd_jobs/train_gan.sh", "wgan", "--data", "d", "--out", "a b",
                    DRY_RUN="1", NP="2", PYTHON="py", HOROVODRUN="hvdrun")
    assert words == ["hvdrun", "-np", "2", "-H", "localhost:2", "--gloo", "py", "-m",
                     "tf_usaug.train", "wgan", "--data", "d", "--out", "a b"]
    fake = tmp_path / "horovodrun"  # launches nothing; the script prints its command
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    env = dict(REPO_DIR=str(REPO), PYTHON=sys.executable, HOROVODRUN=str(fake), NP="2",
               HOSTS="localhost:2")
    words = _script("slurm/train_gan.sbatch", **env, DATA_DIR="busi", JOB_ARGS="--size 128")
    assert words[words.index("-m"):] == [
        "-m", "tf_usaug.train", "wgan", "--data", "busi", "--batch-size", "32", "--size",
        "128", "--out", "runs/wgan", "--resume"]
    words = _script("slurm/train_gan.sbatch", **env, MODEL="stylegan2")
    assert words[words.index("-m"):][:4] == ["-m", "tf_usaug.train", "stylegan2", "--data"]
    words = _script("slurm/train_gan.sbatch", "--data", "x", "--overwrite", **env)
    assert words[-5:] == ["--data", "x", "--overwrite", "--out", "runs/wgan"]


def _script(path: str, *args: str, **env: str) -> list[str]:
    """Run a job script; returns the words of the command it launched (or printed)."""
    import shlex

    keep = {k: v for k, v in os.environ.items() if k not in (
        "NP", "HOSTS", "PYTHON", "HOROVODRUN", "EXTRA", "MODULE", "DRY_RUN", "JOB_CMD",
        "LAUNCHER", "OUT_DIR", "DATA_DIR", "MODEL", "BATCH", "JOB_ARGS")}
    proc = subprocess.run(["bash", str(REPO / path), *args], cwd=REPO, env={**keep, **env},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("+ ")]
    assert len(shown) == 1, proc.stdout + proc.stderr
    return shlex.split(shown[0][2:])


@pytest.mark.hvd
def test_two_ranks_train_like_one(cli_run, tmp_path, horovodrun):
    ref_out, _ = cli_run
    out = tmp_path / "run"
    env = dict(os.environ, HOROVOD_GLOO_TIMEOUT_SECONDS="120", PYTHONPATH=str(REPO))
    args = list(RUN_ARGS)
    args[args.index("--threads") + 1] = "1"
    args[args.index("--steps") + 1] = "10"
    proc = subprocess.run([horovodrun, "-np", "2", "--gloo", "-H", "localhost:2",
                           sys.executable, "-m", "tf_usaug.train", "wgan", "--data", str(DEMO),
                           "--out", str(out), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "global batch 4 (2 per rank x 2)" in proc.stdout + proc.stderr
    got, ref = (json.loads((o / "metrics.json").read_text()) for o in (out, ref_out))
    assert got["ranks"] == 2 and got["steps"] == 10
    for key in ("loss_code_critic", "l1"):  # the same first iterations, up to reduction
        # order and per-rank batch-norm statistics
        np.testing.assert_allclose(got["history"][0][key], ref["history"][0][key], rtol=0.2)
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
