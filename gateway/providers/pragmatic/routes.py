"""Pragmatic Play wallet endpoints over HTTP: the eleven routes and Pragmatic's hooks into the
shared pipeline.

Source: gateway/providers/pragmatic/README.md ("Protocol facts": transport, endpoints, hash,
error codes, "Common ground"); docs/DESIGN.md sections 2 (edge work), 5 (idempotency), 7
(Redis) and 8 (errors). Every answer is HTTP 200 with a JSON body carrying ``error`` and
``description`` -- also refusals, also when something unexpected broke (then ``error: 100``,
which Pragmatic retries). Never an HTTP 500.

One ``PragmaticAdapter`` serves one integration (``[integrations.<name>]``, mounted at
``/providers/<name>/`` by ``gateway/providers/mounting.py``): its secret, its ``providerId``,
its partner (every command acts for it) and its idempotency scope ``"<partner>:<name>"``. A
session token opened for another integration or partner is refused (4) everywhere.

Per request, in order (``gateway/providers/pipeline.py``; each refusal is recorded with
``ctx.record_refusal`` under the integration's scope and partner, except 1):

1. rate limit: ``ctx.admit("provider", <integration name>)`` not None -> 100, nothing read,
   no audit;
2. ``Content-Type`` not ``application/x-www-form-urlencoded`` -> 7;
3. body larger than ``server.body_bytes_max`` -> 7 (not read further);
4. ``parse_form``: not a form, repeated parameter, too many / too long -> 7;
5. ``hash`` (``signature.py``) -> 5;
6. decode into the endpoint's Struct (missing / out-of-bounds fields) -> 7;
7. ``providerId`` not the integration's ``provider_id`` -> 5;
8. token and amount rules (``adapter.py``) -> the table's error for the refusal;
9. ``ctx.submit(command)`` -> the table's error for ``Result.code``;
   ``Overloaded`` / ``ShardUnavailable`` / ``SessionStoreUnavailable`` -> 100.

Settlement calls (result, bonusWin, jackpotWin, promoWin, endRound, refund, adjustment) do
not need Redis: if the session store is down they proceed without the token (``userId``
names the player), per README.md "Common ground" and docs/DESIGN.md section 7.

Two notices move no money (README.md "Certification", case 31): ``/sessionExpired.html``
expires the live session it names, ``/roundDetails.html`` is acknowledged; both answer 0.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.config_types import resolved
from gateway.edge.context import EdgeContext
from gateway.edge.game_session import GameSession
from gateway.logs import get_logger
from gateway.providers.integration import Caller
from gateway.providers.pipeline import Endpoint, Pipeline, Rejected, integration_of
from gateway.providers.pragmatic import adapter as rules
from gateway.providers.pragmatic.adapter import PROVIDER, bad_parameters, refusal_of
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
    RoundDetailsRequest,
    SessionExpiredRequest,
    decode_fields,
    encode_response,
    parse_form,
    split_game_ids,
)
from gateway.providers.pragmatic.settings import BONUS_WIN_CREDIT, PragmaticSettings
from gateway.providers.pragmatic.signature import PragmaticHasher
from gateway.providers.pragmatic.statuses import (
    END_ROUND,
    PLAYER_FROZEN,
    RESULT,
    RETRYABLE_EXCEPTIONS,
    SUCCESS,
)
from gateway.providers.refusal import Refusal
from gateway.shards.commands import Code, Command, GetBalance, Origin, Result

#: Where the sandbox integration (``[integrations.pragmatic]``) is mounted.
PREFIX: Final = "/providers/pragmatic"

FORM_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"

#: A processor: (decoded request, the form's fields for the audit, origin) -> answer.
FormProcess = Callable[[Any, dict[str, str], Origin], Awaitable[PragmaticResponse]]


@dataclass(frozen=True, slots=True)
class Form:
    """A decoded request and the parsed form it came from (refusals audit the form)."""

    req: Any
    fields: dict[str, str]


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _on_form(process: FormProcess) -> Callable[[Form, Origin], Awaitable[PragmaticResponse]]:
    """``process`` as a pipeline endpoint, which hands it one decoded ``Form``."""
    async def run(form: Form, origin: Origin) -> PragmaticResponse:
        return await process(form.req, form.fields, origin)
    return run


class PragmaticWire:
    """Pragmatic Play's hooks into ``Pipeline`` (``pipeline.WireProtocol[PragmaticResponse]``):
    form-encoded bodies signed by an md5 ``hash`` parameter, HTTP 200 with a numeric ``error``."""

    retryable_exceptions = RETRYABLE_EXCEPTIONS

    def __init__(self, hasher: PragmaticHasher, provider_id: str) -> None:
        self._hasher = hasher
        self._provider_id = provider_id

    def retryable(self, request: Any | None) -> PragmaticResponse:
        """Error 100, which Pragmatic retries."""
        return rules.retryable_response()

    def too_large(self, detail: str) -> Refusal[int]:
        return bad_parameters(detail)

    def precheck(self, request: Request) -> Rejected | None:
        """Only ``application/x-www-form-urlencoded`` is read (error 7 otherwise)."""
        content_type = request.headers.get("content-type")
        if _media_type(content_type) != FORM_MEDIA_TYPE:
            refusal = bad_parameters(f"content type must be {FORM_MEDIA_TYPE}")
            return Rejected(refusal, audit={"content_type": (content_type or "")[:64]})
        return None

    def authenticate(self, request: Request, body: bytes) -> dict[str, str] | Rejected:
        """The parsed form (strict, bounded), if its ``hash`` is right (error 5 otherwise)."""
        try:
            fields = parse_form(body)
        except BadForm as exc:
            return Rejected(bad_parameters(str(exc)), audit={"body_bytes": len(body)})
        if not self._hasher.verify(fields):
            return Rejected(refusal_of(Code.INVALID_SIGNATURE, "bad or missing hash"), fields)
        return fields

    def decode(self, payload: dict[str, str], request_type: type) -> Form | Rejected:
        """The endpoint's Struct (error 7), from the configured ``providerId`` (error 5)."""
        try:
            req = decode_fields(payload, request_type)
        except BadFields as exc:
            return Rejected(bad_parameters(f"bad fields: {exc}"), payload)
        if req.providerId != self._provider_id:
            return Rejected(refusal_of(Code.UNAUTHORIZED, "providerId is not the configured provider"), payload)
        return Form(req, payload)

    def request_id(self, request: Any) -> str | None:
        """Pragmatic sends no request id: the edge makes one."""
        return None

    def refusal_request_id(self, source: object) -> str | None:
        return None

    def audit_request(self, source: object) -> dict:
        return rules.audit_request(source if isinstance(source, dict) else None)

    def audit_player(self, source: object) -> str | None:
        return rules.user_of(source if isinstance(source, dict) else None)

    def refusal_answer(self, refusal: Refusal[Any], source: object) -> PragmaticResponse:
        return rules.response_for_refusal(refusal)

    async def respond(self, answer: PragmaticResponse, route: str, retry_after_s: int) -> Response:
        """HTTP 200, JSON."""
        return Response(encode_response(answer), status_code=200, media_type="application/json")


class PragmaticAdapter:
    """The Pragmatic endpoints of one integration (eleven wallet methods and two notices),
    bound to one EdgeContext. The secret and the ``bonus_win`` mode are read once, here.

    ``caller``/``settings``: the integration (default: the sandbox integration named
    ``"pragmatic"``). Raises ValueError at start-up if its ``secret_key`` is empty,
    TypeError if it is an unresolved ``{ env = ... }`` / ``{ file = ... }`` reference.
    """

    def __init__(
        self, ctx: EdgeContext, caller: Caller | None = None, settings: PragmaticSettings | None = None
    ) -> None:
        caller, settings = integration_of(ctx, caller, settings, PROVIDER, PragmaticSettings)
        self._ctx = ctx
        self._caller = caller
        self._amount_minor_max = ctx.settings.money.amount_minor_max
        self._bonus_win_credits = settings.bonus_win == BONUS_WIN_CREDIT
        self._log = get_logger(f"gateway.providers.{caller.provider}")
        wire = PragmaticWire(PragmaticHasher(resolved(settings.secret_key)), settings.provider_id)
        self._pipeline: Pipeline[PragmaticResponse] = Pipeline(ctx, caller, wire)
        self._endpoints: tuple[tuple[str, type, FormProcess], ...] = (
            ("/authenticate.html", AuthenticateRequest, self._authenticate),
            ("/balance.html", BalanceRequest, self._balance),
            ("/bet.html", BetRequest, self._bet),
            ("/result.html", ResultRequest, self._result),
            ("/bonusWin.html", BonusWinRequest, self._bonus_win),
            ("/jackpotWin.html", JackpotWinRequest, self._jackpot_win),
            ("/promoWin.html", PromoWinRequest, self._promo_win),
            ("/endRound.html", EndRoundRequest, self._end_round),
            ("/refund.html", RefundRequest, self._refund),
            ("/adjustment.html", AdjustmentRequest, self._adjustment),
            ("/getBalancePerGame.html", BalancePerGameRequest, self._balance_per_game),
            ("/sessionExpired.html", SessionExpiredRequest, self._session_expired),
            ("/roundDetails.html", RoundDetailsRequest, self._round_details),
        )

    def routes(self) -> list[Route]:
        """One POST route per endpoint (README.md, "Protocol facts", endpoints, and the two
        notices of "Certification" case 31)."""
        return self._pipeline.routes(
            Endpoint(path, request_type, _on_form(process))
            for path, request_type, process in self._endpoints
        )

    def close(self) -> None:
        """Nothing to release (no pools, no files)."""
        return

    async def _refuse(
        self, refusal: Refusal[int], fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        return await self._pipeline.refuse(origin.route, refusal, fields, origin=origin)

    # ---- shared steps -----------------------------------------------------------------

    async def _settlement_currency(
        self, req: Any, session: GameSession | None
    ) -> str | Refusal[int]:
        """The request's ``currency``, else the session's, else the player's only wallet."""
        currency = rules.settlement_currency(getattr(req, "currency", None), session, caller=self._caller)
        if currency is not None:
            return currency
        lookup = GetBalance(partner_id=self._caller.partner_id, player_id=req.userId)
        return rules.only_wallet_currency(await self._ctx.submit(lookup))

    async def _current_balance(self, result: Result) -> rules.Money | None:
        """For a replay: the balance now (README.md, "Protocol facts": a repeated reference is
        answered with success, the current balance and the original transactionId); None when not a successful replay."""
        if not result.replayed or result.code is not Code.OK:
            return None
        stored = rules.balance_of(result)
        if stored is None or result.player_id is None:
            return None
        now = await self._ctx.submit(
            GetBalance(partner_id=self._caller.partner_id, player_id=result.player_id, currency=stored.currency)
        )
        return rules.balance_of(now, stored.currency)

    async def _submit_money(
        self,
        command: Command | Refusal[int],
        fields: dict[str, str],
        origin: Origin,
        *,
        used_promo: bool = False,
        endpoint: str | None = None,
    ) -> PragmaticResponse:
        """Answer the adapter's refusal, or submit and answer (current balance on a replay);
        ``endpoint``: the status table's per-endpoint rows (``statuses.ENDPOINT_STATUS``)."""
        if isinstance(command, Refusal):
            return await self._refuse(command, fields, origin)
        result = await self._ctx.submit(command)
        current = await self._current_balance(result)
        return rules.response_for_money(
            result, current=current, used_promo=used_promo, endpoint=endpoint
        )

    async def _settle(
        self,
        req: Any,
        fields: dict[str, str],
        origin: Origin,
        build: Callable[[str], Command | Refusal[int]],
        *,
        used_promo: bool = False,
        endpoint: str | None = None,
    ) -> PragmaticResponse:
        """result, wins, endRound, adjustment: token check, currency, then ``build(currency)``."""
        session = await self._ctx.sessions.get_for_settlement(req.token, self._caller.scope)
        refusal = rules.check_settlement_session(session, self._caller, req.userId)
        if refusal is not None:
            return await self._refuse(refusal, fields, origin)
        currency = await self._settlement_currency(req, session)
        if isinstance(currency, Refusal):
            return await self._refuse(currency, fields, origin)
        return await self._submit_money(
            build(currency), fields, origin, used_promo=used_promo, endpoint=endpoint
        )

    # ---- processors (decoded request -> answer) ---------------------------------------

    async def _authenticate(
        self, req: AuthenticateRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        session = await self._ctx.sessions.get(req.token)
        command = rules.authenticate_to_command(req, session, caller=self._caller, now_s=time.time())
        if isinstance(command, Refusal):
            return await self._refuse(command, fields, origin)
        assert session is not None
        response = rules.response_for_authenticate(await self._ctx.submit(command), session)
        if response.error == PLAYER_FROZEN:
            await self._refuse(
                refusal_of(Code.PLAYER_BLOCKED, "authenticate of a player who is not active"),
                {**fields, "userId": session.player_id}, origin,
            )
        return response

    async def _balance(
        self, req: BalanceRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        session = await self._ctx.sessions.get(req.token) if req.token is not None else None
        command = rules.balance_to_command(req, session, caller=self._caller, now_s=time.time())
        if isinstance(command, Refusal):
            return await self._refuse(command, fields, origin)
        return rules.response_for_balance(await self._ctx.submit(command), command.currency)

    async def _balance_per_game(
        self, req: BalancePerGameRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        game_ids = split_game_ids(req.gameIdList)
        if game_ids is None:
            refusal = bad_parameters("gameIdList must hold 1..100 game ids")
            return await self._refuse(refusal, fields, origin)
        session = await self._ctx.sessions.get(req.token) if req.token is not None else None
        command = rules.balance_per_game_to_command(req, session, caller=self._caller, now_s=time.time())
        if isinstance(command, Refusal):
            return await self._refuse(command, fields, origin)
        result = await self._ctx.submit(command)
        return rules.response_for_balance_per_game(result, command.currency, game_ids)

    async def _bet(self, req: BetRequest, fields: dict[str, str], origin: Origin) -> PragmaticResponse:
        session = await self._ctx.sessions.get(req.token)
        command = rules.bet_to_command(
            req, session, caller=self._caller, now_s=time.time(),
            amount_minor_max=self._amount_minor_max, origin=origin,
        )
        return await self._submit_money(command, fields, origin, used_promo=True)

    async def _result(
        self, req: ResultRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        def build(currency: str) -> Command | Refusal[int]:
            return rules.result_to_command(
                req, currency, caller=self._caller, amount_minor_max=self._amount_minor_max,
                origin=origin,
            )

        return await self._settle(req, fields, origin, build, used_promo=True, endpoint=RESULT)

    async def _win(
        self, req: Any, fields: dict[str, str], origin: Origin, credit_type: rules.WinKind,
        *, credit: bool = True,
    ) -> PragmaticResponse:
        def build(currency: str) -> Command | Refusal[int]:
            return rules.win_to_command(
                req, credit_type, currency, caller=self._caller,
                amount_minor_max=self._amount_minor_max, origin=origin, credit=credit,
            )

        return await self._settle(req, fields, origin, build)

    async def _bonus_win(
        self, req: BonusWinRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        """Credited only under ``bonus_win = "credit"`` (settings.py); else recorded with 0,
        and the announced total logged (the ledger row keeps the reference)."""
        response = await self._win(req, fields, origin, "bonus", credit=self._bonus_win_credits)
        if not self._bonus_win_credits and response.error == SUCCESS:
            self._log.info("pragmatic_bonus_win_recorded", integration=self._caller.integration,
                           user_id=req.userId[:128], reference=req.reference[:128],
                           bonus_code=(req.bonusCode or "")[:128], amount=req.amount[:40],
                           transaction_id=response.transactionId)
        return response

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
        def build(currency: str) -> Command | Refusal[int]:
            return rules.end_round_to_command(req, currency, caller=self._caller, origin=origin)

        return await self._settle(req, fields, origin, build, endpoint=END_ROUND)

    async def _adjustment(
        self, req: AdjustmentRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        def build(currency: str) -> Command | Refusal[int]:
            return rules.adjustment_to_command(
                req, currency, caller=self._caller, amount_minor_max=self._amount_minor_max,
                origin=origin,
            )

        return await self._settle(req, fields, origin, build)

    async def _refund(
        self, req: RefundRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        session = await self._ctx.sessions.get_for_settlement(req.token, self._caller.scope)
        refusal = rules.check_settlement_session(session, self._caller, req.userId)
        if refusal is not None:
            return await self._refuse(refusal, fields, origin)
        usable = rules.usable_session(session, self._caller)
        currency = usable.currency if usable is not None else None
        command = rules.refund_to_command(req, currency, caller=self._caller, origin=origin)
        return await self._submit_money(command, fields, origin)

    async def _session_expired(
        self, req: SessionExpiredRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        """Expire the live session Pragmatic says has ended (``adapter.token_to_expire``); 0."""
        if req.token is not None:
            session = await self._ctx.sessions.get(req.token)
            token = rules.token_to_expire(req, session, caller=self._caller, now_s=time.time())
            if token is not None:
                await self._ctx.sessions.expire_now(token)
        return rules.response_for_notice()

    async def _round_details(
        self, req: RoundDetailsRequest, fields: dict[str, str], origin: Origin
    ) -> PragmaticResponse:
        """Information about a finished round: nothing to store or move; 0."""
        return rules.response_for_notice()


Adapter = PragmaticAdapter  # the name gateway/providers/mounting.py builds every adapter by
