"""Assessment: taking images in, grading them independently, and publishing the agreed ones.

The flow of one image:

    intake ──► QUEUED ──(k agreeing grades)──────────────► PUBLISHED (hashes on the list)
       │          │                                    └─► REJECTED  (graded "none")
       │          └──(k grades that disagree)──► ESCALATED ──(a senior's decision)──► ditto
       └──► DUPLICATE (the same image is listed or already waiting: never graded twice)

An item's media waits encrypted in a media vault (hashwatch.mediastore) only while the item waits
for grades. Deciding an item clears its media name in the transaction and deletes the file once
that transaction commits, so a decision that rolls back never loses the media; `purge_orphans`
deletes whatever a crash between the commit and the deletion left behind.

Grading is independent: `grade` never tells one analyst what another graded, and an item's state
changes only when it has the number of grades its list requires. A user acts only on items of
their own organisation: anyone else's item is not found, never forbidden.

Functions flush; the caller (an API request, a CLI command) owns the transaction and commits.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol

import numpy as np
from PIL import Image
from sqlalchemy import event, exists, func, or_, select, update
from sqlalchemy.orm import Session, SessionTransaction

from hashwatch import audit, entryhashes
from hashwatch.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    ItemNotFound,
    MediaError,
    MediaStoreError,
)
from hashwatch.hashing import hash_bytes
from hashwatch.lists import (
    MAX_LABELS,
    MAX_SOURCE_LENGTH,
    NewEntry,
    add_entries,
    ensure_writable,
    make_entry,
    parse_labels,
    revoke_entry,
    thresholds_for,
)
from hashwatch.matching import Matcher
from hashwatch.media import ACCEPTED_FORMATS, MediaLimits, decode_rgb
from hashwatch.signals.pdq import MIN_QUALITY
from hashwatch.store.models import (
    AGE_BANDS,
    GRADES,
    NOT_ABUSE,
    Assessment,
    HashList,
    IntakeItem,
    ItemState,
    ListEntry,
    Organisation,
    User,
    utcnow,
)

__all__ = [
    "DASHBOARD_DAYS",
    "Dashboard",
    "ListComposition",
    "ListableMediaVault",
    "MediaVault",
    "dashboard",
    "decide",
    "delete_media",
    "get_item",
    "grade",
    "grades_of",
    "intake",
    "item_entries",
    "mime_type",
    "next_item",
    "published_items",
    "purge_orphans",
    "queue_for",
    "revoke_item",
    "when_settled",
]

log = logging.getLogger(__name__)

#: Roles that settle disagreements and revoke published items.
SENIOR_ROLES = frozenset({"senior", "admin"})
#: States of an item that still waits for a grade or a decision (and keeps its media).
WAITING = (ItemState.QUEUED, ItemState.ESCALATED)
#: Days of grading shown on the dashboard, today included.
DASHBOARD_DAYS = 14
#: Media limits when the caller gives none.
DEFAULT_LIMITS = MediaLimits()
#: The label prefix that carries an entry's age band ("age:3-6").
AGE_LABEL = "age:"

_MIME_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


class MediaVault(Protocol):
    """Where media waits for assessment (hashwatch.mediastore.MediaStore, or a test's fake)."""

    def put(self, data: bytes) -> str: ...

    def get(self, name: str) -> bytes: ...

    def delete(self, name: str) -> bool: ...


class ListableMediaVault(MediaVault, Protocol):
    """A vault that can also name every file it holds (for `purge_orphans`)."""

    def names(self) -> list[str]: ...


# --- intake ----------------------------------------------------------------------------------


def intake(
    session: Session,
    vault: MediaVault,
    hash_list: HashList,
    data: bytes,
    actor: str,
    *,
    source: str = "",
    limits: MediaLimits = DEFAULT_LIMITS,
    matcher: Matcher | None = None,
) -> IntakeItem:
    """Take one image in for assessment for `hash_list`.

    The image is hashed at once; a MediaError (not an image, too large, corrupt) propagates and
    nothing is stored. An image already on the list (an active entry with its SHA-256, SHA-1 or
    MD5, or a PDQ within the list's threshold) or already waiting for assessment for it (the same
    SHA-256, or a PDQ within the threshold) becomes a DUPLICATE grouped with that entry or item,
    and its media is not kept. Otherwise the item is QUEUED with its media in the vault.

    `matcher`, when given, holds the list and answers the PDQ question; without it one is built
    from the store for this call, which reads the list's entries: a caller taking in many
    images should pass one."""
    ensure_writable(hash_list)
    clean_source = source.strip()
    if len(clean_source) > MAX_SOURCE_LENGTH:
        raise InvalidInput(f"source is over {MAX_SOURCE_LENGTH} characters")
    hashed = hash_bytes(data, limits)
    if hashed.failure is not None:
        raise hashed.failure
    if hashed.error is not None:
        raise MediaError(hashed.error)
    hashes = hashed.hashes
    pdq = hashes.get("pdq")
    quality = hashed.quality.get("pdq")
    # Low-quality PDQ hashes of near-uniform images collide with unrelated ones (see
    # hashwatch.signals.pdq): such an image is grouped by its exact hashes only.
    usable_pdq = pdq if pdq is not None and (quality or 0) >= MIN_QUALITY else None

    # Two intakes of the same image at once must not both be queued: take the list's write lock
    # (the one hashwatch.lists takes) before looking for what is already there.
    _lock_list(session, hash_list)
    threshold = thresholds_for(hash_list)["pdq"]
    listed_id = _listed_entry(session, hash_list, hashes)
    if listed_id is None and usable_pdq is not None:
        if matcher is None:
            matcher = Matcher.from_store(session, [hash_list])
        report = matcher.match_value("pdq", usable_pdq, quality, lists=[hash_list.id])
        if report.matches:
            listed_id = report.matches[0].entry_id
    waiting_id = None
    if listed_id is None:
        waiting_id = _waiting_item(session, hash_list, hashes["sha256"], usable_pdq, threshold)

    item = IntakeItem(
        organisation_id=hash_list.owner_id,
        list_id=hash_list.id,
        state=ItemState.QUEUED,
        md5=hashes["md5"],
        sha1=hashes["sha1"],
        sha256=hashes["sha256"],
        pdq=pdq,
        pdq_quality=quality,
        media_type=mime_type(data),
        media_bytes=len(data),
        source=clean_source,
        required_grades=hash_list.required_grades,
        created_by=actor,
        created_at=utcnow(),
        entry_ids=[],
    )
    if listed_id is not None or waiting_id is not None:
        item.state = ItemState.DUPLICATE
        item.listed_entry_id = listed_id
        item.duplicate_of_id = waiting_id
    else:
        name = vault.put(data)
        item.media_name = name
        # The file exists before the row commits: if the transaction rolls back, remove it.
        when_settled(session, on_rollback=lambda: delete_media(vault, name))
    session.add(item)
    session.flush()
    audit.record(
        session,
        actor,
        "intake.add",
        hash_list,
        item_id=item.id,
        state=item.state,
        hashes=dict(hashes),
        pdq_quality=quality,
        media_type=item.media_type,
        media_bytes=item.media_bytes,
        source=item.source,
        duplicate_of_id=item.duplicate_of_id,
        listed_entry_id=item.listed_entry_id,
    )
    return item


def _lock_list(session: Session, hash_list: HashList) -> None:
    session.execute(
        update(HashList).where(HashList.id == hash_list.id).values(last_seq=HashList.last_seq)
    )


def _listed_entry(session: Session, hash_list: HashList, hashes: dict[str, str]) -> int | None:
    """The id of an active entry of the list with one of these exact hashes (SHA-256 first)."""
    kinds = ("sha256", "sha1", "md5")
    rows = session.execute(
        select(ListEntry.signal_type, ListEntry.id).where(
            ListEntry.list_id == hash_list.id,
            ListEntry.revoked_seq.is_(None),
            or_(
                *(
                    (ListEntry.signal_type == kind) & (ListEntry.value == hashes[kind])
                    for kind in kinds
                    if kind in hashes
                )
            ),
        )
    ).all()
    found = dict(rows)
    return next((found[kind] for kind in kinds if kind in found), None)


def _waiting_item(
    session: Session, hash_list: HashList, sha256: str, pdq: str | None, threshold: int
) -> int | None:
    """The id of the oldest waiting item of the list with this SHA-256, else of the waiting item
    nearest this PDQ within the threshold (the oldest on a tie)."""
    waiting = (IntakeItem.list_id == hash_list.id) & IntakeItem.state.in_(WAITING)
    same = session.scalar(
        select(IntakeItem.id)
        .where(waiting, IntakeItem.sha256 == sha256)
        .order_by(IntakeItem.id)
        .limit(1)
    )
    if same is not None or pdq is None:
        return same
    rows = session.execute(
        select(IntakeItem.id, IntakeItem.pdq)
        .where(waiting, IntakeItem.pdq.is_not(None), IntakeItem.pdq_quality >= MIN_QUALITY)
        .order_by(IntakeItem.id)
    ).all()
    if not rows:
        return None
    ids = [item_id for item_id, _ in rows]
    packed = bytes.fromhex("".join(code or "" for _, code in rows))  # none is None: filtered
    # 256 bits as four 64-bit words each: XOR and count the differing bits, all rows at once.
    codes = np.frombuffer(packed, dtype=np.uint64)
    query = np.frombuffer(bytes.fromhex(pdq), dtype=np.uint64)
    distances = np.bitwise_count(codes.reshape(-1, 4) ^ query).sum(axis=1)
    nearest = int(np.argmin(distances))  # the first of the nearest: the oldest
    return ids[nearest] if int(distances[nearest]) <= threshold else None


def mime_type(data: bytes) -> str:
    """The MIME type of an image that has already decoded (so its header is safe to read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            return _MIME_TYPES.get(image.format or "", "application/octet-stream")


# --- reading the queue -----------------------------------------------------------------------


def queue_for(session: Session, user: User, limit: int = 50) -> list[IntakeItem]:
    """Items of the user's organisation that wait for this user's grade, oldest first: queued
    items they have not graded and, for a senior analyst or an administrator, escalated items
    they did not grade."""
    states = WAITING if user.role in SENIOR_ROLES else (ItemState.QUEUED,)
    graded = exists().where(Assessment.item_id == IntakeItem.id, Assessment.user_id == user.id)
    query = (
        select(IntakeItem)
        .where(
            IntakeItem.organisation_id == user.organisation_id,
            IntakeItem.state.in_(states),
            ~graded,
        )
        .order_by(IntakeItem.created_at, IntakeItem.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def next_item(session: Session, user: User) -> IntakeItem | None:
    """The oldest item waiting for this user's grade, if any."""
    items = queue_for(session, user, limit=1)
    return items[0] if items else None


def get_item(session: Session, user: User, item_id: int) -> IntakeItem:
    """An item of the user's organisation; ItemNotFound for any other."""
    item = session.get(IntakeItem, item_id)
    if item is None or item.organisation_id != user.organisation_id:
        raise ItemNotFound(f"no intake item {item_id}")
    return item


def grades_of(session: Session, item: IntakeItem) -> list[Assessment]:
    """Every grade of the item, oldest first. For senior analysts and the audit view only: an
    analyst grading the item must never see them."""
    query = (
        select(Assessment)
        .where(Assessment.item_id == item.id)
        .order_by(Assessment.created_at, Assessment.id)
    )
    return list(session.scalars(query))


def published_items(session: Session, user: User, limit: int = 50) -> list[IntakeItem]:
    """Published items of the user's organisation, the most recently decided first."""
    query = (
        select(IntakeItem)
        .where(
            IntakeItem.organisation_id == user.organisation_id,
            IntakeItem.state == ItemState.PUBLISHED,
        )
        .order_by(IntakeItem.decided_at.desc(), IntakeItem.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def item_entries(session: Session, item: IntakeItem) -> list[ListEntry]:
    """The list entries a published item carries, revoked ones included, in id order."""
    if not item.entry_ids:
        return []
    query = (
        select(ListEntry)
        .where(ListEntry.list_id == item.list_id, ListEntry.id.in_(item.entry_ids))
        .order_by(ListEntry.id)
    )
    return list(session.scalars(query))


# --- grading and deciding --------------------------------------------------------------------


def grade(
    session: Session,
    vault: MediaVault,
    item: IntakeItem,
    user: User,
    grade: str,
    actor: str,
    *,
    age_band: str | None = None,
    labels: Sequence[str] = (),
) -> IntakeItem:
    """Record the user's independent grade of a queued item.

    When the item has the grades its list requires, it is decided if they all agree (the same
    grade and age band) and escalated to a senior analyst otherwise."""
    _check_user(item, user)
    chosen, band, tags = _parse_grade(grade, age_band, labels)
    _lock_item(session, item)
    if item.state != ItemState.QUEUED:
        raise Conflict(f"intake item {item.id} is {item.state}, not waiting for grades")
    _record(session, item, user, (chosen, band, tags), actor, final=False)
    grades = grades_of(session, item)
    if len(grades) < item.required_grades:
        return item
    if len({(g.grade, g.age_band) for g in grades}) == 1:
        merged = [label for g in grades for label in g.labels]
        return _settle(session, vault, item, chosen, band, merged, actor, decided_by=None)
    item.state = ItemState.ESCALATED
    session.flush()
    audit.record(session, actor, "intake.escalate", _list_of(session, item), item_id=item.id)
    return item


def decide(
    session: Session,
    vault: MediaVault,
    item: IntakeItem,
    user: User,
    grade: str,
    actor: str,
    *,
    age_band: str | None = None,
    labels: Sequence[str] = (),
) -> IntakeItem:
    """A senior analyst's (or an administrator's) final decision of an escalated item, made by
    someone who did not grade it. The published entries carry the decider's labels."""
    _check_user(item, user)
    if user.role not in SENIOR_ROLES:
        raise Forbidden("only a senior analyst or an administrator decides escalated items")
    chosen, band, tags = _parse_grade(grade, age_band, labels)
    _lock_item(session, item)
    if item.state != ItemState.ESCALATED:
        raise Conflict(f"intake item {item.id} is {item.state}, not escalated")
    _record(session, item, user, (chosen, band, tags), actor, final=True)
    return _settle(session, vault, item, chosen, band, tags, actor, decided_by=user.username)


def _record(
    session: Session,
    item: IntakeItem,
    user: User,
    parsed: tuple[str, str | None, tuple[str, ...]],
    actor: str,
    *,
    final: bool,
) -> None:
    """Store one person's grade (a senior analyst's decision when `final`) and audit it."""
    _ensure_not_graded(session, item, user)
    chosen, band, tags = parsed
    session.add(
        Assessment(
            item_id=item.id,
            user_id=user.id,
            grade=chosen,
            age_band=band,
            labels=list(tags),
            final=final,
            created_at=utcnow(),
        )
    )
    session.flush()
    audit.record(
        session,
        actor,
        "assessment.decide" if final else "assessment.grade",
        _list_of(session, item),
        item_id=item.id,
        user=user.username,
        grade=chosen,
        age_band=band,
    )


def _settle(
    session: Session,
    vault: MediaVault,
    item: IntakeItem,
    chosen: str,
    band: str | None,
    labels: Sequence[str],
    actor: str,
    decided_by: str | None,
) -> IntakeItem:
    """Decide the item: publish its hashes (or reject it), then let its media go."""
    hash_list = _list_of(session, item)
    detail: dict[str, Any] = {}
    if chosen == NOT_ABUSE:
        item.state = ItemState.REJECTED
    else:
        extra = _entry_hashes(vault, hash_list, item)
        ids, kept_revoked = _publish(session, hash_list, item, chosen, band, labels, actor, extra)
        item.state = ItemState.PUBLISHED
        item.entry_ids = ids
        detail = {"entry_ids": ids, "revoked_kept": kept_revoked}
    item.grade = chosen
    item.age_band = band
    item.decided_at = utcnow()
    name = item.media_name
    item.media_name = None
    if name is not None:
        when_settled(session, on_commit=lambda: delete_media(vault, name))
    session.flush()
    audit.record(
        session,
        actor,
        "intake.publish" if item.state == ItemState.PUBLISHED else "intake.reject",
        hash_list,
        item_id=item.id,
        grade=chosen,
        age_band=band,
        decided_by=decided_by or "agreement",
        **detail,
    )
    return item


def _publish(
    session: Session,
    hash_list: HashList,
    item: IntakeItem,
    category: str,
    band: str | None,
    labels: Sequence[str],
    actor: str,
    extra: Sequence[entryhashes.EntryHash] = (),
) -> tuple[list[int], int]:
    """Add the item's hashes to its list, the PDQ entry with its entry hashes `extra`; return
    the ids of the active entries carrying them and how many were revoked tombstones (which stay
    revoked: see hashwatch.lists)."""
    # The graders' labels were checked one by one; together they may be over the limit per entry.
    wanted = ([f"{AGE_LABEL}{band}"] if band else []) + list(labels)
    tags = tuple(dict.fromkeys(wanted))[:MAX_LABELS]
    values = {"md5": item.md5, "sha1": item.sha1, "sha256": item.sha256}
    if item.pdq is not None and (item.pdq_quality or 0) >= MIN_QUALITY:
        values = {"pdq": item.pdq, **values}
    entries: list[NewEntry] = [
        make_entry(
            kind,
            value,
            category,
            tags,
            item.source,
            f"intake item {item.id}",
            [h.to_json() for h in extra] if kind == "pdq" else None,
        )
        for kind, value in values.items()
    ]
    result = add_entries(session, hash_list, entries, actor)
    # Found by value: an entry someone else added meanwhile carries the hash just as well.
    rows = session.execute(
        select(ListEntry.id).where(
            ListEntry.list_id == hash_list.id,
            ListEntry.revoked_seq.is_(None),
            or_(
                *(
                    (ListEntry.signal_type == e.signal_type) & (ListEntry.value == e.value)
                    for e in entries
                )
            ),
        )
    )
    return sorted(rows.scalars()), result.revoked_kept


def _entry_hashes(
    vault: MediaVault, hash_list: HashList, item: IntakeItem
) -> tuple[entryhashes.EntryHash, ...]:
    """The entry hashes of the item's image, as its list's setting asks, from its media while
    the vault still holds it (publication is the last moment anyone has the image).

    Decoded as intake decoded it for its own PDQ hash. Media that cannot be read back or decoded
    any more costs the entry its entry hashes, not the publication: its own hashes still go on
    the list, and the log says why the rest did not."""
    if (
        hash_list.entry_hashes == "none"
        or item.media_name is None
        or item.pdq is None
        or (item.pdq_quality or 0) < MIN_QUALITY
    ):
        return ()
    try:
        rgb = decode_rgb(vault.get(item.media_name), DEFAULT_LIMITS)
    except (MediaError, MediaStoreError, OSError):
        log.exception("intake item %s: no entry hashes, its media could not be read", item.id)
        return ()
    return entryhashes.compute(rgb, hash_list.entry_hashes)


def _parse_grade(
    grade: str, age_band: str | None, labels: Sequence[str]
) -> tuple[str, str | None, tuple[str, ...]]:
    text = grade.strip() if isinstance(grade, str) else ""
    chosen = NOT_ABUSE if text.lower() == NOT_ABUSE else text.upper()
    if chosen not in GRADES:
        raise InvalidInput(f"grade must be one of {', '.join(GRADES)}, got {grade!r}")
    band = (age_band or "").strip() or None
    if band is not None and band not in AGE_BANDS:
        raise InvalidInput(f"age band must be one of {', '.join(AGE_BANDS)}, got {age_band!r}")
    if chosen == NOT_ABUSE:
        band = None  # an age band means nothing for an image that is not abuse material
    tags = parse_labels(labels)
    if any(tag.lower().startswith(AGE_LABEL) for tag in tags):
        raise InvalidInput("give the age band as the age band, not as an 'age:' label")
    return chosen, band, tags


def _check_user(item: IntakeItem, user: User) -> None:
    if item.organisation_id != user.organisation_id:
        raise ItemNotFound(f"no intake item {item.id}")
    if user.disabled_at is not None:
        raise Forbidden(f"user {user.username!r} is disabled")


def _ensure_not_graded(session: Session, item: IntakeItem, user: User) -> None:
    graded = session.scalar(
        select(Assessment.id).where(Assessment.item_id == item.id, Assessment.user_id == user.id)
    )
    if graded is not None:
        raise Conflict(f"{user.username} has already graded intake item {item.id}")


def _lock_item(session: Session, item: IntakeItem) -> None:
    """Take the item's row lock (the database write lock on SQLite) and read it afresh, so two
    graders finishing at once see each other's grade and settle the item once."""
    session.execute(
        update(IntakeItem)
        .where(IntakeItem.id == item.id)
        .values(state=IntakeItem.state)
        .execution_options(synchronize_session=False)
    )
    session.refresh(item)


def _list_of(session: Session, item: IntakeItem) -> HashList:
    hash_list = session.get(HashList, item.list_id)
    assert hash_list is not None  # a foreign key
    return hash_list


# --- revoking --------------------------------------------------------------------------------


def revoke_item(
    session: Session, item: IntakeItem, user: User, reason: str, actor: str
) -> IntakeItem:
    """Revoke every still-active entry a published item put on its list (senior analysts and
    administrators only). The revocations reach members through the list's change feed."""
    _check_user(item, user)
    if user.role not in SENIOR_ROLES:
        raise Forbidden("only a senior analyst or an administrator revokes published items")
    if item.state != ItemState.PUBLISHED:
        raise Conflict(f"intake item {item.id} is {item.state}, not published")
    why = reason.strip()
    if not why:
        raise InvalidInput("a revocation needs a reason")
    hash_list = _list_of(session, item)
    active = [entry.id for entry in item_entries(session, item) if entry.revoked_seq is None]
    if not active:
        raise Conflict(f"the entries of intake item {item.id} are already revoked")
    for entry_id in active:
        revoke_entry(session, hash_list, entry_id, why, actor)
    audit.record(
        session,
        actor,
        "intake.revoke",
        hash_list,
        item_id=item.id,
        user=user.username,
        entry_ids=active,
        reason=why,
    )
    return item


# --- media -----------------------------------------------------------------------------------


def purge_orphans(session: Session, vault: ListableMediaVault) -> int:
    """Delete media files that no waiting item names (left by a crash between a decision's
    commit and the file's deletion, or a rolled-back intake); return how many.

    Run it while no intake is in flight (at start-up, say): media put by an intake whose
    transaction has not yet committed is not yet named by any item."""
    # Names listed before the items are read: a file put after this listing is never touched.
    held = vault.names()
    named = set(
        session.scalars(
            select(IntakeItem.media_name).where(
                IntakeItem.state.in_(WAITING), IntakeItem.media_name.is_not(None)
            )
        )
    )
    return sum(1 for name in held if name not in named and delete_media(vault, name))


def delete_media(vault: MediaVault, name: str) -> bool:
    """Delete one file; a failure is logged (by name, never content) for purge_orphans to
    retry, not raised: it runs after a commit, when the decision already stands."""
    try:
        return vault.delete(name)
    except Exception:
        log.exception("could not delete media %s; purge_orphans will retry", name)
        return False


_PENDING = "hashwatch.assessment.pending"
Action = Callable[[], object]


@dataclass
class _Pending:
    transaction: SessionTransaction  # the innermost transaction when the action was registered
    on_commit: Action | None
    on_rollback: Action | None

    def within(self, ended: SessionTransaction) -> bool:
        """Whether rolling back `ended` undoes what was done when this was registered."""
        transaction: SessionTransaction | None = self.transaction
        while transaction is not None:
            if transaction is ended:
                return True
            transaction = transaction.parent
        return False


def when_settled(
    session: Session, *, on_commit: Action | None = None, on_rollback: Action | None = None
) -> None:
    """Run `on_commit` once the transaction in progress commits, or `on_rollback` if it (or the
    savepoint in progress) rolls back or the session closes without committing.

    One set of listeners per session, not one per call, so a long session that takes in
    thousands of images does not call thousands of spent listeners at each commit."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    assert transaction is not None, "called after a statement, inside a transaction"
    pending: list[_Pending] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", _committed)
        event.listen(session, "after_soft_rollback", _rolled_back)
        event.listen(session, "after_transaction_end", _ended)
    pending.append(_Pending(transaction, on_commit, on_rollback))


def _take(session: Session, chosen: Callable[[_Pending], bool]) -> list[_Pending]:
    pending: list[_Pending] = session.info.get(_PENDING, [])
    taken = [p for p in pending if chosen(p)]
    pending[:] = [p for p in pending if not chosen(p)]
    return taken


def _committed(session: Session) -> None:
    # after_commit fires for the outermost transaction only: everything pending is settled.
    for done in _take(session, lambda p: True):
        if done.on_commit is not None:
            done.on_commit()


def _rolled_back(session: Session, previous: SessionTransaction) -> None:
    for undone in _take(session, lambda p: p.within(previous)):
        if undone.on_rollback is not None:
            undone.on_rollback()


def _ended(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without a commit or a rollback event: Session.close().
    if transaction.parent is None:
        _rolled_back(session, transaction)


# --- dashboard -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListComposition:
    """What one list holds, counting each published image once: by its SHA-256 entry."""

    list_id: int
    list: str
    images: int
    by_category: dict[str, int] = field(default_factory=dict)
    by_age_band: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "list_id": self.list_id,
            "list": self.list,
            "images": self.images,
            "by_category": dict(self.by_category),
            "by_age_band": dict(self.by_age_band),
        }


@dataclass(frozen=True)
class Dashboard:
    """An organisation's assessment figures at one moment."""

    organisation: str
    at: datetime
    queued: int
    escalated: int
    published: int
    rejected: int
    duplicates: int
    #: Seconds since the oldest waiting (queued or escalated) item was taken in; None if none.
    oldest_waiting_seconds: int | None
    #: (username, "YYYY-MM-DD" in UTC, grades given) for the last DASHBOARD_DAYS days, final
    #: decisions included; by day, then username.
    grades_per_day: list[tuple[str, str, int]]
    #: Items decided by agreement / items that reached their required grades (decided ones and
    #: escalated ones); None when none has.
    agreement_rate: float | None
    decided_by_agreement: int
    reached_required_grades: int
    lists: list[ListComposition]

    def to_json(self) -> dict[str, Any]:
        return {
            "organisation": self.organisation,
            "at": self.at.isoformat(),
            "queued": self.queued,
            "escalated": self.escalated,
            "published": self.published,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "oldest_waiting_seconds": self.oldest_waiting_seconds,
            "grades_per_day": [
                {"analyst": name, "day": day, "grades": count}
                for name, day, count in self.grades_per_day
            ],
            "agreement_rate": self.agreement_rate,
            "decided_by_agreement": self.decided_by_agreement,
            "reached_required_grades": self.reached_required_grades,
            "lists": [composition.to_json() for composition in self.lists],
        }


def dashboard(
    session: Session, organisation: Organisation, now: datetime | None = None
) -> Dashboard:
    """Queue size and age, grades per analyst per day, the agreement rate, and the composition
    of each list the organisation owns by category and age band."""
    now = now or utcnow()
    ours = IntakeItem.organisation_id == organisation.id
    rows = session.execute(
        select(IntakeItem.state, func.count()).where(ours).group_by(IntakeItem.state)
    )
    states: Counter[str] = Counter({state: count for state, count in rows})
    oldest = session.scalar(
        select(func.min(IntakeItem.created_at)).where(ours, IntakeItem.state.in_(WAITING))
    )
    if oldest is not None and oldest.tzinfo is None:  # func.min bypasses the column's type
        oldest = oldest.replace(tzinfo=UTC)
    decided = (ItemState.PUBLISHED, ItemState.REJECTED)
    final = exists().where(Assessment.item_id == IntakeItem.id, Assessment.final.is_(True))
    by_agreement = (
        session.scalar(select(func.count()).where(ours, IntakeItem.state.in_(decided), ~final)) or 0
    )
    reached = sum(states[state] for state in (*decided, ItemState.ESCALATED))
    return Dashboard(
        organisation=organisation.name,
        at=now,
        queued=states[ItemState.QUEUED],
        escalated=states[ItemState.ESCALATED],
        published=states[ItemState.PUBLISHED],
        rejected=states[ItemState.REJECTED],
        duplicates=states[ItemState.DUPLICATE],
        oldest_waiting_seconds=None if oldest is None else int((now - oldest).total_seconds()),
        grades_per_day=_grades_per_day(session, organisation, now),
        agreement_rate=by_agreement / reached if reached else None,
        decided_by_agreement=by_agreement,
        reached_required_grades=reached,
        lists=_compositions(session, organisation),
    )


def _grades_per_day(
    session: Session, organisation: Organisation, now: datetime
) -> list[tuple[str, str, int]]:
    first_day = now.astimezone(UTC).date() - timedelta(days=DASHBOARD_DAYS - 1)
    since = datetime.combine(first_day, time(), tzinfo=UTC)
    rows = session.execute(
        select(User.username, Assessment.created_at)
        .join(User, User.id == Assessment.user_id)
        .join(IntakeItem, IntakeItem.id == Assessment.item_id)
        .where(
            IntakeItem.organisation_id == organisation.id,
            Assessment.created_at >= since,
            Assessment.created_at <= now,
        )
    )
    # Days counted here, not in SQL: the two backends spell "the date of" differently.
    counts = Counter((name, at.astimezone(UTC).date().isoformat()) for name, at in rows)
    return sorted(
        ((name, day, count) for (name, day), count in counts.items()),
        key=lambda row: (row[1], row[0]),
    )


def _compositions(session: Session, organisation: Organisation) -> list[ListComposition]:
    hash_lists = session.scalars(
        select(HashList).where(HashList.owner_id == organisation.id).order_by(HashList.name)
    )
    out: list[ListComposition] = []
    for hash_list in hash_lists:
        rows = session.execute(
            select(ListEntry.category, ListEntry.labels)
            .where(
                ListEntry.list_id == hash_list.id,
                ListEntry.signal_type == "sha256",
                ListEntry.revoked_seq.is_(None),
            )
            .execution_options(yield_per=10_000)
        )
        categories: Counter[str] = Counter()
        bands: Counter[str] = Counter()
        for category, labels in rows:
            categories[category or "none"] += 1
            band = next(
                (label[len(AGE_LABEL) :] for label in labels if label.startswith(AGE_LABEL)),
                "none",
            )
            bands[band] += 1
        out.append(
            ListComposition(
                list_id=hash_list.id,
                list=hash_list.name,
                images=categories.total(),
                by_category=dict(sorted(categories.items())),
                by_age_band=dict(sorted(bands.items(), key=lambda kv: _band_order(kv[0]))),
            )
        )
    return out


def _band_order(band: str) -> tuple[int, str]:
    return (AGE_BANDS.index(band), band) if band in AGE_BANDS else (len(AGE_BANDS), band)
