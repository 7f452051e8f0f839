"""The ``stylegan2`` sub-command of ``python -m tf_usaug.train``: its options, how they become
a :class:`StyleGAN2Config` (a preset, then the options given), and the library call
(registered in ``tf_usaug.train.TRAINERS``).

    python -m tf_usaug.train stylegan2 --data busi/ --out runs/sg2                # paper256
    python -m tf_usaug.train stylegan2 --data busi/ --out runs/sg2 --augment diffaugment
    python -m tf_usaug.train stylegan2 --data sim/convex-b --preset cpu --size 32 \\
        --steps 2000 --out runs/sg2_cpu --threads 1                           # CPU demo
"""
from __future__ import annotations

import argparse

from ..gan.arguments import add_common_arguments, common_values
from .config import ADA_PIPELINES, AUGMENTS, PRESETS, preset_config

HELP = ("StyleGAN2 (mapping network, modulated convolutions, noise, R1) with ADA or "
        "DiffAugment, paper 004: generator.keras for augment --method gan")


def _ops(text: str) -> tuple[str, ...]:
    return tuple(op.strip() for op in text.split(",") if op.strip())


def _target(text: str):
    return None if text.lower() == "none" else float(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, length="kimg")
    a = p.add_argument
    a("--steps", type=int, help="training length in minibatches (wins over --kimg; default "
                                "--kimg 25000)")
    a("--preset", choices=tuple(PRESETS), default="paper256",
      help="starting values: paper256 (StyleGAN2-ADA, paper 004's 256 px), cpu (small "
           "networks, batch 8), tiny (tests); the options below override it")
    a("--augment", choices=AUGMENTS, help="ada (default), diffaugment or none (the baseline)")
    a("--augment-p", type=float, dest="augment_p", help="initial ADA probability (default 0)")
    a("--ada-target", type=_target, dest="ada_target",
      help="r_t target (default 0.6); none keeps --augment-p fixed")
    a("--ada-interval", type=int, dest="ada_interval", help="steps between p updates (4)")
    a("--ada-kimg", type=float, dest="ada_kimg", help="p can go 0 -> 1 in this many kimg (500)")
    a("--ada-pipeline", choices=ADA_PIPELINES, dest="ada_pipeline",
      help="bgc: geometric + brightness/contrast (default), bg: geometric only")
    a("--diffaugment", type=_ops, help="comma-separated DiffAugment ops (default "
                                       "translation,cutout; also brightness, contrast)")
    a("--z-dim", type=int, dest="z_dim", help="latent size (512)")
    a("--w-dim", type=int, dest="w_dim", help="intermediate latent size (512)")
    a("--mapping-layers", type=int, dest="mapping_layers",
      help="FC layers of the mapping network (8)")
    a("--channel-base", type=int, dest="channel_base",
      help="feature maps at side r: min(base / r, max) (16384)")
    a("--channel-max", type=int, dest="channel_max", help="(512)")
    a("--mbstd-group", type=int, dest="mbstd_group", help="minibatch-stddev group (8)")
    a("--style-mixing", type=float, dest="style_mixing", help="mixing probability (0.9)")
    a("--r1-gamma", type=float, dest="r1_gamma", help="R1 weight gamma (1)")
    a("--r1-interval", type=int, dest="r1_interval",
      help="lazy R1 every this many steps (16; 1 = every step)")
    a("--lr", type=float, dest="learning_rate", help="Adam learning rate (0.0025)")
    a("--ema-kimg", type=float, dest="ema_kimg", help="EMA half-life in kimg (20)")
    a("--grid-size", type=int, dest="grid_size", help="samples per grid side (4)")


def config_from_args(args: argparse.Namespace):
    values = common_values(args)
    return preset_config(values.pop("preset", "paper256"), **values)


def run(cfg):
    from ... import log
    from .training_loop import train_stylegan2

    try:
        return train_stylegan2(cfg)
    except KeyboardInterrupt:
        log.get().warning("interrupted: the last checkpoint is saved in %s; continue with the "
                          "same command and --resume", cfg.out)
        raise
