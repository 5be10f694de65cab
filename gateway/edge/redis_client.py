"""The edge's one Redis client: short timeouts and one immediate retry.

Redis holds sessions and rate-limit buckets (docs/DESIGN.md section 7). When it is down or slow,
session-dependent calls must get their retryable answer within the provider's timeout (a
few seconds), so the client waits at most ``socket_timeout_ms`` per attempt and retries
once, at once: enough to replace a pooled connection that Redis closed (a restart), never
the seconds of backoff redis-py's default policy can add (10 retries, up to 1 s apart).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

RETRIES_MAX = 1


#: Connections one client keeps (``redis.connections_max``): commands beyond them wait for
#: a free one (at most the socket timeout) instead of failing at once, as redis-py's
#: default pool does past 100 (seen as 503s under 128 concurrent bets, docs/BENCHMARKS.md).
CONNECTIONS_MAX_DEFAULT = 64


def redis_client(url: str, socket_timeout_ms: int, connections_max: int = CONNECTIONS_MAX_DEFAULT) -> aioredis.Redis:
    """A pooled asyncio client for ``url`` with at most ``connections_max`` connections; each
    command fails within about ``(RETRIES_MAX + 1) x socket_timeout_ms`` (waiting for a
    pooled connection, connect and reply) when Redis is away or every connection is busy."""
    assert socket_timeout_ms > 0 and connections_max >= 1
    timeout_s = socket_timeout_ms / 1000
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=connections_max,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), RETRIES_MAX),
    )
    client = aioredis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # aclose() closes the pool too
    return client
