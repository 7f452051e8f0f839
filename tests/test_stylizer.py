"""The feed-forward stylizer (tf_usaug.models.stylizer, ``python -m tf_usaug.train stylizer``,
``python -m tf_usaug.augment --method stylizer``).

At 32 px with a one-residual-block network (channels 8-16-32) and a random loss network: the
noise injection (per seed, reproducible, batch-independent, learnable scale), saving and
loading with the registered layers, the CLI end to end (a few steps lower the loss), exact
resume after kill -9, refused reruns, one-line errors, the augmentation method (K outputs of
one content differ, resume), the relevance-weighted content loss and a 2-rank Horovod run.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DEMO, REPO, kill_then_resume, one_error_line, run_module
from tf_usaug import augment, train
from tf_usaug.data.image_io import read_image
from tf_usaug.files import write_png

SIZE = 32
# Shared by the end-to-end run and the resume test, so the first is the second's reference.
RUN_ARGS = ("--size", str(SIZE), "--steps", "16", "--batch-size", "2", "--filters", "8", "16",
            "32", "--residual-blocks", "1", "--weights", "none", "--checkpoint-every", "2",
            "--log-every", "1", "--eval-images", "4", "--seed", "3", "--threads", "2")


def make_styles(root: Path, count: int = 6, seed: int = 0) -> Path:
    """Coarse, bright speckle: another scanner's look (40 px, so it is resized)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.random((10, 10))
        image = np.kron(coarse, np.ones((4, 4))) * 0.6 + 0.3 * rng.random((40, 40))
        write_png(root / f"style_{i}.png", np.clip(image, 0, 1).astype(np.float32))
    return root


@pytest.fixture(scope="module")
def styles(tmp_path_factory) -> Path:
    return make_styles(tmp_path_factory.mktemp("styles") / "scanner_b")


@pytest.fixture(scope="module")
def cli_run(styles, tmp_path_factory):
    """One uninterrupted CLI run on the demo phantoms: (out, completed process)."""
    out = tmp_path_factory.mktemp("stylizer") / "run"
    proc = run_module("tf_usaug.train", "stylizer", "--styles", styles, "--content", DEMO,
                      "--out", out, *RUN_ARGS)
    return out, proc



def small_net(**kwargs):
    from tf_usaug.models.stylizer.networks import build_transform_net

    return build_transform_net((4, 8, 8), residual_blocks=1, **{"noise_init": 0.5, **kwargs})


# ----------------------------------------------------------------------------- the network


def test_noise_injection_draws_per_seed_reproducibly_and_per_image():
    from tf_usaug.models.stylizer.networks import NoiseInjection, noise_seeds

    x = np.random.default_rng(0).random((2, 16, 16, 1)).astype(np.float32)
    net = small_net(seed=1)
    a = net([x, noise_seeds([1, 2])]).numpy()
    assert a.shape == (2, 16, 16, 1) and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, net([x, noise_seeds([1, 2])]).numpy())  # reproducible
    b = net([x, noise_seeds([1, 3])]).numpy()
    np.testing.assert_array_equal(a[0], b[0])
    assert np.abs(a[1] - b[1]).mean() > 1e-3  # another seed, another output
    alone = net([x[1:], noise_seeds([2])]).numpy()  # the batch does not matter
    np.testing.assert_allclose(alone[0], a[1], atol=1e-6)
    np.testing.assert_array_equal(noise_seeds(7, 3), [[7, 0], [7, 1], [7, 2]])
    np.testing.assert_array_equal(noise_seeds(7, 1), noise_seeds([7]))
    quiet = small_net(seed=1, noise_layers=0)  # Johnson et al.'s network: no randomness
    assert not [l for l in quiet.layers if isinstance(l, NoiseInjection)]
    np.testing.assert_array_equal(quiet([x, noise_seeds([1, 2])]).numpy(),
                                  quiet([x, noise_seeds([5, 6])]).numpy())
    layer = NoiseInjection(1.0)  # without seeds: a fresh draw at every call
    feats = np.zeros((1, 8, 8, 3), np.float32)
    first, second = layer(feats).numpy(), layer(feats).numpy()
    assert np.abs(first - second).mean() > 0.1
    np.testing.assert_array_equal(first[..., 0], first[..., 2])  # one image, per-channel scale


def test_noise_scale_is_learned_even_from_zero():
    import tensorflow as tf

    from tf_usaug.models.stylizer.networks import noise_layers_of, noise_seeds

    net = small_net(noise_init=0.0, seed=2)
    layers = noise_layers_of(net)
    assert [l.name for l in layers] == ["noise1", "noise2", "noise3"]
    x = np.random.default_rng(1).random((2, 16, 16, 1)).astype(np.float32)
    target = np.random.default_rng(2).random((2, 16, 16, 1)).astype(np.float32)
    optimizer = tf.keras.optimizers.Adam(1e-2)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(net([x, noise_seeds([3, 4])], training=True) - target))
    scales = [l.scale for l in layers]
    grads = tape.gradient(loss, scales)
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)
    optimizer.apply_gradients(zip(grads, scales))
    assert all(float(tf.reduce_max(tf.abs(s))) > 1e-3 for s in scales)  # moved off 0


def test_network_saves_and_loads_with_its_layers(tmp_path):
    import tensorflow as tf

    from tf_usaug.models.stylizer.networks import noise_seeds

    net = small_net(seed=4)
    x = np.random.default_rng(3).random((2, 20, 24, 1)).astype(np.float32)
    seeds = noise_seeds([5, 6])
    net.save(tmp_path / "m.keras")
    clone = tf.keras.models.load_model(tmp_path / "m.keras")  # registered custom layers
    np.testing.assert_allclose(clone([x, seeds]).numpy(), net([x, seeds]).numpy(), atol=1e-6)


def test_stylize_pads_odd_sizes_and_follows_the_seed(tmp_path):
    from tf_usaug.models.stylizer.run_files import StylizerRun, stylize

    run = StylizerRun(small_net(seed=5), {"side_multiple": 4, "size": 16}, tmp_path)
    rng = np.random.default_rng(4)
    images = [rng.random((18, 21)).astype(np.float32), rng.random((18, 21)).astype(np.float32)]
    out = stylize(run, images, seed=9)
    assert out.shape == (2, 18, 21) and out.dtype == np.float32
    np.testing.assert_allclose(stylize(run, images[:1], seed=[9])[0], out[0], atol=1e-6)
    mixed = stylize(run, [images[0], images[0][:16, :16]], seed=9)  # two shapes: a list
    assert [m.shape for m in mixed] == [(18, 21), (16, 16)]
    fresh = stylize(run, images[:1]), stylize(run, images[:1])  # no seed: a new draw each call
    assert np.abs(fresh[0] - fresh[1]).mean() > 1e-4


@pytest.mark.parametrize("backbone", ["resnet50", "vgg19"])
def test_content_layers_are_checked_against_the_keras_models(backbone):
    import tensorflow as tf

    from tf_usaug.models.stylizer.config import feature_layers
    from tf_usaug.nst.backbones import feature_layer_names

    build = tf.keras.applications.ResNet50 if backbone == "resnet50" else \
        tf.keras.applications.VGG19
    model = build(include_top=False, weights=None, input_shape=(None, None, 3))
    assert sorted(feature_layers(backbone)) == sorted(feature_layer_names(model))


def test_every_random_choice_is_a_function_of_seed_and_step():
    from tf_usaug.models.stylizer.data import draw_references, step_indices

    seen = np.concatenate([step_indices(5, 2, 0, s) for s in range(5)])  # two epochs
    assert sorted(seen[:5]) == list(range(5)) and sorted(seen[5:]) == list(range(5))
    np.testing.assert_array_equal(step_indices(5, 2, 0, 3), step_indices(5, 2, 0, 3))
    assert not np.array_equal(step_indices(50, 4, 0, 0), step_indices(50, 4, 1, 0))
    refs = draw_references(np.random.default_rng(0), 4, 3, own=2)
    assert len(set(refs)) == 3 and 2 not in refs  # without replacement, not its own file
    assert len(draw_references(np.random.default_rng(0), 2, 3, own=0)) == 3  # small pool


# ----------------------------------------------------------------------------- training


def test_cli_end_to_end_writes_the_run_folder(cli_run):
    out, proc = cli_run
    for name in ("model.keras", "stylizer.json", "metrics.json", "training_curves.png",
                 "run.json", "checkpoints/state.json"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    stages = [line.split(":")[0] for line in proc.stderr.splitlines() if line.startswith("==>")]
    assert stages == ["==> data", "==> model", "==> train", "==> evaluate", f"==> wrote {out}"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 16 and metrics["contents"] == 32 and metrics["styles"] == 6
    assert len(metrics["history"]) == 16 and metrics["style_layers"] == ["conv1_relu"]
    initial, final = metrics["initial"], metrics["final"]
    assert final["total"] < initial["total"]  # a few steps lower the loss ...
    assert final["content"] < initial["content"] and final["style"] < initial["style"]
    info = json.loads((out / "stylizer.json").read_text())
    assert info["size"] == SIZE and info["side_multiple"] == 4 and info["noise_layers"] == 3


def test_resume_after_kill_ends_with_the_uninterrupted_weights(cli_run, styles, tmp_path,
                                                               capsys):
    from tf_usaug.models.stylizer import load_stylizer_run

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tf_usaug.train", "stylizer", "--styles", str(styles),
           "--content", str(DEMO), "--out", str(out), *RUN_ARGS]
    stopped, _ = kill_then_resume(cmd, "step", 4, capsys, "model.keras")
    assert 4 <= stopped["step"] < 16

    ref_out, _ = cli_run
    ref, got = load_stylizer_run(ref_out).model, load_stylizer_run(out).model
    for a, b in zip(ref.get_weights(), got.get_weights()):
        np.testing.assert_array_equal(a, b)  # bit for bit (deterministic ops, CPU)

    def trace(run):
        m = json.loads((run / "metrics.json").read_text())
        return [{k: v for k, v in r.items() if k != "seconds"} for r in m["history"]], \
            m["initial"], m["final"], m["scales"]

    assert trace(out) == trace(ref_out)
    in_process = cmd[3:-2]  # without "--threads 2": keep pytest's pools
    assert train.main([*in_process, "--resume"]) == 0  # complete: nothing to do
    assert "is complete (16 steps): nothing to do" in capsys.readouterr().err


def test_rerun_with_other_settings_is_refused_naming_them(cli_run, styles, capsys):
    out, _ = cli_run
    before = (out / "metrics.json").read_bytes()
    rc = train.main(["stylizer", "--styles", str(styles), "--content", str(DEMO), "--out",
                     str(out), *RUN_ARGS[:-4], "--seed", "4", "--lr", "0.01"])
    line = one_error_line(rc, capsys.readouterr().err)
    for needle in ("seed 3 -> 4", "learning_rate 0.001 -> 0.01", "--overwrite"):
        assert needle in line, line
    assert (out / "metrics.json").read_bytes() == before


def test_bad_arguments_are_one_line(cli_run, styles, tmp_path, capsys):
    run, _ = cli_run
    out = tmp_path / "out"
    base = ("stylizer", "--out", str(out))
    cases = [
        ((), "the following arguments are required: --styles"),
        (("--styles", tmp_path / "nowhere"), "no such file or folder"),
        (("--styles", styles, "--size", "30"), "--size must be a whole number >= 32"),
        (("--styles", styles, "--size", "34"), "multiple of 4"),
        (("--styles", styles, "--noise-layers", "5"), "--noise-layers must be 0, 1, 2 or 3"),
        (("--styles", styles, "--resume", "--overwrite"), "give one of them"),
        (("--styles", styles, "--weights", tmp_path / "w.h5"), "weights file not found"),
        (("--styles", styles, "--relevance-model", styles), "not a classifier run"),
        (("--styles", styles, "--backbone", "vgg99"), "invalid choice: 'vgg99'"),
        (("--styles", styles, "--content-layer", "conv2_block3_output"),
         "did you mean conv2_block3_out"),
    ]
    for args, needle in cases:
        rc = train.main([*base, *map(str, args)])
        assert needle in one_error_line(rc, capsys.readouterr().err), args
    rc = train.main(["stylizer", "--styles", str(styles), "--out", str(styles / "run")])
    assert "lies inside --styles" in one_error_line(rc, capsys.readouterr().err)
    assert not out.exists()  # nothing written before the checks pass

    aug = ("--content", str(DEMO), "--out", str(out), "--method", "stylizer")
    for args, needle in [((), "--method stylizer needs --model RUN"),
                         (("--model", tmp_path / "none"), "no such run folder"),
                         (("--model", styles), "not a stylizer run"),
                         (("--model", run / "checkpoints"), "not a stylizer run")]:
        rc = augment.main([*aug, *map(str, args)])
        assert needle in one_error_line(rc, capsys.readouterr().err), args
    assert not out.exists()


# ----------------------------------------------------------------------------- augmentation


def test_augment_with_the_stylizer_gives_k_different_outputs(cli_run, tmp_path):
    from tf_usaug.data.datasets import discover
    from tf_usaug.models.stylizer import load_stylizer_run, stylize
    from tf_usaug.pipeline.inputs import InputPreparer

    run, _ = cli_run
    out = tmp_path / "aug"
    args = ("--content", DEMO, "--out", out, "--method", "stylizer", "--model", run, "--size",
            str(SIZE), "--per-image", "2", "--no-srad", "--no-progress", "--threads", "2")
    proc = run_module("tf_usaug.augment", *args)
    assert "==> loading the stylizer" in proc.stderr
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 64 and all(r["method"] == "stylizer" and r["mask"] for r in rows)
    by_content: dict[str, list] = {}
    for row in rows:
        by_content.setdefault(row["content"], []).append(row)
    for pair in by_content.values():
        a, b = (read_image(out / r["output"])[0] for r in pair)
        assert a.shape == (SIZE, SIZE) and np.abs(a - b).mean() > 2 / 255  # K outputs differ
        assert pair[0]["params"]["noise_seed"] != pair[1]["params"]["noise_seed"]
    # the job's output is the library's stylize() of the same square and seed
    sample = next(s for s in discover(DEMO) if str(s.image) == rows[0]["content"]
                  or Path(s.image).resolve() == Path(rows[0]["content"]).resolve())
    prepared = InputPreparer(SIZE, "auto", "pad").content(sample)
    mine = prepared.cut(stylize(load_stylizer_run(run), [prepared.image],
                                seed=[rows[0]["seed"]])[0])
    np.testing.assert_allclose(read_image(out / rows[0]["output"])[0], mine, atol=1.01 / 255)
    again = run_module("tf_usaug.augment", *args)  # resume: everything is done
    assert "64 images (0 new)" in again.stderr


def test_relevance_model_weights_the_content_loss(styles, tmp_path):
    clf = tmp_path / "clf"
    run_module("tf_usaug.train", "classifier", "--data", DEMO, "--backbone", "small", "--size",
               str(SIZE), "--epochs", "1", "--out", clf, "--threads", "2")
    out = tmp_path / "run"
    small = [a for a in RUN_ARGS]
    small[small.index("--steps") + 1] = "2"
    proc = run_module("tf_usaug.train", "stylizer", "--styles", styles, "--content", DEMO,
                      "--out", out, *small, "--relevance-model", clf)
    assert "==> relevance maps" in proc.stderr
    assert len(list((out / "cache").glob("*.npy"))) == 32  # one map per training content
    plain = tmp_path / "plain"
    run_module("tf_usaug.train", "stylizer", "--styles", styles, "--content", DEMO, "--out",
               plain, *small)
    weighted = json.loads((out / "metrics.json").read_text())
    assert weighted["scales"]["content"] != json.loads(
        (plain / "metrics.json").read_text())["scales"]["content"]


# ----------------------------------------------------------------------------- Horovod


def _script(path: str, *args: str, **env: str) -> list[str]:
    """Run a job script; returns the words of the command it launched (or printed)."""
    keep = {k: v for k, v in os.environ.items() if k not in (
        "NP", "HOSTS", "PYTHON", "HOROVODRUN", "EXTRA", "MODULE", "DRY_RUN", "JOB_CMD",
        "LAUNCHER", "OUT_DIR", "STYLE_DIR", "CONTENT_DIR", "BATCH", "JOB_ARGS")}
    proc = subprocess.run(["bash", str(REPO / path), *args], cwd=REPO, env={**keep, **env},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("+ ")]
    assert len(shown) == 1, proc.stdout + proc.stderr
    return shlex.split(shown[0][2:])


def test_job_scripts_build_the_stylizer_command(tmp_path):
    words = _script("hvd_jobs/train_stylizer.sh", "--styles", "s", "--out", "a b", DRY_RUN="1",
                    NP="2", PYTHON="py", HOROVODRUN="hvdrun")
    assert words == ["hvdrun", "-np", "2", "-H", "localhost:2", "--gloo", "py", "-m",
                     "tf_usaug.train", "stylizer", "--styles", "s", "--out", "a b"]
    fake = tmp_path / "horovodrun"  # launches nothing; the script prints its command
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    env = dict(REPO_DIR=str(REPO), PYTHON=sys.executable, HOROVODRUN=str(fake), NP="2",
               HOSTS="localhost:2")
    words = _script("slurm/train_stylizer.sbatch", **env, STYLE_DIR="sb", JOB_ARGS="--size 224")
    assert words[words.index("-m"):] == [
        "-m", "tf_usaug.train", "stylizer", "--styles", "sb", "--content", "data/busi",
        "--batch-size", "8", "--size", "224", "--out", "runs/stylizer", "--resume"]
    words = _script("slurm/train_stylizer.sbatch", "--styles", "x", "--overwrite", **env)
    assert words[-5:] == ["--styles", "x", "--overwrite", "--out", "runs/stylizer"]
    if shutil.which("shellcheck"):
        lint = subprocess.run(["shellcheck", "-x", "hvd_jobs/train_stylizer.sh",
                               "slurm/train_stylizer.sbatch"], cwd=REPO, capture_output=True,
                              text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.hvd
def test_two_ranks_train_like_one(cli_run, styles, tmp_path, horovodrun):
    ref_out, _ = cli_run
    out = tmp_path / "run"
    env = dict(os.environ, HOROVOD_GLOO_TIMEOUT_SECONDS="120", PYTHONPATH=str(REPO))
    args = [a for a in RUN_ARGS]
    args[args.index("--threads") + 1] = "1"
    proc = subprocess.run([horovodrun, "-np", "2", "--gloo", "-H", "localhost:2",
                           sys.executable, "-m", "tf_usaug.train", "stylizer", "--styles",
                           str(styles), "--content", str(DEMO), "--out", str(out), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "global batch 2 (1 per rank x 2)" in proc.stdout + proc.stderr
    got, ref = (json.loads((o / "metrics.json").read_text()) for o in (out, ref_out))
    assert got["ranks"] == 2
    for key in ("total", "content", "style"):  # the same steps, up to reduction order
        # (1 thread per rank vs 2: rounding differences grow over the steps)
        np.testing.assert_allclose(got["history"][0][key], ref["history"][0][key], rtol=1e-4)
        np.testing.assert_allclose(got["final"][key], ref["final"][key], rtol=2e-2)
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
