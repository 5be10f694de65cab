"""The shard map in PostgreSQL: bucket -> shard, its revision, the shard processes' addresses.

docs/DESIGN.md section 6: players hash onto a fixed number of buckets (gateway/shards/router.py,
``bucket_of``), each bucket is owned by one shard, recorded here with an epoch; every batch
commits only while its shard holds its lease epoch (migration 0002, ``gateway_write_batch``).

``ensure_layout`` runs once when a gateway starts with all its shards stopped: it keeps the
map if it already has the wanted number of shards, else assigns bucket b to shard
``b mod shard_count``, counts a new revision and moves every shard's lease epoch on, so a
process of an earlier layout that is still alive (paused, partitioned, duplicated) can
commit nothing more.

Moving buckets while serving (gateway/cluster/mover.py drives it): ``move`` hands a group
of buckets from one shard to another in one transaction, after the old owner confirmed it
released them (its lease epoch unchanged since) or, when it did not, fencing it by moving
its lease epoch on; every move is recorded in ``shard_moves`` (migration 0008).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

_LOCK_ID = 0x6D61_7073  # "maps": one layout change at a time
MOVER_LOCK_ID = 0x6D6F_7665  # "move": one mover (gateway shards move|resize) at a time


class MoveConflict(Exception):
    """The map or the old owner changed under the mover (another move, a restart): nothing
    was written; the mover reads the map again."""


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
        outside = await conn.fetchval("SELECT count(*) FROM shard_buckets WHERE shard_id >= $1", shard_count)
        if (state is not None and state["bucket_count"] == bucket_count and state["shard_count"] == shard_count
                and rows == bucket_count and outside == 0):
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
            """INSERT INTO shard_map_state (singleton, revision, bucket_count, shard_count, shards_wanted)
               VALUES (true, $1, $2, $3, $3)
               ON CONFLICT (singleton) DO UPDATE SET revision = $1, bucket_count = $2, shard_count = $3,
                                                     shards_wanted = $3, changed_at = now()""",
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


@dataclass(frozen=True)
class Lease:
    """One shard's lease row: its epoch, where it listens, who took it and when."""

    shard_id: int
    epoch: int
    address: str | None
    claimed_by: str
    claimed_at: str


async def leases(conn: asyncpg.Connection) -> dict[int, Lease]:
    """Every shard's lease row, by shard id."""
    return {r["shard_id"]: Lease(r["shard_id"], int(r["epoch"]), r["address"], r["claimed_by"],
                                 r["claimed_at"].isoformat())
            for r in await conn.fetch(
                "SELECT shard_id, epoch, address, claimed_by, claimed_at FROM shard_leases ORDER BY shard_id")}


async def move(conn: asyncpg.Connection, buckets: list[int], from_shard: int, to_shard: int, *,
               expected_revision: int, released_epoch: int | None, moved_by: str) -> int:
    """Give ``buckets`` (all owned by ``from_shard``) to ``to_shard``; returns the new revision.

    ``released_epoch``: the old owner's lease epoch when it confirmed the release (the move
    is refused if the lease moved since: the old owner restarted and may have claimed the
    buckets again); None: it did not confirm, so its lease epoch is moved on here, fencing
    every batch it still has (DESIGN.md section 6). The buckets take the new owner's epoch.
    Raises MoveConflict (nothing written) if the map is not at ``expected_revision``, a
    bucket is not ``from_shard``'s, the new owner has no lease, or the old owner restarted.
    """
    assert buckets and from_shard != to_shard
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        revision = int(await conn.fetchval("SELECT revision FROM shard_map_state FOR UPDATE") or 0)
        if revision != expected_revision:
            raise MoveConflict(f"the map is at revision {revision}, the move expected {expected_revision}")
        # Lock both leases: a batch of either holds its lease row FOR SHARE until it commits.
        held = {r["shard_id"]: int(r["epoch"]) for r in await conn.fetch(
            "SELECT shard_id, epoch FROM shard_leases WHERE shard_id = ANY($1::int[]) ORDER BY shard_id FOR UPDATE",
            [from_shard, to_shard])}
        if to_shard not in held:
            raise MoveConflict(f"shard {to_shard} has no lease: it has not started yet")
        owned = await conn.fetchval(
            "SELECT count(*) FROM shard_buckets WHERE bucket = ANY($1::int[]) AND shard_id = $2", buckets, from_shard)
        if owned != len(set(buckets)):
            raise MoveConflict(f"not every bucket of the group belongs to shard {from_shard}")
        if released_epoch is None:
            await conn.execute("UPDATE shard_leases SET epoch = epoch + 1 WHERE shard_id = $1", from_shard)
        elif held.get(from_shard) != released_epoch:
            raise MoveConflict(f"shard {from_shard} restarted after it released the buckets")
        await conn.execute("UPDATE shard_buckets SET shard_id = $2, epoch = $3 WHERE bucket = ANY($1::int[])",
                           buckets, to_shard, held[to_shard])
        revision += 1
        await conn.execute(
            """UPDATE shard_map_state SET revision = $1, changed_at = now(),
                      shard_count = (SELECT count(DISTINCT shard_id) FROM shard_buckets)""", revision)
        await conn.execute(
            """INSERT INTO shard_moves (revision, from_shard, to_shard, buckets, fenced, moved_by)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            revision, from_shard, to_shard, sorted(set(buckets)), released_epoch is None, moved_by)
        return revision


async def wanted(conn: asyncpg.Connection) -> int | None:
    """The shard count ``gateway shards resize`` asked for (None: not set)."""
    value = await conn.fetchval("SELECT shards_wanted FROM shard_map_state")
    return None if value is None else int(value)


async def set_wanted(conn: asyncpg.Connection, shard_count: int) -> None:
    """Ask for ``shard_count`` shard processes (the supervisor starts or stops processes)."""
    assert shard_count >= 1
    await conn.execute("UPDATE shard_map_state SET shards_wanted = $1", shard_count)


async def bucket_counts(conn: asyncpg.Connection) -> dict[int, int]:
    """Buckets per shard id (shards that own none are absent)."""
    return {r["shard_id"]: int(r["n"]) for r in await conn.fetch(
        "SELECT shard_id, count(*) AS n FROM shard_buckets GROUP BY shard_id ORDER BY shard_id")}
