"""Sportsbook benchmark: placement throughput and whole-market settlement time.

``python -m benchmarks.sportsbook --start-gateway`` (or ``--gateway-url`` of a running one):

1. setup (unmeasured): ``--markets`` markets of three selections each (trading key) and
   ``--players`` funded players;
2. ``debit``: plain wallet debits over the same players, closed loop: the in-run reference
   (the wallet's own path through the same edge and shard);
3. ``singles``: single bets on random markets, closed loop, ``--connections``, exposure
   checks on (every market has liability limits far above the load);
4. ``accumulators``: four-leg accumulators over four random markets;
5. ``settlement``: ``--settle-bets`` singles on one market, then one result, timed from the
   result's 202 until PostgreSQL holds every one of those bets settled.

Prints a table (ops/s, p50/p99 ms, errors, CPU µs per operation by process) and writes
``benchmarks/results/sportsbook.json``. Not a test: no assertion on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import orjson

from benchmarks.cpu import CpuMeter
from benchmarks.httpload import HttpConn, Target, open_conns
from benchmarks.servers import REPO, ensure_database, gateway_server, listening_pid, wait_ready, with_database
from benchmarks.stats import CpuUse, Recorder, summarize

WALLET_KEY = "demo-key-change-me"
TRADING_KEY = "demo-trading-key-change-me"
RESULTS = REPO / "benchmarks" / "results" / "sportsbook.json"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gateway-url", default="http://127.0.0.1:8080")
    p.add_argument("--start-gateway", action="store_true")
    p.add_argument("--gateway-cmd", default="")
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_sportsbook")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    p.add_argument("--markets", type=int, default=200)
    p.add_argument("--players", type=int, default=5_000)
    p.add_argument("--connections", type=int, default=128)
    p.add_argument("--duration-s", type=float, default=15.0)
    p.add_argument("--warmup-s", type=float, default=3.0)
    p.add_argument("--settle-bets", type=int, default=100_000)
    p.add_argument("--settle-timeout-s", type=float, default=600.0)
    p.add_argument("--workloads", default="debit,singles,accumulators,settlement")
    return p.parse_args()


class Run:
    def __init__(self, args: argparse.Namespace, target: Target) -> None:
        self.args = args
        self.target = target
        self.tag = uuid.uuid4().hex[:8]
        self.markets = [f"bm-{self.tag}-{i}" for i in range(args.markets)]
        self.players = [f"bp-{self.tag}-{i}" for i in range(args.players)]
        self.seq = 0

    def next_id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.tag}-{self.seq}"

    # ---- request bodies ------------------------------------------------------------------

    def single(self, rng: random.Random) -> bytes:
        market = rng.choice(self.markets)
        selection, odds = rng.choice((("home", "2.50"), ("draw", "3.20"), ("away", "2.90")))
        return orjson.dumps({"bet_id": self.next_id("s"), "player_id": rng.choice(self.players), "currency": "GBP",
                             "bet_type": "single", "stake_minor": 100, "stake_convention": "per_line",
                             "legs": [{"market_id": market, "selection_id": selection, "odds": {"decimal": odds}}]})

    def accumulator(self, rng: random.Random) -> bytes:
        legs = [{"market_id": m, "selection_id": "home", "odds": {"decimal": "2.50"}} for m in rng.sample(self.markets, 4)]
        return orjson.dumps({"bet_id": self.next_id("a"), "player_id": rng.choice(self.players), "currency": "GBP",
                             "bet_type": "accumulator", "stake_minor": 100, "stake_convention": "per_line",
                             "legs": legs})

    def debit(self, rng: random.Random) -> bytes:
        tx = self.next_id("d")
        return orjson.dumps({"transaction_id": tx, "player_id": rng.choice(self.players), "currency": "GBP",
                             "amount_minor": 100, "round_id": tx, "game_id": "bench"})


async def setup(run: Run, base_url: str) -> None:
    limits = {"market_liability_max_minor": 10**13, "selection_liability_max_minor": 10**13}
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
        trading = {"Authorization": f"Bearer {TRADING_KEY}"}
        wallet = {"Authorization": f"Bearer {WALLET_KEY}"}
        gate = asyncio.Semaphore(64)

        async def market(market_id: str) -> None:
            async with gate:
                r = await http.put(f"/v1/sportsbook/markets/{market_id}", headers=trading, json={
                    "event": "bench", "status": "open", "price_version": 1, "currency": "GBP", "limits": limits,
                    "selections": [{"selection_id": s, "odds": {"decimal": o}}
                                   for s, o in (("home", "2.50"), ("draw", "3.20"), ("away", "2.90"))]})
                assert r.status_code in (200, 201), r.text

        async def player(player_id: str) -> None:
            async with gate:
                r = await http.post("/v1/players", headers=wallet,
                                    json={"player_id": player_id, "currencies": ["GBP"], "country": "GB"})
                assert r.status_code in (200, 201), r.text
                r = await http.post("/v1/wallet/deposit", headers=wallet, json={
                    "transaction_id": f"seed-{player_id}", "player_id": player_id, "currency": "GBP",
                    "amount_minor": 10**10})
                assert r.status_code == 200, r.text

        started = time.perf_counter()
        await asyncio.gather(*(market(m) for m in run.markets), *(market(m) for m in [f"settle-{run.tag}"]))
        await asyncio.gather(*(player(p) for p in run.players))
        print(f"setup: {len(run.markets)} markets, {len(run.players)} players in {time.perf_counter() - started:.1f}s",
              flush=True)


async def closed_loop(run: Run, path: str, make, *, duration_s: float, warmup_s: float, connections: int,
                      meter: CpuMeter) -> tuple[Recorder, CpuUse]:
    """``connections`` loops sending ``make(rng)`` bodies to ``path``; measured after the warm-up."""
    conns = await open_conns(run.target, connections)
    prefix = run.target.post_prefix(path)
    rec = Recorder()
    loop = asyncio.get_running_loop()
    measuring = False
    stop_at = loop.time() + warmup_s + duration_s

    async def worker(conn: HttpConn, seed: int) -> None:
        rng = random.Random(seed)
        while loop.time() < stop_at and not conn.closed:
            body = make(rng)
            fut: asyncio.Future[tuple[int, bytes]] = loop.create_future()
            sent = time.perf_counter()
            conn.send(prefix + str(len(body)).encode() + b"\r\n\r\n" + body,
                      lambda status, data, fut=fut: fut.done() or fut.set_result((status, data)))
            status, data = await fut
            if measuring and rec.record(status, data, time.perf_counter() - sent):
                rec.ok_in_window += 1

    tasks = [asyncio.create_task(worker(c, i)) for i, c in enumerate(conns)]
    await asyncio.sleep(warmup_s)
    measuring = True
    meter.start()
    await asyncio.sleep(duration_s)
    cpu = meter.stop()
    measuring = False
    await asyncio.gather(*tasks)
    for c in conns:
        c.close()
    return rec, cpu


async def settlement(run: Run, base_url: str, database_url: str, meter: CpuMeter) -> dict:
    """Place ``--settle-bets`` singles on one market, result it, time until all are settled."""
    market_id = f"settle-{run.tag}"
    n = run.args.settle_bets
    conns = await open_conns(run.target, run.args.connections)
    prefix = run.target.post_prefix("/v1/sportsbook/bets")
    loop = asyncio.get_running_loop()
    placed = 0
    queue = iter(range(n))
    started = time.perf_counter()

    async def worker(conn: HttpConn, seed: int) -> None:
        nonlocal placed
        rng = random.Random(seed)
        for i in queue:
            body = orjson.dumps({"bet_id": f"st-{run.tag}-{i}", "player_id": rng.choice(run.players), "currency": "GBP",
                                 "bet_type": "single", "stake_minor": 100, "stake_convention": "per_line",
                                 "legs": [{"market_id": market_id, "selection_id": "home",
                                           "odds": {"decimal": "2.50"}}]})
            fut: asyncio.Future[tuple[int, bytes]] = loop.create_future()
            conn.send(prefix + str(len(body)).encode() + b"\r\n\r\n" + body,
                      lambda status, data, fut=fut: fut.done() or fut.set_result((status, data)))
            status, _ = await fut
            placed += status == 201

    await asyncio.gather(*(worker(c, i) for i, c in enumerate(conns)))
    for c in conns:
        c.close()
    place_s = time.perf_counter() - started
    print(f"settlement: {placed} bets placed on one market in {place_s:.1f}s", flush=True)
    db = await asyncpg.connect(database_url)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
            meter.start()
            started = time.perf_counter()
            r = await http.post("/v1/sportsbook/results", headers={"Authorization": f"Bearer {TRADING_KEY}"}, json={
                "result_id": f"r-{run.tag}", "market_id": market_id,
                "results": [{"selection_id": "home", "outcome": "won"}, {"selection_id": "away", "outcome": "lost"},
                            {"selection_id": "draw", "outcome": "lost"}]})
            assert r.status_code == 202, r.text
            deadline = started + run.args.settle_timeout_s
            while True:
                settled = await db.fetchval(
                    "SELECT count(*) FROM sportsbook_bets WHERE partner_id = 'demo' AND bet_id LIKE $1"
                    " AND state = 'settled'", f"st-{run.tag}-%")
                if settled >= placed or time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.2)
            settle_s = time.perf_counter() - started
            cpu = meter.stop()
    finally:
        await db.close()
    return {"bets": placed, "place_s": round(place_s, 1), "settled": settled, "settle_s": round(settle_s, 2),
            "settled_per_s": round(settled / settle_s, 1), "cpu": cpu.__dict__}


def _per_op(cpu: CpuUse, ops_per_s: float) -> str:
    if ops_per_s <= 0:
        return "n/a"
    roles = cpu.server_roles_pct or {}
    parts = [f"{role} {pct * 10_000 / ops_per_s:.0f}" for role, pct in roles.items() if pct]
    parts.append(f"PG {cpu.postgres_pct * 10_000 / ops_per_s:.0f}")
    parts.append(f"gen {cpu.generator_pct * 10_000 / ops_per_s:.0f}")
    return " / ".join(parts)


def _write(text: str) -> None:
    Path(RESULTS).parent.mkdir(parents=True, exist_ok=True)
    Path(RESULTS).write_text(text)


async def main() -> None:
    args = _args()
    server = None
    base_url = args.gateway_url
    if args.start_gateway:
        admin = with_database(args.database_url, "postgres")
        await ensure_database(admin, args.database_url.rsplit("/", 1)[1])
        port = int(base_url.rsplit(":", 1)[1])
        server = gateway_server(args.gateway_cmd, port, args.database_url, args.redis_url)
        server.start()
    target = Target(base_url, WALLET_KEY)
    try:
        await wait_ready(target, 120.0, server)
        pid = server.pid if server else listening_pid(target.port)
        meter = CpuMeter(pid, args.database_url.rsplit("/", 1)[1])
        run = Run(args, target)
        await setup(run, base_url)
        rows = []
        phases = {"debit": ("/v1/wallet/debit", run.debit), "singles": ("/v1/sportsbook/bets", run.single),
                  "accumulators": ("/v1/sportsbook/bets", run.accumulator)}
        workloads = args.workloads.split(",")
        for name in workloads:
            if name not in phases:
                continue
            path, make = phases[name]
            rec, cpu = await closed_loop(run, path, make, duration_s=args.duration_s, warmup_s=args.warmup_s,
                                         connections=args.connections, meter=meter)
            s = summarize(rec, target="gateway", workload=name, mode="closed", connections=args.connections,
                          duration_s=args.duration_s, offered_rate=None, cpu=cpu)
            rows.append(s.to_dict())
            print(f"{name}: {s.ops_per_s} ok ops/s, p50 {s.p50_ms} ms, p99 {s.p99_ms} ms, errors {s.error_count} "
                  f"{s.errors or ''}; CPU µs/op {_per_op(cpu, s.ops_per_s)}", flush=True)
        settled = None
        if "settlement" in workloads:
            settled = await settlement(run, base_url, args.database_url, meter)
            print(f"settlement: {settled['settled']} of {settled['bets']} bets settled in {settled['settle_s']}s "
                  f"({settled['settled_per_s']}/s)", flush=True)
        print("\n| workload | ok ops/s | p50 ms | p99 ms | errors | CPU µs/op |\n|---|---|---|---|---|---|")
        for r in rows:
            cpu = CpuUse(**r["cpu"]) if isinstance(r["cpu"], dict) else r["cpu"]
            print(f"| {r['workload']} | {r['ops_per_s']:,} | {r['p50_ms']} | {r['p99_ms']} | {r['error_count']} | "
                  f"{_per_op(cpu, r['ops_per_s'])} |")
        _write(json.dumps({"phases": rows, "settlement": settled}, indent=2, default=str))
        print(f"\nwrote {RESULTS}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
