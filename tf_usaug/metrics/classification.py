"""Classification metrics in plain numpy: confusion matrix, accuracy, sensitivity, specificity,
precision, F1 (per class, macro, micro) and the rank-based ROC-AUC.

Paper 002 reports accuracy, recall (sensitivity), specificity, precision and F1 with a
confusion matrix (sec. "Quantitative evaluation", Table 4, using Eqs. 8-13 of Panigrahi et al.
2024); paper 004 (sec. 2.3) reports the micro-averaged F1 over three classes. With ``TP``,
``FP``, ``FN``, ``TN`` counted for one class against the rest:

    accuracy    = sum(diag) / N                sensitivity = TP / (TP + FN)   (recall)
    specificity = TN / (TN + FP)               precision   = TP / (TP + FP)
    F1          = 2 TP / (2 TP + FP + FN)      (the harmonic mean of precision and recall)

``macro``: the unweighted mean of the per-class values; ``micro``: the same formula on the
counts summed over the classes (single-label: micro precision = recall = F1 = accuracy).
A ratio whose denominator is 0 is 0.0 (scikit-learn's ``zero_division=0``), except the
ROC-AUC, which is None when the true labels hold one class only.

Example::

    cm = confusion_matrix([0, 1, 1, 0], [0, 1, 0, 0], n_classes=2)   # [[2, 0], [1, 1]]
    sensitivity(cm)[1], specificity(cm)[1]                            # 0.5, 1.0
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

AVERAGES = ("macro", "micro")


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int],
                     n_classes: int | None = None) -> np.ndarray:
    """Counts ``cm[i, j]`` of samples of true class ``i`` predicted as ``j`` (int64, KxK).

    Args:
        y_true, y_pred: class indices in ``[0, n_classes)``.
        n_classes: K (default: 1 + the largest index seen).
    """
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length ({t.size} vs {p.size})")
    k = int(n_classes) if n_classes is not None else int(max(t.max(initial=-1),
                                                             p.max(initial=-1)) + 1)
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= k):
        raise ValueError(f"class indices must lie in [0, {k})")
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def one_vs_rest_counts(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class ``(TP, FP, FN, TN)`` of a confusion matrix (each an int array of length K)."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    return tp, fp, fn, tn


def _ratio(num, den) -> np.ndarray:
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def accuracy(cm: np.ndarray) -> float:
    """Correct predictions over all predictions (0.0 for an empty matrix)."""
    cm = np.asarray(cm)
    return float(_ratio(np.trace(cm), cm.sum()))


def sensitivity(cm: np.ndarray) -> np.ndarray:
    """Per-class recall ``TP / (TP + FN)``."""
    tp, _, fn, _ = one_vs_rest_counts(cm)
    return _ratio(tp, tp + fn)


def specificity(cm: np.ndarray) -> np.ndarray:
    """Per-class ``TN / (TN + FP)``."""
    _, fp, _, tn = one_vs_rest_counts(cm)
    return _ratio(tn, tn + fp)


def precision(cm: np.ndarray) -> np.ndarray:
    """Per-class ``TP / (TP + FP)``."""
    tp, fp, _, _ = one_vs_rest_counts(cm)
    return _ratio(tp, tp + fp)


def f1_score(cm: np.ndarray) -> np.ndarray:
    """Per-class ``2 TP / (2 TP + FP + FN)``."""
    tp, fp, fn, _ = one_vs_rest_counts(cm)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def averaged(cm: np.ndarray, average: str) -> dict[str, float]:
    """Sensitivity, specificity, precision and F1 averaged over the classes.

    Args:
        cm: the confusion matrix.
        average: ``"macro"`` (mean of the per-class values) or ``"micro"`` (the formulas on
            the class-summed TP, FP, FN, TN).
    """
    if average == "macro":
        return {"sensitivity": float(sensitivity(cm).mean()),
                "specificity": float(specificity(cm).mean()),
                "precision": float(precision(cm).mean()), "f1": float(f1_score(cm).mean())}
    if average != "micro":
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    tp, fp, fn, tn = (c.sum() for c in one_vs_rest_counts(cm))
    return {"sensitivity": float(_ratio(tp, tp + fn)), "specificity": float(_ratio(tn, tn + fp)),
            "precision": float(_ratio(tp, tp + fp)), "f1": float(_ratio(2 * tp, 2 * tp + fp + fn))}


def roc_auc(y_true: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve of binary labels, from ranks (Mann-Whitney U / (n1 n0)).

    Tied scores get their average rank, so a positive and a negative with the same score count
    one half: exactly the trapezoidal area under the ROC curve.

    Args:
        y_true: 1 for positive, 0 for negative.
        scores: higher means more positive (e.g. the positive class's probability).

    Returns:
        The AUC, or None when ``y_true`` holds only one of the two classes.
    """
    y = np.asarray(y_true).ravel().astype(bool)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true and scores differ in length ({y.size} vs {s.size})")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = average_ranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` with ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Each run of equal values [start, stop) gets rank (start + 1 + stop) / 2.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    stops = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    for start, stop in zip(starts, stops):
        ranks[order[start:stop]] = (start + 1 + stop) / 2.0
    return ranks


def roc_auc_multiclass(y_true: Sequence[int], probabilities: np.ndarray,
                       average: str) -> float | None:
    """One-vs-rest ROC-AUC of K classes.

    ``macro``: the mean of each class's AUC against the rest (classes absent from ``y_true``
    are left out; None when none is left). ``micro``: one AUC over all (sample, class) pairs,
    the one-hot labels against the probabilities (scikit-learn's ``average="micro"``).
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64).ravel()
    onehot = np.eye(probs.shape[1], dtype=bool)[y]
    if average == "micro":
        return roc_auc(onehot.ravel(), probs.ravel())
    if average != "macro":
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    aucs = [roc_auc(onehot[:, k], probs[:, k]) for k in range(probs.shape[1])]
    aucs = [a for a in aucs if a is not None]
    return float(np.mean(aucs)) if aucs else None


def classification_metrics(y_true: Sequence[int], probabilities: np.ndarray,
                           class_names: Sequence[str]) -> dict:
    """Every metric of one evaluated split, JSON-ready (``metrics.json``).

    The prediction is the most probable class. Binary tasks (K = 2) report sensitivity,
    specificity, precision, F1 and ROC-AUC of the POSITIVE class, which is the last class
    name in sorted order (``benign``/``malignant`` -> ``malignant``); multi-class tasks report
    their macro and micro averages (and both one-vs-rest AUCs). Both carry the per-class values
    and the confusion matrix (rows: true class, columns: predicted class, in ``class_names``
    order).

    Args:
        y_true: true class indices.
        probabilities: ``[N, K]`` class probabilities (rows sum to 1).
        class_names: the K names, in index order.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    k = len(class_names)
    if probs.ndim != 2 or probs.shape[1] != k:
        raise ValueError(f"probabilities must be [N, {k}], got {probs.shape}")
    y = np.asarray(y_true, dtype=np.int64).ravel()
    cm = confusion_matrix(y, probs.argmax(axis=1), n_classes=k)
    per_class = {name: {"sensitivity": float(se), "specificity": float(sp),
                        "precision": float(pr), "f1": float(f), "support": int(n)}
                 for name, se, sp, pr, f, n in zip(class_names, sensitivity(cm), specificity(cm),
                                                   precision(cm), f1_score(cm), cm.sum(axis=1))}
    out: dict = {"n": int(y.size), "accuracy": accuracy(cm), "confusion_matrix": cm.tolist(),
                 "class_names": list(class_names), "per_class": per_class}
    if k == 2:
        pos = class_names[-1]
        out.update({"positive_class": pos, **{m: per_class[pos][m] for m in
                                             ("sensitivity", "specificity", "precision", "f1")},
                    "roc_auc": roc_auc(y == 1, probs[:, 1])})
    else:
        for average in AVERAGES:
            out[average] = {**averaged(cm, average),
                            "roc_auc": roc_auc_multiclass(y, probs, average)}
    return out
