"""The reservation sweeper: gives back liability reserved for bets that never committed.

A placement reserves liability in Redis before its stake debit reaches the player's shard
(gateway/edge/api_sportsbook.py). If the edge dies in between, or the debit never commits,
the reservation would hold liability for a bet that does not exist: conservative (the book
refuses bets it could take), never unsafe. The sweeper repairs it without ever giving back
liability of a bet that could still be placed:

1. every ``sweep_interval_ms`` it takes, per partner, up to ``sweep_batch_max`` bet ids
   from the pending set reserved more than ``reservation_orphan_ms`` ago;
2. those stored in PostgreSQL are placed: dropped from the pending set;
3. for each other one it sends the player's shard a fence: a ``Rollback`` with
   ``fence_only``, which stores a tombstone under the bet id if its debit is unknown (so the
   debit can never apply later, whatever is still in flight) and changes nothing if it is
   known. ``decide`` reads the answer: fenced, or the stored debit was refused, cancels
   the reservation; a debit applied keeps it (its bet row is in the same commit).

Runs in every edge; a Redis lock per partner (``sb:{<partner>}:sweep``, held for the
interval) keeps two edges off the same partner. Errors are logged and the ids stay pending
for the next sweep: the sweeper retries for as long as the edge runs, by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable, Sequence

from gateway import metrics
from gateway.config import SportsbookSettings
from gateway.logs import get_logger
from gateway.shards.commands import Code, Command, Overloaded, Result, Rollback, ShardUnavailable, idempotency_scope
from gateway.sportsbook.driver import SPORTSBOOK_SOURCE
from gateway.sportsbook.exposure import ExposureBook, ExposureUnavailable
from gateway.sportsbook.store import SportsbookStore, SportsbookStoreUnavailable

log = get_logger("gateway.sportsbook")


class Verdict(enum.Enum):
    CANCEL = "cancel"  # the bet can never be placed: give its liability back
    KEEP = "keep"  # the bet's debit applied: the reservation is the bet's
    RETRY = "retry"  # no answer to rely on: look again at the next sweep
    ABANDON = "abandon"  # nothing can be fenced (unknown player): keep it, stop looking


def decide(bet_id: str, result: Result | None) -> Verdict:
    """What a fence's answer means for the bet's reservation (module docstring, step 3).

    ``result`` is the shard's answer to the fence (None: not delivered)."""
    if result is None:
        return Verdict.RETRY
    if result.tombstoned:
        return Verdict.CANCEL  # fenced now, or fenced before
    if result.code is Code.OK and result.replayed and result.transaction_id == bet_id:
        return Verdict.KEEP  # the stake debit is stored: the bet exists
    if result.replayed and result.transaction_id == bet_id:
        return Verdict.CANCEL  # the debit is stored as a refusal: nothing was taken
    if result.code is Code.OK and result.replayed:
        return Verdict.CANCEL  # our own fence, repeated: it stored the tombstone before
    if result.code is Code.UNKNOWN_PLAYER:
        return Verdict.ABANDON
    return Verdict.RETRY


def fence_transaction_id(bet_id: str) -> str:
    return f"{bet_id}:fence"


class ReservationSweeper:
    """Background sweep (module docstring). ``submit`` sends a command to the player's
    shard (EdgeContext.submit); ``partners`` lists the partner ids to sweep."""

    def __init__(self, store: SportsbookStore, exposure: ExposureBook,
                 submit: Callable[[Command], Awaitable[Result]], partners: Sequence[str],
                 settings: SportsbookSettings, owner: str) -> None:
        self.store = store
        self.exposure = exposure
        self.submit = submit
        self.partners = list(partners)
        self.settings = settings
        self.owner = owner
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sportsbook-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        interval_s = self.settings.sweep_interval_ms / 1000
        while True:  # the edge's life; stop() cancels it
            await asyncio.sleep(interval_s)
            for partner_id in self.partners:
                try:
                    await self.sweep(partner_id, time.time_ns() // 1_000_000)
                except (SportsbookStoreUnavailable, ExposureUnavailable, OSError) as exc:
                    log.warning("sweep_failed", partner_id=partner_id, error=repr(exc))
                except Exception as exc:
                    log.error("sweep_error", partner_id=partner_id, error=repr(exc), exc_info=exc)

    async def sweep(self, partner_id: str, now_ms: int) -> dict[Verdict, int]:
        """One sweep of ``partner_id``'s pending reservations; counts by verdict (``KEEP``
        includes those found stored). Nothing if another edge holds the partner's lock."""
        counts = dict.fromkeys(Verdict, 0)
        if not await self.exposure.sweep_lock(partner_id, self.owner, self.settings.sweep_interval_ms):
            return counts
        ids = await self.exposure.pending(partner_id, now_ms - self.settings.reservation_orphan_ms,
                                          self.settings.sweep_batch_max)
        if not ids:
            return counts
        stored = await self.store.stored_bet_ids(partner_id, ids)
        done = [b for b in ids if b in stored]
        counts[Verdict.KEEP] += len(done)
        players = await self.exposure.player_of(partner_id, [b for b in ids if b not in stored])
        done += [b for b in ids if b not in stored and b not in players]  # no live reservation left
        for bet_id, player_id in players.items():
            verdict = decide(bet_id, await self._fence(partner_id, bet_id, player_id)) if player_id else Verdict.ABANDON
            counts[verdict] += 1
            if verdict is Verdict.CANCEL:
                await self.exposure.cancel(partner_id, bet_id)
                metrics.sportsbook_reservations_swept_total.inc()
                log.warning("reservation_cancelled", partner_id=partner_id, bet_id=bet_id)
            elif verdict is Verdict.ABANDON:
                log.error("reservation_unfenceable", partner_id=partner_id, bet_id=bet_id, player_id=player_id)
            if verdict is not Verdict.RETRY:
                done.append(bet_id)
        await self.exposure.confirmed(partner_id, done)
        return counts

    async def _fence(self, partner_id: str, bet_id: str, player_id: str) -> Result | None:
        try:
            return await self.submit(Rollback(
                scope=idempotency_scope(partner_id, SPORTSBOOK_SOURCE), transaction_id=fence_transaction_id(bet_id),
                partner_id=partner_id, player_id=player_id, reference_transaction_id=bet_id, round_id=bet_id,
                fence_only=True,
            ))
        except (ShardUnavailable, Overloaded) as exc:
            log.warning("sweep_fence_retry", bet_id=bet_id, error=repr(exc))
            return None
