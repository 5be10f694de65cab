"""PostgreSQL implementation of the shard's storage port (``gateway/shards/port.py``).

Protocol state lives in the shard; this module only moves rows, and owns what they become
in SQL: column order, the audit record's encoding and the audit hash chain head. A batch is
ONE statement, ``SELECT gateway_write_batch(p_shard_id => $1, ...)`` (migration 0004, with
named arguments), every row passed column-wise as arrays, sent outside an explicit
transaction so that its implicit transaction commits before the one reply. Inside, in order:

1. fence: ``SELECT epoch FROM shard_leases WHERE shard_id = $1 FOR SHARE`` must equal the
   epoch the shard claimed, else SQLSTATE GW001 -> ``FenceLost`` (docs/DESIGN.md section 6);
2. transactions: ``INSERT .. ON CONFLICT (scope, transaction_id) DO NOTHING``; if a key
   already existed the statement aborts with GW002 -> ``KeyConflict`` naming the keys, so the
   shard can re-apply with the stored outcomes (docs/DESIGN.md section 5, "let the unique
   constraint catch it and re-apply the batch");
3. new players, status changes, account balances (players absolute, house accounts by
   delta), entries, bet-state updates, round closes, audit rows.

Driver and server faults after which the same request may be sent again are raised as
``StorageUnavailable``; anything else is a bug or a broken invariant and propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import orjson

from gateway.ledger.audit import GENESIS_HASH, AuditRow, chain_batch
from gateway.shards.port import (
    BatchWrite,
    Claim,
    FenceLost,
    Heads,
    KeyConflict,
    PrefetchResult,
    StorageUnavailable,
    TxnRow,
    UsageRead,
)
from gateway.shards.responsible import WINNING_CREDIT_TYPES, RgSettings
from gateway.shards.state import Key, PlayerKey, RoundKey, TxRecord

_rg_decoder = msgspec.json.Decoder(RgSettings)
_rg_encoder = msgspec.json.Encoder()

# Database errors after which the same request may be retried: the connection or server
# went away, or the statement was cancelled. Anything else is a bug or a broken invariant.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.LockNotAvailableError,
    # asyncpg's client state after the server dropped the connection mid-COPY (asyncpg #784);
    # raised by pool.release() and masking the original AdminShutdownError.
    asyncpg.exceptions.InternalClientError,
    # "database is not currently accepting connections" (SQLSTATE 55000) at connect time.
    asyncpg.exceptions.ObjectNotInPrerequisiteStateError,
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def ts(us: int) -> datetime:
    """Microseconds since the Unix epoch as an aware UTC datetime (asyncpg timestamptz).

    Integer arithmetic only: no float rounding of the microseconds.
    """
    seconds, micros = divmod(us, 1_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micros)


# transactions columns as stored, in the order of the SELECT lists below.
TXN_COLUMNS = (
    "txn_id", "shard_id", "scope", "transaction_id", "kind", "partner_id", "player_id", "currency",
    "amount_minor", "code", "cash_after_minor", "bonus_after_minor", "cash_delta_minor",
    "bonus_delta_minor", "round_id", "game_id", "reference_id", "bet_state", "credit_type",
    "created_at",
)
_TXN_SELECT = ", ".join(TXN_COLUMNS)

# gateway_write_batch parameter of each TxnRow field (migration 0004).
_TXN_PARAMETERS = {
    "txn_id": "t_txn_id", "scope": "t_scope", "transaction_id": "t_transaction_id",
    "kind": "t_kind", "partner_id": "t_partner_id", "player_id": "t_player_id", "currency": "t_currency",
    "amount_minor": "t_amount_minor", "code": "t_code", "cash_after_minor": "t_cash_after",
    "bonus_after_minor": "t_bonus_after", "cash_delta_minor": "t_cash_delta",
    "bonus_delta_minor": "t_bonus_delta", "round_id": "t_round_id", "game_id": "t_game_id",
    "reference_id": "t_reference_id", "bet_state": "t_bet_state",
    "credit_type": "t_credit_type", "created_at_us": "t_created_at",
}
assert set(_TXN_PARAMETERS) == set(TxnRow._fields)


def record_from_row(row: asyncpg.Record) -> TxRecord:
    """A transactions row as the shard's TxRecord (``batch_seq`` 0: committed)."""
    return TxRecord(
        txn_id=row["txn_id"], scope=row["scope"], transaction_id=row["transaction_id"],
        kind=row["kind"], partner_id=row["partner_id"], player_id=row["player_id"], currency=row["currency"],
        amount_minor=row["amount_minor"], code=row["code"],
        cash_after_minor=row["cash_after_minor"], bonus_after_minor=row["bonus_after_minor"],
        cash_delta_minor=row["cash_delta_minor"], bonus_delta_minor=row["bonus_delta_minor"],
        round_id=row["round_id"], game_id=row["game_id"], reference_id=row["reference_id"],
        bet_state=row["bet_state"], credit_type=row["credit_type"], batch_seq=0,
        created_at_us=(row["created_at"] - _EPOCH) // _ONE_US,
    )


@asynccontextmanager
async def _transient_as_unavailable() -> AsyncIterator[None]:
    """Raise the driver's transient faults as the port's StorageUnavailable."""
    try:
        yield
    except TRANSIENT_ERRORS as exc:
        raise StorageUnavailable(repr(exc)) from exc


class LedgerStore:
    """``port.Storage`` for one shard on an asyncpg pool.

    Holds the shard's audit chain head (seq, hash): restored by ``load_heads``, advanced
    when a batch commits (``write_batch``, or ``batch_committed`` after an ambiguous
    commit). Not safe for concurrent ``write_batch`` calls: the shard sends one at a time.
    """

    def __init__(self, pool: asyncpg.Pool, shard_id: int) -> None:
        self.pool = pool
        self.shard_id = shard_id
        self.audit_seq = 0
        self.audit_hash = GENESIS_HASH
        # (batch id, audit seq, audit hash) of the last batch sent and not known committed.
        self._pending: tuple[int, int, bytes] | None = None

    async def claim(self, claimed_by: str, address: str, now_us: int) -> Claim:
        """Take this shard's lease (epoch + 1: any earlier holder's next batch is fenced off)
        and stamp the new epoch on the buckets the map gives it (gateway/ledger/shard_map.py
        lays the map out before shards start)."""
        async with _transient_as_unavailable(), self.pool.acquire() as conn, conn.transaction():
            epoch: int = await conn.fetchval(
                """INSERT INTO shard_leases (shard_id, epoch, claimed_at, claimed_by, address)
                   VALUES ($1, 1, $2, $3, $4)
                   ON CONFLICT (shard_id) DO UPDATE
                   SET epoch = shard_leases.epoch + 1, claimed_at = $2, claimed_by = $3, address = $4
                   RETURNING epoch""",
                self.shard_id, ts(now_us), claimed_by, address or None,
            )
            buckets = await conn.fetch(
                "UPDATE shard_buckets SET epoch = $2 WHERE shard_id = $1 RETURNING bucket", self.shard_id, epoch)
            revision = await conn.fetchval("SELECT revision FROM shard_map_state") or 0
        return Claim(epoch, frozenset(r["bucket"] for r in buckets), int(revision))

    async def load_heads(self) -> Heads:
        """The shard's last txn seq, last committed batch id and audit head (kept here)."""
        async with _transient_as_unavailable(), self.pool.acquire() as conn:
            txn_max = await conn.fetchval(
                "SELECT max(txn_id) FROM transactions WHERE txn_id >= $1 AND txn_id < $2",
                self.shard_id << 40, (self.shard_id + 1) << 40,
            )
            row = await conn.fetchrow(
                "SELECT seq, hash, batch_id FROM audit_log WHERE shard_id = $1 ORDER BY seq DESC LIMIT 1",
                self.shard_id,
            )
        txn_seq = (txn_max - (self.shard_id << 40)) if txn_max is not None else 0
        self._pending = None
        if row is None:
            self.audit_seq, self.audit_hash = 0, GENESIS_HASH
            return Heads(txn_seq=txn_seq, batch_id=0, audit_seq=0)
        self.audit_seq, self.audit_hash = row["seq"], bytes(row["hash"])
        return Heads(txn_seq=txn_seq, batch_id=row["batch_id"], audit_seq=row["seq"])

    async def prefetch(self, players: list[PlayerKey], keys: list[Key], rounds: list[RoundKey],
                       usage: UsageRead | None = None) -> PrefetchResult:
        """One round trip's worth of reads for cold players, unknown keys and rounds, and
        the window sums ``usage`` asks for (port.Storage.prefetch)."""
        result = PrefetchResult()
        usage_players: list[PlayerKey] = list(usage.players) if usage is not None else []
        async with _transient_as_unavailable(), self.pool.acquire() as conn:
            if players:
                partner_ids = [p[0] for p in players]
                player_ids = [p[1] for p in players]
                for row in await conn.fetch(
                    """SELECT p.partner_id, p.player_id, p.country, p.status, r.settings::text AS rg
                       FROM players p LEFT JOIN player_rg r USING (partner_id, player_id)
                       WHERE (p.partner_id, p.player_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))""",
                    partner_ids, player_ids,
                ):
                    key = (row["partner_id"], row["player_id"])
                    result.players[key] = (row["country"], row["status"])
                    result.wallets[key] = {}
                    if row["rg"] is not None:
                        settings = _rg_decoder.decode(row["rg"])
                        result.rg[key] = settings
                        if usage is not None and settings.has_money_limits():
                            usage_players.append(key)
                for row in await conn.fetch(
                    """SELECT partner_id, player_id, account, currency, balance_minor FROM accounts
                       WHERE (partner_id, player_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                       ORDER BY partner_id, player_id, currency, account""",
                    partner_ids, player_ids,
                ):
                    kind = row["account"].rsplit(":", 1)[1]
                    wallets = result.wallets[(row["partner_id"], row["player_id"])]
                    wallet = wallets.setdefault(row["currency"], [0, 0])
                    wallet[0 if kind == "cash" else 1] = row["balance_minor"]
                result.open_bets = [
                    record_from_row(r) for r in await conn.fetch(
                        f"""SELECT {_TXN_SELECT} FROM transactions
                            WHERE (partner_id, player_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                              AND bet_state = 'open'""",
                        partner_ids, player_ids,
                    )
                ]
            if usage is not None and usage_players:
                await self._usage(conn, usage_players, usage, result)
            if rounds:
                for r in await conn.fetch(
                    f"""SELECT {_TXN_SELECT} FROM transactions
                        WHERE (partner_id, player_id, scope, round_id) IN
                              (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]))
                          AND kind IN ('debit', 'tombstone')""",
                    [k[0] for k in rounds], [k[1] for k in rounds], [k[2] for k in rounds], [k[3] for k in rounds],
                ):
                    record = record_from_row(r)
                    rk = (record.partner_id, record.player_id, record.scope, record.round_id or "")
                    result.round_debits.setdefault(rk, []).append(record)
            if keys:
                result.records = [
                    record_from_row(r) for r in await conn.fetch(
                        f"""SELECT {_TXN_SELECT} FROM transactions
                            WHERE (scope, transaction_id) IN
                                  (SELECT * FROM unnest($1::text[], $2::text[]))""",
                        [k[0] for k in keys], [k[1] for k in keys],
                    )
                ]
        return result

    @staticmethod
    async def _usage(conn: asyncpg.Connection, players: list[PlayerKey], usage: UsageRead,
                     result: PrefetchResult) -> None:
        """Window sums of ``players`` from the ledger (port.UsageRead): applied cash deposits,
        stakes not rolled back, winning credits not reversed, per currency and bucket."""
        for key in players:
            result.usage[key] = []
        for row in await conn.fetch(
            """SELECT partner_id, player_id, currency,
                      (extract(epoch FROM date_bin($4::interval, created_at, timestamptz 'epoch'))::bigint)
                        * 1000000 AS bucket_us,
                      (sum(amount_minor) FILTER (WHERE kind = 'deposit' AND cash_delta_minor > 0))::bigint AS deposit,
                      (sum(amount_minor) FILTER (WHERE kind = 'debit'))::bigint AS wager,
                      (sum(amount_minor) FILTER (WHERE kind = 'credit' AND credit_type = ANY($5::text[])))::bigint AS won
               FROM transactions
               WHERE (partner_id, player_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                 AND created_at >= $3 AND code = 'ok' AND kind IN ('deposit', 'debit', 'credit')
                 AND bet_state IS DISTINCT FROM 'rolled_back'
               GROUP BY 1, 2, 3, 4
               ORDER BY 1, 2, 3, 4""",
            [k[0] for k in players], [k[1] for k in players], ts(usage.since_us),
            timedelta(microseconds=usage.bucket_us), sorted(WINNING_CREDIT_TYPES),
        ):
            result.usage[(row["partner_id"], row["player_id"])].append((
                row["currency"], row["bucket_us"], row["deposit"] or 0, row["wager"] or 0, row["won"] or 0))

    async def batch_committed(self, batch_id: int) -> bool:
        """Did batch ``batch_id`` of this shard commit? (Its audit rows exist.) If it did and
        it is the batch last sent, its audit head becomes the chain head."""
        async with _transient_as_unavailable(), self.pool.acquire() as conn:
            committed = bool(await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM audit_log WHERE shard_id = $1 AND batch_id = $2)",
                self.shard_id, batch_id,
            ))
        if committed and self._pending is not None and self._pending[0] == batch_id:
            _, self.audit_seq, self.audit_hash = self._pending
            self._pending = None
        return committed

    async def ping(self, timeout_s: float) -> None:
        """``SELECT 1`` within ``timeout_s`` (connection acquisition included)."""
        async def select_one() -> None:
            async with self.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")

        async with _transient_as_unavailable():
            await asyncio.wait_for(select_one(), timeout_s)

    async def write_batch(self, batch: BatchWrite, epoch: int) -> None:
        """Commit one batch: ONE statement, its implicit transaction commits before the reply.

        Raises FenceLost, KeyConflict or StorageUnavailable (port.py). The statement timeout
        is the pool's (``database.statement_timeout_ms``).
        """
        arguments, audit_seq, audit_hash = self._arguments(batch, epoch)
        self._pending = (batch.batch_id, audit_seq, audit_hash)
        try:
            async with _transient_as_unavailable(), self.pool.acquire() as conn:
                if not batch.rg_settings:
                    await conn.fetchval(_WRITE_BATCH, *(arguments[name] for name in WRITE_BATCH_PARAMETERS))
                else:  # rare (a person changed a limit): the settings join the batch's transaction
                    async with conn.transaction():
                        await conn.fetchval(_WRITE_BATCH, *(arguments[name] for name in WRITE_BATCH_PARAMETERS))
                        changed = list(batch.rg_settings.items())
                        await conn.execute(
                            """INSERT INTO player_rg (partner_id, player_id, settings, updated_at)
                               SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[])
                               ON CONFLICT (partner_id, player_id)
                               DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at""",
                            [k[0] for k, _ in changed], [k[1] for k, _ in changed],
                            [_rg_encoder.encode(v).decode() for _, v in changed],
                            [ts(batch.rg_changed_at_us[k]) for k, _ in changed],
                        )
        except asyncpg.PostgresError as exc:
            self._pending = None
            if exc.sqlstate == "GW001":
                raise FenceLost(exc.args[0] if exc.args else "lease epoch moved") from None
            if exc.sqlstate == "GW002":
                raise KeyConflict([tuple(k) for k in orjson.loads(exc.detail or "[]")]) from None
            raise
        self._pending = None
        self.audit_seq, self.audit_hash = audit_seq, audit_hash

    def _arguments(self, batch: BatchWrite, epoch: int) -> tuple[dict[str, Any], int, bytes]:
        """The function's arguments by parameter name, and the audit head after the batch."""
        args: dict[str, Any] = {"p_shard_id": self.shard_id, "p_epoch": epoch}
        txns = batch.txns
        columns: Sequence[Sequence[Any]] = list(zip(*txns, strict=True)) if txns else [() for _ in TxnRow._fields]
        for name, column in zip(TxnRow._fields, columns, strict=True):
            args[_TXN_PARAMETERS[name]] = [ts(us) for us in column] if name == "created_at_us" else list(column)
        p = batch.new_players
        args.update(
            n_partner_id=[x.partner_id for x in p],
            n_player_id=[x.player_id for x in p], n_country=[x.country for x in p],
            n_status=[x.status for x in p], n_created_by=[x.created_by for x in p],
            n_created_at=[ts(x.created_at_us) for x in p],
        )
        accounts = sorted(batch.player_balances.items())
        args.update(
            a_account=[k[0] for k, _ in accounts], a_currency=[k[1] for k, _ in accounts],
            a_partner_id=[v.partner_id for _, v in accounts], a_player_id=[v.player_id for _, v in accounts],
            a_balance=[v.balance_minor for _, v in accounts],
        )
        house = sorted(batch.house_deltas.items())
        args.update(h_account=[k[0] for k, _ in house], h_currency=[k[1] for k, _ in house],
                    h_delta=[v for _, v in house])
        e = batch.entries
        args.update(e_txn_id=[x.txn_id for x in e], e_account=[x.account for x in e],
                    e_currency=[x.currency for x in e], e_delta=[x.delta_minor for x in e])
        bets = list(batch.bet_updates.items())
        args.update(b_scope=[k[0] for k, _ in bets], b_transaction_id=[k[1] for k, _ in bets],
                    b_state=[v for _, v in bets])
        rounds = sorted(batch.round_closes)
        args.update(r_partner_id=[x.partner_id for x in rounds],
                    r_player_id=[x.player_id for x in rounds], r_scope=[x.scope for x in rounds],
                    r_round_id=[x.round_id for x in rounds])
        rows, seq, head = chain_batch(self.shard_id, self.audit_seq, self.audit_hash, batch,
                                      ts(batch.flushed_at_us))
        audit_columns: Sequence[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [() for _ in AuditRow._fields]
        for name, column in zip(_AUDIT_PARAMETERS, audit_columns, strict=True):
            args[name] = list(column)
        reviews = batch.reviews
        args.update(v_txn_id=[x.txn_id for x in reviews], v_partner_id=[x.partner_id for x in reviews],
                    v_player_id=[x.player_id for x in reviews], v_scope=[x.scope for x in reviews],
                    v_reason=[x.reason for x in reviews], v_created_at=[ts(x.created_at_us) for x in reviews])
        changes = list(batch.status_changes.items())
        args.update(s_partner_id=[k[0] for k, _ in changes], s_player_id=[k[1] for k, _ in changes],
                    s_status=[v for _, v in changes])
        slips = batch.bet_slips
        args.update(
            k_partner_id=[x.partner_id for x in slips], k_bet_id=[x.bet_id for x in slips],
            k_player_id=[x.player_id for x in slips], k_currency=[x.currency for x in slips],
            k_bet_type=[x.slip.bet_type for x in slips], k_terms=[x.slip.terms_json for x in slips],
            k_legs=[x.slip.legs_json for x in slips], k_lines=[x.slip.lines for x in slips],
            k_outlay=[x.outlay_minor for x in slips], k_potential=[x.slip.potential_return_minor for x in slips],
            k_created_at=[ts(x.created_at_us) for x in slips],
            g_partner_id=[x.partner_id for x in slips for _ in x.slip.leg_markets],
            g_bet_id=[x.bet_id for x in slips for _ in x.slip.leg_markets],
            g_leg_no=[n for x in slips for n in range(len(x.slip.leg_markets))],
            g_market_id=[m for x in slips for m in x.slip.leg_markets],
            g_selection_id=[sel for x in slips for sel in x.slip.leg_selections],
        )
        marks = list(batch.bet_marks.values())
        args.update(
            m_partner_id=[x.partner_id for x in marks], m_bet_id=[x.mark.bet_id for x in marks],
            m_state=[x.mark.state for x in marks], m_return=[x.mark.return_minor for x in marks],
            m_settled_by=[x.mark.settled_by for x in marks], m_payout_txn=[x.mark.payout_txn for x in marks],
            m_from_states=[",".join(x.mark.from_states) for x in marks],
            m_continued_as=[x.mark.continued_as for x in marks], m_cash=[x.mark.cash_minor for x in marks],
            m_settled_at=[ts(x.marked_at_us) for x in marks],
        )
        return args, seq, head


# gateway_write_batch parameter of each AuditRow field, in AuditRow order.
_AUDIT_PARAMETERS = ("l_seq", "l_batch_id", "l_recorded_at", "l_kind", "l_scope", "l_transaction_id",
                     "l_partner_id", "l_player_id", "l_code", "l_record", "l_prev_hash", "l_hash")

assert len(_AUDIT_PARAMETERS) == len(AuditRow._fields)

#: gateway_write_batch's parameters (migration 0009), passed by name.
WRITE_BATCH_PARAMETERS = (
    "p_shard_id", "p_epoch", *_TXN_PARAMETERS.values(),
    "n_partner_id", "n_player_id", "n_country", "n_status", "n_created_by", "n_created_at",
    "a_account", "a_currency", "a_partner_id", "a_player_id", "a_balance",
    "h_account", "h_currency", "h_delta",
    "e_txn_id", "e_account", "e_currency", "e_delta",
    "b_scope", "b_transaction_id", "b_state",
    "r_partner_id", "r_player_id", "r_scope", "r_round_id",
    *_AUDIT_PARAMETERS,
    "s_partner_id", "s_player_id", "s_status",
    "v_txn_id", "v_partner_id", "v_player_id", "v_scope", "v_reason", "v_created_at",
    "k_partner_id", "k_bet_id", "k_player_id", "k_currency", "k_bet_type", "k_terms", "k_legs", "k_lines",
    "k_outlay", "k_potential", "k_created_at",
    "g_partner_id", "g_bet_id", "g_leg_no", "g_market_id", "g_selection_id",
    "m_partner_id", "m_bet_id", "m_state", "m_return", "m_settled_by", "m_payout_txn", "m_from_states",
    "m_continued_as", "m_cash", "m_settled_at",
)
_WRITE_BATCH = "SELECT gateway_write_batch(" + ", ".join(
    f"{name} => ${i}" for i, name in enumerate(WRITE_BATCH_PARAMETERS, start=1)) + ")"
