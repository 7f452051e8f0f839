"""One honest StyleGAN2 + ADA run on the simulated benchmark set, scored on held-out images.

1. Split one device's originals of ``/work/data/sim64`` (``DATA/<device>/<class>/*.png``) by
   image, stratified by class (``tf_usaug.data.datasets.split``, 70 / 15 / 15, seed 0): the
   GAN trains on the 70 % (links in WORK/train), val + test (30 %) are the held-out reals.
2. Train ``python -m tf_usaug.train stylegan2`` on WORK/train (one CPU thread; the command is
   in the JSON; ``--resume`` continues a killed run).
3. Draw ``--fakes`` images from the EMA generator (``tf_usaug.models.gan.generate``) into
   WORK/fake, and score them against the held-out reals with ``python -m tf_usaug.evaluate
   gan`` (pixel features: no InceptionV3 weights offline). As a yardstick for what the
   metrics give at this n, the TRAINING reals are scored against the same held-out reals.
4. Write ``benchmarks/results/stylegan2.json`` and the last sample grid
   ``benchmarks/results/stylegan2_grid.png``.

    python benchmarks/stylegan2_sim64.py --device convex-b --steps 2500 --work /tmp/sg2_bench
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tf_usaug.data.datasets import discover, split  # noqa: E402
from tf_usaug.files import write_json, write_png  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def link_split(data: Path, work: Path) -> dict:
    """WORK/train/<class>/ and WORK/heldout/<class>/ as symbolic links to the originals."""
    parts = split(discover(data), (0.7, 0.15, 0.15), seed=0)
    counts = {}
    for name, members in (("train", parts["train"]), ("heldout", parts["val"] + parts["test"])):
        for sample in members:
            target = work / name / str(sample.label) / Path(sample.image).name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.symlink(Path(sample.image).resolve(), target)
        counts[name] = len(members)
    return counts


def run(args: list[str], log: Path | None = None) -> float:
    t0 = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with open(log, "a") if log else open(os.devnull, "w") as sink:
        subprocess.run([sys.executable, *args], cwd=REPO, env=env, check=True, stderr=sink,
                       stdout=sink)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("/work/data/sim64"))
    p.add_argument("--device", default="convex-b")
    p.add_argument("--work", type=Path, default=Path("/tmp/sg2_bench"))
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--ada-kimg", default="10")
    p.add_argument("--fakes", type=int, default=200)
    p.add_argument("--out", type=Path, default=RESULTS / "stylegan2.json")
    a = p.parse_args()

    work = a.work
    work.mkdir(parents=True, exist_ok=True)
    counts = link_split(a.data / a.device, work)
    run_dir = work / "run"
    train = ["-m", "tf_usaug.train", "stylegan2", "--data", str(work / "train"), "--out",
             str(run_dir), "--preset", "cpu", "--size", str(a.size), "--steps", str(a.steps),
             "--augment", "ada", "--ada-kimg", a.ada_kimg, "--threads", "1", "--seed", "0"]
    resume = ["--resume"] if (run_dir / "run.json").is_file() else []
    wall = run(train + resume, work / "train.log")

    from tf_usaug.models.gan import generate, load_gan_run

    fake = work / "fake"
    shutil.rmtree(fake, ignore_errors=True)
    images = generate(load_gan_run(run_dir), a.fakes, seed=12345)
    for i, image in enumerate(images):
        write_png(fake / f"fake_{i:04d}.png", image)

    scores = {}
    for name, real, other in (("generated", work / "heldout", fake),
                              ("training_reals", work / "heldout", work / "train")):
        cmd = ["-m", "tf_usaug.evaluate", "gan", "--real", str(real), "--fake", str(other),
               "--out", str(work / f"metrics_{name}"), "--features", "pixels",
               "--pixel-size", str(a.size), "--size", str(a.size), "--threads", "1"]
        run(cmd, work / "evaluate.log")
        scores[name] = {"command": shlex.join(["python", *cmd]),
                        "metrics": json.loads((work / f"metrics_{name}" / "metrics.json")
                                              .read_text())}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    grids = sorted((run_dir / "grids").glob("step-*.png"))
    shutil.copyfile(grids[-1], RESULTS / "stylegan2_grid.png")
    write_json(a.out, {
        "command": shlex.join(["python", "benchmarks/stylegan2_sim64.py", *sys.argv[1:]]),
        "train_command": shlex.join(["python", *train]),
        "data": str(a.data / a.device), "split": counts, "size": a.size,
        "train_seconds": metrics["train_seconds"], "wall_seconds_this_call": round(wall, 1),
        "steps": metrics["steps"], "kimg": metrics["kimg"], "batch_size": metrics["batch_size"],
        "final_ada_p": metrics["ada_p"], "final_rt": metrics["rt"],
        "generator_parameters": metrics["generator_parameters"],
        "discriminator_parameters": metrics["discriminator_parameters"],
        "history": [{k: r[k] for k in ("step", "kimg", "loss_G", "loss_D", "ada_p")
                     if k in r} for r in metrics["history"][::10]],
        "fakes": a.fakes, "scores": scores, "grid": "benchmarks/results/stylegan2_grid.png",
        "machine": "2 shared CPU cores (4 engineers), one thread for training"})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
