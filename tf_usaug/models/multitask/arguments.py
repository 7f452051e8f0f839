"""The ``multitask`` sub-command of ``python -m tf_usaug.train``: its options, how they become
a :class:`MultitaskConfig`, and the library call (registered in ``tf_usaug.train.TRAINERS``).

    python -m tf_usaug.train multitask --data scanner_a/ --out runs/mt              # paper 000
    python -m tf_usaug.train multitask --data scanner_a/ --styles refs/ --mixstyle \\
        --feataug --maskaug --out runs/mt_all
    python -m tf_usaug.train multitask --data tf_usaug/demo_data --size 32 --epochs 2 \\
        --filters 4 8 16 32 --out runs/demo_mt                                  # CPU demo
"""
from __future__ import annotations

import argparse

from ...cli import non_empty_path
from .config import MultitaskConfig

HELP = ("paper 000's multitask segmentation + classification network (4 encoders, 4 "
        "decoders with max-unpooling, classification head) with FeatAug, MixStyleAug, MaskAug")


def add_arguments(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--data", type=non_empty_path, required=True,
      help="labelled originals with <name>_mask.png masks (BUSI folder or CSV), two classes")
    a("--out", type=non_empty_path, required=True, help="run folder")
    a("--styles", type=non_empty_path,
      help="reference images of other sources (MixStyleAug, MaskAug)")
    a("--size", type=int, help="input side, a multiple of 16 (default 224)")
    a("--epochs", type=int, help="epochs (default 300, paper 000)")
    a("--batch-size", type=int, dest="batch_size",
      help="global batch, split over the Horovod ranks (default 16)")
    a("--lr", type=float, dest="learning_rate", help="initial AdamW rate (default 5e-4)")
    a("--min-lr", type=float, dest="min_learning_rate", help="cosine floor (default 1e-6)")
    a("--weight-decay", type=float, dest="weight_decay", help="AdamW decay (default 0.01)")
    a("--val-fraction", type=float, dest="val_fraction", help="validation share (default 0.2)")
    a("--filters", type=int, nargs=4, metavar=("F1", "F2", "F3", "F4"),
      help="channels of the four encoders (default 64 128 256 512)")
    a("--head-channels", type=int, dest="head_channels", help="classification head (128)")
    a("--no-traditional", dest="traditional", action="store_false", default=None,
      help="no rotation / translation / zoom / elastic deformation")
    a("--feataug", action="store_true", default=None, help="FeatAug (eq. 1) in the encoders")
    a("--feataug-p", type=float, dest="feataug_p", help="FeatAug probability (default 0.5)")
    a("--feataug-sigma", type=float, dest="feataug_sigma", help="FeatAug noise sd (0.1)")
    a("--mixstyle", action="store_true", default=None,
      help="MixStyleAug: WCT to a random --styles reference, AugMix-mixed")
    a("--mixstyle-alpha", type=float, dest="mixstyle_alpha", help="Beta(a, a) mix (default 1)")
    a("--maskaug", action="store_true", default=None,
      help="MaskAug: predicted lesion regions restyled to a reference's region")
    a("--maskaug-warmup", type=int, dest="maskaug_warmup",
      help="epochs before MaskAug starts (default epochs / 3)")
    a("--maskaug-p", type=float, dest="maskaug_p", help="MaskAug probability (default 0.5)")
    a("--wct-channels", type=int, dest="wct_channels", help="autoencoder channels (16)")
    a("--wct-steps", type=int, dest="wct_steps", help="autoencoder training steps (400)")
    a("--seed", type=int, help="split, weights, augmentation, batch order (default 0)")
    a("--no-deterministic", dest="deterministic", action="store_false", default=None,
      help="allow TensorFlow's faster non-deterministic ops")
    a("--resume", action="store_true", default=None,
      help="continue the run in --out from its last finished epoch (same settings)")
    a("--overwrite", action="store_true", default=None,
      help="start over in an --out that holds a run (needed when the settings differ)")
    a("--threads", type=int, help="CPU threads per rank (default cores / local ranks)")
    a("--verbose", action="store_true", default=None, help="TensorFlow logs and tracebacks")


def config_from_args(args: argparse.Namespace) -> MultitaskConfig:
    values = {k: v for k, v in vars(args).items() if k != "job" and v is not None}
    if "filters" in values:
        values["filters"] = tuple(values["filters"])
    return MultitaskConfig(**values)


def run(cfg: MultitaskConfig):
    from ... import log
    from .training_loop import train_multitask

    try:
        return train_multitask(cfg)
    except KeyboardInterrupt:
        log.get().warning("interrupted: the last finished epoch is saved in %s; continue "
                          "with the same command and --resume", cfg.out)
        raise
