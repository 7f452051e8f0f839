#!/usr/bin/env python3
"""Stand-in for ``python -m tf_usaug.<job>`` under horovodrun/srun, for launcher tests.

Fixed total work (``--items`` x ``--seconds-per-item`` of sleep) dealt round-robin over the
Horovod ranks named by HOROVOD_RANK / HOROVOD_SIZE; every rank writes ``OUT/rank_<r>.json``
and rank 0 writes ``OUT/summary.json`` with the schema of ``tf_usaug.augment`` (images,
seconds, images_per_second, ranks, per_rank). Unknown arguments (the real job's) are
accepted and recorded, as is ``-m MODULE`` when run as a fake PYTHON. Standard library
only, so a launch costs no TensorFlow import.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def main(argv=None) -> int:
    t_start = time.perf_counter()
    p = argparse.ArgumentParser()
    p.add_argument("-m", dest="module", default=None)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--items", type=int, default=8)
    p.add_argument("--seconds-per-item", type=float, default=0.25)
    args, unknown = p.parse_known_args(argv)
    rank = int(os.environ.get("HOROVOD_RANK", 0))
    size = int(os.environ.get("HOROVOD_SIZE", 1))
    args.out.mkdir(parents=True, exist_ok=True)

    mine = [i for i in range(args.items) if i % size == rank]
    t0 = time.perf_counter()
    for _ in mine:
        time.sleep(args.seconds_per_item)
    busy = time.perf_counter() - t0
    stats = {"rank": rank, "images": len(mine), "busy_seconds": round(busy, 4),
             "idle_seconds": 0.0, "host": os.uname().nodename,
             "local_rank": int(os.environ.get("HOROVOD_LOCAL_RANK", 0))}
    write_json(args.out / f"rank_{rank}.json", stats)
    if rank != 0:
        return 0
    deadline = time.time() + 120
    files = [args.out / f"rank_{r}.json" for r in range(size)]
    while not all(f.exists() for f in files):
        if time.time() > deadline:
            print("timed out waiting for the other ranks", file=sys.stderr)
            return 4
        time.sleep(0.05)
    per_rank = [json.loads(f.read_text()) for f in files]
    wall = time.perf_counter() - t_start
    images = sum(r["images"] for r in per_rank)
    write_json(args.out / "summary.json", {
        "images": images, "generated_this_run": images, "seconds": round(wall, 4),
        "images_per_second": round(images / wall, 4), "ranks": size, "per_rank": per_rank,
        "module": args.module, "extra_args": unknown,
    })
    print(f"standin: {images} items on {size} rank(s) in {wall:.2f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
