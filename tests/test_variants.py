"""Variant hashes: names that mean what they say, borders trimmed and only borders, crops caught."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pdqhash
import pytest
from PIL import Image

from hashwatch.media import MediaLimits, decode_rgb
from hashwatch.samples import encode, generate_image
from hashwatch.signals.pdq import MIN_QUALITY, PDQ
from hashwatch.variants import (
    DIHEDRAL,
    ENTRY_CROPS,
    ENTRY_TILTS,
    ENTRY_TONES,
    MAX_STRETCH,
    VariantHash,
    entry_variants,
    query_variants,
    tone_edit,
    trim_borders,
)
from tests.imaging import DIHEDRAL_EDITS

Pixels = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def scene() -> Pixels:
    return np.asarray(generate_image(3))


def pdq(rgb: Pixels) -> str:
    return PDQ.hash_pixels(np.ascontiguousarray(rgb))[0]


def as_upload(rgb: Pixels, quality: int = 90) -> Pixels:
    """Through JPEG and the production decoder, as an upload arrives."""
    return decode_rgb(encode(Image.fromarray(rgb), "JPEG", quality=quality), MediaLimits())


def framed(rgb: Pixels, share: float, colour: tuple[int, int, int] = (0, 0, 0)) -> Pixels:
    dy, dx = round(rgb.shape[0] * share), round(rgb.shape[1] * share)
    out = np.empty((rgb.shape[0] + 2 * dy, rgb.shape[1] + 2 * dx, 3), dtype=np.uint8)
    out[:] = colour
    out[dy : dy + rgb.shape[0], dx : dx + rgb.shape[1]] = rgb
    return out


def by_name(variants: list[VariantHash]) -> dict[str, VariantHash]:
    return {v.variant: v for v in variants}


# --- query variants --------------------------------------------------------------------------


@pytest.mark.parametrize("exact", [True, False])
def test_the_original_comes_first_and_is_plain_pdq(scene: Pixels, exact: bool) -> None:
    first = query_variants(scene, exact=exact)[0]
    assert first.variant == "original"
    assert (first.value, first.quality) == PDQ.hash_pixels(scene)


def test_variants_are_lower_case_hex_in_a_frozen_record(scene: Pixels) -> None:
    variant = query_variants(scene, dihedral=False)[0]
    assert len(variant.value) == 64
    assert variant.value == variant.value.lower()
    int(variant.value, 16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        variant.value = "0" * 64  # type: ignore[misc]


def test_names_and_order(scene: Pixels) -> None:
    assert [v.variant for v in query_variants(scene)] == list(DIHEDRAL)
    assert [v.variant for v in query_variants(scene, dihedral=False)] == ["original"]
    bordered = framed(scene, 0.1)
    assert [v.variant for v in query_variants(bordered)] == [
        *DIHEDRAL,
        "trimmed",
        *(f"trimmed+{name}" for name in DIHEDRAL[1:]),
    ]
    assert [v.variant for v in query_variants(bordered, dihedral=False)] == [
        "original",
        "trimmed",
    ]
    assert [v.variant for v in query_variants(bordered, trim=False)] == list(DIHEDRAL)


def test_exact_variants_are_the_hashes_of_the_transformed_pixels(scene: Pixels) -> None:
    # A non-square image, so that a swapped rotation direction could not pass.
    for variant in query_variants(scene, trim=False, exact=True):
        assert variant.value == pdq(DIHEDRAL_EDITS[variant.variant](scene)), variant.variant


def test_one_call_variants_are_near_the_transformed_pixels_and_nearest_their_own(
    scene: Pixels,
) -> None:
    truth = {name: pdq(op(scene)) for name, op in DIHEDRAL_EDITS.items()}
    for variant in query_variants(scene, trim=False, exact=False):
        distances = {name: PDQ.distance(variant.value, h) for name, h in truth.items()}
        assert distances[variant.variant] <= 20, variant.variant
        assert min(distances, key=distances.__getitem__) == variant.variant


@pytest.mark.parametrize(
    ("edit", "through"),
    [
        (lambda a: np.rot90(a, -1), "rotate-90"),  # turned a quarter clockwise
        (lambda a: np.rot90(a, 1), "rotate-270"),  # turned a quarter counter-clockwise
        (lambda a: a[:, ::-1], "flip-horizontal"),  # mirrored
        (lambda a: a[::-1], "flip-vertical"),  # upside down
    ],
)
def test_an_edited_upload_matches_through_the_variant_that_undoes_it(
    photos: dict[str, Pixels], edit: Callable[[Pixels], Pixels], through: str
) -> None:
    listed = pdq(photos["coffee"])
    variants = by_name(query_variants(as_upload(np.ascontiguousarray(edit(photos["coffee"])))))
    assert PDQ.distance(variants["original"].value, listed) > 31
    assert PDQ.distance(variants[through].value, listed) <= 31


def test_a_non_contiguous_view_is_hashed_as_its_pixels(scene: Pixels) -> None:
    view = np.rot90(scene)
    assert query_variants(view, dihedral=False)[0].value == pdq(view)


def test_low_quality_hashes_are_returned_for_the_caller_to_judge() -> None:
    rng = np.random.default_rng(1)
    flat = np.clip(120 + rng.normal(0, 1, size=(200, 300, 3)), 0, 255).astype(np.uint8)
    variants = query_variants(flat)
    assert len(variants) == 8
    assert all(v.quality < MIN_QUALITY for v in variants)


# --- quality on the full tonal range ----------------------------------------------------------


def darkened(rgb: Pixels, factor: float) -> Pixels:
    return np.round(rgb.astype(np.float32) * factor).astype(np.uint8)


@pytest.mark.parametrize(("name", "factor"), [("scene", 0.7), ("rocket", 0.4), ("rocket", 0.3)])
def test_a_darkened_copy_keeps_its_hash_and_its_quality(
    scene: Pixels, photos: dict[str, Pixels], name: str, factor: float
) -> None:
    original = scene if name == "scene" else photos[name]
    copy = as_upload(darkened(original, factor))
    bits, reference_quality = pdqhash.compute(copy)
    value, quality = PDQ.hash_pixels(copy)
    # The reference code puts the dark copy under the floor; its hash is still the original's.
    assert reference_quality < MIN_QUALITY <= quality
    assert value == np.packbits(bits).tobytes().hex()
    assert PDQ.distance(value, pdq(original)) <= 10
    for exact in (False, True):
        assert {v.quality for v in query_variants(copy, exact=exact)} == {quality}


def test_only_a_low_quality_on_a_narrow_range_is_measured_again(photos: dict[str, Pixels]) -> None:
    # Full range and a quality under the floor: a white page with a black box in a corner.
    page = np.full((240, 320, 3), 255, dtype=np.uint8)
    page[:12, :12] = 0
    assert PDQ.hash_pixels(page)[1] == int(pdqhash.compute(page)[1]) < MIN_QUALITY
    # A narrow range and a quality over the floor: the reference quality, not a stretched one.
    copy = darkened(photos["coffee"], 0.8)
    assert int(pdqhash.compute(copy)[1]) >= MIN_QUALITY
    assert PDQ.hash_pixels(copy)[1] == int(pdqhash.compute(copy)[1])


def test_the_stretch_is_bounded_so_a_flat_frame_stays_under_the_floor() -> None:
    rng = np.random.default_rng(5)
    # A dim frame with a faint shape in it: it would take more than MAX_STRETCH to pass.
    frame = np.full((240, 320, 3), 60, dtype=np.float32)
    frame[80:160, 100:220] += 255 / MAX_STRETCH / 6
    frame += rng.normal(0, 1, size=frame.shape)
    pixels = np.clip(frame, 0, 255).astype(np.uint8)
    assert PDQ.hash_pixels(pixels)[1] < MIN_QUALITY


# --- trimming --------------------------------------------------------------------------------


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (40, 90, 160)])
def test_a_solid_border_is_trimmed_after_jpeg(scene: Pixels, colour: tuple[int, int, int]) -> None:
    upload = as_upload(framed(scene, 0.1, colour), quality=70)
    inner = trim_borders(upload)
    assert inner is not None
    # JPEG ringing may keep a line or two of the border.
    assert abs(inner.shape[0] - scene.shape[0]) <= 4
    assert abs(inner.shape[1] - scene.shape[1]) <= 4
    assert PDQ.distance(pdq(inner), pdq(scene)) <= 31


def test_a_letterboxed_copy_matches_through_its_trimmed_hash(photos: dict[str, Pixels]) -> None:
    photo = photos["chelsea"]
    bar = photo.shape[0] // 5
    boxed = np.zeros((photo.shape[0] + 2 * bar, photo.shape[1], 3), dtype=np.uint8)
    boxed[bar:-bar] = photo
    variants = by_name(query_variants(as_upload(boxed)))
    assert PDQ.distance(variants["original"].value, pdq(photo)) > 31
    assert PDQ.distance(variants["trimmed"].value, pdq(photo)) <= 31


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
def test_photographs_without_a_border_are_not_trimmed(photos: dict[str, Pixels], name: str) -> None:
    assert trim_borders(as_upload(photos[name])) is None


def test_generated_scenes_without_a_border_are_not_trimmed() -> None:
    for seed in range(10):
        assert trim_borders(np.asarray(generate_image(seed))) is None, seed


def test_a_near_uniform_image_is_not_trimmed_to_a_sliver() -> None:
    blank = np.full((300, 400, 3), 200, dtype=np.uint8)
    blank[150, 200] = 0
    assert trim_borders(blank) is None


def test_trimming_that_would_leave_too_little_gives_none(scene: Pixels) -> None:
    small = np.asarray(Image.fromarray(scene).resize((64, 48)))
    padded = np.zeros((480, 640, 3), dtype=np.uint8)
    padded[216:264, 288:352] = small
    assert trim_borders(padded) is None


def test_a_screenshot_frame_with_marks_in_its_bars_is_trimmed(scene: Pixels) -> None:
    # A status bar (a clock and icons) over a black viewer, a navigation bar below.
    screen = np.zeros((1000, 640, 3), dtype=np.uint8)
    screen[:40] = (32, 33, 36)
    screen[10:30, 20:80] = 255
    screen[10:30, 560:620] = 255
    screen[-50:] = (20, 20, 20)
    screen[-35:-15, 150:175] = 200
    screen[-35:-15, 450:475] = 200
    screen[260:740] = scene
    inner = trim_borders(as_upload(screen))
    assert inner is not None
    assert PDQ.distance(pdq(inner), pdq(scene)) <= 31


# --- entry variants --------------------------------------------------------------------------


def test_entry_variant_names_follow_the_defaults(scene: Pixels) -> None:
    names = [v.variant for v in entry_variants(scene)]
    assert names == [
        *(f"crop-{side}-{percent}" for side, percent in ENTRY_CROPS),
        *(f"tilt{degrees:+g}" for degrees in ENTRY_TILTS),
        *ENTRY_TONES,
    ]
    custom = entry_variants(scene, crops=[("top", 10)], tilts=[3, -3], tones=["gamma0.8"])
    assert [v.variant for v in custom] == ["crop-top-10", "tilt+3", "tilt-3", "gamma0.8"]
    bordered = entry_variants(framed(scene, 0.1), crops=(), tilts=(), tones=())
    assert [v.variant for v in bordered] == ["trimmed"]


def test_tone_edits_do_what_their_names_say(scene: Pixels) -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    brighter = tone_edit(levels, "brightness+30")[..., 0].ravel()
    assert brighter[100] == 130 and brighter[200] == 255  # scaled, then clipped
    assert tone_edit(levels, "brightness-50")[..., 0].ravel()[101] == 50  # rounds half to even
    darker_mids = tone_edit(levels, "gamma1.6")[..., 0].ravel()
    assert (darker_mids[0], darker_mids[128], darker_mids[255]) == (0, 85, 255)  # 84.65
    # Saturation moves colours away from their grey and leaves greys alone.
    assert np.array_equal(tone_edit(levels, "saturation+50"), levels)
    pixel = np.array([[[200, 100, 50]]], dtype=np.uint8)
    grey = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
    expected = [round(grey + 1.5 * (c - grey)) for c in (200, 100, 50)]
    assert tone_edit(pixel, "saturation+50")[0, 0].tolist() == [min(255, v) for v in expected]
    for name in ("contrast+30", "gamma", "brightness+300", "gamma0.01", "sepia"):
        with pytest.raises(ValueError, match=r"unknown tone edit|is outside"):
            tone_edit(scene, name)


def test_a_tone_edit_that_clips_matches_its_tone_hash() -> None:
    # Large bright areas: brightening by 30% clips them and moves the hash past the threshold.
    image = np.asarray(generate_image(10_036))
    copy = as_upload(tone_edit(image, "brightness+30"))
    entry = by_name(entry_variants(image, crops=(), tilts=()))
    assert PDQ.distance(pdq(copy), pdq(image)) > 31
    assert PDQ.distance(pdq(copy), entry["brightness+30"].value) <= 31


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom", "all"])
def test_a_five_percent_crop_matches_its_entry_crop(scene: Pixels, side: str) -> None:
    height, width = scene.shape[:2]
    dy, dx = round(height * 0.05), round(width * 0.05)
    cropped = {
        "left": scene[:, dx:],
        "right": scene[:, : width - dx],
        "top": scene[dy:],
        "bottom": scene[: height - dy],
        "all": scene[dy : height - dy, dx : width - dx],
    }[side]
    query = pdq(as_upload(np.ascontiguousarray(cropped)))
    entry = by_name(entry_variants(scene, crops=[(side, 5)], tilts=()))
    assert PDQ.distance(query, pdq(scene)) > 31
    assert PDQ.distance(query, entry[f"crop-{side}-5"].value) <= 31


def test_an_unknown_crop_side_is_refused(scene: Pixels) -> None:
    with pytest.raises(ValueError, match="unknown crop side"):
        entry_variants(scene, crops=[("middle", 5)])


def test_variants_of_distinct_images_stay_far_apart() -> None:
    # Every query variant of one scene against every entry hash of others: the multiplied
    # comparisons must not bring unrelated images within the threshold.
    queries = [
        v.value for seed in range(3) for v in query_variants(np.asarray(generate_image(seed)))
    ]
    entries = [
        v.value
        for seed in range(3, 6)
        for rgb in [np.asarray(generate_image(seed))]
        for v in [*query_variants(rgb, dihedral=False), *entry_variants(rgb)]
    ]
    assert min(PDQ.distance(q, e) for q in queries for e in entries) > 50
