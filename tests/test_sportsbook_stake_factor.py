"""Per-player stake factors over HTTP (docs/SPORTSBOOK.md, "Stake factor"): the trading key
sets them; they scale the player's per-bet stake and payout limits, rounded down, never the
book's liability limits; bad input is a clear 4xx and changes nothing."""

from __future__ import annotations

import pytest

from tests.conftest import new_player
from tests.helpers import balance
from tests.test_sportsbook_http import TRADING, place, put_market


async def _set(client, player: str, factor: object, headers: dict | None = None):
    return await client.put(f"/v1/sportsbook/players/{player}/stake-factor", json={"factor": factor},
                            headers=headers or TRADING)


async def test_a_stake_factor_scales_the_stake_limit(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=10_000)
    market_id = await put_market(client, {"home": "2.00"}, limits={"bet_stake_max_minor": 1_001})
    r = await _set(client, player, "1/2")
    assert r.status_code == 200 and r.json() == {"player_id": player, "factor": "1/2"}, r.text
    assert (await client.get(f"/v1/sportsbook/players/{player}/stake-factor", headers=TRADING)).json()["factor"] == "1/2"
    r = await place(client, player, [(market_id, "home", "2.00")], stake_minor=501)
    assert r.status_code == 422 and r.json()["code"] == "stake_limit" and r.json()["max_stake_minor"] == 500, r.text
    assert (await place(client, player, [(market_id, "home", "2.00")], stake_minor=500)).status_code == 201
    other = await new_player(client, currencies=("GBP",), deposit_minor=10_000)  # no factor: the market's limit
    assert (await place(client, other, [(market_id, "home", "2.00")], stake_minor=1_001)).status_code == 201
    assert (await _set(client, player, "1")).json()["factor"] == "1/1"
    assert (await place(client, player, [(market_id, "home", "2.00")], stake_minor=1_001)).status_code == 201
    assert await balance(client, player, "GBP") == (10_000 - 500 - 1_001, 0)


async def test_a_stake_factor_scales_the_payout_cap(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=10_000)
    market_id = await put_market(client, {"home": "5.00"}, limits={"bet_payout_max_minor": 3_000})
    assert (await _set(client, player, "0.25")).json()["factor"] == "1/4"
    r = await place(client, player, [(market_id, "home", "5.00")], stake_minor=1_000)
    assert r.status_code == 201 and r.json()["potential_return_minor"] == 750, r.text


@pytest.mark.parametrize("factor", ["0", "1.5", "-1/2", "abc", 0.5, "1/0", "1/10000000"])
async def test_bad_factors_are_refused(client, gateway, factor):
    player = await new_player(client, currencies=("GBP",), deposit_minor=100)
    r = await _set(client, player, factor)
    assert r.status_code in (400, 422) and r.json()["code"] in ("invalid_request", "invalid_stake_factor"), r.text
    got = await client.get(f"/v1/sportsbook/players/{player}/stake-factor", headers=TRADING)
    assert got.status_code == 200 and got.json()["factor"] == "1/1"


async def test_only_the_trading_key_sets_factors(client, gateway):
    player = await new_player(client, currencies=("GBP",), deposit_minor=100)
    r = await client.put(f"/v1/sportsbook/players/{player}/stake-factor", json={"factor": "1/2"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    unknown = await _set(client, "nobody-here", "1/2")
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_player", unknown.text
