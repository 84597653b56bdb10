"""A property-based run over the OpenAPI schema (schemathesis): whatever the generated request,
the service answers without a 5xx, and every error is the documented JSON shape."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import Service, random_pdq

CASES_PER_OPERATION = 20  # 15 operations: about 300 cases on each backend


def test_no_input_gets_a_server_error(service: Service) -> None:
    service.make_list(
        "hotline",
        "verified",
        [{"signal_type": "pdq", "value": random_pdq()} for _ in range(20)]
        + [{"signal_type": "md5", "value": "0123456789abcdef0123456789abcdef"}],
    )
    headers = service.headers("hotline")
    schema = schemathesis.openapi.from_asgi("/openapi.json", _started(service.client.app))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    statuses: list[int] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=CASES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def answers_without_5xx(case: Any) -> None:
            response = case.call(headers=headers)
            statuses.append(response.status_code)
            where = (case.method, case.formatted_path)
            not_ready = case.path == "/readyz" and response.status_code == 503  # documented
            assert response.status_code < 500 or not_ready, (where, response.text[:500])
            if response.status_code >= 400 and not not_ready:
                body = response.json()
                assert set(body) == {"error"}, (where, body)
                assert {"code", "message"} <= set(body["error"]), (where, body)

        answers_without_5xx()

    # The run is not vacuous: it made hundreds of requests, and some got through validation.
    assert len(statuses) >= 150
    assert any(status < 300 for status in statuses)


def _started(app: Any) -> Any:
    """The running app without its lifespan: schemathesis starts an app's lifespan itself, which
    would give the app a second, still loading, service state beside the fixture's."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    return asgi
