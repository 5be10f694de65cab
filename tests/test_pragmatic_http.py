"""Pragmatic Play seamless wallet end to end: hashed form posts against a real gateway process.

Sources: gateway/providers/pragmatic/README.md ("Common ground"), docs/DESIGN.md
sections 5 (idempotency) and 8 (errors), gateway/providers/pragmatic/README.md (status table
and choices).

Every request is an ``application/x-www-form-urlencoded`` POST carrying ``hash`` = md5 of
the other parameters sorted by name as ``k=v&k=v`` plus the sandbox secret
(config/sandbox.toml ``[integrations.pragmatic]``). Every answer must be HTTP 200, JSON, with an
``error`` from gateway/providers/pragmatic/README.md's list (``PP.call``); amounts in answers are parsed as Decimal to
check they are exact. Balances are read back through the generic API and ledger rows with
asyncpg on the gateway's database. Each test uses fresh players, tokens and references.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from decimal import Decimal
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest

from gateway.config import load_settings
from gateway.embedded import EmbeddedServices
from tests.conftest import new_id, new_player
from tests.helpers import cash, expire

PREFIX = "/providers/pragmatic"
SECRET = "pragmatic-demo-secret"  # config/sandbox.toml [integrations.pragmatic] secret_key
PROVIDER_ID = "PragmaticPlay"  # config/sandbox.toml [integrations.pragmatic] provider_id
FORM = "application/x-www-form-urlencoded"
BODY_BYTES_MAX = 65536  # config/default.toml [server] body_bytes_max
#: gateway/providers/pragmatic/README.md "Error codes": nothing else may ever be sent.
ERRORS = {0, 1, 2, 3, 4, 5, 6, 7, 8, 50, 100, 120, 130, 210, 310}
ENDPOINTS = ("/authenticate.html", "/balance.html", "/bet.html", "/result.html", "/bonusWin.html",
             "/jackpotWin.html", "/promoWin.html", "/endRound.html", "/refund.html",
             "/adjustment.html", "/getBalancePerGame.html", "/sessionExpired.html",
             "/roundDetails.html")
GAME = "vs20doghouse"


# ---- Pragmatic's side of the wire -----------------------------------------------------------


def md5_hash(params: dict[str, str], secret: str = SECRET) -> str:
    """gateway/providers/pragmatic/README.md: md5 of all other parameters sorted by name as k=v&k=v, secret appended."""
    text = "&".join(f"{k}={params[k]}" for k in sorted(params)) + secret
    return hashlib.md5(text.encode()).hexdigest()


def signed(params: dict[str, str], secret: str = SECRET) -> dict[str, str]:
    params = {"providerId": PROVIDER_ID, **params}
    return {**params, "hash": md5_hash(params, secret)}


class PP:
    """Pragmatic's client: posts hashed forms, checks every answer's envelope."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def raw(self, endpoint: str, content: bytes, headers: dict | None = None) -> dict:
        """POST raw bytes; the answer must be HTTP 200 JSON with a Pragmatic ``error``."""
        h = {"Content-Type": FORM, **(headers or {})}
        r = await self.http.post(PREFIX + endpoint, content=content, headers=h)
        assert r.status_code == 200, (endpoint, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("application/json"), r.headers
        answer = json.loads(r.content, parse_float=Decimal)
        assert isinstance(answer, dict) and answer.get("error") in ERRORS, answer
        assert isinstance(answer.get("description"), str), answer
        # README.md "Certification": transactionId is a JSON string
        assert "transactionId" not in answer or isinstance(answer["transactionId"], str), answer
        return answer

    async def call(self, endpoint: str, params: dict[str, str], *, secret: str = SECRET) -> dict:
        return await self.raw(endpoint, urlencode(signed(params, secret)).encode())


@pytest.fixture
async def pp(gateway):
    """Pragmatic's client: no gateway API key (Pragmatic authenticates by hash only)."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as http:
        yield PP(http)


# ---- gateway side: players, sessions, balances, ledger rows ---------------------------------


async def open_session(client, player: str, currency: str = "EUR", provider: str = "pragmatic") -> str:
    r = await client.post("/v1/sessions", json={"player_id": player, "currency": currency,
                                               "provider": provider, "game_id": GAME})
    assert r.status_code == 201, r.text
    return r.json()["token"]


async def seat(client, deposit_minor: int = 10_000, currency: str = "EUR") -> tuple[str, str]:
    player = await new_player(client, currencies=(currency,), deposit_minor=deposit_minor)
    return player, await open_session(client, player, currency)


async def fetch(gateway, sql: str, *args):
    conn = await asyncpg.connect(gateway.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def txn_rows(gateway, transaction_id: str) -> list[dict]:
    rows = await fetch(gateway, "SELECT txn_id, kind, player_id, amount_minor, code, bet_state, "
                                "credit_type, cash_delta_minor FROM transactions "
                                "WHERE scope = 'demo:pragmatic' AND transaction_id = $1", transaction_id)
    return [dict(r) for r in rows]


async def counts(gateway) -> tuple[int, int, int]:
    """(rows in transactions, rows in entries, rows in audit_log)."""
    rows = await fetch(gateway, "SELECT (SELECT count(*) FROM transactions) AS t, "
                                "(SELECT count(*) FROM entries) AS e, "
                                "(SELECT count(*) FROM audit_log) AS a")
    return rows[0]["t"], rows[0]["e"], rows[0]["a"]


async def house_accounts(gateway, txn_id: int) -> list[str]:
    rows = await fetch(gateway, "SELECT account FROM entries WHERE txn_id = $1 AND account LIKE 'house:%'",
                       txn_id)
    return [r["account"] for r in rows]


def bet_params(player: str, token: str, reference: str, amount: str, round_id: str, **extra) -> dict:
    return {"userId": player, "token": token, "gameId": GAME, "roundId": round_id, "amount": amount,
            "reference": reference, "timestamp": "1700000000000", "roundDetails": "spin",
            "platform": "WEB", **extra}


def result_params(player: str, token: str | None, reference: str, amount: str, round_id: str,
                  **extra) -> dict:
    params = {"userId": player, "gameId": GAME, "roundId": round_id, "amount": amount,
              "reference": reference, "timestamp": "1700000000001", "roundDetails": "spin",
              "platform": "WEB", **extra}
    if token is not None:
        params["token"] = token
    return params


def refund_params(player: str, token: str | None, reference: str, **extra) -> dict:
    params = {"userId": player, "reference": reference, "gameId": GAME, **extra}
    if token is not None:
        params["token"] = token
    return params


def success(answer: dict, cash_text: str, bonus_text: str = "0.00", currency: str = "EUR") -> None:
    """error 0 with exactly these decimal texts for cash and bonus."""
    assert answer["error"] == 0, answer
    assert answer["description"] == "Success", answer
    assert answer["currency"] == currency, answer
    assert (str(answer["cash"]), str(answer["bonus"])) == (cash_text, bonus_text), answer


# ==== endpoints ===============================================================================


async def test_authenticate(client, gateway, pp):
    player, token = await seat(client, deposit_minor=10_050)
    got = await pp.call("/authenticate.html", {"token": token, "gameId": GAME, "ipAddress": "10.0.0.1"})
    assert got == {"error": 0, "description": "Success", "userId": player, "token": token,
                   "currency": "EUR", "cash": Decimal("100.50"), "bonus": Decimal("0.00"),
                   "country": "MT", "jurisdiction": "MT"}, got
    assert str(got["cash"]) == "100.50"


async def test_authenticate_refuses_unknown_and_foreign_tokens(client, gateway, pp):
    player = await new_player(client, deposit_minor=100)
    hub88_token = await open_session(client, player, provider="hub88")
    for token in ("never-issued", hub88_token):
        got = await pp.call("/authenticate.html", {"token": token})
        assert got == {"error": 4, "description": "Token is invalid or expired"}, got


async def test_balance(client, gateway, pp, services):
    player, token = await seat(client, deposit_minor=1_234)
    success(await pp.call("/balance.html", {"userId": player, "token": token}), "12.34")
    other, _ = await seat(client)
    assert (await pp.call("/balance.html", {"userId": other, "token": token}))["error"] == 4
    await expire(services.redis_url, token)
    assert (await pp.call("/balance.html", {"userId": player, "token": token}))["error"] == 4
    # the token is optional (README.md "Certification"): the player's only wallet
    success(await pp.call("/balance.html", {"userId": player}), "12.34")
    two = await new_player(client, currencies=("EUR", "USD"), deposit_minor=100)
    assert (await pp.call("/balance.html", {"userId": two}))["error"] == 7
    assert (await pp.call("/balance.html", {"userId": "nobody-" + new_id()}))["error"] == 2


async def test_get_balance_per_game(client, gateway, pp):
    player, token = await seat(client, deposit_minor=2_500)
    got = await pp.call("/getBalancePerGame.html", {"userId": player, "token": token,
                                                     "gameIdList": "vs20doghouse,vs25wolfgold"})
    assert got["error"] == 0, got
    assert got["gamesBalances"] == [
        {"gameID": "vs20doghouse", "cash": Decimal("25.00"), "bonus": Decimal("0.00")},
        {"gameID": "vs25wolfgold", "cash": Decimal("25.00"), "bonus": Decimal("0.00")}], got
    without_token = await pp.call("/getBalancePerGame.html", {"userId": player, "gameIdList": "vs1"})
    assert without_token["gamesBalances"][0]["cash"] == Decimal("25.00")
    bad = await pp.call("/getBalancePerGame.html", {"userId": player, "gameIdList": ",,"})
    assert bad["error"] == 7


async def test_bet_and_result(client, gateway, pp):
    player, token = await seat(client, deposit_minor=10_000)
    rd, ref = new_id("rd"), new_id("bet")
    got = await pp.call("/bet.html", bet_params(player, token, ref, "1.50", rd))
    success(got, "98.50")
    assert str(got["usedPromo"]) == "0.00"
    [row] = await txn_rows(gateway, ref)
    assert got["transactionId"] == str(row["txn_id"])
    assert (row["kind"], row["amount_minor"], row["bet_state"]) == ("debit", 150, "open")

    win_ref = new_id("res")
    got = await pp.call("/result.html", result_params(player, token, win_ref, "3.05", rd))
    success(got, "101.55")
    [win] = await txn_rows(gateway, win_ref)
    assert got["transactionId"] == str(win["txn_id"])
    assert (win["kind"], win["amount_minor"], win["credit_type"]) == ("credit", 305, "win")
    # result names the round only and closes it: the round's bet is settled
    assert (await txn_rows(gateway, ref))[0]["bet_state"] == "settled"
    assert await cash(client, player) == 10_155


async def test_content_type_parameters_and_unknown_fields_are_tolerated(client, gateway, pp):
    player, token = await seat(client, deposit_minor=10_000)
    params = bet_params(player, token, new_id("bet"), "1.00", new_id("rd"), language="en",
                        ipAddress="10.0.0.1", someFutureField="x")
    got = await pp.raw("/bet.html", urlencode(signed(params)).encode(),
                       {"Content-Type": "Application/X-WWW-Form-Urlencoded; charset=UTF-8"})
    success(got, "99.00")


async def test_exact_amounts_in_other_currencies(client, gateway, pp):
    player, token = await seat(client, deposit_minor=5_000, currency="JPY")
    success(await pp.call("/bet.html", bet_params(player, token, new_id("bet"), "100", new_id("rd"))),
            "4900", "0", currency="JPY")
    success(await pp.call("/bet.html", bet_params(player, token, new_id("bet"), "100.0", new_id("rd"))),
            "4800", "0", currency="JPY")
    got = await pp.call("/bet.html", bet_params(player, token, new_id("bet"), "1.5", new_id("rd")))
    assert got["error"] == 7
    kwd_player, kwd_token = await seat(client, deposit_minor=10_000, currency="KWD")
    success(await pp.call("/bet.html", bet_params(kwd_player, kwd_token, new_id("bet"), "1.234", new_id("rd"))),
            "8.766", "0.000", currency="KWD")


# ==== idempotency (docs/DESIGN.md section 5; gateway/providers/pragmatic/README.md "a repeated reference ...") ============


async def test_replay_returns_original_transaction_id_and_current_balance(client, gateway, pp):
    player, token = await seat(client, deposit_minor=10_000)
    first_ref = new_id("bet")
    first = await pp.call("/bet.html", bet_params(player, token, first_ref, "10.00", "rd-a"))
    success(first, "90.00")
    success(await pp.call("/bet.html", bet_params(player, token, new_id("bet"), "5.00", "rd-b")), "85.00")

    for _ in range(2):
        replay = await pp.call("/bet.html", bet_params(player, token, first_ref, "10.00", "rd-a"))
        success(replay, "85.00")  # the current balance, not the one after the original
        assert replay["transactionId"] == first["transactionId"]
    assert await cash(client, player) == 8_500
    assert len(await txn_rows(gateway, first_ref)) == 1

    win_ref = new_id("res")
    won = await pp.call("/result.html", result_params(player, token, win_ref, "1.00", "rd-a"))
    again = await pp.call("/result.html", result_params(player, token, win_ref, "1.00", "rd-a"))
    assert again["transactionId"] == won["transactionId"] and again["cash"] == won["cash"]
    assert await cash(client, player) == 8_600


async def test_concurrent_retries_of_one_bet_debit_once(client, gateway, pp):
    player, token = await seat(client, deposit_minor=10_000)
    params = bet_params(player, token, new_id("bet"), "20.00", new_id("rd"))
    answers = await asyncio.gather(*(pp.call("/bet.html", params) for _ in range(10)))
    assert {a["error"] for a in answers} == {0}
    assert len({a["transactionId"] for a in answers}) == 1
    assert await cash(client, player) == 8_000


@pytest.mark.parametrize("field,value", [("amount", "2.00"), ("roundId", "rd-other"),
                                         ("gameId", "vs25wolfgold")])
async def test_same_reference_different_content_is_refused(client, gateway, pp, field, value):
    """gateway/providers/pragmatic/README.md "Common ground": same id, different content = duplicate error; Pragmatic
    has no duplicate code, README "Status table": 7. Nothing applied; audited."""
    player, token = await seat(client, deposit_minor=10_000)
    ref = new_id("bet")
    params = bet_params(player, token, ref, "1.00", "rd-x")
    success(await pp.call("/bet.html", params), "99.00")
    _, _, audits = await counts(gateway)

    got = await pp.call("/bet.html", {**params, field: value})

    assert got["error"] == 7 and "transactionId" not in got, got
    assert str(got["cash"]) == "99.00"
    assert await cash(client, player) == 9_900
    assert len(await txn_rows(gateway, ref)) == 1
    assert (await counts(gateway))[2] > audits
    success(await pp.call("/bet.html", params), "99.00")


async def test_insufficient_balance_answers_unchanged_balance(client, gateway, pp):
    player, token = await seat(client, deposit_minor=500)
    got = await pp.call("/bet.html", bet_params(player, token, new_id("bet"), "5.01", new_id("rd")))
    assert got["error"] == 1 and "transactionId" not in got, got
    assert (str(got["cash"]), str(got["bonus"])) == ("5.00", "0.00")
    assert await cash(client, player) == 500


# ==== refund ================================================================================


async def test_refund_returns_the_stake_and_replays(client, gateway, pp):
    player, token = await seat(client, deposit_minor=10_000)
    ref, rd = new_id("bet"), new_id("rd")
    success(await pp.call("/bet.html", bet_params(player, token, ref, "7.00", rd)), "93.00")
    refund = refund_params(player, token, ref, roundId=rd, amount="7.00")
    first = await pp.call("/refund.html", refund)
    success(first, "100.00")
    again = await pp.call("/refund.html", refund)
    success(again, "100.00")
    assert again["transactionId"] == first["transactionId"]
    assert (await txn_rows(gateway, ref))[0]["bet_state"] == "rolled_back"
    assert await cash(client, player) == 10_000


async def test_refund_unknown_then_late_bet_refused(client, gateway, pp):
    """gateway/providers/pragmatic/README.md: refund of an unknown bet -> success, remembered as a tombstone;
    "Common ground": the late bet with that reference is refused (README: error 3)."""
    player, token = await seat(client, deposit_minor=10_000)
    late, rd = new_id("bet"), new_id("rd")
    success(await pp.call("/refund.html", refund_params(player, None, late, amount="4.00")), "100.00")

    for _ in range(2):
        got = await pp.call("/bet.html", bet_params(player, token, late, "4.00", rd))
        assert got["error"] == 3, got
        assert str(got["cash"]) == "100.00"
    assert await cash(client, player) == 10_000
    assert [r["kind"] for r in await txn_rows(gateway, late)] == ["tombstone"]


async def test_refund_after_result_is_refused(client, gateway, pp):
    """The result closed the round, so its bet is settled: refund -> 120 (README), nothing moves."""
    player, token = await seat(client, deposit_minor=10_000)
    ref, rd = new_id("bet"), new_id("rd")
    await pp.call("/bet.html", bet_params(player, token, ref, "6.00", rd))
    success(await pp.call("/result.html", result_params(player, token, new_id("res"), "9.00", rd)), "103.00")
    got = await pp.call("/refund.html", refund_params(player, token, ref))
    assert got["error"] == 120, got
    assert await cash(client, player) == 10_300
    assert (await txn_rows(gateway, ref))[0]["bet_state"] == "settled"


# ==== results need their round's bet (README.md "Certification", cases 17-18) ===================


async def test_result_for_a_round_with_no_bet_is_refused(client, gateway, pp):
    """Case 17: 120 ("Bet transaction not found" in T1, IqSoft's CanNotConnectCreditAndDebit),
    nothing credited, nothing stored under the reference; audited. Not stored: the same
    result once the round's bet has arrived is paid."""
    player, token = await seat(client, deposit_minor=10_000)
    rd, ref, promo_ref = new_id("rd"), new_id("res"), new_id("promo")
    _, _, audits = await counts(gateway)
    for extra in ({}, {"promoWinAmount": "1.00", "promoWinReference": promo_ref}):
        got = await pp.call("/result.html", result_params(player, token, ref, "5.00", rd, **extra))
        assert got["error"] == 120 and "transactionId" not in got, got
        assert str(got["cash"]) == "100.00", got
    assert await txn_rows(gateway, ref) == [] and await txn_rows(gateway, promo_ref) == []
    assert await cash(client, player) == 10_000
    assert (await counts(gateway))[2] > audits
    success(await pp.call("/bet.html", bet_params(player, token, new_id("bet"), "1.00", rd)), "99.00")
    success(await pp.call("/result.html", result_params(player, token, ref, "5.00", rd)), "104.00")


async def test_result_after_the_rounds_bet_was_refunded_is_refused(client, gateway, pp):
    """Case 18: 120 ("Transaction already processed by refund." in T1), not 3 (the late bet's
    code); the stake came back and no win is paid on top. A round with one refunded and one
    live bet is still paid."""
    player, token = await seat(client, deposit_minor=10_000)
    rd, bet = new_id("rd"), new_id("bet")
    success(await pp.call("/bet.html", bet_params(player, token, bet, "8.00", rd)), "92.00")
    success(await pp.call("/refund.html", refund_params(player, token, bet, roundId=rd)), "100.00")
    ref = new_id("res")
    got = await pp.call("/result.html", result_params(player, token, ref, "16.00", rd))
    assert got["error"] == 120 and str(got["cash"]) == "100.00", got
    assert await txn_rows(gateway, ref) == []
    assert (await txn_rows(gateway, bet))[0]["bet_state"] == "rolled_back"
    # a refund that arrived before its bet (tombstone in the round) refuses the round's result too
    rd2, late = new_id("rd"), new_id("bet")
    success(await pp.call("/refund.html", refund_params(player, None, late, roundId=rd2)), "100.00")
    got = await pp.call("/result.html", result_params(player, token, new_id("res"), "3.00", rd2))
    assert got["error"] == 120, got
    # one bet refunded, one still open: the round is paid
    rd3, refunded = new_id("rd"), new_id("bet")
    await pp.call("/bet.html", bet_params(player, token, refunded, "2.00", rd3))
    await pp.call("/bet.html", bet_params(player, token, new_id("bet"), "3.00", rd3))
    success(await pp.call("/refund.html", refund_params(player, token, refunded, roundId=rd3)), "97.00")
    success(await pp.call("/result.html", result_params(player, token, new_id("res"), "6.00", rd3)), "103.00")
    assert await cash(client, player) == 10_300


async def test_refund_naming_a_result_is_refused(client, gateway, pp):
    """Pragmatic has no rollback of a win: a refund naming a result's reference is 120 and the
    win stays paid."""
    player, token = await seat(client, deposit_minor=10_000)
    rd, win_ref = new_id("rd"), new_id("res")
    await pp.call("/bet.html", bet_params(player, token, new_id("bet"), "1.00", rd))
    success(await pp.call("/result.html", result_params(player, token, win_ref, "4.00", rd)), "103.00")
    got = await pp.call("/refund.html", refund_params(player, token, win_ref, roundId=rd))
    assert got["error"] == 120, got
    assert await cash(client, player) == 10_300


# ==== notices (README.md "Certification", case 31) ================================================


async def test_session_expired_ends_our_session_and_round_details_is_acknowledged(client, gateway, pp):
    player, token = await seat(client, deposit_minor=10_000)
    rd, bet = new_id("rd"), new_id("bet")
    success(await pp.call("/bet.html", bet_params(player, token, bet, "1.00", rd)), "99.00")
    before = await counts(gateway)
    got = await pp.call("/sessionExpired.html", {"token": token, "playerId": player, "sessionId": "pp-1"})
    assert got == {"error": 0, "description": "Success"}, got
    assert (await pp.call("/sessionExpired.html", {"sessionId": "pp-2"}))["error"] == 0
    got = await pp.call("/roundDetails.html", {"userId": player, "roundId": rd, "smResult": "a,b,c",
                                               "gameCategory": "slots", "betMultiplier": "1"})
    assert got == {"error": 0, "description": "Success"}, got
    assert (await counts(gateway))[:2] == before[:2]  # no money, no ledger row
    # the session is over: bets are refused, the round's settlement is still accepted
    assert (await pp.call("/bet.html", bet_params(player, token, new_id("bet"), "1.00", rd)))["error"] == 4
    assert (await pp.call("/authenticate.html", {"token": token}))["error"] == 4
    success(await pp.call("/result.html", result_params(player, token, new_id("res"), "2.00", rd)), "101.00")


# ==== endRound =================================================================================


async def test_end_round_closes_the_round_and_replays(client, gateway, pp):
    player, token = await seat(client, deposit_minor=10_000)
    ref, rd = new_id("bet"), new_id("rd")
    await pp.call("/bet.html", bet_params(player, token, ref, "2.00", rd))
    params = {"userId": player, "gameId": GAME, "roundId": rd, "token": token}
    first = await pp.call("/endRound.html", params)
    assert first == {"error": 0, "description": "Success", "currency": "EUR",
                     "cash": Decimal("98.00"), "bonus": Decimal("0.00")}, first
    assert (await pp.call("/endRound.html", params)) == first
    assert (await txn_rows(gateway, ref))[0]["bet_state"] == "settled"
    assert (await pp.call("/refund.html", refund_params(player, token, ref)))["error"] == 120
    [row] = await txn_rows(gateway, f"endRound:{player}:{rd}")
    assert (row["kind"], row["amount_minor"], row["cash_delta_minor"]) == ("credit", 0, 0)
    # the same round id of another player (live tables share round ids) is its own endRound
    other, other_token = await seat(client)
    assert (await pp.call("/endRound.html", {**params, "userId": other, "token": other_token}))["error"] == 0
    # the same key with other content is an endRound error
    assert (await pp.call("/endRound.html", {**params, "gameId": "vs25wolfgold"}))["error"] == 130


# ==== wins of every type, house accounts ======================================================


async def test_result_with_promo_win_is_atomic(client, gateway, pp):
    player, token = await seat(client, deposit_minor=10_000)
    rd, win_ref, promo_ref = new_id("rd"), new_id("res"), new_id("promo")
    await pp.call("/bet.html", bet_params(player, token, new_id("bet"), "1.00", rd))
    got = await pp.call("/result.html", result_params(
        player, token, win_ref, "2.00", rd, promoWinAmount="0.75", promoWinReference=promo_ref,
        promoCampaignID="c-1", promoCampaignType="prize_drop"))
    success(got, "101.75")
    [win] = await txn_rows(gateway, win_ref)
    [promo] = await txn_rows(gateway, promo_ref)
    assert got["transactionId"] == str(win["txn_id"])
    assert (win["credit_type"], win["amount_minor"]) == ("win", 200)
    assert (promo["credit_type"], promo["amount_minor"]) == ("promo", 75)
    assert [a.split(":s")[0] for a in await house_accounts(gateway, promo["txn_id"])] == ["house:promo:demo:pragmatic"]
    assert [a.split(":s")[0] for a in await house_accounts(gateway, win["txn_id"])] == ["house:game:demo:pragmatic"]


async def test_result_with_conflicting_promo_applies_neither(client, gateway, pp):
    """All or nothing: the promo credit is refused (its reference was used with another
    amount), so the win of the same result is not applied either."""
    player, token = await seat(client, deposit_minor=10_000)
    promo_ref = new_id("promo")
    success(await pp.call("/promoWin.html", {"userId": player, "amount": "1.00", "reference": promo_ref,
                                             "campaignId": "c", "campaignType": "tournament"}), "101.00")
    rd, win_ref = new_id("rd"), new_id("res")
    success(await pp.call("/bet.html", bet_params(player, token, new_id("bet"), "1.00", rd)), "100.00")
    got = await pp.call("/result.html", result_params(player, token, win_ref, "5.00", rd,
                                                      promoWinAmount="2.00", promoWinReference=promo_ref))
    assert got["error"] == 7, got
    assert await txn_rows(gateway, win_ref) == []
    assert await cash(client, player) == 10_000


@pytest.mark.parametrize("endpoint,credit_type,extra", [
    ("/jackpotWin.html", "jackpot", {"jackpotId": "jp-7", "gameId": GAME, "roundId": "rd-j"}),
    ("/promoWin.html", "promo", {"campaignId": "c-9", "campaignType": "tournament"}),
    ("/adjustment.html", "adjustment", {"gameId": GAME, "roundId": "rd-a", "validBetAmount": "0.00"}),
])
async def test_wins_land_in_their_own_house_accounts(client, gateway, pp, endpoint, credit_type, extra):
    """Credit types other than "win" post against ``house:<credit_type>:demo:pragmatic:s<shard>``."""
    player, token = await seat(client, deposit_minor=1_000)
    ref = new_id("w")
    got = await pp.call(endpoint, {"userId": player, "token": token, "amount": "12.34",
                                   "reference": ref, **extra})
    success(got, "22.34")
    [row] = await txn_rows(gateway, ref)
    assert (row["kind"], row["credit_type"], row["amount_minor"]) == ("credit", credit_type, 1_234)
    assert got["transactionId"] == str(row["txn_id"])
    [house] = await house_accounts(gateway, row["txn_id"])
    assert re.fullmatch(rf"house:{credit_type}:demo:pragmatic:s\d+", house), house
    again = await pp.call(endpoint, {"userId": player, "token": token, "amount": "12.34",
                                     "reference": ref, **extra})
    assert again["transactionId"] == str(row["txn_id"])
    assert await cash(client, player) == 2_234


async def test_bonus_win_is_recorded_not_credited_by_default(client, gateway, pp):
    """README.md "Certification" case 25 (``bonus_win = "record"``, the sandbox's): the free
    rounds' wins came through their results, so bonusWin stores its reference with 0 and
    answers the balance; a replay answers the same transactionId."""
    player, token = await seat(client, deposit_minor=1_000)
    rd, ref = new_id("rd"), new_id("bw")
    success(await pp.call("/bet.html", bet_params(player, token, new_id("bet"), "0.00", rd, bonusCode="frb-1")),
            "10.00")
    success(await pp.call("/result.html", result_params(player, token, new_id("res"), "2.50", rd,
                                                        bonusCode="frb-1")), "12.50")
    params = {"userId": player, "token": token, "amount": "2.50", "reference": ref, "bonusCode": "frb-1",
              "roundId": rd, "gameId": GAME, "timestamp": "1700000000002"}
    got = await pp.call("/bonusWin.html", params)
    success(got, "12.50")
    [row] = await txn_rows(gateway, ref)
    assert (row["kind"], row["credit_type"], row["amount_minor"], row["cash_delta_minor"]) == (
        "credit", "bonus", 0, 0)
    assert got["transactionId"] == str(row["txn_id"])
    assert await house_accounts(gateway, row["txn_id"]) == []
    again = await pp.call("/bonusWin.html", params)
    assert again["transactionId"] == got["transactionId"]
    assert await cash(client, player) == 1_250


async def test_bonus_win_credits_when_the_integration_says_so(spawn_gateway):
    """``bonus_win = "credit"``: the contract settles free rounds by bonusWin alone, so its
    amount is credited, of type "bonus", into ``house:bonus:demo:pragmatic:s<n>``."""
    gw = await spawn_gateway(env={"GATEWAY_INTEGRATIONS__PRAGMATIC__BONUS_WIN": "credit"})
    async with gw.client() as client, httpx.AsyncClient(base_url=gw.url, timeout=15.0) as http:
        pp = PP(http)
        player, token = await seat(client, deposit_minor=1_000)
        ref = new_id("bw")
        params = {"userId": player, "token": token, "amount": "12.34", "reference": ref,
                  "bonusCode": "frb-1", "roundId": new_id("rd")}
        got = await pp.call("/bonusWin.html", params)
        success(got, "22.34")
        [row] = await txn_rows(gw, ref)
        assert (row["kind"], row["credit_type"], row["amount_minor"]) == ("credit", "bonus", 1_234)
        [house] = await house_accounts(gw, row["txn_id"])
        assert re.fullmatch(r"house:bonus:demo:pragmatic:s\d+", house), house
        assert (await pp.call("/bonusWin.html", params))["transactionId"] == got["transactionId"]
        assert await cash(client, player) == 2_234


async def test_wins_without_token_use_the_only_wallet(client, gateway, pp):
    player, _ = await seat(client, deposit_minor=1_000)
    success(await pp.call("/jackpotWin.html", {"userId": player, "amount": "1.00", "reference": new_id("b")}),
            "11.00")
    two = await new_player(client, currencies=("EUR", "USD"), deposit_minor=1_000)
    got = await pp.call("/jackpotWin.html", {"userId": two, "amount": "1.00", "reference": new_id("b")})
    assert got["error"] == 7, got  # no session, no currency: the wallet cannot tell which one
    got = await pp.call("/jackpotWin.html", {"userId": two, "amount": "1.00", "reference": new_id("b"),
                                             "currency": "USD"})
    success(got, "1.00", currency="USD")
    got = await pp.call("/promoWin.html", {"userId": "nobody-" + new_id(), "amount": "1.00",
                                           "reference": new_id("p")})
    assert got["error"] == 2, got


async def test_negative_adjustment_is_a_debit(client, gateway, pp):
    player, token = await seat(client, deposit_minor=1_000)
    ref = new_id("adj")
    success(await pp.call("/adjustment.html", {"userId": player, "token": token, "gameId": GAME,
                                               "roundId": "rd", "amount": "-2.50", "reference": ref}),
            "7.50")
    [row] = await txn_rows(gateway, ref)
    assert (row["kind"], row["amount_minor"]) == ("debit", 250)
    flipped = await pp.call("/adjustment.html", {"userId": player, "token": token, "gameId": GAME,
                                                 "roundId": "rd", "amount": "2.50", "reference": ref})
    assert flipped["error"] == 7, flipped
    too_much = await pp.call("/adjustment.html", {"userId": player, "token": token, "amount": "-100.00",
                                                  "reference": new_id("adj")})
    assert too_much["error"] == 1 and str(too_much["cash"]) == "7.50", too_much


# ==== tokens and player status (gateway/providers/pragmatic/README.md "Common ground") ==================================


async def test_expired_token_refuses_bet_accepts_settlements(client, gateway, pp, services):
    player, token = await seat(client, deposit_minor=10_000)
    rd1, rd2, bet1, bet2 = new_id("rd"), new_id("rd"), new_id("bet"), new_id("bet")
    await pp.call("/bet.html", bet_params(player, token, bet1, "10.00", rd1))
    await pp.call("/bet.html", bet_params(player, token, bet2, "2.00", rd2))
    await expire(services.redis_url, token)

    late = new_id("bet")
    got = await pp.call("/bet.html", bet_params(player, token, late, "3.00", new_id("rd")))
    assert got == {"error": 4, "description": "Token is invalid or expired"}, got
    assert await txn_rows(gateway, late) == []

    success(await pp.call("/result.html", result_params(player, token, new_id("res"), "20.00", rd1)), "108.00")
    success(await pp.call("/refund.html", refund_params(player, token, bet2)), "110.00")
    success(await pp.call("/endRound.html", {"userId": player, "roundId": rd1, "token": token}), "110.00")
    success(await pp.call("/jackpotWin.html", {"userId": player, "token": token, "amount": "1.00",
                                               "reference": new_id("jp")}), "111.00")
    assert (await pp.call("/authenticate.html", {"token": token}))["error"] == 4


async def test_tokens_of_another_user_or_provider_are_refused_on_bets(client, gateway, pp):
    player, _token = await seat(client, deposit_minor=10_000)
    other, other_token = await seat(client, deposit_minor=10_000)
    hub88_token = await open_session(client, player, provider="hub88")
    for bad in (other_token, hub88_token, "never-issued"):
        got = await pp.call("/bet.html", bet_params(player, bad, new_id("bet"), "1.00", new_id("rd")))
        assert got["error"] == 4, got
    # a settlement naming our token of another user is refused too; an unknown token is fine
    rd = new_id("rd")
    success(await pp.call("/bet.html", bet_params(player, _token, new_id("bet"), "1.00", rd)), "99.00")
    got = await pp.call("/result.html", result_params(player, other_token, new_id("res"), "1.00", rd))
    assert got["error"] == 4, got
    success(await pp.call("/result.html", result_params(player, "never-issued", new_id("res"), "1.00", rd)),
            "100.00")
    assert await cash(client, other) == 10_000


async def test_bet_currency_parameter_must_match_the_session(client, gateway, pp):
    player, token = await seat(client, deposit_minor=10_000)
    ref = new_id("bet")
    got = await pp.call("/bet.html", bet_params(player, token, ref, "1.00", new_id("rd"), currency="USD"))
    assert got["error"] == 7, got
    assert await txn_rows(gateway, ref) == []
    success(await pp.call("/bet.html", bet_params(player, token, ref, "1.00", new_id("rd"), currency="EUR")),
            "99.00")


async def test_blocked_player_bet_refused_wins_accepted(client, gateway, pp):
    """``POST /v1/players/{id}/status`` (generic API): a blocked or self-excluded player's bet is
    error 6 (player frozen); results and refunds of open bets are still accepted."""
    player, token = await seat(client, deposit_minor=10_000)
    rd1, rd2, bet1, bet2 = new_id("rd"), new_id("rd"), new_id("bet"), new_id("bet")
    await pp.call("/bet.html", bet_params(player, token, bet1, "10.00", rd1))
    await pp.call("/bet.html", bet_params(player, token, bet2, "2.50", rd2))
    for status in ("blocked", "self_excluded"):
        r = await client.post(f"/v1/players/{player}/status", json={"status": status})
        assert r.status_code == 200, r.text

        refused = new_id("bet")
        got = await pp.call("/bet.html", bet_params(player, token, refused, "1.00", new_id("rd")))
        assert got["error"] == 6 and str(got["cash"]) == "87.50", got
        assert [(r["kind"], r["code"], r["cash_delta_minor"]) for r in await txn_rows(gateway, refused)] == [
            ("debit", "player_blocked", 0)]
        assert (await pp.call("/authenticate.html", {"token": token}))["error"] == 6

    success(await pp.call("/result.html", result_params(player, token, new_id("res"), "30.00", rd1)), "117.50")
    success(await pp.call("/refund.html", refund_params(player, token, bet2)), "120.00")
    r = await client.post(f"/v1/players/{player}/status", json={"status": "active"})
    assert r.status_code == 200, r.text
    success(await pp.call("/bet.html", bet_params(player, token, new_id("bet"), "1.00", new_id("rd"))), "119.00")


# ==== hash and provider id ======================================================================


async def test_wrong_hash_is_refused_audited_and_writes_nothing(client, gateway, pp):
    player, token = await seat(client, deposit_minor=10_000)
    ref = new_id("bet")
    params = bet_params(player, token, ref, "1.00", new_id("rd"))
    before = await counts(gateway)
    cases = [
        urlencode(signed(params, secret="wrong-secret")).encode(),
        urlencode({**signed(params), "amount": "0.01"}).encode(),  # altered after signing
        urlencode({"providerId": PROVIDER_ID, **params}).encode(),  # no hash
        urlencode({**signed(params), "hash": ""}).encode(),
    ]
    for body in cases:
        got = await pp.raw("/bet.html", body)
        assert got == {"error": 5, "description": "Invalid hash"}, got
    t, e, a = await counts(gateway)
    assert (t, e) == before[:2] and a >= before[2] + len(cases)
    assert await txn_rows(gateway, ref) == []
    success(await pp.call("/bet.html", params), "99.00")  # the reference was not used up


async def test_wrong_provider_id_is_refused(client, gateway, pp):
    player, token = await seat(client, deposit_minor=10_000)
    params = {**bet_params(player, token, new_id("bet"), "1.00", new_id("rd")), "providerId": "SomeoneElse"}
    body = urlencode({**params, "hash": md5_hash(params)}).encode()
    assert (await pp.raw("/bet.html", body))["error"] == 5
    assert await cash(client, player) == 10_000


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_every_endpoint_refuses_a_bad_hash(client, gateway, pp, endpoint):
    got = await pp.raw(endpoint, urlencode({"providerId": PROVIDER_ID, "userId": "u", "token": "t",
                                            "hash": "0" * 32}).encode())
    assert got == {"error": 5, "description": "Invalid hash"}, got


# ==== malformed input: never 500, error 7 (or 5), audited, no ledger write ==========================


def _form(params: dict) -> bytes:
    return urlencode(signed(params)).encode()


def _malformed_cases(player: str, token: str) -> list[tuple[str, str, bytes, dict, int]]:
    """(name, endpoint, body, headers, expected error)."""
    rd = new_id("rd")
    good = bet_params(player, token, new_id("bet"), "1.00", rd)
    dup = urlencode(signed(good)).encode() + b"&amount=99.00"
    json_body = json.dumps(signed(good)).encode()
    cases = [
        ("json body", "/bet.html", json_body, {"Content-Type": "application/json"}, 7),
        ("json body as form", "/bet.html", json_body, {}, 7),
        ("text/plain", "/bet.html", _form(good), {"Content-Type": "text/plain"}, 7),
        ("multipart", "/bet.html", _form(good), {"Content-Type": "multipart/form-data; boundary=x"}, 7),
        ("empty body", "/bet.html", b"", {}, 7),
        ("duplicated parameter", "/bet.html", dup, {}, 7),
        ("not utf-8", "/bet.html", b"userId=\xff\xfe&" + _form(good), {}, 7),
        ("bad escape", "/bet.html", b"userId=%ff&" + _form(good), {}, 7),
        ("pair without =", "/bet.html", b"garbage&" + _form(good), {}, 7),
        ("bad parameter name", "/bet.html", b"%7B%22a%22=1&" + _form(good), {}, 7),
        ("too many parameters", "/bet.html",
         _form({**good, **{f"x{i}": "1" for i in range(70)}}), {}, 7),
        ("value too long", "/bet.html", _form({**good, "roundDetails": "d" * 5000}), {}, 7),
        ("huge body", "/bet.html", b"a=" + b"x" * (BODY_BYTES_MAX + 10), {}, 7),
        ("1 MiB body", "/bet.html", _form({**good, "roundDetails": "d" * (1 << 20)}), {}, 7),
    ]
    for drop in ("userId", "token", "gameId", "roundId", "amount", "reference", "providerId"):
        params = {k: v for k, v in good.items() if k != drop}
        if drop == "providerId":
            body = urlencode({**params, "hash": md5_hash(params)}).encode()
        else:
            body = _form(params)
        cases.append((f"missing {drop}", "/bet.html", body, {}, 7))
    for amount in ("1e2", "NaN", "-1.00", "1.005", "1,00", "+1", " 1", "", "0x1", "100000000.01",
                   "1" * 41):
        cases.append((f"amount {amount!r}", "/bet.html", _form({**good, "amount": amount}), {}, 7))
    for amount in ("-1.00", "1.001", "abc"):
        cases.append((f"result amount {amount!r}", "/result.html",
                      _form(result_params(player, token, new_id("res"), amount, rd)), {}, 7))
    cases += [
        ("reference too long", "/bet.html", _form({**good, "reference": "r" * 129}), {}, 7),
        ("token too long", "/bet.html", _form({**good, "token": "t" * 257}), {}, 7),
        ("promo amount without reference", "/result.html",
         _form(result_params(player, token, new_id("res"), "1.00", rd, promoWinAmount="1.00")), {}, 7),
        ("refund without reference", "/refund.html", _form({"userId": player}), {}, 7),
        ("endRound without round", "/endRound.html", _form({"userId": player}), {}, 7),
        ("authenticate without token", "/authenticate.html", _form({"gameId": GAME}), {}, 7),
    ]
    return cases


async def test_malformed_input_never_500_and_writes_no_ledger(client, gateway, pp):
    player, token = await seat(client, deposit_minor=10_000)
    cases = _malformed_cases(player, token)
    before = await counts(gateway)
    for name, endpoint, body, headers, expected in cases:
        got = await pp.raw(endpoint, body, headers)
        assert got["error"] == expected, (name, got)
        assert "transactionId" not in got and "cash" not in got, (name, got)
    t, e, a = await counts(gateway)
    assert (t, e) == before[:2], "a malformed request wrote to the ledger"
    assert a >= before[2] + len(cases), "every refused request is audited"
    assert await cash(client, player) == 10_000


async def test_oversize_chunked_body_is_refused(client, gateway, pp):
    """A body sent without Content-Length is cut off as soon as it passes the limit."""
    player, token = await seat(client, deposit_minor=10_000)
    good = _form(bet_params(player, token, new_id("bet"), "1.00", new_id("rd")))

    async def chunks():
        yield good + b"&pad="
        for _ in range(BODY_BYTES_MAX // 4096 + 2):
            yield b"p" * 4096

    before = await counts(gateway)
    r = await pp.http.post(PREFIX + "/bet.html", content=chunks(), headers={"Content-Type": FORM})
    assert r.status_code == 200 and r.json() == {"error": 7, "description": "Bad parameters"}, r.text
    assert (await counts(gateway))[:2] == before[:2]
    assert await cash(client, player) == 10_000


async def test_random_mutations_never_500(client, gateway, pp):
    """Seeded random byte mutations of a valid bet: always HTTP 200 JSON with a listed error.
    The token is not a live session, so even a mutation that still verifies writes nothing."""
    player = await new_player(client, deposit_minor=10_000)
    body = bytearray(_form(bet_params(player, "not-a-live-token", new_id("bet"), "1.00", "rd")))
    rng = random.Random(20240611)
    before = await counts(gateway)
    for _ in range(60):
        mutated = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            pos = rng.randrange(len(mutated))
            if op < 0.5:
                mutated[pos] = rng.randrange(256)
            elif op < 0.8:
                mutated.insert(pos, rng.choice(b"&=%+\x00\xff{}"))
            else:
                del mutated[pos]
        for endpoint in ("/bet.html", "/result.html"):
            got = await pp.raw(endpoint, bytes(mutated))
            assert got["error"] in {4, 5, 7}, got
    assert (await counts(gateway))[:2] == before[:2]
    assert await cash(client, player) == 10_000


async def test_wrong_method_and_gateway_still_serves(client, gateway, pp):
    r = await pp.http.get(PREFIX + "/bet.html")
    assert r.status_code != 500
    player, token = await seat(client, deposit_minor=100)
    success(await pp.call("/balance.html", {"userId": player, "token": token}), "1.00")


# ==== Redis down, rate limit: gateways of their own =============================================


@pytest.fixture
def own_redis(services, tmp_path):
    """A Redis of this test's own (embedded): the gateway must find Redis up to start
    (gateway/preflight.py), and the test then stops it under the running gateway."""
    settings = load_settings(environ={"GATEWAY_DATA_DIR": str(tmp_path / "own-redis"),
                                      "GATEWAY_DATABASE_URL": services.admin_database_url})
    embedded = EmbeddedServices(settings).start()
    try:
        yield embedded
    finally:
        embedded.stop()


async def test_redis_down_settlements_proceed_bets_retry(spawn_gateway, own_redis):
    """gateway/providers/pragmatic/README.md "Common ground" + docs/DESIGN.md section 7: without Redis, a bet (needs its token)
    answers 100 (retryable) and writes nothing; result and refund proceed without the token."""
    gw = await spawn_gateway(env={"GATEWAY_REDIS_URL": own_redis.redis_url})
    async with gw.client() as client, httpx.AsyncClient(base_url=gw.url, timeout=15.0) as http:
        pp = PP(http)
        player = await new_player(client, deposit_minor=10_000)
        own_redis.stop()  # Redis goes away under the running gateway
        ref = new_id("bet")
        got = await pp.call("/bet.html", bet_params(player, "some-token", ref, "1.00", "rd"))
        assert got == {"error": 100, "description": "Internal server error, please retry"}, got
        assert await txn_rows(gw, ref) == []
        assert (await pp.call("/authenticate.html", {"token": "some-token"}))["error"] == 100
        assert (await pp.call("/balance.html", {"userId": player, "token": "t"}))["error"] == 100

        # the result reaches the wallet (no bet in that round: 120, not the retryable 100)
        got = await pp.call("/result.html", result_params(player, "some-token", new_id("res"), "5.00", "rd"))
        assert got["error"] == 120 and str(got["cash"]) == "100.00", got
        success(await pp.call("/jackpotWin.html", {"userId": player, "token": "some-token", "amount": "5.00",
                                                   "reference": new_id("jp")}), "105.00")
        success(await pp.call("/refund.html", refund_params(player, "some-token", new_id("bet"))), "105.00")
        success(await pp.call("/endRound.html", {"userId": player, "roundId": "rd", "token": "x"}), "105.00")


async def test_rate_limited_requests_answer_100_without_audit(spawn_gateway, services):
    """Over the provider's rate limit: error 100 at once, nothing audited, nothing submitted."""
    gw = await spawn_gateway(env={
        "GATEWAY_RATE_LIMITS__PROVIDERS__PRAGMATIC__REQUESTS_PER_S": "1",
        "GATEWAY_RATE_LIMITS__PROVIDERS__PRAGMATIC__BURST": "1",
    })
    async with httpx.AsyncClient(base_url=gw.url, timeout=15.0) as http:
        pp = PP(http)
        before = await counts(gw)
        body = urlencode({"providerId": PROVIDER_ID, "userId": "u", "token": "t",
                          "hash": "0" * 32}).encode()
        answers = await asyncio.gather(*(pp.raw("/balance.html", body) for _ in range(30)))
        errors = [a["error"] for a in answers]
        assert set(errors) <= {5, 100}, errors
        assert 100 in errors, errors
        assert (await counts(gw))[2] - before[2] == errors.count(5)  # only admitted ones audited
