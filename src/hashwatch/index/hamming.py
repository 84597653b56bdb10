"""Exact Hamming range search over 256-bit codes (PDQ), by multi-index hashing in NumPy.

Every stored code within `max_distance` bits of a query is returned (recall 1.0): the results are
those of a brute-force scan, found without scanning.

How (Norouzi, Punjani and Fleet, "Fast Search in Hamming Space with Multi-Index Hashing"):
the 256 bits are split into m disjoint substrings. For each substring a table lists the codes
sorted by that substring's value, with the start of every possible value held in a directly
addressed offsets array. By pigeonhole, if two codes differ in at most d bits, then for any radii
r_j with sum(r_j + 1) > d, some substring j differs in at most r_j bits; the radii are chosen to
need the fewest probes (see _radii). A query probes, in each table, every value within r_j bits
of its own substring; the codes found there are the candidates, and each candidate's true
distance is checked, two of its four words first. All tables and probes of a batch of queries
are handled by one vectorised gather, so Python does a fixed amount of work per batch.

Keeping it fast on real lists, which are clustered rather than random:
- identical codes are stored once (duplicates map to the same code);
- bits are dealt to substrings from their statistics on a sample of the list, so a substring is
  not made of bits that are nearly always 0 or 1, or that move together, which would pile codes
  into a few huge buckets (on the clustered benchmark set this alone made batched searches about
  30% faster);
- a query whose candidates would cost more than scanning every code is answered by a blocked
  scan instead, so no query is ever slower than brute force.

Adds go to a small pending set that every search scans; once it grows past a share of the index
it is merged into the tables by insertion (no re-sort). Removals hide ids at once; their codes
stay in the tables, filtered out of results.

The number and width of substrings trade probes against candidates: for each count that fits a
memory budget (16 substrings of 16 bits down to 11 of 23-24 bits), the expected cost of a query
is estimated on a sample of the list itself, and the cheapest is built. Around a million codes
that is usually 12 substrings, around ten million 11. Large arrays live on transparent huge
pages where offered.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from itertools import combinations
from math import comb
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["HammingIndex", "concat_ranges"]

CODE_BYTES = 32
BITS = CODE_BYTES * 8

IdArray = npt.NDArray[np.int64]
DistanceArray = npt.NDArray[np.int32]
#: Codes as 64-bit words in two halves, shape (2, n, 2): half h of row i holds words 2h and 2h + 1
#: of code i side by side, so one 16-byte read fetches the half a candidate is checked on first.
Words = npt.NDArray[np.uint64]

#: Above this many probes per query (large max_distance), scanning is cheaper than probing.
_MAX_PROBES = 20_000
#: A candidate read at random costs about as much as scanning this many codes in order
#: (measured here: about 24 ns against 4.5 ns).
_CANDIDATE_COST = 5.0
_ONE_QUERY = np.ones(1, dtype=np.int64)  # verifying one query's candidates: counts unused
#: Queries handled per vectorised batch. Small enough that a batch's temporaries (tens of
#: thousands of probes) stay in cache: 32 searched about 15% faster than 128 here.
_BATCH = 32
#: From this many codes on, bits are permuted column by column (see _Layout.permuted).
_PERMUTE_BY_COLUMN = 4096
#: Codes permuted together column by column: 32 columns of this many bytes fit the cache.
_PERMUTE_BLOCK = 1 << 16
#: Sample queries used to estimate a layout's cost, and the measured weights (see _Layout).
_COST_QUERIES = 2000
_PROBE_NS = 18.0
_FULL_PROBE_NS = 50.0
_CANDIDATE_NS = 30.0
#: Rows per block when scanning: 1 MiB per half, which stays in cache.
_SCAN_BLOCK = 1 << 16


@dataclass
class _Layout:
    """How the 256 bits are split into substrings, and the tables' shared geometry.

    Substrings are contiguous runs of bits of the code with its bits permuted (`bit_order`):
    reading four bytes of the permuted code as one big-endian word and shifting gives a
    substring's value, so computing every key of a million codes is a few vector operations. The
    permutation deals the bits out so that no substring is made of bits that are nearly constant
    or that move together on this list (see _decorrelated_order).
    """

    bit_order: npt.NDArray[np.intp]  # (256,) bit i of the permuted code is bit bit_order[i]
    widths: npt.NDArray[np.int64]  # (m,) bits per substring
    first_bytes: npt.NDArray[np.int64]  # (m,) the permuted byte where each substring starts
    shifts: npt.NDArray[np.uint32]  # (m,) right shift of the 4-byte window
    masks: npt.NDArray[np.uint32]  # (m,)
    table_base: npt.NDArray[np.int64]  # start of each table's offsets in the flat offsets array
    #: (right shift, mask) of each substring in the permuted code read as one 256-bit integer.
    key_shifts: list[tuple[int, int]]
    _probes: dict[int, _Probes | None] = field(default_factory=dict)

    @property
    def substrings(self) -> int:
        return len(self.widths)

    @classmethod
    def for_codes(cls, code_bytes: npt.NDArray[np.uint8], substrings: int | None) -> _Layout:
        """The layout for these (distinct) codes: `substrings` tables, or the count that a
        sample of the codes says is cheapest to search at distance 31."""
        rng = np.random.default_rng(0)  # a fixed sample: the same codes give the same layout
        sample = code_bytes[rng.choice(len(code_bytes), min(len(code_bytes), 60_000), False)]
        imbalance, correlation = _bit_statistics(sample[:20_000])
        counts = [substrings] if substrings else _affordable_substrings(len(code_bytes))
        best: _Layout | None = None
        best_cost = float("inf")
        for count in counts:
            widths = _widths(count)
            layout = cls.of(_decorrelated_order(imbalance, correlation, widths), widths)
            if len(counts) == 1:
                return layout
            cost = layout._estimated_cost(sample, len(code_bytes))
            if cost < best_cost:
                best, best_cost = layout, cost
        assert best is not None
        return best

    @classmethod
    def of(cls, bit_order: npt.NDArray[np.intp], widths: list[int]) -> _Layout:
        width_array = np.asarray(widths, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(width_array)[:-1]])
        first_bytes = starts // 8
        shifts = (32 - (starts % 8) - width_array).astype(np.uint32)
        masks = ((1 << width_array) - 1).astype(np.uint32)
        sizes = (1 << width_array) + 1
        table_base = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        key_shifts = [
            (BITS - int(start) - int(width), (1 << int(width)) - 1)
            for start, width in zip(starts, width_array, strict=True)
        ]
        return cls(bit_order, width_array, first_bytes, shifts, masks, table_base, key_shifts)

    def permuted(self, code_bytes: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The codes with their bits in `bit_order`.

        Few codes (a batch of queries): unpack, reorder, pack. Many (a build): bit by bit over
        whole columns, 256 masks and shifts of one byte per code each, about 14x faster at a
        million codes than reordering unpacked bits, whose column gather is slow.
        """
        if len(code_bytes) < _PERMUTE_BY_COLUMN:
            return np.packbits(np.unpackbits(code_bytes, axis=1)[:, self.bit_order], axis=1)
        out = np.empty_like(code_bytes)
        moves = [(t // 8, *divmod(source, 8), t % 8) for t, source in enumerate(self.bit_order)]
        for start in range(0, len(code_bytes), _PERMUTE_BLOCK):  # blocks that stay in cache
            columns = np.ascontiguousarray(code_bytes[start : start + _PERMUTE_BLOCK].T)
            permuted = np.zeros_like(columns)
            moved = np.empty(columns.shape[1], dtype=np.uint8)
            for row, byte, bit, place in moves:  # bit positions count from the most significant
                np.bitwise_and(columns[byte], np.uint8(0x80 >> bit), out=moved)
                if place > bit:
                    np.right_shift(moved, np.uint8(place - bit), out=moved)
                elif place < bit:
                    np.left_shift(moved, np.uint8(bit - place), out=moved)
                np.bitwise_or(permuted[row], moved, out=permuted[row])
            out[start : start + _PERMUTE_BLOCK] = permuted.T
        return out

    def keys(self, code_bytes: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
        """Each code's value in each substring, shape (n, m)."""
        count = len(code_bytes)
        padded = np.zeros((count, CODE_BYTES + 4), dtype=np.uint8)
        padded[:, :CODE_BYTES] = self.permuted(code_bytes)
        # A view whose element i is the big-endian word at byte i: no copy per window.
        at_byte = np.ndarray(
            shape=(count, CODE_BYTES + 1), dtype=">u4", buffer=padded, strides=(CODE_BYTES + 4, 1)
        )
        return (at_byte[:, self.first_bytes] >> self.shifts) & self.masks

    def one_key_set(self, code: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
        """keys() of a single code, with as few NumPy calls as possible (the common query)."""
        value = int.from_bytes(np.packbits(np.unpackbits(code)[self.bit_order]).tobytes(), "big")
        return np.array([(value >> s) & m for s, m in self.key_shifts], dtype=np.uint32)

    def _estimated_cost(self, sample: npt.NDArray[np.uint8], total: int) -> float:
        """Expected time of one query at distance 31, in nanoseconds, from a sample of the codes.

        Half the sample stands in for the queries (stored codes, so a query near a dense
        cluster counts as much as it will in use), the other half for the tables, scaled to the
        full count. The weights were fitted to searches of random codes at each substring count
        here: about 18 ns per probe (its key and occupancy bit), 50 ns more when the bucket holds
        codes (two offsets read at random, the range expanded), and 30 ns per candidate (its
        code read at random and checked). A table of n codes in 2**w buckets is taken to have
        1 - exp(-n / 2**w) of them occupied, as random codes would.
        """
        probes = self.probes(31)
        assert probes is not None
        queries, rest = sample[:_COST_QUERIES], sample[_COST_QUERIES:]
        if not len(rest):
            return float(len(probes.table)) * _PROBE_NS
        query_keys = self.keys(queries)
        rest_keys = self.keys(rest)
        found = 0.0
        full = 0.0
        for j, width in enumerate(self.widths.tolist()):
            buckets = np.bincount(rest_keys[:, j], minlength=1 << width)
            mine = probes.table == j
            slots = query_keys[:, j][:, None] ^ probes.mask[mine][None, :]
            found += float(buckets[slots].sum())
            full += float(np.count_nonzero(mine)) * -np.expm1(-total / (1 << width))
        candidates = found / len(queries) * total / len(rest)
        return len(probes.table) * _PROBE_NS + full * _FULL_PROBE_NS + candidates * _CANDIDATE_NS

    def probes(self, max_distance: int) -> _Probes | None:
        """The probe pattern for one distance (cached), or None when a scan is cheaper."""
        if max_distance not in self._probes:
            self._probes[max_distance] = self._make_probes(max_distance)
        return self._probes[max_distance]

    def _make_probes(self, max_distance: int) -> _Probes | None:
        radii = _radii(self.widths.tolist(), max_distance)
        count = sum(
            comb(w, r)
            for w, top in zip(self.widths.tolist(), radii, strict=True)
            for r in range(top + 1)
        )
        if count > _MAX_PROBES:
            return None
        tables: list[int] = []
        masks: list[int] = []
        for j, (width, radius) in enumerate(zip(self.widths.tolist(), radii, strict=True)):
            for r in range(radius + 1):
                for flipped in combinations(range(width), r):
                    tables.append(j)
                    masks.append(sum(1 << b for b in flipped))
        table = np.array(tables, dtype=np.int64)
        return _Probes(
            table=table,
            mask=np.array(masks, dtype=np.uint32),
            base=self.table_base[table],
        )


@dataclass(frozen=True)
class _Probes:
    table: npt.NDArray[np.int64]  # which substring each probe reads
    mask: npt.NDArray[np.uint32]  # the bits it flips in the query's substring value
    base: npt.NDArray[np.int64]  # where that substring's offsets start in the flat array


def _radii(widths: list[int], max_distance: int) -> list[int]:
    """The search radius of each substring, fewest probes first; -1 leaves a table out.

    Pigeonhole, generalised: if every substring j of two codes differed in more than r_j bits,
    the codes would differ in at least sum(r_j + 1) bits. So any radii with
    sum(r_j + 1) > max_distance find every match. Each step raises one radius by one, choosing
    the raise that adds the fewest probes (C(width, r + 1) for radius r + 1); these costs grow
    with r, so taking the cheapest step each time gives the fewest probes overall.
    """
    radii = [-1] * len(widths)
    for _ in range(max_distance + 1):
        j = min(range(len(widths)), key=lambda t: (comb(widths[t], radii[t] + 1), -widths[t]))
        radii[j] += 1
    return radii


def _widths(substrings: int) -> list[int]:
    return [BITS // substrings + (1 if j < BITS % substrings else 0) for j in range(substrings)]


def _affordable_substrings(unique: int) -> list[int]:
    """The substring counts whose offsets arrays (2**width entries each) fit a memory budget
    that keeps small indexes small: narrower substrings mean fewer probes, fuller buckets."""
    budget = max(16 << 20, 200 * unique)
    return [m for m in (16, 14, 13, 12, 11) if 4 * sum(2**w for w in _widths(m)) <= budget]


def _bit_statistics(
    sample: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Per bit, how unbalanced it is (|mean of +-1|); per pair, their squared correlation."""
    signs = np.unpackbits(sample, axis=1).astype(np.float32) * 2 - 1
    imbalance = np.abs(signs.mean(axis=0))
    centred = signs - signs.mean(axis=0)
    normed = centred / (np.sqrt((centred**2).mean(axis=0)) + 1e-6)
    correlation = (normed.T @ normed / len(signs)) ** 2
    np.fill_diagonal(correlation, 0.0)
    return imbalance, correlation


def _decorrelated_order(
    imbalance: npt.NDArray[np.float32], correlation: npt.NDArray[np.float32], widths: list[int]
) -> npt.NDArray[np.intp]:
    """A bit permutation that deals the 256 bits to substrings of these widths so that each
    substring's bits are as balanced and as independent of each other as the sample allows.

    Real lists are not uniform: some bits are nearly always 0 or 1 and some move together
    (PDQ's bits are signs of neighbouring DCT coefficients; near-duplicates share most bits).
    A substring of such bits takes few distinct values, so its buckets are crowded and a query
    reads many candidates. Greedily, the least balanced bits are placed first, each into the
    substring (with room left) whose bits it is least correlated with (squared correlation) and
    least jointly unbalanced with.
    """
    groups: list[list[int]] = [[] for _ in widths]
    load = np.zeros((len(widths), BITS), dtype=np.float32)  # per group: its bits' affinity
    weight = np.zeros(len(widths), dtype=np.float32)  # per group: its bits' total imbalance
    room = np.asarray(widths)
    for bit in np.argsort(-imbalance, kind="stable").tolist():
        score = load[:, bit] + imbalance[bit] * weight
        score[room == 0] = np.inf
        chosen = int(np.argmin(score))
        groups[chosen].append(bit)
        room[chosen] -= 1
        load[chosen] += correlation[bit]
        weight[chosen] += imbalance[bit]
    return np.concatenate([np.asarray(g, dtype=np.intp) for g in groups])


class HammingIndex:
    """Range search over uint8 codes of shape (n, 32); row i of the codes has id i.

    `add` appends codes under the next ids and `remove` hides ids; both are visible to the next
    search without a rebuild.
    """

    def __init__(
        self, codes: npt.ArrayLike | None = None, *, substrings: int | None = None
    ) -> None:
        """Index `codes`. `substrings` fixes the number of tables (11 to 16) instead of choosing it
        from the size of the data: for tests and tuning."""
        if substrings is not None and not 11 <= substrings <= 16:
            raise ValueError(f"substrings must be between 11 and 16, got {substrings}")
        self._substrings = substrings
        self._size = 0  # ids handed out
        self._live = np.zeros(0, dtype=bool)
        # The indexed set: unique codes (in halves, see Words), and the id(s) of each.
        self._words: Words = _no_words()
        self._first_id = np.zeros(0, dtype=np.int64)
        # Further ids of codes stored more than once, as (code, id) pairs sorted by code.
        self._dup_code = np.zeros(0, dtype=np.int64)
        self._dup_id = np.zeros(0, dtype=np.int64)
        self._layout: _Layout | None = None
        self._offsets = np.zeros(0, dtype=np.uint32)
        # One bit per offsets slot: does that bucket hold any code (see _buckets).
        self._occupied = np.zeros(0, dtype=np.uint8)
        self._perm = np.zeros(0, dtype=np.uint32)
        # Added since the tables were built: scanned by every search until merged.
        self._pending_ids: IdArray = np.zeros(0, dtype=np.int64)
        self._pending_words: Words = _no_words()
        if codes is not None:
            array = _as_bytes(codes)
            self._grow_live(len(array))
            self._build(array, np.arange(len(array), dtype=np.int64))
            self._size = len(array)

    def __len__(self) -> int:
        """Number of live (not removed) codes."""
        return int(np.count_nonzero(self._live[: self._size]))

    # --- changes ---------------------------------------------------------------------------

    def add(self, codes: npt.ArrayLike) -> int:
        """Append codes; return the id of the first. Ids are consecutive from there."""
        array = _as_bytes(codes)
        first = self._size
        ids = np.arange(first, first + len(array), dtype=np.int64)
        self._grow_live(first + len(array))
        self._size += len(array)
        if len(array):
            self._pending_ids = np.concatenate([self._pending_ids, ids])
            self._pending_words = np.concatenate([self._pending_words, _to_words(array)], axis=1)
            # Merge while scanning the pending codes stays cheap next to a probe.
            if len(self._pending_ids) > max(2048, len(self._first_id) // 256):
                self._merge_pending()
        return first

    def remove(self, ids: npt.ArrayLike) -> None:
        """Hide the given ids from every later search. Unknown ids are an error."""
        index = np.asarray(ids, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= self._size):
            raise IndexError(f"ids must be in 0..{self._size - 1}")
        self._live[index] = False

    # --- search ----------------------------------------------------------------------------

    def search(
        self, queries: npt.ArrayLike, max_distance: int = 31
    ) -> list[tuple[IdArray, DistanceArray]]:
        """For each query, the ids of all live codes within `max_distance`, and their distances.

        Results for one query are in ascending id order.
        """
        if not 0 <= max_distance <= BITS:
            raise ValueError(f"max_distance must be in 0..{BITS}, got {max_distance}")
        query_bytes = _as_bytes(queries)
        if not len(query_bytes):
            return []
        if len(query_bytes) == 1:
            return [self._search_one(query_bytes[0], max_distance)]
        found_q: list[IdArray] = []
        found_id: list[IdArray] = []
        found_d: list[DistanceArray] = []
        for start in range(0, len(query_bytes), _BATCH):
            batch = query_bytes[start : start + _BATCH]
            q, ids, d = self._search_batch(batch, max_distance)
            found_q.append(q + start)
            found_id.append(ids)
            found_d.append(d)
        return _split(
            len(query_bytes),
            np.concatenate(found_q),
            np.concatenate(found_id),
            np.concatenate(found_d),
        )

    def _search_one(
        self, code: npt.NDArray[np.uint8], max_distance: int
    ) -> tuple[IdArray, DistanceArray]:
        """One query: the batch path's steps with the per-batch machinery left out.

        Single lookups are the service's common case, and at this size NumPy's per-call cost
        dominates, so this path makes as few calls as it can.
        """
        words = _to_words(code[None])[:, 0]
        codes, distances = self._one_query_codes(code, words, max_distance)
        ids = self._first_id[codes]
        if len(self._dup_code) and len(codes):
            at, counts = self._duplicates_of(codes)
            ids = np.concatenate([ids, self._dup_id[at]])
            distances = np.concatenate([distances, np.repeat(distances, counts)])
        if len(self._pending_ids):
            rows, pending_distances = _scan(self._pending_words, words, max_distance)
            ids = np.concatenate([ids, self._pending_ids[rows]])
            distances = np.concatenate([distances, pending_distances])
        live = self._live[ids]
        ids, distances = ids[live], distances[live]
        order = np.argsort(ids, kind="stable")
        return ids[order], distances[order]

    def _one_query_codes(
        self, code: npt.NDArray[np.uint8], words: npt.NDArray[np.uint64], max_distance: int
    ) -> tuple[IdArray, DistanceArray]:
        """`words` is the query's pair of halves, shape (2, 2)."""
        """The indexed codes within max_distance of one query, each once, and their distances."""
        layout = self._layout
        if layout is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
        probes = layout.probes(max_distance)
        if probes is not None:
            keys = layout.one_key_set(code)
            slots = (keys[probes.table] ^ probes.mask) + probes.base
            _, starts, lengths = self._buckets(slots)
            if int(lengths.sum()) * _CANDIDATE_COST <= len(self._first_id):
                candidates = self._perm[concat_ranges(starts, lengths)].astype(np.int64)
                rows, distances = _verify(
                    self._words, candidates, words[:, None], _ONE_QUERY, max_distance
                )
                codes, first = np.unique(rows, return_index=True)
                return codes, distances[first]
        return _scan(self._words, words, max_distance)

    def _search_batch(
        self, query_bytes: npt.NDArray[np.uint8], max_distance: int
    ) -> tuple[IdArray, IdArray, DistanceArray]:
        query_words = _to_words(query_bytes)
        parts_q: list[IdArray] = []
        parts_u: list[IdArray] = []
        parts_d: list[DistanceArray] = []
        unique = len(self._first_id)
        if unique:
            to_scan = np.ones(len(query_bytes), dtype=bool)
            probes = self._layout.probes(max_distance) if self._layout else None
            if probes is not None:
                q, u, d, to_scan = self._probe(query_bytes, query_words, probes, max_distance)
                parts_q.append(q)
                parts_u.append(u)
                parts_d.append(d)
            for query in np.flatnonzero(to_scan):
                u, d = _scan(self._words, query_words[:, query], max_distance)
                parts_q.append(np.full(len(u), query, dtype=np.int64))
                parts_u.append(u)
                parts_d.append(d)
        q_all = np.concatenate(parts_q) if parts_q else np.zeros(0, np.int64)
        u_all = np.concatenate(parts_u) if parts_u else np.zeros(0, np.int64)
        d_all = np.concatenate(parts_d) if parts_d else np.zeros(0, np.int32)
        # A code found through several substrings is one hit.
        if len(q_all):
            _, first = np.unique(q_all * max(unique, 1) + u_all, return_index=True)
            q_all, u_all, d_all = q_all[first], u_all[first], d_all[first]
        ids = self._first_id[u_all]
        if len(self._dup_code) and len(u_all):
            at, counts = self._duplicates_of(u_all)
            ids = np.concatenate([ids, self._dup_id[at]])
            q_all = np.concatenate([q_all, np.repeat(q_all, counts)])
            d_all = np.concatenate([d_all, np.repeat(d_all, counts)])
        pending_q, pending_ids, pending_d = self._scan_pending(query_words, max_distance)
        q_all = np.concatenate([q_all, pending_q])
        ids = np.concatenate([ids, pending_ids])
        d_all = np.concatenate([d_all, pending_d])
        live = self._live[ids]
        return q_all[live], ids[live], d_all[live]

    def _probe(
        self,
        query_bytes: npt.NDArray[np.uint8],
        query_words: Words,
        probes: _Probes,
        max_distance: int,
    ) -> tuple[IdArray, IdArray, DistanceArray, npt.NDArray[np.bool_]]:
        """Candidates from the tables; returns hits and which queries need a scan instead."""
        assert self._layout is not None
        keys = self._layout.keys(query_bytes)  # (q, m)
        slots = (keys[:, probes.table] ^ probes.mask).astype(np.int64) + probes.base  # (q, p)
        found, starts, lengths = self._buckets(slots.ravel())
        owner = found // slots.shape[1]  # each query's buckets in turn
        per_query = np.bincount(owner, weights=lengths, minlength=len(query_bytes))
        per_query = per_query.astype(np.int64)
        to_scan = per_query * _CANDIDATE_COST > len(self._first_id)
        if to_scan.any():
            probed = ~to_scan[owner]
            starts, lengths = starts[probed], lengths[probed]
        probing = np.flatnonzero(~to_scan)
        candidates = self._perm[concat_ranges(starts, lengths)].astype(np.int64)
        counts = per_query[probing]
        keep, distances = _verify_positions(
            self._words, candidates, query_words[:, probing], counts, max_distance
        )
        owners = np.repeat(probing, counts)[keep]
        return owners, candidates[keep], distances, to_scan

    def _buckets(self, slots: IdArray) -> tuple[IdArray, IdArray, IdArray]:
        """Of these probed offsets slots, which (positions in `slots`) find codes, and those
        buckets' starts and lengths in _perm.

        An unrelated query finds most buckets empty (at a million random codes, about two in
        three). A bit per bucket, 1/32 the size of the offsets and so mostly in cache, rules
        those out before the offsets, read at random from main memory, are touched: batched
        searches of unrelated queries ran about 25% faster.
        """
        bits = (self._occupied[slots >> 3] >> (slots & 7).astype(np.uint8)) & np.uint8(1)
        found = np.flatnonzero(bits.view(np.bool_))
        slots = slots[found]
        starts = self._offsets[slots].astype(np.int64)
        return found, starts, self._offsets[slots + 1] - starts

    def _mark_occupied(self) -> None:
        self._occupied = np.packbits(self._offsets[1:] > self._offsets[:-1], bitorder="little")

    def _scan_pending(
        self, query_words: Words, max_distance: int
    ) -> tuple[IdArray, IdArray, DistanceArray]:
        words, ids = self._pending_words, self._pending_ids
        if not len(ids):
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.int32)
        parts_q, parts_ids, parts_d = [], [], []
        for query in range(query_words.shape[1]):
            rows, d = _scan(words, query_words[:, query], max_distance)
            parts_q.append(np.full(len(rows), query, dtype=np.int64))
            parts_ids.append(ids[rows])
            parts_d.append(d)
        return np.concatenate(parts_q), np.concatenate(parts_ids), np.concatenate(parts_d)

    # --- building --------------------------------------------------------------------------

    def _grow_live(self, size: int) -> None:
        if size > len(self._live):
            grown = np.zeros(max(size, 2 * len(self._live)), dtype=bool)
            grown[: len(self._live)] = self._live
            self._live = grown
        self._live[self._size : size] = True

    def _build(self, code_bytes: npt.NDArray[np.uint8], ids: IdArray) -> None:
        """Index these codes from scratch (the first build, or when no tables exist yet)."""
        first_index, inverse = _distinct(code_bytes)
        unique_bytes = code_bytes[first_index]
        self._words = _on_huge_pages(_to_words(unique_bytes))
        self._first_id = ids[first_index]
        self._dup_code = np.zeros(0, dtype=np.int64)
        self._dup_id = np.zeros(0, dtype=np.int64)
        duplicate = np.ones(len(code_bytes), dtype=bool)
        duplicate[first_index] = False
        self._note_duplicates(inverse[duplicate], ids[duplicate])
        if not len(unique_bytes):
            self._layout = None
            return
        self._layout = _Layout.for_codes(unique_bytes, self._substrings)
        keys = self._layout.keys(unique_bytes)
        total = int(self._layout.table_base[-1] + (1 << self._layout.widths[-1]) + 1)
        self._offsets = _huge_empty(total, np.uint32)  # every entry is written below
        self._perm = _huge_empty(self._layout.substrings * len(unique_bytes), np.uint32)
        placed = 0
        for j, width in enumerate(self._layout.widths.tolist()):
            order = _argsort_keys(keys[:, j], width)
            counts = np.bincount(keys[:, j], minlength=1 << width)
            base = int(self._layout.table_base[j])
            self._offsets[base + 1 : base + (1 << width) + 1] = np.cumsum(counts) + placed
            self._offsets[base] = placed
            self._perm[placed : placed + len(order)] = order
            placed += len(order)
        self._mark_occupied()

    def _merge_pending(self) -> None:
        """Move pending codes into the tables by insertion, keeping one entry per distinct code."""
        ids, words = self._pending_ids, self._pending_words
        self._pending_ids = np.zeros(0, dtype=np.int64)
        self._pending_words = _no_words()
        code_bytes = _from_words(words)
        if self._layout is None:
            self._build(code_bytes, ids)
            return
        # Codes already indexed become further ids of the existing code.
        known_q, known_u, _ = self._probe_exact(code_bytes)
        self._note_duplicates(known_u, ids[known_q])
        new = np.ones(len(ids), dtype=bool)
        new[known_q] = False
        code_bytes, ids = code_bytes[new], ids[new]
        if not len(ids):
            return
        first_index, inverse = _distinct(code_bytes)
        fresh = code_bytes[first_index]
        first_new = len(self._first_id)
        self._words = _on_huge_pages(np.concatenate([self._words, _to_words(fresh)], axis=1))
        self._first_id = np.concatenate([self._first_id, ids[first_index]])
        repeated = np.ones(len(ids), dtype=bool)
        repeated[first_index] = False
        self._note_duplicates(first_new + inverse[repeated], ids[repeated])
        new_u = np.arange(first_new, first_new + len(fresh), dtype=np.uint32)
        keys = self._layout.keys(fresh)
        positions, values = [], []
        for j in range(self._layout.substrings):
            # In key order: new codes of different keys can share one insertion point (between
            # the same two old entries), and np.insert keeps equal points in the order given.
            order = np.argsort(keys[:, j], kind="stable")
            base = int(self._layout.table_base[j])
            slots = base + keys[order, j].astype(np.int64) + 1
            positions.append(self._offsets[slots].astype(np.int64))
            values.append(new_u[order])
        self._perm = _on_huge_pages(
            np.insert(self._perm, np.concatenate(positions), np.concatenate(values))
        )
        for j, width in enumerate(self._layout.widths.tolist()):
            base = int(self._layout.table_base[j])
            table = self._offsets[base : base + (1 << width) + 1]
            table[1:] += np.cumsum(np.bincount(keys[:, j], minlength=1 << width)).astype(np.uint32)
            table += np.uint32(j * len(fresh))  # insertions into the tables before this one
        self._mark_occupied()

    def _note_duplicates(self, codes: IdArray, ids: IdArray) -> None:
        """Record further ids of stored codes."""
        if not len(codes):
            return
        code = np.concatenate([self._dup_code, codes.astype(np.int64)])
        id_ = np.concatenate([self._dup_id, ids.astype(np.int64)])
        order = np.argsort(code, kind="stable")
        self._dup_code, self._dup_id = code[order], id_[order]

    def _duplicates_of(self, codes: IdArray) -> tuple[IdArray, IdArray]:
        """Positions in _dup_id of the further ids of these codes, and how many each code has."""
        low = np.searchsorted(self._dup_code, codes, side="left")
        counts = np.searchsorted(self._dup_code, codes, side="right") - low
        return concat_ranges(low, counts), counts

    def _probe_exact(
        self, code_bytes: npt.NDArray[np.uint8]
    ) -> tuple[IdArray, IdArray, DistanceArray]:
        assert self._layout is not None
        probes = self._layout.probes(0)
        assert probes is not None
        q, u, d, _ = self._probe(code_bytes, _to_words(code_bytes), probes, 0)
        # Every table finds an exact match: keep one hit per query.
        _, first = np.unique(q, return_index=True)
        return q[first], u[first], d[first]


# --- kernels ---------------------------------------------------------------------------------


def _huge_empty(shape: int | tuple[int, ...], dtype: npt.DTypeLike) -> npt.NDArray[Any]:
    """An uninitialised array on transparent huge pages where the system offers them.

    Queries read the tables and codes at random: with 4 KiB pages nearly every read of a large
    index also misses the TLB. Asking for 2 MiB pages before the memory is first touched (Linux
    hands them out only to mappings that ask, under the common "madvise" setting) makes those
    reads cheaper. Elsewhere this is plain np.empty.
    """
    array_shape = (shape,) if isinstance(shape, int) else shape
    nbytes = int(np.prod(array_shape)) * np.dtype(dtype).itemsize
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if nbytes < (8 << 20) or advice is None:
        return np.empty(array_shape, dtype=dtype)
    buffer = mmap.mmap(-1, nbytes)
    buffer.madvise(advice)
    return np.frombuffer(buffer, dtype=dtype, count=int(np.prod(array_shape))).reshape(array_shape)


def _on_huge_pages(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    out = _huge_empty(array.shape, array.dtype)
    out[...] = array
    return out


def _as_bytes(codes: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    array = np.ascontiguousarray(codes, dtype=np.uint8)
    if array.ndim == 1 and array.size == CODE_BYTES:
        array = array.reshape(1, CODE_BYTES)
    if array.ndim != 2 or array.shape[1] != CODE_BYTES:
        raise ValueError(f"codes must have shape (n, {CODE_BYTES}), got {array.shape}")
    return array


def _to_words(code_bytes: npt.NDArray[np.uint8]) -> Words:
    return np.ascontiguousarray(code_bytes.view(np.uint64).reshape(-1, 2, 2).transpose(1, 0, 2))


def _from_words(words: Words) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(words.transpose(1, 0, 2)).view(np.uint8).reshape(-1, CODE_BYTES)


def _no_words() -> Words:
    return np.zeros((2, 0, 2), dtype=np.uint64)


def _read_half(words: Words, half: int, rows: IdArray) -> npt.NDArray[np.uint64]:
    """Half `half` of these rows' codes, shape (len(rows), 2).

    Each half is read as one 16-byte complex number: a single gather of one cache line per row,
    about 40% cheaper than gathering its two words from separate arrays.
    """
    return np.take(words[half].view(np.complex128).reshape(-1), rows).view(np.uint64).reshape(-1, 2)


def _half_distance(stored: npt.NDArray[np.uint64], query: npt.NDArray[np.uint64]) -> Any:
    """Bits differing in one half, per row: uint8 (at most 128)."""
    bits = np.bitwise_count(stored ^ query)
    return bits[:, 0] + bits[:, 1]


def _verify_positions(
    words: Words, rows: IdArray, query_words: Words, counts: IdArray, max_distance: int
) -> tuple[IdArray, DistanceArray]:
    """Which candidates (positions into `rows`) are within max_distance of their query.

    `rows` holds each query's candidates in turn, `counts[q]` of them for query q.

    One half of each code first: a candidate that is not a match almost always differs in more
    than max_distance of those 128 bits already (64 on average), so only the few that remain
    read their other half. Reading codes at random is the cost of a search; this halves it.
    The queries' halves are repeated rather than gathered by owner: four times faster.
    """
    single = len(counts) == 1
    query = query_words[0, 0] if single else np.repeat(query_words[0], counts, axis=0)
    first_half = _half_distance(_read_half(words, 0, rows), query)
    keep = np.flatnonzero(first_half <= max_distance)
    if single:
        query = query_words[1, 0]
    else:
        query = query_words[1][np.repeat(np.arange(len(counts)), counts)[keep]]
    total = first_half[keep].astype(np.uint16) + _half_distance(
        _read_half(words, 1, rows[keep]), query
    )
    close = total <= max_distance
    return keep[close], total[close].astype(np.int32)


def _verify(
    words: Words, rows: IdArray, query_words: Words, counts: IdArray, max_distance: int
) -> tuple[IdArray, DistanceArray]:
    """The candidate rows within max_distance of their query, and their distances."""
    keep, distances = _verify_positions(words, rows, query_words, counts, max_distance)
    return rows[keep], distances


def _scan(
    words: Words, query: npt.NDArray[np.uint64], max_distance: int
) -> tuple[IdArray, DistanceArray]:
    """Brute force over every code, a block at a time: (rows within max_distance, distances).

    `query` is one query's halves, shape (2, 2).
    """
    rows, distances = [], []
    for start in range(0, words.shape[1], _SCAN_BLOCK):
        d = _half_distance(words[0, start : start + _SCAN_BLOCK], query[0]).astype(np.uint16)
        d += _half_distance(words[1, start : start + _SCAN_BLOCK], query[1])
        hit = np.flatnonzero(d <= max_distance)
        rows.append(hit + start)
        distances.append(d[hit].astype(np.int32))
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
    return np.concatenate(rows).astype(np.int64), np.concatenate(distances)


def concat_ranges(starts: IdArray, lengths: IdArray) -> IdArray:
    """Concatenate the ranges [start, start + length) without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    return np.arange(total, dtype=np.int64) - np.repeat(ends - lengths - starts, lengths)


def _argsort_keys(keys: npt.NDArray[np.uint32], width: int) -> IdArray:
    """Stable argsort of keys below 2**24 by 16-bit radix passes (NumPy radix-sorts 16-bit)."""
    low = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    if width <= 16:
        return low
    high = np.argsort((keys[low] >> 16).astype(np.uint8), kind="stable")  # width <= 24
    return low[high]


def _mix(words: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """A 64-bit mix of each row's four words (multiply by odd constants, rotate, XOR)."""
    mix = words[:, 0].copy()
    for w, odd in ((1, 0x9E3779B97F4A7C15), (2, 0xC2B2AE3D27D4EB4F), (3, 0x165667B19E3779F9)):
        mix ^= words[:, w] * np.uint64(odd)
        mix = (mix << np.uint64(29)) | (mix >> np.uint64(35))
    return mix


def _distinct(code_bytes: npt.NDArray[np.uint8]) -> tuple[IdArray, IdArray]:
    """Rows of the first copy of each distinct code, and for every row the index of its code.

    Sorting a 64-bit mix of each code's words is several times faster than sorting the 32-byte
    rows; equal codes have equal mixes, and rows that share a mix are compared in full, so a
    collision of the mix can never merge two different codes.
    """
    words = code_bytes.view(np.uint64)
    mix = _mix(words)
    order = np.argsort(mix)
    sorted_mix = mix[order]
    starts_run = np.ones(len(order), dtype=bool)
    starts_run[1:] = sorted_mix[1:] != sorted_mix[:-1]
    if starts_run.all():  # the common case: every code distinct
        rows = np.arange(len(code_bytes), dtype=np.int64)
        return rows, rows.copy()
    run_starts = np.flatnonzero(starts_run)
    run_of = np.cumsum(starts_run) - 1  # per sorted position
    leader = np.minimum.reduceat(order, run_starts)[run_of]  # the run's first row
    same = (words[order] == words[leader]).all(axis=1)
    for run in np.unique(run_of[~same]):  # a mix shared by different codes: group by code
        stop = run_starts[run + 1] if run + 1 < len(run_starts) else len(order)
        members = order[run_starts[run] : stop]
        firsts: dict[bytes, int] = {}
        for row in sorted(members.tolist()):
            firsts.setdefault(code_bytes[row].tobytes(), row)
        leader[run_starts[run] : stop] = [firsts[code_bytes[r].tobytes()] for r in members.tolist()]
    row_leader = np.empty(len(order), dtype=np.int64)
    row_leader[order] = leader
    first_rows = np.flatnonzero(row_leader == np.arange(len(order)))
    return first_rows, np.searchsorted(first_rows, row_leader)


def _split(
    count: int, owners: IdArray, ids: IdArray, distances: DistanceArray
) -> list[tuple[IdArray, DistanceArray]]:
    order = np.lexsort((ids, owners))
    owners, ids, distances = owners[order], ids[order], distances[order]
    bounds = np.searchsorted(owners, np.arange(1, count))
    return list(zip(np.split(ids, bounds), np.split(distances, bounds), strict=True))
