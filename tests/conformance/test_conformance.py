"""The provider conformance suite: each wallet scenario written once, run against every adapter.

Sources: each adapter's gateway/providers/<name>/README.md ("Protocol facts", "Common
ground") and
docs/DESIGN.md section 5 (idempotency). Every test is parametrised over
``drivers.NAMES`` (test ids = provider names) through the ``driver`` fixture, which imports
the provider's driver lazily: a driver that does not exist yet fails only its own ids.

Each scenario checks three things:

(a) the protocol's answer: ``Answer.status`` is in ``driver.expect[situation]`` -- the table
    each driver writes from its adapter's "Protocol facts", independently of the adapter's own status table
    (``driver.expected``: a situation added later falls back to the rows ``FALLBACKS``
    names when a driver has none);
(b) the wallet truth, read through the generic API (``GET /v1/players/{id}/balance``, cash +
    bonus): no second deduction, an unchanged balance on every refusal, and a balance
    reported in an answer equal to the real one;
(c) where useful, the ledger rows (``transactions``, by ``(scope, transaction_id)``, scope "demo:" +
    the provider name) and the audit log (every refused request leaves an audit record).

Drivers whose wins name only a round (``wins_reference_bets = False``: Pragmatic ``result``,
SoftSwiss ``win``) run the bet-naming scenarios too: their ``expect`` row says what the
protocol answers, and the money assertions follow that answer (an OK moved the money, a
refusal moved nothing). Nothing is skipped.

Amounts are EUR minor units (cents) unless said otherwise; every player starts with
``DEPOSIT`` cents.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conformance import drivers
from tests.conformance.driver import (
    FALLBACKS,
    SITUATIONS,
    Answer,
    Driver,
    Seat,
    expected,
)
from tests.conftest import new_id, new_player
from tests.helpers import cash, expire, sandbox_scope

DEPOSIT = 10_000  # EUR 100.00
CURRENCY = "EUR"
OTHER_CURRENCY = "USD"  # a currency the conformance players do not hold

#: Situations that are always refusals: their statuses must not be the protocol's OK. No
#: win is ever paid on a round whose bet was rolled back or refunded (every provider's
#: certification).
REFUSALS = ("duplicate", "insufficient_funds", "rollback_after_win", "bet_after_rollback",
            "bet_token_expired", "bet_blocked", "wrong_currency", "bad_signature", "win_after_rollback")
#: Refusals unless the protocol makes the wallet accept a win with no bet
#: (``driver.accepts_orphan_wins``; the win is then an operator-review item).
ORPHAN_WIN_REFUSALS = ("win_unknown_bet",)


@pytest.fixture(params=drivers.NAMES, ids=drivers.NAMES)
def driver(request) -> Driver:
    """The provider's conformance driver, imported only now (so a missing one fails alone)."""
    return drivers.load(request.param)


# ---- the wallet truth -------------------------------------------------------------------


async def sql(gateway, query: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(gateway.database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def txn_rows(gateway, integration: str, transaction_id: str) -> list[dict[str, Any]]:
    """The ``transactions`` rows stored under the key (the sandbox ``integration``'s scope,
    ``"demo:<integration>"``, transaction_id)."""
    scope = sandbox_scope(integration)
    rows = await sql(gateway, "SELECT kind, player_id, amount_minor, code, bet_state, "
                              "cash_delta_minor + bonus_delta_minor AS delta_minor "
                              "FROM transactions WHERE scope = $1 AND transaction_id = $2",
                     scope, transaction_id)
    return [dict(r) for r in rows]


async def audit_count(gateway) -> int:
    return (await sql(gateway, "SELECT count(*) AS n FROM audit_log"))[0]["n"]


def check(driver: Driver, situation: str, answer: Answer) -> Answer:
    """(a): the answer's status is one the protocol must give in ``situation``."""
    allowed = expected(driver, situation)
    assert answer.status in allowed, (
        f"{driver.name}: {situation} ({SITUATIONS[situation]}): answered {answer.status!r} "
        f"(HTTP {answer.http_status}), expected one of {sorted(allowed)}; body: {answer.body!r}")
    return answer


def is_ok(driver: Driver, answer: Answer) -> bool:
    return answer.status in expected(driver, "ok")


async def check_balance(client: httpx.AsyncClient, seat: Seat, expected_minor: int,
                        *answers: Answer) -> None:
    """(b): the real balance is ``expected_minor``; any balance an answer reports equals it."""
    real = await cash(client, seat.player_id, seat.currency)
    assert real == expected_minor, f"real balance {real}, expected {expected_minor}"
    for answer in answers:
        if answer.balance_minor is not None:
            assert answer.balance_minor == real, (
                f"answer reports balance {answer.balance_minor}, the wallet holds {real}: {answer.body!r}")


async def review_reasons(gateway, driver: Driver, txn_id: str | None, *, player_id: str | None = None) -> list[str]:
    """The operator-review items of the transaction stored under ``txn_id`` (or of the
    player), in the provider's sandbox scope."""
    conn = await asyncpg.connect(gateway.database_url)
    try:
        if txn_id is not None:
            rows = await conn.fetch(
                """SELECT v.reason FROM operator_reviews v JOIN transactions t USING (txn_id)
                   WHERE t.scope = $1 AND t.transaction_id = $2""", sandbox_scope(driver.name), txn_id)
        else:
            rows = await conn.fetch("SELECT reason FROM operator_reviews WHERE scope = $1 AND player_id = $2",
                                    sandbox_scope(driver.name), player_id)
    finally:
        await conn.close()
    return [r["reason"] for r in rows]


async def check_not_debited(gateway, driver: Driver, txn_id: str) -> None:
    """(c): no accepted money movement is stored under the bet's key."""
    rows = await txn_rows(gateway, driver.name, txn_id)
    moved = [r for r in rows if r["code"] == "ok" and (r["kind"] == "debit" or r["delta_minor"])]
    assert not moved, f"{driver.name}: {txn_id} moved money: {rows}"


@dataclass
class Game:
    """One player at one provider: the driver, its seat and the generic-API client."""

    driver: Driver
    client: httpx.AsyncClient
    seat: Seat

    async def bet(self, amount_minor: int, *, round_id: str, txn_id: str | None = None,
                  currency: str | None = None, seat: Seat | None = None) -> tuple[str, Answer]:
        txn_id = txn_id or new_id("bet")
        answer = await self.driver.bet(self.client, seat or self.seat, txn_id=txn_id,
                                       round_id=round_id, amount_minor=amount_minor,
                                       currency=currency)
        return txn_id, answer

    async def win(self, amount_minor: int, *, bet_txn_id: str, round_id: str,
                  round_closed: bool = False, seat: Seat | None = None, txn_id: str | None = None) -> Answer:
        return await self.driver.win(self.client, seat or self.seat, txn_id=txn_id or new_id("win"),
                                     round_id=round_id, amount_minor=amount_minor,
                                     bet_txn_id=bet_txn_id, round_closed=round_closed)

    async def rollback(self, bet_txn_id: str, *, round_id: str, amount_minor: int) -> Answer:
        return await self.driver.rollback(self.client, self.seat, txn_id=new_id("rb"),
                                          bet_txn_id=bet_txn_id, round_id=round_id,
                                          amount_minor=amount_minor)

    async def balance_is(self, expected_minor: int, *answers: Answer) -> None:
        await check_balance(self.client, self.seat, expected_minor, *answers)


async def open_seat(client: httpx.AsyncClient, driver: Driver, player_id: str,
                    game_id: str = "conformance_slot_1", currency: str = CURRENCY) -> Seat:
    """A game session of ``driver``'s provider (``POST /v1/sessions``), opened the provider's way."""
    r = await client.post("/v1/sessions", json={"player_id": player_id, "currency": currency,
                                               "provider": driver.name, "game_id": game_id})
    assert r.status_code == 201, r.text
    seat = Seat(player_id=player_id, currency=currency, token=r.json()["token"], game_id=game_id)
    return await driver.open(client, seat)


async def sit_down(client: httpx.AsyncClient, driver: Driver, deposit_minor: int = DEPOSIT) -> Game:
    """A new EUR player funded with ``deposit_minor``, at a game of ``driver``'s provider."""
    player_id = await new_player(client, currencies=(CURRENCY,), deposit_minor=deposit_minor)
    return Game(driver, client, await open_seat(client, driver, player_id))


async def set_status(client: httpx.AsyncClient, player_id: str, status: str) -> None:
    r = await client.post(f"/v1/players/{player_id}/status", json={"status": status})
    assert r.status_code == 200, r.text


# ==== the contract itself ==================================================================


def test_expect_table_covers_every_situation(driver):
    """Every named situation has a non-empty row (one added later may fall back,
    ``driver.FALLBACKS``); no row names an unknown situation; refusals are never the
    protocol's OK."""
    missing = set(SITUATIONS) - set(driver.expect) - set(FALLBACKS)
    assert not missing, f"{driver.name}: expect lacks {sorted(missing)}"
    unknown = set(driver.expect) - set(SITUATIONS)
    assert not unknown, f"{driver.name}: expect has rows for no situation: {sorted(unknown)}"
    for situation, statuses in driver.expect.items():
        assert statuses and all(isinstance(s, str) for s in statuses), (situation, statuses)
    refusals = REFUSALS + (() if driver.accepts_orphan_wins else ORPHAN_WIN_REFUSALS)
    if not driver.reverses_wins:
        refusals += ("rollback_of_win",)
    for situation in refusals:
        overlap = driver.expect[situation] & driver.expect["ok"]
        assert not overlap, f"{driver.name}: {situation} accepts the OK status {sorted(overlap)}"


# ==== scenarios ===========================================================================


async def test_balance(client, gateway, driver):
    """A balance request answers the real balance."""
    game = await sit_down(client, driver)
    got = check(driver, "ok", await driver.balance(client, game.seat))
    assert got.balance_minor is not None, f"{driver.name}: a balance answer without a balance: {got.body!r}"
    await game.balance_is(DEPOSIT, got)


async def test_bet(client, gateway, driver):
    """A bet debits its amount once and answers the new balance."""
    game = await sit_down(client, driver)
    txn, got = await game.bet(356, round_id=new_id("rd"))
    check(driver, "ok", got)
    await game.balance_is(DEPOSIT - 356, got)
    rows = await txn_rows(gateway, driver.name, txn)
    assert [(r["kind"], r["player_id"], r["amount_minor"], r["code"], r["delta_minor"]) for r in rows] == [
        ("debit", game.seat.player_id, 356, "ok", -356)], rows


async def test_bet_replay(client, gateway, driver):
    """The same bet again (same id, same content): the stored outcome, no second deduction
    ("Common ground" in each adapter's README: a replay gets the stored outcome)."""
    game = await sit_down(client, driver)
    rd = new_id("rd")
    txn, first = await game.bet(1_500, round_id=rd)
    check(driver, "ok", first)
    replays = [(await game.bet(1_500, round_id=rd, txn_id=txn))[1] for _ in range(2)]
    for got in replays:
        check(driver, "bet_replay", got)
    await game.balance_is(DEPOSIT - 1_500, first, *replays)
    assert len(await txn_rows(gateway, driver.name, txn)) == 1


async def test_duplicate_bet(client, gateway, driver):
    """The same transaction id with another amount is a duplicate: refused, nothing moved,
    and the original is still answered as before ("Common ground" in each adapter's README)."""
    game = await sit_down(client, driver)
    rd = new_id("rd")
    txn, first = await game.bet(500, round_id=rd)
    check(driver, "ok", first)
    audits = await audit_count(gateway)

    _, got = await game.bet(700, round_id=rd, txn_id=txn)

    check(driver, "duplicate", got)
    await game.balance_is(DEPOSIT - 500, got)
    rows = await txn_rows(gateway, driver.name, txn)
    assert [(r["kind"], r["amount_minor"], r["delta_minor"]) for r in rows] == [("debit", 500, -500)], rows
    assert await audit_count(gateway) > audits  # the refusal is audited
    _, again = await game.bet(500, round_id=rd, txn_id=txn)
    check(driver, "bet_replay", again)
    await game.balance_is(DEPOSIT - 500, again)


async def test_win(client, gateway, driver):
    """A win pays its amount onto the balance and closes the bet's round."""
    game = await sit_down(client, driver)
    rd = new_id("rd")
    bet, got = await game.bet(1_000, round_id=rd)
    check(driver, "ok", got)
    got = check(driver, "ok", await game.win(2_550, bet_txn_id=bet, round_id=rd, round_closed=True))
    await game.balance_is(DEPOSIT - 1_000 + 2_550, got)


async def test_win_without_bet(client, gateway, driver):
    """A win naming a bet (or round) the wallet never saw is refused and nothing moves
    (Hub88 ``RS_ERROR_TRANSACTION_DOES_NOT_EXIST``, Evolution ``BET_DOES_NOT_EXIST``, ...),
    unless the protocol makes the wallet accept it (``accepts_orphan_wins``): then it is paid
    and recorded as an operator-review item."""
    game = await sit_down(client, driver)
    audits = await audit_count(gateway)
    win_id = new_id("win")
    got = check(driver, "win_unknown_bet",
                await game.win(700, bet_txn_id=new_id("ghost"), round_id=new_id("rd"), round_closed=True,
                               txn_id=win_id))
    if is_ok(driver, got):
        assert driver.accepts_orphan_wins, f"{driver.name} paid a win with no bet"
        await game.balance_is(DEPOSIT + 700, got)
        assert await review_reasons(gateway, driver, win_id), f"{driver.name}: an orphan win paid without a review item"
    else:
        await game.balance_is(DEPOSIT, got)
        assert await audit_count(gateway) > audits


async def test_rollback(client, gateway, driver):
    """A rollback returns the bet's stake; the bet is marked rolled back."""
    game = await sit_down(client, driver)
    rd = new_id("rd")
    bet, got = await game.bet(300, round_id=rd)
    check(driver, "ok", got)
    got = check(driver, "ok", await game.rollback(bet, round_id=rd, amount_minor=300))
    await game.balance_is(DEPOSIT, got)
    rows = await txn_rows(gateway, driver.name, bet)
    assert [(r["kind"], r["bet_state"]) for r in rows] == [("debit", "rolled_back")], rows


async def test_rollback_of_unknown_then_late_bet(client, gateway, driver):
    """A rollback of a bet never seen moves nothing and is remembered: the late bet with that
    id is then refused and not debited ("Common ground" in each adapter's README; docs/DESIGN.md section 5).
    Its answer is success for most protocols, ``BET_DOES_NOT_EXIST`` for Evolution's
    (``rollback_unknown``)."""
    game = await sit_down(client, driver)
    rd = new_id("rd")
    late = new_id("bet")
    got = check(driver, "rollback_unknown", await game.rollback(late, round_id=rd, amount_minor=400))
    await game.balance_is(DEPOSIT, got)

    _, got = await game.bet(400, round_id=rd, txn_id=late)

    check(driver, "bet_after_rollback", got)
    await game.balance_is(DEPOSIT, got)
    await check_not_debited(gateway, driver, late)
    # and the refusal is final: the same bet retried is refused again
    _, again = await game.bet(400, round_id=rd, txn_id=late)
    check(driver, "bet_after_rollback", again)
    await game.balance_is(DEPOSIT, again)


async def test_win_after_rollback(client, gateway, driver):
    """A win for a bet (or a round) that was rolled back is refused with the provider's
    "rolled back / settled" status and nothing moves: the stake came back, no win is paid on
    top (every provider's certification; round-level protocols included)."""
    game = await sit_down(client, driver)
    rd = new_id("rd")
    bet, got = await game.bet(800, round_id=rd)
    check(driver, "ok", got)
    check(driver, "ok", await game.rollback(bet, round_id=rd, amount_minor=800))

    got = check(driver, "win_after_rollback", await game.win(1_600, bet_txn_id=bet, round_id=rd,
                                                            round_closed=True))
    await game.balance_is(DEPOSIT, got)
    rows = await txn_rows(gateway, driver.name, bet)
    assert [(r["kind"], r["bet_state"]) for r in rows] == [("debit", "rolled_back")], rows


async def test_rollback_of_win(client, gateway, driver):
    """A rollback naming a win. Where the protocol rolls back wins (``reverses_wins``:
    SoftSwiss) the win's money comes back out, even when the player spent it (the balance
    then goes below zero: a recorded debt, which refuses bets until repaid); elsewhere it is
    refused and nothing moves. A protocol that cannot name a win (``rollback_win`` returns
    None) must not claim to reverse wins."""
    game = await sit_down(client, driver, deposit_minor=1_000)
    rd = new_id("rd")
    bet, got = await game.bet(500, round_id=rd)
    check(driver, "ok", got)
    win_id = new_id("win")
    check(driver, "ok", await game.win(3_000, bet_txn_id=bet, round_id=rd, round_closed=True, txn_id=win_id))
    # the player spends most of the win before the provider takes it back
    r = await game.client.post("/v1/wallet/withdraw", json={
        "transaction_id": new_id("wd"), "player_id": game.seat.player_id, "currency": CURRENCY,
        "amount_minor": 3_300})
    assert r.status_code == 200, r.text
    got = await driver.rollback_win(game.client, game.seat, txn_id=new_id("rbw"), win_txn_id=win_id,
                                    round_id=rd, amount_minor=3_000)
    if got is None:
        assert not driver.reverses_wins, f"{driver.name} claims to reverse wins but cannot send the request"
        return
    check(driver, "rollback_of_win", got)
    if not driver.reverses_wins:
        await game.balance_is(200)
        return
    await game.balance_is(200 - 3_000)
    assert await review_reasons(gateway, driver, None, player_id=game.seat.player_id), "a debt without a review item"
    refused = check(driver, "insufficient_funds", (await game.bet(100, round_id=new_id("rd")))[1])
    await game.balance_is(-2_800, refused)


async def test_rollback_after_win(client, gateway, driver):
    """A rollback of a bet settled by a win (round closed) is refused; nothing moves."""
    game = await sit_down(client, driver)
    rd = new_id("rd")
    bet, got = await game.bet(600, round_id=rd)
    check(driver, "ok", got)
    check(driver, "ok", await game.win(900, bet_txn_id=bet, round_id=rd, round_closed=True))
    audits = await audit_count(gateway)

    got = check(driver, "rollback_after_win", await game.rollback(bet, round_id=rd, amount_minor=600))

    await game.balance_is(DEPOSIT - 600 + 900, got)
    rows = await txn_rows(gateway, driver.name, bet)
    assert [(r["kind"], r["bet_state"]) for r in rows] == [("debit", "settled")], rows
    assert await audit_count(gateway) > audits


async def test_expired_token_refuses_bets_not_wins(client, gateway, services, driver):
    """With an expired session token a bet is refused, while a win and a rollback of bets
    placed before are accepted ("Common ground" in each adapter's README: providers retry them for days)."""
    game = await sit_down(client, driver)
    rd1, rd2 = new_id("rd"), new_id("rd")
    bet1, got = await game.bet(1_000, round_id=rd1)
    check(driver, "ok", got)
    bet2, got = await game.bet(200, round_id=rd2)
    check(driver, "ok", got)
    await expire(services.redis_url, game.seat.token)

    late, got = await game.bet(300, round_id=new_id("rd"))
    check(driver, "bet_token_expired", got)
    await game.balance_is(DEPOSIT - 1_200, got)
    await check_not_debited(gateway, driver, late)

    got = check(driver, "ok", await game.win(2_000, bet_txn_id=bet1, round_id=rd1, round_closed=True))
    await game.balance_is(DEPOSIT - 1_200 + 2_000, got)
    got = check(driver, "ok", await game.rollback(bet2, round_id=rd2, amount_minor=200))
    await game.balance_is(DEPOSIT - 1_000 + 2_000, got)


async def test_blocked_player_receives_win(client, gateway, driver):
    """A blocked player's bet is refused, its open bets are still paid and rolled back
    ("Common ground" in each adapter's README)."""
    game = await sit_down(client, driver)
    rd1, rd2 = new_id("rd"), new_id("rd")
    bet1, got = await game.bet(1_000, round_id=rd1)
    check(driver, "ok", got)
    bet2, got = await game.bet(250, round_id=rd2)
    check(driver, "ok", got)
    await set_status(client, game.seat.player_id, "blocked")

    refused, got = await game.bet(100, round_id=new_id("rd"))
    check(driver, "bet_blocked", got)
    await game.balance_is(DEPOSIT - 1_250, got)
    await check_not_debited(gateway, driver, refused)

    got = check(driver, "ok", await game.win(3_000, bet_txn_id=bet1, round_id=rd1, round_closed=True))
    await game.balance_is(DEPOSIT - 1_250 + 3_000, got)
    got = check(driver, "ok", await game.rollback(bet2, round_id=rd2, amount_minor=250))
    await game.balance_is(DEPOSIT - 1_000 + 3_000, got)


async def test_insufficient_funds_keeps_balance(client, gateway, driver):
    """A bet above the balance is refused and the answer carries the unchanged balance
    ("Common ground" in each adapter's README)."""
    game = await sit_down(client, driver, deposit_minor=1_000)
    txn, got = await game.bet(1_001, round_id=new_id("rd"))
    check(driver, "insufficient_funds", got)
    await game.balance_is(1_000, got)
    await check_not_debited(gateway, driver, txn)
    # the whole balance is still there to bet
    _, got = await game.bet(1_000, round_id=new_id("rd"))
    check(driver, "ok", got)
    await game.balance_is(0, got)


async def test_multiple_bets_in_one_round(client, gateway, driver):
    """Several bets top up one round; one of them is rolled back while the round goes on;
    the round is then won and closed (gateway/providers/evolution/README.md, licensee test list: "up to about 100 debits may top up
    one round"; Hub88/Caleta "several bets may share a round and one of them can be rolled
    back while the round goes on")."""
    game = await sit_down(client, driver)
    rd = new_id("rd")
    stakes = [100, 200, 300]
    bets = []
    for stake in stakes:
        txn, got = await game.bet(stake, round_id=rd)
        check(driver, "ok", got)
        bets.append(txn)
    await game.balance_is(DEPOSIT - 600, got)

    got = check(driver, "ok", await game.rollback(bets[1], round_id=rd, amount_minor=200))
    await game.balance_is(DEPOSIT - 400, got)
    last, got = await game.bet(400, round_id=rd)
    check(driver, "ok", got)
    await game.balance_is(DEPOSIT - 800, got)

    got = check(driver, "ok", await game.win(1_500, bet_txn_id=last, round_id=rd, round_closed=True))
    await game.balance_is(DEPOSIT - 800 + 1_500, got)
    for txn, stake in zip(bets + [last], stakes + [400]):
        rows = await txn_rows(gateway, driver.name, txn)
        assert [(r["kind"], r["amount_minor"]) for r in rows] == [("debit", stake)], (txn, rows)


async def test_parallel_rounds(client, gateway, driver):
    """One player plays two games (two sessions) with several rounds each, concurrently:
    every bet and win lands exactly once (gateway/providers/evolution/README.md, licensee test list: "a player may play
    several rounds and tables in parallel")."""
    game = await sit_down(client, driver)
    other = await open_seat(client, driver, game.seat.player_id, game_id="conformance_table_2")
    plays = [(seat, new_id("rd"), stake, win)
             for seat in (game.seat, other)
             for stake, win in ((100, 0), (250, 700), (400, 1_000))]

    placed = await asyncio.gather(*(game.bet(stake, round_id=rd, seat=seat)
                                    for seat, rd, stake, _ in plays))
    for _, got in placed:
        check(driver, "ok", got)
    await game.balance_is(DEPOSIT - 2 * 750)

    paid = await asyncio.gather(*(game.win(win, bet_txn_id=txn, round_id=rd, round_closed=True, seat=seat)
                                  for (seat, rd, _, win), (txn, _) in zip(plays, placed)))
    for got in paid:
        check(driver, "ok", got)
    expected = DEPOSIT - 2 * 750 + 2 * 1_700
    await game.balance_is(expected)
    for seat in (game.seat, other):
        got = check(driver, "ok", await driver.balance(client, seat))
        await game.balance_is(expected, got)
    for txn, _ in placed:
        assert len(await txn_rows(gateway, driver.name, txn)) == 1


async def test_zero_win(client, gateway, driver):
    """A zero-amount win is valid (gateway/providers/evolution/README.md, licensee test list: "a zero-amount credit is valid")
    and settles the bet: a rollback after it is refused."""
    game = await sit_down(client, driver)
    rd = new_id("rd")
    bet, got = await game.bet(500, round_id=rd)
    check(driver, "ok", got)
    got = check(driver, "ok", await game.win(0, bet_txn_id=bet, round_id=rd, round_closed=True))
    await game.balance_is(DEPOSIT - 500, got)
    got = check(driver, "rollback_after_win", await game.rollback(bet, round_id=rd, amount_minor=500))
    await game.balance_is(DEPOSIT - 500, got)


async def test_wrong_currency(client, gateway, driver):
    """A bet in a currency the session and the player do not have is refused; nothing moves."""
    game = await sit_down(client, driver)
    txn, got = await game.bet(100, round_id=new_id("rd"), currency=OTHER_CURRENCY)
    check(driver, "wrong_currency", got)
    await game.balance_is(DEPOSIT, got)
    await check_not_debited(gateway, driver, txn)


async def test_bad_signature(client, gateway, driver):
    """A bet with a wrong signature / key is refused and audited, nothing is stored under
    its key, and the same bet correctly signed then goes through (the key was not used)."""
    game = await sit_down(client, driver)
    rd = new_id("rd")
    txn = new_id("bet")
    audits = await audit_count(gateway)

    got = check(driver, "bad_signature", await driver.bet_bad_signature(
        client, game.seat, txn_id=txn, round_id=rd, amount_minor=700))

    await game.balance_is(DEPOSIT, got)
    assert await txn_rows(gateway, driver.name, txn) == []
    assert await audit_count(gateway) > audits
    _, got = await game.bet(700, round_id=rd, txn_id=txn)
    check(driver, "ok", got)
    await game.balance_is(DEPOSIT - 700, got)
