"""Sync between two running servers, each with its own database: a hotline's server holds the
list; a platform's server keeps a local copy with `sync` and matches against it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import uvicorn
from PIL import Image
from sqlalchemy import select

from hashwatch import assessment, keys, lists, organisations, sharing
from hashwatch.api.app import create_app
from hashwatch.errors import SyncError
from hashwatch.hashing import hash_bytes
from hashwatch.matching import Matcher
from hashwatch.media import MediaLimits
from hashwatch.mediastore import MediaStore
from hashwatch.store import Store, open_store
from hashwatch.store.models import HashList, User
from hashwatch.sync import sync_list
from tests.api.conftest import flip_bits, random_pdq, service_settings
from tests.imaging import encode


@dataclass
class LiveServer:
    url: str
    store: Store
    server: uvicorn.Server

    def key(self, org: str, scopes: str) -> str:
        with self.store.session() as session:
            organisation = organisations.get_or_create_organisation(session, org)
            return keys.create_key(session, organisation, scopes.split(","), "test").secret


@pytest.fixture
def start_server() -> Iterator[Any]:
    started: list[tuple[LiveServer, threading.Thread]] = []

    def start(url: str) -> LiveServer:
        store = open_store(url)
        app = create_app(service_settings(max_staleness=1.0), store=store)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
        thread.start()
        port = listener.getsockname()[1]
        live = LiveServer(url=f"http://127.0.0.1:{port}", store=store, server=server)
        started.append((live, thread))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx2.get(f"{live.url}/readyz").status_code == 200:
                    return live
            except httpx2.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("server did not become ready")

    yield start
    for live, thread in started:
        live.server.should_exit = True
        thread.join(timeout=10)
        live.store.close()


class FailingAfter(httpx2.HTTPTransport):
    """A connection that breaks for good after `pages` change-feed pages: an interrupted sync."""

    def __init__(self, pages: int) -> None:
        super().__init__()
        self.pages = pages
        self.afters: list[int] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/changes"):
            if len(self.afters) >= self.pages:
                raise httpx2.ConnectError("connection reset", request=request)
            self.afters.append(int(request.url.params["after"]))
        return super().handle_request(request)


def _http(server: LiveServer, key: str, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx2.request(method, server.url + path, headers=headers, **kwargs)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def _matches(server: LiveServer, key: str, values: list[str]) -> list[int]:
    body = _http(
        server,
        key,
        "POST",
        "/v1/match",
        json={"hashes": [{"signal_type": "pdq", "value": v} for v in values]},
    )
    return [len(result["matches"]) for result in body["results"]]


def _wait_for(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not true within the delay"
        time.sleep(0.05)


def test_a_local_copy_follows_the_origin_and_matches(
    start_server: Any, store_url: str, second_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hashwatch.sync.time.sleep", lambda seconds: None)
    hotline = start_server(store_url)
    platform = start_server(second_store_url)
    owner_key = hotline.key("hotline", "lists:read,lists:write,admin")
    values = [random_pdq() for _ in range(10)]
    with hotline.store.session() as session:
        owner = organisations.get_or_create_organisation(session, "hotline")
        member = organisations.get_or_create_organisation(session, "platform")
        hash_list = lists.create_list(session, owner, "verified", "test", thresholds={"pdq": 20})
        lists.add_entries(
            session,
            hash_list,
            [lists.make_entry("pdq", v, category="A") for v in values],
            "test",
        )
        sharing.grant(session, hash_list, member, "read", "test")
        list_id = hash_list.id
    sync_key = hotline.key("platform", "lists:read")
    match_key = platform.key("local", "match")

    # First sync, in pages of three: the copy holds every entry and the list's threshold.
    first = sync_list(platform.store, hotline.url, sync_key, list_id, page_size=3)
    assert (first.added, first.cursor, first.pages) == (10, 10, 4)
    queries = [flip_bits(v, 5) for v in values]
    _wait_for(lambda: _matches(platform, match_key, queries) == [1] * 10)
    assert _matches(platform, match_key, [flip_bits(values[0], 25)]) == [0]  # threshold 20

    # The origin changes over HTTP: two adds and a revocation. The next sync takes just those.
    added = [random_pdq() for _ in range(2)]
    _http(
        hotline,
        owner_key,
        "POST",
        f"/v1/lists/{list_id}/entries",
        json={"entries": [{"signal_type": "pdq", "value": v} for v in added]},
    )
    feed = _http(hotline, owner_key, "GET", f"/v1/lists/{list_id}/changes")
    revoked_entry = feed["changes"][0]["entry_id"]
    _http(
        hotline,
        owner_key,
        "DELETE",
        f"/v1/lists/{list_id}/entries/{revoked_entry}",
        params={"reason": "false positive"},
    )
    second = sync_list(platform.store, hotline.url, sync_key, list_id, page_size=3)
    assert (second.added, second.revoked, second.cursor) == (2, 1, 13)
    _wait_for(lambda: _matches(platform, match_key, [values[0], *added]) == [0, 1, 1])

    # An interrupted sync keeps the pages it applied and resumes from its cursor.
    more = [random_pdq() for _ in range(7)]
    _http(
        hotline,
        owner_key,
        "POST",
        f"/v1/lists/{list_id}/entries",
        json={"entries": [{"signal_type": "pdq", "value": v} for v in more]},
    )
    broken = FailingAfter(pages=2)
    with (
        httpx2.Client(transport=broken) as client,
        pytest.raises(SyncError, match="connection reset"),
    ):
        sync_list(platform.store, hotline.url, sync_key, list_id, page_size=3, client=client)
    assert broken.afters == [13, 16]
    with platform.store.session() as session:
        copy = session.query(HashList).filter(HashList.origin_list_id == list_id).one()
        assert copy.origin_cursor == 19  # two pages of three applied
    resumed = FailingAfter(pages=100)
    with httpx2.Client(transport=resumed) as client:
        last = sync_list(platform.store, hotline.url, sync_key, list_id, page_size=3, client=client)
    assert resumed.afters[0] == 19 and last.cursor == 20 and last.added == 1

    # The copy equals the origin's active entries, and matches offline, with no server at all.
    origin_export = httpx2.get(
        f"{hotline.url}/v1/lists/{list_id}/export?format=jsonl",
        headers={"Authorization": f"Bearer {owner_key}"},
    ).text
    origin_values = {line.split('"value": "')[1][:64] for line in origin_export.splitlines()}
    with platform.store.session() as session:
        copy = session.query(HashList).filter(HashList.origin_list_id == list_id).one()
        held = {entry.value for entry in lists.iter_active_entries(session, [copy])}
        assert held == origin_values == (set(values) - {values[0]}) | set(added) | set(more)
        offline = Matcher.from_store(session, [copy])
    report = offline.match_value("pdq", flip_bits(more[-1], 3))
    assert [m.distance for m in report.matches] == [3]


def test_a_member_syncs_what_analysts_published_and_its_revocation(
    start_server: Any,
    store_url: str,
    second_store_url: str,
    tmp_path: Any,
    photos: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The list owners' workflow end to end across two servers: an image taken in and graded
    alike by two analysts is published; a member's local copy receives it and matches an edited
    copy of the image offline; revoking the item reaches the copy too; no media is left."""
    monkeypatch.setattr("hashwatch.sync.time.sleep", lambda seconds: None)
    hotline = start_server(store_url)
    platform = start_server(second_store_url)
    vault = MediaStore(tmp_path / "media", bytes(32))
    image = encode(photos["astronaut"], "JPEG", quality=90)
    with hotline.store.session() as session:
        owner = organisations.get_or_create_organisation(session, "hotline")
        member = organisations.get_or_create_organisation(session, "platform")
        hash_list = lists.create_list(session, owner, "verified", "test")
        sharing.grant(session, hash_list, member, "read", "test")
        for name in ("alice", "bob", "carol"):
            session.add(
                User(organisation_id=owner.id, username=name, password_hash="-", role="senior")
            )
        item = assessment.intake(session, vault, hash_list, image, "test", source="case 1")
        list_id, item_id = hash_list.id, item.id
    for name in ("alice", "bob"):
        with hotline.store.session() as session:
            person = session.scalars(select(User).where(User.username == name)).one()
            taken = assessment.get_item(session, person, item_id)
            assessment.grade(session, vault, taken, person, "A1", name, age_band="7-10")
    assert vault.names() == []  # decided: the media is gone

    sync_key = hotline.key("platform", "lists:read")
    first = sync_list(platform.store, hotline.url, sync_key, list_id)
    assert first.added == 4  # its PDQ, MD5, SHA-1 and SHA-256
    edited = encode(Image.fromarray(photos["astronaut"]).resize((256, 256)), "JPEG", quality=60)
    hashed = hash_bytes(edited, MediaLimits())
    with platform.store.session() as session:
        copy = session.query(HashList).filter(HashList.origin_list_id == list_id).one()
        report = Matcher.from_store(session, [copy]).match_media(hashed)
    [match] = report.matches
    assert (match.signal_type, match.category, match.labels) == ("pdq", "A1", ("age:7-10",))

    with hotline.store.session() as session:
        carol = session.scalars(select(User).where(User.username == "carol")).one()
        published = assessment.get_item(session, carol, item_id)
        assessment.revoke_item(session, published, carol, "graded in error", "carol")
    second = sync_list(platform.store, hotline.url, sync_key, list_id)
    assert second.revoked == 4
    with platform.store.session() as session:
        copy = session.query(HashList).filter(HashList.origin_list_id == list_id).one()
        assert Matcher.from_store(session, [copy]).match_media(hashed).matches == []
