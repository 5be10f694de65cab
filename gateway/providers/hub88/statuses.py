"""The ONE table mapping gateway result codes to Hub88 wallet statuses.

Source: README.md ("Statuses", "Rules") and "Common ground"; Hub88's
"Seamless Wallet response statuses - Operator API" page for the meaning of each status.
Every Hub88 answer is HTTP 200 with one of these strings in ``status``.

Choices where the sources are silent (also in README.md):

* ``TRANSACTION_SETTLED`` -> ``RS_ERROR_DUPLICATE_TRANSACTION``. Hub88 has no "already
  settled" status. The answer must be final (Hub88 retries wins/rollbacks until it gets a
  final status, so ``RS_ERROR_UNKNOWN`` would loop for days), must not be a success (a
  rollback after a win did not refund the stake) and must not claim the bet is missing
  (``RS_ERROR_TRANSACTION_DOES_NOT_EXIST``) or rolled back when it was paid.
  ``RS_ERROR_DUPLICATE_TRANSACTION`` ("this transaction conflicts with what was already
  processed") is the closest final refusal, and the one Hub88 integrations commonly use.
* ``UNKNOWN_PLAYER`` -> ``RS_ERROR_INVALID_TOKEN``. Hub88 has no "unknown user" status. The
  player is named by the token / ``user`` pair the operator issued; a pair naming nobody is
  an invalid identity, a final answer. ``RS_ERROR_UNKNOWN`` is Hub88's retryable status and
  would make it retry a win for a non-existent player for days.
* ``LIMIT_REACHED`` -> ``RS_ERROR_USER_DISABLED`` ("the user ... can't place any new
  bets"). README.md's list has no limit status (``RS_ERROR_LIMIT_REACHED`` appears only in
  Hub88's supplier-side documents), and the refusal must be final, not retryable.
* ``UNAUTHORIZED`` -> ``RS_ERROR_INVALID_PARTNER`` (the caller is not allowed);
  ``PLAYER_EXISTS`` -> ``RS_ERROR_UNKNOWN`` (not produced on Hub88 paths).
* ``INVALID_REQUEST`` -> ``RS_ERROR_WRONG_TYPES``. An undecodable body (not JSON, or larger
  than ``server.body_bytes_max``) is answered ``RS_ERROR_WRONG_SYNTAX`` (``SYNTAX_STATUS``)
  and audited as ``INVALID_REQUEST``: the gateway has one code for both, Hub88 has two.
"""

from __future__ import annotations

from typing import Final

from gateway.edge.game_session import SessionStoreUnavailable
from gateway.shards.commands import Code, Overloaded, ShardUnavailable

RS_OK: Final = "RS_OK"
RS_ERROR_UNKNOWN: Final = "RS_ERROR_UNKNOWN"
RS_ERROR_INVALID_PARTNER: Final = "RS_ERROR_INVALID_PARTNER"
RS_ERROR_INVALID_TOKEN: Final = "RS_ERROR_INVALID_TOKEN"
RS_ERROR_INVALID_GAME: Final = "RS_ERROR_INVALID_GAME"
RS_ERROR_WRONG_CURRENCY: Final = "RS_ERROR_WRONG_CURRENCY"
RS_ERROR_NOT_ENOUGH_MONEY: Final = "RS_ERROR_NOT_ENOUGH_MONEY"
RS_ERROR_USER_DISABLED: Final = "RS_ERROR_USER_DISABLED"
RS_ERROR_INVALID_SIGNATURE: Final = "RS_ERROR_INVALID_SIGNATURE"
RS_ERROR_TOKEN_EXPIRED: Final = "RS_ERROR_TOKEN_EXPIRED"
RS_ERROR_WRONG_SYNTAX: Final = "RS_ERROR_WRONG_SYNTAX"
RS_ERROR_WRONG_TYPES: Final = "RS_ERROR_WRONG_TYPES"
RS_ERROR_DUPLICATE_TRANSACTION: Final = "RS_ERROR_DUPLICATE_TRANSACTION"
RS_ERROR_TRANSACTION_DOES_NOT_EXIST: Final = "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"
RS_ERROR_TRANSACTION_ROLLED_BACK: Final = "RS_ERROR_TRANSACTION_ROLLED_BACK"

#: Every status README.md lists for Hub88; nothing else is ever sent.
ALL_STATUSES: Final = frozenset(
    {
        RS_OK,
        RS_ERROR_UNKNOWN,
        RS_ERROR_INVALID_PARTNER,
        RS_ERROR_INVALID_TOKEN,
        RS_ERROR_INVALID_GAME,
        RS_ERROR_WRONG_CURRENCY,
        RS_ERROR_NOT_ENOUGH_MONEY,
        RS_ERROR_USER_DISABLED,
        RS_ERROR_INVALID_SIGNATURE,
        RS_ERROR_TOKEN_EXPIRED,
        RS_ERROR_WRONG_SYNTAX,
        RS_ERROR_WRONG_TYPES,
        RS_ERROR_DUPLICATE_TRANSACTION,
        RS_ERROR_TRANSACTION_DOES_NOT_EXIST,
        RS_ERROR_TRANSACTION_ROLLED_BACK,
    }
)

#: Gateway result code -> Hub88 status. Covers every ``Code`` (tests enforce it).
STATUS_BY_CODE: Final[dict[Code, str]] = {
    Code.OK: RS_OK,
    Code.UNKNOWN_PLAYER: RS_ERROR_INVALID_TOKEN,
    Code.PLAYER_EXISTS: RS_ERROR_UNKNOWN,
    Code.PLAYER_BLOCKED: RS_ERROR_USER_DISABLED,
    Code.CURRENCY_MISMATCH: RS_ERROR_WRONG_CURRENCY,
    Code.INSUFFICIENT_FUNDS: RS_ERROR_NOT_ENOUGH_MONEY,
    Code.IDEMPOTENCY_CONFLICT: RS_ERROR_DUPLICATE_TRANSACTION,
    Code.UNKNOWN_TRANSACTION: RS_ERROR_TRANSACTION_DOES_NOT_EXIST,
    Code.TRANSACTION_ROLLED_BACK: RS_ERROR_TRANSACTION_ROLLED_BACK,
    Code.TRANSACTION_SETTLED: RS_ERROR_DUPLICATE_TRANSACTION,
    Code.LIMIT_REACHED: RS_ERROR_USER_DISABLED,
    Code.INVALID_REQUEST: RS_ERROR_WRONG_TYPES,
    Code.INVALID_AMOUNT: RS_ERROR_WRONG_TYPES,
    Code.UNKNOWN_CURRENCY: RS_ERROR_WRONG_CURRENCY,
    Code.PAYLOAD_TOO_LARGE: RS_ERROR_WRONG_SYNTAX,
    Code.UNKNOWN_PROVIDER: RS_ERROR_INVALID_PARTNER,
    Code.UNAUTHORIZED: RS_ERROR_INVALID_PARTNER,
    Code.INVALID_SIGNATURE: RS_ERROR_INVALID_SIGNATURE,
    Code.INVALID_TOKEN: RS_ERROR_INVALID_TOKEN,
    Code.TOKEN_EXPIRED: RS_ERROR_TOKEN_EXPIRED,
}

#: Answer to a body that is not JSON or is larger than ``server.body_bytes_max``.
SYNTAX_STATUS: Final = RS_ERROR_WRONG_SYNTAX

#: Hub88's retryable answer: a bet answered with it is rolled back by Hub88, a win or
#: rollback is retried (README.md, Caleta notes).
RETRYABLE_STATUS: Final = RS_ERROR_UNKNOWN

#: Exceptions from ``ctx.submit`` / ``ctx.sessions`` that mean "try again later".
RETRYABLE_EXCEPTIONS: Final = (Overloaded, ShardUnavailable, SessionStoreUnavailable)


def status_for(code: Code) -> str:
    """Hub88 status for a gateway ``Code``; ``RS_ERROR_UNKNOWN`` for a code added later."""
    return STATUS_BY_CODE.get(code, RETRYABLE_STATUS)

