"""Partners never see each other's players (docs/SECURITY.md, "Tenancy").

Every test gateway runs with two partners (tests/config/two_partners.toml): the sandbox's
"demo", with one integration per provider, and "rival", with its own API key and its own
Hub88 (``hub88-rival``) and Evolution (``evolution-rival``) integrations. Over HTTP, for
every generic-API route and for provider callbacks:

- another partner's player is ``unknown_player``, exactly as a missing one, and nothing of
  it changes (its balance, its status, its audit trail gains only the refusal);
- the same player id under two partners is two players, with independent wallets;
- the same transaction id under two partners (or two integrations) is two transactions;
- a session token works only on the integration it was opened for: another provider's,
  another integration's or another partner's token is refused with the protocol's token
  status, and a callback's partner is its integration's, whatever the token says.
"""

from __future__ import annotations

import json
from decimal import Decimal

import asyncpg
import httpx
import pytest

from tests.conftest import RIVAL_AUTH, new_id, new_player
from tests.helpers import balance
from tests.test_evolution_http import AUTH_TOKEN as EVOLUTION_TOKEN
from tests.test_hub88_http import HEADER, sign

RIVAL_EVOLUTION_TOKEN = "rival-evolution-auth-token"  # tests/config/two_partners.toml


@pytest.fixture
async def rival(gateway):
    async with httpx.AsyncClient(base_url=gateway.url, headers=RIVAL_AUTH, timeout=10.0) as c:
        yield c


@pytest.fixture
async def wire(gateway):
    """A client with no API key: the providers' side."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10.0) as c:
        yield c


async def audit_count(gateway, player_id: str, partner_id: str) -> int:
    conn = await asyncpg.connect(gateway.database_url)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE player_id = $1 AND partner_id = $2", player_id, partner_id)
    finally:
        await conn.close()


def money(player: str, **extra) -> dict:
    return {"transaction_id": new_id("tx"), "player_id": player, "currency": "EUR", "amount_minor": 100, **extra}


def unknown_player(r: httpx.Response) -> None:
    assert r.status_code == 404, (r.status_code, r.text)
    assert r.json()["code"] == "unknown_player", r.text


# ---- the generic API ------------------------------------------------------------------


async def test_another_partners_player_is_unknown_on_every_route(client, rival, gateway):
    player = await new_player(client, deposit_minor=10_000)
    bet = money(player, round_id="r1", game_id="g1")
    assert (await client.post("/v1/wallet/debit", json=bet)).status_code == 200
    before = await balance(client, player)

    unknown_player(await rival.get(f"/v1/players/{player}/balance"))
    for route, body in [
        ("/v1/wallet/deposit", money(player)),
        ("/v1/wallet/withdraw", money(player)),
        ("/v1/wallet/debit", money(player, round_id="r2", game_id="g1")),
        ("/v1/wallet/credit", money(player, round_id="r1", game_id="g1", bet_transaction_id=bet["transaction_id"])),
        ("/v1/wallet/credit", money(player, round_id="r9", game_id="g1")),
        ("/v1/wallet/rollback", {"transaction_id": new_id("rb"), "player_id": player,
                                 "reference_transaction_id": bet["transaction_id"], "currency": "EUR"}),
        ("/v1/sessions", {"player_id": player, "currency": "EUR", "provider": "hub88-rival", "game_id": "g"}),
    ]:
        unknown_player(await rival.post(route, json=body))
    for status in ("self_excluded", "blocked", "active"):
        unknown_player(await rival.post(f"/v1/players/{player}/status", json={"status": status}))

    assert await balance(client, player) == before
    r = await client.get(f"/v1/players/{player}/balance")
    assert r.status_code == 200
    # demo's player can still bet: the rival's status calls changed nothing
    assert (await client.post("/v1/wallet/debit", json=money(player, round_id="r3", game_id="g1"))).status_code == 200


async def test_unknown_and_foreign_players_are_indistinguishable(client, rival):
    player = await new_player(client)
    foreign = await rival.get(f"/v1/players/{player}/balance")
    missing = await rival.get(f"/v1/players/{new_id('p')}/balance")
    assert (foreign.status_code, foreign.json()["code"]) == (missing.status_code, missing.json()["code"])
    assert set(foreign.json()) == set(missing.json())


async def test_the_same_player_id_under_two_partners_is_two_players(client, rival):
    player = new_id("p")
    body = {"player_id": player, "currencies": ["EUR"], "country": "MT"}
    assert (await client.post("/v1/players", json=body)).status_code == 201
    assert (await rival.post("/v1/players", json={**body, "currencies": ["EUR", "SEK"], "country": "SE"})).status_code == 201
    deposit = money(player, amount_minor=500)
    assert (await client.post("/v1/wallet/deposit", json=deposit)).status_code == 200
    # the same transaction id, for the other partner's player of the same id: a transaction of its own
    r = await rival.post("/v1/wallet/deposit", json={**deposit, "amount_minor": 70})
    assert r.status_code == 200 and r.json()["replayed"] is False and r.json()["cash_minor"] == 70, r.text
    assert await balance(client, player) == (500, 0)
    assert await balance(rival, player) == (70, 0)
    assert [b["currency"] for b in (await rival.get(f"/v1/players/{player}/balance")).json()["balances"]] == ["EUR", "SEK"]
    # and each partner's retry is its own replay
    again = await client.post("/v1/wallet/deposit", json=deposit)
    assert again.json()["replayed"] is True and again.json()["cash_minor"] == 500


async def test_a_partner_cannot_open_a_session_on_another_partners_integration(client, rival):
    player = await new_player(rival)
    r = await rival.post("/v1/sessions", json={"player_id": player, "currency": "EUR", "provider": "hub88",
                                               "game_id": "g"})
    assert r.status_code == 400 and r.json()["code"] == "unknown_provider", r.text
    r = await rival.post("/v1/sessions", json={"player_id": player, "currency": "EUR", "provider": "hub88-rival",
                                               "game_id": "g"})
    assert r.status_code == 201, r.text
    assert r.json()["provider"] == "hub88-rival"


@pytest.mark.parametrize("header", ["Bearer", "Basic demo-key-change-me",
                                    "demo-key-change-me", "Bearer demo-key-change-me-not", "Bearer DEMO-KEY-CHANGE-ME"])
async def test_empty_wrong_or_malformed_keys_are_refused(gateway, header):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10.0) as c:
        r = await c.get(f"/v1/players/{new_id('p')}/balance", headers={"Authorization": header})
    assert r.status_code == 401 and r.json()["code"] == "unauthorized", r.text


# ---- provider callbacks ---------------------------------------------------------------------


def hub88_bet(user: str, token: str) -> bytes:
    return json.dumps({
        "request_uuid": new_id("rq"), "token": token, "user": user, "transaction_uuid": new_id("t"),
        "round": new_id("r"), "round_closed": False, "game_code": "hub88_slot_1", "currency": "EUR",
        "amount": 100_000, "is_free": False,
    }).encode()


def hub88_win(user: str, token: str | None, amount: int = 500_000) -> bytes:
    body = {"request_uuid": new_id("rq"), "user": user, "transaction_uuid": new_id("t"),
            "reference_transaction_uuid": new_id("missing"), "round": new_id("r"), "round_closed": True,
            "game_code": "hub88_slot_1", "currency": "EUR", "amount": amount}
    if token is not None:
        body["token"] = token
    return json.dumps(body).encode()


async def hub88_post(wire: httpx.AsyncClient, integration: str, endpoint: str, body: bytes) -> dict:
    r = await wire.post(f"/providers/{integration}{endpoint}", content=body,
                        headers={HEADER: sign(body), "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


async def session(c: httpx.AsyncClient, player: str, integration: str) -> str:
    r = await c.post("/v1/sessions", json={"player_id": player, "currency": "EUR", "provider": integration,
                                           "game_id": "g"})
    assert r.status_code == 201, r.text
    return r.json()["token"]


async def test_hub88_tokens_work_only_on_their_integration(client, rival, wire):
    player = await new_player(client, deposit_minor=10_000)
    demo_token = await session(client, player, "hub88")
    evolution_token = await session(client, player, "evolution")
    # the right integration accepts it
    ok = await hub88_post(wire, "hub88", "/transaction/bet", hub88_bet(player, demo_token))
    assert ok["status"] == "RS_OK", ok
    # another provider's token on Hub88, and demo's Hub88 token on the rival's Hub88
    for integration, token in [("hub88", evolution_token), ("hub88-rival", demo_token)]:
        refused = await hub88_post(wire, integration, "/transaction/bet", hub88_bet(player, token))
        assert refused["status"] == "RS_ERROR_INVALID_TOKEN", (integration, refused)
        refused = await hub88_post(wire, integration, "/transaction/win", hub88_win(player, token))
        assert refused["status"] == "RS_ERROR_INVALID_TOKEN", (integration, refused)
    assert await balance(client, player) == (9_900, 0)


async def test_a_callback_acts_for_its_integrations_partner_only(client, rival, wire, gateway):
    """A win without a token names its player by id only: on the rival's integration, demo's
    player of that id is unknown (RS_ERROR_INVALID_TOKEN, README choice 2), never paid."""
    player = await new_player(client, deposit_minor=1_000)
    audits = await audit_count(gateway, player, "demo")
    answer = await hub88_post(wire, "hub88-rival", "/transaction/win", hub88_win(player, None))
    assert answer["status"] == "RS_ERROR_INVALID_TOKEN", answer
    assert await balance(client, player) == (1_000, 0)
    assert await audit_count(gateway, player, "demo") == audits
    # the rival's own player of the same id is the one its integration pays
    assert (await rival.post("/v1/players", json={"player_id": player, "currencies": ["EUR"], "country": "MT"})).status_code == 201
    rival_token = await session(rival, player, "hub88-rival")
    bet = json.loads(hub88_bet(player, rival_token))
    r = await rival.post("/v1/wallet/deposit", json=money(player, amount_minor=300))
    assert r.status_code == 200
    placed = await hub88_post(wire, "hub88-rival", "/transaction/bet", json.dumps(bet).encode())
    assert placed["status"] == "RS_OK" and placed["balance"] == 200_000, placed
    assert await balance(client, player) == (1_000, 0)


async def evolution_post(wire: httpx.AsyncClient, integration: str, endpoint: str, payload: dict, token: str) -> dict:
    body = json.dumps(payload, default=str).encode()
    r = await wire.post(f"/providers/{integration}{endpoint}", content=body, params={"authToken": token},
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    return json.loads(r.content, parse_float=Decimal)


def evolution_debit(player: str, sid: str) -> dict:
    return {"sid": sid, "userId": player, "uuid": new_id("uu"), "currency": "EUR",
            "game": {"id": new_id("r"), "type": "blackjack", "details": {"table": {"id": "t1", "vid": None}}},
            "transaction": {"id": new_id("tx"), "refId": new_id("ref"), "amount": "1.00"}}


async def test_evolution_integrations_authenticate_with_their_own_key(client, rival, wire):
    player = await new_player(rival, deposit_minor=1_000)
    sid = await session(rival, player, "evolution-rival")
    # demo's Evolution key does not open the rival's integration, nor the other way round
    refused = await evolution_post(wire, "evolution-rival", "/debit", evolution_debit(player, sid), EVOLUTION_TOKEN)
    assert refused["status"] == "INVALID_TOKEN_ID", refused
    refused = await evolution_post(wire, "evolution", "/debit", evolution_debit(player, sid), RIVAL_EVOLUTION_TOKEN)
    assert refused["status"] == "INVALID_TOKEN_ID", refused
    # the rival's sid on demo's Evolution integration (right key for it): not its session
    refused = await evolution_post(wire, "evolution", "/debit", evolution_debit(player, sid), EVOLUTION_TOKEN)
    assert refused["status"] in ("INVALID_SID", "INVALID_TOKEN_ID"), refused
    assert await balance(rival, player) == (1_000, 0)
    placed = await evolution_post(wire, "evolution-rival", "/debit", evolution_debit(player, sid), RIVAL_EVOLUTION_TOKEN)
    assert placed["status"] == "OK" and placed["balance"] == Decimal("9.00"), placed


async def test_every_generic_api_answer_names_only_the_callers_players(client, rival):
    """The same transaction id under both partners' API scopes never collides or replays."""
    mine, theirs = await new_player(client, deposit_minor=1_000), await new_player(rival, deposit_minor=1_000)
    shared_id = new_id("shared")
    r1 = await client.post("/v1/wallet/withdraw", json={**money(mine), "transaction_id": shared_id})
    r2 = await rival.post("/v1/wallet/withdraw", json={**money(theirs), "transaction_id": shared_id})
    assert r1.status_code == r2.status_code == 200
    assert (r1.json()["player_id"], r1.json()["replayed"]) == (mine, False)
    assert (r2.json()["player_id"], r2.json()["replayed"]) == (theirs, False)
    # a retry by one partner naming the other's player is a conflict on its own key, never theirs
    r = await client.post("/v1/wallet/withdraw", json={**money(theirs), "transaction_id": shared_id})
    assert r.status_code in (404, 409), r.text
    assert await balance(rival, theirs) == (900, 0)
