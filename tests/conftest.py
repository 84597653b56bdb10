"""Shared fixtures: stores on every backend, benign sample images, a CLI runner.

Store tests take the `store` fixture and run once on SQLite and once on PostgreSQL. PostgreSQL
comes from HASHWATCH_TEST_POSTGRES (default: the local server, database `test`); the suite makes
its own scratch database there and drops it at the end. Where no server answers, PostgreSQL tests
skip on a developer's machine but fail under CI (CI=true), so CI never passes without them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import skimage.data
from sqlalchemy import create_engine, make_url, text

from hashwatch.store import Store, open_store
from hashwatch.store.models import Base

POSTGRES_URL = os.environ.get(
    "HASHWATCH_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def _scratch_postgres() -> Iterator[str]:
    """A scratch PostgreSQL database, migrated once, dropped at the end."""
    admin_url = make_url(POSTGRES_URL)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any connection failure means "no server here"
        admin.dispose()
        message = f"PostgreSQL is not reachable at {admin_url.render_as_string()}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run the PostgreSQL tests; see .ci/run)")
        pytest.skip(message)
    name = f"hashwatch_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        open_store(url).close()
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with _scratch_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def second_postgres_url() -> Iterator[str]:
    """Another scratch database, for tests of two servers with a store each."""
    with _scratch_postgres() as url:
        yield url


def _emptied(url: str) -> str:
    engine = create_engine(url)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty, migrated store URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hashwatch.db'}"
        return
    yield _emptied(request.getfixturevalue("postgres_url"))


@pytest.fixture
def second_store_url(store_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A second empty store on the same backend as `store_url`."""
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'second.db'}"
    return _emptied(request.getfixturevalue("second_postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


# --- benign images ---------------------------------------------------------------------------

Pixels = npt.NDArray[np.uint8]


@pytest.fixture(scope="session")
def photos() -> dict[str, Pixels]:
    """Photographs shipped with scikit-image (no download), as RGB arrays."""
    return {
        "astronaut": skimage.data.astronaut(),
        "coffee": skimage.data.coffee(),
        "chelsea": skimage.data.chelsea(),
        "rocket": skimage.data.rocket(),
        "immunohistochemistry": skimage.data.immunohistochemistry(),
        "hubble": skimage.data.hubble_deep_field(),
    }
