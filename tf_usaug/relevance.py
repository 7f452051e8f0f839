"""LRP relevance maps with iNNvestigate: BatchNorm folding, a cached stage in its own process.

Paper 002 (Panigrahi et al., AAAI 2025) weights the NST content loss by the layer-wise
relevance (LRP) of each content pixel for a ResNet50 classifier's decision, propagated with
the alpha-beta rule (eq. 16) so that relevance is conserved layer by layer (eq. 10-13).

iNNvestigate 2.x only runs with eager execution disabled for the WHOLE process, which the NST
engine (eager, ``tf.function``) cannot live with. So this module has two sides:

* the library side, safe to import anywhere (imports neither TensorFlow nor iNNvestigate at
  module level): :class:`RelevanceConfig`, :func:`cache_key`, :func:`cache_path`,
  :func:`ensure_relevance` (starts the stage below for the maps not yet cached),
  :func:`load_relevance`, :func:`relevance_to_weight`, :func:`save_heatmap`,
  :func:`fold_batchnorm`;
* the stage, ``python -m tf_usaug.relevance --cache DIR IMAGE...`` (:func:`main`), which
  disables eager execution, builds the analyzer once and writes one ``<key>.npy`` per image.

Building the analyzer is fast here (ResNet50: seconds, not the 2-20 minutes iNNvestigate
takes as is) for two reasons: BatchNorm is folded into the convolutions (:func:`fold_batchnorm`,
exact), and Keras is stopped from evaluating every graph constant in its own session call
(:func:`skip_constant_evaluation`, which made the build quadratic in the depth).

Usage::

    cfg = RelevanceConfig(weights="none", size=128, rule="lrp.epsilon")
    maps = ensure_relevance(["a.png", "b.png"], cfg, "cache/")   # {image path: .npy path}
    weight = relevance_to_weight(load_relevance(maps[Path("a.png")]), (32, 32))

References:
    Panigrahi et al. 2025, eq. 10-13 (conservation), 15 (neuron), 16 (alpha-beta rule).
    Bach et al. 2015, "On pixel-wise explanations ... by layer-wise relevance propagation".
    Alber et al. 2019, "iNNvestigate neural networks!" (JMLR 20(93)).
"""
from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import io as _bytes_io
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import _log

#: Bumped whenever the maths of a stored map changes, so old cache entries stop matching.
CACHE_FORMAT = "tf_usaug-relevance-v1"

#: iNNvestigate analyzers accepted as ``rule``: LRP variants only (the paper's method).
RULES = (
    "lrp.alpha_2_beta_1",  # eq. 16 with alpha=2, beta=1, bias in the denominators
    "lrp.alpha_2_beta_1_IB",  # eq. 16 exactly as printed: bias ignored
    "lrp.alpha_1_beta_0",
    "lrp.alpha_1_beta_0_IB",
    "lrp.epsilon",
    "lrp.z",
    "lrp.z_plus",
    "lrp.z_plus_fast",
    "lrp.flat",
    "lrp.w_square",
    "lrp.sequential_preset_a",
    "lrp.sequential_preset_b",
    "lrp.sequential_preset_a_flat",
    "lrp.sequential_preset_b_flat",
)

#: Input transforms applied OUTSIDE the analysed model (Keras ``imagenet_utils`` modes).
PREPROCESS_MODES = ("caffe", "torch", "tf", "unit")

#: Appended to the classifier's layer names before the analysis (see :func:`rebuild_model`).
LAYER_SUFFIX = "_explained"

#: Lower bound of the content-loss weight (see :func:`relevance_to_weight`).
WEIGHT_FLOOR = 0.2

_KERAS_RESNET50_WEIGHTS = (
    "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
    "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
    "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
    "2cb95161c43110f7111970584f804107",
)


class RelevanceError(ValueError):
    """Bad relevance configuration or unavailable classifier (message says what to do)."""


@dataclass(frozen=True)
class RelevanceConfig:
    """What is explained, and how.

    Args:
        model: ``"resnet50"`` (Keras ImageNet ResNet50, the classifier of paper 002) or the path
            of any Keras classifier file (``.h5``/``.keras``/SavedModel folder), e.g. the
            fine-tuned ultrasound ResNet50. A final softmax is removed: LRP explains a logit.
        weights: for ``resnet50``: ``"imagenet"`` (Keras cache, downloaded if online), the
            path of a ResNet50 ``.h5`` (air-gapped clusters), or ``"none"`` (random, tests).
            For a model file: ``"imagenet"``/``"none"`` keep the file's own weights, a path
            loads those weights into it.
        rule: iNNvestigate analyzer name (:data:`RULES`); default the alpha-beta rule with
            alpha=2, beta=1 (paper 002, eq. 16).
        neuron_selection: ``"max_activation"`` (the predicted class) or a class index
            (``"1"``) to explain that logit.
        size: side of the square input the classifier sees (224: ResNet50 on ImageNet).
        fold_bn: fold BatchNormalization into the preceding conv/dense before the analysis
            (exact, see :func:`fold_batchnorm`; LRP then sees plain linear layers).
        preprocess: map from grey ``[0, 1]`` to the classifier's input (Keras
            ``imagenet_utils`` modes): ``"caffe"`` (ResNet50: x255, RGB->BGR, minus the
            ImageNet mean), ``"torch"``, ``"tf"`` (``[-1, 1]``) or ``"unit"`` (as is).
        batch_size: images per ``analyze`` call (no effect on the maps).
    """

    model: str = "resnet50"
    weights: str = "imagenet"
    rule: str = "lrp.alpha_2_beta_1"
    neuron_selection: str = "max_activation"
    size: int = 224
    fold_bn: bool = True
    preprocess: str = "caffe"
    batch_size: int = field(default=8, compare=False)

    def __post_init__(self):
        if self.rule not in RULES:
            raise RelevanceError(f"unknown LRP rule {self.rule!r}; choose one of {', '.join(RULES)}")
        if self.preprocess not in PREPROCESS_MODES:
            raise RelevanceError(f"unknown preprocess {self.preprocess!r}; "
                                 f"choose one of {', '.join(PREPROCESS_MODES)}")
        if self.neuron_selection != "max_activation" and not str(self.neuron_selection).isdigit():
            raise RelevanceError(f"neuron_selection must be 'max_activation' or a class index, "
                                 f"not {self.neuron_selection!r}")
        if int(self.size) < 32:
            raise RelevanceError(f"size must be at least 32 pixels, not {self.size}")
        if int(self.batch_size) < 1:
            raise RelevanceError(f"batch_size must be positive, not {self.batch_size}")

    @property
    def is_resnet50(self) -> bool:
        return str(self.model).lower() == "resnet50"

    def cli_args(self) -> list[str]:
        """The ``python -m tf_usaug.relevance`` options that reproduce this configuration."""
        args = ["--model", str(self.model), "--weights", str(self.weights), "--rule", self.rule,
                "--neuron-selection", str(self.neuron_selection), "--size", str(self.size),
                "--preprocess", self.preprocess, "--batch-size", str(self.batch_size)]
        return args + ([] if self.fold_bn else ["--no-fold-bn"])


# --------------------------------------------------------------------------- cache keys


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file's bytes (memoised on path, size and mtime: weights files are big)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _path_digest(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and bytes, sorted)."""
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            st = f.stat()
            h.update(str(f.relative_to(path)).encode() + b"\0")
            h.update(_file_digest(str(f), st.st_size, st.st_mtime_ns).encode())
        return h.hexdigest()
    st = path.stat()
    return _file_digest(str(path.resolve()), st.st_size, st.st_mtime_ns)


def _weights_identity(weights: str) -> str:
    """``"imagenet"``/``"none"`` as they are, a weights file by the hash of its bytes."""
    if str(weights).lower() in ("imagenet", "none"):
        return str(weights).lower()
    if not Path(weights).exists():
        raise RelevanceError(f"{weights}: weights file not found (use imagenet, none or a path)")
    return "sha256:" + _path_digest(weights)


def model_identity(cfg: RelevanceConfig) -> str:
    """Name of the explained classifier: architecture/file hash plus weights identity."""
    if cfg.is_resnet50:
        return f"resnet50|{_weights_identity(cfg.weights)}"
    if not Path(cfg.model).exists():
        raise RelevanceError(f"{cfg.model}: classifier model file not found "
                             f"(use resnet50 or the path of a Keras .h5/.keras file)")
    ident = f"file:sha256:{_path_digest(cfg.model)}"
    if str(cfg.weights).lower() not in ("imagenet", "none"):
        ident += f"|{_weights_identity(cfg.weights)}"
    return ident


def cache_key(image_path: str | Path, cfg: RelevanceConfig) -> str:
    """sha256 naming one relevance map: image bytes, classifier identity, rule, size, folding.

    Args:
        image_path: the image file (its bytes are hashed, not its name: a renamed copy hits).
        cfg: the configuration; every field that changes the map enters the key.
    """
    from .io import ImageError

    try:
        image_digest = _path_digest(image_path)
    except OSError as exc:
        raise ImageError(image_path, f"cannot read image file ({exc.strerror or exc})") from None
    fields = {"format": CACHE_FORMAT, "image": image_digest, "model": model_identity(cfg),
              "rule": cfg.rule, "neuron_selection": str(cfg.neuron_selection),
              "size": int(cfg.size), "fold_bn": bool(cfg.fold_bn), "preprocess": cfg.preprocess}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def cache_path(image_path: str | Path, cfg: RelevanceConfig, cache_dir: str | Path) -> Path:
    """Where the relevance map of ``image_path`` under ``cfg`` lives: ``cache_dir/<key>.npy``."""
    return Path(cache_dir) / f"{cache_key(image_path, cfg)}.npy"


def load_relevance(path: str | Path) -> np.ndarray:
    """Load a cached relevance map as a float32 ``HxW`` array (signed, input pixel grid)."""
    arr = np.load(Path(path), allow_pickle=False)
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected an HxW relevance map, got shape {arr.shape}")
    return arr.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- library side


def ensure_relevance(image_paths: Iterable[str | Path], cfg: RelevanceConfig,
                     cache_dir: str | Path, verbose: bool = False,
                     threads: int | None = None) -> dict[Path, Path]:
    """Make sure every image has a cached relevance map; return ``{image path: .npy path}``.

    Runs ``python -m tf_usaug.relevance`` (eager disabled, iNNvestigate) in a child process
    only when some map is missing, so the calling process never imports iNNvestigate. The
    child's stage lines are passed through to stderr as they come.

    Args:
        image_paths: content images (any format ``tf_usaug.io.read_image`` reads).
        cfg: the classifier, rule and input size.
        cache_dir: folder of ``<key>.npy`` maps (created; shareable between runs and ranks).
        verbose: let the child print TensorFlow's logs and per-stage timings.
        threads: TensorFlow CPU threads for the child (default: TensorFlow's choice).

    Raises:
        RelevanceError: the child stopped on bad input or configuration (a corrupt image, an
            unusable classifier); the message is the child's one-line error.
        RuntimeError: the child crashed; the message holds its last stderr lines.
    """
    cache_dir = Path(cache_dir)
    images = list(dict.fromkeys(Path(p) for p in image_paths))
    paths = {p: cache_path(p, cfg, cache_dir) for p in images}
    missing = [p for p, npy in paths.items() if not npy.exists()]
    if not missing:
        return paths
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, list_file = tempfile.mkstemp(prefix=".relevance-list-", suffix=".txt", dir=cache_dir)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write("".join(f"{p}\n" for p in missing))
        cmd = [sys.executable, "-m", "tf_usaug.relevance", "--cache", str(cache_dir),
               *cfg.cli_args(), "--list", list_file]
        if verbose:
            cmd.append("--verbose")
        if threads:
            cmd += ["--threads", str(int(threads))]
        returncode, tail, errors = _run_passing_stderr(cmd)
    finally:
        os.unlink(list_file)
    if returncode == 2 and errors:  # the child's main() reported bad input in one line
        raise RelevanceError(errors[-1])
    if returncode != 0:
        raise RuntimeError(f"the relevance stage failed (exit {returncode}): "
                           f"{' '.join(cmd[2:])}\n" + "".join(tail).rstrip()
                           + "".join(f"\nerror: {e}" for e in errors))
    absent = [str(p) for p in missing if not paths[p].exists()]
    if absent:
        raise RuntimeError(f"the relevance stage exited 0 but wrote no map for: {', '.join(absent)}")
    return paths


def _run_passing_stderr(cmd: list[str],
                        tail_lines: int = 20) -> tuple[int, list[str], list[str]]:
    """Run ``cmd`` with the package root importable; echo its stderr live, keep the last lines.

    Lines ``error: MESSAGE`` are held back and returned as MESSAGE (the caller reports them
    once, in its own words). Returns (exit code, last stderr lines, error messages).
    """
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          text=True, errors="replace", bufsize=1) as proc:
        assert proc.stderr is not None
        errors = []
        for line in proc.stderr:
            if line.startswith("error: "):
                errors.append(line[len("error: "):].strip())
                continue
            sys.stderr.write(line)
            sys.stderr.flush()
            # progress bars redraw with carriage returns: keep only their last state
            tail.append(line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r\n") else line)
        returncode = proc.wait()
    return returncode, list(tail), errors


def relevance_to_weight(relevance: np.ndarray, hw: tuple[int, int],
                        floor: float = WEIGHT_FLOOR) -> np.ndarray:
    """Content-loss weight at a feature map of size ``hw`` from a signed relevance map.

    ``w = floor + (1 - floor) * P / mean(P)`` with ``P = area_average(max(R, 0))`` resized to
    ``hw``: non-negative, mean exactly 1 (the weighted content loss keeps the scale of the
    plain one, so the paper's alpha/beta balance of eq. 1 still holds), and at least ``floor``
    everywhere, so no region of the content image is left unconstrained. Without positive
    relevance the weight is uniformly 1 (the plain content loss, eq. 2).

    Args:
        relevance: ``HxW`` LRP map (``R_p`` of paper 002, sum approx. ``f(x)``, eq. 13).
        hw: ``(h, w)`` of the content layer's feature map.
        floor: minimum weight in ``[0, 1]``.
    """
    import cv2

    rel = np.asarray(relevance, dtype=np.float64)
    if rel.ndim != 2 or min(rel.shape) < 1:
        raise ValueError(f"relevance must be a non-empty HxW array, got shape {rel.shape}")
    h, w = (int(v) for v in hw)
    if h < 1 or w < 1:
        raise ValueError(f"hw must be positive, got {hw}")
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must lie in [0, 1], got {floor}")
    positive = np.where(np.isfinite(rel), np.maximum(rel, 0.0), 0.0)
    shrinking = h <= positive.shape[0] and w <= positive.shape[1]
    pooled = cv2.resize(positive, (w, h), interpolation=cv2.INTER_AREA if shrinking
                        else cv2.INTER_LINEAR)
    pooled = np.maximum(pooled, 0.0)
    mean = pooled.mean()
    if not mean > 0.0:
        return np.ones((h, w), np.float32)
    return (floor + (1.0 - floor) * pooled / mean).astype(np.float32)


def heatmap_rgb(image: np.ndarray, relevance: np.ndarray, percentile: float = 99.5,
                max_alpha: float = 0.85) -> np.ndarray:
    """RGB ``HxWx3`` float overlay: grey image, red positive / blue negative relevance.

    The colour scale is symmetric, ``[-m, m]`` with ``m`` the ``percentile`` of ``|R|`` (robust
    to the few extreme pixels LRP produces); opacity grows with ``|R| / m`` so irrelevant
    pixels show the plain image.
    """
    import cv2
    from matplotlib import colormaps

    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    rel = np.asarray(relevance, dtype=np.float64)
    if img.ndim != 2 or rel.ndim != 2:
        raise ValueError(f"expected HxW image and relevance, got {img.shape} and {rel.shape}")
    if rel.shape != img.shape:
        rel = cv2.resize(rel, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    rel = np.nan_to_num(rel)
    m = float(np.percentile(np.abs(rel), percentile))
    m = m if m > 0 else float(np.abs(rel).max()) or 1.0
    colours = colormaps["bwr"]((np.clip(rel / m, -1.0, 1.0) + 1.0) / 2.0)[..., :3]
    alpha = max_alpha * np.clip(np.abs(rel) / m, 0.0, 1.0)[..., None]
    grey = np.repeat(np.clip(img, 0.0, 1.0)[..., None], 3, axis=-1)
    return (1.0 - alpha) * grey + alpha * colours


def save_heatmap(image: np.ndarray, relevance: np.ndarray, path: str | Path) -> Path:
    """Write a PNG of the signed relevance over the grey image (Agg, atomic), image-sized.

    Args:
        image: ``HxW`` grey image in ``[0, 1]``.
        relevance: signed map; resized to the image if its shape differs.
        path: destination ``.png`` (folders created; temp file + rename).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .outputs import atomic_write_bytes

    rgb = heatmap_rgb(image, relevance)
    h, w = rgb.shape[:2]
    dpi = 100
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(rgb, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    buf = _bytes_io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- BN folding

_BN_EPS_DEFAULT = 1e-3


def fold_batchnorm_weights(kernel: np.ndarray, bias: np.ndarray | None, gamma: np.ndarray,
                           beta: np.ndarray, mean: np.ndarray, variance: np.ndarray,
                           epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of ``BN(conv(x))`` as one conv: exact in real arithmetic.

    ``s = gamma / sqrt(var + eps)``, ``W' = W * s`` (over the output-channel axis, the last
    of a Keras conv/dense kernel), ``b' = (b - mean) * s + beta``.
    """
    scale = gamma / np.sqrt(variance + epsilon)
    bias = np.zeros_like(mean) if bias is None else bias
    folded_kernel = (kernel * scale.reshape((1,) * (kernel.ndim - 1) + (-1,))).astype(kernel.dtype)
    folded_bias = ((bias - mean) * scale + beta).astype(kernel.dtype)
    return folded_kernel, folded_bias


def _batchnorm_parameters(layer, values: dict) -> tuple[np.ndarray, ...]:
    """``(gamma, beta, moving_mean, moving_variance)`` of a Keras BatchNormalization."""
    mean = values[id(layer.moving_mean)]
    variance = values[id(layer.moving_variance)]
    gamma = values[id(layer.gamma)] if layer.scale else np.ones_like(mean)
    beta = values[id(layer.beta)] if layer.center else np.zeros_like(mean)
    return gamma, beta, mean, variance


def _is_foldable_producer(layer) -> bool:
    """Conv1D/2D/3D or Dense (kernel's last axis = output channels) with no activation."""
    from tensorflow import keras

    kl = keras.layers
    kinds = (kl.Conv1D, kl.Conv2D, kl.Conv3D, kl.Dense)
    transposed = (kl.Conv1DTranspose, kl.Conv2DTranspose, kl.Conv3DTranspose)
    if not isinstance(layer, kinds) or isinstance(layer, transposed):
        return False
    return keras.activations.serialize(layer.activation) in ("linear", None)


def _channel_axis(layer, rank: int) -> int:
    """Axis of the output channels of a conv/dense output of the given rank."""
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return 1
    return rank - 1


def _bn_axis(bn, rank: int) -> int | None:
    axis = bn.axis if isinstance(bn.axis, (list, tuple)) else [bn.axis]
    if len(axis) != 1:
        return None
    return int(axis[0]) % rank


def _ordered_nodes(model) -> list:
    """The model's nodes from inputs to outputs (Keras functional internals)."""
    by_depth = model._nodes_by_depth  # noqa: SLF001 - the functional graph, as Keras runs it
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def _tid(tensor) -> str:
    return str(id(tensor))


def _unique_name(name: str, used: set[str]) -> str:
    candidate, i = name, 1
    while candidate in used:
        candidate, i = f"{name}_{i}", i + 1
    used.add(candidate)
    return candidate


def _clone_layer(layer, used_names: set[str], suffix: str = "", **config_updates):
    config = dict(layer.get_config(), **config_updates)
    config["name"] = _unique_name((config.get("name") or layer.name) + suffix, used_names)
    return layer.__class__.from_config(config)


def _require_functional(model) -> None:
    if not getattr(model, "_is_graph_network", False) or not model.inputs:
        raise RelevanceError(f"cannot rebuild {model.name!r}: only functional/sequential Keras "
                             f"models are supported (not subclassed models)")


def _rebuild(model, inputs: list, state: dict) -> list:
    """Run ``model``'s graph on new ``inputs``, folding BN and inlining nested models.

    Returns the new output tensors (in ``model.outputs`` order). ``state`` holds ``values``
    (id of each original variable -> its value, read in ONE batch: per-layer reads cost a
    session run each in graph mode, 70 s for ResNet50), ``assign`` (new variable, value)
    pairs set in one batch at the end, ``clones`` (original layer -> clone: shared layers
    stay shared), ``names`` (used layer names) and ``counts`` (folded/kept BN layers).
    """
    from tensorflow import keras

    values, assign, clones, counts = (state[k] for k in ("values", "assign", "clones", "counts"))
    used_names, suffix = state["names"], state["suffix"]
    _require_functional(model)
    nodes = _ordered_nodes(model)
    consumers = collections.Counter(tid for node in nodes if not node.is_input
                                    for tid in node.flat_input_ids)
    output_ids = {_tid(t) for t in model.outputs}
    new: dict[str, object] = {_tid(old): t for old, t in zip(model.inputs, inputs)}

    # BN nodes whose single input is the sole output of a foldable conv/dense node
    fold_pairs: dict[int, object] = {}  # id(producer node) -> bn node
    for node in nodes if state["fold"] else []:
        bn = node.layer
        if node.is_input or not isinstance(bn, keras.layers.BatchNormalization):
            continue
        if len(node.keras_inputs) != 1 or node.call_kwargs.get("training"):
            continue
        x = node.keras_inputs[0]
        producer_layer, node_index, _ = x._keras_history  # noqa: SLF001
        producer = producer_layer._inbound_nodes[node_index]  # noqa: SLF001
        rank = len(x.shape)
        if (_is_foldable_producer(producer_layer) and consumers[_tid(x)] == 1
                and _tid(x) not in output_ids and len(producer.flat_output_ids) == 1
                and _bn_axis(bn, rank) == _channel_axis(producer_layer, rank)):
            fold_pairs[id(producer)] = node
    folded_bn_nodes = {id(bn_node) for bn_node in fold_pairs.values()}

    for node in nodes:
        if node.is_input:
            continue
        layer = node.layer
        if any(tid not in new for tid in node.flat_input_ids):
            continue  # not on a path from the inputs (e.g. a side branch of a nested model)
        args, kwargs = _map_arguments(node, new)
        if id(node) in fold_pairs:
            bn = fold_pairs[id(node)].layer
            folded = _clone_layer(layer, used_names, suffix, use_bias=True,
                                  bias_initializer="zeros")
            out = folded(*args, **kwargs)
            kernel = values[id(layer.kernel)]
            bias = values[id(layer.bias)] if layer.use_bias else None
            gamma, beta, mean, variance = _batchnorm_parameters(bn, values)
            assign.extend(zip([folded.kernel, folded.bias],
                              fold_batchnorm_weights(kernel, bias, gamma, beta, mean, variance,
                                                     float(bn.epsilon))))
            bn_node = fold_pairs[id(node)]
            new[node.flat_output_ids[0]] = out
            new[bn_node.flat_output_ids[0]] = out
            counts["folded"] += 1
            continue
        if id(node) in folded_bn_nodes:
            continue  # mapped when its producer was folded
        if isinstance(layer, keras.Model):
            outs = _rebuild(layer, _flatten(args), state)
            outputs = outs if len(outs) > 1 else outs[0]
        else:
            first_use = layer not in clones
            if first_use:
                clones[layer] = _clone_layer(layer, used_names, suffix)
            clone = clones[layer]
            outputs = clone(*args, **kwargs)
            if first_use:  # built by the call: same variables, in the same order
                assign.extend((new_var, values[id(old_var)])
                              for new_var, old_var in zip(clone.weights, layer.weights))
            if isinstance(layer, keras.layers.BatchNormalization):
                counts["kept"] += 1
        for tid, y in zip(node.flat_output_ids, _flatten(outputs)):
            new[tid] = y
    return [new[_tid(t)] for t in model.outputs]


def _flatten(structure) -> list:
    import tensorflow as tf

    return list(tf.nest.flatten(structure))


def _map_arguments(node, new: dict) -> tuple[tuple, dict]:
    """The node's call arguments with every original Keras tensor replaced by its new one."""
    import tensorflow as tf

    def swap(obj):
        tid = _tid(obj)
        return new[tid] if tid in new else obj

    args = tf.nest.map_structure(swap, node.call_args)
    kwargs = tf.nest.map_structure(swap, node.call_kwargs)
    return args, kwargs


def fold_batchnorm(model):
    """A copy of ``model`` with each BatchNormalization folded into the conv/dense before it.

    Inference-mode BN after a linear layer is itself linear, so
    ``BN(W*x + b) = W'*x + b'`` with ``W' = W*gamma/sqrt(var+eps)`` and
    ``b' = (b - mean)*gamma/sqrt(var+eps) + beta`` exactly (:func:`fold_batchnorm_weights`).
    The functional graph is rebuilt with fresh layers (residual additions and shared layers
    kept, nested functional models inlined); BN layers that do not directly follow a
    linear conv/dense (or whose input has other consumers) are kept as they are.

    LRP (paper 002, eq. 16) then treats each conv+BN as one linear neuron (eq. 15) instead of
    applying iNNvestigate's separate BN rule, which inflates alpha-beta relevance by orders of
    magnitude; the analyzer also builds 3-4x faster (fewer layers to reverse).

    Args:
        model: a functional or sequential Keras model (works with eager on or off).

    Returns:
        A new Keras model with the same inputs/outputs semantics and fewer layers.
    """
    return rebuild_model(model, fold=True)


def rebuild_model(model, fold: bool = True, name_suffix: str = ""):
    """``model``'s graph rebuilt from fresh layers (:func:`fold_batchnorm` does the work).

    Args:
        model: functional or sequential Keras model.
        fold: fold BatchNormalization into the preceding conv/dense.
        name_suffix: appended to every layer name. iNNvestigate creates layers with Keras
            auto-names (``add``, ``multiply``...); a classifier saved with such names (loaded
            names do not reserve Keras's counters) then fails with "The name ... is used 2
            times". A suffix keeps the two apart.
    """
    from tensorflow import keras

    _require_functional(model)
    used_names: set[str] = set()
    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=_unique_name(
                  t._keras_history[0].name + name_suffix, used_names))  # noqa: SLF001
              for t in model.inputs]
    variables = model.weights
    state = {"values": dict(zip(map(id, variables), keras.backend.batch_get_value(variables))),
             "assign": [], "clones": {}, "names": used_names, "fold": fold,
             "suffix": name_suffix, "counts": collections.Counter(folded=0, kept=0)}
    outputs = _rebuild(model, inputs, state)
    folded = keras.Model(inputs if len(inputs) > 1 else inputs[0],
                         outputs if len(outputs) > 1 else outputs[0], name=model.name)
    keras.backend.batch_set_value(state["assign"])
    folded.folded_batchnorm_counts = dict(state["counts"])
    return folded


# --------------------------------------------------------------------------- the stage
# Everything below runs in the child process (``main``), after eager execution is disabled.


def preprocess_batch(images: np.ndarray, mode: str, channels: int) -> np.ndarray:
    """Grey ``[B, H, W]`` in ``[0, 1]`` -> the classifier's input ``[B, H, W, channels]``.

    Applied to the array BEFORE ``analyze`` (outside the analysed graph), so LRP explains the
    classifier alone and the relevance lives on the classifier's input pixels.

    Args:
        images: float grey batch in ``[0, 1]``.
        mode: one of :data:`PREPROCESS_MODES` (Keras ``imagenet_utils.preprocess_input``
            modes on 0-255 RGB, or ``"unit"`` for the ``[0, 1]`` values as they are).
        channels: 3 (grey replicated to RGB) or 1.
    """
    x = np.asarray(images, dtype=np.float32)[..., None]
    if mode == "unit":
        return np.repeat(x, channels, axis=-1) if channels != 1 else x
    if channels != 3:
        raise RelevanceError(f"preprocess {mode!r} needs a 3-channel classifier input "
                             f"(this one has {channels}); use --preprocess unit")
    from tensorflow.keras.applications import imagenet_utils

    rgb = np.repeat(x * 255.0, 3, axis=-1)
    return imagenet_utils.preprocess_input(rgb, data_format="channels_last", mode=mode)


def imagenet_weights_file() -> str:
    """Path of Keras's ImageNet ResNet50 weights (cached, or downloaded when online)."""
    from tensorflow import keras

    fname, origin, md5 = _KERAS_RESNET50_WEIGHTS
    try:
        return keras.utils.get_file(fname, origin, cache_subdir="models", file_hash=md5)
    except Exception as exc:  # noqa: BLE001 - any download failure means the same to the user
        keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
        raise RelevanceError(
            f"{os.path.join(keras_home, 'models', fname)}: ImageNet ResNet50 weights are not "
            f"in the Keras cache and could not be downloaded ({type(exc).__name__}); pass "
            f"--weights PATH (a ResNet50 .h5) or --weights none") from None


def load_classifier(cfg: RelevanceConfig):
    """The classifier to explain, as a logits model (no softmax), at ``size x size``.

    ``resnet50``: Keras ResNet50 with its 1000-way top and ``classifier_activation=None``
    built at ``size`` (global average pooling makes the ImageNet weights size-agnostic).
    A model file: loaded without compiling; a final softmax (activation or layer) removed.
    """
    from tensorflow import keras

    size = int(cfg.size)
    if cfg.is_resnet50:
        model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3),
                                            classifier_activation=None)
        weights = str(cfg.weights)
        if weights.lower() == "imagenet":
            weights = imagenet_weights_file()
        if weights.lower() != "none":
            try:
                model.load_weights(weights)
            except (OSError, ValueError) as exc:
                raise RelevanceError(f"{weights}: not ResNet50 weights ({exc})") from None
        return model
    try:
        model = keras.models.load_model(cfg.model, compile=False)
    except (OSError, ValueError, ImportError) as exc:
        raise RelevanceError(f"{cfg.model}: cannot load the classifier ({exc})") from None
    if str(cfg.weights).lower() not in ("imagenet", "none"):
        try:
            model.load_weights(cfg.weights)
        except (OSError, ValueError) as exc:
            raise RelevanceError(f"{cfg.weights}: weights do not fit {cfg.model} ({exc})") from None
    return without_softmax(model)


def without_softmax(model):
    """``model`` with a final softmax (activation of the last layer, or a layer) removed."""
    from tensorflow import keras

    last = model.outputs[0]._keras_history[0]  # noqa: SLF001 - the layer making the output
    activation = getattr(last, "activation", None)
    is_softmax_layer = isinstance(last, keras.layers.Softmax) or (
        isinstance(last, keras.layers.Activation)
        and keras.activations.serialize(activation) == "softmax")
    if is_softmax_layer:
        return keras.Model(model.inputs, last.input, name=model.name)
    if activation is not None and keras.activations.serialize(activation) == "softmax":
        import innvestigate

        return innvestigate.model_wo_softmax(model)
    return model


def skip_constant_evaluation() -> bool:
    """Stop Keras (graph mode) from evaluating every constant of raw TF ops in a session.

    When a Keras layer is called on tensors made by raw TF ops (iNNvestigate's reverse graph:
    ``tf.gradients``, ``safe_divide``...), Keras 2 wraps the ops in ``TensorFlowOpLayer`` and,
    unless its flag ``_UNSAFE_GRAPH_OP_LAYER_CREATION`` is set, runs one session call per
    constant input. Each call extends the session by the whole graph built so far, so the
    build is quadratic in the depth: 95 % of a ResNet50 LRP-epsilon build here (profiled).
    With the flag set the constants stay graph constants; the analysis graph computes the
    same values (the op-layers just cannot be serialised with ``get_config``, which the
    analyzer never is). Returns whether the flag could be set.
    """
    for module in ("keras.src.engine.base_layer_utils", "keras.engine.base_layer_utils"):
        try:
            mod = __import__(module, fromlist=["_UNSAFE_GRAPH_OP_LAYER_CREATION"])
        except ImportError:
            continue
        if hasattr(mod, "_UNSAFE_GRAPH_OP_LAYER_CREATION"):
            mod._UNSAFE_GRAPH_OP_LAYER_CREATION = True  # noqa: SLF001
            return True
    return False


def build_analyzer(model, cfg: RelevanceConfig, fast: bool = True):
    """The iNNvestigate analyzer of ``cfg.rule`` on ``model``, its Keras graph built.

    Args:
        model: logits model (graph mode).
        cfg: rule and neuron selection.
        fast: set :func:`skip_constant_evaluation` first (same maps, build ~10x faster).
    """
    import innvestigate
    from innvestigate.analyzer.base import NotAnalyzeableModelException

    if fast:
        skip_constant_evaluation()
    mode = "max_activation" if cfg.neuron_selection == "max_activation" else "index"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            analyzer = innvestigate.create_analyzer(cfg.rule, model, neuron_selection_mode=mode)
    except NotAnalyzeableModelException as exc:
        first = str(exc).splitlines()[0]
        raise RelevanceError(f"{cfg.model}: iNNvestigate cannot analyse this classifier: {first} "
                             f"(keep preprocessing out of the model: see --preprocess)") from None
    except NotImplementedError:
        # iNNvestigate 2.1.2 raises right after WARNING about layers outside its tested set
        # (e.g. keras.layers.ReLU, which it propagates like an activation): go on unchecked.
        names = sorted({type(layer).__name__ for layer in model.layers})
        _log.get().warning("warning: iNNvestigate: %s (layer types here: %s); computing the "
                           "relevance anyway", _first_line(caught).rstrip("."), ", ".join(names))
        analyzer = innvestigate.create_analyzer(cfg.rule, model, neuron_selection_mode=mode,
                                                disable_model_checks=True)
    analyzer.create_analyzer_model()
    return analyzer


def _first_line(caught: list) -> str:
    return str(caught[0].message).splitlines()[0] if caught else "iNNvestigate model check failed"


def analyze_batch(analyzer, batch: np.ndarray, cfg: RelevanceConfig) -> np.ndarray:
    """Relevance ``[B, H, W]`` of a preprocessed batch: iNNvestigate's map summed over channels.

    Summing the channels keeps conservation (eq. 13): the pixel's relevance is the sum of the
    relevances of its input neurons.
    """
    if cfg.neuron_selection == "max_activation":
        rel = analyzer.analyze(batch)
    else:
        rel = analyzer.analyze(batch, neuron_selection=int(cfg.neuron_selection))
    rel = np.asarray(rel, dtype=np.float64)
    return rel.sum(axis=-1).astype(np.float32) if rel.ndim == 4 else rel.astype(np.float32)


def to_input_grid(relevance: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Relevance from the ``size x size`` analysis grid back onto the image's ``(H, W)`` grid.

    Bilinear resampling times the area ratio ``size^2 / (H W)`` keeps the total relevance
    (eq. 13, ``sum_p R_p ~ f(x)``) approximately unchanged; identity when the shapes agree.
    """
    import cv2

    rel = np.asarray(relevance, dtype=np.float32)
    h, w = (int(v) for v in shape)
    if rel.shape == (h, w):
        return rel
    resized = cv2.resize(rel, (w, h), interpolation=cv2.INTER_LINEAR)
    return (resized * (rel.size / float(h * w))).astype(np.float32)


def _read_inputs(paths: Sequence[Path], size: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Read and resize every image first, so a bad file fails before the long build."""
    from .io import read_image, resize

    arrays, shapes = [], []
    for p in paths:
        image, shape = read_image(p)
        arrays.append(np.asarray(resize(image, (size, size)), dtype=np.float32))
        shapes.append(tuple(int(v) for v in shape))
    return np.stack(arrays), shapes


def _save_map(relevance: np.ndarray, path: Path) -> None:
    from .outputs import atomic_write_bytes

    buf = _bytes_io.BytesIO()
    np.save(buf, np.asarray(relevance, dtype=np.float32), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def _pin_device(threads: int | None) -> None:
    """Threads, GPU memory growth, one GPU per Horovod local rank (before any graph exists)."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(min(2, int(threads)))
    gpus = tf.config.list_physical_devices("GPU")
    local_rank = os.environ.get("HOROVOD_LOCAL_RANK", os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK"))
    if gpus and local_rank is not None:
        gpus = [gpus[int(local_rank) % len(gpus)]]
        tf.config.set_visible_devices(gpus, "GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)


def compute_relevance(image_paths: Sequence[Path], cfg: RelevanceConfig, cache_dir: Path,
                      threads: int | None = None, progress: bool = True,
                      fast_build: bool = True) -> dict:
    """The stage: relevance maps of the images not yet cached; analyzer built once at most.

    Must run in a process whose eager execution may be disabled (it disables it). Returns
    timings and counts: ``{"requested", "cached", "computed", "build_s", "per_image_s"}``.
    ``fast_build=False`` builds as iNNvestigate does by default (same maps, minutes slower).
    """
    log = _log.get()
    cache_dir = Path(cache_dir)
    paths = {Path(p): cache_path(p, cfg, cache_dir) for p in image_paths}
    todo = [p for p, npy in paths.items() if not npy.exists()]
    stats = {"requested": len(paths), "cached": len(paths) - len(todo), "computed": 0,
             "build_s": 0.0, "per_image_s": None}
    if not todo:
        log.info("all %d relevance maps cached in %s", len(paths), cache_dir)
        return stats
    with _log.Stage(f"reading {_plural(len(todo), 'image')} ({stats['cached']} of "
                    f"{len(paths)} already cached)", log):
        images, shapes = _read_inputs(todo, int(cfg.size))

    import tensorflow as tf

    _pin_device(threads)
    tf.compat.v1.disable_eager_execution()  # iNNvestigate 2.x builds Keras graphs in v1 mode
    with _log.Stage(f"loading the classifier {cfg.model} (weights: {cfg.weights}, "
                    f"{cfg.size}x{cfg.size})", log):
        model = load_classifier(cfg)
        channels = int(model.input_shape[-1])
        preprocess_batch(images[:1], cfg.preprocess, channels)  # fail now on a mismatch
    stage = "folding BatchNormalization into the convolutions" if cfg.fold_bn else \
        "preparing the classifier graph"
    with _log.Stage(stage, log):
        model = rebuild_model(model, fold=cfg.fold_bn, name_suffix=LAYER_SUFFIX)
    counts = model.folded_batchnorm_counts
    log.debug("    folded %d BatchNormalization layers, kept %d", counts["folded"],
              counts["kept"])
    with _log.Stage(f"building the {cfg.rule} analyzer", log) as st:
        analyzer = build_analyzer(model, cfg, fast=fast_build)
    stats["build_s"] = st.seconds
    cache_dir.mkdir(parents=True, exist_ok=True)
    batch = int(cfg.batch_size)
    t0 = time.perf_counter()
    with _log.Stage(f"computing {_plural(len(todo), 'relevance map')}", log):
        bar = _progress(len(todo), progress)
        step = max(batch, len(todo) // 10)  # without a bar (not a terminal): ~10 lines
        for start in range(0, len(todo), batch):
            stop = min(start + batch, len(todo))
            inputs = preprocess_batch(images[start:stop], cfg.preprocess, channels)
            rel = analyze_batch(analyzer, inputs, cfg)
            for i in range(start, stop):
                _save_map(to_input_grid(rel[i - start], shapes[i]), paths[todo[i]])
            bar.update(stop - start)
            if bar.disable and stop < len(todo) and stop // step != start // step:
                log.info("    %d/%d relevance maps", stop, len(todo))
        bar.close()
    stats["computed"] = len(todo)
    stats["per_image_s"] = (time.perf_counter() - t0) / len(todo)
    log.info("wrote %s to %s (analyzer build %.0f s, %.2f s per image)",
             _plural(len(todo), "relevance map"), cache_dir, stats["build_s"],
             stats["per_image_s"])
    return stats


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="relevance", file=sys.stderr, leave=False,
                disable=None if enabled else True, dynamic_ncols=True)


def _read_list(path: Path) -> list[str]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise RelevanceError(f"{path}: cannot read the image list ({exc.strerror or exc})") from None
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m tf_usaug.relevance``."""
    d = RelevanceConfig()
    p = argparse.ArgumentParser(
        prog="python -m tf_usaug.relevance",
        description="Compute LRP relevance maps (iNNvestigate) of images into a cache folder, "
                    "one <key>.npy per image; cached maps are never recomputed.")
    a = p.add_argument
    a("images", nargs="*", type=Path, metavar="IMAGE", help="content images")
    a("--list", type=Path, help="file with one image path per line (added to IMAGE...)")
    a("--cache", type=Path, required=True, help="relevance cache folder")
    a("--model", default=d.model, help="resnet50 or PATH of a Keras classifier (.h5/.keras)")
    a("--weights", default=d.weights, help="imagenet, PATH of an .h5, or none")
    a("--rule", default=d.rule, choices=RULES, metavar="RULE",
      help=f"iNNvestigate LRP analyzer (default {d.rule}, paper eq. 16): " + ", ".join(RULES))
    a("--neuron-selection", default=d.neuron_selection,
      help="max_activation (predicted class) or a class index")
    a("--size", type=int, default=d.size, help=f"classifier input side (default {d.size})")
    a("--preprocess", default=d.preprocess, choices=PREPROCESS_MODES,
      help=f"grey [0,1] -> classifier input (default {d.preprocess}: ResNet50's)")
    a("--no-fold-bn", dest="fold_bn", action="store_false", help="keep BatchNormalization")
    a("--batch-size", type=int, default=d.batch_size, help="images per analyze call")
    a("--threads", type=int, help="TensorFlow CPU threads")
    a("--no-progress", dest="progress", action="store_false", help="no progress bar")
    a("--keras-constant-evaluation", dest="fast_build", action="store_false",
      help="build the analyzer as Keras does by default (same maps; minutes slower)")
    a("--verbose", action="store_true", help="TensorFlow logs and per-stage timings")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tf_usaug.relevance``: the relevance stage in its own (graph-mode) process."""
    from .io import ImageError

    args = build_parser().parse_args(argv)
    log = _log.setup(args.verbose)
    if not args.verbose:  # Keras v1 graph-mode deprecation chatter
        warnings.filterwarnings("ignore", category=UserWarning, module=r"keras(\.|$)")
    try:
        images = [*args.images, *(_read_list(args.list) if args.list else [])]
        if not images:
            raise RelevanceError("no images given (IMAGE... or --list FILE)")
        cfg = RelevanceConfig(model=args.model, weights=args.weights, rule=args.rule,
                              neuron_selection=args.neuron_selection, size=args.size,
                              fold_bn=args.fold_bn, preprocess=args.preprocess,
                              batch_size=args.batch_size)
        compute_relevance(images, cfg, args.cache, threads=args.threads, progress=args.progress,
                          fast_build=args.fast_build)
    except (ImageError, RelevanceError) as exc:
        log.error("error: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
