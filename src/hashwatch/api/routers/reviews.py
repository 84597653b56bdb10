"""A platform's review of its matches over the API (scope `review`): the queue of jobs, a job
with its events, decisions; a stricter threshold of the organisation's own for a list it
matches; and, for a list's owner, the disputes platforms raised (scope `lists:read`).

Decisions name the reviewer (a person of the platform, recorded as given). Another
organisation's job or list is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from hashwatch import review, sharing
from hashwatch.api.auth import get_state, require
from hashwatch.api.media import image_response
from hashwatch.api.schemas import MAX_ID
from hashwatch.api.state import Principal
from hashwatch.store.models import MatchEvent, Organisation, ReviewJob

router = APIRouter(tags=["reviews"])

Reviewer = Annotated[Principal, Depends(require("review"))]
Reader = Annotated[Principal, Depends(require("lists:read"))]
Admin = Annotated[Principal, Depends(require("admin"))]
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="The review job's id")]
ListId = Annotated[int, Path(ge=1, le=MAX_ID, description="The list's id")]
EventId = Annotated[int, Path(ge=1, le=MAX_ID, description="The match event's id")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfirmIn(_Strict):
    reviewer: str = Field(min_length=1, max_length=200)
    classification: Literal["A1", "A2", "B1", "B2"]
    annotations: list[str] = Field(default_factory=list, max_length=32)
    viewed: bool = False


class FalsePositiveIn(_Strict):
    reviewer: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=1000)


class EvidenceIn(_Strict):
    retain_evidence: bool | None = None
    preserve_days: int | None = Field(default=None, ge=1, le=3650)
    unconfirmed_days: int | None = Field(default=None, ge=1, le=3650)


class OverrideIn(_Strict):
    signal_type: str = Field(min_length=1, max_length=32)
    threshold: int | None = Field(ge=0, le=256)


@router.get("/v1/reviews", summary="Open review jobs, most severe first, then oldest")
def queue(request: Request, who: Reviewer) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        jobs = review.review_queue(session, who.organisation_id)
        return {"jobs": [_job_json(job) for job in jobs]}


@router.get("/v1/reviews/{job_id}", summary="One review job with its match events (no media)")
def show(request: Request, who: Reviewer, job_id: JobId) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        job = review.get_job(session, who.organisation_id, job_id)
        events = review.job_events(session, job)
        return {**_job_json(job), "events": [_event_json(e) for e in events]}


@router.post("/v1/reviews/{job_id}/confirm", summary="Confirm: act, preserve and report")
def confirm(request: Request, who: Reviewer, job_id: JobId, body: ConfirmIn) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        job = review.get_job(session, who.organisation_id, job_id)
        review.confirm(
            session,
            job,
            body.reviewer,
            body.classification,
            f"{who.actor} as {body.reviewer}",
            annotations=body.annotations,
            viewed=body.viewed,
        )
        return _job_json(job)


@router.post(
    "/v1/reviews/{job_id}/false-positive",
    summary="Not what the lists say: never alert on this content again, and tell the owners",
)
def false_positive(
    request: Request, who: Reviewer, job_id: JobId, body: FalsePositiveIn
) -> dict[str, Any]:
    state = get_state(request)
    with state.store.session() as session:
        job = review.get_job(session, who.organisation_id, job_id)
        kept = any(e.media_name for e in review.job_events(session, job))
        vault = state.media_store() if kept else None
        review.false_positive(
            session, vault, job, body.reviewer, f"{who.actor} as {body.reviewer}", note=body.note
        )
        return _job_json(job)


@router.put(
    "/v1/settings/evidence",
    summary="Keep matched media as evidence (encrypted), and for how long jobs are preserved",
)
def evidence(request: Request, who: Admin, body: EvidenceIn) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        organisation = session.get(Organisation, who.organisation_id)
        assert organisation is not None
        review.configure_evidence(
            session,
            organisation,
            who.actor,
            retain_evidence=body.retain_evidence,
            preserve_days=body.preserve_days,
            unconfirmed_days=body.unconfirmed_days,
        )
        return {
            "retain_evidence": organisation.retain_evidence,
            "preserve_days": organisation.preserve_days,
            "unconfirmed_days": organisation.unconfirmed_days,
        }


@router.put(
    "/v1/lists/{list_id}/override",
    summary="Your own stricter threshold for one signal type of a list you match (null: none)",
)
def override(request: Request, who: Reviewer, list_id: ListId, body: OverrideIn) -> dict[str, Any]:
    state = get_state(request)
    with state.store.session() as session:
        hash_list, _ = sharing.visible_list(session, who.organisation_id, list_id)
        organisation = session.get(Organisation, who.organisation_id)
        assert organisation is not None
        review.set_threshold_override(
            session, organisation, hash_list, body.signal_type, body.threshold, who.actor
        )
        return {"list_id": list_id, "signal_type": body.signal_type, "threshold": body.threshold}


@router.delete(
    "/v1/lists/{list_id}/override",
    summary="Remove your own threshold for one signal type of a list you match",
    status_code=204,
)
def remove_override(
    request: Request,
    who: Reviewer,
    list_id: ListId,
    signal_type: Annotated[str, Query(min_length=1, max_length=32)],
) -> Response:
    with get_state(request).store.session() as session:
        hash_list, _ = sharing.visible_list(session, who.organisation_id, list_id)
        organisation = session.get(Organisation, who.organisation_id)
        assert organisation is not None
        review.set_threshold_override(
            session, organisation, hash_list, signal_type, None, who.actor
        )
    return Response(status_code=204)


@router.get(
    "/v1/reviews/{job_id}/events/{event_id}/media",
    summary="The evidence kept for one event (encrypted at rest; never cached)",
    responses={404: {"description": "No such event, or no media kept for it"}},
)
def media(request: Request, who: Reviewer, job_id: JobId, event_id: EventId) -> Response:
    state = get_state(request)
    with state.store.session() as session:
        job = review.get_job(session, who.organisation_id, job_id)
        name, media_type = review.view_evidence(session, job, event_id, who.actor)
    return image_response(state.media_store().get(name), media_type, "attachment")


@router.get("/v1/lists/{list_id}/disputes", summary="Your list's entries platforms disputed")
def list_disputes(request: Request, who: Reader, list_id: ListId) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        return {"disputes": review.disputes(session, who.organisation_id, list_id)}


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _job_json(job: ReviewJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "user_ref": job.user_ref,
        "state": job.state,
        "severity": job.severity,
        "created_at": job.created_at.isoformat(),
        "decided_at": _when(job.decided_at),
        "decided_by": job.decided_by,
        "classification": job.classification,
        "annotations": list(job.annotations),
        "viewed": job.viewed,
        "preserve_until": _when(job.preserve_until),
    }


def _event_json(event: MatchEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "created_at": event.created_at.isoformat(),
        "content_id": event.content_id,
        "uploaded_at": _when(event.uploaded_at),
        "ip_address": event.ip_address,
        "extra": event.extra,
        "hashes": event.hashes,
        "matches": event.matches,
        "evidence_kept": event.media_name is not None,
    }
