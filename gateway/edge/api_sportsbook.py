"""Sportsbook routes of the generic API (docs/SPORTSBOOK.md, "API").

    PUT  /v1/sportsbook/markets/{market_id}         trading key: define or replace a market
    GET  /v1/sportsbook/markets/{market_id}         the market as stored
    GET  /v1/sportsbook/markets/{market_id}/report  trading key: bets, stakes, payouts, open liability
    POST /v1/sportsbook/bets                        wallet key: place a bet (bet_id: idempotency key)
    GET  /v1/sportsbook/bets/{bet_id}               wallet key: a bet, with its legs' results so far
    POST /v1/sportsbook/bets/{bet_id}/cashout       wallet key: settle an open bet now at a quoted price
    POST /v1/sportsbook/results                     trading key: results of a market's selections (202)
    PUT  /v1/sportsbook/players/{player_id}/stake-factor  trading key: a player's stake factor
    GET  /v1/sportsbook/players/{player_id}/stake-factor  trading key: the same, as stored

Wire decoding, authentication, roles and answers only. The decisions are in
gateway/sportsbook/ (markets.py, placement.py, resolve.py, liability.py), the storage in
gateway/sportsbook/store.py, the liability counters in gateway/sportsbook/exposure.py, the
money in the player's shard: a stake is a ``Debit`` under the idempotency key
(``<partner>:sportsbook``, ``bet_id``), a payout a ``Credit`` naming it
(gateway/sportsbook/driver.py). Handlers are wrapped by ``Api._wrap`` (rate limit, media
type, body limit, refusal audit, ``problems.ROUTES``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway import metrics
from gateway.edge.api_v1 import PLAYER_ID_RE, peek_player, refusal_code
from gateway.edge.context import EdgeContext
from gateway.edge.problems import ProblemResponse, problem, result_problem
from gateway.logs import get_logger
from gateway.shards.commands import Atomic, BetMark, Code, Command, Credit, Debit, Result, idempotency_scope
from gateway.sportsbook import liability
from gateway.sportsbook.bets import BetLimits
from gateway.sportsbook.cashout import plan_cashout
from gateway.sportsbook.driver import SPORTSBOOK_GAME_ID, SPORTSBOOK_SOURCE, SettlementDriver, payout_transaction_id
from gateway.sportsbook.exposure import ExposureBook, ExposureUnavailable, Refused, Reserved
from gateway.sportsbook.market_cache import MarketCache, StakeFactorCache
from gateway.sportsbook.markets import (
    Market,
    SportsbookRefused,
    each_way_terms_out,
    market_from_body,
    replacement,
)
from gateway.sportsbook.placement import PlacementPlan, plan, slip_of, slip_of_stored, terms_of
from gateway.sportsbook.resolve import check_results, model_of, with_outcomes
from gateway.sportsbook.settlement import RoundingMode, potential_return
from gateway.sportsbook.store import SportsbookStore, SportsbookStoreUnavailable, StoredBet
from gateway.sportsbook.sweeper import ReservationSweeper
from gateway.sportsbook.wire import (
    BetBody,
    BetResponse,
    CashoutBody,
    LegOut,
    MarketBody,
    MarketReport,
    MarketResponse,
    ResultAccepted,
    ResultBody,
    SelectionOut,
    StakeFactorBody,
    StakeFactorOut,
    StoredOddsOut,
)

log = get_logger("gateway.sportsbook")

#: Refusals of the Redis check that a stale market cache can cause: re-read and decide again.
_STALE_CACHE_CODES = frozenset({"odds_changed", "market_suspended", "market_closed", "market_changed"})

_ID_CHARS_MAX = 128

Handler = Callable[[Request, str, bytes], Awaitable[Response]]


class SportsbookApi:
    """Handlers of the sportsbook routes. ``decode(kind, raw)`` is the generic API's decoder
    (invalid_request on a malformed body); ``submit`` sends a command to the player's shard."""

    def __init__(self, ctx: EdgeContext, store: SportsbookStore, exposure: ExposureBook,
                 driver: SettlementDriver, decode: Callable[[type, bytes], msgspec.Struct],
                 sweeper: ReservationSweeper | None = None) -> None:
        s = ctx.settings.sportsbook
        self.ctx = ctx
        self.settings = s
        self.store = store
        self.exposure = exposure
        self.submit = ctx.submit
        self.driver = driver
        self.sweeper = sweeper
        self.decode = decode
        self.markets = MarketCache(store.markets, s.market_cache_ttl_ms, s.market_cache_size_max)
        self.factors = StakeFactorCache(store.stake_factors, s.stake_factor_cache_ttl_ms)
        self.limits = BetLimits(accumulator_legs_max=s.accumulator_legs_max, system_legs_max=s.system_legs_max)
        self.rounding: RoundingMode = s.rounding  # type: ignore[assignment]

    def handlers(self) -> dict[str, tuple[str, Handler]]:
        """contract key -> (route label, handler), as ``Api.routes`` takes them."""
        return {
            "PUT /v1/sportsbook/markets/{market_id}": ("PUT /v1/sportsbook/markets", self.put_market),
            "GET /v1/sportsbook/markets/{market_id}": ("GET /v1/sportsbook/markets", self.get_market),
            "GET /v1/sportsbook/markets/{market_id}/report": ("GET /v1/sportsbook/markets/report", self.market_report),
            "POST /v1/sportsbook/bets": ("POST /v1/sportsbook/bets", self.place_bet),
            "GET /v1/sportsbook/bets/{bet_id}": ("GET /v1/sportsbook/bets", self.get_bet),
            "POST /v1/sportsbook/bets/{bet_id}/cashout": ("POST /v1/sportsbook/bets/cashout", self.cash_out),
            "POST /v1/sportsbook/results": ("POST /v1/sportsbook/results", self.post_result),
            "PUT /v1/sportsbook/players/{player_id}/stake-factor": ("PUT /v1/sportsbook/players/stake-factor",
                                                                    self.put_stake_factor),
            "GET /v1/sportsbook/players/{player_id}/stake-factor": ("GET /v1/sportsbook/players/stake-factor",
                                                                    self.get_stake_factor),
        }

    async def guarded(self, handler: Handler, request: Request, partner: str, raw: bytes) -> Response:
        """Map the sportsbook's refusals and unavailable backends to problem answers; a
        refused write is audited like the generic API's refusals (docs/DESIGN.md section 4)."""
        try:
            return await handler(request, partner, raw)
        except SportsbookRefused as refused:
            if handler == self.place_bet:
                metrics.sportsbook_bets_refused_total.labels(refused.code).inc()
            if request.method != "GET":
                await self.ctx.record_refusal(
                    scope=idempotency_scope(partner, SPORTSBOOK_SOURCE), partner_id=partner,
                    code=refusal_code(refused.code), detail=f"{refused.code}: {refused.detail}",
                    origin=self.ctx.origin(f"{request.method} {request.url.path}"[:128],
                                           request.headers.get("x-request-id")),
                    request={"body": raw[:2048].decode("utf-8", "replace")},
                    player_id=peek_player(raw))
            return problem(refused.code, refused.detail, **_extra(refused.extra))
        except SportsbookStoreUnavailable:
            return problem("unavailable", "the sportsbook store is unreachable", retry_after_s=1)
        except ExposureUnavailable as exc:
            log.warning("exposure_unavailable", route=request.url.path, error=str(exc)[:200])
            metrics.redis_unavailable_total.inc()
            return problem("exposure_unavailable", "liability cannot be checked now (Redis)", retry_after_s=1)

    # ---- markets ---------------------------------------------------------------------

    async def put_market(self, request: Request, partner: str, raw: bytes) -> Response:
        market_id = _path_id(request, "market_id")
        body = self.decode(MarketBody, raw)
        assert isinstance(body, MarketBody)
        market = market_from_body(partner, market_id, body, self.settings.selections_per_market_max)
        stored = (await self.store.markets(partner, [market_id])).get(market_id)
        kind = replacement(stored, market)
        if kind != "replay":
            revision = await self.store.put_market(market)
            if revision is None:  # a newer version was stored meanwhile
                raise SportsbookRefused("stale_price_version", "a newer price version was stored meanwhile")
        else:
            revision = await self.store.market_revision(partner, market_id)
        # The mirror the atomic placement check reads (status, price version); the answer
        # waits for it, so a suspension acknowledged here is seen by every later placement.
        await self.exposure.mirror_market(partner, market_id, market.status, market.price_version, revision)
        self.markets.forget(partner, [market_id])
        return _json(_market_out(market, replayed=kind == "replay"), status=201 if kind == "create" else 200)

    async def get_market(self, request: Request, partner: str, raw: bytes) -> Response:
        market_id = _path_id(request, "market_id")
        market = (await self.store.markets(partner, [market_id])).get(market_id)
        if market is None:
            raise SportsbookRefused("unknown_market", f"no market {market_id!r}")
        return _json(_market_out(market))

    async def market_report(self, request: Request, partner: str, raw: bytes) -> Response:
        market_id = _path_id(request, "market_id")
        market = (await self.store.markets(partner, [market_id])).get(market_id)
        if market is None:
            raise SportsbookRefused("unknown_market", f"no market {market_id!r}")
        rows = await self.store.market_report(partner, market_id)
        snapshot = await self.exposure.snapshot(partner, market_id)
        return _json(MarketReport(market_id, market.currency, market.status, market.price_version, rows, snapshot))

    # ---- bets ------------------------------------------------------------------------

    async def place_bet(self, request: Request, partner: str, raw: bytes) -> Response:
        """Place a bet (docs/SPORTSBOOK.md, "Placement"): decide against the cached markets,
        check and reserve its liability in Redis, then debit the outlay in the player's
        shard with the bet's record (``BetSlip``) in the same commit. Nothing is written
        to PostgreSQL before the shard's batch: a refused bet leaves only its audit record."""
        body = self.decode(BetBody, raw)
        assert isinstance(body, BetBody)
        terms = terms_of(body)
        market_ids = sorted({leg.market_id for leg in body.legs})
        stake_factor = await self.factors.factor(partner, body.player_id)
        for attempt in range(2):  # a second time only after the mirror said the cache was stale
            markets = await self.markets.get(partner, market_ids)
            try:
                decided = plan(body, markets, limits=self.limits, payout_max_minor=self.settings.payout_max_minor,
                               rounding=self.rounding, stake_factor=stake_factor)
            except SportsbookRefused:
                existing = await self.store.bet(partner, body.bet_id)
                if existing is not None:
                    return await self._replay(existing, terms)  # a retry of a bet placed before
                raise
            response = await self._reserve_and_debit(partner, body, decided, markets, stake_factor,
                                                     final=attempt == 1)
            if response is not None:
                return response
            self.markets.forget(partner, market_ids)
        raise AssertionError("unreachable: the second attempt always answers")

    async def _reserve_and_debit(self, partner: str, body: BetBody, decided: PlacementPlan,
                                 markets: dict[str, Market], stake_factor: Fraction, *, final: bool) -> Response | None:
        """Reserve, debit, answer; None if the mirror refused on market state and this was
        not the ``final`` attempt (the caller re-reads the markets and decides again).

        A bet id already reserved (a retry, or a concurrent duplicate) reserves nothing
        more; its debit then replays, and the answer is the stored bet. A reservation this
        call made is cancelled if the debit is refused, so a retry is checked afresh."""
        contributions = liability.contributions(decided.bet, decided.potential_return_minor)
        limits = {m: liability.Limits.of(markets[m].limits, stake_factor) for m in decided.price_versions}
        reserved = await self.exposure.reserve(partner, body.bet_id, contributions, limits, decided.price_versions,
                                               player_id=body.player_id, revisions=decided.revisions)
        if isinstance(reserved, Refused):
            if not final and reserved.code in _STALE_CACHE_CODES:
                return None
            metrics.sportsbook_bets_refused_total.labels(reserved.code).inc()
            largest = None
            if reserved.code.endswith("_liability_limit"):
                largest = liability.max_outlay(reserved, decided.staking, decided.potential_return_minor)
            return problem(reserved.code, reserved.detail, market_id=reserved.market_id,
                           selection_id=reserved.selection_id, max_stake_minor=largest)
        result: Result = await self.submit(Debit(
            scope=idempotency_scope(partner, SPORTSBOOK_SOURCE), transaction_id=body.bet_id, partner_id=partner,
            player_id=body.player_id, currency=body.currency, amount_minor=decided.staking.outlay_minor,
            round_id=body.bet_id, game_id=SPORTSBOOK_GAME_ID, slip=slip_of(decided),
        ))
        if result.code is not Code.OK:
            if isinstance(reserved, Reserved):
                await self.exposure.cancel(partner, body.bet_id)
            metrics.sportsbook_bets_refused_total.labels(result.code.value).inc()
            return result_problem(result)
        if result.replayed:
            existing = await self.store.bet(partner, body.bet_id)
            if existing is None:  # the key holds a debit that is not a bet of ours
                raise SportsbookRefused("idempotency_conflict", f"bet id {body.bet_id!r} was used for another debit")
            return await self._replay(existing, decided.terms)
        metrics.sportsbook_bets_placed_total.inc()
        placed = StoredBet(partner, body.bet_id, decided.terms, decided.legs, decided.staking.lines,
                           decided.staking.outlay_minor, decided.potential_return_minor, "open", None, None)
        return _json(_bet_out(placed, decided.potential_return_minor, result), status=201)

    async def _replay(self, existing: StoredBet, terms) -> Response:
        """A bet id seen before: the same terms answer the stored outcome, others conflict."""
        if existing.terms != terms:
            raise SportsbookRefused("idempotency_conflict", f"bet {existing.bet_id!r} was placed with other terms")
        if existing.state == "refused":
            return problem(existing.refusal_code or "invalid_request", "this bet was refused", replayed=True)
        return _json(_bet_out(existing, existing.potential_return_minor, None, replayed=True))

    async def get_bet(self, request: Request, partner: str, raw: bytes) -> Response:
        bet_id = _path_id(request, "bet_id")
        stored = await self.store.bet(partner, bet_id)
        if stored is None:
            raise SportsbookRefused("unknown_bet", f"no bet {bet_id!r}")
        outcomes = await self.store.outcomes(partner, sorted({leg.market_id for leg in stored.legs}))
        potential = stored.potential_return_minor
        results: list[str | None] = [None] * len(stored.legs)
        if stored.state == "open":
            bet = with_outcomes(model_of(stored), outcomes)
            results = [None if leg.result is None else leg.result.value for leg in bet.legs]
            potential = potential_return(bet, rounding=self.rounding,
                                         max_payout_minor=max(stored.potential_return_minor, 1)).return_minor
        else:
            results = [None if (o := outcomes.get((leg.market_id, leg.selection_id))) is None else o.outcome.value
                       for leg in stored.legs]
        return _json(_bet_out(stored, potential, None, results=results))

    async def cash_out(self, request: Request, partner: str, raw: bytes) -> Response:
        """Cash-out at the quoted ``amount_minor`` (gateway/sportsbook/cashout.py): in full,
        the amount is paid as the bet's payout (the key a settlement would use, so the two
        can never both pay) and the bet becomes ``cashed_out``, final; in part
        (``stake_minor`` below the outlay), the payout and the continuation's stake debit are
        one atomic unit in the player's shard. The bet's new state commits with the money;
        its liability is released (a continuation's is reserved first, unchecked: it is a
        share of what was already reserved)."""
        bet_id = _path_id(request, "bet_id")
        body = self.decode(CashoutBody, raw)
        assert isinstance(body, CashoutBody)
        stored = await self.store.bet(partner, bet_id)
        if stored is None:
            raise SportsbookRefused("unknown_bet", f"no bet {bet_id!r}")
        paid_before = stored.cashout_minor if stored.cashout_minor is not None else stored.return_minor
        if stored.state == "cashed_out" and paid_before == body.amount_minor:
            return _json(_bet_out(stored, stored.potential_return_minor, None, replayed=True))
        if stored.state != "open":
            raise SportsbookRefused("bet_not_open", f"bet {bet_id!r} is {stored.state}")
        decided = plan_cashout(stored, body.amount_minor, body.stake_minor, partial_allowed=self.settings.cashout_partial,
                               payout_max_minor=self.settings.payout_max_minor, rounding=self.rounding)
        terms = stored.terms
        scope = idempotency_scope(partner, SPORTSBOOK_SOURCE)
        payout = payout_transaction_id(bet_id)
        cont = decided.continuation
        credit = Credit(
            scope=scope, transaction_id=payout, partner_id=partner, player_id=terms.player_id, currency=terms.currency,
            amount_minor=decided.payout_minor, round_id=bet_id, game_id=SPORTSBOOK_GAME_ID, bet_transaction_id=bet_id,
            credit_type="win",
            mark=BetMark(bet_id, "cashed_out", decided.payout_minor, "cashout", payout, from_states=("open",),
                         continued_as=None if cont is None else cont.bet_id, cash_minor=decided.cash_minor),
        )
        command: Command = credit
        if cont is not None:
            assert decided.continuation_model is not None
            await self.exposure.restore(partner, cont.bet_id, liability.contributions(
                decided.continuation_model, cont.potential_return_minor))
            command = Atomic(scope=scope, partner_id=partner, player_id=terms.player_id, actions=(credit, Debit(
                scope=scope, transaction_id=cont.bet_id, partner_id=partner, player_id=terms.player_id,
                currency=terms.currency, amount_minor=cont.outlay_minor, round_id=cont.bet_id,
                game_id=SPORTSBOOK_GAME_ID, slip=slip_of_stored(cont),
            )))
        result = await self.submit(command)
        if result.code is not Code.OK:
            if cont is not None and not result.replayed:
                await self.exposure.cancel(partner, cont.bet_id)
            if result.code in (Code.IDEMPOTENCY_CONFLICT, Code.TRANSACTION_SETTLED, Code.TRANSACTION_ROLLED_BACK):
                raise SportsbookRefused("bet_not_open", f"bet {bet_id!r} was settled meanwhile")
            return result_problem(result)
        try:
            await self.exposure.release(partner, bet_id)
        except ExposureUnavailable:  # the money moved: the counters are repaired by a rebuild
            log.warning("cashout_release_failed", partner_id=partner, bet_id=bet_id)
        if result.replayed and (again := await self.store.bet(partner, bet_id)) is not None and again.state == "open":
            # the payout committed before migration 0009 without its mark
            await self.store.set_bet_state(partner, bet_id, "cashed_out", from_states=("open",),
                                           return_minor=decided.payout_minor, settled_by="cashout", payout_txn=payout)
        metrics.sportsbook_cashouts_total.labels("partial" if cont is not None else "full").inc()
        stored = await self.store.bet(partner, bet_id)
        assert stored is not None
        return _json(_bet_out(stored, stored.potential_return_minor, result))

    # ---- stake factors ---------------------------------------------------------------

    async def put_stake_factor(self, request: Request, partner: str, raw: bytes) -> Response:
        """Set a player's stake factor (docs/SPORTSBOOK.md, "Stake factor"); ``"1"`` removes it."""
        player_id = _path_player(request)
        body = self.decode(StakeFactorBody, raw)
        assert isinstance(body, StakeFactorBody)
        try:
            factor = liability.stake_factor_of(body.factor)
        except liability.LiabilityError as e:
            raise SportsbookRefused("invalid_stake_factor", e.detail) from None
        done = await self.store.put_stake_factor(partner, player_id, factor, getattr(request.state, "key_id", "?"),
                                                 self.settings.stake_factors_max)
        if done == "unknown_player":
            raise SportsbookRefused("unknown_player", f"no player {player_id!r}")
        if done == "too_many":
            raise SportsbookRefused("limit_reached", f"the partner holds {self.settings.stake_factors_max} stake factors")
        self.factors.forget(partner)
        log.info("stake_factor_set", partner_id=partner, player_id=player_id, factor=str(factor),
                 key_id=getattr(request.state, "key_id", "?"))
        return _json(StakeFactorOut(player_id, f"{factor.numerator}/{factor.denominator}"))

    async def get_stake_factor(self, request: Request, partner: str, raw: bytes) -> Response:
        player_id = _path_player(request)
        factor = await self.store.stake_factor(partner, player_id)
        if factor is None:
            raise SportsbookRefused("unknown_player", f"no player {player_id!r}")
        return _json(StakeFactorOut(player_id, f"{factor.numerator}/{factor.denominator}"))

    # ---- results ---------------------------------------------------------------------

    async def post_result(self, request: Request, partner: str, raw: bytes) -> Response:
        body = self.decode(ResultBody, raw)
        assert isinstance(body, ResultBody)
        market = (await self.store.markets(partner, [body.market_id])).get(body.market_id)
        if market is None:
            raise SportsbookRefused("unknown_market", f"no market {body.market_id!r}")
        check_results(market, body.results)
        stored = await self.store.insert_result(partner, body.result_id, body.market_id, body.results)
        if stored is not None:
            if stored != (body.market_id, list(body.results)):
                raise SportsbookRefused("idempotency_conflict", f"result {body.result_id!r} was stored with other content")
            return _json(ResultAccepted(body.result_id, body.market_id, "accepted", replayed=True), status=202)
        self.driver.wake()
        return _json(ResultAccepted(body.result_id, body.market_id, "accepted"), status=202)


def _path_player(request: Request) -> str:
    player_id = request.path_params["player_id"]
    if not PLAYER_ID_RE.fullmatch(player_id):
        raise SportsbookRefused("invalid_request", "malformed player id")
    return player_id


def _path_id(request: Request, name: str) -> str:
    value = request.path_params[name]
    if not (1 <= len(value) <= _ID_CHARS_MAX and all("\x21" <= c <= "\x7e" for c in value)):
        raise SportsbookRefused("invalid_request", f"malformed {name}")
    return value


def _extra(extra: dict[str, object]) -> dict[str, Any]:
    return {k: (msgspec.to_builtins(v) if isinstance(v, msgspec.Struct) else v) for k, v in extra.items()}


def _json(body: msgspec.Struct, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def _market_out(market: Market, replayed: bool = False) -> MarketResponse:
    return MarketResponse(
        market_id=market.market_id, event=market.event, status=market.status,  # type: ignore[arg-type]
        price_version=market.price_version, currency=market.currency,
        selections=[SelectionOut(sid, StoredOddsOut(o.canonical, o.style, o.text)) for sid, o in market.selections.items()],
        limits=market.limits, each_way=each_way_terms_out(market), replayed=replayed,
    )


def _bet_out(stored: StoredBet, potential_return_minor: int, placed: Result | None, *, replayed: bool = False,
             results: list[str | None] | None = None) -> BetResponse:
    t = stored.terms
    outcomes = results or [None] * len(stored.legs)
    return BetResponse(
        bet_id=stored.bet_id, player_id=t.player_id, currency=t.currency, bet_type=t.bet_type, state=stored.state,
        stake_minor=t.stake_minor, stake_convention=t.stake_convention, lines=stored.lines,
        outlay_minor=stored.outlay_minor, potential_return_minor=potential_return_minor,
        legs=[LegOut(leg.market_id, leg.selection_id, StoredOddsOut(leg.odds.decimal, leg.odds.style, leg.odds.text),
                     outcome) for leg, outcome in zip(stored.legs, outcomes, strict=True)],
        each_way=t.each_way, return_minor=stored.return_minor,
        cash_minor=None if placed is None else placed.cash_minor,
        bonus_minor=None if placed is None else placed.bonus_minor,
        replayed=replayed or (placed is not None and placed.replayed),
        continued_as=stored.continued_as,
        cashout_minor=(stored.cashout_minor if stored.cashout_minor is not None else stored.return_minor)
        if stored.state == "cashed_out" else None,
    )


__all__ = ["ProblemResponse", "SportsbookApi"]
