"""Do the generative metrics say what they should on sets we know? A sanity benchmark.

The bundled demo phantoms (32 images, 128 px: 2 classes x 2 probes x 8) are split by image
into halves A and B (even / odd index of the sorted list, so each half has 4 images of every
class and probe). A plays the real set; the "fake" sets are:

* ``B``: other images of the same distribution (what a perfect generator would give);
* ``blur(B)``: B blurred (Gaussian, sigma 2 px): speckle lost, a typical GAN failure;
* ``noise(B)``: B with additive Gaussian noise (sd 0.1, clipped to [0, 1]);
* ``bright(B)``: B with 0.3 + 0.7 g (a grey-level shift: every metric should see it);
* ``A``: the reals themselves (memorisation: FID 0, 1-NN accuracy 0, not 0.5).

Each pair goes through the command line, ``python -m tf_usaug.evaluate gan``, with the raw
pixel features (32 x 32) and with the task classifier's penultimate layer (the small CNN
trained on the demo data for 3 epochs: note it saw these very images). InceptionV3 is not run
when its ImageNet weights are not in the Keras cache (offline machines); the JSON says so.

    python benchmarks/gan_metrics_sanity.py   # -> benchmarks/results/gan_metrics_sanity.json

The classifier is trained first when ``--classifier`` (default /tmp/cls) holds no run:
``python -m tf_usaug.train classifier --data tf_usaug/demo_data --backbone small --size 64
--epochs 3 --out /tmp/cls``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tf_usaug.data.image_io import read_image  # noqa: E402
from tf_usaug.files import write_json, write_png  # noqa: E402

DEMO = REPO / "tf_usaug" / "demo_data"
FEATURE_METRICS = "fid,kid,mmd,one_nn"


def make_sets(work: Path, seed: int) -> dict[str, Path]:
    """Write halves A and B and B's degraded copies as PNG folders; return name -> folder."""
    import cv2

    paths = sorted(p for p in DEMO.rglob("*.png") if "_mask" not in p.name)
    images = [read_image(p)[0] for p in paths]
    a, b = images[0::2], images[1::2]
    rng = np.random.default_rng(seed)
    sets = {
        "A": a,
        "B": b,
        "blur(B)": [cv2.GaussianBlur(im, (0, 0), 2.0) for im in b],
        "noise(B)": [np.clip(im + rng.normal(0, 0.1, im.shape), 0, 1).astype(np.float32)
                     for im in b],
        "bright(B)": [(0.3 + 0.7 * im).astype(np.float32) for im in b],
    }
    folders = {}
    for name, ims in sets.items():
        folder = work / "sets" / name.replace("(", "_").replace(")", "")
        for i, im in enumerate(ims):
            if not (folder / f"{i:02d}.png").is_file():
                write_png(folder / f"{i:02d}.png", im)
        folders[name] = folder
    return folders


def ensure_classifier(run: Path) -> list[str] | None:
    """Train the small classifier into ``run`` when it holds no finished run."""
    if (run / "model.keras").is_file():
        return None
    command = [sys.executable, "-m", "tf_usaug.train", "classifier", "--data", str(DEMO),
               "--backbone", "small", "--size", "64", "--epochs", "3", "--out", str(run),
               "--threads", "1"]
    subprocess.run(command, check=True, cwd=REPO)
    return command


def evaluate(real: Path, fake: Path, out: Path, extra: list[str]) -> tuple[dict, float, str]:
    command = [sys.executable, "-m", "tf_usaug.evaluate", "gan", "--real", str(real), "--fake",
               str(fake), "--out", str(out), "--threads", "1", *extra]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1]}, seconds, shlex.join(command[1:])
    return json.loads((out / "metrics.json").read_text()), seconds, shlex.join(command[1:])


def headline(result: dict) -> dict:
    """The scalars of one metrics.json."""
    if "error" in result:
        return result
    row = {}
    for key in ("fid", "js_distance"):
        if key in result:
            row[key] = round(result[key], 5)
    for key in ("kid", "mmd", "ms_ssim_fake", "ssim"):
        if key in result:
            row[key] = round(result[key]["mean"], 5)
            row[key + "_sd"] = round(result[key]["sd"], 5)
    if "one_nn" in result:
        for part in ("accuracy", "real", "fake"):
            row[f"one_nn_{part}"] = round(result["one_nn"][part]["mean"], 4)
    if "ms_ssim_real" in result:
        row["ms_ssim_real"] = round(result["ms_ssim_real"]["mean"], 5)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/gan_metrics_sanity"))
    p.add_argument("--classifier", type=Path, default=Path("/tmp/cls"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path,
                   default=REPO / "benchmarks" / "results" / "gan_metrics_sanity.json")
    args = p.parse_args()

    folders = make_sets(args.work, args.seed)
    trained = ensure_classifier(args.classifier)
    spaces = {
        "pixels": ["--features", "pixels", "--pixel-size", "32"],
        "classifier": ["--features", str(args.classifier), "--metrics", FEATURE_METRICS],
        "inception": ["--features", "inception", "--metrics", FEATURE_METRICS],
    }
    rows, commands = [], {}
    for space, extra in spaces.items():
        for fake in ("B", "blur(B)", "noise(B)", "bright(B)", "A"):
            out = args.work / "runs" / space / fake.replace("(", "_").replace(")", "")
            result, seconds, command = evaluate(folders["A"], folders[fake], out, extra)
            commands[f"{space} A vs {fake}"] = command
            rows.append({"features": space, "real": "A", "fake": fake,
                         "feature_dim": result.get("features", {}).get("dim"),
                         "seconds": round(seconds, 2), **headline(result)})
            print(f"{space:10s} A vs {fake:9s} {rows[-1]}", flush=True)
            if "error" in result and space == "inception":
                break  # no weights: one error row says why
    write_json(args.out, {
        "command": "python benchmarks/gan_metrics_sanity.py",
        "data": "tf_usaug/demo_data (32 images, 128 px), halves A / B split by image "
                "(16 each); degraded copies of B",
        "classifier": {"run": str(args.classifier), "trained_now": trained is not None,
                       "train_command": "python -m tf_usaug.train classifier --data "
                                        "tf_usaug/demo_data --backbone small --size 64 "
                                        "--epochs 3 --out /tmp/cls"},
        "notes": "16 images per set: MMD / 1-NN / MS-SSIM use the whole sets (repeats 1, "
                 "sd 0) and KID one subset of 16; sd is therefore 0 where shown. Threads 1.",
        "rows": rows, "commands": commands})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
