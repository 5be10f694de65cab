"""Evolution One Wallet endpoints over HTTP: the seven routes and Evolution's hooks into the
shared pipeline.

Source: gateway/providers/evolution/README.md ("Protocol facts": transport, endpoints,
``authToken``, statuses, ``/check`` rotation, "Common ground"); docs/DESIGN.md sections 2
(edge work), 5 (idempotency), 7 (Redis) and 8 (errors). Every answer is HTTP 200 with a JSON
body and an Evolution ``status`` -- also refusals, also when something unexpected broke
(then ``TEMPORARY_ERROR``, Evolution's retryable status, and a log line). Never an HTTP 500.

Per request, in order (``gateway/providers/pipeline.py``; each refusal from step 2 on is
recorded with ``ctx.record_refusal``):

1. ``ctx.admit("provider", <integration name>)``: limited -> ``TEMPORARY_ERROR`` at once,
   body not read, no audit (docs/PROVIDERS.md, "Rate limit first");
2. body larger than ``server.body_bytes_max`` -> ``INVALID_PARAMETER`` (not read further);
3. ``authToken`` query parameter (``auth.py``, the integration's ``auth_token``) ->
   ``INVALID_TOKEN_ID``;
4. ``Content-Type`` not ``application/json`` -> ``INVALID_PARAMETER``;
5. decode (``schemas.py``) -> ``INVALID_PARAMETER``;
6. sid (issued for this integration and its partner), currency and amount rules
   (``adapter.py``) -> the table status of the refusal code. Such a refusal looks the
   player up (``GetBalance``, not audited): a ``userId`` naming nobody turns a sid refusal
   into ``INVALID_PARAMETER`` (``adapter.refusal_for_player``), and the answer carries the
   player's balance (else zero);
7. ``ctx.submit(command)`` -> the table status of ``Result.code`` on that endpoint;
   ``Overloaded`` / ``ShardUnavailable`` / ``SessionStoreUnavailable`` -> ``TEMPORARY_ERROR``.

``/sid`` takes any sid: it replaces a live sid of ``userId`` like ``/check``, and otherwise
issues a new session of this integration for an existing, active ``userId`` holding one
wallet, in that wallet's currency (``EvolutionSettings.sid_issues_sessions``; README.md
choice 11).

Credits, cancels and promo payouts do not need Redis: if the session store is down they
proceed without the sid (``userId`` names the player), per docs/DESIGN.md section 7.

One ``EvolutionAdapter`` serves one integration (``[integrations.<name>]``, mounted at
``/providers/<name>/`` by ``gateway/providers/mounting.py``): its key, its partner (the
partner of every command, never taken from a sid) and its idempotency scope
``"<partner>:<name>"``.
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
from gateway.edge.game_session import GameSession
from gateway.providers.evolution.adapter import (
    PROVIDER,
    answer_currency,
    audit_request,
    balance_to_command,
    cancel_to_command,
    check_request,
    credit_to_command,
    debit_to_command,
    player_id_of,
    promo_to_command,
    refusal_for_player,
    refusal_of,
    request_id_for,
    response_for_balance,
    response_for_new_sid,
    response_for_refusal,
    response_for_result,
    response_for_sid_refusal,
    response_for_unread_refusal,
    sid_issue_currency,
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
from gateway.providers.evolution.settings import EvolutionSettings
from gateway.providers.evolution.statuses import RETRYABLE_EXCEPTIONS, RETRYABLE_STATUS
from gateway.providers.integration import Caller
from gateway.providers.pipeline import Endpoint, Pipeline, Rejected, integration_of
from gateway.providers.refusal import Refusal, peek_json
from gateway.shards.commands import Code, Command, GetBalance, Origin, Result

#: Where the sandbox integration (``[integrations.evolution]``) is mounted; another
#: integration ``<name>`` is at ``/providers/<name>``.
PREFIX: Final = "/providers/evolution"

#: The only body type Evolution sends (README.md, "Protocol facts": POST JSON).
JSON_MEDIA_TYPE: Final = "application/json"

_peek_decoder: Final = msgspec.json.Decoder(float_hook=Decimal)  # audit: numbers as Decimal


class _SidEndpointBody(dict):
    """What could be read of a ``/check`` or ``/sid`` body refused before decoding (a JSON
    object, or empty): its answer is ``{status, uuid}``, the shape of those endpoints."""


def _source(body: object, sid_endpoint: bool) -> object:
    """A refused body's audit source, marked when it was sent to ``/check`` or ``/sid``."""
    if not sid_endpoint:
        return body
    return _SidEndpointBody(body) if isinstance(body, dict) else _SidEndpointBody()


def _is_json(content_type: str | None) -> bool:
    """``application/json``, with or without parameters (``; charset=utf-8``)."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == JSON_MEDIA_TYPE


class EvolutionWire:
    """Evolution's hooks into ``Pipeline`` (``pipeline.WireProtocol[EvolutionAnswer]``): the
    API key in the ``authToken`` query parameter, JSON bodies, HTTP 200 with a ``status``."""

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
            sid_endpoint = request.url.path.endswith(("/check", "/sid"))
            return Rejected(refusal, _source(peek_json(body, _peek_decoder), sid_endpoint))
        return body

    def decode(self, payload: bytes, request_type: type) -> Any:
        try:
            return decode_request(payload, request_type)
        except BadRequest as exc:
            refusal = refusal_of(Code.INVALID_REQUEST, f"bad request: {exc}")
            return Rejected(refusal, _source(peek_json(payload, _peek_decoder), request_type is CheckRequest))

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
        """A refusal decided before decoding: ``{status, uuid}`` on ``/check`` and ``/sid``,
        else ``adapter.response_for_unread_refusal``."""
        uuid = str_field(source, "uuid")
        if isinstance(source, _SidEndpointBody):
            return response_for_sid_refusal(refusal, uuid=uuid)
        return response_for_unread_refusal(refusal, uuid=uuid, currency=str_field(source, "currency"))

    async def respond(self, answer: EvolutionAnswer, route: str, retry_after_s: int) -> Response:
        """HTTP 200, JSON."""
        return Response(encode_response(answer), status_code=200, media_type=JSON_MEDIA_TYPE)


class EvolutionAdapter:
    """The seven Evolution endpoints of one integration, bound to one EdgeContext. The key
    is loaded once, here.

    ``caller``/``settings``: the integration (default: the sandbox integration named
    ``"evolution"``); its ``auth_token`` is the only key accepted. Raises TypeError if that
    is still an unresolved ``{ env = ... }`` / ``{ file = ... }`` reference.
    """

    def __init__(
        self, ctx: EdgeContext, caller: Caller | None = None, settings: EvolutionSettings | None = None
    ) -> None:
        caller, settings = integration_of(ctx, caller, settings, PROVIDER, EvolutionSettings)
        if not isinstance(settings.auth_token, str):  # gateway.config.load_settings resolves it
            raise TypeError(f"integration {caller.integration!r}: auth_token was not resolved")
        self._ctx = ctx
        self._caller = caller
        self._amount_minor_max = ctx.settings.money.amount_minor_max
        self._sid_issues_sessions = settings.sid_issues_sessions
        wire = EvolutionWire(AuthTokenCheck(settings.auth_token))
        self._pipeline: Pipeline[EvolutionAnswer] = Pipeline(ctx, caller, wire)

    def routes(self) -> list[Route]:
        """POST ``/check``, ``/sid``, ``/balance``, ``/debit``, ``/credit``, ``/cancel``,
        ``/promo_payout`` (mounted under ``PREFIX``)."""
        return self._pipeline.routes([
            Endpoint("/check", CheckRequest, self._check),
            Endpoint("/sid", CheckRequest, self._sid),
            Endpoint("/balance", BalanceRequest, self._balance),
            Endpoint("/debit", DebitRequest, self._debit),
            Endpoint("/credit", CreditRequest, self._credit),
            Endpoint("/cancel", CancelRequest, self._cancel),
            Endpoint("/promo_payout", PromoPayoutRequest, self._promo),
        ])

    def close(self) -> None:
        """Nothing to release (no thread pool, no key material beyond a string)."""
        return

    async def _player(self, user_id: str) -> Result:
        """``userId``'s balances and status (a read, never audited)."""
        return await self._ctx.submit(GetBalance(partner_id=self._caller.partner_id, player_id=user_id))

    async def _refuse(
        self, refusal: Refusal[str], req: Any, origin: Origin, session: GameSession | None,
        currency: str | None,
    ) -> EvolutionAnswer:
        """Audit and answer an adapter refusal on a money or balance endpoint: the player is
        looked up, an unknown ``userId`` is INVALID_PARAMETER (``refusal_for_player``), and
        the answer carries the balance in ``answer_currency`` (else zero)."""
        player = await self._player(req.user_id)
        refusal = refusal_for_player(refusal, player, session, self._caller)
        await self._pipeline.refuse(origin.route, refusal, req, origin=origin)
        return response_for_refusal(
            refusal, uuid=req.uuid, balances=player.balances,
            currency=answer_currency(session, self._caller, req.user_id, currency))

    async def _refuse_sid(
        self, refusal: Refusal[str], req: CheckRequest, origin: Origin, session: GameSession | None,
        *, player: Result | None = None,
    ) -> EvolutionAnswer:
        """Audit and answer a refused ``/check`` or ``/sid`` (``{status, uuid}``), after the
        same unknown-``userId`` rule."""
        if player is None:
            player = await self._player(req.user_id)
        refusal = refusal_for_player(refusal, player, session, self._caller)
        await self._pipeline.refuse(origin.route, refusal, req, origin=origin)
        return response_for_sid_refusal(refusal, uuid=req.uuid)

    async def _submit(
        self, command: Command | Refusal[str], req: Any, origin: Origin, *, endpoint: str,
        session: GameSession | None, currency: str | None,
    ) -> EvolutionAnswer:
        """Debit, credit, cancel and promo alike: answer the adapter's refusal, or submit."""
        if isinstance(command, Refusal):
            return await self._refuse(command, req, origin, session, currency)
        result = await self._ctx.submit(command)
        return response_for_result(result, uuid=req.uuid, endpoint=endpoint, currency=currency)

    # ---- processors (decoded request -> answer) -----------------------------------------

    async def _check(self, req: CheckRequest, origin: Origin) -> EvolutionAnswer:
        """``/check``: validate the live sid of ``userId`` and rotate it."""
        session = await self._ctx.sessions.get(req.sid)
        refusal = check_request(req, session, caller=self._caller, now_s=time.time())
        if refusal is not None:
            return await self._refuse_sid(refusal, req, origin, session)
        new = await self._ctx.sessions.rotate(req.sid)
        if new is None:  # another /check rotated it between our read and our write
            refusal = refusal_of(Code.INVALID_TOKEN, "sid was replaced concurrently")
            return await self._refuse_sid(refusal, req, origin, session)
        return response_for_new_sid(new, uuid=req.uuid)

    async def _sid(self, req: CheckRequest, origin: Origin) -> EvolutionAnswer:
        """``/sid``: a new sid for ``userId``. A live sid of ``userId`` is rotated (as on
        ``/check``); any other sid (unknown, expired, replaced, ``""``, another user's or
        another integration's, none of which is touched) gets a new session of ``userId``
        when ``sid_issues_sessions`` (README.md choice 11), else INVALID_SID."""
        session = await self._ctx.sessions.get(req.sid)
        refusal = check_request(req, session, caller=self._caller, now_s=time.time())
        if refusal is None:
            new = await self._ctx.sessions.rotate(req.sid)
            if new is not None:
                return response_for_new_sid(new, uuid=req.uuid)
            refusal = refusal_of(Code.INVALID_TOKEN, "sid was replaced concurrently")
        if not self._sid_issues_sessions:
            return await self._refuse_sid(refusal, req, origin, session)
        player = await self._player(req.user_id)
        currency = sid_issue_currency(player)
        if isinstance(currency, Refusal):
            return await self._refuse_sid(currency, req, origin, None, player=player)
        new = await self._ctx.sessions.create(
            self._caller.partner_id, req.user_id, currency, self._caller.integration, "")
        return response_for_new_sid(new, uuid=req.uuid)

    async def _balance(self, req: BalanceRequest, origin: Origin) -> EvolutionAnswer:
        session = await self._ctx.sessions.get(req.sid)
        command = balance_to_command(req, session, caller=self._caller, now_s=time.time())
        if isinstance(command, Refusal):
            return await self._refuse(command, req, origin, session, req.currency)
        result = await self._ctx.submit(command)
        assert command.currency is not None
        return response_for_balance(result, uuid=req.uuid, currency=command.currency)

    async def _debit(self, req: DebitRequest, origin: Origin) -> EvolutionAnswer:
        session = await self._ctx.sessions.get(req.sid)
        command = debit_to_command(
            req, session, caller=self._caller, now_s=time.time(),
            amount_minor_max=self._amount_minor_max, origin=origin,
        )
        return await self._submit(command, req, origin, endpoint="/debit", session=session,
                                  currency=req.currency)

    async def _credit(self, req: CreditRequest, origin: Origin) -> EvolutionAnswer:
        session = await self._ctx.sessions.get_for_settlement(req.sid, self._caller.scope)
        command = credit_to_command(
            req, session, caller=self._caller, amount_minor_max=self._amount_minor_max,
            origin=origin,
        )
        return await self._submit(command, req, origin, endpoint="/credit", session=session,
                                  currency=req.currency)

    async def _cancel(self, req: CancelRequest, origin: Origin) -> EvolutionAnswer:
        session = await self._ctx.sessions.get_for_settlement(req.sid, self._caller.scope)
        command = cancel_to_command(
            req, session, caller=self._caller, amount_minor_max=self._amount_minor_max,
            origin=origin,
        )
        currency = req.currency
        if currency is None and session is not None and self._caller.owns(session):
            currency = session.currency
        return await self._submit(command, req, origin, endpoint="/cancel", session=session,
                                  currency=currency)

    async def _promo(self, req: PromoPayoutRequest, origin: Origin) -> EvolutionAnswer:
        session = await self._ctx.sessions.get_for_settlement(req.sid, self._caller.scope)
        command = promo_to_command(
            req, session, caller=self._caller, amount_minor_max=self._amount_minor_max,
            origin=origin,
        )
        return await self._submit(command, req, origin, endpoint="/promo_payout", session=session,
                                  currency=req.currency)


Adapter = EvolutionAdapter  # the name gateway/providers/mounting.py builds every adapter by
