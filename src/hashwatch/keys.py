"""API keys: an organisation's credentials for the HTTP API, each limited to some scopes.

A key is `hw_<key_id>_<secret>`. The key id is public (listings, audit records, revocation);
the secret is shown once, when the key is made, and only its SHA-256 digest is stored. The
secret carries 256 random bits, so a fast digest is as safe as a slow password hash here, and
it keeps authentication off the request's critical path.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hashwatch import audit
from hashwatch.errors import Conflict, InvalidInput, NotFound
from hashwatch.store.models import ApiKey, Organisation, utcnow

__all__ = [
    "SCOPES",
    "IssuedKey",
    "authenticate",
    "create_key",
    "key_id_of",
    "list_keys",
    "parse_scopes",
    "revoke_key",
]

#: What a key may do. `match` covers hashing and matching; `lists:read` reading lists, their
#: feeds and exports; `lists:write` creating, changing and deleting lists and entries; `admin`
#: sharing lists with other organisations; `intake` putting media into the organisation's
#: assessment queue; `assess` grading, deciding and revoking on behalf of its named analysts, and
#: reading the queue and the dashboard; `review` a platform's review of its match events
#: (queue, decisions, reports); `admin` also its webhooks and evidence settings.
SCOPES = ("match", "lists:read", "lists:write", "admin", "intake", "assess", "review")
PREFIX = "hw"


@dataclass(frozen=True)
class IssuedKey:
    """A new key: `secret` is the whole key, to hand to its user once and never again."""

    key: ApiKey
    secret: str


def parse_scopes(raw: str | Iterable[str]) -> list[str]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    scopes: list[str] = []
    for item in items:
        scope = item.strip()
        if not scope or scope in scopes:
            continue
        if scope not in SCOPES:
            raise InvalidInput(f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}")
        scopes.append(scope)
    if not scopes:
        raise InvalidInput(f"a key needs at least one scope of {', '.join(SCOPES)}")
    return scopes


def create_key(
    session: Session, organisation: Organisation, scopes: Iterable[str], actor: str, name: str = ""
) -> IssuedKey:
    chosen = parse_scopes(scopes)
    key_id = secrets.token_hex(6)
    secret = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        key_id=key_id,
        organisation_id=organisation.id,
        name=name.strip()[:200],
        secret_sha256=_digest(secret),
        scopes=chosen,
        created_at=utcnow(),
        created_by=actor,
    )
    session.add(key)
    session.flush()
    audit.record(
        session, actor, "key.create", organisation_id=organisation.id, key_id=key_id, scopes=chosen
    )
    return IssuedKey(key=key, secret=secret)


def revoke_key(session: Session, key_id: str, actor: str) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id.strip()))
    if key is None:
        raise NotFound(f"no API key with id {key_id.strip()!r}")
    if key.revoked_at is not None:
        raise Conflict(f"API key {key.key_id} was already revoked at {key.revoked_at.isoformat()}")
    key.revoked_at = utcnow()
    audit.record(
        session, actor, "key.revoke", organisation_id=key.organisation_id, key_id=key.key_id
    )
    session.flush()
    return key


def list_keys(session: Session, organisation: Organisation) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.organisation_id == organisation.id).order_by(ApiKey.id)
    return list(session.scalars(query))


def authenticate(session: Session, presented: str) -> ApiKey | None:
    """The live key that `presented` is, or None for a malformed, unknown or revoked key."""
    key_id = key_id_of(presented)
    if key_id is None:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_sha256, _digest(presented)):
        return None
    return key


def key_id_of(presented: str) -> str | None:
    """The public key id inside a presented key, or None if it is not shaped like one."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
