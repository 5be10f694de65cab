"""Stripe event types -> what they mean to the wallet (README.md, "Events"). Pure.

Event ids (``evt_...``) identify notifications; the objects' ids identify money movements
(a PaymentIntent, a Refund, a Dispute, a Payout), so a movement notified twice under two
event ids still moves money once.
"""

from __future__ import annotations

from msgspec.structs import replace

from gateway.payments.events import PspEvent
from gateway.payments.stripe.wire import Event


def events_of(event: Event) -> list[PspEvent]:
    """The PSP-neutral events of one Stripe event (a charge.refunded may carry several refunds)."""
    obj = event.data.object
    base = PspEvent(event_key=event.id, event_type=event.type, kind="ignored", psp_reference=obj.id,
                    currency=obj.currency.upper(), amount_minor=obj.amount,
                    merchant_reference=obj.metadata.get("merchant_reference", ""))
    t = event.type
    payment = obj.payment_intent or obj.charge or ""
    if t == "payment_intent.succeeded":
        return [replace(base, kind="deposit_succeeded", money_key=f"pi:{obj.id}")]
    if t == "payment_intent.payment_failed":
        reason = str((obj.last_payment_error or {}).get("message", ""))[:256]
        return [replace(base, kind="deposit_failed", money_key=f"pi_failed:{obj.id}", detail=reason)]
    if t == "charge.refunded":
        refunds = obj.refunds.data if obj.refunds is not None else []
        events = [replace(base, event_key=f"{event.id}:{r.id}", kind="refund", money_key=f"re:{r.id}",
                          related_reference=obj.payment_intent or obj.id, psp_reference=r.id,
                          amount_minor=r.amount, currency=r.currency.upper())
                  for r in refunds if r.status in ("succeeded", "pending")]
        return events or [replace(base, detail="no refund listed")]
    if t == "charge.dispute.created":
        return [replace(base, kind="chargeback", money_key=f"dp:{obj.id}", related_reference=payment)]
    if t == "charge.dispute.closed":
        if obj.status == "won":
            return [replace(base, kind="chargeback_reversed", money_key=f"dp_won:{obj.id}", related_reference=payment)]
        return [replace(base, detail=f"dispute closed {obj.status}: the debit stands")]
    if t == "payout.paid":
        return [replace(base, kind="payout_paid", money_key=f"po:{obj.id}")]
    if t == "payout.failed":
        return [replace(base, kind="payout_failed", money_key=f"po_failed:{obj.id}",
                        detail=(obj.failure_message or "")[:256])]
    return [replace(base, detail=f"{t}: nothing moves")]
