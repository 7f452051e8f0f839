"""The relevance stage that runs in its own process (eager execution off, iNNvestigate).

``python -m tf_usaug.relevance`` (:mod:`tf_usaug.relevance`) calls :func:`compute_relevance`:
load the classifier, fold BatchNorm, build the analyzer once, write one ``<key>.npy`` per image.
"""
from __future__ import annotations

import io as _bytes_io
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import log as _log
from .relevance import LAYER_SUFFIX, RelevanceConfig, _KERAS_RESNET50_WEIGHTS, cache_path
from ..nn.batchnorm import rebuild_model
from ..errors import RelevanceError  # noqa: F401  (raised here; importable from here too)


# --------------------------------------------------------------------------- the stage
# Everything below runs in the child process (``main``), after eager execution is disabled.


def preprocess_batch(images: np.ndarray, mode: str, channels: int) -> np.ndarray:
    """Grey ``[B, H, W]`` in ``[0, 1]`` -> the classifier's input ``[B, H, W, channels]``.

    Applied to the array BEFORE ``analyze`` (outside the analysed graph), so LRP explains the
    classifier alone and the relevance lives on the classifier's input pixels.

    Args:
        images: float grey batch in ``[0, 1]``.
        mode: one of :data:`PREPROCESS_MODES` (Keras ``imagenet_utils.preprocess_input``
            modes on 0-255 RGB, ``"rgb255"`` for 0-255 RGB as is, ``"unit"`` for the ``[0, 1]``
            values as they are, ``"signed"`` for ``2 g - 1``).
        channels: 3 (grey replicated to RGB) or 1.
    """
    x = np.asarray(images, dtype=np.float32)[..., None]
    if mode in ("unit", "signed"):
        x = 2.0 * x - 1.0 if mode == "signed" else x
        return np.repeat(x, channels, axis=-1) if channels != 1 else x
    if channels != 3:
        raise RelevanceError(f"preprocess {mode!r} needs a 3-channel classifier input "
                             f"(this one has {channels}); use --preprocess unit")
    from tensorflow.keras.applications import imagenet_utils

    rgb = np.repeat(x * 255.0, 3, axis=-1)
    if mode == "rgb255":  # EfficientNet: normalises inside the model
        return rgb
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
        if str(cfg.weights).lower() == "none":  # random weights, but the same every run
            keras.utils.set_random_seed(int(cfg.seed))
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
        fast: set :func:`skip_constant_evaluation` first (same maps, build 70-90x faster, docs/relevance.md).
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
    from ..data.image_io import read_image, resize

    arrays, shapes = [], []
    for p in paths:
        image, shape = read_image(p)
        arrays.append(np.asarray(resize(image, (size, size)), dtype=np.float32))
        shapes.append(tuple(int(v) for v in shape))
    return np.stack(arrays), shapes


def _save_map(relevance: np.ndarray, path: Path) -> None:
    from ..files import atomic_write_bytes

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


def read_list(path: Path) -> list[str]:
    """Image paths, one per line (``-``: standard input; ``#`` starts a comment line)."""
    try:
        if str(path) == "-":
            text = os.fsdecode(sys.stdin.buffer.read())
        else:
            text = os.fsdecode(Path(path).read_bytes())
    except OSError as exc:
        raise RelevanceError(f"{path}: cannot read the image list ({exc.strerror or exc})") from None
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
