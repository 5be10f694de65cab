"""Pragmatic Play wallet endpoints over HTTP (Starlette): read, parse, hash, decode, map, submit.

Source: shared/specs/providers.md, "Pragmatic Play" (transport, endpoints, hash, error codes)
and "Common ground"; shared/DESIGN.md sections 2 (edge work), 5 (idempotency), 7 (Redis)
and 8 (errors). Every answer is HTTP 200 with a JSON body carrying ``error`` and
``description`` -- also refusals, also when something unexpected broke (then ``error: 100``,
which Pragmatic retries). Never an HTTP 500.

Per request, in order (each refusal is recorded with ``ctx.record_refusal``, except 1):

1. rate limit: ``ctx.admit("provider", "pragmatic")`` not None -> 100, nothing read, no audit;
2. ``Content-Type`` not ``application/x-www-form-urlencoded`` -> 7;
3. body larger than ``server.body_bytes_max`` -> 7 (not read further);
4. ``parse_form``: not a form, repeated parameter, too many / too long -> 7;
5. ``hash`` (``signature.py``) -> 5;
6. decode into the endpoint's Struct (missing / out-of-bounds fields) -> 7;
7. ``providerId`` not ``providers.pragmatic.provider_id`` -> 5;
8. token and amount rules (``adapter.py``) -> the table's error for the refusal;
9. ``ctx.submit(command)`` -> the table's error for ``Result.code``;
   ``Overloaded`` / ``ShardUnavailable`` / ``SessionStoreUnavailable`` -> 100.

Settlement calls (result, bonusWin, jackpotWin, promoWin, endRound, refund, adjustment) do
not need Redis: if the session store is down they proceed without the token (``userId``
names the player), per providers.md "Common ground" and DESIGN.md section 7.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Final

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.edge.body import read_body_bounded
from gateway.edge.context import EdgeContext
from gateway.edge.game_session import GameSession
from gateway.providers.pragmatic import adapter as rules
from gateway.providers.pragmatic.adapter import SCOPE, Refusal
from gateway.providers.pragmatic.schemas import (
    AdjustmentRequest,
    AuthenticateRequest,
    BadFields,
    BadForm,
    BalancePerGameRequest,
    BalanceRequest,
    BetRequest,
    BonusWinRequest,
    EndRoundRequest,
    JackpotWinRequest,
    PragmaticResponse,
    PromoWinRequest,
    RefundRequest,
    ResultRequest,
    decode_fields,
    encode_response,
    parse_form,
    split_game_ids,
)
from gateway.providers.pragmatic.signature import PragmaticHasher
from gateway.providers.pragmatic.statuses import PLAYER_FROZEN, RETRYABLE_EXCEPTIONS
from gateway.shards.commands import Code, Command, GetBalance, Origin, Result

log = logging.getLogger("gateway.providers.pragmatic")

#: Where the app mounts this adapter.
PREFIX: Final = "/providers/pragmatic"

FORM_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"

Process = Callable[[Any, dict[str, str], Origin], Awaitable[PragmaticResponse]]


@dataclass(frozen=True, slots=True)
class _Endpoint:
    path: str
    request_type: type
    process: Process


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


class PragmaticAdapter:
    """The eleven Pragmatic endpoints bound to one EdgeContext. The secret is read once, here.

    Raises ValueError at start-up if ``providers.pragmatic.secret_key`` is empty.
    """

    def __init__(self, ctx: EdgeContext) -> None:
        settings = ctx.settings
        self._ctx = ctx
        self._hasher = PragmaticHasher(settings.providers.pragmatic.secret_key)
        self._provider_id = settings.providers.pragmatic.provider_id
        self._body_bytes_max = settings.server.body_bytes_max
        self._amount_minor_max = settings.money.amount_minor_max
        self._endpoints = (
            _Endpoint("/authenticate.html", AuthenticateRequest, self._authenticate),
            _Endpoint("/balance.html", BalanceRequest, self._balance),
            _Endpoint("/bet.html", BetRequest, self._bet),
            _Endpoint("/result.html", ResultRequest, self._result),
            _Endpoint("/bonusWin.html", BonusWinRequest, self._bonus_win),
            _Endpoint("/jackpotWin.html", JackpotWinRequest, self._jackpot_win),
            _Endpoint("/promoWin.html", PromoWinRequest, self._promo_win),
            _Endpoint("/endRound.html", EndRoundRequest, self._end_round),
            _Endpoint("/refund.html", RefundRequest, self._refund),
            _Endpoint("/adjustment.html", AdjustmentRequest, self._adjustment),
            _Endpoint("/getBalancePerGame.html", BalancePerGameRequest, self._balance_per_game),
        )

    def routes(self) -> list[Route]:
        """One POST route per endpoint (providers.md, Pragmatic "Endpoints")."""
        return [Route(ep.path, self._handler(ep), methods=["POST"]) for ep in self._endpoints]

    def close(self) -> None:
        """Nothing to release (no pools, no files)."""
        return None

    def _handler(self, ep: _Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            return await self._serve(request, ep)

        handle.__name__ = f"pragmatic_{ep.path.strip('/').removesuffix('.html')}"
        return handle

    # ---- pipeline ---------------------------------------------------------------------

    async def _serve(self, request: Request, ep: _Endpoint) -> Response:
        route = f"pragmatic {ep.path}"
        try:
            answer = await self._answer(request, ep, route)
        except ClientDisconnect:
            answer = rules.retryable_response()
        except Exception:  # noqa: BLE001 - Pragmatic must get an error code, never an HTTP 500
            log.exception("pragmatic: unexpected error on %s", route)
            answer = rules.retryable_response()
        return Response(encode_response(answer), status_code=200, media_type="application/json")

    async def _answer(self, request: Request, ep: _Endpoint, route: str) -> PragmaticResponse:
        # Rate limit first (docs/PROVIDERS.md): over the limit -> 100, Pragmatic's retryable
        # code, before the body is read and without an audit record.
        if await self._ctx.admit("provider", SCOPE) is not None:
            return rules.retryable_response()
        content_type = request.headers.get("content-type")
        if _media_type(content_type) != FORM_MEDIA_TYPE:
            refusal = Refusal.bad_parameters(f"content type must be {FORM_MEDIA_TYPE}")
            return await self._refuse(route, refusal, None, audit={"content_type": (content_type or "")[:64]})
        body = await read_body_bounded(request, self._body_bytes_max)
        if body is None:
            refusal = Refusal.bad_parameters(f"body exceeds {self._body_bytes_max} bytes")
            audit = {
                "body_bytes_max": self._body_bytes_max,
                "content_length": (request.headers.get("content-length") or "")[:20],
            }
            return await self._refuse(route, refusal, None, audit=audit)
        try:
            fields = parse_form(body)
        except BadForm as exc:
            return await self._refuse(route, Refusal.bad_parameters(str(exc)), None,
                                      audit={"body_bytes": len(body)})
        if not self._hasher.verify(fields):
            refusal = Refusal.of(Code.INVALID_SIGNATURE, "bad or missing hash")
            return await self._refuse(route, refusal, fields)
        try:
            req = decode_fields(fields, ep.request_type)
        except BadFields as exc:
            return await self._refuse(route, Refusal.bad_parameters(f"bad fields: {exc}"), fields)
        if req.providerId != self._provider_id:
            refusal = Refusal.of(Code.UNAUTHORIZED, "providerId is not the configured provider")
            return await self._refuse(route, refusal, fields)
        origin = self._ctx.origin(route, None)
        try:
            return await ep.process(req, fields, origin)
        except RETRYABLE_EXCEPTIONS as exc:
            log.warning("pragmatic: retryable failure on %s: %r", route, exc)
            return rules.retryable_response()

    async def _refuse(
        self,
        route: str,
        refusal: Refusal,
        fields: dict[str, str] | None,
        *,
        origin: Origin | None = None,
        audit: dict | None = None,
    ) -> PragmaticResponse:
        """Record an adapter-decided refusal in the audit chain and build its answer."""
        if origin is None:
            origin = self._ctx.origin(route, None)
        try:
            await self._ctx.record_refusal(
                scope=SCOPE,
                code=refusal.code,
                detail=refusal.detail,
                origin=origin,
                request=audit if audit is not None else rules.audit_request(fields),
                player_id=rules.user_of(fields),
            )
        except Exception:  # noqa: BLE001 - failing to audit a refusal must not fail the answer
            log.exception("pragmatic: could not record a refusal on %s", route)
        return rules.response_for_refusal(refusal)

    # ---- shared steps -----------------------------------------------------------------

    async def _settlement_currency(
        self, req: Any, session: GameSession | None
    ) -> str | Refusal:
        """The request's ``currency``, else the session's, else the player's only wallet."""
        currency = rules.settlement_currency(getattr(req, "currency", None), session)
        if currency is not None:
            return currency
        return rules.only_wallet_currency(await self._ctx.submit(GetBalance(player_id=req.userId)))

    async def _current_balance(self, result: Result) -> rules.Money | None:
        """For a replay: the balance now (providers.md, Pragmatic: "success with the current
        balance and the original transactionId"); None when not a successful replay."""
        if not result.replayed or result.code is not Code.OK:
            return None
        stored = rules.balance_of(result)
        if stored is None or result.player_id is None:
            return None
        now = await self._ctx.submit(GetBalance(player_id=result.player_id, currency=stored.currency))
        return rules.balance_of(now, stored.currency)

    async def _submit_money(
        self,
        command: Command | Refusal,
        fields: dict[str, str],
        origin: Origin,
        *,
        used_promo: bool = False,
        end_round: bool = False,
    ) -> PragmaticResponse:
        """Answer the adapter's refusal, or submit and answer (current balance on a replay)."""
        if isinstance(command, Refusal):
            return await self._refuse(origin.route, command, fields, origin=origin)
        result = await self._ctx.submit(command)
        current = await self._current_balance(result)
        return rules.response_for_money(
            result, current=current, used_promo=used_promo, end_round=end_round
        )

    async def _settle(
        self,
        req: Any,
        fields: dict[str, str],
        origin: Origin,
        build: Callable[[str], Command | Refusal],
        *,
        used_promo: bool = False,
        end_round: bool = False,
    ) -> PragmaticResponse:
        """result, wins, endRound, adjustment: token check, currency, then ``build(currency)``."""
        session = await self._ctx.sessions.get_for_settlement(req.token, SCOPE)
        refusal = rules.check_settlement_session(session, req.userId)
        if refusal is not None:
            return await self._refuse(origin.route, refusal, fields, origin=origin)
        currency = await self._settlement_currency(req, session)
        if isinstance(currency, Refusal):
            return await self._refuse(origin.route, currency, fields, origin=origin)
        return await self._submit_money(
            build(currency), fields, origin, used_promo=used_promo, end_round=end_round
        )

    # ---- processors (decoded request -> answer) ---------------------------------------

    async def _authenticate(
        self, req: AuthenticateRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        session = await self._ctx.sessions.get(req.token)
        command = rules.authenticate_to_command(req, session, now_s=time.time())
        if isinstance(command, Refusal):
            return await self._refuse(origin.route, command, fields, origin=origin)
        assert session is not None
        response = rules.response_for_authenticate(await self._ctx.submit(command), session)
        if response.error == PLAYER_FROZEN:
            await self._refuse(
                origin.route, Refusal.of(Code.PLAYER_BLOCKED, "authenticate of a player who is not active"),
                {**fields, "userId": session.player_id}, origin=origin,
            )
        return response

    async def _balance(
        self, req: BalanceRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        session = await self._ctx.sessions.get(req.token)
        command = rules.balance_to_command(req, session, now_s=time.time())
        if isinstance(command, Refusal):
            return await self._refuse(origin.route, command, fields, origin=origin)
        return rules.response_for_balance(await self._ctx.submit(command), command.currency)

    async def _balance_per_game(
        self, req: BalancePerGameRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        game_ids = split_game_ids(req.gameIdList)
        if game_ids is None:
            refusal = Refusal.bad_parameters("gameIdList must hold 1..100 game ids")
            return await self._refuse(origin.route, refusal, fields, origin=origin)
        session = await self._ctx.sessions.get(req.token) if req.token is not None else None
        command = rules.balance_per_game_to_command(req, session, now_s=time.time())
        if isinstance(command, Refusal):
            return await self._refuse(origin.route, command, fields, origin=origin)
        result = await self._ctx.submit(command)
        return rules.response_for_balance_per_game(result, command.currency, game_ids)

    async def _bet(self, req: BetRequest, fields: dict[str, str], origin: Origin) -> PragmaticResponse:
        session = await self._ctx.sessions.get(req.token)
        command = rules.bet_to_command(
            req, session, now_s=time.time(), amount_minor_max=self._amount_minor_max, origin=origin
        )
        return await self._submit_money(command, fields, origin, used_promo=True)

    async def _result(
        self, req: ResultRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        def build(currency: str) -> Command | Refusal:
            return rules.result_to_command(
                req, currency, amount_minor_max=self._amount_minor_max, origin=origin
            )

        return await self._settle(req, fields, origin, build, used_promo=True)

    async def _win(
        self, req: Any, fields: dict[str, str], origin: Origin, credit_type: rules.WinKind
    ) -> PragmaticResponse:
        def build(currency: str) -> Command | Refusal:
            return rules.win_to_command(
                req, credit_type, currency, amount_minor_max=self._amount_minor_max, origin=origin
            )

        return await self._settle(req, fields, origin, build)

    async def _bonus_win(
        self, req: BonusWinRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        return await self._win(req, fields, origin, "bonus")

    async def _jackpot_win(
        self, req: JackpotWinRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        return await self._win(req, fields, origin, "jackpot")

    async def _promo_win(
        self, req: PromoWinRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        return await self._win(req, fields, origin, "promo")

    async def _end_round(
        self, req: EndRoundRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        def build(currency: str) -> Command | Refusal:
            return rules.end_round_to_command(req, currency, origin=origin)

        return await self._settle(req, fields, origin, build, end_round=True)

    async def _adjustment(
        self, req: AdjustmentRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        def build(currency: str) -> Command | Refusal:
            return rules.adjustment_to_command(
                req, currency, amount_minor_max=self._amount_minor_max, origin=origin
            )

        return await self._settle(req, fields, origin, build)

    async def _refund(
        self, req: RefundRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        session = await self._ctx.sessions.get_for_settlement(req.token, SCOPE)
        refusal = rules.check_settlement_session(session, req.userId)
        if refusal is not None:
            return await self._refuse(origin.route, refusal, fields, origin=origin)
        usable = rules.usable_session(session)
        currency = usable.currency if usable is not None else None
        command = rules.refund_to_command(req, currency, origin=origin)
        return await self._submit_money(command, fields, origin)
