"""Sportsbook settlement (gateway/sportsbook): exact odds, bet validation, settlement math.

Unit tests pin the worked examples of docs/SPORTSBOOK.md (amounts in minor units, GBP
exponent 2) and every refusal code. Hypothesis property tests compare the production path
(closed forms and the elementary-symmetric-polynomial recurrence) with a reference model
written here from the rules: each leg's factor from the w/v table, every combination
enumerated with itertools.combinations and multiplied out in Fractions.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.money import AMOUNT_MINOR_CEILING
from gateway.sportsbook import odds as odds_mod
from gateway.sportsbook.bets import (
    FULL_COVERS,
    Bet,
    BetLimits,
    BetType,
    Leg,
    LegResult,
    SettlementError,
    StakeConvention,
    staking,
)
from gateway.sportsbook.odds import Odds, OddsError, StoredOdds, parse_odds
from gateway.sportsbook.settlement import (
    combinations_return,
    elementary_symmetric,
    exact_return_minor,
    leg_factor,
    potential_return,
    round_return_minor,
    settle,
)

F = Fraction
WON, LOST, VOID = LegResult.WON, LegResult.LOST, LegResult.VOID
HALF_WON, HALF_LOST, DEAD_HEAT, PLACED = LegResult.HALF_WON, LegResult.HALF_LOST, LegResult.DEAD_HEAT, LegResult.PLACED
PER_LINE, TOTAL = StakeConvention.PER_LINE, StakeConvention.TOTAL

PROPERTY = settings(max_examples=200, deadline=None, database=None)


def odds(text: str) -> Fraction:
    return parse_odds(text).decimal


def leg(price: str | Fraction, result: LegResult | None = WON, i: int = 0, **kw) -> Leg:
    return Leg(
        market_id=f"m{i}",
        selection_id=f"s{i}",
        odds=odds(price) if isinstance(price, str) else price,
        result=result,
        **kw,
    )


def legs(*specs) -> tuple[Leg, ...]:
    """legs(("3/1", WON), ("7/1", LOST, {"place_fraction": F(1, 4)}), ...) with distinct selections."""
    out = []
    for i, spec in enumerate(specs):
        price, result, *rest = spec
        out.append(leg(price, result, i, **(rest[0] if rest else {})))
    return tuple(out)


def bet(bet_type: BetType, the_legs: tuple[Leg, ...], stake_minor: int, convention=PER_LINE, **kw) -> Bet:
    return Bet(bet_type=bet_type, legs=the_legs, stake_minor=stake_minor, currency=kw.pop("currency", "GBP"),
               stake_convention=convention, **kw)


def refused(code: str, fn, *args, **kwargs) -> Exception:
    with pytest.raises((SettlementError, OddsError)) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, (info.value.code, info.value.detail)
    assert info.value.detail
    return info.value


# ==== odds ==============================================================================


@pytest.mark.parametrize("text,style,decimal", [
    ("2.50", "decimal", F(5, 2)),
    ("2.5", "decimal", F(5, 2)),
    ("2", "decimal", F(2)),
    ("1.01", "decimal", F(101, 100)),
    ("1.5", "decimal", F(3, 2)),
    ("10000", "decimal", F(10000)),
    ("5/2", "fractional", F(7, 2)),
    ("1/1", "fractional", F(2)),
    ("7/4", "fractional", F(11, 4)),
    ("4/6", "fractional", F(5, 3)),
    ("100/30", "fractional", F(13, 3)),
    ("+150", "american", F(5, 2)),
    ("-200", "american", F(3, 2)),
    ("+100", "american", F(2)),
    ("-100", "american", F(2)),
    ("-110", "american", F(21, 11)),
    ("+999900", "american", F(10000)),
])
def test_odds_parse_exactly_in_all_three_notations(text, style, decimal):
    parsed = parse_odds(text)
    assert parsed.decimal == decimal and type(parsed.decimal) is Fraction
    assert parsed.style == style and parsed.text == text
    assert parse_odds(text, style=style) == parsed


@pytest.mark.parametrize("value", [
    "1e2", "2.5e0", "nan", "NaN", "inf", "-inf", "Infinity",  # float-like texts
    "1.0", "1", "1.00", "0.5", "0", "0/1", "0/5",  # decimal odds of 1 or less
    "5/0", "0/0", "-5/2", "+5/2", "5/-2", "5//2", "2.5/1",  # malformed fractional
    "+99", "-99", "+0", "-0", "+50", "-1", "+", "-", "++150", "+150.5",  # American inside (-100, +100) or malformed
    "", " 2.5", "2.5 ", "2,5", ".5", "2.", "2..5", "½", "٢.٥", "2.5\n",  # shapes
    "10000.01", "10001", "+1000000", "1/0.5",  # above the default cap of 10000, or malformed
    "1.0000000000001", "123456789/1234", "9" * 40,  # too many digits / too long
])
def test_odds_refusals(value):
    refused("invalid_odds", parse_odds, value)


@pytest.mark.parametrize("value", [2.5, 1e2, float("nan"), Decimal("2.5"), 2, F(5, 2), None, True, b"2.5"])
def test_odds_must_be_text(value):
    refused("invalid_odds", parse_odds, value)


def test_odds_style_given_must_match_and_cap_is_configurable():
    refused("invalid_odds", parse_odds, "5/2", style="decimal")
    refused("invalid_odds", parse_odds, "2.5", style="american")
    refused("invalid_odds", parse_odds, "+150", style="fractional")
    refused("invalid_odds", parse_odds, "2.5", style="roman")
    assert parse_odds("2", style="decimal").decimal == 2
    refused("invalid_odds", parse_odds, "21", decimal_max=F(20))
    assert parse_odds("20", decimal_max=F(20)).decimal == 20
    assert parse_odds("20001", decimal_max=F(100_000)).decimal == 20001
    refused("invalid_limits", parse_odds, "2", decimal_max=F(1))
    refused("invalid_limits", parse_odds, "2", decimal_max=odds_mod.DECIMAL_ODDS_CEILING + 1)


def test_odds_storage_round_trip_and_canonical_form():
    for text in ("5/2", "2.50", "-110", "+150", "100/30"):
        offered = parse_odds(text)
        stored = odds_mod.to_storage(offered)
        assert stored.decimal == odds_mod.format_exact(offered.decimal) == offered.canonical
        wire = msgspec.json.encode(stored)
        back = odds_mod.from_storage(msgspec.json.decode(wire, type=StoredOdds))
        assert back == offered and back.text == text
    assert parse_odds("5/2").canonical == "7/2"
    assert parse_odds("2").canonical == "2/1"
    assert odds_mod.parse_exact("7/2") == F(7, 2)
    assert odds_mod.parse_exact("21/11") == F(21, 11)
    for bad in ("14/4", "07/2", "7/02", "2", "7/2 ", "-7/2", "1/1", "1/2", "0/1", "7.0/2", None, 3.5):
        refused("invalid_odds", odds_mod.parse_exact, bad)
    # a stored text that no longer reads as the stored value, or a bad style
    refused("invalid_odds", odds_mod.from_storage, StoredOdds(decimal="3/1", style="fractional", text="5/2"))
    refused("invalid_odds", odds_mod.from_storage, StoredOdds(decimal="7/2", style="roman", text="5/2"))
    refused("invalid_odds", odds_mod.from_storage, StoredOdds(decimal="7/2", style="decimal", text="5/2"))


def test_odds_object_never_disagrees_with_itself():
    assert Odds(decimal=F(7, 2), style="fractional", text="5/2") == parse_odds("5/2")
    refused("invalid_odds", Odds, decimal=F(3), style="decimal", text="2.5")
    refused("invalid_odds", Odds, decimal=F(5, 2), style="fractional", text="2.5")
    refused("invalid_odds", Odds, decimal=F(1), style="decimal", text="1")
    refused("invalid_odds", Odds, decimal=2.5, style="decimal", text="2.5")


def test_check_decimal_odds():
    assert odds_mod.check_decimal_odds(F(3, 2)) == F(3, 2)
    for bad in (F(1), F(1, 2), F(0), F(-3), 2, 2.5, Decimal(2), True, F(10001), F(10**13 + 1, 10**13)):
        refused("invalid_odds", odds_mod.check_decimal_odds, bad)


# ==== worked examples (docs/SPORTSBOOK.md) ==============================================


def test_accumulator_with_a_void_leg_and_all_void():
    acca = bet(BetType.ACCUMULATOR, legs(("1.5", WON), ("2.0", VOID), ("3.0", WON)), 1000)
    s = settle(acca)
    assert s.exact_return_minor == 4500 and s.return_minor == 4500  # 45.00
    assert s.staking.lines == 1 and s.staking.outlay_minor == 1000
    all_void = bet(BetType.ACCUMULATOR, legs(("1.5", VOID), ("2.0", VOID), ("3.0", VOID)), 1000)
    assert settle(all_void).return_minor == 1000  # 10.00


def test_lucky_15_all_won():
    lucky = bet(BetType.LUCKY_15, legs(("3/1", WON), ("7/1", WON), ("5/2", WON), ("1/1", WON)), 100)
    s = settle(lucky)
    assert s.exact_return_minor == F(60650) and s.return_minor == 60650  # 5 x 9 x 4.5 x 3 - 1 = 606.50
    assert (s.staking.lines, s.staking.outlay_minor) == (15, 1500)


def test_yankee_with_a_non_runner():
    yankee = bet(BetType.YANKEE, legs(("2/1", WON), ("4/1", WON), ("7/1", WON), ("3/1", VOID)), 100)
    s = settle(yankee)
    assert s.return_minor == 41400  # 4 x 6 x 9 x 2 - 1 - (3 + 5 + 8 + 1) = 414.00
    assert (s.staking.lines, s.staking.outlay_minor) == (11, 1100)  # still 11 lines staked


def test_each_way_7_4_quarter_odds():
    terms = {"place_fraction": F(1, 4)}
    winner = bet(BetType.SINGLE, legs(("7/4", WON, terms)), 1000, each_way=True)
    s = settle(winner)
    assert s.exact_return_minor == F(8375, 2)  # 4187.5 pence
    assert s.exact_return_minor / 100 == F(41875, 1000)  # 41.875 pounds
    assert s.return_minor == 4187  # rounded down: 41.87
    assert s.staking.outlay_minor == 2000 and s.staking.bets == 2
    placed = settle(bet(BetType.SINGLE, legs(("7/4", PLACED, terms)), 1000, each_way=True))
    assert placed.exact_return_minor == F(2875, 2) and placed.exact_return_minor / 100 == F(14375, 1000)
    assert placed.return_minor == 1437  # 14.37


def test_each_way_11_4_fifth_odds():
    terms = {"place_fraction": F(1, 5)}
    assert settle(bet(BetType.SINGLE, legs(("11/4", WON, terms)), 10000, each_way=True)).return_minor == 53000
    assert settle(bet(BetType.SINGLE, legs(("11/4", PLACED, terms)), 10000, each_way=True)).return_minor == 15500


def test_dead_heat_two_way_tie():
    s = settle(bet(BetType.SINGLE, legs(("10/1", DEAD_HEAT, {"dead_heat_factor": F(1, 2)})), 1000))
    assert s.exact_return_minor == 5500 and s.return_minor == 5500


def test_rule_4_deduction():
    s = settle(bet(BetType.SINGLE, legs(("8/1", WON, {"rule4_deductions": (F(25, 100),)})), 1000))
    assert s.return_minor == 7000
    # deductions add up (25p + 30p = 55p) ...
    assert settle(bet(BetType.SINGLE, legs(("8/1", WON, {"rule4_deductions": (F(1, 4), F(3, 10))})), 1000)).return_minor == 4600
    # ... to at most 90p
    capped = legs(("8/1", WON, {"rule4_deductions": (F(1, 2), F(1, 2))}))
    assert capped[0].rule4 == F(9, 10)
    assert settle(bet(BetType.SINGLE, capped, 1000)).return_minor == 1800
    # only the leg concerned: a double with Rule 4 on the first leg only
    double = legs(("8/1", WON, {"rule4_deductions": (F(1, 4),)}), ("1/1", WON))
    assert settle(bet(BetType.ACCUMULATOR, double, 1000)).return_minor == 7 * 2 * 1000


def test_asian_quarter_lines():
    assert settle(bet(BetType.SINGLE, legs(("2.00", HALF_WON)), 10000)).return_minor == 15000
    assert settle(bet(BetType.SINGLE, legs(("2.00", HALF_LOST)), 10000)).return_minor == 5000


# ==== more unit tests ===================================================================


def test_each_way_rule_4_and_place_dead_heat():
    r4 = {"place_fraction": F(1, 4), "rule4_deductions": (F(1, 4),)}
    # win 10 x 7 = 70; place 10 x (1 + 8 x 3/4 x 1/4) = 25
    assert settle(bet(BetType.SINGLE, legs(("8/1", WON, r4)), 1000, each_way=True)).return_minor == 9500
    # tied for the last place, two runners: place part at half; win part lost
    tied = {"place_fraction": F(1, 4), "place_dead_heat_factor": F(1, 2)}
    assert settle(bet(BetType.SINGLE, legs(("4/1", PLACED, tied)), 1000, each_way=True)).return_minor == 1000
    # dead heat for the win (k = 1/2): win part 10 x 5 / 2 = 25, place part in full 10 x 2 = 20
    dh = {"place_fraction": F(1, 4), "dead_heat_factor": F(1, 2)}
    assert settle(bet(BetType.SINGLE, legs(("4/1", DEAD_HEAT, dh)), 1000, each_way=True)).return_minor == 4500
    # non-runner: both parts void
    assert settle(bet(BetType.SINGLE, legs(("4/1", VOID, {"place_fraction": F(1, 4)})), 1000, each_way=True)).return_minor == 2000


def test_each_way_multiple_is_a_win_and_a_place_accumulator():
    the_legs = legs(("3/1", WON, {"place_fraction": F(1, 4)}), ("2/1", PLACED, {"place_fraction": F(1, 5)}))
    double = bet(BetType.ACCUMULATOR, the_legs, 100, each_way=True)
    s = settle(double)
    # win double 4 x 0 = 0; place double (1 + 3/4) x (1 + 2/5) = 49/20
    assert s.exact_return_minor == F(245) and s.return_minor == 245
    assert s.staking.outlay_minor == 200
    both_won = bet(BetType.ACCUMULATOR, legs(("3/1", WON, {"place_fraction": F(1, 4)}), ("2/1", WON, {"place_fraction": F(1, 5)})),
                   100, each_way=True)
    assert settle(both_won).exact_return_minor == 4 * 3 * 100 + 245
    # each-way Trixie: 4 win lines + 4 place lines
    trixie = bet(BetType.TRIXIE, legs(*((p, WON, {"place_fraction": F(1, 4)}) for p in ("1/1", "3/1", "7/1"))), 100, each_way=True)
    assert staking(trixie).bets == 8 and staking(trixie).outlay_minor == 800
    win = F(2 * 4 + 2 * 8 + 4 * 8 + 2 * 4 * 8)
    place = F(5, 4) * F(7, 4) + F(5, 4) * F(11, 4) + F(7, 4) * F(11, 4) + F(5, 4) * F(7, 4) * F(11, 4)
    assert settle(trixie).exact_return_minor == 100 * (win + place)


def test_placed_on_a_win_bet_is_lost():
    assert settle(bet(BetType.SINGLE, legs(("5/1", PLACED)), 1000)).return_minor == 0


def test_full_cover_catalogue():
    expected = {
        BetType.TRIXIE: (3, 4), BetType.PATENT: (3, 7), BetType.YANKEE: (4, 11), BetType.LUCKY_15: (4, 15),
        BetType.CANADIAN: (5, 26), BetType.SUPER_YANKEE: (5, 26), BetType.LUCKY_31: (5, 31), BetType.HEINZ: (6, 57),
        BetType.LUCKY_63: (6, 63), BetType.SUPER_HEINZ: (7, 120), BetType.GOLIATH: (8, 247),
    }
    assert {t: (c.legs, c.lines) for t, c in FULL_COVERS.items()} == expected
    for bet_type, (n, lines) in expected.items():
        b = bet(bet_type, legs(*(("2/1", WON),) * n), 100)
        assert staking(b).lines == lines and staking(b).outlay_minor == 100 * lines


def test_total_stake_convention():
    four = legs(("2/1", WON), ("4/1", WON), ("7/1", WON), ("3/1", VOID))
    per_line = settle(bet(BetType.YANKEE, four, 100))
    total = settle(bet(BetType.YANKEE, four, 1100, TOTAL))
    assert total.staking.unit_stake_minor == 100 and total.staking.outlay_minor == 1100
    assert total.exact_return_minor == per_line.exact_return_minor == 41400
    # 10.00 over 11 lines: the unit is 1000/11 pence exactly, never rounded; the return once
    uneven = settle(bet(BetType.YANKEE, four, 1000, TOTAL))
    assert uneven.staking.unit_stake_minor == F(1000, 11)
    assert uneven.exact_return_minor == F(1000, 11) * 414
    assert uneven.return_minor == 37636  # 37636.36... down
    # each-way: the total is split over both parts too
    ew = settle(bet(BetType.SINGLE, legs(("7/4", WON, {"place_fraction": F(1, 4)})), 2000, TOTAL, each_way=True))
    assert ew.staking.unit_stake_minor == 1000 and ew.exact_return_minor == F(8375, 2)
    # at least one minor unit per line
    refused("invalid_stake", bet, BetType.YANKEE, four, 10, TOTAL)
    assert staking(bet(BetType.YANKEE, four, 11, TOTAL)).unit_stake_minor == 1
    refused("invalid_stake", bet, BetType.SINGLE, legs(("7/4", WON, {"place_fraction": F(1, 4)})), 1, TOTAL, each_way=True)


def test_max_payout_cap_applies_to_the_return():
    lucky = bet(BetType.LUCKY_15, legs(("3/1", WON), ("7/1", WON), ("5/2", WON), ("1/1", WON)), 100)
    s = settle(lucky, max_payout_minor=50000)
    assert s.return_minor == 50000 and s.uncapped_minor == 60650 and s.capped
    assert s.exact_return_minor == 60650
    loose = settle(lucky, max_payout_minor=60650)
    assert loose.return_minor == 60650 and not loose.capped
    # the cap is on the return, stake included: a cap below the stake pays only the cap
    assert settle(bet(BetType.SINGLE, legs(("1.5", WON)), 1000), max_payout_minor=900).return_minor == 900
    assert potential_return(lucky, max_payout_minor=1).return_minor == 1
    for bad in (0, -1, 1.5, True, "100", AMOUNT_MINOR_CEILING + 1):
        refused("invalid_payout_cap", settle, lucky, max_payout_minor=bad)


def test_a_return_beyond_the_amount_ceiling_needs_a_cap():
    long_shot = bet(BetType.ACCUMULATOR, legs(*((F(10000), WON),) * 20), 100)
    refused("payout_too_large", settle, long_shot)
    assert settle(long_shot, max_payout_minor=10**9).return_minor == 10**9


def test_rounding_modes():
    assert [round_return_minor(F(5, 2), m) for m in ("down", "half_up", "half_even")] == [2, 3, 2]
    assert [round_return_minor(F(7, 2), m) for m in ("down", "half_up", "half_even")] == [3, 4, 4]
    assert [round_return_minor(F(9, 4), m) for m in ("down", "half_up", "half_even")] == [2, 2, 2]
    assert [round_return_minor(F(11, 4), m) for m in ("down", "half_up", "half_even")] == [2, 3, 3]
    assert [round_return_minor(F(4), m) for m in ("down", "half_up", "half_even")] == [4, 4, 4]
    assert round_return_minor(F(0)) == 0 and round_return_minor(F(999, 1000)) == 0
    for bad_value in (F(-1, 2), 2.5, 3, Decimal("2.5")):
        refused("invalid_rounding", round_return_minor, bad_value)
    refused("invalid_rounding", round_return_minor, F(5, 2), "up")
    winner = bet(BetType.SINGLE, legs(("7/4", WON, {"place_fraction": F(1, 4)})), 1000, each_way=True)
    assert settle(winner).return_minor == 4187
    assert settle(winner, rounding="half_up").return_minor == 4188
    assert settle(winner, rounding="half_even").return_minor == 4188
    refused("invalid_rounding", settle, winner, rounding="ceiling")


def test_potential_return_and_unresolved_legs():
    open_yankee = bet(BetType.YANKEE, legs(("2/1", WON), ("4/1", LOST), ("7/1", None), ("3/1", None)), 100)
    refused("legs_unresolved", settle, open_yankee)
    refused("legs_unresolved", leg_factor, open_yankee.legs[2])
    p = potential_return(open_yankee)
    # the open legs as winners: lines without the lost 4/1 leg: 3x8, 3x4, 8x4, 3x8x4
    assert p.exact_return_minor == 100 * (3 * 8 + 3 * 4 + 8 * 4 + 3 * 8 * 4)
    all_won = replace(open_yankee, legs=tuple(replace(x, result=x.result or WON) for x in open_yankee.legs))
    assert p == settle(all_won)
    # nothing resolved: the full potential
    fresh = bet(BetType.LUCKY_15, legs(("3/1", None), ("7/1", None), ("5/2", None), ("1/1", None)), 100)
    assert potential_return(fresh).return_minor == 60650
    # each-way: an unresolved leg wins both parts
    ew = bet(BetType.SINGLE, legs(("7/4", None, {"place_fraction": F(1, 4)})), 1000, each_way=True)
    assert potential_return(ew).exact_return_minor == F(8375, 2)


def test_leg_factor_table():
    d = F(5, 2)
    cases = {WON: d, LOST: 0, VOID: 1, HALF_WON: (d + 1) / 2, HALF_LOST: F(1, 2), PLACED: 0}
    for result, expected in cases.items():
        assert leg_factor(leg(d, result)) == expected, result
    assert leg_factor(leg(d, DEAD_HEAT, dead_heat_factor=F(1, 3))) == d / 3
    place = {"place_fraction": F(1, 5)}
    assert leg_factor(leg(d, WON, **place), "place") == F(13, 10)
    assert leg_factor(leg(d, PLACED, **place), "place") == F(13, 10)
    assert leg_factor(leg(d, LOST, **place), "place") == 0
    assert leg_factor(leg(d, VOID, **place), "place") == 1
    refused("invalid_each_way", leg_factor, leg(d, WON), "place")
    refused("invalid_result", leg_factor, leg(d, HALF_WON, **place), "place")


def test_combinations_return_refusals():
    refused("invalid_system", combinations_return, [F(2), F(3)], [])
    refused("invalid_system", combinations_return, [F(2), F(3)], [0])
    refused("invalid_system", combinations_return, [F(2), F(3)], [1, 1])
    refused("system_size_too_large", combinations_return, [F(2), F(3)], [3])


# ==== validation codes ==================================================================


def test_bet_validation_codes():
    two = legs(("2/1", WON), ("3/1", WON))
    three = legs(("2/1", WON), ("3/1", WON), ("4/1", WON))
    # duplicate selection
    dup = (leg("2/1", WON, 0), leg("3/1", WON, 0))
    refused("duplicate_selection", bet, BetType.ACCUMULATOR, dup, 100)
    same_market = (leg("2/1", WON, 0), replace(leg("3/1", WON, 1), market_id="m0"))
    assert settle(bet(BetType.ACCUMULATOR, same_market, 100)).return_minor == 1200  # only the same pair is refused
    # leg counts
    many = legs(*(("1/1", WON),) * 21)
    refused("too_many_legs", bet, BetType.ACCUMULATOR, many, 100)
    assert settle(bet(BetType.ACCUMULATOR, many[:20], 1)).return_minor == 2**20
    refused("too_many_legs", bet, BetType.SYSTEM, many[:17], 1, system_sizes=(2,))
    refused("too_many_legs", bet, BetType.ACCUMULATOR, many[:6], 1, limits=BetLimits(accumulator_legs_max=5))
    refused("too_many_legs", bet, BetType.GOLIATH, many[:8], 1, limits=BetLimits(system_legs_max=7))
    refused("too_few_legs", bet, BetType.ACCUMULATOR, two[:1], 100)
    refused("too_few_legs", bet, BetType.SYSTEM, two[:1], 100, system_sizes=(1,))
    refused("too_few_legs", bet, BetType.SINGLE, (), 100)
    refused("leg_count_mismatch", bet, BetType.SINGLE, two, 100)
    refused("leg_count_mismatch", bet, BetType.YANKEE, three, 100)
    refused("leg_count_mismatch", bet, BetType.TRIXIE, two, 100)
    refused("invalid_leg", bet, BetType.ACCUMULATOR, list(two), 100)
    refused("invalid_leg", bet, BetType.ACCUMULATOR, (two[0], "leg"), 100)
    # system sizes
    refused("system_size_too_large", bet, BetType.SYSTEM, three, 100, system_sizes=(2, 4))
    for sizes in ((), (0,), (2, 2), (True,), (2.0,), [2]):
        refused("invalid_system", bet, BetType.SYSTEM, three, 100, system_sizes=sizes)
    refused("invalid_system", bet, BetType.ACCUMULATOR, three, 100, system_sizes=(2,))
    assert staking(bet(BetType.SYSTEM, three, 100, system_sizes=(3, 1))).lines == 4
    # bet type, convention, currency, each-way flag, limits
    refused("invalid_bet_type", bet, "accumulator", two, 100)
    refused("invalid_stake", bet, BetType.ACCUMULATOR, two, 100, "per_line")
    refused("unknown_currency", bet, BetType.ACCUMULATOR, two, 100, currency="XXX")
    refused("invalid_each_way", bet, BetType.ACCUMULATOR, two, 100, each_way=1)
    refused("invalid_limits", bet, BetType.ACCUMULATOR, two, 100, limits=None)
    for bad_limits in ({"accumulator_legs_max": 1}, {"accumulator_legs_max": 33}, {"system_legs_max": 21},
                       {"system_legs_max": 8.0}, {"decimal_odds_max": F(1)}, {"decimal_odds_max": 100}):
        refused("invalid_limits", BetLimits, **bad_limits)


@pytest.mark.parametrize("stake", [0, -1, 1.5, True, "100", None, AMOUNT_MINOR_CEILING + 1])
def test_stake_must_be_a_positive_integer_within_the_ceiling(stake):
    refused("invalid_stake", bet, BetType.SINGLE, legs(("2/1", WON)), stake)


def test_outlay_within_the_ceiling():
    goliath = legs(*(("1/1", WON),) * 8)
    refused("invalid_stake", bet, BetType.GOLIATH, goliath, AMOUNT_MINOR_CEILING // 247 + 1)
    assert staking(bet(BetType.GOLIATH, goliath, AMOUNT_MINOR_CEILING // 247)).lines == 247


def test_leg_validation_codes():
    ok = {"market_id": "m", "selection_id": "s", "odds": F(2)}
    assert Leg(**ok).result is None
    for field, value in (("market_id", ""), ("market_id", 7), ("selection_id", "x" * 129), ("selection_id", None)):
        refused("invalid_leg", Leg, **{**ok, field: value})
    for value in (2.0, F(1), F(1, 2), 2, Decimal(2), F(odds_mod.DECIMAL_ODDS_CEILING + 1)):
        refused("invalid_odds", Leg, **{**ok, "odds": value})
    # the bet's limits cap the odds (default 10000)
    refused("invalid_odds", bet, BetType.SINGLE, (Leg(**{**ok, "odds": F(10001)}),), 100)
    assert staking(bet(BetType.SINGLE, (Leg(**{**ok, "odds": F(10001)}),), 100, limits=BetLimits(decimal_odds_max=F(20000)))).lines == 1
    # results and dead-heat factors
    refused("invalid_result", Leg, **ok, result="won")
    refused("invalid_result", Leg, **ok, result=WON, dead_heat_factor=F(1, 2))
    refused("invalid_result", Leg, **ok, result=None, dead_heat_factor=F(1, 2))
    for k in (F(0), F(3, 2), F(-1, 2), 0.5, F(1, 10**7)):
        refused("invalid_result", Leg, **ok, result=DEAD_HEAT, dead_heat_factor=k)
    refused("invalid_result", Leg, **ok, result=LOST, place_dead_heat_factor=F(1, 2))
    refused("invalid_result", Leg, **ok, result=None, place_dead_heat_factor=F(1, 2))
    assert Leg(**ok, result=PLACED, place_dead_heat_factor=F(1, 2)).place_dead_heat_factor == F(1, 2)
    # each-way terms
    for terms in (F(0), F(5, 4), 0.25, F(-1, 4)):
        refused("invalid_each_way", Leg, **ok, place_fraction=terms)
    refused("invalid_each_way", bet, BetType.SINGLE, legs(("2/1", WON)), 100, each_way=True)
    refused("invalid_result", bet, BetType.SINGLE, legs(("2.0", HALF_WON, {"place_fraction": F(1, 4)})), 100, each_way=True)
    # Rule 4
    for deductions in ((F(91, 100),), (F(-1, 20),), (0.25,), [F(1, 4)], (F(1, 20),) * 17):
        refused("invalid_rule4", Leg, **ok, rule4_deductions=deductions)
    assert Leg(**ok, rule4_deductions=(F(0), F(9, 10))).rule4 == F(9, 10)


# ==== reference model and property tests ================================================

#: Named full covers as the rules state them: legs, with singles?, lines.
REF_COVERS = {
    BetType.TRIXIE: (3, False, 4), BetType.PATENT: (3, True, 7), BetType.YANKEE: (4, False, 11),
    BetType.LUCKY_15: (4, True, 15), BetType.CANADIAN: (5, False, 26), BetType.SUPER_YANKEE: (5, False, 26),
    BetType.LUCKY_31: (5, True, 31), BetType.HEINZ: (6, False, 57), BetType.LUCKY_63: (6, True, 63),
    BetType.SUPER_HEINZ: (7, False, 120), BetType.GOLIATH: (8, False, 247),
}


def ref_sizes(b: Bet) -> set[int]:
    n = len(b.legs)
    if b.bet_type is BetType.SINGLE:
        return {1}
    if b.bet_type is BetType.ACCUMULATOR:
        return {n}
    if b.bet_type is BetType.SYSTEM:
        return set(b.system_sizes)
    legs_n, singles, _ = REF_COVERS[b.bet_type]
    assert legs_n == n
    return set(range(1 if singles else 2, n + 1))


def ref_factor(x: Leg, part: str, assume_won: bool = False) -> Fraction:
    """The w/v table, written out again: f = w x d + v."""
    result = x.result if x.result is not None else (WON if assume_won else None)
    assert result is not None
    r = min(sum(x.rule4_deductions, F(0)), F(9, 10))
    d = 1 + (x.odds - 1) * (1 - r)
    if part == "place":
        d = 1 + (d - 1) * x.place_fraction
        kp = x.place_dead_heat_factor
        w, v = {WON: (kp, 0), PLACED: (kp, 0), DEAD_HEAT: (kp, 0), VOID: (0, 1), LOST: (0, 0)}[result]
    else:
        w, v = {WON: (1, 0), LOST: (0, 0), PLACED: (0, 0), VOID: (0, 1), HALF_WON: (F(1, 2), F(1, 2)),
                HALF_LOST: (0, F(1, 2)), DEAD_HEAT: (x.dead_heat_factor, 0)}[result]
    return w * d + v


def brute_force(factors: list[Fraction], sizes: set[int]) -> Fraction:
    """Every combination of every size, each an accumulator of unit stake."""
    total = F(0)
    for k in sizes:
        for combo in itertools.combinations(factors, k):
            product = F(1)
            for f in combo:
                product *= f
            total += product
    return total


def ref_return(b: Bet, assume_won: bool = False) -> tuple[Fraction, int]:
    """(exact return in minor units, outlay in minor units) by brute force."""
    sizes = ref_sizes(b)
    lines = sum(len(list(itertools.combinations(range(len(b.legs)), k))) for k in sizes)
    parts = ("win", "place") if b.each_way else ("win",)
    if b.stake_convention is PER_LINE:
        unit, outlay = F(b.stake_minor), b.stake_minor * lines * len(parts)
    else:
        unit, outlay = F(b.stake_minor, lines * len(parts)), b.stake_minor
    per_unit = sum((brute_force([ref_factor(x, p, assume_won) for x in b.legs], sizes) for p in parts), F(0))
    return unit * per_unit, outlay


# Prices up to 21.0 and stakes up to 10**4 keep a Goliath's return below AMOUNT_MINOR_CEILING.
prices = st.builds(lambda a, b: 1 + F(a, b), st.integers(1, 20), st.integers(1, 10))
deductions = st.lists(st.integers(0, 18).map(lambda p: F(5 * p, 100)), max_size=3).map(tuple)
PLACED_RESULTS = (WON, PLACED, DEAD_HEAT)


@st.composite
def random_legs(draw, n: int, each_way: bool, unresolved: bool = False) -> tuple[Leg, ...]:
    choices = [r for r in LegResult if not (each_way and r in (HALF_WON, HALF_LOST))]
    out = []
    for i in range(n):
        result = draw(st.sampled_from(choices + [None] if unresolved else choices))
        out.append(Leg(
            market_id=f"m{i % 3}",
            selection_id=f"s{i}",
            odds=draw(prices),
            result=result,
            dead_heat_factor=draw(st.sampled_from([F(1, 2), F(1, 3), F(2, 3), F(1, 4), F(1)])) if result is DEAD_HEAT else F(1),
            place_fraction=draw(st.sampled_from([F(1, 4), F(1, 5), F(1, 3)])) if each_way else None,
            place_dead_heat_factor=draw(st.sampled_from([F(1, 2), F(1, 3), F(1)])) if result in PLACED_RESULTS else F(1),
            rule4_deductions=draw(deductions),
        ))
    return tuple(out)


@st.composite
def random_bets(draw, unresolved: bool = False, kinds=("single", "accumulator", "system", "named"),
                conventions=(PER_LINE, TOTAL)) -> Bet:
    kind = draw(st.sampled_from(kinds))
    each_way = draw(st.booleans())
    sizes: tuple[int, ...] = ()
    if kind == "single":
        bet_type, n = BetType.SINGLE, 1
    elif kind == "accumulator":
        bet_type, n = BetType.ACCUMULATOR, draw(st.integers(2, 8))
    elif kind == "system":
        bet_type, n = BetType.SYSTEM, draw(st.integers(2, 8))
        sizes = tuple(draw(st.lists(st.integers(1, n), min_size=1, unique=True)))
    else:
        bet_type = draw(st.sampled_from(sorted(REF_COVERS)))
        n = REF_COVERS[bet_type][0]
    the_legs = draw(random_legs(n, each_way, unresolved))
    convention = draw(st.sampled_from(conventions))
    probe = Bet(bet_type=bet_type, legs=the_legs, stake_minor=10**6, currency="GBP", stake_convention=PER_LINE,
                each_way=each_way, system_sizes=sizes)
    floor = staking(probe).bets if convention is TOTAL else 1
    stake = draw(st.integers(floor, 10**4))
    return replace(probe, stake_minor=stake, stake_convention=convention, currency=draw(st.sampled_from(["GBP", "JPY", "KWD"])))


@PROPERTY
@given(st.lists(st.integers(0, 40).flatmap(lambda a: st.integers(1, 12).map(lambda b: F(a, b))), min_size=1, max_size=8),
       st.data())
def test_production_forms_equal_brute_force(factors, data):
    n = len(factors)
    sizes = data.draw(st.lists(st.integers(1, n), min_size=1, unique=True))
    assert combinations_return(factors, sizes) == brute_force(factors, set(sizes))
    e = elementary_symmetric(factors, n)
    assert e == [brute_force(factors, {k}) if k else F(1) for k in range(n + 1)]
    # the two closed forms
    assert combinations_return(factors, range(1, n + 1)) == brute_force(factors, set(range(1, n + 1)))
    if n >= 2:
        assert combinations_return(factors, range(2, n + 1)) == brute_force(factors, set(range(2, n + 1)))


@PROPERTY
@given(random_bets())
def test_settlement_equals_the_reference_model(b):
    exact, outlay = ref_return(b)
    s = settle(b)
    assert s.exact_return_minor == exact
    assert s.return_minor == s.uncapped_minor == math.floor(exact)
    assert s.staking.outlay_minor == outlay
    assert settle(b, rounding="half_even").return_minor == round(exact)
    assert settle(b, rounding="half_up").return_minor == math.floor(exact + F(1, 2))
    cap = max(1, math.floor(exact) // 2)
    capped = settle(b, max_payout_minor=cap)
    assert capped.return_minor == min(math.floor(exact), cap)


@PROPERTY
@given(st.sampled_from(sorted(REF_COVERS)), st.booleans(), st.data())
def test_named_full_covers_equal_their_size_sets(bet_type, each_way, data):
    n, singles, lines = REF_COVERS[bet_type]
    the_legs = data.draw(random_legs(n, each_way))
    named = Bet(bet_type=bet_type, legs=the_legs, stake_minor=100, currency="GBP", stake_convention=PER_LINE, each_way=each_way)
    sizes = tuple(range(1 if singles else 2, n + 1))
    system = replace(named, bet_type=BetType.SYSTEM, system_sizes=sizes)
    assert staking(named) == staking(system) and staking(named).lines == lines
    assert settle(named) == settle(system)
    assert exact_return_minor(named) == ref_return(named)[0]


@PROPERTY
@given(random_bets(), st.data())
def test_a_lost_leg_turning_won_never_lowers_the_return(b, data):
    i = data.draw(st.integers(0, len(b.legs) - 1))
    lost = replace(b, legs=tuple(replace(x, result=LOST, dead_heat_factor=F(1), place_dead_heat_factor=F(1)) if j == i else x
                                 for j, x in enumerate(b.legs)))
    won = replace(lost, legs=tuple(replace(x, result=WON) if j == i else x for j, x in enumerate(lost.legs)))
    assert settle(won).exact_return_minor >= settle(lost).exact_return_minor
    assert settle(won).return_minor >= settle(lost).return_minor


@PROPERTY
@given(random_bets())
def test_all_void_returns_exactly_the_outlay(b):
    void = replace(b, legs=tuple(Leg(market_id=x.market_id, selection_id=x.selection_id, odds=x.odds, result=VOID,
                                     place_fraction=x.place_fraction, rule4_deductions=x.rule4_deductions) for x in b.legs))
    s = settle(void)
    assert s.exact_return_minor == s.staking.outlay_minor == s.return_minor
    if void.stake_convention is PER_LINE:
        assert s.return_minor == void.stake_minor * s.staking.bets
    else:
        assert s.return_minor == void.stake_minor


@PROPERTY
@given(random_bets(unresolved=True), st.data())
def test_potential_return_is_the_most_the_bet_can_return(b, data):
    p = potential_return(b)
    assert p.exact_return_minor == ref_return(b, assume_won=True)[0]
    if any(x.result is None for x in b.legs):
        refused("legs_unresolved", settle, b)
    choices = [r for r in LegResult if r is not DEAD_HEAT and not (b.each_way and r in (HALF_WON, HALF_LOST))]
    resolved = replace(b, legs=tuple(x if x.result is not None else replace(x, result=data.draw(st.sampled_from(choices)))
                                     for x in b.legs))
    s = settle(resolved)
    assert s.exact_return_minor <= p.exact_return_minor and s.return_minor <= p.return_minor


@PROPERTY
@given(st.integers(0, 10**12), st.integers(1, 10**6))
def test_rounding_helper_directions(num, den):
    value = F(num, den)
    down, half_up, half_even = (round_return_minor(value, m) for m in ("down", "half_up", "half_even"))
    assert down <= value < down + 1 and down == math.floor(value)
    assert abs(half_up - value) <= F(1, 2) and abs(half_even - value) <= F(1, 2)
    assert half_up == math.floor(value + F(1, 2))
    assert half_even == round(value)  # Fraction.__round__ rounds ties to even
