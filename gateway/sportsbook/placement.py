"""Placement decisions: a bet request against the current markets, before any money moves.

Pure: no I/O. ``plan`` checks, in this order (docs/SPORTSBOOK.md, "Placement"): every leg's
market and selection exist (``unknown_market``, ``unknown_selection``), the market is open
(``market_suspended``, ``market_closed``) and priced in the bet's currency
(``currency_mismatch``), the odds-change policy (``odds_changed``, with the current odds),
each-way terms (``invalid_each_way``), the bet's shape (the settlement model's codes:
``too_many_legs``, ``duplicate_selection``, ``system_size_too_large``, ...), then the stake
limit of every market involved (``stake_limit``, with ``max_stake_minor``). The payout cap
(the smallest of ``sportsbook.payout_max_minor`` and the markets' ``bet_payout_max_minor``)
is applied to the potential return, never refused: books cap a winning return, they do not
refuse the bet (docs/specs/sportsbook.md, "Risk and exposure").

The plan carries the accepted odds; the atomic check of the market's status and price
version against Redis, and the liability reservation, follow in the exposure book.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import msgspec

from gateway.shards.commands import BetSlip
from gateway.sportsbook.bets import Bet, BetLimits, BetType, Leg, SettlementError, StakeConvention, Staking, staking
from gateway.sportsbook.liability import Limits
from gateway.sportsbook.markets import CLOSED, OPEN, Market, SportsbookRefused, odds_of
from gateway.sportsbook.odds import Odds, to_storage
from gateway.sportsbook.settlement import RoundingMode, potential_return
from gateway.sportsbook.store import BetTerms, StoredBet, StoredLeg
from gateway.sportsbook.wire import BetBody, StoredOddsOut


@dataclass(frozen=True, slots=True)
class PlacementPlan:
    """What placing the bet would do: its settlement model (legs at the accepted odds), its
    staking (lines, outlay), the capped potential return, and the rows to store."""

    bet: Bet
    staking: Staking
    potential_return_minor: int
    accepted: tuple[Odds, ...]
    terms: BetTerms
    legs: tuple[StoredLeg, ...]
    price_versions: dict[str, int]  # market id -> the price version the odds were read at
    revisions: dict[str, int]  # market id -> the stored revision the market (limits too) was read at


def terms_of(body: BetBody) -> BetTerms:
    """The canonical terms of a request (a retried ``bet_id`` must carry equal terms)."""
    legs = []
    for leg in body.legs:
        given = [(s, t) for s, t in (("decimal", leg.odds.decimal), ("fractional", leg.odds.fractional),
                                     ("american", leg.odds.american)) if t is not None]
        style, text = given[0] if len(given) == 1 else ("", "")
        legs.append((leg.market_id, leg.selection_id, style, text))
    return BetTerms(body.player_id, body.currency, body.bet_type.value, body.stake_minor, body.stake_convention,
                    body.each_way, tuple(body.system or ()), body.odds_change, tuple(legs))


def plan(body: BetBody, markets: dict[str, Market], *, limits: BetLimits, payout_max_minor: int,
         rounding: RoundingMode, stake_factor: Fraction = Fraction(1)) -> PlacementPlan:
    """Decide a placement (module docstring). ``stake_factor`` (in (0, 1]) scales the
    markets' per-bet stake and payout limits, rounded down (liability.Limits). Raises
    SportsbookRefused with the code."""
    assert 0 < stake_factor <= 1
    legs: list[Leg] = []
    accepted: list[Odds] = []
    stored: list[StoredLeg] = []
    versions: dict[str, int] = {}
    for leg in body.legs:
        market = markets.get(leg.market_id)
        if market is None:
            raise SportsbookRefused("unknown_market", f"no market {leg.market_id!r}", market_id=leg.market_id)
        current = market.selections.get(leg.selection_id)
        if current is None:
            raise SportsbookRefused("unknown_selection", f"market {leg.market_id!r} has no selection {leg.selection_id!r}",
                                    market_id=leg.market_id, selection_id=leg.selection_id)
        if market.status != OPEN:
            code = "market_closed" if market.status == CLOSED else "market_suspended"
            raise SportsbookRefused(code, f"market {leg.market_id!r} is {market.status}", market_id=leg.market_id)
        if market.currency != body.currency:
            raise SportsbookRefused("currency_mismatch", f"market {leg.market_id!r} is priced in {market.currency}",
                                    market_id=leg.market_id)
        requested = odds_of(leg.odds)
        if not _odds_acceptable(body.odds_change, requested, current):
            raise SportsbookRefused("odds_changed", f"{leg.market_id}/{leg.selection_id} is now {current.text}",
                                    market_id=leg.market_id, selection_id=leg.selection_id,
                                    odds=StoredOddsOut(current.canonical, current.style, current.text),
                                    price_version=market.price_version)
        place_fraction = None
        if body.each_way:
            if market.each_way is None:
                raise SportsbookRefused("invalid_each_way", f"market {leg.market_id!r} offers no each-way terms",
                                        market_id=leg.market_id)
            place_fraction = market.each_way[0]
        legs.append(Leg(market_id=leg.market_id, selection_id=leg.selection_id, odds=current.decimal,
                        place_fraction=place_fraction))
        accepted.append(current)
        stored.append(StoredLeg(leg.market_id, leg.selection_id, to_storage(current),
                                None if place_fraction is None else f"{place_fraction.numerator}/{place_fraction.denominator}"))
        versions[leg.market_id] = market.price_version
    if body.bet_type is not BetType.SYSTEM and body.system:
        raise SportsbookRefused("invalid_system", "system sizes are for bet_type system only")
    try:
        bet = Bet(bet_type=body.bet_type, legs=tuple(legs), stake_minor=body.stake_minor, currency=body.currency,
                  stake_convention=StakeConvention(body.stake_convention), each_way=body.each_way,
                  system_sizes=tuple(body.system or ()), limits=limits)
    except SettlementError as e:
        raise SportsbookRefused(e.code, e.detail) from None
    stake = staking(bet)
    involved = [markets[m] for m in versions]
    scaled = [Limits.of(m.limits, stake_factor) for m in involved]
    stake_caps = [cap for cap in (x.stake_max_minor for x in scaled) if cap is not None]
    if stake_caps and stake.outlay_minor > min(stake_caps):
        raise SportsbookRefused("stake_limit", f"the outlay {stake.outlay_minor} is above the stake limit {min(stake_caps)}",
                                max_stake_minor=min(stake_caps))
    payout_caps = [payout_max_minor] + [cap for cap in (x.payout_max_minor for x in scaled) if cap is not None]
    try:
        potential = potential_return(bet, rounding=rounding, max_payout_minor=min(payout_caps))
    except SettlementError as e:
        raise SportsbookRefused(e.code, e.detail) from None
    return PlacementPlan(bet, stake, potential.return_minor, tuple(accepted), terms_of(body), tuple(stored), versions,
                         {m: markets[m].revision for m in versions})


_enc = msgspec.json.Encoder()


def slip_of(decided: PlacementPlan) -> BetSlip:
    """The bet's record as the shard stores it with the stake debit (``BetSlip``): the
    terms and the legs as accepted, in the JSON ``gateway/sportsbook/store.py`` reads."""
    return _slip(decided.terms, decided.legs, decided.staking.lines, decided.potential_return_minor)


def slip_of_stored(bet: StoredBet) -> BetSlip:
    """``slip_of`` for a bet decided from a stored one (a partial cash-out's continuation)."""
    return _slip(bet.terms, bet.legs, bet.lines, bet.potential_return_minor)


def _slip(terms: BetTerms, legs: tuple[StoredLeg, ...], lines: int, potential_return_minor: int) -> BetSlip:
    return BetSlip(
        bet_type=terms.bet_type, terms_json=_enc.encode(terms).decode(), legs_json=_enc.encode(list(legs)).decode(),
        lines=lines, potential_return_minor=potential_return_minor,
        leg_markets=tuple(leg.market_id for leg in legs), leg_selections=tuple(leg.selection_id for leg in legs),
    )


def _odds_acceptable(policy: str, requested: Odds, current: Odds) -> bool:
    """The odds-change policy (docs/specs/sportsbook.md, "Odds"): ``reject`` any change of
    price (default), ``accept_higher`` the current price if at least the requested one,
    ``accept_any`` the current price."""
    if policy == "accept_any":
        return True
    if policy == "accept_higher":
        return current.decimal >= requested.decimal
    return current.decimal == requested.decimal
