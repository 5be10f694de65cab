"""Player status over the generic API: ``POST /v1/players/{player_id}/status``.

Issue "Provider protocols", item 4: a player can be blocked or self-excluded; bets are then
refused, wins and rollbacks still accepted ("Common ground" in each gateway/providers/<name>/README.md:
providers retry wins and rollbacks for days, so they must land whatever the player's
status). The status is durable: it survives a restart (migration 0003, batch function).
Each provider's own answer to a blocked player's bet is checked by the conformance suite.
"""

from __future__ import annotations

import asyncpg
import httpx

from tests.conftest import new_id, new_player
from tests.helpers import balance


async def set_status(client: httpx.AsyncClient, player_id: str, status: str) -> httpx.Response:
    return await client.post(f"/v1/players/{player_id}/status", json={"status": status, "reason": "test"})


async def debit(client: httpx.AsyncClient, player_id: str, amount_minor: int, txn: str | None = None,
                round_id: str = "r1") -> httpx.Response:
    return await client.post("/v1/wallet/debit", json={
        "transaction_id": txn or new_id("bet"), "player_id": player_id, "currency": "EUR",
        "amount_minor": amount_minor, "round_id": round_id, "game_id": "g1",
    })


async def test_blocked_player_cannot_bet_but_gets_wins_and_rollbacks(client, gateway):
    player = await new_player(client, deposit_minor=1_000)
    open_bet = new_id("bet")
    settled_bet = new_id("bet")
    assert (await debit(client, player, 100, open_bet, "r1")).status_code == 200
    assert (await debit(client, player, 200, settled_bet, "r2")).status_code == 200

    r = await set_status(client, player, "blocked")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "blocked"

    refused_txn = new_id("bet")
    r = await debit(client, player, 50, refused_txn)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "player_blocked"
    assert r.json()["cash_minor"] == 700  # the unchanged balance rides along
    # The refusal is stored: the same bet retried gets the same answer, even after unblocking.
    r = await client.post("/v1/wallet/credit", json={
        "transaction_id": new_id("win"), "player_id": player, "currency": "EUR", "amount_minor": 500,
        "round_id": "r2", "game_id": "g1", "bet_transaction_id": settled_bet, "round_closed": True,
    })
    assert r.status_code == 200, r.text
    r = await client.post("/v1/wallet/rollback", json={
        "transaction_id": new_id("rb"), "player_id": player, "reference_transaction_id": open_bet,
    })
    assert r.status_code == 200, r.text
    assert (await balance(client, player))[0] == 1_000 - 200 + 500

    assert (await set_status(client, player, "active")).status_code == 200
    r = await debit(client, player, 50, refused_txn)
    assert r.status_code == 403 and r.json()["code"] == "player_blocked", r.text  # stored outcome
    assert (await debit(client, player, 50)).status_code == 200
    assert (await balance(client, player))[0] == 1_250

    conn = await asyncpg.connect(gateway.database_url)
    try:
        status = await conn.fetchval("SELECT status FROM players WHERE player_id = $1", player)
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE player_id = $1 AND kind = 'player_status'", player)
    finally:
        await conn.close()
    assert status == "active"
    assert audited == 2


async def test_self_excluded_player_is_refused_bets(client):
    player = await new_player(client, deposit_minor=1_000)
    r = await set_status(client, player, "self_excluded")
    assert r.status_code == 200 and r.json()["status"] == "self_excluded", r.text
    r = await debit(client, player, 10)
    assert r.status_code == 403 and r.json()["code"] == "player_blocked", r.text
    assert (await balance(client, player))[0] == 1_000
    # Setting the same status again is fine and changes nothing.
    assert (await set_status(client, player, "self_excluded")).status_code == 200


async def test_status_refusals(client, gateway):
    player = await new_player(client)
    r = await set_status(client, player, "frozen")
    assert r.status_code == 400 and r.json()["code"] == "invalid_request", r.text
    r = await set_status(client, new_id("p"), "blocked")
    assert r.status_code == 404 and r.json()["code"] == "unknown_player", r.text
    r = await client.post(f"/v1/players/{player}/status", content=b"{not json",
                          headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_request", r.text
    r = await client.post(f"/v1/players/{player}/status", json={"status": 3})
    assert r.status_code == 400, r.text
    r = await client.post(f"/v1/players/{player}/status", json={"status": "blocked"},
                          headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401, r.text
    conn = await asyncpg.connect(gateway.database_url)
    try:
        assert await conn.fetchval("SELECT status FROM players WHERE player_id = $1", player) == "active"
    finally:
        await conn.close()


async def test_status_survives_a_restart(spawn_gateway):
    gw = await spawn_gateway()
    async with gw.client() as client:
        player = await new_player(client, deposit_minor=100)
        assert (await set_status(client, player, "blocked")).status_code == 200
    gw.kill()
    gw.start()
    async with gw.client() as client:
        r = await debit(client, player, 10)
        assert r.status_code == 403 and r.json()["code"] == "player_blocked", r.text
        r = await client.get(f"/v1/players/{player}/balance")
        assert r.status_code == 200
