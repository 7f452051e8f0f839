"""tf_usaug.metrics.classification against hand-computed values, brute force, SciPy's
Mann-Whitney U and (when installed) scikit-learn."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from tf_usaug.metrics import classification as cls

# Binary by hand: TP 4, FN 2, FP 1, TN 3 (positive class 1).
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
Y_PRED = [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
# Three classes by hand (rows true, columns predicted; 20 samples).
CM3 = np.array([[5, 1, 0], [2, 3, 1], [0, 2, 6]])


def labels_of(cm):
    """(y_true, y_pred) realising a confusion matrix."""
    pairs = [(i, j) for i in range(len(cm)) for j in range(len(cm)) for _ in range(cm[i, j])]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def brute_force_auc(y, s):
    """Pairs (positive, negative): 1 when the positive scores higher, 1/2 on a tie."""
    pos, neg = [v for v, t in zip(s, y) if t], [v for v, t in zip(s, y) if not t]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def trapezoid_auc(y, s):
    """Area under the ROC polyline through every threshold (ties move diagonally)."""
    y, s = np.asarray(y, bool), np.asarray(s, float)
    thresholds = np.r_[np.inf, np.unique(s)[::-1]]
    tpr = [np.mean(s[y] >= t) for t in thresholds]
    fpr = [np.mean(s[~y] >= t) for t in thresholds]
    return float(np.sum(np.diff(fpr) * (np.array(tpr[1:]) + tpr[:-1]) / 2))


def test_confusion_matrix_by_hand_and_by_loop(rng):
    assert cls.confusion_matrix(Y_TRUE, Y_PRED).tolist() == [[3, 1], [2, 4]]
    t, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    loop = np.zeros((5, 5), int)
    for a, b in zip(t, p):
        loop[a, b] += 1
    assert np.array_equal(cls.confusion_matrix(t, p, n_classes=5), loop)
    assert cls.confusion_matrix(*labels_of(CM3)).tolist() == CM3.tolist()
    for bad in [([0, 1], [0]), ([0, 3], [0, 1])]:
        with pytest.raises(ValueError):
            cls.confusion_matrix(*bad, n_classes=3)


def test_binary_rates_by_hand():
    cm = cls.confusion_matrix(Y_TRUE, Y_PRED)
    assert cls.accuracy(cm) == pytest.approx(7 / 10)
    assert cls.sensitivity(cm)[1] == pytest.approx(4 / 6)
    assert cls.specificity(cm)[1] == pytest.approx(3 / 4)
    assert cls.precision(cm)[1] == pytest.approx(4 / 5)
    assert cls.f1_score(cm)[1] == pytest.approx(8 / 11)  # 2PR/(P+R) with P=4/5, R=2/3
    # The negative class's view mirrors it.
    assert cls.sensitivity(cm)[0] == cls.specificity(cm)[1]


def test_macro_and_micro_by_hand():
    macro = cls.averaged(CM3, "macro")
    assert macro["sensitivity"] == pytest.approx((5 / 6 + 3 / 6 + 6 / 8) / 3)
    assert macro["specificity"] == pytest.approx((12 / 14 + 11 / 14 + 11 / 12) / 3)
    assert macro["precision"] == pytest.approx((5 / 7 + 3 / 6 + 6 / 7) / 3)
    assert macro["f1"] == pytest.approx((10 / 13 + 6 / 12 + 12 / 15) / 3)
    micro = cls.averaged(CM3, "micro")  # TP 14, FP 6, FN 6, TN 34
    assert micro == pytest.approx({"sensitivity": 0.7, "specificity": 34 / 40,
                                   "precision": 0.7, "f1": 0.7})
    assert micro["f1"] == pytest.approx(cls.accuracy(CM3))  # single-label identity
    with pytest.raises(ValueError):
        cls.averaged(CM3, "weighted")


def test_zero_division_is_zero():
    cm = cls.confusion_matrix([0, 0, 1], [0, 0, 0], n_classes=2)  # class 1 never predicted
    assert cls.precision(cm)[1] == 0.0 and cls.f1_score(cm)[1] == 0.0
    assert cls.accuracy(np.zeros((2, 2), int)) == 0.0


def test_roc_auc_by_hand_with_ties():
    assert cls.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert cls.roc_auc([0, 1, 0, 1], [0.5] * 4) == pytest.approx(0.5)
    assert cls.roc_auc([0, 0, 1, 1], [0.2, 0.5, 0.5, 0.9]) == pytest.approx(3.5 / 4)
    assert cls.roc_auc([1, 1, 0], [0.9, 0.8, 0.1]) == 1.0
    assert cls.roc_auc([1, 1], [0.2, 0.3]) is None
    assert cls.average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_against_brute_force_scipy_and_trapezoid(rng, ties):
    for _ in range(20):
        y = rng.integers(0, 2, 40)
        s = rng.random(40)
        if ties:
            s = np.round(s * 4) / 4  # five distinct scores: many ties
        auc = cls.roc_auc(y, s)
        assert auc == pytest.approx(brute_force_auc(y, s), abs=1e-12)
        assert auc == pytest.approx(trapezoid_auc(y, s), abs=1e-12)
        u = stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic
        assert auc == pytest.approx(u / (np.sum(y == 1) * np.sum(y == 0)), abs=1e-12)


def test_multiclass_auc_is_one_vs_rest(rng):
    y = rng.integers(0, 3, 60)
    probs = rng.dirichlet(np.ones(3), 60)
    per_class = [brute_force_auc(y == k, probs[:, k]) for k in range(3)]
    assert cls.roc_auc_multiclass(y, probs, "macro") == pytest.approx(np.mean(per_class))
    onehot = np.eye(3)[y]
    assert cls.roc_auc_multiclass(y, probs, "micro") == pytest.approx(
        brute_force_auc(onehot.ravel(), probs.ravel()))
    two = np.array([0, 0, 1])  # class 2 absent: left out of the macro mean
    p = np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1]])
    assert cls.roc_auc_multiclass(two, p, "macro") == pytest.approx(1.0)


def test_report_binary_uses_the_last_class_as_positive():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    y = [0, 0, 0, 1, 1, 1]  # predicted 0, 0, 1, 1, 0, 1
    report = cls.classification_metrics(y, probs, ["benign", "malignant"])
    assert report["positive_class"] == "malignant" and report["n"] == 6
    assert report["confusion_matrix"] == [[2, 1], [1, 2]]
    assert report["sensitivity"] == pytest.approx(2 / 3)
    assert report["specificity"] == pytest.approx(2 / 3)
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["roc_auc"] == pytest.approx(brute_force_auc([0, 0, 0, 1, 1, 1], probs[:, 1]))
    assert report["per_class"]["benign"]["support"] == 3
    json.dumps(report)  # JSON-ready


def test_report_multiclass_has_macro_and_micro(rng):
    y, p = labels_of(CM3)
    probs = np.eye(3)[p] * 0.7 + 0.1
    report = cls.classification_metrics(y, probs, ["a", "b", "c"])
    assert "positive_class" not in report and report["confusion_matrix"] == CM3.tolist()
    assert report["micro"]["f1"] == pytest.approx(0.7)
    assert report["macro"]["sensitivity"] == pytest.approx(
        cls.averaged(CM3, "macro")["sensitivity"])
    assert 0 <= report["macro"]["roc_auc"] <= 1 and 0 <= report["micro"]["roc_auc"] <= 1
    with pytest.raises(ValueError):
        cls.classification_metrics(y, probs[:, :2], ["a", "b", "c"])


def test_against_scikit_learn(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    y, p = rng.integers(0, 3, 100), rng.integers(0, 3, 100)
    cm = cls.confusion_matrix(y, p, 3)
    assert np.array_equal(cm, metrics.confusion_matrix(y, p))
    for avg in ("macro", "micro"):
        ours = cls.averaged(cm, avg)
        assert ours["precision"] == pytest.approx(metrics.precision_score(y, p, average=avg))
        assert ours["sensitivity"] == pytest.approx(metrics.recall_score(y, p, average=avg))
        assert ours["f1"] == pytest.approx(metrics.f1_score(y, p, average=avg))
    probs = rng.dirichlet(np.ones(3), 100)
    assert cls.roc_auc_multiclass(y, probs, "macro") == pytest.approx(
        metrics.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
