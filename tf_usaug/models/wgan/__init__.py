"""The improved alpha-WGAN-GP of paper 003 (Liang & Chen): an auto-encoding WGAN-GP in 2-D
with an instance-norm critic, trained data-parallel with Horovod; its generator multiplies a
small set of originals (``augment --method gan``).

    config.py         WganConfig (paper 003 values, Kwon et al.'s where it is silent)
    networks.py       build_generator, build_critic, build_encoder, build_code_critic
    losses.py         eq. 3 as pure functions, both gradient penalties
    training_loop.py  train_wgan(cfg) -> WganResult: CD, E, D, G once per iteration
    run_files.py      load_sampler (registered as "wgan" in models.gan.registry)
    arguments.py      the ``python -m tf_usaug.train wgan`` options

Notebook use::

    from tf_usaug.models.wgan import WganConfig, train_wgan
    from tf_usaug.models.gan import load_gan_run, generate
    train_wgan(WganConfig(data="busi/", out="runs/wgan", size=64, steps=2000, per_class=True))
    images = generate(load_gan_run("runs/wgan"), 8, seed=0, label="benign")

Command line: ``python -m tf_usaug.train wgan --data DIR --out RUN`` (docs/gan.md).
Importing this package does not import TensorFlow.
"""
from ..gan.registry import register_generator_loader
from .config import WganConfig, check_config
from .run_files import load_sampler
from .training_loop import WganResult, train_wgan

register_generator_loader("wgan", load_sampler)

__all__ = ["WganConfig", "check_config", "WganResult", "train_wgan", "load_sampler"]
