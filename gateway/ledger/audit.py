"""Audit records: canonical JSON, hash-chained per shard (DESIGN.md section 4).

``hash = sha256(prev_hash || record)`` where ``record`` is the exact UTF-8 text stored in
``audit_log.record`` (msgspec JSON of ``gateway.shards.batch.AuditRecord``). The first record of a shard chains from
``GENESIS_HASH``. ``verify_chain`` recomputes the chain from the stored rows; any edited,
inserted or removed row breaks it at that point.
"""

from __future__ import annotations

import hashlib
from typing import Iterable


GENESIS_HASH = b"\x00" * 32


def chain_hash(prev_hash: bytes, record_bytes: bytes) -> bytes:
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
    for row in rows:
        if not verifier.feed(*row):
            break
    return verifier.first_bad_seq is None, verifier.first_bad_seq, verifier.checked
