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


def redis_client(url: str, socket_timeout_ms: int) -> aioredis.Redis:
    """A pooled asyncio client for ``url``; each command fails within about
    ``(RETRIES_MAX + 1) x socket_timeout_ms`` (connect and reply) when Redis is away."""
    assert socket_timeout_ms > 0
    timeout_s = socket_timeout_ms / 1000
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), RETRIES_MAX),
    )
