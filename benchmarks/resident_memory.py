"""How much memory do N resident players take in one shard process?

    python -m benchmarks.resident_memory --players 1000000 \
        --admin-dsn postgresql://postgres@127.0.0.1:5432/postgres

Creates a scratch database, applies the migrations, writes N players (one EUR wallet each,
cash and bonus accounts) with COPY, then runs a real ``Shard`` (the same class ``gateway
serve`` runs) in this process and submits one ``GetBalance`` per player, so every player is
loaded through the shard's own batched prefetch and stays resident. Prints the process RSS
before and after, per player, and the time taken. Not a test: a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import psutil

from gateway.config import load_settings
from gateway.ledger import shard_map
from gateway.ledger.migrate import migrate
from gateway.ledger.store import LedgerStore
from gateway.shards.commands import Code, GetBalance
from gateway.shards.shard import Shard


def _with_db(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(dsn)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


async def seed(conn: asyncpg.Connection, players: int) -> None:
    chunk = 100_000
    now = datetime.now(UTC)
    for start in range(0, players, chunk):
        ids = [f"mem-{i:08d}" for i in range(start, min(players, start + chunk))]
        await conn.copy_records_to_table(
            "players", records=[("demo", p, "MT", "active", "demo:api", now) for p in ids],
            columns=("partner_id", "player_id", "country", "status", "created_by", "created_at"),
        )
        await conn.copy_records_to_table(
            "accounts",
            records=[r for p in ids for r in ((f"player:demo:{p}:cash", "EUR", "demo", p, 0),
                                              (f"player:demo:{p}:bonus", "EUR", "demo", p, 0))],
            columns=("account", "currency", "partner_id", "player_id", "balance_minor"),
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=1_000_000)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--in-flight", type=int, default=2_000, help="GetBalance commands in flight at once")
    args = parser.parse_args()

    name = f"bench_mem_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_db(args.admin_dsn, name)
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn, lock_timeout_ms=5_000, statement_timeout_ms=600_000)
        t0 = time.perf_counter()
        await seed(conn, args.players)
        print(f"seeded {args.players:,} players in {time.perf_counter() - t0:.1f} s")
        await shard_map.ensure_layout(conn, 1, 4096)
        await conn.close()

        settings = load_settings(environ={"GATEWAY_DATABASE_URL": dsn, "GATEWAY_REDIS_URL": "redis://unused"})
        settings.shard.players_resident_max = max(settings.shard.players_resident_max, args.players)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        shard = Shard(settings, LedgerStore(pool, 0), claimed_by="resident-memory-bench")
        await shard.start()
        proc = psutil.Process(os.getpid())
        gc.collect()
        rss_before = proc.memory_info().rss
        t0 = time.perf_counter()
        next_index = iter(range(args.players))

        async def worker() -> None:
            # A bounded number of workers, not one task per player: a million tasks at once
            # would measure the harness, not the shard.
            for i in next_index:
                result = await shard.submit(GetBalance(partner_id="demo", player_id=f"mem-{i:08d}"))
                assert result.code is Code.OK, result

        await asyncio.gather(*(worker() for _ in range(args.in_flight)))
        elapsed = time.perf_counter() - t0
        gc.collect()
        rss_after = proc.memory_info().rss
        resident = len(shard.state.players)
        print(f"players resident: {resident:,} (loaded through the shard's prefetch in {elapsed:.1f} s, "
              f"{args.players / elapsed:,.0f} players/s)")
        print(f"RSS before: {rss_before / 2**20:,.0f} MiB, after: {rss_after / 2**20:,.0f} MiB, "
              f"players: {(rss_after - rss_before) / 2**20:,.0f} MiB, "
              f"{(rss_after - rss_before) / max(resident, 1):,.0f} bytes/player")
        await shard.stop()
        await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
