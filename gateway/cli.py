"""``gateway`` command: serve, migrate, verify-ledger, audit-export.

Configuration comes from ``config/default.toml``, ``--config FILE`` / ``GATEWAY_CONFIG`` and
``GATEWAY_*`` environment variables (see ``gateway.config``). With no database or Redis URL
the embedded servers under ``data_dir`` are used, so every command works on a fresh machine.
"""

from __future__ import annotations

import asyncio
import gc
import sys

import click
import orjson

from gateway.config import load_settings
from gateway.logs import configure_logging


def _settings(config: str | None, **overrides):
    settings = load_settings(config)
    for section_key, value in overrides.items():
        if value is not None:
            section, key = section_key.split("__")
            setattr(getattr(settings, section), key, value)
    settings.check()
    configure_logging(settings.log_level)
    return settings


@click.group()
def main() -> None:
    """Wallet and bet gateway for regulated iGaming operators."""


@main.command()
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="Extra TOML config file.")
@click.option("--host", default=None, help="Bind address (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from config: 8080).")
def serve(config: str | None, host: str | None, port: int | None) -> None:
    """Serve the gateway (one process: edge + shard) on uvloop."""
    import uvicorn

    from gateway.app import create_app

    settings = _settings(config, server__host=host, server__port=port)
    # The database thread (gateway/ledger/io_thread.py) needs the GIL briefly per batch; the
    # default 5 ms switch interval would make each of its steps wait behind HTTP work.
    sys.setswitchinterval(0.0005)
    server = settings.server
    gc.set_threshold(server.gc_gen0_threshold, server.gc_gen1_threshold, server.gc_gen2_threshold)
    uvicorn.run(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=15,
        limit_concurrency=settings.shard.inbox_depth_max,
        backlog=4096,
        proxy_headers=False,  # nothing to trust by default; its middleware costs ~6% CPU per request
        server_header=False,
        date_header=False,
    )


async def _with_conn(settings, fn):
    import asyncpg

    from gateway.embedded import EmbeddedServices

    embedded = EmbeddedServices(settings)
    await embedded.astart()
    try:
        conn = await asyncpg.connect(embedded.database_url)
        try:
            return await fn(conn)
        finally:
            await conn.close()
    finally:
        await embedded.astop()


@main.command("migrate")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
def migrate_cmd(config: str | None) -> None:
    """Apply pending SQL migrations (lock and statement timeouts from config)."""
    from gateway.ledger.migrate import migrate

    settings = _settings(config)

    async def run(conn):
        return await migrate(conn, lock_timeout_ms=settings.database.lock_timeout_ms,
                             statement_timeout_ms=settings.database.statement_timeout_ms)

    applied = asyncio.run(_with_conn(settings, run))
    click.echo(orjson.dumps({"applied": applied}).decode())


@main.command("verify-ledger")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
def verify_ledger_cmd(config: str | None) -> None:
    """Check the ledger invariants and audit chains; exit 1 if any fails."""
    from gateway.ledger.verify import verify_ledger

    settings = _settings(config)
    report = asyncio.run(_with_conn(settings, verify_ledger))
    click.echo(orjson.dumps(report, default=str, option=orjson.OPT_INDENT_2).decode())
    sys.exit(0 if report["ok"] else 1)


@main.command("prune-keys")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
def prune_keys_cmd(config: str | None) -> None:
    """Delete idempotency records older than money.idempotency_retention_days (open bets kept).

    Run it daily (cron, a Kubernetes CronJob). A retry older than the retention is then
    treated as new, which is what the retention promises providers.
    """
    from gateway.ledger.retention import prune_idempotency_keys

    settings = _settings(config)
    days = settings.money.idempotency_retention_days

    async def run(conn):
        return await prune_idempotency_keys(conn, days)

    deleted = asyncio.run(_with_conn(settings, run))
    click.echo(orjson.dumps({"deleted": deleted, "retention_days": days}).decode())


@main.command("audit-export")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
@click.option("--player", default=None, help="Only this player's records.")
@click.option("--since", default=None, help="ISO timestamp, inclusive.")
@click.option("--until", default=None, help="ISO timestamp, exclusive.")
@click.option("--limit", type=int, default=100_000, show_default=True)
def audit_export(config, player, since, until, limit) -> None:
    """Export audit records as JSON lines (with their chain hashes) for a regulator."""
    from datetime import datetime

    settings = _settings(config)

    async def run(conn):
        rows = await conn.fetch(
            """SELECT shard_id, seq, record, encode(prev_hash, 'hex') AS prev_hash, encode(hash, 'hex') AS hash
               FROM audit_log
               WHERE ($1::text IS NULL OR player_id = $1)
                 AND ($2::timestamptz IS NULL OR recorded_at >= $2)
                 AND ($3::timestamptz IS NULL OR recorded_at < $3)
               ORDER BY shard_id, seq LIMIT $4""",
            player,
            datetime.fromisoformat(since) if since else None,
            datetime.fromisoformat(until) if until else None,
            limit,
        )
        for r in rows:
            sys.stdout.write(orjson.dumps({
                "shard_id": r["shard_id"], "seq": r["seq"], "prev_hash": r["prev_hash"], "hash": r["hash"],
                "record": orjson.loads(r["record"]),
            }).decode() + "\n")

    asyncio.run(_with_conn(settings, run))


if __name__ == "__main__":
    main()
