"""Test fixtures: real PostgreSQL and Redis, and the gateway running as a real process.

Databases: ``GATEWAY_TEST_DATABASE_URL`` (an admin URL of a PostgreSQL server, e.g. the CI
service) and ``GATEWAY_TEST_REDIS_URL``; when unset, an embedded PostgreSQL and Redis are
started under a temporary directory (``gateway.embedded``), so the suite runs on a fresh
machine. Every gateway process gets a database of its own, created here and dropped after.

Fixtures:
- ``gateway``: a gateway process shared by the session (fresh DB); after every test that
  uses it, the ledger invariants are checked (entries sum to zero, balances equal entries,
  audit chain verifies).
- ``client``: an httpx.AsyncClient on it with the sandbox partner's API key.
- ``spawn_gateway``: start more gateway processes (own DB each) for fault tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from gateway.config import load_settings
from gateway.ledger.verify import verify_ledger

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "demo-key-change-me"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
#: Every test gateway also has a second partner, "rival", with two integrations of its own.
TWO_PARTNERS_CONFIG = ROOT / "tests" / "config" / "two_partners.toml"
RIVAL_API_KEY = "rival-key-change-me"
RIVAL_AUTH = {"Authorization": f"Bearer {RIVAL_API_KEY}"}


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database name (keeps host, socket query, user)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Services:
    """Admin URLs of the PostgreSQL and Redis the tests use."""

    def __init__(self, admin_database_url: str, redis_url: str) -> None:
        self.admin_database_url = admin_database_url
        self.redis_url = redis_url

    async def create_database(self) -> str:
        name = f"gw_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(self.admin_database_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return with_database(self.admin_database_url, name)

    async def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        conn = await asyncpg.connect(self.admin_database_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def services(tmp_path_factory) -> Services:
    db = os.environ.get("GATEWAY_TEST_DATABASE_URL")
    rd = os.environ.get("GATEWAY_TEST_REDIS_URL")
    if db and rd:
        yield Services(db, rd)
        return
    from gateway.embedded import EmbeddedServices

    data_dir = tmp_path_factory.mktemp("embedded")
    env = {"GATEWAY_DATA_DIR": str(data_dir)}
    if db:
        env["GATEWAY_DATABASE_URL"] = db
    if rd:
        env["GATEWAY_REDIS_URL"] = rd
    settings = load_settings(environ=env)
    embedded = EmbeddedServices(settings).start()
    try:
        yield Services(db or embedded.admin_database_url, rd or embedded.redis_url)
    finally:
        embedded.stop()


class GatewayProcess:
    """A ``gateway serve`` subprocess on its own port and database."""

    def __init__(self, database_url: str, redis_url: str, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.log_path = log_path
        self.extra_env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60.0) -> GatewayProcess:
        env = dict(os.environ)
        env.update({
            "GATEWAY_DATABASE_URL": self.database_url,
            "GATEWAY_REDIS_URL": self.redis_url,
            "GATEWAY_MIGRATE_ON_START": "1",
            "GATEWAY_SERVER__PORT": str(self.port),
            "GATEWAY_DATA_DIR": str(self.log_path.parent / "var"),
            "GATEWAY_CONFIG": str(TWO_PARTNERS_CONFIG),
            # One process unless a test asks for the cluster (fault tests kill -9 this process).
            "GATEWAY_CLUSTER__SINGLE_PROCESS": "true",
        })
        env.update(self.extra_env)
        log = open(self.log_path, "ab")
        # Its own session: kill_tree() ends a cluster's supervisor and children together.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log,
            start_new_session=True,
        )
        self.wait_ready(timeout_s)
        return self

    def children(self, role: str) -> list:
        """The cluster's child processes of ``role`` ("_shard" or "_edge"), as psutil.Process,
        in the order of their ``--shard-id`` (shards)."""
        import psutil

        assert self.proc is not None
        found = [p for p in psutil.Process(self.proc.pid).children() if role in p.cmdline()]
        return sorted(found, key=lambda p: p.cmdline())

    def kill_tree(self) -> None:
        """SIGKILL the gateway and everything it started (its process group)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def wait_ready(self, timeout_s: float) -> float:
        """Poll /readyz; returns seconds waited. Raises with the log tail on failure."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.proc is not None and self.proc.poll() is not None:
                break
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"gateway did not become ready:\n{tail}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def client(self, **kwargs) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=AUTH, timeout=kwargs.pop("timeout", 10.0), **kwargs)


async def check_ledger(database_url: str) -> dict:
    conn = await asyncpg.connect(database_url)
    try:
        return await verify_ledger(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def gateway_process(services: Services, tmp_path_factory):
    db_url = await services.create_database()
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    process = GatewayProcess(db_url, services.redis_url, log_path).start()
    try:
        yield process
    finally:
        process.stop()
        await services.drop_database(db_url)


@pytest.fixture
async def gateway(gateway_process: GatewayProcess):
    """The shared gateway; the ledger invariants are checked after the test."""
    yield gateway_process
    report = await check_ledger(gateway_process.database_url)
    assert report["ok"], report


@pytest.fixture
async def client(gateway: GatewayProcess):
    async with gateway.client() as c:
        yield c


@pytest.fixture
async def spawn_gateway(services: Services, tmp_path):
    """Factory: ``await spawn_gateway(env={...})`` -> a started GatewayProcess with its own DB."""
    started: list[GatewayProcess] = []
    databases: list[str] = []

    async def spawn(env: dict[str, str] | None = None, database_url: str | None = None) -> GatewayProcess:
        if database_url is None:
            database_url = await services.create_database()
            databases.append(database_url)
        process = GatewayProcess(database_url, services.redis_url, tmp_path / f"gateway-{len(started)}.log", env)
        await asyncio.to_thread(process.start)
        started.append(process)
        return process

    yield spawn
    for process in started:
        process.kill_tree()
    for url in databases:
        await services.drop_database(url)


def new_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


async def new_player(client: httpx.AsyncClient, currencies=("EUR",), deposit_minor: int = 0, country: str = "MT") -> str:
    """Create a player (and fund it); returns the player id."""
    player_id = new_id("p")
    r = await client.post("/v1/players", json={"player_id": player_id, "currencies": list(currencies), "country": country})
    assert r.status_code == 201, r.text
    if deposit_minor:
        r = await client.post("/v1/wallet/deposit", json={
            "transaction_id": new_id("dep"), "player_id": player_id, "currency": currencies[0],
            "amount_minor": deposit_minor,
        })
        assert r.status_code == 200, r.text
    return player_id
