"""Start-up of the augmentation job: ``prepare_seconds`` (launch of the job's work to the first
batch) and the whole command's wall time, of two code versions, interleaved in one run.

Version A is a git revision checked out into a temporary worktree (default ``HEAD``), B the
working tree. Each repeat runs A and B on the demo data (the ``make demo`` job, fewer
iterations: start-up does not depend on them) with an empty relevance cache ("cold") and then
again with that cache ("cached"). Medians over the repeats, and the ratio B / A.

    python benchmarks/startup.py --a HEAD~1 --repeats 3     # -> benchmarks/results/startup.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_job(code: Path, out: Path, cache: Path, classifier: Path, iterations: int) -> dict:
    cmd = [sys.executable, "-m", "tf_usaug.augment", "--demo", "--out", str(out), "--cache",
           str(cache), "--iterations", str(iterations), "--no-progress"]
    if classifier is not None:
        cmd += ["--relevance-model", str(classifier)]
    env = dict(os.environ, PYTHONPATH=str(code))
    start = time.perf_counter()
    subprocess.run(cmd, cwd=code, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    return {"prepare_seconds": summary["prepare_seconds"], "wall_seconds": round(wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", default="HEAD", help="git revision of version A (default HEAD)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--classifier", type=Path, help="classifier run to explain (default: one "
                    "trained here like make demo does)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/startup.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tf_usaug_startup_"))
    tree_a = work / "a"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree_a), args.a], cwd=REPO,
                   check=True, capture_output=True)
    try:
        classifier = args.classifier
        if classifier is None:
            classifier = work / "classifier"
            subprocess.run([sys.executable, "-m", "tf_usaug.train", "classifier", "--data",
                            str(REPO / "tf_usaug/demo_data"), "--backbone", "small", "--size",
                            "64", "--out", str(classifier)], cwd=REPO, check=True,
                           capture_output=True)
        runs: dict = {v: {"cold": [], "cached": []} for v in ("a", "b")}
        for rep in range(args.repeats):
            for version, code in (("a", tree_a), ("b", REPO)):
                cache = work / f"cache_{version}_{rep}"
                for state in ("cold", "cached"):
                    out = work / f"out_{version}_{rep}_{state}"
                    r = run_job(code, out, cache, classifier, args.iterations)
                    runs[version][state].append(r)
                    print(f"repeat {rep} {version} {state}: prepare {r['prepare_seconds']:.1f} s,"
                          f" wall {r['wall_seconds']:.1f} s", flush=True)
                    shutil.rmtree(out)
        med = {v: {s: {k: statistics.median(r[k] for r in runs[v][s])
                       for k in ("prepare_seconds", "wall_seconds")}
                   for s in ("cold", "cached")} for v in runs}
        result = dict(command="python benchmarks/startup.py " + " ".join(sys.argv[1:]),
                      a=args.a, b="working tree", repeats=args.repeats,
                      iterations=args.iterations, median=med,
                      ratio_b_over_a={s: {k: round(med["b"][s][k] / med["a"][s][k], 3)
                                          for k in ("prepare_seconds", "wall_seconds")}
                                      for s in ("cold", "cached")},
                      runs=runs)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        for s in ("cold", "cached"):
            print(f"{s}: prepare A {med['a'][s]['prepare_seconds']:.1f} s, "
                  f"B {med['b'][s]['prepare_seconds']:.1f} s "
                  f"(B/A {result['ratio_b_over_a'][s]['prepare_seconds']:.2f})")
        print(f"-> {args.out}")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree_a)], cwd=REPO,
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
