"""People's console accounts over the API: an organisation's admin key manages its own people,
and nobody else's."""

from __future__ import annotations

import pytest

from hashwatch import people
from hashwatch.errors import LoginFailed
from tests.api.conftest import PASSWORD, Service

pytestmark = pytest.mark.usefixtures("cheap_passwords")


def test_create_list_disable_and_reset_a_password(service: Service) -> None:
    made = service.post(
        "/v1/users", "hotline", json={"username": "Dana", "password": PASSWORD, "role": "senior"}
    )
    assert made.status_code == 201, made.text
    assert made.json()["username"] == "dana" and made.json()["role"] == "senior"
    assert "password" not in made.text.replace('"password"', "")  # no hash in the answer
    again = service.post("/v1/users", "hotline", json={"username": "dana", "password": PASSWORD})
    assert again.status_code == 409
    short = service.post("/v1/users", "hotline", json={"username": "eve", "password": "short"})
    assert short.status_code == 400
    listed = service.get("/v1/users", "hotline").json()["users"]
    assert [(u["username"], u["organisation"]) for u in listed] == [("dana", "hotline")]

    fresh = "a brand new passphrase"
    reset = service.client.put(
        "/v1/users/dana/password", headers=service.headers("hotline"), json={"password": fresh}
    )
    assert reset.status_code == 200
    with service.store.session() as session:
        assert people.login(session, "dana", fresh).username == "dana"
    disabled = service.post("/v1/users/dana/disable", "hotline")
    assert disabled.status_code == 200 and disabled.json()["disabled_at"] is not None
    with service.store.session() as session, pytest.raises(LoginFailed):
        people.login(session, "dana", fresh)


def test_another_organisations_people_do_not_exist_and_scope_is_checked(
    service: Service,
) -> None:
    service.user("hotline", "fay")
    assert service.get("/v1/users", "platform").json()["users"] == []
    assert service.post("/v1/users/fay/disable", "platform").status_code == 404
    moved = service.client.put(
        "/v1/users/fay/password", headers=service.headers("platform"), json={"password": "x" * 12}
    )
    assert moved.status_code == 404
    no_admin = service.client.get("/v1/users", headers=service.headers("hotline", "match"))
    assert no_admin.status_code == 403
    assert service.client.get("/v1/users").status_code == 401
