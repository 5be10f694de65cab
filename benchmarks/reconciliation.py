"""Reconciliation of a large Adyen settlement report (docs/BENCHMARKS.md, "Reconciliation").

Issue "Payment reconciliation", target: a generated 1,000,000-line Adyen report with planted
exceptions: every planted exception found, 100% of the standard-category lines matched
automatically, no line unclassified, in < 60 s and < 500 MiB RSS.

    .venv/bin/python -m benchmarks.reconciliation --lines 1000000

A fresh database gets the migrations and, by COPY, one ledger deposit per settled line (as
Adyen's AUTHORISATION would have credited it) plus the planted ones; the report is written
line by line to a temporary file. Then one run of ``gateway.reconciliation.run.reconcile``
is timed (wall clock, CPU of this process and of PostgreSQL's backend) and its peak RSS read.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from gateway.ledger.migrate import migrate
from gateway.reconciliation.run import reconcile

COLUMNS = ["Company Account", "Merchant Account", "Psp Reference", "Merchant Reference", "Payment Method",
           "Creation Date", "TimeZone", "Type", "Modification Reference", "Gross Currency", "Gross Debit (GC)",
           "Gross Credit (GC)", "Exchange Rate", "Net Currency", "Net Debit (NC)", "Net Credit (NC)",
           "Commission (NC)", "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)", "Payment Method Variant",
           "Modification Merchant Reference", "Batch Number"]
PLANTED_EACH = 500  # of each exception kind
BATCH_LINES = 10_000


def major(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def plan(i: int) -> tuple[str, int, str, bool]:
    """Payment line ``i``: (reference, gross, currency, has a ledger deposit)."""
    amount = 1_000 + i % 5_000
    if i < PLANTED_EACH:
        return f"P{i:09d}", amount + 1, "EUR", True  # amount mismatch
    if i < 2 * PLANTED_EACH:
        return f"P{i:09d}", amount, "USD", True  # currency mismatch
    if i < 3 * PLANTED_EACH:
        return f"X{i:09d}", amount, "EUR", False  # missing in the ledger
    if i < 4 * PLANTED_EACH and i % 2:
        return f"P{i - 1:09d}", 1_000 + (i - 1) % 5_000, "EUR", False  # repeats the line before: duplicate
    return f"P{i:09d}", amount, "EUR", True


def write_report(path: Path, batches: int, when: datetime) -> dict[str, int]:
    """The report (``batches`` x BATCH_LINES lines, each batch closed by its merchant
    payout); returns how many of each exception were planted."""
    fee = 10
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(COLUMNS)
        i = 0
        for b in range(1, batches + 1):
            # the first batch opens the period three days back: the ledger's deposits (two days
            # old) fall inside it, and before its end less the grace (one day)
            stamp = (when - timedelta(days=3) if b == 1 else when).strftime("%Y-%m-%d %H:%M:%S")
            batch_net = 0
            for _ in range(BATCH_LINES - 1):
                ref, gross, currency, _seeded = plan(i)
                out.writerow(["Demo", "DemoCasinoECOM", ref, f"m{i}", "visa", stamp, "UTC", "Settled", "", currency,
                              "", major(gross), "", currency, "", major(gross - fee), major(fee), "", "", "", "", "",
                              str(b)])
                batch_net += gross - fee
                i += 1
            out.writerow(["Demo", "DemoCasinoECOM", "", "", "", stamp, "UTC", "MerchantPayout", "", "", "", "", "",
                          "EUR", major(batch_net), "", "", "", "", "", "", "", str(b)])
    return {"amount_mismatch": PLANTED_EACH, "currency_mismatch": PLANTED_EACH, "missing_in_ledger": PLANTED_EACH,
            "duplicate_line": PLANTED_EACH // 2,
            # the ledger deposits no line explains: the planted ones, and those whose line mismatched
            "missing_at_psp": 3 * PLANTED_EACH}


async def seed_ledger(conn: asyncpg.Connection, payments: int, created: datetime) -> int:
    """One deposit per payment line that has one, and PLANTED_EACH that no line names."""
    def rows():
        txn = 0
        for i in range(payments + PLANTED_EACH):
            if i < payments:
                ref, _gross, _currency, seeded = plan(i)
                if not seeded:
                    continue
            else:
                ref = f"Z{i:09d}"
            amount = 1_000 + i % 5_000
            txn += 1
            yield (txn, 0, "demo:adyen", f"deposit:AUTHORISATION:{ref}", "deposit", "demo", f"b{i % 10_000}", "EUR",
                   amount, "ok", 0, 0, amount, 0, None, ref, f"m{i}", None, None, created)

    await conn.copy_records_to_table("transactions", records=rows(), columns=[
        "txn_id", "shard_id", "scope", "transaction_id", "kind", "partner_id", "player_id", "currency", "amount_minor",
        "code", "cash_after_minor", "bonus_after_minor", "cash_delta_minor", "bonus_delta_minor", "round_id", "game_id",
        "reference_id", "bet_state", "credit_type", "created_at"])
    await conn.execute("ANALYZE transactions")
    return int(await conn.fetchval("SELECT count(*) FROM transactions"))


async def main_async(args: argparse.Namespace) -> int:
    admin = await asyncpg.connect(args.admin_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{args.database}"')
    await admin.close()
    dsn = args.admin_dsn.rsplit("/", 1)[0] + "/" + args.database
    conn = await asyncpg.connect(dsn)
    await migrate(conn, lock_timeout_ms=60_000, statement_timeout_ms=0)
    when = datetime.now(UTC)
    batches = max(args.lines // BATCH_LINES, 1)
    started = time.perf_counter()
    seeded = await seed_ledger(conn, batches * (BATCH_LINES - 1), when - timedelta(days=2))
    print(f"ledger: {seeded:,} deposits in {time.perf_counter() - started:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "settlement.csv"
        started = time.perf_counter()
        planted = write_report(report, batches, when)
        print(f"report: {batches * BATCH_LINES:,} lines, {report.stat().st_size / 2**20:.0f} MiB, "
              f"written in {time.perf_counter() - started:.1f} s", flush=True)
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        pg_before = _pg_cpu_s(backend)
        cpu_before = time.process_time()
        started = time.perf_counter()
        summary = await reconcile(conn, "adyen", "adyen", "demo:adyen", report, chunk_lines=args.chunk_lines,
                                  grace_days=1)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        pg_cpu = _pg_cpu_s(backend) - pg_before
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    found = {r["outcome"]: r["n"] for r in await conn.fetch(
        "SELECT outcome, count(*) AS n FROM recon_exceptions GROUP BY 1")}
    recorded = await conn.fetchval("SELECT count(*) FROM recon_lines")
    await conn.close()
    standard = sum(n for kind, outcomes in summary.outcomes.items() for outcome, n in outcomes.items()
                   if outcome not in ("amount_mismatch", "currency_mismatch", "missing_in_ledger", "duplicate_line",
                                      "ambiguous_reference"))
    exceptions_lines = summary.lines - standard
    print(f"\nreconciled {summary.lines:,} lines in {wall:.1f} s ({summary.lines / wall:,.0f} lines/s); "
          f"CPU: this process {cpu:.1f} s, PostgreSQL backend {pg_cpu:.1f} s; peak RSS {rss_mib:.0f} MiB")
    print(f"lines recorded: {recorded:,} of {summary.lines:,} (unclassified: {summary.lines - recorded})")
    print(f"standard lines matched automatically: {standard:,} of {summary.lines - exceptions_lines:,}")
    ok = True
    for outcome, n in planted.items():
        got = found.get(outcome, 0)
        ok &= got == n
        print(f"  planted {outcome}: {n}, found {got}")
    print("targets: " + ", ".join([
        f"every planted exception found: {'yes' if ok else 'NO'}",
        f"< 60 s: {'yes' if wall < 60 else 'MISSED'} ({wall:.1f} s)",
        f"< 500 MiB: {'yes' if rss_mib < 500 else 'MISSED'} ({rss_mib:.0f} MiB)",
        f"no line unclassified: {'yes' if recorded == summary.lines else 'NO'}"]))
    return 0 if ok and recorded == summary.lines else 1


def _pg_cpu_s(pid: int) -> float:
    """CPU seconds of a PostgreSQL backend from /proc (same machine), 0 if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        import os

        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--chunk-lines", type=int, default=5_000)
    p.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--database", default="bench_reconciliation")
    return asyncio.run(main_async(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
