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
    "CATEGORIES",
    "VARIANT_KINDS",
    "ApiKey",
    "AuditEvent",
    "Base",
    "ChangeKind",
    "HashList",
    "ListEntry",
    "ListGrant",
    "Organisation",
    "UTCDateTime",
    "utcnow",
]

#: UK scale (A, B, C) and US industry scale (A1, A2, B1, B2): the two grading vocabularies.
CATEGORIES = ("A", "B", "C", "A1", "A2", "B1", "B2")

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
