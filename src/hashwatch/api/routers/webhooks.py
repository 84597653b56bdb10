"""An organisation's webhooks (scope `admin`): made, listed, disabled, and their delivery log.

The signing secret is in the answer to POST, once; the server keeps no copy of it
(hashwatch.webhooks). Another organisation's webhook is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from hashwatch import webhooks
from hashwatch.api.auth import get_state, require
from hashwatch.api.errors import ApiError
from hashwatch.api.state import Principal
from hashwatch.errors import InvalidInput
from hashwatch.store.models import Organisation, Webhook, WebhookDelivery

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

Admin = Annotated[Principal, Depends(require("admin"))]
WebhookId = Annotated[int, Path(ge=1, le=2**53, description="The webhook's id")]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=500)
    events: list[Literal["match", "decision"]] = Field(default=["match", "decision"], min_length=1)


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    created_at: str
    disabled_at: str | None
    secret: str | None = Field(default=None, description="Only when the webhook is made.")


class WebhooksOut(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: int
    event: str
    created_at: str
    attempts: int
    next_attempt_at: str | None
    delivered_at: str | None
    failed_at: str | None
    last_status: int | None
    last_error: str | None


class DeliveriesOut(BaseModel):
    deliveries: list[DeliveryOut]


@router.post(
    "",
    summary="Make a webhook; its secret is shown this once",
    status_code=201,
    response_model=WebhookOut,
)
def create(request: Request, who: Admin, body: WebhookIn) -> dict[str, Any]:
    try:
        key = webhooks.server_key()
    except InvalidInput as exc:  # the server's configuration, not the request, is at fault
        raise ApiError(503, "webhooks_unavailable", str(exc)) from None
    with get_state(request).store.session() as session:
        organisation = session.get(Organisation, who.organisation_id)
        assert organisation is not None
        made, secret = webhooks.create_webhook(
            session, organisation, body.url, body.events, who.actor, key
        )
        return {**_webhook_json(made), "secret": secret}


@router.get("", summary="Your organisation's webhooks", response_model=WebhooksOut)
def list_all(request: Request, who: Admin) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        found = webhooks.list_webhooks(session, who.organisation_id)
        return {"webhooks": [_webhook_json(w) for w in found]}


@router.delete("/{webhook_id}", summary="Stop sending to a webhook", response_model=WebhookOut)
def disable(request: Request, who: Admin, webhook_id: WebhookId) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        hook = webhooks.disable_webhook(session, who.organisation_id, webhook_id, who.actor)
        return _webhook_json(hook)


@router.get(
    "/{webhook_id}/deliveries",
    summary="The delivery log, newest first",
    response_model=DeliveriesOut,
)
def delivery_log(request: Request, who: Admin, webhook_id: WebhookId) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        log = webhooks.deliveries(session, who.organisation_id, webhook_id)
        return {"deliveries": [_delivery_json(d) for d in log]}


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "events": list(hook.events),
        "created_at": hook.created_at.isoformat(),
        "disabled_at": _when(hook.disabled_at),
    }


def _delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event": delivery.event,
        "created_at": delivery.created_at.isoformat(),
        "attempts": delivery.attempts,
        "next_attempt_at": _when(delivery.next_attempt_at),
        "delivered_at": _when(delivery.delivered_at),
        "failed_at": _when(delivery.failed_at),
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
    }
