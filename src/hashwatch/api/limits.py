"""Limits every request meets before a router sees it: body size and response time.

Both are plain ASGI middleware, so they hold for streamed and multipart bodies alike and cost
nothing on small requests.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "Timeout"]


class _TooLarge(Exception):
    pass


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for a request body over `max_bytes`, by its Content-Length or as it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body is over the limit of {self.max_bytes} bytes"
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await _send_error(send, 413, "too_large", message)
                    return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return incoming

        async def watched_send(outgoing: Message) -> None:
            nonlocal started
            started = started or outgoing["type"] == "http.response.start"
            await send(outgoing)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if not started:
                await _send_error(send, 413, "too_large", message)


class Timeout:
    """503 when a request has not begun its answer within `seconds`; its work is abandoned.

    Only the time to the first byte is limited: a long streamed export keeps going once begun.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        started = asyncio.Event()

        async def watched_send(outgoing: Message) -> None:
            if outgoing["type"] == "http.response.start":
                started.set()
            await send(outgoing)

        task: asyncio.Task[Any] = asyncio.ensure_future(self.app(scope, receive, watched_send))
        waiter = asyncio.ensure_future(started.wait())
        try:
            done, _ = await asyncio.wait(
                {task, waiter}, timeout=self.seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if task in done or started.is_set():
            await task
            return
        task.cancel()
        message = f"the request took longer than {self.seconds:g} s and was abandoned"
        await _send_error(send, 503, "timeout", message)
