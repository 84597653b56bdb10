"""The matcher end to end: load a large list from the store, then match hashes against it.

What `hashwatch match` (and the service) pays: building the in-memory indexes from the store's
active entries, then PDQ and MD5 lookups through the Matcher (thresholds, explanations), one at a
time. Figures go to docs/benchmarks.md.

    python bench/matcher.py                  # a 1M-row list in a SQLite file
    python bench/matcher.py --rows 100000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from import_rate import write_csv
from report import write_section

from hashwatch.listfiles import import_file
from hashwatch.lists import create_list, get_list
from hashwatch.matching import Matcher
from hashwatch.organisations import get_or_create_organisation
from hashwatch.store import open_store
from hashwatch.tuning import tune_allocator


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=5000)
    args = parser.parse_args()
    tune_allocator()
    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "list.csv"
        write_csv(csv_path, args.rows)  # nine in ten PDQ, one in ten MD5
        store = open_store(f"sqlite:///{folder}/matcher.db")
        with store.session() as session, csv_path.open("rb") as handle:
            hash_list = create_list(session, get_or_create_organisation(session), "big", "bench")
            import_file(session, hash_list, handle, "csv", "bench")
        started = time.perf_counter()
        with store.session() as session:
            owner = get_or_create_organisation(session)
            matcher = Matcher.from_store(session, [get_list(session, owner, "big")])
        load = time.perf_counter() - started
        rng = np.random.default_rng(3)
        pdq = [
            rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(args.queries)
        ]
        md5 = [
            rng.integers(0, 256, 16, dtype=np.uint8).tobytes().hex() for _ in range(args.queries)
        ]
        rates = {}
        for name, values in (("pdq", pdq), ("md5", md5)):
            started = time.perf_counter()
            for value in values:
                matcher.match_value(name, value)
            rates[name] = len(values) / (time.perf_counter() - started)
        store.close()
    print(f"load {load:.1f} s; pdq {rates['pdq']:,.0f}/s; md5 {rates['md5']:,.0f}/s")
    body = (
        f"A {args.rows:,}-entry list (nine in ten PDQ, one in ten MD5) in a SQLite file. Loading "
        "builds the Matcher's indexes from the store's active entries; lookups go through "
        "`Matcher.match_value` one hash at a time (parse, index search, per-list threshold, "
        "explanations), with random query hashes.\n\n"
        "| entries | load | PDQ lookups/s | MD5 lookups/s |\n|---|---|---|---|\n"
        f"| {args.rows:,} | {load:.1f} s | {rates['pdq']:,.0f} | {rates['md5']:,.0f} |"
    )
    write_section("matcher", "Matcher: load and lookups", body)


if __name__ == "__main__":
    main()
