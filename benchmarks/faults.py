"""Recovery times of the process model: ``python -m benchmarks.faults --help``.

Starts ``gateway serve --edges 1 --shards 2`` against ``--database-url`` (created if
missing), creates ``--players`` players with a deposit, keeps a closed-loop load of
deposits on all of them (``--connections`` workers), and ``--kills`` times:

1. kills shard process 1 with SIGKILL;
2. probes a deposit of a player of shard 1 every 20 ms (each probe a new transaction id,
   answered 200 or a retryable 503) and a balance read of a player of shard 0;
3. reports how long after the kill shard 1's player was served again, and whether shard
   0's player was served throughout;
4. waits for the load to settle before the next kill.

Afterwards it checks the books (every acknowledged deposit present once, balances equal
entries, every audit chain verifies: ``gateway verify-ledger``) and prints the figures as a
markdown table. The CI tests assert the behaviour (tests/test_cluster.py); this measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid

import asyncpg
import httpx
import psutil

from benchmarks.servers import REPO, ensure_database, with_database
from gateway.shards.router import bucket_of

AUTH = {"Authorization": "Bearer demo-key-change-me"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg-admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--database", default="bench_faults")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    p.add_argument("--port", type=int, default=18090)
    p.add_argument("--players", type=int, default=200)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--settle-s", type=float, default=3.0, help="load between kills")
    p.add_argument("--recovery-timeout-s", type=float, default=30.0)
    return p.parse_args(argv)


def bucket_shard(partner: str, player: str, shard_count: int, bucket_count: int = 4096) -> int:
    """The shard that owns the player under the default layout (bucket b -> b mod shards)."""
    return bucket_of(partner, player, bucket_count) % shard_count


class Load:
    """Closed-loop deposits of 1 minor unit; each acknowledged id is kept for the check."""

    def __init__(self, client: httpx.AsyncClient, players: list[str], workers: int) -> None:
        self.client, self.players, self.workers = client, players, workers
        self.acked: list[str] = []
        self.refused = 0
        self.stop = asyncio.Event()

    async def worker(self, n: int) -> None:
        i = n
        while not self.stop.is_set():  # bounded by the stop event
            player = self.players[i % len(self.players)]
            i += self.workers
            txn = f"load-{uuid.uuid4().hex}"
            body = {"transaction_id": txn, "player_id": player, "currency": "EUR", "amount_minor": 1}
            for _ in range(50):  # the same id until acknowledged, as a provider retries
                try:
                    r = await self.client.post("/v1/wallet/deposit", json=body)
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
                    continue
                if r.status_code == 200:
                    self.acked.append(txn)
                    break
                self.refused += 1
                await asyncio.sleep(0.05)

    async def run(self) -> None:
        await asyncio.gather(*(self.worker(n) for n in range(self.workers)))


async def measure(args: argparse.Namespace, proc: subprocess.Popen[bytes], database_url: str
                  ) -> tuple[list[tuple[int, float, bool]], int, int, int]:
    """(per kill: number, seconds until shard 1 served again, shard 0 served throughout),
    deposits acknowledged, of them stored, retryable answers seen."""
    url = f"http://127.0.0.1:{args.port}"
    rows: list[tuple[int, float, bool]] = []
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10.0,
                                 limits=httpx.Limits(max_connections=args.connections + 8)) as c:
        for _ in range(600):  # up to 60 s to start
            try:
                if (await c.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        run = uuid.uuid4().hex[:6]
        players = [f"f{run}-{i}" for i in range(args.players)]
        for p in players:
            await c.post("/v1/players", json={"player_id": p, "currencies": ["EUR"], "country": "MT"})
        victims = [p for p in players if bucket_shard("demo", p, 2) == 1]
        survivors = [p for p in players if bucket_shard("demo", p, 2) == 0]
        load = Load(c, players, args.connections)
        task = asyncio.create_task(load.run())
        await asyncio.sleep(args.settle_s)
        for kill in range(1, args.kills + 1):
            shard = next(ch for ch in psutil.Process(proc.pid).children()
                         if ch.cmdline()[-2:] == ["--shard-id", "1"])
            t0 = time.monotonic()
            shard.send_signal(signal.SIGKILL)
            served_again = None
            survivor_ok = True
            while time.monotonic() - t0 < args.recovery_timeout_s:
                try:
                    r0 = await c.get(f"/v1/players/{survivors[0]}/balance")
                    survivor_ok &= r0.status_code == 200
                    probe = f"probe-{uuid.uuid4().hex}"
                    body = {"transaction_id": probe, "player_id": victims[0], "currency": "EUR", "amount_minor": 1}
                    r = await c.post("/v1/wallet/deposit", json=body)
                    if r.status_code == 200:
                        load.acked.append(probe)
                        served_again = time.monotonic() - t0
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.02)
            rows.append((kill, served_again if served_again is not None else float("inf"), survivor_ok))
            print(f"kill {kill}: shard 1's players served again after "
                  f"{'-' if served_again is None else f'{served_again:.2f} s'}; shard 0 served "
                  f"throughout: {survivor_ok}", flush=True)
            await asyncio.sleep(args.settle_s)
        load.stop.set()
        await task
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM transactions WHERE scope = 'demo:api' AND transaction_id = ANY($1::text[])",
            load.acked)
    finally:
        await conn.close()
    return rows, len(load.acked), int(stored), load.refused


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    asyncio.run(ensure_database(args.pg_admin_dsn, args.database))
    database_url = with_database(args.pg_admin_dsn, args.database)
    env = {**os.environ, "GATEWAY_DATABASE_URL": database_url, "GATEWAY_REDIS_URL": args.redis_url,
           "GATEWAY_MIGRATE_ON_START": "1", "GATEWAY_SERVER__PORT": str(args.port),
           "GATEWAY_DATA_DIR": str(REPO / "var" / "bench-faults")}
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    with open(REPO / "benchmarks" / "results" / "faults-gateway.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--edges", "1", "--shards", "2"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rows, acked, stored, refused = asyncio.run(measure(args, proc, database_url))
            check = subprocess.run([sys.executable, "-m", "gateway", "verify-ledger"], cwd=REPO, env=env,
                                   capture_output=True, text=True, check=False)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    times = [t for _, t, _ in rows]
    print("\n| kill | shard 1 served again after s | shard 0 served throughout |\n|---|---|---|")
    for kill, t, ok in rows:
        print(f"| {kill} | {t:.2f} | {'yes' if ok else 'no'} |")
    print(f"\nmedian {statistics.median(times):.2f} s, max {max(times):.2f} s over {len(times)} kills; "
          f"{acked} deposits acknowledged, {stored} of them stored ({'ok' if stored == acked else 'MISMATCH'}); "
          f"{refused} retryable answers on the way; verify-ledger exit {check.returncode}")
    return 0 if stored == acked and check.returncode == 0 and max(times) < float("inf") else 1


if __name__ == "__main__":
    sys.exit(main())
