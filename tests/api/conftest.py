"""An API service on each store backend, driven in-process through FastAPI's TestClient.

`Service` sets up organisations, keys, lists and grants through the domain services (as an
operator's CLI would), then the tests speak HTTP only.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from hashwatch import keys, lists, organisations, people, sharing, webhooks
from hashwatch.api.app import create_app
from hashwatch.api.settings import ServiceSettings
from hashwatch.api.state import ServiceState
from hashwatch.mediastore import KEY_ENV, ROOT_ENV, generate_key
from hashwatch.store import Store
from hashwatch.store.models import HashList

ALL_SCOPES = ",".join(keys.SCOPES)


def random_pdq() -> str:
    return secrets.token_hex(32)


def flip_bits(value: str, count: int) -> str:
    """`value` with its lowest `count` bits flipped: a near-duplicate at distance `count`."""
    number = int(value, 16) ^ ((1 << count) - 1)
    return f"{number:064x}"


@dataclass
class Service:
    client: TestClient
    state: ServiceState
    store: Store
    _keys: dict[tuple[str, str], str] = field(default_factory=dict)

    def org(self, name: str) -> int:
        with self.store.session() as session:
            return organisations.get_or_create_organisation(session, name).id

    def key(self, org: str, scopes: str = ALL_SCOPES) -> str:
        cached = self._keys.get((org, scopes))
        if cached:
            return cached
        with self.store.session() as session:
            organisation = organisations.get_or_create_organisation(session, org)
            secret = keys.create_key(session, organisation, scopes.split(","), "test").secret
        self._keys[(org, scopes)] = secret
        return secret

    def headers(self, org: str, scopes: str = ALL_SCOPES) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(org, scopes)}"}

    def make_list(
        self, org: str, name: str, entries: list[dict[str, Any]] | None = None, **options: Any
    ) -> int:
        with self.store.session() as session:
            owner = organisations.get_or_create_organisation(session, org)
            hash_list = lists.create_list(session, owner, name, "test", **options)
            made = [lists.make_entry(**entry) for entry in entries or []]
            if made:
                lists.add_entries(session, hash_list, made, "test")
            list_id = hash_list.id
        self.refresh()
        return list_id

    def grant(self, list_id: int, org: str, access: str) -> None:
        with self.store.session() as session:
            hash_list = session.get(HashList, list_id)
            assert hash_list is not None
            grantee = organisations.get_or_create_organisation(session, org)
            sharing.grant(session, hash_list, grantee, access, "test")
        self.state.forget_access()

    def user(self, org: str, username: str, role: str = "analyst") -> str:
        """A console account in `org` (password PASSWORD); its user name."""
        with self.store.session() as session:
            organisation = organisations.get_or_create_organisation(session, org)
            people.create_user(session, organisation, username, PASSWORD, role, "test")
        return username

    def refresh(self) -> None:
        self.state.refresh_now()
        self.state.forget_access()

    def get(self, path: str, org: str | None = None, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers(org) if org else None, **kwargs)

    def post(self, path: str, org: str | None = None, **kwargs: Any) -> Any:
        return self.client.post(path, headers=self.headers(org) if org else None, **kwargs)


PASSWORD = "correct horse battery staple"


@pytest.fixture
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 at its cheapest: tests make and check many passwords, none of them secret."""
    monkeypatch.setattr(people, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def media_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The encrypted media store's folder, with a fresh key set in the environment (and a
    webhook key: the service the `service` fixture runs is fully configured)."""
    folder = tmp_path / "media"
    monkeypatch.setenv(KEY_ENV, generate_key())
    monkeypatch.setenv(webhooks.KEY_ENV, generate_key())
    monkeypatch.setenv(ROOT_ENV, str(folder))
    return folder


def service_settings(**overrides: Any) -> ServiceSettings:
    base: dict[str, Any] = {"max_staleness": 2.0, "rate_limit": 0, "auth_cache_seconds": 0}
    return ServiceSettings(**{**base, **overrides})


@pytest.fixture
def service(store: Store, media_dir: Path) -> Iterator[Service]:
    """A running service, fully configured: its media store has a key (tests of running
    without one delete HASHWATCH_MEDIA_KEY before their first request)."""
    yield from _service(store, service_settings())


def _service(store: Store, settings: ServiceSettings) -> Iterator[Service]:
    app = create_app(settings, store=store)
    with TestClient(app, raise_server_exceptions=False) as client:
        state: ServiceState = app.state.service
        assert state.wait_ready(timeout=15), state.last_error
        yield Service(client=client, state=state, store=store)


@pytest.fixture
def make_service(store: Store, media_dir: Path) -> Iterator[Any]:
    """A factory for a service with other settings (limits, rates, staleness)."""
    running: list[Iterator[Service]] = []

    def make(**overrides: Any) -> Service:
        generator = _service(store, service_settings(**overrides))
        running.append(generator)
        return next(generator)

    yield make
    for generator in running:
        generator.close()
