"""The demo: hashwatch's main job end to end, on generated benign images.

It builds a sample list the way a hotline would (hash the verified images, write a CSV, import
it), then matches what a platform would see: exact copies, re-encoded and resized copies of
listed images, and unrelated images, and reports what matched and why.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from hashwatch.audit import local_user
from hashwatch.hashing import hash_file
from hashwatch.listfiles import COLUMNS, import_file
from hashwatch.lists import AddResult, create_list, get_list
from hashwatch.matching import Matcher, MatchReport
from hashwatch.media import MediaLimits
from hashwatch.organisations import get_or_create_organisation
from hashwatch.samples import encode, generate_image, transformed
from hashwatch.store import Store
from hashwatch.store.models import VARIANT_KINDS

__all__ = ["DemoQuery", "DemoResult", "run_demo"]

_CATEGORIES = ("A1", "A2", "B1", "B2", "A", "B")


@dataclass(frozen=True)
class DemoQuery:
    path: Path
    what: str
    should_match: bool
    report: MatchReport


@dataclass(frozen=True)
class DemoResult:
    list_name: str
    imported: AddResult
    csv_path: Path
    queries: list[DemoQuery]

    @property
    def correct(self) -> int:
        return sum(bool(q.report.matches) == q.should_match for q in self.queries)


def run_demo(
    store: Store, workdir: Path, list_name: str = "demo", listed: int = 6, unrelated: int = 4
) -> DemoResult:
    limits = MediaLimits()
    actor = f"demo:{local_user()}"
    listed_dir = workdir / "listed"
    query_dir = workdir / "queries"
    listed_dir.mkdir(parents=True, exist_ok=True)
    query_dir.mkdir(parents=True, exist_ok=True)

    # 1. A hotline hashes its verified images and writes the list as CSV.
    images = [generate_image(seed) for seed in range(listed)]
    csv_path = workdir / "demo-list.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for number, image in enumerate(images):
            path = listed_dir / f"listed-{number}.png"
            path.write_bytes(encode(image, "PNG"))
            hashes = hash_file(path, limits).hashes
            category = _CATEGORIES[number % len(_CATEGORIES)]
            for signal_type in ("pdq", "md5"):
                note = f"generated benign image {path.name}"
                writer.writerow([signal_type, hashes[signal_type], category, "demo", "demo", note])

    # 2. It imports the CSV into a list.
    with store.session() as session:
        owner = get_or_create_organisation(session)
        hash_list = create_list(
            session, owner, list_name, actor, description="generated benign images"
        )
        with csv_path.open("rb") as handle:
            imported = import_file(session, hash_list, handle, "csv", actor)

    # 3. A platform receives uploads: copies, altered copies, and unrelated images.
    queries: list[tuple[Path, str, bool]] = []
    for number in range(min(3, listed)):
        exact = query_dir / f"copy-of-listed-{number}.png"
        exact.write_bytes((listed_dir / f"listed-{number}.png").read_bytes())
        queries.append((exact, f"copy of image {number}", True))
        for name, what in (
            ("jpeg-q70", "JPEG q70"),
            ("half-size", "half size"),
            ("mirrored", "mirrored"),
        ):
            path = query_dir / f"listed-{number}-{name}.jpg"
            path.write_bytes(transformed(images[number], name))
            queries.append((path, f"image {number}, {what}", True))
    for seed in range(1000, 1000 + unrelated):
        path = query_dir / f"unrelated-{seed}.jpg"
        path.write_bytes(encode(generate_image(seed), "JPEG", quality=85))
        queries.append((path, "unrelated image", False))

    # 4. It matches every upload against the list.
    with store.session() as session:
        owner = get_or_create_organisation(session)
        matcher = Matcher.from_store(session, [get_list(session, owner, list_name)])
    results = [
        DemoQuery(path, what, should, matcher.match_media(hash_file(path, limits, VARIANT_KINDS)))
        for path, what, should in queries
    ]
    return DemoResult(list_name=list_name, imported=imported, csv_path=csv_path, queries=results)
