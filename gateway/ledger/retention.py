"""Idempotency retention: delete stored outcomes past the retention (docs/DESIGN.md section 5)."""

from __future__ import annotations

import asyncpg


async def prune_idempotency_keys(conn: asyncpg.Connection, retention_days: int, batch_rows_max: int = 10_000) -> int:
    """Delete stored outcomes older than ``retention_days``; returns rows deleted.

    Open bets are kept whatever their age (a win or rollback may still come). Ledger entries
    and audit records are history and are never deleted. Deletes in chunks of
    ``batch_rows_max`` so no long lock is held on a live table; the loop ends when a chunk
    comes back short, so it runs at most (rows past retention / batch_rows_max) + 1 times.
    """
    assert retention_days >= 1 and batch_rows_max >= 1
    total = 0
    while True:
        deleted: int = await conn.fetchval(
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
