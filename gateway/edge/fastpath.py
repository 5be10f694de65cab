"""A direct dispatch for the hot wallet routes, in front of the Starlette app.

Profiling under load (docs/BENCHMARKS.md) showed about half of the gateway's CPU per
request in the generic ASGI layers: uvicorn's proxy-headers middleware, Starlette's error
and exception middlewares (each wrapping ``send``) and regex route matching over every
route. The money routes need none of it: their endpoints already authenticate, bound the
body, turn every client error into a problem answer and time themselves. So POST routes with
a fixed path are looked up in a dict and their Starlette endpoint is called with a
Starlette ``Request`` directly; everything else (GET routes with parameters, 404s,
``/metrics``, lifespan) goes through the Starlette app unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.edge import request_span
from gateway.edge.problems import problem
from gateway.logs import get_logger
from gateway.telemetry import tracing
from gateway.telemetry.request import CURRENT, RequestObservation

log = get_logger("gateway.edge")

Endpoint = Callable[[Request], Awaitable[Response]]


REQUEST_ID_HEADER = b"x-request-id"
#: A caller's request id is kept if it is 1-128 visible ASCII characters, else replaced.
REQUEST_ID_CHARS_MAX = 128


def _usable_request_id(value: bytes) -> bool:
    return 0 < len(value) <= REQUEST_ID_CHARS_MAX and all(0x21 <= c <= 0x7E for c in value)


class FastPath:
    """ASGI app: dict dispatch of fixed-path POST routes, Starlette for the rest.

    It also gives every request an ``X-Request-Id`` and echoes it on every answer: the
    caller's, when it sent a usable one, else one made here (an edge prefix and a counter).
    The id is put into the request's headers, so the audit origin records the same id
    the caller sees (``EdgeContext.origin``). With tracing on it opens the request's edge
    span (a child of the caller's W3C ``traceparent``, if any) and answers with the span's
    own ``traceparent`` (gateway/edge/request_span.py).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes: dict[str, Endpoint] = {}
        self._request_prefix = f"{uuid.uuid4().hex[:12]}-".encode()
        self._request_seq = 0

    def add_routes(self, routes: list[BaseRoute], prefix: str = "") -> None:
        """Register every fixed-path POST ``Route`` (also inside ``Mount``s) for direct dispatch."""
        for route in routes:
            if isinstance(route, Mount):
                self.add_routes(route.routes, prefix + route.path)
            elif isinstance(route, Route) and route.methods and "POST" in route.methods and "{" not in route.path:
                self.routes[prefix + route.path] = route.endpoint

    def _request_id(self, scope: Scope) -> bytes:
        """The request's id (the caller's if usable), set into its headers."""
        headers = scope["headers"]
        for index, (name, value) in enumerate(headers):
            if name == REQUEST_ID_HEADER:
                if _usable_request_id(value):
                    return bytes(value)
                headers = [h for i, h in enumerate(headers) if i != index and h[0] != REQUEST_ID_HEADER]
                break
        self._request_seq += 1
        request_id = self._request_prefix + str(self._request_seq).encode()
        scope["headers"] = [*headers, (REQUEST_ID_HEADER, request_id)]
        return request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        edge_span = request_span.open(scope, request_id) if tracing.tracer() is not None else None
        observation = RequestObservation(edge_span)
        token = CURRENT.set(observation)
        extra_headers = [(REQUEST_ID_HEADER, request_id)]
        if edge_span is not None:
            extra_headers.append((request_span.TRACEPARENT_HEADER, request_span.traceparent(edge_span)))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            await send(message)

        try:
            if scope["method"] == "POST":
                endpoint = self.routes.get(scope["path"])
                if endpoint is not None:
                    try:
                        response = await endpoint(Request(scope, receive))
                    except Exception as exc:  # a bug, never a client error: those are answered inside
                        log.error("unhandled_error", path=scope["path"], error=repr(exc), exc_info=exc)
                        response = problem("unavailable", "internal error; retry with the same id", retry_after_s=1)
                    await response(scope, receive, send_with_id)
                    return
            await self.app(scope, receive, send_with_id)
        finally:
            CURRENT.reset(token)
            if edge_span is not None:
                request_span.close(edge_span, scope, observation, status)
