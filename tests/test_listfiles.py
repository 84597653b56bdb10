"""Reading list files: every format, and every bad line named with its line number and reason."""

from __future__ import annotations

import io
import json

import pytest

from hashwatch.errors import LineError
from hashwatch.listfiles import detect_format, read_entries, write_entries
from hashwatch.lists import NewEntry

PDQ = "f" * 64
MD5 = "0123456789abcdef0123456789abcdef"
HEADER = "signal_type,value,category,labels,source,note\n"


def parse(text: str | bytes, fmt: str = "csv"):  # type: ignore[no-untyped-def]
    data = text.encode() if isinstance(text, str) else text
    return read_entries(io.BytesIO(data), fmt)


def test_csv_rows_are_normalised() -> None:
    parsed = parse(
        HEADER + f"PDQ, {PDQ.upper()} ,a1,age:0-3; age:4-8 ;,IWF,seen twice\nmd5,{MD5},,,,\n"
    )
    assert parsed.errors == []
    assert parsed.entries == [
        NewEntry("pdq", PDQ, "A1", ("age:0-3", "age:4-8"), "IWF", "seen twice"),
        NewEntry("md5", MD5),
    ]


def test_csv_columns_may_come_in_any_order_and_only_two_are_required() -> None:
    parsed = parse(f"value,signal_type\n{MD5},md5\n")
    assert parsed.entries == [NewEntry("md5", MD5)]


def test_every_bad_line_is_named_with_its_reason() -> None:
    text = (
        HEADER
        + f"pdq,{PDQ},A,,,\n"  # line 2: good
        + "pdq,abc,A,,,\n"  # line 3: too short
        + f"pdq,{PDQ[:-1]}x,A,,,\n"  # line 4: non-hex
        + f"phash,{PDQ},A,,,\n"  # line 5: unknown type
        + f"md5,{MD5},D,,,\n"  # line 6: bad category
        + f"md5,{MD5},A\n"  # line 7: short row
        + "\n"  # line 8: blank, ignored
        + f'md5,"{MD5}",B2,"quoted;labels",,"a note, with a comma"\n'  # line 9: good
    )
    parsed = parse(text)
    assert [str(e) for e in parsed.errors] == [
        "line 3: pdq value must be 64 hex characters, got 3: 'abc'",
        f"line 4: pdq value must be hexadecimal (0-9, a-f), found 'x': '{PDQ[:-1]}x'",
        "line 5: unknown signal type 'phash'; known types: md5, pdq, sha1, sha256",
        "line 6: category must be one of A, B, C (UK) or A1, A2, B1, B2 (US industry), got 'D'",
        "line 7: expected 6 fields, got 3",
    ]
    assert len(parsed.entries) == 2


def test_line_numbers_count_physical_lines_of_multiline_fields() -> None:
    parsed = parse(HEADER + f'md5,{MD5},,,,"two\nlines"\nmd5,bad,,,,\n')
    assert parsed.errors == [LineError(4, "md5 value must be 32 hex characters, got 3: 'bad'")]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "signal_type,value,catgory\n",
            "line 1: unknown column 'catgory': the header must be made of",
        ),
        ("signal_type,category\n", "line 1: the header lacks the column 'value'"),
        ("signal_type,value,value\n", "line 1: column 'value' appears twice in the header"),
        (f"pdq,{PDQ}\n", "line 1: unknown column 'pdq'"),
        ("", "line 1: empty file: the first line must be the header signal_type,value"),
    ],
)
def test_a_bad_header_is_reported(header: str, message: str) -> None:
    parsed = parse(header + f"md5,{MD5},,,,\n" if header else "")
    assert len(parsed.errors) == 1
    assert str(parsed.errors[0]).startswith(message)


def test_a_byte_order_mark_is_accepted() -> None:
    assert parse(("\ufeff" + HEADER + f"md5,{MD5},,,,\n").encode("utf-8")).entries == [
        NewEntry("md5", MD5)
    ]


def test_invalid_utf8_is_named_by_line() -> None:
    data = (HEADER + f"md5,{MD5},,,,\n").encode() + b"md5,\xff\xfe,,,,\n"
    assert [str(e) for e in parse(data).errors] == ["line 3: not valid UTF-8 text"]


def test_a_nul_byte_is_named_by_line() -> None:
    parsed = parse(HEADER + f"md5,{MD5},,,,\nmd5,\0,,,,\n")
    assert [e.line for e in parsed.errors] == [3]


def test_jsonl_rows_and_their_errors() -> None:
    lines = [
        json.dumps({"signal_type": "pdq", "value": PDQ, "category": "b", "labels": ["x", "y"]}),
        "",
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"signal_type": "md5", "value": MD5, "colour": "red"}),
        json.dumps({"signal_type": "md5"}),
        json.dumps({"signal_type": "md5", "value": 5}),
        json.dumps({"signal_type": None, "value": MD5}),
        json.dumps({"signal_type": "md5", "value": None}),
        json.dumps({"signal_type": "md5", "value": MD5, "labels": "p;q", "source": None}),
    ]
    parsed = parse("\n".join(lines) + "\n", "jsonl")
    assert [str(e) for e in parsed.errors] == [
        "line 3: not valid JSON: Expecting property name enclosed in double quotes at column 2",
        "line 4: each line must be a JSON object",
        "line 5: unknown key 'colour': keys are signal_type, value, category, labels, source, "
        "note, extra_hashes",
        "line 6: signal_type and value are required",
        "line 7: value must be text",
        "line 8: signal_type and value are required",
        "line 9: signal_type and value are required",
    ]
    assert parsed.entries == [
        NewEntry("pdq", PDQ, "B", ("x", "y")),
        NewEntry("md5", MD5, None, ("p", "q")),
    ]


def test_threatexchange_csv_maps_to_entries_and_skips_other_signal_types() -> None:
    text = (
        "signal_type,signal_str,collab,category,tags\n"
        f"pdq,{PDQ},Sample Signals,TRUE_POSITIVE,media_priority_s1 sample\n"
        f"video_md5,{MD5.upper()},Sample Signals,INVESTIGATION_SEED,\n"
        "url,https://example.org/,Sample Signals,INVESTIGATION_SEED,\n"
        "raw_text,hello,Sample Signals,,\n"
        "pdq,123,Sample Signals,,\n"
    )
    parsed = parse(text, "threatexchange")
    assert parsed.entries == [
        NewEntry(
            "pdq",
            PDQ,
            None,
            ("media_priority_s1", "sample"),
            "Sample Signals",
            "threatexchange category: TRUE_POSITIVE",
        ),
        NewEntry(
            "md5", MD5, None, (), "Sample Signals", "threatexchange category: INVESTIGATION_SEED"
        ),
    ]
    assert parsed.skipped_unsupported == 2
    assert [e.line for e in parsed.errors] == [6]


def test_format_detection() -> None:
    assert detect_format("list.jsonl", "") == "jsonl"
    assert detect_format("list.txt", '{"signal_type": "pdq"}') == "jsonl"
    assert (
        detect_format("te.csv", "signal_type,signal_str,collab,category,tags\r\n")
        == "threatexchange"
    )
    assert detect_format("list.csv", HEADER) == "csv"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_round_trips_through_import(fmt: str) -> None:
    entries = [
        NewEntry("pdq", PDQ, "A", ("age:0-3", "x"), "IWF", 'note with "quotes", commas\nand lines'),
        NewEntry("md5", MD5, None, (), "", ""),
    ]
    out = io.StringIO()
    assert write_entries(out, entries, fmt) == 2  # type: ignore[arg-type]
    assert parse(out.getvalue(), fmt).entries == entries
