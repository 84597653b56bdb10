"""From a match over the API to a reviewed job: events recorded with the platform's content
reference, one job per user, confirm, false positives that never alert again and reach the
list's owner as disputes, and a stricter threshold of the platform's own."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Service, flip_bits, random_pdq
from tests.imaging import encode


def _world(service: Service) -> tuple[int, list[str]]:
    values = [random_pdq() for _ in range(3)]
    entries = [
        {"signal_type": "pdq", "value": v, "category": c}
        for v, c in zip(values, ("A1", "B2", "C"), strict=True)
    ]
    list_id = service.make_list("hotline", "verified", entries)
    service.grant(list_id, "platform", "match")
    return list_id, values


def _match(service: Service, value: str, user: str, content: str) -> dict[str, Any]:
    item = {
        "signal_type": "pdq",
        "value": value,
        "content": {"content_id": content, "user_id": user, "ip_address": "192.0.2.1"},
    }
    response = service.post("/v1/match", "platform", json={"hashes": [item]})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


def test_matches_become_one_job_per_user_and_are_confirmed(service: Service) -> None:
    _, (a1, b2, _) = _world(service)
    first = _match(service, flip_bits(b2, 3), "u-1", "c-1")
    second = _match(service, flip_bits(a1, 3), "u-1", "c-2")
    other = _match(service, flip_bits(b2, 2), "u-2", "c-3")
    assert first["event_id"] and second["event_id"] and other["event_id"]
    plain = service.post(
        "/v1/match", "platform", json={"hashes": [{"signal_type": "pdq", "value": a1}]}
    )
    assert "event_id" not in plain.json()["results"][0]  # no content reference: nothing kept
    jobs = service.get("/v1/reviews", "platform").json()["jobs"]
    assert [(j["user_ref"], j["severity"]) for j in jobs] == [("u-1", 0), ("u-2", 4)]
    job = service.get(f"/v1/reviews/{jobs[0]['id']}", "platform").json()
    assert [e["content_id"] for e in job["events"]] == ["c-1", "c-2"]
    assert job["events"][0]["ip_address"] == "192.0.2.1"
    assert service.get(f"/v1/reviews/{jobs[0]['id']}", "hotline").json()["error"]
    assert service.get(f"/v1/reviews/{jobs[0]['id']}", "hotline").status_code == 404
    done = service.post(
        f"/v1/reviews/{jobs[0]['id']}/confirm",
        "platform",
        json={"reviewer": "rita", "classification": "A1", "viewed": True},
    )
    assert done.status_code == 200 and done.json()["state"] == "confirmed"
    assert done.json()["preserve_until"] is not None
    report = service.get(f"/v1/reports/{jobs[0]['id']}?format=text", "platform")
    assert report.status_code == 200 and "c-1" in report.text
    again = service.post(
        f"/v1/reviews/{jobs[0]['id']}/confirm",
        "platform",
        json={"reviewer": "rita", "classification": "A1"},
    )
    assert again.status_code == 409


def test_a_false_positive_stops_alerting_and_is_a_dispute_for_the_owner(
    service: Service,
) -> None:
    list_id, (_, b2, c) = _world(service)
    query = flip_bits(b2, 3)
    first = _match(service, query, "u-1", "c-1")
    job_id = service.get("/v1/reviews", "platform").json()["jobs"][0]["id"]
    denied = service.post(
        f"/v1/reviews/{job_id}/false-positive", "platform", json={"reviewer": "rita"}
    )
    assert denied.status_code == 200 and denied.json()["state"] == "false_positive"
    assert first["event_id"]
    again = _match(service, query, "u-7", "c-2")
    assert again["matches"] and again["event_id"] is None  # still matched, never alerts
    assert _match(service, flip_bits(c, 2), "u-7", "c-3")["event_id"]
    disputes = service.get(f"/v1/lists/{list_id}/disputes", "hotline").json()["disputes"]
    assert [(d["value"], d["disputes"]) for d in disputes] == [(b2, 1)]
    assert service.get(f"/v1/lists/{list_id}/disputes", "platform").status_code == 404


def test_a_stricter_threshold_of_the_platforms_own(service: Service) -> None:
    list_id, (a1, _, _) = _world(service)
    too_loose = {"signal_type": "pdq", "threshold": 40}
    refused = service.client.put(
        f"/v1/lists/{list_id}/override", headers=service.headers("platform"), json=too_loose
    )
    assert refused.status_code == 400
    strict = {"signal_type": "pdq", "threshold": 2}
    made = service.client.put(
        f"/v1/lists/{list_id}/override", headers=service.headers("platform"), json=strict
    )
    assert made.status_code == 200
    far = _match(service, flip_bits(a1, 5), "u-1", "c-1")
    assert far["matches"] and far["event_id"] is None
    assert _match(service, flip_bits(a1, 1), "u-1", "c-2")["event_id"]
    unseen = service.client.put(
        "/v1/lists/9999/override", headers=service.headers("platform"), json=strict
    )
    assert unseen.status_code == 404


def test_an_uploaded_image_is_kept_as_evidence_only_when_turned_on(
    service: Service, photos: dict[str, Any], media_dir: Any
) -> None:
    image = encode(photos["astronaut"], "JPEG", quality=90)
    hashed = service.post("/v1/hash", "platform", files={"file": ("a.jpg", image)}).json()
    list_id = service.make_list(
        "hotline", "verified", [{"signal_type": "pdq", "value": hashed["hashes"]["pdq"]}]
    )
    service.grant(list_id, "platform", "match")
    form = {"content_id": "c-1", "user_id": "u-1"}

    def upload() -> dict[str, Any]:
        answer = service.post("/v1/match", "platform", files={"file": ("a.jpg", image)}, data=form)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    assert upload()["event_id"] and list(media_dir.glob("*")) == []  # off by default
    turned_on = service.client.put(
        "/v1/settings/evidence",
        headers=service.headers("platform"),
        json={"retain_evidence": True, "preserve_days": 30},
    )
    assert turned_on.status_code == 200 and turned_on.json()["preserve_days"] == 30
    assert upload()["event_id"]
    [kept] = list(media_dir.glob("*"))
    assert image[:64] not in kept.read_bytes()  # encrypted
    job = service.get("/v1/reviews", "platform").json()["jobs"][0]
    events = service.get(f"/v1/reviews/{job['id']}", "platform").json()["events"]
    assert [e["evidence_kept"] for e in events] == [False, True]
    service.post(f"/v1/reviews/{job['id']}/false-positive", "platform", json={"reviewer": "r"})
    assert list(media_dir.glob("*")) == []  # deleted with the decision
    bad = service.post(
        "/v1/match", "platform", files={"file": ("a.jpg", image)}, data={"content_id": "x"}
    )
    assert bad.status_code == 422  # a reference needs the user too


def test_evidence_is_served_only_to_its_organisation_and_only_while_kept(
    service: Service, photos: dict[str, Any]
) -> None:
    image = encode(photos["chelsea"], "PNG")
    hashed = service.post("/v1/hash", "platform", files={"file": ("a.png", image)}).json()
    list_id = service.make_list(
        "hotline", "verified", [{"signal_type": "pdq", "value": hashed["hashes"]["pdq"]}]
    )
    service.grant(list_id, "platform", "match")
    settings = service.client.put(
        "/v1/settings/evidence",
        headers=service.headers("platform"),
        json={"retain_evidence": True},
    )
    assert settings.status_code == 200
    # A re-encoded copy of the same picture, uploaded by a user of the platform.
    copy = encode(photos["chelsea"], "JPEG", quality=85)
    form = {"content_id": "c-1", "user_id": "u-1", "uploaded_at": "2026-01-02T03:04:05Z"}
    event_id = service.post(
        "/v1/match", "platform", files={"file": ("a.jpg", copy)}, data=form
    ).json()["event_id"]
    assert event_id
    job_id = service.get("/v1/reviews", "platform").json()["jobs"][0]["id"]
    path = f"/v1/reviews/{job_id}/events/{event_id}/media"
    shown = service.get(path, "platform")
    assert shown.status_code == 200 and shown.content == copy
    assert shown.headers["cache-control"] == "no-store"
    assert service.get(path, "hotline").status_code == 404  # another organisation's job
    assert service.get("/v1/reviews", "hotline").json()["jobs"] == []
    assert service.get(f"/v1/reviews/{job_id}/events/999999/media", "platform").status_code == 404
    service.post(f"/v1/reviews/{job_id}/false-positive", "platform", json={"reviewer": "r"})
    assert service.get(path, "platform").status_code == 404  # deleted with the decision
    # The same picture encoded once more: the platform marked it a false positive.
    again = encode(photos["chelsea"], "JPEG", quality=70)
    form = {"content_id": "c-2", "user_id": "u-2"}
    answer = service.post("/v1/match", "platform", files={"file": ("b.jpg", again)}, data=form)
    assert answer.json()["matches"] and answer.json()["event_id"] is None


def test_an_override_can_be_removed(service: Service) -> None:
    list_id, (a1, _, _) = _world(service)
    headers = service.headers("platform")
    path = f"/v1/lists/{list_id}/override"
    service.client.put(path, headers=headers, json={"signal_type": "pdq", "threshold": 2})
    assert _match(service, flip_bits(a1, 5), "u-1", "c-1")["event_id"] is None
    removed = service.client.delete(path, headers=headers, params={"signal_type": "pdq"})
    assert removed.status_code == 204
    assert _match(service, flip_bits(a1, 5), "u-1", "c-2")["event_id"]
    unseen = service.client.delete(
        f"/v1/lists/{list_id}/override",
        headers=service.headers("stranger"),
        params={"signal_type": "pdq"},
    )
    assert unseen.status_code == 404


def test_bad_input_is_never_a_server_error(service: Service) -> None:
    _, (a1, _, _) = _world(service)
    headers = service.headers("platform")
    bad_contents: list[Any] = [
        {"content_id": "c", "user_id": "u", "ip_address": "not an address"},
        {"content_id": "c", "user_id": "u", "uploaded_at": "yesterday"},
        {"content_id": "", "user_id": "u"},
        {"content_id": "c"},
        "c-1",
    ]
    for content in bad_contents:
        item = {"signal_type": "pdq", "value": a1, "content": content}
        answer = service.post("/v1/match", "platform", json={"hashes": [item]})
        assert 400 <= answer.status_code < 500, (content, answer.text)
    requests = [
        ("post", "/v1/reviews/1/confirm", {"reviewer": "r", "classification": "Z9"}),
        ("post", "/v1/reviews/1/confirm", {"classification": "A1"}),
        ("post", "/v1/reviews/0/false-positive", {"reviewer": "r"}),
        ("post", f"/v1/reviews/{2**70}/false-positive", {"reviewer": "r"}),
        ("put", "/v1/settings/evidence", {"preserve_days": -1}),
        ("put", "/v1/settings/evidence", {"retain_evidence": "maybe"}),
        ("put", "/v1/lists/1/override", {"signal_type": "nope", "threshold": 1}),
        ("put", "/v1/lists/1/override", {"signal_type": "pdq", "threshold": -1}),
    ]
    for method, path, body in requests:
        answer = service.client.request(method, path, headers=headers, json=body)
        assert 400 <= answer.status_code < 500, (path, body, answer.text)
    assert service.get("/v1/reviews/1/events/1/media", "platform").status_code == 404
