"""Entry hashes: extra PDQ hashes of a listed image kept with its entry, checked where they enter,
carried by exports, imports and the feed, and matched as further codes of the same entry.

Images are benign generated scenes (hashwatch.samples): a 5% crop moves their PDQ hash 50-80
bits, far past the threshold, so a cropped copy can only match through an entry hash."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from sqlalchemy import select, text
from typer.testing import CliRunner

from hashwatch import entryhashes
from hashwatch.cli import app
from hashwatch.errors import ImportRejected, InvalidInput
from hashwatch.hashing import hash_bytes
from hashwatch.listfiles import import_file, write_entries
from hashwatch.listimages import image_entries
from hashwatch.lists import (
    add_entries,
    changes,
    create_list,
    delete_list,
    get_list,
    has_extra_hashes,
    iter_active_entries,
    make_entry,
    revoke,
    update_list,
)
from hashwatch.matching import Matcher
from hashwatch.media import MediaLimits, decode_rgb
from hashwatch.organisations import get_or_create_organisation
from hashwatch.samples import encode, generate_image
from hashwatch.store import Store, migrate
from hashwatch.store.database import alembic_config
from hashwatch.store.models import VARIANT_KINDS, HashList, ListEntry

ACTOR = "test"
LIMITS = MediaLimits()
SEED = 4
CROPS = {"crop-left-5", "crop-right-5", "crop-top-5", "crop-bottom-5", "crop-all-2", "crop-all-5"}
TONES = {"brightness+30", "gamma0.6", "gamma1.6", "saturation+50"}


def listed_image(seed: int = SEED) -> bytes:
    return encode(generate_image(seed), "PNG")


def cropped(seed: int = SEED, side: str = "left") -> bytes:
    """The image with 5% of its width cut off one side, re-encoded as JPEG."""
    image = generate_image(seed)
    cut = round(image.width * 0.05)
    if side == "left":
        box = (cut, 0, image.width, image.height)
    else:
        box = (0, 0, image.width - cut, image.height)
    return encode(image.crop(box), "JPEG", quality=90)


def flip(value: str, bits: int, shift: int = 0) -> str:
    return f"{int(value, 16) ^ (((1 << bits) - 1) << shift):064x}"


def make_list(store: Store, name: str, setting: str = "crops", *seeds: int) -> None:
    with store.session() as session:
        owner = get_or_create_organisation(session)
        hash_list = create_list(session, owner, name, ACTOR, entry_hashes=setting)
        made = [
            entry
            for seed in seeds
            for entry in image_entries(
                listed_image(seed), setting, LIMITS, signal_types=("pdq",), category="A"
            ).entries
        ]
        add_entries(session, hash_list, made, ACTOR)


def matcher_for(store: Store, *names: str) -> Matcher:
    with store.session() as session:
        owner = get_or_create_organisation(session)
        return Matcher.from_store(session, [get_list(session, owner, n) for n in names])


def entries_of(store: Store, name: str) -> list[ListEntry]:
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), name)
        return list(iter_active_entries(session, [hash_list]))


# --- checking --------------------------------------------------------------------------------

VALUE = "ab" * 32


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("crop-left-5", "must be written VARIANT:VALUE"),
        ("rotate-90:" + VALUE, "unknown entry hash variant 'rotate-90'"),
        ("crop-left-50:" + VALUE, "unknown entry hash variant"),
        ("crop-middle-5:" + VALUE, "unknown entry hash variant"),
        ("crop-left-5:abc", "must be 64 hex digits"),
        ("crop-left-5:" + "g" * 64, "must be 64 hex digits"),
        (f"trimmed:{VALUE};trimmed:{VALUE}", "'trimmed' appears twice"),
        (";".join(f"crop-all-{p}:{VALUE}" for p in range(1, 26)), "at most 24 extra hashes"),
        ("gamma:" + VALUE, "unknown entry hash variant"),
        ("brightness+300:" + VALUE, "unknown entry hash variant"),
        ([{"variant": "trimmed"}], 'keys "variant" and "value"'),
        ([{"variant": "trimmed", "value": 5}], "must be text"),
        (5, "must be a list"),
    ],
)
def test_bad_extra_hashes_are_refused(raw: object, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        entryhashes.parse_extra_hashes(raw)  # type: ignore[arg-type]


def test_extra_hashes_are_normalised_and_read_back_from_a_cell() -> None:
    raw = [
        {"variant": " crop-left-5 ", "value": VALUE.upper()},
        {"variant": "tilt-2", "value": VALUE},
        {"variant": "tilt+1.5", "value": VALUE},
        {"variant": "gamma1.6", "value": VALUE},
        {"variant": "saturation+50", "value": VALUE},
    ]
    parsed = entryhashes.parse_extra_hashes(raw)
    assert [(h.variant, h.value) for h in parsed] == [
        ("crop-left-5", VALUE),
        ("tilt-2", VALUE),
        ("tilt+1.5", VALUE),
        ("gamma1.6", VALUE),
        ("saturation+50", VALUE),
    ]
    assert entryhashes.parse_extra_hashes(entryhashes.format_cell(parsed)) == parsed
    assert entryhashes.parse_extra_hashes("") == entryhashes.parse_extra_hashes(None) == ()


def test_only_pdq_entries_carry_extra_hashes() -> None:
    with pytest.raises(InvalidInput, match="only pdq entries carry extra hashes"):
        make_entry("md5", "0" * 32, extra_hashes=f"trimmed:{VALUE}")
    entry = make_entry("pdq", VALUE, extra_hashes=[{"variant": "trimmed", "value": VALUE}])
    assert entry.extra_hashes == (entryhashes.EntryHash("trimmed", VALUE),)


def test_a_list_makes_the_entry_hashes_its_setting_asks_for() -> None:
    rgb = decode_rgb(listed_image(), LIMITS)
    assert {h.variant for h in entryhashes.compute(rgb, "crops")} == CROPS
    assert entryhashes.DEFAULT_SETTING == "crops+tones"
    assert {h.variant for h in entryhashes.compute(rgb, "crops+tones")} == CROPS | TONES
    with_tilts = {h.variant for h in entryhashes.compute(rgb, "crops+tilts")}
    assert with_tilts == CROPS | {"tilt+2", "tilt-2", "tilt+4", "tilt-4"}
    wide = {h.variant for h in entryhashes.compute(rgb, "wide")}
    tens = {f"crop-{side}-10" for side in ("left", "right", "top", "bottom", "all")}
    assert wide == with_tilts | tens | TONES
    assert len(wide) <= entryhashes.MAX_EXTRA_HASHES
    assert entryhashes.compute(rgb, "none") == ()
    with pytest.raises(InvalidInput, match="entry hashes must be one of"):
        entryhashes.parse_setting("everything")


# --- matching --------------------------------------------------------------------------------


def test_a_cropped_copy_matches_only_through_an_entry_hash_which_it_names(store: Store) -> None:
    make_list(store, "with", "crops", SEED, SEED + 1)
    make_list(store, "plain", "none", SEED, SEED + 1)
    assert all(e.extra_hashes is None for e in entries_of(store, "plain"))
    own = hash_bytes(listed_image(), LIMITS).hashes["pdq"]
    matcher = matcher_for(store, "with", "plain")
    # Rotations, flips and trimming on the query side do not bring the cut-off pixels back.
    copy = hash_bytes(cropped(), LIMITS, variants=VARIANT_KINDS)
    report = matcher.match_media(copy)
    assert [(m.list, m.entry_variant, m.variant) for m in report.matches] == [
        ("with", "crop-left-5", "original")
    ]
    match = report.matches[0]
    assert match.value == own  # the entry is named by its own hash, not by the code that matched
    assert match.to_json()["entry_variant"] == "crop-left-5"
    # A bare hash (no pixels, no query variants) matches entry hashes too.
    [bare] = matcher.match_value("pdq", copy.hashes["pdq"]).matches
    assert (bare.list, bare.entry_id, bare.entry_variant) == ("with", match.entry_id, "crop-left-5")
    # The listed image itself matches both lists through their entries' own hashes.
    original = matcher.match_media(hash_bytes(listed_image(), LIMITS, variants=VARIANT_KINDS))
    assert sorted((m.list, m.entry_variant) for m in original.matches) == [
        ("plain", "original"),
        ("with", "original"),
    ]


def test_a_brightened_copy_matches_through_the_tone_hash_that_clipped_it_too(store: Store) -> None:
    # A scene with large bright areas: brightening by 30% clips them, and moves the hash past
    # the threshold (42 bits), where no query variant can bring the clipped pixels back.
    seed = 10_036
    make_list(store, "tones", "crops+tones", seed)
    make_list(store, "crops", "crops", seed)
    image = generate_image(seed)
    brighter = encode(image.point(lambda v: min(255, round(v * 1.3))), "JPEG", quality=90)
    report = matcher_for(store, "tones", "crops").match_media(
        hash_bytes(brighter, LIMITS, variants=VARIANT_KINDS)
    )
    assert [(m.list, m.entry_variant) for m in report.matches] == [("tones", "brightness+30")]


def test_an_entry_found_through_several_codes_is_one_match_at_its_best(store: Store) -> None:
    value = "5a" * 32
    extra = [
        {"variant": "crop-left-5", "value": flip(value, 6)},
        {"variant": "crop-all-2", "value": flip(value, 60, 100)},
    ]
    with store.session() as session:
        hash_list = create_list(session, get_or_create_organisation(session), "l", ACTOR)
        add_entries(session, hash_list, [make_entry("pdq", value, extra_hashes=extra)], ACTOR)
    matcher = matcher_for(store, "l")
    assert len(matcher) == 1
    cases = [
        (value, 0, "original"),  # its own value, and crop-left-5 at 6: reported once, at 0
        (flip(value, 3), 3, "original"),  # 3 from its own, 3 from crop-left-5: a tie, own first
        (flip(value, 5), 1, "crop-left-5"),
        (flip(value, 60, 100), 0, "crop-all-2"),
    ]
    reports = matcher.match_values("pdq", [query for query, _, _ in cases])  # batched
    for (query, distance, variant), report in zip(cases, reports, strict=True):
        assert [(m.distance, m.entry_variant) for m in report.matches] == [(distance, variant)]
        single = matcher.match_value("pdq", query).matches
        assert [(m.distance, m.entry_variant) for m in single] == [(distance, variant)]


def test_the_feed_carries_entry_hashes_and_revocation_removes_them(store: Store) -> None:
    with store.session() as session:
        create_list(session, get_or_create_organisation(session), "live", ACTOR)
    matcher = matcher_for(store, "live")
    query = hash_bytes(cropped(), LIMITS).hashes["pdq"]
    assert matcher.match_value("pdq", query).matches == []
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), "live")
        listed = image_entries(listed_image(), "crops", LIMITS, signal_types=("pdq",))
        add_entries(session, hash_list, listed.entries, ACTOR)
        [change] = changes(session, hash_list)
        out = change.to_json()
    assert {h["variant"] for h in out["extra_hashes"]} == CROPS
    with store.session() as session:
        result = matcher.refresh(session)
    assert result.added == 1 and len(matcher) == 1
    [match] = matcher.match_value("pdq", query).matches
    assert match.entry_variant == "crop-left-5"
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), "live")
        revoke(session, hash_list, f"pdq:{listed.entries[0].value}", "false positive", ACTOR)
        revoked = changes(session, hash_list)[-1].to_json()
    assert "extra_hashes" not in revoked
    with store.session() as session:
        assert matcher.refresh(session).revoked == 1
    assert len(matcher) == 0
    assert matcher.match_value("pdq", query).matches == []
    assert matcher.match_value("pdq", listed.entries[0].value).matches == []
    # A fresh load agrees: revoked entries and their entry hashes are never loaded.
    assert matcher_for(store, "live").match_value("pdq", query).matches == []


def test_a_deleted_list_takes_its_entry_hashes_out_of_the_matcher(store: Store) -> None:
    make_list(store, "gone", "crops", SEED)
    matcher = matcher_for(store, "gone")
    query = hash_bytes(cropped(), LIMITS).hashes["pdq"]
    assert matcher.match_value("pdq", query).matches
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), "gone")
        delete_list(session, hash_list, ACTOR)
    with store.session() as session:
        assert matcher.refresh(session).lists_removed == 1
    assert len(matcher) == 0
    assert matcher.match_value("pdq", query).matches == []


# --- files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_and_import_keep_entry_hashes(store: Store, fmt: str) -> None:
    make_list(store, "source", "crops", SEED, SEED + 1)
    with store.session() as session:
        owner = get_or_create_organisation(session)
        hash_list = get_list(session, owner, "source")
        md5 = make_entry("md5", "0" * 32, "B")
        add_entries(session, hash_list, [md5], ACTOR)
        assert has_extra_hashes(session, [hash_list])
        out = io.StringIO()
        write_entries(out, iter_active_entries(session, [hash_list]), fmt, extra_hashes=True)
        copy = create_list(session, owner, "copy", ACTOR)
        result = import_file(session, copy, io.BytesIO(out.getvalue().encode()), fmt, ACTOR)
    assert result.added == 3
    if fmt == "csv":
        assert out.getvalue().startswith(
            "signal_type,value,category,labels,source,note,extra_hashes"
        )

    def held(name: str) -> dict[tuple[str, str], object]:
        return {(e.signal_type, e.value): e.extra_hashes for e in entries_of(store, name)}

    assert held("copy") == held("source")
    assert sum(len(extra or []) for extra in held("copy").values()) == 12
    query = hash_bytes(cropped(), LIMITS).hashes["pdq"]
    [match] = matcher_for(store, "copy").match_value("pdq", query).matches
    assert match.entry_variant == "crop-left-5"


def test_a_list_without_entry_hashes_exports_as_before(store: Store) -> None:
    with store.session() as session:
        hash_list = create_list(session, get_or_create_organisation(session), "old", ACTOR)
        add_entries(session, hash_list, [make_entry("pdq", VALUE, "A")], ACTOR)
        assert not has_extra_hashes(session, [hash_list])
        for fmt in ("csv", "jsonl"):
            out = io.StringIO()
            write_entries(out, iter_active_entries(session, [hash_list]), fmt)
            assert "extra_hashes" not in out.getvalue()
    # An old file, without the column, still imports (and a CSV with an empty cell too).
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), "old")
        data = f"signal_type,value,extra_hashes\npdq,{flip(VALUE, 200)},\n".encode()
        assert import_file(session, hash_list, io.BytesIO(data), "csv", ACTOR).added == 1
    assert all(e.extra_hashes is None for e in entries_of(store, "old"))


def test_bad_entry_hashes_reject_the_import_naming_each_line(store: Store) -> None:
    good = f"crop-left-5:{flip(VALUE, 40)}"
    csv = (
        "signal_type,value,extra_hashes\n"
        f"pdq,{VALUE},{good}\n"
        f"pdq,{flip(VALUE, 100)},crop-left-5:nothex\n"
        f"md5,{'0' * 32},{good}\n"
        f"pdq,{flip(VALUE, 120)},rotate-90:{VALUE}\n"
    )
    jsonl = "\n".join(
        [
            json.dumps({"signal_type": "pdq", "value": VALUE, "extra_hashes": [{"variant": "x"}]}),
            json.dumps({"signal_type": "pdq", "value": VALUE, "extra_hashes": {"a": 1}}),
            json.dumps({"signal_type": "pdq", "value": VALUE, "extra_hashes": good}),
        ]
    )
    with store.session() as session:
        hash_list = create_list(session, get_or_create_organisation(session), "l", ACTOR)
    for fmt, data, lines in (("csv", csv, [3, 4, 5]), ("jsonl", jsonl, [1, 2])):
        with store.session() as session:
            hash_list = get_list(session, get_or_create_organisation(session), "l")
            with pytest.raises(ImportRejected) as rejected:
                import_file(session, hash_list, io.BytesIO(data.encode()), fmt, ACTOR)
        assert [e.line for e in rejected.value.errors] == lines, rejected.value.errors
    assert entries_of(store, "l") == []


# --- the schema ------------------------------------------------------------------------------


def test_the_migration_keeps_existing_lists_and_entries(store: Store) -> None:
    config = alembic_config(store.engine)
    command.downgrade(config, "0006")
    with store.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO organisations (name, created_at) VALUES ('local', :now)"),
            {"now": "2026-01-01 00:00:00"},
        )
        connection.execute(
            text(
                "INSERT INTO hash_lists (owner_id, name, description, thresholds, variants, "
                "required_grades, last_seq, created_at, updated_at, origin_cursor) VALUES "
                "(1, 'old', '', '{}', '[\"dihedral\", \"trim\"]', 2, 1, :now, :now, 0)"
            ),
            {"now": "2026-01-01 00:00:00"},
        )
        connection.execute(
            text(
                "INSERT INTO list_entries (list_id, signal_type, value, labels, source, note, "
                "added_at, added_seq) VALUES (1, 'pdq', :value, '[]', '', '', :now, 1)"
            ),
            {"value": VALUE, "now": "2026-01-01 00:00:00"},
        )
    migrate(store.engine)
    with store.session() as session:
        hash_list = session.scalars(select(HashList)).one()
        entry = session.scalars(select(ListEntry)).one()
        assert hash_list.entry_hashes == "crops"
        assert entry.extra_hashes is None
        update_list(session, hash_list, ACTOR, entry_hashes="crops+tilts")
    [match] = matcher_for(store, "old").match_value("pdq", VALUE).matches
    assert match.entry_variant == "original"


# --- the command line ------------------------------------------------------------------------


def test_add_images_lists_them_with_entry_hashes(store_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    db = ["--db", store_url]
    folder = tmp_path / "images"
    folder.mkdir()
    for seed in (SEED, SEED + 1):
        (folder / f"{seed}.png").write_bytes(listed_image(seed))
    made = runner.invoke(app, ["lists", "create", "mine", "--entry-hashes", "crops", *db])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["entry_hashes"] == "crops"
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    refused = runner.invoke(app, ["lists", "add-images", "mine", str(folder), str(bad), *db])
    assert refused.exit_code == 1
    assert "nothing was added" in refused.stderr
    added = runner.invoke(
        app,
        ["lists", "add-images", "mine", str(folder), "--category", "A", "--types", "pdq,md5", *db],
    )
    assert added.exit_code == 0, added.output
    lines = [json.loads(line) for line in added.stdout.splitlines()]
    assert [line["extra_hashes"] for line in lines[:2]] == [6, 6]
    assert lines[-1]["added"] == 4
    query = tmp_path / "cropped.jpg"
    query.write_bytes(cropped())
    matched = runner.invoke(app, ["match", str(query), *db])
    assert matched.exit_code == 0, matched.output
    [hit] = json.loads(matched.stdout)["matches"]
    assert (hit["entry_variant"], hit["category"]) == ("crop-left-5", "A")
    exported = runner.invoke(app, ["lists", "export", "mine", *db])
    assert exported.stdout.startswith("signal_type,value,category,labels,source,note,extra_hashes")
    updated = runner.invoke(app, ["lists", "update", "mine", "--entry-hashes", "none", *db])
    assert json.loads(updated.stdout)["entry_hashes"] == "none"
    wrong = runner.invoke(app, ["lists", "update", "mine", "--entry-hashes", "all", *db])
    assert wrong.exit_code == 1


def test_many_entries_with_entry_hashes_through_the_feed(store: Store) -> None:
    """Enough codes that the index builds its tables from the feed's adds; revoking an entry
    takes out exactly its own codes."""
    rng = np.random.default_rng(7)
    values = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(500)]
    names = sorted(CROPS)
    extras = [
        [{"variant": n, "value": flip(v, 40 + k, 3 * k)} for k, n in enumerate(names)]
        for v in values
    ]
    with store.session() as session:
        create_list(session, get_or_create_organisation(session), "many", ACTOR)
    matcher = matcher_for(store, "many")
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), "many")
        add_entries(
            session,
            hash_list,
            [make_entry("pdq", v, extra_hashes=e) for v, e in zip(values, extras, strict=True)],
            ACTOR,
        )
    with store.session() as session:
        assert matcher.refresh(session).added == 500
    queries = [extras[i][k]["value"] for i in (10, 11) for k in range(len(names))]
    for report in matcher.match_values("pdq", queries):
        assert [m.distance for m in report.matches] == [0]
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), "many")
        revoke(session, hash_list, f"pdq:{values[10]}", "false positive", ACTOR)
    with store.session() as session:
        matcher.refresh(session)
    found = [len(r.matches) for r in matcher.match_values("pdq", queries)]
    assert found == [0] * len(names) + [1] * len(names)
    fresh = matcher_for(store, "many")
    assert [len(r.matches) for r in fresh.match_values("pdq", queries)] == found
    assert len(fresh) == len(matcher) == 499
