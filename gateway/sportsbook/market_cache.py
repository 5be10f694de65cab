"""An edge's short-lived cache of markets, in front of PostgreSQL (bounded, TTL).

Safe to be stale: placement prices against the cached market, but the Redis
check-and-reserve (gateway/sportsbook/exposure.py) refuses unless the market is still
open, at the very price version the odds were read at and at the stored revision the
market (its limits too) was read at; a refusal of that kind makes the caller re-read the
market (``forget``) and decide again once. So ``ttl_ms`` only bounds how long an unused
entry stays, not how stale a decision can be.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

from gateway.sportsbook.markets import Market

Loader = Callable[[str, Sequence[str]], Awaitable[dict[str, Market]]]


class MarketCache:
    """(partner, market id) -> Market for ``ttl_ms``; at most ``size_max`` entries (oldest out)."""

    def __init__(self, load: Loader, ttl_ms: int, size_max: int) -> None:
        assert ttl_ms >= 0 and size_max >= 1
        self._load = load
        self._ttl_ns = ttl_ms * 1_000_000
        self._size_max = size_max
        self._entries: OrderedDict[tuple[str, str], tuple[int, Market | None]] = OrderedDict()

    async def get(self, partner_id: str, market_ids: Sequence[str]) -> dict[str, Market]:
        """The partner's markets among ``market_ids`` (missing ones are absent)."""
        now = time.monotonic_ns()
        found: dict[str, Market] = {}
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

    def _put(self, key: tuple[str, str], now: int, market: Market | None) -> None:
        self._entries[key] = (now, market)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size_max:
            self._entries.popitem(last=False)
