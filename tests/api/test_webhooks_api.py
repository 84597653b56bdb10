"""Webhooks over the API: made with the secret shown once, listed, disabled, their log read;
an `admin` key of the organisation only."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import pytest

from hashwatch import webhooks
from tests.api.conftest import Service
from tests.test_webhooks import Receiver


@pytest.fixture
def webhook_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(webhooks.KEY_ENV, base64.urlsafe_b64encode(bytes(32)).decode())


@pytest.mark.usefixtures("webhook_key")
def test_make_list_disable_and_read_the_log(service: Service) -> None:
    made = service.post("/v1/webhooks", "platform", json={"url": "https://receiver.example/hook"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["decision", "match"]
    listed = service.get("/v1/webhooks", "platform").json()["webhooks"]
    assert [w["id"] for w in listed] == [body["id"]] and listed[0]["secret"] is None
    assert service.get("/v1/webhooks", "hotline").json()["webhooks"] == []
    hook = f"/v1/webhooks/{body['id']}"
    assert service.get(f"{hook}/deliveries", "hotline").status_code == 404
    assert service.client.delete(hook, headers=service.headers("hotline")).status_code == 404
    log = service.get(f"{hook}/deliveries", "platform")
    assert log.status_code == 200 and log.json()["deliveries"] == []
    gone = service.client.delete(hook, headers=service.headers("platform"))
    assert gone.status_code == 200 and gone.json()["disabled_at"] is not None
    bad = service.post("/v1/webhooks", "platform", json={"url": "ftp://x/y"})
    assert bad.status_code == 400
    unknown = service.post("/v1/webhooks", "platform", json={"url": "https://x", "events": ["x"]})
    assert unknown.status_code == 422
    no_admin = service.client.get("/v1/webhooks", headers=service.headers("platform", "match"))
    assert no_admin.status_code == 403
    assert service.client.get("/v1/webhooks").status_code == 401


def test_without_a_webhook_key_making_one_is_503(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(webhooks.KEY_ENV, raising=False)
    refused = service.post("/v1/webhooks", "platform", json={"url": "https://x.example/h"})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "webhooks_unavailable"


def test_the_service_sends_deliveries_and_logs_them(service: Service) -> None:
    """The service's own thread (the `service` fixture sets a webhook key) signs and sends a
    queued delivery to a receiver on 127.0.0.1, and the log over the API says so."""
    receiver = Receiver()
    try:
        made = service.post("/v1/webhooks", "platform", json={"url": receiver.url})
        assert made.status_code == 201, made.text
        secret, hook = made.json()["secret"], made.json()["id"]
        with service.store.session() as session:
            webhooks.enqueue(session, service.org("platform"), "decision", {"job_id": 3})
        deadline = time.monotonic() + 10
        while not receiver.received:
            assert time.monotonic() < deadline, "nothing was delivered"
            time.sleep(0.05)
        headers, body = receiver.received[0]
        assert webhooks.verify(secret, headers["X-Hashwatch-Signature"], body)
        assert headers["X-Hashwatch-Event"] == "decision"
        assert json.loads(body)["data"] == {"job_id": 3}
        deadline = time.monotonic() + 10
        while True:
            [logged] = service.get(f"/v1/webhooks/{hook}/deliveries", "platform").json()[
                "deliveries"
            ]
            if logged["delivered_at"] is not None:
                break
            assert time.monotonic() < deadline, logged
            time.sleep(0.05)
        assert logged["attempts"] == 1 and logged["last_status"] == 204
        assert str(logged["id"]) == headers["X-Hashwatch-Delivery"]
    finally:
        receiver.close()


@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_without_a_good_key_the_service_runs_and_sends_nothing(
    make_service: Any, monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    if key is None:
        monkeypatch.delenv(webhooks.KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(webhooks.KEY_ENV, key)
    service = make_service()
    assert service.client.get("/readyz").status_code == 200
    deadline = time.monotonic() + 5  # a bad key: the thread logs why and ends
    while any(t.name == "hashwatch-webhooks" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the delivery thread runs without a good key"
        time.sleep(0.05)
    refused = service.post("/v1/webhooks", "platform", json={"url": "https://x.example/h"})
    assert refused.status_code == 503
