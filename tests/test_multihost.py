"""Edges and shards on distinct addresses over TCP (docs/SCALING.md, "Several hosts").

Standalone processes, as on Kubernetes: ``gateway shard --listen`` on 127.0.0.2 and
127.0.0.3 (distinct loopback addresses stand in for hosts), ``gateway edge`` on 127.0.0.1,
the internal channel over TCP with the channel secret. Asserted: players are served by both
shard hosts; a shard host that stops answering (SIGSTOP) gives its players retryable
answers within the channel timeout while the other host's players are served; it answers
again after SIGCONT. Measured and printed: the time to the retryable answer, the other
players' p99 during the stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import AUTH, ROOT, TWO_PARTNERS_CONFIG, check_ledger, free_port
from tests.faultlib import create_players, deposit_op, send

pytestmark = pytest.mark.fault

SECRET = "multi-host-test-channel-secret-0123456789"
CHANNEL_TIMEOUT_MS = 1_500


class Processes:
    """Standalone gateway processes, each in its own session, killed at the end."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def run(self, *args: str, timeout_s: float = 60) -> None:
        done = subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout_s)
        assert done.returncode == 0, done.stderr[-2000:]

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "gateway", *args], cwd=ROOT, env=self.env,
                                stdout=log, stderr=log, start_new_session=True)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]

    def kill_all(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def test_edges_and_shards_on_distinct_addresses(services, tmp_path):
    database_url = await services.create_database()
    port = free_port()
    env = {**os.environ, "GATEWAY_DATABASE_URL": database_url, "GATEWAY_REDIS_URL": services.redis_url,
           "GATEWAY_CONFIG": str(TWO_PARTNERS_CONFIG), "GATEWAY_DATA_DIR": str(tmp_path / "var"),
           "GATEWAY_CLUSTER__CHANNEL_SECRET": SECRET,
           "GATEWAY_CLUSTER__CHANNEL_TIMEOUT_MS": str(CHANNEL_TIMEOUT_MS),
           "GATEWAY_SHARD__COMMIT_TIMEOUT_MS": "1000", "GATEWAY_SHARD__STORAGE_FAILURE_GRACE_MS": "500"}
    procs = Processes(env, tmp_path)
    try:
        procs.run("migrate")
        procs.run("shards", "init", "--shards", "2")
        shard_ports = [free_port(), free_port()]
        procs.start("shard-0", "shard", "--shard-id", "0", "--listen", f"127.0.0.2:{shard_ports[0]}")
        procs.start("shard-1", "shard", "--shard-id", "1", "--listen", f"127.0.0.3:{shard_ports[1]}")
        await wait_for_leases(database_url, 2)
        procs.start("edge", "edge", "--host", "127.0.0.1", "--port", str(port))
        base = f"http://127.0.0.1:{port}"
        await wait_ready(base, procs)

        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10.0) as c:
            deposits = await create_players(c, 24, deposit_minor=10_000)
            conn = await asyncpg.connect(database_url)
            try:
                owners = {r["player_id"]: r["shard_id"] for r in await conn.fetch(
                    "SELECT DISTINCT player_id, shard_id FROM transactions")}
                addresses = {r["shard_id"]: r["address"] for r in await conn.fetch(
                    "SELECT shard_id, address FROM shard_leases")}
            finally:
                await conn.close()
            assert addresses == {0: f"tcp://127.0.0.2:{shard_ports[0]}", 1: f"tcp://127.0.0.3:{shard_ports[1]}"}
            assert set(owners.values()) == {0, 1}, "both shard hosts serve players"
            stalled = [p for p, s in owners.items() if s == 1]
            healthy = [p for p, s in owners.items() if s == 0]

            os.killpg(procs.procs["shard-1"].pid, signal.SIGSTOP)
            try:
                sent = time.monotonic()
                probe = deposit_op(stalled[0], 1)
                probe_task = asyncio.create_task(send(c, probe, "stalled"))
                latencies: list[float] = []
                while not probe_task.done():
                    op = deposit_op(healthy[len(latencies) % len(healthy)], 1)
                    started = time.monotonic()
                    assert await send(c, op, "healthy") is not None, op.statuses
                    latencies.append(time.monotonic() - started)
                await probe_task
                answered_s = time.monotonic() - sent
            finally:
                os.killpg(procs.procs["shard-1"].pid, signal.SIGCONT)
            assert probe.statuses == [503], probe.statuses
            print(f"\n[shard host stopped] its player answered 503 after {answered_s:.2f} s "
                  f"(channel timeout {CHANNEL_TIMEOUT_MS} ms); the other host's players: "
                  f"{len(latencies)} requests, p99 {p99(latencies) * 1000:.1f} ms")
            assert answered_s < CHANNEL_TIMEOUT_MS / 1000 + 1.0
            # Woken, it answers again; the retry with the same id is applied once.
            for _ in range(50):
                if await send(c, probe, "retry") is not None:
                    break
                await asyncio.sleep(0.1)
            assert probe.acked, probe.statuses
        report = await check_ledger(database_url)
        assert report["ok"], report
        assert len(deposits) == 24
    finally:
        procs.kill_all()
        await services.drop_database(database_url)


async def wait_for_leases(database_url: str, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        conn = await asyncpg.connect(database_url)
        try:
            n = await conn.fetchval("SELECT count(*) FROM shard_leases WHERE address IS NOT NULL")
        finally:
            await conn.close()
        if n == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the shard processes did not take their leases")


async def wait_ready(base: str, procs: Processes, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base, timeout=1.0) as c:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await c.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError("the edge did not become ready:\n" + procs.log("edge") + procs.log("shard-0"))
