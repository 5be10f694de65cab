"""The shard: one asyncio single-writer loop owning its players (docs/DESIGN.md section 2).

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
import time
from collections.abc import Callable

from gateway import metrics
from gateway.config import Settings
from gateway.logs import get_logger
from gateway.shards import keys
from gateway.shards.apply import apply
from gateway.shards.batch import Batch, Item, make_item
from gateway.shards.commands import (
    Command,
    Overloaded,
    Result,
    ShardUnavailable,
    has_nul,
    without_nul,
)
from gateway.shards.port import FenceLost, KeyConflict, PrefetchResult, Storage, StorageUnavailable
from gateway.shards.state import Key, ShardState

log = get_logger("gateway.shard")

#: Pause between attempts of a read that storage could not answer.
READ_RETRY_PAUSE_S = 0.05


def _now_us() -> int:
    return time.time_ns() // 1_000


class Shard:
    """One single-writer shard. ``submit`` is the only entry point for commands."""

    def __init__(
        self,
        settings: Settings,
        store: Storage,
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
        self.inbox: collections.deque[tuple[Command, asyncio.Future[Result]]] = collections.deque()
        self.epoch = 0
        self.failed: BaseException | None = None
        self._open: Batch = Batch(seq=1)
        self._inflight: Batch | None = None
        self._inbox_event = asyncio.Event()
        self._flush_event = asyncio.Event()
        self._space_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        # Held by the loop across prefetch + apply and by the flusher across _repair, so
        # neither acts on state the other is about to replace.
        self._state_lock = asyncio.Lock()

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Claim the lease, restore the heads from PostgreSQL, start the loop and flusher."""
        self.epoch = await self.store.claim(self.limits.bucket_count, self.claimed_by, _now_us())
        heads = await self.store.load_heads()
        batch_id = heads.batch_id
        self.state.txn_seq = heads.txn_seq
        self.state.committed_seq = batch_id
        self.state.open_seq = batch_id + 1
        self._open = Batch(seq=batch_id + 1)
        self._tasks = [
            asyncio.create_task(self._run_loop(), name=f"shard-{self.shard_id}-loop"),
            asyncio.create_task(self._run_flusher(), name=f"shard-{self.shard_id}-flusher"),
        ]
        log.info("shard_started", shard=self.shard_id, epoch=self.epoch, batch_id=batch_id,
                 audit_seq=heads.audit_seq)

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

    def submit(self, command: Command) -> asyncio.Future[Result]:
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
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.inbox.append((command, future))
        self._inbox_event.set()
        return future

    async def execute(self, command: Command) -> Result:
        return await self.submit(command)

    # ---- the loop ----------------------------------------------------------------------

    async def _run_loop(self) -> None:
        try:
            while True:  # the shard's life: every turn waits for work; stop() cancels it
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
        except BaseException as exc:  # noqa: BLE001 - a bug in apply or prefetch: stop loudly
            self._die(exc)

    def _apply_group(self, group: list[tuple[Command, asyncio.Future[Result]]]) -> None:
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
            self._open.items.append(make_item(applied, future))
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

    async def _prefetch(self, commands: list[Command]) -> None:
        cold, needed = keys.prefetch_needs(self.state, commands)
        if not cold and not needed:
            return
        started = time.perf_counter()
        fetched = await self._read(cold, needed, "prefetch_retry")
        metrics.prefetch_latency_seconds.labels(self.label).observe(time.perf_counter() - started)
        keys.install(self.state, cold, needed, fetched)

    async def _read(self, player_ids: list[str], needed: list[Key], event: str) -> PrefetchResult:
        """``store.prefetch`` until storage answers.

        Unbounded on purpose: the commands waiting for these rows are unanswered, and the
        only alternative to reading them is to stop the shard; meanwhile the inbox bound
        turns new callers away (503) and the waiting callers' own timeouts end their wait.
        """
        while True:
            try:
                return await self.store.prefetch(player_ids, needed)
            except StorageUnavailable as exc:
                log.warning(event, shard=self.shard_id, error=repr(exc))
                await asyncio.sleep(READ_RETRY_PAUSE_S)

    # ---- the flusher -------------------------------------------------------------------

    async def _run_flusher(self) -> None:
        try:
            while True:  # the shard's life: every turn waits for a batch; stop() cancels it
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
        except BaseException as exc:  # noqa: BLE001 - fence lost or a bug: stop loudly
            self._die(exc)

    async def _commit(self, batch: Batch) -> None:
        """Make ``batch`` durable. Returns only once it committed; raises only fatal errors."""
        backoff_ms = 10
        # Not bounded: an acknowledged-later batch must either commit or stop the shard.
        # Each turn is a repair (which shrinks the conflicting set to stored outcomes) or a
        # transient fault (backoff up to flush_retry_backoff_ms_max).
        while True:
            if not any(item.writes for item in batch.items):
                return  # reads only: the writes they wait for committed with earlier batches
            write = batch.write(_now_us())
            try:
                await self.store.write_batch(write, self.epoch)
            except KeyConflict as conflict:
                metrics.key_conflicts_total.labels(self.label).inc()
                log.info("key_conflict_reapply", shard=self.shard_id, batch_id=batch.seq,
                         keys=len(conflict.keys))
                async with self._state_lock:
                    await self._repair(batch, conflict.keys)
                continue
            except FenceLost:
                raise
            except StorageUnavailable as exc:
                metrics.flush_retries_total.labels(self.label).inc()
                log.warning("flush_retry", shard=self.shard_id, batch_id=batch.seq, error=repr(exc),
                            backoff_ms=backoff_ms)
                await asyncio.sleep(backoff_ms / 1000)
                backoff_ms = min(backoff_ms * 2, self.limits.flush_retry_backoff_ms_max)
                if await self._committed_anyway(batch):
                    log.warning("flush_commit_was_durable", shard=self.shard_id, batch_id=batch.seq)
                else:
                    continue
            return

    async def _committed_anyway(self, batch: Batch) -> bool:
        """After a lost connection: did the COMMIT reach the server before it went away?

        Unbounded on purpose: until storage answers, the shard cannot tell whether to send
        the batch again (which, had it committed, would hit its own keys) or to answer its
        callers; it can only wait (the callers' own timeouts end their wait).
        """
        while True:
            try:
                return await self.store.batch_committed(batch.seq)
            except StorageUnavailable as exc:
                log.warning("flush_check_retry", shard=self.shard_id, error=repr(exc))
                await asyncio.sleep(0.2)

    async def _repair(self, batch: Batch, conflict_keys: list[Key]) -> None:
        """Some keys of ``batch`` already existed: reload the players they touch and re-apply.

        Every uncommitted command of an affected player (in ``batch`` and in the open batch)
        is re-applied in order on the player's committed state, now with the stored outcomes
        of the conflicting keys in memory. Nobody was answered yet, so nothing is lost.
        """
        affected, refs = keys.repair_scope(conflict_keys, batch.items, self._open.items)
        # The await below lets the loop keep applying into the open batch; everything it
        # applies for an affected player is collected again in the synchronous part.
        fetched = await self._read(sorted(affected), sorted(refs), "repair_prefetch_retry")
        # ---- synchronous from here: no apply interleaves ----
        state = self.state
        moved: list[Item] = []
        for source in (batch, self._open):
            kept: list[Item] = []
            for item in source.items:
                (moved if item.player_id in affected else kept).append(item)
            source.items = kept
        keys.discard_for_repair(state, moved, affected)
        keys.install(state, sorted(affected), sorted(refs), fetched)
        now_us = _now_us()
        for item in moved:
            applied = apply(state, item.command, now_us)
            if not applied.wait_for_commit:
                if item.future is not None and not item.future.done():
                    item.future.set_result(applied.result)
                continue
            batch.items.append(make_item(applied, item.future))
        state.absent_keys.clear()

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
