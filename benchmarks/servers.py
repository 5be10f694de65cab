"""Start, probe and stop the servers under test (only the ones this command started)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from benchmarks.httpload import HttpConn, Target, request

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


class ManagedServer:
    """A server subprocess in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{self.name}] starting: {shlex.join(self.argv)} (log: {self.log_path})",
              flush=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                self.argv, cwd=REPO, env={**os.environ, **self.env}, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM to this server's own process group, SIGKILL after ``timeout_s``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        print(f"[{self.name}] stopped (exit {self.proc.returncode})", flush=True)
        self.proc = None

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


async def wait_ready(target: Target, timeout_s: float, server: ManagedServer | None = None) -> None:
    """Until the server answers any HTTP status to an authenticated balance read."""
    deadline = time.monotonic() + timeout_s
    loop = asyncio.get_running_loop()
    last = "no answer"
    while time.monotonic() < deadline:
        if server is not None and not server.running():
            raise RuntimeError(f"{server.name} exited during startup:\n{server.tail()}")
        try:
            _, conn = await loop.create_connection(HttpConn, target.host, target.port)
            status, body = await request(conn, target.get("/v1/players/__probe__/balance"), 2.0)
            conn.close()
            if status:
                return
            last = body.decode(errors="replace")
        except OSError as exc:
            last = str(exc)
        await asyncio.sleep(0.25)
    tail = f"\n{server.tail()}" if server else ""
    raise RuntimeError(f"no answer from {target.host}:{target.port} in {timeout_s}s: {last}{tail}")


def with_database(dsn: str, db: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{db}"))


async def ensure_database(admin_dsn: str, db: str) -> None:
    con = await asyncpg.connect(admin_dsn)
    try:
        if not await con.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", db):
            await con.execute(f'CREATE DATABASE "{db}"')
            print(f"created database {db}", flush=True)
    finally:
        await con.close()


def baseline_server(port: int, dsn: str, admin_dsn: str, pool_size: int, api_key: str,
                    reset: bool) -> ManagedServer:
    argv = [str(VENV_BIN / "python"), "-m", "uvicorn", "benchmarks.baseline.app:app",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--loop", "uvloop", "--http", "httptools", "--no-access-log",
            "--log-level", "warning"]
    env = {"BASELINE_DSN": dsn, "BASELINE_ADMIN_DSN": admin_dsn,
           "BASELINE_POOL_SIZE": str(pool_size), "BASELINE_API_KEY": api_key,
           "BASELINE_RESET": "1" if reset else "0"}
    return ManagedServer("baseline", argv, env, REPO / "benchmarks/results/baseline.log")


def gateway_server(cmd: str, port: int, database_url: str, redis_url: str,
                   extra_env: dict[str, str] | None = None, name: str = "gateway") -> ManagedServer:
    """``gateway serve`` (or ``--gateway-cmd``) with its database, Redis and port from env
    (``extra_env`` added last; ``name`` also names its log file)."""
    argv = shlex.split(cmd) if cmd else default_gateway_argv()
    env = {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_REDIS_URL": redis_url,
           "GATEWAY_MIGRATE_ON_START": "1",
           "GATEWAY_SERVER__PORT": str(port), "GATEWAY_SERVER__HOST": "127.0.0.1",
           # The limiter stays on (its cost is part of every request) with limits far above
           # what one machine can offer, so no benchmark request is refused by it.
           "GATEWAY_RATE_LIMITS__PARTNER_DEFAULT__REQUESTS_PER_S": "1000000",
           "GATEWAY_RATE_LIMITS__PARTNER_DEFAULT__BURST": "1000000",
           "GATEWAY_RATE_LIMITS__PROVIDER_DEFAULT__REQUESTS_PER_S": "1000000",
           "GATEWAY_RATE_LIMITS__PROVIDER_DEFAULT__BURST": "1000000"}
    env.update(extra_env or {})
    return ManagedServer(name, argv, env, REPO / f"benchmarks/results/{name}.log")


def default_gateway_argv() -> list[str]:
    script = VENV_BIN / "gateway"
    if script.exists():
        return [str(script), "serve"]
    return [str(VENV_BIN / "python"), "-m", "gateway.cli", "serve"]


def run_command(cmd: str, env: dict[str, str], timeout_s: float) -> None:
    """A one-shot setup command (e.g. migrations) that must succeed."""
    print(f"running: {cmd}", flush=True)
    subprocess.run(shlex.split(cmd), cwd=REPO, env={**os.environ, **env}, check=True,
                   timeout=timeout_s)


def listening_pid(port: int) -> int | None:
    """The pid owning the TCP socket listening on ``port`` (best effort, same user only)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(cols[9])
        except (OSError, StopIteration):
            continue
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    found: list[int] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{name}/fd"):
                if os.readlink(f"/proc/{name}/fd/{fd}") in wanted:
                    found.append(int(name))
                    break
        except OSError:
            continue
    return min(found) if found else None
