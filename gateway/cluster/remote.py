"""An edge process's way to the shards: the cached shard map and one channel per shard.

``submit(command)`` hashes the command's player onto its bucket (gateway/shards/router.py),
looks the owner up in the cached map and sends the command over that shard's channel. A
shard that answers "not owner" under a newer map revision makes the edge reload the map and
send again (at most ``cluster.route_attempts_max`` newer maps per command). While a bucket
is in transit (its old owner released it, the map or the new owner has not caught up) the
edge holds the command, re-sending every few milliseconds, for at most
``cluster.move_wait_ms_max``; then it answers retryably (ShardUnavailable). Commands
without a player (an unattributed refusal for the audit chain) go to the lowest shard id.

Readiness: the edge pings every shard every ``cluster.ping_interval_ms``; it is ready while
any shard answers ready, and a command for a shard that is down gets the retryable answer
(ShardUnavailable) at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from gateway import metrics
from gateway.cluster import frames
from gateway.cluster.channel import ShardClient
from gateway.config import Settings
from gateway.config_types import resolved
from gateway.ledger.shard_map import MapSnapshot
from gateway.logs import get_logger
from gateway.shards.commands import Command, Overloaded, Result, ShardUnavailable, player_key_of
from gateway.shards.router import bucket_of
from gateway.telemetry.command import CommandTrace

log = get_logger("gateway.remote")

TRANSIT_PAUSE_S = 0.005  # between re-sends of a command whose bucket is in transit


class RemoteShards:
    """``submit`` / ``ready`` / ``start`` / ``stop`` over the shard processes.

    ``load_map``: reads the shard map from PostgreSQL (gateway/ledger/shard_map.py).
    """

    def __init__(self, settings: Settings, load_map: Callable[[], Awaitable[MapSnapshot]]) -> None:
        self._settings = settings
        self._cluster = settings.cluster
        self._bucket_count = settings.shard.bucket_count
        self._load_map = load_map
        self._map: MapSnapshot | None = None
        self._clients: dict[int, ShardClient] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._refresh()
        self._pinger = asyncio.create_task(self._ping_forever(), name="edge-shard-pings")

    async def stop(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        for client in self._clients.values():
            await client.close()

    @property
    def ready(self) -> bool:
        return any(c.ready for c in self._clients.values())

    @property
    def shards_ready(self) -> dict[int, bool]:
        return {shard_id: c.ready for shard_id, c in sorted(self._clients.items())}

    async def submit(self, command: Command, trace: CommandTrace | None = None) -> Result:
        """The shard's Result for ``command``; Overloaded / ShardUnavailable are retryable.
        ``trace``: a sampled request's trace, sent along as ``traceparent`` (its ``batch_id``
        is set from the reply)."""
        traceparent = trace.traceparent() if trace is not None else ""
        player = player_key_of(command)
        bucket = bucket_of(player[0], player[1], self._bucket_count) if player is not None else -1
        reloads = 0
        deadline_ns = 0
        while True:  # bounded: route_attempts_max newer maps, move_wait_ms_max in transit
            shard_map = self._map
            assert shard_map is not None, "not started"
            shard_id = shard_map.owners[bucket] if bucket >= 0 else min(self._clients)
            client = self._clients.get(shard_id)
            if client is None:
                raise ShardUnavailable(f"shard {shard_id} has no address in the shard map")
            reply = await client.call(command, bucket, traceparent)
            if reply.outcome == frames.OUTCOME_RESULT:
                assert reply.result is not None
                if trace is not None:
                    trace.batch_id = reply.batch_id
                return reply.result
            if reply.outcome == frames.OUTCOME_OVERLOADED:
                raise Overloaded(retry_after_s=reply.retry_after_s or 1)
            if reply.outcome == frames.OUTCOME_UNAVAILABLE:
                raise ShardUnavailable(reply.detail or f"shard {shard_id} unavailable")
            assert reply.outcome == frames.OUTCOME_NOT_OWNER
            if reply.map_revision > shard_map.revision or bucket < 0:
                await self._refresh()
                assert self._map is not None
                if self._map.revision > shard_map.revision:
                    reloads += 1
                    if reloads > self._cluster.route_attempts_max:
                        break
                    continue  # a newer map: send to its owner at once
            # In transit: released by its old owner, not yet in the map or not yet taken by
            # its new owner (gateway/cluster/mover.py). Hold the command briefly.
            now_ns = time.monotonic_ns()
            if not deadline_ns:
                deadline_ns = now_ns + self._cluster.move_wait_ms_max * 1_000_000
            elif now_ns >= deadline_ns:
                break
            await asyncio.sleep(TRANSIT_PAUSE_S)
        metrics.bucket_moving_refusals_total.inc()
        raise ShardUnavailable("the player's bucket is moving; retry with the same id")

    async def _refresh(self) -> None:
        """Reload the map (one reload at a time; concurrent callers share it)."""
        if self._refreshing is None:
            self._refreshing = asyncio.create_task(self._reload())
        task = self._refreshing
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._refreshing is task:
                self._refreshing = None

    async def _reload(self) -> None:
        snapshot = await self._load_map()
        assert len(snapshot.owners) == self._bucket_count, "the shard map is not laid out"
        for shard_id in sorted(set(snapshot.owners)):
            address = snapshot.addresses.get(shard_id)
            client = self._clients.get(shard_id)
            if address is None:
                continue
            if client is None or client.address != address:
                if client is not None:
                    await client.close()
                self._clients[shard_id] = ShardClient(
                    shard_id, address, inflight_max=self._cluster.channel_inflight_max,
                    timeout_s=self._cluster.channel_timeout_ms / 1000,
                    secret=resolved(self._cluster.channel_secret))
        self._map = snapshot
        log.info("shard_map_loaded", revision=snapshot.revision, shards=sorted(self._clients))

    async def _ping_forever(self) -> None:
        """Ping every shard each ping interval (readiness; a reconnect after a restart).
        Runs for the edge's life."""
        interval_s = self._cluster.ping_interval_ms / 1000
        async def ping(client: ShardClient) -> None:
            try:
                await client.ping()
            except (ShardUnavailable, Overloaded):
                client.ready = False

        while True:
            # all at once: a shard that does not answer must not delay the others' pings
            await asyncio.gather(*(ping(c) for c in list(self._clients.values())))
            if self._map is not None and any(c.map_revision > self._map.revision for c in self._clients.values()):
                with contextlib.suppress(Exception):
                    await self._refresh()
            await asyncio.sleep(interval_s)
