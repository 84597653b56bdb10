"""The assessment commands, run in-process: `users`, `intake`, `media-key`, `serve --media-dir`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from argon2 import PasswordHasher
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from hashwatch import assessment, people
from hashwatch.api.settings import ServiceSettings
from hashwatch.cli import app
from hashwatch.errors import LoginFailed
from hashwatch.mediastore import KEY_ENV, ROOT_ENV, MediaStore, generate_key
from hashwatch.store import open_store
from hashwatch.store.models import AuditEvent, IntakeItem
from tests.imaging import encode

runner = CliRunner()
PASSWORD = "correct horse battery staple"


def run(*args: str, input: str | None = None) -> Any:
    return runner.invoke(app, list(args), input=input)


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(people, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def media(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    monkeypatch.setenv(KEY_ENV, generate_key())
    monkeypatch.setenv(ROOT_ENV, str(folder))
    return folder


@pytest.fixture
def hotline(store_url: str) -> str:
    """A store with the organisation `hotline` and its list `verified`; the store's URL."""
    assert run("orgs", "create", "hotline", "--db", store_url).exit_code == 0
    made = run("lists", "create", "verified", "--org", "hotline", "--db", store_url)
    assert made.exit_code == 0, made.output
    return store_url


def test_media_key_prints_a_usable_key_and_how_to_set_it(tmp_path: Path) -> None:
    result = run("media-key")
    assert result.exit_code == 0
    key = result.stdout.strip()
    assert KEY_ENV in result.stderr and key not in result.stderr
    vault = MediaStore.from_config(tmp_path / "media", key)
    assert vault.get(vault.put(b"benign bytes")) == b"benign bytes"
    assert run("media-key").stdout.strip() != key


def test_users_create_list_and_disable(hotline: str) -> None:
    db = ("--db", hotline)
    creating = ("users", "create", "Ana", "--org", "hotline", "--role", "senior")
    made = run(*creating, *db, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert made.exit_code == 0, made.output
    assert "Password" in made.output  # asked twice, never echoing the answer
    assert "Repeat" in made.output and PASSWORD not in made.output
    record = json.loads(made.stdout.strip().splitlines()[-1])
    assert record["username"] == "ana" and record["role"] == "senior"

    piped = run(
        "users", "create", "ben", "--org", "hotline", "--password-stdin", *db, input=PASSWORD + "\n"
    )
    assert piped.exit_code == 0, piped.output
    (ben,) = lines(piped.stdout)
    assert ben["username"] == "ben" and ben["role"] == "analyst"
    assert ben["organisation"] == "hotline" and ben["disabled_at"] is None

    listed = run("users", "list", "--org", "hotline", *db)
    assert listed.exit_code == 0
    assert [(u["username"], u["role"]) for u in lines(listed.stdout)] == [
        ("ana", "senior"),
        ("ben", "analyst"),
    ]
    assert "argon2" not in listed.stdout

    store = open_store(hotline)
    with store.session() as session:
        assert people.login(session, "ben", PASSWORD).username == "ben"
    disabled = run("users", "disable", "ben", *db)
    assert disabled.exit_code == 0
    assert lines(disabled.stdout)[0]["disabled_at"] is not None
    with store.session() as session, pytest.raises(LoginFailed):
        people.login(session, "ben", PASSWORD)
    with store.session() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        actions = [e.action for e in events]
        actors = {e.actor for e in events if e.action.startswith("user.")}
    store.close()
    assert actions.count("user.create") == 2 and "user.disable" in actions
    assert all(actor.startswith("cli:") for actor in actors)
    again = run("users", "disable", "ben", *db)
    assert again.exit_code == 1 and "already disabled" in again.stderr


def test_users_set_password_lifts_a_lock(hotline: str) -> None:
    db = ("--db", hotline)
    creating = ("users", "create", "cat", "--org", "hotline", "--password-stdin")
    assert run(*creating, *db, input=PASSWORD + "\n").exit_code == 0
    store = open_store(hotline)
    for _ in range(people.MAX_FAILED_LOGINS):
        with store.session() as session, pytest.raises(LoginFailed):
            people.login(session, "cat", "not the password")
    fresh = "another long passphrase"
    changed = run("users", "set-password", "cat", "--password-stdin", *db, input=fresh + "\n")
    assert changed.exit_code == 0 and lines(changed.stdout)[0]["password_changed"] is True
    with store.session() as session:
        assert people.login(session, "cat", fresh).username == "cat"
    store.close()
    short = run("users", "set-password", "cat", "--password-stdin", *db, input="short\n")
    assert short.exit_code == 1


def test_users_create_refuses_bad_input(hotline: str) -> None:
    db = ("--db", hotline)

    def create(*args: str, input: str = PASSWORD + "\n") -> Any:
        return run("users", "create", *args, "--password-stdin", *db, input=input)

    short = create("ana", "--org", "hotline", input="too short\n")
    assert short.exit_code == 1 and "at least 12 characters" in short.stderr
    role = create("ana", "--org", "hotline", "--role", "boss")
    assert role.exit_code == 2 and "analyst, senior, admin" in role.output
    org = create("ana", "--org", "nowhere")
    assert org.exit_code == 1 and "no organisation named 'nowhere'" in org.stderr
    name = create("a", "--org", "hotline")
    assert name.exit_code == 1 and "3 to 100 characters" in name.stderr
    assert create("ana", "--org", "hotline").exit_code == 0
    taken = create("ANA", "--org", "hotline")
    assert taken.exit_code == 1 and "already exists" in taken.stderr
    # Asked twice: the two answers must agree.
    mismatch = run(
        "users",
        "create",
        "bob",
        "--org",
        "hotline",
        *db,
        input=f"{PASSWORD}\nsomething else entirely\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert mismatch.exit_code == 0, mismatch.output
    assert "do not match" in mismatch.output
    listed = lines(run("users", "list", "--org", "hotline", *db).stdout)
    assert [u["username"] for u in listed] == ["ana", "bob"]


def test_intake_takes_a_folder_in_and_groups_duplicates(
    hotline: str, media: Path, tmp_path: Path, photos: dict[str, np.ndarray]
) -> None:
    folder = tmp_path / "incoming"
    (folder / "case-2").mkdir(parents=True)
    coffee = Image.fromarray(photos["coffee"])
    (folder / "coffee.png").write_bytes(encode(coffee, "PNG"))
    (folder / "rocket.png").write_bytes(encode(photos["rocket"], "PNG"))
    (folder / "case-2" / "coffee-small.jpg").write_bytes(
        encode(coffee.resize((300, 200)), "JPEG", quality=85)
    )
    (folder / "case-2" / "notes.txt").write_text("not an image")
    (folder / "case-2" / "empty.png").write_bytes(b"")
    to_verified = ("--list", "verified", "--org", "hotline", "--db", hotline)
    result = run("intake", str(folder), *to_verified, "--source", "report 7")
    assert result.exit_code == 1, result.output  # some files could not be taken in
    by_name = {Path(r["path"]).name: r for r in lines(result.stdout)}
    assert list(by_name) == [
        "coffee.png",
        "rocket.png",
        "coffee-small.jpg",
        "empty.png",
        "notes.txt",
    ]
    coffee_item = by_name["coffee.png"]
    assert coffee_item["state"] == "queued" and by_name["rocket.png"]["state"] == "queued"
    small = by_name["coffee-small.jpg"]
    assert small["state"] == "duplicate" and small["duplicate_of"] == coffee_item["item"]
    assert by_name["empty.png"]["error"] == "empty file (0 bytes)"
    assert by_name["notes.txt"]["error"].startswith("not an image in a supported format")
    assert "item" not in by_name["notes.txt"]
    held = sorted(media.iterdir())
    assert len(held) == 2  # the queued two, encrypted
    assert all(encode(coffee, "PNG")[:64] not in path.read_bytes() for path in held)

    store = open_store(hotline)
    with store.session() as session:
        item = session.get(IntakeItem, coffee_item["item"])
        assert item is not None and item.source == "report 7"
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "intake.add")))
        assert len(events) == 3 and all(e.actor.startswith("cli:") for e in events)
    store.close()

    # Taking the same folder in again groups everything with what is already waiting.
    again = run("intake", str(folder / "coffee.png"), str(folder / "rocket.png"), *to_verified)
    assert again.exit_code == 0, again.output
    assert [r["state"] for r in lines(again.stdout)] == ["duplicate", "duplicate"]
    assert len(list(media.iterdir())) == 2


def test_intake_after_publication_finds_the_listed_entry(
    hotline: str, media: Path, tmp_path: Path, photos: dict[str, np.ndarray]
) -> None:
    image = tmp_path / "astronaut.png"
    image.write_bytes(encode(photos["astronaut"], "PNG"))
    args = ("--list", "verified", "--org", "hotline", "--db", hotline)
    (first,) = lines(run("intake", str(image), *args).stdout)
    for name in ("ana", "ben"):
        creating = ("users", "create", name, "--org", "hotline", "--password-stdin")
        made = run(*creating, "--db", hotline, input=PASSWORD + "\n")
        assert made.exit_code == 0, made.output
    store = open_store(hotline)
    vault = MediaStore.from_config()
    for name in ("ana", "ben"):
        with store.session() as session:
            user = people.get_user(session, name)
            item = assessment.get_item(session, user, first["item"])
            assessment.grade(session, vault, item, user, "B", name, age_band="11-13")
    store.close()
    assert list(media.iterdir()) == []
    (listed,) = lines(run("intake", str(image), *args).stdout)
    assert listed["state"] == "duplicate" and listed["listed_entry"] > 0


def test_intake_needs_a_media_key_and_a_list(
    hotline: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, photos: dict[str, np.ndarray]
) -> None:
    image = tmp_path / "coffee.png"
    image.write_bytes(encode(photos["coffee"], "PNG"))
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "media"))
    no_key = run("intake", str(image), "--list", "verified", "--org", "hotline", "--db", hotline)
    assert no_key.exit_code == 1
    assert "hashwatch media-key" in no_key.stderr and no_key.stdout == ""
    monkeypatch.setenv(KEY_ENV, "not a key")
    bad_key = run("intake", str(image), "--list", "verified", "--org", "hotline", "--db", hotline)
    assert bad_key.exit_code == 1 and bad_key.stdout == ""
    monkeypatch.setenv(KEY_ENV, generate_key())
    no_list = run("intake", str(image), "--list", "nope", "--org", "hotline", "--db", hotline)
    assert no_list.exit_code == 1 and "no list named 'nope'" in no_list.stderr
    elsewhere = tmp_path / "elsewhere"
    to_verified = ("--list", "verified", "--org", "hotline", "--db", hotline)
    with_dir = run("intake", str(image), *to_verified, "--media-dir", str(elsewhere))
    assert with_dir.exit_code == 0, with_dir.output
    assert len(list(elsewhere.iterdir())) == 1
    assert oct(elsewhere.stat().st_mode & 0o777) == "0o700"


def test_serve_takes_a_media_dir_and_warns_without_a_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import hashwatch.api.app

    started: list[ServiceSettings] = []

    def fake_serve(settings: ServiceSettings, host: str, port: int, workers: int = 1) -> None:
        started.append(settings)

    monkeypatch.setattr(hashwatch.api.app, "serve", fake_serve)
    monkeypatch.delenv(KEY_ENV, raising=False)
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    media = tmp_path / "media"
    result = run("serve", "--media-dir", str(media), "--db", db)
    assert result.exit_code == 0, result.output
    assert started[0].media_dir == str(media)
    assert "intake and assessment are unavailable" in result.stderr
    assert started[0].to_env()["HASHWATCH_SERVE_MEDIA_DIR"] == str(media)

    monkeypatch.setenv(KEY_ENV, generate_key())
    quiet = run("serve", "--media-dir", str(media), "--db", db)
    assert quiet.exit_code == 0 and "unavailable" not in quiet.stderr


def test_purge_runs_and_reports_its_counts(hotline: str) -> None:
    result = run("purge", "--db", hotline)
    assert result.exit_code == 0, result.output
    counts = lines(result.stdout)[0]
    assert all(isinstance(v, int) and v == 0 for v in counts.values()) and counts
