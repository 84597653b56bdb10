"""Webhooks over the API: made with the secret shown once, listed, disabled, their log read;
an `admin` key of the organisation only."""

from __future__ import annotations

import base64

import pytest

from hashwatch import webhooks
from tests.api.conftest import Service


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
