"""Entry hashes: extra PDQ hashes kept with a listed image's entry, so that copies edited in ways
no query variant can undo (crops, small tilts) still match it.

hashwatch.variants computes them from the listed image (`entry_variants`); this module is the
product's side of them:

- which ones a list makes, its `entry_hashes` setting: "crops+tones" (the default: the crops of
  variants.ENTRY_CROPS, the image trimmed where it has a plain edge, and the tone edits of
  variants.ENTRY_TONES), "crops" (without the tones), "crops+tilts" (crops and four tilts,
  TILTS), "wide" (10% crops too, WIDE_CROPS, with the tilts and the tones) or "none";
- how they are checked wherever they enter a list (an import file, the API, a sync from another
  server): a known variant name, 64 hex digits, at most MAX_EXTRA_HASHES per entry, PDQ only;
- how a CSV cell writes them (`crop-left-5:<hex>;crop-all-2:<hex>`); JSON writes a list of
  {"variant": ..., "value": ...} objects.

They can only be made where the list's owner has the image (an intake item being published, or
`hashwatch lists add-images`); a list received as hashes carries whatever its source sent. Each
entry hash is one more code in the matcher's index for the same entry: a list with the default
design holds about eleven codes per PDQ entry (docs/matching.md gives the cost).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hashwatch.errors import InvalidInput
from hashwatch.signals.pdq import MIN_QUALITY
from hashwatch.variants import ENTRY_CROPS, ENTRY_TONES, entry_variants

__all__ = [
    "DEFAULT_SETTING",
    "DESIGNS",
    "MAX_EXTRA_HASHES",
    "SETTINGS",
    "TILTS",
    "WIDE_CROPS",
    "EntryHash",
    "compute",
    "format_cell",
    "parse_extra_hashes",
    "parse_setting",
    "stored",
    "to_json",
]

#: The choices of a list's `entry_hashes` setting.
SETTINGS = ("crops+tones", "crops", "crops+tilts", "wide", "none")
DEFAULT_SETTING = "crops+tones"
#: The tilts of "crops+tilts" and "wide", in degrees counter-clockwise: about 98% of tilts of
#: 1-5 degrees found, against 12% for plain PDQ (hashwatch.variants.ENTRY_TILTS).
TILTS = (2.0, -2.0, 4.0, -4.0)
#: The most entry hashes one entry may carry: "wide" makes at most 20; room for a slightly
#: larger design, not for a list that would multiply its false matches without bound.
MAX_EXTRA_HASHES = 24
#: The crops of "wide": 5% and 10% off each side, 2%, 5% and 10% off all sides. With TILTS, the
#: tones and the trimmed image, docs/detection-quality.md measures "wide" at 96.9% over all its
#: edits against 89.5% for "crops+tones", with no false match, for 19 extra hashes per entry.
WIDE_CROPS: tuple[tuple[str, int], ...] = (
    *((side, percent) for percent in (5, 10) for side in ("left", "right", "top", "bottom")),
    ("all", 2),
    ("all", 5),
    ("all", 10),
)
#: What each setting makes: (crops, tilts, tone edits), beside the trimmed image.
DESIGNS: dict[str, tuple[tuple[tuple[str, int], ...], tuple[float, ...], tuple[str, ...]]] = {
    "crops+tones": (ENTRY_CROPS, (), ENTRY_TONES),
    "crops": (ENTRY_CROPS, (), ()),
    "crops+tilts": (ENTRY_CROPS, TILTS, ()),
    "wide": (WIDE_CROPS, TILTS, ENTRY_TONES),
}

# The names entry_variants gives: "trimmed", "crop-<side>-<percent>", "tilt<+/-degrees>", and
# the tone edits hashwatch.variants.tone_edit reads ("brightness+30", "gamma1.6").
_VARIANT = re.compile(
    r"trimmed"
    r"|crop-(?:left|right|top|bottom|all)-(?:[1-9]|[1-4][0-9])"
    r"|tilt[+-](?:[0-9]|[1-3][0-9]|4[0-4])(?:\.[0-9]{1,2})?"
    r"|(?:brightness|saturation)[+-][1-9][0-9]?"
    r"|gamma[0-9]\.[0-9]{1,2}"
)
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class EntryHash:
    """One extra hash of a listed image: the variant it is of, and its 64-hex PDQ value."""

    variant: str
    value: str

    def to_json(self) -> dict[str, str]:
        return {"variant": self.variant, "value": self.value}


def parse_setting(text: str) -> str:
    """A list's entry_hashes setting, checked (one of SETTINGS)."""
    value = text.strip().lower() if isinstance(text, str) else ""
    if value not in SETTINGS:
        raise InvalidInput(f"entry hashes must be one of {', '.join(SETTINGS)}, got {text!r}")
    return value


def parse_extra_hashes(raw: str | Sequence[Any] | None) -> tuple[EntryHash, ...]:
    """Entry hashes from a CSV cell (`variant:value;...`) or a JSON list of objects with the
    keys "variant" and "value"; InvalidInput says what is wrong. Empty text, null or [] is none.

    Values are normalised to lower case; a variant may appear once per entry."""
    if raw is None:
        return ()
    items: list[tuple[Any, Any]] = []
    if isinstance(raw, str):
        for part in raw.split(";"):
            if not part.strip():
                continue
            variant, sep, value = part.partition(":")
            if not sep:
                text = part.strip()[:40]
                raise InvalidInput(f"extra hash {text!r} must be written VARIANT:VALUE")
            items.append((variant, value))
    elif isinstance(raw, Sequence):
        for item in raw:
            if not isinstance(item, dict) or set(item) != {"variant", "value"}:
                raise InvalidInput(
                    'each extra hash must be an object with the keys "variant" and "value"'
                )
            items.append((item["variant"], item["value"]))
    else:
        raise InvalidInput("extra_hashes must be a list of {variant, value} objects or text")
    if len(items) > MAX_EXTRA_HASHES:
        raise InvalidInput(f"at most {MAX_EXTRA_HASHES} extra hashes per entry, got {len(items)}")
    found: list[EntryHash] = []
    for variant, value in items:
        if not isinstance(variant, str) or not isinstance(value, str):
            raise InvalidInput("an extra hash's variant and value must be text")
        name = variant.strip()
        if not _VARIANT.fullmatch(name):
            raise InvalidInput(
                f"unknown entry hash variant {name[:40]!r}: expected trimmed, "
                "crop-SIDE-PERCENT (left, right, top, bottom or all; 1 to 49), tilt+DEGREES, "
                "brightness+PERCENT, saturation+PERCENT or gammaVALUE"
            )
        hex_value = value.strip().lower()
        if not _HEX.fullmatch(hex_value):
            raise InvalidInput(f"extra hash {name!r} must be 64 hex digits (a PDQ hash)")
        if any(other.variant == name for other in found):
            raise InvalidInput(f"extra hash {name!r} appears twice")
        found.append(EntryHash(name, hex_value))
    return tuple(found)


def format_cell(hashes: Iterable[EntryHash]) -> str:
    """The CSV cell of these hashes; parse_extra_hashes reads it back."""
    return ";".join(f"{h.variant}:{h.value}" for h in hashes)


def to_json(hashes: Sequence[EntryHash]) -> list[dict[str, str]] | None:
    """What the store keeps: None for none (most entries), so the column stays NULL."""
    return [h.to_json() for h in hashes] or None


def stored(raw: Any) -> tuple[EntryHash, ...]:
    """Entry hashes as the store hands them back: None, a list of objects, or JSON text (where
    the column was read as text). Written only after parse_extra_hashes, so not checked again."""
    if raw is None:
        return ()
    items = json.loads(raw) if isinstance(raw, str) else raw
    if not items:
        return ()
    return tuple(EntryHash(item["variant"], item["value"]) for item in items)


def compute(rgb: npt.NDArray[np.uint8], setting: str) -> tuple[EntryHash, ...]:
    """The entry hashes a list with this setting keeps for a listed image (decoded as
    hashwatch.media.decode_rgb decodes it, like the image's own PDQ hash).

    Hashes below the PDQ quality floor are left out: a crop or trim that is nearly uniform has
    a hash that collides with unrelated near-uniform images, and the query side skips such
    hashes too."""
    if setting == "none":
        return ()
    crops, tilts, tones = DESIGNS[setting]
    made = entry_variants(rgb, crops=crops, tilts=tilts, tones=tones, trim=True)
    return tuple(EntryHash(v.variant, v.value) for v in made if v.quality >= MIN_QUALITY)
