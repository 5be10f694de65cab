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

import msgspec

from gateway.shards.applied import Applied, player_account
from gateway.shards.commands import Atomic, Code, Command, CreatePlayer, Credit, Debit, Result
from gateway.shards.port import AuditEntry, BatchWrite, PlayerBalance
from gateway.shards.responsible import RgSettings
from gateway.shards.rows import BetMarkRow, BetSlipRow, EntryRow, NewPlayerRow, ReviewRow, RoundClose, TxnRow, row
from gateway.shards.state import Key, PlayerKey
from gateway.telemetry.command import CommandTrace


@dataclass(slots=True)
class Item:
    """One applied command of a batch: its caller's future, its result and its rows."""

    command: Command
    future: asyncio.Future[Result] | None
    result: Result
    player_key: PlayerKey | None
    applied_at_us: int
    audited: bool
    txn_rows: list[TxnRow] = field(default_factory=list)
    entries: list[EntryRow] = field(default_factory=list)
    bet_updates: list[tuple[Key, str]] = field(default_factory=list)
    round_closes: list[RoundClose] = field(default_factory=list)
    new_player: NewPlayerRow | None = None
    new_currencies: list[str] = field(default_factory=list)  # the new player's wallets
    status_change: tuple[PlayerKey, str] | None = None
    reviews: list[tuple[int, str]] = field(default_factory=list)  # (txn_id, reason): operator-review items
    rg_change: tuple[PlayerKey, RgSettings] | None = None  # responsible-gaming settings to store
    trace: CommandTrace | None = None  # the sampled request's trace (gateway/telemetry/shard_spans.py)

    @property
    def keys(self) -> list[Key]:
        """The idempotency keys this item writes."""
        return [(r.scope, r.transaction_id) for r in self.txn_rows]

    @property
    def writes(self) -> bool:
        return (self.audited or bool(self.txn_rows) or self.new_player is not None or self.status_change is not None
                or self.rg_change is not None)


def make_item(applied: Applied, future: asyncio.Future[Result] | None, trace: CommandTrace | None = None) -> Item:
    """Snapshot an Applied into an Item (``trace``: its sampled request's, if any)."""
    command = applied.command
    player_key = None if command.partner_id is None or command.player_id is None else (command.partner_id, command.player_id)
    item = Item(command, future, applied.result, player_key, applied.applied_at_us, applied.audit)
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
        item.new_player = NewPlayerRow(p.partner_id, p.player_id, p.country, p.status, created_by, applied.applied_at_us)
        item.new_currencies = list(p.wallets)
    item.status_change = applied.status_change
    item.reviews = applied.reviews
    item.rg_change = applied.rg_change
    item.trace = trace
    return item


@dataclass
class Batch:
    """Items of one batch, in apply order. ``seq`` is the shard's batch id."""

    seq: int
    items: list[Item] = field(default_factory=list)
    first_added_ns: int = 0
    traced: bool = False  # a group of this batch already recorded its prefetch and apply spans

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
                new = item.new_player
                write.new_players.append(new)
                for currency in item.new_currencies:
                    for kind in ("cash", "bonus"):
                        account = player_account(new.partner_id, new.player_id, kind)
                        balances[(account, currency)] = row(PlayerBalance, (new.partner_id, new.player_id, 0))
            if item.status_change is not None:
                write.status_changes[item.status_change[0]] = item.status_change[1]  # last wins
            if item.rg_change is not None:
                write.rg_settings[item.rg_change[0]] = item.rg_change[1]  # last wins
                write.rg_changed_at_us[item.rg_change[0]] = item.applied_at_us
            for txn in item.txn_rows:
                key = (txn.scope, txn.transaction_id)
                assert key not in seen, f"key {key} twice in one batch"
                seen.add(key)
                write.txns.append(txn)
                if txn.cash_delta_minor:
                    account = player_account(txn.partner_id, txn.player_id, "cash")
                    balances[(account, txn.currency)] = row(PlayerBalance, (txn.partner_id, txn.player_id, txn.cash_after_minor))
                if txn.bonus_delta_minor:
                    account = player_account(txn.partner_id, txn.player_id, "bonus")
                    balances[(account, txn.currency)] = row(PlayerBalance, (txn.partner_id, txn.player_id, txn.bonus_after_minor))
            for entry in item.entries:
                write.entries.append(entry)
                if entry.account.startswith("house:"):
                    k = (entry.account, entry.currency)
                    house[k] = house.get(k, 0) + entry.delta_minor
            for key, bet_state in item.bet_updates:
                write.bet_updates[key] = bet_state
            write.round_closes.update(item.round_closes)
            for txn_id, reason in item.reviews:
                (txn,) = [t for t in item.txn_rows if t.txn_id == txn_id]
                write.reviews.append(row(ReviewRow, (txn_id, txn.partner_id, txn.player_id, txn.scope,
                                                     reason, item.applied_at_us)))
            if item.txn_rows and item.result.code is Code.OK:
                _sportsbook_rows(write, item)
            if item.audited:
                command = item.command
                write.audits.append(row(AuditEntry, (
                    type(command).__struct_config__.tag, getattr(command, "scope", None),
                    getattr(command, "transaction_id", None), command.partner_id, command.player_id,
                    item.result.code.value, item.result.replayed, command, item.result,
                    item.applied_at_us, [r.txn_id for r in item.txn_rows],
                )))
        return write


def _sportsbook_rows(write: BatchWrite, item: Item) -> None:
    """The sportsbook rows of an applied item: a bet slip for each stake debit and a mark
    for each payout credit applied the first time (never for a replay). A bet marked twice
    in one batch keeps its last mark with its first mark's from-states, so storage applies
    one mark per bet with the states the bet had before the batch."""
    command = item.command
    if type(command) is Atomic:
        actions = [(a, r.replayed) for a, r in zip(command.actions, item.result.results, strict=True)]
    elif type(command) is Debit or type(command) is Credit:
        actions = [(command, item.result.replayed)]
    else:
        return
    for action, replayed in actions:
        if replayed:
            continue
        if type(action) is Debit and action.slip is not None:
            write.bet_slips.append(row(BetSlipRow, (action.partner_id, action.transaction_id, action.player_id,
                                                    action.currency, action.amount_minor, action.slip,
                                                    item.applied_at_us)))
        elif type(action) is Credit and action.mark is not None:
            key = (action.partner_id, action.mark.bet_id)
            mark = action.mark
            earlier = write.bet_marks.get(key)
            if earlier is not None:
                mark = msgspec.structs.replace(mark, from_states=earlier.mark.from_states)
            write.bet_marks[key] = row(BetMarkRow, (action.partner_id, mark, item.applied_at_us))
