"""Partner authentication for the generic API: ``Authorization: Bearer <api key>``.

Keys are stored as SHA-256 digests (config ``partners.<id>.api_keys``; docs/SECURITY.md).
They are long random strings, so a fast hash is right here: a slow password hash would
cost milliseconds per request on the hot path and buys nothing against a 128-bit key. The
presented key is hashed, the digest looked up, and the match confirmed with a
constant-time comparison. Two keys per partner may be valid at once (rotation overlap).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from gateway.config import Partner

#: Longest Authorization value read (a key is at most a few hundred characters).
AUTHORIZATION_CHARS_MAX = 512


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request authenticated as."""

    partner_id: str
    key_id: str
    roles: frozenset[str]
    digest: bytes  # sha256 of the key


class PartnerKeys:
    """digest -> Principal for every configured key."""

    def __init__(self, partners: dict[str, Partner]) -> None:
        self._by_digest: dict[bytes, Principal] = {}
        for partner_id, partner in partners.items():
            for key in partner.api_keys:
                digest = bytes.fromhex(key.sha256)
                assert len(digest) == 32 and digest not in self._by_digest, "checked by Settings.check"
                self._by_digest[digest] = Principal(partner_id, key.key_id, frozenset(key.roles or partner.roles), digest)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal of an ``Authorization`` header value, or None (missing, malformed,
        empty or unknown key)."""
        if not authorization or len(authorization) > AUTHORIZATION_CHARS_MAX:
            return None
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return None
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        principal = self._by_digest.get(digest)
        # The dict compares digests of the attacker's input, which leak nothing an attacker
        # can steer; the final decision is a constant-time comparison all the same.
        if principal is None or not hmac.compare_digest(principal.digest, digest):
            return None
        return principal
