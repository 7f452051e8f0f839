"""LRP relevance maps with iNNvestigate: BatchNorm folding, a cached stage in its own process.

Paper 002 (Panigrahi et al., AAAI 2025) weights the NST content loss by the layer-wise
relevance (LRP) of each content pixel for a ResNet50 classifier's decision, propagated with
the alpha-beta rule (eq. 16) so that relevance is conserved layer by layer (eq. 10-13).

iNNvestigate 2.x only runs with eager execution disabled for the WHOLE process, which the NST
engine (eager, ``tf.function``) cannot live with. So this module has two sides:

* the library side, safe to import anywhere (imports neither TensorFlow nor iNNvestigate at
  module level): :class:`RelevanceConfig`, :func:`cache_key`, :func:`cache_path`,
  :func:`ensure_relevance` (starts the stage below for the maps not yet cached),
  :func:`load_relevance`, :func:`relevance_to_weight`, :func:`save_heatmap`;
* the stage, ``python -m tf_usaug.relevance --cache DIR IMAGE...`` (:mod:`tf_usaug.xai.lrp`),
  which disables eager execution, builds the analyzer once and writes one ``<key>.npy`` per
  image. BatchNorm folding is :mod:`tf_usaug.nn.batchnorm`.

Building the analyzer is fast here (ResNet50: seconds, not the 2-20 minutes iNNvestigate
takes as is) for two reasons: BatchNorm is folded into the convolutions (:func:`tf_usaug.nn.batchnorm.fold_batchnorm`,
exact), and Keras is stopped from evaluating every graph constant in its own session call
(:func:`tf_usaug.xai.lrp.skip_constant_evaluation`, which made the build quadratic in the depth).

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

import collections
import hashlib
import io as _bytes_io
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import RelevanceError  # noqa: F401  (raised here; importable from here too)
from ..files import path_digest


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
PREPROCESS_MODES = ("caffe", "torch", "tf", "rgb255", "unit", "signed")

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
        seed: seeds the random weights of ``resnet50`` with ``weights="none"`` (a baseline or a
            test; two runs then explain the same network and share cache entries).
        batch_size: images per ``analyze`` call. The maps agree to float rounding (~1e-8)
            whatever the batch, but not bit for bit: the augmentation job uses 1, so that its
            outputs do not depend on which images share a rank.
    """

    model: str = "resnet50"
    weights: str = "imagenet"
    rule: str = "lrp.alpha_2_beta_1"
    neuron_selection: str = "max_activation"
    size: int = 224
    fold_bn: bool = True
    preprocess: str = "caffe"
    seed: int = 0
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
                "--preprocess", self.preprocess, "--seed", str(self.seed),
                "--batch-size", str(self.batch_size)]
        return args + ([] if self.fold_bn else ["--no-fold-bn"])


# --------------------------------------------------------------------------- cache keys


def _weights_identity(weights: str) -> str:
    """``"imagenet"``/``"none"`` as they are, a weights file by the hash of its bytes."""
    if str(weights).lower() in ("imagenet", "none"):
        return str(weights).lower()
    if not Path(weights).exists():
        raise RelevanceError(f"{weights}: weights file not found (use imagenet, none or a path)")
    return "sha256:" + path_digest(weights)


def model_identity(cfg: RelevanceConfig) -> str:
    """Name of the explained classifier: architecture/file hash plus weights identity."""
    if cfg.is_resnet50:
        ident = f"resnet50|{_weights_identity(cfg.weights)}"
        return ident + f"|seed:{int(cfg.seed)}" if ident.endswith("|none") else ident
    if not Path(cfg.model).exists():
        raise RelevanceError(f"{cfg.model}: classifier model file not found "
                             f"(use resnet50 or the path of a Keras .h5/.keras file)")
    ident = f"file:sha256:{path_digest(cfg.model)}"
    if str(cfg.weights).lower() not in ("imagenet", "none"):
        ident += f"|{_weights_identity(cfg.weights)}"
    return ident


def classifier_run(path: str | Path) -> tuple[Path, str, int] | None:
    """``(model file, preprocess mode, input size)`` of a classifier run folder (``RUN/`` of
    ``python -m tf_usaug.train classifier``, or its ``model.keras``); None for anything else.

    The run's ``preprocessing.json`` says how a grey image became the model's input; the
    relevance stage must feed the model the same (its ``caffe``, ``rgb255`` and ``unit`` modes
    are this module's modes of the same name) at the size it was trained at.
    """
    path = Path(path)
    run = path if path.is_dir() else path.parent
    model, pre = run / "model.keras", run / "preprocessing.json"
    if not (model.is_file() and pre.is_file()) or (not path.is_dir() and path != model):
        return None
    try:
        info = json.loads(pre.read_text())
        mode, size = str(info["mode"]), int(info["size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RelevanceError(f"{pre}: not a classifier run's preprocessing file ({exc})") from None
    if mode not in PREPROCESS_MODES:
        raise RelevanceError(f"{pre}: input mode {mode!r} has no relevance preprocess "
                             f"({', '.join(PREPROCESS_MODES)})")
    return model, mode, size


def cache_key(image_path: str | Path, cfg: RelevanceConfig) -> str:
    """sha256 naming one relevance map: image bytes, classifier identity, rule, size, folding.

    Args:
        image_path: the image file (its bytes are hashed, not its name: a renamed copy hits).
        cfg: the configuration; every field that changes the map enters the key.
    """
    from ..data.image_io import ImageError

    try:
        image_digest = path_digest(image_path)
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
                     threads: int | None = None,
                     cpus: Sequence[int] | None = None) -> dict[Path, Path]:
    """Make sure every image has a cached relevance map; return ``{image path: .npy path}``.

    Runs ``python -m tf_usaug.relevance`` (eager disabled, iNNvestigate) in a child process
    only when some map is missing, so the calling process never imports iNNvestigate. The
    child's stage lines are passed through to stderr as they come.

    Args:
        image_paths: content images (any format ``tf_usaug.data.image_io.read_image`` reads).
        cfg: the classifier, rule and input size.
        cache_dir: folder of ``<key>.npy`` maps (created; shareable between runs and ranks).
        verbose: let the child print TensorFlow's logs and per-stage timings.
        threads: TensorFlow CPU threads for the child (default: TensorFlow's choice).
        cpus: bind the child to these CPUs (default: it inherits this process's binding).

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
    # the list goes through the child's stdin: no temporary file to leave behind on a kill
    cmd = [sys.executable, "-m", "tf_usaug.relevance", "--cache", str(cache_dir),
           *cfg.cli_args(), "--list", "-", "--parent-pid", str(os.getpid())]
    if verbose:
        cmd.append("--verbose")
    if threads:
        cmd += ["--threads", str(int(threads))]
    if cpus:
        cmd += ["--cpus", ",".join(str(int(c)) for c in cpus)]
    listing = b"".join(os.fsencode(p) + b"\n" for p in missing)
    returncode, tail, errors = _run_passing_stderr(cmd, stdin=listing)
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


def _run_passing_stderr(cmd: list[str], tail_lines: int = 20,
                        stdin: bytes = b"") -> tuple[int, list[str], list[str]]:
    """Run ``cmd`` with the package root importable; echo its stderr live, keep the last lines.

    Lines ``error: MESSAGE`` are held back and returned as MESSAGE (the caller reports them
    once, in its own words). Returns (exit code, last stderr lines, error messages).
    """
    root = str(Path(__file__).resolve().parents[2])  # the folder holding tf_usaug/
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env, text=True, errors="replace",
                          bufsize=1) as proc:
        assert proc.stderr is not None and proc.stdin is not None

        def feed(pipe=proc.stdin.buffer):  # in a thread: a long list never blocks on a full pipe
            try:
                pipe.write(stdin)
            except BrokenPipeError:  # the child stopped early; its stderr says why
                pass
            finally:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
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
        feeder.join()
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

    from ..files import atomic_write_bytes

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
