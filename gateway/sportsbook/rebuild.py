"""Rebuild the exposure book from PostgreSQL (``gateway sportsbook rebuild-exposure``).

For when Redis lost its data (a restart without persistence, a failover) or drifted: clear
every ``sb:*`` key, mirror every market again (status, price version, revision), then put
back the reservation of every open bet, computed again from its stored terms
(``liability.contributions`` of ``resolve.model_of``) without limit checks: PostgreSQL says
these bets were accepted. While it runs, placements find markets unmirrored and are refused
(``market_suspended``), so run it with placement paused, or accept those refusals for its
duration; nothing unchecked is ever accepted. A bet row exists only once its stake debit
committed (the two share one commit), so every bet restored holds its stake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.sportsbook.exposure import ExposureBook
from gateway.sportsbook.liability import contributions
from gateway.sportsbook.resolve import model_of
from gateway.sportsbook.store import SportsbookStore

BETS_PER_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class Rebuilt:
    keys_deleted: int
    markets: int
    bets: int


async def rebuild_exposure(store: SportsbookStore, book: ExposureBook,
                           progress: Callable[[int], None] | None = None) -> Rebuilt:
    """Clear and rebuild the book (module docstring); ``progress(bets so far)`` after each page."""
    deleted = await book.clear()
    markets = await store.all_markets()
    for partner_id, market_id, status, price_version, revision in markets:
        await book.mirror_market(partner_id, market_id, status, price_version, revision)
    restored = 0
    after = ("", "")
    while True:  # pages of open bets; ends on a short page
        page = await store.open_bets_after(after, BETS_PER_PAGE)
        for bet in page:
            await book.restore(bet.partner_id, bet.bet_id, contributions(model_of(bet), bet.potential_return_minor))
        restored += len(page)
        if progress is not None:
            progress(restored)
        if len(page) < BETS_PER_PAGE:
            break
        after = (page[-1].partner_id, page[-1].bet_id)
    return Rebuilt(deleted, len(markets), restored)
