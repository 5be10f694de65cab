"""Evolution One Wallet adapter, pure parts: schemas, amounts, status table, authToken check,
request -> Command and Result -> answer mappings, audit records.

Source: gateway/providers/evolution/README.md ("Protocol facts", "Common ground"); docs/DESIGN.md
sections 3 (money) and 5 (idempotency); gateway/providers/evolution/README.md (choices).
No gateway process here; ``tests/test_evolution_http.py`` runs the same rules over HTTP.
"""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
import pytest

from gateway.config import ProviderSettings
from gateway.edge.game_session import GameSession
from gateway.providers.evolution import PREFIX, Adapter
from gateway.providers.evolution.adapter import (
    SCOPE,
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
    refusal_of,
    request_id_for,
    response_for_balance,
    response_for_new_sid,
    response_for_refusal,
    response_for_result,
    round_and_game,
)
from gateway.providers.evolution.auth import AuthTokenCheck
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
from gateway.providers.evolution.statuses import (
    ALL_STATUSES,
    RETRYABLE_EXCEPTIONS,
    RETRYABLE_STATUS,
    RETRYABLE_STATUSES,
    STATUS_BY_CODE,
    status_for,
)
from gateway.providers.refusal import Refusal
from gateway.shards.commands import (
    CREDIT_TYPES,
    Balance,
    Code,
    Credit,
    Debit,
    GetBalance,
    Origin,
    Overloaded,
    Result,
    Rollback,
    ShardUnavailable,
)

NOW = 1_700_000_000.0
MAX = 10_000_000_000
ORIGIN = Origin(edge="h:1", route="evolution /debit", request_id="q", received_at_us=1)


def session(**kw) -> GameSession:
    base = {"token": "sid-live-0001", "player_id": "p-42", "currency": "EUR", "provider": "evolution",
                "game_id": "lobby", "expires_at_s": int(NOW) + 60}
    return GameSession(**{**base, **kw})


LIVE = session()
EXPIRED = session(token="sid-expired-01", expires_at_s=int(NOW) - 1)
REPLACED = session(token="sid-replaced-1", replaced_by="sid-new-00001")
OTHER_USER = session(token="sid-other-0001", player_id="p-mallory")
OTHER_PROVIDER = session(token="sid-hub88-0001", provider="hub88")
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
        refused(debit_to_command(req, LIVE, now_s=NOW, amount_minor_max=MAX), Code.INVALID_AMOUNT,
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
        "FINAL_ERROR_ACTION_FAILED", "OPERATION_IN_PROCESS",
    } == ALL_STATUSES
    assert set(STATUS_BY_CODE.values()) <= ALL_STATUSES
    assert RETRYABLE_STATUS == "TEMPORARY_ERROR" and RETRYABLE_STATUS in RETRYABLE_STATUSES
    assert RETRYABLE_STATUSES <= ALL_STATUSES


@pytest.mark.parametrize("code,status", [
    (Code.OK, "OK"),
    (Code.INSUFFICIENT_FUNDS, "INSUFFICIENT_FUNDS"),
    (Code.IDEMPOTENCY_CONFLICT, "BET_ALREADY_EXIST"),
    (Code.UNKNOWN_TRANSACTION, "BET_DOES_NOT_EXIST"),
    (Code.TRANSACTION_SETTLED, "BET_ALREADY_SETTLED"),
    (Code.TRANSACTION_ROLLED_BACK, "BET_ALREADY_SETTLED"),
    (Code.PLAYER_BLOCKED, "FINAL_ERROR_ACTION_FAILED"),
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
    providers = ProviderSettings()
    check = AuthTokenCheck(providers.evolution.auth_token)
    assert check.verify([providers.evolution.auth_token])
    assert not check.verify([providers.softswiss.auth_token])
    assert not check.verify([providers.pragmatic.secret_key])


def test_empty_configured_key_refuses_everything():
    check = AuthTokenCheck("")
    assert not check.verify([""]) and not check.verify(["anything"])


# ==== sessions ================================================================================


def test_live_sid_rules():
    assert check_live_sid(LIVE, "p-42", NOW) is None
    refused(check_live_sid(None, "p-42", NOW), Code.INVALID_TOKEN, "INVALID_SID")
    refused(check_live_sid(REPLACED, "p-42", NOW), Code.INVALID_TOKEN, "INVALID_SID")
    refused(check_live_sid(EXPIRED, "p-42", NOW), Code.TOKEN_EXPIRED, "INVALID_SID")
    refused(check_live_sid(OTHER_USER, "p-42", NOW), Code.INVALID_TOKEN, "INVALID_SID")
    refused(check_live_sid(OTHER_PROVIDER, "p-42", NOW), Code.INVALID_TOKEN, "INVALID_SID")
    refused(check_live_sid(LIVE, "p-42", LIVE.expires_at_s), Code.TOKEN_EXPIRED, "INVALID_SID")
    assert check_live_sid(LIVE, "p-42", LIVE.expires_at_s - 0.001) is None


def test_settlement_sid_rules():
    """gateway/providers/evolution/README.md Common ground: wins and rollbacks accepted with an expired session."""
    for s in (None, LIVE, EXPIRED, REPLACED):
        assert check_settlement_sid(s, "p-42") is None
    refused(check_settlement_sid(OTHER_USER, "p-42"), Code.INVALID_TOKEN, "INVALID_SID")
    refused(check_settlement_sid(OTHER_PROVIDER, "p-42"), Code.INVALID_TOKEN, "INVALID_SID")


def test_check_request():
    req = decode_request(body(sid=LIVE.token, userId="p-42", uuid="u"), CheckRequest)
    assert check_request(req, LIVE, now_s=NOW) is None
    refused(check_request(req, REPLACED, now_s=NOW), Code.INVALID_TOKEN, "INVALID_SID")
    refused(check_request(req, EXPIRED, now_s=NOW), Code.TOKEN_EXPIRED, "INVALID_SID")
    assert response_for_new_sid(session(token="sid-new"), uuid="u") == SidResponse(status="OK", sid="sid-new", uuid="u")


# ==== request -> command ======================================================================


def test_debit_maps_to_debit_under_the_ref_id():
    out = debit_to_command(debit(), LIVE, now_s=NOW, amount_minor_max=MAX, origin=ORIGIN)
    assert out == Debit(scope="evolution", transaction_id="ref-1", player_id="p-42", currency="EUR",
                        amount_minor=1250, round_id="round-77", game_id="tbl-1", origin=ORIGIN)
    assert SCOPE == "evolution" and debit_key("ref-1") == "ref-1"


def test_debit_session_refusals():
    for s, code in ((None, Code.INVALID_TOKEN), (EXPIRED, Code.TOKEN_EXPIRED), (REPLACED, Code.INVALID_TOKEN),
                    (OTHER_USER, Code.INVALID_TOKEN), (OTHER_PROVIDER, Code.INVALID_TOKEN)):
        refused(debit_to_command(debit(), s, now_s=NOW, amount_minor_max=MAX), code, "INVALID_SID")


def test_debit_currency_must_be_the_sessions():
    refused(debit_to_command(debit(), USD, now_s=NOW, amount_minor_max=MAX), Code.CURRENCY_MISMATCH,
            "INVALID_PARAMETER")
    refused(debit_to_command(debit(currency="XXX"), LIVE, now_s=NOW, amount_minor_max=MAX),
            Code.UNKNOWN_CURRENCY, "INVALID_PARAMETER")


@pytest.mark.parametrize("amount", ["12.505", "-1", "1e30", '"NaN"'])
def test_debit_bad_amount(amount):
    refused(debit_to_command(debit(amount=amount), LIVE, now_s=NOW, amount_minor_max=MAX), Code.INVALID_AMOUNT,
            "INVALID_PARAMETER")


def test_zero_debit_is_a_free_bet():
    out = debit_to_command(debit(amount="0"), LIVE, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(out, Debit) and out.amount_minor == 0


def test_credit_maps_to_credit_of_the_debit():
    out = credit_to_command(credit(), EXPIRED, amount_minor_max=MAX, origin=ORIGIN)
    assert out == Credit(scope="evolution", transaction_id="credit tx-2", player_id="p-42", currency="EUR",
                         amount_minor=2000, round_id="round-77", game_id="tbl-1",
                         bet_transaction_id="ref-1", round_closed=False, credit_type="win", origin=ORIGIN)


def test_keys_of_different_kinds_never_collide():
    """README.md choice 5: a credit, cancel or promo whose id equals a debit's refId (or each
    other's) gets another key; the space of the prefixes never occurs in an Evolution id."""
    ref = "same-id"
    keys = {
        debit_to_command(debit(transaction={"id": ref, "refId": ref, "amount": 0}), LIVE, now_s=NOW,
                         amount_minor_max=MAX).transaction_id,
        credit_to_command(credit(transaction={"id": ref, "refId": ref, "amount": 0}), LIVE,
                          amount_minor_max=MAX).transaction_id,
        cancel_to_command(cancel(transaction={"id": ref, "refId": ref}), LIVE, amount_minor_max=MAX).transaction_id,
        promo_to_command(promo(promoTransaction={"id": ref, "amount": 1}), LIVE, amount_minor_max=MAX).transaction_id,
    }
    assert keys == {"same-id", "credit same-id", "cancel same-id", "promo same-id"}
    with pytest.raises(BadRequest):  # an id that would forge another kind's key is not an id
        decode_request(body(sid="s", userId="p", currency="EUR",
                            transaction={"id": "t", "refId": "credit x", "amount": 1}), DebitRequest)


def test_credit_zero_is_valid_and_needs_no_sid():
    """gateway/providers/evolution/README.md licensee test list: a zero-amount credit is valid."""
    req = decode_request(body(userId="p-42", currency="EUR", transaction={"id": "t", "refId": "r", "amount": 0}),
                         CreditRequest)
    out = credit_to_command(req, None, amount_minor_max=MAX)
    assert isinstance(out, Credit) and out.amount_minor == 0 and out.round_id == "r" and out.game_id == ""
    for s in (REPLACED, EXPIRED):
        assert isinstance(credit_to_command(credit(), s, amount_minor_max=MAX), Credit)


def test_credit_refusals():
    refused(credit_to_command(credit(), OTHER_USER, amount_minor_max=MAX), Code.INVALID_TOKEN, "INVALID_SID")
    refused(credit_to_command(credit(amount="1.001"), LIVE, amount_minor_max=MAX), Code.INVALID_AMOUNT,
            "INVALID_PARAMETER")
    refused(credit_to_command(credit(amount="-5"), LIVE, amount_minor_max=MAX), Code.INVALID_AMOUNT,
            "INVALID_PARAMETER")
    refused(credit_to_command(credit(currency="ZZZ"), LIVE, amount_minor_max=MAX), Code.UNKNOWN_CURRENCY,
            "INVALID_PARAMETER")


def test_cancel_maps_to_rollback_of_the_debit():
    out = cancel_to_command(cancel(), REPLACED, amount_minor_max=MAX, origin=ORIGIN)
    assert out == Rollback(scope="evolution", transaction_id="cancel tx-3", player_id="p-42",
                           reference_transaction_id="ref-1", currency="EUR", round_id="round-77",
                           origin=ORIGIN)


def test_cancel_currency_falls_back_to_the_session_then_none():
    req = decode_request(body(userId="p-42", transaction={"id": "t", "refId": "r"}), CancelRequest)
    assert cancel_to_command(req, LIVE, amount_minor_max=MAX).currency == "EUR"
    out = cancel_to_command(req, None, amount_minor_max=MAX)
    assert isinstance(out, Rollback) and out.currency is None and out.round_id is None


def test_cancel_refusals():
    refused(cancel_to_command(cancel(), OTHER_PROVIDER, amount_minor_max=MAX), Code.INVALID_TOKEN, "INVALID_SID")
    refused(cancel_to_command(cancel(currency="QQQ"), None, amount_minor_max=MAX), Code.UNKNOWN_CURRENCY,
            "INVALID_PARAMETER")
    bad = cancel(transaction={"id": "t", "refId": "r", "amount": 1.234})
    refused(cancel_to_command(bad, None, amount_minor_max=MAX), Code.INVALID_AMOUNT, "INVALID_PARAMETER")


def test_promo_payout_maps_to_a_promo_credit_without_bet():
    out = promo_to_command(promo(), None, amount_minor_max=MAX, origin=ORIGIN)
    assert out == Credit(scope="evolution", transaction_id="promo pr-1", player_id="p-42", currency="EUR",
                         amount_minor=500, round_id="promo pr-1", game_id="", bet_transaction_id=None,
                         round_closed=False, credit_type="promo", origin=ORIGIN)
    jackpot = promo(promoTransaction={"type": "JackpotWin", "id": "pr-2", "amount": 1000.25})
    out = promo_to_command(jackpot, EXPIRED, amount_minor_max=MAX)
    assert isinstance(out, Credit) and out.credit_type == "jackpot" and out.amount_minor == 100025


@pytest.mark.parametrize("promo_type,credit_type", [
    ("JackpotWin", "jackpot"), ("jackpot", "jackpot"), ("SomeJACKPOTPayout", "jackpot"),
    ("FreeRoundPlayableSpent", "promo"), ("RewardGamePlayableSpent", "promo"), (None, "promo"), ("", "promo"),
])
def test_promo_credit_type(promo_type, credit_type):
    assert promo_credit_type(promo_type) == credit_type
    assert credit_type in CREDIT_TYPES


def test_promo_refusals():
    refused(promo_to_command(promo(), OTHER_USER, amount_minor_max=MAX), Code.INVALID_TOKEN, "INVALID_SID")
    bad = promo(promoTransaction={"id": "x", "amount": -1})
    refused(promo_to_command(bad, None, amount_minor_max=MAX), Code.INVALID_AMOUNT, "INVALID_PARAMETER")


def test_balance_to_command():
    req = decode_request(body(sid=LIVE.token, userId="p-42", currency="EUR"), BalanceRequest)
    assert balance_to_command(req, LIVE, now_s=NOW) == GetBalance(player_id="p-42", currency="EUR")
    refused(balance_to_command(req, USD, now_s=NOW), Code.CURRENCY_MISMATCH, "INVALID_PARAMETER")
    refused(balance_to_command(req, EXPIRED, now_s=NOW), Code.TOKEN_EXPIRED, "INVALID_SID")
    refused(balance_to_command(req, REPLACED, now_s=NOW), Code.INVALID_TOKEN, "INVALID_SID")
    no_currency = decode_request(body(sid=LIVE.token, userId="p-42"), BalanceRequest)
    assert balance_to_command(no_currency, USD, now_s=NOW) == GetBalance(player_id="p-42", currency="USD")


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
    assert response_for_result(result, uuid="u") == EvolutionResponse(
        status="OK", balance=W("87.50"), bonus=W("1.25"), uuid="u")


def test_insufficient_funds_carries_the_unchanged_balance():
    result = Result(code=Code.INSUFFICIENT_FUNDS, currency="EUR", cash_minor=1000, bonus_minor=0)
    assert response_for_result(result, uuid="u") == EvolutionResponse(
        status="INSUFFICIENT_FUNDS", balance=W("10.00"), bonus=W("0.00"), uuid="u")


def test_replay_is_the_stored_outcome():
    result = Result(code=Code.OK, currency="EUR", cash_minor=8750, bonus_minor=0, replayed=True)
    assert response_for_result(result, uuid="u").status == "OK"


def test_tombstoned_cancel_is_bet_does_not_exist():
    """gateway/providers/evolution/README.md licensee test list: cancel with an unknown refId -> BET_DOES_NOT_EXIST."""
    result = Result(code=Code.OK, currency="EUR", cash_minor=1000, bonus_minor=0, tombstoned=True)
    assert response_for_result(result, uuid="u", cancel=True) == EvolutionResponse(
        status="BET_DOES_NOT_EXIST", balance=W("10.00"), bonus=W("0.00"), uuid="u")
    assert response_for_result(result, uuid="u").status == "OK"  # only cancel reads the flag
    plain = Result(code=Code.OK, currency="EUR", cash_minor=1000, bonus_minor=0)
    assert response_for_result(plain, uuid="u", cancel=True).status == "OK"


def test_result_without_balance_answers_status_only():
    assert response_for_result(Result(code=Code.UNKNOWN_PLAYER), uuid="u") == EvolutionResponse(
        status="INVALID_PARAMETER", uuid="u")


def test_balance_answer():
    result = Result(code=Code.OK, balances=(Balance("USD", 5, 0), Balance("EUR", 1234, 66)))
    assert response_for_balance(result, uuid="u", currency="EUR") == EvolutionResponse(
        status="OK", balance=W("12.34"), bonus=W("0.66"), uuid="u")
    assert response_for_balance(Result(code=Code.OK), uuid="u", currency="EUR") == EvolutionResponse(
        status="INVALID_PARAMETER", uuid="u")
    assert response_for_balance(Result(code=Code.UNKNOWN_PLAYER), uuid="u", currency="EUR").status == \
        "INVALID_PARAMETER"


def test_refusal_answer_has_no_balance():
    answer = response_for_refusal(refusal_of(Code.INVALID_TOKEN, "x"), uuid="u")
    assert answer == EvolutionResponse(status="INVALID_SID", uuid="u")


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
