"""StyleGAN2's networks (Karras et al. 2020a, Fig. 2 and 7; StyleGAN2-ADA's ``networks.py``).

    z [B, z_dim] ─ normalise ─┐
    c [B, c_dim] ─ embed ─ normalise ─┴ concat ─ 8 x FC (lr x 0.01, lrelu) ─ w ─┐  mapping
                                                                               broadcast to
    const 4x4 ─ modconv ─ toRGB ─┐                                             num_ws layers
      up ─ modconv ─ modconv ─ toRGB ─ (+ upsampled RGB) ─ ... ─ image [B, S, S, 1]   synthesis
    (each modconv: affine A of its w, modulate + demodulate, noise x learned strength, bias,
     lrelu; "skip" generator: the RGB outputs of every resolution are summed)

    image ─ fromRGB ─ [conv ─ conv/2, + 1x1/2 skip, x sqrt(1/2)] per resolution ─ 4x4:
      minibatch-stddev ─ conv ─ FC ─ FC ─ logit (conditional: projected on cmap(c))  discriminator

Images are one grey channel in [-1, 1] (``img_channels=1`` natively; nothing is replicated
to RGB). The networks are Keras models with ``get_config``; a run saves their weights and
config (``run_files.py``) and :func:`build_networks` rebuilds them.

Example::

    G, D = build_networks(size=16, z_dim=16, w_dim=16, channel_base=64, channel_max=16)
    images = G(tf.random.normal([4, 16]), seeds=tf.zeros([4, 2], tf.int32))  # [4, 16, 16, 1]
    logits = D(images)                                                  # [4, 1]
"""
from __future__ import annotations

import math

import tensorflow as tf
from tensorflow import keras

from .config import channels_at
from .layers import (EqualizedConv2D, EqualizedDense, ModulatedConv2D, minibatch_stddev,
                     normalize_2nd_moment, upsample2x)


def num_ws(size: int) -> int:
    """How many w vectors the synthesis network takes (two per resolution; 14 at 256)."""
    return 2 * (int(math.log2(size)) - 1)


@keras.utils.register_keras_serializable(package="tf_usaug.stylegan2")
class MappingNetwork(keras.layers.Layer):
    """z (and label c) -> w: ``num_layers`` equalized FC layers with lr multiplier 0.01
    (Karras et al. 2019 sec. 2). ``z_dim=0`` gives the discriminator's label mapping (cmap).
    Tracks the mean w (``w_avg``, for the truncation trick) when ``w_avg_beta`` is set."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_layers: int = 8,
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995, **kwargs):
        super().__init__(**kwargs)
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.num_layers, self.lr_multiplier = int(num_layers), float(lr_multiplier)
        self.w_avg_beta = None if w_avg_beta is None else float(w_avg_beta)
        self.embed = EqualizedDense(self.w_dim, name="embed") if self.c_dim else None
        self.fcs = [EqualizedDense(self.w_dim, lr_multiplier, activation="lrelu",
                                   name=f"fc{i}") for i in range(self.num_layers)]

    def build(self, input_shape=None):
        if self.embed is not None:
            self.embed.build((None, self.c_dim))
        width = self.z_dim + (self.w_dim if self.c_dim else 0)
        for fc in self.fcs:
            fc.build((None, width))
            width = self.w_dim
        self.w_avg = self.add_weight(name="w_avg", shape=(self.w_dim,), initializer="zeros",
                                     trainable=False) if self.w_avg_beta is not None else None
        super().build(input_shape)

    def call(self, z=None, c=None, truncation_psi: float = 1.0, update_w_avg: bool = False):
        if not self.built:
            self.build()
        parts = []
        if self.z_dim:
            parts.append(normalize_2nd_moment(tf.cast(z, tf.float32)))
        if self.c_dim:
            parts.append(normalize_2nd_moment(self.embed(tf.cast(c, tf.float32))))
        x = tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]
        for fc in self.fcs:
            x = fc(x)
        if self.w_avg is not None and update_w_avg:
            batch_mean = tf.reduce_mean(tf.stop_gradient(x), axis=0)
            self.w_avg.assign(batch_mean + (self.w_avg - batch_mean) * self.w_avg_beta)
        if self.w_avg is not None and truncation_psi != 1:
            x = self.w_avg + (x - self.w_avg) * truncation_psi
        return x

    def get_config(self):
        return {**super().get_config(), "z_dim": self.z_dim, "c_dim": self.c_dim,
                "w_dim": self.w_dim, "num_layers": self.num_layers,
                "lr_multiplier": self.lr_multiplier, "w_avg_beta": self.w_avg_beta}


@keras.utils.register_keras_serializable(package="tf_usaug.stylegan2")
class SynthesisNetwork(keras.layers.Layer):
    """ws ``[B, num_ws, w_dim]`` (and noise seeds ``[B, 2]``) -> image ``[B, S, S, 1]``: a
    learned 4x4 constant, two modulated convolutions per resolution, skip toRGB outputs."""

    def __init__(self, size: int, w_dim: int, channel_base: int, channel_max: int,
                 img_channels: int = 1, fused: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.size, self.w_dim = int(size), int(w_dim)
        self.channel_base, self.channel_max = int(channel_base), int(channel_max)
        self.img_channels, self.fused = int(img_channels), bool(fused)
        self.resolutions = [2 ** i for i in range(2, int(math.log2(self.size)) + 1)]
        self.num_ws = num_ws(self.size)
        ch = lambda r: channels_at(r, self.channel_base, self.channel_max)  # noqa: E731
        salt = iter(range(1, 10_000))
        # Flat lists (Keras's .keras saving does not descend into nested lists): the block
        # at resolution r has convs[first[r] : first[r] + count[r]] and torgbs[i].
        self.convs, self.torgbs, self.conv_counts = [], [], []
        for r in self.resolutions:
            if r > 4:
                self.convs.append(ModulatedConv2D(ch(r), 3, up=True, fused=fused,
                                                  salt=next(salt), name=f"b{r}_conv0"))
            self.convs.append(ModulatedConv2D(ch(r), 3, fused=fused, salt=next(salt),
                                              name=f"b{r}_conv1"))
            self.conv_counts.append(1 if r == 4 else 2)
            self.torgbs.append(ModulatedConv2D(self.img_channels, 1, demodulate=False,
                                               use_noise=False, activation="linear",
                                               fused=fused, name=f"b{r}_torgb"))

    def _blocks(self):
        """``(resolution, its convs, its toRGB)`` from the flat lists."""
        start = 0
        for r, count, torgb in zip(self.resolutions, self.conv_counts, self.torgbs):
            yield r, self.convs[start:start + count], torgb
            start += count

    def build(self, input_shape=None):
        ch = lambda r: channels_at(r, self.channel_base, self.channel_max)  # noqa: E731
        self.const = self.add_weight(name="const", shape=(4, 4, ch(4)),
                                     initializer=keras.initializers.RandomNormal(0.0, 1.0))
        w_shape = tf.TensorShape([None, self.w_dim])
        cin = ch(4)
        for r, convs, torgb in self._blocks():
            for conv in convs:
                conv.build([tf.TensorShape([None, r, r, cin]), w_shape])
                cin = conv.filters
            torgb.build([tf.TensorShape([None, r, r, cin]), w_shape])
        super().build(input_shape)

    def call(self, ws, seeds=None):
        if not self.built:
            self.build()
        batch = tf.shape(ws)[0]
        x = tf.tile(self.const[None], [batch, 1, 1, 1])
        img = None
        w_index = 0
        for _, convs, torgb in self._blocks():
            for conv in convs:
                args = [x, ws[:, w_index]] + ([] if seeds is None else [seeds])
                x = conv(args)
                w_index += 1
            y = torgb([x, ws[:, w_index]])  # toRGB shares its w with the next block's conv0
            img = y if img is None else upsample2x(img) + y
        return img

    def get_config(self):
        return {**super().get_config(), "size": self.size, "w_dim": self.w_dim,
                "channel_base": self.channel_base, "channel_max": self.channel_max,
                "img_channels": self.img_channels, "fused": self.fused}


@keras.utils.register_keras_serializable(package="tf_usaug.stylegan2")
class Generator(keras.Model):
    """Mapping + synthesis. ``G(z, c=None, seeds=None, truncation_psi=1)`` -> images in
    (about) [-1, 1]; ``seeds`` ``[B, 2]`` int32 draw each sample's noise inputs (None: no
    noise)."""

    def __init__(self, size: int, z_dim: int = 512, w_dim: int = 512, c_dim: int = 0,
                 mapping_layers: int = 8, mapping_lr_multiplier: float = 0.01,
                 channel_base: int = 16384, channel_max: int = 512, img_channels: int = 1,
                 fused: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.settings = dict(size=int(size), z_dim=int(z_dim), w_dim=int(w_dim),
                             c_dim=int(c_dim), mapping_layers=int(mapping_layers),
                             mapping_lr_multiplier=float(mapping_lr_multiplier),
                             channel_base=int(channel_base), channel_max=int(channel_max),
                             img_channels=int(img_channels), fused=bool(fused))
        self.z_dim, self.c_dim = int(z_dim), int(c_dim)
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, mapping_layers,
                                      mapping_lr_multiplier, name="mapping")
        self.synthesis = SynthesisNetwork(size, w_dim, channel_base, channel_max,
                                          img_channels, fused, name="synthesis")
        self.num_ws = self.synthesis.num_ws
        self.mapping.build()
        self.synthesis.build()
        self.built = True

    def broadcast(self, w):
        """``[B, w_dim]`` -> ``[B, num_ws, w_dim]``."""
        return tf.tile(w[:, None], [1, self.num_ws, 1])

    def call(self, z, c=None, seeds=None, truncation_psi: float = 1.0, training=None):
        ws = self.broadcast(self.mapping(z, c, truncation_psi=truncation_psi))
        return self.synthesis(ws, seeds)

    def get_config(self):
        return dict(self.settings)


def mix_styles(ws, ws_other, cutoff):
    """Style mixing (Karras et al. 2019 sec. 3.1): layers ``>= cutoff[b]`` of sample ``b``
    take ``ws_other``'s vectors. ``cutoff`` ``[B]`` int (``num_ws``: no mixing)."""
    layer = tf.range(tf.shape(ws)[1])[None, :, None]
    return tf.where(layer >= tf.cast(cutoff, tf.int32)[:, None, None], ws_other, ws)


@keras.utils.register_keras_serializable(package="tf_usaug.stylegan2")
class Discriminator(keras.Model):
    """Residual discriminator (Karras et al. 2020a sec. 4.1) with the minibatch-stddev
    epilogue; conditional by projection on a mapping of the label (StyleGAN2-ADA cmap)."""

    def __init__(self, size: int, c_dim: int = 0, channel_base: int = 16384,
                 channel_max: int = 512, img_channels: int = 1, mbstd_group: int = 4,
                 mbstd_channels: int = 1, mapping_layers: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.settings = dict(size=int(size), c_dim=int(c_dim), channel_base=int(channel_base),
                             channel_max=int(channel_max), img_channels=int(img_channels),
                             mbstd_group=int(mbstd_group), mbstd_channels=int(mbstd_channels),
                             mapping_layers=int(mapping_layers))
        ch = lambda r: channels_at(r, channel_base, channel_max)  # noqa: E731
        self.c_dim, self.mbstd_group, self.mbstd_channels = int(c_dim), int(mbstd_group), \
            int(mbstd_channels)
        self.fromrgb = EqualizedConv2D(ch(size), 1, name="fromrgb")
        self.conv0s, self.conv1s, self.skips = [], [], []  # flat lists, one entry per block
        r = int(size)
        while r > 4:
            self.conv0s.append(EqualizedConv2D(ch(r), 3, name=f"b{r}_conv0"))
            self.conv1s.append(EqualizedConv2D(ch(r // 2), 3, down=True, name=f"b{r}_conv1"))
            self.skips.append(EqualizedConv2D(ch(r // 2), 1, use_bias=False,
                                              activation="linear", down=True,
                                              name=f"b{r}_skip"))
            r //= 2
        c4 = ch(4)
        self.cmap_dim = c4 if self.c_dim else 0
        self.epilogue_conv = EqualizedConv2D(c4, 3, name="b4_conv")
        self.epilogue_fc = EqualizedDense(c4, activation="lrelu", name="b4_fc")
        self.out = EqualizedDense(self.cmap_dim or 1, name="b4_out")
        self.cmap = MappingNetwork(0, self.c_dim, self.cmap_dim, mapping_layers,
                                   w_avg_beta=None, name="cmap") if self.c_dim else None
        self.build_all()

    def build_all(self):
        s = self.settings
        x = tf.zeros([max(1, s["mbstd_group"]), s["size"], s["size"], s["img_channels"]])
        c = tf.zeros([x.shape[0], self.c_dim]) if self.c_dim else None
        self(x, c)

    def call(self, img, c=None, training=None):
        x = self.fromrgb(tf.cast(img, tf.float32))
        half = math.sqrt(0.5)
        for conv0, conv1, skip in zip(self.conv0s, self.conv1s, self.skips):
            y = skip(x) * half
            x = conv1(conv0(x)) * half + y
        group = _group_size(self.mbstd_group, x.shape[0])
        x = minibatch_stddev(x, group, self.mbstd_channels)
        x = self.epilogue_conv(x)
        x = self.epilogue_fc(tf.reshape(x, [tf.shape(x)[0], -1]))
        x = self.out(x)
        if self.cmap is not None:
            cmap = self.cmap(None, c)
            x = tf.reduce_sum(x * cmap, axis=1, keepdims=True) / math.sqrt(self.cmap_dim)
        return x

    def get_config(self):
        return dict(self.settings)


def _group_size(group: int, batch) -> int:
    """The largest divisor of the (static) batch that is <= ``group``."""
    if batch is None:
        return group
    g = max(1, min(int(group), int(batch)))
    while batch % g:
        g -= 1
    return g


def build_networks(size: int, c_dim: int = 0, z_dim: int = 512, w_dim: int = 512,
                   mapping_layers: int = 8, mapping_lr_multiplier: float = 0.01,
                   channel_base: int = 16384, channel_max: int = 512, mbstd_group: int = 4,
                   mbstd_channels: int = 1, fused: bool = True, seed: int = 0):
    """``(generator, discriminator)`` with their weights drawn from ``seed``."""
    keras.utils.set_random_seed(int(seed))
    G = Generator(size, z_dim, w_dim, c_dim, mapping_layers, mapping_lr_multiplier,
                  channel_base, channel_max, 1, fused, name="generator")
    D = Discriminator(size, c_dim, channel_base, channel_max, 1, mbstd_group, mbstd_channels,
                      mapping_layers, name="discriminator")
    return G, D


def networks_from_config(cfg, c_dim: int = 0):
    """:func:`build_networks` with a :class:`~.config.StyleGAN2Config`'s values."""
    return build_networks(cfg.size, c_dim, cfg.z_dim, cfg.w_dim, cfg.mapping_layers,
                          cfg.mapping_lr_multiplier, cfg.channel_base, cfg.channel_max,
                          cfg.mbstd_group, cfg.mbstd_channels, cfg.fused_modconv, cfg.seed)


def clone_generator(G) -> "Generator":
    """A generator of the same config with ``G``'s weights (the EMA copy)."""
    G_ema = Generator(**G.get_config(), name="generator_ema")
    for target, source in zip(G_ema.variables, G.variables):
        target.assign(source)
    return G_ema
