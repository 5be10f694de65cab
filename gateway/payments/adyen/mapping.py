"""Adyen event codes -> what they mean to the wallet (README.md, "Events"). Pure.

The notification's identity is (pspReference, eventCode, success) per Adyen's guidance;
money keys are ``<eventCode>:<pspReference>`` so each modification moves money once.
"""

from __future__ import annotations

from msgspec.structs import replace

from gateway.payments.adyen.wire import NotificationRequestItem
from gateway.payments.events import PspEvent


def event_of(item: NotificationRequestItem) -> PspEvent:
    """The PSP-neutral event of one notification item (README.md's table)."""
    code, ok = item.eventCode, item.success == "true"
    base = PspEvent(event_key=f"{item.pspReference}:{code}:{item.success}", event_type=code, kind="ignored",
                    psp_reference=item.pspReference, merchant_reference=item.merchantReference,
                    currency=item.amount.currency, amount_minor=item.amount.value,
                    money_key=f"{code}:{item.pspReference}")
    related = item.originalReference or item.pspReference
    if code == "AUTHORISATION":
        return replace(base, kind="deposit_succeeded") if ok else replace(base, kind="deposit_failed",
                                                                           detail=item.reason[:256])
    if code == "CANCELLATION" and ok:
        return replace(base, kind="deposit_failed", related_reference=related, detail="cancelled")
    if code == "REFUND" and ok:
        return replace(base, kind="refund", related_reference=item.originalReference)
    if code == "REFUND_FAILED":  # pspReference is the refund's: what comes back is that refund
        return replace(base, kind="refund_failed", related_reference=item.pspReference)
    if code in ("CHARGEBACK", "SECOND_CHARGEBACK"):
        return replace(base, kind="chargeback", related_reference=related)
    if code == "CHARGEBACK_REVERSED":
        return replace(base, kind="chargeback_reversed", related_reference=related)
    if code == "PAYOUT_THIRDPARTY":
        return replace(base, kind="payout_paid" if ok else "payout_failed")
    if code in ("PAYOUT_DECLINE", "PAYOUT_EXPIRE"):
        return replace(base, kind="payout_failed")
    if code == "PAIDOUT_REVERSED":
        return replace(base, kind="payout_reversed")
    # CAPTURE (automatic capture: AUTHORISATION is the deposit), failed modifications,
    # REPORT_AVAILABLE and the rest: recorded, nothing moves.
    return replace(base, detail=f"{code} success={item.success}: nothing moves")
