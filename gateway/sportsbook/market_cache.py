"""An edge's caches in front of PostgreSQL (bounded, TTL): markets and stake factors.

Safe to be stale: placement prices against the cached market, but the Redis
check-and-reserve (gateway/sportsbook/exposure.py) refuses unless the market is still
open, at the very price version the odds were read at and at the stored revision the
market (its limits too) was read at; a refusal of that kind makes the caller re-read the
market (``forget``) and decide again once. So ``ttl_ms`` only bounds how long an unused
entry stays, not how stale a decision can be.

Stake factors (``factors``) are not checked in Redis: a factor set through another edge
applies here within ``sportsbook.stake_factor_cache_ttl_ms`` (docs/SPORTSBOOK.md).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from fractions import Fraction
from typing import Generic, TypeVar

from gateway.sportsbook.markets import Market

V = TypeVar("V")

Loader = Callable[[str, Sequence[str]], Awaitable[dict[str, V]]]


class PartnerCache(Generic[V]):
    """(partner, id) -> value for ``ttl_ms``; at most ``size_max`` entries (oldest out).
    ``load(partner, ids)`` answers the ids it has; an absent id is cached as absent too."""

    def __init__(self, load: Loader[V], ttl_ms: int, size_max: int) -> None:
        assert ttl_ms >= 0 and size_max >= 1
        self._load = load
        self._ttl_ns = ttl_ms * 1_000_000
        self._size_max = size_max
        self._entries: OrderedDict[tuple[str, str], tuple[int, V | None]] = OrderedDict()

    async def get(self, partner_id: str, market_ids: Sequence[str]) -> dict[str, V]:
        """The partner's values among the ids (missing ones are absent)."""
        now = time.monotonic_ns()
        found: dict[str, V] = {}
        missing: list[str] = []
        for market_id in market_ids:
            entry = self._entries.get((partner_id, market_id))
            if entry is None or now - entry[0] > self._ttl_ns:
                missing.append(market_id)
            elif entry[1] is not None:
                found[market_id] = entry[1]
        if missing:
            loaded = await self._load(partner_id, missing)
            for market_id in missing:
                market = loaded.get(market_id)
                self._put((partner_id, market_id), now, market)
                if market is not None:
                    found[market_id] = market
        return found

    def forget(self, partner_id: str, market_ids: Sequence[str]) -> None:
        for market_id in market_ids:
            self._entries.pop((partner_id, market_id), None)

    def _put(self, key: tuple[str, str], now: int, market: V | None) -> None:
        self._entries[key] = (now, market)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size_max:
            self._entries.popitem(last=False)


#: (partner, market id) -> Market.
MarketCache = PartnerCache[Market]

class StakeFactorCache:
    """Every stake factor of a partner, re-read whole at most every ``ttl_ms`` (one query per
    partner, however many players bet; a partner holds at most
    ``sportsbook.stake_factors_max`` factors). ``load(partner)`` -> player id -> factor."""

    def __init__(self, load: Callable[[str], Awaitable[dict[str, Fraction]]], ttl_ms: int) -> None:
        assert ttl_ms >= 0
        self._load = load
        self._ttl_ns = ttl_ms * 1_000_000
        self._by_partner: dict[str, tuple[int, dict[str, Fraction]]] = {}

    async def factor(self, partner_id: str, player_id: str) -> Fraction:
        """The player's stake factor (1 without one)."""
        now = time.monotonic_ns()
        entry = self._by_partner.get(partner_id)
        if entry is None or now - entry[0] > self._ttl_ns:
            entry = (now, await self._load(partner_id))
            self._by_partner[partner_id] = entry
        return entry[1].get(player_id, Fraction(1))

    def forget(self, partner_id: str) -> None:
        self._by_partner.pop(partner_id, None)
