"""The ``gan`` sub-command of ``python -m tf_usaug.evaluate``: options -> GanMetricsConfig.

    python -m tf_usaug.evaluate gan --real test/ --fake samples/ --out runs/gan_metrics
    python -m tf_usaug.evaluate gan --real test/ --fake samples/ --features runs/cls  # task CNN
    python -m tf_usaug.evaluate gan --real a/ --fake b/ --features pixels --metrics fid,kid
"""
from __future__ import annotations

import argparse
import shlex
from typing import Sequence

from ...cli import non_empty_path
from .config import METRICS, GanMetricsConfig

HELP = ("generative metrics of a folder of generated images against real ones: FID, KID, "
        "MMD, 1-NN accuracy, MS-SSIM diversity, SSIM, JS distance of grey histograms")


def add_arguments(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--real", type=non_empty_path, required=True,
      help="real images: flat or BUSI folder, or CSV (*_mask files are skipped)")
    a("--fake", type=non_empty_path, required=True, help="generated images (same layouts)")
    a("--out", type=non_empty_path, help="write OUT/metrics.json and OUT/metrics.md")
    a("--features", default="inception",
      help="feature space of FID/KID/MMD/1-NN: inception (default; ImageNet pool3, 2048-d), "
           "pixels, a classifier run folder (RUN from train classifier) or a Keras model file")
    a("--weights", default="imagenet",
      help="InceptionV3 weights: imagenet (from the Keras cache, never downloaded), none "
           "(random, tests only) or a .h5 file")
    a("--layer", help="feature layer of a classifier run or Keras model (default: penultimate)")
    a("--input-range", dest="input_range", default="unit", choices=("unit", "signed", "255"),
      help="values a Keras model file takes: [0,1] (default), [-1,1] or [0,255]")
    a("--pixel-size", dest="pixel_size", type=int, default=32,
      help="side of the pixels features (default 32)")
    a("--size", type=int, help="side images are resized to for MS-SSIM and SSIM (default: the "
                               "first fake image's shape)")
    a("--metrics", default=",".join(METRICS),
      help=f"comma-separated subset of {','.join(METRICS)} (default: all)")
    a("--repeats", type=int, default=10, help="MMD / 1-NN tests (default 10, paper 003)")
    a("--sample", type=int, default=100,
      help="images per set and MMD / 1-NN test (default 100, paper 003)")
    a("--mmd-sigma", dest="mmd_sigma", type=float, default=1.0,
      help="Gaussian MMD bandwidth factor (default 1, Xu et al. 2018)")
    a("--diversity-repeats", dest="diversity_repeats", type=int, default=10,
      help="MS-SSIM diversity tests (default 10, paper 003)")
    a("--diversity-sample", dest="diversity_sample", type=int, default=32,
      help="images per MS-SSIM test, all pairs (default 32, paper 003)")
    a("--kid-subsets", dest="kid_subsets", type=int, default=100, help="default 100")
    a("--kid-subset-size", dest="kid_subset_size", type=int, default=1000,
      help="default 1000 (smaller sets: all images)")
    a("--ssim-pairs", dest="ssim_pairs", type=int, default=1000,
      help="at most this many real-fake pairs for SSIM (default 1000)")
    a("--bins", type=int, default=256, help="grey histogram bins (default 256)")
    a("--seed", type=int, default=0, help="subsets, tests and pairs (default 0)")
    a("--batch-size", dest="batch_size", type=int, default=32,
      help="images per feature-network call (default 32)")
    a("--threads", type=int, help="CPU threads (default: all)")
    a("--verbose", action="store_true", help="TensorFlow logs and tracebacks")


def config_from_args(args: argparse.Namespace, argv: Sequence[str] = ()) -> GanMetricsConfig:
    values = {k: v for k, v in vars(args).items() if k != "evaluation"}
    values["metrics"] = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    return GanMetricsConfig(**values, command=shlex.join(["python", "-m", "tf_usaug.evaluate",
                                                          *argv]))


def run(cfg: GanMetricsConfig) -> dict:
    from ... import log
    from .job import evaluate_gan

    log.setup(cfg.verbose)
    return evaluate_gan(cfg)
