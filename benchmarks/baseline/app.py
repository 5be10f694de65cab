"""Baseline wallet: how most operators build it, for comparison with the gateway.

Starlette + asyncpg, one uvicorn process. Every money request is one PostgreSQL transaction:

    BEGIN
    SELECT cash_minor, bonus_minor FROM balances WHERE ... FOR UPDATE     -- serialise the player
    [credit naming a bet: SELECT the bet's transactions row]
    INSERT INTO transactions ... ON CONFLICT (scope, transaction_id) DO NOTHING RETURNING id
        -- no row: a replay; answer the stored outcome (or 409 if the content differs)
    INSERT INTO entries ... (2 rows, summing to zero)
    UPDATE balances SET cash_minor = ...
    COMMIT                                                               -- synchronous_commit on

Same routes, request and response shapes and bearer key as the gateway's generic API v1 for
players, balance, deposit, withdraw, debit and credit. Run it with:

    uvicorn benchmarks.baseline.app:app --port 8090 --loop uvloop --http httptools --workers 1

Environment: BASELINE_DSN (default postgresql://postgres@127.0.0.1:5432/bench_baseline),
BASELINE_ADMIN_DSN (used to CREATE DATABASE, default .../postgres), BASELINE_POOL_SIZE (10),
BASELINE_API_KEY (demo-key-change-me), BASELINE_RESET=1 to empty the tables at startup.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DSN = os.environ.get("BASELINE_DSN", "postgresql://postgres@127.0.0.1:5432/bench_baseline")
ADMIN_DSN = os.environ.get("BASELINE_ADMIN_DSN", "")
POOL_SIZE = int(os.environ.get("BASELINE_POOL_SIZE", "10"))
API_KEY = os.environ.get("BASELINE_API_KEY", "demo-key-change-me")
SCOPE = "demo"  # the partner id of the sandbox key
BODY_BYTES_MAX = 65536
AMOUNT_MINOR_MAX = 10_000_000_000
CURRENCIES = frozenset({"EUR", "USD", "GBP", "SEK", "NOK", "DKK", "CHF", "PLN", "CAD", "JPY"})

_AUTH = f"Bearer {API_KEY}"
_SCHEMA = (Path(__file__).with_name("schema.sql")).read_text()


class Problem(Exception):
    def __init__(self, status: int, code: str, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra


def _json(doc: object, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def _problem(p: Problem) -> Response:
    doc = {"type": f"urn:wallet:problem:{p.code}", "title": p.code, "status": p.status,
           "code": p.code, "detail": p.detail, **p.extra}
    return Response(orjson.dumps(doc), status_code=p.status,
                    media_type="application/problem+json")


Handler = Callable[[Request], Awaitable[Response]]


def endpoint(fn: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        if request.headers.get("authorization") != _AUTH:
            return _problem(Problem(401, "unauthorized", "missing or wrong bearer key"))
        try:
            return await fn(request)
        except Problem as p:
            return _problem(p)

    return wrapped


async def _body(request: Request) -> dict[str, object]:
    raw = await request.body()
    if len(raw) > BODY_BYTES_MAX:
        raise Problem(413, "body_too_large", "request body too large")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Problem(400, "invalid_request", "body is not JSON") from None
    if not isinstance(doc, dict):
        raise Problem(400, "invalid_request", "body must be a JSON object")
    return doc


def _str(doc: dict[str, object], name: str, *, required: bool = True) -> str | None:
    v = doc.get(name)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not 0 < len(v) <= 128:
        raise Problem(400, "invalid_request", f"{name} must be a non-empty string")
    return v


def _amount(doc: dict[str, object], *, allow_zero: bool) -> int:
    v = doc.get("amount_minor")
    if type(v) is not int or v < 0 or (v == 0 and not allow_zero) or v > AMOUNT_MINOR_MAX:
        raise Problem(400, "invalid_amount", "amount_minor must be a positive integer")
    return v


def _currency(doc: dict[str, object]) -> str:
    cur = _str(doc, "currency")
    if cur not in CURRENCIES:
        raise Problem(400, "unknown_currency", f"unknown currency {cur!r}")
    assert cur is not None
    return cur


# ---------------------------------------------------------------------------------------
pool: asyncpg.Pool | None = None


def _pool() -> asyncpg.Pool:
    assert pool is not None
    return pool


@endpoint
async def create_player(request: Request) -> Response:
    doc = await _body(request)
    player_id = _str(doc, "player_id")
    country = _str(doc, "country")
    currencies = doc.get("currencies")
    if (not isinstance(currencies, list) or not currencies
            or any(c not in CURRENCIES for c in currencies)):
        raise Problem(400, "invalid_request", "currencies must be a list of known currencies")
    wanted = sorted(set(currencies))
    async with _pool().acquire() as con, con.transaction():
        created = await con.fetchval(
            "INSERT INTO players (player_id, country) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING RETURNING player_id", player_id, country)
        if created is not None:
            await con.executemany(
                "INSERT INTO balances (player_id, currency) VALUES ($1, $2)",
                [(player_id, c) for c in wanted])
        else:  # same player again: a replay if identical, else a conflict
            stored_country = await con.fetchval(
                "SELECT country FROM players WHERE player_id = $1", player_id)
            stored = await con.fetch("SELECT currency FROM balances WHERE player_id = $1 "
                                     "ORDER BY currency", player_id)
            if stored_country != country or [r[0] for r in stored] != wanted:
                raise Problem(409, "player_exists", f"player {player_id} exists")
        rows = await con.fetch("SELECT currency, cash_minor, bonus_minor FROM balances "
                               "WHERE player_id = $1 ORDER BY currency", player_id)
    return _json({"player_id": player_id, "country": country, "status": "active",
                  "balances": [{"currency": r[0], "cash_minor": r[1], "bonus_minor": r[2]}
                               for r in rows],
                  "replayed": created is None}, 200 if created is None else 201)


@endpoint
async def balance(request: Request) -> Response:
    player_id = request.path_params["player_id"]
    async with _pool().acquire() as con:
        rows = await con.fetch(
            "SELECT currency, cash_minor, bonus_minor FROM balances WHERE player_id = $1 "
            "ORDER BY currency", player_id)
    if not rows:
        raise Problem(404, "unknown_player", f"unknown player {player_id}")
    return _json({"player_id": player_id, "balances": [
        {"currency": r[0], "cash_minor": r[1], "bonus_minor": r[2]} for r in rows]})


_SIGN = {"deposit": 1, "withdraw": -1, "debit": -1, "credit": 1}
_HOUSE = {"deposit": "house:psp", "withdraw": "house:psp", "debit": "house:games",
          "credit": "house:games"}
_REFUSALS = {"insufficient_funds": 402, "unknown_transaction": 404}


async def _money(request: Request, kind: str) -> Response:
    doc = await _body(request)
    tx_id = _str(doc, "transaction_id")
    player_id = _str(doc, "player_id")
    currency = _currency(doc)
    amount = _amount(doc, allow_zero=kind == "credit")
    round_id = game_id = bet_tx = None
    if kind in ("debit", "credit"):
        round_id = _str(doc, "round_id")
        game_id = _str(doc, "game_id")
    if kind == "credit":
        bet_tx = _str(doc, "bet_transaction_id", required=False)
    sign = _SIGN[kind]

    async with _pool().acquire() as con, con.transaction():
        row = await con.fetchrow(
            "SELECT cash_minor, bonus_minor FROM balances "
            "WHERE player_id = $1 AND currency = $2 FOR UPDATE", player_id, currency)
        if row is None:
            known = await con.fetchval("SELECT 1 FROM players WHERE player_id = $1", player_id)
            if known is None:
                raise Problem(404, "unknown_player", f"unknown player {player_id}")
            raise Problem(422, "currency_mismatch", f"player has no {currency} wallet")
        cash, bonus = row[0], row[1]
        outcome = "ok"
        if sign < 0 and cash < amount:
            outcome = "insufficient_funds"
        elif bet_tx is not None:
            bet = await con.fetchrow(
                "SELECT kind, player_id, outcome FROM transactions "
                "WHERE scope = $1 AND transaction_id = $2", SCOPE, bet_tx)
            if bet is None or bet[0] != "debit" or bet[1] != player_id or bet[2] != "ok":
                outcome = "unknown_transaction"
        cash_after = cash + sign * amount if outcome == "ok" else cash
        pk = await con.fetchval(
            "INSERT INTO transactions (scope, transaction_id, kind, player_id, currency, "
            "amount_minor, round_id, game_id, ref_transaction_id, outcome, cash_after, "
            "bonus_after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
            "ON CONFLICT (scope, transaction_id) DO NOTHING RETURNING id",
            SCOPE, tx_id, kind, player_id, currency, amount, round_id, game_id, bet_tx,
            outcome, cash_after, bonus)
        if pk is None:
            return await _replay(con, tx_id, kind, player_id, currency, amount, round_id)
        if outcome == "ok" and amount:
            await con.execute(
                "INSERT INTO entries (tx_id, account, currency, amount_minor) "
                "VALUES ($1, $2, $3, $4), ($1, $5, $3, $6)",
                pk, f"player:{player_id}:{currency}", currency, sign * amount,
                f"{_HOUSE[kind]}:{currency}", -sign * amount)
            await con.execute(
                "UPDATE balances SET cash_minor = $3, updated_at = now() "
                "WHERE player_id = $1 AND currency = $2", player_id, currency, cash_after)
    return _outcome(tx_id, player_id, currency, outcome, cash_after, bonus, replayed=False)


async def _replay(con: asyncpg.Connection, tx_id: str | None, kind: str, player_id: str | None,
                  currency: str, amount: int, round_id: str | None) -> Response:
    stored = await con.fetchrow(
        "SELECT kind, player_id, currency, amount_minor, round_id, outcome, cash_after, "
        "bonus_after FROM transactions WHERE scope = $1 AND transaction_id = $2", SCOPE, tx_id)
    assert stored is not None
    for name, mine in (("type", kind), ("player_id", player_id), ("currency", currency),
                       ("amount_minor", amount), ("round_id", round_id)):
        theirs = stored["kind" if name == "type" else name]
        if theirs != mine:
            raise Problem(409, "idempotency_conflict",
                          f"transaction_id reused with a different {name}", field=name)
    return _outcome(tx_id, player_id, currency, stored["outcome"], stored["cash_after"],
                    stored["bonus_after"], replayed=True)


def _outcome(tx_id: str | None, player_id: str | None, currency: str, outcome: str,
             cash: int, bonus: int, *, replayed: bool) -> Response:
    if outcome != "ok":
        raise Problem(_REFUSALS.get(outcome, 409), outcome, outcome.replace("_", " "),
                      currency=currency, cash_minor=cash, bonus_minor=bonus)
    return _json({"transaction_id": tx_id, "player_id": player_id, "currency": currency,
                  "cash_minor": cash, "bonus_minor": bonus, "replayed": replayed})


def _route(kind: str) -> Handler:
    @endpoint
    async def handler(request: Request) -> Response:
        return await _money(request, kind)

    return handler


async def healthz(request: Request) -> Response:
    return _json({"status": "ok"})


# ---------------------------------------------------------------------------------------
def _admin_dsn(dsn: str) -> str:
    if ADMIN_DSN:
        return ADMIN_DSN
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/postgres"))


async def _ensure_database(dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    admin = await asyncpg.connect(_admin_dsn(dsn))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global pool
    for attempt in range(30):
        try:
            await _ensure_database(DSN)
            break
        except (OSError, asyncpg.PostgresError):
            if attempt == 29:
                raise
            await asyncio.sleep(1)
    pool = await asyncpg.create_pool(DSN, min_size=POOL_SIZE, max_size=POOL_SIZE)
    async with pool.acquire() as con:
        await con.execute(_SCHEMA)
        if os.environ.get("BASELINE_RESET") == "1":
            await con.execute("TRUNCATE entries, transactions, balances, players")
    try:
        yield
    finally:
        await pool.close()
        pool = None


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/v1/players", create_player, methods=["POST"]),
        Route("/v1/players/{player_id}/balance", balance, methods=["GET"]),
        Route("/v1/wallet/deposit", _route("deposit"), methods=["POST"]),
        Route("/v1/wallet/withdraw", _route("withdraw"), methods=["POST"]),
        Route("/v1/wallet/debit", _route("debit"), methods=["POST"]),
        Route("/v1/wallet/credit", _route("credit"), methods=["POST"]),
    ],
    lifespan=lifespan,
)
