"""Pragmatic Play request hash: md5 of the sorted parameters with the secret key appended.

Source: README.md ("Hash: parameter ``hash`` = md5 of all
other parameters sorted by name, joined as ``k=v&k=v``, with the secret key appended
directly after the string"). Example: parameters ``userId=42``, ``amount=1.50``,
``providerId=PragmaticPlay`` and secret ``s3cr3t`` give
``md5("amount=1.50&providerId=PragmaticPlay&userId=42s3cr3t")``.

Details decided here (README.md, "Choices"):

* Values are the form-decoded values (what the provider had before it URL-encoded them),
  encoded as UTF-8 for md5. Names are sorted by code point (ASCII order for Pragmatic's
  names, so ``providerId`` sorts before ``reference``, and upper case before lower case).
* **Empty-valued parameters** (``bonusCode=``): README.md says "all other parameters",
  so the primary string includes them as ``bonusCode=``. Integrations that drop empty
  parameters before hashing exist, so when that fails and the request has empty values,
  the string without them is tried too. Both need the secret, and the adapter treats an
  empty value exactly like an absent parameter, so accepting either form lets no one change
  what a request means.
* The received ``hash`` is compared case-insensitively (hex), in constant time
  (``hmac.compare_digest``). A missing, empty, or non-32-hex-digit hash never verifies.

md5 is what the protocol prescribes; it authenticates with a shared secret here, it is not
our choice of hash.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

#: The parameter that carries the hash; it is not part of the hashed string.
HASH_PARAM: Final = "hash"

_HEX: Final = frozenset("0123456789abcdef")


def canonical_string(params: Mapping[str, str], *, include_empty: bool = True) -> str:
    """``k=v&k=v`` of every parameter but ``hash``, sorted by name (the string before the secret).

    ``include_empty=False`` leaves out parameters whose value is ``""``.
    """
    return "&".join(
        f"{name}={params[name]}"
        for name in sorted(params)
        if name != HASH_PARAM and (include_empty or params[name] != "")
    )


def compute_hash(params: Mapping[str, str], secret: str, *, include_empty: bool = True) -> str:
    """Lower-case hex md5 of ``canonical_string(params) + secret`` (UTF-8)."""
    text = canonical_string(params, include_empty=include_empty) + secret
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _well_formed(value: object) -> str | None:
    if not isinstance(value, str) or len(value) != 32:
        return None
    lowered = value.lower()
    return lowered if set(lowered) <= _HEX else None


def verify_hash(params: Mapping[str, str], secret: str) -> bool:
    """True iff ``params["hash"]`` is the md5 of the other parameters plus ``secret``.

    Tried with empty-valued parameters included, then (only if there are any) without them.
    Never raises for bad input: a missing or malformed hash is simply False.
    """
    received = _well_formed(params.get(HASH_PARAM))
    if received is None:
        return False
    expected = compute_hash(params, secret, include_empty=True)
    if hmac.compare_digest(received, expected):
        return True
    if any(value == "" for name, value in params.items() if name != HASH_PARAM):
        expected = compute_hash(params, secret, include_empty=False)
        return hmac.compare_digest(received, expected)
    return False


class PragmaticHasher:
    """The secret, loaded once from the integration's ``secret_key``; verifies and signs."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the pragmatic integration's secret_key must not be empty")
        self._secret = secret

    def verify(self, params: Mapping[str, str]) -> bool:
        """See ``verify_hash``."""
        return verify_hash(params, self._secret)

    def sign(self, params: Mapping[str, str]) -> str:
        """The ``hash`` Pragmatic would send with ``params`` (tests, tools)."""
        return compute_hash(params, self._secret)
