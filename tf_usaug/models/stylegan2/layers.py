"""StyleGAN2's building blocks as serialisable Keras layers, with the maths as pure functions.

* Equalized learning rate (Karras et al. 2018, "Progressive growing", sec. 4.1): weights are
  stored ~ N(0, 1 / lr_multiplier) and scaled at run time by ``lr_multiplier / sqrt(fan_in)``
  (:func:`equalized_gain`), so Adam's per-weight step is the same for every layer whatever its
  fan-in; biases are stored divided by ``lr_multiplier`` and scaled back.
* Weight modulation and demodulation (Karras et al. 2020, "Analyzing and improving the image
  quality of StyleGAN", sec. 2.2, eqs. 1-3): :func:`modulate_weights`, :func:`demodulation`,
  :func:`modulated_conv2d` (grouped convolution, one group per sample, or the equivalent
  scaled-activations form).
* Noise inputs (Karras et al. 2019 sec. 3.2, 2020 Fig. 2): per-pixel Gaussian noise, one
  image per sample and layer, times a learned per-CHANNEL strength initialised at 0 (StyleGAN
  1's per-channel scaling; StyleGAN2-ADA keeps one scalar per layer); drawn statelessly from
  one seed pair per sample, so a sample depends on its own seeds alone.
* Minibatch standard deviation (Karras et al. 2018 sec. 3, StyleGAN2-ADA's MinibatchStdLayer).

Activations are leaky ReLU (slope 0.2) with gain sqrt(2) (:func:`lrelu`), as in StyleGAN2.
Tensors are NHWC.
"""
from __future__ import annotations

import math

import tensorflow as tf
from tensorflow import keras

#: Leaky ReLU slope and the gain that keeps unit variance (StyleGAN2: bias_act 'lrelu').
LRELU_SLOPE, LRELU_GAIN = 0.2, math.sqrt(2.0)


# ----------------------------------------------------------------------------- pure maths


def equalized_gain(fan_in: int, lr_multiplier: float = 1.0) -> float:
    """Run-time weight scale of the equalized learning rate: ``lr_mul / sqrt(fan_in)``
    (Karras et al. 2018 sec. 4.1: ``w_hat = w * c`` with He's constant ``c = 1/sqrt(fan_in)``;
    StyleGAN's mapping network adds the multiplier, Karras et al. 2019 Appendix C)."""
    return float(lr_multiplier) / math.sqrt(int(fan_in))


def lrelu(x, slope: float = LRELU_SLOPE, gain: float = LRELU_GAIN):
    """Leaky ReLU times ``gain`` (sqrt 2 keeps the activations' second moment)."""
    return tf.nn.leaky_relu(x, slope) * gain


def normalize_2nd_moment(x, axis: int = -1, eps: float = 1e-8):
    """``x / sqrt(mean(x^2) + eps)`` along ``axis`` (StyleGAN's pixel norm of z and of the
    label embedding)."""
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=axis, keepdims=True) + eps)


def modulate_weights(weight, styles):
    """Per-sample modulated kernels ``w'_ijk = s_i * w_ijk`` (Karras et al. 2020 eq. 1).

    Args:
        weight: ``[kh, kw, in, out]`` (already scaled by the equalized gain).
        styles: ``[B, in]``.

    Returns:
        ``[B, kh, kw, in, out]``.
    """
    return weight[None] * styles[:, None, None, :, None]


def demodulation(modulated, eps: float = 1e-8):
    """Demodulation coefficients ``sigma_j = sqrt(sum_{i,k} w'_ijk^2 + eps)``, returned as
    ``1 / sigma_j`` of shape ``[B, out]`` (Karras et al. 2020 eqs. 2-3): after multiplying,
    every output channel's kernel has unit L2 norm."""
    return tf.math.rsqrt(tf.reduce_sum(tf.square(modulated), axis=[1, 2, 3]) + eps)


def modulated_conv2d(x, weight, styles, demodulate: bool = True, fused: bool = True,
                     padding: str = "SAME"):
    """The modulated (and demodulated) convolution of StyleGAN2 (Karras et al. 2020 sec. 2.2).

    Args:
        x: ``[B, H, W, in]``.
        weight: ``[kh, kw, in, out]``, the shared kernel (equalized gain applied).
        styles: ``[B, in]``, the per-sample styles ``s`` (affine of ``w``).
        demodulate: divide each output channel by its kernel's norm (eq. 3).
        fused: True: one grouped convolution with each sample's own kernel (the batch folded
            into the channels, ``B`` groups); False: scale the input by ``s``, convolve with
            the shared kernel, scale the output by ``1/sigma`` (equal maths, StyleGAN2-ADA's
            ``fused_modconv=False``; no per-sample kernels in memory).

    Returns:
        ``[B, H, W, out]``.
    """
    batch = tf.shape(x)[0]
    kh, kw, cin, cout = weight.shape
    if not fused:
        y = tf.nn.conv2d(x * styles[:, None, None, :], weight, 1, padding)
        if demodulate:
            dcoefs = tf.math.rsqrt(tf.einsum("hwio,bi->bo", tf.square(weight),
                                             tf.square(styles)) + 1e-8)
            y = y * dcoefs[:, None, None, :]
        return y
    w = modulate_weights(weight, styles)                              # [B, kh, kw, in, out]
    if demodulate:
        w = w * demodulation(w)[:, None, None, None, :]
    # Fold the batch into the channels: input [1, H, W, B*in], kernel [kh, kw, in, B*out].
    h, wd = tf.shape(x)[1], tf.shape(x)[2]
    xg = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, wd, batch * cin])
    wg = tf.reshape(tf.transpose(w, [1, 2, 3, 0, 4]), [kh, kw, cin, batch * cout])
    y = tf.nn.conv2d(xg, wg, 1, padding)                              # [1, H, W, B*out]
    y = tf.reshape(y, [tf.shape(y)[1], tf.shape(y)[2], batch, cout])
    return tf.transpose(y, [2, 0, 1, 3])


def minibatch_stddev(x, group_size: int, num_channels: int = 1):
    """Append the minibatch standard deviation as ``num_channels`` feature maps (Karras et al.
    2018 sec. 3; StyleGAN2-ADA ``MinibatchStdLayer``): per group of ``group_size`` samples
    the std over the group of every feature, averaged over channels (of each channel group)
    and pixels. ``B`` must be a multiple of ``group_size``."""
    b = tf.shape(x)[0]
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    g = min(int(group_size), int(x.shape[0])) if x.shape[0] is not None else int(group_size)
    f = int(num_channels)
    y = tf.reshape(x, [g, -1, h, w, f, c // f])                  # [G, M, H, W, F, c]
    y = y - tf.reduce_mean(y, axis=0)
    y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=0) + 1e-8)     # [M, H, W, F, c]
    y = tf.reduce_mean(y, axis=[1, 2, 4])                        # [M, F]
    y = tf.tile(y[None, :, None, None, :], [g, 1, h, w, 1])      # [G, M, H, W, F]
    y = tf.reshape(y, [b, h, w, f])
    return tf.concat([x, y], axis=-1)


def upsample2x(x):
    """Double the side: bilinear (half-pixel centres), which is the separable [1, 3, 3, 1] / 4
    FIR filter of StyleGAN2's upfirdn2d (edges clamped instead of zero-padded)."""
    shape = tf.shape(x)
    return tf.image.resize(x, [shape[1] * 2, shape[2] * 2], method="bilinear")


def downsample2x(x):
    """Halve the side: 2x2 average pooling (StyleGAN2 low-passes with [1, 3, 3, 1] before
    striding; the box filter is the shorter choice)."""
    return tf.nn.avg_pool2d(x, 2, 2, "VALID")


# ----------------------------------------------------------------------------- layers


def _normal(stddev: float = 1.0):
    return keras.initializers.RandomNormal(0.0, stddev)


@keras.utils.register_keras_serializable(package="tf_usaug.stylegan2")
class EqualizedDense(keras.layers.Layer):
    """Fully connected layer with the equalized learning rate (``lr_multiplier`` for the
    mapping network: 0.01) and optional scaled leaky ReLU.

    Args:
        units: output features.
        lr_multiplier: learning-rate multiplier (weights N(0, 1/lr_mul^2), scaled by
            ``lr_mul / sqrt(fan_in)``).
        bias_init: initial bias (after scaling; the affine layers of the styles use 1).
        activation: "linear" or "lrelu".
    """

    def __init__(self, units: int, lr_multiplier: float = 1.0, bias_init: float = 0.0,
                 activation: str = "linear", **kwargs):
        super().__init__(**kwargs)
        self.units, self.lr_multiplier = int(units), float(lr_multiplier)
        self.bias_init, self.activation = float(bias_init), str(activation)

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.gain = equalized_gain(fan_in, self.lr_multiplier)
        self.kernel = self.add_weight(name="kernel", shape=(fan_in, self.units),
                                      initializer=_normal(1.0 / self.lr_multiplier))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer=keras.
                                    initializers.Constant(self.bias_init / self.lr_multiplier))
        super().build(input_shape)

    def call(self, x):
        y = tf.matmul(x, self.kernel * self.gain) + self.bias * self.lr_multiplier
        return lrelu(y) if self.activation == "lrelu" else y

    def get_config(self):
        return {**super().get_config(), "units": self.units, "lr_multiplier": self.lr_multiplier,
                "bias_init": self.bias_init, "activation": self.activation}


@keras.utils.register_keras_serializable(package="tf_usaug.stylegan2")
class EqualizedConv2D(keras.layers.Layer):
    """Convolution (stride 1, same padding) with the equalized learning rate, optional bias,
    scaled leaky ReLU and 2x down-sampling after it (the discriminator's layers)."""

    def __init__(self, filters: int, kernel_size: int = 3, use_bias: bool = True,
                 activation: str = "lrelu", down: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.use_bias, self.activation, self.down = bool(use_bias), str(activation), bool(down)

    def build(self, input_shape):
        cin = int(input_shape[-1])
        k = self.kernel_size
        self.gain = equalized_gain(cin * k * k)
        self.kernel = self.add_weight(name="kernel", shape=(k, k, cin, self.filters),
                                      initializer=_normal())
        self.bias = self.add_weight(name="bias", shape=(self.filters,),
                                    initializer="zeros") if self.use_bias else None
        super().build(input_shape)

    def call(self, x):
        y = tf.nn.conv2d(x, self.kernel * self.gain, 1, "SAME")
        if self.down:
            y = downsample2x(y)
        if self.bias is not None:
            y = y + self.bias
        return lrelu(y) if self.activation == "lrelu" else y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "use_bias": self.use_bias,
                "activation": self.activation, "down": self.down}


@keras.utils.register_keras_serializable(package="tf_usaug.stylegan2")
class ModulatedConv2D(keras.layers.Layer):
    """A style block's convolution: affine ``A`` of ``w`` gives the styles (bias 1), the
    kernel is modulated (and demodulated), optional 2x up-sampling before it, noise, bias and
    activation after (Karras et al. 2020 Fig. 2c-d).

    Call with ``[x, w]`` or ``[x, w, seeds]`` (``seeds`` ``[B, 2]`` int32: each sample's
    noise image drawn statelessly from its seed pair with this layer's ``salt`` folded in;
    without seeds no noise is added).

    Args:
        filters: output channels.
        kernel_size: 3 for the style blocks, 1 for toRGB.
        demodulate: False for toRGB (StyleGAN2).
        up: bilinear 2x up-sampling before the convolution.
        use_noise: add ``strength_c * n`` with a learned per-channel strength (init 0).
        activation: "lrelu" or "linear" (toRGB).
        fused: grouped-convolution implementation (see :func:`modulated_conv2d`).
        salt: folded into the noise seed (unique per layer).
    """

    def __init__(self, filters: int, kernel_size: int = 3, demodulate: bool = True,
                 up: bool = False, use_noise: bool = True, activation: str = "lrelu",
                 fused: bool = True, salt: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.demodulate, self.up, self.use_noise = bool(demodulate), bool(up), bool(use_noise)
        self.activation, self.fused, self.salt = str(activation), bool(fused), int(salt)

    def build(self, input_shape):
        x_shape = input_shape[0]
        cin = int(x_shape[-1])
        k = self.kernel_size
        self.affine = EqualizedDense(cin, bias_init=1.0, name="affine")
        self.affine.build(input_shape[1])
        self.gain = equalized_gain(cin * k * k)
        self.kernel = self.add_weight(name="kernel", shape=(k, k, cin, self.filters),
                                      initializer=_normal())
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
        self.noise_strength = self.add_weight(name="noise_strength", shape=(self.filters,),
                                              initializer="zeros") if self.use_noise else None
        super().build(input_shape)

    def noise(self, x, seeds):
        """One standard-normal image ``[H, W, 1]`` per sample from its seed pair ``[B, 2]``
        and this layer's salt: a sample's noise does not depend on the batch it is in."""
        hw1 = tf.stack([tf.shape(x)[1], tf.shape(x)[2], 1])
        salt = tf.constant(self.salt, tf.int32)

        def one(seed):
            return tf.random.stateless_normal(
                hw1, tf.random.experimental.stateless_fold_in(seed, salt), dtype=x.dtype)

        return tf.map_fn(one, tf.cast(seeds, tf.int32),
                         fn_output_signature=tf.TensorSpec([None, None, 1], x.dtype))

    def call(self, inputs):
        x, w = inputs[0], inputs[1]
        seeds = inputs[2] if len(inputs) > 2 else None
        styles = self.affine(w)
        # ToRGB: StyleGAN2-ADA scales its styles by 1/sqrt(fan_in) (weight_gain) instead of
        # demodulating; the kernel's equalized gain does the same here.
        if self.up:
            x = upsample2x(x)
        y = modulated_conv2d(x, self.kernel * self.gain, styles, self.demodulate, self.fused)
        if self.noise_strength is not None and seeds is not None:
            y = y + tf.stop_gradient(self.noise(y, seeds)) * self.noise_strength
        y = y + self.bias
        return lrelu(y) if self.activation == "lrelu" else y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "demodulate": self.demodulate,
                "up": self.up, "use_noise": self.use_noise, "activation": self.activation,
                "fused": self.fused, "salt": self.salt}
