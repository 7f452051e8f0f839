"""Generative metrics (tf_usaug.metrics.generative, tf_usaug.metrics.features,
tf_usaug.evaluation.gan, ``python -m tf_usaug.evaluate gan``).

Each metric against an independent computation: FID against the closed form of two Gaussians
(diagonal: per-coordinate sums; full: scipy's sqrtm), KID's unbiasedness over many draws and
its analytic value for 1-D Gaussians (moments of the cubic kernel), the Gaussian MMD and 1-NN
against explicit loops, 1-NN = 0.5 / 1 / 0 for one distribution / separated sets / copies,
MS-SSIM against a float64 sliding-window reference and TensorFlow's ssim_multiscale, SSIM and
JS against the image metrics they reuse; the CLI end to end on 32 px folders with pixel
features and a tiny saved Keras model, a classifier run's features, and bad input.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from conftest import DEMO, run_module
from tf_usaug.data.image_io import read_image, resize
from tf_usaug.errors import BackboneError
from tf_usaug.evaluation.gan import GanMetricsConfig, evaluate_gan, score_images
from tf_usaug.files import write_png
from tf_usaug.metrics import generative as gm
from tf_usaug.metrics.image import histogram_js_distance, ssim

# ----------------------------------------------------------------------------- FID


def test_fid_of_identical_sets_is_zero(rng):
    x = rng.normal(size=(40, 6))
    assert gm.fid(x, x) == pytest.approx(0.0, abs=1e-10)
    wide = rng.normal(size=(10, 50))  # fewer samples than dimensions: singular covariances
    assert gm.fid(wide, wide) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_closed_form_diagonal(rng):
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    v1, v2 = rng.uniform(0.2, 3.0, 5), rng.uniform(0.2, 3.0, 5)
    # diagonal covariances: (S1 S2)^(1/2) = diag(sqrt(v1 v2)), coordinate by coordinate
    expected = sum((a - b) ** 2 + p + q - 2 * math.sqrt(p * q)
                   for a, b, p, q in zip(mu1, mu2, v1, v2))
    got = gm.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_matches_scipy_sqrtm(rng):
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    root = scipy.linalg.sqrtm(s1 @ s2)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root.real))
    assert gm.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_fid_of_samples_approaches_the_gaussians_distance(rng):
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 1.0, 0.0])
    v1, v2 = np.array([1.0, 2.0, 0.5]), np.array([0.5, 2.0, 2.0])
    x = mu1 + np.sqrt(v1) * rng.normal(size=(40000, 3))
    y = mu2 + np.sqrt(v2) * rng.normal(size=(40000, 3))
    expected = gm.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert gm.fid(x, y) == pytest.approx(expected, abs=0.03)


def test_fid_of_a_shift_is_the_squared_shift_even_when_singular(rng):
    x = rng.normal(size=(8, 30))  # 8 samples in 30-d: rank-7 covariances
    shift = rng.normal(size=30)
    assert gm.fid(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-9)


def test_fid_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        gm.fid(np.zeros((1, 3)), np.ones((4, 3)))


# ----------------------------------------------------------------------------- KID


def test_mmd2_unbiased_matches_loops(rng):
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)) + 0.3
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / 42
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(5)) / 35
    got = gm.mmd2_unbiased(gm.polynomial_kernel(x, x), gm.polynomial_kernel(y, y),
                           gm.polynomial_kernel(x, y))
    assert got == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_is_unbiased_for_one_distribution(rng):
    """Mean over many small draws is 0 within 3 standard errors; the biased V-statistic of the
    same draws (self-pairs included) is clearly positive, so the test can tell them apart."""
    kids, biased = [], []
    for _ in range(400):
        x, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
        kids.append(gm.kid(x, y, subsets=1, subset_size=10)["mean"])
        kxx, kyy, kxy = (gm.polynomial_kernel(a, b) for a, b in ((x, x), (y, y), (x, y)))
        biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    se = np.std(kids, ddof=1) / math.sqrt(len(kids))
    assert abs(np.mean(kids)) < 3 * se
    assert np.mean(biased) > 10 * se


def _cubic_kernel_mean(m: float, n: float) -> float:
    """E (x y + 1)^3 for independent x ~ N(m, 1), y ~ N(n, 1) (d = 1): moments of a normal."""
    e1 = lambda u: u  # noqa: E731
    e2 = lambda u: u * u + 1  # noqa: E731
    e3 = lambda u: u ** 3 + 3 * u  # noqa: E731
    return e3(m) * e3(n) + 3 * e2(m) * e2(n) + 3 * e1(m) * e1(n) + 1


def test_kid_matches_the_analytic_mmd_of_shifted_gaussians(rng):
    analytic = _cubic_kernel_mean(0, 0) + _cubic_kernel_mean(1, 1) - 2 * _cubic_kernel_mean(0, 1)
    values = [gm.kid(rng.normal(size=(50, 1)), 1 + rng.normal(size=(50, 1)), subsets=1,
                     subset_size=50)["mean"] for _ in range(300)]
    se = np.std(values, ddof=1) / math.sqrt(len(values))
    assert analytic > 0
    assert abs(np.mean(values) - analytic) < 3.5 * se


def test_kid_subsets(rng):
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(40, 4))
    out = gm.kid(x, y, subsets=5, subset_size=10, seed=1)
    assert (out["subsets"], out["subset_size"], len(out["values"])) == (5, 10, 5)
    assert out["mean"] == pytest.approx(np.mean(out["values"]))
    assert out["sd"] > 0
    assert gm.kid(x, y, subsets=5, subset_size=10, seed=1) == out  # seeded
    whole = gm.kid(x[:20], y[:20], subsets=7, subset_size=1000)  # subsets = both sets: once
    assert (whole["subsets"], whole["subset_size"], whole["sd"]) == (1, 20, 0.0)


# ----------------------------------------------------------------------------- MMD, 1-NN


def test_gaussian_mmd_matches_loops_and_identities(rng):
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(4, 3)) + 0.5
    d2 = lambda a, b: float(np.sum((a - b) ** 2))  # noqa: E731
    scale = np.mean([d2(a, b) for a in x for b in x])
    k = lambda a, b: math.exp(-d2(a, b) / (2 * scale))  # noqa: E731
    value = (np.mean([k(a, b) for a in x for b in x]) + np.mean([k(a, b) for a in y for b in y])
             - 2 * np.mean([k(a, b) for a in x for b in y]))
    assert gm.gaussian_mmd(x, y) == pytest.approx(math.sqrt(value), rel=1e-10)
    assert gm.gaussian_mmd(x, x) == pytest.approx(0.0, abs=1e-7)
    assert gm.gaussian_mmd(x[::-1], y[::-1]) == pytest.approx(gm.gaussian_mmd(x, y), rel=1e-12)
    far = gm.gaussian_mmd(x, y + 100.0)
    assert gm.gaussian_mmd(x, y) < far <= math.sqrt(2) + 1e-12


def test_one_nn_is_half_for_one_distribution(rng):
    accuracies = [gm.one_nn_accuracy(rng.normal(size=(100, 2)), rng.normal(size=(100, 2)))
                  ["accuracy"] for _ in range(10)]
    assert np.mean(accuracies) == pytest.approx(0.5, abs=0.04)


def test_one_nn_is_one_for_separated_sets_and_zero_for_copies(rng):
    x = rng.normal(size=(30, 3))
    assert gm.one_nn_accuracy(x, x + 50.0) == {"accuracy": 1.0, "real": 1.0, "fake": 1.0}
    copies = gm.one_nn_accuracy(x, x + 1e-6)  # every fake memorises a real
    assert copies == {"accuracy": 0.0, "real": 0.0, "fake": 0.0}


def test_one_nn_matches_a_loop(rng):
    x, y = rng.normal(size=(9, 2)), rng.normal(size=(7, 2)) + 0.7
    pooled = list(x) + list(y)
    labels = [1] * 9 + [0] * 7
    correct = []
    for i, p in enumerate(pooled):
        j = min((q for q in range(16) if q != i), key=lambda q: np.sum((pooled[q] - p) ** 2))
        correct.append(labels[j] == labels[i])
    got = gm.one_nn_accuracy(x, y)
    assert got["accuracy"] == pytest.approx(np.mean(correct))
    assert got["real"] == pytest.approx(np.mean(correct[:9]))
    assert got["fake"] == pytest.approx(np.mean(correct[9:]))


def test_repeated_is_paper_003s_protocol(rng):
    x, y = rng.normal(size=(150, 2)), rng.normal(size=(120, 2))
    seen = []

    def metric(a, b):
        seen.append((len(a), len(b)))
        return {"accuracy": float(len(seen))}

    out = gm.repeated(metric, x, y, repeats=10, sample=100, seed=0)
    assert seen == [(100, 100)] * 10
    assert out["accuracy"]["mean"] == pytest.approx(5.5)
    assert (out["repeats"], out["sample"]) == (10, [100, 100])
    small = gm.repeated(gm.gaussian_mmd, x[:20], y[:30], repeats=10, sample=100)
    assert (small["repeats"], small["sd"]) == (1, 0.0)  # both sets whole: computed once
    assert small["mean"] == pytest.approx(gm.gaussian_mmd(x[:20], y[:30]))


# ----------------------------------------------------------------------------- MS-SSIM


def _ms_ssim_reference(a: np.ndarray, b: np.ndarray, scales: int) -> float:
    """Wang et al. 2003 eq. 7 written out with sliding windows (float64)."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333][:scales])
    weights /= weights.sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    result = 1.0
    for j in range(scales):
        pa = np.lib.stride_tricks.sliding_window_view(a, (11, 11))
        pb = np.lib.stride_tricks.sliding_window_view(b, (11, 11))
        mu_a, mu_b = (pa * window).sum((-1, -2)), (pb * window).sum((-1, -2))
        var_a = (((pa - mu_a[..., None, None]) ** 2) * window).sum((-1, -2))
        var_b = (((pb - mu_b[..., None, None]) ** 2) * window).sum((-1, -2))
        cov = ((pa - mu_a[..., None, None]) * (pb - mu_b[..., None, None]) * window).sum((-1, -2))
        cs = (2 * cov + c2) / (var_a + var_b + c2)
        lum = (2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)
        term = np.mean(lum * cs) if j == scales - 1 else np.mean(cs)
        result *= max(term, 0.0) ** weights[j]
        h, w = a.shape[0] // 2, a.shape[1] // 2
        a = a[:2 * h, :2 * w].reshape(h, 2, w, 2).mean((1, 3))
        b = b[:2 * h, :2 * w].reshape(h, 2, w, 2).mean((1, 3))
    return float(result)


def test_ms_ssim_identity_and_float64_reference(rng):
    a = rng.random((64, 48))
    b = np.clip(a + 0.15 * rng.normal(size=a.shape), 0, 1)
    assert gm.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert gm.ms_ssim_scales(a.shape) == 3  # 48 -> 24 -> 12 (>= 11 px)
    for scales in (1, 2, 3):
        assert gm.ms_ssim(a, b, scales) == pytest.approx(_ms_ssim_reference(a, b, scales),
                                                         rel=1e-10)
    assert gm.ms_ssim(a, b) < gm.ms_ssim(a, np.clip(a + 0.02 * rng.normal(size=a.shape), 0, 1))


def test_ms_ssim_matches_tensorflow_at_five_scales(rng):
    import tensorflow as tf

    a = rng.random((176, 176))
    b = np.clip(a + 0.2 * rng.normal(size=a.shape), 0, 1)
    assert gm.ms_ssim_scales(a.shape) == 5
    expected = float(tf.image.ssim_multiscale(a[None, ..., None], b[None, ..., None], 1.0))
    assert gm.ms_ssim(a, b) == pytest.approx(expected, rel=1e-4)


def test_ms_ssim_scales_and_errors():
    assert [gm.ms_ssim_scales((s, s)) for s in (10, 11, 21, 22, 44, 88, 176, 512)] == \
        [0, 1, 1, 2, 3, 4, 5, 5]
    with pytest.raises(ValueError, match="at least 11x11"):
        gm.ms_ssim(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="differ in shape"):
        gm.ms_ssim(np.zeros((16, 16)), np.zeros((16, 17)))


def test_ms_ssim_diversity(rng):
    same = [rng.random((32, 32))] * 4
    assert gm.ms_ssim_diversity(same)["mean"] == pytest.approx(1.0)
    images = [rng.random((32, 32)) for _ in range(5)]
    out = gm.ms_ssim_diversity(images, repeats=10, sample=32)
    pairs = [gm.ms_ssim(images[i], images[j]) for i in range(5) for j in range(i + 1, 5)]
    assert out["mean"] == pytest.approx(np.mean(pairs))
    assert (out["repeats"], out["sample"]) == (1, 5)
    drawn = gm.ms_ssim_diversity(images, repeats=4, sample=3, seed=2)
    assert (drawn["repeats"], drawn["sample"], len(drawn["values"])) == (4, 3, 4)


# ----------------------------------------------------------------------------- SSIM, JS


def test_mean_ssim_over_pairs(rng):
    real = [rng.random((16, 16)) for _ in range(3)]
    fake = [rng.random((16, 16)) for _ in range(2)]
    out = gm.mean_ssim(real, fake)
    values = [ssim(r, f) for r in real for f in fake]
    assert out["pairs"] == 6
    assert out["mean"] == pytest.approx(np.mean(values))
    assert out["sd"] == pytest.approx(np.std(values, ddof=1))
    assert gm.mean_ssim(real, real[:1])["mean"] < 1.0
    assert gm.mean_ssim(real[:1], real[:1])["mean"] == pytest.approx(1.0)
    assert gm.mean_ssim(real, fake, max_pairs=4)["pairs"] == 4


def test_histogram_js_identities(rng):
    a = [rng.random((8, 8)) for _ in range(3)]
    assert gm.histogram_js(a, a) == pytest.approx(0.0, abs=1e-12)
    dark, bright = [np.full((4, 4), 0.1)], [np.full((4, 6), 0.9)]
    assert gm.histogram_js(dark, bright) == pytest.approx(1.0)  # disjoint histograms
    b = [rng.random((5, 7)) ** 2, rng.random((9, 3))]
    pooled = lambda ims: np.concatenate([im.ravel() for im in ims])  # noqa: E731
    assert gm.histogram_js(a, b) == pytest.approx(histogram_js_distance(pooled(a), pooled(b)))


# ----------------------------------------------------------------------------- the job


def _write_set(root: Path, images, with_mask: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        write_png(root / f"img_{i:02d}.png", image)
        if with_mask:
            write_png(root / f"img_{i:02d}_mask.png", (image > 0.5).astype(np.float32))
    return root


@pytest.fixture(scope="module")
def demo_halves(tmp_path_factory):
    """Demo phantoms at 32 px split by image (even / odd index), and a degraded copy of half
    B: blurred (what MS-SSIM and the histograms see; 16 px pixel features hardly do) and
    brightened (what every metric sees). Of B, not A: a degraded copy of the reals themselves
    sits next to them (1-NN ~ 0)."""
    import cv2

    root = tmp_path_factory.mktemp("gan_metrics")
    paths = sorted(p for p in DEMO.rglob("*.png") if "_mask" not in p.name)
    images = [resize(read_image(p)[0], 32) for p in paths]
    a, b = images[0::2], images[1::2]
    blurred = [0.3 + 0.7 * cv2.GaussianBlur(im, (0, 0), 2.0) for im in b]
    return (_write_set(root / "a", a, with_mask=True), _write_set(root / "b", b),
            _write_set(root / "blurred", blurred))


def test_cli_end_to_end_pixel_features(demo_halves, tmp_path):
    a, b, blurred = demo_halves
    out = tmp_path / "out"
    proc = run_module("tf_usaug.evaluate", "gan", "--real", a, "--fake", b, "--features",
                      "pixels", "--pixel-size", "16", "--out", out, "--kid-subset-size", "8",
                      "--kid-subsets", "20")
    result = json.loads((out / "metrics.json").read_text())
    assert result["real"]["images"] == 16  # the masks beside the images are not counted
    assert result["features"] == {"name": "pixels-16", "dim": 256}
    assert (result["kid"]["subsets"], result["kid"]["subset_size"]) == (20, 8)
    for key in ("fid", "js_distance"):
        assert math.isfinite(result[key]) and result[key] >= 0
    for key in ("kid", "mmd", "ms_ssim_fake", "ms_ssim_real", "ssim"):
        assert math.isfinite(result[key]["mean"]) and math.isfinite(result[key]["sd"])
    assert 0 <= result["one_nn"]["accuracy"]["mean"] <= 1
    assert result["ms_ssim_fake"]["scales"] == 2  # 32 px: 32 -> 16
    assert "FID" in proc.stdout and "1-NN" in proc.stdout
    assert "| FID" in (out / "metrics.md").read_text()
    assert result["command"].startswith("python -m tf_usaug.evaluate gan")
    # the job's numbers are the library's on the same images
    real = [read_image(p)[0] for p in sorted(a.glob("img_??.png"))]
    fake = [read_image(p)[0] for p in sorted(b.glob("*.png"))]
    flat = lambda ims: np.stack([resize(im, 16).ravel() for im in ims])  # noqa: E731
    assert result["fid"] == pytest.approx(gm.fid(flat(real), flat(fake)), rel=1e-6)
    assert result["js_distance"] == pytest.approx(gm.histogram_js(real, fake), rel=1e-9)
    # degraded fakes are further from the reals than the other half of the set
    far = evaluate_gan(GanMetricsConfig(real=a, fake=blurred, features="pixels", pixel_size=16,
                                        metrics=("fid", "kid", "one_nn", "ms_ssim", "js")))
    assert far["fid"] > 2 * result["fid"]
    assert far["kid"]["mean"] > 0.05 > abs(result["kid"]["mean"])
    assert far["one_nn"]["accuracy"]["mean"] == 1.0 > result["one_nn"]["accuracy"]["mean"]
    assert far["js_distance"] > 2 * result["js_distance"]
    assert far["ms_ssim_fake"]["mean"] > result["ms_ssim_fake"]["mean"]  # blur: less diverse


def test_keras_model_features(demo_halves, tmp_path):
    """--features MODEL.keras: the penultimate layer's output, as the model computes it."""
    import tensorflow as tf
    from tensorflow import keras

    a, b, _ = demo_halves
    inputs = keras.Input((24, 24, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(6, activation="tanh", name="embedding")(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    tf.random.set_seed(0)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "tiny.keras"
    model.save(path)
    out = tmp_path / "out"
    run_module("tf_usaug.evaluate", "gan", "--real", a, "--fake", b, "--features", path,
               "--metrics", "fid,kid,one_nn", "--out", out)
    result = json.loads((out / "metrics.json").read_text())
    assert result["features"]["dim"] == 6
    assert set(result) >= {"fid", "kid", "one_nn"} and "ssim" not in result
    embed = keras.Model(model.inputs, model.get_layer("embedding").output)

    def features(folder, pattern):
        ims = [resize(read_image(p)[0], 24) for p in sorted(folder.glob(pattern))]
        return embed.predict(np.stack(ims)[..., None], verbose=0).astype(np.float64)

    expected = gm.fid(features(a, "img_??.png"), features(b, "*.png"))
    assert result["fid"] == pytest.approx(expected, rel=1e-4, abs=1e-8)


def test_classifier_run_features(demo_halves, tmp_path):
    """A classifier run folder: its preprocessing, the input of its softmax layer."""
    from tensorflow import keras

    from tf_usaug.metrics.features import build_extractor
    from tf_usaug.models.classifier.networks import build_classifier
    from tf_usaug.models.classifier.preprocessing import Preprocessing

    run = tmp_path / "cls"
    run.mkdir()
    model = build_classifier("small", 2, 32, hidden_units=16)
    model.save(run / "model.keras")
    pre = Preprocessing.for_backbone("small", "signed", 32, ["benign", "malignant"])
    pre.save(run)
    extractor = build_extractor(str(run))
    images = [read_image(p)[0] for p in sorted(demo_halves[1].glob("*.png"))[:4]]
    got = extractor(images)
    head = keras.Model(model.inputs, model.get_layer("predictions").input)
    expected = head(pre.prepare(images), training=False).numpy()
    assert got.shape == (4, 16)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    pooled = build_extractor(str(run), layer="head_pool")(images)
    assert pooled.shape[0] == 4 and pooled.shape[1] != 16
    with pytest.raises(BackboneError, match="no layer named 'nope'"):
        build_extractor(str(run), layer="nope")


def test_inception_features_random_weights(rng):
    from tf_usaug.metrics.features import build_extractor

    extractor = build_extractor("inception", weights="none", batch_size=2)
    features = extractor([rng.random((40, 30)).astype(np.float32) for _ in range(3)])
    assert features.shape == (3, 2048) and np.all(np.isfinite(features))
    assert extractor.name == "inception-random"


def test_inception_without_cached_weights_names_the_way_out(demo_halves, tmp_path):
    a, b, _ = demo_halves
    proc = run_module("tf_usaug.evaluate", "gan", "--real", a, "--fake", b,
                      env={"KERAS_HOME": str(tmp_path / "empty_keras")}, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error:") and "--weights PATH" in lines[-1]
    assert "--features" in lines[-1] and "never downloaded" in lines[-1]


def test_score_images_in_memory(rng):
    real = [rng.random((24, 24)).astype(np.float32) for _ in range(6)]
    fake = [np.clip(im + 0.3, 0, 1) for im in real]
    cfg = GanMetricsConfig(real=Path("."), fake=Path("."), features="pixels", pixel_size=8,
                           metrics=("fid", "js", "ssim"))
    out = score_images(real, fake, cfg)
    assert set(out) == {"features", "fid", "js_distance", "ssim"}
    assert out["fid"] > 0 and out["js_distance"] > 0 and out["ssim"]["pairs"] == 36


def _error_of(*args) -> str:
    proc = run_module("tf_usaug.evaluate", "gan", *map(str, args), check=False)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_bad_input_one_line_exit_2(demo_halves, tmp_path):
    a, _, _ = demo_halves
    empty = tmp_path / "empty"
    empty.mkdir()
    assert str(empty) in _error_of("--real", a, "--fake", empty, "--features", "pixels")
    broken = _write_set(tmp_path / "broken", [np.zeros((16, 16), np.float32)] * 2)
    (broken / "img_01.png").write_text("not a png")
    assert str(broken / "img_01.png") in _error_of("--real", broken, "--fake", a,
                                                   "--features", "pixels")
    single = _write_set(tmp_path / "single", [np.zeros((16, 16), np.float32)])
    line = _error_of("--real", a, "--fake", single, "--features", "pixels")
    assert str(single) in line and "at least 2" in line
    assert "nope.keras" in _error_of("--real", a, "--fake", a, "--features",
                                     tmp_path / "nope.keras")
    assert "--metrics" in _error_of("--real", a, "--fake", a, "--metrics", "fid,bogus")
