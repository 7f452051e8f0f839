"""Checks of a job's configuration before any work, and the settings that make its results.

:func:`check_config` refuses, in one line and before any input is read or model built, every
argument a run could only fail on later: out-of-range numbers, unknown choices, weights files
that do not exist, a working size whose batch would not fit in memory, a plan too large to
enumerate.

:func:`run_settings` and :func:`item_settings` list what changes the bytes of the outputs: the
first is compared with ``OUT/run.json`` (a rerun with other settings is refused, see
:mod:`tf_usaug.rundir`), the second enters each item's fingerprint together with the content
hashes of its input files.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..data.fit import check_fit
from ..errors import UsageError
from ..files import path_digest
from .config import METHODS, AugmentConfig
from .inputs import check_crop

#: Largest working side accepted at all (a 16k x 16k float32 image is 1 GiB).
MAX_SIZE = 16384
#: Most outputs one job plans (each is a record, an image and a manifest row).
MAX_ITEMS = 10_000_000
#: Working memory per image pixel of one batch entry, by method: about twice the growth of the
#: peak resident memory with batch x size^2 measured by benchmarks/job_memory.py (results in
#: benchmarks/results/job_memory.json): NST keeps the backbone's activations for the pixel
#: gradient (~1.2 KB per pixel), the other methods a few arrays; the stylizer's network grew
#: the peak by 0.8-1.0 KB per pixel (batch 8 at 512-768 px, default network; docs/stylizer.md).
#: A GAN's generator is taken to need the stylizer's (not measured; docs/gan.md).
BYTES_PER_PIXEL = {"nst": 2_500, "traditional": 200, "srad": 200, "stylizer": 2_000,
                   "gan": 2_000}


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else None (no check)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def batch_memory_bytes(cfg: AugmentConfig) -> int:
    """Estimated working memory of one batch (see :data:`BYTES_PER_PIXEL`)."""
    batch = cfg.batch_size if cfg.method in ("nst", "stylizer", "gan") else 1
    return BYTES_PER_PIXEL[cfg.method] * cfg.size * cfg.size * batch


def _positive(cfg: AugmentConfig, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) < 1:
            hint = " (use --no-srad to switch the filter off)" if name == "srad_scale" else ""
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got "
                             f"{getattr(cfg, name)}{hint}")


def _weights_file(option: str, value: str | None) -> None:
    """A weights / model *file* argument must exist (names like imagenet or none are fine)."""
    if value is None or str(value).lower() in ("imagenet", "none", "resnet50"):
        return
    path = Path(value)
    if not path.exists():
        raise UsageError(f"{option} {value}: file not found (give imagenet, none or an "
                         "existing file)")


def _classifier_run(option: str, value: str | None) -> None:
    """A folder given as a model must be a classifier run (``RUN/model.keras`` and
    ``RUN/preprocessing.json`` of ``python -m tf_usaug.train classifier``)."""
    if value is None or not Path(value).is_dir():
        return
    from ..errors import RelevanceError
    from ..xai.relevance import classifier_run

    try:
        run = classifier_run(value)
    except RelevanceError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if run is None:
        raise UsageError(f"{option} {value}: a folder, but not a classifier run (no "
                         "model.keras and preprocessing.json; train one with python -m "
                         "tf_usaug.train classifier)")


def _stylizer_run(value) -> None:
    """``--method stylizer`` needs ``--model``, a finished run of ``python -m tf_usaug.train
    stylizer`` (checked without TensorFlow)."""
    if value is None:
        raise UsageError("--method stylizer needs --model RUN: the run folder of python -m "
                         "tf_usaug.train stylizer --styles DIR --out RUN")
    from ..errors import InputError
    from ..models.stylizer.run_files import check_stylizer_run

    try:
        check_stylizer_run(value)
    except InputError as exc:
        raise UsageError(f"--model {exc}") from None


def _gan_run(value) -> None:
    """``--method gan`` needs ``--model``, a finished run of ``python -m tf_usaug.train wgan``
    or ``stylegan2`` (checked without TensorFlow)."""
    if value is None:
        raise UsageError("--method gan needs --model RUN: the run folder of python -m "
                         "tf_usaug.train wgan (or stylegan2) --data DIR --out RUN")
    from ..errors import InputError
    from ..models.gan.registry import check_gan_run

    try:
        check_gan_run(value)
    except InputError as exc:
        raise UsageError(f"--model {exc}") from None


def check_config(cfg: AugmentConfig) -> None:
    """Every check that needs no input file and no model; raises :class:`UsageError`."""
    from .methods import relevance_weights

    if cfg.method not in METHODS:
        raise UsageError(f"unknown --method {cfg.method!r}; choose from {', '.join(METHODS)}")
    if str(cfg.out).strip() == "":
        raise UsageError("--out must not be empty (give a folder for the results)")
    _positive(cfg, "per_image", "batch_size", "n_styles", "iterations", "srad_scale")
    if cfg.threads is not None and cfg.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {cfg.threads}")
    if not 8 <= cfg.size <= MAX_SIZE:
        raise UsageError(f"--size must be between 8 and {MAX_SIZE}, got {cfg.size}")
    if cfg.method == "nst" and cfg.relevance and cfg.size < 32:
        raise UsageError(f"--size {cfg.size} is too small for the relevance classifier "
                         "(ResNet50 downsamples by 32): use --size >= 32 or --no-relevance")
    if cfg.method == "srad":
        from ..filters.srad import SRADConfig

        if cfg.per_image > SRADConfig().scales:
            raise UsageError(f"--method srad gives at most {SRADConfig().scales} outputs per image "
                             f"(the L scales of the series); got --per-image {cfg.per_image}")
    if cfg.per_image > MAX_ITEMS:
        raise UsageError(f"--per-image {cfg.per_image} is more than one job plans "
                         f"({MAX_ITEMS:,} outputs); split the work into several jobs")
    check_crop(cfg.crop)
    check_fit(cfg.fit)
    if cfg.method == "nst":
        _weights_file("--weights", cfg.weights)
        if cfg.relevance:
            relevance_weights(cfg)  # a weights file needs --relevance-weights: say so now
            _weights_file("--relevance-model", cfg.relevance_model)
            _classifier_run("--relevance-model", cfg.relevance_model)
            _weights_file("--relevance-weights", cfg.relevance_weights)
    if cfg.method == "stylizer":
        _stylizer_run(cfg.model)
    if cfg.method == "gan":
        _gan_run(cfg.model)
    need, have = batch_memory_bytes(cfg), available_memory_bytes()
    if have is not None and need > have:
        batch = cfg.batch_size if cfg.method in ("nst", "stylizer", "gan") else 1
        raise UsageError(f"--size {cfg.size} needs about {need / 2**30:.1f} GiB for a batch of "
                         f"{batch} ({cfg.method}); "
                         f"{have / 2**30:.1f} GiB are available: use a smaller --size or "
                         "--batch-size")


def check_plan_size(n_contents: int, cfg: AugmentConfig) -> None:
    if n_contents * cfg.per_image > MAX_ITEMS:
        raise UsageError(f"{n_contents} content images x --per-image {cfg.per_image} = "
                         f"{n_contents * cfg.per_image:,} outputs, more than one job plans "
                         f"({MAX_ITEMS:,}); split the work into several jobs")


def _identity(value: str | None) -> str | None:
    """A weights/model argument as recorded: names as they are, files by their content hash."""
    if value is None or str(value).lower() in ("imagenet", "none", "resnet50"):
        return None if value is None else str(value).lower()
    if Path(value).is_dir() and (Path(value) / "model.keras").is_file():  # a classifier run:
        value = Path(value) / "model.keras"  # its model, not its checkpoints and logs
    return "sha256:" + path_digest(value)


def item_settings(cfg: AugmentConfig) -> dict:
    """Every setting that changes the bytes of one output (enters each item's fingerprint)."""
    s = {"method": cfg.method, "size": cfg.size, "seed": cfg.seed, "crop": cfg.crop,
         "fit": cfg.fit, "srad": cfg.srad}
    if cfg.srad or cfg.method == "srad":
        s["srad_scale"] = cfg.srad_scale
    if cfg.method == "nst":
        from ..nst.losses.config import StyleLossConfig
        from .methods import relevance_weights

        s.update(n_styles=cfg.n_styles, iterations=cfg.iterations, batch_size=cfg.batch_size,
                 backbone=cfg.backbone, weights=_identity(cfg.weights), relevance=cfg.relevance,
                 # the thin-layer rule decides which style layers the loss uses (docs/losses.md)
                 style_min_positions_per_channel=StyleLossConfig().min_positions_per_channel)
        if cfg.relevance:
            s.update(relevance_model=_identity(cfg.relevance_model),
                     relevance_weights=_identity(relevance_weights(cfg)),
                     relevance_rule=cfg.relevance_rule,
                     relevance_preprocess=cfg.relevance_preprocess)
    if cfg.method == "stylizer":  # the network's bytes; the batch as for nst (rounding)
        s.update(model=_identity(cfg.model), batch_size=cfg.batch_size)
    if cfg.method == "gan":  # the generators' bytes (not the run's logs); batch: rounding
        from ..models.gan.registry import run_digest

        s.update(model="sha256:" + run_digest(cfg.model), batch_size=cfg.batch_size)
    return s


def run_settings(cfg: AugmentConfig) -> dict:
    """:func:`item_settings` plus what decides which outputs exist (compared with run.json)."""
    def where(p):
        return None if p is None else os.fspath(Path(p).resolve())

    s = {**item_settings(cfg), "per_image": cfg.per_image, "content": where(cfg.content),
         "styles": where(cfg.styles)}
    if cfg.method == "nst":  # which references an item may draw (None: the --styles folder)
        s["style_pool"] = cfg.style_pool if cfg.styles is None else None
    return s
