"""Settings of the generative-metrics job: :class:`GanMetricsConfig`, checks before any work."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UsageError
from ...metrics.features import BUILTIN_FEATURES, INPUT_RANGES, inception_weights_path

#: Metric names, in report order (``--metrics``).
METRICS: tuple[str, ...] = ("fid", "kid", "mmd", "one_nn", "ms_ssim", "ssim", "js")
#: Metrics computed in a feature space (the others work on the grey images).
FEATURE_METRICS: tuple[str, ...] = ("fid", "kid", "mmd", "one_nn")


@dataclass
class GanMetricsConfig:
    """How real and generated images are compared (``python -m tf_usaug.evaluate gan``).

    Attributes:
        real: the real images (folder: flat or BUSI class sub-folders, or a CSV; ``*_mask``
            files are not images), e.g. the held-out test originals.
        fake: the generated images (same layouts).
        out: folder for ``metrics.json`` and ``metrics.md`` (None: print only).
        features: feature space of FID / KID / MMD / 1-NN: ``inception`` (pool3, 2048-d,
            Heusel et al. 2017), ``pixels``, a classifier run folder or a Keras model file.
        weights: InceptionV3 weights: ``imagenet`` (read from the Keras cache, never
            downloaded), ``none`` (random: tests only) or an ``.h5`` file.
        layer: feature layer of a classifier run / Keras model (default: penultimate).
        input_range: value range a Keras model file takes (``unit``, ``signed``, ``255``).
        pixel_size: side of the ``pixels`` features (32: 1024-d).
        size: side the grey images are resized to for MS-SSIM and SSIM (None: the first fake
            image's shape; images of that shape are used as they are).
        metrics: which metrics to compute (:data:`METRICS`).
        repeats, sample: paper 003's protocol for MMD and 1-NN: 10 tests of 100 random images
            from each set.
        mmd_sigma: Gaussian-kernel bandwidth factor of the MMD (Xu et al. 2018: 1).
        diversity_repeats, diversity_sample: paper 003's MS-SSIM: 10 tests of 32 images.
        kid_subsets, kid_subset_size: Binkowski et al. 2018: 100 subsets of 1000.
        ssim_pairs: at most this many (real, fake) pairs for the mean SSIM (paper 004).
        bins: grey-histogram bins of the JS distance (256, paper 004).
        seed: every random draw (subsets, tests, pairs).
        batch_size: images per feature-network call.
        threads: CPU threads (default: all).
        verbose: TensorFlow's log and tracebacks.
        command: the command line, recorded in ``metrics.json``.
    """

    real: Path
    fake: Path
    out: Path | None = None
    features: str = "inception"
    weights: str = "imagenet"
    layer: str | None = None
    input_range: str = "unit"
    pixel_size: int = 32
    size: int | None = None
    metrics: tuple[str, ...] = METRICS
    repeats: int = 10
    sample: int = 100
    mmd_sigma: float = 1.0
    diversity_repeats: int = 10
    diversity_sample: int = 32
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    ssim_pairs: int = 1000
    bins: int = 256
    seed: int = 0
    batch_size: int = 32
    threads: int | None = None
    verbose: bool = False
    command: str | None = field(default=None, compare=False)


def check_config(cfg: GanMetricsConfig) -> None:
    """Ranges, choices and the Inception weights file, before any image is read
    (:class:`UsageError` naming the option, :class:`BackboneError` for missing weights)."""
    unknown = [m for m in cfg.metrics if m not in METRICS]
    if unknown or not cfg.metrics:
        raise UsageError(f"--metrics: unknown {', '.join(unknown) or '(none given)'}; choose "
                         f"from {', '.join(METRICS)}")
    positive = {"--repeats": cfg.repeats, "--sample": cfg.sample,
                "--diversity-repeats": cfg.diversity_repeats, "--kid-subsets": cfg.kid_subsets,
                "--ssim-pairs": cfg.ssim_pairs, "--bins": cfg.bins,
                "--batch-size": cfg.batch_size, "--pixel-size": cfg.pixel_size}
    for option, value in positive.items():
        if int(value) < 1:
            raise UsageError(f"{option} must be >= 1, got {value}")
    for option, value in {"--diversity-sample": cfg.diversity_sample,
                          "--kid-subset-size": cfg.kid_subset_size}.items():
        if int(value) < 2:
            raise UsageError(f"{option} must be >= 2, got {value}")
    if not cfg.mmd_sigma > 0:
        raise UsageError(f"--mmd-sigma must be > 0, got {cfg.mmd_sigma}")
    if cfg.size is not None and cfg.size < 11 and {"ms_ssim", "ssim"} & set(cfg.metrics):
        raise UsageError(f"--size {cfg.size}: MS-SSIM and SSIM need images of at least 11 px "
                         "(the 11x11 Gaussian window)")
    if cfg.threads is not None and cfg.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {cfg.threads}")
    if cfg.input_range not in INPUT_RANGES:
        raise UsageError(f"--input-range must be one of {', '.join(INPUT_RANGES)}")
    if str(cfg.features) not in BUILTIN_FEATURES and not Path(cfg.features).exists():
        raise UsageError(f"--features {cfg.features}: not {' or '.join(BUILTIN_FEATURES)} and "
                         "no such file or folder")
    if cfg.features == "inception" and set(FEATURE_METRICS) & set(cfg.metrics):
        inception_weights_path(cfg.weights)  # missing weights: fail before reading images
    if cfg.out is not None and Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise UsageError(f"--out {cfg.out}: exists and is not a folder")
