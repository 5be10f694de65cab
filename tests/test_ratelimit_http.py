"""Rate limits end to end: real gateway processes with tiny limits, real PostgreSQL and Redis.

Source: issue "Per-partner and per-provider rate limits in Redis"; docs/RATE_LIMITS.md;
docs/DESIGN.md sections 7 (Redis down: money operations keep working) and 8 (refusals);
gateway/providers/hub88/README.md, "Statuses" (``RS_ERROR_UNKNOWN`` is the retryable one).

What is checked, from the client and from PostgreSQL:
- generic API: over the partner's limit -> HTTP 429 problem+json ``rate_limited`` with an
  integer ``Retry-After``; a limited request writes nothing, not even an audit row (a flood
  must not write rows), while every admitted one is answered and audited as usual;
- Hub88: over the provider's limit -> HTTP 200, signed, ``RS_ERROR_UNKNOWN``, nothing
  written; Hub88's retry of the same transaction is applied once it is admitted;
- a gateway whose Redis is unreachable keeps serving money calls without limits and says so
  on /metrics (``gateway_rate_limit_unavailable_total``) and in its log.

The limited gateways get a Redis of their own (an embedded one, started here): a tiny limit
on the shared test Redis would drain the ``demo`` / ``hub88`` buckets that other gateways
running against it at the same time also use. Limits are set through the environment
(``GATEWAY_RATE_LIMITS__PARTNER_DEFAULT__REQUESTS_PER_S``, ``..._PROVIDERS__HUB88__BURST``).
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from gateway.config import load_settings
from gateway.embedded import EmbeddedServices
from tests.conftest import check_ledger, free_port, new_id
from tests.faultlib import log_grep, metric
from tests.helpers import wallet_of
from tests.test_hub88_http import (
    HEADER,
    PREFIX,
    again,
    assert_signed_by_operator,
    bet_body,
    encode,
    sign,
)

PROBLEM_JSON = "application/problem+json"
PARTNER_RATE, PARTNER_BURST = 5, 20
HUB88_RATE, HUB88_BURST = 5, 5
EUR_WIRE = 1000  # Hub88 amount = minor units x 1000 for EUR (gateway/providers/hub88/README.md, "Amounts")

LIMITED_ENV = {
    "GATEWAY_RATE_LIMITS__PARTNER_DEFAULT__REQUESTS_PER_S": str(PARTNER_RATE),
    "GATEWAY_RATE_LIMITS__PARTNER_DEFAULT__BURST": str(PARTNER_BURST),
    "GATEWAY_RATE_LIMITS__PROVIDERS__HUB88__REQUESTS_PER_S": str(HUB88_RATE),
    "GATEWAY_RATE_LIMITS__PROVIDERS__HUB88__BURST": str(HUB88_BURST),
}


@pytest.fixture
def own_redis(services, tmp_path):
    """A Redis server of this test's own (embedded, under tmp_path); yields its URL."""
    settings = load_settings(environ={
        "GATEWAY_DATA_DIR": str(tmp_path / "own-redis"),
        "GATEWAY_DATABASE_URL": services.admin_database_url,  # set: only Redis is embedded
    })
    embedded = EmbeddedServices(settings).start()
    try:
        yield embedded.redis_url
    finally:
        embedded.stop()


@pytest.fixture
async def limited(spawn_gateway, own_redis):
    return await spawn_gateway(env={**LIMITED_ENV, "GATEWAY_REDIS_URL": own_redis})


async def admitted(http: httpx.AsyncClient, method: str, path: str, json: dict | None = None) -> httpx.Response:
    """A setup call that waits out 429s as a partner should (Retry-After), bounded."""
    for _ in range(30):
        r = await http.request(method, path, json=json)
        if r.status_code != 429:
            return r
        await asyncio.sleep(int(r.headers["Retry-After"]))
    raise AssertionError(f"{method} {path}: still rate limited after 30 tries")


async def row_counts(database_url: str) -> tuple[int, int]:
    """(rows in transactions, rows in audit_log)."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT (SELECT count(*) FROM transactions) AS t, "
                                  "(SELECT count(*) FROM audit_log) AS a")
        return row["t"], row["a"]
    finally:
        await conn.close()


async def new_funded_player(http: httpx.AsyncClient, deposit_minor: int = 0) -> str:
    player = new_id("p")
    r = await admitted(http, "POST", "/v1/players", {"player_id": player, "currencies": ["EUR"], "country": "MT"})
    assert r.status_code == 201, r.text
    if deposit_minor:
        r = await admitted(http, "POST", "/v1/wallet/deposit", {
            "transaction_id": new_id("dep"), "player_id": player, "currency": "EUR", "amount_minor": deposit_minor})
        assert r.status_code == 200, r.text
    return player


async def cash(http: httpx.AsyncClient, player: str) -> int:
    """cash + bonus minor units of the EUR wallet, read as a rate-limited partner reads it."""
    cash_minor, bonus_minor = wallet_of(await admitted(http, "GET", f"/v1/players/{player}/balance"))
    return cash_minor + bonus_minor


async def limited_metric(http: httpx.AsyncClient, kind: str, name: str) -> float:
    return await metric(http, f'gateway_rate_limited_total{{kind="{kind}",name="{name}"}}')


# ---- generic API -----------------------------------------------------------------------------


async def test_partner_over_its_limit_gets_429_and_nothing_is_written(limited):
    started = time.monotonic()  # the partner's bucket is full before the first request
    async with limited.client(limits=httpx.Limits(max_connections=100)) as http:
        player = await new_funded_player(http)
        txns, audits = await row_counts(limited.database_url)

        deposits = [{"transaction_id": new_id("dep"), "player_id": player, "currency": "EUR",
                     "amount_minor": 1} for _ in range(30)]
        posts = [http.post("/v1/wallet/deposit", json=body) for body in deposits]
        # Bad input that, when admitted, is refused and audited (docs/DESIGN.md section 8).
        posts += [http.post("/v1/wallet/deposit", content=b"{not json",
                            headers={"Content-Type": "application/json"}) for _ in range(30)]
        answers = await asyncio.gather(*posts)
        elapsed_s = time.monotonic() - started

        ok = [r for r in answers[:30] if r.status_code == 200]
        bad = [r for r in answers[30:] if r.status_code == 400]
        limited_answers = [r for r in answers if r.status_code == 429]
        assert len(ok) + len(bad) + len(limited_answers) == 60, [r.status_code for r in answers]
        assert limited_answers, "a burst of 60 over a burst limit of 20 must be limited"
        assert ok or bad
        # Token bucket: the burst plus what refilled since the bucket was first used.
        assert len(ok) + len(bad) <= PARTNER_BURST + PARTNER_RATE * elapsed_s + 1

        for r in limited_answers:
            assert r.headers["content-type"].startswith(PROBLEM_JSON), r.headers
            problem = r.json()
            assert problem["code"] == "rate_limited" and problem["status"] == 429, problem
            assert problem["type"] == "urn:gateway:problem:rate_limited"
            assert int(r.headers["Retry-After"]) >= 1
        for r in bad:
            assert r.json()["code"] == "invalid_request"

        # Admitted requests wrote their rows (one transaction and one audit row per deposit,
        # one audit row per refused bad body); limited ones wrote nothing at all.
        assert await row_counts(limited.database_url) == (txns + len(ok), audits + len(ok) + len(bad))
        assert await cash(http, player) == len(ok)
        assert await limited_metric(http, "partner", "demo") >= len(limited_answers)

    report = await check_ledger(limited.database_url)
    assert report["ok"], report


# ---- Hub88 -----------------------------------------------------------------------------------


async def test_hub88_over_its_limit_gets_rs_error_unknown_and_retries_apply(limited):
    async with limited.client(limits=httpx.Limits(max_connections=100)) as http:
        player = await new_funded_player(http, deposit_minor=10_000)
        r = await admitted(http, "POST", "/v1/sessions", {"player_id": player, "currency": "EUR",
                                                          "provider": "hub88", "game_id": "hub88_slot_1"})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        txns, audits = await row_counts(limited.database_url)

        round_id = new_id("rnd")
        bodies = [bet_body(player, token, new_id("bet"), EUR_WIRE, round_id=round_id) for _ in range(20)]

        async def send(body: dict) -> dict:
            raw = encode(body)
            r = await http.post(PREFIX + "/transaction/bet", content=raw,
                                headers={"Content-Type": "application/json", HEADER: sign(raw)})
            assert r.status_code == 200, (r.status_code, r.text)  # Hub88: always HTTP 200
            assert_signed_by_operator(r)
            return r.json()

        answers = await asyncio.gather(*(send(b) for b in bodies))
        statuses = [a["status"] for a in answers]
        assert set(statuses) <= {"RS_OK", "RS_ERROR_UNKNOWN"}, statuses
        applied = statuses.count("RS_OK")
        refused = [b for b, a in zip(bodies, answers) if a["status"] == "RS_ERROR_UNKNOWN"]
        assert applied >= 1 and refused, statuses
        for a in answers:
            if a["status"] == "RS_ERROR_UNKNOWN":
                assert a == {"status": "RS_ERROR_UNKNOWN"}  # decided before the body was read
        # Limited bets wrote nothing, not even an audit row.
        assert await row_counts(limited.database_url) == (txns + applied, audits + applied)
        assert await limited_metric(http, "provider", "hub88") >= len(refused)

        # RS_ERROR_UNKNOWN is retryable: Hub88 sends the same transaction again (new
        # request_uuid) and it is applied once admitted. Bounded: a few rounds at 5/s.
        for _ in range(40):
            if not refused:
                break
            retried = [again(b) for b in refused]
            answers = await asyncio.gather(*(send(b) for b in retried))
            refused = [b for b, a in zip(refused, answers) if a["status"] == "RS_ERROR_UNKNOWN"]
            assert all(a["status"] in ("RS_OK", "RS_ERROR_UNKNOWN") for a in answers), answers
            if refused:
                await asyncio.sleep(0.5)
        assert not refused, f"{len(refused)} bets still limited after 40 rounds"
        assert await cash(http, player) == 10_000 - len(bodies)
        txns_after, _ = await row_counts(limited.database_url)
        assert txns_after == txns + len(bodies)

    report = await check_ledger(limited.database_url)
    assert report["ok"], report


# ---- Redis down: fail open -------------------------------------------------------------------


async def test_without_redis_money_calls_flow_unlimited_and_it_is_counted(spawn_gateway):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    process = await spawn_gateway(env={
        "GATEWAY_REDIS_URL": dead_redis,
        "GATEWAY_RATE_LIMITS__PARTNER_DEFAULT__REQUESTS_PER_S": "1",
        "GATEWAY_RATE_LIMITS__PARTNER_DEFAULT__BURST": "1",
    })
    async with process.client() as http:
        player = new_id("p")
        r = await http.post("/v1/players", json={"player_id": player, "currencies": ["EUR"], "country": "MT"})
        assert r.status_code == 201, r.text
        for _ in range(5):  # far past the burst of 1: no limiting without Redis
            r = await http.post("/v1/wallet/deposit", json={
                "transaction_id": new_id("dep"), "player_id": player, "currency": "EUR", "amount_minor": 1_000})
            assert r.status_code == 200, r.text
            r = await http.post("/v1/wallet/debit", json={
                "transaction_id": new_id("bet"), "player_id": player, "currency": "EUR", "amount_minor": 100,
                "round_id": new_id("rnd"), "game_id": "g1"})
            assert r.status_code == 200, r.text
        assert r.json()["cash_minor"] == 5 * 900

        # What needs Redis fails retryably (docs/DESIGN.md section 7), not as a rate limit.
        r = await http.post("/v1/sessions", json={"player_id": player, "currency": "EUR",
                                                  "provider": "hub88", "game_id": "g1"})
        assert r.status_code == 503 and r.json()["code"] == "session_store_unavailable", r.text

        assert await metric(http, "gateway_rate_limit_unavailable_total") > 0
        assert await metric(http, "gateway_rate_limited_total") == 0
    assert '"event":"rate_limit_unavailable"' in log_grep(process.log_path, "rate_limit_unavailable")
    report = await check_ledger(process.database_url)
    assert report["ok"], report
