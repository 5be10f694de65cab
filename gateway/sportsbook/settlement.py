"""Settlement math: the exact return of a bet, rounded once. Pure: no I/O, no clock, no floats.

Every step is a ``Fraction`` (docs/DESIGN.md section 3; docs/SPORTSBOOK.md, "Settlement
model"):

1. each leg settles to a factor ``f = w * d + v`` (``leg_factor``), per part (win, and place
   for each-way), from its effective odds after Rule 4;
2. the return per unit stake of one part is the sum over the chosen combination sizes k of
   the elementary symmetric polynomial e_k of the legs' factors (``combinations_return``):
   each combination is an accumulator paying the product of its factors;
3. the exact return in minor units is unit stake x the sum over the parts;
4. it is rounded once to the minor unit (``round_return_minor``, down by default), then
   capped (``max_payout_minor`` caps the return, stake included).

Rules restated from bookmakers' published settlement rules and open-source bet calculators
(docs/specs/sportsbook.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from gateway.money import AMOUNT_MINOR_CEILING, round_payout_down
from gateway.sportsbook.bets import Bet, Leg, LegResult, SettlementError, Staking, combination_sizes, staking

#: Rounding directions of ``round_return_minor``.
RoundingMode = Literal["down", "half_up", "half_even"]
ROUNDING_MODES: tuple[RoundingMode, ...] = ("down", "half_up", "half_even")
#: The two parts of an each-way bet; a bet that is not each-way has only the win part.
Part = Literal["win", "place"]

__all__ = [
    "ROUNDING_MODES",
    "Part",
    "RoundingMode",
    "Settlement",
    "SettlementError",
    "combinations_return",
    "effective_odds",
    "elementary_symmetric",
    "exact_return_minor",
    "leg_factor",
    "place_odds",
    "potential_return",
    "round_return_minor",
    "settle",
]


def effective_odds(leg: Leg) -> Fraction:
    """Decimal odds after Rule 4: ``1 + (d - 1) x (1 - R)``, R = ``leg.rule4`` (<= 9/10).

    Only this leg's price moves; with no deduction it is ``leg.odds``.
    """
    return 1 + (leg.odds - 1) * (1 - leg.rule4)


def place_odds(leg: Leg) -> Fraction:
    """Decimal odds of the place part: ``1 + (d' - 1) x F``, d' the effective (Rule 4) odds,
    F the leg's ``place_fraction``. Raises SettlementError ``invalid_each_way`` without terms."""
    if leg.place_fraction is None:
        raise SettlementError("invalid_each_way", f"leg {leg.selection} has no place terms")
    return 1 + (effective_odds(leg) - 1) * leg.place_fraction


def leg_factor(leg: Leg, part: Part = "win", *, assume_won: bool = False) -> Fraction:
    """The leg's settlement factor ``f = w x d + v`` for ``part`` (per unit staked on it).

    Win part, d = ``effective_odds``: won d; lost 0; void 1; half won (d + 1)/2; half lost
    1/2; dead heat k x d (k = ``dead_heat_factor``); placed 0.
    Place part, d = ``place_odds``: won, placed or dead heat k_p x d (k_p =
    ``place_dead_heat_factor``); void 1; lost 0; half results raise ``invalid_result``.

    An unresolved leg (result ``None``) counts as won if ``assume_won``, else raises
    SettlementError ``legs_unresolved``.
    """
    result = leg.result
    if result is None:
        if not assume_won:
            raise SettlementError("legs_unresolved", f"leg {leg.selection} is not resolved")
        result = LegResult.WON
    if part == "place":
        if result is LegResult.VOID:
            return Fraction(1)
        if result is LegResult.LOST:
            return Fraction(0)
        if result in (LegResult.HALF_WON, LegResult.HALF_LOST):
            raise SettlementError("invalid_result", "Asian half results have no place part")
        return leg.place_dead_heat_factor * place_odds(leg)
    d = effective_odds(leg)
    w, v = {
        LegResult.WON: (Fraction(1), Fraction(0)),
        LegResult.LOST: (Fraction(0), Fraction(0)),
        LegResult.PLACED: (Fraction(0), Fraction(0)),
        LegResult.VOID: (Fraction(0), Fraction(1)),
        LegResult.HALF_WON: (Fraction(1, 2), Fraction(1, 2)),
        LegResult.HALF_LOST: (Fraction(0), Fraction(1, 2)),
        LegResult.DEAD_HEAT: (leg.dead_heat_factor, Fraction(0)),
    }[result]
    return w * d + v


def elementary_symmetric(factors: Sequence[Fraction], degree_max: int) -> list[Fraction]:
    """``[e_0, e_1, ..., e_degree_max]`` of ``factors``, by the O(n x degree_max) recurrence.

    e_k is the sum, over every combination of k factors, of their product; e_0 = 1, and e_k
    = 0 for k > n. Adding factor f maps e_k to e_k + f x e_(k-1).
    """
    e = [Fraction(1)] + [Fraction(0)] * degree_max
    for f in factors:
        for k in range(degree_max, 0, -1):
            e[k] += f * e[k - 1]
    return e


def combinations_return(factors: Sequence[Fraction], sizes: Sequence[int]) -> Fraction:
    """Return per unit stake of a system: every combination of every size in ``sizes`` is an
    accumulator staked at 1, so the return is the sum of e_k(factors) over k in ``sizes``.

    Full covers use the closed forms: sizes 1..n give prod(1 + f_i) - 1, sizes 2..n that
    minus sum(f_i); any other size set goes through ``elementary_symmetric``.
    Raises SettlementError ``invalid_system`` (empty, repeated or < 1) or
    ``system_size_too_large`` (> n).
    """
    n = len(factors)
    chosen = sorted(sizes)
    if not chosen or len(set(chosen)) != len(chosen) or chosen[0] < 1:
        raise SettlementError("invalid_system", "sizes must be distinct and at least 1")
    if chosen[-1] > n:
        raise SettlementError("system_size_too_large", f"size {chosen[-1]} exceeds the {n} legs")
    if chosen == list(range(1, n + 1)):
        return math.prod((1 + f for f in factors), start=Fraction(1)) - 1
    if n >= 2 and chosen == list(range(2, n + 1)):
        return math.prod((1 + f for f in factors), start=Fraction(1)) - 1 - sum(factors, Fraction(0))
    e = elementary_symmetric(factors, chosen[-1])
    return sum((e[k] for k in chosen), Fraction(0))


def round_return_minor(value: Fraction, mode: RoundingMode = "down") -> int:
    """THE rounding of a settlement return: exact minor units -> whole minor units, once.

    ``value``: a non-negative Fraction of minor units. ``mode``: ``"down"`` (default; toward
    zero, via money.round_payout_down: the operator keeps the remainder, docs/DESIGN.md
    section 3), ``"half_up"`` (nearest, ties up), ``"half_even"`` (nearest, ties to even).
    Raises SettlementError ``invalid_rounding`` for another mode or a negative value.
    """
    if type(value) is not Fraction or value < 0:
        raise SettlementError("invalid_rounding", "only a non-negative Fraction of minor units is rounded")
    num, den = value.numerator, value.denominator
    if mode == "down":
        return round_payout_down(num, den)
    if mode == "half_up":
        return (2 * num + den) // (2 * den)
    if mode == "half_even":
        q, r = divmod(num, den)
        return q + (1 if 2 * r > den or (2 * r == den and q % 2 == 1) else 0)
    raise SettlementError("invalid_rounding", f"unknown rounding mode {mode!r}; one of {ROUNDING_MODES}")


@dataclass(frozen=True, slots=True)
class Settlement:
    """The outcome of settling (or pricing) a bet, amounts in minor units of ``currency``.

    ``exact_return_minor``: the exact return (Fraction, stake included); ``uncapped_minor``:
    it rounded once (``rounding``); ``return_minor``: that after the payout cap, the amount
    to credit; ``staking``: lines, parts, unit stake and outlay.
    """

    currency: str
    staking: Staking
    exact_return_minor: Fraction
    uncapped_minor: int
    return_minor: int
    rounding: RoundingMode

    @property
    def capped(self) -> bool:
        """True if the payout cap took something off the return."""
        return self.return_minor < self.uncapped_minor


def exact_return_minor(bet: Bet, *, assume_won: bool = False) -> Fraction:
    """The exact return of ``bet`` in minor units, before any rounding or cap.

    unit stake x sum over parts of ``combinations_return``(the legs' factors for that part).
    Unresolved legs count as won if ``assume_won``, else SettlementError ``legs_unresolved``.
    """
    sizes = combination_sizes(bet)
    parts: tuple[Part, ...] = ("win", "place") if bet.each_way else ("win",)
    per_unit = sum(
        (combinations_return([leg_factor(leg, part, assume_won=assume_won) for leg in bet.legs], sizes) for part in parts),
        Fraction(0),
    )
    return staking(bet).unit_stake_minor * per_unit


def _finish(bet: Bet, exact: Fraction, rounding: RoundingMode, max_payout_minor: int | None) -> Settlement:
    if max_payout_minor is not None and (
        type(max_payout_minor) is not int or not 0 < max_payout_minor <= AMOUNT_MINOR_CEILING
    ):
        raise SettlementError("invalid_payout_cap", f"max_payout_minor must be an integer from 1 to {AMOUNT_MINOR_CEILING}")
    rounded = round_return_minor(exact, rounding)
    paid = rounded if max_payout_minor is None else min(rounded, max_payout_minor)
    if paid > AMOUNT_MINOR_CEILING:
        raise SettlementError("payout_too_large", f"return {paid} exceeds the maximum amount; configure a payout cap")
    return Settlement(bet.currency, staking(bet), exact, rounded, paid, rounding)


def return_for_stake(per_stake: Fraction, stake_minor: int, *, rounding: RoundingMode,
                     max_payout_minor: int) -> int:
    """The amount to credit for a bet whose exact return is ``per_stake`` x ``stake_minor``:
    the same single rounding step and cap as ``settle``. The exact return of a bet is linear
    in its stake under both conventions (unit = stake, or stake / (lines x parts)), so bets
    that differ only in stake share ``per_stake`` (``resolve.SettlementMemo``).
    Raises SettlementError as ``settle`` does."""
    if type(max_payout_minor) is not int or not 0 < max_payout_minor <= AMOUNT_MINOR_CEILING:
        raise SettlementError("invalid_payout_cap", f"max_payout_minor must be an integer from 1 to {AMOUNT_MINOR_CEILING}")
    paid = min(round_return_minor(per_stake * stake_minor, rounding), max_payout_minor)
    if paid > AMOUNT_MINOR_CEILING:
        raise SettlementError("payout_too_large", f"return {paid} exceeds the maximum amount; configure a payout cap")
    return paid


def settle(bet: Bet, *, rounding: RoundingMode = "down", max_payout_minor: int | None = None) -> Settlement:
    """Settle a bet whose legs are all resolved.

    The exact return is rounded once (``round_return_minor``, ``rounding``), then capped at
    ``max_payout_minor`` (a positive int or None; the cap applies to the return, stake
    included). Raises SettlementError ``legs_unresolved``, ``invalid_rounding``,
    ``invalid_payout_cap``, ``payout_too_large`` (return above AMOUNT_MINOR_CEILING).
    """
    return _finish(bet, exact_return_minor(bet), rounding, max_payout_minor)


def potential_return(bet: Bet, *, rounding: RoundingMode = "down", max_payout_minor: int | None = None) -> Settlement:
    """The return if every unresolved leg wins (resolved legs keep their results).

    Won is every leg's best result, so this is the most the bet can still return: the
    figure liability is reserved on. Same rounding, cap and errors as ``settle``, less
    ``legs_unresolved``.
    """
    return _finish(bet, exact_return_minor(bet, assume_won=True), rounding, max_payout_minor)
