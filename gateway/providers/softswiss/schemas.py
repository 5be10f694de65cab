"""SoftSwiss wallet request and response bodies, as msgspec Structs.

Source: README.md (``/play``: ``{user_id, currency, game,
game_id, finished, actions: [{action: "bet"|"win", amount, action_id, ...}]}``; the
response ``{balance, game_id, transactions: [{action_id, tx_id, processed_at}]}``;
``/rollback`` actions ``[{action: "rollback", action_id, original_action_id}]``; amounts
are integers in the currency's subunits). ``/freespins`` is not detailed there; its shape
(``issue_id``, ``status``, ``total_amount`` -- optional --, plus the player's ``user_id``
and ``currency``) is the freespins-issue callback of the same protocol (README.md,
"Freespins"). Optional strings SoftSwiss sends empty (``session_id``, ``game``,
``game_id``) decode from ``""`` too (README.md "Certification").

Every struct ignores unknown fields (providers add fields: ``amount_currency``,
``jackpot_contribution``, ...). Strings are bounded and free of control characters (a NUL
cannot be stored), ``actions`` holds at most
``commands.ATOMIC_ACTIONS_MAX`` items. ``action`` is the tag of each action: an action
other than those listed for the endpoint is a decode error.

Units: ``amount``, ``total_amount`` and ``balance`` are integer minor units (subunits) of
``currency``. A JSON number with a fraction or an exponent (``1.0``, ``1e3``), a string, a
bool or null is refused by the decoder (no float ever reaches a money path); range and
currency checks are in ``adapter.amount_minor_from_wire``.

Decode errors: ``msgspec.ValidationError`` (a field missing, of the wrong type, too long) ->
``WrongTypes``; anything else not decodable (not JSON, not UTF-8, too deep) ->
``WrongSyntax``. Both are answered 400 / code 400 (statuses.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, TypeVar

import msgspec

from gateway.shards.commands import ATOMIC_ACTIONS_MAX

# Identifiers: SoftSwiss sends UUIDs and numeric strings (36 / ~20 chars); 128 keeps the
# idempotency keys and audit records small. ``SessionStore.get`` refuses tokens > 256.
# No control characters anywhere: a NUL cannot be stored in a PostgreSQL ``text`` column (it
# would fail the shard's whole batch), and none belongs in an id. Lone surrogates (``\ud800``)
# never get this far: msgspec refuses them while parsing (WrongSyntax).
NO_CONTROL_CHARS: Final = r"^[^\x00-\x1f\x7f]*\Z"
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=NO_CONTROL_CHARS)]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=NO_CONTROL_CHARS)]
CurrencyCode = Annotated[str, msgspec.Meta(min_length=1, max_length=16, pattern=NO_CONTROL_CHARS)]
ShortText = Annotated[str, msgspec.Meta(max_length=64, pattern=NO_CONTROL_CHARS)]
# Optional fields that SoftSwiss may send as an empty string ("session_id": "", "game_id": ""
# on a balance request): "" decodes and the adapter reads it as absent (``adapter.given``).
MaybeId = Annotated[str, msgspec.Meta(max_length=128, pattern=NO_CONTROL_CHARS)]
MaybeGameName = Annotated[str, msgspec.Meta(max_length=256, pattern=NO_CONTROL_CHARS)]
MaybeToken = Annotated[str, msgspec.Meta(max_length=256, pattern=NO_CONTROL_CHARS)]


# ---- /play ---------------------------------------------------------------------------------


class BetAction(msgspec.Struct, tag_field="action", tag="bet", kw_only=True, frozen=True):
    """``{"action": "bet", "action_id", "amount"}``: a stake of ``amount`` minor units."""

    action_id: Id
    amount: int


class WinAction(msgspec.Struct, tag_field="action", tag="win", kw_only=True, frozen=True):
    """``{"action": "win", "action_id", "amount"}``: a payout of ``amount`` minor units for
    the round (``game_id``); it names no bet (README.md: wins are round-level)."""

    action_id: Id
    amount: int


PlayAction = BetAction | WinAction
PlayActions = Annotated[list[PlayAction], msgspec.Meta(max_length=ATOMIC_ACTIONS_MAX)]


class PlayRequest(msgspec.Struct, kw_only=True, frozen=True):
    """POST /play. No ``actions`` (absent or ``[]``) = a balance request.

    ``game`` is the game, ``game_id`` the round; both are required (non-empty) when there
    are actions (checked in adapter.py, so a balance request may omit them or send ``""``).
    ``finished: true`` closes the round after the actions (with no actions: closes round
    ``game_id`` if one is named). ``session_id`` is not in README.md's protocol: an optional
    token from ``POST /v1/sessions`` opened for this integration, checked on requests with
    bets only; ``""`` is no token.
    """

    user_id: UserId
    currency: CurrencyCode
    game: MaybeGameName | None = None
    game_id: MaybeId | None = None
    finished: bool | None = None
    actions: PlayActions = []
    session_id: MaybeToken | None = None


# ---- /rollback ------------------------------------------------------------------------------


class RollbackAction(msgspec.Struct, tag_field="action", tag="rollback", kw_only=True, frozen=True):
    """``{"action": "rollback", "action_id", "original_action_id"}``: undo of the bet or win
    ``original_action_id``; ``action_id`` is the rollback's own idempotency key."""

    action_id: Id
    original_action_id: Id


RollbackActions = Annotated[
    list[RollbackAction], msgspec.Meta(min_length=1, max_length=ATOMIC_ACTIONS_MAX)
]


class RollbackRequest(msgspec.Struct, kw_only=True, frozen=True):
    """POST /rollback: one or more rollback actions, applied as one unit.

    ``game`` / ``game_id`` / ``finished`` / ``session_id`` are accepted (``""`` included)
    and not required: rollbacks are retried for days and need no session (README.md
    "Common ground").
    """

    user_id: UserId
    currency: CurrencyCode
    actions: RollbackActions
    game: MaybeGameName | None = None
    game_id: MaybeId | None = None
    finished: bool | None = None
    session_id: MaybeToken | None = None


# ---- /freespins -----------------------------------------------------------------------------


class FreespinsRequest(msgspec.Struct, kw_only=True, frozen=True):
    """POST /freespins: a freespins issue of ``user_id`` ended; ``total_amount`` minor units
    (>= 0, optional: absent = 0) is what its spins won. Recorded once per ``issue_id``, and
    paid only where the integration says so (README.md "Freespins"). ``status`` ("played",
    "expired", "canceled", ...) is recorded in the audit, not interpreted."""

    issue_id: Id
    user_id: UserId
    currency: CurrencyCode
    total_amount: int | None = None
    status: ShortText | None = None
    game: MaybeGameName | None = None


# ---- responses ------------------------------------------------------------------------------


class Transaction(msgspec.Struct, kw_only=True, frozen=True):
    """One processed action: its ``action_id``, our ``tx_id`` (the ledger transaction id, as
    a string) and ``processed_at`` (ISO-8601 UTC, e.g. ``2025-01-31T12:00:00.123Z``)."""

    action_id: str
    tx_id: str
    processed_at: str


class PlayResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """/play and /rollback success: ``balance`` (cash + bonus, minor units) after the
    actions, the round ``game_id`` when the request named one, one ``transactions`` item per
    action of the request, in order (none for a balance request)."""

    balance: int
    game_id: str | None = None
    transactions: list[Transaction] | None = None


class FreespinsResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """/freespins success: ``balance`` after the payout, the ``issue_id``, our ``tx_id`` and
    ``processed_at`` (as for a /play transaction)."""

    balance: int
    issue_id: str
    tx_id: str
    processed_at: str


class ErrorResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every refusal: ``{code, message}`` and ``balance`` (minor units) when known --
    always for insufficient funds (README.md: "{code: 100, message, balance}")."""

    code: int
    message: str
    balance: int | None = None


Response = PlayResponse | FreespinsResponse | ErrorResponse
R = TypeVar("R", PlayRequest, RollbackRequest, FreespinsRequest)

#: One decoder per request Struct (``decode`` answers that Struct; typed Any here).
DECODERS: Final[dict[type, msgspec.json.Decoder[Any]]] = {
    PlayRequest: msgspec.json.Decoder(PlayRequest),
    RollbackRequest: msgspec.json.Decoder(RollbackRequest),
    FreespinsRequest: msgspec.json.Decoder(FreespinsRequest),
}

_encoder: Final = msgspec.json.Encoder()


class WrongSyntax(ValueError):
    """The body is not a JSON document (400 / 400)."""


class WrongTypes(ValueError):
    """JSON, but a field is missing, of the wrong type or out of bounds (400 / 400)."""


def decode_request(body: bytes, request_type: type[R]) -> R:
    """Decode a raw body into ``request_type``. Raises WrongSyntax or WrongTypes."""
    try:
        return DECODERS[request_type].decode(body)
    except msgspec.ValidationError as exc:
        raise WrongTypes(str(exc)[:200]) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        # Invalid UTF-8 inside a kept string and nesting past msgspec's limit are bad
        # syntax, not faults.
        raise WrongSyntax(str(exc)[:200]) from None


def encode_response(response: Response) -> bytes:
    """JSON bytes of a response body."""
    return _encoder.encode(response)
