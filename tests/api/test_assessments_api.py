"""Intake and assessment over HTTP: the whole workflow, driven the way another tool would drive it.

A hotline takes images in, two analysts grade them independently, agreed grades are published
to the list's change feed, disagreements go to a senior analyst, and a senior analyst can revoke.
The images are generated noise and scikit-image sample photos: benign stand-ins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from hashwatch import errors
from hashwatch.api.errors import install_error_handlers
from hashwatch.mediastore import KEY_ENV
from tests.api.conftest import Service
from tests.imaging import encode

HOTLINE, ELSEWHERE = "hotline", "elsewhere"
WORKFLOW = "intake,assess,lists:read,match"


def noise(seed: int, size: int = 96) -> bytes:
    """A PNG of random pixels: every seed gives an image unlike every other."""
    rng = np.random.default_rng(seed)
    return encode(rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8), "PNG")


@dataclass
class Team:
    """A hotline with a list, analysts ana and ben, senior sue, admin ada; and another
    organisation with its own analyst eve and list."""

    service: Service
    list_id: int
    other_list_id: int
    media: Path

    def headers(self, scopes: str = WORKFLOW, org: str = HOTLINE) -> dict[str, str]:
        return self.service.headers(org, scopes)

    def intake(self, data: bytes, source: str = "report 1", **kwargs: Any) -> Any:
        fields = {"list_id": str(kwargs.pop("list_id", self.list_id)), "source": source}
        return self.service.client.post(
            "/v1/intake",
            headers=kwargs.pop("headers", None) or self.headers(),
            files={"file": ("upload.png", data, "image/png")},
            data=fields,
        )

    def taken_in(self, data: bytes) -> dict[str, Any]:
        response = self.intake(data)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def grade(self, item: int, analyst: str, grade: str, **extra: Any) -> Any:
        body = {"analyst": analyst, "grade": grade, **extra}
        return self.service.client.post(
            f"/v1/assessments/{item}/grades", headers=self.headers(), json=body
        )

    def decide(self, item: int, analyst: str, grade: str, **extra: Any) -> Any:
        body = {"analyst": analyst, "grade": grade, **extra}
        return self.service.client.post(
            f"/v1/assessments/{item}/decision", headers=self.headers(), json=body
        )

    def revoke(self, item: int, analyst: str, reason: str = "graded in error") -> Any:
        body = {"analyst": analyst, "reason": reason}
        return self.service.client.post(
            f"/v1/assessments/{item}/revoke", headers=self.headers(), json=body
        )

    def show(self, item: int, analyst: str, org: str = HOTLINE) -> Any:
        return self.service.client.get(
            f"/v1/assessments/{item}", params={"analyst": analyst}, headers=self.headers(org=org)
        )

    def queue(self, analyst: str) -> list[int]:
        response = self.service.client.get(
            "/v1/assessments/queue", params={"analyst": analyst}, headers=self.headers()
        )
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    def changes(self) -> list[dict[str, Any]]:
        response = self.service.client.get(
            f"/v1/lists/{self.list_id}/changes", headers=self.headers()
        )
        assert response.status_code == 200, response.text
        changes: list[dict[str, Any]] = response.json()["changes"]
        return changes

    def held(self) -> list[Path]:
        """The files in the media store."""
        return sorted(self.media.iterdir()) if self.media.exists() else []


@pytest.fixture
def team(service: Service, cheap_passwords: None, media_dir: Path) -> Team:
    list_id = service.make_list(HOTLINE, "verified")
    other_list_id = service.make_list(ELSEWHERE, "theirs")
    for name, role in (("ana", "analyst"), ("ben", "analyst"), ("sue", "senior"), ("ada", "admin")):
        service.user(HOTLINE, name, role)
    service.user(ELSEWHERE, "eve", "analyst")
    return Team(service, list_id, other_list_id, media_dir)


def test_two_analysts_agree_and_the_entries_reach_the_feed(team: Team) -> None:
    item = team.taken_in(noise(1))
    assert item["state"] == "queued" and item["list_id"] == team.list_id
    assert set(item["hashes"]) == {"md5", "sha1", "sha256", "pdq"}
    assert item["media_held"] is True and item["required_grades"] == 2
    assert item["source"] == "report 1" and item["media_type"] == "image/png"
    assert item["duplicate_of_id"] is None and item["listed_entry_id"] is None
    (stored,) = team.held()
    assert noise(1) not in stored.read_bytes()  # encrypted at rest
    item_id = item["id"]
    assert team.queue("ana") == team.queue("ben") == [item_id]

    first = team.grade(item_id, "ana", "B", age_band="7-10", labels=["series:x"])
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "queued"
    assert team.queue("ana") == [] and team.queue("ben") == [item_id]
    assert team.grade(item_id, "ana", "B").status_code == 409  # one grade per analyst
    # Ben grades without seeing Ana's grade: neither the item nor its page carries it.
    page = team.show(item_id, "ben")
    assert page.status_code == 200 and page.json()["grades"] is None
    assert "series:x" not in page.text and page.json()["grade"] is None

    second = team.grade(item_id, "ben", "B", age_band="7-10")
    assert second.status_code == 200, second.text
    decided = second.json()
    assert decided["state"] == "published" and decided["grade"] == "B"
    assert decided["age_band"] == "7-10" and decided["decided_at"] is not None
    assert decided["media_held"] is False and team.held() == []
    assert team.queue("ana") == team.queue("ben") == team.queue("sue") == []

    changes = team.changes()
    assert sorted(c["entry_id"] for c in changes) == sorted(decided["entry_ids"])
    assert {c["signal_type"] for c in changes} == {"md5", "sha1", "sha256", "pdq"}
    for change in changes:
        assert change["kind"] == "add" and change["category"] == "B"
        assert "age:7-10" in change["labels"] and "series:x" in change["labels"]
        assert change["source"] == "report 1"
        assert change["value"] == item["hashes"][change["signal_type"]]

    # A senior analyst sees who graded what once it is decided; an analyst never does.
    graded = team.show(item_id, "sue").json()["grades"]
    assert sorted((g["analyst"], g["grade"], g["final"]) for g in graded) == [
        ("ana", "B", False),
        ("ben", "B", False),
    ]
    assert team.show(item_id, "ana").json()["grades"] is None

    # What was published matches, as soon as the worker has read the feed.
    team.service.refresh()
    match = team.service.client.post(
        "/v1/match",
        headers=team.headers(),
        files={"file": ("query.png", noise(1), "image/png")},
    )
    assert match.status_code == 200, match.text
    assert {m["entry_id"] for m in match.json()["matches"]} <= set(decided["entry_ids"])
    assert match.json()["matches"]


def test_a_disagreement_goes_to_a_senior_analyst_whose_decision_is_final(team: Team) -> None:
    item_id = team.taken_in(noise(2))["id"]
    assert team.grade(item_id, "ana", "A").status_code == 200
    escalated = team.grade(item_id, "ben", "C")
    assert escalated.status_code == 200 and escalated.json()["state"] == "escalated"
    assert escalated.json()["media_held"] is True and len(team.held()) == 1
    assert team.changes() == []
    # Escalations wait for senior analysts only.
    assert team.queue("ana") == [] and team.queue("ben") == []
    assert team.queue("sue") == [item_id] and team.queue("ada") == [item_id]
    assert team.grade(item_id, "sue", "A").status_code == 409  # not waiting for grades now

    forbidden = team.decide(item_id, "ana", "A")
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    graded = team.show(item_id, "sue").json()["grades"]
    assert sorted(g["grade"] for g in graded) == ["A", "C"]
    assert team.show(item_id, "ben").json()["grades"] is None

    decided = team.decide(item_id, "sue", "A", age_band="3-6")
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "published" and decided.json()["grade"] == "A"
    assert team.held() == []
    assert {c["category"] for c in team.changes()} == {"A"}
    assert team.decide(item_id, "ada", "C").status_code == 409  # decided once
    final = [g for g in team.show(item_id, "ada").json()["grades"] if g["final"]]
    assert [(g["analyst"], g["grade"]) for g in final] == [("sue", "A")]


def test_not_abuse_material_is_rejected_and_publishes_nothing(team: Team) -> None:
    item_id = team.taken_in(noise(3))["id"]
    team.grade(item_id, "ana", "none")
    rejected = team.grade(item_id, "ben", "none")
    assert rejected.status_code == 200
    assert rejected.json()["state"] == "rejected" and rejected.json()["entry_ids"] == []
    assert team.changes() == [] and team.held() == []


def test_a_senior_who_graded_an_item_cannot_settle_it(team: Team) -> None:
    item_id = team.taken_in(noise(4))["id"]
    team.grade(item_id, "sue", "A")
    team.grade(item_id, "ana", "B")
    assert team.queue("sue") == []  # ada's to settle, not sue's
    assert team.queue("ada") == [item_id]
    assert team.decide(item_id, "sue", "A").status_code == 409
    assert team.decide(item_id, "ada", "B").json()["state"] == "published"


def test_revoking_a_published_item_reaches_the_feed(team: Team) -> None:
    item_id = team.taken_in(noise(5))["id"]
    team.grade(item_id, "ana", "C")
    published = team.grade(item_id, "ben", "C").json()
    assert published["state"] == "published"
    denied = team.revoke(item_id, "ana")
    assert denied.status_code == 403
    revoked = team.revoke(item_id, "sue", "a second look: not the same series")
    assert revoked.status_code == 200, revoked.text
    changes = team.changes()
    revocations = [c for c in changes if c["kind"] == "revoke"]
    assert sorted(c["entry_id"] for c in revocations) == sorted(published["entry_ids"])
    assert {c["reason"] for c in revocations} == {"a second look: not the same series"}
    # Members stop matching it once their worker reads the feed.
    team.service.refresh()
    match = team.service.client.post(
        "/v1/match",
        headers=team.headers(),
        files={"file": ("query.png", noise(5), "image/png")},
    )
    assert match.status_code == 200 and match.json()["matches"] == []
    # Only published items can be revoked.
    queued = team.taken_in(noise(6))["id"]
    assert team.revoke(queued, "sue").status_code == 409


def test_duplicates_are_grouped_and_never_graded_twice(team: Team, photos: Any) -> None:
    coffee = Image.fromarray(photos["coffee"])
    first = team.taken_in(encode(coffee, "PNG"))
    same = team.taken_in(encode(coffee, "PNG"))
    assert same["state"] == "duplicate" and same["duplicate_of_id"] == first["id"]
    assert same["media_held"] is False
    # A re-encoded, resized copy is the same image to PDQ.
    near = team.taken_in(encode(coffee.resize((300, 200)), "JPEG", quality=80))
    assert near["state"] == "duplicate" and near["duplicate_of_id"] == first["id"]
    assert near["hashes"]["sha256"] != first["hashes"]["sha256"]
    assert len(team.held()) == 1
    assert team.queue("ana") == [first["id"]]

    team.grade(first["id"], "ana", "B")
    team.grade(first["id"], "ben", "B")
    listed = team.taken_in(encode(coffee, "PNG"))
    assert listed["state"] == "duplicate" and listed["listed_entry_id"] is not None
    assert listed["duplicate_of_id"] is None
    assert team.held() == [] and team.queue("ana") == []


def test_another_organisation_sees_nothing_of_the_queue(team: Team) -> None:
    item_id = team.taken_in(noise(7))["id"]
    escalated = team.taken_in(noise(8))["id"]
    team.grade(escalated, "ana", "A")
    team.grade(escalated, "ben", "B")
    outsider = team.headers(org=ELSEWHERE)
    client = team.service.client

    def status(method: str, path: str, **kwargs: Any) -> int:
        response = client.request(method, path, headers=outsider, **kwargs)
        if response.status_code == 404:
            error = response.json()["error"]
            assert error["code"] == "not_found"
            # Only what they sent comes back: as if our user or item did not exist.
            assert error["message"].startswith(("no user named", "no intake item")), error
        return int(response.status_code)

    # Their own analyst asking for our items, or naming our analysts: 404 alike.
    for analyst in ("eve", "ana", "sue", "nobody"):
        params = {"analyst": analyst}
        assert status("GET", f"/v1/assessments/{item_id}", params=params) == 404
        assert status("GET", f"/v1/assessments/{escalated}", params=params) == 404
        body = {"analyst": analyst, "grade": "A"}
        assert status("POST", f"/v1/assessments/{item_id}/grades", json=body) == 404
        assert status("POST", f"/v1/assessments/{escalated}/decision", json=body) == 404
        revoke = {"analyst": analyst, "reason": "x"}
        assert status("POST", f"/v1/assessments/{item_id}/revoke", json=revoke) == 404
    assert status("GET", "/v1/assessments/queue", params={"analyst": "ana"}) == 404
    assert team.queue("ana") == [item_id]  # our own view is unchanged
    eve_queue = client.get("/v1/assessments/queue", params={"analyst": "eve"}, headers=outsider)
    assert eve_queue.status_code == 200 and eve_queue.json()["items"] == []
    # Intake into our list, even one shared with them, is a 404 as for a list that does not exist.
    team.service.grant(team.list_id, ELSEWHERE, "read")
    refused = team.intake(noise(9), headers=outsider)
    missing = team.intake(noise(9), headers=outsider, list_id=999_999)
    assert refused.status_code == missing.status_code == 404
    assert refused.json()["error"] == {
        "code": "not_found",
        "message": f"no list with id {team.list_id}",
    }
    # Their dashboard counts nothing of ours.
    theirs = client.get("/v1/assessments/dashboard", headers=outsider).json()
    assert theirs["queued"] == 0 and theirs["escalated"] == 0
    ours = client.get("/v1/assessments/dashboard", headers=team.headers()).json()
    assert ours["queued"] == 1 and ours["escalated"] == 1
    # Their own list takes their intake.
    own = team.intake(noise(9), headers=outsider, list_id=team.other_list_id)
    assert own.status_code == 201 and own.json()["list_id"] == team.other_list_id


def test_scopes_and_roles(team: Team) -> None:
    client = team.service.client
    no_intake = team.headers("assess,lists:read")
    refused = team.intake(noise(10), headers=no_intake)
    assert refused.status_code == 403 and "'intake' scope" in refused.json()["error"]["message"]
    item_id = team.taken_in(noise(10))["id"]
    no_assess = team.headers("intake,lists:read,match")
    for method, path, kwargs in (
        ("GET", "/v1/assessments/queue", {"params": {"analyst": "ana"}}),
        ("GET", "/v1/assessments/dashboard", {}),
        ("GET", f"/v1/assessments/{item_id}", {"params": {"analyst": "ana"}}),
        ("POST", f"/v1/assessments/{item_id}/grades", {"json": {"analyst": "ana", "grade": "A"}}),
        ("POST", f"/v1/assessments/{item_id}/decision", {"json": {"analyst": "sue", "grade": "A"}}),
        ("POST", f"/v1/assessments/{item_id}/revoke", {"json": {"analyst": "sue", "reason": "x"}}),
    ):
        response = client.request(method, path, headers=no_assess, **kwargs)
        assert response.status_code == 403, (method, path)
        assert client.request(method, path, **kwargs).status_code == 401, (method, path)

    # A disabled account acts no more.
    from hashwatch import people

    with team.service.store.session() as session:
        people.disable_user(session, people.get_user(session, "ben"), "test")
    disabled = team.grade(item_id, "ben", "A")
    assert disabled.status_code == 403 and "disabled" in disabled.json()["error"]["message"]
    assert team.grade(item_id, "nobody", "A").status_code == 404
    # Analysts grade; only senior analysts and administrators decide and revoke.
    assert team.decide(item_id, "ana", "A").status_code == 403
    assert team.revoke(item_id, "ana").status_code == 403
    assert team.grade(item_id, "ada", "A").status_code == 200  # an admin grades too


def test_bad_input_is_refused_never_a_server_error(team: Team, make_service: Any) -> None:
    item_id = team.taken_in(noise(11))["id"]
    client = team.service.client
    cases = [
        (team.grade(item_id, "ana", "Z"), 400),
        (team.grade(item_id, "ana", "A", age_band="99"), 400),
        (team.grade(item_id, "ana", "A", labels=["x" * 101]), 422),
        (team.grade(item_id, "ana", "A", labels=[f"l{i}" for i in range(21)]), 422),
        (team.grade(item_id, "ana", "A", extra=1), 422),
        (team.grade(item_id, "", "A"), 422),
        (team.grade(item_id, "x" * 101, "A"), 422),
        (team.grade(item_id, "ana\x00", "A"), 404),
        (team.grade(999_999, "ana", "A"), 404),
        (team.decide(item_id, "sue", "A"), 409),  # not escalated
        (team.revoke(item_id, "sue", ""), 422),
        (team.intake(b""), 400),
        (team.intake(b"not an image at all"), 415),
        (team.intake(noise(12)[:200]), 422),
        (team.intake(noise(12), source="s" * 201), 422),
        (team.intake(noise(12), list_id="abc"), 422),
        (team.intake(noise(12), list_id=0), 422),
        (team.intake(noise(12), list_id=2**80), 422),
        (client.post("/v1/intake", headers=team.headers(), data={"list_id": "1"}), 422),
        (client.post("/v1/intake", headers=team.headers(), content=b"{}"), 422),
        (client.get("/v1/assessments/0", params={"analyst": "ana"}, headers=team.headers()), 422),
        (
            client.get(
                f"/v1/assessments/{2**70}", params={"analyst": "ana"}, headers=team.headers()
            ),
            422,
        ),
        (client.get("/v1/assessments/abc", params={"analyst": "ana"}, headers=team.headers()), 422),
        (client.get(f"/v1/assessments/{item_id}", headers=team.headers()), 422),
        (
            client.get(
                "/v1/assessments/queue",
                params={"analyst": "ana", "limit": 0},
                headers=team.headers(),
            ),
            422,
        ),
        (
            client.post(f"/v1/assessments/{item_id}/grades", headers=team.headers(), content=b"{"),
            422,
        ),
    ]
    for number, (response, expected) in enumerate(cases):
        assert response.status_code == expected, (number, response.text)
        assert set(response.json()["error"]) >= {"code", "message"}, number
    assert team.queue("ana") == [item_id]  # none of it changed the item

    small = make_service(max_upload_bytes=1000)
    too_large = small.client.post(
        "/v1/intake",
        headers=team.headers(),
        files={"file": ("big.png", noise(13), "image/png")},
        data={"list_id": str(team.list_id)},
    )
    assert too_large.status_code == 413


def test_without_a_media_key_intake_and_grading_answer_503(
    service: Service, cheap_passwords: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    list_id = service.make_list(HOTLINE, "verified")
    service.user(HOTLINE, "ana")
    response = service.client.post(
        "/v1/intake",
        headers=service.headers(HOTLINE, WORKFLOW),
        files={"file": ("a.png", noise(14), "image/png")},
        data={"list_id": str(list_id)},
    )
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "media_store_unavailable" and "hashwatch media-key" in error["message"]
    graded = service.client.post(
        "/v1/assessments/1/grades",
        headers=service.headers(HOTLINE, WORKFLOW),
        json={"analyst": "ana", "grade": "A"},
    )
    assert graded.status_code == 503
    # What needs no media still works.
    queue = service.client.get(
        "/v1/assessments/queue",
        params={"analyst": "ana"},
        headers=service.headers(HOTLINE, WORKFLOW),
    )
    assert queue.status_code == 200 and queue.json()["items"] == []


def test_dashboard(team: Team) -> None:
    agreed = team.taken_in(noise(15))["id"]
    team.grade(agreed, "ana", "A", age_band="0-2")
    team.grade(agreed, "ben", "A", age_band="0-2")
    disputed = team.taken_in(noise(16))["id"]
    team.grade(disputed, "ana", "A")
    team.grade(disputed, "ben", "B")
    team.taken_in(noise(17))
    response = team.service.client.get("/v1/assessments/dashboard", headers=team.headers())
    assert response.status_code == 200, response.text
    board = response.json()
    assert board["queued"] == 1 and board["escalated"] == 1
    assert board["agreement_rate"] == pytest.approx(0.5)
    assert board["oldest_waiting_seconds"] >= 0
    graded = {row["analyst"]: row["grades"] for row in board["grades_per_day"]}
    assert graded == {"ana": 2, "ben": 2}
    (composition,) = board["lists"]
    assert composition["list_id"] == team.list_id and composition["list"] == "verified"
    assert composition["images"] == 1
    assert composition["by_category"] == {"A": 1} and composition["by_age_band"] == {"0-2": 1}


def test_login_errors_map_to_401_and_429_with_retry_after() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/failed")
    def failed() -> None:
        raise errors.LoginFailed("wrong user name or password")

    @app.get("/throttled")
    def throttled() -> None:
        raise errors.LoginThrottled("locked", retry_after=61.2)

    with TestClient(app) as client:
        response = client.get("/failed")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "login_failed"
        response = client.get("/throttled")
        assert response.status_code == 429 and response.headers["retry-after"] == "62"
