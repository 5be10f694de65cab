"""Idempotency over HTTP on the generic API: the docs/DESIGN.md section 5 matrix.

Every test uses fresh players and transaction ids; balances are checked through
``GET /v1/players/{id}/balance`` and, where it says something the HTTP answer cannot, the
ledger rows are checked with asyncpg on the gateway's own database.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import new_id, new_player

PARTNER = "demo"  # the sandbox partner's id
API_SCOPE = "demo:api"  # the idempotency scope of its generic-API calls
PROBLEM_JSON = "application/problem+json"


# ---- helpers ---------------------------------------------------------------------------


async def balance(client, player: str, currency: str = "EUR") -> tuple[int, int]:
    """(cash_minor, bonus_minor) of ``player`` in ``currency``, read over HTTP."""
    r = await client.get(f"/v1/players/{player}/balance")
    assert r.status_code == 200, r.text
    rows = [b for b in r.json()["balances"] if b["currency"] == currency]
    assert len(rows) == 1, r.json()
    return rows[0]["cash_minor"], rows[0]["bonus_minor"]


def debit_body(player: str, txn: str, amount: int, currency: str = "EUR", round_id: str = "r1",
               game_id: str = "g1") -> dict:
    return {"transaction_id": txn, "player_id": player, "currency": currency,
            "amount_minor": amount, "round_id": round_id, "game_id": game_id}


def credit_body(player: str, txn: str, amount: int, bet: str | None = None, currency: str = "EUR",
                round_id: str = "r1", game_id: str = "g1", round_closed: bool = False) -> dict:
    body = {"transaction_id": txn, "player_id": player, "currency": currency,
            "amount_minor": amount, "round_id": round_id, "game_id": game_id,
            "round_closed": round_closed}
    if bet is not None:
        body["bet_transaction_id"] = bet
    return body


def rollback_body(player: str, txn: str, reference: str, currency: str | None = None) -> dict:
    body = {"transaction_id": txn, "player_id": player, "reference_transaction_id": reference}
    if currency is not None:
        body["currency"] = currency
    return body


def funds_body(player: str, txn: str, amount: int, currency: str = "EUR", bonus: bool = False) -> dict:
    return {"transaction_id": txn, "player_id": player, "currency": currency,
            "amount_minor": amount, "bonus": bonus}


def ok_body(txn: str, player: str, cash: int, bonus: int = 0, currency: str = "EUR",
            replayed: bool = False) -> dict:
    return {"transaction_id": txn, "player_id": player, "currency": currency,
            "cash_minor": cash, "bonus_minor": bonus, "replayed": replayed}


def assert_problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON), r.headers
    body = r.json()
    assert body["code"] == code, body
    assert body["status"] == status, body
    assert body["type"] == f"urn:gateway:problem:{code}", body
    return body


async def db(gateway) -> asyncpg.Connection:
    return await asyncpg.connect(gateway.database_url)


async def txn_rows(gateway, txn: str) -> list[asyncpg.Record]:
    conn = await db(gateway)
    try:
        return await conn.fetch(
            "SELECT * FROM transactions WHERE scope = $1 AND transaction_id = $2", API_SCOPE, txn)
    finally:
        await conn.close()


async def audit_rows(gateway, txn: str) -> list[asyncpg.Record]:
    conn = await db(gateway)
    try:
        return await conn.fetch(
            "SELECT kind, scope, transaction_id, player_id, code, record FROM audit_log "
            "WHERE transaction_id = $1 ORDER BY shard_id, seq", txn)
    finally:
        await conn.close()


# ---- row 1 and 2: first time, then the same key with the same content ----------------


async def test_debit_first_time_applied_then_replayed(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bet = new_id("bet")
    r = await client.post("/v1/wallet/debit", json=debit_body(player, bet, 300))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == ok_body(bet, player, 700)
    assert await balance(client, player) == (700, 0)

    for _ in range(3):
        r = await client.post("/v1/wallet/debit", json=debit_body(player, bet, 300))
        assert r.status_code == 200, r.text
        assert r.json() == ok_body(bet, player, 700, replayed=True)
        assert await balance(client, player) == (700, 0)

    rows = await txn_rows(gateway, bet)
    assert len(rows) == 1
    assert (rows[0]["kind"], rows[0]["amount_minor"], rows[0]["code"]) == ("debit", 300, "ok")
    assert (rows[0]["cash_delta_minor"], rows[0]["bonus_delta_minor"]) == (-300, 0)
    # Every request is audited, replays included (the regulator sees the retries).
    audits = await audit_rows(gateway, bet)
    assert [a["code"] for a in audits] == ["ok"] * 4
    assert [a["kind"] for a in audits] == ["debit"] * 4


async def test_credit_replay_is_not_paid_twice(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bet, win = new_id("bet"), new_id("win")
    r = await client.post("/v1/wallet/debit", json=debit_body(player, bet, 100))
    assert r.status_code == 200, r.text
    r = await client.post("/v1/wallet/credit", json=credit_body(player, win, 450, bet=bet))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(win, player, 1_350)
    r = await client.post("/v1/wallet/credit", json=credit_body(player, win, 450, bet=bet))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(win, player, 1_350, replayed=True)
    assert await balance(client, player) == (1_350, 0)
    assert len(await txn_rows(gateway, win)) == 1


async def test_rollback_replay_is_not_refunded_twice(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bet, rb = new_id("bet"), new_id("rb")
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, bet, 400))).status_code == 200
    r = await client.post("/v1/wallet/rollback", json=rollback_body(player, rb, bet))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(rb, player, 1_000)
    r = await client.post("/v1/wallet/rollback", json=rollback_body(player, rb, bet))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(rb, player, 1_000, replayed=True)
    assert await balance(client, player) == (1_000, 0)
    rows = await txn_rows(gateway, rb)
    assert len(rows) == 1 and rows[0]["kind"] == "rollback" and rows[0]["amount_minor"] == 400
    (bet_row,) = await txn_rows(gateway, bet)
    assert bet_row["bet_state"] == "rolled_back"


async def test_deposit_replay(client, gateway):
    player = await new_player(client)
    dep = new_id("dep")
    r = await client.post("/v1/wallet/deposit", json=funds_body(player, dep, 2_500))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(dep, player, 2_500)
    r = await client.post("/v1/wallet/deposit", json=funds_body(player, dep, 2_500))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(dep, player, 2_500, replayed=True)
    assert await balance(client, player) == (2_500, 0)
    rows = await txn_rows(gateway, dep)
    assert len(rows) == 1 and rows[0]["kind"] == "deposit" and rows[0]["cash_delta_minor"] == 2_500


async def test_withdraw_replay(client, gateway):
    player = await new_player(client, deposit_minor=2_000)
    wd = new_id("wd")
    r = await client.post("/v1/wallet/withdraw", json=funds_body(player, wd, 1_500))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(wd, player, 500)
    r = await client.post("/v1/wallet/withdraw", json=funds_body(player, wd, 1_500))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(wd, player, 500, replayed=True)
    assert await balance(client, player) == (500, 0)
    rows = await txn_rows(gateway, wd)
    assert len(rows) == 1 and rows[0]["kind"] == "withdraw" and rows[0]["cash_delta_minor"] == -1_500


async def test_replay_answers_the_stored_outcome_not_the_current_balance(client):
    """A replay returns the balance stored with the outcome, even after later activity."""
    player = await new_player(client, deposit_minor=1_000)
    bet = new_id("bet")
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, bet, 100))).json()["cash_minor"] == 900
    r = await client.post("/v1/wallet/deposit", json=funds_body(player, new_id("dep"), 5_000))
    assert r.json()["cash_minor"] == 5_900
    r = await client.post("/v1/wallet/debit", json=debit_body(player, bet, 100))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(bet, player, 900, replayed=True)
    assert await balance(client, player) == (5_900, 0)


# ---- row 3: same key, different content -> 409 naming the field, nothing applied ------


async def _conflict(client, gateway, path: str, body: dict, field: str, player: str,
                    currency: str = "EUR") -> dict:
    before = await balance(client, player, currency)
    r = await client.post(path, json=body)
    problem = assert_problem(r, 409, "idempotency_conflict")
    assert problem["field"] == field, problem
    assert await balance(client, player, currency) == before
    return problem


async def test_conflict_amount(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bet = new_id("bet")
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, bet, 100))).status_code == 200
    problem = await _conflict(client, gateway, "/v1/wallet/debit", debit_body(player, bet, 101),
                              "amount_minor", player)
    assert problem["cash_minor"] == 900 and problem["bonus_minor"] == 0
    assert await balance(client, player) == (900, 0)
    rows = await txn_rows(gateway, bet)
    assert len(rows) == 1 and rows[0]["amount_minor"] == 100
    assert [a["code"] for a in await audit_rows(gateway, bet)] == ["ok", "idempotency_conflict"]


async def test_conflict_currency(client, gateway):
    player = await new_player(client, currencies=("EUR", "USD"), deposit_minor=1_000)
    r = await client.post("/v1/wallet/deposit", json=funds_body(player, new_id("dep"), 1_000, currency="USD"))
    assert r.status_code == 200, r.text
    bet = new_id("bet")
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, bet, 100))).status_code == 200
    await _conflict(client, gateway, "/v1/wallet/debit", debit_body(player, bet, 100, currency="USD"),
                    "currency", player, currency="USD")
    assert await balance(client, player, "EUR") == (900, 0)
    assert await balance(client, player, "USD") == (1_000, 0)
    rows = await txn_rows(gateway, bet)
    assert len(rows) == 1 and rows[0]["currency"] == "EUR"


async def test_conflict_player(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    other = await new_player(client, deposit_minor=1_000)
    bet = new_id("bet")
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, bet, 100))).status_code == 200
    await _conflict(client, gateway, "/v1/wallet/debit", debit_body(other, bet, 100), "player_id", other)
    assert await balance(client, player) == (900, 0)
    assert await balance(client, other) == (1_000, 0)
    rows = await txn_rows(gateway, bet)
    assert len(rows) == 1 and rows[0]["player_id"] == player


async def test_conflict_round(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bet = new_id("bet")
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, bet, 100, round_id="ra"))).status_code == 200
    await _conflict(client, gateway, "/v1/wallet/debit", debit_body(player, bet, 100, round_id="rb"),
                    "round_id", player)
    assert await balance(client, player) == (900, 0)
    rows = await txn_rows(gateway, bet)
    assert len(rows) == 1 and rows[0]["round_id"] == "ra"


async def test_conflict_type_credit_reusing_a_debit_id(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bet = new_id("bet")
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, bet, 100))).status_code == 200
    await _conflict(client, gateway, "/v1/wallet/credit", credit_body(player, bet, 100), "type", player)
    assert await balance(client, player) == (900, 0)
    rows = await txn_rows(gateway, bet)
    assert len(rows) == 1 and rows[0]["kind"] == "debit"


async def test_conflict_deposit_amount(client, gateway):
    player = await new_player(client)
    dep = new_id("dep")
    assert (await client.post("/v1/wallet/deposit", json=funds_body(player, dep, 500))).status_code == 200
    await _conflict(client, gateway, "/v1/wallet/deposit", funds_body(player, dep, 5_000), "amount_minor", player)
    assert await balance(client, player) == (500, 0)
    assert len(await txn_rows(gateway, dep)) == 1


async def test_conflict_withdraw_reusing_a_deposit_id(client, gateway):
    player = await new_player(client)
    dep = new_id("dep")
    assert (await client.post("/v1/wallet/deposit", json=funds_body(player, dep, 500))).status_code == 200
    await _conflict(client, gateway, "/v1/wallet/withdraw", funds_body(player, dep, 500), "type", player)
    assert await balance(client, player) == (500, 0)


# ---- row 4: same key, original refused -> the same refusal ----------------------------


async def test_refused_debit_stays_refused_after_deposit(client, gateway):
    player = await new_player(client, deposit_minor=100)
    bet = new_id("bet")
    r = await client.post("/v1/wallet/debit", json=debit_body(player, bet, 500))
    first = assert_problem(r, 402, "insufficient_funds")
    assert (first["currency"], first["cash_minor"], first["bonus_minor"]) == ("EUR", 100, 0)
    assert first["transaction_id"] == bet and first["player_id"] == player
    assert await balance(client, player) == (100, 0)

    r = await client.post("/v1/wallet/deposit", json=funds_body(player, new_id("dep"), 10_000))
    assert r.status_code == 200 and r.json()["cash_minor"] == 10_100

    r = await client.post("/v1/wallet/debit", json=debit_body(player, bet, 500))
    again = assert_problem(r, 402, "insufficient_funds")
    # The stored refusal, with the balance it was refused on.
    assert (again["currency"], again["cash_minor"], again["bonus_minor"]) == ("EUR", 100, 0)
    assert again.get("replayed") is True
    assert await balance(client, player) == (10_100, 0)

    rows = await txn_rows(gateway, bet)
    assert len(rows) == 1
    assert (rows[0]["code"], rows[0]["cash_delta_minor"], rows[0]["bonus_delta_minor"]) == ("insufficient_funds", 0, 0)
    conn = await db(gateway)
    try:
        entries = await conn.fetchval("SELECT count(*) FROM entries WHERE txn_id = $1", rows[0]["txn_id"])
    finally:
        await conn.close()
    assert entries == 0
    audits = await audit_rows(gateway, bet)
    assert [a["code"] for a in audits] == ["insufficient_funds", "insufficient_funds"]
    assert all(a["player_id"] == player and a["scope"] == API_SCOPE for a in audits)


async def test_refused_withdraw_stays_refused(client, gateway):
    player = await new_player(client, deposit_minor=100)
    wd = new_id("wd")
    first = assert_problem(await client.post("/v1/wallet/withdraw", json=funds_body(player, wd, 101)),
                           402, "insufficient_funds")
    assert first["cash_minor"] == 100
    assert (await client.post("/v1/wallet/deposit", json=funds_body(player, new_id("dep"), 1_000))).status_code == 200
    again = assert_problem(await client.post("/v1/wallet/withdraw", json=funds_body(player, wd, 101)),
                           402, "insufficient_funds")
    assert again["cash_minor"] == 100
    assert await balance(client, player) == (1_100, 0)
    rows = await txn_rows(gateway, wd)
    assert len(rows) == 1 and rows[0]["code"] == "insufficient_funds"


async def test_refused_debit_with_other_content_is_a_conflict(client, gateway):
    player = await new_player(client, deposit_minor=100)
    bet = new_id("bet")
    assert_problem(await client.post("/v1/wallet/debit", json=debit_body(player, bet, 500)), 402, "insufficient_funds")
    problem = assert_problem(await client.post("/v1/wallet/debit", json=debit_body(player, bet, 50)),
                             409, "idempotency_conflict")
    assert problem["field"] == "amount_minor"
    assert await balance(client, player) == (100, 0)


# ---- row 5: rollback of a key never seen -> success + tombstone -----------------------


async def test_rollback_of_unseen_key_then_late_debit_refused(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bet, rb = new_id("bet"), new_id("rb")
    r = await client.post("/v1/wallet/rollback", json=rollback_body(player, rb, bet))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(rb, player, 1_000)
    assert await balance(client, player) == (1_000, 0)

    r = await client.post("/v1/wallet/debit", json=debit_body(player, bet, 300))
    problem = assert_problem(r, 409, "transaction_rolled_back")
    assert problem["cash_minor"] == 1_000
    assert await balance(client, player) == (1_000, 0)
    # Retrying the late debit stays refused.
    assert_problem(await client.post("/v1/wallet/debit", json=debit_body(player, bet, 300)),
                   409, "transaction_rolled_back")
    assert await balance(client, player) == (1_000, 0)

    (tomb,) = await txn_rows(gateway, bet)
    assert (tomb["kind"], tomb["amount_minor"], tomb["reference_id"]) == ("tombstone", 0, rb)
    (rb_row,) = await txn_rows(gateway, rb)
    assert (rb_row["kind"], rb_row["amount_minor"], rb_row["reference_id"]) == ("rollback", 0, bet)
    assert [a["code"] for a in await audit_rows(gateway, bet)] == ["transaction_rolled_back"] * 2


async def test_rollback_of_unseen_key_replay(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bet, rb = new_id("bet"), new_id("rb")
    assert (await client.post("/v1/wallet/rollback", json=rollback_body(player, rb, bet))).status_code == 200
    r = await client.post("/v1/wallet/rollback", json=rollback_body(player, rb, bet))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(rb, player, 1_000, replayed=True)
    assert len(await txn_rows(gateway, rb)) == 1
    assert len(await txn_rows(gateway, bet)) == 1


async def test_win_on_tombstoned_bet_is_rolled_back(client):
    player = await new_player(client, deposit_minor=1_000)
    bet = new_id("bet")
    assert (await client.post("/v1/wallet/rollback", json=rollback_body(player, new_id("rb"), bet))).status_code == 200
    assert_problem(await client.post("/v1/wallet/credit", json=credit_body(player, new_id("win"), 200, bet=bet)),
                   409, "transaction_rolled_back")
    assert await balance(client, player) == (1_000, 0)


# ---- row 6: win / rollback for a bet already rolled back or settled -------------------


async def test_win_after_rollback(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bet, win = new_id("bet"), new_id("win")
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, bet, 300))).status_code == 200
    assert (await client.post("/v1/wallet/rollback", json=rollback_body(player, new_id("rb"), bet))).status_code == 200
    problem = assert_problem(await client.post("/v1/wallet/credit", json=credit_body(player, win, 900, bet=bet)),
                             409, "transaction_rolled_back")
    assert problem["cash_minor"] == 1_000
    assert await balance(client, player) == (1_000, 0)
    assert await txn_rows(gateway, win) == []


async def test_rollback_after_win(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bet, rb = new_id("bet"), new_id("rb")
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, bet, 300))).status_code == 200
    r = await client.post("/v1/wallet/credit", json=credit_body(player, new_id("win"), 500, bet=bet))
    assert r.status_code == 200 and r.json()["cash_minor"] == 1_200
    problem = assert_problem(await client.post("/v1/wallet/rollback", json=rollback_body(player, rb, bet)),
                             409, "transaction_settled")
    assert problem["cash_minor"] == 1_200
    assert await balance(client, player) == (1_200, 0)
    assert await txn_rows(gateway, rb) == []
    (bet_row,) = await txn_rows(gateway, bet)
    assert bet_row["bet_state"] == "settled"


async def test_rollback_after_round_closed(client):
    """A win with round_closed settles every open bet of the round, not only the named one."""
    player = await new_player(client, deposit_minor=1_000)
    b1, b2 = new_id("bet"), new_id("bet")
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, b1, 100, round_id="rc"))).status_code == 200
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, b2, 100, round_id="rc"))).status_code == 200
    r = await client.post("/v1/wallet/credit", json=credit_body(player, new_id("win"), 0, round_id="rc",
                                                                 round_closed=True))
    assert r.status_code == 200, r.text
    assert_problem(await client.post("/v1/wallet/rollback", json=rollback_body(player, new_id("rb"), b2)),
                   409, "transaction_settled")
    assert await balance(client, player) == (800, 0)


async def test_win_on_unknown_bet(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    win = new_id("win")
    problem = assert_problem(
        await client.post("/v1/wallet/credit", json=credit_body(player, win, 500, bet=new_id("nobet"))),
        404, "unknown_transaction")
    assert problem["cash_minor"] == 1_000
    assert await balance(client, player) == (1_000, 0)
    assert await txn_rows(gateway, win) == []
    # Not stored: audited, though.
    assert [a["code"] for a in await audit_rows(gateway, win)] == ["unknown_transaction"]


async def test_win_on_another_players_bet_is_unknown(client):
    player = await new_player(client, deposit_minor=1_000)
    other = await new_player(client, deposit_minor=1_000)
    bet = new_id("bet")
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, bet, 100))).status_code == 200
    assert_problem(await client.post("/v1/wallet/credit", json=credit_body(other, new_id("win"), 500, bet=bet)),
                   404, "unknown_transaction")
    assert await balance(client, other) == (1_000, 0)
    assert await balance(client, player) == (900, 0)


async def test_second_win_on_same_bet(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bet, w1, w2 = new_id("bet"), new_id("win"), new_id("win")
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, bet, 100))).status_code == 200
    assert (await client.post("/v1/wallet/credit", json=credit_body(player, w1, 300, bet=bet))).json()["cash_minor"] == 1_200
    problem = assert_problem(await client.post("/v1/wallet/credit", json=credit_body(player, w2, 300, bet=bet)),
                             409, "transaction_settled")
    assert problem["cash_minor"] == 1_200
    assert await balance(client, player) == (1_200, 0)
    assert await txn_rows(gateway, w2) == []
    # The first win's retry is still a plain replay.
    r = await client.post("/v1/wallet/credit", json=credit_body(player, w1, 300, bet=bet))
    assert r.status_code == 200 and r.json() == ok_body(w1, player, 1_200, replayed=True)


async def test_second_rollback_of_rolled_back_bet(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bet, rb1, rb2 = new_id("bet"), new_id("rb"), new_id("rb")
    assert (await client.post("/v1/wallet/debit", json=debit_body(player, bet, 300))).status_code == 200
    assert (await client.post("/v1/wallet/rollback", json=rollback_body(player, rb1, bet))).json()["cash_minor"] == 1_000
    problem = assert_problem(await client.post("/v1/wallet/rollback", json=rollback_body(player, rb2, bet)),
                             409, "transaction_rolled_back")
    assert problem["cash_minor"] == 1_000
    assert await balance(client, player) == (1_000, 0)
    assert await txn_rows(gateway, rb2) == []


async def test_rollback_of_a_refused_bet_moves_nothing(client, gateway):
    player = await new_player(client, deposit_minor=100)
    bet, rb = new_id("bet"), new_id("rb")
    assert_problem(await client.post("/v1/wallet/debit", json=debit_body(player, bet, 500)), 402, "insufficient_funds")
    r = await client.post("/v1/wallet/rollback", json=rollback_body(player, rb, bet))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(rb, player, 100)
    assert await balance(client, player) == (100, 0)
    (row,) = await txn_rows(gateway, rb)
    assert (row["cash_delta_minor"], row["bonus_delta_minor"]) == (0, 0)


# ---- concurrency ----------------------------------------------------------------------


async def test_concurrent_identical_debits_apply_once(client, gateway):
    player = await new_player(client, deposit_minor=10_000)
    bet = new_id("bet")
    body = debit_body(player, bet, 1_234)
    responses = await asyncio.gather(*(client.post("/v1/wallet/debit", json=body) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert {(b["cash_minor"], b["bonus_minor"]) for b in bodies} == {(8_766, 0)}
    assert sorted(b["replayed"] for b in bodies) == [False] + [True] * 19
    assert await balance(client, player) == (8_766, 0)
    assert len(await txn_rows(gateway, bet)) == 1
    conn = await db(gateway)
    try:
        balance_row = await conn.fetchval(
            "SELECT balance_minor FROM accounts WHERE account = $1 AND currency = 'EUR'", f"player:demo:{player}:cash")
    finally:
        await conn.close()
    assert balance_row == 8_766


async def test_concurrent_identical_rollbacks_of_unseen_key_apply_once(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bet, rb = new_id("bet"), new_id("rb")
    responses = await asyncio.gather(*(
        client.post("/v1/wallet/rollback", json=rollback_body(player, rb, bet)) for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10
    assert sorted(r.json()["replayed"] for r in responses) == [False] + [True] * 9
    assert len(await txn_rows(gateway, rb)) == 1
    assert len(await txn_rows(gateway, bet)) == 1


async def test_concurrent_different_debits_never_overdraw(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    bets = [new_id("bet") for _ in range(30)]
    amounts = [100 + (i % 3) * 50 for i in range(30)]  # 100, 150, 200, ...
    responses = await asyncio.gather(*(
        client.post("/v1/wallet/debit", json=debit_body(player, b, a)) for b, a in zip(bets, amounts)))
    ok = [(b, a, r.json()) for b, a, r in zip(bets, amounts, responses) if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    for r in refused:
        body = assert_problem(r, 402, "insufficient_funds")
        assert 0 <= body["cash_minor"] < 200  # refused only when the stake did not fit
    spent = sum(a for _, a, _ in ok)
    assert spent <= 1_000
    final_cash, final_bonus = await balance(client, player)
    assert (final_cash, final_bonus) == (1_000 - spent, 0)
    assert final_cash < 100 or len(ok) == 30  # applied greedily: no stake that fit was refused
    # Each success reports a distinct, non-negative post-balance, and they chain exactly.
    afters = sorted((body["cash_minor"] for _, _, body in ok), reverse=True)
    assert all(a >= 0 for a in afters)
    assert len(set(afters)) == len(afters)
    assert afters[-1] == final_cash
    assert len(ok) + len(refused) == 30
    conn = await db(gateway)
    try:
        rows = await conn.fetch(
            "SELECT code, amount_minor, cash_delta_minor FROM transactions WHERE player_id = $1 AND kind = 'debit'",
            player)
    finally:
        await conn.close()
    assert len(rows) == 30  # refusals for insufficient funds are stored outcomes too
    assert sum(-r["cash_delta_minor"] for r in rows if r["code"] == "ok") == spent
    assert sorted(r["code"] for r in rows) == sorted(["ok"] * len(ok) + ["insufficient_funds"] * len(refused))


# ---- cash and bonus -------------------------------------------------------------------


async def test_bonus_deposit_spend_cash_first_and_rollback_restores_split(client, gateway):
    player = await new_player(client, deposit_minor=300)
    dep = new_id("bonus")
    r = await client.post("/v1/wallet/deposit", json=funds_body(player, dep, 500, bonus=True))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(dep, player, 300, bonus=500)
    assert await balance(client, player) == (300, 500)
    (dep_row,) = await txn_rows(gateway, dep)
    assert (dep_row["cash_delta_minor"], dep_row["bonus_delta_minor"]) == (0, 500)

    bet = new_id("bet")
    r = await client.post("/v1/wallet/debit", json=debit_body(player, bet, 450))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(bet, player, 0, bonus=350)  # 300 cash first, then 150 bonus
    assert await balance(client, player) == (0, 350)
    (bet_row,) = await txn_rows(gateway, bet)
    assert (bet_row["cash_delta_minor"], bet_row["bonus_delta_minor"]) == (-300, -150)

    # Money moves between the balances in between; the rollback restores exactly the split.
    assert (await client.post("/v1/wallet/deposit", json=funds_body(player, new_id("dep"), 40))).status_code == 200
    rb = new_id("rb")
    r = await client.post("/v1/wallet/rollback", json=rollback_body(player, rb, bet))
    assert r.status_code == 200, r.text
    assert r.json() == ok_body(rb, player, 340, bonus=500)
    assert await balance(client, player) == (340, 500)
    (rb_row,) = await txn_rows(gateway, rb)
    assert (rb_row["cash_delta_minor"], rb_row["bonus_delta_minor"]) == (300, 150)

    conn = await db(gateway)
    try:
        accounts = dict(await conn.fetch(
            "SELECT account, balance_minor FROM accounts WHERE player_id = $1 AND currency = 'EUR'", player))
        bonus_house = await conn.fetchval(
            "SELECT sum(e.delta_minor) FROM entries e WHERE e.txn_id = $1 AND e.account LIKE 'house:bonus:%'",
            dep_row["txn_id"])
    finally:
        await conn.close()
    assert accounts == {f"player:demo:{player}:cash": 340, f"player:demo:{player}:bonus": 500}
    assert bonus_house == -500


async def test_bet_larger_than_cash_plus_bonus_refused(client):
    player = await new_player(client, deposit_minor=300)
    assert (await client.post("/v1/wallet/deposit", json=funds_body(player, new_id("b"), 200, bonus=True))).status_code == 200
    problem = assert_problem(await client.post("/v1/wallet/debit", json=debit_body(player, new_id("bet"), 501)),
                             402, "insufficient_funds")
    assert (problem["cash_minor"], problem["bonus_minor"]) == (300, 200)
    r = await client.post("/v1/wallet/debit", json=debit_body(player, new_id("bet"), 500))
    assert r.status_code == 200 and (r.json()["cash_minor"], r.json()["bonus_minor"]) == (0, 0)


async def test_withdraw_of_bonus_refused(client, gateway):
    player = await new_player(client, deposit_minor=100)
    assert (await client.post("/v1/wallet/deposit", json=funds_body(player, new_id("b"), 1_000, bonus=True))).status_code == 200
    wd = new_id("wd")
    assert_problem(await client.post("/v1/wallet/withdraw", json=funds_body(player, wd, 50, bonus=True)),
                   400, "invalid_request")
    assert await txn_rows(gateway, wd) == []
    # Bonus money is not withdrawable as cash either: only the cash balance counts.
    problem = assert_problem(await client.post("/v1/wallet/withdraw", json=funds_body(player, wd, 500)),
                             402, "insufficient_funds")
    assert (problem["cash_minor"], problem["bonus_minor"]) == (100, 1_000)
    assert await balance(client, player) == (100, 1_000)


@pytest.mark.parametrize("path", ["/v1/wallet/deposit", "/v1/wallet/withdraw", "/v1/wallet/debit"])
async def test_refusal_for_unknown_player_is_not_stored(client, gateway, path):
    """An unknown player's refusal is audited but not stored: the key stays usable."""
    player = new_id("ghost")
    txn = new_id("t")
    body = debit_body(player, txn, 100) if path.endswith("debit") else funds_body(player, txn, 100)
    assert_problem(await client.post(path, json=body), 404, "unknown_player")
    assert await txn_rows(gateway, txn) == []
    audits = await audit_rows(gateway, txn)
    assert [(a["code"], a["player_id"]) for a in audits] == [("unknown_player", player)]


async def test_prune_keeps_recent_keys_and_open_bets_and_drops_old_ones(client, gateway):
    """Retention (docs/DESIGN.md section 5): only outcomes older than the retention go; open bets stay."""
    from gateway.ledger.retention import prune_idempotency_keys

    player = await new_player(client, deposit_minor=1_000)
    old_settled, old_open, recent = new_id("bet"), new_id("bet"), new_id("bet")
    for bet, round_id in ((old_settled, "r-old-1"), (old_open, "r-old-2"), (recent, "r-new")):
        r = await client.post("/v1/wallet/debit", json={
            "transaction_id": bet, "player_id": player, "currency": "EUR", "amount_minor": 10,
            "round_id": round_id, "game_id": "g"})
        assert r.status_code == 200, r.text
    r = await client.post("/v1/wallet/credit", json={
        "transaction_id": new_id("win"), "player_id": player, "currency": "EUR", "amount_minor": 0,
        "round_id": "r-old-1", "game_id": "g", "bet_transaction_id": old_settled, "round_closed": True})
    assert r.status_code == 200, r.text
    conn = await asyncpg.connect(gateway.database_url)
    try:
        await conn.execute(
            "UPDATE transactions SET created_at = now() - interval '121 days' WHERE transaction_id = ANY($1::text[])",
            [old_settled, old_open])
        deleted = await prune_idempotency_keys(conn, 120)
        assert deleted == 1
        kept = {r["transaction_id"] for r in await conn.fetch(
            "SELECT transaction_id FROM transactions WHERE transaction_id = ANY($1::text[])",
            [old_settled, old_open, recent])}
        assert kept == {old_open, recent}
    finally:
        await conn.close()
