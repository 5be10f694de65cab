"""The ONE table mapping gateway result codes to SoftSwiss answers: (HTTP status, code).

Source: README.md, "Protocol facts" ("Errors") and "Certification" (the status table of
the production BGaming wallet, S1 there, which the casino's SoftSwiss acceptance test S3
confirms for code 100). The messages are the ones that wallet sends with each code:
100 "Player has not enough funds to process an action", 101 "Player is invalid",
105 "Player reached customized bet limit", 110 "Player is disabled", 154 "Currency is not
allowed for the player", 400 "Bad request", 403 "Forbidden", 404 "Not found", 503 "Service
is unavailable".

Every error body is ``{"code": <int>, "message": <str>}`` plus ``balance`` (minor units)
when the wallet knows it. The HTTP status of each code (README.md "Certification",
"Status table"):

* **412 only for code 100** (insufficient funds): S1 and S3 both.
* 101 (unknown player, bad session), 105 (limit), 154 (wrong currency) and 400 (bad
  request, duplicate, rolled back, settled): **HTTP 400**, S1's default for its player and
  request errors.
* 110 (blocked or self-excluded player): **HTTP 403**, as S1 sends it.
* 403 (bad signature) on 403, 404 (nothing to pay or undo) on 404.
* Never an HTTP 500: ``500 Unknown error`` is not sent. Anything retryable -- the shard
  overloaded or restarting, Redis down, the provider's rate limit, an unexpected fault --
  is HTTP 503 code 503 with ``Retry-After`` (``RETRYABLE``): SoftSwiss retries a 5xx.

One difference by what was refused, explicit here (``WIN_STATUS_BY_CODE``): a refused
**win** whose round's bet was rolled back (``TRANSACTION_ROLLED_BACK``) is 403 / 403 (S1:
"Bet has been refunded"), while the same code for a bet (its ``action_id`` was rolled back
before it arrived) or a rollback (of something already rolled back) is 400 / 400.
``UNKNOWN_TRANSACTION`` is 404 / 404 everywhere: a win in a round with no bet (S1: "Bet
transaction record not found"), a rollback naming what is neither a bet nor a win of this
player.
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
PLAYER_INVALID: Final = Status(400, 101, "Player is invalid")
BET_LIMIT: Final = Status(400, 105, "Player reached customized bet limit")
PLAYER_DISABLED: Final = Status(403, 110, "Player is disabled")
CURRENCY_NOT_ALLOWED: Final = Status(400, 154, "Currency is not allowed for the player")
BAD_REQUEST: Final = Status(400, 400, "Bad request")
FORBIDDEN: Final = Status(403, 403, "Forbidden. (Request sign doesn't match)")
NOT_FOUND: Final = Status(404, 404, "Not found")
DUPLICATE: Final = Status(400, 400, "Bad request. (action_id reused with different content)")
ROLLED_BACK: Final = Status(400, 400, "Bad request. (action was rolled back)")
SETTLED: Final = Status(400, 400, "Bad request. (action's round is already finished)")
#: A win refused because its round's bet (or the win itself) was rolled back (S1).
REFUNDED: Final = Status(403, 403, "Forbidden. (Bet has been refunded)")
#: The retryable answer (HTTP 503 + Retry-After): overload, restart, Redis down, rate
#: limit, an unexpected fault. Never sent for bad input.
RETRYABLE: Final = Status(503, 503, "Service is unavailable")

#: Every code this adapter may send (README.md "Errors"); tests enforce it.
SPEC_CODES: Final = frozenset(
    {100, 101, 105, 106, 107, 110, 153, 154, 155, 400, 403, 404, 405, 406, 500, 502, 503, 504,
     *range(600, 621), 700}
)

#: Gateway result code -> SoftSwiss answer (bets, rollbacks, balance requests, freespins,
#: refusals of the adapter). Covers every ``Code`` (tests enforce it).
STATUS_BY_CODE: Final[dict[Code, Status]] = {
    Code.OK: OK,
    Code.UNKNOWN_PLAYER: PLAYER_INVALID,
    Code.PLAYER_EXISTS: BAD_REQUEST,
    Code.PLAYER_BLOCKED: PLAYER_DISABLED,
    Code.CURRENCY_MISMATCH: CURRENCY_NOT_ALLOWED,
    Code.INSUFFICIENT_FUNDS: NOT_ENOUGH_FUNDS,
    Code.IDEMPOTENCY_CONFLICT: DUPLICATE,
    Code.UNKNOWN_TRANSACTION: NOT_FOUND,
    Code.TRANSACTION_ROLLED_BACK: ROLLED_BACK,
    Code.TRANSACTION_SETTLED: SETTLED,
    Code.LIMIT_REACHED: BET_LIMIT,
    # Responsible gaming (docs/RESPONSIBLE_GAMING.md; README.md, "Responsible gaming").
    Code.DEPOSIT_LIMIT_REACHED: BET_LIMIT,
    Code.LOSS_LIMIT_REACHED: BET_LIMIT,
    Code.WAGER_LIMIT_REACHED: BET_LIMIT,
    Code.SESSION_TIME_LIMIT_REACHED: BET_LIMIT,
    Code.EXCLUSION_PERIOD_NOT_OFFERED: BAD_REQUEST,  # not a provider call
    Code.NOT_EXCLUDED: BAD_REQUEST,  # not a provider call
    Code.PLAYER_EXCLUDED: PLAYER_DISABLED,
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

#: The same table for a refused **win** (a ``/play`` win action or a derived closing win):
#: no win on a rolled-back round is 403 / 403, as S1 answers it.
WIN_STATUS_BY_CODE: Final[dict[Code, Status]] = {
    **STATUS_BY_CODE,
    Code.TRANSACTION_ROLLED_BACK: REFUNDED,
}

#: Exceptions from ``ctx.submit`` / ``ctx.sessions`` that mean "try again later".
RETRYABLE_EXCEPTIONS: Final = (Overloaded, ShardUnavailable, SessionStoreUnavailable)


def status_for(code: Code, *, win: bool = False) -> Status:
    """SoftSwiss answer for a gateway ``Code`` (``win``: the refused action was a win);
    ``RETRYABLE`` for a code added later."""
    return (WIN_STATUS_BY_CODE if win else STATUS_BY_CODE).get(code, RETRYABLE)
