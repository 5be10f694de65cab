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
from gateway.shards.responsible import RgSettings
from gateway.shards.rows import (
    BetMarkRow,
    BetSlipRow,
    EntryRow,
    NewPlayerRow,
    PlayerBalance,
    ReviewRow,
    RoundClose,
    TxnRow,
)
from gateway.shards.state import Key, PlayerKey, RoundKey, TxRecord

__all__ = [
    "AuditEntry", "BatchWrite", "BetMarkRow", "BetSlipRow", "Claim", "EntryRow", "FenceLost", "Heads", "KeyConflict", "NewPlayerRow",
    "PlayerBalance", "PrefetchResult", "ReviewRow", "RoundClose", "Storage", "StorageUnavailable", "TxnRow", "UsageRead",
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
    partner_id: str | None
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
    ((partner, player) -> status, last wins) apply after ``new_players``. ``audits`` are in apply order.
    ``bet_slips`` and ``bet_marks`` are the sportsbook's bet rows that commit with their
    stake and payout (at most one mark per bet: ``Batch.write`` folds them).
    """

    batch_id: int
    flushed_at_us: int
    txns: list[TxnRow] = field(default_factory=list)
    new_players: list[NewPlayerRow] = field(default_factory=list)
    status_changes: dict[PlayerKey, str] = field(default_factory=dict)
    player_balances: dict[tuple[str, str], PlayerBalance] = field(default_factory=dict)
    house_deltas: dict[tuple[str, str], int] = field(default_factory=dict)
    entries: list[EntryRow] = field(default_factory=list)
    bet_updates: dict[Key, str] = field(default_factory=dict)
    round_closes: set[RoundClose] = field(default_factory=set)
    audits: list[AuditEntry] = field(default_factory=list)
    reviews: list[ReviewRow] = field(default_factory=list)
    bet_slips: list[BetSlipRow] = field(default_factory=list)
    bet_marks: dict[tuple[str, str], BetMarkRow] = field(default_factory=dict)  # (partner, bet id) -> mark
    rg_settings: dict[PlayerKey, RgSettings] = field(default_factory=dict)  # responsible gaming, last wins
    rg_changed_at_us: dict[PlayerKey, int] = field(default_factory=dict)

    def has_writes(self) -> bool:
        return bool(self.txns or self.new_players or self.status_changes or self.audits or self.rg_settings)


# ---- reads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A shard's lease: its new ``epoch``, the ``buckets`` it owns and the map revision."""

    epoch: int
    buckets: frozenset[int]
    map_revision: int


@dataclass
class Heads:
    """Where a shard's sequences stand in storage when it starts."""

    txn_seq: int  # last transaction sequence used (ids are shard_id << 40 | seq)
    batch_id: int  # last committed batch id
    audit_seq: int  # last audit record of the shard's chain (for the log)


@dataclass(frozen=True)
class UsageRead:
    """Which window sums a prefetch reads: applied deposits, stakes and winnings of
    ``players`` (and of cold players with money limits) since ``since_us``, summed in
    buckets of ``bucket_us`` aligned on the Unix epoch; rolled-back stakes and reversed
    winnings excluded (gateway/shards/responsible.py, "Windows")."""

    players: list[PlayerKey]
    since_us: int
    bucket_us: int


@dataclass
class PrefetchResult:
    """Rows for cold players and looked-up keys (``Storage.prefetch``)."""

    players: dict[PlayerKey, tuple[str, str]] = field(default_factory=dict)  # player -> (country, status)
    wallets: dict[PlayerKey, dict[str, list[int]]] = field(default_factory=dict)  # player -> currency -> [cash, bonus]
    open_bets: list[TxRecord] = field(default_factory=list)  # open bets of those players
    records: list[TxRecord] = field(default_factory=list)  # looked-up keys that exist
    round_debits: dict[RoundKey, list[TxRecord]] = field(default_factory=dict)  # debits and tombstones per round
    rg: dict[PlayerKey, RgSettings] = field(default_factory=dict)  # loaded players' responsible-gaming settings
    # Window sums: player -> [(currency, bucket start µs, deposits, wagers, winnings)], oldest
    # first; a key for every player whose sums were loaded (cold players with money limits
    # and every player asked for), even with no bucket.
    usage: dict[PlayerKey, list[tuple[str, int, int, int, int]]] = field(default_factory=dict)


class Storage(Protocol):
    """What a shard needs from durable storage. Every method may raise StorageUnavailable."""

    async def claim(self, claimed_by: str, address: str, now_us: int) -> Claim:
        """Take the shard's lease (a new epoch, fencing any earlier holder) and the buckets
        the shard map gives it; ``address`` is where its edges reach it ("" in-process)."""
        ...

    async def load_heads(self) -> Heads:
        """The shard's sequences as committed; also restores the audit chain head."""
        ...

    async def prefetch(self, players: list[PlayerKey], keys: list[Key], rounds: list[RoundKey],
                       usage: UsageRead | None = None) -> PrefetchResult:
        """One round trip's worth of reads for cold players, unknown keys and the rounds
        whose bets a credit needs (``round_debits``: every debit and tombstone of each).

        Responsible gaming: cold players come with their settings (``rg``); window sums
        (``PrefetchResult.usage``, as ``UsageRead`` says) come for cold players with money
        limits and for every player in ``usage.players``."""
        ...

    async def write_batch(self, batch: BatchWrite, epoch: int) -> None:
        """Commit ``batch`` durably, fenced by ``epoch``; FenceLost / KeyConflict /
        StorageUnavailable as described in the module docstring."""
        ...

    async def batch_committed(self, batch_id: int) -> bool:
        """After StorageUnavailable: did batch ``batch_id`` commit after all?"""
        ...

    async def ping(self, timeout_s: float) -> None:
        """Return once storage answered a trivial query; StorageUnavailable if it did not
        within ``timeout_s`` seconds."""
        ...
