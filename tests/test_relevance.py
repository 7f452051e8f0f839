"""LRP relevance: BatchNorm folding, cache keys, weights, heatmaps, the cached CLI stage.

The test process stays eager and never imports iNNvestigate: every analysis runs in the
``python -m tf_usaug.relevance`` child process, as in production. Classifiers are tiny Keras
CNNs saved to ``.h5`` files (ResNet50 analyzer builds are ``slow``).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO, run_module
from tf_usaug.xai import relevance as rel
from tf_usaug.xai import lrp
from tf_usaug.xai import relevance as rel
from tf_usaug.xai.relevance import (RelevanceConfig, RelevanceError, cache_key, cache_path,
                                    ensure_relevance,
                                    load_relevance,
                                    relevance_to_weight,
                                    save_heatmap)
from tf_usaug.nn.batchnorm import fold_batchnorm, fold_batchnorm_weights
from tf_usaug.xai.lrp import preprocess_batch, to_input_grid

keras = pytest.importorskip("tensorflow").keras
pytestmark = pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")

SIZE = 32


# --------------------------------------------------------------------------- helpers


def randomise_batchnorm(model, rng):
    """Give every BN non-trivial statistics, so folding them is not an identity."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n),
                               rng.normal(0, 0.3, n), rng.uniform(0.5, 2.0, n)])
    return model


def small_resnet(rng, size=SIZE, channels=3, classes=3):
    """Conv+BN+ReLU, a residual block (Conv+BN, Add), GAP and a Dense head."""
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))
    kl = keras.layers
    x_in = keras.Input((size, size, channels))
    x = kl.ReLU()(kl.BatchNormalization()(kl.Conv2D(8, 3, padding="same")(x_in)))
    y = kl.ReLU()(kl.BatchNormalization()(kl.Conv2D(8, 3, padding="same", use_bias=False)(x)))
    y = kl.BatchNormalization(epsilon=1e-5)(kl.Conv2D(8, 3, padding="same")(y))
    x = kl.ReLU()(kl.Add()([x, y]))
    x = kl.GlobalAveragePooling2D()(x)
    out = kl.Dense(classes, activation="softmax")(kl.Dense(16, activation="relu")(x))
    return randomise_batchnorm(keras.Model(x_in, out), rng)


def count_bn(model) -> int:
    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def assert_same_outputs(a, b, x, rtol=1e-5):
    ya, yb = np.asarray(a(x)), np.asarray(b(x))
    scale = max(1.0, float(np.abs(ya).max()))
    assert np.abs(ya - yb).max() <= rtol * scale, np.abs(ya - yb).max()


def write_grey_png(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("relevance")


@pytest.fixture(scope="module")
def classifier_h5(workdir) -> Path:
    """The small residual CNN (softmax head) as a classifier file."""
    path = workdir / "small_cnn.h5"
    small_resnet(np.random.default_rng(7)).save(path)
    return path


@pytest.fixture(scope="module")
def images(workdir) -> list[Path]:
    """Two grey PNGs of different sizes (the maps must come back at each one's size)."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:48, 0:40] / 48.0
    return [write_grey_png(workdir / "a.png", 0.5 + 0.4 * np.sin(6 * xx) * np.cos(4 * yy)),
            write_grey_png(workdir / "b.png", rng.uniform(0, 1, (SIZE, SIZE)))]


def cli_config(model: Path, **kw) -> RelevanceConfig:
    return RelevanceConfig(model=str(model), weights="none", size=SIZE, preprocess="unit",
                           **kw)


# --------------------------------------------------------------------------- BN folding


def test_fold_batchnorm_weights_equal_batchnorm_of_dense_in_numpy(rng):
    x = rng.normal(size=(5, 6))
    kernel, bias = rng.normal(size=(6, 4)), rng.normal(size=4)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.normal(size=4)
    mean, var, eps = rng.normal(size=4), rng.uniform(0.1, 3, 4), 1e-3
    expected = (x @ kernel + bias - mean) / np.sqrt(var + eps) * gamma + beta
    k2, b2 = fold_batchnorm_weights(kernel, bias, gamma, beta, mean, var, eps)
    np.testing.assert_allclose(x @ k2 + b2, expected, rtol=1e-12, atol=1e-12)
    k3, b3 = fold_batchnorm_weights(kernel, None, gamma, beta, mean, var, eps)  # no conv bias
    np.testing.assert_allclose(x @ k3 + b3, expected - bias / np.sqrt(var + eps) * gamma,
                               rtol=1e-12, atol=1e-12)


def test_fold_batchnorm_small_residual_cnn_is_exact(rng):
    model = small_resnet(rng)
    folded = fold_batchnorm(model)
    assert count_bn(model) == 3 and count_bn(folded) == 0
    assert folded.folded_batchnorm_counts == {"folded": 3, "kept": 0}
    assert len(folded.layers) == len(model.layers) - 3
    assert_same_outputs(model, folded, rng.normal(size=(4, SIZE, SIZE, 3)).astype("float32"))
    # the folded model owns new variables: the original is untouched
    assert not {id(v) for v in folded.weights} & {id(v) for v in model.weights}


def test_fold_batchnorm_resnet50_is_exact(rng):
    model = randomise_batchnorm(keras.applications.ResNet50(
        weights=None, input_shape=(64, 64, 3), classifier_activation=None), rng)
    folded = fold_batchnorm(model)
    assert count_bn(model) == 53 and count_bn(folded) == 0
    assert sum(isinstance(layer, keras.layers.Add) for layer in folded.layers) == 16
    assert_same_outputs(model, folded, rng.normal(size=(2, 64, 64, 3)).astype("float32"))


def test_fold_batchnorm_keeps_what_cannot_be_folded(rng):
    kl = keras.layers
    x_in = keras.Input((12, 12, 2))
    a = kl.Conv2D(4, 3, activation="relu")(x_in)
    a = kl.BatchNormalization()(a)  # after a non-linearity: not foldable
    b = kl.Conv2D(4, 1)(a)
    c = kl.BatchNormalization()(b)  # b is also used by the Add: not foldable
    d = kl.Add()([b, c])
    e = kl.BatchNormalization()(kl.Conv2D(4, 1)(d))  # foldable
    model = randomise_batchnorm(keras.Model(x_in, kl.Flatten()(e)), rng)
    folded = fold_batchnorm(model)
    assert folded.folded_batchnorm_counts == {"folded": 1, "kept": 2}
    assert count_bn(folded) == 2
    assert_same_outputs(model, folded, rng.normal(size=(3, 12, 12, 2)).astype("float32"))


def test_fold_batchnorm_inlines_nested_model_and_keeps_shared_layers(rng):
    kl = keras.layers
    inner_in = keras.Input((10, 10, 1))
    inner = keras.Model(inner_in, kl.BatchNormalization()(kl.Conv2D(3, 3)(inner_in)),
                        name="backbone")
    randomise_batchnorm(inner, rng)
    shared = kl.Dense(2)
    x_in = keras.Input((10, 10, 1))
    f = kl.GlobalAveragePooling2D()(inner(x_in))
    model = keras.Model(x_in, kl.Add()([shared(f), shared(kl.ReLU()(f))]))
    folded = fold_batchnorm(model)
    assert not any(isinstance(layer, keras.Model) for layer in folded.layers)
    assert count_bn(folded) == 0
    assert sum(isinstance(layer, kl.Dense) for layer in folded.layers) == 1  # still shared
    assert_same_outputs(model, folded, rng.normal(size=(2, 10, 10, 1)).astype("float32"))


def test_fold_batchnorm_rejects_subclassed_models():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 3), np.float32))
    with pytest.raises(RelevanceError, match="subclassed"):
        fold_batchnorm(net)


def test_library_side_never_imports_innvestigate_nor_disables_eager():
    code = ("import sys, tensorflow as tf, tf_usaug.xai.relevance as r; "
            "r.relevance_to_weight(r.np.ones((4, 4)), (2, 2)); "
            "assert 'innvestigate' not in sys.modules and tf.executing_eagerly(); print('ok')")
    proc = run_module("tf_usaug.relevance", "--help")  # the CLI parses without TF work
    assert "--cache" in proc.stdout
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# --------------------------------------------------------------------------- configuration, keys


def test_config_rejects_bad_values():
    with pytest.raises(RelevanceError, match="unknown LRP rule"):
        RelevanceConfig(rule="gradient")
    with pytest.raises(RelevanceError, match="neuron_selection"):
        RelevanceConfig(neuron_selection="biggest")
    with pytest.raises(RelevanceError, match="preprocess"):
        RelevanceConfig(preprocess="zscore")
    with pytest.raises(RelevanceError, match="size"):
        RelevanceConfig(size=8)
    assert RelevanceConfig().rule == "lrp.alpha_2_beta_1" and RelevanceConfig().fold_bn


def test_cache_key_follows_bytes_model_rule_and_settings(tmp_path, classifier_h5, images):
    img = images[0]
    base = cli_config(classifier_h5)
    k = cache_key(img, base)
    assert len(k) == 64 and k == cache_key(img, cli_config(classifier_h5))
    copy = tmp_path / "renamed.png"
    copy.write_bytes(img.read_bytes())
    assert cache_key(copy, base) == k  # the bytes, not the name
    changed = tmp_path / "changed.png"
    changed.write_bytes(img.read_bytes() + b"\0")
    other_model = tmp_path / "other.h5"
    other_model.write_bytes(classifier_h5.read_bytes() + b"\0")
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"weights")
    keys = [cache_key(changed, base),
            cache_key(img, cli_config(classifier_h5, rule="lrp.epsilon")),
            cache_key(img, cli_config(other_model)),
            cache_key(img, RelevanceConfig(model=str(classifier_h5), weights=str(weights),
                                           size=SIZE, preprocess="unit")),
            cache_key(img, cli_config(classifier_h5, fold_bn=False)),
            cache_key(img, cli_config(classifier_h5, neuron_selection="1")),
            cache_key(img, RelevanceConfig(model=str(classifier_h5), weights="none",
                                           size=SIZE + 32, preprocess="unit")),
            cache_key(img, RelevanceConfig(weights="none")),
            cache_key(img, RelevanceConfig(weights="imagenet"))]
    assert len(set(keys + [k])) == len(keys) + 1
    assert cache_key(img, cli_config(classifier_h5, batch_size=3)) == k  # no effect on maps
    assert cache_path(img, base, tmp_path) == tmp_path / f"{k}.npy"


def test_cache_key_errors_name_the_missing_file(tmp_path, classifier_h5, images):
    from tf_usaug.data.image_io import ImageError

    with pytest.raises(ImageError, match="nope.png"):
        cache_key(tmp_path / "nope.png", cli_config(classifier_h5))
    with pytest.raises(RelevanceError, match="missing.h5"):
        cache_key(images[0], cli_config(tmp_path / "missing.h5"))
    with pytest.raises(RelevanceError, match="w.h5: weights file not found"):
        cache_key(images[0], RelevanceConfig(weights=str(tmp_path / "w.h5")))


def test_imagenet_weights_unavailable_gives_actionable_error(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(RelevanceError, match="--weights PATH .* or --weights none"):
        lrp.imagenet_weights_file()


# --------------------------------------------------------------------------- maths helpers


def test_preprocess_batch_matches_resnet50_caffe_convention(rng):
    grey = rng.uniform(0, 1, (2, 5, 6)).astype(np.float32)
    x = preprocess_batch(grey, "caffe", 3)
    bgr_mean = np.array([103.939, 116.779, 123.68])
    np.testing.assert_allclose(x, grey[..., None] * 255.0 - bgr_mean, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(preprocess_batch(grey, "tf", 3), np.repeat(
        grey[..., None] * 2 - 1, 3, axis=-1), atol=1e-5)
    np.testing.assert_array_equal(preprocess_batch(grey, "unit", 1), grey[..., None])
    with pytest.raises(RelevanceError, match="3-channel"):
        preprocess_batch(grey, "caffe", 1)


def test_to_input_grid_keeps_total_relevance(rng):
    r = rng.normal(size=(32, 32)).astype(np.float32) + 0.5
    assert to_input_grid(r, (32, 32)) is r or np.array_equal(to_input_grid(r, (32, 32)), r)
    smooth = np.outer(np.hanning(32), np.hanning(32)).astype(np.float32)
    for shape in [(48, 40), (20, 24)]:
        out = to_input_grid(smooth, shape)
        assert out.shape == shape
        assert abs(out.sum() - smooth.sum()) < 0.03 * smooth.sum()


def test_relevance_to_weight_formula_against_block_means(rng):
    r = rng.normal(size=(8, 12))
    w = relevance_to_weight(r, (2, 3), floor=0.2)
    pooled = np.maximum(r, 0).reshape(2, 4, 3, 4).mean(axis=(1, 3))  # area average
    np.testing.assert_allclose(w, 0.2 + 0.8 * pooled / pooled.mean(), rtol=1e-5)
    assert w.shape == (2, 3) and w.dtype == np.float32


def test_relevance_to_weight_properties(rng):
    r = np.zeros((40, 40))
    r[5:15, 5:15] = 3.0
    r[20:, :] = -2.0  # negative relevance counts like none
    w = relevance_to_weight(r, (10, 10), floor=0.25)
    assert w.shape == (10, 10) and (w >= 0).all()
    assert w.mean() == pytest.approx(1.0, abs=1e-6)
    assert w.min() == pytest.approx(0.25, abs=1e-6)  # the floor: nothing left unconstrained
    assert w[1:4, 1:4].min() > 1.0 and w[6:, :].max() == pytest.approx(0.25, abs=1e-6)
    np.testing.assert_array_equal(relevance_to_weight(-np.abs(r), (4, 5)), np.ones((4, 5)))
    up = relevance_to_weight(rng.normal(size=(6, 6)), (12, 12))  # upsampling too
    assert up.shape == (12, 12) and up.mean() == pytest.approx(1.0, abs=1e-5)
    for bad in [lambda: relevance_to_weight(r, (0, 3)),
                lambda: relevance_to_weight(r[0], (2, 2)),
                lambda: relevance_to_weight(r, (2, 2), floor=1.5)]:
        with pytest.raises(ValueError):
            bad()


def test_save_heatmap_writes_image_sized_png_with_signed_colours(tmp_path):
    image = np.full((30, 40), 0.5, np.float32)
    relevance = np.zeros((15, 20), np.float32)  # other grid: resized to the image
    relevance[:, :8] = 1.0
    relevance[:, 12:] = -1.0
    path = save_heatmap(image, relevance, tmp_path / "sub" / "heat.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["heat.png"]  # no temp left behind
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR).astype(int)
    assert bgr.shape == (30, 40, 3)
    left, middle, right = bgr[15, 3], bgr[15, 20], bgr[15, 36]
    assert left[2] > left[0] + 60  # positive: red
    assert right[0] > right[2] + 60  # negative: blue
    assert abs(middle[0] - middle[2]) < 10 and abs(middle[1] - 128) < 10  # zero: plain grey


def test_load_relevance_rejects_non_maps(tmp_path):
    np.save(tmp_path / "ok.npy", np.ones((3, 4), np.float64))
    assert load_relevance(tmp_path / "ok.npy").dtype == np.float32
    np.save(tmp_path / "bad.npy", np.ones((3, 4, 2)))
    with pytest.raises(ValueError, match="bad.npy"):
        load_relevance(tmp_path / "bad.npy")


# --------------------------------------------------------------------------- the CLI stage


def test_cli_writes_one_map_per_image_then_hits_the_cache(workdir, classifier_h5, images):
    cache = workdir / "cache-cli"
    args = ["--cache", cache, "--model", classifier_h5, "--weights", "none", "--rule",
            "lrp.epsilon", "--size", SIZE, "--preprocess", "unit", "--no-progress"]
    first = run_module("tf_usaug.relevance", *args, *images)
    assert "building the lrp.epsilon analyzer" in first.stderr
    cfg = cli_config(classifier_h5, rule="lrp.epsilon")
    maps = [cache_path(p, cfg, cache) for p in images]
    shapes = [load_relevance(m).shape for m in maps]
    assert shapes == [(48, 40), (SIZE, SIZE)]  # each image's own size
    assert all(np.isfinite(load_relevance(m)).all() and np.abs(load_relevance(m)).sum() > 0
               for m in maps)
    assert sorted(p.name for p in cache.iterdir()) == sorted(m.name for m in maps)
    mtimes = [m.stat().st_mtime_ns for m in maps]
    listing = workdir / "list.txt"
    listing.write_text("".join(f"{p}\n" for p in images))
    again = run_module("tf_usaug.relevance", *args, "--list", listing)
    assert "all 2 relevance maps cached" in again.stderr
    assert "analyzer" not in again.stderr
    assert [m.stat().st_mtime_ns for m in maps] == mtimes


def test_skipping_keras_constant_evaluation_gives_the_same_maps(workdir, classifier_h5, images):
    """The build speed-up (``skip_constant_evaluation``) must not change the maths."""
    common = ["--model", classifier_h5, "--weights", "none", "--size", SIZE, "--preprocess",
              "unit", "--no-progress", images[0]]
    run_module("tf_usaug.relevance", "--cache", workdir / "cache-fast", *common)
    run_module("tf_usaug.relevance", "--cache", workdir / "cache-keras", *common,
               "--keras-constant-evaluation")
    cfg = cli_config(classifier_h5)  # the default rule, alpha=2 beta=1
    fast = load_relevance(cache_path(images[0], cfg, workdir / "cache-fast"))
    keras_way = load_relevance(cache_path(images[0], cfg, workdir / "cache-keras"))
    assert np.abs(fast).sum() > 0
    np.testing.assert_allclose(fast, keras_way, rtol=1e-5, atol=1e-7)


def test_cli_corrupt_image_is_one_line_exit_2(workdir, classifier_h5, images):
    bad = workdir / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    proc = run_module("tf_usaug.relevance", "--cache", workdir / "cache-bad", "--model",
                      classifier_h5, "--weights", "none", "--size", SIZE, "--preprocess",
                      "unit", images[1], bad, check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "corrupt.png" in errors[0] and "Traceback" not in proc.stderr
    assert "analyzer" not in proc.stderr  # failed before the expensive build
    assert not (workdir / "cache-bad").exists() or not list((workdir / "cache-bad").iterdir())


def test_cli_missing_model_is_one_line_exit_2(workdir, images):
    proc = run_module("tf_usaug.relevance", "--cache", workdir / "cache-x", "--model",
                      workdir / "no_such_model.h5", images[0], check=False)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "no_such_model.h5" in errors[0]
    assert "Traceback" not in proc.stderr


def test_ensure_relevance_reports_child_failure(workdir, images):
    junk = workdir / "junk_model.h5"
    junk.write_bytes(b"this is not an HDF5 file")
    # the child reports bad input in one line; the parent raises it as a RelevanceError
    with pytest.raises(RelevanceError, match="junk_model.h5: cannot load the classifier") as err:
        ensure_relevance(images[:1], cli_config(junk), workdir / "cache-junk")
    assert "\n" not in str(err.value)


def conservation_model(rng, size=SIZE):
    """ReLU convnet without biases: LRP-epsilon conserves relevance exactly (eq. 13)."""
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))
    kl = keras.layers
    x_in = keras.Input((size, size, 1))
    x = kl.Conv2D(6, 3, padding="same", activation="relu", use_bias=False)(x_in)
    y = kl.Conv2D(6, 3, padding="same", activation="relu", use_bias=False)(x)
    x = kl.MaxPooling2D()(kl.Add()([x, y]))
    x = kl.GlobalAveragePooling2D()(x)
    return keras.Model(x_in, kl.Dense(3, use_bias=False)(x))


def test_epsilon_relevance_sums_to_the_explained_logit(workdir, rng):
    """Independent check of eq. 13: sum_p R_p = f(x), with f(x) computed here by Keras."""
    model = conservation_model(rng)
    path = workdir / "conserve.h5"
    model.save(path)
    img = rng.uniform(0.1, 1.0, (SIZE, SIZE))
    png = write_grey_png(workdir / "conserve.png", img)
    cfg = cli_config(path, rule="lrp.epsilon")
    maps = ensure_relevance([png], cfg, workdir / "cache-conserve")
    relevance = load_relevance(maps[png])
    x = (np.round(img * 255) / 255).astype(np.float32)[None, ..., None]  # what the PNG holds
    logit = float(np.max(model(x)))
    assert relevance.shape == (SIZE, SIZE)
    assert relevance.sum() == pytest.approx(logit, rel=1e-3)


@pytest.fixture(scope="module")
def linear_classifier(workdir):
    """f(x) = W^T flatten(x), two classes, no bias: LRP has closed forms on it."""
    keras.utils.set_random_seed(5)
    x_in = keras.Input((SIZE, SIZE, 1))
    model = keras.Model(x_in, keras.layers.Dense(2, use_bias=False)(keras.layers.Flatten()(x_in)))
    path = workdir / "linear.h5"
    model.save(path)
    png = write_grey_png(workdir / "linear.png",
                         np.random.default_rng(11).uniform(0.2, 1.0, (SIZE, SIZE)))
    x = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE).astype(np.float64) / 255.0
    return path, png, x, model.layers[-1].get_weights()[0].astype(np.float64)


def test_epsilon_on_a_linear_model_is_input_times_weight(workdir, linear_classifier, monkeypatch):
    """For f(x) = w_c . x (no bias), LRP-epsilon gives R = x * w_c (Bach et al. 2015)."""
    path, png, x, kernel = linear_classifier
    cfg = cli_config(path, rule="lrp.epsilon", neuron_selection="1")
    maps = ensure_relevance([png], cfg, workdir / "cache-linear")
    expected = x * kernel[:, 1].reshape(SIZE, SIZE)
    np.testing.assert_allclose(load_relevance(maps[png]), expected, rtol=1e-4, atol=1e-6)

    def no_child(*args, **kwargs):
        raise AssertionError("a cached map must not start the relevance process")

    monkeypatch.setattr(rel.subprocess, "Popen", no_child)
    assert ensure_relevance([png], cfg, workdir / "cache-linear") == maps


def test_alpha2_beta1_on_a_linear_model_matches_eq16_in_numpy(workdir, linear_classifier):
    """The default rule against eq. 16 of paper 002 written out in numpy (x >= 0, no bias):
    R_i = (alpha x_i w_i+ / sum_k x_k w_k+  -  beta x_i w_i- / sum_k x_k w_k-) f_c(x)."""
    path, png, x, kernel = linear_classifier
    maps = ensure_relevance([png], cli_config(path), workdir / "cache-alpha-beta")
    z = x.reshape(-1) @ kernel
    c = int(np.argmax(z))  # neuron_selection "max_activation"
    contrib = x.reshape(-1) * kernel[:, c]
    pos, neg = np.maximum(contrib, 0), np.minimum(contrib, 0)
    expected = (2.0 * pos / pos.sum() - 1.0 * neg / neg.sum()) * z[c]
    np.testing.assert_allclose(load_relevance(maps[png]), expected.reshape(SIZE, SIZE),
                               rtol=1e-4, atol=1e-6)
    assert load_relevance(maps[png]).sum() == pytest.approx(z[c], rel=1e-4)  # alpha - beta = 1


@pytest.mark.slow
def test_resnet50_alpha_beta_folded_cli(workdir, images):
    """The paper's set-up (ResNet50, alpha=2 beta=1, BN folded) at 64x64, random weights."""
    cfg = RelevanceConfig(weights="none", size=64)
    maps = ensure_relevance(images, cfg, workdir / "cache-resnet50")
    for img, npy in maps.items():
        r = load_relevance(npy)
        assert r.shape == cv2.imread(str(img), cv2.IMREAD_GRAYSCALE).shape
        assert np.isfinite(r).all() and np.abs(r).sum() > 0


def test_cli_rejects_a_classifier_with_preprocessing_inside(workdir, images):
    x_in = keras.Input((SIZE, SIZE, 3))
    scaled = keras.layers.Lambda(lambda t: t * 2.0 - 1.0)(x_in)
    logits = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(4, 3)(scaled)))
    path = workdir / "with_lambda.h5"
    keras.Model(x_in, logits).save(path)
    proc = run_module("tf_usaug.relevance", "--cache", workdir / "cache-lambda", "--model", path,
                      "--size", SIZE, images[1], check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "with_lambda.h5" in errors[0] and "Lambda" in errors[0]
    assert "Traceback" not in proc.stderr


def test_cli_binds_to_the_cpus_it_is_given_and_refuses_unknown_ones(workdir, images):
    """``--cpus``: the job's one relevance child per node runs on all of the node's ranks'
    CPUs (tf_usaug.pipeline.relevance_stage); checked before any model is built."""
    import os

    proc = run_module("tf_usaug.relevance", "--cache", workdir / "cache-cpus", "--model",
                      workdir / "no_such_model.h5", "--cpus", "0", "--verbose", images[0],
                      check=False)
    assert "bound to CPUs 0" in proc.stderr and proc.returncode == 2  # then the model's error
    count = os.cpu_count()
    proc = run_module("tf_usaug.relevance", "--cache", workdir / "cache-cpus", "--cpus",
                      f"0,{count}", images[0], check=False)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and errors == [
        f"error: --cpus 0,{count}: this machine has CPUs 0-{count - 1}"], proc.stderr


def test_the_child_stops_when_its_job_dies(workdir, images, tmp_path):
    """A job that dies (kill -9, a failed model build) leaves no relevance child behind."""
    import os
    import signal
    import time

    cache = tmp_path / "orphan-cache"
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-m', 'tf_usaug.relevance', '--cache', {str(cache)!r},"
        f" '--weights', 'none', '--size', '32', '--parent-pid', str(os.getpid()),"
        f" {str(images[0])!r}])\n"
        "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, str(script)], cwd=REPO)

    def children():
        found = []
        for proc in Path("/proc").iterdir():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if proc.name.isdigit() and b"tf_usaug.relevance" in cmd and str(cache).encode() in cmd:
                found.append(int(proc.name))
        return found

    deadline = time.time() + 60
    while not children() and time.time() < deadline:
        time.sleep(0.05)
    assert children(), "the child never started"
    os.kill(parent.pid, signal.SIGKILL)  # the child then needs > 5 s more to finish alone
    parent.wait()
    deadline = time.time() + 4
    while children() and time.time() < deadline:
        time.sleep(0.1)
    assert not children()
