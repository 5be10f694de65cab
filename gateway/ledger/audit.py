"""Audit records: canonical JSON, hash-chained per shard (DESIGN.md section 4).

``hash = sha256(prev_hash || record)`` where ``record`` is the exact UTF-8 text stored in
``audit_log.record`` (orjson with sorted keys). The first record of a shard chains from
``GENESIS_HASH``. ``verify_chain`` recomputes the chain from the stored rows; any edited,
inserted or removed row breaks it at that point.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import msgspec
import orjson

GENESIS_HASH = b"\x00" * 32


def canonical(record: dict) -> bytes:
    """Canonical bytes of an audit record: JSON, sorted keys, no whitespace."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: bytes, record_bytes: bytes) -> bytes:
    return hashlib.sha256(prev_hash + record_bytes).digest()


def command_inputs(command: object) -> dict:
    """The request inputs of a command for the audit record (origin is stored apart)."""
    data = msgspec.to_builtins(command)
    data.pop("origin", None)
    return data


def verify_chain(rows: Iterable[tuple[int, bytes, bytes, str]]) -> tuple[bool, int | None, int]:
    """Check one shard's chain. rows: (seq, prev_hash, hash, record) ordered by seq.

    Returns (ok, first bad seq or None, rows checked). A gap in seq is a break too.
    """
    prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for seq, prev_hash, hash_, record in rows:
        if seq != expected_seq:
            return False, seq, checked
        if bytes(prev_hash) != prev or chain_hash(prev, record.encode()) != bytes(hash_):
            return False, seq, checked
        prev = bytes(hash_)
        expected_seq = seq + 1
        checked += 1
    return True, None, checked
