"""What the GAN trainers share (tf_usaug.models.gan): the data loader (BUSI layout, masks
skipped, [-1, 1], labels, class filter), sample grids, the whole-state checkpoint (weights,
optimiser moments, TF and numpy random state; atomic, older ones dropped), and the registry
behind ``load_gan_run`` / ``generate`` (seeds per image, labels for per-class and conditional
runs, clear errors for folders that are not finished GAN runs).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tf_usaug.data.datasets import discover, load_sample
from tf_usaug.data.fit import fit_to_square
from tf_usaug.distributed.context import item_seed
from tf_usaug.errors import DatasetError, InputError, OutputError, UsageError
from tf_usaug.files import write_json, write_png
from tf_usaug.models.gan import checkpoint as ckpt
from tf_usaug.models.gan import grids, registry
from tf_usaug.models.gan.data import batch_indices, check_size, load_gan_data, to_unit
from tf_usaug.models.gan.per_class import class_folder
from tf_usaug.models.gan.run_files import GanInfo


def make_busi(root: Path, per_class=(3, 2), shape=(20, 24), seed=0) -> Path:
    """A tiny BUSI folder: ROOT/<class>/<name>.png with <name>_mask.png beside each."""
    rng = np.random.default_rng(seed)
    for label, count in zip(("benign", "malignant"), per_class):
        for i in range(count):
            image = rng.random(shape).astype(np.float32)
            write_png(root / label / f"{label} ({i}).png", image)
            write_png(root / label / f"{label} ({i})_mask.png", image > 0.5)
    return root


# ----------------------------------------------------------------------------- data


def test_data_reads_busi_images_not_masks_into_minus_one_one(tmp_path):
    root = make_busi(tmp_path / "busi")
    data = load_gan_data(root, 16)
    assert len(data) == 5 and data.images.shape == (5, 16, 16)  # 5 images, 5 masks skipped
    assert data.classes == ("benign", "malignant")
    assert data.labels.tolist() == [0, 0, 0, 1, 1] and data.counts() == {"benign": 3,
                                                                          "malignant": 2}
    for sample, image in zip(data.samples, data.images):
        assert "_mask" not in sample.image.name
        expected, _ = fit_to_square(load_sample(sample)[0], 16, "stretch")
        np.testing.assert_allclose(image, expected * 2 - 1, atol=1e-6)
    assert data.images.min() >= -1 and data.images.max() <= 1
    np.testing.assert_allclose(to_unit(data.images), (data.images + 1) / 2, atol=1e-6)
    crop = load_gan_data(root, 16, fit="crop")  # another fit, other pixels, other hash
    assert crop.fingerprint() != data.fingerprint()
    assert load_gan_data(root, 16).fingerprint() == data.fingerprint()


def test_data_class_filter_and_conditional_rules(tmp_path):
    root = make_busi(tmp_path / "busi")
    only = load_gan_data(root, 8, classes=["malignant"], all_classes=("benign", "malignant"))
    assert len(only) == 2 and only.labels.tolist() == [1, 1]
    assert all(s.label == "malignant" for s in only.samples)
    with pytest.raises(DatasetError, match="no images of class 'normal'"):
        load_gan_data(root, 8, classes=["normal"])
    flat = tmp_path / "flat"
    write_png(flat / "a.png", np.zeros((8, 8), np.float32))
    write_png(flat / "b.png", np.ones((8, 8), np.float32))
    assert load_gan_data(flat, 8).labels.tolist() == [-1, -1]
    with pytest.raises(DatasetError, match="--conditional needs labelled images"):
        load_gan_data(flat, 8, conditional=True)
    with pytest.raises(DatasetError, match="at least two classes"):
        load_gan_data(root, 8, classes=["benign"], conditional=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        load_gan_data(tmp_path / "empty", 8)


def test_sizes_must_be_powers_of_two():
    for good in (8, 16, 256, 1024):
        assert check_size(good) == good
    for bad in (4, 12, 48, 2048, True, 16.0):
        with pytest.raises(UsageError, match="power of two"):
            check_size(bad)


def test_batches_come_from_the_generator_state():
    rng = np.random.default_rng(5)
    first = batch_indices(rng, 10, 6)
    state = rng.bit_generator.state
    second = batch_indices(rng, 10, 6)
    again = np.random.default_rng(0)
    again.bit_generator.state = state
    np.testing.assert_array_equal(batch_indices(again, 10, 6), second)
    assert first.min() >= 0 and first.max() < 10 and len(first) == 6


# ----------------------------------------------------------------------------- grids


def test_grid_tiles_images_row_major_with_gaps():
    tiles = np.stack([np.full((3, 2), v, np.float32) for v in (0.1, 0.2, 0.3, 0.4, 0.9)])
    grid = grids.image_grid(tiles, columns=2)
    assert grid.shape == (3 * 3 + 2, 2 * 2 + 1)
    for i, v in enumerate((0.1, 0.2, 0.3, 0.4, 0.9)):
        r, c = divmod(i, 2)
        np.testing.assert_allclose(grid[r * 4:r * 4 + 3, c * 3:c * 3 + 2], v)
    assert grid[3, 0] == 0.5 and grid[0, 2] == 0.5          # the gaps
    np.testing.assert_allclose(grid[8:11, 3:5], 0.5)         # the empty sixth tile
    with pytest.raises(ValueError):
        grids.image_grid(np.zeros((0, 3, 3)))


def test_grid_latents_and_labels_are_fixed_per_seed(tmp_path):
    a, b = grids.fixed_latents(3, 8, 5), grids.fixed_latents(3, 8, 5)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, grids.fixed_latents(4, 8, 5))
    assert grids.grid_labels(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert grids.grid_labels(7, 0) is None
    rows = grids.seed_latents([11, 12], 4)
    np.testing.assert_array_equal(rows[1], grids.seed_latents([12], 4)[0])  # row from its seed
    path = grids.save_grid(tmp_path, 40, np.random.default_rng(0).random((4, 6, 6)))
    assert path == tmp_path / "grids" / "step-00000040.png" and path.is_file()


# ----------------------------------------------------------------------------- checkpoint


def test_training_state_round_trips_with_the_numpy_generator():
    state = ckpt.TrainingState(step=7, kimg=0.224, extras={"ada_p": 0.35})
    rng = state.make_rng(1)
    rng.random(5)
    state.capture_rng(rng)
    state.accumulate({"loss": 1.0})
    state.accumulate({"loss": 3.0})
    row = state.close_row(1.5)
    assert row["loss"] == 2.0 and row["steps"] == 2 and row["kimg"] == 0.224
    back = ckpt.TrainingState.from_json(json.loads(json.dumps(state.to_json())))
    assert back == state and back.extras["ada_p"] == 0.35
    np.testing.assert_array_equal(back.make_rng(99).random(4), rng.random(4))


def _tiny(tf, seed):
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2),
                                 tf.keras.layers.BatchNormalization()])
    model.layers[0].kernel.assign(np.random.default_rng(seed).random((3, 2)))
    return model


def test_checkpoint_restores_weights_moments_and_random_state(tmp_path):
    import tensorflow as tf

    def setup(seed):
        nets = {"g": _tiny(tf, seed), "d": _tiny(tf, seed + 1)}
        opts = {k: tf.keras.optimizers.Adam(0.1) for k in nets}
        for k in nets:
            opts[k].build(nets[k].trainable_variables)
        return nets, opts, tf.random.Generator.from_seed(seed)

    nets, opts, gen = setup(0)
    x = tf.constant(np.random.default_rng(0).random((4, 3)), tf.float32)
    for _ in range(3):  # moments and BN statistics move; the generator advances
        for k, net in nets.items():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(net(x, training=True) ** 2)
            grads = tape.gradient(loss, net.trainable_variables)
            opts[k].apply_gradients(zip(grads, net.trainable_variables))
        gen.normal([2])
    state = ckpt.TrainingState(step=3, kimg=0.012, extras={"ada_p": 0.1})
    rng = np.random.default_rng(4)
    rng.random(3)
    saver = ckpt.GanCheckpoint(tmp_path, nets, opts, gen)
    saver.save(state, rng)
    expected_draw, expected_np = gen.normal([3]).numpy(), rng.random(2)

    nets2, opts2, gen2 = setup(7)  # other weights, fresh moments, another seed
    stored = ckpt.read_state(tmp_path)
    assert stored.step == 3 and stored.latest == "step-00000003"
    ckpt.GanCheckpoint(tmp_path, nets2, opts2, gen2).restore(stored)
    for k in nets:
        for a, b in zip(nets[k].variables, nets2[k].variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())  # weights + moving stats
        assert int(opts2[k].iterations) == 3
        for a, b in zip(opts[k].variables, opts2[k].variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())  # Adam moments
    np.testing.assert_array_equal(gen2.normal([3]).numpy(), expected_draw)
    np.testing.assert_array_equal(stored.make_rng(0).random(2), expected_np)

    state.step = 6
    saver.save(state, rng)  # the newest replaces the older one
    names = sorted(p.name.split(".")[0] for p in (tmp_path / "checkpoints").glob("step-*"))
    assert set(names) == {"step-00000006"}
    wrong = {"g": tf.keras.Sequential([tf.keras.Input((5,)), tf.keras.layers.Dense(2)])}
    with pytest.raises(OutputError, match="does not fit"):
        ckpt.GanCheckpoint(tmp_path, wrong, {}, None).restore(ckpt.read_state(tmp_path))
    (tmp_path / "checkpoints" / "state.json").write_text("{not json")
    with pytest.raises(OutputError, match="unreadable training state"):
        ckpt.read_state(tmp_path)


# ----------------------------------------------------------------------------- registry


def _fake_loader(run_dir, info):
    """A generator whose image i is a constant: its seed's fraction (+ its label)."""
    def sample(seeds, labels=None):
        values = np.array([(s % 1000) / 2000 for s in seeds], np.float32)
        if labels is not None:
            values = values + 0.5 * np.asarray(labels, np.float32)
        return np.repeat(np.repeat(values[:, None, None], info["size"], 1), info["size"], 2)
    return sample


def _write_run(path: Path, **fields) -> Path:
    info = GanInfo(model="fake", size=4, z_dim=2, **fields)
    write_json(path / "gan.json", info.to_json())
    (path / "generator.keras").write_bytes(b"not read by the fake loader")
    return path


def test_generate_draws_each_image_from_its_own_seed(tmp_path):
    registry.register_generator_loader("fake", _fake_loader)
    run = registry.load_gan_run(_write_run(tmp_path / "run"))
    assert run.covers() is None and run.size == 4
    images = registry.generate(run, 5, seed=9, batch_size=2)
    want = [(item_seed(9, f"gan/{i}") % 1000) / 2000 for i in range(5)]
    np.testing.assert_allclose(images[:, 0, 0], want, rtol=1e-6)
    np.testing.assert_allclose(registry.generate(run, 2, seed=[5, 6])[:, 0, 0], [0.0025, 0.003])
    with pytest.raises(ValueError, match="takes no label"):
        registry.generate(run, 1, 0, label="benign")
    with pytest.raises(ValueError, match="2 seeds for 3 images"):
        registry.generate(run, 3, seed=[1, 2])


def test_conditional_and_per_class_runs_take_labels(tmp_path):
    registry.register_generator_loader("fake", _fake_loader)
    cond = registry.load_gan_run(_write_run(tmp_path / "cond", conditional=True,
                                            classes=["a", "b"]))
    assert cond.covers() == ["a", "b"]
    got = registry.generate(cond, 3, seed=[0, 0, 0], label=["b", 0, "b"])[:, 0, 0]
    np.testing.assert_allclose(got, [0.5, 0.0, 0.5])
    np.testing.assert_allclose(registry.generate(cond, 3, [0, 0, 0])[:, 0, 0], [0, 0.5, 0])
    per = tmp_path / "per"
    for name in ("a", "b"):
        _write_run(per / name, class_filter=[name], classes=[name])
    write_json(per / "gan.json", GanInfo(model="fake", size=4, per_class=True,
                                         classes=["a", "b"], runs={"a": "a", "b": "b"}).to_json())
    run = registry.load_gan_run(per)
    assert run.covers() == ["a", "b"] and set(run.samplers) == {"a", "b"}
    np.testing.assert_allclose(registry.generate(run, 2, [3, 4], label=["b", "a"])[:, 0, 0],
                               [0.0015, 0.002])
    with pytest.raises(ValueError, match="one model per class: give a label"):
        registry.generate(run, 1, 0)
    with pytest.raises(ValueError, match="unknown class 'c'"):
        registry.generate(run, 1, 0, label="c")
    single = registry.load_gan_run(per / "a")  # a class's sub-run covers its class
    assert single.covers() == ["a"]
    np.testing.assert_allclose(registry.generate(single, 1, [2], label="a")[0, 0, 0], 0.001)


def test_folders_that_are_not_finished_gan_runs_are_named(tmp_path):
    with pytest.raises(InputError, match="no such run folder"):
        registry.check_gan_run(tmp_path / "nowhere")
    (tmp_path / "clf").mkdir()
    (tmp_path / "clf" / "preprocessing.json").write_text("{}")
    with pytest.raises(InputError, match="a classifier run"):
        registry.check_gan_run(tmp_path / "clf")
    started = tmp_path / "started"
    write_json(started / "checkpoints" / "state.json", ckpt.TrainingState(step=2).to_json())
    with pytest.raises(InputError, match="has not finished"):
        registry.check_gan_run(started)
    (tmp_path / "other").mkdir()
    with pytest.raises(InputError, match="not a GAN run"):
        registry.check_gan_run(tmp_path / "other")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "gan.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="not a GAN run's info file"):
        registry.check_gan_run(bad)
    nomodel = _write_run(tmp_path / "nomodel")
    (nomodel / "generator.keras").unlink()
    with pytest.raises(InputError, match="missing"):
        registry.check_gan_run(nomodel)
    unknown = tmp_path / "unknown"
    write_json(unknown / "gan.json", GanInfo(model="nosuchgan", size=4).to_json())
    (unknown / "generator.keras").write_bytes(b"")
    with pytest.raises(InputError, match="unknown GAN model type 'nosuchgan'"):
        registry.load_gan_run(unknown)


def test_class_folders_are_one_level_and_safe():
    assert class_folder("benign") == "benign"
    assert class_folder("a/b c") == "a_b_c"
    assert class_folder("..") == "class"
