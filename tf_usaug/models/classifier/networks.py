"""The classifier networks: a backbone (ResNet50, EfficientNetB2 or a small CNN) under paper
002's head, as ONE flat functional Keras model of built-in layers only, so ``model.keras``
loads anywhere with ``keras.models.load_model`` (no custom objects; iNNvestigate can analyse
it). Its input is the preprocessed image (``preprocessing.py``), its output the softmax.

Example::

    model = build_classifier("small", n_classes=2, size=64, weights="none", seed=0)
    model.save("model.keras")

References: He et al. 2016 (ResNet50); Tan & Le 2019 (EfficientNet); paper 002's head;
paper 004 sec. 2.3 (EfficientNetB2).
"""
from __future__ import annotations

import contextlib

import tensorflow as tf

from ...errors import BackboneError
from .config import BACKBONES

keras = tf.keras
layers = tf.keras.layers

#: Filters of the small CNN's blocks (conv 3x3 - BN - ReLU, then 2x2 max-pooling).
SMALL_FILTERS = (16, 32, 64, 128)


def small_cnn(inputs, filters=SMALL_FILTERS, batchnorm_momentum: float = 0.9) -> tf.Tensor:
    """A compact CNN for training from scratch on a CPU (ours): ``len(filters)`` blocks of
    conv 3x3 (no bias) - batch norm - ReLU - max-pool 2x2. Returns the last feature map."""
    x = inputs
    for i, f in enumerate(filters, 1):
        x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(momentum=batchnorm_momentum, name=f"block{i}_bn")(x)
        x = layers.ReLU(name=f"block{i}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    return x


def classification_head(features, n_classes: int, hidden_units: int = 256,
                        dropout: float = 0.5, leaky_relu_alpha: float = 0.3,
                        seed: int = 0, batchnorm_momentum: float = 0.99) -> tf.Tensor:
    """Paper 002's head: global average pooling, a dense layer with batch normalisation and
    LeakyReLU, dropout 0.5, and a dense softmax over the classes (sec. "Quantitative
    evaluation": "GlobalAveragePooling2D ... followed by a final dense layer with 2 units and
    softmax", "dropout (0.5) and batch normalization", "LeakyRelu"). The hidden width and the
    order are ours (the paper names the parts only)."""
    x = layers.GlobalAveragePooling2D(name="head_pool")(features)
    x = layers.Dense(hidden_units, use_bias=False, name="head_dense")(x)
    x = layers.BatchNormalization(momentum=batchnorm_momentum, name="head_bn")(x)
    x = layers.LeakyReLU(alpha=leaky_relu_alpha, name="head_leaky_relu")(x)
    x = layers.Dropout(dropout, seed=seed, name="head_dropout")(x)
    return layers.Dense(n_classes, activation="softmax", name="predictions")(x)


def _application(backbone: str, inputs, weights: str):
    """A Keras application on ``inputs`` without its top; ImageNet weights or a clear error."""
    constructor = {"resnet50": keras.applications.ResNet50,
                   "efficientnetb2": keras.applications.EfficientNetB2}[backbone]
    use_imagenet = weights.lower() == "imagenet"
    try:
        return constructor(include_top=False, weights="imagenet" if use_imagenet else None,
                           input_tensor=inputs)
    except Exception as exc:  # keras raises a bare Exception on "URL fetch failure"
        if not use_imagenet:
            raise
        raise BackboneError(
            f"ImageNet weights for {backbone} are not in the Keras cache (~/.keras/models) and "
            f"could not be downloaded ({type(exc).__name__}); on an offline machine copy the "
            f"Keras *_notop.h5 file there or pass --weights PATH/TO/FILE.h5 (--weights none "
            f"for random weights)") from None


def _load_weights_file(backbone_model, path: str) -> None:
    """Load a backbone weights file (e.g. Keras's ``*_notop.h5``) in layer order."""
    try:
        backbone_model.load_weights(str(path))
    except (ValueError, KeyError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BackboneError(f"{path}: weights do not fit the {backbone_model.name} backbone "
                            f"({first})") from None


@contextlib.contextmanager
def _stateful_dropout():
    """Layers built inside draw from a ``tf.random.Generator`` of their own (Keras's
    "stateful" RNG), which :func:`reseed_random_layers` can reset; the previous global
    setting is restored afterwards (the layers keep theirs)."""
    experimental = keras.backend.experimental
    was_enabled = experimental.is_tf_random_generator_enabled()
    experimental.enable_tf_random_generator()
    try:
        yield
    finally:
        if not was_enabled:
            experimental.disable_tf_random_generator()


def build_classifier(backbone: str, n_classes: int, size: int, weights: str = "none", *,
                     hidden_units: int = 256, dropout: float = 0.5,
                     leaky_relu_alpha: float = 0.3, seed: int = 0,
                     batchnorm_momentum: float | None = None) -> keras.Model:
    """Backbone + head as one functional model on the preprocessed input.

    Args:
        backbone: ``resnet50``, ``efficientnetb2`` or ``small``.
        n_classes: softmax units.
        size: input side; the input is ``[B, size, size, channels]`` with the backbone's
            channels (3, or 1 for ``small``).
        weights: ``imagenet``, ``none`` or a backbone weights file (loaded into the backbone's
            layers; the head starts random).
        hidden_units / dropout / leaky_relu_alpha: the head (:func:`classification_head`).
        seed: initial weights and dropout (:func:`tf.keras.utils.set_random_seed`).
        batchnorm_momentum: of the batch norms we add (head, small CNN); None: the
            backbone's default (``BACKBONES``).
    """
    if backbone not in BACKBONES:
        raise BackboneError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    if batchnorm_momentum is None:
        batchnorm_momentum = BACKBONES[backbone].batchnorm_momentum
    keras.utils.set_random_seed(int(seed))
    with _stateful_dropout():
        inputs = keras.Input((size, size, BACKBONES[backbone].channels), name="image")
        if backbone == "small":
            features = small_cnn(inputs, batchnorm_momentum=batchnorm_momentum)
            base = keras.Model(inputs, features, name="small")
        else:
            base = _application(backbone, inputs, weights)
            features = base.output
        if weights.lower() not in ("imagenet", "none"):
            _load_weights_file(base, weights)
        outputs = classification_head(features, n_classes, hidden_units, dropout,
                                      leaky_relu_alpha, seed, batchnorm_momentum)
        model = keras.Model(inputs, outputs, name=f"{backbone}_classifier")
    random_generators(model)  # create them now (they are otherwise made on the first call)
    return model


def random_generators(model: keras.Model) -> list[tf.random.Generator]:
    """The ``tf.random.Generator`` of every random layer (dropout), in layer order.

    Raises:
        RuntimeError: a random layer that draws from TensorFlow's legacy stateful ops, whose
            state cannot be reset (built outside :func:`build_classifier`).
    """
    generators = []
    for layer in model.layers:
        rng = getattr(layer, "_random_generator", None)  # Keras BaseRandomLayer
        if rng is None:
            continue
        rng._maybe_init()  # noqa: SLF001 - creates the generator once
        generator = getattr(rng, "_generator", None)
        if generator is None:
            raise RuntimeError(f"layer {layer.name} draws from legacy stateful random ops; "
                               "build the model with build_classifier")
        generators.append(generator)
    return generators


def reseed_random_layers(model: keras.Model, seed: int) -> int:
    """Reset every dropout generator from ``(seed, layer index)``; returns how many.

    The training loop calls it at the start of each epoch with a seed derived from
    ``(run seed, epoch, rank)``, so a run resumed at an epoch boundary draws the same masks as
    an uninterrupted one without storing any random state.
    """
    generators = random_generators(model)
    for i, generator in enumerate(generators):
        generator.reset_from_seed(int(seed) * 1000003 + i)
    return len(generators)
