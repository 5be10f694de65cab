"""RFC 9457 problem+json answers of the generic API, with one table of HTTP statuses.

Every refusal has a stable machine ``code`` (the ``Code`` values of the shard plus the
edge's own); ``type`` is ``urn:gateway:problem:<code>`` so clients can switch on either.

``ROUTES`` is the one table of what each generic-API route can answer: its success
statuses and every problem code (each code's status is ``HTTP_STATUS``). The OpenAPI
document (``gateway.edge.openapi``) is generated from it, the edge logs any answer outside
it (``gateway.edge.api_v1``), and the contract test (tests/test_openapi_contract.py)
checks the server against the document, so the three cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    Code.DEPOSIT_LIMIT_REACHED.value: 422,
    Code.LOSS_LIMIT_REACHED.value: 422,
    Code.WAGER_LIMIT_REACHED.value: 422,
    Code.SESSION_TIME_LIMIT_REACHED.value: 403,
    Code.PLAYER_EXCLUDED.value: 403,
    Code.EXCLUSION_PERIOD_NOT_OFFERED.value: 422,
    Code.NOT_EXCLUDED.value: 409,
    Code.INVALID_SIGNATURE.value: 401,
    Code.INVALID_TOKEN.value: 401,
    Code.TOKEN_EXPIRED.value: 401,
    "unknown_provider": 400,
    "not_found": 404,
    "method_not_allowed": 405,  # with Allow; not audited (no route, no partner)
    "overloaded": 503,
    "rate_limited": 429,  # with Retry-After; not audited (a flood must not write rows)
    "unavailable": 503,
    "session_store_unavailable": 503,
    "forbidden": 403,  # the key lacks the route's role (docs/SECURITY.md, "Roles")
    # sportsbook (docs/SPORTSBOOK.md, "Refusals")
    "invalid_odds": 400,
    "invalid_each_way": 400,
    "invalid_leg": 400,
    "invalid_stake": 400,
    "invalid_system": 400,
    "invalid_result": 400,
    "duplicate_selection": 400,
    "too_many_selections": 400,
    "too_few_legs": 400,
    "too_many_legs": 400,
    "leg_count_mismatch": 400,
    "system_size_too_large": 400,
    "unknown_market": 404,
    "unknown_selection": 404,
    "unknown_bet": 404,
    "market_suspended": 409,
    "market_closed": 409,
    "odds_changed": 409,
    "market_changed": 409,
    "cashout_unavailable": 409,
    "invalid_stake_factor": 400,
    "stale_price_version": 409,
    "price_version_conflict": 409,
    "market_currency_fixed": 409,
    "bet_not_open": 409,
    "stake_limit": 422,
    "payout_too_large": 422,
    "market_liability_limit": 422,
    "selection_liability_limit": 422,
    "exposure_unavailable": 503,
    # payments (docs/PAYMENTS.md)
    "unknown_psp": 400,
    "unknown_payment": 404,
    "payment_state": 409,
    # reconciliation (docs/RECONCILIATION.md)
    "invalid_report": 400,
    "unknown_exception": 404,
}

TITLES: dict[str, str] = {
    "unauthorized": "Missing or unknown API key",
    "invalid_request": "The request is malformed",
    "invalid_amount": "The amount is not acceptable",
    "unknown_currency": "Unknown currency",
    "payload_too_large": "Request body too large",
    "unsupported_media_type": "The body must be application/json",
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
    "deposit_limit_reached": "Deposit limit reached",
    "loss_limit_reached": "Loss limit reached",
    "wager_limit_reached": "Wager limit reached",
    "session_time_limit_reached": "Session time limit reached",
    "player_excluded": "Player is in a time-out or self-excluded",
    "exclusion_period_not_offered": "This exclusion period is not offered here",
    "not_excluded": "The player is not excluded",
    "overloaded": "Overloaded, retry later",
    "rate_limited": "Rate limit exceeded, retry later",
    "unavailable": "Temporarily unavailable, retry later",
    "session_store_unavailable": "Session store unavailable, retry later",
    "unknown_provider": "Unknown provider",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed on this path",
    "forbidden": "This key may not use this route",
    "invalid_odds": "The odds are not exact or not acceptable",
    "invalid_each_way": "Each-way terms missing or malformed",
    "invalid_leg": "A leg is malformed",
    "invalid_stake": "The stake is not acceptable",
    "invalid_system": "System sizes do not fit the bet",
    "invalid_result": "The result is malformed",
    "duplicate_selection": "The same selection twice",
    "too_many_selections": "Too many selections in one market",
    "too_few_legs": "Too few legs for this bet type",
    "too_many_legs": "Too many legs",
    "leg_count_mismatch": "The bet type takes another number of legs",
    "system_size_too_large": "A system size is larger than the number of legs",
    "unknown_market": "Unknown market",
    "unknown_selection": "Unknown selection",
    "unknown_bet": "Unknown bet",
    "market_suspended": "Market suspended",
    "market_closed": "Market closed",
    "odds_changed": "The odds changed",
    "market_changed": "The market changed while the bet was placed, retry",
    "cashout_unavailable": "This cash-out is not offered",
    "invalid_stake_factor": "A stake factor is an exact fraction in (0, 1]",
    "stale_price_version": "An older price version than the stored one",
    "price_version_conflict": "This price version is stored with other prices",
    "market_currency_fixed": "The market's currency cannot change",
    "bet_not_open": "The bet is not open",
    "stake_limit": "Stake above the limit",
    "payout_too_large": "The return exceeds the largest amount",
    "market_liability_limit": "Market liability limit reached",
    "selection_liability_limit": "Selection liability limit reached",
    "exposure_unavailable": "Liability cannot be checked now, retry later",
    "unknown_psp": "Not one of the partner's PSP integrations",
    "unknown_payment": "Unknown deposit or withdrawal",
    "payment_state": "The payment is not in a state that allows this",
    "invalid_report": "The settlement report is malformed",
    "unknown_exception": "No open reconciliation exception with this id",
}

#: Answers that carry ``Retry-After`` (seconds): the caller may retry the same request.
RETRYABLE = frozenset({"rate_limited", "overloaded", "unavailable", "session_store_unavailable",
                       "exposure_unavailable"})


# ---- what each route can answer -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteStatuses:
    """What one generic-API route can answer.

    ``success``: status -> when (a replay of an already applied request is a success too,
    marked ``replayed: true``). ``codes``: every problem code, in the order documented.
    """

    success: dict[int, str]
    codes: tuple[str, ...]

    def problems_by_status(self) -> dict[int, tuple[str, ...]]:
        """status -> the problem codes answered with it, statuses ascending."""
        by_status: dict[int, list[str]] = {}
        for code in self.codes:
            by_status.setdefault(HTTP_STATUS[code], []).append(code)
        return {status: tuple(by_status[status]) for status in sorted(by_status)}

    def statuses(self) -> frozenset[int]:
        return frozenset(self.success) | frozenset(HTTP_STATUS[code] for code in self.codes)


# Every route: a bad request, a missing key, another method on its path, the partner's rate
# limit, and the shard's retryable refusals.
_EVERY = ("invalid_request", "unauthorized", "forbidden", "method_not_allowed", "rate_limited", "overloaded",
          "unavailable")
# Every write (POST): the body's size and media type, checked before it is read.
_WRITE = ("payload_too_large", "unsupported_media_type")
# A route with the player id in its path: an id that does not fit one path segment
# (empty, or holding "/") names no route at all.
_PLAYER_PATH = ("not_found",)
# Money routes: a repeated transaction id with other content, or one a rollback already took.
_KEYED = ("idempotency_conflict", "transaction_rolled_back")
_PLAYER_WALLET = ("unknown_player", "currency_mismatch")
# A bet over one of the player's own limits (docs/RESPONSIBLE_GAMING.md).
_RG_BET = ("wager_limit_reached", "loss_limit_reached")

ROUTES: dict[str, RouteStatuses] = {
    "POST /v1/players": RouteStatuses(
        {201: "created", 200: "the same player again (same currencies and country): the existing player, `replayed: true`"},
        (*_EVERY, *_WRITE, "unknown_currency", "player_exists"),
    ),
    "GET /v1/players/{player_id}/balance": RouteStatuses(
        {200: "the balances"},
        (*_EVERY, "unknown_player", *_PLAYER_PATH),
    ),
    "POST /v1/players/{player_id}/status": RouteStatuses(
        {200: "the player with its new status (setting the status it has is fine)"},
        (*_EVERY, *_WRITE, "unknown_player", *_PLAYER_PATH, "player_excluded"),
    ),
    "PUT /v1/players/{player_id}/limits": RouteStatuses(
        {200: "every limit of the player, with `effective_at` per requested change"},
        (*_EVERY, *_WRITE, "invalid_amount", "unknown_currency", "unknown_player", *_PLAYER_PATH, "currency_mismatch"),
    ),
    "GET /v1/players/{player_id}/limits": RouteStatuses(
        {200: "every limit, what its window holds now and any change waiting for its cooling-off"},
        (*_EVERY, "unknown_player", *_PLAYER_PATH),
    ),
    "PUT /v1/players/{player_id}/exclusions": RouteStatuses(
        {200: "the exclusion now in place (an exclusion is never shortened)"},
        (*_EVERY, *_WRITE, "unknown_player", *_PLAYER_PATH, "player_excluded", "not_excluded",
         "exclusion_period_not_offered"),
    ),
    "GET /v1/players/{player_id}/exclusions": RouteStatuses(
        {200: "the exclusion (null: none) and whether it blocks play now"},
        (*_EVERY, "unknown_player", *_PLAYER_PATH),
    ),
    "POST /v1/sessions": RouteStatuses(
        {201: "session created"},
        (*_EVERY, *_WRITE, "unknown_currency", "unknown_provider", *_PLAYER_WALLET, "session_store_unavailable"),
    ),
    "POST /v1/wallet/deposit": RouteStatuses(
        {200: "applied, or a replay of the same request (`replayed: true`)"},
        (*_EVERY, *_WRITE, "invalid_amount", "unknown_currency", *_PLAYER_WALLET, "player_excluded",
         "deposit_limit_reached", *_KEYED),
    ),
    "POST /v1/wallet/withdraw": RouteStatuses(
        {200: "applied, or a replay of the same request (`replayed: true`)"},
        (*_EVERY, *_WRITE, "invalid_amount", "unknown_currency", *_PLAYER_WALLET, "insufficient_funds", *_KEYED),
    ),
    "POST /v1/wallet/debit": RouteStatuses(
        {200: "applied, or a replay of the same request (`replayed: true`)"},
        (*_EVERY, *_WRITE, "invalid_amount", "unknown_currency", *_PLAYER_WALLET, "insufficient_funds",
         "player_blocked", "player_excluded", "limit_reached", *_RG_BET, *_KEYED),
    ),
    "POST /v1/wallet/credit": RouteStatuses(
        {200: "applied, or a replay of the same request (`replayed: true`)"},
        (*_EVERY, *_WRITE, "invalid_amount", "unknown_currency", *_PLAYER_WALLET, "unknown_transaction",
         *_KEYED, "transaction_settled"),
    ),
    "POST /v1/wallet/rollback": RouteStatuses(
        {200: "rolled back (also a rollback of a bet never seen, which leaves a tombstone), "
              "or a replay of the same request (`replayed: true`)"},
        (*_EVERY, *_WRITE, "unknown_currency", *_PLAYER_WALLET, "unknown_transaction", *_KEYED, "transaction_settled"),
    ),
}


_SB_MARKET_PATH = ("not_found", "unknown_market")
_SB_BET_SHAPE = ("invalid_odds", "invalid_each_way", "invalid_leg", "invalid_stake", "invalid_system",
                 "duplicate_selection", "too_few_legs", "too_many_legs", "leg_count_mismatch",
                 "system_size_too_large", "payout_too_large")
ROUTES.update({
    "PUT /v1/sportsbook/markets/{market_id}": RouteStatuses(
        {201: "created", 200: "replaced, or the same definition again (`replayed: true`)"},
        (*_EVERY, *_WRITE, "not_found", "unknown_currency", "invalid_odds", "invalid_each_way", "duplicate_selection",
         "too_many_selections", "stale_price_version", "price_version_conflict", "market_currency_fixed",
         "exposure_unavailable"),
    ),
    "GET /v1/sportsbook/markets/{market_id}": RouteStatuses({200: "the market"}, (*_EVERY, *_SB_MARKET_PATH)),
    "GET /v1/sportsbook/markets/{market_id}/report": RouteStatuses(
        {200: "bets, stakes and returns by state; liability counters"}, (*_EVERY, *_SB_MARKET_PATH, "exposure_unavailable"),
    ),
    "POST /v1/sportsbook/bets": RouteStatuses(
        {201: "placed: the stake is debited", 200: "the same bet again: the stored bet, `replayed: true`"},
        (*_EVERY, *_WRITE, "unknown_currency", *_SB_BET_SHAPE, "unknown_market", "unknown_selection",
         "market_suspended", "market_closed", "odds_changed", "market_changed", "stake_limit", "market_liability_limit",
         "selection_liability_limit", "exposure_unavailable", *_PLAYER_WALLET, "insufficient_funds", "player_blocked",
         "player_excluded", "limit_reached", *_RG_BET, *_KEYED),
    ),
    "GET /v1/sportsbook/bets/{bet_id}": RouteStatuses({200: "the bet"}, (*_EVERY, "not_found", "unknown_bet")),
    "POST /v1/sportsbook/bets/{bet_id}/cashout": RouteStatuses(
        {200: "cashed out (also the same cash-out again, `replayed: true`)"},
        (*_EVERY, *_WRITE, "not_found", "unknown_bet", "bet_not_open", "invalid_amount", "invalid_stake",
         "cashout_unavailable", "insufficient_funds", "player_blocked", "player_excluded", "limit_reached", *_RG_BET,
         *_PLAYER_WALLET),
    ),
    "PUT /v1/sportsbook/players/{player_id}/stake-factor": RouteStatuses(
        {200: "the stake factor now set (`1/1`: none)"},
        (*_EVERY, *_WRITE, "not_found", "unknown_player", "invalid_stake_factor", "limit_reached"),
    ),
    "GET /v1/sportsbook/players/{player_id}/stake-factor": RouteStatuses(
        {200: "the player's stake factor (`1/1`: none)"}, (*_EVERY, "not_found", "unknown_player"),
    ),
    "POST /v1/sportsbook/results": RouteStatuses(
        {202: "stored; the bets it completes settle in the background (also a replay, `replayed: true`)"},
        (*_EVERY, *_WRITE, "unknown_market", "unknown_selection", "duplicate_selection", "invalid_result",
         "idempotency_conflict"),
    ),
})


_PAY_REF = ("not_found", "unknown_payment")
_PAY_DECIDE = (*_EVERY, *_WRITE, *_PAY_REF, "payment_state", "idempotency_conflict")
ROUTES.update({
    "POST /v1/payments/deposits": RouteStatuses(
        {201: "the deposit intent is open: the PSP's confirmation credits it",
         200: "the same deposit again (`replayed: true`)"},
        (*_EVERY, *_WRITE, "invalid_amount", "unknown_currency", "unknown_psp", *_PLAYER_WALLET, "player_excluded",
         "deposit_limit_reached", "idempotency_conflict"),
    ),
    "GET /v1/payments/deposits/{merchant_reference}": RouteStatuses(
        {200: "the deposit, its history and its PSP notifications"}, (*_EVERY, *_PAY_REF)),
    "POST /v1/payments/withdrawals": RouteStatuses(
        {201: "requested: the amount left the balance; `state` says whether it waits for review",
         200: "the same withdrawal again (`replayed: true`)"},
        (*_EVERY, *_WRITE, "invalid_amount", "unknown_currency", "unknown_psp", *_PLAYER_WALLET, "insufficient_funds",
         "idempotency_conflict"),
    ),
    "GET /v1/payments/withdrawals/{merchant_reference}": RouteStatuses(
        {200: "the withdrawal, its history and its PSP notifications"}, (*_EVERY, *_PAY_REF)),
    "POST /v1/payments/withdrawals/{merchant_reference}/approve": RouteStatuses(
        {200: "approved and sent to the PSP (or approved, when payouts are sent by hand)"}, (*_PAY_DECIDE, "unknown_psp")),
    "POST /v1/payments/withdrawals/{merchant_reference}/decline": RouteStatuses(
        {200: "declined: the money is back on the balance"}, _PAY_DECIDE),
    "POST /v1/payments/withdrawals/{merchant_reference}/cancel": RouteStatuses(
        {200: "cancelled by the player: the money is back on the balance"}, _PAY_DECIDE),
    "PUT /v1/players/{player_id}/kyc": RouteStatuses(
        {200: "the player's KYC status now"}, (*_EVERY, *_WRITE, "unknown_player", *_PLAYER_PATH)),
    "GET /v1/players/{player_id}/kyc": RouteStatuses(
        {200: "the player's KYC status (`unverified` if none was set)"}, (*_EVERY, "unknown_player", *_PLAYER_PATH)),
    "GET /v1/payments/reconciliations/{integration}/exceptions": RouteStatuses(
        {200: "the open exceptions with their evidence, oldest first"}, (*_EVERY, "not_found", "unknown_psp")),
    "POST /v1/payments/reconciliations/{integration}/exceptions/{exception_id}/resolve": RouteStatuses(
        {200: "resolved, with the note kept"}, (*_EVERY, *_WRITE, "not_found", "unknown_psp", "unknown_exception")),
    "POST /v1/audit/records/search": RouteStatuses(
        {200: "a page of the partner's audit records in chain order, with the next page's cursor"}, (*_EVERY, *_WRITE)),
    "GET /v1/audit/transactions/{transaction_id}": RouteStatuses(
        {200: "the operation end to end: audit records, ledger entries, later events"},
        (*_EVERY, "not_found", "unknown_transaction")),
})


# ---- answers --------------------------------------------------------------------------


class ProblemResponse(Response):
    """A problem+json response that remembers its ``code`` (checked against ``ROUTES``)."""

    media_type = "application/problem+json"

    def __init__(self, code: str, content: bytes, status_code: int, headers: dict[str, str] | None) -> None:
        super().__init__(content, status_code=status_code, headers=headers)
        self.code = code


_encoder = msgspec.json.Encoder()


def problem(code: str, detail: str | None = None, *, retry_after_s: int | None = None,
            headers: dict[str, str] | None = None, **extra) -> ProblemResponse:
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
    if retry_after_s is not None:
        headers = {**(headers or {}), "Retry-After": str(retry_after_s)}
    return ProblemResponse(code, _encoder.encode(body), status, headers)


def result_problem(result: Result) -> ProblemResponse:
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
