"""Sharing: a list's owner grants other organisations access to it.

Access is "match" (match against the list, see its name and counts) or "read" (that, and read
its entries: change feed and export, which a local copy needs). Owners have every right.
Everything an organisation may see is decided here, so the API and the matcher agree on it.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hashwatch import audit
from hashwatch.errors import Forbidden, InvalidInput, ListNotFound, NotFound
from hashwatch.store.models import ACCESS_LEVELS, HashList, ListGrant, Organisation, utcnow

__all__ = [
    "OWNER",
    "grant",
    "grants_of",
    "matchable_list_ids",
    "revoke_grant",
    "visible_list",
    "visible_lists",
]

#: The access an owner has; grants give "read" or "match".
OWNER = "owner"
_RANK = {"match": 1, "read": 2, OWNER: 3}


def grant(
    session: Session, hash_list: HashList, grantee: Organisation, access: str, actor: str
) -> ListGrant:
    """Give `grantee` this access to the list, replacing any earlier grant."""
    if access not in ACCESS_LEVELS:
        raise InvalidInput(f"access must be one of {', '.join(ACCESS_LEVELS)}, got {access!r}")
    if grantee.id == hash_list.owner_id:
        raise InvalidInput("the owner already has full access to its list")
    existing = session.scalar(
        select(ListGrant).where(
            ListGrant.list_id == hash_list.id, ListGrant.organisation_id == grantee.id
        )
    )
    if existing is None:
        existing = ListGrant(
            list_id=hash_list.id,
            organisation_id=grantee.id,
            access=access,
            created_at=utcnow(),
            created_by=actor,
        )
        session.add(existing)
    else:
        existing.access = access
    session.flush()
    audit.record(session, actor, "list.grant", hash_list, organisation=grantee.name, access=access)
    return existing


def revoke_grant(session: Session, hash_list: HashList, grantee: Organisation, actor: str) -> None:
    removed = session.execute(
        delete(ListGrant).where(
            ListGrant.list_id == hash_list.id, ListGrant.organisation_id == grantee.id
        )
    )
    if not removed.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"organisation {grantee.name!r} has no grant on list {hash_list.name!r}")
    audit.record(session, actor, "list.ungrant", hash_list, organisation=grantee.name)
    session.flush()


def grants_of(session: Session, hash_list: HashList) -> list[tuple[ListGrant, str]]:
    """The list's grants with each grantee's name, in the order they were made."""
    rows = session.execute(
        select(ListGrant, Organisation.name)
        .join(Organisation, Organisation.id == ListGrant.organisation_id)
        .where(ListGrant.list_id == hash_list.id)
        .order_by(ListGrant.id)
    ).all()
    return [(row[0], row[1]) for row in rows]


def visible_lists(session: Session, organisation_id: int) -> list[tuple[HashList, str]]:
    """Every list the organisation owns or was granted, with its access, by list id."""
    owned = session.scalars(select(HashList).where(HashList.owner_id == organisation_id))
    granted = session.execute(
        select(HashList, ListGrant.access)
        .join(ListGrant, ListGrant.list_id == HashList.id)
        .where(ListGrant.organisation_id == organisation_id)
    ).all()
    found = [(hash_list, OWNER) for hash_list in owned]
    found += [(row[0], row[1]) for row in granted]
    return sorted(found, key=lambda item: item[0].id)


def visible_list(
    session: Session, organisation_id: int, list_id: int, needs: str = "match"
) -> tuple[HashList, str]:
    """The list with the organisation's access to it, if that is at least `needs`.

    A list the organisation may not see is answered exactly like one that does not exist, by
    the same single query, so nobody learns of another organisation's lists by probing ids.
    """
    row = session.execute(
        select(HashList, ListGrant.access)
        .outerjoin(
            ListGrant,
            (ListGrant.list_id == HashList.id) & (ListGrant.organisation_id == organisation_id),
        )
        .where(HashList.id == list_id)
    ).first()
    hash_list, granted = (row[0], row[1]) if row is not None else (None, None)
    if hash_list is None or (hash_list.owner_id != organisation_id and granted is None):
        raise ListNotFound(f"no list with id {list_id}")
    access = OWNER if hash_list.owner_id == organisation_id else str(granted)
    if _RANK[access] < _RANK[needs]:
        raise Forbidden(
            f"your organisation has {access} access to list {list_id}; this needs {needs}"
        )
    return hash_list, access


def matchable_list_ids(session: Session, organisation_id: int) -> set[int]:
    """Ids of the lists the organisation may match against: owned or granted (any access)."""
    owned = select(HashList.id).where(HashList.owner_id == organisation_id)
    granted = select(ListGrant.list_id).where(ListGrant.organisation_id == organisation_id)
    return set(session.scalars(owned)) | set(session.scalars(granted))
