"""People's console accounts over the API (scope `admin`): create, list, disable, set password.

A key manages the accounts of its own organisation only; anyone else's account is answered as
one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from hashwatch import people
from hashwatch.api.auth import get_state, require
from hashwatch.api.state import Principal
from hashwatch.store.models import Organisation

router = APIRouter(prefix="/v1/users", tags=["people"])

Admin = Annotated[Principal, Depends(require("admin"))]
Username = Annotated[str, Path(min_length=1, max_length=100, description="The user name")]


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024, description="At least 12 characters.")
    role: Literal["analyst", "senior", "admin"] = "analyst"


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    id: int
    username: str
    organisation: str
    role: str
    created_at: str
    disabled_at: str | None


class UsersOut(BaseModel):
    users: list[UserOut]


@router.get("", summary="Your organisation's console accounts", response_model=UsersOut)
def list_all(request: Request, who: Admin) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        organisation = _organisation(session, who)
        found = people.list_users(session, organisation)
        return {"users": [people.describe(user, organisation.name) for user in found]}


@router.post("", summary="Create a console account", status_code=201, response_model=UserOut)
def create(request: Request, who: Admin, body: UserIn) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        organisation = _organisation(session, who)
        user = people.create_user(
            session, organisation, body.username, body.password, body.role, who.actor
        )
        return people.describe(user, organisation.name)


@router.post(
    "/{username}/disable",
    summary="Stop a person signing in, and sign them out everywhere",
    response_model=UserOut,
)
def disable(request: Request, who: Admin, username: Username) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        organisation = _organisation(session, who)
        user = people.disable_user(
            session, people.get_member(session, who.organisation_id, username), who.actor
        )
        return people.describe(user, organisation.name)


@router.put(
    "/{username}/password",
    summary="Set a new password; this lifts a login lock and signs the person out everywhere",
    response_model=UserOut,
)
def set_password(
    request: Request, who: Admin, username: Username, body: PasswordIn
) -> dict[str, Any]:
    with get_state(request).store.session() as session:
        organisation = _organisation(session, who)
        user = people.get_member(session, who.organisation_id, username)
        people.set_password(session, user, body.password, who.actor)
        return people.describe(user, organisation.name)


def _organisation(session: Session, who: Principal) -> Organisation:
    organisation = session.get(Organisation, who.organisation_id)
    assert organisation is not None
    return organisation
