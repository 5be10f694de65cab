"""Sportsbook liability accounting (gateway/sportsbook/liability.py): pure, no Redis.

Unit tests pin the contributions of singles and multiples, the limits and the stake factor.
Hypothesis compares ``max_stake_minor`` (closed-form Fraction bounds) with a brute-force
reference model written here from the rule in the module docstring: every outlay s is
tried, the bet's return at s is floor(q x s), and the counters after adding are checked
against every limit directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.money import AMOUNT_MINOR_CEILING
from gateway.sportsbook import liability
from gateway.sportsbook.bets import Bet, BetType, Leg, StakeConvention, staking
from gateway.sportsbook.liability import (
    CONTRIBUTIONS_MAX,
    Contribution,
    LiabilityError,
    Limits,
    MarketCounters,
    by_market,
    check_bet_limits,
    contributions,
    market_exposure_minor,
    max_outlay,
    max_stake_minor,
    return_ratio,
)
from gateway.sportsbook.settlement import potential_return
from gateway.sportsbook.wire import MarketLimits

F = Fraction
PER_LINE, TOTAL = StakeConvention.PER_LINE, StakeConvention.TOTAL
PROPERTY = settings(max_examples=300, deadline=None, database=None)
FIVE_TWO = F(5, 2)  # decimal odds 2.5


def leg(i: int, price: Fraction = FIVE_TWO, market: str | None = None, **kw) -> Leg:
    return Leg(market_id=market or f"m{i}", selection_id=f"s{i}", odds=price, **kw)


def single(stake: int, price: Fraction = FIVE_TWO, **kw) -> Bet:
    return Bet(bet_type=BetType.SINGLE, legs=(leg(0, price, place_fraction=kw.pop("place_fraction", None)),),
               stake_minor=stake, currency="EUR", stake_convention=kw.pop("convention", PER_LINE), **kw)


def empty(*markets: str) -> dict[str, MarketCounters]:
    return {m: MarketCounters(m, 0, {}, 0) for m in markets}


# ---- contributions ----------------------------------------------------------------------


def test_single_credits_its_outlay_to_its_market():
    bet = single(100)
    assert contributions(bet, 250) == [Contribution("m0", "s0", 250, 100)]


def test_each_way_single_credits_both_parts():
    bet = single(100, place_fraction=F(1, 4), each_way=True)
    assert staking(bet).outlay_minor == 200
    assert contributions(bet, 412) == [Contribution("m0", "s0", 412, 200)]


@pytest.mark.parametrize(("bet_type", "legs", "sizes"), [
    (BetType.ACCUMULATOR, 3, ()),
    (BetType.YANKEE, 4, ()),
    (BetType.SYSTEM, 3, (2,)),
])
def test_multiple_adds_full_return_to_every_leg_and_credits_no_stake(bet_type, legs, sizes):
    bet = Bet(bet_type=bet_type, legs=tuple(leg(i) for i in range(legs)), stake_minor=100, currency="EUR",
              stake_convention=PER_LINE, system_sizes=sizes)
    got = contributions(bet, 5_000)
    assert got == [Contribution(f"m{i}", f"s{i}", 5_000, 0) for i in range(legs)]


def test_each_way_multiple_credits_no_stake():
    bet = Bet(bet_type=BetType.ACCUMULATOR, legs=(leg(0, place_fraction=F(1, 4)), leg(1, place_fraction=F(1, 5))),
              stake_minor=100, currency="EUR", stake_convention=PER_LINE, each_way=True)
    assert [c.stake_credit_minor for c in contributions(bet, 900)] == [0, 0]


@pytest.mark.parametrize("amount", [-1, AMOUNT_MINOR_CEILING + 1, 1.5, True, "10"])
def test_contributions_refuse_a_bad_potential_return(amount):
    with pytest.raises(LiabilityError) as e:
        contributions(single(100), amount)
    assert e.value.code == "invalid_contribution"


@pytest.mark.parametrize("kw", [
    {"market_id": ""}, {"selection_id": "x" * 129}, {"potential_return_minor": -1},
    {"stake_credit_minor": AMOUNT_MINOR_CEILING + 1}, {"stake_credit_minor": False},
])
def test_contribution_validates(kw):
    fields = {"market_id": "m", "selection_id": "s", "potential_return_minor": 1, "stake_credit_minor": 0, **kw}
    with pytest.raises(LiabilityError) as e:
        Contribution(**fields)
    assert e.value.code == "invalid_contribution"


def test_by_market_sums_in_order_and_is_bounded():
    items = [Contribution("b", "x", 5, 0), Contribution("a", "y", 7, 3), Contribution("b", "z", 1, 2)]
    deltas = by_market(items)
    assert [(d.market_id, d.stake_minor, d.returns_minor) for d in deltas] == [("b", 2, {"x": 5, "z": 1}), ("a", 3, {"y": 7})]
    for bad in ([], [Contribution("m", f"s{i}", 1, 0) for i in range(CONTRIBUTIONS_MAX + 1)]):
        with pytest.raises(LiabilityError):
            by_market(bad)
    with pytest.raises(LiabilityError):  # a sum above the exact-integer bound
        by_market([Contribution("m", "s", AMOUNT_MINOR_CEILING, 0), Contribution("m", "s", 1, 0)])


# ---- limits, stake factor, per-bet checks -----------------------------------------------


@pytest.mark.parametrize("kw", [
    {"market_liability_max_minor": -1}, {"bet_stake_max_minor": 1.0}, {"bet_payout_max_minor": True},
    {"selection_liability_max_minor": AMOUNT_MINOR_CEILING + 1}, {"stake_factor": F(0)}, {"stake_factor": F(3, 2)},
    {"stake_factor": 1}, {"stake_factor": F(1, 10**7)},
])
def test_limits_validate(kw):
    with pytest.raises(LiabilityError) as e:
        Limits(**kw)
    assert e.value.code == "invalid_limits"


def test_stake_factor_scales_the_per_bet_limits_only_rounding_down():
    limits = Limits(market_liability_max_minor=900, selection_liability_max_minor=800, bet_stake_max_minor=1001,
                    bet_payout_max_minor=5001, stake_factor=F(1, 2))
    assert (limits.stake_max_minor, limits.payout_max_minor) == (500, 2500)
    assert (limits.market_liability_max_minor, limits.selection_liability_max_minor) == (900, 800)
    assert Limits().stake_max_minor is None and Limits().payout_max_minor is None


def test_limits_of_a_stored_market():
    stored = MarketLimits(market_liability_max_minor=10, bet_stake_max_minor=30)
    assert Limits.of(stored, F(1, 3)) == Limits(market_liability_max_minor=10, bet_stake_max_minor=30, stake_factor=F(1, 3))


def test_check_bet_limits_codes_and_factor():
    full = Limits(bet_stake_max_minor=1000, bet_payout_max_minor=10_000)
    half = Limits(bet_stake_max_minor=1000, bet_payout_max_minor=10_000, stake_factor=F(1, 2))
    assert check_bet_limits(1000, 10_000, [full]) is None
    assert check_bet_limits(1001, 10_000, [full]) == "stake_limit"
    assert check_bet_limits(1000, 10_001, [full]) == "payout_limit"
    assert check_bet_limits(500, 5_000, [half]) is None
    assert check_bet_limits(501, 5_000, [half]) == "stake_limit"
    assert check_bet_limits(500, 5_001, [half]) == "payout_limit"
    assert check_bet_limits(2000, 20_001, [full, Limits()]) == "stake_limit"  # stake first; every market counts
    assert check_bet_limits(501, 1, [Limits(), half]) == "stake_limit"


def test_market_exposure_is_the_worst_outcome_never_below_zero():
    assert market_exposure_minor(100, [250, 40]) == 150
    assert market_exposure_minor(300, [250, 40]) == 0
    assert market_exposure_minor(5, []) == 0


# ---- return ratio -----------------------------------------------------------------------


def test_return_ratio_does_not_depend_on_stake_or_convention():
    yankee = [leg(i, F(2 + i)) for i in range(4)]
    per_line = Bet(bet_type=BetType.YANKEE, legs=tuple(yankee), stake_minor=10, currency="EUR", stake_convention=PER_LINE)
    total = Bet(bet_type=BetType.YANKEE, legs=tuple(yankee), stake_minor=1234, currency="EUR", stake_convention=TOTAL)
    assert return_ratio(per_line) == return_ratio(total)
    assert return_ratio(single(7)) == F(5, 2)


@PROPERTY
@given(st.integers(1, 10**9), st.integers(2, 400).flatmap(lambda d: st.integers(d + 1, 4 * d).map(lambda n: F(n, d))))
def test_floor_of_ratio_times_outlay_is_the_rounded_down_potential_return(stake, price):
    bet = single(stake, price)
    assert math.floor(return_ratio(bet) * stake) == potential_return(bet).return_minor


# ---- max_stake_minor: worked examples ---------------------------------------------------


def test_single_against_a_selection_limit():
    # floor(5/2 s) - s <= 1000  <=>  s <= 667 (return 1667, liability exactly 1000)
    items = contributions(single(100), 250)
    limits = {"m0": Limits(selection_liability_max_minor=1000)}
    assert max_stake_minor(items, empty("m0"), limits, F(5, 2)) == 667


def test_multiple_against_both_markets():
    bet = Bet(bet_type=BetType.ACCUMULATOR, legs=(leg(0), leg(1)), stake_minor=10, currency="EUR", stake_convention=PER_LINE)
    items = contributions(bet, potential_return(bet).return_minor)
    counters = {"m0": MarketCounters("m0", 500, {"s0": 200}, 0), "m1": MarketCounters("m1", 0, {}, 0)}
    limits = {"m0": Limits(market_liability_max_minor=2000), "m1": Limits(selection_liability_max_minor=1000)}
    # m0: 200 + floor(25/4 s) - 500 <= 2000 -> s <= 367; m1: floor(25/4 s) <= 1000 -> s <= 160
    assert max_stake_minor(items, counters, limits, return_ratio(bet)) == 160


def test_a_market_already_over_its_limit_takes_no_multiple():
    items = [Contribution("m", "a", 10, 0), Contribution("n", "b", 10, 0)]
    counters = {"m": MarketCounters("m", 0, {}, 1500), "n": MarketCounters("n", 0, {}, 0)}
    assert max_stake_minor(items, counters, {"m": Limits(market_liability_max_minor=1000), "n": Limits()}, F(3)) == 0


def test_a_single_can_lay_off_another_outcome():
    # Selection x already returns 1500 on a market with no stakes (limit 1000): a single on y
    # needs at least 500 of stake to bring x back under the limit, and at most 2001 for y.
    items = [Contribution("m", "y", 1, 1)]
    counters = {"m": MarketCounters("m", 0, {}, 1500)}
    assert max_stake_minor(items, counters, {"m": Limits(market_liability_max_minor=1000)}, F(3, 2)) == 2001
    capped = {"m": Limits(market_liability_max_minor=1000, bet_stake_max_minor=400)}
    assert max_stake_minor(items, counters, capped, F(3, 2)) == 0  # 500 needed, 400 allowed


def test_unlimited_is_the_ceiling_and_step_rounds_down():
    items = [Contribution("m", "y", 1, 1)]
    assert max_stake_minor(items, empty("m"), {"m": Limits()}, F(2)) == AMOUNT_MINOR_CEILING // 2  # ret <= 2^53 - 1
    stake_cap = {"m": Limits(bet_stake_max_minor=100, stake_factor=F(1, 2))}
    assert max_stake_minor(items, empty("m"), stake_cap, F(2), step=11) == 44


def test_max_stake_refuses_bad_input():
    items = [Contribution("m", "y", 1, 1)]
    with pytest.raises(LiabilityError):
        max_stake_minor(items, empty("m"), {"m": Limits()}, F(-1))
    with pytest.raises(LiabilityError):
        max_stake_minor(items, empty("m"), {"m": Limits()}, 2)  # type: ignore[arg-type]
    with pytest.raises(LiabilityError):
        max_stake_minor(items, {}, {"m": Limits()}, F(2))
    with pytest.raises(LiabilityError):
        max_stake_minor(items, empty("m"), {"m": Limits()}, F(2), step=0)


@dataclass(frozen=True)
class _Refusal:
    contributions: tuple[Contribution, ...]
    counters: dict[str, MarketCounters]
    limits_by_market: dict[str, Limits] = field(default_factory=dict)


def test_max_outlay_uses_the_bets_lines_as_step():
    bet = Bet(bet_type=BetType.YANKEE, legs=tuple(leg(i) for i in range(4)), stake_minor=10, currency="EUR",
              stake_convention=PER_LINE)
    potential = potential_return(bet).return_minor
    items = tuple(contributions(bet, potential))
    counters = {c.market_id: MarketCounters(c.market_id, 0, {}, 0) for c in items}
    limits = {m: Limits(selection_liability_max_minor=100_000) for m in counters}
    got = max_outlay(_Refusal(items, counters, limits), staking(bet), potential)
    assert got is not None and got % 11 == 0
    assert got == max_stake_minor(items, counters, limits, F(potential, staking(bet).outlay_minor), step=11)
    assert max_outlay(_Refusal(items, {}), staking(bet), potential) is None
    assert liability.max_outlay is max_outlay


# ---- max_stake_minor against a brute-force reference ------------------------------------


def ref_passes(s: int, items, counters, limits, q: Fraction) -> bool:
    """The rule, evaluated directly at outlay s (module docstring of liability.py)."""
    ret_at_s = math.floor(q * s)
    for m in {c.market_id for c in items}:
        mine = [c for c in items if c.market_id == m]
        credit = s if any(c.stake_credit_minor > 0 for c in mine) else 0
        now, lim = counters[m], limits[m]
        stakes = now.stakes_minor + credit
        rets = {c.selection_id: now.returns_minor.get(c.selection_id, 0) + ret_at_s for c in mine}
        if stakes > AMOUNT_MINOR_CEILING or any(r > AMOUNT_MINOR_CEILING for r in rets.values()):
            return False
        if lim.selection_liability_max_minor is not None and any(
                r - stakes > lim.selection_liability_max_minor for r in rets.values()):
            return False
        exposure = max(0, max([now.others_max_minor, *rets.values()]) - stakes)
        if lim.market_liability_max_minor is not None and exposure > lim.market_liability_max_minor:
            return False
        if lim.bet_stake_max_minor is not None and s > math.floor(lim.bet_stake_max_minor * lim.stake_factor):
            return False
        if lim.bet_payout_max_minor is not None and ret_at_s > math.floor(lim.bet_payout_max_minor * lim.stake_factor):
            return False
    return True


BRUTE_MAX = 150
amounts = st.integers(0, 600)
maybe_limit = st.one_of(st.none(), st.integers(0, 800))
factors = st.sampled_from([F(1), F(1, 2), F(2, 3), F(1, 3)])
ratios = st.integers(1, 12).flatmap(lambda d: st.integers(0, 60).map(lambda n: F(n, d)))


@st.composite
def books(draw, *, stake_capped: bool):
    markets = ["m0", "m1"][: draw(st.integers(1, 2))]
    is_single = draw(st.booleans())
    if is_single:
        items = [Contribution(markets[0], "a", 1, 1)]
        markets = markets[:1]
    else:
        picks = draw(st.lists(st.tuples(st.sampled_from(markets), st.sampled_from(["a", "b", "c"])),
                              min_size=2, max_size=4, unique=True))
        items = [Contribution(m, s, 1, 0) for m, s in picks]
        markets = sorted({m for m, _ in picks})
    counters, limits = {}, {}
    for i, m in enumerate(markets):
        selections = sorted({c.selection_id for c in items if c.market_id == m})
        returns = {s: draw(amounts) for s in selections if draw(st.booleans())}
        counters[m] = MarketCounters(m, draw(st.integers(0, 300)), returns, draw(amounts))
        stake_max = draw(st.integers(1, BRUTE_MAX)) if stake_capped and i == 0 else draw(maybe_limit)
        limits[m] = Limits(market_liability_max_minor=draw(maybe_limit), selection_liability_max_minor=draw(maybe_limit),
                           bet_stake_max_minor=stake_max, bet_payout_max_minor=draw(maybe_limit),
                           stake_factor=draw(factors))
    return items, counters, limits


@PROPERTY
@given(books(stake_capped=True), ratios, st.sampled_from([1, 1, 2, 3, 11]))
def test_max_stake_equals_brute_force(book, q, step):
    items, counters, limits = book
    expected = max((s for s in range(step, BRUTE_MAX + 1, step) if ref_passes(s, items, counters, limits, q)), default=0)
    assert max_stake_minor(items, counters, limits, q, step=step) == expected


@PROPERTY
@given(books(stake_capped=False), ratios)
def test_max_stake_passes_and_one_more_fails(book, q):
    items, counters, limits = book
    best = max_stake_minor(items, counters, limits, q)
    if best == 0:  # nothing passes: check a window of small stakes
        assert not any(ref_passes(s, items, counters, limits, q) for s in range(1, BRUTE_MAX + 1))
        return
    assert ref_passes(best, items, counters, limits, q)
    # one more (and the next few) fail, or the stake is already the largest amount there is
    assert not any(ref_passes(s, items, counters, limits, q) for s in range(best + 1, min(best + 60, AMOUNT_MINOR_CEILING + 1)))
