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

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.edge.problems import problem
from gateway.logs import get_logger

log = get_logger("gateway.edge")

Endpoint = Callable[[Request], Awaitable[Response]]


class FastPath:
    """ASGI app: dict dispatch of fixed-path POST routes, Starlette for the rest."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes: dict[str, Endpoint] = {}

    def add_routes(self, routes: list[BaseRoute], prefix: str = "") -> None:
        """Register every fixed-path POST ``Route`` (also inside ``Mount``s) for direct dispatch."""
        for route in routes:
            if isinstance(route, Mount):
                self.add_routes(route.routes, prefix + route.path)
            elif isinstance(route, Route) and route.methods and "POST" in route.methods and "{" not in route.path:
                self.routes[prefix + route.path] = route.endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.routes.get(scope["path"])
            if endpoint is not None:
                try:
                    response = await endpoint(Request(scope, receive))
                except Exception as exc:  # a bug, never a client error: those are answered inside
                    log.error("unhandled_error", path=scope["path"], error=repr(exc), exc_info=exc)
                    response = problem("unavailable", "internal error; retry with the same id", retry_after_s=1)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
