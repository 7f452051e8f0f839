"""Does the relevance explain the lesion? Relevance mass accuracy and the pointing game of LRP
maps (alpha=2, beta=1, as the NST uses them) on images the classifier never saw.

K-fold over a labelled set with lesion masks (default: the bundled demo phantoms): per fold the
small classifier is trained on the other folds (``python -m tf_usaug.train classifier --folds K
--fold I``) and its maps are computed for the fold's test images. Baselines, measured in the
same run on the same images: the same architecture with seeded random weights (untrained),
and the seeded random-weight ResNet50 that the demo explained before the classifier existed.

    python benchmarks/relevance_mass.py     # -> benchmarks/results/relevance_mass.json

Mass accuracy (Arras et al. 2022): positive relevance inside the mask / all positive relevance;
a map blind to the lesion scores its area fraction. Paired test: Wilcoxon signed-rank over
images, trained against each baseline.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tf_usaug.data.datasets import discover, load_sample  # noqa: E402
from tf_usaug.metrics.relevance import (area_fraction, pointing_game,  # noqa: E402
                                        relevance_mass_accuracy)


def train_fold(data: Path, out: Path, folds: int, fold: int, size: int, seed: int) -> Path:
    if not (out / "model.keras").is_file():
        subprocess.run([sys.executable, "-m", "tf_usaug.train", "classifier", "--data", str(data),
                        "--backbone", "small", "--size", str(size), "--folds", str(folds),
                        "--fold", str(fold), "--seed", str(seed), "--out", str(out)],
                       check=True, cwd=REPO)
    return out


def untrained_model(out: Path, size: int, seed: int) -> Path:
    """The small classifier's architecture with seeded random weights, as a model file."""
    path = out / f"untrained_small_{size}_seed{seed}.keras"
    if not path.is_file():
        from tf_usaug.models.classifier.networks import build_classifier

        build_classifier("small", 2, size, seed=seed).save(path)
    return path


def maps_of(images: list[Path], cfg, cache: Path) -> dict[Path, np.ndarray]:
    from tf_usaug.xai.relevance import ensure_relevance, load_relevance

    paths = ensure_relevance(images, cfg, cache)
    return {p: load_relevance(paths[p]) for p in images}


def scores(maps: dict, masks: dict) -> list[dict]:
    rows = []
    for path, rel in maps.items():
        mask = masks[path]
        if rel.shape != mask.shape:
            import cv2
            rel = cv2.resize(rel.astype(np.float32), mask.shape[::-1],
                             interpolation=cv2.INTER_AREA)
        rows.append(dict(image=path.name, mass=relevance_mass_accuracy(rel, mask),
                         pointing=pointing_game(rel, mask),
                         pointing_15=pointing_game(rel, mask, tolerance=round(15 * mask.shape[0]
                                                                             / 224)),
                         area=area_fraction(mask)))
    return rows


def summary(rows: list[dict]) -> dict:
    mass = np.array([r["mass"] for r in rows], float)
    area = np.array([r["area"] for r in rows], float)
    return dict(n=len(rows), mass_mean=round(float(mass.mean()), 4),
                mass_sd=round(float(mass.std(ddof=1)), 4),
                area_mean=round(float(area.mean()), 4),
                mass_over_area=round(float(mass.mean() / area.mean()), 3),
                pointing=round(float(np.mean([r["pointing"] for r in rows])), 4),
                pointing_tol15=round(float(np.mean([r["pointing_15"] for r in rows])), 4))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO / "tf_usaug/demo_data")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/tf_usaug_relevance_mass"),
                    help="classifier runs and maps (reused when present)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/relevance_mass.json")
    args = ap.parse_args()
    from scipy.stats import wilcoxon

    from tf_usaug.xai.relevance import RelevanceConfig, classifier_run

    samples = {s.image.resolve(): s for s in discover(args.data)}
    masks = {p: load_sample(s)[1] for p, s in samples.items()}
    cache = args.work / "cache"
    arms = {"trained": [], "untrained_small": [], "random_resnet50": []}
    for fold in range(args.folds):
        run = train_fold(args.data, args.work / f"fold{fold}", args.folds, fold, args.size,
                         args.seed)
        split = json.loads((run / "splits.json").read_text())
        test = [p for p, s in samples.items()
                if s.key in split["test"] or str(s.image) in split["test"]
                or str(p) in split["test"]]
        assert test, f"no test images of fold {fold} found in {run / 'splits.json'}"
        model, mode, size = classifier_run(run)  # the run's own input rule
        cfgs = {
            "trained": RelevanceConfig(model=str(model), weights="none", preprocess=mode,
                                       size=size),
            "untrained_small": RelevanceConfig(
                model=str(untrained_model(args.work, args.size, args.seed)), weights="none",
                preprocess=mode, size=size),
            "random_resnet50": RelevanceConfig(weights="none", seed=args.seed, size=args.size),
        }
        for arm, cfg in cfgs.items():
            arms[arm] += scores(maps_of(test, cfg, cache), masks)
    result = dict(command="python benchmarks/relevance_mass.py " + " ".join(sys.argv[1:]),
                  data=str(args.data.relative_to(REPO) if args.data.is_relative_to(REPO)
                           else args.data),
                  folds=args.folds, size=args.size, seed=args.seed,
                  rule=RelevanceConfig().rule, arms={k: summary(v) for k, v in arms.items()},
                  paired={}, per_image=arms)
    trained = np.array([r["mass"] for r in arms["trained"]])
    for base in ("untrained_small", "random_resnet50"):
        other = np.array([r["mass"] for r in arms[base]])
        stat = wilcoxon(trained, other)
        result["paired"][f"trained_vs_{base}"] = dict(
            mean_difference=round(float((trained - other).mean()), 4),
            sd_difference=round(float((trained - other).std(ddof=1)), 4),
            wilcoxon_statistic=float(stat.statistic), p_value=float(stat.pvalue))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for arm, s in result["arms"].items():
        print(f"{arm:16s} mass accuracy {s['mass_mean']:.3f} +- {s['mass_sd']:.3f} "
              f"(lesion area {s['area_mean']:.3f}, ratio {s['mass_over_area']:.2f}); "
              f"pointing game {s['pointing']:.2f} (15-px tolerance {s['pointing_tol15']:.2f})")
    for k, v in result["paired"].items():
        print(f"{k}: difference {v['mean_difference']:+.3f} +- {v['sd_difference']:.3f}, "
              f"Wilcoxon p = {v['p_value']:.2g}")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
