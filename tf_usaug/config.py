"""Every default in one place: the configuration dataclasses of all stages.

Each dataclass lives beside the code it configures (one source of truth); this module only
gathers them so a reviewer can see, and print, the complete set with the papers' values:

    python -m tf_usaug.config            # every field, its default and its documentation
"""
from __future__ import annotations

import dataclasses
import inspect
import sys

from .data.simulator.config import SimulationConfig
from .data.transforms import TraditionalConfig
from .distributed.training import HorovodTrainingConfig
from .evaluation.config import BenefitConfig
from .evaluation.gan.config import GanMetricsConfig
from .filters.srad import SRADConfig
from .models.classifier.config import ClassifierConfig
from .models.multitask.config import MultitaskConfig
from .models.stylegan2.config import StyleGAN2Config
from .models.stylizer.config import StylizerConfig
from .models.wgan.config import WganConfig
from .nst.backbones import BackboneConfig
from .nst.config import NSTConfig
from .nst.losses.config import StyleLossConfig
from .pipeline.config import AugmentConfig
from .xai.relevance import RelevanceConfig

ALL_CONFIGS = (AugmentConfig, BackboneConfig, StyleLossConfig, NSTConfig, RelevanceConfig,
               SRADConfig, TraditionalConfig, SimulationConfig, HorovodTrainingConfig,
               ClassifierConfig, StylizerConfig, BenefitConfig, MultitaskConfig,
               GanMetricsConfig, StyleGAN2Config, WganConfig)

__all__ = [c.__name__ for c in ALL_CONFIGS] + ["ALL_CONFIGS", "describe"]


def describe(cls) -> str:
    """A plain-text table of one dataclass: field, default, and its docstring."""
    lines = [f"{cls.__module__}.{cls.__name__}"]
    doc = inspect.getdoc(cls) or ""
    lines += ["    " + line for line in doc.splitlines()]
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "(required)"
        lines.append(f"  {f.name:28s} = {default!r}")
    return "\n".join(lines)


def main() -> int:
    print("\n\n".join(describe(c) for c in ALL_CONFIGS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
