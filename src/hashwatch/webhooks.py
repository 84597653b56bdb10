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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx2
from sqlalchemy import select, update
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
    "retry_delay",
    "server_key",
    "sign",
    "verify",
    "webhook_secret",
]

KEY_ENV = "HASHWATCH_WEBHOOK_KEY"
#: What a webhook can take: "match" (a match event recorded) and "decision" (a job decided).
EVENTS = ("match", "decision")
#: Attempts before a delivery is given up (marked failed); the waits double from FIRST_RETRY up
#: to LONGEST_RETRY, so the ten attempts span about three hours (11,010 s).
MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
#: Seconds a receiver should accept a signature's timestamp for.
TOLERANCE = 300
TIMEOUT = 10.0
MAX_URL = 500
#: How long a delivery being sent is left alone by other workers; if the sender dies mid-send,
#: it is tried again after this. Longer than a send can take (TIMEOUT).
CLAIM = timedelta(seconds=60)
DISABLED = "the webhook was disabled"


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
        # Dropped now, not when each falls due, so the log says so at once.
        session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.webhook_id == webhook.id,
                WebhookDelivery.delivered_at.is_(None),
                WebhookDelivery.failed_at.is_(None),
            )
            .values(failed_at=webhook.disabled_at, next_attempt_at=None, last_error=DISABLED)
            .execution_options(synchronize_session=False)
        )
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
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header is the sender's input.
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "replace"))


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
    MAX_ATTEMPTS the delivery is marked failed. Deliveries to disabled webhooks are dropped.

    Each delivery is claimed first (a short transaction that pushes its next attempt CLAIM
    ahead), then sent with no transaction open, then its outcome is written at once. So workers
    sending at the same time never take the same delivery, on SQLite as on PostgreSQL; a slow
    receiver holds no database connection or lock; and a process that dies mid-send leaves the
    delivery to be tried again when its claim runs out."""
    moment = now or utcnow()
    claimed = _claim(store, key, moment, limit)
    if not claimed:
        return 0
    owned = client is None
    http = client or httpx2.Client(timeout=TIMEOUT, follow_redirects=False)
    delivered = 0
    try:
        for item in claimed:
            status, error = _send(http, item)
            _record(store, item, moment, status, error)
            delivered += error is None
    finally:
        if owned:
            http.close()
    return delivered


@dataclass(frozen=True)
class _Claimed:
    id: int
    event: str
    body: str
    attempts: int
    url: str
    secret: str


def _claim(store: Store, key: bytes, moment: datetime, limit: int) -> list[_Claimed]:
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
        ).all()
        claimed: list[_Claimed] = []
        for delivery, webhook in due:
            if webhook.disabled_at is not None:  # queued as it was being disabled
                delivery.failed_at = moment
                delivery.next_attempt_at = None
                delivery.last_error = DISABLED
                continue
            # Only the worker whose update still finds the delivery due and untried gets it.
            taken = session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery.id,
                    WebhookDelivery.attempts == delivery.attempts,
                    WebhookDelivery.next_attempt_at <= moment,
                    WebhookDelivery.delivered_at.is_(None),
                    WebhookDelivery.failed_at.is_(None),
                )
                .values(next_attempt_at=moment + CLAIM)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(
                    _Claimed(
                        id=delivery.id,
                        event=delivery.event,
                        body=delivery.body,
                        attempts=delivery.attempts,
                        url=webhook.url,
                        secret=webhook_secret(webhook, key),
                    )
                )
    return claimed


def _send(http: httpx2.Client, item: _Claimed) -> tuple[int | None, str | None]:
    """The answer's status (None when there was none) and the error (None when delivered)."""
    body = item.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "hashwatch-webhooks",
        "X-Hashwatch-Event": item.event,
        "X-Hashwatch-Delivery": str(item.id),
        # The receiver's clock judges this timestamp, so it is the real time, not `now`.
        "X-Hashwatch-Signature": sign(item.secret, int(time.time()), body),
    }
    try:
        response = http.post(item.url, content=body, headers=headers, timeout=TIMEOUT)
    except httpx2.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"answered {response.status_code}"


def _record(
    store: Store, item: _Claimed, moment: datetime, status: int | None, error: str | None
) -> None:
    with store.session() as session:
        delivery = session.get(WebhookDelivery, item.id)
        if delivery is None:
            return
        delivery.attempts = item.attempts + 1
        if delivery.failed_at is not None and error is not None:
            return  # the webhook was disabled while this was being sent
        delivery.last_status = status
        delivery.last_error = error
        if error is None:
            delivery.delivered_at = moment
            delivery.next_attempt_at = None
        elif delivery.attempts >= MAX_ATTEMPTS:
            delivery.failed_at = moment
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = moment + retry_delay(delivery.attempts)


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try: 30 s, doubling, at most an hour."""
    doubled: timedelta = FIRST_RETRY * (1 << min(max(attempts - 1, 0), 16))
    return min(doubled, LONGEST_RETRY)
