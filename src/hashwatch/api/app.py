"""The FastAPI application: routers, error handling, limits, and the worker's state.

`create_app(settings)` builds one app; `serve(settings, host, port, workers)` runs it on uvicorn,
with each of several worker processes building its own app (and matcher) from the environment.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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

__all__ = ["app_from_env", "create_app", "serve"]

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
    import uvicorn

    os.environ.update(settings.to_env())
    uvicorn.run(
        "hashwatch.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
        timeout_keep_alive=30,
        proxy_headers=False,
    )
