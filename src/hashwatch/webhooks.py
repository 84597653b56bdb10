"""Signed webhooks: an organisation hears of its matches and decisions at its own URLs.

A message is queued as a WebhookDelivery in the same transaction as the change it reports, so a
change that rolls back sends nothing, and a committed one is sent even if the process restarts.
`deliver_due` posts what is due and retries failures with exponential backoff, recording every
attempt (the delivery log).

Each delivery is signed: `X-Hashwatch-Signature: t=<unix time>,v1=<hex>`, where hex is
HMAC-SHA256 over `<t>.` followed by the body, keyed with the webhook's secret. A receiver that
checks the signature, refuses a timestamp older than a few minutes and remembers the delivery ids
it has taken (`X-Hashwatch-Delivery`) detects a tampered body and a replayed delivery
(docs/webhooks.md shows how).

The secret is never stored. It is derived from the server's webhook key (HASHWATCH_WEBHOOK_KEY)
and the webhook's random salt, shown once when the webhook is made, and derived again to sign.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx2
from sqlalchemy import select
from sqlalchemy.orm import Session

from hashwatch import audit
from hashwatch.errors import InvalidInput, NotFound
from hashwatch.store import Store
from hashwatch.store.models import Organisation, Webhook, WebhookDelivery, utcnow

__all__ = [
    "EVENTS",
    "KEY_ENV",
    "MAX_ATTEMPTS",
    "create_webhook",
    "deliver_due",
    "deliveries",
    "disable_webhook",
    "enqueue",
    "list_webhooks",
    "server_key",
    "sign",
    "verify",
    "webhook_secret",
]

KEY_ENV = "HASHWATCH_WEBHOOK_KEY"
#: What a webhook can take: "match" (a match event recorded) and "decision" (a job decided).
EVENTS = ("match", "decision")
#: Attempts before a delivery is given up (marked failed); the waits double from FIRST_RETRY up
#: to LONGEST_RETRY, so ten attempts span about five hours.
MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
#: Seconds a receiver should accept a signature's timestamp for.
TOLERANCE = 300
TIMEOUT = 10.0
MAX_URL = 500


def server_key(raw: str | None = None) -> bytes:
    """The server's webhook key: `raw`, else HASHWATCH_WEBHOOK_KEY (URL-safe base64, 32 bytes)."""
    text = raw if raw is not None else os.environ.get(KEY_ENV, "")
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise InvalidInput(
            f"{KEY_ENV} must hold 32 bytes in URL-safe base64: make one with "
            "`hashwatch media-key` and set it in the server's environment"
        )
    return key


def webhook_secret(webhook: Webhook, key: bytes) -> str:
    """The webhook's signing secret, derived again from the server's key and its salt."""
    digest = hmac.new(key, webhook.secret_salt.encode(), hashlib.sha256).digest()
    return "whsec_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def create_webhook(
    session: Session,
    organisation: Organisation,
    url: str,
    events: Sequence[str],
    actor: str,
    key: bytes,
) -> tuple[Webhook, str]:
    """A new webhook and its signing secret, which is shown this once and never stored."""
    clean = url.strip()
    parts = urlsplit(clean)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(clean) > MAX_URL:
        raise InvalidInput(f"a webhook URL must be http(s) and at most {MAX_URL} characters")
    chosen = sorted(set(events))
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown or not chosen:
        raise InvalidInput(f"webhook events must be some of {', '.join(EVENTS)}")
    webhook = Webhook(
        organisation_id=organisation.id,
        url=clean,
        events=chosen,
        secret_salt=secrets.token_hex(16),
        created_by=actor,
        created_at=utcnow(),
    )
    session.add(webhook)
    session.flush()
    audit.record(
        session,
        actor,
        "webhook.create",
        organisation_id=organisation.id,
        webhook_id=webhook.id,
        url=clean,
        events=chosen,
    )
    return webhook, webhook_secret(webhook, key)


def list_webhooks(session: Session, organisation_id: int) -> list[Webhook]:
    query = select(Webhook).where(Webhook.organisation_id == organisation_id)
    return list(session.scalars(query.order_by(Webhook.id)))


def _own(session: Session, organisation_id: int, webhook_id: int) -> Webhook:
    webhook = session.get(Webhook, webhook_id)
    if webhook is None or webhook.organisation_id != organisation_id:
        raise NotFound(f"no webhook with id {webhook_id}")
    return webhook


def disable_webhook(session: Session, organisation_id: int, webhook_id: int, actor: str) -> Webhook:
    """Stop sending to a webhook; its deliveries not yet sent are dropped, the log stays."""
    webhook = _own(session, organisation_id, webhook_id)
    if webhook.disabled_at is None:
        webhook.disabled_at = utcnow()
        audit.record(
            session,
            actor,
            "webhook.disable",
            organisation_id=organisation_id,
            webhook_id=webhook.id,
        )
        session.flush()
    return webhook


def deliveries(
    session: Session, organisation_id: int, webhook_id: int, limit: int = 100
) -> list[WebhookDelivery]:
    """The webhook's delivery log, newest first."""
    webhook = _own(session, organisation_id, webhook_id)
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
    return list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)))


def enqueue(session: Session, organisation_id: int, event: str, payload: dict[str, Any]) -> int:
    """Queue `payload` for every enabled webhook of the organisation that takes `event`, in the
    caller's transaction; the number queued. One query when the organisation has none."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    hooks = session.scalars(
        select(Webhook).where(
            Webhook.organisation_id == organisation_id, Webhook.disabled_at.is_(None)
        )
    ).all()
    now = utcnow()
    queued = 0
    for webhook in hooks:
        if event not in webhook.events:
            continue
        delivery = WebhookDelivery(
            webhook_id=webhook.id,
            event=event,
            body="",
            created_at=now,
            attempts=0,
            next_attempt_at=now,
        )
        session.add(delivery)
        session.flush()  # the id goes into the body, so that receivers can drop replays
        delivery.body = json.dumps(
            {"id": delivery.id, "event": event, "created_at": now.isoformat(), "data": payload},
            separators=(",", ":"),
            sort_keys=True,
            default=str,
        )
        queued += 1
    if queued:
        session.flush()
    return queued


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Hashwatch-Signature value for this body at this time."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: int = TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether `header` signs `body` with `secret`, at a time within `tolerance` seconds of now.

    This is the receiver's check (docs/webhooks.md): a changed body, another secret, an old
    timestamp or a malformed header all fail. Replays within the tolerance are caught by the
    receiver remembering delivery ids."""
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, value)
    try:
        timestamp = int(fields["t"])
        presented = fields["v1"]
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, presented)


def deliver_due(
    store: Store,
    key: bytes,
    *,
    client: httpx2.Client | None = None,
    now: datetime | None = None,
    limit: int = 100,
) -> int:
    """Post the deliveries that are due; return how many were delivered.

    A 2xx answer delivers. Anything else (another status, a timeout, a refused connection) is
    recorded and retried after 30 s, 1 min, 2 min, ... up to an hour between tries; after
    MAX_ATTEMPTS the delivery is marked failed. Deliveries to disabled webhooks are dropped."""
    moment = now or utcnow()
    owned = client is None
    http = client or httpx2.Client(timeout=TIMEOUT, follow_redirects=False)
    delivered = 0
    try:
        with store.session() as session:
            due = session.execute(
                select(WebhookDelivery, Webhook)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(
                    WebhookDelivery.delivered_at.is_(None),
                    WebhookDelivery.failed_at.is_(None),
                    WebhookDelivery.next_attempt_at <= moment,
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(limit)
                # PostgreSQL: workers sending at once take different deliveries. (SQLite has no
                # row locks; receivers drop a repeat by its delivery id.)
                .with_for_update(skip_locked=True, of=WebhookDelivery)
            ).all()
            for delivery, webhook in due:
                if webhook.disabled_at is not None:
                    delivery.failed_at = moment
                    delivery.last_error = "the webhook was disabled"
                    continue
                if _send(http, delivery, webhook, key, moment):
                    delivered += 1
    finally:
        if owned:
            http.close()
    return delivered


def _send(
    http: httpx2.Client,
    delivery: WebhookDelivery,
    webhook: Webhook,
    key: bytes,
    moment: datetime,
) -> bool:
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "hashwatch-webhooks",
        "X-Hashwatch-Event": delivery.event,
        "X-Hashwatch-Delivery": str(delivery.id),
        "X-Hashwatch-Signature": sign(webhook_secret(webhook, key), int(time.time()), body),
    }
    delivery.attempts += 1
    try:
        response = http.post(webhook.url, content=body, headers=headers)
    except httpx2.HTTPError as exc:
        delivery.last_status = None
        delivery.last_error = f"{type(exc).__name__}: {exc}"[:500]
    else:
        delivery.last_status = response.status_code
        if 200 <= response.status_code < 300:
            delivery.delivered_at = moment
            delivery.last_error = None
            delivery.next_attempt_at = None
            return True
        delivery.last_error = f"answered {response.status_code}"
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.failed_at = moment
        delivery.next_attempt_at = None
    else:
        wait = min(FIRST_RETRY * 2 ** (delivery.attempts - 1), LONGEST_RETRY)
        delivery.next_attempt_at = moment + wait
    return False
