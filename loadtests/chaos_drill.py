"""The chaos drill: the weekend-peak load while a shard process is killed, PostgreSQL's
connections are cut and Redis is blocked; then what the alerts did, how long each fault
lasted for callers, and the ledger checks.

    .venv/bin/python loadtests/chaos_drill.py --start-gateway          # a gateway of its own
    .venv/bin/python loadtests/chaos_drill.py --host http://127.0.0.1:8080 --gateway-pid <supervisor pid> \\
        --database-url postgresql://.../gateway --redis-url redis://.../0

What it does, in order (times in seconds after the load started, ``--fault-gap-s`` apart):
1. starts, unless given, a ``gateway serve`` with two shard processes on a new database,
   and a Prometheus (Debian's ``prometheus``) scraping it every second with the rules of
   deploy/prometheus/rules/ evaluated every second;
2. runs loadtests/run.py (the Saturday curve compressed into ``--seconds``; its own balance
   checks, HTML report and summary) and a probe that, every ``--probe-interval-ms``, deposits
   0.01 to one of its eight players (spread over the shards) and opens a game session
   (Redis), each of which must succeed;
3. faults: **kill -9 of shard process 1** (its supervisor restarts it; its players' calls
   fail meanwhile), **PostgreSQL connections terminated** (``pg_terminate_backend`` of every
   connection to the gateway's database: the shards reconnect), **Redis blocked**
   (``CLIENT PAUSE`` of ``--redis-block-s``: session lookups time out, rate limits fail open);
4. prints, per fault, the probe calls that failed and how long callers saw it fail
   (loadtests/outages.py); every alert Prometheus showed pending or firing, and when; the
   load test's result and the ledger check (``gateway verify-ledger``) plus the probe
   player's balance against the deposits it was answered 200 for.

Exit code 0 only if no balance check of the load test failed, the ledger verifies and the
probes' balances are exact: faults may make calls fail (retryably), never lose or double a
cent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import asyncpg
import httpx
import psutil
import redis.asyncio as aioredis
from outages import outage

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_BIN = Path(sys.executable).parent
API_KEY = os.environ.get("GATEWAY_API_KEY", "demo-key-change-me")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--start-gateway", action="store_true", help="start a gateway of its own (new database)")
    p.add_argument("--host", default="", help="the gateway (with --start-gateway: chosen)")
    p.add_argument("--gateway-pid", type=int, default=0, help="the gateway's supervisor (gateway serve)")
    p.add_argument("--database-url", default=os.environ.get("GATEWAY_DATABASE_URL", ""))
    p.add_argument("--admin-database-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                   help="with --start-gateway: where to create the drill's database")
    p.add_argument("--redis-url", default=os.environ.get("GATEWAY_REDIS_URL", "redis://127.0.0.1:6379/13"))
    p.add_argument("--prometheus", default="/usr/bin/prometheus", help="Prometheus binary ('' to skip alerts)")
    p.add_argument("--seconds", type=float, default=150.0, help="length of the load (the curve compressed)")
    p.add_argument("--first-fault-s", type=float, default=25.0)
    p.add_argument("--fault-gap-s", type=float, default=35.0)
    p.add_argument("--redis-block-s", type=float, default=8.0)
    p.add_argument("--processes", type=int, default=1, help="locust worker processes")
    p.add_argument("--probe-interval-ms", type=int, default=50)
    p.add_argument("--out", default="", help="report folder (default var/chaos/<time>)")
    return p.parse_args(argv)


class Probe:
    """Calls the gateway every interval, round-robin over ``PROBE_PLAYERS`` players of its own
    (so every shard is probed): a deposit of 0.01 EUR (the shard and PostgreSQL), then the
    opening of a game session (Redis). Keeps ``(t, ok, seconds)`` per call and the deposits
    answered 200 (what the balances must sum to)."""

    PROBE_PLAYERS = 8

    def __init__(self, host: str, interval_s: float) -> None:
        self.host = host
        self.interval_s = interval_s
        run = uuid.uuid4().hex[:8]
        self.players = [f"chaos-probe-{run}-{i}" for i in range(self.PROBE_PLAYERS)]
        self.timeline: list[tuple[float, bool, float]] = []
        self.credited_minor = 0
        self.unknown = 0  # deposits unanswered after every try: applied or not, either is right
        self._stop = asyncio.Event()

    async def setup(self, client: httpx.AsyncClient) -> None:
        for player in self.players:
            r = await client.post("/v1/players", json={"player_id": player, "currencies": ["EUR"], "country": "MT"})
            r.raise_for_status()

    async def _call(self, client: httpx.AsyncClient, t0: float, path: str, body: dict, want: int) -> bool:
        started = time.monotonic()
        try:
            ok = (await client.post(path, json=body, timeout=2.0)).status_code == want
        except httpx.HTTPError:
            ok = False
        self.timeline.append((started - t0, ok, time.monotonic() - started))
        return ok

    async def run(self, client: httpx.AsyncClient, t0: float) -> None:
        turn = 0
        while not self._stop.is_set():  # until stop(): the drill's length
            player = self.players[turn % len(self.players)]
            turn += 1
            body = {"transaction_id": f"probe-{uuid.uuid4().hex}", "player_id": player, "currency": "EUR",
                    "amount_minor": 1}
            for _ in range(3):  # a caller's retries with the same id, bounded
                if await self._call(client, t0, "/v1/wallet/deposit", body, 200):
                    self.credited_minor += 1
                    break
                await asyncio.sleep(self.interval_s)
            else:
                self.unknown += 1
            await self._call(client, t0, "/v1/sessions", {"player_id": player, "currency": "EUR",
                                                          "provider": "hub88", "game_id": "hub88_slot_1"}, 201)
            await asyncio.sleep(self.interval_s)

    def stop(self) -> None:
        self._stop.set()


async def poll_alerts(url: str, t0: float, seen: dict[tuple[str, str], float], stop: asyncio.Event) -> None:
    """Record when each alert was first seen pending and firing (Prometheus /api/v1/alerts)."""
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        while not stop.is_set():  # until the drill ends
            try:
                for alert in (await client.get("/api/v1/alerts")).json()["data"]["alerts"]:
                    key = (alert["labels"]["alertname"], alert["state"])
                    seen.setdefault(key, time.monotonic() - t0)
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            await asyncio.sleep(1.0)


def start_prometheus(binary: str, target: str, workdir: Path, port: int, log: IO[bytes]) -> subprocess.Popen:
    config = workdir / "prometheus.yml"
    config.write_text(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {REPO / "deploy" / "prometheus" / "rules"}/*.yml
scrape_configs:
  - job_name: wallet-gateway
    static_configs:
      - targets: ["{target}"]
""")
    return subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)


def shard_processes(supervisor_pid: int) -> list[psutil.Process]:
    """The supervisor's shard children, by shard id."""
    children = [p for p in psutil.Process(supervisor_pid).children() if "_shard" in p.cmdline()]
    return sorted(children, key=lambda p: p.cmdline())


async def kill_shard(supervisor_pid: int) -> str:
    shards = shard_processes(supervisor_pid)
    victim = shards[-1]
    described = " ".join(victim.cmdline()[-2:])  # before the kill: a zombie has no cmdline
    victim.send_signal(signal.SIGKILL)
    return f"kill -9 shard process pid {victim.pid} ({described})"


async def cut_database(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        cut = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await conn.close()
    return f"pg_terminate_backend of {cut} connections"


async def block_redis(redis_url: str, seconds: float) -> str:
    client = aioredis.from_url(redis_url)
    try:
        await client.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")
    finally:
        await client.aclose()
    return f"Redis CLIENT PAUSE {seconds:.0f} s (all clients)"


@dataclass
class Run:
    """What the drill's async part measured."""

    faults: list[tuple[str, float, str]] = field(default_factory=list)
    alerts: dict[tuple[str, str], float] = field(default_factory=dict)
    load_exit: int = -1
    end_s: float = 0.0
    balance: int | None = None


async def run_drill(args: argparse.Namespace, out: Path, host: str, supervisor: int, database_url: str,
                    prometheus_url: str, load_log: IO[bytes], probe: Probe) -> Run:
    """The load, the probe and the faults in order; the alerts meanwhile."""
    run = Run()
    async with httpx.AsyncClient(base_url=host, headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        await probe.setup(client)
        load = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "run.py"), "--host", host, "--seconds", str(args.seconds),
            "--processes", str(args.processes), "--out", str(out / "load"), "--database-url", database_url,
            cwd=REPO, stdout=load_log, stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(probe.run(client, t0))]
        if prometheus_url:
            tasks.append(asyncio.create_task(poll_alerts(prometheus_url, t0, run.alerts, stop)))
        plan = [("shard killed", lambda: kill_shard(supervisor)),
                ("database connections cut", lambda: cut_database(database_url)),
                ("Redis blocked", lambda: block_redis(args.redis_url, args.redis_block_s))]
        for i, (name, inject) in enumerate(plan):
            at = args.first_fault_s + i * args.fault_gap_s
            await asyncio.sleep(max(0.0, at - (time.monotonic() - t0)))
            run.faults.append((name, time.monotonic() - t0, await inject()))
            print(f"[{run.faults[-1][1]:6.1f} s] {name}: {run.faults[-1][2]}", flush=True)
        run.load_exit = await load.wait()
        probe.stop()
        stop.set()
        await asyncio.gather(*tasks)
        run.end_s = time.monotonic() - t0
        run.balance = 0
        for player in probe.players:
            r = await client.get(f"/v1/players/{player}/balance")
            if r.status_code != 200:
                run.balance = None
                break
            run.balance += r.json()["balances"][0]["cash_minor"]
    return run


def report(run: Run, probe: Probe, out: Path, prometheus_url: str) -> tuple[str, bool]:
    """The drill's page (Markdown) and whether every money check held."""
    summary = out / "load" / "summary.md"
    ledger_ok = summary.exists() and "## Ledger check\n\npassed" in summary.read_text()
    lines = ["# Chaos drill", "", "| fault | at s | what | failed probe calls | first failure after s "
             "| callers saw it fail for s | slowest probe call s |", "|---|---|---|---|---|---|---|"]
    for i, (name, at, what) in enumerate(run.faults):
        until = run.faults[i + 1][1] if i + 1 < len(run.faults) else run.end_s
        o = outage([(t, ok) for t, ok, _ in probe.timeline], at, until)
        slowest = max((d for t, _, d in probe.timeline if at <= t < until), default=0.0)
        first = "-" if o.first_failure_s is None else f"{o.first_failure_s:.2f}"
        lines.append(f"| {name} | {at:.1f} | {what} | {o.failed_calls} of {o.calls} | {first} | {o.outage_s:.2f} "
                     f"| {slowest:.2f} |")
    lines += ["", "## Alerts (Prometheus, rules of deploy/prometheus/rules/, evaluated every second)", ""]
    if not prometheus_url:
        lines.append("Not watched (no Prometheus binary).")
    elif run.alerts:
        lines += ["| alert | state | first seen at s |", "|---|---|---|"]
        lines += [f"| {name} | {state} | {t:.0f} |" for (name, state), t in sorted(run.alerts.items(), key=lambda kv: kv[1])]
    else:
        lines.append("None pending or firing.")
    money_failures = _money_check_failures(out / "load" / "locust_failures.csv")
    balance = run.balance
    exact = balance == probe.credited_minor if probe.unknown == 0 else (
        balance is not None and probe.credited_minor <= balance <= probe.credited_minor + probe.unknown)
    lines += ["", "## Checks", "",
              f"- load test: exit {run.load_exit} ({summary}); its balance checks: "
              f"{'all exact' if not money_failures else f'{money_failures} WRONG'} (retryable answers during a "
              "fault are expected failures there, a wrong balance never is)",
              f"- ledger (`gateway verify-ledger`): {'passed' if ledger_ok else 'FAILED'}",
              f"- probe balance {balance} minor for {probe.credited_minor} deposits answered 200"
              f" ({probe.unknown} unanswered after 3 tries): {'exact' if exact else 'WRONG'}"]
    return "\n".join(lines) + "\n", money_failures == 0 and ledger_ok and exact


def _money_check_failures(failures_csv: Path) -> int:
    """Locust failures that are a wrong balance ("balance X, expected Y", "cash X, expected
    Y"), not a retryable answer; -1 if the load test left no failures file."""
    if not failures_csv.exists():
        return -1
    with failures_csv.open(newline="") as f:
        return sum(int(row["Occurrences"]) for row in csv.DictReader(f) if "expected" in row["Error"])


async def create_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


def wait_ready(host: str, log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{host}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"gateway not ready; see {log}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out or REPO / "var" / "chaos" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    out.mkdir(parents=True, exist_ok=True)
    database_url, supervisor, host = args.database_url, args.gateway_pid, args.host
    with contextlib.ExitStack() as stack:
        procs: list[subprocess.Popen] = []
        stack.callback(stop_all, procs)
        if args.start_gateway:
            db = f"chaos_{uuid.uuid4().hex[:8]}"
            asyncio.run(create_database(args.admin_database_url, db))
            database_url = args.admin_database_url.rsplit("/", 1)[0] + f"/{db}"
            port = free_port()
            host = f"http://127.0.0.1:{port}"
            env = {**os.environ, "GATEWAY_DATABASE_URL": database_url, "GATEWAY_REDIS_URL": args.redis_url,
                   "GATEWAY_SERVER__PORT": str(port), "GATEWAY_MIGRATE_ON_START": "1",
                   "GATEWAY_CLUSTER__SHARDS": "2", "GATEWAY_CLUSTER__EDGES": "1", "GATEWAY_DATA_DIR": str(out / "var")}
            log = stack.enter_context((out / "gateway.log").open("wb"))
            procs.append(subprocess.Popen([str(VENV_BIN / "gateway"), "serve"], cwd=REPO, env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
            supervisor = procs[-1].pid
            wait_ready(host, out / "gateway.log")
        if not (host and supervisor and database_url):
            raise SystemExit("give --start-gateway, or --host, --gateway-pid and --database-url")
        prometheus_url = ""
        if args.prometheus and Path(args.prometheus).exists():
            prom_port = free_port()
            prom_log = stack.enter_context((out / "prometheus.log").open("wb"))
            procs.append(start_prometheus(args.prometheus, host.split("//", 1)[1], out, prom_port, prom_log))
            prometheus_url = f"http://127.0.0.1:{prom_port}"
        probe = Probe(host, args.probe_interval_ms / 1000)
        load_log = stack.enter_context((out / "load.log").open("wb"))
        run = asyncio.run(run_drill(args, out, host, supervisor, database_url, prometheus_url, load_log, probe))
        page, ok = report(run, probe, out, prometheus_url)
        (out / "chaos.md").write_text(page)
        print(page)
        return 0 if ok else 1


def stop_all(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every process the drill started (the gateway's whole group), newest first."""
    for proc in reversed(procs):
        if proc.poll() is not None:
            continue
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(proc.pid) == proc.pid:  # the gateway: its own session, children included
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
