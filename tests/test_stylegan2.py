"""StyleGAN2 (tf_usaug.models.stylegan2, ``python -m tf_usaug.train stylegan2``).

The layers against numpy (modulation / demodulation: unit-norm kernels, the grouped
convolution equals a per-sample loop and the scaled-activation form; equalized learning rate;
noise inputs with learnable per-channel strength; minibatch stddev), the networks (8 mapping
layers by default, skip generator, projection discriminator), the losses (logistic against
numpy, R1 against the analytic gradient of a linear discriminator), then the CLI end to end
at 16 px with the tiny preset (files, grids, losses move, the sampler in the GAN registry),
resume after kill -9 with identical weights, kimg and ADA p, refused reruns and one-line
errors.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DEMO, REPO, kill_then_resume, one_error_line, run_module
from tf_usaug import train

tf = pytest.importorskip("tensorflow")

from tf_usaug.models.stylegan2 import layers as L  # noqa: E402

SIZE = 16
# Shared by the end-to-end run and the resume test, so the first is the second's reference.
# --augment-p 0.5 with --ada-kimg 0.2: p moves 0.08 per update, so resume must restore it.
RUN_ARGS = ("--preset", "tiny", "--size", str(SIZE), "--steps", "12", "--augment-p", "0.5",
            "--ada-kimg", "0.2", "--r1-interval", "4", "--seed", "3", "--threads", "1")



@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One uninterrupted CLI run on the demo phantoms: (out, completed process)."""
    out = tmp_path_factory.mktemp("stylegan2") / "run"
    proc = run_module("tf_usaug.train", "stylegan2", "--data", DEMO, "--out", out, *RUN_ARGS)
    return out, proc


# ----------------------------------------------------------------------------- layers


def _modulated_numpy(weight, styles, demodulate=True):
    w = weight[None] * styles[:, None, None, :, None]          # [B, k, k, in, out]
    if demodulate:
        w = w / np.sqrt(np.sum(w.astype(np.float64) ** 2, axis=(1, 2, 3), keepdims=True) + 1e-8)
    return w.astype(np.float32)


def test_demodulated_kernels_have_unit_norm_per_output_channel(rng):
    weight = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
    styles = rng.normal(1, 0.5, size=(2, 4)).astype(np.float32)
    mod = L.modulate_weights(tf.constant(weight), tf.constant(styles)).numpy()
    np.testing.assert_allclose(mod, _modulated_numpy(weight, styles, False), rtol=1e-6)
    demod = mod * L.demodulation(tf.constant(mod)).numpy()[:, None, None, None, :]
    np.testing.assert_allclose(demod, _modulated_numpy(weight, styles), rtol=1e-5, atol=1e-6)
    norms = np.sqrt(np.sum(demod.astype(np.float64) ** 2, axis=(1, 2, 3)))
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


@pytest.mark.parametrize("demodulate", [True, False])
def test_grouped_convolution_equals_a_per_sample_loop(rng, demodulate):
    x = rng.normal(size=(3, 6, 6, 4)).astype(np.float32)
    weight = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
    styles = rng.normal(1, 0.5, size=(3, 4)).astype(np.float32)
    kernels = _modulated_numpy(weight, styles, demodulate)
    loop = np.concatenate([tf.nn.conv2d(x[b:b + 1], kernels[b], 1, "SAME").numpy()
                           for b in range(3)])
    for fused in (True, False):
        got = L.modulated_conv2d(tf.constant(x), tf.constant(weight), tf.constant(styles),
                                 demodulate, fused).numpy()
        np.testing.assert_allclose(got, loop, rtol=1e-4, atol=1e-4)


def test_equalized_learning_rate_scales_at_run_time(rng):
    dense = L.EqualizedDense(6, lr_multiplier=0.01, bias_init=1.0)
    x = rng.normal(size=(4, 200)).astype(np.float32)
    y = dense(tf.constant(x)).numpy()
    kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
    assert 80 < kernel.std() < 120                     # stored ~ N(0, 1 / lr_mul^2)
    np.testing.assert_allclose(bias * 0.01, 1.0)       # the effective bias is bias_init
    ref = x @ (kernel * 0.01 / np.sqrt(200)) + bias * 0.01
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    assert L.equalized_gain(3 * 3 * 16) == pytest.approx(1 / 12)
    conv = L.EqualizedConv2D(32, 3, activation="linear", use_bias=False)
    out = conv(tf.constant(rng.normal(size=(8, 16, 16, 16)).astype(np.float32))).numpy()
    assert 0.8 < out[:, 2:-2, 2:-2].var() < 1.2        # He-scaled: unit variance kept


def test_noise_changes_outputs_and_its_strength_is_learned(rng):
    layer = L.ModulatedConv2D(4, 3, salt=7)
    x = tf.constant(rng.normal(size=(2, 8, 8, 3)).astype(np.float32))
    w = tf.constant(rng.normal(size=(2, 5)).astype(np.float32))
    a, b = tf.constant([[1, 2], [3, 4]]), tf.constant([[1, 2], [5, 6]])
    np.testing.assert_array_equal(layer([x, w, a]).numpy(), layer([x, w, b]).numpy())  # init 0
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer([x, w, a])))
    grad = tape.gradient(loss, layer.noise_strength).numpy()
    assert grad.shape == (4,) and np.all(grad != 0)    # per channel, learned from 0
    layer.noise_strength.assign([0.5, 0.5, 0.5, 0.5])
    ya, yb = layer([x, w, a]).numpy(), layer([x, w, b]).numpy()
    np.testing.assert_array_equal(ya[0], yb[0])        # sample 0's own seed: the same noise
    assert np.abs(ya[1] - yb[1]).max() > 1e-3          # sample 1's seed differs
    np.testing.assert_allclose(ya[0], layer([x[:1], w[:1], a[:1]]).numpy()[0], atol=1e-5)


def test_minibatch_stddev_against_numpy(rng):
    x = rng.normal(size=(4, 3, 3, 6)).astype(np.float32)
    got = L.minibatch_stddev(tf.constant(x), group_size=2).numpy()
    groups = x.reshape(2, 2, 3, 3, 6)                  # [G, M, ...]: sample i in group i // M?
    std = np.sqrt(groups.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))   # [M]
    expected = np.tile(std, 2)                         # sample b -> M index b % M
    assert got.shape == (4, 3, 3, 7)
    np.testing.assert_allclose(got[..., :6], x)
    np.testing.assert_allclose(got[:, 0, 0, 6], expected, rtol=1e-5)


# ----------------------------------------------------------------------------- networks


def test_default_mapping_has_eight_fc_layers_with_lr_multiplier_0_01():
    from tf_usaug.models.stylegan2 import StyleGAN2Config
    from tf_usaug.models.stylegan2.networks import Generator, num_ws

    cfg = StyleGAN2Config()
    assert (cfg.mapping_layers, cfg.mapping_lr_multiplier, cfg.z_dim, cfg.w_dim) == \
        (8, 0.01, 512, 512)
    assert (cfg.learning_rate, cfg.beta_1, cfg.beta_2, cfg.ada_target, cfg.ada_interval,
            cfg.ada_kimg, cfg.r1_interval) == (0.0025, 0.0, 0.99, 0.6, 4, 500.0, 16)
    G = Generator(16, z_dim=8, w_dim=8, channel_base=64, channel_max=8)
    assert len(G.mapping.fcs) == 8 and all(fc.lr_multiplier == 0.01 for fc in G.mapping.fcs)
    assert G.num_ws == num_ws(16) == 6 and num_ws(256) == 14


def test_generator_saves_and_loads_every_weight(rng, tmp_path):
    from tensorflow import keras

    from tf_usaug.models.stylegan2.networks import Generator

    G = Generator(16, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8)
    G.save(str(tmp_path / "g.keras"))
    loaded = keras.models.load_model(str(tmp_path / "g.keras"), compile=False)
    assert len(loaded.weights) == len(G.weights) == 43
    for a, b in zip(G.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    z, seeds = tf.constant(rng.normal(size=(2, 8)).astype(np.float32)), tf.ones([2, 2], tf.int32)
    np.testing.assert_array_equal(G(z, seeds=seeds).numpy(), loaded(z, seeds=seeds).numpy())


def test_generator_and_conditional_discriminator(rng):
    from tf_usaug.models.stylegan2.networks import build_networks, mix_styles

    G, D = build_networks(16, c_dim=3, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64,
                          channel_max=8, mbstd_group=2)
    z = tf.constant(rng.normal(size=(4, 8)).astype(np.float32))
    c = tf.one_hot([0, 1, 2, 0], 3)
    seeds = tf.constant([[1, 1], [2, 2], [3, 3], [4, 4]])
    images = G(z, c, seeds)
    assert images.shape == (4, 16, 16, 1)              # one grey channel natively
    assert not np.allclose(G(z, tf.one_hot([1, 2, 0, 1], 3), seeds), images)   # label used
    logits = D(images, c).numpy()
    assert logits.shape == (4, 1)
    assert not np.allclose(D(images, tf.one_hot([1, 2, 0, 1], 3)).numpy(), logits)
    ws, other = tf.zeros([2, 6, 8]), tf.ones([2, 6, 8])
    mixed = mix_styles(ws, other, tf.constant([2, 6])).numpy()
    assert mixed[0, :2].sum() == 0 and np.all(mixed[0, 2:] == 1) and mixed[1].sum() == 0


# ----------------------------------------------------------------------------- losses


def test_logistic_losses_against_numpy(rng):
    from tf_usaug.models.stylegan2.losses import discriminator_loss, generator_loss

    real, fake = rng.normal(size=(5, 1)), rng.normal(size=(5, 1))
    np.testing.assert_allclose(generator_loss(tf.constant(fake)).numpy(),
                               np.log1p(np.exp(-fake[:, 0])), rtol=1e-6)
    np.testing.assert_allclose(discriminator_loss(tf.constant(real), tf.constant(fake)).numpy(),
                               np.log1p(np.exp(fake[:, 0])) + np.log1p(np.exp(-real[:, 0])),
                               rtol=1e-6)


def test_r1_of_a_linear_discriminator_is_gamma_half_norm_squared(rng):
    from tf_usaug.models.stylegan2.losses import r1_of

    a = rng.normal(size=(1, 4, 4, 1)).astype(np.float32)
    x = tf.constant(rng.normal(size=(3, 4, 4, 1)).astype(np.float32))
    penalty, logits = r1_of(lambda im: tf.reduce_sum(im * a, axis=[1, 2, 3]) + 2.0, x, 10.0)
    np.testing.assert_allclose(penalty.numpy(), 5.0 * np.sum(a.astype(np.float64) ** 2),
                               rtol=1e-5)
    np.testing.assert_allclose(logits.numpy(), np.sum(x.numpy() * a, axis=(1, 2, 3)) + 2,
                               rtol=1e-5)
    quad = tf.Variable(1.5)   # D(x) = q * sum(x^2): grad 2 q x, and the penalty's dR1/dq
    with tf.GradientTape() as tape:
        penalty, _ = r1_of(lambda im: quad * tf.reduce_sum(im ** 2, axis=[1, 2, 3]), x, 2.0)
        total = tf.reduce_sum(penalty)
    expected = 2 * 4 * 1.5 * np.sum(x.numpy().astype(np.float64) ** 2)  # d/dq (4 q^2 |x|^2)
    np.testing.assert_allclose(tape.gradient(total, quad).numpy(), expected, rtol=1e-4)


# ----------------------------------------------------------------------------- training


def test_cli_end_to_end_writes_the_run_folder_and_samples(cli_run):
    from tf_usaug.models.gan import generate, load_gan_run

    out, proc = cli_run
    for name in ("generator.keras", "gan.json", "metrics.json", "training_curves.png",
                 "run.json", "checkpoints/state.json", "grids/step-00000004.png",
                 "grids/step-00000012.png"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    stages = [line.split(":")[0] for line in proc.stderr.splitlines() if line.startswith("==>")]
    assert stages == ["==> data", "==> model", "==> train", f"==> wrote {out}"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 12 and metrics["kimg"] == pytest.approx(12 * 4 / 1000)
    assert metrics["images"] == 32 and len(metrics["history"]) == 12
    losses_d = [row["loss_D"] for row in metrics["history"]]
    assert len(set(losses_d)) == 12 and all(np.isfinite(losses_d))   # the losses move
    assert sum("r1" in row for row in metrics["history"]) == 3      # lazy R1 every 4
    p = [row["ada_p"] for row in metrics["history"]]
    assert p[0] == 0.5 and p != [0.5] * 12 and metrics["ada_p"] == p[-1]  # ADA p steered
    for i in (3, 7, 11):  # every 4 steps one step of 4 x 4 / 200 toward r_t = 0.6
        rt = metrics["history"][i]["rt"]
        assert p[i] == pytest.approx(p[i - 1] + (0.08 if rt > 0.6 else -0.08)), i
        assert p[i + 1:i + 4] == [p[i]] * len(p[i + 1:i + 4])
    info = json.loads((out / "gan.json").read_text())
    assert info["model"] == "stylegan2" and info["size"] == SIZE
    assert info["extra"]["ada_p"] == metrics["ada_p"]
    run = load_gan_run(out)                   # the sampler registered for augment --method gan
    images = generate(run, 3, seed=5)
    assert images.shape == (3, SIZE, SIZE) and images.min() >= 0 and images.max() <= 1
    np.testing.assert_allclose(generate(run, 3, seed=5, batch_size=1), images, atol=1e-5)
    assert np.abs(images[0] - images[1]).max() > 1e-3


def test_resume_after_kill_continues_with_identical_state(cli_run, tmp_path, capsys):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tf_usaug.train", "stylegan2", "--data", str(DEMO), "--out",
           str(out), *RUN_ARGS]
    stopped, _ = kill_then_resume(cmd, "step", 6, capsys, "generator.keras")
    assert 6 <= stopped["step"] < 12
    assert stopped["kimg"] == pytest.approx(stopped["step"] * 4 / 1000)
    assert stopped["extras"]["ada_p"] != 0.5  # p has moved: resume must not restart it

    from tf_usaug.models.stylegan2.run_files import load_generator

    ref_out, _ = cli_run
    ref, got = (load_generator(o, {}) for o in (ref_out, out))
    for a, b in zip(ref.get_weights(), got.get_weights()):
        np.testing.assert_array_equal(a, b)  # bit for bit (deterministic ops, CPU)
    ref_state, got_state = (json.loads((o / "checkpoints" / "state.json").read_text())
                            for o in (ref_out, out))
    for key in ("step", "kimg", "extras", "numpy_rng"):
        assert got_state[key] == ref_state[key], key

    def trace(run):
        m = json.loads((run / "metrics.json").read_text())
        return [{k: v for k, v in r.items() if k != "seconds"} for r in m["history"]]

    assert trace(out) == trace(ref_out)
    assert (out / "grids" / "step-00000012.png").read_bytes() == \
        (ref_out / "grids" / "step-00000012.png").read_bytes()


def test_rerun_with_other_settings_is_refused_naming_them(cli_run, capsys):
    out, _ = cli_run
    before = (out / "metrics.json").read_bytes()
    args = list(RUN_ARGS)
    args[args.index("--seed") + 1] = "4"
    rc = train.main(["stylegan2", "--data", str(DEMO), "--out", str(out), *args,
                     "--r1-gamma", "10"])
    line = one_error_line(rc, capsys.readouterr().err)
    for needle in ("seed 3 -> 4", "r1_gamma 1.0 -> 10.0", "--overwrite"):
        assert needle in line, line
    assert (out / "metrics.json").read_bytes() == before


def test_bad_arguments_are_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ("stylegan2", "--out", str(out), "--preset", "tiny")
    cases = [
        ((), "the following arguments are required: --data"),
        (("--data", tmp_path / "nowhere"), "no such file or folder"),
        (("--data", DEMO, "--size", "24"), "--size must be a power of two"),
        (("--data", DEMO, "--augment", "mixup"), "invalid choice: 'mixup'"),
        (("--data", DEMO, "--diffaugment", "translation,hue"), "--diffaugment takes"),
        (("--data", DEMO, "--ada-target", "1.5"), "--ada-target must lie in (0, 1)"),
        (("--data", DEMO, "--augment-p", "-0.1"), "--augment-p must lie in [0, 1]"),
        (("--data", DEMO, "--per-class", "--conditional"), "not allowed with argument"),
        (("--data", DEMO, "--resume", "--overwrite"), "give one of them"),
        (("--data", DEMO, "--mapping-layers", "0"), "--mapping-layers must be a whole"),
        (("--data", empty, "--steps", "1"), "no images found"),
        (("--data", DEMO, "--conditional", "--data", DEMO / "benign"), "needs labelled images"),
    ]
    for args, needle in cases:
        rc = train.main([*base, *map(str, args)])
        assert needle in one_error_line(rc, capsys.readouterr().err), args
    rc = train.main(["stylegan2", "--data", str(empty), "--out", str(empty / "run")])
    assert "lies inside --data" in one_error_line(rc, capsys.readouterr().err)
    assert not out.exists()  # nothing written before the checks pass


def test_the_gan_job_scripts_launch_stylegan2():
    from test_stylizer import _script  # the job-script runner the trainers' tests share

    words = _script("hvd_jobs/train_gan.sh", "stylegan2", "--data", "d", "--out", "r",
                    DRY_RUN="1", NP="2", PYTHON="py", HOROVODRUN="hvdrun")
    assert words == ["hvdrun", "-np", "2", "-H", "localhost:2", "--gloo", "py", "-m",
                     "tf_usaug.train", "stylegan2", "--data", "d", "--out", "r"]


@pytest.mark.slow
def test_conditional_and_per_class_runs_sample_by_label(tmp_path):
    from tf_usaug.models.gan import generate, load_gan_run

    tiny = ("--preset", "tiny", "--size", str(SIZE), "--steps", "2", "--threads", "1")
    run_module("tf_usaug.train", "stylegan2", "--data", DEMO, "--out", tmp_path / "cond",
               "--conditional", *tiny)
    cond = load_gan_run(tmp_path / "cond")
    assert cond.info.conditional and cond.covers() == ["benign", "malignant"]
    a, b = (generate(cond, 2, seed=1, label=lab) for lab in ("benign", "malignant"))
    assert np.abs(a - b).max() > 1e-4  # the label embedding changes the image
    run_module("tf_usaug.train", "stylegan2", "--data", DEMO, "--out", tmp_path / "pc",
               "--per-class", *tiny)
    per_class = load_gan_run(tmp_path / "pc")
    assert per_class.info.per_class and sorted(per_class.info.runs) == ["benign", "malignant"]
    assert generate(per_class, 3, seed=0, label="benign").shape == (3, SIZE, SIZE)
    for name in ("benign", "malignant"):
        sub = json.loads((tmp_path / "pc" / name / "gan.json").read_text())
        assert sub["class_filter"] == [name] and sub["images"] == 16
    # both label the demo contents through augment --method gan, as the library samples them
    from tf_usaug.data.image_io import read_image

    for run in ("pc", "cond"):
        out = tmp_path / f"aug-{run}"
        run_module("tf_usaug.augment", "--content", DEMO, "--out", out, "--method", "gan",
                   "--model", tmp_path / run, "--size", str(SIZE), "--per-image", "1",
                   "--no-srad", "--no-progress", "--threads", "1")
        rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
        assert len(rows) == 32 and {r["params"]["model_type"] for r in rows} == {"stylegan2"}
        assert all(r["label"] == Path(r["content"]).parent.name for r in rows)
        for row in (rows[0], rows[-1]):
            want = generate(load_gan_run(tmp_path / run), 1, seed=[row["seed"]],
                            label=row["label"])[0]
            np.testing.assert_allclose(read_image(out / row["output"])[0], want,
                                       atol=1.01 / 255)


@pytest.mark.hvd
@pytest.mark.slow
def test_two_ranks_train_like_one(tmp_path, horovodrun):
    import os

    # Minibatch-stddev groups of 1: a group never spans the ranks' slices of the batch.
    args = ["--data", str(DEMO), "--preset", "tiny", "--size", str(SIZE), "--steps", "4",
            "--mbstd-group", "1", "--augment-p", "0.5", "--seed", "1", "--threads", "1"]
    run_module("tf_usaug.train", "stylegan2", "--out", tmp_path / "one", *args)
    env = dict(os.environ, HOROVOD_GLOO_TIMEOUT_SECONDS="120", PYTHONPATH=str(REPO))
    proc = subprocess.run([horovodrun, "-np", "2", "--gloo", "-H", "localhost:2",
                           sys.executable, "-m", "tf_usaug.train", "stylegan2", "--out",
                           str(tmp_path / "two"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "global batch 4 (2 per rank x 2)" in proc.stdout + proc.stderr
    one, two = (json.loads((tmp_path / o / "metrics.json").read_text()) for o in ("one", "two"))
    assert two["ranks"] == 2 and two["ada_p"] == one["ada_p"]
    for key in ("loss_G", "loss_D"):  # the same steps, up to reduction order
        np.testing.assert_allclose([r[key] for r in two["history"]],
                                   [r[key] for r in one["history"]], rtol=1e-3)
