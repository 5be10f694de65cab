"""A write-behind batch: applied commands waiting to become durable together.

Each ``Item`` snapshots, at apply time, the rows its command writes (``TxnRow`` named
tuples): later commands may mutate the same in-memory records (a bet settled by a win in the
next batch), and a batch must commit exactly what was true when it was applied. Commands and
Results are frozen structs, so they are kept by reference. ``Batch.write()`` folds the items
into one ``port.BatchWrite`` for storage, which encodes and hash-chains the audit entries.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gateway.shards.apply import Applied, player_account
from gateway.shards.commands import Command, CreatePlayer, Result
from gateway.shards.port import AuditEntry, BatchWrite, PlayerBalance
from gateway.shards.rows import EntryRow, NewPlayerRow, RoundClose, TxnRow
from gateway.shards.state import Key


@dataclass(slots=True)
class Item:
    """One applied command of a batch: its caller's future, its result and its rows."""

    command: Command
    future: asyncio.Future[Result] | None
    result: Result
    player_id: str | None
    applied_at_us: int
    audited: bool
    txn_rows: list[TxnRow] = field(default_factory=list)
    entries: list[EntryRow] = field(default_factory=list)
    bet_updates: list[tuple[Key, str]] = field(default_factory=list)
    round_closes: list[RoundClose] = field(default_factory=list)
    new_player: tuple[str, str, str, str, list[str]] | None = None  # id, country, status, created_by, currencies
    status_change: tuple[str, str] | None = None  # (player_id, status)

    @property
    def keys(self) -> list[Key]:
        """The idempotency keys this item writes."""
        return [(r.scope, r.transaction_id) for r in self.txn_rows]

    @property
    def writes(self) -> bool:
        return self.audited or bool(self.txn_rows) or self.new_player is not None or self.status_change is not None


def make_item(applied: Applied, future: asyncio.Future[Result] | None) -> Item:
    """Snapshot an Applied into an Item."""
    item = Item(applied.command, future, applied.result, applied.player_id, applied.applied_at_us, applied.audit)
    if applied.txns:
        item.txn_rows = [r.row() for r in applied.txns]
        item.entries = applied.entries
    if applied.bet_updates:
        item.bet_updates = [(bet.key, bet.bet_state or "") for bet in applied.bet_updates]
    if applied.round_closes:
        item.round_closes = applied.round_closes
    if applied.new_player is not None:
        p = applied.new_player
        created_by = applied.command.scope if isinstance(applied.command, CreatePlayer) else ""
        item.new_player = (p.player_id, p.country, p.status, created_by, list(p.wallets))
    item.status_change = applied.status_change
    return item


@dataclass
class Batch:
    """Items of one batch, in apply order. ``seq`` is the shard's batch id."""

    seq: int
    items: list[Item] = field(default_factory=list)
    first_added_ns: int = 0

    def __len__(self) -> int:
        return len(self.items)

    def write(self, flushed_at_us: int) -> BatchWrite:
        """Fold the items into the rows storage writes in one transaction."""
        write = BatchWrite(batch_id=self.seq, flushed_at_us=flushed_at_us)
        balances = write.player_balances
        house = write.house_deltas
        seen: set[Key] = set()
        for item in self.items:
            if item.new_player is not None:
                player_id, country, status, created_by, currencies = item.new_player
                write.new_players.append(NewPlayerRow(player_id, country, status, created_by, item.applied_at_us))
                for currency in currencies:
                    balances[(player_account(player_id, "cash"), currency)] = PlayerBalance(player_id, 0)
                    balances[(player_account(player_id, "bonus"), currency)] = PlayerBalance(player_id, 0)
            if item.status_change is not None:
                write.status_changes[item.status_change[0]] = item.status_change[1]  # last wins
            for row in item.txn_rows:
                key = (row.scope, row.transaction_id)
                assert key not in seen, f"key {key} twice in one batch"
                seen.add(key)
                write.txns.append(row)
                if row.cash_delta_minor:
                    balances[(player_account(row.player_id, "cash"), row.currency)] = PlayerBalance(row.player_id, row.cash_after_minor)
                if row.bonus_delta_minor:
                    balances[(player_account(row.player_id, "bonus"), row.currency)] = PlayerBalance(row.player_id, row.bonus_after_minor)
            for entry in item.entries:
                write.entries.append(entry)
                if entry.account.startswith("house:"):
                    k = (entry.account, entry.currency)
                    house[k] = house.get(k, 0) + entry.delta_minor
            for key, bet_state in item.bet_updates:
                write.bet_updates[key] = bet_state
            write.round_closes.update(item.round_closes)
            if item.audited:
                command = item.command
                write.audits.append(AuditEntry(
                    kind=type(command).__struct_config__.tag,  # type: ignore[arg-type]  # every Command is tagged
                    scope=getattr(command, "scope", None),
                    transaction_id=getattr(command, "transaction_id", None),
                    player_id=item.player_id, code=item.result.code.value,
                    replayed=item.result.replayed, request=command, result=item.result,
                    applied_at_us=item.applied_at_us, txn_ids=[r.txn_id for r in item.txn_rows],
                ))
        return write
