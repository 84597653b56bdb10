"""Sync of a local copy from another server's change feed, on SQLite and PostgreSQL, against a
fake origin served through httpx2.MockTransport: first sync, incremental sync, resuming after an
interruption, retries, refusals, and the `hashwatch sync` command."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hashwatch import audit
from hashwatch.cli import app
from hashwatch.entryhashes import EntryHash
from hashwatch.errors import Conflict, InvalidInput, ListExists, SyncError
from hashwatch.lists import (
    Change,
    add_entries,
    create_list,
    get_list,
    list_summary,
    make_entry,
    revoke,
    update_list,
)
from hashwatch.matching import Matcher
from hashwatch.organisations import get_or_create_organisation
from hashwatch.store import Store
from hashwatch.store.models import HashList, ListEntry
from hashwatch.sync import SyncProgress, normalise_server, parse_duration, sync_list

SERVER = "https://hashes.example.org"
KEY = "hw_k3y1d_s3cr3t"
LIST_ID = 7


def pdq(n: int) -> str:
    return hashlib.sha256(f"pdq {n}".encode()).hexdigest()  # 64 hex characters, like a PDQ hash


def md5(n: int) -> str:
    return hashlib.md5(f"file {n}".encode()).hexdigest()


def error(status: int, code: str, message: str) -> httpx2.Response:
    return httpx2.Response(status, json={"error": {"code": code, "message": message}})


class FakeOrigin:
    """One list on a hashwatch server as sync sees it: its metadata and its paged change feed,
    held in memory, behind the HTTP API's paths, key check and error bodies."""

    def __init__(self) -> None:
        self.name = "partner hotline"
        self.description = "verified by two analysts"
        self.thresholds = {"pdq": 28, "md5": 0, "sha1": 0, "sha256": 0}
        self.access = "read"
        self.feed: list[Change] = []
        self.afters: list[int] = []  # `after` of every change-feed request, in order
        self.pages_served = 0
        #: Answer every request with this response (a refused key, a missing list).
        self.answer: httpx2.Response | None = None
        #: Answer change-feed requests with 500 once this many pages have been served.
        self.fail_after_pages: int | None = None
        #: Answers to give, in order, to the next change-feed requests before serving pages.
        self.hiccups: list[httpx2.Response | Exception] = []

    # the origin's list

    def add(self, signal_type: str, value: str, category: str | None = "A", note: str = "") -> None:
        self.feed.append(
            Change(
                seq=len(self.feed) + 1,
                kind="add",
                at=datetime.now(UTC),
                entry_id=len(self.feed) + 100,
                signal_type=signal_type,
                value=value,
                category=category,
                labels=["age:0-3", "hotline:uk"],
                source="partner",
                note=note,
            )
        )

    def revoke(self, signal_type: str, value: str, reason: str) -> None:
        [added] = [
            c for c in self.feed if (c.kind, c.signal_type, c.value) == ("add", signal_type, value)
        ]
        self.feed.append(
            Change(
                seq=len(self.feed) + 1,
                kind="revoke",
                at=datetime.now(UTC),
                entry_id=added.entry_id,
                signal_type=signal_type,
                value=value,
                category=added.category,
                labels=added.labels,
                source=added.source,
                note=added.note,
                revoke_reason=reason,
            )
        )

    def state(self) -> dict[tuple[str, str], str | None]:
        """Every entry ever added, with its revocation reason (None while active)."""
        out: dict[tuple[str, str], str | None] = {}
        for change in self.feed:
            key = (change.signal_type, change.value)
            out[key] = change.revoke_reason if change.kind == "revoke" else None
        return out

    # HTTP

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self.handle))

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return error(401, "unauthorized", "missing or invalid API key")
        if self.answer is not None:
            return self.answer
        path = request.url.path
        if path == f"/v1/lists/{LIST_ID}":
            revoked = sum(c.kind == "revoke" for c in self.feed)
            return httpx2.Response(
                200,
                json={
                    "id": LIST_ID,
                    "name": self.name,
                    "owner": "partner-org",
                    "access": self.access,
                    "description": self.description,
                    "thresholds": self.thresholds,
                    "entries": len(self.feed) - 2 * revoked,
                    "revoked": revoked,
                    "last_seq": len(self.feed),
                },
            )
        if path == f"/v1/lists/{LIST_ID}/changes":
            after = int(request.url.params["after"])
            limit = int(request.url.params["limit"])
            self.afters.append(after)
            if self.hiccups:
                hiccup = self.hiccups.pop(0)
                if isinstance(hiccup, Exception):
                    raise hiccup
                return hiccup
            if self.fail_after_pages is not None and self.pages_served >= self.fail_after_pages:
                return error(500, "internal", "database unavailable")
            page = [c for c in self.feed if c.seq > after][:limit]
            next_after = page[-1].seq if page else after
            self.pages_served += 1
            return httpx2.Response(
                200,
                json={
                    "list_id": LIST_ID,
                    "changes": [c.to_json() for c in page],
                    "next_after": next_after,
                    "last_seq": len(self.feed),
                    "more": len(self.feed) > next_after,
                },
            )
        return error(404, "not_found", f"no list {path.split('/')[3]}")


@pytest.fixture
def origin() -> FakeOrigin:
    """Five PDQ entries and an MD5 one, one PDQ entry since revoked: seven changes."""
    origin = FakeOrigin()
    for n in range(5):
        origin.add("pdq", pdq(n), note=f"case {n}")
    origin.add("md5", md5(0), category="B")
    origin.revoke("pdq", pdq(1), "false positive: a stock photograph")
    return origin


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retry back-off without waiting: the seconds each sleep asked for."""
    asked: list[float] = []
    monkeypatch.setattr(time, "sleep", asked.append)
    return asked


def sync(store: Store, origin: FakeOrigin, **options: Any) -> Any:
    with origin.client() as client:
        return sync_list(store, SERVER, KEY, LIST_ID, client=client, **options)


def copy_state(store: Store, name: str = "partner hotline") -> dict[tuple[str, str], str | None]:
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), name)
        rows = session.scalars(select(ListEntry).where(ListEntry.list_id == hash_list.id))
        return {(e.signal_type, e.value): e.revoke_reason for e in rows}


def the_copy(store: Store, name: str = "partner hotline") -> HashList:
    with store.session() as session:
        return get_list(session, get_or_create_organisation(session), name)


def lists_count(store: Store) -> int:
    with store.session() as session:
        return len(session.scalars(select(HashList.id)).all())


# --- sync_list -------------------------------------------------------------------------------


def test_first_sync_creates_the_copy_with_entries_and_thresholds(
    store: Store, origin: FakeOrigin
) -> None:
    progress: list[SyncProgress] = []
    result = sync(store, origin, page_size=3, on_page=progress.append)

    assert result.to_json() == {
        "list": "partner hotline",
        "list_id": result.list_id,
        "origin": SERVER,
        "origin_list_id": LIST_ID,
        "pages": 3,
        "added": 6,
        "already_present": 0,
        "revoked": 1,
        "skipped": 0,
        "cursor": 7,
        "last_seq": 7,
    }
    assert origin.afters == [0, 3, 6]
    assert [(p.pages, p.changes, p.cursor) for p in progress] == [(1, 3, 3), (2, 6, 6), (3, 7, 7)]
    assert copy_state(store) == origin.state()
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), "partner hotline")
        assert (hash_list.origin_url, hash_list.origin_list_id) == (SERVER, LIST_ID)
        assert hash_list.origin_cursor == 7
        summary = list_summary(session, hash_list)
        assert summary["description"] == "verified by two analysts"
        assert summary["thresholds"]["pdq"] == 28
        assert (summary["entries"], summary["revoked"]) == (5, 1)
        assert summary["by_signal_type"] == {"md5": 1, "pdq": 4}
        entry = session.scalars(select(ListEntry).where(ListEntry.value == pdq(0))).one()
        assert (entry.category, entry.labels, entry.source, entry.note) == (
            "A",
            ["age:0-3", "hotline:uk"],
            "partner",
            "case 0",
        )
        events = audit.recent_events(session, hash_list.owner_id, hash_list.id)
        assert {e.actor for e in events} == {f"sync:{SERVER}"}


def test_a_second_sync_applies_only_the_new_changes(store: Store, origin: FakeOrigin) -> None:
    sync(store, origin)
    origin.add("pdq", pdq(10))
    origin.add("md5", md5(10), category=None)
    origin.revoke("pdq", pdq(3), "duplicate of another list's entry")
    origin.thresholds = {**origin.thresholds, "pdq": 31}
    origin.afters.clear()

    result = sync(store, origin)

    assert origin.afters == [7]
    assert (result.pages, result.added, result.revoked, result.cursor) == (1, 2, 1, 10)
    assert copy_state(store) == origin.state()
    assert copy_state(store)[("pdq", pdq(3))] == "duplicate of another list's entry"
    assert the_copy(store).thresholds["pdq"] == 31

    origin.afters.clear()
    again = sync(store, origin)
    assert origin.afters == [10]
    assert (again.added, again.revoked, again.cursor, again.last_seq) == (0, 0, 10, 10)


def test_an_interrupted_sync_keeps_its_applied_pages_and_resumes_from_its_cursor(
    store: Store, origin: FakeOrigin, sleeps: list[float]
) -> None:
    for n in range(20, 30):
        origin.add("pdq", pdq(n))
    origin.revoke("pdq", pdq(22), "false positive")  # 18 changes in all
    origin.fail_after_pages = 2

    with pytest.raises(SyncError) as failed:
        sync(store, origin, page_size=4)

    assert str(failed.value) == (
        f"sync of list {LIST_ID} from {SERVER} failed: the server answered 500 internal: "
        "database unavailable; gave up after 5 tries"
    )
    assert sleeps == [1, 2, 4, 8]
    assert origin.afters == [0, 4, 8, 8, 8, 8, 8]
    assert the_copy(store).origin_cursor == 8
    assert copy_state(store) == {(c.signal_type, c.value): c.revoke_reason for c in origin.feed[:8]}

    origin.fail_after_pages = None
    origin.afters.clear()
    result = sync(store, origin, page_size=4)

    assert origin.afters == [8, 12, 16]
    assert (result.added, result.already_present, result.revoked) == (9, 0, 1)
    assert result.cursor == result.last_seq == 18
    assert copy_state(store) == origin.state()
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), "partner hotline")
        assert list_summary(session, hash_list)["entries"] == 14


def test_rate_limits_and_passing_failures_are_retried(
    store: Store, origin: FakeOrigin, sleeps: list[float]
) -> None:
    origin.hiccups = [
        httpx2.Response(429, headers={"Retry-After": "3"}, json={"error": {"code": "rate"}}),
        httpx2.Response(429, headers={"Retry-After": "3600"}),
        httpx2.ConnectError("connection refused"),
        httpx2.Response(503, text="<html>bad gateway</html>"),
    ]
    result = sync(store, origin)
    assert sleeps == [3, 60, 4, 8]  # Retry-After honoured up to a minute; else back-off
    assert result.cursor == 7
    assert copy_state(store) == origin.state()


def test_a_refused_key_or_a_missing_list_fails_at_once_and_changes_nothing(
    store: Store, origin: FakeOrigin, sleeps: list[float]
) -> None:
    with (
        origin.client() as client,
        pytest.raises(SyncError) as refused,
    ):
        sync_list(store, SERVER, "hw_wrong_key", LIST_ID, client=client)
    assert str(refused.value) == (
        f"sync of list 7 from {SERVER} failed: the server answered 401 unauthorized: "
        "missing or invalid API key (check the API key)"
    )
    with origin.client() as client, pytest.raises(SyncError) as missing:
        sync_list(store, SERVER + "/", KEY, 8, client=client)
    assert str(missing.value) == (
        f"sync of list 8 from {SERVER} failed: the server answered 404 not_found: no list 8 "
        "(there is no such list, or it is not shared with your organisation)"
    )
    origin.access = "match"
    with pytest.raises(SyncError, match="may only match against this list; a copy needs read"):
        sync(store, origin)
    assert sleeps == []
    assert lists_count(store) == 0


def test_a_refusal_after_the_first_sync_leaves_the_copy_as_it_was(
    store: Store, origin: FakeOrigin
) -> None:
    sync(store, origin)
    origin.add("pdq", pdq(40))
    origin.answer = error(403, "forbidden", "the key lacks scope lists:read")
    with pytest.raises(SyncError, match="403 forbidden: the key lacks scope lists:read"):
        sync(store, origin)
    assert the_copy(store).origin_cursor == 7
    assert ("pdq", pdq(40)) not in copy_state(store)


def test_two_syncs_of_one_copy_at_once_apply_each_change_once(
    store: Store, origin: FakeOrigin
) -> None:
    handle = origin.handle
    inner: list[Any] = []

    def handle_racing(request: httpx2.Request) -> httpx2.Response:
        # While this run fetches its second page, another run syncs the copy to the end.
        if request.url.params.get("after") == "3" and not inner:
            origin.handle = handle
            inner.append(sync(store, origin))
        return handle(request)

    origin.handle = handle_racing  # type: ignore[method-assign]
    outer = sync(store, origin, page_size=3)

    [other] = inner
    assert (other.added, other.revoked, other.already_present) == (3, 1, 0)
    assert (outer.added, outer.revoked, outer.already_present) == (3, 0, 0)
    assert outer.cursor == other.cursor == 7
    assert origin.afters == [0, 3, 3, 7]
    assert copy_state(store) == origin.state()


def test_an_origin_whose_feed_went_back_is_refused(store: Store, origin: FakeOrigin) -> None:
    sync(store, origin)
    del origin.feed[5:]  # restored from a backup taken before the last two changes
    with pytest.raises(SyncError, match="ends at sequence number 5, but the copy 'partner hotl"):
        sync(store, origin)
    assert the_copy(store).origin_cursor == 7


def test_an_answer_that_is_not_the_api_is_an_error(store: Store, origin: FakeOrigin) -> None:
    origin.answer = httpx2.Response(200, text="<html>captive portal</html>")
    with pytest.raises(SyncError, match="answer to /v1/lists/7 is not JSON"):
        sync(store, origin)
    origin.answer = httpx2.Response(302, headers={"Location": "https://login.example/"})
    with pytest.raises(SyncError, match=re.escape("answered 302 Found, to https://login.example/")):
        sync(store, origin)
    assert lists_count(store) == 0


def test_the_copy_changes_only_through_sync(store: Store, origin: FakeOrigin) -> None:
    sync(store, origin)
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), "partner hotline")
        with pytest.raises(Conflict, match="is a local copy of list 7 at https://hashes"):
            add_entries(session, hash_list, [make_entry("pdq", pdq(50))], "cli:analyst")
        with pytest.raises(Conflict, match="changes only through `hashwatch sync`"):
            revoke(session, hash_list, pdq(0), "mine now", "cli:analyst", "pdq")
        with pytest.raises(Conflict):
            update_list(session, hash_list, "cli:analyst", thresholds={"pdq": 40})
    assert copy_state(store) == origin.state()


def test_a_name_taken_by_another_list_is_refused_and_as_names_the_copy(
    store: Store, origin: FakeOrigin
) -> None:
    with store.session() as session:
        create_list(session, get_or_create_organisation(session), "partner hotline", "cli:a")
    with pytest.raises(ListExists, match="'partner hotline' already exists and is not a copy"):
        sync(store, origin)
    result = sync(store, origin, name="partner copy")
    assert result.list_name == "partner copy"
    assert copy_state(store, "partner copy") == origin.state()
    assert copy_state(store) == {}
    # The copy is found by its origin, whatever it is called.
    origin.add("md5", md5(60))
    assert sync(store, origin).list_name == "partner copy"
    # Another organisation keeps a copy of its own.
    other = sync(store, origin, organisation="other-hotline")
    assert other.list_id != result.list_id and other.added == 7


def test_unknown_signal_types_and_revocations_of_missing_entries_are_skipped(
    store: Store, origin: FakeOrigin
) -> None:
    origin.add("tmk", "ab" * 128)
    origin.revoke("tmk", "ab" * 128, "false positive")
    origin.thresholds = {**origin.thresholds, "tmk": 5}
    result = sync(store, origin)
    assert (result.added, result.revoked, result.skipped, result.cursor) == (6, 1, 2, 9)
    assert ("tmk", "ab" * 128) not in copy_state(store)
    assert "tmk" not in the_copy(store).thresholds


def test_entry_hashes_come_with_their_entries_and_leave_with_them(
    store: Store, origin: FakeOrigin
) -> None:
    crop = f"{int(pdq(9), 16) ^ ((1 << 80) - 1):064x}"  # far from the entry's own hash
    newer = Change(
        seq=len(origin.feed) + 1,
        kind="add",
        at=datetime.now(UTC),
        entry_id=500,
        signal_type="pdq",
        value=pdq(9),
        category="A",
        labels=[],
        source="partner",
        note="",
        extra_hashes=(EntryHash("crop-left-5", crop), EntryHash("trimmed", pdq(10))),
    )
    # A newer origin's entry hash of a variant this version does not know: the entry's own hash
    # is still copied, without its entry hashes.
    unknown = Change(
        **{
            **{f: getattr(newer, f) for f in Change.__dataclass_fields__},
            "seq": newer.seq + 1,
            "entry_id": 501,
            "value": pdq(11),
            "extra_hashes": (EntryHash("warp-3", pdq(12)),),
        }
    )
    origin.feed += [newer, unknown]
    body = newer.to_json()
    assert body["extra_hashes"][0] == {"variant": "crop-left-5", "value": crop}
    result = sync(store, origin)
    assert result.added == 8
    with store.session() as session:
        rows = {
            e.value: e.extra_hashes
            for e in session.scalars(select(ListEntry).where(ListEntry.signal_type == "pdq"))
        }
        matcher = Matcher.from_store(session)
    assert rows[pdq(9)] == [
        {"variant": "crop-left-5", "value": crop},
        {"variant": "trimmed", "value": pdq(10)},
    ]
    assert rows[pdq(11)] is None
    [match] = matcher.match_value("pdq", crop).matches
    assert (match.value, match.entry_variant) == (pdq(9), "crop-left-5")
    origin.revoke("pdq", pdq(9), "false positive")
    assert sync(store, origin).revoked == 1
    with store.session() as session:
        matcher.refresh(session)
    assert matcher.match_value("pdq", crop).matches == []


def test_server_urls_are_normalised_and_checked() -> None:
    assert normalise_server("HTTPS://Hashes.Example.org:443/") == SERVER
    assert normalise_server("http://127.0.0.1:8000/base/") == "http://127.0.0.1:8000/base"
    for bad in ("hashes.example.org", "ftp://hashes.example.org", "https://u:p@hashes.example"):
        with pytest.raises(InvalidInput):
            normalise_server(bad)


def test_durations() -> None:
    assert parse_duration("30s") == 30
    assert parse_duration("10m") == 600
    assert parse_duration(" 1H ") == 3600
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2d") == 172_800
    for bad in ("10", "m", "10 minutes", "-5m", "1.5h", "0s", ""):
        with pytest.raises(InvalidInput):
            parse_duration(bad)


# --- hashwatch sync --------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, origin: FakeOrigin) -> FakeOrigin:
    """The command's HTTP clients talk to the fake origin."""
    transport = httpx2.MockTransport(origin.handle)
    monkeypatch.setattr(httpx2, "Client", functools.partial(httpx2.Client, transport=transport))
    return origin


def test_the_sync_command_runs_once_and_prints_the_result(
    store_url: str, served: FakeOrigin
) -> None:
    args = ["sync", "--server", SERVER, "--list", str(LIST_ID), "--db", store_url]
    result = runner.invoke(app, [*args, "--page-size", "5"], env={"HASHWATCH_KEY": KEY})
    assert result.exit_code == 0, result.output
    [line] = [json.loads(text) for text in result.stdout.splitlines()]
    assert (line["list"], line["added"], line["revoked"], line["pages"]) == (
        "partner hotline",
        6,
        1,
        2,
    )

    refused = runner.invoke(app, [*args, "--key", "hw_wrong"])
    assert refused.exit_code == 1
    assert refused.stdout == ""
    assert "error: sync of list 7 from https://hashes.example.org failed" in refused.stderr
    assert "401 unauthorized" in refused.stderr


def test_the_sync_command_repeats_every_interval_until_stopped(
    store_url: str, served: FakeOrigin, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        intervals = sum(w > 100 for w in waits)  # the rest are retries' back-off
        if seconds < 100:
            return
        if intervals == 1:
            served.add("pdq", pdq(70))
        elif intervals == 2:
            served.answer = error(503, "unavailable", "down for maintenance")
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", wait)
    result = runner.invoke(
        app,
        ["sync", "--server", SERVER, "--list", "7", "--every", "10m", "--db", store_url],
        env={"HASHWATCH_KEY": KEY},
    )
    assert result.exit_code == 0, result.output
    runs = [json.loads(text) for text in result.stdout.splitlines()]
    assert [(r["added"], r["cursor"]) for r in runs] == [(6, 7), (1, 8)]
    assert all(datetime.fromisoformat(r["at"]) for r in runs)
    assert "503 unavailable: down for maintenance; gave up after 5 tries" in result.stderr
    assert "sync stopped" in result.stderr
    interval_waits = [w for w in waits if w > 100]
    assert len(interval_waits) == 3 and all(590 < w <= 600 for w in interval_waits)


def test_the_sync_command_rejects_a_bad_interval() -> None:
    result = runner.invoke(
        app,
        ["sync", "--server", SERVER, "--list", "7", "--key", KEY, "--every", "often"],
    )
    assert result.exit_code == 2
    assert "a duration looks like 30s, 10m, 1h or 1h30m" in result.stderr
