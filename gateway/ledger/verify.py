"""Ledger invariants, checkable at any time (docs/DESIGN.md section 4).

1. every transaction's entries sum to zero per currency;
2. every account's materialised balance equals the sum of its entries;
3. all accounts of a currency sum to zero (the house is every player's counterparty);
4. each shard's audit hash chain verifies from its first record.
"""

from __future__ import annotations

import asyncpg

from gateway.ledger.audit import ChainVerifier


async def verify_ledger(conn: asyncpg.Connection, audit_page_rows: int = 10_000) -> dict:
    """Run every check; returns a report dict with ``ok`` and the offending rows (at most 20 each)."""
    unbalanced_txns = await conn.fetch(
        """SELECT txn_id, currency, sum(delta_minor) AS total FROM entries
           GROUP BY txn_id, currency HAVING sum(delta_minor) <> 0 LIMIT 20"""
    )
    drifted_accounts = await conn.fetch(
        """SELECT a.account, a.currency, a.balance_minor, coalesce(e.total, 0) AS entries_total
           FROM accounts a
           LEFT JOIN (SELECT account, currency, sum(delta_minor) AS total FROM entries
                      GROUP BY account, currency) e USING (account, currency)
           WHERE a.balance_minor <> coalesce(e.total, 0)
           UNION ALL
           SELECT e.account, e.currency, NULL, e.total
           FROM (SELECT account, currency, sum(delta_minor) AS total FROM entries GROUP BY account, currency) e
           LEFT JOIN accounts a USING (account, currency) WHERE a.account IS NULL
           LIMIT 20"""
    )
    currency_totals = await conn.fetch(
        "SELECT currency, sum(balance_minor) AS total FROM accounts GROUP BY currency HAVING sum(balance_minor) <> 0"
    )
    chains = {}
    for shard in await conn.fetch("SELECT DISTINCT shard_id FROM audit_log ORDER BY shard_id"):
        shard_id = shard["shard_id"]
        ok, bad_seq, checked = await _verify_shard_chain(conn, shard_id, audit_page_rows)
        chains[str(shard_id)] = {"ok": ok, "first_bad_seq": bad_seq, "records": checked}
    counts = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM transactions) AS transactions,
                  (SELECT count(*) FROM entries) AS entries,
                  (SELECT count(*) FROM accounts) AS accounts,
                  (SELECT count(*) FROM audit_log) AS audit_records"""
    )
    report = {
        "ok": not unbalanced_txns and not drifted_accounts and not currency_totals
        and all(c["ok"] for c in chains.values()),
        "unbalanced_transactions": [dict(r) for r in unbalanced_txns],
        "drifted_accounts": [dict(r) for r in drifted_accounts],
        "currencies_not_zero": [dict(r) for r in currency_totals],
        "audit_chains": chains,
        "counts": dict(counts),
    }
    return report


async def _verify_shard_chain(conn: asyncpg.Connection, shard_id: int, page_rows: int) -> tuple[bool, int | None, int]:
    """Verify one chain page by page (bounded memory)."""
    verifier = ChainVerifier()
    while True:
        rows = await conn.fetch(
            """SELECT seq, prev_hash, hash, record FROM audit_log
               WHERE shard_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3""",
            shard_id, verifier.next_seq, page_rows,
        )
        if not rows:
            return True, None, verifier.checked
        for r in rows:
            if not verifier.feed(r["seq"], r["prev_hash"], r["hash"], r["record"]):
                return False, verifier.first_bad_seq, verifier.checked


__all__ = ["verify_ledger"]
