"""The ``stylizer`` sub-command of ``python -m tf_usaug.train``: its options, how they become a
:class:`StylizerConfig`, and the library call (registered in ``tf_usaug.train.TRAINERS``).

    python -m tf_usaug.train stylizer --styles scanner_b/ --content busi/ --out runs/sty
    python -m tf_usaug.train stylizer --styles tf_usaug/demo_data --size 64 --steps 300 \\
        --weights none --out runs/demo_sty                                    # CPU demo
"""
from __future__ import annotations

import argparse

from ...cli import non_empty_path
from .config import BACKBONES, CROPS, STYLE_AVERAGES, StylizerConfig

HELP = ("the feed-forward stylizer (Johnson et al. transform network with paper 001's noise "
        "injection) trained with the NST losses: model.keras for augment --method stylizer")


def add_arguments(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--styles", type=non_empty_path, required=True,
      help="style images (folder, CSV or file): the look the network learns")
    a("--content", type=non_empty_path,
      help="training contents, BUSI or flat folder or CSV (default: the bundled demo data)")
    a("--out", type=non_empty_path, required=True, help="run folder")
    a("--size", type=int, help="training side in pixels, a multiple of 4 (default 256)")
    a("--steps", type=int, help="optimisation steps (default 40000, Johnson et al.)")
    a("--batch-size", type=int, dest="batch_size",
      help="global batch, split over the Horovod ranks (default 4)")
    a("--lr", type=float, dest="learning_rate", help="Adam learning rate (default 1e-3)")
    a("--content-weight", type=float, dest="content_weight", help="alpha (default 1)")
    a("--style-weight", type=float, dest="style_weight", help="beta (default 1)")
    a("--tv-weight", type=float, dest="tv_weight",
      help="total-variation weight (default 0: paper 001 drops it)")
    a("--n-styles", type=int, dest="n_styles",
      help="references drawn per content image and step (default 3)")
    a("--style-average", choices=STYLE_AVERAGES, dest="style_average",
      help="how the references combine (paper 001 sec. 3.2; default none: pooled)")
    a("--backbone", choices=BACKBONES, help="loss network (default resnet50)")
    a("--weights", help="loss network weights: imagenet (default), none, or a Keras .h5 file")
    a("--content-layer", dest="content_layer",
      help="loss network layer of the content loss (default: the NST engine's, "
           "conv4_block6_out for resnet50)")
    a("--relevance-model", type=non_empty_path, dest="relevance_model", metavar="RUN",
      help="classifier run whose LRP relevance weights the content loss")
    a("--relevance-rule", dest="relevance_rule", help="iNNvestigate rule (default "
                                                      "lrp.alpha_2_beta_1)")
    a("--cache", type=non_empty_path, help="relevance cache folder (default RUN/cache)")
    a("--crop", choices=CROPS, help="auto: train on each image's scan region (default); none")
    a("--filters", type=int, nargs=3, metavar=("F0", "F1", "F2"),
      help="channels of the encoder stages (default 32 64 128)")
    a("--residual-blocks", type=int, dest="residual_blocks", help="default 5")
    a("--noise-layers", type=int, dest="noise_layers",
      help="noise injections in the decoder, 0-3 (default 3, paper 001)")
    a("--noise-init", type=float, dest="noise_init", help="initial noise scale (default 0.1)")
    a("--seed", type=int, help="weights, batches, references, noise (default 0)")
    a("--checkpoint-every", type=int, dest="checkpoint_every", help="steps (default 500)")
    a("--log-every", type=int, dest="log_every", help="steps per history row (default 10)")
    a("--eval-images", type=int, dest="eval_images",
      help="contents of the evaluation batch (default 8)")
    a("--no-deterministic", dest="deterministic", action="store_false", default=None,
      help="allow TensorFlow's faster non-deterministic ops (a resumed run then differs a "
           "little from an uninterrupted one)")
    a("--resume", action="store_true", default=None,
      help="continue the run in --out from its last checkpoint (same settings)")
    a("--overwrite", action="store_true", default=None,
      help="start over in an --out that holds a run (needed when the settings differ)")
    a("--threads", type=int, help="CPU threads per rank (default cores / local ranks)")
    a("--verbose", action="store_true", default=None, help="TensorFlow logs and tracebacks")


def config_from_args(args: argparse.Namespace) -> StylizerConfig:
    values = {k: v for k, v in vars(args).items() if k != "job" and v is not None}
    if "filters" in values:
        values["filters"] = tuple(values["filters"])
    return StylizerConfig(**values)


def run(cfg: StylizerConfig):
    from ... import log
    from .training_loop import train_stylizer

    try:
        return train_stylizer(cfg)
    except KeyboardInterrupt:
        log.get().warning("interrupted: the last checkpoint is saved in %s; continue with the "
                          "same command and --resume", cfg.out)
        raise
