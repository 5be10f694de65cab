"""Regression: a NUL character (U+0000) in any text field must not stop the shard.

PostgreSQL text columns cannot hold NUL. Before the fix, one Hub88 request whose ``user``
held a NUL (even with a wrong signature: its refusal was audited under that player id) made
the whole batch statement fail; the shard stopped, the process exited for a restart, and the
provider's retry would stop it again. Now ``Shard.submit`` refuses such commands
(``commands.has_nul``) and records the refusal with the NUL replaced.
"""

from __future__ import annotations

import json

import asyncpg
import pytest

from gateway.shards.commands import (
    Atomic,
    Code,
    Credit,
    Debit,
    RecordRefusal,
    has_nul,
    without_nul,
)
from tests.conftest import new_id, new_player
from tests.test_hub88_http import sign


def test_has_nul_looks_into_every_text_field_and_units():
    debit = Debit("demo:hub88", "t1", "demo", "p1", "EUR", 1, "r1", "g1")
    assert not has_nul(debit)
    assert has_nul(Debit("demo:hub88", "t\x001", "demo", "p1", "EUR", 1, "r1", "g1"))
    assert has_nul(Credit("demo:hub88", "t1", "demo", "p1", "EUR", 1, "r1", "g\x00"))
    assert has_nul(Atomic("demo:softswiss", "demo", "p1", (debit, Debit("demo:softswiss", "t2", "demo", "p1", "EUR", 1, "r\x00", "g"))))
    refusal = without_nul(Debit("demo:hub88", "t\x001", "demo", "p\x001", "EUR", 1, "r1", "g1"))
    assert refusal.code is Code.INVALID_REQUEST and not has_nul(refusal)
    assert refusal.player_id == "p\ufffd1"
    kept = without_nul(RecordRefusal(scope="demo:hub88", code=Code.INVALID_SIGNATURE, detail="x", partner_id="demo", player_id="a\x00"))
    assert kept.code is Code.INVALID_SIGNATURE and kept.player_id == "a\ufffd"


@pytest.mark.parametrize("field", ["user", "transaction_uuid", "round", "game_code", "token"])
@pytest.mark.parametrize("signed", [True, False])
async def test_hub88_nul_in_a_field_is_refused_and_the_shard_keeps_serving(client, gateway, field, signed):
    player = await new_player(client, deposit_minor=1_000)
    r = await client.post("/v1/sessions", json={"player_id": player, "currency": "EUR",
                                                "provider": "hub88", "game_id": "g1"})
    token = r.json()["token"]
    doc = {"user": player, "transaction_uuid": new_id("t"), "supplier_transaction_id": "s",
           "token": token, "round": "r1", "round_closed": False, "request_uuid": new_id("q"),
           "game_code": "g1", "currency": "EUR", "bet": "zero", "amount": 100_000}
    doc[field] = doc[field] + "\x00x"
    body = json.dumps(doc).encode()
    headers = {"content-type": "application/json",
               "X-Hub88-Signature": sign(body) if signed else "bm9wZQ=="}
    r = await client.post("/providers/hub88/transaction/bet", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] != "RS_OK", r.text
    assert (await client.get("/readyz")).status_code == 200
    r = await client.get(f"/v1/players/{player}/balance")
    assert r.json()["balances"][0]["cash_minor"] == 1_000
    conn = await asyncpg.connect(gateway.database_url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM transactions WHERE player_id = $1 AND kind = 'debit'", player)
    finally:
        await conn.close()
    assert rows == 0
