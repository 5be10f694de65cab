"""What tracing costs a request: the wallet workload on three gateways, tracing off, 10%
sampling and 100% sampling, in alternating rounds of one run (docs/BENCHMARKS.md, "Tracing").

Issue "Operable and auditable", target: at 10% sampling the CPU per operation stays within
5% of tracing off (medians of at least five alternating rounds); 100% is reported. The three
gateways (``gateway serve``, same process layout) run side by side on their own databases
and ports; each round runs the same uniform workload (debit, credit, balance through
``/v1/wallet``) on each in turn, the order rotating from round to round so that drift of
the machine falls on all alike. The traced gateways export OTLP/HTTP to a do-nothing HTTP
server (``benchmarks.nullserver``, its own process), so serialising and sending the spans
is part of the cost measured and receiving them is not.

    .venv/bin/python -m benchmarks.tracing --players 5000 --rounds 5

Prints per round and mode: ok ops/s, p50/p99, CPU µs per op (gateway processes plus
PostgreSQL, and the gateway's processes alone); then the medians and the ratios to "off".
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys

import uvloop

from benchmarks import run
from benchmarks.httpload import Target
from benchmarks.servers import REPO, VENV_BIN, ensure_database, gateway_server, wait_ready
from benchmarks.stats import Summary
from benchmarks.workloads import player_ids

#: (mode, GATEWAY_TRACING__* settings)
MODES: tuple[tuple[str, dict[str, str]], ...] = (
    ("off", {"GATEWAY_TRACING__EXPORTER": "none"}),
    ("10%", {"GATEWAY_TRACING__EXPORTER": "otlp", "GATEWAY_TRACING__SAMPLE_RATIO": "0.1"}),
    ("100%", {"GATEWAY_TRACING__EXPORTER": "otlp", "GATEWAY_TRACING__SAMPLE_RATIO": "1.0"}),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--rounds", type=int, default=5, help="rounds (each: every mode once)")
    own.add_argument("--sink-port", type=int, default=4318, help="the OTLP sink's port")
    own.add_argument("--database-prefix", default="bench_tracing")
    mine, rest = own.parse_known_args(argv)
    args = run.parse_args([*rest, "--workloads", "uniform", "--skip-baseline"])
    args.rounds = max(mine.rounds, 1)
    args.sink_port = mine.sink_port
    args.database_prefix = mine.database_prefix
    return args


def cpu_us(s: Summary, with_postgres: bool = True) -> float:
    """CPU µs per ok operation: the gateway's processes (plus PostgreSQL)."""
    cpu = s.cpu
    pct = (cpu.server_pct or 0.0) + ((cpu.postgres_pct or 0.0) if with_postgres else 0.0)
    return 1e4 * pct / s.ops_per_s if s.ops_per_s else float("inf")


async def main_async(args: argparse.Namespace) -> int:
    base = Target(args.gateway_url, args.api_key)
    sink_argv = [str(VENV_BIN / "python"), "-m", "benchmarks.nullserver", "--port", str(args.sink_port),
                 "--max-s", "36000"]
    sink = subprocess.Popen(sink_argv, cwd=REPO)  # noqa: ASYNC220 - started once, before any load
    servers = []
    targets: dict[str, tuple[Target, int, str]] = {}
    try:
        for i, (mode, env) in enumerate(MODES):
            port = base.port + i
            db = f"{args.database_prefix}_{i}"
            await ensure_database(args.pg_admin_dsn, db)
            url = f"postgresql://postgres@127.0.0.1:5432/{db}"
            server = gateway_server(args.gateway_cmd, port, url, args.redis_url, {
                **env, "GATEWAY_TRACING__OTLP_ENDPOINT": f"http://127.0.0.1:{args.sink_port}/v1/traces",
                "GATEWAY_DATA_DIR": str(REPO / "var" / f"bench-tracing-{i}")}, name=f"gateway-tracing-{i}")
            server.start()
            servers.append(server)
            target = Target(f"http://127.0.0.1:{port}", args.api_key)
            await wait_ready(target, args.ready_timeout_s, server)
            assert server.pid is not None
            targets[mode] = (target, server.pid, db)
        populations = {}
        for mode, (target, _, _) in targets.items():
            players = player_ids(args.player_prefix, args.players)
            hot = [f"{args.player_prefix}hot".encode()]
            await run.seed(target, mode, players, hot, args)
            populations[mode] = (players, hot)
        results: dict[str, list[Summary]] = {mode: [] for mode, _ in MODES}
        names = [mode for mode, _ in MODES]
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for mode in order:
                target, pid, db = targets[mode]
                players, hot = populations[mode]
                s = await run.run_workload("uniform", f"tracing {mode} r{r + 1}", target, players, hot, args, pid,
                                           0.0, db)
                results[mode].append(s)
                await asyncio.sleep(args.pause_s)
        print("\n| tracing | rounds | ok ops/s (median) | p50 ms | p99 ms | errors | CPU µs/op gateway+PostgreSQL "
              "| CPU µs/op gateway |")
        print("|---|---|---|---|---|---|---|---|")
        medians: dict[str, tuple[float, float]] = {}
        for mode, runs in results.items():
            medians[mode] = (statistics.median(cpu_us(s) for s in runs),
                             statistics.median(cpu_us(s, False) for s in runs))
            print(f"| {mode} | {len(runs)} | {statistics.median(s.ops_per_s for s in runs):,.0f} | "
                  f"{statistics.median(s.p50_ms for s in runs)} | {statistics.median(s.p99_ms for s in runs)} | "
                  f"{sum(s.error_count for s in runs)} | {medians[mode][0]:.1f} | {medians[mode][1]:.1f} |")
        for mode, runs in results.items():
            print(f"  {mode} per round, CPU µs/op (gateway+PostgreSQL): {[round(cpu_us(s), 1) for s in runs]}")
        off = medians["off"]
        for mode in ("10%", "100%"):
            total, gateway = (medians[mode][0] / off[0], medians[mode][1] / off[1])
            target_note = "; target < +5%" if mode == "10%" else ""
            print(f"tracing {mode} / off, CPU per op: gateway+PostgreSQL {(total - 1) * 100:+.1f}%, "
                  f"gateway {(gateway - 1) * 100:+.1f}%{target_note}")
        return 0
    finally:
        for server in servers:
            server.stop()
        sink.terminate()
        sink.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    return uvloop.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
