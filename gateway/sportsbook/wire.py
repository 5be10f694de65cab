"""The sportsbook API's request and response bodies (docs/SPORTSBOOK.md, "API").

Shapes only: the decoder enforces what it can state (types, lengths, patterns, enums); the
rules that need more than one field (exactly one odds notation, each-way terms, the system
sizes) are checked by ``gateway.sportsbook.markets`` and ``gateway.sportsbook.placement``,
each with its stable code. These Structs are also the OpenAPI document's schemas
(gateway/edge/openapi.py). Money is in integer minor units; ratios and odds are exact text.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from gateway import money

# The generic API's own field types: one definition of an id, a player id and a currency.
from gateway.edge.api_v1 import Currency, Id, PlayerId
from gateway.sportsbook.bets import BetType, LegResult

#: Odds, a ratio or a deduction as text: digits, ".", "/", "+", "-" (parsed exactly later).
Ratio = Annotated[str, msgspec.Meta(min_length=1, max_length=24, pattern=r"^[0-9./+-]+\Z")]
AmountMinor = Annotated[int, msgspec.Meta(ge=1, le=money.AMOUNT_MINOR_CEILING)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[^\x00]+\Z")]

MarketStatus = Literal["open", "suspended", "closed"]
OddsChange = Literal["reject", "accept_higher", "accept_any"]
StakeConventionName = Literal["per_line", "total"]


class OddsBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A price in exactly one notation: ``{"decimal": "2.50"}``, ``{"fractional": "6/4"}``
    or ``{"american": "+150"}``; more or fewer than one is ``invalid_odds``."""

    decimal: Ratio | None = None
    fractional: Ratio | None = None
    american: Ratio | None = None


class SelectionBody(msgspec.Struct, forbid_unknown_fields=True):
    selection_id: Id
    odds: OddsBody


class EachWayTerms(msgspec.Struct, forbid_unknown_fields=True):
    """Each-way terms of a market: the place part pays ``fraction`` of the odds (``"1/4"``)
    for a selection finishing in the first ``places``."""

    fraction: Ratio
    places: Annotated[int, msgspec.Meta(ge=1, le=10)]


class MarketLimits(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Limits of a market in its currency's minor units; absent: unlimited."""

    market_liability_max_minor: AmountMinor | None = None
    selection_liability_max_minor: AmountMinor | None = None
    bet_stake_max_minor: AmountMinor | None = None
    bet_payout_max_minor: AmountMinor | None = None


class MarketBody(msgspec.Struct, forbid_unknown_fields=True):
    """``PUT /v1/sportsbook/markets/{market_id}``: the whole market, replacing what was stored."""

    event: Text
    status: MarketStatus
    price_version: Annotated[int, msgspec.Meta(ge=0, le=money.AMOUNT_MINOR_CEILING)]
    currency: Currency
    selections: Annotated[list[SelectionBody], msgspec.Meta(min_length=1, max_length=10_000)]
    limits: MarketLimits = msgspec.field(default_factory=MarketLimits)
    each_way: EachWayTerms | None = None


class StoredOddsOut(msgspec.Struct):
    """Odds as stored: ``exact`` the decimal odds as "num/den" in lowest terms, with the
    notation and text the price was given in."""

    exact: str
    style: str
    text: str


class SelectionOut(msgspec.Struct):
    selection_id: str
    odds: StoredOddsOut


class MarketResponse(msgspec.Struct, omit_defaults=True):
    market_id: str
    event: str
    status: MarketStatus
    price_version: int
    currency: str
    selections: list[SelectionOut]
    limits: MarketLimits
    each_way: EachWayTerms | None = None
    replayed: bool = False


class LegBody(msgspec.Struct, forbid_unknown_fields=True):
    market_id: Id
    selection_id: Id
    odds: OddsBody  # the price the bettor saw (checked against the market: ``odds_change``)


class BetBody(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/sportsbook/bets``. ``bet_id`` is the idempotency key (per partner)."""

    bet_id: Id
    player_id: PlayerId
    currency: Currency
    bet_type: BetType
    stake_minor: AmountMinor
    stake_convention: StakeConventionName
    legs: Annotated[list[LegBody], msgspec.Meta(min_length=1, max_length=32)]
    system: Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=32)]], msgspec.Meta(max_length=32)] | None = None
    each_way: bool = False
    odds_change: OddsChange = "reject"


class LegOut(msgspec.Struct, omit_defaults=True):
    market_id: str
    selection_id: str
    odds: StoredOddsOut  # the accepted odds
    result: str | None = None


class BetResponse(msgspec.Struct, omit_defaults=True):
    """A bet: its terms, state (``open``, ``settled``, ``cashed_out``) and money. On
    placement and cash-out ``cash_minor``/``bonus_minor`` are the player's balance after it."""

    bet_id: str
    player_id: str
    currency: str
    bet_type: str
    state: str
    stake_minor: int
    stake_convention: str
    lines: int
    outlay_minor: int
    potential_return_minor: int
    legs: list[LegOut]
    each_way: bool = False
    return_minor: int | None = None
    cash_minor: int | None = None
    bonus_minor: int | None = None
    replayed: bool = False
    continued_as: str | None = None  # a partial cash-out: the bet carrying the rest of the stake
    cashout_minor: int | None = None  # cashed out: the cash paid (return_minor less the stake carried on)


class ReportRow(msgspec.Struct):
    state: str
    currency: str
    bets: int
    outlay_minor: int
    return_minor: int
    open_potential_minor: int


class MarketReport(msgspec.Struct):
    """``GET /v1/sportsbook/markets/{market_id}/report``: the market's bets by state, and the
    liability counters of the exposure book (minor units of ``currency``)."""

    market_id: str
    currency: str
    status: str
    price_version: int
    by_state: list[ReportRow]
    exposure: dict[str, int]


class CashoutBody(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/sportsbook/bets/{bet_id}/cashout``: settle an open bet now at the price the
    sportsbook quotes, ``amount_minor`` (at most the bet's potential return; for a partial
    cash-out, that share of it). ``stake_minor``: the part of the outlay cashed out (absent:
    all of it); the rest keeps running as a new bet, ``continued_as`` in the answer. Final."""

    amount_minor: Annotated[int, msgspec.Meta(ge=0, le=money.AMOUNT_MINOR_CEILING)]
    stake_minor: Annotated[int, msgspec.Meta(ge=1, le=money.AMOUNT_MINOR_CEILING)] | None = None


class StakeFactorBody(msgspec.Struct, forbid_unknown_fields=True):
    """``PUT /v1/sportsbook/players/{player_id}/stake-factor``: the player's stake factor as
    exact text, ``"1/2"`` or ``"0.5"``, in (0, 1]; ``"1"`` removes it."""

    factor: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class StakeFactorOut(msgspec.Struct):
    player_id: str
    factor: str  # "num/den" in lowest terms; "1/1": none


class LegResultBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    selection_id: Id
    outcome: LegResult
    dead_heat_factor: Ratio | None = None  # "1/2" for a two-way tie
    place_dead_heat_factor: Ratio | None = None
    rule4_deduction: Ratio | None = None  # pence in the pound as a fraction: "1/4" or "0.25"


class ResultBody(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/sportsbook/results``: outcomes of some or all of a market's selections.
    ``result_id`` is the idempotency key (per partner)."""

    result_id: Id
    market_id: Id
    results: Annotated[list[LegResultBody], msgspec.Meta(min_length=1, max_length=10_000)]


class ResultAccepted(msgspec.Struct, omit_defaults=True):
    result_id: str
    market_id: str
    status: str  # "accepted": stored; bets settle in the background
    replayed: bool = False
