"""Strong scaling of the generation job: the same NST workload at np = 1 and np = 2 (or more).

    python benchmarks/strong_scaling.py                     # np 1 2, one thread per rank, 3 rounds
    python benchmarks/strong_scaling.py --np 1 2 4 --threads 1 --iterations 100 --repeats 5

The default workload is the one in docs/scale-out.md: the 32 demo images, NST at 128 px, 60 iterations,
batches of 4, random weights (about 10 minutes for np 1 2 x 3 rounds on 2 cores).

Each np runs ``horovodrun -np N --gloo python -m tf_usaug.augment ...`` into a fresh output
folder (fresh relevance cache too, so every run pays its start-up and relevance stage), in one
invocation of this script so the numbers are comparable; ``--repeats`` rounds in alternating
order (1 2, 2 1, 1 2, ...), medians reported, because a shared VM's speed drifts by 10 %
between minutes. Two efficiencies are reported:

* throughput efficiency: images per busy second summed over ranks (from summary.json; the
  generation itself, without start-up), divided by np x the np = 1 value;
* wall-clock efficiency: T(1) / (np x T(np)) of the whole command, start-up, relevance stage
  and final merge included.

``--pin-cores`` runs each command under ``taskset -c 0..np*threads-1``: np = 1 then gets one
core for everything it starts, its relevance child included (without it, the child of a lone
rank works on the second core while the rank builds and traces, so "np = 1" uses two cores
during start-up and the wall efficiency compares two cores with two cores).

Results go to ``benchmarks/results/strong_scaling.json`` and, as rows, to a CSV that
``python -m tf_usaug.scaling report`` can plot.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tf_usaug.distributed.scaling import append_row, job_throughput, make_row


def horovodrun() -> str:
    cand = Path(sys.executable).with_name("horovodrun")
    return str(cand) if cand.exists() else (shutil.which("horovodrun") or "horovodrun")


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


def run_once(np_: int, args: argparse.Namespace, workdir: Path) -> dict:
    out = workdir / f"np{np_}"
    cmd = [horovodrun(), "-np", str(np_), "--gloo", sys.executable, "-m", "tf_usaug.augment",
           "--no-progress", "--content", str(args.content), "--out", str(out),
           "--method", "nst", "--size", str(args.size), "--iterations", str(args.iterations),
           "--per-image", str(args.per_image), "--batch-size", str(args.batch_size),
           "--weights", args.weights, "--threads", str(args.threads), "--seed", "0",
           *args.extra]
    if args.pin_cores:
        cmd = ["taskset", "-c", f"0-{np_ * args.threads - 1}", *cmd]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=str(args.threads))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"np={np_} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    throughput = job_throughput(summary, np_)
    return {"np": np_, "wall_seconds": round(wall, 2), "images": summary["images"],
            "images_per_second": round(summary["images"] / wall, 4),
            "images_per_busy_second": round(throughput["images_per_busy_second"], 4),
            "per_rank": summary["per_rank"], "summary": summary}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--np", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=1, help="CPU threads per rank")
    p.add_argument("--content", type=Path, default=REPO / "tf_usaug" / "demo_data")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--per-image", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--weights", default="none")
    p.add_argument("--pin-cores", action="store_true",
                   help="run np = N on cores 0..N*threads-1 only (taskset): one core for np = 1")
    p.add_argument("--repeats", type=int, default=3,
                   help="runs per np, in alternating order; medians are reported (3)")
    p.add_argument("--csv", type=Path, default=REPO / "benchmarks" / "results" /
                   "strong_scaling.csv")
    p.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" /
                   "strong_scaling.json")
    p.add_argument("extra", nargs=argparse.REMAINDER,
                   help="further augment arguments after --, e.g. -- --relevance-rule lrp.epsilon")
    args = p.parse_args(argv)
    args.extra = [a for a in args.extra if a != "--"]

    runs = []
    with tempfile.TemporaryDirectory(prefix="usaug-scaling-") as tmp:
        for rep in range(args.repeats):
            # alternate the order, so a drift of the machine's speed hits every np alike
            for np_ in (args.np if rep % 2 == 0 else args.np[::-1]):
                row = run_once(np_, args, Path(tmp) / f"rep{rep}")
                row["repeat"] = rep
                runs.append(row)
                print(f"repeat {rep + 1}/{args.repeats}, np={np_}: wall {row['wall_seconds']:.1f} s, "
                      f"{row['images']} images, {row['images_per_busy_second']:.3f} img/busy-s",
                      flush=True)
    rows = []
    for np_ in args.np:
        mine = [r for r in runs if r["np"] == np_]
        rows.append({"np": np_, "repeats": len(mine), "images": mine[0]["images"],
                     "wall_seconds": median([r["wall_seconds"] for r in mine]),
                     "wall_seconds_all": [r["wall_seconds"] for r in mine],
                     "images_per_busy_second": median([r["images_per_busy_second"]
                                                       for r in mine]),
                     "images_per_busy_second_all": [r["images_per_busy_second"] for r in mine],
                     "per_rank": [r["per_rank"] for r in mine]})
        rows[-1]["images_per_second"] = round(rows[-1]["images"] / rows[-1]["wall_seconds"], 4)
    base = rows[0]
    for row in rows:
        k = row["np"] / base["np"]
        row["speedup"] = round(base["wall_seconds"] / row["wall_seconds"], 3)
        row["efficiency_wall"] = round(row["speedup"] / k, 3)
        row["efficiency_throughput"] = round(
            row["images_per_busy_second"] / (k * base["images_per_busy_second"]), 3)

    print("\n| np | wall s | images | img/s | speed-up | wall eff. | img/busy-s | throughput eff. |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['np']} | {r['wall_seconds']:.1f} | {r['images']} | "
              f"{r['images_per_second']:.3f} | {r['speedup']:.2f} | {r['efficiency_wall']:.2f} | "
              f"{r['images_per_busy_second']:.3f} | {r['efficiency_throughput']:.2f} |")
    machine = {"host": platform.node(), "cpu": platform.processor() or platform.machine(),
               "cores": os.cpu_count(), "threads_per_rank": args.threads}
    workload = (f"nst {args.size}px x{args.iterations} it, per-image {args.per_image}, "
                f"batch {args.batch_size}, weights {args.weights}, {args.threads} thread/rank"
                + (", np*threads cores (taskset)" if args.pin_cores else "") + " "
                + " ".join(args.extra)).strip()
    run_id = time.strftime("bench-%Y%m%dT%H%M%S")
    for r in runs:
        append_row(args.csv, make_row(run_id, r["np"], r["wall_seconds"], r.pop("summary"),
                                      host=machine["host"], cpu=str(machine["cpu"]),
                                      launcher="horovodrun --gloo", workload=workload,
                                      date=time.strftime("%Y-%m-%d %H:%M:%S")))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "workload": workload, "settings": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
        if k not in ("csv", "json")}, "rows": rows, "runs": runs}, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
