"""A PSP notification, PSP-neutral: what each adapter's event table turns a notification into.

Pure data. ``kind`` is one of KINDS; the adapters' READMEs list which of their event types
become which kind (payments.md restated in docs/PAYMENTS.md).
"""

from __future__ import annotations

import msgspec

#: What a notification item means to the wallet.
KINDS = (
    "deposit_succeeded",  # the deposit is confirmed: credit it (Adyen AUTHORISATION true; Stripe payment_intent.succeeded)
    "deposit_failed",  # refused, cancelled or expired before any money moved
    "refund",  # part or all of a credited deposit went back to the payer
    "refund_failed",  # a refund did not go through: its amount comes back
    "chargeback",  # the payer disputed a deposit (a second chargeback too)
    "chargeback_reversed",  # the dispute was decided for the operator
    "payout_paid",  # a withdrawal reached the player
    "payout_failed",  # a withdrawal was declined, expired or failed before it was paid
    "payout_reversed",  # a paid withdrawal came back (Adyen PAIDOUT_REVERSED)
    "ignored",  # recorded, moves nothing (e.g. Adyen CAPTURE under automatic capture)
)

#: Kinds that need the money movement they refer to applied first (else they wait, parked):
#: kind -> the kinds that must have been applied under ``related_reference``.
NEEDS: dict[str, tuple[str, ...]] = {
    "refund": ("deposit_succeeded",),
    "refund_failed": ("refund",),
    "chargeback": ("deposit_succeeded",),
    "chargeback_reversed": ("chargeback",),
}


class PspEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """One notification item as the pipeline sees it.

    ``event_key``: the PSP's identity of the notification (Adyen: pspReference, eventCode,
    success; Stripe: the event id, and the object for events carrying several). ``money_key``:
    the PSP's identity of the money movement (the wallet's transaction id derives from it, so
    one movement is applied once however it is notified). ``related_reference``: the PSP
    reference of the payment it refers to (a refund's deposit), or of the refund a failed
    refund undoes. ``merchant_reference``: the operator's reference of the deposit or
    withdrawal. Amounts in integer minor units of ``currency``.
    """

    event_key: str
    event_type: str
    kind: str
    money_key: str = ""
    psp_reference: str = ""
    related_reference: str = ""
    merchant_reference: str = ""
    currency: str = ""
    amount_minor: int = 0
    detail: str = ""
