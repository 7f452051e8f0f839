"""NST engine: Adam maths, schedules, batch independence, early stop, multi-resolution,
content weights, the demo run (ResNet50, random weights) and bad input.

Most engine tests use a two-block VGG19 slice (fast to trace and step); the demo test runs
the default ResNet50 layers and the default loss. Everything is offline (weights="none").
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from tf_usaug.nst.backbones import BackboneConfig, build_extractor
from tf_usaug.nst.losses import StyleLossConfig
from tf_usaug.nst.config import NSTConfig, StylizeResult
from tf_usaug.nst.stylizer import Stylizer
from tf_usaug.nst.optim import (adam_update, noise_generator, relative_change, scaled_size,
                                split_iterations)

try:
    from tf_usaug.metrics.image import ssim
except ImportError:  # pragma: no cover - metrics is written in parallel
    from skimage.metrics import structural_similarity

    def ssim(a, b):
        return structural_similarity(a, b, data_range=1.0)


# ----------------------------------------------------------------------------- images


def speckle(shape, grain, rng) -> np.ndarray:
    """Fully developed speckle: |complex Gaussian| low-passed to a grain size, unit power."""
    field = (ndimage.gaussian_filter(rng.standard_normal(shape), grain)
             + 1j * ndimage.gaussian_filter(rng.standard_normal(shape), grain))
    amplitude = np.abs(field)
    return amplitude / np.sqrt(np.mean(amplitude ** 2))


def phantom(size, centre, radii) -> np.ndarray:
    """Echogenicity map: tissue darkening with depth and a hypoechoic elliptic lesion."""
    yy, xx = np.mgrid[:size, :size]
    inside = ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2 < 1
    tissue = 0.8 - 0.3 * yy / size
    return np.where(inside, 0.25 * tissue, tissue)


def bmode(echo, grain, rng, gain=0.4) -> np.ndarray:
    return np.clip(gain * echo * speckle(echo.shape, grain, rng), 0, 1).astype(np.float32)


def demo_pairs(size=64, seed=0):
    """Two demo-like content images, their styles, and 'twins' of the contents (the same
    anatomy with an independent speckle realisation)."""
    rng = np.random.default_rng(seed)
    anatomy = [phantom(size, (0.45 * size, 0.53 * size), (0.19 * size, 0.28 * size)),
               phantom(size, (0.6 * size, 0.35 * size), (0.22 * size, 0.16 * size))]
    contents = np.stack([bmode(a, 1.0, rng) for a in anatomy])
    twins = np.stack([bmode(a, 1.0, rng) for a in anatomy])
    styles = np.stack([
        bmode(phantom(size, (0.3 * size, 0.6 * size), (0.12 * size, 0.12 * size)), 2.5, rng,
              0.55),                                     # coarse speckle, brighter
        bmode(np.full((size, size), 0.7), 0.6, rng, 0.5),  # fine speckle, uniform
    ])[:, None]
    return contents, styles, twins


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def small_extractor():
    return build_extractor(BackboneConfig(name="vgg19", weights="none",
                                          style_layers=("block1_conv1", "block2_conv1"),
                                          content_layer="block2_conv1"))


def small_stylizer(extractor, **nst):
    nst.setdefault("check_every", 5)
    return Stylizer(None, StyleLossConfig(), NSTConfig(**nst), extractor=extractor)


@pytest.fixture(scope="module")
def tiny_batch():
    rng = np.random.default_rng(7)
    contents = np.stack([bmode(phantom(32, (14, 16), (7, 9)), 1.0, rng) for _ in range(3)])
    styles = np.stack([bmode(np.full((32, 32), 0.7), g, rng, 0.5) for g in (0.6, 1.5, 2.5)])
    return contents, styles[:, None]


# ----------------------------------------------------------------------------- pure helpers


def test_adam_update_matches_numpy_reference(rng):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    x = rng.normal(size=5)
    m, v = np.zeros(5), np.zeros(5)
    tm, tv, tx = tf.zeros(5, tf.float64), tf.zeros(5, tf.float64), tf.constant(x)
    for t in range(1, 4):
        g = 2 * x - 1  # gradient of x^2 - x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        delta, tm, tv = adam_update(2 * tx - 1, tm, tv, t, lr, b1, b2, eps)
        tx = tx + delta
    np.testing.assert_allclose(tx.numpy(), x, rtol=1e-12)
    # first step of Adam moves every coordinate by lr * sign(g) (bias-corrected)
    delta, _, _ = adam_update(tf.constant([3.0, -1e-3]), tf.zeros(2), tf.zeros(2), 1, 0.5)
    np.testing.assert_allclose(delta.numpy(), [-0.5, 0.5], rtol=1e-4)


def test_split_iterations():
    assert split_iterations(1000, (1, 1)) == [500, 500]
    assert split_iterations(10, (1, 2)) == [3, 7]
    assert split_iterations(7, (1, 1, 1)) == [3, 2, 2]
    assert split_iterations(5, (0, 1)) == [0, 5]
    assert sum(split_iterations(999, (0.2, 0.3, 0.5))) == 999


def test_relative_change_and_scaled_size():
    np.testing.assert_allclose(relative_change([2.0, 0.0, -4.0], [1.0, 0.0, -3.0]),
                               [0.5, 0.0, 0.25])
    assert scaled_size(128, 96, 0.5) == (64, 48)
    assert scaled_size(40, 200, 0.25) == (32, 50)   # at least 32 px ...
    assert scaled_size(20, 20, 0.5) == (20, 20)     # ... unless the image is smaller


def test_noise_generator_depends_on_seed_and_content(rng):
    image = rng.uniform(size=(8, 8)).astype(np.float32)
    a = noise_generator(3, image).standard_normal(4)
    np.testing.assert_array_equal(a, noise_generator(3, image.copy()).standard_normal(4))
    assert not np.allclose(a, noise_generator(4, image).standard_normal(4))
    assert not np.allclose(a, noise_generator(3, image[::-1]).standard_normal(4))


@pytest.mark.parametrize("bad", [dict(scales=(1.0, 0.5)), dict(scales=(0.0, 1.0)),
                                 dict(scales=(0.5, 1.0), scale_fractions=(1.0,)),
                                 dict(normalize="layer"), dict(style_weight=-1.0),
                                 dict(learning_rate=0.0), dict(batch_size=0),
                                 dict(iterations=-1), dict(tol=-0.1)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        NSTConfig(**bad)


def test_config_defaults_follow_the_paper():
    cfg = NSTConfig()
    assert cfg.iterations == 1000 and cfg.content_weight == 1.0  # paper 002, Step 1
    assert cfg.tv_weight == 0.0 and cfg.batch_size == 8 and cfg.scales == (0.5, 1.0)
    assert not cfg.xla and not cfg.mixed_precision


# ----------------------------------------------------------------------------- engine


def test_batch_equals_single_images(small_extractor, tiny_batch):
    contents, styles = tiny_batch
    stylizer = small_stylizer(small_extractor, iterations=20, scales=(0.5, 1.0), tol=0)
    batched = stylizer.stylize(contents, styles)
    singles = [stylizer.stylize(contents[i:i + 1], styles[i:i + 1]) for i in range(3)]
    assert batched.images.shape == contents.shape and batched.images.dtype == np.float32
    for i, single in enumerate(singles):
        np.testing.assert_allclose(batched.images[i], single.images[0], atol=1e-4)
        for key in ("content", "style", "total"):
            np.testing.assert_allclose(batched.final[key][i], single.final[key][0], rtol=1e-3,
                                       atol=1e-6)
        np.testing.assert_allclose(batched.history[i]["total"], single.history[0]["total"],
                                   rtol=1e-3)
    assert (batched.iterations == 20).all()
    assert (batched.final["style"] < batched.initial["style"]).all()
    assert batched.images.min() >= 0.0 and batched.images.max() <= 1.0
    # chunking by batch_size gives the same images too
    chunked = small_stylizer(small_extractor, iterations=20, tol=0, batch_size=2)
    np.testing.assert_allclose(chunked.stylize(contents, styles).images, batched.images,
                               atol=1e-4)


def test_deterministic(small_extractor, tiny_batch):
    contents, styles = tiny_batch
    stylizer = small_stylizer(small_extractor, iterations=10, scales=(1.0,), init_noise=0.05,
                              seed=3)
    first, second = stylizer.stylize(contents, styles), stylizer.stylize(contents, styles)
    np.testing.assert_array_equal(first.images, second.images)
    # the noise is seeded by the image, not its position in the batch
    np.testing.assert_allclose(
        stylizer.stylize(contents[2:0:-1], styles[2:0:-1]).images[0], first.images[2],
        atol=1e-4)
    other_seed = small_stylizer(small_extractor, iterations=10, scales=(1.0,), init_noise=0.05,
                                seed=4)
    assert np.abs(other_seed.stylize(contents, styles).images - first.images).max() > 1e-2


def test_early_stop_is_per_image(small_extractor, tiny_batch):
    """An image whose style is its own content is converged from the start: it stops after
    ``patience + 1`` checks, unchanged, while the other image runs its full budget."""
    contents, styles = tiny_batch
    problem_styles = np.stack([contents[0][None], styles[1]])
    patience, every = 2, 5
    stylizer = small_stylizer(small_extractor, iterations=60, scales=(1.0,), tol=1e-4,
                              patience=patience, check_every=every)
    result = stylizer.stylize(contents[:2], problem_styles)
    assert result.iterations[0] == (patience + 1) * every
    assert result.iterations[1] == 60
    np.testing.assert_allclose(result.images[0], contents[0], atol=1e-6)
    assert len(result.history[0]["total"]) == patience + 1
    assert len(result.history[1]["total"]) == 60 // every
    assert result.final["style"][1] < 0.5 * result.initial["style"][1]
    alone = stylizer.stylize(contents[1:2], problem_styles[1:2])
    np.testing.assert_allclose(alone.images[0], result.images[1], atol=1e-4)


def test_multi_resolution_returns_full_size(small_extractor, tiny_batch, rng):
    contents = np.stack([bmode(phantom(64, (30, 30), (12, 14)), 1.0, rng) for _ in range(2)])
    styles = tiny_batch[1][:2]  # 32x32 references are resized to the content size
    stylizer = small_stylizer(small_extractor, iterations=30, scales=(0.5, 1.0),
                              scale_fractions=(2, 1), tol=0)
    result = stylizer.stylize(contents, styles)
    assert result.images.shape == (2, 64, 64)
    assert (result.iterations == 30).all()
    history = result.history[0]
    np.testing.assert_array_equal(history["scale"], [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(history["iteration"], [4, 9, 14, 19, 24, 29])
    assert result.final["style"][0] < result.initial["style"][0]
    unchanged = small_stylizer(small_extractor, iterations=0).stylize(contents, styles)
    np.testing.assert_array_equal(unchanged.images, contents)
    assert (unchanged.iterations == 0).all()
    np.testing.assert_allclose(unchanged.final["total"], unchanged.initial["total"])
    coarse_only = small_stylizer(small_extractor, iterations=10, scales=(0.5,), tol=0)
    out = coarse_only.stylize(contents, styles).images
    assert out.shape == (2, 64, 64)
    # optimised at 32x32 and upsampled: smooth at the pixel scale compared with the input
    assert np.abs(np.diff(out, axis=-1)).mean() < np.abs(np.diff(contents, axis=-1)).mean()


def test_content_weight_of_ones_equals_no_weight(small_extractor, tiny_batch):
    contents, styles = tiny_batch
    stylizer = small_stylizer(small_extractor, iterations=15, scales=(1.0,), tol=0)
    plain = stylizer.stylize(contents, styles)
    ones = stylizer.stylize(contents, styles, content_weights=np.ones_like(contents))
    np.testing.assert_allclose(ones.images, plain.images, atol=1e-5)
    # a weight map that is zero everywhere switches the content loss off
    zero = stylizer.stylize(contents, styles, content_weights=np.zeros_like(contents))
    np.testing.assert_array_equal(zero.final["content"], 0.0)
    assert np.abs(zero.images - contents).mean() > np.abs(plain.images - contents).mean()


def test_full_masks_equal_no_masks(small_extractor, tiny_batch):
    contents, styles = tiny_batch
    stylizer = small_stylizer(small_extractor, iterations=10, scales=(1.0,), tol=0)
    plain = stylizer.stylize(contents, styles)
    masked = stylizer.stylize(contents, styles, masks=np.ones_like(contents)[:, None])
    np.testing.assert_allclose(masked.images, plain.images, atol=1e-4)


def test_zero_style_weight_keeps_the_content(small_extractor, tiny_batch):
    contents, styles = tiny_batch
    stylizer = small_stylizer(small_extractor, iterations=20, scales=(1.0,), tol=0,
                              style_weight=0.0)
    result = stylizer.stylize(contents, styles)
    np.testing.assert_allclose(result.images, contents, atol=1e-6)
    # from a noisy start, the content loss alone pulls the pixels back towards the content
    noisy = small_stylizer(small_extractor, iterations=40, scales=(1.0,), tol=0,
                           style_weight=0.0, init_noise=0.1, learning_rate=0.005)
    start = np.stack([np.clip(c + 0.1 * noise_generator(0, c).standard_normal(c.shape), 0, 1)
                      for c in contents])
    out = noisy.stylize(contents, styles)
    assert np.mean((out.images - contents) ** 2) < 0.8 * np.mean((start - contents) ** 2)
    problem = noisy.prepare(tf.constant(contents[..., None]), tf.constant(styles))
    start_loss = noisy.evaluate(start[..., None], problem)["content"]
    assert (out.final["content"] < 0.5 * start_loss).all()


def test_demo_run_stylises_and_keeps_content():
    """Default engine (ResNet50 layers, paper 002's loss, multi-resolution, default weights) on
    two demo-like 64x64 images: the style loss falls below 20 % of its initial value and the
    output keeps the content's structure.

    SSIM threshold: speckle makes SSIM low even between two images of the *same* anatomy with
    independent speckle ("twins", about 0.1 here) and near 0 between content and style. We
    require SSIM(output, content) > 0.25 and > 2x the twin SSIM: the output must keep the
    content's own structure (lesion and speckle pattern), not only re-texture its anatomy.
    """
    contents, styles, twins = demo_pairs(64)
    stylizer = Stylizer(BackboneConfig(weights="none"), StyleLossConfig(),
                        NSTConfig(iterations=80, tol=0))
    result = stylizer.stylize(contents, styles)
    assert isinstance(result, StylizeResult)
    for i in range(2):
        twin_ssim = ssim(twins[i], contents[i])
        out_ssim = ssim(result.images[i], contents[i])
        assert ssim(styles[i, 0], contents[i]) < twin_ssim < 0.2
        assert out_ssim > max(0.25, 2 * twin_ssim), (i, out_ssim, twin_ssim)
        assert result.final["style"][i] < 0.2 * result.initial["style"][i]
        assert np.abs(result.images[i] - contents[i]).mean() > 0.02  # visibly changed
    # per-layer terms start at w_l = 1 under the default normalisation
    for layer in BackboneConfig().style_layers:  # thin layers at 64 px are left out (0)
        want = 0.0 if layer in ("conv3_block4_out", "conv4_block6_out") else 1.0
        np.testing.assert_allclose(result.initial[f"style/{layer}"], want, rtol=1e-4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(contents=np.full((1, 32, 32), 1.5)), "contents must lie"),
    (dict(contents=np.zeros((32, 32))), "contents must have 3"),
    (dict(styles=np.zeros((2, 1, 32, 32))), "styles"),
    (dict(styles=np.full((1, 1, 32, 32), np.nan)), "NaN"),
    (dict(content_weights=-np.ones((1, 32, 32))), "non-negative"),
    (dict(content_weights=np.ones((1, 16, 16))), "shape of contents"),
    (dict(masks=np.ones((1, 1, 16, 16))), "masks"),
    (dict(style_masks=np.ones((1, 1, 32, 32))), "content masks"),
])
def test_bad_input(small_extractor, kwargs, match):
    stylizer = small_stylizer(small_extractor, iterations=1)
    args = dict(contents=np.zeros((1, 32, 32)), styles=np.zeros((1, 1, 32, 32)))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        stylizer.stylize(**args)


@pytest.mark.slow
def test_xla_and_mixed_precision_match_the_default(small_extractor, tiny_batch):
    contents, styles = tiny_batch
    reference = small_stylizer(small_extractor, iterations=10, scales=(1.0,), tol=0)
    want = reference.stylize(contents, styles).images
    xla = small_stylizer(small_extractor, iterations=10, scales=(1.0,), tol=0, xla=True)
    np.testing.assert_allclose(xla.stylize(contents, styles).images, want, atol=2e-3)
    half = Stylizer(BackboneConfig(name="vgg19", weights="none",
                                   style_layers=("block1_conv1", "block2_conv1"),
                                   content_layer="block2_conv1"),
                    StyleLossConfig(),
                    NSTConfig(iterations=10, scales=(1.0,), tol=0, mixed_precision=True))
    half.extractor.model.set_weights(small_extractor.model.get_weights())
    out = half.stylize(contents, styles)
    assert np.isfinite(out.images).all()
    assert (out.final["style"] < out.initial["style"]).all()


@pytest.mark.slow
def test_benchmark_smoke(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "nst.json"
    subprocess.run([sys.executable, str(repo / "benchmarks" / "nst_throughput.py"), "--size",
                    "32", "--batch", "2", "--steps", "1", "--repeats", "1", "--variants",
                    "bn_folded_fused", "--extrapolate", "64", "--matmul", "256", "--out", str(out)],
                   cwd=repo, check=True, capture_output=True, timeout=600)
    result = json.loads(out.read_text())
    row = result["rows"][0]
    assert row["gflop_per_image_iteration"] > 0 and row["batched"]["img_it_per_s"] > 0
    assert row["loop"]["img_it_per_s"] > 0 and row["breakdown_cpu"]["backbone_ms"] > 0
    assert 0 < row["fraction_of_matmul"] < 2
    assert result["extrapolation"][0]["seconds_per_image_single_scale"] > 0
