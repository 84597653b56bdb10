"""Webhooks: signatures a receiver can check, deliveries queued with the change, retries with
backoff, and a delivery log."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from hashwatch import webhooks
from hashwatch.errors import InvalidInput, NotFound
from hashwatch.organisations import create_organisation
from hashwatch.store import Store
from hashwatch.store.models import Organisation, Webhook, WebhookDelivery, utcnow

KEY = bytes(range(32))


class Receiver:
    """A webhook receiver on 127.0.0.1 that fails its first `failures` requests."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                failing = len(receiver.received) <= receiver.failures
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(failures=2)
    yield made
    made.close()


def _platform(store: Store, url: str, events: tuple[str, ...] = ("match", "decision")) -> str:
    with store.session() as session:
        organisation = create_organisation(session, "platform", "test")
        _, secret = webhooks.create_webhook(session, organisation, url, events, "test", KEY)
    return secret


def test_a_signature_verifies_and_tampering_fails() -> None:
    body = b'{"id":1,"event":"match"}'
    now = int(time.time())
    header = webhooks.sign("whsec_x", now, body)
    assert webhooks.verify("whsec_x", header, body)
    assert not webhooks.verify("whsec_x", header, body.replace(b"1", b"2"))
    assert not webhooks.verify("whsec_y", header, body)
    old = webhooks.sign("whsec_x", now - 3600, body)
    assert not webhooks.verify("whsec_x", old, body)  # a replay of an old delivery
    for broken in ("", "t=abc,v1=00", "v1=00", f"t={now}"):
        assert not webhooks.verify("whsec_x", broken, body)


def test_the_server_key_is_checked() -> None:
    assert webhooks.server_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8") == KEY
    for bad in ("", "short", "!!!"):
        with pytest.raises(InvalidInput, match="HASHWATCH_WEBHOOK_KEY"):
            webhooks.server_key(bad)


def test_retries_back_off_then_deliver_with_a_valid_signature(
    store: Store, receiver: Receiver
) -> None:
    secret = _platform(store, receiver.url)
    with store.session() as session:
        organisation_id = session.scalars(select(Webhook.organisation_id)).one()
        assert webhooks.enqueue(session, organisation_id, "match", {"job_id": 7}) == 1
    start = utcnow()
    assert webhooks.deliver_due(store, KEY, now=start) == 0  # answered 500
    assert webhooks.deliver_due(store, KEY, now=start + timedelta(seconds=10)) == 0  # not due
    assert len(receiver.received) == 1
    assert webhooks.deliver_due(store, KEY, now=start + timedelta(seconds=31)) == 0  # 2nd: 500
    with store.session() as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert delivery.attempts == 2 and delivery.last_status == 500
        waited = delivery.next_attempt_at - (start + timedelta(seconds=31))  # type: ignore[operator]
        assert waited == timedelta(seconds=60)  # the wait doubled
    assert webhooks.deliver_due(store, KEY, now=start + timedelta(seconds=92)) == 1
    headers, body = receiver.received[-1]
    assert webhooks.verify(secret, headers["X-Hashwatch-Signature"], body)
    message = json.loads(body)
    assert message["event"] == "match" and message["data"] == {"job_id": 7}
    assert headers["X-Hashwatch-Delivery"] == str(message["id"])
    with store.session() as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert delivery.delivered_at is not None and delivery.attempts == 3
    assert webhooks.deliver_due(store, KEY, now=start + timedelta(hours=2)) == 0  # sent once


def test_a_delivery_is_given_up_after_the_last_attempt(store: Store) -> None:
    _platform(store, "http://127.0.0.1:9/nobody-listens")
    with store.session() as session:
        organisation_id = session.scalars(select(Webhook.organisation_id)).one()
        webhooks.enqueue(session, organisation_id, "decision", {"job_id": 1})
    moment = utcnow()
    for _ in range(webhooks.MAX_ATTEMPTS):
        webhooks.deliver_due(store, KEY, now=moment)
        moment += webhooks.LONGEST_RETRY
    with store.session() as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert delivery.attempts == webhooks.MAX_ATTEMPTS
        assert delivery.failed_at is not None and delivery.last_error


def test_only_enabled_webhooks_taking_the_event_get_it(store: Store, receiver: Receiver) -> None:
    _platform(store, receiver.url, events=("decision",))
    with store.session() as session:
        hook = session.scalars(select(Webhook)).one()
        assert webhooks.enqueue(session, hook.organisation_id, "match", {}) == 0
        assert webhooks.enqueue(session, hook.organisation_id, "decision", {}) == 1
        webhooks.disable_webhook(session, hook.organisation_id, hook.id, "test")
        assert webhooks.enqueue(session, hook.organisation_id, "decision", {}) == 0
        with pytest.raises(NotFound):
            webhooks.disable_webhook(session, hook.organisation_id + 1, hook.id, "test")
    assert webhooks.deliver_due(store, KEY) == 0  # the queued one is dropped, not sent
    assert receiver.received == []
    with store.session() as session:
        hook = session.scalars(select(Webhook)).one()
        log = webhooks.deliveries(session, hook.organisation_id, hook.id)
        assert [d.last_error for d in log] == ["the webhook was disabled"]


def test_the_secret_is_never_stored_and_urls_are_checked(store: Store) -> None:
    secret = _platform(store, "https://receiver.example/hook")
    with store.session() as session:
        hook = session.scalars(select(Webhook)).one()
        assert secret not in json.dumps([str(getattr(hook, c.key)) for c in Webhook.__table__.c])
        assert webhooks.webhook_secret(hook, KEY) == secret
        organisation = hook.organisation_id
    with store.session() as session:
        owner = session.get(Organisation, organisation)
        assert owner is not None
        for url, events in (
            ("ftp://x/y", ("match",)),
            ("https://x", ()),
            ("https://x", ("upload",)),
        ):
            with pytest.raises(InvalidInput):
                webhooks.create_webhook(session, owner, url, events, "test", KEY)
