"""Settings of the improved alpha-WGAN-GP (paper 003): :class:`WganConfig`, checked by
:func:`check_config` before any work.

Source: Liang & Chen, "Data Augmentation of Thyroid Ultrasound Images Using Generative
Adversarial Network", sec. II-A (architecture), II-B (eq. 3, lambda1 = lambda2 = 10, z = 256,
LeakyReLU slope 0.2, update order CD, E, D, G), III-B (Adam lr 2e-4, batch 32, 5000 epochs,
inputs in [-1, 1], 256 x 256). Where it is silent we follow its baseline, Kwon, Han & Kim 2019
("Generation of 3D brain MRI using auto-encoding GANs", alpha-WGAN-GP; public code): Adam
betas (0.9, 0.999) (PyTorch's defaults), a code critic of 750 units, nearest-neighbour
upsampling before each 3x3 generator convolution, batch-norm momentum 0.1 in PyTorch's sense
(0.9 in Keras'). docs/gan.md lists every choice.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ...errors import UsageError
from ...errors import require_whole as _whole
from ..gan.data import check_fit

#: Layers of the generator, critic and encoder (paper 003 sec. II-A).
CONV_LAYERS = 7
#: Side after the generator's first (4x4 transposed) layer and before the critic's last.
BASE_SIDE = 4
#: Largest side: 6 doubling layers after the first (4 * 2**6).
MAX_SIZE = BASE_SIDE * 2 ** (CONV_LAYERS - 1)
MIN_SIZE = 8


@dataclass
class WganConfig:
    """Everything one alpha-WGAN-GP training run needs.

    Attributes:
        data: the originals (BUSI folder ``ROOT/<class>/<image>``, flat folder or CSV).
        out: the run folder (``generator.keras``, ``gan.json``, ``metrics.json``, grids ...).
        size: square side, a power of two from 8 to 256 (paper 003: 256). The layer count
            stays 7 at every size: ``log2(size / 4)`` of the generator's layers 2-7 double
            the side (the last ones), the others keep 4 x 4; the critic and encoder mirror it
            (their first layers halve the side, the rest work at 4 x 4 before the final 4x4
            valid convolution).
        steps: training iterations; each updates the code critic, encoder, critic and
            generator once, in that order. Paper 003: 5000 epochs of 609 images at batch 32,
            about 95k iterations.
        batch_size: GLOBAL batch, split evenly over the Horovod ranks (paper 003: 32).
        z_dim: latent size (paper 003: 256).
        learning_rate: Adam step of all four optimisers (paper 003: 2e-4).
        beta_1 / beta_2: Adam moments (paper silent: PyTorch's defaults, as its baseline's
            code).
        lambda_gp: lambda1 of eq. 3, weight of both gradient penalties (10).
        lambda_l1: lambda2 of eq. 3, weight of the L1 reconstruction loss (10).
        encoder_reconstruction: the encoder also minimises the reconstruction terms of
            L_G (``lambda2 * |x_r - G(E(x_r))|_1 - E[D(x_rec)]``) beside eq. 3's
            ``L_E = -E[CD(z_r)]``. Eq. 3 lists those terms in L_G only, but the text says G
            "learns ... by reconstructing x_r with z_r" and alpha-GAN / alpha-WGAN-GP train
            the encoder on the reconstruction; without them E only learns to look Gaussian.
            False gives eq. 3 to the letter.
        width: channels of the generator's layer 6 and of the critic's layer 1 at the full
            side; they double each time the side halves, up to ``max_channels``
            (256 px, 64, 512: generator 512-512-512-512-256-128-1). Smaller for CPU runs.
        max_channels: the channel cap (512).
        code_units: units of the code critic's two hidden layers (Kwon et al.'s code: 750).
        leaky_slope: negative slope of every LeakyReLU (0.2).
        bn_momentum: Keras batch-norm momentum (0.9 = PyTorch's 0.1).
        fit: how a frame becomes a square (``stretch``, ``crop``: paper 003's square cut,
            ``pad``).
        per_class: one model per class in ``RUN/<class>/`` (:mod:`..gan.per_class`).
        conditional: one model conditioned on the class: a one-hot label joins the latent at
            the generator's input and the image as constant channels at the critic's.
        class_filter: train on these classes only (set by ``--per-class`` for a sub-run).
        seed: weights, batch draws, latents and interpolation weights start from it.
        grid_every / checkpoint_every / log_every: steps between sample grids (0: only the
            final one), checkpoints, history rows.
        deterministic: TensorFlow's deterministic ops (exact resumes).
        resume / overwrite / threads / verbose: as every trainer.
    """

    data: Path | None = None
    out: Path = Path("wgan_run")
    size: int = 256
    steps: int = 95_000
    batch_size: int = 32
    z_dim: int = 256
    learning_rate: float = 2e-4
    beta_1: float = 0.9
    beta_2: float = 0.999
    lambda_gp: float = 10.0
    lambda_l1: float = 10.0
    encoder_reconstruction: bool = True
    width: int = 64
    max_channels: int = 512
    code_units: int = 750
    leaky_slope: float = 0.2
    bn_momentum: float = 0.9
    fit: str = "stretch"
    per_class: bool = False
    conditional: bool = False
    class_filter: tuple[str, ...] | None = None
    seed: int = 0
    grid_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 10
    deterministic: bool = True
    resume: bool = False
    overwrite: bool = False
    threads: int | None = None
    verbose: bool = False

    def resolved(self) -> "WganConfig":
        """Checked (:func:`check_config`), paths as ``Path``."""
        check_config(self)
        return dataclasses.replace(
            self, data=Path(self.data), out=Path(self.out),
            class_filter=None if self.class_filter is None else tuple(self.class_filter))


def check_config(cfg: WganConfig) -> None:
    """Refuse bad values and missing paths (nothing is read, built or written)."""
    if cfg.data is None:
        raise UsageError("--data is required: the folder of original images to learn from")
    if not Path(cfg.data).exists():
        raise UsageError(f"--data {cfg.data}: no such file or folder")
    for name in ("steps", "batch_size", "z_dim", "width", "max_channels", "code_units",
                 "checkpoint_every", "log_every"):
        _whole(name, getattr(cfg, name))
    _whole("seed", cfg.seed, minimum=0)
    _whole("grid_every", cfg.grid_every, minimum=0)
    size = cfg.size
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE \
            or size & (size - 1):
        raise UsageError(f"--size must be a power of two from {MIN_SIZE} to {MAX_SIZE} (seven "
                         f"layers: a 4x4 start and at most six doublings), got {size!r}")
    if cfg.threads is not None:
        _whole("threads", cfg.threads)
    if not cfg.learning_rate > 0:
        raise UsageError(f"--lr must be > 0, got {cfg.learning_rate}")
    for name in ("lambda_gp", "lambda_l1"):
        if not getattr(cfg, name) >= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got "
                             f"{getattr(cfg, name)}")
    if not 0 <= cfg.beta_1 < 1 or not 0 <= cfg.beta_2 < 1:
        raise UsageError("Adam betas must lie in [0, 1)")
    if not 0 <= cfg.leaky_slope < 1:
        raise UsageError(f"leaky_slope must lie in [0, 1), got {cfg.leaky_slope}")
    if not 0 < cfg.bn_momentum < 1:
        raise UsageError(f"bn_momentum must lie in (0, 1), got {cfg.bn_momentum}")
    check_fit(cfg.fit)
    if cfg.per_class and cfg.conditional:
        raise UsageError("--per-class trains one model per class, --conditional one model of "
                         "all classes: give one of them")
    if cfg.resume and cfg.overwrite:
        raise UsageError("--resume continues the run in --out, --overwrite starts it over: "
                         "give one of them")
    out = Path(cfg.out).resolve()
    folder = Path(cfg.data).resolve()
    folder = folder if folder.is_dir() else folder.parent
    if out == folder or folder in out.parents:
        raise UsageError(f"--out {cfg.out} lies inside --data {cfg.data}: its files would be "
                         "read as data; choose a folder outside")
