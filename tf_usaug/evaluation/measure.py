"""What one arm x fold measures: the classifier on untouched test originals, and what its
augmented training images kept of their contents.

* :func:`predict_sets`: class probabilities of every test set (the fold's in-domain test
  originals, each unseen device's test images), read at their own size and resized by the run's
  preprocessing like its training data; :func:`set_metrics` turns them into
  :func:`tf_usaug.metrics.classification.classification_metrics`.
* :func:`transplant`: over the children the fold trains on, label preservation by the
  ORIGINALS-ONLY classifier of the same fold (the ``none`` arm's model: it never saw a child;
  the share of its training parents it classifies right is reported beside, as the ceiling),
  the lesion CNR of each child with a mask against its content's (the content brought to the
  child's geometry by the augment job's own preparer: working size, crop none, fit pad), and,
  for NST with relevance, the relevance mass inside the lesion (the manifest's
  ``relevance_mass_in_mask``) with its chance level, the lesion's area fraction of the square.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.datasets import Sample
from ..data.image_io import read_image, read_mask
from ..metrics.classification import classification_metrics
from ..metrics.relevance import area_fraction
from ..metrics.transplant import RING_WIDTH_FRACTION, cnr_change, label_preservation

#: Images predicted per call (bounded memory for large test sets).
CHUNK = 64


def _predict_paths(run, paths: Sequence[Path]) -> np.ndarray:
    from ..models.classifier import predict

    parts = []
    for i in range(0, len(paths), CHUNK):
        images = [read_image(p)[0] for p in paths[i:i + CHUNK]]
        parts.append(predict(run, images))
    k = len(run.preprocessing.class_names)
    return np.concatenate(parts) if parts else np.zeros((0, k))


def load_run(run_dir: Path):
    from ..models.classifier import load_classifier_run

    return load_classifier_run(run_dir)


def predict_sets(run, test_sets: dict[str, list[Sample]], class_names: Sequence[str]) -> dict:
    """``{set: {"keys", "labels", "probabilities"}}`` (labels as class indices)."""
    if tuple(run.preprocessing.class_names) != tuple(class_names):
        raise RuntimeError(f"the classifier's classes {run.preprocessing.class_names} are not "
                           f"the plan's {list(class_names)}")
    index = {name: i for i, name in enumerate(class_names)}
    out = {}
    for name, samples in test_sets.items():
        probs = _predict_paths(run, [s.image for s in samples])
        out[name] = {"keys": [s.key for s in samples],
                     "labels": [index[s.label] for s in samples],
                     "probabilities": np.round(probs, 6).tolist()}
    return out


def set_metrics(predictions: dict, class_names: Sequence[str]) -> dict:
    return {name: classification_metrics(p["labels"], np.asarray(p["probabilities"]).reshape(
        len(p["labels"]), len(class_names)), class_names) for name, p in predictions.items()}


def _summary(values: Sequence[float | None]) -> dict:
    v = np.array([x for x in values if x is not None], np.float64)
    if not v.size:
        return {"n": 0, "mean": None, "median": None}
    return {"n": int(v.size), "mean": float(v.mean()), "median": float(np.median(v))}


def transplant(rows: Sequence[dict], samples: dict[str, Sample], class_names: Sequence[str],
               none_run, size: int, relevance: bool) -> dict:
    """Label preservation, lesion CNR change and relevance mass of a fold's children.

    Args:
        rows: the fold's children (:func:`.augmentation.fold_rows`: ``key``, ``image``,
            ``mask_file`` and the manifest fields).
        samples: device A's originals by key.
        class_names: the classes (index order).
        none_run: the fold's originals-only classifier (``load_classifier_run``).
        size: the augment job's working size.
        relevance: collect ``relevance_mass_in_mask``.
    """
    from ..pipeline.inputs import InputPreparer

    index = {name: i for i, name in enumerate(class_names)}
    out: dict = {}
    if none_run is not None and rows:
        child_pred = _predict_paths(none_run, [Path(r["image"]) for r in rows]).argmax(1)
        labels = [index[samples[r["key"]].label] for r in rows]
        parents = sorted({r["key"] for r in rows})
        parent_pred = _predict_paths(none_run, [samples[k].image for k in parents]).argmax(1)
        out["label_preservation"] = {
            "value": label_preservation(child_pred, labels), "n": len(rows),
            "parent_accuracy": label_preservation(
                parent_pred, [index[samples[k].label] for k in parents]),
            "parents": len(parents)}
    preparer = InputPreparer(size, "none", "pad")
    prepared: dict = {}
    changes, before, after, mass, chance = [], [], [], [], []
    for row in rows:
        sample = samples[row["key"]]
        if not sample.masks:
            continue
        if row["key"] not in prepared:
            prepared[row["key"]] = preparer.content(sample)
        p = prepared[row["key"]]
        if relevance and row.get("relevance_mass_in_mask") is not None:
            mass.append(float(row["relevance_mass_in_mask"]))
            chance.append(area_fraction(p.mask))
        if not row.get("mask_file"):
            continue
        image, shape = read_image(row["image"])
        c = cnr_change(image, read_mask(row["mask_file"], shape=shape), p.cut(p.image),
                       p.cut(p.mask))
        before.append(c["content_cnr"])
        after.append(c["output_cnr"])
        changes.append(c["relative_change"])
    out["cnr"] = {"ring_width_fraction": RING_WIDTH_FRACTION, "content": _summary(before),
                  "output": _summary(after), "relative_change": _summary(changes)}
    if relevance:
        out["relevance_mass"] = {**_summary(mass), "chance": _summary(chance)["mean"]}
    return out
