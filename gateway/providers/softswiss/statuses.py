"""The ONE table mapping gateway result codes to SoftSwiss answers: (HTTP status, code).

Source: README.md ("Errors": insufficient
funds is HTTP 412 with ``{code: 100, message, balance}``; a bad signature is 403; the other
codes are 101, 105, 106, 107, 110, 153, 154, 155, 400, 403, 404, 405, 406, 500, 502, 503,
504, 600-620, 700). README.md lists the codes without their meanings; the messages below
are the ones public integrations of the same protocol (the casino wallet side of
SoftSwiss / BGaming and its "universal" game-provider API) send with each code:
100 "Player has not enough funds to process an action", 101 "Player is invalid",
105 "Player reached customized bet limit", 106 "Bet exceeded max bet limit", 107 "Game is
forbidden to the player", 110 "Player is disabled", 400 "Bad request", 403 "Forbidden",
404 "Not found", 500 "Unknown error", 503 "Service is unavailable".

Every error body is ``{"code": <int>, "message": <str>}`` plus ``balance`` (minor units)
when the wallet knows it. Conventions (README.md, "Choices"):

* A code below 400 is a business refusal and travels on HTTP 412 (README.md gives 412
  for code 100; the other player-level codes are of the same kind). A code of 400 or more
  is also the HTTP status (400, 403, 404, 503), as in README.md's "bad signature is 403".
* Never an HTTP 500: ``500 Unknown error`` is not sent. Anything retryable -- the shard
  overloaded or restarting, Redis down, the provider's rate limit, an unexpected fault --
  is HTTP 503 code 503 with ``Retry-After`` (``RETRYABLE``): SoftSwiss retries a 5xx.

Choices where README.md is silent:

* ``PLAYER_BLOCKED`` -> 412 / 110 ("Player is disabled"): the player exists but may not bet
  (blocked or self-excluded); wins and rollbacks still pass (README.md "Common ground").
* ``UNKNOWN_PLAYER``, ``CURRENCY_MISMATCH``, ``INVALID_TOKEN``, ``TOKEN_EXPIRED`` -> 412 /
  101 ("Player is invalid"): SoftSwiss names an account by ``user_id`` + ``currency``; no
  such account, or a ``session_id`` that does not (or no longer) vouch for it, is an invalid
  player. Final, so SoftSwiss does not retry a win for a non-existent account for days.
* ``LIMIT_REACHED`` -> 412 / 105 ("Player reached customized bet limit"): the shard's limit
  (open bets per player) is a per-player limit.
* ``IDEMPOTENCY_CONFLICT`` (an ``action_id`` reused with other content),
  ``TRANSACTION_ROLLED_BACK`` (a bet whose ``action_id`` was rolled back before it arrived;
  a rollback of a bet already rolled back) and ``TRANSACTION_SETTLED`` (a rollback of a bet
  whose round was finished) -> 400 / 400: SoftSwiss has no "duplicate" or "already settled"
  code; the answer must be final (not 5xx), must not be a success (nothing moved) and must
  not blame the player (1xx). The message tells the three apart.
* ``UNKNOWN_TRANSACTION`` -> 404 / 404 ("Not found"): a rollback naming an action that is
  not a bet of this player (the shard rolls back bets only).
* ``INVALID_REQUEST``, ``INVALID_AMOUNT``, ``UNKNOWN_CURRENCY``, ``PAYLOAD_TOO_LARGE`` ->
  400 / 400 ("Bad request"): malformed input, final.
* ``INVALID_SIGNATURE``, ``UNAUTHORIZED`` -> 403 / 403 ("Forbidden").
* ``UNKNOWN_PROVIDER`` -> 404 / 404; ``PLAYER_EXISTS`` -> 400 / 400 (neither is produced on
  SoftSwiss paths; final answers all the same).
"""

from __future__ import annotations

from typing import Final, NamedTuple

from gateway.edge.game_session import SessionStoreUnavailable
from gateway.shards.commands import Code, Overloaded, ShardUnavailable


class Status(NamedTuple):
    """One SoftSwiss answer: ``http`` status, ``code`` in the body (None = success, no
    ``code`` field) and the ``message`` sent with it."""

    http: int
    code: int | None
    message: str


OK: Final = Status(200, None, "")
NOT_ENOUGH_FUNDS: Final = Status(412, 100, "Player has not enough funds to process an action")
PLAYER_INVALID: Final = Status(412, 101, "Player is invalid")
BET_LIMIT: Final = Status(412, 105, "Player reached customized bet limit")
PLAYER_DISABLED: Final = Status(412, 110, "Player is disabled")
BAD_REQUEST: Final = Status(400, 400, "Bad request")
FORBIDDEN: Final = Status(403, 403, "Forbidden. (Request sign doesn't match)")
NOT_FOUND: Final = Status(404, 404, "Not found")
DUPLICATE: Final = Status(400, 400, "Bad request. (action_id reused with different content)")
ROLLED_BACK: Final = Status(400, 400, "Bad request. (action was rolled back)")
SETTLED: Final = Status(400, 400, "Bad request. (action's round is already finished)")
#: The retryable answer (HTTP 503 + Retry-After): overload, restart, Redis down, rate
#: limit, an unexpected fault. Never sent for bad input.
RETRYABLE: Final = Status(503, 503, "Service is unavailable")

#: Every code this adapter may send (README.md "Errors"); tests enforce it.
SPEC_CODES: Final = frozenset(
    {100, 101, 105, 106, 107, 110, 153, 154, 155, 400, 403, 404, 405, 406, 500, 502, 503, 504,
     *range(600, 621), 700}
)

#: Gateway result code -> SoftSwiss answer. Covers every ``Code`` (tests enforce it).
STATUS_BY_CODE: Final[dict[Code, Status]] = {
    Code.OK: OK,
    Code.UNKNOWN_PLAYER: PLAYER_INVALID,
    Code.PLAYER_EXISTS: BAD_REQUEST,
    Code.PLAYER_BLOCKED: PLAYER_DISABLED,
    Code.CURRENCY_MISMATCH: PLAYER_INVALID,
    Code.INSUFFICIENT_FUNDS: NOT_ENOUGH_FUNDS,
    Code.IDEMPOTENCY_CONFLICT: DUPLICATE,
    Code.UNKNOWN_TRANSACTION: NOT_FOUND,
    Code.TRANSACTION_ROLLED_BACK: ROLLED_BACK,
    Code.TRANSACTION_SETTLED: SETTLED,
    Code.LIMIT_REACHED: BET_LIMIT,
    Code.INVALID_REQUEST: BAD_REQUEST,
    Code.INVALID_AMOUNT: BAD_REQUEST,
    Code.UNKNOWN_CURRENCY: BAD_REQUEST,
    Code.PAYLOAD_TOO_LARGE: BAD_REQUEST,
    Code.UNKNOWN_PROVIDER: NOT_FOUND,
    Code.UNAUTHORIZED: FORBIDDEN,
    Code.INVALID_SIGNATURE: FORBIDDEN,
    Code.INVALID_TOKEN: PLAYER_INVALID,
    Code.TOKEN_EXPIRED: PLAYER_INVALID,
}

#: Exceptions from ``ctx.submit`` / ``ctx.sessions`` that mean "try again later".
RETRYABLE_EXCEPTIONS: Final = (Overloaded, ShardUnavailable, SessionStoreUnavailable)


def status_for(code: Code) -> Status:
    """SoftSwiss answer for a gateway ``Code``; ``RETRYABLE`` for a code added later."""
    return STATUS_BY_CODE.get(code, RETRYABLE)
