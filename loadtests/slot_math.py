"""A slot's pay table: win multipliers with a 96% return to player.

Most spins lose (win 0, still reported with round_closed=true); some pay a multiple of the
stake. The expected multiplier (RTP) is computed exactly with fractions at import and
checked, so editing the table cannot silently change it.
"""

from __future__ import annotations

import random
from fractions import Fraction

# (multiplier, probability); the zero-win probability is whatever remains.
PAYTABLE: tuple[tuple[Fraction, Fraction], ...] = (
    (Fraction(1, 2), Fraction(100, 1000)),
    (Fraction(1), Fraction(120, 1000)),
    (Fraction(2), Fraction(80, 1000)),
    (Fraction(5), Fraction(30, 1000)),
    (Fraction(10), Fraction(10, 1000)),
    (Fraction(20), Fraction(10, 1000)),
    (Fraction(50), Fraction(1, 1000)),
    (Fraction(100), Fraction(13, 10000)),
)
P_LOSE = 1 - sum(p for _, p in PAYTABLE)
RTP = sum(m * p for m, p in PAYTABLE)
assert Fraction(96, 100) == RTP, RTP
assert Fraction(1, 2) < P_LOSE  # most rounds lose

_CUMULATIVE: list[tuple[float, Fraction]] = []
_acc = Fraction(0)
for _m, _p in PAYTABLE:
    _acc += _p
    _CUMULATIVE.append((float(_acc), _m))

# Stakes in minor units (EUR cents): multiples of 10 so that x0.5 stays exact.
STAKES_MINOR = (10, 20, 50, 100, 200, 500)


def draw_win_minor(rng: random.Random, stake_minor: int) -> int:
    """Win for one spin, in minor units, rounded down (payouts round down)."""
    u = rng.random()
    for threshold, mult in _CUMULATIVE:
        if u < threshold:
            return int(mult * stake_minor)  # int() of a non-negative Fraction floors
    return 0
