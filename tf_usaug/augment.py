"""``python -m tf_usaug.augment``: multiply a folder of ultrasound images into a labelled set.

    python -m tf_usaug.augment                       # the bundled demo data -> ./usaug_out/
    python -m tf_usaug.augment --content BUSI/ --styles other_scanner/ --out aug/ --per-image 5
    horovodrun -np 8 python -m tf_usaug.augment ...  # same outputs, eight ranks

A thin front end: the job itself is :func:`tf_usaug.pipeline.job.run`.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Sequence

from .cli import ArgumentParser, entry_point, non_empty_path
from .data.fit import FITS
from .pipeline.config import METHODS, PRESETS, STYLE_POOLS, AugmentConfig
from .pipeline.inputs import CROPS
from .pipeline.job import run
from .xai.relevance import PREPROCESS_MODES


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m tf_usaug.augment",
        description="Augment ultrasound images (NST with MMD + multi-reference style loss and "
                    "LRP-weighted content loss; traditional; SRAD). Without --content it runs "
                    "the 'demo' preset on the bundled demo data.",
        epilog="presets (explicit flags override them): paper = the AugmentConfig defaults "
               "(224 px, 1000 iterations, ImageNet weights, 5 outputs per image, 3 style "
               "references); demo = " + ", ".join(f"{k}={v}" for k, v in PRESETS["demo"].items()
                                                  if k != "content")
               + " on the bundled demo data. All defaults: python -m tf_usaug.config",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--preset", choices=sorted(PRESETS), default=None,
      help="named settings; default 'demo' without --content, else 'paper'")
    a("--demo", action="store_true", help="shorthand for --preset demo")
    a("--content", type=Path, help="content images: BUSI folder, flat folder or CSV")
    a("--styles", type=Path, help="style references (default: the content set)")
    a("--style-pool", dest="style_pool", choices=STYLE_POOLS,
      help="without --styles: draw an output's references from the content images of its own "
           "label (same-label, default) or from all of them (any)")
    a("--out", type=non_empty_path, help="output folder (default usaug_out)")
    a("--method", choices=METHODS, help="augmentation method (default nst)")
    a("--model", type=non_empty_path, metavar="RUN",
      help="--method stylizer / gan: the run folder of python -m tf_usaug.train stylizer / "
           "wgan / stylegan2")
    a("--per-image", type=int, dest="per_image", help="outputs per content image")
    a("--size", type=int, help="working resolution (square side)")
    a("--seed", type=int, help="global seed")
    a("--srad", dest="srad", action="store_true", default=None, help="SRAD-filter outputs")
    a("--no-srad", dest="srad", action="store_false", help="do not SRAD-filter outputs")
    a("--srad-scale", type=int, dest="srad_scale", help="SRAD scale used to filter outputs")
    a("--n-styles", type=int, dest="n_styles", help="style references per output")
    a("--iterations", type=int, help="NST iterations (paper: 1000)")
    a("--batch-size", type=int, dest="batch_size", help="images optimised at once")
    a("--backbone", choices=("resnet50", "vgg19"), help="NST feature extractor")
    a("--weights", help="backbone weights: imagenet, PATH to .h5, or none")
    a("--no-relevance", dest="relevance", action="store_false", default=None,
      help="plain content loss (no LRP weighting)")
    a("--relevance-model", dest="relevance_model", help="classifier explained: RUN (a folder of python -m tf_usaug.train "
      "classifier: its model, input mode and size), a Keras model file, or resnet50")
    a("--relevance-weights", dest="relevance_weights",
      help="weights of the relevance classifier (default: --weights if imagenet/none)")
    a("--relevance-rule", dest="relevance_rule", help="iNNvestigate rule, e.g. lrp.epsilon")
    a("--relevance-preprocess", dest="relevance_preprocess", choices=PREPROCESS_MODES,
      help="grey [0,1] -> classifier input (default caffe, ResNet50's; unit for a "
           "one-channel classifier on [0,1] images)")
    a("--cache", type=Path, help="relevance cache folder (default OUT/cache)")
    a("--crop", choices=CROPS, help="auto: work on each image's scan region (screenshots: "
      "drop text, rulers, grey bars; DICOM: its ultrasound regions); none: the whole frame "
      "(default auto)")
    a("--fit", choices=FITS, help="region -> working square: pad (letterbox; outputs keep the "
      "region's aspect ratio), crop (centred square) or stretch (default pad)")
    a("--skip-bad", dest="skip_bad", action="store_true", default=None,
      help="go on without unusable input files; they are listed in summary.json")
    a("--no-report", dest="report", action="store_false", default=None,
      help="do not write OUT/index.html")
    a("--overwrite", action="store_true", default=None,
      help="rerun into an --out made with other settings: regenerate what does not match, "
           "remove what no longer belongs (without it such a rerun is refused)")
    a("--threads", type=int, help="CPU threads per rank (default cores / local ranks)")
    a("--no-progress", dest="progress", action="store_false", default=None)
    a("--verbose", action="store_true", default=None, help="show TensorFlow logs and details")
    return p


def config_from_args(argv: Sequence[str] | None = None) -> AugmentConfig:
    args = build_parser().parse_args(argv)
    preset = "demo" if args.demo else args.preset
    if preset is None:
        preset = "paper" if args.content is not None else "demo"
    values = dict(PRESETS[preset])
    for f in dataclasses.fields(AugmentConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    return AugmentConfig(**values)


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    run(config_from_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
