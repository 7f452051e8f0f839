"""What a StyleGAN2 run leaves beyond the shared GAN run folder (``tf_usaug.models.gan``),
and how ``augment --method gan`` samples it.

``RUN/generator.keras`` is the EMA generator (the registered layers of ``layers.py`` and
``networks.py``); ``RUN/gan.json`` has ``model: "stylegan2"`` and, under ``extra``, the
architecture, the augmentation and the final ADA p. :func:`load_sampler` is the loader
registered in the GAN registry: image ``i`` is the generator at ``z_i`` drawn from
``seeds[i]`` alone, with noise inputs from ``seeds[i]`` too (truncation psi 1).

Example (a notebook)::

    from tf_usaug.models.gan import generate, load_gan_run
    images = generate(load_gan_run("runs/sg2"), 16, seed=0)   # [16, S, S] in [0, 1]
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..gan.run_files import GanInfo

JOB = "train-stylegan2"
MODEL_TYPE = "stylegan2"


def latents(seeds: Sequence[int], z_dim: int) -> np.ndarray:
    """``[n, z_dim]`` float32: ``z_i`` standard normal from ``seeds[i]`` alone."""
    return np.stack([np.random.default_rng(int(s)).standard_normal(z_dim)
                     for s in seeds]).astype(np.float32) if len(seeds) else \
        np.zeros((0, z_dim), np.float32)


def noise_seed_pairs(seeds: Sequence[int]) -> np.ndarray:
    """``[n, 2]`` int32 stateless seed pairs of the noise inputs, from ``seeds[i]`` alone."""
    pairs = [(int(s) & 0x7FFFFFFF, (int(s) >> 31) & 0x7FFFFFFF) for s in seeds]
    return np.array(pairs, np.int32).reshape(-1, 2)


def gan_info(cfg, data, state, G) -> GanInfo:
    """``RUN/gan.json`` of a finished run."""
    return GanInfo(model=MODEL_TYPE, size=cfg.size, z_dim=cfg.z_dim,
                   conditional=bool(cfg.conditional), classes=list(data.classes),
                   class_filter=None if cfg.class_filter is None else list(cfg.class_filter),
                   steps=state.step, kimg=round(state.kimg, 4),
                   data=str(Path(cfg.data).resolve()), images=len(data), seed=cfg.seed,
                   extra={"w_dim": cfg.w_dim, "mapping_layers": cfg.mapping_layers,
                          "num_ws": int(G.num_ws), "channel_base": cfg.channel_base,
                          "channel_max": cfg.channel_max, "augment": cfg.augment,
                          "ada_p": float(state.extras.get("ada_p", 0.0)),
                          "diffaugment": list(cfg.diffaugment), "preset": cfg.preset,
                          "generator": "EMA generator, outputs in [-1, 1]"})


def load_generator(run_dir: str | Path, info: dict):
    """The saved generator of a run folder (Keras model)."""
    from tensorflow import keras

    from ...errors import InputError
    from . import networks  # noqa: F401  (registers the layers for the loader)

    path = Path(run_dir) / info.get("generator", "generator.keras")
    try:
        return keras.models.load_model(str(path), compile=False)
    except (OSError, ValueError, ImportError, TypeError) as exc:
        raise InputError(path, f"cannot load the generator ({str(exc).splitlines()[0]})") \
            from None


def load_sampler(run_dir: Path, info: dict):
    """The registry's loader: ``sample(seeds, labels) -> [n, S, S]`` float32 in [0, 1]."""
    import tensorflow as tf

    G = load_generator(run_dir, info)
    z_dim = int(info["z_dim"])
    c_dim = len(info.get("classes") or []) if info.get("conditional") else 0
    forward = tf.function(lambda z, c, s: G(z, c, s, training=False), reduce_retracing=True)

    def sample(seeds: Sequence[int], labels: Sequence[int] | None = None) -> np.ndarray:
        z = tf.constant(latents(seeds, z_dim))
        c = tf.one_hot(np.asarray(labels, np.int32), c_dim) if c_dim else None
        images = forward(z, c, tf.constant(noise_seed_pairs(seeds))).numpy()[..., 0]
        return np.clip((images + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)

    return sample
