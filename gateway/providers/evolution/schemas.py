"""Evolution One Wallet request and response bodies, as msgspec Structs.

Source: README.md ("Request": ``sid``, ``userId``, ``uuid``,
``currency``, ``game{id, type, details{table{id, vid}}}``, ``transaction{id, refId,
amount}``; promo payout ``promoTransaction{type, id, amount, voucherId,
remainingRounds}``; "Response": ``{status, balance, bonus, uuid}``). Wire names are
camelCase (``rename="camel"``: ``user_id`` <-> ``userId``). Every struct ignores unknown
fields (Evolution adds fields over time, e.g. ``channel``); a field is required only where
the adapter cannot work without it. Strings and ids are bounded.

Units: ``amount``, ``balance`` and ``bonus`` are decimal numbers in major units
(EUR 12.5). They are decoded exactly into ``decimal.Decimal`` from the JSON text (msgspec
never goes through a float for a Decimal field; a decimal string such as ``"12.5"`` is
accepted too) and converted with ``adapter.amount_minor_from_decimal``. Responses carry
``balance`` and ``bonus`` as raw JSON number text made by ``adapter.amount_wire_from_minor``
from integer minor units, written with the currency's decimals and never in exponent form:
EUR 1250 minor -> ``12.50``, BTC 1 -> ``0.00000001``.

Informational strings may be empty (README.md "Certification", case 26): Evolution sends
``"vid": ""`` for a table without a virtual table, and its own licensee tests send every
unset string as ``""``. So ``game.id``, ``game.type``, ``game.details.table.id`` / ``vid``,
``uuid``, ``promoTransaction.type`` / ``voucherId`` and ``sid`` accept ``""`` (and null),
read as absent where the adapter uses them. The keys stay non-empty: ``userId``,
``transaction.id``, ``transaction.refId`` and ``promoTransaction.id`` (idempotency keys and
the player).

Decode errors of any kind (not JSON, not an object, missing field, wrong type, string too
long) raise ``BadRequest`` -> ``INVALID_PARAMETER`` (Evolution has one status for both).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Final, TypeVar

import msgspec

# Bounds on identifiers: Evolution's ids are UUIDs or short strings; 128 keeps audit
# records and idempotency keys small. Ids are visible ASCII (as the generic API's), free
# text has no control characters: a NUL byte must never reach a PostgreSQL text column.
_VISIBLE: Final = r"^[\x21-\x7e]+\Z"
_VISIBLE_OR_EMPTY: Final = r"^[\x21-\x7e]*\Z"
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=_VISIBLE)]
#: An informational id: visible ASCII like ``Id``, or ``""`` (read as absent).
InfoId = Annotated[str, msgspec.Meta(max_length=128, pattern=_VISIBLE_OR_EMPTY)]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=_VISIBLE)]
#: A sid may be ``""``: it is then no session (``/sid`` takes any sid, README.md choice 11).
Sid = Annotated[str, msgspec.Meta(max_length=256, pattern=_VISIBLE_OR_EMPTY)]
CurrencyCode = Annotated[str, msgspec.Meta(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9]+\Z")]
Text = Annotated[str, msgspec.Meta(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*\Z")]
GameRef = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | InfoId


class Table(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """``game.details.table``: the live table (``id``) and its virtual table (``vid``, often
    ``""``); both informational, ``""`` read as absent."""

    id: GameRef | None = None
    vid: GameRef | None = None


class GameDetails(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    table: Table | None = None


class Game(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """``game``: ``id`` is Evolution's game round id, ``type`` the game type (e.g.
    "blackjack"), ``details.table`` the table. ``""`` in any of them is read as absent."""

    id: GameRef | None = None
    type: Text | None = None
    details: GameDetails | None = None


class Transaction(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """``transaction``: ``id`` unique per request kind, ``refId`` names the debit (a credit
    or cancel finds its debit by ``refId``, README.md), ``amount`` in major units."""

    id: Id
    ref_id: Id
    amount: Decimal


class CancelTransaction(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """A cancel's ``transaction``: the refund is the debit's own stake, so ``amount`` is
    optional here (validated when sent, never used to move money; README.md, choice 9)."""

    id: Id
    ref_id: Id
    amount: Decimal | None = None


class PromoTransaction(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """``promoTransaction``: ``type`` (e.g. a jackpot or free-round payout), ``id`` (the
    idempotency key), ``amount`` in major units, ``voucherId``, ``remainingRounds``."""

    id: Id
    amount: Decimal
    type: Text | None = None
    voucher_id: Text | int | None = None
    remaining_rounds: int | None = None


class CheckRequest(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """POST /check and POST /sid: ``sid`` (``/check``: to validate and replace; ``/sid``:
    any) and ``userId``; ``channel`` is ignored."""

    sid: Sid
    user_id: UserId
    uuid: InfoId | None = None


class BalanceRequest(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """POST /balance: ``sid``, ``userId``, ``currency`` (optional: the session's is used)."""

    sid: Sid
    user_id: UserId
    currency: CurrencyCode | None = None
    game: Game | None = None
    uuid: InfoId | None = None


class DebitRequest(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """POST /debit: a stake. ``sid`` must be live (README.md, "Sessions")."""

    sid: Sid
    user_id: UserId
    currency: CurrencyCode
    transaction: Transaction
    game: Game | None = None
    uuid: InfoId | None = None


class CreditRequest(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """POST /credit: a payout (may be 0) for the debit named by ``transaction.refId``.
    ``sid`` is optional: credits are retried for days after the session ended."""

    user_id: UserId
    currency: CurrencyCode
    transaction: Transaction
    sid: Sid | None = None
    game: Game | None = None
    uuid: InfoId | None = None


class CancelRequest(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """POST /cancel: undo of the debit named by ``transaction.refId``; ``sid`` optional."""

    user_id: UserId
    transaction: CancelTransaction
    currency: CurrencyCode | None = None
    sid: Sid | None = None
    game: Game | None = None
    uuid: InfoId | None = None


class PromoPayoutRequest(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """POST /promo_payout: a promotional payout (no bet), ``sid`` optional."""

    user_id: UserId
    currency: CurrencyCode
    promo_transaction: PromoTransaction
    sid: Sid | None = None
    game: Game | None = None
    uuid: InfoId | None = None


class EvolutionResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Balance, debit, credit, cancel and promo answer: ``{status, balance, bonus, uuid}``.

    ``balance`` is the cash balance and ``bonus`` the bonus balance, both in major units
    (README.md, choice 4), on every answer once the caller is authenticated, refusals
    included: the player's when known, else zero (README.md "Answers"). Omitted only for a
    wrong ``authToken``, a body over the limit and ``TEMPORARY_ERROR``. ``uuid`` echoes the
    request's.
    """

    status: str
    balance: msgspec.Raw | None = None  # JSON number text, adapter.amount_wire_from_minor
    bonus: msgspec.Raw | None = None
    uuid: str | None = None


class SidResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """/check and /sid answer: ``{status, sid, uuid}``; ``sid`` is the new session id."""

    status: str
    sid: str | None = None
    uuid: str | None = None


Request = (
    CheckRequest | BalanceRequest | DebitRequest | CreditRequest | CancelRequest
    | PromoPayoutRequest
)
Response = EvolutionResponse | SidResponse
R = TypeVar(
    "R", CheckRequest, BalanceRequest, DebitRequest, CreditRequest, CancelRequest,
    PromoPayoutRequest,
)

#: One decoder per request Struct (``decode`` answers that Struct; typed Any here).
DECODERS: Final[dict[type, msgspec.json.Decoder[Any]]] = {
    t: msgspec.json.Decoder(t)
    for t in (CheckRequest, BalanceRequest, DebitRequest, CreditRequest, CancelRequest,
              PromoPayoutRequest)
}

_encoder: Final = msgspec.json.Encoder()


class BadRequest(ValueError):
    """The body is not JSON, not an object, or a field is missing, mistyped or too long."""


def decode_request(body: bytes, request_type: type[R]) -> R:
    """Decode a raw body into ``request_type``. Raises BadRequest (-> INVALID_PARAMETER)."""
    try:
        return DECODERS[request_type].decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        # ValidationError is a DecodeError. msgspec raises UnicodeDecodeError for invalid
        # UTF-8 inside a kept string and RecursionError past its nesting limit: bad input.
        raise BadRequest(str(exc)[:200]) from None


def encode_response(response: Response) -> bytes:
    """JSON bytes of an answer; amounts are the exact number text (``12.50``), never a float."""
    return _encoder.encode(response)
