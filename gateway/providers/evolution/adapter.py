"""Evolution One Wallet rules as pure functions: decoded request + game session -> Command or
Refusal, and Result -> Evolution answer. No I/O here; ``routes.py`` does HTTP, Redis and
the shard calls.

Source: README.md ("Protocol facts", "Common ground"); docs/DESIGN.md
sections 3 (money), 5 (idempotency) and 8 (errors). Rules implemented (README.md has the
reasons for each choice):

* every command acts for the integration's partner in its idempotency scope (``caller``:
  partner id and ``"<partner>:<integration>"``, e.g. ``"demo:evolution"``); the player is
  (that partner, ``userId``). The partner comes from the integration the call
  authenticated as, never from the sid.
* Idempotency keys (README.md: "Credit and cancel find their debit by
  ``transaction.refId``"): a debit is stored under its ``refId`` itself (``debit_key``), so
  the credit and the cancel that name that ``refId`` reference it; a credit under
  ``"credit " + transaction.id`` with ``bet_transaction_id = refId``; a cancel is a
  ``Rollback`` under ``"cancel " + transaction.id`` of ``refId``; a promo payout a
  ``Credit`` under ``"promo " + promoTransaction.id``, no bet. Evolution ids are visible
  ASCII (``schemas.Id``), so they never contain the space of the prefixes: no key of one
  kind can collide with a key of another. Evolution's raw ids ride in the audit origin
  (``request_id_for``).
* Round = ``game.id`` (Evolution's game round), else the ``refId`` (or the promo id); game =
  ``game.details.table.id``, else ``game.type``, else ``""``; an empty string is absent
  (README.md "Certification", case 26). Deterministic, so a retry carries identical content.
* Amounts are decimal numbers in major units, converted exactly by
  ``amount_minor_from_decimal`` (inexact, negative, non-finite or above
  ``money.amount_minor_max`` -> ``INVALID_PARAMETER``); zero is valid (a zero credit is in
  the licensee test list; a zero debit is a free bet).
* Sessions (README.md "Common ground" and Evolution ``/check``): ``/check``, ``/balance``
  and ``/debit`` need a live sid: known, issued for this integration (and so for its
  partner, ``caller.owns``), naming ``userId``, not replaced by a rotation, not expired
  (else ``INVALID_SID``). ``/sid`` takes any sid and issues one for an existing, active
  ``userId`` (``sid_issue_currency``; README.md choice 11). ``/credit``, ``/cancel`` and
  ``/promo_payout`` accept an expired, replaced, unknown or absent sid (``userId`` names the
  player); only a known sid of another integration, partner or user is refused (README.md,
  choice 17). A ``userId`` that names nobody is ``INVALID_PARAMETER`` whatever the sid,
  except a sid of another integration or partner (``refusal_for_player``).
* Answers: ``balance`` = cash, ``bonus`` = bonus, both decimal major units written with the
  currency's decimals (``amount_wire_from_minor``), on every answer of ``/balance``,
  ``/debit``, ``/credit``, ``/cancel`` and ``/promo_payout`` once the caller is authenticated,
  refusals included: the player's balance when known, else zero (README.md, "Answers").
  Statuses come from ``statuses.py`` per endpoint (``status_of_result``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

import msgspec

from gateway import money
from gateway.edge.game_session import GameSession
from gateway.providers.evolution.schemas import (
    BalanceRequest,
    CancelRequest,
    CheckRequest,
    CreditRequest,
    DebitRequest,
    EvolutionResponse,
    Game,
    PromoPayoutRequest,
    SidResponse,
)
from gateway.providers.evolution.statuses import (
    INVALID_SID,
    OK,
    status_for,
    status_of_result,
)
from gateway.providers.integration import Caller
from gateway.providers.refusal import AUDIT_STR_CHARS_MAX, Refusal, bounded_value
from gateway.shards.commands import (
    Balance,
    Code,
    Credit,
    Debit,
    GetBalance,
    Origin,
    Result,
    Rollback,
)

#: The provider's name: its sandbox integration's name and URL segment. Not a scope: every
#: command carries its integration's (``Caller.scope``, ``"<partner>:<integration>"``).
PROVIDER: Final = "evolution"

#: Prefixes of the credit, cancel and promo shard keys (in the integration's scope). The
#: space can never occur in an Evolution id (``schemas.Id``: visible ASCII), so these keys
#: never collide with a debit's key (its bare ``refId``) or with each other (README.md,
#: choice 5).
CREDIT_KEY_PREFIX: Final = "credit "
CANCEL_KEY_PREFIX: Final = "cancel "
PROMO_KEY_PREFIX: Final = "promo "

#: ``Decimal.adjusted()`` bounds of a non-zero wire amount: below 10**-18 nothing is exact
#: in any currency (largest exponent 8); from 10**19 up it is above any configured maximum.
#: Checked before the Decimal is ever formatted, so ``1e999999999`` costs nothing.
_ADJUSTED_MIN: Final = -18
_ADJUSTED_MAX: Final = 18

# Fields copied into the audit ``request`` dict (docs/DESIGN.md section 4; bounds: providers/refusal.py).
_AUDIT_FIELDS: Final = (
    ("uuid",),
    ("userId",),
    ("currency",),
    ("transaction", "id"),
    ("transaction", "refId"),
    ("transaction", "amount"),
    ("promoTransaction", "type"),
    ("promoTransaction", "id"),
    ("promoTransaction", "amount"),
    ("promoTransaction", "voucherId"),
    ("promoTransaction", "remainingRounds"),
    ("game", "id"),
    ("game", "type"),
    ("game", "details", "table", "id"),
)
_PLAYER_ID_RE: Final = re.compile(r"[\x21-\x7e]{1,128}")

#: A player's status that may be given a new session (``gateway/shards/commands.py``
#: PLAYER_STATUSES).
_ACTIVE: Final = "active"


def refusal_of(code: Code, detail: str) -> Refusal[str]:
    """A refusal answered with the status-table entry for ``code`` (``statuses.status_for``)."""
    return Refusal(code, detail, status_for(code))


# ---- keys -----------------------------------------------------------------------------


def debit_key(ref_id: str) -> str:
    """Shard key of the debit named by ``refId``: the ``refId`` itself (README.md, choice 5)."""
    return ref_id


# ---- amounts ----------------------------------------------------------------------------


def amount_minor_from_decimal(
    value: Decimal, currency: str, *, amount_minor_max: int, allow_zero: bool = True
) -> int | Refusal[str]:
    """Evolution ``amount`` (Decimal, major units) -> minor units of ``currency``, or a Refusal.

    README.md "Response: amounts are decimal numbers in major units"; docs/DESIGN.md
    section 3. EUR ``Decimal("12.5")`` -> 1250; ``12.50`` and ``1.25E+1`` too. Refused:
    unknown ``currency`` (UNKNOWN_CURRENCY); NaN/Infinity, more significant fraction digits
    than the currency has (EUR 12.505), negative, zero unless ``allow_zero``, above
    ``amount_minor_max`` (all INVALID_AMOUNT). Never rounds, never uses a float.
    """
    try:
        money.exponent(currency)
        if not value.is_finite():
            raise money.AmountError("invalid_amount", "amount must be a finite number")
        if value.is_zero():
            minor = 0
        elif not _ADJUSTED_MIN <= value.adjusted() <= _ADJUSTED_MAX:
            raise money.AmountError("invalid_amount", "amount out of range or not exact")
        else:
            minor = money.minor_from_decimal(value, currency)
        return money.check_amount_minor(
            minor, amount_minor_max=amount_minor_max, allow_zero=allow_zero
        )
    except money.AmountError as exc:
        code = Code.UNKNOWN_CURRENCY if exc.code == "unknown_currency" else Code.INVALID_AMOUNT
        return refusal_of(code, exc.detail)


def amount_wire_from_minor(amount_minor: int, currency: str) -> msgspec.Raw:
    """Minor units -> the JSON number Evolution reads as major units (README.md,
    Evolution "Response"), exact, with the currency's decimals and never in exponent form:
    EUR 1250 -> ``12.50``, JPY 5 -> ``5``, BTC 1 -> ``0.00000001`` (``money.minor_to_decimal_str``)."""
    return msgspec.Raw(money.minor_to_decimal_str(amount_minor, currency).encode("ascii"))


# ---- sessions ---------------------------------------------------------------------------


def check_live_sid(
    session: GameSession | None, caller: Caller, user_id: str, now_s: float
) -> Refusal[str] | None:
    """``/check``, ``/balance``, ``/debit`` (and ``/sid``, to rotate rather than issue): the sid must be known, issued for
    ``caller``'s integration and partner, ``user_id``'s, not replaced (README.md: "later
    calls with the old sid are refused with INVALID_SID") and not expired. ``now_s``: Unix
    seconds. All refusals -> INVALID_SID.
    """
    if session is None:
        return refusal_of(Code.INVALID_TOKEN, "unknown sid")
    refusal = _check_identity(session, caller, user_id)
    if refusal is not None:
        return refusal
    if session.replaced_by is not None:
        return refusal_of(Code.INVALID_TOKEN, "sid was replaced by /check or /sid")
    if session.expired(now_s):
        return refusal_of(Code.TOKEN_EXPIRED, "sid expired")
    return None


def check_settlement_sid(
    session: GameSession | None, caller: Caller, user_id: str
) -> Refusal[str] | None:
    """``/credit``, ``/cancel``, ``/promo_payout``: expiry and replacement are NOT checked
    and an unknown or absent sid is fine (README.md "Common ground": wins and rollbacks
    are retried for days); a known sid of another integration, partner or user is refused."""
    if session is None:
        return None
    return _check_identity(session, caller, user_id)


def _check_identity(session: GameSession, caller: Caller, user_id: str) -> Refusal[str] | None:
    if not caller.owns(session):
        return refusal_of(Code.INVALID_TOKEN, "sid was issued for another provider integration")
    if session.player_id != user_id:
        return refusal_of(Code.INVALID_TOKEN, "sid was issued to another user")
    return None


def check_request(
    req: CheckRequest, session: GameSession | None, *, caller: Caller, now_s: float
) -> Refusal[str] | None:
    """``/check`` and ``/sid``: None if ``req.sid`` may be rotated for ``req.userId``."""
    return check_live_sid(session, caller, req.user_id, now_s)


def sid_is_foreign(session: GameSession | None, caller: Caller) -> bool:
    """True if ``session`` is a known sid of another integration or partner (choice 17)."""
    return session is not None and not caller.owns(session)


def refusal_for_player(
    refusal: Refusal[str], player: Result, session: GameSession | None, caller: Caller
) -> Refusal[str]:
    """The refusal to answer once ``userId`` was looked up (``player``: a GetBalance result).

    README.md "Certification", case 4 (licensee test "checkUsingInvalidUserId"): a
    ``userId`` that names no player is INVALID_PARAMETER even with a valid sid of another
    user, so a sid refusal (INVALID_SID) becomes UNKNOWN_PLAYER. Not for a sid of another
    integration or partner: that stays INVALID_SID (tenancy, choice 17), whether or not this
    partner has a player of that id. Other refusals are kept as they are.
    """
    if (
        player.code is Code.UNKNOWN_PLAYER
        and refusal.status == INVALID_SID
        and not sid_is_foreign(session, caller)
    ):
        return refusal_of(Code.UNKNOWN_PLAYER, f"userId names no player (and {refusal.detail})")
    return refusal


def answer_currency(
    session: GameSession | None, caller: Caller, user_id: str, request_currency: str | None
) -> str | None:
    """The currency of the balance a refusal reports: the sid's when it is this integration's
    session of ``user_id`` (expired or replaced too: it is still the game's currency), else
    the request's."""
    if session is not None and caller.owns(session) and session.player_id == user_id:
        return session.currency
    return request_currency


def sid_issue_currency(player: Result) -> str | Refusal[str]:
    """``/sid`` without a live sid (README.md choice 11): the currency of the session to issue
    for ``userId``, from its GetBalance result ``player``, or the refusal.

    UNKNOWN_PLAYER (INVALID_PARAMETER) for a ``userId`` naming nobody; PLAYER_BLOCKED
    (ACCOUNT_LOCKED) for a player who is not active (no session for a blocked or
    self-excluded player). Evolution's ``/sid`` names no currency, so the player must hold
    exactly one wallet; with none or several, CURRENCY_MISMATCH (INVALID_PARAMETER): the
    operator opens such a session itself (``POST /v1/sessions``, in the currency chosen).
    """
    if player.code is not Code.OK:
        return refusal_of(player.code, "userId names no player" if player.code is Code.UNKNOWN_PLAYER
                          else f"player lookup refused: {player.code.value}")
    if player.player_status is not None and player.player_status != _ACTIVE:
        return refusal_of(Code.PLAYER_BLOCKED, f"player is {player.player_status}: no new session")
    if len(player.balances) != 1:
        return refusal_of(Code.CURRENCY_MISMATCH,
                          f"player holds {len(player.balances)} wallets: /sid names no currency")
    return player.balances[0].currency


# ---- request -> command -------------------------------------------------------------------


def round_and_game(game: Game | None, fallback_round: str) -> tuple[str, str]:
    """(round id, game id) of a request: ``game.id`` else ``fallback_round``; table id else
    ``game.type`` else ``""``. An empty string counts as absent (``"vid": ""`` and its kin,
    README.md "Certification", case 26)."""
    round_id = fallback_round
    game_id = ""
    if game is not None:
        if game.id is not None and game.id != "":
            round_id = str(game.id)
        table = game.details.table if game.details is not None else None
        if table is not None and table.id is not None and table.id != "":
            game_id = str(table.id)
        elif game.type:
            game_id = game.type
    return round_id, game_id


def balance_to_command(
    req: BalanceRequest, session: GameSession | None, *, caller: Caller, now_s: float
) -> GetBalance | Refusal[str]:
    """``/balance`` -> GetBalance in the session's currency; a live sid for ``userId``;
    ``currency``, when sent, must be the session's (else CURRENCY_MISMATCH)."""
    refusal = check_live_sid(session, caller, req.user_id, now_s)
    if refusal is not None:
        return refusal
    assert session is not None
    if req.currency is not None and req.currency != session.currency:
        return refusal_of(
            Code.CURRENCY_MISMATCH,
            f"currency {req.currency} differs from the session's {session.currency}",
        )
    return GetBalance(partner_id=caller.partner_id, player_id=session.player_id, currency=session.currency)


def debit_to_command(
    req: DebitRequest,
    session: GameSession | None,
    *,
    caller: Caller,
    now_s: float,
    amount_minor_max: int,
    origin: Origin | None = None,
) -> Debit | Refusal[str]:
    """``/debit`` -> Debit of ``transaction.amount`` (minor units) under the key ``refId``.

    Needs a live sid for ``userId`` (INVALID_SID) whose currency is ``currency``
    (CURRENCY_MISMATCH -> INVALID_PARAMETER); the amount may be 0 (a free bet).
    """
    refusal = check_live_sid(session, caller, req.user_id, now_s)
    if refusal is not None:
        return refusal
    assert session is not None
    amount = amount_minor_from_decimal(
        req.transaction.amount, req.currency, amount_minor_max=amount_minor_max
    )
    if isinstance(amount, Refusal):
        return amount
    if req.currency != session.currency:
        return refusal_of(
            Code.CURRENCY_MISMATCH,
            f"debit currency {req.currency} differs from the session's {session.currency}",
        )
    round_id, game_id = round_and_game(req.game, req.transaction.ref_id)
    return Debit(
        scope=caller.scope,
        transaction_id=debit_key(req.transaction.ref_id),
        partner_id=caller.partner_id,
        player_id=req.user_id,
        currency=req.currency,
        amount_minor=amount,
        round_id=round_id,
        game_id=game_id,
        origin=origin,
        session_started_us=session.started_us(),
    )


def credit_to_command(
    req: CreditRequest,
    session: GameSession | None,
    *,
    caller: Caller,
    amount_minor_max: int,
    origin: Origin | None = None,
) -> Credit | Refusal[str]:
    """``/credit`` -> Credit (``credit_type="win"``, may be 0) of the debit ``refId``, under
    ``"credit " + transaction.id``. The sid is not required (``check_settlement_sid``);
    the shard checks the bet (BET_DOES_NOT_EXIST / BET_ALREADY_SETTLED) and the currency."""
    amount = amount_minor_from_decimal(
        req.transaction.amount, req.currency, amount_minor_max=amount_minor_max
    )
    if isinstance(amount, Refusal):
        return amount
    refusal = check_settlement_sid(session, caller, req.user_id)
    if refusal is not None:
        return refusal
    round_id, game_id = round_and_game(req.game, req.transaction.ref_id)
    return Credit(
        scope=caller.scope,
        transaction_id=CREDIT_KEY_PREFIX + req.transaction.id,
        partner_id=caller.partner_id,
        player_id=req.user_id,
        currency=req.currency,
        amount_minor=amount,
        round_id=round_id,
        game_id=game_id,
        bet_transaction_id=debit_key(req.transaction.ref_id),
        round_closed=False,
        credit_type="win",
        origin=origin,
    )


def cancel_to_command(
    req: CancelRequest,
    session: GameSession | None,
    *,
    caller: Caller,
    amount_minor_max: int,
    origin: Origin | None = None,
) -> Rollback | Refusal[str]:
    """``/cancel`` -> Rollback of the debit ``refId`` under ``"cancel " + transaction.id``.

    The refund is the debit's own stake (the shard knows it); ``transaction.amount``, when
    sent, is only validated (a malformed amount is INVALID_PARAMETER). ``currency`` (used by
    the shard only to answer a never-seen ``refId`` with a balance) is the request's, else the
    session's, else None. An unknown ``refId`` is answered OK + tombstone by the shard, which
    ``statuses.status_of_result`` turns into BET_DOES_NOT_EXIST on ``/cancel``.
    """
    if req.currency is not None and not money.is_currency(req.currency):
        return refusal_of(Code.UNKNOWN_CURRENCY, f"unknown currency {req.currency!r}")
    refusal = check_settlement_sid(session, caller, req.user_id)
    if refusal is not None:
        return refusal
    currency = req.currency
    if currency is None and session is not None:
        currency = session.currency
    if req.transaction.amount is not None and currency is not None:
        amount = amount_minor_from_decimal(
            req.transaction.amount, currency, amount_minor_max=amount_minor_max
        )
        if isinstance(amount, Refusal):
            return amount
    round_id = None
    if req.game is not None and req.game.id is not None and req.game.id != "":
        round_id = str(req.game.id)
    return Rollback(
        scope=caller.scope,
        transaction_id=CANCEL_KEY_PREFIX + req.transaction.id,
        partner_id=caller.partner_id,
        player_id=req.user_id,
        reference_transaction_id=debit_key(req.transaction.ref_id),
        currency=currency,
        round_id=round_id,
        origin=origin,
    )


def promo_credit_type(promo_type: str | None) -> str:
    """Ledger credit type of a promo payout: ``"jackpot"`` when Evolution's
    ``promoTransaction.type`` names a jackpot (e.g. ``JackpotWin``, case-insensitive), else
    ``"promo"`` (README.md, choice 8)."""
    if promo_type and "jackpot" in promo_type.lower():
        return "jackpot"
    return "promo"


def promo_to_command(
    req: PromoPayoutRequest,
    session: GameSession | None,
    *,
    caller: Caller,
    amount_minor_max: int,
    origin: Origin | None = None,
) -> Credit | Refusal[str]:
    """``/promo_payout`` -> Credit under ``"promo " + promoTransaction.id``, no bet, of type
    ``promo_credit_type(type)``. The sid is not required (``check_settlement_sid``)."""
    promo = req.promo_transaction
    amount = amount_minor_from_decimal(promo.amount, req.currency, amount_minor_max=amount_minor_max)
    if isinstance(amount, Refusal):
        return amount
    refusal = check_settlement_sid(session, caller, req.user_id)
    if refusal is not None:
        return refusal
    key = PROMO_KEY_PREFIX + promo.id
    round_id, game_id = round_and_game(req.game, key)
    return Credit(
        scope=caller.scope,
        transaction_id=key,
        partner_id=caller.partner_id,
        player_id=req.user_id,
        currency=req.currency,
        amount_minor=amount,
        round_id=round_id,
        game_id=game_id,
        bet_transaction_id=None,
        round_closed=False,
        credit_type=promo_credit_type(promo.type),
        origin=origin,
    )


def request_id_for(req: object) -> str | None:
    """Audit request id: Evolution's ``uuid`` plus its raw transaction ids (``tx=``,
    ``ref=``, ``promo=``), so the audit keeps what the shard key does not (a debit's own
    ``transaction.id``). ``EdgeContext.origin`` cuts it to 128 characters."""
    parts: list[str] = []
    uuid = getattr(req, "uuid", None)
    if uuid:
        parts.append(uuid)
    transaction = getattr(req, "transaction", None)
    if transaction is not None:
        parts.append(f"tx={transaction.id}")
        parts.append(f"ref={transaction.ref_id}")
    promo = getattr(req, "promo_transaction", None)
    if promo is not None:
        parts.append(f"promo={promo.id}")
    return " ".join(parts) or None


# ---- result -> response ---------------------------------------------------------------------

#: The balance of an answer whose player or currency is unknown (README.md "Answers": zero,
#: as Evolution's own reference wallet answers).
_ZERO: Final = msgspec.Raw(b"0")


def _money_fields(currency: str | None, cash_minor: int | None, bonus_minor: int | None) -> dict:
    """``balance`` and ``bonus`` for an answer: exact in ``currency``; zero (with the
    currency's decimals when it is a known one) when the amounts are unknown."""
    if currency is None or not money.is_currency(currency):
        return {"balance": _ZERO, "bonus": _ZERO}
    return {
        "balance": amount_wire_from_minor(cash_minor or 0, currency),
        "bonus": amount_wire_from_minor(bonus_minor or 0, currency),
    }


def _fields_from_balances(currency: str | None, balances: tuple[Balance, ...]) -> dict:
    for b in balances:
        if b.currency == currency:
            return _money_fields(b.currency, b.cash_minor, b.bonus_minor)
    return _money_fields(currency, None, None)


def response_for_result(
    result: Result, *, uuid: str | None, endpoint: str, currency: str | None = None
) -> EvolutionResponse:
    """Debit/credit/cancel/promo answer: status from the table for ``endpoint``
    (``statuses.status_of_result``), balances after the operation.

    Replays (``Result.replayed``) carry the stored outcome and balance through the same table
    (a stored INSUFFICIENT_FUNDS replays as INSUFFICIENT_FUNDS; a replayed cancel is
    BET_ALREADY_SETTLED). Refusals carry the unchanged balance the shard reports; when the
    shard reports none (unknown player, a currency the player lacks), zero in ``currency``
    (the request's). On ``/cancel`` an OK with ``tombstoned`` (refId never seen) is
    BET_DOES_NOT_EXIST; the tombstone still refuses a late debit of that refId.
    """
    if result.cash_minor is not None and result.currency is not None:
        fields = _money_fields(result.currency, result.cash_minor, result.bonus_minor)
    else:
        fields = _money_fields(currency, None, None)
    return EvolutionResponse(status=status_of_result(result, endpoint), uuid=uuid, **fields)


def response_for_balance(result: Result, *, uuid: str | None, currency: str) -> EvolutionResponse:
    """``/balance`` answer from a GetBalance result in ``currency`` (the session's). An OK
    result without a wallet in that currency answers INVALID_PARAMETER (CURRENCY_MISMATCH)
    with a zero balance."""
    status = status_for(result.code, "/balance")
    for b in result.balances:
        if b.currency == currency:
            return EvolutionResponse(
                status=status, uuid=uuid, **_money_fields(b.currency, b.cash_minor, b.bonus_minor)
            )
    if result.code is Code.OK:
        status = status_for(Code.CURRENCY_MISMATCH, "/balance")
    return EvolutionResponse(status=status, uuid=uuid, **_money_fields(currency, None, None))


def response_for_refusal(
    refusal: Refusal[str], *, uuid: str | None, currency: str | None,
    balances: tuple[Balance, ...] = (),
) -> EvolutionResponse:
    """Answer to a Refusal on ``/balance``, ``/debit``, ``/credit``, ``/cancel`` or
    ``/promo_payout``: its status, and the player's balance in ``currency`` from
    ``balances`` (a GetBalance result of ``userId``), else zero (README.md "Answers")."""
    return EvolutionResponse(status=refusal.status, uuid=uuid, **_fields_from_balances(currency, balances))


def response_for_sid_refusal(refusal: Refusal[str], *, uuid: str | None) -> SidResponse:
    """Answer to a refused ``/check`` or ``/sid``: ``{status, uuid}`` (no sid, no balance)."""
    return SidResponse(status=refusal.status, uuid=uuid)


def response_for_unread_refusal(refusal: Refusal[str], *, uuid: str | None, currency: object) -> EvolutionResponse:
    """Answer to a refusal decided before the request was decoded (shared pipeline).

    Unauthenticated (wrong ``authToken``, or a body over the limit, refused before the key
    is read): ``{status, uuid}`` and no balance, nothing is read for an unknown caller.
    Otherwise (wrong content type, undecodable body): a zero balance, as Evolution's
    reference wallet answers a request it cannot read (README.md "Answers").
    """
    if refusal.code in (Code.UNAUTHORIZED, Code.PAYLOAD_TOO_LARGE):
        return EvolutionResponse(status=refusal.status, uuid=uuid)
    known = currency if isinstance(currency, str) and money.is_currency(currency) else None
    return EvolutionResponse(status=refusal.status, uuid=uuid, **_money_fields(known, None, None))


def response_for_new_sid(session: GameSession, *, uuid: str | None) -> SidResponse:
    """``/check`` and ``/sid`` success: ``{status: OK, sid: <the new sid>, uuid}``."""
    return SidResponse(status=OK, sid=session.token, uuid=uuid)


# ---- audit --------------------------------------------------------------------------------


def _wire_dict(source: object) -> dict | None:
    """A decoded request struct as a dict with wire (camelCase) names, or a JSON dict as is."""
    if isinstance(source, dict):
        return source
    if source is not None and hasattr(source, "__struct_fields__"):
        built = msgspec.to_builtins(source, builtin_types=(Decimal,))
        return built if isinstance(built, dict) else None
    return None


def audit_request(source: object) -> dict:
    """A small, bounded dict of what could be read from a request, for ``record_refusal``.

    ``source`` is a decoded request struct or the generic JSON value of an undecodable body
    (decoded with Decimal numbers, never floats). Keys are the wire paths joined with ``.``
    (``transaction.refId``). The sid is never copied, only ``sid_sent: true/false``.
    """
    data = _wire_dict(source)
    out: dict = {}
    if data is None:
        return out
    for path in _AUDIT_FIELDS:
        value: object = data
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        if value is not None:
            out[".".join(path)] = bounded_value(value)
    out["sid_sent"] = data.get("sid") is not None
    return out


def str_field(source: object, wire_name: str) -> str | None:
    """A top-level string field (wire name, e.g. ``uuid``) of a struct or JSON dict, bounded."""
    data = _wire_dict(source)
    value = data.get(wire_name) if data is not None else None
    return value[:AUDIT_STR_CHARS_MAX] if isinstance(value, str) else None


def player_id_of(source: object) -> str | None:
    """``userId`` if it is a plausible player id (visible ASCII, <= 128), for the audit row."""
    value = str_field(source, "userId")
    return value if value is not None and _PLAYER_ID_RE.fullmatch(value) else None
