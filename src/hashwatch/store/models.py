"""The stored schema: organisations own hash lists; lists hold entries; the audit log records
who did what.

Lists live here, in tables. Match indexes are caches rebuilt from these rows (hashwatch.index).

The change feed is carried by the entries themselves: adding an entry gives it the list's next
sequence number (`added_seq`), revoking it gives it another (`revoked_seq`), and a revoked entry
is never deleted but stays as a tombstone. The feed after a cursor is then two index range scans
merged in sequence order, so a million-row import writes a million rows, not two million.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ACCESS_LEVELS",
    "AGE_BANDS",
    "CATEGORIES",
    "GRADES",
    "INDUSTRY_CATEGORIES",
    "ITEM_STATES",
    "JOB_STATES",
    "NOT_ABUSE",
    "ROLES",
    "VARIANT_KINDS",
    "ApiKey",
    "Assessment",
    "AuditEvent",
    "Base",
    "ChangeKind",
    "ConsoleSession",
    "EntryDispute",
    "HashList",
    "IntakeItem",
    "ItemState",
    "JobState",
    "ListEntry",
    "ListGrant",
    "MatchEvent",
    "MatchException",
    "Organisation",
    "ReportSubmission",
    "ReviewJob",
    "ThresholdOverride",
    "UTCDateTime",
    "User",
    "Webhook",
    "WebhookDelivery",
    "utcnow",
]

#: UK scale (A, B, C) and US industry scale (A1, A2, B1, B2): the two grading vocabularies.
CATEGORIES = ("A", "B", "C", "A1", "A2", "B1", "B2")

#: The US industry classification a platform's reviewer gives confirmed content (CyberTipline).
INDUSTRY_CATEGORIES = ("A1", "A2", "B1", "B2")

#: An analyst's grade: a category on either scale, or "none" (not abuse material).
NOT_ABUSE = "none"
GRADES = (*CATEGORIES, NOT_ABUSE)

#: Apparent age of the youngest child shown, in the bands hotlines report (a label "age:3-6").
AGE_BANDS = ("0-2", "3-6", "7-10", "11-13", "14-15", "16-17", "unknown")

#: What a person may do in the console. An analyst grades; a senior analyst also settles
#: disagreements and revokes published entries; an administrator also manages people.
ROLES = ("analyst", "senior", "admin")

#: The kinds of query variant a list can match (hashwatch.variants), all on by default.
VARIANT_KINDS = ("dihedral", "trim")

#: What a grant lets another organisation do with a list: "match" against it, or also "read" its
#: entries (the change feed and exports, which a local copy needs).
ACCESS_LEVELS = ("match", "read")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-numbers a primary key declared exactly INTEGER; PostgreSQL gets 64 bits.
Id = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them without a zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: A platform's choices for its match events (hashwatch.review): keep the matched media,
    #: encrypted, as evidence (off unless turned on); how long a confirmed job's media and
    #: metadata are preserved; how long an event nobody confirmed is kept.
    retain_evidence: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    preserve_days: Mapped[int] = mapped_column(Integer, default=365, server_default="365")
    unconfirmed_days: Mapped[int] = mapped_column(Integer, default=90, server_default="90")


class HashList(Base):
    __tablename__ = "hash_lists"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    #: Per-signal-type match thresholds that override each type's default, e.g. {"pdq": 31}.
    thresholds: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    #: Which kinds of query variant match this list (hashwatch.variants): "dihedral" (the
    #: query's rotations and flips) and "trim" (the query with uniform borders cut off).
    variants: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: list(VARIANT_KINDS), server_default='["dihedral", "trim"]'
    )
    #: Independent, agreeing grades an intake item needs before it is published to this list.
    required_grades: Mapped[int] = mapped_column(Integer, default=2, server_default="2")
    #: Which entry hashes (hashwatch.entryhashes) are made when the owner lists an image itself:
    #: "crops+tones" (the default design), "crops", "crops+tilts", "wide" or "none". Lists made
    #: before the tone hashes existed (migration 0007's server default) keep "crops".
    entry_hashes: Mapped[str] = mapped_column(
        String(16), default="crops+tones", server_default="crops"
    )
    #: The sequence number of the list's latest change; the next change gets last_seq + 1.
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set on a local copy of another server's list (`hashwatch sync`): where it comes from, and
    #: the sequence number of the origin's feed applied so far. A copy changes only by sync.
    origin_url: Mapped[str | None] = mapped_column(String(500))
    origin_list_id: Mapped[int | None] = mapped_column(BigInteger)
    origin_cursor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    owner: Mapped[Organisation] = relationship(lazy="raise")


class ListEntry(Base):
    __tablename__ = "list_entries"
    __table_args__ = (
        UniqueConstraint("list_id", "signal_type", "value"),
        # The change feed: adds in sequence order, and revocations (a partial index: few rows).
        UniqueConstraint("list_id", "added_seq"),
        Index(
            "ix_list_entries_revoked_seq",
            "list_id",
            "revoked_seq",
            unique=True,
            sqlite_where=text("revoked_seq IS NOT NULL"),
            postgresql_where=text("revoked_seq IS NOT NULL"),
        ),
        CheckConstraint(
            "category IS NULL OR category IN ({})".format(", ".join(f"'{c}'" for c in CATEGORIES)),
            name="category",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("hash_lists.id"))
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(128))
    category: Mapped[str | None] = mapped_column(String(2))
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    #: A PDQ entry's entry hashes (hashwatch.entryhashes): [{"variant": "crop-left-5", "value":
    #: "<64 hex>"}, ...]; NULL for none, as on most lists (stored as SQL NULL, not JSON null).
    extra_hashes: Mapped[list[dict[str, str]] | None] = mapped_column(JSON(none_as_null=True))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    added_seq: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_seq: Mapped[int | None] = mapped_column(BigInteger)
    revoke_reason: Mapped[str | None] = mapped_column(Text)

    hash_list: Mapped[HashList] = relationship(lazy="raise")


class ListGrant(Base):
    """A list's owner lets another organisation match against the list, or also read it."""

    __tablename__ = "list_grants"
    __table_args__ = (
        UniqueConstraint("list_id", "organisation_id"),
        CheckConstraint(
            "access IN ({})".format(", ".join(f"'{a}'" for a in ACCESS_LEVELS)), name="access"
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("hash_lists.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    access: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")


class ApiKey(Base):
    """An organisation's API key. Only a SHA-256 digest of the secret is kept: keys are 256-bit
    random strings, so a slow password hash would add latency to every request and no safety."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    #: The public part of the key, shown in listings and audit records: `hw_<key_id>_<secret>`.
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChangeKind:
    """The kinds of change in a list's feed."""

    ADD = "add"
    REVOKE = "revoke"


class AuditEvent(Base):
    """Who changed what. Lists are named in `detail` too, so the record outlives the list."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    action: Mapped[str] = mapped_column(String(64))
    list_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class User(Base):
    """A person who works in the console: an analyst, senior analyst or administrator.

    Passwords are kept only as argon2id hashes. Failed logins are counted per account so that
    guessing is throttled (hashwatch.people)."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ({})".format(", ".join(f"'{r}'" for r in ROLES)),
            name="role",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    organisation: Mapped[Organisation] = relationship(lazy="raise")


class ConsoleSession(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is stored."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    #: Sent back with every form and state-changing request (CSRF protection).
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ItemState:
    """Where an intake item stands."""

    QUEUED = "queued"  # waiting for grades
    ESCALATED = "escalated"  # graders disagreed: a senior analyst decides
    PUBLISHED = "published"  # graded abuse material: its hashes are on the list
    REJECTED = "rejected"  # graded not abuse material: nothing published
    DUPLICATE = "duplicate"  # the same image as a listed entry or a queued item: never graded


ITEM_STATES = (
    ItemState.QUEUED,
    ItemState.ESCALATED,
    ItemState.PUBLISHED,
    ItemState.REJECTED,
    ItemState.DUPLICATE,
)


class IntakeItem(Base):
    """One image taken in for assessment for a list: its hashes, and while it waits, its media.

    The media itself lives encrypted in the media store under `media_name` and is deleted when
    the item is decided (or found to be a duplicate); the hashes and decisions stay."""

    __tablename__ = "intake_items"
    __table_args__ = (
        CheckConstraint(
            "state IN ({})".format(", ".join(f"'{s}'" for s in ITEM_STATES)), name="state"
        ),
        CheckConstraint(
            "grade IS NULL OR grade IN ({})".format(", ".join(f"'{g}'" for g in GRADES)),
            name="grade",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("hash_lists.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    md5: Mapped[str] = mapped_column(String(32))
    sha1: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    pdq: Mapped[str | None] = mapped_column(String(64))
    pdq_quality: Mapped[int | None] = mapped_column(Integer)
    #: The encrypted media's name in the media store; None once deleted (or never kept).
    media_name: Mapped[str | None] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(64), default="")
    media_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Where it came from, as the person taking it in described it (a case or report number).
    source: Mapped[str] = mapped_column(String(200), default="")
    #: Grouped with: the queued item showing the same image, or the listed entry that has it.
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("intake_items.id"))
    listed_entry_id: Mapped[int | None] = mapped_column(ForeignKey("list_entries.id"))
    #: Independent agreeing grades needed (the list's required_grades when taken in).
    required_grades: Mapped[int] = mapped_column(Integer, default=2)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    #: The decision: the agreed grade (or a senior analyst's), when, and what was published.
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    grade: Mapped[str | None] = mapped_column(String(4))
    age_band: Mapped[str | None] = mapped_column(String(8))
    entry_ids: Mapped[list[int]] = mapped_column(JSON, default=list)


class Assessment(Base):
    """One person's grade of one item, made without seeing anyone else's. `final` marks a senior
    analyst's decision of a disagreement."""

    __tablename__ = "assessments"
    __table_args__ = (
        UniqueConstraint("item_id", "user_id"),
        CheckConstraint("grade IN ({})".format(", ".join(f"'{g}'" for g in GRADES)), name="grade"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("intake_items.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    grade: Mapped[str] = mapped_column(String(4))
    age_band: Mapped[str | None] = mapped_column(String(8))
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- platforms: match events, review, actions, reports (hashwatch.review, webhooks, reports) ---


class JobState:
    """Where a review job stands."""

    OPEN = "open"  # waiting for a reviewer
    CONFIRMED = "confirmed"  # a reviewer confirmed the content: act and report
    FALSE_POSITIVE = "false_positive"  # not what the list says: never alerts again


JOB_STATES = (JobState.OPEN, JobState.CONFIRMED, JobState.FALSE_POSITIVE)


class ReviewJob(Base):
    """The review of one of a platform's users: every match event of that user while the job is
    open. Reviewed as one, so an account with many matches is one decision."""

    __tablename__ = "review_jobs"
    __table_args__ = (
        CheckConstraint(
            "state IN ({})".format(", ".join(f"'{s}'" for s in JOB_STATES)), name="state"
        ),
        CheckConstraint(
            "classification IS NULL OR classification IN ({})".format(
                ", ".join(f"'{c}'" for c in INDUSTRY_CATEGORIES)
            ),
            name="classification",
        ),
        Index("ix_review_jobs_queue", "organisation_id", "state", "severity", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    #: The platform's own reference to the user whose content matched.
    user_ref: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default=JobState.OPEN)
    #: Most severe category among the job's matches: lower is more severe (A1 = 0), for ordering.
    severity: Mapped[int] = mapped_column(Integer, default=99)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    classification: Mapped[str | None] = mapped_column(String(2))
    annotations: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Whether the reviewer viewed the media (the CyberTipline asks).
    viewed: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A confirmed job's media and metadata are kept until then, and purged after.
    preserve_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MatchEvent(Base):
    """One match made for a platform, with the platform's own reference to the content. The
    media itself is kept (encrypted) only when the organisation turned evidence retention on."""

    __tablename__ = "match_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("review_jobs.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    content_id: Mapped[str] = mapped_column(String(200))
    user_ref: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    #: Any other fields the platform passed about the content (file name, URL, ...).
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The content's own hashes by signal type, and what it matched (list, entry, distance, ...).
    hashes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: The quality of the content's PDQ hash, where the content itself was hashed here (None
    #: for a hash the platform sent).
    pdq_quality: Mapped[int | None] = mapped_column(Integer)
    media_name: Mapped[str | None] = mapped_column(String(64))
    media_type: Mapped[str | None] = mapped_column(String(64))


class MatchException(Base):
    """A hash of content a platform's reviewer found to be a false positive: content with it
    never alerts that organisation again."""

    __tablename__ = "match_exceptions"
    __table_args__ = (UniqueConstraint("organisation_id", "signal_type", "value"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(128))
    #: A PDQ hash's quality where known: only a hash of quality MIN_QUALITY or more excepts the
    #: content near it too; any other excepts its exact value alone.
    quality: Mapped[int | None] = mapped_column(Integer)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("review_jobs.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")


class EntryDispute(Base):
    """A platform's false-positive feedback on a list entry, seen by the list's owner."""

    __tablename__ = "entry_disputes"
    __table_args__ = (UniqueConstraint("entry_id", "organisation_id", "job_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("list_entries.id"), index=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("hash_lists.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("review_jobs.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")


class ThresholdOverride(Base):
    """An organisation's own, stricter match threshold for one signal type of one list."""

    __tablename__ = "threshold_overrides"
    __table_args__ = (UniqueConstraint("organisation_id", "list_id", "signal_type"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    list_id: Mapped[int] = mapped_column(ForeignKey("hash_lists.id"))
    signal_type: Mapped[str] = mapped_column(String(32))
    threshold: Mapped[int] = mapped_column(Integer)


class Webhook(Base):
    """Where an organisation wants to hear of its matches and decisions.

    The signing secret is never stored: it is derived from the server's key and `secret_salt`
    (HMAC-SHA256), shown once when the webhook is made, and derived again to sign."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    #: The kinds of event sent: "match" (an event recorded) and "decision" (a job decided).
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret_salt: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One message to one webhook, and how sending it went (the delivery log)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set when retries ran out.
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)


class ReportSubmission(Base):
    """A confirmed job's report sent to NCMEC's CyberTipline (or a test server), step by step."""

    __tablename__ = "report_submissions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("review_jobs.id"), index=True)
    base_url: Mapped[str] = mapped_column(String(500))
    #: The report id the CyberTipline gave at submission.
    remote_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="started")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
