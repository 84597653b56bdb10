"""Listing images the list's owner holds: each image's hashes, and its entry hashes, as entries.

An owner who has the images (a hotline's own verified material) can list them without the
assessment queue: `hashwatch lists add-images`. Each image is hashed as an upload is
(hashwatch.hashing) and gives up to four entries, one per chosen signal type; its PDQ entry also
carries the entry hashes the list's `entry_hashes` setting asks for (hashwatch.entryhashes),
computed from the same decode as its own hash, so that cropped copies match it. The image is
dropped once hashed: nothing of it is kept but the hashes.

A PDQ hash below the quality floor is not listed (a near-uniform image collides with unrelated
ones; the matcher skips such query hashes too), and the image is listed by its exact hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hashwatch import entryhashes
from hashwatch.errors import InvalidInput, MediaError
from hashwatch.hashing import hash_bytes
from hashwatch.lists import NewEntry, make_entry
from hashwatch.media import MediaLimits, decode_rgb
from hashwatch.signals import all_signal_types
from hashwatch.signals.pdq import MIN_QUALITY

__all__ = ["ListedImage", "image_entries", "parse_signal_types"]


@dataclass(frozen=True)
class ListedImage:
    """The entries made from one image, and what was left out and why."""

    entries: list[NewEntry] = field(default_factory=list)
    pdq_quality: int | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def extra_hashes(self) -> int:
        return sum(len(entry.extra_hashes) for entry in self.entries)


def parse_signal_types(text: str) -> tuple[str, ...]:
    """Signal types named in comma-separated text, each one installed, in registry order."""
    known = [kind.name for kind in all_signal_types()]
    chosen = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = sorted(chosen - set(known))
    if unknown:
        raise InvalidInput(f"unknown signal type {unknown[0]!r}; choose from {', '.join(known)}")
    if not chosen:
        raise InvalidInput("name at least one signal type")
    return tuple(name for name in known if name in chosen)


def image_entries(
    data: bytes,
    setting: str,
    limits: MediaLimits,
    *,
    signal_types: Sequence[str] = ("pdq", "md5", "sha1", "sha256"),
    category: str | None = None,
    labels: str | Sequence[str] | None = None,
    source: str = "",
    note: str = "",
) -> ListedImage:
    """The entries of one image for a list whose entry_hashes setting is `setting`.

    Raises MediaError when the bytes cannot be hashed, or when a PDQ entry is asked for and the
    bytes are not a decodable image: an owner listing an image means the image."""
    hashed = hash_bytes(data, limits)
    if hashed.failure is not None and not hashed.hashes:
        raise hashed.failure
    if hashed.error is not None and "pdq" in signal_types:
        raise MediaError(hashed.error)
    entries: list[NewEntry] = []
    skipped: list[str] = []
    quality = hashed.quality.get("pdq")
    for name in signal_types:
        value = hashed.hashes.get(name)
        if value is None:
            continue
        extra: tuple[entryhashes.EntryHash, ...] = ()
        if name == "pdq":
            if (quality or 0) < MIN_QUALITY:
                skipped.append(
                    f"pdq quality {quality} is below the floor of {MIN_QUALITY}; not listed"
                )
                continue
            if setting != "none":
                # Decoded again (a few ms against the crops' hashing): hash_bytes keeps no pixels.
                extra = entryhashes.compute(decode_rgb(data, limits), setting)
        entries.append(
            make_entry(
                name,
                value,
                category,
                labels,
                source,
                note,
                [h.to_json() for h in extra],
            )
        )
    return ListedImage(entries, quality, skipped)
