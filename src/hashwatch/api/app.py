"""The FastAPI application: routers, error handling, limits, and the worker's state.

`create_app(settings)` builds one app; `serve(settings, host, port, workers)` runs it on uvicorn,
with each of several worker processes building its own app (and matcher) from the environment.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.process
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.formparsers import MultiPartParser

from hashwatch import __version__
from hashwatch.api.errors import install_error_handlers
from hashwatch.api.limits import BodyLimit, Timeout
from hashwatch.api.routers import (
    assessments,
    console,
    health,
    lists,
    matching,
    people,
    reports,
    reviews,
    webhooks,
)
from hashwatch.api.schemas import MatchIn
from hashwatch.api.settings import ServiceSettings
from hashwatch.api.state import ServiceState
from hashwatch.store import Store
from hashwatch.tuning import tune_process

__all__ = ["app_from_env", "create_app", "serve"]

logger = logging.getLogger("uvicorn.error")

STATIC = Path(__file__).with_name("static")

DESCRIPTION = """Match media and hashes against verified hash lists; keep and share those lists.

Authenticate with an API key from `hashwatch keys create`: `Authorization: Bearer <key>`.
Errors are JSON: `{"error": {"code": "...", "message": "..."}}`.
"""


def create_app(settings: ServiceSettings | None = None, store: Store | None = None) -> FastAPI:
    """The app. With `store`, it uses that store (tests) instead of opening settings.db_url."""
    chosen = settings or ServiceSettings()
    # Uploads stay in memory, never in a temporary file: media must not touch the disk. The
    # body limit below bounds how much memory one upload can take.
    MultiPartParser.spool_max_size = chosen.max_upload_bytes + 1

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServiceState(chosen, store)
        app.state.service = state
        state.start()
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(
        title="hashwatch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(matching.router)
    app.include_router(lists.router)
    app.include_router(assessments.router)
    app.include_router(people.router)
    app.include_router(reviews.router)
    app.include_router(webhooks.router)
    app.include_router(reports.router)
    app.include_router(console.router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    # Multipart framing adds a little to the file itself.
    app.add_middleware(BodyLimit, max_bytes=chosen.max_upload_bytes + 64 * 1024)
    app.add_middleware(Timeout, seconds=chosen.request_timeout)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            # /v1/match reads its body itself (JSON or multipart): publish the JSON body's schema.
            extra = MatchIn.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(extra.pop("$defs", {}))
            components["MatchIn"] = extra
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The factory each uvicorn worker process calls: settings come from the environment."""
    return create_app(ServiceSettings.from_env())


def serve(settings: ServiceSettings, host: str, port: int, workers: int = 1) -> None:
    """Serve on uvicorn: one process, or `workers` processes each with its own indexes.

    Several workers on Linux each listen on a socket of their own bound with SO_REUSEPORT, so
    the kernel spreads new connections over them one by one. With uvicorn's own workers, which
    share one socket, a worker that wakes first accepts every connection waiting, and keep-alive
    clients (a load generator, a proxy's connection pool) can all land on one process and leave
    the other cores idle: half of the 2-worker runs of bench/service.py did.
    """
    import uvicorn

    os.environ.update(replace(settings, workers=workers).to_env())
    options: dict[str, Any] = {
        "factory": True,
        "log_level": "info",
        "access_log": False,
        "timeout_keep_alive": 30,
        "proxy_headers": False,
    }
    if workers == 1:
        uvicorn.run(_FACTORY, host=host, port=port, **options)
    elif sys.platform != "linux" or not hasattr(socket, "SO_REUSEPORT"):
        # Elsewhere SO_REUSEPORT does not spread connections (macOS) or does not exist.
        uvicorn.run(_FACTORY, host=host, port=port, workers=workers, **options)
    else:
        uvicorn.Config(_FACTORY, log_level=options["log_level"])  # sets up uvicorn's logging
        _Supervisor(host, port, workers, options).run()


_FACTORY = "hashwatch.api.app:app_from_env"


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _run_worker(host: str, port: int, options: dict[str, Any]) -> None:
    import uvicorn

    tune_process()  # a fresh interpreter (spawn): the settings `hashwatch serve` made are not here
    sock = _listening_socket(host, port)
    config = uvicorn.Config(_FACTORY, host=host, port=port, **options)
    uvicorn.Server(config).run(sockets=[sock])


class _Supervisor:
    """Starts the worker processes, starts again any that dies, and stops them all on SIGINT
    or SIGTERM (each finishes the requests it has, as uvicorn does on SIGTERM)."""

    def __init__(self, host: str, port: int, workers: int, options: dict[str, Any]) -> None:
        self._where = (host, port)
        self._count = workers
        self._options = options
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._stopping = threading.Event()

    def _start(self) -> multiprocessing.process.BaseProcess:
        process = self._context.Process(
            target=_run_worker, args=(*self._where, self._options), daemon=False
        )
        process.start()
        return process

    def run(self) -> None:
        # Hold the port while the workers start, so a port in use fails here, at once.
        try:
            probe = _listening_socket(*self._where)
        except OSError as exc:
            logger.error("cannot listen on %s:%d: %s", *self._where, exc.strerror or exc)
            raise SystemExit(1) from None
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self._stopping.set())
        try:
            self._processes = [self._start() for _ in range(self._count)]
            probe.close()
            logger.info("hashwatch: %d workers on http://%s:%d", self._count, *self._where)
            while not self._stopping.wait(0.5):
                for index, process in enumerate(self._processes):
                    if not process.is_alive():
                        logger.warning(
                            "worker %s ended (exit code %s): starting another",
                            process.pid,
                            process.exitcode,
                        )
                        self._processes[index] = self._start()
        finally:
            probe.close()
            for process in self._processes:
                if process.is_alive() and process.pid is not None:
                    os.kill(process.pid, signal.SIGTERM)
            for process in self._processes:
                process.join(timeout=30)
                if process.is_alive():
                    process.kill()
                    process.join()
