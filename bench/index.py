"""PDQ range search at 1M and 10M hashes: hashwatch's HammingIndex against the peers, side by side.

In one run, on the same codes and queries:
- `threatexchange` PDQIndex: python-threatexchange's (and HMA's) index, a faiss
  IndexBinaryMultiHash of 16 tables of 16 bits;
- faiss IndexBinaryFlat range search: brute force in optimised C++;
- hashwatch.index.HammingIndex.

Data sets: uniform random codes, and a clustered set that imitates real lists (clusters of
near-duplicates with power-law sizes, exact copies, and correlated, biased bits). Queries: stored
codes with 0 to 31 random bits flipped, and unrelated codes from the same distribution. Threshold
31. Reports single-query and batched queries per second on 1 and 2 threads, p50 latency, build
time, memory, and recall against brute force (faiss's flat index, checked by a NumPy scan).

    pip install -e '.[bench]'
    python bench/index.py                  # 1M and 10M (about 15 minutes, 12 GB of memory)
    python bench/index.py --sizes 1000000  # 1M only
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import faiss
import numpy as np
import numpy.typing as npt
from report import write_section
from threatexchange.signal_type.pdq.pdq_index import PDQIndex

from hashwatch.index import HammingIndex
from hashwatch.tuning import tune_allocator

THRESHOLD = 31
Codes = npt.NDArray[np.uint8]


# --- data ------------------------------------------------------------------------------------


def random_codes(rng: np.random.Generator, n: int) -> Codes:
    return rng.integers(0, 256, size=(n, 32), dtype=np.uint8)


def clustered_codes(rng: np.random.Generator, n: int) -> Codes:
    """Near-duplicate clusters of power-law sizes around centres with correlated, biased bits."""
    sizes = np.minimum(rng.zipf(2.0, size=n), 1000)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]
    sizes[-1] -= sizes.sum() - n
    centres = correlated_codes(rng, len(sizes))
    cluster_of = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(cluster_of)
    out = np.empty((n, 32), dtype=np.uint8)
    for start in range(0, n, 1_000_000):
        members = cluster_of[start : start + 1_000_000]
        # Each member differs from its centre in about 0-8% of its bits; a fifth are exact copies.
        rate = rng.uniform(0, 0.08, size=(len(members), 1)) * (rng.random((len(members), 1)) > 0.2)
        flips = np.packbits(rng.random((len(members), 256)) < rate, axis=1)
        out[start : start + len(members)] = centres[members] ^ flips
    return out


def correlated_codes(rng: np.random.Generator, n: int) -> Codes:
    """Codes whose bits are correlated (a low-dimensional latent) and biased (per-bit offsets)."""
    mixing = rng.normal(size=(24, 256))
    bias = rng.normal(0, 0.6, size=256)
    out = np.empty((n, 32), dtype=np.uint8)
    for start in range(0, n, 500_000):
        latent = rng.normal(size=(min(500_000, n - start), 24))
        out[start : start + len(latent)] = np.packbits(latent @ mixing / 5 + bias > 0, axis=1)
    return out


def make_queries(rng: np.random.Generator, codes: Codes, fresh: Codes, count: int) -> Codes:
    near = codes[rng.integers(0, len(codes), count // 2)].copy()
    bits = np.unpackbits(near, axis=1)
    for row in bits:
        row[rng.choice(256, size=int(rng.integers(0, THRESHOLD + 1)), replace=False)] ^= 1
    return np.concatenate([np.packbits(bits, axis=1), fresh[: count - count // 2]])


# --- systems ---------------------------------------------------------------------------------


def rss() -> int:
    """Resident memory, after handing freed heap memory back to the system (else the tuned
    allocator's retained free blocks would hide new allocations)."""
    gc.collect()
    ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Result:
    name: str
    build_s: float = 0.0
    memory_bytes: int = 0
    single_qps: float = 0.0
    single_qps_default_threads: float = 0.0  # threatexchange as HMA runs it (faiss's default)
    p50_ms: float = 0.0
    batch_qps: dict[int, float] = field(default_factory=dict)
    recall: float = 0.0


def truth_of(codes: Codes, queries: Codes) -> list[set[int]]:
    flat = faiss.IndexBinaryFlat(256)
    flat.add(codes)
    limits, _, ids = flat.range_search(queries, THRESHOLD + 1)
    truth = [set(ids[limits[i] : limits[i + 1]].tolist()) for i in range(len(queries))]
    # Check the ground truth itself on a few queries with a NumPy scan.
    words = codes.view(np.uint64)
    for i in range(0, len(queries), max(1, len(queries) // 8)):
        distances = np.bitwise_count(words ^ queries[i].view(np.uint64)).sum(axis=1)
        assert set(np.flatnonzero(distances <= THRESHOLD).tolist()) == truth[i]
    return truth


def recall(found: list[set[int]], truth: list[set[int]]) -> float:
    wanted = sum(len(t) for t in truth)
    got = sum(len(f & t) for f, t in zip(found, truth, strict=True))
    return got / wanted if wanted else 1.0


def timed_single(search_one, queries: Codes) -> tuple[float, float, list[set[int]]]:  # type: ignore[no-untyped-def]
    latencies, found = [], []
    for query in queries:
        started = time.perf_counter()
        found.append(search_one(query))
        latencies.append(time.perf_counter() - started)
    return len(queries) / sum(latencies), float(np.median(latencies)) * 1000, found


def bench_hashwatch(codes: Codes, single: Codes, batch: Codes, truth: list[set[int]]) -> Result:
    result = Result("hashwatch HammingIndex")
    gc.collect()
    before = rss()
    started = time.perf_counter()
    index = HammingIndex(codes)
    result.build_s = time.perf_counter() - started
    result.memory_bytes = rss() - before
    arrays = sum(a.nbytes for a in vars(index).values() if isinstance(a, np.ndarray))
    print(f"  (HammingIndex arrays: {arrays / len(codes):.0f} B/hash)", flush=True)
    result.single_qps, result.p50_ms, found = timed_single(
        lambda q: set(index.search(q, THRESHOLD)[0][0].tolist()), single
    )
    result.recall = recall(found, truth[: len(single)])
    index.search(batch, THRESHOLD)  # warm-up: first-touch of batch-sized temporaries
    for threads in (1, 2):
        parts = np.array_split(batch, threads)
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            answers = [
                hit
                for part in pool.map(lambda p: index.search(p, THRESHOLD), parts)
                for hit in part
            ]
        result.batch_qps[threads] = len(batch) / (time.perf_counter() - started)
    found_batch = [set(ids.tolist()) for ids, _ in answers]
    result.recall = min(result.recall, recall(found_batch, truth[len(single) :]))
    return result


def bench_threatexchange(
    codes: Codes, single: Codes, batch: Codes, truth: list[set[int]]
) -> Result:
    result = Result("threatexchange PDQIndex (faiss MultiHash 16x16)")
    hexes = [row.tobytes().hex() for row in codes]
    gc.collect()
    before = rss()
    started = time.perf_counter()
    index = PDQIndex(entries=((h, i) for i, h in enumerate(hexes)))
    result.build_s = time.perf_counter() - started
    del hexes
    gc.collect()
    result.memory_bytes = rss() - before
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # faiss's default: every core
    result.single_qps_default_threads = timed_single(
        lambda q: {m.metadata for m in index.query(q.tobytes().hex())}, single
    )[0]
    faiss.omp_set_num_threads(1)
    result.single_qps, result.p50_ms, found = timed_single(
        lambda q: {m.metadata for m in index.query(q.tobytes().hex())}, single
    )
    result.recall = recall(found, truth[: len(single)])
    batch_hex = [row.tobytes().hex() for row in batch]
    index.index.search_with_distance_in_result(batch_hex, THRESHOLD)  # warm-up
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        started = time.perf_counter()
        answers = index.index.search_with_distance_in_result(batch_hex, THRESHOLD)
        result.batch_qps[threads] = len(batch) / (time.perf_counter() - started)
    found_batch = [{int(hit[0]) for hit in answers[h]} for h in batch_hex]
    result.recall = min(result.recall, recall(found_batch, truth[len(single) :]))
    return result


def bench_faiss_flat(codes: Codes, single: Codes, batch: Codes, truth: list[set[int]]) -> Result:
    result = Result("faiss IndexBinaryFlat (brute force)")
    gc.collect()
    before = rss()
    started = time.perf_counter()
    index = faiss.IndexBinaryFlat(256)
    index.add(codes)
    result.build_s = time.perf_counter() - started
    result.memory_bytes = rss() - before
    faiss.omp_set_num_threads(1)

    def one(query: Codes) -> set[int]:
        _, _, ids = index.range_search(query[None], THRESHOLD + 1)
        return set(ids.tolist())

    result.single_qps, result.p50_ms, found = timed_single(one, single)
    result.recall = recall(found, truth[: len(single)])
    index.range_search(batch, THRESHOLD + 1)  # warm-up
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        started = time.perf_counter()
        index.range_search(batch, THRESHOLD + 1)
        result.batch_qps[threads] = len(batch) / (time.perf_counter() - started)
    return result


# --- report ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--single", type=int, default=400, help="single queries per system")
    parser.add_argument("--batch", type=int, default=4000, help="queries in the batched runs")
    args = parser.parse_args()
    tune_allocator()  # as hashwatch's own processes run; it applies to every index measured here
    rows = []
    peer_defaults: list[float] = []
    for n in args.sizes:
        for kind, make in (("random", random_codes), ("clustered", clustered_codes)):
            rng = np.random.default_rng(n + len(kind))
            codes = make(rng, n)
            fresh = make(np.random.default_rng(7 + len(kind)), 4 * (args.single + args.batch))
            fresh = fresh[np.random.default_rng(1).permutation(len(fresh))]
            single = make_queries(rng, codes, fresh, args.single)
            batch = make_queries(rng, codes, fresh[args.single :], args.batch)
            truth = truth_of(codes, np.concatenate([single, batch]))
            print(
                f"\n{n:,} {kind} codes; {sum(map(len, truth))} true matches "
                f"for {len(truth)} queries",
                flush=True,
            )
            results = []
            for bench in (bench_threatexchange, bench_faiss_flat, bench_hashwatch):
                result = bench(codes, single, batch, truth)
                results.append(result)
                print(
                    f"  {result.name}: build {result.build_s:.1f} s, "
                    f"{result.memory_bytes / n:.0f} B/hash, "
                    f"single {result.single_qps:,.0f} q/s (p50 {result.p50_ms:.2f} ms), batched "
                    f"{result.batch_qps[1]:,.0f} / {result.batch_qps[2]:,.0f} q/s "
                    "on 1 / 2 threads, "
                    f"recall {result.recall:.3f}",
                    flush=True,
                )
                gc.collect()
            peer = results[0]
            peer_defaults.append(peer.single_qps_default_threads)
            for result in results:
                rows.append(
                    f"| {n / 1e6:g}M {kind} | {result.name} | {result.single_qps:,.0f} | "
                    f"{result.single_qps / peer.single_qps:.1f}x | "
                    f"{result.single_qps / peer.single_qps_default_threads:.1f}x | "
                    f"{result.p50_ms:.2f} | "
                    f"{result.batch_qps[1]:,.0f} | {result.batch_qps[2]:,.0f} | "
                    f"{result.build_s:.1f} | "
                    f"{result.memory_bytes / n:.0f} | {result.recall:.3f} |"
                )
            del codes, truth
            gc.collect()
    table = [
        "| data | index | single q/s (1 thread) | vs threatexchange, 1 thread | vs threatexchange, "
        "default threads | p50 ms | batched q/s, 1 thread | batched q/s, 2 threads | build s | "
        "memory B/hash | recall |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    default = "; ".join(
        f"{r.split('|')[1].strip()}: {q:,.0f} q/s"
        for r, q in zip(rows[::3], peer_defaults, strict=True)
    )
    body = (
        f"Threshold {THRESHOLD}. {args.single} single queries and a batch of {args.batch} per data "
        "set, half stored codes with 0-31 random bits flipped and half unrelated codes. Memory is "
        "the growth of the process's resident memory while building (the codes themselves "
        "excluded). Recall is against brute force. threatexchange's batched figure is its own "
        "batch call (faiss range search over the MultiHash index). Single queries run on one "
        "thread for every index; threatexchange is also measured with faiss's default of one "
        f"thread per core, as HMA runs it ({default}).\n\n" + "\n".join(table)
    )
    write_section("index", "PDQ index: HammingIndex against threatexchange and faiss", body)


if __name__ == "__main__":
    main()
