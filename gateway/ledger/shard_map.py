"""The shard map in PostgreSQL: bucket -> shard, its revision, the shard processes' addresses.

docs/DESIGN.md section 6: players hash onto a fixed number of buckets (gateway/shards/router.py,
``bucket_of``), each bucket is owned by one shard, recorded here with an epoch; every batch
commits only while its shard holds its lease epoch (migration 0002, ``gateway_write_batch``).

``ensure_layout`` runs once when a gateway starts with all its shards stopped: it keeps the
map if it already has the wanted number of shards, else assigns bucket b to shard
``b mod shard_count``, counts a new revision and moves every shard's lease epoch on, so a
process of an earlier layout that is still alive (paused, partitioned, duplicated) can
commit nothing more. Moving buckets while serving is another operation (resharding).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

_LOCK_ID = 0x6D61_7073  # "maps": one layout change at a time


@dataclass(frozen=True)
class MapSnapshot:
    """The map as read: ``owners[b]`` is bucket b's shard; ``addresses`` by shard id."""

    revision: int
    owners: tuple[int, ...]
    addresses: dict[int, str]


async def ensure_layout(conn: asyncpg.Connection, shard_count: int, bucket_count: int) -> int:
    """Make the map assign ``bucket_count`` buckets over ``shard_count`` shards; returns its
    revision. Idempotent: an existing map with the same counts is kept as it is."""
    assert shard_count >= 1 and bucket_count >= shard_count
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        state = await conn.fetchrow("SELECT revision, bucket_count, shard_count FROM shard_map_state")
        rows = await conn.fetchval("SELECT count(*) FROM shard_buckets")
        if (state is not None and state["bucket_count"] == bucket_count and state["shard_count"] == shard_count
                and rows == bucket_count):
            return int(state["revision"])
        revision = 1 if state is None else int(state["revision"]) + 1
        await conn.execute("DELETE FROM shard_buckets")
        await conn.execute(
            """INSERT INTO shard_buckets (bucket, shard_id, epoch)
               SELECT b, b % $2, 0 FROM generate_series(0, $1 - 1) AS b""",
            bucket_count, shard_count,
        )
        # Fence every earlier owner: its next batch finds another epoch and stops it.
        await conn.execute("UPDATE shard_leases SET epoch = epoch + 1")
        await conn.execute(
            """INSERT INTO shard_map_state (singleton, revision, bucket_count, shard_count)
               VALUES (true, $1, $2, $3)
               ON CONFLICT (singleton) DO UPDATE SET revision = $1, bucket_count = $2, shard_count = $3,
                                                     changed_at = now()""",
            revision, bucket_count, shard_count,
        )
        return revision


async def load(conn: asyncpg.Connection) -> MapSnapshot:
    """The current map (empty owners if none was laid out yet)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        revision = await conn.fetchval("SELECT revision FROM shard_map_state") or 0
        owners = [r["shard_id"] for r in await conn.fetch("SELECT shard_id FROM shard_buckets ORDER BY bucket")]
        addresses = {r["shard_id"]: r["address"] for r in await conn.fetch(
            "SELECT shard_id, address FROM shard_leases WHERE address IS NOT NULL")}
    return MapSnapshot(int(revision), tuple(owners), addresses)
