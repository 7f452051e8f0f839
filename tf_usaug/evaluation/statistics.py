"""Fold-level statistics: mean +- sd over folds and paired tests of one arm against another.

* :func:`headline`: the five reported metrics of one evaluated set. Binary tasks: accuracy and
  the positive class's ROC-AUC, F1, sensitivity and specificity (the positive class is the
  last sorted name); multi-class: accuracy and the macro averages.
* :func:`summarize`: mean and sample standard deviation (ddof 1) over the folds.
* :func:`paired_tests`: arm vs reference on the same folds (same test originals, same seeds):
  the paired t-test (:func:`scipy.stats.ttest_rel`) and the Wilcoxon signed-rank test
  (:func:`scipy.stats.wilcoxon`, exact for small samples, zero differences dropped), both
  two-sided. With K folds the smallest Wilcoxon p that can occur is ``2 / 2^K`` (0.0625 for
  K = 5: it can never reach 0.05) and the t-test has K - 1 degrees of freedom; the folds also
  share most of their training images, which makes the t-test optimistic (Nadeau & Bengio
  2003). Both tests have little power with few folds: the report says so, and a
  p-value above 0.05 is no evidence that the arms are equal.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

METRICS = ("accuracy", "roc_auc", "f1", "sensitivity", "specificity")
METRIC_LABELS = {"accuracy": "accuracy", "roc_auc": "ROC-AUC", "f1": "F1",
                 "sensitivity": "sensitivity", "specificity": "specificity"}


def headline(metrics: dict) -> dict[str, float | None]:
    """:data:`METRICS` of one ``classification_metrics`` dict (see the module docstring)."""
    if "macro" in metrics:
        macro = metrics["macro"]
        return {"accuracy": metrics["accuracy"], **{m: macro.get(m) for m in METRICS[1:]}}
    return {m: metrics.get(m) for m in METRICS}


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def summarize(values: Sequence[float | None]) -> dict:
    """``{"mean", "sd", "n", "values"}`` over the folds (None values left out; sd None for
    fewer than two)."""
    v = _finite(values)
    return {"mean": float(np.mean(v)) if v else None,
            "sd": float(np.std(v, ddof=1)) if len(v) > 1 else None,
            "n": len(v), "values": [None if x is None else float(x) for x in values]}


def min_wilcoxon_p(n: int) -> float | None:
    """Smallest two-sided exact Wilcoxon signed-rank p with ``n`` non-zero pairs."""
    return None if n < 1 else min(1.0, 2.0 / 2 ** n)


def power_note(n: int) -> str:
    """What ``n`` paired folds can show."""
    floor = min_wilcoxon_p(n)
    text = (f"{n} paired folds: the smallest possible two-sided Wilcoxon p is {floor:.3g}"
            if floor is not None else "no paired folds")
    if n >= 1:
        text += f", the paired t-test has {max(0, n - 1)} degree(s) of freedom"
    if n < 10:
        text += "; both tests have little power (p > 0.05 is no evidence of equal arms)"
    return text


def paired_tests(arm: Sequence[float | None], reference: Sequence[float | None]) -> dict:
    """Paired t-test and Wilcoxon signed-rank of ``arm`` vs ``reference`` over the folds.

    Folds where either value is None (e.g. an AUC of a one-class test set) are left out.

    Returns:
        ``{"n", "mean_difference", "t_test_p", "wilcoxon_p", "note"}``; a p-value is None
        when the test is undefined (fewer than two pairs; all differences equal for the
        t-test; all zero for Wilcoxon), with the reason in ``note``.
    """
    from scipy import stats

    pairs = [(float(a), float(b)) for a, b in zip(arm, reference)
             if a is not None and b is not None]
    n = len(pairs)
    diff = np.array([a - b for a, b in pairs], np.float64)
    out = {"n": n, "mean_difference": float(diff.mean()) if n else None,
           "t_test_p": None, "wilcoxon_p": None, "note": power_note(n)}
    if n < 2:
        out["note"] += "; fewer than two pairs: no test"
        return out
    if np.allclose(diff, diff[0], rtol=0, atol=1e-12):
        out["note"] += ("; every fold has the same difference: the t-test is undefined")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["t_test_p"] = float(stats.ttest_rel([a for a, _ in pairs],
                                                    [b for _, b in pairs]).pvalue)
    if not np.any(np.abs(diff) > 1e-12):
        out["note"] += "; all differences are zero: Wilcoxon is undefined"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["wilcoxon_p"] = float(stats.wilcoxon(diff[np.abs(diff) > 1e-12]).pvalue)
    return out


def aggregate(results: dict[str, dict[int, dict]], references: Sequence[str],
              test_sets: Sequence[str]) -> dict:
    """Per arm and test set: metric summaries over folds and paired tests against each
    reference arm present.

    Args:
        results: arm -> fold -> result record (``metrics`` per test set).
        references: reference arms (``none``, ``traditional``), those present are used.
        test_sets: test set names, in report order.

    Returns:
        ``{"metrics": {arm: {set: {metric: summary}}}, "tests": {set: {reference: {arm:
        {metric: paired_tests}}}}}``; each pair once (against ``traditional``: the arms
        other than ``none`` and itself).
    """
    folds = sorted({f for per in results.values() for f in per})

    def values(arm, test_set, metric):
        return [headline(results[arm][f]["metrics"][test_set])[metric]
                if f in results[arm] else None for f in folds]

    summary = {arm: {s: {m: summarize(values(arm, s, m)) for m in METRICS} for s in test_sets}
               for arm in results}
    tests: dict = {}
    for s in test_sets:
        tests[s] = {}
        for i, ref in enumerate(references):
            if ref not in results:
                continue
            # each pair once: against traditional, the arms other than none
            others = [arm for arm in results if arm not in references[:i + 1]]
            if others:
                tests[s][ref] = {arm: {m: paired_tests(values(arm, s, m), values(ref, s, m))
                                       for m in METRICS} for arm in others}
    return {"metrics": summary, "tests": tests, "folds": folds}
