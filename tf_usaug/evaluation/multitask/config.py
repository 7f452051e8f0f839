"""Settings of the multitask ablation across scanners (paper 000 Table 1):
:class:`MultitaskEvalConfig` and the rows (:data:`ROWS`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ...errors import UsageError


class Row(NamedTuple):
    """One ablation row: which augmentations the network is trained with."""

    label: str
    mixstyle: bool
    feataug: bool
    maskaug: bool


#: Paper 000 Table 1's ablation; every row includes the traditional augmentation.
ROWS: dict[str, Row] = {
    "traditional": Row("traditional", False, False, False),
    "mixstyle": Row("+ MixStyleAug", True, False, False),
    "feataug": Row("+ FeatAug", False, True, False),
    "maskaug": Row("+ MaskAug", False, False, True),
    "all": Row("MixStyleAug + FeatAug + MaskAug", True, True, True),
}
REFERENCE = "traditional"
METRICS = ("dsc", "auroc")
METRIC_LABELS = {"dsc": "DSC", "auroc": "AUROC"}


@dataclass
class MultitaskEvalConfig:
    """Everything one ablation needs.

    Attributes:
        data: originals of every device (``DATA/<device>/<class>/<image>`` + masks).
        out: report folder.
        train_device: device A, the only one trained on.
        test_devices: devices tested (default all); A on its held-out originals, the others
            on all their originals except the style share.
        rows: ablation rows (keys of :data:`ROWS`); ``traditional`` is always trained.
        seeds: number of seeds (0, 1, ...): each seed draws A's train/test split, the style
            share, the initial weights and the augmentation.
        test_fraction: share of A's originals held out for testing (paper 000: 0.2).
        style_fraction: share of each other device held out as MixStyleAug / MaskAug
            references, never tested (like the benefit report's ``--style-fraction``).
        size, epochs, batch_size, learning_rate, filters, maskaug_warmup, wct_steps: the
            trainer's (``MultitaskConfig``; the paper's lr 5e-4 by default).
    """

    data: Path | None = None
    out: Path = Path("multitask_eval")
    train_device: str | None = None
    test_devices: tuple[str, ...] = ()
    rows: tuple[str, ...] = tuple(ROWS)
    seeds: int = 3
    test_fraction: float = 0.2
    style_fraction: float = 0.25
    size: int = 64
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 5e-4
    filters: tuple[int, int, int, int] = (16, 32, 64, 128)
    maskaug_warmup: int | None = None
    wct_steps: int = 400
    threads: int | None = None
    overwrite: bool = False
    verbose: bool = False
    command: str = field(default="", compare=False)


def check_config(cfg: MultitaskEvalConfig) -> None:
    if cfg.data is None or not Path(cfg.data).is_dir():
        raise UsageError(f"--data {cfg.data}: no such folder")
    if not cfg.train_device:
        raise UsageError("--train-device is required")
    unknown = [r for r in cfg.rows if r not in ROWS]
    if unknown:
        raise UsageError(f"unknown --rows {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    for name in ("seeds", "epochs", "batch_size"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a whole number >= 1, got "
                             f"{value!r}")
    for name in ("test_fraction", "style_fraction"):
        if not 0 < getattr(cfg, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must lie in (0, 1), got "
                             f"{getattr(cfg, name)}")
