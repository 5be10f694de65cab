"""Resize 1 -> 2 -> 1 under a steady load: ``python -m benchmarks.resharding --help``.

Starts ``gateway serve --edges 1 --shards 1`` against ``--database-url`` (created if
missing), creates ``--players`` players, then sends deposits of 1 minor unit at a fixed
``--rate`` (open loop: one request every 1/rate s, whatever the answers; at most
``--in-flight-max`` outstanding, the rest counted as not sent). After ``--settle-s`` it runs
``gateway shards resize 2``, waits ``--settle-s``, runs ``gateway shards resize 1``, waits
again, and stops. A 503 is retried with the same transaction id until acknowledged, as a
provider does.

Reports, for the steady phase before the moves and for the moves themselves: requests
sent, answers by status, error share, p50 / p99 / max latency of the first attempt, and
the longest time any request waited for its acknowledgement (retries included). Then the
books: every acknowledged deposit stored exactly once, ``gateway verify-ledger``. The CI
tests assert the behaviour (tests/test_resharding.py); this measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
import httpx
import orjson

from benchmarks.httpload import HttpConn, Target, open_conns, request
from benchmarks.servers import REPO, ensure_database, with_database

AUTH = {"Authorization": "Bearer demo-key-change-me"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.resharding", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg-admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--database", default="bench_resharding")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    p.add_argument("--port", type=int, default=18091)
    p.add_argument("--players", type=int, default=2000)
    p.add_argument("--rate", type=float, default=2000.0, help="requests per second (open loop)")
    p.add_argument("--in-flight-max", type=int, default=1000)
    p.add_argument("--connections", type=int, default=128)
    p.add_argument("--settle-s", type=float, default=5.0)
    p.add_argument("--group-size", type=int, default=256)
    return p.parse_args(argv)


@dataclass
class Sample:
    sent_at: float
    first_latency_s: float = 0.0
    first_status: object = None
    acked_after_s: float | None = None
    attempts: int = 0


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    not_sent: int = 0


class Pool:
    """Keep-alive connections of the lean client (benchmarks/httpload.py: httpx would spend
    more CPU per request than the gateway on this 2-core machine)."""

    def __init__(self, target: Target, conns: list[HttpConn]) -> None:
        self.target = target
        self.free: asyncio.Queue[HttpConn] = asyncio.Queue()
        for conn in conns:
            self.free.put_nowait(conn)

    async def post(self, path: str, body: dict) -> object:
        conn = await self.free.get()
        status, _ = await request(conn, self.target.post(path, orjson.dumps(body)))
        if status == 0:  # the connection failed: replace it
            try:
                (conn,) = await open_conns(self.target, 1)
            except OSError:
                await asyncio.sleep(0.05)
                (conn,) = await open_conns(self.target, 1)
            self.free.put_nowait(conn)
            return "transport"
        self.free.put_nowait(conn)
        return status


async def one(pool: Pool, player: str, run: Run) -> None:
    sample = Sample(time.monotonic())
    run.samples.append(sample)
    txn = f"rs-{uuid.uuid4().hex}"
    body = {"transaction_id": txn, "player_id": player, "currency": "EUR", "amount_minor": 1}
    for _ in range(100):  # the same id until acknowledged (bounded: 100 attempts)
        started = time.monotonic()
        sample.attempts += 1
        status = await pool.post("/v1/wallet/deposit", body)
        if sample.attempts == 1:
            sample.first_latency_s, sample.first_status = time.monotonic() - started, status
        if status == 200:
            sample.acked_after_s = time.monotonic() - sample.sent_at
            run.acked.append(txn)
            return
        await asyncio.sleep(0.05)


async def load(c: Pool, players: list[str], rate: float, in_flight_max: int, run: Run,
               stop: asyncio.Event) -> None:
    interval = 1 / rate
    tasks: set[asyncio.Task[None]] = set()
    next_at = time.monotonic()
    i = 0
    while not stop.is_set():  # bounded by the stop event
        now = time.monotonic()
        while next_at <= now:
            if len(tasks) >= in_flight_max:
                run.not_sent += 1
            else:
                task = asyncio.create_task(one(c, players[i % len(players)], run))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            i += 1
            next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await asyncio.gather(*tasks)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def phase_row(name: str, samples: list[Sample]) -> str:
    statuses: dict[object, int] = {}
    for s in samples:
        statuses[s.first_status] = statuses.get(s.first_status, 0) + 1
    errors = sum(n for k, n in statuses.items() if k != 200)
    lat = [s.first_latency_s * 1000 for s in samples]
    waits = [s.acked_after_s for s in samples if s.acked_after_s is not None]
    return (f"| {name} | {len(samples)} | {errors} ({100 * errors / max(len(samples), 1):.2f}%) | "
            f"{quantile(lat, 0.5):.1f} | {quantile(lat, 0.99):.1f} | {max(lat, default=0):.0f} | "
            f"{max(waits, default=0):.2f} | {statuses} |")


async def cli(env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", *args, cwd=REPO, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"gateway {' '.join(args)} failed:\n{out.decode()}")
    return time.monotonic() - started, out.decode()


async def measure(args: argparse.Namespace, env: dict[str, str], database_url: str) -> int:
    url = f"http://127.0.0.1:{args.port}"
    run = Run()
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10.0,
                                 limits=httpx.Limits(max_connections=256, max_keepalive_connections=256)) as c:
        for _ in range(600):  # up to 60 s to start
            try:
                if (await c.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        tag = uuid.uuid4().hex[:6]
        players = [f"rs{tag}-{i}" for i in range(args.players)]
        sem = asyncio.Semaphore(32)

        async def create(p: str) -> None:
            async with sem:
                await c.post("/v1/players", json={"player_id": p, "currencies": ["EUR"], "country": "MT"})

        await asyncio.gather(*(create(p) for p in players))
        pool = Pool(Target(url, AUTH["Authorization"].split()[1]),
                    await open_conns(Target(url, AUTH["Authorization"].split()[1]), args.connections))
        stop = asyncio.Event()
        task = asyncio.create_task(load(pool, players, args.rate, args.in_flight_max, run, stop))
        await asyncio.sleep(args.settle_s)
        moves_started = time.monotonic()
        grow_s, grow_out = await cli(env, "shards", "resize", "2", "--group-size", str(args.group_size))
        await asyncio.sleep(args.settle_s)
        shrink_started = time.monotonic()
        shrink_s, shrink_out = await cli(env, "shards", "resize", "1", "--group-size", str(args.group_size))
        moves_ended = time.monotonic()
        await asyncio.sleep(args.settle_s)
        stop.set()
        await task
    steady = [s for s in run.samples if s.sent_at < moves_started]
    grow = [s for s in run.samples if moves_started <= s.sent_at < moves_started + grow_s]
    shrink = [s for s in run.samples if shrink_started <= s.sent_at < moves_ended]
    unacked = sum(1 for s in run.samples if s.acked_after_s is None)
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM transactions WHERE scope = 'demo:api' AND transaction_id = ANY($1::text[])",
            run.acked)
    finally:
        await conn.close()
    verify = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", "verify-ledger", cwd=REPO, env=env,
                                                  stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    verify_code = await verify.wait()
    print(grow_out.strip().splitlines()[-1])
    print(shrink_out.strip().splitlines()[-1])
    print(f"\nrate {args.rate:.0f}/s, group size {args.group_size}; resize 1->2 took {grow_s:.2f} s, "
          f"2->1 {shrink_s:.2f} s (CLI wall time, process start included)\n")
    print("| phase | requests | errors (first attempt) | p50 ms | p99 ms | max ms | longest wait to ack s | "
          "answers |\n|---|---|---|---|---|---|---|---|")
    print(phase_row("steady, 1 shard", steady))
    print(phase_row("resize 1 -> 2", grow))
    print(phase_row("resize 2 -> 1", shrink))
    print(f"\n{len(run.acked)} deposits acknowledged, {stored} stored "
          f"({'ok' if stored == len(run.acked) else 'MISMATCH'}), {unacked} never acknowledged, "
          f"{run.not_sent} not sent (generator bound); verify-ledger exit {verify_code}")
    return 0 if stored == len(run.acked) and not unacked and verify_code == 0 else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    asyncio.run(ensure_database(args.pg_admin_dsn, args.database))
    database_url = with_database(args.pg_admin_dsn, args.database)
    env = {**os.environ, "GATEWAY_DATABASE_URL": database_url, "GATEWAY_REDIS_URL": args.redis_url,
           "GATEWAY_MIGRATE_ON_START": "1", "GATEWAY_SERVER__PORT": str(args.port),
           "GATEWAY_DATA_DIR": str(REPO / "var" / "bench-resharding"), "GATEWAY_LOG_LEVEL": "warning",
           "GATEWAY_CLUSTER__LAYOUT_POLL_INTERVAL_MS": "200"}
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    with open(REPO / "benchmarks" / "results" / "resharding-gateway.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--edges", "1", "--shards", "1"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return asyncio.run(measure(args, env, database_url))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
