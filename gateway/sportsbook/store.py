"""PostgreSQL storage of the sportsbook's markets, bet terms and results (migrations 0007, 0009).

I/O only: every rule lives in markets.py, placement.py and resolve.py. The money of a bet is
never here: stakes, payouts and voids are the player's shard's transactions (the bet's
idempotency key is (``<partner>:sportsbook``, ``bet_id``)); these rows hold what the
settlement math needs. Every query names the partner (docs/SECURITY.md, "Tenancy"). A bet's
row is written by the player's shard in the batch that commits its stake (``BetSlip``) and
moved to settled or cashed out by the batch that commits its payout (``BetMark``); this
module reads them, and marks only payouts committed before migration 0009.

Errors: asyncpg's connection and timeout errors propagate as ``SportsbookStoreUnavailable``
(the edge answers 503 ``unavailable``, retryable).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import asyncpg
import msgspec

from gateway.sportsbook.markets import Market, StoredEachWay, StoredSelection, each_way_to_storage, market_from_storage
from gateway.sportsbook.odds import StoredOdds
from gateway.sportsbook.wire import LegResultBody, MarketLimits, ReportRow

_enc = msgspec.json.Encoder()


class SportsbookStoreUnavailable(Exception):
    """PostgreSQL did not answer: the caller answers retryably."""


class BetTerms(msgspec.Struct, frozen=True):
    """What a bet asked for: the idempotency comparison of a retried ``bet_id``."""

    player_id: str
    currency: str
    bet_type: str
    stake_minor: int
    stake_convention: str
    each_way: bool
    system: tuple[int, ...]
    odds_change: str
    legs: tuple[tuple[str, str, str, str], ...]  # (market_id, selection_id, odds style, odds text) as sent


class StoredLeg(msgspec.Struct, frozen=True):
    """A leg as accepted: the odds it was struck at and the place fraction ("num/den") of
    its market's each-way terms at placement (None: not each-way)."""

    market_id: str
    selection_id: str
    odds: StoredOdds
    place_fraction: str | None = None


@dataclass(frozen=True, slots=True)
class StoredBet:
    partner_id: str
    bet_id: str
    terms: BetTerms
    legs: tuple[StoredLeg, ...]
    lines: int
    outlay_minor: int
    potential_return_minor: int
    state: str
    refusal_code: str | None
    return_minor: int | None
    payout_txn: str | None = None
    continued_as: str | None = None  # a partial cash-out's continuation bet
    cashout_minor: int | None = None  # cashed out: the cash paid (return_minor less the stake carried on)


@contextlib.asynccontextmanager
async def _unavailable_as_error() -> AsyncIterator[None]:
    try:
        yield
    except (OSError, TimeoutError, asyncpg.exceptions.InterfaceError,
            asyncpg.exceptions.PostgresConnectionError, asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.QueryCanceledError) as exc:
        raise SportsbookStoreUnavailable(repr(exc)) from exc


class SportsbookStore:
    """The sportsbook tables behind one asyncpg pool (bounded: ``sportsbook.pool_size_max``)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ---- markets ---------------------------------------------------------------------

    async def markets(self, partner_id: str, market_ids: Sequence[str]) -> dict[str, Market]:
        """market id -> Market for those of ``market_ids`` the partner has."""
        async with _unavailable_as_error():
            rows = await self.pool.fetch(
                "SELECT market_id, event, status, price_version, currency, selections, limits, each_way, revision"
                " FROM sportsbook_markets WHERE partner_id = $1 AND market_id = ANY($2::text[])",
                partner_id, list(market_ids))
        return {r["market_id"]: _market(partner_id, r) for r in rows}

    async def put_market(self, market: Market) -> int | None:
        """Insert or replace ``market`` unless a newer price version is stored (a concurrent
        PUT won); returns the row's new revision, or None if it was not written."""
        selections = [StoredSelection(sid, StoredOdds(o.canonical, o.style, o.text))
                      for sid, o in market.selections.items()]
        async with _unavailable_as_error():
            revision: int | None = await self.pool.fetchval(
                "INSERT INTO sportsbook_markets (partner_id, market_id, event, status, price_version, currency,"
                " selections, limits, each_way, revision)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9::jsonb, 1)"
                " ON CONFLICT (partner_id, market_id) DO UPDATE SET event = EXCLUDED.event,"
                " status = EXCLUDED.status, price_version = EXCLUDED.price_version, selections = EXCLUDED.selections,"
                " limits = EXCLUDED.limits, each_way = EXCLUDED.each_way, revision = sportsbook_markets.revision + 1,"
                " updated_at = now() WHERE sportsbook_markets.price_version <= EXCLUDED.price_version"
                " RETURNING revision",
                market.partner_id, market.market_id, market.event, market.status, market.price_version,
                market.currency, _enc.encode(selections).decode(), _enc.encode(market.limits).decode(),
                _enc.encode(each_way_to_storage(market)).decode())
        return revision

    async def market_revision(self, partner_id: str, market_id: str) -> int:
        async with _unavailable_as_error():
            revision: int | None = await self.pool.fetchval(
                "SELECT revision FROM sportsbook_markets WHERE partner_id = $1 AND market_id = $2", partner_id, market_id)
        return revision or 0

    # ---- bets ------------------------------------------------------------------------

    async def bet(self, partner_id: str, bet_id: str) -> StoredBet | None:
        async with _unavailable_as_error():
            row = await self.pool.fetchrow(_BET_SELECT + " WHERE partner_id = $1 AND bet_id = $2", partner_id, bet_id)
        return None if row is None else _bet(row)

    async def stored_bet_ids(self, partner_id: str, bet_ids: Sequence[str]) -> set[str]:
        """Those of ``bet_ids`` the partner has a bet row for (any state)."""
        async with _unavailable_as_error():
            rows = await self.pool.fetch("SELECT bet_id FROM sportsbook_bets WHERE partner_id = $1"
                                         " AND bet_id = ANY($2::text[])", partner_id, list(bet_ids))
        return {r["bet_id"] for r in rows}

    async def settle_bets(self, partner_id: str, settled: Sequence[tuple[str, int, str]], result_id: str) -> None:
        """Mark open bets settled in one statement: (bet id, return, payout transaction id)."""
        if not settled:
            return
        async with _unavailable_as_error():
            await self.pool.execute(
                "UPDATE sportsbook_bets b SET state = 'settled', return_minor = u.r, payout_txn = u.t,"
                " settled_by = $2, settled_at = now()"
                " FROM unnest($3::text[], $4::bigint[], $5::text[]) AS u(id, r, t)"
                " WHERE b.partner_id = $1 AND b.bet_id = u.id AND b.state = 'open'",
                partner_id, result_id, [x[0] for x in settled], [x[1] for x in settled], [x[2] for x in settled])

    async def set_bet_state(self, partner_id: str, bet_id: str, state: str, *, from_states: Sequence[str],
                            refusal_code: str | None = None, return_minor: int | None = None,
                            settled_by: str | None = None, payout_txn: str | None = None) -> bool:
        """Move a bet to ``state`` if it is in one of ``from_states``; True if it moved."""
        async with _unavailable_as_error():
            moved = await self.pool.fetchval(
                "UPDATE sportsbook_bets SET state = $3, refusal_code = $4, return_minor = $5, settled_by = $6,"
                " payout_txn = $8, settled_at = CASE WHEN $3 IN ('settled', 'cashed_out') THEN now() END"
                " WHERE partner_id = $1 AND bet_id = $2 AND state = ANY($7::text[]) RETURNING 1",
                partner_id, bet_id, state, refusal_code, return_minor, settled_by, list(from_states), payout_txn)
        return moved is not None

    async def bets_on_market(self, partner_id: str, market_id: str, after_bet_id: str,
                             limit: int) -> tuple[list[StoredBet], str | None]:
        """Open and settled bets with a leg on the market (a correction may re-settle the
        settled ones), by bet id after ``after_bet_id``: (bets, the last bet id the page
        read, None once the market has no more). One ordered range of the legs index per
        page, so paging through a market costs its size, not its size squared."""
        async with _unavailable_as_error():
            rows = await self.pool.fetch(
                "SELECT b.partner_id, b.bet_id, b.terms, b.legs, b.lines, b.outlay_minor, b.potential_return_minor,"
                " b.state, b.refusal_code, b.return_minor, b.payout_txn, b.continued_as, b.cashout_minor"
                " FROM (SELECT DISTINCT bet_id FROM (SELECT bet_id FROM sportsbook_bet_legs"
                "       WHERE partner_id = $1 AND market_id = $2 AND bet_id > $3 ORDER BY bet_id LIMIT $4) page) l"
                " JOIN sportsbook_bets b ON b.partner_id = $1 AND b.bet_id = l.bet_id"
                " ORDER BY b.bet_id", partner_id, market_id, after_bet_id, limit)
        bets = [_bet(r) for r in rows if r["state"] in ("open", "settled")]
        return bets, (rows[-1]["bet_id"] if rows else None)

    async def open_bets_after(self, after: tuple[str, str], limit: int) -> list[StoredBet]:
        """Open bets of every partner after (partner id, bet id) ``after``, in that order, at most ``limit``."""
        async with _unavailable_as_error():
            rows = await self.pool.fetch(
                _BET_SELECT + " WHERE state = 'open' AND (partner_id, bet_id) > ($1, $2)"
                " ORDER BY partner_id, bet_id LIMIT $3", after[0], after[1], limit)
        return [_bet(r) for r in rows]

    async def all_markets(self) -> list[tuple[str, str, str, int, int]]:
        """(partner id, market id, status, price version, revision) of every market."""
        async with _unavailable_as_error():
            rows = await self.pool.fetch("SELECT partner_id, market_id, status, price_version, revision"
                                         " FROM sportsbook_markets ORDER BY partner_id, market_id")
        return [(r["partner_id"], r["market_id"], r["status"], r["price_version"], r["revision"]) for r in rows]

    # ---- stake factors ----------------------------------------------------------------

    async def stake_factors(self, partner_id: str) -> dict[str, Fraction]:
        """player id -> stake factor, every one the partner has (players without one: 1)."""
        async with _unavailable_as_error():
            rows = await self.pool.fetch("SELECT player_id, factor FROM sportsbook_stake_factors"
                                         " WHERE partner_id = $1", partner_id)
        return {r["player_id"]: Fraction(r["factor"]) for r in rows}

    async def put_stake_factor(self, partner_id: str, player_id: str, factor: Fraction, set_by: str,
                               factors_max: int) -> str:
        """Set (factor < 1) or remove (factor 1) a player's stake factor: "ok", "unknown_player",
        or "too_many" (the partner already holds ``factors_max`` others)."""
        async with _unavailable_as_error(), self.pool.acquire() as conn, conn.transaction():
            known = await conn.fetchval("SELECT 1 FROM players WHERE partner_id = $1 AND player_id = $2",
                                        partner_id, player_id)
            if known is None:
                return "unknown_player"
            if factor != 1:
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 11))", partner_id)
                held = await conn.fetchval("SELECT count(*) FROM sportsbook_stake_factors WHERE partner_id = $1"
                                           " AND player_id <> $2", partner_id, player_id)
                if held >= factors_max:
                    return "too_many"
            if factor == 1:
                await conn.execute("DELETE FROM sportsbook_stake_factors WHERE partner_id = $1 AND player_id = $2",
                                   partner_id, player_id)
            else:
                await conn.execute(
                    "INSERT INTO sportsbook_stake_factors (partner_id, player_id, factor, set_by) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT (partner_id, player_id) DO UPDATE SET factor = EXCLUDED.factor,"
                    " set_by = EXCLUDED.set_by, updated_at = now()",
                    partner_id, player_id, f"{factor.numerator}/{factor.denominator}", set_by)
        return "ok"

    async def stake_factor(self, partner_id: str, player_id: str) -> Fraction | None:
        """The player's stake factor (1 without one); None if the partner has no such player."""
        async with _unavailable_as_error():
            row = await self.pool.fetchrow(
                "SELECT p.player_id, f.factor FROM players p LEFT JOIN sportsbook_stake_factors f"
                " ON f.partner_id = p.partner_id AND f.player_id = p.player_id"
                " WHERE p.partner_id = $1 AND p.player_id = $2", partner_id, player_id)
        if row is None:
            return None
        return Fraction(1) if row["factor"] is None else Fraction(row["factor"])

    # ---- results ---------------------------------------------------------------------

    async def insert_result(self, partner_id: str, result_id: str, market_id: str,
                            results: Sequence[LegResultBody]) -> tuple[str, list[LegResultBody]] | None:
        """Store a result; None if new, else the (market id, results) stored under ``result_id``."""
        async with _unavailable_as_error(), self.pool.acquire() as conn:
            inserted = await conn.fetchval(
                "INSERT INTO sportsbook_results (partner_id, result_id, market_id, results)"
                " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (partner_id, result_id) DO NOTHING RETURNING 1",
                partner_id, result_id, market_id, _enc.encode(list(results)).decode())
            if inserted is not None:
                return None
            row = await conn.fetchrow("SELECT market_id, results FROM sportsbook_results"
                                      " WHERE partner_id = $1 AND result_id = $2", partner_id, result_id)
        return row["market_id"], msgspec.json.decode(row["results"], type=list[LegResultBody])

    async def resulted_selections(self, partner_id: str, market_id: str) -> dict[str, str]:
        """selection id -> the result id that resulted it, for the market."""
        async with _unavailable_as_error():
            rows = await self.pool.fetch(
                "SELECT result_id, results FROM sportsbook_results WHERE partner_id = $1 AND market_id = $2",
                partner_id, market_id)
        out: dict[str, str] = {}
        for r in rows:
            for item in msgspec.json.decode(r["results"], type=list[LegResultBody]):
                out[item.selection_id] = r["result_id"]
        return out

    async def outcomes(self, partner_id: str, market_ids: Sequence[str]) -> dict[tuple[str, str], LegResultBody]:
        """(market id, selection id) -> its outcome, over every stored result of the markets."""
        async with _unavailable_as_error():
            rows = await self.pool.fetch(
                "SELECT market_id, results FROM sportsbook_results WHERE partner_id = $1"
                " AND market_id = ANY($2::text[]) ORDER BY recorded_at, result_id", partner_id, list(market_ids))
        out: dict[tuple[str, str], LegResultBody] = {}
        for r in rows:
            for item in msgspec.json.decode(r["results"], type=list[LegResultBody]):
                out[(r["market_id"], item.selection_id)] = item
        return out

    async def unsettled_results(self, limit: int) -> list[tuple[str, str, str]]:
        """(partner id, result id, market id) of results whose bets are not all settled yet, oldest first."""
        async with _unavailable_as_error():
            rows = await self.pool.fetch(
                "SELECT partner_id, result_id, market_id FROM sportsbook_results WHERE settled_at IS NULL"
                " ORDER BY recorded_at LIMIT $1", limit)
        return [(r["partner_id"], r["result_id"], r["market_id"]) for r in rows]

    async def result_settled(self, partner_id: str, result_id: str) -> None:
        async with _unavailable_as_error():
            await self.pool.execute("UPDATE sportsbook_results SET settled_at = now()"
                                    " WHERE partner_id = $1 AND result_id = $2 AND settled_at IS NULL",
                                    partner_id, result_id)

    @contextlib.asynccontextmanager
    async def result_lock(self, partner_id: str, result_id: str) -> AsyncIterator[bool]:
        """Hold a transaction-level advisory lock on the result while settling it, so two
        edges' drivers do not settle the same result at once; yields False if another has it."""
        async with _unavailable_as_error(), self.pool.acquire() as conn, conn.transaction():
            got = await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 7))",
                                      f"{partner_id}\x1f{result_id}")
            yield bool(got)

    async def market_report(self, partner_id: str, market_id: str) -> list[ReportRow]:
        """Counts and sums of the market's bets by state (stakes, returns, open potential returns)."""
        async with _unavailable_as_error():
            rows = await self.pool.fetch(
                "SELECT b.state, b.currency, count(*) AS bets, sum(b.outlay_minor) AS outlay_minor,"
                " sum(coalesce(b.return_minor, 0)) AS return_minor,"
                " sum(CASE WHEN b.state = 'open' THEN b.potential_return_minor ELSE 0 END) AS open_potential_minor"
                " FROM sportsbook_bets b WHERE b.partner_id = $1 AND b.bet_id IN"
                " (SELECT bet_id FROM sportsbook_bet_legs WHERE partner_id = $1 AND market_id = $2)"
                " GROUP BY b.state, b.currency ORDER BY b.state", partner_id, market_id)
        return [ReportRow(r["state"], r["currency"], r["bets"], int(r["outlay_minor"]), int(r["return_minor"]),
                          int(r["open_potential_minor"])) for r in rows]


_BET_SELECT = ("SELECT partner_id, bet_id, terms, legs, lines, outlay_minor, potential_return_minor, state,"
               " refusal_code, return_minor, payout_txn, continued_as, cashout_minor FROM sportsbook_bets")


def _market(partner_id: str, r: asyncpg.Record) -> Market:
    each_way = None if r["each_way"] in (None, "null") else msgspec.json.decode(r["each_way"], type=StoredEachWay)
    return market_from_storage(
        partner_id, r["market_id"], r["event"], r["status"], r["price_version"], r["currency"],
        msgspec.json.decode(r["selections"], type=list[StoredSelection]),
        msgspec.json.decode(r["limits"], type=MarketLimits), each_way, r["revision"])


def _bet(r: asyncpg.Record) -> StoredBet:
    return StoredBet(
        partner_id=r["partner_id"], bet_id=r["bet_id"], terms=msgspec.json.decode(r["terms"], type=BetTerms),
        legs=tuple(msgspec.json.decode(r["legs"], type=list[StoredLeg])), lines=r["lines"],
        outlay_minor=r["outlay_minor"], potential_return_minor=r["potential_return_minor"], state=r["state"],
        refusal_code=r["refusal_code"], return_minor=r["return_minor"], payout_txn=r["payout_txn"],
        continued_as=r["continued_as"], cashout_minor=r["cashout_minor"])
