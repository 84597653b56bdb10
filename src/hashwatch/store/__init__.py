"""Persistence: SQLAlchemy 2 models, store set-up and Alembic migrations (SQLite and PostgreSQL)."""

from __future__ import annotations

from hashwatch.store.database import DEFAULT_URL, Store, migrate, open_store, resolve_url
from hashwatch.store.models import (
    CATEGORIES,
    AuditEvent,
    ChangeKind,
    HashList,
    ListEntry,
    Organisation,
)

__all__ = [
    "CATEGORIES",
    "DEFAULT_URL",
    "AuditEvent",
    "ChangeKind",
    "HashList",
    "ListEntry",
    "Organisation",
    "Store",
    "migrate",
    "open_store",
    "resolve_url",
]
