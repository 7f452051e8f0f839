"""``python -m tf_usaug.scaling``: strong-scaling table and plot, and CSV rows from job summaries.

    python -m tf_usaug.scaling report scaling/strong_scaling.csv [--run-id ID] [--plot PNG]
    python -m tf_usaug.scaling append CSV --run-id ID --processes P --wall-seconds T --summary S

The maths and file handling: :mod:`tf_usaug.distributed.scaling`.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import socket
import sys
from pathlib import Path
from typing import Sequence

from .cli import ArgumentParser, entry_point
from .distributed.scaling import (append_row, describe_cpu, describe_gpus, make_row, read_summary, report)
from .errors import ScalingError


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m tf_usaug.scaling",
                                description="Strong-scaling CSV: append runs, print the table "
                                            "and draw the speed-up plot.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="print the table and write the speed-up PNG")
    r.add_argument("csv", type=Path)
    r.add_argument("--run-id", help="which sweep (default: the last one in the CSV)")
    r.add_argument("--plot", type=Path, help="PNG path (default: beside the CSV)")
    a = sub.add_parser("append", help="append one run (reads its summary.json)")
    a.add_argument("csv", type=Path)
    a.add_argument("--run-id", required=True)
    a.add_argument("--processes", type=int, required=True)
    a.add_argument("--wall-seconds", type=float, required=True)
    a.add_argument("--summary", type=Path, required=True, help="the run's summary.json")
    a.add_argument("--host", default=None, help="default: this host's name")
    a.add_argument("--date", default=None, help="default: now, ISO 8601 UTC")
    a.add_argument("--launcher", default="")
    a.add_argument("--gpu", default=None, help="default: from nvidia-smi")
    a.add_argument("--cpu", default=None, help="default: from /proc/cpuinfo")
    a.add_argument("--workload", default="", help="the job's arguments, for the record")
    return p


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "report":
        text, png = report(args.csv, args.run_id, args.plot)
        print(text)
        print(f"plot: {png}")
    else:
        if args.processes < 1 or not args.wall_seconds > 0:
            raise ScalingError(f"{args.csv}: refusing a row with processes="
                               f"{args.processes}, wall seconds={args.wall_seconds}")
        summary = read_summary(args.summary)
        info = dict(
            host=args.host or socket.gethostname(),
            date=args.date or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            launcher=args.launcher,
            gpu=args.gpu if args.gpu is not None else describe_gpus(),
            cpu=args.cpu if args.cpu is not None else describe_cpu(),
            workload=args.workload)
        try:
            row = make_row(args.run_id, args.processes, args.wall_seconds, summary, **info)
        except (KeyError, TypeError, ValueError) as exc:
            raise ScalingError(f"{args.summary}: unusable summary: {exc!r}") from None
        row = append_row(args.csv, row)
        print(f"{args.csv}: run {row['run_id']} processes={row['processes']} "
              f"wall={row['wall_seconds']} s images={row['images']} "
              f"speed-up={row['speedup'] or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
