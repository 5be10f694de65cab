"""PostgreSQL I/O of a shard: claim its lease, prefetch cold state, commit a batch.

Protocol state lives in the shard (``gateway/shards``); this module only moves rows. A batch
is ONE statement, ``SELECT gateway_write_batch(...)`` (migration 0002), with every row passed
as arrays, sent outside an explicit transaction so that its implicit transaction commits
before the one reply. Inside, in order:

1. fence: ``SELECT epoch FROM shard_leases WHERE shard_id = $1 FOR SHARE`` must equal the
   epoch the shard claimed, else SQLSTATE GW001 -> ``FenceError`` (DESIGN.md section 6);
2. transactions: ``INSERT .. ON CONFLICT (scope, transaction_id) DO NOTHING``; if a key
   already existed the statement aborts with GW002 -> ``KeyConflict`` naming the keys, so the
   shard can re-apply with the stored outcomes (DESIGN.md section 5, "let the unique
   constraint catch it and re-apply the batch");
3. new players, account balances (players absolute, house accounts by delta), entries,
   bet-state updates, round closes, audit rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import asyncpg
import orjson

from gateway.shards.state import ROW_CREATED_AT, TXN_COLUMNS, Key, TxRecord


class FenceError(Exception):
    """The shard's lease epoch moved: another owner holds its buckets. Fatal for the shard."""


class KeyConflict(Exception):
    """Some idempotency keys of the batch already exist in the database."""

    def __init__(self, keys: list[Key]) -> None:
        super().__init__(f"{len(keys)} idempotency keys already stored")
        self.keys = keys


def ts(us: int) -> datetime:
    """Microseconds since the Unix epoch as an aware UTC datetime (asyncpg timestamptz).

    Integer arithmetic only: no float rounding of the microseconds.
    """
    seconds, micros = divmod(us, 1_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=micros)


@dataclass
class BatchPayload:
    """Rows of one batch, column-wise where they go through unnest."""

    batch_id: int
    txns: list[tuple] = field(default_factory=list)  # TxRecord.row() snapshots
    new_players: list[tuple[str, str, str, str, datetime]] = field(default_factory=list)  # id, country, status, by, at
    status_changes: dict[str, str] = field(default_factory=dict)  # player_id -> status, applied after new_players
    player_accounts: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)  # (account, cur) -> (player, balance)
    house_deltas: dict[tuple[str, str], int] = field(default_factory=dict)  # (account, cur) -> delta
    entries: list[tuple[int, str, str, int]] = field(default_factory=list)
    bet_updates: dict[Key, str] = field(default_factory=dict)  # key -> bet_state
    round_closes: set[tuple[str, str, str]] = field(default_factory=set)  # (player, scope, round)
    audit_rows: list[tuple] = field(default_factory=list)


_TXN_COLUMNS = ", ".join(TXN_COLUMNS)


def record_from_row(row: asyncpg.Record) -> TxRecord:
    return TxRecord(
        txn_id=row["txn_id"], scope=row["scope"], transaction_id=row["transaction_id"],
        kind=row["kind"], player_id=row["player_id"], currency=row["currency"],
        amount_minor=row["amount_minor"], code=row["code"],
        cash_after_minor=row["cash_after_minor"], bonus_after_minor=row["bonus_after_minor"],
        cash_delta_minor=row["cash_delta_minor"], bonus_delta_minor=row["bonus_delta_minor"],
        round_id=row["round_id"], game_id=row["game_id"], reference_id=row["reference_id"],
        bet_state=row["bet_state"], credit_type=row["credit_type"], batch_seq=0,
    )


@dataclass
class PrefetchResult:
    players: dict[str, tuple[str, str]]  # player_id -> (country, status)
    wallets: dict[str, dict[str, list[int]]]  # player_id -> currency -> [cash, bonus]
    open_bets: list[TxRecord]
    records: list[TxRecord]  # looked-up keys that exist


class LedgerStore:
    """Reads and writes of one shard. Every method may raise asyncpg / OSError on I/O faults."""

    def __init__(self, pool: asyncpg.Pool, shard_id: int) -> None:
        self.pool = pool
        self.shard_id = shard_id

    async def claim(self, bucket_count: int, claimed_by: str, now_us: int) -> int:
        """Take this shard's lease (epoch + 1) and every bucket it should own; returns the epoch.

        With one shard process all buckets belong to shard 0. Buckets assigned to another
        shard are left alone.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            epoch = await conn.fetchval(
                """INSERT INTO shard_leases (shard_id, epoch, claimed_at, claimed_by)
                   VALUES ($1, 1, $2, $3)
                   ON CONFLICT (shard_id) DO UPDATE
                   SET epoch = shard_leases.epoch + 1, claimed_at = $2, claimed_by = $3
                   RETURNING epoch""",
                self.shard_id, ts(now_us), claimed_by,
            )
            await conn.execute(
                """INSERT INTO shard_buckets (bucket, shard_id, epoch)
                   SELECT b, $1, $2 FROM generate_series(0, $3 - 1) AS b
                   ON CONFLICT (bucket) DO UPDATE SET epoch = EXCLUDED.epoch
                   WHERE shard_buckets.shard_id = EXCLUDED.shard_id""",
                self.shard_id, epoch, bucket_count,
            )
        return epoch

    async def load_heads(self) -> tuple[int, int, bytes | None, int]:
        """(last txn seq, last audit seq, last audit hash, last batch id) of this shard."""
        async with self.pool.acquire() as conn:
            txn_max = await conn.fetchval(
                "SELECT max(txn_id) FROM transactions WHERE txn_id >= $1 AND txn_id < $2",
                self.shard_id << 40, (self.shard_id + 1) << 40,
            )
            row = await conn.fetchrow(
                "SELECT seq, hash, batch_id FROM audit_log WHERE shard_id = $1 ORDER BY seq DESC LIMIT 1",
                self.shard_id,
            )
        txn_seq = (txn_max - (self.shard_id << 40)) if txn_max is not None else 0
        if row is None:
            return txn_seq, 0, None, 0
        return txn_seq, row["seq"], bytes(row["hash"]), row["batch_id"]

    async def prefetch(self, player_ids: list[str], keys: list[Key]) -> PrefetchResult:
        """One round trip's worth of reads for cold players and unknown keys."""
        result = PrefetchResult({}, {}, [], [])
        async with self.pool.acquire() as conn:
            if player_ids:
                for row in await conn.fetch(
                    "SELECT player_id, country, status FROM players WHERE player_id = ANY($1::text[])",
                    player_ids,
                ):
                    result.players[row["player_id"]] = (row["country"], row["status"])
                    result.wallets[row["player_id"]] = {}
                for row in await conn.fetch(
                    """SELECT player_id, account, currency, balance_minor FROM accounts
                       WHERE player_id = ANY($1::text[]) ORDER BY player_id, currency, account""",
                    player_ids,
                ):
                    kind = row["account"].rsplit(":", 1)[1]
                    wallet = result.wallets[row["player_id"]].setdefault(row["currency"], [0, 0])
                    wallet[0 if kind == "cash" else 1] = row["balance_minor"]
                result.open_bets = [
                    record_from_row(r) for r in await conn.fetch(
                        f"""SELECT {_TXN_COLUMNS} FROM transactions
                            WHERE player_id = ANY($1::text[]) AND bet_state = 'open'""",
                        player_ids,
                    )
                ]
            if keys:
                result.records = [
                    record_from_row(r) for r in await conn.fetch(
                        f"""SELECT {_TXN_COLUMNS} FROM transactions
                            WHERE (scope, transaction_id) IN
                                  (SELECT * FROM unnest($1::text[], $2::text[]))""",
                        [k[0] for k in keys], [k[1] for k in keys],
                    )
                ]
        return result

    async def batch_committed(self, batch_id: int) -> bool:
        """Did batch ``batch_id`` of this shard commit? (Its audit rows exist.)"""
        async with self.pool.acquire() as conn:
            return bool(await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM audit_log WHERE shard_id = $1 AND batch_id = $2)",
                self.shard_id, batch_id,
            ))

    async def write_batch(self, payload: BatchPayload, epoch: int) -> None:
        """Commit one batch: ONE statement, its implicit transaction commits before the reply.

        Raises FenceError, KeyConflict, or the driver's I/O / server errors. The statement
        timeout is the pool's (``database.statement_timeout_ms``).
        """
        t = payload.txns
        txn_columns = [list(c) for c in zip(*t)] if t else [[] for _ in TXN_COLUMNS]
        txn_columns[ROW_CREATED_AT] = [ts(us) for us in txn_columns[ROW_CREATED_AT]]
        del txn_columns[1]  # shard_id: the function's own parameter
        p = payload.new_players
        accounts = sorted(payload.player_accounts.items())
        house = sorted(payload.house_deltas.items())
        e = payload.entries
        bets = list(payload.bet_updates.items())
        rounds = sorted(payload.round_closes)
        a = payload.audit_rows
        args = [
            self.shard_id, epoch, *txn_columns,
            [x[0] for x in p], [x[1] for x in p], [x[2] for x in p], [x[3] for x in p], [x[4] for x in p],
            [k[0] for k, _ in accounts], [k[1] for k, _ in accounts], [v[0] for _, v in accounts], [v[1] for _, v in accounts],
            [k[0] for k, _ in house], [k[1] for k, _ in house], [v for _, v in house],
            [x[0] for x in e], [x[1] for x in e], [x[2] for x in e], [x[3] for x in e],
            [k[0] for k, _ in bets], [k[1] for k, _ in bets], [v for _, v in bets],
            [x[0] for x in rounds], [x[1] for x in rounds], [x[2] for x in rounds],
            *([x[i] for x in a] for i in range(1, 12)),
            list(payload.status_changes), list(payload.status_changes.values()),
        ]
        try:
            async with self.pool.acquire() as conn:
                await conn.fetchval(_WRITE_BATCH, *args)
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == "GW001":
                raise FenceError(exc.args[0] if exc.args else "lease epoch moved") from None
            if exc.sqlstate == "GW002":
                raise KeyConflict([tuple(k) for k in orjson.loads(exc.detail or "[]")]) from None
            raise


_WRITE_BATCH = "SELECT gateway_write_batch(" + ", ".join(f"${i}" for i in range(1, 56)) + ")"


async def prune_idempotency_keys(conn: asyncpg.Connection, retention_days: int, batch_rows_max: int = 10_000) -> int:
    """Delete stored outcomes older than ``retention_days`` (DESIGN.md section 5); returns rows deleted.

    Open bets are kept whatever their age (a win or rollback may still come). Ledger entries
    and audit records are history and are never deleted. Deletes in chunks of
    ``batch_rows_max`` so no long lock is held on a live table.
    """
    assert retention_days >= 1 and batch_rows_max >= 1
    total = 0
    while True:
        deleted = await conn.fetchval(
            """WITH doomed AS (
                   SELECT txn_id FROM transactions
                   WHERE created_at < now() - make_interval(days => $1)
                     AND bet_state IS DISTINCT FROM 'open'
                   LIMIT $2)
               , gone AS (DELETE FROM transactions t USING doomed d WHERE t.txn_id = d.txn_id RETURNING 1)
               SELECT count(*) FROM gone""",
            retention_days, batch_rows_max,
        )
        total += deleted
        if deleted < batch_rows_max:
            return total

