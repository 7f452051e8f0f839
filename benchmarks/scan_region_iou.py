"""Accuracy of the scan-region detector: box and mask IoU on synthetic screenshots with known
truth (seeds the tests never use as well as the tests' fixed set) and on pydicom's ultrasound
DICOMs against hand-checked boxes.

    python benchmarks/scan_region_iou.py                 # writes benchmarks/results/scan_region_iou.json
    python benchmarks/scan_region_iou.py --seeds 0 200   # another range of seeds
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# Hand-checked boxes (y0, y1, x0, x1) of pydicom's ultrasound files; the reasons are in
# tests/test_scan_region.py (CHECKED), which holds the same values.
DICOM_TRUTH = {
    "examples_palette.dcm": (68, 350, 169, 752),
    "examples_ybr_color.dcm": (15.5, 207.5, 42, 298),
    "examples_rgb_color.dcm": (54, 169, 7, 312),
    "examples_jpeg2k.dcm": (108, 337, 14, 623),
}


def box_iou(a, b) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[2], b[2]))
    return inter / ((a[1] - a[0]) * (a[3] - a[2]) + (b[1] - b[0]) * (b[3] - b[2]) - inter)


def _stats(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return dict(n=int(v.size), mean=round(float(v.mean()), 4), sd=round(float(v.std(ddof=1)), 4)
                if v.size > 1 else 0.0, min=round(float(v.min()), 4),
                p05=round(float(np.percentile(v, 5)), 4),
                below_0_9=int((v < 0.9).sum()))


def synthetic(seeds: range) -> dict:
    from tf_usaug.data.scan_region import detect_scan_region
    from tf_usaug.data.screenshots import KINDS, make_screenshot

    rows = []
    for seed in seeds:
        shot = make_screenshot(seed)
        found = detect_scan_region(shot.image)
        rows.append(dict(seed=seed, kind=shot.kind, box_iou=box_iou(found.box, shot.box),
                         mask_iou=float((found.mask & shot.mask).sum()
                                        / (found.mask | shot.mask).sum()),
                         shape_found=found.shape))
    out = dict(seeds=[seeds.start, seeds.stop], box_iou=_stats([r["box_iou"] for r in rows]),
               mask_iou=_stats([r["mask_iou"] for r in rows]), per_kind={})
    for kind in KINDS:
        sel = [r for r in rows if r["kind"] == kind]
        if sel:
            out["per_kind"][kind] = dict(box_iou=_stats([r["box_iou"] for r in sel]),
                                         mask_iou=_stats([r["mask_iou"] for r in sel]))
    out["worst"] = sorted(({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                           for r in rows), key=lambda r: r["box_iou"])[:5]
    return out


def dicoms() -> dict:
    import pydicom

    from tf_usaug.data.image_io import read_image
    from tf_usaug.data.scan_region import detect_scan_region
    from tf_usaug.errors import ImageError

    folder = Path(pydicom.data.__file__).parent / "test_files"
    out = {}
    for name, truth in DICOM_TRUTH.items():
        try:
            image = read_image(folder / name)[0]
        except ImageError as exc:  # a decoder plugin may be missing
            out[name] = dict(skipped=str(exc))
            continue
        found = detect_scan_region(image)
        out[name] = dict(box=list(found.box), truth=list(truth), shape=found.shape,
                         box_iou=round(box_iou(found.box, truth), 4))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs=2, default=(0, 300), metavar=("START", "STOP"))
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/scan_region_iou.json"))
    args = ap.parse_args()
    result = dict(command="python benchmarks/scan_region_iou.py --seeds %d %d" % tuple(args.seeds),
                  synthetic=synthetic(range(*args.seeds)), dicom=dicoms())
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    s = result["synthetic"]
    print(f"synthetic seeds {args.seeds[0]}-{args.seeds[1] - 1}: box IoU "
          f"{s['box_iou']['mean']:.3f} +- {s['box_iou']['sd']:.3f} (min {s['box_iou']['min']:.3f}, "
          f"{s['box_iou']['below_0_9']} below 0.9); mask IoU {s['mask_iou']['mean']:.3f} +- "
          f"{s['mask_iou']['sd']:.3f}")
    for name, r in result["dicom"].items():
        print(f"{name}: " + (f"box IoU {r['box_iou']:.3f} ({r['shape']})" if "box_iou" in r
                             else r["skipped"]))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
