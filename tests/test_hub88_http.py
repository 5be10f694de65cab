"""Hub88 wallet protocol end to end: signed HTTP calls against a real gateway process.

Sources: gateway/providers/hub88/README.md ("Protocol facts", "Common ground"), docs/DESIGN.md section 5
(idempotency) and 8 (errors), gateway/providers/hub88/README.md (status table and choices).

Every request is signed over its raw body with the sandbox's Hub88 demo private key, and
every response's ``X-Hub88-Signature`` is verified with the demo public key (``send``).
Balances are read back through the generic API (``GET /v1/players/{id}/balance``) and,
where the HTTP answer cannot show it, the ledger rows are counted with asyncpg on the
gateway's own database. Each test uses fresh players, tokens and transaction ids.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from pathlib import Path
from typing import cast

import asyncpg
import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.conftest import ROOT, new_id, new_player
from tests.helpers import cash, expire

PREFIX = "/providers/hub88"
HEADER = "X-Hub88-Signature"
KEYS = Path(ROOT) / "config" / "keys"
PRIVATE = cast(rsa.RSAPrivateKey,  # the RSA demo keys
               serialization.load_pem_private_key((KEYS / "hub88-demo-private.pem").read_bytes(), None))
PUBLIC = cast(rsa.RSAPublicKey, serialization.load_pem_public_key((KEYS / "hub88-demo-public.pem").read_bytes()))
BODY_BYTES_MAX = 65536  # config/default.toml [server] body_bytes_max
AMOUNT_MINOR_MAX = 10_000_000_000  # config/default.toml [money] amount_minor_max
EUR_WIRE = 1000  # Hub88 amount = major units x 100000; EUR has 2 decimals -> minor x 1000

RS_OK = "RS_OK"
# gateway/providers/hub88/README.md "Statuses": nothing else may ever be sent.
HUB88_STATUSES = {
    "RS_OK", "RS_ERROR_UNKNOWN", "RS_ERROR_INVALID_PARTNER", "RS_ERROR_INVALID_TOKEN",
    "RS_ERROR_INVALID_GAME", "RS_ERROR_WRONG_CURRENCY", "RS_ERROR_NOT_ENOUGH_MONEY",
    "RS_ERROR_USER_DISABLED", "RS_ERROR_INVALID_SIGNATURE", "RS_ERROR_TOKEN_EXPIRED",
    "RS_ERROR_WRONG_SYNTAX", "RS_ERROR_WRONG_TYPES", "RS_ERROR_DUPLICATE_TRANSACTION",
    "RS_ERROR_TRANSACTION_DOES_NOT_EXIST", "RS_ERROR_TRANSACTION_ROLLED_BACK",
}
ENDPOINTS = ("/user/info", "/user/balance", "/transaction/bet", "/transaction/win",
             "/transaction/rollback")


# ---- signing and transport ---------------------------------------------------------------


def sign(body: bytes, key: rsa.RSAPrivateKey = PRIVATE) -> str:
    """base64(RSA-SHA256 PKCS#1 v1.5 over the raw body): Hub88's request signature."""
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def assert_signed_by_operator(r: httpx.Response) -> None:
    signature = r.headers.get(HEADER)
    assert signature, f"unsigned response: {r.status_code} {r.content!r}"
    try:
        PUBLIC.verify(base64.b64decode(signature, validate=True), r.content, padding.PKCS1v15(),
                      hashes.SHA256())
    except InvalidSignature:
        pytest.fail(f"response signature does not verify over {r.content!r}")


_SIGN = object()


class Hub88:
    """Hub88's side of the wire: signs requests, checks every answer's envelope and signature."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def send(self, endpoint: str, body, *, signature=_SIGN, headers: dict | None = None) -> dict:
        """POST ``body`` (bytes, or an async byte iterator sent chunked); returns the JSON answer.

        ``signature``: default = a correct signature of ``body``; None = no header; a str is
        sent as it is. Every answer must be HTTP 200, JSON, a known status, and signed.
        """
        h = dict(headers or {})
        h.setdefault("Content-Type", "application/json")
        if signature is _SIGN:
            h[HEADER] = sign(body)
        elif signature is not None:
            h[HEADER] = signature
        r = await self.http.post(PREFIX + endpoint, content=body, headers=h)
        assert r.status_code == 200, (endpoint, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json"), r.headers
        assert_signed_by_operator(r)
        answer = r.json()
        assert isinstance(answer, dict), answer
        assert answer.get("status") in HUB88_STATUSES, answer
        return answer

    async def post(self, endpoint: str, payload: dict) -> dict:
        return await self.send(endpoint, encode(payload))


def encode(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


@pytest.fixture
async def hub(gateway):
    """Hub88's client: no gateway API key (Hub88 authenticates by signature only)."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as http:
        yield Hub88(http)


# ---- request bodies (spec field names) -----------------------------------------------------


def bet_body(user: str, token: str, txn: str, amount: int, *, round_id: str, currency: str = "EUR",
             game: str = "hub88_slot_1", **extra) -> dict:
    body = {
        "request_uuid": new_id("rq"), "token": token, "user": user, "transaction_uuid": txn,
        "supplier_transaction_id": new_id("sup"), "supplier_user": "sup-" + user,
        "round": round_id, "round_closed": False, "reward_uuid": None, "is_free": False,
        "is_aggregated": False, "game_code": game, "currency": currency, "bet": "zero",
        "amount": amount, "meta": {"selection": "home_team"},
    }
    body.update(extra)
    return body


def win_body(user: str, token: str | None, txn: str, amount: int, *, reference: str | None,
             round_id: str, currency: str = "EUR", round_closed: bool = True,
             game: str = "hub88_slot_1", **extra) -> dict:
    body = {
        "request_uuid": new_id("rq"), "user": user, "transaction_uuid": txn,
        "reference_transaction_uuid": reference, "supplier_transaction_id": new_id("sup"),
        "supplier_user": "sup-" + user, "round": round_id, "round_closed": round_closed,
        "is_free": False, "is_aggregated": False, "game_code": game, "currency": currency,
        "bet": "zero", "amount": amount, "meta": None,
    }
    if token is not None:
        body["token"] = token
    body.update(extra)
    return body


def rollback_body(user: str, token: str | None, txn: str, reference: str, *, round_id: str,
                  game: str = "hub88_slot_1", **extra) -> dict:
    body = {
        "request_uuid": new_id("rq"), "user": user, "transaction_uuid": txn,
        "reference_transaction_uuid": reference, "round": round_id, "round_closed": False,
        "game_code": game, "meta": None,
    }
    if token is not None:
        body["token"] = token
    body.update(extra)
    return body


def again(body: dict) -> dict:
    """The same transaction resent: identical content, a new request_uuid (a Hub88 retry)."""
    return {**body, "request_uuid": new_id("rq")}


def ok(body: dict, balance_wire: int, currency: str = "EUR") -> dict:
    """The exact RS_OK answer to ``body``."""
    return {"user": body["user"], "status": RS_OK, "request_uuid": body["request_uuid"],
            "currency": currency, "balance": balance_wire}


def answer(body: dict, status: str, balance_wire: int | None, currency: str = "EUR") -> dict:
    out = {"user": body["user"], "status": status, "request_uuid": body["request_uuid"],
           "currency": currency}
    if balance_wire is not None:
        out["balance"] = balance_wire
    return out


# ---- gateway side: players, sessions, balances, ledger rows ---------------------------------


async def open_session(client, player: str, currency: str = "EUR", game: str = "hub88_slot_1") -> str:
    r = await client.post("/v1/sessions", json={"player_id": player, "currency": currency,
                                               "provider": "hub88", "game_id": game})
    assert r.status_code == 201, r.text
    return r.json()["token"]


async def player_with_session(client, deposit_minor: int = 10_000, currencies=("EUR",)) -> tuple[str, str]:
    player = await new_player(client, currencies=currencies, deposit_minor=deposit_minor)
    return player, await open_session(client, player, currencies[0])


async def fetch(gateway, sql: str, *args):
    conn = await asyncpg.connect(gateway.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def row_counts(gateway) -> tuple[int, int]:
    """(rows in transactions, rows in audit_log)."""
    rows = await fetch(gateway, "SELECT (SELECT count(*) FROM transactions) AS t, "
                                "(SELECT count(*) FROM audit_log) AS a")
    return rows[0]["t"], rows[0]["a"]


async def txn_rows(gateway, transaction_id: str) -> list:
    return await fetch(gateway, "SELECT kind, player_id, currency, amount_minor, code, bet_state, "
                                "cash_delta_minor FROM transactions WHERE scope = 'demo:hub88' "
                                "AND transaction_id = $1", transaction_id)


async def player_txn_count(gateway, player: str) -> int:
    rows = await fetch(gateway, "SELECT count(*) AS n FROM transactions WHERE player_id = $1", player)
    return rows[0]["n"]


# ==== docs/DESIGN.md section 5 over Hub88 =========================================================


async def test_bet_debits_and_answers_balance_x100000(client, gateway, hub):
    player, token = await player_with_session(client, deposit_minor=10_000)  # EUR 100.00
    bet = bet_body(player, token, new_id("tx"), 356_000, round_id=new_id("rd"))  # EUR 3.56

    assert await hub.post("/transaction/bet", bet) == ok(bet, 9_644_000)

    assert await cash(client, player) == 9_644
    rows = await txn_rows(gateway, bet["transaction_uuid"])
    assert [(r["kind"], r["player_id"], r["amount_minor"], r["code"], r["bet_state"]) for r in rows] == [
        ("debit", player, 356, "ok", "open")]


async def test_bet_replay_same_content_same_answer_no_second_debit(client, gateway, hub):
    player, token = await player_with_session(client, deposit_minor=10_000)
    bet = bet_body(player, token, new_id("tx"), 1_500_000, round_id=new_id("rd"))
    assert await hub.post("/transaction/bet", bet) == ok(bet, 8_500_000)

    for _ in range(3):
        retry = again(bet)
        assert await hub.post("/transaction/bet", retry) == ok(retry, 8_500_000)

    assert await cash(client, player) == 8_500
    assert len(await txn_rows(gateway, bet["transaction_uuid"])) == 1
    assert await player_txn_count(gateway, player) == 2  # the deposit and the one debit


async def test_concurrent_retries_of_one_bet_debit_once(client, gateway, hub):
    player, token = await player_with_session(client, deposit_minor=10_000)
    bet = bet_body(player, token, new_id("tx"), 2_000_000, round_id=new_id("rd"))
    retries = [again(bet) for _ in range(12)]

    answers = await asyncio.gather(*(hub.post("/transaction/bet", b) for b in retries))

    assert answers == [ok(b, 8_000_000) for b in retries]
    assert await cash(client, player) == 8_000
    assert len(await txn_rows(gateway, bet["transaction_uuid"])) == 1


@pytest.mark.parametrize("field", ["amount", "round", "game_code"])
async def test_same_uuid_different_content_is_duplicate_and_not_applied(client, gateway, hub, field):
    """gateway/providers/hub88/README.md Common ground: same id with a different user, round, game, amount or
    currency is a duplicate error; docs/DESIGN.md section 5: nothing applied."""
    player, token = await player_with_session(client, deposit_minor=10_000)
    bet = bet_body(player, token, new_id("tx"), 356_000, round_id=new_id("rd"))
    assert await hub.post("/transaction/bet", bet) == ok(bet, 9_644_000)

    changed = {"amount": 500_000, "round": new_id("rd"), "game_code": "hub88_slot_2"}[field]
    conflicting = {**again(bet), field: changed}
    got = await hub.post("/transaction/bet", conflicting)

    assert got == answer(conflicting, "RS_ERROR_DUPLICATE_TRANSACTION", 9_644_000), got
    assert await cash(client, player) == 9_644
    assert len(await txn_rows(gateway, bet["transaction_uuid"])) == 1
    # the original is still answered as before
    retry = again(bet)
    assert await hub.post("/transaction/bet", retry) == ok(retry, 9_644_000)


async def test_same_uuid_other_user_is_duplicate_and_not_applied(client, gateway, hub):
    alice, alice_token = await player_with_session(client, deposit_minor=10_000)
    bob, bob_token = await player_with_session(client, deposit_minor=10_000)
    txn = new_id("tx")
    first = bet_body(alice, alice_token, txn, 356_000, round_id="rd-shared")
    assert await hub.post("/transaction/bet", first) == ok(first, 9_644_000)

    second = bet_body(bob, bob_token, txn, 356_000, round_id="rd-shared")
    got = await hub.post("/transaction/bet", second)

    assert got["status"] == "RS_ERROR_DUPLICATE_TRANSACTION", got
    assert got.get("balance", 10_000_000) == 10_000_000, got
    assert await cash(client, bob) == 10_000
    assert await cash(client, alice) == 9_644
    assert [r["player_id"] for r in await txn_rows(gateway, txn)] == [alice]


async def test_same_uuid_other_currency_is_duplicate_and_not_applied(client, gateway, hub):
    player = await new_player(client, currencies=("EUR", "USD"), deposit_minor=10_000)
    r = await client.post("/v1/wallet/deposit", json={
        "transaction_id": new_id("dep"), "player_id": player, "currency": "USD", "amount_minor": 10_000})
    assert r.status_code == 200, r.text
    eur_token = await open_session(client, player, "EUR")
    usd_token = await open_session(client, player, "USD")
    txn = new_id("tx")
    bet = bet_body(player, eur_token, txn, 356_000, round_id="rd-1")
    assert await hub.post("/transaction/bet", bet) == ok(bet, 9_644_000)

    usd = bet_body(player, usd_token, txn, 356_000, round_id="rd-1", currency="USD")
    got = await hub.post("/transaction/bet", usd)

    assert got["status"] == "RS_ERROR_DUPLICATE_TRANSACTION", got
    assert await cash(client, player, "USD") == 10_000
    assert await cash(client, player, "EUR") == 9_644


async def test_same_uuid_as_win_of_a_bet_is_duplicate_type(client, gateway, hub):
    """A win reusing the bet's own transaction_uuid differs in type: duplicate, nothing applied."""
    player, token = await player_with_session(client, deposit_minor=10_000)
    rd = new_id("rd")
    bet = bet_body(player, token, new_id("tx"), 1_000_000, round_id=rd)
    assert await hub.post("/transaction/bet", bet) == ok(bet, 9_000_000)

    clash = win_body(player, token, bet["transaction_uuid"], 5_000_000,
                     reference=bet["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/win", clash) == answer(
        clash, "RS_ERROR_DUPLICATE_TRANSACTION", 9_000_000)
    assert await cash(client, player) == 9_000

    # the bet is still open: a proper win settles it
    win = win_body(player, token, new_id("tx"), 5_000_000, reference=bet["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/win", win) == ok(win, 14_000_000)


async def test_insufficient_funds_answers_unchanged_balance_and_replays(client, gateway, hub):
    player, token = await player_with_session(client, deposit_minor=1_000)  # EUR 10.00
    bet = bet_body(player, token, new_id("tx"), 1_001_000, round_id=new_id("rd"))  # EUR 10.01

    assert await hub.post("/transaction/bet", bet) == answer(bet, "RS_ERROR_NOT_ENOUGH_MONEY", 1_000_000)
    retry = again(bet)
    assert await hub.post("/transaction/bet", retry) == answer(retry, "RS_ERROR_NOT_ENOUGH_MONEY", 1_000_000)

    assert await cash(client, player) == 1_000
    rows = await txn_rows(gateway, bet["transaction_uuid"])
    assert [(r["kind"], r["code"], r["cash_delta_minor"]) for r in rows] == [
        ("debit", "insufficient_funds", 0)]
    # exactly the balance still works
    fits = bet_body(player, token, new_id("tx"), 1_000_000, round_id=new_id("rd"))
    assert await hub.post("/transaction/bet", fits) == ok(fits, 0)


async def test_rollback_of_a_refused_bet_succeeds_and_moves_nothing(client, gateway, hub):
    """Hub88 rolls back a bet whose answer it lost; a refused bet took nothing."""
    player, token = await player_with_session(client, deposit_minor=1_000)
    rd = new_id("rd")
    bet = bet_body(player, token, new_id("tx"), 20_000_000, round_id=rd)
    assert (await hub.post("/transaction/bet", bet))["status"] == "RS_ERROR_NOT_ENOUGH_MONEY"

    rb = rollback_body(player, token, new_id("tx"), bet["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/rollback", rb) == ok(rb, 1_000_000)
    assert await cash(client, player) == 1_000


async def test_win_for_unknown_bet_does_not_exist(client, gateway, hub):
    player, token = await player_with_session(client, deposit_minor=10_000)
    win = win_body(player, token, new_id("tx"), 5_000_000, reference=new_id("never"), round_id=new_id("rd"))

    assert await hub.post("/transaction/win", win) == answer(
        win, "RS_ERROR_TRANSACTION_DOES_NOT_EXIST", 10_000_000)
    retry = again(win)
    assert await hub.post("/transaction/win", retry) == answer(
        retry, "RS_ERROR_TRANSACTION_DOES_NOT_EXIST", 10_000_000)

    assert await cash(client, player) == 10_000
    assert await txn_rows(gateway, win["transaction_uuid"]) == []


async def test_rollback_of_unknown_leaves_tombstone_late_bet_refused(client, gateway, hub):
    player, token = await player_with_session(client, deposit_minor=10_000)
    rd = new_id("rd")
    lost_bet = new_id("tx")
    rb = rollback_body(player, token, new_id("tx"), lost_bet, round_id=rd)

    assert await hub.post("/transaction/rollback", rb) == ok(rb, 10_000_000)
    replay = again(rb)
    assert await hub.post("/transaction/rollback", replay) == ok(replay, 10_000_000)

    # the bet arrives late: refused (adapter table: TRANSACTION_ROLLED_BACK), not debited
    late = bet_body(player, token, lost_bet, 356_000, round_id=rd)
    got = await hub.post("/transaction/bet", late)
    assert got == answer(late, "RS_ERROR_TRANSACTION_ROLLED_BACK", 10_000_000), got
    retry = again(late)
    assert (await hub.post("/transaction/bet", retry))["status"] == "RS_ERROR_TRANSACTION_ROLLED_BACK"

    # and a win on it is refused as rolled back
    win = win_body(player, token, new_id("tx"), 1_000_000, reference=lost_bet, round_id=rd)
    assert await hub.post("/transaction/win", win) == answer(
        win, "RS_ERROR_TRANSACTION_ROLLED_BACK", 10_000_000)

    assert await cash(client, player) == 10_000
    assert [(r["kind"], r["amount_minor"]) for r in await txn_rows(gateway, lost_bet)] == [("tombstone", 0)]


async def test_rollback_of_unknown_without_token_answers_balance(client, gateway, hub):
    """Rollbacks are retried for days: no token, only ``user`` (and a currency hint)."""
    player, _ = await player_with_session(client, deposit_minor=10_000)
    rb = rollback_body(player, None, new_id("tx"), new_id("never"), round_id=new_id("rd"))
    assert await hub.post("/transaction/rollback", rb) == ok(rb, 10_000_000)


async def test_bet_rollback_then_win_refused_and_rollback_replays(client, gateway, hub):
    player, token = await player_with_session(client, deposit_minor=10_000)
    rd = new_id("rd")
    bet = bet_body(player, token, new_id("tx"), 2_500_000, round_id=rd)
    assert await hub.post("/transaction/bet", bet) == ok(bet, 7_500_000)

    rb = rollback_body(player, token, new_id("tx"), bet["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/rollback", rb) == ok(rb, 10_000_000)
    for _ in range(2):
        replay = again(rb)
        assert await hub.post("/transaction/rollback", replay) == ok(replay, 10_000_000)

    win = win_body(player, token, new_id("tx"), 9_000_000, reference=bet["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/win", win) == answer(
        win, "RS_ERROR_TRANSACTION_ROLLED_BACK", 10_000_000)
    # a second rollback (another id) of the same bet: already rolled back
    rb2 = rollback_body(player, token, new_id("tx"), bet["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/rollback", rb2) == answer(
        rb2, "RS_ERROR_TRANSACTION_ROLLED_BACK", 10_000_000)
    # a replay of the bet itself still answers its stored outcome, and debits nothing
    retry = again(bet)
    assert (await hub.post("/transaction/bet", retry))["status"] == RS_OK

    assert await cash(client, player) == 10_000
    assert [(r["kind"], r["bet_state"]) for r in await txn_rows(gateway, bet["transaction_uuid"])] == [
        ("debit", "rolled_back")]
    assert await txn_rows(gateway, win["transaction_uuid"]) == []


async def test_win_then_rollback_is_settled_status(client, gateway, hub):
    """TRANSACTION_SETTLED -> RS_ERROR_DUPLICATE_TRANSACTION (statuses.py, README choice 1)."""
    player, token = await player_with_session(client, deposit_minor=10_000)
    rd = new_id("rd")
    bet = bet_body(player, token, new_id("tx"), 1_000_000, round_id=rd)
    assert await hub.post("/transaction/bet", bet) == ok(bet, 9_000_000)
    win = win_body(player, token, new_id("tx"), 3_210_000, reference=bet["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/win", win) == ok(win, 12_210_000)
    replay = again(win)
    assert await hub.post("/transaction/win", replay) == ok(replay, 12_210_000)

    rb = rollback_body(player, token, new_id("tx"), bet["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/rollback", rb) == answer(
        rb, "RS_ERROR_DUPLICATE_TRANSACTION", 12_210_000)
    second_win = win_body(player, token, new_id("tx"), 1_000_000, reference=bet["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/win", second_win) == answer(
        second_win, "RS_ERROR_DUPLICATE_TRANSACTION", 12_210_000)

    assert await cash(client, player) == 12_210
    assert [(r["kind"], r["bet_state"]) for r in await txn_rows(gateway, bet["transaction_uuid"])] == [
        ("debit", "settled")]
    assert await txn_rows(gateway, rb["transaction_uuid"]) == []


async def test_win_without_reference_is_refused_and_never_paid(client, gateway, hub):
    """README "Certification" 15: ``reference_transaction_uuid`` is required (Caleta's
    wallet_win_body, the Hub88-style SDK): missing -> RS_ERROR_WRONG_SYNTAX, null ->
    RS_ERROR_WRONG_TYPES; nothing is credited, the refusal is audited, the bet stays open."""
    player, token = await player_with_session(client, deposit_minor=10_000)
    rd = new_id("rd")
    bet = bet_body(player, token, new_id("tx"), 1_000_000, round_id=rd)
    assert await hub.post("/transaction/bet", bet) == ok(bet, 9_000_000)
    txns, audits = await row_counts(gateway)

    orphan = win_body(player, token, new_id("tx"), 50_000_000, reference=None, round_id=rd)
    null_ref = dict(orphan)
    del orphan["reference_transaction_uuid"]
    got = await hub.post("/transaction/win", orphan)
    assert got == {"user": player, "status": "RS_ERROR_WRONG_SYNTAX", "request_uuid": orphan["request_uuid"]}, got
    got = await hub.post("/transaction/win", null_ref)
    assert got["status"] == "RS_ERROR_WRONG_TYPES" and "balance" not in got, got

    assert await row_counts(gateway) == (txns, audits + 2)
    assert await cash(client, player) == 9_000
    rows = await fetch(gateway, "SELECT code, record FROM audit_log WHERE player_id = $1 "
                                "ORDER BY recorded_at DESC, seq DESC LIMIT 2", player)
    assert [r["code"] for r in rows] == ["invalid_request", "invalid_request"], rows
    # the bet is still open: the win that names it is paid
    win = win_body(player, token, orphan["transaction_uuid"], 5_000_000, reference=bet["transaction_uuid"],
                   round_id=rd)
    assert await hub.post("/transaction/win", win) == ok(win, 14_000_000)


async def test_rollback_naming_a_win_is_refused_and_moves_nothing(client, gateway, hub):
    """README "Certification" 24: Hub88/Caleta roll back bets only ("winnings are never
    rolled back"); a rollback whose reference is a win names no bet ->
    RS_ERROR_TRANSACTION_DOES_NOT_EXIST (final), the win stays paid, nothing is stored."""
    player, token = await player_with_session(client, deposit_minor=1_000)
    rd = new_id("rd")
    bet = bet_body(player, token, new_id("tx"), 500_000, round_id=rd)
    assert await hub.post("/transaction/bet", bet) == ok(bet, 500_000)
    win = win_body(player, token, new_id("tx"), 3_000_000, reference=bet["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/win", win) == ok(win, 3_500_000)
    txns, audits = await row_counts(gateway)

    rb = rollback_body(player, token, new_id("tx"), win["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/rollback", rb) == answer(
        rb, "RS_ERROR_TRANSACTION_DOES_NOT_EXIST", 3_500_000)
    retry = again(rb)
    assert await hub.post("/transaction/rollback", retry) == answer(
        retry, "RS_ERROR_TRANSACTION_DOES_NOT_EXIST", 3_500_000)

    assert (await row_counts(gateway))[0] == txns
    assert (await row_counts(gateway))[1] == audits + 2
    assert await txn_rows(gateway, rb["transaction_uuid"]) == []
    assert [(r["kind"], r["code"]) for r in await txn_rows(gateway, win["transaction_uuid"])] == [("credit", "ok")]
    assert await cash(client, player) == 3_500


async def test_supplier_promo_zero_bet_with_expired_token_then_its_win(client, gateway, hub):
    """Hub88 changelog, 26 May 2025 (supplier-issued promotion payouts): Hub88 sends a zero
    bet (``is_supplier_promo``, ``is_free`` implied) before the promotion's win, possibly on
    a stale session: the token is not checked for expiry; the win that names the bet is paid."""
    player, token = await player_with_session(client, deposit_minor=1_000)
    assert await expire(gateway.redis_url, token)
    rd = new_id("rd")
    bet = bet_body(player, token, new_id("tx"), 0, round_id=rd, is_free=False, is_supplier_promo=True)
    assert await hub.post("/transaction/bet", bet) == ok(bet, 1_000_000)
    win = win_body(player, token, new_id("tx"), 2_500_000, reference=bet["transaction_uuid"], round_id=rd,
                   is_supplier_promo=True)
    assert await hub.post("/transaction/win", win) == ok(win, 3_500_000)
    assert await cash(client, player) == 3_500
    # an ordinary zero bet is still refused
    plain = bet_body(player, token, new_id("tx"), 0, round_id=new_id("rd"))
    assert (await hub.post("/transaction/bet", plain))["status"] == "RS_ERROR_WRONG_TYPES"


async def test_two_bets_one_round_one_rolled_back_then_closing_win(client, gateway, hub):
    """Caleta/Hub88: several bets may share a round and one can be rolled back while it goes on."""
    player, token = await player_with_session(client, deposit_minor=10_000)
    rd = new_id("rd")
    bet1 = bet_body(player, token, new_id("tx"), 1_000_000, round_id=rd)
    bet2 = bet_body(player, token, new_id("tx"), 2_000_000, round_id=rd)
    assert await hub.post("/transaction/bet", bet1) == ok(bet1, 9_000_000)
    assert await hub.post("/transaction/bet", bet2) == ok(bet2, 7_000_000)

    rb = rollback_body(player, token, new_id("tx"), bet1["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/rollback", rb) == ok(rb, 8_000_000)

    # the round goes on: a third bet, then the win closing the round against bet2
    bet3 = bet_body(player, token, new_id("tx"), 500_000, round_id=rd)
    assert await hub.post("/transaction/bet", bet3) == ok(bet3, 7_500_000)
    win = win_body(player, token, new_id("tx"), 6_000_000, reference=bet2["transaction_uuid"],
                   round_id=rd, round_closed=True)
    assert await hub.post("/transaction/win", win) == ok(win, 13_500_000)

    # after the close: bet1 rolled back, bet2 and bet3 settled
    late_rb = rollback_body(player, token, new_id("tx"), bet3["transaction_uuid"], round_id=rd)
    assert (await hub.post("/transaction/rollback", late_rb))["status"] == "RS_ERROR_DUPLICATE_TRANSACTION"
    win_on_rolled_back = win_body(player, token, new_id("tx"), 1_000_000,
                                  reference=bet1["transaction_uuid"], round_id=rd)
    assert (await hub.post("/transaction/win", win_on_rolled_back))["status"] == \
        "RS_ERROR_TRANSACTION_ROLLED_BACK"

    assert await cash(client, player) == 13_500
    states = {}
    for b in (bet1, bet2, bet3):
        rows = await txn_rows(gateway, b["transaction_uuid"])
        assert len(rows) == 1, rows
        states[b["transaction_uuid"]] = rows[0]["bet_state"]
    assert states == {bet1["transaction_uuid"]: "rolled_back", bet2["transaction_uuid"]: "settled",
                      bet3["transaction_uuid"]: "settled"}


# ==== token rules ============================================================================


async def test_expired_token_refuses_bet_accepts_win_and_rollback(client, gateway, hub):
    player, token = await player_with_session(client, deposit_minor=10_000)
    rd = new_id("rd")
    bet1 = bet_body(player, token, new_id("tx"), 1_000_000, round_id=rd)
    bet2 = bet_body(player, token, new_id("tx"), 2_000_000, round_id=rd)
    assert await hub.post("/transaction/bet", bet1) == ok(bet1, 9_000_000)
    assert await hub.post("/transaction/bet", bet2) == ok(bet2, 7_000_000)
    assert await expire(gateway.redis_url, token)  # expired, still recognisable
    txns_before = await player_txn_count(gateway, player)

    bet3 = bet_body(player, token, new_id("tx"), 1_000_000, round_id=rd)
    assert await hub.post("/transaction/bet", bet3) == {
        "user": player, "status": "RS_ERROR_TOKEN_EXPIRED", "request_uuid": bet3["request_uuid"],
        "currency": "EUR"}
    assert await player_txn_count(gateway, player) == txns_before
    assert await txn_rows(gateway, bet3["transaction_uuid"]) == []

    rb = rollback_body(player, token, new_id("tx"), bet2["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/rollback", rb) == ok(rb, 9_000_000)
    win = win_body(player, token, new_id("tx"), 4_000_000, reference=bet1["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/win", win) == ok(win, 13_000_000)
    # a rollback of an unknown bet with the expired token: still RS_OK with the balance
    rb_unknown = rollback_body(player, token, new_id("tx"), new_id("never"), round_id=rd)
    assert await hub.post("/transaction/rollback", rb_unknown) == ok(rb_unknown, 13_000_000)

    bal = {"request_uuid": new_id("rq"), "token": token, "user": player, "game_code": "hub88_slot_1"}
    assert (await hub.post("/user/balance", bal))["status"] == "RS_ERROR_TOKEN_EXPIRED"
    assert await cash(client, player) == 13_000


async def test_unknown_token_refuses_bet(client, gateway, hub):
    player, _ = await player_with_session(client, deposit_minor=10_000)
    bet = bet_body(player, "no-such-token-" + new_id(), new_id("tx"), 356_000, round_id=new_id("rd"))
    assert await hub.post("/transaction/bet", bet) == {
        "user": player, "status": "RS_ERROR_INVALID_TOKEN", "request_uuid": bet["request_uuid"],
        "currency": "EUR"}
    assert await cash(client, player) == 10_000
    assert await txn_rows(gateway, bet["transaction_uuid"]) == []


async def test_token_of_another_user_is_refused(client, gateway, hub):
    alice, alice_token = await player_with_session(client, deposit_minor=10_000)
    bob, _ = await player_with_session(client, deposit_minor=10_000)
    rd = new_id("rd")
    bet = bet_body(bob, alice_token, new_id("tx"), 356_000, round_id=rd)
    assert (await hub.post("/transaction/bet", bet))["status"] == "RS_ERROR_INVALID_TOKEN"
    win = win_body(bob, alice_token, new_id("tx"), 356_000, reference=new_id("tx"), round_id=rd)
    assert (await hub.post("/transaction/win", win))["status"] == "RS_ERROR_INVALID_TOKEN"
    bal = {"request_uuid": new_id("rq"), "token": alice_token, "user": bob}
    assert (await hub.post("/user/balance", bal))["status"] == "RS_ERROR_INVALID_TOKEN"
    assert await cash(client, alice) == 10_000
    assert await cash(client, bob) == 10_000


async def test_wrong_currency_is_refused(client, gateway, hub):
    player = await new_player(client, currencies=("EUR", "USD"), deposit_minor=10_000)
    token = await open_session(client, player, "EUR")
    usd_bet = bet_body(player, token, new_id("tx"), 356_000, round_id=new_id("rd"), currency="USD")
    assert await hub.post("/transaction/bet", usd_bet) == {
        "user": player, "status": "RS_ERROR_WRONG_CURRENCY", "request_uuid": usd_bet["request_uuid"],
        "currency": "USD"}
    unknown = bet_body(player, token, new_id("tx"), 356_000, round_id=new_id("rd"), currency="ZZZ")
    assert (await hub.post("/transaction/bet", unknown))["status"] == "RS_ERROR_WRONG_CURRENCY"
    # a win in a currency the player has no wallet in
    other = await new_player(client, currencies=("EUR",), deposit_minor=1_000)
    gbp_win = win_body(other, None, new_id("tx"), 100_000, reference=new_id("tx"), round_id=new_id("rd"),
                       currency="GBP")
    assert (await hub.post("/transaction/win", gbp_win))["status"] == "RS_ERROR_WRONG_CURRENCY"

    assert await cash(client, player) == 10_000
    assert await cash(client, other) == 1_000
    for b in (usd_bet, unknown, gbp_win):
        assert await txn_rows(gateway, b["transaction_uuid"]) == []


async def test_user_balance(client, gateway, hub):
    player, token = await player_with_session(client, deposit_minor=12_345)
    body = {"request_uuid": new_id("rq"), "token": token, "user": player, "game_code": "hub88_slot_1",
            "supplier_user": "sup-" + player}
    assert await hub.post("/user/balance", body) == ok(body, 12_345_000)
    # Hub88's own balance vector carries no user: the session names the player
    no_user = {"request_uuid": new_id("rq"), "token": token, "game_id": 1234}
    assert await hub.post("/user/balance", no_user) == {
        "user": player, "status": RS_OK, "request_uuid": no_user["request_uuid"], "currency": "EUR",
        "balance": 12_345_000}
    unknown = {"request_uuid": new_id("rq"), "token": "nope-" + new_id(), "user": player}
    assert await hub.post("/user/balance", unknown) == {
        "user": player, "status": "RS_ERROR_INVALID_TOKEN", "request_uuid": unknown["request_uuid"]}
    # balance follows bets
    bet = bet_body(player, token, new_id("tx"), 345_000, round_id=new_id("rd"))
    assert await hub.post("/transaction/bet", bet) == ok(bet, 12_000_000)
    again_body = again(body)
    assert await hub.post("/user/balance", again_body) == ok(again_body, 12_000_000)


async def test_user_info(client, gateway, hub):
    player = await new_player(client, currencies=("EUR",), deposit_minor=5_000, country="SE")
    info = {"request_uuid": new_id("rq"), "user": player}
    assert await hub.post("/user/info", info) == {
        "user": player, "status": RS_OK, "request_uuid": info["request_uuid"], "currency": "EUR",
        "balance": 5_000_000, "country": "SE"}
    token = await open_session(client, player)
    with_token = {"request_uuid": new_id("rq"), "user": player, "token": token}
    assert await hub.post("/user/info", with_token) == {
        "user": player, "status": RS_OK, "request_uuid": with_token["request_uuid"], "currency": "EUR",
        "balance": 5_000_000, "country": "SE"}
    assert await expire(gateway.redis_url, token)  # expired, still recognisable
    assert (await hub.post("/user/info", again(with_token)))["status"] == "RS_ERROR_TOKEN_EXPIRED"
    nobody = {"request_uuid": new_id("rq"), "user": new_id("p")}
    assert await hub.post("/user/info", nobody) == {
        "user": nobody["user"], "status": "RS_ERROR_INVALID_TOKEN", "request_uuid": nobody["request_uuid"]}


async def test_user_info_two_wallets_without_token_names_no_currency(client, gateway, hub):
    """README choice 6: without a token, currency and balance only if the player has exactly
    one wallet; with two there is no single answer, so neither is invented."""
    two = await new_player(client, currencies=("EUR", "USD"), deposit_minor=100, country="MT")
    info = {"request_uuid": new_id("rq"), "user": two}
    assert await hub.post("/user/info", info) == {
        "user": two, "status": RS_OK, "request_uuid": info["request_uuid"], "country": "MT"}
    # with a token, the session's currency decides
    usd_token = await open_session(client, two, "USD")
    with_token = {"request_uuid": new_id("rq"), "user": two, "token": usd_token}
    assert await hub.post("/user/info", with_token) == {
        "user": two, "status": RS_OK, "request_uuid": with_token["request_uuid"], "currency": "USD",
        "balance": 0, "country": "MT"}


# ==== bad input ==============================================================================

OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _bad_signature_cases(body: bytes) -> dict:
    altered = body.replace(b'"amount":356000', b'"amount":356')
    assert altered != body
    return {
        "missing": (body, None),
        "empty": (body, ""),
        "garbage": (body, "not base64 at all!"),
        "other_key": (body, sign(body, OTHER_KEY)),
        "body_altered_after_signing": (altered, sign(body)),
        "signature_of_another_body": (body, sign(body + b" ")),
        "truncated": (body, sign(body)[:-8]),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "garbage", "other_key",
                                  "body_altered_after_signing", "signature_of_another_body",
                                  "truncated"])
async def test_bad_signature_is_refused_and_writes_no_ledger(client, gateway, hub, case):
    player, token = await player_with_session(client, deposit_minor=10_000)
    bet = bet_body(player, token, new_id("tx"), 356_000, round_id=new_id("rd"))
    body, signature = _bad_signature_cases(encode(bet))[case]
    txns, audits = await row_counts(gateway)

    got = await hub.send("/transaction/bet", body, signature=signature)

    assert got == {"user": player, "status": "RS_ERROR_INVALID_SIGNATURE",
                   "request_uuid": bet["request_uuid"]}, got
    txns_after, audits_after = await row_counts(gateway)
    assert txns_after == txns
    assert audits_after == audits + 1
    rows = await fetch(gateway, "SELECT code, record FROM audit_log WHERE player_id = $1 "
                                "ORDER BY recorded_at DESC, seq DESC LIMIT 1", player)
    assert rows and rows[0]["code"] == "invalid_signature", rows
    assert token not in rows[0]["record"]  # the token is never copied into the audit
    assert await cash(client, player) == 10_000


@pytest.mark.parametrize("endpoint", ["/transaction/win", "/transaction/rollback", "/user/balance"])
async def test_unsigned_settlements_are_refused(client, gateway, hub, endpoint):
    player, token = await player_with_session(client, deposit_minor=10_000)
    rd = new_id("rd")
    bet = bet_body(player, token, new_id("tx"), 1_000_000, round_id=rd)
    assert await hub.post("/transaction/bet", bet) == ok(bet, 9_000_000)
    payload = {
        "/transaction/win": win_body(player, token, new_id("tx"), 50_000_000,
                                     reference=bet["transaction_uuid"], round_id=rd),
        "/transaction/rollback": rollback_body(player, token, new_id("tx"), bet["transaction_uuid"],
                                               round_id=rd),
        "/user/balance": {"request_uuid": new_id("rq"), "token": token, "user": player},
    }[endpoint]
    txns, audits = await row_counts(gateway)
    got = await hub.send(endpoint, encode(payload), signature=sign(encode(payload), OTHER_KEY))
    assert got["status"] == "RS_ERROR_INVALID_SIGNATURE", got
    assert "balance" not in got
    assert await row_counts(gateway) == (txns, audits + 1)
    assert await cash(client, player) == 9_000


async def test_malformed_json_is_wrong_syntax(client, gateway, hub):
    player, token = await player_with_session(client, deposit_minor=10_000)
    good = encode(bet_body(player, token, new_id("tx"), 356_000, round_id=new_id("rd")))
    txns, audits = await row_counts(gateway)
    bodies = [good[:-1], good + b"}", b"{user: 1}", b"", b"not json", good.replace(b":", b"=", 1),
              b"{'user': 'x'}", b"\xef\xbb\xbf" + good]
    for body in bodies:
        got = await hub.send("/transaction/bet", body)
        assert got["status"] == "RS_ERROR_WRONG_SYNTAX", (body[:60], got)
    txns_after, audits_after = await row_counts(gateway)
    assert txns_after == txns
    assert audits_after == audits + len(bodies)
    assert await cash(client, player) == 10_000


WRONG_TYPES = {
    "amount_string": {"amount": "356000"},
    "amount_float": {"amount": 3.56},
    "amount_float_integral": {"amount": 356000.0},
    "amount_exponent": {"amount": 3.56e5},
    "amount_bool": {"amount": True},
    "amount_null": {"amount": None},
    "user_int": {"user": 12345},
    "token_null": {"token": None},
    "uuid_list": {"transaction_uuid": ["a"]},
    "uuid_too_long": {"transaction_uuid": "x" * 129},
    "round_closed_string": {"round_closed": "yes"},
}


@pytest.mark.parametrize("case", sorted(WRONG_TYPES))
async def test_wrong_types(client, gateway, hub, case):
    player, token = await player_with_session(client, deposit_minor=10_000)
    bet = bet_body(player, token, new_id("tx"), 356_000, round_id=new_id("rd"))
    for field, value in WRONG_TYPES[case].items():
        if value is ...:
            del bet[field]
        else:
            bet[field] = value
    txns, audits = await row_counts(gateway)

    got = await hub.send("/transaction/bet", json.dumps(bet).encode())

    assert got["status"] == "RS_ERROR_WRONG_TYPES", got
    assert "balance" not in got
    assert await row_counts(gateway) == (txns, audits + 1)
    assert await cash(client, player) == 10_000


@pytest.mark.parametrize("field", ["transaction_uuid", "amount", "currency", "token", "user", "game_code"])
async def test_missing_required_field_is_wrong_syntax(client, gateway, hub, field):
    """README choice 5: Hub88's RS_ERROR_WRONG_SYNTAX is "the received request doesn't match
    expected request form" (the Hub88-style SDK answers it for any missing field)."""
    player, token = await player_with_session(client, deposit_minor=10_000)
    bet = bet_body(player, token, new_id("tx"), 356_000, round_id=new_id("rd"))
    del bet[field]
    txns, audits = await row_counts(gateway)

    got = await hub.send("/transaction/bet", json.dumps(bet).encode())

    assert got["status"] == "RS_ERROR_WRONG_SYNTAX", got
    assert "balance" not in got
    assert await row_counts(gateway) == (txns, audits + 1)
    assert await cash(client, player) == 10_000


async def test_empty_object_is_wrong_syntax(client, gateway, hub):
    txns, audits = await row_counts(gateway)
    for endpoint in ENDPOINTS:
        assert await hub.send(endpoint, b"{}") == {"status": "RS_ERROR_WRONG_SYNTAX"}, endpoint
    assert await row_counts(gateway) == (txns, audits + len(ENDPOINTS))


@pytest.mark.parametrize("body", [b"[1]", b"null", b"1", b'"bet"', b"[]", b"true"])
async def test_json_that_is_not_a_request_is_wrong_types(client, gateway, hub, body):
    txns, audits = await row_counts(gateway)
    for endpoint in ("/transaction/bet", "/transaction/win", "/transaction/rollback"):
        got = await hub.send(endpoint, body)
        assert got["status"] == "RS_ERROR_WRONG_TYPES", (endpoint, got)
    assert await row_counts(gateway) == (txns, audits + 3)


@pytest.mark.parametrize("amount", [
    356_001,                                # 3.56001 EUR: not a whole cent (and within the balance)
    356_999,
    1,
    -356_000,                               # negative
    0,                                      # a (non-free) bet must be > 0
])
async def test_inexact_or_out_of_range_bet_amount_is_refused(client, gateway, hub, amount):
    player, token = await player_with_session(client, deposit_minor=10_000)
    bet = bet_body(player, token, new_id("tx"), amount, round_id=new_id("rd"))
    txns, _ = await row_counts(gateway)

    got = await hub.post("/transaction/bet", bet)

    assert got == {"user": player, "status": "RS_ERROR_WRONG_TYPES",
                   "request_uuid": bet["request_uuid"], "currency": "EUR"}, got
    assert (await row_counts(gateway))[0] == txns
    assert await cash(client, player) == 10_000


@pytest.mark.parametrize("amount", [
    10_000_001,                             # EUR 100.00001 on EUR 100.00 (Caleta: balance + 0.00001)
    2**31 - 1,                              # Caleta: int32 max
    (AMOUNT_MINOR_MAX + 1) * EUR_WIRE,      # above money.amount_minor_max
    10**30,
])
async def test_undebitable_bet_above_the_balance_is_not_enough_money(client, gateway, hub, amount):
    """README "Certification" 5 and 28: a stake that cannot be debited as sent is never
    rounded and never debited; when it exceeds the balance the answer is Hub88's "not enough
    money" with the actual balance, as Caleta's exceeding-balance tests expect."""
    player, token = await player_with_session(client, deposit_minor=10_000)
    bet = bet_body(player, token, new_id("tx"), amount, round_id=new_id("rd"))
    txns, audits = await row_counts(gateway)

    got = await hub.post("/transaction/bet", bet)

    assert got == answer(bet, "RS_ERROR_NOT_ENOUGH_MONEY", 10_000_000), got
    assert await row_counts(gateway) == (txns, audits + 1)
    assert await txn_rows(gateway, bet["transaction_uuid"]) == []
    assert await cash(client, player) == 10_000
    rows = await fetch(gateway, "SELECT code FROM audit_log WHERE player_id = $1 "
                                "ORDER BY recorded_at DESC, seq DESC LIMIT 1", player)
    assert rows and rows[0]["code"] == "insufficient_funds", rows


async def test_sub_cent_usd_amounts_are_refused_not_rounded(client, gateway, hub):
    """README "Certification" 28: Caleta's tests apply USD 0.00001 (1 on the wire); our
    ledger holds whole cents and never rounds, so a bet or win of a sub-cent amount that
    fits the balance is refused (RS_ERROR_WRONG_TYPES) and nothing moves."""
    player, token = await player_with_session(client, deposit_minor=100_000, currencies=("USD",))
    rd = new_id("rd")
    for amount in (1, 100, 1_001):  # 0.00001, 0.001, 0.01001 USD
        micro = bet_body(player, token, new_id("tx"), amount, round_id=rd, currency="USD")
        assert (await hub.post("/transaction/bet", micro))["status"] == "RS_ERROR_WRONG_TYPES"
    cent = bet_body(player, token, new_id("tx"), 1_000, round_id=rd, currency="USD")  # USD 0.01
    assert await hub.post("/transaction/bet", cent) == ok(cent, 99_999_000, "USD")
    micro_win = win_body(player, token, new_id("tx"), 1, reference=cent["transaction_uuid"], round_id=rd,
                         currency="USD")
    assert (await hub.post("/transaction/win", micro_win))["status"] == "RS_ERROR_WRONG_TYPES"
    assert await cash(client, player, "USD") == 99_999


@pytest.mark.parametrize("amount", [356_001, -1_000, 10**30])
async def test_inexact_or_negative_win_amount_is_refused(client, gateway, hub, amount):
    player, token = await player_with_session(client, deposit_minor=10_000)
    rd = new_id("rd")
    bet = bet_body(player, token, new_id("tx"), 1_000_000, round_id=rd)
    assert await hub.post("/transaction/bet", bet) == ok(bet, 9_000_000)
    win = win_body(player, token, new_id("tx"), amount, reference=bet["transaction_uuid"], round_id=rd)
    assert (await hub.post("/transaction/win", win))["status"] == "RS_ERROR_WRONG_TYPES"
    assert await cash(client, player) == 9_000
    # the bet is still open and a correct win settles it
    win_ok = win_body(player, token, new_id("tx"), 356_000, reference=bet["transaction_uuid"], round_id=rd)
    assert await hub.post("/transaction/win", win_ok) == ok(win_ok, 9_356_000)


async def test_exact_amounts_in_other_exponents(client, gateway, hub):
    """JPY (0 decimals): 100000 per yen; KWD (3 decimals): 100 per fils."""
    jpy_player, jpy_token = await player_with_session(client, deposit_minor=1_000, currencies=("JPY",))
    bad = bet_body(jpy_player, jpy_token, new_id("tx"), 150_000, round_id=new_id("rd"), currency="JPY")
    assert (await hub.post("/transaction/bet", bad))["status"] == "RS_ERROR_WRONG_TYPES"
    good = bet_body(jpy_player, jpy_token, new_id("tx"), 15_500_000, round_id=new_id("rd"), currency="JPY")
    assert await hub.post("/transaction/bet", good) == ok(good, 84_500_000, "JPY")
    assert await cash(client, jpy_player, "JPY") == 845

    kwd_player, kwd_token = await player_with_session(client, deposit_minor=1_000, currencies=("KWD",))
    bet = bet_body(kwd_player, kwd_token, new_id("tx"), 12_300, round_id=new_id("rd"), currency="KWD")
    assert await hub.post("/transaction/bet", bet) == ok(bet, 87_700, "KWD")
    assert await cash(client, kwd_player, "KWD") == 877


def _padded_bet(player: str, token: str, size: int) -> bytes:
    """A valid bet body of exactly ``size`` bytes (an unknown ``padding`` field fills it)."""
    bet = bet_body(player, token, new_id("tx"), 356_000, round_id=new_id("rd"), padding="")
    base = len(encode(bet))
    bet["padding"] = "x" * (size - base)
    body = encode(bet)
    assert len(body) == size
    return body


async def test_body_at_the_limit_is_served_and_one_byte_more_is_refused(client, gateway, hub):
    player, token = await player_with_session(client, deposit_minor=10_000)

    at_limit = _padded_bet(player, token, BODY_BYTES_MAX)
    got = await hub.send("/transaction/bet", at_limit)
    assert got["status"] == RS_OK and got["balance"] == 9_644_000, got

    txns, audits = await row_counts(gateway)
    over = _padded_bet(player, token, BODY_BYTES_MAX + 1)
    got = await hub.send("/transaction/bet", over)
    assert got == {"status": "RS_ERROR_WRONG_SYNTAX"}, got
    assert await row_counts(gateway) == (txns, audits + 1)
    assert await cash(client, player) == 9_644


async def test_oversize_body_without_content_length_is_refused(client, gateway, hub):
    """Chunked upload (no Content-Length): refused once the limit is passed."""
    player, token = await player_with_session(client, deposit_minor=10_000)
    body = _padded_bet(player, token, 4 * BODY_BYTES_MAX)
    signature = sign(body)

    async def chunks():
        for i in range(0, len(body), 8192):
            yield body[i:i + 8192]

    txns, _ = await row_counts(gateway)
    got = await hub.send("/transaction/bet", chunks(), signature=signature)
    assert got == {"status": "RS_ERROR_WRONG_SYNTAX"}, got
    assert (await row_counts(gateway))[0] == txns
    assert await cash(client, player) == 10_000


async def test_huge_declared_body_is_refused(client, gateway, hub):
    """1 MiB body, correctly signed: refused on its Content-Length."""
    player, token = await player_with_session(client, deposit_minor=10_000)
    body = _padded_bet(player, token, 1 << 20)
    txns, _ = await row_counts(gateway)
    for endpoint in ENDPOINTS:
        got = await hub.send(endpoint, body)
        assert got == {"status": "RS_ERROR_WRONG_SYNTAX"}, (endpoint, got)
    assert (await row_counts(gateway))[0] == txns
    assert await cash(client, player) == 10_000


META = b'"meta":{"selection":"home_team"}'
MONEY = ("/transaction/bet", "/transaction/win")


def _random_bytes(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(n))


def _cut(good: bytes, permille: int) -> bytes:
    return good[: max(1, len(good) * permille // 1000)]


# name -> (body from a valid signed bet body and its user, endpoints it is garbage for).
# Bodies that are still JSON objects with a bad amount are garbage only for bet and win
# (info and balance ignore ``amount`` as an unknown field).
GARBAGE = {
    **{f"random_{n}": (lambda g, u, n=n: _random_bytes(n, 88 + n), ENDPOINTS)  # type: ignore[misc]  # mypy cannot type these lambdas
       for n in (1, 7, 64, 512, 4096)},
    **{f"truncated_{pm}permille": (lambda g, u, pm=pm: _cut(g, pm), ENDPOINTS)  # type: ignore[misc]  # mypy cannot type these lambdas
       for pm in (1, 100, 333, 500, 777, 900, 990, 999)},
    "nul_bytes": (lambda g, u: b"\x00" * 100, ENDPOINTS),
    "invalid_utf8_in_user": (lambda g, u: g.replace(u.encode(), b"\xff\xfe" + u.encode(), 1), ENDPOINTS),
    "lone_surrogate_escape": (lambda g, u: g.replace(u.encode(), b"\\ud800", 1), ENDPOINTS),
    "deep_array": (lambda g, u: b"[" * 50_000 + b"]" * 50_000, ENDPOINTS),
    "deep_object_in_meta": (lambda g, u: g.replace(META, b'"meta":' + b'{"a":' * 5_000 + b"1"
                                                    + b"}" * 5_000), ENDPOINTS),
    "depth_1000_array_in_meta": (lambda g, u: g.replace(META, b'"meta":' + b"[" * 1_000 + b"]" * 1_000),
                                 ENDPOINTS),
    "deep_array_in_meta": (lambda g, u: g.replace(META, b'"meta":' + b"[" * 20_000 + b"]" * 20_000),
                           ENDPOINTS),
    "deep_array_in_unknown_field": (lambda g, u: g[:-1] + b',"zz":' + b"[" * 20_000
                                    + b"]" * 20_000 + b"}", ENDPOINTS),
    "huge_integer_amount": (lambda g, u: g.replace(b'"amount":356000', b'"amount":' + b"9" * 5_000), MONEY),
    "number_overflow": (lambda g, u: g.replace(b'"amount":356000', b'"amount":1e999'), MONEY),
    "nan": (lambda g, u: g.replace(b'"amount":356000', b'"amount":NaN'), ENDPOINTS),
    "duplicate_key_bad_type": (lambda g, u: g[:-1] + b',"amount":"x"}', MONEY),
    "trailing_garbage": (lambda g, u: g + b"\x00garbage", ENDPOINTS),
    "two_documents": (lambda g, u: g + g, ENDPOINTS),
    "utf16": (lambda g, u: g.decode().encode("utf-16"), ENDPOINTS),
}


@pytest.mark.parametrize("case", list(GARBAGE))
async def test_garbage_bodies_never_500_and_write_no_ledger(client, gateway, hub, case):
    """Correctly signed garbage: HTTP 200 with a final refusal status (RS_ERROR_WRONG_SYNTAX
    or RS_ERROR_WRONG_TYPES; never the retryable RS_ERROR_UNKNOWN, which makes Hub88 retry a
    win for days), every refusal audited, nothing written to the ledger (docs/DESIGN.md 8)."""
    player, token = await player_with_session(client, deposit_minor=10_000)
    good = encode(bet_body(player, token, new_id("tx"), 356_000, round_id=new_id("rd")))
    assert META in good
    build, endpoints = GARBAGE[case]
    body = build(good, player)
    assert body != good
    txns, audits = await row_counts(gateway)

    answers = {endpoint: (await hub.send(endpoint, body))["status"] for endpoint in endpoints}

    bad = {e: s for e, s in answers.items() if s not in ("RS_ERROR_WRONG_SYNTAX", "RS_ERROR_WRONG_TYPES")}
    assert not bad, f"{case}: {bad}"
    assert await row_counts(gateway) == (txns, audits + len(endpoints))
    assert await cash(client, player) == 10_000


async def test_gateway_still_serves_after_garbage(client, gateway, hub):
    player, token = await player_with_session(client, deposit_minor=10_000)
    bet = bet_body(player, token, new_id("tx"), 356_000, round_id=new_id("rd"))
    assert await hub.post("/transaction/bet", bet) == ok(bet, 9_644_000)


async def test_unsigned_garbage_is_invalid_signature(client, gateway, hub):
    txns, audits = await row_counts(gateway)
    rng = random.Random(7)
    for endpoint in ENDPOINTS:
        body = bytes(rng.getrandbits(8) for _ in range(300))
        got = await hub.send(endpoint, body, signature=None)
        assert got == {"status": "RS_ERROR_INVALID_SIGNATURE"}, got
    assert await row_counts(gateway) == (txns, audits + len(ENDPOINTS))
