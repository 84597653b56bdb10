"""Safe decoding: each kind of bad input gets a clear error; each accepted kind of image hashes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hashwatch.errors import (
    CorruptMedia,
    EmptyMedia,
    MediaTooLarge,
    TooManyPixels,
    UnsupportedMedia,
)
from hashwatch.hashing import hash_bytes
from hashwatch.media import MediaLimits, decode_rgb
from hashwatch.signals.pdq import PDQ
from tests.imaging import encode, png_header_only

LIMITS = MediaLimits()


@pytest.fixture(scope="module")
def astronaut(photos: dict[str, np.ndarray]) -> np.ndarray:
    return photos["astronaut"]


def pdq_of(data: bytes) -> str:
    result = hash_bytes(data, LIMITS)
    assert result.error is None, result.error
    return result.hashes["pdq"]


# --- bad input -------------------------------------------------------------------------------


def test_zero_bytes() -> None:
    with pytest.raises(EmptyMedia, match=r"^empty file \(0 bytes\)$"):
        decode_rgb(b"", LIMITS)


def test_more_bytes_than_the_limit(astronaut: np.ndarray) -> None:
    data = encode(astronaut, "PNG")  # about 0.5 MB
    with pytest.raises(MediaTooLarge, match=r"^file is [\d.]+ MB, over the limit of 0.1 MB$"):
        decode_rgb(data, MediaLimits(max_bytes=100_000))


def test_declared_size_over_the_pixel_limit_is_refused_without_decoding() -> None:
    bomb = png_header_only(12_000, 10_000)  # 160 bytes claiming 120 million pixels
    assert len(bomb) < 200
    with pytest.raises(
        TooManyPixels,
        match=r"^image is 12000 x 10000 pixels \(120.0 million\), over the limit of 100 million; "
        r"refused without decoding \(possible decompression bomb\)$",
    ):
        decode_rgb(bomb, LIMITS)


def test_huge_bomb_beyond_pillows_own_cap_gets_the_same_clear_error() -> None:
    with pytest.raises(
        TooManyPixels, match=r"^image declares 2500.0 million pixels, over the limit"
    ):
        decode_rgb(png_header_only(50_000, 50_000), LIMITS)


def test_pixel_limit_is_the_operators_choice(astronaut: np.ndarray) -> None:
    data = encode(astronaut, "PNG")  # 512 x 512
    with pytest.raises(TooManyPixels, match=r"512 x 512 pixels .* over the limit of 0.2 million"):
        decode_rgb(data, MediaLimits(max_pixels=200_000))
    assert decode_rgb(data, MediaLimits(max_pixels=512 * 512)).shape == (512, 512, 3)


def test_truncated_jpeg(astronaut: np.ndarray) -> None:
    data = encode(astronaut, "JPEG", quality=90)
    with pytest.raises(
        CorruptMedia, match=r"^truncated or corrupt JPEG data: image file is truncated"
    ):
        decode_rgb(data[: len(data) // 2], LIMITS)


def test_truncated_png(astronaut: np.ndarray) -> None:
    data = encode(astronaut, "PNG")
    with pytest.raises(
        CorruptMedia, match=r"^truncated or corrupt PNG data: image file is truncated"
    ):
        decode_rgb(data[: len(data) // 2], LIMITS)


def test_corrupt_header() -> None:
    with pytest.raises(CorruptMedia, match=r"^corrupt image header: "):
        decode_rgb(b"\x89PNG\r\n\x1a\n" + b"x" * 100, LIMITS)


def test_corrupt_image_data(astronaut: np.ndarray) -> None:
    data = encode(astronaut, "JPEG", quality=90)
    damaged = data[:600] + bytes(200) + data[800:]
    with pytest.raises(CorruptMedia, match=r"^truncated or corrupt JPEG data: "):
        decode_rgb(damaged, LIMITS)


def test_not_an_image() -> None:
    with pytest.raises(
        UnsupportedMedia,
        match=r"^not an image in a supported format \(JPEG, PNG, WebP, GIF, BMP, TIFF\)$",
    ):
        decode_rgb(b"%PDF-1.7 this is a document, not an image", LIMITS)


def test_image_format_outside_the_accepted_list(astronaut: np.ndarray) -> None:
    icon = encode(Image.fromarray(astronaut).resize((64, 64)), "ICO")
    with pytest.raises(UnsupportedMedia, match="not an image in a supported format"):
        decode_rgb(icon, LIMITS)


def test_bad_input_still_gets_its_exact_hashes_with_the_error() -> None:
    result = hash_bytes(b"plain text", LIMITS, path="notes.txt")
    assert result.error == "not an image in a supported format (JPEG, PNG, WebP, GIF, BMP, TIFF)"
    assert set(result.hashes) == {"md5", "sha1", "sha256"}
    assert not result.ok


# --- accepted formats and modes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options", "tolerance"),
    [
        ("PNG", {}, 0),
        ("BMP", {}, 0),
        ("TIFF", {}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("WEBP", {"quality": 90}, 16),
        ("JPEG", {"quality": 90}, 16),
        ("GIF", {}, 31),
    ],
)
def test_each_accepted_format_hashes_close_to_the_original(
    astronaut: np.ndarray, fmt: str, options: dict[str, object], tolerance: int
) -> None:
    reference = pdq_of(encode(astronaut, "PNG"))
    assert PDQ.distance(pdq_of(encode(astronaut, fmt, **options)), reference) <= tolerance


@pytest.mark.parametrize("mode", ["P", "L", "LA", "RGBA", "1", "CMYK", "I;16"])
def test_every_pixel_mode_hashes(astronaut: np.ndarray, mode: str) -> None:
    image = Image.fromarray(astronaut)
    if mode == "I;16":
        grey16 = np.asarray(image.convert("L"), dtype=np.uint16) * 257  # full 16-bit range
        converted = Image.fromarray(grey16)
        assert converted.mode == "I;16"
        data = encode(converted, "PNG")
    elif mode == "CMYK":
        data = encode(image.convert("CMYK"), "JPEG", quality=95)
    else:
        data = encode(image.convert(mode), "PNG")
    result = hash_bytes(data, LIMITS)
    assert result.error is None
    assert result.quality["pdq"] >= 50
    if mode in ("L", "LA", "I;16"):
        # Grey images must hash like the grey original: 16-bit data is scaled, not clipped.
        grey = pdq_of(encode(image.convert("L"), "PNG"))
        assert PDQ.distance(result.hashes["pdq"], grey) <= 2


def test_alpha_is_dropped_and_stored_colour_hashed(astronaut: np.ndarray) -> None:
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 7, dtype=np.uint8)])
    assert pdq_of(encode(rgba, "PNG")) == pdq_of(encode(astronaut, "PNG"))


def test_gif_hashes_its_first_frame(photos: dict[str, np.ndarray]) -> None:
    first = Image.fromarray(photos["astronaut"]).resize((300, 300))
    second = Image.fromarray(photos["coffee"]).resize((300, 300))
    animated = encode(first, "GIF", save_all=True, append_images=[second], duration=100)
    assert PDQ.distance(pdq_of(animated), pdq_of(encode(first, "GIF"))) <= 4
    assert PDQ.distance(pdq_of(animated), pdq_of(encode(second, "GIF"))) > 64


def test_multi_picture_jpeg_from_phones_hashes_its_first_picture(
    photos: dict[str, np.ndarray],
) -> None:
    first = Image.fromarray(photos["astronaut"])
    second = Image.fromarray(photos["coffee"]).resize((512, 512))
    mpo = encode(first, "MPO", save_all=True, append_images=[second], quality=90)
    assert Image.open(io.BytesIO(mpo)).format == "MPO"
    assert PDQ.distance(pdq_of(mpo), pdq_of(encode(first, "JPEG", quality=90))) == 0


def test_exif_orientation_is_not_applied(astronaut: np.ndarray) -> None:
    image = Image.fromarray(astronaut)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    tagged = encode(image, "JPEG", quality=90, exif=exif.tobytes())
    plain = encode(image, "JPEG", quality=90)
    rotated = encode(image.transpose(Image.Transpose.ROTATE_270), "JPEG", quality=90)
    assert pdq_of(tagged) == pdq_of(plain)
    assert PDQ.distance(pdq_of(tagged), pdq_of(rotated)) > 31


@pytest.fixture(scope="module")
def large_photo(photos: dict[str, np.ndarray]) -> Image.Image:
    """A photograph at 12 megapixels (4000 x 3000)."""
    return Image.fromarray(photos["coffee"]).resize((4000, 3000), Image.Resampling.LANCZOS)


def full_resolution_reference(data: bytes) -> str:
    import pdqhash

    from hashwatch.signals.pdq import bits_to_hex

    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return bits_to_hex(pdqhash.compute(rgb)[0])


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_large_images_decode_at_reduced_scale_within_tolerance(
    large_photo: Image.Image, fmt: str
) -> None:
    data = encode(large_photo, fmt, quality=90) if fmt == "JPEG" else encode(large_photo, fmt)
    reduced = decode_rgb(data, LIMITS)
    assert min(reduced.shape[:2]) >= LIMITS.min_side  # type: ignore[operator]
    assert min(reduced.shape[:2]) < 2 * LIMITS.min_side  # type: ignore[operator]
    assert PDQ.distance(pdq_of(data), full_resolution_reference(data)) <= 10


def test_full_resolution_decoding_matches_the_reference_exactly(large_photo: Image.Image) -> None:
    data = encode(large_photo, "JPEG", quality=90)
    full = MediaLimits(min_side=None)
    assert decode_rgb(data, full).shape == (3000, 4000, 3)
    result = hash_bytes(data, full)
    assert result.hashes["pdq"] == full_resolution_reference(data)
