"""Pragmatic Play wallet requests (form fields) and responses (JSON), as msgspec Structs.

Source: README.md ("Transport": POST
``application/x-www-form-urlencoded``, JSON response; "Fields"; "Responses").

Requests are read in two steps:

1. ``parse_form(body)`` -> ``dict[str, str]``: strict form decoding, bounded
   (``FIELDS_MAX`` parameters, names of at most ``NAME_CHARS_MAX`` characters matching
   ``[A-Za-z][A-Za-z0-9_]*``, values of at most ``VALUE_CHARS_MAX`` characters). A body that
   is not a form, a repeated parameter (ambiguous: which one was hashed?), or a bound
   exceeded raises ``BadForm``. The dict is what the hash is checked over.
2. ``decode_fields(fields, RequestType)`` -> the endpoint's Struct. Every value is a string
   on the wire, so every field is a bounded ``str``; amounts stay text and are converted
   exactly by ``adapter.amount_minor_from_decimal``. Unknown parameters are ignored
   (Pragmatic adds parameters over time). An empty value counts as absent. A missing
   required field or a value out of bounds raises ``BadFields``.

Both errors are answered ``error: 7`` (bad parameters) by the routes.

Responses: ``cash`` and ``bonus`` are ``Decimal`` major units, encoded as JSON numbers with
exactly the currency's decimals (``12.50``), never through a float (``encode_response``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Final, TypeVar
from urllib.parse import unquote_plus

import msgspec

#: Most parameters one request may carry (Pragmatic's largest, result, has about 20).
FIELDS_MAX: Final = 64
#: Longest parameter name.
NAME_CHARS_MAX: Final = 64
#: Longest parameter value (``roundDetails`` is the longest free text).
VALUE_CHARS_MAX: Final = 4_096
#: Most game ids in one ``getBalancePerGame`` ``gameIdList``.
GAME_IDS_MAX: Final = 100

_NAME_RE: Final = re.compile(rf"[A-Za-z][A-Za-z0-9_]{{0,{NAME_CHARS_MAX - 1}}}")

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
AmountText = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
CurrencyCode = Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
Text = Annotated[str, msgspec.Meta(max_length=VALUE_CHARS_MAX)]


class BadForm(ValueError):
    """The body is not a well-formed, bounded form with each parameter once (error 7)."""


class BadFields(ValueError):
    """A required parameter is missing or a value is out of bounds (error 7)."""


def parse_form(body: bytes) -> dict[str, str]:
    """Strictly decode an ``application/x-www-form-urlencoded`` body into name -> value.

    The WHATWG/HTML rules that ``urllib.parse.parse_qsl(strict_parsing=True)`` implements:
    pairs split on ``&``, name and value on the first ``=``, ``+`` is a space and ``%XX``
    a UTF-8 byte. Done by hand because ``parse_qsl`` cost ~15 us per Pragmatic request (a
    tenth of the adapter's overhead, docs/BENCHMARKS.md); percent-decoding still goes through
    ``unquote_plus``, and only for a part that holds ``%`` or ``+``.
    ``tests/test_pragmatic_unit.py`` checks it against ``parse_qsl`` with hypothesis.

    Raises BadForm: not UTF-8 (raw or percent-encoded), an empty pair or one without ``=``,
    more than ``FIELDS_MAX`` parameters, a name not matching ``[A-Za-z][A-Za-z0-9_]*`` or
    longer than ``NAME_CHARS_MAX``, a value longer than ``VALUE_CHARS_MAX``, a parameter
    given twice, an empty body.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadForm(f"not a form body: {str(exc)[:120]}") from None
    if not text:
        raise BadForm("empty body")
    pairs = text.split("&")
    if len(pairs) > FIELDS_MAX:
        raise BadForm(f"not a form body: more than {FIELDS_MAX} parameters")
    fields: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals:
            raise BadForm(f"not a form body: bad query field: {pair[:40]!r}")
        try:
            if "%" in name or "+" in name:
                name = unquote_plus(name, encoding="utf-8", errors="strict")
            if "%" in value or "+" in value:
                value = unquote_plus(value, encoding="utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise BadForm(f"not a form body: {str(exc)[:120]}") from None
        if not _NAME_RE.fullmatch(name):
            raise BadForm(f"bad parameter name {name[:40]!r}")
        if len(value) > VALUE_CHARS_MAX:
            raise BadForm(f"parameter {name} longer than {VALUE_CHARS_MAX} characters")
        if name in fields:
            raise BadForm(f"parameter {name} given more than once")
        fields[name] = value
    return fields


# ---- requests ------------------------------------------------------------------------
# Every request carries ``providerId`` and ``hash`` (hash is checked on the raw dict and not
# decoded here). Fields follow README.md's list; optional ones default to None.


class AuthenticateRequest(msgspec.Struct, kw_only=True, frozen=True):
    """/authenticate.html: the launch ``token`` -> who the player is."""

    providerId: Id
    token: Token
    gameId: Id | None = None
    platform: Text | None = None
    ipAddress: Text | None = None


class BalanceRequest(msgspec.Struct, kw_only=True, frozen=True):
    """/balance.html: the balance of ``userId`` in the session's currency; ``token`` is
    optional (README.md "Certification", required fields): without it, the player's only
    wallet."""

    providerId: Id
    userId: Id
    token: Token | None = None
    gameId: Id | None = None
    platform: Text | None = None


class BetRequest(msgspec.Struct, kw_only=True, frozen=True):
    """/bet.html: stake ``amount`` (decimal major units, >= 0) on ``roundId`` of ``gameId``.

    ``currency`` is not in README.md's field list; when sent it must be the session's.
    """

    providerId: Id
    userId: Id
    token: Token
    gameId: Id
    roundId: Id
    amount: AmountText
    reference: Id
    timestamp: Text | None = None
    roundDetails: Text | None = None
    bonusCode: Text | None = None
    platform: Text | None = None
    jackpotId: Text | None = None
    jackpotContribution: Text | None = None
    currency: CurrencyCode | None = None


class ResultRequest(msgspec.Struct, kw_only=True, frozen=True):
    """/result.html: win ``amount`` (>= 0) of ``roundId``; names the round, never the bet.

    ``promoWinAmount`` (> 0) with ``promoWinReference`` is a promo win paid with it.
    """

    providerId: Id
    userId: Id
    gameId: Id
    roundId: Id
    amount: AmountText
    reference: Id
    token: Token | None = None
    timestamp: Text | None = None
    roundDetails: Text | None = None
    bonusCode: Text | None = None
    platform: Text | None = None
    promoWinAmount: AmountText | None = None
    promoWinReference: Id | None = None
    promoCampaignID: Text | None = None
    promoCampaignType: Text | None = None
    currency: CurrencyCode | None = None


class BonusWinRequest(msgspec.Struct, kw_only=True, frozen=True):
    """/bonusWin.html: the win of a bonus (free rounds, ``bonusCode``), ``amount`` >= 0."""

    providerId: Id
    userId: Id
    amount: AmountText
    reference: Id
    token: Token | None = None
    gameId: Id | None = None
    roundId: Id | None = None
    bonusCode: Text | None = None
    timestamp: Text | None = None
    platform: Text | None = None
    currency: CurrencyCode | None = None


class JackpotWinRequest(msgspec.Struct, kw_only=True, frozen=True):
    """/jackpotWin.html: a jackpot payout (``jackpotId``), ``amount`` >= 0."""

    providerId: Id
    userId: Id
    amount: AmountText
    reference: Id
    token: Token | None = None
    gameId: Id | None = None
    roundId: Id | None = None
    jackpotId: Text | None = None
    timestamp: Text | None = None
    platform: Text | None = None
    currency: CurrencyCode | None = None


class PromoWinRequest(msgspec.Struct, kw_only=True, frozen=True):
    """/promoWin.html: a promotion payout (tournament, prize drop), ``amount`` >= 0."""

    providerId: Id
    userId: Id
    amount: AmountText
    reference: Id
    token: Token | None = None
    gameId: Id | None = None
    roundId: Id | None = None
    campaignId: Text | None = None
    campaignType: Text | None = None
    timestamp: Text | None = None
    currency: CurrencyCode | None = None


class EndRoundRequest(msgspec.Struct, kw_only=True, frozen=True):
    """/endRound.html: ``roundId`` of ``userId`` is over."""

    providerId: Id
    userId: Id
    roundId: Id
    token: Token | None = None
    gameId: Id | None = None
    timestamp: Text | None = None
    roundDetails: Text | None = None
    platform: Text | None = None


class RefundRequest(msgspec.Struct, kw_only=True, frozen=True):
    """/refund.html: undo the bet whose ``reference`` is given (``amount`` is informative)."""

    providerId: Id
    userId: Id
    reference: Id
    token: Token | None = None
    gameId: Id | None = None
    roundId: Id | None = None
    amount: AmountText | None = None
    timestamp: Text | None = None
    roundDetails: Text | None = None
    bonusCode: Text | None = None
    platform: Text | None = None


class AdjustmentRequest(msgspec.Struct, kw_only=True, frozen=True):
    """/adjustment.html: a signed correction ``amount`` (may be negative) on ``roundId``."""

    providerId: Id
    userId: Id
    amount: AmountText
    reference: Id
    token: Token | None = None
    gameId: Id | None = None
    roundId: Id | None = None
    validBetAmount: Text | None = None
    timestamp: Text | None = None
    currency: CurrencyCode | None = None


class SessionExpiredRequest(msgspec.Struct, kw_only=True, frozen=True):
    """/sessionExpired.html: Pragmatic's game session of the player has ended (every field
    but ``providerId`` optional). ``sessionId`` is Pragmatic's own; ``playerId`` ours."""

    providerId: Id
    token: Token | None = None
    sessionId: Text | None = None
    playerId: Id | None = None
    userId: Id | None = None
    timestamp: Text | None = None


class RoundDetailsRequest(msgspec.Struct, kw_only=True, frozen=True):
    """/roundDetails.html: details of a finished round (``smResult``, ``gameCategory``,
    ``betMultiplier``), for information; no money moves."""

    providerId: Id
    userId: Id
    roundId: Id
    gameId: Id | None = None
    smResult: Text | None = None
    gameCategory: Text | None = None
    betMultiplier: Text | None = None
    timestamp: Text | None = None


class BalancePerGameRequest(msgspec.Struct, kw_only=True, frozen=True):
    """/getBalancePerGame.html: the balance for each id of the comma-separated ``gameIdList``."""

    providerId: Id
    userId: Id
    gameIdList: Text
    token: Token | None = None
    platform: Text | None = None


R = TypeVar(
    "R",
    AuthenticateRequest,
    BalanceRequest,
    BetRequest,
    ResultRequest,
    BonusWinRequest,
    JackpotWinRequest,
    PromoWinRequest,
    EndRoundRequest,
    RefundRequest,
    AdjustmentRequest,
    BalancePerGameRequest,
    SessionExpiredRequest,
    RoundDetailsRequest,
)


def decode_fields(fields: dict[str, str], request_type: type[R]) -> R:
    """The endpoint's Struct from parsed form fields; empty values count as absent.

    Raises BadFields naming the missing or out-of-bounds field.
    """
    present = {name: value for name, value in fields.items() if value != ""}
    try:
        return msgspec.convert(present, type=request_type)
    except msgspec.ValidationError as exc:
        raise BadFields(str(exc)[:200]) from None


def split_game_ids(game_id_list: str) -> list[str] | None:
    """``"vs20a,vs25b"`` -> ``["vs20a", "vs25b"]``; None if empty, too many, or an id is bad.

    At most ``GAME_IDS_MAX`` ids of 1..128 characters; blanks around commas are ignored.
    """
    ids = [part.strip() for part in game_id_list.split(",")]
    if not ids or len(ids) > GAME_IDS_MAX or any(not 0 < len(i) <= 128 for i in ids):
        return None
    return ids


# ---- responses -----------------------------------------------------------------------


class PragmaticResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every answer: ``error`` (0 = success) and ``description``, plus what the wallet knows.

    bet/result/wins/refund/adjustment: ``transactionId`` (our ledger id, as a JSON string as
    every implementation sends it; the original one on a replay), ``currency``, ``cash``,
    ``bonus`` (Decimal major units), ``usedPromo`` (bet and result). authenticate adds
    ``userId``, ``token`` (the token it was sent: we keep it), ``country``,
    ``jurisdiction``. Fields the adapter does not know (e.g. the balance of a request refused
    before the wallet was asked) are omitted, never invented.
    """

    error: int
    description: str
    transactionId: str | None = None
    userId: str | None = None
    token: str | None = None
    currency: str | None = None
    cash: Decimal | None = None
    bonus: Decimal | None = None
    usedPromo: Decimal | None = None
    country: str | None = None
    jurisdiction: str | None = None


class GameBalance(msgspec.Struct, kw_only=True):
    """One entry of ``gamesBalances``."""

    gameID: str
    cash: Decimal
    bonus: Decimal


class BalancePerGameResponse(PragmaticResponse, kw_only=True, omit_defaults=True):
    """/getBalancePerGame.html answer: ``gamesBalances`` (one per requested game id)."""

    gamesBalances: list[GameBalance] | None = None


_encoder: Final = msgspec.json.Encoder(decimal_format="number")


def encode_response(response: PragmaticResponse) -> bytes:
    """JSON bytes; Decimals as JSON numbers written from their exact digits (``12.50``)."""
    return _encoder.encode(response)
