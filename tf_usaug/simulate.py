"""``python -m tf_usaug.simulate``: PyMUST B-mode phantoms of breast lesions with exact masks.

    python -m tf_usaug.simulate --out phantoms --n 8 --probe L11-5v,P4-2v --seed 0
    python -m tf_usaug.simulate --out scans --n 8 --device phased-c --seed 0
    python -m tf_usaug.simulate benchmark --devices linear-a,convex-b --per-class 150

Writes the BUSI layout (``OUT/<class>/<probe or device>_<class>_<i>.png`` + ``..._mask.png``);
``benchmark`` builds the scanner-shift set (one BUSI folder per device, cached). How a
phantom is made: :mod:`tf_usaug.data.simulator`; this file is only the command line.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import log as _log
from .cli import ArgumentParser, entry_point, non_empty_path
from .data.simulator.appearance import DEFAULT_OVERLAP
from .data.simulator.benchmark import (DEFAULT_PER_CLASS, DEFAULT_SIZE, build_benchmark,
                                       cache_root, plan_device_items, write_device_item)
from .data.simulator.config import CLASSES, MIN_SIZE, PROBES
from .data.simulator.devices import DEVICES, resolve_device
from .data.simulator.phantom import resolve_probe
from .data.simulator.phantom_set import plan_items, prune_phantoms, run
from .errors import UsageError
from .rundir import RunDir

BENCHMARK_COMMAND = "benchmark"


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m tf_usaug.simulate``."""
    parser = ArgumentParser(
        prog="python -m tf_usaug.simulate",
        description="Simulate B-mode breast-lesion phantoms with PyMUST and write them in the "
                    "BUSI layout: OUT/<class>/<probe>_<class>_<i>.png + ..._mask.png. "
                    "The scanner-shift benchmark set: python -m tf_usaug.simulate benchmark "
                    "--help.")
    parser.add_argument("--out", required=True, type=non_empty_path, help="output folder")
    parser.add_argument("--n", required=True, type=int, help="images per class and probe (>= 1)")
    parser.add_argument("--probe", help=f"probe(s), comma-separated: {', '.join(PROBES)}")
    parser.add_argument("--device",
                        help="instead of --probe: scanner preset(s), comma-separated: "
                             f"{', '.join(DEVICES)} (geometry, frequency, TGC, dynamic "
                             "range, gain; atypical lesions, see --overlap)")
    parser.add_argument("--overlap", type=float, default=None,
                        help="with --device: share of atypical lesions per class, 0-1 "
                             f"(default {DEFAULT_OVERLAP:g})")
    parser.add_argument("--seed", required=True, type=int, help="global seed (>= 0)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--classes", default=",".join(CLASSES),
                        help="comma-separated classes (default benign,malignant)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes (default 1; results do not depend on it)")
    parser.add_argument("--overwrite", action="store_true",
                        help="rerun into an --out made with other settings: regenerate it "
                             "(without it such a rerun is refused)")
    parser.add_argument("--verbose", action="store_true", help="more detail")
    return parser


def _names(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _devices(text: str, flag: str) -> list[str]:
    """Canonical preset names of a comma-separated list; UsageError listing the choices."""
    names = []
    for name in _names(text):
        try:
            names.append(resolve_device(name).name)
        except ValueError as exc:
            raise UsageError(f"{flag}: {exc}") from None
    if not names:
        raise UsageError(f"{flag}: give at least one device ({', '.join(DEVICES)})")
    return list(dict.fromkeys(names))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and validate; raises UsageError with a one-line message."""
    args = build_parser().parse_args(argv)
    if args.probe is not None and args.device is not None:
        raise UsageError("give --probe or --device, not both")
    if args.probe is None and args.device is None:
        raise UsageError(f"give --probe ({', '.join(PROBES)}) or --device "
                         f"({', '.join(DEVICES)})")
    args.devices = _devices(args.device, "--device") if args.device is not None else []
    if args.overlap is not None and not args.devices:
        raise UsageError("--overlap needs --device (the --probe phantoms are always typical)")
    if args.overlap is not None and not 0.0 <= args.overlap <= 1.0:
        raise UsageError(f"--overlap must be within [0, 1], got {args.overlap:g}")
    probes = []
    for name in _names(args.probe):
        try:
            probes.append(resolve_probe(name).name)
        except ValueError as exc:
            raise UsageError(f"--probe: {exc}") from None
    labels = _names(args.classes)
    unknown = [c for c in labels if c not in CLASSES]
    if not probes and not args.devices:
        raise UsageError("--probe: give at least one probe")
    if not labels or unknown:
        raise UsageError(f"--classes: unknown class(es) {unknown or labels}; "
                          f"choose from {', '.join(CLASSES)}")
    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    if args.size < MIN_SIZE:
        raise UsageError(f"--size must be >= {MIN_SIZE}, got {args.size}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    args.probes = list(dict.fromkeys(probes))
    args.labels = list(dict.fromkeys(labels))
    return args


def build_benchmark_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m tf_usaug.simulate benchmark``."""
    parser = ArgumentParser(
        prog=f"python -m tf_usaug.simulate {BENCHMARK_COMMAND}",
        description="Build the scanner-shift benchmark set: device phantoms in one BUSI folder "
                    "per device, OUT/<device>/<class>/<device>_<class>_<i>.png + _mask.png, "
                    "and OUT/benchmark.json. Deterministic per --seed; rerun to resume. The "
                    "folder path is printed on stdout.")
    parser.add_argument("--out", type=non_empty_path, default=None,
                        help=f"output folder (default {cache_root()}/<fingerprint of the "
                             "settings>)")
    parser.add_argument("--devices", default=",".join(DEVICES),
                        help=f"comma-separated presets (default all: {', '.join(DEVICES)})")
    parser.add_argument("--per-class", type=int, default=DEFAULT_PER_CLASS,
                        help=f"images per class and device (default {DEFAULT_PER_CLASS})")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help=f"image side in pixels (default {DEFAULT_SIZE})")
    parser.add_argument("--seed", type=int, default=0, help="global seed (default 0)")
    parser.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP,
                        help=f"share of atypical lesions per class (default {DEFAULT_OVERLAP:g})")
    parser.add_argument("--classes", default=",".join(CLASSES),
                        help="comma-separated classes (default benign,malignant)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes (default 1; results do not depend on it)")
    parser.add_argument("--overwrite", action="store_true",
                        help="rebuild an --out made with other settings (otherwise refused)")
    parser.add_argument("--verbose", action="store_true", help="more detail")
    return parser


def benchmark_main(argv: list[str]) -> int:
    """``python -m tf_usaug.simulate benchmark``: build the set, print its folder on stdout."""
    args = build_benchmark_parser().parse_args(argv)
    devices = _devices(args.devices, "--devices")
    if args.out is not None:
        RunDir(args.out).check_target()
    _log.setup(args.verbose)
    bench = build_benchmark(args.out, devices=devices, per_class=args.per_class, size=args.size,
                            seed=args.seed, overlap=args.overlap, classes=_names(args.classes),
                            jobs=args.jobs, overwrite=args.overwrite)
    print(bench.path)
    return 0


@entry_point
def main(argv: list[str] | None = None) -> int:
    """``python -m tf_usaug.simulate``; returns the exit code (2 for bad arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [BENCHMARK_COMMAND]:
        return benchmark_main(argv[1:])
    args = parse_args(argv)
    rundir = RunDir(args.out)
    rundir.check_target()
    log = _log.setup(args.verbose)
    # what makes the bytes of a phantom, and what decides which phantoms exist
    making = {"seed": args.seed, "size": args.size}
    settings = {**making, "n": args.n, "probes": args.probes, "classes": args.labels}
    sources = args.probes
    if args.devices:  # recorded only for device runs: probe runs keep their old record
        overlap = DEFAULT_OVERLAP if args.overlap is None else float(args.overlap)
        making["overlap"] = overlap
        settings.update(overlap=overlap, devices=args.devices)
        sources = args.devices
    with rundir:
        old = rundir.recorded_settings()
        has_results = any(args.out.glob("*/*.png"))
        changed = rundir.check_settings("simulate", settings, args.overwrite, has_results)
        with _log.Stage(f"plan {args.n} x {'/'.join(args.labels)} x {'/'.join(sources)} "
                        f"phantoms ({args.size}x{args.size}) in {args.out}", log):
            if args.devices:
                items = plan_device_items(args.out, args.devices, args.labels, args.n,
                                          args.seed, args.size, making["overlap"])
            else:
                items = plan_items(args.out, args.probes, args.labels, args.n, args.seed,
                                   args.size)
            remade = changed and (old is None or {k: old.get(k) for k in making} != making)
            todo = items if remade else [it for it in items if not it.done()]
            if len(todo) < len(items):
                log.info("    %d already written, skipped", len(items) - len(todo))
            removed = prune_phantoms(args.out, items)
            if removed:
                log.info("    removed %d files that no longer belong to this set", removed)
        t0 = time.perf_counter()
        with _log.Stage(f"simulate {len(todo)} phantoms with PyMUST ({args.jobs} process"
                        f"{'es' if args.jobs > 1 else ''})", log):
            seconds = run(todo, args.jobs, writer=write_device_item if args.devices else None)
    if seconds:
        log.info("    wrote %d image+mask pairs in %.1f s (%.1f s per image)", len(seconds),
                 time.perf_counter() - t0, float(np.mean(seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
