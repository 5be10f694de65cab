"""Hub88 request decoding, amount conversion and the status table.

Source: gateway/providers/hub88/README.md ("Request fields", "Amounts", "Statuses").
"""

from __future__ import annotations

import msgspec
import pytest

from gateway.edge.game_session import SessionStoreUnavailable
from gateway.providers.hub88.adapter import amount_minor_from_wire, balance_to_wire
from gateway.providers.hub88.schemas import (
    AMOUNT_SCALE,
    BalanceRequest,
    BetRequest,
    Hub88Response,
    MissingField,
    RollbackRequest,
    UserInfoRequest,
    UserInfoResponse,
    WinRequest,
    WrongSyntax,
    WrongTypes,
    decode_request,
    encode_response,
)
from gateway.providers.hub88.settings import Hub88Settings
from gateway.providers.hub88.statuses import (
    ALL_STATUSES,
    MISSING_FIELD_STATUS,
    RETRYABLE_EXCEPTIONS,
    RETRYABLE_STATUS,
    STATUS_BY_CODE,
    SYNTAX_STATUS,
    UNKNOWN_GAME_STATUS,
    status_for,
)
from gateway.providers.refusal import Refusal
from gateway.shards.commands import Code, Overloaded, ShardUnavailable

MAX = 10_000_000_000

BET = {
    "user": "john12345",
    "transaction_uuid": "16d2dcfe-b89e-11e7-854a-58404eea6d16",
    "supplier_transaction_id": "41ecc3ad-b181-4235-bf9d-acf0a5ad9730",
    "token": "55b7518e-b89e-11e7-81be-58404eea6d16",
    "supplier_user": "cg_45141",
    "round_closed": True,
    "round": "rNEMwgzJAOZ6eR3V",
    "reward_uuid": "a28f93f2-98c5-41f7-8fbb-967985acf8fe",
    "request_uuid": "583c985f-fee6-4c0e-bbf5-308aad6265af",
    "is_free": False,
    "is_aggregated": False,
    "game_code": "clt_dragonrising",
    "currency": "EUR",
    "bet": "zero",
    "amount": 356000,
    "meta": {"selection": "home_team", "odds": 2.5},
}


def enc(obj: object) -> bytes:
    return msgspec.json.encode(obj)


# ---- decoding -----------------------------------------------------------------------


def test_bet_decodes_all_spec_fields():
    req = decode_request(enc(BET), BetRequest)
    assert req.user == "john12345"
    assert req.transaction_uuid == BET["transaction_uuid"]
    assert req.amount == 356000 and req.currency == "EUR"
    assert req.round == "rNEMwgzJAOZ6eR3V" and req.round_closed is True
    assert req.game_code == "clt_dragonrising"
    assert req.is_free is False and req.reward_uuid == BET["reward_uuid"]


def test_unknown_fields_are_ignored():
    req = decode_request(enc({**BET, "brand_new_field": [1, {"x": None}], "game_id": 7}), BetRequest)
    assert req.amount == 356000


def test_optional_fields_may_be_absent_or_null():
    minimal = {k: BET[k] for k in ("user", "transaction_uuid", "token", "game_code", "currency", "amount")}
    req = decode_request(enc(minimal), BetRequest)
    assert req.round is None and req.request_uuid is None and req.is_free is None
    req = decode_request(enc({**minimal, "round": None, "reward_uuid": None}), BetRequest)
    assert req.round is None


def test_win_and_rollback_do_not_need_a_token():
    win = {k: v for k, v in BET.items() if k != "token"}
    win["reference_transaction_uuid"] = "bet-1"
    assert decode_request(enc(win), WinRequest).token is None
    rollback = {
        "user": "john12345",
        "transaction_uuid": "rb-1",
        "reference_transaction_uuid": "bet-1",
        "round": "r1",
        "round_closed": True,
        "request_uuid": "q",
        "game_code": "g",
    }
    req = decode_request(enc(rollback), RollbackRequest)
    assert req.token is None and req.currency is None


def test_balance_and_info_requests():
    req = decode_request(enc({"request_uuid": "q", "token": "t" * 10, "user": "u1", "game_id": 132}), BalanceRequest)
    assert req.game_id == 132
    # Hub88's own signed test vector body for balance
    raw = b'{"game_id":132,"request_uuid":"583c985f-fee6-4c0e-bbf5-308aad6265af","token":"55b7518e-b89e-11e7-81be-58404eea6d16"}'
    req = decode_request(raw, BalanceRequest)
    assert req.user is None and req.token.startswith("55b7518e")
    info = decode_request(b'{"user":"john12345","request_uuid":"q"}', UserInfoRequest)
    assert info.token is None


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"not json", b'{"user": "a",}', b"\xff\xfe", enc(BET) + b" trailing", enc(BET)[:-1]],
)
def test_wrong_json_is_wrong_syntax(body):
    with pytest.raises(WrongSyntax):
        decode_request(body, BetRequest)


@pytest.mark.parametrize(
    "amount_literal",
    [
        b"356000.0",  # a float: no floats on money paths
        b"3.56",
        b"3.56e5",
        b'"356000"',
        b"true",
        b"null",
        b"9" * 5000,  # beyond msgspec's integer range
    ],
)
def test_non_integer_amount_is_wrong_types(amount_literal):
    body = enc(BET).replace(b'"amount":356000', b'"amount":' + amount_literal)
    assert body != enc(BET)
    with pytest.raises(WrongTypes):
        decode_request(body, BetRequest)


@pytest.mark.parametrize(
    "change",
    [
        {"user": 12345},
        {"round_closed": "yes"},
        {"transaction_uuid": ""},
        {"transaction_uuid": "x" * 129},
        {"token": "t" * 257},
        {"currency": None},
        {"is_free": 1},
    ],
)
def test_wrong_field_types_are_wrong_types(change):
    with pytest.raises(WrongTypes):
        decode_request(enc({**BET, **change}), BetRequest)


@pytest.mark.parametrize("missing", ["user", "transaction_uuid", "token", "currency", "amount", "game_code"])
def test_missing_required_bet_field_is_missing_field(missing):
    """README choice 5: a missing required field is the request's form (RS_ERROR_WRONG_SYNTAX)."""
    with pytest.raises(MissingField, match=missing):
        decode_request(enc({k: v for k, v in BET.items() if k != missing}), BetRequest)


def test_empty_informational_strings_are_accepted():
    """README choice 13: ``round``, ``request_uuid``, ``supplier_*``, ``bet``, ``reward_uuid``
    and (on wins and rollbacks) ``game_code`` may be ``""``; money ids may not."""
    empty = {"round": "", "request_uuid": "", "supplier_user": "", "supplier_transaction_id": "",
             "bet": "", "reward_uuid": ""}
    assert decode_request(enc({**BET, **empty}), BetRequest).round == ""
    win = {**BET, **empty, "reference_transaction_uuid": "bet-1", "game_code": ""}
    assert decode_request(enc(win), WinRequest).game_code == ""
    rollback = {"user": "u", "transaction_uuid": "rb", "reference_transaction_uuid": "bet-1", "round": "",
                "request_uuid": "", "game_code": ""}
    assert decode_request(enc(rollback), RollbackRequest).round == ""
    for field in ("user", "transaction_uuid", "token", "game_code", "currency"):
        with pytest.raises(WrongTypes):
            decode_request(enc({**BET, field: ""}), BetRequest)
    with pytest.raises(WrongTypes):
        decode_request(enc({**win, "reference_transaction_uuid": ""}), WinRequest)


def test_null_for_a_required_field_is_wrong_types():
    with pytest.raises(WrongTypes):
        decode_request(enc({**BET, "user": None}), BetRequest)


def test_win_needs_its_bet_reference():
    """README "Certification" 15: ``reference_transaction_uuid`` is required (Caleta's
    wallet_win_body, the Hub88-style SDK); missing -> MissingField, null or "" -> WrongTypes."""
    win = {**BET, "reference_transaction_uuid": "bet-1"}
    assert decode_request(enc(win), WinRequest).reference_transaction_uuid == "bet-1"
    with pytest.raises(MissingField, match="reference_transaction_uuid"):
        decode_request(enc(BET), WinRequest)
    for bad in (None, "", 7):
        with pytest.raises(WrongTypes):
            decode_request(enc({**win, "reference_transaction_uuid": bad}), WinRequest)


def test_supplier_promo_flag_decodes():
    """Hub88 changelog 26 May 2025: ``is_supplier_promo`` on bets and wins."""
    assert decode_request(enc({**BET, "is_supplier_promo": True}), BetRequest).is_supplier_promo is True
    assert decode_request(enc(BET), BetRequest).is_supplier_promo is None
    win = {**BET, "reference_transaction_uuid": "bet-1", "is_supplier_promo": False}
    assert decode_request(enc(win), WinRequest).is_supplier_promo is False


def test_non_object_json_is_wrong_types():
    with pytest.raises(WrongTypes):
        decode_request(b"[1, 2]", BetRequest)


def test_rollback_needs_reference():
    with pytest.raises(MissingField):
        decode_request(enc({"user": "u", "transaction_uuid": "t"}), RollbackRequest)


def test_empty_object_is_missing_fields():
    for request_type in (BetRequest, WinRequest, RollbackRequest, BalanceRequest, UserInfoRequest):
        with pytest.raises(MissingField):
            decode_request(b"{}", request_type)


def test_response_encoding_has_spec_fields_in_order():
    body = encode_response(
        Hub88Response(user="john12345", status="RS_OK", request_uuid="q", currency="EUR", balance=100500)
    )
    assert body == b'{"user":"john12345","status":"RS_OK","request_uuid":"q","currency":"EUR","balance":100500}'
    assert encode_response(Hub88Response(status="RS_ERROR_WRONG_SYNTAX")) == b'{"status":"RS_ERROR_WRONG_SYNTAX"}'
    info = encode_response(UserInfoResponse(user="u", status="RS_OK", country="EE"))
    assert msgspec.json.decode(info) == {"user": "u", "status": "RS_OK", "country": "EE"}


# ---- amounts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount,currency,minor",
    [
        (356000, "EUR", 356),  # the spec's example: EUR 3.56
        (100000, "EUR", 100),
        (1000, "EUR", 1),
        (100000, "JPY", 1),
        (100, "KWD", 1),  # 0.001 KWD
        (1, "BTC", 1000),  # 0.00001 BTC = 1000 satoshi
        (MAX * 1000, "EUR", MAX),
    ],
)
def test_exact_amounts_convert(amount, currency, minor):
    assert amount_minor_from_wire(amount, currency, amount_minor_max=MAX, allow_zero=False) == minor


@pytest.mark.parametrize(
    "amount,currency,allow_zero,why",
    [
        (356001, "EUR", False, "not exact in cents"),
        (999, "EUR", False, "below one cent"),
        (50000, "JPY", False, "half a yen"),
        (10, "KWD", False, "below one fils"),
        (-356000, "EUR", False, "negative"),
        (-356000, "EUR", True, "negative"),
        (0, "EUR", False, "zero bet"),
        (MAX * 1000 + 1000, "EUR", False, "above amount_minor_max"),
        (10**40, "EUR", True, "far above the maximum"),
    ],
)
def test_bad_amounts_refused(amount, currency, allow_zero, why):
    out = amount_minor_from_wire(amount, currency, amount_minor_max=MAX, allow_zero=allow_zero)
    assert isinstance(out, Refusal), why
    assert out.code is Code.INVALID_AMOUNT
    assert out.status == "RS_ERROR_WRONG_TYPES"


def test_zero_allowed_for_wins():
    assert amount_minor_from_wire(0, "EUR", amount_minor_max=MAX, allow_zero=True) == 0


@pytest.mark.parametrize("currency", ["XXX", "eur", "", "EURO"])
def test_unknown_currency_is_wrong_currency(currency):
    out = amount_minor_from_wire(356000, currency, amount_minor_max=MAX, allow_zero=False)
    assert isinstance(out, Refusal)
    assert out.code is Code.CURRENCY_MISMATCH and out.status == "RS_ERROR_WRONG_CURRENCY"


def test_balance_to_wire():
    assert AMOUNT_SCALE == 100_000
    assert balance_to_wire(1005, "EUR") == 1005000
    assert balance_to_wire(7, "JPY") == 700000
    assert balance_to_wire(1001, "KWD") == 100100
    # BTC has 8 decimals, Hub88 shows 5: rounds toward zero, never above the real balance
    assert balance_to_wire(1999, "BTC") == 1
    assert balance_to_wire(0, "EUR") == 0


# ---- status table -------------------------------------------------------------------


def test_every_code_has_a_status():
    assert set(STATUS_BY_CODE) == set(Code)
    for code in Code:
        assert status_for(code) in ALL_STATUSES


def test_status_values_are_hub88_statuses():
    assert set(STATUS_BY_CODE.values()) <= ALL_STATUSES
    assert SYNTAX_STATUS == "RS_ERROR_WRONG_SYNTAX" and RETRYABLE_STATUS == "RS_ERROR_UNKNOWN"
    assert MISSING_FIELD_STATUS == "RS_ERROR_WRONG_SYNTAX"  # Hub88: "doesn't match expected request form"
    assert UNKNOWN_GAME_STATUS == "RS_ERROR_INVALID_GAME"  # Hub88: "Unknown game_code"
    assert len(ALL_STATUSES) == 15


@pytest.mark.parametrize(
    "code,status",
    [
        (Code.OK, "RS_OK"),
        (Code.INSUFFICIENT_FUNDS, "RS_ERROR_NOT_ENOUGH_MONEY"),
        (Code.IDEMPOTENCY_CONFLICT, "RS_ERROR_DUPLICATE_TRANSACTION"),
        (Code.UNKNOWN_TRANSACTION, "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"),
        (Code.TRANSACTION_ROLLED_BACK, "RS_ERROR_TRANSACTION_ROLLED_BACK"),
        (Code.TRANSACTION_SETTLED, "RS_ERROR_DUPLICATE_TRANSACTION"),
        (Code.UNKNOWN_PLAYER, "RS_ERROR_INVALID_TOKEN"),
        (Code.CURRENCY_MISMATCH, "RS_ERROR_WRONG_CURRENCY"),
        (Code.PLAYER_BLOCKED, "RS_ERROR_USER_DISABLED"),
        (Code.LIMIT_REACHED, "RS_ERROR_USER_DISABLED"),
        (Code.TOKEN_EXPIRED, "RS_ERROR_TOKEN_EXPIRED"),
        (Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN"),
        (Code.INVALID_SIGNATURE, "RS_ERROR_INVALID_SIGNATURE"),
        (Code.INVALID_AMOUNT, "RS_ERROR_WRONG_TYPES"),
        (Code.INVALID_REQUEST, "RS_ERROR_WRONG_TYPES"),
        (Code.UNAUTHORIZED, "RS_ERROR_INVALID_PARTNER"),
        (Code.PLAYER_EXISTS, "RS_ERROR_UNKNOWN"),
    ],
)
def test_status_table_entries(code, status):
    assert status_for(code) == status


def test_retryable_exceptions():
    for exc in (Overloaded(), ShardUnavailable(), SessionStoreUnavailable("down")):
        assert isinstance(exc, RETRYABLE_EXCEPTIONS)


# ---- settings -----------------------------------------------------------------------


def test_game_codes_setting():
    """``game_codes`` (README "Certification" 13): a list in TOML, empty by default."""
    keys = {"partner_id": "demo", "provider_public_key_path": "a.pem", "operator_private_key_path": "b.pem"}
    default = msgspec.convert({"provider": "hub88", **keys}, Hub88Settings)
    assert default.game_codes == () and default.problems() == []
    listed = msgspec.convert({"provider": "hub88", **keys, "game_codes": ["clt_dragonrising", "g2"]}, Hub88Settings)
    assert listed.game_codes == ("clt_dragonrising", "g2") and listed.problems() == []
    for bad in ([""], ["x" * 129]):
        assert msgspec.convert({"provider": "hub88", **keys, "game_codes": bad}, Hub88Settings).problems()
