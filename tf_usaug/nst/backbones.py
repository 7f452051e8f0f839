"""Frozen ResNet50 / VGG19 feature extractors for neural style transfer.

``build_extractor(BackboneConfig())`` returns a :class:`FeatureExtractor` that maps grey images
``[B, H, W, 1]`` in ``[0, 1]`` to a dict ``layer name -> [B, h, w, c]`` float32 feature maps.
Everything the backbone expects happens inside: grey -> 3 channels, x255, and the backbone's
own ``preprocess_input`` (Caffe-style BGR mean subtraction), so the NST optimises grey pixels
in ``[0, 1]`` directly.

The Keras model is truncated after the deepest layer any loss needs (a functional model built
from the input to the requested outputs holds only their ancestors), its weights are frozen
(``trainable = False``: a gradient tape watches only the pixels), and by default every
inference-mode batch normalisation is folded into the convolution before it (an exact affine
identity that removes the BN work from the forward and the backward pass).

References:
    Panigrahi et al. 2025 (paper 002), "Proposed augmentation model": ResNet50 replaces VGG19.
    Gatys, Ecker & Bethge 2016, sec. 2-3: VGG19 conv{1..5}_1 style, conv4_2 content layers.
    Menini 2020 (paper 001), sec. 4.2: the VGG19 layers used there for ultrasound.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from ..nn.batchnorm import fold_batchnorm_weights
from ..errors import BackboneError  # noqa: F401  (raised here; importable from here too)

#: Paper 002 uses a pretrained ResNet50; one stage output per resolution (1/2 ... 1/16).
RESNET50_STYLE_LAYERS = ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out")
RESNET50_CONTENT_LAYER = "conv4_block6_out"
#: Gatys et al. 2016 (conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 style; conv4_2 content).
VGG19_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1",
                      "block5_conv1")
VGG19_CONTENT_LAYER = "block4_conv2"
#: Paper 001 sec. 4.2 lists these instead (no block4_conv1; content block5_conv2).
VGG19_MENINI_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block5_conv1")
VGG19_MENINI_CONTENT_LAYER = "block5_conv2"

_DEFAULT_LAYERS = {
    "resnet50": (RESNET50_STYLE_LAYERS, RESNET50_CONTENT_LAYER),
    "vgg19": (VGG19_STYLE_LAYERS, VGG19_CONTENT_LAYER),
}
_WEIGHT_SUFFIXES = (".h5", ".hdf5")


@dataclass
class BackboneConfig:
    """Which pretrained network extracts the NST features.

    Args:
        name: ``"resnet50"`` (paper 002's choice) or ``"vgg19"`` (Gatys et al. 2016).
        weights: ``"imagenet"`` (Keras cache ``~/.keras/models``, downloaded once), a path to
            an ``.h5`` weights file (for air-gapped clusters: the Keras ``*_notop.h5`` file or
            any file holding the same layer names, e.g. with the classifier top), or
            ``"none"`` (random initialisation: tests and benchmarks only).
        style_layers: layers whose statistics define the style; ``None`` = the backbone's
            default (``RESNET50_STYLE_LAYERS`` / ``VGG19_STYLE_LAYERS``).
        content_layer: layer compared by the content loss (paper 002 eq. 2); ``None`` = the
            backbone's default.
        fold_batchnorm: fold inference-mode batch normalisation into the preceding
            convolution (same outputs up to float rounding; removes the BN work from every
            NST step, see benchmarks/nst_throughput.py).
        seed: seeds the random initialisation with ``weights="none"``, so every process
            (and every Horovod rank) builds the same random backbone.
    """

    name: str = "resnet50"
    weights: str = "imagenet"
    style_layers: tuple[str, ...] | None = None
    content_layer: str | None = None
    fold_batchnorm: bool = True
    seed: int = 0

    def __post_init__(self):
        self.name = str(self.name).lower()
        if self.name not in _DEFAULT_LAYERS:
            raise BackboneError(f"unknown backbone {self.name!r}; choose one of "
                                f"{sorted(_DEFAULT_LAYERS)}")
        default_style, default_content = _DEFAULT_LAYERS[self.name]
        if self.style_layers is None:
            self.style_layers = default_style
        elif isinstance(self.style_layers, str):
            self.style_layers = (self.style_layers,)
        self.style_layers = tuple(self.style_layers)
        if not self.style_layers:
            raise BackboneError("style_layers is empty; give at least one layer name")
        if self.content_layer is None:
            self.content_layer = default_content
        self.weights = str(self.weights)

    @property
    def layers(self) -> tuple[str, ...]:
        """Every layer the losses read: the style layers, then the content layer (no repeats)."""
        return tuple(dict.fromkeys((*self.style_layers, self.content_layer)))


def _application(name: str) -> tuple[Callable[..., tf.keras.Model], Callable]:
    """The Keras constructor and ``preprocess_input`` of a backbone."""
    apps = tf.keras.applications
    if name == "resnet50":
        return apps.ResNet50, apps.resnet50.preprocess_input
    return apps.VGG19, apps.vgg19.preprocess_input


def grey_to_backbone_input(images: tf.Tensor, preprocess_input: Callable) -> tf.Tensor:
    """Map grey ``[B, H, W, 1]`` in ``[0, 1]`` to the backbone's preprocessed RGB input.

    Reference implementation of what :class:`FeatureExtractor` computes in affine form.

    Args:
        images: grey images, float, values in ``[0, 1]``.
        preprocess_input: the backbone's ``tf.keras.applications.<net>.preprocess_input``.
    Returns:
        ``[B, H, W, 3]`` float32: ``preprocess_input(255 * [g, g, g])``.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    rgb = tf.repeat(images, 3, axis=-1) * 255.0
    return preprocess_input(rgb)


def grey_affine(preprocess_input: Callable) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(scale, offset)`` with ``grey_to_backbone_input(g) == g * scale + offset``.

    Every Keras ``preprocess_input`` mode (Caffe: BGR flip and mean subtraction; "torch":
    mean and std; "tf": to [-1, 1]) is affine per channel, and a grey pixel has three equal
    channels, so evaluating it at grey 0 and 1 gives the map exactly; the flip and the slicing
    then cost nothing in the optimisation step (their gradients were ~6 % of a ResNet50 step).

    Raises:
        ValueError: if ``preprocess_input`` is not affine on grey input.
    """
    probe = tf.constant([0.0, 1.0, 0.37], tf.float32)[:, None, None, None]
    values = grey_to_backbone_input(probe, preprocess_input).numpy()[:, 0, 0, :]
    offset, scale = values[0], values[1] - values[0]
    if not np.allclose(values[2], 0.37 * scale + offset, rtol=1e-5, atol=1e-3):
        raise ValueError("preprocess_input is not affine on grey images")
    return scale.astype(np.float32), offset.astype(np.float32)


def feature_layer_names(model: tf.keras.Model) -> list[str]:
    """Names of the layers of ``model`` whose output is a 4-D feature map (input excluded)."""
    names = []
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.InputLayer):
            continue
        shape = layer.output_shape
        if isinstance(shape, tuple) and len(shape) == 4:
            names.append(layer.name)
    return names


def seeded_initialisation(model: tf.keras.Model, seed: int) -> None:
    """Re-draw every weight of ``model`` from its layer's own initializer, seeded.

    Keras draws unseeded initial weights differently in every process; with ``seed`` layer
    ``i`` uses ``seed * 100003 + i``, so a random backbone is reproducible. Initializers
    without randomness (zeros, ones) are simply re-applied.
    """
    for index, layer in enumerate(model.layers):
        for name in ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"):
            variable = getattr(layer, name, None)
            initializer = getattr(layer, f"{name}_initializer", None)
            if variable is None or initializer is None:
                continue
            config = initializer.get_config()
            if "seed" in config:
                config["seed"] = (int(seed) * 100003 + index) % (2 ** 31)
            fresh = initializer.__class__.from_config(config)
            variable.assign(tf.cast(fresh(variable.shape, tf.float32), variable.dtype))


def check_layers(requested: Sequence[str], model: tf.keras.Model, backbone: str) -> None:
    """Raise :class:`BackboneError` naming the valid layers if one requested layer is unknown."""
    valid = feature_layer_names(model)
    unknown = [name for name in requested if name not in valid]
    if not unknown:
        return
    hints = {name: difflib.get_close_matches(name, valid, n=3) for name in unknown}
    hint_text = "; ".join(f"{name!r}: did you mean {', '.join(close)}?"
                          for name, close in hints.items() if close)
    raise BackboneError(f"unknown {backbone} layer(s) {unknown}. {hint_text} "
                        f"Valid layers: {', '.join(valid)}")


def fold_batchnorm(model: tf.keras.Model) -> tf.keras.Model:
    """Fold every inference-mode BatchNormalization that follows a Conv2D into that Conv2D.

    The backbone's variant of :func:`tf_usaug.relevance.fold_batchnorm` (same arithmetic,
    :func:`~tf_usaug.relevance.fold_batchnorm_weights`): it keeps every layer and its name,
    because the extractor looks its feature layers up by name, where the relevance version
    rebuilds the graph without the BN layers for iNNvestigate.

    ``bn(conv(x)) = s * (W * x + b - mean) + beta`` with ``s = gamma / sqrt(var + eps)``
    equals a convolution with kernel ``s * W`` and bias ``s * (b - mean) + beta``; the BN layer
    becomes an identity that keeps its name (so layer look-ups still work).

    Args:
        model: a functional Keras model (e.g. ``tf.keras.applications.ResNet50``).
    Returns:
        A new functional model with the same layer names and (up to float rounding) outputs.
    """
    folds: dict[str, tf.keras.layers.Layer] = {}  # conv name -> the BN that follows it
    for layer in model.layers:
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            continue
        inbound = layer.inbound_nodes[0].inbound_layers if layer.inbound_nodes else None
        if (isinstance(inbound, tf.keras.layers.Conv2D) and len(inbound.outbound_nodes) == 1
                and layer.axis in ([-1], [3]) and len(layer.inbound_nodes) == 1):
            folds[inbound.name] = layer
    folded_bns = {bn.name for bn in folds.values()}

    def clone(layer):
        config = layer.get_config()
        if layer.name in folded_bns:
            return tf.keras.layers.Activation("linear", name=layer.name, dtype=layer.dtype_policy)
        if layer.name in folds:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    folded = tf.keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.name in folded_bns or not layer.weights:
            continue
        target = folded.get_layer(layer.name)
        if layer.name not in folds:
            target.set_weights(layer.get_weights())
            continue
        bn = folds[layer.name]
        kernel, *bias = layer.get_weights()
        params = dict(zip([w.name.split("/")[-1].split(":")[0] for w in bn.weights],
                          bn.get_weights()))
        mean = params["moving_mean"]
        target.set_weights(list(fold_batchnorm_weights(
            kernel, bias[0] if bias else None, params.get("gamma", np.ones_like(mean)),
            params.get("beta", np.zeros_like(mean)), mean, params["moving_variance"],
            bn.epsilon)))
    return folded


def _check_weights_file(path: Path) -> None:
    """Raise :class:`BackboneError` (message starting with the path) for an unusable file."""
    if not path.is_file():
        raise BackboneError(f"{path}: weights file not found (give a Keras .h5 weights file, "
                            f"'imagenet' or 'none')")
    if path.suffix.lower() not in _WEIGHT_SUFFIXES:
        raise BackboneError(f"{path}: not a Keras weights file (expected one of "
                            f"{', '.join(_WEIGHT_SUFFIXES)})")


def _h5_layer_names(path: Path) -> set[str]:
    """Layer names stored in a Keras HDF5 weights (or full model) file."""
    import h5py

    with h5py.File(path, "r") as handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        names = group.attrs.get("layer_names", [])
        return {n.decode() if isinstance(n, bytes) else str(n) for n in names}


def load_weights_file(model: tf.keras.Model, path: str | os.PathLike,
                      needed: Sequence[str]) -> None:
    """Load an ``.h5`` file into the full backbone ``model``, in order or by layer name.

    The file is first loaded topologically (it was saved from the same architecture, e.g. the
    Keras ``*_notop.h5``); if that fails it is loaded by layer name (e.g. a file that also
    holds the classifier top), after checking it holds every weighted layer in ``needed``,
    since Keras would otherwise silently leave missing layers random.

    Args:
        model: the untruncated application model, built with ``weights=None``.
        path: the weights file.
        needed: names of the layers the truncated extractor keeps.
    """
    path = Path(path)
    _check_weights_file(path)
    try:
        model.load_weights(str(path))
        return
    except (ValueError, KeyError, OSError) as exc:  # layer count/shape mismatch: try names
        first_error = exc
    try:
        stored = _h5_layer_names(path)
    except OSError as exc:
        raise BackboneError(f"{path}: cannot read as HDF5 ({exc})") from exc
    missing = [name for name in needed if model.get_layer(name).weights and name not in stored]
    if missing:
        raise BackboneError(f"{path}: does not hold weights for layer(s) {missing[:5]}"
                            f"{' ...' if len(missing) > 5 else ''} of this backbone "
                            f"(loading in order failed too: {first_error})")
    try:
        model.load_weights(str(path), by_name=True)
    except ValueError as exc:
        raise BackboneError(f"{path}: weights do not fit this backbone ({exc})") from exc


def _imagenet_model(name: str, constructor: Callable, policy) -> tf.keras.Model:
    """The application with ImageNet weights, or a :class:`BackboneError` when offline."""
    try:
        with _dtype_policy(policy):
            return constructor(include_top=False, weights="imagenet", input_shape=(None, None, 3))
    except Exception as exc:  # keras raises a bare Exception on "URL fetch failure"
        cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
        raise BackboneError(
            f"ImageNet weights for {name} are not in the Keras cache ({cache}) and could not "
            f"be downloaded ({type(exc).__name__}: {exc}). On an offline machine copy the "
            f"Keras '{name}_weights_tf_dim_ordering_tf_kernels_notop.h5' file there or pass "
            f"--weights PATH/TO/FILE.h5; use --weights none for a random backbone (tests)."
        ) from exc


class _dtype_policy:
    """Context manager: Keras global dtype policy while the backbone's layers are created."""

    def __init__(self, policy: str):
        self.policy = policy

    def __enter__(self):
        self.previous = tf.keras.mixed_precision.global_policy()
        tf.keras.mixed_precision.set_global_policy(self.policy)

    def __exit__(self, *exc):
        tf.keras.mixed_precision.set_global_policy(self.previous)
        return False


class FeatureExtractor:
    """Grey ``[B, H, W, 1]`` in ``[0, 1]`` -> dict of float32 feature maps ``[B, h, w, c]``.

    Attributes:
        model: the truncated, frozen Keras model on preprocessed RGB input with dict outputs.
        style_layers, content_layer: the layer names the losses use.
        config: the :class:`BackboneConfig` it was built from.
    """

    def __init__(self, model: tf.keras.Model, preprocess_input: Callable, config: BackboneConfig):
        self.model = model
        self.preprocess_input = preprocess_input
        self.input_scale, self.input_offset = grey_affine(preprocess_input)
        self.config = config
        self.style_layers = tuple(config.style_layers)
        self.content_layer = config.content_layer

    @property
    def layers(self) -> tuple[str, ...]:
        """All output layer names (style layers, then the content layer)."""
        return self.config.layers

    def __call__(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """Features of grey images ``[B, H, W, 1]`` in ``[0, 1]`` (inference mode)."""
        images = tf.convert_to_tensor(images, tf.float32)
        outputs = self.model(images * self.input_scale + self.input_offset, training=False)
        return {name: tf.cast(outputs[name], tf.float32) for name in self.layers}

    def feature_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        """``(h, w, c)`` of every output for an ``height x width`` input (no computation)."""
        spec = tf.TensorSpec([1, height, width, 1], tf.float32)
        concrete = tf.function(self.__call__).get_concrete_function(spec)
        return {name: tuple(int(d) for d in concrete.structured_outputs[name].shape[1:])
                for name in self.layers}


def build_extractor(cfg: BackboneConfig | None = None,
                    mixed_precision: bool = False) -> FeatureExtractor:
    """Build the frozen, truncated feature extractor described by ``cfg``.

    Args:
        cfg: which network, weights and layers (defaults: ResNet50, ImageNet, paper layers).
        mixed_precision: build the layers with the ``mixed_float16`` policy (GPU speed-up;
            outputs are still returned as float32).
    Returns:
        A :class:`FeatureExtractor`.
    Raises:
        BackboneError: unknown layer (the message lists the valid ones), unusable weights
            file, or ImageNet weights neither cached nor downloadable.
    """
    cfg = cfg or BackboneConfig()
    constructor, preprocess = _application(cfg.name)
    policy = "mixed_float16" if mixed_precision else "float32"
    weights = cfg.weights.strip()
    from_file = weights.lower() not in ("imagenet", "none", "")
    if from_file:
        _check_weights_file(Path(weights))  # fail before the model is built
    if weights.lower() == "imagenet":
        full = _imagenet_model(cfg.name, constructor, policy)
    else:
        with _dtype_policy(policy):
            full = constructor(include_top=False, weights=None, input_shape=(None, None, 3))
    check_layers(cfg.layers, full, cfg.name)
    if weights.lower() in ("none", ""):
        seeded_initialisation(full, cfg.seed)
    if from_file:
        probe = tf.keras.Model(full.input, [full.get_layer(n).output for n in cfg.layers])
        load_weights_file(full, weights, [layer.name for layer in probe.layers])
    if cfg.fold_batchnorm:
        with _dtype_policy(policy):
            full = fold_batchnorm(full)
    model = tf.keras.Model(full.input, {name: full.get_layer(name).output for name in cfg.layers},
                           name=f"{cfg.name}_features")
    model.trainable = False
    return FeatureExtractor(model, preprocess, cfg)


def forward_conv_flops(extractor: FeatureExtractor, height: int, width: int) -> int:
    """Floating-point operations of the convolutions in one forward pass of one image.

    Counts ``2 * h_out * w_out * k_h * k_w * c_in * c_out`` (multiply + add) for every Conv2D
    the traced extractor graph executes for an ``height x width`` grey input; the input
    gradient of a convolution costs the same again, so an NST step is about twice this.
    """
    spec = tf.TensorSpec([1, height, width, 1], tf.float32)
    graph = tf.function(extractor.__call__).get_concrete_function(spec).graph
    total = 0
    for op in _all_ops(graph):
        if op.type not in ("Conv2D", "_FusedConv2D"):
            continue
        out_shape = op.outputs[0].shape.as_list()
        kernel_shape = op.inputs[1].shape.as_list()
        if None in out_shape or None in kernel_shape:
            raise ValueError(f"cannot count FLOPs of {op.name}: unknown shape {out_shape}")
        k_h, k_w, c_in, c_out = kernel_shape
        total += 2 * out_shape[1] * out_shape[2] * k_h * k_w * c_in * c_out
    return total


def _all_ops(graph: tf.Graph):
    """Every op of a FuncGraph, including those inside nested function definitions."""
    yield from graph.get_operations()
    for function in getattr(graph, "_functions", {}).values():
        inner = getattr(function, "graph", None)
        if inner is not None:
            yield from _all_ops(inner)

