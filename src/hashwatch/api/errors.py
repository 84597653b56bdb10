"""Errors as the API answers them: `{"error": {"code", "message"}}`, never a stack trace.

Domain errors (hashwatch.errors) map to status codes here and only here.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from hashwatch import errors

__all__ = ["ApiError", "error_response", "install_error_handlers"]

log = logging.getLogger("hashwatch.api")

# Most specific first: the first class an error is an instance of decides.
_STATUS: list[tuple[type[errors.HashwatchError], int, str]] = [
    (errors.InvalidHash, 400, "invalid_hash"),
    (errors.UnknownSignalType, 400, "unknown_signal_type"),
    (errors.InvalidCategory, 400, "invalid_category"),
    (errors.InvalidInput, 400, "invalid_input"),
    (errors.EmptyMedia, 400, "empty_media"),
    (errors.MediaTooLarge, 413, "too_large"),
    (errors.TooManyPixels, 413, "too_many_pixels"),
    (errors.UnsupportedMedia, 415, "unsupported_media"),
    (errors.CorruptMedia, 422, "corrupt_media"),
    (errors.MediaError, 422, "bad_media"),
    (errors.ImportRejected, 422, "rejected"),
    (errors.MediaStoreError, 503, "media_store_unavailable"),
    (errors.CyberTiplineError, 502, "cybertipline_error"),
    (errors.LoginThrottled, 429, "login_throttled"),
    (errors.LoginFailed, 401, "login_failed"),
    (errors.NotFound, 404, "not_found"),
    (errors.Forbidden, 403, "forbidden"),
    (errors.Conflict, 409, "conflict"),
]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the API itself raises (authentication, limits), with its status and code."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def domain_status(exc: errors.HashwatchError) -> tuple[int, str]:
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            return status, code
    return 400, "invalid_input"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(errors.HashwatchError)
    async def _domain_error(_: Request, exc: errors.HashwatchError) -> JSONResponse:
        status, code = domain_status(exc)
        if isinstance(exc, errors.ImportRejected):
            details = [{"item": e.line, "message": e.message} for e in exc.errors[:1000]]
            noun = "item" if len(exc.errors) == 1 else "items"
            message = f"rejected, nothing was added: {len(exc.errors)} bad {noun}"
            return error_response(status, code, message, details=details)
        if isinstance(exc, errors.LoginThrottled):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
            return error_response(status, code, str(exc), headers)
        return error_response(status, code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "location": ".".join(str(part) for part in problem.get("loc", ())),
                "message": str(problem.get("msg", "invalid")),
            }
            for problem in exc.errors()[:50]
        ]
        first = details[0] if details else {"location": "request", "message": "invalid"}
        message = f"invalid request: {first['location']}: {first['message']}"
        return error_response(422, "invalid_request", message, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, dict(exc.headers or {}))

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect) -> Response:
        # The client hung up mid-request (a load generator stopping, a dropped connection):
        # nobody is left to answer, and nothing went wrong here worth a traceback.
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged in full for the operator; the caller learns only that it was not their fault.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal", "internal error; it has been logged")
