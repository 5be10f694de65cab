"""The exposure book (gateway/sportsbook/exposure.py) with the pure liability rules, against a
real Redis (``GATEWAY_TEST_REDIS_URL``, default redis://127.0.0.1:6379/15; never a mock).

What tests/test_sportsbook_exposure_book.py does not cover: a refusal's counters give, through
``liability.max_outlay`` / ``max_stake_minor``, exactly the largest stake the Lua script then
accepts (one minor unit more is refused); release restores the counters exactly; multiples
add their full return to every leg's market and no stake. Every test uses its own partner id
(a uuid) and deletes that partner's keys afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from fractions import Fraction

import pytest

from gateway.edge.redis_client import redis_client
from gateway.sportsbook.bets import Bet, BetType, Leg, StakeConvention, staking
from gateway.sportsbook.exposure import AlreadyReserved, ExposureBook, ExposureUnavailable, Refused, Reserved
from gateway.sportsbook.liability import Limits, contributions, max_outlay, max_stake_minor, return_ratio
from gateway.sportsbook.settlement import potential_return

REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
F = Fraction


@pytest.fixture
async def book():
    client = redis_client(REDIS_URL, 1000)
    partners: list[str] = []
    exposure = ExposureBook(client)
    exposure.partners = partners  # type: ignore[attr-defined]  # the test's partners, cleaned up below
    yield exposure
    for partner in partners:
        keys = [k async for k in client.scan_iter(match=f"sb:{{{partner}}}:*", count=500)]
        if keys:
            await client.delete(*keys)
    await client.aclose()


async def new_partner(book: ExposureBook, *markets: str) -> str:
    partner = f"t{uuid.uuid4().hex[:20]}"
    book.partners.append(partner)  # type: ignore[attr-defined]
    for market in markets:
        await book.mirror_market(partner, market, "open", 1, 1)
    return partner


def single(stake: int, odds: Fraction, market: str = "m", selection: str = "home") -> Bet:
    return Bet(bet_type=BetType.SINGLE, legs=(Leg(market_id=market, selection_id=selection, odds=odds),),
               stake_minor=stake, currency="EUR", stake_convention=StakeConvention.PER_LINE)


def double(stake: int) -> Bet:
    legs = (Leg(market_id="m", selection_id="home", odds=F(2)), Leg(market_id="n", selection_id="away", odds=F(3)))
    return Bet(bet_type=BetType.ACCUMULATOR, legs=legs, stake_minor=stake, currency="EUR",
               stake_convention=StakeConvention.PER_LINE)


async def place(book: ExposureBook, partner: str, bet_id: str, bet: Bet, limits: dict[str, Limits]):
    adds = contributions(bet, potential_return(bet).return_minor)
    return await book.reserve(partner, bet_id, adds, limits, {m: 1 for m in limits})


def nonzero(snapshot: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in snapshot.items() if v}


async def test_refusal_gives_the_exact_largest_stake(book):
    partner = await new_partner(book, "m")
    limits = {"m": Limits(selection_liability_max_minor=10_000)}
    assert isinstance(await place(book, partner, "first", single(1_000, F(5, 2)), limits), Reserved)  # liability 1500
    big = single(50_000, F(5, 2))
    refused = await place(book, partner, "big", big, limits)
    assert isinstance(refused, Refused) and refused.code == "selection_liability_limit"
    assert (refused.market_id, refused.selection_id) == ("m", "home")
    # floor(5/2 s) - s <= 10000 - 1500  <=>  s <= 5667
    best = max_stake_minor(refused.contributions, refused.counters, refused.limits_by_market, return_ratio(big))
    assert best == 5_667
    assert max_outlay(refused, staking(big), potential_return(big).return_minor) == 5_667  # even stake: same ratio
    assert isinstance(await place(book, partner, "one-more", single(best + 1, F(5, 2)), limits), Refused)
    assert isinstance(await place(book, partner, "exact", single(best, F(5, 2)), limits), Reserved)
    snap = await book.snapshot(partner, "m")
    assert snap["returns_minor:home"] - snap["stakes_minor"] == 10_000


async def test_market_limit_refusal_on_a_multiple(book):
    partner = await new_partner(book, "m", "n")
    limits = {"m": Limits(market_liability_max_minor=3_000), "n": Limits()}
    bet = double(1_000)  # returns 6000 on both legs, no stake credited
    refused = await place(book, partner, "d1", bet, limits)
    assert isinstance(refused, Refused) and refused.code == "market_liability_limit" and refused.market_id == "m"
    best = max_stake_minor(refused.contributions, refused.counters, refused.limits_by_market, return_ratio(bet))
    assert best == 500  # floor(6 s) <= 3000
    assert isinstance(await place(book, partner, "d2", double(best + 1), limits), Refused)
    assert isinstance(await place(book, partner, "d3", double(best), limits), Reserved)
    assert nonzero(await book.snapshot(partner, "m")) == {"returns_minor:home": 3_000}
    assert nonzero(await book.snapshot(partner, "n")) == {"returns_minor:away": 3_000}


async def test_single_stakes_offset_the_other_outcomes(book):
    partner = await new_partner(book, "m")
    limits = {"m": Limits(market_liability_max_minor=1_000)}
    assert isinstance(await place(book, partner, "a", single(500, F(3), selection="home"), limits), Reserved)
    # home: 1500 - 500 = 1000 (at the limit); a bet on away adds its stake to the market
    assert isinstance(await place(book, partner, "b", single(400, F(2), selection="away"), limits), Reserved)
    snap = await book.snapshot(partner, "m")
    assert snap == {"stakes_minor": 900, "returns_minor:away": 800, "returns_minor:home": 1_500}


async def test_idempotent_reserve_and_release_restores_counters_exactly(book):
    partner = await new_partner(book, "m", "n")
    limits = {"m": Limits(), "n": Limits()}
    await place(book, partner, "keep", single(300, F(7, 4)), limits)
    before = {m: nonzero(await book.snapshot(partner, m)) for m in limits}
    assert isinstance(await place(book, partner, "x", double(250), limits), Reserved)
    assert isinstance(await place(book, partner, "x", double(250), limits), AlreadyReserved)
    assert await book.release(partner, "x") is True
    assert await book.release(partner, "x") is False
    assert {m: nonzero(await book.snapshot(partner, m)) for m in limits} == before


async def test_concurrent_mixed_bets_stay_within_every_limit(book):
    partner = await new_partner(book, "m", "n")
    limits = {"m": Limits(selection_liability_max_minor=20_000, market_liability_max_minor=25_000),
              "n": Limits(market_liability_max_minor=30_000)}
    bets = [single(700, F(4), selection=f"s{i % 3}") if i % 2 else double(400) for i in range(60)]
    results = await asyncio.gather(*(place(book, partner, f"b{i}", bet, limits) for i, bet in enumerate(bets)))
    accepted = [bet for bet, r in zip(bets, results) if isinstance(r, Reserved)]
    assert accepted and len(accepted) < len(bets)
    for market, limit in limits.items():
        snap = await book.snapshot(partner, market)
        returns = {k[len("returns_minor:"):]: v for k, v in snap.items() if k.startswith("returns_minor:")}
        stakes = snap["stakes_minor"]
        assert limit.market_liability_max_minor is not None
        assert max(returns.values()) - stakes <= limit.market_liability_max_minor
        if limit.selection_liability_max_minor is not None:
            assert all(r - stakes <= limit.selection_liability_max_minor for r in returns.values())
        # the counters are exactly the sum of the accepted bets
        adds = [c for bet in accepted for c in contributions(bet, potential_return(bet).return_minor) if c.market_id == market]
        assert stakes == sum(c.stake_credit_minor for c in adds)
        assert sum(returns.values()) == sum(c.potential_return_minor for c in adds)


async def test_redis_down_raises_exposure_unavailable():
    client = redis_client("redis://127.0.0.1:1/0", 200)
    down = ExposureBook(client)
    try:
        with pytest.raises(ExposureUnavailable):
            await place(down, "p", "b", single(100, F(2)), {"m": Limits()})
        with pytest.raises(ExposureUnavailable):
            await down.release("p", "b")
        with pytest.raises(ExposureUnavailable):
            await down.snapshot("p", "m")
    finally:
        await client.aclose()
