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
  than ``server.body_bytes_max``) and a body missing a required field are answered
  ``RS_ERROR_WRONG_SYNTAX`` (``SYNTAX_STATUS``, ``MISSING_FIELD_STATUS``) and audited as
  ``INVALID_REQUEST``: the gateway has one code for both, Hub88 has two.

Per endpoint (the same code, read on each Hub88 endpoint; README.md "Certification"):

* ``UNKNOWN_TRANSACTION``: on ``/transaction/win`` the referenced bet is unknown (or was
  refused); on ``/transaction/rollback`` the reference names a win or another player's
  transaction -- a rollback of a transaction never seen is ``OK`` (a tombstone), and only
  bets are rolled back (Caleta: "winnings are never rolled back"). Both answer
  ``RS_ERROR_TRANSACTION_DOES_NOT_EXIST`` ("the bet referenced ... can't be found"), final
  for wins and rollbacks alike.
* ``TRANSACTION_SETTLED``: a rollback after the bet's win, and a second win naming the same
  bet (the shard settles a bet on its first win) -> ``RS_ERROR_DUPLICATE_TRANSACTION``.
* ``INSUFFICIENT_FUNDS`` on ``/transaction/bet`` also answers a stake the wallet cannot
  debit as sent (not exact in the currency's minor unit, or above ``money.amount_minor_max``)
  when it is larger than the balance (``adapter.BalanceCheck``); such a stake that fits the
  balance is ``INVALID_AMOUNT`` -> ``RS_ERROR_WRONG_TYPES``.
* A ``game_code`` outside the integration's ``game_codes`` on ``/transaction/bet`` or
  ``/transaction/win`` -> ``UNKNOWN_GAME_STATUS`` (audited as ``INVALID_REQUEST``).
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
    # Responsible gaming (docs/RESPONSIBLE_GAMING.md; README.md, "Responsible gaming").
    Code.DEPOSIT_LIMIT_REACHED: RS_ERROR_USER_DISABLED,
    Code.LOSS_LIMIT_REACHED: RS_ERROR_USER_DISABLED,
    Code.WAGER_LIMIT_REACHED: RS_ERROR_USER_DISABLED,
    Code.SESSION_TIME_LIMIT_REACHED: RS_ERROR_USER_DISABLED,
    Code.EXCLUSION_PERIOD_NOT_OFFERED: RS_ERROR_WRONG_TYPES,  # not a provider call
    Code.NOT_EXCLUDED: RS_ERROR_WRONG_TYPES,  # not a provider call
    Code.PLAYER_EXCLUDED: RS_ERROR_USER_DISABLED,
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

#: Answer to a JSON object missing a required field (Hub88: "the received request doesn't
#: match expected request form"; the Hub88-style operator SDK answers it for any missing
#: field). Audited as ``INVALID_REQUEST``.
MISSING_FIELD_STATUS: Final = RS_ERROR_WRONG_SYNTAX

#: Answer to a bet or win whose ``game_code`` is not in the integration's ``game_codes``
#: (Hub88: "Unknown game_code"). Audited as ``INVALID_REQUEST``.
UNKNOWN_GAME_STATUS: Final = RS_ERROR_INVALID_GAME

#: Hub88's retryable answer: a bet answered with it is rolled back by Hub88, a win or
#: rollback is retried (README.md, Caleta notes).
RETRYABLE_STATUS: Final = RS_ERROR_UNKNOWN

#: Exceptions from ``ctx.submit`` / ``ctx.sessions`` that mean "try again later".
RETRYABLE_EXCEPTIONS: Final = (Overloaded, ShardUnavailable, SessionStoreUnavailable)


def status_for(code: Code) -> str:
    """Hub88 status for a gateway ``Code``; ``RS_ERROR_UNKNOWN`` for a code added later."""
    return STATUS_BY_CODE.get(code, RETRYABLE_STATUS)

