"""The ONE table mapping gateway result codes to Evolution One Wallet statuses.

Source: README.md ("Statuses", the licensee test list) and
"Common ground". Every Evolution answer is HTTP 200 with one of these strings in
``status`` (README.md, choice 1). README.md: "the first and last are retryable" -- read
as the first and last *error* statuses of its list, ``TEMPORARY_ERROR`` and
``OPERATION_IN_PROCESS`` (``OK`` cannot be a retryable status). The gateway only ever
sends ``TEMPORARY_ERROR`` as its retryable answer.

Rows taken from README.md (licensee test list):

* ``INSUFFICIENT_FUNDS`` -> ``INSUFFICIENT_FUNDS`` (with the unchanged balance);
* ``UNKNOWN_TRANSACTION`` -> ``BET_DOES_NOT_EXIST`` (credit or cancel with an unknown
  ``refId``; for cancel the shard answers OK + ``Result.tombstoned``, which the adapter
  maps to ``BET_DOES_NOT_EXIST`` itself, see ``adapter.response_for_result``);
* ``TRANSACTION_SETTLED`` -> ``BET_ALREADY_SETTLED`` (cancel after credit, a second credit);
* ``TRANSACTION_ROLLED_BACK`` -> ``BET_ALREADY_SETTLED`` (credit after cancel; a late debit
  whose ``refId`` was cancelled first: the bet is closed, the status is final);
* ``IDEMPOTENCY_CONFLICT`` -> ``BET_ALREADY_EXIST`` (a repeated debit that differs: "never
  a second deduction"; an exact repeat is answered ``OK`` with the stored outcome).

Choices where README.md names no status (also in README.md, "Status table"):

* ``PLAYER_BLOCKED`` / ``LIMIT_REACHED`` -> ``FINAL_ERROR_ACTION_FAILED``: the bet must be
  refused for good (not retried, not shown as a lack of money). Evolution's list has no
  "account locked" status.
* ``CURRENCY_MISMATCH``, ``UNKNOWN_CURRENCY``, ``INVALID_AMOUNT``, ``INVALID_REQUEST``,
  ``PAYLOAD_TOO_LARGE`` -> ``INVALID_PARAMETER``: something in the request is wrong.
* ``UNKNOWN_PLAYER`` -> ``INVALID_PARAMETER``: the ``userId`` names nobody; a final answer
  (``TEMPORARY_ERROR`` would make Evolution retry a credit for days).
* ``INVALID_TOKEN`` / ``TOKEN_EXPIRED`` -> ``INVALID_SID`` (README.md: a replaced sid is
  refused with ``INVALID_SID``; an unknown or expired one is the same kind of refusal).
* ``UNAUTHORIZED`` / ``INVALID_SIGNATURE`` / ``UNKNOWN_PROVIDER`` -> ``INVALID_TOKEN_ID``:
  Evolution authenticates with the ``authToken`` API key only; a wrong key is
  ``INVALID_TOKEN_ID``.
* ``PLAYER_EXISTS`` -> ``UNKNOWN_ERROR`` (never produced on Evolution paths).
"""

from __future__ import annotations

from typing import Final

from gateway.edge.game_session import SessionStoreUnavailable
from gateway.shards.commands import Code, Overloaded, ShardUnavailable

OK: Final = "OK"
TEMPORARY_ERROR: Final = "TEMPORARY_ERROR"
UNKNOWN_ERROR: Final = "UNKNOWN_ERROR"
INVALID_SID: Final = "INVALID_SID"
INVALID_TOKEN_ID: Final = "INVALID_TOKEN_ID"
INVALID_PARAMETER: Final = "INVALID_PARAMETER"
INSUFFICIENT_FUNDS: Final = "INSUFFICIENT_FUNDS"
BET_ALREADY_EXIST: Final = "BET_ALREADY_EXIST"
BET_ALREADY_SETTLED: Final = "BET_ALREADY_SETTLED"
BET_DOES_NOT_EXIST: Final = "BET_DOES_NOT_EXIST"
FINAL_ERROR_ACTION_FAILED: Final = "FINAL_ERROR_ACTION_FAILED"
OPERATION_IN_PROCESS: Final = "OPERATION_IN_PROCESS"

#: Every status README.md lists for Evolution; nothing else is ever sent.
ALL_STATUSES: Final = frozenset(
    {
        OK,
        TEMPORARY_ERROR,
        UNKNOWN_ERROR,
        INVALID_SID,
        INVALID_TOKEN_ID,
        INVALID_PARAMETER,
        INSUFFICIENT_FUNDS,
        BET_ALREADY_EXIST,
        BET_ALREADY_SETTLED,
        BET_DOES_NOT_EXIST,
        FINAL_ERROR_ACTION_FAILED,
        OPERATION_IN_PROCESS,
    }
)

#: The statuses Evolution retries (README.md: "the first and last are retryable").
RETRYABLE_STATUSES: Final = frozenset({TEMPORARY_ERROR, OPERATION_IN_PROCESS})

#: Gateway result code -> Evolution status. Covers every ``Code`` (tests enforce it).
STATUS_BY_CODE: Final[dict[Code, str]] = {
    Code.OK: OK,
    Code.UNKNOWN_PLAYER: INVALID_PARAMETER,
    Code.PLAYER_EXISTS: UNKNOWN_ERROR,
    Code.PLAYER_BLOCKED: FINAL_ERROR_ACTION_FAILED,
    Code.CURRENCY_MISMATCH: INVALID_PARAMETER,
    Code.INSUFFICIENT_FUNDS: INSUFFICIENT_FUNDS,
    Code.IDEMPOTENCY_CONFLICT: BET_ALREADY_EXIST,
    Code.UNKNOWN_TRANSACTION: BET_DOES_NOT_EXIST,
    Code.TRANSACTION_ROLLED_BACK: BET_ALREADY_SETTLED,
    Code.TRANSACTION_SETTLED: BET_ALREADY_SETTLED,
    Code.LIMIT_REACHED: FINAL_ERROR_ACTION_FAILED,
    Code.INVALID_REQUEST: INVALID_PARAMETER,
    Code.INVALID_AMOUNT: INVALID_PARAMETER,
    Code.UNKNOWN_CURRENCY: INVALID_PARAMETER,
    Code.PAYLOAD_TOO_LARGE: INVALID_PARAMETER,
    Code.UNKNOWN_PROVIDER: INVALID_TOKEN_ID,
    Code.UNAUTHORIZED: INVALID_TOKEN_ID,
    Code.INVALID_SIGNATURE: INVALID_TOKEN_ID,
    Code.INVALID_TOKEN: INVALID_SID,
    Code.TOKEN_EXPIRED: INVALID_SID,
}

#: Evolution's retryable answer: rate limited, overloaded, shard or Redis unavailable, or an
#: unexpected error. Evolution cancels a debit answered with it and retries a credit/cancel.
RETRYABLE_STATUS: Final = TEMPORARY_ERROR

#: Exceptions from ``ctx.submit`` / ``ctx.sessions`` that mean "try again later".
RETRYABLE_EXCEPTIONS: Final = (Overloaded, ShardUnavailable, SessionStoreUnavailable)


def status_for(code: Code) -> str:
    """Evolution status for a gateway ``Code``; ``TEMPORARY_ERROR`` for a code added later."""
    return STATUS_BY_CODE.get(code, RETRYABLE_STATUS)
