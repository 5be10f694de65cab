"""A request a provider adapter refuses itself, and what its audit record may copy. Pure.

docs/DESIGN.md section 4: every refused request leaves an audit row; section 8: bad input
changes nothing but that record. A ``Refusal`` carries the audited ``Code``, a ``detail``
for the audit and the ``status`` that answers it in the provider's protocol, looked up in
the adapter's own table (``gateway/providers/<name>/statuses.py``) when the refusal is made.

The audit record holds only bounded values read from the request, so garbage cannot make it
large: strings cut to ``AUDIT_STR_CHARS_MAX`` characters, integers beyond
``AUDIT_INT_ABS_MAX`` replaced by a marker, anything else (floats, lists, objects) reduced
to its type name. Each adapter chooses which fields to copy (its ``audit_request``); these
are the bounds and readers they share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Generic, TypeVar

import msgspec

from gateway.shards.commands import Code

AUDIT_STR_CHARS_MAX: Final = 128
AUDIT_INT_ABS_MAX: Final = 10**30

S = TypeVar("S")

_any_json: Final = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class Refusal(Generic[S]):
    """A request refused by the adapter itself, before or instead of a shard command.

    ``code``: the gateway ``Code`` written to the audit record. ``detail``: why, for the
    audit (never sent to the provider). ``status``: the provider's answer to it, e.g. a
    Hub88 ``RS_*`` string, an Evolution status, a Pragmatic Play ``error`` number or a
    SoftSwiss ``Status`` (HTTP status, code, message). Each adapter's ``adapter.py`` builds
    them with its own ``refusal(code, detail)``, which reads the status table.
    """

    code: Code
    detail: str
    status: S


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


def field_getter(source: object) -> Callable[[str, object], object] | None:
    """A ``get(name, default)`` over what could be read of a request: a JSON object (dict)
    or a decoded msgspec Struct (attribute names); None for anything else."""
    if isinstance(source, dict):
        return source.get
    if source is not None and hasattr(source, "__struct_fields__"):
        def get(name: str, default: object = None) -> object:
            return getattr(source, name, default)
        return get
    return None


def str_field(source: object, name: str) -> str | None:
    """The string field ``name`` of a request Struct or JSON object, cut to
    ``AUDIT_STR_CHARS_MAX`` characters; None if absent or not a string."""
    value = source.get(name) if isinstance(source, dict) else getattr(source, name, None)
    return value[:AUDIT_STR_CHARS_MAX] if isinstance(value, str) else None
