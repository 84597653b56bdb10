"""Exact Hamming range search over 256-bit codes (PDQ), as a vectorised NumPy scan.

Every stored code within `max_distance` bits of a query is returned: recall is 1.0 by
construction, because every code is compared. Codes are held as four 64-bit words per row, so a
comparison is four XORs and four popcounts (`np.bitwise_count`), done a block of rows at a time
to bound the temporary memory. This is the correct baseline the matcher uses; a sub-linear
multi-index design can replace the scan behind the same interface.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["HammingIndex"]

CODE_BYTES = 32
_WORDS = CODE_BYTES // 8
_BLOCK_ROWS = 1 << 18  # 8 MiB of codes per block: fits in cache-friendly temporaries

IdArray = npt.NDArray[np.int64]
DistanceArray = npt.NDArray[np.int32]


class HammingIndex:
    """Range search over uint8 codes of shape (n, 32); row i of the codes has id i.

    `add` appends codes under the next ids, `remove` hides ids; both are visible to the next
    search without a rebuild.
    """

    def __init__(self, codes: npt.ArrayLike | None = None) -> None:
        self._words = np.empty((0, _WORDS), dtype=np.uint64)
        self._live = np.empty(0, dtype=bool)
        self._size = 0
        if codes is not None:
            self.add(codes)

    def __len__(self) -> int:
        """Number of live (not removed) codes."""
        return int(np.count_nonzero(self._live[: self._size]))

    def add(self, codes: npt.ArrayLike) -> int:
        """Append codes; return the id of the first. Ids are consecutive from there."""
        words = _as_words(codes)
        first = self._size
        needed = first + len(words)
        if needed > len(self._words):
            capacity = max(needed, 2 * len(self._words), 1024)
            grown = np.zeros((capacity, _WORDS), dtype=np.uint64)
            grown[:first] = self._words[:first]
            live = np.zeros(capacity, dtype=bool)
            live[:first] = self._live[:first]
            self._words, self._live = grown, live
        self._words[first:needed] = words
        self._live[first:needed] = True
        self._size = needed
        return first

    def remove(self, ids: npt.ArrayLike) -> None:
        """Hide the given ids from every later search. Unknown ids are an error."""
        index = np.asarray(ids, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= self._size):
            raise IndexError(f"ids must be in 0..{self._size - 1}")
        self._live[index] = False

    def search(
        self, queries: npt.ArrayLike, max_distance: int = 31
    ) -> list[tuple[IdArray, DistanceArray]]:
        """For each query, the ids of all live codes within `max_distance`, and their distances.

        Results for one query are in ascending id order.
        """
        if not 0 <= max_distance <= CODE_BYTES * 8:
            raise ValueError(f"max_distance must be in 0..{CODE_BYTES * 8}, got {max_distance}")
        query_words = _as_words(queries)
        results: list[tuple[IdArray, DistanceArray]] = []
        for query in query_words:
            found_ids: list[IdArray] = []
            found_distances: list[DistanceArray] = []
            for start in range(0, self._size, _BLOCK_ROWS):
                stop = min(start + _BLOCK_ROWS, self._size)
                block = self._words[start:stop]
                distances = np.bitwise_count(block ^ query).sum(axis=1, dtype=np.int32)
                hit = (distances <= max_distance) & self._live[start:stop]
                offsets = np.flatnonzero(hit)
                found_ids.append(offsets.astype(np.int64) + start)
                found_distances.append(distances[offsets])
            if found_ids:
                results.append((np.concatenate(found_ids), np.concatenate(found_distances)))
            else:
                results.append((np.empty(0, np.int64), np.empty(0, np.int32)))
        return results


def _as_words(codes: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    array = np.ascontiguousarray(codes, dtype=np.uint8)
    if array.ndim == 1 and array.size == CODE_BYTES:
        array = array.reshape(1, CODE_BYTES)
    if array.ndim != 2 or array.shape[1] != CODE_BYTES:
        raise ValueError(f"codes must have shape (n, {CODE_BYTES}), got {array.shape}")
    return array.view(np.uint64)
