"""StyleGAN2 with adaptive discriminator augmentation (ADA) or DiffAugment, paper 004 (Maack
et al. 2022): Karras et al.'s StyleGAN2 for one grey channel, trained on small sets.

    config.py         StyleGAN2Config (StyleGAN2-ADA paper256 values), PRESETS, check_config
    layers.py         equalized dense/conv, modulated conv (demodulation), noise, mbstd
    networks.py       MappingNetwork, SynthesisNetwork, Generator, Discriminator, style mixing
    augment.py        ADA: geometric + colour pipeline at probability p; ada_update (r_t)
    diffaugment.py    DiffAugment: translation (zero padded), cutout, brightness, contrast
    losses.py         non-saturating logistic loss, R1
    steps.py          the compiled G / D / EMA steps
    training_loop.py  train_stylegan2(cfg) -> StyleGAN2Result
    run_files.py      gan.json, the sampler registered for augment --method gan
    arguments.py      the ``stylegan2`` sub-command of python -m tf_usaug.train

Shared with the other GAN family: data, checkpoint, grids, run folder, per-class runs and
the generator registry (``tf_usaug.models.gan``).

Notebook use::

    from tf_usaug.models.stylegan2 import preset_config, train_stylegan2
    train_stylegan2(preset_config("cpu", data="sim/convex-b", out="runs/sg2", size=32,
                                  steps=500))
    from tf_usaug.models.gan import generate
    images = generate("runs/sg2", 16, seed=0)

Command line: ``python -m tf_usaug.train stylegan2 --data DIR --out RUN`` (docs/stylegan2.md).
Importing this package does not import TensorFlow.
"""
from ..gan.registry import register_generator_loader
from .config import PRESETS, StyleGAN2Config, check_config, preset_config


def _load_sampler(run_dir, info):
    from .run_files import load_sampler

    return load_sampler(run_dir, info)


def train_stylegan2(cfg, ctx=None):
    """See :func:`tf_usaug.models.stylegan2.training_loop.train_stylegan2`."""
    from .training_loop import train_stylegan2 as train

    return train(cfg, ctx)


register_generator_loader("stylegan2", _load_sampler)

__all__ = ["PRESETS", "StyleGAN2Config", "check_config", "preset_config", "train_stylegan2"]
