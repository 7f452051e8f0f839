"""Settings of the benefit evaluation: :class:`BenefitConfig`, the arms, checks before any work.

An ARM is one way of building the training set of the task classifier: ``none`` (the
originals only), or the originals plus the outputs of one augmentation method
(:data:`ARMS`). Every arm is trained per fold with the same seeds and tested on the same
untouched originals, so the arms differ in their training images only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..errors import UsageError
from ..errors import require_whole as _whole


class Arm(NamedTuple):
    """One training-set recipe.

    Attributes:
        name: as given to ``--arms``.
        method: the augmentation method (``tf_usaug.augment --method``), None for ``none``.
        relevance: NST with the LRP-weighted content loss (paper 002, "with XAI").
        per_fold: its outputs depend on a fold's training data (the relevance classifier is
            trained on them), so they are generated per fold. The other methods depend only
            on their original (and the style pool, which lies outside every test fold): each
            original is augmented once and the fold takes its training originals' children.
        label: what the report calls it.
    """

    name: str
    method: str | None
    relevance: bool
    per_fold: bool
    label: str


ARMS: dict[str, Arm] = {a.name: a for a in (
    Arm("none", None, False, False, "originals only"),
    Arm("traditional", "traditional", False, False,
        "rotation, translation, scaling, elastic (paper 000)"),
    Arm("srad", "srad", False, False, "SRAD multi-scale series (paper 002)"),
    Arm("nst", "nst", True, True, "NST with LRP-weighted content loss (paper 002, XAI)"),
    Arm("nst-no-lrp", "nst", False, False, "NST with a plain content loss (paper 002, no XAI)"),
    Arm("gan", "gan", False, True,
        "synthetic images of one GAN per class per fold (papers 003 / 004)"),
)}

#: ``--arms``' default: every arm but ``gan``, which trains a GAN per class and fold (opt in).
DEFAULT_ARMS = tuple(a for a in ARMS if a != "gan")
#: The GAN families of the ``gan`` arm and the sizes of their networks (docs/benefit.md).
GAN_MODELS = ("stylegan2", "wgan")
GAN_PRESETS = ("paper", "cpu", "tiny")

#: The reference arms of the paired tests (when they are among the arms).
REFERENCES = ("none", "traditional")


@dataclass
class BenefitConfig:
    """Everything one benefit evaluation needs.

    Attributes:
        data: the originals of every device: ``DATA/<device>/<class>/<image>`` (BUSI layout per
            device) or one BUSI folder whose file names start with the device
            (``DATA/<class>/<device>_<class>_<i>.png``); see :mod:`.devices`.
        out: the report folder (``report.json``, ``report.md``, ``report.html``, ``plots/``,
            ``work/``).
        train_device: the scanner the classifiers are trained on (device A).
        test_devices: where they are tested; the training device is tested on its folds'
            test originals (in-domain), any other device on its images outside the style pool
            (unseen scanner). Empty: every device.
        arms: training-set recipes (:data:`ARMS`); ``none`` is always trained, being the
            reference of the paired tests, the classifier of label preservation and the
            relevance model of ``nst``. Default: every arm but ``gan`` (:data:`DEFAULT_ARMS`).
        folds: stratified k-fold of the training device's originals by source image (paper
            004 sec. 2.3; 5 folds).
        size: working size of the augmentation and input size of the classifier; None: the
            backbone's (small: 128, resnet50: 224).
        per_image: augmented images per original (paper 002: 5; srad at most 8).
        iterations: NST Adam iterations (paper 002: 1000).
        epochs: classifier epochs at most (paper 002: 20, early stop after 7).
        backbone: the classifier (``small`` CNN, ``resnet50``, ``efficientnetb2``).
        nst_weights: weights of the NST feature extractor (``imagenet``, ``none`` or a .h5).
        n_styles: style references per NST output (paper 002's multi-reference loss: 3).
        gan: the ``gan`` arm's model: ``stylegan2`` (StyleGAN2 with ADA, paper 004) or
            ``wgan`` (the improved alpha-WGAN-GP, paper 003); one per class, trained on each
            fold's training originals only.
        gan_preset: its network size: ``paper`` (the papers' widths), ``cpu`` (the small
            networks the benchmarks on a 2-core machine use) or ``tiny`` (tests).
        gan_steps: its training length in minibatches (None: the paper's: wgan 95k,
            stylegan2 25000 kimg).
        style_fraction: the share of every unseen device held out as the NST style pool
            (stratified by class, seeded), never tested on. Held out whatever the arms, so
            every arm is tested on the same images.
        seed: folds, style pool, augmentation and classifier seeds.
        threads: CPU threads per rank (default: cores / ranks on the node).
        overwrite: start over in an ``out`` that holds an evaluation with other settings.
        verbose: the libraries' own stage lines, TensorFlow's log, tracebacks.
        command: the command line, recorded in the report.
    """

    data: Path | None = None
    out: Path = Path("benefit_report")
    train_device: str | None = None
    test_devices: tuple[str, ...] = ()
    arms: tuple[str, ...] = DEFAULT_ARMS
    folds: int = 5
    size: int | None = None
    per_image: int = 5
    iterations: int = 1000
    epochs: int = 20
    backbone: str = "small"
    nst_weights: str = "imagenet"
    n_styles: int = 3
    gan: str = "stylegan2"
    gan_preset: str = "paper"
    gan_steps: int | None = None
    style_fraction: float = 0.25
    seed: int = 0
    threads: int | None = None
    overwrite: bool = False
    verbose: bool = False
    command: str | None = field(default=None, compare=False)


def parse_list(text: str, option: str) -> tuple[str, ...]:
    """``"a, b,c"`` -> ``("a", "b", "c")`` (empty items refused, repeats dropped)."""
    items = [t.strip() for t in str(text).split(",")]
    if not items or any(not t for t in items):
        raise UsageError(f"{option} {text!r}: give a comma-separated list without empty items")
    return tuple(dict.fromkeys(items))


def resolved_arms(arms) -> tuple[str, ...]:
    """The arms in :data:`ARMS` order, ``none`` included (UsageError for an unknown one)."""
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise UsageError(f"unknown arm {unknown[0]!r} in --arms; choose from "
                         f"{', '.join(ARMS)}")
    chosen = set(arms) | {"none"}
    return tuple(a for a in ARMS if a in chosen)


def check_config(cfg: BenefitConfig) -> None:
    """Every check that needs no data (arms, numbers, paths); raises :class:`UsageError`."""
    if cfg.data is None:
        raise UsageError("--data is required: the folder of every device's originals")
    if not cfg.train_device:
        raise UsageError("--train-device is required: the device the classifiers learn on")
    if str(cfg.out).strip() == "":
        raise UsageError("--out must not be empty (give a folder for the report)")
    if not cfg.arms:
        raise UsageError("--arms must name at least one arm")
    resolved_arms(cfg.arms)
    _whole("folds", cfg.folds, 2)
    for name in ("per_image", "iterations", "epochs", "n_styles"):
        _whole(name, getattr(cfg, name), 1)
    _whole("seed", cfg.seed, 0)
    if cfg.gan not in GAN_MODELS:
        raise UsageError(f"--gan {cfg.gan!r}: choose one of {', '.join(GAN_MODELS)}")
    if cfg.gan_preset not in GAN_PRESETS:
        raise UsageError(f"--gan-preset {cfg.gan_preset!r}: choose one of "
                         f"{', '.join(GAN_PRESETS)}")
    if cfg.gan_steps is not None:
        _whole("gan_steps", cfg.gan_steps, 1)
    if cfg.size is not None:
        _whole("size", cfg.size, 32)
    if cfg.threads is not None:
        _whole("threads", cfg.threads, 1)
    if not 0.0 < float(cfg.style_fraction) < 1.0:
        raise UsageError(f"--style-fraction must lie strictly between 0 and 1, got "
                         f"{cfg.style_fraction}")
    data, out = Path(cfg.data).resolve(), Path(cfg.out).resolve()
    if out == data or data in out.parents:
        raise UsageError(f"--out {cfg.out} lies inside --data {cfg.data}: it would be read as a "
                         "device; choose a folder outside the data")
    if out in data.parents:
        raise UsageError(f"--data {cfg.data} lies inside --out {cfg.out}; choose a report "
                         "folder outside the data")
