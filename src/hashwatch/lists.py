"""Hash lists: create and configure them, add entries in bulk, revoke, and read the change feed.

The rules of a list live here and nowhere else:
- an entry is unique per (signal type, value) within its list; adding it again adds nothing;
- every add and every revocation takes the list's next sequence number, in commit order, so a
  copy that has applied changes up to a cursor is complete up to it;
- a revoked entry stays as a tombstone, never matches, and is not brought back by re-importing a
  file that still carries it (a stale partner file must not undo a false-positive revocation);
- an add of many entries is one transaction: all of them, or none.

Functions flush; the caller (a CLI command, an API request) owns the transaction and commits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, literal, select, union_all, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from hashwatch import audit, entryhashes
from hashwatch.entryhashes import EntryHash
from hashwatch.errors import (
    AmbiguousValue,
    Conflict,
    EntryNotFound,
    InvalidCategory,
    InvalidHash,
    InvalidInput,
    ListExists,
    ListNotFound,
)
from hashwatch.signals import all_signal_types, get_signal_type, parse_typed_value
from hashwatch.store.models import (
    CATEGORIES,
    VARIANT_KINDS,
    ChangeKind,
    HashList,
    IntakeItem,
    ListEntry,
    ListGrant,
    Organisation,
    utcnow,
)

__all__ = [
    "AddResult",
    "Change",
    "NewEntry",
    "add_entries",
    "changes",
    "check_required_grades",
    "create_list",
    "delete_list",
    "ensure_writable",
    "get_list",
    "has_extra_hashes",
    "iter_active_entries",
    "list_lists",
    "list_summary",
    "make_entry",
    "parse_category",
    "parse_labels",
    "parse_thresholds",
    "parse_variants",
    "revoke",
    "revoke_entry",
    "thresholds_for",
    "update_list",
    "variants_for",
]

MAX_LABELS = 32
MAX_LABEL_LENGTH = 64
MAX_SOURCE_LENGTH = 200
MAX_NOTE_LENGTH = 4000
MAX_NAME_LENGTH = 200
#: Most independent grades a list may require before publishing an intake item.
MAX_GRADES = 9

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class NewEntry:
    """A validated entry to add: the value normalised, category and labels checked."""

    signal_type: str
    value: str
    category: str | None = None
    labels: tuple[str, ...] = ()
    source: str = ""
    note: str = ""
    #: A PDQ entry's entry hashes (hashwatch.entryhashes), checked; empty for most entries.
    extra_hashes: tuple[EntryHash, ...] = ()


@dataclass(frozen=True)
class AddResult:
    added: int = 0
    already_present: int = 0
    #: Rows naming an entry that was revoked: it stays revoked.
    revoked_kept: int = 0
    #: Rows of signal types hashwatch does not hold (URLs in a ThreatExchange file, say).
    skipped_unsupported: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "added": self.added,
            "already_present": self.already_present,
            "revoked_kept": self.revoked_kept,
            "skipped_unsupported": self.skipped_unsupported,
            "rejected": 0,
        }


@dataclass(frozen=True)
class Change:
    """One change-feed item with the entry it concerns, as a syncing copy needs it."""

    seq: int
    kind: str
    at: datetime
    entry_id: int
    signal_type: str
    value: str
    category: str | None
    labels: list[str]
    source: str
    note: str
    revoke_reason: str | None = None
    extra_hashes: tuple[EntryHash, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "entry_id": self.entry_id,
            "signal_type": self.signal_type,
            "value": self.value,
            "category": self.category,
            "labels": self.labels,
            "source": self.source,
            "note": self.note,
        }
        if self.kind == ChangeKind.REVOKE:
            out["reason"] = self.revoke_reason
        elif self.extra_hashes:
            # Only where there are some: most lists have none, and older readers ignore the key.
            out["extra_hashes"] = [h.to_json() for h in self.extra_hashes]
        return out


# --- validation ------------------------------------------------------------------------------


def parse_category(text: str | None) -> str | None:
    if text is None:
        return None
    value = text.strip().upper()
    if not value:
        return None
    if value not in CATEGORIES:
        raise InvalidCategory(
            f"category must be one of A, B, C (UK) or A1, A2, B1, B2 (US industry), got {text!r}"
        )
    return value


def parse_labels(raw: str | Sequence[str] | None) -> tuple[str, ...]:
    """Labels from `a;b;c` text or a list of strings; trimmed, de-duplicated, order kept."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        items = raw.split(";")
    elif isinstance(raw, Sequence) and all(isinstance(item, str) for item in raw):
        items = list(raw)
    else:
        raise InvalidInput("labels must be text separated by ';' or a list of strings")
    labels: list[str] = []
    for item in items:
        label = item.strip()
        if not label or label in labels:
            continue
        if ";" in label:
            raise InvalidInput(f"label {label!r} must not contain ';'")
        if len(label) > MAX_LABEL_LENGTH:
            raise InvalidInput(f"label {label[:20]!r}... is over {MAX_LABEL_LENGTH} characters")
        labels.append(label)
    if len(labels) > MAX_LABELS:
        raise InvalidInput(f"at most {MAX_LABELS} labels per entry, got {len(labels)}")
    return tuple(labels)


def make_entry(
    signal_type: str,
    value: str,
    category: str | None = None,
    labels: str | Sequence[str] | None = None,
    source: str | None = None,
    note: str | None = None,
    extra_hashes: str | Sequence[Any] | None = None,
) -> NewEntry:
    """Validate one entry's fields; raise InvalidInput (or a subclass) saying what is wrong.

    `extra_hashes`: entry hashes as hashwatch.entryhashes.parse_extra_hashes reads them (a CSV
    cell, or a list of {variant, value}); only a PDQ entry may carry them."""
    if not isinstance(signal_type, str):
        raise InvalidInput(f"signal_type must be text, not {type(signal_type).__name__}")
    kind = get_signal_type(signal_type)
    source_text = (source or "").strip()
    note_text = (note or "").strip()
    if len(source_text) > MAX_SOURCE_LENGTH:
        raise InvalidInput(f"source is over {MAX_SOURCE_LENGTH} characters")
    if len(note_text) > MAX_NOTE_LENGTH:
        raise InvalidInput(f"note is over {MAX_NOTE_LENGTH} characters")
    extra = entryhashes.parse_extra_hashes(extra_hashes)
    if extra and kind.name != "pdq":
        raise InvalidInput(
            f"only pdq entries carry extra hashes (PDQ hashes of variants of the listed image), "
            f"not {kind.name}"
        )
    return NewEntry(
        signal_type=kind.name,
        value=kind.parse(value),
        category=parse_category(category),
        labels=parse_labels(labels),
        source=source_text,
        note=note_text,
        extra_hashes=extra,
    )


def parse_thresholds(items: Sequence[str]) -> dict[str, int]:
    """`pdq=40` items into {"pdq": 40}, each within its signal type's allowed range."""
    thresholds: dict[str, int] = {}
    for item in items:
        name, sep, number = item.partition("=")
        if not sep:
            raise InvalidInput(f"threshold must look like SIGNAL_TYPE=DISTANCE, got {item!r}")
        kind = get_signal_type(name)
        try:
            distance = int(number.strip())
        except ValueError:
            raise InvalidInput(f"threshold for {kind.name} must be a whole number") from None
        if not 0 <= distance <= kind.max_threshold:
            raise InvalidInput(
                f"threshold for {kind.name} must be between 0 and {kind.max_threshold}, "
                f"got {distance}"
            )
        thresholds[kind.name] = distance
    return thresholds


def parse_variants(items: Sequence[str]) -> list[str]:
    """Kinds of query variant a list matches, from names such as "dihedral" or "trim"; "none" or
    nothing for none. Unknown names are an InvalidInput naming the known ones."""
    chosen: set[str] = set()
    for item in items:
        for name in (part.strip().lower() for part in item.split(",")):
            if not name or name == "none":
                continue
            if name not in VARIANT_KINDS:
                raise InvalidInput(
                    f"unknown variant kind {name!r}; choose from {', '.join(VARIANT_KINDS)} or none"
                )
            chosen.add(name)
    return [kind for kind in VARIANT_KINDS if kind in chosen]


def variants_for(hash_list: HashList) -> frozenset[str]:
    """The kinds of query variant that match this list."""
    return frozenset(hash_list.variants)


def check_required_grades(count: int) -> int:
    """The number of independent agreeing grades an intake item needs: 1 to MAX_GRADES."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_GRADES:
        raise InvalidInput(f"required grades must be a whole number from 1 to {MAX_GRADES}")
    return count


def thresholds_for(hash_list: HashList) -> dict[str, int]:
    """The threshold in force for every signal type on this list."""
    return {
        kind.name: hash_list.thresholds.get(kind.name, kind.default_threshold)
        for kind in all_signal_types()
    }


# --- lists -----------------------------------------------------------------------------------


def create_list(
    session: Session,
    owner: Organisation,
    name: str,
    actor: str,
    description: str = "",
    thresholds: dict[str, int] | None = None,
    variants: Sequence[str] | None = None,
    required_grades: int = 2,
    entry_hashes: str = entryhashes.DEFAULT_SETTING,
) -> HashList:
    """A new, empty list. `variants`: the kinds of query variant it matches (default: all);
    `required_grades`: the independent agreeing grades an intake item needs to be published;
    `entry_hashes`: which entry hashes are made for images listed here (hashwatch.entryhashes)."""
    clean = name.strip()
    if not clean or len(clean) > MAX_NAME_LENGTH:
        raise InvalidInput(f"list name must be 1 to {MAX_NAME_LENGTH} characters")
    if session.scalar(select(HashList.id).where(_named(owner, clean))) is not None:
        raise ListExists(f"a list named {clean!r} already exists")
    hash_list = HashList(
        owner_id=owner.id,
        name=clean,
        description=description.strip(),
        thresholds=dict(thresholds or {}),
        variants=list(VARIANT_KINDS) if variants is None else list(variants),
        required_grades=check_required_grades(required_grades),
        entry_hashes=entryhashes.parse_setting(entry_hashes),
        last_seq=0,
    )
    session.add(hash_list)
    session.flush()
    audit.record(
        session,
        actor,
        "list.create",
        hash_list,
        thresholds=hash_list.thresholds,
        variants=hash_list.variants,
        required_grades=hash_list.required_grades,
        entry_hashes=hash_list.entry_hashes,
    )
    return hash_list


def update_list(
    session: Session,
    hash_list: HashList,
    actor: str,
    description: str | None = None,
    thresholds: dict[str, int] | None = None,
    variants: Sequence[str] | None = None,
    required_grades: int | None = None,
    *,
    entry_hashes: str | None = None,
    from_origin: bool = False,
) -> HashList:
    ensure_writable(hash_list, allow_copy=from_origin)
    changed: dict[str, Any] = {}
    if description is not None:
        hash_list.description = description.strip()
        changed["description"] = hash_list.description
    if thresholds:
        # A new dict, so the JSON column sees the change.
        hash_list.thresholds = {**hash_list.thresholds, **thresholds}
        changed["thresholds"] = hash_list.thresholds
    if variants is not None and list(variants) != hash_list.variants:
        hash_list.variants = list(variants)
        changed["variants"] = hash_list.variants
    if required_grades is not None:
        count = check_required_grades(required_grades)
        if count != hash_list.required_grades:
            # Items already waiting keep the number they were taken in with.
            hash_list.required_grades = count
            changed["required_grades"] = count
    if entry_hashes is not None:
        setting = entryhashes.parse_setting(entry_hashes)
        if setting != hash_list.entry_hashes:
            # Images listed from now on; entries already listed keep the hashes they have.
            hash_list.entry_hashes = setting
            changed["entry_hashes"] = setting
    if changed:
        hash_list.updated_at = utcnow()
        session.flush()
        audit.record(session, actor, "list.update", hash_list, **changed)
    return hash_list


def delete_list(session: Session, hash_list: HashList, actor: str) -> None:
    """Delete a list with its entries and grants. Copies elsewhere find it gone at their next
    sync; the audit log keeps the record."""
    ensure_writable(hash_list, allow_copy=True)
    assessed = session.scalar(select(func.count()).where(IntakeItem.list_id == hash_list.id))
    if assessed:
        # The items carry who graded what: the record of how the list was verified.
        raise Conflict(
            f"list {hash_list.name!r} has {assessed} intake item(s) with their grades; a list "
            "whose entries were verified here keeps that record and cannot be deleted"
        )
    count = select(func.count()).where(ListEntry.list_id == hash_list.id)
    summary = {"entries": session.scalar(count) or 0}
    session.execute(delete(ListGrant).where(ListGrant.list_id == hash_list.id))
    session.execute(delete(ListEntry).where(ListEntry.list_id == hash_list.id))
    audit.record(session, actor, "list.delete", hash_list, **summary)
    session.delete(hash_list)
    session.flush()


def ensure_writable(hash_list: HashList, *, allow_copy: bool = False) -> None:
    """A local copy of another server's list changes only through sync, or it would drift from
    its origin: refuse any other change to it."""
    if hash_list.origin_url is not None and not allow_copy:
        raise Conflict(
            f"list {hash_list.name!r} is a local copy of list {hash_list.origin_list_id} at "
            f"{hash_list.origin_url}; it changes only through `hashwatch sync`"
        )


def get_list(session: Session, owner: Organisation, name: str) -> HashList:
    hash_list = session.scalar(select(HashList).where(_named(owner, name.strip())))
    if hash_list is None:
        raise ListNotFound(f"no list named {name.strip()!r}")
    return hash_list


def list_lists(session: Session, owner: Organisation) -> list[HashList]:
    query = select(HashList).where(HashList.owner_id == owner.id).order_by(HashList.name)
    return list(session.scalars(query))


def list_summary(session: Session, hash_list: HashList) -> dict[str, Any]:
    """Counts of active and revoked entries by signal type and by category."""
    revoked = ListEntry.revoked_seq.is_not(None)
    rows = session.execute(
        select(ListEntry.signal_type, ListEntry.category, revoked, func.count())
        .where(ListEntry.list_id == hash_list.id)
        .group_by(ListEntry.signal_type, ListEntry.category, revoked)
    ).all()
    active = revoked_count = 0
    by_type: dict[str, int] = {}
    by_category: dict[str, int] = {}
    for signal_type, category, is_revoked, count in rows:
        if is_revoked:
            revoked_count += count
            continue
        active += count
        by_type[signal_type] = by_type.get(signal_type, 0) + count
        key = category or "none"
        by_category[key] = by_category.get(key, 0) + count
    return {
        "name": hash_list.name,
        "description": hash_list.description,
        "thresholds": thresholds_for(hash_list),
        "variants": sorted(variants_for(hash_list)),
        "required_grades": hash_list.required_grades,
        "entry_hashes": hash_list.entry_hashes,
        "entries": active,
        "revoked": revoked_count,
        "by_signal_type": dict(sorted(by_type.items())),
        "by_category": dict(sorted(by_category.items())),
        "last_seq": hash_list.last_seq,
        "created_at": hash_list.created_at.isoformat(),
        "updated_at": hash_list.updated_at.isoformat(),
    }


# --- entries ---------------------------------------------------------------------------------


def add_entries(
    session: Session,
    hash_list: HashList,
    entries: Sequence[NewEntry],
    actor: str,
    on_progress: ProgressCallback | None = None,
    skipped_unsupported: int = 0,
    *,
    from_origin: bool = False,
) -> AddResult:
    """Add validated entries in bulk, in one transaction; existing values are counted, not added.

    `from_origin` is for sync alone: it lets a local copy take its origin's changes."""
    ensure_writable(hash_list, allow_copy=from_origin)
    _lock(session, hash_list)  # before reading what exists, so a concurrent add cannot interleave
    existing = _existing(session, hash_list, entries)
    fresh: list[NewEntry] = []
    already_present = revoked_kept = 0
    for entry in entries:
        key = (entry.signal_type, entry.value)
        state = existing.get(key)
        if state is None:
            fresh.append(entry)
            existing[key] = False  # a later duplicate row in the same batch is already present
        elif state:
            revoked_kept += 1
        else:
            already_present += 1
    if fresh:
        first_seq = _allocate_seqs(session, hash_list, len(fresh))
        _bulk_insert_entries(session, hash_list, fresh, first_seq, utcnow(), on_progress)
    result = AddResult(
        added=len(fresh),
        already_present=already_present,
        revoked_kept=revoked_kept,
        skipped_unsupported=skipped_unsupported,
    )
    audit.record(session, actor, "entries.add", hash_list, **result.to_json())
    session.flush()
    return result


def revoke(
    session: Session,
    hash_list: HashList,
    value: str,
    reason: str,
    actor: str,
    signal_type: str | None = None,
    *,
    from_origin: bool = False,
) -> ListEntry:
    """Revoke the list's entry for `value` (`TYPE:VALUE`, or a bare value with `signal_type`)."""
    ensure_writable(hash_list, allow_copy=from_origin)
    why = _reason(reason)
    _lock(session, hash_list)
    entry = _find_entry(session, hash_list, value, signal_type)
    return _revoke(session, hash_list, entry, why, actor)


def revoke_entry(
    session: Session, hash_list: HashList, entry_id: int, reason: str, actor: str
) -> ListEntry:
    """Revoke the list's entry with this id."""
    ensure_writable(hash_list)
    why = _reason(reason)
    _lock(session, hash_list)
    entry = session.scalar(
        select(ListEntry).where(ListEntry.list_id == hash_list.id, ListEntry.id == entry_id)
    )
    if entry is None:
        raise EntryNotFound(f"list {hash_list.name!r} has no entry with id {entry_id}")
    return _revoke(session, hash_list, entry, why, actor)


def _reason(reason: str) -> str:
    why = reason.strip()
    if not why:
        raise InvalidInput("a revocation needs a reason")
    if len(why) > MAX_NOTE_LENGTH:
        raise InvalidInput(f"the reason is over {MAX_NOTE_LENGTH} characters")
    return why


def _revoke(
    session: Session, hash_list: HashList, entry: ListEntry, why: str, actor: str
) -> ListEntry:
    if entry.revoked_seq is not None:
        raise Conflict(
            f"{entry.signal_type} entry {entry.id} was already revoked at "
            f"{entry.revoked_at.isoformat() if entry.revoked_at else '?'}: {entry.revoke_reason}"
        )
    seq = _allocate_seqs(session, hash_list, 1)
    entry.revoked_at = utcnow()
    entry.revoked_seq = seq
    entry.revoke_reason = why
    audit.record(
        session,
        actor,
        "entry.revoke",
        hash_list,
        entry_id=entry.id,
        signal_type=entry.signal_type,
        value=entry.value,
        reason=why,
    )
    session.flush()
    return entry


def changes(
    session: Session, hash_list: HashList, after: int = 0, limit: int = 1000
) -> list[Change]:
    """The list's changes with sequence number above `after`, oldest first, at most `limit`."""
    if after < 0:
        raise InvalidInput("the cursor ('after') must be 0 or more")
    if not 1 <= limit <= 100_000:
        raise InvalidInput("limit must be between 1 and 100000")
    # Adds and revocations are two index range scans on the entries, merged in sequence order.
    # Each is limited first, so a page costs `limit` rows however long the list.
    adds = (
        select(
            ListEntry.added_seq.label("seq"), literal(ChangeKind.ADD).label("kind"), ListEntry.id
        )
        .where(ListEntry.list_id == hash_list.id, ListEntry.added_seq > after)
        .order_by(ListEntry.added_seq)
        .limit(limit)
        .subquery()
    )
    revocations = (
        select(
            ListEntry.revoked_seq.label("seq"),
            literal(ChangeKind.REVOKE).label("kind"),
            ListEntry.id,
        )
        .where(ListEntry.list_id == hash_list.id, ListEntry.revoked_seq > after)
        .order_by(ListEntry.revoked_seq)
        .limit(limit)
        .subquery()
    )
    feed = union_all(select(adds), select(revocations)).subquery()
    rows = session.execute(
        select(feed.c.seq, feed.c.kind, ListEntry)
        .join(ListEntry, ListEntry.id == feed.c.id)
        .order_by(feed.c.seq)
        .limit(limit)
    ).all()
    return [
        Change(
            seq=seq,
            kind=kind,
            at=entry.added_at if kind == ChangeKind.ADD else entry.revoked_at,
            entry_id=entry.id,
            signal_type=entry.signal_type,
            value=entry.value,
            category=entry.category,
            labels=list(entry.labels),
            source=entry.source,
            note=entry.note,
            revoke_reason=entry.revoke_reason if kind == ChangeKind.REVOKE else None,
            extra_hashes=entryhashes.stored(entry.extra_hashes) if kind == ChangeKind.ADD else (),
        )
        for seq, kind, entry in rows
    ]


def has_extra_hashes(session: Session, hash_lists: Sequence[HashList]) -> bool:
    """Whether any active entry of these lists carries entry hashes (an export then writes the
    column; one without them stays as older versions wrote it)."""
    if not hash_lists:
        return False
    found = session.scalar(
        select(ListEntry.id)
        .where(
            ListEntry.list_id.in_([hash_list.id for hash_list in hash_lists]),
            ListEntry.revoked_seq.is_(None),
            ListEntry.extra_hashes.is_not(None),
        )
        .limit(1)
    )
    return found is not None


def iter_active_entries(session: Session, hash_lists: Sequence[HashList]) -> Iterator[ListEntry]:
    """Every entry of these lists that is not revoked, in id order, streamed."""
    if not hash_lists:
        return
    query = (
        select(ListEntry)
        .where(
            ListEntry.list_id.in_([hash_list.id for hash_list in hash_lists]),
            ListEntry.revoked_seq.is_(None),
        )
        .order_by(ListEntry.id)
        .execution_options(yield_per=20_000)
    )
    yield from session.scalars(query)


# --- internals -------------------------------------------------------------------------------


def _named(owner: Organisation, name: str) -> Any:
    return (HashList.owner_id == owner.id) & (HashList.name == name)


def _lock(session: Session, hash_list: HashList) -> None:
    """Take the list's write lock until commit: a row lock on PostgreSQL, the database write lock
    on SQLite. Writers to one list then run one after another, each seeing the last one's rows."""
    session.execute(
        update(HashList).where(HashList.id == hash_list.id).values(last_seq=HashList.last_seq)
    )


def _existing(
    session: Session, hash_list: HashList, entries: Sequence[NewEntry]
) -> dict[tuple[str, str], bool]:
    """Which of these entries the list already holds, each with whether it was revoked.

    A large batch reads the whole list once, in one index scan; a small batch on a long list (an
    API call, a page of a sync) looks up just its own values, so it costs its size, not the
    list's. `last_seq` bounds the list's size without counting it."""
    state = (ListEntry.signal_type, ListEntry.value, ListEntry.revoked_seq.is_not(None))
    if len(entries) * 8 >= hash_list.last_seq:
        rows = session.execute(
            select(*state)
            .where(ListEntry.list_id == hash_list.id)
            .execution_options(yield_per=50_000)
        )
        return {(signal_type, value): is_revoked for signal_type, value, is_revoked in rows}
    by_type: dict[str, set[str]] = {}
    for entry in entries:
        by_type.setdefault(entry.signal_type, set()).add(entry.value)
    existing: dict[tuple[str, str], bool] = {}
    for signal_type, values in by_type.items():
        ordered = sorted(values)
        for start in range(0, len(ordered), _LOOKUP_CHUNK):
            rows = session.execute(
                select(*state).where(
                    ListEntry.list_id == hash_list.id,
                    ListEntry.signal_type == signal_type,
                    ListEntry.value.in_(ordered[start : start + _LOOKUP_CHUNK]),
                )
            )
            existing.update(((kind, value), revoked) for kind, value, revoked in rows)
    return existing


_LOOKUP_CHUNK = 500


def _allocate_seqs(session: Session, hash_list: HashList, count: int) -> int:
    """Reserve `count` consecutive sequence numbers; return the first.

    The UPDATE holds the list's write lock until commit (see _lock), so a second writer waits and
    gets the numbers after ours: sequence order is commit order, and a reader that has seen seq N
    will never later see a smaller one appear.
    """
    last = session.execute(
        update(HashList)
        .where(HashList.id == hash_list.id)
        .values(last_seq=HashList.last_seq + count, updated_at=utcnow())
        .returning(HashList.last_seq)
    ).scalar_one()
    set_committed_value(hash_list, "last_seq", last)
    return int(last) - count + 1


_ENTRY_COLUMNS = (
    "list_id",
    "signal_type",
    "value",
    "category",
    "labels",
    "source",
    "note",
    "added_at",
    "added_seq",
    "extra_hashes",
)
_CHUNK = 50_000


def _bulk_insert_entries(
    session: Session,
    hash_list: HashList,
    entries: Sequence[NewEntry],
    first_seq: int,
    added_at: datetime,
    on_progress: ProgressCallback | None,
) -> None:
    """Write new entries as fast as each backend allows: COPY on PostgreSQL, one executemany of
    pre-bound rows per chunk on SQLite. Column values are bound once (the shared timestamp) or
    once per distinct value (label sets), not once per row through SQLAlchemy."""
    connection = session.connection()
    dialect = connection.dialect
    table = ListEntry.__table__
    labels_type = table.c.labels.type
    bind_labels = labels_type.dialect_impl(dialect).bind_processor(dialect) or json.dumps
    bound_labels: dict[tuple[str, ...], Any] = {}
    # Entry hashes are rare and never shared between entries: bound per entry that has any,
    # NULL for the rest (both backends take JSON text).
    bind_extra = json.dumps
    if dialect.name == "postgresql":
        bound_time: Any = added_at
        bind_labels = json.dumps  # COPY takes the JSON text itself
    else:
        bind_time = table.c.added_at.type.dialect_impl(dialect).bind_processor(dialect)
        bound_time = bind_time(added_at) if bind_time else added_at

    def rows(start: int, stop: int) -> Iterator[tuple[Any, ...]]:
        for offset in range(start, stop):
            entry = entries[offset]
            labels = bound_labels.get(entry.labels)
            if labels is None:
                labels = bound_labels[entry.labels] = bind_labels(list(entry.labels))
            yield (
                hash_list.id,
                entry.signal_type,
                entry.value,
                entry.category,
                labels,
                entry.source,
                entry.note,
                bound_time,
                first_seq + offset,
                bind_extra(entryhashes.to_json(entry.extra_hashes)) if entry.extra_hashes else None,
            )

    columns = ", ".join(_ENTRY_COLUMNS)
    if dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        assert raw is not None
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY list_entries ({columns}) FROM STDIN") as copy,
        ):
            for start in range(0, len(entries), _CHUNK):
                stop = min(start + _CHUNK, len(entries))
                for row in rows(start, stop):
                    copy.write_row(row)
                if on_progress:
                    on_progress(stop - start)
        return
    placeholders = ", ".join("?" for _ in _ENTRY_COLUMNS)
    statement = f"INSERT INTO list_entries ({columns}) VALUES ({placeholders})"
    for start in range(0, len(entries), _CHUNK):
        stop = min(start + _CHUNK, len(entries))
        connection.exec_driver_sql(statement, list(rows(start, stop)))
        if on_progress:
            on_progress(stop - start)


def _find_entry(
    session: Session, hash_list: HashList, text: str, signal_type: str | None
) -> ListEntry:
    if signal_type is not None:
        kind = get_signal_type(signal_type)
        candidates = [(kind.name, kind.parse(text))]
    elif ":" in text:
        kind, value = parse_typed_value(text)
        candidates = [(kind.name, value)]
    else:
        candidates = []
        for kind in all_signal_types():
            try:
                candidates.append((kind.name, kind.parse(text)))
            except InvalidHash:
                continue
        if not candidates:
            raise InvalidHash(f"{text.strip()!r} is not a valid value of any signal type")
    found = [
        entry
        for name, value in candidates
        for entry in session.scalars(
            select(ListEntry).where(
                ListEntry.list_id == hash_list.id,
                ListEntry.signal_type == name,
                ListEntry.value == value,
            )
        )
    ]
    if not found:
        raise EntryNotFound(f"list {hash_list.name!r} has no entry {text.strip()!r}")
    if len(found) > 1:
        types = ", ".join(entry.signal_type for entry in found)
        raise AmbiguousValue(
            f"{text.strip()!r} is listed as several signal types ({types}); write it as TYPE:VALUE"
        )
    return found[0]
