"""The settlement driver: settles the open bets a stored result completes, until done.

A thin asyncio shell over the pure parts (gateway/sportsbook/resolve.py decides; the
player's shard moves the money). It runs in every edge process; a transaction-level
advisory lock per result keeps two drivers off the same result, and every step is
idempotent anyway, so a crash at any point only repeats work:

1. every ``settle_poll_interval_ms`` (or at once when woken by a new result) it reads up to
   ``UNSETTLED_RESULTS_PER_TURN`` results not yet marked settled, oldest first;
2. for each, under the result's lock, it pages through the open bets with a leg on the
   market (``settle_bets_per_step_max`` at a time) and, for each bet whose legs are all
   resolved now, submits one payout ``Credit`` to the player's shard: idempotency key
   (``<partner>:sportsbook``, ``<bet_id>:payout``), naming the stake debit (which settles
   it; the round, the bet id, holds no other bet) and carrying the bet's new state
   (``BetMark``: ``settled`` with its return), which commits in the same batch as the
   money; a lost bet is paid 0, which settles the stake the same way. The return is
   computed once per bet shape (``resolve.SettlementMemo``). At most
   ``settle_in_flight_max`` payouts are in flight;
3. the settled bets' liability is released; once every bet of the market is done the
   result is marked settled. A bet still waiting for another leg's result stays open;
4. a correction (a later result for a resulted selection) re-settles the settled bets
   whose return it changes: the standing payout is reversed and the new return paid
   (``_resettle``); a cashed-out bet is final and never re-settled.

Retries: a turn that fails (PostgreSQL or the shard unavailable) is logged and the result
stays unsettled, so the next turn repeats it: the driver retries for as long as it runs,
once per poll interval, by design (a result must eventually settle).
"""

from __future__ import annotations

import asyncio
import contextlib

from gateway import metrics
from gateway.config import SportsbookSettings
from gateway.logs import get_logger
from gateway.shards.commands import (
    ROUND_ANY,
    BetMark,
    Code,
    Command,
    Credit,
    Overloaded,
    Result,
    Rollback,
    ShardUnavailable,
    idempotency_scope,
)
from gateway.sportsbook.exposure import ExposureUnavailable
from gateway.sportsbook.resolve import SettlementMemo
from gateway.sportsbook.settlement import RoundingMode
from gateway.sportsbook.store import SportsbookStore, SportsbookStoreUnavailable, StoredBet

log = get_logger("gateway.sportsbook")

SPORTSBOOK_SOURCE = "sportsbook"  # idempotency source of sportsbook stakes and payouts
SPORTSBOOK_GAME_ID = "sportsbook"
UNSETTLED_RESULTS_PER_TURN = 16
PAGES_IN_FLIGHT_MAX = 4  # pages of one market worked on at once


def payout_transaction_id(bet_id: str) -> str:
    """The idempotency key's id of a bet's payout credit."""
    return f"{bet_id}:payout"


class SettlementDriver:
    """Background settlement of results (module docstring). ``submit`` sends a command to
    the player's shard (EdgeContext.submit); ``release_many(partner, bet_ids)`` frees the
    settled bets' reserved liability (the exposure book), best effort."""

    def __init__(self, store: SportsbookStore, submit, release_many, settings: SportsbookSettings) -> None:
        self.store = store
        self.submit = submit
        self.release_many = release_many
        self.settings = settings
        self.rounding: RoundingMode = settings.rounding  # type: ignore[assignment]
        self._wake = asyncio.Event()
        self._paid: dict[str, tuple[int, str, bool]] = {}  # bet id -> (return, payout txn, replayed), within one page
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sportsbook-settlement")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        """A result was stored: look now rather than at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        interval_s = self.settings.settle_poll_interval_ms / 1000
        while True:  # the edge's life; stop() cancels it
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval_s)
            self._wake.clear()
            try:
                await self.turn()
            except (SportsbookStoreUnavailable, ShardUnavailable, ExposureUnavailable, OSError) as exc:
                log.warning("settlement_turn_failed", error=repr(exc))
            except Exception as exc:
                log.error("settlement_turn_error", error=repr(exc), exc_info=exc)

    async def turn(self) -> int:
        """One pass over the unsettled results; returns the number of bets settled."""
        settled = 0
        for partner_id, result_id, market_id in await self.store.unsettled_results(UNSETTLED_RESULTS_PER_TURN):
            async with self.store.result_lock(partner_id, result_id) as locked:
                if not locked:
                    continue  # another edge's driver has it
                n, complete = await self._settle_market(partner_id, market_id, result_id)
                settled += n
                if complete:
                    await self.store.result_settled(partner_id, result_id)
        return settled

    async def _settle_market(self, partner_id: str, market_id: str, result_id: str) -> tuple[int, bool]:
        """Settle (or re-settle) what the market's results complete; (bets paid, every payout
        done). Pages are read in order and worked on concurrently, at most
        ``PAGES_IN_FLIGHT_MAX`` at once, their payouts bounded by ``settle_in_flight_max``."""
        gate = asyncio.Semaphore(self.settings.settle_in_flight_max)
        working: set[asyncio.Task[tuple[int, bool]]] = set()
        done: list[tuple[int, bool]] = []
        after = ""
        try:
            while True:  # pages of the market's bets; ends on an empty page
                page, last = await self.store.bets_on_market(partner_id, market_id, after,
                                                             self.settings.settle_bets_per_step_max)
                if last is None:
                    break
                after = last
                working.add(asyncio.create_task(self._settle_page(partner_id, page, result_id, gate)))
                if len(working) >= PAGES_IN_FLIGHT_MAX:
                    finished, working = await asyncio.wait(working, return_when=asyncio.FIRST_COMPLETED)
                    done += [t.result() for t in finished]
            done += await asyncio.gather(*working)
        finally:
            for task in working:
                task.cancel()
        return sum(n for n, _ in done), all(ok for _, ok in done)

    async def _settle_page(self, partner_id: str, page: list[StoredBet], result_id: str,
                           gate: asyncio.Semaphore) -> tuple[int, bool]:
        markets = sorted({leg.market_id for bet in page for leg in bet.legs})
        outcomes = await self.store.outcomes(partner_id, markets)
        memo = SettlementMemo()

        async def one(bet: StoredBet) -> str:
            return_minor = memo.return_minor(bet, outcomes, rounding=self.rounding,
                                             payout_max_minor=self.settings.payout_max_minor)
            if return_minor is None:
                return "waiting"  # for another leg's result
            if bet.state == "settled" and return_minor == bet.return_minor:
                return "unchanged"  # settled already, and a correction did not change it
            async with gate:
                if bet.state == "open":
                    return await self._pay(bet, return_minor, result_id)
                return await self._resettle(bet, return_minor, result_id)

        states = await asyncio.gather(*(one(bet) for bet in page))
        paid = [(bet.bet_id, ret, tx, replayed) for bet, state in zip(page, states, strict=True)
                if state == "paid" and bet.state == "open" for ret, tx, replayed in [self._paid.pop(bet.bet_id)]]
        # A payout's credit marks its bet settled in the same commit (BetMark). A replayed
        # payout may predate that (a crash mid-page before migration 0009): mark it here.
        await self.store.settle_bets(partner_id, [(b, r, t) for b, r, t, replayed in paid if replayed], result_id)
        metrics.sportsbook_bets_settled_total.inc(len(paid))
        try:
            await self.release_many(partner_id, [bet_id for bet_id, _, _, _ in paid])
        except ExposureUnavailable as exc:  # over-reserved until a rebuild: conservative, never unsafe
            log.warning("settlement_release_failed", bets=len(paid), error=repr(exc))
        return states.count("paid"), "retry" not in states

    async def _send(self, bet: StoredBet, command: Command) -> Result | None:
        """``command`` to the player's shard; None when it should be retried later."""
        try:
            result: Result = await self.submit(command)
        except (ShardUnavailable, Overloaded) as exc:
            log.warning("settlement_retry", bet_id=bet.bet_id, error=repr(exc))
            return None
        return result

    def _refused(self, bet: StoredBet, result: Result) -> str:
        # The shard refused (the stake debit is not open: rolled back, never committed;
        # or a key reused): the bet stays as it is for an operator (logged, counted),
        # never retried blindly.
        log.error("settlement_payout_refused", partner_id=bet.partner_id, bet_id=bet.bet_id, code=result.code.value)
        metrics.sportsbook_settlement_refused_total.inc()
        return "refused"

    async def _pay(self, bet: StoredBet, return_minor: int, result_id: str) -> str:
        """First settlement: credit the return naming the stake debit (which settles it).
        "paid" once committed (the page then marks it settled and releases its liability),
        "retry" when the shard was unavailable, "refused"."""
        terms = bet.terms
        payout = payout_transaction_id(bet.bet_id)
        result = await self._send(bet, Credit(
            scope=idempotency_scope(bet.partner_id, SPORTSBOOK_SOURCE), transaction_id=payout,
            partner_id=bet.partner_id, player_id=terms.player_id, currency=terms.currency, amount_minor=return_minor,
            round_id=bet.bet_id, game_id=SPORTSBOOK_GAME_ID, bet_transaction_id=bet.bet_id,
            mark=BetMark(bet.bet_id, "settled", return_minor, result_id, payout, from_states=("open",)),
        ))
        if result is None:
            return "retry"
        if result.code is not Code.OK:
            return self._refused(bet, result)
        self._paid[bet.bet_id] = (return_minor, payout, result.replayed)
        return "paid"

    async def _resettle(self, bet: StoredBet, return_minor: int, result_id: str) -> str:
        """Re-settlement after a corrected result (docs/specs/sportsbook.md, "Settlement
        lifecycle"): the standing payout is reversed (``Rollback`` of the credit; the cash
        may go below zero, a recorded debt) and the new return is paid, each under a key
        derived from the correcting result, so a crash anywhere repeats nothing."""
        terms = bet.terms
        scope = idempotency_scope(bet.partner_id, SPORTSBOOK_SOURCE)
        standing = bet.payout_txn or payout_transaction_id(bet.bet_id)
        reversed_ = await self._send(bet, Rollback(
            scope=scope, transaction_id=f"{bet.bet_id}:reverse:{result_id}", partner_id=bet.partner_id,
            player_id=terms.player_id, reference_transaction_id=standing, currency=terms.currency,
            round_id=bet.bet_id, credit_reversible=True,
        ))
        if reversed_ is None:
            return "retry"
        if reversed_.code is not Code.OK:
            return self._refused(bet, reversed_)
        payout = f"{bet.bet_id}:payout:{result_id}"
        paid = await self._send(bet, Credit(
            scope=scope, transaction_id=payout, partner_id=bet.partner_id, player_id=terms.player_id,
            currency=terms.currency, amount_minor=return_minor, round_id=bet.bet_id, game_id=SPORTSBOOK_GAME_ID,
            round_policy=ROUND_ANY,
            mark=BetMark(bet.bet_id, "settled", return_minor, result_id, payout, from_states=("settled",)),
        ))
        if paid is None:
            return "retry"
        if paid.code is not Code.OK:
            return self._refused(bet, paid)
        if paid.replayed:  # committed before, maybe without its mark (before migration 0009)
            await self.store.set_bet_state(bet.partner_id, bet.bet_id, "settled", from_states=("settled",),
                                           return_minor=return_minor, settled_by=result_id, payout_txn=payout)
        metrics.sportsbook_bets_resettled_total.inc()
        return "paid"
