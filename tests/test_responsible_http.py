"""Responsible gaming over HTTP against a running gateway, real PostgreSQL and Redis.

Issue "Player money in and out", item 3: limits and exclusions enforced in the shard,
``PUT/GET /v1/players/{id}/limits`` and ``/exclusions``; stable codes and each provider's
own status; window sums durable across a restart; cooling-off and exclusion ends crossed
with the injected clock (``clock_offset_file``, gateway/clock.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx

from tests.conftest import new_id, new_player
from tests.helpers import balance
from tests.test_faults import restart
from tests.test_hub88_http import Hub88, bet_body, player_with_session


async def put_limits(client: httpx.AsyncClient, player: str, *limits: tuple, **extra) -> httpx.Response:
    body = {"limits": [{"kind": k, "period": p, "currency": "EUR", "amount_minor": a} for k, p, a in limits], **extra}
    return await client.put(f"/v1/players/{player}/limits", json=body)


async def debit(client: httpx.AsyncClient, player: str, amount: int, txn: str | None = None) -> httpx.Response:
    txn = txn or new_id("bet")
    return await client.post("/v1/wallet/debit", json={
        "transaction_id": txn, "player_id": player, "currency": "EUR", "amount_minor": amount,
        "round_id": f"r-{txn}", "game_id": "g1"})


async def deposit(client: httpx.AsyncClient, player: str, amount: int) -> httpx.Response:
    return await client.post("/v1/wallet/deposit", json={
        "transaction_id": new_id("dep"), "player_id": player, "currency": "EUR", "amount_minor": amount})


def limit_of(body: dict, kind: str, period: str) -> dict:
    (found,) = [x for x in body["limits"] if (x["kind"], x["period"]) == (kind, period)]
    return found


async def test_wager_and_loss_limits_at_the_boundary_and_several_periods(client, gateway):
    player = await new_player(client, deposit_minor=100_000)
    r = await put_limits(client, player, ("wager", "day", 1_000), ("loss", "week", 600), actor="player")
    assert r.status_code == 200, r.text
    assert r.json()["effective_at"][0] is not None and limit_of(r.json(), "wager", "day")["set_by"].endswith(":player")
    first = await debit(client, player, 600)
    assert first.status_code == 200
    over = await debit(client, player, 1)  # the weekly loss limit (600) is the lowest now
    assert over.status_code == 422 and over.json()["code"] == "loss_limit_reached", over.text
    bet_id = first.json()["transaction_id"]
    win = await client.post("/v1/wallet/credit", json={
        "transaction_id": new_id("win"), "player_id": player, "currency": "EUR", "amount_minor": 400,
        "round_id": "x", "game_id": "g1", "bet_transaction_id": bet_id})
    assert win.status_code == 200, win.text  # a win is never refused, and it lowers the loss
    view = (await client.get(f"/v1/players/{player}/limits")).json()
    assert limit_of(view, "wager", "day")["used_minor"] == 600
    assert limit_of(view, "loss", "week")["used_minor"] == 200
    # wager: 400 left; loss: 400 left; a 400 stake is exactly at both
    exact = await debit(client, player, 400)
    assert exact.status_code == 200, exact.text
    assert (await debit(client, player, 1)).json()["code"] == "loss_limit_reached"  # both passed: loss is checked first
    retry_txn = new_id("bet")
    refused = await debit(client, player, 5_000, retry_txn)
    assert refused.status_code == 422
    again = await debit(client, player, 5_000, retry_txn)  # stored: the same refusal
    assert again.status_code == 422 and again.json()["code"] == refused.json()["code"]


async def test_deposit_limit_and_increase_waits_for_cooling_off(client, gateway):
    player = await new_player(client)
    assert (await put_limits(client, player, ("deposit", "day", 500))).status_code == 200
    assert (await deposit(client, player, 500)).status_code == 200
    over = await deposit(client, player, 1)
    assert over.status_code == 422 and over.json()["code"] == "deposit_limit_reached"
    raised = await put_limits(client, player, ("deposit", "day", 5_000))
    limit = limit_of(raised.json(), "deposit", "day")
    assert limit["amount_minor"] == 500 and limit["pending"]["amount_minor"] == 5_000
    assert raised.json()["effective_at"][0] == limit["pending"]["effective_at"]
    assert (await deposit(client, player, 1)).json()["code"] == "deposit_limit_reached"
    lowered = await put_limits(client, player, ("deposit", "day", 400))  # a decrease: at once, cancels the wait
    now = limit_of(lowered.json(), "deposit", "day")
    assert now["amount_minor"] == 400 and "pending" not in now and now["remaining_minor"] == 0
    assert await balance(client, player) == (500, 0)


async def test_exclusion_refuses_bets_and_deposits_pays_wins_and_cannot_be_lifted(client, gateway):
    player, token = await player_with_session(client, deposit_minor=10_000)
    bet = await debit(client, player, 100)
    r = await client.put(f"/v1/players/{player}/exclusions", json={"kind": "timeout", "duration_days": 7})
    assert r.status_code == 200, r.text
    assert r.json()["excluded"] is True and r.json()["exclusion"]["kind"] == "timeout"
    refused = await debit(client, player, 100)
    assert refused.status_code == 403 and refused.json()["code"] == "player_excluded"
    assert (await deposit(client, player, 100)).json()["code"] == "player_excluded"
    win = await client.post("/v1/wallet/credit", json={
        "transaction_id": new_id("win"), "player_id": player, "currency": "EUR", "amount_minor": 50,
        "round_id": "x", "game_id": "g1", "bet_transaction_id": bet.json()["transaction_id"]})
    assert win.status_code == 200, win.text  # never refused for the exclusion
    lift = await client.post(f"/v1/players/{player}/status", json={"status": "active"})
    assert lift.status_code == 403 and lift.json()["code"] == "player_excluded"
    early = await client.put(f"/v1/players/{player}/exclusions", json={"kind": "return"})
    assert early.status_code == 403 and early.json()["code"] == "player_excluded"  # not before it ends
    shorter = await client.put(f"/v1/players/{player}/exclusions", json={"kind": "timeout", "duration_days": 1})
    assert shorter.json()["exclusion"]["ends_at"] == r.json()["exclusion"]["ends_at"]  # never shortened
    # the provider's own status (Hub88: RS_ERROR_USER_DISABLED)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as http:
        answer = await Hub88(http).post("/transaction/bet", bet_body(player, token, new_id("h"), 100_000,
                                                                     round_id=new_id("r")))
    assert answer["status"] == "RS_ERROR_USER_DISABLED"


async def test_bad_input_is_a_clear_4xx(client, gateway):
    player = await new_player(client)
    cases = [
        ({"limits": [{"kind": "bonus", "period": "day", "currency": "EUR", "amount_minor": 1}]}, 400, "invalid_request"),
        ({"limits": [{"kind": "loss", "period": "year", "currency": "EUR", "amount_minor": 1}]}, 400, "invalid_request"),
        ({"limits": [{"kind": "loss", "period": "day", "currency": "EUR", "amount_minor": 0}]}, 400, "invalid_amount"),
        ({"limits": [{"kind": "loss", "period": "day", "currency": "EUR", "amount_minor": 1.5}]}, 400, "invalid_request"),
        ({"limits": [{"kind": "loss", "period": "day", "currency": "XXQ", "amount_minor": 1}]}, 400, "unknown_currency"),
        ({"limits": [{"kind": "loss", "period": "day", "currency": "USD", "amount_minor": 1}]}, 422, "currency_mismatch"),
        ({"time_zone": "Mars/Olympus"}, 400, "invalid_request"),
        ({"limits": [{"kind": "loss", "period": "day", "currency": "EUR"}]}, 400, "invalid_request"),
    ]
    for body, status, code in cases:
        r = await client.put(f"/v1/players/{player}/limits", json=body)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
    for body in ({"kind": "timeout"}, {"kind": "self_exclusion"}, {"kind": "self_exclusion", "duration_days": "ever"},
                 {"kind": "self_exclusion", "duration_days": 183, "permanent": True}, {"kind": "nap"}):
        r = await client.put(f"/v1/players/{player}/exclusions", json=body)
        assert r.status_code == 400 and r.json()["code"] == "invalid_request", (body, r.text)
    for body, status, code in (({"kind": "timeout", "duration_days": 3}, 422, "exclusion_period_not_offered"),
                               ({"kind": "self_exclusion", "duration_days": 30}, 422, "exclusion_period_not_offered"),
                               ({"kind": "return"}, 409, "not_excluded")):
        r = await client.put(f"/v1/players/{player}/exclusions", json=body)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
    assert (await client.get("/v1/players/nobody-here/limits")).status_code == 404
    assert (await client.get(f"/v1/players/{player}/limits")).json()["limits"] == []
    assert (await client.get(f"/v1/players/{player}/exclusions")).json() == {"player_id": player, "excluded": False}


async def test_window_sums_and_limits_survive_a_restart(spawn_gateway):
    gw = await spawn_gateway()
    async with gw.client() as client:
        player = await new_player(client, deposit_minor=10_000)
        assert (await debit(client, player, 300)).status_code == 200  # before any limit: still counted
        assert (await put_limits(client, player, ("wager", "day", 1_000))).status_code == 200
        assert (await debit(client, player, 500)).status_code == 200
        rolled = await debit(client, player, 100)
        assert (await client.post("/v1/wallet/rollback", json={
            "transaction_id": new_id("rb"), "player_id": player,
            "reference_transaction_id": rolled.json()["transaction_id"]})).status_code == 200
    gw.kill()
    await restart(gw)
    async with gw.client() as client:
        view = (await client.get(f"/v1/players/{player}/limits")).json()
        assert limit_of(view, "wager", "day")["used_minor"] == 800  # 300 + 500; the rolled-back 100 is not
        assert (await debit(client, player, 201)).json()["code"] == "wager_limit_reached"
        assert (await debit(client, player, 200)).status_code == 200
    conn = await asyncpg.connect(gw.database_url)
    try:
        stored = await conn.fetchval("SELECT settings::text FROM player_rg WHERE player_id = $1", player)
    finally:
        await conn.close()
    assert '"wager"' in stored


def write_offset(path: str, seconds: int) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(str(seconds))
    tmp.replace(path)  # atomic: a process never reads half a number


async def shift_clock(path: str, seconds: int) -> None:
    """Move every process's clock of the gateway to ``seconds`` after the real one."""
    write_offset(path, seconds)
    await asyncio.sleep(0.2)  # > clock.REREAD_INTERVAL_NS


async def test_cooling_off_window_edge_and_exclusion_end_with_the_injected_clock(spawn_gateway, tmp_path):
    clock_file = str(tmp_path / "clock-offset")
    gw = await spawn_gateway(env={"GATEWAY_CLOCK_OFFSET_FILE": clock_file})
    async with gw.client() as client:
        player = await new_player(client, deposit_minor=100_000)
        assert (await put_limits(client, player, ("wager", "day", 1_000))).status_code == 200
        assert (await debit(client, player, 1_000)).status_code == 200
        raised = await put_limits(client, player, ("wager", "day", 5_000))
        assert "pending" in limit_of(raised.json(), "wager", "day")
        await shift_clock(clock_file, 23 * 3600)  # 23 h: the increase waits, the stake still counts
        assert (await debit(client, player, 1)).json()["code"] == "wager_limit_reached"
        await shift_clock(clock_file, 24 * 3600 + 600)  # past 24 h and its bucket: new limit, empty window
        view = (await client.get(f"/v1/players/{player}/limits")).json()
        assert limit_of(view, "wager", "day")["amount_minor"] == 5_000 and "pending" not in limit_of(view, "wager", "day")
        assert limit_of(view, "wager", "day")["used_minor"] == 0
        assert (await debit(client, player, 5_000)).status_code == 200
        assert (await debit(client, player, 1)).json()["code"] == "wager_limit_reached"

        other = await new_player(client, deposit_minor=1_000)
        assert (await client.put(f"/v1/players/{other}/exclusions", json={"kind": "timeout", "duration_days": 1})).status_code == 200
        assert (await debit(client, other, 10)).json()["code"] == "player_excluded"
        await shift_clock(clock_file, 2 * 86_400 + 700)  # the time-out (1 day from 24 h 10 min) has ended
        assert (await debit(client, other, 10)).status_code == 200
        assert (await client.get(f"/v1/players/{other}/exclusions")).json()["excluded"] is False

        selfx = await new_player(client, deposit_minor=1_000)
        r = await client.put(f"/v1/players/{selfx}/exclusions", json={"kind": "self_exclusion", "duration_days": 183})
        assert "ends_at" in r.json()["exclusion"]
        assert r.status_code == 200
        early = await client.put(f"/v1/players/{selfx}/exclusions", json={"kind": "return"})
        assert early.status_code == 403 and early.json()["code"] == "player_excluded"
        await shift_clock(clock_file, 2 * 86_400 + 700 + 183 * 86_400)
        assert (await debit(client, selfx, 10)).json()["code"] == "player_excluded"  # closed until asked
        back = await client.put(f"/v1/players/{selfx}/exclusions", json={"kind": "return"})
        assert back.status_code == 200 and "play_from" in back.json()["exclusion"]
        assert (await debit(client, selfx, 10)).json()["code"] == "player_excluded"  # the return cooling-off
        await shift_clock(clock_file, 4 * 86_400 + 800 + 183 * 86_400)
        assert (await debit(client, selfx, 10)).status_code == 200


async def test_session_time_limit_ends_a_game_sessions_bets_and_reality_check_is_carried(spawn_gateway, tmp_path):
    clock_file = str(tmp_path / "clock-offset")
    gw = await spawn_gateway(env={"GATEWAY_CLOCK_OFFSET_FILE": clock_file})
    async with gw.client() as client, httpx.AsyncClient(base_url=gw.url, timeout=15.0) as http:
        hub = Hub88(http)
        player = await new_player(client, deposit_minor=10_000)
        r = await client.put(f"/v1/players/{player}/limits",
                             json={"session_time_limit_s": 600, "reality_check_interval_s": 900})
        assert r.status_code == 200, r.text
        assert r.json()["session_time_limit"]["seconds"] == 600 and r.json()["reality_check_interval_s"] == 900
        session = await client.post("/v1/sessions", json={"player_id": player, "currency": "EUR", "provider": "hub88",
                                                          "game_id": "hub88_slot_1"})
        assert session.status_code == 201, session.text
        assert session.json()["session_time_limit_s"] == 600 and session.json()["reality_check_interval_s"] == 900
        token = session.json()["token"]
        first = bet_body(player, token, new_id("h"), 100_000, round_id=new_id("r"))
        assert (await hub.post("/transaction/bet", first))["status"] == "RS_OK"
        await shift_clock(clock_file, 601)
        late = await hub.post("/transaction/bet", bet_body(player, token, new_id("h"), 100_000, round_id=new_id("r")))
        assert late["status"] == "RS_ERROR_USER_DISABLED"  # the session has lasted its limit
        raised = await client.put(f"/v1/players/{player}/limits", json={"session_time_limit_s": 3_600})
        assert raised.json()["session_time_limit"]["seconds"] == 600  # an increase waits for the cooling-off
        fresh = (await client.post("/v1/sessions", json={"player_id": player, "currency": "EUR", "provider": "hub88",
                                                         "game_id": "hub88_slot_1"})).json()["token"]
        again = await hub.post("/transaction/bet", bet_body(player, fresh, new_id("h"), 100_000, round_id=new_id("r")))
        assert again["status"] == "RS_OK"  # a new session starts a new count


async def test_a_first_limit_set_while_a_bet_commits_still_counts_that_bet(client, gateway):
    """The shard waits for a resident player's pending writes before reading its window sums
    (Shard._commit_for_usage): a stake racing the player's first limit is counted whichever
    is applied first."""
    players = [await new_player(client, deposit_minor=10_000) for _ in range(12)]

    async def race(player: str) -> None:
        bet, limit = await asyncio.gather(
            debit(client, player, 300),
            put_limits(client, player, ("wager", "day", 1_000)))
        assert bet.status_code == 200 and limit.status_code == 200, (bet.text, limit.text)

    await asyncio.gather(*(race(p) for p in players))
    for player in players:
        view = (await client.get(f"/v1/players/{player}/limits")).json()
        assert limit_of(view, "wager", "day")["used_minor"] == 300, view
        assert (await debit(client, player, 701)).json()["code"] == "wager_limit_reached"
        assert (await debit(client, player, 700)).status_code == 200
