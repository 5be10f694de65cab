"""The storage port: everything a shard needs from durable storage, owned by the shard side.

The shard (``gateway/shards/shard.py``) talks to storage only through ``Storage`` and the
types below; ``gateway/ledger/`` implements it with PostgreSQL (its driver runs on a
database thread) and owns what storage is made of: SQL, column order, the audit record's
encoding and its hash chain. No driver name, no SQL and no audit format appears on this
side.

A batch reaches storage as one ``BatchWrite``: named rows, snapshotted at apply time
(``gateway/shards/batch.py``). Storage answers with ``None`` (committed, durable) or one of
three errors:

- ``FenceLost``: this shard's lease epoch moved; another owner holds its buckets. Fatal for
  the shard (docs/DESIGN.md section 6).
- ``KeyConflict``: some idempotency keys of the batch already exist; nothing was written.
  The shard re-applies with the stored outcomes (docs/DESIGN.md section 5,
  ``gateway/shards/keys.py``).
- ``StorageUnavailable``: a transient fault (connection lost, server restarting, statement
  cancelled). Whether the batch committed is unknown: ask ``batch_committed`` before
  sending it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from gateway.shards.commands import Command, Result
from gateway.shards.rows import EntryRow, NewPlayerRow, PlayerBalance, RoundClose, TxnRow
from gateway.shards.state import Key, TxRecord

__all__ = [
    "AuditEntry", "BatchWrite", "EntryRow", "FenceLost", "Heads", "KeyConflict", "NewPlayerRow",
    "PlayerBalance", "PrefetchResult", "RoundClose", "Storage", "StorageUnavailable", "TxnRow",
]


class FenceLost(Exception):
    """The shard's lease epoch moved: another owner holds its buckets. Fatal for the shard."""


class KeyConflict(Exception):
    """Some idempotency keys of the batch already exist in storage; nothing was written."""

    def __init__(self, keys: list[Key]) -> None:
        super().__init__(f"{len(keys)} idempotency keys already stored")
        self.keys = keys


class StorageUnavailable(Exception):
    """A transient storage fault; the same request may be sent again (after a pause)."""


class AuditEntry(NamedTuple):
    """What one audited request was and what came of it; storage encodes and chains it."""

    kind: str  # the command's tag, e.g. "debit"
    scope: str | None
    transaction_id: str | None
    player_id: str | None
    code: str
    replayed: bool
    request: Command
    result: Result
    applied_at_us: int
    txn_ids: list[int]


@dataclass
class BatchWrite:
    """Everything one batch makes durable, in one storage transaction.

    ``player_balances`` and ``house_deltas`` are keyed by (account, currency); player
    accounts are written as absolute balances, house accounts by delta. ``status_changes``
    (player -> status, last wins) apply after ``new_players``. ``audits`` are in apply order.
    """

    batch_id: int
    flushed_at_us: int
    txns: list[TxnRow] = field(default_factory=list)
    new_players: list[NewPlayerRow] = field(default_factory=list)
    status_changes: dict[str, str] = field(default_factory=dict)
    player_balances: dict[tuple[str, str], PlayerBalance] = field(default_factory=dict)
    house_deltas: dict[tuple[str, str], int] = field(default_factory=dict)
    entries: list[EntryRow] = field(default_factory=list)
    bet_updates: dict[Key, str] = field(default_factory=dict)
    round_closes: set[RoundClose] = field(default_factory=set)
    audits: list[AuditEntry] = field(default_factory=list)

    def has_writes(self) -> bool:
        return bool(self.txns or self.new_players or self.status_changes or self.audits)


# ---- reads ---------------------------------------------------------------------------


@dataclass
class Heads:
    """Where a shard's sequences stand in storage when it starts."""

    txn_seq: int  # last transaction sequence used (ids are shard_id << 40 | seq)
    batch_id: int  # last committed batch id
    audit_seq: int  # last audit record of the shard's chain (for the log)


@dataclass
class PrefetchResult:
    """Rows for cold players and looked-up keys (``Storage.prefetch``)."""

    players: dict[str, tuple[str, str]] = field(default_factory=dict)  # player_id -> (country, status)
    wallets: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # player -> currency -> [cash, bonus]
    open_bets: list[TxRecord] = field(default_factory=list)  # open bets of those players
    records: list[TxRecord] = field(default_factory=list)  # looked-up keys that exist


class Storage(Protocol):
    """What a shard needs from durable storage. Every method may raise StorageUnavailable."""

    async def claim(self, bucket_count: int, claimed_by: str, now_us: int) -> int:
        """Take the shard's lease (a new epoch) and its buckets; returns the epoch."""
        ...

    async def load_heads(self) -> Heads:
        """The shard's sequences as committed; also restores the audit chain head."""
        ...

    async def prefetch(self, player_ids: list[str], keys: list[Key]) -> PrefetchResult:
        """One round trip's worth of reads for cold players and unknown keys."""
        ...

    async def write_batch(self, batch: BatchWrite, epoch: int) -> None:
        """Commit ``batch`` durably, fenced by ``epoch``; FenceLost / KeyConflict /
        StorageUnavailable as described in the module docstring."""
        ...

    async def batch_committed(self, batch_id: int) -> bool:
        """After StorageUnavailable: did batch ``batch_id`` commit after all?"""
        ...
