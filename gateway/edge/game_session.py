"""A game-launch session as the provider adapters read it: pure data, no I/O.

The operator opens a session (``POST /v1/sessions``) and hands its token to the game; the
provider sends the token back on every wallet call. ``gateway.edge.sessions.SessionStore``
keeps these in Redis (docs/DESIGN.md section 7); the adapters' pure rules
(``gateway/providers/<name>/adapter.py``) only ever see a ``GameSession`` or None, and import
it from here so that they never import the Redis code.
"""

from __future__ import annotations

import msgspec


class GameSession(msgspec.Struct, frozen=True):
    """One session token and what it was issued for.

    ``token``: the opaque token itself. ``partner_id`` and ``player_id`` (the player),
    ``currency`` (ISO 4217 code), ``integration`` (the provider integration's name, e.g.
    ``"evolution"``; only that integration's adapter accepts the token) and ``game_id``:
    what the operator opened it for. ``expires_at_s``: Unix seconds from which it is expired (it stays readable
    for a grace period after that, so that "expired" can be told from "never issued").
    ``replaced_by``: the new token when this one was rotated (Evolution's ``/check`` issues
    a new sid and the old one is refused from then on, gateway/providers/evolution/README.md).
    """

    token: str
    partner_id: str
    player_id: str
    currency: str
    integration: str
    game_id: str
    expires_at_s: int  # Unix seconds
    replaced_by: str | None = None
    # When the game session began (the gateway's clock, gateway/clock.py; a rotated token
    # keeps it): the shard ends play at the player's session time limit. 0: not known.
    started_at_us: int = 0

    def started_us(self) -> int | None:
        """The session's start for ``Debit.session_started_us`` (None: not known)."""
        return self.started_at_us or None

    def expired(self, now_s: float) -> bool:
        """True once ``now_s`` (Unix seconds) has reached ``expires_at_s``."""
        return now_s >= self.expires_at_s


class SessionStoreUnavailable(Exception):
    """Redis is down or slow: session-dependent operations answer retryably."""
