"""NST step throughput: batched vs per-image steps, and achieved GFLOP/s against a matmul.

What is measured, in one process on ``--threads`` CPU threads (default 1):

(a) image-iterations per second of the NST optimisation step (``Stylizer.run_steps``: forward
    through the backbone, paper 002's style + content losses, input gradient, Adam, clip) for
    a batch of ``--batch`` images (default 8) and for a loop over single images (B = 1), after a
    warm-up call, median over ``--repeats`` calls of ``--steps`` steps each;
(b) achieved GFLOP/s of the batched step: the convolutions' FLOPs up to the deepest needed
    layer, counted from the traced extractor graph (``backbones.forward_conv_flops``), times 2
    (forward + input-gradient backward), times image-iterations/s; compared with the GFLOP/s
    of a ``--matmul``-sized float32 ``tf.linalg.matmul`` timed in the same run on the same
    threads (median of runs before and after the NST rows). The loss itself (Gram / MMD
    matrices) and the elementwise work are not counted, so this is a lower bound.

One row per engine variant, to show what the default buys: the plain Keras graph (batch
normalisation unfolded), BN folded into the convolutions (default), BN folded + XLA.
Finally the default variant is timed at each ``--extrapolate`` size and at half of it, and the
seconds per image for ``NSTConfig().iterations`` (1000) steps are extrapolated: single-scale,
and with the default multi-resolution schedule (half the steps at half size).

Usage (from the repository root; weights are random: nothing is downloaded)::

    .venv/bin/python benchmarks/nst_throughput.py                     # 1 thread, ~5 min
    .venv/bin/python benchmarks/nst_throughput.py --threads 2 --repeats 9

Results: a table on stdout and ``benchmarks/results/nst_throughput.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "nst_throughput.json"
VARIANTS = {
    # name: (fold_batchnorm, xla)
    "keras_graph": (False, False),
    "bn_folded": (True, False),
    "bn_folded_xla": (True, True),
}
DEFAULT_VARIANT = "bn_folded"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1)")
    parser.add_argument("--size", type=int, default=128, help="image side for (a), (b) (128)")
    parser.add_argument("--batch", type=int, default=8, help="batched step size B (8)")
    parser.add_argument("--steps", type=int, default=4, help="steps per timed call (4)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per row (5)")
    parser.add_argument("--backbone", default="resnet50", choices=("resnet50", "vgg19"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="engine variants to time (all)")
    parser.add_argument("--extrapolate", type=int, nargs="*", default=[224, 128],
                        help="sizes for the seconds-per-image extrapolation (224 128)")
    parser.add_argument("--matmul", type=int, default=2048, help="matmul side (2048)")
    parser.add_argument("--no-loop", action="store_true", help="skip the B = 1 loop rows")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    for name in ("threads", "size", "batch", "steps", "repeats", "matmul"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.size < 32 or any(s < 64 for s in args.extrapolate):
        parser.error("--size must be >= 32 and --extrapolate sizes >= 64")
    return args


def limit_threads(threads: int) -> None:
    """Thread caps that must be in the environment before TensorFlow is imported."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def median(values) -> float:
    import numpy as np

    return float(np.median(values))


def time_calls(call, repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls, after one untimed warm-up call."""
    call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def matmul_gflops(side: int, repeats: int) -> list[float]:
    """GFLOP/s of ``repeats`` float32 ``side x side`` matmuls (2 side^3 FLOPs each)."""
    import tensorflow as tf

    a = tf.random.stateless_normal([side, side], seed=[1, 2])
    b = tf.random.stateless_normal([side, side], seed=[3, 4])
    product = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, b)))
    seconds = time_calls(lambda: product().numpy(), repeats)
    return [2.0 * side ** 3 / s / 1e9 for s in seconds]


def demo_batch(count: int, size: int, seed: int = 0):
    """``count`` content images and one style reference each, [0, 1] speckle phantoms."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    contents, styles = [], []
    for _ in range(count):
        cy, cx = rng.uniform(0.3, 0.7, 2)
        lesion = ((yy - cy) / 0.15) ** 2 + ((xx - cx) / 0.2) ** 2 < 1
        echo = np.where(lesion, 0.2, 0.8 - 0.3 * yy)
        contents.append(np.clip(0.4 * echo * rng.rayleigh(1.0, (size, size)), 0, 1))
        styles.append(np.clip(0.3 * rng.rayleigh(1.0, (size, size)), 0, 1))
    return (np.asarray(contents, np.float32), np.asarray(styles, np.float32)[:, None])


class StepTimer:
    """Times ``Stylizer.run_steps`` for one stylizer on prepared problems."""

    def __init__(self, stylizer):
        self.stylizer = stylizer

    def problem(self, contents, styles):
        import tensorflow as tf

        pixels = tf.convert_to_tensor(contents[..., None])
        problem = self.stylizer.prepare(pixels, tf.convert_to_tensor(styles))
        return self.stylizer.initial_state(pixels), problem

    def rate(self, contents, styles, steps: int, repeats: int) -> tuple[float, list[float]]:
        """Image-iterations per second of a batched step (median) and the per-call seconds."""
        state, problem = self.problem(contents, styles)
        seconds = time_calls(
            lambda: self.stylizer.run_steps(state, problem, steps)[1].numpy(), repeats)
        return contents.shape[0] * steps / median(seconds), seconds

    def loop_rate(self, contents, styles, steps: int, repeats: int) -> tuple[float, list]:
        """Image-iterations per second of a Python loop over B = 1 problems."""
        singles = [self.problem(contents[i:i + 1], styles[i:i + 1])
                   for i in range(contents.shape[0])]

        def call():
            for state, problem in singles:
                self.stylizer.run_steps(state, problem, steps)[1].numpy()

        seconds = time_calls(call, repeats)
        return contents.shape[0] * steps / median(seconds), seconds


def build_stylizer(backbone: str, fold: bool, xla: bool):
    from tf_usaug.backbones import BackboneConfig
    from tf_usaug.losses import StyleLossConfig
    from tf_usaug.nst import NSTConfig, Stylizer

    return Stylizer(BackboneConfig(name=backbone, weights="none", fold_batchnorm=fold),
                    StyleLossConfig(), NSTConfig(xla=xla))


def run(args) -> dict:
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from tf_usaug.backbones import forward_conv_flops
    from tf_usaug.nst import NSTConfig, split_iterations

    load_before = os.getloadavg()
    matmul = matmul_gflops(args.matmul, args.repeats)
    contents, styles = demo_batch(args.batch, args.size)
    rows, stylizers = [], {}
    for name in args.variants:
        fold, xla = VARIANTS[name]
        stylizer = stylizers[name] = build_stylizer(args.backbone, fold, xla)
        timer = StepTimer(stylizer)
        flop = 2 * forward_conv_flops(stylizer.extractor, args.size, args.size) / 1e9
        batched, seconds = timer.rate(contents, styles, args.steps, args.repeats)
        row = {"variant": name, "fold_batchnorm": fold, "xla": xla, "size": args.size,
               "batch": args.batch, "steps_per_call": args.steps,
               "gflop_per_image_iteration": flop, "img_it_per_s_batched": batched,
               "seconds_batched": seconds, "gflops_batched": flop * batched}
        if not args.no_loop:
            single, seconds = timer.loop_rate(contents, styles, args.steps, args.repeats)
            row.update(img_it_per_s_loop=single, seconds_loop=seconds,
                       batching_speedup=batched / single)
        rows.append(row)
        print(f"  {name:14s} B={args.batch}: {batched:6.2f} img-it/s", file=sys.stderr)
    matmul += matmul_gflops(args.matmul, args.repeats)
    matmul_rate = median(matmul)
    for row in rows:
        row["fraction_of_matmul"] = row["gflops_batched"] / matmul_rate

    extrapolation = []
    cfg = NSTConfig()
    if args.extrapolate:
        timer = StepTimer(stylizers.get(DEFAULT_VARIANT)
                          or build_stylizer(args.backbone, *VARIANTS[DEFAULT_VARIANT]))
        budgets = split_iterations(cfg.iterations, (1.0,) * len(cfg.scales))
        for size in args.extrapolate:
            rates = {}
            for scale in sorted(set(cfg.scales)):
                side = max(32, round(scale * size))
                c, s = demo_batch(args.batch, side)
                rates[scale] = timer.rate(c, s, args.steps, args.repeats)[0]
            multi = sum(b / rates[scale] for scale, b in zip(cfg.scales, budgets))
            extrapolation.append({
                "size": size, "batch": args.batch, "img_it_per_s": rates[1.0],
                "img_it_per_s_by_scale": {str(k): v for k, v in rates.items()},
                "seconds_per_image_single_scale": cfg.iterations / rates[1.0],
                "seconds_per_image_default_schedule": multi,
                "schedule": {"scales": list(cfg.scales), "iterations": budgets}})
    return {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "threads": args.threads, "backbone": args.backbone, "weights": "none",
        "deepest_layer": stylizers[args.variants[0]].extractor.layers,
        "matmul_side": args.matmul, "matmul_gflops": matmul, "matmul_gflops_median": matmul_rate,
        "rows": rows, "extrapolation": extrapolation,
        "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "processor": platform.processor(), "python": platform.python_version(),
        "tensorflow": tf.__version__, "numpy": np.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        "devices": [d.name for d in tf.config.list_logical_devices()],
    }


def table(result: dict) -> str:
    """The results as a plain-text table."""
    lines = [f"NST step, {result['backbone']} (random weights) up to "
             f"{result['deepest_layer'][-1]}, {result['threads']} thread(s); "
             f"matmul {result['matmul_side']}^2: {result['matmul_gflops_median']:.1f} GFLOP/s",
             f"{'variant':15s} {'size':>4s} {'GFLOP/it':>8s} {'B img-it/s':>10s} "
             f"{'B=1 img-it/s':>12s} {'batch x':>7s} {'GFLOP/s':>8s} {'of matmul':>9s}"]
    for row in result["rows"]:
        single = row.get("img_it_per_s_loop")
        loop = f"{single:12.2f}" if single else f"{'-':>12s}"
        speedup = f"{row['batching_speedup']:7.2f}" if single else f"{'-':>7s}"
        lines.append(
            f"{row['variant']:15s} {row['size']:4d} {row['gflop_per_image_iteration']:8.2f} "
            f"{row['img_it_per_s_batched']:10.2f} {loop} {speedup} "
            f"{row['gflops_batched']:8.1f} {100 * row['fraction_of_matmul']:8.0f}%")
    for ext in result["extrapolation"]:
        lines.append(f"{ext['size']}x{ext['size']}: {ext['img_it_per_s']:.2f} img-it/s -> "
                     f"{ext['seconds_per_image_single_scale']:.0f} s/image for 1000 iterations "
                     f"at full size, {ext['seconds_per_image_default_schedule']:.0f} s/image "
                     f"with the default schedule {ext['schedule']}")
    lines.append(f"load average before / after: {result['load_average_before'][0]:.1f} / "
                 f"{result['load_average_after'][0]:.1f} on {result['cpu_count']} CPUs")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    limit_threads(args.threads)
    sys.path.insert(0, str(REPO))
    result = run(args)
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
