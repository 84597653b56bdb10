"""A platform's review of its matches: events grouped into one job per user, the queue's order,
decisions, and false-positive control (exceptions, disputes, stricter thresholds)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hashwatch import review, webhooks
from hashwatch.errors import Conflict, InvalidInput, NotFound
from hashwatch.lists import add_entries, create_list, make_entry
from hashwatch.matching import Match
from hashwatch.organisations import create_organisation
from hashwatch.store import Store
from hashwatch.store.models import (
    AuditEvent,
    HashList,
    JobState,
    ListEntry,
    MatchEvent,
    Organisation,
    ReviewJob,
    WebhookDelivery,
    utcnow,
)
from tests.api.conftest import flip_bits, random_pdq

ACTOR = "test"


class Vault:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        name = f"{len(self.files) + 1:032x}"
        self.files[name] = data
        return name

    def get(self, name: str) -> bytes:
        return self.files[name]

    def delete(self, name: str) -> bool:
        return self.files.pop(name, None) is not None


@pytest.fixture
def world(store: Store) -> dict[str, Any]:
    """A hotline's list of three PDQ entries (A1, B2, C) and a platform that matches it."""
    values = [random_pdq() for _ in range(3)]
    with store.session() as session:
        hotline = create_organisation(session, "hotline", ACTOR)
        create_organisation(session, "platform", ACTOR)
        hash_list = create_list(session, hotline, "verified", ACTOR)
        entries = [
            make_entry("pdq", v, category=c) for v, c in zip(values, ("A1", "B2", "C"), strict=True)
        ]
        add_entries(session, hash_list, entries, ACTOR)
    return {"store": store, "values": values}


def match_of(session: Any, value: str, distance: int = 3) -> Match:
    entry = session.scalars(select(ListEntry).where(ListEntry.value == value)).one()
    hash_list = session.get(HashList, entry.list_id)
    return Match(
        list=hash_list.name,
        list_id=hash_list.id,
        entry_id=entry.id,
        signal_type="pdq",
        value=value,
        distance=distance,
        category=entry.category,
        labels=(),
        source="",
    )


def platform(session: Any) -> Organisation:
    return session.scalars(select(Organisation).where(Organisation.name == "platform")).one()


def record(
    store: Store, value: str, user: str, content: str, query: str | None = None, **options: Any
) -> MatchEvent | None:
    with store.session() as session:
        ref = review.ContentRef(content_id=content, user_ref=user, ip_address="192.0.2.7")
        hashes = {"pdq": query or flip_bits(value, 3), "md5": content.encode().hex()[:32]}
        return review.record_event(
            session, platform(session), ref, hashes, [match_of(session, value)], ACTOR, **options
        )


def test_one_job_per_user_ordered_by_severity_then_age(world: dict[str, Any]) -> None:
    store, (a1, b2, c) = world["store"], world["values"]
    record(store, c, "u-1", "c-1")
    record(store, b2, "u-2", "c-2")
    record(store, a1, "u-2", "c-3")  # the same user: the same job, now A1
    record(store, c, "u-3", "c-4")
    with store.session() as session:
        queue = review.review_queue(session, platform(session).id)
        assert [(job.user_ref, job.severity) for job in queue] == [
            ("u-2", 0),
            ("u-1", 6),
            ("u-3", 6),
        ]
        assert [e.content_id for e in review.job_events(session, queue[0])] == ["c-2", "c-3"]
        event = review.job_events(session, queue[0])[0]
        assert event.matches[0]["category"] == "B2" and event.ip_address == "192.0.2.7"
        hotline_id = session.scalars(
            select(Organisation.id).where(Organisation.name == "hotline")
        ).one()
        assert review.review_queue(session, hotline_id) == []
        with pytest.raises(NotFound):
            review.get_job(session, hotline_id, queue[0].id)


def test_confirm_preserves_and_tells_the_webhooks(world: dict[str, Any]) -> None:
    store, (a1, _, _) = world["store"], world["values"]
    with store.session() as session:
        webhooks.create_webhook(
            session,
            platform(session),
            "https://hooks.example/h",
            ["match", "decision"],
            ACTOR,
            bytes(32),
        )
    event = record(store, a1, "u-1", "c-1")
    assert event is not None
    with store.session() as session:
        job = review.get_job(session, platform(session).id, event.job_id or 0)
        with pytest.raises(InvalidInput):
            review.confirm(session, job, "rita", "A", ACTOR)  # the UK scale is not the industry's
        review.confirm(session, job, "rita", "A1", ACTOR, annotations=["infant"], viewed=True)
        assert job.state == JobState.CONFIRMED and job.viewed and job.annotations == ["infant"]
        assert job.preserve_until is not None
        assert job.preserve_until - job.decided_at == timedelta(days=365)  # type: ignore[operator]
        with pytest.raises(Conflict):
            review.confirm(session, job, "rita", "A1", ACTOR)
    with store.session() as session:
        events = [d.event for d in session.scalars(select(WebhookDelivery))]
        assert events == ["match", "decision"]
        actions = [a.action for a in session.scalars(select(AuditEvent))]
        assert "event.record" in actions and "job.confirmed" in actions


def test_a_false_positive_never_alerts_again_and_disputes_the_entry(
    world: dict[str, Any],
) -> None:
    store, (_, b2, c) = world["store"], world["values"]
    with store.session() as session:
        platform(session).retain_evidence = True
    vault = Vault()
    query = flip_bits(b2, 4)
    event = record(
        store, b2, "u-1", "c-1", query=query, media=b"benign", vault=vault, pdq_quality=90
    )
    assert event is not None and event.media_name in vault.files
    with store.session() as session:
        job = review.get_job(session, platform(session).id, event.job_id or 0)
        review.false_positive(session, vault, job, "rita", ACTOR, note="a landscape")
    assert vault.files == {}  # evidence deleted once the decision committed
    # The same content (the same PDQ, or a re-encoding a few bits away) is silenced ...
    assert record(store, b2, "u-9", "c-2", query=query) is None
    assert record(store, b2, "u-9", "c-3", query=flip_bits(query, 5), pdq_quality=80) is None
    # ... but not other content matching the same entry, nor other entries.
    assert record(store, b2, "u-9", "c-4", query=flip_bits(b2, 25), pdq_quality=80) is not None
    assert record(store, c, "u-9", "c-5", pdq_quality=80) is not None
    with store.session() as session:
        hotline_list = session.scalars(select(HashList)).one()
        owner = hotline_list.owner_id
        [dispute] = review.disputes(session, owner, hotline_list.id)
        assert dispute["value"] == b2 and dispute["disputes"] == 1
        with pytest.raises(NotFound):
            review.disputes(session, platform(session).id, hotline_list.id)


def test_only_good_pdq_hashes_except_their_neighbours(world: dict[str, Any]) -> None:
    """Near-blank images have low-quality PDQ hashes that sit close together: a false positive
    on one must not silence the others, which may match a list through exact hashes."""
    store, (a1, b2, c) = world["store"], world["values"]
    for value, user, quality in ((a1, "u-1", 20), (b2, "u-2", None), (c, "u-3", 90)):
        event = record(store, value, user, f"c-{user}", query=value, pdq_quality=quality)
        assert event is not None
        with store.session() as session:
            job = review.get_job(session, platform(session).id, event.job_id or 0)
            review.false_positive(session, None, job, "rita", ACTOR)
    for value, quality in ((a1, 20), (b2, 90), (c, 90)):
        # Each excepted hash itself, whatever its quality, never alerts again.
        assert record(store, value, "u-8", "c-again", query=value, pdq_quality=quality) is None
    # Its neighbours: only around a good hash, and only from a good hash.
    assert record(store, a1, "u-9", "c-1", query=flip_bits(a1, 3), pdq_quality=90) is not None
    assert record(store, b2, "u-9", "c-2", query=flip_bits(b2, 3), pdq_quality=90) is not None
    assert record(store, c, "u-9", "c-3", query=flip_bits(c, 3), pdq_quality=90) is None
    assert record(store, c, "u-9", "c-4", query=flip_bits(c, 3), pdq_quality=30) is not None
    assert record(store, c, "u-9", "c-5", query=flip_bits(c, 3)) is not None  # quality unknown


def test_a_stricter_threshold_of_the_platforms_own(world: dict[str, Any]) -> None:
    store, (a1, _, _) = world["store"], world["values"]
    with store.session() as session:
        hash_list = session.scalars(select(HashList)).one()
        with pytest.raises(InvalidInput, match="list's own 31"):
            review.set_threshold_override(session, platform(session), hash_list, "pdq", 40, ACTOR)
        review.set_threshold_override(session, platform(session), hash_list, "pdq", 2, ACTOR)
    with store.session() as session:
        ref = review.ContentRef(content_id="c-1", user_ref="u-1")
        far = match_of(session, a1, distance=3)
        assert review.record_event(session, platform(session), ref, {}, [far], ACTOR) is None
        near = match_of(session, a1, distance=2)
        assert review.record_event(session, platform(session), ref, {}, [near], ACTOR)
        hash_list = session.scalars(select(HashList)).one()
        review.set_threshold_override(session, platform(session), hash_list, "pdq", None, ACTOR)
        assert review.record_event(session, platform(session), ref, {}, [far], ACTOR)
        assert len(session.scalars(select(ReviewJob)).all()) == 1


def test_bad_references_are_refused(world: dict[str, Any]) -> None:
    store, (a1, _, _) = world["store"], world["values"]
    for content, user in (("", "u"), ("c", " "), ("c" * 201, "u")):
        with pytest.raises(InvalidInput):
            record(store, a1, user, content)


def test_purge_removes_what_is_past_its_period_and_keeps_the_rest(world: dict[str, Any]) -> None:
    store, (a1, b2, c) = world["store"], world["values"]
    vault = Vault()
    with store.session() as session:
        review.configure_evidence(
            session, platform(session), ACTOR, retain_evidence=True, unconfirmed_days=90
        )
    kept = {
        user: record(store, value, user, f"c-{user}", media=b"benign", vault=vault)
        for user, value in (("u-1", a1), ("u-2", b2), ("u-3", c))
    }
    with store.session() as session:
        org = platform(session)
        confirmed = review.get_job(session, org.id, kept["u-1"].job_id or 0)  # type: ignore[union-attr]
        review.confirm(session, confirmed, "rita", "A1", ACTOR, annotations=["infant"])
        denied = review.get_job(session, org.id, kept["u-3"].job_id or 0)  # type: ignore[union-attr]
        review.false_positive(session, vault, denied, "rita", ACTOR)
    assert len(vault.files) == 2  # the false positive's evidence went with the decision
    start = utcnow()
    with store.session() as session:
        nothing = review.purge(session, vault, now=start + timedelta(days=30))
    assert not any(nothing.values()) and len(vault.files) == 2
    with store.session() as session:
        counts = review.purge(session, vault, now=start + timedelta(days=100))
    assert counts["unconfirmed_events"] == 2 and counts["open_jobs_deleted"] == 1
    assert counts["confirmed_events"] == 0 and len(vault.files) == 1  # the confirmed one's
    with store.session() as session:
        jobs = {job.id: job for job in session.scalars(select(ReviewJob))}
        assert set(jobs) == {confirmed.id, denied.id}  # the open job left empty is gone
        assert jobs[denied.id].user_ref == review.PURGED
        assert [e.content_id for e in review.job_events(session, jobs[confirmed.id])] == ["c-u-1"]
    with store.session() as session:
        counts = review.purge(session, vault, now=start + timedelta(days=366))
    assert counts["confirmed_jobs"] == 1 and counts["confirmed_events"] == 1
    assert vault.files == {}
    with store.session() as session:
        job = session.get(ReviewJob, confirmed.id)
        assert job is not None and job.user_ref == review.PURGED and job.annotations == []
        assert job.classification == "A1"  # the decision itself stays on record
        assert session.scalars(select(MatchEvent)).all() == []
        purges = session.scalars(select(AuditEvent).where(AuditEvent.action == "review.purge"))
        assert [p.detail["counts"]["media_deleted"] for p in purges] == [1, 1]


def test_evidence_settings_are_checked_and_audited(world: dict[str, Any]) -> None:
    store = world["store"]
    with store.session() as session:
        org = platform(session)
        for bad in ({"preserve_days": 0}, {"unconfirmed_days": 10**6}):
            with pytest.raises(InvalidInput):
                review.configure_evidence(session, org, ACTOR, **bad)
        review.configure_evidence(session, org, ACTOR, preserve_days=730)
        assert (org.preserve_days, org.retain_evidence) == (730, False)
    with store.session() as session:
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "settings.evidence")
        )
        assert event.detail == {"preserve_days": 730}


def test_kept_media_is_removed_when_the_recording_rolls_back(world: dict[str, Any]) -> None:
    store, (a1, _, _) = world["store"], world["values"]
    vault = Vault()
    with store.session() as session:
        platform(session).retain_evidence = True
    with pytest.raises(RuntimeError), store.session() as session:
        ref = review.ContentRef(content_id="c-1", user_ref="u-1")
        match = match_of(session, a1)
        org = platform(session)
        review.record_event(session, org, ref, {}, [match], ACTOR, media=b"x", vault=vault)
        assert len(vault.files) == 1
        raise RuntimeError("the request failed later")
    assert vault.files == {}
    with store.session() as session:
        assert session.scalars(select(MatchEvent)).all() == []


def test_two_reviewers_deciding_at_once_settle_it_once(world: dict[str, Any]) -> None:
    store, (a1, _, _) = world["store"], world["values"]
    event = record(store, a1, "u-1", "c-1")
    assert event is not None
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(reviewer: str) -> None:
        try:
            with store.session() as session:
                job = review.get_job(session, platform(session).id, event.job_id or 0)
                start.wait()
                review.confirm(session, job, reviewer, "A1", ACTOR)
            outcomes.append("confirmed")
        except Exception as exc:  # Conflict on PostgreSQL; a refused stale write on SQLite
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=decide, args=(name,)) for name in ("rita", "sam")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes).count("confirmed") == 1, outcomes
    with store.session() as session:
        audit_rows = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "job.confirmed")
        ).all()
        assert len(audit_rows) == 1
