"""tf_usaug.data.fit: pad / crop / stretch placements against hand-computed values and resize."""
from __future__ import annotations

import numpy as np
import pytest

from tf_usaug.data.fit import cut_output, fit_to_square, placement, used_box
from tf_usaug.data.image_io import resize
from tf_usaug.errors import UsageError


def test_pad_keeps_the_aspect_ratio_and_centres_the_region():
    place = placement((60, 120), 64, "pad")           # wide: 64 px wide, 32 high
    assert place.inner == (16, 48, 0, 64) and place.output_shape == (32, 64)
    assert place.used == (0, 60, 0, 120)
    tall = placement((100, 30), 40, "pad")             # tall: 40 high, round(12) wide
    assert tall.inner == (0, 40, 14, 26) and tall.output_shape == (40, 12)


def test_crop_takes_the_centred_square_and_stretch_the_whole_region():
    assert placement((60, 120), 64, "crop").used == (0, 60, 30, 90)
    assert placement((61, 20), 64, "crop").used == (20, 40, 0, 20)
    stretch = placement((60, 120), 64, "stretch")
    assert stretch.inner == (0, 64, 0, 64) and stretch.used == (0, 60, 0, 120)


@pytest.mark.parametrize("fit", ["pad", "crop", "stretch"])
def test_fit_then_cut_equals_resizing_the_used_part(fit, rng):
    region = rng.random((45, 90)).astype(np.float32)
    square, place = fit_to_square(region, 32, fit)
    assert square.shape == (32, 32) and square.dtype == np.float32
    uy0, uy1, ux0, ux1 = place.used
    expected = resize(region[uy0:uy1, ux0:ux1], place.output_shape)
    np.testing.assert_array_equal(cut_output(square, place), expected)
    if fit == "pad":  # the padding is black and the cut removes all of it
        y0, y1, x0, x1 = place.inner
        outside = np.ones((32, 32), bool)
        outside[y0:y1, x0:x1] = False
        assert outside.any() and not square[outside].any()


def test_masks_stay_binary_and_aligned_with_their_image(rng):
    image = np.zeros((50, 100), np.float32)
    image[10:30, 40:70] = 1.0
    mask = image > 0.5
    square, place = fit_to_square(image, 40, "pad")
    mask_sq, mask_place = fit_to_square(mask, 40, "pad", kind="mask")
    assert mask_place == place and mask_sq.dtype == bool
    # where the image is fully inside the rectangle, so is the mask (and vice versa)
    assert np.all(mask_sq[square > 0.99]) and not np.any(mask_sq[square < 0.01])


def test_used_box_is_in_original_pixels():
    place = placement((60, 120), 64, "crop")
    assert used_box((100, 160, 200, 320), place) == (100, 160, 230, 290)
    assert used_box((5, 65, 7, 127), placement((60, 120), 64, "pad")) == (5, 65, 7, 127)


def test_bad_fit_and_bad_shapes_are_clear_errors():
    with pytest.raises(UsageError, match="--fit 'square'"):
        placement((10, 10), 8, "square")
    with pytest.raises(ValueError, match="2-D"):
        fit_to_square(np.zeros((4, 4, 3)), 8)
    with pytest.raises(ValueError, match="empty region"):
        placement((0, 10), 8)
