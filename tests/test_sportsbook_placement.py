"""Pure placement, market and result rules (gateway/sportsbook/markets.py, placement.py, resolve.py)."""

from __future__ import annotations

from fractions import Fraction

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sportsbook.bets import BetLimits
from gateway.sportsbook.markets import SportsbookRefused, market_from_body, replacement
from gateway.sportsbook.placement import plan
from gateway.sportsbook.resolve import ratio_of
from gateway.sportsbook.wire import BetBody, MarketBody


def market(prices: dict[str, str], *, version: int = 1, status: str = "open", limits: dict | None = None,
           market_id: str = "m") -> object:
    body = msgspec.convert({"event": "A v B", "status": status, "price_version": version, "currency": "GBP",
                            "selections": [{"selection_id": s, "odds": {"decimal": p}} for s, p in prices.items()],
                            "limits": limits or {}}, MarketBody)
    return market_from_body("demo", market_id, body, 100)


def bet(legs: list[tuple[str, str, str]], *, stake: int = 100, policy: str = "reject", bet_type: str = "single") -> BetBody:
    return msgspec.convert({"bet_id": "b", "player_id": "p", "currency": "GBP", "bet_type": bet_type,
                            "stake_minor": stake, "stake_convention": "per_line", "odds_change": policy,
                            "legs": [{"market_id": m, "selection_id": s, "odds": {"decimal": o}} for m, s, o in legs]},
                           BetBody)


def decide(body: BetBody, *markets):
    return plan(body, {m.market_id: m for m in markets}, limits=BetLimits(), payout_max_minor=10**12, rounding="down")


def refused_code(fn) -> str:
    with pytest.raises(SportsbookRefused) as info:
        fn()
    return info.value.code


def test_replacement_rules():
    stored = market({"home": "2.50"}, version=2)
    assert replacement(None, stored) == "create"
    assert replacement(stored, market({"home": "2.50"}, version=2)) == "replay"
    assert replacement(stored, market({"home": "2.50"}, version=2, status="suspended")) == "update"
    assert replacement(stored, market({"home": "2.40"}, version=3)) == "update"
    assert refused_code(lambda: replacement(stored, market({"home": "2.40"}, version=1))) == "stale_price_version"
    assert refused_code(lambda: replacement(stored, market({"home": "2.40"}, version=2))) == "price_version_conflict"


@pytest.mark.parametrize(("policy", "requested", "current", "accepted"), [
    ("reject", "2.50", "2.50", True), ("reject", "2.40", "2.50", False), ("reject", "2.60", "2.50", False),
    ("accept_higher", "2.40", "2.50", True), ("accept_higher", "2.60", "2.50", False),
    ("accept_any", "2.60", "2.50", True),
])
def test_odds_change_policy(policy, requested, current, accepted):
    m = market({"home": current})
    body = bet([("m", "home", requested)], policy=policy)
    if accepted:
        assert decide(body, m).accepted[0].decimal == Fraction(current)
    else:
        assert refused_code(lambda: decide(body, m)) == "odds_changed"


def test_stake_limit_and_payout_cap():
    m = market({"home": "3.00"}, limits={"bet_stake_max_minor": 500, "bet_payout_max_minor": 1_000})
    assert refused_code(lambda: decide(bet([("m", "home", "3.00")], stake=501), m)) == "stake_limit"
    assert decide(bet([("m", "home", "3.00")], stake=500), m).potential_return_minor == 1_000  # capped, not refused


def test_market_state_and_shape_refusals():
    assert refused_code(lambda: decide(bet([("m", "home", "2.00")]), market({"home": "2.00"}, status="suspended"))) == \
        "market_suspended"
    assert refused_code(lambda: decide(bet([("m", "home", "2.00")]), market({"home": "2.00"}, status="closed"))) == \
        "market_closed"
    assert refused_code(lambda: decide(bet([("x", "home", "2.00")]), market({"home": "2.00"}))) == "unknown_market"
    assert refused_code(lambda: decide(bet([("m", "away", "2.00")]), market({"home": "2.00"}))) == "unknown_selection"
    two = bet([("m", "home", "2.00"), ("m", "home", "2.00")], bet_type="accumulator")
    assert refused_code(lambda: decide(two, market({"home": "2.00"}))) == "duplicate_selection"


@pytest.mark.parametrize(("text", "value"), [("1/2", Fraction(1, 2)), ("0.25", Fraction(1, 4)), ("1", Fraction(1)),
                                             ("1.0", Fraction(1))])
def test_ratio_of(text, value):
    assert ratio_of(text, what="x") == value


@pytest.mark.parametrize("text", ["0", "3/2", "1/0", "-1", "1e-1", ".5", "0.5.1", "+1"])
def test_ratio_of_refuses(text):
    assert refused_code(lambda: ratio_of(text, what="x")) == "invalid_result"


@settings(max_examples=100, deadline=None, database=None)
@given(st.integers(1, 10**6), st.integers(101, 10**5))
def test_potential_return_is_stake_times_odds_rounded_down(stake, odds_times_100):
    odds_text = f"{odds_times_100 // 100}.{odds_times_100 % 100:02d}"
    p = decide(bet([("m", "home", odds_text)], stake=stake), market({"home": odds_text}))
    assert p.potential_return_minor == stake * odds_times_100 // 100
