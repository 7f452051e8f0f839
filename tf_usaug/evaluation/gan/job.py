"""The generative-metrics job: two image folders in, one table of metrics out.

:func:`evaluate_gan` reads the folders, :func:`score_images` computes every metric of
:class:`GanMetricsConfig` on in-memory images (what a GAN trainer calls on its samples).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ... import log
from ...data.datasets import discover
from ...data.image_io import read_image, resize
from ...errors import BadInputsError, ImageError, InputError, TfUsaugError, UsageError
from ...files import atomic_write_bytes, write_json
from ...metrics import generative as gm
from ...metrics.features import FeatureExtractor, build_extractor
from .config import FEATURE_METRICS, GanMetricsConfig, check_config
from .report import markdown, table

METRICS_FILE, MARKDOWN_FILE = "metrics.json", "metrics.md"


def read_folder(folder: str | Path, what: str) -> tuple[list[np.ndarray], list[Path]]:
    """Grey images of a folder / CSV (any :func:`tf_usaug.data.datasets.discover` layout;
    ``*_mask`` files skipped). Every file is read; one unreadable file raises its
    :class:`ImageError`, several a :class:`BadInputsError` listing them."""
    samples = discover(folder)
    images, paths, problems = [], [], []
    for sample in samples:
        try:
            images.append(read_image(sample.image)[0])
            paths.append(sample.image)
        except ImageError as exc:
            problems.append((sample.image, exc.reason))
    if len(problems) == 1:
        raise ImageError(*problems[0])
    if problems:
        raise BadInputsError(problems, len(samples))
    if len(images) < 2:
        raise InputError(folder, f"holds {len(images)} {what} image; FID, KID and the other "
                         "set metrics need at least 2")
    return images, paths


def _common_size(images: Sequence[np.ndarray], shape: tuple[int, int]) -> list[np.ndarray]:
    return [im if im.shape == shape else resize(im, shape) for im in images]


def score_images(real_images: Sequence[np.ndarray], fake_images: Sequence[np.ndarray],
                 cfg: GanMetricsConfig, extractor: FeatureExtractor | None = None) -> dict:
    """Every metric of ``cfg.metrics`` between two lists of grey ``HxW`` images in [0, 1].

    Args:
        real_images, fake_images: at least 2 images each (any sizes).
        cfg: the settings (``real`` / ``fake`` / ``out`` are not used here).
        extractor: a built :class:`FeatureExtractor` to reuse (default: built from ``cfg``).

    Returns:
        ``{"fid", "kid", "mmd", "one_nn", "ms_ssim_fake", "ms_ssim_real", "ssim",
        "js_distance", "features", "seconds"}`` for the metrics asked for (module docstring
        of :mod:`tf_usaug.metrics.generative`).
    """
    if len(real_images) < 2 or len(fake_images) < 2:
        raise UsageError(f"need at least 2 real and 2 fake images, got {len(real_images)} and "
                         f"{len(fake_images)}")
    wanted = set(cfg.metrics)
    result: dict = {}
    seconds: dict[str, float] = {}

    def timed(name):
        seconds[name] = time.perf_counter()
        return log.Stage(name)

    if wanted & set(FEATURE_METRICS):
        with timed("features"):
            if extractor is None:
                extractor = build_extractor(cfg.features, cfg.weights, cfg.layer,
                                            cfg.pixel_size, cfg.input_range, cfg.batch_size)
            real_f, fake_f = extractor(list(real_images)), extractor(list(fake_images))
        result["features"] = extractor.describe()
        if "fid" in wanted:
            result["fid"] = gm.fid(real_f, fake_f)
        if "kid" in wanted:
            kid = gm.kid(real_f, fake_f, cfg.kid_subsets, cfg.kid_subset_size, cfg.seed)
            result["kid"] = {k: v for k, v in kid.items() if k != "values"}
        if "mmd" in wanted:
            result["mmd"] = gm.repeated(lambda x, y: gm.gaussian_mmd(x, y, cfg.mmd_sigma),
                                        real_f, fake_f, cfg.repeats, cfg.sample, cfg.seed)
        if "one_nn" in wanted:
            result["one_nn"] = gm.repeated(gm.one_nn_accuracy, real_f, fake_f, cfg.repeats,
                                           cfg.sample, cfg.seed)
    if wanted & {"ms_ssim", "ssim"}:
        shape = (cfg.size, cfg.size) if cfg.size else tuple(fake_images[0].shape)
        real_sq, fake_sq = _common_size(real_images, shape), _common_size(fake_images, shape)
        if "ms_ssim" in wanted:
            with timed("MS-SSIM diversity"):
                for key, images in (("ms_ssim_fake", fake_sq), ("ms_ssim_real", real_sq)):
                    div = gm.ms_ssim_diversity(images, cfg.diversity_repeats,
                                               cfg.diversity_sample, cfg.seed)
                    result[key] = {**div, "scales": gm.ms_ssim_scales(shape),
                                   "shape": list(shape)}
        if "ssim" in wanted:
            with timed("SSIM real vs fake"):
                result["ssim"] = {**gm.mean_ssim(real_sq, fake_sq, cfg.ssim_pairs, cfg.seed),
                                  "shape": list(shape)}
    if "js" in wanted:
        result["js_distance"] = gm.histogram_js(real_images, fake_images, cfg.bins)
    return result


def evaluate_gan(cfg: GanMetricsConfig) -> dict:
    """Compare ``cfg.fake`` with ``cfg.real``; write ``OUT/metrics.{json,md}`` if ``cfg.out``.

    Returns:
        :func:`score_images`' dict plus ``real`` / ``fake`` (``{"folder", "images"}``),
        ``settings`` and ``command``.

    Raises:
        UsageError, InputError, BackboneError: bad options, unreadable or too few images (the
            message names the folder or file), unusable feature network.
    """
    check_config(cfg)
    logger = log.get()
    if cfg.threads:
        from ...distributed.context import configure_threads

        configure_threads(cfg.threads)
    with log.Stage("reading images"):
        real, _ = read_folder(cfg.real, "real")
        fake, _ = read_folder(cfg.fake, "fake")
    logger.info("    %d real images (%s), %d fake images (%s)", len(real), cfg.real, len(fake),
                cfg.fake)
    start = time.perf_counter()
    try:
        scores = score_images(real, fake, cfg)
    except TfUsaugError:
        raise
    except ValueError as exc:  # maths on arrays that cannot be used
        raise InputError(cfg.fake, f"cannot be scored against {cfg.real}: {exc}") from None
    settings = {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in vars(cfg).items() if k not in ("verbose", "command", "threads")}
    result = {"real": {"folder": str(cfg.real), "images": len(real)},
              "fake": {"folder": str(cfg.fake), "images": len(fake)},
              **scores, "seconds": round(time.perf_counter() - start, 3),
              "settings": settings, "command": cfg.command}
    print(table(result))
    if cfg.out is not None:
        out = Path(cfg.out)
        write_json(out / METRICS_FILE, result)
        atomic_write_bytes(out / MARKDOWN_FILE, markdown(result).encode())
        logger.info("==> wrote %s and %s", out / METRICS_FILE, out / MARKDOWN_FILE)
    return result
