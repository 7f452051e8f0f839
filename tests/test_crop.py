"""tf_usaug.data.crop: crop_to_scan on hand-made screenshots and pydicom's ultrasound frames;
brightness bars. (The detector itself: tests/test_scan_region.py.)"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tf_usaug.data.crop import crop_to_scan, find_brightness_bars, remove_brightness_bars
from tf_usaug.data.image_io import read_image

pydicom = pytest.importorskip("pydicom")
import pydicom.data  # noqa: E402

PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"


def speckle(shape, rng) -> np.ndarray:
    """Log-compressed, slightly smoothed Rayleigh speckle in [0, 1] (B-mode-like)."""
    amplitude = cv2.GaussianBlur(rng.rayleigh(1.0, shape).astype(np.float32), (0, 0), 1.0)
    return np.clip(np.log1p(3 * amplitude) / np.log1p(9), 0, 1).astype(np.float32)


def add_annotations(img: np.ndarray) -> None:
    """Scanner-style text in three corners and a thin UI line (white on black)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "GE LOGIQ E9 12cm", (5, 15), font, 0.4, 1.0, 1)
    cv2.putText(img, "MI 1.1 TIS 0.4", (300, 15), font, 0.35, 1.0, 1)
    cv2.putText(img, "LT BREAST 2 o'clock", (20, 292), font, 0.45, 1.0, 1)
    img[25, 100:330] = 0.6


def sector_screenshot(seed: int, shape=(300, 400)):
    """Convex-probe sector on black, text, a grey bar on the left, depth ticks on the right.

    Returns the image, the sector's own bounding box and the bar's (y0, y1, x0, x1).
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    radius = np.hypot(yy - 30, xx - 210)
    angle = np.degrees(np.arctan2(xx - 210, yy - 30))
    sector = (radius > 40) & (radius < 250) & (np.abs(angle) < 35)
    img = np.zeros(shape, np.float32)
    img[sector] = (speckle(shape, rng) * np.exp(-radius / 400))[sector]
    add_annotations(img)
    bar = (60, 240, 10, 22)
    img[bar[0]:bar[1], bar[2]:bar[3]] = np.linspace(1, 0, bar[1] - bar[0])[:, None]
    ys, xs = np.nonzero(sector)
    for y in range(70, 260, 20):  # depth ticks 4 px right of the sector's widest point
        img[y, xs.max() + 4: xs.max() + 10] = 1.0
    return img, (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1), bar


def linear_screenshot(seed: int, gap: int):
    """Linear-probe rectangle with the grey bar only ``gap`` pixels to its left."""
    rng = np.random.default_rng(seed)
    img = np.zeros((300, 400), np.float32)
    box = (40, 260, 60, 340)
    img[box[0]:box[1], box[2]:box[3]] = speckle((220, 280), rng)
    img[box[0]:box[1], box[2] - gap - 12: box[2] - gap] = np.linspace(1, 0, 220)[:, None]
    add_annotations(img)
    return img, box


def assert_box_close(box, expected, tol):
    assert all(abs(int(a) - int(b)) <= tol for a, b in zip(box, expected)), (box, expected)


# ----------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sector_screenshot_cropped_to_sector_box(seed):
    img, truth, _ = sector_screenshot(seed)
    cropped, box = crop_to_scan(img)
    assert_box_close(box, truth, tol=3)
    y0, y1, x0, x1 = box
    np.testing.assert_array_equal(cropped, img[y0:y1, x0:x1])
    assert not np.shares_memory(cropped, img)


@pytest.mark.parametrize("gap", [1, 3, 6])
def test_grey_bar_beside_a_linear_scan_is_left_out(gap):
    img, truth = linear_screenshot(seed=gap, gap=gap)
    assert_box_close(crop_to_scan(img)[1], truth, tol=2)


def test_bar_touching_the_scan_is_left_out():
    """A grey bar 1 px from the scan: smooth, so it is no evidence of speckle."""
    img, truth = linear_screenshot(seed=0, gap=1)
    assert_box_close(crop_to_scan(img)[1], truth, tol=2)


@pytest.mark.parametrize("factor", [0.75, 1.5, 2.0])
def test_crop_is_scale_invariant(factor):
    """Down- and bicubic upscaled copies (a bilinear upscale smooths speckle more: see the
    limits in docs/scan_region.md)."""
    img, truth, _ = sector_screenshot(0)
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    scaled = np.clip(cv2.resize(img, None, fx=factor, fy=factor, interpolation=interp), 0, 1)
    assert_box_close(crop_to_scan(scaled)[1], tuple(round(factor * v) for v in truth),
                     tol=3 * factor)


def test_no_scan_keeps_the_whole_image():
    text_only = np.zeros((200, 300), np.float32)
    add_annotations(text_only)
    cropped, box = crop_to_scan(text_only)
    assert box == (0, 200, 0, 300) and cropped.shape == (200, 300)


def test_full_frame_scan_is_kept_whole():
    img = speckle((120, 160), np.random.default_rng(5))
    assert_box_close(crop_to_scan(img)[1], (0, 120, 0, 160), tol=1)


def test_find_and_remove_brightness_bar():
    img, _, (by0, by1, bx0, bx1) = sector_screenshot(0)
    bars = find_brightness_bars(img)
    assert len(bars) == 1
    y0, y1, x0, x1 = bars[0]
    assert bx0 <= x0 and x1 <= bx1 and x1 - x0 >= bx1 - bx0 - 2  # interior columns
    assert abs(y0 - by0) <= 2 and by1 - 6 <= y1 <= by1  # the black end of the ramp may go
    cleaned, boxes = remove_brightness_bars(img)
    assert boxes == bars
    assert cleaned[by0:by1, bx0:bx1].max() <= 0.02  # all but its black end (< 0.02) blanked
    outside = np.ones(img.shape, bool)
    outside[y0 - 2:y1 + 2, x0 - 2:x1 + 2] = False
    np.testing.assert_array_equal(cleaned[outside], img[outside])


def test_speckle_and_horizontal_ramps_are_not_bars():
    assert find_brightness_bars(speckle((200, 200), np.random.default_rng(0))) == []
    horizontal = np.zeros((200, 300), np.float32)
    horizontal[50:62, 40:240] = np.linspace(0, 1, 200)[None, :]
    assert find_brightness_bars(horizontal) == []
    same, boxes = remove_brightness_bars(horizontal)
    assert boxes == [] and same is horizontal


def test_bad_input():
    with pytest.raises(ValueError, match="grey HxW"):
        crop_to_scan(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="grey HxW"):
        crop_to_scan(np.zeros((2, 50), np.float32))


# ----------------------------------------------------------------------------- pydicom's US


def us_frame(name: str) -> np.ndarray:
    path = PYDICOM_FILES / name
    if not path.exists():
        pytest.skip(f"{name} not shipped with this pydicom")
    return read_image(path)[0]


def lit_rectangle(img: np.ndarray, level: float = 0.03, share: float = 0.8):
    """Independent box of a rectangular (linear-probe) scan: the rows where most of the
    central half is lit, then the columns lit over most of those rows."""
    h, w = img.shape
    lit = img > level
    rows = np.flatnonzero(lit[:, w // 4: 3 * w // 4].mean(axis=1) > share)
    cols = np.flatnonzero(lit[rows[0]: rows[-1] + 1].mean(axis=0) > share)
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def test_linear_probe_screenshot_matches_its_lit_rectangle():
    """examples_jpeg2k.dcm (640x480 GE screenshot): text above and below, grey and colour
    bars on both sides; seen by eye: scan at rows 108-337, columns 14-622. Depth ticks and
    'PWR' labels touching the scan's side edges may add up to 4 px."""
    try:
        img = us_frame("examples_jpeg2k.dcm")
    except Exception as exc:  # no JPEG 2000 decoder here
        pytest.skip(f"cannot decode examples_jpeg2k.dcm: {exc}")
    _, box = crop_to_scan(img)
    assert_box_close(box, lit_rectangle(img), tol=4)


@pytest.mark.parametrize("name,inside,outside", [
    # (row, col) points read off the images: inside = brightest speckle texture of the scan,
    # outside = annotations (text, bars, toolbars, measurement marks).
    ("examples_palette.dcm", [(100, 460), (80, 350), (80, 570)],
     [(40, 420), (15, 40), (100, 40), (150, 785)]),  # (290, 460) and (70, 318): marks
    # inside the fan's box: the fan runs to the frame's last row (tests/test_scan_region.py)
    ("examples_ybr_color.dcm", [(130, 160), (185, 150), (60, 170)],
     [(8, 20), (20, 305), (100, 305), (233, 160)]),
    ("examples_rgb_color.dcm", [(110, 160), (60, 100), (160, 300)],
     [(30, 20), (44, 290), (184, 150), (225, 80), (232, 260)]),
])
def test_pydicom_ultrasound_crop_keeps_scan_drops_annotations(name, inside, outside):
    img = us_frame(name)
    cropped, (y0, y1, x0, x1) = crop_to_scan(img)
    assert cropped.size < 0.7 * img.size
    for y, x in inside:
        assert y0 <= y < y1 and x0 <= x < x1, (name, "lost", (y, x), (y0, y1, x0, x1))
    for y, x in outside:
        assert not (y0 <= y < y1 and x0 <= x < x1), (name, "kept", (y, x), (y0, y1, x0, x1))
