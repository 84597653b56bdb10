"""Sync: keep a local copy of another hashwatch server's list up to date from its change feed.

One run of `sync_list`:

1. GET the list's metadata from the origin server (`/v1/lists/{id}`).
2. Find the local copy, a HashList with origin_url and origin_list_id set, or create it; copy the
   origin's description and thresholds onto it.
3. GET the change feed after the copy's cursor (`/v1/lists/{id}/changes`) a page at a time, and
   apply each page in one transaction together with the new cursor.

A run cut short anywhere (network, the origin, Ctrl-C) leaves the copy complete up to its last
applied page, and the next run resumes there: no change is applied twice or missed. The copy
changes only through here (lists.ensure_writable refuses anything else), so it is the origin's
list as of its cursor. The shells (`hashwatch sync`) call `sync_list`; HTTP lives only here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn, TypeVar

import httpx2
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hashwatch import __version__, lists
from hashwatch.errors import (
    Conflict,
    EntryNotFound,
    InvalidInput,
    ListExists,
    ListNotFound,
    SyncError,
    UnknownSignalType,
)
from hashwatch.organisations import DEFAULT_ORGANISATION, get_or_create_organisation
from hashwatch.signals import get_signal_type
from hashwatch.store import Store
from hashwatch.store.models import ChangeKind, HashList

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "SyncProgress",
    "SyncResult",
    "normalise_server",
    "parse_duration",
    "sync_list",
]

DEFAULT_PAGE_SIZE = 10_000
#: The most changes the API's feed gives in one request.
MAX_PAGE_SIZE = 10_000
#: Tries per request. Between them: 1, 2, 4, 8 s after a 5xx answer or a network error, or what
#: a 429's Retry-After asks, up to MAX_RETRY_AFTER.
ATTEMPTS = 5
BACKOFF_SECONDS = 1.0
MAX_RETRY_AFTER = 60.0
#: A page of 10,000 changes is a few MB of JSON: allow for a slow origin, but not for ever.
TIMEOUT = httpx2.Timeout(60.0, connect=10.0)

ProgressCallback = Callable[["SyncProgress"], None]
_T = TypeVar("_T")


@dataclass(frozen=True)
class SyncProgress:
    """Where a run stands after each applied page."""

    list_name: str
    pages: int
    #: Changes applied (or skipped) so far in this run.
    changes: int
    #: The origin sequence number the copy is complete up to.
    cursor: int
    #: The origin's latest sequence number, as of the last page.
    last_seq: int


@dataclass(frozen=True)
class SyncResult:
    list_name: str
    list_id: int
    origin: str
    origin_list_id: int
    pages: int
    added: int
    already_present: int
    revoked: int
    #: Changes not applied: signal types or values this installation does not take, revocations
    #: of entries the copy lacks or has already revoked, adds of entries it has revoked.
    skipped: int
    cursor: int
    last_seq: int

    def to_json(self) -> dict[str, Any]:
        return {
            "list": self.list_name,
            "list_id": self.list_id,
            "origin": self.origin,
            "origin_list_id": self.origin_list_id,
            "pages": self.pages,
            "added": self.added,
            "already_present": self.already_present,
            "revoked": self.revoked,
            "skipped": self.skipped,
            "cursor": self.cursor,
            "last_seq": self.last_seq,
        }


def sync_list(
    store: Store,
    server: str,
    key: str,
    list_id: int,
    *,
    organisation: str = DEFAULT_ORGANISATION,
    name: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    client: httpx2.Client | None = None,
    on_page: ProgressCallback | None = None,
) -> SyncResult:
    """Bring the local copy of list `list_id` at `server` up to date, creating it on first use.

    `name` names the copy when it is created (default: the origin's name); an existing copy keeps
    its name. Each page is committed as it is applied, so this owns its transactions.
    """
    origin_url = normalise_server(server)
    if list_id < 1:
        raise InvalidInput(f"a list id is a positive whole number, got {list_id}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page size must be between 1 and {MAX_PAGE_SIZE}")
    if not key.strip():
        raise InvalidInput("an API key for the origin server is needed")
    http = client if client is not None else httpx2.Client(timeout=TIMEOUT)
    try:
        origin = _Origin(http, origin_url, key.strip(), list_id)
        return _run(store, origin, organisation, name, page_size, on_page)
    finally:
        if client is None:
            http.close()


def normalise_server(server: str) -> str:
    """The server's base URL as stored on a copy: scheme and host lower case, no trailing slash."""
    try:
        url = httpx2.URL(server.strip())
    except httpx2.InvalidURL as exc:
        raise InvalidInput(f"{server!r} is not a valid server URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidInput(f"the server URL must start with https:// (or http://), got {server!r}")
    if url.userinfo or url.query or url.fragment:
        raise InvalidInput("the server URL must hold no user name, password, query or fragment")
    if url.port == {"http": 80, "https": 443}[url.scheme]:
        url = url.copy_with(port=None)
    return str(url).rstrip("/")


_DURATION = re.compile(r"(?:\d+[smhd])+")
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds in a duration written like 30s, 10m, 1h or 1h30m."""
    compact = text.strip().lower().replace(" ", "")
    if not _DURATION.fullmatch(compact):
        raise InvalidInput(f"a duration looks like 30s, 10m, 1h or 1h30m, not {text!r}")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(compact))
    if seconds < 1:
        raise InvalidInput(f"a duration must be at least 1s, got {text!r}")
    return seconds


# --- the run ---------------------------------------------------------------------------------


def _run(
    store: Store,
    origin: _Origin,
    organisation: str,
    name: str | None,
    page_size: int,
    on_page: ProgressCallback | None,
) -> SyncResult:
    actor = f"sync:{origin.server}"
    metadata = _Metadata.parse(origin.metadata(), origin)
    if metadata.access == "match":
        origin.fail("your organisation may only match against this list; a copy needs read access")
    with store.session() as session:
        hash_list = _prepare_copy(session, origin, metadata, organisation, name, actor)
        local_id, list_name, cursor = hash_list.id, hash_list.name, hash_list.origin_cursor

    pages = seen = added = already_present = revoked = skipped = 0
    last_seq = metadata.last_seq
    while True:
        page = origin.changes(cursor, page_size)
        pages += 1
        last_seq = page.last_seq
        if page.changes or page.next_after != cursor:
            with store.session() as session:
                claimed = _claim(session, local_id, list_name, cursor, page.next_after)
                if claimed is None:
                    # Another sync of this copy moved the cursor since we read it: go on from its.
                    cursor = _current_cursor(session, local_id, list_name)
                    continue
                counts = _apply_page(session, claimed, page.changes, actor)
            added += counts.added
            already_present += counts.already_present
            revoked += counts.revoked
            skipped += counts.skipped
            seen += len(page.changes)
            cursor = page.next_after
        if on_page is not None:
            on_page(SyncProgress(list_name, pages, seen, cursor, last_seq))
        if not page.more:
            break
    return SyncResult(
        list_name=list_name,
        list_id=local_id,
        origin=origin.server,
        origin_list_id=origin.list_id,
        pages=pages,
        added=added,
        already_present=already_present,
        revoked=revoked,
        skipped=skipped,
        cursor=cursor,
        last_seq=last_seq,
    )


def _prepare_copy(
    session: Session,
    origin: _Origin,
    metadata: _Metadata,
    organisation: str,
    name: str | None,
    actor: str,
) -> HashList:
    """The organisation's copy of the origin's list, created if need be, with the origin's
    description and thresholds."""
    owner = get_or_create_organisation(session, organisation)
    hash_list = session.scalar(
        select(HashList).where(
            HashList.owner_id == owner.id,
            HashList.origin_url == origin.server,
            HashList.origin_list_id == origin.list_id,
        )
    )
    if hash_list is None:
        wanted = (name or metadata.name).strip()
        taken = select(HashList.id).where(HashList.owner_id == owner.id, HashList.name == wanted)
        if session.scalar(taken) is not None:
            raise ListExists(
                f"a list named {wanted!r} already exists and is not a copy of list "
                f"{origin.list_id} at {origin.server}; give the copy another name"
            )
        hash_list = lists.create_list(
            session,
            owner,
            wanted,
            actor,
            description=metadata.description,
            thresholds=metadata.thresholds,
        )
        hash_list.origin_url = origin.server
        hash_list.origin_list_id = origin.list_id
        hash_list.origin_cursor = 0
        session.flush()
        return hash_list
    if hash_list.origin_cursor > metadata.last_seq:
        origin.fail(
            f"its feed ends at sequence number {metadata.last_seq}, but the copy "
            f"{hash_list.name!r} has applied changes up to {hash_list.origin_cursor}: the list "
            "there was rebuilt or restored from a backup. Delete the copy and sync again"
        )
    description = metadata.description if metadata.description != hash_list.description else None
    thresholds = {
        signal_type: distance
        for signal_type, distance in metadata.thresholds.items()
        if hash_list.thresholds.get(signal_type) != distance
    }
    if description is not None or thresholds:
        lists.update_list(session, hash_list, actor, description, thresholds, from_origin=True)
    return hash_list


def _claim(
    session: Session, local_id: int, list_name: str, cursor: int, new_cursor: int
) -> HashList | None:
    """Move the copy's cursor from `cursor` to `new_cursor` in this transaction, or return None
    if another sync has moved it. The UPDATE is the transaction's first statement and holds the
    list's write lock until commit, so two syncs of one copy apply pages one after another."""
    claimed = session.execute(
        update(HashList)
        .where(HashList.id == local_id, HashList.origin_cursor == cursor)
        .values(origin_cursor=new_cursor)
        .returning(HashList.id)
    ).scalar_one_or_none()
    if claimed is None:
        return None
    hash_list = session.get(HashList, local_id)
    if hash_list is None:  # pragma: no cover - the UPDATE just found it
        raise ListNotFound(f"the local copy {list_name!r} was deleted during the sync")
    return hash_list


def _current_cursor(session: Session, local_id: int, list_name: str) -> int:
    cursor = session.scalar(select(HashList.origin_cursor).where(HashList.id == local_id))
    if cursor is None:
        raise ListNotFound(f"the local copy {list_name!r} was deleted during the sync")
    return cursor


@dataclass(frozen=True)
class _Counts:
    added: int = 0
    already_present: int = 0
    revoked: int = 0
    skipped: int = 0


def _apply_page(
    session: Session, hash_list: HashList, changes: list[_RemoteChange], actor: str
) -> _Counts:
    """Apply one page of the origin's feed to the copy.

    All the page's adds go in one add_entries call, then its revocations in feed order. That is
    the same end state as strict feed order, since an entry's revocation always follows its add
    and a revoked entry is never added again; and add_entries reads the list's existing values
    once per call, which a long list makes the cost to save."""
    entries: list[lists.NewEntry] = []
    skipped = 0
    for change in changes:
        if change.kind != ChangeKind.ADD:
            continue
        fields = (
            change.signal_type,
            change.value,
            change.category,
            change.labels,
            change.source,
            change.note,
        )
        try:
            try:
                entries.append(lists.make_entry(*fields, change.extra_hashes))
            except InvalidInput:
                if change.extra_hashes is None:
                    raise
                # Entry hashes this installation does not take (a variant a newer origin
                # makes): the entry's own hash still matches what it matched before.
                entries.append(lists.make_entry(*fields))
        except InvalidInput:
            # A signal type this installation lacks, or a value or category it does not take
            # (a newer origin): leave it out rather than stop the copy at this page for ever.
            skipped += 1
    result = lists.AddResult()
    if entries or skipped:
        result = lists.add_entries(
            session, hash_list, entries, actor, skipped_unsupported=skipped, from_origin=True
        )
    revoked = 0
    for change in changes:
        if change.kind == ChangeKind.ADD:
            continue
        if change.kind != ChangeKind.REVOKE:
            skipped += 1  # a kind of change from a newer origin
            continue
        try:
            lists.revoke(
                session,
                hash_list,
                change.value,
                change.reason or f"revoked at {hash_list.origin_url}",
                actor,
                signal_type=change.signal_type,
                from_origin=True,
            )
        except (EntryNotFound, InvalidInput, Conflict):
            # Missing here (its add was skipped: an unknown signal type, say) or already
            # revoked: nothing to do.
            skipped += 1
            continue
        revoked += 1
    return _Counts(
        added=result.added,
        already_present=result.already_present,
        revoked=revoked,
        skipped=skipped + result.revoked_kept,
    )


# --- the origin server -----------------------------------------------------------------------

_HINTS = {
    401: " (check the API key)",
    403: " (the key needs the lists:read scope, and your organisation read access to the list)",
    404: " (there is no such list, or it is not shared with your organisation)",
}


class _Origin:
    """The origin server's two read endpoints for one list, with retries."""

    def __init__(self, client: httpx2.Client, server: str, key: str, list_id: int) -> None:
        self.client = client
        self.server = server
        self.list_id = list_id
        self._headers = {
            "Authorization": f"Bearer {key}",
            "Accept": "application/json",
            "User-Agent": f"hashwatch/{__version__} sync",
        }

    def metadata(self) -> dict[str, Any]:
        return self._get(f"/v1/lists/{self.list_id}", {})

    def changes(self, after: int, limit: int) -> _Page:
        body = self._get(f"/v1/lists/{self.list_id}/changes", {"after": after, "limit": limit})
        return _Page.parse(body, after, self)

    def fail(self, problem: str) -> NoReturn:
        raise SyncError(f"sync of list {self.list_id} from {self.server} failed: {problem}")

    def _get(self, path: str, params: Mapping[str, int]) -> dict[str, Any]:
        problem = ""
        for attempt in range(ATTEMPTS):
            delay = BACKOFF_SECONDS * 2**attempt
            try:
                response = self.client.get(self.server + path, params=params, headers=self._headers)
            except httpx2.RequestError as exc:
                problem = f"could not reach the server ({type(exc).__name__}: {exc})"
            else:
                if response.status_code == 200:
                    return self._json(response)
                problem = f"the server answered {_answer(response)}"
                if response.status_code == 429:
                    delay = _retry_after(response, default=delay)
                elif response.status_code < 500:
                    self.fail(problem + _HINTS.get(response.status_code, ""))
            if attempt + 1 < ATTEMPTS:
                time.sleep(delay)
        self.fail(f"{problem}; gave up after {ATTEMPTS} tries")

    def _json(self, response: httpx2.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            self.fail(f"the server's answer to {response.url.path} is not JSON")
        if not isinstance(body, dict):
            self.fail(f"the server's answer to {response.url.path} is not a JSON object")
        return body


def _answer(response: httpx2.Response) -> str:
    """`404 not_found: no list 7`, from the API's error body where it has one."""
    status = f"{response.status_code} {response.reason_phrase}".strip()
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return f"{response.status_code} {error.get('code') or ''}: {error['message']}"
        if body.get("detail"):
            return f"{status}: {body['detail']}"
    if response.is_redirect:
        return f"{status}, to {response.headers.get('location', '?')}"
    text = " ".join(response.text.split())[:200]
    return f"{status}: {text}" if text else status


def _retry_after(response: httpx2.Response, default: float) -> float:
    """Seconds a 429 asks us to wait (Retry-After in seconds or as a date), at most
    MAX_RETRY_AFTER; `default` when it does not say."""
    header = response.headers.get("retry-after", "").strip()
    if not header:
        return default
    try:
        seconds = float(header)
    except ValueError:
        try:
            when = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@dataclass(frozen=True)
class _Metadata:
    name: str
    description: str
    thresholds: dict[str, int]
    access: str | None
    last_seq: int

    @classmethod
    def parse(cls, body: dict[str, Any], origin: _Origin) -> _Metadata:
        name = _field(body, "name", str, origin)
        description = body.get("description") or ""
        raw_thresholds = body.get("thresholds") or {}
        access = body.get("access")
        if not isinstance(description, str) or not isinstance(raw_thresholds, dict):
            origin.fail("the list's description or thresholds are not in the expected form")
        return cls(
            name=name,
            description=description.strip(),
            thresholds=_known_thresholds(raw_thresholds),
            access=access if isinstance(access, str) else None,
            last_seq=_field(body, "last_seq", int, origin),
        )


def _known_thresholds(raw: dict[str, Any]) -> dict[str, int]:
    """The origin's thresholds for the signal types this installation knows, within range."""
    thresholds: dict[str, int] = {}
    for signal_type, distance in raw.items():
        try:
            kind = get_signal_type(signal_type)
        except UnknownSignalType:
            continue
        if type(distance) is int and 0 <= distance <= kind.max_threshold:
            thresholds[kind.name] = distance
    return thresholds


@dataclass(frozen=True)
class _RemoteChange:
    seq: int
    kind: str
    signal_type: str
    value: str
    category: str | None
    labels: list[str]
    source: str
    note: str
    reason: str | None
    #: As the feed gives them (a list of {variant, value}); make_entry checks them.
    extra_hashes: Any = None

    @classmethod
    def parse(cls, item: Any, origin: _Origin) -> _RemoteChange:
        if not isinstance(item, dict):
            origin.fail("a change in the feed is not a JSON object")
        category = item.get("category")
        labels = item.get("labels") or []
        source = item.get("source") or ""
        note = item.get("note") or ""
        reason = item.get("reason")
        if (
            not isinstance(category, str | None)
            or not isinstance(labels, list)
            or not all(isinstance(label, str) for label in labels)
            or not isinstance(source, str)
            or not isinstance(note, str)
            or not isinstance(reason, str | None)
        ):
            origin.fail(f"change {item.get('seq')!r} in the feed is not in the expected form")
        return cls(
            seq=_field(item, "seq", int, origin),
            kind=_field(item, "kind", str, origin),
            signal_type=_field(item, "signal_type", str, origin),
            value=_field(item, "value", str, origin),
            category=category,
            labels=labels,
            source=source,
            note=note,
            reason=reason,
            extra_hashes=item.get("extra_hashes") or None,
        )


@dataclass(frozen=True)
class _Page:
    changes: list[_RemoteChange]
    next_after: int
    last_seq: int
    more: bool

    @classmethod
    def parse(cls, body: dict[str, Any], after: int, origin: _Origin) -> _Page:
        raw = body.get("changes")
        if not isinstance(raw, list):
            origin.fail("the change feed's answer has no list of changes")
        changes = [_RemoteChange.parse(item, origin) for item in raw]
        next_after = _field(body, "next_after", int, origin)
        more = _field(body, "more", bool, origin)
        previous = after
        for change in changes:
            if change.seq <= previous:
                origin.fail(
                    f"the change feed after {after} gave sequence number {change.seq} after "
                    f"{previous}; changes must come once each, in ascending order"
                )
            previous = change.seq
        if next_after < previous:
            origin.fail(f"the change feed after {after} gave next_after {next_after}")
        if more and next_after == after:
            origin.fail(f"the change feed after {after} said there is more but gave nothing")
        return cls(changes, next_after, _field(body, "last_seq", int, origin), more)


def _field(body: dict[str, Any], name: str, kind: type[_T], origin: _Origin) -> _T:
    value = body.get(name)
    # bool is an int to isinstance; a sequence number of `true` is a broken answer.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        origin.fail(f"the server's answer has no valid {name!r}")
    return value
