"""Hub88 request -> Command mappings and Result -> response, as pure functions.

Source: gateway/providers/hub88/README.md ("Rules") and "Common ground"; docs/DESIGN.md section 5.
"""

from __future__ import annotations

import msgspec
import pytest

from gateway.edge.game_session import GameSession
from gateway.providers.hub88.adapter import (
    BalanceCheck,
    audit_request,
    balance_check_refusal,
    balance_to_command,
    bet_to_command,
    info_to_command,
    refusal_of,
    response_for_balance,
    response_for_refusal,
    response_for_result,
    rollback_to_command,
    syntax_refusal,
    win_to_command,
)
from gateway.providers.hub88.schemas import (
    BalanceRequest,
    BetRequest,
    RollbackRequest,
    UserInfoRequest,
    UserInfoResponse,
    WinRequest,
)
from gateway.providers.refusal import Refusal
from gateway.shards.commands import (
    Balance,
    Code,
    Credit,
    Debit,
    GetBalance,
    Origin,
    Result,
    Rollback,
)
from tests.helpers import sandbox_caller

NOW = 1_700_000_000.0
MAX = 10_000_000_000
CALLER = sandbox_caller("hub88")
ORIGIN = Origin(edge="h:1", route="hub88 /transaction/bet", request_id="q", received_at_us=1)

LIVE = GameSession(
    token="tok-live-000", player_id="john12345", currency="EUR", partner_id="demo", integration="hub88",
    game_id="clt_dragonrising", expires_at_s=int(NOW) + 60,
)
EXPIRED = GameSession(
    token="tok-expired-0", player_id="john12345", currency="EUR", partner_id="demo", integration="hub88",
    game_id="clt_dragonrising", expires_at_s=int(NOW) - 1,
)
OTHER_USER = GameSession(
    token="tok-other-000", player_id="mallory99", currency="EUR", partner_id="demo", integration="hub88",
    game_id="clt_dragonrising", expires_at_s=int(NOW) + 60,
)
USD = GameSession(
    token="tok-usd-00000", player_id="john12345", currency="USD", partner_id="demo", integration="hub88",
    game_id="clt_dragonrising", expires_at_s=int(NOW) + 60,
)


def bet(**kw) -> BetRequest:
    base = {
        "token": "tok-live-000", "user": "john12345", "transaction_uuid": "bet-1",
        "game_code": "clt_dragonrising", "currency": "EUR", "amount": 356000, "round": "round-1",
        "request_uuid": "q",
    }
    return BetRequest(**{**base, **kw})


def win(**kw) -> WinRequest:
    base = {
        "token": "tok-live-000", "user": "john12345", "transaction_uuid": "win-1",
        "reference_transaction_uuid": "bet-1", "game_code": "clt_dragonrising", "currency": "EUR",
        "amount": 712000, "round": "round-1", "round_closed": True, "request_uuid": "q",
    }
    return WinRequest(**{**base, **kw})


def rollback(**kw) -> RollbackRequest:
    base = {
        "token": "tok-live-000", "user": "john12345", "transaction_uuid": "rb-1",
        "reference_transaction_uuid": "bet-1", "round": "round-1", "request_uuid": "q",
    }
    return RollbackRequest(**{**base, **kw})


def refused(out, code: Code, status: str) -> None:
    assert isinstance(out, Refusal), out
    assert out.code is code and out.status == status, out


# ---- bet ------------------------------------------------------------------------------


def test_bet_maps_to_debit():
    out = bet_to_command(bet(), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX, origin=ORIGIN)
    assert out == Debit(
        scope=CALLER.scope, partner_id="demo", transaction_id="bet-1", player_id="john12345", currency="EUR",
        amount_minor=356, round_id="round-1", game_id="clt_dragonrising", origin=ORIGIN,
    )
    assert CALLER.scope == "demo:hub88"


def test_bet_with_unknown_token_refused():
    refused(bet_to_command(bet(), None, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")


def test_bet_with_expired_token_refused():
    refused(bet_to_command(bet(), EXPIRED, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Code.TOKEN_EXPIRED, "RS_ERROR_TOKEN_EXPIRED")


def test_bet_expires_exactly_at_expiry_second():
    ok = bet_to_command(bet(), LIVE, caller=CALLER, now_s=LIVE.expires_at_s - 0.001, amount_minor_max=MAX)
    assert isinstance(ok, Debit)
    refused(bet_to_command(bet(), LIVE, caller=CALLER, now_s=LIVE.expires_at_s, amount_minor_max=MAX), Code.TOKEN_EXPIRED, "RS_ERROR_TOKEN_EXPIRED")


def test_bet_with_another_users_token_refused():
    refused(bet_to_command(bet(), OTHER_USER, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")


def test_bet_in_another_currency_than_the_session_refused():
    refused(bet_to_command(bet(), USD, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Code.CURRENCY_MISMATCH, "RS_ERROR_WRONG_CURRENCY")


@pytest.mark.parametrize("amount", [0, -356000, -1])
def test_bet_with_bad_amount_refused(amount):
    refused(bet_to_command(bet(amount=amount), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Code.INVALID_AMOUNT, "RS_ERROR_WRONG_TYPES")


@pytest.mark.parametrize("amount", [356001, 1, 2**31 - 1, MAX * 1000 + 1000])
def test_bet_that_cannot_be_debited_as_sent_needs_the_balance(amount):
    """A positive stake not exact in EUR cents, or above the maximum: never rounded, never
    debited; the answer depends on the balance (README "Certification" 5 and 28)."""
    out = bet_to_command(bet(amount=amount), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(out, BalanceCheck), out
    assert (out.partner_id, out.player_id, out.currency, out.amount_wire) == ("demo", "john12345", "EUR", amount)
    assert out.refusal.code is Code.INVALID_AMOUNT and out.refusal.status == "RS_ERROR_WRONG_TYPES"
    assert out.balance_command() == GetBalance(partner_id="demo", player_id="john12345", currency="EUR")


def test_undebitable_bet_checks_the_token_and_currency_first():
    refused(bet_to_command(bet(amount=356001), None, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")
    refused(bet_to_command(bet(amount=356001), EXPIRED, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Code.TOKEN_EXPIRED, "RS_ERROR_TOKEN_EXPIRED")
    refused(bet_to_command(bet(amount=356001), USD, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Code.CURRENCY_MISMATCH, "RS_ERROR_WRONG_CURRENCY")


@pytest.mark.parametrize("balance_minor,amount_wire,status,balance_wire", [
    (100_000, 100_000_001, "RS_ERROR_NOT_ENOUGH_MONEY", 100_000_000),  # Caleta: balance + 0.00001
    (100_000, 2**31 - 1, "RS_ERROR_NOT_ENOUGH_MONEY", 100_000_000),  # Caleta: int32 max
    (0, 1, "RS_ERROR_NOT_ENOUGH_MONEY", 0),
    (-500, 1, "RS_ERROR_NOT_ENOUGH_MONEY", -500_000),  # a debt
    (100_000, 356_001, "RS_ERROR_WRONG_TYPES", None),  # fits: the amount itself is wrong
    (100_000, 100_000_000 - 1, "RS_ERROR_WRONG_TYPES", None),
])
def test_balance_check_refusal(balance_minor, amount_wire, status, balance_wire):
    check = bet_to_command(bet(amount=amount_wire), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(check, BalanceCheck)
    result = Result(code=Code.OK, balances=(Balance("EUR", balance_minor, 0),))
    refusal, wire = balance_check_refusal(check, result)
    assert refusal.status == status
    assert refusal.code is (Code.INSUFFICIENT_FUNDS if status == "RS_ERROR_NOT_ENOUGH_MONEY" else Code.INVALID_AMOUNT)
    if balance_wire is not None:
        assert wire == balance_wire


def test_balance_check_without_a_balance_is_wrong_types():
    check = bet_to_command(bet(amount=356001), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(check, BalanceCheck)
    for result in (Result(code=Code.UNKNOWN_PLAYER), Result(code=Code.OK, balances=(Balance("USD", 1, 0),))):
        refusal, wire = balance_check_refusal(check, result)
        assert (refusal.status, wire) == ("RS_ERROR_WRONG_TYPES", None)


def test_bet_respects_configured_maximum():
    out = bet_to_command(bet(amount=356000), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=355)
    assert isinstance(out, BalanceCheck) and out.refusal.code is Code.INVALID_AMOUNT
    assert isinstance(bet_to_command(bet(amount=356000), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=356), Debit)


def test_bet_in_unknown_currency_refused():
    refused(bet_to_command(bet(currency="XXX"), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Code.CURRENCY_MISMATCH, "RS_ERROR_WRONG_CURRENCY")


def test_free_bet_is_a_zero_debit():
    out = bet_to_command(bet(is_free=True, reward_uuid="rw"), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(out, Debit) and out.amount_minor == 0
    out = bet_to_command(bet(is_free=True, amount=0), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(out, Debit) and out.amount_minor == 0
    # a free bet's amount must still be a valid amount
    refused(bet_to_command(bet(is_free=True, amount=356001), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Code.INVALID_AMOUNT, "RS_ERROR_WRONG_TYPES")


def test_supplier_promo_bet_is_a_zero_debit_even_with_an_expired_token():
    """Hub88 changelog, 26 May 2025: a supplier promotion's bet has amount 0 (is_free implied)
    and its token must not be checked for expiry, but must be valid."""
    out = bet_to_command(bet(is_supplier_promo=True, amount=0), EXPIRED, caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(out, Debit) and out.amount_minor == 0
    out = bet_to_command(bet(is_supplier_promo=True, amount=356000), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(out, Debit) and out.amount_minor == 0  # never charged
    refused(bet_to_command(bet(is_supplier_promo=True, amount=0), None, caller=CALLER, now_s=NOW, amount_minor_max=MAX),
            Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")
    refused(bet_to_command(bet(is_supplier_promo=True, amount=0), OTHER_USER, caller=CALLER, now_s=NOW, amount_minor_max=MAX),
            Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")
    # without the flag a zero bet is still refused, and an expired token too
    refused(bet_to_command(bet(is_supplier_promo=False, amount=0), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX),
            Code.INVALID_AMOUNT, "RS_ERROR_WRONG_TYPES")
    refused(bet_to_command(bet(is_free=True, amount=0), EXPIRED, caller=CALLER, now_s=NOW, amount_minor_max=MAX),
            Code.TOKEN_EXPIRED, "RS_ERROR_TOKEN_EXPIRED")


GAMES = frozenset({"clt_dragonrising", "clt_other"})


def test_game_catalogue_refuses_unknown_games_on_bets():
    """README "Certification" 13: with ``game_codes`` set, an unknown game_code is
    RS_ERROR_INVALID_GAME; without a catalogue every game is accepted."""
    assert isinstance(bet_to_command(bet(), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX, game_codes=GAMES), Debit)
    assert isinstance(bet_to_command(bet(game_code="invalid game"), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX), Debit)
    out = bet_to_command(bet(game_code="invalid game"), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX, game_codes=GAMES)
    refused(out, Code.INVALID_REQUEST, "RS_ERROR_INVALID_GAME")
    assert isinstance(out, Refusal) and "invalid game" in out.detail


def test_bet_without_round_uses_its_transaction_as_round():
    out = bet_to_command(bet(round=None), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    assert isinstance(out, Debit) and out.round_id == "bet-1"


# ---- win ------------------------------------------------------------------------------


def test_win_maps_to_credit():
    out = win_to_command(win(), LIVE, caller=CALLER, amount_minor_max=MAX, origin=ORIGIN)
    assert out == Credit(
        scope=CALLER.scope, partner_id="demo", transaction_id="win-1", player_id="john12345", currency="EUR",
        amount_minor=712, round_id="round-1", game_id="clt_dragonrising",
        bet_transaction_id="bet-1", round_closed=True, credit_type="win", origin=ORIGIN,
    )


@pytest.mark.parametrize("session", [EXPIRED, None], ids=["expired", "unknown"])
def test_win_accepted_with_expired_or_unknown_token(session):
    out = win_to_command(win(), session, caller=CALLER, amount_minor_max=MAX)
    assert isinstance(out, Credit) and out.player_id == "john12345"


def test_win_without_token():
    out = win_to_command(win(token=None), None, caller=CALLER, amount_minor_max=MAX)
    assert isinstance(out, Credit)


def test_win_with_another_users_token_refused():
    refused(win_to_command(win(), OTHER_USER, caller=CALLER, amount_minor_max=MAX), Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")


def test_zero_win_accepted_and_bad_amounts_refused():
    out = win_to_command(win(amount=0), LIVE, caller=CALLER, amount_minor_max=MAX)
    assert isinstance(out, Credit) and out.amount_minor == 0
    for amount in (-1000, 356001):
        refused(win_to_command(win(amount=amount), LIVE, caller=CALLER, amount_minor_max=MAX), Code.INVALID_AMOUNT, "RS_ERROR_WRONG_TYPES")


def test_win_defaults():
    out = win_to_command(win(round=None, round_closed=None, game_code=None), None, caller=CALLER, amount_minor_max=MAX)
    assert isinstance(out, Credit)
    assert out.round_id == "bet-1"  # same round as the bet without round
    assert out.round_closed is False and out.game_id == ""
    assert out.bet_transaction_id == "bet-1"  # always names its bet (the schema requires it)


def test_empty_round_and_game_fall_back_like_absent_ones():
    """README choice 8/13: ``""`` counts as absent, so the bet and its win still pair up."""
    debit = bet_to_command(bet(round=""), LIVE, caller=CALLER, now_s=NOW, amount_minor_max=MAX)
    credit = win_to_command(win(round="", game_code=""), None, caller=CALLER, amount_minor_max=MAX, game_codes=GAMES)
    assert isinstance(debit, Debit) and isinstance(credit, Credit)
    assert debit.round_id == credit.round_id == "bet-1" and credit.game_id == ""
    out = rollback_to_command(rollback(round=""), None, caller=CALLER)
    assert isinstance(out, Rollback) and out.round_id is None


def test_game_catalogue_refuses_unknown_games_on_wins():
    assert isinstance(win_to_command(win(), LIVE, caller=CALLER, amount_minor_max=MAX, game_codes=GAMES), Credit)
    refused(win_to_command(win(game_code="invalid game"), LIVE, caller=CALLER, amount_minor_max=MAX, game_codes=GAMES),
            Code.INVALID_REQUEST, "RS_ERROR_INVALID_GAME")
    # a win that names no game is not checked (game_code is optional on wins: README choice 8)
    assert isinstance(win_to_command(win(game_code=None), None, caller=CALLER, amount_minor_max=MAX, game_codes=GAMES), Credit)


def test_supplier_promo_win_is_a_normal_win():
    out = win_to_command(win(is_supplier_promo=True), EXPIRED, caller=CALLER, amount_minor_max=MAX)
    assert isinstance(out, Credit) and out.bet_transaction_id == "bet-1" and out.credit_type == "win"


# ---- rollback -------------------------------------------------------------------------


def test_rollback_maps_to_rollback_with_session_currency():
    out = rollback_to_command(rollback(), LIVE, caller=CALLER, origin=ORIGIN)
    assert out == Rollback(
        scope=CALLER.scope, partner_id="demo", transaction_id="rb-1", player_id="john12345",
        reference_transaction_id="bet-1", currency="EUR", round_id="round-1", origin=ORIGIN,
    )


def test_rollback_never_reverses_a_win():
    """README "Certification" 24: Hub88/Caleta roll back bets only; the shard refuses a
    rollback naming a win (UNKNOWN_TRANSACTION -> RS_ERROR_TRANSACTION_DOES_NOT_EXIST)."""
    out = rollback_to_command(rollback(reference_transaction_uuid="win-1"), LIVE, caller=CALLER)
    assert isinstance(out, Rollback) and out.credit_reversible is False
    resp = response_for_result(Result(code=Code.UNKNOWN_TRANSACTION, currency="EUR", cash_minor=5, bonus_minor=0),
                               user="u", request_uuid="q", currency=None)
    assert (resp.status, resp.balance) == ("RS_ERROR_TRANSACTION_DOES_NOT_EXIST", 5_000)


def test_rollback_accepted_with_expired_token():
    out = rollback_to_command(rollback(), EXPIRED, caller=CALLER)
    assert isinstance(out, Rollback) and out.currency == "EUR"


def test_rollback_with_unknown_token_has_no_currency_unless_sent():
    out = rollback_to_command(rollback(), None, caller=CALLER)
    assert isinstance(out, Rollback) and out.currency is None
    out = rollback_to_command(rollback(currency="EUR"), None, caller=CALLER)
    assert isinstance(out, Rollback) and out.currency == "EUR"
    out = rollback_to_command(rollback(currency="XXX"), None, caller=CALLER)
    assert isinstance(out, Rollback) and out.currency is None


def test_rollback_with_another_users_token_refused():
    refused(rollback_to_command(rollback(), OTHER_USER, caller=CALLER), Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")


# ---- balance / info -------------------------------------------------------------------


def test_balance_needs_live_token_of_user():
    req = BalanceRequest(token="tok-live-000", user="john12345", request_uuid="q")
    assert balance_to_command(req, LIVE, caller=CALLER, now_s=NOW) == GetBalance(partner_id="demo", player_id="john12345", currency="EUR")
    refused(balance_to_command(req, None, caller=CALLER, now_s=NOW), Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")
    refused(balance_to_command(req, EXPIRED, caller=CALLER, now_s=NOW), Code.TOKEN_EXPIRED, "RS_ERROR_TOKEN_EXPIRED")
    refused(balance_to_command(req, OTHER_USER, caller=CALLER, now_s=NOW), Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")
    # user may be omitted (Hub88's own test vector has none): the session names the player
    anonymous = BalanceRequest(token="tok-live-000")
    assert balance_to_command(anonymous, LIVE, caller=CALLER, now_s=NOW) == GetBalance(partner_id="demo", player_id="john12345", currency="EUR")


def test_info_with_and_without_token():
    no_token = UserInfoRequest(user="john12345", request_uuid="q")
    assert info_to_command(no_token, None, caller=CALLER, now_s=NOW) == GetBalance(partner_id="demo", player_id="john12345", currency=None)
    with_token = UserInfoRequest(user="john12345", request_uuid="q", token="tok-live-000")
    assert info_to_command(with_token, LIVE, caller=CALLER, now_s=NOW) == GetBalance(partner_id="demo", player_id="john12345", currency="EUR")
    refused(info_to_command(with_token, EXPIRED, caller=CALLER, now_s=NOW), Code.TOKEN_EXPIRED, "RS_ERROR_TOKEN_EXPIRED")
    refused(info_to_command(with_token, None, caller=CALLER, now_s=NOW), Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")
    refused(info_to_command(with_token, OTHER_USER, caller=CALLER, now_s=NOW), Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")


# ---- responses ------------------------------------------------------------------------


def test_ok_response_carries_cash_plus_bonus_scaled():
    result = Result(code=Code.OK, currency="EUR", cash_minor=1000, bonus_minor=5)
    resp = response_for_result(result, user="john12345", request_uuid="q", currency="EUR")
    assert (resp.user, resp.status, resp.request_uuid, resp.currency, resp.balance) == (
        "john12345", "RS_OK", "q", "EUR", 1_005_000,
    )


def test_not_enough_money_carries_unchanged_balance():
    result = Result(code=Code.INSUFFICIENT_FUNDS, currency="EUR", cash_minor=100, bonus_minor=0)
    resp = response_for_result(result, user="u", request_uuid="q", currency="EUR")
    assert resp.status == "RS_ERROR_NOT_ENOUGH_MONEY" and resp.balance == 100_000


def test_replay_answers_stored_outcome():
    result = Result(code=Code.OK, currency="EUR", cash_minor=644, bonus_minor=0, replayed=True)
    resp = response_for_result(result, user="u", request_uuid="q2", currency="EUR")
    assert resp.status == "RS_OK" and resp.balance == 644_000


@pytest.mark.parametrize(
    "code,status",
    [
        (Code.UNKNOWN_TRANSACTION, "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"),
        (Code.TRANSACTION_ROLLED_BACK, "RS_ERROR_TRANSACTION_ROLLED_BACK"),
        (Code.IDEMPOTENCY_CONFLICT, "RS_ERROR_DUPLICATE_TRANSACTION"),
        (Code.PLAYER_BLOCKED, "RS_ERROR_USER_DISABLED"),
    ],
)
def test_shard_refusals_map_through_the_table(code, status):
    resp = response_for_result(Result(code=code), user="u", request_uuid="q", currency="EUR")
    assert resp.status == status and resp.balance is None and resp.currency == "EUR"


def test_rollback_tombstone_answer_from_balances():
    result = Result(code=Code.OK, balances=(Balance(currency="EUR", cash_minor=10, bonus_minor=0),))
    resp = response_for_result(result, user="u", request_uuid="q", currency=None)
    assert resp.status == "RS_OK" and resp.currency == "EUR" and resp.balance == 10_000


def test_balance_response_picks_session_currency():
    result = Result(
        code=Code.OK,
        balances=(Balance("USD", 1, 0), Balance("EUR", 250, 50)),
        country="EE",
    )
    resp = response_for_balance(result, user="u", request_uuid="q", currency="EUR")
    assert (resp.status, resp.currency, resp.balance) == ("RS_OK", "EUR", 300_000)
    info = response_for_balance(result, user="u", request_uuid="q", currency="EUR", info=True)
    assert isinstance(info, UserInfoResponse) and info.country == "EE" and info.balance == 300_000


def test_balance_response_without_wallet_in_session_currency():
    result = Result(code=Code.OK, balances=(Balance("USD", 1, 0),))
    resp = response_for_balance(result, user="u", request_uuid="q", currency="EUR")
    assert resp.status == "RS_ERROR_WRONG_CURRENCY" and resp.balance is None


def test_info_without_token_single_and_multiple_wallets():
    single = Result(code=Code.OK, balances=(Balance("EUR", 100, 0),), country="MT")
    info = response_for_balance(single, user="u", request_uuid="q", currency=None, info=True)
    assert (info.status, info.currency, info.balance, info.country) == ("RS_OK", "EUR", 100_000, "MT")
    multi = Result(code=Code.OK, balances=(Balance("EUR", 100, 0), Balance("USD", 1, 0)))
    info = response_for_balance(multi, user="u", request_uuid="q", currency=None, info=True)
    assert info.status == "RS_OK" and info.balance is None and info.currency is None


def test_unknown_player_on_balance():
    resp = response_for_balance(Result(code=Code.UNKNOWN_PLAYER), user="u", request_uuid="q", currency="EUR")
    assert resp.status == "RS_ERROR_INVALID_TOKEN"


def test_refusal_response_has_no_balance():
    resp = response_for_refusal(refusal_of(Code.TOKEN_EXPIRED, "x"), user="u", request_uuid="q", currency="EUR")
    assert (resp.status, resp.balance, resp.currency) == ("RS_ERROR_TOKEN_EXPIRED", None, "EUR")
    assert syntax_refusal("x").status == "RS_ERROR_WRONG_SYNTAX"
    assert syntax_refusal("x").code is Code.INVALID_REQUEST


# ---- audit ----------------------------------------------------------------------------


def test_audit_request_is_bounded_and_has_no_token():
    audit = audit_request(bet())
    assert audit["transaction_uuid"] == "bet-1" and audit["amount"] == 356000
    assert audit["token_sent"] is True and "token" not in audit
    wild = {
        "user": "u" * 10_000, "amount": 10**50, "round": {"nested": [1, 2]},
        "token": "secret", "junk": "x" * 10_000,
    }
    audit = audit_request(wild)
    assert len(audit["user"]) == 128
    assert audit["amount"] == "<out of range>"
    assert audit["round"] == "<dict>"
    assert "junk" not in audit and "secret" not in str(audit)
    assert audit_request(None) == {} and audit_request([1, 2]) == {}


# ---- sessions are bound to their integration (docs/SECURITY.md, "Tenancy") ------------

OTHER_INTEGRATION = msgspec.structs.replace(LIVE, integration="evolution")
OTHER_PARTNER = msgspec.structs.replace(LIVE, partner_id="other")


@pytest.mark.parametrize("session", [OTHER_INTEGRATION, OTHER_PARTNER])
def test_a_token_of_another_integration_or_partner_is_refused_everywhere(session):
    refused(bet_to_command(bet(), session, caller=CALLER, now_s=NOW, amount_minor_max=MAX),
            Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")
    refused(win_to_command(win(), session, caller=CALLER, amount_minor_max=MAX), Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")
    refused(rollback_to_command(rollback(), session, caller=CALLER), Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")
    refused(balance_to_command(BalanceRequest(token=session.token, user="john12345"), session, caller=CALLER, now_s=NOW),
            Code.INVALID_TOKEN, "RS_ERROR_INVALID_TOKEN")
