"""Label-safe style (issue 9, part 3): style references from the content's own label
(``--style-pool``) and style layers with fewer positions than channels left out by the engine.

The planner tests need no model; the engine tests build ResNet50 with random weights once
(a few seconds) and prepare a 64 px problem without optimising; the one CLI run is tiny
(32 px, 2 iterations, no relevance).
"""
from __future__ import annotations

import json
import logging
from collections import Counter

import numpy as np
import pytest

from test_augment import augment, make_busi
from tf_usaug.augment import config_from_args
from tf_usaug.data.datasets import discover
from tf_usaug.errors import OutputError, UsageError
from tf_usaug.pipeline.config import AugmentConfig
from tf_usaug.pipeline.outputs import read_manifest
from tf_usaug.pipeline.plan import plan_items, style_pool
from tf_usaug.pipeline.settings import item_settings, run_settings
from tf_usaug.rundir import RunDir


@pytest.fixture
def tf_usaug_log(caplog):
    """Records of the ``tf_usaug`` logger (which does not propagate once log.setup ran)."""
    logger = logging.getLogger("tf_usaug")
    old = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # caplog's handler also sits on the root logger: no duplicates
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.level, logger.propagate = old


def plan(data, **kw):
    kw = {"method": "nst", "n_styles": 2, "per_image": 3, **kw}
    cfg = AugmentConfig(content=data, **kw)
    contents = discover(data)
    return plan_items(cfg, contents, style_pool(cfg, contents)), contents


def label_of(contents):
    return {s.image: s.label for s in contents}


# --------------------------------------------------------------------------- the planner


def test_same_label_is_the_default_and_draws_only_the_contents_label(tmp_path):
    data = make_busi(tmp_path / "data", per_class=4)
    assert AugmentConfig().style_pool == "same-label"
    items, contents = plan(data)
    labels = label_of(contents)
    assert len(items) == 8 * 3
    for it in items:
        assert len(it.styles) == 2 and len(set(it.styles)) == 2   # enough: no repeats
        assert it.sample.image not in it.styles
        assert {labels[p] for p in it.styles} == {it.sample.label}, it.name


def test_any_draws_other_labels_and_is_the_plan_of_before(tmp_path):
    data = make_busi(tmp_path / "data", per_class=4)
    items, contents = plan(data, style_pool="any")
    labels = label_of(contents)
    assert any(labels[p] != it.sample.label for it in items for p in it.styles)
    # "any" is exactly the draw the planner made before --style-pool existed
    from tf_usaug.distributed import item_seed

    pool = [s.image for s in contents]
    for it in items:
        candidates = [p for p in pool if p != it.sample.image]
        picks = np.random.default_rng(item_seed(0, it.name)).choice(len(candidates), 2,
                                                                    replace=False)
        assert it.styles == tuple(candidates[i] for i in picks)


def test_the_draw_is_deterministic_and_depends_only_on_the_seed_and_the_label(tmp_path):
    data = make_busi(tmp_path / "data", per_class=4)
    first, _ = plan(data, seed=3)
    again, _ = plan(data, seed=3)
    assert [it.styles for it in first] == [it.styles for it in again]
    other_seed, _ = plan(data, seed=4)
    assert [it.styles for it in first] != [it.styles for it in other_seed]
    # more images of another label change nothing in this label's references
    extra = make_busi(tmp_path / "more", per_class=6, seed=9)
    for i in range(6):
        for suffix in ("", "_mask"):
            (data / "malignant" / f"extra_{i}{suffix}.png").write_bytes(
                (extra / "malignant" / f"malignant_{i}{suffix}.png").read_bytes())
    grown, _ = plan(data, seed=3)
    benign = {it.name: it.styles for it in first if it.sample.label == "benign"}
    assert benign == {it.name: it.styles for it in grown if it.sample.label == "benign"}


def test_a_small_label_repeats_its_references_and_says_so(tmp_path, tf_usaug_log):
    data = make_busi(tmp_path / "data", per_class=2)
    for name in ("benign_1.png", "benign_1_mask.png"):   # benign: one image
        (data / "benign" / name).unlink()
    normal = make_busi(tmp_path / "more", per_class=4, seed=3) / "benign"
    normal.rename(data / "normal")                        # normal: four images
    items, contents = plan(data, n_styles=3, per_image=2)
    labels = label_of(contents)
    for it in items:
        assert len(it.styles) == 3                        # every item the same n: batches stack
        assert {labels[p] for p in it.styles} == {it.sample.label}
        if it.sample.label == "benign":                   # its only image is its own reference
            assert set(it.styles) == {it.sample.image}
        elif it.sample.label == "malignant":              # the one other image, repeated
            assert it.sample.image not in it.styles and len(set(it.styles)) == 1
        else:                                             # enough images: no repeats
            assert it.sample.image not in it.styles and len(set(it.styles)) == 3
    warnings = [r.getMessage() for r in tf_usaug_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'benign' (0 other images)" in warnings[0]
    assert "'malignant' (1 other image)" in warnings[0] and "--style-pool any" in warnings[0]
    assert "normal" not in warnings[0]


def test_repeats_cycle_through_every_other_image(tmp_path):
    data = make_busi(tmp_path / "data", per_class=3)
    items, _ = plan(data, n_styles=5, per_image=1)
    for it in items:
        counts = Counter(it.styles)
        assert len(counts) == 2 and sorted(counts.values()) == [2, 3]


def test_unlabelled_content_draws_from_all_and_says_so_once(tmp_path, tf_usaug_log):
    busi = make_busi(tmp_path / "busi", per_class=2)
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in busi.rglob("*.png"):
        (flat / p.name).write_bytes(p.read_bytes())
    same, contents = plan(flat)
    assert all(s.label is None for s in contents)
    any_, _ = plan(flat, style_pool="any")
    assert [it.styles for it in same] == [it.styles for it in any_]
    infos = [r.getMessage() for r in tf_usaug_log.records if "no labels" in r.getMessage()]
    assert len(infos) == 1 and "as --style-pool any" in infos[0]


def test_a_styles_folder_is_unaffected_by_the_pool(tmp_path):
    data = make_busi(tmp_path / "data", per_class=2)
    other = make_busi(tmp_path / "scanner", per_class=2, seed=5)
    same, _ = plan(data, styles=other)
    any_, _ = plan(data, styles=other, style_pool="any")
    assert [it.styles for it in same] == [it.styles for it in any_]
    assert all(str(p).startswith(str(other)) for it in same for p in it.styles)
    assert run_settings(AugmentConfig(content=data, styles=other, method="nst"))[
        "style_pool"] is None


def test_an_unknown_pool_and_a_label_missing_from_the_pool_are_one_clear_error(tmp_path):
    data = make_busi(tmp_path / "data", per_class=2)
    contents = discover(data)
    with pytest.raises(UsageError, match="--style-pool"):
        style_pool(AugmentConfig(content=data, method="nst", style_pool="nearest"), contents)
    benign_only = [s.image for s in contents if s.label == "benign"]
    with pytest.raises(UsageError, match="label 'malignant'"):
        plan_items(AugmentConfig(content=data, method="nst"), contents, benign_only)


def test_the_cli_flag(tmp_path):
    assert config_from_args([]).style_pool == "same-label"
    assert config_from_args(["--style-pool", "any"]).style_pool == "any"
    with pytest.raises(UsageError, match="--style-pool"):
        config_from_args(["--style-pool", "nearest"])


# --------------------------------------------------------------------------- reruns


def test_the_pool_and_the_layer_rule_are_part_of_the_run_settings(tmp_path):
    data = make_busi(tmp_path / "data", per_class=1)
    same = AugmentConfig(content=data, method="nst", relevance=False, weights="none")
    other = AugmentConfig(content=data, method="nst", relevance=False, weights="none",
                          style_pool="any")
    assert run_settings(same)["style_pool"] == "same-label"
    assert item_settings(same)["style_min_positions_per_channel"] == 1.0
    assert "style_pool" not in run_settings(AugmentConfig(content=data, method="traditional"))
    out = RunDir(tmp_path / "out")
    out.root.mkdir()
    out.check_settings("augment", run_settings(same))
    with pytest.raises(OutputError, match="style_pool same-label -> any"):
        out.check_settings("augment", run_settings(other))
    assert out.check_settings("augment", run_settings(other), overwrite=True)


def test_tiny_nst_run_uses_same_label_references_and_refuses_another_pool(tmp_path):
    data = make_busi(tmp_path / "data", per_class=3, size=32)
    out = tmp_path / "out"
    args = ["--content", data, "--out", out, "--method", "nst", "--no-relevance",
            "--weights", "none", "--size", "32", "--iterations", "2", "--per-image", "1",
            "--batch-size", "6", "--n-styles", "2", "--no-report"]
    proc = augment(*args)
    rows = read_manifest(out / "manifest.jsonl")
    labels = {str(s.image): s.label for s in discover(data)}
    assert len(rows) == 6
    for row in rows:
        assert {labels[p] for p in row["styles"]} == {row["label"]}
        assert row["content"] not in row["styles"]
        # at 32 px only conv1_relu has as many positions as channels
        assert row["losses"]["initial"]["style/conv4_block6_out"] == 0.0
        assert row["losses"]["initial"]["style/conv1_relu"] > 0.0
    assert "style layers left out" in proc.stderr and "conv2_block3_out" in proc.stderr
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["style_pool"] == "same-label"
    refused = augment(*args, "--style-pool", "any", check=False)
    assert refused.returncode == 2 and "style_pool same-label -> any" in refused.stderr


# --------------------------------------------------------------------------- the engine


@pytest.fixture(scope="module")
def resnet():
    from tf_usaug.nst.backbones import BackboneConfig, build_extractor

    return build_extractor(BackboneConfig(weights="none"))


def _prepared_layers(extractor, size, **style_kw):
    import tensorflow as tf

    from tf_usaug.nst.config import NSTConfig
    from tf_usaug.nst.losses import StyleLossConfig
    from tf_usaug.nst.stylizer import Stylizer

    stylizer = Stylizer(None, StyleLossConfig(**style_kw), NSTConfig(iterations=0),
                        extractor=extractor)
    rng = np.random.default_rng(0)
    contents = rng.random((1, size, size, 1), np.float32)
    styles = rng.random((1, 2, size, size), np.float32)
    problem = stylizer.prepare(tf.constant(contents), tf.constant(styles))
    return stylizer, problem


def test_the_default_engine_leaves_out_the_thin_layers_at_64_px(resnet, tf_usaug_log):
    stylizer, problem = _prepared_layers(resnet, 64)
    assert sorted(problem.style_targets) == ["conv1_relu", "conv2_block3_out"]
    assert sorted(problem.style_scales) == ["conv1_relu", "conv2_block3_out"]
    terms = stylizer.evaluate(np.full((1, 64, 64, 1), 0.5, np.float32), problem)
    assert terms["style/conv3_block4_out"][0] == terms["style/conv4_block6_out"][0] == 0.0
    assert terms["style"][0] == pytest.approx(
        terms["style/conv1_relu"][0] + terms["style/conv2_block3_out"][0])
    # stylize logs one line naming them (iterations=0: the full-size problem only)
    rng = np.random.default_rng(1)
    result = stylizer.stylize(rng.random((1, 64, 64), np.float32),
                              rng.random((1, 2, 64, 64), np.float32))
    assert result.initial["style/conv4_block6_out"][0] == 0.0
    np.testing.assert_allclose(result.initial["style/conv1_relu"], 1.0, rtol=1e-4)
    lines = [r.getMessage() for r in tf_usaug_log.records if "left out" in r.getMessage()]
    assert lines == ["style layers left out (fewer positions than 1 x channels, "
                     "StyleLossConfig.min_positions_per_channel): at 64x64 conv3_block4_out "
                     "(8x8 positions, 512 channels), conv4_block6_out (4x4 positions, 1024 "
                     "channels)"]
    stylizer.stylize(rng.random((1, 64, 64), np.float32), rng.random((1, 2, 64, 64), np.float32))
    assert len([r for r in tf_usaug_log.records if "left out" in r.getMessage()]) == 1


def test_switching_the_rule_off_keeps_every_layer(resnet):
    _, problem = _prepared_layers(resnet, 64, min_positions_per_channel=0.0)
    assert sorted(problem.style_targets) == sorted(resnet.style_layers)


def test_at_the_coarse_scale_only_the_shallowest_layer_is_left(resnet):
    _, problem = _prepared_layers(resnet, 32)     # mr2NST's half scale of a 64 px job
    assert list(problem.style_targets) == ["conv1_relu"]


def test_the_hand_computed_shapes_are_resnet50s(resnet):
    from test_losses import RESNET50_STYLE_SHAPES

    for size, shapes in RESNET50_STYLE_SHAPES.items():
        got = resnet.feature_shapes(size, size)
        assert {layer: got[layer] for layer in shapes} == shapes, size
