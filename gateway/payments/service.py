"""The payments pipeline: the I/O shell around ``rules.py`` that the edge routes call.

Deposits (docs/PAYMENTS.md, "Deposits"): ``open_deposit`` stores the intent's row, then the
player's shard checks the exclusion and deposit limits and holds the intent open
(``commands.DepositIntent``); the PSP's confirmation credits it.

Withdrawals ("Withdrawals"): ``request_withdrawal`` stores the row, the shard moves the
amount to the PSP's withdrawal-pending account at once (``commands.WithdrawalRequest``), the
review rules hold it or let it go; ``approve`` sends it through the PSP's SDK
(``<psp>/payouts.py``); ``decline`` and ``cancel`` give the money back.

Webhooks ("Webhooks"): every notification item is stored raw first (``psp_events``), then
decided (``rules.decide``) and applied to the shard as a ``commands.PaymentEvent`` whose
transaction id derives from the PSP's reference of the money movement, then marked. A crash
anywhere in between is repaired by the PSP's redelivery (the answer that stops it is only
sent once every item is applied, parked, ignored or routed to review), and a redelivery of
an applied item replays in the shard: nothing is lost, nothing is applied twice. Items that
arrive before the notification they depend on wait parked and are applied right after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from gateway import clock
from gateway.config import PaymentsSettings, PspIntegration
from gateway.logs import get_logger
from gateway.payments import rules
from gateway.payments.adyen import payouts as adyen_payouts
from gateway.payments.events import NEEDS, PspEvent
from gateway.payments.payouts import PayoutAnswer, PayoutRequest
from gateway.payments.store import Payment, PaymentStore
from gateway.payments.stripe import payouts as stripe_payouts
from gateway.shards.commands import (
    PAYMENTS_SOURCE,
    Code,
    DepositIntent,
    Origin,
    PaymentEvent,
    Result,
    WithdrawalRequest,
    idempotency_scope,
)

log = get_logger("gateway.payments")

Submit = Callable[..., Awaitable[Result]]
PayOut = Callable[[PspIntegration, PayoutRequest], PayoutAnswer]
PAYOUTS: dict[str, PayOut] = {"adyen": adyen_payouts.pay_out, "stripe": stripe_payouts.pay_out}


class PaymentRefused(Exception):
    """A cashier request refused: ``code`` (a problem code), ``detail``."""

    def __init__(self, code: str, detail: str, result: Result | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.result = result


class NotYet(Exception):
    """The shard could not take a notification now (overloaded, restarting): the PSP must
    deliver it again (answer it with a retryable status)."""


@dataclass(frozen=True)
class Outcome:
    """What became of one notification item: applied, parked, ignored or unmatched."""

    state: str
    detail: str = ""


class Payments:
    """The cashier and the webhooks of every PSP integration of this gateway."""

    def __init__(self, settings: PaymentsSettings, store: PaymentStore, submit: Submit,
                 amount_minor_max: int = 100_000_000_00) -> None:
        self.settings = settings
        self.amount_minor_max = amount_minor_max
        self.store = store
        self.submit = submit
        self.psps = {name: psp for name, psp in settings.psps.items() if psp.enabled}

    def psp_of(self, partner_id: str, name: str) -> PspIntegration:
        """The partner's PSP integration ``name``; another partner's is as unknown as none."""
        psp = self.psps.get(name)
        if psp is None or psp.partner_id != partner_id:
            mine = sorted(n for n, p in self.psps.items() if p.partner_id == partner_id)
            raise PaymentRefused("unknown_psp", f"psp must be one of your PSP integrations: {', '.join(mine) or 'none'}")
        return psp

    # ---- deposits --------------------------------------------------------------------

    async def open_deposit(self, partner_id: str, reference: str, player_id: str, currency: str, amount_minor: int,
                           psp_name: str, origin: Origin) -> tuple[Payment, bool]:
        """Open a deposit intent: (the deposit, True if new). PaymentRefused:
        idempotency_conflict (the reference holds other terms), the shard's refusal
        (player_excluded, deposit_limit_reached, unknown_player, currency_mismatch)."""
        self.psp_of(partner_id, psp_name)
        now = clock.now_us()
        payment, new = _known(await self.store.insert("deposit", partner_id, reference, player_id, currency,
                                                      amount_minor, psp_name, "opening", "api", now))
        _same_terms(payment, player_id, currency, amount_minor, psp_name)
        if payment.state not in ("opening",):
            if payment.state == "refused":
                raise PaymentRefused(payment.refusal_code or "invalid_request", "this deposit was refused")
            return payment, False
        result = await self.submit(DepositIntent(
            scope=idempotency_scope(partner_id, PAYMENTS_SOURCE), transaction_id=reference, partner_id=partner_id,
            player_id=player_id, currency=currency, amount_minor=amount_minor, psp=psp_name, origin=origin))
        if result.code is not Code.OK:
            # A refusal is final for this reference (the shard stores limit and exclusion
            # refusals, so its retry gets the same): a new attempt takes a new reference.
            await self.store.transition("deposit", partner_id, reference, ("opening",), "refused", "api",
                                        result.detail or "", clock.now_us(), refusal_code=result.code.value)
            raise PaymentRefused(result.code.value, result.detail or result.code.value, result)
        await self.store.transition("deposit", partner_id, reference, ("opening",), "open", "api",
                                    "responsible-gaming checks passed; waiting for the PSP", clock.now_us())
        opened = await self.store.get("deposit", partner_id, reference)
        assert opened is not None
        return opened, new

    # ---- withdrawals -----------------------------------------------------------------

    async def request_withdrawal(self, partner_id: str, reference: str, player_id: str, currency: str,
                                 amount_minor: int, psp_name: str, origin: Origin) -> tuple[Payment, bool]:
        """Take the amount from the player's cash at once, then hold it for review or send it.
        PaymentRefused: idempotency_conflict, insufficient_funds, unknown_player, currency_mismatch."""
        psp = self.psp_of(partner_id, psp_name)
        now = clock.now_us()
        payment, new = _known(await self.store.insert("withdrawal", partner_id, reference, player_id, currency,
                                                      amount_minor, psp_name, "requested", "api", now))
        _same_terms(payment, player_id, currency, amount_minor, psp_name)
        if payment.state == "refused":
            raise PaymentRefused(payment.refusal_code or "invalid_request", "this withdrawal was refused")
        if payment.state != "requested":
            return payment, False
        result = await self.submit(WithdrawalRequest(
            scope=idempotency_scope(partner_id, PAYMENTS_SOURCE), transaction_id=reference, partner_id=partner_id,
            player_id=player_id, currency=currency, amount_minor=amount_minor, psp=psp_name, origin=origin))
        if result.code is not Code.OK:
            await self.store.transition("withdrawal", partner_id, reference, ("requested",), "refused", "api",
                                        result.detail or "", clock.now_us(), refusal_code=result.code.value)
            raise PaymentRefused(result.code.value, result.detail or result.code.value, result)
        kyc = await self.store.kyc(partner_id, player_id)
        reasons = rules.review_reasons(amount_minor, psp.review_above_minor, kyc["status"] if kyc else None)
        if reasons:
            await self.store.transition("withdrawal", partner_id, reference, ("requested",), "pending_review", "api",
                                        "; ".join(reasons), clock.now_us(), review_reasons=reasons)
        else:
            await self.store.transition("withdrawal", partner_id, reference, ("requested",), "approved", "api",
                                        "no review needed", clock.now_us(), review_reasons=[])
            await self._send(psp, partner_id, reference)
        current = await self.store.get("withdrawal", partner_id, reference)
        assert current is not None
        return current, new

    async def approve(self, partner_id: str, reference: str, by: str) -> Payment:
        """The operator approves a withdrawal held for review (or sends again one whose payout
        call had an unknown outcome): it is sent to the PSP. PaymentRefused: unknown_payment,
        payment_state (not pending review nor approved)."""
        payment = await self._withdrawal(partner_id, reference)
        psp = self.psp_of(partner_id, payment.psp)
        if payment.state == "pending_review":
            await self.store.transition("withdrawal", partner_id, reference, ("pending_review",), "approved",
                                        f"operator:{by}", "approved", clock.now_us())
        elif payment.state not in ("approved", "sending"):
            raise PaymentRefused("payment_state", f"the withdrawal is {payment.state}: only one pending review "
                                                  "or approved can be sent")
        await self._send(psp, partner_id, reference)
        return await self._withdrawal(partner_id, reference)

    async def decline(self, partner_id: str, reference: str, by: str, reason: str) -> Payment:
        """The operator declines a withdrawal held for review: the money goes back."""
        return await self._return(partner_id, reference, ("pending_review", "approved"), "declined",
                                  f"operator:{by}", reason or "declined")

    async def cancel(self, partner_id: str, reference: str, by: str) -> Payment:
        """The player cancels a withdrawal not yet sent ("reverse withdrawal"), if allowed."""
        if not self.settings.reverse_withdrawal_allowed:
            raise PaymentRefused("payment_state", "cancelling a withdrawal is not allowed here")
        return await self._return(partner_id, reference, ("pending_review", "approved"), "cancelled",
                                  f"player:{by}", "cancelled by the player")

    async def _return(self, partner_id: str, reference: str, from_states: tuple[str, ...], to_state: str,
                      cause: str, detail: str) -> Payment:
        payment = await self._withdrawal(partner_id, reference)
        if payment.state == to_state:
            return payment  # a repeated decline or cancel
        if payment.state == "returning":  # a crash between the claim and the shard: finish it
            await self._give_back(payment, to_state, cause, detail)
            return await self._withdrawal(partner_id, reference)
        if payment.state not in from_states:
            raise PaymentRefused("payment_state", f"the withdrawal is {payment.state}: it can no longer be {to_state}")
        # Claim it first (no payout may start now), then give the money back.
        if not await self.store.transition("withdrawal", partner_id, reference, from_states, "returning", cause,
                                           detail, clock.now_us()):
            raise PaymentRefused("payment_state", "the withdrawal moved on meanwhile")
        await self._give_back(payment, to_state, cause, detail)
        return await self._withdrawal(partner_id, reference)

    async def _give_back(self, payment: Payment, to_state: str, cause: str, detail: str) -> None:
        result = await self.submit(PaymentEvent(
            scope=idempotency_scope(payment.partner_id, PAYMENTS_SOURCE),
            transaction_id=f"withdrawal_returned:{payment.merchant_reference}", partner_id=payment.partner_id,
            player_id=payment.player_id, currency=payment.currency, amount_minor=payment.amount_minor,
            action="withdrawal_returned", psp=payment.psp, psp_reference=payment.psp_reference or "",
            reference_scope=idempotency_scope(payment.partner_id, PAYMENTS_SOURCE),
            reference_id=payment.merchant_reference))
        if result.code is not Code.OK:
            raise NotYet(f"the shard answered {result.code.value}")
        await self.store.transition("withdrawal", payment.partner_id, payment.merchant_reference, ("returning",),
                                    to_state, cause, detail, clock.now_us())

    async def _send(self, psp: PspIntegration, partner_id: str, reference: str) -> None:
        """Send an approved withdrawal to the PSP (its SDK's payout call, on a thread)."""
        if not psp.api_base_url:
            return  # payouts are sent by hand (no API configured): it stays approved
        if not await self.store.transition("withdrawal", partner_id, reference, ("approved", "sending"), "sending",
                                           "gateway", f"payout call to {psp.psp}", clock.now_us()):
            return
        payment = await self._withdrawal(partner_id, reference)
        request = PayoutRequest(reference, payment.player_id, payment.currency, payment.amount_minor)
        try:
            answer = await asyncio.wait_for(asyncio.to_thread(PAYOUTS[psp.psp], psp, request),
                                            psp.payout_timeout_ms / 1000 + 1)
        except TimeoutError:
            answer = PayoutAnswer("retry", detail="the payout call timed out")
        now = clock.now_us()
        if answer.outcome == "sent":
            await self.store.transition("withdrawal", partner_id, reference, ("sending",), "sent", f"{psp.psp}",
                                        answer.detail, now, psp_reference=answer.psp_reference or None)
        elif answer.outcome == "refused":
            if await self.store.transition("withdrawal", partner_id, reference, ("sending",), "returning",
                                           f"{psp.psp}", answer.detail, now):
                await self._give_back(payment, "failed", f"{psp.psp}", f"payout refused: {answer.detail}")
        else:  # unknown: stays "sending"; approving again repeats the call with the same idempotency key
            await self.store.note("withdrawal", partner_id, reference, "sending", f"{psp.psp}",
                                  f"payout outcome unknown ({answer.detail}); approve again to retry", now)
            log.warning("payout_unknown", partner=partner_id, reference=reference, detail=answer.detail)

    async def _withdrawal(self, partner_id: str, reference: str) -> Payment:
        payment = await self.store.get("withdrawal", partner_id, reference)
        if payment is None:
            raise PaymentRefused("unknown_payment", f"no withdrawal {reference!r}")
        return payment

    # ---- webhooks --------------------------------------------------------------------

    async def notify(self, integration: str, events: list[tuple[PspEvent, str]]) -> list[Outcome]:
        """Store, decide and apply notification items in order (``(event, raw JSON)``).
        NotYet if the shard could not take one: the PSP must deliver the request again."""
        psp = self.psps[integration]
        outcomes = []
        for event, raw in events:
            state = await self.store.receive(integration, psp.partner_id, event, raw, clock.now_us())
            if state in ("applied", "ignored", "unmatched", "parked"):
                if state == "applied":  # a crash may have cut its release short: release again
                    await self._release(integration, psp, [event.psp_reference, event.related_reference])
                outcomes.append(Outcome(state, "already stored"))
                continue
            outcome = await self._process(integration, psp, event)
            outcomes.append(outcome)
        return outcomes

    async def _process(self, integration: str, psp: PspIntegration, event: PspEvent) -> Outcome:
        outcome = await self._process_once(integration, psp, event)
        if outcome.state == "parked":
            # What it waits for may have been applied meanwhile, its release scan running
            # before this item was marked parked: decide once more (the release scan of a
            # later application sees it parked, so one re-check closes the gap).
            outcome = await self._process_once(integration, psp, event)
        return outcome

    async def sweep_parked(self) -> int:
        """Re-decide parked notifications whose dependency may have been applied without
        releasing them (a crash between the two); bounded per integration. Returns how many
        were applied."""
        applied = 0
        for name, psp in self.psps.items():
            for parked in await self.store.all_parked(name, self.settings.parked_release_max):
                if (await self._process_once(name, psp, parked)).state == "applied":
                    applied += 1
        return applied

    async def sweep_forever(self) -> None:
        """``sweep_parked`` every ``parked_sweep_interval_ms`` for the life of the edge (a
        failed sweep is logged and tried again at the next interval)."""
        while True:
            await asyncio.sleep(self.settings.parked_sweep_interval_ms / 1000)
            try:
                applied = await self.sweep_parked()
                if applied:
                    log.info("parked_notifications_applied", count=applied)
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again; the items stay stored
                log.warning("parked_sweep_failed", error=repr(exc))

    async def _process_once(self, integration: str, psp: PspIntegration, event: PspEvent) -> Outcome:
        if event.amount_minor > self.amount_minor_max:
            detail = f"the amount {event.amount_minor} is above money.amount_minor_max: not applied"
            await self.store.settle_event(integration, event.event_key, "unmatched", detail, clock.now_us())
            return Outcome("unmatched", detail)
        payment = await self._payment_of(psp, integration, event)
        needs = NEEDS.get(event.kind, ())
        needs_met = True
        if needs and event.kind != "refund" and event.kind != "chargeback":
            needs_met = await self.store.applied(integration, needs, event.related_reference) is not None
        decision = rules.decide(event, payment, needs_met, block_on_chargeback=self.settings.block_on_chargeback)
        now = clock.now_us()
        if decision.outcome != "apply":
            await self.store.settle_event(integration, event.event_key, {"park": "parked", "ignore": "ignored",
                                                                         "unmatched": "unmatched"}[decision.outcome],
                                          decision.detail, now)
            if decision.outcome == "unmatched":
                log.warning("psp_event_unmatched", integration=integration, event=event.event_key, detail=decision.detail)
            return Outcome({"park": "parked", "ignore": "ignored", "unmatched": "unmatched"}[decision.outcome],
                           decision.detail)
        assert decision.apply is not None and payment is not None
        a = decision.apply
        scope = idempotency_scope(psp.partner_id, integration)
        result = await self.submit(PaymentEvent(
            scope=scope, transaction_id=a.transaction_id, partner_id=psp.partner_id, player_id=a.player_id,
            currency=a.currency, amount_minor=a.amount_minor, action=a.action, psp=integration,
            psp_reference=a.psp_reference, reference_scope=idempotency_scope(psp.partner_id, PAYMENTS_SOURCE),
            reference_id=a.reference_id, block_player=a.block_player,
            origin=Origin(edge="psp", route=f"{psp.psp} webhook", request_id=event.event_key[:128], received_at_us=now)))
        if result.code is not Code.OK:
            if result.code.value in ("unknown_player", "currency_mismatch", "idempotency_conflict", "invalid_request"):
                detail = f"the wallet refused it: {result.code.value} ({result.detail or ''})"
                await self.store.settle_event(integration, event.event_key, "unmatched", detail, clock.now_us())
                return Outcome("unmatched", detail)
            raise NotYet(result.code.value)
        if decision.move is not None:
            m = decision.move
            moved = await self.store.transition(m.kind, psp.partner_id, m.reference, m.from_states, m.to_state,
                                                f"{psp.psp}:{event.event_type}:{event.psp_reference}", decision.detail,
                                                clock.now_us(),
                                                psp_reference=event.psp_reference if m.kind == "deposit" else None)
            if not moved:
                await self.store.note(m.kind, psp.partner_id, m.reference, payment.state,
                                      f"{psp.psp}:{event.event_type}:{event.psp_reference}",
                                      "applied; the payment had moved on", clock.now_us())
        elif payment is not None:
            await self.store.note(payment.kind, psp.partner_id, payment.merchant_reference, payment.state,
                                  f"{psp.psp}:{event.event_type}:{event.psp_reference}",
                                  f"{a.action} of {a.amount_minor} {a.currency}" + (
                                      f" ({decision.detail})" if decision.detail else ""), clock.now_us())
        await self.store.settle_event(integration, event.event_key, "applied", decision.detail, clock.now_us())
        await self._release(integration, psp, [event.psp_reference, event.related_reference])
        return Outcome("applied", decision.detail)

    async def _release(self, integration: str, psp: PspIntegration, references: list[str]) -> None:
        """Apply the parked items that waited for ``references`` (bounded per release;
        each applied one may release more, up to ``parked_release_max`` in all)."""
        budget = self.settings.parked_release_max
        queue = [r for r in references if r]
        while queue and budget > 0:
            reference = queue.pop(0)
            for parked in await self.store.parked(integration, [reference], budget):
                budget -= 1
                outcome = await self._process(integration, psp, parked)
                if outcome.state == "applied":
                    queue.extend(r for r in (parked.psp_reference,) if r)

    async def _payment_of(self, psp: PspIntegration, integration: str, event: PspEvent) -> Payment | None:
        """The deposit or withdrawal ``event`` concerns (rules.decide's ``payment``)."""
        if event.kind.startswith("payout"):
            return await self.store.get("withdrawal", psp.partner_id, event.merchant_reference) \
                if event.merchant_reference else None
        if event.kind in ("deposit_succeeded", "deposit_failed"):
            if event.merchant_reference:
                return await self.store.get("deposit", psp.partner_id, event.merchant_reference)
            return None
        reference = event.related_reference
        if event.kind == "refund_failed":  # its related reference is the refund's: find that refund's deposit
            refund = await self.store.applied(integration, ("refund",), reference)
            if refund is None:
                return None
            reference = refund["related_reference"] or ""
        if not reference:
            return None
        return await self.store.deposit_by_psp_reference(psp.partner_id, integration, reference)

    # ---- reads -----------------------------------------------------------------------

    async def view(self, kind: str, partner_id: str, reference: str) -> dict:
        """A deposit or withdrawal with its history, its notifications and (deposits) the
        amounts refunded and charged back so far. PaymentRefused(unknown_payment)."""
        payment = await self.store.get(kind, partner_id, reference)
        if payment is None:
            raise PaymentRefused("unknown_payment", f"no {kind} {reference!r}")
        history = await self.store.history(kind, partner_id, reference)
        events = await self.store.events_of(partner_id, reference)
        out = {
            "merchant_reference": payment.merchant_reference, "player_id": payment.player_id,
            "currency": payment.currency, "amount_minor": payment.amount_minor, "psp": payment.psp,
            "state": payment.state, "psp_reference": payment.psp_reference, "refusal_code": payment.refusal_code,
            "created_at": _iso(payment.created_at), "updated_at": _iso(payment.updated_at),
            "history": [{"state": h["state"], "cause": h["cause"], "detail": h["detail"], "at": _iso(h["at"])}
                        for h in history],
            "notifications": [{"event_type": e["event_type"], "kind": e["kind"], "state": e["state"],
                               "psp_reference": e["psp_reference"], "amount_minor": e["amount_minor"],
                               "deliveries": e["deliveries"], "received_at": _iso(e["received_at"]),
                               "detail": e["detail"]} for e in events],
        }
        if kind == "withdrawal":
            out["review_reasons"] = list(payment.review_reasons)
        elif payment.psp_reference:
            moved = await self.store.money_events(payment.psp, payment.psp_reference)
            total = {k: sum(m["amount_minor"] or 0 for m in moved if m["kind"] == k)
                     for k in ("refund", "refund_failed", "chargeback", "chargeback_reversed")}
            out["refunded_minor"] = total["refund"] - total["refund_failed"]
            out["charged_back_minor"] = total["chargeback"] - total["chargeback_reversed"]
        return out


def _known(inserted: tuple[Payment, bool] | None) -> tuple[Payment, bool]:
    if inserted is None:
        raise PaymentRefused("unknown_player", "no such player")
    return inserted


def _same_terms(payment: Payment, player_id: str, currency: str, amount_minor: int, psp: str) -> None:
    """PaymentRefused(idempotency_conflict) if the stored payment has other terms."""
    for name, stored, sent in (("player_id", payment.player_id, player_id), ("currency", payment.currency, currency),
                               ("amount_minor", payment.amount_minor, amount_minor), ("psp", payment.psp, psp)):
        if stored != sent:
            raise PaymentRefused("idempotency_conflict", f"merchant reference reused with a different {name}")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def raw_json(item: object) -> str:
    """An item as stored raw (compact JSON)."""
    return orjson.dumps(item).decode()
