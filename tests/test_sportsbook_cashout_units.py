"""Pure parts of the sportsbook's batch integration: cash-out decisions
(gateway/sportsbook/cashout.py), the sweeper's reading of a fence's answer
(gateway/sportsbook/sweeper.py), and how a batch folds bet slips and marks
(gateway/shards/batch.py). A hypothesis test checks that a partial cash-out never changes
what the bet can pay in all: cash paid + continuation's potential <= the bet's potential."""

from __future__ import annotations

from fractions import Fraction

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.shards.batch import Batch, Item
from gateway.shards.commands import Atomic, BetMark, BetSlip, Code, Credit, Debit, Result
from gateway.shards.rows import TxnRow
from gateway.sportsbook.cashout import continuation_id, plan_cashout
from gateway.sportsbook.markets import SportsbookRefused
from gateway.sportsbook.odds import parse_odds, to_storage
from gateway.sportsbook.store import BetTerms, StoredBet, StoredLeg
from gateway.sportsbook.sweeper import Verdict, decide


def stored(odds: list[str], *, stake: int = 1_000, bet_type: str = "single", potential: int | None = None) -> StoredBet:
    legs = tuple(StoredLeg(f"m{i}", "sel", to_storage(parse_odds(o))) for i, o in enumerate(odds))
    terms = BetTerms("p1", "GBP", bet_type, stake, "per_line", False, (), "reject",
                     tuple((leg.market_id, "sel", "decimal", o) for leg, o in zip(legs, odds, strict=True)))
    product = Fraction(stake)
    for o in odds:
        product *= Fraction(o)
    return StoredBet("demo", "bet-1", terms, legs, 1, stake, potential if potential is not None else int(product),
                     "open", None, None)


def cash_out(bet: StoredBet, amount: int, stake: int | None, partial: bool = True):
    return plan_cashout(bet, amount, stake, partial_allowed=partial, payout_max_minor=10**12, rounding="down")


def refusal(fn) -> str:
    with pytest.raises(SportsbookRefused) as info:
        fn()
    return info.value.code


def test_continuation_ids_count_up():
    assert continuation_id("abc") == "abc~1"
    assert continuation_id("abc~1") == "abc~2"
    assert continuation_id("abc~9") == "abc~10"
    assert continuation_id("a~b") == "a~b~1"
    assert continuation_id("~1") == "~1~1"  # nothing before the marker: a new base


def test_full_cash_out_pays_the_quote():
    plan = cash_out(stored(["4.00"]), 1_500, None)
    assert (plan.payout_minor, plan.cash_minor, plan.continuation) == (1_500, 1_500, None)
    assert cash_out(stored(["4.00"]), 1_500, 1_000).continuation is None  # the whole outlay is full
    assert refusal(lambda: cash_out(stored(["4.00"]), 4_001, None)) == "invalid_amount"


def test_partial_cash_out_carries_the_rest_on():
    plan = cash_out(stored(["4.00"]), 700, 400)
    assert (plan.payout_minor, plan.cash_minor) == (1_300, 700)
    cont = plan.continuation
    assert cont is not None and cont.bet_id == "bet-1~1"
    assert (cont.outlay_minor, cont.potential_return_minor, cont.terms.stake_convention) == (600, 2_400, "total")
    assert refusal(lambda: cash_out(stored(["4.00"]), 1_601, 400)) == "invalid_amount"  # 400 x 4.00 at most
    assert refusal(lambda: cash_out(stored(["4.00"]), 1, 1_001)) == "invalid_stake"
    assert refusal(lambda: cash_out(stored(["4.00"]), 1, 400, partial=False)) == "cashout_unavailable"


def test_partial_cash_out_of_a_long_id_is_refused():
    bet = stored(["2.00"])
    long = StoredBet(bet.partner_id, "x" * 127, bet.terms, bet.legs, bet.lines, bet.outlay_minor,
                     bet.potential_return_minor, "open", None, None)
    assert refusal(lambda: cash_out(long, 1, 100)) == "cashout_unavailable"


@settings(max_examples=200, deadline=None)
@given(odds=st.lists(st.sampled_from(["1.10", "1.50", "2.00", "2.75", "3.00", "11.00"]), min_size=1, max_size=4),
       stake=st.integers(min_value=2, max_value=100_000), part=st.data())
def test_partial_cash_out_never_adds_potential(odds, stake, part):
    bet = stored(odds, stake=stake, bet_type="single" if len(odds) == 1 else "accumulator")
    cashed = part.draw(st.integers(min_value=1, max_value=stake - 1))
    share_max = bet.potential_return_minor * cashed // stake
    amount = part.draw(st.integers(min_value=0, max_value=share_max))
    plan = cash_out(bet, amount, cashed)
    assert plan.continuation is not None
    assert plan.payout_minor - plan.cash_minor == plan.continuation.outlay_minor == stake - cashed
    assert plan.cash_minor + plan.continuation.potential_return_minor <= bet.potential_return_minor


def test_sweeper_reads_a_fence_answer():
    ok = Code.OK
    assert decide("b", None) is Verdict.RETRY
    assert decide("b", Result(code=ok, transaction_id="b:fence", tombstoned=True)) is Verdict.CANCEL
    assert decide("b", Result(code=ok, transaction_id="b", replayed=True, tombstoned=True)) is Verdict.CANCEL
    assert decide("b", Result(code=ok, transaction_id="b", replayed=True)) is Verdict.KEEP
    assert decide("b", Result(code=Code.INSUFFICIENT_FUNDS, transaction_id="b", replayed=True)) is Verdict.CANCEL
    assert decide("b", Result(code=ok, transaction_id="b:fence", replayed=True)) is Verdict.CANCEL
    assert decide("b", Result(code=Code.UNKNOWN_PLAYER)) is Verdict.ABANDON
    assert decide("b", Result(code=Code.CURRENCY_MISMATCH)) is Verdict.RETRY


# ---- the batch's sportsbook rows ---------------------------------------------------------------

SCOPE = "demo:sportsbook"
SLIP = BetSlip("single", "{}", "[]", 1, 200, ("m",), ("sel",))


def txn(transaction_id: str) -> TxnRow:
    return TxnRow(1, SCOPE, transaction_id, "debit", "demo", "p1", "GBP", 100, "ok", 0, 0, 0, 0, None, None, None,
                  None, None, 0)


def debit(bet_id: str) -> Debit:
    return Debit(SCOPE, bet_id, "demo", "p1", "GBP", 100, bet_id, "sportsbook", slip=SLIP)


def credit(bet_id: str, txn_id: str, state: str, froms: tuple[str, ...]) -> Credit:
    return Credit(SCOPE, txn_id, "demo", "p1", "GBP", 100, bet_id, "sportsbook",
                  mark=BetMark(bet_id, state, 100, "r1", txn_id, from_states=froms))


def item(command, result: Result, txn_ids: list[str]) -> Item:
    return Item(command, None, result, ("demo", "p1"), 5, True, txn_rows=[txn(t) for t in txn_ids])


def test_a_batch_stores_slips_and_marks_of_first_applications_only():
    batch = Batch(1, [
        item(debit("b1"), Result(code=Code.OK, transaction_id="b1"), ["b1"]),
        item(debit("b2"), Result(code=Code.OK, transaction_id="b2", replayed=True), ["x"]),  # a replay
        item(debit("b3"), Result(code=Code.INSUFFICIENT_FUNDS, transaction_id="b3"), ["b3"]),  # a stored refusal
        item(credit("b4", "b4:payout", "settled", ("open",)), Result(code=Code.OK), ["b4:payout"]),
    ])
    write = batch.write(10)
    assert [s.bet_id for s in write.bet_slips] == ["b1"]
    assert write.bet_slips[0].outlay_minor == 100 and write.bet_slips[0].slip == SLIP
    assert list(write.bet_marks) == [("demo", "b4")]


def test_a_bet_marked_twice_in_a_batch_keeps_its_first_from_states():
    batch = Batch(1, [
        item(credit("b1", "b1:payout", "settled", ("open",)), Result(code=Code.OK), ["b1:payout"]),
        item(credit("b1", "b1:payout:r2", "settled", ("settled",)), Result(code=Code.OK), ["b1:payout:r2"]),
    ])
    (mark,) = batch.write(10).bet_marks.values()
    assert mark.mark.payout_txn == "b1:payout:r2" and mark.mark.from_states == ("open",)


def test_an_atomic_cash_out_stores_the_mark_and_the_continuation():
    unit = Atomic(SCOPE, "demo", "p1", (credit("b1", "b1:payout", "cashed_out", ("open",)), debit("b1~1")))
    results = (Result(code=Code.OK), Result(code=Code.OK))
    write = Batch(1, [item(unit, Result(code=Code.OK, results=results), ["b1:payout", "b1~1"])]).write(10)
    assert [s.bet_id for s in write.bet_slips] == ["b1~1"] and list(write.bet_marks) == [("demo", "b1")]
    replayed = (Result(code=Code.OK, replayed=True), Result(code=Code.OK, replayed=True))
    again = Batch(2, [item(unit, Result(code=Code.OK, replayed=True, results=replayed), ["z"])]).write(10)
    assert not again.bet_slips and not again.bet_marks
    assert msgspec.json.decode(msgspec.json.encode(unit), type=Atomic) == unit  # travels the channel whole


# ---- the settlement memo -----------------------------------------------------------------------

OUTCOMES = ["won", "lost", "void", "half_won", "half_lost", "dead_heat"]


@settings(max_examples=300, deadline=None)
@given(odds=st.lists(st.sampled_from(["1.10", "1.50", "2.00", "2.75", "3.00", "11.00"]), min_size=1, max_size=4),
       outcomes=st.lists(st.sampled_from(OUTCOMES + [None]), min_size=4, max_size=4),
       stakes=st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=5),
       rounding=st.sampled_from(["down", "half_up", "half_even"]))
def test_the_memo_settles_like_settle_stored(odds, outcomes, stakes, rounding):
    """Bets of one shape share the memo's per-stake return; each one's payout is still what
    the pure module gives for it alone."""
    from gateway.sportsbook.resolve import SettlementMemo, settle_stored
    from gateway.sportsbook.wire import LegResultBody

    found = {}
    for i, outcome in enumerate(outcomes[:len(odds)]):
        if outcome is not None:
            found[(f"m{i}", "sel")] = LegResultBody("sel", outcome, dead_heat_factor="1/3" if outcome == "dead_heat" else None)
    memo = SettlementMemo(size_max=2)
    for stake in stakes:
        bet = stored(odds, stake=stake, bet_type="single" if len(odds) == 1 else "accumulator")
        expected = settle_stored(bet, found, rounding=rounding, payout_max_minor=10**15)
        got = memo.return_minor(bet, found, rounding=rounding, payout_max_minor=10**15)
        assert got == (None if expected is None else expected.return_minor)
