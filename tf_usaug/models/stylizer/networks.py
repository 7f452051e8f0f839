"""The image transform network (Johnson et al. 2016) with learnable noise injection (paper 001).

    image [B, H, W, 1] in [0, 1] ─┐
    noise_seed [B, 2] int32 ──────┼─ encoder: 9x9 conv f0 ─ 3x3/2 conv f1 ─ 3x3/2 conv f2
                                  │  R residual blocks (3x3 conv - IN - ReLU - 3x3 conv - IN, + x)
                                  │  decoder: [noise] ─ up x2 ─ 3x3 conv f1 ─ [noise] ─ IN ─ ReLU
                                  │           up x2 ─ 3x3 conv f0 ─ [noise] ─ IN ─ ReLU
                                  └─          9x9 conv 1 ─ sigmoid -> [B, H, W, 1] in [0, 1]

Every convolution of the encoder and decoder is followed by instance normalisation
(``GroupNormalization(groups=-1)``: one group per channel, Ulyanov et al. 2016) and ReLU;
upsampling is nearest-neighbour resize + convolution, not a transposed convolution, which
avoids checkerboard artefacts (Odena et al. 2016). The output is a sigmoid (Johnson et al.'s
scaled tanh, ``(tanh(x) + 1) / 2 = sigmoid(2x)``, for one grey channel in [0, 1]). Every
convolution is "valid" after :class:`ReflectionPadding` by half its kernel, as Johnson et
al.'s: with zero padding the network learned a frame along the border (docs/stylizer.md).
The saved model holds built-in Keras layers plus the two registered ones here.

Noise injection (paper 001 sec. 3.3, "as similarly presented in StyleGAN"): a
:class:`NoiseInjection` layer adds ``scale_c * n`` to every channel ``c`` of a feature map,
``n`` one standard-normal image ``[B, H, W, 1]`` drawn afresh at every call, ``scale`` a
learned per-channel vector; it acts at training AND inference, so one content gives a
different output per noise draw. The draw is reproducible: the model's second input holds one
stateless seed pair per image (``tf.random.stateless_normal``; each layer folds its own salt
in), so an output depends on its image and its seed only, not on the batch it shares.

Example::

    net = build_transform_net(residual_blocks=2)
    out = net([images, noise_seeds([0, 1, 2])], training=False)   # [3, H, W, 1]
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf
from tensorflow import keras

from .config import SIDE_MULTIPLE

#: Names of the model's two inputs.
IMAGE_INPUT, SEED_INPUT = "image", "noise_seed"


@keras.utils.register_keras_serializable(package="tf_usaug")
class NoiseInjection(keras.layers.Layer):
    """``x + scale * n``: per-channel learned scale, fresh Gaussian noise image per call.

    Args:
        init_scale: initial value of every channel's scale (StyleGAN: 0).
        salt: folded into the seeds, so that layers sharing a seed draw different noise.

    Call with ``x`` (noise from TensorFlow's global random state: fresh, not reproducible) or
    ``[x, seeds]`` with ``seeds`` ``[B, 2]`` int32 (one stateless seed pair per image).

    References:
        Menini 2020 (paper 001), sec. 3.3; Karras, Laine & Aila 2019 (StyleGAN), sec. 3.2.
    """

    def __init__(self, init_scale: float = 0.0, salt: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.init_scale = float(init_scale)
        self.salt = int(salt)

    def build(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and \
            isinstance(input_shape[0], (list, tuple, tf.TensorShape)) else input_shape
        channels = int(tf.TensorShape(shape)[-1])
        self.scale = self.add_weight(name="scale", shape=(channels,), trainable=True,
                                     initializer=keras.initializers.Constant(self.init_scale))
        super().build(input_shape)

    def noise(self, x, seeds=None):
        """The noise image ``[B, H, W, 1]`` for features ``x`` (and seeds)."""
        shape = tf.shape(x)
        if seeds is None:
            return tf.random.normal(tf.stack([shape[0], shape[1], shape[2], 1]), dtype=x.dtype)
        hw1 = tf.stack([shape[1], shape[2], 1])
        salt = tf.constant(self.salt, tf.int32)

        def one(seed):
            seed = tf.random.experimental.stateless_fold_in(seed, salt)
            return tf.random.stateless_normal(hw1, seed=seed, dtype=x.dtype)

        return tf.map_fn(one, tf.cast(seeds, tf.int32),
                         fn_output_signature=tf.TensorSpec([None, None, 1], x.dtype))

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            x, seeds = inputs
        else:
            x, seeds = inputs, None
        return x + tf.stop_gradient(self.noise(x, seeds)) * tf.cast(self.scale, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0] if isinstance(input_shape, (list, tuple)) and \
            isinstance(input_shape[0], (list, tuple, tf.TensorShape)) else input_shape

    def get_config(self):
        return {**super().get_config(), "init_scale": self.init_scale, "salt": self.salt}


@keras.utils.register_keras_serializable(package="tf_usaug")
class ReflectionPadding(keras.layers.Layer):
    """Mirror ``pad`` pixels on each side of ``[B, H, W, C]`` (``tf.pad`` mode REFLECT).

    Johnson et al.'s transform network pads by reflection; with Keras's zero "same" padding
    the network sees where the border is and learned a frame there (measured on the demo
    data: a bright and a dark rim ~8 px inside the edge at every image size).
    """

    def __init__(self, pad: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, x):
        p = self.pad
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        b, h, w, c = tf.TensorShape(input_shape).as_list()
        grow = lambda d: None if d is None else d + 2 * self.pad  # noqa: E731
        return tf.TensorShape([b, grow(h), grow(w), c])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


class _Seeds:
    """Seeded Glorot-uniform initialisers, one per layer, in build order: the same network in
    every process and on every rank for one seed."""

    def __init__(self, seed: int):
        self.seed, self.count = int(seed), 0

    def __call__(self):
        self.count += 1
        return keras.initializers.GlorotUniform(seed=(self.seed * 1009 + self.count) % 2 ** 31)


def _conv(x, filters: int, kernel: int, name: str, init: _Seeds, strides: int = 1,
          bias: bool = False):
    """Reflection padding by ``kernel // 2``, then a "valid" convolution (same side, or half
    of an even side with stride 2)."""
    x = ReflectionPadding(kernel // 2, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, kernel, strides=strides, padding="valid",
                               use_bias=bias, kernel_initializer=init(), name=name)(x)


def _norm_relu(x, name: str, relu: bool = True):
    x = keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, name=f"{name}_in")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def build_transform_net(filters: Sequence[int] = (32, 64, 128), residual_blocks: int = 5,
                        noise_layers: int = 3, noise_init: float = 0.1, seed: int = 0
                        ) -> keras.Model:
    """The image transform network: inputs ``[image, noise_seed]``, output the grey image.

    Args:
        filters: channels of the three encoder stages (Johnson et al.: 32, 64, 128).
        residual_blocks: residual blocks at 1/4 resolution (Johnson et al.: 5).
        noise_layers: noise injections in the decoder, 0-3 (paper 001: 3), fine to coarse.
        noise_init: initial per-channel noise scale.
        seed: the initial weights.

    Returns:
        A Keras model; ``H`` and ``W`` are free but must be multiples of 4
        (:func:`pad_to_multiple`).
    """
    f0, f1, f2 = (int(f) for f in filters)
    init = _Seeds(seed)
    image = keras.Input((None, None, 1), name=IMAGE_INPUT)
    seeds = keras.Input((2,), dtype="int32", name=SEED_INPUT)

    def noise(x, position: int, name: str):
        # position 1 = finest; paper 001 has three, "in the decoding section"
        if noise_layers < position:
            return x
        return NoiseInjection(noise_init, salt=position, name=name)([x, seeds])

    # Encoder: full resolution, then two stride-2 convolutions.
    x = _norm_relu(_conv(image, f0, 9, "enc1", init), "enc1")
    x = _norm_relu(_conv(x, f1, 3, "enc2", init, strides=2), "enc2")
    x = _norm_relu(_conv(x, f2, 3, "enc3", init, strides=2), "enc3")
    # Residual blocks at 1/4 resolution.
    for r in range(int(residual_blocks)):
        y = _norm_relu(_conv(x, f2, 3, f"res{r + 1}a", init), f"res{r + 1}a")
        y = _norm_relu(_conv(y, f2, 3, f"res{r + 1}b", init), f"res{r + 1}b", relu=False)
        x = keras.layers.Add(name=f"res{r + 1}")([x, y])
    # Decoder: noise, then two resize-convolutions (nearest x2 + 3x3 conv), noise after each.
    x = noise(x, 3, "noise3")
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name="up1")(x)
    x = noise(_conv(x, f1, 3, "dec1", init), 2, "noise2")
    x = _norm_relu(x, "dec1")
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name="up2")(x)
    x = noise(_conv(x, f0, 3, "dec2", init), 1, "noise1")
    x = _norm_relu(x, "dec2")
    x = _conv(x, 1, 9, "out", init, bias=True)
    out = keras.layers.Activation("sigmoid", name="grey", dtype="float32")(x)
    return keras.Model([image, seeds], out, name="transform_net")


def noise_layers_of(model: keras.Model) -> list[NoiseInjection]:
    """The model's noise injections (fine to coarse by name)."""
    return sorted((l for l in model.layers if isinstance(l, NoiseInjection)),
                  key=lambda l: l.name)


def noise_seeds(seeds: Sequence[int] | int, count: int | None = None) -> np.ndarray:
    """``[B, 2]`` int32 seed pairs: per-image seeds ``s_i -> (s_i, 0)``; one int ``s`` and a
    ``count`` -> ``(s, i)`` for image ``i`` (image 0 of seed ``s`` equals seed ``[s]``)."""
    if np.ndim(seeds) == 0:
        if count is None:
            raise ValueError("noise_seeds: one seed needs the number of images")
        return np.stack([np.full(count, int(seeds) % 2 ** 31), np.arange(count)],
                        axis=1).astype(np.int32)
    values = [int(s) % 2 ** 31 for s in seeds]
    return np.stack([values, np.zeros(len(values), np.int64)], axis=1).astype(np.int32) \
        if values else np.zeros((0, 2), np.int32)


def pad_to_multiple(images: np.ndarray, multiple: int = SIDE_MULTIPLE
                    ) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad ``[B, H, W]`` at the bottom/right to sides divisible by ``multiple``;
    returns the padded stack and the original ``(H, W)`` to cut back to."""
    images = np.asarray(images, np.float32)
    h, w = images.shape[1:3]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        mode = "reflect" if min(h, w) > max(ph, pw) else "edge"
        images = np.pad(images, ((0, 0), (0, ph), (0, pw)), mode=mode)
    return images, (h, w)
