"""Traditional augmentation: geometry checked against exact numpy operations."""
import numpy as np
import pytest

from tf_usaug.data.transforms import (TraditionalConfig, apply_geometric, elastic_field,
                                      random_geometric)

IDENTITY = dict(rotation_deg=0.0, scale=1.0, shift_y=0.0, shift_x=0.0,
                elastic_alpha=0.0, elastic_sigma=0.08, elastic_seed=0)


def test_identity_params_leave_image_and_mask_unchanged(rng):
    img = rng.random((33, 41)).astype(np.float32)
    mask = rng.random((33, 41)) > 0.5
    out, out_mask = apply_geometric(img, mask, IDENTITY)
    np.testing.assert_allclose(out, img, atol=1e-6)
    assert np.array_equal(out_mask, mask)


def test_integer_translation_equals_shifted_array(rng):
    img = rng.random((20, 24)).astype(np.float32)
    out, _ = apply_geometric(img, None, dict(IDENTITY, shift_y=2.0, shift_x=-3.0))
    expected = np.zeros_like(img)
    expected[2:, :-3] = img[:-2, 3:]          # content moves down 2, left 3; zeros come in
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_rotation_by_90_degrees_equals_rot90(rng):
    img = rng.random((16, 16)).astype(np.float32)
    mask = rng.random((16, 16)) > 0.5
    out, out_mask = apply_geometric(img, mask, dict(IDENTITY, rotation_deg=90.0))
    np.testing.assert_allclose(out, np.rot90(img), atol=1e-5)   # counter-clockwise on screen
    assert np.array_equal(out_mask, np.rot90(mask))


def test_scaling_about_centre_doubles_a_centred_square():
    img = np.zeros((64, 64), np.float32)
    img[24:40, 24:40] = 1.0                                    # 16x16 square, centred
    out, _ = apply_geometric(img, None, dict(IDENTITY, scale=2.0))
    area = (out > 0.5).sum()
    assert abs(area - 32 * 32) <= 2 * 32 + 4                   # 32x32 up to edge rounding


def test_mask_stays_aligned_with_image_under_random_transform():
    yy, xx = np.mgrid[0:96, 0:96]
    mask = ((yy - 50) ** 2 / 15 ** 2 + (xx - 44) ** 2 / 25 ** 2) <= 1.0
    img = mask.astype(np.float32)
    for seed in range(5):
        out, out_mask, params = random_geometric(img, mask, np.random.default_rng(seed))
        inter = np.logical_and(out > 0.5, out_mask).sum()
        union = np.logical_or(out > 0.5, out_mask).sum()
        assert inter / union > 0.95, params
        assert out_mask.sum() > 0.5 * mask.sum()


def test_random_transform_is_reproducible_and_varies_with_seed(rng):
    img = rng.random((40, 40)).astype(np.float32)
    a = random_geometric(img, None, np.random.default_rng(7))
    b = random_geometric(img, None, np.random.default_rng(7))
    c = random_geometric(img, None, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2] == b[2]
    assert not np.allclose(a[0], c[0])
    assert 0.0 <= a[0].min() and a[0].max() <= 1.0


def test_params_respect_configured_ranges():
    cfg = TraditionalConfig(max_rotation_deg=5, max_translation=0.05, scale_range=(0.95, 1.05))
    for seed in range(20):
        _, _, p = random_geometric(np.zeros((50, 60), np.float32), None,
                                   np.random.default_rng(seed), cfg)
        assert abs(p["rotation_deg"]) <= 5
        assert 0.95 <= p["scale"] <= 1.05
        assert abs(p["shift_y"]) <= 0.05 * 50 and abs(p["shift_x"]) <= 0.05 * 60


@pytest.mark.parametrize("alpha", [0.0, 0.02, 0.05])
def test_elastic_field_amplitude_and_smoothness(alpha):
    dy, dx = elastic_field((64, 64), alpha, 0.08, np.random.default_rng(0))
    assert np.abs(dy).max() == pytest.approx(alpha * 64, rel=1e-4, abs=1e-6)
    if alpha:
        # smooth: neighbouring displacements differ far less than the amplitude
        assert np.abs(np.diff(dx, axis=1)).max() < 0.2 * alpha * 64
