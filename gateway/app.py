"""The ASGI application: wires embedded services, the ledger, the shard and the edge routes.

Start-up order (lifespan): embedded PostgreSQL/Redis if no URLs are configured -> asyncpg
pool -> migrations (always in embedded mode; with ``database.url`` set only if
``GATEWAY_MIGRATE_ON_START=1``, otherwise run ``gateway migrate``) -> the shard claims its
lease and restores its heads -> routes serve. Shutdown drains the pending batches.
"""

from __future__ import annotations

import contextlib
import os
import socket

import asyncpg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.config import Settings, load_settings
from gateway.edge.api_v1 import Api
from gateway.edge.context import EdgeContext
from gateway.edge.fastpath import FastPath
from gateway.edge.openapi import build_openapi
from gateway.edge.problems import problem
from gateway.edge.ratelimit import RateLimiter
from gateway.edge.redis_client import redis_client
from gateway.edge.sessions import SessionStore
from gateway.embedded import EmbeddedServices
from gateway.ledger.io_thread import DatabaseThread, ThreadedStore
from gateway.ledger.migrate import migrate
from gateway.ledger.store import LedgerStore
from gateway.logs import get_logger
from gateway.metrics import REGISTRY
from gateway.providers import registry as providers
from gateway.shards.router import LocalShards
from gateway.shards.shard import Shard

log = get_logger("gateway.app")


async def open_pool(settings: Settings, url: str, size_max: int | None = None) -> asyncpg.Pool:
    """asyncpg pool with the configured timeouts. Raises on connection failure."""
    return await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=size_max or settings.database.pool_size_max,
        timeout=settings.database.connect_timeout_ms / 1000,
        command_timeout=settings.database.statement_timeout_ms / 1000,
        server_settings={
            "application_name": "wallet-gateway",
            "statement_timeout": str(settings.database.statement_timeout_ms),
        },
    )


def create_app(settings: Settings | None = None) -> FastPath:
    """Build the app. Settings default to ``load_settings()`` (config files + environment).

    Returns the Starlette app behind ``FastPath`` (direct dispatch of the money routes).
    """
    settings = settings or load_settings()
    edge_id = settings.server.edge_id or f"{socket.gethostname()}:{os.getpid()}"
    holder: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        embedded = EmbeddedServices(settings)
        await embedded.astart()
        if not settings.database.url or os.environ.get("GATEWAY_MIGRATE_ON_START") == "1":
            conn = await asyncpg.connect(embedded.database_url)
            try:
                applied = await migrate(conn, lock_timeout_ms=settings.database.lock_timeout_ms,
                                        statement_timeout_ms=settings.database.statement_timeout_ms)
            finally:
                await conn.close()
            if applied:
                log.info("migrations_applied", migrations=applied)
        db_thread = DatabaseThread()
        pool = await db_thread.call(open_pool, settings, embedded.database_url)
        store = ThreadedStore(LedgerStore(pool, settings.shard.shard_id), db_thread)
        shard = Shard(settings, store, claimed_by=edge_id, on_failure=_exit_for_restart)
        await shard.start()
        shards = LocalShards({shard.shard_id: shard}, None, settings.shard.bucket_count)
        redis = redis_client(embedded.redis_url, settings.redis.socket_timeout_ms)
        limiter = RateLimiter(redis, settings.rate_limits,
                              timeout_s=settings.redis.socket_timeout_ms / 1000)
        ctx = EdgeContext(settings=settings, submit=shards.submit,
                          sessions=SessionStore(redis, settings.session.token_ttl_s,
                                                settings.session.lookup_batch_size_max),
                          limiter=limiter, edge_id=edge_id)
        holder.update(shards=shards, pool=pool, ctx=ctx)
        closers = _mount(app, fast, ctx, settings)
        log.info("gateway_ready", edge=edge_id, port=settings.server.port)
        try:
            yield
        finally:
            await shard.stop()
            for close in closers:
                close()
            await redis.aclose()
            await db_thread.call(pool.close)
            db_thread.stop()
            await embedded.astop()
            log.info("gateway_stopped", edge=edge_id)

    async def healthz(request: Request) -> Response:
        shards: LocalShards | None = holder.get("shards")
        if shards is not None and any(s.failed is not None for s in shards.shards.values()):
            return JSONResponse({"status": "shard_failed"}, status_code=503)
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        shards: LocalShards | None = holder.get("shards")
        if shards is None or not shards.ready:
            return JSONResponse({"status": "not_ready"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    openapi_doc = build_openapi()

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_doc)

    async def not_found(request: Request, exc: Exception) -> Response:
        return problem("not_found", f"no route {request.method} {request.url.path}")

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return problem("invalid_request", f"method {request.method} not allowed here")

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled_error", path=request.url.path, error=repr(exc), exc_info=exc)
        return problem("unavailable", "internal error; the request may be retried with the same id", retry_after_s=1)

    app = Starlette(
        routes=[
            Route("/healthz", healthz), Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint), Route("/openapi.json", openapi),
        ],
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: method_not_allowed, 500: server_error},
    )
    fast = FastPath(app)
    return fast


SHARD_FAILED_EXIT_CODE = 3


def _exit_for_restart(exc: BaseException) -> None:
    """A shard stopped on a broken invariant: leave the process so the supervisor restarts it.

    Half a second lets the waiting callers receive their 503s. Nothing acknowledged is lost:
    acknowledgements only follow commits, and a restart reloads from PostgreSQL.
    """
    import asyncio

    log.critical("exiting_for_restart", exit_code=SHARD_FAILED_EXIT_CODE, error=repr(exc))
    asyncio.get_running_loop().call_later(0.5, os._exit, SHARD_FAILED_EXIT_CODE)


def _mount(app: Starlette, fast: FastPath, ctx: EdgeContext, settings: Settings) -> list:
    """Add the edge routes once the context exists (they need the shard and Redis).

    Returns the close callbacks of what was mounted (e.g. Hub88's signing thread pool).
    """
    app.router.routes.extend(Api(ctx).routes())
    # The enabled provider adapters (gateway/providers/registry.py; docs/PROVIDERS.md).
    mounts, closers = providers.mount_enabled(ctx)
    app.router.routes.extend(mounts)
    fast.add_routes(app.router.routes)
    return closers
