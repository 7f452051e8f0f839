"""``python -m tf_usaug.augment --method gan --model RUN``: K synthetic images per original,
labelled with its class, the original recorded as their parent (docs/gan.md).

A per-class alpha-WGAN-GP trained for a few steps at 16 px on the demo phantoms: the
manifest (labels, parents, no masks, item seeds), each output equal to the library's
``generate`` of its item seed and class, K outputs of one original differ, resume, outputs at
another working size, refused models and contents before anything is written, and the same
bytes on two Horovod ranks.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DEMO, REPO, run_module
from tf_usaug import augment
from tf_usaug.data.image_io import read_image
from tf_usaug.distributed.context import item_seed

SIZE = 16


@pytest.fixture(scope="module")
def gan_runs(tmp_path_factory):
    """A per-class tiny wgan run (in-process: no second TF start-up), and beside it the
    benign generator presented as an unconditional model of both classes (its gan.json
    without the class filter: what a plain ``train wgan`` on the demo data writes)."""
    import shutil

    from tf_usaug.files import write_json
    from tf_usaug.models.wgan import WganConfig, train_wgan

    root = tmp_path_factory.mktemp("gan")
    tiny = dict(data=DEMO, size=SIZE, steps=3, batch_size=4, width=4, max_channels=16,
                code_units=16, z_dim=8, seed=1, grid_every=0)
    train_wgan(WganConfig(out=root / "per", per_class=True, **tiny))
    plain = root / "plain"
    shutil.copytree(root / "per" / "benign", plain)
    info = json.loads((plain / "gan.json").read_text())
    write_json(plain / "gan.json", {**info, "class_filter": None,
                                    "classes": ["benign", "malignant"]})
    return root / "per", plain


def rows_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def one_error_line(rc: int, stderr: str) -> str:
    assert rc == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[-1]


def test_children_are_labelled_synthetic_images_of_their_parents_class(gan_runs, tmp_path):
    from tf_usaug.models.gan import generate, load_gan_run

    per, _ = gan_runs
    out = tmp_path / "aug"
    args = ("--content", DEMO, "--out", out, "--method", "gan", "--model", per, "--size",
            str(SIZE), "--per-image", "2", "--no-srad", "--no-progress", "--threads", "2")
    proc = run_module("tf_usaug.augment", *args)
    assert "==> loading the GAN" in proc.stderr
    rows = rows_of(out)
    assert len(rows) == 64 and all(r["method"] == "gan" and r["mask"] is None for r in rows)
    run = load_gan_run(per)
    by_parent: dict[str, list] = {}
    for row in rows:
        assert row["parent"] == row["content"]  # the original is the parent ...
        assert row["label"] == Path(row["content"]).parent.name  # ... and gives the class
        name = row["output"][len("images/"):-len(".png")]
        assert row["seed"] == item_seed(0, name) == row["params"]["latent_seed"]
        assert row["params"]["model_type"] == "wgan" and row["crop"] == [0, 0, 0, 0]
        by_parent.setdefault(row["content"], []).append(row)
    for row in rows[:3] + rows[-3:]:  # the library's generate() of the item's seed and class
        want = generate(run, 1, seed=[row["seed"]], label=row["label"])[0]
        got = read_image(out / row["output"])[0]
        assert got.shape == (SIZE, SIZE)
        np.testing.assert_allclose(got, want, atol=1.01 / 255)
    for pair in list(by_parent.values())[:4]:
        a, b = (read_image(out / r["output"])[0] for r in pair)
        assert np.abs(a - b).mean() > 1e-3  # K children of one parent differ
    again = run_module("tf_usaug.augment", *args)  # resume: everything is done
    assert "64 images (0 new)" in again.stderr


def test_outputs_follow_the_working_size(gan_runs, tmp_path):
    per, _ = gan_runs
    out = tmp_path / "aug32"
    proc = run_module("tf_usaug.augment", "--content", DEMO, "--out", out, "--method", "gan",
                      "--model", per, "--size", "32", "--per-image", "1", "--no-progress",
                      "--threads", "2")
    assert "the GAN makes 16 px images, the job works at 32 px" in proc.stderr
    rows = rows_of(out)
    assert len(rows) == 32 and rows[0]["srad"] is True
    assert read_image(out / rows[0]["output"])[0].shape == (32, 32)


def test_models_that_cannot_label_the_contents_are_refused(gan_runs, tmp_path, capsys):
    per, plain = gan_runs
    out = tmp_path / "out"
    flat = tmp_path / "flat"
    from tf_usaug.files import write_png

    write_png(flat / "a.png", np.zeros((8, 8), np.float32))
    base = ("--out", str(out), "--method", "gan", "--size", str(SIZE), "--no-progress")
    cases = [
        (("--content", DEMO), "--method gan needs --model RUN"),
        (("--content", DEMO, "--model", tmp_path / "none"), "no such run folder"),
        (("--content", DEMO, "--model", DEMO), "not a GAN run"),
        (("--content", DEMO, "--model", plain), "generates images without a class"),
        (("--content", DEMO, "--model", per / "benign"), "cannot generate class 'malignant'"),
        (("--content", flat, "--model", per), "has no label"),
    ]
    for args, needle in cases:
        rc = augment.main([*base, *map(str, args)])
        assert needle in one_error_line(rc, capsys.readouterr().err), args
    assert not out.exists()  # refused before anything is written


@pytest.mark.hvd
def test_two_ranks_write_the_same_outputs(gan_runs, tmp_path, horovodrun):
    per, _ = gan_runs
    outs = {}
    for ranks in (1, 2):
        out = outs[ranks] = tmp_path / f"r{ranks}"
        cmd = [sys.executable, "-m", "tf_usaug.augment", "--content", str(DEMO), "--out",
               str(out), "--method", "gan", "--model", str(per), "--size", str(SIZE),
               "--per-image", "2", "--no-srad", "--no-progress", "--threads", "1"]
        if ranks > 1:
            cmd = [horovodrun, "-np", "2", "--gloo", "-H", "localhost:2", *cmd]
        env = dict(os.environ, HOROVOD_GLOO_TIMEOUT_SECONDS="120", PYTHONPATH=str(REPO))
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=400)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    one, two = rows_of(outs[1]), rows_of(outs[2])
    assert {r["rank"] for r in two} == {0, 1}
    for a, b in zip(one, two):
        assert a["output"] == b["output"] and a["seed"] == b["seed"]
        assert (outs[1] / a["output"]).read_bytes() == (outs[2] / b["output"]).read_bytes()
