"""One operation end to end, for an investigation (``gateway audit trace``; docs/AUDIT.md).

For a transaction id: every audit record naming it (the raw request and its origin, the
chain position, the batch, the commit time, the outcome), the ledger transactions stored
under it with their entries, and the later events of the same bet or round (rollbacks and
wins naming it, the round's other transactions).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import asyncpg
import orjson

LATER_MAX = 200


def _iso(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if hasattr(value, "astimezone") else value


async def trace(conn: asyncpg.Connection, transaction_id: str, partner: str | None = None) -> dict[str, Any]:
    """The trace of ``transaction_id`` (of ``partner`` if given): a JSON-ready dict."""
    audits = await conn.fetch(
        """SELECT shard_id, seq, batch_id, recorded_at, kind, scope, partner_id, player_id, code, record,
                  encode(hash, 'hex') AS hash
           FROM audit_log WHERE transaction_id = $1 AND ($2::text IS NULL OR partner_id = $2)
           ORDER BY recorded_at, shard_id, seq LIMIT 100""", transaction_id, partner)
    txns = await conn.fetch(
        """SELECT txn_id, scope, transaction_id, kind, partner_id, player_id, currency, amount_minor, code,
                  cash_after_minor, bonus_after_minor, round_id, game_id, reference_id, bet_state, created_at
           FROM transactions WHERE transaction_id = $1 AND ($2::text IS NULL OR partner_id = $2)""",
        transaction_id, partner)
    entries = await conn.fetch("SELECT txn_id, account, currency, delta_minor FROM entries WHERE txn_id = ANY($1)",
                               [t["txn_id"] for t in txns])
    later: list[asyncpg.Record] = []
    for t in txns:
        later += await conn.fetch(
            """SELECT txn_id, transaction_id, kind, amount_minor, code, reference_id, round_id, created_at
               FROM transactions
               WHERE partner_id = $1 AND player_id = $2 AND scope = $3 AND txn_id <> $4
                 AND (reference_id = $5 OR ($6::text IS NOT NULL AND round_id = $6))
               ORDER BY created_at LIMIT $7""",
            t["partner_id"], t["player_id"], t["scope"], t["txn_id"], t["transaction_id"], t["round_id"], LATER_MAX)
    return {
        "transaction_id": transaction_id,
        "audit": [{**{k: _iso(v) for k, v in dict(a).items() if k != "record"}, "record": orjson.loads(a["record"])}
                  for a in audits],
        "ledger": [{**{k: _iso(v) for k, v in dict(t).items()},
                    "entries": [dict(e) for e in entries if e["txn_id"] == t["txn_id"]]} for t in txns],
        "later": [{k: _iso(v) for k, v in dict(r).items()} for r in later],
    }
