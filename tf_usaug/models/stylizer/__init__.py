"""The feed-forward stylizer: Johnson et al.'s image transform network with paper 001's
learnable noise injection, trained with the NST engine's perceptual losses, data-parallel with
Horovod; one network call per output instead of an optimisation.

    config.py         StylizerConfig (paper 001 / Johnson et al. values, ours), check_config
    networks.py       build_transform_net, NoiseInjection (registered Keras layer)
    losses.py         PerceptualLoss: content (LRP-weighted) + MMD/multi-reference style (+ TV)
    data.py           contents and references in memory; every random choice from (seed, step)
    checkpoint.py     StylizerState, save/restore: exact resume
    training_loop.py  train_stylizer(cfg) -> StylizerResult
    run_files.py      the run folder: results, plots, load_stylizer_run, stylize

Notebook use::

    from tf_usaug.models.stylizer import (StylizerConfig, train_stylizer, load_stylizer_run,
                                          stylize)
    train_stylizer(StylizerConfig(styles="scanner_b/", content="busi/", out="runs/sty"))
    outputs = stylize(load_stylizer_run("runs/sty"), images, seed=0)

Command line: ``python -m tf_usaug.train stylizer --styles DIR --out RUN`` (docs/stylizer.md);
augmentation: ``python -m tf_usaug.augment --method stylizer --model RUN``.
Importing this package does not import TensorFlow.
"""
from .config import StylizerConfig, check_config
from .run_files import StylizerRun, check_stylizer_run, load_stylizer_run, stylize
from .training_loop import StylizerResult, train_stylizer

__all__ = ["StylizerConfig", "check_config", "StylizerRun", "check_stylizer_run",
           "load_stylizer_run", "stylize", "StylizerResult", "train_stylizer"]
