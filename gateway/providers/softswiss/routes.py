"""SoftSwiss wallet endpoints over HTTP (Starlette): read, verify, decode, map, submit, answer.

Source: shared/specs/providers.md, SoftSwiss (transport, endpoints, signature, errors) and
shared/DESIGN.md sections 2 (edge work), 5 (idempotency), 7 (Redis) and 8 (errors).
Answers are JSON with real HTTP statuses (statuses.py): 200 with the result, 412 with
``{code, message, balance}`` for player-level refusals, 400 / 403 / 404 with ``{code,
message}`` for bad requests, 503 + ``Retry-After`` to retry. Never an HTTP 500.

Per request, in order (each refusal is recorded with ``ctx.record_refusal``, except 1):

1. ``ctx.admit("provider", "softswiss")``: over the rate limit -> 503 + Retry-After, before
   the body is read, without an audit record and without submitting anything;
2. body larger than ``server.body_bytes_max`` -> 400 (not read further);
3. ``X-REQUEST-SIGN`` over the raw body, before decoding -> 403;
4. a ``Content-Type`` other than JSON (``application/json`` or ``*/*+json``; an absent one is
   tolerated) -> 400;
5. decode (schemas.py) -> 400;
6. protocol rules (adapter.py; with the ``session_id`` lookup for bets) -> the table status;
7. ``ctx.submit(command)`` -> the table status of ``Result.code``.

``Overloaded`` / ``ShardUnavailable`` / ``SessionStoreUnavailable`` -> 503 + Retry-After; any
other exception -> logged, 503 + Retry-After (the outcome is unknown: SoftSwiss retries with
the same ``action_id``, which replays the stored outcome if there is one).
Wins, rollbacks and freespins never touch Redis (no session), so they keep working without it
(DESIGN.md section 7).
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, Final

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.edge.body import read_body_bounded
from gateway.edge.context import EdgeContext
from gateway.logs import get_logger
from gateway.providers.audit import peek_json
from gateway.providers.softswiss.adapter import (
    SCOPE,
    Refusal,
    audit_request,
    balance_answer,
    freespins_answer,
    freespins_to_command,
    needs_session,
    play_to_command,
    refusal_answer,
    retryable_answer,
    rollback_to_command,
    str_field,
    units_answer,
)
from gateway.providers.softswiss.schemas import (
    FreespinsRequest,
    PlayRequest,
    Response as Body,
    RollbackRequest,
    WrongSyntax,
    WrongTypes,
    decode_request,
    encode_response,
)
from gateway.providers.softswiss.signature import HEADER, SoftSwissSigner
from gateway.providers.softswiss.statuses import RETRYABLE_EXCEPTIONS, Status
from gateway.shards.commands import Code, GetBalance, Origin, Overloaded

log = get_logger("gateway.providers.softswiss")

#: Where the app mounts this adapter.
PREFIX: Final = "/providers/softswiss"

Answer = tuple[Status, Body]
Process = Callable[[Any, Origin], Awaitable[Answer]]


class _Retry(Exception):
    """Answer 503 with ``Retry-After: retry_after_s`` (rate limit)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("retry")
        self.retry_after_s = retry_after_s


def _json_content_type(value: str | None) -> bool:
    """True for an absent Content-Type, ``application/json`` or ``*/*+json`` (any params)."""
    if value is None:
        return True
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _now_us() -> int:
    return time.time_ns() // 1_000


class SoftSwissAdapter:
    """The three SoftSwiss endpoints bound to one EdgeContext. The key is loaded once, here."""

    def __init__(self, ctx: EdgeContext, signer: SoftSwissSigner | None = None) -> None:
        settings = ctx.settings
        self._ctx = ctx
        self._signer = signer if signer is not None else SoftSwissSigner.from_settings(settings)
        self._body_bytes_max = settings.server.body_bytes_max
        self._amount_minor_max = settings.money.amount_minor_max

    def routes(self) -> list[Route]:
        """POST ``/play``, ``/rollback``, ``/freespins`` (mounted under ``PREFIX``)."""
        return [
            Route("/play", self.play, methods=["POST"]),
            Route("/rollback", self.rollback, methods=["POST"]),
            Route("/freespins", self.freespins, methods=["POST"]),
        ]

    def close(self) -> None:
        """Nothing to release (no threads, no connections of its own)."""
        return None

    # ---- endpoints ------------------------------------------------------------------------

    async def play(self, request: Request) -> Response:
        """POST /play: a balance request (no actions) or bets and wins as one unit."""
        return await self._serve(request, "softswiss /play", PlayRequest, self._play)

    async def rollback(self, request: Request) -> Response:
        """POST /rollback: rollbacks of bets by ``original_action_id``, as one unit."""
        return await self._serve(request, "softswiss /rollback", RollbackRequest, self._rollback)

    async def freespins(self, request: Request) -> Response:
        """POST /freespins: the payout of a finished freespins issue, once per ``issue_id``."""
        return await self._serve(request, "softswiss /freespins", FreespinsRequest, self._freespins)

    # ---- pipeline -------------------------------------------------------------------------

    async def _serve(self, request: Request, route: str, request_type: type, process: Process) -> Response:
        retry_after_s = 1
        try:
            status, body = await self._answer(request, route, request_type, process)
        except _Retry as exc:
            retry_after_s = exc.retry_after_s
            status, body = retryable_answer()
        except RETRYABLE_EXCEPTIONS as exc:
            log.warning("softswiss_retryable", route=route, error=repr(exc))
            if isinstance(exc, Overloaded):
                retry_after_s = exc.retry_after_s
            status, body = retryable_answer()
        except ClientDisconnect:
            status, body = retryable_answer()
        except Exception as exc:  # noqa: BLE001 - SoftSwiss must get an answer, never a 500
            log.error("softswiss_unexpected_error", route=route, error=repr(exc), exc_info=exc)
            status, body = retryable_answer()
        headers = {"Retry-After": str(max(1, retry_after_s))} if status.http == 503 else None
        return Response(encode_response(body), status_code=status.http,
                        media_type="application/json", headers=headers)

    async def _answer(self, request: Request, route: str, request_type: type, process: Process) -> Answer:
        retry_after_s = await self._ctx.admit("provider", SCOPE)
        if retry_after_s is not None:
            raise _Retry(retry_after_s)
        body = await read_body_bounded(request, self._body_bytes_max)
        if body is None:
            refusal = Refusal.of(Code.PAYLOAD_TOO_LARGE, f"body exceeds {self._body_bytes_max} bytes")
            audit = {"body_bytes_max": self._body_bytes_max,
                     "content_length": (request.headers.get("content-length") or "")[:20]}
            return await self._refuse(route, refusal, None, audit=audit)
        if not self._signer.verify(body, request.headers.get(HEADER)):
            refusal = Refusal.of(Code.INVALID_SIGNATURE, f"bad or missing {HEADER}")
            return await self._refuse(route, refusal, peek_json(body))
        content_type = request.headers.get("content-type")
        if not _json_content_type(content_type):
            refusal = Refusal.of(Code.INVALID_REQUEST, f"content type {content_type[:64]!r} is not JSON")
            return await self._refuse(route, refusal, peek_json(body))
        try:
            req = decode_request(body, request_type)
        except WrongTypes as exc:
            return await self._refuse(route, Refusal.of(Code.INVALID_REQUEST, f"wrong types: {exc}"),
                                      peek_json(body))
        except WrongSyntax as exc:
            return await self._refuse(route, Refusal.of(Code.INVALID_REQUEST, f"not JSON: {exc}"), None)
        return await process(req, self._ctx.origin(route))

    async def _refuse(self, route: str, refusal: Refusal, source: object, *,
                      origin: Origin | None = None, audit: dict | None = None) -> Answer:
        """Record an adapter-decided refusal in the audit chain and build its answer."""
        try:
            await self._ctx.record_refusal(
                scope=SCOPE,
                code=refusal.code,
                detail=refusal.detail,
                origin=origin if origin is not None else self._ctx.origin(route),
                request=audit if audit is not None else audit_request(source),
                player_id=str_field(source, "user_id"),
            )
        except Exception as exc:  # noqa: BLE001 - failing to audit a refusal must not fail the answer
            log.error("softswiss_refusal_not_audited", route=route, error=repr(exc), exc_info=exc)
        return refusal_answer(refusal)

    # ---- processors (decoded request -> answer) ---------------------------------------------

    async def _play(self, req: PlayRequest, origin: Origin) -> Answer:
        session = await self._ctx.sessions.get(req.session_id) if needs_session(req) else None
        command = play_to_command(req, session, now_s=time.time(),
                                  amount_minor_max=self._amount_minor_max, origin=origin)
        if isinstance(command, Refusal):
            return await self._refuse(origin.route, command, req, origin=origin)
        result = await self._ctx.submit(command)
        if isinstance(command, GetBalance):
            return balance_answer(result, currency=req.currency, game_id=req.game_id)
        return units_answer(result, action_ids=[a.action_id for a in req.actions],
                            game_id=req.game_id, now_us=_now_us())

    async def _rollback(self, req: RollbackRequest, origin: Origin) -> Answer:
        command = rollback_to_command(req, origin=origin)
        if isinstance(command, Refusal):
            return await self._refuse(origin.route, command, req, origin=origin)
        result = await self._ctx.submit(command)
        return units_answer(result, action_ids=[a.action_id for a in req.actions],
                            game_id=req.game_id, now_us=_now_us())

    async def _freespins(self, req: FreespinsRequest, origin: Origin) -> Answer:
        command = freespins_to_command(req, amount_minor_max=self._amount_minor_max, origin=origin)
        if isinstance(command, Refusal):
            return await self._refuse(origin.route, command, req, origin=origin)
        result = await self._ctx.submit(command)
        return freespins_answer(result, issue_id=req.issue_id, now_us=_now_us())

