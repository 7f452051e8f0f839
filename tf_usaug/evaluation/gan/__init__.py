"""Generative metrics of image folders: ``python -m tf_usaug.evaluate gan`` (docs/gan_metrics.md)

    config.py     GanMetricsConfig, METRICS, checks before any work
    job.py        evaluate_gan(cfg) -> dict (folders), score_images(real, fake, cfg) (arrays)
    report.py     the printed table and metrics.md
    arguments.py  the ``gan`` sub-command's options

Notebook use::

    from tf_usaug.evaluation.gan import GanMetricsConfig, evaluate_gan
    result = evaluate_gan(GanMetricsConfig(real="test/", fake="samples/", features="pixels"))
    result["fid"], result["kid"]["mean"], result["one_nn"]["accuracy"]["mean"]

The maths is in :mod:`tf_usaug.metrics.generative`, the feature networks in
:mod:`tf_usaug.metrics.features`. Importing this package does not import TensorFlow.
"""
from .config import FEATURE_METRICS, METRICS, GanMetricsConfig, check_config
from .job import evaluate_gan, read_folder, score_images

__all__ = ["FEATURE_METRICS", "METRICS", "GanMetricsConfig", "check_config", "evaluate_gan",
           "read_folder", "score_images"]
