"""Adapter overhead: the same bet-then-win rounds through each provider protocol, one run.

    python -m benchmarks.adapters --start-gateway

Seeds ``--players`` players through the generic API, opens a game session per player and
provider, then runs the closed-loop ``uniform`` rounds (as ``benchmarks.run``, 256
connections by default) through each protocol in ``--protocols`` against the same gateway
process, ``--rounds`` times (every other round in reverse order, since a run on a fresher
database is faster), and prints throughput, latency percentiles, CPU and the ratio of each
protocol's mean throughput to the generic API's in the same run (issue "Provider
protocols", target: >= 70% for the HMAC, MD5 and token protocols). A final ``mixed`` phase
runs generic traffic at a constant rate alone, beside generic traffic and beside Hub88
traffic, to show how much Hub88's RSA signing delays other traffic.

Success is judged in each protocol's terms (``benchmarks.protocols``): an HTTP 200 carrying
a refusal status is an error, listed by status.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import zlib
from urllib.parse import urlsplit

import orjson
import uvloop

from benchmarks.cpu import CpuMeter
from benchmarks.drivers import run_closed, run_open
from benchmarks.httpload import Target, open_conns
from benchmarks.protocols import WIRES, Hub88Wire, ProtocolRounds, Seat, plan_rounds
from benchmarks.run import PLAYER_DEPOSIT_MINOR, measure_cpu, seed, wait_quiet
from benchmarks.servers import REPO, ensure_database, gateway_server, listening_pid, wait_ready
from benchmarks.stats import Recorder, Summary, error_key, summarize
from benchmarks.workloads import new_run_id, player_ids

SESSION_PROVIDERS = ("hub88", "evolution", "pragmatic", "softswiss")


class ProtocolRecorder(Recorder):
    """A Recorder whose success test is the protocol's, not the HTTP status."""

    def __init__(self, ok) -> None:
        super().__init__()
        self._ok = ok

    def record(self, status: int, body: bytes, latency_s: float) -> bool:
        self.latencies.append(latency_s)
        if self._ok(status, body):
            self.ok += 1
            return True
        self.errors[error_key(status, body)] += 1
        return False


class SessionOpener:
    """Workload: POST /v1/sessions for every (player, provider); collects the tokens."""

    def __init__(self, target: Target, players: list[bytes]) -> None:
        self._todo = [(p, prov) for p in players for prov in SESSION_PROVIDERS]
        self._target = target
        self.tokens: dict[str, dict[str, str]] = {}
        self.failed: list[bytes] = []

    def next_op(self):
        from benchmarks.workloads import Op

        if not self._todo:
            return None
        player, provider = self._todo.pop()
        body = b'{"player_id":"%b","currency":"EUR","provider":"%b","game_id":"bench-slot"}' % (
            player, provider.encode())
        return Op(0, player, provider.encode(), b"", 0, self._target.post("/v1/sessions", body))

    def on_done(self, op, status: int, body: bytes) -> None:
        if status == 201:
            self.tokens.setdefault(op.player.decode(), {})[op.tx.decode()] = orjson.loads(body)["token"]
        else:
            self.failed.append(body[:200])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gateway-url", default="http://127.0.0.1:8080")
    p.add_argument("--start-gateway", action="store_true", help="start `gateway serve` on a fresh database")
    p.add_argument("--gateway-cmd", default="")
    p.add_argument("--gateway-database-url", default="postgresql://postgres@127.0.0.1:5432/gateway_adapters")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--pg-admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--api-key", default="demo-key-change-me")
    p.add_argument("--protocols", default="generic,hub88,evolution,pragmatic,softswiss")
    p.add_argument("--players", type=int, default=10_000)
    p.add_argument("--player-prefix", default="adapt-")
    p.add_argument("--seed", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--seed-connections", type=int, default=64)
    p.add_argument("--seed-timeout-s", type=float, default=900.0)
    p.add_argument("--connections", type=int, default=256)
    p.add_argument("--duration-s", type=float, default=15.0)
    p.add_argument("--warmup-s", type=float, default=2.0)
    p.add_argument("--drain-s", type=float, default=10.0)
    p.add_argument("--pause-s", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=2,
                   help="times the protocol list is run, every other round in reverse order "
                        "(so no protocol always runs on the freshest database); ratios use "
                        "the mean ok ops/s over the rounds")
    p.add_argument("--hub88-rounds", type=int, default=30_000,
                   help="Hub88 rounds signed ahead (must outlast the window)")
    p.add_argument("--mixed-rate", type=float, default=500.0,
                   help="generic ops/s of the mixed phase; 0 skips it")
    p.add_argument("--mixed-background-rate", type=float, default=1000.0,
                   help="ops/s of the generic or Hub88 traffic beside it")
    p.add_argument("--idle-threshold-pct", type=float, default=25.0)
    p.add_argument("--idle-wait-s", type=float, default=60.0)
    p.add_argument("--ready-timeout-s", type=float, default=60.0)
    args = p.parse_args(argv)
    args.protocol_list = [x.strip() for x in args.protocols.split(",") if x.strip()]
    bad = [x for x in args.protocol_list if x not in WIRES]
    if bad:
        p.error(f"unknown protocols {bad}; known: {', '.join(WIRES)}")
    args.seed_timeout_s = float(args.seed_timeout_s)
    return args


async def open_sessions(target: Target, players: list[bytes], args) -> list[Seat]:
    opener = SessionOpener(target, players)
    conns = await open_conns(target, args.seed_connections)
    started = time.perf_counter()
    await run_closed(target, conns, opener, Recorder(), duration_s=args.seed_timeout_s, drain_s=10.0)
    if opener.failed:
        raise SystemExit(f"opening sessions failed ({len(opener.failed)}): {opener.failed[:3]}")
    print(f"[sessions] {len(opener.tokens) * len(SESSION_PROVIDERS)} sessions in "
          f"{time.perf_counter() - started:.1f}s", flush=True)
    return [Seat(player, tokens) for player, tokens in sorted(opener.tokens.items())]


async def run_protocol(name: str, target: Target, seats: list[Seat], args, pid: int | None,
                       pg_database: str | None) -> Summary:
    wire = WIRES[name](target)
    run_id = new_run_id() + name[:2]
    plan = None
    if isinstance(wire, Hub88Wire):
        plan = plan_rounds(seats, args.hub88_rounds, run_id)
        took = wire.presign(plan)
        print(f"[hub88] signed {2 * len(plan)} requests ahead in {took:.1f}s", flush=True)
    background = await wait_quiet(args)
    workload = ProtocolRounds(wire, seats, run_id=run_id, seed=zlib.crc32(name.encode()), plan=plan)
    rec = ProtocolRecorder(wire.ok)
    conns = await open_conns(target, args.connections)
    meter = CpuMeter(pid, pg_database)
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        cpu_task = asyncio.create_task(measure_cpu(meter, args.warmup_s + 0.05, args.duration_s))
        window = await run_closed(target, conns, workload, rec, duration_s=args.duration_s,
                                  warmup_s=args.warmup_s, drain_s=args.drain_s)
        cpu = await cpu_task
        cpu.background_pct = background
    finally:
        gc.enable()
        gc.unfreeze()
    for conn in conns:
        conn.close()
    s = summarize(rec, target=name, workload="uniform", mode="closed", connections=args.connections,
                  duration_s=window, offered_rate=None, cpu=cpu)
    if plan is not None and not workload._plan:
        s.checks["plan_exhausted"] = True  # the window outlasted the signed rounds: raise --hub88-rounds
    print(f"[{name}] {s.ops_per_s:.0f} ok ops/s, p50 {s.p50_ms} ms, p99 {s.p99_ms} ms, "
          f"errors {s.error_count} {dict(s.errors) if s.errors else ''}, server CPU {cpu.server_pct}%, "
          f"PG CPU {cpu.postgres_pct}%, gen CPU {cpu.generator_pct}%", flush=True)
    return s


async def run_mixed(target: Target, seats: list[Seat], args, pid: int | None) -> list[tuple[str, Summary]]:
    """Generic traffic at ``--mixed-rate`` (open loop): alone, beside ``--mixed-background-rate``
    of more generic traffic (the control), and beside the same rate of Hub88 traffic. If Hub88's
    RSA signing held the shard's loop, the third row's latency would exceed the second's."""
    out = []
    phases = (("alone", None), ("beside generic", "generic"), ("beside hub88", "hub88"))
    for label, background in phases:
        await wait_quiet(args)
        generic = WIRES["generic"](target)
        run_id = new_run_id() + "mx"
        g_work = ProtocolRounds(generic, seats, run_id=run_id)
        g_rec = ProtocolRecorder(generic.ok)
        g_conns = await open_conns(target, 32)
        tasks = []
        if background is not None:
            wire = WIRES[background](target)
            plan = None
            if isinstance(wire, Hub88Wire):
                rounds = int(args.mixed_background_rate * (args.warmup_s + args.duration_s + 5) / 2) + 100
                plan = plan_rounds(seats, rounds, run_id + "b")
                wire.presign(plan)
            b_work = ProtocolRounds(wire, seats, run_id=run_id + "b", plan=plan)
            b_conns = await open_conns(target, args.connections)
            tasks.append(asyncio.create_task(run_open(
                target, b_conns, b_work, ProtocolRecorder(wire.ok), rate=args.mixed_background_rate,
                duration_s=args.duration_s, warmup_s=args.warmup_s, drain_s=args.drain_s)))
        meter = CpuMeter(pid, None)
        cpu_task = asyncio.create_task(measure_cpu(meter, args.warmup_s + 0.05, args.duration_s))
        window = await run_open(target, g_conns, g_work, g_rec, rate=args.mixed_rate,
                                duration_s=args.duration_s, warmup_s=args.warmup_s, drain_s=args.drain_s)
        for t in tasks:
            await t
        cpu = await cpu_task
        s = summarize(g_rec, target="generic", workload=label, mode="open", connections=32,
                      duration_s=window, offered_rate=args.mixed_rate, cpu=cpu)
        print(f"[mixed] generic {label}: {s.ops_per_s:.0f} ok ops/s at {args.mixed_rate:.0f}/s offered, "
              f"p50 {s.p50_ms} ms, p99 {s.p99_ms} ms, server CPU {cpu.server_pct}%", flush=True)
        out.append((label, s))
    return out


def table(results: list[Summary]) -> str:
    generic = next((r for r in results if r.target == "generic"), None)
    rows = ["| protocol | ok ops/s | vs generic | p50 ms | p99 ms | errors | server CPU | PG CPU | gen CPU |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ratio = f"{r.ops_per_s / generic.ops_per_s:.0%}" if generic and generic.ops_per_s else "n/a"
        rows.append(f"| {r.target} | {r.ops_per_s:.0f} | {ratio} | {r.p50_ms} | {r.p99_ms} | "
                    f"{r.error_count} | {r.cpu.server_pct}% | {r.cpu.postgres_pct}% | {r.cpu.generator_pct}% |")
    return "\n".join(rows)


def summary_table(rounds: list[list[Summary]]) -> str:
    """Per protocol: ok ops/s of each round, their mean, the mean's ratio to the generic
    API's mean, the worst p99 and the errors over all rounds."""
    names = [s.target for s in rounds[0]]
    means = {n: sum(r[i].ops_per_s for r in rounds) / len(rounds) for i, n in enumerate(names)}
    generic = means.get("generic")
    heads = " | ".join(f"round {k + 1} ops/s" for k in range(len(rounds)))
    rows = [f"| protocol | {heads} | mean ops/s | vs generic | worst p99 ms | errors |",
            "|---|" + "---|" * (len(rounds) + 4)]
    for i, n in enumerate(names):
        per = " | ".join(f"{r[i].ops_per_s:.0f}" for r in rounds)
        ratio = f"{means[n] / generic:.0%}" if generic else "n/a"
        worst = max(r[i].p99_ms for r in rounds)
        errors = sum(r[i].error_count for r in rounds)
        rows.append(f"| {n} | {per} | {means[n]:.0f} | {ratio} | {worst} | {errors} |")
    return "\n".join(rows)


async def main_async(args) -> int:
    target = Target(args.gateway_url, args.api_key)
    server = None
    db = urlsplit(args.gateway_database_url).path.lstrip("/") or None
    if args.start_gateway:
        await ensure_database(args.pg_admin_dsn, db)
        server = gateway_server(args.gateway_cmd, target.port, args.gateway_database_url, args.redis_url)
        server.start()
    try:
        await wait_ready(target, args.ready_timeout_s if server else 5.0, server)
        pid = server.pid if server else listening_pid(target.port)
        players = player_ids(args.player_prefix, args.players)
        hot = [f"{args.player_prefix}hot".encode()]
        seed_args = argparse.Namespace(seed=args.seed, seed_connections=args.seed_connections,
                                       seed_timeout_s=args.seed_timeout_s)
        await seed(target, "gateway", players, hot, seed_args)
        seats = await open_sessions(target, players, args)
        rounds: list[list[Summary]] = []
        for r in range(args.rounds):
            order = args.protocol_list if r % 2 == 0 else args.protocol_list[::-1]
            print(f"[round {r + 1}/{args.rounds}] {', '.join(order)}", flush=True)
            done: dict[str, Summary] = {}
            for i, name in enumerate(order):
                if i or r:
                    await asyncio.sleep(args.pause_s)
                done[name] = await run_protocol(name, target, seats, args, pid, db)
            rounds.append([done[name] for name in args.protocol_list])
        mixed = await run_mixed(target, seats, args, pid) if args.mixed_rate > 0 else []
    finally:
        if server:
            server.stop()
    print()
    print(f"adapter overhead: {args.players} players (deposit {PLAYER_DEPOSIT_MINOR} minor each), "
          f"{args.connections} connections, {args.duration_s:.0f}s per protocol, closed loop")
    print()
    for r, results in enumerate(rounds):
        print(f"round {r + 1}:\n")
        print(table(results))
        print()
    print(f"over {len(rounds)} rounds:\n")
    print(summary_table(rounds))
    if mixed:
        print()
        print(f"generic traffic at {args.mixed_rate:.0f}/s, beside {args.mixed_background_rate:.0f}/s of other traffic:")
        print()
        print("| generic traffic | offered/s | ok ops/s | p50 ms | p99 ms | server CPU |")
        print("|---|---|---|---|---|---|")
        for label, s in mixed:
            print(f"| {label} | {s.offered_rate:.0f} | {s.ops_per_s:.0f} | {s.p50_ms} | {s.p99_ms} | "
                  f"{s.cpu.server_pct}% |")
    out = REPO / "benchmarks/results/adapters.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps({"args": {k: v for k, v in vars(args).items()},
                                  "rounds": [[r.to_dict() for r in results] for results in rounds],
                                  "mixed": [{"label": label, **s.to_dict()} for label, s in mixed]},
                                 option=orjson.OPT_INDENT_2))
    print(f"\nwrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
