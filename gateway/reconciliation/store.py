"""The ledger read in batches, and the reconciliation tables written (migration 0012). I/O
only: the verdicts come from ``matching.py``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from gateway.reconciliation.lines import ReportLine
from gateway.reconciliation.matching import LEDGER_KIND, LedgerRow, Verdict

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
LEDGER_KINDS = sorted(set(LEDGER_KIND.values()))
RECON_SHARD_ID = 65_535  # the transaction id range of reconciliation's own postings (no shard has it)


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_US


def ts(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


_LINE_COLUMNS = ("integration", "line_key", "report", "line_no", "kind", "psp_type", "currency", "gross_minor",
                 "fee_minor", "net_minor", "psp_reference", "modification_reference", "merchant_reference", "batch",
                 "outcome", "detail", "txn_id", "recorded_at")


class ReconStore:
    """One PSP integration's reconciliation state on one connection (the caller's
    transaction per chunk)."""

    def __init__(self, conn: asyncpg.Connection, integration: str, scope: str) -> None:
        self.conn = conn
        self.integration = integration
        self.scope = scope  # the integration's idempotency scope: "<partner>:<integration>"

    async def lock(self) -> None:
        """One run per integration at a time (until the caller's transaction ends)."""
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtext('gateway-reconcile:' || $1))", self.integration)

    async def seen(self, report: str) -> dict[str, dict[str, int]] | None:
        """The outcomes of ``report`` (this file) if a run recorded it before, else None."""
        outcomes = await self.conn.fetchval(
            "SELECT outcomes::text FROM recon_reports WHERE integration = $1 AND report = $2", self.integration, report)
        return None if outcomes is None else orjson.loads(outcomes)

    async def finish(self, report: str, lines: int, outcomes: dict[str, dict[str, int]], now_us: int) -> None:
        await self.conn.execute(
            """INSERT INTO recon_reports (integration, report, lines, outcomes, first_run_at)
               VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (integration, report) DO NOTHING""",
            self.integration, report, lines, orjson.dumps(outcomes).decode(), ts(now_us))

    async def recorded(self, keys: Sequence[str]) -> dict[str, tuple[str, int, str]]:
        """Lines already recorded under ``keys``: key -> (report, line_no, outcome)."""
        rows = await self.conn.fetch(
            """SELECT l.line_key, l.report, l.line_no, l.outcome FROM unnest($2::text[]) AS k(key)
               JOIN recon_lines l ON l.integration = $1 AND l.line_key = k.key""",
            self.integration, list(keys))
        return {r["line_key"]: (r["report"], r["line_no"], r["outcome"]) for r in rows}

    async def ledger(self, references: Sequence[str], merchant_references: Sequence[str]) -> dict[str, list[LedgerRow]]:
        """Unmatched PSP money movements naming one of ``references`` (their ``game_id``), and
        deposits of one of ``merchant_references`` (their intent, ``reference_id``), keyed by
        each; with whether an earlier report left them pending. One query per batch."""
        # Two index scans (migration 0012's partial indexes), joined on the array's elements
        # (a hash join, not one comparison per element per row).
        rows = await self.conn.fetch(
            f"""WITH found AS (
                    SELECT t.* FROM unnest($3::text[]) AS r(ref)
                    JOIN transactions t ON t.scope = $2 AND t.game_id = r.ref
                     AND t.kind IN ({", ".join(f"'{k}'" for k in LEDGER_KINDS)})
                    UNION ALL
                    SELECT t.* FROM unnest($4::text[]) AS r(ref)
                    JOIN transactions t ON t.scope = $2 AND t.reference_id = r.ref AND t.kind = 'deposit'
                     AND NOT (t.game_id = ANY($3)))
                SELECT f.txn_id, f.kind, f.currency, f.amount_minor, f.game_id, f.reference_id, f.transaction_id,
                       f.created_at, (p.txn_id IS NOT NULL) AS pending
                FROM found f
                LEFT JOIN recon_pending p ON p.integration = $1 AND p.txn_id = f.txn_id
                WHERE f.code = 'ok'
                  AND NOT EXISTS (SELECT 1 FROM recon_lines m WHERE m.integration = $1 AND m.txn_id = f.txn_id)
                ORDER BY f.txn_id""",
            self.integration, self.scope, list(references), list(merchant_references))
        out: dict[str, list[LedgerRow]] = {}
        wanted = set(references) | set(merchant_references)
        for r in rows:
            row = LedgerRow(r["txn_id"], r["kind"], r["currency"], r["amount_minor"], r["game_id"] or "",
                            r["transaction_id"], _us(r["created_at"]), r["pending"], r["reference_id"] or "")
            for key in {row.psp_reference, row.merchant_reference}:
                if key and key in wanted:
                    out.setdefault(key, []).append(row)
        return out

    async def deposit_amounts(self, references: Sequence[str]) -> dict[str, int]:
        """The deposit amount of each payment reference (matched or not): refunds are
        partial when less."""
        rows = await self.conn.fetch(
            """SELECT game_id, amount_minor FROM transactions
               WHERE scope = $1 AND game_id = ANY($2) AND kind = 'deposit' AND code = 'ok'""",
            self.scope, list(references))
        return {r["game_id"]: r["amount_minor"] for r in rows}

    async def record(self, report: str, items: list[tuple[str, ReportLine, Verdict]], now_us: int) -> None:
        """Record lines with their verdicts, the matches, and one exception per exceptional line."""
        if not items:
            return
        # COPY: the caller checked the keys (``recorded``) under the run's lock, so none exists.
        at = ts(now_us)
        integration = self.integration
        await self.conn.copy_records_to_table("recon_lines", columns=_LINE_COLUMNS, records=[
            (integration, key, report, line.line_no, line.kind, line.psp_type, line.currency, line.gross_minor,
             line.fee_minor, line.net_minor, line.psp_reference, line.modification_reference,
             line.merchant_reference, line.batch, verdict.outcome, verdict.detail,
             None if verdict.exception or not verdict.txn_ids else verdict.txn_ids[0], at)
            for key, line, verdict in items])
        timing = [verdict.txn_ids[0] for _, _, verdict in items if verdict.outcome == "timing"]
        if timing:
            await self.conn.execute("DELETE FROM recon_pending WHERE integration = $1 AND txn_id = ANY($2)",
                                    self.integration, timing)

    async def add_exceptions(self, exceptions: list[tuple[str, str, dict[str, Any]]], now_us: int) -> None:
        """(subject, outcome, evidence) each; an exception already open or resolved stays as it is."""
        if exceptions:
            await self.conn.executemany(
                """INSERT INTO recon_exceptions (integration, subject, outcome, evidence, created_at)
                   VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (integration, subject, outcome) DO NOTHING""",
                [(self.integration, subject, outcome, orjson.dumps(evidence).decode(), ts(now_us))
                 for subject, outcome, evidence in exceptions])

    async def webhooks(self, references: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The PSP notifications naming each reference (evidence)."""
        rows = await self.conn.fetch(
            """SELECT psp_reference, related_reference, event_type, kind, state, amount_minor, currency, received_at,
                      deliveries, detail FROM psp_events
               WHERE integration = $1 AND (psp_reference = ANY($2) OR related_reference = ANY($2))
               ORDER BY received_at LIMIT 1000""", self.integration, list(references))
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            event = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(r).items()}
            for ref in {r["psp_reference"], r["related_reference"]}:
                if ref in references:
                    out.setdefault(ref, []).append(event)
        return out

    async def unsettled(self, from_us: int, until_us: int, limit: int) -> list[LedgerRow]:
        """Unmatched PSP money movements created in [``from_us``, ``until_us``], and those an
        earlier report left pending (whatever their age), oldest first."""
        rows = await self.conn.fetch(
            f"""SELECT t.txn_id, t.kind, t.currency, t.amount_minor, t.game_id, t.transaction_id, t.created_at
                FROM transactions t
                WHERE t.scope = $2 AND t.code = 'ok' AND t.kind IN ({", ".join(f"'{k}'" for k in LEDGER_KINDS)})
                  AND ((t.created_at >= $3 AND t.created_at <= $4)
                       OR t.txn_id IN (SELECT txn_id FROM recon_pending WHERE integration = $1))
                  AND NOT EXISTS (SELECT 1 FROM recon_lines m WHERE m.integration = $1 AND m.txn_id = t.txn_id)
                ORDER BY t.created_at LIMIT $5""",
            self.integration, self.scope, ts(from_us), ts(until_us), limit)
        return [LedgerRow(r["txn_id"], r["kind"], r["currency"], r["amount_minor"], r["game_id"] or "",
                          r["transaction_id"], _us(r["created_at"])) for r in rows]

    async def book_fees(self, report: str, fees: dict[str, int], now_us: int) -> list[int]:
        """Post the PSP's fees of a run to the ledger: per currency one transaction moving
        ``fees[currency]`` minor units from the integration's ``psp_clearing`` house account to
        its ``psp_fee`` account (negative: a fee refunded). Keyed by (report, currency), so a
        rerun posts nothing twice. Returns the transaction ids posted."""
        partner = self.scope.split(":", 1)[0]
        clearing = f"house:psp_clearing:{self.scope}:recon"
        fee_account = f"house:psp_fee:{self.scope}:recon"
        posted = []
        for currency, amount in sorted(fees.items()):
            if amount == 0:
                continue
            seq = await self.conn.fetchval("SELECT nextval('recon_txn_seq')")
            txn_id = (RECON_SHARD_ID << 40) | seq
            inserted = await self.conn.fetchval(
                """INSERT INTO transactions (txn_id, shard_id, scope, transaction_id, kind, partner_id, player_id,
                                            currency, amount_minor, code, cash_after_minor, bonus_after_minor,
                                            cash_delta_minor, bonus_delta_minor, game_id, created_at)
                   VALUES ($1, $2, $3, $4, 'psp_fee', $5, '', $6, $7, 'ok', 0, 0, 0, 0, $8, $9)
                   ON CONFLICT (scope, transaction_id) DO NOTHING RETURNING txn_id""",
                txn_id, RECON_SHARD_ID, self.scope, f"fees:{report}:{currency}", partner, currency, abs(amount),
                report[:64], ts(now_us))
            if inserted is None:
                continue
            await self.conn.executemany(
                "INSERT INTO entries (txn_id, account, currency, delta_minor) VALUES ($1, $2, $3, $4)",
                [(txn_id, clearing, currency, -amount), (txn_id, fee_account, currency, amount)])
            await self.conn.executemany(
                """INSERT INTO accounts (account, currency, balance_minor) VALUES ($1, $2, $3)
                   ON CONFLICT (account, currency) DO UPDATE SET balance_minor = accounts.balance_minor + EXCLUDED.balance_minor""",
                [(clearing, currency, -amount), (fee_account, currency, amount)])
            posted.append(txn_id)
        return posted

    async def mark_pending(self, txn_ids: Sequence[int], report: str, now_us: int) -> None:
        if txn_ids:
            await self.conn.executemany(
                """INSERT INTO recon_pending (integration, txn_id, report, noted_at) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (integration, txn_id) DO NOTHING""",
                [(self.integration, t, report, ts(now_us)) for t in txn_ids])

    async def open_exceptions(self, limit: int) -> list[asyncpg.Record]:
        return await self.conn.fetch(
            """SELECT id, subject, outcome, evidence::text AS evidence, created_at FROM recon_exceptions
               WHERE integration = $1 AND status = 'open' ORDER BY id LIMIT $2""", self.integration, limit)

    async def resolve(self, exception_id: int, note: str, actor: str, now_us: int) -> bool:
        """Mark an exception resolved with a note; False if there is no open one with that id."""
        async with self.conn.transaction():
            done = await self.conn.fetchval(
                """UPDATE recon_exceptions SET status = 'resolved', resolved_at = $3, resolved_by = $4, note = $5
                   WHERE id = $1 AND integration = $2 AND status = 'open' RETURNING 1""",
                exception_id, self.integration, ts(now_us), actor, note)
            if done is None:
                return False
            await self.conn.execute(
                """INSERT INTO recon_exception_history (exception_id, action, note, actor, at)
                   VALUES ($1, 'resolved', $2, $3, $4)""", exception_id, note, actor, ts(now_us))
        return True
