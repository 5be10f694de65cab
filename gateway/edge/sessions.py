"""Game-launch sessions: opaque tokens in Redis with a TTL (docs/DESIGN.md section 7).

A token is created by the operator (``POST /v1/sessions``) and passed to the game; the
provider sends it back on every wallet call. A token is *expired* once ``expires_at_s`` has
passed, but it stays readable in Redis for ``grace_s`` more so that an adapter can tell
"expired" (wins and rollbacks still accepted: "Common ground" in each
gateway/providers/<name>/README.md) from "never issued" (refused). ``GameSession`` itself is
pure data in ``gateway.edge.game_session`` (re-exported here). Redis holds nothing that cannot be rebuilt: losing it logs players out of
open games, never loses money.

Lookups are coalesced: every provider wallet call reads its session, and redis-py spends
about 60 us of CPU per command in its own layers (profile in docs/BENCHMARKS.md,
"Adapter overhead"), more than the rest of an Evolution request's parsing. So ``get`` queues
the token and one task at a time sends the queued tokens as one ``MGET`` of at most
``lookup_batch_size_max`` keys; tokens queued while an ``MGET`` is in flight go in the next.
Redis stays the only copy: nothing is cached, so an expiry or rotation written by anyone is
seen by the next lookup. The queue is bounded by the requests in flight, which uvicorn bounds
(``limit_concurrency``).
"""

from __future__ import annotations

import asyncio
import secrets
import time

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from gateway import clock
from gateway.edge.game_session import GameSession, SessionStoreUnavailable
from gateway.logs import get_logger

log = get_logger("gateway.sessions")

KEY_PREFIX = "gw:session:"
GRACE_S = 7 * 24 * 3600  # how long an expired token stays recognisable as "expired"

__all__ = ["GRACE_S", "KEY_PREFIX", "GameSession", "SessionStore", "SessionStoreUnavailable"]


_Raw = bytes | str | None  # a value as redis-py types MGET's answer
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(GameSession)


def _decode(raw: bytes | str) -> GameSession | None:
    """A stored session; None for a value in an older or foreign shape (e.g. written before
    sessions named their partner): such a token is treated as never issued."""
    try:
        return _decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


class SessionStore:
    """Create and look up game sessions. All methods raise SessionStoreUnavailable on Redis errors.

    ``ttl_s``: how long a new token is live, in seconds. ``lookup_batch_size_max``: the most
    tokens one coalesced ``MGET`` carries (see the module docstring).
    """

    def __init__(self, client: aioredis.Redis, ttl_s: int, lookup_batch_size_max: int = 256) -> None:
        assert ttl_s > 0
        assert lookup_batch_size_max >= 1
        self._redis = client
        self._ttl_s = ttl_s
        self._lookup_batch_size_max = lookup_batch_size_max
        # Queued lookups: (redis key, future of the raw value). One drain task at a time. The
        # value is bytes (the client does not decode responses); redis-py types it wider.
        self._lookups: list[tuple[str, asyncio.Future[_Raw]]] = []
        self._drain: asyncio.Task[None] | None = None

    async def create(
        self, partner_id: str, player_id: str, currency: str, integration: str, game_id: str,
        now_s: float | None = None,
    ) -> GameSession:
        """A new live token for (``partner_id``, ``player_id``) on ``integration``, live for
        ``ttl_s``. Raises SessionStoreUnavailable."""
        now_s = time.time() if now_s is None else now_s
        session = GameSession(
            token=secrets.token_urlsafe(24),
            partner_id=partner_id,
            player_id=player_id,
            currency=currency,
            integration=integration,
            game_id=game_id,
            expires_at_s=int(now_s) + self._ttl_s,
            started_at_us=clock.now_us(),
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
        future: asyncio.Future[_Raw] = asyncio.get_running_loop().create_future()
        self._lookups.append((KEY_PREFIX + token, future))
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_lookups())
        raw = await future
        return None if raw is None else _decode(raw)

    async def get_for_settlement(self, token: str | None, scope: str) -> GameSession | None:
        """The session of a win, rollback or promo payout; None if ``token`` is absent,
        unknown, or Redis is down (logged as ``session_store_unavailable`` with ``scope``).

        Settlements must not depend on Redis (docs/DESIGN.md section 7; "Common ground" in
        each gateway/providers/<name>/README.md: wins and rollbacks are accepted after the
        session ended), so an adapter settles without the session rather than refuse.
        """
        if token is None:
            return None
        try:
            return await self.get(token)
        except SessionStoreUnavailable as exc:
            log.warning("session_store_unavailable", scope=scope,
                        action="settling without the session", error=repr(exc))
            return None

    async def _drain_lookups(self) -> None:
        """Answer queued lookups with one MGET per batch until the queue is empty.

        A Redis error fails that batch's lookups with SessionStoreUnavailable; later batches
        are tried afresh. A waiter that went away (cancelled) is skipped.
        """
        try:
            while self._lookups:
                batch = self._lookups[: self._lookup_batch_size_max]
                del self._lookups[: len(batch)]
                try:
                    values = await self._redis.mget([key for key, _ in batch])
                except (RedisError, OSError) as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(SessionStoreUnavailable(str(exc)))
                    continue
                except BaseException as exc:  # cancelled or a bug: nobody may wait forever
                    for _, future in batch + self._lookups:
                        if not future.done():
                            future.set_exception(SessionStoreUnavailable(repr(exc)))
                    self._lookups.clear()
                    raise
                assert len(values) == len(batch)
                for (_, future), value in zip(batch, values, strict=True):
                    if not future.done():
                        future.set_result(value)
        finally:
            self._drain = None

    async def rotate(self, token: str, now_s: float | None = None) -> GameSession | None:
        """Issue a new token for the session of ``token``; the old one is marked replaced.

        Returns the new session (fresh TTL), or None if ``token`` is unknown or already
        replaced. Atomic per old token: of two concurrent rotations only one wins (the loser
        gets None), so an old sid can never yield two live sids.
        """
        session = await self.get(token)
        if session is None or session.replaced_by is not None:
            return None
        now_s = time.time() if now_s is None else now_s
        new = msgspec.structs.replace(
            session, token=secrets.token_urlsafe(24), expires_at_s=int(now_s) + self._ttl_s
        )
        old = msgspec.structs.replace(session, replaced_by=new.token)
        try:
            # WATCH the old key: if another rotation replaced it meanwhile, EXEC fails.
            async with self._redis.pipeline(transaction=True) as pipe:
                await pipe.watch(KEY_PREFIX + token)
                current = await pipe.get(KEY_PREFIX + token)
                old_session = None if current is None else _decode(current)
                if old_session is None or old_session.replaced_by is not None:
                    return None
                pipe.multi()
                pipe.set(KEY_PREFIX + new.token, _encoder.encode(new), ex=self._ttl_s + GRACE_S)
                pipe.set(KEY_PREFIX + token, _encoder.encode(old), ex=GRACE_S)
                await pipe.execute()
        except WatchError:
            return None
        except (RedisError, OSError) as exc:
            raise SessionStoreUnavailable(str(exc)) from exc
        return new

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
