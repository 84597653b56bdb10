"""Organisations: every hash list has an owner. The CLI acts as one local organisation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hashwatch.errors import InvalidInput
from hashwatch.store.models import Organisation

__all__ = ["DEFAULT_ORGANISATION", "get_or_create_organisation"]

#: The organisation the CLI works as when none is named.
DEFAULT_ORGANISATION = "local"


def get_or_create_organisation(session: Session, name: str = DEFAULT_ORGANISATION) -> Organisation:
    clean = name.strip()
    if not clean or len(clean) > 200:
        raise InvalidInput("organisation name must be 1 to 200 characters")
    organisation = session.scalar(select(Organisation).where(Organisation.name == clean))
    if organisation is None:
        organisation = Organisation(name=clean)
        session.add(organisation)
        session.flush()
    return organisation
