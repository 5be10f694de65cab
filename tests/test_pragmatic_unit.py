"""Pragmatic Play adapter, pure parts: hash, form parsing, amounts, status table, mappings,
sessions bound to their integration; and the adapter bound to one integration, in process
with a fake wallet and session store.

Sources: gateway/providers/pragmatic/README.md ("Common ground"),
gateway/providers/pragmatic/README.md (choices). No network, database or Redis: see
test_pragmatic_http.py for the adapter against a running gateway.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount

with warnings.catch_warnings():  # starlette's TestClient warns about its httpx backend
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from gateway.config import Settings
from gateway.edge.context import EdgeContext
from gateway.edge.game_session import GameSession
from gateway.edge.sessions import SessionStore
from gateway.providers.integration import Caller
from gateway.providers.pragmatic import adapter as rules
from gateway.providers.pragmatic.routes import PragmaticAdapter
from gateway.providers.pragmatic.schemas import (
    FIELDS_MAX,
    VALUE_CHARS_MAX,
    AdjustmentRequest,
    AuthenticateRequest,
    BadFields,
    BadForm,
    BalancePerGameRequest,
    BalanceRequest,
    BetRequest,
    BonusWinRequest,
    EndRoundRequest,
    JackpotWinRequest,
    PragmaticResponse,
    PromoWinRequest,
    RefundRequest,
    ResultRequest,
    RoundDetailsRequest,
    SessionExpiredRequest,
    decode_fields,
    encode_response,
    parse_form,
    split_game_ids,
)
from gateway.providers.pragmatic.settings import BONUS_WIN_CREDIT, BONUS_WIN_RECORD, PragmaticSettings
from gateway.providers.pragmatic.signature import (
    PragmaticHasher,
    canonical_string,
    compute_hash,
    verify_hash,
)
from gateway.providers.pragmatic.statuses import (
    ALL_ERRORS,
    END_ROUND,
    END_ROUND_ERROR,
    ENDPOINT_STATUS,
    STATUS_BY_CODE,
    status_for,
)
from gateway.providers.pragmatic.statuses import RESULT as RESULT_ENDPOINT
from gateway.providers.refusal import Refusal
from gateway.shards.commands import (
    ROUND_ANY,
    ROUND_REQUIRED,
    Atomic,
    Balance,
    Code,
    Command,
    Credit,
    Debit,
    GetBalance,
    RecordRefusal,
    Result,
    Rollback,
)
from tests.helpers import integration_config, sandbox_caller

SECRET = "testKey"
MAX = 10_000_000_000  # money.amount_minor_max default
NOW = 1_700_000_000.0
CALLER = sandbox_caller("pragmatic")  # the sandbox integration: partner "demo", scope "demo:pragmatic"


def signed(params: dict[str, str], secret: str = SECRET) -> dict[str, str]:
    return {**params, "hash": compute_hash(params, secret)}


BET = {
    "providerId": "PragmaticPlay", "userId": "p-1", "token": "tok", "gameId": "vs20doghouse",
    "roundId": "5103188801", "amount": "1.50", "reference": "5c4c3bd3e71a3e0b",
    "timestamp": "1571824123456", "roundDetails": "spin", "bonusCode": "", "platform": "WEB",
}


def session(player: str = "p-1", *, currency: str = "EUR", integration: str = "pragmatic",
            partner: str = "demo", expires: float = NOW + 600,
            replaced_by: str | None = None) -> GameSession:
    return GameSession(token="tok", partner_id=partner, player_id=player, currency=currency,
                       integration=integration, game_id="vs20doghouse", expires_at_s=int(expires),
                       replaced_by=replaced_by)


# ---- hash (gateway/providers/pragmatic/README.md "Hash") ------------------------------------------------


def test_hash_is_md5_of_sorted_params_with_secret_appended():
    params = {"userId": "421", "amount": "100.00", "providerId": "PragmaticPlay"}
    expected = hashlib.md5(b"amount=100.00&providerId=PragmaticPlay&userId=421testKey").hexdigest()
    assert canonical_string(params) == "amount=100.00&providerId=PragmaticPlay&userId=421"
    assert compute_hash(params, SECRET) == expected
    assert verify_hash({**params, "hash": expected}, SECRET)


def test_hash_excludes_itself_and_sorts_by_code_point():
    params = {"b": "2", "a": "1", "B": "3", "hash": "ignored"}
    assert canonical_string(params) == "B=3&a=1&b=2"


def test_correct_hash_verifies_and_case_is_ignored():
    params = signed(BET)
    assert verify_hash(params, SECRET)
    assert verify_hash({**params, "hash": params["hash"].upper()}, SECRET)
    assert PragmaticHasher(SECRET).verify(params)
    assert PragmaticHasher(SECRET).sign(BET) == params["hash"]


def test_wrong_hash_wrong_secret_and_malformed_hash_fail():
    params = signed(BET)
    assert not verify_hash(params, "otherKey")
    assert not verify_hash({**params, "hash": "0" * 32}, SECRET)
    assert not verify_hash({**params, "hash": params["hash"][:31]}, SECRET)
    assert not verify_hash({**params, "hash": params["hash"] + "0"}, SECRET)
    assert not verify_hash({**params, "hash": "z" * 32}, SECRET)
    assert not verify_hash({**params, "hash": ""}, SECRET)


def test_missing_hash_fails():
    assert not verify_hash(dict(BET), SECRET)


@pytest.mark.parametrize("name,value", [("amount", "15.00"), ("userId", "p-2"), ("reference", "x"),
                                        ("roundDetails", "spin2")])
def test_params_altered_after_signing_fail(name, value):
    params = signed(BET)
    params[name] = value
    assert not verify_hash(params, SECRET)


def test_param_added_or_removed_after_signing_fails():
    params = signed(BET)
    assert not verify_hash({**params, "extra": "1"}, SECRET)
    del params["platform"]
    assert not verify_hash(params, SECRET)


def test_body_altered_after_signing_fails():
    body = "&".join(f"{k}={v}" for k, v in signed(BET).items())
    assert verify_hash(parse_form(body.encode()), SECRET)
    tampered = body.replace("amount=1.50", "amount=0.01")
    assert not verify_hash(parse_form(tampered.encode()), SECRET)


def test_parameter_order_is_irrelevant():
    params = signed(BET)
    forward = "&".join(f"{k}={v}" for k, v in params.items())
    backward = "&".join(f"{k}={v}" for k, v in reversed(list(params.items())))
    assert verify_hash(parse_form(forward.encode()), SECRET)
    assert verify_hash(parse_form(backward.encode()), SECRET)


def test_hash_is_over_decoded_values():
    params = {"providerId": "PragmaticPlay", "roundDetails": "a b&c=d/é"}
    body = "providerId=PragmaticPlay&roundDetails=a+b%26c%3Dd%2F%C3%A9&hash=" + compute_hash(params, SECRET)
    assert verify_hash(parse_form(body.encode()), SECRET)


def test_empty_valued_params_included_or_left_out_both_verify():
    """README "Choices": the primary string has ``bonusCode=``; the string without empty
    parameters is accepted too (both need the secret; empty == absent for the adapter)."""
    with_empty = compute_hash(BET, SECRET, include_empty=True)
    without = compute_hash(BET, SECRET, include_empty=False)
    assert with_empty != without
    assert "bonusCode=&" in canonical_string(BET)
    assert "bonusCode" not in canonical_string(BET, include_empty=False)
    assert verify_hash({**BET, "hash": with_empty}, SECRET)
    assert verify_hash({**BET, "hash": without}, SECRET)
    # but not a hash that simply ignores a non-empty parameter
    params = {k: v for k, v in BET.items() if k != "platform"}
    assert not verify_hash({**BET, "hash": compute_hash(params, SECRET)}, SECRET)


def test_empty_secret_is_refused_at_start():
    with pytest.raises(ValueError):
        PragmaticHasher("")


# ---- form parsing (schemas.parse_form / decode_fields) -------------------------------------


def test_parse_form_decodes_plus_and_percent():
    assert parse_form(b"a=1+2&b=%7E&c=") == {"a": "1 2", "b": "~", "c": ""}


@pytest.mark.parametrize("body", [
    b"", b"a=1&a=2", b"a", b"a=1&&b=2", b"{\"userId\":\"1\"}", b"\xff\xfe=1", b"1a=2",
    b"a-b=1", b"a=%ff", ("x" * 65 + "=1").encode(), b"a=" + b"v" * (VALUE_CHARS_MAX + 1),
    "&".join(f"k{i}=1" for i in range(FIELDS_MAX + 1)).encode(),
])
def test_parse_form_refuses_malformed_bodies(body):
    with pytest.raises(BadForm):
        parse_form(body)


def _reference_parse(body: bytes) -> dict[str, str] | None:
    """The model: what ``parse_qsl(strict_parsing=True)`` plus the adapter's rules accept."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
                          encoding="utf-8", errors="strict", max_num_fields=FIELDS_MAX)
    except (UnicodeDecodeError, ValueError):
        return None
    names = [n for n, _ in pairs]
    if (not pairs or len(set(names)) != len(names)
            or any(not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", n) for n in names)
            or any(len(v) > VALUE_CHARS_MAX for _, v in pairs)):
        return None
    return dict(pairs)


_FORM_ALPHABET = st.sampled_from(list("aAz09_=&+%-. ~") + ["%2B", "%26", "%3D", "%C3%A9", "%ff", "%41", "%5F", "é", "\x00"])


@settings(max_examples=500, deadline=None, derandomize=os.environ.get("CI") == "true")
@given(st.one_of(
    st.binary(max_size=64),
    st.lists(_FORM_ALPHABET, max_size=30).map(lambda parts: "".join(parts).encode()),
    st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True), st.text(max_size=12),
                    min_size=1, max_size=8).map(lambda d: urlencode(d).encode()),
))
def test_parse_form_agrees_with_parse_qsl(body):
    """The hand-written parser accepts exactly what parse_qsl and the adapter's rules accept,
    with the same fields (schemas.parse_form's docstring)."""
    expected = _reference_parse(body)
    if expected is None:
        with pytest.raises(BadForm):
            parse_form(body)
    else:
        assert parse_form(body) == expected


def test_parse_form_accepts_the_bounds():
    assert len(parse_form("&".join(f"k{i}=1" for i in range(FIELDS_MAX)).encode())) == FIELDS_MAX
    assert parse_form(b"a=" + b"v" * VALUE_CHARS_MAX)["a"] == "v" * VALUE_CHARS_MAX


def test_decode_fields_ignores_unknown_and_treats_empty_as_absent():
    req = decode_fields({**BET, "language": "en", "ipAddress": "1.2.3.4"}, BetRequest)
    assert req.reference == BET["reference"] and req.bonusCode is None and req.currency is None


@pytest.mark.parametrize("drop", ["userId", "token", "gameId", "roundId", "amount", "reference",
                                  "providerId"])
def test_decode_fields_missing_required_field(drop):
    with pytest.raises(BadFields):
        decode_fields({k: v for k, v in BET.items() if k != drop}, BetRequest)
    with pytest.raises(BadFields):
        decode_fields({**BET, drop: ""}, BetRequest)


def test_decode_fields_bounds_lengths():
    with pytest.raises(BadFields):
        decode_fields({**BET, "reference": "r" * 129}, BetRequest)
    with pytest.raises(BadFields):
        decode_fields({**BET, "token": "t" * 257}, BetRequest)
    with pytest.raises(BadFields):
        decode_fields({**BET, "amount": "1" * 41}, BetRequest)


def test_settlement_requests_need_no_token():
    base = {"providerId": "PragmaticPlay", "userId": "p-1", "reference": "r1", "amount": "1.00"}
    decode_fields({**base, "gameId": "g", "roundId": "rd"}, ResultRequest)
    decode_fields(base, BonusWinRequest)
    decode_fields(base, JackpotWinRequest)
    decode_fields(base, PromoWinRequest)
    decode_fields(base, AdjustmentRequest)
    decode_fields({"providerId": "P", "userId": "p-1", "reference": "r1"}, RefundRequest)
    decode_fields({"providerId": "P", "userId": "p-1", "roundId": "rd"}, EndRoundRequest)
    # balance: token optional in Pragmatic's field list (README.md "Certification")
    assert decode_fields({"providerId": "P", "userId": "p-1"}, BalanceRequest).token is None
    with pytest.raises(BadFields):
        decode_fields({"providerId": "P", "token": "t"}, BalanceRequest)  # userId required


def test_notices_decode_with_their_optional_fields():
    """sessionExpired: every field but providerId optional; roundDetails: userId, roundId."""
    assert decode_fields({"providerId": "P"}, SessionExpiredRequest).token is None
    req = decode_fields({"providerId": "P", "token": "t", "sessionId": "s", "playerId": "p-1"},
                        SessionExpiredRequest)
    assert (req.token, req.sessionId, req.playerId) == ("t", "s", "p-1")
    decode_fields({"providerId": "P", "userId": "p-1", "roundId": "rd", "smResult": "x",
                   "gameCategory": "slots", "betMultiplier": "1"}, RoundDetailsRequest)
    with pytest.raises(BadFields):
        decode_fields({"providerId": "P", "userId": "p-1"}, RoundDetailsRequest)


def test_split_game_ids():
    assert split_game_ids("vs20a, vs25b") == ["vs20a", "vs25b"]
    assert split_game_ids("a,,b") is None
    assert split_game_ids(",".join(["g"] * 101)) is None
    assert split_game_ids("g" * 129) is None


# ---- amounts (rules.amount_minor_from_decimal) --------------------------------------------


@pytest.mark.parametrize("text,currency,expected", [
    ("12.50", "EUR", 1250), ("12.5", "EUR", 1250), ("12", "EUR", 1200), ("0.01", "EUR", 1),
    ("12.500", "EUR", 1250),  # trailing zeros change no value (money.minor_from_decimal_str)
    ("100", "JPY", 100), ("100.0", "JPY", 100), ("1.234", "KWD", 1234), ("0", "EUR", 0),
    ("0.00000001", "BTC", 1), ("100000000.00", "EUR", 10_000_000_000),
])
def test_amount_exact(text, currency, expected):
    assert rules.amount_minor_from_decimal(text, currency, amount_minor_max=MAX, allow_zero=True) == expected


@pytest.mark.parametrize("text,currency", [
    ("12.505", "EUR"), ("1.5", "JPY"), ("1.2345", "KWD"),  # more fraction digits than the currency
    ("1e2", "EUR"), ("1E2", "EUR"), ("NaN", "EUR"), ("Infinity", "EUR"), ("+1.00", "EUR"),
    (" 1.00", "EUR"), ("1.00 ", "EUR"), ("1_000", "EUR"), (".5", "EUR"), ("5.", "EUR"),
    ("1,50", "EUR"), ("0x10", "EUR"), ("", "EUR"), ("-1.00", "EUR"), ("١٢", "EUR"),
    ("100000000.01", "EUR"),  # above amount_minor_max
    ("9" * 20, "EUR"),
])
def test_amount_refused(text, currency):
    out = rules.amount_minor_from_decimal(text, currency, amount_minor_max=MAX, allow_zero=True)
    assert isinstance(out, Refusal) and out.code is Code.INVALID_AMOUNT and out.status == 7, out


def test_amount_zero_negative_and_unknown_currency():
    zero = rules.amount_minor_from_decimal("0.00", "EUR", amount_minor_max=MAX, allow_zero=False)
    assert isinstance(zero, Refusal) and zero.status == 7
    assert rules.amount_minor_from_decimal("-2.50", "EUR", amount_minor_max=MAX, allow_zero=True,
                                           allow_negative=True) == -250
    big = rules.amount_minor_from_decimal("-100000000.01", "EUR", amount_minor_max=MAX,
                                          allow_zero=True, allow_negative=True)
    assert isinstance(big, Refusal)
    unknown = rules.amount_minor_from_decimal("1.00", "XXX", amount_minor_max=MAX, allow_zero=True)
    assert isinstance(unknown, Refusal) and unknown.code is Code.UNKNOWN_CURRENCY and unknown.status == 7


def test_balance_is_exact_decimal_json():
    body = encode_response(PragmaticResponse(
        error=0, description="Success", cash=rules.decimal_from_minor(1250, "EUR"),
        bonus=rules.decimal_from_minor(5, "KWD"), usedPromo=rules.decimal_from_minor(0, "JPY")))
    assert body == b'{"error":0,"description":"Success","cash":12.50,"bonus":0.005,"usedPromo":0}'
    big = encode_response(PragmaticResponse(error=0, description="", cash=rules.decimal_from_minor(
        9_007_199_254_740_993, "EUR")))
    assert b'"cash":90071992547409.93' in big  # beyond a double's precision, still exact


# ---- the status table (statuses.py) --------------------------------------------------------


def test_every_code_has_a_status():
    assert set(STATUS_BY_CODE) == set(Code)
    for code in Code:
        assert STATUS_BY_CODE[code] in ALL_ERRORS


def test_status_rows():
    expected = {
        Code.OK: 0, Code.INSUFFICIENT_FUNDS: 1, Code.UNKNOWN_PLAYER: 2, Code.PLAYER_BLOCKED: 6,
        Code.INVALID_TOKEN: 4, Code.TOKEN_EXPIRED: 4, Code.INVALID_SIGNATURE: 5,
        Code.UNAUTHORIZED: 5, Code.INVALID_REQUEST: 7, Code.INVALID_AMOUNT: 7,
        Code.IDEMPOTENCY_CONFLICT: 7, Code.CURRENCY_MISMATCH: 7, Code.LIMIT_REACHED: 50,
        Code.TRANSACTION_SETTLED: 120, Code.UNKNOWN_TRANSACTION: 120,
        Code.TRANSACTION_ROLLED_BACK: 3,
    }
    for code, error in expected.items():
        assert status_for(code) == error, code
    # refusals are never the success code, and never the retryable one (they are final)
    for code in Code:
        if code is not Code.OK:
            assert status_for(code) not in (0, 100), code


def test_end_round_refusals_are_130():
    assert status_for(Code.OK, endpoint=END_ROUND) == 0
    for code in Code:
        if code is not Code.OK:
            assert status_for(code, endpoint=END_ROUND) == END_ROUND_ERROR


def test_result_refuses_a_round_without_a_live_bet_with_120():
    """README.md "Certification" cases 17-18: on /result.html a round with no bet and a round
    whose bets were all refunded are 120 (T1, IqSoft); elsewhere the rolled-back code stays 3
    (the late bet of a refunded reference). Nothing else differs on /result.html."""
    assert status_for(Code.UNKNOWN_TRANSACTION, endpoint=RESULT_ENDPOINT) == 120
    assert status_for(Code.TRANSACTION_ROLLED_BACK, endpoint=RESULT_ENDPOINT) == 120
    assert status_for(Code.TRANSACTION_ROLLED_BACK) == 3
    assert set(ENDPOINT_STATUS) == {RESULT_ENDPOINT}
    for code in Code:
        if code not in ENDPOINT_STATUS[RESULT_ENDPOINT]:
            assert status_for(code, endpoint=RESULT_ENDPOINT) == status_for(code), code
        assert status_for(code, endpoint=RESULT_ENDPOINT) in ALL_ERRORS


# ---- mappings (adapter.py) -----------------------------------------------------------------


def bet_req(**over) -> BetRequest:
    return decode_fields({**BET, **over}, BetRequest)


def test_bet_maps_to_debit():
    cmd = rules.bet_to_command(bet_req(), session(), caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert cmd == Debit(scope="demo:pragmatic", transaction_id=BET["reference"], partner_id="demo", player_id="p-1",
                        currency="EUR", amount_minor=150, round_id=BET["roundId"],
                        game_id=BET["gameId"])


def test_bet_zero_stake_is_accepted():
    cmd = rules.bet_to_command(bet_req(amount="0.00"), session(), caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(cmd, Debit) and cmd.amount_minor == 0


@pytest.mark.parametrize("sess,code", [
    (None, Code.INVALID_TOKEN),
    (session(expires=NOW - 1), Code.TOKEN_EXPIRED),
    (session(player="p-2"), Code.INVALID_TOKEN),
    (session(integration="hub88"), Code.INVALID_TOKEN),
    (session(replaced_by="new"), Code.INVALID_TOKEN),
])
def test_bet_token_rules(sess, code):
    out = rules.bet_to_command(bet_req(), sess, caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(out, Refusal) and out.code is code and out.status == 4


def test_bet_currency_parameter_must_be_the_sessions():
    ok = rules.bet_to_command(bet_req(currency="EUR"), session(), caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(ok, Debit)
    out = rules.bet_to_command(bet_req(currency="USD"), session(), caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(out, Refusal) and out.code is Code.CURRENCY_MISMATCH and out.status == 7


def test_bet_amount_checked_in_the_sessions_currency():
    out = rules.bet_to_command(bet_req(amount="1.50"), session(currency="JPY"), caller=CALLER, now_s=NOW,
                               amount_minor_max=MAX)
    assert isinstance(out, Refusal) and out.code is Code.INVALID_AMOUNT


RESULT = {"providerId": "PragmaticPlay", "userId": "p-1", "gameId": "vs20", "roundId": "rd1",
          "amount": "2.00", "reference": "res1"}


def test_result_is_a_round_closing_win_naming_no_bet():
    cmd = rules.result_to_command(decode_fields(RESULT, ResultRequest), "EUR", caller=CALLER, amount_minor_max=MAX)
    assert cmd == Credit(scope="demo:pragmatic", transaction_id="res1", partner_id="demo", player_id="p-1", currency="EUR",
                         amount_minor=200, round_id="rd1", game_id="vs20", bet_transaction_id=None,
                         round_closed=True, credit_type="win", round_policy=ROUND_REQUIRED)


def test_result_with_promo_win_is_atomic():
    req = decode_fields({**RESULT, "promoWinAmount": "0.50", "promoWinReference": "promo1"}, ResultRequest)
    cmd = rules.result_to_command(req, "EUR", caller=CALLER, amount_minor_max=MAX)
    assert isinstance(cmd, Atomic) and cmd.player_id == "p-1" and cmd.scope == "demo:pragmatic"
    assert cmd.partner_id == "demo" and all(a.scope == cmd.scope and a.partner_id == "demo" for a in cmd.actions)
    win, promo = cmd.actions
    assert (win.transaction_id, win.credit_type, win.amount_minor, win.round_closed) == ("res1", "win", 200, True)
    assert win.round_policy == ROUND_REQUIRED  # the win needs its round's bet; the unit fails with it
    assert (promo.transaction_id, promo.credit_type, promo.amount_minor) == ("promo1", "promo", 50)


def test_result_promo_edge_cases():
    zero = decode_fields({**RESULT, "promoWinAmount": "0.00"}, ResultRequest)
    assert isinstance(rules.result_to_command(zero, "EUR", caller=CALLER, amount_minor_max=MAX), Credit)
    no_ref = decode_fields({**RESULT, "promoWinAmount": "1.00"}, ResultRequest)
    out = rules.result_to_command(no_ref, "EUR", caller=CALLER, amount_minor_max=MAX)
    assert isinstance(out, Refusal) and out.status == 7
    same = decode_fields({**RESULT, "promoWinAmount": "1.00", "promoWinReference": "res1"}, ResultRequest)
    assert isinstance(rules.result_to_command(same, "EUR", caller=CALLER, amount_minor_max=MAX), Refusal)
    bad = decode_fields({**RESULT, "promoWinAmount": "1.001", "promoWinReference": "p"}, ResultRequest)
    assert isinstance(rules.result_to_command(bad, "EUR", caller=CALLER, amount_minor_max=MAX), Refusal)


@pytest.mark.parametrize("request_type,credit_type", [
    (BonusWinRequest, "bonus"), (JackpotWinRequest, "jackpot"), (PromoWinRequest, "promo")])
def test_wins_have_their_credit_type(request_type, credit_type):
    req = decode_fields({"providerId": "P", "userId": "p-1", "amount": "3.00", "reference": "w1"},
                        request_type)
    cmd = rules.win_to_command(req, credit_type, "EUR", caller=CALLER, amount_minor_max=MAX)
    assert isinstance(cmd, Credit)
    assert (cmd.credit_type, cmd.amount_minor, cmd.transaction_id, cmd.round_id, cmd.game_id,
            cmd.round_closed, cmd.bet_transaction_id) == (credit_type, 300, "w1", "w1", "", False, None)
    assert cmd.round_policy == ROUND_ANY  # the provider's payouts, not a round's game win


def test_bonus_win_recorded_without_credit():
    """``bonus_win = "record"`` (README.md "Certification" case 25): a zero credit under the
    reference; the amount is still checked."""
    req = decode_fields({"providerId": "P", "userId": "p-1", "amount": "3.00", "reference": "w1",
                         "bonusCode": "frb", "roundId": "rd9"}, BonusWinRequest)
    cmd = rules.win_to_command(req, "bonus", "EUR", caller=CALLER, amount_minor_max=MAX, credit=False)
    assert isinstance(cmd, Credit)
    assert (cmd.credit_type, cmd.amount_minor, cmd.transaction_id, cmd.round_id) == ("bonus", 0, "w1", "rd9")
    bad = decode_fields({"providerId": "P", "userId": "p-1", "amount": "3.001", "reference": "w1"},
                        BonusWinRequest)
    out = rules.win_to_command(bad, "bonus", "EUR", caller=CALLER, amount_minor_max=MAX, credit=False)
    assert isinstance(out, Refusal) and out.status == 7


def test_bonus_win_setting():
    """settings.py: "record" by default, "credit" on request, nothing else."""
    def load(**fields):
        return msgspec.convert(integration_config("pragmatic", secret_key="s", **fields), Settings)

    assert load().integration("pragmatic").bonus_win == BONUS_WIN_RECORD
    assert load(bonus_win="credit").integration("pragmatic").bonus_win == BONUS_WIN_CREDIT
    with pytest.raises(msgspec.ValidationError):
        load(bonus_win="both")


def test_end_round_is_a_zero_round_closing_credit():
    req = decode_fields({"providerId": "P", "userId": "p-1", "roundId": "rd1", "gameId": "g"}, EndRoundRequest)
    cmd = rules.end_round_to_command(req, "EUR", caller=CALLER)
    assert cmd == Credit(scope="demo:pragmatic", transaction_id="endRound:p-1:rd1", partner_id="demo", player_id="p-1",
                         currency="EUR", amount_minor=0, round_id="rd1", game_id="g",
                         round_closed=True, credit_type="win")


def test_refund_is_a_rollback_of_the_bet_reference():
    req = decode_fields({"providerId": "P", "userId": "p-1", "reference": "b1", "roundId": "rd"}, RefundRequest)
    assert rules.refund_to_command(req, None, caller=CALLER) == Rollback(
        scope="demo:pragmatic", transaction_id="refund:b1", partner_id="demo", player_id="p-1",
        reference_transaction_id="b1",
        currency=None, round_id="rd")


def test_adjustment_sign():
    base = {"providerId": "P", "userId": "p-1", "reference": "adj1", "roundId": "rd", "gameId": "g"}
    up = rules.adjustment_to_command(decode_fields({**base, "amount": "1.25"}, AdjustmentRequest), "EUR",
                                     caller=CALLER, amount_minor_max=MAX)
    assert isinstance(up, Credit) and up.credit_type == "adjustment" and up.amount_minor == 125
    assert (up.scope, up.partner_id) == ("demo:pragmatic", "demo")
    down = rules.adjustment_to_command(decode_fields({**base, "amount": "-1.25"}, AdjustmentRequest),
                                       "EUR", caller=CALLER, amount_minor_max=MAX)
    assert isinstance(down, Debit) and down.amount_minor == 125 and down.round_id == "rd"
    assert (down.scope, down.partner_id) == ("demo:pragmatic", "demo")
    bad = rules.adjustment_to_command(decode_fields({**base, "amount": "-0.001"}, AdjustmentRequest),
                                      "EUR", caller=CALLER, amount_minor_max=MAX)
    assert isinstance(bad, Refusal)


def test_settlement_token_rules():
    assert rules.check_settlement_session(None, CALLER, "p-1") is None
    assert rules.check_settlement_session(session(expires=NOW - 10_000), CALLER, "p-1") is None
    # a rotated token counts as unknown: ignored, even if it names another user
    assert rules.check_settlement_session(session(replaced_by="new", player="p-2"), CALLER, "p-1") is None
    out = rules.check_settlement_session(session(player="p-2"), CALLER, "p-1")
    assert isinstance(out, Refusal) and out.status == 4
    # a token of another integration is no longer ignored: refused (README.md choice 11)
    out = rules.check_settlement_session(session(integration="hub88", player="p-2"), CALLER, "p-1")
    assert isinstance(out, Refusal) and out.code is Code.INVALID_TOKEN and out.status == 4


def test_settlement_currency_order():
    assert rules.settlement_currency("USD", session(), caller=CALLER) == "USD"
    assert rules.settlement_currency(None, session(), caller=CALLER) == "EUR"
    assert rules.settlement_currency(None, session(integration="hub88"), caller=CALLER) is None
    assert rules.settlement_currency(None, session(partner="other"), caller=CALLER) is None
    assert rules.settlement_currency(None, None, caller=CALLER) is None
    one = Result(code=Code.OK, balances=(Balance("EUR", 1, 0),))
    assert rules.only_wallet_currency(one) == "EUR"
    two = Result(code=Code.OK, balances=(Balance("EUR", 1, 0), Balance("USD", 1, 0)))
    assert isinstance(rules.only_wallet_currency(two), Refusal)
    nobody = rules.only_wallet_currency(Result(code=Code.UNKNOWN_PLAYER))
    assert isinstance(nobody, Refusal) and nobody.status == 2


def test_authenticate_and_balance_commands():
    auth = decode_fields({"providerId": "P", "token": "tok"}, AuthenticateRequest)
    assert rules.authenticate_to_command(auth, session(), caller=CALLER, now_s=NOW) == GetBalance(partner_id="demo", player_id="p-1", currency="EUR")
    assert isinstance(rules.authenticate_to_command(auth, session(expires=NOW - 1), caller=CALLER, now_s=NOW), Refusal)
    bal = decode_fields({"providerId": "P", "token": "tok", "userId": "p-2"}, BalanceRequest)
    out = rules.balance_to_command(bal, session(), caller=CALLER, now_s=NOW)
    assert isinstance(out, Refusal) and out.status == 4
    per_game = decode_fields({"providerId": "P", "userId": "p-1", "gameIdList": "g1"}, BalancePerGameRequest)
    assert rules.balance_per_game_to_command(per_game, None, caller=CALLER, now_s=NOW) == GetBalance(
        partner_id="demo", player_id="p-1", currency=None)
    no_token = decode_fields({"providerId": "P", "userId": "p-1"}, BalanceRequest)
    assert rules.balance_to_command(no_token, None, caller=CALLER, now_s=NOW) == GetBalance(
        partner_id="demo", player_id="p-1", currency=None)
    one = rules.response_for_balance(Result(code=Code.OK, balances=(Balance("EUR", 150, 0),)), None)
    assert (one.error, one.currency, one.cash) == (0, "EUR", Decimal("1.50"))
    two = Result(code=Code.OK, balances=(Balance("EUR", 1, 0), Balance("USD", 1, 0)))
    assert rules.response_for_balance(two, None).error == 7  # no session: which wallet?


@pytest.mark.parametrize("params,sess,expired", [
    ({"token": "tok"}, session(), True),
    ({"token": "tok", "playerId": "p-1"}, session(), True),
    ({"token": "tok", "userId": "p-1"}, session(), True),
    ({"token": "tok", "playerId": "p-2"}, session(), False),  # names another player
    ({"token": "tok"}, session(integration="hub88"), False),  # not ours
    ({"token": "tok"}, session(expires=NOW - 1), False),  # already over
    ({"token": "tok"}, session(replaced_by="new"), False),
    ({"token": "tok"}, None, False),
    ({}, session(), False),
])
def test_session_expired_expires_only_a_live_session_of_ours(params, sess, expired):
    req = decode_fields({"providerId": "P", **params}, SessionExpiredRequest)
    assert rules.token_to_expire(req, sess, caller=CALLER, now_s=NOW) == ("tok" if expired else None)


# ---- sessions are bound to their integration (README.md choice 11) ---------------------------

OTHER_INTEGRATION = session(integration="hub88")
OTHER_PRAGMATIC_INTEGRATION = session(integration="pragmatic-b")  # same provider, other contract
OTHER_PARTNER = session(partner="other")


@pytest.mark.parametrize("sess", [OTHER_INTEGRATION, OTHER_PRAGMATIC_INTEGRATION, OTHER_PARTNER],
                         ids=["other-integration", "other-pragmatic-integration", "other-partner"])
def test_a_token_of_another_integration_or_partner_is_refused_everywhere(sess):
    """Every endpoint that reads a session: bet, authenticate, balance, getBalancePerGame (live
    checks) and the settlements (result, wins, endRound, refund, adjustment all go through
    ``check_settlement_session``). Each answers 4, even for a live token naming ``userId``."""
    def refused(out):
        assert isinstance(out, Refusal) and out.code is Code.INVALID_TOKEN and out.status == 4, out

    refused(rules.bet_to_command(bet_req(), sess, caller=CALLER, now_s=NOW, amount_minor_max=MAX))
    auth = decode_fields({"providerId": "P", "token": "tok"}, AuthenticateRequest)
    refused(rules.authenticate_to_command(auth, sess, caller=CALLER, now_s=NOW))
    bal = decode_fields({"providerId": "P", "token": "tok", "userId": "p-1"}, BalanceRequest)
    refused(rules.balance_to_command(bal, sess, caller=CALLER, now_s=NOW))
    per_game = decode_fields({"providerId": "P", "token": "tok", "userId": "p-1", "gameIdList": "g1"},
                             BalancePerGameRequest)
    refused(rules.balance_per_game_to_command(per_game, sess, caller=CALLER, now_s=NOW))
    refused(rules.check_settlement_session(sess, CALLER, "p-1"))
    # expired makes no difference on settlements: still not this integration's token
    refused(rules.check_settlement_session(msgspec.structs.replace(sess, expires_at_s=int(NOW) - 1), CALLER, "p-1"))
    assert rules.usable_session(sess, CALLER) is None
    assert rules.usable_session(session(), CALLER) == session()


# ---- responses --------------------------------------------------------------------------


def test_money_response_success_and_replay():
    result = Result(code=Code.OK, player_id="p-1", currency="EUR", cash_minor=9850, bonus_minor=0,
                    ledger_transaction_id=77, replayed=True)
    first = rules.response_for_money(result, used_promo=True)
    assert (first.error, first.transactionId, first.cash, first.bonus, first.usedPromo) == (
        0, "77", Decimal("98.50"), Decimal("0.00"), Decimal("0.00"))
    assert b'"transactionId":"77"' in encode_response(first)  # a JSON string (README.md "Certification")
    now = rules.Money("EUR", 5000, 25)
    replay = rules.response_for_money(result, current=now)
    assert (replay.transactionId, replay.cash, replay.bonus) == ("77", Decimal("50.00"), Decimal("0.25"))


def test_money_response_refusals():
    poor = Result(code=Code.INSUFFICIENT_FUNDS, currency="EUR", cash_minor=100, bonus_minor=5,
                  ledger_transaction_id=9)
    out = rules.response_for_money(poor)
    assert (out.error, out.transactionId, out.cash, out.bonus) == (1, None, Decimal("1.00"), Decimal("0.05"))
    blocked = rules.response_for_money(Result(code=Code.PLAYER_BLOCKED, currency="EUR", cash_minor=1,
                                              bonus_minor=0))
    assert blocked.error == 6
    end = rules.response_for_money(Result(code=Code.IDEMPOTENCY_CONFLICT), endpoint=END_ROUND)
    assert end.error == 130
    ok_end = rules.response_for_money(Result(code=Code.OK, currency="EUR", cash_minor=1, bonus_minor=0,
                                             ledger_transaction_id=5), endpoint=END_ROUND)
    assert ok_end.error == 0 and ok_end.transactionId is None
    for code in (Code.UNKNOWN_TRANSACTION, Code.TRANSACTION_ROLLED_BACK):
        no_bet = rules.response_for_money(Result(code=code, currency="EUR", cash_minor=1, bonus_minor=0),
                                          endpoint=RESULT_ENDPOINT, used_promo=True)
        assert (no_bet.error, no_bet.transactionId, no_bet.cash) == (120, None, Decimal("0.01")), code


def test_atomic_response_names_the_wins_transaction():
    result = Result(code=Code.OK, currency="EUR", cash_minor=1, bonus_minor=0, results=(
        Result(code=Code.OK, ledger_transaction_id=41), Result(code=Code.OK, ledger_transaction_id=42)))
    assert rules.response_for_money(result).transactionId == "41"


def test_authenticate_response():
    result = Result(code=Code.OK, player_id="p-1", balances=(Balance("EUR", 1000, 50),), country="MT",
                    player_status="active")
    out = rules.response_for_authenticate(result, session())
    assert (out.error, out.userId, out.token, out.currency, out.cash, out.bonus, out.country, out.jurisdiction) == (
        0, "p-1", "tok", "EUR", Decimal("10.00"), Decimal("0.50"), "MT", "MT")
    frozen = rules.response_for_authenticate(
        Result(code=Code.OK, balances=(Balance("EUR", 1, 0),), player_status="self_excluded"), session())
    assert frozen.error == 6 and frozen.cash is None
    missing = rules.response_for_authenticate(Result(code=Code.OK, balances=()), session())
    assert missing.error == 7


def test_balance_per_game_response():
    result = Result(code=Code.OK, balances=(Balance("EUR", 1000, 0),))
    out = rules.response_for_balance_per_game(result, None, ["a", "b"])
    assert [g.gameID for g in out.gamesBalances] == ["a", "b"]
    assert out.gamesBalances[0].cash == Decimal("10.00")
    assert b'"gamesBalances":[{"gameID":"a","cash":10.00,"bonus":0.00}' in encode_response(out)


def test_audit_never_copies_token_or_hash():
    out = rules.audit_request(signed({**BET, "token": "secret-token", "amount": "x" * 500}))
    assert "secret-token" not in repr(out) and signed(BET)["hash"] not in repr(out)
    assert out["token_sent"] is True and out["hash_sent"] is True
    assert len(out["amount"]) == 128
    assert rules.audit_request(None) == {}
    assert rules.user_of({"userId": "u" * 300}) == "u" * 128


# ---- the adapter bound to one integration (routes.py), in process with fakes ----------------


LATER = 4_000_000_000  # Unix seconds (2096): sessions live while these tests run on the real clock


class FakeSessions:
    """``SessionStore``'s two reads over a dict (the real settlement policy over ``get``)."""

    def __init__(self, *sessions: GameSession) -> None:
        self.sessions = {s.token: s for s in sessions}
        self.expired: list[str] = []

    async def get(self, token: str) -> GameSession | None:
        return self.sessions.get(token)

    async def expire_now(self, token: str) -> None:
        self.expired.append(token)

    get_for_settlement = SessionStore.get_for_settlement


class FakeWallet:
    """Records every command; answers OK with a 100.00 EUR wallet."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.sessions: FakeSessions | None = None

    async def submit(self, command: Command) -> Result:
        self.commands.append(command)
        if isinstance(command, GetBalance):
            return Result(code=Code.OK, player_id=command.player_id, balances=(Balance("EUR", 10_000, 0),),
                          country="MT", player_status="active")
        if isinstance(command, Debit | Credit | Rollback):
            return Result(code=Code.OK, player_id=command.player_id, currency="EUR", cash_minor=10_000,
                          bonus_minor=0, ledger_transaction_id=1)
        return Result(code=Code.OK)

    def of(self, kind: type) -> list:
        return [c for c in self.commands if isinstance(c, kind)]


def adapter_client(caller: Caller | None = None, integration: str = "pragmatic", partner: str = "demo",
                   *sessions: GameSession, **fields: str) -> tuple[TestClient, FakeWallet]:
    """An app with one PragmaticAdapter for ``integration`` of ``partner`` (secret ``SECRET``,
    providerId ``PP-test``, other settings ``fields``) mounted at ``/providers/<integration>``.
    The wallet's ``sessions`` attribute is the fake session store."""
    data = integration_config("pragmatic", secret_key=SECRET, provider_id="PP-test", **fields)
    if integration != "pragmatic" or partner != "demo":
        data["partners"][partner] = {"api_keys": []}
        data["integrations"] = {integration: {"provider": "pragmatic", "partner_id": partner,
                                              "secret_key": SECRET, "provider_id": "PP-test", **fields}}
    config = msgspec.convert(data, Settings)
    wallet = FakeWallet()
    wallet.sessions = FakeSessions(*sessions)
    ctx = EdgeContext(settings=config, submit=wallet.submit, sessions=wallet.sessions,
                      edge_id="test:1")
    found = config.integration(integration)
    assert isinstance(found, PragmaticSettings)
    adapter = PragmaticAdapter(ctx) if caller is None else PragmaticAdapter(ctx, caller, found)
    app = Starlette(routes=[Mount(f"/providers/{integration}", routes=adapter.routes())])
    return TestClient(app), wallet


def call(client: TestClient, integration: str, endpoint: str, params: dict[str, str],
         provider_id: str = "PP-test") -> dict:
    body = urlencode(signed({**params, "providerId": provider_id}))
    resp = client.post(f"/providers/{integration}/{endpoint}", content=body,
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_the_sandbox_adapter_reads_its_integrations_settings():
    """``PragmaticAdapter(ctx)``: the integration named "pragmatic", its secret and providerId;
    commands in scope "demo:pragmatic" for partner "demo"."""
    client, wallet = adapter_client(None, "pragmatic", "demo", session(expires=LATER))
    with client:
        assert call(client, "pragmatic", "bet.html", BET)["error"] == 0
        # another providerId is refused (5), and audited under the integration's scope
        assert call(client, "pragmatic", "bet.html", BET, provider_id="PragmaticPlay")["error"] == 5
    (debit,) = wallet.of(Debit)
    assert (debit.scope, debit.partner_id, debit.player_id) == ("demo:pragmatic", "demo", "p-1")
    (refusal,) = wallet.of(RecordRefusal)
    assert (refusal.scope, refusal.partner_id, refusal.code) == ("demo:pragmatic", "demo", Code.UNAUTHORIZED)


def test_an_integration_acts_for_its_partner_only():
    """Integration "pp-b" of partner "acme": every command (and GetBalance) is acme's, in
    scope "acme:pp-b"; the sandbox integration's token (partner demo) is refused with 4 on
    bets, balance reads and settlements alike, and audited under acme's scope."""
    caller = Caller.of("pp-b", "pragmatic", "acme")
    ours = session(partner="acme", integration="pp-b", expires=LATER)
    theirs = msgspec.structs.replace(session(expires=LATER), token="demo-tok")  # integration "pragmatic", partner "demo"
    client, wallet = adapter_client(caller, "pp-b", "acme", ours, theirs)
    result = {"userId": "p-1", "gameId": "vs20", "roundId": "rd1", "amount": "2.00", "reference": "res1"}
    with client:
        assert call(client, "pp-b", "bet.html", BET)["error"] == 0
        assert call(client, "pp-b", "authenticate.html", {"token": "tok"})["userId"] == "p-1"
        assert call(client, "pp-b", "result.html", result)["error"] == 0  # no token: the only wallet
        wallet.commands.clear()
        for endpoint, params in [
            ("bet.html", {**BET, "token": "demo-tok"}),
            ("authenticate.html", {"token": "demo-tok"}),
            ("balance.html", {"token": "demo-tok", "userId": "p-1"}),
            ("getBalancePerGame.html", {"token": "demo-tok", "userId": "p-1", "gameIdList": "g1"}),
            ("result.html", {**result, "token": "demo-tok"}),
            ("bonusWin.html", {"userId": "p-1", "amount": "1.00", "reference": "b1", "token": "demo-tok"}),
            ("endRound.html", {"userId": "p-1", "roundId": "rd1", "token": "demo-tok"}),
            ("refund.html", {"userId": "p-1", "reference": "x", "token": "demo-tok"}),
            ("adjustment.html", {"userId": "p-1", "amount": "1.00", "reference": "a1", "token": "demo-tok"}),
        ]:
            out = call(client, "pp-b", endpoint, params)
            assert out["error"] == 4, (endpoint, out)
    refusals = wallet.of(RecordRefusal)
    assert len(refusals) == 9 and len(wallet.commands) == 9  # nothing submitted but the audits
    assert {(r.scope, r.partner_id, r.code) for r in refusals} == {("acme:pp-b", "acme", Code.INVALID_TOKEN)}


def test_an_integrations_commands_and_lookups_name_its_partner():
    caller = Caller.of("pp-b", "pragmatic", "acme")
    client, wallet = adapter_client(caller, "pp-b", "acme", session(partner="acme", integration="pp-b", expires=LATER))
    result = {"userId": "p-1", "gameId": "vs20", "roundId": "rd1", "amount": "2.00", "reference": "res1"}
    with client:
        assert call(client, "pp-b", "bet.html", BET)["error"] == 0
        assert call(client, "pp-b", "result.html", result)["error"] == 0
        assert call(client, "pp-b", "refund.html", {"userId": "p-1", "reference": "b9", "token": "tok"})["error"] == 0
        assert call(client, "pp-b", "balance.html", {"token": "tok", "userId": "p-1"})["error"] == 0
    money = wallet.of(Debit) + wallet.of(Credit) + wallet.of(Rollback)
    assert len(money) == 3 and {(c.scope, c.partner_id) for c in money} == {("acme:pp-b", "acme")}
    lookups = wallet.of(GetBalance)
    assert lookups and {g.partner_id for g in lookups} == {"acme"}


BONUS_WIN = {"userId": "p-1", "amount": "4.00", "reference": "bw1", "bonusCode": "frb-1", "roundId": "rd7"}


@pytest.mark.parametrize("fields,credited", [({}, 0), ({"bonus_win": "record"}, 0),
                                              ({"bonus_win": "credit"}, 400)])
def test_bonus_win_follows_the_integrations_setting(fields, credited):
    """README.md "Certification" case 25: the default records the bonus's total with 0 (its
    free rounds' results paid it); ``bonus_win = "credit"`` credits it."""
    client, wallet = adapter_client(None, "pragmatic", "demo", **fields)
    with client:
        out = call(client, "pragmatic", "bonusWin.html", BONUS_WIN)
    assert out["error"] == 0 and out["transactionId"] == "1", out
    (credit,) = wallet.of(Credit)
    assert (credit.credit_type, credit.amount_minor, credit.transaction_id) == ("bonus", credited, "bw1")


def test_session_expired_and_round_details_are_acknowledged():
    """README.md "Certification" case 31: both answer 0 and move no money; sessionExpired
    expires the live session it names, and nothing else."""
    client, wallet = adapter_client(None, "pragmatic", "demo", session(expires=LATER))
    with client:
        assert call(client, "pragmatic", "sessionExpired.html",
                    {"token": "tok", "playerId": "p-1", "sessionId": "pp-s1"}) == {
            "error": 0, "description": "Success"}
        assert call(client, "pragmatic", "sessionExpired.html", {"token": "unknown"})["error"] == 0
        assert call(client, "pragmatic", "sessionExpired.html", {"sessionId": "pp-s2"})["error"] == 0
        assert call(client, "pragmatic", "roundDetails.html",
                    {"userId": "p-1", "roundId": "rd1", "smResult": "x", "gameCategory": "slots",
                     "betMultiplier": "1"}) == {"error": 0, "description": "Success"}
        assert call(client, "pragmatic", "roundDetails.html", {"userId": "p-1"})["error"] == 7
        assert call(client, "pragmatic", "sessionExpired.html", {"token": "tok"},
                    provider_id="Other")["error"] == 5
    assert wallet.sessions is not None and wallet.sessions.expired == ["tok"]
    assert not [c for c in wallet.commands if not isinstance(c, RecordRefusal)]
