"""People: console accounts (analysts, senior analysts, administrators) and their browser sessions.

An account belongs to one organisation and holds one role (hashwatch.store.models.ROLES). Its
password is kept only as an argon2id hash. `login` checks a user name and password, throttling
guesses per account; `start_session` then hands the browser a random token whose SHA-256 alone
is stored, and `resume_session` turns the cookie back into the person on every request.

Failed logins change the store (the failure count, the lock, the audit record) and then raise
LoginFailed: the shell must catch it inside its transaction and commit, or the count is lost.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from hashwatch import audit
from hashwatch.errors import (
    Conflict,
    InvalidInput,
    LoginFailed,
    LoginThrottled,
    UserNotFound,
)
from hashwatch.store.models import ROLES, ConsoleSession, Organisation, User, utcnow

__all__ = [
    "HASHER",
    "LOCKOUT",
    "MAX_FAILED_LOGINS",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "ROLE_RANK",
    "SESSION_IDLE",
    "SESSION_MAX",
    "create_user",
    "csrf_ok",
    "describe",
    "disable_user",
    "end_session",
    "get_member",
    "get_user",
    "has_role",
    "list_users",
    "login",
    "resume_session",
    "set_password",
    "start_session",
]

#: Each role may do what the roles below it may: a senior analyst also grades, an admin also
#: settles disagreements.
ROLE_RANK = {"analyst": 0, "senior": 1, "admin": 2}

#: argon2id with the library's defaults. Looked up at call time, so tests may swap in a cheaper
#: hasher; hashes made with other parameters are upgraded at the next successful login.
HASHER = PasswordHasher()

MIN_PASSWORD = 12
#: Long enough for any passphrase or manager-made password, short enough that hashing a
#: submitted password cannot be made expensive.
MAX_PASSWORD = 1024

#: A session ends after this long without a request, or this long after it began.
SESSION_IDLE = timedelta(minutes=30)
SESSION_MAX = timedelta(hours=12)

#: This many wrong passwords in a row lock the account for LOCKOUT.
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)

LOGIN_FAILED = "wrong user name or password"
#: The actor of a failed login: whoever tried has not shown who they are.
ANONYMOUS = "anonymous"
USERNAME = re.compile(r"[a-z0-9._@-]{3,100}")


def has_role(user: User, role: str) -> bool:
    """Whether `user` holds `role` or a role above it."""
    if role not in ROLE_RANK:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return ROLE_RANK.get(user.role, -1) >= ROLE_RANK[role]


def create_user(
    session: Session,
    organisation: Organisation,
    username: str,
    password: str,
    role: str,
    actor: str,
) -> User:
    """A new account in `organisation`; Conflict if the user name is taken (in any organisation)."""
    name = _clean_username(username)
    _check_password(password)
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    if session.scalar(select(User.id).where(User.username == name)) is not None:
        raise Conflict(f"a user named {name!r} already exists")
    user = User(
        organisation_id=organisation.id,
        username=name,
        password_hash=HASHER.hash(password),
        role=role,
        created_at=utcnow(),
        created_by=actor,
        failed_logins=0,
    )
    session.add(user)
    session.flush()
    audit.record(
        session, actor, "user.create", organisation_id=organisation.id, username=name, role=role
    )
    return user


def get_user(session: Session, username: str) -> User:
    user = _find(session, username)
    if user is None:
        raise UserNotFound(f"no user named {username.strip()!r}")
    return user


def list_users(session: Session, organisation: Organisation) -> list[User]:
    query = select(User).where(User.organisation_id == organisation.id).order_by(User.username)
    return list(session.scalars(query))


def set_password(session: Session, user: User, password: str, actor: str) -> User:
    """Give `user` a new password. It also lifts a lock and signs the user out everywhere: a
    password is reset because the old one may be known to someone else."""
    _check_password(password)
    user.password_hash = HASHER.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    _end_sessions_of(session, user)
    audit.record(
        session,
        actor,
        "user.password",
        organisation_id=user.organisation_id,
        username=user.username,
    )
    session.flush()
    return user


def disable_user(session: Session, user: User, actor: str) -> User:
    """Stop `user` signing in, and end their sessions; Conflict if already disabled."""
    if user.disabled_at is not None:
        raise Conflict(f"user {user.username!r} was already disabled")
    user.disabled_at = utcnow()
    _end_sessions_of(session, user)
    audit.record(
        session, actor, "user.disable", organisation_id=user.organisation_id, username=user.username
    )
    session.flush()
    return user


def login(session: Session, username: str, password: str, now: datetime | None = None) -> User:
    """The user whose name and password these are.

    An unknown user name, a wrong password and a disabled account all raise the same
    LoginFailed, after the same one argon2 verification. A locked account raises LoginThrottled,
    even for the right password. A failure is recorded (count, lock, audit) before it is raised."""
    now = now or utcnow()
    hasher = HASHER
    user = _find(session, username)
    if user is None:
        # Cost an unknown name one verification too, so timing does not tell which names exist.
        _verify(hasher, _dummy_hash(*_parameters(hasher)), password)
        audit.record(session, ANONYMOUS, "console.login_failed", username=username.strip()[:100])
        session.flush()
        raise LoginFailed(LOGIN_FAILED)
    if _locked(user, now):
        raise _throttled(user, now)
    if not _verify(hasher, user.password_hash, password) or user.disabled_at is not None:
        # A disabled account counts no failures: it can never sign in anyway.
        if user.disabled_at is None:
            # Counted in the database, so guesses sent in parallel are all counted.
            session.execute(
                update(User)
                .where(User.id == user.id)
                .values(failed_logins=User.failed_logins + 1)
                .execution_options(synchronize_session=False)
            )
            session.refresh(user, ["failed_logins"])
            if user.failed_logins >= MAX_FAILED_LOGINS:
                user.failed_logins = 0
                user.locked_until = now + LOCKOUT
        locked = _locked(user, now)
        audit.record(
            session,
            ANONYMOUS,
            "console.login_failed",
            organisation_id=user.organisation_id,
            username=user.username,
            locked=locked,
        )
        session.flush()
        raise _throttled(user, now) if locked else LoginFailed(LOGIN_FAILED)
    user.failed_logins = 0
    user.locked_until = None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    audit.record(
        session,
        user.username,
        "console.login",
        organisation_id=user.organisation_id,
        username=user.username,
    )
    session.flush()
    return user


def start_session(
    session: Session, user: User, now: datetime | None = None
) -> tuple[str, ConsoleSession]:
    """A new signed-in session for `user`: the token for the cookie (shown only now) and the row."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    console_session = ConsoleSession(
        token_sha256=_digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=min(now + SESSION_IDLE, now + SESSION_MAX),
    )
    session.add(console_session)
    session.flush()
    return token, console_session


def resume_session(
    session: Session, token: str, now: datetime | None = None
) -> tuple[User, ConsoleSession] | None:
    """The user and session a cookie's token stands for, the session's idle time restarted; None
    for an unknown or expired token (an expired session is deleted) or a disabled account."""
    if not token:
        return None
    now = now or utcnow()
    console_session = session.scalar(
        select(ConsoleSession).where(ConsoleSession.token_sha256 == _digest(token))
    )
    if console_session is None:
        return None
    user = session.get(User, console_session.user_id)
    if (
        user is None
        or user.disabled_at is not None
        or now >= console_session.expires_at
        or now >= console_session.created_at + SESSION_MAX
    ):
        session.delete(console_session)
        session.flush()
        return None
    console_session.last_seen_at = now
    console_session.expires_at = min(now + SESSION_IDLE, console_session.created_at + SESSION_MAX)
    session.flush()
    return user, console_session


def end_session(session: Session, token: str) -> None:
    """Sign out: forget the session `token` stands for (nothing happens for an unknown token)."""
    if not token:
        return
    console_session = session.scalar(
        select(ConsoleSession).where(ConsoleSession.token_sha256 == _digest(token))
    )
    if console_session is None:
        return
    user = session.get(User, console_session.user_id)
    if user is not None:
        audit.record(
            session,
            user.username,
            "console.logout",
            organisation_id=user.organisation_id,
            username=user.username,
        )
    session.delete(console_session)
    session.flush()


def csrf_ok(console_session: ConsoleSession, presented: str | None) -> bool:
    """Whether a form or request carried this session's CSRF token."""
    if not presented or not console_session.csrf_token:
        return False
    return hmac.compare_digest(console_session.csrf_token.encode(), presented.encode())


# --- helpers ---------------------------------------------------------------------------------


def _clean_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.fullmatch(name):
        raise InvalidInput(
            "a user name must be 3 to 100 characters: letters, digits and . _ @ - only"
        )
    return name


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"a password must be at most {MAX_PASSWORD} characters")


def _find(session: Session, username: str) -> User | None:
    name = username.strip().lower()
    if not USERNAME.fullmatch(name):
        return None
    return session.scalar(select(User).where(User.username == name))


def _verify(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    # No password this long can be set, so it is wrong; it still costs one verification.
    too_long = len(password) > MAX_PASSWORD
    right: bool
    try:
        right = hasher.verify(password_hash, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        right = False
    return right and not too_long


def _parameters(hasher: PasswordHasher) -> tuple[int, int, int, int, int, Type]:
    return (
        hasher.time_cost,
        hasher.memory_cost,
        hasher.parallelism,
        hasher.hash_len,
        hasher.salt_len,
        hasher.type,
    )


@lru_cache(maxsize=8)
def _dummy_hash(
    time_cost: int, memory_cost: int, parallelism: int, hash_len: int, salt_len: int, kind: Type
) -> str:
    # A hash made with the current parameters, so verifying it costs what a real user's does.
    hasher = PasswordHasher(time_cost, memory_cost, parallelism, hash_len, salt_len, type=kind)
    return hasher.hash(secrets.token_urlsafe(32))


def _locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def _throttled(user: User, now: datetime) -> LoginThrottled:
    assert user.locked_until is not None
    retry_after = max((user.locked_until - now).total_seconds(), 1.0)
    minutes = max(1, round(retry_after / 60))
    return LoginThrottled(
        f"too many failed logins: this account is locked; try again in {minutes} minutes",
        retry_after=retry_after,
    )


def _end_sessions_of(session: Session, user: User) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def describe(user: User, organisation: str) -> dict[str, Any]:
    """A user as the CLI and the API show one: never the password hash or login counters."""
    return {
        "id": user.id,
        "username": user.username,
        "organisation": organisation,
        "role": user.role,
        "created_at": user.created_at.isoformat(),
        "disabled_at": user.disabled_at.isoformat() if user.disabled_at else None,
    }


def get_member(session: Session, organisation_id: int, username: str) -> User:
    """The user of this organisation with this name: anyone else's account is UserNotFound,
    exactly like a name that does not exist."""
    try:
        user = get_user(session, username)
    except UserNotFound:
        user = None
    if user is None or user.organisation_id != organisation_id:
        raise UserNotFound(f"no user named {username.strip()!r}")
    return user
