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

import httpx2
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


def test_a_header_a_sender_could_garble_is_refused_not_an_error() -> None:
    body = b"{}"
    now = 1_800_000_000
    good = webhooks.sign("whsec_x", now, body)
    assert webhooks.verify("whsec_x", good, body, now=now + 299)
    assert not webhooks.verify("whsec_x", good, body, now=now + 301)
    assert not webhooks.verify("whsec_x", good, body, now=now - 301)  # from the future
    for broken in (f"t={now},v1=é", "t=é,v1=00", "t", ",,,", f"t={now},v1="):
        assert not webhooks.verify("whsec_x", broken, body, now=now)


def test_retries_double_from_30_seconds_up_to_an_hour() -> None:
    waits = [webhooks.retry_delay(n).total_seconds() for n in range(1, webhooks.MAX_ATTEMPTS)]
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_a_delivery_being_sent_is_not_taken_by_another_sender(store: Store) -> None:
    """Two senders at once (two workers' threads) send a delivery once: the second finds it
    claimed, on SQLite as on PostgreSQL."""
    _platform(store, "http://receiver.invalid/hook")
    with store.session() as session:
        organisation_id = session.scalars(select(Webhook.organisation_id)).one()
        webhooks.enqueue(session, organisation_id, "match", {"job_id": 1})
    moment = utcnow()
    posts: list[str] = []
    nested: list[int] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        posts.append(request.headers["X-Hashwatch-Delivery"])
        if not nested:  # another sender runs while this one waits on the receiver
            nested.append(webhooks.deliver_due(store, KEY, client=client, now=moment))
        return httpx2.Response(200)

    client = httpx2.Client(transport=httpx2.MockTransport(answer))
    assert webhooks.deliver_due(store, KEY, client=client, now=moment) == 1
    assert nested == [0] and len(posts) == 1
    with store.session() as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert delivery.attempts == 1 and delivery.delivered_at is not None


def test_a_sender_that_died_mid_send_is_retried_after_its_claim(store: Store) -> None:
    _platform(store, "http://receiver.invalid/hook")
    with store.session() as session:
        organisation_id = session.scalars(select(Webhook.organisation_id)).one()
        webhooks.enqueue(session, organisation_id, "match", {})
    moment = utcnow()

    def crash(request: httpx2.Request) -> httpx2.Response:
        raise KeyboardInterrupt  # stands for the process dying: nothing is recorded

    with pytest.raises(KeyboardInterrupt):
        webhooks.deliver_due(
            store, KEY, client=httpx2.Client(transport=httpx2.MockTransport(crash)), now=moment
        )
    ok = httpx2.Client(transport=httpx2.MockTransport(lambda request: httpx2.Response(204)))
    assert webhooks.deliver_due(store, KEY, client=ok, now=moment) == 0  # still claimed
    later = moment + webhooks.CLAIM + timedelta(seconds=1)
    assert webhooks.deliver_due(store, KEY, client=ok, now=later) == 1


def test_disabling_drops_what_was_waiting_at_once(store: Store) -> None:
    _platform(store, "http://receiver.invalid/hook")
    with store.session() as session:
        hook = session.scalars(select(Webhook)).one()
        webhooks.enqueue(session, hook.organisation_id, "match", {})
    with store.session() as session:
        webhooks.disable_webhook(session, hook.organisation_id, hook.id, "test")
        [delivery] = webhooks.deliveries(session, hook.organisation_id, hook.id)
        assert delivery.failed_at is not None and delivery.next_attempt_at is None
        assert delivery.last_error == "the webhook was disabled" and delivery.attempts == 0
