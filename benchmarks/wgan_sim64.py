"""One honest alpha-WGAN-GP training run (paper 003) on the simulated set, scored on held-out
real images.

What is measured (from the repository root; nothing is downloaded):

1. Split: the originals of one device of the simulated benchmark set (``--data``, default
   ``/work/data/sim64`` device ``convex-b``, both classes) by stratified 5-fold (seed 0):
   folds 0 and 1 are held out (never seen by the GAN or the feature classifier), the other
   three train. The two parts become folders of links (BUSI layout) under ``--work``.
2. Train: ``python -m tf_usaug.train wgan`` on the training part at ``--size`` with the
   paper's losses, z = 256, Adam 2e-4, batch 32, lambda1 = lambda2 = 10, a CPU-sized network
   (``--width``, ``--max-channels``, ``--code-units``), ``--steps`` iterations on
   ``--threads`` thread(s); always with ``--resume``, so a rerun reuses a finished run.
   Training seconds are the run's own (metrics.json ``train_seconds``: the steps only).
3. Sample: ``--samples`` images from the generator (``tf_usaug.models.gan.generate``, seed 1)
   as PNGs.
4. Score: ``python -m tf_usaug.evaluate gan --real HELDOUT --fake SAMPLES`` in two feature
   spaces: ``pixels`` and a small task classifier trained on the same training part
   (``python -m tf_usaug.train classifier --backbone small``). The same scores of the
   TRAINING originals against the held-out ones are the reference: what a generator that
   reproduced its training set exactly would get at this n.

    .venv/bin/python benchmarks/wgan_sim64.py                        # ~25 min on one thread
    .venv/bin/python benchmarks/wgan_sim64.py --steps 200 --work /tmp/w   # a quick look

Results: ``benchmarks/results/wgan.json`` and the final sample grid
``benchmarks/results/wgan_grid.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run(args: list[str], log: Path) -> float:
    """Run ``python -m ...`` with its output in ``log``; returns wall seconds."""
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(map(str, args)) + "\n")
        fh.flush()
        proc = subprocess.run([sys.executable, "-m", *map(str, args)], cwd=REPO, stdout=fh,
                              stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, args))}; see {log}")
    return time.perf_counter() - t0


def link_split(samples, folder: Path) -> None:
    for s in samples:
        dst = folder / s.label / Path(s.image).name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            os.symlink(Path(s.image).resolve(), dst)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("/work/data/sim64"))
    p.add_argument("--device", default="convex-b")
    p.add_argument("--work", type=Path, default=Path("/tmp/wgan_sim64"))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--max-channels", type=int, default=128)
    p.add_argument("--code-units", type=int, default=256)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--result", type=Path, default=REPO / "benchmarks" / "results" / "wgan.json")
    a = p.parse_args()

    from tf_usaug.data.datasets import discover, stratified_kfold
    from tf_usaug.files import write_json, write_png

    work = a.work
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    samples = discover(a.data / a.device)
    folds = stratified_kfold(samples, 5, seed=0)
    held = sorted(folds[0]["test"] + folds[1]["test"], key=lambda s: s.key)
    held_keys = {s.key for s in held}
    train = [s for s in samples if s.key not in held_keys]
    link_split(train, work / "train")
    link_split(held, work / "heldout")

    # Train the GAN (resumes, or finds a finished run).
    run_dir = work / "run"
    train_cmd = ["tf_usaug.train", "wgan", "--data", work / "train", "--out", run_dir,
                 "--size", a.size, "--steps", a.steps, "--batch-size", 32, "--width", a.width,
                 "--max-channels", a.max_channels, "--code-units", a.code_units,
                 "--grid-every", 250, "--checkpoint-every", 250, "--log-every", 50,
                 "--threads", a.threads, "--seed", 0]
    wall = run(train_cmd + ["--resume"], log)
    metrics = json.loads((run_dir / "metrics.json").read_text())

    # Sample.
    from tf_usaug.models.gan import generate, load_gan_run

    fake = work / "fake"
    shutil.rmtree(fake, ignore_errors=True)
    images = generate(load_gan_run(run_dir), a.samples, seed=1)
    for i, image in enumerate(images):
        write_png(fake / f"wgan_{i:04d}.png", image)

    # Feature classifier on the training part only.
    clf = work / "classifier"
    clf_cmd = ["tf_usaug.train", "classifier", "--data", work / "train", "--out", clf,
               "--backbone", "small", "--size", a.size, "--epochs", 15, "--threads",
               a.threads, "--seed", 0]
    if not (clf / "metrics.json").is_file():
        run(clf_cmd + ["--overwrite"], log)

    # Score: samples vs held-out, and the training originals vs held-out (the reference).
    scores = {}
    for features in ("pixels", str(clf)):
        name = "pixels" if features == "pixels" else "classifier"
        for what, folder in (("wgan", fake), ("training_originals", work / "train")):
            out = work / f"scores_{name}_{what}"
            cmd = ["tf_usaug.evaluate", "gan", "--real", work / "heldout", "--fake", folder,
                   "--features", features, "--out", out, "--threads", a.threads]
            run(cmd, log)
            scores.setdefault(name, {})[what] = json.loads((out / "metrics.json").read_text())

    grid = run_dir / metrics["grid"]
    shutil.copyfile(grid, a.result.with_name("wgan_grid.png"))
    result = {
        "what": "alpha-WGAN-GP (paper 003) trained on the simulated set, one device, scored "
                "against held-out real images (benchmarks/wgan_sim64.py)",
        "command": "python benchmarks/wgan_sim64.py " + " ".join(sys.argv[1:]),
        "train_command": "python -m " + " ".join(map(str, train_cmd)),
        "classifier_command": "python -m " + " ".join(map(str, clf_cmd)),
        "data": {"folder": str(a.data / a.device), "train": len(train), "heldout": len(held),
                 "split": "stratified 5-fold (seed 0), folds 0-1 held out",
                 "train_counts": metrics["counts"]},
        "training": {k: metrics[k] for k in ("steps", "kimg", "batch_size", "size",
                                             "train_seconds", "train_images_per_second")},
        "training_wall_seconds_of_this_call": round(wall, 1),
        "final_history_row": metrics["final"],
        "first_history_row": metrics["history"][0],
        "samples": a.samples,
        "scores": {name: {what: {k: s[k] for k in ("fid", "kid", "mmd", "one_nn", "ms_ssim_fake",
                                                   "ms_ssim_real", "ssim", "js_distance")
                                 if k in s}
                          for what, s in by.items()} for name, by in scores.items()},
        "grid": "benchmarks/results/wgan_grid.png",
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": a.threads,
                    "note": "2-core VM shared with other jobs"},
    }
    write_json(a.result, result)
    print(json.dumps(result["scores"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
