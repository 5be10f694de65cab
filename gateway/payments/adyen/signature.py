"""Adyen's notification HMAC (README.md, "Signature"), checked with Adyen's own library.

The signing string is the values of ``pspReference``, ``originalReference``,
``merchantAccountCode``, ``merchantReference``, ``amount.value``, ``amount.currency``,
``eventCode`` and ``success`` joined by ``:`` (missing ones empty); HMAC-SHA256 with the
hex-decoded key; Base64; compared with ``additionalData.hmacSignature``
(``Adyen.util.is_valid_hmac_notification``). It must be computed over the item as received
(the library formats the values itself), so it is given the decoded JSON, not our structs.
"""

from __future__ import annotations

import binascii
from typing import Any

from Adyen import util


def valid(item: dict[str, Any], hmac_key_hex: str) -> bool:
    """True if the NotificationRequestItem ``item`` carries a valid signature under the key.
    A missing or empty signature, a malformed item or key is False, never an exception."""
    additional = item.get("additionalData")
    if not isinstance(additional, dict) or not additional.get("hmacSignature"):
        return False
    try:
        return bool(util.is_valid_hmac_notification(item, hmac_key_hex))
    except (KeyError, TypeError, ValueError, binascii.Error):
        return False


def sign(item: dict[str, Any], hmac_key_hex: str) -> str:
    """The signature Adyen would send for ``item`` (tests and the load test sign with it)."""
    unsigned = {k: v for k, v in item.items() if k != "additionalData"}
    return util.generate_notification_sig(unsigned, hmac_key_hex).decode()
