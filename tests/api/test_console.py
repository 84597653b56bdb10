"""The console's pages driven by plain form posts (Starlette's TestClient), on SQLite and
PostgreSQL: sessions and their cookies, CSRF, roles, the security headers, independent grading,
and that another organisation sees nothing. The same workflow in a real browser lives in
tests/browser/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from hashwatch import lists, people
from hashwatch.mediastore import generate_key
from hashwatch.organisations import get_or_create_organisation
from hashwatch.store.models import (
    AuditEvent,
    ConsoleSession,
    HashList,
    IntakeItem,
    ItemState,
    JobState,
    MatchEvent,
    ReviewJob,
    utcnow,
)
from tests.api.conftest import Service
from tests.imaging import encode

PASSWORD = "a long enough password"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(autouse=True)
def console_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    media = tmp_path / "media"
    monkeypatch.setenv("HASHWATCH_MEDIA_KEY", generate_key())
    monkeypatch.setenv("HASHWATCH_MEDIA_DIR", str(media))
    monkeypatch.setattr(people, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024))
    return media


def image(seed: int) -> bytes:
    """A benign generated picture: smooth colour gradients with a seeded pattern."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:96, 0:96]
    phase = rng.uniform(0, 6.3, size=3)
    channels = [(np.sin(x / (7 + 3 * i) + y / (11 + i) + phase[i]) + 1) * 127 for i in range(3)]
    return encode(np.dstack(channels).astype(np.uint8), "PNG")


@dataclass
class Person:
    client: TestClient
    username: str

    def page(self, path: str) -> Any:
        return self.client.get(path, follow_redirects=False)

    def csrf(self) -> str:
        found = CSRF_FIELD.search(self.client.get("/console").text)
        assert found, "no CSRF token on the queue page"
        return found.group(1)

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> Any:
        form = {"csrf": self.csrf(), **(data or {})}
        return self.client.post(path, data=form, follow_redirects=False, **kwargs)


@dataclass
class Hotline:
    service: Service
    list_id: int

    def person(self, username: str, role: str = "analyst", org: str = "hotline") -> Person:
        with self.service.store.session() as session:
            organisation = get_or_create_organisation(session, org)
            people.create_user(session, organisation, username, PASSWORD, role, "test")
        return self.sign_in(username)

    def sign_in(self, username: str, base_url: str = "http://testserver") -> Person:
        client = TestClient(self.service.client.app, base_url=base_url)
        form = client.get("/console/login")
        token = CSRF_FIELD.search(form.text)
        assert token
        response = client.post(
            "/console/login",
            data={"username": username, "password": PASSWORD, "csrf": token.group(1)},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/console"
        return Person(client, username)

    def take_in(self, person: Person, *images: bytes, list_id: int | None = None) -> Any:
        files = [("files", (f"image-{i}.png", data, "image/png")) for i, data in enumerate(images)]
        chosen = str(list_id or self.list_id)
        return person.post("/console/intake", {"list_id": chosen, "source": "test"}, files=files)

    def items(self) -> list[IntakeItem]:
        with self.service.store.session() as session:
            return list(session.scalars(select(IntakeItem).order_by(IntakeItem.id)))


@pytest.fixture
def hotline(service: Service) -> Iterator[Hotline]:
    list_id = service.make_list("hotline", "verified")  # two grades, the default
    yield Hotline(service, list_id)


def item_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'href="/console/items/(\d+)"', html)]


# --- sessions, cookies, headers ----------------------------------------------------------------


def test_pages_need_a_session(hotline: Hotline) -> None:
    client = hotline.service.client
    for path in ("/console", "/console/items/1", "/console/items/1/media", "/console/dashboard"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/console/login"
    response = client.post("/console/items/1/grade", data={"grade": "A"}, follow_redirects=False)
    assert response.status_code == 303


def test_console_responses_carry_the_security_headers(hotline: Hotline) -> None:
    alice = hotline.person("alice")
    pages = ("/console", "/console/login", "/console/items/999", "/console/dashboard")
    for response in (alice.page(path) for path in pages):
        headers = response.headers
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"
    page = alice.page("/console").text
    assert "<script>" not in page and "style=" not in page, "nothing inline under the CSP"


def test_the_session_cookie_is_strict_and_secure_except_on_localhost(hotline: Hotline) -> None:
    with hotline.service.store.session() as session:
        organisation = get_or_create_organisation(session, "hotline")
        people.create_user(session, organisation, "alice", PASSWORD, "analyst", "test")
    for base_url, secure in (
        ("http://testserver", False),
        ("http://127.0.0.1", False),
        ("http://console.example.org", True),
        ("https://console.example.org", True),
    ):
        client = TestClient(hotline.service.client.app, base_url=base_url)
        form = client.get("/console/login")
        login_cookie = form.headers["set-cookie"]
        assert "hw_login=" in login_cookie and "HttpOnly" in login_cookie
        token = CSRF_FIELD.search(form.text)
        assert token
        # The cookie jar keeps Secure cookies from plain-HTTP hosts out: send the token along.
        client.cookies.set("hw_login", token.group(1), path="/console/login")
        response = client.post(
            "/console/login",
            data={"username": "alice", "password": PASSWORD, "csrf": token.group(1)},
            follow_redirects=False,
        )
        assert response.status_code == 303
        cookie = next(
            value
            for name, value in response.headers.multi_items()
            if name == "set-cookie" and value.startswith("hw_session=")
        )
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/console" in cookie
        assert ("Secure" in cookie) is secure, base_url


def test_sign_in_needs_the_form_token(hotline: Hotline) -> None:
    hotline.person("alice")
    client = TestClient(hotline.service.client.app)
    response = client.post(
        "/console/login",
        data={"username": "alice", "password": PASSWORD, "csrf": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "hw_session" not in response.cookies


def test_wrong_passwords_are_throttled(hotline: Hotline) -> None:
    hotline.person("alice")
    client = TestClient(hotline.service.client.app)
    for attempt in range(people.MAX_FAILED_LOGINS):
        token = CSRF_FIELD.search(client.get("/console/login").text)
        assert token
        response = client.post(
            "/console/login",
            data={"username": "alice", "password": "not the password", "csrf": token.group(1)},
        )
        expected = 429 if attempt == people.MAX_FAILED_LOGINS - 1 else 401
        assert response.status_code == expected
    assert "try again in 15 minutes" in response.text
    token = CSRF_FIELD.search(client.get("/console/login").text)
    assert token
    response = client.post(
        "/console/login",
        data={"username": "alice", "password": PASSWORD, "csrf": token.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 429, "locked even with the right password"
    assert int(response.headers["retry-after"]) > 14 * 60


def test_an_expired_session_goes_back_to_sign_in(hotline: Hotline) -> None:
    alice = hotline.person("alice")
    assert alice.page("/console").status_code == 200
    with hotline.service.store.session() as session:
        session.execute(update(ConsoleSession).values(expires_at=utcnow()))
    response = alice.page("/console")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    with hotline.service.store.session() as session:
        assert session.scalars(select(ConsoleSession)).all() == [], "the expired one is gone"


def test_sign_out_ends_the_session(hotline: Hotline) -> None:
    alice = hotline.person("alice")
    token = alice.csrf()
    response = alice.client.post("/console/logout", data={"csrf": token}, follow_redirects=False)
    assert response.status_code == 303
    alice.client.cookies.clear()
    with hotline.service.store.session() as session:
        assert session.scalars(select(ConsoleSession)).all() == []


# --- CSRF and roles ----------------------------------------------------------------------------


def test_every_post_needs_the_csrf_token(hotline: Hotline) -> None:
    admin = hotline.person("root", "admin")
    hotline.take_in(admin, image(1))
    (item,) = hotline.items()
    for path, data in (
        (f"/console/items/{item.id}/grade", {"grade": "A"}),
        (f"/console/items/{item.id}/decision", {"grade": "A"}),
        (f"/console/items/{item.id}/revoke", {"reason": "wrong"}),
        ("/console/intake", {"list_id": str(hotline.list_id)}),
        ("/console/people", {"username": "mallory", "password": PASSWORD, "role": "admin"}),
        ("/console/logout", {}),
    ):
        for forged in ({}, {"csrf": "forged"}):
            response = admin.client.post(path, data={**data, **forged}, follow_redirects=False)
            assert response.status_code == 403, (path, forged)
            assert "security token" in response.text
    assert admin.page("/console").status_code == 200, "still signed in"
    with hotline.service.store.session() as session:
        assert [u.username for u in people.list_users(session, _org(session))] == ["root"]
    # The header is as good as the field (for scripts).
    response = admin.client.post(
        f"/console/items/{item.id}/grade",
        data={"grade": "C"},
        headers={"X-CSRF-Token": admin.csrf()},
        follow_redirects=False,
    )
    assert response.status_code == 303


def _org(session: Any) -> Any:
    return get_or_create_organisation(session, "hotline")


def test_roles(hotline: Hotline) -> None:
    alice = hotline.person("alice")
    senior = hotline.person("sam", "senior")
    admin = hotline.person("root", "admin")
    assert alice.page("/console/people").status_code == 403
    assert senior.page("/console/people").status_code == 403
    assert admin.page("/console/people").status_code == 200
    assert "/console/people" not in alice.page("/console").text, "no link to a closed page"

    response = alice.post("/console/people", {"username": "eve", "password": PASSWORD})
    assert response.status_code == 403
    response = admin.post(
        "/console/people", {"username": "Bob", "password": PASSWORD, "role": "analyst"}
    )
    assert response.status_code == 303
    assert "bob can now sign in" in admin.client.get(response.headers["location"]).text
    response = admin.post("/console/people", {"username": "bob", "password": PASSWORD})
    assert response.status_code == 409
    response = admin.post("/console/people", {"username": "carol", "password": "short"})
    assert response.status_code == 400
    assert "at least 12 characters" in response.text

    hotline.take_in(alice, image(2))
    (item,) = hotline.items()
    assert alice.post(f"/console/items/{item.id}/decision", {"grade": "A"}).status_code == 403
    assert alice.post(f"/console/items/{item.id}/revoke", {"reason": "x"}).status_code == 403
    assert "/revoke" not in alice.page("/console/published").text


# --- the workflow --------------------------------------------------------------------------------


def test_two_agreeing_grades_publish_and_delete_the_media(
    hotline: Hotline, console_env: Path
) -> None:
    alice = hotline.person("alice")
    bob = hotline.person("bob")
    response = hotline.take_in(alice, image(3), image(4), b"not an image")
    assert response.status_code == 200
    assert "queued for grading" in response.text
    assert "not taken in" in response.text
    first, second = hotline.items()
    assert len(list(console_env.iterdir())) == 2
    assert all(b"\x89PNG" not in path.read_bytes() for path in console_env.iterdir())

    queue = alice.page("/console").text
    assert item_ids(queue)[:3] == [first.id, first.id, second.id], "oldest first, then a link"
    page = alice.page(f"/console/items/{first.id}").text
    assert 'class="veiled"' in page
    assert 'data-shortcut="r"' in page and 'data-shortcut="0 n"' in page

    media = alice.page(f"/console/items/{first.id}/media")
    assert media.status_code == 200
    assert media.content == image(3)
    assert media.headers["content-type"] == "image/png"
    assert media.headers["cache-control"] == "no-store"
    assert media.headers["x-content-type-options"] == "nosniff"

    response = alice.post(
        f"/console/items/{first.id}/grade", {"grade": "B", "age_band": "7-10", "labels": "x"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/items/{second.id}?graded={first.id}"
    assert item_ids(alice.page("/console").text)[0] == second.id, "graded items leave the queue"
    again = alice.post(f"/console/items/{first.id}/grade", {"grade": "B"})
    assert again.status_code == 409

    page = bob.page(f"/console/items/{first.id}").text
    assert "alice" not in page and 'id="grades"' not in page, "another's grade never shows"
    assert 'id="own-grade"' not in page
    response = bob.post(f"/console/items/{first.id}/grade", {"grade": "B", "age_band": "7-10"})
    assert response.status_code == 303

    decided = {item.id: item for item in hotline.items()}[first.id]
    assert decided.state == ItemState.PUBLISHED
    assert decided.media_name is None
    assert len(list(console_env.iterdir())) == 1, "only the waiting image is kept"
    assert alice.page(f"/console/items/{first.id}/media").status_code == 404
    with hotline.service.store.session() as session:
        hash_list = session.get(HashList, hotline.list_id)
        assert hash_list is not None
        changes = lists.changes(session, hash_list)
    assert {change.signal_type for change in changes} >= {"md5", "sha1", "sha256"}
    assert all(change.category == "B" and "age:7-10" in change.labels for change in changes)

    published = alice.page("/console/published").text
    assert f"Item {first.id}" in published
    dashboard = alice.page("/console/dashboard").text
    assert 'id="queued-count">1<' in dashboard
    assert 'id="agreement">100%<' in dashboard


def test_a_disagreement_goes_to_a_senior_analyst(hotline: Hotline, console_env: Path) -> None:
    alice = hotline.person("alice")
    bob = hotline.person("bob")
    sam = hotline.person("sam", "senior")
    hotline.take_in(alice, image(5))
    (item,) = hotline.items()
    assert alice.post(f"/console/items/{item.id}/grade", {"grade": "A"}).status_code == 303
    assert bob.post(f"/console/items/{item.id}/grade", {"grade": "C"}).status_code == 303
    assert hotline.items()[0].state == ItemState.ESCALATED

    page = alice.page(f"/console/items/{item.id}").text
    assert "a senior analyst decides" in page
    assert "bob" not in page and 'id="grades"' not in page
    assert item_ids(alice.page("/console").text) == []
    assert item_ids(sam.page("/console").text)[0] == item.id

    page = sam.page(f"/console/items/{item.id}").text
    assert 'id="grades"' in page and "alice" in page and "bob" in page
    assert f'action="/console/items/{item.id}/decision"' in page
    response = sam.post(f"/console/items/{item.id}/decision", {"grade": "none"})
    assert response.status_code == 303
    assert response.headers["location"] == f"/console?decided={item.id}"
    assert hotline.items()[0].state == ItemState.REJECTED
    assert list(console_env.iterdir()) == []


def test_a_senior_analyst_revokes_a_published_item(hotline: Hotline) -> None:
    alice = hotline.person("alice")
    sam = hotline.person("sam", "senior")
    hotline.take_in(alice, image(6))
    (item,) = hotline.items()
    alice.post(f"/console/items/{item.id}/grade", {"grade": "A1"})
    sam.post(f"/console/items/{item.id}/grade", {"grade": "A1"})
    assert hotline.items()[0].state == ItemState.PUBLISHED
    assert sam.post(f"/console/items/{item.id}/revoke", {"reason": ""}).status_code == 400
    response = sam.post(f"/console/items/{item.id}/revoke", {"reason": "graded in error"})
    assert response.status_code == 303
    assert "revoked" in sam.client.get(response.headers["location"]).text
    with hotline.service.store.session() as session:
        hash_list = session.get(HashList, hotline.list_id)
        assert hash_list is not None
        revocations = [c for c in lists.changes(session, hash_list) if c.kind == "revoke"]
    assert revocations and all(c.revoke_reason == "graded in error" for c in revocations)


def test_a_duplicate_is_grouped_not_queued(hotline: Hotline) -> None:
    alice = hotline.person("alice")
    hotline.take_in(alice, image(7))
    response = hotline.take_in(alice, image(7))
    first, second = hotline.items()
    assert second.state == ItemState.DUPLICATE and second.duplicate_of_id == first.id
    assert f"the same image as item {first.id}" in response.text
    assert item_ids(alice.page("/console").text)[:1] == [first.id]
    nothing = alice.post("/console/intake", {"list_id": str(hotline.list_id)})
    assert nothing.status_code == 400
    assert "Choose one or more images" in nothing.text


def test_another_organisation_sees_nothing(hotline: Hotline) -> None:
    alice = hotline.person("alice")
    hotline.take_in(alice, image(8))
    (item,) = hotline.items()
    other_list = hotline.service.make_list("elsewhere", "theirs")
    mallory = hotline.person("mallory", "admin", org="elsewhere")
    assert item_ids(mallory.page("/console").text) == []
    assert mallory.page(f"/console/items/{item.id}").status_code == 404
    assert mallory.page(f"/console/items/{item.id}/media").status_code == 404
    assert mallory.post(f"/console/items/{item.id}/grade", {"grade": "A"}).status_code == 404
    assert mallory.post(f"/console/items/{item.id}/revoke", {"reason": "x"}).status_code == 404
    response = hotline.take_in(mallory, image(9), list_id=hotline.list_id)
    assert response.status_code == 404, "nor take images in for its list"
    assert f'value="{hotline.list_id}"' not in mallory.page("/console/intake").text
    assert f'value="{other_list}"' in mallory.page("/console/intake").text
    assert "alice" not in mallory.page("/console/people").text
    assert len(hotline.items()) == 1


# --- the platform's review pages ----------------------------------------------------------------


def matched_upload(hotline: Hotline, pixels_seed: int, user: str, content: str) -> dict[str, Any]:
    """A platform's upload matched over the API with its content reference (evidence kept)."""
    service = hotline.service
    answer = service.post(
        "/v1/match",
        "platform",
        files={"file": ("upload.png", image(pixels_seed), "image/png")},
        data={"content_id": content, "user_id": user},
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["event_id"], body
    return body


@pytest.fixture
def platform_job(hotline: Hotline) -> int:
    """A platform that keeps evidence, with one open job: an upload that matched the hotline's
    list shared with it."""
    service = hotline.service
    hashed = service.post("/v1/hash", "hotline", files={"file": ("a.png", image(21))}).json()
    entry = {"signal_type": "pdq", "value": hashed["hashes"]["pdq"], "category": "B1"}
    list_id = service.make_list("hotline", "shared", [entry])
    service.grant(list_id, "platform", "match")
    service.refresh()
    answer = service.client.put(
        "/v1/settings/evidence",
        headers=service.headers("platform"),
        json={"retain_evidence": True},
    )
    assert answer.status_code == 200
    return int(matched_upload(hotline, 21, "user-1", "c-1")["event_id"])


def job_of(hotline: Hotline, event_id: int) -> ReviewJob:
    with hotline.service.store.session() as session:
        event = session.get(MatchEvent, event_id)
        assert event is not None and event.job_id is not None
        job = session.get(ReviewJob, event.job_id)
        assert job is not None
        return job


def test_review_pages_belong_to_their_organisation(hotline: Hotline, platform_job: int) -> None:
    job = job_of(hotline, platform_job)
    rita = hotline.person("rita", org="platform")
    page = rita.page("/console/reviews")
    assert page.status_code == 200 and f'href="/console/reviews/{job.id}"' in page.text
    shown = rita.page(f"/console/reviews/{job.id}")
    assert shown.status_code == 200 and "c-1" in shown.text and "shared" in shown.text
    media = rita.page(f"/console/reviews/{job.id}/events/{platform_job}/media")
    assert media.status_code == 200 and media.headers["cache-control"] == "no-store"
    alice = hotline.person("alice")  # the hotline's analyst: not the platform's reviewer
    assert f"/console/reviews/{job.id}" not in alice.page("/console/reviews").text
    for path in (
        f"/console/reviews/{job.id}",
        f"/console/reviews/{job.id}/events/{platform_job}/media",
        f"/console/reviews/{job.id}/report.xml",
    ):
        assert alice.page(path).status_code == 404, path
    forged = alice.post(f"/console/reviews/{job.id}/confirm", {"classification": "A1"})
    assert forged.status_code == 404
    assert job_of(hotline, platform_job).state == JobState.OPEN
    refused = rita.client.post(
        f"/console/reviews/{job.id}/confirm",
        data={"classification": "A1"},  # no CSRF token
        follow_redirects=False,
    )
    assert refused.status_code == 403
    uk_scale = rita.post(f"/console/reviews/{job.id}/confirm", {"classification": "A"})
    assert uk_scale.status_code == 400  # the report needs the industry scale
    assert job_of(hotline, platform_job).state == JobState.OPEN
    with hotline.service.store.session() as session:
        viewed = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "review.media_viewed")
        ).all()
        assert len(viewed) == 1 and viewed[0].actor == "rita"


def test_a_confirmed_job_shows_its_report_and_no_more_images(
    hotline: Hotline, platform_job: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = job_of(hotline, platform_job)
    rita = hotline.person("rita", org="platform")
    done = rita.post(
        f"/console/reviews/{job.id}/confirm",
        {"classification": "B1", "annotations": "viral, found in a group", "viewed": "yes"},
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/reviews?confirmed={job.id}"
    decided = job_of(hotline, platform_job)
    assert decided.state == JobState.CONFIRMED and decided.classification == "B1"
    assert decided.viewed and decided.annotations == ["viral", "found in a group"]
    page = rita.page(f"/console/reviews/{job.id}").text
    assert 'id="report"' in page and "HASHWATCH_REPORTER_EMAIL" in page  # not configured
    assert rita.page(f"/console/reviews/{job.id}/events/{platform_job}/media").status_code == 404
    monkeypatch.setenv("HASHWATCH_REPORTER_NAME", "Ada Lovelace")
    monkeypatch.setenv("HASHWATCH_REPORTER_EMAIL", "safety@platform.example")
    assert "HASHWATCH_REPORTER_EMAIL" not in rita.page(f"/console/reviews/{job.id}").text
    xml = rita.page(f"/console/reviews/{job.id}/report.xml")
    assert xml.status_code == 200 and b"safety@platform.example" in xml.content
    again = rita.post(f"/console/reviews/{job.id}/false-positive", {})
    assert again.status_code == 409  # decided once


def test_a_false_positive_from_the_console_deletes_the_evidence(
    hotline: Hotline, platform_job: int, console_env: Path
) -> None:
    job = job_of(hotline, platform_job)
    assert len(list(console_env.iterdir())) == 1
    rita = hotline.person("rita", org="platform")
    done = rita.post(f"/console/reviews/{job.id}/false-positive", {"note": "a test pattern"})
    assert done.status_code == 303
    assert job_of(hotline, platform_job).state == JobState.FALSE_POSITIVE
    assert list(console_env.iterdir()) == []
    again = hotline.service.post(
        "/v1/match",
        "platform",
        files={"file": ("again.png", image(21), "image/png")},
        data={"content_id": "c-2", "user_id": "user-1"},
    ).json()
    assert again["matches"] and again["event_id"] is None
    assert "a test pattern" not in rita.page("/console/reviews").text  # the note is the owner's
