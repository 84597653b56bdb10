"""A platform's review of its matches: match events, one review job per platform user, decisions,
and false-positive control.

    match ──record_event──► event ──► the user's OPEN job ──confirm──► CONFIRMED (act, report)
                                                          └─false_positive──► FALSE_POSITIVE

- An event carries the platform's own reference to the content (content id, user, upload time,
  IP address, any other fields) and what it matched, with distances and categories. The media
  itself is kept, encrypted, only when the organisation turned evidence retention on.
- All events of one platform user while a job is open join that job, so an account with many
  matches is one decision. Jobs are reviewed most severe first (A1 before B2), then oldest.
- A false positive adds the content's hashes to the organisation's exceptions, so the same
  content never alerts it again, and records a dispute on each matched entry for the list's
  owner to see.
- An organisation may set a stricter threshold of its own for a list (never a looser one: the
  matcher searches at the list's threshold).

Functions flush; the caller owns the transaction.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from hashwatch import audit, webhooks
from hashwatch.assessment import MediaVault, delete_media, when_settled
from hashwatch.errors import Conflict, InvalidInput, MediaStoreError, NotFound
from hashwatch.lists import thresholds_for
from hashwatch.matching import Match
from hashwatch.signals.pdq import MIN_QUALITY
from hashwatch.store.models import (
    INDUSTRY_CATEGORIES,
    EntryDispute,
    HashList,
    JobState,
    ListEntry,
    MatchEvent,
    MatchException,
    Organisation,
    ReviewJob,
    ThresholdOverride,
    utcnow,
)

__all__ = [
    "EXCEPTION_PDQ_DISTANCE",
    "PURGED",
    "ContentRef",
    "configure_evidence",
    "confirm",
    "decided_jobs",
    "disputes",
    "event_counts",
    "false_positive",
    "get_job",
    "job_events",
    "next_job",
    "purge",
    "record_event",
    "review_queue",
    "set_threshold_override",
    "severity_name",
    "threshold_overrides",
    "view_evidence",
]

#: A content PDQ this close to an excepted one is the same content re-encoded or resized (such
#: copies stay within about 10-20 bits); a larger radius would also silence merely similar
#: content, which may be real abuse material near a false positive.
EXCEPTION_PDQ_DISTANCE = 10
#: Severity for ordering the queue: lower is more severe.
SEVERITY = {"A1": 0, "A2": 1, "A": 2, "B1": 3, "B2": 4, "B": 5, "C": 6}
NO_CATEGORY = 9
_SEVERITY_NAMES = {rank: category for category, rank in SEVERITY.items()}
MAX_REF = 200
#: The longest period (days) an organisation may set for keeping events.
MAX_DAYS = 3650
#: The user reference a job keeps once its events are purged.
PURGED = "purged"
#: Who purges: a scheduled task, not a person.
PURGE_ACTOR = "system:purge"


@dataclass(frozen=True)
class ContentRef:
    """The platform's own reference to an upload that matched."""

    content_id: str
    user_ref: str
    uploaded_at: datetime | None = None
    ip_address: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def record_event(
    session: Session,
    organisation: Organisation,
    ref: ContentRef,
    hashes: dict[str, str],
    matches: Sequence[Match],
    actor: str,
    *,
    media: bytes | None = None,
    media_type: str | None = None,
    vault: MediaVault | None = None,
    pdq_quality: int | None = None,
) -> MatchEvent | None:
    """Record that content of the platform's matched, joined to its user's open review job.

    Matches the organisation excepted, or beyond its own stricter threshold for that list, are
    dropped first; None when none remain. The media is kept (encrypted, in `vault`) only when
    the organisation retains evidence. `pdq_quality` is the quality of the content's PDQ hash
    where the content was hashed here: see _excepted for why it matters."""
    for name, value in (("content_id", ref.content_id), ("user_ref", ref.user_ref)):
        if not value.strip() or len(value) > MAX_REF:
            raise InvalidInput(f"{name} must be 1 to {MAX_REF} characters")
    address = _ip_address(ref.ip_address)
    if _excepted(session, organisation.id, hashes, pdq_quality):
        return None
    kept = _within_overrides(session, organisation.id, matches)
    if not kept:
        return None
    now = utcnow()
    severity = min(SEVERITY.get(m.category or "", NO_CATEGORY) for m in kept)
    # One open job per user: take the organisation's row first (an UPDATE that changes
    # nothing: a row lock on PostgreSQL, the write lock on SQLite), so two first matches of a
    # user at once cannot both open a job.
    session.execute(
        update(Organisation)
        .where(Organisation.id == organisation.id)
        .values(retain_evidence=Organisation.retain_evidence)
        .execution_options(synchronize_session=False)
    )
    job = session.scalar(
        select(ReviewJob).where(
            ReviewJob.organisation_id == organisation.id,
            ReviewJob.user_ref == ref.user_ref,
            ReviewJob.state == JobState.OPEN,
        )
    )
    if job is None:
        job = ReviewJob(
            organisation_id=organisation.id,
            user_ref=ref.user_ref,
            state=JobState.OPEN,
            severity=severity,
            created_at=now,
            updated_at=now,
            annotations=[],
            viewed=False,
        )
        session.add(job)
        session.flush()
    else:
        job.severity = min(job.severity, severity)
        job.updated_at = now
    event = MatchEvent(
        organisation_id=organisation.id,
        job_id=job.id,
        created_at=now,
        content_id=ref.content_id,
        user_ref=ref.user_ref,
        uploaded_at=ref.uploaded_at,
        ip_address=address,
        extra=dict(ref.extra),
        hashes=dict(hashes),
        matches=[m.to_json() for m in kept],
        pdq_quality=pdq_quality,
    )
    if media is not None and organisation.retain_evidence:
        if vault is None:
            raise InvalidInput("evidence retention is on, but no media store was given")
        name = vault.put(media)
        event.media_name = name
        event.media_type = media_type
        # The file exists before the row commits: if the transaction rolls back, remove it.
        store = vault
        when_settled(session, on_rollback=lambda: delete_media(store, name))
    session.add(event)
    session.flush()
    audit.record(
        session,
        actor,
        "event.record",
        organisation_id=organisation.id,
        event_id=event.id,
        job_id=job.id,
        content_id=ref.content_id,
        matches=len(kept),
    )
    webhooks.enqueue(session, organisation.id, "match", _event_summary(event))
    return event


def review_queue(session: Session, organisation_id: int, limit: int = 50) -> list[ReviewJob]:
    """Open jobs, most severe first, then oldest."""
    return list(
        session.scalars(
            select(ReviewJob)
            .where(ReviewJob.organisation_id == organisation_id, ReviewJob.state == JobState.OPEN)
            .order_by(ReviewJob.severity, ReviewJob.created_at, ReviewJob.id)
            .limit(limit)
        )
    )


def decided_jobs(session: Session, organisation_id: int, limit: int = 20) -> list[ReviewJob]:
    """Jobs decided most recently first."""
    return list(
        session.scalars(
            select(ReviewJob)
            .where(ReviewJob.organisation_id == organisation_id, ReviewJob.state != JobState.OPEN)
            .order_by(ReviewJob.decided_at.desc(), ReviewJob.id.desc())
            .limit(limit)
        )
    )


def next_job(session: Session, organisation_id: int, after: int | None = None) -> ReviewJob | None:
    """The open job a reviewer takes next: the queue's first, other than `after`."""
    query = (
        select(ReviewJob)
        .where(ReviewJob.organisation_id == organisation_id, ReviewJob.state == JobState.OPEN)
        .order_by(ReviewJob.severity, ReviewJob.created_at, ReviewJob.id)
        .limit(1)
    )
    if after is not None:
        query = query.where(ReviewJob.id != after)
    return session.scalar(query)


def event_counts(session: Session, job_ids: Sequence[int]) -> dict[int, int]:
    """How many match events each job holds."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(MatchEvent.job_id, func.count())
        .where(MatchEvent.job_id.in_(list(job_ids)))
        .group_by(MatchEvent.job_id)
    )
    return {job_id: count for job_id, count in rows if job_id is not None}


def severity_name(severity: int) -> str:
    """The category a job's severity stands for ("A1"), or "" for none."""
    return _SEVERITY_NAMES.get(severity, "")


def view_evidence(session: Session, job: ReviewJob, event_id: int, actor: str) -> tuple[str, str]:
    """The media name and type of the evidence kept for one of the job's events, for a person
    about to see it: the viewing is audited. NotFound when there is none (never kept, or
    deleted by a false positive or a purge)."""
    event = session.get(MatchEvent, event_id)
    if event is None or event.job_id != job.id or event.media_name is None:
        raise NotFound(f"no evidence kept for event {event_id} of review job {job.id}")
    audit.record(
        session,
        actor,
        "review.media_viewed",
        organisation_id=job.organisation_id,
        job_id=job.id,
        event_id=event.id,
    )
    return event.media_name, event.media_type or ""


def get_job(session: Session, organisation_id: int, job_id: int) -> ReviewJob:
    """The organisation's job; another organisation's is not found, like a missing one."""
    job = session.get(ReviewJob, job_id)
    if job is None or job.organisation_id != organisation_id:
        raise NotFound(f"no review job with id {job_id}")
    return job


def job_events(session: Session, job: ReviewJob) -> list[MatchEvent]:
    return list(
        session.scalars(
            select(MatchEvent).where(MatchEvent.job_id == job.id).order_by(MatchEvent.id)
        )
    )


def confirm(
    session: Session,
    job: ReviewJob,
    reviewer: str,
    classification: str,
    actor: str,
    *,
    annotations: Sequence[str] = (),
    viewed: bool = False,
) -> ReviewJob:
    """A reviewer confirms the job's content: it is preserved for the organisation's period and
    can be reported."""
    if classification not in INDUSTRY_CATEGORIES:
        raise InvalidInput(f"classification must be one of {', '.join(INDUSTRY_CATEGORIES)}")
    _claim(session, job, JobState.CONFIRMED)
    organisation = session.get(Organisation, job.organisation_id)
    assert organisation is not None
    now = utcnow()
    job.state = JobState.CONFIRMED
    job.classification = classification
    job.annotations = [a.strip()[:200] for a in annotations if a.strip()][:32]
    job.viewed = viewed
    job.decided_at = job.updated_at = now
    job.decided_by = reviewer
    job.preserve_until = now + timedelta(days=organisation.preserve_days)
    session.flush()
    _decided(session, job, actor)
    return job


def false_positive(
    session: Session,
    vault: MediaVault | None,
    job: ReviewJob,
    reviewer: str,
    actor: str,
    *,
    note: str = "",
) -> ReviewJob:
    """Not what the lists say: the content never alerts this organisation again, each matched
    entry gets a dispute for its owner, and any evidence kept is deleted once this commits."""
    _claim(session, job, JobState.FALSE_POSITIVE)
    events = job_events(session, job)
    known = {
        (row.signal_type, row.value)
        for row in session.scalars(
            select(MatchException).where(MatchException.organisation_id == job.organisation_id)
        )
    }
    matched = {int(m["entry_id"]) for event in events for m in event.matches}
    present = set(session.scalars(select(ListEntry.id).where(ListEntry.id.in_(matched))))
    disputed: set[int] = set()
    names: list[str] = []
    for event in events:
        for signal_type, value in event.hashes.items():
            if (signal_type, value) not in known:
                known.add((signal_type, value))
                session.add(
                    MatchException(
                        organisation_id=job.organisation_id,
                        signal_type=signal_type,
                        value=value,
                        quality=event.pdq_quality if signal_type == "pdq" else None,
                        job_id=job.id,
                        created_by=reviewer,
                        created_at=utcnow(),
                    )
                )
        for match in event.matches:
            entry_id = int(match["entry_id"])
            if entry_id in present and entry_id not in disputed:
                disputed.add(entry_id)
                session.add(
                    EntryDispute(
                        entry_id=entry_id,
                        list_id=int(match["list_id"]),
                        organisation_id=job.organisation_id,
                        job_id=job.id,
                        note=note.strip()[:1000],
                        created_at=utcnow(),
                    )
                )
        if event.media_name is not None:
            names.append(event.media_name)
            event.media_name = None
    now = utcnow()
    job.state = JobState.FALSE_POSITIVE
    job.decided_at = job.updated_at = now
    job.decided_by = reviewer
    session.flush()
    if vault is not None and names:
        store = vault
        when_settled(session, on_commit=lambda: _delete_all(store, names))
    _decided(session, job, actor, disputed=sorted(disputed))
    return job


def disputes(session: Session, owner_organisation_id: int, list_id: int) -> list[dict[str, Any]]:
    """For a list's owner: its entries that platforms reported as false positives, and how often."""
    hash_list = session.get(HashList, list_id)
    if hash_list is None or hash_list.owner_id != owner_organisation_id:
        raise NotFound(f"no list with id {list_id}")
    rows = session.execute(
        select(ListEntry.id, ListEntry.signal_type, ListEntry.value, func.count(EntryDispute.id))
        .join(EntryDispute, EntryDispute.entry_id == ListEntry.id)
        .where(ListEntry.list_id == list_id)
        .group_by(ListEntry.id, ListEntry.signal_type, ListEntry.value)
        .order_by(func.count(EntryDispute.id).desc(), ListEntry.id)
    ).all()
    return [
        {"entry_id": entry_id, "signal_type": kind, "value": value, "disputes": count}
        for entry_id, kind, value, count in rows
    ]


def set_threshold_override(
    session: Session,
    organisation: Organisation,
    hash_list: HashList,
    signal_type: str,
    threshold: int | None,
    actor: str,
) -> None:
    """The organisation's own threshold for one signal type of a list it matches: at most the
    list's own; None removes it."""
    limit = thresholds_for(hash_list).get(signal_type)
    if limit is None:
        raise InvalidInput(f"list {hash_list.name!r} has no {signal_type!r} threshold")
    session.execute(
        delete(ThresholdOverride).where(
            ThresholdOverride.organisation_id == organisation.id,
            ThresholdOverride.list_id == hash_list.id,
            ThresholdOverride.signal_type == signal_type,
        )
    )
    if threshold is not None:
        if not 0 <= threshold <= limit:
            raise InvalidInput(
                f"an override of the {signal_type} threshold must be from 0 to the list's "
                f"own {limit}: the matcher searches no farther than the list's threshold"
            )
        session.add(
            ThresholdOverride(
                organisation_id=organisation.id,
                list_id=hash_list.id,
                signal_type=signal_type,
                threshold=threshold,
            )
        )
    session.flush()
    audit.record(
        session,
        actor,
        "threshold.override",
        organisation_id=organisation.id,
        list_id=hash_list.id,
        list=hash_list.name,
        signal_type=signal_type,
        threshold=threshold,
    )


def threshold_overrides(session: Session, organisation_id: int) -> list[ThresholdOverride]:
    """The organisation's own thresholds, by list and signal type."""
    query = select(ThresholdOverride).where(ThresholdOverride.organisation_id == organisation_id)
    return list(
        session.scalars(query.order_by(ThresholdOverride.list_id, ThresholdOverride.signal_type))
    )


def configure_evidence(
    session: Session,
    organisation: Organisation,
    actor: str,
    *,
    retain_evidence: bool | None = None,
    preserve_days: int | None = None,
    unconfirmed_days: int | None = None,
) -> Organisation:
    """Whether matched media is kept as evidence, how long a confirmed job is preserved after
    its decision, and how long an unconfirmed event is kept; None leaves a setting as it is."""
    for name, days in (("preserve_days", preserve_days), ("unconfirmed_days", unconfirmed_days)):
        if days is not None and (
            isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS
        ):
            raise InvalidInput(f"{name} must be a whole number of days from 1 to {MAX_DAYS}")
    changed: dict[str, Any] = {}
    if retain_evidence is not None:
        changed["retain_evidence"] = organisation.retain_evidence = bool(retain_evidence)
    if preserve_days is not None:
        changed["preserve_days"] = organisation.preserve_days = preserve_days
    if unconfirmed_days is not None:
        changed["unconfirmed_days"] = organisation.unconfirmed_days = unconfirmed_days
    session.flush()
    audit.record(session, actor, "settings.evidence", organisation_id=organisation.id, **changed)
    return organisation


# --- purging ---------------------------------------------------------------------------------


def purge(
    session: Session, vault: MediaVault | None, now: datetime | None = None
) -> dict[str, int]:
    """Delete, for every organisation, what is kept past its period, and audit it per
    organisation.

    A confirmed job past preserve_until loses its events (metadata and media); the job stays as
    the record of the decision, its user reference PURGED and its annotations cleared. Events of
    open and false-positive jobs older than the organisation's unconfirmed_days are deleted with
    their media; an open job left empty is deleted, a false-positive one (its exceptions and
    disputes point at it) stays with its user reference PURGED. Media files go once this commits.
    """
    now = now or utcnow()
    totals = dict.fromkeys(_PURGE_COUNTS, 0)
    for organisation in list(session.scalars(select(Organisation).order_by(Organisation.id))):
        counts = _purge_organisation(session, vault, organisation, now)
        if any(counts.values()):
            audit.record(
                session, PURGE_ACTOR, "review.purge", organisation_id=organisation.id, counts=counts
            )
        for name, count in counts.items():
            totals[name] += count
    session.flush()
    return totals


_PURGE_COUNTS = (
    "confirmed_jobs",
    "confirmed_events",
    "unconfirmed_events",
    "open_jobs_deleted",
    "media_deleted",
)


def _purge_organisation(
    session: Session, vault: MediaVault | None, organisation: Organisation, now: datetime
) -> dict[str, int]:
    ours = ReviewJob.organisation_id == organisation.id
    expired = list(
        session.scalars(
            select(ReviewJob).where(
                ours,
                ReviewJob.state == JobState.CONFIRMED,
                ReviewJob.preserve_until <= now,
                ReviewJob.user_ref != PURGED,
            )
        )
    )
    confirmed: list[MatchEvent] = []
    for job in expired:
        confirmed += job_events(session, job)
        job.user_ref = PURGED
        job.annotations = []
        job.updated_at = now
    cutoff = now - timedelta(days=organisation.unconfirmed_days)
    unconfirmed = list(
        session.scalars(
            select(MatchEvent)
            .join(ReviewJob, ReviewJob.id == MatchEvent.job_id)
            .where(
                ours,
                ReviewJob.state.in_((JobState.OPEN, JobState.FALSE_POSITIVE)),
                MatchEvent.created_at < cutoff,
            )
        )
    )
    doomed = [*confirmed, *unconfirmed]
    names = [event.media_name for event in doomed if event.media_name is not None]
    if names:
        if vault is None:
            raise MediaStoreError("evidence is kept for events being purged: give the media store")
        store = vault
        when_settled(session, on_commit=lambda: _delete_all(store, names))
    for event in doomed:
        session.delete(event)
    session.flush()
    emptied = 0
    for job_id in sorted({event.job_id for event in unconfirmed if event.job_id is not None}):
        left = session.scalar(select(func.count()).where(MatchEvent.job_id == job_id))
        emptied_job = session.get(ReviewJob, job_id)
        if left or emptied_job is None:
            continue
        if emptied_job.state == JobState.OPEN:
            session.delete(emptied_job)
            emptied += 1
        else:
            emptied_job.user_ref = PURGED
            emptied_job.updated_at = now
    session.flush()
    return {
        "confirmed_jobs": len(expired),
        "confirmed_events": len(confirmed),
        "unconfirmed_events": len(unconfirmed),
        "open_jobs_deleted": emptied,
        "media_deleted": len(names),
    }


# --- helpers ---------------------------------------------------------------------------------


def _claim(session: Session, job: ReviewJob, state: str) -> None:
    """Move an open job to `state` in one conditional UPDATE: of two reviewers deciding at once,
    the second waits for the first's commit and then finds the job no longer open (Conflict),
    on PostgreSQL and SQLite alike."""
    claimed = session.execute(
        update(ReviewJob)
        .where(ReviewJob.id == job.id, ReviewJob.state == JobState.OPEN)
        .values(state=state)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(job)
        raise Conflict(f"review job {job.id} is already {job.state}")
    job.state = state


def _excepted(
    session: Session, organisation_id: int, hashes: dict[str, str], pdq_quality: int | None
) -> bool:
    """Whether the content is one the organisation found to be a false positive.

    An exact hash excepts its own value. A PDQ hash also excepts content within
    EXCEPTION_PDQ_DISTANCE of it, but only where both hashes are known to be of quality
    MIN_QUALITY or more: near-blank images (a flat colour, a gradient) have low-quality hashes
    that sit close together, so one near-blank false positive must not silence every other
    near-blank upload (which may match a list through its exact hashes). A PDQ hash a platform
    sent has no known quality, so it excepts its exact value alone."""
    exact = [(kind, value) for kind, value in hashes.items() if kind != "pdq"]
    rows = session.execute(
        select(MatchException.signal_type, MatchException.value, MatchException.quality).where(
            MatchException.organisation_id == organisation_id
        )
    ).all()
    if not rows:
        return False
    known = {(kind, value) for kind, value, _ in rows}
    if any(pair in known for pair in exact) or ("pdq", hashes.get("pdq")) in known:
        return True
    query = hashes.get("pdq")
    if query is None or pdq_quality is None or pdq_quality < MIN_QUALITY:
        return False
    excepted = [
        value
        for kind, value, quality in rows
        if kind == "pdq" and quality is not None and quality >= MIN_QUALITY
    ]
    if not excepted:
        return False
    codes = np.frombuffer(bytes.fromhex("".join(excepted)), dtype=np.uint64).reshape(-1, 4)
    mine = np.frombuffer(bytes.fromhex(query), dtype=np.uint64)
    distances = np.bitwise_count(codes ^ mine).sum(axis=1)
    return bool(distances.min() <= EXCEPTION_PDQ_DISTANCE)


def _within_overrides(
    session: Session, organisation_id: int, matches: Sequence[Match]
) -> list[Match]:
    overrides = {
        (row.list_id, row.signal_type): row.threshold
        for row in session.scalars(
            select(ThresholdOverride).where(ThresholdOverride.organisation_id == organisation_id)
        )
    }
    return [
        m for m in matches if m.distance <= overrides.get((m.list_id, m.signal_type), m.distance)
    ]


def _ip_address(text: str | None) -> str | None:
    """The address in its usual written form; InvalidInput for anything that is not one."""
    if text is None or not text.strip():
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise InvalidInput(f"{text[:64]!r} is not an IP address") from None


def _delete_all(vault: MediaVault, names: list[str]) -> None:
    for name in names:
        delete_media(vault, name)


def _event_summary(event: MatchEvent) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "job_id": event.job_id,
        "content_id": event.content_id,
        "user_ref": event.user_ref,
        "matches": event.matches,
    }


def _decided(session: Session, job: ReviewJob, actor: str, **detail: Any) -> None:
    audit.record(
        session,
        actor,
        f"job.{job.state}",
        organisation_id=job.organisation_id,
        job_id=job.id,
        reviewer=job.decided_by,
        classification=job.classification,
        **detail,
    )
    payload = {
        "job_id": job.id,
        "state": job.state,
        "user_ref": job.user_ref,
        "classification": job.classification,
    }
    webhooks.enqueue(session, job.organisation_id, "decision", payload)
