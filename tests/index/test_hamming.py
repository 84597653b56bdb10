"""HammingIndex against brute force: exact results on random and clustered codes, add and remove."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from hashwatch.index import ExactIndex, HammingIndex


def brute_force(
    codes: npt.NDArray[np.uint8],
    query: npt.NDArray[np.uint8],
    radius: int,
    live: npt.NDArray[np.bool_],
) -> dict[int, int]:
    bits = np.unpackbits(codes, axis=1)
    distances = (bits != np.unpackbits(query)).sum(axis=1)
    return {int(i): int(distances[i]) for i in np.flatnonzero((distances <= radius) & live)}


def flip(
    code: npt.NDArray[np.uint8], count: int, rng: np.random.Generator
) -> npt.NDArray[np.uint8]:
    bits = np.unpackbits(code)
    positions = rng.choice(256, size=count, replace=False)
    bits[positions] ^= 1
    return np.packbits(bits)


def clustered(rng: np.random.Generator, centres: int, per_centre: int) -> npt.NDArray[np.uint8]:
    """Near-duplicate clusters with biased bits, as real lists have, plus exact duplicates."""
    bias = rng.random(256) < 0.3
    rows = []
    for _ in range(centres):
        centre = np.packbits((rng.random(256) < 0.5) & ~bias | (bias & (rng.random(256) < 0.9)))
        for _ in range(per_centre):
            rows.append(flip(centre, int(rng.integers(0, 40)), rng))
        rows.append(centre.copy())
        rows.append(centre.copy())
    return np.array(rows, dtype=np.uint8)


def as_dict(hit: tuple[np.ndarray, np.ndarray]) -> dict[int, int]:
    ids, distances = hit
    assert np.all(np.diff(ids) > 0), "ids come back in ascending order"
    return dict(zip(ids.tolist(), distances.tolist(), strict=True))


@pytest.mark.parametrize("radius", [0, 31, 64])
@pytest.mark.parametrize("kind", ["random", "clustered"])
def test_results_equal_brute_force(radius: int, kind: str) -> None:
    rng = np.random.default_rng(radius + len(kind))
    codes = (
        rng.integers(0, 256, size=(3000, 32), dtype=np.uint8)
        if kind == "random"
        else clustered(rng, centres=40, per_centre=60)
    )
    queries = np.array(
        [flip(codes[i], int(rng.integers(0, 70)), rng) for i in rng.choice(len(codes), 30)]
        + [codes[5]]
        + list(rng.integers(0, 256, size=(5, 32), dtype=np.uint8)),
        dtype=np.uint8,
    )
    index = HammingIndex(codes)
    live = np.ones(len(codes), dtype=bool)
    found_any = False
    for query, hit in zip(queries, index.search(queries, max_distance=radius), strict=True):
        expected = brute_force(codes, query, radius, live)
        assert as_dict(hit) == expected
        found_any |= bool(expected)
    assert found_any


def test_add_and_remove_are_visible_to_the_next_search() -> None:
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 256, size=(500, 32), dtype=np.uint8)
    index = HammingIndex(codes[:300])
    assert index.add(codes[300:]) == 300
    assert len(index) == 500
    index.remove([10, 400])
    assert len(index) == 498
    live = np.ones(500, dtype=bool)
    live[[10, 400]] = False
    for i in (10, 11, 400, 499):
        query = flip(codes[i], 5, rng)
        assert as_dict(index.search(query, 31)[0]) == brute_force(codes, query, 31, live)
    assert index.search(codes[10], 0)[0][0].tolist() == []
    assert index.search(codes[11], 0)[0][0].tolist() == [11]


def test_no_queries_get_no_results() -> None:
    index = HammingIndex(np.zeros((3, 32), dtype=np.uint8))
    assert index.search(np.zeros((0, 32), dtype=np.uint8)) == []


def test_an_empty_index_finds_nothing() -> None:
    ids, distances = HammingIndex().search(np.zeros((1, 32), dtype=np.uint8), 64)[0]
    assert ids.size == 0 and distances.size == 0


def test_growth_beyond_the_first_block_keeps_every_code() -> None:
    rng = np.random.default_rng(3)
    index = HammingIndex()
    batches = [rng.integers(0, 256, size=(n, 32), dtype=np.uint8) for n in (1, 1500, 700)]
    for batch in batches:
        index.add(batch)
    everything = np.concatenate(batches)
    for i in (0, 1, 1500, 2200):
        assert i in index.search(everything[i], 0)[0][0].tolist()


def test_bad_arguments_are_refused() -> None:
    index = HammingIndex(np.zeros((2, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"shape \(n, 32\)"):
        index.search(np.zeros((1, 16), dtype=np.uint8), 10)
    with pytest.raises(ValueError, match=r"max_distance must be in 0\.\.256"):
        index.search(np.zeros(32, dtype=np.uint8), 300)
    with pytest.raises(IndexError):
        index.remove([2])


def test_exact_index_keeps_every_id_of_a_value() -> None:
    index = ExactIndex()
    index.add_many([("aa", 1), ("aa", 2), ("bb", 3)])
    assert index.search("aa") == [1, 2]
    index.remove(1)
    assert index.search("aa") == [2]
    index.remove(2)
    assert index.search("aa") == [] and len(index) == 1


def check_against_brute_force(
    index: HammingIndex,
    codes: npt.NDArray[np.uint8],
    live: npt.NDArray[np.bool_],
    queries: npt.NDArray[np.uint8],
    radius: int,
) -> int:
    hits = 0
    for query, hit in zip(queries, index.search(queries, max_distance=radius), strict=True):
        expected = brute_force(codes, query, radius, live)
        assert as_dict(hit) == expected
        hits += len(expected)
    return hits


def test_adds_merged_into_the_tables_stay_exact_including_duplicates() -> None:
    rng = np.random.default_rng(11)
    base = clustered(rng, centres=30, per_centre=50)
    index = HammingIndex(base)
    # Enough adds to pass the merge threshold, with copies of indexed codes and of each other.
    added = np.concatenate(
        [
            rng.integers(0, 256, size=(2500, 32), dtype=np.uint8),
            base[:300],
            base[:10],
        ]
    )
    first = index.add(added[:1000])
    index.add(added[1000:])
    assert first == len(base)
    assert len(index._pending_ids) == 0, "the adds were merged into the tables"
    codes = np.concatenate([base, added])
    live = np.ones(len(codes), dtype=bool)
    index.remove([0, len(base) + 5, len(codes) - 1])
    live[[0, len(base) + 5, len(codes) - 1]] = False
    queries = np.array(
        [flip(codes[i], int(rng.integers(0, 35)), rng) for i in rng.choice(len(codes), 60)]
    )
    assert check_against_brute_force(index, codes, live, queries, 31) > 0
    assert check_against_brute_force(index, codes, live, codes[[1, 2, len(base) + 2600]], 0) > 0


def test_an_index_built_only_by_adds_is_exact() -> None:
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, size=(5000, 32), dtype=np.uint8)
    index = HammingIndex()
    for start in range(0, 5000, 700):
        index.add(codes[start : start + 700])
    live = np.ones(len(codes), dtype=bool)
    queries = np.array([flip(codes[i], 20, rng) for i in range(0, 5000, 250)])
    assert check_against_brute_force(index, codes, live, queries, 31) >= len(queries)


def test_many_copies_of_one_code_are_all_returned() -> None:
    rng = np.random.default_rng(2)
    code = rng.integers(0, 256, size=32, dtype=np.uint8)
    codes = np.concatenate(
        [np.tile(code, (4000, 1)), rng.integers(0, 256, size=(100, 32), dtype=np.uint8)]
    )
    index = HammingIndex(codes)
    ids, distances = index.search(flip(code, 3, rng), 31)[0]
    assert ids.tolist() == list(range(4000))
    assert set(distances.tolist()) == {3}


def test_a_query_inside_a_huge_cluster_falls_back_to_a_scan_and_stays_exact() -> None:
    rng = np.random.default_rng(9)
    centre = rng.integers(0, 256, size=32, dtype=np.uint8)
    # Every code differs from the centre in a few of the first 24 bits only: every substring but
    # those bits' holds one value, so probing would touch almost every code.
    codes = np.array([flip_within(centre, int(rng.integers(1, 6)), 24, rng) for _ in range(3000)])
    codes = np.concatenate([codes, rng.integers(0, 256, size=(3000, 32), dtype=np.uint8)])
    index = HammingIndex(codes)
    live = np.ones(len(codes), dtype=bool)
    queries = np.array([flip(centre, 2, rng), codes[3100]])
    assert check_against_brute_force(index, codes, live, queries, 31) > 3000


def test_batches_larger_than_one_vectorised_pass_are_split_correctly() -> None:
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 256, size=(2000, 32), dtype=np.uint8)
    index = HammingIndex(codes)
    queries = np.array([flip(codes[i % 2000], 10, rng) for i in range(5000)])
    results = index.search(queries, 31)
    assert len(results) == 5000
    assert all(ids.tolist() == [i % 2000] for i, (ids, _) in enumerate(results))


def flip_within(
    code: npt.NDArray[np.uint8], count: int, span: int, rng: np.random.Generator
) -> npt.NDArray[np.uint8]:
    bits = np.unpackbits(code)
    bits[rng.choice(span, size=count, replace=False)] ^= 1
    return np.packbits(bits)


def test_distinct_codes_are_grouped_exactly_even_when_their_mixes_collide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hashwatch.index import hamming

    rng = np.random.default_rng(8)
    codes = rng.integers(0, 256, size=(50, 32), dtype=np.uint8)
    codes = np.concatenate([codes, codes[[3, 3, 7]]])
    first, code_of = hamming._distinct(codes)
    assert first.tolist() == list(range(50))
    assert code_of.tolist() == [*range(50), 3, 3, 7]
    # Every code given the same mix: grouping must fall back to comparing whole codes.
    monkeypatch.setattr(hamming, "_mix", lambda words: np.zeros(len(words), dtype=np.uint64))
    first, code_of = hamming._distinct(codes)
    assert first.tolist() == list(range(50))
    assert code_of.tolist() == [*range(50), 3, 3, 7]
    index = HammingIndex(codes)
    assert index.search(codes[3], 0)[0][0].tolist() == [3, 50, 51]


def test_the_allocator_is_tuned_on_linux() -> None:
    import sys

    from hashwatch.tuning import tune_allocator

    assert tune_allocator() is sys.platform.startswith("linux")


@pytest.mark.parametrize("substrings", [11, 12, 13])
def test_the_wide_substrings_of_large_lists_are_exact_on_clustered_data(substrings: int) -> None:
    """The layouts chosen for lists of millions, tried on a small clustered list."""
    rng = np.random.default_rng(substrings)
    codes = clustered(rng, centres=60, per_centre=40)
    index = HammingIndex(codes, substrings=substrings)
    assert index._layout is not None and index._layout.substrings == substrings
    live = np.ones(len(codes), dtype=bool)
    near = [flip(codes[i], int(rng.integers(0, 32)), rng) for i in rng.choice(len(codes), 80)]
    queries = np.array(near + list(rng.integers(0, 256, size=(20, 32), dtype=np.uint8)))
    assert check_against_brute_force(index, codes, live, queries, 31) > 0  # batched
    for query in queries[:10]:  # and one at a time
        assert as_dict(index.search(query, 31)[0]) == brute_force(codes, query, 31, live)


def test_a_large_clustered_list_is_laid_out_from_its_own_bit_statistics_and_stays_exact() -> None:
    """Enough codes for the bit permutation to run column by column, and for the layout to be
    chosen by the sampled cost; biased, correlated bits as real lists have."""
    rng = np.random.default_rng(5)
    latent = rng.normal(size=(6000, 12))
    codes = np.packbits(latent @ rng.normal(size=(12, 256)) + rng.normal(0, 0.5, 256) > 0, axis=1)
    index = HammingIndex(codes)
    layout = index._layout
    assert layout is not None and sorted(layout.bit_order.tolist()) == list(range(256))
    # The two ways of permuting bits agree.
    by_unpacking = np.packbits(np.unpackbits(codes, axis=1)[:, layout.bit_order], axis=1)
    assert np.array_equal(layout.permuted(codes), by_unpacking)
    live = np.ones(len(codes), dtype=bool)
    near = [flip(codes[i], int(rng.integers(0, 32)), rng) for i in rng.choice(len(codes), 60)]
    queries = np.array(near + list(rng.integers(0, 256, size=(20, 32), dtype=np.uint8)))
    assert check_against_brute_force(index, codes, live, queries, 31) > 0
    for query in queries[:10]:
        assert as_dict(index.search(query, 31)[0]) == brute_force(codes, query, 31, live)
