"""tf_usaug.data.image_io: exact value scaling per format and bit depth, luminance, DICOM, bad input."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from tf_usaug.data.image_io import (IMAGE_EXTENSIONS, LUMA_WEIGHTS, ImageError, is_image_file,
                                    luminance, read_frames,
                                    read_image, read_mask,
                                    resize)

pydicom = pytest.importorskip("pydicom")
import pydicom.data  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import (ExplicitVRLittleEndian, SecondaryCaptureImageStorage,  # noqa: E402
                         generate_uid)

PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"
BT601 = np.array([0.299, 0.587, 0.114])


def pydicom_file(name: str) -> Path:
    """A DICOM shipped inside pydicom (offline); skip when this pydicom lacks it."""
    path = PYDICOM_FILES / name
    if not path.exists():
        pytest.skip(f"pydicom test file {name} not shipped with this pydicom")
    return path


def luma(rgb: np.ndarray, full_scale: float) -> np.ndarray:
    """Independent reference: BT.601 luma in float64 of integer RGB scaled by full_scale."""
    return (rgb.astype(np.float64) / full_scale) @ BT601


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2",
                bits_stored: int = 8, signed: bool = False) -> Path:
    """Minimal uncompressed grey DICOM (one frame for HxW, N frames for NxHxW)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def arrays(rng):
    return {
        "g8": rng.integers(0, 256, (17, 23), dtype=np.uint8),
        "g16": rng.integers(0, 65536, (17, 23), dtype=np.uint16),
        "rgb8": rng.integers(0, 256, (17, 23, 3), dtype=np.uint8),
        "rgba8": rng.integers(0, 256, (17, 23, 4), dtype=np.uint8),
        "rgb16": rng.integers(0, 65536, (17, 23, 3), dtype=np.uint16),
        "rgba16": rng.integers(0, 65536, (17, 23, 4), dtype=np.uint16),
    }


def check_unit(image: np.ndarray, shape: tuple[int, int]) -> None:
    assert image.dtype == np.float32 and image.shape == shape
    assert image.min() >= 0.0 and image.max() <= 1.0


# ----------------------------------------------------------------------------- PNG / BMP / JPEG


def test_png_8bit_grey_is_value_over_255(tmp_path, arrays):
    path = tmp_path / "g8.png"
    Image.fromarray(arrays["g8"]).save(path)
    image, size = read_image(path)
    check_unit(image, (17, 23))
    assert size == (17, 23)
    np.testing.assert_array_equal(image, (arrays["g8"] / 255.0).astype(np.float32))


def test_png_16bit_grey_is_value_over_65535(tmp_path, arrays):
    path = tmp_path / "g16.png"
    assert cv2.imwrite(str(path), arrays["g16"])
    image, _ = read_image(path)
    np.testing.assert_array_equal(image, (arrays["g16"] / 65535.0).astype(np.float32))


@pytest.mark.parametrize("key", ["rgb8", "rgba8"])
def test_png_8bit_colour_is_bt601_luma_alpha_ignored(tmp_path, arrays, key):
    path = tmp_path / f"{key}.png"
    Image.fromarray(arrays[key]).save(path)
    image, _ = read_image(path)
    np.testing.assert_allclose(image, luma(arrays[key][..., :3], 255.0), atol=1e-6)


@pytest.mark.parametrize("key", ["rgb16", "rgba16"])
def test_png_16bit_colour_keeps_16_bits(tmp_path, arrays, key):
    """PIL would silently reduce these to 8 bits: the error would then be ~1e-3, not 1e-6."""
    path = tmp_path / f"{key}.png"
    bgr = arrays[key][..., [2, 1, 0, 3][: arrays[key].shape[-1]]]
    assert cv2.imwrite(str(path), bgr)
    image, _ = read_image(path)
    expected = luma(arrays[key][..., :3], 65535.0)
    np.testing.assert_allclose(image, expected, atol=1e-6)
    eight_bit = luma(arrays[key][..., :3] >> 8, 255.0)
    assert np.abs(eight_bit - expected).max() > 1e-4  # the test can tell the difference


def test_png_grey_alpha_palette_and_1bit(tmp_path, arrays):
    la = np.stack([arrays["g8"], 255 - arrays["g8"]], axis=-1)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png")[0],
                                  (arrays["g8"] / 255.0).astype(np.float32))

    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [10, 20, 250]], dtype=np.uint8)
    index = arrays["g8"] % 4
    im = Image.fromarray(index.astype(np.uint8), mode="P")
    im.putpalette(palette.flatten().tolist())
    im.save(tmp_path / "p.png")
    np.testing.assert_allclose(read_image(tmp_path / "p.png")[0],
                               luma(palette[index], 255.0), atol=1e-6)

    bits = arrays["g8"] > 127
    Image.fromarray(bits).convert("1").save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_image(tmp_path / "b.png")[0], bits.astype(np.float32))


def test_bmp_grey_and_rgb_exact(tmp_path, arrays):
    Image.fromarray(arrays["g8"]).save(tmp_path / "g.bmp")
    Image.fromarray(arrays["rgb8"]).save(tmp_path / "c.BMP")  # extension case does not matter
    np.testing.assert_array_equal(read_image(tmp_path / "g.bmp")[0],
                                  (arrays["g8"] / 255.0).astype(np.float32))
    np.testing.assert_allclose(read_image(tmp_path / "c.BMP")[0],
                               luma(arrays["rgb8"], 255.0), atol=1e-6)


def test_jpeg_matches_an_independent_decoder(tmp_path, rng):
    """Lossy: compare with OpenCV's libjpeg decode of the same file (not with the source)."""
    smooth = cv2.GaussianBlur(rng.uniform(0, 255, (40, 48, 3)), (0, 0), 3).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "c.jpg", quality=95)
    Image.fromarray(smooth[..., 0]).save(tmp_path / "g.jpeg", quality=95)
    colour = cv2.imread(str(tmp_path / "c.jpg"), cv2.IMREAD_COLOR)[..., ::-1]
    grey = cv2.imread(str(tmp_path / "g.jpeg"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(read_image(tmp_path / "c.jpg")[0], luma(colour, 255.0),
                               atol=2 / 255)
    np.testing.assert_allclose(read_image(tmp_path / "g.jpeg")[0], grey / 255.0, atol=2 / 255)


# ----------------------------------------------------------------------------- TIFF


@pytest.mark.parametrize("key,scale", [("g8", 255.0), ("g16", 65535.0)])
def test_tiff_grey_exact(tmp_path, arrays, key, scale):
    path = tmp_path / f"{key}.tif"
    tifffile.imwrite(path, arrays[key])
    np.testing.assert_array_equal(read_image(path)[0], (arrays[key] / scale).astype(np.float32))


def test_tiff_16bit_rgb_and_rgba(tmp_path, arrays):
    tifffile.imwrite(tmp_path / "c.tiff", arrays["rgb16"], photometric="rgb")
    tifffile.imwrite(tmp_path / "a.tiff", arrays["rgba16"], photometric="rgb",
                     extrasamples=["unassalpha"])
    for name, key in (("c.tiff", "rgb16"), ("a.tiff", "rgba16")):
        np.testing.assert_allclose(read_image(tmp_path / name)[0],
                                   luma(arrays[key][..., :3], 65535.0), atol=1e-6)


def test_tiff_planar_rgb(tmp_path, arrays):
    planar = np.moveaxis(arrays["rgb16"], -1, 0)  # (3, H, W), PlanarConfiguration = separate
    tifffile.imwrite(tmp_path / "planar.tif", planar, photometric="rgb", planarconfig="separate")
    np.testing.assert_allclose(read_image(tmp_path / "planar.tif")[0],
                               luma(arrays["rgb16"], 65535.0), atol=1e-6)


def test_tiff_float_is_clipped(tmp_path):
    values = np.array([[-0.5, 0.0, 0.25], [0.5, 1.0, 3.0]], dtype=np.float32)
    tifffile.imwrite(tmp_path / "f.tif", values)
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif")[0], np.clip(values, 0, 1))


def test_tiff_lzw_16bit_rgb_via_fallback(tmp_path, arrays):
    """LZW needs imagecodecs in tifffile; the OpenCV fallback must keep 16 bits."""
    ok, buf = cv2.imencode(".tif", arrays["rgb16"][..., ::-1],
                           [cv2.IMWRITE_TIFF_COMPRESSION, 5])  # 5 = LZW
    assert ok
    (tmp_path / "lzw.tif").write_bytes(buf.tobytes())
    np.testing.assert_allclose(read_image(tmp_path / "lzw.tif")[0],
                               luma(arrays["rgb16"], 65535.0), atol=1e-6)


def test_tiff_multipage_frames(tmp_path, rng):
    stack = rng.integers(0, 65536, (3, 9, 11), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    frames = read_frames(tmp_path / "stack.tif")
    assert frames.shape == (3, 9, 11) and frames.dtype == np.float32
    np.testing.assert_array_equal(frames, (stack / 65535.0).astype(np.float32))
    np.testing.assert_array_equal(read_image(tmp_path / "stack.tif", frame=2)[0], frames[2])
    with pytest.raises(ImageError, match=r"stack\.tif: frame 3 out of range \(the file has 3"):
        read_image(tmp_path / "stack.tif", frame=3)


def test_single_image_has_one_frame(tmp_path, arrays):
    Image.fromarray(arrays["g8"]).save(tmp_path / "g.png")
    assert read_frames(tmp_path / "g.png").shape == (1, 17, 23)
    with pytest.raises(ImageError, match="g.png: frame 1 out of range"):
        read_image(tmp_path / "g.png", frame=1)


# ----------------------------------------------------------------------------- DICOM


def test_dicom_monochrome2_bits_stored_scaling(tmp_path, rng):
    twelve = rng.integers(0, 4096, (6, 7), dtype=np.uint16)
    path = write_dicom(tmp_path / "m2.dcm", twelve, bits_stored=12)
    np.testing.assert_allclose(read_image(path)[0], twelve / 4095.0, atol=1e-7)


def test_dicom_monochrome1_is_inverted_and_signed_is_shifted(tmp_path, rng):
    eight = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    path = write_dicom(tmp_path / "m1.dcm", eight, photometric="MONOCHROME1")
    np.testing.assert_allclose(read_image(path)[0], 1.0 - eight / 255.0, atol=1e-7)
    signed = rng.integers(-2048, 2048, (6, 7)).astype(np.int16)
    path = write_dicom(tmp_path / "s.dcm", signed, bits_stored=12, signed=True)
    np.testing.assert_allclose(read_image(path)[0], (signed + 2048) / 4095.0, atol=1e-7)


def test_dicom_multiframe_and_extensionless(tmp_path, rng):
    cine = rng.integers(0, 256, (4, 5, 6), dtype=np.uint8)
    path = write_dicom(tmp_path / "cine.dcm", cine)
    frames = read_frames(path)
    np.testing.assert_array_equal(frames, (cine / 255.0).astype(np.float32))
    np.testing.assert_array_equal(read_image(path, frame=3)[0], frames[3])
    with pytest.raises(ImageError, match=r"cine\.dcm: frame 4 out of range \(the file has 4"):
        read_image(path, frame=4)
    bare = tmp_path / "IM0001"  # scanners often write DICOM files without an extension
    shutil.copy(path, bare)
    np.testing.assert_array_equal(read_frames(bare), frames)


def test_dicom_signed_ct_from_pydicom():
    path = pydicom_file("MR_small.dcm")  # MONOCHROME2, BitsStored 16, signed
    stored = pydicom.dcmread(path).pixel_array.astype(np.float64)
    np.testing.assert_allclose(read_image(path)[0], (stored + 32768) / 65535, atol=1e-7)


def test_dicom_ultrasound_rgb():
    path = pydicom_file("examples_rgb_color.dcm")
    rgb = pydicom.dcmread(path).pixel_array
    image, size = read_image(path)
    assert size == (240, 320)
    np.testing.assert_allclose(image, luma(rgb, 255.0), atol=1e-6)


def test_dicom_ultrasound_ybr_multiframe_is_its_luma_channel():
    """BT.601 luma of the YBR->RGB conversion is Y itself (up to RGB clipping/rounding)."""
    from pydicom.pixels import pixel_array

    path = pydicom_file("examples_ybr_color.dcm")  # 30 frames, YBR_FULL_422, JPEG baseline
    frames = read_frames(path)
    assert frames.shape == (30, 240, 320)
    y_channel = pixel_array(str(path), raw=True)[..., 0] / 255.0
    error = np.abs(frames - y_channel)
    assert error.mean() < 1e-3 and np.quantile(error, 0.999) <= 2.5 / 255
    np.testing.assert_array_equal(read_image(path, frame=7)[0], frames[7])


def test_dicom_ultrasound_palette_against_manual_lut():
    path = pydicom_file("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    _, first, bits = ds.RedPaletteColorLookupTableDescriptor
    assert bits == 16
    luts = [np.frombuffer(getattr(ds, f"{c}PaletteColorLookupTableData"), dtype="<u2")
            for c in ("Red", "Green", "Blue")]
    index = np.clip(ds.pixel_array.astype(int) - first, 0, len(luts[0]) - 1)
    rgb = np.stack([lut[index] for lut in luts], axis=-1)
    np.testing.assert_allclose(read_image(path)[0], luma(rgb, 65535.0), atol=1e-6)


def test_dicom_jpeg2000_ultrasound_reads_or_fails_clearly():
    path = pydicom_file("examples_jpeg2k.dcm")
    try:
        image, size = read_image(path)
    except ImageError as exc:  # no JPEG 2000 decoder plugin installed
        assert str(exc).startswith(str(path)) and "JPEG 2000" in str(exc)
        return
    assert size == (480, 640)
    check_unit(image, (480, 640))


def test_dicom_missing_decoder_is_a_clear_error():
    path = pydicom_file("SC_rgb_jls_lossy_line.dcm")  # JPEG-LS: needs pylibjpeg/gdcm/pyjpegls
    try:
        read_image(path)
    except ImageError as exc:
        assert str(exc).startswith(f"{path}: cannot decode DICOM pixel data (JPEG-LS")
    else:
        pytest.skip("a JPEG-LS decoder is installed here")


@pytest.mark.parametrize("name,reason", [("MR_truncated.dcm", "less than expected"),
                                         ("rtplan.dcm", "no pixel data")])
def test_dicom_truncated_or_without_pixels(name, reason):
    path = pydicom_file(name)
    with pytest.raises(ImageError, match=reason) as info:
        read_image(path)
    assert str(info.value).startswith(str(path))


# ----------------------------------------------------------------------------- bad input


def truncated_copy(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def good_files(tmp_path, rng):
    image = cv2.GaussianBlur(rng.uniform(0, 255, (64, 64)), (0, 0), 2).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "ok.png")
    Image.fromarray(image).save(tmp_path / "ok.jpg", quality=90)
    tifffile.imwrite(tmp_path / "ok.tif", image)
    write_dicom(tmp_path / "ok.dcm", image)
    return tmp_path


@pytest.mark.parametrize("maker,reason", [
    (lambda d: d / "missing.png", "file not found"),
    (lambda d: put(d / "empty.png", b""), "empty file"),
    (lambda d: put(d / "empty.dcm", b""), "empty file"),
    (lambda d: truncated_copy(d / "ok.png", d / "cut.png"), "truncated"),
    (lambda d: truncated_copy(d / "ok.jpg", d / "cut.jpg"), "truncated"),
    (lambda d: truncated_copy(d / "ok.tif", d / "cut.tif"), "truncated or corrupt"),
    (lambda d: truncated_copy(d / "ok.dcm", d / "cut.dcm"), "cannot decode DICOM"),
    (lambda d: put(d / "text.png", b"hello, not an image\n"),
     "not a readable PNG image"),
    (lambda d: put(d / "text.jpg", b"hello, not an image\n"),
     "not a readable JPEG image"),
    (lambda d: put(d / "text.bmp", b"P1\n2 2\n0 1 1 0\n"),
     "not a readable BMP image"),
    (lambda d: put(d / "text.tif", b"hello, not an image\n"),
     "cannot decode TIFF"),
    (lambda d: put(d / "text.dcm", b"hello, not a dicom\n"),
     "DICOM"),
    (lambda d: put(d / "anim.gif", b"GIF89a...."),
     "unsupported file type '.gif'"),
    (lambda d: d, "is a directory"),
])
def test_bad_input_raises_image_error_naming_the_file(good_files, maker, reason):
    path = maker(good_files)
    with pytest.raises(ImageError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert reason in message, message
    assert "\n" not in message
    assert info.value.path == Path(path)


def test_image_error_formats():
    err = ImageError(Path("/data/x.png"), "empty file (0 bytes)")
    assert str(err) == "/data/x.png: empty file (0 bytes)" and isinstance(err, ValueError)
    assert err.path == Path("/data/x.png") and err.reason == "empty file (0 bytes)"
    assert str(ImageError("/data/y.png: broken")) == "/data/y.png: broken"


# ----------------------------------------------------------------------------- masks


def test_read_mask_any_nonzero_is_foreground(tmp_path):
    grey = np.array([[0, 1, 255], [0, 0, 7]], dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g_mask.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "g_mask.png"), grey != 0)

    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 3] = 255  # opaque everywhere: alpha must not make everything foreground
    rgba[0, 1, 2] = 1   # faint blue
    rgba[1, 2, 0] = 200
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "c_mask.png")
    expected = np.array([[False, True, False], [False, False, True]])
    np.testing.assert_array_equal(read_mask(tmp_path / "c_mask.png"), expected)
    assert read_mask(tmp_path / "c_mask.png").dtype == bool


def test_read_mask_size_mismatch_names_mask_and_both_sizes(tmp_path):
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "a_mask.png")
    assert read_mask(tmp_path / "a_mask.png", shape=(10, 12)).shape == (10, 12)
    with pytest.raises(ImageError) as info:
        read_mask(tmp_path / "a_mask.png", shape=(11, 12))
    message = str(info.value)
    assert message.startswith(str(tmp_path / "a_mask.png")) and "10x12" in message
    assert "11x12" in message


# ----------------------------------------------------------------------------- resize


def bilinear_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Separable linear interpolation with pixel-centre alignment, edges clamped (numpy)."""
    def axis_weights(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo
    lo, hi, t = axis_weights(image.shape[0], out_h)
    rows = image[lo] * (1 - t)[:, None] + image[hi] * t[:, None]
    lo, hi, t = axis_weights(image.shape[1], out_w)
    return rows[:, lo] * (1 - t) + rows[:, hi] * t


def test_resize_area_downsample_is_block_mean(rng):
    image = rng.uniform(0, 1, (12, 18)).astype(np.float32)
    out = resize(image, (4, 6))
    expected = image.reshape(4, 3, 6, 3).mean(axis=(1, 3))
    assert out.dtype == np.float32 and out.shape == (4, 6)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_resize_linear_upsample_matches_reference(rng):
    image = rng.uniform(0, 1, (5, 7)).astype(np.float32)
    out = resize(image, (13, 16))
    np.testing.assert_allclose(out, bilinear_reference(image.astype(np.float64), 13, 16),
                               atol=1e-4)


def test_resize_mask_nearest_exact(rng):
    mask = rng.uniform(size=(9, 10)) > 0.5
    for out_h, out_w in ((4, 5), (20, 23), (9, 10)):
        rows = np.floor((np.arange(out_h) + 0.5) * 9 / out_h).astype(int)
        cols = np.floor((np.arange(out_w) + 0.5) * 10 / out_w).astype(int)
        out = resize(mask, (out_h, out_w), kind="mask")
        assert out.dtype == bool
        np.testing.assert_array_equal(out, mask[np.ix_(rows, cols)])
    labels = (mask * 3).astype(np.int64)  # any non-zero integer mask works too
    np.testing.assert_array_equal(resize(labels, 18, kind="mask"),
                                  resize(mask, 18, kind="mask"))


def test_resize_int_size_is_square_and_bad_arguments(rng):
    image = rng.uniform(0, 1, (8, 12)).astype(np.float32)
    assert resize(image, 6).shape == (6, 6)
    for bad in (0, (4, 0), (4,), "8", 2.5, True):
        with pytest.raises(ValueError, match="size"):
            resize(image, bad)
    with pytest.raises(ValueError, match="kind"):
        resize(image, 4, kind="label")
    with pytest.raises(ValueError, match="2-D"):
        resize(np.zeros((4, 4, 3)), 2)


# ----------------------------------------------------------------------------- misc


def test_extensions_and_luminance_weights():
    assert set(IMAGE_EXTENSIONS) >= {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm"}
    assert is_image_file("a/B.PNG") and is_image_file("x.Dcm") and not is_image_file("x.gif")
    assert sum(LUMA_WEIGHTS) == pytest.approx(1.0)
    np.testing.assert_allclose(luminance(np.eye(3)), BT601, atol=1e-7)
