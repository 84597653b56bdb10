"""The matcher kept current from the change feed, on SQLite and PostgreSQL: adds, revocations,
new and deleted lists and threshold changes applied without a rebuild; matches restricted to some
lists; batches of values; and matching from many threads while a refresh runs."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from hashwatch import matching
from hashwatch.errors import InvalidHash, ListNotFound
from hashwatch.hashing import MediaHashes
from hashwatch.lists import (
    add_entries,
    create_list,
    delete_list,
    get_list,
    make_entry,
    revoke,
    update_list,
)
from hashwatch.matching import Matcher, RefreshResult
from hashwatch.organisations import get_or_create_organisation
from hashwatch.store import Store
from hashwatch.store.models import HashList, ListEntry, utcnow

ACTOR = "test"


@pytest.fixture
def rng() -> random.Random:
    return random.Random(7)


def pdq(rng: random.Random) -> str:
    return rng.randbytes(32).hex()


def md5(rng: random.Random) -> str:
    return rng.randbytes(16).hex()


def near(value: str, distance: int) -> str:
    """`value` with `distance` distinct bits flipped."""
    number = int(value, 16)
    for bit in range(distance):
        number ^= 1 << (bit * 7 % (4 * len(value)))  # 7 shares no factor with the bit count
    return f"{number:0{len(value)}x}"


def new_list(
    store: Store, name: str, values: Sequence[tuple[str, str]] = (), **thresholds: int
) -> int:
    with store.session() as session:
        hash_list = create_list(
            session, get_or_create_organisation(session), name, ACTOR, thresholds=thresholds
        )
        if values:
            add_entries(session, hash_list, [make_entry(k, v) for k, v in values], ACTOR)
        return hash_list.id


def add(store: Store, name: str, values: Sequence[tuple[str, str]]) -> None:
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), name)
        add_entries(session, hash_list, [make_entry(k, v) for k, v in values], ACTOR)


def revoke_values(store: Store, name: str, values: Sequence[tuple[str, str]]) -> None:
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), name)
        for kind, value in values:
            revoke(session, hash_list, f"{kind}:{value}", "false positive", ACTOR)


def load(store: Store, *names: str) -> Matcher:
    """A matcher of the named lists, or of every list when none are named."""
    with store.session() as session:
        if not names:
            return Matcher.from_store(session)
        owner = get_or_create_organisation(session)
        return Matcher.from_store(session, [get_list(session, owner, n) for n in names])


def refresh(store: Store, matcher: Matcher) -> RefreshResult:
    with store.session() as session:
        return matcher.refresh(session)


def found(matcher: Matcher, kind: str, value: str, **options: Any) -> list[tuple[str, int]]:
    return [(m.list, m.distance) for m in matcher.match_value(kind, value, **options).matches]


def test_an_add_matches_after_a_refresh_and_not_before(store: Store, rng: random.Random) -> None:
    first = pdq(rng)
    new_list(store, "hotline", [("pdq", first)])
    matcher = load(store)
    later_pdq, later_md5 = pdq(rng), md5(rng)
    add(store, "hotline", [("pdq", later_pdq), ("md5", later_md5)])
    assert found(matcher, "pdq", near(later_pdq, 5)) == []
    assert found(matcher, "md5", later_md5) == []
    assert refresh(store, matcher) == RefreshResult(added=2, lists_updated=1)
    assert found(matcher, "pdq", near(later_pdq, 5)) == [("hotline", 5)]
    assert found(matcher, "md5", later_md5) == [("hotline", 0)]
    assert found(matcher, "pdq", first) == [("hotline", 0)]
    assert len(matcher) == 3
    assert refresh(store, matcher) == RefreshResult()


def test_a_revocation_stops_matching_after_a_refresh(store: Store, rng: random.Random) -> None:
    values = [("pdq", pdq(rng)), ("pdq", pdq(rng)), ("md5", md5(rng))]
    list_id = new_list(store, "hotline", values)
    matcher = load(store, "hotline")
    revoke_values(store, "hotline", [values[0], values[2]])
    assert found(matcher, "pdq", values[0][1]) == [("hotline", 0)]
    assert refresh(store, matcher) == RefreshResult(revoked=2, lists_updated=1)
    assert found(matcher, "pdq", values[0][1]) == []
    assert found(matcher, "pdq", near(values[0][1], 3)) == []
    assert found(matcher, "md5", values[2][1]) == []
    assert found(matcher, "pdq", values[1][1]) == [("hotline", 0)]
    assert len(matcher) == 1
    with store.session() as session:
        assert matcher.held_seq(list_id) == session.get_one(HashList, list_id).last_seq == 5


def test_an_entry_added_and_revoked_between_refreshes_never_matches(
    store: Store, rng: random.Random
) -> None:
    new_list(store, "hotline")
    matcher = load(store)
    short_lived = pdq(rng)
    add(store, "hotline", [("pdq", short_lived)])
    revoke_values(store, "hotline", [("pdq", short_lived)])
    assert refresh(store, matcher) == RefreshResult(added=1, revoked=1, lists_updated=1)
    assert found(matcher, "pdq", short_lived) == []
    assert len(matcher) == 0


def test_applying_changes_the_load_already_holds_changes_nothing(
    store: Store, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On READ COMMITTED a load's entries can be newer than the sequence number it read first:
    the feed from there repeats adds it holds and revokes entries it never loaded."""
    gone = [("pdq", pdq(rng)), ("md5", md5(rng))]  # sequence numbers 1 and 2
    kept = [("pdq", pdq(rng)), ("md5", md5(rng))]  # 3 and 4
    list_id = new_list(store, "hotline", gone + kept)
    revoke_values(store, "hotline", gone)  # 5 and 6
    read_lists = Matcher._read_lists

    def as_if_read_before_later_changes(self: Matcher, session: Session) -> list[HashList]:
        hash_lists = read_lists(self, session)
        for hash_list in hash_lists:
            set_committed_value(hash_list, "last_seq", 2)
        return hash_lists

    monkeypatch.setattr(Matcher, "_read_lists", as_if_read_before_later_changes)
    with store.session() as session:
        matcher = Matcher.from_store(session)
    monkeypatch.undo()
    assert matcher.held_seq(list_id) == 2 and len(matcher) == 2
    assert refresh(store, matcher) == RefreshResult(lists_updated=1)
    assert matcher.held_seq(list_id) == 6 and len(matcher) == 2
    for kind, value in kept:
        assert found(matcher, kind, value) == [("hotline", 0)]
    for kind, value in gone:
        assert found(matcher, kind, value) == []


def test_a_new_list_is_picked_up_when_following_every_list(
    store: Store, rng: random.Random
) -> None:
    new_list(store, "hotline", [("pdq", pdq(rng))])
    every, chosen = load(store), load(store, "hotline")
    value = pdq(rng)
    partner_id = new_list(store, "partner", [("pdq", value), ("md5", md5(rng))], pdq=10)
    assert refresh(store, every) == RefreshResult(added=2, lists_added=1)
    assert refresh(store, chosen) == RefreshResult()
    assert found(every, "pdq", near(value, 10)) == [("partner", 10)]
    assert found(every, "pdq", near(value, 11)) == []
    assert found(chosen, "pdq", value) == []
    assert partner_id in every.list_ids and partner_id not in chosen.list_ids
    assert every.held_seq(partner_id) == 2
    with pytest.raises(ListNotFound):
        chosen.held_seq(partner_id)


def test_a_deleted_list_stops_matching(store: Store, rng: random.Random) -> None:
    shared = pdq(rng)
    doomed = [("pdq", shared), ("pdq", pdq(rng)), ("md5", md5(rng))]
    doomed_id = new_list(store, "doomed", doomed)
    new_list(store, "kept", [("pdq", shared)])
    every, chosen = load(store), load(store, "doomed", "kept")
    for matcher in (every, chosen):
        assert found(matcher, "pdq", shared) == [("doomed", 0), ("kept", 0)]
    with store.session() as session:
        delete_list(
            session, get_list(session, get_or_create_organisation(session), "doomed"), ACTOR
        )
    for matcher in (every, chosen):
        assert refresh(store, matcher) == RefreshResult(lists_removed=1)
        assert found(matcher, "pdq", shared) == [("kept", 0)]
        for kind, value in doomed[1:]:
            assert found(matcher, kind, value) == []
        assert doomed_id not in matcher.list_ids
        assert len(matcher) == 1
    # A list made again under the old name is a new list: followed by `every` alone.
    new_list(store, "doomed", doomed)
    assert refresh(store, every).lists_added == 1
    assert refresh(store, chosen) == RefreshResult()
    assert found(every, "md5", doomed[2][1]) == [("doomed", 0)]
    assert found(chosen, "md5", doomed[2][1]) == []


def test_a_list_deleted_and_made_again_is_a_new_list(store: Store, rng: random.Random) -> None:
    """SQLite hands the highest ids of deleted rows out again: the new list and its entries may
    have the old ones' ids."""
    old = [("pdq", pdq(rng)), ("md5", md5(rng))]
    new_list(store, "hotline", old)
    matcher = load(store)
    with store.session() as session:
        delete_list(
            session, get_list(session, get_or_create_organisation(session), "hotline"), ACTOR
        )
    fresh = [("pdq", pdq(rng)), ("md5", md5(rng))]
    new_list(store, "hotline", fresh)
    assert refresh(store, matcher) == RefreshResult(added=2, lists_added=1, lists_removed=1)
    for kind, value in old:
        assert found(matcher, kind, value) == []
    for kind, value in fresh:
        assert found(matcher, kind, value) == [("hotline", 0)]
    revoke_values(store, "hotline", fresh)
    assert refresh(store, matcher) == RefreshResult(revoked=2, lists_updated=1)
    assert [found(matcher, kind, value) for kind, value in fresh] == [[], []]
    assert len(matcher) == 0


def test_a_threshold_change_applies_to_entries_already_held(
    store: Store, rng: random.Random
) -> None:
    value = pdq(rng)
    new_list(store, "hotline", [("pdq", value)])
    new_list(store, "other", [("pdq", value)])
    matcher = load(store)
    assert found(matcher, "pdq", near(value, 20)) == [("hotline", 20), ("other", 20)]
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), "hotline")
        update_list(session, hash_list, ACTOR, thresholds={"pdq": 10})
    assert refresh(store, matcher) == RefreshResult(lists_updated=1)
    assert found(matcher, "pdq", near(value, 20)) == [("other", 20)]
    assert found(matcher, "pdq", near(value, 10)) == [("hotline", 10), ("other", 10)]
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), "hotline")
        update_list(session, hash_list, ACTOR, thresholds={"pdq": 40})
    refresh(store, matcher)
    assert found(matcher, "pdq", near(value, 35)) == [("hotline", 35)]
    later = pdq(rng)
    add(store, "hotline", [("pdq", later)])
    refresh(store, matcher)
    assert found(matcher, "pdq", near(later, 40)) == [("hotline", 40)]


def test_matches_can_be_restricted_to_some_lists(store: Store, rng: random.Random) -> None:
    values = [("pdq", pdq(rng)), ("md5", md5(rng))]
    a = new_list(store, "a", values)
    b = new_list(store, "b", values)
    matcher = load(store)
    for kind, value in values:
        assert found(matcher, kind, value) == [("a", 0), ("b", 0)]
        assert found(matcher, kind, value, lists={a}) == [("a", 0)]
        assert found(matcher, kind, value, lists=[b, 999]) == [("b", 0)]
        assert found(matcher, kind, value, lists=set()) == []
        reports = matcher.match_values(kind, [value, value], lists={b})
        assert [[m.list_id for m in r.matches] for r in reports] == [[b], [b]]
    media = MediaHashes(path=None, hashes=dict(values), quality={"pdq": 100})
    report = matcher.match_media(media, lists=frozenset({a}))
    assert sorted((m.signal_type, m.list_id) for m in report.matches) == [("md5", a), ("pdq", a)]
    assert report.matches[0].to_json()["list_id"] == a


def test_match_values_agrees_with_match_value_item_by_item(
    store: Store, rng: random.Random
) -> None:
    listed = [pdq(rng) for _ in range(20)]
    new_list(store, "wide", [("pdq", v) for v in listed])
    new_list(store, "narrow", [("pdq", v) for v in listed[:10]], pdq=8)
    digests = [md5(rng) for _ in range(5)]
    new_list(store, "digests", [("md5", v) for v in digests])
    matcher = load(store)
    queries = [near(v, d) for v, d in zip(listed, [0, 3, 8, 9, 20, 31, 32, 50] * 3, strict=False)]
    queries += [pdq(rng) for _ in range(5)] + [listed[0].upper(), listed[0]]
    qualities: list[int | None] = [rng.choice([None, 30, 49, 50, 100]) for _ in queries]
    batch = matcher.match_values("pdq", queries, qualities)
    one_by_one = [
        matcher.match_value("pdq", q, quality)
        for q, quality in zip(queries, qualities, strict=True)
    ]
    assert batch == one_by_one
    distances = {m.distance for r in batch for m in r.matches}
    assert {0, 3, 8, 9, 20, 31} <= distances and not distances & {32, 50}
    assert any(r.skipped for r in batch)
    assert matcher.match_values("pdq", queries) == [matcher.match_value("pdq", q) for q in queries]
    exact_queries = [*digests, md5(rng), f" {digests[1].upper()} "]
    assert matcher.match_values("md5", exact_queries) == [
        matcher.match_value("md5", q) for q in exact_queries
    ]
    assert matcher.match_values("sha256", [rng.randbytes(32).hex()]) == [matching.MatchReport()]
    assert matcher.match_values("pdq", []) == []


def test_a_bad_value_in_a_batch_is_named_by_its_index(store: Store, rng: random.Random) -> None:
    new_list(store, "hotline", [("pdq", pdq(rng))])
    matcher = load(store)
    with pytest.raises(InvalidHash, match=r"^item 2: pdq value must be 64 hex"):
        matcher.match_values("pdq", [pdq(rng), pdq(rng), "abc", "also bad"])
    with pytest.raises(InvalidHash, match=r"^item 0: md5 value must be hexadecimal"):
        matcher.match_values("md5", ["z" * 32])


def test_entries_of_a_signal_type_not_installed_here_are_skipped(
    store: Store, rng: random.Random
) -> None:
    """A newer hashwatch, or one with a plug-in, may store signal types this process lacks."""
    list_id = new_list(store, "hotline", [("pdq", pdq(rng))])
    matcher = load(store)
    with store.session() as session:
        session.execute(
            update(HashList).where(HashList.id == list_id).values(last_seq=HashList.last_seq + 1)
        )
        session.execute(
            insert(ListEntry).values(
                list_id=list_id,
                signal_type="tmk",
                value="00" * 16,
                labels=[],
                added_at=utcnow(),
                added_seq=2,
            )
        )
    value = md5(rng)
    add(store, "hotline", [("md5", value)])
    assert refresh(store, matcher) == RefreshResult(added=1, lists_updated=1)
    assert found(matcher, "md5", value) == [("hotline", 0)]
    assert load(store).held_seq(list_id) == matcher.held_seq(list_id) == 3
    assert len(load(store)) == len(matcher) == 2


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Apply the feed in pages of 97 changes, so a refresh takes the write lock many times."""
    monkeypatch.setattr(matching, "_PAGE", 97)
    yield


def test_matching_from_many_threads_while_a_refresh_applies_changes(
    store: Store, rng: random.Random, small_pages: None
) -> None:
    """Threads match continuously while refreshes apply thousands of adds and revocations in
    many small pages; an entry present throughout is found every time."""
    stable_pdq = [pdq(rng) for _ in range(40)]
    stable_md5 = [md5(rng) for _ in range(20)]
    stable_id = new_list(
        store, "stable", [("pdq", v) for v in stable_pdq] + [("md5", v) for v in stable_md5]
    )
    new_list(store, "churn")
    matcher = load(store)
    # Workers match while a refresh runs and wait while the database is written to: that keeps
    # the writes from queueing for the GIL behind them, and the test quick.
    refreshing, stop = threading.Event(), threading.Event()
    problems: list[str] = []
    rounds = [0] * 3

    def match_continuously(worker: int) -> None:
        queries = [near(v, worker + 1) for v in stable_pdq]
        try:
            while refreshing.wait() and not stop.is_set():
                reports = matcher.match_values("pdq", queries, lists={stable_id})
                reports += [matcher.match_value("pdq", q) for q in queries[:5]]
                for value, report in zip(stable_pdq + stable_pdq[:5], reports, strict=True):
                    stable = [m for m in report.matches if m.list == "stable"]
                    if [(m.value, m.distance) for m in stable] != [(value, worker + 1)]:
                        problems.append(f"pdq {value}: {report}")
                for value, report in zip(
                    stable_md5, matcher.match_values("md5", stable_md5), strict=True
                ):
                    if [m.value for m in report.matches if m.list == "stable"] != [value]:
                        problems.append(f"md5 {value}: {report}")
                rounds[worker] += 1
        except Exception as exc:  # reported below, with the thread that saw it
            problems.append(f"worker {worker}: {exc!r}")

    threads = [threading.Thread(target=match_continuously, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    added: list[tuple[str, str]] = []
    revoked: list[tuple[str, str]] = []
    applied = RefreshResult()
    try:
        for _ in range(4):
            batch = [("pdq", pdq(rng)) for _ in range(900)] + [
                ("md5", md5(rng)) for _ in range(100)
            ]
            add(store, "churn", batch)
            added += batch
            gone = rng.sample(sorted(set(added) - set(revoked)), 250)
            revoke_values(store, "churn", gone)
            revoked += gone
            more = [("pdq", pdq(rng)) for _ in range(500)]
            add(store, "churn", more)
            added += more
            refreshing.set()
            result = refresh(store, matcher)
            refreshing.clear()
            applied = RefreshResult(
                added=applied.added + result.added, revoked=applied.revoked + result.revoked
            )
    finally:
        stop.set()
        refreshing.set()
        for thread in threads:
            thread.join()
    assert problems == []
    assert all(rounds), rounds
    assert applied == RefreshResult(added=len(added), revoked=len(revoked))
    fresh = load(store)
    assert len(matcher) == len(fresh) == 60 + len(added) - len(revoked)
    revoked_set = set(revoked)
    for kind, value in rng.sample(added, 300):
        expected = [] if (kind, value) in revoked_set else [("churn", 0)]
        assert found(matcher, kind, value) == found(fresh, kind, value) == expected
