"""Audit exports for regulators: the records and a manifest that proves them (docs/AUDIT.md).

``export`` streams ``audit_log`` rows matching the filters to a JSON-lines or CSV file and
writes beside it a manifest: the filters and range, the count, the first and last hash, each
shard's span in the export and its chain head at export time, the file's sha256 and, for a
filtered export, the chain position and hash of every exported record. ``verify`` (pure,
offline, no database) checks a file against its manifest: every record's hash is
``sha256(prev_hash || record)``; an unfiltered export must be each shard's chain without a
gap from its first to its last record; a filtered one must hold exactly the listed
positions, in order. An altered, dropped, inserted or reordered record fails, naming the line.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from gateway.ledger.audit import GENESIS_HASH, chain_hash

FETCH_ROWS = 5_000
COLUMNS = ("shard_id", "seq", "recorded_at", "partner_id", "player_id", "kind", "code", "scope", "transaction_id",
           "prev_hash", "hash", "record")
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Filters:
    """What an export holds; every field None: the whole log of the range."""

    partner: str | None = None
    player: str | None = None
    provider: str | None = None  # the source of the scope ("hub88", "api", "sportsbook", ...)
    transaction_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def filtered(self) -> bool:
        """True if the export may leave out records of its range (positions are listed)."""
        return any(v is not None for v in (self.partner, self.player, self.provider, self.transaction_id))

    def as_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


async def export(conn: asyncpg.Connection, path: Path, filters: Filters, fmt: str = "jsonl",
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write the records matching ``filters`` to ``path`` (``fmt`` "jsonl" or "csv") in chain
    order (shard, seq), and the manifest beside it; returns the manifest. One read-only
    snapshot: the records and the chain heads are of one moment."""
    query = """SELECT shard_id, seq, recorded_at, partner_id, player_id, kind, code, scope, transaction_id,
                      prev_hash, hash, record
               FROM audit_log
               WHERE ($1::text IS NULL OR partner_id = $1)
                 AND ($2::text IS NULL OR player_id = $2)
                 AND ($3::text IS NULL OR scope LIKE '%:' || $3)
                 AND ($4::text IS NULL OR transaction_id = $4)
                 AND ($5::timestamptz IS NULL OR recorded_at >= $5)
                 AND ($6::timestamptz IS NULL OR recorded_at < $6)
               ORDER BY shard_id, seq"""
    digest = hashlib.sha256()
    count = 0
    first_hash = last_hash = None
    shards: dict[str, dict[str, Any]] = {}
    positions: list[list[Any]] = []
    filtered = filters.filtered()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        heads = {str(r["shard_id"]): {"seq": r["seq"], "hash": bytes(r["hash"]).hex()} for r in await conn.fetch(
            """SELECT DISTINCT ON (shard_id) shard_id, seq, hash FROM audit_log ORDER BY shard_id, seq DESC""")}
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle) if fmt == "csv" else None
            if writer is not None:
                writer.writerow(COLUMNS)
            async for r in conn.cursor(query, filters.partner, filters.player, filters.provider, filters.transaction_id,
                                       filters.since, filters.until, prefetch=FETCH_ROWS):
                prev_hex, hash_hex = bytes(r["prev_hash"]).hex(), bytes(r["hash"]).hex()
                values = (r["shard_id"], r["seq"], r["recorded_at"].astimezone(UTC).isoformat(), r["partner_id"],
                          r["player_id"], r["kind"], r["code"], r["scope"], r["transaction_id"], prev_hex, hash_hex,
                          r["record"])
                if writer is not None:
                    writer.writerow(values)
                    line = None
                else:
                    line = orjson.dumps(dict(zip(COLUMNS, values, strict=True))).decode() + "\n"
                    handle.write(line)
                count += 1
                first_hash = first_hash or hash_hex
                last_hash = hash_hex
                span = shards.setdefault(str(r["shard_id"]), {"first_seq": r["seq"], "first_prev_hash": prev_hex,
                                                              "count": 0})
                span["last_seq"], span["last_hash"] = r["seq"], hash_hex
                span["count"] += 1
                if filtered:
                    positions.append([r["shard_id"], r["seq"], hash_hex])
                if progress is not None and count % 10_000 == 0:
                    progress(10_000)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    manifest = {
        "version": MANIFEST_VERSION, "exported_at": datetime.now(UTC).isoformat(), "format": fmt,
        "filters": filters.as_json(), "filtered": filtered, "count": count, "first_hash": first_hash,
        "last_hash": last_hash, "shards": shards, "chain_heads": heads, "file_sha256": digest.hexdigest(),
    }
    if filtered:
        manifest["positions"] = positions
    manifest_path(path).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return manifest


@dataclass
class Verdict:
    """What ``verify`` found: ``ok``, the records checked, and the first problem (line, why)."""

    ok: bool = True
    records: int = 0
    problems: list[str] = field(default_factory=list)

    def fail(self, line_no: int, why: str) -> None:
        self.ok = False
        if len(self.problems) < 20:
            self.problems.append(f"line {line_no}: {why}")


def _rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="") as handle:
        if fmt == "csv":
            reader = csv.reader(handle)
            next(reader, None)
            for line_no, values in enumerate(reader, start=2):
                yield line_no, dict(zip(COLUMNS, values, strict=False))
        else:
            for line_no, text in enumerate(handle, start=1):
                if text.strip():
                    yield line_no, orjson.loads(text)


def verify(path: Path, manifest: dict[str, Any] | None = None) -> Verdict:
    """Check the export at ``path`` against its manifest (read beside it unless given),
    offline. Pure but for reading the two files."""
    verdict = Verdict()
    if manifest is None:
        manifest = orjson.loads(manifest_path(path).read_bytes())
    fmt = manifest.get("format", "jsonl")
    positions = manifest.get("positions") if manifest.get("filtered") else None
    last: dict[int, tuple[int, str]] = {}  # shard -> (seq, hash) of its previous record in the file
    first_hash = last_hash = None
    order: tuple[int, int] = (-1, -1)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    try:
        for line_no, r in _rows(path, fmt):
            shard, seq = int(r["shard_id"]), int(r["seq"])
            prev_hex, hash_hex, record = str(r["prev_hash"]), str(r["hash"]), str(r["record"])
            if chain_hash(bytes.fromhex(prev_hex), record.encode()).hex() != hash_hex:
                verdict.fail(line_no, f"record {shard}/{seq} does not hash to its hash: altered")
            if (shard, seq) <= order:
                verdict.fail(line_no, f"record {shard}/{seq} out of chain order")
            order = (shard, seq)
            if positions is None:
                previous = last.get(shard)
                if previous is not None:
                    if seq != previous[0] + 1:
                        verdict.fail(line_no, f"shard {shard}: seq {seq} follows {previous[0]}: a record is missing")
                    if prev_hex != previous[1]:
                        verdict.fail(line_no, f"record {shard}/{seq} does not chain from the record before it")
                else:
                    span = manifest["shards"].get(str(shard))
                    if span is None or (seq, prev_hex) != (span["first_seq"], span["first_prev_hash"]):
                        verdict.fail(line_no, f"shard {shard} does not start where the manifest says")
                    elif seq == 1 and prev_hex != GENESIS_HASH.hex():
                        verdict.fail(line_no, f"shard {shard}'s first record does not chain from the genesis hash")
            elif verdict.records >= len(positions) or positions[verdict.records] != [shard, seq, hash_hex]:
                verdict.fail(line_no, f"record {shard}/{seq} is not the manifest's record #{verdict.records + 1}")
            last[shard] = (seq, hash_hex)
            first_hash = first_hash or hash_hex
            last_hash = hash_hex
            verdict.records += 1
    except (KeyError, ValueError, TypeError, orjson.JSONDecodeError) as exc:
        verdict.fail(0, f"not an audit export: {exc!r}"[:200])
        return verdict
    if verdict.records != manifest["count"]:
        verdict.fail(0, f"{verdict.records} records, the manifest says {manifest['count']}")
    if (first_hash, last_hash) != (manifest["first_hash"], manifest["last_hash"]):
        verdict.fail(0, "the first or last hash differs from the manifest's")
    for shard, span in manifest["shards"].items():
        seen = last.get(int(shard))
        if seen is None or seen != (span["last_seq"], span["last_hash"]):
            verdict.fail(0, f"shard {shard} does not end where the manifest says")
    if digest.hexdigest() != manifest["file_sha256"]:
        verdict.fail(0, "the file's sha256 differs from the manifest's")
    return verdict
