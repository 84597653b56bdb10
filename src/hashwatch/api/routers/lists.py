"""Lists, their entries, change feed and exports, and grants to other organisations.

Every route finds its list through sharing.visible_list, so a list the caller's organisation
may not see is a 404 whatever the route, and one it may see but not change is a 403.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from itertools import islice
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from hashwatch import listfiles, lists, sharing
from hashwatch.api.auth import get_state, require
from hashwatch.api.errors import ApiError
from hashwatch.api.schemas import (
    MAX_ID,
    AddResultOut,
    ChangesOut,
    EntriesIn,
    GrantIn,
    GrantOut,
    GrantsOut,
    ListIn,
    ListOut,
    ListPatch,
    ListsOut,
    RevokedOut,
)
from hashwatch.api.state import Principal
from hashwatch.errors import ImportRejected, InvalidInput, LineError
from hashwatch.organisations import get_organisation
from hashwatch.store.models import HashList, Organisation

router = APIRouter(prefix="/v1/lists", tags=["lists"])

ListId = Annotated[int, Path(ge=1, le=MAX_ID, description="The list's id")]
EntryId = Annotated[int, Path(ge=1, le=MAX_ID, description="The entry's id")]
Reader = Annotated[Principal, Depends(require("lists:read"))]
Writer = Annotated[Principal, Depends(require("lists:write"))]
Admin = Annotated[Principal, Depends(require("admin"))]


@router.get("", summary="The lists your organisation owns or was granted", response_model=ListsOut)
def list_all(request: Request, who: Reader) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        found = sharing.visible_lists(session, who.organisation_id)
        return {"lists": [_describe(session, hash_list, access) for hash_list, access in found]}


@router.post("", summary="Create a list", status_code=201, response_model=ListOut)
def create(request: Request, who: Writer, body: ListIn) -> dict[str, Any]:
    state = get_state(request)
    with state.store.session() as session:
        owner = session.get(Organisation, who.organisation_id)
        assert owner is not None
        hash_list = lists.create_list(
            session,
            owner,
            body.name,
            who.actor,
            description=body.description,
            thresholds=_thresholds(body.thresholds),
            variants=body.variants,
            required_grades=body.required_grades,
            entry_hashes=body.entry_hashes,
        )
        out = _describe(session, hash_list, sharing.OWNER)
    state.forget_access()
    return out


@router.get("/{list_id}", summary="One list with its counts", response_model=ListOut)
def show(request: Request, who: Reader, list_id: ListId) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        hash_list, access = sharing.visible_list(session, who.organisation_id, list_id)
        return _describe(session, hash_list, access)


@router.patch(
    "/{list_id}",
    summary="Change a list's description, thresholds, variant kinds, required grades or entry "
    "hashes",
    response_model=ListOut,
)
def update(request: Request, who: Writer, list_id: ListId, body: ListPatch) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        hash_list, _ = sharing.visible_list(session, who.organisation_id, list_id, sharing.OWNER)
        thresholds = _thresholds(body.thresholds) if body.thresholds else None
        lists.update_list(
            session,
            hash_list,
            who.actor,
            body.description,
            thresholds,
            body.variants,
            required_grades=body.required_grades,
            entry_hashes=body.entry_hashes,
        )
        return _describe(session, hash_list, sharing.OWNER)


@router.delete("/{list_id}", summary="Delete a list with its entries", status_code=204)
def delete(request: Request, who: Writer, list_id: ListId) -> Response:
    state = get_state(request)
    with state.store.session() as session:
        hash_list, _ = sharing.visible_list(session, who.organisation_id, list_id, sharing.OWNER)
        lists.delete_list(session, hash_list, who.actor)
    state.forget_access()
    return Response(status_code=204)


@router.post(
    "/{list_id}/entries",
    summary="Add entries in bulk: all of them, or none if any is bad",
    response_model=AddResultOut,
    responses={422: {"description": "Bad items, each named; nothing was added"}},
)
def add_entries(request: Request, who: Writer, list_id: ListId, body: EntriesIn) -> dict[str, Any]:
    state = get_state(request)
    limit = state.settings.max_entries_per_request
    if len(body.entries) > limit:
        raise ApiError(
            413, "too_large", f"{len(body.entries)} entries in one request; the limit is {limit}"
        )
    valid: list[lists.NewEntry] = []
    problems: list[LineError] = []
    for item, entry in enumerate(body.entries):
        try:
            valid.append(
                lists.make_entry(
                    entry.signal_type,
                    entry.value,
                    entry.category,
                    entry.labels,
                    entry.source,
                    entry.note,
                    None
                    if entry.extra_hashes is None
                    else [extra.model_dump() for extra in entry.extra_hashes],
                )
            )
        except InvalidInput as exc:
            problems.append(LineError(item, str(exc)))
    if problems:
        raise ImportRejected(problems)
    with state.store.session() as session:
        hash_list, _ = sharing.visible_list(session, who.organisation_id, list_id, sharing.OWNER)
        return lists.add_entries(session, hash_list, valid, who.actor).to_json()


@router.delete(
    "/{list_id}/entries/{entry_id}",
    summary="Revoke an entry: it never matches again, and the feed carries the revocation",
    response_model=RevokedOut,
)
def revoke_entry(
    request: Request,
    who: Writer,
    list_id: ListId,
    entry_id: EntryId,
    reason: Annotated[
        str, Query(min_length=1, max_length=4000, description="Why; kept in the feed")
    ],
) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        hash_list, _ = sharing.visible_list(session, who.organisation_id, list_id, sharing.OWNER)
        entry = lists.revoke_entry(session, hash_list, entry_id, reason, who.actor)
        assert entry.revoked_at is not None and entry.revoked_seq is not None
        return {
            "entry_id": entry.id,
            "signal_type": entry.signal_type,
            "value": entry.value,
            "seq": entry.revoked_seq,
            "revoked_at": entry.revoked_at.isoformat(),
            "reason": entry.revoke_reason or "",
        }


@router.get(
    "/{list_id}/changes",
    summary="The change feed: adds and revocations after a cursor, in sequence order",
    response_model=ChangesOut,
)
def changes(
    request: Request,
    who: Reader,
    list_id: ListId,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        hash_list, _ = sharing.visible_list(session, who.organisation_id, list_id, "read")
        page = lists.changes(session, hash_list, after, limit)
        next_after = page[-1].seq if page else after
        return {
            "list_id": hash_list.id,
            "changes": [change.to_json() for change in page],
            "next_after": next_after,
            "last_seq": hash_list.last_seq,
            "more": next_after < hash_list.last_seq,
        }


_EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


@router.get(
    "/{list_id}/export",
    summary="The list's active entries as CSV or JSON lines, streamed",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in _EXPORT_TYPES.values()}}},
)
def export(
    request: Request,
    who: Reader,
    list_id: ListId,
    format: Annotated[str, Query(pattern="^(csv|jsonl)$")] = "csv",
) -> StreamingResponse:
    state = get_state(request)
    with state.store.session() as session:
        hash_list, _ = sharing.visible_list(session, who.organisation_id, list_id, "read")
        name = hash_list.name
        with_extra = lists.has_extra_hashes(session, [hash_list])

    def pieces() -> Iterator[str]:
        with state.store.session() as session:
            current = session.get(HashList, list_id)
            if current is None:
                return
            entries = lists.iter_active_entries(session, [current])
            first = True
            while chunk := list(islice(entries, 5000)):
                buffer = io.StringIO()
                listfiles.write_entries(
                    buffer, chunk, format, header=first, extra_hashes=with_extra
                )
                first = False
                yield buffer.getvalue()
            if first and format == "csv":  # an empty list still gets its header
                buffer = io.StringIO()
                listfiles.write_entries(buffer, [], format, extra_hashes=with_extra)
                yield buffer.getvalue()

    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:100] or "list"
    return StreamingResponse(
        pieces(),
        media_type=_EXPORT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{safe}.{format}"'},
    )


# --- grants ----------------------------------------------------------------------------------


@router.get("/{list_id}/grants", summary="Who else may use this list", response_model=GrantsOut)
def grants(request: Request, who: Reader, list_id: ListId) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        hash_list, _ = sharing.visible_list(session, who.organisation_id, list_id, sharing.OWNER)
        return {
            "grants": [
                _grant_json(grant, name) for grant, name in sharing.grants_of(session, hash_list)
            ]
        }


@router.post(
    "/{list_id}/grants",
    summary="Let another organisation match against (or also read) this list",
    status_code=201,
    response_model=GrantOut,
)
def grant(request: Request, who: Admin, list_id: ListId, body: GrantIn) -> dict[str, Any]:
    state = get_state(request)
    with state.store.session() as session:
        hash_list, _ = sharing.visible_list(session, who.organisation_id, list_id, sharing.OWNER)
        grantee = get_organisation(session, body.organisation)
        made = sharing.grant(session, hash_list, grantee, body.access, who.actor)
        out = _grant_json(made, grantee.name)
    state.forget_access()
    return out


@router.delete(
    "/{list_id}/grants/{organisation}", summary="Withdraw an organisation's grant", status_code=204
)
def ungrant(request: Request, who: Admin, list_id: ListId, organisation: str) -> Response:
    state = get_state(request)
    with state.store.session() as session:
        hash_list, _ = sharing.visible_list(session, who.organisation_id, list_id, sharing.OWNER)
        sharing.revoke_grant(session, hash_list, get_organisation(session, organisation), who.actor)
    state.forget_access()
    return Response(status_code=204)


# --- helpers ---------------------------------------------------------------------------------


def _describe(session: Session, hash_list: HashList, access: str) -> dict[str, Any]:
    owner = session.get(Organisation, hash_list.owner_id)
    out = lists.list_summary(session, hash_list)
    out.update(id=hash_list.id, owner=owner.name if owner else "", access=access)
    if hash_list.origin_url is not None:
        out["origin"] = {
            "url": hash_list.origin_url,
            "list_id": hash_list.origin_list_id,
            "cursor": hash_list.origin_cursor,
        }
    return out


def _thresholds(raw: dict[str, int] | None) -> dict[str, int]:
    return lists.parse_thresholds([f"{name}={value}" for name, value in (raw or {}).items()])


def _grant_json(made: Any, organisation: str) -> dict[str, Any]:
    return {
        "organisation": organisation,
        "access": made.access,
        "created_at": made.created_at.isoformat(),
    }
