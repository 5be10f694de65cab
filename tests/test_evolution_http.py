"""Evolution One Wallet end to end: HTTP calls against a real gateway process, real
PostgreSQL and Redis.

Sources: gateway/providers/evolution/README.md ("Protocol facts", its licensee test list, and "Common
ground"), docs/DESIGN.md sections 5 (idempotency), 7 (Redis) and 8 (errors),
gateway/providers/evolution/README.md (status table and choices).

Every request carries the operator's key as the ``authToken`` query parameter (the
sandbox's ``[integrations.evolution] auth_token``); every answer must be HTTP 200, JSON, and one
of Evolution's statuses (``Evo.post``). Amounts go out as JSON numbers in major units and
come back parsed as ``Decimal`` (never float). Balances are read back through the generic
API and, where the answer cannot show it, rows are counted with asyncpg on the gateway's
own database. Each test uses fresh players, sids and ids.
"""

from __future__ import annotations

import asyncio
import json
import random
import zlib
from decimal import Decimal

import asyncpg
import httpx
import msgspec
import pytest

from gateway.config import load_settings
from gateway.embedded import EmbeddedServices
from tests.conftest import check_ledger, new_id, new_player
from tests.helpers import cash, expire

PREFIX = "/providers/evolution"
_SANDBOX = load_settings(environ={})  # config/sandbox.toml: one integration per provider, partner "demo"
AUTH_TOKEN = _SANDBOX.integration("evolution").auth_token
OTHER_PROVIDER_KEY = _SANDBOX.integration("softswiss").auth_token
BODY_BYTES_MAX = 65536  # config/default.toml [server] body_bytes_max
ENDPOINTS = ("/check", "/sid", "/balance", "/debit", "/credit", "/cancel", "/promo_payout")
MONEY = ("/debit", "/credit", "/cancel", "/promo_payout")

# gateway/providers/evolution/README.md "Statuses": nothing else may ever be sent.
STATUSES = {
    "OK", "TEMPORARY_ERROR", "UNKNOWN_ERROR", "INVALID_SID", "INVALID_TOKEN_ID", "INVALID_PARAMETER",
    "INSUFFICIENT_FUNDS", "BET_ALREADY_EXIST", "BET_ALREADY_SETTLED", "BET_DOES_NOT_EXIST",
    "FINAL_ERROR_ACTION_FAILED", "OPERATION_IN_PROCESS", "ACCOUNT_LOCKED",
}
#: README.md "Answers": every answer of these endpoints carries ``balance`` and ``bonus``,
#: except a wrong ``authToken``'s (nothing read) and a retryable one (nothing could be read).
BALANCE_ENDPOINTS = {"/balance", "/debit", "/credit", "/cancel", "/promo_payout"}
NO_BALANCE = {"INVALID_TOKEN_ID", "TEMPORARY_ERROR"}

_encoder = msgspec.json.Encoder(decimal_format="number")


def encode(payload: dict) -> bytes:
    """JSON with Decimal amounts written as JSON numbers (``12.5``), as Evolution sends them."""
    return _encoder.encode(payload)


# ---- Evolution's side of the wire -----------------------------------------------------------


class Evo:
    """POSTs Evolution requests and checks every answer's envelope."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def send(self, endpoint: str, body: bytes, *, auth: str | None = AUTH_TOKEN,
                   params: list | None = None, content_type: str | None = "application/json",
                   headers: dict | None = None) -> dict:
        """POST raw ``body``; ``auth`` None = no authToken. Returns the JSON answer (Decimals)."""
        query = list(params) if params is not None else ([("authToken", auth)] if auth is not None else [])
        h = dict(headers or {})
        if content_type is not None:
            h["Content-Type"] = content_type
        r = await self.http.post(PREFIX + endpoint, content=body, params=query, headers=h)
        assert r.status_code == 200, (endpoint, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json"), r.headers
        answer = json.loads(r.content, parse_float=Decimal)
        assert isinstance(answer, dict), answer
        assert answer.get("status") in STATUSES, answer
        # a body over the limit is refused before the key is read, alike on every endpoint
        if endpoint in BALANCE_ENDPOINTS and answer["status"] not in NO_BALANCE and len(body) <= BODY_BYTES_MAX:
            assert "balance" in answer and "bonus" in answer, (endpoint, answer)
        if endpoint in ("/check", "/sid"):
            assert "balance" not in answer and "bonus" not in answer, (endpoint, answer)
        for field in ("balance", "bonus"):
            if field in answer:
                assert isinstance(answer[field], (Decimal, int)) and not isinstance(answer[field], bool), answer
        return answer

    async def post(self, endpoint: str, payload: dict, **kw) -> dict:
        return await self.send(endpoint, encode(payload), **kw)


@pytest.fixture
async def evo(gateway):
    """Evolution's client: no gateway API key (Evolution authenticates with authToken only)."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as http:
        yield Evo(http)


# ---- request bodies (spec field names) ---------------------------------------------------------


def game(round_id: str, table: str = "tbl-blackjack-1") -> dict:
    return {"id": round_id, "type": "blackjack", "details": {"table": {"id": table, "vid": None}}}


def debit_body(player: str, sid: str, ref: str, amount: str, *, round_id: str, tx: str | None = None,
               currency: str = "EUR", table: str = "tbl-blackjack-1") -> dict:
    return {"sid": sid, "userId": player, "uuid": new_id("uu"), "currency": currency,
            "game": game(round_id, table), "channel": {"type": "P"},
            "transaction": {"id": tx or new_id("tx"), "refId": ref, "amount": Decimal(amount)}}


def credit_body(player: str, sid: str | None, ref: str, amount: str, *, round_id: str,
                tx: str | None = None, currency: str = "EUR", table: str = "tbl-blackjack-1") -> dict:
    body = {"userId": player, "uuid": new_id("uu"), "currency": currency, "game": game(round_id, table),
            "transaction": {"id": tx or new_id("tx"), "refId": ref, "amount": Decimal(amount)}}
    if sid is not None:
        body["sid"] = sid
    return body


def cancel_body(player: str, sid: str | None, ref: str, amount: str, *, round_id: str,
                tx: str | None = None, currency: str = "EUR") -> dict:
    body = {"userId": player, "uuid": new_id("uu"), "currency": currency, "game": game(round_id),
            "transaction": {"id": tx or new_id("tx"), "refId": ref, "amount": Decimal(amount)}}
    if sid is not None:
        body["sid"] = sid
    return body


def promo_body(player: str, sid: str | None, promo_id: str, amount: str, *, promo_type: str = "FreeRoundPlayableSpent",
               currency: str = "EUR") -> dict:
    body = {"userId": player, "uuid": new_id("uu"), "currency": currency,
            "promoTransaction": {"type": promo_type, "id": promo_id, "amount": Decimal(amount),
                                 "voucherId": new_id("v"), "remainingRounds": 0}}
    if sid is not None:
        body["sid"] = sid
    return body


def again(body: dict) -> dict:
    """The same transaction resent: identical content, a new request uuid."""
    return {**body, "uuid": new_id("uu")}


def ok(body: dict, cash_minor: int, bonus_minor: int = 0) -> dict:
    """The exact OK answer to ``body`` for EUR balances in minor units."""
    return answer(body, "OK", cash_minor, bonus_minor)


def answer(body: dict, status: str, cash_minor: int | None = None, bonus_minor: int = 0) -> dict:
    out: dict = {"status": status, "uuid": body["uuid"]}
    if cash_minor is not None:
        out["balance"] = Decimal(cash_minor) / 100
        out["bonus"] = Decimal(bonus_minor) / 100
    return out


# ---- gateway side: players, sessions, balances, ledger rows -----------------------------------


async def open_sid(client, player: str, currency: str = "EUR", provider: str = "evolution") -> str:
    r = await client.post("/v1/sessions", json={"player_id": player, "currency": currency,
                                               "provider": provider, "game_id": "evo-lobby"})
    assert r.status_code == 201, r.text
    return r.json()["token"]


async def seated(client, deposit_minor: int = 10_000, currencies=("EUR",)) -> tuple[str, str]:
    player = await new_player(client, currencies=currencies, deposit_minor=deposit_minor)
    return player, await open_sid(client, player, currencies[0])


async def fetch(gateway, sql: str, *args):
    conn = await asyncpg.connect(gateway.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def row_counts(database_url: str) -> tuple[int, int]:
    """(rows in transactions, rows in audit_log)."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT (SELECT count(*) FROM transactions) AS t, "
                                  "(SELECT count(*) FROM audit_log) AS a")
        return row["t"], row["a"]
    finally:
        await conn.close()


async def txn_rows(gateway, key: str) -> list:
    return await fetch(gateway, "SELECT kind, player_id, amount_minor, code, bet_state, credit_type, "
                                "round_id, game_id FROM transactions WHERE scope = 'demo:evolution' "
                                "AND transaction_id = $1", key)


async def player_txn_count(gateway, player: str) -> int:
    rows = await fetch(gateway, "SELECT count(*) AS n FROM transactions WHERE player_id = $1", player)
    return rows[0]["n"]


async def refusals(gateway, player: str) -> list:
    """(code, route) of the audited refusals of ``player``, oldest first."""
    rows = await fetch(gateway, "SELECT code, record FROM audit_log WHERE player_id = $1 AND kind = 'refusal' "
                                "ORDER BY shard_id, seq", player)
    return [(r["code"], json.loads(r["record"])["request"]["origin"]["route"]) for r in rows]


# ==== the licensee test list (gateway/providers/evolution/README.md) =========================================


async def test_debit_then_credit(client, gateway, evo):
    player, sid = await seated(client, deposit_minor=10_000)  # EUR 100.00
    rd, ref = new_id("rd"), new_id("ref")
    debit = debit_body(player, sid, ref, "12.5", round_id=rd)

    r = await evo.http.post(PREFIX + "/debit", params={"authToken": AUTH_TOKEN}, content=encode(debit),
                            headers={"Content-Type": "application/json"})
    assert r.content == ('{"status":"OK","balance":87.50,"bonus":0.00,"uuid":"%s"}' % debit["uuid"]).encode()  # noqa: UP031 - the exact bytes, braces unescaped

    credit = credit_body(player, sid, ref, "30.25", round_id=rd)
    assert await evo.post("/credit", credit) == ok(credit, 11_775)
    assert await cash(client, player) == 11_775
    assert [(r["kind"], r["amount_minor"], r["bet_state"], r["round_id"], r["game_id"])
            for r in await txn_rows(gateway, ref)] == [("debit", 1250, "settled", rd, "tbl-blackjack-1")]
    assert [(r["kind"], r["amount_minor"], r["credit_type"])
            for r in await txn_rows(gateway, "credit " + credit["transaction"]["id"])] == [("credit", 3025, "win")]
    # Evolution's raw ids stay in the audit (the shard key keeps only the refId of a debit)
    (audit,) = await fetch(gateway, "SELECT record FROM audit_log WHERE scope = 'demo:evolution' AND transaction_id = $1",
                           ref)
    origin = json.loads(audit["record"])["request"]["origin"]
    assert origin["route"] == "evolution /debit"
    assert origin["request_id"] == f'{debit["uuid"]} tx={debit["transaction"]["id"]} ref={ref}'


async def test_repeated_debit_never_deducts_twice(client, gateway, evo):
    """Licensee list: a repeated debit -> BET_ALREADY_EXIST or OK, never a second deduction.
    Choice (README.md): an identical repeat is answered OK with the stored outcome."""
    player, sid = await seated(client, deposit_minor=10_000)
    debit = debit_body(player, sid, new_id("ref"), "15", round_id=new_id("rd"))
    assert await evo.post("/debit", debit) == ok(debit, 8_500)

    for _ in range(3):
        retry = again(debit)
        assert await evo.post("/debit", retry) == ok(retry, 8_500)
    retries = [again(debit) for _ in range(10)]
    assert await asyncio.gather(*(evo.post("/debit", b) for b in retries)) == [ok(b, 8_500) for b in retries]

    assert await cash(client, player) == 8_500
    assert len(await txn_rows(gateway, debit["transaction"]["refId"])) == 1
    assert await player_txn_count(gateway, player) == 2  # the deposit and the one debit


@pytest.mark.parametrize("change", ["amount", "round", "table", "user"])
async def test_debit_reusing_a_ref_id_with_other_content_is_bet_already_exist(client, gateway, evo, change):
    player, sid = await seated(client, deposit_minor=10_000)
    rd, ref = new_id("rd"), new_id("ref")
    debit = debit_body(player, sid, ref, "10", round_id=rd)
    assert await evo.post("/debit", debit) == ok(debit, 9_000)

    if change == "user":
        other, other_sid = await seated(client, deposit_minor=10_000)
        clash = debit_body(other, other_sid, ref, "10", round_id=rd)
        got = await evo.post("/debit", clash)
        assert got["status"] == "BET_ALREADY_EXIST", got
        assert await cash(client, other) == 10_000
    else:
        clash = {"amount": debit_body(player, sid, ref, "11", round_id=rd),
                 "round": debit_body(player, sid, ref, "10", round_id=new_id("rd")),
                 "table": debit_body(player, sid, ref, "10", round_id=rd, table="tbl-roulette-9")}[change]
        assert await evo.post("/debit", clash) == answer(clash, "BET_ALREADY_EXIST", 9_000)
    assert await cash(client, player) == 9_000
    assert len(await txn_rows(gateway, ref)) == 1


async def test_repeated_credit_and_second_credit(client, gateway, evo):
    """Licensee list: a repeated credit -> BET_ALREADY_SETTLED or OK (choice: the same
    transaction.id replays OK; another credit of the same refId is BET_ALREADY_SETTLED)."""
    player, sid = await seated(client, deposit_minor=10_000)
    rd, ref = new_id("rd"), new_id("ref")
    assert (await evo.post("/debit", debit_body(player, sid, ref, "10", round_id=rd)))["status"] == "OK"
    credit = credit_body(player, sid, ref, "25", round_id=rd)
    assert await evo.post("/credit", credit) == ok(credit, 11_500)
    for _ in range(2):
        retry = again(credit)
        assert await evo.post("/credit", retry) == ok(retry, 11_500)

    second = credit_body(player, sid, ref, "25", round_id=rd)
    assert await evo.post("/credit", second) == answer(second, "BET_ALREADY_SETTLED", 11_500)
    assert await cash(client, player) == 11_500
    assert await txn_rows(gateway, "credit " + second["transaction"]["id"]) == []


async def test_repeated_cancel(client, gateway, evo):
    """Licensee list: a repeated cancel -> BET_ALREADY_SETTLED or OK; we answer
    BET_ALREADY_SETTLED (what the licensee test asserts), with the balance."""
    player, sid = await seated(client, deposit_minor=10_000)
    rd, ref = new_id("rd"), new_id("ref")
    assert (await evo.post("/debit", debit_body(player, sid, ref, "40", round_id=rd)))["status"] == "OK"
    cancel = cancel_body(player, sid, ref, "40", round_id=rd)
    assert await evo.post("/cancel", cancel) == ok(cancel, 10_000)
    # the same cancel again: BET_ALREADY_SETTLED (README.md "Certification", case 16)
    retry = again(cancel)
    assert await evo.post("/cancel", retry) == answer(retry, "BET_ALREADY_SETTLED", 10_000)
    second = cancel_body(player, sid, ref, "40", round_id=rd)
    assert await evo.post("/cancel", second) == answer(second, "BET_ALREADY_SETTLED", 10_000)
    assert await cash(client, player) == 10_000
    assert [(r["kind"], r["bet_state"]) for r in await txn_rows(gateway, ref)] == [("debit", "rolled_back")]


async def test_credit_with_unknown_ref_id_is_bet_does_not_exist(client, gateway, evo):
    player, sid = await seated(client, deposit_minor=10_000)
    credit = credit_body(player, sid, new_id("never"), "50", round_id=new_id("rd"))
    assert await evo.post("/credit", credit) == answer(credit, "BET_DOES_NOT_EXIST", 10_000)
    retry = again(credit)
    assert await evo.post("/credit", retry) == answer(retry, "BET_DOES_NOT_EXIST", 10_000)
    assert await cash(client, player) == 10_000
    assert await txn_rows(gateway, "credit " + credit["transaction"]["id"]) == []


async def test_cancel_with_unknown_ref_id_is_bet_does_not_exist_and_late_debit_refused(client, gateway, evo):
    """Licensee list: cancel with an unknown refId -> BET_DOES_NOT_EXIST. Common ground: the
    wallet remembers it, so the late debit of that refId is refused and debits nothing."""
    player, sid = await seated(client, deposit_minor=10_000)
    rd, ref = new_id("rd"), new_id("lost")
    cancel = cancel_body(player, sid, ref, "20", round_id=rd)
    assert await evo.post("/cancel", cancel) == answer(cancel, "BET_DOES_NOT_EXIST", 10_000)
    # its retry (same transaction.id) is answered the same (choice 16)
    retry = again(cancel)
    assert await evo.post("/cancel", retry) == answer(retry, "BET_DOES_NOT_EXIST", 10_000)

    # the late debit: FINAL_ERROR_ACTION_FAILED (README.md "Certification", case 14), and again
    late = debit_body(player, sid, ref, "20", round_id=rd)
    assert await evo.post("/debit", late) == answer(late, "FINAL_ERROR_ACTION_FAILED", 10_000)
    late_retry = again(late)
    assert await evo.post("/debit", late_retry) == answer(late_retry, "FINAL_ERROR_ACTION_FAILED", 10_000)
    credit = credit_body(player, sid, ref, "100", round_id=rd)
    assert await evo.post("/credit", credit) == answer(credit, "BET_ALREADY_SETTLED", 10_000)

    assert await cash(client, player) == 10_000
    assert [(r["kind"], r["amount_minor"]) for r in await txn_rows(gateway, ref)] == [("tombstone", 0)]


async def test_cancel_after_credit_and_credit_after_cancel_are_already_settled(client, gateway, evo):
    player, sid = await seated(client, deposit_minor=10_000)
    rd = new_id("rd")
    paid, cancelled = new_id("ref"), new_id("ref")
    assert (await evo.post("/debit", debit_body(player, sid, paid, "10", round_id=rd)))["status"] == "OK"
    assert (await evo.post("/debit", debit_body(player, sid, cancelled, "20", round_id=rd)))["status"] == "OK"
    credit = credit_body(player, sid, paid, "15", round_id=rd)
    assert await evo.post("/credit", credit) == ok(credit, 8_500)
    cancel = cancel_body(player, sid, cancelled, "20", round_id=rd)
    assert await evo.post("/cancel", cancel) == ok(cancel, 10_500)

    late_cancel = cancel_body(player, sid, paid, "10", round_id=rd)
    assert await evo.post("/cancel", late_cancel) == answer(late_cancel, "BET_ALREADY_SETTLED", 10_500)
    late_credit = credit_body(player, sid, cancelled, "99", round_id=rd)
    assert await evo.post("/credit", late_credit) == answer(late_credit, "BET_ALREADY_SETTLED", 10_500)
    assert await cash(client, player) == 10_500


async def test_zero_credit_is_valid_and_settles_the_debit(client, gateway, evo):
    player, sid = await seated(client, deposit_minor=10_000)
    rd, ref = new_id("rd"), new_id("ref")
    assert (await evo.post("/debit", debit_body(player, sid, ref, "5", round_id=rd)))["status"] == "OK"
    credit = credit_body(player, sid, ref, "0", round_id=rd)
    assert await evo.post("/credit", credit) == ok(credit, 9_500)
    cancel = cancel_body(player, sid, ref, "5", round_id=rd)
    assert await evo.post("/cancel", cancel) == answer(cancel, "BET_ALREADY_SETTLED", 9_500)
    assert [r["bet_state"] for r in await txn_rows(gateway, ref)] == ["settled"]


async def test_insufficient_funds_returns_the_unchanged_balance(client, gateway, evo):
    player, sid = await seated(client, deposit_minor=1_000)  # EUR 10.00
    debit = debit_body(player, sid, new_id("ref"), "10.01", round_id=new_id("rd"))
    assert await evo.post("/debit", debit) == answer(debit, "INSUFFICIENT_FUNDS", 1_000)
    retry = again(debit)
    assert await evo.post("/debit", retry) == answer(retry, "INSUFFICIENT_FUNDS", 1_000)
    assert await cash(client, player) == 1_000
    fits = debit_body(player, sid, new_id("ref"), "10", round_id=new_id("rd"))
    assert await evo.post("/debit", fits) == ok(fits, 0)


async def test_a_hundred_debits_top_up_one_round(client, gateway, evo):
    """Licensee list: up to ~100 debits may top up one round; each is settled by its refId."""
    player, sid = await seated(client, deposit_minor=100_000)  # EUR 1000.00
    rd = new_id("rd")
    refs = [new_id("ref") for _ in range(100)]
    for i, ref in enumerate(refs):
        got = await evo.post("/debit", debit_body(player, sid, ref, "1.5", round_id=rd))
        assert got["status"] == "OK" and got["balance"] == Decimal(100_000 - 150 * (i + 1)) / 100, (i, got)
    for i, ref in enumerate(refs):
        amount = "3" if i % 2 else "0"
        got = await evo.post("/credit", credit_body(player, sid, ref, amount, round_id=rd))
        assert got["status"] == "OK", (i, got)
    assert await cash(client, player) == 100_000 - 150 * 100 + 300 * 50
    rows = await fetch(gateway, "SELECT bet_state, count(*) AS n FROM transactions WHERE player_id = $1 "
                                "AND kind = 'debit' GROUP BY bet_state", player)
    assert {r["bet_state"]: r["n"] for r in rows} == {"settled": 100}


async def test_parallel_rounds_and_tables(client, gateway, evo):
    """Licensee list: a player may play several rounds and tables in parallel."""
    player, sid = await seated(client, deposit_minor=100_000)
    tables = [f"tbl-{t}" for t in range(5)]
    rounds = {t: [new_id("rd") for _ in range(4)] for t in tables}
    debits = [(t, rd, new_id("ref")) for t in tables for rd in rounds[t]]

    got = await asyncio.gather(*(evo.post("/debit", debit_body(player, sid, ref, "2.25", round_id=rd, table=t))
                                 for t, rd, ref in debits))
    assert [g["status"] for g in got] == ["OK"] * len(debits)
    assert await cash(client, player) == 100_000 - 225 * len(debits)

    half = len(debits) // 2
    settle = [evo.post("/credit", credit_body(player, sid, ref, "4.5", round_id=rd, table=t))
              for t, rd, ref in debits[:half]]
    settle += [evo.post("/cancel", cancel_body(player, sid, ref, "2.25", round_id=rd))
               for t, rd, ref in debits[half:]]
    assert [g["status"] for g in await asyncio.gather(*settle)] == ["OK"] * len(debits)
    assert await cash(client, player) == 100_000 - 225 * half + 450 * half


# ==== sessions: /check, /sid, expiry ===========================================================


async def test_check_rotates_the_sid_and_the_old_one_is_refused(client, gateway, evo):
    player, sid = await seated(client, deposit_minor=10_000)
    check = {"sid": sid, "userId": player, "uuid": new_id("uu"), "channel": {"type": "P"}}
    got = await evo.post("/check", check)
    assert got["status"] == "OK" and got["uuid"] == check["uuid"], got
    new_sid = got["sid"]
    assert isinstance(new_sid, str) and new_sid != sid

    # the old sid is refused everywhere a live sid is needed
    old_debit = debit_body(player, sid, new_id("ref"), "1", round_id=new_id("rd"))
    assert await evo.post("/debit", old_debit) == answer(old_debit, "INVALID_SID", 10_000)
    again_check = {**check, "uuid": new_id("uu")}
    assert await evo.post("/check", again_check) == answer(again_check, "INVALID_SID")
    bal = {"sid": sid, "userId": player, "currency": "EUR", "uuid": new_id("uu")}
    assert await evo.post("/balance", bal) == answer(bal, "INVALID_SID", 10_000)
    assert await cash(client, player) == 10_000

    # the new one works, and credits/cancels with the OLD sid are still accepted
    rd, ref = new_id("rd"), new_id("ref")
    debit = debit_body(player, new_sid, ref, "4", round_id=rd)
    assert await evo.post("/debit", debit) == ok(debit, 9_600)
    credit = credit_body(player, sid, ref, "8", round_id=rd)
    assert await evo.post("/credit", credit) == ok(credit, 10_400)
    assert [c for c, _ in await refusals(gateway, player)] == ["invalid_token"] * 3


async def test_two_concurrent_checks_of_one_sid_yield_one_new_sid(client, gateway, evo):
    player, sid = await seated(client)
    checks = [{"sid": sid, "userId": player, "uuid": new_id("uu")} for _ in range(6)]
    got = await asyncio.gather(*(evo.post("/check", c) for c in checks))
    assert sorted(g["status"] for g in got) == ["INVALID_SID"] * 5 + ["OK"], got


async def test_sid_endpoint_issues_a_sid_for_an_existing_active_user(client, gateway, evo):
    """README.md choice 11 (licensee list: every case starts with sid() and an arbitrary
    sid): a live sid of the user is rotated like /check; any other sid gets a new session of
    the user, in its first currency, on this integration; nobody and a locked account get
    none."""
    player, sid = await seated(client, deposit_minor=10_000)
    got = await evo.post("/sid", {"sid": sid, "userId": player, "uuid": new_id("uu")})
    assert got["status"] == "OK" and got["sid"] != sid
    stale = {"sid": sid, "userId": player, "uuid": new_id("uu")}
    fresh = await evo.post("/sid", stale)
    assert fresh["status"] == "OK" and fresh["sid"] not in (sid, got["sid"]), fresh
    arbitrary = {"sid": "abc", "userId": player, "uuid": new_id("uu"), "channel": {"type": "M"}}
    minted = await evo.post("/sid", arbitrary)
    assert minted["status"] == "OK" and minted["uuid"] == arbitrary["uuid"], minted
    empty = await evo.post("/sid", {"sid": "", "userId": player})
    assert empty["status"] == "OK", empty
    # every sid issued works, none replaced another
    for i, new_sid in enumerate((got["sid"], fresh["sid"], minted["sid"], empty["sid"])):
        debit = debit_body(player, new_sid, new_id("ref"), "1", round_id=new_id("rd"))
        assert await evo.post("/debit", debit) == ok(debit, 9_900 - 100 * i)
        check = await evo.post("/check", {"sid": new_sid, "userId": player, "uuid": new_id("uu")})
        assert check["status"] == "OK", check

    nobody = {"sid": "abc", "userId": "nobody-" + new_id(), "uuid": new_id("uu")}
    assert await evo.post("/sid", nobody) == answer(nobody, "INVALID_PARAMETER")
    missing = {"userId": player, "uuid": new_id("uu")}
    assert await evo.post("/sid", missing) == answer(missing, "INVALID_PARAMETER")
    r = await client.post(f"/v1/players/{player}/status", json={"status": "blocked", "reason": "test"})
    assert r.status_code == 200, r.text
    locked = {"sid": "abc", "userId": player, "uuid": new_id("uu")}
    assert await evo.post("/sid", locked) == answer(locked, "ACCOUNT_LOCKED")
    assert [c for c, _ in await refusals(gateway, player)] == ["invalid_request", "player_blocked"]


async def test_sid_issues_only_for_a_player_of_one_currency(client, gateway, evo):
    """Evolution's /sid names no currency: a player of one wallet gets a session in it; one
    of several wallets is INVALID_PARAMETER (the operator opens that session itself)."""
    single = await new_player(client, currencies=("USD",), deposit_minor=5_000)
    got = await evo.post("/sid", {"sid": "x", "userId": single})
    assert got["status"] == "OK", got
    bal = await evo.post("/balance", {"sid": got["sid"], "userId": single})
    assert bal == {"status": "OK", "balance": Decimal("50.00"), "bonus": Decimal("0.00")}, bal
    several = await new_player(client, currencies=("USD", "EUR"), deposit_minor=5_000)
    assert await evo.post("/sid", {"sid": "x", "userId": several}) == {"status": "INVALID_PARAMETER"}
    assert [c for c, _ in await refusals(gateway, several)] == ["currency_mismatch"]


async def test_check_refuses_another_users_or_another_providers_sid(client, gateway, evo):
    player, sid = await seated(client)
    other = await new_player(client)
    wrong_user = {"sid": sid, "userId": other, "uuid": new_id("uu")}
    assert await evo.post("/check", wrong_user) == answer(wrong_user, "INVALID_SID")
    hub88_token = await open_sid(client, player, provider="hub88")
    foreign = {"sid": hub88_token, "userId": player, "uuid": new_id("uu")}
    assert await evo.post("/check", foreign) == answer(foreign, "INVALID_SID")
    foreign_debit = debit_body(player, hub88_token, new_id("ref"), "1", round_id=new_id("rd"))
    assert await evo.post("/debit", foreign_debit) == answer(foreign_debit, "INVALID_SID", 10_000)
    # the untouched Evolution sid still works
    assert (await evo.post("/check", {"sid": sid, "userId": player, "uuid": new_id("uu")}))["status"] == "OK"


async def test_expired_sid_refuses_debit_accepts_credit_cancel_promo(client, gateway, evo):
    """Common ground: wins and rollbacks must be accepted with an expired session; bets not."""
    player, sid = await seated(client, deposit_minor=10_000)
    rd, paid, cancelled = new_id("rd"), new_id("ref"), new_id("ref")
    assert (await evo.post("/debit", debit_body(player, sid, paid, "10", round_id=rd)))["status"] == "OK"
    assert (await evo.post("/debit", debit_body(player, sid, cancelled, "20", round_id=rd)))["status"] == "OK"
    assert await expire(gateway.redis_url, sid)  # expired, still recognisable
    before = await player_txn_count(gateway, player)

    refused = debit_body(player, sid, new_id("ref"), "1", round_id=rd)
    assert await evo.post("/debit", refused) == answer(refused, "INVALID_SID", 7_000)
    assert await player_txn_count(gateway, player) == before
    bal = {"sid": sid, "userId": player, "uuid": new_id("uu")}
    assert await evo.post("/balance", bal) == answer(bal, "INVALID_SID", 7_000)
    check = {"sid": sid, "userId": player, "uuid": new_id("uu")}
    assert await evo.post("/check", check) == answer(check, "INVALID_SID")

    credit = credit_body(player, sid, paid, "30", round_id=rd)
    assert await evo.post("/credit", credit) == ok(credit, 10_000)
    cancel = cancel_body(player, sid, cancelled, "20", round_id=rd)
    assert await evo.post("/cancel", cancel) == ok(cancel, 12_000)
    promo = promo_body(player, sid, new_id("promo"), "2.5")
    assert await evo.post("/promo_payout", promo) == ok(promo, 12_250)
    # and without any sid at all (userId names the player)
    promo2 = promo_body(player, None, new_id("promo"), "1")
    assert await evo.post("/promo_payout", promo2) == ok(promo2, 12_350)
    assert await cash(client, player) == 12_350


async def test_unknown_sid_refuses_debit_but_not_settlements(client, gateway, evo):
    player, sid = await seated(client, deposit_minor=10_000)
    rd, ref = new_id("rd"), new_id("ref")
    assert (await evo.post("/debit", debit_body(player, sid, ref, "10", round_id=rd)))["status"] == "OK"
    bogus = "never-issued-" + new_id()
    debit = debit_body(player, bogus, new_id("ref"), "1", round_id=rd)
    assert await evo.post("/debit", debit) == answer(debit, "INVALID_SID", 9_000)
    credit = credit_body(player, bogus, ref, "1", round_id=rd)
    assert await evo.post("/credit", credit) == ok(credit, 9_100)


async def test_settlement_with_another_users_sid_is_refused(client, gateway, evo):
    player, sid = await seated(client, deposit_minor=10_000)
    _, mallory_sid = await seated(client)
    rd, ref = new_id("rd"), new_id("ref")
    assert (await evo.post("/debit", debit_body(player, sid, ref, "10", round_id=rd)))["status"] == "OK"
    credit = credit_body(player, mallory_sid, ref, "500", round_id=rd)
    assert await evo.post("/credit", credit) == answer(credit, "INVALID_SID", 9_000)
    cancel = cancel_body(player, mallory_sid, ref, "10", round_id=rd)
    assert await evo.post("/cancel", cancel) == answer(cancel, "INVALID_SID", 9_000)
    assert await cash(client, player) == 9_000


async def test_unknown_user_id_is_invalid_parameter_even_with_a_valid_sid(client, gateway, evo):
    """README.md "Certification", case 4 (licensee test checkUsingInvalidUserId): a userId
    naming no player, with a valid sid of another user, on /check, /balance, /debit,
    /cancel and /credit -> INVALID_PARAMETER; nothing moves, the sid still works."""
    player, sid = await seated(client, deposit_minor=10_000)
    fake = "fakeUserId_" + new_id()
    rd, ref = new_id("rd"), new_id("ref")
    check = {"sid": sid, "userId": fake, "uuid": new_id("uu")}
    assert await evo.post("/check", check) == answer(check, "INVALID_PARAMETER")
    bal = {"sid": sid, "userId": fake, "currency": "EUR", "uuid": new_id("uu")}
    assert await evo.post("/balance", bal) == answer(bal, "INVALID_PARAMETER", 0)
    debit = debit_body(fake, sid, ref, "10", round_id=rd)
    assert await evo.post("/debit", debit) == answer(debit, "INVALID_PARAMETER", 0)
    placed = debit_body(player, sid, ref, "10", round_id=rd)
    assert await evo.post("/debit", placed) == ok(placed, 9_000)
    cancel = cancel_body(fake, sid, ref, "10", round_id=rd)
    assert await evo.post("/cancel", cancel) == answer(cancel, "INVALID_PARAMETER", 0)
    credit = credit_body(fake, sid, ref, "2", round_id=rd)
    assert await evo.post("/credit", credit) == answer(credit, "INVALID_PARAMETER", 0)
    assert await cash(client, player) == 9_000
    credit = credit_body(player, sid, ref, "10", round_id=rd)
    assert await evo.post("/credit", credit) == ok(credit, 10_000)
    # without any sid the shard names the unknown player the same way
    lone = credit_body(fake, None, new_id("ref"), "1", round_id=rd)
    assert await evo.post("/credit", lone) == answer(lone, "INVALID_PARAMETER", 0)


async def test_empty_informational_strings_are_processed(client, gateway, evo):
    """README.md "Certification", case 26: ``game.details.table.vid: ""`` (and ``table.id``,
    ``game.type``, ``uuid``, ``voucherId`` empty) is a normal debit, credit, cancel and promo."""
    player, sid = await seated(client, deposit_minor=10_000)
    rd, paid, cancelled = new_id("rd"), new_id("ref"), new_id("ref")
    vid = {"id": rd, "type": "blackjack", "details": {"table": {"id": "tbl-1", "vid": ""}}}
    bare = {"id": rd, "type": "", "details": {"table": {"id": "", "vid": ""}}}
    debit = {**debit_body(player, sid, paid, "10", round_id=rd), "game": vid, "uuid": ""}
    assert await evo.post("/debit", debit) == {"status": "OK", "balance": Decimal("90.00"),
                                               "bonus": Decimal("0.00"), "uuid": ""}
    other = {**debit_body(player, sid, cancelled, "5", round_id=rd), "game": bare}
    assert await evo.post("/debit", other) == ok(other, 8_500)
    credit = {**credit_body(player, sid, paid, "20", round_id=rd), "game": vid}
    assert await evo.post("/credit", credit) == ok(credit, 10_500)
    cancel = {**cancel_body(player, sid, cancelled, "5", round_id=rd), "game": bare}
    assert await evo.post("/cancel", cancel) == ok(cancel, 11_000)
    promo = promo_body(player, sid, new_id("promo"), "1")
    promo["promoTransaction"]["voucherId"] = ""
    promo["promoTransaction"]["type"] = ""
    assert await evo.post("/promo_payout", promo) == ok(promo, 11_100)
    assert [(r["round_id"], r["game_id"]) for r in await txn_rows(gateway, paid)] == [(rd, "tbl-1")]
    assert [(r["round_id"], r["game_id"]) for r in await txn_rows(gateway, cancelled)] == [(rd, "")]
    # the keys stay non-empty
    keyless = {**debit_body(player, sid, "", "1", round_id=rd)}
    assert await evo.post("/debit", keyless) == answer(keyless, "INVALID_PARAMETER", 0)


# ==== balance, promo, currencies, blocked players ===============================================


async def test_balance_reports_cash_and_bonus_separately(client, gateway, evo):
    """Choice (README.md): ``balance`` = cash, ``bonus`` = bonus money, major units."""
    player, sid = await seated(client, deposit_minor=12_345)
    r = await client.post("/v1/wallet/deposit", json={"transaction_id": new_id("dep"), "player_id": player,
                                                      "currency": "EUR", "amount_minor": 500, "bonus": True})
    assert r.status_code == 200, r.text
    bal = {"sid": sid, "userId": player, "currency": "EUR", "game": game(new_id("rd")), "uuid": new_id("uu")}
    assert await evo.post("/balance", bal) == ok(bal, 12_345, 500)
    no_currency = {"sid": sid, "userId": player, "uuid": new_id("uu")}
    assert await evo.post("/balance", no_currency) == ok(no_currency, 12_345, 500)
    wrong = {"sid": sid, "userId": player, "currency": "USD", "uuid": new_id("uu")}
    assert await evo.post("/balance", wrong) == answer(wrong, "INVALID_PARAMETER", 12_345, 500)


async def test_promo_payout_is_a_promo_credit_and_replays(client, gateway, evo):
    player, sid = await seated(client, deposit_minor=1_000)
    promo_id = new_id("promo")
    promo = promo_body(player, sid, promo_id, "7.77")
    assert await evo.post("/promo_payout", promo) == ok(promo, 1_777)
    retry = again(promo)
    assert await evo.post("/promo_payout", retry) == ok(retry, 1_777)
    changed = {**again(promo), "promoTransaction": {**promo["promoTransaction"], "amount": Decimal(8)}}
    assert await evo.post("/promo_payout", changed) == answer(changed, "BET_ALREADY_EXIST", 1_777)
    jackpot = promo_body(player, None, new_id("promo"), "100", promo_type="JackpotWin")
    assert await evo.post("/promo_payout", jackpot) == ok(jackpot, 11_777)
    assert [(r["kind"], r["amount_minor"], r["credit_type"]) for r in await txn_rows(gateway, "promo " + promo_id)] == [
        ("credit", 777, "promo")]
    jp = await txn_rows(gateway, "promo " + jackpot["promoTransaction"]["id"])
    assert [(r["credit_type"], r["amount_minor"]) for r in jp] == [("jackpot", 10_000)]


async def test_wrong_currency_is_invalid_parameter(client, gateway, evo):
    """Choice (README.md): a debit in another currency than the sid's -> INVALID_PARAMETER."""
    player = await new_player(client, currencies=("EUR", "USD"), deposit_minor=10_000)
    sid = await open_sid(client, player, "EUR")
    # a refusal answers the balance in the sid's currency (README.md "Answers")
    usd = debit_body(player, sid, new_id("ref"), "1", round_id=new_id("rd"), currency="USD")
    assert await evo.post("/debit", usd) == answer(usd, "INVALID_PARAMETER", 10_000)
    unknown = debit_body(player, sid, new_id("ref"), "1", round_id=new_id("rd"), currency="XXX")
    assert await evo.post("/debit", unknown) == answer(unknown, "INVALID_PARAMETER", 10_000)
    # no sid, a currency the player lacks: zero in that currency
    no_wallet = credit_body(player, None, new_id("ref"), "1", round_id=new_id("rd"), currency="GBP")
    assert await evo.post("/credit", no_wallet) == answer(no_wallet, "INVALID_PARAMETER", 0)
    assert await cash(client, player) == 10_000
    assert [c for c, _ in await refusals(gateway, player)][:2] == ["currency_mismatch", "unknown_currency"]


async def test_exact_amounts_and_excess_digits(client, gateway, evo):
    player = await new_player(client, currencies=("EUR", "JPY", "KWD"), deposit_minor=10_000)
    for currency, minor in (("JPY", 1_000), ("KWD", 10_000)):
        r = await client.post("/v1/wallet/deposit", json={"transaction_id": new_id("dep"), "player_id": player,
                                                          "currency": currency, "amount_minor": minor})
        assert r.status_code == 200, r.text
    jpy_sid, kwd_sid = await open_sid(client, player, "JPY"), await open_sid(client, player, "KWD")

    jpy = debit_body(player, jpy_sid, new_id("ref"), "7", round_id=new_id("rd"), currency="JPY")
    got = await evo.post("/debit", jpy)
    assert got["status"] == "OK" and got["balance"] == Decimal(993), got
    kwd = debit_body(player, kwd_sid, new_id("ref"), "1.234", round_id=new_id("rd"), currency="KWD")
    r = await evo.http.post(PREFIX + "/debit", params={"authToken": AUTH_TOKEN}, content=encode(kwd),
                            headers={"Content-Type": "application/json"})
    assert b'"balance":8.766,"bonus":0.000' in r.content, r.content

    for currency, sid, amount, balance in (("JPY", jpy_sid, "1.5", Decimal(993)),
                                           ("KWD", kwd_sid, "0.0001", Decimal("8.766"))):
        bad = debit_body(player, sid, new_id("ref"), amount, round_id=new_id("rd"), currency=currency)
        assert await evo.post("/debit", bad) == {"status": "INVALID_PARAMETER", "uuid": bad["uuid"],
                                                 "balance": balance, "bonus": Decimal(0)}
    assert await cash(client, player, "JPY") == 993 and await cash(client, player, "KWD") == 8_766


@pytest.mark.parametrize("amount", [b"12.505", b"-1", b"-0.01", b"1e30", b"100000000.01", b"1e-7",
                                    b'"NaN"', b'"Infinity"', b'"-Infinity"', b"9" * 5000, b"1e999999999",
                                    b"true", b"null", b'"12,5"', b"[12.5]"])
@pytest.mark.parametrize("endpoint", ["/debit", "/credit"])
async def test_bad_amounts_are_invalid_parameter_and_audited(client, gateway, evo, amount, endpoint):
    player, sid = await seated(client, deposit_minor=10_000)
    body = encode(debit_body(player, sid, new_id("ref"), "1", round_id=new_id("rd")))
    assert b'"amount":1}' in body
    body = body.replace(b'"amount":1}', b'"amount":' + amount + b"}")
    txns, audits = await row_counts(gateway.database_url)
    got = await evo.send(endpoint, body)
    assert got["status"] == "INVALID_PARAMETER", got
    assert await row_counts(gateway.database_url) == (txns, audits + 1)
    assert await cash(client, player) == 10_000


async def test_blocked_player_cannot_debit_but_gets_credit_and_cancel(client, gateway, evo):
    """Common ground: wins and rollbacks accepted for a blocked or self-excluded player; bets
    not. PLAYER_BLOCKED -> ACCOUNT_LOCKED (README.md "Certification", case 28)."""
    player, sid = await seated(client, deposit_minor=10_000)
    rd, paid, cancelled = new_id("rd"), new_id("ref"), new_id("ref")
    assert (await evo.post("/debit", debit_body(player, sid, paid, "10", round_id=rd)))["status"] == "OK"
    assert (await evo.post("/debit", debit_body(player, sid, cancelled, "20", round_id=rd)))["status"] == "OK"
    for status in ("blocked", "self_excluded"):
        r = await client.post(f"/v1/players/{player}/status", json={"status": status, "reason": "test"})
        assert r.status_code == 200, r.text
        debit = debit_body(player, sid, new_id("ref"), "1", round_id=rd)
        assert await evo.post("/debit", debit) == answer(debit, "ACCOUNT_LOCKED", 7_000)

    credit = credit_body(player, sid, paid, "50", round_id=rd)
    assert await evo.post("/credit", credit) == ok(credit, 12_000)
    cancel = cancel_body(player, sid, cancelled, "20", round_id=rd)
    assert await evo.post("/cancel", cancel) == ok(cancel, 14_000)
    promo = promo_body(player, sid, new_id("promo"), "1")
    assert await evo.post("/promo_payout", promo) == ok(promo, 14_100)

    r = await client.post(f"/v1/players/{player}/status", json={"status": "active", "reason": "test"})
    assert r.status_code == 200, r.text
    debit = debit_body(player, sid, new_id("ref"), "1", round_id=rd)
    assert await evo.post("/debit", debit) == ok(debit, 14_000)


# ==== authToken ===================================================================================


@pytest.mark.parametrize("case", ["wrong", "missing", "empty", "twice", "other_provider", "case_changed"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_bad_auth_token_is_invalid_token_id_audited_and_moves_nothing(client, gateway, evo, case, endpoint):
    player, sid = await seated(client, deposit_minor=10_000)
    rd, ref = new_id("rd"), new_id("ref")
    if endpoint in ("/credit", "/cancel"):
        assert (await evo.post("/debit", debit_body(player, sid, ref, "10", round_id=rd)))["status"] == "OK"
    payload = {
        "/check": {"sid": sid, "userId": player, "uuid": new_id("uu")},
        "/sid": {"sid": sid, "userId": player, "uuid": new_id("uu")},
        "/balance": {"sid": sid, "userId": player, "uuid": new_id("uu")},
        "/debit": debit_body(player, sid, new_id("ref"), "1", round_id=rd),
        "/credit": credit_body(player, sid, ref, "100", round_id=rd),
        "/cancel": cancel_body(player, sid, ref, "10", round_id=rd),
        "/promo_payout": promo_body(player, sid, new_id("promo"), "100"),
    }[endpoint]
    params = {"wrong": [("authToken", "not-the-key")], "missing": [], "empty": [("authToken", "")],
              "twice": [("authToken", AUTH_TOKEN), ("authToken", AUTH_TOKEN)],
              "other_provider": [("authToken", OTHER_PROVIDER_KEY)],
              "case_changed": [("authToken", AUTH_TOKEN.upper())]}[case]
    before = await cash(client, player)
    txns, audits = await row_counts(gateway.database_url)

    got = await evo.post(endpoint, payload, params=params)

    assert got == answer(payload, "INVALID_TOKEN_ID"), got
    assert await row_counts(gateway.database_url) == (txns, audits + 1)
    assert await refusals(gateway, player) == [("unauthorized", "evolution " + endpoint)]
    assert await cash(client, player) == before
    # the sid was not rotated by a refused /check
    assert (await evo.post("/check", {"sid": sid, "userId": player, "uuid": new_id("uu")}))["status"] == "OK"


@pytest.mark.parametrize("query", ["authToken", "authToken=%FF%FE", "authtoken=" + AUTH_TOKEN,
                                   "AuthToken=" + AUTH_TOKEN, "authToken=" + AUTH_TOKEN + "%00",
                                   "authToken=" + "k" * 4000, "x=1&&&=&authToken[]=" + AUTH_TOKEN])
async def test_odd_query_strings_are_invalid_token_id(client, gateway, evo, query):
    player, sid = await seated(client, deposit_minor=10_000)
    body = encode(debit_body(player, sid, new_id("ref"), "1", round_id=new_id("rd")))
    r = await evo.http.post(f"{PREFIX}/debit?{query}", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "INVALID_TOKEN_ID", r.text
    assert await cash(client, player) == 10_000


async def test_auth_token_authenticates_the_caller_not_the_body(client, gateway, evo):
    """Evolution signs no body (gateway/providers/evolution/README.md: the API key in ``authToken`` is the whole
    authentication), so "altered body" is not applicable: a body changed in transit with
    the right key is indistinguishable from an honest one and is processed; the key, not the
    body, is what is checked (README.md, choice 3)."""
    player, sid = await seated(client, deposit_minor=10_000)
    body = encode(debit_body(player, sid, new_id("ref"), "1", round_id=new_id("rd")))
    altered = body.replace(b'"amount":1}', b'"amount":2}')
    assert (await evo.send("/debit", altered))["balance"] == Decimal("98.00")
    assert (await evo.send("/debit", altered, auth="x" + AUTH_TOKEN))["status"] == "INVALID_TOKEN_ID"
    assert await cash(client, player) == 9_800


# ==== malformed input: never a 500, never a ledger write =========================================


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/jsonx", "multipart/form-data; boundary=x"])
async def test_wrong_content_type_is_invalid_parameter(client, gateway, evo, content_type):
    player, sid = await seated(client, deposit_minor=10_000)
    body = encode(debit_body(player, sid, new_id("ref"), "1", round_id=new_id("rd")))
    txns, audits = await row_counts(gateway.database_url)
    got = await evo.send("/debit", body, content_type=content_type)
    assert got["status"] == "INVALID_PARAMETER", got
    assert await row_counts(gateway.database_url) == (txns, audits + 1)
    assert await cash(client, player) == 10_000


async def test_json_content_type_with_charset_is_accepted(client, gateway, evo):
    player, sid = await seated(client, deposit_minor=10_000)
    body = encode(debit_body(player, sid, new_id("ref"), "1", round_id=new_id("rd")))
    got = await evo.send("/debit", body, content_type="Application/JSON; charset=utf-8")
    assert got["status"] == "OK", got


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("body", [b"", b"not json", b"{", b"[]", b"null", b'"str"', b"{}", b"\xff\xfe\x00",
                                  b'{"sid": 1, "userId": 2}', b'{"userId": "p", "transaction": []}'])
async def test_malformed_bodies_are_invalid_parameter(client, gateway, evo, endpoint, body):
    txns, audits = await row_counts(gateway.database_url)
    got = await evo.send(endpoint, body)
    assert got["status"] == "INVALID_PARAMETER", got
    if endpoint in ("/check", "/sid"):
        assert set(got) <= {"status", "uuid"}
    else:  # README.md "Answers": an unreadable request answers a zero balance
        assert got["balance"] == got["bonus"] == 0 and set(got) <= {"status", "uuid", "balance", "bonus"}, got
    assert await row_counts(gateway.database_url) == (txns, audits + 1)


async def test_body_over_the_limit_is_invalid_parameter(client, gateway, evo):
    player, sid = await seated(client, deposit_minor=10_000)
    base = encode(debit_body(player, sid, new_id("ref"), "1", round_id=new_id("rd")))
    pad = BODY_BYTES_MAX - len(base) - len(b',"zz":""')
    at_limit = base[:-1] + b',"zz":"' + b"a" * pad + b'"}'
    assert len(at_limit) == BODY_BYTES_MAX
    assert (await evo.send("/debit", at_limit))["status"] == "OK"
    txns, audits = await row_counts(gateway.database_url)
    over = base[:-1] + b',"zz":"' + b"a" * (pad + 1) + b'"}'
    assert (await evo.send("/debit", over))["status"] == "INVALID_PARAMETER"
    assert await row_counts(gateway.database_url) == (txns, audits + 1)
    assert await cash(client, player) == 9_900


def _mutations(good: bytes, seed: int) -> list[bytes]:
    """Deterministic fuzz of one valid body: cuts, byte flips, insertions, type swaps."""
    rng = random.Random(seed)
    out = [good[:n] for n in sorted(rng.sample(range(1, len(good)), 8))]
    for _ in range(24):
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            op = rng.random()
            if op < 0.4:
                b[i] = rng.getrandbits(8)
            elif op < 0.7:
                b.insert(i, rng.choice(b'{}[]",:0123456789.-eE\\ \x00tnf'))
            else:
                del b[i]
        out.append(bytes(b))
    swaps = [(b'"amount":1', v) for v in (b'"amount":"x"', b'"amount":{}', b'"amount":1e400', b'"amount":-0.0001',
                                          b'"amount":NaN', b'"amount":' + b"1" * 4000)]
    swaps += [(b'"transaction":{', b'"transaction":[{'), (b'"game":{', b'"game":[' * 3000 + b"{")]
    out += [good.replace(a, c, 1) for a, c in swaps]
    out += [good + good, good + b"\x00", good.decode().encode("utf-16"), b"[" * 50_000 + b"]" * 50_000]
    return [m for m in out if m != good]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_fuzzed_bodies_never_500_and_never_write_the_ledger(client, gateway, evo, endpoint):
    """Mutations of a valid request for a player that does not exist: whatever still decodes
    is refused by the wallet (unknown player), the rest by the decoder; no answer is ever an
    HTTP 500 or a retryable status (``Evo.send`` asserts HTTP 200 and a known status), and no
    row is written to ``transactions``."""
    ghost, sid = "ghost-" + new_id(), "ghost-sid-" + new_id()
    payload = {
        "/check": {"sid": sid, "userId": ghost, "uuid": new_id("uu")},
        "/sid": {"sid": sid, "userId": ghost, "uuid": new_id("uu")},
        "/balance": {"sid": sid, "userId": ghost, "currency": "EUR", "uuid": new_id("uu")},
        "/debit": debit_body(ghost, sid, new_id("ref"), "1", round_id=new_id("rd")),
        "/credit": credit_body(ghost, sid, new_id("ref"), "1", round_id=new_id("rd")),
        "/cancel": cancel_body(ghost, sid, new_id("ref"), "1", round_id=new_id("rd")),
        "/promo_payout": promo_body(ghost, sid, new_id("promo"), "1"),
    }[endpoint]
    good = encode(payload)
    txns, _ = await row_counts(gateway.database_url)
    statuses = set()
    for i, body in enumerate(_mutations(good, seed=zlib.crc32(endpoint.encode()))):
        got = await evo.send(endpoint, body)
        assert got["status"] not in ("OK", "TEMPORARY_ERROR", "UNKNOWN_ERROR"), (i, body[:200], got)
        statuses.add(got["status"])
    assert (await row_counts(gateway.database_url))[0] == txns
    assert "INVALID_PARAMETER" in statuses


async def test_gateway_still_serves_after_garbage(client, gateway, evo):
    player, sid = await seated(client, deposit_minor=10_000)
    debit = debit_body(player, sid, new_id("ref"), "3.5", round_id=new_id("rd"))
    assert await evo.post("/debit", debit) == ok(debit, 9_650)


# ==== Redis down, rate limits (gateways of their own) =============================================


@pytest.fixture
def own_redis(services, tmp_path):
    """A Redis of this test's own (embedded), so tiny limits never drain the shared
    ``provider:evolution`` bucket other gateways on the test Redis use."""
    settings = load_settings(environ={"GATEWAY_DATA_DIR": str(tmp_path / "own-redis"),
                                      "GATEWAY_DATABASE_URL": services.admin_database_url})
    embedded = EmbeddedServices(settings).start()
    try:
        yield embedded, embedded.redis_url
    finally:
        embedded.stop()


async def test_redis_down_settlements_proceed_without_the_sid_debits_are_retryable(spawn_gateway, own_redis):
    """docs/DESIGN.md section 7: money operations that do not need Redis keep working; the
    ones that do fail with a clear retryable error (TEMPORARY_ERROR, HTTP 200). The gateway
    needs Redis up to start (gateway/preflight.py); Redis then goes away under it."""
    embedded, url = own_redis
    gw = await spawn_gateway(env={"GATEWAY_REDIS_URL": url})
    async with gw.client() as client, httpx.AsyncClient(base_url=gw.url, timeout=15.0) as http:
        evo = Evo(http)
        player = await new_player(client, deposit_minor=10_000)
        embedded.stop()
        sid = "sid-from-before-the-outage"
        debit = debit_body(player, sid, new_id("ref"), "1", round_id=new_id("rd"))
        assert await evo.post("/debit", debit) == answer(debit, "TEMPORARY_ERROR")
        check = {"sid": sid, "userId": player, "uuid": new_id("uu")}
        assert await evo.post("/check", check) == answer(check, "TEMPORARY_ERROR")
        minted = {"sid": "x", "userId": player, "uuid": new_id("uu")}
        assert await evo.post("/sid", minted) == answer(minted, "TEMPORARY_ERROR")

        cancel = cancel_body(player, sid, new_id("lost"), "1", round_id=new_id("rd"))
        assert await evo.post("/cancel", cancel) == answer(cancel, "BET_DOES_NOT_EXIST", 10_000)
        credit = credit_body(player, sid, new_id("never"), "1", round_id=new_id("rd"))
        assert await evo.post("/credit", credit) == answer(credit, "BET_DOES_NOT_EXIST", 10_000)
        promo = promo_body(player, sid, new_id("promo"), "2")
        assert await evo.post("/promo_payout", promo) == ok(promo, 10_200)
        # The provider's session lookups that found Redis down are counted (the alert
        # GatewayRedisUnavailable reads this counter; it once counted POST /v1/sessions only),
        # and the failed calls are server-side codes of the availability SLO.
        metrics = (await http.get("/metrics")).text
        (redis_down,) = [float(line.split()[-1]) for line in metrics.splitlines()
                         if line.startswith("gateway_redis_unavailable_total ")]
        assert redis_down >= 3, redis_down
        assert 'code="retryable"' in metrics and 'provider="evolution"' in metrics
    report = await check_ledger(gw.database_url)
    assert report["ok"], report


async def test_rate_limited_requests_get_temporary_error_without_audit(spawn_gateway, own_redis):
    gw = await spawn_gateway(env={"GATEWAY_REDIS_URL": own_redis[1],
                                  "GATEWAY_RATE_LIMITS__PROVIDERS__EVOLUTION__REQUESTS_PER_S": "1",
                                  "GATEWAY_RATE_LIMITS__PROVIDERS__EVOLUTION__BURST": "1"})
    async with httpx.AsyncClient(base_url=gw.url, timeout=15.0,
                                 limits=httpx.Limits(max_connections=50)) as http:
        evo = Evo(http)
        txns, audits = await row_counts(gw.database_url)
        # wrong key: every admitted request is an audited INVALID_TOKEN_ID refusal
        bodies = [{"sid": "s", "userId": "nobody", "uuid": new_id("uu")} for _ in range(30)]
        got = await asyncio.gather(*(evo.post("/check", b, auth="wrong") for b in bodies))
        statuses = [g["status"] for g in got]
        assert set(statuses) <= {"INVALID_TOKEN_ID", "TEMPORARY_ERROR"}, statuses
        limited = statuses.count("TEMPORARY_ERROR")
        assert limited >= 1, statuses
        assert all(g == {"status": "TEMPORARY_ERROR"} for g in got if g["status"] == "TEMPORARY_ERROR")
        assert await row_counts(gw.database_url) == (txns, audits + len(statuses) - limited)


# ==== the conformance driver (tests/conformance/drivers/evolution.py) against this adapter =====


async def test_conformance_driver_covers_every_situation_and_the_adapter_meets_it(client, gateway, evo):
    """Self-check of the driver: its ``expect`` covers ``SITUATIONS`` and every situation,
    said through the driver, gets an expected status and moves exactly what it should."""
    from tests.conformance.driver import SITUATIONS, Seat
    from tests.conformance.drivers import load

    driver = load("evolution")
    assert set(driver.expect) == set(SITUATIONS)
    assert (driver.accepts_orphan_wins, driver.reverses_wins) == (False, False)
    http = evo.http
    player, sid = await seated(client, deposit_minor=10_000)
    seat = await driver.open(http, Seat(player_id=player, currency="EUR", token=sid, game_id="tbl-conf"))
    assert seat.token != sid
    stale = Seat(player_id=player, currency="EUR", token=sid, game_id="tbl-conf")

    def check(situation: str, got, balance_minor: int | None = None) -> None:
        assert got.status in driver.expect[situation], (situation, got)
        if balance_minor is not None:
            assert got.balance_minor == balance_minor, (situation, got)

    check("ok", await driver.balance(http, seat), 10_000)
    rd = new_id("rd")
    bet = new_id("tx")
    check("ok", await driver.bet(http, seat, txn_id=bet, round_id=rd, amount_minor=250), 9_750)
    check("bet_replay", await driver.bet(http, seat, txn_id=bet, round_id=rd, amount_minor=250))
    check("duplicate", await driver.bet(http, seat, txn_id=bet, round_id=rd, amount_minor=300))
    check("insufficient_funds", await driver.bet(http, seat, txn_id=new_id("tx"), round_id=rd,
                                                 amount_minor=1_000_000), 9_750)
    check("win_unknown_bet", await driver.win(http, seat, txn_id=new_id("tx"), round_id=rd, amount_minor=1,
                                              bet_txn_id=new_id("never")))
    check("ok", await driver.win(http, seat, txn_id=new_id("tx"), round_id=rd, amount_minor=0,
                                 bet_txn_id=bet), 9_750)
    check("rollback_after_win", await driver.rollback(http, seat, txn_id=new_id("tx"), bet_txn_id=bet,
                                                      round_id=rd, amount_minor=250))
    rolled = new_id("tx")
    check("ok", await driver.bet(http, seat, txn_id=rolled, round_id=rd, amount_minor=100), 9_650)
    check("ok", await driver.rollback(http, seat, txn_id=new_id("tx"), bet_txn_id=rolled, round_id=rd,
                                      amount_minor=100), 9_750)
    check("win_after_rollback", await driver.win(http, seat, txn_id=new_id("tx"), round_id=rd, amount_minor=5,
                                                 bet_txn_id=rolled))
    lost = new_id("tx")
    await driver.rollback(http, seat, txn_id=new_id("tx"), bet_txn_id=lost, round_id=rd, amount_minor=100)
    check("bet_after_rollback", await driver.bet(http, seat, txn_id=lost, round_id=rd, amount_minor=100))
    check("bet_token_expired", await driver.bet(http, stale, txn_id=new_id("tx"), round_id=rd, amount_minor=1))
    check("wrong_currency", await driver.bet(http, seat, txn_id=new_id("tx"), round_id=rd, amount_minor=1,
                                             currency="USD"))
    check("bad_signature", await driver.bet_bad_signature(http, seat, txn_id=new_id("tx"), round_id=rd,
                                                          amount_minor=1))
    r = await client.post(f"/v1/players/{player}/status", json={"status": "self_excluded", "reason": "test"})
    assert r.status_code == 200, r.text
    check("bet_blocked", await driver.bet(http, seat, txn_id=new_id("tx"), round_id=rd, amount_minor=1))
    assert await driver.rollback_win(http, seat, txn_id=new_id("tx"), win_txn_id=new_id("tx"), round_id=rd,
                                     amount_minor=1) is None
    assert await cash(client, player) == 9_750
