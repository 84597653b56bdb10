"""List files: reading entries from CSV, JSON lines and ThreatExchange CSV, and writing them out.

Formats (docs/lists.md has examples):
- `csv`: header `signal_type,value,category,labels,source,note`, and `extra_hashes` where entries
  carry entry hashes (hashwatch.entryhashes; `variant:value` items separated by `;`); labels
  separated by `;`. Only signal_type and value are required columns; an unknown column is an
  error, so a misspelt header never silently drops data.
- `jsonl`: one JSON object per line with the same keys; labels as a list or `;`-separated text,
  extra_hashes as a list of {"variant": ..., "value": ...} objects (or the CSV cell's text).
- `threatexchange`: the CSV that Meta's `threatexchange dataset --csv` writes
  (`signal_type,signal_str,collab,category,tags`). `pdq` and `video_md5` rows are imported;
  rows of other signal types (URLs, text) are counted as skipped, not errors, because such files
  carry them legitimately. The collaboration becomes the source, tags become labels, and the
  ThreatExchange category (such as TRUE_POSITIVE) goes into the note.

An import reads and validates the whole file before writing anything: any bad row rejects the
import, and the error names every bad line by its line number in the file.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy.orm import Session

from hashwatch.entryhashes import format_cell, stored
from hashwatch.errors import ImportRejected, InvalidInput, LineError
from hashwatch.lists import AddResult, NewEntry, ProgressCallback, add_entries, make_entry
from hashwatch.store.models import CATEGORIES, HashList, ListEntry

__all__ = [
    "ALL_COLUMNS",
    "COLUMNS",
    "FORMATS",
    "ParsedFile",
    "detect_format",
    "import_file",
    "read_entries",
    "write_entries",
]

#: The columns of an export without entry hashes: what older versions write and read.
COLUMNS = ("signal_type", "value", "category", "labels", "source", "note")
#: Every column an import takes: COLUMNS and the optional entry hashes.
ALL_COLUMNS = (*COLUMNS, "extra_hashes")
THREATEXCHANGE_COLUMNS = ("signal_type", "signal_str", "collab", "category", "tags")
FORMATS = ("csv", "jsonl", "threatexchange")
EXPORT_FORMATS = ("csv", "jsonl")

# ThreatExchange signal type names of the hashes hashwatch holds. video_md5 is the MD5 of the
# file's bytes, the same thing hashwatch's md5 is.
_THREATEXCHANGE_TYPES = {"pdq": "pdq", "video_md5": "md5", "md5": "md5", "photo_md5": "md5"}
_TAG_SEPARATORS = re.compile(r"[\s,;]+")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_PROGRESS_EVERY = 10_000


@dataclass
class ParsedFile:
    entries: list[NewEntry] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    skipped_unsupported: int = 0


def detect_format(filename: str | None, first_line: str) -> str:
    """The format of a file from its name and first line, for `--format auto`."""
    if filename and filename.lower().endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if first_line.lstrip().startswith("{"):
        return "jsonl"
    header = [cell.strip().lower() for cell in first_line.lstrip("\ufeff").split(",")]
    if tuple(header) == THREATEXCHANGE_COLUMNS:
        return "threatexchange"
    return "csv"


def read_entries(
    stream: IO[bytes], fmt: str, on_rows: ProgressCallback | None = None
) -> ParsedFile:
    """Parse and validate every row; collect every bad line instead of stopping at the first."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    # surrogateescape keeps undecodable bytes as marks, so one bad line is reported, not the file.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        return _read_rows(text, fmt, on_rows)
    finally:
        text.detach()  # the caller owns the stream: leave it open


def _read_rows(text: IO[str], fmt: str, on_rows: ProgressCallback | None) -> ParsedFile:
    parsed = ParsedFile()
    rows = _jsonl_rows(text) if fmt == "jsonl" else _csv_rows(text, fmt)
    count = 0
    for line, fields in rows:
        count += 1
        if on_rows and count % _PROGRESS_EVERY == 0:
            on_rows(_PROGRESS_EVERY)
        if isinstance(fields, LineError):
            parsed.errors.append(fields)
            continue
        if fmt == "threatexchange":
            kind = _THREATEXCHANGE_TYPES.get(str(fields.get("signal_type") or "").strip().lower())
            if kind is None:
                parsed.skipped_unsupported += 1
                continue
            fields = _from_threatexchange(fields, kind)
        try:
            parsed.entries.append(make_entry(**fields))
        except InvalidInput as exc:
            parsed.errors.append(LineError(line, str(exc)))
    if on_rows:
        on_rows(count % _PROGRESS_EVERY)
    return parsed


def import_file(
    session: Session,
    hash_list: HashList,
    stream: IO[bytes],
    fmt: str,
    actor: str,
    on_rows: ProgressCallback | None = None,
    on_write: Callable[[int], None] | None = None,
    on_write_start: Callable[[int], None] | None = None,
) -> AddResult:
    """Import a file into a list atomically: every row, or none and ImportRejected."""
    parsed = read_entries(stream, fmt, on_rows)
    if parsed.errors:
        raise ImportRejected(parsed.errors)
    if on_write_start:
        on_write_start(len(parsed.entries))
    return add_entries(
        session,
        hash_list,
        parsed.entries,
        actor,
        on_progress=on_write,
        skipped_unsupported=parsed.skipped_unsupported,
    )


def write_entries(
    out: IO[str],
    entries: Iterable[ListEntry],
    fmt: str,
    header: bool = True,
    extra_hashes: bool = False,
) -> int:
    """Write entries in an import format (round-trips through read_entries); return the count.

    `header=False` leaves out the CSV header, for the second and later pieces of a stream.
    `extra_hashes`: write the CSV's extra_hashes column (lists.has_extra_hashes says whether the
    list needs it); without it a CSV is what older versions wrote and read. JSON lines carry the
    key on each entry that has entry hashes, whatever this says."""
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        if header:
            writer.writerow(ALL_COLUMNS if extra_hashes else COLUMNS)
        for entry in entries:
            row = [
                entry.signal_type,
                entry.value,
                entry.category or "",
                ";".join(entry.labels),
                entry.source,
                entry.note,
            ]
            if extra_hashes:
                row.append(format_cell(stored(entry.extra_hashes)))
            writer.writerow(row)
            count += 1
    elif fmt == "jsonl":
        for entry in entries:
            record: dict[str, Any] = {
                "signal_type": entry.signal_type,
                "value": entry.value,
                "category": entry.category,
                "labels": list(entry.labels),
                "source": entry.source,
                "note": entry.note,
            }
            if entry.extra_hashes:
                record["extra_hashes"] = [h.to_json() for h in stored(entry.extra_hashes)]
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    else:
        raise InvalidInput(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    return count


# --- row readers -----------------------------------------------------------------------------

Row = tuple[int, "dict[str, Any] | LineError"]


def _csv_rows(text: IO[str], fmt: str) -> Iterator[Row]:
    expected = THREATEXCHANGE_COLUMNS if fmt == "threatexchange" else ALL_COLUMNS
    reader = csv.reader(text)
    header: list[str] | None = None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield reader.line_num, LineError(reader.line_num, f"malformed CSV: {exc}")
            continue
        line = reader.line_num
        joined = "".join(row)  # one string serves both checks: this loop runs a million times
        if not joined.strip():
            continue
        if _NOT_UTF8.search(joined):
            yield line, LineError(line, "not valid UTF-8 text")
            continue
        if header is None:
            header, problem = _check_header(row, expected)
            if problem:
                yield line, LineError(line, problem)
                return
            continue
        if len(row) != len(header):
            yield line, LineError(line, f"expected {len(header)} fields, got {len(row)}")
            continue
        yield line, dict(zip(header, row, strict=True))
    if header is None:
        yield 1, LineError(1, f"empty file: the first line must be the header {','.join(expected)}")


def _check_header(row: list[str], expected: tuple[str, ...]) -> tuple[list[str], str | None]:
    header = [cell.strip().lower() for cell in row]
    wanted = ",".join(expected)
    unknown = [name for name in header if name not in expected]
    if unknown:
        return header, f"unknown column {unknown[0]!r}: the header must be made of {wanted}"
    duplicated = {name for name in header if header.count(name) > 1}
    if duplicated:
        return header, f"column {sorted(duplicated)[0]!r} appears twice in the header"
    missing = [name for name in expected[:2] if name not in header]
    if missing:
        return header, f"the header lacks the column {missing[0]!r} (expected {wanted})"
    return header, None


def _jsonl_rows(text: IO[str]) -> Iterator[Row]:
    for line, raw in enumerate(text, start=1):
        if not raw.strip():
            continue
        if _NOT_UTF8.search(raw):
            yield line, LineError(line, "not valid UTF-8 text")
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield line, LineError(line, f"not valid JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(record, dict):
            yield line, LineError(line, "each line must be a JSON object")
            continue
        unknown = [key for key in record if key not in ALL_COLUMNS]
        if unknown:
            yield (
                line,
                LineError(line, f"unknown key {unknown[0]!r}: keys are {', '.join(ALL_COLUMNS)}"),
            )
            continue
        problem = _jsonl_field_types(record)
        if problem:
            yield line, LineError(line, problem)
            continue
        if record.get("signal_type") is None or record.get("value") is None:
            yield line, LineError(line, "signal_type and value are required")
            continue
        yield line, record


def _jsonl_field_types(record: dict[str, Any]) -> str | None:
    for key, value in record.items():
        if value is None or isinstance(value, str):
            continue
        if key in ("labels", "extra_hashes") and isinstance(value, list):
            continue  # checked item by item by make_entry
        if key == "extra_hashes":
            return "extra_hashes must be a list of {variant, value} objects"
        return f"{key} must be text" + (" or a list of text" if key == "labels" else "")
    return None


def _from_threatexchange(fields: dict[str, Any], kind: str) -> dict[str, Any]:
    category = str(fields.get("category") or "").strip()
    ours = category.upper() if category.upper() in CATEGORIES else None
    note = f"threatexchange category: {category}" if category and ours is None else ""
    tags = [tag for tag in _TAG_SEPARATORS.split(str(fields.get("tags") or "")) if tag]
    return {
        "signal_type": kind,
        "value": fields.get("signal_str") or "",
        "category": ours,
        "labels": tags,
        "source": fields.get("collab") or "",
        "note": note,
    }
