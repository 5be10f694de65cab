"""Bad input on the generic API: a clear 4xx problem+json with a stable code, never a 500,
and nothing written but the audit record (docs/DESIGN.md section 8).

Each test snapshots the ledger's row counts with asyncpg before the bad request and checks
after it that transactions, entries, accounts and players did not change and that the
audit log grew by exactly one row for a write route (none for a read).
"""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest

from tests.conftest import API_KEY, new_id, new_player

PROBLEM_JSON = "application/problem+json"
AMOUNT_MINOR_MAX = 10_000_000_000  # config/default.toml [money] amount_minor_max
BODY_BYTES_MAX = 65_536  # config/default.toml [server] body_bytes_max

V1_PATHS = {
    "/v1/players", "/v1/players/{player_id}/balance", "/v1/players/{player_id}/status",
    "/v1/sessions", "/v1/wallet/deposit",
    "/v1/wallet/withdraw", "/v1/wallet/debit", "/v1/wallet/credit", "/v1/wallet/rollback",
    "/v1/sportsbook/markets/{market_id}", "/v1/sportsbook/markets/{market_id}/report", "/v1/sportsbook/bets",
    "/v1/sportsbook/bets/{bet_id}", "/v1/sportsbook/bets/{bet_id}/cashout", "/v1/sportsbook/results",
    "/v1/sportsbook/players/{player_id}/stake-factor",
    "/v1/players/{player_id}/limits", "/v1/players/{player_id}/exclusions",
    "/v1/payments/deposits", "/v1/payments/deposits/{merchant_reference}", "/v1/payments/withdrawals",
    "/v1/payments/withdrawals/{merchant_reference}", "/v1/payments/withdrawals/{merchant_reference}/approve",
    "/v1/payments/withdrawals/{merchant_reference}/decline", "/v1/payments/withdrawals/{merchant_reference}/cancel",
    "/v1/players/{player_id}/kyc",
    "/v1/payments/reconciliations/{integration}/exceptions",
    "/v1/payments/reconciliations/{integration}/exceptions/{exception_id}/resolve",
    "/v1/audit/records/search", "/v1/audit/transactions/{transaction_id}",
}


# ---- helpers ---------------------------------------------------------------------------


#: The sportsbook sweeper fences stale bet reservations every 10 s in the background, and the
#: shard audits each fence (also one of a bet whose debit exists): not the test's rows.
NOT_A_SWEEPER_FENCE = ("NOT (coalesce(scope, '') LIKE '%:sportsbook' "
                       "AND coalesce(transaction_id, '') LIKE '%:fence')")


async def counts(gateway) -> dict[str, int]:
    conn = await asyncpg.connect(gateway.database_url)
    try:
        row = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM transactions) AS transactions,
                      (SELECT count(*) FROM entries) AS entries,
                      (SELECT count(*) FROM accounts) AS accounts,
                      (SELECT coalesce(sum(balance_minor), 0) FROM accounts WHERE player_id IS NOT NULL)
                          AS player_money,
                      (SELECT count(*) FROM players) AS players,
                      (SELECT count(*) FROM audit_log WHERE """ + NOT_A_SWEEPER_FENCE + """) AS audit_log""")
        return dict(row)
    finally:
        await conn.close()


async def last_audit(gateway) -> asyncpg.Record:
    conn = await asyncpg.connect(gateway.database_url)
    try:
        return await conn.fetchrow(
            "SELECT shard_id, kind, scope, transaction_id, player_id, code, record FROM audit_log "
            f"WHERE {NOT_A_SWEEPER_FENCE} ORDER BY recorded_at DESC, seq DESC LIMIT 1")
    finally:
        await conn.close()


def assert_problem(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].split(";")[0].strip() == PROBLEM_JSON, r.headers
    body = r.json()
    assert body["code"] == code, body
    assert body["status"] == status, body
    assert body["type"] == f"urn:gateway:problem:{code}", body
    assert isinstance(body["title"], str) and body["title"], body
    return body


class Unchanged:
    """``async with Unchanged(gateway, audit_rows=1):`` around a refused request."""

    def __init__(self, gateway, audit_rows: int = 1) -> None:
        self.gateway = gateway
        self.audit_rows = audit_rows

    async def __aenter__(self):
        self.before = await counts(self.gateway)
        return self

    async def __aexit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return False
        after = await counts(self.gateway)
        expected = dict(self.before, audit_log=self.before["audit_log"] + self.audit_rows)
        assert after == expected, {"before": self.before, "after": after}
        return False


def debit(player: str, **over) -> dict:
    body = {"transaction_id": new_id("bet"), "player_id": player, "currency": "EUR",
            "amount_minor": 100, "round_id": "r1", "game_id": "g1"}
    body.update(over)
    return body


def raw_post(client: httpx.AsyncClient, path: str, content: bytes, **headers):
    return client.post(path, content=content, headers={"Content-Type": "application/json", **headers})


@pytest.fixture
async def player(client) -> str:
    return await new_player(client, deposit_minor=1_000)


# ---- malformed bodies -----------------------------------------------------------------


@pytest.mark.parametrize("content", [
    b"{not json",
    b'{"transaction_id": "x",',
    b"",
    b"\xff\xfe\x00",
    b'{"a": 1} trailing',
])
async def test_malformed_json(client, gateway, player, content):
    async with Unchanged(gateway):
        body = assert_problem(await raw_post(client, "/v1/wallet/debit", content), 400, "invalid_request")
    assert "detail" in body


@pytest.mark.parametrize("path", ["/v1/wallet/debit", "/v1/wallet/credit", "/v1/wallet/rollback",
                                  "/v1/wallet/deposit", "/v1/wallet/withdraw", "/v1/players", "/v1/sessions"])
async def test_json_array_instead_of_object(client, gateway, player, path):
    async with Unchanged(gateway):
        body = assert_problem(await raw_post(client, path, json.dumps([debit(player)]).encode()),
                              400, "invalid_request")
    assert "object" in body["detail"], body


@pytest.mark.parametrize("value,kind", [("100", "str"), (1.5, "float"), (100.0, "float"), (True, "bool"),
                                        (None, "null"), ({"v": 1}, "object")])
async def test_amount_wrong_type(client, gateway, player, value, kind):
    async with Unchanged(gateway):
        body = assert_problem(await client.post("/v1/wallet/debit", json=debit(player, amount_minor=value)),
                              400, "invalid_request")
    assert "amount_minor" in body["detail"] and kind in body["detail"], body
    # The audit record carries who it was about and what was refused.
    audit = await last_audit(gateway)
    assert (audit["kind"], audit["code"], audit["scope"], audit["player_id"]) == (
        "refusal", "invalid_request", "demo:api", player)


async def test_player_id_as_int(client, gateway, player):
    async with Unchanged(gateway):
        body = assert_problem(await client.post("/v1/wallet/debit", json=debit(player, player_id=12345)),
                              400, "invalid_request")
    assert "player_id" in body["detail"]


async def test_round_closed_wrong_type(client, gateway, player):
    bet = new_id("bet")
    assert (await client.post("/v1/wallet/debit", json=debit(player, transaction_id=bet))).status_code == 200
    async with Unchanged(gateway):
        body = assert_problem(await client.post("/v1/wallet/credit", json={
            "transaction_id": new_id("win"), "player_id": player, "currency": "EUR", "amount_minor": 100,
            "round_id": "r1", "game_id": "g1", "bet_transaction_id": bet, "round_closed": "yes"}),
            400, "invalid_request")
    assert "round_closed" in body["detail"]


@pytest.mark.parametrize("missing", ["transaction_id", "player_id", "currency", "amount_minor", "round_id", "game_id"])
async def test_missing_field(client, gateway, player, missing):
    body = debit(player)
    del body[missing]
    async with Unchanged(gateway):
        problem = assert_problem(await client.post("/v1/wallet/debit", json=body), 400, "invalid_request")
    assert missing in problem["detail"] and "missing" in problem["detail"], problem


async def test_empty_object(client, gateway):
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/wallet/deposit", json={}), 400, "invalid_request")


async def test_empty_ids(client, gateway, player):
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/wallet/debit", json=debit(player, transaction_id="")),
                       400, "invalid_request")
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/wallet/debit", json=debit(player, transaction_id="x" * 129)),
                       400, "invalid_request")
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/wallet/debit", json=debit(player, round_id="has space")),
                       400, "invalid_request")


# ---- amounts --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/wallet/debit", "/v1/wallet/deposit", "/v1/wallet/withdraw"])
@pytest.mark.parametrize("amount", [0, -1, -100, AMOUNT_MINOR_MAX + 1, 2**53, 2**63 - 1, 2**63, 2**64, 10**30])
async def test_amount_out_of_range(client, gateway, player, path, amount):
    body = debit(player, amount_minor=amount)
    if not path.endswith("debit"):
        body = {k: body[k] for k in ("transaction_id", "player_id", "currency", "amount_minor")}
    async with Unchanged(gateway):
        problem = assert_problem(await client.post(path, json=body), 400, "invalid_amount")
    assert "detail" in problem
    audit = await last_audit(gateway)
    assert (audit["kind"], audit["code"], audit["player_id"]) == ("refusal", "invalid_amount", player)


async def test_credit_amount_negative_and_huge(client, gateway, player):
    bet = new_id("bet")
    assert (await client.post("/v1/wallet/debit", json=debit(player, transaction_id=bet))).status_code == 200
    for amount in (-1, AMOUNT_MINOR_MAX + 1, 2**63):
        async with Unchanged(gateway):
            assert_problem(await client.post("/v1/wallet/credit", json={
                "transaction_id": new_id("win"), "player_id": player, "currency": "EUR",
                "amount_minor": amount, "round_id": "r1", "game_id": "g1", "bet_transaction_id": bet}),
                400, "invalid_amount")


async def test_amount_at_maximum_is_accepted(client, gateway):
    """The boundary itself is valid: amount_minor_max is inclusive."""
    player = await new_player(client)
    r = await client.post("/v1/wallet/deposit", json={
        "transaction_id": new_id("dep"), "player_id": player, "currency": "EUR", "amount_minor": AMOUNT_MINOR_MAX})
    assert r.status_code == 200, r.text
    assert r.json()["cash_minor"] == AMOUNT_MINOR_MAX


# ---- currencies and players -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/wallet/debit", "/v1/wallet/deposit"])
async def test_unknown_currency(client, gateway, player, path):
    body = debit(player, currency="XXX")
    if path.endswith("deposit"):
        body = {k: body[k] for k in ("transaction_id", "player_id", "currency", "amount_minor")}
    async with Unchanged(gateway):
        problem = assert_problem(await client.post(path, json=body), 400, "unknown_currency")
    assert "XXX" in problem["detail"]


async def test_unknown_currency_on_rollback_and_player_creation(client, gateway, player):
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/wallet/rollback", json={
            "transaction_id": new_id("rb"), "player_id": player, "reference_transaction_id": new_id("x"),
            "currency": "XXX"}), 400, "unknown_currency")
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/players", json={
            "player_id": new_id("p"), "currencies": ["EUR", "XXX"], "country": "MT"}), 400, "unknown_currency")


@pytest.mark.parametrize("currency", ["eur", "EU", "EURO1", "€", ""])
async def test_malformed_currency(client, gateway, player, currency):
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/wallet/debit", json=debit(player, currency=currency)),
                       400, "invalid_request")


async def test_currency_the_player_lacks(client, gateway, player):
    txn = new_id("bet")
    async with Unchanged(gateway):
        problem = assert_problem(await client.post("/v1/wallet/debit", json=debit(player, transaction_id=txn,
                                                                                   currency="USD")),
                                 422, "currency_mismatch")
    assert "USD" in problem["detail"]
    audit = await last_audit(gateway)
    assert (audit["kind"], audit["transaction_id"], audit["code"]) == ("debit", txn, "currency_mismatch")
    # The key was not consumed: the same id in the right currency still works.
    r = await client.post("/v1/wallet/debit", json=debit(player, transaction_id=txn))
    assert r.status_code == 200 and r.json()["cash_minor"] == 900 and r.json()["replayed"] is False


async def test_deposit_in_currency_the_player_lacks(client, gateway, player):
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/wallet/deposit", json={
            "transaction_id": new_id("dep"), "player_id": player, "currency": "GBP", "amount_minor": 100}),
            422, "currency_mismatch")


@pytest.mark.parametrize("path", ["/v1/wallet/debit", "/v1/wallet/credit", "/v1/wallet/rollback",
                                  "/v1/wallet/deposit", "/v1/wallet/withdraw"])
async def test_unknown_player(client, gateway, path):
    ghost = new_id("ghost")
    body = {"transaction_id": new_id("t"), "player_id": ghost, "currency": "EUR", "amount_minor": 100,
            "round_id": "r1", "game_id": "g1"}
    if path.endswith("rollback"):
        body = {"transaction_id": body["transaction_id"], "player_id": ghost,
                "reference_transaction_id": new_id("bet")}
    elif path.endswith(("deposit", "withdraw")):
        body = {k: body[k] for k in ("transaction_id", "player_id", "currency", "amount_minor")}
    async with Unchanged(gateway):
        problem = assert_problem(await client.post(path, json=body), 404, "unknown_player")
    assert problem["player_id"] == ghost


async def test_balance_of_unknown_player(client, gateway):
    async with Unchanged(gateway, audit_rows=0):
        assert_problem(await client.get(f"/v1/players/{new_id('ghost')}/balance"), 404, "unknown_player")


async def test_create_player_twice_with_other_currencies(client, gateway, player):
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/players", json={
            "player_id": player, "currencies": ["USD"], "country": "MT"}), 409, "player_exists")


@pytest.mark.parametrize("template", ["{id} space", "{id}/slash", "{id}-ünïcode", "", "x" * 65, "{id};semi",
                                      "{id}'quote", "{id}\nnewline", "{id}\n", "{id}\t", "\n{id}"])
async def test_bad_player_id_characters(client, gateway, template):
    bad = template.format(id=new_id("p"))  # unique, so that a wrongly accepted id cannot leak into other tests
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/players", json={
            "player_id": bad, "currencies": ["EUR"], "country": "MT"}), 400, "invalid_request")
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/wallet/deposit", json={
            "transaction_id": new_id("dep"), "player_id": bad, "currency": "EUR", "amount_minor": 100}),
            400, "invalid_request")


@pytest.mark.parametrize("template", ["{id}%20space", "{id}%3Bsemi", "{id}%C3%BCnicode", "x" * 65, "{id}%0A"])
async def test_bad_player_id_in_path(client, gateway, template):
    bad = template.format(id=new_id("p"))
    async with Unchanged(gateway, audit_rows=0):
        assert_problem(await client.get(f"/v1/players/{bad}/balance"), 400, "invalid_request")


@pytest.mark.parametrize("template", ["{id}\n", "{id} space", "{id}\x01", "\n{id}"])
async def test_bad_transaction_id_characters(client, gateway, player, template):
    bad = template.format(id=new_id("bet"))
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/wallet/debit", json=debit(player, transaction_id=bad)),
                       400, "invalid_request")


async def test_bad_country(client, gateway):
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/players", json={
            "player_id": new_id("p"), "currencies": ["EUR"], "country": "Malta"}), 400, "invalid_request")
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/players", json={
            "player_id": new_id("p"), "currencies": [], "country": "MT"}), 400, "invalid_request")


async def test_unknown_provider_for_session(client, gateway, player):
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/sessions", json={
            "player_id": player, "currency": "EUR", "provider": "nope", "game_id": "g1"}), 400, "unknown_provider")


# ---- body size ------------------------------------------------------------------------


async def test_oversize_body(client, gateway, player):
    body = debit(player, game_id="g" * 100)
    body["padding"] = "x" * (BODY_BYTES_MAX + 1)
    content = json.dumps(body).encode()
    assert len(content) > BODY_BYTES_MAX
    async with Unchanged(gateway):
        problem = assert_problem(await raw_post(client, "/v1/wallet/debit", content), 413, "payload_too_large")
    assert str(BODY_BYTES_MAX) in problem["detail"]


async def test_oversize_body_chunked(client, gateway, player):
    """No Content-Length: the limit is enforced while streaming."""

    async def chunks():
        yield b'{"transaction_id": "x", "padding": "'
        for _ in range(20):
            yield b"x" * 4_096
        yield b'"}'

    async with Unchanged(gateway):
        r = await client.post("/v1/wallet/deposit", content=chunks(), headers={"Content-Type": "application/json"})
        assert "content-length" not in r.request.headers
        assert_problem(r, 413, "payload_too_large")


async def test_body_just_under_the_limit_is_decoded(client, gateway, player):
    """A body inside the limit is read and judged on its content (unknown field is ignored)."""
    body = debit(player)
    body["padding"] = ""
    pad = BODY_BYTES_MAX - len(json.dumps(body).encode())
    body["padding"] = "x" * pad
    content = json.dumps(body).encode()
    assert len(content) == BODY_BYTES_MAX
    r = await raw_post(client, "/v1/wallet/debit", content)
    assert r.status_code == 200, r.text
    assert r.json()["cash_minor"] == 900


# ---- authentication -------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong-key"}, {"Authorization": f"Basic {API_KEY}"},
    {"Authorization": API_KEY}, {"Authorization": "Bearer"}, {"Authorization": f"Bearer {API_KEY}x"},
])
async def test_unauthorized_write(gateway, headers):
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=10.0) as anon, Unchanged(gateway):
        assert_problem(await anon.post("/v1/wallet/deposit", json={
            "transaction_id": new_id("dep"), "player_id": new_id("p"), "currency": "EUR",
            "amount_minor": 100}), 401, "unauthorized")
    audit = await last_audit(gateway)
    assert (audit["kind"], audit["code"]) == ("refusal", "unauthorized")


async def test_unauthorized_read(client, gateway, player):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10.0) as anon, Unchanged(gateway, audit_rows=0):
        assert_problem(await anon.get(f"/v1/players/{player}/balance"), 401, "unauthorized")


async def test_unauthorized_is_checked_before_the_body(gateway):
    """A request without a key gets 401 even when its body is also bad."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10.0) as anon, Unchanged(gateway):
        assert_problem(await anon.post("/v1/wallet/debit", content=b"{broken",
                                       headers={"Content-Type": "application/json"}), 401, "unauthorized")


# ---- routing --------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [("GET", "/v1/nope"), ("GET", "/"), ("POST", "/v1/wallet/steal"),
                                         ("GET", "/v1/players/x/balance/extra")])
async def test_unknown_route(client, gateway, method, path):
    async with Unchanged(gateway, audit_rows=0):
        problem = assert_problem(await client.request(method, path), 404, "not_found")
    assert path in problem["detail"]


@pytest.mark.parametrize("method,path", [("GET", "/v1/wallet/debit"), ("PUT", "/v1/wallet/deposit"),
                                         ("DELETE", "/v1/players"), ("POST", "/v1/players/x/balance")])
async def test_wrong_method(client, gateway, method, path):
    async with Unchanged(gateway, audit_rows=0):
        r = await client.request(method, path)
    problem = assert_problem(r, 405, "method_not_allowed")
    assert method in problem["detail"]
    assert r.headers["allow"], r.headers


# ---- audit fidelity of edge refusals --------------------------------------------------


@pytest.mark.parametrize("case", ["unknown_currency", "payload_too_large"])
async def test_audit_records_the_answered_code(client, gateway, player, case):
    """The audit record's outcome is the code the caller was answered."""
    if case == "unknown_currency":
        r = await client.post("/v1/wallet/debit", json=debit(player, currency="XXX"))
    else:
        r = await raw_post(client, "/v1/wallet/debit", b"x" * (BODY_BYTES_MAX + 1))
    answered = r.json()["code"]
    assert answered == case
    audit = await last_audit(gateway)
    assert audit["kind"] == "refusal"
    assert audit["code"] == answered, dict(audit)


# ---- service endpoints ----------------------------------------------------------------


async def test_openapi(client):
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = json.loads(r.content)
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= V1_PATHS, set(doc["paths"])
    assert {p for p in doc["paths"] if p.startswith("/v1")} == V1_PATHS
    assert set(doc["paths"]["/v1/wallet/debit"]) == {"post"}
    assert set(doc["paths"]["/v1/players/{player_id}/balance"]) == {"get"}


async def test_health_and_readiness(gateway):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10.0) as anon:  # no API key needed
        r = await anon.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "alive"}
        r = await anon.get("/readyz")
        assert r.status_code == 200 and r.json() == {"status": "ready"}


async def test_metrics(client, player):
    # Make sure a batch has committed and a request has been counted.
    assert (await client.post("/v1/wallet/debit", json=debit(player))).status_code == 200
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    samples = dict(line.rsplit(" ", 1) for line in lines if line and not line.startswith("#"))
    assert 'gateway_requests_total{code="ok",outcome="200",provider="",route="POST /v1/wallet/debit"}' in samples, r.text[:2000]
    assert float(samples['gateway_requests_total{code="ok",outcome="200",provider="",route="POST /v1/wallet/debit"}']) >= 1
    assert float(samples['gateway_batch_size_commands_count{shard="0"}']) >= 1
    assert float(samples['gateway_shard_players_resident{shard="0"}']) >= 1
    assert "# TYPE gateway_batch_size_commands histogram" in lines
