"""Game sessions in real Redis: coalesced lookups, rotation, expiry, Redis down.

Source: gateway/edge/sessions.py (lookups share one MGET; Redis stays the only copy) and
docs/DESIGN.md section 7 (sessions are ephemeral state in Redis with a TTL; if Redis is
down, operations that need it fail with a clear retryable error).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from redis.backoff import NoBackoff

from gateway.edge.redis_client import redis_client
from gateway.edge.sessions import KEY_PREFIX, SessionStore, SessionStoreUnavailable
from tests.conftest import free_port


class CountingRedis(aioredis.Redis):
    """A real client that counts the MGETs it sends (to see lookups coalesce)."""

    mgets: list[int]

    async def mget(self, keys, *args):  # type: ignore[override]
        self.mgets.append(len(keys))
        return await super().mget(keys, *args)


@pytest.fixture
async def counting_redis(services):
    client = CountingRedis.from_url(services.redis_url)
    client.mgets = []
    yield client
    await client.aclose()


async def test_concurrent_lookups_share_one_mget_and_get_their_own_session(counting_redis):
    store = SessionStore(counting_redis, ttl_s=3600)
    sessions = [await store.create("demo", f"sess-player-{i}", "EUR", "evolution", "g1") for i in range(40)]
    counting_redis.mgets.clear()

    tokens = [s.token for s in sessions] + ["never-issued-token"]
    found = await asyncio.gather(*(store.get(t) for t in tokens))

    assert found[:-1] == sessions
    assert found[-1] is None
    # The first lookup starts the drain at once; the other 40 wait for the next MGET.
    assert sum(counting_redis.mgets) == 41
    assert len(counting_redis.mgets) <= 2, counting_redis.mgets


async def test_lookup_batches_respect_the_configured_bound(counting_redis):
    store = SessionStore(counting_redis, ttl_s=3600, lookup_batch_size_max=4)
    sessions = [await store.create("demo", f"sess-bound-{i}", "EUR", "pragmatic", "g1") for i in range(10)]
    counting_redis.mgets.clear()

    found = await asyncio.gather(*(store.get(s.token) for s in sessions))

    assert found == sessions
    assert max(counting_redis.mgets) <= 4
    assert sum(counting_redis.mgets) == 10


async def test_nothing_is_cached_an_expiry_written_elsewhere_is_seen_at_once(counting_redis):
    store = SessionStore(counting_redis, ttl_s=3600)
    other_process = SessionStore(counting_redis, ttl_s=3600)
    session = await store.create("demo", "sess-expiry", "EUR", "hub88", "g1")
    assert not (await store.get(session.token)).expired(time.time())

    await other_process.expire_now(session.token)

    assert (await store.get(session.token)).expired(time.time())


async def test_rotation_replaces_the_old_token_once(counting_redis):
    store = SessionStore(counting_redis, ttl_s=3600)
    session = await store.create("demo", "sess-rotate", "EUR", "evolution", "g1")

    first, second = await asyncio.gather(store.rotate(session.token), store.rotate(session.token))

    winners = [s for s in (first, second) if s is not None]
    assert len(winners) == 1, "one old sid may yield one new sid only"
    assert (await store.get(session.token)).replaced_by == winners[0].token
    assert await store.get(winners[0].token) == winners[0]


async def test_a_cancelled_waiter_does_not_disturb_the_others(counting_redis):
    store = SessionStore(counting_redis, ttl_s=3600)
    sessions = [await store.create("demo", f"sess-cancel-{i}", "EUR", "softswiss", "g1") for i in range(5)]

    tasks = [asyncio.create_task(store.get(s.token)) for s in sessions]
    tasks[2].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)

    assert isinstance(done[2], asyncio.CancelledError)
    assert [d for i, d in enumerate(done) if i != 2] == [s for i, s in enumerate(sessions) if i != 2]
    assert await store.get(sessions[2].token) == sessions[2]


async def test_redis_down_fails_every_waiter_retryably_and_promptly(services):
    """The gateway's own client (gateway/edge/redis_client.py): a lookup fails within its
    timeouts, not after redis-py's default retries (10, up to 1 s apart: ~4 s measured)."""
    down = redis_client(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_ms=200)
    store = SessionStore(down, ttl_s=3600)

    results = await asyncio.gather(*(store.get(f"tok-{i}") for i in range(8)), return_exceptions=True)

    assert all(isinstance(r, SessionStoreUnavailable) for r in results), results
    # One immediate retry, no backoff sleeps: a failure costs at most 2 x the timeouts.
    retry = down.get_retry()
    assert retry.get_retries() == 1
    assert isinstance(retry._backoff, NoBackoff)
    # The drain task ended with its batch: a later lookup starts afresh (and fails afresh).
    with pytest.raises(SessionStoreUnavailable):
        await store.get("tok-late")
    await down.aclose()


async def test_oversized_or_empty_tokens_are_unknown_without_a_round_trip(counting_redis):
    store = SessionStore(counting_redis, ttl_s=3600)
    counting_redis.mgets.clear()

    assert await store.get("") is None
    assert await store.get("x" * 257) is None
    assert counting_redis.mgets == []


async def test_sessions_live_under_their_key_prefix_with_a_ttl(counting_redis):
    store = SessionStore(counting_redis, ttl_s=60)
    session = await store.create("demo", "sess-ttl", "EUR", "hub88", "g1")

    ttl_s = await counting_redis.ttl(KEY_PREFIX + session.token)

    assert 60 < ttl_s <= 60 + 7 * 24 * 3600


async def test_a_settlement_reads_its_session_or_settles_without_it(counting_redis, services):
    """Wins and rollbacks do not need Redis (docs/DESIGN.md section 7): no token, an unknown token
    and Redis down all give None, never an error; a known token gives its session."""
    store = SessionStore(counting_redis, ttl_s=3600)
    session = await store.create("demo", "sess-settle", "EUR", "hub88", "g1")
    down = SessionStore(redis_client(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_ms=200), ttl_s=3600)

    assert await store.get_for_settlement(session.token, "hub88") == session
    assert await store.get_for_settlement("never-issued", "hub88") is None
    assert await store.get_for_settlement(None, "hub88") is None
    assert await down.get_for_settlement(session.token, "hub88") is None
