"""The bet model: legs, bet types and the full-cover catalogue, stake conventions, validation.

A ``Bet`` is checked whole when it is built (``Bet.__post_init__``): once one exists, the
settlement math (gateway/sportsbook/settlement.py) can trust it. Every refusal is a
``SettlementError`` with a stable ``code`` (listed on the class). The rules restated here
are in docs/SPORTSBOOK.md, "Settlement model".

Money is an ``int`` of minor units with its ISO currency (docs/DESIGN.md section 3); every
ratio (odds, dead-heat factors, place terms, Rule 4 deductions) is an exact ``Fraction``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType

from gateway.money import AMOUNT_MINOR_CEILING, AmountError, check_amount_minor, exponent
from gateway.sportsbook.odds import DECIMAL_ODDS_CEILING, DECIMAL_ODDS_MAX, OddsError, check_decimal_odds

#: Rule 4 deductions of one leg add up to at most 90p in the pound.
RULE4_MAX = Fraction(9, 10)
#: Most Rule 4 deductions one leg may carry.
RULE4_DEDUCTIONS_MAX = 16
#: Largest denominator of a dead-heat factor, place fraction or Rule 4 deduction.
RATIO_DENOMINATOR_MAX = 10**6
#: Hard ceilings for the configurable leg limits (``BetLimits``).
ACCUMULATOR_LEGS_CEILING = 32
SYSTEM_LEGS_CEILING = 20
_ID_CHARS_MAX = 128


class SettlementError(ValueError):
    """A bet, leg or settlement request that cannot be settled as given.

    ``code`` is the stable machine code: ``invalid_leg``, ``invalid_odds``,
    ``invalid_result``, ``invalid_rule4``, ``invalid_each_way``, ``invalid_bet_type``,
    ``too_few_legs``, ``too_many_legs``, ``leg_count_mismatch``, ``duplicate_selection``,
    ``invalid_system``, ``system_size_too_large``, ``invalid_stake``, ``unknown_currency``,
    ``invalid_limits`` (construction); ``legs_unresolved``, ``invalid_rounding``,
    ``invalid_payout_cap``, ``payout_too_large`` (settlement).
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class LegResult(str, enum.Enum):  # noqa: UP042 - str() of a StrEnum differs; results are matched by .value
    """How a leg settled (docs/SPORTSBOOK.md, "Leg factor"). ``None`` on a leg means unresolved."""

    WON = "won"
    LOST = "lost"
    VOID = "void"  # non-runner, cancelled or abandoned event, push
    HALF_WON = "half_won"  # Asian quarter line
    HALF_LOST = "half_lost"  # Asian quarter line
    DEAD_HEAT = "dead_heat"  # tied for a paid position; ``Leg.dead_heat_factor`` says how much
    PLACED = "placed"  # not won, but inside the each-way places: lost to win, won to place


class BetType(str, enum.Enum):  # noqa: UP042 - as LegResult
    """Bet types. Named full covers have a fixed leg count and size set (``FULL_COVERS``)."""

    SINGLE = "single"
    ACCUMULATOR = "accumulator"
    SYSTEM = "system"  # "k from n" for any set of sizes k (``Bet.system_sizes``)
    TRIXIE = "trixie"
    PATENT = "patent"
    YANKEE = "yankee"
    LUCKY_15 = "lucky_15"
    CANADIAN = "canadian"
    SUPER_YANKEE = "super_yankee"  # another name for the Canadian
    LUCKY_31 = "lucky_31"
    HEINZ = "heinz"
    LUCKY_63 = "lucky_63"
    SUPER_HEINZ = "super_heinz"
    GOLIATH = "goliath"


class StakeConvention(str, enum.Enum):  # noqa: UP042 - as LegResult
    """What ``Bet.stake_minor`` means (docs/SPORTSBOOK.md, "Stake conventions").

    ``per_line``: the unit stake of every line (of every part, each-way); the outlay is
    unit x lines (x 2 each-way). ``total``: the whole outlay, split evenly and exactly over
    the lines (and the two parts, each-way).
    """

    PER_LINE = "per_line"
    TOTAL = "total"


@dataclass(frozen=True, slots=True)
class FullCover:
    """A named full cover: ``legs`` selections, every combination of each size in ``sizes``."""

    legs: int
    sizes: tuple[int, ...]

    @property
    def lines(self) -> int:
        """Number of lines (accumulators) per part: sum of C(legs, k) over ``sizes``."""
        return line_count(self.legs, self.sizes)


def _cover(legs: int, *, singles: bool) -> FullCover:
    return FullCover(legs=legs, sizes=tuple(range(1 if singles else 2, legs + 1)))


#: The named full covers: without singles sizes 2..n, with singles ("Lucky", Patent) 1..n.
#: Lines: Trixie 4, Patent 7, Yankee 11, Lucky 15 15, Canadian 26, Lucky 31 31, Heinz 57,
#: Lucky 63 63, Super Heinz 120, Goliath 247.
FULL_COVERS: Mapping[BetType, FullCover] = MappingProxyType({
    BetType.TRIXIE: _cover(3, singles=False),
    BetType.PATENT: _cover(3, singles=True),
    BetType.YANKEE: _cover(4, singles=False),
    BetType.LUCKY_15: _cover(4, singles=True),
    BetType.CANADIAN: _cover(5, singles=False),
    BetType.SUPER_YANKEE: _cover(5, singles=False),
    BetType.LUCKY_31: _cover(5, singles=True),
    BetType.HEINZ: _cover(6, singles=False),
    BetType.LUCKY_63: _cover(6, singles=True),
    BetType.SUPER_HEINZ: _cover(7, singles=False),
    BetType.GOLIATH: _cover(8, singles=False),
})


def line_count(legs: int, sizes: Iterable[int]) -> int:
    """Lines of a system over ``legs`` selections: sum of C(legs, k) for k in ``sizes``."""
    return sum(math.comb(legs, k) for k in sizes)


def _check_ratio(value: object, *, code: str, what: str, low_open: bool = True) -> Fraction:
    """``value`` must be a Fraction in (0, 1] (``[0, 1]`` if not ``low_open``) with a bounded denominator."""
    if type(value) is not Fraction:
        raise SettlementError(code, f"{what} must be an exact Fraction")
    if not (0 < value <= 1 if low_open else 0 <= value <= 1):
        raise SettlementError(code, f"{what} must be {'above' if low_open else 'at least'} 0 and at most 1, not {value}")
    if value.denominator > RATIO_DENOMINATOR_MAX:
        raise SettlementError(code, f"{what} has too many digits")
    return value


def _check_id(value: object, what: str) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= _ID_CHARS_MAX:
        raise SettlementError("invalid_leg", f"{what} must be a non-empty string of at most {_ID_CHARS_MAX} characters")


_PLACED_RESULTS = frozenset({LegResult.WON, LegResult.PLACED, LegResult.DEAD_HEAT})


@dataclass(frozen=True, slots=True, kw_only=True)
class Leg:
    """One selection of a bet, with its price and (once known) its result.

    - ``market_id``, ``selection_id``: the selection; a bet may not hold the same pair twice.
    - ``odds``: exact decimal odds, a ``Fraction`` > 1 (``odds.parse_odds(...).decimal``).
    - ``result``: a ``LegResult``, or ``None`` while unresolved.
    - ``dead_heat_factor``: k in (0, 1], the win part's dead-heat factor (places still paid at
      the tied position / runners tied); other than 1 only with result ``DEAD_HEAT``.
    - ``place_fraction``: F in (0, 1], the each-way place terms (1/4, 1/5); required on every
      leg of an each-way bet, ignored otherwise.
    - ``place_dead_heat_factor``: k in (0, 1] for the place part when the selection tied for
      the last paid place; other than 1 only with a result that placed (won, placed, dead heat).
    - ``rule4_deductions``: Rule 4 deductions in pounds per pound (25p -> Fraction(1, 4)),
      each in [0, 9/10]; they add up, capped at 9/10 (``rule4``).

    Raises SettlementError: ``invalid_leg``, ``invalid_odds``, ``invalid_result``,
    ``invalid_each_way``, ``invalid_rule4``.
    """

    market_id: str
    selection_id: str
    odds: Fraction
    result: LegResult | None = None
    dead_heat_factor: Fraction = Fraction(1)
    place_fraction: Fraction | None = None
    place_dead_heat_factor: Fraction = Fraction(1)
    rule4_deductions: tuple[Fraction, ...] = ()

    def __post_init__(self) -> None:
        _check_id(self.market_id, "market_id")
        _check_id(self.selection_id, "selection_id")
        try:
            check_decimal_odds(self.odds, decimal_max=DECIMAL_ODDS_CEILING)
        except OddsError as e:
            raise SettlementError("invalid_odds", e.detail) from None
        if self.result is not None and not isinstance(self.result, LegResult):
            raise SettlementError("invalid_result", f"unknown leg result {self.result!r}")
        _check_ratio(self.dead_heat_factor, code="invalid_result", what="dead_heat_factor")
        if self.dead_heat_factor != 1 and self.result is not LegResult.DEAD_HEAT:
            raise SettlementError("invalid_result", "a dead-heat factor other than 1 needs result dead_heat")
        _check_ratio(self.place_dead_heat_factor, code="invalid_result", what="place_dead_heat_factor")
        if self.place_dead_heat_factor != 1 and self.result not in _PLACED_RESULTS:
            raise SettlementError("invalid_result", "a place dead-heat factor other than 1 needs a placed result")
        if self.place_fraction is not None:
            _check_ratio(self.place_fraction, code="invalid_each_way", what="place_fraction")
        if not isinstance(self.rule4_deductions, tuple) or len(self.rule4_deductions) > RULE4_DEDUCTIONS_MAX:
            raise SettlementError("invalid_rule4", f"rule4_deductions must be a tuple of at most {RULE4_DEDUCTIONS_MAX}")
        for deduction in self.rule4_deductions:
            _check_ratio(deduction, code="invalid_rule4", what="a Rule 4 deduction", low_open=False)
            if deduction > RULE4_MAX:
                raise SettlementError("invalid_rule4", f"a Rule 4 deduction is at most {RULE4_MAX}, not {deduction}")

    @property
    def selection(self) -> tuple[str, str]:
        """(market_id, selection_id)."""
        return (self.market_id, self.selection_id)

    @property
    def rule4(self) -> Fraction:
        """Total Rule 4 deduction of this leg: the sum of its deductions, at most 9/10."""
        return min(sum(self.rule4_deductions, Fraction(0)), RULE4_MAX)


@dataclass(frozen=True, slots=True, kw_only=True)
class BetLimits:
    """Configurable bounds checked when a bet is built.

    ``accumulator_legs_max`` (default 20, at most 32) bounds accumulators;
    ``system_legs_max`` (default 16, at most 20) bounds systems and named full covers, whose
    lines grow as 2**n; ``decimal_odds_max`` (default 10000) caps every leg's decimal odds.
    Raises SettlementError ``invalid_limits``.
    """

    accumulator_legs_max: int = 20
    system_legs_max: int = 16
    decimal_odds_max: Fraction = DECIMAL_ODDS_MAX

    def __post_init__(self) -> None:
        for name, value, ceiling in (
            ("accumulator_legs_max", self.accumulator_legs_max, ACCUMULATOR_LEGS_CEILING),
            ("system_legs_max", self.system_legs_max, SYSTEM_LEGS_CEILING),
        ):
            if type(value) is not int or not 2 <= value <= ceiling:
                raise SettlementError("invalid_limits", f"{name} must be an integer from 2 to {ceiling}")
        if type(self.decimal_odds_max) is not Fraction or not 1 < self.decimal_odds_max <= DECIMAL_ODDS_CEILING:
            raise SettlementError("invalid_limits", f"decimal_odds_max must be a Fraction above 1, at most {DECIMAL_ODDS_CEILING}")


DEFAULT_LIMITS = BetLimits()


@dataclass(frozen=True, slots=True, kw_only=True)
class Bet:
    """A bet: its type, legs, stake and the convention the stake is given in.

    - ``bet_type``: a ``BetType``; ``SINGLE`` takes 1 leg, ``ACCUMULATOR`` 2 or more, ``SYSTEM``
      2 or more with ``system_sizes``, a named full cover exactly its ``FULL_COVERS`` legs.
    - ``legs``: a tuple of ``Leg``, no (market_id, selection_id) twice.
    - ``stake_minor``: positive int of minor units of ``currency`` (an ISO code of
      gateway/money.py), read per ``stake_convention`` (required: books differ).
    - ``each_way``: two equal parts, win and place; every leg needs ``place_fraction`` and
      Asian half results are refused.
    - ``system_sizes``: for ``SYSTEM`` only, the combination sizes, each 1..n, no repeats.
    - ``limits``: the ``BetLimits`` this bet is checked against.

    Stake: per line, the outlay (unit x lines x parts) is at most AMOUNT_MINOR_CEILING; in
    total, the stake is at least one minor unit per line and part, so no line is staked
    below the currency's smallest unit.

    Raises SettlementError: ``invalid_limits``, ``invalid_bet_type``, ``invalid_stake``,
    ``invalid_each_way``, ``unknown_currency``, ``invalid_leg``, ``too_few_legs``,
    ``too_many_legs``, ``leg_count_mismatch``, ``invalid_system``, ``system_size_too_large``,
    ``invalid_odds``, ``duplicate_selection``, ``invalid_result``.
    """

    bet_type: BetType
    legs: tuple[Leg, ...]
    stake_minor: int
    currency: str
    stake_convention: StakeConvention
    each_way: bool = False
    system_sizes: tuple[int, ...] = ()
    limits: BetLimits = DEFAULT_LIMITS

    def __post_init__(self) -> None:
        if not isinstance(self.limits, BetLimits):
            raise SettlementError("invalid_limits", "limits must be BetLimits")
        if not isinstance(self.bet_type, BetType):
            raise SettlementError("invalid_bet_type", f"unknown bet type {self.bet_type!r}")
        if not isinstance(self.stake_convention, StakeConvention):
            raise SettlementError("invalid_stake", f"unknown stake convention {self.stake_convention!r}")
        if type(self.each_way) is not bool:
            raise SettlementError("invalid_each_way", "each_way must be a bool")
        try:
            exponent(self.currency)
        except AmountError as e:
            raise SettlementError(e.code, e.detail) from None
        if not isinstance(self.legs, tuple) or not all(isinstance(leg, Leg) for leg in self.legs):
            raise SettlementError("invalid_leg", "legs must be a tuple of Leg")
        self._check_leg_count()
        self._check_system_sizes()
        self._check_legs()
        self._check_stake()

    def _check_leg_count(self) -> None:
        n, limits = len(self.legs), self.limits
        if n == 0:
            raise SettlementError("too_few_legs", "a bet needs at least one leg")
        cover = FULL_COVERS.get(self.bet_type)
        if self.bet_type is BetType.SINGLE:
            if n != 1:
                raise SettlementError("leg_count_mismatch", f"a single has 1 leg, not {n}")
        elif cover is not None:
            if n != cover.legs:
                raise SettlementError("leg_count_mismatch", f"a {self.bet_type.value} has {cover.legs} legs, not {n}")
            if n > limits.system_legs_max:
                raise SettlementError("too_many_legs", f"systems take at most {limits.system_legs_max} legs")
        else:
            legs_max = limits.accumulator_legs_max if self.bet_type is BetType.ACCUMULATOR else limits.system_legs_max
            if n < 2:
                raise SettlementError("too_few_legs", f"a {self.bet_type.value} needs at least 2 legs")
            if n > legs_max:
                raise SettlementError("too_many_legs", f"a {self.bet_type.value} takes at most {legs_max} legs, not {n}")

    def _check_system_sizes(self) -> None:
        sizes = self.system_sizes
        if self.bet_type is not BetType.SYSTEM:
            if sizes != ():
                raise SettlementError("invalid_system", "system_sizes are for bet type system only")
            return
        if not isinstance(sizes, tuple) or not sizes or not all(type(k) is int for k in sizes):
            raise SettlementError("invalid_system", "system_sizes must be a non-empty tuple of integers")
        if len(set(sizes)) != len(sizes) or min(sizes) < 1:
            raise SettlementError("invalid_system", "system sizes must be distinct and at least 1")
        if max(sizes) > len(self.legs):
            raise SettlementError("system_size_too_large", f"system size {max(sizes)} exceeds the {len(self.legs)} legs")

    def _check_legs(self) -> None:
        seen: set[tuple[str, str]] = set()
        for leg in self.legs:
            if leg.odds > self.limits.decimal_odds_max:
                raise SettlementError("invalid_odds", f"decimal odds {leg.odds} exceed the maximum of {self.limits.decimal_odds_max}")
            if leg.selection in seen:
                raise SettlementError("duplicate_selection", f"selection {leg.selection} appears twice")
            seen.add(leg.selection)
            if self.each_way:
                if leg.place_fraction is None:
                    raise SettlementError("invalid_each_way", f"each-way leg {leg.selection} has no place terms")
                if leg.result in (LegResult.HALF_WON, LegResult.HALF_LOST):
                    raise SettlementError("invalid_result", "Asian half results cannot settle an each-way bet")

    def _check_stake(self) -> None:
        try:
            check_amount_minor(self.stake_minor, amount_minor_max=AMOUNT_MINOR_CEILING)
        except AmountError as e:
            raise SettlementError("invalid_stake", e.detail) from None
        bets = line_count(len(self.legs), combination_sizes(self)) * (2 if self.each_way else 1)
        if self.stake_convention is StakeConvention.PER_LINE and self.stake_minor * bets > AMOUNT_MINOR_CEILING:
            raise SettlementError("invalid_stake", f"outlay {self.stake_minor} x {bets} exceeds the maximum amount")
        if self.stake_convention is StakeConvention.TOTAL and self.stake_minor < bets:
            raise SettlementError("invalid_stake", f"a total stake of {self.stake_minor} is below one minor unit for each of {bets} lines")


def combination_sizes(bet: Bet) -> tuple[int, ...]:
    """The sizes of the accumulators a bet is made of, ascending: single (1,), accumulator
    (n,), system its ``system_sizes``, a named full cover its catalogue sizes."""
    if bet.bet_type is BetType.SINGLE:
        return (1,)
    if bet.bet_type is BetType.ACCUMULATOR:
        return (len(bet.legs),)
    if bet.bet_type is BetType.SYSTEM:
        return tuple(sorted(bet.system_sizes))
    return FULL_COVERS[bet.bet_type].sizes


@dataclass(frozen=True, slots=True)
class Staking:
    """How a bet's stake is spread: ``lines`` per part, ``parts`` (2 each-way, else 1),
    ``unit_stake_minor`` (exact Fraction of minor units on every line of every part) and
    ``outlay_minor`` (int, what the bettor pays: unit x lines x parts)."""

    lines: int
    parts: int
    unit_stake_minor: Fraction
    outlay_minor: int

    @property
    def bets(self) -> int:
        """Lines over both parts: lines x parts (a Yankee each-way is 22 bets)."""
        return self.lines * self.parts


def staking(bet: Bet) -> Staking:
    """Lines, parts, unit stake and outlay of ``bet`` (docs/SPORTSBOOK.md, "Stake conventions").

    per_line: unit = stake_minor, outlay = stake_minor x lines x parts. total: outlay =
    stake_minor, unit = stake_minor / (lines x parts) exactly (never rounded).
    """
    lines = line_count(len(bet.legs), combination_sizes(bet))
    parts = 2 if bet.each_way else 1
    if bet.stake_convention is StakeConvention.PER_LINE:
        return Staking(lines, parts, Fraction(bet.stake_minor), bet.stake_minor * lines * parts)
    return Staking(lines, parts, Fraction(bet.stake_minor, lines * parts), bet.stake_minor)
