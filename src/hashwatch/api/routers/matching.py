"""Hashing and matching: `POST /v1/hash` and `POST /v1/match` (hashes, or an uploaded image)."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload

from hashwatch import review
from hashwatch.api.auth import get_state, require
from hashwatch.api.errors import ApiError
from hashwatch.api.media import read_upload
from hashwatch.api.schemas import MAX_ID, ContentIn, HashOut, MatchIn, MatchOut, MediaMatchOut
from hashwatch.api.state import Principal, ServiceState
from hashwatch.assessment import mime_type
from hashwatch.errors import ImportRejected, InvalidInput, LineError
from hashwatch.hashing import MediaHashes, hash_bytes
from hashwatch.lists import parse_variants
from hashwatch.matching import Match, Matcher, MatchReport
from hashwatch.review import ContentRef
from hashwatch.signals import get_signal_type
from hashwatch.store.models import VARIANT_KINDS, Organisation, utcnow

router = APIRouter(prefix="/v1", tags=["matching"])

Matching = Annotated[Principal, Depends(require("match"))]

_IMAGE_BODY = {
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "lists": {"type": "string", "description": "Comma-separated list ids"},
                    "variants": {
                        "type": "string",
                        "description": "Kinds of variant of the image to hash and match, "
                        "comma-separated: dihedral (rotations and flips), trim (borders cut "
                        "off), or none. Matching: both by default, each against the lists "
                        "that take it. Hashing: none by default.",
                    },
                },
                "required": ["file"],
            }
        }
    }
}


@router.post(
    "/hash",
    summary="Hash an uploaded image: MD5, SHA-1, SHA-256 and PDQ with its quality",
    response_model=HashOut,
)
async def hash_media(
    request: Request,
    who: Matching,
    file: Annotated[UploadFile, File()],
    variants: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    state = get_state(request)
    kinds = _parse_variants(variants, ())
    data = await read_upload(file, state.settings.media_limits())
    media = await run_in_threadpool(_hash, data, state, kinds)
    return _media_json(media, len(data))


@router.post(
    "/match",
    summary="Match hashes (JSON) or an uploaded image (multipart) against your lists",
    response_model=MatchOut | MediaMatchOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/MatchIn"}},
                **_IMAGE_BODY["content"],
            },
        }
    },
    responses={413: {"description": "Too many hashes, or the upload is too large"}},
)
async def match(request: Request, who: Matching) -> Response:
    state = get_state(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=8) as form:  # closes what it parsed
            upload = form.get("file")
            if not isinstance(upload, StarletteUpload):
                raise ApiError(
                    400, "invalid_request", "send the image in a form field named 'file'"
                )
            lists_field = form.get("lists")
            wanted = _parse_list_ids(lists_field if isinstance(lists_field, str) else None)
            variants_field = form.get("variants")
            kinds = _parse_variants(
                variants_field if isinstance(variants_field, str) else None, VARIANT_KINDS
            )
            content = _form_content(form)
            data = await read_upload(upload, state.settings.media_limits())
        return await run_in_threadpool(
            _in_turn, state, _match_media, state, who, data, wanted, kinds, content
        )
    if content_type not in ("application/json", ""):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send JSON ({'hashes': [...]}) or an image as multipart/form-data",
        )
    body = await request.body()
    try:
        parsed = MatchIn.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    if len(parsed.hashes) > state.settings.max_batch:
        raise ApiError(
            413,
            "too_large",
            f"{len(parsed.hashes)} hashes in one request; the limit is {state.settings.max_batch}",
        )
    recording = any(query.content is not None for query in parsed.hashes)
    if len(parsed.hashes) <= 8 and not recording:
        # A single lookup costs less than a hop to the thread pool; recording writes to the
        # store, which must not block the event loop.
        return _encoded(_match_hashes, state, who, parsed)
    return await run_in_threadpool(_in_turn, state, _match_hashes, state, who, parsed)


# --- work ------------------------------------------------------------------------------------


def _in_turn(state: ServiceState, work: Callable[..., dict[str, Any]], *args: Any) -> Response:
    """`_encoded(work, *args)` once this worker has fewer than its share of the cores' match
    requests running (ServiceSettings.match_threads); others wait their turn in the pool."""
    with state.match_gate:
        return _encoded(work, *args)


def _encoded(work: Callable[..., dict[str, Any]], *args: Any) -> Response:
    """The answer as JSON bytes, made where the work ran. The body is built from our own
    values in the documented shape, so FastAPI's check against the response model (a quarter
    of a large batch's time, on the event loop) is left out."""
    body = json.dumps(work(*args), ensure_ascii=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), media_type="application/json")


def _matcher(state: ServiceState) -> Matcher:
    if state.matcher is None:
        raise ApiError(503, "unavailable", "the match indexes are still loading; retry shortly")
    return state.matcher


def _allowed_lists(state: ServiceState, who: Principal, wanted: list[int] | None) -> frozenset[int]:
    matchable = state.matchable_lists(who.organisation_id)
    if wanted is None:
        return matchable
    for list_id in wanted:
        if list_id not in matchable:
            raise ApiError(404, "not_found", f"no list with id {list_id}")
    return frozenset(wanted)


def _match_hashes(state: ServiceState, who: Principal, request: MatchIn) -> dict[str, Any]:
    matcher = _matcher(state)
    allowed = _allowed_lists(state, who, request.lists)
    at = utcnow()
    # Validate every item first: one bad hash rejects the request, naming each bad item.
    groups: dict[str, list[int]] = {}
    kinds: dict[str, str] = {}
    problems: list[LineError] = []
    for item, query in enumerate(request.hashes):
        try:
            name = kinds.get(query.signal_type) or kinds.setdefault(
                query.signal_type, get_signal_type(query.signal_type).name
            )
            groups.setdefault(name, []).append(item)
        except InvalidInput as exc:
            problems.append(LineError(item, str(exc)))
    reports: list[MatchReport | None] = [None] * len(request.hashes)
    for name, items in groups.items():
        values = [request.hashes[i].value for i in items]
        qualities = [request.hashes[i].quality for i in items]
        try:
            found = matcher.match_values(name, values, qualities, lists=allowed)
        except InvalidInput:
            found = None
        if found is None:  # name each bad value, as an import does
            kind = get_signal_type(name)
            for i in items:
                try:
                    kind.parse(request.hashes[i].value)
                except InvalidInput as exc:
                    problems.append(LineError(i, str(exc)))
            continue
        for i, report in zip(items, found, strict=True):
            reports[i] = report
    if problems:
        raise ImportRejected(sorted(problems, key=lambda problem: problem.line))
    results = []
    matched = 0
    logged: list[dict[str, Any]] = []
    unmatched: list[dict[str, Any]] = []
    events: list[tuple[int, Sighting]] = []
    for item, (query, maybe) in enumerate(zip(request.hashes, reports, strict=True)):
        assert maybe is not None
        report = maybe
        name = kinds[query.signal_type]
        results.append(
            {
                "item": item,
                "signal_type": name,
                "matches": [m.to_json() for m in report.matches],
                "skipped": report.skipped,
            }
        )
        if report.matches:
            matched += 1
            logged.extend(_logged(item, query.value, report.matches))
            if query.content is not None:
                ref = _content_ref(query.content)
                events.append((item, Sighting(ref, {name: query.value}, report.matches)))
        elif state.settings.log_unmatched:
            unmatched.append({"item": item, "signal_type": name, "value": query.value})
    _record(state, who, at, len(results), matched, logged, unmatched)
    if events:
        made = _record_events(state, who, [sighting for _, sighting in events])
        for (item, _), event_id in zip(events, made, strict=True):
            results[item]["event_id"] = event_id
    return {"results": results, "matched_items": matched}


def _match_media(
    state: ServiceState,
    who: Principal,
    data: bytes,
    wanted: list[int] | None,
    kinds: tuple[str, ...],
    content: ContentIn | None = None,
) -> dict[str, Any]:
    matcher = _matcher(state)
    allowed = _allowed_lists(state, who, wanted)
    at = utcnow()
    media = _hash(data, state, kinds)
    report = matcher.match_media(media, lists=allowed)
    out = _media_json(media, len(data))
    out["matches"] = [m.to_json() for m in report.matches]
    out["skipped"] = report.skipped
    logged = [
        {**record, "query": _query_value(media, match)}
        for record, match in zip(_logged(0, None, report.matches), report.matches, strict=True)
    ]
    unmatched = []
    if not report.matches and state.settings.log_unmatched:
        unmatched = [{"item": 0, "hashes": media.hashes}]
    _record(state, who, at, 1, 1 if report.matches else 0, logged, unmatched)
    if content is not None and report.matches:
        sighting = Sighting(
            _content_ref(content),
            dict(media.hashes),
            report.matches,
            data,
            pdq_quality=media.quality.get("pdq"),
        )
        out["event_id"] = _record_events(state, who, [sighting])[0]
    return out


@dataclass(frozen=True)
class Sighting:
    """A match to record as a match event: the content, its hashes, what it matched."""

    ref: ContentRef
    hashes: dict[str, str]
    matches: list[Match]
    media: bytes | None = None
    #: The content's PDQ quality, where it was hashed here.
    pdq_quality: int | None = None


def _content_ref(content: ContentIn) -> ContentRef:
    return ContentRef(
        content_id=content.content_id,
        user_ref=content.user_id,
        uploaded_at=content.uploaded_at,
        ip_address=content.ip_address,
        extra=dict(content.extra),
    )


def _record_events(
    state: ServiceState, who: Principal, sightings: list[Sighting]
) -> list[int | None]:
    """Record the matches as match events for review, in one transaction; the events' ids
    (None where the organisation excepted the content)."""
    with state.store.session() as session:
        organisation = session.get(Organisation, who.organisation_id)
        assert organisation is not None
        needs_vault = organisation.retain_evidence and any(s.media for s in sightings)
        vault = state.media_store() if needs_vault else None
        made = [
            review.record_event(
                session,
                organisation,
                sighting.ref,
                sighting.hashes,
                sighting.matches,
                who.actor,
                media=sighting.media,
                media_type=_media_type(sighting.media) if sighting.media else None,
                vault=vault,
                pdq_quality=sighting.pdq_quality,
            )
            for sighting in sightings
        ]
        return [event.id if event is not None else None for event in made]


def _media_type(data: bytes) -> str:
    """The MIME type of kept evidence; an exact match on bytes that are no image is kept too."""
    try:
        return mime_type(data)
    except Exception:
        return "application/octet-stream"


def _form_content(form: Any) -> ContentIn | None:
    """The content reference of an image upload (form fields content_id, user_id, uploaded_at,
    ip_address), or None when it has none."""
    fields = {
        name: form.get(name)
        for name in ("content_id", "user_id", "uploaded_at", "ip_address")
        if isinstance(form.get(name), str) and form.get(name)
    }
    if not fields:
        return None
    try:
        return ContentIn.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def _hash(data: bytes, state: ServiceState, kinds: tuple[str, ...] = ()) -> MediaHashes:
    media = hash_bytes(data, state.settings.media_limits(), variants=kinds)
    if media.failure is not None and not media.hashes:
        raise media.failure  # nothing could be hashed: say why (empty, too large)
    return media


def _media_json(media: MediaHashes, size: int) -> dict[str, Any]:
    variants = {name: [v.to_json() for v in found] for name, found in media.variants.items()}
    return {
        "hashes": media.hashes,
        "quality": media.quality,
        "variants": variants,
        "size": size,
        "error": media.error,
    }


def _query_value(media: MediaHashes, match: Match) -> str | None:
    """The hash of the media that made this match: the original's, or the variant's."""
    if match.variant == "original":
        return media.hashes.get(match.signal_type)
    found = media.variants.get(match.signal_type, ())
    return next((v.value for v in found if v.variant == match.variant), None)


def _parse_variants(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """The kinds named in a form field (an unknown one is InvalidInput: 400), or the default."""
    return default if text is None else tuple(parse_variants([text]))


def _logged(item: int, query: str | None, matches: Collection[Match]) -> list[dict[str, Any]]:
    return [
        {
            "item": item,
            "list_id": m.list_id,
            "entry_id": m.entry_id,
            "signal_type": m.signal_type,
            "distance": m.distance,
            "variant": m.variant,
            "entry_variant": m.entry_variant,
            "query": query,
        }
        for m in matches
    ]


def _record(
    state: ServiceState,
    who: Principal,
    at: Any,
    items: int,
    matched: int,
    matches: list[dict[str, Any]],
    unmatched: list[dict[str, Any]],
) -> None:
    detail: dict[str, Any] = {"items": items, "matched_items": matched, "matches": matches}
    if unmatched:
        detail["unmatched"] = unmatched
    state.match_log.record(who, at, detail)


def _parse_list_ids(text: str | None) -> list[int] | None:
    if text is None or not text.strip():
        return None
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        ids = [0]
    if not all(1 <= list_id <= MAX_ID for list_id in ids):
        raise ApiError(400, "invalid_request", "lists must be comma-separated list ids")
    return ids
