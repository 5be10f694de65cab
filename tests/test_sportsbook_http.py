"""Sportsbook over HTTP against the running test gateway (real PostgreSQL and Redis).

Markets from the trading key, placement with the odds-change policies and the liability
limits, settlement by the background driver, and every worked example of
docs/specs/sportsbook.md exact through the API (amounts in GBP pence). The ``gateway``
fixture checks the ledger's invariants after each test.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import RIVAL_AUTH, new_id, new_player
from tests.helpers import balance

TRADING = {"Authorization": "Bearer demo-trading-key-change-me"}
RIVAL_TRADING = {"Authorization": "Bearer rival-trading-key-change-me"}
SETTLE_WAIT_S = 15.0


def odds(text: str) -> dict[str, str]:
    if text.startswith(("+", "-")):
        return {"american": text}
    return {"fractional": text} if "/" in text else {"decimal": text}


async def put_market(client: httpx.AsyncClient, prices: dict[str, str], *, currency: str = "GBP", version: int = 1,
                     status: str = "open", limits: dict | None = None, each_way: dict | None = None,
                     market_id: str | None = None, headers: dict | None = None) -> str:
    market_id = market_id or new_id("m")
    body: dict = {"event": "Home v Away", "status": status, "price_version": version, "currency": currency,
                  "selections": [{"selection_id": s, "odds": odds(p)} for s, p in prices.items()],
                  "limits": limits or {}}
    if each_way is not None:
        body["each_way"] = each_way
    r = await client.put(f"/v1/sportsbook/markets/{market_id}", json=body, headers=headers or TRADING)
    assert r.status_code in (200, 201), r.text
    return market_id


async def place(client: httpx.AsyncClient, player: str, legs: list[tuple[str, str, str]], *, stake_minor: int,
                bet_type: str = "single", convention: str = "per_line", bet_id: str | None = None,
                each_way: bool = False, system: list[int] | None = None, odds_change: str = "reject",
                currency: str = "GBP") -> httpx.Response:
    body: dict = {"bet_id": bet_id or new_id("bet"), "player_id": player, "currency": currency, "bet_type": bet_type,
                  "stake_minor": stake_minor, "stake_convention": convention, "each_way": each_way,
                  "odds_change": odds_change,
                  "legs": [{"market_id": m, "selection_id": s, "odds": odds(p)} for m, s, p in legs]}
    if system is not None:
        body["system"] = system
    return await client.post("/v1/sportsbook/bets", json=body)


async def result(client: httpx.AsyncClient, market_id: str, outcomes: list[dict], result_id: str | None = None) -> None:
    r = await client.post("/v1/sportsbook/results", headers=TRADING, json={
        "result_id": result_id or new_id("res"), "market_id": market_id, "results": outcomes})
    assert r.status_code == 202, r.text


async def settled(client: httpx.AsyncClient, bet_id: str) -> dict:
    deadline = asyncio.get_running_loop().time() + SETTLE_WAIT_S
    while True:
        r = await client.get(f"/v1/sportsbook/bets/{bet_id}")
        assert r.status_code == 200, r.text
        if r.json()["state"] == "settled":
            return r.json()
        assert asyncio.get_running_loop().time() < deadline, r.json()
        await asyncio.sleep(0.1)


# ---- markets ---------------------------------------------------------------------------


async def test_markets_need_the_trading_key(client, gateway):
    market_id = new_id("m")
    body = {"event": "A v B", "status": "open", "price_version": 1, "currency": "GBP",
            "selections": [{"selection_id": "home", "odds": {"decimal": "2.50"}}]}
    r = await client.put(f"/v1/sportsbook/markets/{market_id}", json=body)  # the wallet key
    assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    r = await client.put(f"/v1/sportsbook/markets/{market_id}", json=body, headers=TRADING)
    assert r.status_code == 201, r.text
    assert r.json()["selections"][0]["odds"] == {"exact": "5/2", "style": "decimal", "text": "2.50"}
    r = await client.put(f"/v1/sportsbook/markets/{market_id}", json=body, headers=TRADING)
    assert r.status_code == 200 and r.json()["replayed"] is True, r.text
    # the trading key cannot place bets or move money
    r = await client.post("/v1/wallet/deposit", headers=TRADING, json={
        "transaction_id": new_id("d"), "player_id": "x", "currency": "GBP", "amount_minor": 1})
    assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    # another partner's trading key sees nothing of it
    r = await client.get(f"/v1/sportsbook/markets/{market_id}", headers=RIVAL_TRADING)
    assert r.status_code == 404 and r.json()["code"] == "unknown_market", r.text


async def test_prices_only_move_forward(client, gateway):
    market_id = await put_market(client, {"home": "2.50"}, version=3)
    body = {"event": "A v B", "status": "open", "price_version": 2, "currency": "GBP",
            "selections": [{"selection_id": "home", "odds": {"decimal": "2.40"}}]}
    r = await client.put(f"/v1/sportsbook/markets/{market_id}", json=body, headers=TRADING)
    assert r.status_code == 409 and r.json()["code"] == "stale_price_version", r.text
    body["price_version"] = 3
    r = await client.put(f"/v1/sportsbook/markets/{market_id}", json=body, headers=TRADING)
    assert r.status_code == 409 and r.json()["code"] == "price_version_conflict", r.text
    body["currency"] = "EUR"
    body["price_version"] = 4
    r = await client.put(f"/v1/sportsbook/markets/{market_id}", json=body, headers=TRADING)
    assert r.status_code == 409 and r.json()["code"] == "market_currency_fixed", r.text
    body["selections"][0]["odds"] = {"decimal": "2.40", "fractional": "7/5"}
    r = await client.put(f"/v1/sportsbook/markets/{market_id}", json=body, headers=TRADING)
    assert r.status_code == 400 and r.json()["code"] == "invalid_odds", r.text


# ---- placement -------------------------------------------------------------------------


async def test_single_bet_debits_then_settles_exactly(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=10_000)
    market_id = await put_market(client, {"home": "2.50", "away": "+150", "draw": "11/5"})
    r = await place(client, player, [(market_id, "home", "2.50")], stake_minor=1_000)
    assert r.status_code == 201, r.text
    bet = r.json()
    assert (bet["state"], bet["outlay_minor"], bet["potential_return_minor"], bet["cash_minor"]) == ("open", 1_000, 2_500, 9_000)
    assert await balance(client, player, "GBP") == (9_000, 0)
    await result(client, market_id, [{"selection_id": "home", "outcome": "won"},
                                     {"selection_id": "away", "outcome": "lost"}])
    done = await settled(client, bet["bet_id"])
    assert done["return_minor"] == 2_500 and done["legs"][0]["result"] == "won"
    assert await balance(client, player, "GBP") == (11_500, 0)


async def test_a_lost_bet_settles_at_zero(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=5_000)
    market_id = await put_market(client, {"home": "2.00", "away": "2.00"})
    r = await place(client, player, [(market_id, "home", "2.00")], stake_minor=1_000)
    assert r.status_code == 201, r.text
    await result(client, market_id, [{"selection_id": "home", "outcome": "lost"}])
    assert (await settled(client, r.json()["bet_id"]))["return_minor"] == 0
    assert await balance(client, player, "GBP") == (4_000, 0)


async def test_a_retried_bet_is_debited_once(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=5_000)
    market_id = await put_market(client, {"home": "3.00"})
    bet_id = new_id("bet")
    first = await place(client, player, [(market_id, "home", "3.00")], stake_minor=500, bet_id=bet_id)
    again = await place(client, player, [(market_id, "home", "3.00")], stake_minor=500, bet_id=bet_id)
    assert first.status_code == 201 and again.status_code == 200 and again.json()["replayed"] is True, again.text
    other = await place(client, player, [(market_id, "home", "3.00")], stake_minor=600, bet_id=bet_id)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict", other.text
    assert await balance(client, player, "GBP") == (4_500, 0)


async def test_odds_change_policies(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=10_000)
    market_id = await put_market(client, {"home": "2.50"})
    r = await place(client, player, [(market_id, "home", "2.40")], stake_minor=100)
    assert r.status_code == 409 and r.json()["code"] == "odds_changed", r.text
    assert r.json()["odds"]["exact"] == "5/2"
    r = await place(client, player, [(market_id, "home", "2.40")], stake_minor=100, odds_change="accept_higher")
    assert r.status_code == 201 and r.json()["legs"][0]["odds"]["exact"] == "5/2", r.text
    await put_market(client, {"home": "2.20"}, version=2, market_id=market_id)
    r = await place(client, player, [(market_id, "home", "2.50")], stake_minor=100, odds_change="accept_higher")
    assert r.status_code == 409 and r.json()["code"] == "odds_changed", r.text
    r = await place(client, player, [(market_id, "home", "2.50")], stake_minor=100, odds_change="accept_any")
    assert r.status_code == 201 and r.json()["potential_return_minor"] == 220, r.text
    assert await balance(client, player, "GBP") == (9_800, 0)


async def test_suspended_market_takes_no_bets(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=1_000)
    market_id = await put_market(client, {"home": "2.00"})
    await put_market(client, {"home": "2.00"}, market_id=market_id, status="suspended")
    r = await place(client, player, [(market_id, "home", "2.00")], stake_minor=100)
    assert r.status_code == 409 and r.json()["code"] == "market_suspended", r.text
    assert await balance(client, player, "GBP") == (1_000, 0)


@pytest.mark.parametrize(("legs", "extra", "code", "status"), [
    ([("?", "home", "2.00")], {}, "unknown_market", 404),
    ([("M", "nobody", "2.00")], {}, "unknown_selection", 404),
    ([("M", "home", "2.00"), ("M", "home", "2.00")], {"bet_type": "accumulator"}, "duplicate_selection", 400),
    ([("M", "home", "2.00"), ("M", "away", "3.00")], {"bet_type": "system", "system": [3]}, "system_size_too_large", 400),
    ([("M", "home", "2.00")], {"bet_type": "yankee"}, "leg_count_mismatch", 400),
    ([("M", "home", "2.00"), ("M", "away", "3.00")], {"system": [1]}, "invalid_system", 400),
    ([("M", "home", "2.0e1")], {}, "invalid_request", 400),
    ([("M", "home", "1.00")], {}, "invalid_odds", 400),
])
async def test_bad_bets_are_refused_and_move_nothing(client, gateway, legs, extra, code, status):
    player = await new_player(client, currencies=("GBP",), deposit_minor=1_000)
    market_id = await put_market(client, {"home": "2.00", "away": "3.00"})
    legs = [(market_id if m == "M" else m, s, p) for m, s, p in legs]
    kwargs = {"bet_type": extra.get("bet_type", "single"), "system": extra.get("system")}
    if len(legs) > 1 and "bet_type" not in extra:
        kwargs["bet_type"] = "accumulator"
    r = await place(client, player, legs, stake_minor=100, **kwargs)
    assert r.status_code == status and r.json()["code"] == code, r.text
    assert await balance(client, player, "GBP") == (1_000, 0)


async def test_too_many_legs_and_zero_stake(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=1_000)
    prices = {f"s{i}": "1.10" for i in range(21)}
    market_ids = [await put_market(client, {"s": "1.10"}) for _ in range(21)]
    del prices
    r = await place(client, player, [(m, "s", "1.10") for m in market_ids], stake_minor=100, bet_type="accumulator")
    assert r.status_code == 400 and r.json()["code"] == "too_many_legs", r.text
    r = await place(client, player, [(market_ids[0], "s", "1.10")], stake_minor=0)
    assert r.status_code == 400 and r.json()["code"] == "invalid_request", r.text


async def test_liability_limit_names_the_largest_stake(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=100_000)
    market_id = await put_market(client, {"home": "2.00", "away": "2.00"},
                                 limits={"selection_liability_max_minor": 5_000})
    r = await place(client, player, [(market_id, "home", "2.00")], stake_minor=4_000)
    assert r.status_code == 201, r.text
    r = await place(client, player, [(market_id, "home", "2.00")], stake_minor=3_000)
    assert r.status_code == 422 and r.json()["code"] == "selection_liability_limit", r.text
    largest = r.json()["max_stake_minor"]
    assert largest == 1_000
    r = await place(client, player, [(market_id, "home", "2.00")], stake_minor=largest + 1)
    assert r.status_code == 422, r.text
    r = await place(client, player, [(market_id, "home", "2.00")], stake_minor=largest)
    assert r.status_code == 201, r.text
    assert await balance(client, player, "GBP") == (95_000, 0)


async def test_a_bet_refused_for_funds_releases_its_liability(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=500)
    market_id = await put_market(client, {"home": "2.00"}, limits={"selection_liability_max_minor": 1_000})
    r = await place(client, player, [(market_id, "home", "2.00")], stake_minor=900)
    assert r.status_code == 402 and r.json()["code"] == "insufficient_funds", r.text
    r = await place(client, player, [(market_id, "home", "2.00")], stake_minor=500)
    assert r.status_code == 201, r.text  # the refused bet's 900 is not still reserved


# ---- the worked examples, through the API -------------------------------------------------


async def _markets(client, prices: list[str], **kwargs) -> list[str]:
    return [await put_market(client, {"sel": p}, **kwargs) for p in prices]


async def _settle_all(client, market_ids: list[str], outcomes: list[dict]) -> None:
    for market_id, outcome in zip(market_ids, outcomes, strict=True):
        await result(client, market_id, [{"selection_id": "sel", **outcome}])


WON, LOST, VOID = {"outcome": "won"}, {"outcome": "lost"}, {"outcome": "void"}


@pytest.mark.parametrize(("prices", "bet_type", "stake", "outcomes", "expected_return", "outlay"), [
    (["1.5", "2.0", "3.0"], "accumulator", 1_000, [WON, VOID, WON], 4_500, 1_000),
    (["1.5", "2.0", "3.0"], "accumulator", 1_000, [VOID, VOID, VOID], 1_000, 1_000),
    (["3/1", "7/1", "5/2", "1/1"], "lucky_15", 100, [WON, WON, WON, WON], 60_650, 1_500),
    (["2/1", "4/1", "7/1", "1/1"], "yankee", 100, [WON, WON, WON, VOID], 41_400, 1_100),
    (["10/1"], "single", 1_000, [{"outcome": "dead_heat", "dead_heat_factor": "1/2"}], 5_500, 1_000),
    (["8/1"], "single", 1_000, [{"outcome": "won", "rule4_deduction": "0.25"}], 7_000, 1_000),
    (["2.00"], "single", 10_000, [{"outcome": "half_won"}], 15_000, 10_000),
    (["2.00"], "single", 10_000, [{"outcome": "half_lost"}], 5_000, 10_000),
])
async def test_worked_examples(client, gateway, prices, bet_type, stake, outcomes, expected_return, outlay):
    player = await new_player(client, currencies=("GBP",), deposit_minor=100_000)
    market_ids = await _markets(client, prices)
    r = await place(client, player, [(m, "sel", p) for m, p in zip(market_ids, prices, strict=True)],
                    stake_minor=stake, bet_type=bet_type)
    assert r.status_code == 201 and r.json()["outlay_minor"] == outlay, r.text
    await _settle_all(client, market_ids, outcomes)
    assert (await settled(client, r.json()["bet_id"]))["return_minor"] == expected_return
    assert await balance(client, player, "GBP") == (100_000 - outlay + expected_return, 0)


@pytest.mark.parametrize(("price", "fraction", "outcome", "expected_return"), [
    ("7/4", "1/4", "won", 4_187),  # 41.875 rounded down
    ("7/4", "1/4", "placed", 1_437),  # 14.375 rounded down
    ("11/4", "1/5", "won", 53_000),
    ("11/4", "1/5", "placed", 15_500),
])
async def test_each_way_worked_examples(client, gateway, price, fraction, outcome, expected_return):
    player = await new_player(client, currencies=("GBP",), deposit_minor=100_000)
    stake = 1_000 if price == "7/4" else 10_000
    (market_id,) = await _markets(client, [price], each_way={"fraction": fraction, "places": 3})
    r = await place(client, player, [(market_id, "sel", price)], stake_minor=stake, each_way=True)
    assert r.status_code == 201 and r.json()["outlay_minor"] == 2 * stake, r.text
    await result(client, market_id, [{"selection_id": "sel", "outcome": outcome}])
    assert (await settled(client, r.json()["bet_id"]))["return_minor"] == expected_return


async def test_an_accumulator_waits_for_every_leg(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=10_000)
    first, second = await _markets(client, ["2.00", "3.00"])
    r = await place(client, player, [(first, "sel", "2.00"), (second, "sel", "3.00")], stake_minor=1_000,
                    bet_type="accumulator")
    assert r.status_code == 201 and r.json()["potential_return_minor"] == 6_000, r.text
    bet_id = r.json()["bet_id"]
    await result(client, first, [{"selection_id": "sel", "outcome": "won"}])
    await asyncio.sleep(1.0)  # two poll intervals of the driver
    r = await client.get(f"/v1/sportsbook/bets/{bet_id}")
    assert r.json()["state"] == "open" and r.json()["legs"][0]["result"] == "won", r.text
    await result(client, second, [{"selection_id": "sel", "outcome": "won"}])
    assert (await settled(client, bet_id))["return_minor"] == 6_000
    assert await balance(client, player, "GBP") == (15_000, 0)


async def test_results_are_idempotent_and_checked(client, gateway):
    market_id = await put_market(client, {"home": "2.00", "away": "2.00"})
    result_id = new_id("res")
    await result(client, market_id, [{"selection_id": "home", "outcome": "won"}], result_id=result_id)
    r = await client.post("/v1/sportsbook/results", headers=TRADING, json={
        "result_id": result_id, "market_id": market_id, "results": [{"selection_id": "home", "outcome": "won"}]})
    assert r.status_code == 202 and r.json()["replayed"] is True, r.text
    r = await client.post("/v1/sportsbook/results", headers=TRADING, json={
        "result_id": result_id, "market_id": market_id, "results": [{"selection_id": "home", "outcome": "lost"}]})
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict", r.text
    r = await client.post("/v1/sportsbook/results", headers=TRADING, json={
        "result_id": new_id("res"), "market_id": market_id,
        "results": [{"selection_id": "away", "outcome": "won", "dead_heat_factor": "1/2"}]})
    assert r.status_code == 400 and r.json()["code"] == "invalid_result", r.text
    r = await client.post("/v1/sportsbook/results", json={
        "result_id": new_id("res"), "market_id": market_id, "results": [{"selection_id": "away", "outcome": "won"}]})
    assert r.status_code == 403, r.text  # a wallet key cannot result a market


async def test_partners_never_share_markets_or_bets(client, gateway):
    market_id = await put_market(client, {"home": "2.00"})
    async with httpx.AsyncClient(base_url=gateway.url, headers=RIVAL_AUTH, timeout=10.0) as rival:
        player = await new_player(rival, currencies=("GBP",), deposit_minor=1_000)
        r = await place(rival, player, [(market_id, "home", "2.00")], stake_minor=100)
        assert r.status_code == 404 and r.json()["code"] == "unknown_market", r.text
    mine = await new_player(client, currencies=("GBP",), deposit_minor=1_000)
    r = await place(client, mine, [(market_id, "home", "2.00")], stake_minor=100)
    assert r.status_code == 201, r.text
    async with httpx.AsyncClient(base_url=gateway.url, headers=RIVAL_AUTH, timeout=10.0) as rival:
        r = await rival.get(f"/v1/sportsbook/bets/{r.json()['bet_id']}")
        assert r.status_code == 404 and r.json()["code"] == "unknown_bet", r.text


async def test_market_report(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=10_000)
    market_id = await put_market(client, {"home": "2.00", "away": "3.00"})
    assert (await place(client, player, [(market_id, "home", "2.00")], stake_minor=1_000)).status_code == 201
    assert (await place(client, player, [(market_id, "away", "3.00")], stake_minor=500)).status_code == 201
    r = await client.get(f"/v1/sportsbook/markets/{market_id}/report", headers=TRADING)
    assert r.status_code == 200, r.text
    (row,) = r.json()["by_state"]
    assert (row["state"], row["bets"], row["outlay_minor"], row["open_potential_minor"]) == ("open", 2, 1_500, 3_500)


async def test_exposure_rebuilds_from_postgresql(client, gateway):
    """Redis loses the counters: the rebuild restores exactly what the open bets reserve."""
    import asyncpg

    from gateway.edge.redis_client import redis_client
    from gateway.sportsbook.exposure import ExposureBook
    from gateway.sportsbook.rebuild import rebuild_exposure
    from gateway.sportsbook.store import SportsbookStore

    player = await new_player(client, currencies=("GBP",), deposit_minor=100_000)
    single_market = await put_market(client, {"home": "2.00", "away": "3.00"},
                                     limits={"selection_liability_max_minor": 10_000})
    first, second = await _markets(client, ["1.50", "2.50"])
    assert (await place(client, player, [(single_market, "home", "2.00")], stake_minor=1_000)).status_code == 201
    assert (await place(client, player, [(first, "sel", "1.50"), (second, "sel", "2.50")], stake_minor=400,
                        bet_type="accumulator")).status_code == 201

    async def exposures() -> list[dict]:
        out = []
        for market_id in (single_market, first, second):
            r = await client.get(f"/v1/sportsbook/markets/{market_id}/report", headers=TRADING)
            out.append(r.json()["exposure"])
        return out

    before = await exposures()
    assert before[0] == {"stakes_minor": 1_000, "returns_minor:home": 2_000}
    assert before[1] == {"stakes_minor": 0, "returns_minor:sel": 1_500}
    pool = await asyncpg.create_pool(gateway.database_url, min_size=1, max_size=2)
    redis = redis_client(gateway.redis_url, 2_000)
    try:
        book = ExposureBook(redis)
        await book.clear()
        assert (await exposures())[0] == {"stakes_minor": 0}
        done = await rebuild_exposure(SportsbookStore(pool), book)
        assert done.bets >= 2 and done.markets >= 3
    finally:
        await redis.aclose()
        await pool.close()
    assert await exposures() == before
    # the mirror is back too: the market takes bets, within its limit
    r = await place(client, player, [(single_market, "home", "2.00")], stake_minor=9_500)
    assert r.status_code == 422 and r.json()["max_stake_minor"] == 9_000, r.text


async def _return_becomes(client, bet_id: str, expected: int) -> dict:
    deadline = asyncio.get_running_loop().time() + SETTLE_WAIT_S
    while True:
        bet = (await client.get(f"/v1/sportsbook/bets/{bet_id}")).json()
        if bet.get("return_minor") == expected:
            return bet
        assert asyncio.get_running_loop().time() < deadline, bet
        await asyncio.sleep(0.1)


async def test_a_corrected_result_resettles_once(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=10_000)
    market_id = await put_market(client, {"home": "2.00", "away": "2.00"})
    r = await place(client, player, [(market_id, "home", "2.00")], stake_minor=1_000)
    bet_id = r.json()["bet_id"]
    await result(client, market_id, [{"selection_id": "home", "outcome": "won"}])
    assert (await settled(client, bet_id))["return_minor"] == 2_000
    assert await balance(client, player, "GBP") == (11_000, 0)
    correction = new_id("res")
    await result(client, market_id, [{"selection_id": "home", "outcome": "lost"}], result_id=correction)
    await _return_becomes(client, bet_id, 0)
    assert await balance(client, player, "GBP") == (9_000, 0)
    # the same correction again changes nothing; a second correction back to won pays again
    await result(client, market_id, [{"selection_id": "home", "outcome": "lost"}], result_id=correction)
    await result(client, market_id, [{"selection_id": "home", "outcome": "void"}])
    await _return_becomes(client, bet_id, 1_000)
    assert await balance(client, player, "GBP") == (10_000, 0)


async def test_a_correction_may_leave_a_debt(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=1_000)
    market_id = await put_market(client, {"home": "3.00"})
    r = await place(client, player, [(market_id, "home", "3.00")], stake_minor=1_000)
    bet_id = r.json()["bet_id"]
    await result(client, market_id, [{"selection_id": "home", "outcome": "won"}])
    await settled(client, bet_id)
    r = await client.post("/v1/wallet/withdraw", json={"transaction_id": new_id("wd"), "player_id": player,
                                                       "currency": "GBP", "amount_minor": 3_000})
    assert r.status_code == 200, r.text
    await result(client, market_id, [{"selection_id": "home", "outcome": "lost"}])
    await _return_becomes(client, bet_id, 0)
    assert await balance(client, player, "GBP") == (-3_000, 0)  # a recorded debt


async def test_cash_out_is_final(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=10_000)
    market_id = await put_market(client, {"home": "4.00"})
    r = await place(client, player, [(market_id, "home", "4.00")], stake_minor=1_000)
    bet_id = r.json()["bet_id"]
    r = await client.post(f"/v1/sportsbook/bets/{bet_id}/cashout", json={"amount_minor": 4_001})
    assert r.status_code == 400 and r.json()["code"] == "invalid_amount", r.text
    r = await client.post(f"/v1/sportsbook/bets/{bet_id}/cashout", json={"amount_minor": 1_500})
    assert r.status_code == 200 and r.json()["state"] == "cashed_out" and r.json()["return_minor"] == 1_500, r.text
    again = await client.post(f"/v1/sportsbook/bets/{bet_id}/cashout", json={"amount_minor": 1_500})
    assert again.status_code == 200 and again.json()["replayed"] is True, again.text
    other = await client.post(f"/v1/sportsbook/bets/{bet_id}/cashout", json={"amount_minor": 1_600})
    assert other.status_code == 409 and other.json()["code"] == "bet_not_open", other.text
    await result(client, market_id, [{"selection_id": "home", "outcome": "won"}])
    await asyncio.sleep(1.0)  # two poll intervals: the result must not pay a cashed-out bet
    assert (await client.get(f"/v1/sportsbook/bets/{bet_id}")).json()["state"] == "cashed_out"
    assert await balance(client, player, "GBP") == (10_500, 0)


async def test_redis_down_refuses_placement_retryably(spawn_gateway):
    """No Redis, no unchecked liability: the market's mirror and every placement answer 503
    ``exposure_unavailable`` with Retry-After, and no money moves."""
    gateway = await spawn_gateway(env={"GATEWAY_REDIS_URL": "redis://127.0.0.1:1/0"})
    async with gateway.client() as client:
        player = await new_player(client, currencies=("GBP",), deposit_minor=1_000)
        market_id = new_id("m")
        r = await client.put(f"/v1/sportsbook/markets/{market_id}", headers=TRADING, json={
            "event": "A v B", "status": "open", "price_version": 1, "currency": "GBP",
            "selections": [{"selection_id": "home", "odds": {"decimal": "2.00"}}]})
        assert r.status_code == 503 and r.json()["code"] == "exposure_unavailable", r.text
        assert r.headers["retry-after"] == "1"
        r = await place(client, player, [(market_id, "home", "2.00")], stake_minor=500)
        assert r.status_code == 503 and r.json()["code"] == "exposure_unavailable", r.text
        assert await balance(client, player, "GBP") == (1_000, 0)
