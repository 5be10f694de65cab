"""SoftSwiss wallet protocol end to end: signed HTTP calls against a real gateway process.

Sources: gateway/providers/softswiss/README.md ("Common ground", status table, choices and
"Certification": each test of a certification case names it),
docs/DESIGN.md sections 5 (idempotency), 7 (Redis) and 8 (errors).

Every request is signed over its raw body with ``X-REQUEST-SIGN`` = hex HMAC-SHA256 keyed
with the sandbox's auth token (``softswiss-demo-auth-token``), unless a test says otherwise.
Balances are read back through the generic API (``GET /v1/players/{id}/balance``); ledger
rows, house-account entries and audit records are read with asyncpg on the gateway's own
database. Each test uses fresh players, sessions and action ids.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import load_settings
from gateway.edge.sessions import SessionStore
from gateway.embedded import EmbeddedServices
from tests.conftest import AUTH, new_id, new_player
from tests.helpers import cash

PREFIX = "/providers/softswiss"
HEADER = "X-REQUEST-SIGN"
AUTH_TOKEN = b"softswiss-demo-auth-token"  # config/sandbox.toml [integrations.softswiss]
BODY_BYTES_MAX = 65_536  # config/default.toml [server] body_bytes_max
AMOUNT_MINOR_MAX = 10_000_000_000  # config/default.toml [money] amount_minor_max
GAME = "acme:fruit_slot"
NO_FUNDS = "Player has not enough funds to process an action"

FUZZ = settings(max_examples=15, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def sign(body: bytes, key: bytes = AUTH_TOKEN) -> str:
    """gateway/providers/softswiss/README.md: hex HMAC-SHA256 of the raw body, the auth token as key."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


_SIGN = object()


class SoftSwiss:
    """SoftSwiss's side of the wire: signs requests, checks every answer's envelope."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def send(self, endpoint: str, body: bytes, *, signature: Any = _SIGN,
                   content_type: str | None = "application/json") -> httpx.Response:
        """POST raw ``body``; ``signature`` default = correct, None = no header, str = as is.

        Every answer must be JSON, never HTTP 500; errors carry ``code`` and ``message``.
        """
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if signature is _SIGN:
            headers[HEADER] = sign(body)
        elif signature is not None:
            headers[HEADER] = signature
        r = await self.http.post(PREFIX + endpoint, content=body, headers=headers)
        assert r.status_code != 500, r.text
        assert r.headers["content-type"].startswith("application/json"), (r.status_code, r.headers)
        answer = r.json()
        assert isinstance(answer, dict), answer
        if r.status_code == 200:
            assert "code" not in answer, answer
        else:
            assert isinstance(answer.get("code"), int) and isinstance(answer.get("message"), str), answer
        if r.status_code == 503:
            assert int(r.headers["Retry-After"]) >= 1
        return r

    async def post(self, endpoint: str, payload: dict) -> httpx.Response:
        return await self.send(endpoint, encode(payload))

    async def play(self, player: str, actions: list[dict], *, round_id: str | None = None,
                   finished: bool = False, currency: str = "EUR", **extra) -> httpx.Response:
        return await self.post("/play", {
            "user_id": player, "currency": currency, "game": GAME,
            "game_id": round_id or new_id("rd"), "finished": finished, "actions": actions, **extra})

    async def rollback(self, player: str, pairs: list[tuple[str, str]], *, round_id: str | None = None,
                       currency: str = "EUR") -> httpx.Response:
        return await self.post("/rollback", {
            "user_id": player, "currency": currency, "game": GAME, "game_id": round_id or new_id("rd"),
            "finished": False,
            "actions": [{"action": "rollback", "action_id": a, "original_action_id": o} for a, o in pairs]})


def bet(action_id: str, amount: int) -> dict:
    return {"action": "bet", "amount": amount, "action_id": action_id}


def win(action_id: str, amount: int) -> dict:
    return {"action": "win", "amount": amount, "action_id": action_id}


def error(r: httpx.Response) -> tuple[int, int]:
    return r.status_code, r.json()["code"]


@pytest.fixture
async def ss(gateway):
    """SoftSwiss's client: no gateway API key (SoftSwiss authenticates by signature only)."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as http:
        yield SoftSwiss(http)


@pytest.fixture
async def db(gateway):
    conn = await asyncpg.connect(gateway.database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def rows(db: asyncpg.Connection, *action_ids: str) -> dict[str, dict]:
    """transactions rows of scope "demo:softswiss" by transaction_id."""
    found = await db.fetch(
        "SELECT transaction_id, txn_id, kind, amount_minor, code, bet_state, round_id, credit_type, "
        "cash_delta_minor + bonus_delta_minor AS delta FROM transactions "
        "WHERE scope = 'demo:softswiss' AND transaction_id = ANY($1::text[])", list(action_ids))
    return {r["transaction_id"]: dict(r) for r in found}


async def counts(db: asyncpg.Connection) -> tuple[int, int, int]:
    row = await db.fetchrow("SELECT (SELECT count(*) FROM transactions) AS t, "
                            "(SELECT count(*) FROM entries) AS e, (SELECT count(*) FROM audit_log) AS a")
    return row["t"], row["e"], row["a"]


async def new_session(client: httpx.AsyncClient, player: str, provider: str = "softswiss",
                      currency: str = "EUR") -> str:
    r = await client.post("/v1/sessions", json={"player_id": player, "currency": currency,
                                               "provider": provider, "game_id": GAME})
    assert r.status_code == 201, r.text
    return r.json()["token"]


ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


# ==== /play ===================================================================================


async def test_bet_and_win_in_one_play(client, ss, db):
    """gateway/providers/softswiss/README.md: "Several actions in one request are one atomic unit"; the answer is
    ``{balance, game_id, transactions: [{action_id, tx_id, processed_at}]}``."""
    player = await new_player(client, deposit_minor=10_000)
    rd, a1, a2 = new_id("rd"), new_id("a"), new_id("a")

    r = await ss.play(player, [bet(a1, 1_000), win(a2, 2_500)], round_id=rd, finished=True)

    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["balance"] == 11_500 == await cash(client, player)
    assert answer["game_id"] == rd
    stored = await rows(db, a1, a2)
    assert [t["action_id"] for t in answer["transactions"]] == [a1, a2]
    for t in answer["transactions"]:
        assert t["tx_id"] == str(stored[t["action_id"]]["txn_id"])
        assert ISO_UTC.fullmatch(t["processed_at"]), t
        datetime.fromisoformat(t["processed_at"].replace("Z", "+00:00"))
    assert (stored[a1]["kind"], stored[a1]["amount_minor"], stored[a1]["bet_state"]) == ("debit", 1_000, "settled")
    assert (stored[a2]["kind"], stored[a2]["amount_minor"], stored[a2]["credit_type"]) == ("credit", 2_500, "win")
    assert stored[a1]["round_id"] == stored[a2]["round_id"] == rd
    assert await rows(db, "~close:" + rd) == {}  # the win itself closed the round


async def test_second_bet_over_the_balance_moves_nothing(client, ss, db, gateway):
    """All or none: the first bet fits, the second does not -> both refused (412 / 100 with
    the unchanged balance), nothing stored, and the first action id is still usable."""
    player = await new_player(client, deposit_minor=1_000)
    rd, a1, a2 = new_id("rd"), new_id("a"), new_id("a")
    before = await counts(db)

    r = await ss.play(player, [bet(a1, 600), bet(a2, 600)], round_id=rd)

    assert error(r) == (412, 100)
    assert r.json() == {"code": 100, "message": NO_FUNDS, "balance": 1_000}
    assert await cash(client, player) == 1_000
    assert await rows(db, a1, a2) == {}
    t, e, a = await counts(db)
    assert (t, e) == before[:2] and a > before[2]  # only the audit record of the refusal

    r = await ss.play(player, [bet(a1, 600)], round_id=rd)
    assert r.status_code == 200, r.text
    assert r.json()["balance"] == 400 == await cash(client, player)


async def test_replay_returns_the_stored_transactions(client, ss, db):
    """gateway/providers/softswiss/README.md: "A repeated action_id returns the stored result with HTTP 200"."""
    player = await new_player(client, deposit_minor=5_000)
    payload = {"user_id": player, "currency": "EUR", "game": GAME, "game_id": new_id("rd"),
               "finished": True, "actions": [bet(new_id("a"), 700), win(new_id("a"), 300)]}
    first = await ss.post("/play", payload)
    assert first.status_code == 200, first.text

    again = await ss.post("/play", payload)

    assert again.status_code == 200, again.text
    assert [(t["action_id"], t["tx_id"]) for t in again.json()["transactions"]] == [
        (t["action_id"], t["tx_id"]) for t in first.json()["transactions"]]
    assert again.json()["balance"] == first.json()["balance"] == 4_600 == await cash(client, player)
    assert len(await rows(db, *(a["action_id"] for a in payload["actions"]))) == 2


async def test_same_action_id_with_other_content_is_refused(client, ss, db):
    """Common ground: same id, different amount = duplicate error (400 / 400); nothing moves."""
    player = await new_player(client, deposit_minor=5_000)
    rd, a1 = new_id("rd"), new_id("a")
    assert (await ss.play(player, [bet(a1, 500)], round_id=rd)).status_code == 200

    r = await ss.play(player, [bet(a1, 900)], round_id=rd)

    assert error(r) == (400, 400)
    assert r.json()["balance"] == 4_500 == await cash(client, player)
    assert (await rows(db, a1))[a1]["amount_minor"] == 500


async def test_balance_request(client, ss):
    """gateway/providers/softswiss/README.md: "No actions = a balance request"."""
    player = await new_player(client, deposit_minor=1_234)
    r = await ss.play(player, [], round_id="rd-balance")
    assert r.status_code == 200 and r.json() == {"balance": 1_234, "game_id": "rd-balance"}
    r = await ss.post("/play", {"user_id": player, "currency": "EUR"})
    assert r.status_code == 200 and r.json() == {"balance": 1_234}
    # empty strings where SoftSwiss sends them: the fields absent
    r = await ss.post("/play", {"user_id": player, "currency": "EUR", "game": "", "game_id": "",
                                "session_id": "", "finished": False, "actions": []})
    assert r.status_code == 200 and r.json() == {"balance": 1_234}
    assert error(await ss.play(player, [], currency="USD")) == (400, 154)  # case 23: no USD account
    assert error(await ss.play(new_id("ghost"), [])) == (400, 101)  # case 24


async def test_unknown_player_is_refused(client, ss):
    """Case 24: 101 "Player is invalid" on HTTP 400."""
    r = await ss.play(new_id("ghost"), [bet(new_id("a"), 100)])
    assert error(r) == (400, 101)


async def test_finished_true_settles_the_rounds_bets(client, ss, db):
    """``finished: true`` closes the round: its bets can no longer be rolled back
    (gateway/providers/softswiss/README.md "Common ground": a rollback of a settled bet is refused)."""
    player = await new_player(client, deposit_minor=10_000)
    rd, b1, w1 = new_id("rd"), new_id("a"), new_id("a")
    assert (await ss.play(player, [bet(b1, 1_000)], round_id=rd)).status_code == 200
    assert (await ss.play(player, [win(w1, 300)], round_id=rd, finished=True)).status_code == 200

    r = await ss.rollback(player, [(new_id("rb"), b1)], round_id=rd)

    assert error(r) == (400, 400)
    assert r.json()["balance"] == 9_300 == await cash(client, player)
    assert (await rows(db, b1))[b1]["bet_state"] == "settled"


async def test_finished_without_a_win_closes_the_round_with_a_zero_win(client, ss, db):
    """A lost round in one request (a bet, ``finished: true``, no win): a zero win keyed
    ``~close:<game_id>`` settles it; it is not listed in the answer."""
    player = await new_player(client, deposit_minor=10_000)
    rd, b1 = new_id("rd"), new_id("a")

    r = await ss.play(player, [bet(b1, 800)], round_id=rd, finished=True)

    assert r.status_code == 200, r.text
    assert [t["action_id"] for t in r.json()["transactions"]] == [b1]
    stored = await rows(db, b1, "~close:" + rd)
    assert stored[b1]["bet_state"] == "settled"
    assert (stored["~close:" + rd]["kind"], stored["~close:" + rd]["amount_minor"]) == ("credit", 0)
    assert error(await ss.rollback(player, [(new_id("rb"), b1)], round_id=rd)) == (400, 400)
    assert await cash(client, player) == 9_200


async def test_reserved_and_repeated_ids_are_refused(client, ss, db):
    player = await new_player(client, deposit_minor=1_000)
    a1 = new_id("a")
    assert error(await ss.play(player, [bet("~close:x", 100)])) == (400, 400)
    assert error(await ss.play(player, [bet(a1, 100), win(a1, 100)])) == (400, 400)
    assert await rows(db, a1, "~close:x") == {}
    assert await cash(client, player) == 1_000


# ==== /rollback ================================================================================


async def test_rollback_returns_the_stake(client, ss, db):
    player = await new_player(client, deposit_minor=5_000)
    rd, b1, rb = new_id("rd"), new_id("a"), new_id("rb")
    assert (await ss.play(player, [bet(b1, 700)], round_id=rd)).status_code == 200

    r = await ss.rollback(player, [(rb, b1)], round_id=rd)

    assert r.status_code == 200, r.text
    assert r.json()["balance"] == 5_000 == await cash(client, player)
    stored = await rows(db, b1, rb)
    assert [(t["action_id"], t["tx_id"]) for t in r.json()["transactions"]] == [(rb, str(stored[rb]["txn_id"]))]
    assert stored[b1]["bet_state"] == "rolled_back" and stored[rb]["delta"] == 700
    # a retry of the rollback is the stored result, nothing moves again
    again = await ss.rollback(player, [(rb, b1)], round_id=rd)
    assert again.status_code == 200, again.text
    assert [(t["action_id"], t["tx_id"]) for t in again.json()["transactions"]] == [
        (rb, str(stored[rb]["txn_id"]))]
    assert await cash(client, player) == 5_000


async def test_rollback_of_unknown_action_then_late_bet(client, ss, db):
    """gateway/providers/softswiss/README.md: rollback of an unknown ``original_action_id`` stores a zero-effect
    tombstone and answers 200; a later bet with that action id is then not debited
    (answered 400 / 400, README.md)."""
    player = await new_player(client, deposit_minor=5_000)
    rd, late, rb = new_id("rd"), new_id("a"), new_id("rb")

    r = await ss.rollback(player, [(rb, late)], round_id=rd)

    assert r.status_code == 200, r.text
    assert r.json()["balance"] == 5_000
    assert (await rows(db, late))[late]["kind"] == "tombstone"
    for _ in range(2):  # the refusal is final
        r = await ss.play(player, [bet(late, 400)], round_id=rd)
        assert error(r) == (400, 400)
        assert r.json()["balance"] == 5_000 == await cash(client, player)
    assert (await rows(db, late))[late]["kind"] == "tombstone"


async def test_several_rollbacks_are_one_unit(client, ss, db):
    """Rollbacks in one request are applied all or none: one refused (its round finished)
    refuses the whole request, and the other bet stays open until rolled back alone."""
    player = await new_player(client, deposit_minor=10_000)
    rd1, rd2, b1, b2 = new_id("rd"), new_id("rd"), new_id("a"), new_id("a")
    assert (await ss.play(player, [bet(b1, 1_000)], round_id=rd1)).status_code == 200
    assert (await ss.play(player, [bet(b2, 2_000)], round_id=rd2, finished=True)).status_code == 200
    rb1, rb2 = new_id("rb"), new_id("rb")

    r = await ss.rollback(player, [(rb1, b1), (rb2, b2)])

    assert error(r) == (400, 400)
    assert await cash(client, player) == 7_000
    assert (await rows(db, b1))[b1]["bet_state"] == "open"
    assert await rows(db, rb1, rb2) == {}
    r = await ss.rollback(player, [(rb1, b1)])
    assert r.status_code == 200 and r.json()["balance"] == 8_000


# ==== certification cases (gateway/providers/softswiss/README.md "Certification") ==================


async def test_win_in_a_round_without_a_bet_is_refused(client, ss, db):
    """Case 14: a win for a round with no bet -> HTTP 404, code 404, nothing credited; the
    same win after a bet of its round (or with it in one request) is paid."""
    player = await new_player(client, deposit_minor=1_000)
    rd, w1 = new_id("rd"), new_id("a")

    r = await ss.play(player, [win(w1, 700)], round_id=rd, finished=True)

    assert error(r) == (404, 404)
    assert r.json()["balance"] == 1_000 == await cash(client, player)
    assert await rows(db, w1) == {}
    # a zero stake opens the round: the win is then paid
    r = await ss.play(player, [bet(new_id("a"), 0), win(w1, 700)], round_id=rd, finished=True)
    assert r.status_code == 200 and r.json()["balance"] == 1_700 == await cash(client, player)


async def test_win_after_the_rounds_bet_was_rolled_back_is_refused(client, ss, db):
    """Case 15: a win after the round's bet was rolled back -> HTTP 403, code 403 ("Bet has
    been refunded"), nothing credited."""
    player = await new_player(client, deposit_minor=1_000)
    rd, b1, w1 = new_id("rd"), new_id("a"), new_id("a")
    assert (await ss.play(player, [bet(b1, 400)], round_id=rd)).status_code == 200
    assert (await ss.rollback(player, [(new_id("rb"), b1)], round_id=rd)).status_code == 200

    r = await ss.play(player, [win(w1, 1_200)], round_id=rd, finished=True)

    assert error(r) == (403, 403)
    assert r.json()["balance"] == 1_000 == await cash(client, player)
    assert await rows(db, w1) == {}
    assert (await rows(db, b1))[b1]["bet_state"] == "rolled_back"


async def test_rollback_of_a_win_takes_it_back(client, ss, db):
    """Case 16 (S3 INTGR-23_4): 30.00, bet 5.00 and win 10.00 -> 35.00; the win rolled back
    -> 200, 25.00. A retry replays it; another rollback of the same win is refused."""
    player = await new_player(client, deposit_minor=3_000)
    rd, b1, w1, rb = new_id("rd"), new_id("a"), new_id("a"), new_id("rb")
    r = await ss.play(player, [bet(b1, 500), win(w1, 1_000)], round_id=rd, finished=True)
    assert r.status_code == 200 and r.json()["balance"] == 3_500

    r = await ss.rollback(player, [(rb, w1)], round_id=rd)

    assert r.status_code == 200, r.text
    assert r.json()["balance"] == 2_500 == await cash(client, player)
    stored = await rows(db, w1, rb)
    assert stored[w1]["bet_state"] == "rolled_back" and stored[rb]["delta"] == -1_000
    assert [(t["action_id"], t["tx_id"]) for t in r.json()["transactions"]] == [(rb, str(stored[rb]["txn_id"]))]
    again = await ss.rollback(player, [(rb, w1)], round_id=rd)
    assert again.status_code == 200 and again.json()["transactions"] == r.json()["transactions"]
    assert error(await ss.rollback(player, [(new_id("rb"), w1)], round_id=rd)) == (400, 400)  # case 19
    assert await cash(client, player) == 2_500


async def test_rollback_of_a_spent_win_leaves_a_debt(client, ss, db):
    """Case 16, the win already spent: taken back all the same (200) -- a debt, recorded for
    operator review, which refuses bets (412 / 100, the negative balance) until repaid."""
    player = await new_player(client, deposit_minor=1_000)
    rd, b1, w1 = new_id("rd"), new_id("a"), new_id("a")
    assert (await ss.play(player, [bet(b1, 500), win(w1, 3_000)], round_id=rd, finished=True)).status_code == 200
    r = await client.post("/v1/wallet/withdraw", json={"transaction_id": new_id("wd"), "player_id": player,
                                                       "currency": "EUR", "amount_minor": 3_300})
    assert r.status_code == 200, r.text

    r = await ss.rollback(player, [(new_id("rb"), w1)], round_id=rd)

    assert r.status_code == 200 and r.json()["balance"] == -2_800 == await cash(client, player)
    reviews = await db.fetch("SELECT reason FROM operator_reviews WHERE scope = 'demo:softswiss' AND player_id = $1",
                             player)
    assert reviews and "debt" in reviews[0]["reason"]
    r = await ss.play(player, [bet(new_id("a"), 100)])
    assert error(r) == (412, 100) and r.json()["balance"] == -2_800
    r = await client.post("/v1/wallet/deposit", json={"transaction_id": new_id("dp"), "player_id": player,
                                                      "currency": "EUR", "amount_minor": 3_000})
    assert r.status_code == 200, r.text
    assert (await ss.play(player, [bet(new_id("a"), 100)])).status_code == 200


async def test_rolling_back_a_round(client, ss, db):
    """Case 17: an unfinished round's bet and win rolled back in one request -> both undone;
    a finished round's bet stays settled (400 / 400, nothing moves: kept, README.md)."""
    player = await new_player(client, deposit_minor=5_000)
    rd, b1, w1 = new_id("rd"), new_id("a"), new_id("a")
    assert (await ss.play(player, [bet(b1, 500), win(w1, 800)], round_id=rd)).status_code == 200

    r = await ss.rollback(player, [(new_id("rb"), b1), (new_id("rb"), w1)], round_id=rd)

    assert r.status_code == 200 and r.json()["balance"] == 5_000 == await cash(client, player)
    stored = await rows(db, b1, w1)
    assert stored[b1]["bet_state"] == stored[w1]["bet_state"] == "rolled_back"

    rd, b2, w2 = new_id("rd"), new_id("a"), new_id("a")
    assert (await ss.play(player, [bet(b2, 500), win(w2, 800)], round_id=rd, finished=True)).status_code == 200
    rb1, rb2 = new_id("rb"), new_id("rb")
    r = await ss.rollback(player, [(rb1, b2), (rb2, w2)], round_id=rd)
    assert error(r) == (400, 400)
    assert await cash(client, player) == 5_300 and await rows(db, rb1, rb2) == {}
    # the win named before the bet: the win's reversal is undone with the refused unit (the
    # settled bet, 400 / 400), nothing moves, and the shard keeps serving
    r = await ss.rollback(player, [(rb2, w2), (rb1, b2)], round_id=rd)
    assert error(r) == (400, 400)
    assert await cash(client, player) == 5_300 and await rows(db, rb1, rb2) == {}
    assert (await client.get("/readyz")).status_code == 200
    # the win alone can still be taken back
    r = await ss.rollback(player, [(rb2, w2)], round_id=rd)
    assert r.status_code == 200 and r.json()["balance"] == 4_500
    # and once it is, a unit naming it again last is refused whole, without stopping anything
    rd3, b3 = new_id("rd"), new_id("a")
    assert (await ss.play(player, [bet(b3, 100)], round_id=rd3)).status_code == 200
    r = await ss.rollback(player, [(new_id("rb"), b3), (new_id("rb"), w2)])
    assert error(r) == (400, 400)
    assert await cash(client, player) == 4_400 and (await rows(db, b3))[b3]["bet_state"] == "open"
    assert (await client.get("/readyz")).status_code == 200


async def test_finished_without_actions_closes_the_round(client, ss, db):
    """Case 28: ``finished: true`` with ``actions: []`` answers the balance and closes the
    round: its open bets are settled (no longer refundable, no longer open)."""
    player = await new_player(client, deposit_minor=5_000)
    rd, b1 = new_id("rd"), new_id("a")
    assert (await ss.play(player, [bet(b1, 700)], round_id=rd)).status_code == 200

    for _ in range(2):  # a retry is the same answer
        r = await ss.post("/play", {"user_id": player, "currency": "EUR", "game": GAME, "game_id": rd,
                                    "finished": True, "actions": []})
        assert r.status_code == 200 and r.json() == {"balance": 4_300, "game_id": rd}
    stored = await rows(db, b1, "~end:" + rd)
    assert stored[b1]["bet_state"] == "settled"
    assert (stored["~end:" + rd]["kind"], stored["~end:" + rd]["amount_minor"]) == ("credit", 0)
    assert error(await ss.rollback(player, [(new_id("rb"), b1)], round_id=rd)) == (400, 400)
    # the same round named with another game (or none): still just the balance
    r = await ss.post("/play", {"user_id": player, "currency": "EUR", "game_id": rd, "finished": True,
                                "actions": []})
    assert r.status_code == 200 and r.json() == {"balance": 4_300, "game_id": rd}
    assert await cash(client, player) == 4_300


# ==== /freespins ================================================================================


async def test_freespins_notice_moves_no_money(client, ss, db):
    """Case 29, ``freespins_payout = "notice"`` (the default, the sandbox's): the end of an
    issue is recorded once (a zero "freespins" credit, its tx_id) and nothing is paid; the
    answer carries the balance."""
    player = await new_player(client, deposit_minor=1_000)
    issue = new_id("fs")
    payload = {"issue_id": issue, "status": "played", "total_amount": 500, "user_id": player,
               "currency": "EUR", "game": GAME}

    r = await ss.post("/freespins", payload)

    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["balance"] == 1_000 == await cash(client, player)
    stored = (await rows(db, "~freespins:" + issue))["~freespins:" + issue]
    assert (stored["kind"], stored["credit_type"], stored["amount_minor"], stored["delta"]) == (
        "credit", "freespins", 0, 0)
    assert answer["tx_id"] == str(stored["txn_id"]) and answer["issue_id"] == issue
    again = await ss.post("/freespins", payload)
    assert again.status_code == 200 and again.json()["tx_id"] == answer["tx_id"]
    # total_amount is optional (S1); a bad one is still refused
    r = await ss.post("/freespins", {"issue_id": new_id("fs"), "status": "expired", "user_id": player,
                                     "currency": "EUR"})
    assert r.status_code == 200 and r.json()["balance"] == 1_000
    assert error(await ss.post("/freespins", {**payload, "issue_id": new_id("fs"), "total_amount": -1})) == (400, 400)
    assert await cash(client, player) == 1_000


async def test_freespins_credit_in_its_own_house_account(spawn_gateway):
    """Case 29, ``freespins_payout = "credit"``: a finished freespins issue pays
    ``total_amount`` once, as credit type "freespins", against the house account
    ``house:freespins:demo:softswiss:s<shard>``."""
    gw = await spawn_gateway(env={"GATEWAY_INTEGRATIONS__SOFTSWISS__FREESPINS_PAYOUT": "credit"})
    async with httpx.AsyncClient(base_url=gw.url, timeout=15.0, headers=AUTH) as client, \
            httpx.AsyncClient(base_url=gw.url, timeout=15.0) as http:
        db = await asyncpg.connect(gw.database_url)
        try:
            await _freespins_credit(client, SoftSwiss(http), db)
        finally:
            await db.close()


async def _freespins_credit(client: httpx.AsyncClient, ss: SoftSwiss, db: asyncpg.Connection) -> None:
    player = await new_player(client, deposit_minor=1_000)
    issue = new_id("fs")
    payload = {"issue_id": issue, "status": "played", "total_amount": 500, "user_id": player,
               "currency": "EUR", "game": GAME}

    r = await ss.post("/freespins", payload)

    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["balance"] == 1_500 == await cash(client, player)
    assert answer["issue_id"] == issue and ISO_UTC.fullmatch(answer["processed_at"])
    stored = (await rows(db, "~freespins:" + issue))["~freespins:" + issue]
    assert (stored["kind"], stored["credit_type"], stored["amount_minor"]) == ("credit", "freespins", 500)
    assert answer["tx_id"] == str(stored["txn_id"])
    entries = {e["account"]: e["delta_minor"] for e in await db.fetch(
        "SELECT account, delta_minor FROM entries WHERE txn_id = $1", stored["txn_id"])}
    (house,) = [a for a in entries if a.startswith("house:")]
    assert re.fullmatch(r"house:freespins:demo:softswiss:s\d+", house), entries
    assert entries[house] == -500 and entries[f"player:demo:{player}:cash"] == 500

    again = await ss.post("/freespins", payload)
    assert again.status_code == 200 and again.json()["tx_id"] == answer["tx_id"]
    assert await cash(client, player) == 1_500
    r = await ss.post("/freespins", {**payload, "total_amount": 900})
    assert error(r) == (400, 400)  # same issue, other amount: a duplicate
    r = await ss.post("/freespins", {**payload, "issue_id": new_id("fs"), "total_amount": 0,
                                     "status": "expired"})
    assert r.status_code == 200 and r.json()["balance"] == 1_500


# ==== player status and sessions =================================================================


@pytest.mark.parametrize("status", ["blocked", "self_excluded"])
async def test_blocked_player_cannot_bet_but_is_paid(client, ss, db, status):
    """Common ground: bets of a blocked / self-excluded player are refused (110 on HTTP 403,
    case 25); wins and rollbacks of its open bets still pass."""
    player = await new_player(client, deposit_minor=10_000)
    rd1, rd2, b1, b2 = new_id("rd"), new_id("rd"), new_id("a"), new_id("a")
    assert (await ss.play(player, [bet(b1, 1_000)], round_id=rd1)).status_code == 200
    assert (await ss.play(player, [bet(b2, 500)], round_id=rd2)).status_code == 200
    r = await client.post(f"/v1/players/{player}/status", json={"status": status})
    assert r.status_code == 200, r.text

    refused = new_id("a")
    r = await ss.play(player, [bet(refused, 100)])
    assert error(r) == (403, 110)
    assert r.json()["balance"] == 8_500 == await cash(client, player)
    assert await rows(db, refused) == {}

    r = await ss.play(player, [win(new_id("a"), 3_000)], round_id=rd1, finished=True)
    assert r.status_code == 200 and r.json()["balance"] == 11_500
    r = await ss.rollback(player, [(new_id("rb"), b2)], round_id=rd2)
    assert r.status_code == 200 and r.json()["balance"] == 12_000


async def test_session_id_checked_on_bets_only(client, ss, services):
    """The optional ``session_id``: a live token of this player and currency lets a bet
    through; expired, unknown, another player's or another provider's -> 400 / 101, another
    currency 400 / 154; an empty one is none. A win with the expired token still passes."""
    player = await new_player(client, deposit_minor=10_000)
    other = await new_player(client)
    token = await new_session(client, player)
    rd = new_id("rd")
    r = await ss.play(player, [bet(new_id("a"), 100)], round_id=rd, session_id=token)
    assert r.status_code == 200, r.text

    for bad in (new_id("no-such-token"), await new_session(client, other),
                await new_session(client, player, provider="hub88")):
        assert error(await ss.play(player, [bet(new_id("a"), 100)], session_id=bad)) == (400, 101)
    r = await ss.play(player, [bet(new_id("a"), 100)], currency="USD", session_id=token)
    assert error(r) == (400, 154)
    r = await ss.play(player, [bet(new_id("a"), 100)], round_id=rd, session_id="")
    assert r.status_code == 200, r.text

    redis = aioredis.Redis.from_url(services.redis_url)
    try:
        await SessionStore(redis, 3600).expire_now(token)
    finally:
        await redis.aclose()
    late = new_id("a")
    assert error(await ss.play(player, [bet(late, 100)], session_id=token)) == (400, 101)
    r = await ss.play(player, [win(new_id("a"), 700)], round_id=rd, finished=True, session_id=token)
    assert r.status_code == 200 and r.json()["balance"] == 10_500 == await cash(client, player)


# ==== refusals of bad input ========================================================================


async def test_signature_is_checked_before_anything(client, ss, db):
    """gateway/providers/softswiss/README.md: a bad signature is 403. Missing, wrong key, body altered after signing:
    refused, audited, nothing stored; the same body correctly signed then goes through."""
    player = await new_player(client, deposit_minor=1_000)
    a1 = new_id("a")
    body = encode({"user_id": player, "currency": "EUR", "game": GAME, "game_id": new_id("rd"),
                   "finished": False, "actions": [bet(a1, 100)]})
    before = await counts(db)
    for signature, sent in ((None, body), ("", body), (sign(body, b"other-key"), body),
                            (sign(body), body.replace(b"100", b"999")), ("zz" * 32, body)):
        r = await ss.send("/play", sent, signature=signature)
        assert error(r) == (403, 403), r.text
    t, e, a = await counts(db)
    assert (t, e) == before[:2] and a >= before[2] + 5
    assert (await ss.send("/play", body)).status_code == 200
    assert await cash(client, player) == 900


async def test_wrong_content_type_oversize_and_bad_amounts_are_400(client, ss, db):
    player = await new_player(client, deposit_minor=1_000)
    before = await counts(db)
    body = encode({"user_id": player, "currency": "EUR", "game": GAME, "game_id": new_id("rd"),
                   "actions": [bet(new_id("a"), 100)]})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        assert error(await ss.send("/play", body, content_type=content_type)) == (400, 400)
    big = encode({"user_id": player, "currency": "EUR", "padding": "x" * BODY_BYTES_MAX})
    assert error(await ss.send("/play", big)) == (400, 400)
    for amount in (-1, 1.5, "100", None, True, AMOUNT_MINOR_MAX + 1, 2**70, [100]):
        r = await ss.play(player, [bet(new_id("a"), amount)])
        assert error(r) == (400, 400), (amount, r.text)
    r = await ss.play(player, [bet(new_id("a"), 100)], currency="XYZ")
    assert error(r) == (400, 400)
    assert (await counts(db))[:2] == before[:2]
    assert await cash(client, player) == 1_000


async def test_unstorable_characters_are_refused_and_the_gateway_keeps_serving(client, ss, db):
    """A NUL (which PostgreSQL text cannot hold) in any id of a real player's bet, or in its
    user_id, is refused 400 / 400 and audited; nothing is written and the shard stays up."""
    player = await new_player(client, deposit_minor=1_000)
    before = await counts(db)
    for where in ("action_id", "game_id", "game", "user_id", "currency"):
        payload = {"user_id": player, "currency": "EUR", "game": GAME, "game_id": new_id("rd"),
                   "actions": [bet(new_id("a"), 100)]}
        if where == "action_id":
            payload["actions"][0]["action_id"] += "\x00"
        else:
            payload[where] += "\x00"
        assert error(await ss.post("/play", payload)) == (400, 400), where
    r = await ss.send("/rollback", b'{"user_id":"' + player.encode() + b'\\ud800","currency":"EUR",'
                                   b'"actions":[{"action":"rollback","action_id":"x","original_action_id":"y"}]}')
    assert error(r) == (400, 400)
    t, e, a = await counts(db)
    assert (t, e) == before[:2] and a >= before[2] + 6
    assert (await client.get("/readyz")).status_code == 200
    assert (await ss.play(player, [bet(new_id("a"), 100)])).status_code == 200


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=10,
)
bad_amounts = st.one_of(
    st.integers(max_value=-1), st.integers(min_value=AMOUNT_MINOR_MAX + 1, max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)),
    st.text(max_size=10), st.booleans(), st.none(), st.lists(st.integers(), max_size=2),
)


@FUZZ
@given(raw=st.binary(max_size=512), endpoint=st.sampled_from(["/play", "/rollback", "/freespins"]))
async def test_fuzzed_bytes_never_500_no_ledger_write(ss, db, raw, endpoint):
    before = await counts(db)
    r = await ss.send(endpoint, raw)
    assert r.status_code in (400, 403, 412), r.text
    assert (await counts(db))[:2] == before[:2]


DELETE = object()
FUZZED_FIELDS = {"/play": ["currency", "actions"],
                 "/freespins": ["user_id", "currency", "total_amount"]}


@FUZZ
@given(data=st.data())
async def test_fuzzed_fields_of_a_real_player_never_500_no_ledger_write(client, ss, db, data):
    """A real, funded player's requests, validly signed, with one field replaced by any JSON
    value (or removed) -- except replacements that stay valid -- or a bad amount."""
    player = await new_player(client, deposit_minor=1_000)
    templates = {
        "/play": {"user_id": player, "currency": "EUR", "game": GAME, "game_id": new_id("rd"),
                  "finished": False, "actions": [bet(new_id("a"), 150)]},
        "/freespins": {"issue_id": new_id("fs"), "status": "played", "total_amount": 500,
                       "user_id": player, "currency": "EUR"},
    }
    endpoint = data.draw(st.sampled_from(sorted(templates)))
    payload = json.loads(json.dumps(templates[endpoint]))
    if endpoint == "/play" and data.draw(st.booleans()):
        payload["actions"][0]["amount"] = data.draw(bad_amounts)
    else:
        # Only fields none of whose other values is a valid request of this player (a fresh
        # id or another amount would be a valid new request, and move money).
        field = data.draw(st.sampled_from(FUZZED_FIELDS[endpoint]))
        value = data.draw(json_values | st.just(DELETE))
        if value == payload[field] or (field == "actions" and isinstance(value, list)):
            value = DELETE
        if field == "total_amount" and type(value) is int and 0 <= value <= AMOUNT_MINOR_MAX:
            value = -1 - value
        if field == "total_amount" and (value is None or value is DELETE):
            value = -1  # absent or null is valid (S1: optional), and records the issue
        if value is DELETE:
            del payload[field]
        else:
            payload[field] = value
    before = await counts(db)
    r = await ss.post(endpoint, payload)
    # 200 only as a balance request (no "actions"); the ledger check below holds either way
    assert r.status_code in (400, 412) or (r.status_code == 200 and not payload.get("actions")), (
        payload, r.text)
    assert (await counts(db))[:2] == before[:2], payload
    assert await cash(client, player) == 1_000


# ==== retryable answers ==============================================================================


@pytest.fixture
def own_redis(tmp_path, services):
    """A Redis of this test's own (embedded), so the rate-limit bucket is not shared."""
    settings = load_settings(environ={"GATEWAY_DATA_DIR": str(tmp_path / "own-redis"),
                                      "GATEWAY_DATABASE_URL": services.admin_database_url})
    embedded = EmbeddedServices(settings).start()
    try:
        yield embedded.redis_url
    finally:
        embedded.stop()


async def test_rate_limited_requests_get_503_without_audit(spawn_gateway, own_redis):
    """``ctx.admit("provider", "softswiss")`` first: over the limit -> 503 + Retry-After,
    code 503, nothing audited or submitted. Requests carry a bad signature, so each admitted
    one leaves exactly one audit record."""
    gw = await spawn_gateway(env={
        "GATEWAY_REDIS_URL": own_redis,
        "GATEWAY_RATE_LIMITS__PROVIDERS__SOFTSWISS__REQUESTS_PER_S": "1",
        "GATEWAY_RATE_LIMITS__PROVIDERS__SOFTSWISS__BURST": "2",
    })
    conn = await asyncpg.connect(gw.database_url)
    try:
        before = await counts(conn)
        statuses = []
        async with httpx.AsyncClient(base_url=gw.url, timeout=15.0) as http:
            softswiss = SoftSwiss(http)
            for _ in range(12):
                r = await softswiss.send("/play", b'{"user_id":"p","currency":"EUR"}', signature="00" * 32)
                statuses.append(r.status_code)
                if r.status_code == 503:
                    assert r.json()["code"] == 503
        assert set(statuses) <= {403, 503} and 503 in statuses, statuses
        # each 403 was answered after its audit record committed (reply after durable)
        t, e, a = await counts(conn)
        assert (t, e) == before[:2]
        assert a - before[2] == statuses.count(403), (statuses, before, a)
    finally:
        await conn.close()
