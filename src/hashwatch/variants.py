"""Extra PDQ hashes that let a perceptual match survive rotation, mirroring, borders and crops.

PDQ is robust to re-encoding, resizing, blur and colour changes, but not to geometric edits: a
mirrored or rotated copy is about 128 bits from its original (as far as an unrelated image), a
5% border or a 5% crop moves the hash 50 to 110 bits, a tilt of 2 degrees 30 to 70, against a
threshold of 31. No threshold fixes that; hashing the right variants does. Two sides can each
add some:

- the query side (`query_variants`): undo what can be undone from the query alone. The eight
  dihedral transforms (quarter turns, mirrors, transposes) are each hashed exactly as the
  turned or mirrored pixels would be (hashwatch.dihedral), for about a tenth more than one
  plain hash. A solid-colour border, letterbox or screenshot frame is detected and trimmed
  (`trim_borders`), and the trimmed image is hashed too.
- the list side (`entry_variants`): a crop removes pixels the query no longer has, so no query
  variant can restore them. Instead a listed image stores, beside its own hash, the hashes of a
  few crops of itself, computed once when it is listed; a cropped upload then lands near one.
  This needs the listed image: a list received as hashes alone gets the query side only.

Every extra hash is one more chance of a false match: searching q query hashes against a list
holding e hashes per entry makes q x e comparisons per listed image where plain PDQ makes one.
docs/detection-quality.md measures both sides of that trade on benign images (recall per
transform, and the distance distribution between distinct images with every variant pair) and
gives the expected false-match rate at 1M and 10M hashes; bench/robustness.py regenerates it.

Variant hashes carry their own quality. Those below MIN_QUALITY are returned like any other,
so that the caller, which knows its floor, decides. Quality is PDQ's, measured on the image's
full tonal range (see `pdq_hash`): a darkened or flattened copy keeps its hash, and now its
quality too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pdqhash
from PIL import Image

from hashwatch.dihedral import DIHEDRAL, dihedral_bits, pdq_quality

__all__ = [
    "DIHEDRAL",
    "ENTRY_CROPS",
    "ENTRY_TILTS",
    "ENTRY_TONES",
    "MAX_STRETCH",
    "MIN_QUALITY",
    "VariantHash",
    "entry_variants",
    "pdq_hash",
    "query_variants",
    "tone_edit",
    "trim_borders",
]

RGB = npt.NDArray[np.uint8]

#: PDQ hashes of lower quality are reported but not matched unless the caller lowers the floor
#: (the reference advice: near-uniform images, blank frames and solid colours, give unstable
#: hashes that collide).
MIN_QUALITY = 50

#: The largest factor by which `pdq_hash` stretches an image's tonal range to re-measure a
#: quality under MIN_QUALITY: a copy darkened or flattened by up to three quarters gets its
#: quality back; a near-uniform frame (a few levels of noise on one colour) stays low, since its
#: noise would need far more than 4 times to look like structure.
MAX_STRETCH = 4.0

#: The share of channel values at each end of the range that the stretch may clip: a caption,
#: a timestamp or a few hot pixels do not hold the range open.
_STRETCH_TAIL = 0.005


#: The crops hashed for each listed image by default: (side, percent of that side removed).
#: Of the crop designs measured (docs/detection-quality.md, "Entry hash designs"), the one with
#: the largest recall gain per extra hash among those with no false match that find at least
#: 80% of 5% crops: 5% off each side catches one-sided crops of about 3-7%, 2% and 5% off all
#: sides catch even crops of about 1-6%. Adding ("left", 10) ... ("all", 10) catches 10% crops.
ENTRY_CROPS: tuple[tuple[str, int], ...] = (
    ("left", 5),
    ("right", 5),
    ("top", 5),
    ("bottom", 5),
    ("all", 2),
    ("all", 5),
)

#: The tilts hashed for each listed image by default, in degrees counter-clockwise. None by
#: default: (2, -2, 4, -4) catches about 98% of tilts of 1-5 degrees (plain PDQ: 12%) for four
#: more hashes per entry, a smaller gain per hash than the crops; a list that expects tilted
#: copies can ask for them.
ENTRY_TILTS: tuple[float, ...] = ()

#: The tone edits hashed for each listed image by default (names as `tone_edit` reads them).
#: PDQ ignores tone changes that keep the order of the image's luminances, but edits that clip
#: highlights (brightening) or act on each colour channel apart (gamma, saturation) can make two
#: differently coloured areas trade places in luminance, and that moves the hash 32-42 bits on
#: images with large saturated areas. A query cannot restore clipped pixels; the list's copy can
#: clip them too. With these four the benchmark's colour edits were found 99.7% of the time
#: (96.9% without), and edits at strengths they do not sit on 95-100% (brightness +45%, gamma
#: 0.5 and 2.0, saturation 2x; 59-83% without): docs/detection-quality.md, "Entry hash designs",
#: which also gives the rule that chose them.
ENTRY_TONES: tuple[str, ...] = ("brightness+30", "gamma0.6", "gamma1.6", "saturation+50")

#: The thickest bar (share of the side) taken for a screenshot's status or title bar.
_MAX_BAR = 0.15


@dataclass(frozen=True, slots=True)
class VariantHash:
    """One PDQ hash of a variant of an image: its name, 64-hex value and quality (0-100)."""

    variant: str
    value: str
    quality: int

    def to_json(self) -> dict[str, str | int]:
        return {"variant": self.variant, "value": self.value, "quality": self.quality}


def query_variants(
    rgb: RGB, *, dihedral: bool = True, trim: bool = True, exact: bool = True
) -> list[VariantHash]:
    """The PDQ hashes to search for one query image, "original" first, in a fixed order.

    With `dihedral`, the seven other dihedral variants follow (names in DIHEDRAL). With `trim`,
    when `trim_borders` finds a border, "trimmed" follows (and with `dihedral` its seven
    variants, "trimmed+rotate-90" and so on). The original's hash is bit-identical to
    hashwatch.signals.pdq.PDQ.hash_pixels(rgb) for the C-contiguous arrays decode_rgb returns.

    Each dihedral variant is the hash of the turned or mirrored pixels (hashwatch.dihedral),
    and the original is the reference code's own. `exact=False` derives the seven from one
    `pdqhash.compute_dihedral` call instead, as other PDQ users do: that call permutes the DCT
    of one 64 x 64 reduction of the image, which does not commute with reversing an axis (its
    sample points and box-filter windows sit half a pixel off centre on most image sizes), so
    its variants differ from the hash of the actually rotated pixels by about 5-20 bits on
    photographs and by far more on fine texture (grass, brick, printed text: 30-100 bits),
    enough to miss a few percent of quarter-turned and mirrored copies. It is kept for
    comparison (docs/detection-quality.md measures both); it is not much faster.
    """
    # pdqhash misreads arrays whose axes are swapped in memory (a transposed or np.rot90 view,
    # Fortran order): such a view would hash as noise.
    pixels = np.ascontiguousarray(rgb, dtype=np.uint8)
    found = _hashes(pixels, "", dihedral, exact)
    if trim:
        inner = trim_borders(pixels)
        if inner is not None:
            found += _hashes(np.ascontiguousarray(inner), "trimmed", dihedral, exact)
    return found


def entry_variants(
    rgb: RGB,
    *,
    crops: Iterable[tuple[str, int]] = ENTRY_CROPS,
    tilts: Iterable[float] = ENTRY_TILTS,
    tones: Iterable[str] = ENTRY_TONES,
    trim: bool = True,
) -> list[VariantHash]:
    """Hashes to store beside a listed image's own hash, so edited copies of it land near one.

    In order: "trimmed", where `trim_borders` finds a border on the listed image itself (a
    photo with a plain sky or wall: a bordered copy of it is trimmed into the sky too, and then
    matches this hash, not the original's); one hash per crop, (side, percent): "left", "right",
    "top" or "bottom" removes that share of the width or height from that side, "all" from each
    of the four sides ("crop-left-5", "crop-all-5"); one per tilt in degrees counter-clockwise,
    on the same canvas with black corners, as a straightened or skewed copy shows ("tilt+2",
    "tilt-2"); one per tone edit, named as `tone_edit` reads it ("brightness+30", "gamma1.6").
    The listed image's own hash is not included: it is the entry's main hash.
    """
    pixels = np.ascontiguousarray(rgb, dtype=np.uint8)
    found = []
    if trim:
        inner = trim_borders(pixels)
        if inner is not None:
            found += _hashes(np.ascontiguousarray(inner), "trimmed", dihedral=False)
    for side, percent in crops:
        cropped = np.ascontiguousarray(_crop(pixels, side, percent))
        found += _hashes(cropped, f"crop-{side}-{percent}", dihedral=False)
    for degrees in tilts:
        tilted = Image.fromarray(pixels).rotate(degrees, Image.Resampling.BICUBIC, fillcolor=0)
        found += _hashes(np.asarray(tilted), f"tilt{degrees:+g}", dihedral=False)
    for name in tones:
        found += _hashes(tone_edit(pixels, name), name, dihedral=False)
    return found


_TONE = re.compile(r"(brightness|saturation)([+-][1-9][0-9]?)|gamma([0-9]\.[0-9]{1,2})")


def tone_edit(rgb: RGB, name: str) -> RGB:
    """`rgb` with the tone edit `name` applied, as photo editors apply it: "brightness+30"
    scales every channel by 1.3 and clips; "gamma1.6" maps each channel v to 255 (v/255)^1.6
    (above 1 darkens the mid-tones, below 1 lightens them); "saturation+50" moves each pixel
    half as far again from its grey (ITU-R 601 luma), clipping. ValueError for other names."""
    match = _TONE.fullmatch(name)
    if match is None:
        raise ValueError(
            f"unknown tone edit {name!r}: expected brightness+-PERCENT, saturation+-PERCENT "
            "or gammaVALUE"
        )
    kind, percent, power = match.groups()
    levels = np.arange(256, dtype=np.float64)
    if kind == "brightness":
        table = levels * (1 + int(percent) / 100)
    elif kind is None:
        if not 0.1 <= float(power) <= 9.0:
            raise ValueError(f"gamma {power} is outside 0.1-9")
        table = 255 * (levels / 255) ** float(power)
    else:
        pixels = rgb.astype(np.float32)
        grey = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        pixels -= grey[..., None]
        pixels *= 1 + int(percent) / 100
        pixels += grey[..., None]
        return np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    return np.clip(np.round(table), 0, 255).astype(np.uint8)[rgb]


def trim_borders(
    rgb: RGB,
    *,
    tolerance: int = 16,
    coverage: float = 0.95,
    bar_coverage: float | None = 0.8,
    min_border: float = 0.01,
    min_remaining: float = 0.3,
    passes: int = 4,
) -> RGB | None:
    """The image without its solid-colour borders, as a view; None when there is nothing to trim.

    A border is a run of whole rows or columns at an edge whose pixels are, in at least
    `coverage` of each line, within `tolerance` (per channel) of the colour of the outermost
    line: padding, letterbox and pillarbox bars survive JPEG that way. A side whose border is
    under `min_border` of its length is left alone (a hairline changes no hash). Where a side has
    no such border, a looser test (`bar_coverage` of each line) is tried, which takes a
    screenshot's status or title bar with its clock and icons; it comes second because the looser
    test, tried first, also eats into photographs whose edge is a plain wall or sky. Trimming
    repeats up to `passes` times, so nested frames (a title bar, then the viewer's background)
    come off layer by layer.

    None when no side has a border, and when trimming would leave less than `min_remaining` of
    the height or width: a near-uniform image, or one that is mostly a plain field, has no
    content to hash reliably, and a trimmed sliver would only add a poor, collision-prone hash.
    (A landscape photo in a portrait phone screenshot fills about a third of the height, hence
    a floor this low.)
    """
    height, width = rgb.shape[:2]
    top, bottom, left, right = 0, height, 0, width
    for _ in range(passes):
        region = rgb[top:bottom, left:right]
        views = {
            "top": region,
            "bottom": region[::-1],
            "left": region.transpose(1, 0, 2),
            "right": region.transpose(1, 0, 2)[::-1],
        }
        depths = {}
        for side, lines in views.items():
            least = max(
                2, math.ceil(min_border * lines.shape[1 if side in ("left", "right") else 0])
            )
            depth = _border_depth(lines, tolerance, coverage)
            if depth < least and bar_coverage is not None:
                depth = _bar_depth(lines, tolerance, bar_coverage, least)
            depths[side] = depth if depth >= least else 0
        if not any(depths.values()):
            break
        top, bottom = top + depths["top"], bottom - depths["bottom"]
        left, right = left + depths["left"], right - depths["right"]
        if bottom - top < min_remaining * height or right - left < min_remaining * width:
            return None
    if (top, bottom, left, right) == (0, height, 0, width):
        return None
    return rgb[top:bottom, left:right]


def _border_depth(lines: RGB, tolerance: int, coverage: float) -> int:
    """How many leading lines (first axis) are uniform in the colour of the first line.

    Most images have no border, so the first line is tested alone; after that the lines are
    tested in blocks that double in size, so the work follows the depth of the border, not the
    size of the image.
    """
    reference = np.median(lines[0], axis=0).astype(np.int16)
    start, block = 0, 1
    while start < len(lines):
        chunk = lines[start : start + block].astype(np.int16)
        # Channel by channel: a reduction over the three-long last axis is slow in NumPy.
        close = np.abs(chunk[..., 0] - reference[0]) <= tolerance
        for channel in (1, 2):
            close &= np.abs(chunk[..., channel] - reference[channel]) <= tolerance
        uniform = close.mean(axis=1) >= coverage
        if not uniform.all():
            return start + int(np.argmin(uniform))
        start += block
        block = 8 if block == 1 else 2 * block
    return len(lines)


def _bar_depth(lines: RGB, tolerance: int, coverage: float, least: int) -> int:
    """The depth of a bar with a few marks in it (a clock, icons, a title), or 0.

    Only a thin bar that a plain border follows counts: that is how a screenshot's status,
    navigation and title bars sit on a viewer's background, and it is rarely how the edge of a
    photograph looks, which a loose test alone would often take for a bar.
    """
    depth = _border_depth(lines, tolerance, coverage)
    if not least <= depth <= _MAX_BAR * len(lines):
        return 0
    return depth if _border_depth(lines[depth:], tolerance, 0.95) >= least else 0


def _crop(rgb: RGB, side: str, percent: int) -> RGB:
    height, width = rgb.shape[:2]
    dy, dx = round(height * percent / 100), round(width * percent / 100)
    if side == "left":
        return rgb[:, dx:]
    if side == "right":
        return rgb[:, : width - dx]
    if side == "top":
        return rgb[dy:]
    if side == "bottom":
        return rgb[: height - dy]
    if side == "all":
        return rgb[dy : height - dy, dx : width - dx]
    raise ValueError(f"unknown crop side {side!r}: expected left, right, top, bottom or all")


def pdq_hash(rgb: RGB) -> tuple[npt.NDArray[np.integer], int]:
    """The reference PDQ hash of `rgb` (pdqhash.compute's 256 bits) and its quality.

    PDQ's hash does not change when an image's tones are scaled (every DCT coefficient but one
    scales alike, and the bits are their order about the median), but its quality, a sum of
    gradients, shrinks with them: a copy darkened by 30% keeps its hash and loses 30% of its
    quality, so a quality-70 image falls under the floor, and darkening by 60% hid two thirds
    of the benchmark's images from a plain matcher (docs/detection-quality.md). So where the
    quality is under MIN_QUALITY and the image's tones span less than the full range, the
    quality is measured again on a copy stretched to the full range (at most MAX_STRETCH
    times), and the higher of the two is kept. The hash itself is always that of the pixels as
    given, so it stays comparable with every other PDQ implementation's; only images whose
    quality is low pay for a second pass, of the quality alone (hashwatch.dihedral.pdq_quality).
    """
    bits, quality = pdqhash.compute(rgb)
    return bits, _full_range_quality(rgb, int(quality))


def _full_range_quality(rgb: RGB, quality: int) -> int:
    if quality >= MIN_QUALITY:
        return quality
    table = _stretch_table(rgb)
    if table is None:
        return quality
    return max(quality, pdq_quality(table[rgb]))


def _stretch_table(rgb: RGB) -> npt.NDArray[np.uint8] | None:
    """A lookup table that maps the image's tonal range onto 0-255, the same for each channel
    (so luminance is stretched alike and hue is kept), or None when the range is nearly full."""
    sample = rgb[::4, ::4]
    if sample.size == 0:
        return None
    counts = np.cumsum(np.bincount(sample.reshape(-1), minlength=256))
    low = int(np.searchsorted(counts, counts[-1] * _STRETCH_TAIL, side="right"))
    high = int(np.searchsorted(counts, counts[-1] * (1 - _STRETCH_TAIL)))
    gain = min(MAX_STRETCH, 255 / max(high - low, 1))
    if gain < 1.1:
        return None
    middle = (low + high) / 2
    levels = (np.arange(256) - middle) * gain + 127.5
    return np.clip(np.round(levels), 0, 255).astype(np.uint8)


def _hashes(rgb: RGB, prefix: str, dihedral: bool, exact: bool = True) -> list[VariantHash]:
    """The plain hash (named after `prefix`, or "original"), or all eight dihedral hashes."""
    if not dihedral:
        bits, quality = pdq_hash(rgb)
        return [_variant(prefix, "original", bits, quality)]
    if not exact:
        all_bits, quality = pdqhash.compute_dihedral(rgb)
        quality = _full_range_quality(rgb, int(quality))
        return [
            _variant(prefix, name, bits, quality)
            for name, bits in zip(DIHEDRAL, all_bits, strict=True)
        ]
    # The reference code's hash for the image as given, so that the original stays comparable
    # with every other PDQ implementation's whatever the floating-point order of the others.
    bits, quality = pdq_hash(rgb)
    found = dihedral_bits(rgb)
    found["original"] = np.asarray(bits)
    return [_variant(prefix, name, found[name], quality) for name in DIHEDRAL]


def _variant(prefix: str, name: str, bits: npt.ArrayLike, quality: int) -> VariantHash:
    value = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()
    return VariantHash(_name(prefix, name), value, int(quality))


def _name(prefix: str, variant: str) -> str:
    if not prefix:
        return variant
    return prefix if variant == "original" else f"{prefix}+{variant}"
