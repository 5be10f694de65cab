"""Stripe event bodies, the fields the wallet reads (README.md, "Wire").

``{"id": "evt_...", "type": "payment_intent.succeeded", "created": <unix s>,
"data": {"object": {...}}}``. Amounts are integer minor units ("the smallest currency
unit"); currencies are lower-case ISO codes. The operator's merchant reference rides in the
object's ``metadata.merchant_reference`` (set when the operator's cashier creates the
PaymentIntent or the payout).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
#: Amounts in the smallest unit: never negative on these objects, at most money.AMOUNT_MINOR_CEILING.
Amount = Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{3}\Z")]


class Refund(msgspec.Struct):
    id: Id
    amount: Amount
    currency: Currency
    status: str = "succeeded"


class RefundList(msgspec.Struct):
    data: Annotated[list[Refund], msgspec.Meta(max_length=100)] = []


class StripeObject(msgspec.Struct):
    """The union of the objects of the events read (PaymentIntent, Charge, Dispute, Payout)."""

    id: Id
    object: str
    amount: Amount = 0
    currency: Currency = "eur"
    metadata: dict[str, str] = {}
    payment_intent: str | None = None  # Charge, Dispute
    charge: str | None = None  # Dispute
    status: str = ""  # Dispute: won|lost|...; Payout: paid|failed
    refunds: RefundList | None = None  # Charge
    last_payment_error: dict | None = None  # PaymentIntent
    failure_message: str | None = None  # Payout


class Data(msgspec.Struct):
    object: StripeObject


class Event(msgspec.Struct):
    id: Id
    type: Annotated[str, msgspec.Meta(max_length=128)]
    data: Data
    created: int = 0
    livemode: bool = False
