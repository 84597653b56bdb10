"""Organisations: every hash list has an owner. The CLI acts as one local organisation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from hashwatch.errors import InvalidInput
from hashwatch.store.models import Organisation, utcnow

__all__ = ["DEFAULT_ORGANISATION", "get_or_create_organisation"]

#: The organisation the CLI works as when none is named.
DEFAULT_ORGANISATION = "local"


def get_or_create_organisation(session: Session, name: str = DEFAULT_ORGANISATION) -> Organisation:
    clean = name.strip()
    if not clean or len(clean) > 200:
        raise InvalidInput("organisation name must be 1 to 200 characters")
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
