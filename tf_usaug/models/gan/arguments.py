"""Command-line options every GAN trainer shares (``python -m tf_usaug.train wgan|stylegan2``).

    def add_arguments(p):                        # a family's arguments.py
        add_common_arguments(p, length="steps")  # or "kimg"
        p.add_argument("--z-dim", ...)           # the family's own options
    def config_from_args(args):
        return WganConfig(**common_values(args))

Options left out on the command line stay None and do not reach the config, so the config
dataclass's defaults (the papers' values) apply.
"""
from __future__ import annotations

import argparse

from ...cli import non_empty_path
from .data import FITS


def add_common_arguments(p: argparse.ArgumentParser, length: str = "steps") -> None:
    """``--data --out --size --steps|--kimg --batch-size --seed --per-class --conditional
    --fit --grid-every --checkpoint-every --log-every --no-deterministic --resume --overwrite
    --threads --verbose``.

    Args:
        length: "steps" (training iterations) or "kimg" (thousands of real images shown);
            the other one is not offered.
    """
    a = p.add_argument
    a("--data", type=non_empty_path, required=True,
      help="original images: BUSI folder ROOT/<class>/<image> (masks are skipped), flat "
           "folder or CSV")
    a("--out", type=non_empty_path, required=True, help="run folder")
    a("--size", type=int, help="square side in pixels, a power of two (paper default 256)")
    if length == "kimg":
        a("--kimg", type=float, help="train until this many thousand real images are shown")
    else:
        a("--steps", type=int, help="training iterations (each updates every network once)")
    a("--batch-size", type=int, dest="batch_size",
      help="global batch, split over the Horovod ranks")
    a("--seed", type=int, help="weights, batches, latents (default 0)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--per-class", action="store_true", dest="per_class", default=None,
                       help="one model per class in RUN/<class>/ (labels from the folders)")
    group.add_argument("--conditional", action="store_true", default=None,
                       help="one class-conditional model (labels from the folders)")
    a("--fit", choices=FITS, help="how a frame becomes a square: stretch (default), crop "
                                  "(centred square, paper 003) or pad")
    a("--grid-every", type=int, dest="grid_every",
      help="steps between sample-grid PNGs in RUN/grids (0: only at the end)")
    a("--checkpoint-every", type=int, dest="checkpoint_every",
      help="steps between checkpoints (a kill loses at most this many)")
    a("--log-every", type=int, dest="log_every", help="steps per history row")
    a("--no-deterministic", dest="deterministic", action="store_false", default=None,
      help="allow TensorFlow's faster non-deterministic ops (a resumed run then differs a "
           "little from an uninterrupted one)")
    a("--resume", action="store_true", default=None,
      help="continue the run in --out from its last checkpoint (same settings)")
    a("--overwrite", action="store_true", default=None,
      help="start over in an --out that holds a run (needed when the settings differ)")
    a("--threads", type=int, help="CPU threads per rank (default cores / local ranks)")
    a("--verbose", action="store_true", default=None, help="TensorFlow logs and tracebacks")


def common_values(args: argparse.Namespace) -> dict:
    """The options that were given (not None), less the sub-command's name."""
    return {k: v for k, v in vars(args).items() if k != "job" and v is not None}
