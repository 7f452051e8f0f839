"""Settings of the multitask segmentation + classification network: :class:`MultitaskConfig`
(paper 000's values where it gives them, ours otherwise, each documented), checked by
:func:`check_config` before any work.

Source: Huang et al., MICCAI 2023 (paper 000): sec. 2.2 (four encoders, four decoders with
max-unpooling, classification head; FeatAug eq. 1 with p = 0.5 and N(0, 0.1)), sec. 2.1
(MixStyleAug: traditional augmentation, WCT2 style transfer, AugMix-style mixing), sec. 2.3
(MaskAug), sec. 2.4 (loss eq. 2, batch 16, 300 epochs, lr 5e-4 with cosine annealing to 1e-6,
AdamW), sec. 3 (224 x 224 inputs divided by 255; 20 % of the training data as validation).
Choices where the paper is silent: docs/multitask.md.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ...errors import UsageError
from ...errors import require_whole as _whole

#: Four 2x2 max-poolings: the side must be a multiple of this.
SIDE_MULTIPLE = 16


@dataclass
class MultitaskConfig:
    """Everything one multitask training run needs.

    Attributes:
        data: labelled originals with masks (BUSI folder ``<class>/<name>.png`` +
            ``<name>_mask.png``, or CSV): two classes; the last sorted name is positive.
        out: the run folder (``model.keras``, ``metrics.json``, ...).
        styles: reference images of other sources (folder / CSV / file) for MixStyleAug and
            MaskAug; required when either is on.
        size: input side (paper 000: 224), a multiple of 16.
        epochs: training epochs (paper 000: 300; the cosine schedule spans them).
        batch_size: GLOBAL batch, split over the Horovod ranks (paper 000: 16).
        learning_rate / min_learning_rate: cosine annealing per epoch from 5e-4 to 1e-6
            (paper 000; restart period = epochs, so the rate falls monotonically).
        weight_decay: AdamW's decoupled decay (paper 000 is silent: PyTorch's default 0.01).
        val_fraction: share of ``data`` held out for validation, stratified (paper 000: 0.2).
        filters: channels of the four encoders (paper 000 is silent; SegNet's 64-512).
        head_channels: the classification head's conv (paper 000: 128).
        traditional: rotation, translation, scaling, elastic deformation of every training
            image each epoch (``tf_usaug.data.transforms``; paper 000 gives no ranges).
        feataug: FeatAug (eq. 1) after each encoder's residual connection, training only.
        feataug_p / feataug_mu / feataug_sigma: probability per image (0.5) and the noise
            N(mu, sigma) = N(0, 0.1) of eq. 1.
        mixstyle: MixStyleAug: traditional augmentation, WCT style transfer to a random
            reference, then AugMix-style mixing with the traditionally augmented image.
        mixstyle_alpha: the mixing weight m ~ Beta(alpha, alpha) (AugMix's alpha = 1).
        maskaug: MaskAug: after ``maskaug_warmup`` epochs the network's predicted lesion
            regions of content and reference drive a region-restricted WCT.
        maskaug_warmup: epochs before MaskAug starts (paper 000: "several"; ours 1/3 of the
            epochs when None).
        maskaug_p: probability that a training image gets MaskAug (instead of MixStyleAug
            when both are on) once it is active (ours: 0.5).
        wct_channels / wct_steps: the whitening-colouring autoencoder (``wct.py``): feature
            channels and reconstruction training steps (ours: 16, 400).
        seed: split, initial weights, augmentation, batch order, FeatAug draws.
        deterministic: TensorFlow's deterministic ops (exact resumes).
        resume / overwrite: continue the run in ``out`` / start it over.
        threads: CPU threads per rank; verbose: TensorFlow logs and tracebacks.
    """

    data: Path | None = None
    out: Path = Path("multitask_run")
    styles: Path | None = None
    size: int = 224
    epochs: int = 300
    batch_size: int = 16
    learning_rate: float = 5e-4
    min_learning_rate: float = 1e-6
    weight_decay: float = 0.01
    val_fraction: float = 0.2
    filters: tuple[int, int, int, int] = (64, 128, 256, 512)
    head_channels: int = 128
    traditional: bool = True
    feataug: bool = False
    feataug_p: float = 0.5
    feataug_mu: float = 0.0
    feataug_sigma: float = 0.1
    mixstyle: bool = False
    mixstyle_alpha: float = 1.0
    maskaug: bool = False
    maskaug_warmup: int | None = None
    maskaug_p: float = 0.5
    wct_channels: int = 16
    wct_steps: int = 400
    seed: int = 0
    deterministic: bool = True
    resume: bool = False
    overwrite: bool = False
    threads: int | None = None
    verbose: bool = False

    @property
    def warmup(self) -> int:
        """Epochs before MaskAug starts."""
        return self.epochs // 3 if self.maskaug_warmup is None else self.maskaug_warmup

    def resolved(self) -> "MultitaskConfig":
        """Checked (see :func:`check_config`), with paths as ``Path``."""
        check_config(self)
        return dataclasses.replace(
            self, data=Path(self.data), out=Path(self.out),
            styles=None if self.styles is None else Path(self.styles),
            filters=tuple(int(f) for f in self.filters))


def _share(name: str, value, low_open: bool = False) -> None:
    ok = (0 < value < 1) if low_open else (0 <= value <= 1)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok:
        raise UsageError(f"--{name.replace('_', '-')} must lie in "
                         f"{'(0, 1)' if low_open else '[0, 1]'}, got {value!r}")


def check_config(cfg: MultitaskConfig) -> None:
    """Refuse bad values and missing files (nothing is read, built or written)."""
    if cfg.data is None:
        raise UsageError("--data is required: labelled originals with <name>_mask.png masks")
    if not Path(cfg.data).exists():
        raise UsageError(f"--data {cfg.data}: no such file or folder")
    if (cfg.mixstyle or cfg.maskaug) and cfg.styles is None:
        raise UsageError("--styles is required with --mixstyle or --maskaug: reference images "
                         "of the other sources")
    if cfg.styles is not None and not Path(cfg.styles).exists():
        raise UsageError(f"--styles {cfg.styles}: no such file or folder")
    for name in ("epochs", "batch_size", "head_channels", "wct_channels", "wct_steps"):
        _whole(name, getattr(cfg, name))
    _whole("seed", cfg.seed, minimum=0)
    _whole("size", cfg.size, minimum=SIDE_MULTIPLE)
    if cfg.size % SIDE_MULTIPLE:
        raise UsageError(f"--size must be a multiple of {SIDE_MULTIPLE} (four 2x2 "
                         f"max-poolings), got {cfg.size}")
    if cfg.threads is not None:
        _whole("threads", cfg.threads)
    if cfg.maskaug_warmup is not None:
        _whole("maskaug_warmup", cfg.maskaug_warmup, minimum=0)
    filters = tuple(cfg.filters)
    if len(filters) != 4 or any(isinstance(f, bool) or not isinstance(f, int) or f < 1
                                for f in filters):
        raise UsageError(f"--filters must be four positive channel counts, got {filters}")
    if not 0 < cfg.min_learning_rate <= cfg.learning_rate:
        raise UsageError(f"--lr {cfg.learning_rate} and --min-lr {cfg.min_learning_rate} must "
                         "satisfy 0 < min-lr <= lr")
    if not cfg.weight_decay >= 0:
        raise UsageError(f"--weight-decay must be >= 0, got {cfg.weight_decay}")
    _share("val_fraction", cfg.val_fraction, low_open=True)
    _share("feataug_p", cfg.feataug_p)
    _share("maskaug_p", cfg.maskaug_p)
    if not cfg.feataug_sigma >= 0:
        raise UsageError(f"--feataug-sigma must be >= 0, got {cfg.feataug_sigma}")
    if not cfg.mixstyle_alpha > 0:
        raise UsageError(f"--mixstyle-alpha must be > 0, got {cfg.mixstyle_alpha}")
    if cfg.resume and cfg.overwrite:
        raise UsageError("--resume continues the run in --out, --overwrite starts it over: "
                         "give one of them")
    out = Path(cfg.out).resolve()
    for name in ("data", "styles"):
        if getattr(cfg, name) is None:
            continue
        folder = Path(getattr(cfg, name)).resolve()
        folder = folder if folder.is_dir() else folder.parent
        if out == folder or folder in out.parents:
            raise UsageError(f"--out {cfg.out} lies inside --{name} {getattr(cfg, name)}: its "
                             "files would be read as data; choose a folder outside")
