"""Hub88 wallet request and response bodies, as msgspec Structs.

Source: README.md ("Request fields", "Response", "Amounts"), and
Hub88's Operator Wallet API reference for ``/user/info``. Every request struct ignores
unknown fields (Hub88 adds fields over time). A field is required only where the adapter
cannot work without it, or where money would move wrongly without it (a win's
``reference_transaction_uuid``); everything else is optional (README.md, choice 13).

Units: ``amount`` and ``balance`` are integers equal to major units x 100000 (EUR 3.56 ->
356000), converted exactly with ``gateway.money`` (``AMOUNT_SCALE``). No floats: a JSON
number with a fraction or exponent is refused by the decoder (``RS_ERROR_WRONG_TYPES``).

Decode errors (``decode_request``): a required field missing -> ``MissingField``
(``RS_ERROR_WRONG_SYNTAX``: Hub88's "the received request doesn't match expected request
form"); any other ``msgspec.ValidationError`` (wrong type, ``null`` for a required field,
string too long, JSON that is not an object) -> ``WrongTypes`` (``RS_ERROR_WRONG_TYPES``);
anything that is not JSON -> ``WrongSyntax`` (``RS_ERROR_WRONG_SYNTAX``). README.md,
choice 5 and "Certification".
"""

from __future__ import annotations

from typing import Annotated, Any, Final, TypeVar

import msgspec

#: Hub88 amounts and balances are major units x 100000 (README.md "Amounts").
AMOUNT_SCALE: Final = 100_000

# Bounds on identifiers: generous for Hub88's UUIDs (36 chars) and user ids, tight enough
# to keep audit records and idempotency keys small. SessionStore.get refuses tokens > 256.
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
CurrencyCode = Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
Text = Annotated[str, msgspec.Meta(max_length=1_024)]
#: An informational id that may be sent empty: ``""`` counts as absent (README.md, choice 13).
# Wins and rollbacks are retried until they get a final answer, so they must not fail on an
# empty ``round``, ``request_uuid`` or ``game_code``; money ids (``transaction_uuid``,
# ``reference_transaction_uuid``, ``user``, ``token``) stay non-empty.
InfoId = Annotated[str, msgspec.Meta(max_length=128)]

_NULL: Final = msgspec.Raw(b"null")


class UserInfoRequest(msgspec.Struct, kw_only=True, frozen=True):
    """POST /user/info. Hub88 documents only ``user`` and ``request_uuid``.

    ``token`` is not part of Hub88's documented request; when a caller sends one anyway it
    is checked like on /user/balance (README.md, "Choices").
    """

    user: UserId
    request_uuid: InfoId | None = None
    token: Token | None = None


class BalanceRequest(msgspec.Struct, kw_only=True, frozen=True):
    """POST /user/balance: ``request_uuid``, ``token``, ``user``, ``game_code`` (or ``game_id``),
    ``supplier_user``. The token is required: the player's currency comes from the session."""

    token: Token
    request_uuid: InfoId | None = None
    user: UserId | None = None
    game_code: Text | None = None
    game_id: int | Text | None = None
    supplier_user: Text | None = None


class BetRequest(msgspec.Struct, kw_only=True, frozen=True):
    """POST /transaction/bet. ``amount`` is the stake x 100000, > 0 (0 only for a free bet:
    ``is_free`` or ``is_supplier_promo``, which Hub88 sends with ``amount`` 0)."""

    token: Token
    user: UserId
    transaction_uuid: Id
    game_code: Id
    currency: CurrencyCode
    amount: int
    request_uuid: InfoId | None = None
    round: InfoId | None = None
    round_closed: bool | None = None
    supplier_transaction_id: Text | None = None
    supplier_user: Text | None = None
    reward_uuid: Text | None = None
    is_free: bool | None = None
    is_supplier_promo: bool | None = None
    is_aggregated: bool | None = None
    bet: Text | None = None
    meta: msgspec.Raw = _NULL


class WinRequest(msgspec.Struct, kw_only=True, frozen=True):
    """POST /transaction/win: the bet's fields plus ``reference_transaction_uuid`` (the bet).

    ``reference_transaction_uuid`` is required (Caleta's ``wallet_win_body``, the Hub88-style
    SDK's win route; Hub88 creates a zero bet for a supplier promotion that has none): a win
    without it is never paid (README.md, "Certification", case 15). ``token`` and
    ``game_code`` are optional: wins are retried for days after the session ended, and
    ``user`` identifies the player (README.md, "Common ground").
    ``amount`` is the payout x 100000, >= 0.
    """

    user: UserId
    transaction_uuid: Id
    reference_transaction_uuid: Id
    currency: CurrencyCode
    amount: int
    token: Token | None = None
    game_code: InfoId | None = None
    request_uuid: InfoId | None = None
    round: InfoId | None = None
    round_closed: bool | None = None
    supplier_transaction_id: Text | None = None
    supplier_user: Text | None = None
    reward_uuid: Text | None = None
    is_free: bool | None = None
    is_supplier_promo: bool | None = None
    is_aggregated: bool | None = None
    bet: Text | None = None
    meta: msgspec.Raw = _NULL


class RollbackRequest(msgspec.Struct, kw_only=True, frozen=True):
    """POST /transaction/rollback: undo of ``reference_transaction_uuid`` (a bet).

    Hub88 sends no amount or currency; ``currency`` is accepted if present and only used to
    answer with a balance when the session is unknown.
    """

    user: UserId
    transaction_uuid: Id
    reference_transaction_uuid: Id
    token: Token | None = None
    request_uuid: InfoId | None = None
    round: InfoId | None = None
    round_closed: bool | None = None
    game_code: InfoId | None = None
    currency: CurrencyCode | None = None
    supplier_transaction_id: Text | None = None
    supplier_user: Text | None = None
    meta: msgspec.Raw = _NULL


class Hub88Response(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every Hub88 answer: ``{user, status, request_uuid, currency, balance}``.

    ``balance`` is cash + bonus in major units x 100000. Fields the adapter does not know
    (e.g. the balance on a refusal decided before the wallet was asked) are omitted, never
    invented.
    """

    user: str | None = None
    status: str
    request_uuid: str | None = None
    currency: str | None = None
    balance: int | None = None


class UserInfoResponse(Hub88Response, kw_only=True, omit_defaults=True):
    """/user/info answer: the common fields plus what Hub88 documents for info that the
    wallet knows (``country``, ISO 3166-1 alpha-2)."""

    country: str | None = None


Request = UserInfoRequest | BalanceRequest | BetRequest | WinRequest | RollbackRequest
R = TypeVar("R", UserInfoRequest, BalanceRequest, BetRequest, WinRequest, RollbackRequest)

#: One decoder per request Struct (``decode`` answers that Struct; typed Any here).
DECODERS: Final[dict[type, msgspec.json.Decoder[Any]]] = {
    UserInfoRequest: msgspec.json.Decoder(UserInfoRequest),
    BalanceRequest: msgspec.json.Decoder(BalanceRequest),
    BetRequest: msgspec.json.Decoder(BetRequest),
    WinRequest: msgspec.json.Decoder(WinRequest),
    RollbackRequest: msgspec.json.Decoder(RollbackRequest),
}

_encoder: Final = msgspec.json.Encoder()


class WrongSyntax(ValueError):
    """The body is not JSON (``RS_ERROR_WRONG_SYNTAX``)."""


class WrongTypes(ValueError):
    """JSON, but a field is of the wrong type or out of bounds, or the JSON is not an object
    (``RS_ERROR_WRONG_TYPES``)."""


class MissingField(ValueError):
    """A JSON object without one of the request's required fields (``RS_ERROR_WRONG_SYNTAX``:
    the request does not have the expected form)."""


#: How msgspec words a missing required field of a flat Struct (msgspec >= 0.18).
_MISSING_FIELD_PREFIX: Final = "Object missing required field"


def decode_request(body: bytes, request_type: type[R]) -> R:
    """Decode a raw body into ``request_type``. Raises WrongSyntax, MissingField or WrongTypes."""
    try:
        return DECODERS[request_type].decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if message.startswith(_MISSING_FIELD_PREFIX):
            raise MissingField(message) from None
        raise WrongTypes(message) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        # msgspec raises UnicodeDecodeError for invalid UTF-8 inside a string it keeps, and
        # RecursionError for nesting deeper than its limit: both are bad syntax, not faults.
        raise WrongSyntax(str(exc)[:200]) from None


def encode_response(response: Hub88Response) -> bytes:
    """JSON bytes of a response, exactly the bytes that get signed and sent."""
    return _encoder.encode(response)
