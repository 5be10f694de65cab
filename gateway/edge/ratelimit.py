"""Per-partner and per-provider rate limits: token buckets in Redis, leased in chunks.

Source: issue "Per-partner and per-provider rate limits in Redis"; docs/DESIGN.md section 7
(Redis holds rate limits; without Redis, money operations that do not need it keep working)
and section 9 (every limit configured, unit in the name); settings ``[rate_limits]``
(``gateway.config.RateLimitSettings``: ``requests_per_s`` sustained, ``burst`` at once).
Design notes and the tolerance: docs/RATE_LIMITS.md.

The shared bucket
    One token bucket per (kind, name) in Redis, at ``gw:rl:<kind>:<name>`` (kind
    "partner" = a generic-API partner id, "provider" = an adapter's provider name). It is
    changed only by ``LEASE_SCRIPT``, ONE Lua script (atomic in Redis, so any number of
    gateway processes share the budget): refill ``requests_per_s`` x elapsed time, capped
    at ``burst``, then take up to ``want`` whole tokens. The key expires once the bucket
    would be full again (``burst / requests_per_s`` seconds + 1 s), so idle buckets vanish;
    a missing key reads as a full bucket.

Leasing (why the common case costs no Redis round trip)
    Each process takes tokens from the shared bucket in chunks (``chunk`` = 10 ms worth of
    the global rate, at least 1, at most ``burst // 10``) and spends them locally, one per
    request; a lease not spent within ``lease_s`` (1 s) is dropped. Concurrent callers of
    one bucket share one in-flight script call, which asks for enough tokens for all of them.
    When the shared bucket runs dry, the process refuses locally until a chunk's worth has
    refilled (``chunk / requests_per_s``, about 10 ms) or the next token is due if that is
    later: a flood over the limit costs at most one script call per such interval and
    process, not one per request.

Tolerance
    Every admitted request spent one token taken from the shared bucket, so N processes
    together admit at most ``burst + requests_per_s x T + N x chunk`` requests in any
    interval of T seconds (the last term: tokens leased just before the interval and spent
    in it; a process holds at most a chunk unspent, as a larger lease is only taken for
    callers already waiting). Tokens leased but not spent are lost to the others, so a
    saturated bucket may start refusing up to ``N x chunk`` requests early. With the
    defaults (chunk = 1 % of ``requests_per_s``) that is about N % of one second's budget
    either way. While the bucket is dry a process may refuse for up to ``chunk /
    requests_per_s`` (~10 ms) after a token is back; the tokens refilled meanwhile stay in
    the shared bucket for the next lease, so throughput is kept. Refill uses the
    callers' wall clocks (injectable for tests); the bucket never moves its time
    backwards, so a clock skew of S seconds between hosts grants at most
    ``requests_per_s x S`` extra tokens, once.

Fail open
    On ``RedisError`` / ``OSError`` / timeout (or any unexpected error of the limiter itself),
    requests pass unlimited: ``gateway_rate_limit_unavailable_total`` counts each of them,
    a warning is logged at most once per ``warn_interval_s`` (10 s), and Redis is tried
    again only after a backoff (``backoff_s`` doubling up to ``backoff_max_s``), not on
    every request. Wallet traffic never waits on a dead Redis for more than one call.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway import metrics
from gateway.config import RateLimit, RateLimitSettings
from gateway.logs import get_logger

__all__ = ["KINDS", "LEASE_SCRIPT", "RateLimiter"]

log = get_logger(__name__)

#: The two kinds of bucket: generic-API partners and provider adapters.
KINDS: Final = ("partner", "provider")

#: KEYS[1] = bucket key; ARGV = requests_per_s, burst, now (integer microseconds, caller's
#: wall clock), want (tokens wanted, >= 1). Returns {granted, wait_ms}: ``granted`` whole
#: tokens were taken (0..want); ``wait_ms`` > 0 when fewer than one token is left, the time
#: until the next one. State: the string "<tokens> <timestamp_us>", with a TTL.
LEASE_SCRIPT: Final = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local tokens = burst
local ts = now
local state = redis.call('GET', KEYS[1])
if state then
  local sep = string.find(state, ' ', 1, true)
  if sep then
    local t = tonumber(string.sub(state, 1, sep - 1))
    local s = tonumber(string.sub(state, sep + 1))
    if t and s then
      tokens = t
      ts = s
    end
  end
end
if now > ts then
  tokens = tokens + (now - ts) * rate / 1000000
  ts = now
end
if tokens > burst then
  tokens = burst
end
local granted = math.floor(math.min(want, tokens))
if granted < 0 then
  granted = 0
end
tokens = tokens - granted
local wait_ms = 0
if tokens < 1 then
  wait_ms = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('SET', KEYS[1], string.format('%.6f %.0f', tokens, ts),
           'PX', math.ceil(burst * 1000 / rate) + 1000)
return {granted, wait_ms}
"""

_REDIS_ERRORS: Final = (RedisError, OSError, asyncio.TimeoutError)
_ATTEMPTS_MAX: Final = 4  # lease rounds per request before a defensive refusal


@dataclass(slots=True, eq=False)
class _Bucket:
    """One process's view of a shared bucket: its leased tokens and cached refusal."""

    key: str
    kind: str
    name: str
    rate: int  # requests_per_s
    burst: int
    chunk: int  # tokens asked per lease when fewer callers wait
    denial_max_s: float  # a cached refusal longer than this means the clock went back
    tokens: int = 0  # leased, not yet spent
    lease_until: float = 0.0  # leased tokens are dropped after this (clock seconds)
    denied_until: float = 0.0  # shared bucket empty until then: refuse without Redis
    waiting: int = 0  # callers waiting for the in-flight lease
    inflight: asyncio.Future | None = None
    limited_counter: Any = None  # metrics child, made on first refusal


class RateLimiter:
    """Token-bucket rate limits per (kind, name), shared through Redis. See module docstring.

    ``redis``: an asyncio Redis client (the app's). ``settings``: ``[rate_limits]``.
    Keyword arguments are tuning knobs (defaults fit production) and test hooks:
    ``key_prefix`` (keys are ``<key_prefix>:<kind>:<name>``), ``clock`` (wall-clock seconds,
    sent to Redis and used for local deadlines), ``buckets_max`` (local buckets kept, least
    recently used dropped first), ``chunk_s`` (a lease = this many seconds of the global
    rate), ``lease_s``, ``timeout_s`` (one Redis call), ``backoff_s`` / ``backoff_max_s``
    (wait before trying a failed Redis again), ``warn_interval_s``.

    ``lease_calls`` counts script calls made (observability and tests).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        settings: RateLimitSettings,
        *,
        key_prefix: str = "gw:rl",
        clock: Callable[[], float] = time.time,
        buckets_max: int = 10_000,
        chunk_s: float = 0.01,
        lease_s: float = 1.0,
        timeout_s: float = 0.25,
        backoff_s: float = 0.5,
        backoff_max_s: float = 5.0,
        warn_interval_s: float = 10.0,
    ) -> None:
        if buckets_max < 1 or lease_s <= 0 or timeout_s <= 0 or backoff_s <= 0:
            raise ValueError("buckets_max, lease_s, timeout_s and backoff_s must be positive")
        self._settings = settings
        self._enabled = settings.enabled
        self._script = redis.register_script(LEASE_SCRIPT)
        self._prefix = key_prefix
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._buckets_max = buckets_max
        self._chunk_s = chunk_s
        self._lease_s = lease_s
        self._timeout_s = timeout_s
        self._backoff_s = backoff_s
        self._backoff_max_s = max(backoff_max_s, backoff_s)
        self._warn_interval_s = warn_interval_s
        self._failures = 0  # consecutive failed Redis calls
        self._redis_retry_at = 0.0  # while failing: no Redis call before this
        self._warned_at = -math.inf
        self.lease_calls = 0

    # ---- public ---------------------------------------------------------------------

    def limit_for(self, kind: str, name: str) -> RateLimit:
        """The configured limit of ``name``: its own entry, else the kind's default.

        Raises ValueError for a kind other than "partner" / "provider".
        """
        s = self._settings
        if kind == "partner":
            return s.partners.get(name, s.partner_default)
        if kind == "provider":
            return s.providers.get(name, s.provider_default)
        raise ValueError(f"unknown rate-limit kind {kind!r}")

    async def admit(self, kind: str, name: str) -> int | None:
        """None if one request of ``name`` may proceed now, else Retry-After seconds (>= 1).

        ``kind``: "partner" (``name`` = partner id) or "provider" (``name`` = provider name,
        e.g. "hub88"); ValueError for another kind. Never raises for Redis trouble: it
        fails open (module docstring). A refusal increments
        ``gateway_rate_limited_total{kind,name}``; the caller answers its protocol's
        retryable status without auditing.
        """
        if not self._enabled:
            return None
        bucket = self._bucket(kind, name)
        for _ in range(_ATTEMPTS_MAX):
            now = self._clock()
            # Bounds on both sides: a deadline too far ahead means the clock went back.
            if bucket.tokens > 0 and now < bucket.lease_until <= now + self._lease_s:
                bucket.tokens -= 1
                return None
            if now < bucket.denied_until <= now + bucket.denial_max_s:
                return self._limited(bucket, bucket.denied_until - now)
            if now < self._redis_retry_at <= now + self._backoff_max_s:
                metrics.rate_limit_unavailable_total.inc()
                return None
            await self._lease(bucket)
        return self._limited(bucket, 1.0)

    @property
    def buckets_resident(self) -> int:
        """Local buckets held (at most ``buckets_max``)."""
        return len(self._buckets)

    # ---- local buckets --------------------------------------------------------------

    def _bucket(self, kind: str, name: str) -> _Bucket:
        buckets = self._buckets
        key = (kind, name)
        bucket = buckets.get(key)
        if bucket is not None:
            buckets.move_to_end(key)
            return bucket
        limit = self.limit_for(kind, name)
        rate, burst = limit.requests_per_s, limit.burst
        chunk = max(1, min(round(rate * self._chunk_s), burst // 10))
        bucket = _Bucket(
            key=f"{self._prefix}:{kind}:{name}",
            kind=kind,
            name=name,
            rate=rate,
            burst=burst,
            chunk=chunk,
            denial_max_s=(1 + chunk) / rate + 0.01,
        )
        buckets[key] = bucket
        if len(buckets) > self._buckets_max:
            buckets.popitem(last=False)
        return bucket

    def _limited(self, bucket: _Bucket, wait_s: float) -> int:
        if bucket.limited_counter is None:
            bucket.limited_counter = metrics.rate_limited_total.labels(bucket.kind, bucket.name)
        bucket.limited_counter.inc()
        return max(1, math.ceil(wait_s))

    # ---- leases from Redis ----------------------------------------------------------

    async def _lease(self, bucket: _Bucket) -> None:
        """Wait for the bucket's in-flight lease, starting one if none is under way."""
        task = bucket.inflight
        if task is None:
            task = bucket.inflight = asyncio.ensure_future(self._fetch(bucket))
        bucket.waiting += 1
        try:
            # shield: a caller that goes away (client disconnect) does not cancel the
            # call the other waiters share.
            await asyncio.shield(task)
        finally:
            bucket.waiting -= 1

    async def _fetch(self, bucket: _Bucket) -> None:
        """One script call: lease tokens for every waiting caller (at least a chunk)."""
        try:
            want = min(max(bucket.chunk, bucket.waiting), bucket.burst)
            now = self._clock()
            self.lease_calls += 1
            try:
                async with asyncio.timeout(self._timeout_s):
                    granted, wait_ms = await self._script(
                        keys=[bucket.key],
                        args=[bucket.rate, bucket.burst, int(now * 1_000_000), want],
                    )
            except _REDIS_ERRORS as exc:
                self._redis_failed(now, exc)
                return
            except Exception as exc:
                log.error("rate_limit_error", key=bucket.key, error=repr(exc)[:300], exc_info=exc)
                self._redis_failed(now, exc)
                return
            if self._failures:
                log.info("rate_limit_available", failures=self._failures)
                self._failures = 0
                self._redis_retry_at = 0.0
            granted = int(granted)
            bucket.tokens = granted  # any older tokens had expired (or none were left)
            bucket.lease_until = now + self._lease_s
            if granted < want:
                # Dry: refuse locally until a chunk's worth has refilled (or the next token,
                # if later), so a flood costs at most one call per chunk interval.
                bucket.denied_until = now + max(int(wait_ms) / 1000, bucket.chunk / bucket.rate)
            else:
                bucket.denied_until = 0.0
        finally:
            bucket.inflight = None

    def _redis_failed(self, now: float, exc: BaseException) -> None:
        """Fail open: back off before the next Redis call; warn at most once per interval."""
        self._failures += 1
        backoff_s = min(self._backoff_max_s, self._backoff_s * 2 ** min(self._failures - 1, 16))
        self._redis_retry_at = now + backoff_s
        if not now - self._warn_interval_s < self._warned_at <= now:
            self._warned_at = now
            log.warning(
                "rate_limit_unavailable",
                error=f"{type(exc).__name__}: {exc}"[:300],
                failures=self._failures,
                retry_in_s=backoff_s,
                effect="requests pass without rate limiting until Redis answers",
            )
