"""The shard: one asyncio single-writer loop owning its players (DESIGN.md section 2).

    submit() -> inbox (bounded) -> loop: take a group -> prefetch (one batched read for cold
    players / unknown keys) -> apply() each, synchronously -> open batch
    flusher: seal the open batch -> commit it in one PostgreSQL transaction (retrying
    transient errors, re-applying on a key conflict) -> resolve the callers' futures

While batch k commits, the loop keeps applying into batch k+1. A caller's future resolves
only after the batch holding its command (or, for a read, the player's last write)
committed. Broken invariants (fence lost, unexpected database error) stop the shard
loudly: every waiting caller gets ShardUnavailable and ``failed`` is set, so the process
supervisor restarts it from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import time
from typing import Callable

import asyncpg

from gateway import metrics
from gateway.config import Settings
from gateway.ledger.audit import GENESIS_HASH
from gateway.ledger.store import FenceError, KeyConflict, LedgerStore, PrefetchResult
from gateway.logs import get_logger
from gateway.shards.apply import apply
from gateway.shards.batch import Batch, Item, make_item
from gateway.shards.commands import (
    Atomic,
    Command,
    Credit,
    Overloaded,
    RecordRefusal,
    Result,
    Rollback,
    ShardUnavailable,
    has_nul,
    without_nul,
)
from gateway.shards.state import BET_OPEN, Key, PlayerState, ShardState, Wallet

log = get_logger("gateway.shard")

# Database errors after which the same batch is retried: the connection or server went
# away, or the statement was cancelled. Anything else is a bug or a broken invariant.
TRANSIENT_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.LockNotAvailableError,
    # asyncpg's client state after the server dropped the connection mid-COPY (asyncpg #784);
    # raised by pool.release() and masking the original AdminShutdownError.
    asyncpg.exceptions.InternalClientError,
    # "database is not currently accepting connections" (SQLSTATE 55000) at connect time.
    asyncpg.exceptions.ObjectNotInPrerequisiteStateError,
)


def _flatten(commands: list[Command]):
    """The commands, each Atomic unit followed by its actions (for prefetch). The unit
    itself names the player, so an empty unit still loads it for its refusal."""
    for command in commands:
        yield command
        if isinstance(command, Atomic):
            yield from command.actions


def _now_us() -> int:
    return time.time_ns() // 1_000


class Shard:
    """One single-writer shard. ``submit`` is the only entry point for commands."""

    def __init__(
        self,
        settings: Settings,
        store: LedgerStore,
        claimed_by: str,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.settings = settings
        self.limits = settings.shard
        self.store = store
        self.claimed_by = claimed_by
        self.on_failure = on_failure  # the process exits here, so its supervisor restarts it
        self.shard_id = settings.shard.shard_id
        self.label = str(self.shard_id)
        self.state = ShardState(shard_id=self.shard_id, limits=settings.shard)
        self.inbox: collections.deque[tuple[Command, asyncio.Future]] = collections.deque()
        self.epoch = 0
        self.failed: BaseException | None = None
        self._audit_seq = 0
        self._audit_hash = GENESIS_HASH
        self._open: Batch = Batch(seq=1)
        self._inflight: Batch | None = None
        self._inbox_event = asyncio.Event()
        self._flush_event = asyncio.Event()
        self._space_event = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        # Held by the loop across prefetch + apply and by the flusher across _repair, so
        # neither acts on state the other is about to replace.
        self._state_lock = asyncio.Lock()

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Claim the lease, restore the heads from PostgreSQL, start the loop and flusher."""
        self.epoch = await self.store.claim(self.limits.bucket_count, self.claimed_by, _now_us())
        txn_seq, audit_seq, audit_hash, batch_id = await self.store.load_heads()
        self.state.txn_seq = txn_seq
        self._audit_seq = audit_seq
        self._audit_hash = audit_hash or GENESIS_HASH
        self.state.committed_seq = batch_id
        self.state.open_seq = batch_id + 1
        self._open = Batch(seq=batch_id + 1)
        self._tasks = [
            asyncio.create_task(self._run_loop(), name=f"shard-{self.shard_id}-loop"),
            asyncio.create_task(self._run_flusher(), name=f"shard-{self.shard_id}-flusher"),
        ]
        log.info("shard_started", shard=self.shard_id, epoch=self.epoch, batch_id=batch_id,
                 audit_seq=audit_seq)

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Stop taking commands, let the pending batches commit, then stop the tasks."""
        self._stopping = True
        deadline = time.monotonic() + drain_timeout_s
        while (self.inbox or self._open.items or self._inflight is not None) and self.failed is None:
            if time.monotonic() > deadline:
                break
            self._flush_event.set()
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_waiting(ShardUnavailable("shard stopped"))

    @property
    def ready(self) -> bool:
        return bool(self._tasks) and self.failed is None and not self._stopping

    # ---- entry point -------------------------------------------------------------------

    def submit(self, command: Command) -> asyncio.Future:
        """Queue ``command``; the future resolves to its Result once durable.

        Raises Overloaded when the inbox is full, ShardUnavailable when the shard stopped.
        """
        if self.failed is not None or self._stopping or not self._tasks:
            raise ShardUnavailable("shard not running")
        if len(self.inbox) >= self.limits.inbox_depth_max:
            metrics.overloaded_total.labels(self.label).inc()
            raise Overloaded(retry_after_s=1)
        if has_nul(command):
            command = without_nul(command)  # PostgreSQL text cannot hold NUL: refuse, audited
        future = asyncio.get_running_loop().create_future()
        self.inbox.append((command, future))
        self._inbox_event.set()
        return future

    async def execute(self, command: Command) -> Result:
        return await self.submit(command)

    # ---- the loop ----------------------------------------------------------------------

    async def _run_loop(self) -> None:
        try:
            while True:
                if not self.inbox:
                    self._inbox_event.clear()
                    await self._inbox_event.wait()
                    continue
                room = self.limits.batch_size_max - len(self._open)
                if room <= 0:
                    self._flush_event.set()
                    self._space_event.clear()
                    await self._space_event.wait()
                    continue
                group = [self.inbox.popleft() for _ in range(min(room, len(self.inbox), self.limits.prefetch_players_max))]
                async with self._state_lock:
                    await self._prefetch([c for c, _ in group])
                    self._apply_group(group)
                self._after_group()
                await asyncio.sleep(0)  # let the flusher and the HTTP handlers run
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug in apply or prefetch: stop loudly
            self._die(exc)

    def _apply_group(self, group: list[tuple[Command, asyncio.Future]]) -> None:
        now_us = _now_us()
        state = self.state
        for command, future in group:
            applied = apply(state, command, now_us)
            if not applied.wait_for_commit:
                if not future.done():
                    future.set_result(applied.result)
                continue
            if not self._open.items:
                self._open.first_added_ns = time.monotonic_ns()
            self._open.items.append(make_item(applied, future, self.shard_id))
        state.absent_keys.clear()

    def _after_group(self) -> None:
        state = self.state
        if len(state.players) > self.limits.players_resident_max or len(state.keys) > self.limits.keys_resident_max:
            state.evict()
        metrics.inbox_depth.labels(self.label).set(len(self.inbox))
        metrics.players_resident.labels(self.label).set(len(state.players))
        metrics.keys_resident.labels(self.label).set(len(state.keys))
        if self._open.items:
            age_ms = (time.monotonic_ns() - self._open.first_added_ns) // 1_000_000
            if not self.inbox or len(self._open) >= self.limits.batch_size_max or age_ms >= self.limits.flush_interval_ms:
                self._flush_event.set()

    # ---- prefetch ----------------------------------------------------------------------

    def _needed(self, commands: list[Command]) -> tuple[list[str], list[Key]]:
        """Cold players and unknown keys that ``commands`` need before apply()."""
        state = self.state
        cold: dict[str, None] = {}
        keys: dict[Key, None] = {}
        for command in _flatten(commands):
            if isinstance(command, RecordRefusal):
                continue
            player_id = command.player_id
            resident = player_id in state.players  # not "or in cold": every cold command's key
            if not resident:
                cold[player_id] = None
            transaction_id = getattr(command, "transaction_id", None)
            # A credit/rollback whose bet is not open in memory may be a retry whose own
            # outcome was evicted or predates a restart: its reference check would refuse it
            # (settled / rolled back) before the unique constraint could catch it.
            ref_finished = False
            if resident and isinstance(command, (Credit, Rollback)):
                player = state.players.get(player_id)
                ref_id = command.bet_transaction_id if isinstance(command, Credit) else command.reference_transaction_id
                ref_finished = ref_id is not None and (player is None or (command.scope, ref_id) not in player.open_bets)
            if transaction_id is not None and (not resident or ref_finished):
                # A cold player's retry (after restart or eviction) finds its stored outcome here
                # instead of through a key conflict at commit.
                key = (command.scope, transaction_id)
                if key not in state.keys:
                    keys[key] = None
            ref = None
            if isinstance(command, Credit) and command.bet_transaction_id is not None:
                ref = (command.scope, command.bet_transaction_id)
            elif isinstance(command, Rollback):
                ref = (command.scope, command.reference_transaction_id)
            if ref is not None and ref not in state.keys:
                player = state.players.get(player_id)
                if player is None or ref not in player.open_bets:
                    keys[ref] = None
        return list(cold), list(keys)

    async def _prefetch(self, commands: list[Command]) -> None:
        cold, keys = self._needed(commands)
        if not cold and not keys:
            return
        started = time.perf_counter()
        while True:
            try:
                fetched = await self.store.prefetch(cold, keys)
                break
            except TRANSIENT_ERRORS as exc:
                log.warning("prefetch_retry", shard=self.shard_id, error=repr(exc))
                await asyncio.sleep(0.05)
        metrics.prefetch_latency_seconds.labels(self.label).observe(time.perf_counter() - started)
        self._install(cold, keys, fetched)

    def _install(self, cold: list[str], keys: list[Key], fetched: PrefetchResult) -> None:
        """Put prefetched rows into the hot state (synchronous: no apply interleaves)."""
        state = self.state
        for player_id in cold:
            if player_id in state.players:
                continue  # created or loaded while we awaited
            if player_id not in fetched.players:
                state.players[player_id] = None
                continue
            country, status = fetched.players[player_id]
            # Interned: a million resident players share a handful of these strings.
            wallets = {sys.intern(c): Wallet(v[0], v[1]) for c, v in fetched.wallets[player_id].items()}
            state.players[player_id] = PlayerState(player_id, sys.intern(country), sys.intern(status), wallets)
        for record in fetched.open_bets:
            player = state.players.get(record.player_id)
            if player is None or record.key in player.open_bets:
                continue
            resident = state.keys.get(record.key)
            if resident is None:
                player.open_bets[record.key] = record
                state.remember(record)
            elif resident.bet_state == BET_OPEN:
                player.open_bets[record.key] = resident  # memory is newer than the database
        found = set()
        for record in fetched.records:
            found.add(record.key)
            if record.key in state.keys:
                continue  # memory is newer than the database
            state.remember(record)
            player = state.players.get(record.player_id)
            if record.bet_state == BET_OPEN and player is not None:
                player.open_bets.setdefault(record.key, record)
        for key in keys:
            if key not in found and key not in state.keys:
                state.absent_keys.add(key)

    # ---- the flusher -------------------------------------------------------------------

    async def _run_flusher(self) -> None:
        try:
            while True:
                await self._flush_event.wait()
                self._flush_event.clear()
                if not self._open.items:
                    continue
                batch = self._open
                self._inflight = batch
                self.state.open_seq = batch.seq + 1
                self._open = Batch(seq=batch.seq + 1)
                self._space_event.set()
                started = time.perf_counter()
                await self._commit(batch)
                self.state.committed_seq = batch.seq
                self._inflight = None
                metrics.flush_latency_seconds.labels(self.label).observe(time.perf_counter() - started)
                metrics.batch_size.labels(self.label).observe(len(batch.items))
                for item in batch.items:
                    if item.future is not None and not item.future.done():
                        item.future.set_result(item.result)
                if self._open.items:
                    self._flush_event.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._die(exc)

    async def _commit(self, batch: Batch) -> None:
        """Make ``batch`` durable. Returns only once it committed; raises only fatal errors."""
        backoff_ms = 10
        while True:
            if not any(item.writes for item in batch.items):
                return  # reads only: the writes they wait for committed with earlier batches
            payload, audit_seq, audit_hash = batch.payload(
                self.shard_id, self._audit_seq, self._audit_hash, _now_us()
            )
            try:
                await self.store.write_batch(payload, self.epoch)
            except KeyConflict as conflict:
                metrics.key_conflicts_total.labels(self.label).inc()
                log.info("key_conflict_reapply", shard=self.shard_id, batch_id=batch.seq,
                         keys=len(conflict.keys))
                async with self._state_lock:
                    await self._repair(batch, conflict.keys)
                continue
            except FenceError:
                raise
            except TRANSIENT_ERRORS as exc:
                metrics.flush_retries_total.labels(self.label).inc()
                log.warning("flush_retry", shard=self.shard_id, batch_id=batch.seq, error=repr(exc),
                            backoff_ms=backoff_ms)
                await asyncio.sleep(backoff_ms / 1000)
                backoff_ms = min(backoff_ms * 2, self.limits.flush_retry_backoff_ms_max)
                if await self._committed_anyway(batch):
                    log.warning("flush_commit_was_durable", shard=self.shard_id, batch_id=batch.seq)
                else:
                    continue
            self._audit_seq, self._audit_hash = audit_seq, audit_hash
            return

    async def _committed_anyway(self, batch: Batch) -> bool:
        """After a lost connection: did the COMMIT reach the server before it went away?"""
        while True:
            try:
                return await self.store.batch_committed(batch.seq)
            except TRANSIENT_ERRORS as exc:
                log.warning("flush_check_retry", shard=self.shard_id, error=repr(exc))
                await asyncio.sleep(0.2)

    async def _repair(self, batch: Batch, conflict_keys: list[Key]) -> None:
        """Some keys of ``batch`` already existed: reload the players they touch and re-apply.

        Every uncommitted command of an affected player (in ``batch`` and in the open batch)
        is re-applied in order on the player's committed state, now with the stored outcomes
        of the conflicting keys in memory. Nobody was answered yet, so nothing is lost.
        """
        conflict = set(conflict_keys)
        affected = {item.player_id for item in batch.items if conflict.intersection(item.keys)}
        assert affected, "conflicting keys belong to no item"
        # The awaits below let the loop keep applying into the open batch; everything it
        # applies for an affected player is collected again in the synchronous part.
        refs = set(conflict)
        for item in batch.items + self._open.items:
            if item.player_id in affected:
                refs.update(self._keys_of(item.command))
        while True:
            try:
                fetched = await self.store.prefetch(sorted(affected), sorted(refs))
                break
            except TRANSIENT_ERRORS as exc:
                log.warning("repair_prefetch_retry", shard=self.shard_id, error=repr(exc))
                await asyncio.sleep(0.05)
        # ---- synchronous from here: no apply interleaves ----
        state = self.state
        moved: list[Item] = []
        for source in (batch, self._open):
            kept = []
            for item in source.items:
                (moved if item.player_id in affected else kept).append(item)
            source.items = kept
        for item in moved:
            for key in item.keys:
                state.keys.pop(key, None)
            # Bets whose state a discarded apply changed (settled / rolled back in memory):
            # take them back from the database too, or the re-apply sees the discarded change.
            for key, _ in item.bet_updates:
                record = state.keys.get(key)
                if record is not None and record.player_id in affected:
                    del state.keys[key]
        for player_id in affected:
            state.players.pop(player_id, None)
        self._install(sorted(affected), sorted(refs), fetched)
        now_us = _now_us()
        for item in moved:
            applied = apply(state, item.command, now_us)
            if not applied.wait_for_commit:
                if item.future is not None and not item.future.done():
                    item.future.set_result(applied.result)
                continue
            batch.items.append(make_item(applied, item.future, self.shard_id))
        state.absent_keys.clear()

    @staticmethod
    def _keys_of(command: Command) -> list[Key]:
        if isinstance(command, Atomic):
            return [key for action in command.actions for key in Shard._keys_of(action)]
        keys = []
        scope = getattr(command, "scope", None)
        if getattr(command, "transaction_id", None) is not None:
            keys.append((scope, command.transaction_id))
        if isinstance(command, Credit) and command.bet_transaction_id is not None:
            keys.append((scope, command.bet_transaction_id))
        if isinstance(command, Rollback):
            keys.append((scope, command.reference_transaction_id))
        return keys

    # ---- failure -----------------------------------------------------------------------

    def _die(self, exc: BaseException) -> None:
        self.failed = exc
        log.critical("shard_failed", shard=self.shard_id, error=repr(exc), exc_info=exc)
        self._fail_waiting(ShardUnavailable(f"shard {self.shard_id} stopped: {exc!r}"))
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if self.on_failure is not None:
            self.on_failure(exc)

    def _fail_waiting(self, exc: Exception) -> None:
        batches = [b for b in (self._inflight, self._open) if b is not None]
        for batch in batches:
            for item in batch.items:
                if item.future is not None and not item.future.done():
                    item.future.set_exception(exc)
        while self.inbox:
            _, future = self.inbox.popleft()
            if not future.done():
                future.set_exception(exc)
