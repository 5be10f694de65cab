"""A write-behind batch: applied commands waiting to become durable together.

Each ``Item`` snapshots, at apply time, the rows its command writes (plain tuples): later
commands may mutate the same in-memory records (a bet settled by a win in the next batch),
and a batch must commit exactly what was true when it was applied. Commands and Results are
frozen structs, so they are kept by reference. ``payload()`` turns the items into one
``BatchPayload`` and chains the audit records from the shard's committed audit head.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import msgspec

from gateway.ledger.audit import chain_hash
from gateway.ledger.store import BatchPayload, ts
from gateway.shards.apply import Applied, player_account
from gateway.shards.commands import Command, Result
from gateway.shards.state import (
    ROW_BONUS_AFTER,
    ROW_BONUS_DELTA,
    ROW_CASH_AFTER,
    ROW_CASH_DELTA,
    ROW_CURRENCY,
    ROW_PLAYER_ID,
    ROW_SCOPE,
    ROW_TRANSACTION_ID,
    Key,
)


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


_audit_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class Item:
    command: Command
    future: asyncio.Future | None
    result: Result
    player_id: str | None
    applied_at_us: int
    audited: bool
    txn_rows: list[tuple] = field(default_factory=list)
    entries: list[tuple[int, str, str, int]] = field(default_factory=list)
    bet_updates: list[tuple[Key, str]] = field(default_factory=list)
    round_closes: list[tuple[str, str, str]] = field(default_factory=list)
    new_player: tuple | None = None  # (player_id, country, status, created_by, [currencies])
    status_change: tuple[str, str] | None = None  # (player_id, status)

    @property
    def keys(self) -> list[Key]:
        return [(r[ROW_SCOPE], r[ROW_TRANSACTION_ID]) for r in self.txn_rows]

    @property
    def writes(self) -> bool:
        return self.audited or bool(self.txn_rows) or self.new_player is not None or self.status_change is not None


def make_item(applied: Applied, future: asyncio.Future | None, shard_id: int) -> Item:
    """Snapshot an Applied into an Item."""
    item = Item(applied.command, future, applied.result, applied.player_id, applied.applied_at_us, applied.audit)
    if applied.txns:
        item.txn_rows = [r.row(shard_id) for r in applied.txns]
        item.entries = applied.entries
    if applied.bet_updates:
        item.bet_updates = [(bet.key, bet.bet_state) for bet in applied.bet_updates]
    if applied.round_closes:
        item.round_closes = applied.round_closes
    if applied.new_player is not None:
        p = applied.new_player
        item.new_player = (p.player_id, p.country, p.status, getattr(applied.command, "scope", ""), list(p.wallets))
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

    def payload(
        self, shard_id: int, audit_seq: int, audit_hash: bytes, flushed_at_us: int
    ) -> tuple[BatchPayload, int, bytes]:
        """Build the rows; returns (payload, last audit seq, last audit hash)."""
        payload = BatchPayload(batch_id=self.seq)
        recorded_at = ts(flushed_at_us)
        accounts = payload.player_accounts
        house = payload.house_deltas
        seen: set[Key] = set()
        for item in self.items:
            if item.new_player is not None:
                player_id, country, status, created_by, currencies = item.new_player
                payload.new_players.append((player_id, country, status, created_by, ts(item.applied_at_us)))
                for currency in currencies:
                    accounts[(player_account(player_id, "cash"), currency)] = (player_id, 0)
                    accounts[(player_account(player_id, "bonus"), currency)] = (player_id, 0)
            if item.status_change is not None:
                payload.status_changes[item.status_change[0]] = item.status_change[1]  # last wins
            for row in item.txn_rows:
                key = (row[ROW_SCOPE], row[ROW_TRANSACTION_ID])
                assert key not in seen, f"key {key} twice in one batch"
                seen.add(key)
                payload.txns.append(row)
                player_id, currency = row[ROW_PLAYER_ID], row[ROW_CURRENCY]
                if row[ROW_CASH_DELTA]:
                    accounts[(player_account(player_id, "cash"), currency)] = (player_id, row[ROW_CASH_AFTER])
                if row[ROW_BONUS_DELTA]:
                    accounts[(player_account(player_id, "bonus"), currency)] = (player_id, row[ROW_BONUS_AFTER])
            for entry in item.entries:
                payload.entries.append(entry)
                if entry[1].startswith("house:"):
                    k = (entry[1], entry[2])
                    house[k] = house.get(k, 0) + entry[3]
            for key, bet_state in item.bet_updates:
                payload.bet_updates[key] = bet_state
            payload.round_closes.update(item.round_closes)
            if item.audited:
                audit_seq += 1
                command = item.command
                record = AuditRecord(
                    shard=shard_id, seq=audit_seq, batch_id=self.seq,
                    kind=type(command).__struct_config__.tag,
                    scope=getattr(command, "scope", None),
                    transaction_id=getattr(command, "transaction_id", None),
                    player_id=item.player_id, code=item.result.code.value,
                    replayed=item.result.replayed, request=command, result=item.result,
                    applied_at_us=item.applied_at_us, txn_ids=[r[0] for r in item.txn_rows],
                )
                record_bytes = _audit_encoder.encode(record)
                new_hash = chain_hash(audit_hash, record_bytes)
                payload.audit_rows.append((
                    shard_id, audit_seq, self.seq, recorded_at, record.kind, record.scope,
                    record.transaction_id, record.player_id, record.code,
                    record_bytes.decode(), audit_hash, new_hash,
                ))
                audit_hash = new_hash
        return payload, audit_seq, audit_hash
