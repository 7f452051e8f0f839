"""``python -m tf_usaug.train <model> ...``: train one of tf_usaug's models.

    python -m tf_usaug.train classifier --data busi/ --out runs/r50                 # paper 002
    python -m tf_usaug.train classifier --data busi/ --augmented aug/ --out runs/r50_aug
    python -m tf_usaug.train classifier --data busi/ --out runs/eb2 --backbone efficientnetb2
    python -m tf_usaug.train classifier --data busi/ --out runs/f0 --folds 5 --fold 0   # k-fold
    python -m tf_usaug.train stylizer --styles scanner_b/ --content busi/ --out runs/sty
    python -m tf_usaug.train wgan --data busi/ --out runs/wgan --per-class    # paper 003
    python -m tf_usaug.train stylegan2 --data busi/ --out runs/sg2 --augment ada  # paper 004
    python -m tf_usaug.train multitask --data scanner_a/ --styles refs/ --mixstyle --out runs/mt
    horovodrun -np 8 python -m tf_usaug.train classifier ...                         # 8 ranks

A thin front end: each sub-command turns its arguments into its config dataclass and calls
the library (``classifier``: :func:`tf_usaug.models.classifier.train_classifier`). Further
trainers (multitask, wgan, stylegan2, stylizer) register in :data:`TRAINERS`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, NamedTuple, Sequence

from .cli import ArgumentParser, entry_point, non_empty_path
from .models.classifier.config import BACKBONES, OPTIMIZERS, ClassifierConfig
from .models.multitask import arguments as _multitask
from .models.stylegan2 import arguments as _stylegan2
from .models.stylizer import arguments as _stylizer
from .models.wgan import arguments as _wgan


class Trainer(NamedTuple):
    """One sub-command: its options, how they become a config, and the library call."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    config_from_args: Callable[[argparse.Namespace], object]
    run: Callable[[object], object]


# ----------------------------------------------------------------------------- classifier


def _classifier_arguments(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--data", type=non_empty_path, required=True,
      help="original labelled images: BUSI folder (ROOT/<class>/<image>) or CSV with labels")
    a("--out", type=non_empty_path, required=True, help="run folder")
    a("--augmented", type=non_empty_path, action="append", default=[], metavar="OUT",
      help="augmentation output folder (repeatable): rows whose parent is a training "
           "original join the training split; children of val/test originals are dropped")
    a("--backbone", choices=tuple(BACKBONES), default="resnet50",
      help="resnet50 (paper 002), efficientnetb2 (paper 004) or small (CPU demo)")
    a("--weights", help="imagenet, none, or a Keras .h5 backbone weights file (default: "
                        "imagenet; none for small)")
    a("--size", type=int, help="input side in pixels (default 224 / 256 / 128)")
    a("--epochs", type=int, help="at most this many epochs (paper 002: 20)")
    a("--batch-size", type=int, dest="batch_size",
      help="global batch, split over the Horovod ranks (paper 002: 32)")
    a("--optimizer", choices=OPTIMIZERS, help="default sgd (paper 002); adam for small")
    a("--lr", type=float, dest="learning_rate",
      help="initial learning rate (default 1e-4, paper 002; 1e-3 for small)")
    a("--early-stopping-patience", type=int, dest="early_stopping_patience",
      help="epochs without a lower validation loss before stopping (paper 002: 7)")
    a("--folds", type=int, help="stratified k-fold by source image (paper 004): K folds")
    a("--fold", type=int, help="the test fold I (0-based) of --folds K")
    a("--seed", type=int, help="split, initial weights, batch order, dropout (default 0)")
    a("--no-deterministic", dest="deterministic", action="store_false", default=None,
      help="allow TensorFlow's faster non-deterministic ops (a resumed run then differs a "
           "little from an uninterrupted one)")
    a("--resume", action="store_true", default=None,
      help="continue the run in --out from its last finished epoch (same settings)")
    a("--overwrite", action="store_true", default=None,
      help="start over in an --out that holds a run (needed when the settings differ)")
    a("--threads", type=int, help="CPU threads per rank (default cores / local ranks)")
    a("--verbose", action="store_true", default=None, help="TensorFlow logs and tracebacks")


def _classifier_config(args: argparse.Namespace) -> ClassifierConfig:
    values = {k: v for k, v in vars(args).items() if k != "job" and v is not None}
    values["augmented"] = tuple(args.augmented)
    return ClassifierConfig(**values)


def _train_classifier(cfg: ClassifierConfig):
    from . import log
    from .models.classifier.training_loop import train_classifier

    try:
        return train_classifier(cfg)
    except KeyboardInterrupt:
        log.get().warning("interrupted: the last finished epoch is saved in %s; continue "
                          "with the same command and --resume", cfg.out)
        raise


TRAINERS: dict[str, Trainer] = {
    "classifier": Trainer("the task classifier (ResNet50 / EfficientNetB2 / small CNN): "
                          "metrics.json with accuracy, sensitivity, specificity, precision, "
                          "F1, ROC-AUC", _classifier_arguments, _classifier_config,
                          _train_classifier),
    "stylizer": Trainer(_stylizer.HELP, _stylizer.add_arguments, _stylizer.config_from_args,
                        _stylizer.run),
    "multitask": Trainer(_multitask.HELP, _multitask.add_arguments,
                         _multitask.config_from_args, _multitask.run),
    "wgan": Trainer(_wgan.HELP, _wgan.add_arguments, _wgan.config_from_args, _wgan.run),
    "stylegan2": Trainer(_stylegan2.HELP, _stylegan2.add_arguments,
                         _stylegan2.config_from_args, _stylegan2.run),
}


# ----------------------------------------------------------------------------- the command


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m tf_usaug.train",
                       description="Train a tf_usaug model (data-parallel under horovodrun). "
                                   "All defaults: python -m tf_usaug.config")
    sub = p.add_subparsers(dest="job", required=True, metavar="MODEL")
    for name, trainer in TRAINERS.items():
        trainer.add_arguments(sub.add_parser(name, help=trainer.help, description=trainer.help,
                                             prog=f"python -m tf_usaug.train {name}"))
    return p


def config_from_args(argv: Sequence[str] | None = None):
    """``(trainer name, its config)`` of a command line (nothing is checked or read)."""
    args = build_parser().parse_args(argv)
    return args.job, TRAINERS[args.job].config_from_args(args)


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    job, cfg = config_from_args(argv)
    TRAINERS[job].run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
