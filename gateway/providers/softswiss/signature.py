"""SoftSwiss request signatures: ``X-REQUEST-SIGN`` = hex HMAC-SHA256 of the raw body.

Source: README.md ("Signature": header ``X-REQUEST-SIGN`` = hex
HMAC-SHA256 of the raw body with the casino's auth token as key). The key is the
integration's ``auth_token`` (``[integrations.<name>]``, settings.py), read once at start-up:
each integration verifies with its own token.

The check runs over the exact bytes received, before anything is decoded, and compares in
constant time (``hmac.compare_digest``). Hex digits are accepted in either case (hex is
case-insensitive); anything else -- absent, empty, too long, not ASCII, not 64 hex digits --
is simply a failed check, never an exception.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from gateway.providers.softswiss.settings import SoftSwissSettings

HEADER: Final = "X-REQUEST-SIGN"

#: Length of a hex SHA-256 digest; any other header length fails without hashing.
_HEX_DIGEST_CHARS: Final = 64


def sign(body: bytes, key: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of ``body`` under ``key``: the ``X-REQUEST-SIGN`` value."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | bytes | None, key: bytes) -> bool:
    """True iff ``header`` is the hex HMAC-SHA256 of ``body`` under ``key`` (constant time).

    ``header`` is the raw header value (str or bytes) or None when absent.
    """
    if header is None:
        return False
    if isinstance(header, str):
        try:
            header = header.encode("ascii")
        except UnicodeEncodeError:
            return False
    header = header.strip().lower()
    if len(header) != _HEX_DIGEST_CHARS:
        return False
    expected = sign(body, key).encode("ascii")
    return hmac.compare_digest(expected, header)


class SoftSwissSigner:
    """Verifies SoftSwiss requests with one integration's auth token, loaded once."""

    def __init__(self, auth_token: str) -> None:
        if not auth_token:
            raise ValueError("the softswiss integration's auth_token must not be empty")
        self._key = auth_token.encode("utf-8")

    @classmethod
    def from_settings(cls, softswiss: SoftSwissSettings) -> SoftSwissSigner:
        """The signer for the integration's ``auth_token``: ValueError if it is empty,
        TypeError if it is still an unresolved ``{ env = ... }`` / ``{ file = ... }``
        reference (``gateway.config.load_settings`` resolves them)."""
        if not isinstance(softswiss.auth_token, str):
            raise TypeError("the softswiss integration's auth_token was not resolved")
        return cls(softswiss.auth_token)

    def verify(self, body: bytes, header: str | bytes | None) -> bool:
        """Check ``X-REQUEST-SIGN`` over the raw request body (see ``verify``)."""
        return verify(body, header, self._key)

    def sign(self, body: bytes) -> str:
        """Hex HMAC-SHA256 of ``body`` (tests and tools sign requests with it)."""
        return sign(body, self._key)
