"""Versioned SQL migrations (``gateway/ledger/migrations/NNNN_name.sql``).

Each file runs once, in its own transaction, under an advisory lock (so two gateways starting
together do not race) and with ``lock_timeout`` / ``statement_timeout`` set, so a migration
waiting on a busy table fails fast instead of stalling traffic (docs/DESIGN.md section 4). A
changed file that was already applied is refused (checksum mismatch).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_ADVISORY_LOCK_ID = 0x6761_7465  # "gate"


def available() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration file, in order."""
    out = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        version = int(path.name.split("_", 1)[0])
        out.append((version, path.stem, path.read_text()))
    versions = [v for v, _, _ in out]
    assert versions == sorted(set(versions)), "migration versions must be unique"
    return out


async def migrate(conn: asyncpg.Connection, *, lock_timeout_ms: int, statement_timeout_ms: int) -> list[str]:
    """Apply pending migrations; returns the names applied. Raises RuntimeError on a checksum mismatch."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY, name text NOT NULL,
                   checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")}
        for version, name, sql in available():
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    raise RuntimeError(f"migration {name} changed after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
                await conn.execute(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    version, name, checksum,
                )
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_ID)
    return applied_now
