"""tf_usaug.simulate: lesion geometry maths, PyMUST phantoms, the CLI and the bundled demo data.

Geometry helpers are checked against analytic identities and independent computations
(matplotlib's point-in-polygon, chord lengths of circles); the simulated images are checked
for the properties the classes are defined by (hypoechoic lesion, aspect, posterior shadow,
mask aligned with the dark lesion), on fresh small phantoms and on the committed demo data.
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib.path import Path as PolygonPath
from scipy import ndimage

from conftest import run_module
from tf_usaug.data.simulator import acoustics as sim_acoustics
from tf_usaug.data.simulator import config as sim_config
from tf_usaug.data.simulator import lesion as sim_lesion
from tf_usaug.data.simulator import phantom as sim_phantom
from tf_usaug.data.simulator import phantom_set as sim_set
from tf_usaug import simulate as simulate_cli

PROBES = ("L11-5v", "P4-2v")


# --------------------------------------------------------------------------------------
# helpers (independent of the module under test)
# --------------------------------------------------------------------------------------
def read_png(path: Path) -> np.ndarray:
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert arr is not None, f"cannot read {path}"
    return arr


def bbox_aspect(mask: np.ndarray) -> float:
    """Height / width of the mask's bounding box (pixels)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return (rows[-1] - rows[0] + 1) / (cols[-1] - cols[0] + 1)


def lesion_vs_ring(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean grey inside the lesion and in a tissue ring 3-8 px around it."""
    near = ndimage.binary_dilation(mask, iterations=3)
    ring = ndimage.binary_dilation(mask, iterations=8) & ~near
    return float(image[mask].mean()), float(image[ring].mean())


def shadow_vs_beside(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean grey in a band just below the lesion (its central half of columns) and at the same
    depths in columns clear of the lesion on either side."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = image.shape
    r0 = rows[-1] + 2
    r1 = min(h, r0 + max(4, h // 5))
    assert r1 - r0 >= 3, "lesion too deep to measure a shadow"
    width = cols[-1] - cols[0] + 1
    centre = slice(cols[0] + width // 4, cols[-1] - width // 4 + 1)
    beside = np.ones(w, dtype=bool)
    beside[max(0, cols[0] - 4):cols[-1] + 5] = False
    assert beside.sum() >= 4, "no tissue beside the lesion"
    return float(image[r0:r1, centre].mean()), float(image[r0:r1][:, beside].mean())


def best_mask_shift(image: np.ndarray, mask: np.ndarray, reach: int = 5) -> tuple[int, int]:
    """Integer (dy, dx) shift of the mask that best separates dark (inside) from bright."""
    dark = ndimage.uniform_filter(1.0 - image.astype(np.float64), 3)
    best = None
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            m = np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
            score = dark[m].mean() - dark[~m].mean()
            if best is None or score > best[0]:
                best = (score, dy, dx)
    return best[1], best[2]


# --------------------------------------------------------------------------------------
# lesion geometry (pure, no PyMUST)
# --------------------------------------------------------------------------------------
def test_ellipse_radius_satisfies_the_ellipse_equation():
    phi = np.linspace(0, 2 * np.pi, 361)
    a, b, rot = 3.0, 1.5, np.deg2rad(25)
    r = sim_lesion.ellipse_radius(phi, a, b, rot)
    x, z = r * np.cos(phi), r * np.sin(phi)
    # rotate back into the ellipse frame
    u = x * np.cos(rot) + z * np.sin(rot)
    v = -x * np.sin(rot) + z * np.cos(rot)
    np.testing.assert_allclose((u / a) ** 2 + (v / b) ** 2, 1.0, atol=1e-12)
    assert r.max() == pytest.approx(a, rel=1e-4) and r.min() == pytest.approx(b, rel=1e-4)


def test_spicule_profile_is_a_triangle_in_angle():
    phi = np.array([1.0, 1.05, 1.1, 0.9, 1.2, 1.0 + 2 * np.pi])
    prof = sim_lesion.spicule_profile(phi, np.array([1.0]), np.array([0.1]), np.array([0.6]))
    np.testing.assert_allclose(prof, [0.6, 0.3, 0.0, 0.0, 0.0, 0.6], atol=1e-9)
    # wraps around 0 / 2 pi
    wrapped = sim_lesion.spicule_profile(np.array([2 * np.pi - 0.05]), np.array([0.0]),
                                  np.array([0.1]), np.array([1.0]))
    np.testing.assert_allclose(wrapped, [0.5], atol=1e-9)
    assert not sim_lesion.spicule_profile(phi, np.array([]), np.array([]), np.array([])).any()


@pytest.mark.parametrize("limits", [(0.4, 0.8), (1.2, 1.9), (0.9, 1.1)])
@pytest.mark.parametrize("aspect", [0.3, 0.6, 1.0, 1.5, 2.5])
def test_aspect_scale_brings_the_bounding_box_into_limits(aspect, limits):
    xs = np.array([-1.0, 1.0, 0.0, 0.0])
    zs = np.array([0.0, 0.0, -aspect, aspect])
    s = sim_lesion.aspect_scale(xs, zs, limits)
    scaled = np.ptp(zs) / np.ptp(s * xs)
    assert limits[0] - 1e-9 <= scaled <= limits[1] + 1e-9
    if limits[0] <= aspect <= limits[1]:
        assert s == 1.0  # already fine: untouched


def test_lesion_contains_matches_point_in_polygon(rng):
    probe = sim_config.PROBES["L11-5v"]
    lesion = sim_lesion.sample_lesion("malignant", np.random.default_rng(11), probe,
                               sim_config.LESIONS["malignant"])
    ox, oz = lesion.outline()
    polygon = PolygonPath(np.column_stack([ox, oz]))
    half = lesion.bounding_radius() * 1.2
    px = lesion.cx + rng.uniform(-half, half, 20000)
    pz = lesion.cz + rng.uniform(-half, half, 20000)
    ours = lesion.contains(px, pz)
    ref = polygon.contains_points(np.column_stack([px, pz]))
    assert ours.any() and (~ours).any()
    assert np.mean(ours == ref) > 0.995  # differences only on the discretised boundary


def circle(radius: float, cx: float = 0.0, cz: float = 0.02) -> sim_lesion.Lesion:
    return sim_lesion.Lesion(cx=cx, cz=cz, radii=np.full(sim_lesion.N_ANGLES, radius))


@pytest.mark.parametrize("offset", [0.0, 0.5e-3, 1.5e-3, 1.9e-3])
def test_path_length_through_a_circle_is_its_chord(offset):
    r = 2e-3
    lesion = circle(r)
    # vertical ray from the surface to a point 1 cm below the circle, `offset` off-centre
    length = sim_lesion.lesion_path_length(lesion, np.array([offset]), np.array([0.04]),
                                    np.array([offset]), np.array([0.0]), samples=400)
    chord = 2 * np.sqrt(r ** 2 - offset ** 2)
    assert length[0] == pytest.approx(chord, abs=2 * r / 400 + 1e-5)


def test_path_length_is_zero_off_the_lesion_and_partial_inside():
    lesion = circle(2e-3)
    x = np.array([5e-3, 0.0, 0.0])
    z = np.array([0.05, 0.01, 0.02])  # beside, above, at the centre
    length = sim_lesion.lesion_path_length(lesion, x, z, x, np.zeros(3), samples=400)
    assert length[0] == 0.0 and length[1] == 0.0
    assert length[2] == pytest.approx(2e-3, abs=2e-5)  # top edge to centre = one radius
    # radial rays (phased array) see the same chord along the line through the centre
    radial = sim_lesion.lesion_path_length(circle(2e-3, cx=0.01, cz=0.03), np.array([0.02]),
                                    np.array([0.06]), np.array([0.0]), np.array([0.0]),
                                    samples=400)
    assert radial[0] == pytest.approx(4e-3, abs=4e-5)


@pytest.mark.parametrize("tilt_deg", [0.0, 5.0, -8.0])
def test_shadow_loss_is_alpha_f_times_transmit_plus_echo_chords(tilt_deg):
    """Linear array: the transmit ray is tilted, the echo goes straight up (two paths)."""
    r, cx, cz = 1.5e-3, 0.0, 0.015
    lesion = circle(r, cx=cx, cz=cz)
    cfg = sim_config.LesionConfig(width_frac=(0.2, 0.3), height_ratio=(1, 1), aspect_limits=(0, 9),
                           rotation_deg=0, depth_frac=(0.5, 0.5), excess_attenuation=1.2)
    theta = np.deg2rad(tilt_deg)
    z = 0.03
    x = cx + (z - cz) * np.tan(theta)  # the tilted transmit ray passes through the centre
    loss = sim_lesion.shadow_loss_db(lesion, cfg, sim_config.PROBES["L11-5v"], 7.6e6, np.array([x]),
                              np.array([z]), tilt_deg, samples=2000)
    d = abs(x - cx)
    echo_chord = 2 * np.sqrt(max(r * r - d * d, 0.0))
    expected = 1.2 * 7.6 * 100 * (2 * r + echo_chord)
    assert loss[0] == pytest.approx(expected, rel=0.01)
    no_shadow = dataclasses.replace(cfg, excess_attenuation=0.0)
    assert not sim_lesion.shadow_loss_db(lesion, no_shadow, sim_config.PROBES["L11-5v"], 7.6e6, np.array([x]),
                                  np.array([z]), tilt_deg, samples=64).any()


def test_plane_wave_tilt_convention_matches_pymust_delays():
    """ray_origins assumes a positive tilt fires the +x elements last (wave heads to +x)."""
    conf = sim_config.PROBES["L11-5v"]
    param = sim_acoustics.probe_param(conf, sim_config.SimulationConfig())
    delays = sim_acoustics.transmit_delays(conf, param, 5.0)[0]
    assert delays[-1] > delays[0] and np.all(np.diff(delays) > 0)
    ox, _ = sim_lesion.ray_origins(conf, np.array([0.0]), np.array([0.02]), 5.0)
    assert ox[0] < 0  # the ray reaching x = 0 entered the tissue at negative x


@pytest.mark.parametrize("probe", PROBES)
def test_sampled_lesions_have_their_class_shape_and_fit_the_image(probe):
    conf = sim_config.PROBES[probe]
    x, z = sim_phantom.pixel_centres(conf, 96)
    for seed in range(40):
        for label, check in (("benign", lambda a: a < 0.85), ("malignant", lambda a: a > 1.1)):
            lesion = sim_lesion.sample_lesion(label, np.random.default_rng(seed), conf, sim_config.LESIONS[label])
            mask = lesion.contains(x, z)
            assert check(bbox_aspect(mask)), (label, seed, bbox_aspect(mask))
            # inside the image, not touching its borders
            assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
            assert 0.02 < mask.mean() < 0.2


def test_malignant_outline_is_irregular_and_benign_is_smooth():
    """Spiculation: the outline radius varies much more around a malignant lesion."""
    probe = sim_config.PROBES["L11-5v"]
    rough = []
    for label in ("benign", "malignant"):
        ratios = []
        for seed in range(20):
            rng = np.random.default_rng(seed)
            lesion = sim_lesion.sample_lesion(label, rng, probe, sim_config.LESIONS[label])
            d = np.abs(np.diff(np.r_[lesion.radii, lesion.radii[0]]))
            ratios.append(d.sum() / lesion.radii.mean())  # total variation / mean radius
        rough.append(np.median(ratios))
    assert rough[1] > 2 * rough[0]


# --------------------------------------------------------------------------------------
# image formation helpers
# --------------------------------------------------------------------------------------
def test_block_mean_matches_a_loop(rng):
    image = rng.random((12, 18))
    out = sim_phantom.block_mean(image, 3)
    ref = np.array([[image[3 * i:3 * i + 3, 3 * j:3 * j + 3].mean() for j in range(6)]
                    for i in range(4)])
    np.testing.assert_allclose(out, ref)


def test_tgc_flattens_a_depth_gradient_and_ignores_the_lesion(rng):
    n = 64
    depth_trend = np.linspace(-20, 5, n)[:, None]  # dB, e.g. attenuation
    db = depth_trend + rng.normal(0, 5.6, (n, n))
    lesion = np.zeros((n, n), bool)
    lesion[20:40, 10:40] = True
    db[lesion] -= 20  # a dark lesion must not bias the compensation
    profile = sim_phantom.tgc_profile_db(db, ~lesion, smoothing=0.04)
    residual = profile - depth_trend[:, 0]
    assert np.abs(residual[4:-4]).max() < 2.0  # within the speckle noise of a row median
    assert abs(residual.mean()) < 0.5


def test_log_compress_maps_tissue_to_its_grey_and_clips():
    db = np.array([0.0, -25.0, -50.0, -80.0, 10.0, 40.0])
    out = sim_phantom.log_compress(db, dynamic_range_db=50.0, tissue_grey=0.5)
    np.testing.assert_allclose(out, [0.5, 0.0, 0.0, 0.0, 0.7, 1.0], atol=1e-7)
    assert out.dtype == np.float32


def test_scatterer_count_follows_the_genscat_density_and_the_cap():
    spacing, area = 0.15e-3, (30e-3) ** 2
    # genscat: jittered grid of step spacing / sqrt(2/5) -> 0.4 scatterers per spacing^2
    genscat_step = spacing / np.sqrt(2 / 5)
    assert sim_acoustics.scatterer_count(area, spacing, 512, 6.0) == round(area / genscat_step ** 2)
    assert sim_acoustics.scatterer_count(area, spacing, 16, 6.0) == 6 * 16 * 16
    assert sim_acoustics.scatterer_count(area, np.sqrt(2) * spacing, 512, 6.0) == round(
        area * 0.2 / spacing ** 2)


def test_shortest_wavelength_of_the_probes():
    pm = sim_acoustics._pymust()
    p = pm.getparam("L11-5v")
    assert sim_acoustics.shortest_wavelength(p) == pytest.approx(1540 / (7.6e6 * (1 + 0.77 / 2)))


def test_pixel_centres_span_the_field_of_view():
    conf = sim_config.PROBES["P4-2v"]
    x, z = sim_phantom.pixel_centres(conf, 8)
    step = conf.fov_width / 8
    assert x[0, 0] == pytest.approx(-conf.fov_width / 2 + step / 2)
    assert x[0, -1] == pytest.approx(conf.fov_width / 2 - step / 2)
    assert z[0, 0] == pytest.approx(conf.fov_top + step / 2)
    assert z[-1, 0] == pytest.approx(conf.fov_top + conf.fov_width - step / 2)


def test_item_names_and_seeds_are_unique_across_probes_classes_and_indices(tmp_path):
    items = sim_set.plan_items(tmp_path, ["L11-5v", "P4-2v"], ["benign", "malignant"], 3, 0, 32)
    assert len({it.image_path for it in items}) == 12
    assert len({it.seed for it in items}) == 12
    assert items[0].image_path == tmp_path / "benign" / "l11-5v_benign_000.png"
    assert items[0].mask_path == tmp_path / "benign" / "l11-5v_benign_000_mask.png"
    again = sim_set.plan_items(tmp_path, ["P4-2v"], ["malignant"], 3, 0, 32)
    assert [it.seed for it in again] == [it.seed for it in items if it.probe == "P4-2v"
                                         and it.label == "malignant"]


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(label="cyst"), "unknown class"),
    (dict(probe="C5-2v"), "unknown probe"),
    (dict(size=8), "size"),
    (dict(size=32.0), "size"),
    (dict(seed=-1), "seed"),
])
def test_simulate_phantom_rejects_bad_arguments(kwargs, match):
    args = dict(label="benign", probe="P4-2v", seed=0, size=32) | kwargs
    with pytest.raises(ValueError, match=match):
        sim_phantom.simulate_phantom(**args)


@pytest.mark.parametrize("argv, match", [
    (["--probe", "C5-2v"], "unknown probe"),
    (["--n", "0"], "--n must be >= 1"),
    (["--size", "8"], "--size"),
    (["--classes", "benign,cyst"], "--classes"),
    (["--seed", "-3"], "--seed"),
    (["--jobs", "0"], "--jobs"),
    (["--n", "two"], "invalid int"),
])
def test_cli_rejects_bad_arguments_with_one_line_and_exit_2(tmp_path, capsys, argv, match):
    base = {"--out": str(tmp_path / "o"), "--n": "1", "--probe": "P4-2v", "--seed": "0"}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    code = simulate_cli.main([tok for kv in base.items() for tok in kv])
    err = capsys.readouterr().err
    assert code == 2
    assert match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_rejects_an_out_path_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert simulate_cli.main(["--out", str(target), "--n", "1", "--probe", "P4-2v", "--seed", "0"]) == 2
    assert str(target) in capsys.readouterr().err


def test_cli_bad_probe_exits_2_without_traceback_in_a_real_process(tmp_path):
    proc = run_module("tf_usaug.simulate", "--out", tmp_path, "--n", "1", "--probe", "X1",
                      "--seed", "0", check=False, timeout=120)
    assert proc.returncode == 2
    assert "unknown probe" in proc.stderr and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------------------
# PyMUST phantoms: CLI on a tiny grid, determinism, class properties
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    run_module("tf_usaug.simulate", "--out", out, "--n", "1", "--probe", "P4-2v",
               "--seed", "7", "--size", "32", timeout=600)
    return out


def test_cli_writes_busi_layout_pairs(tiny_run):
    for label in ("benign", "malignant"):
        folder = tiny_run / label
        assert sorted(p.name for p in folder.iterdir()) == [f"p4-2v_{label}_000.png",
                                                            f"p4-2v_{label}_000_mask.png"]
        image = read_png(folder / f"p4-2v_{label}_000.png")
        mask = read_png(folder / f"p4-2v_{label}_000_mask.png")
        assert image.dtype == np.uint8 and image.shape == (32, 32)
        assert mask.dtype == np.uint8 and mask.shape == (32, 32)
        assert set(np.unique(mask)) == {0, 255}
        assert image.std() > 10  # speckle, not a flat image


def test_cli_is_deterministic_and_resumable(tiny_run, tmp_path, capsys):
    # same seed in a fresh folder, two worker processes this time -> the same bytes
    assert simulate_cli.main(["--out", str(tmp_path), "--n", "1", "--probe", "p4-2v", "--seed", "7",
                     "--size", "32", "--jobs", "2"]) == 0
    for label in ("benign", "malignant"):
        for suffix in ("", "_mask"):
            name = f"{label}/p4-2v_{label}_000{suffix}.png"
            assert (tmp_path / name).read_bytes() == (tiny_run / name).read_bytes(), name
    # rerun: everything is skipped, nothing rewritten, no temporary files left behind
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")}
    capsys.readouterr()
    assert simulate_cli.main(["--out", str(tmp_path), "--n", "1", "--probe", "P4-2v", "--seed", "7",
                     "--size", "32"]) == 0
    assert "2 already written" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")} == stamps
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp")]


def test_a_different_seed_gives_a_different_phantom():
    a, ma = sim_phantom.simulate_phantom("benign", "P4-2v", seed=1, size=24)
    b, mb = sim_phantom.simulate_phantom("benign", "P4-2v", seed=2, size=24)
    assert not np.array_equal(ma, mb) and not np.array_equal(a, b)


@pytest.fixture(scope="module")
def fresh_phantoms() -> dict:
    """Small phased-array phantoms simulated by the current code (fast: 64 elements)."""
    return {label: sim_phantom.simulate_phantom(label, "P4-2v", seed=5, size=64)
            for label in ("benign", "malignant")}


def test_phantom_image_and_mask_types(fresh_phantoms):
    for image, mask in fresh_phantoms.values():
        assert image.dtype == np.float32 and image.shape == (64, 64)
        assert mask.dtype == bool and mask.shape == (64, 64) and mask.any()
        assert image.min() >= 0.0 and image.max() <= 1.0
        # log-compressed speckle fills the range: not saturated, not flat
        assert 0.3 < np.median(image[~mask]) < 0.8 and image.std() > 0.08


def test_fresh_lesions_are_dark_and_have_their_class_shape(fresh_phantoms):
    for label, (image, mask) in fresh_phantoms.items():
        inside, ring = lesion_vs_ring(image, mask)
        assert inside < ring - 0.1, (label, inside, ring)
    assert bbox_aspect(fresh_phantoms["benign"][1]) < 0.9
    assert bbox_aspect(fresh_phantoms["malignant"][1]) > 1.1


def test_fresh_malignant_lesion_casts_a_shadow(fresh_phantoms):
    below, beside = shadow_vs_beside(*fresh_phantoms["malignant"])
    assert below < beside - 0.05, (below, beside)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 4])
def test_linear_probe_phantoms_have_their_class_properties(seed):
    benign, bmask = sim_phantom.simulate_phantom("benign", "L11-5v", seed=seed, size=64)
    malignant, mmask = sim_phantom.simulate_phantom("malignant", "L11-5v", seed=seed, size=64)
    assert lesion_vs_ring(benign, bmask)[0] < lesion_vs_ring(benign, bmask)[1] - 0.1
    below, beside = shadow_vs_beside(malignant, mmask)
    assert below < beside - 0.1
    assert bbox_aspect(bmask) < 0.9 < 1.1 < bbox_aspect(mmask)


def test_pymust_numpy1_shim_only_adds_concat():
    pm = sim_acoustics._pymust()
    simus_np = importlib.import_module("pymust.simus").np
    assert simus_np.concat([np.ones(1), np.zeros(1)]).tolist() == [1.0, 0.0]
    assert simus_np.sqrt is np.sqrt and pm.simus is not None


# --------------------------------------------------------------------------------------
# the committed demo data
# --------------------------------------------------------------------------------------
def demo_pairs(demo_dir: Path, label: str) -> list[tuple[Path, Path]]:
    images = sorted(p for p in (demo_dir / label).glob("*.png") if not p.stem.endswith("_mask"))
    return [(p, p.with_name(p.stem + "_mask.png")) for p in images]


def load_pair(pair) -> tuple[np.ndarray, np.ndarray]:
    image, mask = (read_png(p) for p in pair)
    return image.astype(np.float32) / 255.0, mask > 127


def test_demo_data_has_32_images_with_masks(demo_dir):
    assert (demo_dir / "README.md").is_file()
    total = 0
    for label in ("benign", "malignant"):
        pairs = demo_pairs(demo_dir, label)
        for probe in ("l11-5v", "p4-2v"):
            assert len([p for p, _ in pairs if p.name.startswith(probe + "_")]) == 8
        for image_path, mask_path in pairs:
            image, mask = read_png(image_path), read_png(mask_path)
            assert image.dtype == np.uint8 and image.shape == (128, 128)
            assert mask.shape == image.shape and set(np.unique(mask)) == {0, 255}
        total += len(pairs)
        all_files = list((demo_dir / label).iterdir())
        assert len(all_files) == 2 * len(pairs)  # nothing else (no temporary files)
    assert total == 32
    size = sum(p.stat().st_size for p in demo_dir.rglob("*"))
    assert size < 5 * 2 ** 20


def test_demo_lesions_are_darker_than_the_tissue_around_them(demo_dir):
    for label in ("benign", "malignant"):
        for pair in demo_pairs(demo_dir, label):
            inside, ring = lesion_vs_ring(*load_pair(pair))
            assert inside < ring - 0.1, (pair[0].name, inside, ring)


def test_demo_benign_wider_than_tall_malignant_taller_than_wide(demo_dir):
    for pair in demo_pairs(demo_dir, "benign"):
        assert bbox_aspect(load_pair(pair)[1]) < 0.9, pair[0].name
    for pair in demo_pairs(demo_dir, "malignant"):
        assert bbox_aspect(load_pair(pair)[1]) > 1.1, pair[0].name


def test_demo_malignant_lesions_cast_posterior_shadows(demo_dir):
    for pair in demo_pairs(demo_dir, "malignant"):
        below, beside = shadow_vs_beside(*load_pair(pair))
        assert below < beside - 0.05, (pair[0].name, below, beside)


def test_demo_benign_lesions_cast_no_shadow(demo_dir):
    """The shadow test above is specific: without excess attenuation there is none."""
    gaps = [np.subtract(*shadow_vs_beside(*load_pair(pair))[::-1])
            for pair in demo_pairs(demo_dir, "benign")]
    assert abs(float(np.mean(gaps))) < 0.05


def test_demo_masks_line_up_with_the_dark_lesions(demo_dir):
    """No offset between mask and lesion: within 1 px, or 3 px laterally for the phased
    array, whose lateral resolution is 1-2 mm (3-6 px)."""
    for pair in demo_pairs(demo_dir, "benign"):
        dy, dx = best_mask_shift(*load_pair(pair))
        lateral = 3 if pair[0].name.startswith("p4-2v") else 1
        assert abs(dy) <= 1 and abs(dx) <= lateral, (pair[0].name, dy, dx)


def test_demo_probes_have_different_speckle(demo_dir):
    """The two probes are two 'sources': the phased array's speckle is much coarser."""
    def lateral_corr_length(image):
        tissue = image[: image.shape[0] // 6]  # rows above every lesion: speckle + texture
        x = tissue - tissue.mean(axis=1, keepdims=True)
        ac = [np.mean(x[:, :-k] * x[:, k:]) / np.mean(x * x) for k in range(1, 12)]
        return 1 + int(np.argmax(np.array(ac) < 0.5))

    lengths = {}
    for probe in ("l11-5v", "p4-2v"):
        pairs = [pp for pp in demo_pairs(demo_dir, "benign") if pp[0].name.startswith(probe)]
        lengths[probe] = np.median([lateral_corr_length(load_pair(pp)[0]) for pp in pairs])
    assert lengths["p4-2v"] >= lengths["l11-5v"] + 1, lengths
