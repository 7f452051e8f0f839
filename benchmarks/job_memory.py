"""Working memory of one batch, per method and working size: the constants of the --size check.

Each point runs in a fresh process: build the method's model, run one batch of ``--batch``
images at ``size`` and read the process's peak resident memory (``ru_maxrss``). The slope of
peak memory over ``batch x size^2`` between the sizes is the memory per image pixel that
``tf_usaug.pipeline.settings.BYTES_PER_PIXEL`` must not underestimate.

    python benchmarks/job_memory.py                 # writes benchmarks/results/job_memory.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import resource, sys, numpy as np
method, size, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
images = rng.random((batch, size, size)).astype(np.float32)
if method == "nst":
    from tf_usaug.nst.backbones import BackboneConfig
    from tf_usaug.nst.config import NSTConfig
    from tf_usaug.nst.losses import StyleLossConfig
    from tf_usaug.nst.stylizer import Stylizer
    st = Stylizer(BackboneConfig(weights="none"), StyleLossConfig(),
                  NSTConfig(iterations=4, batch_size=batch, check_every=2))
    styles = rng.random((batch, 2, size, size)).astype(np.float32)
    st.stylize(images, styles, content_weights=np.ones((batch, size, size), np.float32))
else:
    from tf_usaug.filters.srad_tf import srad_tf
    from tf_usaug.data.transforms import TraditionalConfig, random_geometric
    for img in images:
        random_geometric(img, img > 0.5, rng, TraditionalConfig())
    srad_tf(images, iterations=10)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def peak(method: str, size: int, batch: int) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, method, str(size), str(batch)], cwd=REPO,
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 192])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "job_memory.json")
    args = p.parse_args()
    from tf_usaug.pipeline.settings import BYTES_PER_PIXEL

    results = {"command": "python benchmarks/job_memory.py " + " ".join(sys.argv[1:]),
               "batch": args.batch, "methods": {}}
    for method in ("nst", "traditional"):
        batch = args.batch if method == "nst" else 1
        points = [(s, peak(method, s, batch)) for s in args.sizes]
        slopes = [(b2 - b1) / (batch * (s2 * s2 - s1 * s1))
                  for (s1, b1), (s2, b2) in zip(points, points[1:])]
        results["methods"][method] = {
            "batch": batch, "peak_bytes": dict(points),
            "bytes_per_image_pixel": [round(x) for x in slopes],
            "configured_bytes_per_pixel": BYTES_PER_PIXEL[method]}
        print(method, points, [round(x) for x in slopes], flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
