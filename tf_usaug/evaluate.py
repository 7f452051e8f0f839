"""``python -m tf_usaug.evaluate <evaluation> ...``: measure what the augmentations are worth.

    python -m tf_usaug.evaluate benefit --data bench/ --train-device A --test-devices A,B \\
        --arms none,traditional,srad,nst,nst-no-lrp --folds 5 --out runs/benefit
    horovodrun -np 8 python -m tf_usaug.evaluate benefit ...      # units sharded over 8 ranks
    python -m tf_usaug.evaluate gan --real test/ --fake samples/ --out runs/gan  # FID, KID ...

A thin front end: each sub-command turns its arguments into its config dataclass and calls
the library (``benefit``: :func:`tf_usaug.evaluation.run_benefit`; docs/benefit.md).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Sequence

from .cli import ArgumentParser, entry_point, non_empty_path
from .evaluation.config import (ARMS, DEFAULT_ARMS, GAN_MODELS, GAN_PRESETS, BenefitConfig,
                                parse_list)
from .evaluation.gan import arguments as _gan
from .models.classifier.config import BACKBONES


def _benefit_arguments(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--data", type=non_empty_path, required=True,
      help="originals of every device: DATA/<device>/<class>/<image> or "
           "DATA/<class>/<device>_<class>_<i>.png")
    a("--out", type=non_empty_path, required=True, help="report folder")
    a("--train-device", required=True, help="device the classifiers are trained on (A)")
    a("--test-devices", help="comma-separated devices to test on (default: all); the "
                             "training device is tested in-domain, the others as unseen")
    a("--arms", default=",".join(DEFAULT_ARMS),
      help=f"comma-separated training-set recipes from {', '.join(ARMS)} (default: all but "
           "gan; none is always trained)")
    a("--folds", type=int, default=5, help="stratified folds by source image (default 5)")
    a("--size", type=int, help="augmentation and classifier size (default: the backbone's)")
    a("--per-image", type=int, default=5, help="augmented images per original (default 5)")
    a("--iterations", type=int, default=1000, help="NST iterations (default 1000, paper 002)")
    a("--epochs", type=int, default=20, help="classifier epochs at most (default 20)")
    a("--backbone", choices=tuple(BACKBONES), default="small",
      help="classifier backbone (default small)")
    a("--nst-weights", default="imagenet",
      help="NST feature extractor weights: imagenet (default), none or a .h5 file")
    a("--n-styles", type=int, default=3, help="style references per NST output (default 3)")
    a("--gan", choices=GAN_MODELS, default="stylegan2",
      help="the gan arm's model, one per class and fold (default stylegan2: ADA, paper 004)")
    a("--gan-preset", choices=GAN_PRESETS, default="paper",
      help="its network size: paper (default), cpu (the 2-core benchmarks'), tiny (tests)")
    a("--gan-steps", type=int,
      help="its training minibatches (default: the paper's length: wgan 95000, stylegan2 "
           "25000 kimg)")
    a("--style-fraction", type=float, default=0.25,
      help="share of each unseen device held out as the NST style pool, never tested "
           "(default 0.25)")
    a("--seed", type=int, default=0, help="folds, style pool, augmentation, classifiers")
    a("--threads", type=int, help="CPU threads per rank (default cores / local ranks)")
    a("--overwrite", action="store_true",
      help="start over in an --out that holds an evaluation with other settings")
    a("--verbose", action="store_true",
      help="the libraries' stage lines, TensorFlow's log, tracebacks")


def _benefit_config(args: argparse.Namespace, argv: Sequence[str]) -> BenefitConfig:
    return BenefitConfig(
        data=args.data, out=args.out, train_device=args.train_device,
        test_devices=parse_list(args.test_devices, "--test-devices") if args.test_devices
        else (), arms=parse_list(args.arms, "--arms"), folds=args.folds, size=args.size,
        per_image=args.per_image, iterations=args.iterations, epochs=args.epochs,
        backbone=args.backbone, nst_weights=args.nst_weights, n_styles=args.n_styles,
        gan=args.gan, gan_preset=args.gan_preset, gan_steps=args.gan_steps,
        style_fraction=args.style_fraction, seed=args.seed, threads=args.threads,
        overwrite=args.overwrite, verbose=args.verbose,
        command=shlex.join(["python", "-m", "tf_usaug.evaluate", *argv]))


def _multitask_arguments(p: argparse.ArgumentParser) -> None:
    from .evaluation.multitask.config import ROWS

    a = p.add_argument
    a("--data", type=non_empty_path, required=True,
      help="originals with masks of every device: DATA/<device>/<class>/<image>")
    a("--out", type=non_empty_path, required=True, help="report folder")
    a("--train-device", required=True, help="device the network is trained on (A)")
    a("--test-devices", help="comma-separated devices to test on (default: all)")
    a("--rows", default=",".join(ROWS),
      help=f"comma-separated ablation rows from {', '.join(ROWS)} (default: all)")
    a("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    a("--size", type=int, default=64, help="input side, a multiple of 16 (default 64)")
    a("--epochs", type=int, default=30, help="epochs per run (default 30)")
    a("--batch-size", type=int, default=16, help="batch (default 16, paper 000)")
    a("--lr", type=float, default=5e-4, dest="learning_rate",
      help="initial AdamW rate (default 5e-4, paper 000)")
    a("--filters", type=int, nargs=4, default=(16, 32, 64, 128), metavar="F",
      help="encoder channels (default 16 32 64 128)")
    a("--maskaug-warmup", type=int, help="epochs before MaskAug (default epochs / 3)")
    a("--wct-steps", type=int, default=400, help="autoencoder training steps (default 400)")
    a("--test-fraction", type=float, default=0.2, help="share of A tested (default 0.2)")
    a("--style-fraction", type=float, default=0.25,
      help="share of each unseen device held out as references, never tested (0.25)")
    a("--threads", type=int, help="CPU threads")
    a("--overwrite", action="store_true", help="start over")
    a("--verbose", action="store_true", help="TensorFlow's log, tracebacks")


def _multitask_config(args: argparse.Namespace, argv: Sequence[str]):
    from .evaluation.multitask.config import MultitaskEvalConfig

    return MultitaskEvalConfig(
        data=args.data, out=args.out, train_device=args.train_device,
        test_devices=parse_list(args.test_devices, "--test-devices") if args.test_devices
        else (), rows=parse_list(args.rows, "--rows"), seeds=args.seeds, size=args.size,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        filters=tuple(args.filters),
        maskaug_warmup=args.maskaug_warmup, wct_steps=args.wct_steps,
        test_fraction=args.test_fraction, style_fraction=args.style_fraction,
        threads=args.threads, overwrite=args.overwrite, verbose=args.verbose,
        command=shlex.join(["python", "-m", "tf_usaug.evaluate", *argv]))


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m tf_usaug.evaluate",
                       description="Measure what augmentation is worth (units sharded over "
                                   "the ranks under horovodrun). docs/benefit.md")
    sub = p.add_subparsers(dest="evaluation", required=True, metavar="EVALUATION")
    _benefit_arguments(sub.add_parser(
        "benefit", prog="python -m tf_usaug.evaluate benefit",
        help="train the classifier per arm and fold; accuracy, ROC-AUC, F1, sensitivity, "
             "specificity in-domain and on unseen scanners, paired tests, label "
             "preservation, lesion CNR",
        description="Train the task classifier per augmentation arm and fold (same seeds), "
                    "test it on untouched originals of the training device and of unseen "
                    "devices, and write REPORT/report.{json,md,html}."))
    _gan.add_arguments(sub.add_parser("gan", prog="python -m tf_usaug.evaluate gan",
                                      help=_gan.HELP, description=_gan.HELP + ". "
                                      "docs/gan_metrics.md"))
    _multitask_arguments(sub.add_parser(
        "multitask", prog="python -m tf_usaug.evaluate multitask",
        help="paper 000's ablation: the multitask network per augmentation row and seed; "
             "DSC and AUROC on the training device and unseen devices, paired tests",
        description="Train the multitask network on --train-device per row (traditional, "
                    "+MixStyleAug, +FeatAug, +MaskAug, all) and seed, test on untouched "
                    "originals, and write REPORT/report.{json,md,html} (docs/multitask.md)."))
    return p


def config_from_args(argv: Sequence[str] | None = None) -> BenefitConfig:
    """The config of a command line (nothing is checked or read)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.evaluation == "gan":  # GanMetricsConfig (tf_usaug.evaluation.gan)
        return _gan.config_from_args(args, argv)
    if args.evaluation == "multitask":  # MultitaskEvalConfig (tf_usaug.evaluation.multitask)
        return _multitask_config(args, argv)
    return _benefit_config(args, argv)


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    from .evaluation.job import run_benefit

    cfg = config_from_args(argv)
    if isinstance(cfg, _gan.GanMetricsConfig):
        _gan.run(cfg)
        return 0
    if not isinstance(cfg, BenefitConfig):  # the multitask ablation
        from .evaluation.multitask.job import run_multitask_eval

        run_multitask_eval(cfg)
        return 0
    run_benefit(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
