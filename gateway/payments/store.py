"""The payment tables (migration 0011): deposits, withdrawals, their history, PSP
notifications and KYC statuses. I/O only: the rules are in ``rules.py``.

Every state change is a conditional ``UPDATE ... WHERE state = ANY(<from>)``, so two edges
racing on one payment (a cancel and a payout, two deliveries of one notification) cannot
both move it; each change writes its history row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from gateway.payments.events import PspEvent

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ts(us: int) -> datetime:
    """µs since the epoch as an aware UTC datetime (integer arithmetic)."""
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True)
class Payment:
    """A deposit or withdrawal row."""

    kind: str  # deposit|withdrawal
    partner_id: str
    merchant_reference: str
    player_id: str
    currency: str
    amount_minor: int
    psp: str
    state: str
    psp_reference: str | None
    refusal_code: str | None
    review_reasons: tuple[str, ...]
    created_at: datetime
    updated_at: datetime


_TABLES = {"deposit": "payment_deposits", "withdrawal": "payment_withdrawals"}


def _payment(kind: str, row: asyncpg.Record) -> Payment:
    return Payment(kind, row["partner_id"], row["merchant_reference"], row["player_id"], row["currency"],
                   row["amount_minor"], row["psp"], row["state"], row["psp_reference"], row["refusal_code"],
                   tuple(row["review_reasons"]) if kind == "withdrawal" else (), row["created_at"], row["updated_at"])


class PaymentStore:
    """The payment tables on a bounded asyncpg pool (``payments.pool_size_max``)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ---- deposits and withdrawals ----------------------------------------------------

    async def insert(self, kind: str, partner_id: str, reference: str, player_id: str, currency: str,
                     amount_minor: int, psp: str, state: str, cause: str, now_us: int) -> tuple[Payment, bool] | None:
        """Insert a new payment in ``state``; (the stored payment, True if it is new). An
        existing one is returned as it is (the caller compares the terms). None: the player
        does not exist."""
        table = _TABLES[kind]
        try:
            return await self._insert(table, kind, partner_id, reference, player_id, currency, amount_minor, psp,
                                      state, cause, now_us)
        except asyncpg.ForeignKeyViolationError:
            return None

    async def _insert(self, table: str, kind: str, partner_id: str, reference: str, player_id: str, currency: str,
                      amount_minor: int, psp: str, state: str, cause: str, now_us: int) -> tuple[Payment, bool]:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""INSERT INTO {table} (partner_id, merchant_reference, player_id, currency, amount_minor, psp,
                                        state, created_at, updated_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
                    ON CONFLICT (partner_id, merchant_reference) DO NOTHING
                    RETURNING *""",
                partner_id, reference, player_id, currency, amount_minor, psp, state, ts(now_us))
            if row is not None:
                await self._history(conn, partner_id, kind, reference, state, cause, "", now_us)
                return _payment(kind, row), True
            row = await conn.fetchrow(f"SELECT * FROM {table} WHERE partner_id = $1 AND merchant_reference = $2",
                                      partner_id, reference)
        assert row is not None
        return _payment(kind, row), False

    async def get(self, kind: str, partner_id: str, reference: str) -> Payment | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(f"SELECT * FROM {_TABLES[kind]} WHERE partner_id = $1 AND merchant_reference = $2",
                                      partner_id, reference)
        return None if row is None else _payment(kind, row)

    async def deposit_by_psp_reference(self, partner_id: str, psp: str, psp_reference: str) -> Payment | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                """SELECT * FROM payment_deposits WHERE partner_id = $1 AND psp = $2 AND psp_reference = $3
                   ORDER BY created_at LIMIT 1""", partner_id, psp, psp_reference)
        return None if row is None else _payment("deposit", row)

    async def transition(self, kind: str, partner_id: str, reference: str, from_states: Sequence[str], to_state: str,
                         cause: str, detail: str, now_us: int, *, psp_reference: str | None = None,
                         refusal_code: str | None = None, review_reasons: Sequence[str] | None = None) -> bool:
        """Move the payment from one of ``from_states`` to ``to_state``; False if it was in
        none of them (someone else moved it first). Writes the history row."""
        table = _TABLES[kind]
        extra = ", review_reasons = $8" if kind == "withdrawal" and review_reasons is not None else ""
        args: list = [partner_id, reference, list(from_states), to_state, ts(now_us), psp_reference, refusal_code]
        if extra:
            args.append(list(review_reasons or ()))
        async with self.pool.acquire() as conn, conn.transaction():
            moved = await conn.fetchval(
                f"""UPDATE {table} SET state = $4, updated_at = $5,
                           psp_reference = coalesce($6, psp_reference), refusal_code = coalesce($7, refusal_code){extra}
                    WHERE partner_id = $1 AND merchant_reference = $2 AND state = ANY($3::text[])
                    RETURNING 1""", *args)
            if moved is None:
                return False
            await self._history(conn, partner_id, kind, reference, to_state, cause, detail, now_us)
        return True

    async def note(self, kind: str, partner_id: str, reference: str, state: str, cause: str, detail: str,
                   now_us: int) -> None:
        """A history row without a state change (e.g. a notification that changes nothing)."""
        async with self.pool.acquire() as conn:
            await self._history(conn, partner_id, kind, reference, state, cause, detail, now_us)

    @staticmethod
    async def _history(conn: asyncpg.Connection, partner_id: str, kind: str, reference: str, state: str,
                       cause: str, detail: str, now_us: int) -> None:
        await conn.execute(
            """INSERT INTO payment_history (partner_id, payment_kind, merchant_reference, state, cause, detail, at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            partner_id, kind, reference, state, cause[:256], detail[:1024], ts(now_us))

    async def history(self, kind: str, partner_id: str, reference: str, limit: int = 200) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return await conn.fetch(
                """SELECT state, cause, detail, at FROM payment_history
                   WHERE partner_id = $1 AND payment_kind = $2 AND merchant_reference = $3 ORDER BY id LIMIT $4""",
                partner_id, kind, reference, limit)

    async def money_events(self, integration: str, psp_reference: str, limit: int = 200) -> list[asyncpg.Record]:
        """Applied refunds, chargebacks and reversals of the payment ``psp_reference``, and
        the failures of those refunds (which name the refund, not the payment)."""
        async with self.pool.acquire() as conn:
            return await conn.fetch(
                """WITH direct AS (
                       SELECT kind, amount_minor, psp_reference, applied_at FROM psp_events
                       WHERE integration = $1 AND related_reference = $2 AND state = 'applied' LIMIT $3)
                   SELECT * FROM direct
                   UNION ALL
                   SELECT e.kind, e.amount_minor, e.psp_reference, e.applied_at FROM psp_events e
                   WHERE e.integration = $1 AND e.kind = 'refund_failed' AND e.state = 'applied'
                     AND e.related_reference IN (SELECT psp_reference FROM direct WHERE kind = 'refund')""",
                integration, psp_reference, limit)

    # ---- notifications ---------------------------------------------------------------

    async def receive(self, integration: str, partner_id: str, event: PspEvent, raw: str, now_us: int) -> str:
        """Store a notification item (raw) unless it is stored already; returns its state
        ("received" for a new one, else what became of it, with its delivery counted)."""
        async with self.pool.acquire() as conn:
            return await conn.fetchval(
                """INSERT INTO psp_events (integration, event_key, partner_id, event_type, kind, money_key,
                                          psp_reference, related_reference, merchant_reference, currency,
                                          amount_minor, state, detail, raw, received_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'received', $12, $13, $14)
                   ON CONFLICT (integration, event_key) DO UPDATE SET deliveries = psp_events.deliveries + 1
                   RETURNING state""",
                integration, event.event_key, partner_id, event.event_type, event.kind, event.money_key or None,
                event.psp_reference or None, event.related_reference or None, event.merchant_reference or None,
                event.currency or None, event.amount_minor, event.detail, raw, ts(now_us))

    async def settle_event(self, integration: str, event_key: str, state: str, detail: str, now_us: int) -> None:
        """Record what became of a notification. "applied" is final: a concurrent delivery of
        the same item that decided earlier (to park it) never overwrites it."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                """UPDATE psp_events SET state = $3, detail = $4,
                          applied_at = CASE WHEN $3 = 'applied' THEN $5 ELSE applied_at END
                   WHERE integration = $1 AND event_key = $2 AND state <> 'applied'""",
                integration, event_key, state, detail[:1024], ts(now_us))

    async def all_parked(self, integration: str, limit: int) -> list[PspEvent]:
        """The oldest parked notifications of ``integration`` (the periodic re-check)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT related_reference FROM psp_events WHERE integration = $1 AND state = 'parked' "
                "ORDER BY received_at LIMIT $2", integration, limit)
        return await self.parked(integration, sorted({r["related_reference"] for r in rows if r["related_reference"]}),
                                 limit)

    async def applied(self, integration: str, kinds: Sequence[str], reference: str) -> asyncpg.Record | None:
        """An applied notification of one of ``kinds`` naming ``reference`` (as its own PSP
        reference or the payment it refers to), oldest first."""
        async with self.pool.acquire() as conn:
            return await conn.fetchrow(
                """SELECT kind, psp_reference, related_reference FROM psp_events
                   WHERE integration = $1 AND kind = ANY($2::text[]) AND state = 'applied'
                     AND (psp_reference = $3 OR related_reference = $3)
                   ORDER BY applied_at LIMIT 1""", integration, list(kinds), reference)

    async def parked(self, integration: str, references: Sequence[str], limit: int) -> list[PspEvent]:
        """Parked notifications waiting for one of ``references``, oldest first."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT * FROM psp_events WHERE integration = $1 AND state = 'parked'
                     AND related_reference = ANY($2::text[]) ORDER BY received_at LIMIT $3""",
                integration, list(references), limit)
        return [PspEvent(event_key=r["event_key"], event_type=r["event_type"], kind=r["kind"],
                         money_key=r["money_key"] or "", psp_reference=r["psp_reference"] or "",
                         related_reference=r["related_reference"] or "", merchant_reference=r["merchant_reference"] or "",
                         currency=r["currency"] or "", amount_minor=r["amount_minor"] or 0, detail=r["detail"])
                for r in rows]

    async def events_of(self, partner_id: str, merchant_reference: str, limit: int = 200) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return await conn.fetch(
                """SELECT integration, event_type, kind, state, amount_minor, currency, psp_reference, received_at,
                          deliveries, detail FROM psp_events
                   WHERE partner_id = $1 AND merchant_reference = $2 ORDER BY received_at LIMIT $3""",
                partner_id, merchant_reference, limit)

    # ---- KYC -------------------------------------------------------------------------

    async def set_kyc(self, partner_id: str, player_id: str, status: str, by: str, now_us: int) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO player_kyc (partner_id, player_id, status, updated_at, updated_by)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (partner_id, player_id)
                   DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at,
                                 updated_by = excluded.updated_by""",
                partner_id, player_id, status, ts(now_us), by)

    async def kyc(self, partner_id: str, player_id: str) -> asyncpg.Record | None:
        async with self.pool.acquire() as conn:
            return await conn.fetchrow(
                "SELECT status, updated_at, updated_by FROM player_kyc WHERE partner_id = $1 AND player_id = $2",
                partner_id, player_id)
