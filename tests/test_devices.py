"""Scanner presets (``--device``), class overlap, and the benchmark-set builder.

The presets must differ the way docs/simulator.md says: imaging area (rectangle / convex fan /
sector, black outside), speckle grain (coarser at a lower centre frequency), TGC curve,
dynamic range (histogram spread) and gain. The overlap must really produce atypical lesions
(irregular benign, shadowless smooth malignant). The CLI and the builder must write the BUSI
layout deterministically and resume without regenerating. Images are tiny (24-100 px).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from conftest import run_module
from tf_usaug import simulate as simulate_cli
from tf_usaug.data.simulator import appearance, benchmark, devices, scanner
from tf_usaug.data.simulator.config import LESIONS, ProbeConfig, SimulationConfig
from tf_usaug.data.simulator.lesion import sample_lesion
from tf_usaug.distributed import item_seed

DEVICES = devices.DEVICES
# sizes with about the same pixel pitch (0.71 mm) on every device: grain compares in pixels
FIXTURE_SIZES = {"linear-a": 56, "convex-b": 88, "phased-c": 100}


# --------------------------------------------------------------------------------------
# helpers (independent of the module under test)
# --------------------------------------------------------------------------------------
def read_png(path: Path) -> np.ndarray:
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert arr is not None, f"cannot read {path}"
    return arr


def pixel_grid(name: str, n: int):
    """Pixel centres (m) of a device's square window, computed here from its bounds."""
    _, area, window = scanner.device_geometry(DEVICES[name])
    step = window.side / n
    xs = -window.side / 2 + (np.arange(n) + 0.5) * step
    zs = window.top + (np.arange(n) + 0.5) * step
    return np.meshgrid(xs, zs), area, window


def central_tissue(p, name: str) -> np.ndarray:
    """Tissue pixels in the middle of the lesion region: |x| < 12 mm, at the lesion depths,
    away from the lesion (dilated) and from the area's edges."""
    (x, z), _, _ = pixel_grid(name, p.image.shape[0])
    top = DEVICES[name].lesion_top
    sel = (np.abs(x) < 12e-3) & (z > top) & (z < top + devices.LESION_REGION)
    return sel & ndimage.binary_erosion(p.area, iterations=2) & \
        ~ndimage.binary_dilation(p.mask, iterations=4)


def autocorrelation(values: np.ndarray, valid: np.ndarray, axis: int, lag: int) -> float:
    """Normalised autocorrelation at ``lag`` pixels along ``axis`` over valid pixel pairs."""
    x = np.where(valid, values - np.median(values[valid]), 0.0)
    n = x.shape[axis]
    a, b = np.take(x, range(n - lag), axis=axis), np.take(x, range(lag, n), axis=axis)
    both = np.take(valid, range(n - lag), axis=axis) & np.take(valid, range(lag, n), axis=axis)
    return float(np.sum(a * b * both) / np.sqrt(np.sum(a * a * both) * np.sum(b * b * both)))


def grain(p, name: str) -> float:
    """Speckle grain: lateral + axial autocorrelation at a one-pixel lag (dB image)."""
    valid = central_tissue(p, name)
    assert valid.sum() > 150, (name, int(valid.sum()))
    return sum(autocorrelation(p.db, valid, axis, 1) for axis in (0, 1))


def shadow_gap_db(p) -> float:
    """dB below the lesion (central half of its columns, 1-6 mm under it) minus dB at the same
    depths beside it (one lesion width either side, in the area): negative = posterior shadow."""
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
    below = band & centre[None, :] & p.area
    side = band & beside[None, :] & p.area
    return float(np.median(p.db[below]) - np.median(p.db[side]))


# --------------------------------------------------------------------------------------
# the preset table (pure)
# --------------------------------------------------------------------------------------
def test_presets_are_frozen_and_differ_in_every_claimed_setting():
    assert len(DEVICES) >= 3
    assert {d.geometry for d in DEVICES.values()} == {"linear", "convex", "sector"}
    for key, dev in DEVICES.items():
        assert dev.name == key
        with pytest.raises(dataclasses.FrozenInstanceError):
            dev.gain_db = 1.0  # type: ignore[misc]
    for field in ("probe", "fc_mhz", "tgc_db", "dynamic_range_db", "gain_db"):
        values = [getattr(d, field) for d in DEVICES.values()]
        assert len(set(values)) == len(values), (field, values)


def test_resolve_device_is_case_insensitive_and_lists_the_choices():
    assert devices.resolve_device("Phased-C") is DEVICES["phased-c"]
    with pytest.raises(ValueError, match="choose from linear-a, convex-b, phased-c"):
        devices.resolve_device("sector-z")


@pytest.mark.parametrize("name", list(DEVICES))
def test_imaging_area_has_the_shape_of_its_geometry(name):
    (x, z), area, window = pixel_grid(name, 64)
    inside = area.contains(x, z)
    rows = np.flatnonzero(inside.any(axis=1))
    assert 0.3 < inside.mean() < 1.0
    x0, x1, z0, z1 = area.bounds()
    assert window.side == pytest.approx(max(x1 - x0, z1 - z0))  # the bounding square
    if area.geometry == "linear":
        # a rectangle: every column all in or all out, black bands beside the aperture
        assert set(inside.sum(axis=0).tolist()) <= {0, 64}
        assert not inside[:, 0].any() and not inside[:, -1].any() and inside[:, 32].all()
    else:
        # a fan: black top corners, wider at depth than near the top
        assert not inside[0, 0] and not inside[0, -1] and not inside[rows[0], 0]
        widths = inside.sum(axis=1)
        assert widths[rows[-1] - 3] > 1.3 * widths[rows[0] + 3]
    if area.geometry == "convex":
        # the array's arc: the top edge is 1.5 mm deeper in the middle than 12 mm aside
        (x, z), _, _ = pixel_grid(name, 128)
        fine = area.contains(x, z)
        col = {d: int(np.argmin(np.abs(x[0] - d))) for d in (-12e-3, 0.0, 12e-3)}
        top = {d: z[np.flatnonzero(fine[:, c])[0], 0] for d, c in col.items()}
        assert top[0.0] - top[-12e-3] > 1e-3 and top[0.0] - top[12e-3] > 1e-3, top
    if area.geometry == "sector":
        assert inside[rows[0]].sum() <= 3  # the apex


@pytest.mark.parametrize("name", list(DEVICES))
def test_every_lesion_fits_inside_the_imaging_area(name):
    _, area, _ = pixel_grid(name, 16)
    dev = DEVICES[name]
    region = ProbeConfig(dev.probe, devices.LESION_REGION, dev.lesion_top, "plane")
    for table in (LESIONS, appearance.ATYPICAL_LESIONS):
        for label in ("benign", "malignant"):
            for seed in range(25):
                lesion = sample_lesion(label, np.random.default_rng(seed), region, table[label])
                ox, oz = lesion.outline()
                assert area.contains(ox, oz).all(), (name, label, seed)


def test_tgc_curve_and_display_chain():
    curve = scanner.tgc_curve_db((-3.0, 0.0, 3.0), np.array([-1.0, 0.0, 0.25, 0.5, 1.0, 2.0]),
                                 0.0, 1.0)
    np.testing.assert_allclose(curve, [-3.0, -3.0, -1.5, 0.0, 3.0, 3.0])
    rng = np.random.default_rng(0)
    db = rng.normal(0.0, 5.0, (40, 40))
    area = np.zeros((40, 40), bool)
    area[:, 5:35] = True
    z = np.linspace(0.0, 1.0, 40)
    base = dataclasses.replace(DEVICES["linear-a"], tgc_db=(0.0,), gain_db=0.0)
    grey = {dr: scanner.display(db, area, z, dataclasses.replace(base, dynamic_range_db=dr),
                                (0.0, 1.0), 0.5) for dr in (40.0, 60.0)}
    iqr = {dr: np.subtract(*np.percentile(g[area], [75, 25])) for dr, g in grey.items()}
    assert iqr[40.0] / iqr[60.0] == pytest.approx(1.5, rel=0.01)  # narrower range: wider spread
    assert not grey[40.0][~area].any()  # black outside the imaging area
    gained = scanner.display(db, area, z, dataclasses.replace(base, gain_db=6.0), (0.0, 1.0), 0.5)
    assert np.median(gained[area]) - np.median(grey[60.0][area]) == pytest.approx(6.0 / 60.0,
                                                                                  abs=0.01)


def test_convex_virtual_source_at_the_centre_of_curvature_fires_all_elements_at_once():
    param, area, _ = scanner.device_geometry(DEVICES["convex-b"])
    xe, ze, _, _ = param.getElementPositions()
    np.testing.assert_allclose(scanner.virtual_source_delays(xe, ze, 0.0, area.apex_z, 1540.0),
                               0.0, atol=1e-12)
    tilted = scanner.virtual_source_delays(xe, ze, 5e-3, area.apex_z, 1540.0)[0]
    assert tilted.min() == 0.0 and np.argmin(tilted) > len(tilted) // 2  # +x side first


# --------------------------------------------------------------------------------------
# class overlap (pure: the variant depends only on the seed)
# --------------------------------------------------------------------------------------
def test_overlap_fraction_and_determinism():
    seeds = range(2000)
    for label in ("benign", "malignant"):
        flags = [appearance.lesion_variant(label, s, 0.2).atypical for s in seeds]
        assert abs(np.mean(flags) - 0.2) < 0.03
        assert not any(appearance.lesion_variant(label, s, 0.0).atypical for s in range(200))
        assert all(appearance.lesion_variant(label, s, 1.0).atypical for s in range(200))
    a = appearance.lesion_variant("benign", 7, 0.5)
    assert a == appearance.lesion_variant("benign", 7, 0.5)
    assert abs(a.echo_offset_db) <= appearance.ECHO_JITTER_DB
    with pytest.raises(ValueError, match="overlap"):
        appearance.lesion_variant("benign", 0, 1.5)


def test_atypical_lesions_cross_the_class_boundaries():
    """Atypical benign: irregular (not convex), rounder; atypical malignant: convex, wider
    than tall, no shadow, i.e. inside the typical benign range."""
    region = ProbeConfig("L11-5v", devices.LESION_REGION, 10e-3, "plane")

    def shapes(label, table):
        out = []
        for seed in range(30):
            lesion = sample_lesion(label, np.random.default_rng(seed), region, table[label])
            ox, oz = lesion.outline()
            out.append((appearance.outline_solidity(ox, oz), np.ptp(oz) / np.ptp(ox)))
        return np.array(out)

    typ_b, typ_m = shapes("benign", LESIONS), shapes("malignant", LESIONS)
    aty_b = shapes("benign", appearance.ATYPICAL_LESIONS)
    aty_m = shapes("malignant", appearance.ATYPICAL_LESIONS)
    assert typ_b[:, 0].min() > 0.99 and aty_m[:, 0].min() > 0.99  # convex ovals
    assert np.median(aty_b[:, 0]) < 0.95 and typ_m[:, 0].max() < 0.85  # irregular margins
    assert np.median(aty_b[:, 1]) > np.median(typ_b[:, 1]) + 0.2  # rounder
    assert aty_m[:, 1].max() < 0.9 < 1.1 < typ_m[:, 1].min()  # wider than tall, like benign
    assert appearance.ATYPICAL_LESIONS["malignant"].excess_attenuation == 0.0
    assert LESIONS["malignant"].excess_attenuation > 0


def polygon_solidity(x, z) -> float:
    """Area / convex-hull area, with matplotlib's polygon tools (independent of the module)."""
    from matplotlib.path import Path as PolygonPath

    pts = np.column_stack([x, z])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    grid = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], 120), np.linspace(lo[1], hi[1], 120)),
                    axis=-1).reshape(-1, 2)
    inside = PolygonPath(pts).contains_points(grid)
    from scipy.spatial import Delaunay

    hull = Delaunay(pts).find_simplex(grid) >= 0
    return float(inside.sum() / hull.sum())


def test_outline_solidity_is_one_for_ovals_and_low_for_spikes():
    phi = np.arange(1024) * 2 * np.pi / 1024
    r = 2.0 / np.hypot(np.cos(phi), 2.0 * np.sin(phi))
    assert appearance.outline_solidity(r * np.cos(phi), r * np.sin(phi)) == pytest.approx(1.0,
                                                                                         abs=1e-3)
    spiky = 1.0 + 0.8 * (np.cos(9 * phi) > 0.8)
    x, z = spiky * np.cos(phi), spiky * np.sin(phi)
    assert appearance.outline_solidity(x, z) < 0.8
    assert appearance.outline_solidity(x, z) == pytest.approx(polygon_solidity(x, z), abs=0.02)


# --------------------------------------------------------------------------------------
# simulated device phantoms
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def phantoms() -> dict:
    """One typical benign phantom per device, at ~0.71 mm pixels (overlap 0: typical)."""
    return {name: scanner.simulate_device_phantom("benign", name, seed=11, size=size, overlap=0.0)
            for name, size in FIXTURE_SIZES.items()}


def test_images_are_black_exactly_outside_the_imaging_area(phantoms):
    for name, p in phantoms.items():
        (x, z), area, _ = pixel_grid(name, p.image.shape[0])
        np.testing.assert_array_equal(p.area, area.contains(x, z))
        assert p.image.dtype == np.float32 and p.mask.dtype == bool
        assert not p.image[~p.area].any(), name
        assert (p.image[p.area] == 0).mean() < 0.02, name
        assert not (p.mask & ~p.area).any()
        if DEVICES[name].geometry == "linear":
            assert p.image[0, p.area[0]].mean() > 0.2  # the rectangle reaches the top row
        else:
            assert p.image[0, 0] == 0 and p.image[0, -1] == 0 and p.image[-1, 0] == 0


def test_lesions_are_darker_than_the_tissue_on_every_device(phantoms):
    for name, p in phantoms.items():
        ring = ndimage.binary_dilation(p.mask, iterations=6) & \
            ~ndimage.binary_dilation(p.mask, iterations=2) & p.area
        assert p.image[p.mask].mean() < p.image[ring].mean() - 0.1, name
        assert p.info["device"] == name and p.info["atypical"] is False


def test_speckle_grain_is_coarser_at_lower_centre_frequency(phantoms):
    """At the same pixel pitch, linear-a (7.6 MHz) has a much finer grain than convex-b
    (3.57 MHz) and phased-c (2.72 MHz); those two also differ in aperture, so only the
    frequency sweep below orders them."""
    g = {name: grain(p, name) for name, p in phantoms.items()}
    assert min(g["phased-c"], g["convex-b"]) > g["linear-a"] + 0.2, g


def test_same_device_lower_frequency_gives_coarser_grain():
    """Only fc changes (same probe, geometry, pixels, seed): the grain follows it."""
    cfg = SimulationConfig(texture_db=0.0)  # speckle only
    g = {}
    for fc in (2.0, 3.4):
        dev = dataclasses.replace(DEVICES["phased-c"], fc_mhz=fc, scatterer_spacing=1.0)
        p = scanner.simulate_device_phantom("benign", dev, seed=11, size=96, overlap=0.0,
                                            config=cfg)
        g[fc] = grain(p, "phased-c")
    assert g[2.0] > g[3.4] + 0.15, g


def test_dynamic_range_sets_the_histogram_spread(phantoms):
    p = phantoms["phased-c"]
    (_, z), area, _ = pixel_grid("phased-c", p.image.shape[0])
    x0, x1, z0, z1 = area.bounds()
    spread = {}
    for dr in (40.0, 60.0):
        dev = dataclasses.replace(DEVICES["phased-c"], dynamic_range_db=dr)
        image = scanner.display(p.db, p.area, z[:, 0], dev, (z0, z1),
                                SimulationConfig().tissue_grey)
        spread[dr] = np.subtract(*np.percentile(image[central_tissue(p, "phased-c")], [90, 10]))
    assert spread[40.0] / spread[60.0] == pytest.approx(1.5, rel=0.05)
    # and between the presets: the 40 dB preset has the widest tissue histogram (the speckle's
    # own dB spread also depends on the pixel size, so 50 vs 60 dB is not compared here)
    iqr = {n: np.subtract(*np.percentile(q.image[central_tissue(q, n)], [75, 25]))
           for n, q in phantoms.items()}
    assert iqr["phased-c"] > 1.2 * max(iqr["convex-b"], iqr["linear-a"]), iqr


def test_tgc_curve_and_gain_are_what_the_image_shows(phantoms):
    """Per row, the median tissue level of the displayed image, back in dB, is the device's
    gain + TGC curve (the simulator removed the tissue attenuation exactly before)."""
    grey0 = SimulationConfig().tissue_grey
    for name, p in phantoms.items():
        dev = DEVICES[name]
        (_, z), area, _ = pixel_grid(name, p.image.shape[0])
        _, _, z0, z1 = area.bounds()
        tissue = p.area & ~ndimage.binary_dilation(p.mask, iterations=3)
        rows = [r for r in range(3, p.image.shape[0] - 3) if tissue[r].sum() >= 12]
        shown = np.array([(np.median(p.image[r][tissue[r]]) - grey0) * dev.dynamic_range_db
                          for r in rows])
        expected = dev.gain_db + scanner.tgc_curve_db(dev.tgc_db, z[rows, 0], z0, z1)
        assert np.mean(np.abs(shown - expected)) < 1.2, (name, shown - expected)
        # the shape of the curve, not just its level: deepest third minus shallowest third
        third = len(rows) // 3
        rise_shown = shown[-third:].mean() - shown[:third].mean()
        rise_expected = expected[-third:].mean() - expected[:third].mean()
        assert rise_shown == pytest.approx(rise_expected, abs=1.0), (name, rise_shown)


def test_device_phantoms_are_deterministic_and_seeded():
    a = scanner.simulate_device_phantom("malignant", "phased-c", seed=4, size=24)
    b = scanner.simulate_device_phantom("malignant", "phased-c", seed=4, size=24)
    c = scanner.simulate_device_phantom("malignant", "phased-c", seed=5, size=24)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.info == b.info
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("kwargs, match", [
    (dict(device="sector-z"), "unknown device"),
    (dict(label="cyst"), "unknown class"),
    (dict(size=8), "size"),
    (dict(seed=-1), "seed"),
    (dict(overlap=2.0), "overlap"),
])
def test_simulate_device_phantom_rejects_bad_arguments(kwargs, match):
    args = dict(label="benign", device="phased-c", seed=0, size=24) | kwargs
    with pytest.raises(ValueError, match=match):
        scanner.simulate_device_phantom(**args)


def test_atypical_malignant_lesions_cast_no_shadow():
    """Through the images: a typical malignant lesion shadows, an atypical one does not."""
    def first(atypical: bool) -> int:
        return next(s for s in range(100)
                    if appearance.lesion_variant("malignant", s, 0.5).atypical is atypical)

    gaps = {}
    for atypical in (False, True):
        p = scanner.simulate_device_phantom("malignant", "phased-c", seed=first(atypical),
                                            size=96, overlap=0.5)
        assert p.info["atypical"] is atypical and p.info["shadow"] is (not atypical)
        gaps[atypical] = shadow_gap_db(p)
    assert gaps[False] < -3.0 and gaps[True] > -2.0 and gaps[True] > gaps[False] + 3.0, gaps


# --------------------------------------------------------------------------------------
# CLI: --device, errors
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def device_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("device")
    run_module("tf_usaug.simulate", "--out", out, "--n", "1", "--device", "Phased-C",
               "--seed", "3", "--size", "24", timeout=600)
    return out


def test_cli_device_writes_busi_pairs(device_run):
    for label in ("benign", "malignant"):
        names = sorted(p.name for p in (device_run / label).iterdir())
        assert names == [f"phased-c_{label}_000.png", f"phased-c_{label}_000_mask.png"]
        image = read_png(device_run / label / names[0])
        mask = read_png(device_run / label / names[1])
        assert image.shape == mask.shape == (24, 24) and image.dtype == np.uint8
        assert image[0, 0] == 0 and image.std() > 10  # black sector corner, speckle inside
        assert set(np.unique(mask)) == {0, 255}
    record = json.loads((device_run / "run.json").read_text())["settings"]
    assert record["devices"] == ["phased-c"] and record["overlap"] == appearance.DEFAULT_OVERLAP


def test_cli_device_output_is_the_library_phantom(device_run):
    from tf_usaug.files import encode_png

    p = scanner.simulate_device_phantom("malignant", "phased-c",
                                        item_seed(3, "phased-c/malignant/0"), 24)
    assert (device_run / "malignant" / "phased-c_malignant_000.png").read_bytes() == \
        encode_png(p.image)


@pytest.mark.parametrize("argv, match", [
    (["--device", "sector-z"], "--device: unknown device 'sector-z'; choose from linear-a, "
                               "convex-b, phased-c"),
    (["--device", "phased-c", "--probe", "P4-2v"], "not both"),
    (["--overlap", "0.3", "--probe", "P4-2v"], "--overlap needs --device"),
    (["--device", "phased-c", "--overlap", "1.5"], "--overlap must be within"),
    ([], "give --probe"),
])
def test_cli_device_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, match):
    base = ["--out", str(tmp_path / "o"), "--n", "1", "--seed", "0"]
    assert simulate_cli.main(base + argv) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_benchmark_cli_rejects_unknown_devices(tmp_path, capsys):
    assert simulate_cli.main(["benchmark", "--devices", "linear-a,nope", "--out",
                              str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "unknown device 'nope'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


# --------------------------------------------------------------------------------------
# the benchmark builder
# --------------------------------------------------------------------------------------
BENCH_ARGS = ["--devices", "phased-c,convex-b", "--per-class", "1", "--size", "24",
              "--seed", "3"]


def test_benchmark_builder_layout_summary_and_resume(tmp_path, capsys, device_run):
    out = tmp_path / "bench"
    assert simulate_cli.main(["benchmark", *BENCH_ARGS, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    pngs = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert pngs == sorted(f"{d}/{c}/{d}_{c}_000{s}.png" for d in ("phased-c", "convex-b")
                          for c in ("benign", "malignant") for s in ("", "_mask"))
    summary = json.loads((out / benchmark.SUMMARY_FILE).read_text())
    assert summary["counts"] == {d: {"benign": 1, "malignant": 1} for d in ("phased-c", "convex-b")}
    assert summary["images"] == 4 and summary["size"] == 24 and summary["devices"] == \
        ["phased-c", "convex-b"]
    assert summary["device_configs"]["phased-c"]["dynamic_range_db"] == 40.0
    # the same seed gives the same image as `simulate --device` (one seed per item key)
    name = "malignant/phased-c_malignant_000.png"
    assert (out / "phased-c" / name).read_bytes() == (device_run / name).read_bytes()

    # rerun: nothing regenerated, nothing rewritten
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()
              and p.name != ".lock"}
    assert simulate_cli.main(["benchmark", *BENCH_ARGS, "--out", str(out)]) == 0
    assert "4 already written" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # an interrupted build: a missing pair is made again, the others are kept
    lost = out / "convex-b" / "benign" / "convex-b_benign_000.png"
    kept = out / "phased-c" / name
    lost.unlink()
    before = kept.stat().st_mtime_ns
    assert simulate_cli.main(["benchmark", *BENCH_ARGS, "--out", str(out)]) == 0
    assert "3 already written" in capsys.readouterr().err
    assert lost.exists() and kept.stat().st_mtime_ns == before

    # other settings into the same folder: refused without --overwrite
    other = [a if a != "24" else "32" for a in BENCH_ARGS]
    assert simulate_cli.main(["benchmark", *other, "--out", str(out)]) == 2
    assert "size 24 -> 32" in capsys.readouterr().err


def test_benchmark_library_defaults_to_a_fingerprinted_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(benchmark.CACHE_ENV, str(tmp_path / "cache"))
    settings = benchmark.benchmark_settings(["phased-c"], ["benign"], 1, 16, 0, 0.2)
    other = benchmark.benchmark_settings(["phased-c"], ["benign"], 1, 16, 1, 0.2)
    assert benchmark.default_benchmark_dir(settings) != benchmark.default_benchmark_dir(other)
    bench = benchmark.build_benchmark(devices=["phased-c"], classes=["benign"], per_class=1,
                                      size=16, seed=0)
    assert bench.path == benchmark.default_benchmark_dir(settings)
    assert bench.path.parent == tmp_path / "cache" / "benchmark"
    assert (bench.device_dir("PHASED-C") / "benign" / "phased-c_benign_000.png").is_file()
    assert bench.written == 1 and bench.skipped == 0 and bench.summary["images"] == 1
    again = benchmark.build_benchmark(devices=["phased-c"], classes=["benign"], per_class=1,
                                      size=16, seed=0)
    assert again.written == 0 and again.skipped == 1 and again.summary == bench.summary


def test_benchmark_summary_lists_the_atypical_images(tmp_path):
    items = benchmark.plan_device_items(tmp_path, ["linear-a"], ["benign", "malignant"], 40, 0,
                                        32, 0.25, per_device=True)
    settings = benchmark.benchmark_settings(["linear-a"], ["benign", "malignant"], 40, 32, 0, 0.25)
    summary = benchmark.summarise(tmp_path, items, settings)
    listed = summary["atypical"]["linear-a"]
    assert 0 < len(listed["benign"]) < 40 and 0 < len(listed["malignant"]) < 40
    expected = [it.stem for it in items if it.label == "benign"
                and appearance.lesion_variant("benign", it.seed, 0.25).atypical]
    assert listed["benign"] == expected
    assert summary["counts"]["linear-a"] == {"benign": 0, "malignant": 0}  # nothing written
    assert "--overlap 0.25" in summary["command"]
