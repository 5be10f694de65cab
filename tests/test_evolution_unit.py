"""Evolution One Wallet adapter, pure parts: schemas, amounts, status table, authToken check,
request -> Command and Result -> answer mappings, audit records, sids bound to their
integration and partner; the adapter of one integration in-process (fake sessions and wallet).

Source: gateway/providers/evolution/README.md ("Protocol facts", "Common ground"); docs/DESIGN.md
sections 3 (money) and 5 (idempotency); gateway/providers/evolution/README.md (choices).
No gateway process here; ``tests/test_evolution_http.py`` runs the same rules over HTTP.
"""

from __future__ import annotations

import json
import time
import warnings
from decimal import Decimal

import msgspec
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

with warnings.catch_warnings():  # starlette's TestClient warns about its httpx backend
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from gateway.config import Settings, load_settings
from gateway.edge.context import EdgeContext
from gateway.edge.game_session import GameSession
from gateway.providers.evolution import PREFIX, Adapter
from gateway.providers.evolution.adapter import (
    PROVIDER,
    amount_minor_from_decimal,
    amount_wire_from_minor,
    audit_request,
    balance_to_command,
    cancel_to_command,
    check_live_sid,
    check_request,
    check_settlement_sid,
    credit_to_command,
    debit_key,
    debit_to_command,
    player_id_of,
    promo_credit_type,
    promo_to_command,
    refusal_for_player,
    refusal_of,
    request_id_for,
    response_for_balance,
    response_for_new_sid,
    response_for_refusal,
    response_for_result,
    response_for_sid_refusal,
    response_for_unread_refusal,
    round_and_game,
    sid_issue_currency,
)
from gateway.providers.evolution.auth import AuthTokenCheck
from gateway.providers.evolution.routes import EvolutionAdapter
from gateway.providers.evolution.schemas import (
    BadRequest,
    BalanceRequest,
    CancelRequest,
    CheckRequest,
    CreditRequest,
    DebitRequest,
    EvolutionResponse,
    PromoPayoutRequest,
    SidResponse,
    decode_request,
    encode_response,
)
from gateway.providers.evolution.settings import EvolutionSettings
from gateway.providers.evolution.statuses import (
    ALL_STATUSES,
    CANCEL_REPLAYED_STATUS,
    CANCEL_TOMBSTONED_STATUS,
    ENDPOINT_STATUS,
    RETRYABLE_EXCEPTIONS,
    RETRYABLE_STATUS,
    RETRYABLE_STATUSES,
    STATUS_BY_CODE,
    status_for,
    status_of_result,
)
from gateway.providers.integration import Caller
from gateway.providers.pragmatic.settings import PragmaticSettings
from gateway.providers.refusal import Refusal
from gateway.providers.softswiss.settings import SoftSwissSettings
from gateway.shards.commands import (
    CREDIT_TYPES,
    Balance,
    Code,
    Credit,
    Debit,
    GetBalance,
    Origin,
    Overloaded,
    RecordRefusal,
    Result,
    Rollback,
    ShardUnavailable,
)
from tests.helpers import integration_config, sandbox_caller

NOW = 1_700_000_000.0
MAX = 10_000_000_000
CALLER = sandbox_caller("evolution")
ORIGIN = Origin(edge="h:1", route="evolution /debit", request_id="q", received_at_us=1)


def session(**kw) -> GameSession:
    base = {"token": "sid-live-0001", "partner_id": "demo", "player_id": "p-42", "currency": "EUR",
            "integration": "evolution", "game_id": "lobby", "expires_at_s": int(NOW) + 60}
    return GameSession(**{**base, **kw})


LIVE = session()
EXPIRED = session(token="sid-expired-01", expires_at_s=int(NOW) - 1)
REPLACED = session(token="sid-replaced-1", replaced_by="sid-new-00001")
OTHER_USER = session(token="sid-other-0001", player_id="p-mallory")
OTHER_PROVIDER = session(token="sid-hub88-0001", integration="hub88")
USD = session(token="sid-usd-000001", currency="USD")

GAME = {"id": "round-77", "type": "blackjack", "details": {"table": {"id": "tbl-1", "vid": "v-1"}}}


def body(**kw) -> bytes:
    return json.dumps(kw).encode()


def debit(amount="12.5", **kw) -> DebitRequest:
    payload = {"sid": LIVE.token, "userId": "p-42", "uuid": "uu-1", "currency": "EUR",
               "game": GAME, "transaction": {"id": "tx-1", "refId": "ref-1", "amount": 0}}
    payload.update(kw)
    raw = json.dumps(payload).encode().replace(b'"amount": 0', b'"amount": ' + amount.encode())
    return decode_request(raw, DebitRequest)


def credit(amount="20", **kw) -> CreditRequest:
    payload = {"sid": LIVE.token, "userId": "p-42", "uuid": "uu-2", "currency": "EUR",
               "game": GAME, "transaction": {"id": "tx-2", "refId": "ref-1", "amount": 0}}
    payload.update(kw)
    raw = json.dumps(payload).encode().replace(b'"amount": 0', b'"amount": ' + amount.encode())
    return decode_request(raw, CreditRequest)


def cancel(**kw) -> CancelRequest:
    payload = {"sid": LIVE.token, "userId": "p-42", "uuid": "uu-3", "currency": "EUR",
               "game": GAME, "transaction": {"id": "tx-3", "refId": "ref-1", "amount": 12.5}}
    payload.update(kw)
    return decode_request(json.dumps(payload).encode(), CancelRequest)


def promo(**kw) -> PromoPayoutRequest:
    payload = {"sid": LIVE.token, "userId": "p-42", "uuid": "uu-4", "currency": "EUR",
               "promoTransaction": {"type": "FreeRoundPlayableSpent", "id": "pr-1", "amount": 5,
                                    "voucherId": "v-9", "remainingRounds": 0}}
    payload.update(kw)
    return decode_request(json.dumps(payload).encode(), PromoPayoutRequest)


def refused(out, code: Code, status: str) -> None:
    assert isinstance(out, Refusal), out
    assert out.code is code and out.status == status, out


# ==== package shape ===========================================================================


def test_package_exports_prefix_and_adapter():
    assert PREFIX == "/providers/evolution"
    assert callable(Adapter) and hasattr(Adapter, "routes") and hasattr(Adapter, "close")


# ==== schemas =================================================================================


def test_debit_decodes_camel_case_and_ignores_unknown_fields():
    raw = body(sid="s-1", userId="p-42", uuid="u", currency="EUR", channel={"type": "P"},
               game={**GAME, "extra": [1, 2]}, transaction={"id": "t", "refId": "r", "amount": 12.5,
                                                            "more": True},
               somethingNew={"deep": {"er": 1}})
    req = decode_request(raw, DebitRequest)
    assert req.user_id == "p-42" and req.transaction.ref_id == "r"
    assert req.transaction.amount == Decimal("12.5")
    assert req.game.details.table.id == "tbl-1"


def test_amount_decodes_exactly_from_json_text_never_via_float():
    req = debit(amount="0.1")
    assert req.transaction.amount == Decimal("0.1")  # a float would be 0.1000000000000000055...
    req = debit(amount="12.500000000000000000001")
    assert req.transaction.amount == Decimal("12.500000000000000000001")


def test_amount_as_decimal_string_is_tolerated():
    req = decode_request(body(sid="s", userId="p", currency="EUR",
                              transaction={"id": "t", "refId": "r", "amount": "12.50"}), DebitRequest)
    assert req.transaction.amount == Decimal("12.50")


@pytest.mark.parametrize("request_type", [CheckRequest, BalanceRequest, DebitRequest, CreditRequest,
                                          CancelRequest, PromoPayoutRequest])
@pytest.mark.parametrize("raw", [b"", b"not json", b"{", b"[1]", b"null", b"12", b'"x"',
                                 b"\xff\xfe", b"[" * 5000 + b"]" * 5000])
def test_garbage_is_bad_request(request_type, raw):
    with pytest.raises(BadRequest):
        decode_request(raw, request_type)


@pytest.mark.parametrize("payload", [
    {"userId": "p", "currency": "EUR", "transaction": {"id": "t", "refId": "r", "amount": 1}},  # no sid
    {"sid": "s", "currency": "EUR", "transaction": {"id": "t", "refId": "r", "amount": 1}},  # no userId
    {"sid": "s", "userId": "p", "transaction": {"id": "t", "refId": "r", "amount": 1}},  # no currency
    {"sid": "s", "userId": "p", "currency": "EUR"},  # no transaction
    {"sid": "s", "userId": "p", "currency": "EUR", "transaction": {"id": "t", "amount": 1}},  # no refId
    {"sid": "s", "userId": "p", "currency": "EUR", "transaction": {"refId": "r", "amount": 1}},  # no id
    {"sid": "s", "userId": "p", "currency": "EUR", "transaction": {"id": "t", "refId": "r"}},  # no amount
    {"sid": "s", "userId": "p", "currency": "EUR", "transaction": {"id": "t", "refId": "r", "amount": True}},
    {"sid": "s", "userId": "p", "currency": "EUR", "transaction": {"id": "t", "refId": "r", "amount": None}},
    {"sid": "s", "userId": "p", "currency": "EUR", "transaction": {"id": "t", "refId": "r", "amount": [1]}},
    {"sid": "s", "userId": "p", "currency": "EUR", "transaction": {"id": "t", "refId": "r", "amount": "abc"}},
    {"sid": "s", "userId": 42, "currency": "EUR", "transaction": {"id": "t", "refId": "r", "amount": 1}},
    {"sid": "s", "userId": "p", "currency": "EUR", "transaction": {"id": 7, "refId": "r", "amount": 1}},
    {"sid": "s", "userId": "p", "currency": "EUR", "transaction": "t"},
    {"sid": "s", "userId": "p", "currency": "EUR", "game": "g", "transaction": {"id": "t", "refId": "r", "amount": 1}},
    {"sid": "s", "userId": "", "currency": "EUR", "transaction": {"id": "t", "refId": "r", "amount": 1}},
    {"sid": "s", "userId": "p" * 129, "currency": "EUR", "transaction": {"id": "t", "refId": "r", "amount": 1}},
    {"sid": "s" * 257, "userId": "p", "currency": "EUR", "transaction": {"id": "t", "refId": "r", "amount": 1}},
    {"sid": "s", "userId": "p\u0000", "currency": "EUR", "transaction": {"id": "t", "refId": "r", "amount": 1}},
    {"sid": "s", "userId": "p", "currency": "EUR", "transaction": {"id": "t x", "refId": "r", "amount": 1}},
    {"sid": "s", "userId": "p", "currency": "E\nR", "transaction": {"id": "t", "refId": "r", "amount": 1}},
    {"sid": "s", "userId": "p", "currency": "EUR", "game": {"type": "a\u0000b"},
     "transaction": {"id": "t", "refId": "r", "amount": 1}},
])
def test_wrong_fields_are_bad_request(payload):
    with pytest.raises(BadRequest):
        decode_request(json.dumps(payload).encode(), DebitRequest)


def test_credit_cancel_promo_do_not_need_a_sid():
    assert decode_request(body(userId="p", currency="EUR",
                               transaction={"id": "t", "refId": "r", "amount": 0}), CreditRequest).sid is None
    c = decode_request(body(userId="p", transaction={"id": "t", "refId": "r"}), CancelRequest)
    assert c.sid is None and c.currency is None and c.transaction.amount is None
    p = decode_request(body(userId="p", currency="EUR", promoTransaction={"id": "x", "amount": 1}),
                       PromoPayoutRequest)
    assert p.sid is None and p.promo_transaction.type is None


@pytest.mark.parametrize("value", ["", None])
def test_empty_informational_strings_are_accepted_and_read_as_absent(value):
    """README.md "Certification", case 26: ``"vid": ""`` (and ``table.id``, ``game.id``,
    ``game.type``, ``uuid``, ``voucherId``, ``sid`` empty or null) is processed normally."""
    g = {"id": value, "type": value, "details": {"table": {"id": value, "vid": value}}}
    txn = {"id": "t", "refId": "r", "amount": 1}
    full = body(sid="s", userId="p", uuid=value, currency="EUR", game=g, transaction=txn)
    decoded: list[DebitRequest | CreditRequest | CancelRequest] = [
        decode_request(full, DebitRequest), decode_request(full, CreditRequest), decode_request(full, CancelRequest)]
    for one in decoded:
        assert round_and_game(one.game, "r") == ("r", "") and one.uuid == value
    req = decode_request(body(sid="s", userId="p", currency="EUR", game={"id": "rd", "type": "baccarat",
                              "details": {"table": {"id": "", "vid": ""}}}, transaction=txn), DebitRequest)
    assert round_and_game(req.game, "r") == ("rd", "baccarat")
    bet = debit_to_command(debit(game=g), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(bet, Debit) and (bet.round_id, bet.game_id) == ("ref-1", "")
    undo = cancel_to_command(cancel(game=g), None, caller=CALLER, amount_minor_max=MAX)
    assert isinstance(undo, Rollback) and undo.round_id is None
    p = decode_request(body(userId="p", currency="EUR", sid="", promoTransaction={
        "id": "x", "amount": 1, "type": value, "voucherId": value}), PromoPayoutRequest)
    assert p.promo_transaction.voucher_id == value and p.sid == ""
    assert decode_request(body(sid="", userId="p"), CheckRequest).sid == ""


@pytest.mark.parametrize("payload", [
    {"transaction": {"id": "", "refId": "r", "amount": 1}},
    {"transaction": {"id": "t", "refId": "", "amount": 1}},
    {"userId": ""},
    {"currency": ""},
])
def test_keys_stay_non_empty(payload):
    base = {"sid": "s", "userId": "p", "currency": "EUR", "transaction": {"id": "t", "refId": "r", "amount": 1}}
    for request_type in (DebitRequest, CreditRequest, CancelRequest):
        with pytest.raises(BadRequest):
            decode_request(json.dumps({**base, **payload}).encode(), request_type)  # type: ignore[type-var]  # each a request Struct
    with pytest.raises(BadRequest):
        decode_request(body(userId="p", currency="EUR", promoTransaction={"id": "", "amount": 1}), PromoPayoutRequest)


def test_game_ids_may_be_numbers():
    req = decode_request(body(sid="s", userId="p", currency="EUR", game={"id": 123, "details": {"table": {"id": 9}}},
                              transaction={"id": "t", "refId": "r", "amount": 1}), DebitRequest)
    assert round_and_game(req.game, "r") == ("123", "9")


def W(text: str) -> msgspec.Raw:
    """An amount as it goes on the wire: raw JSON number text."""
    return msgspec.Raw(text.encode())


def test_response_encodes_amounts_as_json_numbers_with_currency_decimals():
    out = encode_response(EvolutionResponse(status="OK", balance=amount_wire_from_minor(1250, "EUR"),
                                            bonus=amount_wire_from_minor(0, "EUR"), uuid="u"))
    assert out == b'{"status":"OK","balance":12.50,"bonus":0.00,"uuid":"u"}'
    assert json.loads(out, parse_float=Decimal)["balance"] == Decimal("12.50")
    assert encode_response(EvolutionResponse(status="INVALID_SID")) == b'{"status":"INVALID_SID"}'
    assert encode_response(SidResponse(status="OK", sid="new", uuid="u")) == \
        b'{"status":"OK","sid":"new","uuid":"u"}'


# ==== amounts =================================================================================


@pytest.mark.parametrize("text,currency,minor", [
    ("12.5", "EUR", 1250), ("12.50", "EUR", 1250), ("12.500000", "EUR", 1250), ("1.25E+1", "EUR", 1250),
    ("0.01", "EUR", 1), ("100", "EUR", 10000), ("0", "EUR", 0), ("0.00", "EUR", 0), ("-0", "EUR", 0),
    ("0E-999999999", "EUR", 0), ("5", "JPY", 5), ("5.0", "JPY", 5), ("1.234", "KWD", 1234),
    ("0.00000001", "BTC", 1), ("100000000", "EUR", 10_000_000_000),
])
def test_amount_exact_conversions(text, currency, minor):
    assert amount_minor_from_decimal(Decimal(text), currency, amount_minor_max=MAX) == minor


@pytest.mark.parametrize("text,currency", [
    ("12.505", "EUR"), ("0.001", "EUR"), ("1.5", "JPY"), ("1.2345", "KWD"), ("12.500000000000000000001", "EUR"),
    ("1E-7", "EUR"), ("1E-999999999", "EUR"), ("0.000000001", "BTC"),
])
def test_amount_with_excess_fraction_digits_refused(text, currency):
    refused(amount_minor_from_decimal(Decimal(text), currency, amount_minor_max=MAX),
            Code.INVALID_AMOUNT, "INVALID_PARAMETER")


@pytest.mark.parametrize("text", ["-0.01", "-1", "-100000000000000000000"])
def test_negative_amount_refused(text):
    refused(amount_minor_from_decimal(Decimal(text), "EUR", amount_minor_max=MAX), Code.INVALID_AMOUNT,
            "INVALID_PARAMETER")


@pytest.mark.parametrize("text", ["100000000.01", "1E+19", "1E+999999999", "9" * 400, "99999999999999999999.99"])
def test_huge_amount_refused(text):
    refused(amount_minor_from_decimal(Decimal(text), "EUR", amount_minor_max=MAX), Code.INVALID_AMOUNT,
            "INVALID_PARAMETER")


@pytest.mark.parametrize("text", ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity"])
def test_nan_like_amount_refused(text):
    refused(amount_minor_from_decimal(Decimal(text), "EUR", amount_minor_max=MAX), Code.INVALID_AMOUNT,
            "INVALID_PARAMETER")


def test_nan_like_strings_on_the_wire_are_refused_end_to_end():
    for text in ("NaN", "Infinity", "-Infinity", "sNaN"):
        req = decode_request(body(sid=LIVE.token, userId="p-42", currency="EUR",
                                  transaction={"id": "t", "refId": "r", "amount": text}), DebitRequest)
        refused(debit_to_command(req, LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Code.INVALID_AMOUNT,
                "INVALID_PARAMETER")


def test_amount_maximum_is_the_configured_one():
    assert amount_minor_from_decimal(Decimal("3.56"), "EUR", amount_minor_max=356) == 356
    refused(amount_minor_from_decimal(Decimal("3.57"), "EUR", amount_minor_max=356), Code.INVALID_AMOUNT,
            "INVALID_PARAMETER")


def test_zero_refused_only_when_not_allowed():
    assert amount_minor_from_decimal(Decimal(0), "EUR", amount_minor_max=MAX, allow_zero=True) == 0
    refused(amount_minor_from_decimal(Decimal(0), "EUR", amount_minor_max=MAX, allow_zero=False),
            Code.INVALID_AMOUNT, "INVALID_PARAMETER")


@pytest.mark.parametrize("currency", ["XXX", "eur", "", "EURO"])
def test_unknown_currency_refused(currency):
    refused(amount_minor_from_decimal(Decimal(1), currency, amount_minor_max=MAX), Code.UNKNOWN_CURRENCY,
            "INVALID_PARAMETER")


@pytest.mark.parametrize("minor,currency,text", [
    (1250, "EUR", "12.50"), (5, "EUR", "0.05"), (0, "EUR", "0.00"), (5, "JPY", "5"), (1234, "KWD", "1.234"),
    (1, "BTC", "0.00000001"), (10_000_000_000, "EUR", "100000000.00"),
])
def test_amount_wire_from_minor_is_exact_and_plain(minor, currency, text):
    wire = amount_wire_from_minor(minor, currency)
    assert bytes(wire) == text.encode()  # never 1E-8: plain decimal text
    value = json.loads(encode_response(EvolutionResponse(status="OK", balance=wire)), parse_float=Decimal)["balance"]
    assert amount_minor_from_decimal(Decimal(value), currency, amount_minor_max=MAX) == minor  # round trip


# ==== status table ============================================================================


def test_every_code_has_a_status():
    missing = [c for c in Code if c not in STATUS_BY_CODE]
    assert not missing, f"codes without an Evolution status: {missing}"


def test_every_status_is_an_evolution_status():
    # gateway/providers/evolution/README.md "Statuses": nothing else may ever be sent.
    assert {
        "OK", "TEMPORARY_ERROR", "UNKNOWN_ERROR", "INVALID_SID", "INVALID_TOKEN_ID", "INVALID_PARAMETER",
        "INSUFFICIENT_FUNDS", "BET_ALREADY_EXIST", "BET_ALREADY_SETTLED", "BET_DOES_NOT_EXIST",
        "FINAL_ERROR_ACTION_FAILED", "OPERATION_IN_PROCESS", "ACCOUNT_LOCKED",
    } == ALL_STATUSES
    assert set(STATUS_BY_CODE.values()) <= ALL_STATUSES
    assert set(ENDPOINT_STATUS.values()) <= ALL_STATUSES
    assert {CANCEL_TOMBSTONED_STATUS, CANCEL_REPLAYED_STATUS} <= ALL_STATUSES
    assert RETRYABLE_STATUS == "TEMPORARY_ERROR" and RETRYABLE_STATUS in RETRYABLE_STATUSES
    assert RETRYABLE_STATUSES <= ALL_STATUSES


@pytest.mark.parametrize("code,status", [
    (Code.OK, "OK"),
    (Code.INSUFFICIENT_FUNDS, "INSUFFICIENT_FUNDS"),
    (Code.IDEMPOTENCY_CONFLICT, "BET_ALREADY_EXIST"),
    (Code.UNKNOWN_TRANSACTION, "BET_DOES_NOT_EXIST"),
    (Code.TRANSACTION_SETTLED, "BET_ALREADY_SETTLED"),
    (Code.TRANSACTION_ROLLED_BACK, "BET_ALREADY_SETTLED"),
    (Code.PLAYER_BLOCKED, "ACCOUNT_LOCKED"),
    (Code.LIMIT_REACHED, "FINAL_ERROR_ACTION_FAILED"),
    (Code.UNKNOWN_PLAYER, "INVALID_PARAMETER"),
    (Code.UNAUTHORIZED, "INVALID_TOKEN_ID"),
    (Code.INVALID_TOKEN, "INVALID_SID"),
    (Code.TOKEN_EXPIRED, "INVALID_SID"),
    (Code.CURRENCY_MISMATCH, "INVALID_PARAMETER"),
    (Code.INVALID_REQUEST, "INVALID_PARAMETER"),
    (Code.INVALID_AMOUNT, "INVALID_PARAMETER"),
])
def test_spec_rows(code, status):
    """gateway/providers/evolution/README.md licensee test list and "Statuses"."""
    assert status_for(code) == status
    assert status_for(code, "/credit") == status  # no per-endpoint row on /credit


def test_per_endpoint_rows():
    """README.md "Certification": case 14 (late debit of a cancelled refId), 13 (cancel of an
    unknown refId, first time and retries), 16 (a repeated cancel)."""
    assert status_for(Code.TRANSACTION_ROLLED_BACK, "/debit") == "FINAL_ERROR_ACTION_FAILED"
    assert status_for(Code.TRANSACTION_ROLLED_BACK, "/credit") == "BET_ALREADY_SETTLED"
    ok = Result(code=Code.OK)
    assert status_of_result(ok, "/cancel") == "OK"
    assert status_of_result(Result(code=Code.OK, tombstoned=True), "/cancel") == "BET_DOES_NOT_EXIST"
    assert status_of_result(Result(code=Code.OK, tombstoned=True, replayed=True), "/cancel") == "BET_DOES_NOT_EXIST"
    assert status_of_result(Result(code=Code.OK, replayed=True), "/cancel") == "BET_ALREADY_SETTLED"
    for endpoint in ("/debit", "/credit", "/promo_payout"):  # flags are read on /cancel only
        assert status_of_result(Result(code=Code.OK, replayed=True, tombstoned=True), endpoint) == "OK"
    assert status_of_result(Result(code=Code.TRANSACTION_ROLLED_BACK), "/debit") == "FINAL_ERROR_ACTION_FAILED"


def test_no_business_refusal_is_retryable():
    # a retryable answer to a final refusal would make Evolution retry a credit for days
    for code, status in STATUS_BY_CODE.items():
        assert status not in RETRYABLE_STATUSES, (code, status)


def test_retryable_exceptions():
    assert Overloaded in RETRYABLE_EXCEPTIONS and ShardUnavailable in RETRYABLE_EXCEPTIONS


# ==== authToken ===============================================================================


def test_auth_token_correct_wrong_missing():
    check = AuthTokenCheck("evolution-demo-auth-token")
    assert check.verify(["evolution-demo-auth-token"])
    assert not check.verify([])
    assert not check.verify([""])
    assert not check.verify(["evolution-demo-auth-tokeN"])
    assert not check.verify(["evolution-demo-auth-token "])
    assert not check.verify(["evolution-demo-auth-to"])
    assert not check.verify(["x" * 10_000])
    assert not check.verify(["évolution-\udcff"])  # odd text never raises


def test_auth_token_twice_is_refused_even_if_one_is_right():
    check = AuthTokenCheck("k")
    assert not check.verify(["k", "k"])
    assert not check.verify(["k", "wrong"])


def test_auth_token_of_another_provider_is_refused():
    sandbox = load_settings(environ={})  # config/sandbox.toml: one integration per provider
    evolution, softswiss, pragmatic = (sandbox.integration(n) for n in ("evolution", "softswiss", "pragmatic"))
    assert isinstance(evolution, EvolutionSettings) and isinstance(softswiss, SoftSwissSettings)
    assert isinstance(pragmatic, PragmaticSettings)
    check = AuthTokenCheck(_resolved(evolution.auth_token))
    assert check.verify([_resolved(evolution.auth_token)])
    assert not check.verify([_resolved(softswiss.auth_token)])
    assert not check.verify([_resolved(pragmatic.secret_key)])


def test_auth_token_of_another_evolution_integration_is_refused():
    """Each integration has its own key: another partner's Evolution key opens nothing here."""
    settings = _two_integrations()
    mine, theirs = settings.integration("evolution"), settings.integration("acme-evolution")
    assert isinstance(mine, EvolutionSettings) and isinstance(theirs, EvolutionSettings)
    check = AuthTokenCheck(_resolved(mine.auth_token))
    assert check.verify([_resolved(mine.auth_token)]) and not check.verify([_resolved(theirs.auth_token)])


def test_empty_configured_key_refuses_everything():
    check = AuthTokenCheck("")
    assert not check.verify([""]) and not check.verify(["anything"])


def _resolved(secret: object) -> str:
    """A secret setting as loaded: a plain str (``load_settings`` resolves references)."""
    assert isinstance(secret, str)
    return secret


def _two_integrations() -> Settings:
    """The sandbox's Evolution integration of ``demo`` and a second one, of partner ``acme``."""
    data = integration_config("evolution", auth_token="demo-evolution-key", sid_issues_sessions=True)  # as in the sandbox
    data["partners"]["acme"] = {"api_keys": []}
    data["integrations"]["acme-evolution"] = {"provider": "evolution", "partner_id": "acme",
                                              "auth_token": "acme-evolution-key"}
    return msgspec.convert(data, Settings)


# ==== sessions ================================================================================


def test_live_sid_rules():
    assert check_live_sid(LIVE, CALLER, "p-42", NOW) is None
    refused(check_live_sid(None, CALLER, "p-42", NOW), Code.INVALID_TOKEN, "INVALID_SID")
    refused(check_live_sid(REPLACED, CALLER, "p-42", NOW), Code.INVALID_TOKEN, "INVALID_SID")
    refused(check_live_sid(EXPIRED, CALLER, "p-42", NOW), Code.TOKEN_EXPIRED, "INVALID_SID")
    refused(check_live_sid(OTHER_USER, CALLER, "p-42", NOW), Code.INVALID_TOKEN, "INVALID_SID")
    refused(check_live_sid(OTHER_PROVIDER, CALLER, "p-42", NOW), Code.INVALID_TOKEN, "INVALID_SID")
    refused(check_live_sid(LIVE, CALLER, "p-42", LIVE.expires_at_s), Code.TOKEN_EXPIRED, "INVALID_SID")
    assert check_live_sid(LIVE, CALLER, "p-42", LIVE.expires_at_s - 0.001) is None


def test_settlement_sid_rules():
    """gateway/providers/evolution/README.md Common ground: wins and rollbacks accepted with an expired session."""
    for s in (None, LIVE, EXPIRED, REPLACED):
        assert check_settlement_sid(s, CALLER, "p-42") is None
    refused(check_settlement_sid(OTHER_USER, CALLER, "p-42"), Code.INVALID_TOKEN, "INVALID_SID")
    refused(check_settlement_sid(OTHER_PROVIDER, CALLER, "p-42"), Code.INVALID_TOKEN, "INVALID_SID")


def test_check_request():
    req = decode_request(body(sid=LIVE.token, userId="p-42", uuid="u"), CheckRequest)
    assert check_request(req, LIVE, caller=CALLER, now_s=NOW) is None
    refused(check_request(req, REPLACED, caller=CALLER, now_s=NOW), Code.INVALID_TOKEN, "INVALID_SID")
    refused(check_request(req, EXPIRED, caller=CALLER, now_s=NOW), Code.TOKEN_EXPIRED, "INVALID_SID")
    assert response_for_new_sid(session(token="sid-new"), uuid="u") == SidResponse(status="OK", sid="sid-new", uuid="u")


# ==== request -> command ======================================================================


def test_debit_maps_to_debit_under_the_ref_id():
    out = debit_to_command(debit(), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX, origin=ORIGIN)
    assert out == Debit(scope="demo:evolution", transaction_id="ref-1", partner_id="demo", player_id="p-42",
                        currency="EUR", amount_minor=1250, round_id="round-77", game_id="tbl-1", origin=ORIGIN)
    assert CALLER.scope == "demo:evolution" and PROVIDER == "evolution" and debit_key("ref-1") == "ref-1"


def test_debit_session_refusals():
    for s, code in ((None, Code.INVALID_TOKEN), (EXPIRED, Code.TOKEN_EXPIRED), (REPLACED, Code.INVALID_TOKEN),
                    (OTHER_USER, Code.INVALID_TOKEN), (OTHER_PROVIDER, Code.INVALID_TOKEN)):
        refused(debit_to_command(debit(), s, caller=CALLER, now_s=NOW, amount_minor_max=MAX), code, "INVALID_SID")


def test_debit_currency_must_be_the_sessions():
    refused(debit_to_command(debit(), USD, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Code.CURRENCY_MISMATCH,
            "INVALID_PARAMETER")
    refused(debit_to_command(debit(currency="XXX"), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX),
            Code.UNKNOWN_CURRENCY, "INVALID_PARAMETER")


@pytest.mark.parametrize("amount", ["12.505", "-1", "1e30", '"NaN"'])
def test_debit_bad_amount(amount):
    refused(debit_to_command(debit(amount=amount), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Code.INVALID_AMOUNT,
            "INVALID_PARAMETER")


def test_zero_debit_is_a_free_bet():
    out = debit_to_command(debit(amount="0"), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(out, Debit) and out.amount_minor == 0


def test_credit_maps_to_credit_of_the_debit():
    out = credit_to_command(credit(), EXPIRED, caller=CALLER, amount_minor_max=MAX, origin=ORIGIN)
    assert out == Credit(scope="demo:evolution", transaction_id="credit tx-2", partner_id="demo", player_id="p-42",
                         currency="EUR", amount_minor=2000, round_id="round-77", game_id="tbl-1",
                         bet_transaction_id="ref-1", round_closed=False, credit_type="win", origin=ORIGIN)


def test_keys_of_different_kinds_never_collide():
    """README.md choice 5: a credit, cancel or promo whose id equals a debit's refId (or each
    other's) gets another key; the space of the prefixes never occurs in an Evolution id."""
    ref = "same-id"
    keys = {
        debit_to_command(debit(transaction={"id": ref, "refId": ref, "amount": 0}), LIVE, caller=CALLER, now_s=NOW,
                         amount_minor_max=MAX).transaction_id,
        credit_to_command(credit(transaction={"id": ref, "refId": ref, "amount": 0}), LIVE, caller=CALLER,
                          amount_minor_max=MAX).transaction_id,
        cancel_to_command(cancel(transaction={"id": ref, "refId": ref}), LIVE, caller=CALLER, amount_minor_max=MAX).transaction_id,
        promo_to_command(promo(promoTransaction={"id": ref, "amount": 1}), LIVE, caller=CALLER, amount_minor_max=MAX).transaction_id,
    }
    assert keys == {"same-id", "credit same-id", "cancel same-id", "promo same-id"}
    with pytest.raises(BadRequest):  # an id that would forge another kind's key is not an id
        decode_request(body(sid="s", userId="p", currency="EUR",
                            transaction={"id": "t", "refId": "credit x", "amount": 1}), DebitRequest)


def test_credit_zero_is_valid_and_needs_no_sid():
    """gateway/providers/evolution/README.md licensee test list: a zero-amount credit is valid."""
    req = decode_request(body(userId="p-42", currency="EUR", transaction={"id": "t", "refId": "r", "amount": 0}),
                         CreditRequest)
    out = credit_to_command(req, None, caller=CALLER, amount_minor_max=MAX)
    assert isinstance(out, Credit) and out.amount_minor == 0 and out.round_id == "r" and out.game_id == ""
    for s in (REPLACED, EXPIRED):
        assert isinstance(credit_to_command(credit(), s, caller=CALLER, amount_minor_max=MAX), Credit)


def test_credit_refusals():
    refused(credit_to_command(credit(), OTHER_USER, caller=CALLER, amount_minor_max=MAX), Code.INVALID_TOKEN, "INVALID_SID")
    refused(credit_to_command(credit(amount="1.001"), LIVE, caller=CALLER, amount_minor_max=MAX), Code.INVALID_AMOUNT,
            "INVALID_PARAMETER")
    refused(credit_to_command(credit(amount="-5"), LIVE, caller=CALLER, amount_minor_max=MAX), Code.INVALID_AMOUNT,
            "INVALID_PARAMETER")
    refused(credit_to_command(credit(currency="ZZZ"), LIVE, caller=CALLER, amount_minor_max=MAX), Code.UNKNOWN_CURRENCY,
            "INVALID_PARAMETER")


def test_cancel_maps_to_rollback_of_the_debit():
    out = cancel_to_command(cancel(), REPLACED, caller=CALLER, amount_minor_max=MAX, origin=ORIGIN)
    assert out == Rollback(scope="demo:evolution", transaction_id="cancel tx-3", partner_id="demo", player_id="p-42",
                           reference_transaction_id="ref-1", currency="EUR", round_id="round-77",
                           origin=ORIGIN)


def test_cancel_currency_falls_back_to_the_session_then_none():
    req = decode_request(body(userId="p-42", transaction={"id": "t", "refId": "r"}), CancelRequest)
    assert cancel_to_command(req, LIVE, caller=CALLER, amount_minor_max=MAX).currency == "EUR"
    out = cancel_to_command(req, None, caller=CALLER, amount_minor_max=MAX)
    assert isinstance(out, Rollback) and out.currency is None and out.round_id is None


def test_cancel_refusals():
    refused(cancel_to_command(cancel(), OTHER_PROVIDER, caller=CALLER, amount_minor_max=MAX), Code.INVALID_TOKEN, "INVALID_SID")
    refused(cancel_to_command(cancel(currency="QQQ"), None, caller=CALLER, amount_minor_max=MAX), Code.UNKNOWN_CURRENCY,
            "INVALID_PARAMETER")
    bad = cancel(transaction={"id": "t", "refId": "r", "amount": 1.234})
    refused(cancel_to_command(bad, None, caller=CALLER, amount_minor_max=MAX), Code.INVALID_AMOUNT, "INVALID_PARAMETER")


def test_promo_payout_maps_to_a_promo_credit_without_bet():
    out = promo_to_command(promo(), None, caller=CALLER, amount_minor_max=MAX, origin=ORIGIN)
    assert out == Credit(scope="demo:evolution", transaction_id="promo pr-1", partner_id="demo", player_id="p-42",
                         currency="EUR", amount_minor=500, round_id="promo pr-1", game_id="", bet_transaction_id=None,
                         round_closed=False, credit_type="promo", origin=ORIGIN)
    jackpot = promo(promoTransaction={"type": "JackpotWin", "id": "pr-2", "amount": 1000.25})
    out = promo_to_command(jackpot, EXPIRED, caller=CALLER, amount_minor_max=MAX)
    assert isinstance(out, Credit) and out.credit_type == "jackpot" and out.amount_minor == 100025


@pytest.mark.parametrize("promo_type,credit_type", [
    ("JackpotWin", "jackpot"), ("jackpot", "jackpot"), ("SomeJACKPOTPayout", "jackpot"),
    ("FreeRoundPlayableSpent", "promo"), ("RewardGamePlayableSpent", "promo"), (None, "promo"), ("", "promo"),
])
def test_promo_credit_type(promo_type, credit_type):
    assert promo_credit_type(promo_type) == credit_type
    assert credit_type in CREDIT_TYPES


def test_promo_refusals():
    refused(promo_to_command(promo(), OTHER_USER, caller=CALLER, amount_minor_max=MAX), Code.INVALID_TOKEN, "INVALID_SID")
    bad = promo(promoTransaction={"id": "x", "amount": -1})
    refused(promo_to_command(bad, None, caller=CALLER, amount_minor_max=MAX), Code.INVALID_AMOUNT, "INVALID_PARAMETER")


def test_balance_to_command():
    req = decode_request(body(sid=LIVE.token, userId="p-42", currency="EUR"), BalanceRequest)
    assert balance_to_command(req, LIVE, caller=CALLER, now_s=NOW) == GetBalance(partner_id="demo", player_id="p-42", currency="EUR")
    refused(balance_to_command(req, USD, caller=CALLER, now_s=NOW), Code.CURRENCY_MISMATCH, "INVALID_PARAMETER")
    refused(balance_to_command(req, EXPIRED, caller=CALLER, now_s=NOW), Code.TOKEN_EXPIRED, "INVALID_SID")
    refused(balance_to_command(req, REPLACED, caller=CALLER, now_s=NOW), Code.INVALID_TOKEN, "INVALID_SID")
    no_currency = decode_request(body(sid=LIVE.token, userId="p-42"), BalanceRequest)
    assert balance_to_command(no_currency, USD, caller=CALLER, now_s=NOW) == GetBalance(partner_id="demo", player_id="p-42", currency="USD")


def test_round_and_game_fallbacks():
    assert round_and_game(None, "ref") == ("ref", "")
    req = decode_request(body(sid="s", userId="p", currency="EUR", game={"type": "roulette"},
                              transaction={"id": "t", "refId": "r", "amount": 1}), DebitRequest)
    assert round_and_game(req.game, "r") == ("r", "roulette")


def test_request_id_keeps_the_raw_ids():
    assert request_id_for(debit()) == "uu-1 tx=tx-1 ref=ref-1"
    assert request_id_for(promo()) == "uu-4 promo=pr-1"
    assert request_id_for(decode_request(body(sid="s", userId="p"), CheckRequest)) is None


# ==== result -> answer ========================================================================


def test_ok_result_answers_cash_and_bonus_in_major_units():
    result = Result(code=Code.OK, currency="EUR", cash_minor=8750, bonus_minor=125)
    assert response_for_result(result, uuid="u", endpoint="/debit") == EvolutionResponse(
        status="OK", balance=W("87.50"), bonus=W("1.25"), uuid="u")


def test_insufficient_funds_carries_the_unchanged_balance():
    result = Result(code=Code.INSUFFICIENT_FUNDS, currency="EUR", cash_minor=1000, bonus_minor=0)
    assert response_for_result(result, uuid="u", endpoint="/debit") == EvolutionResponse(
        status="INSUFFICIENT_FUNDS", balance=W("10.00"), bonus=W("0.00"), uuid="u")


def test_replay_is_the_stored_outcome():
    result = Result(code=Code.OK, currency="EUR", cash_minor=8750, bonus_minor=0, replayed=True)
    assert response_for_result(result, uuid="u", endpoint="/debit").status == "OK"
    assert response_for_result(result, uuid="u", endpoint="/credit").status == "OK"
    # a repeated cancel: "BET_ALREADY_SETTLED or OK" (README.md "Certification", case 16)
    assert response_for_result(result, uuid="u", endpoint="/cancel") == EvolutionResponse(
        status="BET_ALREADY_SETTLED", balance=W("87.50"), bonus=W("0.00"), uuid="u")


def test_tombstoned_cancel_is_bet_does_not_exist():
    """gateway/providers/evolution/README.md licensee test list: cancel with an unknown refId -> BET_DOES_NOT_EXIST."""
    result = Result(code=Code.OK, currency="EUR", cash_minor=1000, bonus_minor=0, tombstoned=True)
    assert response_for_result(result, uuid="u", endpoint="/cancel") == EvolutionResponse(
        status="BET_DOES_NOT_EXIST", balance=W("10.00"), bonus=W("0.00"), uuid="u")
    assert response_for_result(result, uuid="u", endpoint="/credit").status == "OK"  # only cancel reads the flag
    plain = Result(code=Code.OK, currency="EUR", cash_minor=1000, bonus_minor=0)
    assert response_for_result(plain, uuid="u", endpoint="/cancel").status == "OK"


def test_late_debit_of_a_cancelled_ref_id_is_final_error():
    result = Result(code=Code.TRANSACTION_ROLLED_BACK, currency="EUR", cash_minor=1000, bonus_minor=0)
    assert response_for_result(result, uuid="u", endpoint="/debit").status == "FINAL_ERROR_ACTION_FAILED"
    assert response_for_result(result, uuid="u", endpoint="/credit").status == "BET_ALREADY_SETTLED"


def test_result_without_balance_answers_zero():
    """README.md "Answers": every answer carries balance and bonus; zero when unknown."""
    assert response_for_result(Result(code=Code.UNKNOWN_PLAYER), uuid="u", endpoint="/credit",
                               currency="EUR") == EvolutionResponse(
        status="INVALID_PARAMETER", balance=W("0.00"), bonus=W("0.00"), uuid="u")
    assert response_for_result(Result(code=Code.UNKNOWN_PLAYER), uuid="u", endpoint="/cancel") == EvolutionResponse(
        status="INVALID_PARAMETER", balance=W("0"), bonus=W("0"), uuid="u")
    assert encode_response(response_for_result(Result(code=Code.UNKNOWN_PLAYER), uuid=None, endpoint="/debit",
                                               currency="JPY")) == b'{"status":"INVALID_PARAMETER","balance":0,"bonus":0}'


def test_balance_answer():
    result = Result(code=Code.OK, balances=(Balance("USD", 5, 0), Balance("EUR", 1234, 66)))
    assert response_for_balance(result, uuid="u", currency="EUR") == EvolutionResponse(
        status="OK", balance=W("12.34"), bonus=W("0.66"), uuid="u")
    assert response_for_balance(Result(code=Code.OK), uuid="u", currency="EUR") == EvolutionResponse(
        status="INVALID_PARAMETER", balance=W("0.00"), bonus=W("0.00"), uuid="u")
    assert response_for_balance(Result(code=Code.UNKNOWN_PLAYER), uuid="u", currency="EUR").status == \
        "INVALID_PARAMETER"


def test_refusal_answer_carries_the_players_balance_else_zero():
    balances = (Balance("USD", 5, 0), Balance("EUR", 1234, 66))
    refusal = refusal_of(Code.INVALID_TOKEN, "x")
    assert response_for_refusal(refusal, uuid="u", currency="EUR", balances=balances) == EvolutionResponse(
        status="INVALID_SID", balance=W("12.34"), bonus=W("0.66"), uuid="u")
    assert response_for_refusal(refusal, uuid="u", currency="GBP", balances=balances) == EvolutionResponse(
        status="INVALID_SID", balance=W("0.00"), bonus=W("0.00"), uuid="u")
    assert response_for_refusal(refusal, uuid="u", currency="XXX") == EvolutionResponse(
        status="INVALID_SID", balance=W("0"), bonus=W("0"), uuid="u")
    assert response_for_sid_refusal(refusal, uuid="u") == SidResponse(status="INVALID_SID", uuid="u")


def test_refusals_before_decoding():
    """Unauthenticated: no balance (nothing is read); unreadable body: zero."""
    for code in (Code.UNAUTHORIZED, Code.PAYLOAD_TOO_LARGE):
        assert response_for_unread_refusal(refusal_of(code, "x"), uuid="u", currency="EUR") == EvolutionResponse(
            status=status_for(code), uuid="u")
    assert response_for_unread_refusal(refusal_of(Code.INVALID_REQUEST, "x"), uuid=None, currency="EUR") == \
        EvolutionResponse(status="INVALID_PARAMETER", balance=W("0.00"), bonus=W("0.00"))
    assert response_for_unread_refusal(refusal_of(Code.INVALID_REQUEST, "x"), uuid=None, currency=7) == \
        EvolutionResponse(status="INVALID_PARAMETER", balance=W("0"), bonus=W("0"))


def test_unknown_user_turns_a_sid_refusal_into_invalid_parameter():
    """README.md "Certification", case 4 (licensee test checkUsingInvalidUserId)."""
    nobody = Result(code=Code.UNKNOWN_PLAYER)
    known = Result(code=Code.OK, balances=(Balance("EUR", 1, 0),))
    sid_refusal = refusal_of(Code.INVALID_TOKEN, "sid was issued to another user")
    for s in (LIVE, None, EXPIRED, REPLACED, OTHER_USER):
        refused(refusal_for_player(sid_refusal, nobody, s, CALLER), Code.UNKNOWN_PLAYER, "INVALID_PARAMETER")
        assert refusal_for_player(sid_refusal, known, s, CALLER) is sid_refusal  # another existing user's sid
    for s in (OTHER_INTEGRATION, OTHER_PARTNER, OTHER_PROVIDER):  # tenancy: stays INVALID_SID
        assert refusal_for_player(sid_refusal, nobody, s, CALLER) is sid_refusal
    amount = refusal_of(Code.INVALID_AMOUNT, "x")
    assert refusal_for_player(amount, nobody, LIVE, CALLER) is amount


def test_sid_issue_currency():
    """README.md choice 11: /sid issues a session for an existing, active userId holding one wallet."""
    assert sid_issue_currency(Result(code=Code.OK, player_status="active", balances=(Balance("USD", 5, 0),))) == "USD"
    refused(sid_issue_currency(Result(code=Code.OK, player_status="active",
                                      balances=(Balance("USD", 5, 0), Balance("EUR", 1, 0)))),
            Code.CURRENCY_MISMATCH, "INVALID_PARAMETER")
    refused(sid_issue_currency(Result(code=Code.UNKNOWN_PLAYER)), Code.UNKNOWN_PLAYER, "INVALID_PARAMETER")
    for status in ("blocked", "self_excluded"):
        refused(sid_issue_currency(Result(code=Code.OK, player_status=status, balances=(Balance("EUR", 1, 0),))),
                Code.PLAYER_BLOCKED, "ACCOUNT_LOCKED")
    refused(sid_issue_currency(Result(code=Code.OK, player_status="active")), Code.CURRENCY_MISMATCH,
            "INVALID_PARAMETER")


# ==== audit ===================================================================================


def test_audit_request_from_a_struct_never_copies_the_sid():
    audit = audit_request(debit())
    assert audit == {"uuid": "uu-1", "userId": "p-42", "currency": "EUR", "transaction.id": "tx-1",
                     "transaction.refId": "ref-1", "transaction.amount": "12.5", "game.id": "round-77",
                     "game.type": "blackjack", "game.details.table.id": "tbl-1", "sid_sent": True}
    assert LIVE.token not in json.dumps(audit)


def test_audit_request_from_a_json_dict_is_bounded():
    raw = msgspec.json.Decoder(float_hook=Decimal).decode(json.dumps({
        "sid": "secret-sid", "userId": "u" * 1000, "uuid": 5, "transaction": {"amount": 1e400, "id": [1]},
        "promoTransaction": {"amount": 12.345, "remainingRounds": 10**40},
    }).replace("Infinity", "1e400").encode())
    audit = audit_request(raw)
    assert len(audit["userId"]) == 128
    assert audit["uuid"] == 5 and audit["transaction.id"] == "<list>"
    assert audit["promoTransaction.amount"] == "12.345"
    assert audit["promoTransaction.remainingRounds"] == "<out of range>"
    assert "secret-sid" not in json.dumps(audit) and audit["sid_sent"] is True
    assert audit_request(None) == {} and audit_request([1]) == {}


def test_player_id_of_only_plausible_ids():
    assert player_id_of({"userId": "p-42"}) == "p-42"
    assert player_id_of({"userId": "p\u0000x"}) is None
    assert player_id_of({"userId": 42}) is None
    assert player_id_of(None) is None
    assert player_id_of(debit()) == "p-42"


# ==== sessions are bound to their integration (README.md, choice 17) ========================

OTHER_INTEGRATION = session(token="sid-acme-0001", integration="acme-evolution")
OTHER_PARTNER = session(token="sid-part-0001", partner_id="other")


@pytest.mark.parametrize("s", [OTHER_INTEGRATION, OTHER_PARTNER, OTHER_PROVIDER],
                         ids=["other-integration", "other-partner", "other-provider"])
def test_a_sid_of_another_integration_or_partner_is_refused_everywhere(s):
    check = decode_request(body(sid=s.token, userId="p-42", uuid="u"), CheckRequest)
    refused(check_request(check, s, caller=CALLER, now_s=NOW), Code.INVALID_TOKEN, "INVALID_SID")  # /check, /sid
    balance = decode_request(body(sid=s.token, userId="p-42"), BalanceRequest)
    refused(balance_to_command(balance, s, caller=CALLER, now_s=NOW), Code.INVALID_TOKEN, "INVALID_SID")
    refused(debit_to_command(debit(sid=s.token), s, caller=CALLER, now_s=NOW, amount_minor_max=MAX),
            Code.INVALID_TOKEN, "INVALID_SID")
    # settlements proceed with an unknown or absent sid, but not with a foreign one
    refused(credit_to_command(credit(sid=s.token), s, caller=CALLER, amount_minor_max=MAX),
            Code.INVALID_TOKEN, "INVALID_SID")
    refused(cancel_to_command(cancel(sid=s.token), s, caller=CALLER, amount_minor_max=MAX),
            Code.INVALID_TOKEN, "INVALID_SID")
    refused(promo_to_command(promo(sid=s.token), s, caller=CALLER, amount_minor_max=MAX),
            Code.INVALID_TOKEN, "INVALID_SID")


def test_commands_act_for_the_integrations_partner_never_the_sids():
    acme = Caller.of("acme-evolution", "evolution", "acme")
    own = session(token="sid-acme-0002", partner_id="acme", integration="acme-evolution")
    out = debit_to_command(debit(), own, caller=acme, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(out, Debit) and (out.scope, out.partner_id) == ("acme:acme-evolution", "acme")
    for command in (credit_to_command(credit(), None, caller=acme, amount_minor_max=MAX),
                    cancel_to_command(cancel(), None, caller=acme, amount_minor_max=MAX),
                    promo_to_command(promo(), None, caller=acme, amount_minor_max=MAX)):
        assert isinstance(command, (Credit, Rollback))
        assert (command.scope, command.partner_id) == ("acme:acme-evolution", "acme")
    req = decode_request(body(sid=own.token, userId="p-42"), BalanceRequest)
    assert balance_to_command(req, own, caller=acme, now_s=NOW) == GetBalance(
        partner_id="acme", player_id="p-42", currency="EUR")
    refused(debit_to_command(debit(), LIVE, caller=acme, now_s=NOW, amount_minor_max=MAX),
            Code.INVALID_TOKEN, "INVALID_SID")  # demo's sid, same player id


# ==== the adapter of one integration, in-process (fake sessions and wallet) ===================


class FakeSessions:
    def __init__(self, *sessions: GameSession) -> None:
        self.sessions = {s.token: s for s in sessions}
        self.created: list[GameSession] = []

    async def get(self, token: str | None) -> GameSession | None:
        return self.sessions.get(token) if token is not None else None

    async def rotate(self, token: str) -> GameSession | None:
        old = self.sessions.get(token)
        if old is None or old.replaced_by is not None:
            return None
        new = msgspec.structs.replace(old, token=token + "-next")
        self.sessions[token] = msgspec.structs.replace(old, replaced_by=new.token)
        self.sessions[new.token] = new
        return new

    async def create(self, partner_id, player_id, currency, integration, game_id) -> GameSession:
        new = session(token=f"sid-minted-{len(self.created)}", partner_id=partner_id, player_id=player_id,
                      currency=currency, integration=integration, game_id=game_id,
                      expires_at_s=int(time.time()) + 600)
        self.created.append(new)
        self.sessions[new.token] = new
        return new

    async def get_for_settlement(self, token: str | None, scope: str) -> GameSession | None:
        self.settlement_scope = scope
        return await self.get(token)


class FakeWallet:
    """Knows every player but ``NOBODY``; ``BLOCKED`` is blocked."""

    NOBODY = "p-nobody"
    BLOCKED = "p-blocked"

    def __init__(self) -> None:
        self.commands: list = []

    async def submit(self, command) -> Result:
        self.commands.append(command)
        if isinstance(command, RecordRefusal):
            return Result(code=Code.OK)
        if command.player_id == self.NOBODY:
            return Result(code=Code.UNKNOWN_PLAYER)
        if isinstance(command, GetBalance):
            status = "blocked" if command.player_id == self.BLOCKED else "active"
            return Result(code=Code.OK, player_status=status, balances=(Balance("EUR", 10_000, 25),))
        return Result(code=Code.OK, currency="EUR", cash_minor=10_000, bonus_minor=0)


def _live_now(s: GameSession) -> GameSession:
    return msgspec.structs.replace(s, expires_at_s=int(time.time()) + 600)


def _serve(caller: Caller | None, *sessions: GameSession):
    settings = _two_integrations()
    wallet, store = FakeWallet(), FakeSessions(*map(_live_now, sessions))
    ctx = EdgeContext(settings=settings, submit=wallet.submit, sessions=store, edge_id="test:1")  # type: ignore[arg-type]
    adapter = EvolutionAdapter(ctx, caller) if caller is not None else EvolutionAdapter(ctx)
    client = TestClient(Starlette(routes=[Mount("/p", routes=adapter.routes())]))
    return client, wallet, store


def _post(client, path: str, key: str, payload: dict) -> dict:
    resp = client.post(f"/p{path}", params={"authToken": key}, content=json.dumps(payload),
                       headers={"content-type": "application/json"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_adapter_defaults_to_the_sandbox_integration():
    client, wallet, _ = _serve(None, LIVE)
    assert _post(client, "/balance", "acme-evolution-key", {"sid": LIVE.token, "userId": "p-42"})["status"] == \
        "INVALID_TOKEN_ID"
    assert _post(client, "/balance", "demo-evolution-key", {"sid": LIVE.token, "userId": "p-42"})["status"] == "OK"
    (refusal, balance) = wallet.commands
    assert isinstance(refusal, RecordRefusal) and (refusal.scope, refusal.partner_id) == ("demo:evolution", "demo")
    assert balance == GetBalance(partner_id="demo", player_id="p-42", currency="EUR")


def test_adapter_serves_its_integration_only():
    acme = Caller.of("acme-evolution", "evolution", "acme")
    own = session(token="sid-acme-0002", partner_id="acme", integration="acme-evolution")
    client, wallet, store = _serve(acme, own, LIVE)
    debit_body = {"sid": own.token, "userId": "p-42", "uuid": "u1", "currency": "EUR",
                  "transaction": {"id": "t1", "refId": "r1", "amount": 1}}
    assert _post(client, "/debit", "demo-evolution-key", debit_body)["status"] == "INVALID_TOKEN_ID"
    assert _post(client, "/debit", "acme-evolution-key", debit_body)["status"] == "OK"
    assert _post(client, "/debit", "acme-evolution-key", {**debit_body, "sid": LIVE.token})["status"] == "INVALID_SID"
    credit_body = {"sid": LIVE.token, "userId": "p-42", "uuid": "u2", "currency": "EUR",
                   "transaction": {"id": "t2", "refId": "r1", "amount": 2}}
    assert _post(client, "/credit", "acme-evolution-key", credit_body)["status"] == "INVALID_SID"
    assert store.settlement_scope == "acme:acme-evolution"
    assert _post(client, "/credit", "acme-evolution-key", {**credit_body, "sid": None})["status"] == "OK"
    money = [c for c in wallet.commands if not isinstance(c, (RecordRefusal, GetBalance))]
    assert [(type(c), c.scope, c.partner_id) for c in money] == [
        (Debit, "acme:acme-evolution", "acme"), (Credit, "acme:acme-evolution", "acme")]
    refusals = [c for c in wallet.commands if isinstance(c, RecordRefusal)]
    assert {(r.scope, r.partner_id) for r in refusals} == {("acme:acme-evolution", "acme")}
    assert {r.origin.route for r in refusals if r.origin is not None} >= {"acme-evolution /debit", "acme-evolution /credit"}


def test_adapter_refusals_carry_the_balance_and_name_unknown_users():
    """README.md "Answers" and "Certification" case 4, in-process: an adapter refusal reads
    the player (not audited) and answers its balance; an unknown userId with a valid sid of
    another user is INVALID_PARAMETER on /check, /debit, /credit, /cancel (nothing submitted)."""
    client, wallet, store = _serve(None, LIVE)
    key = "demo-evolution-key"
    txn = {"id": "t1", "refId": "r1", "amount": 1}
    assert _post(client, "/debit", key, {"sid": "unknown", "userId": "p-42", "uuid": "u", "currency": "EUR",
                                         "transaction": txn}) == {
        "status": "INVALID_SID", "balance": 100.0, "bonus": 0.25, "uuid": "u"}
    for path in ("/check", "/debit", "/credit", "/cancel"):
        answer = _post(client, path, key, {"sid": LIVE.token, "userId": FakeWallet.NOBODY, "uuid": "u",
                                           "currency": "EUR", "transaction": txn})
        assert answer["status"] == "INVALID_PARAMETER", (path, answer)
    assert not [c for c in wallet.commands if isinstance(c, (Debit, Credit, Rollback))]
    codes = [c.code for c in wallet.commands if isinstance(c, RecordRefusal)]
    assert codes == [Code.INVALID_TOKEN] + [Code.UNKNOWN_PLAYER] * 4
    assert store.sessions[LIVE.token].replaced_by is None  # a refused /check rotates nothing
    # a refused /check answers {status, uuid}: no sid, no balance
    assert _post(client, "/check", key, {"sid": "unknown", "userId": "p-42", "uuid": "u"}) == {
        "status": "INVALID_SID", "uuid": "u"}


def test_sid_issues_a_session_for_an_existing_active_user():
    """README.md choice 11: /sid with any sid -> a new sid of userId on this integration."""
    client, _, store = _serve(None, LIVE)
    key = "demo-evolution-key"
    got = _post(client, "/sid", key, {"sid": "xyz", "userId": "p-77", "uuid": "u", "channel": {"type": "M"}})
    assert got == {"status": "OK", "sid": "sid-minted-0", "uuid": "u"}
    (minted,) = store.created
    assert (minted.partner_id, minted.player_id, minted.currency, minted.integration) == (
        "demo", "p-77", "EUR", "evolution")
    # a live sid of the user is rotated instead (as /check does)
    got = _post(client, "/sid", key, {"sid": LIVE.token, "userId": "p-42"})
    assert got["status"] == "OK" and got["sid"] == LIVE.token + "-next" and len(store.created) == 1
    # another user's sid is not touched: the user named gets a session of its own
    got = _post(client, "/sid", key, {"sid": LIVE.token + "-next", "userId": "p-77"})
    assert got["status"] == "OK" and store.sessions[LIVE.token + "-next"].replaced_by is None
    assert _post(client, "/sid", key, {"sid": "", "userId": FakeWallet.NOBODY}) == {"status": "INVALID_PARAMETER"}
    assert _post(client, "/sid", key, {"sid": "", "userId": FakeWallet.BLOCKED}) == {"status": "ACCOUNT_LOCKED"}
    assert _post(client, "/sid", key, {"userId": "p-77"}) == {"status": "INVALID_PARAMETER"}  # no sid field
    assert _post(client, "/debit", key, {"userId": "p-77"}) == {"status": "INVALID_PARAMETER", "balance": 0, "bonus": 0}
    assert len(store.created) == 2


def test_sid_issuance_can_be_turned_off():
    settings = _two_integrations()
    base = settings.integration("evolution")
    assert isinstance(base, EvolutionSettings) and base.sid_issues_sessions
    off = msgspec.structs.replace(base, sid_issues_sessions=False)
    wallet, store = FakeWallet(), FakeSessions(_live_now(LIVE))
    ctx = EdgeContext(settings=settings, submit=wallet.submit, sessions=store, edge_id="test:1")  # type: ignore[arg-type]
    adapter = EvolutionAdapter(ctx, CALLER, off)
    client = TestClient(Starlette(routes=[Mount("/p", routes=adapter.routes())]))
    assert _post(client, "/sid", "demo-evolution-key", {"sid": "xyz", "userId": "p-42"}) == {"status": "INVALID_SID"}
    assert _post(client, "/sid", "demo-evolution-key", {"sid": LIVE.token, "userId": "p-42"})["status"] == "OK"
    assert store.created == []
