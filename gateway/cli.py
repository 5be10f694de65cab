"""``gateway`` command: serve, shard, edge, shards (init, status, move, resize), migrate,
verify-ledger, audit-export, audit (export, verify, trace), prune-keys, reviews, sportsbook
rebuild-exposure, reconcile, reconcile-resolve.

Configuration comes from ``config/default.toml``, ``--config FILE`` / ``GATEWAY_CONFIG`` and
``GATEWAY_*`` environment variables (see ``gateway.config``, docs/CONFIGURATION.md). With no
database or Redis URL (sandbox mode) the embedded servers under ``data_dir`` are used, so
every command works on a fresh machine.

A user's mistake (bad configuration, an unreachable, missing or unmigrated database,
Redis down, a bad date) is one line on stderr and exit code 2 (click's usage errors) or 1,
never a traceback (gateway/preflight.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tomllib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import click
import msgspec
import orjson

from gateway.config import Settings, load_settings
from gateway.logs import configure_logging
from gateway.preflight import Problem

T = TypeVar("T")


def _version() -> str:
    try:
        return version("wallet-gateway")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _settings(config: str | None, **overrides: Any) -> Settings:
    """Settings from the files and environment plus ``overrides`` ("section__key": value);
    a configuration mistake becomes a one-line ClickException."""
    try:
        settings = load_settings(config)
        for section_key, value in overrides.items():
            if value is not None:
                section, key = section_key.split("__")
                setattr(getattr(settings, section), key, value)
        settings.check()
    except (ValueError, msgspec.ValidationError, tomllib.TOMLDecodeError, OSError) as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    configure_logging(settings.log_level)
    return settings


def _run(coro: Awaitable[T]) -> T:
    """Run ``coro``; a start-up Problem becomes a one-line ClickException."""
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except Problem as problem:
        raise click.ClickException(str(problem)) from None


class IsoTime(click.ParamType):
    """An ISO 8601 date or time (``2026-12-01``, ``2026-12-01T10:00:00Z``, with an offset);
    a time without an offset is UTC."""

    name = "ISO-8601-time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time (e.g. 2026-12-01 or 2026-12-01T10:00:00Z)", param, ctx)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@click.group()
@click.version_option(_version(), "--version", prog_name="gateway")
def main() -> None:
    """Wallet and bet gateway for regulated iGaming operators."""


@main.command()
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="Extra TOML config file.")
@click.option("--host", default=None, help="Bind address (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from config: 8080).")
@click.option("--edges", type=click.IntRange(1, 64), default=None,
              help="Edge (HTTP) processes (default: cluster.edges, else from the CPU count).")
@click.option("--shards", type=click.IntRange(1, 64), default=None,
              help="Shard processes (default: cluster.shards, else from the CPU count).")
@click.option("--single-process", is_flag=True, default=None,
              help="Run the edge and one shard in this one process (cluster.single_process).")
def serve(config: str | None, host: str | None, port: int | None, edges: int | None, shards: int | None,
          single_process: bool | None) -> None:
    """Serve the gateway: a supervisor with edge and shard processes, or one process.

    Stop it with Ctrl-C or SIGTERM: the edges finish the requests in flight, the shards
    commit what they applied, then it exits.
    """
    import uvicorn

    from gateway.app import create_app

    settings = _settings(config, server__host=host, server__port=port, cluster__edges=edges,
                         cluster__shards=shards, cluster__single_process=single_process)
    if settings.database.url or settings.redis.url:
        _run(_preflight_serve(settings))
    if not settings.cluster.single_process:
        from gateway.cluster.supervisor import Supervisor

        edge_count, shard_count = settings.process_counts()
        sys.exit(_run(Supervisor(settings, edge_count, shard_count, config_path=config).run()))
    from gateway.cluster.processes import tune_runtime, uvicorn_options

    tune_runtime(settings)
    uvicorn.run(create_app(settings), host=settings.server.host, port=settings.server.port,
                **uvicorn_options(settings))


@main.command("_shard", hidden=True)
@click.option("--shard-id", type=click.IntRange(0, 63), required=True)
def shard_process(shard_id: int) -> None:
    """A shard process (started by ``gateway serve``'s supervisor)."""
    from gateway.cluster.processes import run_shard, tune_runtime

    settings = _settings(None)
    tune_runtime(settings)
    import uvloop

    sys.exit(uvloop.run(run_shard(settings, shard_id)))


@main.command("shard")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="Extra TOML config file.")
@click.option("--shard-id", type=click.IntRange(0, 63), required=True, help="This process's shard id.")
@click.option("--listen", default=None,
              help="Where edges reach it: HOST:PORT (TCP, needs cluster.channel_secret) or a Unix socket path.")
@click.option("--advertise", default=None,
              help="The HOST:PORT written in the shard map for edges (default: --listen), e.g. the pod's DNS name.")
def shard_cmd(config: str | None, shard_id: int, listen: str | None, advertise: str | None) -> None:
    """Run one shard process on its own (another host, a Kubernetes pod); edges find it
    through the shard map. ``gateway serve`` runs its own shard processes instead."""
    from gateway.cluster.processes import run_shard, tune_runtime

    settings = _settings(config)
    if not settings.database.url:
        raise click.UsageError("a standalone shard needs database.url (GATEWAY_DATABASE_URL)")
    listen_address, advertise_address = _channel_address(listen), _channel_address(advertise)
    if listen_address.startswith("tcp://") and not settings.cluster.channel_secret:
        raise click.UsageError("a TCP shard needs cluster.channel_secret (GATEWAY_CLUSTER__CHANNEL_SECRET)")
    _run(_preflight_serve(settings))
    tune_runtime(settings)
    import uvloop

    sys.exit(uvloop.run(run_shard(settings, shard_id, listen=listen_address,
                                  advertise=advertise_address or listen_address, supervised=False)))


def _channel_address(value: str | None) -> str:
    """``HOST:PORT`` -> ``tcp://HOST:PORT``; a path stays a Unix socket path; None -> ""."""
    if not value:
        return ""
    if value.startswith(("/", "./", "tcp://")):
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise click.UsageError(f"{value!r}: give HOST:PORT or a Unix socket path")
    from gateway.cluster.channel import tcp_address

    return tcp_address(host.strip("[]"), int(port))


@main.command("edge")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="Extra TOML config file.")
@click.option("--host", default=None, help="Bind address (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from config: 8080).")
def edge_cmd(config: str | None, host: str | None, port: int | None) -> None:
    """Run one HTTP edge process on its own (a Kubernetes pod); it reaches the shard
    processes named in the shard map. ``gateway serve`` runs its own edges instead."""
    from gateway.cluster.processes import run_edge

    settings = _settings(config, server__host=host, server__port=port)
    if not settings.database.url:
        raise click.UsageError("a standalone edge needs database.url (GATEWAY_DATABASE_URL)")
    _run(_preflight_serve(settings))
    sys.exit(run_edge(settings, None))


@main.group("shards")
def shards_group() -> None:
    """The shard map: lay it out, look at it, move buckets, change the shard count
    (docs/SCALING.md)."""


@shards_group.command("init")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
@click.option("--shards", "shard_count", type=click.IntRange(1, 64), required=True)
@click.option("--force", is_flag=True, help="Lay out again even if a map exists (every shard stopped!).")
def shards_init_cmd(config: str | None, shard_count: int, force: bool) -> None:
    """Lay out the shard map for a fresh database (kept if it exists)."""
    from gateway.cluster import admin

    settings = _settings(config)
    click.echo(_run(_with_conn(settings, lambda conn: admin.init(
        conn, shard_count, settings.shard.bucket_count, force=force))))


@shards_group.command("status")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
@click.option("--interval-s", type=click.FloatRange(0.1, 60), default=1.0, show_default=True,
              help="The sampling window for ops/s and flush latency.")
def shards_status_cmd(config: str | None, as_json: bool, interval_s: float) -> None:
    """Buckets, owner, epoch, players resident, inbox depth, ops/s and flush latency per shard."""
    from gateway.cluster import admin

    settings = _settings(config)
    report = _run(_with_conn(settings, lambda conn: admin.status(settings, conn, interval_s)))
    if as_json:
        click.echo(orjson.dumps(report).decode())
        return
    click.echo(f"map revision {report['revision']}, {report['bucket_count']} buckets, "
               f"shards wanted {report['shards_wanted']}")
    header = ("shard", "buckets", "epoch", "ready", "players", "inbox", "ops/s", "flush ms", "address")
    click.echo("  ".join(f"{h:>8}" for h in header[:-1]) + "  " + header[-1])
    for row in report["shards"]:
        cells = [row["shard_id"], row["buckets"], row["epoch"], row.get("ready", "down"),
                 row.get("players_resident", "-"), row.get("inbox_depth", "-"), row.get("ops_per_s", "-"),
                 row.get("flush_ms_avg") if row.get("flush_ms_avg") is not None else "-"]
        click.echo("  ".join(f"{c!s:>8}" for c in cells) + "  " + str(row["address"]))


def _move_progress(label: str) -> Callable[[Any, int, int], None]:
    def show(report: Any, done: int, total: int) -> None:
        how = "fenced" if report.fenced else "released"
        click.echo(f"{label}: group {done}/{total}: {len(report.move.buckets)} buckets "
                   f"{report.move.from_shard} -> {report.move.to_shard} ({how}) in {report.total_ms:.0f} ms, "
                   f"map revision {report.revision}" + ("" if report.acquired else
                                                        "; the new owner takes them at its next start"), err=True)
    return show


@shards_group.command("move")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
@click.option("--buckets", required=True, help="Buckets to move, e.g. 0-255,300.")
@click.option("--to", "to_shard", type=click.IntRange(0, 63), required=True, help="The shard that takes them.")
@click.option("--group-size", type=click.IntRange(1, 65536), default=None,
              help="Buckets per hand-over (default: cluster.move_group_size).")
def shards_move_cmd(config: str | None, buckets: str, to_shard: int, group_size: int | None) -> None:
    """Move buckets to a running shard while serving."""
    from gateway.cluster import admin, resharding

    settings = _settings(config)
    try:
        wanted = resharding.parse_buckets(buckets, settings.shard.bucket_count)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--buckets") from None
    size = group_size or settings.cluster.move_group_size

    async def run(conn: Any) -> list[Any]:
        return await admin.move(settings, conn, wanted, to_shard, size, _move_progress("move"))

    reports = _run_admin(settings, run)
    click.echo(f"moved {sum(len(r.move.buckets) for r in reports)} buckets to shard {to_shard} "
               f"in {len(reports)} groups")


@shards_group.command("resize")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
@click.argument("shard_count", type=click.IntRange(1, 64))
@click.option("--group-size", type=click.IntRange(1, 65536), default=None,
              help="Buckets per hand-over (default: cluster.move_group_size).")
@click.option("--wait-s", type=click.FloatRange(1, 3600), default=120, show_default=True,
              help="How long to wait for new shard processes to start.")
def shards_resize_cmd(config: str | None, shard_count: int, group_size: int | None, wait_s: float) -> None:
    """Change the number of shard processes while serving (buckets move a group at a time)."""
    from gateway.cluster import admin

    settings = _settings(config)
    size = group_size or settings.cluster.move_group_size

    def waiting(shard_id: int) -> None:
        click.echo(f"resize: waiting for shard {shard_id} to start "
                   "(gateway serve starts it; on Kubernetes scale the StatefulSet)", err=True)

    async def run(conn: Any) -> list[Any]:
        return await admin.resize(settings, conn, shard_count, size, wait_s, _move_progress("resize"), waiting)

    reports = _run_admin(settings, run)
    click.echo(f"resized to {shard_count} shards: {sum(len(r.move.buckets) for r in reports)} buckets moved "
               f"in {len(reports)} groups")


def _run_admin(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    """``fn(conn)`` with a mover's refusals (RuntimeError, ValueError) as one-line errors."""
    try:
        return _run(_with_conn(settings, fn))
    except (RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command("_edge", hidden=True)
@click.option("--fd", type=int, required=True, help="The inherited listening socket.")
def edge_process(fd: int) -> None:
    """An edge process (started by ``gateway serve``'s supervisor)."""
    from gateway.cluster.processes import run_edge

    sys.exit(run_edge(_settings(None), fd))


async def _preflight_serve(settings: Settings) -> None:
    """Before serving against external services: PostgreSQL reachable and migrated (unless
    ``GATEWAY_MIGRATE_ON_START=1``), else a Problem. Redis is not required to serve (money
    operations that do not need it keep working, docs/DESIGN.md section 7): an unreachable
    Redis is one warning line on stderr, and the gateway starts."""
    from gateway.preflight import check_migrated, check_redis, connect

    if settings.database.url:
        conn = await connect(settings.database.url)
        try:
            if os.environ.get("GATEWAY_MIGRATE_ON_START") != "1":
                await check_migrated(conn)
        finally:
            await conn.close()
    if settings.redis.url:
        try:
            await check_redis(settings.redis.url)
        except Problem as problem:
            click.echo(f"Warning: {problem}; game sessions and rate limits are unavailable until it answers",
                       err=True)


async def _with_conn(settings: Settings, fn: Callable[[Any], Awaitable[T]], *, migrated: bool = True) -> T:
    """Run ``fn(conn)`` on the configured (or embedded) database; ``migrated``: refuse an
    unmigrated one first (Problem)."""
    from gateway.embedded import EmbeddedServices
    from gateway.preflight import check_migrated, connect

    embedded = EmbeddedServices(settings, redis=False)
    await embedded.astart()
    try:
        conn = await connect(embedded.database_url)
        try:
            if migrated:
                await check_migrated(conn)
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

    applied = _run(_with_conn(settings, run, migrated=False))
    click.echo(orjson.dumps({"applied": applied}).decode())


@main.command("verify-ledger")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
def verify_ledger_cmd(config: str | None) -> None:
    """Check the ledger invariants and audit chains; exit 1 if any fails."""
    from gateway.ledger.verify import verify_ledger

    settings = _settings(config)
    report = _run(_with_conn(settings, verify_ledger))
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

    deleted = _run(_with_conn(settings, run))
    click.echo(orjson.dumps({"deleted": deleted, "retention_days": days}).decode())


#: Audit rows fetched per round trip while exporting (bounded memory for any size).
EXPORT_FETCH_ROWS = 2_000


@main.command("audit-export")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
@click.option("--partner", default=None, help="Only this partner's records.")
@click.option("--player", default=None, help="Only this player's records (with --partner for one partner's player).")
@click.option("--since", type=IsoTime(), default=None, help="From this time, inclusive (ISO 8601; UTC if no offset).")
@click.option("--until", type=IsoTime(), default=None, help="Until this time, exclusive (ISO 8601).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Stop after this many records (default: all). A cut is announced on stderr.")
def audit_export(config: str | None, partner: str | None, player: str | None, since: datetime | None,
                 until: datetime | None, limit: int | None) -> None:
    """Export audit records as JSON lines, streamed, in chain order (shard, seq).

    Each line: ``shard_id``, ``seq``, ``recorded_at`` (ISO 8601, UTC), ``applied_at``
    (ISO 8601 of the record's ``applied_at_us``), ``partner_id``, ``player_id``, ``kind``,
    ``code``, ``prev_hash``, ``hash`` (hex) and ``record``: the exact stored text, so that
    ``sha256(bytes.fromhex(prev_hash) + record.encode()) == bytes.fromhex(hash)`` checks each
    line (docs/ARCHITECTURE.md, "Audit").
    """
    settings = _settings(config)
    if since is not None and until is not None and since >= until:
        raise click.BadParameter("--since must be before --until", param_hint="'--since'")

    async def run(conn: Any) -> tuple[int, bool]:
        written = 0
        cut = False
        query = """SELECT shard_id, seq, recorded_at, partner_id, player_id, kind, code, record,
                          encode(prev_hash, 'hex') AS prev_hash, encode(hash, 'hex') AS hash
                   FROM audit_log
                   WHERE ($1::text IS NULL OR partner_id = $1)
                     AND ($2::text IS NULL OR player_id = $2)
                     AND ($3::timestamptz IS NULL OR recorded_at >= $3)
                     AND ($4::timestamptz IS NULL OR recorded_at < $4)
                   ORDER BY shard_id, seq"""
        out = sys.stdout
        async with conn.transaction(readonly=True):
            async for r in conn.cursor(query, partner, player, since, until, prefetch=EXPORT_FETCH_ROWS):
                if limit is not None and written >= limit:
                    cut = True
                    break
                applied_us = orjson.loads(r["record"]).get("applied_at_us")
                out.write(orjson.dumps({
                    "shard_id": r["shard_id"], "seq": r["seq"],
                    "recorded_at": r["recorded_at"].astimezone(UTC).isoformat(),
                    "applied_at": None if applied_us is None else datetime.fromtimestamp(
                        applied_us // 1_000_000, UTC).replace(microsecond=applied_us % 1_000_000).isoformat(),
                    "partner_id": r["partner_id"], "player_id": r["player_id"], "kind": r["kind"],
                    "code": r["code"], "prev_hash": r["prev_hash"], "hash": r["hash"], "record": r["record"],
                }).decode() + "\n")
                written += 1
        return written, cut

    written, cut = _run(_with_conn(settings, run))
    if cut:
        click.echo(f"audit-export: cut at --limit {limit}: more records match; narrow the range or raise the limit",
                   err=True)
    else:
        click.echo(f"audit-export: {written} records", err=True)


@main.command("reviews")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved items.")
def reviews_cmd(config: str | None, include_resolved: bool) -> None:
    """List operator-review items (wins without a bet the protocol made us accept, debts
    left by reversed wins) as JSON lines, oldest first."""
    settings = _settings(config)

    async def run(conn: Any) -> None:
        async with conn.transaction(readonly=True):
            async for r in conn.cursor(
                """SELECT v.txn_id, v.partner_id, v.player_id, v.scope, v.reason, v.created_at, v.resolved_at,
                          v.resolved_by, v.note, t.transaction_id, t.kind, t.currency, t.amount_minor
                   FROM operator_reviews v LEFT JOIN transactions t USING (txn_id)
                   WHERE $1 OR v.resolved_at IS NULL ORDER BY v.created_at""",
                include_resolved, prefetch=EXPORT_FETCH_ROWS,
            ):
                item = dict(r)
                for field in ("created_at", "resolved_at"):
                    if item[field] is not None:
                        item[field] = item[field].astimezone(UTC).isoformat()
                sys.stdout.write(orjson.dumps(item).decode() + "\n")

    _run(_with_conn(settings, run))


@main.group("sportsbook")
def sportsbook_group() -> None:
    """Sportsbook maintenance (docs/SPORTSBOOK.md)."""


@sportsbook_group.command("rebuild-exposure")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
def rebuild_exposure_cmd(config: str | None) -> None:
    """Rebuild the Redis liability counters and market mirror from PostgreSQL's open bets."""
    settings = _settings(config)

    async def run() -> None:
        from gateway.cluster.backends import open_pool
        from gateway.edge.redis_client import redis_client
        from gateway.embedded import EmbeddedServices
        from gateway.preflight import check_migrated, connect
        from gateway.sportsbook.exposure import ExposureBook, ExposureUnavailable
        from gateway.sportsbook.rebuild import rebuild_exposure
        from gateway.sportsbook.store import SportsbookStore

        embedded = EmbeddedServices(settings)
        await embedded.astart()
        try:
            conn = await connect(embedded.database_url)
            try:
                await check_migrated(conn)
            finally:
                await conn.close()
            pool = await open_pool(settings, embedded.database_url, size_max=2)
            redis = redis_client(embedded.redis_url, max(settings.redis.socket_timeout_ms, 2_000))
            try:
                done = await rebuild_exposure(SportsbookStore(pool), ExposureBook(redis),
                                              lambda n: click.echo(f"rebuild-exposure: {n} open bets restored", err=True))
            except ExposureUnavailable as exc:
                raise click.ClickException(f"Redis is unreachable: {exc}") from None
            finally:
                await redis.aclose()
                await pool.close()
        finally:
            await embedded.astop()
        click.echo(f"rebuild-exposure: {done.keys_deleted} keys cleared, {done.markets} markets mirrored, "
                   f"{done.bets} open bets restored", err=True)

    _run(run())


if __name__ == "__main__":
    main()


# ---- reconciliation (docs/RECONCILIATION.md) ------------------------------------------


@main.command("reconcile")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
@click.option("--psp", type=click.Choice(["adyen", "stripe"]), help="The report's format.")
@click.option("--integration", default=None, help="The PSP integration (default: the only one of that PSP).")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--exceptions", "exceptions_out", type=click.Path(dir_okay=False), default=None,
              help="Write the open exceptions with their evidence to this file (.csv or .json).")
@click.option("--grace-days", type=click.IntRange(0, 60), default=3, show_default=True,
              help="Ledger movements this close to the report's end may settle in a later report (timing).")
@click.option("--chunk-lines", type=click.IntRange(100, 100_000), default=20_000, show_default=True,
              help="Report lines matched per ledger read.")
@click.argument("report", type=click.Path(exists=True, dir_okay=False))
def reconcile_cmd(config: str | None, psp: str | None, integration: str | None, output: str,
                  exceptions_out: str | None, grace_days: int, chunk_lines: int, report: str) -> None:
    """Reconcile a PSP settlement report (Adyen Settlement details, Stripe itemized payout
    reconciliation) against the ledger: every line classified, every exception kept with its
    evidence. Running the same file again changes nothing. Exceptions are marked resolved
    with ``gateway reconcile-resolve``."""
    if psp is None:
        raise click.UsageError("give --psp adyen|stripe")
    from pathlib import Path

    from gateway.reconciliation.lines import ReportError
    from gateway.reconciliation.run import reconcile

    settings = _settings(config)
    name, partner = _psp_integration(settings, psp, integration)
    size = Path(report).stat().st_size

    async def run(conn: Any):
        with click.progressbar(length=size, label=f"reconciling {Path(report).name}", file=sys.stderr) as bar:
            return await reconcile(conn, psp, name, f"{partner}:{name}", Path(report), chunk_lines=chunk_lines,
                                   grace_days=grace_days, progress=bar.update)

    try:
        summary = _run(_with_conn(settings, run))
    except ReportError as exc:
        raise click.ClickException(f"{report}: {exc} (nothing recorded)") from None
    rates = summary.match_rate()
    if output == "json":
        click.echo(orjson.dumps({"report": summary.report, "lines": summary.lines, "recorded": summary.recorded,
                                 "outcomes": summary.outcomes, "match_rate_pct": rates,
                                 "missing_at_psp": summary.missing_at_psp, "pending": summary.pending,
                                 "exceptions_open": summary.exceptions_open, "fees_booked_minor": summary.fees_minor},
                                option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    else:
        click.echo(f"report {summary.report[:12]}: {summary.lines} lines, {summary.recorded} recorded now")
        click.echo(f"{'line kind':<22}{'outcome':<22}{'lines':>10}")
        for kind in sorted(summary.outcomes):
            for outcome, n in sorted(summary.outcomes[kind].items()):
                click.echo(f"{kind:<22}{outcome:<22}{n:>10}")
        click.echo("matched automatically: " + ", ".join(f"{k} {v}%" for k, v in sorted(rates.items())))
        click.echo("fees booked (minor units): " + (", ".join(f"{c} {v}" for c, v in sorted(summary.fees_minor.items()))
                                                    or "none"))
        click.echo(f"ledger movements missing at the PSP: {summary.missing_at_psp}; "
                   f"waiting for a later report: {summary.pending}; open exceptions: {summary.exceptions_open}")
    if exceptions_out:
        _write_exceptions(settings, name, exceptions_out)


def _psp_integration(settings: Settings, psp: str, integration: str | None) -> tuple[str, str]:
    """(integration name, partner) of the PSP integration a report belongs to."""
    names = [n for n, p in settings.payments.psps.items() if p.psp == psp]
    if integration is None:
        if len(names) != 1:
            raise click.UsageError(f"name the integration with --integration (the {psp} ones: {', '.join(names) or 'none'})")
        integration = names[0]
    found = settings.payments.psps.get(integration)
    if found is None or found.psp != psp:
        raise click.UsageError(f"no {psp} integration {integration!r} (the {psp} ones: {', '.join(names) or 'none'})")
    return integration, found.partner_id


def _write_exceptions(settings: Settings, integration: str, path: str) -> None:
    import csv

    async def fetch(conn: Any):
        from gateway.reconciliation.store import ReconStore

        return await ReconStore(conn, integration, "").open_exceptions(1_000_000)

    rows = _run(_with_conn(settings, fetch))
    with open(path, "w", newline="") as handle:
        if path.endswith(".json"):
            handle.write(orjson.dumps([{"id": r["id"], "subject": r["subject"], "outcome": r["outcome"],
                                        "created_at": r["created_at"].isoformat(),
                                        "evidence": orjson.loads(r["evidence"])} for r in rows],
                                      option=orjson.OPT_INDENT_2).decode())
        else:
            writer = csv.writer(handle)
            writer.writerow(["id", "subject", "outcome", "created_at", "evidence"])
            for r in rows:
                writer.writerow([r["id"], r["subject"], r["outcome"], r["created_at"].isoformat(), r["evidence"]])
    click.echo(f"{len(rows)} open exceptions written to {path}", err=True)


@main.command("reconcile-resolve")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
@click.option("--integration", required=True, help="The PSP integration the exception belongs to.")
@click.option("--note", required=True, help="What was found and done (kept with the exception).")
@click.option("--by", "actor", required=True, help="Who resolves it.")
@click.argument("exception_id", type=int)
def reconcile_resolve_cmd(config: str | None, integration: str, note: str, actor: str, exception_id: int) -> None:
    """Mark a reconciliation exception resolved, with a note (audited in its history)."""
    settings = _settings(config)

    async def run(conn: Any) -> bool:
        from gateway import clock
        from gateway.reconciliation.store import ReconStore

        return await ReconStore(conn, integration, "").resolve(exception_id, note, actor, clock.now_us())

    if not _run(_with_conn(settings, run)):
        raise click.ClickException(f"no open exception {exception_id} of {integration}")
    click.echo(f"exception {exception_id} resolved")


# ---- the regulator's audit toolkit (docs/AUDIT.md) ---------------------------------------


@main.group("audit")
def audit_group() -> None:
    """Export, verify and trace the audit record (docs/AUDIT.md)."""


@audit_group.command("export")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
              help="The export file; its manifest is written beside it (<out>.manifest.json).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--partner", default=None, help="Only this partner's records.")
@click.option("--player", default=None, help="Only this player's records.")
@click.option("--provider", default=None, help="Only records of this source (a provider integration, 'api', ...).")
@click.option("--transaction-id", default=None, help="Only records of this transaction id.")
@click.option("--since", type=IsoTime(), default=None, help="From this time, inclusive (ISO 8601; UTC if no offset).")
@click.option("--until", type=IsoTime(), default=None, help="Until this time, exclusive (ISO 8601).")
def audit_export_cmd(config: str | None, out: str, fmt: str, partner: str | None, player: str | None,
                     provider: str | None, transaction_id: str | None, since: datetime | None,
                     until: datetime | None) -> None:
    """Export audit records with a manifest that lets an auditor check them offline:
    ``gateway audit verify FILE``. Streamed, in chain order; one consistent snapshot."""
    from pathlib import Path

    from gateway.ledger.audit_export import Filters, export, manifest_path

    settings = _settings(config)
    if since is not None and until is not None and since >= until:
        raise click.BadParameter("--since must be before --until", param_hint="'--since'")
    filters = Filters(partner, player, provider, transaction_id, since, until)

    done = [0]

    def progress(records: int) -> None:  # the total is unknown until the end: a running count
        done[0] += records
        click.echo(f"\rexported {done[0]:,} records", nl=False, err=True)

    async def run(conn: Any) -> dict:
        return await export(conn, Path(out), filters, fmt, progress=progress)

    manifest = _run(_with_conn(settings, run))
    click.echo(f"audit export: {manifest['count']} records to {out}, manifest {manifest_path(Path(out))}", err=True)


@audit_group.command("verify")
@click.argument("export_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--manifest", "manifest_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The manifest (default: <file>.manifest.json).")
def audit_verify_cmd(export_file: str, manifest_file: str | None) -> None:
    """Check an export against its manifest, offline (no database): every record's hash,
    the chain's continuity (unfiltered) or the listed positions (filtered), the count, the
    first and last hash and the file's sha256. Exit 1 with the problems if any."""
    from pathlib import Path

    from gateway.ledger.audit_export import verify

    manifest = orjson.loads(Path(manifest_file).read_bytes()) if manifest_file else None
    try:
        verdict = verify(Path(export_file), manifest)
    except (OSError, ValueError, KeyError) as exc:
        raise click.ClickException(f"cannot verify {export_file}: {exc}") from None
    if not verdict.ok:
        for problem in verdict.problems:
            click.echo(problem, err=True)
        raise click.ClickException(f"{export_file}: NOT verified ({verdict.records} records read)")
    click.echo(f"{export_file}: verified, {verdict.records} records")


@audit_group.command("trace")
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
@click.option("--partner", default=None, help="The partner whose transaction id it is.")
@click.argument("transaction_id")
def audit_trace_cmd(config: str | None, partner: str | None, transaction_id: str) -> None:
    """One operation end to end as JSON: its audit records (the raw request, the chain
    position, the batch and commit time, the outcome), its ledger entries, and the later
    events of the same bet or round."""
    from gateway.ledger.audit_trace import trace

    settings = _settings(config)
    found = _run(_with_conn(settings, lambda conn: trace(conn, transaction_id, partner)))
    if not found["audit"] and not found["ledger"]:
        raise click.ClickException(f"nothing recorded under transaction id {transaction_id!r}")
    click.echo(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())
