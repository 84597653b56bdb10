"""The console: server-rendered pages where people take images in, grade and publish them, and
where a platform's reviewers decide the matches of its uploads.

A shell over hashwatch.people (accounts, sessions), hashwatch.assessment (the list owner's
workflow) and hashwatch.review (the platform's), like the JSON API is one over the same services.
Each request resumes the person's session from the `hw_session` cookie, checks the CSRF token
on every POST and the role the page needs, calls one service and renders a Jinja2 template (or
redirects: after every POST, so a reload never repeats an action, and after a decision straight
to the next item or job, which loads veiled).

Analysts' welfare shapes the pages: every image arrives blurred and in greyscale (the "veiled"
class, static/console.css) and is revealed only on demand; keyboard shortcuts
(static/console.js) make every decision one key; an analyst never sees another's grade of an
item they are grading. The media itself is served only to the item's organisation, only while
the item waits, and never cached.

The pages run under a strict Content-Security-Policy: no inline script or style anywhere.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hashwatch import assessment, errors, lists, people, reports, review
from hashwatch.api.auth import get_state
from hashwatch.api.media import image_response
from hashwatch.api.schemas import MAX_ID
from hashwatch.api.state import retry_after as retry_after_header
from hashwatch.matching import Matcher
from hashwatch.mediastore import MediaStore
from hashwatch.store.models import (
    AGE_BANDS,
    ROLES,
    ConsoleSession,
    EntryDispute,
    HashList,
    IntakeItem,
    ItemState,
    JobState,
    Organisation,
    ReviewJob,
    User,
    utcnow,
)

__all__ = ["LOGIN_COOKIE", "SECURITY_HEADERS", "SESSION_COOKIE", "router"]

SESSION_COOKIE = "hw_session"
#: The sign-in form's own CSRF token (double submit: this cookie and a hidden field), since
#: there is no session to hold one before signing in.
LOGIN_COOKIE = "hw_login"

#: Sent with every console response. Nothing inline may run or style the page, nothing may
#: frame it, no address leaks to other sites, and no page (least of all an image) is cached.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

#: Plain-HTTP hosts that may still get cookies without the Secure flag: a developer's machine
#: and the test client. Anywhere else the console must be served over HTTPS.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "testserver"})

#: Each decision, its key(s) and its name on the page. Digits follow the order the scales are
#: usually written in; "not abuse material" gets 0 and n, the most common answer.
GRADE_KEYS = (
    ("A", "1", "Category A"),
    ("B", "2", "Category B"),
    ("C", "3", "Category C"),
    ("A1", "4", "A1"),
    ("A2", "5", "A2"),
    ("B1", "6", "B1"),
    ("B2", "7", "B2"),
    ("none", "0 n", "Not abuse material"),
)
GRADE_NAMES = {grade: name for grade, _, name in GRADE_KEYS}
ROLE_NAMES = {"analyst": "Analyst", "senior": "Senior analyst", "admin": "Administrator"}

#: A platform reviewer's confirmation, by key: the US industry classification.
CLASSIFICATION_KEYS = (("A1", "1"), ("A2", "2"), ("B1", "3"), ("B2", "4"))

#: Items listed on the queue page, and how far the "await your grade" count goes.
QUEUE_SHOWN = 50
QUEUE_COUNTED = 1000

WAITING = (ItemState.QUEUED, ItemState.ESCALATED)

ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
EventId = Annotated[int, Path(ge=1, le=MAX_ID)]
Csrf = Annotated[str, Form()]


# --- rendering -----------------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(value: datetime | None) -> str:
    if value is None:
        return ""
    return _duration((utcnow() - value).total_seconds())


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


def _grade_name(grade: str | None) -> str:
    return GRADE_NAMES.get(grade or "", grade or "")


_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(FilePath(__file__).parent.parent / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(when=_when, age=_age, grade_name=_grade_name)
templates = Jinja2Templates(env=_environment)


@dataclass(frozen=True)
class Me:
    """The signed-in person as the page header shows them."""

    username: str
    role: str
    organisation: str

    @property
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.role, self.role)


@dataclass
class Visit:
    """One signed-in request: its database session, the person and their console session."""

    db: Session
    user: User
    console_session: ConsoleSession
    organisation: Organisation

    @property
    def me(self) -> Me:
        return Me(self.user.username, self.user.role, self.organisation.name)

    @property
    def actor(self) -> str:
        return self.user.username


def _nav(role: str) -> list[tuple[str, str, str]]:
    items = [
        ("/console", "Queue", "queue"),
        ("/console/intake", "Intake", "intake"),
        ("/console/published", "Published", "published"),
        ("/console/dashboard", "Dashboard", "dashboard"),
        ("/console/reviews", "Reviews", "reviews"),
    ]
    if people.ROLE_RANK.get(role, -1) >= people.ROLE_RANK["admin"]:
        items.append(("/console/people", "People", "people"))
    return items


def _render(
    request: Request,
    name: str,
    visit: Visit | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    values: dict[str, Any] = {
        "me": None,
        "csrf": "",
        "notice": None,
        "notice_link": None,
        "problem": None,
    }
    if visit is not None:
        values.update(me=visit.me, csrf=visit.console_session.csrf_token, nav=_nav(visit.user.role))
    values.update(context)
    return templates.TemplateResponse(request, name, values, status_code=status, headers=headers)


# --- stopping a request with a page --------------------------------------------------------


class _SignedOut(Exception):
    """No valid session: the person signs in (again)."""


class _Stop(Exception):
    """End the request with a plain error page."""

    def __init__(self, status: int, heading: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.heading = heading
        self.message = message


def _error_page(request: Request, status: int, heading: str, message: str) -> Response:
    return _render(request, "error.html", status=status, heading=heading, message=message)


def _domain_error(request: Request, exc: errors.HashwatchError) -> Response:
    if isinstance(exc, errors.NotFound):
        return _error_page(request, 404, "Not found", str(exc))
    if isinstance(exc, errors.Forbidden):
        return _error_page(request, 403, "Not allowed", str(exc))
    if isinstance(exc, errors.Conflict):
        return _error_page(request, 409, "Already done", str(exc))
    if isinstance(exc, errors.MediaStoreError):
        return _error_page(request, 503, "Media store unavailable", str(exc))
    return _error_page(request, 400, "Not accepted", str(exc))


class ConsoleRoute(APIRoute):
    """A console route: its errors become pages (not the API's JSON), a missing session a
    redirect to the sign-in page, and every response carries SECURITY_HEADERS."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except _SignedOut:
                response = RedirectResponse("/console/login", status_code=303)
                response.delete_cookie(SESSION_COOKIE, path="/console")
            except _Stop as stop:
                response = _error_page(request, stop.status, stop.heading, stop.message)
            except errors.HashwatchError as exc:
                response = _domain_error(request, exc)
            except RequestValidationError:
                # The forms are the console's own, so a malformed request is a hand-made one
                # (or a path like /console/items/abc): nothing here by that name.
                response = _error_page(request, 404, "Not found", "There is no such page.")
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return guarded


router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)


# --- sessions ------------------------------------------------------------------------------


def _secure_cookies(request: Request) -> bool:
    return not (request.url.scheme == "http" and request.url.hostname in LOCAL_HOSTS)


def _same(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


@contextmanager
def _visit(
    request: Request, role: str = "analyst", *, csrf: str | None = None, post: bool = False
) -> Iterator[Visit]:
    """The signed-in person's visit, in one transaction committed when the block ends.

    Raises _SignedOut without a live session; for a POST, a 403 page unless the form (or the
    X-CSRF-Token header) carries the session's CSRF token; a 403 page without `role`."""
    token = request.cookies.get(SESSION_COOKIE, "")
    refusal: _Stop | None = None
    # An expired session is deleted by resume_session: commit that before turning the person
    # away, so the refusal is raised after the transaction, not inside it.
    with get_state(request).store.session() as db:
        found = people.resume_session(db, token) if token else None
        if found is not None:
            user, console_session = found
            presented = csrf or request.headers.get("x-csrf-token")
            if post and not people.csrf_ok(console_session, presented):
                refusal = _Stop(
                    403,
                    "Form expired",
                    "This form did not carry your session's security token, so nothing was "
                    "done. Go back, reload the page and try again.",
                )
            elif not people.has_role(user, role):
                refusal = _Stop(
                    403,
                    "Not allowed",
                    f"This needs the {ROLE_NAMES[role].lower()} role; you are "
                    f"{ROLE_NAMES.get(user.role, user.role).lower()}.",
                )
            else:
                organisation = db.get(Organisation, user.organisation_id)
                assert organisation is not None  # a foreign key
                yield Visit(db, user, console_session, organisation)
                return
    if refusal is not None:
        raise refusal
    raise _SignedOut


def _vault(request: Request) -> MediaStore:
    return get_state(request).media_store()


def _redirect(path: str) -> Response:
    return RedirectResponse(path, status_code=303)


def _login_page(
    request: Request,
    status: int = 200,
    problem: str | None = None,
    username: str = "",
    retry_after: float | None = None,
) -> Response:
    token = secrets.token_urlsafe(32)
    headers = {"Retry-After": retry_after_header(retry_after)} if retry_after else None
    response = _render(
        request,
        "login.html",
        status=status,
        headers=headers,
        login_csrf=token,
        problem=problem,
        username=username,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/console/login",
        httponly=True,
        samesite="strict",
        secure=_secure_cookies(request),
    )
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        with get_state(request).store.session() as db:
            if people.resume_session(db, token) is not None:
                return _redirect("/console")
    return _login_page(request)


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf: Csrf = "",
) -> Response:
    if not _same(request.cookies.get(LOGIN_COOKIE), csrf):
        return _login_page(
            request, 403, "The sign-in form had expired. Please sign in again.", username
        )
    failure: tuple[int, str, float | None] | None = None
    with get_state(request).store.session() as db:
        # A failed login still commits: the failure count and the audit record must stay.
        try:
            user = people.login(db, username, password)
        except errors.LoginThrottled as exc:
            failure = (429, str(exc), exc.retry_after)
        except errors.LoginFailed as exc:
            failure = (401, str(exc).capitalize() + ".", None)
        else:
            token, _ = people.start_session(db, user)
    if failure is not None:
        status, problem, retry_after = failure
        return _login_page(request, status, problem, username, retry_after)
    response = _redirect("/console")
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=_secure_cookies(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/console/login")
    return response


@router.post("/logout")
def logout(request: Request, csrf: Csrf = "") -> Response:
    with _visit(request, csrf=csrf, post=True) as visit:
        people.end_session(visit.db, request.cookies.get(SESSION_COOKIE, ""))
    response = _redirect("/console/login")
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


# --- the queue and the item ------------------------------------------------------------------


def _list_names(db: Session, organisation_id: int) -> dict[int, str]:
    rows = db.execute(
        select(HashList.id, HashList.name).where(HashList.owner_id == organisation_id)
    )
    return {list_id: name for list_id, name in rows}


def _notice(graded: int | None, decided: int | None, empty: bool = False) -> str | None:
    if graded is not None:
        text = f"Your grade of item {graded} is saved."
    elif decided is not None:
        text = f"Your decision on item {decided} is final."
    else:
        return None
    return text + (" Nothing else awaits you." if empty else "")


@router.get("")
def queue(
    request: Request,
    graded: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    decided: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    with _visit(request) as visit:
        db = visit.db
        waiting = assessment.queue_for(db, visit.user, limit=QUEUE_COUNTED)
        counted = db.execute(
            select(IntakeItem.state, func.count())
            .where(
                IntakeItem.organisation_id == visit.user.organisation_id,
                IntakeItem.state.in_(WAITING),
            )
            .group_by(IntakeItem.state)
        )
        states = {state: count for state, count in counted}
        oldest = db.scalar(
            select(func.min(IntakeItem.created_at)).where(
                IntakeItem.organisation_id == visit.user.organisation_id,
                IntakeItem.state.in_(WAITING),
            )
        )
        if oldest is not None and oldest.tzinfo is None:  # func.min bypasses the column type
            oldest = oldest.replace(tzinfo=UTC)
        count = f"{len(waiting)}+" if len(waiting) >= QUEUE_COUNTED else str(len(waiting))
        return _render(
            request,
            "queue.html",
            visit,
            section="queue",
            notice=_notice(graded, decided, empty=not waiting),
            items=waiting[:QUEUE_SHOWN],
            waiting=count,
            queued=states.get(ItemState.QUEUED, 0),
            escalated=states.get(ItemState.ESCALATED, 0),
            oldest=_age(oldest) if oldest is not None else "—",
            list_names=_list_names(db, visit.user.organisation_id),
        )


@router.get("/items/{item_id}")
def item_page(
    request: Request,
    item_id: ItemId,
    graded: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    decided: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    with _visit(request) as visit:
        db, user = visit.db, visit.user
        item = assessment.get_item(db, user, item_id)
        senior = people.has_role(user, "senior")
        # Another analyst's grade is never read for the page unless it may be shown: to a
        # senior analyst, once the grades disagreed.
        everyone = assessment.grades_of(db, item)
        mine = next((grade for grade in everyone if grade.user_id == user.id), None)
        shown = everyone if senior and item.state == ItemState.ESCALATED else []
        form_action = form_verb = blocked = None
        if item.state == ItemState.QUEUED and mine is None:
            form_action, form_verb = f"/console/items/{item.id}/grade", "Your grade"
        elif item.state == ItemState.ESCALATED and senior and mine is None:
            form_action, form_verb = f"/console/items/{item.id}/decision", "Your final decision"
        elif item.state == ItemState.ESCALATED and senior:
            blocked = "You graded this item, so another senior analyst decides it."
        elif item.state == ItemState.ESCALATED:
            blocked = "The grades disagreed: a senior analyst decides this item."
        elif item.state == ItemState.DUPLICATE:
            blocked = "This image was already listed or waiting when it came in: never graded."
        usernames: dict[int, str] = {}
        if shown:
            rows = db.execute(
                select(User.id, User.username).where(User.id.in_([g.user_id for g in shown]))
            )
            usernames = {user_id: name for user_id, name in rows}
        media_note = (
            "The image is deleted: only its hashes and the decision are kept."
            if item.state not in WAITING
            else "The image is not shown: there is nothing for you to decide here."
        )
        return _render(
            request,
            "item.html",
            visit,
            section="queue",
            notice=_notice(graded, decided),
            item=item,
            list_name=_list_names(db, user.organisation_id).get(item.list_id, ""),
            mine=mine,
            grades=shown,
            usernames=usernames,
            show_media=form_action is not None and item.media_name is not None,
            media_note=media_note,
            form_action=form_action,
            form_verb=form_verb,
            blocked=blocked,
            grade_keys=GRADE_KEYS,
            age_bands=AGE_BANDS,
        )


def _labels(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,;]", text) if part.strip()]


def _after(visit: Visit, done: str, item_id: int) -> Response:
    """Straight on to the oldest item still waiting for this person, or back to the queue."""
    following = assessment.next_item(visit.db, visit.user)
    if following is None:
        return _redirect(f"/console?{done}={item_id}")
    return _redirect(f"/console/items/{following.id}?{done}={item_id}")


@router.post("/items/{item_id}/grade")
def grade(
    request: Request,
    item_id: ItemId,
    csrf: Csrf = "",
    grade: Annotated[str, Form()] = "",
    age_band: Annotated[str, Form()] = "",
    labels: Annotated[str, Form()] = "",
) -> Response:
    with _visit(request, csrf=csrf, post=True) as visit:
        item = assessment.get_item(visit.db, visit.user, item_id)
        assessment.grade(
            visit.db,
            _vault(request),
            item,
            visit.user,
            grade,
            visit.actor,
            age_band=age_band or None,
            labels=_labels(labels),
        )
        return _after(visit, "graded", item_id)


@router.post("/items/{item_id}/decision")
def decision(
    request: Request,
    item_id: ItemId,
    csrf: Csrf = "",
    grade: Annotated[str, Form()] = "",
    age_band: Annotated[str, Form()] = "",
    labels: Annotated[str, Form()] = "",
) -> Response:
    with _visit(request, "senior", csrf=csrf, post=True) as visit:
        item = assessment.get_item(visit.db, visit.user, item_id)
        assessment.decide(
            visit.db,
            _vault(request),
            item,
            visit.user,
            grade,
            visit.actor,
            age_band=age_band or None,
            labels=_labels(labels),
        )
        return _after(visit, "decided", item_id)


@router.get("/items/{item_id}/media")
def media(request: Request, item_id: ItemId) -> Response:
    with _visit(request) as visit:
        item = assessment.get_item(visit.db, visit.user, item_id)
        if item.state not in WAITING or item.media_name is None:
            raise errors.ItemNotFound(f"intake item {item_id} has no image to show")
        name, media_type = item.media_name, item.media_type
    return image_response(_vault(request).get(name), media_type)


# --- intake --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntakeResult:
    filename: str
    outcome: str
    item_id: int | None = None


def _own_lists(db: Session, organisation: Organisation) -> list[HashList]:
    return [hash_list for hash_list in lists.list_lists(db, organisation) if not _copy(hash_list)]


def _copy(hash_list: HashList) -> bool:
    try:
        lists.ensure_writable(hash_list)
    except errors.HashwatchError:
        return True
    return False


@router.get("/intake")
def intake_form(request: Request) -> Response:
    with _visit(request) as visit:
        return _render(
            request,
            "intake.html",
            visit,
            section="intake",
            hash_lists=_own_lists(visit.db, visit.organisation),
            chosen_list=None,
            results=[],
        )


def _outcome(item: IntakeItem) -> str:
    if item.state == ItemState.QUEUED:
        return "queued for grading"
    if item.listed_entry_id is not None:
        return f"already on the list (entry {item.listed_entry_id}): not queued"
    if item.duplicate_of_id is not None:
        return f"the same image as item {item.duplicate_of_id}, which is waiting: not queued"
    return item.state


@router.post("/intake")
def intake(
    request: Request,
    csrf: Csrf = "",
    list_id: Annotated[int, Form(ge=0, le=MAX_ID)] = 0,
    source: Annotated[str, Form()] = "",
    files: Annotated[list[UploadFile], File()] = [],  # noqa: B006 (FastAPI copies defaults)
) -> Response:
    state = get_state(request)
    limits = state.settings.media_limits()
    with _visit(request, csrf=csrf, post=True) as visit:
        db = visit.db
        hash_list = db.get(HashList, list_id) if list_id else None
        if hash_list is None or hash_list.owner_id != visit.user.organisation_id:
            raise errors.ListNotFound(f"your organisation has no list {list_id}")
        uploads = [upload for upload in files if upload.filename or upload.size]
        if not uploads:
            raise _Stop(400, "No images", "Choose one or more images to take in.")
        vault = _vault(request)
        # One matcher for the whole batch, not one per image.
        matcher = Matcher.from_store(db, [hash_list]) if len(uploads) > 1 else None
        results: list[IntakeResult] = []
        for upload in uploads:
            filename = upload.filename or "(unnamed)"
            # One byte past the limit is enough for hashing to refuse it as too large.
            data = upload.file.read(limits.max_bytes + 1)
            try:
                item = assessment.intake(
                    db,
                    vault,
                    hash_list,
                    data,
                    visit.actor,
                    source=source,
                    limits=limits,
                    matcher=matcher,
                )
            except (errors.MediaError, errors.InvalidInput) as exc:
                # Refused before anything was stored: the rest of the batch goes on.
                results.append(IntakeResult(filename, f"not taken in: {exc}"))
                continue
            results.append(IntakeResult(filename, _outcome(item), item.id))
        return _render(
            request,
            "intake.html",
            visit,
            section="intake",
            hash_lists=_own_lists(db, visit.organisation),
            chosen_list=hash_list.id,
            results=results,
            notice=f"{sum(1 for r in results if r.item_id)} of {len(results)} images taken in.",
        )


# --- published items -----------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedRow:
    item: IntakeItem
    active: int
    revoked: int
    #: False-positive reports platforms made on the item's entries.
    disputes: int = 0


@router.get("/published")
def published(
    request: Request, revoked: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None
) -> Response:
    with _visit(request) as visit:
        rows = []
        items = assessment.published_items(visit.db, visit.user, limit=100)
        # Every shown entry's disputes in one query, not one per item.
        counted = visit.db.execute(
            select(EntryDispute.entry_id, func.count())
            .where(EntryDispute.entry_id.in_([i for item in items for i in item.entry_ids]))
            .group_by(EntryDispute.entry_id)
        )
        disputes = {entry_id: count for entry_id, count in counted}
        for item in items:
            entries = assessment.item_entries(visit.db, item)
            gone = sum(1 for entry in entries if entry.revoked_seq is not None)
            disputed = sum(disputes.get(entry.id, 0) for entry in entries)
            rows.append(PublishedRow(item, len(entries) - gone, gone, disputed))
        return _render(
            request,
            "published.html",
            visit,
            section="published",
            notice=f"Item {revoked} is revoked." if revoked else None,
            rows=rows,
            can_revoke=people.has_role(visit.user, "senior"),
            list_names=_list_names(visit.db, visit.user.organisation_id),
        )


@router.post("/items/{item_id}/revoke")
def revoke(
    request: Request,
    item_id: ItemId,
    csrf: Csrf = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    with _visit(request, "senior", csrf=csrf, post=True) as visit:
        item = assessment.get_item(visit.db, visit.user, item_id)
        assessment.revoke_item(visit.db, item, visit.user, reason, visit.actor)
    return _redirect(f"/console/published?revoked={item_id}")


# --- dashboard -----------------------------------------------------------------------------


@router.get("/dashboard")
def dashboard(request: Request) -> Response:
    with _visit(request) as visit:
        board = assessment.dashboard(visit.db, visit.organisation)
        busiest = max((count for _, _, count in board.grades_per_day), default=1)
        return _render(
            request,
            "dashboard.html",
            visit,
            section="dashboard",
            board=board,
            oldest=_duration(board.oldest_waiting_seconds),
            busiest=busiest,
            days=assessment.DASHBOARD_DAYS,
        )


# --- platform review -------------------------------------------------------------------------
#
# A platform's reviewers decide the matches of its uploads (hashwatch.review): one job per
# platform user, most severe first. The same veiled view as for grading; a decision is one key.


def _open_jobs(db: Session, organisation_id: int) -> tuple[int, datetime | None]:
    """How many jobs are open, and since when the oldest."""
    count, oldest = db.execute(
        select(func.count(), func.min(ReviewJob.created_at)).where(
            ReviewJob.organisation_id == organisation_id, ReviewJob.state == JobState.OPEN
        )
    ).one()
    if oldest is not None and oldest.tzinfo is None:  # func.min bypasses the column type
        oldest = oldest.replace(tzinfo=UTC)
    return count, oldest


def _review_notice(confirmed: int | None, rejected: int | None) -> tuple[str | None, Any]:
    """The notice after a decision, and the link it carries (to a confirmed job's report)."""
    if confirmed is not None:
        return (
            f"Job {confirmed} is confirmed and its report is ready.",
            (f"/console/reviews/{confirmed}#report", f"Job {confirmed}'s report"),
        )
    if rejected is not None:
        return f"Job {rejected} is a false positive: it will not alert again.", None
    return None, None


@router.get("/reviews")
def reviews(
    request: Request,
    confirmed: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    rejected: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    with _visit(request) as visit:
        db, organisation_id = visit.db, visit.user.organisation_id
        jobs = review.review_queue(db, organisation_id, limit=QUEUE_SHOWN)
        open_count, oldest = _open_jobs(db, organisation_id)
        notice, notice_link = _review_notice(confirmed, rejected)
        return _render(
            request,
            "reviews.html",
            visit,
            section="reviews",
            notice=notice,
            notice_link=notice_link,
            jobs=jobs,
            counts=review.event_counts(db, [job.id for job in jobs]),
            open_count=open_count,
            oldest=_age(oldest) if oldest is not None else "—",
            decided=review.decided_jobs(db, organisation_id),
            severity=review.severity_name,
        )


@router.get("/reviews/{job_id}")
def review_page(
    request: Request,
    job_id: JobId,
    confirmed: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    rejected: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    with _visit(request) as visit:
        db = visit.db
        job = review.get_job(db, visit.user.organisation_id, job_id)
        events = review.job_events(db, job)
        summary = problem = None
        unset: list[str] = []
        if job.state == JobState.CONFIRMED:
            reporter = _reporter(visit)
            unset = [
                reports.REPORTER_ENV[name]
                for name in ("contact_name", "email")
                if not getattr(reporter, name)
            ]
            try:
                made = reports.build_report(db, job, reporter)
            except errors.Conflict as exc:  # its events were purged
                problem = str(exc)
            else:
                summary = reports.summary(made)
        notice, notice_link = _review_notice(confirmed, rejected)
        return _render(
            request,
            "review.html",
            visit,
            section="reviews",
            notice=notice,
            notice_link=notice_link,
            job=job,
            events=events,
            severity=review.severity_name(job.severity),
            show_media=job.state == JobState.OPEN,
            any_media=any(event.media_name for event in events),
            media_note=(
                "the organisation keeps no evidence"
                if not visit.organisation.retain_evidence
                else "deleted, or not an upload (a hash was matched)"
            ),
            classifications=CLASSIFICATION_KEYS,
            annotation_tags=reports.annotation_names(),
            preserve_days=visit.organisation.preserve_days,
            report=summary,
            report_problem=problem,
            reporter_unset=unset,
        )


def _reporter(visit: Visit) -> reports.Reporter:
    return reports.Reporter.from_env(visit.organisation.name)


def _after_review(visit: Visit, done: str, job_id: int) -> Response:
    """Straight on to the next open job, or back to the reviews."""
    following = review.next_job(visit.db, visit.user.organisation_id, after=job_id)
    if following is None:
        return _redirect(f"/console/reviews?{done}={job_id}")
    return _redirect(f"/console/reviews/{following.id}?{done}={job_id}")


@router.post("/reviews/{job_id}/confirm")
def confirm_job(
    request: Request,
    job_id: JobId,
    csrf: Csrf = "",
    classification: Annotated[str, Form()] = "",
    annotations: Annotated[str, Form()] = "",
    viewed: Annotated[str, Form()] = "",
) -> Response:
    with _visit(request, csrf=csrf, post=True) as visit:
        job = review.get_job(visit.db, visit.user.organisation_id, job_id)
        review.confirm(
            visit.db,
            job,
            visit.user.username,
            classification,
            visit.actor,
            annotations=_labels(annotations),
            viewed=viewed == "yes",
        )
        return _after_review(visit, "confirmed", job_id)


@router.post("/reviews/{job_id}/false-positive")
def false_positive_job(
    request: Request,
    job_id: JobId,
    csrf: Csrf = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    with _visit(request, csrf=csrf, post=True) as visit:
        job = review.get_job(visit.db, visit.user.organisation_id, job_id)
        kept = any(event.media_name for event in review.job_events(visit.db, job))
        vault = _vault(request) if kept else None
        review.false_positive(visit.db, vault, job, visit.user.username, visit.actor, note=note)
        return _after_review(visit, "rejected", job_id)


@router.get("/reviews/{job_id}/events/{event_id}/media")
def review_media(request: Request, job_id: JobId, event_id: EventId) -> Response:
    with _visit(request) as visit:
        job = review.get_job(visit.db, visit.user.organisation_id, job_id)
        if job.state != JobState.OPEN:
            raise errors.NotFound(f"job {job_id} is decided: its evidence is not shown here")
        name, media_type = review.view_evidence(visit.db, job, event_id, visit.actor)
    return image_response(_vault(request).get(name), media_type)


@router.get("/reviews/{job_id}/report.xml")
def review_report(request: Request, job_id: JobId) -> Response:
    with _visit(request) as visit:
        made = reports.get_report(visit.db, visit.user.organisation_id, job_id, _reporter(visit))
    return Response(
        reports.to_xml(made),
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="cybertipline-job-{job_id}.xml"'},
    )


# --- people --------------------------------------------------------------------------------


def _people_page(
    request: Request,
    visit: Visit,
    status: int = 200,
    problem: str | None = None,
    notice: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    return _render(
        request,
        "people.html",
        visit,
        status=status,
        section="people",
        problem=problem,
        notice=notice,
        users=people.list_users(visit.db, visit.organisation),
        roles=ROLES,
        role_names=ROLE_NAMES,
        min_password=people.MIN_PASSWORD,
        now=utcnow(),
        form=form or {"username": "", "role": "analyst"},
    )


@router.get("/people")
def people_page(request: Request, added: Annotated[str, Query(max_length=100)] = "") -> Response:
    with _visit(request, "admin") as visit:
        # Only a user name is echoed, so the link cannot be made to show someone's own words.
        known = added and people.USERNAME.fullmatch(added)
        notice = f"{added} can now sign in." if known else None
        return _people_page(request, visit, notice=notice)


@router.post("/people")
def add_person(
    request: Request,
    csrf: Csrf = "",
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "analyst",
) -> Response:
    with _visit(request, "admin", csrf=csrf, post=True) as visit:
        try:
            user = people.create_user(
                visit.db, visit.organisation, username, password, role, visit.actor
            )
        except (errors.InvalidInput, errors.Conflict) as exc:
            status = 409 if isinstance(exc, errors.Conflict) else 400
            form = {"username": username, "role": role}
            return _people_page(request, visit, status, problem=str(exc), form=form)
        name = user.username
    return _redirect(f"/console/people?added={name}")
