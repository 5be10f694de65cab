"""Adyen standard notification (webhook) bodies, as Adyen sends them (README.md, "Wire").

``{"live": "false", "notificationItems": [{"NotificationRequestItem": {...}}]}``; amounts
are integer minor units (``amount.value``); ``success`` is the string "true" or "false".
"""

from __future__ import annotations

from typing import Annotated

import msgspec

Text = Annotated[str, msgspec.Meta(max_length=256)]


#: The largest amount any wire carries (money.AMOUNT_MINOR_CEILING): a larger or negative
#: value is not a notification we can apply (and would not fit a bigint column).
Value = Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]


class Amount(msgspec.Struct):
    value: Value
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}\Z")]


class NotificationRequestItem(msgspec.Struct):
    eventCode: Text
    success: Annotated[str, msgspec.Meta(pattern=r"^(true|false)\Z")]
    pspReference: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    merchantAccountCode: Text
    amount: Amount
    eventDate: Text = ""
    originalReference: Text = ""
    merchantReference: Text = ""
    reason: Annotated[str, msgspec.Meta(max_length=1024)] = ""
    additionalData: dict[str, str | int | bool | None] = {}


class Wrapped(msgspec.Struct):
    NotificationRequestItem: NotificationRequestItem


class Notification(msgspec.Struct):
    notificationItems: Annotated[list[Wrapped], msgspec.Meta(min_length=1)]
    live: str = "false"
