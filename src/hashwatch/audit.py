"""The audit log: one row per change, saying who did what to which list, and when."""

from __future__ import annotations

import getpass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hashwatch.store.models import AuditEvent, HashList

__all__ = ["local_user", "recent_events", "record"]


def record(
    session: Session,
    actor: str,
    action: str,
    hash_list: HashList | None = None,
    organisation_id: int | None = None,
    **detail: Any,
) -> AuditEvent:
    """Add an audit event to the session's transaction: it commits or rolls back with the change."""
    if hash_list is not None:
        organisation_id = hash_list.owner_id
        detail = {"list": hash_list.name, **detail}
    event = AuditEvent(
        actor=actor,
        action=action,
        organisation_id=organisation_id,
        list_id=hash_list.id if hash_list is not None else None,
        detail=detail,
    )
    session.add(event)
    return event


def recent_events(
    session: Session, organisation_id: int, list_id: int | None = None, limit: int = 100
) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.organisation_id == organisation_id)
    if list_id is not None:
        query = query.where(AuditEvent.list_id == list_id)
    return list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)))


def local_user() -> str:
    """The operating-system user running a local command, for the audit trail's actor."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
