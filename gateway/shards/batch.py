"""A write-behind batch: applied commands waiting to become durable together.

Each ``Item`` snapshots, at apply time, the rows its command writes: later commands may
mutate the same in-memory records (a bet settled by a win in the next batch), and a batch
must commit exactly what was true when it was sealed. ``payload()`` turns the items into one
``BatchPayload`` and chains the audit records from the shard's committed audit head.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field

import msgspec

from gateway.ledger.audit import canonical, chain_hash, command_inputs
from gateway.ledger.store import BatchPayload, ts
from gateway.shards.apply import Applied, player_account
from gateway.shards.commands import Result
from gateway.shards.state import Key


@dataclass(slots=True)
class Item:
    command: object
    future: asyncio.Future | None
    result: Result
    player_id: str | None
    txn_rows: list = field(default_factory=list)  # TxRecord copies
    entries: list[tuple[int, str, str, int]] = field(default_factory=list)
    balances: list[tuple[tuple[str, str], tuple[str, int]]] = field(default_factory=list)
    bet_updates: list[tuple[Key, str]] = field(default_factory=list)
    round_closes: list[tuple[str, str, str]] = field(default_factory=list)
    new_player: tuple | None = None
    audit: dict | None = None

    @property
    def keys(self) -> list[Key]:
        return [r.key for r in self.txn_rows]


def make_item(applied: Applied, future: asyncio.Future | None, shard_id: int) -> Item:
    """Snapshot an Applied into an Item (copies of mutable records)."""
    item = Item(applied.command, future, applied.result, applied.player_id)
    for record in applied.txns:
        item.txn_rows.append(copy.copy(record))
        if record.cash_delta_minor:
            item.balances.append(((player_account(record.player_id, "cash"), record.currency),
                                  (record.player_id, record.cash_after_minor)))
        if record.bonus_delta_minor:
            item.balances.append(((player_account(record.player_id, "bonus"), record.currency),
                                  (record.player_id, record.bonus_after_minor)))
    item.entries = [(e.txn_id, e.account, e.currency, e.delta_minor) for e in applied.entries]
    item.bet_updates = [(bet.key, bet.bet_state) for bet in applied.bet_updates]
    item.round_closes = list(applied.round_closes)
    if applied.new_player is not None:
        p = applied.new_player
        scope = getattr(applied.command, "scope", "")
        item.new_player = (p.player_id, p.country, p.status, scope, ts(applied.applied_at_us))
        for currency in p.wallets:
            for kind in ("cash", "bonus"):
                item.balances.append(((player_account(p.player_id, kind), currency), (p.player_id, 0)))
    if applied.audit:
        command = applied.command
        origin = getattr(command, "origin", None)
        item.audit = {
            "shard": shard_id,
            "kind": type(command).__struct_config__.tag,
            "scope": getattr(command, "scope", None),
            "transaction_id": getattr(command, "transaction_id", None),
            "player_id": applied.player_id,
            "code": applied.result.code.value,
            "replayed": applied.result.replayed,
            "request": command_inputs(command),
            "result": msgspec.to_builtins(applied.result),
            "origin": msgspec.to_builtins(origin) if origin is not None else None,
            "applied_at_us": applied.applied_at_us,
            "txn_ids": [r.txn_id for r in applied.txns],
        }
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
        seen: set[Key] = set()
        for item in self.items:
            for row in item.txn_rows:
                assert row.key not in seen, f"key {row.key} twice in one batch"
                seen.add(row.key)
                payload.txns.append(row)
            if item.new_player is not None:
                payload.new_players.append(item.new_player)
            for account, value in item.balances:
                payload.player_accounts[account] = value
            for entry in item.entries:
                payload.entries.append(entry)
                if entry[1].startswith("house:"):
                    k = (entry[1], entry[2])
                    payload.house_deltas[k] = payload.house_deltas.get(k, 0) + entry[3]
            for key, bet_state in item.bet_updates:
                payload.bet_updates[key] = bet_state
            payload.round_closes.update(item.round_closes)
            if item.audit is not None:
                audit_seq += 1
                record = dict(item.audit, seq=audit_seq, batch_id=self.seq)
                record_bytes = canonical(record)
                new_hash = chain_hash(audit_hash, record_bytes)
                payload.audit_rows.append((
                    shard_id, audit_seq, self.seq, recorded_at, record["kind"], record["scope"],
                    record["transaction_id"], record["player_id"], record["code"],
                    record_bytes.decode(), audit_hash, new_hash,
                ))
                audit_hash = new_hash
        return payload, audit_seq, audit_hash
