"""Helpers the HTTP tests share: a player's balance over the generic API, expiring a session.

Kept apart from ``conftest.py`` (fixtures and the gateway process) so that a test module
imports only what it uses.
"""

from __future__ import annotations

import httpx
import redis.asyncio as aioredis

from gateway.edge.sessions import KEY_PREFIX, SessionStore
from gateway.providers.integration import Caller


def wallet_of(response: httpx.Response, currency: str = "EUR") -> tuple[int, int]:
    """(cash_minor, bonus_minor) of the one wallet in ``currency`` in an answer of
    ``GET /v1/players/{player_id}/balance``; fails unless the answer is a 200 holding exactly
    one wallet in that currency."""
    assert response.status_code == 200, response.text
    rows = [b for b in response.json()["balances"] if b["currency"] == currency]
    assert len(rows) == 1, response.json()
    return rows[0]["cash_minor"], rows[0]["bonus_minor"]


async def balance(client: httpx.AsyncClient, player: str, currency: str = "EUR") -> tuple[int, int]:
    """(cash_minor, bonus_minor) of ``player``'s wallet in ``currency``, read over the
    generic API (``wallet_of``)."""
    return wallet_of(await client.get(f"/v1/players/{player}/balance"), currency)


async def cash(client: httpx.AsyncClient, player: str, currency: str = "EUR") -> int:
    """cash_minor + bonus_minor of ``player``'s wallet in ``currency``: what a provider
    shows as the player's balance."""
    cash_minor, bonus_minor = await balance(client, player, currency)
    return cash_minor + bonus_minor


async def expire(redis_url: str, token: str) -> bool:
    """Expire the session ``token`` now (``SessionStore.expire_now``) in the Redis at
    ``redis_url``. Returns True if its key is still in Redis afterwards: an expired token
    stays recognisable as expired (for wins and rollbacks) rather than unknown."""
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await SessionStore(redis, 3600).expire_now(token)
        return await redis.exists(KEY_PREFIX + token) == 1
    finally:
        await redis.aclose()


# ---- unit tests of the provider adapters -------------------------------------------------

#: The sandbox partner (config/sandbox.toml) that owns every sandbox integration.
SANDBOX_PARTNER = "demo"


def sandbox_caller(provider: str) -> Caller:
    """The sandbox integration of ``provider``: named after it, owned by ``demo``."""
    return Caller.of(provider, provider, SANDBOX_PARTNER)


def sandbox_scope(provider: str) -> str:
    """The idempotency scope of the sandbox integration of ``provider``: ``"demo:<provider>"``."""
    return sandbox_caller(provider).scope


def integration_config(provider: str, **fields: object) -> dict:
    """Settings data (for ``msgspec.convert(..., Settings)``) holding the demo partner and one
    integration of ``provider`` named after it, with ``fields``."""
    return {
        "partners": {SANDBOX_PARTNER: {"api_keys": []}},
        "integrations": {provider: {"provider": provider, "partner_id": SANDBOX_PARTNER, **fields}},
    }
