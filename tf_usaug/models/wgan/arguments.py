"""The ``wgan`` sub-command of ``python -m tf_usaug.train``: its options, how they become a
:class:`WganConfig`, and the library call (registered in ``tf_usaug.train.TRAINERS``).

    python -m tf_usaug.train wgan --data busi/ --out runs/wgan --per-class          # paper 003
    python -m tf_usaug.train wgan --data busi/ --out runs/wgan_c --conditional
    python -m tf_usaug.train wgan --data sim64/convex-b --out runs/w64 --size 64 \\
        --width 8 --max-channels 64 --code-units 128 --steps 2000 --threads 1     # CPU
"""
from __future__ import annotations

import argparse

from ..gan.arguments import add_common_arguments, common_values
from .config import WganConfig

HELP = ("the improved alpha-WGAN-GP (paper 003: generator, instance-norm critic, encoder, code "
        "critic; eq. 3 losses): generator.keras for augment --method gan")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, length="steps")
    a = p.add_argument
    a("--lr", type=float, dest="learning_rate", help="Adam learning rate (paper 003: 2e-4)")
    a("--z-dim", type=int, dest="z_dim", help="latent size (paper 003: 256)")
    a("--lambda-gp", type=float, dest="lambda_gp",
      help="lambda1, both gradient penalties (paper 003: 10)")
    a("--lambda-l1", type=float, dest="lambda_l1",
      help="lambda2, the L1 reconstruction loss (paper 003: 10)")
    a("--width", type=int, help="channels at the full side, doubling per halving (default 64)")
    a("--max-channels", type=int, dest="max_channels", help="channel cap (default 512)")
    a("--code-units", type=int, dest="code_units",
      help="hidden units of the code critic (default 750)")
    a("--no-encoder-reconstruction", dest="encoder_reconstruction", action="store_false",
      default=None, help="the encoder minimises eq. 3's L_E only (no L1 / critic terms)")


def config_from_args(args: argparse.Namespace) -> WganConfig:
    return WganConfig(**common_values(args))


def run(cfg: WganConfig):
    from ... import log
    from .training_loop import train_wgan

    try:
        return train_wgan(cfg)
    except KeyboardInterrupt:
        log.get().warning("interrupted: the last checkpoint is saved in %s; continue with the "
                          "same command and --resume", cfg.out)
        raise
