"""Export and offline verification of a million audit records (docs/BENCHMARKS.md, "Audit").

Issue "Operable and auditable", target: an export of 1,000,000 audit records and its offline
verification each finish in < 60 s on this machine; altering, dropping or reordering one
record in the file is detected.

    .venv/bin/python -m benchmarks.audit_export --records 1000000

A fresh database gets the migrations and, by COPY, a valid hash chain of audit records shaped
like the shard's (a debit's request and result, about 600 bytes each) over four shards. Then
``gateway.ledger.audit_export.export`` (unfiltered, JSON lines) and ``verify`` are timed, and
three tampered copies (one record altered, one dropped, two swapped) must each fail.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson

from gateway.ledger.audit import GENESIS_HASH, chain_hash
from gateway.ledger.audit_export import Filters, export, verify
from gateway.ledger.migrate import migrate

SHARDS = 4


def records(count: int):
    now = datetime.now(UTC)
    heads = [GENESIS_HASH] * SHARDS
    seqs = [0] * SHARDS
    for i in range(count):
        shard = i % SHARDS
        seqs[shard] += 1
        seq = seqs[shard]
        txn = f"bet-{i:012d}"
        record = orjson.dumps({
            "shard": shard, "seq": seq, "batch_id": seq // 100 + 1, "kind": "debit", "scope": "demo:hub88",
            "transaction_id": txn, "player_id": f"p{i % 50_000}", "code": "ok", "replayed": False,
            "request": {"type": "debit", "scope": "demo:hub88", "transaction_id": txn, "partner_id": "demo",
                        "player_id": f"p{i % 50_000}", "currency": "EUR", "amount_minor": 100 + i % 900,
                        "round_id": f"r-{i}", "game_id": "hub88_slot_1",
                        "origin": {"edge": "host:1", "route": "hub88 /transaction/bet", "request_id": f"rq-{i}",
                                   "received_at_us": 1_780_000_000_000_000 + i}},
            "result": {"code": "ok", "player_id": f"p{i % 50_000}", "transaction_id": txn, "currency": "EUR",
                       "cash_minor": 10_000, "bonus_minor": 0, "ledger_transaction_id": i + 1},
            "applied_at_us": 1_780_000_000_000_000 + i, "txn_ids": [i + 1],
        })
        new = chain_hash(heads[shard], record)
        yield (shard, seq, seq // 100 + 1, now, "debit", "demo:hub88", txn, "demo", f"p{i % 50_000}", "ok",
               record.decode(), heads[shard], new)
        heads[shard] = new


async def main_async(args: argparse.Namespace) -> int:
    admin = await asyncpg.connect(args.admin_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{args.database}"')
    await admin.close()
    conn = await asyncpg.connect(args.admin_dsn.rsplit("/", 1)[0] + "/" + args.database)
    await migrate(conn, lock_timeout_ms=60_000, statement_timeout_ms=0)
    started = time.perf_counter()
    await conn.copy_records_to_table("audit_log", records=records(args.records), columns=[
        "shard_id", "seq", "batch_id", "recorded_at", "kind", "scope", "transaction_id", "partner_id", "player_id",
        "code", "record", "prev_hash", "hash"])
    await conn.execute("ANALYZE audit_log")
    print(f"audit_log: {args.records:,} records over {SHARDS} shards in {time.perf_counter() - started:.1f} s",
          flush=True)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.jsonl"
        started = time.perf_counter()
        manifest = await export(conn, path, Filters())
        export_s = time.perf_counter() - started
        size_mib = path.stat().st_size / 2**20
        started = time.perf_counter()
        verdict = verify(path)
        verify_s = time.perf_counter() - started
        print(f"export: {manifest['count']:,} records, {size_mib:.0f} MiB, {export_s:.1f} s "
              f"({manifest['count'] / export_s:,.0f} records/s)")
        print(f"verify: {'ok' if verdict.ok else 'FAILED'}, {verdict.records:,} records, {verify_s:.1f} s "
              f"({verdict.records / verify_s:,.0f} records/s)")
        failures += not verdict.ok
        lines = path.read_bytes().splitlines(keepends=True)
        middle = len(lines) // 2
        tampered = {
            "one record altered": [*lines[:middle], lines[middle].replace(b'amount_minor\\":', b'amount_minor\\":9'), *lines[middle + 1:]],
            "one record dropped": lines[:middle] + lines[middle + 1:],
            "two records swapped": [*lines[:middle], lines[middle + 1], lines[middle], *lines[middle + 2:]],
        }
        for name, content in tampered.items():
            bad = Path(tmp) / "bad.jsonl"
            bad.write_bytes(b"".join(content))
            found = not verify(bad, manifest).ok
            failures += not found
            print(f"  {name}: {'detected' if found else 'NOT DETECTED'}")
    await conn.close()
    print("targets: " + ", ".join([f"export < 60 s: {'yes' if export_s < 60 else 'MISSED'} ({export_s:.1f} s)",
                                   f"verify < 60 s: {'yes' if verify_s < 60 else 'MISSED'} ({verify_s:.1f} s)",
                                   f"tampering detected: {'yes' if failures == 0 else 'NO'}"]))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--database", default="bench_audit")
    return asyncio.run(main_async(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
