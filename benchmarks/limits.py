"""What responsible-gaming limits cost a bet: the wallet workload on players with limits
against players without, in alternating rounds of one run (docs/BENCHMARKS.md,
"Responsible gaming").

Issue "Player money in and out", target: with limits set on every player, the CPU per
operation stays within 10% of the figure without limits (medians of at least five
alternating rounds). Two populations are seeded on one gateway: ``<prefix>nl-*`` without
limits and ``<prefix>rg-*`` with a deposit, loss and wager limit for each of the three
periods (nine limits each, high enough never to refuse), so every bet of the second runs the
checks and every bet, win and deposit counts into the window sums. Rounds alternate the
order (A B, B A, ...) so drift of the machine falls on both alike.

    .venv/bin/python -m benchmarks.limits --start-gateway --players 5000 --rounds 5

Prints per round and population: ok ops/s, p50/p99, CPU µs per op (gateway processes and
PostgreSQL); then the medians and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from urllib.parse import urlsplit

import httpx
import uvloop

from benchmarks import run
from benchmarks.httpload import Target
from benchmarks.servers import ensure_database, gateway_server, wait_ready
from benchmarks.stats import Summary
from benchmarks.workloads import player_ids

LIMIT_MINOR = 10_000_000_000  # never reached: the checks run, no bet is refused


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--rounds", type=int, default=5, help="alternating rounds (each: both populations)")
    mine, rest = own.parse_known_args(argv)
    args = run.parse_args([*rest, "--workloads", "uniform", "--skip-baseline"])
    args.rounds = max(mine.rounds, 1)
    return args


async def set_limits(url: str, api_key: str, players: list[bytes]) -> None:
    """Nine limits on each player (deposit, loss, wager x day, week, month)."""
    body = {"limits": [{"kind": k, "period": p, "currency": "EUR", "amount_minor": LIMIT_MINOR}
                       for k in ("deposit", "loss", "wager") for p in ("day", "week", "month")]}
    sem = asyncio.Semaphore(64)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30.0) as c:
        async def one(player: bytes) -> None:
            async with sem:
                r = await c.put(f"/v1/players/{player.decode()}/limits", json=body)
                if r.status_code != 200:
                    raise SystemExit(f"setting limits failed: {r.status_code} {r.text}")

        await asyncio.gather(*(one(p) for p in players))


def per_op_us(s: Summary) -> float:
    """CPU µs per ok operation: the gateway's processes plus PostgreSQL."""
    cpu = s.cpu
    total_pct = (cpu.server_pct or 0.0) + (cpu.postgres_pct or 0.0)
    return 1e4 * total_pct / s.ops_per_s if s.ops_per_s else float("inf")


async def main_async(args: argparse.Namespace) -> int:
    target = Target(args.gateway_url, args.api_key)
    server = None
    if args.start_gateway:
        db = urlsplit(args.gateway_database_url).path.lstrip("/")
        await ensure_database(args.pg_admin_dsn, db)
        server = gateway_server(args.gateway_cmd, target.port, args.gateway_database_url, args.redis_url)
        server.start()
    try:
        await wait_ready(target, args.ready_timeout_s if server else 5.0, server)
        pid = server.pid if server else (args.gateway_pid or run.listening_pid(target.port))
        db = run._dbname(args.gateway_database_url)
        populations = {}
        for name, prefix in (("no limits", f"{args.player_prefix}nl-"), ("limits", f"{args.player_prefix}rg-")):
            players = player_ids(prefix, args.players)
            hot = [f"{prefix}hot".encode()]
            await run.seed(target, name, players, hot, args)
            populations[name] = (players, hot)
        await set_limits(args.gateway_url, args.api_key, populations["limits"][0])
        print(f"[limits] nine limits set on each of {args.players} players", flush=True)
        results: dict[str, list[Summary]] = {"no limits": [], "limits": []}
        for i in range(args.rounds):
            order = ["no limits", "limits"] if i % 2 == 0 else ["limits", "no limits"]
            for name in order:
                players, hot = populations[name]
                s = await run.run_workload("uniform", f"{name} r{i + 1}", target, players, hot, args, pid, 0.0, db)
                results[name].append(s)
                await asyncio.sleep(args.pause_s)
        print("\n| population | rounds | ok ops/s (median) | p50 ms | p99 ms | errors | CPU µs/op (median) |")
        print("|---|---|---|---|---|---|---|")
        medians = {}
        for name, runs in results.items():
            medians[name] = statistics.median(per_op_us(s) for s in runs)
            print(f"| {name} | {len(runs)} | {statistics.median(s.ops_per_s for s in runs):,.0f} | "
                  f"{statistics.median(s.p50_ms for s in runs)} | {statistics.median(s.p99_ms for s in runs)} | "
                  f"{sum(s.error_count for s in runs)} | {medians[name]:.1f} |")
        for name, runs in results.items():
            print(f"  {name} per round, CPU µs/op: {[round(per_op_us(s), 1) for s in runs]}")
        ratio = medians["limits"] / medians["no limits"]
        print(f"\nlimits / no limits, CPU per op: {ratio:.3f} ({(ratio - 1) * 100:+.1f}%; target < +10%)")
        return 0
    finally:
        if server:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    return uvloop.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
