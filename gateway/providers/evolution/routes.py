"""Evolution One Wallet endpoints over HTTP: the seven routes and Evolution's hooks into the
shared pipeline.

Source: gateway/providers/evolution/README.md ("Protocol facts": transport, endpoints,
``authToken``, statuses, ``/check`` rotation, "Common ground"); docs/DESIGN.md sections 2
(edge work), 5 (idempotency), 7 (Redis) and 8 (errors). Every answer is HTTP 200 with a JSON
body and an Evolution ``status`` -- also refusals, also when something unexpected broke
(then ``TEMPORARY_ERROR``, Evolution's retryable status, and a log line). Never an HTTP 500.

Per request, in order (``gateway/providers/pipeline.py``; each refusal from step 2 on is
recorded with ``ctx.record_refusal``):

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
proceed without the sid (``userId`` names the player), per docs/DESIGN.md section 7.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.edge.context import EdgeContext
from gateway.providers.evolution.adapter import (
    SCOPE,
    audit_request,
    balance_to_command,
    cancel_to_command,
    check_request,
    credit_to_command,
    debit_to_command,
    player_id_of,
    promo_to_command,
    refusal_of,
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
    decode_request,
    encode_response,
)
from gateway.providers.evolution.schemas import (
    Response as EvolutionAnswer,
)
from gateway.providers.evolution.statuses import RETRYABLE_EXCEPTIONS, RETRYABLE_STATUS
from gateway.providers.pipeline import Endpoint, Pipeline, Rejected
from gateway.providers.refusal import Refusal, peek_json
from gateway.shards.commands import Code, Command, Origin

#: Where the app mounts this adapter.
PREFIX: Final = "/providers/evolution"

#: The only body type Evolution sends (README.md, "Protocol facts": POST JSON).
JSON_MEDIA_TYPE: Final = "application/json"

_peek_decoder: Final = msgspec.json.Decoder(float_hook=Decimal)  # audit: numbers as Decimal


def _is_json(content_type: str | None) -> bool:
    """``application/json``, with or without parameters (``; charset=utf-8``)."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == JSON_MEDIA_TYPE


class EvolutionWire:
    """Evolution's hooks into ``Pipeline`` (``pipeline.WireProtocol[EvolutionAnswer]``): the
    API key in the ``authToken`` query parameter, JSON bodies, HTTP 200 with a ``status``."""

    scope = SCOPE
    retryable_exceptions = RETRYABLE_EXCEPTIONS

    def __init__(self, auth: AuthTokenCheck) -> None:
        self._auth = auth

    def retryable(self, request: Any | None) -> EvolutionAnswer:
        """``TEMPORARY_ERROR``, echoing the request's ``uuid`` when decoded."""
        if request is None:
            return EvolutionResponse(status=RETRYABLE_STATUS)
        return EvolutionResponse(status=RETRYABLE_STATUS, uuid=request.uuid)

    def too_large(self, detail: str) -> Refusal[str]:
        return refusal_of(Code.PAYLOAD_TOO_LARGE, detail)

    def precheck(self, request: Request) -> Rejected | None:
        """Nothing to check before the body (the body is audited on an auth failure)."""
        return None

    def authenticate(self, request: Request, body: bytes) -> bytes | Rejected:
        """``authToken`` (constant time), then the JSON content type."""
        if not self._auth.verify(request.query_params.getlist(PARAM)):
            refusal = refusal_of(Code.UNAUTHORIZED, f"wrong or missing {PARAM}")
            return Rejected(refusal, peek_json(body, _peek_decoder))
        content_type = request.headers.get("content-type")
        if not _is_json(content_type):
            refusal = refusal_of(
                Code.INVALID_REQUEST, f"content type {(content_type or '')[:64]!r} is not JSON"
            )
            return Rejected(refusal, peek_json(body, _peek_decoder))
        return body

    def decode(self, payload: bytes, request_type: type) -> Any:
        try:
            return decode_request(payload, request_type)
        except BadRequest as exc:
            refusal = refusal_of(Code.INVALID_REQUEST, f"bad request: {exc}")
            return Rejected(refusal, peek_json(payload, _peek_decoder))

    def request_id(self, request: Any) -> str | None:
        """``uuid`` plus Evolution's raw transaction ids (``adapter.request_id_for``)."""
        return request_id_for(request)

    def refusal_request_id(self, source: object) -> str | None:
        return str_field(source, "uuid")

    def audit_request(self, source: object) -> dict:
        return audit_request(source)

    def audit_player(self, source: object) -> str | None:
        return player_id_of(source)

    def refusal_answer(self, refusal: Refusal[Any], source: object) -> EvolutionAnswer:
        return response_for_refusal(refusal, uuid=str_field(source, "uuid"))

    async def respond(self, answer: EvolutionAnswer, route: str, retry_after_s: int) -> Response:
        """HTTP 200, JSON."""
        return Response(encode_response(answer), status_code=200, media_type=JSON_MEDIA_TYPE)


class EvolutionAdapter:
    """The seven Evolution endpoints bound to one EdgeContext. The key is loaded once, here."""

    def __init__(self, ctx: EdgeContext) -> None:
        settings = ctx.settings
        self._ctx = ctx
        self._amount_minor_max = settings.money.amount_minor_max
        wire = EvolutionWire(AuthTokenCheck(settings.providers.evolution.auth_token))
        self._pipeline: Pipeline[EvolutionAnswer] = Pipeline(ctx, wire)

    def routes(self) -> list[Route]:
        """POST ``/check``, ``/sid``, ``/balance``, ``/debit``, ``/credit``, ``/cancel``,
        ``/promo_payout`` (mounted under ``PREFIX``)."""
        return self._pipeline.routes([
            Endpoint("/check", CheckRequest, self._check),
            Endpoint("/sid", CheckRequest, self._check),
            Endpoint("/balance", BalanceRequest, self._balance),
            Endpoint("/debit", DebitRequest, self._debit),
            Endpoint("/credit", CreditRequest, self._credit),
            Endpoint("/cancel", CancelRequest, self._cancel),
            Endpoint("/promo_payout", PromoPayoutRequest, self._promo),
        ])

    def close(self) -> None:
        """Nothing to release (no thread pool, no key material beyond a string)."""
        return

    async def _refuse(self, refusal: Refusal[str], req: Any, origin: Origin) -> EvolutionAnswer:
        return await self._pipeline.refuse(origin.route, refusal, req, origin=origin)

    async def _submit(
        self, command: Command | Refusal[str], req: Any, origin: Origin, *, cancel: bool = False
    ) -> EvolutionAnswer:
        """Debit, credit, cancel and promo alike: answer the adapter's refusal, or submit."""
        if isinstance(command, Refusal):
            return await self._refuse(command, req, origin)
        result = await self._ctx.submit(command)
        return response_for_result(result, uuid=req.uuid, cancel=cancel)

    # ---- processors (decoded request -> answer) -----------------------------------------

    async def _check(self, req: CheckRequest, origin: Origin) -> EvolutionAnswer:
        """``/check`` and ``/sid``: validate the live sid of ``userId`` and rotate it."""
        session = await self._ctx.sessions.get(req.sid)
        refusal = check_request(req, session, now_s=time.time())
        if refusal is not None:
            return await self._refuse(refusal, req, origin)
        new = await self._ctx.sessions.rotate(req.sid)
        if new is None:  # another /check rotated it between our read and our write
            refusal = refusal_of(Code.INVALID_TOKEN, "sid was replaced concurrently")
            return await self._refuse(refusal, req, origin)
        return response_for_new_sid(new, uuid=req.uuid)

    async def _balance(self, req: BalanceRequest, origin: Origin) -> EvolutionAnswer:
        session = await self._ctx.sessions.get(req.sid)
        command = balance_to_command(req, session, now_s=time.time())
        if isinstance(command, Refusal):
            return await self._refuse(command, req, origin)
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
