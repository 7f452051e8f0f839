"""Settings of StyleGAN2 with ADA / DiffAugment: :class:`StyleGAN2Config` (StyleGAN2-ADA's
``paper256`` values, the set-up paper 004 trained at 256 x 256), named :data:`PRESETS` (small
CPU networks for tests and demos) and :func:`check_config`.

Sources: paper 004 (Maack et al. 2022) sec. 2.2 (StyleGAN2 baseline, ADA, DiffAugment with
translation 1/8 zero-padded and cutout, 256 x 256, "the implementation details of StyleGAN2
that achieved state-of-the-art results for the LSUN datasets"); Karras et al. 2020a,
"Analyzing and improving the image quality of StyleGAN" (mapping 8 FC, lr multiplier 0.01,
z = w = 512, modulated/demodulated convolutions sec. 2.2, noise inputs, skip generator,
residual discriminator sec. 4.1, lazy R1 every 16 minibatches sec. 3.1); Karras et al. 2020b,
"Training generative adversarial networks with limited data" (ADA: r_t target 0.6, p adjusted
every 4 minibatches so that it can go 0 -> 1 in 500k images, sec. 3; Appendix D ``paper256``:
batch 64, lr 0.0025, gamma 1, EMA 20 kimg, minibatch-stddev group 8, feature maps x 0.5);
Zhao et al. 2020, "Differentiable augmentation for data-efficient GAN training" (DiffAugment
translation 1/8, cutout 1/2); Mescheder et al. 2018 (R1).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from ...errors import UsageError
from ...errors import require_whole as _whole
from ..gan.data import check_fit, check_size

AUGMENTS = ("ada", "diffaugment", "none")
#: ADA pipelines: "bg" pixel blitting + general geometric, "bgc" + colour (brightness,
#: contrast: the colour transforms that mean something on one grey channel).
ADA_PIPELINES = ("bg", "bgc")
DIFFAUGMENT_OPS = ("translation", "cutout", "brightness", "contrast")


@dataclass
class StyleGAN2Config:
    """Everything one StyleGAN2 run needs; the defaults are StyleGAN2-ADA's ``paper256``.

    Attributes:
        data: training images: a folder of images, or class folders ``DATA/<class>/...``
            (needed for ``conditional``). Read grey (one channel) and scaled to [-1, 1].
        out: the run folder.
        size: image side, a power of two >= 8 (paper 004: 256).
        kimg: training length in thousands of real images shown (StyleGAN2-ADA: 25000);
            ``steps`` wins when given.
        steps: training length in minibatches (None: ``ceil(kimg * 1000 / batch_size)``).
        batch_size: GLOBAL minibatch, split over the Horovod ranks (paper256: 64).
        conditional: one label per class folder: an embedding of the label is concatenated
            to the normalised z in the mapping network, and the discriminator projects its
            features on a mapping of the label (StyleGAN2-ADA's cmap, Miyato & Koyama 2018).
        per_class: one unconditional model per class folder, ``RUN/<class>/``
            (``tf_usaug.models.gan.per_class``); class_filter: the classes a (sub-)run
            trains on (None: all).
        fit: how a frame becomes a square (``stretch``: paper 004 resizes to 256 x 256).
        z_dim / w_dim: latent and intermediate latent sizes (512 / 512).
        mapping_layers: fully connected layers of the mapping network (8; fewer only by
            this explicit option, e.g. the CPU preset).
        mapping_lr_multiplier: learning-rate multiplier of the mapping network (0.01).
        channel_base / channel_max: feature maps at resolution r are
            ``min(channel_base // r, channel_max)`` (paper256: 16384 and 512, i.e. 512 up to
            32 px, 256 at 64, 128 at 128, 64 at 256).
        mbstd_group / mbstd_channels: minibatch standard deviation group size (paper256: 8;
            reduced to the largest divisor of the per-rank batch) and channels (1).
        style_mixing: probability of mixing two latents at a random layer (0.9).
        r1_gamma: R1 weight gamma (paper256: 1; R1 = gamma/2 * ||grad D(x)||^2).
        r1_interval: lazy regularisation: R1 every this many minibatches, weighted by it
            (16; 1 = every step).
        learning_rate / beta_1 / beta_2 / epsilon: Adam for G and D (0.0025, 0, 0.99, 1e-8).
        ema_kimg: half-life of the generator's exponential moving average in kimg (20); the
            EMA generator makes the samples and the saved model.
        augment: "ada" (adaptive discriminator augmentation), "diffaugment" or "none" (the
            paper's StyleGAN2 baseline).
        augment_p: initial (ADA) or fixed (with ``ada_target`` None) augmentation
            probability (0).
        ada_target: target of the overfitting heuristic r_t = E[sign D(x_real)] (0.6); None:
            ``augment_p`` stays fixed.
        ada_interval: minibatches between p updates (4).
        ada_kimg: p can go 0 -> 1 in this many kimg (500).
        ada_pipeline: "bgc" (geometric and colour, ADA's default) or "bg" (geometric only).
        diffaugment: DiffAugment operations (paper 004: translation and cutout).
        translation_ratio / cutout_ratio: DiffAugment's 1/8 and 1/2.
        fused_modconv: modulated convolution as one grouped convolution (True) or as scaled
            activations (False); the same maths.
        preset: the :data:`PRESETS` entry these values came from (a record only).
        seed: weights, batches, latents, noise, augmentations: all derive from it.
        checkpoint_every: minibatches between checkpoints (a kill loses at most this many).
        grid_every: minibatches between sample grids ``RUN/grids/step-N.png`` of fixed
            latents (0: only at the end); grid_size: samples per grid side.
        log_every: minibatches per history row (mean losses, r_t, p).
        deterministic: TensorFlow's deterministic ops (exact resume).
        resume / overwrite / threads / verbose: as every trainer.
    """

    data: Path | None = None
    out: Path = Path("stylegan2_run")
    size: int = 256
    kimg: float = 25000.0
    steps: int | None = None
    batch_size: int = 64
    conditional: bool = False
    per_class: bool = False
    class_filter: tuple[str, ...] | None = None
    fit: str = "stretch"
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    channel_base: int = 16384
    channel_max: int = 512
    mbstd_group: int = 8
    mbstd_channels: int = 1
    style_mixing: float = 0.9
    r1_gamma: float = 1.0
    r1_interval: int = 16
    learning_rate: float = 0.0025
    beta_1: float = 0.0
    beta_2: float = 0.99
    epsilon: float = 1e-8
    ema_kimg: float = 20.0
    augment: str = "ada"
    augment_p: float = 0.0
    ada_target: float | None = 0.6
    ada_interval: int = 4
    ada_kimg: float = 500.0
    ada_pipeline: str = "bgc"
    diffaugment: tuple[str, ...] = ("translation", "cutout")
    translation_ratio: float = 0.125
    cutout_ratio: float = 0.5
    fused_modconv: bool = True
    preset: str = "paper256"
    seed: int = 0
    checkpoint_every: int = 250
    grid_every: int = 1000
    grid_size: int = 4
    log_every: int = 10
    deterministic: bool = True
    resume: bool = False
    overwrite: bool = False
    threads: int | None = None
    verbose: bool = False

    @property
    def total_steps(self) -> int:
        """Minibatches of the whole run."""
        if self.steps is not None:
            return int(self.steps)
        return max(1, math.ceil(self.kimg * 1000 / self.batch_size))

    def resolved(self) -> "StyleGAN2Config":
        """Checked (:func:`check_config`), paths as ``Path``, sequences as tuples."""
        check_config(self)
        return dataclasses.replace(
            self, data=Path(self.data), out=Path(self.out), diffaugment=tuple(self.diffaugment),
            class_filter=None if self.class_filter is None else tuple(self.class_filter))


#: Named starting points: StyleGAN2-ADA's paper256 (the dataclass defaults) and small
#: networks that train a few steps on a CPU (tests, demos, the benchmark on this machine).
PRESETS: dict[str, dict] = {
    "paper256": {},
    "cpu": dict(z_dim=64, w_dim=64, mapping_layers=8, channel_base=1024, channel_max=64,
                batch_size=8, mbstd_group=4, ema_kimg=1.0, checkpoint_every=50,
                grid_every=200),
    "tiny": dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16,
                 batch_size=4, mbstd_group=2, ema_kimg=0.01, checkpoint_every=2,
                 grid_every=4, log_every=1, grid_size=2),
}


def preset_config(name: str = "paper256", **overrides) -> StyleGAN2Config:
    """A config from preset ``name`` with ``overrides`` on top (what the CLI builds)."""
    if name not in PRESETS:
        raise UsageError(f"unknown --preset {name!r}; choose one of {', '.join(PRESETS)}")
    return StyleGAN2Config(**{**PRESETS[name], "preset": name, **overrides})


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at ``resolution`` (StyleGAN2-ADA: ``min(channel_base // res, max)``)."""
    return max(1, min(int(channel_base) // int(resolution), int(channel_max)))


def check_config(cfg: StyleGAN2Config) -> None:
    """Refuse bad values and missing paths (nothing is read, built or written)."""
    if cfg.data is None:
        raise UsageError("--data is required: the folder of training images")
    if not Path(cfg.data).exists():
        raise UsageError(f"--data {cfg.data}: no such file or folder")
    check_size(cfg.size)
    for name in ("batch_size", "z_dim", "w_dim", "mapping_layers", "channel_base",
                 "channel_max", "mbstd_group", "mbstd_channels", "r1_interval",
                 "ada_interval", "checkpoint_every", "grid_size", "log_every"):
        _whole(name, getattr(cfg, name))
    _whole("seed", cfg.seed, minimum=0)
    _whole("grid_every", cfg.grid_every, minimum=0)
    if cfg.per_class and cfg.conditional:
        raise UsageError("--per-class trains one model per class, --conditional one model of "
                         "all classes: give one of them")
    check_fit(cfg.fit)
    if cfg.steps is not None:
        _whole("steps", cfg.steps)
    elif not cfg.kimg > 0:
        raise UsageError(f"--kimg must be > 0, got {cfg.kimg}")
    if cfg.threads is not None:
        _whole("threads", cfg.threads)
    for name in ("learning_rate", "mapping_lr_multiplier", "ema_kimg", "ada_kimg",
                 "translation_ratio", "cutout_ratio"):
        if not getattr(cfg, name) > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0, got "
                             f"{getattr(cfg, name)}")
    if not cfg.r1_gamma >= 0:
        raise UsageError(f"--r1-gamma must be >= 0, got {cfg.r1_gamma}")
    for name in ("beta_1", "beta_2", "style_mixing", "augment_p"):
        value = getattr(cfg, name)
        if not 0 <= value <= 1:
            raise UsageError(f"--{name.replace('_', '-')} must lie in [0, 1], got {value}")
    if cfg.ada_target is not None and not 0 < cfg.ada_target < 1:
        raise UsageError(f"--ada-target must lie in (0, 1), got {cfg.ada_target}")
    if cfg.augment not in AUGMENTS:
        raise UsageError(f"unknown --augment {cfg.augment!r}; choose one of "
                         f"{', '.join(AUGMENTS)}")
    if cfg.ada_pipeline not in ADA_PIPELINES:
        raise UsageError(f"unknown --ada-pipeline {cfg.ada_pipeline!r}; choose one of "
                         f"{', '.join(ADA_PIPELINES)}")
    bad = [op for op in cfg.diffaugment if op not in DIFFAUGMENT_OPS]
    if bad or (cfg.augment == "diffaugment" and not cfg.diffaugment):
        raise UsageError(f"--diffaugment takes a comma-separated subset of "
                         f"{', '.join(DIFFAUGMENT_OPS)}, got {','.join(cfg.diffaugment)!r}")
    if cfg.preset not in PRESETS:
        raise UsageError(f"unknown --preset {cfg.preset!r}; choose one of {', '.join(PRESETS)}")
    if cfg.resume and cfg.overwrite:
        raise UsageError("--resume continues the run in --out, --overwrite starts it over: "
                         "give one of them")
    out = Path(cfg.out).resolve()
    data = Path(cfg.data).resolve()
    data = data if data.is_dir() else data.parent
    if out == data or data in out.parents:
        raise UsageError(f"--out {cfg.out} lies inside --data {cfg.data}: its files would be "
                         "read as training images; choose a folder outside")
