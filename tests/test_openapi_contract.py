"""Contract = server (issue "security and robustness", item 6).

1. schemathesis over the whole generic API. The schema is loaded from the running test
   gateway's ``/openapi.json`` (asked with the sandbox partner's key, so a session's
   ``provider`` is the enum of its own integrations); every operation gets positive and
   negative cases (the examples, coverage and fuzzing phases), then a bounded stateful run
   along the links schemathesis infers, with every check enabled (``max_response_time``
   too, at 5 s) at zero failures. One check is configured, not switched off:
   ``positive_data_acceptance`` also expects, per operation, the statuses of the refusals
   that depend on what the gateway holds (``STATE_DEPENDENT``), as it already expects
   404/409 by default.
2. HTTP tests of what the contract promises: 405 with ``Allow`` on a known path, 415 for a
   write that is not JSON, the replay (200, ``replayed: true``) of ``POST /v1/players``, and
   the settings-dependent parts of the document.

Random data creates players, sessions and money in the shared test gateway; the ``gateway``
fixture still checks the ledger's invariants after each test, and the gateway's log must
hold no ``undocumented_answer`` (an answer outside ``problems.ROUTES``).

Bounded for 2 cores: ``FUZZ_EXAMPLES`` fuzzed cases per operation (plus the coverage
phase's deterministic boundary cases, about 1,300 requests in all, 20-40 s); with
``CI=true`` generation is derandomized, so CI runs are reproducible.
"""

from __future__ import annotations

import importlib.util
import json
import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import PositiveDataAcceptanceConfig, SchemathesisConfig

from gateway import money
from gateway.edge.problems import HTTP_STATUS, ROUTES
from tests.conftest import API_KEY, AUTH, RIVAL_AUTH, new_id, new_player
from tests.test_api_bad_input import AMOUNT_MINOR_MAX, BODY_BYTES_MAX, Unchanged, assert_problem, last_audit

if importlib.util.find_spec("_pytest.nodeid") is not None and not hasattr(pytest.Item, "_nodeid"):
    # schemathesis 4.32 renames the running item after each operation through ``_nodeid``,
    # which pytest 9.2 replaced by a structured id: read it, and keep pytest's own on write.
    pytest.Item._nodeid = property(lambda item: item.nodeid, lambda item, value: None)  # type: ignore[attr-defined]

FUZZ_EXAMPLES = 20
STATEFUL_EXAMPLES = 10
STATEFUL_STEPS = 6
RESPONSE_TIME_MAX_S = 5.0
CI = os.environ.get("CI") == "true"

# ---- 1. schemathesis -------------------------------------------------------------------


#: A schema-valid request refused because of what the gateway holds, not because of its
#: shape: the player's wallets, its balance, its limits (a JSON Schema cannot say "a wallet
#: in this currency" or "at most the balance"). positive_data_acceptance already expects
#: this of 404 (unknown player) and 409 (player exists, key reused); these codes answer with
#: 402 and 422. Added per operation, for the codes its row in problems.ROUTES lists, so that
#: any other refusal of valid data (a 400, 413, 415, ...) still fails the check.
STATE_DEPENDENT = frozenset({"currency_mismatch", "insufficient_funds", "limit_reached", "deposit_limit_reached",
                             "loss_limit_reached", "wager_limit_reached", "player_excluded",
                             "exclusion_period_not_offered"})
POSITIVE_EXPECTED = PositiveDataAcceptanceConfig().expected_statuses


def _state_dependent_statuses() -> list[dict]:
    operations = []
    for key, contract in ROUTES.items():
        statuses = sorted({HTTP_STATUS[code] for code in contract.codes if code in STATE_DEPENDENT})
        if statuses:
            operations.append({
                "include-name": key,  # the operation's label, "POST /v1/wallet/debit"
                "checks": {"positive_data_acceptance": {
                    "expected-statuses": [*POSITIVE_EXPECTED, *map(str, statuses)]}},
            })
    return operations


def _config(base_url: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "base-url": base_url,
        "request-timeout": 10.0,
        "auth": {"openapi": {"bearer": {"bearer": API_KEY}}},
        "generation": {
            "mode": "all",  # positive and negative cases
            "max-examples": FUZZ_EXAMPLES,
            "deterministic": CI,
            "database": "none",
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": True, "max-steps": STATEFUL_STEPS},
        },
        "checks": {"enabled": True, "max_response_time": RESPONSE_TIME_MAX_S},
        "operations": _state_dependent_statuses(),
    })


def _undocumented_answers(gateway) -> list[str]:
    return [line for line in gateway.log_path.read_text(errors="replace").splitlines() if "undocumented_answer" in line]


@pytest.fixture
def api_schema(gateway):
    yield schemathesis.openapi.from_url(
        f"{gateway.url}/openapi.json", headers=AUTH, config=_config(gateway.url),
    )
    assert not _undocumented_answers(gateway), _undocumented_answers(gateway)[:5]


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, derandomize=CI, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms(case):
    case.call_and_validate()


def test_api_stateful(api_schema):
    """Sequences of calls along the links schemathesis infers (a created player's id into the
    other operations), every check on each step."""
    machine = api_schema.as_state_machine()
    machine.run(settings=settings(max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS,
                                  derandomize=CI, deadline=None, database=None,
                                  suppress_health_check=list(HealthCheck)))


# ---- 2. what the contract promises, over HTTP ------------------------------------------


async def _document(gateway, headers: dict[str, str] | None = None) -> dict:
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers or {}, timeout=10.0) as http:
        r = await http.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json"), r.text[:500]
    return json.loads(r.content)


def _operations(doc: dict):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield f"{method.upper()} {path}", op


async def test_document_lists_every_status_of_each_route(gateway):
    doc = await _document(gateway, AUTH)
    documented = {key: op for key, op in _operations(doc) if key in ROUTES}
    assert set(documented) == set(ROUTES)
    for key, op in documented.items():
        contract = ROUTES[key]
        assert {int(s) for s in op["responses"]} == contract.statuses(), key
        for status, codes in contract.problems_by_status().items():
            schema = op["responses"][str(status)]["content"]["application/problem+json"]["schema"]
            assert schema["properties"]["code"]["enum"] == list(codes), (key, status)
        for status in (405, 429, 503):
            headers = op["responses"][str(status)]["headers"]
            assert headers["Allow" if status == 405 else "Retry-After"]["required"] is True, (key, status)
    # Writes: 413 and 415; the path-parameter routes: 404 not_found too.
    assert {"413", "415"} <= set(documented["POST /v1/wallet/debit"]["responses"])
    assert "413" not in documented["GET /v1/players/{player_id}/balance"]["responses"]
    assert documented["POST /v1/players"]["responses"].keys() >= {"200", "201", "409"}


async def test_document_states_the_enforced_bounds(gateway):
    doc = await _document(gateway, AUTH)
    schemas = doc["components"]["schemas"]
    assert schemas["Funds"]["properties"]["currency"]["enum"] == sorted(money.CURRENCY_EXPONENTS)
    assert schemas["CreatePlayer"]["properties"]["currencies"]["items"]["enum"] == sorted(money.CURRENCY_EXPONENTS)
    assert schemas["CreatePlayer"]["properties"]["currencies"]["minItems"] == 1
    assert schemas["CreatePlayer"]["properties"]["currencies"]["maxItems"] == 16
    assert schemas["PlayerStatus"]["properties"]["status"]["enum"] == ["active", "blocked", "self_excluded"]
    for name, minimum in (("Funds", 1), ("Withdraw", 1), ("Debit", 1), ("Credit", 0)):
        amount = schemas[name]["properties"]["amount_minor"]
        assert (amount["type"], amount["minimum"], amount["maximum"]) == ("integer", minimum, AMOUNT_MINOR_MAX), name
    assert schemas["Withdraw"]["properties"]["bonus"]["enum"] == [False]
    transaction_id = schemas["Debit"]["properties"]["transaction_id"]
    assert (transaction_id["minLength"], transaction_id["maxLength"]) == (1, 128)
    (param,) = doc["paths"]["/v1/players/{player_id}/balance"]["get"]["parameters"]
    assert param["schema"]["pattern"] == "^[A-Za-z0-9_.@-]{1,64}$"
    # No pattern keeps Python's \\Z, which ECMA-262 (JSON Schema's regexes) reads as a "Z".
    assert "\\\\Z" not in json.dumps(doc)


async def test_document_names_only_the_callers_own_integrations(gateway):
    """A session's ``provider`` is one of the caller's integrations: the document built
    with its key says which; without a key it names none (they are other partners' too)."""
    demo = (await _document(gateway, AUTH))["components"]["schemas"]["Session"]["properties"]["provider"]
    rival = (await _document(gateway, RIVAL_AUTH))["components"]["schemas"]["Session"]["properties"]["provider"]
    anonymous = (await _document(gateway))["components"]["schemas"]["Session"]["properties"]["provider"]
    assert sorted(demo["enum"]) == ["evolution", "hub88", "pragmatic", "softswiss"]
    assert sorted(rival["enum"]) == ["evolution-rival", "hub88-rival"]
    assert "enum" not in anonymous
    # What the document says is what the server does.
    async with httpx.AsyncClient(base_url=gateway.url, headers=AUTH, timeout=10.0) as client:
        player = await new_player(client)
        for provider, status in (("hub88", 201), ("hub88-rival", 400)):
            r = await client.post("/v1/sessions", json={"player_id": player, "currency": "EUR", "provider": provider,
                                                        "game_id": "g1"})
            assert r.status_code == status, r.text


# 405: a wrong method on a known path (404 stays for unknown paths: test_api_bad_input).


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/v1/wallet/debit", {"POST"}),
    ("PUT", "/v1/wallet/deposit", {"POST"}),
    ("DELETE", "/v1/players", {"POST"}),
    ("PATCH", "/v1/sessions", {"POST"}),
    ("POST", "/v1/players/p-1/balance", {"GET", "HEAD"}),
    ("GET", "/v1/players/p-1/status", {"POST"}),
    ("DELETE", "/healthz", {"GET", "HEAD"}),
    ("POST", "/openapi.json", {"GET", "HEAD"}),
])
async def test_wrong_method_is_405_with_allow(client, gateway, method, path, allow):
    async with Unchanged(gateway, audit_rows=0):  # no route, no partner: nothing to audit
        r = await client.request(method, path, json={})
    problem = assert_problem(r, 405, "method_not_allowed")
    assert {m.strip() for m in r.headers["allow"].split(",")} == allow, r.headers
    assert method in problem["detail"] and path in problem["detail"], problem


async def test_wrong_method_is_405_without_a_key(gateway):
    """Routing comes first: the method is wrong whoever asks."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10.0) as anon:
        r = await anon.get("/v1/wallet/credit")
    assert_problem(r, 405, "method_not_allowed")


# 415: a write whose body is not application/json.


def _deposit(player: str) -> bytes:
    return json.dumps({"transaction_id": new_id("dep"), "player_id": player, "currency": "EUR",
                       "amount_minor": 100}).encode()


@pytest.mark.parametrize("content_type", [
    None, "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/jsonx", "application/json-patch+json", "text/json", "application/xml",
])
async def test_write_that_is_not_json_is_415(client, gateway, content_type):
    """JSON is the only media type of a write; without a Content-Type a body is not JSON
    either. Refused before the body is read, and audited like the other edge refusals."""
    player = await new_player(client)
    headers = {} if content_type is None else {"Content-Type": content_type}
    async with Unchanged(gateway):
        r = await client.post("/v1/wallet/deposit", content=_deposit(player), headers=headers)
        if content_type is None:
            assert "content-type" not in r.request.headers
    problem = assert_problem(r, 415, "unsupported_media_type")
    assert "application/json" in problem["detail"]
    audit = await last_audit(gateway)
    # The shard's codes have no unsupported_media_type: it is audited as invalid_request,
    # naming the code and the media type sent.
    assert (audit["kind"], audit["code"], audit["scope"]) == ("refusal", "invalid_request", "demo:api")
    record = json.loads(audit["record"]) if isinstance(audit["record"], str) else audit["record"]
    assert "unsupported_media_type" in json.dumps(record)
    assert json.dumps((content_type or "")[:256]) in json.dumps(record)


@pytest.mark.parametrize("path", ["/v1/players", "/v1/players/p-1/status", "/v1/sessions", "/v1/wallet/debit",
                                  "/v1/wallet/credit", "/v1/wallet/rollback", "/v1/wallet/withdraw"])
async def test_every_write_requires_json(client, gateway, path):
    async with Unchanged(gateway):
        r = await client.post(path, content=b"player_id=p-1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_problem(r, 415, "unsupported_media_type")


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON", "application/json;charset=UTF-8"])
async def test_json_with_parameters_is_accepted(client, content_type):
    player = await new_player(client)
    r = await client.post("/v1/wallet/deposit", content=_deposit(player), headers={"Content-Type": content_type})
    assert r.status_code == 200, r.text
    assert r.json()["cash_minor"] == 100


async def test_415_comes_after_authentication(gateway):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10.0) as anon, Unchanged(gateway):
        r = await anon.post("/v1/wallet/deposit", content=b"x", headers={"Content-Type": "text/plain"})
    assert_problem(r, 401, "unauthorized")


async def test_415_comes_before_the_body_is_read(client, gateway):
    """An oversize body of another media type is refused for its media type: not read."""
    async with Unchanged(gateway):
        r = await client.post("/v1/wallet/deposit", content=b"x" * (BODY_BYTES_MAX + 1),
                              headers={"Content-Type": "text/plain"})
    assert_problem(r, 415, "unsupported_media_type")


async def test_reads_need_no_content_type(client):
    player = await new_player(client)
    r = await client.get(f"/v1/players/{player}/balance", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text


# The replay of POST /v1/players.


async def test_create_player_again_is_a_replay(client, gateway):
    player_id = new_id("p")
    body = {"player_id": player_id, "currencies": ["EUR", "USD"], "country": "MT"}
    created = await client.post("/v1/players", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["replayed"] is False
    async with Unchanged(gateway):  # the audit records the repeated request; nothing else changes
        again = await client.post("/v1/players", json={**body, "currencies": ["USD", "EUR", "USD"]})
    assert again.status_code == 200, again.text
    assert again.json() == {**created.json(), "replayed": True}
    # Other currencies or another country are not the same player.
    for other in ({**body, "currencies": ["EUR"]}, {**body, "country": "DE"}):
        assert_problem(await client.post("/v1/players", json=other), 409, "player_exists")
    # The document says so.
    responses = (await _document(gateway, AUTH))["paths"]["/v1/players"]["post"]["responses"]
    assert "replayed" in responses["200"]["description"]
    assert responses["200"]["content"]["application/json"]["schema"]["properties"]["replayed"]["enum"] == [True]
    assert responses["201"]["content"]["application/json"]["schema"]["properties"]["replayed"]["enum"] == [False]


async def test_rollback_naming_itself_is_a_conflict(client, gateway):
    """Schema-valid, never applicable: its own id is the referenced bet's key. The same
    answer whether a bet holds that key or not (schemathesis found the 400 of the latter)."""
    player = await new_player(client, deposit_minor=1_000)
    bet = new_id("bet")
    r = await client.post("/v1/wallet/debit", json={"transaction_id": bet, "player_id": player, "currency": "EUR",
                                                    "amount_minor": 100, "round_id": "r1", "game_id": "g1"})
    assert r.status_code == 200, r.text
    for txn in (new_id("never-seen"), bet):
        async with Unchanged(gateway):
            problem = assert_problem(await client.post("/v1/wallet/rollback", json={
                "transaction_id": txn, "player_id": player, "reference_transaction_id": txn}), 409, "idempotency_conflict")
        assert problem["field"] == "reference_transaction_id", problem
    # The bet is still open: a real rollback of it works.
    r = await client.post("/v1/wallet/rollback", json={"transaction_id": new_id("rb"), "player_id": player,
                                                       "reference_transaction_id": bet})
    assert r.status_code == 200 and r.json()["cash_minor"] == 1_000, r.text


async def test_session_with_unknown_currency(client, gateway):
    """Schemathesis found this one: a well-formed unknown currency was 422 currency_mismatch
    here, 400 unknown_currency everywhere else."""
    player = await new_player(client)
    async with Unchanged(gateway):
        assert_problem(await client.post("/v1/sessions", json={
            "player_id": player, "currency": "XXX", "provider": "hub88", "game_id": "g1"}), 400, "unknown_currency")


async def test_status_reason_with_nul_is_refused_at_the_edge(client, gateway):
    player = await new_player(client)
    async with Unchanged(gateway):
        assert_problem(await client.post(f"/v1/players/{player}/status", json={"status": "blocked", "reason": "a\x00b"}),
                       400, "invalid_request")
    audit = await last_audit(gateway)
    assert (audit["kind"], audit["code"], audit["player_id"]) == ("refusal", "invalid_request", player)
