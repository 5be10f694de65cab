"""Audit routes for a partner key with the ``audit`` role (docs/AUDIT.md, "API access").

A regulator's or an internal auditor's key holds only this role: it reads the audit chain
and the ledger of its own partner and nothing else, and a wallet key cannot read them.

- ``POST /v1/audit/records/search`` ``{player_id?, transaction_id?, scope?, from?, to?,
  after?: {shard_id, seq}, limit?}``: audit records in chain order (shard, then position),
  each with its chain position, batch, hashes and the record itself; ``next`` is the cursor
  of the following page (null: no more). A search is a read, but POST: its filters are a
  body, and a refused one is audited like any other refused request.
- ``GET /v1/audit/transactions/{transaction_id}``: one operation end to end, as
  ``gateway audit trace`` shows it (the raw request and origin, chain position, batch and
  commit time, outcome, ledger entries, later events of the same bet or round).

For a complete, verifiable extract use ``gateway audit export`` and ``gateway audit verify``
(docs/AUDIT.md): pages of this API are not signed by a manifest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import asyncpg
import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.edge.api_v1 import _decode
from gateway.edge.problems import problem
from gateway.ledger.audit_trace import trace

if TYPE_CHECKING:
    from gateway.edge.api_v1 import Api

AUDIT_ROLE = "audit"
RECORDS_PER_PAGE_MAX = 1_000
_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+\Z")]


class Position(msgspec.Struct, forbid_unknown_fields=True):
    shard_id: Annotated[int, msgspec.Meta(ge=0, le=65_535)]
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**62)]


class SearchBody(msgspec.Struct, forbid_unknown_fields=True, rename={"from_": "from"}):
    """Filters (all optional, combined with AND); ``from``/``to``: recorded time, RFC 3339
    with an offset, ``to`` exclusive; ``after``: the ``next`` of the previous page."""

    player_id: _Text | None = None
    transaction_id: _Text | None = None
    scope: _Text | None = None
    from_: dt.datetime | None = None
    to: dt.datetime | None = None
    after: Position | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=RECORDS_PER_PAGE_MAX)] = 100


class AuditRecordOut(msgspec.Struct):
    shard_id: int
    seq: int
    batch_id: int
    recorded_at: str
    kind: str
    scope: str | None
    transaction_id: str | None
    player_id: str | None
    code: str
    prev_hash: str
    hash: str
    record: dict[str, Any]


class AuditPageOut(msgspec.Struct):
    records: list[AuditRecordOut]
    next: Position | None


class AuditTraceOut(msgspec.Struct):
    """``gateway audit trace``'s document (gateway/ledger/audit_trace.py)."""

    transaction_id: str
    audit: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    later: list[dict[str, Any]]


_encoder = msgspec.json.Encoder()


class AuditApi:
    """The audit routes over the edge's bounded payments pool (reads only)."""

    def __init__(self, api: Api, pool: asyncpg.Pool) -> None:
        self.api = api
        self.pool = pool

    def handlers(self) -> dict[str, tuple[str, Callable[[Request, str, bytes], Awaitable[Response]]]]:
        return {
            "POST /v1/audit/records/search": ("POST /v1/audit/records/search", self.search),
            "GET /v1/audit/transactions/{transaction_id}": ("GET /v1/audit/transactions", self.transaction),
        }

    async def search(self, request: Request, partner: str, raw: bytes) -> Response:
        """200 a page of the partner's audit records; 400 invalid_request (``from`` or ``to``
        without an offset, or ``from`` not before ``to``)."""
        body = _decode(SearchBody, raw)
        for value in (body.from_, body.to):
            if value is not None and value.tzinfo is None:
                return problem("invalid_request", "from and to need a UTC offset (RFC 3339)")
        if body.from_ is not None and body.to is not None and body.from_ >= body.to:
            return problem("invalid_request", "from must be before to")
        # The cursor: strictly after (shard, seq); no cursor: from the first record of shard 0.
        after_shard, after_seq = (body.after.shard_id, body.after.seq) if body.after is not None else (0, -1)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT shard_id, seq, batch_id, recorded_at, kind, scope, transaction_id, player_id, code,
                          encode(prev_hash, 'hex') AS prev_hash, encode(hash, 'hex') AS hash, record
                   FROM audit_log
                   WHERE partner_id = $1 AND (shard_id, seq) > ($2, $3)
                     AND ($4::text IS NULL OR player_id = $4) AND ($5::text IS NULL OR transaction_id = $5)
                     AND ($6::text IS NULL OR scope = $6)
                     AND ($7::timestamptz IS NULL OR recorded_at >= $7) AND ($8::timestamptz IS NULL OR recorded_at < $8)
                   ORDER BY shard_id, seq LIMIT $9""",
                partner, after_shard, after_seq, body.player_id, body.transaction_id, body.scope, body.from_,
                body.to, body.limit)
        records = [AuditRecordOut(r["shard_id"], r["seq"], r["batch_id"], r["recorded_at"].isoformat(), r["kind"],
                                  r["scope"], r["transaction_id"], r["player_id"], r["code"], r["prev_hash"],
                                  r["hash"], orjson.loads(r["record"])) for r in rows]
        last = rows[-1] if len(rows) == body.limit else None
        page = AuditPageOut(records, Position(last["shard_id"], last["seq"]) if last is not None else None)
        return Response(_encoder.encode(page), media_type="application/json")

    async def transaction(self, request: Request, partner: str, raw: bytes) -> Response:
        """200 the operation's trace; 404 unknown_transaction (none of this partner)."""
        transaction_id = request.path_params["transaction_id"]
        if not 1 <= len(transaction_id) <= 128 or not all(0x21 <= ord(c) <= 0x7E for c in transaction_id):
            return problem("invalid_request", "a transaction id is 1-128 visible ASCII characters")
        async with self.pool.acquire() as conn:
            found = await trace(conn, transaction_id, partner)
        if not found["audit"] and not found["ledger"]:
            return problem("unknown_transaction", f"no transaction {transaction_id!r} of yours")
        return Response(orjson.dumps(found), media_type="application/json")
