"""Evolution One Wallet endpoints over HTTP (Starlette): limit, read, authenticate, decode,
map, submit, encode.

Source: shared/specs/providers.md, "Evolution" (transport, endpoints, ``authToken``,
statuses, ``/check`` rotation) and "Common ground"; shared/DESIGN.md sections 2 (edge work),
5 (idempotency), 7 (Redis) and 8 (errors). Every answer is HTTP 200 with a JSON body and an
Evolution ``status`` -- also refusals, also when something unexpected broke (then
``TEMPORARY_ERROR``, Evolution's retryable status, and a log line). Never an HTTP 500.

Per request, in order (each refusal from step 2 on is recorded with ``ctx.record_refusal``):

1. ``ctx.admit("provider", "evolution")``: limited -> ``TEMPORARY_ERROR`` at once, body not
   read, no audit (docs/PROVIDERS.md, "Rate limit first");
2. body larger than ``server.body_bytes_max`` -> ``INVALID_PARAMETER`` (not read further);
3. ``authToken`` query parameter (``auth.py``) -> ``INVALID_TOKEN_ID``;
4. ``Content-Type`` not ``application/json`` -> ``INVALID_PARAMETER``;
5. decode (``schemas.py``) -> ``INVALID_PARAMETER``;
6. sid, currency and amount rules (``adapter.py``) -> the table status of the refusal code;
7. ``ctx.submit(command)`` -> the table status of ``Result.code``;
   ``Overloaded`` / ``ShardUnavailable`` / ``SessionStoreUnavailable`` -> ``TEMPORARY_ERROR``.

Credits, cancels and promo payouts do not need Redis: if the session store is down they
proceed without the sid (``userId`` names the player), per DESIGN.md section 7.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any, Awaitable, Callable, Final

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.edge.body import read_body_bounded
from gateway.edge.context import EdgeContext
from gateway.providers.audit import peek_json
from gateway.providers.evolution.adapter import (
    SCOPE,
    Refusal,
    audit_request,
    balance_to_command,
    cancel_to_command,
    check_request,
    credit_to_command,
    debit_to_command,
    player_id_of,
    promo_to_command,
    request_id_for,
    response_for_balance,
    response_for_new_sid,
    response_for_refusal,
    response_for_result,
    str_field,
)
from gateway.providers.evolution.auth import PARAM, AuthTokenCheck
from gateway.providers.evolution.schemas import (
    BadRequest,
    BalanceRequest,
    CancelRequest,
    CheckRequest,
    CreditRequest,
    DebitRequest,
    EvolutionResponse,
    PromoPayoutRequest,
    Response as EvolutionAnswer,
    decode_request,
    encode_response,
)
from gateway.providers.evolution.statuses import RETRYABLE_EXCEPTIONS, RETRYABLE_STATUS
from gateway.shards.commands import Code, Command, Origin

log = logging.getLogger("gateway.providers.evolution")

#: Where the app mounts this adapter.
PREFIX: Final = "/providers/evolution"

#: The only body type Evolution sends (providers.md: "POST JSON").
JSON_MEDIA_TYPE: Final = "application/json"

Process = Callable[[Any, Origin], Awaitable[EvolutionAnswer]]

_peek_decoder: Final = msgspec.json.Decoder(float_hook=Decimal)  # audit: numbers as Decimal


def _is_json(content_type: str | None) -> bool:
    """``application/json``, with or without parameters (``; charset=utf-8``)."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == JSON_MEDIA_TYPE


class EvolutionAdapter:
    """The seven Evolution endpoints bound to one EdgeContext. The key is loaded once, here."""

    def __init__(self, ctx: EdgeContext) -> None:
        settings = ctx.settings
        self._ctx = ctx
        self._auth = AuthTokenCheck(settings.providers.evolution.auth_token)
        self._body_bytes_max = settings.server.body_bytes_max
        self._amount_minor_max = settings.money.amount_minor_max

    def routes(self) -> list[Route]:
        """POST ``/check``, ``/sid``, ``/balance``, ``/debit``, ``/credit``, ``/cancel``,
        ``/promo_payout`` (mounted under ``PREFIX``)."""
        return [
            Route("/check", self.check, methods=["POST"]),
            Route("/sid", self.sid, methods=["POST"]),
            Route("/balance", self.balance, methods=["POST"]),
            Route("/debit", self.debit, methods=["POST"]),
            Route("/credit", self.credit, methods=["POST"]),
            Route("/cancel", self.cancel, methods=["POST"]),
            Route("/promo_payout", self.promo_payout, methods=["POST"]),
        ]

    def close(self) -> None:
        """Nothing to release (no thread pool, no key material beyond a string)."""
        return None

    # ---- endpoints ----------------------------------------------------------------------

    async def check(self, request: Request) -> Response:
        return await self._serve(request, "evolution /check", CheckRequest, self._check)

    async def sid(self, request: Request) -> Response:
        return await self._serve(request, "evolution /sid", CheckRequest, self._check)

    async def balance(self, request: Request) -> Response:
        return await self._serve(request, "evolution /balance", BalanceRequest, self._balance)

    async def debit(self, request: Request) -> Response:
        return await self._serve(request, "evolution /debit", DebitRequest, self._debit)

    async def credit(self, request: Request) -> Response:
        return await self._serve(request, "evolution /credit", CreditRequest, self._credit)

    async def cancel(self, request: Request) -> Response:
        return await self._serve(request, "evolution /cancel", CancelRequest, self._cancel)

    async def promo_payout(self, request: Request) -> Response:
        return await self._serve(
            request, "evolution /promo_payout", PromoPayoutRequest, self._promo
        )

    # ---- pipeline -------------------------------------------------------------------------

    async def _serve(
        self, request: Request, route: str, request_type: type, process: Process
    ) -> Response:
        try:
            answer = await self._answer(request, route, request_type, process)
        except ClientDisconnect:
            answer = EvolutionResponse(status=RETRYABLE_STATUS)
        except Exception:  # noqa: BLE001 - Evolution must get a status, never an HTTP 500
            log.exception("evolution: unexpected error on %s", route)
            answer = EvolutionResponse(status=RETRYABLE_STATUS)
        return Response(encode_response(answer), status_code=200, media_type=JSON_MEDIA_TYPE)

    async def _answer(
        self, request: Request, route: str, request_type: type, process: Process
    ) -> EvolutionAnswer:
        if await self._ctx.admit("provider", SCOPE) is not None:
            return EvolutionResponse(status=RETRYABLE_STATUS)
        body = await read_body_bounded(request, self._body_bytes_max)
        if body is None:
            refusal = Refusal.of(
                Code.PAYLOAD_TOO_LARGE, f"body exceeds {self._body_bytes_max} bytes"
            )
            audit = {
                "body_bytes_max": self._body_bytes_max,
                "content_length": (request.headers.get("content-length") or "")[:20],
            }
            return await self._refuse(route, refusal, None, audit=audit)
        if not self._auth.verify(request.query_params.getlist(PARAM)):
            refusal = Refusal.of(Code.UNAUTHORIZED, f"wrong or missing {PARAM}")
            return await self._refuse(route, refusal, peek_json(body, _peek_decoder))
        content_type = request.headers.get("content-type")
        if not _is_json(content_type):
            refusal = Refusal.of(
                Code.INVALID_REQUEST, f"content type {(content_type or '')[:64]!r} is not JSON"
            )
            return await self._refuse(route, refusal, peek_json(body, _peek_decoder))
        try:
            req = decode_request(body, request_type)
        except BadRequest as exc:
            refusal = Refusal.of(Code.INVALID_REQUEST, f"bad request: {exc}")
            return await self._refuse(route, refusal, peek_json(body, _peek_decoder))
        origin = self._ctx.origin(route, request_id_for(req))
        try:
            return await process(req, origin)
        except RETRYABLE_EXCEPTIONS as exc:
            log.warning("evolution: retryable failure on %s: %r", route, exc)
            return EvolutionResponse(status=RETRYABLE_STATUS, uuid=req.uuid)

    async def _refuse(
        self,
        route: str,
        refusal: Refusal,
        source: object,
        *,
        origin: Origin | None = None,
        audit: dict | None = None,
    ) -> EvolutionResponse:
        """Record an adapter-decided refusal in the audit chain and build its answer."""
        uuid = str_field(source, "uuid")
        if origin is None:
            origin = self._ctx.origin(route, uuid)
        try:
            await self._ctx.record_refusal(
                scope=SCOPE,
                code=refusal.code,
                detail=refusal.detail,
                origin=origin,
                request=audit if audit is not None else audit_request(source),
                player_id=player_id_of(source),
            )
        except Exception:  # noqa: BLE001 - failing to audit a refusal must not fail the answer
            log.exception("evolution: could not record a refusal on %s", route)
        return response_for_refusal(refusal, uuid=uuid)

    async def _submit(
        self, command: Command | Refusal, req, origin: Origin, *, cancel: bool = False
    ) -> EvolutionResponse:
        """Debit, credit, cancel and promo alike: answer the adapter's refusal, or submit."""
        if isinstance(command, Refusal):
            return await self._refuse(origin.route, command, req, origin=origin)
        result = await self._ctx.submit(command)
        return response_for_result(result, uuid=req.uuid, cancel=cancel)

    # ---- processors (decoded request -> answer) -----------------------------------------

    async def _check(self, req: CheckRequest, origin: Origin) -> EvolutionAnswer:
        """``/check`` and ``/sid``: validate the live sid of ``userId`` and rotate it."""
        session = await self._ctx.sessions.get(req.sid)
        refusal = check_request(req, session, now_s=time.time())
        if refusal is not None:
            return await self._refuse(origin.route, refusal, req, origin=origin)
        new = await self._ctx.sessions.rotate(req.sid)
        if new is None:  # another /check rotated it between our read and our write
            refusal = Refusal.of(Code.INVALID_TOKEN, "sid was replaced concurrently")
            return await self._refuse(origin.route, refusal, req, origin=origin)
        return response_for_new_sid(new, uuid=req.uuid)

    async def _balance(self, req: BalanceRequest, origin: Origin) -> EvolutionAnswer:
        session = await self._ctx.sessions.get(req.sid)
        command = balance_to_command(req, session, now_s=time.time())
        if isinstance(command, Refusal):
            return await self._refuse(origin.route, command, req, origin=origin)
        result = await self._ctx.submit(command)
        assert command.currency is not None
        return response_for_balance(result, uuid=req.uuid, currency=command.currency)

    async def _debit(self, req: DebitRequest, origin: Origin) -> EvolutionAnswer:
        session = await self._ctx.sessions.get(req.sid)
        command = debit_to_command(
            req, session, now_s=time.time(), amount_minor_max=self._amount_minor_max,
            origin=origin,
        )
        return await self._submit(command, req, origin)

    async def _credit(self, req: CreditRequest, origin: Origin) -> EvolutionAnswer:
        session = await self._ctx.sessions.get_for_settlement(req.sid, SCOPE)
        command = credit_to_command(
            req, session, amount_minor_max=self._amount_minor_max, origin=origin
        )
        return await self._submit(command, req, origin)

    async def _cancel(self, req: CancelRequest, origin: Origin) -> EvolutionAnswer:
        session = await self._ctx.sessions.get_for_settlement(req.sid, SCOPE)
        command = cancel_to_command(
            req, session, amount_minor_max=self._amount_minor_max, origin=origin
        )
        return await self._submit(command, req, origin, cancel=True)

    async def _promo(self, req: PromoPayoutRequest, origin: Origin) -> EvolutionAnswer:
        session = await self._ctx.sessions.get_for_settlement(req.sid, SCOPE)
        command = promo_to_command(
            req, session, amount_minor_max=self._amount_minor_max, origin=origin
        )
        return await self._submit(command, req, origin)
