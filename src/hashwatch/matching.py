"""The matcher: answers "is this hash on any of these lists?" from in-memory indexes, and keeps
them current from the store's change feed.

It is built from the store's active entries (revoked entries are never loaded, so they never
match) into one index per signal type: an exact lookup for cryptographic hashes, an exact
Hamming range search for perceptual ones. Each perceptual entry carries its list's threshold,
so lists with different thresholds share one index: the search uses the largest threshold and
each hit is kept only within its own list's. A perceptual query hash whose quality is below the
floor (50 for PDQ by default) is reported as skipped rather than matched, because low-quality
hashes of near-uniform images collide with unrelated ones.

Every match explains itself: list, entry id, signal type, listed value, distance, category,
labels and source, and which hash on each side matched: the query's (`variant`: "original", or
a rotation, flip or trimmed form of an uploaded image) and the entry's (`entry_variant`:
"original", or one of the entry hashes a listed image carries, hashwatch.entryhashes, such as
"crop-left-5"). An entry's entry hashes are indexed as further codes of the same entry, so an
entry found through several of its codes is still one match, at its closest.

Keeping current: `Matcher.refresh(session)` reads the lists table (no entries), and for each list
whose last sequence number is past the one the matcher holds, applies the list's change feed
(`hashwatch.lists.changes`) from there: adds go into the indexes, revocations leave them. Lists
created since are picked up when the matcher follows every list, deleted ones are dropped, and a
changed threshold applies to the entries already held. Applying is idempotent (an add of an entry
already held, or a revocation of one not held, changes nothing), because a load can already hold
changes past the sequence number it recorded: on PostgreSQL's READ COMMITTED every statement
sees its own snapshot.

Threads: one matcher serves many request threads while a background thread refreshes it. A
match holds a read lock, so matches run together; refresh reads the database holding no lock,
then applies each page of changes (at most `_PAGE`) under the write lock, so a match never waits
for more than one page. HammingIndex is not thread-safe on its own, hence the lock.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session

from hashwatch.errors import InvalidHash, InvalidInput, ListNotFound, UnknownSignalType
from hashwatch.hashing import MediaHashes
from hashwatch.index import ExactIndex, HammingIndex
from hashwatch.index.hamming import concat_ranges
from hashwatch.lists import Change, changes, thresholds_for, variants_for
from hashwatch.signals import PixelSignalType, SignalType, all_signal_types, get_signal_type
from hashwatch.signals.pdq import MIN_QUALITY
from hashwatch.store.models import VARIANT_KINDS, ChangeKind, HashList, ListEntry
from hashwatch.tuning import release_free_memory
from hashwatch.variants import VariantHash

__all__ = ["Match", "MatchReport", "Matcher", "RefreshResult"]

#: Changes read per page of the feed and applied per hold of the write lock.
_PAGE = 10_000
#: Entries fetched per round trip when loading.
_LOAD_BATCH = 100_000
#: The entry-id map keeps recent adds in a dict until there are this many (or a quarter of the
#: rest), then sorts them into its arrays.
_MERGE_AT = 50_000

IdArray = npt.NDArray[np.int64]
ThresholdArray = npt.NDArray[np.int32]
KindArray = npt.NDArray[np.uint8]  # masks of _KIND_BITS
VariantArray = npt.NDArray[np.uint16]  # per code: which hash of its entry (0: its own)
Hits = list[tuple[int, int, int]]  # (entry position, distance, entry variant id)

#: Each kind of query variant as one bit of a mask.
_KIND_BITS = {kind: 1 << i for i, kind in enumerate(VARIANT_KINDS)}


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
    #: Which hash of the query matched: "original", or a variant such as "rotate-90" or
    #: "trimmed" (hashwatch.variants) when the media was matched with its variants.
    variant: str = "original"
    #: Which hash of the entry matched: "original" (its value), or one of its entry hashes
    #: such as "crop-left-5" (hashwatch.entryhashes).
    entry_variant: str = "original"

    def to_json(self) -> dict[str, Any]:
        return {
            "list": self.list,
            "list_id": self.list_id,
            "entry_id": self.entry_id,
            "signal_type": self.signal_type,
            "value": self.value,
            "distance": self.distance,
            "category": self.category,
            "labels": list(self.labels),
            "source": self.source,
            "variant": self.variant,
            "entry_variant": self.entry_variant,
        }


@dataclass(frozen=True)
class MatchReport:
    """The matches of one item, best first, and the hashes that were not used and why."""

    matches: list[Match] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RefreshResult:
    """What one `Matcher.refresh` applied: entries added and revoked, lists picked up, lists
    dropped (deleted), and held lists that changed (entries, thresholds or name)."""

    added: int = 0
    revoked: int = 0
    lists_added: int = 0
    lists_removed: int = 0
    lists_updated: int = 0


class _ReadWriteLock:
    """Many readers at once, or one writer.

    Writer-preferring: once a writer waits, new readers wait behind it, so a writer waits only
    for the readers already in. Readers that waited through a write are let in before the next
    writer, so a run of writes cannot starve them either.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._condition = threading.Condition(self._mutex)
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self._readers_waiting = 0
        self._admit = 0  # readers that waited through the last write, to let in before a writer

    # Reads are plain calls, not a context manager: they are on every match's path.
    def acquire_read(self) -> None:
        with self._mutex:
            if self._writing or self._writers_waiting:
                self._readers_waiting += 1
                while self._writing or (self._writers_waiting and not self._admit):
                    self._condition.wait()
                self._readers_waiting -= 1
                if self._admit:
                    self._admit -= 1
            self._readers += 1

    def release_read(self) -> None:
        with self._mutex:
            self._readers -= 1
            if not self._readers and self._writers_waiting:
                self._condition.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            while self._writing or self._readers or self._admit:
                self._condition.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._admit = self._readers_waiting
                self._condition.notify_all()


@dataclass(eq=False)
class _HeldList:
    """A list as the matcher holds it. Entries point at this object, not at the list id: SQLite
    can hand a deleted list's id (and its entries' ids) to new rows."""

    id: int
    name: str
    created_at: datetime
    thresholds: dict[str, int]
    variants: int  # the kinds of query variant it matches, as a mask of _KIND_BITS
    seq: int  # complete up to this sequence number of the list's feed
    dropped: bool = False

    @classmethod
    def of(cls, hash_list: HashList, seq: int) -> _HeldList:
        return cls(
            hash_list.id,
            hash_list.name,
            hash_list.created_at,
            thresholds_for(hash_list),
            _kinds_mask(variants_for(hash_list)),
            seq,
        )


def _room(array: npt.NDArray[Any], size: int) -> npt.NDArray[Any]:
    """`array`, or a copy with room for `size` items (doubling, so appends cost O(1) each)."""
    if size <= len(array):
        return array
    grown = np.zeros(max(size, 2 * len(array), 1024), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


class _PixelIndex:
    """One perceptual signal type: a Hamming index of codes and, by index id, each code's entry
    position, list id, list threshold (-1 once removed), the kinds of query variant its list
    matches (a mask of _KIND_BITS), and which hash of its entry it is (0 for the entry's own
    value, else the matcher's id of an entry hash's variant name).

    An entry with entry hashes has several codes, with consecutive ids: its own, then its entry
    hashes. The arrays have room beyond the index's size; ids from the index only reach the
    filled part. Entry positions only grow, so the positions array is sorted (with repeats).
    """

    def __init__(
        self,
        codes: npt.NDArray[np.uint8],
        positions: IdArray,
        list_ids: IdArray,
        thresholds: ThresholdArray,
        kinds: KindArray,
        variants: VariantArray,
    ) -> None:
        self.index = HammingIndex(codes) if len(codes) else HammingIndex()
        self._count = len(positions)
        self._positions = positions
        self._list_ids = list_ids
        self._thresholds = thresholds
        self._kinds = kinds
        self._variants = variants
        #: Whether any entry has several codes: only then must hits be merged per entry.
        self._several = bool(variants.any())
        self._widest = -1
        self._widen()

    @classmethod
    def empty(cls) -> _PixelIndex:
        return cls(
            np.zeros((0, 32), dtype=np.uint8),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.int32),
            np.zeros(0, dtype=np.uint8),
            np.zeros(0, dtype=np.uint16),
        )

    def add(
        self,
        codes: npt.NDArray[np.uint8],
        positions: IdArray,
        list_id: int,
        threshold: int,
        kinds: int,
        variants: VariantArray,
    ) -> None:
        """Add codes of new entries; `positions` ascending, an entry's codes together."""
        first = self.index.add(codes)
        stop = first + len(positions)
        self._positions = _room(self._positions, stop)
        self._list_ids = _room(self._list_ids, stop)
        self._thresholds = _room(self._thresholds, stop)
        self._kinds = _room(self._kinds, stop)
        self._variants = _room(self._variants, stop)
        self._positions[first:stop] = positions
        self._list_ids[first:stop] = list_id
        self._thresholds[first:stop] = threshold
        self._kinds[first:stop] = kinds
        self._variants[first:stop] = variants
        self._several = self._several or bool(variants.any())
        self._count = stop
        self._widest = max(self._widest, threshold)

    def remove(self, positions: IdArray) -> None:
        """Remove the entries at these positions (each held, live, of this type), every code of
        each: its own and its entry hashes."""
        held = self._positions[: self._count]
        first = np.searchsorted(held, positions, side="left")
        ids = concat_ranges(first, np.searchsorted(held, positions, side="right") - first)
        self.index.remove(ids)
        self._thresholds[ids] = -1
        self._widen()

    def remove_list(self, list_id: int) -> IdArray:
        """Remove every live entry of one list; return their positions (once each)."""
        ids = np.flatnonzero(
            (self._list_ids[: self._count] == list_id) & (self._thresholds[: self._count] >= 0)
        )
        if len(ids):
            self.index.remove(ids)
            self._thresholds[ids] = -1
            self._widen()
        return np.unique(self._positions[ids])

    def set_threshold(self, list_id: int, threshold: int) -> None:
        live = self._thresholds[: self._count]
        live[(self._list_ids[: self._count] == list_id) & (live >= 0)] = threshold
        self._widen()

    def set_kinds(self, list_id: int, kinds: int) -> None:
        self._kinds[: self._count][self._list_ids[: self._count] == list_id] = kinds

    def _widen(self) -> None:
        self._widest = int(self._thresholds[: self._count].max()) if self._count else -1

    def search(
        self,
        codes: npt.NDArray[np.uint8],
        lists: IdArray | None,
        needs: KindArray | None = None,
    ) -> list[Hits]:
        """Per query: (entry position, distance, entry variant id) of every entry within its
        own list's threshold, of the lists in `lists` (sorted ids; None for all), once per
        entry. `needs`, per query, the kinds of variant it is (0 for an original hash): a
        variant matches only lists that take them."""
        if self._widest < 0:
            return [[] for _ in range(len(codes))]
        found = self.index.search(codes, max_distance=self._widest)
        single = len(found) == 1
        if single:
            ids, distances = found[0]
        else:  # every query's hits at once: a few NumPy calls per batch, not per query
            ids = np.concatenate([f[0] for f in found])
            distances = np.concatenate([f[1] for f in found])
        keep = distances <= self._thresholds[ids]
        if lists is not None:
            keep &= _member(self._list_ids[ids], lists)
        owners = None
        if needs is not None and needs.any():
            owners = np.repeat(np.arange(len(found)), [len(f[0]) for f in found])
            keep &= (needs[owners] & ~self._kinds[ids]) == 0
        ids, kept = ids[keep], distances[keep]
        positions, variants = self._positions[ids], self._variants[ids]
        if single:
            owner = np.zeros(len(ids), dtype=np.int64)
        else:
            if owners is None:
                owners = np.repeat(np.arange(len(found)), [len(f[0]) for f in found])
            owner = owners[keep]
        if self._several and len(ids) > 1:
            # An entry found through several of its codes (its own and its entry hashes) is one
            # hit, at its closest; on a tie through its own value (variant 0) first.
            order = np.lexsort((variants, kept, positions, owner))
            owner, positions = owner[order], positions[order]
            kept, variants = kept[order], variants[order]
            first = np.ones(len(order), dtype=bool)
            first[1:] = (owner[1:] != owner[:-1]) | (positions[1:] != positions[:-1])
            owner, positions, kept, variants = (
                owner[first],
                positions[first],
                kept[first],
                variants[first],
            )
        hits = list(zip(positions.tolist(), kept.tolist(), variants.tolist(), strict=True))
        if single:
            return [hits]
        bounds = np.searchsorted(owner, np.arange(len(found) + 1)).tolist()
        return [hits[a:b] for a, b in pairwise(bounds)]


class _LoadParts:
    """One perceptual signal type's codes as a load reads them, a batch at a time: each batch's
    values are turned into arrays at once, so a load never holds millions of hex strings (at
    200,000 entries with ten entry hashes each, the load took 5.1 s instead of 7.1)."""

    def __init__(self) -> None:
        self.codes: list[npt.NDArray[np.uint8]] = []
        self.positions: list[IdArray] = []
        self.owners: list[IdArray] = []
        self.variants: list[VariantArray] = []
        self.several = False  # whether any entry has entry hashes

    def add(
        self,
        hexes: Sequence[str],
        positions: IdArray,
        owners: IdArray,
        variants: VariantArray | None = None,
    ) -> None:
        # One conversion per batch: a million bytes.fromhex calls cost seconds.
        codes = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=np.uint8).reshape(-1, 32)
        self.codes.append(codes)
        self.positions.append(positions)
        self.owners.append(owners)
        self.variants.append(np.zeros(len(codes), np.uint16) if variants is None else variants)
        self.several = self.several or variants is not None

    def add_extras(
        self,
        raw: list[Any],
        positions: IdArray,
        owners: IdArray,
        variant_id: Callable[[str], int],
    ) -> None:
        """The stored entry hashes of some entries (at these positions, of these lists).

        Text (SQLite) is joined into one JSON array and parsed in one call: a million entries
        parsed one by one cost several seconds of a load."""
        if isinstance(raw[0], str):
            decoded: list[Any] = json.loads("[" + ",".join(raw) + "]")
        else:
            decoded = raw  # psycopg decodes JSON itself
        decoded = [items or [] for items in decoded]  # a JSON null (written by hand) holds none
        counts = [len(items) for items in decoded]
        names = [item["variant"] for items in decoded for item in items]
        ids = {name: variant_id(name) for name in set(names)}
        self.add(
            [item["value"] for items in decoded for item in items],
            np.repeat(positions, counts),
            np.repeat(owners, counts),
            np.asarray([ids[name] for name in names], dtype=np.uint16),
        )

    def arrays(self) -> tuple[npt.NDArray[np.uint8], IdArray, IdArray, VariantArray]:
        """Codes, entry positions, list ids and variant ids, each entry's codes together in
        position order, its own first. The batches are let go."""
        codes = np.concatenate(self.codes)
        at = np.concatenate(self.positions)
        owners = np.concatenate(self.owners)
        variants = np.concatenate(self.variants)
        for batches in (self.codes, self.positions, self.owners, self.variants):
            batches.clear()
        if self.several:
            # Each batch adds its entries' own codes before their entry hashes: a stable sort
            # by position keeps that order within an entry.
            order = np.argsort(at, kind="stable")
            return codes[order], at[order], owners[order], variants[order]
        return codes, at, owners, variants


def _member(values: IdArray, sorted_ids: IdArray) -> npt.NDArray[np.bool_]:
    """Which values are in sorted_ids (a handful of list ids)."""
    if not len(sorted_ids):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
    result: npt.NDArray[np.bool_] = sorted_ids[at] == values
    return result


class _EntryPositions:
    """Entry id -> position in the matcher's columns: finds what a revocation removes and which
    adds are already held.

    The bulk is two NumPy arrays sorted by entry id: 16 MB and one sort of already-sorted ids
    for a million entries, where a dict took 67 MB. Entries added since sit in a dict until it
    is large enough to sort in.
    """

    def __init__(self, ids: IdArray, positions: IdArray) -> None:
        order = np.argsort(ids, kind="stable")
        self._ids = ids[order]
        self._positions = positions[order]
        self._recent: dict[int, int] = {}

    def get_many(self, entry_ids: Sequence[int]) -> list[int]:
        """The latest position of each id, or -1 where none."""
        if not len(self._ids):
            found = [-1] * len(entry_ids)
        else:
            query = np.asarray(entry_ids, dtype=np.int64)
            at = np.minimum(np.searchsorted(self._ids, query), len(self._ids) - 1)
            found = np.where(self._ids[at] == query, self._positions[at], -1).tolist()
        if self._recent:
            recent = self._recent
            found = [recent.get(e, p) for e, p in zip(entry_ids, found, strict=True)]
        return found

    def put_many(self, positions: dict[int, int]) -> None:
        self._recent.update(positions)
        if len(self._recent) > max(_MERGE_AT, len(self._ids) // 4):
            ids = np.concatenate([self._ids, np.fromiter(self._recent, np.int64)])
            at = np.concatenate([self._positions, np.fromiter(self._recent.values(), np.int64)])
            order = np.argsort(ids, kind="stable")  # a reused id: its newest position sorts last
            ids, at = ids[order], at[order]
            last = np.ones(len(ids), dtype=bool)
            last[:-1] = ids[1:] != ids[:-1]
            self._ids, self._positions = ids[last], at[last]
            self._recent = {}


class _LabelSets(dict[Any, tuple[str, ...]]):
    """Label sets as stored (JSON text, or lists where the driver decodes JSON itself), each
    decoded once and shared: lists use a few distinct sets."""

    def __missing__(self, key: Any) -> tuple[str, ...]:
        value = self[key] = tuple(json.loads(key)) if isinstance(key, str) else key
        return value

    def of(self, raw: Sequence[Any]) -> list[tuple[str, ...]]:
        if raw and not isinstance(raw[0], str):
            return [self[tuple(item)] for item in raw]
        return [self[item] for item in raw]


@dataclass
class _Page:
    """One page of the feed, prepared outside the lock: the new entries' columns, their codes
    per index, and the positions to revoke."""

    entry_ids: list[int] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)
    labels: list[tuple[str, ...]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    #: Per signal type: codes as hex, their entry positions, and which hash of the entry each is.
    pixel: dict[str, tuple[list[str], list[int], list[int]]] = field(default_factory=dict)
    exact: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    revoked: dict[str, list[int]] = field(default_factory=dict)  # positions, by signal type
    positions: dict[int, int] = field(default_factory=dict)  # entry id -> position, of the adds


class Matcher:
    """Indexes of the active entries of some lists; build with `from_store`, keep current with
    `refresh`. Safe to share between threads: any number matching, one refreshing.

    Entries are held column-wise (one list per field, indexed by position), not as an object
    each: a list of millions loads in seconds, not minutes. A revoked entry leaves the indexes but
    keeps its position.
    """

    def __init__(self) -> None:
        self._lists: dict[int, _HeldList] = {}
        self._follow: set[int] | None = None  # the list ids followed; None for every list
        self._list_of: list[_HeldList] = []  # per entry position
        self._entry_ids: list[int] = []
        self._types: list[str] = []
        self._values: list[str] = []
        self._categories: list[str | None] = []
        self._labels: list[tuple[str, ...]] = []
        self._sources: list[str] = []
        self._live = np.zeros(0, dtype=bool)  # per position; read and written by refresh alone
        self._live_count = 0
        self._positions = _EntryPositions(np.zeros(0, np.int64), np.zeros(0, np.int64))
        self._exact: dict[str, ExactIndex] = {}
        self._pixel: dict[str, _PixelIndex] = {}
        self._label_sets = _LabelSets()
        #: Names of the entries' hashes, by the id the pixel indexes hold: 0 is an entry's own
        #: value. Only refresh appends; a reader only sees ids of codes already indexed.
        self._entry_variants: list[str] = ["original"]
        self._entry_variant_ids: dict[str, int] = {"original": 0}
        self._lock = _ReadWriteLock()
        self._refreshing = threading.Lock()  # one refresh at a time

    def __len__(self) -> int:
        """Number of live entries."""
        return self._live_count

    @property
    def list_ids(self) -> frozenset[int]:
        """Ids of the lists held."""
        self._lock.acquire_read()
        try:
            return frozenset(self._lists)
        finally:
            self._lock.release_read()

    def held_seq(self, list_id: int) -> int:
        """The sequence number of the list's feed that the matcher is complete up to."""
        self._lock.acquire_read()
        try:
            held = self._lists.get(list_id)
        finally:
            self._lock.release_read()
        if held is None:
            raise ListNotFound(f"list {list_id} is not held by this matcher")
        return held.seq

    # --- loading ---------------------------------------------------------------------------

    @classmethod
    def from_store(cls, session: Session, hash_lists: Sequence[HashList] | None = None) -> Matcher:
        """Load the active entries of these lists, or of every list (None): then `refresh` also
        picks up lists created later."""
        matcher = cls()
        if hash_lists is not None:
            matcher._follow = {hash_list.id for hash_list in hash_lists}
        # Each list's sequence number is read before its entries, so the entries are complete
        # up to it (and may hold later changes, which applying the feed again leaves as they are).
        for hash_list in matcher._read_lists(session):
            matcher._lists[hash_list.id] = _HeldList.of(hash_list, hash_list.last_seq)
        if matcher._follow is not None:
            matcher._follow &= set(matcher._lists)
        with _collector_paused():
            matcher._load(session)
        # The load's temporaries (decoded rows, the index build's sort buffers) were freed but
        # stay in the heap: at 200,000 entries with ten entry hashes each, handing them back
        # took the process's growth from 919 MB to 532 MB.
        release_free_memory()
        return matcher

    def _read_lists(self, session: Session) -> list[HashList]:
        """The followed lists' rows as they are now (a long-lived session's copies refreshed)."""
        query = select(HashList).execution_options(populate_existing=True)
        if self._follow is not None:
            if not self._follow:
                return []
            query = query.where(HashList.id.in_(sorted(self._follow)))
        return list(session.scalars(query))

    def _variant_id(self, name: str) -> int:
        """The id of an entry hash's variant name, given one when first seen."""
        found = self._entry_variant_ids.get(name)
        if found is None:
            if len(self._entry_variants) > np.iinfo(np.uint16).max:
                raise InvalidInput("too many distinct entry hash variant names to hold")
            found = self._entry_variant_ids[name] = len(self._entry_variants)
            self._entry_variants.append(name)
        return found

    def _load(self, session: Session) -> None:
        held_of = self._lists
        if not held_of:
            return
        kinds = {kind.name: kind for kind in all_signal_types()}
        pixel_parts: dict[str, _LoadParts] = {}
        # Labels as stored text, decoded once per distinct set; drivers that decode JSON
        # themselves (psycopg) hand back lists instead.
        query = (
            select(
                ListEntry.id,
                ListEntry.list_id,
                ListEntry.signal_type,
                ListEntry.value,
                ListEntry.category,
                type_coerce(ListEntry.labels, String),
                ListEntry.source,
                # As text where the driver leaves it so: decoded below only where not NULL.
                type_coerce(ListEntry.extra_hashes, String),
            )
            .where(
                ListEntry.list_id.in_(sorted(held_of)),
                ListEntry.revoked_seq.is_(None),
            )
            .order_by(ListEntry.id)
            .execution_options(yield_per=_LOAD_BATCH)
        )
        # Core rather than ORM execution, and whole columns at a time: per-row Python is what
        # a million-entry load pays for.
        for batch in session.connection().execute(query).partitions():
            rows: Sequence[Any] = batch
            if not set(kinds).issuperset({row[2] for row in rows}):
                rows = [row for row in rows if row[2] in kinds]  # a type not installed: not held
                if not rows:
                    continue
            start = len(self._entry_ids)
            entry_ids, list_ids, types, values, categories, labels, sources, extras = zip(
                *rows, strict=True
            )
            self._entry_ids.extend(entry_ids)
            self._list_of.extend([held_of[list_id] for list_id in list_ids])
            self._types.extend(map(sys.intern, types))
            self._values.extend(values)
            self._categories.extend(categories)
            self._labels.extend(self._label_sets.of(labels))
            self._sources.extend(sources)
            names = set(types)
            # Most lists have no entry hashes: one C-speed count tells, not a loop per row.
            any_extra = extras.count(None) != len(extras)
            for name in names:
                if len(names) == 1:
                    offsets: Sequence[int] = range(len(types))
                    chosen: Sequence[str] = values
                else:
                    offsets = [i for i, t in enumerate(types) if t == name]
                    chosen = [values[i] for i in offsets]
                kind = kinds[name]
                if issubclass(kind, PixelSignalType):
                    parts = pixel_parts.setdefault(kind.name, _LoadParts())
                    at = np.asarray(offsets, dtype=np.int64)
                    parts.add(chosen, at + start, np.asarray(list_ids, dtype=np.int64)[at])
                    with_extra = [i for i in offsets if extras[i] is not None] if any_extra else []
                    if with_extra:
                        parts.add_extras(
                            [extras[i] for i in with_extra],
                            np.asarray(with_extra, dtype=np.int64) + start,
                            np.asarray(list_ids, dtype=np.int64)[with_extra],
                            self._variant_id,
                        )
                else:
                    exact = self._exact.setdefault(kind.name, ExactIndex())
                    exact.add_many(zip(chosen, [start + i for i in offsets], strict=True))
        count = len(self._entry_ids)
        self._live = np.ones(count, dtype=bool)
        self._live_count = count
        self._positions = _EntryPositions(
            np.fromiter(self._entry_ids, dtype=np.int64, count=count),
            np.arange(count, dtype=np.int64),
        )
        for name, parts in pixel_parts.items():
            codes, at, owner_ids, variants = parts.arrays()
            held_ids, inverse = np.unique(owner_ids, return_inverse=True)
            per_list = [held_of[int(i)].thresholds[name] for i in held_ids]
            thresholds = np.asarray(per_list, dtype=np.int32)[inverse.reshape(-1)]
            masks = [held_of[int(i)].variants for i in held_ids]
            taken = np.asarray(masks, dtype=np.uint8)[inverse.reshape(-1)]
            self._pixel[name] = _PixelIndex(codes, at, owner_ids, thresholds, taken, variants)

    # --- keeping current -------------------------------------------------------------------

    def refresh(self, session: Session) -> RefreshResult:
        """Apply what changed in the store since the last load or refresh.

        Reads happen without the lock; each page of changes is applied under the write lock.
        Safe to call while other threads match; calls from several threads run one at a time.
        """
        with self._refreshing:
            current = {hash_list.id: hash_list for hash_list in self._read_lists(session)}
            removed = 0
            for gone in list(self._lists.values()):
                row = current.get(gone.id)
                if row is None or row.created_at != gone.created_at:  # deleted (or replaced)
                    self._drop(gone)
                    removed += 1
            added = revoked = 0
            new: set[int] = set()
            updated: set[int] = set()
            for hash_list in current.values():
                held = self._lists.get(hash_list.id)
                if held is None:
                    if self._follow is not None and hash_list.id not in self._follow:
                        continue
                    with self._lock.writing():
                        held = self._lists[hash_list.id] = _HeldList.of(hash_list, 0)
                    new.add(held.id)
                elif (
                    hash_list.name != held.name
                    or thresholds_for(hash_list) != held.thresholds
                    or _kinds_mask(variants_for(hash_list)) != held.variants
                ):
                    self._configure(held, hash_list)
                    updated.add(held.id)
                while held.seq < hash_list.last_seq:
                    page = changes(session, hash_list, after=held.seq, limit=_PAGE)
                    if not page:
                        break
                    page_added, page_revoked = self._apply(held, page)
                    added += page_added
                    revoked += page_revoked
                    updated.add(held.id)
                    if len(page) < _PAGE:
                        break
            return RefreshResult(
                added=added,
                revoked=revoked,
                lists_added=len(new),
                lists_removed=removed,
                lists_updated=len(updated - new),
            )

    def _configure(self, held: _HeldList, hash_list: HashList) -> None:
        """Take a list's new name, thresholds and variant kinds; they apply to entries held."""
        thresholds = thresholds_for(hash_list)
        kinds = _kinds_mask(variants_for(hash_list))
        with self._lock.writing():
            held.name = hash_list.name
            for name, pixel in self._pixel.items():
                threshold = thresholds.get(name)
                if threshold is not None and threshold != held.thresholds.get(name):
                    pixel.set_threshold(held.id, threshold)
                if kinds != held.variants:
                    pixel.set_kinds(held.id, kinds)
            held.thresholds = thresholds
            held.variants = kinds

    def _drop(self, held: _HeldList) -> None:
        """Forget a deleted list: none of its entries match from the first lock on."""
        with self._lock.writing():
            held.dropped = True  # exact hits of its entries not removed yet are filtered out
            del self._lists[held.id]
            for pixel in self._pixel.values():
                self._kill(pixel.remove_list(held.id))
        if self._follow is not None:
            self._follow.discard(held.id)  # a new list given the same id is another list
        if not self._exact:
            return
        positions = [p for p, owner in enumerate(self._list_of) if owner is held and self._live[p]]
        for start in range(0, len(positions), _PAGE):
            chunk = positions[start : start + _PAGE]
            with self._lock.writing():
                for p in chunk:
                    self._exact[self._types[p]].remove(p)
            self._kill(np.asarray(chunk, dtype=np.int64))

    def _kill(self, positions: IdArray) -> None:
        self._live[positions] = False
        self._live_count -= len(positions)

    def _apply(self, held: _HeldList, page: list[Change]) -> tuple[int, int]:
        """Apply one page of a list's feed; return (entries added, entries revoked)."""
        prepared = self._prepare(held, page)
        added = len(prepared.entry_ids)
        codes = {
            name: (
                np.frombuffer(bytes.fromhex("".join(hexes)), dtype=np.uint8).reshape(-1, 32),
                np.asarray(positions, dtype=np.int64),
                np.asarray(variants, dtype=np.uint16),
            )
            for name, (hexes, positions, variants) in prepared.pixel.items()
        }
        revoked = {
            name: np.asarray(positions, dtype=np.int64)
            for name, positions in prepared.revoked.items()
        }
        with self._lock.writing():
            start = len(self._entry_ids)
            self._entry_ids.extend(prepared.entry_ids)
            self._types.extend(prepared.types)
            self._values.extend(prepared.values)
            self._categories.extend(prepared.categories)
            self._labels.extend(prepared.labels)
            self._sources.extend(prepared.sources)
            self._list_of.extend([held] * added)
            for name, (code_array, positions, variants) in codes.items():
                pixel = self._pixel.get(name)
                if pixel is None:
                    pixel = self._pixel[name] = _PixelIndex.empty()
                threshold = held.thresholds.get(name, get_signal_type(name).default_threshold)
                pixel.add(code_array, positions, held.id, threshold, held.variants, variants)
            for name, pairs in prepared.exact.items():
                self._exact.setdefault(name, ExactIndex()).add_many(pairs)
            for name, positions in revoked.items():
                if name in self._pixel:
                    self._pixel[name].remove(positions)
                else:
                    exact = self._exact[name]
                    for p in positions.tolist():
                        exact.remove(p)
            held.seq = page[-1].seq
        self._live = _room(self._live, start + added)
        self._live[start : start + added] = True
        self._live_count += added
        for positions in revoked.values():
            self._kill(positions)
        self._positions.put_many(prepared.positions)
        return added, sum(len(positions) for positions in revoked.values())

    def _prepare(self, held: _HeldList, page: list[Change]) -> _Page:
        """Sort a page into new entries and revocations, skipping what is already applied.

        Runs outside the lock: only refresh changes the state it reads.
        """
        prepared = _Page()
        start = len(self._entry_ids)
        found = self._positions.get_many([change.entry_id for change in page])
        for change, position in zip(page, found, strict=True):
            if position >= 0 and self._list_of[position] is not held:
                position = -1  # the id of an entry of a deleted list, given to a new entry
            position = prepared.positions.get(change.entry_id, position)
            if change.kind == ChangeKind.ADD:
                if position >= 0:
                    continue  # held already: the load or an earlier refresh saw it
                kind = _known_kind(change.signal_type)
                if kind is None:
                    continue
                position = prepared.positions[change.entry_id] = start + len(prepared.entry_ids)
                prepared.entry_ids.append(change.entry_id)
                prepared.types.append(kind.name)
                prepared.values.append(change.value)
                prepared.categories.append(change.category)
                prepared.labels.append(self._label_sets[tuple(change.labels)])
                prepared.sources.append(change.source)
                if issubclass(kind, PixelSignalType):
                    hexes, positions, variants = prepared.pixel.setdefault(kind.name, ([], [], []))
                    hexes.append(change.value)
                    positions.append(position)
                    variants.append(0)
                    for extra in change.extra_hashes:  # after its own: an entry's codes together
                        hexes.append(extra.value)
                        positions.append(position)
                        variants.append(self._variant_id(extra.variant))
                else:
                    prepared.exact.setdefault(kind.name, []).append((change.value, position))
            elif position >= 0 and (position >= start or self._live[position]):
                name = (
                    self._types[position] if position < start else prepared.types[position - start]
                )
                prepared.revoked.setdefault(name, []).append(position)
        return prepared

    # --- matching --------------------------------------------------------------------------

    def match_value(
        self,
        signal_type: str | type[SignalType],
        value: str,
        quality: int | None = None,
        quality_floor: int = MIN_QUALITY,
        lists: Collection[int] | None = None,
    ) -> MatchReport:
        """Match one hash. `value` is parsed (case and white space forgiven) before matching.

        `lists`: ids of the lists to match against (others are left out); None for all held.
        """
        kind = _kind(signal_type)
        return self._reports(kind, [kind.parse(value)], [quality], quality_floor, lists)[0]

    def match_values(
        self,
        signal_type: str | type[SignalType],
        values: Sequence[str],
        qualities: Sequence[int | None] | None = None,
        lists: Collection[int] | None = None,
        quality_floor: int = MIN_QUALITY,
    ) -> list[MatchReport]:
        """Match many hashes of one signal type: one report per value, in order.

        Every value is parsed first (InvalidHash names the first bad item by its 0-based index);
        perceptual hashes are then searched in one batch, several times faster per hash.
        """
        kind = _kind(signal_type)
        if qualities is not None and len(qualities) != len(values):
            raise InvalidInput(
                f"qualities must have one item per value: {len(qualities)} for {len(values)}"
            )
        normals: list[str] = []
        for i, value in enumerate(values):
            try:
                normals.append(kind.parse(value))
            except InvalidHash as exc:
                raise InvalidHash(f"item {i}: {exc}") from None
        chosen = list(qualities) if qualities is not None else [None] * len(normals)
        return self._reports(kind, normals, chosen, quality_floor, lists)

    def match_media(
        self,
        media: MediaHashes,
        quality_floor: int = MIN_QUALITY,
        lists: Collection[int] | None = None,
    ) -> MatchReport:
        """Match every hash of one file; matches of all signal types, best first.

        Where the media was hashed with variants (its rotations and flips, its trimmed form),
        they are matched too, each against the lists that take its kind; an entry matched by
        several hashes is reported once, by the closest (the original on a tie).
        """
        matches: list[Match] = []
        skipped: list[str] = []
        for name, value in media.hashes.items():
            quality = media.quality.get(name)
            extra = media.variants.get(name)
            if extra:
                report = self._match_variants(name, value, quality, extra, quality_floor, lists)
            else:
                report = self.match_value(name, value, quality, quality_floor, lists)
            matches.extend(report.matches)
            skipped.extend(report.skipped)
        return MatchReport(matches=sorted(matches, key=_rank), skipped=skipped)

    def _match_variants(
        self,
        signal_type: str,
        value: str,
        quality: int | None,
        variants: Sequence[VariantHash],
        quality_floor: int,
        lists: Collection[int] | None,
    ) -> MatchReport:
        """One perceptual hash and its variants' hashes, searched together."""
        kind = _kind(signal_type)
        below_floor = quality is not None and quality < quality_floor
        if not issubclass(kind, PixelSignalType) or below_floor:
            # Skipped (a near-uniform image: its variants are no better), or not perceptual.
            return self.match_value(kind, value, quality, quality_floor, lists)
        # A variant below the floor (a trimmed image can be nearly uniform) is left out quietly:
        # it is an extra attempt, not the media's hash.
        chosen = [VariantHash("original", kind.parse(value), quality or 0)]
        chosen += [v for v in variants if v.quality >= quality_floor]
        packed = b"".join(kind.to_bytes(kind.parse(v.value)) for v in chosen)
        codes = np.frombuffer(packed, dtype=np.uint8).reshape(len(chosen), -1)
        needs = np.asarray([_variant_needs(v.variant) for v in chosen], dtype=np.uint8)
        wanted = None if lists is None else np.unique(np.fromiter(lists, np.int64))
        # entry position -> (distance, query hash order, entry variant id)
        best: dict[int, tuple[int, int, int]] = {}
        self._lock.acquire_read()
        try:
            pixel = self._pixel.get(kind.name)
            if pixel is None:
                return MatchReport()
            for order, hits in enumerate(pixel.search(codes, wanted, needs)):
                for position, distance, entry_variant in hits:
                    if (distance, order) < best.get(position, (distance + 1, 0, 0))[:2]:
                        best[position] = (distance, order, entry_variant)
            hits = [(position, distance, v) for position, (distance, _, v) in best.items()]
            names = [chosen[order].variant for _, order, _ in best.values()]
            return MatchReport(self._matches(hits, None, names))
        finally:
            self._lock.release_read()

    def _reports(
        self,
        kind: type[SignalType],
        normals: list[str],
        qualities: Sequence[int | None],
        quality_floor: int,
        lists: Collection[int] | None,
    ) -> list[MatchReport]:
        """Reports of parsed values, in order."""
        if not issubclass(kind, PixelSignalType):
            allowed = None if lists is None else frozenset(lists)
            self._lock.acquire_read()
            try:
                exact = self._exact.get(kind.name)
                if exact is None:
                    return [MatchReport() for _ in normals]
                return [
                    MatchReport(self._matches([(p, 0, 0) for p in exact.search(n)], allowed))
                    for n in normals
                ]
            finally:
                self._lock.release_read()
        reports: list[MatchReport | None] = [None] * len(normals)
        searched: list[int] = []
        for i, quality in enumerate(qualities):
            if quality is not None and quality < quality_floor:
                reports[i] = MatchReport(
                    skipped=[
                        f"{kind.name} quality {quality} is below the floor of {quality_floor}; "
                        "not matched"
                    ]
                )
            else:
                searched.append(i)
        if searched:
            packed = b"".join(kind.to_bytes(normals[i]) for i in searched)
            codes = np.frombuffer(packed, dtype=np.uint8).reshape(len(searched), -1)
            wanted = None if lists is None else np.unique(np.fromiter(lists, np.int64))
            self._lock.acquire_read()
            try:
                pixel = self._pixel.get(kind.name)
                found = pixel.search(codes, wanted) if pixel else [[] for _ in searched]
                for i, hits in zip(searched, found, strict=True):
                    reports[i] = MatchReport(self._matches(hits, None))
            finally:
                self._lock.release_read()
        return [report for report in reports if report is not None]

    def _matches(
        self,
        hits: Hits,
        allowed: frozenset[int] | None,
        variants: Sequence[str] | None = None,
    ) -> list[Match]:
        """Matches of the hits, best first; hits of dropped lists (an exact entry whose deleted
        list is still being cleared out) and, where given, of lists not allowed are left out.
        `variants` names the query variant of each hit (default: all the original)."""
        matches: list[Match] = []
        names = self._entry_variants
        for i, (position, distance, entry_variant) in enumerate(hits):
            held = self._list_of[position]
            if held.dropped or (allowed is not None and held.id not in allowed):
                continue
            matches.append(
                Match(
                    list=held.name,
                    list_id=held.id,
                    entry_id=self._entry_ids[position],
                    signal_type=self._types[position],
                    value=self._values[position],
                    distance=distance,
                    category=self._categories[position],
                    labels=self._labels[position],
                    source=self._sources[position],
                    variant="original" if variants is None else variants[i],
                    entry_variant=names[entry_variant],
                )
            )
        matches.sort(key=_rank)
        return matches


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector during a bulk load.

    Loading allocates millions of objects the collector tracks (result rows, the buckets of the
    exact index) and keeps most of them, and every so often that sets off a full collection,
    which walks every object held so far and frees nothing: a million-entry list loaded here in
    8.2 s with the collector running and in 4.5 s with it held off.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _kinds_mask(kinds: Collection[str]) -> int:
    return sum(_KIND_BITS[kind] for kind in set(kinds) if kind in _KIND_BITS)


def _variant_needs(variant: str) -> int:
    """The kinds a list must take for a query variant to match it: "trimmed+rotate-90" needs
    both, "trimmed" only trim, "rotate-90" only dihedral, "original" none."""
    needs = 0
    for part in variant.split("+"):
        if part == "trimmed":
            needs |= _KIND_BITS["trim"]
        elif part != "original":
            needs |= _KIND_BITS["dihedral"]
    return needs


def _kind(signal_type: str | type[SignalType]) -> type[SignalType]:
    return signal_type if isinstance(signal_type, type) else get_signal_type(signal_type)


def _known_kind(name: str) -> type[SignalType] | None:
    """The signal type, or None for one not installed here (its entries are not held)."""
    try:
        return get_signal_type(name)
    except UnknownSignalType:
        return None


def _rank(match: Match) -> tuple[int, str, int]:
    return (match.distance, match.list, match.entry_id)
