"""How other tools sample a trained alpha-WGAN-GP: the loader registered as ``wgan`` in
:mod:`tf_usaug.models.gan.registry` (the run folder itself is the shared one,
:mod:`tf_usaug.models.gan.run_files`).

    run = load_gan_run("runs/wgan")                    # tf_usaug.models.gan
    images = generate(run, 16, seed=0)                 # [16, S, S] in [0, 1]
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import InputError
from ..gan.data import to_unit
from ..gan.grids import seed_latents


def load_sampler(run_dir: Path, info: dict):
    """``sample(seeds, labels) -> [n, S, S]`` in [0, 1] of the run's ``generator.keras``:
    latent ``i`` standard normal from ``seeds[i]``, batch norm in inference mode, so image
    ``i`` depends on its seed (and label) alone."""
    import tensorflow as tf

    path = Path(run_dir) / info.get("generator", "generator.keras")
    try:
        model = tf.keras.models.load_model(str(path), compile=False)
    except (OSError, ValueError, ImportError, TypeError) as exc:
        raise InputError(path, f"cannot load the generator ({str(exc).splitlines()[0]})") \
            from None
    z_dim = int(info["z_dim"])
    n_classes = len(info.get("classes") or []) if info.get("conditional") else 0
    forward = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)

    def sample(seeds: Sequence[int], labels: Sequence[int] | None = None) -> np.ndarray:
        z = seed_latents(seeds, z_dim)
        if n_classes:
            if labels is None:
                raise ValueError("a conditional generator needs one label per seed")
            y = np.zeros((len(seeds), n_classes), np.float32)
            y[np.arange(len(seeds)), np.asarray(labels, int)] = 1.0
            out = forward([z, y])
        else:
            out = forward(z)
        return to_unit(np.asarray(out)[..., 0])

    return sample
