"""SoftSwiss wallet endpoints over HTTP: the three routes and SoftSwiss's hooks into the
shared pipeline, for one integration (``[integrations.<name>]``, mounted at
``/providers/<name>/`` by gateway/providers/mounting.py).

Source: gateway/providers/softswiss/README.md ("Protocol facts": transport, endpoints,
signature, errors) and docs/DESIGN.md sections 2 (edge work), 5 (idempotency), 7 (Redis) and
8 (errors). Answers are JSON with real HTTP statuses (statuses.py): 200 with the result, 412
with ``{code: 100, message, balance}`` for insufficient funds, 400 / 403 / 404 with ``{code,
message[, balance]}`` for the other refusals, 503 + ``Retry-After`` to retry. Never an HTTP
500.

Per request, in order (``gateway/providers/pipeline.py``; each refusal is recorded with
``ctx.record_refusal``, except 1):

1. ``ctx.admit("provider", <integration name>)``: over the rate limit -> 503 + Retry-After, before
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
Everything is submitted for the integration's partner, in its scope (``Caller``): a
``session_id`` of another integration or partner is refused like an unknown one.
Wins, rollbacks and freespins never touch Redis (no session), so they keep working without it
(docs/DESIGN.md section 7).
"""

from __future__ import annotations

import time
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.edge.context import EdgeContext
from gateway.logs import get_logger
from gateway.providers.integration import Caller
from gateway.providers.pipeline import Endpoint, Pipeline, Rejected, integration_of
from gateway.providers.refusal import Refusal, peek_json
from gateway.providers.softswiss.adapter import (
    PROVIDER,
    audit_request,
    balance_answer,
    freespins_answer,
    freespins_to_command,
    given,
    needs_session,
    play_to_command,
    refusal_answer,
    refusal_of,
    retryable_answer,
    rollback_to_command,
    str_field,
    units_answer,
)
from gateway.providers.softswiss.schemas import (
    FreespinsRequest,
    PlayRequest,
    RollbackRequest,
    WrongSyntax,
    WrongTypes,
    decode_request,
    encode_response,
)
from gateway.providers.softswiss.schemas import (
    Response as Body,
)
from gateway.providers.softswiss.settings import FREESPINS_NOTICE, SoftSwissSettings
from gateway.providers.softswiss.signature import HEADER, SoftSwissSigner
from gateway.providers.softswiss.statuses import RETRYABLE_EXCEPTIONS, Status
from gateway.shards.commands import Atomic, Code, Credit, GetBalance, Origin

#: Where the sandbox integration (named after the provider) is mounted.
PREFIX: Final = "/providers/softswiss"

log = get_logger("gateway.providers.softswiss")

#: One SoftSwiss answer before encoding: (HTTP status, code and message; the JSON body).
Answer = tuple[Status, Body]


def _json_content_type(value: str | None) -> bool:
    """True for an absent Content-Type, ``application/json`` or ``*/*+json`` (any params)."""
    if value is None:
        return True
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _now_us() -> int:
    return time.time_ns() // 1_000


class SoftSwissWire:
    """SoftSwiss's hooks into ``Pipeline`` (``pipeline.WireProtocol[Answer]``): an HMAC
    ``X-REQUEST-SIGN`` over the raw body, JSON bodies, real HTTP statuses."""

    retryable_exceptions = RETRYABLE_EXCEPTIONS

    def __init__(self, signer: SoftSwissSigner) -> None:
        self._signer = signer

    def retryable(self, request: Any | None) -> Answer:
        """503 / 503 (``respond`` adds ``Retry-After``)."""
        return retryable_answer()

    def too_large(self, detail: str) -> Refusal[Status]:
        return refusal_of(Code.PAYLOAD_TOO_LARGE, detail)

    def precheck(self, request: Request) -> Rejected | None:
        """Nothing to check before the body (the signature covers the body)."""
        return None

    def authenticate(self, request: Request, body: bytes) -> bytes | Rejected:
        """``X-REQUEST-SIGN`` over the raw body (403), then a JSON content type (400)."""
        if not self._signer.verify(body, request.headers.get(HEADER)):
            return Rejected(refusal_of(Code.INVALID_SIGNATURE, f"bad or missing {HEADER}"), peek_json(body))
        content_type = request.headers.get("content-type")
        if not _json_content_type(content_type):
            assert content_type is not None  # an absent one is JSON
            refusal = refusal_of(Code.INVALID_REQUEST, f"content type {content_type[:64]!r} is not JSON")
            return Rejected(refusal, peek_json(body))
        return body

    def decode(self, payload: bytes, request_type: type) -> Any:
        try:
            return decode_request(payload, request_type)
        except WrongTypes as exc:
            return Rejected(refusal_of(Code.INVALID_REQUEST, f"wrong types: {exc}"), peek_json(payload))
        except WrongSyntax as exc:
            return Rejected(refusal_of(Code.INVALID_REQUEST, f"not JSON: {exc}"))

    def request_id(self, request: Any) -> str | None:
        """SoftSwiss sends no request id: the edge makes one."""
        return None

    def refusal_request_id(self, source: object) -> str | None:
        return None

    def audit_request(self, source: object) -> dict:
        return audit_request(source)

    def audit_player(self, source: object) -> str | None:
        return str_field(source, "user_id")

    def refusal_answer(self, refusal: Refusal[Any], source: object) -> Answer:
        return refusal_answer(refusal)

    async def respond(self, answer: Answer, route: str, retry_after_s: int) -> Response:
        """The answer's HTTP status, JSON; a 503 carries ``Retry-After`` (>= 1 s)."""
        status, body = answer
        headers = {"Retry-After": str(max(1, retry_after_s))} if status.http == 503 else None
        return Response(encode_response(body), status_code=status.http,
                        media_type="application/json", headers=headers)


class SoftSwissAdapter:
    """The three SoftSwiss endpoints of one integration, bound to one EdgeContext. The key
    is loaded once, here.

    ``caller``/``settings``: the integration (default: the sandbox integration named
    ``"softswiss"``). ``signer``: replaces the one built from ``settings.auth_token`` (tests).
    """

    def __init__(
        self, ctx: EdgeContext, caller: Caller | None = None, settings: SoftSwissSettings | None = None,
        *, signer: SoftSwissSigner | None = None,
    ) -> None:
        caller, settings = integration_of(ctx, caller, settings, PROVIDER, SoftSwissSettings)
        self._ctx = ctx
        self._caller = caller
        self._amount_minor_max = ctx.settings.money.amount_minor_max
        self._freespins_payout = settings.freespins_payout
        wire = SoftSwissWire(signer if signer is not None else SoftSwissSigner.from_settings(settings))
        self._pipeline: Pipeline[Answer] = Pipeline(ctx, caller, wire)

    def routes(self) -> list[Route]:
        """POST ``/play`` (a balance request, the close of a round, or bets and wins as one
        unit), ``/rollback`` (rollbacks of bets and wins by ``original_action_id``, as one
        unit), ``/freespins`` (the end of a freespins issue, once per ``issue_id``: a notice
        or a payout, ``freespins_payout``), to mount under the integration's prefix."""
        return self._pipeline.routes([
            Endpoint("/play", PlayRequest, self._play),
            Endpoint("/rollback", RollbackRequest, self._rollback),
            Endpoint("/freespins", FreespinsRequest, self._freespins),
        ])

    def close(self) -> None:
        """Nothing to release (no threads, no connections of its own)."""
        return

    async def _refuse(self, refusal: Refusal[Status], req: Any, origin: Origin) -> Answer:
        return await self._pipeline.refuse(origin.route, refusal, req, origin=origin)

    # ---- processors (decoded request -> answer) ---------------------------------------------

    async def _play(self, req: PlayRequest, origin: Origin) -> Answer:
        token = given(req.session_id)
        session = await self._ctx.sessions.get(token) if token is not None and needs_session(req) else None
        command = play_to_command(req, session, caller=self._caller, now_s=time.time(),
                                  amount_minor_max=self._amount_minor_max, origin=origin)
        if isinstance(command, Refusal):
            return await self._refuse(command, req, origin)
        result = await self._ctx.submit(command)
        game_id = given(req.game_id)
        if isinstance(command, Atomic):
            return units_answer(result, command, action_ids=[a.action_id for a in req.actions],
                                game_id=game_id, now_us=_now_us())
        if isinstance(command, Credit) and result.code is Code.IDEMPOTENCY_CONFLICT:
            # The round was closed before by a request naming its game otherwise: closed it
            # is, and this request asked for nothing else than the balance.
            result = await self._ctx.submit(GetBalance(
                partner_id=command.partner_id, player_id=command.player_id, currency=command.currency))
        return balance_answer(result, currency=req.currency, game_id=game_id)

    async def _rollback(self, req: RollbackRequest, origin: Origin) -> Answer:
        command = rollback_to_command(req, caller=self._caller, origin=origin)
        if isinstance(command, Refusal):
            return await self._refuse(command, req, origin)
        result = await self._ctx.submit(command)
        return units_answer(result, command, action_ids=[a.action_id for a in req.actions],
                            game_id=given(req.game_id), now_us=_now_us())

    async def _freespins(self, req: FreespinsRequest, origin: Origin) -> Answer:
        command = freespins_to_command(req, caller=self._caller, amount_minor_max=self._amount_minor_max,
                                       payout=self._freespins_payout, origin=origin)
        if isinstance(command, Refusal):
            return await self._refuse(command, req, origin)
        result = await self._ctx.submit(command)
        if self._freespins_payout == FREESPINS_NOTICE and result.code is Code.OK and not result.replayed:
            # Not paid (README.md "Freespins"): what the issue won stays on record here, in
            # case the integration turns out to settle freespins on /freespins after all.
            log.info("softswiss_freespins_notice", integration=self._caller.integration,
                     issue_id=req.issue_id, user_id=req.user_id, currency=req.currency,
                     total_amount=req.total_amount, status=req.status)
        return freespins_answer(result, issue_id=req.issue_id, now_us=_now_us())


Adapter = SoftSwissAdapter  # the name gateway/providers/mounting.py builds every adapter by
