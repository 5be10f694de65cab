"""Generic partner API, version 1 (JSON over HTTP, ``Authorization: Bearer <api key>``).

Routes (issue "Wallet gateway core", item 6):
    POST /v1/players                      create a player with its currencies
    GET  /v1/players/{player_id}/balance  balances per currency
    POST /v1/sessions                     game-launch token for a provider (Redis, TTL)
    POST /v1/wallet/deposit|withdraw      operator funding / defunding
    POST /v1/wallet/debit|credit|rollback bet, win, undo of a bet

Money fields are integers in minor units (``amount_minor``). The idempotency key is
(partner id, ``transaction_id``). Refusals are RFC 9457 problem+json with a stable ``code``
(see ``gateway.edge.problems``, whose ``ROUTES`` table lists every status and code of each
route); a refused request changes nothing but the audit record.

Every write (POST) carries a JSON body: ``Content-Type: application/json`` (parameters such
as ``; charset=utf-8`` allowed). Any other media type, and a missing Content-Type, is
refused with 415 ``unsupported_media_type`` after authentication and the rate limit and
before the body is read, and audited like the other edge refusals.

The request Structs below are also the OpenAPI document (``gateway.edge.openapi``): every
constraint the server enforces is stated on them, in the decoder where that gives the same
error code, else as ``extra_json_schema`` next to the check that enforces it (currencies:
``unknown_currency``; amounts: ``invalid_amount``, bounded by ``money.amount_minor_max``
in the document built from the running settings; the session's ``provider``: the partner's
own integrations).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import clock, metrics, money
from gateway.config import Settings
from gateway.edge.api_responsible import ResponsibleApi
from gateway.edge.auth import PartnerKeys
from gateway.edge.body import read_body_bounded
from gateway.edge.context import EdgeContext
from gateway.edge.problems import ROUTES, ProblemResponse, problem, result_problem
from gateway.edge.sessions import SessionStoreUnavailable
from gateway.logs import get_logger
from gateway.shards.commands import (
    API_SOURCE,
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
    idempotency_scope,
)
from gateway.telemetry import request as request_observation

if TYPE_CHECKING:
    from gateway.edge.api_audit import AuditApi
    from gateway.edge.api_payments import PaymentsApi
    from gateway.edge.api_reconciliation import ReconciliationApi
    from gateway.edge.api_sportsbook import SportsbookApi

log = get_logger("gateway.edge")

WALLET_ROLE = "wallet"
#: Routes whose key needs another role than "wallet" (the sportsbook's trading routes).
ROUTE_ROLES: dict[str, str] = {
    "PUT /v1/sportsbook/markets/{market_id}": "trading",
    "GET /v1/sportsbook/markets/{market_id}": "trading",
    "GET /v1/sportsbook/markets/{market_id}/report": "trading",
    "POST /v1/sportsbook/results": "trading",
    "PUT /v1/sportsbook/players/{player_id}/stake-factor": "trading",
    "GET /v1/sportsbook/players/{player_id}/stake-factor": "trading",
    "GET /v1/payments/reconciliations/{integration}/exceptions": "finance",
    "POST /v1/payments/reconciliations/{integration}/exceptions/{exception_id}/resolve": "finance",
    "POST /v1/audit/records/search": "audit",
    "GET /v1/audit/transactions/{transaction_id}": "audit",
}

PLAYER_ID_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}\Z")

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+\Z")]
PlayerId = Annotated[str, msgspec.Meta(pattern=PLAYER_ID_RE.pattern)]
#: A currency code: the pattern is the decoder's (``invalid_request``); a well-formed code
#: that is not one of ``money.CURRENCY_EXPONENTS`` is ``unknown_currency``, checked by the
#: handlers, so the enum is stated for the document only.
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3,4}\Z",
                                       extra_json_schema={"enum": sorted(money.CURRENCY_EXPONENTS)})]
Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}\Z")]
#: Amounts: checked by ``money.check_amount_minor`` (``invalid_amount``, not the decoder's
#: ``invalid_request``); the document adds ``maximum`` from ``money.amount_minor_max``.
AmountMinor = Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 1})]
AmountMinorOrZero = Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})]
#: The session's integration: the document names the partner's own (``unknown_provider``).
Provider = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


# ---- request bodies -------------------------------------------------------------------


class CreatePlayerBody(msgspec.Struct):
    player_id: PlayerId
    currencies: Annotated[list[Currency], msgspec.Meta(min_length=1, max_length=16)]
    country: Country


class PlayerStatusBody(msgspec.Struct):
    # Checked by the handler (not the decoder) so that the refusal's audit names the player.
    status: Annotated[str, msgspec.Meta(max_length=32, extra_json_schema={"enum": list(PLAYER_STATUSES)})]
    # Any text but NUL, which no text column stores (the shard refuses it too).
    reason: Annotated[str, msgspec.Meta(max_length=256, pattern=r"^[^\x00]*\Z")] = ""


class SessionBody(msgspec.Struct):
    player_id: PlayerId
    currency: Currency
    provider: Provider
    game_id: Id


class FundsBody(msgspec.Struct):
    transaction_id: Id
    player_id: PlayerId
    currency: Currency
    amount_minor: AmountMinor
    bonus: bool = False


class WithdrawBody(msgspec.Struct):
    transaction_id: Id
    player_id: PlayerId
    currency: Currency
    amount_minor: AmountMinor
    # Bonus money is not withdrawable: ``true`` is refused (invalid_request) by the handler.
    bonus: Annotated[bool, msgspec.Meta(extra_json_schema={"const": False})] = False


class DebitBody(msgspec.Struct):
    transaction_id: Id
    player_id: PlayerId
    currency: Currency
    amount_minor: AmountMinor
    round_id: Id
    game_id: Id


class CreditBody(msgspec.Struct):
    transaction_id: Id
    player_id: PlayerId
    currency: Currency
    amount_minor: AmountMinorOrZero
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


class SessionResponse(msgspec.Struct, omit_defaults=True):
    token: str
    expires_at: str  # RFC 3339, UTC
    player_id: str
    currency: str
    provider: str
    game_id: str
    # The player's own settings for the game launch (docs/RESPONSIBLE_GAMING.md, RTS 13):
    # interrupt play with a reality check this often; the shard ends the session's bets
    # once it has lasted the session time limit (``session_time_limit_reached``).
    reality_check_interval_s: int | None = None
    session_time_limit_s: int | None = None


class MoneyResponse(msgspec.Struct):
    transaction_id: str
    player_id: str
    currency: str
    cash_minor: int
    bonus_minor: int
    replayed: bool


class Problem(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem; the document states per status which ``code`` values it carries."""

    type: str  # urn:gateway:problem:<code>
    title: str
    status: int
    code: str
    detail: str | None = None
    field: str | None = None  # idempotency_conflict: the first differing field
    transaction_id: str | None = None
    player_id: str | None = None
    # A refused money request carries the player's balance in that currency, if it has one.
    currency: str | None = None
    cash_minor: int | None = None
    bonus_minor: int | None = None
    replayed: bool | None = None  # a stored refusal answered again
    # Sportsbook refusals (docs/SPORTSBOOK.md, "Refusals"): what was refused, the largest
    # stake a limit allows, the current price after odds_changed.
    market_id: str | None = None
    selection_id: str | None = None
    max_stake_minor: int | None = None
    price_version: int | None = None
    odds: dict[str, str] | None = None


_encoder = msgspec.json.Encoder()
_decoders: dict[type, msgspec.json.Decoder[Any]] = {
    t: msgspec.json.Decoder(t)
    for t in (CreatePlayerBody, PlayerStatusBody, SessionBody, FundsBody, WithdrawBody, DebitBody, CreditBody,
              RollbackBody)
}
BodyT = TypeVar("BodyT", bound=msgspec.Struct)


class Refused(Exception):
    """An edge refusal: ``code`` and ``detail`` become the problem answer."""

    def __init__(self, code: str, detail: str, player_id: str | None = None, field: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.player_id = player_id
        self.field = field  # idempotency_conflict: the field named in the answer


def _json(body: msgspec.Struct, status: int = 200) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type="application/json")


def is_json_media_type(content_type: str | None) -> bool:
    """True for ``application/json`` with or without parameters (``; charset=utf-8``).

    Media types are case-insensitive (RFC 9110, 8.3.1); a missing header is not JSON.
    """
    if not content_type:
        return False
    return content_type.partition(";")[0].strip().lower() == "application/json"


async def read_body(request: Request, body_bytes_max: int) -> bytes:
    """The request body; Refused(payload_too_large) past ``body_bytes_max``."""
    body = await read_body_bounded(request, body_bytes_max)
    if body is None:
        raise Refused("payload_too_large", f"body exceeds {body_bytes_max} bytes")
    return body


def _decode(kind: type[BodyT], raw: bytes) -> BodyT:
    """``raw`` decoded as ``kind``; Refused(invalid_request) for anything else."""
    try:
        decoder = _decoders.get(kind)
        if decoder is None:  # another route family's body (gateway/edge/api_sportsbook.py)
            decoder = _decoders[kind] = msgspec.json.Decoder(kind)
        body: BodyT = decoder.decode(raw)
        return body
    except msgspec.ValidationError as exc:
        raise Refused("invalid_request", str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise Refused("invalid_request", f"malformed JSON: {str(exc)[:200]}") from None


decode_body = _decode


def peek_player(raw: bytes) -> str | None:
    """Best-effort player id from a refused body, for the audit record."""
    try:
        data = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    pid = data.get("player_id") if isinstance(data, dict) else None
    return pid if isinstance(pid, str) and PLAYER_ID_RE.fullmatch(pid) else None


def integrations_by_partner(settings: Settings) -> dict[str, tuple[str, ...]]:
    """partner id -> the names of its enabled provider integrations (a session's ``provider``)."""
    integrations_of: dict[str, tuple[str, ...]] = {}
    for name, integration in settings.integrations.items():
        if integration.enabled:
            integrations_of[integration.partner_id] = (*integrations_of.get(integration.partner_id, ()), name)
    return integrations_of


class Api:
    """Handlers of the generic API, bound to an EdgeContext."""

    def __init__(self, ctx: EdgeContext, sportsbook: SportsbookApi | None = None,
                 payments: Callable[[Api], PaymentsApi] | None = None,
                 reconciliation: Callable[[Api], ReconciliationApi] | None = None,
                 audit: Callable[[Api], AuditApi] | None = None) -> None:
        self.ctx = ctx
        self.sportsbook = sportsbook
        self.keys = PartnerKeys(ctx.settings.partners)
        # partner -> its enabled provider integrations (the ``provider`` of a session).
        self.integrations_of = integrations_by_partner(ctx.settings)
        self.amount_minor_max = ctx.settings.money.amount_minor_max
        self.body_bytes_max = ctx.settings.server.body_bytes_max
        self.responsible = ResponsibleApi(self)
        self.payments = payments(self) if payments is not None else None
        self.reconciliation = reconciliation(self) if reconciliation is not None else None
        self.audit = audit(self) if audit is not None else None

    def _partner(self, request: Request, role: str) -> str:
        """The authenticated partner; its key must hold ``role`` (docs/SECURITY.md, "Roles")."""
        principal = self.keys.authenticate(request.headers.get("authorization"))
        if principal is None:
            raise Refused("unauthorized", "send Authorization: Bearer <api key>")
        if role not in principal.roles:
            raise Refused("forbidden", f"this key lacks the {role!r} role")
        request.state.key_id = principal.key_id  # who asked, for records that name it
        return principal.partner_id

    @staticmethod
    def _scope(partner: str) -> str:
        """The idempotency scope of a partner's own API calls: ``"<partner>:api"``."""
        return idempotency_scope(partner, API_SOURCE)

    api_scope = _scope

    @staticmethod
    def path_player(request: Request) -> str:
        """The player id of the path; Refused(invalid_request) if malformed."""
        player_id = request.path_params["player_id"]
        if not PLAYER_ID_RE.fullmatch(player_id):
            raise Refused("invalid_request", "malformed player id")
        return player_id

    @staticmethod
    def decode_for(kind: type[BodyT], raw: bytes, player_id: str) -> BodyT:
        """``_decode`` for a route with the player in its path (a refusal's audit names it)."""
        try:
            return _decode(kind, raw)
        except Refused as refused:
            refused.player_id = player_id
            raise

    def _amount(self, value: int, currency: str, allow_zero: bool) -> int:
        money.exponent(currency)  # unknown currency -> AmountError(unknown_currency)
        return money.check_amount_minor(value, amount_minor_max=self.amount_minor_max, allow_zero=allow_zero)

    def routes(self) -> list[Route]:
        """The routes; each one's method and path are its key in ``problems.ROUTES``."""
        handlers: dict[str, tuple[str, Callable[[Request, str, bytes], Awaitable[Response]]]] = {
            # contract key (method and OpenAPI path) -> (route label of metrics and audit, handler)
            "POST /v1/players": ("POST /v1/players", self.create_player),
            "GET /v1/players/{player_id}/balance": ("GET /v1/players/balance", self.balance),
            "POST /v1/players/{player_id}/status": ("POST /v1/players/status", self.set_status),
            "POST /v1/sessions": ("POST /v1/sessions", self.create_session),
            "POST /v1/wallet/deposit": ("POST /v1/wallet/deposit", self.deposit),
            "POST /v1/wallet/withdraw": ("POST /v1/wallet/withdraw", self.withdraw),
            "POST /v1/wallet/debit": ("POST /v1/wallet/debit", self.debit),
            "POST /v1/wallet/credit": ("POST /v1/wallet/credit", self.credit),
            "POST /v1/wallet/rollback": ("POST /v1/wallet/rollback", self.rollback),
            **self.responsible.handlers(),
        }
        if self.payments is not None:
            handlers.update(self.payments.handlers())
        if self.reconciliation is not None:
            handlers.update(self.reconciliation.handlers())
        if self.audit is not None:
            handlers.update(self.audit.handlers())
        if self.sportsbook is not None:
            sportsbook = self.sportsbook
            for key, (label, handler) in sportsbook.handlers().items():
                handlers[key] = (label, functools.partial(sportsbook.guarded, handler))
            assert set(handlers) == set(ROUTES), "every route has its row in problems.ROUTES"
        # One Route per path, so that a 405 names every method of the path in Allow.
        by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
        for key, (label, handler) in handlers.items():
            method, path = key.split(" ", 1)
            role = ROUTE_ROLES.get(key, WALLET_ROLE)
            by_path.setdefault(path, {})[method] = self._wrap(label, handler, key, role)
        routes = []
        for path, endpoints in by_path.items():
            if len(endpoints) == 1:
                ((method, endpoint),) = endpoints.items()
                routes.append(Route(path, endpoint, methods=[method]))
            else:
                routes.append(Route(path, _by_method(endpoints), methods=list(endpoints)))
        return routes

    def _wrap(self, route: str, handler: Callable[[Request, str, bytes], Awaitable[Response]], key: str,
              role: str = "wallet"):
        """Authentication (a key holding ``role``), rate limit, media type, body limit, refusal
        auditing, metrics; never a 500 for bad input. ``key`` names the route's row in
        ``problems.ROUTES``."""
        ctx = self.ctx
        is_write = not route.startswith("GET")
        contract = ROUTES[key]
        statuses = contract.statuses()
        codes = frozenset(contract.codes)

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            raw = b""
            audit_request: dict[str, str] | None = None
            partner: str | None = None
            response: Response
            try:
                partner = self._partner(request, role)
                # Rate limit per partner (gateway/edge/ratelimit.py): refused before the body
                # is read, and not audited, so that a flood writes no rows.
                retry_after_s = await ctx.admit("partner", partner)
                if retry_after_s is not None:
                    response = problem("rate_limited", f"partner {partner} is over its rate limit",
                                       retry_after_s=retry_after_s)
                else:
                    if is_write:
                        content_type = request.headers.get("content-type")
                        if not is_json_media_type(content_type):
                            # Refused before the body is read: the audit keeps the header.
                            audit_request = {"content_type": (content_type or "")[:256]}
                            raise Refused("unsupported_media_type",
                                          "send the body as Content-Type: application/json")
                        raw = await read_body(request, self.body_bytes_max)
                    response = await handler(request, partner, raw)
            except Refused as refused:
                if is_write:
                    audit_code = refusal_code(refused.code)
                    await ctx.record_refusal(
                        scope=_audit_scope(partner), partner_id=partner, code=audit_code,
                        # An edge code the shard's Code lacks (unsupported_media_type) is
                        # audited as invalid_request and keeps its name in the detail.
                        detail=refused.detail if audit_code.value == refused.code else f"{refused.code}: {refused.detail}",
                        origin=ctx.origin(route, request.headers.get("x-request-id")),
                        request=audit_request or {"body": raw[:2048].decode("utf-8", "replace")},
                        player_id=refused.player_id or peek_player(raw),
                    )
                response = problem(refused.code, refused.detail, field=refused.field)
            except money.AmountError as exc:
                await ctx.record_refusal(
                    scope=_audit_scope(partner), partner_id=partner,
                    code=refusal_code(exc.code), detail=exc.detail,
                    origin=ctx.origin(route, request.headers.get("x-request-id")),
                    request={"body": raw[:2048].decode("utf-8", "replace")}, player_id=peek_player(raw),
                )
                response = problem(exc.code, exc.detail)
            except Overloaded as exc:
                response = problem("overloaded", "the shard is at capacity", retry_after_s=exc.retry_after_s)
            except ShardUnavailable as exc:
                response = problem("unavailable", str(exc), retry_after_s=1)
            except SessionStoreUnavailable:
                metrics.redis_unavailable_total.inc()
                response = problem("session_store_unavailable", "Redis is unreachable", retry_after_s=1)
            if response.status_code not in statuses or (isinstance(response, ProblemResponse)
                                                         and response.code not in codes):
                # problems.ROUTES (and so the OpenAPI document) does not know this answer.
                log.error("undocumented_answer", route=key, status=response.status_code,
                          code=getattr(response, "code", None))
            outcome = str(response.status_code)
            code = response.code if isinstance(response, ProblemResponse) else "ok"
            request_observation.note(partner=partner or "", outcome=code)
            metrics.requests_total.labels(route, "", outcome, code).inc()
            metrics.request_latency_seconds.labels(route, "", outcome, code).observe(time.perf_counter() - started)
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
            scope=self._scope(partner), partner_id=partner, player_id=body.player_id, currencies=currencies, country=body.country,
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
        try:
            body = _decode(PlayerStatusBody, raw)
        except Refused as refused:
            refused.player_id = player_id  # the player is in the path, not the body
            raise
        if body.status not in PLAYER_STATUSES:
            raise Refused("invalid_request", f"status must be one of {', '.join(PLAYER_STATUSES)}", player_id)
        result = await self.ctx.submit(SetPlayerStatus(
            scope=self._scope(partner), partner_id=partner, player_id=player_id, status=body.status, reason=body.reason,
            origin=self.ctx.origin("POST /v1/players/status", request.headers.get("x-request-id")),
        ))
        if result.code is not Code.OK:
            return result_problem(result)
        return _json(_player_response(result))

    async def balance(self, request: Request, partner: str, raw: bytes) -> Response:
        player_id = request.path_params["player_id"]
        if not PLAYER_ID_RE.fullmatch(player_id):
            raise Refused("invalid_request", "malformed player id")
        result = await self.ctx.submit(GetBalance(partner_id=partner, player_id=player_id))
        if result.code is not Code.OK:
            return result_problem(result)
        return _json(BalancesResponse(
            player_id=player_id,
            balances=[BalanceOut(b.currency, b.cash_minor, b.bonus_minor) for b in result.balances],
        ))

    async def create_session(self, request: Request, partner: str, raw: bytes) -> Response:
        body = _decode(SessionBody, raw)
        if not money.is_currency(body.currency):
            raise Refused("unknown_currency", f"unknown currency {body.currency!r}", body.player_id)
        integrations = self.integrations_of.get(partner, ())
        if body.provider not in integrations:
            # Another partner's integration is as unknown as a missing one.
            raise Refused("unknown_provider", f"provider must be one of your integrations: {', '.join(integrations)}",
                          body.player_id)
        result = await self.ctx.submit(GetBalance(partner_id=partner, player_id=body.player_id, currency=body.currency))
        if result.code is not Code.OK:
            return result_problem(result)
        if not result.balances:
            return problem("currency_mismatch", f"player has no {body.currency} wallet")
        session = await self.ctx.sessions.create(partner, body.player_id, body.currency, body.provider, body.game_id)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(session.expires_at_s))
        reality_check_s = session_limit_s = None
        if result.rg is not None:
            reality_check_s = result.rg.reality_check_s or None
            limit = result.rg.session_limit()
            session_limit_s = limit.in_force(clock.now_us()) if limit is not None else None
        return _json(SessionResponse(session.token, expires, session.player_id, session.currency,
                                     session.integration, session.game_id, reality_check_s, session_limit_s), status=201)

    async def deposit(self, request: Request, partner: str, raw: bytes) -> Response:
        body = _decode(FundsBody, raw)
        amount = self._amount(body.amount_minor, body.currency, allow_zero=False)
        return await self._money(Deposit(
            scope=self._scope(partner), transaction_id=body.transaction_id, partner_id=partner,
            player_id=body.player_id,
            currency=body.currency, amount_minor=amount, bonus=body.bonus,
            origin=self.ctx.origin("POST /v1/wallet/deposit", request.headers.get("x-request-id")),
        ))

    async def withdraw(self, request: Request, partner: str, raw: bytes) -> Response:
        body = _decode(WithdrawBody, raw)
        if body.bonus:
            raise Refused("invalid_request", "bonus money cannot be withdrawn", body.player_id)
        amount = self._amount(body.amount_minor, body.currency, allow_zero=False)
        return await self._money(Withdraw(
            scope=self._scope(partner), transaction_id=body.transaction_id, partner_id=partner,
            player_id=body.player_id,
            currency=body.currency, amount_minor=amount,
            origin=self.ctx.origin("POST /v1/wallet/withdraw", request.headers.get("x-request-id")),
        ))

    async def debit(self, request: Request, partner: str, raw: bytes) -> Response:
        body = _decode(DebitBody, raw)
        amount = self._amount(body.amount_minor, body.currency, allow_zero=False)
        return await self._money(Debit(
            scope=self._scope(partner), transaction_id=body.transaction_id, partner_id=partner,
            player_id=body.player_id,
            currency=body.currency, amount_minor=amount, round_id=body.round_id, game_id=body.game_id,
            origin=self.ctx.origin("POST /v1/wallet/debit", request.headers.get("x-request-id")),
        ))

    async def credit(self, request: Request, partner: str, raw: bytes) -> Response:
        body = _decode(CreditBody, raw)
        amount = self._amount(body.amount_minor, body.currency, allow_zero=True)
        return await self._money(Credit(
            scope=self._scope(partner), transaction_id=body.transaction_id, partner_id=partner,
            player_id=body.player_id,
            currency=body.currency, amount_minor=amount, round_id=body.round_id, game_id=body.game_id,
            bet_transaction_id=body.bet_transaction_id, round_closed=body.round_closed,
            origin=self.ctx.origin("POST /v1/wallet/credit", request.headers.get("x-request-id")),
        ))

    async def rollback(self, request: Request, partner: str, raw: bytes) -> Response:
        body = _decode(RollbackBody, raw)
        if body.currency is not None and not money.is_currency(body.currency):
            raise Refused("unknown_currency", f"unknown currency {body.currency!r}", body.player_id)
        if body.reference_transaction_id == body.transaction_id:
            # Its own id is the referenced bet's key: the answer the shard gives when that bet
            # is known (the key holds another kind of transaction), whether it is or not.
            raise Refused("idempotency_conflict", "a rollback cannot name its own transaction id", body.player_id,
                          field="reference_transaction_id")
        return await self._money(Rollback(
            scope=self._scope(partner), transaction_id=body.transaction_id, partner_id=partner,
            player_id=body.player_id,
            reference_transaction_id=body.reference_transaction_id, currency=body.currency,
            origin=self.ctx.origin("POST /v1/wallet/rollback", request.headers.get("x-request-id")),
        ))


async def _method_missing(request: Request) -> Response:
    return problem("method_not_allowed", f"method {request.method} not allowed on {request.url.path}")


def _by_method(endpoints: dict[str, Callable[[Request], Awaitable[Response]]]) -> Callable[[Request], Awaitable[Response]]:
    """One endpoint for several methods of a path (Starlette routed the method already)."""

    async def endpoint(request: Request) -> Response:
        return await endpoints.get(request.method, endpoints.get("GET", _method_missing))(request)

    return endpoint


def _audit_scope(partner: str | None) -> str:
    """Scope of a refusal's audit record: the partner's API scope, "unknown" before auth."""
    return "unknown" if partner is None else idempotency_scope(partner, API_SOURCE)


def _player_response(result: Result) -> PlayerResponse:
    """The answer for a player (create, status): its country, status and balances."""
    assert result.player_id is not None and result.country is not None and result.player_status is not None
    return PlayerResponse(
        player_id=result.player_id, country=result.country, status=result.player_status,
        balances=[BalanceOut(b.currency, b.cash_minor, b.bonus_minor) for b in result.balances],
        replayed=result.replayed,
    )


def refusal_code(code: str) -> Code:
    """The audit code of an edge refusal: its own Code, else INVALID_REQUEST (the detail keeps the name)."""
    try:
        return Code(code)
    except ValueError:
        return Code.INVALID_REQUEST


REQUEST_SCHEMAS = {
    "CreatePlayer": CreatePlayerBody, "PlayerStatus": PlayerStatusBody, "Session": SessionBody, "Funds": FundsBody,
    "Withdraw": WithdrawBody, "Debit": DebitBody, "Credit": CreditBody, "Rollback": RollbackBody,
}
RESPONSE_SCHEMAS = {
    "Player": PlayerResponse, "Balances": BalancesResponse, "SessionCreated": SessionResponse,
    "Money": MoneyResponse, "Problem": Problem,
}
