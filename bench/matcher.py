"""The matcher end to end: load a large list from the store, then match hashes against it.

What `hashwatch match` (and the service) pays: building the in-memory indexes from the store's
active entries, then PDQ and MD5 lookups through the Matcher (thresholds, explanations), one at a
time and in batches. Then the same list again with entry hashes (hashwatch.entryhashes): each
PDQ entry carries --entry-hashes extra codes (the default design's ten), its own code with 20-70
random bits flipped, as measured crops of real images land (tone edits land nearer); they are
imported through the CSV column a list's export writes, so loading reads them as a list that
made them does. Figures go to docs/benchmarks.md.

    python bench/matcher.py                  # a 1M-row list in a SQLite file
    python bench/matcher.py --rows 100000 --entry-hashes 0
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from import_rate import CATEGORIES, write_csv
from report import BENCHMARKS, write_section

from hashwatch.listfiles import import_file
from hashwatch.lists import create_list, get_list
from hashwatch.matching import Matcher
from hashwatch.organisations import get_or_create_organisation
from hashwatch.store import open_store
from hashwatch.tuning import tune_allocator
from hashwatch.variants import ENTRY_CROPS, ENTRY_TONES


def write_csv_with_entry_hashes(path: Path, rows: int, extra: int) -> None:
    """write_csv's list, its PDQ rows each with `extra` entry hashes near their own value."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 256, size=(rows, 32), dtype=np.uint8)
    made = [f"crop-{side}-{p}" for side, p in ENTRY_CROPS] + list(ENTRY_TONES)
    names = made + [f"crop-all-{p}" for p in range(11, 11 + max(0, extra - len(made)))]
    flips = np.random.default_rng(1)
    with path.open("w") as handle:
        handle.write("signal_type,value,category,labels,source,note,extra_hashes\n")
        for start in range(0, rows, 20_000):
            block = values[start : start + 20_000]
            copies = np.repeat(block, extra, axis=0)
            rate = flips.uniform(20 / 256, 70 / 256, size=(len(copies), 1)).astype(np.float32)
            copies ^= np.packbits(flips.random((len(copies), 256), dtype=np.float32) < rate, axis=1)
            text = copies.tobytes().hex()  # one conversion, then slices: 64 hex digits a code
            for offset in range(len(block)):
                i = start + offset
                fields = f"{CATEGORIES[i % 8]},age:{i % 5};verified,hotline-{i % 3},"
                if i % 10:
                    at = offset * extra * 64
                    cell = ";".join(
                        f"{names[k]}:{text[at + 64 * k : at + 64 * (k + 1)]}" for k in range(extra)
                    )
                    handle.write(f"pdq,{block[offset].tobytes().hex()},{fields},{cell}\n")
                else:
                    handle.write(f"md5,{block[offset, :16].tobytes().hex()},{fields},\n")


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(url: str, name: str, queries: int) -> dict[str, float]:
    """Load one list into a matcher and time lookups of random (unlisted) hashes.

    Run in a process of its own (see main), so that the memory it grows by is the load's."""
    tune_allocator()
    store = open_store(url)
    before = resident_mb()
    started = time.perf_counter()
    with store.session() as session:
        owner = get_or_create_organisation(session)
        matcher = Matcher.from_store(session, [get_list(session, owner, name)])
    load = time.perf_counter() - started
    grown = resident_mb() - before
    store.close()
    rng = np.random.default_rng(3)
    pdq = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(queries)]
    md5 = [rng.integers(0, 256, 16, dtype=np.uint8).tobytes().hex() for _ in range(queries)]
    rates = {"load": load, "memory": grown}
    for kind, values in (("pdq", pdq), ("md5", md5)):
        started = time.perf_counter()
        for value in values:
            matcher.match_value(kind, value)
        rates[kind] = len(values) / (time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, queries, 1000):
        matcher.match_values("pdq", pdq[start : start + 1000])
    rates["batch"] = queries / (time.perf_counter() - started)
    # A query image matched with its eight dihedral hashes is one batch of eight.
    started = time.perf_counter()
    for start in range(0, queries - 7, 8):
        matcher.match_values("pdq", pdq[start : start + 8])
    rates["images"] = (queries // 8) / (time.perf_counter() - started)
    print(f"  {name}: " + ", ".join(f"{k} {v:,.1f}" for k, v in rates.items()), flush=True)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument(
        "--entry-hashes",
        type=int,
        default=len(ENTRY_CROPS) + len(ENTRY_TONES),
        help="entry hashes per PDQ entry in the second list (0: plain list only)",
    )
    args = parser.parse_args()
    tune_allocator()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{folder}/matcher.db")
        plans = [("big", 0)] + (
            [("big-entry-hashes", args.entry_hashes)] if args.entry_hashes else []
        )
        for name, extra in plans:
            csv_path = Path(folder) / f"{name}.csv"
            if extra:
                write_csv_with_entry_hashes(csv_path, args.rows, extra)
            else:
                write_csv(csv_path, args.rows)  # nine in ten PDQ, one in ten MD5
            started = time.perf_counter()
            with store.session() as session, csv_path.open("rb") as handle:
                hash_list = create_list(session, get_or_create_organisation(session), name, "bench")
                import_file(session, hash_list, handle, "csv", "bench")
            print(f"  imported {name} in {time.perf_counter() - started:.1f} s", flush=True)
            csv_path.unlink()
        store.close()
        for name, extra in plans:
            # A fresh process per list: memory freed by one load is not reused by the next, and
            # each measures its own growth.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                url = f"sqlite:///{folder}/matcher.db"
                results[extra] = pool.submit(measure, url, name, args.queries).result()
    pdq_rows = args.rows - (args.rows + 9) // 10
    rows = []
    for extra, rates in results.items():
        codes = pdq_rows * (1 + extra)
        rows.append(
            f"| {extra} | {codes:,} | {rates['load']:.1f} s | {rates['memory']:,.0f} MB "
            f"| {rates['pdq']:,.0f} | {rates['batch']:,.0f} | {rates['images']:,.0f} "
            f"| {rates['md5']:,.0f} |"
        )
    body = (
        f"A {args.rows:,}-entry list (nine in ten PDQ, one in ten MD5) in a SQLite file, "
        "plain and with entry hashes (each PDQ entry's own code with 20-70 random bits flipped "
        "per entry hash, as crops of real images land; imported through the CSV's extra_hashes "
        "column). Loading builds the Matcher's indexes from the store's active entries (memory: "
        "the process's resident size grown by the load). Lookups are random, unlisted hashes, "
        "as most uploads are: `Matcher.match_value` one hash at a time (parse, index search, "
        "per-list threshold, explanations), `match_values` in batches of 1,000, and in batches of "
        "8 (a query image with its dihedral variants).\n\n"
        "| entry hashes per PDQ entry | PDQ codes | load | memory | PDQ lookups/s "
        "| PDQ hashes/s, batches of 1,000 | query images/s (8 hashes) | MD5 lookups/s |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    write_section("matcher", "Matcher: load and lookups", body)
    if len(results) == 2:
        plain, extra = results[0], results[args.entry_hashes]
        summary = (
            f"The product's matcher (`bench/matcher.py`; {args.rows:,} entries, nine in ten PDQ, "
            f"in a SQLite file), without entry hashes and with {args.entry_hashes} per PDQ entry "
            "(the default design's count; each its entry's code with 20-70 random bits flipped, "
            "as crops of real images land), matching random unlisted hashes on one core:\n\n"
            "| | PDQ codes | load | memory | single PDQ lookups/s "
            "| PDQ hashes/s, batches of 1,000 | query images/s (8 hashes) |\n"
            "|---|---|---|---|---|---|---|\n"
            + "\n".join(
                f"| {label} | {pdq_rows * (1 + n):,} | {r['load']:.1f} s | {r['memory']:,.0f} MB "
                f"| {r['pdq']:,.0f} | {r['batch']:,.0f} | {r['images']:,.0f} |"
                for label, n, r in (
                    ("no entry hashes", 0, plain),
                    ("entry hashes", args.entry_hashes, extra),
                )
            )
            + f"\n\nWith entry hashes single lookups run at {extra['pdq'] / plain['pdq']:.0%} and "
            f"query images at {extra['images'] / plain['images']:.0%} of the plain rate, for "
            f"{extra['memory'] / max(plain['memory'], 1):.1f} times the memory."
        )
        write_section(
            "matcher-entry-hashes",
            "Matcher throughput with entry hashes",
            summary,
            path=BENCHMARKS.parent / "detection-quality.md",
        )


if __name__ == "__main__":
    main()
