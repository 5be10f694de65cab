"""Hub88 handlers in-process with a fake EdgeContext (no shard, no Redis, no server).

Checks the pipeline rules of routes.py: always HTTP 200 with a signed status body, refusals
recorded through ``ctx.record_refusal``, retryable failures answered ``RS_ERROR_UNKNOWN``.
Source: gateway/providers/hub88/README.md; docs/DESIGN.md sections 5 and 8. (The end-to-end tests
against a running gateway live elsewhere.)
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import msgspec
import pytest
from starlette.applications import Starlette

with warnings.catch_warnings():  # starlette's TestClient warns about its httpx backend
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from gateway.config import Settings
from gateway.edge.context import EdgeContext
from gateway.edge.sessions import GameSession, SessionStore, SessionStoreUnavailable
from gateway.providers.hub88.routes import PREFIX, routes
from gateway.providers.hub88.signature import (
    HEADER,
    load_private_key,
    load_public_key,
    sign_body,
    verify_signature,
)
from gateway.shards.commands import (
    Balance,
    Code,
    Command,
    Credit,
    Debit,
    GetBalance,
    Overloaded,
    RecordRefusal,
    Result,
    Rollback,
)
from tests.helpers import integration_config

VECTORS = Path(__file__).parent / "vectors" / "hub88"  # README.md there: source and license
PRIVATE = load_private_key((VECTORS / "private.pem").read_bytes())
PUBLIC = load_public_key((VECTORS / "public.pem").read_bytes())
BODY_MAX = 1024


class FakeSessions:
    def __init__(self) -> None:
        self.sessions: dict[str, GameSession] = {}
        self.down = False

    def add(self, token: str, player: str, currency: str = "EUR", ttl_s: int = 600) -> None:
        self.sessions[token] = GameSession(
            token=token, partner_id="demo", player_id=player, currency=currency, integration="hub88",
            game_id="g", expires_at_s=int(time.time()) + ttl_s,
        )

    async def get(self, token: str) -> GameSession | None:
        if self.down:
            raise SessionStoreUnavailable("redis down")
        return self.sessions.get(token)

    # The real settlement policy (settle without the session when Redis is down) over this get.
    get_for_settlement = SessionStore.get_for_settlement


class FakeWallet:
    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.raise_: Exception | None = None
        self.cash = 10_000

    async def submit(self, command: Command) -> Result:
        self.commands.append(command)
        if isinstance(command, RecordRefusal):
            return Result(code=Code.OK)
        if self.raise_ is not None:
            raise self.raise_
        if isinstance(command, Debit):
            if command.amount_minor > self.cash:
                return Result(code=Code.INSUFFICIENT_FUNDS, currency="EUR", cash_minor=self.cash, bonus_minor=0)
            self.cash -= command.amount_minor
            return Result(code=Code.OK, currency=command.currency, cash_minor=self.cash, bonus_minor=0)
        if isinstance(command, Credit):
            self.cash += command.amount_minor
            return Result(code=Code.OK, currency=command.currency, cash_minor=self.cash, bonus_minor=0)
        if isinstance(command, Rollback):
            return Result(code=Code.OK, currency=command.currency, cash_minor=self.cash, bonus_minor=0)
        if isinstance(command, GetBalance):
            return Result(code=Code.OK, balances=(Balance("EUR", self.cash, 0),), country="EE")
        return Result(code=Code.INVALID_REQUEST)

    def refusals(self) -> list[RecordRefusal]:
        return [c for c in self.commands if isinstance(c, RecordRefusal)]

    def money(self) -> list[Command]:
        return [c for c in self.commands if not isinstance(c, RecordRefusal)]


def make_settings(**hub88) -> Settings:
    return msgspec.convert(
        {
            "server": {"body_bytes_max": BODY_MAX},
            **integration_config(
                "hub88",
                provider_public_key_path=str(VECTORS / "public.pem"),
                operator_private_key_path=str(VECTORS / "private.pem"),
                **hub88,
            ),
        },
        Settings,
    )


@pytest.fixture
def env():
    sessions, wallet = FakeSessions(), FakeWallet()
    ctx = EdgeContext(settings=make_settings(), submit=wallet.submit, sessions=sessions, edge_id="test:1")
    with TestClient(Starlette(routes=[routes(ctx)])) as client:
        yield client, sessions, wallet


def post(client: TestClient, path: str, payload: object, *, sign: bool = True, raw: bytes | None = None, headers: dict | None = None):
    body = raw if raw is not None else msgspec.json.encode(payload)
    hdrs = {"content-type": "application/json", **(headers or {})}
    if sign:
        hdrs[HEADER] = sign_body(PRIVATE, body)
    resp = client.post(PREFIX + path, content=body, headers=hdrs)
    assert resp.status_code == 200, resp.text
    assert verify_signature(PUBLIC, resp.content, resp.headers[HEADER]), "response must be signed"
    return resp.json()


def bet(**kw) -> dict:
    return {
        "user": "john12345", "transaction_uuid": "bet-1", "token": "tok-1", "round": "r1",
        "request_uuid": "req-1", "game_code": "g", "currency": "EUR", "amount": 356000,
        "round_closed": False, "is_free": False, **kw,
    }


def test_bet_ok(env):
    client, sessions, wallet = env
    sessions.add("tok-1", "john12345")
    out = post(client, "/transaction/bet", bet())
    assert out == {"user": "john12345", "status": "RS_OK", "request_uuid": "req-1", "currency": "EUR", "balance": (10_000 - 356) * 1000}
    (debit,) = wallet.money()
    assert isinstance(debit, Debit) and debit.amount_minor == 356 and debit.scope == "demo:hub88"
    assert debit.origin.route == "hub88 /transaction/bet" and debit.origin.request_id == "req-1"
    assert wallet.refusals() == []


def test_not_enough_money(env):
    client, sessions, _wallet = env
    sessions.add("tok-1", "john12345")
    out = post(client, "/transaction/bet", bet(amount=20_000_000))
    assert out["status"] == "RS_ERROR_NOT_ENOUGH_MONEY" and out["balance"] == 10_000_000


@pytest.mark.parametrize("header", [None, "", "garbage!!", sign_body(PRIVATE, b"other body")])
def test_bad_signature_refused_and_recorded(env, header):
    client, sessions, wallet = env
    sessions.add("tok-1", "john12345")
    headers = {} if header is None else {HEADER: header}
    out = post(client, "/transaction/bet", bet(), sign=False, headers=headers)
    assert out["status"] == "RS_ERROR_INVALID_SIGNATURE"
    assert out["request_uuid"] == "req-1"
    assert wallet.money() == []
    (rec,) = wallet.refusals()
    assert rec.code is Code.INVALID_SIGNATURE and rec.scope == "demo:hub88" and rec.player_id == "john12345"
    assert rec.request["transaction_uuid"] == "bet-1" and "token" not in rec.request


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"\xff"])
def test_wrong_syntax(env, raw):
    client, _, wallet = env
    out = post(client, "/transaction/bet", None, raw=raw)
    assert out == {"status": "RS_ERROR_WRONG_SYNTAX"}
    (rec,) = wallet.refusals()
    assert rec.code is Code.INVALID_REQUEST


def test_wrong_types(env):
    client, sessions, wallet = env
    sessions.add("tok-1", "john12345")
    out = post(client, "/transaction/bet", bet(amount=3.56))
    assert out["status"] == "RS_ERROR_WRONG_TYPES" and out["user"] == "john12345"
    out = post(client, "/transaction/win", {**bet(transaction_uuid="win-1"), "reference_transaction_uuid": None})
    assert out["status"] == "RS_ERROR_WRONG_TYPES"
    assert wallet.money() == [] and len(wallet.refusals()) == 2


def test_missing_required_field_is_wrong_syntax(env):
    """README choice 5: a body without a required field does not have the request's form."""
    client, sessions, wallet = env
    sessions.add("tok-1", "john12345")
    out = post(client, "/transaction/win", {"user": "john12345", "request_uuid": "q"})
    assert out == {"user": "john12345", "status": "RS_ERROR_WRONG_SYNTAX", "request_uuid": "q"}
    no_amount = {k: v for k, v in bet().items() if k != "amount"}
    assert post(client, "/transaction/bet", no_amount)["status"] == "RS_ERROR_WRONG_SYNTAX"
    assert wallet.money() == []
    assert [r.code for r in wallet.refusals()] == [Code.INVALID_REQUEST, Code.INVALID_REQUEST]
    assert wallet.refusals()[1].request["transaction_uuid"] == "bet-1"


def test_win_without_its_bet_reference_is_never_paid(env):
    """README "Certification" 15: the win names no bet -> RS_ERROR_WRONG_SYNTAX, no credit."""
    client, sessions, wallet = env
    sessions.add("tok-1", "john12345")
    out = post(client, "/transaction/win", bet(transaction_uuid="win-1", amount=5_000_000))
    assert out == {"user": "john12345", "status": "RS_ERROR_WRONG_SYNTAX", "request_uuid": "req-1"}
    assert wallet.money() == []
    (rec,) = wallet.refusals()
    assert rec.code is Code.INVALID_REQUEST and "reference_transaction_uuid" in rec.detail
    assert rec.request["transaction_uuid"] == "win-1" and rec.player_id == "john12345"


@pytest.mark.parametrize("amount,status,balance", [
    (10_000_001, "RS_ERROR_NOT_ENOUGH_MONEY", 10_000_000),  # EUR 100.00001 on EUR 100.00
    (2**31 - 1, "RS_ERROR_NOT_ENOUGH_MONEY", 10_000_000),
    (356_001, "RS_ERROR_WRONG_TYPES", None),  # fits the balance, still not a whole cent
])
def test_bet_that_cannot_be_debited_as_sent(env, amount, status, balance):
    """README "Certification" 5 and 28: never rounded, never debited; "not enough money"
    with the balance when it exceeds the balance (Caleta's tests), else wrong types."""
    client, sessions, wallet = env
    sessions.add("tok-1", "john12345")
    out = post(client, "/transaction/bet", bet(amount=amount))
    expected = {"user": "john12345", "status": status, "request_uuid": "req-1", "currency": "EUR"}
    if balance is not None:
        expected["balance"] = balance
    assert out == expected
    assert [type(c) for c in wallet.money()] == [GetBalance] and wallet.cash == 10_000
    (rec,) = wallet.refusals()
    assert rec.code is (Code.INSUFFICIENT_FUNDS if balance is not None else Code.INVALID_AMOUNT)


def test_game_catalogue():
    """``game_codes`` set: a bet or win on another game -> RS_ERROR_INVALID_GAME, audited."""
    sessions, wallet = FakeSessions(), FakeWallet()
    sessions.add("tok-1", "john12345")
    ctx = EdgeContext(settings=make_settings(game_codes=["g", "g2"]), submit=wallet.submit, sessions=sessions,
                      edge_id="t:1")
    with TestClient(Starlette(routes=[routes(ctx)])) as client:
        assert post(client, "/transaction/bet", bet())["status"] == "RS_OK"
        out = post(client, "/transaction/bet", bet(transaction_uuid="bet-2", game_code="invalid game"))
        assert out == {"user": "john12345", "status": "RS_ERROR_INVALID_GAME", "request_uuid": "req-1",
                       "currency": "EUR"}
        win = {**bet(transaction_uuid="win-1", game_code="invalid game"), "reference_transaction_uuid": "bet-1"}
        assert post(client, "/transaction/win", win)["status"] == "RS_ERROR_INVALID_GAME"
        rb = {"user": "john12345", "transaction_uuid": "rb-1", "reference_transaction_uuid": "bet-1",
              "game_code": "invalid game"}
        assert post(client, "/transaction/rollback", rb)["status"] == "RS_OK"  # rollbacks are not checked
    assert [type(c) for c in wallet.money()] == [Debit, Rollback]
    assert [r.code for r in wallet.refusals()] == [Code.INVALID_REQUEST, Code.INVALID_REQUEST]


def test_body_over_limit_is_wrong_syntax(env):
    client, sessions, wallet = env
    sessions.add("tok-1", "john12345")
    big = bet(meta={"pad": "x" * (BODY_MAX + 10)})
    out = post(client, "/transaction/bet", big)
    assert out == {"status": "RS_ERROR_WRONG_SYNTAX"}
    assert wallet.money() == [] and wallet.refusals()[0].code is Code.INVALID_REQUEST


def test_body_at_limit_is_read(env):
    client, sessions, _wallet = env
    sessions.add("tok-1", "john12345")
    body = msgspec.json.encode(bet())
    body = body[:-1] + b',"pad":"' + b"x" * (BODY_MAX - len(body) - 9) + b'"}'
    assert len(body) == BODY_MAX
    assert post(client, "/transaction/bet", None, raw=body)["status"] == "RS_OK"


def test_bet_expired_token_refused_win_and_rollback_accepted(env):
    client, sessions, wallet = env
    sessions.add("tok-1", "john12345", ttl_s=-1)
    out = post(client, "/transaction/bet", bet())
    assert out["status"] == "RS_ERROR_TOKEN_EXPIRED" and "balance" not in out
    assert wallet.refusals()[0].code is Code.TOKEN_EXPIRED and wallet.money() == []
    win = {**bet(transaction_uuid="win-1", amount=0), "reference_transaction_uuid": "bet-1"}
    assert post(client, "/transaction/win", win)["status"] == "RS_OK"
    rb = {"user": "john12345", "transaction_uuid": "rb-1", "reference_transaction_uuid": "bet-1", "token": "tok-1", "request_uuid": "q"}
    out = post(client, "/transaction/rollback", rb)
    assert out["status"] == "RS_OK" and out["currency"] == "EUR"
    credit, rollback = wallet.money()
    assert isinstance(credit, Credit) and isinstance(rollback, Rollback) and rollback.currency == "EUR"


def test_unknown_token_bet_refused(env):
    client, _, wallet = env
    out = post(client, "/transaction/bet", bet())
    assert out["status"] == "RS_ERROR_INVALID_TOKEN"
    assert wallet.refusals()[0].code is Code.INVALID_TOKEN


def test_overloaded_shard_is_retryable(env):
    client, sessions, wallet = env
    sessions.add("tok-1", "john12345")
    wallet.raise_ = Overloaded()
    out = post(client, "/transaction/bet", bet())
    assert out["status"] == "RS_ERROR_UNKNOWN" and out["request_uuid"] == "req-1"


def test_unexpected_error_is_still_a_signed_200(env):
    client, sessions, wallet = env
    sessions.add("tok-1", "john12345")
    wallet.raise_ = RuntimeError("boom")
    assert post(client, "/transaction/bet", bet())["status"] == "RS_ERROR_UNKNOWN"


def test_redis_down_bet_retryable_win_proceeds(env):
    client, sessions, _wallet = env
    sessions.down = True
    assert post(client, "/transaction/bet", bet())["status"] == "RS_ERROR_UNKNOWN"
    win = {**bet(transaction_uuid="win-1"), "reference_transaction_uuid": "bet-1"}
    assert post(client, "/transaction/win", win)["status"] == "RS_OK"
    assert post(client, "/user/balance", {"token": "tok-1", "request_uuid": "q"})["status"] == "RS_ERROR_UNKNOWN"


def test_balance_and_info(env):
    client, sessions, _wallet = env
    sessions.add("tok-1", "john12345")
    out = post(client, "/user/balance", {"token": "tok-1", "user": "john12345", "request_uuid": "q", "game_code": "g"})
    assert out == {"user": "john12345", "status": "RS_OK", "request_uuid": "q", "currency": "EUR", "balance": 10_000_000}
    out = post(client, "/user/info", {"user": "john12345", "request_uuid": "q"})
    assert out == {"user": "john12345", "status": "RS_OK", "request_uuid": "q", "currency": "EUR", "balance": 10_000_000, "country": "EE"}
    out = post(client, "/user/balance", {"token": "nope", "user": "john12345", "request_uuid": "q"})
    assert out["status"] == "RS_ERROR_INVALID_TOKEN"


def test_verification_can_be_disabled():
    sessions, wallet = FakeSessions(), FakeWallet()
    sessions.add("tok-1", "john12345")
    ctx = EdgeContext(settings=make_settings(verify_signatures=False, signing_threads=0), submit=wallet.submit, sessions=sessions, edge_id="t:1")
    with TestClient(Starlette(routes=[routes(ctx)])) as client:
        assert post(client, "/transaction/bet", bet(), sign=False)["status"] == "RS_OK"
