"""RFC 9457 problem+json answers of the generic API, with one table of HTTP statuses.

Every refusal has a stable machine ``code`` (the ``Code`` values of the shard plus the
edge's own); ``type`` is ``urn:gateway:problem:<code>`` so clients can switch on either.
"""

from __future__ import annotations

import msgspec
from starlette.responses import Response

from gateway.shards.commands import Code, Result

HTTP_STATUS: dict[str, int] = {
    Code.UNAUTHORIZED.value: 401,
    Code.INVALID_REQUEST.value: 400,
    Code.INVALID_AMOUNT.value: 400,
    "unknown_currency": 400,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    Code.UNKNOWN_PLAYER.value: 404,
    Code.PLAYER_EXISTS.value: 409,
    Code.CURRENCY_MISMATCH.value: 422,
    Code.INSUFFICIENT_FUNDS.value: 402,
    Code.IDEMPOTENCY_CONFLICT.value: 409,
    Code.UNKNOWN_TRANSACTION.value: 404,
    Code.TRANSACTION_ROLLED_BACK.value: 409,
    Code.TRANSACTION_SETTLED.value: 409,
    Code.PLAYER_BLOCKED.value: 403,
    Code.LIMIT_REACHED.value: 422,
    Code.INVALID_SIGNATURE.value: 401,
    Code.INVALID_TOKEN.value: 401,
    Code.TOKEN_EXPIRED.value: 401,
    "unknown_provider": 400,
    "not_found": 404,
    "overloaded": 503,
    "rate_limited": 429,  # with Retry-After; not audited (a flood must not write rows)
    "unavailable": 503,
    "session_store_unavailable": 503,
}

TITLES: dict[str, str] = {
    "unauthorized": "Missing or unknown API key",
    "invalid_request": "The request is malformed",
    "invalid_amount": "The amount is not acceptable",
    "unknown_currency": "Unknown currency",
    "payload_too_large": "Request body too large",
    "unknown_player": "Unknown player",
    "player_exists": "Player already exists",
    "currency_mismatch": "Player has no wallet in this currency",
    "insufficient_funds": "Insufficient funds",
    "idempotency_conflict": "Transaction id reused with different content",
    "unknown_transaction": "Unknown transaction",
    "transaction_rolled_back": "Transaction already rolled back",
    "transaction_settled": "Transaction already settled",
    "player_blocked": "Player may not bet",
    "limit_reached": "Limit reached",
    "overloaded": "Overloaded, retry later",
    "rate_limited": "Rate limit exceeded, retry later",
    "unavailable": "Temporarily unavailable, retry later",
    "session_store_unavailable": "Session store unavailable, retry later",
    "unknown_provider": "Unknown provider",
    "not_found": "Not found",
}

_encoder = msgspec.json.Encoder()


def problem(code: str, detail: str | None = None, *, retry_after_s: int | None = None, **extra) -> Response:
    """A problem+json response for ``code``; ``extra`` members are added (e.g. balances)."""
    status = HTTP_STATUS.get(code, 400)
    body = {
        "type": f"urn:gateway:problem:{code}",
        "title": TITLES.get(code, code.replace("_", " ")),
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return Response(_encoder.encode(body), status_code=status, headers=headers,
                    media_type="application/problem+json")


def result_problem(result: Result) -> Response:
    """Problem answer for a refused shard Result, carrying its balance and conflict field."""
    return problem(
        result.code.value,
        result.detail,
        transaction_id=result.transaction_id,
        player_id=result.player_id,
        currency=result.currency,
        cash_minor=result.cash_minor,
        bonus_minor=result.bonus_minor,
        field=result.conflict_field,
        replayed=result.replayed or None,
    )
