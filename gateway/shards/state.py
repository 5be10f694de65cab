"""A shard's hot state: the players it owns and the idempotency keys it remembers.

Everything here is plain data mutated only by ``apply`` (and by the shard loop's
load/evict steps, which run between applies, never during one). Sizes are bounded by
``ShardSettings.players_resident_max`` and ``keys_resident_max``; an entry that has
uncommitted writes is never evicted, because re-reading it from PostgreSQL would read the
past (docs/DESIGN.md section 2, "Hot state in memory").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.config import ShardSettings
from gateway.shards.responsible import Policies, RgSettings, Usage
from gateway.shards.rows import TxnRow, row

# Transaction kinds, as stored in transactions.kind.
DEPOSIT = "deposit"
WITHDRAW = "withdraw"
DEBIT = "debit"
CREDIT = "credit"
ROLLBACK = "rollback"
TOMBSTONE = "tombstone"  # stored under the key of a rolled-back transaction never seen
# Payments (docs/PAYMENTS.md): a deposit intent and a withdrawal are held open (bet_state
# "open") until the PSP settles them; the other kinds are the PSP's money movements.
DEPOSIT_INTENT = "deposit_intent"
WITHDRAWAL = "withdrawal"
PAYMENT_KINDS = {
    "deposit": DEPOSIT, "deposit_failed": "deposit_failed", "refund": "refund", "refund_reversed": "refund_reversal",
    "chargeback": "chargeback", "chargeback_reversed": "chargeback_reversal", "withdrawal_paid": "withdrawal_paid",
    "withdrawal_returned": "withdrawal_return", "payout_reversed": "payout_reversal",
}
OPEN_PAYMENT_KINDS = frozenset({DEPOSIT_INTENT, WITHDRAWAL})

# Bet states of a debit.
BET_OPEN = "open"
BET_SETTLED = "settled"
BET_ROLLED_BACK = "rolled_back"

# Player statuses.
PLAYER_ACTIVE = "active"

Key = tuple[str, str]  # (scope, transaction_id): the idempotency key
PlayerKey = tuple[str, str]  # (partner_id, player_id): the player's identity
RoundKey = tuple[str, str, str, str]  # (partner_id, player_id, scope, round_id): one game round


@dataclass(slots=True)
class Wallet:
    """One currency of one player, minor units. ``bonus_minor`` is never negative;
    ``cash_minor`` is negative only as a debt left by a reversed win (apply.py, "Debts")."""

    cash_minor: int = 0
    bonus_minor: int = 0


@dataclass(slots=True)
class TxRecord:
    """The stored outcome of one idempotency key (one row of the transactions table).

    ``cash_after_minor``/``bonus_after_minor`` are the player's balances in ``currency``
    right after it; ``cash_delta_minor``/``bonus_delta_minor`` what it moved (a rollback
    restores exactly the split its debit took). ``batch_seq`` is the write-behind batch
    that carries it (0: loaded from PostgreSQL, so committed).
    """

    txn_id: int
    scope: str
    transaction_id: str
    kind: str
    partner_id: str
    player_id: str
    currency: str
    amount_minor: int
    code: str
    cash_after_minor: int
    bonus_after_minor: int
    cash_delta_minor: int = 0
    bonus_delta_minor: int = 0
    round_id: str | None = None
    game_id: str | None = None
    reference_id: str | None = None
    bet_state: str | None = None
    credit_type: str | None = None
    created_at_us: int = 0
    batch_seq: int = 0

    @property
    def key(self) -> Key:
        return (self.scope, self.transaction_id)

    @property
    def player_key(self) -> PlayerKey:
        return (self.partner_id, self.player_id)

    def row(self) -> TxnRow:
        """Snapshot as a transactions row (bet_state as of now)."""
        return row(TxnRow, (
            self.txn_id, self.scope, self.transaction_id, self.kind, self.partner_id, self.player_id,
            self.currency, self.amount_minor, self.code, self.cash_after_minor,
            self.bonus_after_minor, self.cash_delta_minor, self.bonus_delta_minor, self.round_id,
            self.game_id, self.reference_id, self.bet_state, self.credit_type, self.created_at_us,
        ))


@dataclass(slots=True)
class PlayerState:
    """A resident player: balances per currency (insertion order = creation order), open
    bets and responsible-gaming settings. ``usage`` holds the window sums of a player with
    money limits (loaded with the player, or before its first limit is set); None: not
    tracked (no limit needs it)."""

    partner_id: str
    player_id: str
    country: str
    status: str
    wallets: dict[str, Wallet]
    open_bets: dict[Key, TxRecord] = field(default_factory=dict)
    dirty_seq: int = 0  # last batch carrying a write of this player; 0 = none pending
    new: bool = False  # created in a batch not yet committed
    rg: RgSettings | None = None
    usage: Usage | None = None
    payments: dict[Key, TxRecord] | None = None  # open deposit intents and withdrawals (None: none)

    @property
    def key(self) -> PlayerKey:
        return (self.partner_id, self.player_id)


@dataclass
class ShardState:
    """All hot state of one shard, players keyed by (partner_id, player_id).

    ``players[k] is None`` records "looked up, does not exist". ``round_bets`` holds, for
    rounds the last prefetch looked up, every debit and tombstone of the round (committed
    ones from storage, uncommitted ones from memory); like ``absent_keys`` it is cleared
    after the group it was fetched for.

    ``absent_keys`` holds keys looked up in PostgreSQL by the last prefetch and not found;
    the loop clears it after applying the group it was fetched for.
    """

    shard_id: int
    limits: ShardSettings
    rg: Policies = field(default_factory=Policies)  # responsible-gaming numbers per jurisdiction
    players: dict[PlayerKey, PlayerState | None] = field(default_factory=dict)
    keys: dict[Key, TxRecord] = field(default_factory=dict)
    absent_keys: set[Key] = field(default_factory=set)
    round_bets: dict[RoundKey, list[TxRecord]] = field(default_factory=dict)
    open_seq: int = 1  # the batch now filling
    committed_seq: int = 0  # the last batch that committed
    txn_seq: int = 0  # last transaction id handed out (ids are shard_id << 40 | seq)

    def next_txn_id(self) -> int:
        self.txn_seq += 1
        assert self.txn_seq < 1 << 40, "transaction id space of this shard exhausted"
        return (self.shard_id << 40) | self.txn_seq

    def remember(self, record: TxRecord) -> None:
        """Keep ``record`` as the latest entry of the key LRU."""
        self.keys.pop(record.key, None)
        self.keys[record.key] = record

    def player_dirty(self, player: PlayerState) -> bool:
        return player.dirty_seq > self.committed_seq

    def evict(self) -> tuple[int, int]:
        """Drop the least recently used clean players and committed keys beyond the bounds.

        Returns (players evicted, keys evicted). Entries with uncommitted writes stay, so the
        bounds are soft by at most the size of the batches in flight.
        """
        players_evicted = keys_evicted = 0
        over = len(self.players) - self.limits.players_resident_max
        if over > 0:
            for player_key in list(self._oldest(self.players, over * 2)):
                if players_evicted >= over:
                    break
                player = self.players[player_key]
                if player is not None and self.player_dirty(player):
                    continue
                del self.players[player_key]
                players_evicted += 1
        over = len(self.keys) - self.limits.keys_resident_max
        if over > 0:
            for key in list(self._oldest(self.keys, over * 2)):
                if keys_evicted >= over:
                    break
                record = self.keys[key]
                if record.batch_seq > self.committed_seq or record.bet_state == BET_OPEN:
                    continue  # open bets are also referenced by their player's open_bets
                del self.keys[key]
                keys_evicted += 1
        return players_evicted, keys_evicted

    def forget(self, leaving: Callable[[PlayerKey], bool]) -> tuple[int, int]:
        """Drop every player and key for which ``leaving(player_key)`` holds (their bucket
        moved to another shard). Returns (players dropped, keys dropped).

        The caller guarantees that none of them has an uncommitted write (Shard.release
        waits for that first); asserted here, because dropping one would lose it.
        """
        gone = [k for k in self.players if leaving(k)]
        for player_key in gone:
            player = self.players.pop(player_key)
            assert player is None or not self.player_dirty(player), "forgetting a player with uncommitted writes"
        dropped = [key for key, record in self.keys.items() if leaving(record.player_key)]
        for key in dropped:
            record = self.keys.pop(key)
            assert record.batch_seq <= self.committed_seq, "forgetting an uncommitted key"
        return len(gone), len(dropped)

    @staticmethod
    def _oldest(d: dict, n: int):
        it = iter(d)
        for _ in range(min(n, len(d))):
            yield next(it)
