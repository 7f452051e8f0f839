"""Reading images: PNG, JPEG, BMP, TIFF and DICOM as float32 grey in [0, 1].

Every reader returns the pipeline's in-memory convention (ARCHITECTURE.md): ``float32``, one
channel, values in ``[0, 1]``, shape ``HxW`` (``NxHxW`` for :func:`read_frames`).

Value scaling (exact, no per-image stretching):
    * integer pixels: ``value / (2**bits - 1)`` with ``bits`` the stored bit depth (8-bit /255,
      16-bit /65535; DICOM uses its BitsStored; signed data is shifted by ``2**(bits-1)`` first);
    * floating-point pixels: clipped to ``[0, 1]``;
    * colour: luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, the weights of
      PIL's and OpenCV's grey conversion) computed in floating point on the scaled channels;
      an alpha channel is ignored; DICOM ``PALETTE COLOR`` goes through its colour LUT, ``YBR``
      is converted to RGB by pydicom; ``MONOCHROME1`` is inverted.

Decoders: PIL for PNG/JPEG/BMP (it decodes fully and reports truncated files); OpenCV for
16-bit colour PNG, which PIL silently reduces to 8 bits; tifffile for TIFF (exact 8/16/32-bit,
multi-page), with OpenCV as fallback for compressions tifffile cannot decode without the
optional ``imagecodecs`` package (LZW, PackBits, JPEG); pydicom for DICOM. Every failure,
whatever library it comes from, becomes an :class:`ImageError` whose message starts with the
file path.
"""
from __future__ import annotations

import contextlib
import io as _bytesio
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ImageError  # noqa: F401  (raised here; importable from here too)

#: File name endings read by :func:`read_image` (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff",
                                     ".dcm", ".dicom")

#: ITU-R BT.601 luma weights for (R, G, B).
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)

_FORMAT_BY_SUFFIX = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP",
                     ".tif": "TIFF", ".tiff": "TIFF", ".dcm": "DICOM", ".dicom": "DICOM"}
# PIL may sniff any of these (a JPEG saved as .png still reads) but nothing else, so a text
# file that happens to look like an exotic format is still reported as "not an image".
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "TIFF")


class _LayoutError(ValueError):
    """Decoded pixels in a layout we cannot map to grey (5 channels, complex numbers ...)."""


@dataclass(frozen=True)
class _Pixels:
    """Decoded pixels before normalisation.

    Attributes:
        frames: ``(N, H, W)`` grey or ``(N, H, W, 3)`` RGB, native numeric values.
        low: stored value that maps to 0.
        high: stored value that maps to 1.
        invert: DICOM MONOCHROME1 (minimum value is displayed white).
    """

    frames: np.ndarray
    low: float
    high: float
    invert: bool = False


# ----------------------------------------------------------------------------- public API


def read_image(path: str | os.PathLike, frame: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """Read one image (one frame of a multi-frame file) as float32 grey in [0, 1].

    Args:
        path: PNG, JPEG, BMP, TIFF or DICOM file (see :data:`IMAGE_EXTENSIONS`).
        frame: frame index for multi-frame DICOM / multi-page TIFF (0 for single images).

    Returns:
        ``(image, (H, W))``: the ``HxW`` float32 image and its original size.

    Raises:
        ImageError: missing, empty, truncated, corrupt or unsupported file, frame out of range.
    """
    path = Path(path)
    pixels = _decode(path, frame=frame)
    image = _to_unit_grey(pixels)[0]
    return image, (int(image.shape[0]), int(image.shape[1]))


def read_frames(path: str | os.PathLike) -> np.ndarray:
    """Read every frame of a file as float32 grey ``(N, H, W)`` in [0, 1] (N = 1 for stills).

    Args:
        path: any file :func:`read_image` reads; multi-frame DICOM (cine loops) and multi-page
            TIFF give N > 1.
    """
    return _to_unit_grey(_decode(Path(path), frame=None))


def read_mask(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a segmentation mask as bool ``HxW``: any non-zero colour value is foreground.

    Args:
        path: mask image (alpha is ignored; for colour masks any non-zero R, G or B counts).
        shape: expected ``(H, W)`` (the image's original size); a mismatch is an error.

    Raises:
        ImageError: unreadable mask, or its size differs from ``shape`` (both sizes named).
    """
    path = Path(path)
    pixels = _decode(path, frame=0)
    stored = pixels.frames[0]
    mask = stored != 0 if stored.ndim == 2 else np.any(stored != 0, axis=-1)
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise ImageError(path, f"mask is {mask.shape[0]}x{mask.shape[1]} (HxW) but its image "
                         f"is {shape[0]}x{shape[1]}; a mask must have its image's size")
    return mask


def resize(image: np.ndarray, size: int | tuple[int, int], kind: str = "image") -> np.ndarray:
    """Resize a 2-D image or mask to ``size``.

    Images use area averaging when no side grows (anti-aliased downsampling) and bilinear
    interpolation otherwise (pixel centres aligned, OpenCV convention); masks use exact
    nearest neighbour (``INTER_NEAREST_EXACT``: source index ``floor((i + 0.5) * in / out)``)
    so they stay binary.

    Args:
        image: ``HxW`` array (float image, or bool/integer mask).
        size: side of a square output, or ``(H, W)``.
        kind: ``"image"`` (float32 output) or ``"mask"`` (bool output).
    """
    out_h, out_w = _size_hw(size)
    if kind not in ("image", "mask"):
        raise ValueError(f"resize: kind must be 'image' or 'mask', got {kind!r}")
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"resize: expected a 2-D HxW array, got shape {arr.shape}")
    if kind == "mask":  # binarise first: OpenCV has no (u)int32/64 nearest resize
        src = (arr != 0).astype(np.uint8)
        out = cv2.resize(src, (out_w, out_h), interpolation=cv2.INTER_NEAREST_EXACT)
        return out.astype(bool)
    src = arr.astype(np.float32, copy=False)
    shrinking = out_h <= src.shape[0] and out_w <= src.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(src, (out_w, out_h), interpolation=interp).astype(np.float32, copy=False)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of ``(..., 3)`` RGB values in [0, 1] (``Y = .299R + .587G + .114B``)."""
    weights = np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    return np.asarray(rgb, dtype=np.float32) @ weights


def _to_unit_grey(pixels: _Pixels) -> np.ndarray:
    """Scale decoded pixels to float32 grey ``(N, H, W)`` in [0, 1] (module docstring rules)."""
    span = float(pixels.high) - float(pixels.low)
    unit = (pixels.frames.astype(np.float64) - float(pixels.low)) / span
    unit = np.clip(unit, 0.0, 1.0).astype(np.float32)
    if unit.ndim == 4:
        unit = luminance(unit)
        unit = np.clip(unit, 0.0, 1.0)
    if pixels.invert:
        unit = 1.0 - unit
    return np.ascontiguousarray(unit, dtype=np.float32)


def is_image_file(path: str | os.PathLike) -> bool:
    """True when ``path``'s extension is in :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


# ----------------------------------------------------------------------------- decoding


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    """``int`` -> square ``(s, s)``; ``(H, W)`` -> itself; both must be positive integers."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        hw = (int(size), int(size))
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        hw = (int(size[0]), int(size[1]))
    else:
        raise ValueError(f"resize: size must be an int or (H, W), got {size!r}")
    if min(hw) < 1:
        raise ValueError(f"resize: size must be positive, got {size!r}")
    return hw


def _file_format(path: Path) -> str:
    """Format name from the extension; extensionless files are sniffed for the DICOM 'DICM'."""
    if not path.exists():
        raise ImageError(path, "file not found")
    if path.is_dir():
        raise ImageError(path, "is a directory, not an image file")
    size = path.stat().st_size
    if size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    suffix = path.suffix.lower()
    if suffix in _FORMAT_BY_SUFFIX:
        return _FORMAT_BY_SUFFIX[suffix]
    if suffix == "" and size > 132:
        with open(path, "rb") as fh:
            if fh.read(132)[128:] == b"DICM":
                return "DICOM"
    raise ImageError(path, f"unsupported file type '{suffix or '(no extension)'}' "
                     f"(supported: {', '.join(IMAGE_EXTENSIONS)})")


def _decode(path: Path, frame: int | None) -> _Pixels:
    """Decode ``path`` (all frames when ``frame`` is None) and check the frame index."""
    fmt = _file_format(path)
    if fmt == "DICOM":
        return _decode_dicom(path, frame)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(path, f"cannot read file ({exc.strerror or exc})") from exc
    try:
        pixels = _decode_tiff(path, data) if fmt == "TIFF" else _decode_raster(path, data, fmt)
    except _LayoutError as exc:
        raise ImageError(path, f"cannot use {fmt} image: {exc}") from exc
    return _select_frame(path, pixels, frame)


def _select_frame(path: Path, pixels: _Pixels, frame: int | None) -> _Pixels:
    """Keep only ``frame`` (None keeps all); an index outside ``[0, N)`` is an ImageError."""
    if frame is None:
        return pixels
    count = pixels.frames.shape[0]
    if not 0 <= frame < count:
        raise ImageError(path, f"frame {frame} out of range (the file has {count} "
                         f"frame{'s' if count != 1 else ''})")
    return _Pixels(pixels.frames[frame:frame + 1], pixels.low, pixels.high, pixels.invert)


def _integer_range(dtype: np.dtype, bits: int | None = None) -> tuple[float, float]:
    """(low, high) stored values of an integer/bool/float dtype with ``bits`` significant bits."""
    dtype = np.dtype(dtype)
    if dtype == bool:
        return 0.0, 1.0
    if dtype.kind == "f":
        return 0.0, 1.0
    if dtype.kind not in "ui":
        raise _LayoutError(f"unsupported pixel type {dtype}")
    bits = int(bits or dtype.itemsize * 8)
    if dtype.kind == "i":
        return -float(2 ** (bits - 1)), float(2 ** (bits - 1) - 1)
    return 0.0, float(2 ** bits - 1)


def _drop_alpha(arr: np.ndarray) -> np.ndarray:
    """Channel-last ``(..., C)`` -> grey ``(...)`` (C = 1, or 2: grey + alpha) or RGB (C = 3, 4)."""
    channels = arr.shape[-1]
    if channels in (1, 2):
        return arr[..., 0]
    if channels in (3, 4):
        return arr[..., :3]
    raise _LayoutError(f"unsupported number of channels: {channels}")


def _decode_raster(path: Path, data: bytes, fmt: str) -> _Pixels:
    """PNG / JPEG / BMP through PIL with a full decode (truncation is detected)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's "corrupt EXIF" etc.: the decode decides
            with Image.open(_bytesio.BytesIO(data), formats=_PIL_FORMATS) as im:
                im.load()
                mode = im.mode
                actual = im.format or fmt
                if _is_16bit_png(data) and not mode.startswith("I"):  # PIL kept 8 bits
                    return _decode_cv2(path, data, actual)
                arr = _pil_array(im)
    except UnidentifiedImageError as exc:
        raise ImageError(path, f"not a readable {fmt} image (content not recognised as an "
                         f"image)") from exc
    except ImageError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error ...
        raise ImageError(path, f"cannot decode {fmt} image ({_reason(exc)}); the file may "
                         f"be truncated or corrupt") from exc
    low, high = _pil_range(mode, arr)
    arr = _drop_alpha(arr) if arr.ndim == 3 else arr
    return _Pixels(arr[None], low, high)


def _pil_array(im) -> np.ndarray:
    """Pixels of a loaded PIL image as grey, grey+alpha, RGB or RGBA numpy array."""
    mode = im.mode
    if mode in ("1", "L", "LA", "I;16", "I;16L", "I;16B", "I;16N", "I", "F", "RGB", "RGBA"):
        arr = np.asarray(im)
    else:  # P, PA, CMYK, YCbCr, LAB, HSV, RGBX ...: PIL's own conversion to RGB
        arr = np.asarray(im.convert("RGB"))
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def _pil_range(mode: str, arr: np.ndarray) -> tuple[float, float]:
    """Stored value range of a PIL mode (mode 'I' from PNG is 16-bit in older Pillow)."""
    if mode == "I":
        return 0.0, 65535.0
    return _integer_range(arr.dtype)


def _is_16bit_png(data: bytes) -> bool:
    """True for a PNG whose IHDR bit depth is 16 (byte 24 of the file)."""
    return data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data[24] == 16


def _decode_cv2(path: Path, data: bytes, fmt: str) -> _Pixels:
    """All pages of an image through OpenCV (BGR[A] -> RGB); None from OpenCV -> ImageError."""
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        ok, pages = cv2.imdecodemulti(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        ok, pages = False, None
    if not ok or not pages:
        raise ImageError(path, f"cannot decode {fmt} image; the file may be truncated or "
                         f"corrupt")
    frames = []
    for page in pages:
        if page.ndim == 3 and page.shape[-1] in (3, 4):
            page = page[..., 2::-1]  # BGR(A) -> RGB, alpha dropped
        frames.append(_drop_alpha(page) if page.ndim == 3 else page)
    if len({f.shape for f in frames}) != 1:
        frames = frames[:1]  # pages of different sizes: the first one is the image
    arr = np.stack(frames)
    low, high = _integer_range(arr.dtype)
    return _Pixels(arr, low, high)


def _decode_tiff(path: Path, data: bytes) -> _Pixels:
    """TIFF through tifffile (exact bit depths); OpenCV when tifffile lacks the codec."""
    import tifffile

    try:
        with _quiet_logger("tifffile"), tifffile.TiffFile(_bytesio.BytesIO(data)) as tif:
            page = tif.series[0].pages[0]
            arr = _tiff_series_frames(tif.series)
            photometric = int(page.photometric)
            bits = int(page.bitspersample)
            colormap = page.colormap
            has_samples = "S" in tif.series[0].axes
    except Exception as exc:  # truncated strip, not a TIFF, missing codec ...
        if "imagecodecs" in str(exc):  # LZW/PackBits/JPEG need imagecodecs: OpenCV has them
            return _decode_cv2(path, data, "TIFF")
        raise ImageError(path, f"cannot decode TIFF image ({_reason(exc)}); the file may be "
                         f"truncated or corrupt") from exc
    if photometric == 3 and colormap is not None:  # PALETTE: apply the colour map
        arr = np.moveaxis(np.asarray(colormap)[:, arr], 0, -1)
        return _Pixels(arr, *_integer_range(arr.dtype))
    if photometric == 5:  # SEPARATED (CMYK) is not a colour model we can map to grey exactly
        raise ImageError(path, "unsupported TIFF colour model (CMYK)")
    arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    arr = _drop_alpha(arr) if has_samples else arr
    low, high = _integer_range(arr.dtype, bits if arr.dtype.kind in "ui" else None)
    return _Pixels(arr, low, high, invert=photometric == 0)  # 0: MINISWHITE


@contextlib.contextmanager
def _quiet_logger(name: str):
    """Silence one library logger for a block (its problems become our ImageError instead)."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _tiff_series_frames(series) -> np.ndarray:
    """Frames ``(N, H, W[, S])`` of the first tifffile series and of every later series like it.

    Pages appended one by one (``tifffile.imwrite(..., append=True)``) form one series each;
    later series with the first one's frame shape, dtype and colour model are further frames,
    others (thumbnails, masks, reduced resolutions) are skipped.
    """
    def signature(s):
        tail = tuple(s.shape[s.axes.index(a)] for a in "YXS" if a in s.axes)
        return tail, np.dtype(s.dtype), int(s.pages[0].photometric)

    wanted = signature(series[0])
    frames = [_tiff_to_frames(np.asarray(s.asarray()), s.axes)
              for s in series if signature(s) == wanted]
    return frames[0] if len(frames) == 1 else np.concatenate(frames)


def _tiff_to_frames(arr: np.ndarray, axes: str) -> np.ndarray:
    """Reorder a tifffile series to ``(N, H, W[, S])``: every axis but Y, X, S becomes N."""
    order = [i for i, a in enumerate(axes) if a not in "YXS"]
    order += [axes.index("Y"), axes.index("X")]
    if "S" in axes:
        order.append(axes.index("S"))
    arr = np.transpose(arr, order)
    tail = arr.shape[-3:] if "S" in axes else arr.shape[-2:]
    return arr.reshape((-1,) + tuple(tail))


def _decode_dicom(path: Path, frame: int | None) -> _Pixels:
    """DICOM through pydicom's pixel pipeline (decoder, YBR->RGB, colour LUT, MONOCHROME1)."""
    import pydicom

    ds = _read_dicom_dataset(path)
    syntax = _transfer_syntax(ds)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's "invalid value for VR" chatter
            count = _dicom_frame_count(ds)
            if frame is not None and not 0 <= frame < count:
                raise ImageError(path, f"frame {frame} out of range (the file has {count} "
                                 f"frame{'s' if count != 1 else ''})")
            return _dicom_pixels(path, ds, syntax, frame, count)
    except ImageError:
        raise
    except Exception as exc:  # missing decoder plugin, short pixel data, bad LUT ...
        raise ImageError(path, f"cannot decode DICOM pixel data "
                         f"({pydicom.uid.UID(syntax).name}): {_reason(exc)}") from exc


def _dicom_frame_count(ds) -> int:
    """Number of Frames (absent or empty: 1)."""
    value = ds.get("NumberOfFrames", None)
    return int(value) if value not in (None, "") else 1


def _dicom_pixels(path: Path, ds, syntax: str, frame: int | None, count: int) -> _Pixels:
    """Decode ``frame`` (all when None) and describe its value range (PS3.3 C.7.6.3)."""
    from pydicom.pixels import apply_color_lut, convert_color_space, get_decoder

    arr, meta = get_decoder(syntax).as_array(ds, index=frame)
    if count == 1 or frame is not None:
        arr = arr[None]
    photometric = str(meta["photometric_interpretation"])
    if photometric == "PALETTE COLOR":
        entry_bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return _Pixels(apply_color_lut(arr, ds), 0.0, float(2 ** entry_bits - 1))
    if photometric in ("YBR_FULL", "YBR_FULL_422"):  # only when the decoder left it as YBR
        arr = convert_color_space(arr, photometric, "RGB", per_frame=True)
        photometric = "RGB"
    if photometric not in ("MONOCHROME1", "MONOCHROME2", "RGB"):
        raise ImageError(path, f"unsupported DICOM photometric interpretation "
                         f"'{photometric}'")
    invert = photometric == "MONOCHROME1"
    if arr.dtype.kind == "f":  # Float Pixel Data
        return _Pixels(arr, 0.0, 1.0, invert=invert)
    bits = int(meta["bits_stored"])
    if int(meta["pixel_representation"]) == 1:  # two's complement: shift to unsigned
        return _Pixels(arr, -float(2 ** (bits - 1)), float(2 ** (bits - 1) - 1), invert)
    return _Pixels(arr, 0.0, float(2 ** bits - 1), invert)


def _read_dicom_dataset(path: Path):
    """Parse a DICOM file (also one without the 128-byte preamble); it must have pixel data."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    forced = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path)
            except InvalidDicomError:  # no 'DICM' preamble: legal in old files, try harder
                forced = True
                ds = pydicom.dcmread(path, force=True)
            has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData",
                                               "DoubleFloatPixelData"))
    except Exception as exc:
        raise ImageError(path, f"not a readable DICOM file ({_reason(exc)})") from exc
    if not has_pixels and forced:  # random bytes parse "successfully" when forced
        raise ImageError(path, "not a DICOM file (no 'DICM' marker and no pixel data element "
                         "found; the file may be corrupt or not DICOM at all)")
    if not has_pixels:
        raise ImageError(path, "not a DICOM image (no pixel data element)")
    return ds


def _transfer_syntax(ds) -> str:
    """Transfer syntax UID from the file meta, or from the encoding the parser detected."""
    import pydicom.uid as uid

    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax:
        return str(syntax)
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit:
        return uid.ImplicitVRLittleEndian
    return uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian


def _reason(exc: BaseException, limit: int = 400) -> str:
    """An exception's message on one line (its type when empty), cut at ``limit`` characters."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = text or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
