"""The ``gan`` arm: per fold, one GAN per class trained on the fold's TRAINING originals only,
then ``augment --method gan`` over those originals (K synthetic images of each one's class,
the original recorded as their parent, so fold i trains on its own GAN's images only).

* :func:`gan_config`: the trainer's config (``--gan stylegan2|wgan``, ``--gan-preset``,
  ``--gan-steps``): ``per_class`` (papers 003 and 004 train one model per class), ``fit="pad"``
  like the augment job, the evaluation's seed and ``resume`` (a killed run continues).
* :func:`clear_stale`: a fold's GAN, images, training set and classifier folders are the
  evaluation's own; when its GAN was made with other ``--gan*`` settings (``GAN/arm.json``)
  they all go, so the GAN is retrained and the rest made anew, never mixed with the old.
* :func:`gan_size`: a GAN's side is a power of two; the smallest one >= the evaluation's size
  (at most 256) is trained and the augment job resizes its outputs to the working size.
* :func:`arm_settings`: what enters the ``gan`` results' fingerprints (not the evaluation's
  run.json: changing ``--gan-steps`` retrains the GANs, not the other arms).
* :func:`train`: the trainer on this rank alone (:mod:`.library`).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..files import write_json
from .config import BenefitConfig

#: The ``--gan*`` settings a fold's GAN folder was made with.
SETTINGS_FILE = "arm.json"

#: ``--gan-preset`` -> the family's own sizes. StyleGAN2: its PRESETS (paper256 = the
#: StyleGAN2-ADA values); wgan: the WganConfig defaults (paper 003), the benchmark's CPU
#: network (benchmarks/wgan_sim64.py) and the tests' tiny one.
_STYLEGAN2 = {"paper": "paper256", "cpu": "cpu", "tiny": "tiny"}
_WGAN = {"paper": {},
         "cpu": dict(width=8, max_channels=64, code_units=128),
         "tiny": dict(width=4, max_channels=16, code_units=16, z_dim=8, batch_size=4,
                      checkpoint_every=2, log_every=1)}
MAX_SIZE = 256


def gan_size(size: int) -> int:
    """The smallest power of two >= ``size`` (at least 8, at most :data:`MAX_SIZE`)."""
    side = 8
    while side < size and side < MAX_SIZE:
        side *= 2
    return side


def arm_settings(cfg: BenefitConfig, arm: str) -> dict:
    """The settings only ``arm``'s results depend on (empty for every arm but ``gan``)."""
    if arm != "gan":
        return {}
    return {"gan": cfg.gan, "gan_preset": cfg.gan_preset, "gan_steps": cfg.gan_steps}


def gan_config(cfg: BenefitConfig, *, content: Path, out: Path, size: int, threads: int):
    """The per-class GAN of one fold: trained on ``content`` (its training originals)."""
    common = dict(data=Path(content), out=Path(out), size=gan_size(size), per_class=True,
                  fit="pad", seed=cfg.seed, resume=True, threads=threads, verbose=cfg.verbose)
    if cfg.gan_steps is not None:
        common["steps"] = int(cfg.gan_steps)
    if cfg.gan == "stylegan2":
        from ..models.stylegan2 import preset_config

        return preset_config(_STYLEGAN2[cfg.gan_preset], **common)
    from ..models.wgan import WganConfig

    return WganConfig(**{**_WGAN[cfg.gan_preset], **common})


def train_steps(cfg: BenefitConfig, size: int) -> int:
    """Minibatches one class's GAN trains for (``--gan-steps``, else its trainer's length)."""
    gcfg = gan_config(cfg, content=Path("."), out=Path("."), size=size, threads=1)
    return int(getattr(gcfg, "total_steps", None) or gcfg.steps)


def clear_stale(cfg: BenefitConfig, gan_dir: Path, *made_from_it: Path) -> None:
    """Remove ``gan_dir`` and the folders ``made_from_it`` unless ``gan_dir`` was made with
    this ``cfg``'s ``--gan*`` settings; then record them (before training: a killed run
    resumes)."""
    wanted = arm_settings(cfg, "gan")
    record = Path(gan_dir) / SETTINGS_FILE
    try:
        same = json.loads(record.read_text()) == wanted
    except (OSError, ValueError):
        same = False
    if not same:
        for folder in (gan_dir, *made_from_it):
            shutil.rmtree(folder, ignore_errors=True)
    write_json(record, wanted)


def check(cfg: BenefitConfig, size: int) -> None:
    """The trainer's own checks of the arm's GAN settings (no data read, nothing built)."""
    probe = gan_config(cfg, content=Path(cfg.data), out=Path(cfg.out) / "work" / "gan",
                       size=size, threads=1)
    probe.resolved()


def train(cfg: BenefitConfig, gcfg, rank: int):
    """Train (or resume, or read back) one fold's per-class GAN (``gcfg`` of
    :func:`gan_config`) on this rank alone."""
    from .library import library_call

    with library_call(cfg.verbose, rank):
        if cfg.gan == "wgan":
            from ..models.wgan import train_wgan

            return train_wgan(gcfg)
        from ..models.stylegan2 import train_stylegan2

        return train_stylegan2(gcfg)
