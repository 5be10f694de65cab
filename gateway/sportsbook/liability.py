"""Liability (exposure) accounting of sportsbook bets: what a bet adds, and the largest stake
that fits the limits. Pure: no I/O, no clock, no floats (ints of minor units, ``Fraction``).

The rule (docs/specs/sportsbook.md, "Risk and exposure"; the conventions marked * are ours,
chosen to be conservative):

- The liability of an outcome (a selection) is the sum of the potential returns of the bets
  that pay if it wins, minus the stakes taken on its market. A market's exposure is its worst
  outcome: the largest liability over its selections, never below 0 for limit checks.
- A single credits its whole outlay (both parts, each-way) to its market's stakes and adds
  its potential return to its selection.
- * A multiple (accumulator, system, named full cover, each-way or not) adds its FULL
  potential return to EVERY leg's selection and credits NO stake to any market: its one
  stake cannot be counted in several markets at once, and any leg may be the one that
  completes it.
- The potential return is the capped, rounded figure of ``settlement.potential_return``
  (every unresolved leg won): the most the bet can still pay.

Limits (``Limits``, per market, minor units of the market's currency, None: unlimited):
``selection_liability_max_minor`` bounds every selection's liability,
``market_liability_max_minor`` the market's exposure, ``bet_stake_max_minor`` one bet's
outlay and ``bet_payout_max_minor`` one bet's potential return. * The per-player
``stake_factor`` (a Fraction in (0, 1]) scales the two per-bet limits only, rounded down
(factor 1/2: a stake limit of 1001 becomes 500); liability limits are the book's, shared by
all players, and are never scaled.

Bounds: a bet adds at most ``CONTRIBUTIONS_MAX`` contributions (the bets' leg ceiling, 32);
every amount and counter is at most ``money.AMOUNT_MINOR_CEILING`` (2^53 - 1), so the Redis
script (gateway/sportsbook/exposure.py), whose numbers are doubles, computes exactly.

Errors: ``LiabilityError`` with code ``invalid_contribution``, ``invalid_limits`` or
``invalid_ratio``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, Protocol

from gateway.money import AMOUNT_MINOR_CEILING
from gateway.sportsbook.bets import ACCUMULATOR_LEGS_CEILING, RATIO_DENOMINATOR_MAX, Bet, BetType, Staking, staking
from gateway.sportsbook.settlement import exact_return_minor

#: Most contributions one bet (one reservation) may carry: the largest number of legs.
CONTRIBUTIONS_MAX = ACCUMULATOR_LEGS_CEILING
_ID_CHARS_MAX = 128

BetLimitCode = Literal["stake_limit", "payout_limit"]


_FACTOR_TEXT = re.compile(r"^(?:[0-9]{1,12}(?:\.[0-9]{1,12})?|[0-9]{1,12}/[0-9]{1,12})\Z")


def stake_factor_of(text: object) -> Fraction:
    """A stake factor from its text: ``"1/2"``, ``"0.25"`` or ``"1"``, exactly, in (0, 1],
    denominator at most 10^6 (``Limits.stake_factor``). Raises LiabilityError
    ``invalid_ratio`` (a float, an exponent, 0, above 1, a zero denominator)."""
    if type(text) is not str or not _FACTOR_TEXT.match(text):
        raise LiabilityError("invalid_ratio", "a stake factor is text: a fraction a/b or a decimal, in (0, 1]")
    num, _, den = text.partition("/")
    if den and int(den) == 0:
        raise LiabilityError("invalid_ratio", "a zero denominator")
    value = Fraction(int(num), int(den)) if den else Fraction(text)
    if not 0 < value <= 1 or value.denominator > RATIO_DENOMINATOR_MAX:
        raise LiabilityError("invalid_ratio", f"a stake factor is in (0, 1] with a denominator <= {RATIO_DENOMINATOR_MAX}")
    return value


class LiabilityError(ValueError):
    """Input the liability accounting refuses; ``code``: ``invalid_contribution``,
    ``invalid_limits`` or ``invalid_ratio``."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _check_amount(value: object, what: str, code: str) -> None:
    if type(value) is not int or not 0 <= value <= AMOUNT_MINOR_CEILING:
        raise LiabilityError(code, f"{what} must be an integer from 0 to {AMOUNT_MINOR_CEILING}")


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one bet adds on one selection: ``potential_return_minor`` to the selection's
    returns, ``stake_credit_minor`` to its market's stakes (the outlay for a single, 0 for a
    leg of a multiple). Ids: non-empty, at most 128 characters; amounts: ints 0..2^53-1.
    Raises LiabilityError ``invalid_contribution``."""

    market_id: str
    selection_id: str
    potential_return_minor: int
    stake_credit_minor: int

    def __post_init__(self) -> None:
        for what, value in (("market_id", self.market_id), ("selection_id", self.selection_id)):
            if not isinstance(value, str) or not 0 < len(value) <= _ID_CHARS_MAX:
                raise LiabilityError("invalid_contribution", f"{what} must be 1 to {_ID_CHARS_MAX} characters")
        _check_amount(self.potential_return_minor, "potential_return_minor", "invalid_contribution")
        _check_amount(self.stake_credit_minor, "stake_credit_minor", "invalid_contribution")


def contributions(bet: Bet, potential_return_minor: int) -> list[Contribution]:
    """The contributions ``bet`` adds (module docstring), one per leg, in leg order.

    ``potential_return_minor``: the bet's potential return (``potential_return(bet).return_minor``).
    A single: [(market, selection, return, outlay)]; a multiple: every leg (market,
    selection, return, 0). Raises LiabilityError ``invalid_contribution``.
    """
    _check_amount(potential_return_minor, "potential_return_minor", "invalid_contribution")
    if bet.bet_type is BetType.SINGLE:
        (leg,) = bet.legs
        return [Contribution(leg.market_id, leg.selection_id, potential_return_minor, staking(bet).outlay_minor)]
    return [Contribution(leg.market_id, leg.selection_id, potential_return_minor, 0) for leg in bet.legs]


@dataclass(frozen=True, slots=True)
class MarketDelta:
    """The contributions of one bet on one market, summed: ``stake_minor`` to its stakes,
    ``returns_minor`` (selection id -> amount) to its selections' returns."""

    market_id: str
    stake_minor: int
    returns_minor: dict[str, int]


def by_market(items: Sequence[Contribution]) -> list[MarketDelta]:
    """``items`` summed per market and selection, markets and selections in order of first
    appearance. 1..CONTRIBUTIONS_MAX items; sums stay at most 2^53 - 1. Raises
    LiabilityError ``invalid_contribution``."""
    if not 0 < len(items) <= CONTRIBUTIONS_MAX or not all(isinstance(c, Contribution) for c in items):
        raise LiabilityError("invalid_contribution", f"a bet adds 1 to {CONTRIBUTIONS_MAX} contributions")
    deltas: dict[str, MarketDelta] = {}
    for c in items:
        d = deltas.setdefault(c.market_id, MarketDelta(c.market_id, 0, {}))
        stake = d.stake_minor + c.stake_credit_minor
        returned = d.returns_minor.get(c.selection_id, 0) + c.potential_return_minor
        _check_amount(stake, "a market's stake credit", "invalid_contribution")
        _check_amount(returned, "a selection's return", "invalid_contribution")
        deltas[c.market_id] = MarketDelta(c.market_id, stake, {**d.returns_minor, c.selection_id: returned})
    return list(deltas.values())


class _MarketLimitsLike(Protocol):
    @property
    def market_liability_max_minor(self) -> int | None: ...
    @property
    def selection_liability_max_minor(self) -> int | None: ...
    @property
    def bet_stake_max_minor(self) -> int | None: ...
    @property
    def bet_payout_max_minor(self) -> int | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """A market's limits for one player (module docstring): four amounts in minor units
    (int 0..2^53-1, None: unlimited) and ``stake_factor``, a Fraction in (0, 1] with a
    denominator of at most 10^6 that scales the per-bet limits. Raises LiabilityError
    ``invalid_limits``."""

    market_liability_max_minor: int | None = None
    selection_liability_max_minor: int | None = None
    bet_stake_max_minor: int | None = None
    bet_payout_max_minor: int | None = None
    stake_factor: Fraction = field(default=Fraction(1))

    def __post_init__(self) -> None:
        for what in ("market_liability_max_minor", "selection_liability_max_minor", "bet_stake_max_minor",
                     "bet_payout_max_minor"):
            value = getattr(self, what)
            if value is not None:
                _check_amount(value, what, "invalid_limits")
        f = self.stake_factor
        if type(f) is not Fraction or not 0 < f <= 1 or f.denominator > RATIO_DENOMINATOR_MAX:
            raise LiabilityError("invalid_limits", "stake_factor must be a Fraction in (0, 1] with a denominator <= 10^6")

    @classmethod
    def of(cls, market_limits: _MarketLimitsLike, stake_factor: Fraction = Fraction(1)) -> Limits:
        """The limits of a market as stored (``wire.MarketLimits``), for a player's factor."""
        return cls(market_liability_max_minor=market_limits.market_liability_max_minor,
                   selection_liability_max_minor=market_limits.selection_liability_max_minor,
                   bet_stake_max_minor=market_limits.bet_stake_max_minor,
                   bet_payout_max_minor=market_limits.bet_payout_max_minor, stake_factor=stake_factor)

    @property
    def stake_max_minor(self) -> int | None:
        """The player's largest outlay: floor(bet_stake_max_minor x stake_factor), None: unlimited."""
        return None if self.bet_stake_max_minor is None else math.floor(self.bet_stake_max_minor * self.stake_factor)

    @property
    def payout_max_minor(self) -> int | None:
        """The player's largest potential return: floor(bet_payout_max_minor x stake_factor)."""
        return None if self.bet_payout_max_minor is None else math.floor(self.bet_payout_max_minor * self.stake_factor)


def check_bet_limits(outlay_minor: int, potential_return_minor: int, limits: Iterable[Limits]) -> BetLimitCode | None:
    """The per-bet limits of every market of the bet, with the player's factor: None if the
    bet passes, else the refusal code: ``stake_limit`` (outlay above some ``stake_max_minor``)
    or ``payout_limit`` (potential return above some ``payout_max_minor``), stake first."""
    chosen = list(limits)
    if any(m.stake_max_minor is not None and outlay_minor > m.stake_max_minor for m in chosen):
        return "stake_limit"
    if any(m.payout_max_minor is not None and potential_return_minor > m.payout_max_minor for m in chosen):
        return "payout_limit"
    return None


@dataclass(frozen=True, slots=True)
class MarketCounters:
    """A market's counters as the bet found them (minor units): ``stakes_minor``;
    ``returns_minor``, the returns of the bet's own selections on it (absent: 0);
    ``others_max_minor``, the largest return on any other selection of it (0: none)."""

    market_id: str
    stakes_minor: int
    returns_minor: Mapping[str, int]
    others_max_minor: int


def market_exposure_minor(stakes_minor: int, returns_minor: Iterable[int]) -> int:
    """A market's exposure: max over its selections of (returns - stakes), never below 0."""
    return max(0, max(returns_minor, default=0) - stakes_minor)


def return_ratio(bet: Bet) -> Fraction:
    """The exact return per unit of outlay if every unresolved leg wins, before rounding and
    cap: exact_return_minor(assume_won) / outlay. It does not depend on the stake, so
    floor(ratio x s) is the bet's potential return (rounded down, uncapped) at outlay s."""
    return exact_return_minor(bet, assume_won=True) / staking(bet).outlay_minor


def max_stake_minor(items: Sequence[Contribution], counters: Mapping[str, MarketCounters],
                    limits_by_market: Mapping[str, Limits], return_per_outlay: Fraction, *, step: int = 1) -> int:
    """The largest outlay s (minor units, a multiple of ``step``) that passes every limit of
    every market of the bet, or 0 if none does. Exact: Fraction bounds, no search, no floats.

    The bet's shape is ``items`` (its contributions: which selections, and whether it is a
    single crediting its outlay to its market); at outlay s it returns R(s) = floor(q x s),
    q = ``return_per_outlay`` (>= 0; ``return_ratio(bet)`` makes R exact for rounding down,
    potential_return / outlay matches the refused bet at its own stake). ``counters``: the
    current counters of each market (``MarketCounters``). s passes when, for each market
    with c = 1 for a single's market, else 0:

    - every bet selection t: ret_t + R(s) - (stakes + c x s) <= selection and market limits;
    - every other selection: others_max - (stakes + c x s) <= market limit;
    - s <= Limits.stake_max_minor, R(s) <= Limits.payout_max_minor (the player's factor);
    - every counter stays at most 2^53 - 1; 1 <= s <= 2^53 - 1.

    Each condition is floor(k x s) <= d for a Fraction k and an int d, which holds for s in
    an interval bounded above when k > 0 and below when k < 0: the answer is the top of the
    intersection. Raises LiabilityError ``invalid_ratio`` or ``invalid_contribution`` (a
    market without counters or limits).
    """
    if type(return_per_outlay) is not Fraction or return_per_outlay < 0:
        raise LiabilityError("invalid_ratio", "return_per_outlay must be a non-negative Fraction")
    if type(step) is not int or not 0 < step <= AMOUNT_MINOR_CEILING:
        raise LiabilityError("invalid_ratio", "step must be a positive integer")
    q = return_per_outlay
    lo, hi = 1, AMOUNT_MINOR_CEILING

    def at_most(k: Fraction, d: int) -> None:  # floor(k s) <= d  <=>  k s < d + 1
        nonlocal lo, hi
        if k > 0:
            hi = min(hi, math.ceil((d + 1) / k) - 1)
        elif k < 0:
            lo = max(lo, math.floor((d + 1) / k) + 1)
        elif d < 0:
            hi = 0

    for delta in by_market(items):
        current, limits = counters.get(delta.market_id), limits_by_market.get(delta.market_id)
        if current is None or limits is None:
            raise LiabilityError("invalid_contribution", f"no counters or limits for market {delta.market_id!r}")
        c = Fraction(1 if delta.stake_minor > 0 else 0)
        stakes = current.stakes_minor
        at_most(c, AMOUNT_MINOR_CEILING - stakes)
        for selection in delta.returns_minor:
            ret = current.returns_minor.get(selection, 0)
            at_most(q, AMOUNT_MINOR_CEILING - ret)
            for limit in (limits.selection_liability_max_minor, limits.market_liability_max_minor):
                if limit is not None:
                    at_most(q - c, limit - (ret - stakes))
        if limits.market_liability_max_minor is not None:
            at_most(-c, limits.market_liability_max_minor - (current.others_max_minor - stakes))
        if limits.stake_max_minor is not None:
            at_most(Fraction(1), limits.stake_max_minor)
        if limits.payout_max_minor is not None:
            at_most(q, limits.payout_max_minor)
    hi -= hi % step
    return hi if hi >= lo else 0


class _RefusalLike(Protocol):
    @property
    def contributions(self) -> Sequence[Contribution]: ...
    @property
    def counters(self) -> Mapping[str, MarketCounters]: ...
    @property
    def limits_by_market(self) -> Mapping[str, Limits]: ...


def max_outlay(refused: _RefusalLike, stake: Staking, potential_return_minor: int) -> int | None:
    """``max_stake_minor`` for a refused reservation (``exposure.Refused``) of a bet with
    staking ``stake`` and potential return ``potential_return_minor``: q = potential return /
    outlay, step = the bet's lines x parts (so the answer can be staked in either stake
    convention). None for a refusal without counters (market state, not a limit)."""
    if not refused.counters or stake.outlay_minor <= 0:
        return None
    ratio = Fraction(potential_return_minor, stake.outlay_minor)
    return max_stake_minor(refused.contributions, refused.counters, refused.limits_by_market, ratio, step=stake.bets)


__all__ = [
    "CONTRIBUTIONS_MAX",
    "BetLimitCode",
    "Contribution",
    "LiabilityError",
    "Limits",
    "MarketCounters",
    "MarketDelta",
    "by_market",
    "check_bet_limits",
    "contributions",
    "market_exposure_minor",
    "max_outlay",
    "max_stake_minor",
    "return_ratio",
]
