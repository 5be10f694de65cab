"""Generic partner API, version 1 (JSON over HTTP, ``Authorization: Bearer <api key>``).

Routes (issue "Wallet gateway core", item 6):
    POST /v1/players                      create a player with its currencies
    GET  /v1/players/{player_id}/balance  balances per currency
    POST /v1/sessions                     game-launch token for a provider (Redis, TTL)
    POST /v1/wallet/deposit|withdraw      operator funding / defunding
    POST /v1/wallet/debit|credit|rollback bet, win, undo of a bet

Money fields are integers in minor units (``amount_minor``). The idempotency key is
(partner id, ``transaction_id``). Refusals are RFC 9457 problem+json with a stable ``code``
(see ``gateway.edge.problems``); a refused request changes nothing but the audit record.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import metrics, money
from gateway.edge.body import read_body_bounded
from gateway.edge.context import EdgeContext
from gateway.edge.problems import problem, result_problem
from gateway.edge.sessions import SessionStoreUnavailable
from gateway.providers.registry import NAMES as PROVIDER_NAMES
from gateway.shards.commands import (
    PLAYER_STATUSES,
    Code,
    Command,
    CreatePlayer,
    Credit,
    Debit,
    Deposit,
    GetBalance,
    Overloaded,
    Result,
    Rollback,
    SetPlayerStatus,
    ShardUnavailable,
    Withdraw,
)

PLAYER_ID_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}\Z")
KNOWN_PROVIDERS = PROVIDER_NAMES

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+\Z")]
PlayerId = Annotated[str, msgspec.Meta(pattern=PLAYER_ID_RE.pattern)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3,4}\Z")]
Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}\Z")]


# ---- request bodies -------------------------------------------------------------------


class CreatePlayerBody(msgspec.Struct):
    player_id: PlayerId
    currencies: Annotated[list[Currency], msgspec.Meta(min_length=1, max_length=16)]
    country: Country


class PlayerStatusBody(msgspec.Struct):
    status: Annotated[str, msgspec.Meta(max_length=32)]
    reason: Annotated[str, msgspec.Meta(max_length=256)] = ""


class SessionBody(msgspec.Struct):
    player_id: PlayerId
    currency: Currency
    provider: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    game_id: Id


class FundsBody(msgspec.Struct):
    transaction_id: Id
    player_id: PlayerId
    currency: Currency
    amount_minor: int
    bonus: bool = False


class DebitBody(msgspec.Struct):
    transaction_id: Id
    player_id: PlayerId
    currency: Currency
    amount_minor: int
    round_id: Id
    game_id: Id


class CreditBody(msgspec.Struct):
    transaction_id: Id
    player_id: PlayerId
    currency: Currency
    amount_minor: int
    round_id: Id
    game_id: Id
    bet_transaction_id: Id | None = None
    round_closed: bool = False


class RollbackBody(msgspec.Struct):
    transaction_id: Id
    player_id: PlayerId
    reference_transaction_id: Id
    currency: Currency | None = None


# ---- response bodies ------------------------------------------------------------------


class BalanceOut(msgspec.Struct):
    currency: str
    cash_minor: int
    bonus_minor: int


class BalancesResponse(msgspec.Struct):
    player_id: str
    balances: list[BalanceOut]


class PlayerResponse(msgspec.Struct):
    player_id: str
    country: str
    status: str
    balances: list[BalanceOut]
    replayed: bool = False


class SessionResponse(msgspec.Struct):
    token: str
    expires_at: str  # RFC 3339, UTC
    player_id: str
    currency: str
    provider: str
    game_id: str


class MoneyResponse(msgspec.Struct):
    transaction_id: str
    player_id: str
    currency: str
    cash_minor: int
    bonus_minor: int
    replayed: bool


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    field: str | None = None
    currency: str | None = None
    cash_minor: int | None = None
    bonus_minor: int | None = None


_encoder = msgspec.json.Encoder()
_decoders: dict[type, msgspec.json.Decoder[Any]] = {
    t: msgspec.json.Decoder(t)
    for t in (CreatePlayerBody, PlayerStatusBody, SessionBody, FundsBody, DebitBody, CreditBody, RollbackBody)
}
BodyT = TypeVar("BodyT", bound=msgspec.Struct)


class Refused(Exception):
    """An edge refusal: ``code`` and ``detail`` become the problem answer."""

    def __init__(self, code: str, detail: str, player_id: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.player_id = player_id


def _json(body: msgspec.Struct, status: int = 200) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type="application/json")


async def read_body(request: Request, body_bytes_max: int) -> bytes:
    """The request body; Refused(payload_too_large) past ``body_bytes_max``."""
    body = await read_body_bounded(request, body_bytes_max)
    if body is None:
        raise Refused("payload_too_large", f"body exceeds {body_bytes_max} bytes")
    return body


def _decode(kind: type[BodyT], raw: bytes) -> BodyT:
    """``raw`` decoded as ``kind``; Refused(invalid_request) for anything else."""
    try:
        body: BodyT = _decoders[kind].decode(raw)
        return body
    except msgspec.ValidationError as exc:
        raise Refused("invalid_request", str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise Refused("invalid_request", f"malformed JSON: {str(exc)[:200]}") from None


def _peek_player(raw: bytes) -> str | None:
    """Best-effort player id from a refused body, for the audit record."""
    try:
        data = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    pid = data.get("player_id") if isinstance(data, dict) else None
    return pid if isinstance(pid, str) and PLAYER_ID_RE.fullmatch(pid) else None


class Api:
    """Handlers of the generic API, bound to an EdgeContext."""

    def __init__(self, ctx: EdgeContext) -> None:
        self.ctx = ctx
        self.keys = {p.api_key: p.partner_id for p in ctx.settings.partners}
        self.amount_minor_max = ctx.settings.money.amount_minor_max
        self.body_bytes_max = ctx.settings.server.body_bytes_max

    def _partner(self, request: Request) -> str:
        auth = request.headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        partner = self.keys.get(key.strip()) if scheme.lower() == "bearer" else None
        if partner is None:
            raise Refused("unauthorized", "send Authorization: Bearer <api key>")
        return partner

    def _amount(self, value: int, currency: str, allow_zero: bool) -> int:
        money.exponent(currency)  # unknown currency -> AmountError(unknown_currency)
        return money.check_amount_minor(value, amount_minor_max=self.amount_minor_max, allow_zero=allow_zero)

    def routes(self) -> list[Route]:
        w = self._wrap
        return [
            Route("/v1/players", w("POST /v1/players", self.create_player), methods=["POST"]),
            Route("/v1/players/{player_id}/balance", w("GET /v1/players/balance", self.balance), methods=["GET"]),
            Route("/v1/players/{player_id}/status", w("POST /v1/players/status", self.set_status), methods=["POST"]),
            Route("/v1/sessions", w("POST /v1/sessions", self.create_session), methods=["POST"]),
            Route("/v1/wallet/deposit", w("POST /v1/wallet/deposit", self.deposit), methods=["POST"]),
            Route("/v1/wallet/withdraw", w("POST /v1/wallet/withdraw", self.withdraw), methods=["POST"]),
            Route("/v1/wallet/debit", w("POST /v1/wallet/debit", self.debit), methods=["POST"]),
            Route("/v1/wallet/credit", w("POST /v1/wallet/credit", self.credit), methods=["POST"]),
            Route("/v1/wallet/rollback", w("POST /v1/wallet/rollback", self.rollback), methods=["POST"]),
        ]

    def _wrap(self, route: str, handler: Callable[[Request, str, bytes], Awaitable[Response]]):
        """Authentication, rate limit, body limit, refusal auditing, metrics; never a 500 for bad input."""
        ctx = self.ctx
        is_write = not route.startswith("GET")

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            raw = b""
            partner = "unknown"
            try:
                partner = self._partner(request)
                # Rate limit per partner (gateway/edge/ratelimit.py): refused before the body
                # is read, and not audited, so that a flood writes no rows.
                retry_after_s = await ctx.admit("partner", partner)
                if retry_after_s is not None:
                    response = problem("rate_limited", f"partner {partner} is over its rate limit",
                                       retry_after_s=retry_after_s)
                else:
                    raw = await read_body(request, self.body_bytes_max) if is_write else b""
                    response = await handler(request, partner, raw)
            except Refused as refused:
                if is_write:
                    await ctx.record_refusal(
                        scope=partner, code=_refusal_code(refused.code), detail=refused.detail,
                        origin=ctx.origin(route, request.headers.get("x-request-id")),
                        request={"body": raw[:2048].decode("utf-8", "replace")},
                        player_id=refused.player_id or _peek_player(raw),
                    )
                response = problem(refused.code, refused.detail)
            except money.AmountError as exc:
                await ctx.record_refusal(
                    scope=partner, code=_refusal_code(exc.code), detail=exc.detail,
                    origin=ctx.origin(route, request.headers.get("x-request-id")),
                    request={"body": raw[:2048].decode("utf-8", "replace")}, player_id=_peek_player(raw),
                )
                response = problem(exc.code, exc.detail)
            except Overloaded as exc:
                response = problem("overloaded", "the shard is at capacity", retry_after_s=exc.retry_after_s)
            except ShardUnavailable as exc:
                response = problem("unavailable", str(exc), retry_after_s=1)
            except SessionStoreUnavailable:
                metrics.redis_unavailable_total.inc()
                response = problem("session_store_unavailable", "Redis is unreachable", retry_after_s=1)
            outcome = str(response.status_code)
            metrics.requests_total.labels(route, outcome).inc()
            metrics.request_latency_seconds.labels(route, outcome).observe(time.perf_counter() - started)
            return response

        return endpoint

    async def _money(self, command: Command) -> Response:
        result: Result = await self.ctx.submit(command)
        if result.code is not Code.OK:
            return result_problem(result)
        assert (result.transaction_id is not None and result.player_id is not None and result.currency is not None
                and result.cash_minor is not None and result.bonus_minor is not None), "an OK money result has its balance"
        return _json(MoneyResponse(
            transaction_id=result.transaction_id, player_id=result.player_id, currency=result.currency,
            cash_minor=result.cash_minor, bonus_minor=result.bonus_minor, replayed=result.replayed,
        ))

    # ---- handlers ----------------------------------------------------------------------

    async def create_player(self, request: Request, partner: str, raw: bytes) -> Response:
        body = _decode(CreatePlayerBody, raw)
        for currency in body.currencies:
            if not money.is_currency(currency):
                raise Refused("unknown_currency", f"unknown currency {currency!r}", body.player_id)
        currencies = tuple(sorted(set(body.currencies)))
        result = await self.ctx.submit(CreatePlayer(
            scope=partner, player_id=body.player_id, currencies=currencies, country=body.country,
            origin=self.ctx.origin("POST /v1/players", request.headers.get("x-request-id")),
        ))
        if result.code is not Code.OK:
            return result_problem(result)
        return _json(_player_response(result), status=200 if result.replayed else 201)

    async def set_status(self, request: Request, partner: str, raw: bytes) -> Response:
        """Block, self-exclude or reactivate a player: ``{"status": "blocked"|"self_excluded"|"active"}``.

        200 with the player; 404 unknown_player; 400 invalid_request for another status.
        Bets are then refused (``player_blocked``, each protocol's own status); wins and
        rollbacks are still accepted (docs/specs/responsible_gaming.md, RTS 14; each
        adapter's README, gateway/providers/<name>/README.md).
        """
        player_id = request.path_params["player_id"]
        if not PLAYER_ID_RE.fullmatch(player_id):
            raise Refused("invalid_request", "malformed player id")
        body = _decode(PlayerStatusBody, raw)
        if body.status not in PLAYER_STATUSES:
            raise Refused("invalid_request", f"status must be one of {', '.join(PLAYER_STATUSES)}", player_id)
        result = await self.ctx.submit(SetPlayerStatus(
            scope=partner, player_id=player_id, status=body.status, reason=body.reason,
            origin=self.ctx.origin("POST /v1/players/status", request.headers.get("x-request-id")),
        ))
        if result.code is not Code.OK:
            return result_problem(result)
        return _json(_player_response(result))

    async def balance(self, request: Request, partner: str, raw: bytes) -> Response:
        player_id = request.path_params["player_id"]
        if not PLAYER_ID_RE.fullmatch(player_id):
            raise Refused("invalid_request", "malformed player id")
        result = await self.ctx.submit(GetBalance(player_id=player_id))
        if result.code is not Code.OK:
            return result_problem(result)
        return _json(BalancesResponse(
            player_id=player_id,
            balances=[BalanceOut(b.currency, b.cash_minor, b.bonus_minor) for b in result.balances],
        ))

    async def create_session(self, request: Request, partner: str, raw: bytes) -> Response:
        body = _decode(SessionBody, raw)
        if body.provider not in KNOWN_PROVIDERS:
            raise Refused("unknown_provider", f"provider must be one of {', '.join(KNOWN_PROVIDERS)}", body.player_id)
        result = await self.ctx.submit(GetBalance(player_id=body.player_id, currency=body.currency))
        if result.code is not Code.OK:
            return result_problem(result)
        if not result.balances:
            return problem("currency_mismatch", f"player has no {body.currency} wallet")
        session = await self.ctx.sessions.create(body.player_id, body.currency, body.provider, body.game_id)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(session.expires_at_s))
        return _json(SessionResponse(session.token, expires, session.player_id, session.currency,
                                     session.provider, session.game_id), status=201)

    async def deposit(self, request: Request, partner: str, raw: bytes) -> Response:
        body = _decode(FundsBody, raw)
        amount = self._amount(body.amount_minor, body.currency, allow_zero=False)
        return await self._money(Deposit(
            scope=partner, transaction_id=body.transaction_id, player_id=body.player_id,
            currency=body.currency, amount_minor=amount, bonus=body.bonus,
            origin=self.ctx.origin("POST /v1/wallet/deposit", request.headers.get("x-request-id")),
        ))

    async def withdraw(self, request: Request, partner: str, raw: bytes) -> Response:
        body = _decode(FundsBody, raw)
        if body.bonus:
            raise Refused("invalid_request", "bonus money cannot be withdrawn", body.player_id)
        amount = self._amount(body.amount_minor, body.currency, allow_zero=False)
        return await self._money(Withdraw(
            scope=partner, transaction_id=body.transaction_id, player_id=body.player_id,
            currency=body.currency, amount_minor=amount,
            origin=self.ctx.origin("POST /v1/wallet/withdraw", request.headers.get("x-request-id")),
        ))

    async def debit(self, request: Request, partner: str, raw: bytes) -> Response:
        body = _decode(DebitBody, raw)
        amount = self._amount(body.amount_minor, body.currency, allow_zero=False)
        return await self._money(Debit(
            scope=partner, transaction_id=body.transaction_id, player_id=body.player_id,
            currency=body.currency, amount_minor=amount, round_id=body.round_id, game_id=body.game_id,
            origin=self.ctx.origin("POST /v1/wallet/debit", request.headers.get("x-request-id")),
        ))

    async def credit(self, request: Request, partner: str, raw: bytes) -> Response:
        body = _decode(CreditBody, raw)
        amount = self._amount(body.amount_minor, body.currency, allow_zero=True)
        return await self._money(Credit(
            scope=partner, transaction_id=body.transaction_id, player_id=body.player_id,
            currency=body.currency, amount_minor=amount, round_id=body.round_id, game_id=body.game_id,
            bet_transaction_id=body.bet_transaction_id, round_closed=body.round_closed,
            origin=self.ctx.origin("POST /v1/wallet/credit", request.headers.get("x-request-id")),
        ))

    async def rollback(self, request: Request, partner: str, raw: bytes) -> Response:
        body = _decode(RollbackBody, raw)
        if body.currency is not None and not money.is_currency(body.currency):
            raise Refused("unknown_currency", f"unknown currency {body.currency!r}", body.player_id)
        return await self._money(Rollback(
            scope=partner, transaction_id=body.transaction_id, player_id=body.player_id,
            reference_transaction_id=body.reference_transaction_id, currency=body.currency,
            origin=self.ctx.origin("POST /v1/wallet/rollback", request.headers.get("x-request-id")),
        ))


def _player_response(result: Result) -> PlayerResponse:
    """The answer for a player (create, status): its country, status and balances."""
    assert result.player_id is not None and result.country is not None and result.player_status is not None
    return PlayerResponse(
        player_id=result.player_id, country=result.country, status=result.player_status,
        balances=[BalanceOut(b.currency, b.cash_minor, b.bonus_minor) for b in result.balances],
        replayed=result.replayed,
    )


def _refusal_code(code: str) -> Code:
    try:
        return Code(code)
    except ValueError:
        return Code.INVALID_REQUEST


REQUEST_SCHEMAS = {
    "CreatePlayer": CreatePlayerBody, "PlayerStatus": PlayerStatusBody, "Session": SessionBody, "Funds": FundsBody,
    "Debit": DebitBody, "Credit": CreditBody, "Rollback": RollbackBody,
}
RESPONSE_SCHEMAS = {
    "Player": PlayerResponse, "Balances": BalancesResponse, "SessionCreated": SessionResponse,
    "Money": MoneyResponse, "Problem": Problem,
}
