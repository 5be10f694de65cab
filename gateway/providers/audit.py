"""What a provider adapter may copy from a refused request into its audit record.

DESIGN.md section 4: every refused request leaves an audit row; section 8: bad input
changes nothing but that record. The record holds only bounded values read from the
request, so garbage cannot make it large: strings cut to ``AUDIT_STR_CHARS_MAX``
characters, integers beyond ``AUDIT_INT_ABS_MAX`` replaced by a marker, anything else
(floats, lists, objects) reduced to its type name. Each adapter chooses which fields to
copy (its ``audit_request``); these are the bounds they share.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

import msgspec

AUDIT_STR_CHARS_MAX: Final = 128
AUDIT_INT_ABS_MAX: Final = 10**30

_any_json: Final = msgspec.json.Decoder()


def bounded_value(value: object) -> object:
    """``value`` as the audit record may hold it: None and bools as they are, an int within
    +-``AUDIT_INT_ABS_MAX`` (else ``"<out of range>"``), a string or Decimal as text of at
    most ``AUDIT_STR_CHARS_MAX`` characters, anything else as ``"<typename>"``."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -AUDIT_INT_ABS_MAX < value < AUDIT_INT_ABS_MAX else "<out of range>"
    if isinstance(value, Decimal):
        return str(value)[:AUDIT_STR_CHARS_MAX]
    if isinstance(value, str):
        return value[:AUDIT_STR_CHARS_MAX]
    return f"<{type(value).__name__}>"


def peek_json(body: bytes, decoder: msgspec.json.Decoder = _any_json) -> dict | None:
    """Best-effort parse of a body refused before (or while) it was typed, for the audit:
    the JSON object it holds, or None for anything else (not JSON, not an object)."""
    try:
        value = decoder.decode(body)
    except Exception:  # noqa: BLE001 - any garbage is simply "nothing readable"
        return None
    return value if isinstance(value, dict) else None
