"""Hub88 wallet endpoints over HTTP: the five routes and Hub88's hooks into the shared pipeline.

Source: gateway/providers/hub88/README.md ("Protocol facts": transport, endpoints, signature,
statuses) and docs/DESIGN.md sections 2 (edge work), 5 (idempotency) and 8 (errors). Every
answer is HTTP 200 with a JSON body and a Hub88 ``status``, signed with the operator key in
``X-Hub88-Signature`` -- also refusals, also when something unexpected broke (then
``RS_ERROR_UNKNOWN``, which Hub88 treats as retryable). Never an HTTP 500.

Per request, in order (``gateway/providers/pipeline.py``; each refusal from 2 on is
recorded with ``ctx.record_refusal``):

1. rate limit (``ctx.admit("provider", "hub88")``) -> ``RS_ERROR_UNKNOWN``, nothing read;
2. body larger than ``server.body_bytes_max`` -> ``RS_ERROR_WRONG_SYNTAX`` (not read further);
3. signature over the raw body (if ``providers.hub88.verify_signatures``) ->
   ``RS_ERROR_INVALID_SIGNATURE``;
4. decode -> ``RS_ERROR_WRONG_SYNTAX`` (not JSON, or a required field missing) /
   ``RS_ERROR_WRONG_TYPES`` (a field of the wrong type or out of bounds);
5. amount, game, token and currency rules (``adapter.py``) -> the refusal's status; a bet
   stake that cannot be debited as sent is compared with the balance first
   (``adapter.BalanceCheck``: ``RS_ERROR_NOT_ENOUGH_MONEY`` with the balance if larger);
6. ``ctx.submit(command)`` -> the table status of ``Result.code``;
   ``Overloaded`` / ``ShardUnavailable`` / ``SessionStoreUnavailable`` -> ``RS_ERROR_UNKNOWN``.

Wins and rollbacks do not need Redis: if the session store is down they proceed without
the token (``user`` names the player), per docs/DESIGN.md section 7.
"""

from __future__ import annotations

import time
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from gateway.edge.context import EdgeContext
from gateway.logs import get_logger
from gateway.providers.hub88.adapter import (
    PROVIDER,
    BalanceCheck,
    audit_request,
    balance_check_refusal,
    balance_to_command,
    bet_to_command,
    info_to_command,
    refusal_of,
    response_for_balance,
    response_for_refusal,
    response_for_result,
    rollback_to_command,
    syntax_refusal,
    win_to_command,
)
from gateway.providers.hub88.schemas import (
    BalanceRequest,
    BetRequest,
    Hub88Response,
    MissingField,
    RollbackRequest,
    UserInfoRequest,
    WinRequest,
    WrongSyntax,
    WrongTypes,
    decode_request,
    encode_response,
)
from gateway.providers.hub88.settings import Hub88Settings
from gateway.providers.hub88.signature import HEADER, Hub88Signer
from gateway.providers.hub88.statuses import RETRYABLE_EXCEPTIONS, RETRYABLE_STATUS
from gateway.providers.integration import Caller
from gateway.providers.pipeline import Endpoint, Pipeline, Rejected, integration_of
from gateway.providers.refusal import Refusal, peek_json, str_field
from gateway.shards.commands import Code, Credit, Debit, Origin, Rollback

log = get_logger("gateway.providers.hub88")

#: Where the app mounts this adapter.
PREFIX: Final = "/providers/hub88"


class Hub88Wire:
    """Hub88's hooks into ``Pipeline`` (``pipeline.WireProtocol[Hub88Response]``): RSA
    signatures both ways, JSON bodies, HTTP 200 with an ``RS_*`` status for every answer."""

    retryable_exceptions = RETRYABLE_EXCEPTIONS

    def __init__(self, signer: Hub88Signer, *, verify: bool) -> None:
        self._signer = signer
        self._verify = verify

    def retryable(self, request: Any | None) -> Hub88Response:
        """``RS_ERROR_UNKNOWN``, echoing ``user`` and ``request_uuid`` when decoded."""
        if request is None:
            return Hub88Response(status=RETRYABLE_STATUS)
        return Hub88Response(
            user=str_field(request, "user"), status=RETRYABLE_STATUS,
            request_uuid=request.request_uuid,
        )

    def too_large(self, detail: str) -> Refusal[str]:
        """``RS_ERROR_WRONG_SYNTAX`` (README.md, choice 5)."""
        return syntax_refusal(detail)

    def precheck(self, request: Request) -> Rejected | None:
        """Nothing to check before the body (the signature covers the body)."""
        return None

    def authenticate(self, request: Request, body: bytes) -> bytes | Rejected:
        """``X-Hub88-Signature`` over the raw body, when verification is on."""
        if self._verify and not self._signer.verify(body, request.headers.get(HEADER)):
            refusal = refusal_of(Code.INVALID_SIGNATURE, f"bad or missing {HEADER}")
            return Rejected(refusal, peek_json(body))
        return body

    def decode(self, payload: bytes, request_type: type) -> Any:
        """The endpoint's request Struct; not JSON or a required field missing ->
        WRONG_SYNTAX, a field of the wrong type -> WRONG_TYPES."""
        try:
            return decode_request(payload, request_type)
        except MissingField as exc:
            return Rejected(syntax_refusal(f"missing field: {exc}"), peek_json(payload))
        except WrongTypes as exc:
            return Rejected(refusal_of(Code.INVALID_REQUEST, f"wrong types: {exc}"), peek_json(payload))
        except WrongSyntax as exc:
            return Rejected(syntax_refusal(f"not JSON: {exc}"))

    def request_id(self, request: Any) -> str | None:
        """Hub88's ``request_uuid``."""
        return request.request_uuid

    def refusal_request_id(self, source: object) -> str | None:
        return str_field(source, "request_uuid")

    def audit_request(self, source: object) -> dict:
        return audit_request(source)

    def audit_player(self, source: object) -> str | None:
        return str_field(source, "user")

    def refusal_answer(self, refusal: Refusal[Any], source: object) -> Hub88Response:
        """Its status, echoing ``user`` and ``request_uuid``; bets and wins also echo their
        ``currency`` (README.md, choice 9)."""
        currency = source.currency if isinstance(source, BetRequest | WinRequest) else None
        return response_for_refusal(
            refusal, user=str_field(source, "user"), request_uuid=str_field(source, "request_uuid"),
            currency=currency,
        )

    async def respond(self, answer: Hub88Response, route: str, retry_after_s: int) -> Response:
        """HTTP 200, JSON, signed in ``X-Hub88-Signature`` (unsigned, and logged, if the
        signing itself fails)."""
        body = encode_response(answer)
        headers: dict[str, str] = {}
        try:
            headers[HEADER] = await self._signer.sign_async(body)
        except Exception as exc:
            log.error("hub88_response_not_signed", route=route, error=repr(exc), exc_info=exc)
        return Response(body, status_code=200, media_type="application/json", headers=headers)


class Hub88Adapter:
    """The five Hub88 endpoints of one integration, bound to one EdgeContext. Keys are
    loaded once, here.

    ``caller``/``settings``: the integration (default: the sandbox integration named
    ``"hub88"``). ``signer``: replaces the one built from ``settings`` (tests).
    """

    def __init__(
        self, ctx: EdgeContext, caller: Caller | None = None, settings: Hub88Settings | None = None,
        *, signer: Hub88Signer | None = None,
    ) -> None:
        caller, settings = integration_of(ctx, caller, settings, PROVIDER, Hub88Settings)
        self._ctx = ctx
        self._caller = caller
        self._signer = signer if signer is not None else Hub88Signer.from_settings(ctx.settings, settings)
        self._amount_minor_max = ctx.settings.money.amount_minor_max
        self._game_codes = frozenset(settings.game_codes)
        wire = Hub88Wire(self._signer, verify=settings.verify_signatures)
        self._pipeline: Pipeline[Hub88Response] = Pipeline(ctx, caller, wire)

    def routes(self) -> list[Route]:
        """POST ``/user/info``, ``/user/balance``, ``/transaction/bet``, ``/transaction/win``,
        ``/transaction/rollback`` (mounted under ``PREFIX``)."""
        return self._pipeline.routes([
            Endpoint("/user/info", UserInfoRequest, self._info),
            Endpoint("/user/balance", BalanceRequest, self._balance),
            Endpoint("/transaction/bet", BetRequest, self._bet),
            Endpoint("/transaction/win", WinRequest, self._win),
            Endpoint("/transaction/rollback", RollbackRequest, self._rollback),
        ])

    def close(self) -> None:
        """Stop the signing thread pool."""
        self._signer.close()

    # ---- processors (decoded request -> answer) ---------------------------------------

    async def _submit(
        self, command: Debit | Credit | Rollback | Refusal[str], req: Any, origin: Origin,
        currency: str | None,
    ) -> Hub88Response:
        """Bet, win and rollback alike: answer the adapter's refusal, or submit and answer."""
        if isinstance(command, Refusal):
            return await self._pipeline.refuse(origin.route, command, req, origin=origin)
        result = await self._ctx.submit(command)
        return response_for_result(
            result, user=req.user, request_uuid=req.request_uuid,
            currency=currency if currency is not None else command.currency,
        )

    async def _bet(self, req: BetRequest, origin: Origin) -> Hub88Response:
        session = await self._ctx.sessions.get(req.token)
        command = bet_to_command(
            req, session, caller=self._caller, now_s=time.time(), amount_minor_max=self._amount_minor_max,
            origin=origin, game_codes=self._game_codes,
        )
        if isinstance(command, BalanceCheck):
            return await self._refuse_undebitable(command, req, origin)
        return await self._submit(command, req, origin, req.currency)

    async def _refuse_undebitable(self, check: BalanceCheck, req: BetRequest, origin: Origin) -> Hub88Response:
        """A stake that cannot be debited as sent: nothing is debited; "not enough money" with
        the balance when it exceeds the balance, else "wrong types" (adapter.BalanceCheck)."""
        refusal, balance_wire = balance_check_refusal(check, await self._ctx.submit(check.balance_command()))
        answer = await self._pipeline.refuse(origin.route, refusal, req, origin=origin)
        if refusal.code is Code.INSUFFICIENT_FUNDS and balance_wire is not None:
            answer.balance = balance_wire  # "please send the actual balance together with this status"
        return answer

    async def _win(self, req: WinRequest, origin: Origin) -> Hub88Response:
        session = await self._ctx.sessions.get_for_settlement(req.token, self._caller.scope)
        command = win_to_command(
            req, session, caller=self._caller, amount_minor_max=self._amount_minor_max, origin=origin,
            game_codes=self._game_codes,
        )
        return await self._submit(command, req, origin, req.currency)

    async def _rollback(self, req: RollbackRequest, origin: Origin) -> Hub88Response:
        session = await self._ctx.sessions.get_for_settlement(req.token, self._caller.scope)
        command = rollback_to_command(req, session, caller=self._caller, origin=origin)
        return await self._submit(command, req, origin, None)

    async def _balance(self, req: BalanceRequest, origin: Origin) -> Hub88Response:
        session = await self._ctx.sessions.get(req.token)
        command = balance_to_command(req, session, caller=self._caller, now_s=time.time())
        if isinstance(command, Refusal):
            return await self._pipeline.refuse(origin.route, command, req, origin=origin)
        result = await self._ctx.submit(command)
        return response_for_balance(
            result,
            user=req.user or command.player_id,
            request_uuid=req.request_uuid,
            currency=command.currency,
        )

    async def _info(self, req: UserInfoRequest, origin: Origin) -> Hub88Response:
        session = await self._ctx.sessions.get(req.token) if req.token is not None else None
        command = info_to_command(req, session, caller=self._caller, now_s=time.time())
        if isinstance(command, Refusal):
            return await self._pipeline.refuse(origin.route, command, req, origin=origin)
        result = await self._ctx.submit(command)
        return response_for_balance(
            result,
            user=req.user,
            request_uuid=req.request_uuid,
            currency=command.currency,
            info=True,
        )


def routes(ctx: EdgeContext, signer: Hub88Signer | None = None) -> Mount:
    """``Mount("/providers/hub88", ...)``: the sandbox integration's five POST routes.

    Loads the keys now (raises OSError/ValueError if they are missing or not RSA).
    """
    adapter = Hub88Adapter(ctx, signer=signer)
    return Mount(PREFIX, routes=adapter.routes(), name=PROVIDER)


Adapter = Hub88Adapter  # the name gateway/providers/mounting.py builds every adapter by
