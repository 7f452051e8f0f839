"""Settings of the task classifier: :class:`ClassifierConfig` (the papers' values) and the
per-backbone defaults in :data:`BACKBONES`, checked by :func:`check_config` before any work.

Sources: paper 002 (Panigrahi et al., AAAI 2025), sec. "Quantitative evaluation of ResNet50
model for augmented image classification" and "Experimental setup"; paper 004 (Maack et al.,
CDBME 2022), sec. 2.1 and 2.3.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ...errors import BackboneError, UsageError
from ...errors import require_whole as _positive_int

#: Suffixes of a backbone weights file (Keras HDF5, e.g. ``resnet50_..._notop.h5``).
WEIGHT_SUFFIXES = (".h5", ".hdf5")


@dataclass(frozen=True)
class BackboneDefaults:
    """What a backbone brings unless the config overrides it.

    Attributes:
        size: input side in pixels.
        weights: ``"imagenet"``, ``"none"`` or a weights file.
        optimizer: ``"sgd"`` (with ``ClassifierConfig.momentum``) or ``"adam"``.
        learning_rate: the initial rate.
        batch_size: the global batch.
        batchnorm_momentum: moving-average momentum of the batch norms we add (Keras: 0.99).
        mode / channels: the grey -> input rule (see ``preprocessing.py``).
        source: where the values come from.
    """

    size: int
    weights: str
    optimizer: str
    learning_rate: float
    batch_size: int
    batchnorm_momentum: float
    mode: str
    channels: int
    source: str


BACKBONES: dict[str, BackboneDefaults] = {
    # Paper 002: "fully fine-tuned ResNet50", SGD eta = 0.0001, momentum 0.9; 224 px is the
    # ImageNet ResNet50 input (the paper does not state its classifier's input size).
    "resnet50": BackboneDefaults(224, "imagenet", "sgd", 1e-4, 32, 0.99, "caffe", 3,
                                 "paper 002, classifier section"),
    # Paper 004 sec. 2.1/2.3: ImageNet-pretrained EfficientNetB2 fine-tuned on 256 x 256
    # images; it gives no optimiser, so paper 002's recipe is used.
    "efficientnetb2": BackboneDefaults(256, "imagenet", "sgd", 1e-4, 32, 0.99, "rgb255", 3,
                                       "paper 004 sec. 2.1, 2.3 (optimiser: paper 002's)"),
    # Ours: a compact CNN trained from scratch (demo data, tests, CPU-only machines). Adam at
    # 1e-3: SGD at 1e-4 barely moves randomly initialised weights within 20 epochs. Batch 8
    # and batch-norm momentum 0.5: with Keras's 0.99 (or 0.9) the moving statistics of a
    # 20-image training set (3 steps per epoch) lag the fast-changing weights and inference
    # predicts one class (measured on the demo data: test accuracy 0.4 vs 1.0).
    "small": BackboneDefaults(128, "none", "adam", 1e-3, 8, 0.5, "signed", 1,
                              "ours (demo data are 128 px)"),
}

OPTIMIZERS = ("sgd", "adam")


@dataclass
class ClassifierConfig:
    """Everything one classifier run needs; the defaults are paper 002's recipe.

    Attributes:
        data: the ORIGINAL images, any labelled :func:`tf_usaug.data.datasets.discover` layout
            (BUSI class folders, or a CSV with a label column). The split is made on them.
        out: the run folder (``model.keras``, ``preprocessing.json``, ``metrics.json``, ...).
        augmented: augmentation output folders (their ``manifest.jsonl``): rows whose parent
            image (``content``) is a TRAINING original are added to the training split; the
            children of validation/test originals are dropped (paper 002 split after
            augmenting, which leaks an image's children into the test set; we do not).
        backbone: ``"resnet50"`` (paper 002), ``"efficientnetb2"`` (paper 004) or ``"small"``.
        weights: ``"imagenet"``, ``"none"`` or a Keras ``.h5`` backbone weights file (the
            ``*_notop.h5`` file for air-gapped machines); None: the backbone's default.
        size: input side in pixels; None: the backbone's default (224 / 256 / 128).
        epochs: at most this many epochs (paper 002: 20).
        batch_size: GLOBAL batch, split evenly over the Horovod ranks (paper 002: 32); None:
            the backbone's (8 for small).
        optimizer / learning_rate: None: the backbone's (paper 002: SGD, 1e-4).
        momentum: SGD momentum (paper 002: 0.9).
        plateau_factor / plateau_patience / plateau_min_delta / min_learning_rate:
            ReduceLROnPlateau on the validation loss (paper 002 uses it without values:
            Keras's factor 0.1 and min_delta 1e-4; patience 3, not Keras's 10, which could
            never fire before the early stop's 7).
        early_stopping_patience: stop after this many epochs without a lower validation loss
            (paper 002: 7).
        restore_best: the saved model is the epoch with the lowest validation loss (ours;
            the paper does not say).
        hidden_units / dropout / leaky_relu_alpha: the head (paper 002: GAP, batch norm,
            dropout 0.5, LeakyReLU, dense softmax; the width, order and alpha are ours, alpha
            is Keras's default 0.3).
        fractions: (train, val, test) without folds (paper 002: 70/15/15).
        folds / fold: stratified k-fold instead (paper 004 sec. 2.3): test = fold ``fold``
            (0-based) of ``folds``; validation = a stratified ``val_fraction`` of the rest.
        val_fraction: validation share of the training originals with folds (0.15, as the
            15 % of paper 002).
        seed: split, initialisation, batch order and dropout derive from it.
        deterministic: TensorFlow's deterministic ops, so a resumed run ends with the same
            weights as an uninterrupted one (slower on GPUs).
        resume: continue the run in ``out`` from its last finished epoch.
        overwrite: start over in an ``out`` made with other settings.
        threads: CPU threads per rank (default: cores / ranks on the node).
        verbose: TensorFlow's log and per-epoch details.
    """

    data: Path | None = None
    out: Path = Path("classifier_run")
    augmented: tuple[Path, ...] = ()
    backbone: str = "resnet50"
    weights: str | None = None
    size: int | None = None
    epochs: int = 20
    batch_size: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    momentum: float = 0.9
    plateau_factor: float = 0.1
    plateau_patience: int = 3
    plateau_min_delta: float = 1e-4
    min_learning_rate: float = 1e-7
    early_stopping_patience: int = 7
    restore_best: bool = True
    hidden_units: int = 256
    dropout: float = 0.5
    leaky_relu_alpha: float = 0.3
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    folds: int | None = None
    fold: int | None = None
    val_fraction: float = 0.15
    seed: int = 0
    deterministic: bool = True
    resume: bool = False
    overwrite: bool = False
    threads: int | None = None
    verbose: bool = False

    @property
    def defaults(self) -> BackboneDefaults:
        return BACKBONES[self.backbone]

    def resolved(self) -> "ClassifierConfig":
        """A copy with the backbone's defaults filled in (checked first: see check_config)."""
        check_config(self)
        d = self.defaults
        return dataclasses.replace(
            self, weights=str(self.weights if self.weights is not None else d.weights),
            size=int(self.size or d.size), optimizer=self.optimizer or d.optimizer,
            batch_size=int(self.batch_size or d.batch_size),
            learning_rate=float(self.learning_rate or d.learning_rate),
            data=Path(self.data), out=Path(self.out),
            augmented=tuple(Path(p) for p in self.augmented))


def check_config(cfg: ClassifierConfig) -> None:
    """Refuse bad values and missing files (no data is read, nothing is built)."""
    if cfg.backbone not in BACKBONES:
        raise BackboneError(f"unknown backbone {cfg.backbone!r}; choose one of "
                            f"{', '.join(BACKBONES)}")
    if cfg.data is None:
        raise UsageError("--data is required: the folder (or CSV) of original labelled images")
    for name in ("epochs", "plateau_patience", "early_stopping_patience", "hidden_units"):
        _positive_int(name, getattr(cfg, name))
    if cfg.batch_size is not None:
        _positive_int("batch_size", cfg.batch_size)
    _positive_int("seed", cfg.seed, minimum=0)
    if cfg.size is not None:
        _positive_int("size", cfg.size, minimum=32)
    if cfg.threads is not None:
        _positive_int("threads", cfg.threads)
    if cfg.optimizer is not None and cfg.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {cfg.optimizer!r}; choose one of {OPTIMIZERS}")
    if cfg.learning_rate is not None and not cfg.learning_rate > 0:
        raise UsageError(f"--lr must be > 0, got {cfg.learning_rate}")
    if not (0.0 <= cfg.dropout < 1.0 and 0.0 < cfg.plateau_factor < 1.0
            and 0.0 < cfg.val_fraction < 1.0 and cfg.momentum >= 0):
        raise UsageError("dropout and val_fraction must lie in [0, 1), plateau_factor in "
                         "(0, 1), momentum >= 0")
    fractions = tuple(cfg.fractions)
    if (len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6
            or min(fractions) <= 0 and cfg.folds is None):
        raise UsageError(f"fractions must be three positive shares (train, val, test) summing "
                         f"to 1, got {fractions}")
    if (cfg.folds is None) != (cfg.fold is None):
        raise UsageError("--folds K and --fold I go together (test = fold I of K)")
    if cfg.folds is not None:
        _positive_int("folds", cfg.folds, minimum=2)
        if isinstance(cfg.fold, bool) or not isinstance(cfg.fold, int) \
                or not 0 <= cfg.fold < cfg.folds:
            raise UsageError(f"--fold must be in [0, {cfg.folds - 1}] (0-based), got {cfg.fold!r}")
    if cfg.resume and cfg.overwrite:
        raise UsageError("--resume continues the run in --out, --overwrite starts it over: "
                         "give one of them")
    weights = cfg.weights if cfg.weights is not None else cfg.defaults.weights
    if str(weights).lower() == "imagenet" and cfg.backbone == "small":
        raise BackboneError("the small backbone has no ImageNet weights; use --weights none "
                            "or a weights file")
    if str(weights).lower() not in ("imagenet", "none"):
        path = Path(weights)
        if not path.is_file():
            raise BackboneError(f"{path}: weights file not found (give a Keras .h5 weights "
                                "file, 'imagenet' or 'none')")
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            raise BackboneError(f"{path}: not a Keras weights file (expected "
                                f"{', '.join(WEIGHT_SUFFIXES)})")
    out = Path(cfg.out).resolve()
    for name, folder in [("--data", cfg.data), *(("--augmented", a) for a in cfg.augmented)]:
        if out == Path(folder).resolve() or Path(folder).resolve() in out.parents:
            raise UsageError(f"--out {cfg.out} lies inside {name} {folder}: its images would "
                             "be read as data; choose a folder outside")
    for folder in cfg.augmented:
        if not (Path(folder) / "manifest.jsonl").is_file():
            raise UsageError(f"--augmented {folder}: no manifest.jsonl (give an output folder "
                             "of python -m tf_usaug.augment)")
