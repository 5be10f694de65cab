"""The rate limiter (gateway/edge/ratelimit.py) against a real Redis, without a gateway.

Source: issue "Per-partner and per-provider rate limits in Redis"; docs/DESIGN.md section 7
(rate limits in Redis; without Redis, money operations keep working); docs/RATE_LIMITS.md
(design and tolerance).

Every test uses a key prefix of its own (``gw:rl:test:<uuid>``), so tests never share a
bucket with each other or with a running gateway. Time is driven by an injected clock, never
by sleeping: the shared bucket in Redis refills from the clock value the limiter sends. The
limits chosen keep each key's real TTL (``burst / requests_per_s + 1`` seconds) far longer
than a test runs. Redis outages are real: a closed port, a listener that never answers, or
a TCP proxy in front of the real Redis that stops listening and starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import redis.asyncio as aioredis

from gateway.config import RateLimit, RateLimitSettings
from gateway.edge import ratelimit
from gateway.edge.ratelimit import RateLimiter
from gateway.metrics import REGISTRY
from tests.conftest import free_port

T0 = 1_800_000_000.0


class Clock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Recorder:
    """Stands in for the module's structlog logger: remembers (level, event, fields)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict]] = []

    def _log(self, level: str):
        def record(event: str, **fields) -> None:
            self.events.append((level, event, fields))
        return record

    def __getattr__(self, level: str):
        return self._log(level)

    def named(self, event: str) -> list[dict]:
        return [fields for _, e, fields in self.events if e == event]


def limits(partner=(1, 20), provider=(1, 10), partners=None, providers=None, enabled=True) -> RateLimitSettings:
    return RateLimitSettings(
        enabled=enabled,
        partner_default=RateLimit(*partner),
        provider_default=RateLimit(*provider),
        partners={k: RateLimit(*v) for k, v in (partners or {}).items()},
        providers={k: RateLimit(*v) for k, v in (providers or {}).items()},
    )


def unavailable_total() -> float:
    return REGISTRY.get_sample_value("gateway_rate_limit_unavailable_total") or 0.0


def limited_total(kind: str, name: str) -> float:
    return REGISTRY.get_sample_value("gateway_rate_limited_total", {"kind": kind, "name": name}) or 0.0


async def allowed_until_refused(limiter: RateLimiter, kind: str, name: str, cap: int = 10_000) -> tuple[int, int]:
    """Admit one by one until the first refusal: (requests allowed, its Retry-After)."""
    for n in range(cap):
        retry = await limiter.admit(kind, name)
        if retry is not None:
            return n, retry
    raise AssertionError(f"no refusal within {cap} requests")


@pytest.fixture
async def redis_client(services):
    client = aioredis.from_url(services.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis_client):
    """A key prefix of this test's own; its keys are deleted afterwards."""
    p = f"gw:rl:test:{uuid.uuid4().hex[:12]}"
    yield p
    keys = [k async for k in redis_client.scan_iter(match=p + ":*")]
    if keys:
        await redis_client.delete(*keys)


# ---- the bucket ------------------------------------------------------------------------------


async def test_burst_is_allowed_then_refused_with_retry_after(redis_client, prefix):
    clock = Clock()
    limiter = RateLimiter(redis_client, limits(partner=(1, 20)), key_prefix=prefix, clock=clock)
    before = limited_total("partner", "p1")

    allowed, retry = await allowed_until_refused(limiter, "partner", "p1")

    assert allowed == 20  # the full burst, nothing more, at one instant
    assert retry == 1  # next token in 1 s at 1 request/s; Retry-After is whole seconds >= 1
    assert limited_total("partner", "p1") == before + 1
    # The bucket lives at gw:rl-style key <prefix>:<kind>:<name>, and expires once it would
    # be full again (burst / rate + 1 s), so idle buckets vanish.
    ttl_ms = await redis_client.pttl(f"{prefix}:partner:p1")
    assert 0 < ttl_ms <= 21_000
    # Refusals are cached until the next token is due: no Redis call for a flood.
    calls = limiter.lease_calls
    for _ in range(50):
        assert await limiter.admit("partner", "p1") == 1
    assert limiter.lease_calls == calls
    assert limited_total("partner", "p1") == before + 51


async def test_bucket_refills_with_time(redis_client, prefix):
    clock = Clock()
    limiter = RateLimiter(redis_client, limits(partner=(2, 20)), key_prefix=prefix, clock=clock)
    assert (await allowed_until_refused(limiter, "partner", "p"))[0] == 20

    clock.advance(1.0)  # 2 requests/s -> 2 tokens
    assert (await allowed_until_refused(limiter, "partner", "p"))[0] == 2

    clock.advance(0.25)  # half a token: still refused, and told to come back in a second
    assert await limiter.admit("partner", "p") == 1

    clock.advance(3600)  # refill is capped at the burst
    assert (await allowed_until_refused(limiter, "partner", "p"))[0] == 20


async def test_a_clock_going_back_neither_blocks_nor_frees(redis_client, prefix):
    clock = Clock()
    limiter = RateLimiter(redis_client, limits(partner=(1, 20)), key_prefix=prefix, clock=clock)
    assert (await allowed_until_refused(limiter, "partner", "p"))[0] == 20
    clock.advance(-3600)  # wall clock stepped back an hour (NTP): no hour-long refusal ...
    # ... and no free tokens either: the shared bucket never moves its time backwards.
    assert await limiter.admit("partner", "p") == 1


async def test_two_processes_share_one_budget_within_the_stated_tolerance(redis_client, prefix):
    """docs/RATE_LIMITS.md: N processes admit at most burst + rate x T + N x chunk, and
    start refusing at most N x chunk early. At one instant (T = 0), with chunk = 10."""
    clock = Clock()
    settings = limits(provider=(1000, 1000))  # chunk = 1000 x 10 ms = 10 tokens
    a = RateLimiter(redis_client, settings, key_prefix=prefix, clock=clock)
    b = RateLimiter(redis_client, settings, key_prefix=prefix, clock=clock)
    chunk = 10

    allowed = 0
    for i in range(1500):  # interleaved, one request at a time: leases are chunks
        if await (a if i % 2 else b).admit("provider", "shared") is None:
            allowed += 1
    assert 1000 - 2 * chunk <= allowed <= 1000
    # The common case costs no Redis round trip: about one script call per chunk.
    assert a.lease_calls + b.lease_calls <= allowed // chunk + 10

    # Concurrent callers of one process share a call that leases for all of them.
    clock.advance(0.5)  # +500 tokens
    results = await asyncio.gather(
        *(limiter.admit("provider", "shared") for limiter in (a, b) for _ in range(400))
    )
    allowed_now = sum(r is None for r in results)
    assert 500 - 2 * chunk <= allowed_now <= 500 + 2 * chunk  # + leftovers of the first round
    assert all(r is None or r == 1 for r in results)


async def test_concurrent_callers_share_one_in_flight_call(redis_client, prefix):
    limiter = RateLimiter(redis_client, limits(partner=(10_000, 20_000)), key_prefix=prefix, clock=Clock())
    results = await asyncio.gather(*(limiter.admit("partner", "busy") for _ in range(500)))
    assert results == [None] * 500
    assert limiter.lease_calls == 1
    # The next requests spend what is left of the lease (at least a chunk), locally.
    for _ in range(50):
        assert await limiter.admit("partner", "busy") is None
    assert limiter.lease_calls <= 2


async def test_per_name_overrides_and_defaults(redis_client, prefix):
    settings = limits(partner=(1, 20), provider=(1, 10), partners={"vip": (1, 50)}, providers={"hub88": (1, 30)})
    limiter = RateLimiter(redis_client, settings, key_prefix=prefix, clock=Clock())
    assert (await allowed_until_refused(limiter, "partner", "vip"))[0] == 50
    assert (await allowed_until_refused(limiter, "partner", "someone"))[0] == 20
    assert (await allowed_until_refused(limiter, "provider", "hub88"))[0] == 30
    assert (await allowed_until_refused(limiter, "provider", "evolution"))[0] == 10
    # The same name under the other kind is another bucket with the other defaults.
    assert (await allowed_until_refused(limiter, "provider", "vip"))[0] == 10
    assert limiter.limit_for("partner", "vip") == RateLimit(1, 50)
    with pytest.raises(ValueError):
        limiter.limit_for("player", "x")
    with pytest.raises(ValueError):
        await limiter.admit("player", "x")


async def test_local_buckets_are_capped(redis_client, prefix):
    limiter = RateLimiter(redis_client, limits(), key_prefix=prefix, clock=Clock(), buckets_max=3)
    for i in range(10):
        assert await limiter.admit("partner", f"p{i}") is None
    assert limiter.buckets_resident == 3


async def test_disabled_limits_never_touch_redis():
    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    limiter = RateLimiter(dead, limits(partner=(1, 1), enabled=False))
    before = unavailable_total()
    for _ in range(20):
        assert await limiter.admit("partner", "p") is None
    assert limiter.lease_calls == 0
    assert unavailable_total() == before
    await dead.aclose()


# ---- Redis down: fail open -------------------------------------------------------------------


async def test_fail_open_when_redis_is_unreachable(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(ratelimit, "log", recorder)
    clock = Clock()
    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    limiter = RateLimiter(dead, limits(partner=(1, 1)), clock=clock, backoff_s=0.5)
    before = unavailable_total()

    for _ in range(10):  # far past the burst of 1: no limiting without Redis
        assert await limiter.admit("partner", "p") is None
    assert unavailable_total() == before + 10
    assert limiter.lease_calls == 1  # then no Redis call during the backoff
    assert len(recorder.named("rate_limit_unavailable")) == 1

    clock.advance(0.6)  # backoff over: one more try, still failing, no second warning yet
    assert await limiter.admit("partner", "p") is None
    assert limiter.lease_calls == 2
    assert len(recorder.named("rate_limit_unavailable")) == 1
    clock.advance(0.2)  # the backoff doubled (1 s): no new try
    assert await limiter.admit("partner", "p") is None
    assert limiter.lease_calls == 2

    clock.advance(10)  # a warning at most once per 10 s
    assert await limiter.admit("partner", "p") is None
    assert limiter.lease_calls == 3
    assert len(recorder.named("rate_limit_unavailable")) == 2
    assert unavailable_total() == before + 13
    await dead.aclose()


async def test_fail_open_when_redis_does_not_answer():
    """A Redis that accepts connections but never replies: the call times out (timeout_s)."""
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
    limiter = RateLimiter(client, limits(partner=(1, 1)), clock=Clock(), timeout_s=0.1)
    before = unavailable_total()
    try:
        results = await asyncio.gather(*(limiter.admit("partner", "p") for _ in range(5)))
        assert results == [None] * 5
        assert limiter.lease_calls == 1  # the five shared the one call that timed out
        assert unavailable_total() == before + 5
    finally:
        await client.aclose()
        for w in connections:
            w.transport.abort()
        server.close()
        await server.wait_closed()


class RedisProxy:
    """A 127.0.0.1 TCP listener forwarding to the test Redis (TCP or Unix socket): ``stop()``
    closes the listener and every connection (Redis "down"), ``start()`` listens again on
    the same port (Redis "back")."""

    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        if parts.scheme == "unix":
            self.db = int(parse_qs(parts.query).get("db", ["0"])[0])
            self._connect = lambda: asyncio.open_unix_connection(parts.path)
        else:
            self.db = int(parts.path.lstrip("/") or 0)
            self._connect = lambda: asyncio.open_connection(parts.hostname, parts.port or 6379)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self.db}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._live):
                w.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await self._connect()
        except OSError:
            writer.transport.abort()
            return
        self._live.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)
        self._live.difference_update((writer, up_writer))


async def test_recovers_when_redis_returns(services, redis_client, prefix, monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(ratelimit, "log", recorder)
    proxy = RedisProxy(services.redis_url)
    await proxy.start()
    url = proxy.url
    await proxy.stop()  # Redis "down": nothing listens on the proxy's port
    client = aioredis.from_url(url)
    clock = Clock()
    limiter = RateLimiter(client, limits(partner=(1, 20)), key_prefix=prefix, clock=clock, backoff_s=0.5)
    try:
        before = unavailable_total()
        for _ in range(30):  # past the burst: unlimited while Redis is away
            assert await limiter.admit("partner", "p") is None
        assert unavailable_total() == before + 30

        await proxy.start()  # Redis "back", same address
        clock.advance(0.6)  # after the backoff the limiter asks Redis again
        allowed, retry = await allowed_until_refused(limiter, "partner", "p")
        assert allowed == 20 and retry == 1  # limits apply again, from a full bucket
        assert unavailable_total() == before + 30
        assert len(recorder.named("rate_limit_available")) == 1
    finally:
        await client.aclose()
        await proxy.stop()
