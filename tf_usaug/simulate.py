"""``python -m tf_usaug.simulate``: PyMUST B-mode phantoms of breast lesions with exact masks.

    python -m tf_usaug.simulate --out phantoms --n 8 --probe L11-5v,P4-2v --seed 0

Writes the BUSI layout (``OUT/<class>/<probe>_<class>_<i>.png`` + ``..._mask.png``). How a
phantom is made: :mod:`tf_usaug.data.simulator`; this file is only the command line.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import log as _log
from .cli import ArgumentParser, entry_point, non_empty_path
from .data.simulator.config import CLASSES, MIN_SIZE, PROBES
from .data.simulator.phantom import resolve_probe
from .data.simulator.phantom_set import plan_items, prune_phantoms, run
from .errors import UsageError
from .rundir import RunDir


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m tf_usaug.simulate``."""
    parser = ArgumentParser(
        prog="python -m tf_usaug.simulate",
        description="Simulate B-mode breast-lesion phantoms with PyMUST and write them in the "
                    "BUSI layout: OUT/<class>/<probe>_<class>_<i>.png + ..._mask.png.")
    parser.add_argument("--out", required=True, type=non_empty_path, help="output folder")
    parser.add_argument("--n", required=True, type=int, help="images per class and probe (>= 1)")
    parser.add_argument("--probe", required=True,
                        help=f"probe(s), comma-separated: {', '.join(PROBES)}")
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and validate; raises UsageError with a one-line message."""
    args = build_parser().parse_args(argv)
    probes = []
    for name in filter(None, (p.strip() for p in args.probe.split(","))):
        try:
            probes.append(resolve_probe(name).name)
        except ValueError as exc:
            raise UsageError(f"--probe: {exc}") from None
    labels = [c.strip() for c in args.classes.split(",") if c.strip()]
    unknown = [c for c in labels if c not in CLASSES]
    if not probes:
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


@entry_point
def main(argv: list[str] | None = None) -> int:
    """``python -m tf_usaug.simulate``; returns the exit code (2 for bad arguments)."""
    args = parse_args(argv)
    rundir = RunDir(args.out)
    rundir.check_target()
    log = _log.setup(args.verbose)
    # what makes the bytes of a phantom, and what decides which phantoms exist
    making = {"seed": args.seed, "size": args.size}
    settings = {**making, "n": args.n, "probes": args.probes, "classes": args.labels}
    with rundir:
        old = rundir.recorded_settings()
        has_results = any(args.out.glob("*/*.png"))
        changed = rundir.check_settings("simulate", settings, args.overwrite, has_results)
        with _log.Stage(f"plan {args.n} x {'/'.join(args.labels)} x {'/'.join(args.probes)} "
                        f"phantoms ({args.size}x{args.size}) in {args.out}", log):
            items = plan_items(args.out, args.probes, args.labels, args.n, args.seed, args.size)
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
            seconds = run(todo, args.jobs)
    if seconds:
        log.info("    wrote %d image+mask pairs in %.1f s (%.1f s per image)", len(seconds),
                 time.perf_counter() - t0, float(np.mean(seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
