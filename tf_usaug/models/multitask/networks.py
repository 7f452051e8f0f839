"""The multitask segmentation + classification network of paper 000 (sec. 2.2, Fig. S1):
four encoders, four decoders with max-unpooling, a classification head.

    encoder i  (filters f_i):  conv3x3 -> ReLU -> BN -> conv3x3 -> ReLU -> BN,
               + residual (the input, 1x1-projected to f_i), [FeatAug], 2x2 max-pool (argmax)
    decoder i  (deepest first): max-unpool by encoder i's indices, then 3 x (conv3x3 -> BN ->
               ReLU), the last conv to f_{i-1} channels (f_1 for the shallowest)
    seg head   conv1x1 -> 1 logit per pixel (the lesion)
    cls head   conv3x3 -> 128, ReLU, BN, global average pooling, dense -> 1 logit

The model returns LOGITS ``[segmentation [B, S, S, 1], classification [B, 1]]``; the
sigmoids of Fig. S1 are applied in the loss (``from_logits``, numerically stable) and in
``run_files.predict``. The paper does not say where the residual joins nor how the first conv
of an encoder changes the channel count; our choices are in docs/multitask.md.
"""
from __future__ import annotations

from typing import Sequence

from tensorflow import keras

from .layers import FeatAug, MaxPoolWithArgmax, MaxUnpool

SEGMENTATION, CLASSIFICATION = "segmentation", "classification"
#: PyTorch's BatchNorm2d default (running average weight 0.1 on the new batch; paper 000 used
#: PyTorch). Keras's default 0.99 leaves the inference statistics far behind for the few
#: hundred steps of a small dataset (measured: docs/multitask.md).
BN_MOMENTUM = 0.9


class _Seeds:
    """Seeded Glorot-uniform initialisers in build order (the same network for one seed)."""

    def __init__(self, seed: int):
        self.seed, self.count = int(seed), 0

    def __call__(self):
        self.count += 1
        return keras.initializers.GlorotUniform(seed=self.seed * 1000 + self.count)


def _conv(x, filters, kernel, seeds, name):
    return keras.layers.Conv2D(filters, kernel, padding="same", kernel_initializer=seeds(),
                               name=name)(x)


def build_multitask_net(size: int | None = None, filters: Sequence[int] = (64, 128, 256, 512),
                        head_channels: int = 128, feataug: bool = False,
                        feataug_p: float = 0.5, feataug_mu: float = 0.0,
                        feataug_sigma: float = 0.1, seed: int = 0) -> keras.Model:
    """The network (a functional Keras model, serialisable with ``model.save``).

    Args:
        size: input side (None: any multiple of 16).
        filters: channels of the four encoders.
        head_channels: the classification head's conv (paper 000: 128).
        feataug: put a :class:`FeatAug` after each encoder's residual connection.
        feataug_p / feataug_mu / feataug_sigma: its parameters (eq. 1).
        seed: initial weights and FeatAug streams.

    Returns:
        Model ``image [B, S, S, 1] in [0, 1] -> [segmentation logits [B, S, S, 1],
        classification logit [B, 1]]``.
    """
    seeds = _Seeds(seed)
    image = keras.Input((size, size, 1), name="image")
    x, skips = image, []
    for i, f in enumerate(filters, start=1):
        residual = _conv(x, f, 1, seeds, f"enc{i}_residual")
        h = x
        for j in (1, 2):
            h = _conv(h, f, 3, seeds, f"enc{i}_conv{j}")
            h = keras.layers.ReLU(name=f"enc{i}_relu{j}")(h)
            h = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"enc{i}_bn{j}")(h)
        x = keras.layers.Add(name=f"enc{i}_add")([h, residual])
        if feataug:
            x = FeatAug(feataug_p, feataug_mu, feataug_sigma, seed=seed * 16 + i,
                        name=f"enc{i}_feataug")(x)
        x, indices = MaxPoolWithArgmax(name=f"enc{i}_pool")(x)
        skips.append(indices)
    bottleneck = x

    # Decoders, deepest first: unpool by the matching encoder's indices, three convs.
    outs = list(filters[:-1][::-1]) + [filters[0]]
    for i, (f, f_out) in zip(range(len(filters), 0, -1), zip(filters[::-1], outs)):
        x = MaxUnpool(name=f"dec{i}_unpool")([x, skips[i - 1]])
        for j, ch in enumerate((f, f, f_out), start=1):
            x = _conv(x, ch, 3, seeds, f"dec{i}_conv{j}")
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dec{i}_bn{j}")(x)
            x = keras.layers.ReLU(name=f"dec{i}_relu{j}")(x)
    seg = _conv(x, 1, 1, seeds, SEGMENTATION)

    # Classification head on the deepest encoder's features.
    h = _conv(bottleneck, head_channels, 3, seeds, "cls_conv")
    h = keras.layers.ReLU(name="cls_relu")(h)
    h = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="cls_bn")(h)
    h = keras.layers.GlobalAveragePooling2D(name="cls_gap")(h)
    cls = keras.layers.Dense(1, kernel_initializer=seeds(), name=CLASSIFICATION)(h)
    return keras.Model(image, [seg, cls], name="multitask")
