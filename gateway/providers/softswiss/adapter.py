"""SoftSwiss protocol rules as pure functions: decoded request (+ session) -> Command or
Refusal, and Result -> (Status, response body). No I/O here; ``routes.py`` does the HTTP,
Redis and shard calls.

Source: README.md ("Protocol facts", "Common ground");
docs/DESIGN.md sections 3 (money), 5 (idempotency) and 8 (errors). Rules implemented:

* every command acts for the integration's partner in its scope (``caller``: partner id
  and ``"<partner>:<integration>"``, e.g. ``"demo:softswiss"``); idempotency key =
  ``action_id``; player = ``user_id``; round = ``game_id``; game = ``game``.
* amounts are integers in the currency's subunits = gateway minor units
  (``amount_minor_from_wire``): the currency must be known (``money.exponent``), the amount
  an integer in ``[0, money.amount_minor_max]``; else 400 / 400.
* ``/play`` without actions is a balance request (``GetBalance``), unless it says
  ``finished: true`` and names its round: then a zero win keyed ``~end:<game_id>`` closes
  that round (README.md "Certification", case 28). With actions, every action becomes a
  ``Debit`` (bet) or ``Credit`` (win, ``credit_type="win"``) and the whole list ONE
  ``Atomic`` unit: all applied or none ("Several actions in one request are one atomic
  unit"). A win names no bet; it is paid only in a round that has a bet
  (``round_policy="required"``): no bet -> 404 / 404, the round's bets all rolled back ->
  403 / 403 (README.md "Certification", cases 14 and 15). A bet of the same request
  counts, since the unit applies it first.
* ``finished: true`` closes the round after the request's actions: the last action, if it
  is a win, carries ``round_closed=True``; otherwise a zero win keyed ``~close:<game_id>``
  is appended to the unit with ``round_closed=True`` (in the caller's scope, like every
  derived key). Either settles the round's open bets, which can then no longer be rolled
  back (README.md "Common ground").
* ``/rollback`` -> one ``Rollback`` per action, all in one ``Atomic``.
  ``original_action_id`` names a bet (its stake comes back) or a win (its amount is taken
  back, even below zero: a recorded debt; ``credit_reversible``, README.md
  "Certification", case 16). Only the LAST rollback of a request may reverse a win (see
  ``rollback_to_command``). An unknown ``original_action_id`` leaves a tombstone (the
  shard); a later bet with that id is refused and not debited (400 / 400, statuses.py).
* ``/freespins`` -> one ``Credit`` keyed ``~freespins:<issue_id>`` with
  ``credit_type="freespins"`` (its own house account): of ``total_amount`` where the
  integration's ``freespins_payout`` is "credit", of 0 (a recorded notice) where it is
  "notice", the default (README.md "Freespins").
* ids starting with ``~`` are reserved for those derived keys, so a provider's
  ``action_id`` can never collide with one (refused 400 / 400). An id named twice in one
  request (an ``action_id`` or ``original_action_id``) is refused the same way.
* an empty string in an optional field (``session_id``, ``game``, ``game_id``) is the field
  absent (``given``).
* ``session_id`` (optional, not in README.md): when a request with bets carries one, it
  must be a live token of ``POST /v1/sessions`` opened for this integration (and so for its
  partner), this ``user_id`` and this ``currency``; unknown / rotated / another
  integration's, partner's or player's -> INVALID_TOKEN, expired -> TOKEN_EXPIRED (400 /
  101), other currency -> CURRENCY_MISMATCH (400 / 154). Wins and rollbacks never need or
  check it.
* answers: ``balance`` = cash + bonus minor units of the wallet; ``tx_id`` = our
  ``ledger_transaction_id``; ``processed_at`` = ISO-8601 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import msgspec

from gateway import money
from gateway.edge.game_session import GameSession
from gateway.providers.integration import Caller
from gateway.providers.refusal import (
    AUDIT_STR_CHARS_MAX,
    Refusal,
    bounded_value,
    field_getter,
)
from gateway.providers.softswiss.schemas import (
    BetAction,
    ErrorResponse,
    FreespinsRequest,
    FreespinsResponse,
    PlayRequest,
    PlayResponse,
    RollbackRequest,
    Transaction,
)
from gateway.providers.softswiss.settings import FREESPINS_CREDIT, FREESPINS_NOTICE
from gateway.providers.softswiss.statuses import RETRYABLE, Status, status_for
from gateway.shards.commands import (
    ROUND_ANY,
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
PROVIDER: Final = "softswiss"

#: Prefix of the keys the adapter derives itself; refused in a provider's ids.
RESERVED_PREFIX: Final = "~"
CLOSE_PREFIX: Final = "~close:"
END_PREFIX: Final = "~end:"
FREESPINS_PREFIX: Final = "~freespins:"

# Fields copied into the audit ``request`` dict (docs/DESIGN.md section 4; bounds: providers/refusal.py).
_AUDIT_ACTIONS_MAX: Final = 10
_AUDIT_FIELDS: Final = (
    "user_id", "currency", "game", "game_id", "finished", "issue_id", "status", "total_amount",
)
_AUDIT_ACTION_FIELDS: Final = ("action", "action_id", "amount", "original_action_id")


def refusal_of(code: Code, detail: str) -> Refusal[Status]:
    """A refusal answered with the status-table entry for ``code`` (``statuses.status_for``)."""
    return Refusal(code, detail, status_for(code))


def given(value: str | None) -> str | None:
    """An optional string field as sent: None when absent, null or ``""`` (SoftSwiss sends
    ``"session_id": ""`` and ``"game_id": ""``; README.md "Certification")."""
    return value or None


# ---- amounts ---------------------------------------------------------------------------


def amount_minor_from_wire(amount: int, currency: str, *, amount_minor_max: int) -> int | Refusal[Status]:
    """SoftSwiss ``amount`` (integer subunits of ``currency``) -> gateway minor units.

    README.md "Amounts": integers in the currency's subunits, which are the
    ISO 4217 minor units of ``money.CURRENCY_EXPONENTS`` (EUR 356 = 3.56 EUR -> 356), so the
    value is kept as is once checked. Zero is allowed (a zero win; a zero stake moves no
    money). Refused: unknown currency (UNKNOWN_CURRENCY), not an int (bool included),
    negative, above ``amount_minor_max`` (INVALID_AMOUNT) -- all 400 / 400.
    """
    try:
        money.exponent(currency)
        return money.check_amount_minor(amount, amount_minor_max=amount_minor_max, allow_zero=True)
    except money.AmountError as exc:
        code = Code.UNKNOWN_CURRENCY if exc.code == "unknown_currency" else Code.INVALID_AMOUNT
        return refusal_of(code, exc.detail)


def _check_currency(currency: str) -> Refusal[Status] | None:
    if not money.is_currency(currency):
        return refusal_of(Code.UNKNOWN_CURRENCY, f"unknown currency {currency[:16]!r}")
    return None


def _check_ids(ids: list[str]) -> Refusal[Status] | None:
    """Every id once per request, none in the reserved ``~`` space."""
    seen: set[str] = set()
    for value in ids:
        if value.startswith(RESERVED_PREFIX):
            return refusal_of(Code.INVALID_REQUEST, f"ids starting with {RESERVED_PREFIX!r} are reserved")
        if value in seen:
            return refusal_of(Code.INVALID_REQUEST, f"id {value[:64]!r} named twice in one request")
        seen.add(value)
    return None


# ---- sessions ----------------------------------------------------------------------------


def needs_session(req: PlayRequest) -> bool:
    """True if ``req`` carries a ``session_id`` that must be checked: a non-empty one, on a
    request with a bet."""
    return given(req.session_id) is not None and any(isinstance(a, BetAction) for a in req.actions)


def check_session(
    session: GameSession | None, req: PlayRequest, now_s: float, *, caller: Caller
) -> Refusal[Status] | None:
    """A bet's ``session_id``: live, opened for ``caller``'s integration (and partner),
    ``user_id`` and ``currency``.

    ``session`` is the token's session (None if never issued); ``now_s`` Unix seconds.
    """
    if session is None or session.replaced_by is not None:
        return refusal_of(Code.INVALID_TOKEN, "unknown session_id")
    if not caller.owns(session):
        return refusal_of(Code.INVALID_TOKEN, "session_id was issued for another provider integration")
    if session.player_id != req.user_id:
        return refusal_of(Code.INVALID_TOKEN, "session_id was issued to another user")
    if session.expired(now_s):
        return refusal_of(Code.TOKEN_EXPIRED, "session_id expired")
    if session.currency != req.currency:
        return refusal_of(
            Code.CURRENCY_MISMATCH,
            f"currency {req.currency} differs from the session's {session.currency}",
        )
    return None


# ---- request -> command ------------------------------------------------------------------


def close_round_id(game_id: str) -> str:
    """Key of the zero win that closes round ``game_id`` when no win of the request can
    (within the caller's scope, like every key of its commands: two integrations' rounds
    of the same id never share it)."""
    return CLOSE_PREFIX + game_id


def round_end_id(game_id: str) -> str:
    """Key of the zero win that closes round ``game_id`` on a ``/play`` with ``finished:
    true`` and no actions. Not ``close_round_id``: that key belongs to the request that bets
    in the round, and the two may name the game differently (a key reused with another
    ``game`` is a duplicate)."""
    return END_PREFIX + game_id


def freespins_transaction_id(issue_id: str) -> str:
    """Key (and round) of the one payout of freespins issue ``issue_id`` (within the
    caller's scope)."""
    return FREESPINS_PREFIX + issue_id


def play_to_command(
    req: PlayRequest,
    session: GameSession | None,
    *,
    caller: Caller,
    now_s: float,
    amount_minor_max: int,
    origin: Origin | None = None,
) -> Atomic | GetBalance | Credit | Refusal[Status]:
    """/play -> GetBalance (no actions), the closing Credit of round ``game_id`` (no actions,
    ``finished: true``), one Atomic of Debit/Credit, or a Refusal.

    ``session`` is the session of ``req.session_id`` when ``needs_session(req)``, else
    ignored. Refusals: unknown currency, missing or empty ``game`` / ``game_id`` with
    actions, reserved or repeated ids, bad amounts (400 / 400); the session checks (400 /
    101 or 154). Every command is ``caller``'s: its partner, its scope.
    """
    refusal = _check_currency(req.currency)
    if refusal is not None:
        return refusal
    round_id, game = given(req.game_id), given(req.game)
    if not req.actions:
        if req.finished is True and round_id is not None:
            return Credit(
                scope=caller.scope, transaction_id=round_end_id(round_id), partner_id=caller.partner_id,
                player_id=req.user_id, currency=req.currency, amount_minor=0, round_id=round_id,
                game_id=game or "", round_closed=True, credit_type="win", round_policy=ROUND_ANY,
                origin=origin,
            )
        return GetBalance(partner_id=caller.partner_id, player_id=req.user_id, currency=req.currency)
    if round_id is None:
        return refusal_of(Code.INVALID_REQUEST, "game_id (the round) is required with actions")
    if game is None:
        return refusal_of(Code.INVALID_REQUEST, "game is required with actions")
    refusal = _check_ids([a.action_id for a in req.actions])
    if refusal is not None:
        return refusal
    actions: list[Debit | Credit] = []
    for action in req.actions:
        amount = amount_minor_from_wire(action.amount, req.currency, amount_minor_max=amount_minor_max)
        if isinstance(amount, Refusal):
            return amount
        if isinstance(action, BetAction):
            actions.append(Debit(
                scope=caller.scope, transaction_id=action.action_id, partner_id=caller.partner_id,
                player_id=req.user_id, currency=req.currency, amount_minor=amount,
                round_id=round_id, game_id=game,
                session_started_us=session.started_us() if session is not None else None,
            ))
        else:
            actions.append(Credit(
                scope=caller.scope, transaction_id=action.action_id, partner_id=caller.partner_id,
                player_id=req.user_id, currency=req.currency, amount_minor=amount,
                round_id=round_id, game_id=game, credit_type="win", round_policy=ROUND_REQUIRED,
            ))
    if needs_session(req):
        refusal = check_session(session, req, now_s, caller=caller)
        if refusal is not None:
            return refusal
    if req.finished is True:
        last = actions[-1]
        if isinstance(last, Credit):
            actions[-1] = msgspec.structs.replace(last, round_closed=True)
        else:
            # zero and derived: no round policy (it pays nothing, and a round it closes has
            # its bets in this very request or none at all)
            actions.append(Credit(
                scope=caller.scope, transaction_id=close_round_id(round_id),
                partner_id=caller.partner_id, player_id=req.user_id, currency=req.currency,
                amount_minor=0, round_id=round_id, game_id=game, round_closed=True,
                credit_type="win", round_policy=ROUND_ANY,
            ))
    return Atomic(scope=caller.scope, partner_id=caller.partner_id, player_id=req.user_id,
                  actions=tuple(actions), origin=origin)


def rollback_to_command(
    req: RollbackRequest, *, caller: Caller, origin: Origin | None = None
) -> Atomic | Refusal[Status]:
    """/rollback -> one Atomic of Rollback (each undoes ``original_action_id``), or a Refusal.

    No session is checked. ``currency`` (a known one, else 400 / 400) is only used to answer
    with a balance when the original is unknown; the shard uses the original's currency.

    Every rollback of the request may reverse a win (``credit_reversible``): a round is
    rolled back as ``[bet, win]`` or ``[win, bet]`` alike; if any action is refused, the
    shard undoes the whole unit, reversed wins included (README.md choice 10).
    """
    refusal = _check_currency(req.currency)
    if refusal is not None:
        return refusal
    refusal = _check_ids([i for a in req.actions for i in (a.action_id, a.original_action_id)])
    if refusal is not None:
        return refusal
    actions = tuple(
        Rollback(
            scope=caller.scope, transaction_id=a.action_id, partner_id=caller.partner_id,
            player_id=req.user_id, reference_transaction_id=a.original_action_id,
            currency=req.currency, round_id=given(req.game_id), credit_reversible=True,
        )
        for a in req.actions
    )
    return Atomic(scope=caller.scope, partner_id=caller.partner_id, player_id=req.user_id,
                  actions=actions, origin=origin)


def freespins_to_command(
    req: FreespinsRequest, *, caller: Caller, amount_minor_max: int, payout: str = FREESPINS_NOTICE,
    origin: Origin | None = None,
) -> Credit | Refusal[Status]:
    """/freespins -> one Credit (credit type "freespins") per ``issue_id``.

    ``payout`` is the integration's ``freespins_payout``: "credit" pays ``total_amount``;
    "notice" (the default) records the issue's end with a zero credit, because the wins of
    its spins came through ``/play`` (README.md "Freespins"). Either way ``total_amount``
    (absent = 0) must be a valid amount (a win's rules, >= 0) and ``status`` is not
    interpreted: whatever the issue's end ("played", "expired", "canceled"),
    ``total_amount`` is what its spins won.
    """
    amount = amount_minor_from_wire(req.total_amount or 0, req.currency, amount_minor_max=amount_minor_max)
    if isinstance(amount, Refusal):
        return amount
    key = freespins_transaction_id(req.issue_id)
    return Credit(
        scope=caller.scope, transaction_id=key, partner_id=caller.partner_id, player_id=req.user_id,
        currency=req.currency, amount_minor=amount if payout == FREESPINS_CREDIT else 0, round_id=key,
        game_id=req.game or "", credit_type="freespins", origin=origin,
    )


# ---- result -> answer ----------------------------------------------------------------------


def iso_utc(time_us: int) -> str:
    """Microseconds since the Unix epoch -> ISO-8601 UTC, ``2025-01-31T12:00:00.123456Z``."""
    seconds, micros = divmod(time_us, 1_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micros)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def balance_of(result: Result, currency: str | None) -> int | None:
    """cash + bonus minor units from a Result (in ``currency`` when given), or None.

    Money commands and Atomic units fill ``currency``/``cash_minor``/``bonus_minor``;
    GetBalance fills ``balances``.
    """
    if result.cash_minor is not None and (currency is None or result.currency == currency):
        return result.cash_minor + (result.bonus_minor or 0)
    for b in result.balances:
        if currency is None or b.currency == currency:
            return b.cash_minor + b.bonus_minor
    return None


def error_body(status: Status, balance: int | None) -> ErrorResponse:
    """``{code, message[, balance]}`` of a refusal."""
    assert status.code is not None
    return ErrorResponse(code=status.code, message=status.message, balance=balance)


def refusal_answer(refusal: Refusal[Status]) -> tuple[Status, ErrorResponse]:
    """Answer to an adapter Refusal: its status, no balance (the wallet was not asked)."""
    return refusal.status, error_body(refusal.status, None)


def retryable_answer() -> tuple[Status, ErrorResponse]:
    """HTTP 503 / code 503: try again (routes.py adds ``Retry-After``)."""
    return RETRYABLE, error_body(RETRYABLE, None)


def _refused(result: Result, currency: str | None, *, win: bool = False) -> tuple[Status, ErrorResponse]:
    status = status_for(result.code, win=win)
    if status.code is None:  # a non-OK code mapped to success would be a table bug
        status = RETRYABLE
    return status, error_body(status, balance_of(result, currency))


def refused_a_win(result: Result, command: Atomic) -> bool:
    """True if the action that made the unit ``command`` fail is a win (a Credit): the shard
    lists the results up to and including the refused action."""
    index = len(result.results) - 1
    return 0 <= index < len(command.actions) and isinstance(command.actions[index], Credit)


def units_answer(
    result: Result, command: Atomic, *, action_ids: list[str], game_id: str | None, now_us: int
) -> tuple[Status, PlayResponse | ErrorResponse]:
    """/play with actions and /rollback: answer of the Atomic ``command``'s result.

    OK: ``{balance, game_id, transactions}``, one transaction per provider action (the
    derived close-round win is not listed), ``tx_id`` = its ``ledger_transaction_id``
    (replays carry the stored one). A refusal: the table status (the win table when a win
    was refused, statuses.py) with the unchanged balance the shard reports
    (``{code: 100, message, balance}`` for insufficient funds).
    """
    if result.code is not Code.OK:
        return _refused(result, None, win=refused_a_win(result, command))
    balance = balance_of(result, None)
    if balance is None or len(result.results) < len(action_ids):
        return retryable_answer()  # an OK unit always carries both; never answer half of it
    transactions = [
        Transaction(
            action_id=action_id,
            tx_id="" if r.ledger_transaction_id is None else str(r.ledger_transaction_id),
            # the stored transaction's time, so a replay answers what the first answer said
            processed_at=iso_utc(r.processed_at_us or now_us),
        )
        # results may go on past the actions (the derived close-round win is last)
        for action_id, r in zip(action_ids, result.results, strict=False)
    ]
    return status_for(Code.OK), PlayResponse(balance=balance, game_id=game_id, transactions=transactions)


def balance_answer(
    result: Result, *, currency: str, game_id: str | None
) -> tuple[Status, PlayResponse | ErrorResponse]:
    """/play without actions (a balance request, or the closing win of its round):
    ``{balance, game_id}`` in ``currency``, or the refusal."""
    if result.code is not Code.OK:
        return _refused(result, currency)
    balance = balance_of(result, currency)
    if balance is None:
        refusal = refusal_of(Code.CURRENCY_MISMATCH, f"player has no {currency} wallet")
        return refusal.status, error_body(refusal.status, None)
    return status_for(Code.OK), PlayResponse(balance=balance, game_id=game_id)


def freespins_answer(
    result: Result, *, issue_id: str, now_us: int
) -> tuple[Status, FreespinsResponse | ErrorResponse]:
    """/freespins: ``{balance, issue_id, tx_id, processed_at}``, or the refusal."""
    if result.code is not Code.OK:
        return _refused(result, None)
    balance = balance_of(result, None)
    if balance is None:
        return retryable_answer()
    tx_id = "" if result.ledger_transaction_id is None else str(result.ledger_transaction_id)
    return status_for(Code.OK), FreespinsResponse(
        balance=balance, issue_id=issue_id, tx_id=tx_id,
        processed_at=iso_utc(result.processed_at_us or now_us),
    )


# ---- audit -------------------------------------------------------------------------------


def _bounded(value: object) -> object:
    """``audit.bounded_value``, with NUL in strings shown as U+FFFD (``_storable``)."""
    value = bounded_value(value)
    return _storable(value) if isinstance(value, str) else value


def _storable(text: str) -> str:
    """``text`` without NUL (PostgreSQL ``text`` cannot hold it): replaced by U+FFFD."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def audit_request(source: object) -> dict:
    """A small, bounded dict of what could be read from a request, for ``record_refusal``.

    ``source`` is a decoded request struct or the generic JSON value of an undecodable-but-
    parseable body. At most 10 actions are copied (and their count); a ``session_id`` is
    never copied, only whether one was sent.
    """
    get = field_getter(source)
    if get is None:
        return {}
    out: dict = {}
    for name in _AUDIT_FIELDS:
        value = get(name, None)
        if value is not None:
            out[name] = _bounded(value)
    actions = get("actions", None)
    if isinstance(actions, list):
        out["actions_count"] = len(actions)
        summaries = []
        for action in actions[:_AUDIT_ACTIONS_MAX]:
            action_get = field_getter(action)
            if action_get is None:
                summaries.append(_bounded(action))
                continue
            summary = {f: _bounded(action_get(f, None)) for f in _AUDIT_ACTION_FIELDS
                       if action_get(f, None) is not None}
            tag = getattr(type(action), "__struct_config__", None)
            if tag is not None and tag.tag is not None:
                summary["action"] = tag.tag
            summaries.append(summary)
        out["actions"] = summaries
    elif actions is not None:
        out["actions"] = _bounded(actions)
    out["session_sent"] = get("session_id", None) is not None
    return out


def str_field(source: object, name: str) -> str | None:
    """A string field of a request struct or generic JSON dict, bounded, else None.

    None too for a value holding a NUL: it names nobody, and it would fail the audit write
    (it is used as the refusal's ``player_id``).
    """
    value = source.get(name) if isinstance(source, dict) else getattr(source, name, None)
    if not isinstance(value, str) or "\x00" in value:
        return None
    return value[:AUDIT_STR_CHARS_MAX]
