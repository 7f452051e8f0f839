"""Cost and appearance of the scanner presets: seconds per image, imaging-area fraction,
speckle grain, tissue grey spread, lesion contrast and posterior shadow, per device.

    python benchmarks/device_phantoms.py      # writes benchmarks/results/device_phantoms.json
    python benchmarks/device_phantoms.py --n 4 --size 128 --devices phased-c

Each device simulates ``--n`` typical benign and ``--n`` typical malignant phantoms (overlap 0)
plus ``--n`` atypical malignant ones (overlap 1), single process. Grain: lateral + axial
autocorrelation of the dB image at a one-pixel lag, in the tissue of the lesion region.
Shadow: median dB 1-6 mm below the lesion minus beside it (negative = shadow).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]


def _lag1(values, valid, axis) -> float:
    x = np.where(valid, values - np.median(values[valid]), 0.0)
    n = x.shape[axis]
    a, b = np.take(x, range(n - 1), axis=axis), np.take(x, range(1, n), axis=axis)
    both = np.take(valid, range(n - 1), axis=axis) & np.take(valid, range(1, n), axis=axis)
    return float(np.sum(a * b * both) / np.sqrt(np.sum(a * a * both) * np.sum(b * b * both)))


def central_tissue(p, dev, window) -> np.ndarray:
    n = p.image.shape[0]
    step = window.side / n
    xs = -window.side / 2 + (np.arange(n) + 0.5) * step
    zs = window.top + (np.arange(n) + 0.5) * step
    x, z = np.meshgrid(xs, zs)
    sel = (np.abs(x) < 12e-3) & (z > dev.lesion_top) & (z < dev.lesion_top + 30e-3)
    return sel & ndimage.binary_erosion(p.area, iterations=2) & \
        ~ndimage.binary_dilation(p.mask, iterations=4)


def shadow_gap_db(p) -> float:
    rows = np.flatnonzero(p.mask.any(axis=1))
    cols = np.flatnonzero(p.mask.any(axis=0))
    h, w = p.mask.shape
    r0, r1 = rows[-1] + 2, min(h, rows[-1] + 2 + max(4, h // 10))
    width = cols[-1] - cols[0] + 1
    centre = np.zeros(w, bool)
    centre[cols[0] + width // 4: cols[-1] - width // 4 + 1] = True
    beside = np.zeros(w, bool)
    beside[max(0, cols[0] - 3 - width): max(0, cols[0] - 3)] = True
    beside[cols[-1] + 4: cols[-1] + 4 + width] = True
    band = np.zeros_like(p.mask)
    band[r0:r1] = True
    return float(np.median(p.db[band & centre[None, :] & p.area])
                 - np.median(p.db[band & beside[None, :] & p.area]))


def measure(name: str, n: int, size: int) -> dict:
    from tf_usaug.data.simulator.appearance import lesion_variant
    from tf_usaug.data.simulator.devices import DEVICES
    from tf_usaug.data.simulator.scanner import device_geometry, simulate_device_phantom

    dev = DEVICES[name]
    _, _, window = device_geometry(dev)
    rows = []
    cases = [("benign", 0.0, s) for s in range(n)] + [("malignant", 0.0, s) for s in range(n)]
    atypical_seeds = [s for s in range(1000) if lesion_variant("malignant", s, 0.5).atypical]
    cases += [("malignant", 1.0, s) for s in atypical_seeds[:n]]
    for label, overlap, seed in cases:
        t0 = time.perf_counter()
        p = simulate_device_phantom(label, name, seed, size, overlap)
        seconds = time.perf_counter() - t0
        tissue = central_tissue(p, dev, window)
        ring = ndimage.binary_dilation(p.mask, iterations=6) & \
            ~ndimage.binary_dilation(p.mask, iterations=2) & p.area
        rows.append(dict(label=label, atypical=p.info["atypical"], seconds=seconds,
                         grain=_lag1(p.db, tissue, 0) + _lag1(p.db, tissue, 1),
                         tissue_iqr=float(np.subtract(*np.percentile(p.image[tissue], [75, 25]))),
                         tissue_median=float(np.median(p.image[tissue])),
                         contrast=float(p.image[ring].mean() - p.image[p.mask].mean()),
                         shadow_db=shadow_gap_db(p), area=float(p.area.mean())))

    def mean(key, **where):
        sel = [r[key] for r in rows if all(r[k] == v for k, v in where.items())]
        return round(float(np.mean(sel)), 3)

    return dict(
        pixel_mm=round(window.side / size * 1e3, 3), area_fraction=mean("area"),
        seconds_per_image=mean("seconds"), grain=mean("grain"), tissue_iqr=mean("tissue_iqr"),
        tissue_median=mean("tissue_median"), lesion_contrast=mean("contrast"),
        shadow_db=dict(benign=mean("shadow_db", label="benign"),
                       malignant=mean("shadow_db", label="malignant", atypical=False),
                       atypical_malignant=mean("shadow_db", label="malignant", atypical=True)))


def main() -> None:
    from tf_usaug.data.simulator.devices import DEVICES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default=",".join(DEVICES))
    parser.add_argument("--n", type=int, default=2, help="phantoms per case and device")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks/results/device_phantoms.json")
    args = parser.parse_args()
    result = dict(size=args.size, n=args.n,
                  devices={d: measure(d, args.n, args.size) for d in args.devices.split(",")})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
