"""Intake and assessment over the JSON API (API keys with the `intake` or `assess` scope).

An API key acts for its organisation. Intake needs no person: a tool puts media into the queue
of a list the organisation owns. Every assessment action names the analyst it is done for; that
analyst must be an active user of the key's organisation (404 otherwise, as for anything of
another organisation) holding the role the action needs (403). What an analyst sees follows the
console's rules: never another analyst's grade while grading, and no media through this API.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hashwatch import assessment, people
from hashwatch.api.auth import get_state, require
from hashwatch.api.media import read_upload
from hashwatch.api.schemas import (
    MAX_ID,
    DashboardOut,
    DecisionIn,
    GradeIn,
    ItemDetailOut,
    ItemOut,
    QueueOut,
    RevokeItemIn,
)
from hashwatch.api.state import Principal, ServiceState
from hashwatch.errors import Forbidden, ListNotFound
from hashwatch.store.models import HashList, IntakeItem, ItemState, Organisation, User

router = APIRouter(tags=["assessments"])

ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="The intake item's id")]
Analyst = Annotated[
    str, Query(min_length=1, max_length=100, description="The analyst acting, by user name")
]
Intake = Annotated[Principal, Depends(require("intake"))]
Assess = Annotated[Principal, Depends(require("assess"))]

_ROLE_NAMES = {"analyst": "an analyst", "senior": "a senior analyst", "admin": "an administrator"}

#: Where a senior analyst may see every grade: the graders are done, so nothing is biased.
_GRADES_SHOWN = (ItemState.ESCALATED, ItemState.PUBLISHED, ItemState.REJECTED)


@router.post(
    "/v1/intake",
    summary="Put an image into the assessment queue of a list your organisation owns",
    status_code=201,
    response_model=ItemOut,
    responses={
        413: {"description": "The upload is too large"},
        503: {"description": "The media store is not configured (no HASHWATCH_MEDIA_KEY)"},
    },
)
async def intake(
    request: Request,
    who: Intake,
    file: Annotated[UploadFile, File(description="The image")],
    list_id: Annotated[int, Form(ge=1, le=MAX_ID, description="The list it is assessed for")],
    source: Annotated[
        str, Form(max_length=200, description="Where it came from: a case or report number")
    ] = "",
) -> dict[str, Any]:
    state = get_state(request)
    data = await read_upload(file, state.settings.media_limits())
    return await run_in_threadpool(_intake, state, who, list_id, data, source)


def _intake(
    state: ServiceState, who: Principal, list_id: int, data: bytes, source: str
) -> dict[str, Any]:
    vault = state.media_store()
    with state.store.session() as session:
        hash_list = session.get(HashList, list_id)
        if hash_list is None or hash_list.owner_id != who.organisation_id:
            raise ListNotFound(f"no list with id {list_id}")
        item = assessment.intake(
            session,
            vault,
            hash_list,
            data,
            who.actor,
            source=source,
            limits=state.settings.media_limits(),
            # The worker's matcher holds every list and is kept fresh: no index to build here.
            matcher=state.matcher,
        )
        return _item_json(item)


@router.get(
    "/v1/assessments/queue",
    summary="The items waiting for this analyst's grade, oldest first",
    response_model=QueueOut,
)
def queue(
    request: Request,
    who: Assess,
    analyst: Analyst,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        user = _person(session, who, analyst)
        items = assessment.queue_for(session, user, limit=limit)
        return {"analyst": user.username, "items": [_item_json(item) for item in items]}


@router.get(
    "/v1/assessments/dashboard",
    summary="Queue size and age, grades per analyst per day, agreement, list composition",
    response_model=DashboardOut,
)
def dashboard(request: Request, who: Assess) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        organisation = session.get(Organisation, who.organisation_id)
        assert organisation is not None
        return assessment.dashboard(session, organisation).to_json()


@router.get(
    "/v1/assessments/{item_id}",
    summary="One item; its grades only for a senior analyst once the graders are done",
    response_model=ItemDetailOut,
)
def show(request: Request, who: Assess, item_id: ItemId, analyst: Analyst) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        user = _person(session, who, analyst)
        item = assessment.get_item(session, user, item_id)
        out = _item_json(item)
        shown = people.has_role(user, "senior") and item.state in _GRADES_SHOWN
        out["grades"] = _grades_json(session, item) if shown else None
        return out


@router.post(
    "/v1/assessments/{item_id}/grades",
    summary="Grade an item, independently of anyone else's grade",
    response_model=ItemOut,
    responses={409: {"description": "The item is not waiting for grades, or already graded"}},
)
def grade(request: Request, who: Assess, item_id: ItemId, body: GradeIn) -> dict[str, Any]:
    state = get_state(request)
    vault = state.media_store()
    with state.store.session() as session:
        user = _person(session, who, body.analyst)
        item = assessment.get_item(session, user, item_id)
        item = assessment.grade(
            session,
            vault,
            item,
            user,
            body.grade,
            _actor(who, user),
            age_band=body.age_band,
            labels=tuple(body.labels),
        )
        return _item_json(item)


@router.post(
    "/v1/assessments/{item_id}/decision",
    summary="A senior analyst's final decision of an item the graders disagreed on",
    response_model=ItemOut,
    responses={409: {"description": "The item is not escalated, or you graded it yourself"}},
)
def decide(request: Request, who: Assess, item_id: ItemId, body: DecisionIn) -> dict[str, Any]:
    state = get_state(request)
    vault = state.media_store()
    with state.store.session() as session:
        user = _person(session, who, body.analyst)
        item = assessment.get_item(session, user, item_id)
        _require_role(user, "senior")
        item = assessment.decide(
            session,
            vault,
            item,
            user,
            body.grade,
            _actor(who, user),
            age_band=body.age_band,
            labels=tuple(body.labels),
        )
        return _item_json(item)


@router.post(
    "/v1/assessments/{item_id}/revoke",
    summary="Revoke what an item published: members receive the revocation through the feed",
    response_model=ItemOut,
    responses={409: {"description": "The item was not published"}},
)
def revoke(request: Request, who: Assess, item_id: ItemId, body: RevokeItemIn) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        user = _person(session, who, body.analyst)
        item = assessment.get_item(session, user, item_id)
        _require_role(user, "senior")
        item = assessment.revoke_item(session, item, user, body.reason, _actor(who, user))
        return _item_json(item)


# --- helpers ---------------------------------------------------------------------------------


def _person(session: Session, who: Principal, username: str) -> User:
    """The analyst an action is done for: an active user of the key's organisation."""
    user = people.get_member(session, who.organisation_id, username)
    if user.disabled_at is not None:
        raise Forbidden(f"user {user.username!r} is disabled")
    return user


def _require_role(user: User, role: str) -> None:
    # Checked after the item is found: another organisation's item is a 404 whoever asks.
    if not people.has_role(user, role):
        raise Forbidden(
            f"user {user.username!r} is {_ROLE_NAMES.get(user.role, user.role)}; "
            f"this needs {_ROLE_NAMES[role]}"
        )


def _actor(who: Principal, user: User) -> str:
    return f"{who.actor} as {user.username}"


def _item_json(item: IntakeItem) -> dict[str, Any]:
    hashes = {"md5": item.md5, "sha1": item.sha1, "sha256": item.sha256}
    if item.pdq is not None:
        hashes["pdq"] = item.pdq
    return {
        "id": item.id,
        "list_id": item.list_id,
        "state": item.state,
        "hashes": hashes,
        "pdq_quality": item.pdq_quality,
        "media_type": item.media_type,
        "media_bytes": item.media_bytes,
        "media_held": item.media_name is not None,
        "source": item.source,
        "duplicate_of_id": item.duplicate_of_id,
        "listed_entry_id": item.listed_entry_id,
        "required_grades": item.required_grades,
        "created_at": item.created_at.isoformat(),
        "decided_at": item.decided_at.isoformat() if item.decided_at else None,
        "grade": item.grade,
        "age_band": item.age_band,
        "entry_ids": list(item.entry_ids or []),
    }


def _grades_json(session: Session, item: IntakeItem) -> list[dict[str, Any]]:
    graded = assessment.grades_of(session, item)
    names = {user.id: user.username for user in _users(session, {g.user_id for g in graded})}
    return [
        {
            "analyst": names.get(given.user_id, ""),
            "grade": given.grade,
            "age_band": given.age_band,
            "labels": list(given.labels or []),
            "final": given.final,
            "at": given.created_at.isoformat(),
        }
        for given in graded
    ]


def _users(session: Session, ids: set[int]) -> list[User]:
    return [user for user_id in sorted(ids) if (user := session.get(User, user_id)) is not None]
