"""The ONE table mapping gateway result codes to Pragmatic Play ``error`` numbers.

Source: README.md ("Error codes": 0 success, 1
insufficient balance, 2 player not found, 3 bet not allowed, 4 token invalid or expired,
5 invalid hash, 6 player frozen, 7 bad parameters, 8 game not found, 50 bet limit reached,
100 internal error (provider retries), 120 internal error (no retry), 130 endRound error,
210 reality check, 310 bet out of limits) and "Common ground". Every Pragmatic answer is
HTTP 200 with one of these numbers in ``error`` and a text in ``description``.

Choices where the sources name no code (also in README.md, "Status table"):

* ``IDEMPOTENCY_CONFLICT`` (same ``reference``, different content) -> 7 "bad parameters".
  Pragmatic has no duplicate code. The answer must be final (not 100, which Pragmatic
  retries with the same conflicting content forever) and must not be 0 (nothing was
  applied). The request's parameters contradict the transaction already stored under that
  reference: that is what 7 says.
* ``TRANSACTION_SETTLED`` (refund of a bet whose round a result already paid) and
  ``UNKNOWN_TRANSACTION`` (refund naming something that is not a bet) -> 120 "internal
  error (no retry)": final, not a success, and the code README.md reports Pragmatic
  implementations using for a refund they cannot apply.
* ``TRANSACTION_ROLLED_BACK`` -> 3 "bet not allowed" for a bet whose reference was refunded
  before it arrived (the tombstone; README.md "Common ground": the late bet is refused).
* Per endpoint (``ENDPOINT_STATUS``, README.md "Certification" cases 17-18): on
  ``/result.html`` a round with no bet (``UNKNOWN_TRANSACTION``) and a round whose bets were
  all refunded (``TRANSACTION_ROLLED_BACK``) are both 120, as T1 ("Bet transaction not
  found", "Transaction already processed by refund.") and IqSoft answer them; 3 stays the
  late bet's code only.
* ``CURRENCY_MISMATCH`` / ``UNKNOWN_CURRENCY`` -> 7: Pragmatic's bet carries no currency
  (the session's is used), so a currency that the player lacks or that is unknown is a bad
  parameter.
* ``LIMIT_REACHED`` (too many open bets) -> 50 "bet limit reached".
* ``UNAUTHORIZED`` (``providerId`` is not ours) -> 5, like a wrong hash: the provider id and
  the secret together say who is calling. ``UNKNOWN_PROVIDER`` likewise.
* ``PLAYER_EXISTS`` -> 120: never produced on Pragmatic paths; final if it ever were.
* Exceptions ``Overloaded``, ``ShardUnavailable``, ``SessionStoreUnavailable``, the rate limit
  and any unexpected error -> 100, the retryable code.
* On ``/endRound.html`` every refusal of the wallet is answered 130 "endRound error"
  (``status_for(code, endpoint=END_ROUND)``); refusals decided by the adapter (hash,
  parameters, token) keep their own codes.

Codes 8, 210 and 310 are never sent: the gateway keeps no game catalogue, no reality check
and no per-game bet limits.
"""

from __future__ import annotations

from typing import Final

from gateway.edge.game_session import SessionStoreUnavailable
from gateway.shards.commands import Code, Overloaded, ShardUnavailable

SUCCESS: Final = 0
INSUFFICIENT_BALANCE: Final = 1
PLAYER_NOT_FOUND: Final = 2
BET_NOT_ALLOWED: Final = 3
TOKEN_INVALID: Final = 4
INVALID_HASH: Final = 5
PLAYER_FROZEN: Final = 6
BAD_PARAMETERS: Final = 7
GAME_NOT_FOUND: Final = 8
BET_LIMIT_REACHED: Final = 50
INTERNAL_RETRY: Final = 100
INTERNAL_NO_RETRY: Final = 120
END_ROUND_ERROR: Final = 130
REALITY_CHECK: Final = 210
BET_OUT_OF_LIMITS: Final = 310

#: Every error code README.md lists for Pragmatic, with the description we send.
DESCRIPTIONS: Final[dict[int, str]] = {
    SUCCESS: "Success",
    INSUFFICIENT_BALANCE: "Insufficient balance",
    PLAYER_NOT_FOUND: "Player not found",
    BET_NOT_ALLOWED: "Bet is not allowed",
    TOKEN_INVALID: "Token is invalid or expired",
    INVALID_HASH: "Invalid hash",
    PLAYER_FROZEN: "Player is frozen",
    BAD_PARAMETERS: "Bad parameters",
    GAME_NOT_FOUND: "Game not found",
    BET_LIMIT_REACHED: "Bet limit has been reached",
    INTERNAL_RETRY: "Internal server error, please retry",
    INTERNAL_NO_RETRY: "Internal server error",
    END_ROUND_ERROR: "Internal server error on endRound",
    REALITY_CHECK: "Reality check",
    BET_OUT_OF_LIMITS: "Bet is out of limits",
}

#: Every code that may ever be sent (nothing outside README.md's list).
ALL_ERRORS: Final = frozenset(DESCRIPTIONS)

#: Gateway result code -> Pragmatic ``error``. Covers every ``Code`` (tests enforce it).
STATUS_BY_CODE: Final[dict[Code, int]] = {
    Code.OK: SUCCESS,
    Code.UNKNOWN_PLAYER: PLAYER_NOT_FOUND,
    Code.PLAYER_EXISTS: INTERNAL_NO_RETRY,
    Code.PLAYER_BLOCKED: PLAYER_FROZEN,
    Code.CURRENCY_MISMATCH: BAD_PARAMETERS,
    Code.INSUFFICIENT_FUNDS: INSUFFICIENT_BALANCE,
    Code.IDEMPOTENCY_CONFLICT: BAD_PARAMETERS,
    Code.UNKNOWN_TRANSACTION: INTERNAL_NO_RETRY,
    Code.TRANSACTION_ROLLED_BACK: BET_NOT_ALLOWED,
    Code.TRANSACTION_SETTLED: INTERNAL_NO_RETRY,
    Code.LIMIT_REACHED: BET_LIMIT_REACHED,
    # Responsible gaming (docs/RESPONSIBLE_GAMING.md; README.md, "Responsible gaming").
    Code.DEPOSIT_LIMIT_REACHED: BET_LIMIT_REACHED,
    Code.LOSS_LIMIT_REACHED: BET_LIMIT_REACHED,
    Code.WAGER_LIMIT_REACHED: BET_LIMIT_REACHED,
    Code.SESSION_TIME_LIMIT_REACHED: BET_LIMIT_REACHED,
    Code.EXCLUSION_PERIOD_NOT_OFFERED: BAD_PARAMETERS,  # not a provider call
    Code.NOT_EXCLUDED: BAD_PARAMETERS,  # not a provider call
    Code.PLAYER_EXCLUDED: PLAYER_FROZEN,
    Code.INVALID_REQUEST: BAD_PARAMETERS,
    Code.INVALID_AMOUNT: BAD_PARAMETERS,
    Code.UNKNOWN_CURRENCY: BAD_PARAMETERS,
    Code.PAYLOAD_TOO_LARGE: BAD_PARAMETERS,
    Code.UNKNOWN_PROVIDER: INVALID_HASH,
    Code.UNAUTHORIZED: INVALID_HASH,
    Code.INVALID_SIGNATURE: INVALID_HASH,
    Code.INVALID_TOKEN: TOKEN_INVALID,
    Code.TOKEN_EXPIRED: TOKEN_INVALID,
}

#: The endpoints whose answers differ from ``STATUS_BY_CODE`` (``status_for(endpoint=...)``).
RESULT: Final = "result"
END_ROUND: Final = "endRound"

#: Per-endpoint differences from ``STATUS_BY_CODE``, kept explicit here (README.md
#: "Status table"). ``/result.html`` names only its round (``round_policy="required"``):
#: a round with no bet and a round whose bets were all refunded are both 120.
ENDPOINT_STATUS: Final[dict[str, dict[Code, int]]] = {
    RESULT: {
        Code.UNKNOWN_TRANSACTION: INTERNAL_NO_RETRY,
        Code.TRANSACTION_ROLLED_BACK: INTERNAL_NO_RETRY,
    },
}

#: Pragmatic's retryable answer ("100 internal error (provider retries)").
RETRYABLE_ERROR: Final = INTERNAL_RETRY

#: Exceptions from ``ctx.submit`` / ``ctx.sessions`` that mean "try again later".
RETRYABLE_EXCEPTIONS: Final = (Overloaded, ShardUnavailable, SessionStoreUnavailable)


def status_for(code: Code, *, endpoint: str | None = None) -> int:
    """Pragmatic ``error`` for a gateway ``Code``, answered on ``endpoint`` (None: any other).

    ``ENDPOINT_STATUS`` first (``RESULT``), then ``STATUS_BY_CODE``; on ``END_ROUND`` every
    refusal is 130. A code added to ``Code`` later and missing here answers 100 (retryable)
    rather than a false success.
    """
    error = ENDPOINT_STATUS.get(endpoint or "", {}).get(code)
    if error is None:
        error = STATUS_BY_CODE.get(code, RETRYABLE_ERROR)
    if endpoint == END_ROUND and error not in (SUCCESS, RETRYABLE_ERROR):
        return END_ROUND_ERROR
    return error


def description_for(error: int) -> str:
    """The ``description`` sent with ``error``."""
    return DESCRIPTIONS.get(error, "Error")
