"""Feed-forward stylizer vs NST optimisation: images/s and quality on the same contents and styles.

What is measured, all in one run (from the repository root; random weights, nothing is
downloaded):

1. A stylizer is trained (``python -m tf_usaug.train stylizer``, ``--steps`` steps at
   ``--size``, loss network ResNet50 with seeded random weights) with the bundled demo phantoms
   as contents AND style pool; an existing run in ``--work`` with the same settings is reused.
   A small task classifier is trained on the same images (``--backbone small``), unless
   ``--classifier RUN`` is given.
2. Speed: ``python -m tf_usaug.augment --method stylizer --model RUN`` and ``--method nst``
   (``--iterations``, ``--n-styles``, the same ``--styles`` folder) on the same contents, one
   output per image, no SRAD filter, no relevance, ``--threads``; ``--repeats`` rounds, the two
   methods interleaved in each round (so load from other jobs hits both alike). The rate is the
   job's ``images_per_busy_second`` (generation only: model loading and tracing are the job's
   ``prepare_seconds``, reported apart) and its wall-clock ``images_per_second``; medians and
   their ratio.
3. Quality of the last round's outputs (PNG, as written), per content image:
   * style loss reached: the NST engine's balanced style loss (``Stylizer.prepare`` +
     ``evaluate``, full size) of the output against the NST item's own references, divided by
     that of the content itself (1 = no change; the NST records give the same ratio for its
     outputs); for the stylizer also its training metric (metrics.json);
   * SSIM and PSNR to the content (``tf_usaug.metrics.image``);
   * label preservation: the classifier's predicted label of the output equals the content's
     true label (and its prediction on the content). The classifier was trained on these
     originals (not on any output): it measures whether an output still shows its class.

    .venv/bin/python benchmarks/stylizer_speed.py                  # ~10 min on 2 CPU cores
    .venv/bin/python benchmarks/stylizer_speed.py --repeats 5 --steps 600

Results: a summary on stdout and ``benchmarks/results/stylizer_speed.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEMO = REPO / "tf_usaug" / "demo_data"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "stylizer_speed.json"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--content", type=Path, default=DEMO)
    p.add_argument("--styles", type=Path, default=DEMO)
    p.add_argument("--work", type=Path, default=Path("/tmp/stylizer_speed"),
                   help="runs and outputs (reused when the settings match)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=300, help="stylizer training steps")
    p.add_argument("--train-threads", type=int, default=2)
    p.add_argument("--iterations", type=int, default=150, help="NST iterations (demo preset)")
    p.add_argument("--n-styles", type=int, default=2, help="NST references (demo preset)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="threads of the augmentation jobs")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--classifier", type=Path, help="a classifier run (default: train one)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", *map(str, args)]
    print("+", " ".join(cmd[2:]), flush=True)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return proc


def train_stylizer(a) -> tuple[Path, list[str]]:
    out = a.work / "stylizer"
    args = ["--styles", a.styles, "--content", a.content, "--size", a.size, "--steps", a.steps,
            "--weights", "none", "--seed", a.seed, "--log-every", 25, "--checkpoint-every",
            100, "--threads", a.train_threads]
    t0 = time.perf_counter()
    run("tf_usaug.train", "stylizer", *args, "--out", out, "--resume")
    print(f"    stylizer ready in {time.perf_counter() - t0:.0f} s", flush=True)
    return out, ["python -m tf_usaug.train stylizer " + " ".join(map(str, args))]


def train_classifier(a) -> Path:
    if a.classifier is not None:
        return a.classifier
    out = a.work / "classifier"
    if not (out / "metrics.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        run("tf_usaug.train", "classifier", "--data", a.content, "--backbone", "small",
            "--size", a.size, "--seed", a.seed, "--out", out, "--threads", a.train_threads)
    return out


def augment_args(a, method: str, model: Path) -> list:
    common = ["--content", a.content, "--size", a.size, "--per-image", 1, "--seed", a.seed,
              "--no-srad", "--no-report", "--no-progress", "--batch-size", a.batch_size,
              "--threads", a.threads, "--method", method]
    if method == "nst":
        return common + ["--styles", a.styles, "--iterations", a.iterations, "--n-styles",
                         a.n_styles, "--weights", "none", "--no-relevance"]
    return common + ["--model", model]


def speed(a, model: Path) -> dict:
    rounds = {"stylizer": [], "nst": []}
    for r in range(a.repeats):
        for method in ("stylizer", "nst"):
            out = a.work / "augment" / method
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            run("tf_usaug.augment", *augment_args(a, method, model), "--out", out)
            wall = time.perf_counter() - t0
            s = json.loads((out / "summary.json").read_text())
            rounds[method].append({"round": r, "images": s["images"],
                                   "images_per_busy_second": s["images_per_busy_second"],
                                   "images_per_second": s["images_per_second"],
                                   "prepare_seconds": s["prepare_seconds"],
                                   "process_seconds": round(wall, 2)})
            print(f"    round {r} {method}: {s['images_per_busy_second']:.2f} img/s "
                  f"(generation), {s['images_per_second']:.2f} img/s (job)", flush=True)
    summary = {}
    for method, rows in rounds.items():
        summary[method] = {
            "median_images_per_busy_second": statistics.median(
                r["images_per_busy_second"] for r in rows),
            "median_images_per_second": statistics.median(r["images_per_second"] for r in rows),
            "median_prepare_seconds": statistics.median(r["prepare_seconds"] for r in rows),
            "rounds": rows}
    summary["ratio_busy"] = round(summary["stylizer"]["median_images_per_busy_second"]
                                  / summary["nst"]["median_images_per_busy_second"], 1)
    summary["ratio_job"] = round(summary["stylizer"]["median_images_per_second"]
                                 / summary["nst"]["median_images_per_second"], 2)
    return summary


def quality(a, classifier: Path) -> dict:
    from tf_usaug.data.datasets import discover
    from tf_usaug.data.image_io import read_image
    from tf_usaug.metrics.image import psnr, ssim
    from tf_usaug.models.classifier import load_classifier_run, predict
    from tf_usaug.nst.backbones import BackboneConfig
    from tf_usaug.nst.config import NSTConfig
    from tf_usaug.nst.losses import StyleLossConfig
    from tf_usaug.nst.stylizer import Stylizer
    from tf_usaug.pipeline.inputs import InputPreparer

    import tensorflow as tf

    samples = {str(s.image): s for s in discover(a.content)}
    prep = InputPreparer(a.size, "auto", "pad")
    rows = {m: [json.loads(line) for line in
                (a.work / "augment" / m / "manifest.jsonl").read_text().splitlines()]
            for m in ("nst", "stylizer")}
    nst_by_content = {r["content"]: r for r in rows["nst"]}
    engine = Stylizer(BackboneConfig(weights="none", seed=a.seed), StyleLossConfig(),
                      NSTConfig(iterations=1))
    clf = load_classifier_run(classifier)
    names = list(clf.preprocessing.class_names)
    per_image = []
    for row in rows["stylizer"]:
        nst_row = nst_by_content[row["content"]]
        prepared = prep.content(samples[row["content"]])
        content = prepared.cut(prepared.image)
        refs = np.stack([prep.style(Path(p)) for p in nst_row["styles"]])[None]
        outputs = {m: read_image(a.work / "augment" / m / r["output"])[0]
                   for m, r in (("stylizer", row), ("nst", nst_row))}
        # the engine's balanced style loss, relative to the content's own (as NST records it)
        square = prepared.image[None, ..., None]
        problem = engine.prepare(tf.constant(square), refs)
        at_content = engine.evaluate(square, problem)["style"][0]
        entry = {"content": row["content"], "label": row["label"],
                 "nst_styles": nst_row["styles"],
                 "nst_record_style_ratio": nst_row["losses"]["final"]["style"]
                 / nst_row["losses"]["initial"]["style"]}
        probs = predict(clf, [content, outputs["stylizer"], outputs["nst"]])
        pred = [names[i] for i in probs.argmax(1)]
        entry["classifier_on_content"] = pred[0]
        for i, (method, image) in enumerate(outputs.items(), start=1):
            assert image.shape == content.shape, (image.shape, content.shape)
            full = prepared.image.copy()  # the output back in the working square
            y0, y1, x0, x1 = prepared.place.inner
            full[y0:y1, x0:x1] = image
            style = engine.evaluate(full[None, ..., None], problem)["style"][0]
            entry[method] = {"style_ratio": float(style / at_content),
                             "ssim": ssim(content, image), "psnr": psnr(content, image),
                             "predicted": pred[i], "label_kept": pred[i] == row["label"],
                             "agrees_with_content": pred[i] == pred[0]}
        per_image.append(entry)

    def stats(method, key):
        values = np.array([float(e[method][key]) for e in per_image])
        return {"mean": round(float(values.mean()), 4),
                "median": round(float(np.median(values)), 4),
                "min": round(float(values.min()), 4), "max": round(float(values.max()), 4)}

    summary = {m: {k: stats(m, k) for k in ("style_ratio", "ssim", "psnr")}
               for m in ("stylizer", "nst")}
    for m in ("stylizer", "nst"):
        summary[m]["label_kept"] = float(np.mean([e[m]["label_kept"] for e in per_image]))
        summary[m]["agrees_with_content"] = float(np.mean([e[m]["agrees_with_content"]
                                                           for e in per_image]))
    summary["nst"]["record_style_ratio_median"] = round(float(np.median(
        [e["nst_record_style_ratio"] for e in per_image])), 4)
    summary["classifier_on_contents_accuracy"] = float(np.mean(
        [e["classifier_on_content"] == e["label"] for e in per_image]))
    summary["n"] = len(per_image)
    return {"summary": summary, "per_image": per_image}


def main(argv=None) -> int:
    a = parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    model, train_cmd = train_stylizer(a)
    classifier = train_classifier(a)
    timing = speed(a, model)
    result = {
        "command": "python benchmarks/stylizer_speed.py " + " ".join(sys.argv[1:]),
        "stylizer_training": train_cmd[0],
        "stylizer_metrics": {k: v for k, v in json.loads(
            (model / "metrics.json").read_text()).items() if k != "history"},
        "settings": {"size": a.size, "steps": a.steps, "iterations": a.iterations,
                     "n_styles": a.n_styles, "batch_size": a.batch_size, "threads": a.threads,
                     "repeats": a.repeats, "content": str(a.content), "styles": str(a.styles),
                     "weights": "none (seeded random ResNet50)", "srad": False,
                     "relevance": False, "classifier": str(classifier)},
        "augment_commands": {m: "python -m tf_usaug.augment " + " ".join(
            map(str, augment_args(a, m, model))) + " --out OUT" for m in ("stylizer", "nst")},
        "speed": timing,
        "quality": quality(a, classifier),
        "machine": platform.machine(), "processor": platform.processor(),
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    import tensorflow as tf

    result["tensorflow"] = tf.__version__
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    q = result["quality"]["summary"]
    rates = {m: timing[m]["median_images_per_busy_second"] for m in ("stylizer", "nst")}
    print(f"\nimages/s (generation): stylizer {rates['stylizer']:.1f}, nst {rates['nst']:.2f}, "
          f"ratio {timing['ratio_busy']}x; whole job ratio {timing['ratio_job']}x")
    for m in ("stylizer", "nst"):
        print(f"{m:9s} style ratio {q[m]['style_ratio']['median']:.3f}  SSIM "
              f"{q[m]['ssim']['median']:.3f}  PSNR {q[m]['psnr']['median']:.2f}  label kept "
              f"{q[m]['label_kept']:.2f}")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
