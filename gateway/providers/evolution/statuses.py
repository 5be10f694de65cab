"""The ONE table mapping gateway result codes to Evolution One Wallet statuses.

Source: README.md ("Statuses", the licensee test list, "Certification") and "Common
ground". Every Evolution answer is HTTP 200 with one of these strings in ``status``
(README.md, choice 1). README.md: "the first and last are retryable" -- read as the first
and last *error* statuses of its list, ``TEMPORARY_ERROR`` and ``OPERATION_IN_PROCESS``
(``OK`` cannot be a retryable status). The gateway only ever sends ``TEMPORARY_ERROR`` as
its retryable answer.

Rows taken from README.md (licensee test list):

* ``INSUFFICIENT_FUNDS`` -> ``INSUFFICIENT_FUNDS`` (with the unchanged balance);
* ``UNKNOWN_TRANSACTION`` -> ``BET_DOES_NOT_EXIST`` (credit or cancel with an unknown
  ``refId``);
* ``TRANSACTION_SETTLED`` -> ``BET_ALREADY_SETTLED`` (cancel after credit, a second credit);
* ``TRANSACTION_ROLLED_BACK`` -> ``BET_ALREADY_SETTLED`` (credit after cancel);
* ``IDEMPOTENCY_CONFLICT`` -> ``BET_ALREADY_EXIST`` (a repeated debit that differs: "never
  a second deduction"; an exact repeat is answered ``OK`` with the stored outcome);
* ``UNKNOWN_PLAYER`` -> ``INVALID_PARAMETER`` (licensee test "checkUsingInvalidUserId": a
  ``userId`` that names nobody, on ``/check``, ``/debit``, ``/credit`` and ``/cancel``);
* ``PLAYER_BLOCKED`` -> ``ACCOUNT_LOCKED`` (a blocked or self-excluded player's bet;
  README.md "Certification", case 28: Evolution's status for a locked account).

Per-endpoint rows (``ENDPOINT_STATUS``, ``status_of_result``), each one case of README.md
"Certification":

* ``/debit`` + ``TRANSACTION_ROLLED_BACK`` -> ``FINAL_ERROR_ACTION_FAILED``: the late debit
  of a ``refId`` that was cancelled first (case 14). ``BET_ALREADY_SETTLED`` means
  "success, already settled" to Evolution, which a refused stake must never say;
* ``/cancel`` answered OK by the shard with ``Result.tombstoned`` (the ``refId`` was never
  seen, the first time and on every retry) -> ``BET_DOES_NOT_EXIST`` (case 13);
* ``/cancel`` answered OK as a replay (``Result.replayed``: the same cancel again) ->
  ``BET_ALREADY_SETTLED`` (case 16: "BET_ALREADY_SETTLED or OK"; Evolution's own
  description of that status is "Success -- bet has been already settled").

Choices where README.md names no status (also in README.md, "Status table"):

* ``LIMIT_REACHED`` (too many open bets) -> ``FINAL_ERROR_ACTION_FAILED``: a technical cap of
  the gateway, not a casino stake / loss / turnover / session-time limit, so none of
  Evolution's ``CASINO_LIMIT_EXCEEDED_*`` statuses says it (case 29);
* ``CURRENCY_MISMATCH``, ``UNKNOWN_CURRENCY``, ``INVALID_AMOUNT``, ``INVALID_REQUEST``,
  ``PAYLOAD_TOO_LARGE`` -> ``INVALID_PARAMETER``: something in the request is wrong;
* ``INVALID_TOKEN`` / ``TOKEN_EXPIRED`` -> ``INVALID_SID`` (README.md: a replaced sid is
  refused with ``INVALID_SID``; an unknown or expired one is the same kind of refusal);
* ``UNAUTHORIZED`` / ``INVALID_SIGNATURE`` / ``UNKNOWN_PROVIDER`` -> ``INVALID_TOKEN_ID``:
  Evolution authenticates with the ``authToken`` API key only;
* ``PLAYER_EXISTS`` -> ``UNKNOWN_ERROR`` (never produced on Evolution paths).
"""

from __future__ import annotations

from typing import Final

from gateway.edge.game_session import SessionStoreUnavailable
from gateway.shards.commands import Code, Overloaded, Result, ShardUnavailable

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
ACCOUNT_LOCKED: Final = "ACCOUNT_LOCKED"

#: Every status README.md lists for Evolution ("Statuses"); nothing else is ever sent.
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
        ACCOUNT_LOCKED,
    }
)

#: The statuses Evolution retries (README.md: "the first and last are retryable").
RETRYABLE_STATUSES: Final = frozenset({TEMPORARY_ERROR, OPERATION_IN_PROCESS})

#: Gateway result code -> Evolution status. Covers every ``Code`` (tests enforce it).
STATUS_BY_CODE: Final[dict[Code, str]] = {
    Code.OK: OK,
    Code.UNKNOWN_PLAYER: INVALID_PARAMETER,
    Code.PLAYER_EXISTS: UNKNOWN_ERROR,
    Code.PLAYER_BLOCKED: ACCOUNT_LOCKED,
    Code.CURRENCY_MISMATCH: INVALID_PARAMETER,
    Code.INSUFFICIENT_FUNDS: INSUFFICIENT_FUNDS,
    Code.IDEMPOTENCY_CONFLICT: BET_ALREADY_EXIST,
    Code.UNKNOWN_TRANSACTION: BET_DOES_NOT_EXIST,
    Code.TRANSACTION_ROLLED_BACK: BET_ALREADY_SETTLED,
    Code.TRANSACTION_SETTLED: BET_ALREADY_SETTLED,
    Code.LIMIT_REACHED: FINAL_ERROR_ACTION_FAILED,
    # Responsible gaming (docs/RESPONSIBLE_GAMING.md; README.md, "Responsible gaming").
    Code.DEPOSIT_LIMIT_REACHED: FINAL_ERROR_ACTION_FAILED,
    Code.LOSS_LIMIT_REACHED: FINAL_ERROR_ACTION_FAILED,
    Code.WAGER_LIMIT_REACHED: FINAL_ERROR_ACTION_FAILED,
    Code.SESSION_TIME_LIMIT_REACHED: FINAL_ERROR_ACTION_FAILED,
    Code.EXCLUSION_PERIOD_NOT_OFFERED: INVALID_PARAMETER,  # not a provider call
    Code.NOT_EXCLUDED: INVALID_PARAMETER,  # not a provider call
    Code.PLAYER_EXCLUDED: ACCOUNT_LOCKED,
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


#: Per-endpoint exceptions to ``STATUS_BY_CODE`` (route path, code) -> status (module docstring).
ENDPOINT_STATUS: Final[dict[tuple[str, Code], str]] = {
    ("/debit", Code.TRANSACTION_ROLLED_BACK): FINAL_ERROR_ACTION_FAILED,
}

#: ``/cancel`` answered OK by the shard: for a ``refId`` never seen (a tombstone now holds it),
#: and for a replay of a cancel already applied (module docstring).
CANCEL_TOMBSTONED_STATUS: Final = BET_DOES_NOT_EXIST
CANCEL_REPLAYED_STATUS: Final = BET_ALREADY_SETTLED


def status_for(code: Code, endpoint: str | None = None) -> str:
    """Evolution status for a gateway ``Code`` on ``endpoint`` (e.g. ``"/debit"``; None: the
    common row); ``TEMPORARY_ERROR`` for a code added later."""
    if endpoint is not None:
        status = ENDPOINT_STATUS.get((endpoint, code))
        if status is not None:
            return status
    return STATUS_BY_CODE.get(code, RETRYABLE_STATUS)


def status_of_result(result: Result, endpoint: str) -> str:
    """The status of a shard ``Result`` answered on ``endpoint``: ``status_for`` plus the two
    ``/cancel`` rows read from the result's flags."""
    if endpoint == "/cancel" and result.code is Code.OK:
        if result.tombstoned:
            return CANCEL_TOMBSTONED_STATUS
        if result.replayed:
            return CANCEL_REPLAYED_STATUS
    return status_for(result.code, endpoint)
