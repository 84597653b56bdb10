"""How fast a large hash list imports: rows per second for a 1M-row CSV, SQLite and PostgreSQL.

Times the whole `lists import` service path (read and validate every row, then write entries and
the change feed in one transaction) and then a re-import of the same file (every row already
present). Figures go to docs/benchmarks.md.

    python bench/import_rate.py                       # 1M rows, SQLite and local PostgreSQL
    python bench/import_rate.py --rows 100000 --postgres ""   # smaller, SQLite only
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from report import write_section
from sqlalchemy import create_engine, make_url, text

from hashwatch.listfiles import import_file
from hashwatch.lists import create_list, get_list
from hashwatch.organisations import get_or_create_organisation
from hashwatch.store import open_store

CATEGORIES = ["A", "B", "C", "A1", "A2", "B1", "B2", ""]


def write_csv(path: Path, rows: int) -> None:
    """Random PDQ values (nine in ten) and MD5 values, with categories, labels and sources."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 256, size=(rows, 32), dtype=np.uint8)
    with path.open("w") as handle:
        handle.write("signal_type,value,category,labels,source,note\n")
        for i in range(rows):
            if i % 10:
                kind, value = "pdq", values[i].tobytes().hex()
            else:
                kind, value = "md5", values[i, :16].tobytes().hex()
            handle.write(
                f"{kind},{value},{CATEGORIES[i % 8]},age:{i % 5};verified,hotline-{i % 3},\n"
            )


def run(url: str, csv_path: Path, rows: int) -> tuple[float, float]:
    store = open_store(url)
    with store.session() as session:
        create_list(session, get_or_create_organisation(session), "bench", "bench")
    timings = []
    for _ in range(2):  # first import, then the same file again
        started = time.perf_counter()
        with store.session() as session, csv_path.open("rb") as handle:
            hash_list = get_list(session, get_or_create_organisation(session), "bench")
            result = import_file(session, hash_list, handle, "csv", "bench")
        timings.append(time.perf_counter() - started)
        print(f"  {url.split(':')[0]}: {result.to_json()} in {timings[-1]:.1f} s")
    store.close()
    return timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="server to make a scratch database on; empty to skip PostgreSQL",
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "list.csv"
        write_csv(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 1e6
        print(f"{args.rows:,} rows, {size_mb:.0f} MB CSV")
        results.append(("SQLite (file)", *run(f"sqlite:///{folder}/bench.db", csv_path, args.rows)))
        if args.postgres:
            admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
            name = f"hashwatch_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = (
                    make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
                )
                results.append(("PostgreSQL 15 (local)", *run(url, csv_path, args.rows)))
            finally:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    table = [
        "| store | first import | rows/s | re-import (all present) | rows/s |",
        "|---|---|---|---|---|",
    ]
    for store, first, again in results:
        table.append(
            f"| {store} | {first:.1f} s | {args.rows / first:,.0f} | {again:.1f} s | "
            f"{args.rows / again:,.0f} |"
        )
    body = (
        f"A {args.rows:,}-row CSV ({size_mb:.0f} MB; nine in ten rows PDQ, one in ten MD5, each "
        "with category, two labels and a source) imported into an empty list through the same "
        "service the CLI uses: every row parsed and validated, then the entries (which carry the "
        "change feed) written in one transaction (COPY on PostgreSQL). The re-import reads the "
        "same file into the full list and adds nothing.\n\n" + "\n".join(table)
    )
    print("\n".join(table))
    write_section("import", "List import rate", body)


if __name__ == "__main__":
    main()
