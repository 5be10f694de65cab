"""What ``gateway shards init|status|move|resize`` do (the click commands in gateway/cli.py
only parse and print). docs/SCALING.md explains when to use which.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from gateway.cluster import resharding
from gateway.cluster.mover import Mover, MoveReport
from gateway.config import Settings
from gateway.ledger import shard_map

Progress = Callable[[MoveReport, int, int], None]  # (report, groups done, groups in the plan)


def moved_by() -> str:
    return f"gateway shards on {socket.gethostname()} pid {os.getpid()}"


async def init(conn: asyncpg.Connection, shard_count: int, bucket_count: int, *, force: bool) -> str:
    """Lay the map out for ``shard_count`` shards if there is none (a fresh database; the
    Kubernetes Job runs this after ``gateway migrate``). An existing map is kept unless
    ``force`` (only with every shard stopped: it fences all of them). Returns what it did."""
    state = await conn.fetchrow("SELECT revision, shard_count FROM shard_map_state")
    if state is not None and not force:
        return f"kept: the map exists (revision {state['revision']}, {state['shard_count']} shards)"
    revision = await shard_map.ensure_layout(conn, shard_count, bucket_count)
    await shard_map.set_wanted(conn, shard_count)
    return f"laid out: {bucket_count} buckets over {shard_count} shards, revision {revision}"


async def status(settings: Settings, conn: asyncpg.Connection, interval_s: float) -> dict[str, Any]:
    """The map and every shard's figures, sampled twice ``interval_s`` apart for rates.

    Shape: {"revision", "bucket_count", "shards_wanted", "shards": [{"shard_id", "buckets",
    "epoch", "address", "claimed_by", "answering", "ready", "players_resident",
    "keys_resident", "inbox_depth", "ops_per_s", "flush_ms_avg"}]}.
    """
    mover = Mover(settings, conn, moved_by())
    try:
        snapshot = await mover.snapshot()
        leases = await shard_map.leases(conn)
        counts = await shard_map.bucket_counts(conn)
        wanted = await shard_map.wanted(conn)
        ids = sorted(set(counts) | {s for s in leases if s < (wanted or 0)})
        first = {s: await mover.stats(s, snapshot) for s in ids}
        started = time.monotonic()
        await asyncio.sleep(interval_s)
        second = {s: await mover.stats(s, snapshot) for s in ids}
        elapsed_s = time.monotonic() - started
    finally:
        await mover.close()
    shards = []
    for shard_id in ids:
        lease = leases.get(shard_id)
        a, b = first[shard_id], second[shard_id]
        row: dict[str, Any] = {
            "shard_id": shard_id, "buckets": counts.get(shard_id, 0),
            "epoch": lease.epoch if lease else None, "address": lease.address if lease else None,
            "claimed_by": lease.claimed_by if lease else None, "answering": b is not None,
        }
        if b is not None:
            row.update(ready=b.ready, players_resident=b.players_resident, keys_resident=b.keys_resident,
                       inbox_depth=b.inbox_depth)
            if a is not None:
                batches = b.batches_total - a.batches_total
                row["ops_per_s"] = round((b.commands_total - a.commands_total) / elapsed_s, 1)
                row["flush_ms_avg"] = (round((b.flush_seconds_total - a.flush_seconds_total) / batches * 1000, 2)
                                       if batches else None)
        shards.append(row)
    return {"revision": snapshot.revision, "bucket_count": len(snapshot.owners), "shards_wanted": wanted,
            "shards": shards}


async def move(settings: Settings, conn: asyncpg.Connection, buckets: list[int], to_shard: int,
               group_size: int, progress: Progress) -> list[MoveReport]:
    """Give ``buckets`` to shard ``to_shard`` (which must be running), a group at a time."""
    mover = Mover(settings, conn, moved_by())
    await mover.start()
    try:
        if not await mover.ready(to_shard):
            raise RuntimeError(f"shard {to_shard} is not running (no lease with an address, or not ready)")
        plan = resharding.plan_move((await mover.snapshot()).owners, buckets, to_shard, group_size)
        return await _run(mover, plan, progress)
    finally:
        await mover.close()


async def resize(settings: Settings, conn: asyncpg.Connection, shard_count: int, group_size: int,
                 wait_s: float, progress: Progress, waiting: Callable[[int], None]) -> list[MoveReport]:
    """Balance the buckets over shards 0..shard_count-1 while serving.

    Records the wanted count (``gateway serve``'s supervisor starts the new shard
    processes; on Kubernetes, scale the StatefulSet first), waits up to ``wait_s`` for
    every shard below the count to answer ready (``waiting(shard_id)`` each second it
    waits), then moves the buckets. Shards at or above the count end with no bucket; the
    supervisor then stops them.
    """
    mover = Mover(settings, conn, moved_by())
    await mover.start()
    try:
        snapshot = await mover.snapshot()
        plan = resharding.plan_resize(snapshot.owners, shard_count, group_size)  # ValueError: bad count
        await shard_map.set_wanted(conn, shard_count)
        deadline = time.monotonic() + wait_s
        for shard_id in range(shard_count):
            while not await mover.ready(shard_id):  # bounded by wait_s
                if time.monotonic() > deadline:
                    raise RuntimeError(f"shard {shard_id} did not start within {wait_s:.0f} s")
                waiting(shard_id)
                await asyncio.sleep(1.0)
        return await _run(mover, plan, progress)
    finally:
        await mover.close()


async def _run(mover: Mover, plan: list[resharding.Move], progress: Progress) -> list[MoveReport]:
    done = 0

    def each(report: MoveReport) -> None:
        nonlocal done
        done += 1
        progress(report, done, len(plan))

    return await mover.run(plan, each)
