"""Carries out a plan of bucket moves against running shard processes (``gateway shards``).

For each group (gateway/cluster/resharding.py) of buckets from shard A to shard B:

1. ``release`` to A (a Control frame over the internal channel): A refuses the group's new
   commands ("not owner" under the next map revision), applies and commits the ones it had
   accepted, forgets their players and answers with its lease epoch. Edges hold the
   group's commands meanwhile (``cluster.move_wait_ms_max``), then answer retryably.
2. The map change in PostgreSQL (gateway/ledger/shard_map.py ``move``): the group goes to
   B, the revision moves on, the move is recorded. If A did not confirm within
   ``cluster.move_release_timeout_ms`` (paused, partitioned, stuck), A's lease epoch is
   moved on in the same transaction, so no batch A still holds can commit (fencing).
3. ``acquire`` to B: B takes the group; its players load from PostgreSQL on first use.
   Edges learn the new map from A's "not owner" answers and B's pings.

One mover at a time: it holds a PostgreSQL advisory lock for its whole run. Nothing a
player did is carried between processes except through PostgreSQL (committed before A's
release answer, read by B afterwards).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from gateway.cluster import frames
from gateway.cluster.channel import ShardClient
from gateway.cluster.resharding import Move
from gateway.config import Settings
from gateway.config_types import resolved
from gateway.ledger import shard_map
from gateway.logs import get_logger
from gateway.shards.commands import Overloaded, ShardUnavailable

log = get_logger("gateway.mover")

#: Attempts to tell the new owner it owns a group (it also takes the group at its next
#: start, from the map, if it cannot be told now).
ACQUIRE_ATTEMPTS_MAX = 20
ACQUIRE_PAUSE_S = 0.25
#: A MoveConflict (another writer changed the map, the old owner restarted) is retried this
#: many times per group, re-reading the map each time.
CONFLICT_ATTEMPTS_MAX = 5


@dataclass
class MoveReport:
    """What one group's hand-over did and how long it took (milliseconds)."""

    move: Move
    revision: int
    fenced: bool
    release_ms: float
    total_ms: float
    acquired: bool


class Mover:
    """Moves groups of buckets between the shard processes of one gateway.

    ``conn``: a dedicated connection; ``start`` takes the mover lock on it (raises
    RuntimeError if another mover holds it).
    """

    def __init__(self, settings: Settings, conn: asyncpg.Connection, moved_by: str) -> None:
        self._settings = settings
        self._conn = conn
        self._moved_by = moved_by
        self._clients: dict[int, ShardClient] = {}
        self._replaced: list[ShardClient] = []  # clients of an address that changed (a restart)
        cluster = settings.cluster
        self._release_timeout_s = cluster.move_release_timeout_ms / 1000
        self._secret = resolved(cluster.channel_secret)

    async def start(self) -> None:
        if not await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", shard_map.MOVER_LOCK_ID):
            raise RuntimeError("another `gateway shards move|resize` is running")

    async def close(self) -> None:
        for client in [*self._clients.values(), *self._replaced]:
            await client.close()
        await self._conn.execute("SELECT pg_advisory_unlock($1)", shard_map.MOVER_LOCK_ID)

    async def snapshot(self) -> shard_map.MapSnapshot:
        return await shard_map.load(self._conn)

    async def run(self, plan: list[Move], progress: Callable[[MoveReport], None] | None = None) -> list[MoveReport]:
        """Carry out ``plan`` in order; returns one report per group. Raises RuntimeError
        if a group cannot be moved (the groups before it stay moved: the map is consistent
        after every group)."""
        reports = []
        for move in plan:
            report = await self.move_group(move)
            reports.append(report)
            if progress is not None:
                progress(report)
        return reports

    async def move_group(self, move: Move) -> MoveReport:
        started = time.perf_counter()
        for attempt in range(1, CONFLICT_ATTEMPTS_MAX + 1):
            snapshot = await shard_map.load(self._conn)
            if any(snapshot.owners[b] != move.from_shard for b in move.buckets):
                raise RuntimeError(f"buckets of the group are no longer on shard {move.from_shard}: plan again")
            next_revision = snapshot.revision + 1
            released_epoch = await self._release(move, next_revision, snapshot)
            release_ms = (time.perf_counter() - started) * 1000
            try:
                revision = await shard_map.move(
                    self._conn, list(move.buckets), move.from_shard, move.to_shard,
                    expected_revision=snapshot.revision, released_epoch=released_epoch, moved_by=self._moved_by)
            except shard_map.MoveConflict as exc:
                log.warning("move_conflict", attempt=attempt, error=str(exc))
                if attempt == CONFLICT_ATTEMPTS_MAX:
                    raise RuntimeError(f"could not move the group: {exc}") from None
                await asyncio.sleep(0.1 * attempt)
                continue
            acquired = await self._acquire(move, revision)
            report = MoveReport(move, revision, released_epoch is None, release_ms,
                                (time.perf_counter() - started) * 1000, acquired)
            log.info("buckets_moved", from_shard=move.from_shard, to_shard=move.to_shard, buckets=len(move.buckets),
                     revision=revision, fenced=report.fenced, release_ms=round(release_ms, 1),
                     total_ms=round(report.total_ms, 1))
            return report
        raise AssertionError("unreachable")

    async def _release(self, move: Move, next_revision: int, snapshot: shard_map.MapSnapshot) -> int | None:
        """The old owner's lease epoch once it confirmed; None if it did not (fence it)."""
        client = self._client(move.from_shard, snapshot)
        if client is None:
            return None
        try:
            reply = await client.control(frames.CONTROL_RELEASE, list(move.buckets), next_revision,
                                         timeout_s=self._release_timeout_s + 1)
        except (ShardUnavailable, Overloaded) as exc:
            log.warning("release_unanswered", shard=move.from_shard, error=str(exc))
            return None
        if not reply.ok:
            log.warning("release_refused", shard=move.from_shard, detail=reply.detail)
            return None
        return reply.epoch

    async def _acquire(self, move: Move, revision: int) -> bool:
        """Tell the new owner; False if it could not be told (it takes the group from the
        map when it next starts; its pings tell the edges nothing until then)."""
        for _ in range(ACQUIRE_ATTEMPTS_MAX):
            snapshot = await shard_map.load(self._conn)
            client = self._client(move.to_shard, snapshot)
            if client is not None:
                try:
                    reply = await client.control(frames.CONTROL_ACQUIRE, list(move.buckets), revision,
                                                 timeout_s=self._release_timeout_s)
                    if reply.ok:
                        return True
                except (ShardUnavailable, Overloaded) as exc:
                    log.warning("acquire_unanswered", shard=move.to_shard, error=str(exc))
            await asyncio.sleep(ACQUIRE_PAUSE_S)
        return False

    async def stats(self, shard_id: int, snapshot: shard_map.MapSnapshot) -> frames.ShardStats | None:
        """One shard's figures, or None when it does not answer within a second."""
        client = self._client(shard_id, snapshot)
        if client is None:
            return None
        try:
            reply = await client.control(frames.CONTROL_STATS, timeout_s=1.0)
        except (ShardUnavailable, Overloaded):
            return None
        return reply.stats

    async def ready(self, shard_id: int) -> bool:
        """Whether shard ``shard_id`` has a lease with an address and answers ready."""
        snapshot = await shard_map.load(self._conn)
        client = self._client(shard_id, snapshot)
        if client is None:
            return False
        try:
            return (await client.ping()).ready
        except (ShardUnavailable, Overloaded):
            return False

    def _client(self, shard_id: int, snapshot: shard_map.MapSnapshot) -> ShardClient | None:
        address = snapshot.addresses.get(shard_id)
        if address is None:
            return None
        client = self._clients.get(shard_id)
        if client is None or client.address != address:
            if client is not None:
                self._replaced.append(client)
            client = ShardClient(shard_id, address, inflight_max=64, timeout_s=2.0, secret=self._secret)
            self._clients[shard_id] = client
        return client
