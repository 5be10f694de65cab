"""Hub88 wallet endpoints over HTTP (Starlette): read, verify, decode, map, submit, sign.

Source: shared/specs/providers.md, Hub88 (transport, endpoints, signature, statuses) and
shared/DESIGN.md sections 2 (edge work), 5 (idempotency) and 8 (errors). Every answer is
HTTP 200 with a JSON body and a Hub88 ``status``, signed with the operator key in
``X-Hub88-Signature`` -- also refusals, also when something unexpected broke (then
``RS_ERROR_UNKNOWN``, which Hub88 treats as retryable). Never an HTTP 500.

Per request, in order (each refusal is recorded with ``ctx.record_refusal``):

1. body larger than ``server.body_bytes_max`` -> ``RS_ERROR_WRONG_SYNTAX`` (not read further);
2. signature over the raw body (if ``providers.hub88.verify_signatures``) ->
   ``RS_ERROR_INVALID_SIGNATURE``;
3. decode -> ``RS_ERROR_WRONG_SYNTAX`` (not JSON) / ``RS_ERROR_WRONG_TYPES`` (fields);
4. token and amount rules (``adapter.py``) -> the table status of the refusal code;
5. ``ctx.submit(command)`` -> the table status of ``Result.code``;
   ``Overloaded`` / ``ShardUnavailable`` / ``SessionStoreUnavailable`` -> ``RS_ERROR_UNKNOWN``.

Wins and rollbacks do not need Redis: if the session store is down they proceed without
the token (``user`` names the player), per DESIGN.md section 7.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable, Final

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from gateway.edge.body import read_body_bounded
from gateway.edge.context import EdgeContext
from gateway.providers.audit import peek_json
from gateway.providers.hub88.adapter import (
    SCOPE,
    Refusal,
    audit_request,
    balance_to_command,
    bet_to_command,
    info_to_command,
    response_for_balance,
    response_for_refusal,
    response_for_result,
    rollback_to_command,
    str_field,
    win_to_command,
)
from gateway.providers.hub88.schemas import (
    BalanceRequest,
    BetRequest,
    Hub88Response,
    RollbackRequest,
    UserInfoRequest,
    WinRequest,
    WrongSyntax,
    WrongTypes,
    decode_request,
    encode_response,
)
from gateway.providers.hub88.signature import HEADER, Hub88Signer
from gateway.providers.hub88.statuses import RETRYABLE_EXCEPTIONS, RETRYABLE_STATUS
from gateway.shards.commands import Code, Command, Origin

log = logging.getLogger("gateway.providers.hub88")

#: Where the app mounts this adapter.
PREFIX: Final = "/providers/hub88"

Process = Callable[[Any, Origin], Awaitable[Hub88Response]]


class Hub88Adapter:
    """The five Hub88 endpoints bound to one EdgeContext. Keys are loaded once, here."""

    def __init__(self, ctx: EdgeContext, signer: Hub88Signer | None = None) -> None:
        settings = ctx.settings
        self._ctx = ctx
        self._signer = signer if signer is not None else Hub88Signer.from_settings(settings)
        self._verify = settings.providers.hub88.verify_signatures
        self._body_bytes_max = settings.server.body_bytes_max
        self._amount_minor_max = settings.money.amount_minor_max

    def routes(self) -> list[Route]:
        return [
            Route("/user/info", self.user_info, methods=["POST"]),
            Route("/user/balance", self.user_balance, methods=["POST"]),
            Route("/transaction/bet", self.bet, methods=["POST"]),
            Route("/transaction/win", self.win, methods=["POST"]),
            Route("/transaction/rollback", self.rollback, methods=["POST"]),
        ]

    def close(self) -> None:
        self._signer.close()

    # ---- endpoints --------------------------------------------------------------------

    async def user_info(self, request: Request) -> Response:
        return await self._serve(request, "hub88 /user/info", UserInfoRequest, self._info)

    async def user_balance(self, request: Request) -> Response:
        return await self._serve(request, "hub88 /user/balance", BalanceRequest, self._balance)

    async def bet(self, request: Request) -> Response:
        return await self._serve(request, "hub88 /transaction/bet", BetRequest, self._bet)

    async def win(self, request: Request) -> Response:
        return await self._serve(request, "hub88 /transaction/win", WinRequest, self._win)

    async def rollback(self, request: Request) -> Response:
        return await self._serve(
            request, "hub88 /transaction/rollback", RollbackRequest, self._rollback
        )

    # ---- pipeline ---------------------------------------------------------------------

    async def _serve(
        self, request: Request, route: str, request_type: type, process: Process
    ) -> Response:
        try:
            answer = await self._answer(request, route, request_type, process)
        except ClientDisconnect:
            answer = Hub88Response(status=RETRYABLE_STATUS)
        except Exception:  # noqa: BLE001 - Hub88 must get a status, never an HTTP 500
            log.exception("hub88: unexpected error on %s", route)
            answer = Hub88Response(status=RETRYABLE_STATUS)
        body = encode_response(answer)
        headers: dict[str, str] = {}
        try:
            headers[HEADER] = await self._signer.sign_async(body)
        except Exception:  # noqa: BLE001
            log.exception("hub88: could not sign the response on %s", route)
        return Response(body, status_code=200, media_type="application/json", headers=headers)

    async def _answer(
        self, request: Request, route: str, request_type: type, process: Process
    ) -> Hub88Response:
        # Rate limit first (gateway/edge/ratelimit.py, docs/PROVIDERS.md): over the limit ->
        # RS_ERROR_UNKNOWN, Hub88's retryable status (shared/specs/providers.md, Hub88
        # "Statuses"), before the body is read and without an audit record.
        if await self._ctx.admit("provider", SCOPE) is not None:
            return Hub88Response(status=RETRYABLE_STATUS)
        body = await read_body_bounded(request, self._body_bytes_max)
        if body is None:
            refusal = Refusal.syntax(f"body exceeds {self._body_bytes_max} bytes")
            audit = {
                "body_bytes_max": self._body_bytes_max,
                "content_length": (request.headers.get("content-length") or "")[:20],
            }
            return await self._refuse(route, refusal, None, audit=audit)
        if self._verify and not self._signer.verify(body, request.headers.get(HEADER)):
            refusal = Refusal.of(Code.INVALID_SIGNATURE, f"bad or missing {HEADER}")
            return await self._refuse(route, refusal, peek_json(body))
        try:
            req = decode_request(body, request_type)
        except WrongTypes as exc:
            refusal = Refusal.of(Code.INVALID_REQUEST, f"wrong types: {exc}")
            return await self._refuse(route, refusal, peek_json(body))
        except WrongSyntax as exc:
            return await self._refuse(route, Refusal.syntax(f"not JSON: {exc}"), None)
        origin = self._ctx.origin(route, req.request_uuid)
        try:
            return await process(req, origin)
        except RETRYABLE_EXCEPTIONS as exc:
            log.warning("hub88: retryable failure on %s: %r", route, exc)
            return Hub88Response(
                user=str_field(req, "user"), status=RETRYABLE_STATUS, request_uuid=req.request_uuid
            )

    async def _refuse(
        self,
        route: str,
        refusal: Refusal,
        source: object,
        *,
        origin: Origin | None = None,
        audit: dict | None = None,
        currency: str | None = None,
    ) -> Hub88Response:
        """Record an adapter-decided refusal in the audit chain and build its answer."""
        user = str_field(source, "user")
        request_uuid = str_field(source, "request_uuid")
        if origin is None:
            origin = self._ctx.origin(route, request_uuid)
        try:
            await self._ctx.record_refusal(
                scope=SCOPE,
                code=refusal.code,
                detail=refusal.detail,
                origin=origin,
                request=audit if audit is not None else audit_request(source),
                player_id=user,
            )
        except Exception:  # noqa: BLE001 - failing to audit a refusal must not fail the answer
            log.exception("hub88: could not record a refusal on %s", route)
        return response_for_refusal(
            refusal, user=user, request_uuid=request_uuid, currency=currency
        )

    # ---- processors (decoded request -> answer) ---------------------------------------

    async def _submit_money(
        self, command: Command | Refusal, req, origin: Origin, refusal_currency: str | None
    ) -> Hub88Response:
        """Bet, win and rollback alike: answer the adapter's refusal, or submit and answer."""
        if isinstance(command, Refusal):
            if refusal_currency is None:
                return await self._refuse(origin.route, command, req, origin=origin)
            return await self._refuse(origin.route, command, req, origin=origin, currency=refusal_currency)
        result = await self._ctx.submit(command)
        currency = refusal_currency if refusal_currency is not None else command.currency
        return response_for_result(
            result, user=req.user, request_uuid=req.request_uuid, currency=currency
        )

    async def _bet(self, req: BetRequest, origin: Origin) -> Hub88Response:
        session = await self._ctx.sessions.get(req.token)
        command = bet_to_command(
            req, session, now_s=time.time(), amount_minor_max=self._amount_minor_max, origin=origin
        )
        return await self._submit_money(command, req, origin, req.currency)

    async def _win(self, req: WinRequest, origin: Origin) -> Hub88Response:
        session = await self._ctx.sessions.get_for_settlement(req.token, SCOPE)
        command = win_to_command(
            req, session, amount_minor_max=self._amount_minor_max, origin=origin
        )
        return await self._submit_money(command, req, origin, req.currency)

    async def _rollback(self, req: RollbackRequest, origin: Origin) -> Hub88Response:
        session = await self._ctx.sessions.get_for_settlement(req.token, SCOPE)
        command = rollback_to_command(req, session, origin=origin)
        return await self._submit_money(command, req, origin, None)

    async def _balance(self, req: BalanceRequest, origin: Origin) -> Hub88Response:
        session = await self._ctx.sessions.get(req.token)
        command = balance_to_command(req, session, now_s=time.time())
        if isinstance(command, Refusal):
            return await self._refuse(origin.route, command, req, origin=origin)
        result = await self._ctx.submit(command)
        return response_for_balance(
            result,
            user=req.user or command.player_id,
            request_uuid=req.request_uuid,
            currency=command.currency,
        )

    async def _info(self, req: UserInfoRequest, origin: Origin) -> Hub88Response:
        session = await self._ctx.sessions.get(req.token) if req.token is not None else None
        command = info_to_command(req, session, now_s=time.time())
        if isinstance(command, Refusal):
            return await self._refuse(origin.route, command, req, origin=origin)
        result = await self._ctx.submit(command)
        return response_for_balance(
            result,
            user=req.user,
            request_uuid=req.request_uuid,
            currency=command.currency,
            info=True,
        )


def routes(ctx: EdgeContext, signer: Hub88Signer | None = None) -> Mount:
    """``Mount("/providers/hub88", ...)`` with the five POST routes; add it to the app's routes.

    Loads the keys now (raises OSError/ValueError if they are missing or not RSA).
    """
    adapter = Hub88Adapter(ctx, signer)
    return Mount(PREFIX, routes=adapter.routes(), name="hub88")
