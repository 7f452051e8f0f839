"""tf_usaug.metrics.transplant against hand-computed values and a brute-force dilation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tf_usaug.metrics.transplant import (RING_WIDTH_FRACTION, cnr, cnr_change, dilate,
                                         label_preservation, lesion_cnr, relative_change,
                                         ring_mask, ring_width)


def brute_force_dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Every pixel whose centre lies within ``radius`` of some mask pixel's centre."""
    ys, xs = np.nonzero(mask)
    yy, xx = np.mgrid[:mask.shape[0], :mask.shape[1]]
    out = np.zeros(mask.shape, bool)
    for y, x in zip(ys, xs):
        out |= (yy - y) ** 2 + (xx - x) ** 2 <= radius ** 2
    return out


def square(size: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_label_preservation_by_hand():
    assert label_preservation([0, 1, 1, 0], [0, 1, 0, 0]) == pytest.approx(3 / 4)
    assert label_preservation([2, 2], [2, 2]) == 1.0
    assert label_preservation([], []) is None
    with pytest.raises(ValueError):
        label_preservation([0, 1], [0])


def test_ring_width_follows_the_equivalent_diameter():
    assert RING_WIDTH_FRACTION == 0.25
    # area 16: d_eq = 2 sqrt(16 / pi) = 4.51 -> 0.25 d_eq = 1.13 -> 1
    assert ring_width(square(20, 0, 4, 0, 4)) == 1
    # area 100: d_eq = 11.28 -> 2.82 -> 3
    assert ring_width(square(20, 5, 15, 5, 15)) == 3
    # area 1: 0.28 -> at least one pixel
    assert ring_width(square(5, 2, 3, 2, 3)) == 1
    assert ring_width(np.zeros((5, 5), bool)) == 0
    # area 400: d_eq = 22.57 -> 5.64 -> 6; with fraction 0.5 -> 11.28 -> 11
    assert ring_width(square(40, 0, 20, 0, 20)) == 6
    assert ring_width(square(40, 0, 20, 0, 20), fraction=0.5) == 11


def test_dilation_is_a_euclidean_disc():
    point = square(9, 4, 5, 4, 5)
    assert dilate(point, 1).sum() == 5       # the 4-neighbours; diagonals lie at sqrt 2
    assert dilate(point, 2).sum() == 13      # + (1, 1) x4 and (2, 0) x4, not (2, 1) (sqrt 5)
    assert dilate(point, 0).sum() == 1
    rng = np.random.default_rng(0)
    for radius in (1, 2, 3, 5, 8):
        mask = rng.random((23, 31)) < 0.02
        np.testing.assert_array_equal(dilate(mask, radius), brute_force_dilate(mask, radius))


def test_ring_of_a_square_by_hand_and_clipped_to_the_frame():
    lesion = square(40, 15, 25, 15, 25)                 # 10 x 10, width 3 (see above)
    ring = ring_mask(lesion)
    # dilated: the square, four 10 x 3 sides, four rounded corners of the points (dx, dy)
    # >= 1 with dx^2 + dy^2 <= 9: (1,1) (1,2) (2,1) (2,2) -> 100 + 120 + 16
    assert ring.sum() == 236 - 100
    assert not (ring & lesion).any()
    corner = square(6, 0, 1, 0, 1)                      # a pixel in the corner, width 1
    np.testing.assert_array_equal(np.argwhere(ring_mask(corner)), [[0, 1], [1, 0]])
    assert ring_mask(lesion, width=1).sum() == 40       # four sides of 10, no corners


def test_cnr_by_hand():
    image = np.array([[0.2, 0.4, 0.7, 0.0],
                      [0.2, 0.4, 0.9, 0.0]])
    inside = np.array([[1, 1, 0, 0], [1, 1, 0, 0]], bool)    # mean 0.3, var 0.01
    outside = np.array([[0, 0, 1, 0], [0, 0, 1, 0]], bool)   # mean 0.8, var 0.01
    assert cnr(image, inside, outside) == pytest.approx(0.5 / math.sqrt(0.02))
    assert cnr(image, outside, inside) == cnr(image, inside, outside)
    assert cnr(image, inside, np.zeros_like(inside)) is None
    assert cnr(np.ones((2, 4)), inside, outside) is None     # no noise, no ratio
    with pytest.raises(ValueError):
        cnr(image, inside[:, :3], outside)


def checkerboard_lesion(amplitude: float) -> tuple[np.ndarray, np.ndarray]:
    """Tissue 0.6 everywhere, a 10 x 10 lesion of 0.2 +- amplitude (checkerboard)."""
    lesion = square(40, 15, 25, 15, 25)
    yy, xx = np.mgrid[:40, :40]
    image = np.full((40, 40), 0.6)
    image[lesion] = (0.2 + amplitude * np.where((yy + xx) % 2, 1.0, -1.0))[lesion]
    return image, lesion


def test_lesion_cnr_and_its_change_by_hand():
    content, mask = checkerboard_lesion(0.1)   # |0.2 - 0.6| / sqrt(0.01 + 0) = 4
    assert lesion_cnr(content, mask) == pytest.approx(4.0)
    output, _ = checkerboard_lesion(0.05)      # half the noise: CNR 8
    assert lesion_cnr(output, mask) == pytest.approx(8.0)
    change = cnr_change(output, mask, content, mask)
    assert change["content_cnr"] == pytest.approx(4.0)
    assert change["output_cnr"] == pytest.approx(8.0)
    assert change["relative_change"] == pytest.approx(1.0)
    assert lesion_cnr(content, np.zeros_like(mask)) is None
    assert lesion_cnr(content, np.ones_like(mask)) is None   # no ring inside the frame
    assert cnr_change(output, np.zeros_like(mask), content, mask)["relative_change"] is None


def test_relative_change_by_hand():
    assert relative_change(3.0, 2.0) == pytest.approx(0.5)
    assert relative_change(1.0, 2.0) == pytest.approx(-0.5)
    assert relative_change(1.0, -2.0) == pytest.approx(1.5)
    assert relative_change(None, 2.0) is None
    assert relative_change(1.0, 0.0) is None
