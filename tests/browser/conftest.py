"""A real console in a real browser: uvicorn serving the app on a free local port, and Debian's
chromium driven by Playwright for Python.

Browsers cannot be downloaded by Playwright here, so the session installs the Debian package
`chromium` when it is missing and the tests run as root; where it still is missing the browser
tests skip on a developer's machine and fail under CI (CI=true), so CI never passes without them.

`console` gives a running console over the test's store (SQLite and PostgreSQL, or SQLite only
where a test narrows `store_url`), with helpers to add people and sign them in, each in a
browser context of their own (their own cookies), as two analysts at two desks would be.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from argon2 import PasswordHasher
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy import select

from hashwatch import assessment, lists, organisations, people
from hashwatch.api.app import create_app
from hashwatch.api.routers.console import SESSION_COOKIE
from hashwatch.api.settings import ServiceSettings
from hashwatch.mediastore import MediaStore, generate_key
from hashwatch.store import Store
from hashwatch.store.models import HashList, IntakeItem

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
PASSWORD = "a long enough password"
ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS_IMAGES = Path(__file__).parents[2] / "docs" / "images"


def _apt_get(*args: str) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            ["apt-get", *args], env=env, capture_output=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's chromium, installed first if missing and we may."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    # The package lists may be stale or absent (a fresh container): update only if needed.
    if not CHROMIUM.exists() and root and not _apt_get("install", "-y", "chromium"):
        _apt_get("update")
        _apt_get("install", "-y", "chromium")
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run the browser tests)")
        pytest.skip(message)
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Console:
    """A running console and the people who use it."""

    url: str
    store: Store
    media_dir: Path
    browser: Browser
    screenshots: Path
    _contexts: list[BrowserContext] = field(default_factory=list)

    def organisation_list(self, org: str = "hotline", name: str = "verified") -> int:
        with self.store.session() as session:
            owner = organisations.get_or_create_organisation(session, org)
            return lists.create_list(session, owner, name, "test").id

    def add_person(self, username: str, role: str = "analyst", org: str = "hotline") -> None:
        with self.store.session() as session:
            organisation = organisations.get_or_create_organisation(session, org)
            people.create_user(session, organisation, username, PASSWORD, role, "test")

    def sign_in(self, username: str, *, with_form: bool = False) -> Page:
        """A fresh browser context (its own cookies) signed in as `username`, on the queue.

        `with_form` signs in through the sign-in page; otherwise the session is started in the
        store and its cookie handed to the browser, which is quicker and just as real to every
        page after it."""
        context = self.browser.new_context(viewport={"width": 1280, "height": 860})
        context.set_default_timeout(10_000)
        self._contexts.append(context)
        page = context.new_page()
        if with_form:
            page.goto(f"{self.url}/console/login")
            page.get_by_label("User name").fill(username)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{self.url}/console")
            return page
        with self.store.session() as session:
            token, _ = people.start_session(session, people.get_user(session, username))
        cookie = {
            "name": SESSION_COOKIE,
            "value": token,
            "domain": "127.0.0.1",
            "path": "/console",
            "httpOnly": True,
            "sameSite": "Strict",
        }
        context.add_cookies([cookie])  # type: ignore[list-item]
        page.goto(f"{self.url}/console")
        return page

    def take_in(self, list_id: int, data: bytes, source: str = "test") -> int:
        """Intake straight through the service, for tests about what follows it."""
        vault = MediaStore.from_config()
        with self.store.session() as session:
            hash_list = session.get(HashList, list_id)
            assert hash_list is not None
            return assessment.intake(session, vault, hash_list, data, "test", source=source).id

    def item(self, item_id: int) -> IntakeItem:
        with self.store.session() as session:
            found = session.get(IntakeItem, item_id)
            assert found is not None
            return found

    def items(self) -> list[IntakeItem]:
        with self.store.session() as session:
            return list(session.scalars(select(IntakeItem).order_by(IntakeItem.id)))

    def media_files(self) -> list[Path]:
        return sorted(self.media_dir.iterdir()) if self.media_dir.exists() else []

    def screenshot(self, page: Page, name: str) -> Path:
        """Keep a screenshot as a test artefact; with HASHWATCH_SCREENSHOTS=1 also for the docs."""
        path = self.screenshots / name
        page.screenshot(path=str(path))
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(path, ARTIFACTS / name)
        if os.environ.get("HASHWATCH_SCREENSHOTS") == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_IMAGES / name)
        return path

    def close(self) -> None:
        for context in self._contexts:
            context.close()


@contextmanager
def _serve(store: Store) -> Iterator[str]:
    settings = ServiceSettings(max_staleness=2.0, rate_limit=0, auth_cache_seconds=0)
    app = create_app(settings, store=store)
    # Bound here and handed over, so no other process can take the port in between.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def _console(
    store: Store, browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Console]:
    media = tmp_path / "media"
    monkeypatch.setenv("HASHWATCH_MEDIA_KEY", generate_key())
    monkeypatch.setenv("HASHWATCH_MEDIA_DIR", str(media))
    # argon2 as deployed costs tens of milliseconds a login; the tests sign in a dozen times.
    monkeypatch.setattr(people, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024))
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with _serve(store) as url:
        console = Console(url, store, media, browser, shots)
        try:
            yield console
        finally:
            console.close()


@pytest.fixture
def console(
    store: Store, browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Console]:
    """A console over the parametrised store: a test that takes it runs on each backend, unless
    it narrows `store_url` (`@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)`)."""
    yield from _console(store, browser, tmp_path, monkeypatch)
