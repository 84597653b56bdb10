"""Authentication and authorisation: `Authorization: Bearer <key>`, scopes, the rate limit.

A missing, malformed, unknown or revoked key is 401, all alike; a key without the scope an
endpoint needs is 403; a key over its rate is 429 with Retry-After.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hashwatch.api.errors import ApiError
from hashwatch.api.state import Principal, ServiceState, retry_after

__all__ = ["get_state", "require"]

_bearer = HTTPBearer(auto_error=False, description="An API key from `hashwatch keys create`.")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def require(scope: str) -> Callable[..., Principal]:
    """A dependency that admits callers whose key has `scope`, within their rate."""

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        state = get_state(request)
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(
                401, "unauthorized", "send an API key as 'Authorization: Bearer <key>'", _CHALLENGE
            )
        principal = state.authenticate(credentials.credentials)
        if principal is None:
            raise ApiError(401, "unauthorized", "the API key is not valid", _CHALLENGE)
        wait = state.rate_limiter.acquire(principal.key_id)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"over the rate limit of {state.settings.rate_limit:g} requests per second",
                {"Retry-After": retry_after(wait)},
            )
        if scope not in principal.scopes:
            raise ApiError(403, "forbidden", f"this API key lacks the '{scope}' scope")
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency
