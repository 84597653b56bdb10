"""The authorisation matrix: every endpoint against no key, a wrong key, a revoked key, a key
without the scope, another organisation's list, and lists granted for matching or reading."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from hashwatch import keys, organisations
from tests.api.conftest import Service, random_pdq
from tests.imaging import encode

OWNER, STRANGER, READER, MATCHER = "alpha", "beta", "gamma", "delta"
MD5 = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {list} and {entry} are filled in
    scope: str
    #: What the caller must have on the list: owner, read, match; None for no list.
    needs: str | None
    body: str = "none"  # none, json:<name>, image
    ok: int = 200


ENDPOINTS = [
    Endpoint("GET", "/v1/lists", "lists:read", None),
    Endpoint("POST", "/v1/lists", "lists:write", None, "json:new_list", 201),
    Endpoint("GET", "/v1/lists/{list}", "lists:read", "match"),
    Endpoint("PATCH", "/v1/lists/{list}", "lists:write", "owner", "json:patch"),
    Endpoint("DELETE", "/v1/lists/{list}", "lists:write", "owner", ok=204),
    Endpoint("POST", "/v1/lists/{list}/entries", "lists:write", "owner", "json:entries"),
    Endpoint("DELETE", "/v1/lists/{list}/entries/{entry}?reason=mistake", "lists:write", "owner"),
    Endpoint("GET", "/v1/lists/{list}/changes", "lists:read", "read"),
    Endpoint("GET", "/v1/lists/{list}/export?format=jsonl", "lists:read", "read"),
    Endpoint("GET", "/v1/lists/{list}/grants", "lists:read", "owner"),
    Endpoint("POST", "/v1/lists/{list}/grants", "admin", "owner", "json:grant", 201),
    Endpoint("DELETE", "/v1/lists/{list}/grants/" + MATCHER, "admin", "owner", ok=204),
    Endpoint("POST", "/v1/match", "match", "match", "json:match"),
    Endpoint("POST", "/v1/match", "match", None, "image"),
    Endpoint("POST", "/v1/hash", "match", None, "image"),
]

RANK = {"match": 1, "read": 2, "owner": 3}


def _bodies(list_id: int) -> dict[str, Any]:
    return {
        "new_list": {"name": "fresh"},
        "patch": {"description": "changed"},
        "entries": {"entries": [{"signal_type": "md5", "value": "f" * 32}]},
        "grant": {"organisation": STRANGER, "access": "match"},
        "match": {"hashes": [{"signal_type": "md5", "value": MD5}], "lists": [list_id]},
    }


def _call(
    service: Service, endpoint: Endpoint, list_id: int, entry_id: int, key: str | None
) -> Any:
    path = endpoint.path.format(list=list_id, entry=entry_id)
    kwargs: dict[str, Any] = {}
    if key is not None:
        kwargs["headers"] = {"Authorization": f"Bearer {key}"}
    if endpoint.body.startswith("json:"):
        kwargs["json"] = _bodies(list_id)[endpoint.body[5:]]
    elif endpoint.body == "image":
        image = encode(_image(), "PNG")
        kwargs["files"] = {"file": ("image.png", image, "image/png")}
    return service.client.request(endpoint.method, path, **kwargs)


def _image() -> Any:
    import numpy as np

    rng = np.random.default_rng(7)
    return rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "endpoint", ENDPOINTS, ids=[f"{e.method} {e.path} {e.body}" for e in ENDPOINTS]
)
def test_authorisation_matrix(service: Service, endpoint: Endpoint) -> None:
    list_id = service.make_list(
        OWNER,
        "verified",
        [{"signal_type": "md5", "value": MD5}, {"signal_type": "pdq", "value": random_pdq()}],
    )
    for org in (STRANGER, READER, MATCHER):
        service.org(org)
    service.grant(list_id, READER, "read")
    service.grant(list_id, MATCHER, "match")
    entry_id = service.get(f"/v1/lists/{list_id}/changes", OWNER).json()["changes"][0]["entry_id"]

    def status(key: str | None) -> int:
        return int(_call(service, endpoint, list_id, entry_id, key).status_code)

    # No key, a malformed key, a well-formed unknown key, a revoked key: 401, the same way.
    assert status(None) == 401
    assert status("not-a-key") == 401
    assert status("hw_000000000000_" + "x" * 43) == 401
    with service.store.session() as session:
        owner = organisations.get_organisation(session, OWNER)
        revoked = keys.create_key(session, owner, keys.SCOPES, "test").secret
        keys.revoke_key(session, keys.key_id_of(revoked) or "", "test")
    assert status(revoked) == 401
    response = _call(service, endpoint, list_id, entry_id, None)
    assert response.json()["error"]["code"] == "unauthorized"

    # A key of the owner without the endpoint's scope: 403.
    other_scopes = ",".join(s for s in keys.SCOPES if s != endpoint.scope)
    assert status(service.key(OWNER, other_scopes)) == 403

    every_scope = ",".join(keys.SCOPES)
    if endpoint.needs is not None:
        # Another organisation's list is a 404, exactly as a list that does not exist.
        stranger = _call(service, endpoint, list_id, entry_id, service.key(STRANGER, every_scope))
        missing = _call(service, endpoint, 999_999, entry_id, service.key(STRANGER, every_scope))
        assert stranger.status_code == missing.status_code == 404
        assert stranger.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
        assert "verified" not in stranger.text
        # Granted organisations: allowed up to their access, 403 beyond it.
        for org, access in ((MATCHER, "match"), (READER, "read")):
            expected = endpoint.ok if RANK[access] >= RANK[endpoint.needs] else 403
            assert status(service.key(org, every_scope)) == expected, (org, access)

    # The owner with the scope: allowed.
    response = _call(service, endpoint, list_id, entry_id, service.key(OWNER, every_scope))
    assert response.status_code == endpoint.ok, response.text


# --- intake and assessment: the key's organisation, and the analyst it names ------------------


@dataclass(frozen=True)
class AssessmentEndpoint:
    method: str
    path: str  # {item} is filled in with an item in the state the action needs
    scope: str
    item: str | None  # queued, escalated, published; None for no item
    body: str = "none"  # none, json:<name>, intake
    ok: int = 200


ASSESSMENT_ENDPOINTS = [
    AssessmentEndpoint("POST", "/v1/intake", "intake", None, "intake", 201),
    AssessmentEndpoint("GET", "/v1/assessments/queue?analyst={analyst}", "assess", None),
    AssessmentEndpoint("GET", "/v1/assessments/dashboard", "assess", None),
    AssessmentEndpoint("GET", "/v1/assessments/{item}?analyst={analyst}", "assess", "queued"),
    AssessmentEndpoint("POST", "/v1/assessments/{item}/grades", "assess", "queued", "json:grade"),
    AssessmentEndpoint(
        "POST", "/v1/assessments/{item}/decision", "assess", "escalated", "json:decision"
    ),
    AssessmentEndpoint(
        "POST", "/v1/assessments/{item}/revoke", "assess", "published", "json:revoke"
    ),
]


def _picture(seed: int) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    return encode(rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8), "PNG")


def _assessment_call(
    service: Service,
    endpoint: AssessmentEndpoint,
    list_id: int,
    item_id: int,
    key: str | None,
    analyst: str,
) -> Any:
    path = endpoint.path.format(item=item_id, analyst=analyst)
    kwargs: dict[str, Any] = {}
    if key is not None:
        kwargs["headers"] = {"Authorization": f"Bearer {key}"}
    bodies = {
        "grade": {"analyst": analyst, "grade": "B"},
        "decision": {"analyst": analyst, "grade": "B"},
        "revoke": {"analyst": analyst, "reason": "mistake"},
    }
    if endpoint.body.startswith("json:"):
        kwargs["json"] = bodies[endpoint.body[5:]]
    elif endpoint.body == "intake":
        kwargs["files"] = {"file": ("image.png", _picture(item_id), "image/png")}
        kwargs["data"] = {"list_id": str(list_id)}
    return service.client.request(endpoint.method, path, **kwargs)


@pytest.mark.parametrize(
    "endpoint", ASSESSMENT_ENDPOINTS, ids=[f"{e.method} {e.path}" for e in ASSESSMENT_ENDPOINTS]
)
def test_assessment_authorisation_matrix(
    service: Service, endpoint: AssessmentEndpoint, cheap_passwords: None, media_dir: Any
) -> None:
    list_id = service.make_list(OWNER, "verified")
    for name, role in (("ana", "analyst"), ("ben", "analyst"), ("sue", "senior")):
        service.user(OWNER, name, role)
    service.user(STRANGER, "eve", "senior")
    service.grant(list_id, STRANGER, "read")  # sharing a list shares none of its queue
    every_scope = ",".join(keys.SCOPES)
    owner_key = service.key(OWNER, every_scope)

    def item(state: str, seed: int) -> int:
        taken = _assessment_call(service, ASSESSMENT_ENDPOINTS[0], list_id, seed, owner_key, "")
        assert taken.status_code == 201, taken.text
        item_id = int(taken.json()["id"])
        grades = {"queued": (), "escalated": ("A", "C"), "published": ("A", "A")}[state]
        for analyst, grade in zip(("ana", "ben"), grades, strict=False):
            given = service.client.post(
                f"/v1/assessments/{item_id}/grades",
                headers={"Authorization": f"Bearer {owner_key}"},
                json={"analyst": analyst, "grade": grade},
            )
            assert given.status_code == 200, given.text
        return item_id

    item_id = item(endpoint.item, 1) if endpoint.item else 2
    # The senior analyst acts where a senior is needed; any analyst elsewhere.
    analyst = "sue" if endpoint.item in ("escalated", "published") else "ana"

    def status(key: str | None, who: str = analyst, missing: bool = False) -> int:
        target_list, target_item = (999_999, 999_999) if missing else (list_id, item_id)
        response = _assessment_call(service, endpoint, target_list, target_item, key, who)
        return int(response.status_code)

    assert status(None) == 401
    assert status("not-a-key") == 401
    assert status("hw_000000000000_" + "x" * 43) == 401
    with service.store.session() as session:
        owner = organisations.get_organisation(session, OWNER)
        revoked = keys.create_key(session, owner, keys.SCOPES, "test").secret
        keys.revoke_key(session, keys.key_id_of(revoked) or "", "test")
    assert status(revoked) == 401

    other_scopes = ",".join(s for s in keys.SCOPES if s != endpoint.scope)
    assert status(service.key(OWNER, other_scopes)) == 403

    stranger = service.key(STRANGER, every_scope)
    if endpoint.item is not None or endpoint.body == "intake":
        # Another organisation's list or item, asked for by its own senior analyst or naming
        # ours: 404, as for one that does not exist.
        for who in ("eve", analyst):
            assert status(stranger, who) == 404, who
            assert status(stranger, who, missing=True) == 404, who
    elif "analyst" in endpoint.path:
        assert status(stranger, analyst) == 404  # our analyst is not theirs
    if endpoint.item in ("escalated", "published"):
        assert status(owner_key, "ana") == 403  # an analyst may not decide or revoke

    response = _assessment_call(service, endpoint, list_id, item_id, owner_key, analyst)
    assert response.status_code == endpoint.ok, response.text
