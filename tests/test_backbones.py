"""Feature extractors: layer shapes, truncation, preprocessing, BN folding, weight files, FLOPs.

Everything runs offline with random weights (``weights="none"``); the ImageNet path is tested
with Keras' download function replaced by one that fails like an offline machine does.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_usaug.nst.backbones import (RESNET50_CONTENT_LAYER, RESNET50_STYLE_LAYERS,
                                    VGG19_CONTENT_LAYER,
                                    VGG19_STYLE_LAYERS,
                                    BackboneConfig,
                                    BackboneError,
                                    build_extractor,
                                    fold_batchnorm,
                                    forward_conv_flops)

# Caffe-mode ImageNet means (BGR) that keras' resnet50 / vgg19 preprocess_input subtracts.
IMAGENET_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)


@pytest.fixture(scope="module")
def resnet():
    return build_extractor(BackboneConfig(weights="none"))


@pytest.fixture(scope="module")
def resnet_full():
    """The untruncated application the extractor is cut from."""
    return tf.keras.applications.ResNet50(include_top=False, weights=None,
                                          input_shape=(None, None, 3))


@pytest.fixture(scope="module")
def bn_model(resnet_full):
    """A copy of ``resnet_full`` whose batch normalisations have non-trivial statistics."""
    model = tf.keras.models.clone_model(resnet_full)
    model.set_weights(resnet_full.get_weights())
    _randomise_batchnorm(model)
    return model


def _randomise_batchnorm(model: tf.keras.Model, seed: int = 0) -> None:
    """Give every BN layer non-trivial statistics, so folding them is a real test."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                               rng.normal(0, 0.1, beta.shape).astype(np.float32),
                               rng.normal(0, 0.1, mean.shape).astype(np.float32),
                               rng.uniform(0.5, 2.0, var.shape).astype(np.float32)])


def _preprocessed(grey: np.ndarray) -> np.ndarray:
    """Independent numpy version of grey [B,H,W,1] in [0,1] -> Caffe BGR input."""
    rgb = np.repeat(grey, 3, axis=-1) * 255.0
    return (rgb[..., ::-1] - IMAGENET_BGR_MEAN).astype(np.float32)


def test_config_defaults_are_the_papers_layers():
    cfg = BackboneConfig()
    assert cfg.name == "resnet50" and cfg.weights == "imagenet"
    assert cfg.style_layers == ("conv1_relu", "conv2_block3_out", "conv3_block4_out",
                                "conv4_block6_out")
    assert cfg.content_layer == "conv4_block6_out"
    assert cfg.layers == cfg.style_layers  # content layer is also a style layer: no repeat
    vgg = BackboneConfig(name="VGG19")
    assert vgg.name == "vgg19"
    assert vgg.style_layers == ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1",
                                "block5_conv1")
    assert vgg.content_layer == "block4_conv2"
    assert vgg.layers[-1] == "block4_conv2"


def test_unknown_backbone_name():
    with pytest.raises(BackboneError, match="alexnet"):
        BackboneConfig(name="alexnet")


def test_resnet50_feature_shapes(resnet):
    images = tf.zeros([2, 64, 96, 1])
    features = resnet(images)
    assert list(features) == list(RESNET50_STYLE_LAYERS)
    # strides 2, 4, 8, 16 and the stage widths of He et al. 2016, Table 1
    expected = {"conv1_relu": (2, 32, 48, 64), "conv2_block3_out": (2, 16, 24, 256),
                "conv3_block4_out": (2, 8, 12, 512), "conv4_block6_out": (2, 4, 6, 1024)}
    for name, shape in expected.items():
        assert tuple(features[name].shape) == shape
        assert features[name].dtype == tf.float32
    assert resnet.feature_shapes(64, 96) == {k: v[1:] for k, v in expected.items()}
    assert resnet.content_layer == RESNET50_CONTENT_LAYER


def test_vgg19_feature_shapes_and_truncation():
    extractor = build_extractor(BackboneConfig(name="vgg19", weights="none"))
    features = extractor(tf.zeros([1, 64, 64, 1]))
    expected = {"block1_conv1": (64, 64, 64), "block2_conv1": (32, 32, 128),
                "block3_conv1": (16, 16, 256), "block4_conv1": (8, 8, 512),
                "block5_conv1": (4, 4, 512), "block4_conv2": (8, 8, 512)}
    assert set(features) == set(VGG19_STYLE_LAYERS) | {VGG19_CONTENT_LAYER}
    for name, shape in expected.items():
        assert tuple(features[name].shape[1:]) == shape
    names = [layer.name for layer in extractor.model.layers]
    assert "block5_conv1" in names
    assert not {"block5_conv2", "block5_conv3", "block5_conv4", "block5_pool"} & set(names)


def test_resnet50_truncated_after_deepest_layer(resnet, resnet_full):
    def names(model):
        return [layer.name for layer in model.layers
                if not isinstance(layer, tf.keras.layers.InputLayer)]

    full_names, kept = names(resnet_full), names(resnet.model)
    deepest = full_names.index("conv4_block6_out")
    assert sorted(kept) == sorted(full_names[:deepest + 1])
    assert not any(name.startswith("conv5_") for name in kept)
    assert not resnet.model.trainable and not resnet.model.trainable_weights


def test_truncation_follows_requested_layers():
    extractor = build_extractor(BackboneConfig(weights="none", style_layers=("conv1_relu",),
                                               content_layer="conv2_block1_out"))
    names = {layer.name for layer in extractor.model.layers}
    assert "conv2_block1_out" in names and "conv2_block2_out" not in names
    assert set(extractor(tf.zeros([1, 32, 32, 1]))) == {"conv1_relu", "conv2_block1_out"}


def test_random_weights_are_seeded(resnet, rng):
    grey = rng.uniform(0, 1, (1, 32, 32, 1)).astype(np.float32)
    again = build_extractor(BackboneConfig(weights="none"))
    other = build_extractor(BackboneConfig(weights="none", seed=1))
    want = resnet(grey)["conv3_block4_out"].numpy()
    np.testing.assert_array_equal(again(grey)["conv3_block4_out"].numpy(), want)
    assert np.abs(other(grey)["conv3_block4_out"].numpy() - want).max() > 1e-2 * np.abs(want).max()


def test_preprocessing_happens_inside(resnet, rng):
    grey = rng.uniform(0, 1, (2, 40, 40, 1)).astype(np.float32)
    features = resnet(grey)
    direct = resnet.model(_preprocessed(grey), training=False)
    for name in resnet.layers:
        np.testing.assert_allclose(features[name].numpy(), direct[name].numpy(),
                                   rtol=1e-5, atol=1e-4)


def test_fold_batchnorm_preserves_outputs(bn_model, rng):
    model = bn_model
    folded = fold_batchnorm(model)
    assert not any(isinstance(layer, tf.keras.layers.BatchNormalization)
                   for layer in folded.layers)
    x = rng.normal(0, 50, (2, 64, 64, 3)).astype(np.float32)
    for name in ("conv1_relu", "conv3_block4_out", "conv4_block6_out"):
        want = tf.keras.Model(model.input, model.get_layer(name).output)(x, training=False)
        got = tf.keras.Model(folded.input, folded.get_layer(name).output)(x, training=False)
        scale = float(np.abs(want).max())
        assert scale > 0
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-4 * scale)


def test_fold_batchnorm_small_model_against_numpy(rng):
    """Conv -> BN with known statistics equals the affine formula computed by hand."""
    inputs = tf.keras.Input((5, 5, 2))
    conv = tf.keras.layers.Conv2D(3, 1, use_bias=False, name="c")(inputs)
    outputs = tf.keras.layers.BatchNormalization(epsilon=1e-3, name="bn")(conv)
    model = tf.keras.Model(inputs, outputs)
    kernel = rng.normal(size=(1, 1, 2, 3)).astype(np.float32)
    gamma, beta = np.array([1.0, 2.0, 0.5], np.float32), np.array([0.1, -0.2, 0.3], np.float32)
    mean, var = np.array([0.5, -1.0, 2.0], np.float32), np.array([4.0, 1.0, 0.25], np.float32)
    model.get_layer("c").set_weights([kernel])
    model.get_layer("bn").set_weights([gamma, beta, mean, var])
    x = rng.normal(size=(1, 5, 5, 2)).astype(np.float32)
    expected = (x @ kernel[0, 0] - mean) / np.sqrt(var + 1e-3) * gamma + beta
    folded = fold_batchnorm(model)
    np.testing.assert_allclose(folded(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert folded.get_layer("c").use_bias


def test_weights_h5_round_trip(tmp_path, bn_model, resnet, rng):
    """Weights saved from a random model load back into an extractor with equal outputs."""
    model = bn_model
    path = tmp_path / "resnet50_notop.h5"
    model.save_weights(str(path))
    extractor = build_extractor(BackboneConfig(weights=str(path)))
    grey = rng.uniform(0, 1, (1, 48, 48, 1)).astype(np.float32)
    got = extractor(grey)["conv4_block6_out"].numpy()
    want = tf.keras.Model(model.input, model.get_layer("conv4_block6_out").output)(
        _preprocessed(grey), training=False).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())
    # a different random model really gives different features (the load did something)
    other = resnet(grey)["conv4_block6_out"].numpy()
    assert np.abs(other - want).max() > 1e-2 * np.abs(want).max()


def test_weights_by_name_and_missing_layers(tmp_path, resnet_full, rng):
    deeper = tf.keras.Model(resnet_full.input, resnet_full.get_layer("conv4_block6_out").output)
    path = tmp_path / "partial.h5"
    deeper.save_weights(str(path))  # other layer count: loads by name
    extractor = build_extractor(BackboneConfig(weights=str(path), fold_batchnorm=False))
    grey = rng.uniform(0, 1, (1, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(extractor(grey)["conv3_block4_out"].numpy(),
                               tf.keras.Model(resnet_full.input,
                                              resnet_full.get_layer("conv3_block4_out").output)(
                                   _preprocessed(grey), training=False).numpy(),
                               rtol=1e-4, atol=1e-4)
    shallow = tf.keras.Model(resnet_full.input, resnet_full.get_layer("conv2_block3_out").output)
    short_path = tmp_path / "shallow.h5"
    shallow.save_weights(str(short_path))
    with pytest.raises(BackboneError, match=r"shallow\.h5.*conv3_block1"):
        build_extractor(BackboneConfig(weights=str(short_path)))


def test_bad_weights_paths(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(BackboneError, match=f"^{missing}"):
        build_extractor(BackboneConfig(weights=str(missing)))
    text = tmp_path / "weights.txt"
    text.write_text("not weights")
    with pytest.raises(BackboneError, match="not a Keras weights file"):
        build_extractor(BackboneConfig(weights=str(text)))
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(BackboneError, match=f"^{garbage}"):
        build_extractor(BackboneConfig(weights=str(garbage)))


def test_unknown_layer_lists_valid_names():
    with pytest.raises(BackboneError) as info:
        build_extractor(BackboneConfig(weights="none", style_layers=("conv1_rel", "conv9_x")))
    message = str(info.value)
    assert "conv9_x" in message and "did you mean conv1_relu" in message
    assert "conv4_block6_out" in message and "conv5_block3_out" in message
    with pytest.raises(BackboneError, match="block4_conv2"):
        build_extractor(BackboneConfig(name="vgg19", weights="none", content_layer="conv4"))


def test_imagenet_offline_error(monkeypatch):
    from keras.src.utils import data_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data_utils, "get_file", offline)
    with pytest.raises(BackboneError, match="--weights PATH") as info:
        build_extractor(BackboneConfig(weights="imagenet"))
    assert "none" in str(info.value) and "URL fetch failure" in str(info.value)


def test_mixed_precision_build_returns_float32(rng):
    cfg = BackboneConfig(name="vgg19", weights="none", style_layers=("block1_conv1",),
                         content_layer="block2_conv1")
    exact = build_extractor(cfg)
    half = build_extractor(cfg, mixed_precision=True)
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # restored
    half.model.set_weights(exact.model.get_weights())
    grey = rng.uniform(0, 1, (1, 32, 32, 1)).astype(np.float32)
    a, b = exact(grey)["block2_conv1"], half(grey)["block2_conv1"]
    assert b.dtype == tf.float32
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=2e-2 * np.abs(a).max())


def test_forward_conv_flops_vgg_by_hand():
    extractor = build_extractor(BackboneConfig(name="vgg19", weights="none",
                                               style_layers=("block1_conv1",),
                                               content_layer="block1_conv2"))
    h, w = 32, 48
    assert forward_conv_flops(extractor, h, w) == 2 * h * w * 9 * (3 * 64 + 64 * 64)


def test_forward_conv_flops_resnet_matches_layer_shapes(resnet):
    """The graph count equals 2*h*w*kh*kw*cin*cout summed over the Keras Conv2D layers, with
    output sizes read from a forward pass (an independent route to the same number)."""
    size = 128
    convs = [layer for layer in resnet.model.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    probe = tf.keras.Model(resnet.model.input, [layer.output for layer in convs])
    outputs = probe(tf.zeros([1, size, size, 3]))
    expected = sum(2 * int(np.prod(out.shape[1:3])) * int(np.prod(layer.kernel.shape))
                   for layer, out in zip(convs, outputs))
    assert forward_conv_flops(resnet, size, size) == expected
    # about 4.1 GFLOP per 128x128 image-iteration with the input gradient (task brief)
    assert 3.9e9 < 2 * expected < 4.3e9
