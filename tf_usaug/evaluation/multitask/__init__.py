"""The multitask ablation across scanners (paper 000 Table 1): train the multitask network on
device A with each augmentation row and seed, test on untouched originals of A and of unseen
devices; DSC and AUROC, paired tests, report (docs/multitask.md).

    config.py   MultitaskEvalConfig, ROWS
    job.py      run_multitask_eval(cfg) -> report; plan_seed, measure
    report.py   aggregate, report.{json,md,html}, plots
"""
from .config import ROWS, MultitaskEvalConfig


def run_multitask_eval(cfg):
    from .job import run_multitask_eval as run

    return run(cfg)


__all__ = ["ROWS", "MultitaskEvalConfig", "run_multitask_eval"]
