"""The benefit evaluation: does augmenting one scanner's training images help a classifier,
on that scanner and on one it never saw? (``python -m tf_usaug.evaluate benefit``,
docs/benefit.md)

    config.py        BenefitConfig, ARMS (none, traditional, srad, nst, nst-no-lrp, gan), checks
    devices.py       the devices of a dataset (device folders or device-prefixed names), links
    folds.py         folds by source image, the style pool, the test sets: Plan
    layout.py        the report folder: ReportDir
    library.py       calling the augment and classifier libraries on one rank, quietly
    augmentation.py  an arm's augment job, the children a fold trains on
    training.py      the classifier of an arm and fold, its split checked
    gan_arm.py       the gan arm: a fold's per-class GAN, trained on its training originals
    measure.py       predictions on the test sets, label preservation, lesion CNR, relevance mass
    units.py         the work units (shared augmentation, arm x fold): resumable, sharded
    statistics.py    mean +- sd over folds, paired t-test and Wilcoxon
    plots.py         metric bars, ROC curves (PNG)
    report.py        report.json, report.md, report.html
    job.py           run_benefit(cfg) -> report

Notebook use::

    from tf_usaug.evaluation import BenefitConfig, run_benefit
    report = run_benefit(BenefitConfig(data="bench/", out="runs/benefit", train_device="A",
                                       arms=("none", "traditional")))

Importing this package does not import TensorFlow.
"""
from .config import ARMS, Arm, BenefitConfig, check_config
from .job import run_benefit

__all__ = ["ARMS", "Arm", "BenefitConfig", "check_config", "run_benefit"]
