"""Paper 000 Table 1's ablation at CPU scale: the multitask network trained on one simulated
scanner with traditional / + MixStyleAug / + FeatAug / + MaskAug / all three, tested on
untouched originals of that scanner and of unseen ones; DSC and AUROC, 3 seeds, paired tests.

    python benchmarks/multitask_ablation.py                 # the committed result (~35 min CPU)
    python benchmarks/multitask_ablation.py --data /work/data/sim64 --train-device convex-b

Writes the report folder (``--out``, default /tmp/multitask_ablation) through ``python -m
tf_usaug.evaluate multitask`` and copies ``report.json`` to
``benchmarks/results/multitask.json``, ``report.md`` to ``benchmarks/results/multitask.md``
and the plots to ``benchmarks/results/multitask_plots/``.

``--recipe convex-b+demo`` (the default) builds the data folder from the shared simulated set
(``--sim``, device ``convex-b``, 64 px, 50 per class) as the training source and the bundled
demo phantoms' two probes (``l11-5v`` linear, ``p4-2v`` phased; 16 images each, 128 px,
resized) as unseen sources: links only, nothing copied or written into the inputs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEMO = REPO / "tf_usaug" / "demo_data"


def convex_plus_demo(sim: Path, dest: Path) -> Path:
    """DATA/<device>/<class>/ links: ``convex-b`` from ``sim``, ``l11-5v`` and ``p4-2v`` from
    the demo data (renamed to their own device folders)."""
    for label in ("benign", "malignant"):
        target = dest / "convex-b" / label
        target.mkdir(parents=True, exist_ok=True)
        for src in sorted((sim / "convex-b" / label).glob("*.png")):
            link = target / src.name
            if not link.exists():
                os.symlink(src.resolve(), link)
        for src in sorted((DEMO / label).glob("*.png")):
            device = src.name.split("_")[0]
            link = dest / device / label / src.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                os.symlink(src.resolve(), link)
    return dest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", choices=("convex-b+demo", "data"), default="convex-b+demo")
    p.add_argument("--sim", type=Path, default=Path("/work/data/sim64"))
    p.add_argument("--data", type=Path, help="with --recipe data: DATA/<device>/<class>/")
    p.add_argument("--train-device", default="convex-b")
    p.add_argument("--out", type=Path, default=Path("/tmp/multitask_ablation"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", default="2e-3")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-copy", action="store_true", help="do not write benchmarks/results")
    args = p.parse_args(argv)
    data = (convex_plus_demo(args.sim, args.out.parent / (args.out.name + "_data"))
            if args.recipe == "convex-b+demo" else args.data)
    cmd = [sys.executable, "-m", "tf_usaug.evaluate", "multitask", "--data", str(data),
           "--train-device", args.train_device, "--out", str(args.out), "--seeds",
           str(args.seeds), "--size", "64", "--epochs", str(args.epochs), "--lr", args.lr,
           "--batch-size", "16", "--filters", "16", "32", "64", "128", "--wct-steps", "200",
           "--threads", str(args.threads)]
    print("+", " ".join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=REPO)
    if rc or args.no_copy:
        return rc
    RESULTS.mkdir(exist_ok=True)
    import json

    report = json.loads((args.out / "report.json").read_text())
    report["benchmark_command"] = " ".join(["python", "benchmarks/multitask_ablation.py",
                                            *(sys.argv[1:] if argv is None else argv)])
    (RESULTS / "multitask.json").write_text(json.dumps(report, indent=1) + "\n")
    shutil.copyfile(args.out / "report.md", RESULTS / "multitask.md")
    shutil.copytree(args.out / "plots", RESULTS / "multitask_plots", dirs_exist_ok=True)
    print(f"wrote {RESULTS / 'multitask.json'}, multitask.md, multitask_plots/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
