"""The multitask network's own Keras layers (registered, serialisable): FeatAug (paper 000
eq. 1), 2x2 max-pooling that keeps its argmax indices, and max-unpooling by those indices.

    pooled, indices = MaxPoolWithArgmax()(x)     # indices int64, flat over the batch
    restored = MaxUnpool()([pooled, indices])    # maxima back at their positions, zeros else

The arithmetic is in small functions (:func:`feat_aug`, :func:`max_unpool`) that the tests
compare with numpy.
"""
from __future__ import annotations

import tensorflow as tf
from tensorflow import keras

#: Added to the variance before the square root (instance statistics of flat maps).
STD_EPSILON = 1e-5


def instance_moments(a):
    """Per-image, per-channel mean and standard deviation over H and W: ``[B, 1, 1, C]``."""
    mean, var = tf.nn.moments(a, axes=[1, 2], keepdims=True)
    return mean, tf.sqrt(var + STD_EPSILON)


def feat_aug(a, noise_sigma, noise_mu, apply):
    """Paper 000 eq. 1: ``A' = (A - mu_A) / sigma_A * (sigma_A + n_s) + (mu_A + n_m)``.

    Args:
        a: feature maps ``[B, H, W, C]``.
        noise_sigma / noise_mu: the draws N(mu, sigma) added to the standard deviation and
            to the mean, ``[B, 1, 1, C]``.
        apply: ``[B]`` bool: which images are augmented (the others pass unchanged).

    Returns:
        ``A'`` where ``apply``, else ``A``: each augmented channel's mean becomes
        ``mu_A + n_m`` and its standard deviation ``|sigma_A + n_s|`` (over H, W).
    """
    mean, std = instance_moments(a)
    augmented = (a - mean) / std * (std + noise_sigma) + (mean + noise_mu)
    return tf.where(tf.reshape(apply, [-1, 1, 1, 1]), augmented, a)


@keras.utils.register_keras_serializable(package="tf_usaug")
class FeatAug(keras.layers.Layer):
    """Feature-level style augmentation (paper 000 sec. 2.2, eq. 1), active in training only.

    Each image of a training batch is augmented with probability ``p``; its channels' means
    and standard deviations get independent N(mu, sigma) noise. At inference the layer is
    the identity.

    Randomness is stateless: the draws of call ``k`` come from ``(seed, k)``; ``k`` is a
    non-trainable weight (``calls``), so a checkpoint restores the random stream with the
    weights and a resumed run draws what the uninterrupted one would have.

    Args:
        p: probability per image (paper 000: 0.5).
        mu / sigma: the noise distribution (paper 000: 0, 0.1).
        seed: the layer's stream (give each FeatAug of a network its own).
    """

    def __init__(self, p: float = 0.5, mu: float = 0.0, sigma: float = 0.1, seed: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        self.p, self.mu, self.sigma, self.seed = float(p), float(mu), float(sigma), int(seed)

    def build(self, input_shape):
        self.calls = self.add_weight(name="calls", shape=(), dtype=tf.int64, trainable=False,
                                     initializer="zeros")
        super().build(input_shape)

    def draws(self, a, call):
        """``(noise_sigma, noise_mu, apply)`` of call number ``call`` for features ``a``."""
        shape = tf.shape(a)
        stats = tf.stack([shape[0], 1, 1, shape[3]])
        seed = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(call, tf.int64)])
        seeds = tf.random.experimental.stateless_split(seed, 3)
        normal = lambda s: tf.random.stateless_normal(stats, s, dtype=a.dtype)  # noqa: E731
        noise_sigma = self.mu + self.sigma * normal(seeds[0])
        noise_mu = self.mu + self.sigma * normal(seeds[1])
        apply = tf.random.stateless_uniform([shape[0]], seeds[2]) < self.p
        return noise_sigma, noise_mu, apply

    def call(self, a, training=None):
        if not training:
            return a
        call = self.calls.assign_add(1) - 1
        return feat_aug(a, *self.draws(a, call))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "p": self.p, "mu": self.mu, "sigma": self.sigma,
                "seed": self.seed}


@keras.utils.register_keras_serializable(package="tf_usaug")
class MaxPoolWithArgmax(keras.layers.Layer):
    """2x2 max-pooling, stride 2, returning ``[pooled, indices]``.

    ``indices`` (int64, the shape of ``pooled``) are flat positions in the input tensor,
    batch included: ``((b * H + y) * W + x) * C + c`` (``tf.nn.max_pool_with_argmax`` with
    ``include_batch_in_index=True``). H and W must be even.
    """

    def call(self, x):
        pooled, indices = tf.nn.max_pool_with_argmax(x, ksize=2, strides=2, padding="VALID",
                                                     include_batch_in_index=True)
        return [pooled, tf.stop_gradient(indices)]

    def compute_output_shape(self, input_shape):
        b, h, w, c = tf.TensorShape(input_shape).as_list()
        half = lambda d: None if d is None else d // 2  # noqa: E731
        shape = tf.TensorShape([b, half(h), half(w), c])
        return [shape, shape]


def max_unpool(pooled, indices):
    """Max-unpooling (SegNet): each pooled value goes back to the input position its index
    names, zeros elsewhere; output ``[B, 2h, 2w, C]``.

    Built without a scatter (deterministic on every device): the pooled values and indices
    are repeated 2x2 and each output position keeps its value where the repeated index is
    its own flat position.
    """
    shape = tf.shape(pooled, out_type=tf.int64)
    b, h, w, c = shape[0], 2 * shape[1], 2 * shape[2], shape[3]
    up = lambda t: tf.repeat(tf.repeat(t, 2, axis=1), 2, axis=2)  # noqa: E731
    own = tf.reshape(tf.range(b * h * w * c, dtype=tf.int64), tf.stack([b, h, w, c]))
    values = up(pooled)
    return tf.where(tf.equal(up(indices), own), values, tf.zeros_like(values))


@keras.utils.register_keras_serializable(package="tf_usaug")
class MaxUnpool(keras.layers.Layer):
    """``MaxUnpool()([pooled, indices])``: :func:`max_unpool` as a layer."""

    def call(self, inputs):
        pooled, indices = inputs
        return max_unpool(pooled, indices)

    def compute_output_shape(self, input_shape):
        b, h, w, c = tf.TensorShape(input_shape[0]).as_list()
        double = lambda d: None if d is None else d * 2  # noqa: E731
        return tf.TensorShape([b, double(h), double(w), c])
