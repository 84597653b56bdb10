"""Hash lists in the store, on SQLite and PostgreSQL: atomic imports, idempotence, revocation,
the change feed and the audit log."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from hashwatch import audit
from hashwatch.errors import (
    AmbiguousValue,
    Conflict,
    EntryNotFound,
    ImportRejected,
    InvalidInput,
    ListExists,
    ListNotFound,
)
from hashwatch.listfiles import import_file
from hashwatch.lists import (
    add_entries,
    changes,
    create_list,
    get_list,
    iter_active_entries,
    list_summary,
    make_entry,
    parse_thresholds,
    revoke,
    update_list,
)
from hashwatch.organisations import get_or_create_organisation
from hashwatch.store import Store
from hashwatch.store.models import ListEntry

ACTOR = "test:analyst"
HEADER = "signal_type,value,category,labels,source,note\n"


def pdq(n: int) -> str:
    return f"{n:064x}"


def md5(n: int) -> str:
    return f"{n:032x}"


def csv_rows(count: int, start: int = 0) -> list[str]:
    return [f"pdq,{pdq(i)},A,age:0-3,IWF,row {i}\n" for i in range(start, start + count)]


def do_import(store: Store, name: str, text: str, fmt: str = "csv"):  # type: ignore[no-untyped-def]
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), name)
        return import_file(session, hash_list, io.BytesIO(text.encode()), fmt, ACTOR)


def entry_count(store: Store) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(ListEntry)) or 0


@pytest.fixture
def list_name(store: Store) -> str:
    with store.session() as session:
        create_list(session, get_or_create_organisation(session), "iwf-test", ACTOR)
    return "iwf-test"


def test_a_list_belongs_to_an_organisation_and_its_name_is_unique_there(store: Store) -> None:
    with store.session() as session:
        local = get_or_create_organisation(session)
        other = get_or_create_organisation(session, "other-hotline")
        create_list(session, local, "shared-name", ACTOR, thresholds={"pdq": 40})
        create_list(session, other, "shared-name", ACTOR)
    with (
        store.session() as session,
        pytest.raises(ListExists, match="a list named 'shared-name' already exists"),
    ):
        create_list(session, get_or_create_organisation(session), " shared-name ", ACTOR)
    with store.session() as session:
        local = get_or_create_organisation(session)
        assert get_list(session, local, "shared-name").thresholds == {"pdq": 40}
        assert list_summary(session, get_list(session, local, "shared-name"))["thresholds"] == {
            "pdq": 40,
            "md5": 0,
            "sha1": 0,
            "sha256": 0,
        }
        with pytest.raises(ListNotFound, match="no list named 'missing'"):
            get_list(session, local, "missing")


def test_thresholds_are_validated_per_signal_type() -> None:
    assert parse_thresholds(["PDQ=40"]) == {"pdq": 40}
    with pytest.raises(InvalidInput, match="threshold for pdq must be between 0 and 256, got 300"):
        parse_thresholds(["pdq=300"])
    with pytest.raises(InvalidInput, match="threshold for md5 must be between 0 and 0, got 2"):
        parse_thresholds(["md5=2"])
    with pytest.raises(InvalidInput, match="SIGNAL_TYPE=DISTANCE"):
        parse_thresholds(["31"])


def test_import_is_atomic_a_bad_row_5_of_10_leaves_the_list_unchanged(
    store: Store, list_name: str
) -> None:
    do_import(store, list_name, HEADER + "".join(csv_rows(3, start=100)))
    before = entry_count(store)
    rows = csv_rows(10)
    rows[3] = "pdq,not-a-hash,A,,,\n"  # the 5th line of the file (the header is line 1)
    with pytest.raises(ImportRejected) as rejected:
        do_import(store, list_name, HEADER + "".join(rows))
    assert [str(e) for e in rejected.value.errors] == [
        "line 5: pdq value must be 64 hex characters, got 10: 'not-a-hash'"
    ]
    assert str(rejected.value).startswith(
        "import rejected, nothing was imported: 1 bad row\nline 5:"
    )
    assert entry_count(store) == before
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), list_name)
        assert hash_list.last_seq == 3
        assert len(changes(session, hash_list)) == 3


def test_reimporting_the_same_rows_adds_nothing(store: Store, list_name: str) -> None:
    text = HEADER + "".join(csv_rows(10)) + csv_rows(1)[0]  # one duplicate inside the file too
    first = do_import(store, list_name, text)
    assert (first.added, first.already_present) == (10, 1)
    again = do_import(store, list_name, text)
    assert (again.added, again.already_present, again.revoked_kept) == (0, 11, 0)
    more = do_import(store, list_name, HEADER + "".join(csv_rows(12)))
    assert (more.added, more.already_present) == (2, 10)
    assert entry_count(store) == 12


def test_the_same_value_may_be_listed_under_different_signal_types(
    store: Store, list_name: str
) -> None:
    value = "a" * 64
    result = do_import(store, list_name, HEADER + f"pdq,{value},,,,\nsha256,{value},,,,\n")
    assert result.added == 2
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), list_name)
        with pytest.raises(AmbiguousValue, match="several signal types \\(pdq, sha256\\)"):
            revoke(session, hash_list, value, "false positive", ACTOR)
        entry = revoke(session, hash_list, f"sha256:{value.upper()}", "false positive", ACTOR)
        assert entry.signal_type == "sha256"


def test_revocation_is_a_tombstone_in_the_change_feed(store: Store, list_name: str) -> None:
    do_import(store, list_name, HEADER + "".join(csv_rows(3)) + f"md5,{md5(9)},B1,,NCMEC,\n")
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), list_name)
        entry = revoke(session, hash_list, pdq(1).upper(), "  false positive: a cartoon ", ACTOR)
        assert entry.revoke_reason == "false positive: a cartoon"
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), list_name)
        feed = changes(session, hash_list)
        assert [(c.seq, c.kind, c.value) for c in feed] == [
            (1, "add", pdq(0)),
            (2, "add", pdq(1)),
            (3, "add", pdq(2)),
            (4, "add", md5(9)),
            (5, "revoke", pdq(1)),
        ]
        assert feed[-1].revoke_reason == "false positive: a cartoon"
        assert feed[-1].to_json()["reason"] == "false positive: a cartoon"
        assert [c.seq for c in changes(session, hash_list, after=3, limit=1)] == [4]
        assert [c.seq for c in changes(session, hash_list, after=5)] == []
        assert pdq(1) not in {e.value for e in iter_active_entries(session, [hash_list])}
        summary = list_summary(session, hash_list)
        assert (summary["entries"], summary["revoked"], summary["last_seq"]) == (3, 1, 5)
        assert summary["by_category"] == {"A": 2, "B1": 1}
        with pytest.raises(Conflict, match="already revoked"):
            revoke(session, hash_list, pdq(1), "again", ACTOR)
        with pytest.raises(EntryNotFound, match="has no entry"):
            revoke(session, hash_list, pdq(77), "never listed", ACTOR)
        with pytest.raises(InvalidInput, match="needs a reason"):
            revoke(session, hash_list, pdq(2), "   ", ACTOR)


def test_reimporting_a_revoked_value_keeps_it_revoked(store: Store, list_name: str) -> None:
    do_import(store, list_name, HEADER + "".join(csv_rows(2)))
    with store.session() as session:
        revoke(
            session,
            get_list(session, get_or_create_organisation(session), list_name),
            pdq(0),
            "fp",
            ACTOR,
        )
    result = do_import(store, list_name, HEADER + "".join(csv_rows(2)))
    assert (result.added, result.already_present, result.revoked_kept) == (0, 1, 1)


def test_sequence_numbers_continue_across_lists_independently(store: Store) -> None:
    with store.session() as session:
        owner = get_or_create_organisation(session)
        first = create_list(session, owner, "first", ACTOR)
        second = create_list(session, owner, "second", ACTOR)
        add_entries(session, first, [make_entry("md5", md5(1)), make_entry("md5", md5(2))], ACTOR)
        add_entries(session, second, [make_entry("md5", md5(1))], ACTOR)
        add_entries(session, first, [make_entry("md5", md5(3))], ACTOR)
        assert [c.seq for c in changes(session, first)] == [1, 2, 3]
        assert [c.seq for c in changes(session, second)] == [1]


def test_every_change_is_audited(store: Store, list_name: str) -> None:
    do_import(store, list_name, HEADER + "".join(csv_rows(2)))
    with store.session() as session:
        owner = get_or_create_organisation(session)
        hash_list = get_list(session, owner, list_name)
        update_list(
            session, hash_list, "test:admin", description="IWF test list", thresholds={"pdq": 28}
        )
        revoke(session, hash_list, pdq(0), "fp", "test:senior")
    with store.session() as session:
        owner = get_or_create_organisation(session)
        events = audit.recent_events(session, owner.id)
        assert [(e.action, e.actor) for e in events] == [
            ("entry.revoke", "test:senior"),
            ("list.update", "test:admin"),
            ("entries.add", ACTOR),
            ("list.create", ACTOR),
        ]
        assert events[0].detail["reason"] == "fp" and events[0].detail["value"] == pdq(0)
        assert events[2].detail["added"] == 2
        assert events[1].detail["thresholds"] == {"pdq": 28}


def test_timestamps_are_timezone_aware_utc(store: Store, list_name: str) -> None:
    do_import(store, list_name, HEADER + "".join(csv_rows(1)))
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), list_name)
        change = changes(session, hash_list)[0]
        assert change.at.utcoffset() is not None and change.at.utcoffset().total_seconds() == 0


def test_large_imports_go_in_bulk(store: Store, list_name: str) -> None:
    result = do_import(store, list_name, HEADER + "".join(csv_rows(60_000)))
    assert result.added == 60_000
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), list_name)
        feed = changes(session, hash_list, after=59_998)
        assert [(c.seq, c.value) for c in feed] == [(59_999, pdq(59_998)), (60_000, pdq(59_999))]
        assert feed[0].labels == ["age:0-3"] and feed[0].source == "IWF"


def test_concurrent_imports_of_the_same_rows_add_each_value_once(
    store: Store, list_name: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    text = HEADER + "".join(csv_rows(2000))
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: do_import(store, list_name, text), range(3)))
    assert sorted(r.added for r in results) == [0, 0, 2000]
    assert sum(r.already_present for r in results) == 4000
    assert entry_count(store) == 2000
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), list_name)
        assert [c.seq for c in changes(session, hash_list, after=1998)] == [1999, 2000]


def test_concurrent_first_use_creates_one_organisation(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def first_use(_: int) -> int:
        with store.session() as session:
            return get_or_create_organisation(session, "new-hotline").id

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = set(pool.map(first_use, range(8)))
    assert len(ids) == 1


def test_a_small_add_to_a_long_list_finds_present_and_revoked_values(store: Store) -> None:
    # A batch much smaller than the list looks up just its own values: the counts stay the same.
    values = [f"{i:032x}" for i in range(400)]
    with store.session() as session:
        owner = get_or_create_organisation(session, "hotline")
        hash_list = create_list(session, owner, "long", ACTOR)
        add_entries(session, hash_list, [make_entry("md5", v) for v in values], ACTOR)
        revoke(session, hash_list, values[7], "false positive", ACTOR, signal_type="md5")
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session, "hotline"), "long")
        fresh = f"{999:032x}"
        batch = [make_entry("md5", v) for v in (values[3], values[7], fresh, fresh)]
        result = add_entries(session, hash_list, batch, ACTOR)
    assert (result.added, result.already_present, result.revoked_kept) == (1, 2, 1)


def test_required_grades_are_set_and_checked(store: Store) -> None:
    with store.session() as session:
        owner = get_or_create_organisation(session)
        hash_list = create_list(session, owner, "graded", "tester", required_grades=3)
        assert list_summary(session, hash_list)["required_grades"] == 3
        update_list(session, hash_list, "tester", required_grades=1)
        assert hash_list.required_grades == 1
        for bad in (0, 10, True):
            with pytest.raises(InvalidInput, match="required grades"):
                update_list(session, hash_list, "tester", required_grades=bad)
        with pytest.raises(InvalidInput, match="required grades"):
            create_list(session, owner, "other", "tester", required_grades=0)
