"""The steps every provider adapter runs per request, once for all of them (HTTP and audit I/O).

Each adapter declares its endpoints and a small ``WireProtocol`` object (its hooks: how it
authenticates, decodes, answers and signs); ``Pipeline`` runs, per request and in this order
(docs/PROVIDERS.md, "Rules every adapter keeps"; docs/DESIGN.md sections 2, 4, 7 and 8):

1. ``ctx.admit("provider", <integration name>)``: over the rate limit -> ``retryable(None)`` at once,
   nothing read, no audit record (a flood must not become audit rows);
2. ``precheck(request)`` (headers only, e.g. Pragmatic Play's form content type);
3. the body, read up to ``server.body_bytes_max`` bytes -> ``too_large(detail)`` past it
   (audited with the limit and the declared ``Content-Length``, nothing more);
4. ``authenticate(request, body)``: signature / key / content type -> the payload to decode;
5. ``decode(payload, endpoint.request_type)`` -> the typed request;
6. ``endpoint.process(request, origin)`` (session lookup, pure rules, ``ctx.submit``) ->
   the answer; ``retryable_exceptions`` (shard overloaded or down, Redis down) ->
   ``retryable(request)``, with ``Overloaded.retry_after_s`` handed to ``respond``;
7. ``respond(answer, route, retry_after_s)``: encode (and sign) the HTTP response.

A step that refuses returns a ``Rejected``; the pipeline then records it in the audit chain
(``ctx.record_refusal`` under the integration's scope and partner) and answers
``refusal_answer``. One ``Pipeline`` serves one integration (``integration.Caller``): the
partner of everything it submits is the integration's, never a session token's. Nothing
escapes as an HTTP 500: a client that went away or any unexpected exception (logged) is
answered ``retryable(None)``, the provider's "try again" status.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import metrics
from gateway.edge.body import read_body_bounded
from gateway.edge.context import EdgeContext
from gateway.edge.game_session import SessionStoreUnavailable
from gateway.logs import get_logger
from gateway.providers.integration import Caller, IntegrationSettings
from gateway.providers.refusal import Refusal
from gateway.shards.commands import Origin, Overloaded
from gateway.telemetry import request as request_observation

A = TypeVar("A")  # one protocol's answer before it is encoded (a response Struct, a tuple...)

Handler = Callable[[Request], Awaitable[Response]]

#: Seconds a retryable answer asks for when nothing says otherwise (SoftSwiss ``Retry-After``).
RETRY_AFTER_S_DEFAULT = 1


@dataclass(frozen=True, slots=True)
class Rejected:
    """A request a hook refused before it reached its endpoint.

    ``refusal``: the audited code, detail and the provider's status. ``source``: what could
    be read of the request for the audit record and the answer (a JSON object, a decoded
    Struct, a parsed form, or None). ``audit``: the audit ``request`` to record instead of
    ``audit_request(source)`` (e.g. only the size of an unparseable body).
    """

    refusal: Refusal[Any]
    source: object = None
    audit: dict | None = None


@dataclass(frozen=True, slots=True)
class Endpoint(Generic[A]):
    """One POST route of a provider: ``path`` under the provider's prefix (``"/user/info"``),
    the msgspec Struct its body decodes to, and ``process(request, origin) -> answer``."""

    path: str
    request_type: type
    process: Callable[[Any, Origin], Awaitable[A]]


class WireProtocol(Protocol[A]):
    """What ``Pipeline`` asks of one provider's protocol; each adapter's ``routes.py`` has one
    (a plain class: it matches this structurally, no inheritance)."""

    @property
    def retryable_exceptions(self) -> tuple[type[Exception], ...]:
        """What ``process`` may raise that means "try again later" (``statuses.py``)."""
        ...

    def retryable(self, request: Any | None) -> A:
        """The protocol's "try again" answer; ``request`` is the decoded request, if any."""
        ...

    def too_large(self, detail: str) -> Refusal[Any]:
        """The refusal of a body over ``server.body_bytes_max``."""
        ...

    def precheck(self, request: Request) -> Rejected | None:
        """A refusal decided from the headers alone, before the body is read; else None."""
        ...

    def authenticate(self, request: Request, body: bytes) -> object:
        """Check the caller over the raw body: the payload to decode, or a ``Rejected``."""
        ...

    def decode(self, payload: Any, request_type: type) -> object:
        """The payload as ``request_type`` (or what the endpoint takes), or a ``Rejected``."""
        ...

    def request_id(self, request: Any) -> str | None:
        """The provider's request id for the audit origin of a decoded request."""
        ...

    def refusal_request_id(self, source: object) -> str | None:
        """The provider's request id of a refused request's ``source``, if readable."""
        ...

    def audit_request(self, source: object) -> dict:
        """The bounded audit ``request`` dict of a refused request's ``source``."""
        ...

    def audit_player(self, source: object) -> str | None:
        """The player a refused request names (the audit row's ``player_id``), if readable."""
        ...

    def refusal_answer(self, refusal: Refusal[Any], source: object) -> A:
        """The protocol's answer to ``refusal`` (the wallet was not asked: no balance)."""
        ...

    async def respond(self, answer: A, route: str, retry_after_s: int) -> Response:
        """The HTTP response of ``answer`` (encoded, signed where the protocol signs)."""
        ...


IntegrationT = TypeVar("IntegrationT", bound=IntegrationSettings)


def integration_of(
    ctx: EdgeContext, caller: Caller | None, settings: IntegrationT | None, provider: str,
    settings_type: type[IntegrationT],
) -> tuple[Caller, IntegrationT]:
    """The integration an adapter serves: the one given, else the sandbox integration named
    after ``provider`` (``[integrations.<provider>]``). Raises KeyError / TypeError if that
    is missing or of another provider."""
    if settings is None:
        found = ctx.settings.integration(caller.integration if caller is not None else provider)
        if not isinstance(found, settings_type):
            raise TypeError(f"integration {provider!r} is not a {provider} integration")
        settings = found
    if caller is None:
        name = provider
        caller = Caller.of(name, provider, settings.partner_id)
    assert caller.provider == provider and caller.partner_id == settings.partner_id
    return caller, settings


class Pipeline(Generic[A]):
    """The shared per-request steps (module docstring) for one provider bound to ``ctx``."""

    def __init__(self, ctx: EdgeContext, caller: Caller, protocol: WireProtocol[A]) -> None:
        self._ctx = ctx
        self._caller = caller
        self._protocol = protocol
        self._name = caller.integration
        self._body_bytes_max = ctx.settings.server.body_bytes_max
        self._log = get_logger(f"gateway.providers.{caller.provider}")

    def routes(self, endpoints: Iterable[Endpoint[A]]) -> list[Route]:
        """One POST ``Route`` per endpoint, to mount under the provider's prefix; each
        request's audit route is ``"<integration> <path>"`` (e.g. ``"hub88 /transaction/bet"``)."""
        return [Route(ep.path, self._handler(ep), methods=["POST"]) for ep in endpoints]

    def _handler(self, endpoint: Endpoint[A]) -> Handler:
        route = f"{self._name} {endpoint.path}"

        async def handle(request: Request) -> Response:
            return await self.serve(request, route, endpoint)

        handle.__name__ = f"{self._name}_{endpoint.path.strip('/').replace('/', '_').replace('.', '_')}"
        return handle

    async def serve(self, request: Request, route: str, endpoint: Endpoint[A]) -> Response:
        """Answer one request on ``endpoint``; never raises, never an HTTP 500.

        Records the request's RED metrics (``gateway_requests_total`` and its latency, by
        route, provider, HTTP status and answer code) and notes provider, partner and code
        on the request's observation (its span, gateway/telemetry/request.py).
        """
        started = time.perf_counter()
        observation = request_observation.current()
        token = None
        if observation is None:  # called without FastPath in front (it opens one per request)
            observation = request_observation.RequestObservation()
            token = request_observation.CURRENT.set(observation)
        observation.provider = self._caller.provider
        observation.partner = self._caller.partner_id
        retry_after_s = RETRY_AFTER_S_DEFAULT
        try:
            answer, retry_after_s = await self._answer(request, route, endpoint)
        except ClientDisconnect:
            observation.outcome = "client_disconnected"
            answer = self._protocol.retryable(None)
        except Exception as exc:  # noqa: BLE001 - the provider must get a status, never a 500
            self._log.error("provider_unexpected_error", provider=self._name, route=route,
                            error=repr(exc), exc_info=exc)
            observation.outcome = "internal_error"
            answer = self._protocol.retryable(None)
        finally:
            if token is not None:
                request_observation.CURRENT.reset(token)
        response = await self._protocol.respond(answer, route, retry_after_s)
        code = observation.outcome or "ok"
        status = str(response.status_code)
        metrics.requests_total.labels(route, self._caller.provider, status, code).inc()
        metrics.request_latency_seconds.labels(route, self._caller.provider, status, code).observe(
            time.perf_counter() - started)
        return response

    async def _answer(self, request: Request, route: str, endpoint: Endpoint[A]) -> tuple[A, int]:
        """Steps 1-6 of the module docstring: (answer, seconds a retryable answer asks for)."""
        protocol = self._protocol
        limited_s = await self._ctx.admit("provider", self._name)
        if limited_s is not None:
            request_observation.note(outcome="rate_limited")
            return protocol.retryable(None), limited_s
        rejected = protocol.precheck(request)
        if rejected is not None:
            return await self._reject(route, rejected), RETRY_AFTER_S_DEFAULT
        body = await read_body_bounded(request, self._body_bytes_max)
        if body is None:
            refusal = protocol.too_large(f"body exceeds {self._body_bytes_max} bytes")
            audit = {
                "body_bytes_max": self._body_bytes_max,
                "content_length": (request.headers.get("content-length") or "")[:20],
            }
            return await self.refuse(route, refusal, None, audit=audit), RETRY_AFTER_S_DEFAULT
        payload = protocol.authenticate(request, body)
        if isinstance(payload, Rejected):
            return await self._reject(route, payload), RETRY_AFTER_S_DEFAULT
        decoded = protocol.decode(payload, endpoint.request_type)
        if isinstance(decoded, Rejected):
            return await self._reject(route, decoded), RETRY_AFTER_S_DEFAULT
        origin = self._ctx.origin(route, protocol.request_id(decoded))
        try:
            return await endpoint.process(decoded, origin), RETRY_AFTER_S_DEFAULT
        except protocol.retryable_exceptions as exc:
            self._log.warning("provider_retryable_failure", provider=self._name, route=route,
                              error=repr(exc))
            retry_after_s = exc.retry_after_s if isinstance(exc, Overloaded) else RETRY_AFTER_S_DEFAULT
            if isinstance(exc, SessionStoreUnavailable):
                metrics.redis_unavailable_total.inc()  # the session lookup needed Redis
            request_observation.note(outcome="overloaded" if isinstance(exc, Overloaded) else "retryable")
            return protocol.retryable(decoded), retry_after_s

    async def _reject(self, route: str, rejected: Rejected) -> A:
        return await self.refuse(route, rejected.refusal, rejected.source, audit=rejected.audit)

    async def refuse(
        self,
        route: str,
        refusal: Refusal[Any],
        source: object,
        *,
        origin: Origin | None = None,
        audit: dict | None = None,
    ) -> A:
        """Record a refusal the adapter decided in the audit chain and build its answer.

        ``source``: what could be read of the request (decoded Struct, JSON object, form or
        None). ``origin``: the request's audit origin if it has one already, else one is
        made for ``route``. ``audit``: the audit ``request`` to record instead of
        ``audit_request(source)``. Failing to write the audit row is logged and does not
        change the answer.
        """
        protocol = self._protocol
        if origin is None:
            origin = self._ctx.origin(route, protocol.refusal_request_id(source))
        try:
            await self._ctx.record_refusal(
                scope=self._caller.scope,
                partner_id=self._caller.partner_id,
                code=refusal.code,
                detail=refusal.detail,
                origin=origin,
                request=audit if audit is not None else protocol.audit_request(source),
                player_id=protocol.audit_player(source),
            )
        except Exception as exc:  # noqa: BLE001 - failing to audit a refusal must not fail the answer
            self._log.error("provider_refusal_not_audited", provider=self._name, route=route,
                            error=repr(exc), exc_info=exc)
        request_observation.note(outcome=refusal.code.value)
        return protocol.refusal_answer(refusal, source)
