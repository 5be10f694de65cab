"""From stored bets and market results to settlements. Pure: no I/O.

``check_results`` validates a ``POST /v1/sportsbook/results`` body before it is stored, so
a malformed result is a 4xx and never reaches the settlement driver. ``settle_stored``
rebuilds a stored bet's settlement model with each leg's outcome and settles it with the
pure module (gateway/sportsbook/settlement.py), or returns None while a leg is unresolved
(results may come in stages; a bet settles when all its legs are resolved,
docs/specs/sportsbook.md, "Settlement lifecycle").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

from gateway.sportsbook.bets import Bet, BetLimits, BetType, Leg, LegResult, SettlementError, StakeConvention
from gateway.sportsbook.markets import Market, SportsbookRefused, place_fraction_of
from gateway.sportsbook.odds import from_storage
from gateway.sportsbook.settlement import RoundingMode, Settlement, exact_return_minor, return_for_stake, settle
from gateway.sportsbook.store import StoredBet
from gateway.sportsbook.wire import LegResultBody

#: Settlement of stored bets never re-applies placement-time leg limits: a bet accepted
#: under one configuration settles under a later, stricter one.
_SETTLE_LIMITS = BetLimits(accumulator_legs_max=32, system_legs_max=20)


def ratio_of(text: str | None, *, what: str, zero_allowed: bool = False) -> Fraction:
    """An exact ratio in [0 or above 0, 1] from text "1/2", "0.25" or "1"; None is 1 (or 0
    for a deduction, see ``zero_allowed``). Raises SportsbookRefused ``invalid_result``."""
    if text is None:
        return Fraction(0) if zero_allowed else Fraction(1)
    num, sep, den = text.partition("/")
    try:
        if sep:
            if not (num.isdigit() and den.isdigit() and int(den) > 0):
                raise ValueError(text)
            value = Fraction(int(num), int(den))
        else:
            whole, dot, frac = text.partition(".")
            if not (whole.isdigit() and (not dot or frac.isdigit())):
                raise ValueError(text)
            value = Fraction(int(whole + frac), 10 ** len(frac))
    except ValueError:
        raise SportsbookRefused("invalid_result", f"{what} must be a fraction a/b or a decimal, not {text!r}") from None
    low_ok = value >= 0 if zero_allowed else value > 0
    if not (low_ok and value <= 1):
        raise SportsbookRefused("invalid_result", f"{what} must be within {'0' if zero_allowed else 'above 0'}..1")
    return value


def leg_with(leg: Leg, outcome: LegResultBody | None) -> Leg:
    """``leg`` with ``outcome`` applied (or unresolved). Raises SportsbookRefused ``invalid_result``."""
    if outcome is None:
        return leg
    deduction = ratio_of(outcome.rule4_deduction, what="rule4_deduction", zero_allowed=True)
    try:
        return Leg(market_id=leg.market_id, selection_id=leg.selection_id, odds=leg.odds,
                   result=LegResult(outcome.outcome),
                   dead_heat_factor=ratio_of(outcome.dead_heat_factor, what="dead_heat_factor"),
                   place_fraction=leg.place_fraction,
                   place_dead_heat_factor=ratio_of(outcome.place_dead_heat_factor, what="place_dead_heat_factor"),
                   rule4_deductions=(deduction,) if deduction else ())
    except SettlementError as e:
        raise SportsbookRefused("invalid_result", e.detail) from None


def check_results(market: Market, results: Sequence[LegResultBody]) -> None:
    """Refuse a result body that names an unknown or repeated selection or an impossible
    outcome (``unknown_selection``, ``duplicate_selection``, ``invalid_result``)."""
    seen: set[str] = set()
    probe_odds = Fraction(2)
    for item in results:
        if item.selection_id not in market.selections:
            raise SportsbookRefused("unknown_selection", f"market {market.market_id!r} has no selection {item.selection_id!r}",
                                    selection_id=item.selection_id)
        if item.selection_id in seen:
            raise SportsbookRefused("duplicate_selection", f"selection {item.selection_id!r} resulted twice")
        seen.add(item.selection_id)
        leg_with(Leg(market_id=market.market_id, selection_id=item.selection_id, odds=probe_odds,
                     place_fraction=None if market.each_way is None else market.each_way[0]), item)


def model_of(stored: StoredBet) -> Bet:
    """The settlement model of a stored bet, legs unresolved, at the accepted odds."""
    terms = stored.terms
    legs = tuple(Leg(market_id=leg.market_id, selection_id=leg.selection_id, odds=from_storage(leg.odds).decimal,
                     place_fraction=None if leg.place_fraction is None else place_fraction_of(leg.place_fraction))
                 for leg in stored.legs)
    return Bet(bet_type=BetType(terms.bet_type), legs=legs, stake_minor=terms.stake_minor, currency=terms.currency,
               stake_convention=StakeConvention(terms.stake_convention), each_way=terms.each_way,
               system_sizes=terms.system, limits=_SETTLE_LIMITS)


def with_outcomes(bet: Bet, outcomes: Mapping[tuple[str, str], LegResultBody]) -> Bet:
    """``bet`` with every leg's outcome from ``outcomes`` ((market id, selection id) -> outcome)."""
    legs = tuple(leg_with(leg, outcomes.get(leg.selection)) for leg in bet.legs)
    return Bet(bet_type=bet.bet_type, legs=legs, stake_minor=bet.stake_minor, currency=bet.currency,
               stake_convention=bet.stake_convention, each_way=bet.each_way, system_sizes=bet.system_sizes,
               limits=bet.limits)


def settle_stored(stored: StoredBet, outcomes: Mapping[tuple[str, str], LegResultBody], *,
                  rounding: RoundingMode, payout_max_minor: int) -> Settlement | None:
    """The settlement of a stored bet once all its legs have outcomes, else None.

    The return is capped at ``min(payout_max_minor, the potential return stored at
    placement)``: the stored potential return already carries the caps that applied then.
    """
    bet = with_outcomes(model_of(stored), outcomes)
    if any(leg.result is None for leg in bet.legs):
        return None
    return settle(bet, rounding=rounding, max_payout_minor=min(payout_max_minor, max(stored.potential_return_minor, 1)))


class SettlementMemo:
    """``settle_stored``'s return, computed once per bet *shape*: a market's bets mostly
    differ only in stake and player (100,000 singles on a football match have three shapes),
    and the exact return is linear in the stake (``settlement.return_for_stake``). The key
    is everything else the return depends on: type, convention, each-way, system sizes, the
    legs as accepted and each leg's outcome. Holds at most ``size_max`` shapes (cleared
    when full); one memo serves one settlement page, so a correction is never answered from
    an earlier result's entry."""

    def __init__(self, size_max: int = 10_000) -> None:
        assert size_max >= 1
        self.size_max = size_max
        self._per_stake: dict[tuple, Fraction | None] = {}

    def return_minor(self, stored: StoredBet, outcomes: Mapping[tuple[str, str], LegResultBody], *,
                     rounding: RoundingMode, payout_max_minor: int) -> int | None:
        """What ``settle_stored(...).return_minor`` gives, or None while a leg is unresolved."""
        terms = stored.terms
        found = [outcomes.get((leg.market_id, leg.selection_id)) for leg in stored.legs]
        key = (terms.bet_type, terms.stake_convention, terms.each_way, terms.system, stored.legs, stored.lines,
               tuple(None if o is None else (o.outcome, o.dead_heat_factor, o.place_dead_heat_factor, o.rule4_deduction)
                     for o in found))
        if key in self._per_stake:
            per_stake = self._per_stake[key]
        else:
            if len(self._per_stake) >= self.size_max:
                self._per_stake.clear()
            bet = with_outcomes(model_of(stored), outcomes)
            per_stake = None if any(leg.result is None for leg in bet.legs) else exact_return_minor(bet) / terms.stake_minor
            self._per_stake[key] = per_stake
        if per_stake is None:
            return None
        return return_for_stake(per_stake, terms.stake_minor, rounding=rounding,
                                max_payout_minor=min(payout_max_minor, max(stored.potential_return_minor, 1)))
