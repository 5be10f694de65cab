"""Responsible gaming, the pure rules (gateway/shards/responsible.py) and their apply() use.

- Limit changes (RTS 12): a first limit or a decrease at once, an increase or removal after
  the cooling-off, a second increase restarts it.
- Exclusions (RTS 14): never shortened, no early return, the return cooling-off.
- Windows: the running sums equal a plain re-count over the buckets (hypothesis, against a
  reference model that keeps every event), rolling and calendar, with rollbacks.
- apply(): a stake exactly at a limit passes, one minor unit over is refused with the code;
  several periods at once (the lowest applies); wins and rollbacks are never refused; an
  Atomic unit that is undone uncounts its stakes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ShardSettings
from gateway.shards import responsible as rg
from gateway.shards.apply import apply
from gateway.shards.commands import (
    Atomic,
    Code,
    CreatePlayer,
    Credit,
    Debit,
    Deposit,
    GetResponsible,
    Rollback,
    SetExclusion,
    SetLimits,
    SetPlayerStatus,
)
from gateway.shards.state import ShardState

HOUR = rg.HOUR_US
DAY = rg.DAY_US
T0 = 1_780_000_000_000_000  # 2026-05-28, a Thursday
POLICY = rg.RgPolicy()
SCOPE = "p1:api"


def change(kind: str, period: str, amount: int | None, currency: str = "EUR") -> rg.LimitChange:
    return rg.LimitChange(kind, period, currency, amount)


# ---- limit changes ---------------------------------------------------------------------


def test_first_limit_and_decrease_apply_at_once_increase_waits():
    s, at = rg.change_limit(rg.RgSettings(), change("deposit", "day", 1_000), POLICY, T0, "k")
    assert at == T0 and s.limits[0].in_force(T0) == 1_000
    s, at = rg.change_limit(s, change("deposit", "day", 500), POLICY, T0 + 1, "k")
    assert at == T0 + 1 and s.limits[0].in_force(T0 + 1) == 500
    s, at = rg.change_limit(s, change("deposit", "day", 2_000), POLICY, T0 + 2, "k")
    assert at == T0 + 2 + DAY
    assert s.limits[0].in_force(T0 + 2 + DAY - 1) == 500  # one microsecond before the cooling-off ends
    assert s.limits[0].in_force(T0 + 2 + DAY) == 2_000
    assert rg.settle_due(s, T0 + 2 + DAY).limits[0] == rg.Limit("deposit", "day", "EUR", 2_000, set_by="k",
                                                                 set_at_us=T0 + 2)


def test_second_increase_restarts_the_cooling_off_and_a_decrease_cancels_it():
    s, _ = rg.change_limit(rg.RgSettings(), change("loss", "week", 100), POLICY, T0, "k")
    s, _ = rg.change_limit(s, change("loss", "week", 200), POLICY, T0 + HOUR, "k")
    s, at = rg.change_limit(s, change("loss", "week", 300), POLICY, T0 + 2 * HOUR, "k")
    assert at == T0 + 2 * HOUR + DAY and s.limits[0].in_force(T0 + HOUR + DAY) == 100
    s, at = rg.change_limit(s, change("loss", "week", 50), POLICY, T0 + 3 * HOUR, "k")
    assert at == T0 + 3 * HOUR and not s.limits[0].pending and s.limits[0].in_force(T0 + 10 * DAY) == 50


def test_removal_waits_then_the_limit_is_gone():
    s, _ = rg.change_limit(rg.RgSettings(), change("wager", "month", 100), POLICY, T0, "k")
    s, at = rg.change_limit(s, change("wager", "month", None), POLICY, T0, "k")
    assert at == T0 + DAY and s.limits[0].in_force(T0 + DAY - 1) == 100 and s.limits[0].in_force(T0 + DAY) is None
    assert rg.settle_due(s, T0 + DAY).limits == ()
    assert not rg.settle_due(s, T0 + DAY).has_money_limits()


def test_bad_kind_period_or_amount_is_refused():
    for bad in (change("bonus", "day", 1), change("loss", "year", 1), change("loss", "day", 0)):
        with pytest.raises(rg.RgRefused):
            rg.change_limit(rg.RgSettings(), bad, POLICY, T0, "k")


# ---- exclusions ------------------------------------------------------------------------


def test_timeout_ends_by_itself_and_is_never_shortened():
    s = rg.set_exclusion(rg.RgSettings(), "timeout", 7, POLICY, T0, "k")
    s = rg.set_exclusion(s, "timeout", 1, POLICY, T0 + HOUR, "k")  # shorter: the longer end stands
    assert s.exclusion is not None and s.exclusion.ends_at_us == T0 + 7 * DAY
    assert rg.exclusion_blocks(s.exclusion, T0 + 7 * DAY - 1)
    assert not rg.exclusion_blocks(s.exclusion, T0 + 7 * DAY)
    with pytest.raises(rg.RgRefused):
        rg.set_exclusion(rg.RgSettings(), "timeout", 3, POLICY, T0, "k")  # not a period offered


def test_self_exclusion_needs_a_return_request_and_its_cooling_off():
    s = rg.set_exclusion(rg.RgSettings(), "self_exclusion", 183, POLICY, T0, "k")
    end = T0 + 183 * DAY
    with pytest.raises(rg.RgRefused) as early:
        rg.set_exclusion(s, "return", None, POLICY, end - 1, "k")
    assert early.value.code == "player_excluded"
    assert rg.exclusion_blocks(s.exclusion, end + 400 * DAY)  # ended, but closed until asked
    back = rg.set_exclusion(s, "return", None, POLICY, end + DAY, "k")
    assert back.exclusion is not None and back.exclusion.play_from_us == end + 2 * DAY
    assert rg.exclusion_blocks(back.exclusion, end + 2 * DAY - 1)
    assert not rg.exclusion_blocks(back.exclusion, end + 2 * DAY)


def test_a_timeout_inside_a_self_exclusion_keeps_it_a_self_exclusion():
    s = rg.set_exclusion(rg.RgSettings(), "self_exclusion", None, POLICY, T0, "k")
    s = rg.set_exclusion(s, "timeout", 1, POLICY, T0 + DAY, "k")
    assert s.exclusion is not None and s.exclusion.kind == "self_exclusion" and s.exclusion.ends_at_us is None


# ---- windows ---------------------------------------------------------------------------


def reference_sums(events, now_us, policy, zone, mode):
    """A plain re-count: every event kept, each window's rule applied literally."""
    width = policy.bucket_us
    if mode == "calendar":
        cuts = rg.calendar_starts(zone, now_us)[0]
        inside = [lambda start, c=c: start >= c for c in cuts]
    else:
        lengths = (DAY, 7 * DAY, policy.month_rolling_days * DAY)
        inside = [lambda start, n=n: start + width > now_us - n for n in lengths]
    out = []
    for test in inside:
        d = w = won = 0
        for at, dep, wag, wn in events:
            if test(at - at % width):
                d += dep
                w += wag
                won += wn
        out.append((d, w, won))
    return tuple(out)


events_strategy = st.lists(
    st.tuples(st.integers(0, 3 * HOUR), st.sampled_from(["deposit", "wager", "won", "undo"]), st.integers(1, 10_000)),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(events_strategy, st.sampled_from(["rolling", "calendar"]), st.sampled_from(["UTC", "Europe/London", "Asia/Kathmandu"]),
       st.integers(1, 40))
def test_running_window_sums_equal_a_recount(steps, mode, zone, spacing_hours):
    policy = rg.RgPolicy(window=mode)
    usage = rg.Usage(policy, zone)
    now = T0
    kept: list[tuple[int, int, int, int]] = []
    for gap, what, amount in steps:
        now += gap * spacing_hours // 3
        if what == "undo":
            if not kept:
                continue
            at, dep, wag, won = kept.pop(len(kept) // 2)
            usage.remove("EUR", at, dep, wag, won)
        else:
            entry = (now, amount if what == "deposit" else 0, amount if what == "wager" else 0, amount if what == "won" else 0)
            usage.add("EUR", now, *entry[1:])
            kept.append(entry)
        assert usage.sums("EUR", now) == reference_sums(kept, now, policy, zone, mode)


def test_rolling_window_counts_an_amount_at_least_its_length_and_at_most_one_bucket_more():
    usage = rg.Usage(POLICY)
    usage.add("EUR", T0, wager=100)
    assert usage.sums("EUR", T0 + DAY)[0][1] == 100
    assert usage.sums("EUR", T0 + DAY + POLICY.bucket_us)[0][1] == 0
    assert usage.sums("EUR", T0 + DAY + POLICY.bucket_us)[1][1] == 100  # still in the 7 days


def test_calendar_day_starts_at_local_midnight():
    london = rg.Usage(rg.RgPolicy(window="calendar"), "Europe/London")
    summer_2330_utc = int(datetime(2026, 7, 1, 23, 30, tzinfo=UTC).timestamp()) * 1_000_000  # 00:30 BST on 2 July
    london.add("EUR", summer_2330_utc - 2 * HOUR, deposit=5)  # 22:30 BST, 1 July
    assert london.sums("EUR", summer_2330_utc)[0][0] == 0  # a new local day
    assert london.sums("EUR", summer_2330_utc)[2][0] == 5  # same month


# ---- apply -----------------------------------------------------------------------------


def new_state(**policy) -> ShardState:
    state = ShardState(shard_id=1, limits=ShardSettings(), rg=rg.Policies(rg.RgPolicy(**policy)))
    state.players[("p1", "u1")] = None
    apply(state, CreatePlayer(SCOPE, "p1", "u1", ("EUR",), "MT"), T0)
    state.players[("p1", "u1")].usage = rg.Usage(state.rg.default)  # as the prefetch leaves it
    apply(state, Deposit(SCOPE, "d0", "p1", "u1", "EUR", 100_000), T0)
    return state


def limits(state, now, *changes):
    return apply(state, SetLimits(SCOPE, "p1", "u1", tuple(changes), requested_by="k"), now)


def bet(state, txn, amount, now):
    return apply(state, Debit(SCOPE, txn, "p1", "u1", "EUR", amount, "r", "g"), now)


def test_a_stake_exactly_at_the_limit_passes_one_unit_over_is_refused_and_stored():
    state = new_state()
    assert limits(state, T0, change("wager", "day", 1_000)).result.code is Code.OK
    assert bet(state, "b1", 600, T0 + 1).result.code is Code.OK
    over = bet(state, "b2", 401, T0 + 2)
    assert over.result.code is Code.WAGER_LIMIT_REACHED and "leaves 400" in (over.result.detail or "")
    assert over.txns and over.txns[0].code == "wager_limit_reached"  # stored: a retry gets the same
    assert bet(state, "b2", 401, T0 + 3).result.replayed
    assert bet(state, "b3", 400, T0 + 4).result.code is Code.OK  # exactly at the limit


def test_the_lowest_of_several_periods_applies_and_wins_lower_a_loss():
    state = new_state()
    limits(state, T0, change("loss", "day", 1_000), change("loss", "week", 1_500))
    assert bet(state, "b1", 1_000, T0).result.code is Code.OK
    assert bet(state, "b2", 1, T0).result.code is Code.LOSS_LIMIT_REACHED
    win = apply(state, Credit(SCOPE, "w1", "p1", "u1", "EUR", 800, "r", "g", bet_transaction_id="b1"), T0)
    assert win.result.code is Code.OK  # wins are never refused
    assert bet(state, "b3", 800, T0).result.code is Code.OK  # loss 200 + 800 = 1000 a day
    # next day: the daily window is empty again, the weekly one holds a loss of 1000: 500 left
    assert bet(state, "b4", 501, T0 + DAY + POLICY.bucket_us).result.code is Code.LOSS_LIMIT_REACHED
    assert bet(state, "b5", 500, T0 + DAY + POLICY.bucket_us).result.code is Code.OK


def test_a_rolled_back_stake_no_longer_counts_and_rollbacks_are_never_refused():
    state = new_state()
    limits(state, T0, change("wager", "day", 100))
    assert bet(state, "b1", 100, T0).result.code is Code.OK
    rollback = apply(state, Rollback(SCOPE, "rb1", "p1", "u1", "b1"), T0 + 5)
    assert rollback.result.code is Code.OK
    assert bet(state, "b2", 100, T0 + 6).result.code is Code.OK


def test_deposit_limit_and_exclusion_refuse_deposits_but_not_bonus_grants():
    state = new_state()
    limits(state, T0 + 1, change("deposit", "day", 100))  # the first deposit (100000) came before it
    assert apply(state, Deposit(SCOPE, "d1", "p1", "u1", "EUR", 1), T0 + 2).result.code is Code.DEPOSIT_LIMIT_REACHED
    fresh = new_state()
    limits(fresh, T0 + DAY + POLICY.bucket_us, change("deposit", "day", 100))
    later = T0 + DAY + POLICY.bucket_us
    assert apply(fresh, Deposit(SCOPE, "d1", "p1", "u1", "EUR", 100), later).result.code is Code.OK
    assert apply(fresh, Deposit(SCOPE, "d2", "p1", "u1", "EUR", 1), later).result.code is Code.DEPOSIT_LIMIT_REACHED
    assert apply(fresh, Deposit(SCOPE, "d3", "p1", "u1", "EUR", 50, bonus=True), later).result.code is Code.OK
    apply(fresh, SetExclusion(SCOPE, "p1", "u1", "timeout", 1), later)
    assert apply(fresh, Deposit(SCOPE, "d4", "p1", "u1", "EUR", 1), later).result.code is Code.PLAYER_EXCLUDED


def test_excluded_player_bets_are_refused_wins_paid_and_the_status_cannot_lift_it():
    state = new_state()
    assert bet(state, "b1", 100, T0).result.code is Code.OK
    applied = apply(state, SetExclusion(SCOPE, "p1", "u1", "self_exclusion", 183, requested_by="k"), T0 + 1)
    assert applied.result.code is Code.OK and applied.rg_change is not None
    assert bet(state, "b2", 100, T0 + 2).result.code is Code.PLAYER_EXCLUDED
    win = apply(state, Credit(SCOPE, "w1", "p1", "u1", "EUR", 50, "r", "g", bet_transaction_id="b1"), T0 + 3)
    assert win.result.code is Code.OK
    lift = apply(state, SetPlayerStatus(SCOPE, "p1", "u1", "active"), T0 + 4)
    assert lift.result.code is Code.PLAYER_EXCLUDED
    view = apply(state, GetResponsible("p1", "u1"), T0 + 5)
    assert view.result.rg is not None and view.result.rg.exclusion is not None


def test_an_undone_unit_uncounts_its_stakes():
    state = new_state()
    limits(state, T0, change("wager", "day", 1_000))
    unit = Atomic(SCOPE, "p1", "u1", (
        Debit(SCOPE, "a1", "p1", "u1", "EUR", 700, "r", "g"),
        Debit(SCOPE, "a2", "p1", "u1", "EUR", 400, "r", "g"),  # over: the unit is undone
    ))
    assert apply(state, unit, T0).result.code is Code.WAGER_LIMIT_REACHED
    assert bet(state, "b1", 1_000, T0).result.code is Code.OK  # the 700 was uncounted


def test_an_increase_applies_only_after_the_cooling_off():
    state = new_state()
    limits(state, T0, change("wager", "day", 100))
    assert bet(state, "b1", 100, T0).result.code is Code.OK
    raised = limits(state, T0 + 1, change("wager", "day", 1_000))
    assert raised.result.effective_at_us == (T0 + 1 + DAY,)
    assert bet(state, "b2", 1, T0 + 2).result.code is Code.WAGER_LIMIT_REACHED
    later = T0 + DAY + POLICY.bucket_us  # the 100 has left the day's window (rolling, whole buckets)
    assert bet(state, "b3", 1_000, later).result.code is Code.OK  # only the raised limit allows it


def test_session_time_limit_counts_from_the_session_start():
    s, _ = rg.change_limit(rg.RgSettings(), rg.LimitChange(*rg.SESSION_LIMIT, "", 600), POLICY, T0, "k")
    assert rg.session_refusal(s, T0, T0 + 599_999_999) is None
    assert rg.session_refusal(s, T0, T0 + 600_000_000)[0] == "session_time_limit_reached"
    assert rg.session_refusal(s, None, T0 + DAY) is None  # no game session (the operator's own API)
    assert not s.has_money_limits()
    state = new_state()
    limits(state, T0, rg.LimitChange(*rg.SESSION_LIMIT, "", 600))
    late = apply(state, Debit(SCOPE, "b1", "p1", "u1", "EUR", 1, "r", "g", session_started_us=T0 - 600_000_000), T0)
    assert late.result.code is Code.SESSION_TIME_LIMIT_REACHED
