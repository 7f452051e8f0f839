"""The four networks of the improved alpha-WGAN-GP (paper 003 sec. II-A), 2-D, grey.

* Generator G: seven convolutions. Layer 1 is a 4x4 transposed convolution from the latent
  (a 1x1 map) to 4x4; layers 2-7 are 3x3 convolutions, each preceded by a nearest-neighbour
  2x upsampling when it is one of the last ``log2(size / 4)`` layers (Kwon et al.'s
  upsample + convolution); batch norm + ReLU on layers 1-6, tanh on layer 7 (outputs in
  [-1, 1] like the inputs).
* Critic D: seven 4x4 convolutions. The first ``log2(size / 4)`` have stride 2, the others
  stride 1 at 4x4 (at 256 px all six), layer 7 is a 4x4 valid convolution to one number.
  LeakyReLU(0.2) on layers 1-6, instance norm on layers 2-6 (not batch norm: it would couple
  the samples of a batch and change the gradient penalty's objective, Gulrajani et al. 2017).
  Instance norm = ``GroupNormalization(groups=-1)``: per sample and channel over H x W, with
  a learned scale and offset.
* Encoder E: the critic's architecture with batch norm on layers 1-6 instead, layer 7
  giving the ``z_dim`` code.
* Code critic CD: three dense layers, LeakyReLU on the first two.

Channels: ``min(max_channels, width * size / r)`` for a generator layer whose output side is
``r`` (r < size), ``min(max_channels, width * size / (2 r))`` for a critic / encoder layer
with output side ``r``; so at 256 px, width 64: G 512-512-512-512-256-128-1, D 64-128-256-512-
512-512-1. Conditional models (``n_classes > 0``) take a one-hot label: concatenated to the
latent (G) and tiled as constant image channels (D).
"""
from __future__ import annotations

import math

from .config import BASE_SIDE, CONV_LAYERS


def resampling_layers(size: int) -> int:
    """How many of layers 2-7 double (G) or of layers 1-6 halve (D, E) the side."""
    n = int(round(math.log2(size / BASE_SIDE)))
    if BASE_SIDE * 2 ** n != size or not 1 <= n <= CONV_LAYERS - 1:
        raise ValueError(f"size {size} is not 4 * 2**n with 1 <= n <= {CONV_LAYERS - 1}")
    return n


def generator_plan(size: int, width: int, max_channels: int) -> list[tuple[int, bool, int]]:
    """``(output side, upsamples, channels)`` of generator layers 1-7."""
    n_up = resampling_layers(size)
    plan, side = [(BASE_SIDE, False, min(max_channels, width * size // BASE_SIDE))], BASE_SIDE
    for layer in range(2, CONV_LAYERS + 1):
        up = layer > CONV_LAYERS - n_up
        side = side * 2 if up else side
        channels = 1 if layer == CONV_LAYERS else min(max_channels, width * size // side)
        plan.append((side, up, channels))
    return plan


def critic_plan(size: int, width: int, max_channels: int, out_channels: int = 1
                ) -> list[tuple[int, int, int]]:
    """``(output side, stride, channels)`` of critic / encoder layers 1-7."""
    n_down = resampling_layers(size)
    plan, side = [], size
    for layer in range(1, CONV_LAYERS):
        stride = 2 if layer <= n_down else 1
        side //= stride
        plan.append((side, stride, min(max_channels, max(1, width * size // (2 * side)))))
    plan.append((1, 1, out_channels))
    return plan


def build_generator(size: int, z_dim: int, width: int, max_channels: int, n_classes: int = 0,
                    bn_momentum: float = 0.9, seed: int = 0):
    """G: ``z [B, z_dim]`` (and ``label [B, n_classes]`` one-hot) -> ``[B, size, size, 1]``."""
    import tensorflow as tf

    L = tf.keras.layers
    init = _initializer(seed)
    z = L.Input((z_dim,), name="z")
    inputs, x = [z], z
    if n_classes:
        label = L.Input((n_classes,), name="label")
        inputs.append(label)
        x = L.Concatenate(name="z_label")([z, label])
    x = L.Reshape((1, 1, x.shape[-1]), name="z_map")(x)
    for i, (side, up, channels) in enumerate(generator_plan(size, width, max_channels), 1):
        if i == 1:
            x = L.Conv2DTranspose(channels, 4, strides=1, padding="valid", use_bias=False,
                                  kernel_initializer=init(i), name="conv1")(x)
        else:
            if up:
                x = L.UpSampling2D(2, interpolation="nearest", name=f"up{i}")(x)
            x = L.Conv2D(channels, 3, padding="same", use_bias=i == CONV_LAYERS,
                         kernel_initializer=init(i), name=f"conv{i}")(x)
        if i < CONV_LAYERS:
            x = L.BatchNormalization(momentum=bn_momentum, epsilon=1e-5, name=f"bn{i}")(x)
            x = L.ReLU(name=f"relu{i}")(x)
    x = L.Activation("tanh", name="tanh")(x)
    return tf.keras.Model(inputs, x, name="generator")


def _conv_stack(x, size: int, width: int, max_channels: int, out_channels: int, norm: str,
                slope: float, bn_momentum: float, init):
    import tensorflow as tf

    L = tf.keras.layers
    for i, (_, stride, channels) in enumerate(critic_plan(size, width, max_channels,
                                                          out_channels), 1):
        last = i == CONV_LAYERS
        x = L.Conv2D(channels, 4, strides=stride, padding="valid" if last else "same",
                     use_bias=last or norm == "none" or (norm == "instance" and i == 1),
                     kernel_initializer=init(i), name=f"conv{i}")(x)
        if last:
            break
        if norm == "instance" and i >= 2:
            x = L.GroupNormalization(groups=-1, epsilon=1e-5, name=f"in{i}")(x)
        elif norm == "batch":
            x = L.BatchNormalization(momentum=bn_momentum, epsilon=1e-5, name=f"bn{i}")(x)
        x = L.LeakyReLU(slope, name=f"lrelu{i}")(x)
    return L.Flatten(name="flat")(x)


def build_critic(size: int, width: int, max_channels: int, n_classes: int = 0,
                 slope: float = 0.2, seed: int = 0):
    """D: ``[B, size, size, 1]`` (and a one-hot label) -> ``[B, 1]`` (no sigmoid)."""
    import tensorflow as tf

    L = tf.keras.layers
    image = L.Input((size, size, 1), name="image")
    inputs, x = [image], image
    if n_classes:
        label = L.Input((n_classes,), name="label")
        inputs.append(label)
        maps = L.Reshape((1, 1, n_classes), name="label_map")(label)
        maps = L.UpSampling2D(size, name="label_tile")(maps)
        x = L.Concatenate(name="image_label")([image, maps])
    out = _conv_stack(x, size, width, max_channels, 1, "instance", slope, 0.9,
                      _initializer(seed + 1))
    return tf.keras.Model(inputs, out, name="critic")


def build_encoder(size: int, z_dim: int, width: int, max_channels: int, slope: float = 0.2,
                  bn_momentum: float = 0.9, seed: int = 0):
    """E: ``[B, size, size, 1]`` -> ``z [B, z_dim]`` (the critic with batch norm on 1-6)."""
    import tensorflow as tf

    image = tf.keras.layers.Input((size, size, 1), name="image")
    out = _conv_stack(image, size, width, max_channels, z_dim, "batch", slope, bn_momentum,
                      _initializer(seed + 2))
    return tf.keras.Model(image, out, name="encoder")


def build_code_critic(z_dim: int, units: int, slope: float = 0.2, seed: int = 0):
    """CD: ``z [B, z_dim]`` -> ``[B, 1]``; dense, LeakyReLU, dense, LeakyReLU, dense."""
    import tensorflow as tf

    L = tf.keras.layers
    init = _initializer(seed + 3)
    z = L.Input((z_dim,), name="z")
    x = L.LeakyReLU(slope, name="lrelu1")(L.Dense(units, kernel_initializer=init(1),
                                                   name="dense1")(z))
    x = L.LeakyReLU(slope, name="lrelu2")(L.Dense(units, kernel_initializer=init(2),
                                                   name="dense2")(x))
    out = L.Dense(1, kernel_initializer=init(3), name="dense3")(x)
    return tf.keras.Model(z, out, name="code_critic")


def _initializer(seed: int):
    """Seeded Glorot-uniform kernels, one seed per layer (the same network every run)."""
    import tensorflow as tf

    return lambda layer: tf.keras.initializers.GlorotUniform(seed=int(seed) * 100 + layer)


def build_networks(cfg, n_classes: int = 0) -> dict:
    """``{"generator", "critic", "encoder", "code_critic"}`` of a :class:`WganConfig`."""
    return {
        "generator": build_generator(cfg.size, cfg.z_dim, cfg.width, cfg.max_channels,
                                     n_classes, cfg.bn_momentum, cfg.seed),
        "critic": build_critic(cfg.size, cfg.width, cfg.max_channels, n_classes,
                               cfg.leaky_slope, cfg.seed),
        "encoder": build_encoder(cfg.size, cfg.z_dim, cfg.width, cfg.max_channels,
                                 cfg.leaky_slope, cfg.bn_momentum, cfg.seed),
        "code_critic": build_code_critic(cfg.z_dim, cfg.code_units, cfg.leaky_slope,
                                         cfg.seed),
    }
