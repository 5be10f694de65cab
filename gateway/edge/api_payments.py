"""Payment routes: the cashier (partner key) and the PSP webhooks (PSP signature).

Cashier (docs/PAYMENTS.md): ``POST /v1/payments/deposits``, ``POST /v1/payments/withdrawals``,
``GET`` of each with its history, ``POST /v1/payments/withdrawals/{ref}/approve|decline|cancel``,
``PUT/GET /v1/players/{player_id}/kyc``. ``Api`` authenticates, rate-limits and audits
refusals around them.

Webhooks: ``POST /v1/payments/webhooks/{integration}``, authenticated by the PSP's own
signature (Adyen HMAC per item, ``Stripe-Signature``), not by an API key; the integration
names its PSP and its partner. Adyen is answered ``[accepted]`` (200) once every item is
stored and applied, parked, ignored or routed to review; anything else makes it retry.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway import clock, metrics, money
from gateway.edge.api_v1 import Refused, _decode, read_body
from gateway.edge.problems import problem
from gateway.payments.adyen import mapping as adyen_mapping
from gateway.payments.adyen import signature as adyen_signature
from gateway.payments.adyen import wire as adyen_wire
from gateway.payments.events import PspEvent
from gateway.payments.service import NotYet, PaymentRefused, Payments, raw_json
from gateway.payments.store import PaymentStore
from gateway.payments.stripe import mapping as stripe_mapping
from gateway.payments.stripe import signature as stripe_signature
from gateway.payments.stripe import wire as stripe_wire
from gateway.shards.commands import Code, GetBalance, Overloaded, ShardUnavailable

if TYPE_CHECKING:
    from gateway.edge.api_v1 import Api

Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+\Z")]
PlayerId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.@-]{1,64}\Z")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3,4}\Z",
                                       extra_json_schema={"enum": sorted(money.CURRENCY_EXPONENTS)})]
AmountMinor = Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 1})]
Psp = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Actor = Annotated[str, msgspec.Meta(max_length=128, pattern=r"^[^\x00]*\Z")]
KYC_STATUSES = ("unverified", "pending", "verified", "rejected")


class PaymentBody(msgspec.Struct, forbid_unknown_fields=True):
    merchant_reference: Reference  # the operator's, unique per partner: the idempotency key
    player_id: PlayerId
    currency: Currency
    amount_minor: AmountMinor
    psp: Psp  # one of the partner's PSP integrations


class DecisionBody(msgspec.Struct, forbid_unknown_fields=True):
    actor: Actor = ""
    reason: Annotated[str, msgspec.Meta(max_length=256, pattern=r"^[^\x00]*\Z")] = ""


class KycBody(msgspec.Struct, forbid_unknown_fields=True):
    status: Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(KYC_STATUSES)})]
    actor: Actor = ""


class HistoryOut(msgspec.Struct):
    state: str
    cause: str
    detail: str
    at: str


class NotificationOut(msgspec.Struct, omit_defaults=True):
    event_type: str
    kind: str
    state: str
    deliveries: int
    received_at: str
    detail: str
    psp_reference: str | None = None
    amount_minor: int | None = None


class PaymentOut(msgspec.Struct, omit_defaults=True):
    merchant_reference: str
    player_id: str
    currency: str
    amount_minor: int
    psp: str
    state: str
    created_at: str
    updated_at: str
    history: list[HistoryOut]
    notifications: list[NotificationOut]
    psp_reference: str | None = None
    refusal_code: str | None = None
    review_reasons: list[str] | None = None  # withdrawals
    refunded_minor: int | None = None  # deposits
    charged_back_minor: int | None = None  # deposits
    replayed: bool = False


class KycOut(msgspec.Struct, omit_defaults=True):
    player_id: str
    status: str  # "unverified" until the operator sets one
    updated_by: str | None = None
    updated_at: str | None = None


_encoder = msgspec.json.Encoder()


def _json(body: msgspec.Struct, status: int = 200) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type="application/json")


def _refused(exc: PaymentRefused) -> Response:
    result = exc.result
    if result is not None and result.cash_minor is not None:
        return problem(exc.code, exc.detail, currency=result.currency, cash_minor=result.cash_minor,
                       bonus_minor=result.bonus_minor)
    return problem(exc.code, exc.detail)


class PaymentsApi:
    """The cashier routes and the webhook routes of one edge."""

    def __init__(self, api: Api, payments: Payments, store: PaymentStore) -> None:
        self.api = api
        self.ctx = api.ctx
        self.payments = payments
        self.store = store
        self.items_max = api.ctx.settings.payments.webhook_items_max
        self.body_bytes_max = api.ctx.settings.server.body_bytes_max

    def handlers(self) -> dict[str, tuple[str, Callable[[Request, str, bytes], Awaitable[Response]]]]:
        return {
            "POST /v1/payments/deposits": ("POST /v1/payments/deposits", self.deposit),
            "GET /v1/payments/deposits/{merchant_reference}": ("GET /v1/payments/deposits", self.get_deposit),
            "POST /v1/payments/withdrawals": ("POST /v1/payments/withdrawals", self.withdrawal),
            "GET /v1/payments/withdrawals/{merchant_reference}": ("GET /v1/payments/withdrawals", self.get_withdrawal),
            "POST /v1/payments/withdrawals/{merchant_reference}/approve":
                ("POST /v1/payments/withdrawals/approve", self.approve),
            "POST /v1/payments/withdrawals/{merchant_reference}/decline":
                ("POST /v1/payments/withdrawals/decline", self.decline),
            "POST /v1/payments/withdrawals/{merchant_reference}/cancel":
                ("POST /v1/payments/withdrawals/cancel", self.cancel),
            "PUT /v1/players/{player_id}/kyc": ("PUT /v1/players/kyc", self.set_kyc),
            "GET /v1/players/{player_id}/kyc": ("GET /v1/players/kyc", self.get_kyc),
        }

    # ---- cashier ---------------------------------------------------------------------

    def _body(self, raw: bytes) -> PaymentBody:
        body = _decode(PaymentBody, raw)
        if not money.is_currency(body.currency):
            raise Refused("unknown_currency", f"unknown currency {body.currency!r}", body.player_id)
        money.check_amount_minor(body.amount_minor, amount_minor_max=self.api.amount_minor_max, allow_zero=False)
        return body

    async def deposit(self, request: Request, partner: str, raw: bytes) -> Response:
        """Open a deposit intent. 201 (200: the same again, ``replayed``); 403
        player_excluded; 422 deposit_limit_reached / currency_mismatch; 404 unknown_player;
        409 idempotency_conflict; 400 unknown_psp."""
        body = self._body(raw)
        origin = self.ctx.origin("POST /v1/payments/deposits", request.headers.get("x-request-id"))
        try:
            payment, new = await self.payments.open_deposit(partner, body.merchant_reference, body.player_id,
                                                            body.currency, body.amount_minor, body.psp, origin)
        except PaymentRefused as exc:
            return _refused(exc)
        return await self._view("deposit", partner, payment.merchant_reference, 201 if new else 200, not new)

    async def withdrawal(self, request: Request, partner: str, raw: bytes) -> Response:
        """Request a withdrawal: the amount leaves the balance at once. 201 (200: replay);
        402 insufficient_funds; 404 unknown_player; 409 idempotency_conflict; 422
        currency_mismatch; 400 unknown_psp. Its ``state`` says whether it waits for review."""
        body = self._body(raw)
        origin = self.ctx.origin("POST /v1/payments/withdrawals", request.headers.get("x-request-id"))
        try:
            payment, new = await self.payments.request_withdrawal(partner, body.merchant_reference, body.player_id,
                                                                  body.currency, body.amount_minor, body.psp, origin)
        except PaymentRefused as exc:
            return _refused(exc)
        except NotYet as exc:
            return problem("unavailable", str(exc), retry_after_s=1)
        return await self._view("withdrawal", partner, payment.merchant_reference, 201 if new else 200, not new)

    async def _view(self, kind: str, partner: str, reference: str, status: int = 200, replayed: bool = False) -> Response:
        try:
            view = await self.payments.view(kind, partner, reference)
        except PaymentRefused as exc:
            return _refused(exc)
        out = msgspec.convert(view, PaymentOut)
        if replayed:
            out = msgspec.structs.replace(out, replayed=True)
        return _json(out, status)

    @staticmethod
    def _reference(request: Request) -> str:
        reference = request.path_params["merchant_reference"]
        if not 1 <= len(reference) <= 128 or not all(0x21 <= ord(c) <= 0x7E for c in reference):
            raise Refused("invalid_request", "malformed merchant reference")
        return reference

    async def get_deposit(self, request: Request, partner: str, raw: bytes) -> Response:
        """200 the deposit with its history and notifications; 404 unknown_payment."""
        return await self._view("deposit", partner, self._reference(request))

    async def get_withdrawal(self, request: Request, partner: str, raw: bytes) -> Response:
        """200 the withdrawal with its history and notifications; 404 unknown_payment."""
        return await self._view("withdrawal", partner, self._reference(request))

    async def _decide(self, request: Request, partner: str, raw: bytes, what: str) -> Response:
        reference = self._reference(request)
        body = _decode(DecisionBody, raw) if raw.strip() else DecisionBody()
        key_id = getattr(request.state, "key_id", "") or "key"
        by = f"{key_id}:{body.actor}" if body.actor else key_id
        try:
            if what == "approve":
                await self.payments.approve(partner, reference, by)
            elif what == "decline":
                await self.payments.decline(partner, reference, by, body.reason)
            else:
                await self.payments.cancel(partner, reference, by)
        except PaymentRefused as exc:
            return _refused(exc)
        except NotYet as exc:
            return problem("unavailable", str(exc), retry_after_s=1)
        return await self._view("withdrawal", partner, reference)

    async def approve(self, request: Request, partner: str, raw: bytes) -> Response:
        """Approve a withdrawal held for review: it is sent to the PSP. 200; 404
        unknown_payment; 409 payment_state."""
        return await self._decide(request, partner, raw, "approve")

    async def decline(self, request: Request, partner: str, raw: bytes) -> Response:
        """Decline a withdrawal held for review: the money goes back. 200; 404; 409 payment_state."""
        return await self._decide(request, partner, raw, "decline")

    async def cancel(self, request: Request, partner: str, raw: bytes) -> Response:
        """The player cancels a withdrawal not yet sent: the money goes back. 200; 404; 409."""
        return await self._decide(request, partner, raw, "cancel")

    async def set_kyc(self, request: Request, partner: str, raw: bytes) -> Response:
        """Set a player's KYC status (a withdrawal of a player not "verified" waits for
        review). 200; 404 unknown_player; 400 invalid_request."""
        player_id = self.api.path_player(request)
        body = self.api.decode_for(KycBody, raw, player_id)
        if body.status not in KYC_STATUSES:
            raise Refused("invalid_request", f"status is one of {list(KYC_STATUSES)}", player_id)
        known = await self.ctx.submit(GetBalance(partner_id=partner, player_id=player_id))
        if known.code is not Code.OK:
            return problem(known.code.value, known.detail)
        key_id = getattr(request.state, "key_id", "") or "key"
        await self.store.set_kyc(partner, player_id, body.status, f"{key_id}:{body.actor}" if body.actor else key_id,
                                 clock.now_us())
        return await self.get_kyc(request, partner, b"")

    async def get_kyc(self, request: Request, partner: str, raw: bytes) -> Response:
        """200 the KYC status ("unverified" if none was set); 404 unknown_player."""
        player_id = self.api.path_player(request)
        known = await self.ctx.submit(GetBalance(partner_id=partner, player_id=player_id))
        if known.code is not Code.OK:
            return problem(known.code.value, known.detail)
        row = await self.store.kyc(partner, player_id)
        if row is None:
            return _json(KycOut(player_id, "unverified"))
        return _json(KycOut(player_id, row["status"], row["updated_by"],
                            row["updated_at"].strftime("%Y-%m-%dT%H:%M:%SZ")))

    # ---- webhooks --------------------------------------------------------------------

    def webhook_routes(self) -> list[Route]:
        return [Route("/v1/payments/webhooks/{integration}", self.webhook, methods=["POST"])]

    async def webhook(self, request: Request) -> Response:
        """A PSP's notification: 200 (Adyen ``[accepted]``, Stripe ``{"received": true}``);
        401 invalid_signature; 400 invalid_request; 404 unknown integration; 413; 503
        (the shard could not take it now: the PSP delivers it again)."""
        started = time.perf_counter()
        name = request.path_params["integration"]
        psp = self.payments.psps.get(name)
        label = f"POST /v1/payments/webhooks/{psp.psp if psp else 'unknown'}"
        response: Response
        if psp is None:
            response = problem("not_found", f"no PSP integration {name[:64]!r}")
        elif (retry_after_s := await self.ctx.admit("provider", name)) is not None:
            # the integration's own rate limit (rate_limits.providers.<name>); not audited
            response = problem("rate_limited", f"{name} is over its rate limit", retry_after_s=retry_after_s)
        else:
            try:
                raw = await read_body(request, self.body_bytes_max)
                if b"\x00" in raw or b"\\u0000" in raw:
                    # no text column stores NUL: refused before anything is stored
                    raise _WebhookRefused("invalid_request", "the body holds a NUL character", raw)
                events = (self._adyen(raw, str(psp.hmac_key)) if psp.psp == "adyen"
                          else self._stripe(raw, request.headers.get("stripe-signature"), str(psp.webhook_secret),
                                            psp.signature_tolerance_s))
                await self.payments.notify(name, events)
                response = (PlainTextResponse("[accepted]") if psp.psp == "adyen"
                            else Response(b'{"received":true}', media_type="application/json"))
            except _WebhookRefused as exc:
                await self.ctx.record_refusal(scope=f"{psp.partner_id}:{name}", partner_id=psp.partner_id,
                                              code=Code(exc.code), detail=exc.detail,
                                              origin=self.ctx.origin(label, request.headers.get("x-request-id")),
                                              request={"body": exc.raw[:2048].decode("utf-8", "replace")})
                response = problem(exc.code, exc.detail)
            except NotYet as exc:
                response = problem("unavailable", f"try again: {exc}", retry_after_s=1)
            except Overloaded as exc:
                response = problem("overloaded", "the shard is at capacity", retry_after_s=exc.retry_after_s)
            except ShardUnavailable as exc:
                response = problem("unavailable", str(exc), retry_after_s=1)
            except Refused as exc:  # the body's size
                response = problem(exc.code, exc.detail)
        code = getattr(response, "code", "ok" if response.status_code < 400 else "error")
        metrics.requests_total.labels(label, "", str(response.status_code), code).inc()
        metrics.request_latency_seconds.labels(label, "", str(response.status_code), code).observe(
            time.perf_counter() - started)
        return response

    def _adyen(self, raw: bytes, hmac_key: str) -> list[tuple[PspEvent, str]]:
        try:
            doc = orjson.loads(raw)
            notification = msgspec.convert(doc, adyen_wire.Notification)
        except (orjson.JSONDecodeError, msgspec.ValidationError) as exc:
            raise _WebhookRefused("invalid_request", f"not an Adyen notification: {str(exc)[:200]}", raw) from None
        if len(notification.notificationItems) > self.items_max:
            raise _WebhookRefused("invalid_request", f"at most {self.items_max} notification items", raw)
        out = []
        for wrapped, typed in zip(doc["notificationItems"], notification.notificationItems, strict=True):
            item = wrapped["NotificationRequestItem"]
            if not adyen_signature.valid(item, hmac_key):
                raise _WebhookRefused("invalid_signature", f"item {typed.NotificationRequestItem.pspReference!r}: "
                                                           "missing or wrong hmacSignature", raw)
            out.append((adyen_mapping.event_of(typed.NotificationRequestItem), raw_json(item)))
        return out

    def _stripe(self, raw: bytes, header: str | None, secret: str, tolerance_s: int) -> list[tuple[PspEvent, str]]:
        if not stripe_signature.valid(raw, header, secret, tolerance_s):
            raise _WebhookRefused("invalid_signature", "missing, wrong or expired Stripe-Signature", raw)
        try:
            event = msgspec.json.decode(raw, type=stripe_wire.Event)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _WebhookRefused("invalid_request", f"not a Stripe event: {str(exc)[:200]}", raw) from None
        text = raw.decode("utf-8", "replace")
        return [(e, text) for e in stripe_mapping.events_of(event)]


class _WebhookRefused(Exception):
    def __init__(self, code: str, detail: str, raw: bytes) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.raw = raw

