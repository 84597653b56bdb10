"""Organisations: every hash list has an owner. The CLI acts as one local organisation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from hashwatch import audit
from hashwatch.errors import Conflict, InvalidInput, NotFound
from hashwatch.store.models import Organisation, utcnow

__all__ = [
    "DEFAULT_ORGANISATION",
    "create_organisation",
    "get_or_create_organisation",
    "get_organisation",
    "list_organisations",
]

#: The organisation the CLI works as when none is named.
DEFAULT_ORGANISATION = "local"


def create_organisation(session: Session, name: str, actor: str) -> Organisation:
    """A new organisation; Conflict if the name is taken."""
    clean = _clean(name)
    if session.scalar(select(Organisation.id).where(Organisation.name == clean)) is not None:
        raise Conflict(f"an organisation named {clean!r} already exists")
    organisation = get_or_create_organisation(session, clean)
    audit.record(session, actor, "organisation.create", organisation_id=organisation.id)
    return organisation


def get_organisation(session: Session, name: str) -> Organisation:
    organisation = session.scalar(select(Organisation).where(Organisation.name == _clean(name)))
    if organisation is None:
        raise NotFound(f"no organisation named {name.strip()!r}")
    return organisation


def list_organisations(session: Session) -> list[Organisation]:
    return list(session.scalars(select(Organisation).order_by(Organisation.name)))


def get_or_create_organisation(session: Session, name: str = DEFAULT_ORGANISATION) -> Organisation:
    clean = _clean(name)
    organisation = session.scalar(select(Organisation).where(Organisation.name == clean))
    if organisation is not None:
        return organisation
    # Two processes may create the same organisation at once (the first run of several CLI
    # commands): insert-if-absent lets both succeed and read the one row.
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(Organisation)
        .values(name=clean, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return session.scalars(select(Organisation).where(Organisation.name == clean)).one()


def _clean(name: str) -> str:
    clean = name.strip()
    if not clean or len(clean) > 200:
        raise InvalidInput("organisation name must be 1 to 200 characters")
    return clean
