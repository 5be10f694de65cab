"""Smoke test of the generic API over HTTP against a running gateway."""

from tests.conftest import new_id, new_player


async def test_debit_credit_round_trip(client):
    player = await new_player(client, deposit_minor=1_000)
    bet = new_id("bet")
    r = await client.post("/v1/wallet/debit", json={
        "transaction_id": bet, "player_id": player, "currency": "EUR", "amount_minor": 250,
        "round_id": "r1", "game_id": "g1",
    })
    assert r.status_code == 200, r.text
    assert r.json()["cash_minor"] == 750
    r = await client.post("/v1/wallet/credit", json={
        "transaction_id": new_id("win"), "player_id": player, "currency": "EUR", "amount_minor": 500,
        "round_id": "r1", "game_id": "g1", "bet_transaction_id": bet, "round_closed": True,
    })
    assert r.status_code == 200, r.text
    r = await client.get(f"/v1/players/{player}/balance")
    assert r.json()["balances"] == [{"currency": "EUR", "cash_minor": 1_250, "bonus_minor": 0}]
