"""The matcher: answers "is this hash on any of these lists?" from in-memory indexes.

It is built from the store's active entries (revoked entries are never loaded, so they never
match) into one index per signal type: an exact lookup for cryptographic hashes, an exact
Hamming range search for perceptual ones. Each perceptual entry carries its list's threshold,
so lists with different thresholds share one index: the search uses the largest threshold and
each hit is kept only within its own list's. A perceptual query hash whose quality is below the
floor (50 for PDQ by default) is reported as skipped rather than matched, because low-quality
hashes of near-uniform images collide with unrelated ones.

Every match explains itself: list, entry id, signal type, listed value, distance, category,
labels and source.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session

from hashwatch.hashing import MediaHashes
from hashwatch.index import ExactIndex, HammingIndex
from hashwatch.lists import thresholds_for
from hashwatch.signals import PixelSignalType, SignalType, get_signal_type
from hashwatch.signals.pdq import MIN_QUALITY
from hashwatch.store.models import HashList, ListEntry

__all__ = ["Match", "MatchReport", "Matcher"]


@dataclass(frozen=True)
class Match:
    list: str
    list_id: int
    entry_id: int
    signal_type: str
    value: str
    distance: int
    category: str | None
    labels: tuple[str, ...]
    source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "list": self.list,
            "entry_id": self.entry_id,
            "signal_type": self.signal_type,
            "value": self.value,
            "distance": self.distance,
            "category": self.category,
            "labels": list(self.labels),
            "source": self.source,
        }


@dataclass(frozen=True)
class MatchReport:
    """The matches of one item, best first, and the hashes that were not used and why."""

    matches: list[Match] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class _PixelIndex:
    """One perceptual signal type: codes, and per code its entry and its list's threshold."""

    def __init__(self) -> None:
        self.hex_values: list[str] = []
        self.positions: list[int] = []
        self.thresholds: list[int] = []
        self.index = HammingIndex()
        self._position_array = np.empty(0, dtype=np.int64)
        self._threshold_array = np.empty(0, dtype=np.int32)
        self._widest = 0

    def freeze(self) -> None:
        """Build the index once every entry is known."""
        if self.hex_values:
            # One conversion for every value: a million bytes.fromhex calls cost seconds.
            packed = bytes.fromhex("".join(self.hex_values))
            self.index = HammingIndex(np.frombuffer(packed, dtype=np.uint8).reshape(-1, 32))
        self._position_array = np.asarray(self.positions, dtype=np.int64)
        self._threshold_array = np.asarray(self.thresholds, dtype=np.int32)
        self._widest = int(self._threshold_array.max()) if len(self._threshold_array) else 0
        self.hex_values = []

    def search(self, code: bytes) -> list[tuple[int, int]]:
        """(entry position, distance) for every entry within its own list's threshold."""
        if not len(self._threshold_array):
            return []
        query = np.frombuffer(code, dtype=np.uint8).reshape(1, -1)
        ids, distances = self.index.search(query, max_distance=self._widest)[0]
        keep = distances <= self._threshold_array[ids]
        return list(
            zip(self._position_array[ids[keep]].tolist(), distances[keep].tolist(), strict=True)
        )


class Matcher:
    """Indexes of the active entries of some lists; build with `from_store`.

    Entries are held column-wise (one list per field, indexed by position), not as an object
    each: a list of millions loads in seconds, not minutes.
    """

    def __init__(self) -> None:
        self._lists: list[tuple[int, str]] = []  # (id, name) of each list, by list position
        self._list_of: list[int] = []  # per entry: its list's position
        self._entry_ids: list[int] = []
        self._types: list[str] = []
        self._values: list[str] = []
        self._categories: list[str | None] = []
        self._labels: list[tuple[str, ...]] = []
        self._sources: list[str] = []
        self._exact: dict[str, ExactIndex] = {}
        self._pixel: dict[str, _PixelIndex] = {}

    def __len__(self) -> int:
        return len(self._entry_ids)

    @classmethod
    def from_store(cls, session: Session, hash_lists: Sequence[HashList]) -> Matcher:
        matcher = cls()
        position_of = {hash_list.id: i for i, hash_list in enumerate(hash_lists)}
        matcher._lists = [(hash_list.id, hash_list.name) for hash_list in hash_lists]
        thresholds = [thresholds_for(hash_list) for hash_list in hash_lists]
        kinds: dict[str, type[SignalType]] = {}
        label_sets: dict[str, tuple[str, ...]] = {}
        # Labels as stored text, decoded once per distinct set (lists share a few sets); drivers
        # that decode JSON themselves (psycopg) hand back lists instead.
        raw_labels = type_coerce(ListEntry.labels, String)
        for entry_id, list_id, signal_type, value, category, labels, source in session.execute(
            select(
                ListEntry.id,
                ListEntry.list_id,
                ListEntry.signal_type,
                ListEntry.value,
                ListEntry.category,
                raw_labels,
                ListEntry.source,
            )
            .where(
                ListEntry.list_id.in_(list(position_of)),
                ListEntry.revoked_seq.is_(None),
            )
            .order_by(ListEntry.id)
            .execution_options(yield_per=100_000)
        ):
            position = len(matcher._entry_ids)
            list_position = position_of[list_id]
            matcher._list_of.append(list_position)
            matcher._entry_ids.append(entry_id)
            matcher._types.append(signal_type)
            matcher._values.append(value)
            matcher._categories.append(category)
            if isinstance(labels, str):
                decoded = label_sets.get(labels)
                if decoded is None:
                    decoded = label_sets[labels] = tuple(json.loads(labels))
                matcher._labels.append(decoded)
            else:
                matcher._labels.append(tuple(labels))
            matcher._sources.append(source)
            kind = kinds.get(signal_type) or kinds.setdefault(
                signal_type, get_signal_type(signal_type)
            )
            if issubclass(kind, PixelSignalType):
                pixel = matcher._pixel.get(kind.name)
                if pixel is None:
                    pixel = matcher._pixel[kind.name] = _PixelIndex()
                pixel.hex_values.append(value)
                pixel.positions.append(position)
                pixel.thresholds.append(thresholds[list_position][kind.name])
            else:
                exact = matcher._exact.get(kind.name)
                if exact is None:
                    exact = matcher._exact[kind.name] = ExactIndex()
                exact.add(value, position)
        for pixel in matcher._pixel.values():
            pixel.freeze()
        return matcher

    def match_value(
        self,
        signal_type: str | type[SignalType],
        value: str,
        quality: int | None = None,
        quality_floor: int = MIN_QUALITY,
    ) -> MatchReport:
        """Match one hash. `value` is parsed (case and white space forgiven) before matching."""
        kind = signal_type if isinstance(signal_type, type) else get_signal_type(signal_type)
        normal = kind.parse(value)
        if issubclass(kind, PixelSignalType):
            if quality is not None and quality < quality_floor:
                return MatchReport(
                    skipped=[
                        f"{kind.name} quality {quality} is below the floor of {quality_floor}; "
                        "not matched"
                    ]
                )
            pixel = self._pixel.get(kind.name)
            hits = pixel.search(kind.to_bytes(normal)) if pixel else []
        else:
            exact = self._exact.get(kind.name)
            hits = [(position, 0) for position in exact.search(normal)] if exact else []
        return MatchReport(matches=sorted((self._match(p, d) for p, d in hits), key=_rank))

    def match_media(self, media: MediaHashes, quality_floor: int = MIN_QUALITY) -> MatchReport:
        """Match every hash of one file; matches of all signal types, best first."""
        matches: list[Match] = []
        skipped: list[str] = []
        for name, value in media.hashes.items():
            report = self.match_value(name, value, media.quality.get(name), quality_floor)
            matches.extend(report.matches)
            skipped.extend(report.skipped)
        return MatchReport(matches=sorted(matches, key=_rank), skipped=skipped)

    def _match(self, position: int, distance: int) -> Match:
        list_id, list_name = self._lists[self._list_of[position]]
        return Match(
            list=list_name,
            list_id=list_id,
            entry_id=self._entry_ids[position],
            signal_type=self._types[position],
            value=self._values[position],
            distance=distance,
            category=self._categories[position],
            labels=self._labels[position],
            source=self._sources[position],
        )


def _rank(match: Match) -> tuple[int, str, int]:
    return (match.distance, match.list, match.entry_id)
