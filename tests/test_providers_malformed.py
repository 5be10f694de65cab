"""Malformed input on every provider protocol: never an HTTP 500, never a ledger write.

Sources: docs/DESIGN.md section 8 ("Bad input gets a clear 4xx ... never a 500, and
changes nothing but the audit record") and each adapter's README ("Protocol facts" in
gateway/providers/<name>/README.md: transport, endpoints and authentication). For every endpoint of every adapter
(``PROTOCOLS``, ``CASES``), bodies are fuzzed with hypothesis -- raw bytes (``st.binary()``), random
JSON values, random form data, templates with one field replaced by a value of any type,
invalid amounts on a real player's bet -- and sent both **validly signed** (so the decoder,
not the signature check, is exercised) and unsigned. Fixed cases add wrong content types,
wrong methods, huge numbers, deep nesting, oversize bodies with and without a
Content-Length, and characters PostgreSQL cannot store (NUL, a lone surrogate) in every
string field -- which once stopped the shard (a batch that fails stops it) and the process.

Templates name nobody (``GHOST``), so a request that happens to be well formed is refused by
the wallet, not applied; only the invalid-amount and control-character tests use a real
player with a live session, on fields no reading can accept.

The module runs its own gateway process (``malformed_gateway``): a request that kills it
fails its own test, and the next test gets a restarted process, so one crash cannot turn
the rest of the suite red.

Each answer must be:

* an HTTP status other than 500, below 500 except a 503 (the documented retryable status
  of an overloaded gateway; SoftSwiss lists it among its codes);
* not the protocol's *retryable* status (Hub88 ``RS_ERROR_UNKNOWN``, Evolution
  ``TEMPORARY_ERROR`` / ``OPERATION_IN_PROCESS``, Pragmatic error ``100``): that is what an
  adapter's catch-all answers when something broke, and it makes the provider retry the
  garbage for days -- bad input must get a final refusal (docs/DESIGN.md section 8);

and the count of rows in ``transactions`` and ``entries`` must not change (checked around
every single request, on one asyncpg connection). Audit rows may grow: refusals are audited.

Signing, as each provider does it ("Signature" / "Hash" in each adapter's README):

* Hub88: ``X-Hub88-Signature`` = base64 RSA-SHA256 of the raw body, demo key
  ``config/keys/hub88-demo-private.pem``;
* Evolution: ``authToken`` query parameter = ``evolution-demo-auth-token`` (no body
  signature; "unsigned" = without it / a wrong one);
* Pragmatic: form parameter ``hash`` = md5 of the other parameters sorted by name, joined
  ``k=v&k=v``, with ``pragmatic-demo-secret`` appended. Raw byte bodies cannot be signed
  (there are no parameters to sort): they are sent as they are;
* SoftSwiss: ``X-REQUEST-SIGN`` = hex HMAC-SHA256 of the raw body, key
  ``softswiss-demo-auth-token``.

Hypothesis example counts are modest (``FUZZ_EXAMPLES``, default 10 per strategy and
endpoint; each example is sent signed and unsigned) and derandomized when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT, GatewayProcess, check_ledger, new_id, new_player

BODY_BYTES_MAX = 65_536  # config/default.toml [server] body_bytes_max
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# ---- signing ------------------------------------------------------------------------------

HUB88_KEY = cast(rsa.RSAPrivateKey, serialization.load_pem_private_key(
    (Path(ROOT) / "config" / "keys" / "hub88-demo-private.pem").read_bytes(), None))  # an RSA demo key
EVOLUTION_AUTH_TOKEN = "evolution-demo-auth-token"
PRAGMATIC_SECRET = "pragmatic-demo-secret"
PRAGMATIC_PROVIDER_ID = "PragmaticPlay"
SOFTSWISS_KEY = b"softswiss-demo-auth-token"


def hub88_signature(body: bytes) -> str:
    """gateway/providers/hub88/README.md, "Signature": base64(RSA-SHA256 PKCS#1 v1.5 over the raw body)."""
    return base64.b64encode(HUB88_KEY.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def softswiss_signature(body: bytes) -> str:
    """gateway/providers/softswiss/README.md, "Signature": hex HMAC-SHA256 of the raw body, the auth token as key."""
    return hmac.new(SOFTSWISS_KEY, body, hashlib.sha256).hexdigest()


def pragmatic_hash(params: list[tuple[str, str]]) -> str:
    """gateway/providers/pragmatic/README.md, "Hash": md5 of the other parameters sorted by name, ``k=v&k=v``,
    with the secret appended directly."""
    text = "&".join(f"{k}={v}" for k, v in sorted(params, key=lambda kv: kv[0]) if k != "hash")
    return hashlib.md5((text + PRAGMATIC_SECRET).encode("utf-8", "surrogatepass")).hexdigest()


def form_bytes(params: list[tuple[str, str]], *, signed: bool) -> bytes:
    """URL-encoded form of ``params``, with the Pragmatic ``hash`` appended when ``signed``."""
    params = [(k, v) for k, v in params if k != "hash"] if signed else list(params)
    if signed:
        params.append(("hash", pragmatic_hash(params)))
    return urlencode(params, encoding="utf-8", errors="surrogatepass").encode("ascii")


# ---- the protocols ----------------------------------------------------------------------

JSON_CT = "application/json"
FORM_CT = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Who:
    """Whose request a template is: a real player with a live session, or nobody."""

    player_id: str
    token: str
    currency: str = "EUR"


GHOST = Who(player_id="ghost-malformed-player", token="ghost-malformed-token")


@dataclass(frozen=True)
class Protocol:
    """How one provider speaks: endpoints, body format, authentication, request templates.

    ``templates(who)`` maps each endpoint to a well-formed request body (a dict: JSON
    protocols; a dict of str for form protocols). ``bet`` names the endpoint and the path of
    the amount inside its template, for the invalid-amount fuzz on a real player.
    """

    name: str
    endpoints: tuple[str, ...]
    form: bool
    templates: Callable[[Who], dict[str, dict[str, Any]]]
    bet: tuple[str, tuple[Any, ...]]
    bad_amounts: st.SearchStrategy
    #: Paths of the ids a bet stores (transaction, round, game): the control-character test.
    bet_ids: tuple[tuple[Any, ...], ...] = ()
    retryable_statuses: frozenset[str] = field(default_factory=frozenset)

    @property
    def prefix(self) -> str:
        return f"/providers/{self.name}"

    @property
    def content_type(self) -> str:
        return FORM_CT if self.form else JSON_CT

    def encode(self, payload: Any, *, signed: bool) -> bytes:
        """Body bytes of a payload in the protocol's format (form: signed = with ``hash``)."""
        if self.form:
            items = payload.items() if isinstance(payload, dict) else payload
            return form_bytes([(str(k), _form_value(v)) for k, v in items], signed=signed)
        return json.dumps(payload, separators=(",", ":"), allow_nan=True).encode()

    def request(self, endpoint: str, body: bytes, *, signed: bool) -> tuple[str, dict[str, str]]:
        """(URL, authentication headers) of a request; ``signed`` = valid credentials."""
        url = self.prefix + endpoint
        headers: dict[str, str] = {}
        if self.name == "hub88" and signed:
            headers["X-Hub88-Signature"] = hub88_signature(body)
        elif self.name == "softswiss" and signed:
            headers["X-REQUEST-SIGN"] = softswiss_signature(body)
        elif self.name == "evolution":
            url += "?authToken=" + (EVOLUTION_AUTH_TOKEN if signed else "wrong-auth-token")
        return url, headers

    def retryable(self, response: httpx.Response) -> str | None:
        """The protocol-level retryable status of a 200 answer, if that is what it is."""
        if response.status_code != 200 or not self.retryable_statuses:
            return None
        try:
            answer = response.json()
        except ValueError:
            return None
        if not isinstance(answer, dict):
            return None
        status = answer.get("error" if self.name == "pragmatic" else "status")
        return str(status) if str(status) in self.retryable_statuses else None


def _form_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _hub88_templates(who: Who) -> dict[str, dict[str, Any]]:
    common = {"request_uuid": new_id("rq"), "user": who.player_id, "token": who.token,
              "game_code": "malformed_slot"}
    money = {**common, "transaction_uuid": new_id("tx"), "supplier_transaction_id": "sup-1",
             "supplier_user": "sup-user", "round": new_id("rd"), "round_closed": False,
             "reward_uuid": None, "is_free": False, "is_aggregated": False, "currency": who.currency,
             "bet": "zero", "amount": 100_000, "meta": {"selection": "home_team"}}
    return {
        "/user/info": dict(common),
        "/user/balance": {**common, "supplier_user": "sup-user"},
        "/transaction/bet": money,
        "/transaction/win": {**money, "transaction_uuid": new_id("tx"),
                             "reference_transaction_uuid": new_id("tx"), "round_closed": True},
        "/transaction/rollback": {**common, "transaction_uuid": new_id("tx"),
                                  "reference_transaction_uuid": new_id("tx"), "round": new_id("rd"),
                                  "round_closed": False, "meta": None},
    }


def _evolution_templates(who: Who) -> dict[str, dict[str, Any]]:
    game = {"id": "malformed-game", "type": "blackjack",
            "details": {"table": {"id": "tbl-1", "vid": "vtbl-1"}}}
    base = {"sid": who.token, "userId": who.player_id, "uuid": new_id("rq")}
    money = {**base, "currency": who.currency, "game": game}

    def txn(amount: Any) -> dict[str, Any]:
        return {"id": new_id("tx"), "refId": new_id("ref"), "amount": amount}

    return {
        "/check": {**base, "channel": {"type": "P"}},
        "/sid": dict(base),
        "/balance": {**base, "currency": who.currency, "game": game},
        "/debit": {**money, "transaction": txn(1.5)},
        "/credit": {**money, "transaction": txn(2.5)},
        "/cancel": {**money, "transaction": txn(1.5)},
        "/promo_payout": {**money, "promoTransaction": {
            "type": "FreeRoundPlayableSpent", "id": new_id("promo"), "amount": 3.25,
            "voucherId": "v-1", "remainingRounds": 0}},
    }


def _pragmatic_templates(who: Who) -> dict[str, dict[str, Any]]:
    base = {"providerId": PRAGMATIC_PROVIDER_ID, "userId": who.player_id, "token": who.token}
    play = {**base, "gameId": "vs20malformed", "roundId": new_id("rd"), "amount": "1.50",
            "reference": new_id("ref"), "timestamp": "1700000000000", "roundDetails": "spin",
            "platform": "WEB"}
    return {
        "/authenticate.html": {"providerId": PRAGMATIC_PROVIDER_ID, "token": who.token,
                               "gameId": "vs20malformed", "platform": "WEB"},
        "/balance.html": dict(base),
        "/bet.html": dict(play),
        "/result.html": {**play, "reference": new_id("ref"), "amount": "2.50",
                         "promoWinAmount": "0.00"},
        "/bonusWin.html": {**base, "amount": "1.00", "reference": new_id("ref"),
                           "bonusCode": "bc-1", "timestamp": "1700000000000"},
        "/jackpotWin.html": {**play, "reference": new_id("ref"), "jackpotId": "jp-1",
                             "amount": "100.00"},
        "/promoWin.html": {**base, "amount": "5.00", "reference": new_id("ref"),
                           "campaignId": "c-1", "campaignType": "T", "currency": who.currency,
                           "timestamp": "1700000000000"},
        "/endRound.html": {**base, "gameId": "vs20malformed", "roundId": new_id("rd"),
                           "timestamp": "1700000000000"},
        "/refund.html": {**base, "reference": new_id("ref"), "gameId": "vs20malformed",
                         "roundId": new_id("rd"), "amount": "1.50", "timestamp": "1700000000000"},
        "/adjustment.html": {**play, "reference": new_id("ref"), "amount": "-0.50",
                             "validBetAmount": "0.50"},
        "/getBalancePerGame.html": {**base, "gameIdList": "vs20malformed,vs20other",
                                    "platform": "WEB"},
        "/sessionExpired.html": {**base, "sessionId": "pp-session-1", "playerId": who.player_id,
                                 "timestamp": "1700000000000"},
        "/roundDetails.html": {**base, "roundId": new_id("rd"), "gameId": "vs20malformed",
                               "smResult": "1,2,3", "gameCategory": "slots", "betMultiplier": "1"},
    }


def _softswiss_templates(who: Who) -> dict[str, dict[str, Any]]:
    base = {"user_id": who.player_id, "currency": who.currency, "game": "acme:malformed",
            "game_id": new_id("rd"), "finished": False}
    return {
        "/play": {**base, "actions": [{"action": "bet", "amount": 150, "action_id": new_id("a")}]},
        "/rollback": {**base, "actions": [{"action": "rollback", "action_id": new_id("a"),
                                           "original_action_id": new_id("a")}]},
        "/freespins": {"issue_id": new_id("fs"), "status": "played", "total_amount": 500,
                       "user_id": who.player_id, "currency": who.currency},
    }


# ---- value strategies ---------------------------------------------------------------------

#: Text some reading could take for a valid EUR amount (zero included, surrounding spaces
#: and a plus sign included): the amount fuzz never sends it.
_PLAIN_NUMBER = re.compile(r"\s*[+]?[0-9]*(\.[0-9]{0,2}0*)?\s*")


def _not_a_valid_amount_text(s: str) -> bool:
    """True unless ``s`` could read as a non-negative decimal exact in EUR cents."""
    return _PLAIN_NUMBER.fullmatch(s) is None


json_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
nasty_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["", " ", "null", "NaN", "Infinity", "-1", "1e999", "0x10", "1,00", "\x00",
                     "9" * 400, "-" * 10, "%00", "&", "=", "\ud800", "'; DROP TABLE players; --",
                     "x" * 5_000]),
)

#: Amounts no protocol may accept (never zero: some accept a zero stake or win).
common_bad_amounts = st.one_of(
    st.booleans(), st.none(),
    st.integers(max_value=-1),
    st.integers(min_value=10**20, max_value=10**40),
    st.text(max_size=20).filter(_not_a_valid_amount_text),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
#: Floats that are not whole numbers (NaN and infinities included): never integer subunits.
fractional_floats = st.floats(allow_nan=True, allow_infinity=True).filter(
    lambda f: f != f or f in (float("inf"), float("-inf")) or f != int(f))
decimal_bad_amounts = st.one_of(  # decimal major units: a 3rd fraction digit is inexact in EUR
    st.integers(min_value=1, max_value=10**6).filter(lambda n: n % 10).map(lambda n: n / 1000),
    st.floats(max_value=-0.01),
    st.floats(min_value=1e15, allow_infinity=True),
    st.just(float("nan")),
)

PROTOCOLS: dict[str, Protocol] = {
    "hub88": Protocol(
        name="hub88",
        endpoints=("/user/info", "/user/balance", "/transaction/bet", "/transaction/win",
                   "/transaction/rollback"),
        form=False, templates=_hub88_templates, bet=("/transaction/bet", ("amount",)),
        bad_amounts=st.one_of(  # x100000 integers: EUR must be a multiple of 1000
            common_bad_amounts,
            st.integers(min_value=1, max_value=10**9).filter(lambda n: n % 1000),
            fractional_floats, decimal_bad_amounts),
        bet_ids=(("transaction_uuid",), ("round",), ("game_code",)),
        retryable_statuses=frozenset({"RS_ERROR_UNKNOWN"}),
    ),
    "evolution": Protocol(
        name="evolution",
        endpoints=("/check", "/sid", "/balance", "/debit", "/credit", "/cancel", "/promo_payout"),
        form=False, templates=_evolution_templates, bet=("/debit", ("transaction", "amount")),
        bad_amounts=st.one_of(common_bad_amounts, decimal_bad_amounts),
        bet_ids=(("transaction", "id"), ("transaction", "refId"), ("game", "id")),
        retryable_statuses=frozenset({"TEMPORARY_ERROR", "OPERATION_IN_PROCESS"}),
    ),
    "pragmatic": Protocol(
        name="pragmatic",
        endpoints=("/authenticate.html", "/balance.html", "/bet.html", "/result.html",
                   "/bonusWin.html", "/jackpotWin.html", "/promoWin.html", "/endRound.html",
                   "/refund.html", "/adjustment.html", "/getBalancePerGame.html",
                   "/sessionExpired.html", "/roundDetails.html"),
        form=True, templates=_pragmatic_templates, bet=("/bet.html", ("amount",)),
        bad_amounts=st.one_of(
            st.text(max_size=20).filter(_not_a_valid_amount_text),
            st.sampled_from(["-1.00", "1.001", "1e3", "1E3", "NaN", "Infinity", "-Infinity", "",
                             " ", "0x10", "1,50", "1.5.0", "+-1", "9" * 40, "1_000", "١٢"]),
            st.integers(min_value=1, max_value=10**6).filter(lambda n: n % 10).map(
                lambda n: f"{n // 1000}.{n % 1000:03d}"),
        ),
        bet_ids=(("reference",), ("roundId",), ("gameId",)),
        retryable_statuses=frozenset({"100"}),
    ),
    "softswiss": Protocol(
        name="softswiss",
        endpoints=("/play", "/rollback", "/freespins"),
        form=False, templates=_softswiss_templates, bet=("/play", ("actions", 0, "amount")),
        bad_amounts=st.one_of(common_bad_amounts, fractional_floats),
        bet_ids=(("actions", 0, "action_id"), ("game_id",), ("game",)),
    ),
}

CASES = [(name, endpoint) for name, p in PROTOCOLS.items() for endpoint in p.endpoints]
CASE_IDS = [f"{name}{endpoint}" for name, endpoint in CASES]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indexes) into a template, leaves and containers."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, prefix + (index,))
    return found


_DELETE = object()


def _replaced(template: dict, path: tuple, value: Any) -> dict:
    """A deep copy of ``template`` with the value at ``path`` replaced (or deleted)."""
    body = copy.deepcopy(template)
    node = body
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


# ---- the gateway side ---------------------------------------------------------------------


@pytest.fixture(scope="module")
async def malformed_gateway(services, tmp_path_factory):
    """A gateway process of this module's own, on its own database.

    This suite exists to break gateways: if a request kills the process (e.g. a shard that
    stops on a database error), only this module's tests see it, and the next test gets a
    restarted process (``gateway``), so one crash fails one test, not the whole suite.
    """
    db_url = await services.create_database()
    log_path = tmp_path_factory.mktemp("malformed") / "gateway.log"
    process = GatewayProcess(db_url, services.redis_url, log_path)
    await asyncio.to_thread(process.start)
    try:
        yield process
    finally:
        process.stop()
        await services.drop_database(db_url)


@pytest.fixture
async def gateway(malformed_gateway):
    """Overrides conftest's ``gateway`` here (so ``client`` uses this module's process):
    restarted if an earlier test killed it; the ledger invariants are checked after each
    test, as conftest does."""
    await _serving(malformed_gateway)
    yield malformed_gateway
    if malformed_gateway.proc is not None and malformed_gateway.proc.poll() is None:
        report = await check_ledger(malformed_gateway.database_url)
        assert report["ok"], report


async def _ready(process: GatewayProcess) -> bool:
    try:
        async with httpx.AsyncClient(base_url=process.url, timeout=5.0) as http:
            return (await http.get("/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def _serving(process: GatewayProcess) -> None:
    """Make sure the process serves: a dead one, or one whose shard stopped (it exits by
    itself shortly after, code 3), is killed and started again on the same database."""
    if process.proc is not None and process.proc.poll() is None and await _ready(process):
        return
    process.kill()
    await asyncio.to_thread(process.start)


def _log_tail(gateway: GatewayProcess, chars: int = 1_500) -> str:
    """The gateway log's critical lines, else its tail: why a connection was lost."""
    text = gateway.log_path.read_text(errors="replace")
    critical = [line for line in text.splitlines() if '"critical"' in line or '"error"' in line]
    return ("\n".join(critical[-3:]) if critical else text)[-chars:]


class Ledger:
    """Row counts of ``transactions`` and ``entries`` on one connection, checked per request."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def counts(self) -> tuple[int, int]:
        row = await self.conn.fetchrow("SELECT (SELECT count(*) FROM transactions) AS t, "
                                       "(SELECT count(*) FROM entries) AS e")
        return row["t"], row["e"]


@pytest.fixture
async def ledger(gateway):
    conn = await asyncpg.connect(gateway.database_url)
    try:
        yield Ledger(conn)
    finally:
        await conn.close()


@pytest.fixture
async def wire(gateway, request):
    """A client without the generic API key (providers authenticate their own way), after
    checking that the test's provider is mounted: an unmounted path answers the generic
    API's 404 ``not_found``, and every check here would then pass without testing anything."""
    name = request.node.callspec.params["name"]
    protocol = PROTOCOLS[name]
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30.0) as http:
        http.gateway = gateway  # type: ignore[attr-defined]  # for ``request``'s crash report
        for endpoint in protocol.endpoints:
            url, headers = protocol.request(endpoint, b"", signed=True)
            r = await http.post(url, content=b"", headers=headers)
            if r.status_code == 404 and r.headers.get("content-type", "").startswith("application/problem+json"):
                pytest.fail(f"{name}: {endpoint} is not mounted (gateway/providers/{name}, gateway/providers/registry.py)")
        yield http


def check_answer(protocol: Protocol, response: httpx.Response, what: str) -> None:
    """Never a 500; below 500 except a 503 (retryable, documented); not the retryable status."""
    detail = f"{protocol.name} {what}: HTTP {response.status_code} {response.content[:300]!r}"
    assert response.status_code != 500, detail
    assert response.status_code < 500 or response.status_code == 503, detail
    retryable = protocol.retryable(response)
    assert retryable is None, f"retryable status {retryable} for malformed input (catch-all?): {detail}"


async def post(wire: httpx.AsyncClient, ledger: Ledger, protocol: Protocol, endpoint: str,
               body: bytes, *, signed: bool, content_type: str | bytes | None = "default",
               method: str = "POST", what: str = "") -> httpx.Response:
    """Send one request (``body`` signed the protocol's way when ``signed``), check its
    answer (``check_answer``) and that the ledger row counts did not change."""
    url, headers = protocol.request(endpoint, body, signed=signed)
    if content_type == "default":
        content_type = protocol.content_type
    if content_type is not None:
        headers["Content-Type"] = content_type  # type: ignore[assignment]  # bytes on purpose: raw header bytes
    before = await ledger.counts()
    label = f"{method} {endpoint} {'signed' if signed else 'unsigned'} {what}".strip()
    response = await request(wire, protocol, label, method, url, content=body, headers=headers)
    check_answer(protocol, response, label)
    after = await ledger.counts()
    assert after == before, f"{protocol.name} {label}: ledger rows (transactions, entries) {before} -> {after}"
    return response


async def request(wire: httpx.AsyncClient, protocol: Protocol, label: str, method: str, url: str,
                  **kwargs) -> httpx.Response:
    """``wire.request``; a lost connection fails with the gateway log's reason (a crash)."""
    try:
        return await wire.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        gateway: GatewayProcess = wire.gateway  # type: ignore[attr-defined]
        await asyncio.sleep(0.5)  # let the log line of a dying process land
        pytest.fail(f"{protocol.name} {label}: connection lost ({exc!r}); the gateway "
                    f"{'exited' if gateway.proc.poll() is not None else 'is alive'}; log "  # type: ignore[union-attr]  # started: it has a process
                    f"{gateway.log_path}:\n{_log_tail(gateway)}")


async def send_both(wire, ledger, protocol: Protocol, endpoint: str, make: Callable[[bool], bytes],
                    **kwargs) -> None:
    """The body validly signed, then unsigned."""
    for signed in (True, False):
        await post(wire, ledger, protocol, endpoint, make(signed), signed=signed, **kwargs)


# ==== hypothesis fuzz ======================================================================


@pytest.mark.parametrize("name,endpoint", CASES, ids=CASE_IDS)
@FUZZ
@given(raw=st.binary(max_size=2_048))
async def test_fuzzed_bytes(wire, ledger, name, endpoint, raw):
    """Arbitrary bytes, in the protocol's content type (Pragmatic: raw bytes carry no hash)."""
    protocol = PROTOCOLS[name]
    await send_both(wire, ledger, protocol, endpoint, lambda signed: raw)


@pytest.mark.parametrize("name,endpoint", CASES, ids=CASE_IDS)
@FUZZ
@given(value=json_values)
async def test_fuzzed_json_values(wire, ledger, name, endpoint, value):
    """Any JSON value as the body (Pragmatic gets it as its form content type: not a form)."""
    protocol = PROTOCOLS[name]
    body = json.dumps(value, allow_nan=True).encode()
    await send_both(wire, ledger, protocol, endpoint, lambda signed: body)


@pytest.mark.parametrize("name,endpoint", CASES, ids=CASE_IDS)
@FUZZ
@given(data=st.data())
async def test_fuzzed_form_data(wire, ledger, name, endpoint, data):
    """Random form data: the template's field names and random ones, random values,
    repeated keys (Pragmatic: validly hashed; JSON protocols: a form is not their format)."""
    protocol = PROTOCOLS[name]
    names = sorted(protocol.templates(GHOST)[endpoint]) + ["hash", "amount", "reference"]
    params = data.draw(st.lists(st.tuples(st.one_of(st.sampled_from(names), st.text(max_size=12)),
                                          nasty_text), max_size=14))
    for signed in (True, False):
        body = form_bytes(params, signed=signed and protocol.form)
        await post(wire, ledger, protocol, endpoint, body, signed=signed, content_type=FORM_CT)


@pytest.mark.parametrize("name,endpoint", CASES, ids=CASE_IDS)
@FUZZ
@given(data=st.data())
async def test_fuzzed_field_types(wire, ledger, name, endpoint, data):
    """A well-formed request of nobody with one field replaced by a value of any type (or
    removed), validly signed: the decoder's type checks, not the wallet, must refuse it."""
    protocol = PROTOCOLS[name]
    template = protocol.templates(GHOST)[endpoint]
    path = data.draw(st.sampled_from(_paths(template)), label="path")
    value = data.draw(st.one_of(nasty_text if protocol.form else json_values, st.just(_DELETE)),
                      label="value")
    body = _replaced(template, path, value)
    await send_both(wire, ledger, protocol, endpoint,
                    lambda signed: protocol.encode(body, signed=signed))


@pytest.fixture
async def seat(client, wire, request):
    """A real, funded EUR player with a live session of the test's provider."""
    name = request.node.callspec.params["name"]
    player = await new_player(client, deposit_minor=10_000)
    r = await client.post("/v1/sessions", json={"player_id": player, "currency": "EUR",
                                               "provider": name, "game_id": "malformed_slot"})
    assert r.status_code == 201, r.text
    return Who(player_id=player, token=r.json()["token"])


@pytest.mark.parametrize("name", list(PROTOCOLS))
@FUZZ
@given(data=st.data())
async def test_fuzzed_bet_amounts_of_a_real_player(client, wire, ledger, seat, name, data):
    """A real player's bet, validly signed, with an amount no reading can accept (wrong
    type, negative, inexact in EUR cents, huge): refused, nothing written, balance unchanged."""
    protocol = PROTOCOLS[name]
    endpoint, path = protocol.bet
    template = protocol.templates(seat)[endpoint]
    amount = data.draw(protocol.bad_amounts, label="amount")
    body = _replaced(template, path, amount)
    await post(wire, ledger, protocol, endpoint, protocol.encode(body, signed=True), signed=True,
               what=f"amount={amount!r}")
    r = await client.get(f"/v1/players/{seat.player_id}/balance")
    assert r.json()["balances"][0]["cash_minor"] == 10_000, r.text


# ==== fixed cases ==========================================================================

#: Characters PostgreSQL ``text`` cannot hold (NUL) or UTF-8 cannot encode (a lone surrogate,
#: sent as the JSON escape ``\ud800``): an adapter must refuse them, never pass them on.
UNSTORABLE = {"nul": "\x00", "lone_surrogate": "\ud800"}


def _string_paths(template: dict) -> list[tuple]:
    found = []
    for path in _paths(template):
        node: Any = template
        for key in path:
            node = node[key]
        if isinstance(node, str):
            found.append(path)
    return found


def _with_char(template: dict, path: tuple, char: str) -> dict:
    node: Any = template
    for key in path:
        node = node[key]
    return _replaced(template, path, node[:4] + char + node[4:])


async def _unstorable_everywhere(wire, ledger, protocol: Protocol, endpoint: str, template: dict,
                                 paths: list[tuple]) -> None:
    """Each path x each character, validly signed; every failure is collected (a stopped
    gateway is restarted to go on) and reported together, with the log of the first crash."""
    failures: list[str] = []
    crash_log = ""
    for path in paths:
        for label, char in UNSTORABLE.items():
            what = f"{label} in {'.'.join(map(str, path))}"
            body = protocol.encode(_with_char(template, path, char), signed=True)
            try:
                await post(wire, ledger, protocol, endpoint, body, signed=True, what=what)
                ready = await request(wire, protocol, "readiness", "GET", "/readyz")
                assert ready.status_code == 200, f"stopped the gateway: {ready.text}"
            except (AssertionError, pytest.fail.Exception) as exc:
                failures.append(f"{what}: {str(exc).splitlines()[0][:300]}")
                if not await _ready(wire.gateway):
                    crash_log = crash_log or _log_tail(wire.gateway)
                    await _serving(wire.gateway)
    assert not failures, (f"{protocol.name} {endpoint}:\n  " + "\n  ".join(failures)
                          + (f"\nfirst crash, log {wire.gateway.log_path}:\n{crash_log}" if crash_log else ""))


@pytest.mark.parametrize("name,endpoint", CASES, ids=CASE_IDS)
async def test_unstorable_characters_in_every_field(wire, ledger, name, endpoint):
    """A NUL byte or a lone surrogate in any string field of a validly signed request is
    refused like any bad input; it never reaches the database, where it would fail the
    shard's whole batch (and stop the shard)."""
    protocol = PROTOCOLS[name]
    template = protocol.templates(GHOST)[endpoint]
    await _unstorable_everywhere(wire, ledger, protocol, endpoint, template, _string_paths(template))


@pytest.mark.parametrize("name", list(PROTOCOLS))
async def test_unstorable_characters_in_a_real_players_bet_ids(client, wire, ledger, seat, name):
    """The same in the transaction, round and game ids of a real player's bet (those get
    stored): refused, nothing written, the balance unchanged."""
    protocol = PROTOCOLS[name]
    endpoint, _ = protocol.bet
    await _unstorable_everywhere(wire, ledger, protocol, endpoint, protocol.templates(seat)[endpoint],
                                 list(protocol.bet_ids))
    r = await client.get(f"/v1/players/{seat.player_id}/balance")
    assert r.json()["balances"][0]["cash_minor"] == 10_000, r.text


WRONG_CONTENT_TYPES = [None, "text/plain", "application/xml", "application/octet-stream",
                       "multipart/form-data; boundary=xyz", "application/json; charset=utf-16",
                       "application/x-www-form-urlencoded; charset=koi8-r", "*/*", "ü/ü".encode()]


@pytest.mark.parametrize("name,endpoint", CASES, ids=CASE_IDS)
async def test_wrong_content_types(wire, ledger, name, endpoint):
    """A well-formed request of nobody under wrong content types, and in the other format
    (a form to a JSON protocol, JSON to Pragmatic)."""
    protocol = PROTOCOLS[name]
    template = protocol.templates(GHOST)[endpoint]
    for content_type in WRONG_CONTENT_TYPES:
        await send_both(wire, ledger, protocol, endpoint,
                        lambda signed: protocol.encode(template, signed=signed),
                        content_type=content_type, what=f"content-type {content_type!r}")
    other = FORM_CT if not protocol.form else JSON_CT
    as_form = form_bytes([(k, _form_value(v)) for k, v in template.items()], signed=False)
    as_json = json.dumps(template).encode()
    await send_both(wire, ledger, protocol, endpoint,
                    lambda signed: as_json if protocol.form else as_form,
                    content_type=other, what="other format")


@pytest.mark.parametrize("name,endpoint", CASES, ids=CASE_IDS)
async def test_wrong_methods(wire, ledger, name, endpoint):
    protocol = PROTOCOLS[name]
    body = protocol.encode(protocol.templates(GHOST)[endpoint], signed=True)
    for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS"):
        await post(wire, ledger, protocol, endpoint, body, signed=True, method=method)


def _structural_cases(protocol: Protocol, template: dict, amount_path: tuple | None,
                      signed: bool) -> dict[str, bytes]:
    """Bodies built around a well-formed request of nobody: huge numbers, deep nesting, odd
    encodings. For a form protocol the literals go into parameter values (and the ``hash``
    covers them when ``signed``); for JSON they replace the amount's JSON text."""
    good = protocol.encode(template, signed=signed)
    cases: dict[str, bytes] = {
        "empty": b"",
        "deep_array": b"[" * 100_000 + b"]" * 100_000,
        "deep_object": b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
        "nul_bytes": b"\x00" * 512,
        "utf16": good.decode("latin-1").encode("utf-16"),
        "bom": b"\xef\xbb\xbf" + good,
        "two_documents": good * 2,
        "truncated": good[:-3],
        "trailing_garbage": good + b"\x00garbage",
    }
    if amount_path is not None:
        marker = "__AMOUNT_MARKER__"
        for label, literal in (("amount_5000_digits", "9" * 5_000), ("amount_1e999", "1e999"),
                               ("amount_minus_1e999", "-1e999"), ("amount_nan", "NaN"),
                               ("amount_minus_zero", "-0"), ("amount_2_pow_64", str(2**64)),
                               ("amount_deep", "[" * 5_000 + "]" * 5_000)):
            if protocol.form:
                cases[label] = protocol.encode(_replaced(template, amount_path, literal), signed=signed)
            else:
                body = protocol.encode(_replaced(template, amount_path, marker), signed=signed)
                cases[label] = body.replace(f'"{marker}"'.encode(), literal.encode())
    if protocol.form:
        cases["deep_value"] = protocol.encode({**template, "roundDetails": "[" * 20_000}, signed=signed)
        cases["repeated_keys"] = protocol.encode(list(template.items()) * 3, signed=signed)
        cases["no_equals"] = b"&".join(k.encode() for k in template)
        cases["percent_garbage"] = b"amount=%ZZ&userId=%&token=%FF%FE&hash=%"
    else:
        cases["deep_field"] = protocol.encode({**template, "zz": json.loads("[" * 900 + "]" * 900)},
                                              signed=signed)
        cases["duplicate_keys"] = good[:-1] + b"," + good[1:]
    return cases


def _amount_path(template: dict) -> tuple | None:
    """Where a template carries its amount, if it has one."""
    for candidate in (("amount",), ("transaction", "amount"), ("actions", 0, "amount"),
                      ("promoTransaction", "amount"), ("total_amount",)):
        node: Any = template
        try:
            for key in candidate:
                node = node[key]
        except (KeyError, IndexError, TypeError):
            continue
        return candidate
    return None


@pytest.mark.parametrize("name,endpoint", CASES, ids=CASE_IDS)
async def test_structural_garbage(wire, ledger, name, endpoint):
    """Huge numbers, deep nesting, odd encodings: signed (over the exact bytes) and unsigned."""
    protocol = PROTOCOLS[name]
    template = protocol.templates(GHOST)[endpoint]
    amount_path = _amount_path(template)
    for signed in (True, False):
        for label, body in _structural_cases(protocol, template, amount_path, signed).items():
            await post(wire, ledger, protocol, endpoint, body, signed=signed, what=label)


def _padded(protocol: Protocol, template: dict, size: int, signed: bool) -> bytes:
    """A well-formed request of nobody, padded with an unknown field to exactly ``size`` bytes."""
    body = protocol.encode({**template, "padding": ""}, signed=signed)
    filled = protocol.encode({**template, "padding": "x" * (size - len(body))}, signed=signed)
    assert len(filled) == size
    return filled


@pytest.mark.parametrize("name,endpoint", CASES, ids=CASE_IDS)
async def test_oversize_bodies(wire, ledger, name, endpoint):
    """One byte over ``server.body_bytes_max``, 1 MiB with its Content-Length, and 256 KiB
    chunked without one: refused without a 500 or a write, signed and unsigned."""
    protocol = PROTOCOLS[name]
    template = protocol.templates(GHOST)[endpoint]
    for size in (BODY_BYTES_MAX + 1, 1 << 20):
        await send_both(wire, ledger, protocol, endpoint,
                        lambda signed: _padded(protocol, template, size, signed),  # noqa: B023 - used in this iteration
                        what=f"{size} bytes")
    for signed in (True, False):
        big = _padded(protocol, template, 1 << 18, signed)
        url, headers = protocol.request(endpoint, big, signed=signed)

        async def chunks():  # consumed within this iteration, so ``big`` is this one's
            for i in range(0, len(big), 16_384):  # noqa: B023
                yield big[i:i + 16_384]  # noqa: B023

        headers["Content-Type"] = protocol.content_type
        before = await ledger.counts()
        response = await request(wire, protocol, "chunked", "POST", url, content=chunks(), headers=headers)
        check_answer(protocol, response, f"chunked {len(big)} bytes")
        assert await ledger.counts() == before


def test_every_adapter_is_covered():
    """Every provider package in the tree has its endpoints here (a missing one of the
    listed protocols fails its own tests, through the ``wire`` fixture's mount check)."""
    packages = {p.name for p in (Path(ROOT) / "gateway" / "providers").iterdir()
                if (p / "__init__.py").exists()}
    assert packages <= set(PROTOCOLS), f"not fuzzed: {sorted(packages - set(PROTOCOLS))}"
