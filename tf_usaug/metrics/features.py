"""Feature networks for the generative metrics: grey images -> ``[N, d]`` feature vectors.

FID, KID, MMD and 1-NN (:mod:`tf_usaug.metrics.generative`) compare two sets of images in a
feature space. :func:`build_extractor` makes one from a spec:

* ``inception`` (default): InceptionV3's pool3 layer (global average of ``mixed10``, 2048-d),
  ImageNet weights (Szegedy et al. 2016; Heusel et al. 2017's FID network). Grey images are
  resized to 299 x 299 (:func:`tf_usaug.data.image_io.resize`), replicated to three channels
  and mapped to [-1, 1] (Keras' ``inception_v3.preprocess_input``: x / 127.5 - 1 on 0-255).
  The weights are read from the Keras cache (``$KERAS_HOME/models``, default
  ``~/.keras/models``) or from ``weights=PATH``; nothing is ever downloaded: when the file is
  missing the error says to pass ``--weights PATH`` or ``--features PATH``. ``weights="none"``
  gives random weights (tests and timing only: its distances mean nothing).
* ``pixels``: the raw grey values resized to ``pixel_size`` x ``pixel_size`` and flattened
  (no network; for tests and as a sanity baseline).
* a classifier run folder (``RUN/preprocessing.json`` + ``RUN/model.keras``, from
  ``python -m tf_usaug.train classifier``): the task classifier, fed exactly as in training
  (:class:`tf_usaug.models.classifier.preprocessing.Preprocessing`); features of its
  penultimate layer (the input of the softmax layer) or of ``layer``.
* any other path: a Keras model file (``.keras``, ``.h5``) or SavedModel folder; features of
  the penultimate layer (the input of its last layer) or of ``layer``; images are resized to
  its input size (when fixed), replicated to its channel count, and scaled by
  ``input_range`` (``unit`` [0, 1], ``signed`` [-1, 1], ``255`` [0, 255]).

A 4-D layer output (``[N, h, w, c]``) is averaged over space, so any convolutional layer gives
a ``c``-d vector. TensorFlow is imported only by the network extractors.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..data.image_io import resize
from ..errors import BackboneError

#: Feature specs that are not paths.
BUILTIN_FEATURES: tuple[str, ...] = ("inception", "pixels")
#: Value maps of ``input_range`` for a generic Keras model: grey g in [0, 1] -> g * a + b.
INPUT_RANGES: dict[str, tuple[float, float]] = {"unit": (1.0, 0.0), "signed": (2.0, -1.0),
                                                "255": (255.0, 0.0)}
#: InceptionV3's input side and the Keras cache name of its ImageNet weights without the top.
INCEPTION_SIZE = 299
INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


class FeatureExtractor:
    """Callable ``extractor(images) -> float64 [N, d]`` over grey ``HxW`` images in [0, 1].

    Attributes:
        name: what the features are (``inception-imagenet``, ``pixels-32``, a model path ...).
        dim: feature dimension (None until the first call for models of unknown output).
    """

    def __init__(self, name: str, fn: Callable[[Sequence[np.ndarray]], np.ndarray],
                 dim: int | None = None, batch_size: int = 32):
        self.name, self.dim, self._fn, self.batch_size = name, dim, fn, int(batch_size)

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        parts = [np.asarray(self._fn(images[i:i + self.batch_size]), np.float64)
                 for i in range(0, len(images), self.batch_size)]
        if not parts:
            return np.zeros((0, self.dim or 0))
        features = np.concatenate(parts).reshape(len(images), -1)
        self.dim = int(features.shape[1])
        return features

    def describe(self) -> dict:
        return {"name": self.name, "dim": self.dim}


# ----------------------------------------------------------------------------- pixels


def pixel_extractor(size: int = 32) -> FeatureExtractor:
    """Raw grey values resized to ``size`` x ``size``, flattened (``size**2``-d)."""
    if int(size) < 1:
        raise BackboneError(f"pixel feature size must be >= 1, got {size}")

    def features(images):
        return np.stack([resize(np.asarray(im, np.float32), int(size)).ravel()
                         for im in images])

    return FeatureExtractor(f"pixels-{int(size)}", features, dim=int(size) ** 2)


# ----------------------------------------------------------------------------- networks


def _resize_stack(images: Sequence[np.ndarray], hw: tuple[int | None, int | None]
                  ) -> np.ndarray:
    """``[B, H, W]`` float32: each image resized to ``hw`` (a None side keeps the image's)."""
    out = []
    for image in images:
        image = np.asarray(image, np.float32)
        target = (hw[0] or image.shape[0], hw[1] or image.shape[1])
        out.append(image if image.shape == target else resize(image, target))
    shapes = {im.shape for im in out}
    if len(shapes) > 1:
        raise BackboneError(f"the feature model takes any size, but one batch mixes sizes "
                            f"{sorted(shapes)}; resize the images to one size first")
    return np.stack(out)


def feature_model(model, layer: str | None, source: str):
    """A Keras model from ``model``'s input to ``layer``'s output (default: the input of the
    last layer, i.e. the penultimate representation), globally averaged when 4-D."""
    from tensorflow import keras

    if layer is None:
        last = model.layers[-1]
        output = last.input
        if isinstance(output, (list, tuple)):
            raise BackboneError(f"{source}: the last layer '{last.name}' has several inputs; "
                                "name the feature layer with --layer")
    else:
        try:
            output = model.get_layer(layer).output
        except ValueError:
            names = ", ".join(lay.name for lay in model.layers[-8:])
            raise BackboneError(f"{source}: no layer named '{layer}' (the last layers are: "
                                f"{names})") from None
    if len(output.shape) == 4:
        output = keras.layers.GlobalAveragePooling2D(name="feature_pool")(output)
    elif len(output.shape) != 2:
        raise BackboneError(f"{source}: layer output of shape {tuple(output.shape)} is not a "
                            "feature vector or a feature map")
    return keras.Model(model.inputs, output)


def _model_extractor(name: str, model, to_input: Callable, batch_size: int
                     ) -> FeatureExtractor:
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(batch):
        return model(batch, training=False)

    def features(images):
        return forward(tf.constant(to_input(images), tf.float32)).numpy()

    return FeatureExtractor(name, features, dim=int(model.output.shape[-1]),
                            batch_size=batch_size)


def inception_weights_path(weights: str) -> Path | None:
    """The weights file for ``weights`` (``imagenet``: the Keras cache; ``none``: None)."""
    if weights.lower() == "none":
        return None
    if weights.lower() == "imagenet":
        cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
        path = cache / INCEPTION_WEIGHTS_FILE
        if not path.is_file():
            raise BackboneError(
                f"InceptionV3 ImageNet weights are not in the Keras cache ({path}) and are "
                "never downloaded here: copy that file there, pass --weights PATH/TO/"
                f"{INCEPTION_WEIGHTS_FILE}, or use other features (--features RUN for the "
                "task classifier's run folder, --features MODEL.keras, --features pixels)")
        return path
    path = Path(weights)
    if not path.is_file():
        raise BackboneError(f"{path}: no such InceptionV3 weights file (--weights)")
    return path


def inception_extractor(weights: str = "imagenet", batch_size: int = 32) -> FeatureExtractor:
    """InceptionV3 pool3 (2048-d) features (see the module docstring)."""
    path = inception_weights_path(weights)
    from tensorflow import keras

    model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                           input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
    if path is not None:
        try:
            model.load_weights(str(path))
        except (OSError, ValueError) as exc:
            raise BackboneError(f"{path}: not InceptionV3 weights without the top "
                                f"({str(exc).splitlines()[0]})") from None

    def to_input(images):
        grey = _resize_stack(images, (INCEPTION_SIZE, INCEPTION_SIZE))
        return np.repeat(grey[..., None] * 2.0 - 1.0, 3, axis=-1)

    name = "inception-" + ("random" if path is None else
                           "imagenet" if weights.lower() == "imagenet" else str(path))
    return _model_extractor(name, model, to_input, batch_size)


def classifier_extractor(run_dir: str | os.PathLike, layer: str | None = None,
                         batch_size: int = 32) -> FeatureExtractor:
    """Features of a task-classifier run (penultimate layer unless ``layer``)."""
    from ..models.classifier.run_files import load_classifier_run

    run = load_classifier_run(run_dir)
    model = feature_model(run.model, layer, str(run_dir))
    return _model_extractor(f"classifier:{run_dir}" + (f":{layer}" if layer else ""), model,
                            run.preprocessing.prepare, batch_size)


def keras_extractor(path: str | os.PathLike, layer: str | None = None,
                    input_range: str = "unit", batch_size: int = 32) -> FeatureExtractor:
    """Features of any Keras model file or SavedModel folder (see the module docstring)."""
    from tensorflow import keras

    path = Path(path)
    if input_range not in INPUT_RANGES:
        raise BackboneError(f"input range must be one of {', '.join(INPUT_RANGES)}, got "
                            f"{input_range!r}")
    try:
        model = keras.models.load_model(str(path), compile=False)
    except (OSError, ValueError, ImportError, TypeError) as exc:
        raise BackboneError(f"{path}: cannot load a Keras model "
                            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                            ) from None
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise BackboneError(f"{path}: the model takes inputs of shape {shape}; expected images "
                            "[batch, height, width, 1 or 3]")
    channels = int(shape[-1])
    scale, offset = INPUT_RANGES[input_range]
    features_model = feature_model(model, layer, str(path))

    def to_input(images):
        grey = _resize_stack(images, (shape[1], shape[2]))[..., None] * scale + offset
        return np.repeat(grey, channels, axis=-1)

    return _model_extractor(str(path) + (f":{layer}" if layer else ""), features_model,
                            to_input, batch_size)


def is_classifier_run(path: str | os.PathLike) -> bool:
    """A folder holding ``preprocessing.json`` (a ``train classifier`` run)."""
    from ..models.classifier.preprocessing import PREPROCESSING_FILE

    return Path(path).is_dir() and (Path(path) / PREPROCESSING_FILE).is_file()


def build_extractor(features: str = "inception", weights: str = "imagenet",
                    layer: str | None = None, pixel_size: int = 32, input_range: str = "unit",
                    batch_size: int = 32) -> FeatureExtractor:
    """The extractor of a spec: ``inception``, ``pixels``, a classifier run or a Keras model.

    Raises:
        BackboneError: missing weights or model, unknown layer, unusable input shape.
    """
    spec = str(features)
    if spec == "pixels":
        return pixel_extractor(pixel_size)
    if spec == "inception":
        return inception_extractor(weights, batch_size)
    path = Path(spec)
    if not path.exists():
        raise BackboneError(f"{path}: no such feature model (--features takes "
                            f"{' or '.join(BUILTIN_FEATURES)}, a classifier run folder or a "
                            "Keras model file)")
    if is_classifier_run(path):
        return classifier_extractor(path, layer, batch_size)
    return keras_extractor(path, layer, input_range, batch_size)
