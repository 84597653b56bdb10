"""Safe decoding of untrusted images into pixels for perceptual hashing.

Every upload is hostile until decoded: it may be empty, truncated, not an image at all, or a
decompression bomb (a few kilobytes that claim billions of pixels). This module is the only
place hashwatch decodes media. It checks the byte count before reading anything else, reads the
image header and refuses more pixels than the limit before a single pixel is decoded, accepts
only the formats listed below, and turns every decoder failure into a MediaError that names the
problem, never a crash.

Pixels are hashed as stored: EXIF orientation is not applied, exactly as the reference PDQ
hasher does, so hashes agree with those computed by other PDQ implementations. A photo stored
sideways with an orientation tag is hashed sideways.

Large images are decoded at reduced scale: PDQ reduces every image to 64 x 64 samples, so the
detail of a 12-megapixel photo is filtered away anyway, and filtering it costs most of the time.
JPEGs are decoded by libjpeg at 1/2, 1/4 or 1/8 scale (DCT scaling, through Pillow's `draft`),
other formats are box-reduced after decoding, in both cases only while the shorter side stays at
least `MediaLimits.min_side` pixels. The hash then stays within a few bits of the
full-resolution hash (docs/benchmarks.md has the measured distances); `min_side=None` decodes at
full resolution for bit-exact agreement with the reference on large images.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from hashwatch.errors import (
    CorruptMedia,
    EmptyMedia,
    MediaTooLarge,
    TooManyPixels,
    UnsupportedMedia,
)

__all__ = ["ACCEPTED_FORMATS", "MediaLimits", "check_byte_count", "decode_rgb"]

#: Pillow format names accepted. JPEG covers MPO, the multi-picture JPEG many phones write.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_FORMAT_NAMES = "JPEG, PNG, WebP, GIF, BMP, TIFF"

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_PILLOW_PIXELS = re.compile(r"\((\d+) pixels\)")


@dataclass(frozen=True)
class MediaLimits:
    """Operator-set limits on one input file. Defaults suit photos from any current camera."""

    max_bytes: int = 50_000_000
    max_pixels: int = 100_000_000
    #: Decode large images at reduced scale, keeping the shorter side at least this many pixels;
    #: None decodes at full resolution.
    min_side: int | None = 768

    @classmethod
    def from_env(cls) -> MediaLimits:
        """Limits from HASHWATCH_MAX_BYTES and HASHWATCH_MAX_PIXELS where set."""
        default = cls()
        return cls(
            max_bytes=_env_int("HASHWATCH_MAX_BYTES", default.max_bytes),
            max_pixels=_env_int("HASHWATCH_MAX_PIXELS", default.max_pixels),
        )


def check_byte_count(size: int, limits: MediaLimits) -> None:
    """Refuse empty input and input over the byte limit, before it is read or decoded."""
    if size == 0:
        raise EmptyMedia("empty file (0 bytes)")
    if size > limits.max_bytes:
        raise MediaTooLarge(
            f"file is {_megabytes(size)}, over the limit of {_megabytes(limits.max_bytes)}"
        )


def decode_rgb(data: bytes, limits: MediaLimits) -> npt.NDArray[np.uint8]:
    """Decode an image's first frame into a C-contiguous RGB uint8 array (height x width x 3).

    Raises a MediaError subclass with a readable message for every kind of bad input.
    """
    check_byte_count(len(data), limits)
    image = _open(data, limits)
    try:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise CorruptMedia(f"image header declares an empty size ({width} x {height} pixels)")
        if width * height > limits.max_pixels:
            raise TooManyPixels(_too_many_pixels(width, height, limits))
        try:
            if limits.min_side and image.format in ("JPEG", "MPO"):
                image.draft(image.mode, _at_least(width, height, limits.min_side))
            image.load()
            rgb = _to_rgb(image)
            factor = min(rgb.shape[:2]) // limits.min_side if limits.min_side else 1
            if factor >= 2:
                rgb = np.asarray(Image.fromarray(rgb).reduce(factor))
            return rgb
        except MemoryError:
            raise CorruptMedia("image needs more memory to decode than is available") from None
        except Exception as exc:  # decoders raise many types on hostile data; all mean the same
            raise CorruptMedia(
                f"truncated or corrupt {image.format} data: {_reason(exc)}"
            ) from None
    finally:
        image.close()


def _open(data: bytes, limits: MediaLimits) -> Image.Image:
    """Read the header only: Pillow decodes no pixel data until load()."""
    if Image.MAX_IMAGE_PIXELS is not None and limits.max_pixels > Image.MAX_IMAGE_PIXELS:
        # Pillow refuses images over twice its own global cap inside open(), before our check
        # runs; raise that cap (never lower it) so an operator's higher limit is the one in force.
        Image.MAX_IMAGE_PIXELS = limits.max_pixels
    with warnings.catch_warnings():
        # Pillow warns above its cap; our limit, checked right after open(), decides.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except UnidentifiedImageError:
            raise UnsupportedMedia(
                f"not an image in a supported format ({_FORMAT_NAMES})"
            ) from None
        except Image.DecompressionBombError as exc:
            declared = _PILLOW_PIXELS.search(str(exc))
            pixels = f"{int(declared.group(1)) / 1e6:.1f} million" if declared else "too many"
            raise TooManyPixels(
                f"image declares {pixels} pixels, over the limit of "
                f"{limits.max_pixels / 1e6:g} million; refused without decoding "
                "(possible decompression bomb)"
            ) from None
        except Exception as exc:
            raise CorruptMedia(f"corrupt image header: {_reason(exc)}") from None


def _to_rgb(image: Image.Image) -> npt.NDArray[np.uint8]:
    mode = image.mode
    if mode == "RGB":
        rgb = np.asarray(image)
    elif mode in _SIXTEEN_BIT_MODES:
        # Pillow's own conversion of 16-bit grey clips at 255, turning most images white; keep
        # the top 8 bits instead, which is what every 16-to-8-bit viewer shows.
        grey = np.asarray(image).astype(np.int64)
        grey8 = (np.clip(grey, 0, 65535) >> 8).astype(np.uint8)
        rgb = np.repeat(grey8[:, :, None], 3, axis=2)
    elif mode == "F":
        grey8 = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
        rgb = np.repeat(grey8[:, :, None], 3, axis=2)
    else:
        # Palette (with or without transparency), grey, grey+alpha, CMYK, YCbCr, LAB, RGBA and
        # 1-bit all convert to stored RGB; alpha is dropped, as the reference hasher does.
        rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def _at_least(width: int, height: int, min_side: int) -> tuple[int, int]:
    """The smallest size of the same shape whose shorter side is at least `min_side`."""
    scale = min_side / min(width, height)
    return math.ceil(width * scale), math.ceil(height * scale)


def _too_many_pixels(width: int, height: int, limits: MediaLimits) -> str:
    return (
        f"image is {width} x {height} pixels ({width * height / 1e6:.1f} million), over the "
        f"limit of {limits.max_pixels / 1e6:g} million; refused without decoding "
        "(possible decompression bomb)"
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size:,} bytes"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value
