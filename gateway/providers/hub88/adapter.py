"""Hub88 protocol rules as pure functions: decoded request + game session -> Command or Refusal,
and Result -> Hub88 response. No I/O here; ``routes.py`` does the HTTP, Redis and shard calls.

Source: README.md ("Protocol facts", "Common ground", "Certification"); docs/DESIGN.md
sections 3 (money), 5 (idempotency) and 8 (errors). Rules implemented:

* every command acts for the integration's partner in its scope (``caller``: partner id
  and ``"<partner>:<integration>"``); idempotency key = ``transaction_uuid``; player =
  ``user``; round = ``round``; game = ``game_code``.
* amounts are integers x 100000 (``AMOUNT_SCALE``), converted exactly to minor units of
  ``currency``; never rounded. Inexact, negative or above ``money.amount_minor_max`` ->
  refused (``INVALID_AMOUNT`` -> ``RS_ERROR_WRONG_TYPES``), except a positive bet stake that
  cannot be debited as sent and exceeds the balance: ``RS_ERROR_NOT_ENOUGH_MONEY`` with the
  balance (``BalanceCheck``; the status depends on the balance, nothing is debited either
  way). Unknown currency -> ``CURRENCY_MISMATCH`` -> ``RS_ERROR_WRONG_CURRENCY``. A bet must
  be > 0 (a free bet, ``is_free`` or ``is_supplier_promo``, moves no money: it becomes a zero
  debit); a win may be 0.
* ``game_codes`` (the integration's catalogue, empty = none): a bet or win naming another
  game is refused ``RS_ERROR_INVALID_GAME`` (``statuses.UNKNOWN_GAME_STATUS``).
* a token must have been issued for this integration (else ``INVALID_TOKEN``, on every
  endpoint; README.md choice 10).
* bet: the token must be known (else ``INVALID_TOKEN``), name ``user`` (else
  ``INVALID_TOKEN``), not be expired (else ``TOKEN_EXPIRED``; not checked for
  ``is_supplier_promo``, whose bets Hub88 sends after the session) and carry ``currency``
  (else ``CURRENCY_MISMATCH``). -> ``Debit``.
* win: always names its bet (``reference_transaction_uuid`` is required by the schema), so
  the shard refuses a win whose bet is unknown, refused, rolled back or already settled.
  rollback: of a bet only (``credit_reversible`` stays False: Hub88/Caleta never roll back
  wins), so a rollback naming a win is refused. Token expiry is NOT checked on either and
  an unknown or missing token is accepted (``user`` names the player; Hub88 retries these
  for days); a known token naming another user is refused (``INVALID_TOKEN``). ->
  ``Credit`` / ``Rollback``.
* /user/balance: a known, unexpired token naming ``user`` (when sent). -> ``GetBalance`` in
  the session's currency. /user/info: same check when a token is sent; Hub88 documents no
  token for info, so without one the player is ``user`` and the currency is the player's
  only wallet, if it has exactly one.
* responses carry balance = (cash + bonus) minor units as x 100000, rounded toward zero only
  for currencies with more than 5 decimals (``money.minor_to_scaled``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway import money
from gateway.edge.game_session import GameSession
from gateway.providers.hub88.schemas import (
    AMOUNT_SCALE,
    BalanceRequest,
    BetRequest,
    Hub88Response,
    RollbackRequest,
    UserInfoRequest,
    UserInfoResponse,
    WinRequest,
)
from gateway.providers.hub88.statuses import (
    RS_ERROR_WRONG_CURRENCY,
    SYNTAX_STATUS,
    UNKNOWN_GAME_STATUS,
    status_for,
)
from gateway.providers.integration import Caller
from gateway.providers.refusal import Refusal, bounded_value, field_getter
from gateway.shards.commands import (
    Code,
    Credit,
    Debit,
    GetBalance,
    Origin,
    Result,
    Rollback,
)

#: The provider's name: its sandbox integration's name, idempotency source and URL segment.
PROVIDER: Final = "hub88"

# Fields copied into the audit ``request`` dict (docs/DESIGN.md section 4; bounds: providers/refusal.py).
_AUDIT_FIELDS: Final = (
    "request_uuid",
    "user",
    "transaction_uuid",
    "reference_transaction_uuid",
    "round",
    "round_closed",
    "game_code",
    "currency",
    "amount",
    "is_free",
    "is_supplier_promo",
    "reward_uuid",
    "supplier_transaction_id",
)


def refusal_of(code: Code, detail: str) -> Refusal[str]:
    """A refusal answered with the status-table entry for ``code`` (``statuses.status_for``)."""
    return Refusal(code, detail, status_for(code))


def syntax_refusal(detail: str) -> Refusal[str]:
    """Body not JSON, too large or missing a required field: audited INVALID_REQUEST,
    answered RS_ERROR_WRONG_SYNTAX (README.md, choice 5)."""
    return Refusal(Code.INVALID_REQUEST, detail, SYNTAX_STATUS)


def game_refusal(game_code: str) -> Refusal[str]:
    """A game outside the integration's ``game_codes``: audited INVALID_REQUEST, answered
    RS_ERROR_INVALID_GAME (README.md, "Certification", case 13)."""
    return Refusal(Code.INVALID_REQUEST, f"unknown game_code {game_code[:64]!r}", UNKNOWN_GAME_STATUS)


def _check_game(game_code: str | None, game_codes: frozenset[str]) -> Refusal[str] | None:
    """None if the game is known (or there is no catalogue, or no game was named)."""
    if not game_codes or game_code is None or game_code in game_codes:
        return None
    return game_refusal(game_code)


# ---- amounts ------------------------------------------------------------------------


def amount_minor_from_wire(
    amount: int, currency: str, *, amount_minor_max: int, allow_zero: bool
) -> int | Refusal[str]:
    """Hub88 ``amount`` (major units x 100000) -> minor units of ``currency``, or a Refusal.

    EUR 356000 -> 356. Refused: unknown currency (CURRENCY_MISMATCH), not exact in the
    currency's minor unit (EUR 356001), negative, zero unless ``allow_zero``, above
    ``amount_minor_max`` (all INVALID_AMOUNT).
    """
    try:
        minor = money.minor_from_scaled(amount, AMOUNT_SCALE, currency)
        return money.check_amount_minor(
            minor, amount_minor_max=amount_minor_max, allow_zero=allow_zero
        )
    except money.AmountError as exc:
        code = Code.CURRENCY_MISMATCH if exc.code == "unknown_currency" else Code.INVALID_AMOUNT
        return refusal_of(code, exc.detail)


def balance_to_wire(amount_minor: int, currency: str) -> int:
    """Minor units -> Hub88 balance (major units x 100000), never above the true balance."""
    return money.minor_to_scaled(amount_minor, AMOUNT_SCALE, currency)


# ---- session checks -------------------------------------------------------------------


def _check_live_session(
    session: GameSession | None, caller: Caller, user: str | None, now_s: float, *,
    check_expiry: bool = True,
) -> Refusal[str] | None:
    """Token known, issued for this integration, naming ``user`` (if given), not expired
    (unless ``check_expiry`` is False): for bets, balance and info."""
    if session is None:
        return refusal_of(Code.INVALID_TOKEN, "unknown token")
    if not caller.owns(session):
        return refusal_of(Code.INVALID_TOKEN, "token was issued for another provider integration")
    if user is not None and session.player_id != user:
        return refusal_of(Code.INVALID_TOKEN, "token was issued to another user")
    if check_expiry and session.expired(now_s):
        return refusal_of(Code.TOKEN_EXPIRED, "token expired")
    return None


def _check_settlement_session(session: GameSession | None, caller: Caller, user: str) -> Refusal[str] | None:
    """Wins and rollbacks: expiry not checked, unknown token fine; another integration's or
    another user's token not."""
    if session is not None and not caller.owns(session):
        return refusal_of(Code.INVALID_TOKEN, "token was issued for another provider integration")
    if session is not None and session.player_id != user:
        return refusal_of(Code.INVALID_TOKEN, "token was issued to another user")
    return None


# ---- request -> command -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BalanceCheck:
    """A bet refused because its stake cannot be debited as sent (not exact in the currency's
    minor unit, or above ``money.amount_minor_max``), whose answer depends on the balance.

    Nothing is debited either way and nothing is rounded. ``routes.py`` reads the balance
    (``GetBalance``) and answers ``balance_check_refusal``: ``RS_ERROR_NOT_ENOUGH_MONEY`` with
    the balance when the stake as sent (``amount_wire``, major units x 100000) is larger,
    else ``refusal`` (``RS_ERROR_WRONG_TYPES``). Caleta's tests bet ``balance + 0.00001`` and
    int32-max units and expect "not enough money" (README.md, "Certification", case 5).
    """

    refusal: Refusal[str]
    partner_id: str
    player_id: str
    currency: str
    amount_wire: int

    def balance_command(self) -> GetBalance:
        return GetBalance(partner_id=self.partner_id, player_id=self.player_id, currency=self.currency)


def balance_check_refusal(check: BalanceCheck, result: Result) -> tuple[Refusal[str], int | None]:
    """(the refusal to record and answer, the balance in wire units to answer, if known)."""
    found = balance_of(result, check.currency) if result.code is Code.OK else None
    if found is None:
        return check.refusal, None
    balance_wire = balance_to_wire(found[1], check.currency)
    if check.amount_wire > balance_wire:
        return refusal_of(Code.INSUFFICIENT_FUNDS, f"stake exceeds the balance ({check.refusal.detail})"), balance_wire
    return check.refusal, balance_wire


def bet_to_command(
    req: BetRequest,
    session: GameSession | None,
    *,
    caller: Caller,
    now_s: float,
    amount_minor_max: int,
    origin: Origin | None = None,
    game_codes: frozenset[str] = frozenset(),
) -> Debit | Refusal[str] | BalanceCheck:
    """/transaction/bet -> Debit(amount_minor = stake in minor units), a Refusal, or a
    BalanceCheck (a positive stake that cannot be debited as sent, for a live session).

    ``session`` is the token's session (None if never issued); ``now_s`` Unix seconds.
    A free bet (``is_free: true``, or ``is_supplier_promo: true``, Hub88's zero bet before a
    supplier promotion's win) is a zero debit: the player is not charged for a reward round,
    but its key and round are recorded so its win can reference it. A supplier-promotion
    bet's token is not checked for expiry (Hub88 changelog, 26 May 2025).
    """
    promo = req.is_supplier_promo is True
    free = req.is_free is True or promo
    amount = amount_minor_from_wire(
        req.amount, req.currency, amount_minor_max=amount_minor_max, allow_zero=free
    )
    undebitable = (isinstance(amount, Refusal) and amount.code is Code.INVALID_AMOUNT
                   and req.amount > 0 and not free)
    if isinstance(amount, Refusal) and not undebitable:
        return amount
    refusal = _check_game(req.game_code, game_codes)
    if refusal is None:
        refusal = _check_live_session(session, caller, req.user, now_s, check_expiry=not promo)
    if refusal is not None:
        return refusal
    assert session is not None
    if session.currency != req.currency:
        return refusal_of(
            Code.CURRENCY_MISMATCH,
            f"bet currency {req.currency} differs from the session's {session.currency}",
        )
    if isinstance(amount, Refusal):
        return BalanceCheck(refusal=amount, partner_id=caller.partner_id, player_id=req.user,
                            currency=req.currency, amount_wire=req.amount)
    return Debit(
        scope=caller.scope,
        transaction_id=req.transaction_uuid,
        partner_id=caller.partner_id,
        player_id=req.user,
        currency=req.currency,
        amount_minor=0 if free else amount,
        round_id=req.round or req.transaction_uuid,
        game_id=req.game_code,
        origin=origin,
        session_started_us=session.started_us() if session is not None else None,
    )


def win_to_command(
    req: WinRequest,
    session: GameSession | None,
    *,
    caller: Caller,
    amount_minor_max: int,
    origin: Origin | None = None,
    game_codes: frozenset[str] = frozenset(),
) -> Credit | Refusal[str]:
    """/transaction/win -> Credit(amount_minor = payout in minor units, may be 0), or a Refusal.

    The credit always names its bet (``reference_transaction_uuid``), so the shard pays it
    only on an open bet of this player: unknown or refused -> ``UNKNOWN_TRANSACTION``,
    rolled back -> ``TRANSACTION_ROLLED_BACK``, already settled by a win ->
    ``TRANSACTION_SETTLED``. Token expiry is not checked; ``session`` may be None (unknown
    or absent token). Without ``round`` the round is the referenced bet's id, as for that bet.
    """
    amount = amount_minor_from_wire(
        req.amount, req.currency, amount_minor_max=amount_minor_max, allow_zero=True
    )
    if isinstance(amount, Refusal):
        return amount
    refusal = _check_game(req.game_code or None, game_codes)
    if refusal is None:
        refusal = _check_settlement_session(session, caller, req.user)
    if refusal is not None:
        return refusal
    return Credit(
        scope=caller.scope,
        transaction_id=req.transaction_uuid,
        partner_id=caller.partner_id,
        player_id=req.user,
        currency=req.currency,
        amount_minor=amount,
        round_id=req.round or req.reference_transaction_uuid,
        game_id=req.game_code or "",
        bet_transaction_id=req.reference_transaction_uuid,
        round_closed=req.round_closed is True,
        credit_type="win",
        origin=origin,
    )


def rollback_to_command(
    req: RollbackRequest, session: GameSession | None, *, caller: Caller, origin: Origin | None = None
) -> Rollback | Refusal[str]:
    """/transaction/rollback -> Rollback of ``reference_transaction_uuid``, or a Refusal.

    Only bets are rolled back (``credit_reversible`` is left False: "Caleta RGS only rollback
    bets, winnings are never rolled back"), so the shard refuses a rollback naming a win
    (``UNKNOWN_TRANSACTION`` -> ``RS_ERROR_TRANSACTION_DOES_NOT_EXIST``) and moves nothing.
    Token expiry is not checked. ``currency`` (used only to answer with a balance when the
    reference is unknown) is the session's if known, else the request's if it is a known
    currency, else None.
    """
    refusal = _check_settlement_session(session, caller, req.user)
    if refusal is not None:
        return refusal
    if session is not None:
        currency: str | None = session.currency
    else:
        currency = req.currency if money.is_currency(req.currency) else None
    return Rollback(
        scope=caller.scope,
        transaction_id=req.transaction_uuid,
        partner_id=caller.partner_id,
        player_id=req.user,
        reference_transaction_id=req.reference_transaction_uuid,
        currency=currency,
        round_id=req.round or None,
        origin=origin,
    )


def balance_to_command(
    req: BalanceRequest, session: GameSession | None, *, caller: Caller, now_s: float
) -> GetBalance | Refusal[str]:
    """/user/balance -> GetBalance in the session's currency; needs a live token for ``user``."""
    refusal = _check_live_session(session, caller, req.user, now_s)
    if refusal is not None:
        return refusal
    assert session is not None
    return GetBalance(partner_id=caller.partner_id, player_id=session.player_id, currency=session.currency)


def info_to_command(
    req: UserInfoRequest, session: GameSession | None, *, caller: Caller, now_s: float
) -> GetBalance | Refusal[str]:
    """/user/info -> GetBalance for ``user``.

    With a token (not in Hub88's documented request, checked when sent): a live token for
    ``user``, balance in its currency. Without one: every wallet of ``user``.
    """
    if req.token is None:
        return GetBalance(partner_id=caller.partner_id, player_id=req.user, currency=None)
    refusal = _check_live_session(session, caller, req.user, now_s)
    if refusal is not None:
        return refusal
    assert session is not None
    return GetBalance(partner_id=caller.partner_id, player_id=req.user, currency=session.currency)


# ---- result -> response ---------------------------------------------------------------


def balance_of(result: Result, currency: str | None) -> tuple[str, int] | None:
    """(currency, cash + bonus minor units) from a Result, or None if it carries none.

    Money commands fill ``currency``/``cash_minor``/``bonus_minor``; GetBalance fills
    ``balances``: the one in ``currency``, or the only one when ``currency`` is None.
    """
    if (result.currency is not None and result.cash_minor is not None
            and (currency is None or result.currency == currency)):
            return result.currency, result.cash_minor + (result.bonus_minor or 0)
    if currency is None:
        if len(result.balances) == 1:
            b = result.balances[0]
            return b.currency, b.cash_minor + b.bonus_minor
        return None
    for b in result.balances:
        if b.currency == currency:
            return b.currency, b.cash_minor + b.bonus_minor
    return None


def response_for_result(
    result: Result, *, user: str | None, request_uuid: str | None, currency: str | None
) -> Hub88Response:
    """Bet/win/rollback answer: status from the table, balance after the operation.

    Replays carry the stored outcome and balance (same mapping). Refusals by the wallet
    (e.g. ``RS_ERROR_NOT_ENOUGH_MONEY``) carry the unchanged balance the shard reports.
    """
    found = balance_of(result, None)
    if found is None:
        return Hub88Response(
            user=user,
            status=status_for(result.code),
            request_uuid=request_uuid,
            currency=result.currency or currency,
        )
    cur, minor = found
    return Hub88Response(
        user=user,
        status=status_for(result.code),
        request_uuid=request_uuid,
        currency=cur,
        balance=balance_to_wire(minor, cur),
    )


def response_for_balance(
    result: Result,
    *,
    user: str | None,
    request_uuid: str | None,
    currency: str | None,
    info: bool = False,
) -> Hub88Response:
    """/user/balance and /user/info answer from a GetBalance result.

    ``currency`` is the session's (None for info without a token). An OK result without a
    wallet in that currency answers ``RS_ERROR_WRONG_CURRENCY``. Info adds ``country``.
    """
    status = status_for(result.code)
    found = balance_of(result, currency)
    if found is None and result.code is Code.OK and currency is not None:
        status = RS_ERROR_WRONG_CURRENCY
    fields: dict = {"user": user, "status": status, "request_uuid": request_uuid}
    if found is not None:
        cur, minor = found
        fields["currency"] = cur
        fields["balance"] = balance_to_wire(minor, cur)
    elif currency is not None:
        fields["currency"] = currency
    if info:
        return UserInfoResponse(country=result.country, **fields)
    return Hub88Response(**fields)


def response_for_refusal(
    refusal: Refusal[str], *, user: str | None, request_uuid: str | None, currency: str | None
) -> Hub88Response:
    """Answer to a Refusal: its status, no balance (the wallet was not asked)."""
    return Hub88Response(
        user=user, status=refusal.status, request_uuid=request_uuid, currency=currency
    )


# ---- audit --------------------------------------------------------------------------


def audit_request(source: object) -> dict:
    """A small, bounded dict of what could be read from a request, for ``record_refusal``.

    ``source`` is a decoded request struct or the generic JSON value of an undecodable-but-
    parseable body. Tokens are never copied, only whether one was sent.
    """
    out: dict = {}
    get = field_getter(source)
    if get is None:
        return out
    for name in _AUDIT_FIELDS:
        value = get(name, None)
        if value is not None:
            out[name] = bounded_value(value)
    out["token_sent"] = get("token", None) is not None
    return out

