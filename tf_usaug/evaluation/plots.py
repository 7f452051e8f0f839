"""The report's figures as PNG (matplotlib's Agg canvas, no display): metric bars with error
bars, ROC curves per arm.

* :func:`metric_bars`: one group of bars per metric, one bar per arm: mean over folds, error
  bar = sd over folds, the folds' values as dots.
* :func:`roc_curves`: binary tasks, one curve per arm from the test predictions POOLED over the
  folds (each fold's test images are disjoint, so every in-domain original appears once; an
  unseen device's images appear once per fold); the legend gives the mean +- sd of the
  per-fold AUCs, which is what the tables and tests use.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from ..files import atomic_write_bytes
from .statistics import METRIC_LABELS, METRICS


def _save(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def roc_points(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``(false positive rate, true positive rate)`` at every distinct score threshold,
    from (0, 0) to (1, 1); tied scores make one step (the trapezoid the AUC counts)."""
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, np.float64).ravel()
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.array([], int)
    tp = np.cumsum(y)[last] if len(s) else np.array([])
    fp = (last + 1) - tp
    pos, neg = max(1, int(y.sum())), max(1, int((~y).sum()))
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos]


def metric_bars(summary: dict, arms: Sequence[str], test_set: str, path: Path,
                title: str) -> Path:
    """Bars of mean +- sd over folds per metric and arm (``summary[arm][test_set][metric]``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.6 + 1.3 * len(METRICS), 3.6))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(arms))
    x = np.arange(len(METRICS))
    for i, arm in enumerate(arms):
        stats = [summary[arm][test_set][m] for m in METRICS]
        means = [s["mean"] if s["mean"] is not None else np.nan for s in stats]
        sds = [s["sd"] if s["sd"] is not None else 0.0 for s in stats]
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, means, width * 0.9, yerr=sds, capsize=3, label=arm, alpha=0.85)
        for j, s in enumerate(stats):
            dots = [v for v in s["values"] if v is not None]
            ax.plot([pos[j]] * len(dots), dots, "k.", ms=3, alpha=0.6)
    ax.set_xticks(x, [METRIC_LABELS[m] for m in METRICS])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean over folds (error bar: sd)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(arms), 5), loc="lower center",
              bbox_to_anchor=(0.5, -0.32))
    return _save(fig, path)


def roc_curves(pooled: dict[str, tuple[list[int], list[float]]], auc: dict[str, dict],
               path: Path, title: str) -> Path:
    """ROC curve per arm: ``pooled[arm] = (labels, positive-class scores)``, ``auc[arm]`` the
    per-fold AUC summary (mean, sd) for the legend."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.4))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--")
    for arm, (labels, scores) in pooled.items():
        fpr, tpr = roc_points(labels, scores)
        a = auc.get(arm, {})
        text = "n/a" if a.get("mean") is None else (
            f"{a['mean']:.3f}" + (f" \u00b1 {a['sd']:.3f}" if a.get("sd") is not None else ""))
        ax.plot(fpr, tpr, lw=1.5, label=f"{arm} (AUC {text})")
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)
