"""Markets as the trading side defines them: selections with exact odds, status, version, limits.

Pure: no I/O. ``market_from_body`` turns a ``PUT /v1/sportsbook/markets/{id}`` body into a
``Market`` (every price parsed exactly, gateway/sportsbook/odds.py); ``replacement`` decides
how a new definition relates to the stored one (docs/SPORTSBOOK.md, "Markets"):

- a lower ``price_version`` than stored is ``stale_price_version`` (409): prices only move
  forward, so a delayed PUT can never bring old odds back;
- the same version with other prices is ``price_version_conflict`` (409);
- the same version and prices with another status, event or limits is an update (a
  suspension does not re-price);
- the very same definition again is a replay;
- the currency of a market never changes (``market_currency_fixed``, 409): its limits and
  its bets' stakes are in that currency.

Every refusal is a ``SportsbookRefused`` with a stable code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import msgspec

from gateway.sportsbook.odds import DECIMAL_ODDS_MAX, Odds, OddsError, StoredOdds, from_storage, parse_odds, to_storage
from gateway.sportsbook.wire import EachWayTerms, MarketBody, MarketLimits, OddsBody

OPEN, SUSPENDED, CLOSED = "open", "suspended", "closed"


class SportsbookRefused(Exception):
    """A sportsbook request refused with ``code`` (a problem code, docs/SPORTSBOOK.md,
    "Refusals"); ``extra`` members go into the problem answer (``max_stake_minor``, the
    current odds, ...)."""

    def __init__(self, code: str, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra


@dataclass(frozen=True, slots=True)
class Market:
    """One market of one partner. ``selections``: selection id -> current ``Odds``, in the
    order given; ``each_way``: (place fraction, places) or None (win only)."""

    partner_id: str
    market_id: str
    event: str
    status: str
    price_version: int
    currency: str
    selections: dict[str, Odds]
    limits: MarketLimits
    each_way: tuple[Fraction, int] | None
    revision: int = 0  # the stored row's change counter (0: not stored yet); the Redis mirror holds it too

    def same_prices(self, other: Market) -> bool:
        """True if both list the same selections at the same exact odds and notation."""
        return list(self.selections.items()) == list(other.selections.items()) and self.each_way == other.each_way


def odds_of(body: OddsBody, decimal_max: Fraction = DECIMAL_ODDS_MAX) -> Odds:
    """The exact price of an ``OddsBody``. Raises SportsbookRefused ``invalid_odds`` unless
    exactly one notation is given and it reads exactly (gateway/sportsbook/odds.py)."""
    given = [(style, text) for style, text in (("decimal", body.decimal), ("fractional", body.fractional),
                                               ("american", body.american)) if text is not None]
    if len(given) != 1:
        raise SportsbookRefused("invalid_odds", "give the odds in exactly one of decimal, fractional, american")
    style, text = given[0]
    try:
        return parse_odds(text, style=style, decimal_max=decimal_max)  # type: ignore[arg-type]
    except OddsError as e:
        raise SportsbookRefused("invalid_odds", e.detail) from None


def place_fraction_of(text: str) -> Fraction:
    """Each-way place fraction "1/4" -> Fraction(1, 4), in (0, 1]. Raises ``invalid_each_way``."""
    num, sep, den = text.partition("/")
    if not (sep and num.isdigit() and den.isdigit() and int(den) > 0 and len(text) <= 12):
        raise SportsbookRefused("invalid_each_way", f"place fraction must be a/b, not {text!r}")
    value = Fraction(int(num), int(den))
    if not 0 < value <= 1:
        raise SportsbookRefused("invalid_each_way", "place fraction must be above 0 and at most 1")
    return value


def market_from_body(partner_id: str, market_id: str, body: MarketBody, selections_max: int) -> Market:
    """Build a Market from its PUT body. Raises SportsbookRefused ``invalid_odds``,
    ``invalid_each_way``, ``duplicate_selection``, ``too_many_selections``, ``unknown_currency``."""
    from gateway import money

    if not money.is_currency(body.currency):
        raise SportsbookRefused("unknown_currency", f"unknown currency {body.currency!r}")
    if len(body.selections) > selections_max:
        raise SportsbookRefused("too_many_selections", f"a market lists at most {selections_max} selections")
    selections: dict[str, Odds] = {}
    for selection in body.selections:
        if selection.selection_id in selections:
            raise SportsbookRefused("duplicate_selection", f"selection {selection.selection_id!r} listed twice")
        selections[selection.selection_id] = odds_of(selection.odds)
    each_way = None
    if body.each_way is not None:
        each_way = (place_fraction_of(body.each_way.fraction), body.each_way.places)
    return Market(partner_id, market_id, body.event, body.status, body.price_version, body.currency,
                  selections, body.limits, each_way)


Replacement = Literal["create", "update", "replay"]


def replacement(stored: Market | None, new: Market) -> Replacement:
    """How ``new`` relates to ``stored`` (module docstring). Raises SportsbookRefused
    ``stale_price_version``, ``price_version_conflict``, ``market_currency_fixed``."""
    if stored is None:
        return "create"
    if new.currency != stored.currency:
        raise SportsbookRefused("market_currency_fixed", f"market {new.market_id} is priced in {stored.currency}")
    if new.price_version < stored.price_version:
        raise SportsbookRefused("stale_price_version",
                                f"price_version {new.price_version} is older than the stored {stored.price_version}",
                                price_version=stored.price_version)
    if new.price_version == stored.price_version and not new.same_prices(stored):
        raise SportsbookRefused("price_version_conflict",
                                f"price_version {new.price_version} is stored with other prices; raise the version",
                                price_version=stored.price_version)
    if dataclasses.replace(new, revision=stored.revision) == stored:
        return "replay"  # the revision is storage's counter, not part of the definition
    return "update"


# ---- storage form (gateway/sportsbook/store.py keeps these as JSON) -------------------------------


class StoredSelection(msgspec.Struct, frozen=True):
    selection_id: str
    odds: StoredOdds


class StoredEachWay(msgspec.Struct, frozen=True):
    fraction: str  # "num/den"
    places: int


def selections_to_storage(market: Market) -> list[StoredSelection]:
    return [StoredSelection(sid, to_storage(odds)) for sid, odds in market.selections.items()]


def each_way_to_storage(market: Market) -> StoredEachWay | None:
    if market.each_way is None:
        return None
    fraction, places = market.each_way
    return StoredEachWay(f"{fraction.numerator}/{fraction.denominator}", places)


def market_from_storage(partner_id: str, market_id: str, event: str, status: str, price_version: int,
                        currency: str, selections: list[StoredSelection], limits: MarketLimits,
                        each_way: StoredEachWay | None, revision: int = 0) -> Market:
    """The Market a stored row describes (odds re-read exactly; OddsError if a row was altered)."""
    terms = None if each_way is None else (place_fraction_of(each_way.fraction), each_way.places)
    return Market(partner_id, market_id, event, status, price_version, currency,
                  {s.selection_id: from_storage(s.odds) for s in selections}, limits, terms, revision)


def each_way_terms_out(market: Market) -> EachWayTerms | None:
    stored = each_way_to_storage(market)
    return None if stored is None else EachWayTerms(stored.fraction, stored.places)
