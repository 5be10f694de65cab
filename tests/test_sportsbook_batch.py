"""The sportsbook inside the shard's batch (migration 0009), over HTTP with real PostgreSQL
and Redis: a bet's row commits with its stake, a payout's state with its credit; partial
cash-out (the rest of the stake carried on as a continuation bet); the reservation sweeper
that gives back liability of bets that never committed, after fencing their ids.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction

import asyncpg
import pytest

from gateway.edge.redis_client import redis_client
from gateway.sportsbook.exposure import ExposureBook
from gateway.sportsbook.liability import Contribution, Limits
from tests.conftest import new_id, new_player
from tests.helpers import balance
from tests.test_sportsbook_http import TRADING, place, put_market, result, settled

PARTNER = "demo"


async def _exposure(client, market_id: str) -> dict:
    r = await client.get(f"/v1/sportsbook/markets/{market_id}/report", headers=TRADING)
    assert r.status_code == 200, r.text
    return r.json()["exposure"]


async def _bet_row(database_url: str, bet_id: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchrow("SELECT b.state, b.outlay_minor, b.return_minor, b.continued_as, b.cashout_minor,"
                                   " t.code, t.amount_minor FROM sportsbook_bets b LEFT JOIN transactions t"
                                   " ON t.scope = b.partner_id || ':sportsbook' AND t.transaction_id = b.bet_id"
                                   " WHERE b.partner_id = $1 AND b.bet_id = $2", PARTNER, bet_id)
    finally:
        await conn.close()


async def test_a_bet_row_exists_exactly_when_its_stake_does(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=1_000)
    market_id = await put_market(client, {"home": "2.00", "away": "2.00"})
    placed = await place(client, player, [(market_id, "home", "2.00")], stake_minor=600)
    assert placed.status_code == 201, placed.text
    row = await _bet_row(gateway.database_url, placed.json()["bet_id"])
    assert row is not None and row["state"] == "open" and row["code"] == "ok" and row["amount_minor"] == 600
    refused = await place(client, player, [(market_id, "home", "2.00")], stake_minor=600)
    assert refused.status_code == 402 and refused.json()["code"] == "insufficient_funds", refused.text
    assert await _bet_row(gateway.database_url, refused.json().get("bet_id") or "none") is None


async def test_a_retry_with_other_legs_of_the_same_outlay_conflicts(client, gateway):
    """The stake debit alone cannot tell two bets of one outlay apart: the stored terms do."""
    player = await new_player(client, currencies=("GBP",), deposit_minor=5_000)
    market_id = await put_market(client, {"home": "2.00", "away": "3.00"})
    bet_id = new_id("bet")
    first = await place(client, player, [(market_id, "home", "2.00")], stake_minor=500, bet_id=bet_id)
    assert first.status_code == 201, first.text
    other = await place(client, player, [(market_id, "away", "3.00")], stake_minor=500, bet_id=bet_id)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict", other.text
    assert await balance(client, player, "GBP") == (4_500, 0)
    assert await _exposure(client, market_id) == {"stakes_minor": 500, "returns_minor:home": 1_000}


async def test_a_payout_marks_its_bet_in_the_same_commit(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=1_000)
    market_id = await put_market(client, {"home": "2.50"})
    bet_id = (await place(client, player, [(market_id, "home", "2.50")], stake_minor=400)).json()["bet_id"]
    await result(client, market_id, [{"selection_id": "home", "outcome": "won"}])
    assert (await settled(client, bet_id))["return_minor"] == 1_000
    conn = await asyncpg.connect(gateway.database_url)
    try:
        paid = await conn.fetchval("SELECT amount_minor FROM transactions WHERE scope = 'demo:sportsbook'"
                                   " AND transaction_id = $1", f"{bet_id}:payout")
    finally:
        await conn.close()
    assert paid == 1_000
    assert await _exposure(client, market_id) == {"stakes_minor": 0, "returns_minor:home": 0}


# ---- partial cash-out ------------------------------------------------------------------------


async def test_partial_cash_out_keeps_the_rest_running(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=10_000)
    market_id = await put_market(client, {"home": "4.00", "away": "1.50"})
    bet_id = (await place(client, player, [(market_id, "home", "4.00")], stake_minor=1_000)).json()["bet_id"]
    # 400 of the 1,000 stake: at most 400 x 4.00 = 1,600 for that part
    too_much = await client.post(f"/v1/sportsbook/bets/{bet_id}/cashout", json={"amount_minor": 1_601, "stake_minor": 400})
    assert too_much.status_code == 400 and too_much.json()["code"] == "invalid_amount", too_much.text
    r = await client.post(f"/v1/sportsbook/bets/{bet_id}/cashout", json={"amount_minor": 700, "stake_minor": 400})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "cashed_out" and body["cashout_minor"] == 700 and body["return_minor"] == 1_300
    continuation = body["continued_as"]
    assert continuation == f"{bet_id}~1"
    assert await balance(client, player, "GBP") == (9_700, 0)  # 10,000 - 1,000 + 700
    again = await client.post(f"/v1/sportsbook/bets/{bet_id}/cashout", json={"amount_minor": 700, "stake_minor": 400})
    assert again.status_code == 200 and again.json()["replayed"] is True, again.text
    assert await balance(client, player, "GBP") == (9_700, 0)
    cont = (await client.get(f"/v1/sportsbook/bets/{continuation}")).json()
    assert cont["state"] == "open" and cont["outlay_minor"] == 600 and cont["potential_return_minor"] == 2_400, cont
    # the liability now is the continuation's only
    assert await _exposure(client, market_id) == {"stakes_minor": 600, "returns_minor:home": 2_400}
    # a second partial on the continuation, then the market settles it
    r = await client.post(f"/v1/sportsbook/bets/{continuation}/cashout", json={"amount_minor": 100, "stake_minor": 100})
    assert r.status_code == 200 and r.json()["continued_as"] == f"{bet_id}~2", r.text
    await result(client, market_id, [{"selection_id": "home", "outcome": "won"}])
    last = await settled(client, f"{bet_id}~2")
    assert last["return_minor"] == 2_000  # 500 x 4.00
    assert await balance(client, player, "GBP") == (9_700 + 100 + 2_000, 0)
    assert await _exposure(client, market_id) == {"stakes_minor": 0, "returns_minor:home": 0}
    # every bet's return is paid exactly once: 1,300 + (100 + 500) + 2,000 against outlays 1,000 + 600 + 500
    rows = [await _bet_row(gateway.database_url, b) for b in (bet_id, continuation, f"{bet_id}~2")]
    assert [(r["state"], r["outlay_minor"], r["return_minor"]) for r in rows] == [
        ("cashed_out", 1_000, 1_300), ("cashed_out", 600, 600), ("settled", 500, 2_000)]
    assert sum(r["return_minor"] - r["outlay_minor"] for r in rows) == 9_700 + 100 + 2_000 - 10_000


async def test_partial_cash_out_of_an_accumulator_is_exact(client, gateway):
    """A continuation under the total-stake convention: unit stakes stay exact fractions."""
    player = await new_player(client, currencies=("GBP",), deposit_minor=10_000)
    first = await put_market(client, {"sel": "2.00"})
    second = await put_market(client, {"sel": "3.00"})
    bet_id = (await place(client, player, [(first, "sel", "2.00"), (second, "sel", "3.00")], stake_minor=1_000,
                          bet_type="accumulator")).json()["bet_id"]
    r = await client.post(f"/v1/sportsbook/bets/{bet_id}/cashout", json={"amount_minor": 500, "stake_minor": 333})
    assert r.status_code == 200, r.text
    await result(client, first, [{"selection_id": "sel", "outcome": "won"}])
    await result(client, second, [{"selection_id": "sel", "outcome": "won"}])
    cont = await settled(client, f"{bet_id}~1")
    assert cont["return_minor"] == int(Fraction(667) * 6)  # 667 x 2.00 x 3.00
    assert await balance(client, player, "GBP") == (10_000 - 1_000 + 500 + 4_002, 0)


async def test_cash_out_refusals(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=10_000)
    market_id = await put_market(client, {"home": "2.00"})
    bet_id = (await place(client, player, [(market_id, "home", "2.00")], stake_minor=1_000)).json()["bet_id"]
    for body, code in (({"amount_minor": 100, "stake_minor": 1_001}, "invalid_stake"),
                       ({"amount_minor": -1}, "invalid_request"),
                       ({"amount_minor": 100, "stake_minor": 0}, "invalid_request")):
        r = await client.post(f"/v1/sportsbook/bets/{bet_id}/cashout", json=body)
        assert r.status_code in (400, 422) and r.json()["code"] == code, (body, r.text)
    assert await balance(client, player, "GBP") == (9_000, 0)
    unknown = await client.post("/v1/sportsbook/bets/nope/cashout", json={"amount_minor": 1})
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_bet", unknown.text


# ---- the reservation sweeper -----------------------------------------------------------------


#: A Redis database of its own: the session's shared gateway sweeps the same partner on the
#: shared one (holding the partner's sweep lock), against another PostgreSQL database.
SWEEP_REDIS_DB = 13


@pytest.fixture
async def swept(spawn_gateway, services):
    url = services.redis_url + ("&" if "?" in services.redis_url else "?") + f"db={SWEEP_REDIS_DB}"
    process = await spawn_gateway(env={"GATEWAY_SPORTSBOOK__RESERVATION_ORPHAN_MS": "1000",
                                    "GATEWAY_SPORTSBOOK__SWEEP_INTERVAL_MS": "200", "GATEWAY_REDIS_URL": url})
    process.redis_url = url
    return process


async def test_the_sweeper_gives_back_an_abandoned_reservation_and_fences_its_id(swept):
    """An edge reserved liability and died before the stake debit: the sweeper fences the bet
    id in the player's shard (so the debit can never apply) and gives the liability back."""
    async with swept.client() as client:
        player = await new_player(client, currencies=("GBP",), deposit_minor=10_000)
        market_id = await put_market(client, {"home": "2.00"}, limits={"selection_liability_max_minor": 5_000})
        live = (await place(client, player, [(market_id, "home", "2.00")], stake_minor=1_000)).json()["bet_id"]
        redis = redis_client(swept.redis_url, 2_000)
        try:
            book = ExposureBook(redis)
            abandoned = new_id("bet")
            done = await book.reserve(PARTNER, abandoned, [Contribution(market_id, "home", 6_000, 3_000)],
                                      {market_id: Limits()}, {market_id: 1}, player_id=player)
            assert type(done).__name__ == "Reserved"
            assert await _exposure(client, market_id) == {"stakes_minor": 4_000, "returns_minor:home": 8_000}
            deadline = asyncio.get_running_loop().time() + 15
            while await _exposure(client, market_id) != {"stakes_minor": 1_000, "returns_minor:home": 2_000}:
                assert asyncio.get_running_loop().time() < deadline, await _exposure(client, market_id)
                await asyncio.sleep(0.1)
            assert await redis.zscore("sb:{demo}:pending", abandoned) is None
            assert await redis.zscore("sb:{demo}:pending", live) is None  # seen stored, kept
        finally:
            await redis.aclose()
        # the abandoned id can never be placed now, even by a late retry
        late = await place(client, player, [(market_id, "home", "2.00")], stake_minor=3_000, bet_id=abandoned)
        assert late.status_code == 409 and late.json()["code"] == "transaction_rolled_back", late.text
        assert await balance(client, player, "GBP") == (9_000, 0)
        assert await _exposure(client, market_id) == {"stakes_minor": 1_000, "returns_minor:home": 2_000}
