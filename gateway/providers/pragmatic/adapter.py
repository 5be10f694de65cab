"""Pragmatic Play protocol rules as pure functions: decoded request (+ session) -> Command or
Refusal, and Result -> response. No I/O here; ``routes.py`` does HTTP, Redis and the shard.

Source: README.md ("Protocol facts", "Common ground"); docs/DESIGN.md
sections 3 (money), 5 (idempotency) and 8 (errors). Rules implemented (README.md has the
reasons for each choice):

* every command acts for the integration's partner in its scope (``caller``: partner id
  and ``"<partner>:<integration>"``); the idempotency key of a money movement is its
  ``reference`` ("unique per money movement; the idempotency key"); player = ``userId``.
* amounts are decimal strings in major units, converted exactly by
  ``amount_minor_from_decimal``; inexact, malformed, negative (except adjustment) or above
  ``money.amount_minor_max`` -> error 7.
* a token must have been issued for this integration (and so for its partner), else error
  4, on every endpoint that reads one (README.md choice 11).
* bet -> ``Debit(roundId, gameId)``; needs a live token of this integration naming
  ``userId`` (error 4 otherwise); the currency is the session's.
* result -> ``Credit(credit_type="win", bet_transaction_id=None, round_closed=True,
  round_policy="required")``: it names the round only, so it pays the round and settles every
  open bet of it; a round with no bet, or whose bets were all refunded, is refused (120,
  ``statuses.ENDPOINT_STATUS``). With ``promoWinAmount`` > 0: an ``Atomic`` of that win and a
  ``Credit(credit_type="promo")`` keyed ``promoWinReference``.
* bonusWin / jackpotWin / promoWin -> ``Credit`` of type "bonus" / "jackpot" / "promo";
  bonusWin credits its amount only under ``bonus_win = "credit"`` (else a zero credit that
  records its reference: settings.py, README.md "Certification" case 25).
* endRound -> zero ``Credit`` keyed ``endRound:<userId>:<roundId>`` with ``round_closed``.
* refund -> ``Rollback`` of the bet ``reference``, keyed ``refund:<reference>``.
* adjustment -> positive or zero: ``Credit(credit_type="adjustment")``; negative: ``Debit``.
* settlement calls (result, wins, endRound, refund, adjustment) accept an expired or
  unknown token; a token of another integration or partner, or one of this integration
  naming another user, is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

from gateway import money
from gateway.edge.game_session import GameSession
from gateway.providers.integration import Caller
from gateway.providers.pragmatic.schemas import (
    AdjustmentRequest,
    AuthenticateRequest,
    BalancePerGameRequest,
    BalancePerGameResponse,
    BalanceRequest,
    BetRequest,
    BonusWinRequest,
    EndRoundRequest,
    GameBalance,
    JackpotWinRequest,
    PragmaticResponse,
    PromoWinRequest,
    RefundRequest,
    ResultRequest,
    SessionExpiredRequest,
)
from gateway.providers.pragmatic.statuses import (
    BAD_PARAMETERS,
    END_ROUND,
    RETRYABLE_ERROR,
    SUCCESS,
    description_for,
    status_for,
)
from gateway.providers.refusal import AUDIT_STR_CHARS_MAX, Refusal
from gateway.shards.commands import (
    ROUND_REQUIRED,
    Atomic,
    Code,
    Credit,
    Debit,
    GetBalance,
    Origin,
    Result,
    Rollback,
)

#: The provider's name: its sandbox integration's name, idempotency source and URL segment.
PROVIDER: Final = "pragmatic"

#: Key prefixes of the commands whose key Pragmatic does not name itself.
END_ROUND_KEY_PREFIX: Final = "endRound:"
REFUND_KEY_PREFIX: Final = "refund:"

# A plain decimal in major units: digits, optionally a point and digits, optionally a
# leading "-" (only adjustments may be negative). No exponent, no "+", no blanks, no "_".
_DECIMAL_TEXT_RE: Final = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,18})?")

_AUDIT_FIELDS: Final = (
    "providerId", "userId", "gameId", "roundId", "amount", "reference", "timestamp",
    "bonusCode", "jackpotId", "promoWinAmount", "promoWinReference", "promoCampaignID",
    "campaignId", "campaignType", "currency", "platform", "gameIdList", "validBetAmount",
)
_AUDIT_NAMES_MAX: Final = 32


def refusal_of(code: Code, detail: str) -> Refusal[int]:
    """A refusal answered with the status-table ``error`` for ``code`` (``statuses.status_for``)."""
    return Refusal(code, detail, status_for(code))


def bad_parameters(detail: str) -> Refusal[int]:
    """Malformed or missing parameters: audited INVALID_REQUEST, answered 7."""
    return Refusal(Code.INVALID_REQUEST, detail, BAD_PARAMETERS)


# ---- amounts ------------------------------------------------------------------------


def amount_minor_from_decimal(
    text: str,
    currency: str,
    *,
    amount_minor_max: int,
    allow_zero: bool,
    allow_negative: bool = False,
) -> int | Refusal[int]:
    """Pragmatic amount (decimal string, major units) -> signed minor units, or a Refusal.

    README.md "Fields": ``amount`` (decimal string). ``"12.50"`` EUR -> 1250,
    ``"100"`` JPY -> 100. Parsed exactly: the text must be a plain decimal
    (``-?digits[.digits]``), it is read with ``decimal.Decimal`` and converted by
    ``money.minor_from_decimal``: more significant fraction digits than the currency has
    (``"1.005"`` EUR) is refused; trailing zeros (``"1.50"``, ``"100.0"`` JPY) change no
    value and are accepted. Refused as ``INVALID_AMOUNT`` (error 7): malformed text, not
    exact, negative unless ``allow_negative``, zero unless ``allow_zero``, |amount| above
    ``amount_minor_max``. An unknown currency is ``UNKNOWN_CURRENCY`` (error 7).
    """
    if not isinstance(text, str) or not _DECIMAL_TEXT_RE.fullmatch(text):
        return refusal_of(Code.INVALID_AMOUNT, f"amount {str(text)[:40]!r} is not a plain decimal")
    try:
        minor = money.minor_from_decimal(Decimal(text), currency)
        if minor < 0 and not allow_negative:
            raise money.AmountError("invalid_amount", "amount must not be negative")
        money.check_amount_minor(abs(minor), amount_minor_max=amount_minor_max, allow_zero=allow_zero)
    except money.AmountError as exc:
        code = Code.UNKNOWN_CURRENCY if exc.code == "unknown_currency" else Code.INVALID_AMOUNT
        return refusal_of(code, exc.detail)
    except InvalidOperation:
        return refusal_of(Code.INVALID_AMOUNT, "amount is not a decimal number")
    return minor


def decimal_from_minor(amount_minor: int, currency: str) -> Decimal:
    """Minor units -> exact Decimal major units for ``cash``/``bonus`` (1250 EUR -> 12.50)."""
    return money.minor_to_decimal(amount_minor, currency)


# ---- sessions -------------------------------------------------------------------------


def _foreign_session() -> Refusal[int]:
    return refusal_of(Code.INVALID_TOKEN, "token was issued for another provider integration")


def usable_session(session: GameSession | None, caller: Caller) -> GameSession | None:
    """The session if it is the caller's and current: opened for this integration (and so
    for its partner), not rotated; else None.

    A rotated token (``replaced_by``) counts as unknown. The checks below refuse a token of
    another integration or partner before asking this.
    """
    if session is None or not caller.owns(session) or session.replaced_by is not None:
        return None
    return session


def check_live_session(
    session: GameSession | None, caller: Caller, user_id: str | None, now_s: float
) -> Refusal[int] | None:
    """authenticate, balance, bet: a known current token of this integration, naming
    ``user_id`` (when given), not expired -- else error 4 (README.md "Common ground": bets
    must not be accepted with an expired token)."""
    if session is not None and not caller.owns(session):
        return _foreign_session()
    session = usable_session(session, caller)
    if session is None:
        return refusal_of(Code.INVALID_TOKEN, "unknown token")
    if user_id is not None and session.player_id != user_id:
        return refusal_of(Code.INVALID_TOKEN, "token was issued to another user")
    if session.expired(now_s):
        return refusal_of(Code.TOKEN_EXPIRED, "token expired")
    return None


def check_settlement_session(
    session: GameSession | None, caller: Caller, user_id: str
) -> Refusal[int] | None:
    """result, wins, endRound, refund, adjustment: expiry is not checked and an unknown (or
    rotated) token is fine (Pragmatic retries these for days; ``userId`` names the player),
    but a token of another integration or partner, or this integration's token naming
    another user, is refused (error 4)."""
    if session is not None and not caller.owns(session):
        return _foreign_session()
    session = usable_session(session, caller)
    if session is not None and session.player_id != user_id:
        return refusal_of(Code.INVALID_TOKEN, "token was issued to another user")
    return None


def settlement_currency(
    request_currency: str | None, session: GameSession | None, *, caller: Caller
) -> str | None:
    """The currency of a settlement: the request's if sent, else the (usable) session's, else
    None (the routes then use the player's only wallet)."""
    if request_currency is not None:
        return request_currency
    session = usable_session(session, caller)
    return session.currency if session is not None else None


def only_wallet_currency(result: Result) -> str | Refusal[int]:
    """The currency of a player's only wallet, from ``GetBalance(player, None)``.

    UNKNOWN_PLAYER -> error 2; several wallets and no session or ``currency`` to choose ->
    error 7 (the wallet cannot tell which one the game played in).
    """
    if result.code is not Code.OK:
        return refusal_of(result.code, result.detail or "player lookup refused")
    if len(result.balances) != 1:
        return bad_parameters("no session and no currency: the player has several wallets")
    return result.balances[0].currency


# ---- request -> command -------------------------------------------------------------


def bet_to_command(
    req: BetRequest,
    session: GameSession | None,
    *,
    caller: Caller,
    now_s: float,
    amount_minor_max: int,
    origin: Origin | None = None,
) -> Debit | Refusal[int]:
    """/bet.html -> ``Debit(amount_minor >= 0, round_id=roundId, game_id=gameId)`` or a Refusal.

    Token rules: ``check_live_session`` (error 4). Currency: the session's; a ``currency``
    parameter that differs -> CURRENCY_MISMATCH (error 7). A zero stake (free-round bet) is
    accepted and moves no money.
    """
    refusal = check_live_session(session, caller, req.userId, now_s)
    if refusal is not None:
        return refusal
    assert session is not None
    currency = session.currency
    if req.currency is not None and req.currency != currency:
        return refusal_of(
            Code.CURRENCY_MISMATCH, f"bet currency {req.currency[:16]} is not the session's {currency}"
        )
    amount = amount_minor_from_decimal(
        req.amount, currency, amount_minor_max=amount_minor_max, allow_zero=True
    )
    if isinstance(amount, Refusal):
        return amount
    return Debit(
        scope=caller.scope,
        transaction_id=req.reference,
        partner_id=caller.partner_id,
        player_id=req.userId,
        currency=currency,
        amount_minor=amount,
        round_id=req.roundId,
        game_id=req.gameId,
        origin=origin,
        session_started_us=session.started_us() if session is not None else None,
    )


def result_to_command(
    req: ResultRequest,
    currency: str,
    *,
    caller: Caller,
    amount_minor_max: int,
    origin: Origin | None = None,
) -> Credit | Atomic | Refusal[int]:
    """/result.html -> the round's win, or (with a promo win) an Atomic of win + promo.

    The win: ``Credit(transaction_id=reference, credit_type="win", bet_transaction_id=None,
    round_closed=True, round_policy="required")``. Pragmatic's result names no bet, so it
    settles every open bet of ``roundId`` (a refund after it is refused); the shard refuses
    it for a round with no bet (UNKNOWN_TRANSACTION) or whose bets were all refunded
    (TRANSACTION_ROLLED_BACK), both answered 120 on /result.html (README.md "Certification",
    cases 17-18). ``promoWinAmount`` > 0 needs ``promoWinReference`` (else error 7) and adds
    ``Credit(transaction_id=promoWinReference, credit_type="promo")``: both applied or
    neither.
    """
    amount = amount_minor_from_decimal(
        req.amount, currency, amount_minor_max=amount_minor_max, allow_zero=True
    )
    if isinstance(amount, Refusal):
        return amount
    win = Credit(
        scope=caller.scope,
        transaction_id=req.reference,
        partner_id=caller.partner_id,
        player_id=req.userId,
        currency=currency,
        amount_minor=amount,
        round_id=req.roundId,
        game_id=req.gameId,
        bet_transaction_id=None,
        round_closed=True,
        credit_type="win",
        round_policy=ROUND_REQUIRED,
        origin=origin,
    )
    if req.promoWinAmount is None:
        return win
    promo_amount = amount_minor_from_decimal(
        req.promoWinAmount, currency, amount_minor_max=amount_minor_max, allow_zero=True
    )
    if isinstance(promo_amount, Refusal):
        return promo_amount
    if promo_amount == 0:
        return win
    if req.promoWinReference is None:
        return bad_parameters("promoWinAmount without promoWinReference")
    if req.promoWinReference == req.reference:
        return bad_parameters("promoWinReference equals reference")
    promo = Credit(
        scope=caller.scope,
        transaction_id=req.promoWinReference,
        partner_id=caller.partner_id,
        player_id=req.userId,
        currency=currency,
        amount_minor=promo_amount,
        round_id=req.roundId,
        game_id=req.gameId,
        credit_type="promo",
        origin=origin,
    )
    return Atomic(
        scope=caller.scope, partner_id=caller.partner_id, player_id=req.userId, actions=(win, promo),
        origin=origin,
    )


WinKind = Literal["bonus", "jackpot", "promo"]


def win_to_command(
    req: BonusWinRequest | JackpotWinRequest | PromoWinRequest,
    credit_type: WinKind,
    currency: str,
    *,
    caller: Caller,
    amount_minor_max: int,
    origin: Origin | None = None,
    credit: bool = True,
) -> Credit | Refusal[int]:
    """/bonusWin.html ("bonus"), /jackpotWin.html ("jackpot"), /promoWin.html ("promo") ->
    ``Credit(credit_type=...)`` keyed ``reference``, amount >= 0, paid into the house account
    of its type. Round: ``roundId``, else the ``reference`` (these may come outside a round);
    game: ``gameId`` or ``""``. The round is not closed, and no bet is required (these are
    the provider's payouts, not a round's game win).

    ``credit=False`` (bonusWin under ``bonus_win = "record"``): the amount is checked like
    any other, and the credit is of 0 -- it records the reference (a replay answers the same
    ``transactionId``) and moves no money, because the free rounds' wins were already paid
    by their results (README.md "Certification", case 25).
    """
    amount = amount_minor_from_decimal(
        req.amount, currency, amount_minor_max=amount_minor_max, allow_zero=True
    )
    if isinstance(amount, Refusal):
        return amount
    if not credit:
        amount = 0
    return Credit(
        scope=caller.scope,
        transaction_id=req.reference,
        partner_id=caller.partner_id,
        player_id=req.userId,
        currency=currency,
        amount_minor=amount,
        round_id=req.roundId or req.reference,
        game_id=req.gameId or "",
        credit_type=credit_type,
        origin=origin,
    )


def end_round_key(user_id: str, round_id: str) -> str:
    """Idempotency key of an endRound: ``endRound:<userId>:<roundId>``.

    The player is part of it because a live-casino round id may be shared by every player
    at the table. Two different pairs can only produce the same key if their user ids
    differ, and the shard then answers a conflict (player differs), never a wrong replay.
    """
    return f"{END_ROUND_KEY_PREFIX}{user_id}:{round_id}"


def end_round_to_command(
    req: EndRoundRequest, currency: str, *, caller: Caller, origin: Origin | None = None
) -> Credit:
    """/endRound.html -> zero ``Credit(round_closed=True)`` keyed ``end_round_key``: settles the
    round's still-open bets (a later refund of them is refused). Moves no money; a repeated
    endRound replays."""
    return Credit(
        scope=caller.scope,
        transaction_id=end_round_key(req.userId, req.roundId),
        partner_id=caller.partner_id,
        player_id=req.userId,
        currency=currency,
        amount_minor=0,
        round_id=req.roundId,
        game_id=req.gameId or "",
        round_closed=True,
        credit_type="win",
        origin=origin,
    )


def refund_to_command(
    req: RefundRequest, currency: str | None, *, caller: Caller, origin: Origin | None = None
) -> Rollback:
    """/refund.html -> ``Rollback(reference_transaction_id=reference)`` keyed ``refund:<reference>``.

    A refund of a bet never seen succeeds and leaves a tombstone, so the late bet is refused
    (README.md: "success, remembered as a tombstone, is the safer reading").
    ``amount`` is not used: the stake stored with the bet is returned. ``currency`` (the
    session's, if known) only names the balance of the answer when the bet is unknown.
    """
    return Rollback(
        scope=caller.scope,
        transaction_id=REFUND_KEY_PREFIX + req.reference,
        partner_id=caller.partner_id,
        player_id=req.userId,
        reference_transaction_id=req.reference,
        currency=currency,
        round_id=req.roundId,
        origin=origin,
    )


def adjustment_to_command(
    req: AdjustmentRequest,
    currency: str,
    *,
    caller: Caller,
    amount_minor_max: int,
    origin: Origin | None = None,
) -> Credit | Debit | Refusal[int]:
    """/adjustment.html -> a signed correction keyed ``reference`` on ``roundId`` (else reference).

    ``amount`` >= 0: ``Credit(credit_type="adjustment")``. ``amount`` < 0: ``Debit`` of its
    absolute value (refused like any bet when funds are short or the player is blocked). A
    sign flip on a retry is a different type under the same key: a conflict (error 7).
    """
    amount = amount_minor_from_decimal(
        req.amount, currency, amount_minor_max=amount_minor_max, allow_zero=True,
        allow_negative=True,
    )
    if isinstance(amount, Refusal):
        return amount
    round_id = req.roundId or req.reference
    game_id = req.gameId or ""
    if amount < 0:
        return Debit(
            scope=caller.scope, transaction_id=req.reference, partner_id=caller.partner_id,
            player_id=req.userId, currency=currency,
            amount_minor=-amount, round_id=round_id, game_id=game_id, origin=origin,
        )
    return Credit(
        scope=caller.scope, transaction_id=req.reference, partner_id=caller.partner_id,
        player_id=req.userId, currency=currency,
        amount_minor=amount, round_id=round_id, game_id=game_id, credit_type="adjustment",
        origin=origin,
    )


def authenticate_to_command(
    req: AuthenticateRequest, session: GameSession | None, *, caller: Caller, now_s: float
) -> GetBalance | Refusal[int]:
    """/authenticate.html -> ``GetBalance`` of the token's player in its currency (error 4 if
    the token is not a live one of this integration)."""
    refusal = check_live_session(session, caller, None, now_s)
    if refusal is not None:
        return refusal
    assert session is not None
    return GetBalance(partner_id=caller.partner_id, player_id=session.player_id, currency=session.currency)


def balance_to_command(
    req: BalanceRequest, session: GameSession | None, *, caller: Caller, now_s: float
) -> GetBalance | Refusal[int]:
    """/balance.html -> ``GetBalance(userId, session currency)``; a live token of this
    integration naming ``userId``. Without a token (optional in Pragmatic's field list),
    every wallet of ``userId`` (the answer needs exactly one), like /getBalancePerGame.html."""
    if req.token is None:
        return GetBalance(partner_id=caller.partner_id, player_id=req.userId, currency=None)
    refusal = check_live_session(session, caller, req.userId, now_s)
    if refusal is not None:
        return refusal
    assert session is not None
    return GetBalance(partner_id=caller.partner_id, player_id=req.userId, currency=session.currency)


def balance_per_game_to_command(
    req: BalancePerGameRequest, session: GameSession | None, *, caller: Caller, now_s: float
) -> GetBalance | Refusal[int]:
    """/getBalancePerGame.html -> ``GetBalance``: with a token, checked like /balance.html and in
    its currency; without one, every wallet of ``userId`` (the answer needs exactly one)."""
    if req.token is None:
        return GetBalance(partner_id=caller.partner_id, player_id=req.userId, currency=None)
    refusal = check_live_session(session, caller, req.userId, now_s)
    if refusal is not None:
        return refusal
    assert session is not None
    return GetBalance(partner_id=caller.partner_id, player_id=req.userId, currency=session.currency)


def token_to_expire(
    req: SessionExpiredRequest, session: GameSession | None, *, caller: Caller, now_s: float
) -> str | None:
    """/sessionExpired.html: the token whose session ends with Pragmatic's, or None.

    Only a live session of this integration, naming ``playerId`` / ``userId`` when either is
    sent; anything else (no token, unknown, already expired, another integration's, another
    player's) is acknowledged and left alone. Expiring it refuses later bets with it (4);
    settlements never need it (README.md "Certification", case 31).
    """
    if req.token is None or check_live_session(session, caller, None, now_s) is not None:
        return None
    assert session is not None
    named = req.playerId or req.userId
    if named is not None and named != session.player_id:
        return None
    return session.token


# ---- result -> response ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Money:
    """One wallet's balance: ``currency``, ``cash_minor``, ``bonus_minor``."""

    currency: str
    cash_minor: int
    bonus_minor: int


def balance_of(result: Result, currency: str | None = None) -> Money | None:
    """The balance a Result carries (money commands: top-level fields; GetBalance: the entry
    in ``currency``, or the only one when ``currency`` is None); None if it carries none."""
    if (result.currency is not None and result.cash_minor is not None
            and (currency is None or result.currency == currency)):
            return Money(result.currency, result.cash_minor, result.bonus_minor or 0)
    candidates = [b for b in result.balances if currency is None or b.currency == currency]
    if len(candidates) == 1:
        b = candidates[0]
        return Money(b.currency, b.cash_minor, b.bonus_minor)
    return None


def ledger_id_of(result: Result) -> int | None:
    """Our transaction id for ``transactionId``: the command's, or an Atomic's first action's."""
    if result.ledger_transaction_id is not None:
        return result.ledger_transaction_id
    for sub in result.results:
        if sub.ledger_transaction_id is not None:
            return sub.ledger_transaction_id
    return None


def _with_balance(fields: dict, found: Money | None) -> dict:
    if found is not None:
        fields["currency"] = found.currency
        fields["cash"] = decimal_from_minor(found.cash_minor, found.currency)
        fields["bonus"] = decimal_from_minor(found.bonus_minor, found.currency)
    return fields


def response_for_money(
    result: Result,
    *,
    current: Money | None = None,
    used_promo: bool = False,
    endpoint: str | None = None,
) -> PragmaticResponse:
    """bet/result/wins/refund/adjustment/endRound answer from the shard's Result.

    ``error`` from the table for ``endpoint`` (``statuses.status_for``: 120 for a result with
    no bet or after a refund, 130 for any refusal on endRound). On success:
    ``transactionId`` = ``Result.ledger_transaction_id`` as a string (the ORIGINAL one on a
    replay; not sent for endRound).
    ``current``: the balance now, which a replay answers instead of the stored one
    (README.md: "A repeated reference gets success with the current balance
    and the original transactionId"). Refusals carry the unchanged balance when the shard
    reports one (error 1 always does). ``used_promo``: add ``usedPromo: 0`` (bet, result);
    the wallet has no promo balance to spend.
    """
    error = status_for(result.code, endpoint=endpoint)
    fields: dict = {"error": error, "description": description_for(error)}
    if error == SUCCESS and endpoint != END_ROUND:
        ledger_id = ledger_id_of(result)
        if ledger_id is not None:
            fields["transactionId"] = str(ledger_id)
    found = current if current is not None else balance_of(result)
    _with_balance(fields, found)
    if used_promo and found is not None:
        fields["usedPromo"] = decimal_from_minor(0, found.currency)
    return PragmaticResponse(**fields)


def response_for_balance(result: Result, currency: str | None) -> PragmaticResponse:
    """/balance.html answer: ``currency``, ``cash``, ``bonus``; an OK read without a wallet in
    ``currency`` is error 7 (the session's currency is not one the player holds)."""
    error = status_for(result.code)
    found = balance_of(result, currency)
    if error == SUCCESS and found is None:
        error = BAD_PARAMETERS
    return PragmaticResponse(**_with_balance({"error": error, "description": description_for(error)}, found))


def response_for_authenticate(result: Result, session: GameSession) -> PragmaticResponse:
    """/authenticate.html answer: ``userId``, ``currency``, ``cash``, ``bonus``, ``token`` (the
    one sent: the gateway keeps the launch token for the whole session, README.md
    "Certification" case 1), ``country`` and ``jurisdiction`` (both the player's country,
    ISO 3166-1 alpha-2). A player who is not active (blocked, self-excluded) is answered
    error 6: the game must not start."""
    response = response_for_balance(result, session.currency)
    if response.error != SUCCESS:
        return response
    if result.player_status not in (None, "active"):
        refusal = refusal_of(Code.PLAYER_BLOCKED, f"player is {result.player_status}")
        return PragmaticResponse(error=refusal.status, description=description_for(refusal.status))
    return PragmaticResponse(
        error=SUCCESS,
        description=description_for(SUCCESS),
        userId=session.player_id,
        token=session.token,
        currency=response.currency,
        cash=response.cash,
        bonus=response.bonus,
        country=result.country,
        jurisdiction=result.country,
    )


def response_for_balance_per_game(
    result: Result, currency: str | None, game_ids: list[str]
) -> BalancePerGameResponse:
    """/getBalancePerGame.html answer: the one wallet's balance for every game id (the wallet
    keeps one balance per currency, not per game)."""
    error = status_for(result.code)
    found = balance_of(result, currency)
    if error == SUCCESS and found is None:
        error = BAD_PARAMETERS
    if error != SUCCESS or found is None:
        return BalancePerGameResponse(error=error, description=description_for(error))
    cash = decimal_from_minor(found.cash_minor, found.currency)
    bonus = decimal_from_minor(found.bonus_minor, found.currency)
    return BalancePerGameResponse(
        error=SUCCESS,
        description=description_for(SUCCESS),
        currency=found.currency,
        gamesBalances=[GameBalance(gameID=g, cash=cash, bonus=bonus) for g in game_ids],
    )


def response_for_notice() -> PragmaticResponse:
    """/sessionExpired.html and /roundDetails.html: acknowledged, ``error: 0``."""
    return PragmaticResponse(error=SUCCESS, description=description_for(SUCCESS))


def response_for_refusal(refusal: Refusal[int]) -> PragmaticResponse:
    """Answer to an adapter refusal: its error and description, no balance (not asked)."""
    return PragmaticResponse(error=refusal.status, description=description_for(refusal.status))


def retryable_response() -> PragmaticResponse:
    """Error 100: Pragmatic retries (overload, shard or Redis down, rate limit, a bug)."""
    return PragmaticResponse(error=RETRYABLE_ERROR, description=description_for(RETRYABLE_ERROR))


# ---- audit --------------------------------------------------------------------------


def audit_request(fields: dict[str, str] | None) -> dict:
    """A small, bounded dict of a request's parameters for ``record_refusal``.

    Known fields only, cut to 128 characters; the names sent (at most 32); the ``token`` and
    ``hash`` values are never copied, only whether they were sent.
    """
    if not fields:
        return {}
    out: dict = {}
    for name in _AUDIT_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and value != "":
            out[name] = value[:AUDIT_STR_CHARS_MAX]
    out["token_sent"] = bool(fields.get("token"))
    out["hash_sent"] = bool(fields.get("hash"))
    out["names"] = sorted(fields)[:_AUDIT_NAMES_MAX]
    return out


def user_of(fields: dict[str, str] | None) -> str | None:
    """``userId`` of a parsed form, bounded, for the audit record's player; else None."""
    if not fields:
        return None
    value = fields.get("userId")
    return value[:AUDIT_STR_CHARS_MAX] if isinstance(value, str) and value else None
