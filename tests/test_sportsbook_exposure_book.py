"""The exposure book against a real Redis: atomic check-and-reserve, release, the mirror.

The reference model is ``liability.passes``-style arithmetic written out in the test: many
concurrent reservations on one selection never take its liability over the limit, and what
is reserved equals the sum of the accepted bets exactly.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import redis.asyncio as aioredis

from gateway.edge.redis_client import redis_client
from gateway.sportsbook.exposure import AlreadyReserved, ExposureBook, ExposureUnavailable, Refused, Reserved
from gateway.sportsbook.liability import Contribution, Limits

REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
async def book():
    client = redis_client(REDIS_URL, 500)
    yield ExposureBook(client)
    await client.aclose()


def single(market: str, selection: str, stake: int, odds_times_100: int) -> list[Contribution]:
    return [Contribution(market, selection, stake * odds_times_100 // 100, stake)]


async def test_reserve_release_and_idempotency(book):
    partner = f"p{uuid.uuid4().hex[:8]}"
    await book.mirror_market(partner, "m", "open", 1, 1)
    limits = {"m": Limits(selection_liability_max_minor=5_000)}
    assert isinstance(await book.reserve(partner, "b1", single("m", "home", 4_000, 200), limits, {"m": 1}), Reserved)
    assert isinstance(await book.reserve(partner, "b1", single("m", "home", 4_000, 200), limits, {"m": 1}),
                      AlreadyReserved)
    assert await book.snapshot(partner, "m") == {"stakes_minor": 4_000, "returns_minor:home": 8_000}
    refused = await book.reserve(partner, "b2", single("m", "home", 3_000, 200), limits, {"m": 1})
    assert isinstance(refused, Refused) and refused.code == "selection_liability_limit"
    assert await book.snapshot(partner, "m") == {"stakes_minor": 4_000, "returns_minor:home": 8_000}
    assert await book.release(partner, "b1") is True
    assert await book.release(partner, "b1") is False
    assert await book.snapshot(partner, "m") == {"stakes_minor": 0, "returns_minor:home": 0}
    # a released bet id is never reserved again
    assert isinstance(await book.reserve(partner, "b1", single("m", "home", 10, 200), limits, {"m": 1}),
                      AlreadyReserved)


async def test_market_state_and_price_version_are_checked_atomically(book):
    partner = f"p{uuid.uuid4().hex[:8]}"
    adds = single("m", "home", 100, 250)
    refused = await book.reserve(partner, "b0", adds, {}, {"m": 1})
    assert isinstance(refused, Refused) and refused.code == "market_suspended"  # never mirrored
    await book.mirror_market(partner, "m", "open", 1, 1)
    await book.mirror_market(partner, "m", "open", 2, 2)
    refused = await book.reserve(partner, "b1", adds, {}, {"m": 1})
    assert isinstance(refused, Refused) and refused.code == "odds_changed"
    await book.mirror_market(partner, "m", "suspended", 2, 3)
    await book.mirror_market(partner, "m", "open", 2, 2)  # an older revision arriving late
    refused = await book.reserve(partner, "b2", adds, {}, {"m": 2})
    assert isinstance(refused, Refused) and refused.code == "market_suspended"


async def test_concurrent_reservations_never_pass_the_limit(book):
    partner = f"p{uuid.uuid4().hex[:8]}"
    await book.mirror_market(partner, "m", "open", 1, 1)
    limit = 10_000
    limits = {"m": Limits(selection_liability_max_minor=limit)}
    stakes = [100 + 37 * i for i in range(60)]
    answers = await asyncio.gather(*(book.reserve(partner, f"b{i}", single("m", "home", s, 300), limits, {"m": 1})
                                     for i, s in enumerate(stakes)))
    accepted = [s for s, a in zip(stakes, answers, strict=True) if isinstance(a, Reserved)]
    snapshot = await book.snapshot(partner, "m")
    assert snapshot == {"stakes_minor": sum(accepted), "returns_minor:home": sum(3 * s for s in accepted)}
    assert snapshot["returns_minor:home"] - snapshot["stakes_minor"] <= limit
    assert len(accepted) < len(stakes)  # the limit did bind


async def test_partners_have_their_own_counters(book):
    mine, theirs = f"p{uuid.uuid4().hex[:8]}", f"p{uuid.uuid4().hex[:8]}"
    await book.mirror_market(mine, "m", "open", 1, 1)
    assert isinstance(await book.reserve(mine, "b", single("m", "home", 100, 200), {}, {"m": 1}), Reserved)
    assert await book.snapshot(theirs, "m") == {"stakes_minor": 0}
    refused = await book.reserve(theirs, "b", single("m", "home", 100, 200), {}, {"m": 1})
    assert isinstance(refused, Refused) and refused.code == "market_suspended"


async def test_redis_down_is_unavailable_never_accepted():
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    book = ExposureBook(client)
    with pytest.raises(ExposureUnavailable):
        await book.reserve("p", "b", single("m", "home", 100, 200), {}, {"m": 1})
    with pytest.raises(ExposureUnavailable):
        await book.mirror_market("p", "m", "open", 1, 1)
    await client.aclose()


async def test_release_many_undoes_exactly_once(book):
    partner = f"p{uuid.uuid4().hex[:8]}"
    await book.mirror_market(partner, "m", "open", 1, 1)
    for i in range(20):
        assert isinstance(await book.reserve(partner, f"b{i}", single("m", "home", 100 + i, 200), {}, {"m": 1}), Reserved)
    assert await book.release_many(partner, [f"b{i}" for i in range(10)] + ["never-reserved"]) == 10
    assert await book.release_many(partner, [f"b{i}" for i in range(10)]) == 0
    rest = range(10, 20)
    assert await book.snapshot(partner, "m") == {"stakes_minor": sum(100 + i for i in rest),
                                                 "returns_minor:home": sum(2 * (100 + i) for i in rest)}


async def test_a_market_changed_since_it_was_read_is_refused(book):
    """Limits travel from the edge's cached market: the revision they were read at is checked
    with the price version, so a cache older than the trader's last change never decides."""
    partner = f"p{uuid.uuid4().hex[:8]}"
    await book.mirror_market(partner, "m", "open", 1, 3)
    adds = single("m", "home", 100, 200)
    stale = await book.reserve(partner, "b1", adds, {}, {"m": 1}, revisions={"m": 2})
    assert isinstance(stale, Refused) and stale.code == "market_changed"
    assert await book.snapshot(partner, "m") == {"stakes_minor": 0}
    assert isinstance(await book.reserve(partner, "b1", adds, {}, {"m": 1}, revisions={"m": 3}), Reserved)


async def test_cancel_forgets_and_release_marks(book):
    """A refused placement's reservation is cancelled (a retry reserves afresh); a settled
    bet's is released (a late retry never reserves again). Both give back exactly."""
    partner = f"p{uuid.uuid4().hex[:8]}"
    await book.mirror_market(partner, "m", "open", 1, 1)
    adds = single("m", "home", 100, 300)
    assert isinstance(await book.reserve(partner, "b1", adds, {}, {"m": 1}, player_id="p1"), Reserved)
    assert await book.player_of(partner, ["b1", "nope"]) == {"b1": "p1"}
    assert await book.pending(partner, 2**62, 10) == ["b1"]
    assert await book.cancel(partner, "b1") is True and await book.cancel(partner, "b1") is False
    assert await book.snapshot(partner, "m") == {"stakes_minor": 0, "returns_minor:home": 0}
    assert isinstance(await book.reserve(partner, "b1", adds, {}, {"m": 1}), Reserved)  # afresh
    assert await book.release(partner, "b1") is True
    assert isinstance(await book.reserve(partner, "b1", adds, {}, {"m": 1}), AlreadyReserved)
    await book.confirmed(partner, ["b1"])
    assert await book.pending(partner, 2**62, 10) == []
    assert await book.sweep_lock(partner, "edge-a", 1_000) and await book.sweep_lock(partner, "edge-a", 1_000)
    assert not await book.sweep_lock(partner, "edge-b", 1_000)
