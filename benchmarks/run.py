"""Benchmark the gateway against a conventional baseline: ``python -m benchmarks.run --help``.

For each target (gateway, then baseline) in one run:
  1. seed ``--players`` players (create + deposit) and one hot player, unless already seeded;
  2. ``uniform``: bet-then-win rounds over all players, closed loop, ``--connections``;
  3. ``hot``: the same on one player, closed loop (plus a balance check at the end);
  4. ``rate``: the same as 2 at a constant ``--rate`` ops/s, open loop (latency measured
     from each request's scheduled send time, so queueing is never hidden).
Prints a markdown table per run and the gateway/baseline ratios; writes
``benchmarks/results/latest.json``. Every phase has a duration and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import uvloop

from benchmarks import report
from benchmarks.cpu import CpuMeter, machine_busy_pct
from benchmarks.drivers import run_closed, run_open
from benchmarks.httpload import HttpConn, Target, open_conns, request
from benchmarks.servers import (
    REPO,
    ManagedServer,
    baseline_server,
    ensure_database,
    gateway_server,
    listening_pid,
    run_command,
    wait_ready,
    with_database,
)
from benchmarks.stats import CpuUse, Recorder, Summary, summarize
from benchmarks.workloads import Rounds, Seeder, new_run_id, player_ids

WORKLOADS = ("uniform", "hot", "rate")
PLAYER_DEPOSIT_MINOR = 10_000_000  # 100,000.00 EUR per player
HOT_DEPOSIT_MINOR = 1_000_000_000  # 10,000,000.00 EUR on the hot player


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("targets")
    g.add_argument("--gateway-url", default="http://127.0.0.1:8080")
    g.add_argument("--skip-gateway", action="store_true", help="measure the baseline only")
    g.add_argument("--start-gateway", action="store_true",
                   help="start the gateway (--gateway-cmd) and stop it afterwards")
    g.add_argument("--gateway-cmd", default="",
                   help="command to start the gateway (default: .venv/bin/gateway serve)")
    g.add_argument("--gateway-pre-cmd", default="",
                   help="one-shot command before starting it, e.g. '.venv/bin/gateway migrate'")
    g.add_argument("--gateway-database-url",
                   default="postgresql://postgres@127.0.0.1:5432/bench_gateway",
                   help="GATEWAY_DATABASE_URL for --start-gateway (database created if missing); "
                        "its database name also attributes PostgreSQL CPU to the gateway")
    g.add_argument("--redis-url", default="redis://127.0.0.1:6379/0",
                   help="GATEWAY_REDIS_URL for --start-gateway")
    g.add_argument("--gateway-pid", type=int, default=0,
                   help="pid of an externally started gateway, for its CPU figure "
                        "(default: the process listening on the gateway port)")
    g.add_argument("--skip-baseline", action="store_true")
    g.add_argument("--baseline-url", default="http://127.0.0.1:8090")
    g.add_argument("--baseline-external", action="store_true",
                   help="use a baseline already running at --baseline-url")
    g.add_argument("--baseline-dsn",
                   default="postgresql://postgres@127.0.0.1:5432/bench_baseline")
    g.add_argument("--baseline-pool-size", type=int, default=10)
    g.add_argument("--baseline-reset", action="store_true",
                   help="empty the baseline tables at startup (forces re-seeding)")
    g.add_argument("--pg-admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    g.add_argument("--api-key", default="demo-key-change-me")
    g.add_argument("--ready-timeout-s", type=float, default=60.0)

    w = p.add_argument_group("workloads")
    w.add_argument("--workloads", default=",".join(WORKLOADS),
                   help="comma-separated subset of: " + ",".join(WORKLOADS))
    w.add_argument("--players", type=int, default=100_000)
    w.add_argument("--player-prefix", default="bench-")
    w.add_argument("--seed", choices=("auto", "always", "never"), default="auto",
                   help="auto: seed unless the first/last players already have money")
    w.add_argument("--skip-seed", action="store_true", help="same as --seed never")
    w.add_argument("--seed-connections", type=int, default=64)
    w.add_argument("--seed-timeout-s", type=float, default=1800.0)
    w.add_argument("--duration-s", type=float, default=20.0, help="measured seconds per workload")
    w.add_argument("--warmup-s", type=float, default=3.0, help="unmeasured seconds before it")
    w.add_argument("--drain-s", type=float, default=10.0,
                   help="grace after the window for in-flight answers, then they are aborted")
    w.add_argument("--pause-s", type=float, default=2.0, help="idle time between workloads")
    w.add_argument("--connections", type=int, default=64, help="closed-loop connections")
    w.add_argument("--rate", default="5000",
                   help="open-loop offered ops/s; a comma-separated list runs one 'rate' "
                        "workload per value, e.g. 1000,5000")
    w.add_argument("--rate-connections", type=int, default=128,
                   help="open-loop connection pool (requests queue when all are busy)")
    w.add_argument("--idle-threshold-pct", type=float, default=25.0,
                   help="before each workload wait until the machine is at most this busy "
                        "(%% of one core; the servers are idle then)")
    w.add_argument("--idle-wait-s", type=float, default=120.0,
                   help="longest wait for a quiet machine; then measure anyway, flagged")
    w.add_argument("--out", default=str(REPO / "benchmarks/results/latest.json"))
    args = p.parse_args(argv)
    if args.skip_seed:
        args.seed = "never"
    args.workload_list = [x.strip() for x in args.workloads.split(",") if x.strip()]
    try:
        args.rates = [float(x) for x in str(args.rate).split(",") if x.strip()]
    except ValueError:
        p.error("--rate takes numbers, e.g. 5000 or 1000,5000")
    if "rate" in args.workload_list and (not args.rates or min(args.rates) <= 0):
        p.error("--rate must be positive")
    bad = [x for x in args.workload_list if x not in WORKLOADS]
    if bad:
        p.error(f"unknown workloads {bad}")
    return args


# ---------------------------------------------------------------------------------------
async def cash_minor(target: Target, player: bytes) -> int | None:
    """EUR cash balance of ``player``, None if unknown."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(HttpConn, target.host, target.port)
    try:
        status, body = await request(conn, target.get(f"/v1/players/{player.decode()}/balance"))
    finally:
        conn.close()
    if status != 200:
        return None
    for b in orjson.loads(body).get("balances", []):
        if b.get("currency") == "EUR":
            return int(b["cash_minor"])
    return None


async def seed(target: Target, name: str, players: list[bytes], hot: list[bytes],
               args: argparse.Namespace) -> None:
    if args.seed == "never":
        print(f"[{name}] seeding skipped (--seed never)", flush=True)
        return
    if args.seed == "auto":
        probes = [players[0], players[-1], hot[0]]
        balances = [await cash_minor(target, p) for p in probes]
        if all(b is not None and b > 0 for b in balances):
            print(f"[{name}] already seeded ({len(players)} players + hot player)", flush=True)
            return
    for group, deposit in ((hot, HOT_DEPOSIT_MINOR), (players, PLAYER_DEPOSIT_MINOR)):
        seeder = Seeder(target, group, deposit)
        conns = await open_conns(target, min(args.seed_connections, len(group)))
        t = time.perf_counter()
        elapsed = await run_closed(target, conns, seeder, Recorder(),
                                   duration_s=args.seed_timeout_s, drain_s=10.0)
        rate = 2 * len(group) / max(time.perf_counter() - t, 1e-9)
        print(f"[{name}] seeded {seeder.deposited}/{len(group)} players in {elapsed:.1f}s "
              f"({rate:.0f} req/s)", flush=True)
        if seeder.failed:
            for what, status, body in seeder.failed[:5]:
                print(f"  seed {what} failed: {status} {body!r}", flush=True)
            raise SystemExit(f"[{name}] seeding failed for {len(seeder.failed)} requests")


async def measure_cpu(meter: CpuMeter, warmup_s: float, duration_s: float) -> CpuUse:
    await asyncio.sleep(warmup_s)
    await asyncio.to_thread(meter.start)
    await asyncio.sleep(duration_s)
    return await asyncio.to_thread(meter.stop)


async def wait_quiet(args: argparse.Namespace) -> float:
    """Wait (bounded) for foreign CPU load to fade; returns the last busy % sampled."""
    deadline = time.monotonic() + args.idle_wait_s
    warned = False
    while True:
        busy = await asyncio.to_thread(machine_busy_pct, 2.0)
        if busy <= args.idle_threshold_pct or time.monotonic() >= deadline:
            if busy > args.idle_threshold_pct:
                print(f"  WARNING: machine still {busy}% busy before the workload; "
                      "figures are disturbed by foreign load", flush=True)
            return busy
        if not warned:
            print(f"  machine {busy}% busy with foreign load; waiting up to "
                  f"{args.idle_wait_s:.0f}s for it to settle", flush=True)
            warned = True


async def settle(target: Target, wl: Rounds) -> None:
    """Send the wins of the rounds the window cut off (not measured; see Rounds.settle_ops)."""
    ops = wl.settle_ops()
    if not ops:
        return
    (conn,) = await open_conns(target, 1)
    try:
        for op in ops:
            status, body = await request(conn, op.data)
            wl.on_done(op, status, body)
    finally:
        conn.close()


async def run_workload(kind: str, tname: str, target: Target, players: list[bytes],
                       hot: list[bytes], args: argparse.Namespace,
                       server_pid: int | None, rate: float = 0.0,
                       pg_database: str | None = None) -> Summary:
    background = await wait_quiet(args)
    open_loop = kind == "rate"
    n_conns = args.rate_connections if open_loop else args.connections
    conns = await open_conns(target, n_conns)
    wl = Rounds(target, hot if kind == "hot" else players, run_id=new_run_id() + kind[0],
                seed=zlib.crc32(f"{tname}/{kind}".encode()))
    before = await cash_minor(target, hot[0]) if kind == "hot" else None
    rec = Recorder()
    meter = CpuMeter(server_pid, pg_database)
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        cpu_task = asyncio.create_task(measure_cpu(meter, args.warmup_s + 0.05, args.duration_s))
        if open_loop:
            window = await run_open(target, conns, wl, rec, rate=rate,
                                    duration_s=args.duration_s, warmup_s=args.warmup_s,
                                    drain_s=args.drain_s)
        else:
            window = await run_closed(target, conns, wl, rec, duration_s=args.duration_s,
                                      warmup_s=args.warmup_s, drain_s=args.drain_s)
        cpu = await cpu_task
        cpu.background_pct = background
    finally:
        gc.enable()
        gc.unfreeze()
    s = summarize(rec, target=tname, workload=kind, mode="open" if open_loop else "closed",
                  connections=n_conns, duration_s=window,
                  offered_rate=rate if open_loop else None, cpu=cpu)
    await settle(target, wl)
    if kind == "hot":
        after = await cash_minor(target, hot[0])
        s.checks = {"balance_before": before, "balance_after": after,
                    "net_of_ok_answers": wl.net_minor, "unknown_outcomes": wl.unknown_outcomes}
        if before is not None and after is not None and wl.unknown_outcomes == 0:
            s.checks["balance_consistent"] = after - before == wl.net_minor
    if cpu.other_pct is not None and cpu.other_pct > args.idle_threshold_pct:
        s.checks["foreign_load_pct"] = cpu.other_pct
        print(f"  WARNING: {cpu.other_pct}% CPU used by other processes during the window",
              flush=True)
    if cpu.generator_pct > 85:
        s.checks["generator_saturated"] = True
        print(f"  WARNING: generator CPU {cpu.generator_pct}% - figures may be generator-bound",
              flush=True)
    label = f"{kind} {rate:.0f}/s" if open_loop else kind
    print(f"[{tname}] {label}: {s.ops_per_s:.0f} ok ops/s, p50 {s.p50_ms} ms, p99 {s.p99_ms} ms, "
          f"p99.9 {s.p999_ms} ms, errors {s.error_count}, incomplete {s.incomplete}, "
          f"gen CPU {cpu.generator_pct}%, server CPU {cpu.server_pct}%, "
          f"PG CPU {cpu.postgres_pct}%, other CPU {cpu.other_pct}%", flush=True)
    if cpu.server_roles_pct and s.ops_per_s:
        per_op = {role: round(1e4 * v / s.ops_per_s, 1) for role, v in cpu.server_roles_pct.items()}
        print(f"  CPU us/op by process role: {per_op}, PostgreSQL "
              f"{round(1e4 * (cpu.postgres_pct or 0) / s.ops_per_s, 1)}, generator "
              f"{round(1e4 * cpu.generator_pct / s.ops_per_s, 1)}", flush=True)
    return s


async def bench_target(tname: str, target: Target, args: argparse.Namespace,
                       server_pid: int | None, pg_database: str | None) -> list[Summary]:
    players = player_ids(args.player_prefix, args.players)
    hot = [f"{args.player_prefix}hot".encode()]
    await seed(target, tname, players, hot, args)
    runs = [(k, r) for k in args.workload_list for r in (args.rates if k == "rate" else [0.0])]
    out = []
    for i, (kind, rate) in enumerate(runs):
        if i:
            await asyncio.sleep(args.pause_s)
        out.append(await run_workload(kind, tname, target, players, hot, args, server_pid, rate,
                                      pg_database))
    return out


def _dbname(dsn: str) -> str | None:
    return urlsplit(dsn).path.lstrip("/") or None


async def run_gateway(args: argparse.Namespace) -> list[Summary]:
    target = Target(args.gateway_url, args.api_key)
    server: ManagedServer | None = None
    if args.start_gateway:
        db = urlsplit(args.gateway_database_url).path.lstrip("/")
        await ensure_database(args.pg_admin_dsn, db)
        env = {"GATEWAY_DATABASE_URL": args.gateway_database_url,
               "GATEWAY_REDIS_URL": args.redis_url}
        if args.gateway_pre_cmd:
            run_command(args.gateway_pre_cmd, env, 300)
        server = gateway_server(args.gateway_cmd, target.port, args.gateway_database_url,
                                args.redis_url)
        server.start()
    try:
        try:
            await wait_ready(target, args.ready_timeout_s if server else 5.0, server)
        except RuntimeError as exc:
            raise SystemExit(f"gateway not reachable at {args.gateway_url}: {exc}\n"
                             "start it (gateway serve), or pass --start-gateway, "
                             "or --skip-gateway") from None
        pid = server.pid if server else (args.gateway_pid or listening_pid(target.port))
        return await bench_target("gateway", target, args, pid, _dbname(args.gateway_database_url))
    finally:
        if server:
            server.stop()


async def run_baseline(args: argparse.Namespace) -> list[Summary]:
    target = Target(args.baseline_url, args.api_key)
    server: ManagedServer | None = None
    if not args.baseline_external:
        server = baseline_server(target.port, args.baseline_dsn,
                                 with_database(args.baseline_dsn, "postgres")
                                 if not args.pg_admin_dsn else args.pg_admin_dsn,
                                 args.baseline_pool_size, args.api_key, args.baseline_reset)
        server.start()
    try:
        await wait_ready(target, args.ready_timeout_s, server)
        pid = server.pid if server else listening_pid(target.port)
        return await bench_target("baseline", target, args, pid, _dbname(args.baseline_dsn))
    finally:
        if server:
            server.stop()


async def main_async(args: argparse.Namespace) -> int:
    meta = await report.machine_info(args.pg_admin_dsn, REPO)
    meta["args"] = {k: v for k, v in vars(args).items() if k != "workload_list"}
    meta["generator"] = ("benchmarks.httpload: asyncio Protocols on uvloop, HTTP/1.1 keep-alive, "
                         "one request in flight per connection, one process")
    results: list[Summary] = []
    if not args.skip_gateway:
        results += await run_gateway(args)
    if not args.skip_baseline:
        results += await run_baseline(args)
    out = Path(args.out)
    report.write_json(out, meta, results)
    print()
    print(f"machine: {meta['cpus']} x {meta['cpu_model']}, {meta['mem_gib']} GiB, "
          f"PostgreSQL {meta.get('postgres')} (synchronous_commit={meta.get('pg_synchronous_commit')},"
          f" fsync={meta.get('pg_fsync')}), duration {args.duration_s}s per workload")
    print()
    print(report.results_table(results))
    if len({r.target for r in results}) > 1:
        print()
        print(report.comparison_table(results))
    notes = report.error_lines(results)
    if notes:
        print()
        print(notes)
    print(f"\nwrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
