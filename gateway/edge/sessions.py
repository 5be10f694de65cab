"""Game-launch sessions: opaque tokens in Redis with a TTL (DESIGN.md section 7).

A token is created by the operator (``POST /v1/sessions``) and passed to the game; the
provider sends it back on every wallet call. A token is *expired* once ``expires_at_s`` has
passed, but it stays readable in Redis for ``grace_s`` more so that an adapter can tell
"expired" (wins and rollbacks still accepted, providers.md "Common ground") from "never
issued" (refused). Redis holds nothing that cannot be rebuilt: losing it logs players out of
open games, never loses money.
"""

from __future__ import annotations

import secrets
import time

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

KEY_PREFIX = "gw:session:"
GRACE_S = 7 * 24 * 3600  # how long an expired token stays recognisable as "expired"


class GameSession(msgspec.Struct, frozen=True):
    token: str
    player_id: str
    currency: str
    provider: str
    game_id: str
    expires_at_s: int  # Unix seconds

    def expired(self, now_s: float) -> bool:
        return now_s >= self.expires_at_s


class SessionStoreUnavailable(Exception):
    """Redis is down or slow: session-dependent operations answer retryably."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(GameSession)


class SessionStore:
    """Create and look up game sessions. All methods raise SessionStoreUnavailable on Redis errors."""

    def __init__(self, client: aioredis.Redis, ttl_s: int) -> None:
        assert ttl_s > 0
        self._redis = client
        self._ttl_s = ttl_s

    async def create(
        self, player_id: str, currency: str, provider: str, game_id: str, now_s: float | None = None
    ) -> GameSession:
        now_s = time.time() if now_s is None else now_s
        session = GameSession(
            token=secrets.token_urlsafe(24),
            player_id=player_id,
            currency=currency,
            provider=provider,
            game_id=game_id,
            expires_at_s=int(now_s) + self._ttl_s,
        )
        try:
            await self._redis.set(
                KEY_PREFIX + session.token, _encoder.encode(session), ex=self._ttl_s + GRACE_S
            )
        except (RedisError, OSError) as exc:
            raise SessionStoreUnavailable(str(exc)) from exc
        return session

    async def get(self, token: str) -> GameSession | None:
        """The session for ``token``, expired or not; None if it was never issued (or long gone)."""
        if not token or len(token) > 256:
            return None
        try:
            raw = await self._redis.get(KEY_PREFIX + token)
        except (RedisError, OSError) as exc:
            raise SessionStoreUnavailable(str(exc)) from exc
        return None if raw is None else _decoder.decode(raw)

    async def expire_now(self, token: str) -> None:
        """Mark a session expired (tests, operator logout). Keeps it recognisable as expired."""
        session = await self.get(token)
        if session is None:
            return
        expired = msgspec.structs.replace(session, expires_at_s=int(time.time()) - 1)
        try:
            await self._redis.set(KEY_PREFIX + token, _encoder.encode(expired), ex=GRACE_S)
        except (RedisError, OSError) as exc:
            raise SessionStoreUnavailable(str(exc)) from exc
