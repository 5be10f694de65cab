"""The ASGI application: wires embedded services, the ledger, the shard and the edge routes.

Start-up order (lifespan): embedded PostgreSQL/Redis if no URLs are configured -> asyncpg
pool -> migrations (always in embedded mode; with ``database.url`` set only if
``GATEWAY_MIGRATE_ON_START=1``, otherwise run ``gateway migrate``) -> the shard claims its
lease and restores its heads -> routes serve. Shutdown drains the pending batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable

import asyncpg
import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import clock
from gateway.cluster import backends
from gateway.cluster.backends import Backend, InProcessBackend
from gateway.config import Settings, load_settings
from gateway.edge.api_audit import AuditApi
from gateway.edge.api_payments import PaymentsApi
from gateway.edge.api_reconciliation import ReconciliationApi
from gateway.edge.api_sportsbook import SportsbookApi
from gateway.edge.api_v1 import Api, decode_body
from gateway.edge.auth import PartnerKeys
from gateway.edge.context import EdgeContext
from gateway.edge.docs_ui import docs_routes
from gateway.edge.fastpath import FastPath
from gateway.edge.openapi import build_openapi
from gateway.edge.problems import problem
from gateway.edge.ratelimit import RateLimiter
from gateway.edge.redis_client import redis_client
from gateway.edge.sessions import SessionStore
from gateway.embedded import EmbeddedServices
from gateway.ledger.migrate import migrate
from gateway.logs import get_logger
from gateway.metrics import exposition
from gateway.payments.service import Payments
from gateway.payments.store import PaymentStore
from gateway.providers import mounting as providers
from gateway.sportsbook.driver import SettlementDriver
from gateway.sportsbook.exposure import ExposureBook
from gateway.sportsbook.store import SportsbookStore
from gateway.sportsbook.sweeper import ReservationSweeper
from gateway.telemetry import tracing
from gateway.telemetry.request import observed_submit

log = get_logger("gateway.app")


def create_app(
    settings: Settings | None = None,
    backend_factory: Callable[[Settings, str], Backend] | None = None,
) -> FastPath:
    """Build the app. Settings default to ``load_settings()`` (config files + environment).

    ``backend_factory(settings, database_url)``: what commands go to (an edge process's
    RemoteBackend); None: one shard in this process (``InProcessBackend``, which also
    applies the migrations in sandbox mode or with ``GATEWAY_MIGRATE_ON_START=1``).
    Returns the Starlette app behind ``FastPath`` (direct dispatch of the money routes).
    """
    settings = settings or load_settings()
    clock.configure(clock.offset_file_path(settings.clock_offset_file))
    tracing.configure(settings, "gateway" if backend_factory is None else "edge")
    edge_id = settings.server.edge_id or f"{socket.gethostname()}:{os.getpid()}"
    holder: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        embedded = EmbeddedServices(settings)
        await embedded.astart()
        if backend_factory is None and (not settings.database.url or os.environ.get("GATEWAY_MIGRATE_ON_START") == "1"):
            conn = await asyncpg.connect(embedded.database_url)
            try:
                applied = await migrate(conn, lock_timeout_ms=settings.database.lock_timeout_ms,
                                        statement_timeout_ms=settings.database.statement_timeout_ms)
            finally:
                await conn.close()
            if applied:
                log.info("migrations_applied", migrations=applied)
        backend: Backend = (InProcessBackend(settings, embedded.database_url, claimed_by=edge_id)
                            if backend_factory is None else backend_factory(settings, embedded.database_url))
        await backend.start()
        redis = redis_client(embedded.redis_url, settings.redis.socket_timeout_ms, settings.redis.connections_max)
        limiter = RateLimiter(redis, settings.rate_limits,
                              timeout_s=settings.redis.socket_timeout_ms / 1000)
        ctx = EdgeContext(settings=settings, submit=observed_submit(backend.submit),
                          sessions=SessionStore(redis, settings.session.token_ttl_s,
                                                settings.session.lookup_batch_size_max),
                          limiter=limiter, edge_id=edge_id)
        sportsbook = await _sportsbook(ctx, embedded.database_url, embedded.redis_url)
        holder.update(backend=backend, ctx=ctx)
        payments_pool = await backends.open_pool(settings, embedded.database_url,
                                                 size_max=settings.payments.pool_size_max, session_state=False)
        payments = Payments(settings.payments, PaymentStore(payments_pool), ctx.submit,
                            amount_minor_max=settings.money.amount_minor_max)
        closers = _mount(app, fast, ctx, settings, sportsbook, payments)
        parked_sweep = asyncio.create_task(payments.sweep_forever())
        log.info("gateway_ready", edge=edge_id, port=settings.server.port)
        try:
            yield
        finally:
            await sportsbook.driver.stop()
            if sportsbook.sweeper is not None:
                await sportsbook.sweeper.stop()
            await sportsbook.store.pool.close()
            parked_sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await parked_sweep
            await payments_pool.close()
            await sportsbook.exposure.client.aclose()
            await backend.stop()
            for close in closers:
                close()
            await redis.aclose()
            await embedded.astop()
            log.info("gateway_stopped", edge=edge_id)
            tracing.shutdown()

    async def healthz(request: Request) -> Response:
        backend: Backend | None = holder.get("backend")
        if backend is not None and not backend.alive:
            return JSONResponse({"status": "shard_failed"}, status_code=503)
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        backend: Backend | None = holder.get("backend")
        if backend is None or not backend.ready:
            return JSONResponse({"status": "not_ready"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    # The document names a partner's own provider integrations when asked with its API key
    # (gateway/edge/openapi.py); built once per partner, from these settings.
    openapi_keys = PartnerKeys(settings.partners)
    openapi_docs: dict[str | None, bytes] = {}

    async def openapi(request: Request) -> Response:
        principal = openapi_keys.authenticate(request.headers.get("authorization"))
        partner_id = principal.partner_id if principal is not None else None
        doc = openapi_docs.get(partner_id)
        if doc is None:
            doc = openapi_docs[partner_id] = orjson.dumps(build_openapi(settings, partner_id))
        return Response(doc, media_type="application/json", headers={"Vary": "Authorization"})

    async def not_found(request: Request, exc: Exception) -> Response:
        return problem("not_found", f"no route {request.method} {request.url.path}")

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        # Starlette's 405 names the path's methods in its Allow header (RFC 9110, 15.5.6).
        allow = (getattr(exc, "headers", None) or {}).get("Allow", "")
        return problem("method_not_allowed", f"method {request.method} not allowed on {request.url.path}; allowed: {allow}",
                       headers={"Allow": allow})

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled_error", path=request.url.path, error=repr(exc), exc_info=exc)
        return problem("unavailable", "internal error; the request may be retried with the same id", retry_after_s=1)

    app = Starlette(
        routes=[
            Route("/healthz", healthz), Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint), Route("/openapi.json", openapi),
            *docs_routes(),
        ],
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: method_not_allowed, 500: server_error},
    )
    fast = FastPath(app)
    return fast


SHARD_FAILED_EXIT_CODE = backends.SHARD_FAILED_EXIT_CODE


async def _sportsbook(ctx: EdgeContext, database_url: str, redis_url: str) -> SportsbookApi:
    """The sportsbook routes' services: a bounded pool for its tables, the exposure book on
    its own Redis client (``sportsbook.redis_timeout_ms``: a liability check may wait
    longer than a session lookup before it answers retryably), and this edge's settlement
    driver and reservation sweeper (started here, stopped by the lifespan)."""
    settings = ctx.settings
    redis = redis_client(redis_url, settings.sportsbook.redis_timeout_ms, settings.redis.connections_max)
    pool = await backends.open_pool(settings, database_url, size_max=settings.sportsbook.pool_size_max,
                                    session_state=False)
    store = SportsbookStore(pool)
    exposure = ExposureBook(redis)
    driver = SettlementDriver(store, ctx.submit, exposure.release_many, settings.sportsbook)
    driver.start()
    sweeper = ReservationSweeper(store, exposure, ctx.submit, sorted(settings.partners), settings.sportsbook,
                                 owner=f"{socket.gethostname()}:{os.getpid()}")
    sweeper.start()
    return SportsbookApi(ctx, store, exposure, driver, decode_body, sweeper=sweeper)


def _mount(app: Starlette, fast: FastPath, ctx: EdgeContext, settings: Settings, sportsbook: SportsbookApi,
           payments: Payments) -> list:
    """Add the edge routes once the context exists (they need the shard and Redis).

    Returns the close callbacks of what was mounted (e.g. Hub88's signing thread pool).
    """
    api = Api(ctx, sportsbook, payments=lambda api: PaymentsApi(api, payments, payments.store),
              reconciliation=lambda api: ReconciliationApi(api, payments.store.pool),
              audit=lambda api: AuditApi(api, payments.store.pool))
    app.router.routes.extend(api.routes())
    assert api.payments is not None and api.reconciliation is not None
    app.router.routes.extend(api.payments.webhook_routes())
    app.router.routes.extend(api.reconciliation.routes())
    # The enabled provider adapters (gateway/providers/registry.py; docs/PROVIDERS.md).
    mounts, closers = providers.mount_enabled(ctx)
    app.router.routes.extend(mounts)
    fast.add_routes(app.router.routes)
    return closers
