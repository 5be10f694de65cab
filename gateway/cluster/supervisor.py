"""``gateway serve``: one supervisor, E edge processes and N shard processes.

Start: embedded PostgreSQL and Redis when no URLs are configured (sandbox), the migrations
(sandbox, or ``GATEWAY_MIGRATE_ON_START=1``), the shard map laid out for N shards
(gateway/ledger/shard_map.py), the public listening socket bound here, then the shard
processes (each ready when it answers a ping on its socket), then the edge processes, which
inherit the listening socket.

While serving: every ``cluster.layout_poll_interval_ms`` the supervisor reads the shard
count an operator asked for (``gateway shards resize N``, shard_map_state.shards_wanted)
and starts the missing shard processes; a shard process at or above that count is stopped
once the map gives it no bucket (the resize moved them away first).

A child that exits unexpectedly is started again after a pause that doubles
from 0.5 s up to ``cluster.restart_backoff_ms_max`` (reset once it has run for a minute).
Restarts are not bounded in number on purpose: a supervisor that gives up leaves the
players of that shard without a wallet; each restart is logged.

Stop (SIGTERM or SIGINT): the edges first (they stop accepting and finish the requests in
flight), then the shards (they commit what they applied), each within
``cluster.drain_timeout_s`` before SIGKILL; then the embedded services; exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

import asyncpg
from prometheus_client import multiprocess

from gateway.cluster.channel import ShardClient
from gateway.cluster.processes import shard_socket_path
from gateway.config import Settings
from gateway.config_types import resolved
from gateway.embedded import EmbeddedServices
from gateway.ledger import shard_map
from gateway.ledger.migrate import migrate
from gateway.logs import get_logger
from gateway.metrics import MULTIPROCESS_DIR_ENV
from gateway.shards.commands import Overloaded, ShardUnavailable

log = get_logger("gateway.supervisor")

RESTART_PAUSE_S_MIN = 0.5
HEALTHY_AFTER_S = 60.0  # a child that ran this long restarts after the shortest pause again
SHARD_READY_TIMEOUT_S = 60.0


@dataclass
class Child:
    """One child process: its role, its argv and its restart state."""

    name: str
    argv: list[str]
    pass_fds: tuple[int, ...] = ()
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    pause_s: float = RESTART_PAUSE_S_MIN
    restarts: int = 0
    wanted: bool = True
    exited: asyncio.Event = field(default_factory=asyncio.Event)


class Supervisor:
    def __init__(self, settings: Settings, edges: int, shards: int, config_path: str | None = None) -> None:
        assert edges >= 1 and shards >= 1
        self.settings = settings
        self.edge_count = edges
        self.shard_count = shards
        self.config_path = os.path.abspath(config_path) if config_path else None
        self._env: dict[str, str] = {}
        self._shards: list[Child] = []
        self._edges: list[Child] = []
        self._stopping = asyncio.Event()

    async def run(self) -> int:
        settings = self.settings
        embedded = EmbeddedServices(settings)
        await embedded.astart()
        try:
            await self._prepare_database(embedded.database_url)
            self._env = {
                **os.environ,
                "GATEWAY_DATABASE_URL": embedded.database_url,
                "GATEWAY_REDIS_URL": embedded.redis_url,
                "GATEWAY_CLUSTER__SINGLE_PROCESS": "false",
                MULTIPROCESS_DIR_ENV: self._metrics_dir(),
            }
            if self.config_path:
                self._env["GATEWAY_CONFIG"] = self.config_path
            listener = self._listen()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stopping.set)
            self._shards = [self._shard_child(i) for i in range(self.shard_count)]
            self._edges = [Child(f"edge-{i}", [sys.executable, "-m", "gateway", "_edge", "--fd", str(listener.fileno())],
                                 pass_fds=(listener.fileno(),)) for i in range(self.edge_count)]
            watchers = [asyncio.create_task(self._keep(child)) for child in self._shards]
            await self._wait_shards_ready()
            watchers += [asyncio.create_task(self._keep(child)) for child in self._edges]
            watchers.append(asyncio.create_task(self._follow_wanted(embedded.database_url, watchers)))
            log.info("gateway_serving", edges=self.edge_count, shards=self.shard_count,
                     host=settings.server.host, port=settings.server.port)
            await self._stopping.wait()
            log.info("gateway_stopping")
            await self._stop_all(self._edges)
            await self._stop_all(self._shards)
            for watcher in watchers:
                watcher.cancel()
            listener.close()
            return 0
        finally:
            await embedded.astop()

    def _shard_child(self, shard_id: int) -> Child:
        return Child(f"shard-{shard_id}", [sys.executable, "-m", "gateway", "_shard", "--shard-id", str(shard_id)])

    async def _follow_wanted(self, url: str, watchers: list[asyncio.Task[None]]) -> None:
        """Start and stop shard processes to match shards_wanted (see module docstring).
        Runs for the supervisor's life; a turn that cannot reach PostgreSQL is skipped."""
        interval_s = self.settings.cluster.layout_poll_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                conn = await asyncpg.connect(url, timeout=interval_s * 5)
                try:
                    wanted = await shard_map.wanted(conn) or len(self._shards)
                    counts = await shard_map.bucket_counts(conn)
                finally:
                    await conn.close()
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("shards_wanted_unread", error=repr(exc))
                continue
            running = {int(c.name.split("-")[1]): c for c in self._shards if c.wanted}
            for shard_id in range(wanted):
                if shard_id not in running:
                    child = self._shard_child(shard_id)
                    self._shards = [c for c in self._shards if c.name != child.name] + [child]
                    watchers.append(asyncio.create_task(self._keep(child)))
                    log.info("shard_process_added", shard=shard_id, wanted=wanted)
            for shard_id, child in running.items():
                if shard_id >= wanted and counts.get(shard_id, 0) == 0:
                    log.info("shard_process_removed", shard=shard_id, wanted=wanted)
                    await self._stop_all([child])

    async def _prepare_database(self, url: str) -> None:
        settings = self.settings
        conn = await asyncpg.connect(url)
        try:
            if not settings.database.url or os.environ.get("GATEWAY_MIGRATE_ON_START") == "1":
                applied = await migrate(conn, lock_timeout_ms=settings.database.lock_timeout_ms,
                                        statement_timeout_ms=settings.database.statement_timeout_ms)
                if applied:
                    log.info("migrations_applied", migrations=applied)
            revision = await shard_map.ensure_layout(conn, self.shard_count, settings.shard.bucket_count)
            await shard_map.set_wanted(conn, self.shard_count)
            log.info("shard_map_ready", revision=revision, shards=self.shard_count)
        finally:
            await conn.close()

    def _metrics_dir(self) -> str:
        """An empty directory for the children's metric files (gateway/metrics.py)."""
        path = self.settings.socket_dir() / "metrics"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return str(path)

    def _listen(self) -> socket.socket:
        server = self.settings.server
        family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((server.host, server.port))
        sock.listen(4096)
        sock.set_inheritable(True)
        return sock

    async def _start(self, child: Child) -> None:
        child.exited.clear()
        child.process = await asyncio.create_subprocess_exec(*child.argv, env=self._env, pass_fds=child.pass_fds)
        child.started_at = time.monotonic()
        log.info("child_started", child=child.name, pid=child.process.pid, restarts=child.restarts)

    async def _keep(self, child: Child) -> None:
        """Run ``child``, and start it again whenever it exits while wanted."""
        await self._start(child)
        while True:  # the supervisor's life; each turn waits for one exit (see module docstring)
            assert child.process is not None
            code = await child.process.wait()
            child.exited.set()
            multiprocess.mark_process_dead(child.process.pid, self._env[MULTIPROCESS_DIR_ENV])
            if not child.wanted or self._stopping.is_set():
                return
            ran_s = time.monotonic() - child.started_at
            if ran_s >= HEALTHY_AFTER_S:
                child.pause_s = RESTART_PAUSE_S_MIN
            log.error("child_exited", child=child.name, exit_code=code, ran_s=round(ran_s, 1),
                      restart_in_s=child.pause_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), child.pause_s)
            if self._stopping.is_set():
                return
            child.pause_s = min(child.pause_s * 2, self.settings.cluster.restart_backoff_ms_max / 1000)
            child.restarts += 1
            await self._start(child)

    async def _wait_shards_ready(self) -> None:
        deadline = time.monotonic() + SHARD_READY_TIMEOUT_S
        for i in range(self.shard_count):
            client = ShardClient(i, shard_socket_path(self.settings, i), inflight_max=1, timeout_s=2.0,
                                 secret=resolved(self.settings.cluster.channel_secret))
            try:
                while True:  # bounded by SHARD_READY_TIMEOUT_S
                    try:
                        if (await client.ping()).ready:
                            break
                    except (ShardUnavailable, Overloaded):
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"shard {i} did not become ready within {SHARD_READY_TIMEOUT_S:.0f} s")
                    await asyncio.sleep(0.1)
            finally:
                await client.close()

    async def _stop_all(self, children: list[Child]) -> None:
        for child in children:
            child.wanted = False
            if child.process is not None and child.process.returncode is None:
                child.process.send_signal(signal.SIGTERM)
        grace_s = self.settings.cluster.drain_timeout_s + 5
        for child in children:
            if child.process is None or child.process.returncode is not None:
                continue
            try:
                await asyncio.wait_for(child.process.wait(), grace_s)
            except TimeoutError:
                log.error("child_killed", child=child.name, after_s=grace_s)
                child.process.kill()
                await child.process.wait()
