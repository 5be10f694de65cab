"""Audit records: canonical JSON, hash-chained per shard (docs/DESIGN.md section 4).

``hash = sha256(prev_hash || record)`` where ``record`` is the exact UTF-8 text stored in
``audit_log.record`` (msgspec JSON of ``AuditRecord``, fields in its declared order). The
first record of a shard chains from ``GENESIS_HASH``. ``verify_chain`` recomputes the chain
from the stored rows; any edited, inserted or removed row breaks it at that point.

The shard hands each audited request over as a ``port.AuditEntry``; this module alone
decides how it is encoded (``encode_record``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

import msgspec

from gateway.shards.commands import Command, Result
from gateway.shards.port import AuditEntry, BatchWrite
from gateway.shards.rows import row

GENESIS_HASH = b"\x00" * 32


class AuditRecord(msgspec.Struct, frozen=True):
    """One audit_log.record: the request's inputs and origin (inside ``request``), the
    processing chain (shard, batch) and the outcome. Encoded with msgspec (fields in this
    order), and that exact text is what the hash chain covers."""

    shard: int
    seq: int
    batch_id: int
    kind: str
    scope: str | None
    transaction_id: str | None
    player_id: str | None
    code: str
    replayed: bool
    request: Command
    result: Result
    applied_at_us: int
    txn_ids: list[int]


_encoder = msgspec.json.Encoder()


def encode_record(shard_id: int, seq: int, batch_id: int, entry: AuditEntry) -> bytes:
    """The canonical JSON text of one audit record (what ``chain_hash`` covers)."""
    return _encoder.encode(AuditRecord(
        shard=shard_id, seq=seq, batch_id=batch_id, kind=entry.kind, scope=entry.scope,
        transaction_id=entry.transaction_id, player_id=entry.player_id, code=entry.code,
        replayed=entry.replayed, request=entry.request, result=entry.result,
        applied_at_us=entry.applied_at_us, txn_ids=entry.txn_ids,
    ))


class AuditRow(NamedTuple):
    """One audit_log row (shard_id implied) as the batch function takes it."""

    seq: int
    batch_id: int
    recorded_at: datetime
    kind: str
    scope: str | None
    transaction_id: str | None
    partner_id: str | None
    player_id: str | None
    code: str
    record: str
    prev_hash: bytes
    hash: bytes


def chain_batch(
    shard_id: int, audit_seq: int, audit_hash: bytes, batch: BatchWrite, recorded_at: datetime
) -> tuple[list[AuditRow], int, bytes]:
    """Encode and chain a batch's audit entries after the head (``audit_seq``, ``audit_hash``).

    Returns (rows in seq order, the new head's seq, the new head's hash).
    """
    rows: list[AuditRow] = []
    seq, prev = audit_seq, audit_hash
    for entry in batch.audits:
        seq += 1
        record = encode_record(shard_id, seq, batch.batch_id, entry)
        new_hash = chain_hash(prev, record)
        rows.append(row(AuditRow, (seq, batch.batch_id, recorded_at, entry.kind, entry.scope,
                                   entry.transaction_id, entry.partner_id, entry.player_id, entry.code,
                                   record.decode(), prev, new_hash)))
        prev = new_hash
    return rows, seq, prev


def chain_hash(prev_hash: bytes, record_bytes: bytes) -> bytes:
    """sha256(prev_hash || record_bytes): the hash of the next record of a chain."""
    return hashlib.sha256(prev_hash + record_bytes).digest()


class ChainVerifier:
    """Feeds one shard's audit rows in seq order; remembers where the chain first broke."""

    def __init__(self) -> None:
        self.prev = GENESIS_HASH
        self.next_seq = 1
        self.checked = 0
        self.first_bad_seq: int | None = None

    def feed(self, seq: int, prev_hash: bytes, hash_: bytes, record: str) -> bool:
        """Check one row; False (and ``first_bad_seq`` set) at the first break. A gap is a break."""
        if self.first_bad_seq is not None:
            return False
        if (seq != self.next_seq or bytes(prev_hash) != self.prev
                or chain_hash(self.prev, record.encode()) != bytes(hash_)):
            self.first_bad_seq = seq
            return False
        self.prev = bytes(hash_)
        self.next_seq = seq + 1
        self.checked += 1
        return True


def verify_chain(rows: Iterable[tuple[int, bytes, bytes, str]]) -> tuple[bool, int | None, int]:
    """Check one shard's chain. rows: (seq, prev_hash, hash, record) ordered by seq.

    Returns (ok, first bad seq or None, rows checked).
    """
    verifier = ChainVerifier()
    for chain_row in rows:
        if not verifier.feed(*chain_row):
            break
    return verifier.first_bad_seq is None, verifier.first_bad_seq, verifier.checked
