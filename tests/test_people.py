"""Console accounts and sessions in the store, on SQLite and PostgreSQL: validation, roles,
login with throttling, and browser sessions that expire."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text

from hashwatch import audit, people
from hashwatch.errors import Conflict, InvalidInput, LoginFailed, LoginThrottled, UserNotFound
from hashwatch.organisations import get_or_create_organisation
from hashwatch.people import (
    create_user,
    csrf_ok,
    disable_user,
    end_session,
    get_user,
    has_role,
    list_users,
    login,
    resume_session,
    set_password,
    start_session,
)
from hashwatch.store import Store
from hashwatch.store.models import AuditEvent, ConsoleSession, User

ACTOR = "test:admin"
PASSWORD = "correct horse battery"
T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def cheap_hasher(time_cost: int = 1) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=1024, parallelism=1)


class CountingHasher(PasswordHasher):
    """A cheap hasher that counts its verifications."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # type: ignore[override]
        self.verifications += 1
        return super().verify(hash, password)


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(people, "HASHER", cheap_hasher())
    yield


def add_user(
    store: Store,
    username: str = "alice",
    role: str = "analyst",
    organisation: str = "hotline",
    password: str = PASSWORD,
) -> User:
    with store.session() as session:
        org = get_or_create_organisation(session, organisation)
        return create_user(session, org, username, password, role, ACTOR)


def attempt(
    store: Store, username: str, password: str, now: datetime | None = None
) -> User | LoginFailed:
    """One login in its own transaction, as a shell does it: the failure is committed too."""
    with store.session() as session:
        try:
            return login(session, username, password, now=now)
        except LoginFailed as exc:
            return exc


def events(store: Store, action: str) -> list[AuditEvent]:
    with store.session() as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(session.scalars(query))


# --- accounts --------------------------------------------------------------------------------


def test_create_user_keeps_only_an_argon2id_hash(store: Store) -> None:
    user = add_user(store, username="  Alice.Smith@Hotline  ", role="senior")
    assert user.username == "alice.smith@hotline"
    assert user.role == "senior"
    assert user.created_by == ACTOR
    assert user.failed_logins == 0
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    with store.session() as session:
        assert get_user(session, "ALICE.SMITH@hotline").id == user.id
    [event] = events(store, "user.create")
    assert event.actor == ACTOR
    assert event.organisation_id == user.organisation_id
    assert event.detail == {"username": "alice.smith@hotline", "role": "senior"}


@pytest.mark.parametrize("username", ["ab", "a" * 101, "al ice", "alice/bob", "élodie", ""])
def test_create_user_refuses_bad_user_names(store: Store, username: str) -> None:
    with pytest.raises(InvalidInput, match="user name"):
        add_user(store, username=username)


@pytest.mark.parametrize("password", ["", "x" * 11, "x" * 1025])
def test_create_user_refuses_bad_passwords(store: Store, password: str) -> None:
    with pytest.raises(InvalidInput, match="password"):
        add_user(store, password=password)


def test_create_user_accepts_password_length_limits(store: Store) -> None:
    add_user(store, username="short", password="x" * 12)
    add_user(store, username="long", password="y" * 1024)
    assert isinstance(attempt(store, "short", "x" * 12), User)
    assert isinstance(attempt(store, "long", "y" * 1024), User)


def test_create_user_refuses_unknown_roles(store: Store) -> None:
    with pytest.raises(InvalidInput, match="role"):
        add_user(store, role="root")


def test_user_names_are_unique_across_organisations(store: Store) -> None:
    add_user(store, username="alice", organisation="hotline")
    with pytest.raises(Conflict, match="alice"):
        add_user(store, username="ALICE", organisation="another")
    with store.session() as session:
        assert session.scalar(select(User.id).where(User.username == "alice")) is not None
        assert len(list(session.scalars(select(User)))) == 1


def test_get_and_list_users(store: Store) -> None:
    add_user(store, username="carol", organisation="hotline")
    add_user(store, username="bob", organisation="hotline")
    add_user(store, username="dave", organisation="another")
    with store.session() as session:
        hotline = get_or_create_organisation(session, "hotline")
        assert [u.username for u in list_users(session, hotline)] == ["bob", "carol"]
        with pytest.raises(UserNotFound, match="erin"):
            get_user(session, "erin")
        with pytest.raises(UserNotFound):
            get_user(session, "no such / name")


@pytest.mark.parametrize(
    ("role", "required", "expected"),
    [
        ("analyst", "analyst", True),
        ("analyst", "senior", False),
        ("analyst", "admin", False),
        ("senior", "analyst", True),
        ("senior", "senior", True),
        ("senior", "admin", False),
        ("admin", "analyst", True),
        ("admin", "senior", True),
        ("admin", "admin", True),
    ],
)
def test_role_ranks(role: str, required: str, expected: bool) -> None:
    assert has_role(User(username="x", role=role), required) is expected


def test_has_role_refuses_an_unknown_role() -> None:
    with pytest.raises(InvalidInput):
        has_role(User(username="x", role="admin"), "superuser")


# --- login -----------------------------------------------------------------------------------


def test_login_succeeds_with_the_right_password(store: Store) -> None:
    user = add_user(store)
    result = attempt(store, " Alice ", PASSWORD)
    assert isinstance(result, User)
    assert result.id == user.id
    [event] = events(store, "console.login")
    assert event.actor == "alice"
    assert event.organisation_id == user.organisation_id


def test_login_failures_are_all_alike(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    add_user(store, username="alice")
    add_user(store, username="bob")
    with store.session() as session:
        disable_user(session, get_user(session, "bob"), ACTOR)
    hasher = CountingHasher()
    monkeypatch.setattr(people, "HASHER", hasher)

    failures = []
    for username, password in [
        ("nobody", PASSWORD),  # unknown user
        ("alice", "wrong password!"),  # wrong password
        ("bob", PASSWORD),  # disabled account, right password
        ("bob", "wrong password!"),  # disabled account, wrong password
        ("not a valid name!", PASSWORD),  # not even a possible user name
    ]:
        before = hasher.verifications
        result = attempt(store, username, password)
        assert hasher.verifications - before == 1, username  # no timing oracle
        failures.append(result)
    for failure in failures:
        assert type(failure) is LoginFailed
        assert str(failure) == "wrong user name or password"


def test_failed_logins_are_audited_without_the_password(store: Store) -> None:
    add_user(store)
    attempt(store, "alice", "secret guess 1")
    attempt(store, "mallory", "secret guess 2")
    recorded = events(store, "console.login_failed")
    assert [e.detail["username"] for e in recorded] == ["alice", "mallory"]
    for event in recorded:
        assert "secret guess" not in repr(event.detail)
        assert "secret guess" not in event.actor
    assert events(store, "console.login") == []


def test_lockout_after_five_failures_then_unlock(store: Store) -> None:
    add_user(store)
    for i in range(people.MAX_FAILED_LOGINS - 1):
        result = attempt(store, "alice", "wrong password!", now=T0 + timedelta(seconds=i))
        assert type(result) is LoginFailed
    fifth = attempt(store, "alice", "wrong password!", now=T0 + timedelta(minutes=1))
    assert isinstance(fifth, LoginThrottled)
    assert fifth.retry_after == pytest.approx(people.LOCKOUT.total_seconds())
    with store.session() as session:
        assert get_user(session, "alice").locked_until == T0 + timedelta(minutes=1) + people.LOCKOUT

    # Locked: even the right password is refused, and says how long to wait.
    later = T0 + timedelta(minutes=6)
    locked = attempt(store, "alice", PASSWORD, now=later)
    assert isinstance(locked, LoginThrottled)
    assert locked.retry_after == pytest.approx(10 * 60)
    assert "try again" in str(locked)

    unlocked = attempt(store, "alice", PASSWORD, now=T0 + timedelta(minutes=16, seconds=1))
    assert isinstance(unlocked, User)
    assert unlocked.failed_logins == 0
    assert unlocked.locked_until is None


def test_a_success_resets_the_failure_count(store: Store) -> None:
    add_user(store)
    for _ in range(people.MAX_FAILED_LOGINS - 1):
        assert type(attempt(store, "alice", "wrong password!", now=T0)) is LoginFailed
    assert isinstance(attempt(store, "alice", PASSWORD, now=T0), User)
    for _ in range(people.MAX_FAILED_LOGINS - 1):
        assert type(attempt(store, "alice", "wrong password!", now=T0)) is LoginFailed
    with store.session() as session:
        assert get_user(session, "alice").failed_logins == people.MAX_FAILED_LOGINS - 1


def test_failures_are_counted_in_the_database(store: Store) -> None:
    add_user(store)
    with store.sessions() as session:
        # This session holds the account as it was before another process's failed login.
        stale = get_user(session, "alice")
        assert stale.failed_logins == 0
        assert type(attempt(store, "alice", "wrong password!")) is LoginFailed
        with pytest.raises(LoginFailed):
            login(session, "alice", "wrong password!")
        assert stale.failed_logins == 2
        session.commit()
    with store.session() as session:
        assert get_user(session, "alice").failed_logins == 2


def test_unknown_users_are_never_throttled(store: Store) -> None:
    for _ in range(people.MAX_FAILED_LOGINS + 2):
        assert type(attempt(store, "nobody", "wrong password!", now=T0)) is LoginFailed


def test_login_rehashes_when_the_parameters_changed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_hash = add_user(store).password_hash
    stronger = cheap_hasher(time_cost=2)
    monkeypatch.setattr(people, "HASHER", stronger)
    user = attempt(store, "alice", PASSWORD)
    assert isinstance(user, User)
    with store.session() as session:
        new_hash = get_user(session, "alice").password_hash
    assert new_hash != old_hash
    assert not stronger.check_needs_rehash(new_hash)
    assert stronger.verify(new_hash, PASSWORD)
    # And once upgraded, it stays.
    assert isinstance(attempt(store, "alice", PASSWORD), User)
    with store.session() as session:
        assert get_user(session, "alice").password_hash == new_hash


def test_an_over_long_password_is_simply_wrong(store: Store) -> None:
    add_user(store)
    assert type(attempt(store, "alice", PASSWORD + "x" * 2000)) is LoginFailed


def test_set_password_replaces_the_old_one_and_lifts_a_lock(store: Store) -> None:
    add_user(store)
    for _ in range(people.MAX_FAILED_LOGINS):
        attempt(store, "alice", "wrong password!")
    with store.session() as session:
        user = get_user(session, "alice")
        start_session(session, user)
        with pytest.raises(InvalidInput):
            set_password(session, user, "too short", ACTOR)
        set_password(session, user, "a brand new passphrase", ACTOR)
    assert type(attempt(store, "alice", PASSWORD)) is LoginFailed
    assert isinstance(attempt(store, "alice", "a brand new passphrase"), User)
    with store.session() as session:
        assert list(session.scalars(select(ConsoleSession))) == []
    [event] = events(store, "user.password")
    assert event.detail == {"username": "alice"}
    assert "brand new" not in repr(event.detail)


def test_disable_user_ends_sessions(store: Store) -> None:
    add_user(store)
    with store.session() as session:
        token, _ = start_session(session, get_user(session, "alice"))
    with store.session() as session:
        user = disable_user(session, get_user(session, "alice"), ACTOR)
        assert user.disabled_at is not None
        with pytest.raises(Conflict):
            disable_user(session, user, ACTOR)
    with store.session() as session:
        assert resume_session(session, token) is None
    assert len(events(store, "user.disable")) == 1


# --- sessions --------------------------------------------------------------------------------


def test_session_token_is_stored_only_hashed(store: Store) -> None:
    add_user(store)
    with store.session() as session:
        token, console_session = start_session(session, get_user(session, "alice"), now=T0)
        assert console_session.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
        assert len(token) >= 43
        assert console_session.csrf_token != token
        assert console_session.expires_at == T0 + people.SESSION_IDLE
    with store.session() as session:
        rows = session.execute(text("SELECT * FROM console_sessions")).all()
    assert len(rows) == 1
    assert all(token not in str(value) for value in rows[0])


def test_session_start_resume_and_end(store: Store) -> None:
    user = add_user(store)
    with store.session() as session:
        token, _ = start_session(session, user, now=T0)
    with store.session() as session:
        resumed = resume_session(session, token, now=T0 + timedelta(minutes=20))
        assert resumed is not None
        who, console_session = resumed
        assert who.id == user.id
        assert console_session.last_seen_at == T0 + timedelta(minutes=20)
        assert console_session.expires_at == T0 + timedelta(minutes=50)
    with store.session() as session:
        end_session(session, token)
    with store.session() as session:
        assert resume_session(session, token, now=T0 + timedelta(minutes=21)) is None
        assert list(session.scalars(select(ConsoleSession))) == []
        end_session(session, token)  # twice is harmless
    [event] = events(store, "console.logout")
    assert event.detail == {"username": "alice"}


def test_unknown_tokens_resume_nothing(store: Store) -> None:
    add_user(store)
    with store.session() as session:
        start_session(session, get_user(session, "alice"))
        assert resume_session(session, "not a token") is None
        assert resume_session(session, "") is None


def test_idle_sessions_expire_and_are_deleted(store: Store) -> None:
    user = add_user(store)
    with store.session() as session:
        token, _ = start_session(session, user, now=T0)
    with store.session() as session:
        assert resume_session(session, token, now=T0 + people.SESSION_IDLE) is None
    with store.session() as session:
        assert list(session.scalars(select(ConsoleSession))) == []


def test_sessions_end_after_their_maximum_age_however_busy(store: Store) -> None:
    user = add_user(store)
    with store.session() as session:
        token, _ = start_session(session, user, now=T0)
    now = T0
    while now + timedelta(minutes=20) < T0 + people.SESSION_MAX:
        now += timedelta(minutes=20)
        with store.session() as session:
            assert resume_session(session, token, now=now) is not None
    with store.session() as session:
        resumed = resume_session(session, token, now=now)
        assert resumed is not None
        assert resumed[1].expires_at == T0 + people.SESSION_MAX
    with store.session() as session:
        assert resume_session(session, token, now=T0 + people.SESSION_MAX) is None
        assert list(session.scalars(select(ConsoleSession))) == []


def test_csrf_ok() -> None:
    console_session = ConsoleSession(csrf_token="a-random-csrf-token")
    assert csrf_ok(console_session, "a-random-csrf-token")
    assert not csrf_ok(console_session, "a-random-csrf-tokeN")
    assert not csrf_ok(console_session, "")
    assert not csrf_ok(console_session, None)
    assert not csrf_ok(ConsoleSession(csrf_token=""), "")


def test_audit_events_belong_to_the_users_organisation(store: Store) -> None:
    user = add_user(store)
    attempt(store, "alice", PASSWORD)
    with store.session() as session:
        actions = {e.action for e in audit.recent_events(session, user.organisation_id)}
    assert {"user.create", "console.login"} <= actions
