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
import contextlib
import time
from collections.abc import Callable

from gateway import clock, metrics
from gateway.config import Settings
from gateway.logs import get_logger
from gateway.shards import keys
from gateway.shards.apply import apply
from gateway.shards.batch import Batch, Item, make_item
from gateway.shards.commands import (
    Command,
    Overloaded,
    Result,
    SetLimits,
    ShardUnavailable,
    has_nul,
    misattributed,
    without_misattribution,
    without_nul,
)
from gateway.shards.deadlines import Deadlines
from gateway.shards.health import StorageHealth
from gateway.shards.port import FenceLost, KeyConflict, PrefetchResult, Storage, StorageUnavailable, UsageRead
from gateway.shards.responsible import policies
from gateway.shards.state import DEBIT, TOMBSTONE, Key, PlayerKey, RoundKey, ShardState, TxRecord
from gateway.telemetry import shard_spans, tracing
from gateway.telemetry.command import CommandTrace

log = get_logger("gateway.shard")

#: An inbox entry: the command, its caller's future, its sampled trace (None: untraced).
Queued = tuple[Command, "asyncio.Future[Result]", CommandTrace | None]

#: Pause between attempts of a read that storage could not answer.
READ_RETRY_PAUSE_S = 0.05


def _now_us() -> int:
    return clock.now_us()


class Shard:
    """One single-writer shard. ``submit`` is the only entry point for commands."""

    def __init__(
        self,
        settings: Settings,
        store: Storage,
        claimed_by: str,
        on_failure: Callable[[BaseException], None] | None = None,
        address: str = "",
    ) -> None:
        self.settings = settings
        self.limits = settings.shard
        clock.configure(clock.offset_file_path(settings.clock_offset_file))
        self.store = store
        self.claimed_by = claimed_by
        self.address = address  # where edges reach this shard ("" when they share its process)
        self.epoch = 0
        self.buckets: frozenset[int] = frozenset()  # the buckets the map gives this shard
        self.map_revision = 0
        self.on_failure = on_failure  # the process exits here, so its supervisor restarts it
        self.shard_id = settings.shard.shard_id
        self.label = str(self.shard_id)
        self.state = ShardState(shard_id=self.shard_id, limits=settings.shard,
                                rg=policies(settings.responsible_gaming))
        self.inbox: collections.deque[Queued] = collections.deque()
        self.failed: BaseException | None = None
        self._open: Batch = Batch(seq=1)
        self._inflight: Batch | None = None
        self._inbox_event = asyncio.Event()
        self._flush_event = asyncio.Event()
        self._space_event = asyncio.Event()
        self._committed_event = asyncio.Event()  # set after each commit (``_commit_for_usage``)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        # Held by the loop across prefetch + apply and by the flusher across _repair, so
        # neither acts on state the other is about to replace.
        self._state_lock = asyncio.Lock()
        # Failing fast (docs/ARCHITECTURE.md): callers' deadlines and storage health.
        self._commit_timeout_ns = settings.shard.commit_timeout_ms * 1_000_000
        self._deadlines = Deadlines(self._commit_timeout_ns)
        self._health = StorageHealth(
            failure_grace_ns=settings.shard.storage_failure_grace_ms * 1_000_000,
            probe_interval_ns=settings.shard.storage_probe_interval_ms * 1_000_000,
        )
        self._recovered = asyncio.Event()  # set when storage answers again after failing
        self._inflight_since_ns = 0
        # Counters: commands accepted by submit and taken through apply (the release
        # barrier waits for the second to reach the first), batches and flush time (stats).
        self.commands_accepted = 0
        self.commands_applied = 0
        self.batches_total = 0
        self.flush_seconds_total = 0.0

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Claim the lease, restore the heads from PostgreSQL, start the loop and flusher."""
        claim = await self.store.claim(self.claimed_by, self.address, _now_us())
        self.epoch = claim.epoch
        self.buckets = claim.buckets
        self.map_revision = claim.map_revision
        heads = await self.store.load_heads()
        batch_id = heads.batch_id
        self.state.txn_seq = heads.txn_seq
        self.state.committed_seq = batch_id
        self.state.open_seq = batch_id + 1
        self._open = Batch(seq=batch_id + 1)
        metrics.fencing_events_total.labels("fence_lost")  # exported at 0, so increase() sees the first
        self._tasks = [
            asyncio.create_task(self._run_loop(), name=f"shard-{self.shard_id}-loop"),
            asyncio.create_task(self._run_flusher(), name=f"shard-{self.shard_id}-flusher"),
            asyncio.create_task(self._run_watchdog(), name=f"shard-{self.shard_id}-watchdog"),
            asyncio.create_task(self._run_prober(), name=f"shard-{self.shard_id}-prober"),
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
        """Serving: started, not failed or stopping, and its storage answering (``degraded``)."""
        return bool(self._tasks) and self.failed is None and not self._stopping and not self.degraded

    @property
    def degraded(self) -> bool:
        """Storage has been failing past its grace, or a commit is overdue: new commands are
        refused at once (retryable) and /readyz says not ready until a commit goes through."""
        now = time.monotonic_ns()
        overdue = self._inflight is not None and now - self._inflight_since_ns > self._commit_timeout_ns
        return overdue or self._health.degraded(now)

    # ---- entry point -------------------------------------------------------------------

    def submit(self, command: Command, trace: CommandTrace | None = None) -> asyncio.Future[Result]:
        """Queue ``command``; the future resolves to its Result once durable. ``trace``: the
        sampled edge request it belongs to, if any (gateway/telemetry/shard_spans.py).

        Raises Overloaded when the inbox is full, ShardUnavailable when the shard stopped or
        its storage is not answering (``degraded``). The future fails with CommitTimeout (a
        ShardUnavailable) if the command's batch has not committed within
        ``shard.commit_timeout_ms`` (gateway/shards/deadlines.py).
        """
        if self.failed is not None or self._stopping or not self._tasks:
            raise ShardUnavailable("shard not running")
        if self.degraded:
            metrics.storage_unavailable_refusals_total.labels(self.label).inc()
            raise ShardUnavailable("storage is not answering; retry with the same id")
        if len(self.inbox) >= self.limits.inbox_depth_max:
            metrics.overloaded_total.labels(self.label).inc()
            raise Overloaded(retry_after_s=1)
        if has_nul(command):
            command = without_nul(command)  # PostgreSQL text cannot hold NUL: refuse, audited
        elif misattributed(command):
            command = without_misattribution(command)  # another partner's key space: refuse, audited
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.inbox.append((command, future, trace))
        self.commands_accepted += 1
        self._deadlines.add(future, time.monotonic_ns())
        self._inbox_event.set()
        return future

    async def execute(self, command: Command) -> Result:
        return await self.submit(command)

    # ---- moving buckets (docs/ARCHITECTURE.md, "Moving buckets") ------------------------

    async def release(self, buckets: frozenset[int], map_revision: int, bucket_of: Callable[[PlayerKey], int],
                      timeout_s: float) -> bool:
        """Hand ``buckets`` over: from now on their commands are refused (NotOwner, under
        ``map_revision``, the revision the mover is about to write); the commands already
        accepted for them are applied and committed; then their players and keys leave
        memory, so that if the buckets ever come back they are read from PostgreSQL again.

        Returns True once nothing of theirs is uncommitted; False if that took longer than
        ``timeout_s`` (the buckets stay refused; the mover then fences this shard).
        """
        self.buckets = self.buckets - buckets
        self.map_revision = max(self.map_revision, map_revision)
        mark = self.commands_accepted  # every command for these buckets was accepted before this
        deadline = time.monotonic() + timeout_s
        while True:  # bounded by the deadline
            if self.failed is not None:
                return False
            if self.commands_applied >= mark and not self._uncommitted_in(buckets, bucket_of):
                break
            if time.monotonic() > deadline:
                log.warning("release_timeout", shard=self.shard_id, buckets=len(buckets))
                return False
            self._flush_event.set()
            await asyncio.sleep(0.002)
        # ---- synchronous from here: nothing of these buckets is in flight ----
        players, keys_dropped = self.state.forget(lambda player_key: bucket_of(player_key) in buckets)
        metrics.buckets_released_total.labels(self.label).inc(len(buckets))
        log.info("buckets_released", shard=self.shard_id, buckets=len(buckets), map_revision=map_revision,
                 players=players, keys=keys_dropped)
        return True

    def acquire(self, buckets: frozenset[int], map_revision: int) -> None:
        """Take ``buckets`` the map (``map_revision``) now gives this shard; their players are
        read from PostgreSQL on first use, like any cold player."""
        metrics.buckets_acquired_total.labels(self.label).inc(len(buckets - self.buckets))
        self.buckets = self.buckets | buckets
        self.map_revision = max(self.map_revision, map_revision)
        log.info("buckets_acquired", shard=self.shard_id, buckets=len(buckets), map_revision=map_revision)

    def _uncommitted_in(self, buckets: frozenset[int], bucket_of: Callable[[PlayerKey], int]) -> bool:
        for batch in (self._inflight, self._open):
            if batch is None:
                continue
            for item in batch.items:
                if item.player_key is not None and bucket_of(item.player_key) in buckets:
                    return True
        return False

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
                taken = len(group)
                group = [q for q in group if not q[1].done()]  # timed out while queued: never applied
                if not group:
                    self.commands_applied += taken
                    continue
                commands = [q[0] for q in group]
                # Group spans (prefetch, apply) for the first traced group of each batch only:
                # their cost does not shrink with the sampling ratio, the batch span's links
                # name every traced command anyway (gateway/telemetry/shard_spans.py).
                traces = ([q[2] for q in group if q[2] is not None]
                          if tracing.tracer() is not None and not self._open.traced else [])
                if traces:
                    self._open.traced = True
                await self._commit_for_usage(commands)
                async with self._state_lock:
                    await self._prefetch(commands, traces)
                    started_ns = time.time_ns() if traces else 0
                    self._apply_group(group)
                    if traces:
                        shard_spans.applied(traces, self.shard_id, len(group), started_ns, time.time_ns())
                self.commands_applied += taken
                self._after_group()
                await asyncio.sleep(0)  # let the flusher and the HTTP handlers run
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - a bug in apply or prefetch: stop loudly
            self._die(exc)

    def _apply_group(self, group: list[Queued]) -> None:
        now_us = _now_us()
        state = self.state
        for command, future, trace in group:
            if future.done():
                continue  # timed out while its prefetch waited on storage: never applied
            applied = apply(state, command, now_us)
            if not applied.wait_for_commit:
                if not future.done():
                    future.set_result(applied.result)
                continue
            if not self._open.items:
                self._open.first_added_ns = time.monotonic_ns()
            self._open.items.append(make_item(applied, future, trace))
        state.absent_keys.clear()
        state.round_bets.clear()

    def _after_group(self) -> None:
        state = self.state
        if len(state.players) > self.limits.players_resident_max or len(state.keys) > self.limits.keys_resident_max:
            players_evicted, keys_evicted = state.evict()
            metrics.evictions_total.labels(self.label, "player").inc(players_evicted)
            metrics.evictions_total.labels(self.label, "key").inc(keys_evicted)
        metrics.inbox_depth.labels(self.label).set(len(self.inbox))
        metrics.players_resident.labels(self.label).set(len(state.players))
        metrics.keys_resident.labels(self.label).set(len(state.keys))
        if self._open.items:
            age_ms = (time.monotonic_ns() - self._open.first_added_ns) // 1_000_000
            if not self.inbox or len(self._open) >= self.limits.batch_size_max or age_ms >= self.limits.flush_interval_ms:
                self._flush_event.set()

    # ---- prefetch ----------------------------------------------------------------------

    async def _commit_for_usage(self, commands: list[Command]) -> None:
        """Before a resident player's window sums are read from storage (its first limit is
        being set), wait until its writes have committed (``keys.usage_wait_seq``). Rare (a
        person changing a limit) and short (one flush); nothing applies meanwhile. Outside
        the state lock: a repair in the flusher may need it."""
        if not any(type(c) is SetLimits for c in commands):
            return
        seq = keys.usage_wait_seq(self.state, keys.prefetch_needs(self.state, commands))
        if self.state.committed_seq < seq:
            log.info("usage_read_waits_for_commit", shard=self.shard_id, batch_id=seq)
        while self.state.committed_seq < seq:
            self._flush_event.set()
            self._committed_event.clear()
            await self._committed_event.wait()

    async def _prefetch(self, commands: list[Command], traces: list[CommandTrace] | None = None) -> None:
        needs = keys.prefetch_needs(self.state, commands)
        if not needs:
            return
        started = time.perf_counter()
        started_ns = time.time_ns() if traces else 0
        pending = self._pending_round_debits(needs.rounds)  # before the await: see _pending_round_debits
        fetched = await self._read(needs, "prefetch_retry")
        metrics.prefetch_latency_seconds.labels(self.label).observe(time.perf_counter() - started)
        if traces:
            shard_spans.prefetched(traces, self.shard_id, len(needs.players), len(needs.keys), started_ns,
                                   time.time_ns())
        keys.install(self.state, needs, fetched, pending)

    def _pending_round_debits(self, rounds: list[RoundKey]) -> dict[RoundKey, list[TxRecord]]:
        """The uncommitted debits and tombstones of ``rounds``, from the batches not yet
        committed (a rare path: only credits that name no bet and have no open bet in memory).

        Taken before the prefetch's await: a batch committing during it is then either in
        the storage read or in this list (or both: install de-duplicates by key).
        """
        if not rounds:
            return {}
        wanted = set(rounds)
        found: dict[RoundKey, list[TxRecord]] = {}
        for batch in (self._inflight, self._open):
            if batch is None:
                continue
            for item in batch.items:
                for row in item.txn_rows:
                    if row.kind not in (DEBIT, TOMBSTONE) or row.round_id is None:
                        continue
                    rk = (row.partner_id, row.player_id, row.scope, row.round_id)
                    record = self.state.keys.get((row.scope, row.transaction_id))
                    if rk in wanted and record is not None:  # uncommitted records are never evicted
                        found.setdefault(rk, []).append(record)
        return found

    async def _read(self, needs: keys.Needs, event: str) -> PrefetchResult:
        """``store.prefetch`` until storage answers.

        Unbounded on purpose: the commands waiting for these rows are unanswered, and the
        only alternative to reading them is to stop the shard; meanwhile the inbox bound
        turns new callers away (503) and the waiting callers' own timeouts end their wait.
        """
        while True:
            try:
                fetched = await self.store.prefetch(needs.players, needs.keys, needs.rounds, self._usage_read(needs))
            except StorageUnavailable as exc:
                self._health.failed(time.monotonic_ns())
                log.warning(event, shard=self.shard_id, error=repr(exc))
                await self._pause(READ_RETRY_PAUSE_S)
                continue
            self._storage_answered()
            return fetched

    def _usage_read(self, needs: keys.Needs) -> UsageRead:
        policies = self.state.rg
        return UsageRead(needs.usage, clock.now_us() - policies.history_us(), policies.default.bucket_us)

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
                self._inflight_since_ns = time.monotonic_ns()
                self.state.open_seq = batch.seq + 1
                self._open = Batch(seq=batch.seq + 1)
                self._space_event.set()
                started = time.perf_counter()
                started_ns = time.time_ns()
                retries = await self._commit(batch)
                self.state.committed_seq = batch.seq
                self._committed_event.set()
                self._inflight = None
                flush_s = time.perf_counter() - started
                self.batches_total += 1
                self.flush_seconds_total += flush_s
                metrics.flush_latency_seconds.labels(self.label).observe(flush_s)
                metrics.batch_size.labels(self.label).observe(len(batch.items))
                metrics.batch_fill_ratio.labels(self.label).observe(len(batch.items) / self.limits.batch_size_max)
                if tracing.tracer() is not None:
                    traces = [item.trace for item in batch.items if item.trace is not None]
                    if traces:
                        shard_spans.committed(traces, self.shard_id, batch.seq, len(batch.items), retries,
                                              started_ns, time.time_ns())
                _count_movements(batch)
                for item in batch.items:
                    if item.future is not None and not item.future.done():
                        item.future.set_result(item.result)
                if self._open.items:
                    self._flush_event.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - fence lost or a bug: stop loudly
            self._die(exc)

    async def _commit(self, batch: Batch) -> int:
        """Make ``batch`` durable. Returns (the number of retries) only once it committed;
        raises only fatal errors."""
        backoff_ms = 10
        retries = 0
        # Not bounded: an acknowledged-later batch must either commit or stop the shard.
        # Each turn is a repair (which shrinks the conflicting set to stored outcomes) or a
        # transient fault (backoff up to flush_retry_backoff_ms_max).
        while True:
            if not any(item.writes for item in batch.items):
                return retries  # reads only: the writes they wait for committed with earlier batches
            write = batch.write(_now_us())
            try:
                await self.store.write_batch(write, self.epoch)
                self._storage_answered()
            except KeyConflict as conflict:
                self._storage_answered()
                metrics.key_conflicts_total.labels(self.label).inc()
                log.info("key_conflict_reapply", shard=self.shard_id, batch_id=batch.seq,
                         keys=len(conflict.keys))
                async with self._state_lock:
                    await self._repair(batch, conflict.keys)
                retries += 1
                continue
            except FenceLost:
                raise
            except StorageUnavailable as exc:
                self._health.failed(time.monotonic_ns())
                metrics.flush_retries_total.labels(self.label).inc()
                retries += 1
                log.warning("flush_retry", shard=self.shard_id, batch_id=batch.seq, error=repr(exc),
                            backoff_ms=backoff_ms)
                await self._pause(backoff_ms / 1000)
                backoff_ms = min(backoff_ms * 2, self.limits.flush_retry_backoff_ms_max)
                if await self._committed_anyway(batch):
                    log.warning("flush_commit_was_durable", shard=self.shard_id, batch_id=batch.seq)
                else:
                    continue
            return retries

    async def _committed_anyway(self, batch: Batch) -> bool:
        """After a lost connection: did the COMMIT reach the server before it went away?

        Unbounded on purpose: until storage answers, the shard cannot tell whether to send
        the batch again (which, had it committed, would hit its own keys) or to answer its
        callers; it can only wait (the callers' own timeouts end their wait).
        """
        while True:
            try:
                committed = await self.store.batch_committed(batch.seq)
            except StorageUnavailable as exc:
                self._health.failed(time.monotonic_ns())
                log.warning("flush_check_retry", shard=self.shard_id, error=repr(exc))
                await self._pause(0.2)
                continue
            self._storage_answered()
            return committed

    async def _repair(self, batch: Batch, conflict_keys: list[Key]) -> None:
        """Some keys of ``batch`` already existed: reload the players they touch and re-apply.

        Every uncommitted command of an affected player (in ``batch`` and in the open batch)
        is re-applied in order on the player's committed state, now with the stored outcomes
        of the conflicting keys in memory. Nobody was answered yet, so nothing is lost.
        """
        affected, needs = keys.repair_scope(conflict_keys, batch.items, self._open.items)
        # The await below lets the loop keep applying into the open batch; everything it
        # applies for an affected player is collected again in the synchronous part.
        fetched = await self._read(needs, "repair_prefetch_retry")
        # ---- synchronous from here: no apply interleaves ----
        state = self.state
        moved: list[Item] = []
        for source in (batch, self._open):
            kept: list[Item] = []
            for item in source.items:
                (moved if item.player_key in affected else kept).append(item)
            source.items = kept
        keys.discard_for_repair(state, moved, affected)
        keys.install(state, needs, fetched, self._pending_round_debits(needs.rounds))
        now_us = _now_us()
        for item in moved:
            applied = apply(state, item.command, now_us)
            if not applied.wait_for_commit:
                if item.future is not None and not item.future.done():
                    item.future.set_result(applied.result)
                continue
            batch.items.append(make_item(applied, item.future, item.trace))
        state.absent_keys.clear()
        state.round_bets.clear()

    # ---- failing fast ------------------------------------------------------------------

    def _storage_answered(self) -> None:
        if self._health.succeeded(time.monotonic_ns()):
            log.info("storage_recovered", shard=self.shard_id)
            self._recovered.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep before retrying storage, cut short when a probe sees it answer again."""
        self._recovered.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._recovered.wait(), seconds)

    async def _run_watchdog(self) -> None:
        """Answer callers whose commit is overdue (gateway/shards/deadlines.py).

        Runs for the shard's life; each turn sleeps a tick (a tenth of commit_timeout_ms,
        at most 50 ms), so an overdue caller is answered at most a tick late.
        """
        tick_s = min(0.05, self._commit_timeout_ns / 10 / 1e9)
        try:
            while True:
                await asyncio.sleep(tick_s)
                expired = self._deadlines.expire(time.monotonic_ns())
                if expired:
                    metrics.commit_timeouts_total.labels(self.label).inc(expired)
                    log.warning("commit_timeout", shard=self.shard_id, callers=expired)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - a bug: stop loudly
            self._die(exc)

    async def _run_prober(self) -> None:
        """Ping storage when nothing else has heard from it for a probe interval, so that an
        idle shard notices an outage (readiness) and a failing one its recovery.

        Runs for the shard's life; a turn waits a probe interval, plus one ping (bounded by
        storage_probe_timeout_ms) when one is due.
        """
        interval_s = self.limits.storage_probe_interval_ms / 1000
        timeout_s = self.limits.storage_probe_timeout_ms / 1000
        try:
            while True:
                await asyncio.sleep(interval_s)
                metrics.storage_degraded.labels(self.label).set(1 if self.degraded else 0)
                if not self._health.probe_due(time.monotonic_ns()):
                    continue
                try:
                    await self.store.ping(timeout_s)
                except StorageUnavailable as exc:
                    self._health.failed(time.monotonic_ns())
                    log.warning("storage_probe_failed", shard=self.shard_id, error=repr(exc))
                    continue
                self._storage_answered()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - a bug: stop loudly
            self._die(exc)

    # ---- failure -----------------------------------------------------------------------

    def _die(self, exc: BaseException) -> None:
        self.failed = exc
        if isinstance(exc, FenceLost):
            metrics.fencing_events_total.labels("fence_lost").inc()
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
            _, future, _ = self.inbox.popleft()
            if not future.done():
                future.set_exception(exc)


def _count_movements(batch: Batch) -> None:
    """The business counters of a committed batch: its OK money movements by kind and
    currency (counted once per batch and label pair, not per transaction)."""
    sums: dict[tuple[str, str], list[int]] = {}
    for item in batch.items:
        for txn in item.txn_rows:
            if txn.code != "ok":
                continue
            entry = sums.get((txn.kind, txn.currency))
            if entry is None:
                sums[(txn.kind, txn.currency)] = [1, txn.amount_minor]
            else:
                entry[0] += 1
                entry[1] += txn.amount_minor
    for (kind, currency), (count, amount_minor) in sums.items():
        metrics.wallet_transactions_total.labels(kind, currency).inc(count)
        metrics.wallet_amount_minor_total.labels(kind, currency).inc(amount_minor)
