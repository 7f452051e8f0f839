"""SRAD throughput: numpy reference (one image at a time) vs batched TensorFlow, in Mpx*it/s.

Throughput = batch * H * W * iterations / 1e6 / seconds per call (megapixel-iterations per
second). Every configuration is warmed up once (the TF warm-up includes the XLA compile), then
timed ``--repeats`` times; the table shows the median and the min..max range. Results go to
``benchmarks/results/srad_throughput.json``.

Usage (from the repository root)::

    .venv/bin/python benchmarks/srad_throughput.py                 # all cores
    .venv/bin/python benchmarks/srad_throughput.py --threads 2 --repeats 11
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "srad_throughput.json"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (256)")
    parser.add_argument("--iterations", type=int, default=10,
                        help="SRAD iterations per timed call (10 = n_t of paper 002)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32],
                        help="TF batch sizes (1 8 32)")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per row (7)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for TF / OpenMP / MKL (default: library defaults)")
    parser.add_argument("--no-graph", action="store_true",
                        help="skip the TF rows without XLA (jit_compile=False)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    for name in ("size", "iterations", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if min(args.batches) < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--batches and --threads must be >= 1")
    return args


def limit_threads(threads: int) -> None:
    """Thread caps that must be in the environment before numpy / TF are imported."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = str(threads)


def time_calls(call, repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls, after one untimed warm-up call."""
    call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def row(backend: str, batch: int, size: int, iterations: int, seconds: list[float]) -> dict:
    """One result: work per call and throughput statistics (Mpx * iterations / s)."""
    import numpy as np

    work = batch * size * size * iterations / 1e6
    return {"backend": backend, "batch": batch, "size": size, "iterations": iterations,
            "repeats": len(seconds), "seconds_median": float(np.median(seconds)),
            "mpx_it_per_s_median": work / float(np.median(seconds)),
            "mpx_it_per_s_min": work / max(seconds), "mpx_it_per_s_max": work / min(seconds)}


def speckle_phantom(count: int, size: int, seed: int = 0):
    """``count`` float32 images in [0, 1]: a bright disc on a background, 8-look speckle."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    clean = np.where((yy - size / 2) ** 2 + (xx - size / 3) ** 2 < (size / 5) ** 2, 0.8, 0.35)
    noise = rng.gamma(8, 1 / 8, size=(count, size, size))
    return np.clip(clean * noise, 0, 1).astype(np.float32)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        limit_threads(args.threads)
    sys.path.insert(0, str(REPO))
    import numpy as np

    from tf_usaug.filters import srad as srad_module
    from tf_usaug.filters import srad_tf as srad_tf_module
    from tf_usaug.log import setup
    from tf_usaug.files import write_json

    setup(verbose=False)
    import tensorflow as tf

    if args.threads:
        from tf_usaug.distributed.context import configure_threads
        configure_threads(args.threads)

    load_before = os.getloadavg()
    images = speckle_phantom(max(args.batches), args.size)
    rows = [row("numpy", 1, args.size, args.iterations,
                time_calls(lambda: srad_module.srad(images[0], args.iterations), args.repeats))]
    modes = [("tf-xla", True)] + ([] if args.no_graph else [("tf-graph", False)])
    for backend, jit in modes:
        for batch in args.batches:
            tensor = tf.constant(images[:batch])
            seconds = time_calls(
                lambda: srad_tf_module.srad_tf(tensor, args.iterations, jit_compile=jit).numpy(),
                args.repeats)
            rows.append(row(backend, batch, args.size, args.iterations, seconds))
    check = np.abs(srad_tf_module.srad_tf(images[:1], args.iterations).numpy()[0]
                   - srad_module.srad(images[0], args.iterations)).max()

    print(f"SRAD throughput, {args.size}x{args.size}, {args.iterations} iterations per call, "
          f"median of {args.repeats} (Mpx*iterations/s)")
    print(f"{'backend':<10}{'batch':>6}{'s/call':>10}{'Mpx*it/s':>11}{'range':>18}")
    for r in rows:
        spread = f"{r['mpx_it_per_s_min']:.1f}..{r['mpx_it_per_s_max']:.1f}"
        print(f"{r['backend']:<10}{r['batch']:>6}{r['seconds_median']:>10.4f}"
              f"{r['mpx_it_per_s_median']:>11.1f}{spread:>18}")
    print(f"max |TF - numpy| on one image: {check:.2e}")

    result = {
        "rows": rows,
        "max_abs_diff_tf_vs_numpy": float(check),
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "tensorflow": tf.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
