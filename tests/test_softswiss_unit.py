"""SoftSwiss adapter as pure functions: signature, schemas, amount rules, the status table,
request -> Command and Result -> answer mappings (each for the sandbox integration's partner
"demo", in its scope "demo:softswiss"); and the HTTP pipeline of routes.py run in process
against a scripted shard boundary (rate limit, retryable failures, check order, the
integration's own key, scope and partner).

Sources: gateway/providers/softswiss/README.md ("Protocol facts", "Common ground");
docs/DESIGN.md sections 3 (money), 5 (idempotency), 8 (errors);
gateway/providers/softswiss/README.md (choices).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from gateway.config import Settings
from gateway.edge.context import EdgeContext
from gateway.edge.game_session import GameSession, SessionStoreUnavailable
from gateway.providers.integration import Caller
from gateway.providers.refusal import Refusal
from gateway.providers.softswiss import PREFIX, Adapter
from gateway.providers.softswiss.adapter import (
    CLOSE_PREFIX,
    END_PREFIX,
    FREESPINS_PREFIX,
    PROVIDER,
    amount_minor_from_wire,
    audit_request,
    balance_answer,
    check_session,
    freespins_answer,
    freespins_to_command,
    given,
    iso_utc,
    needs_session,
    play_to_command,
    refusal_answer,
    refusal_of,
    retryable_answer,
    rollback_to_command,
    str_field,
    units_answer,
)
from gateway.providers.softswiss.schemas import (
    BetAction,
    ErrorResponse,
    FreespinsRequest,
    PlayRequest,
    PlayResponse,
    RollbackAction,
    RollbackRequest,
    WinAction,
    WrongSyntax,
    WrongTypes,
    decode_request,
    encode_response,
)
from gateway.providers.softswiss.settings import SoftSwissSettings
from gateway.providers.softswiss.signature import HEADER, SoftSwissSigner, sign, verify
from gateway.providers.softswiss.statuses import (
    RETRYABLE,
    SPEC_CODES,
    STATUS_BY_CODE,
    WIN_STATUS_BY_CODE,
    status_for,
)
from gateway.shards.commands import (
    ATOMIC_ACTIONS_MAX,
    Atomic,
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

KEY = b"softswiss-demo-auth-token"
NOW = 1_700_000_000.0
MAX = 10_000_000_000
ORIGIN = Origin(edge="h:1", route="softswiss /play", request_id="q", received_at_us=1)
CALLER = sandbox_caller(PROVIDER)
SCOPE = "demo:softswiss"  # the sandbox integration's idempotency scope


def make_settings(**softswiss: object) -> Settings:
    """Settings holding the demo partner and its integration "softswiss" keyed with KEY."""
    return msgspec.convert(integration_config(PROVIDER, **{"auth_token": KEY.decode(), **softswiss}), Settings)


def session(**kw) -> GameSession:
    base: dict[str, Any] = {"token": "tok-live", "partner_id": "demo", "player_id": "p-1", "currency": "EUR",
                "integration": "softswiss", "game_id": "acme:slot", "expires_at_s": int(NOW) + 60}
    base.update(kw)
    return GameSession(**base)


def play(actions=(), **kw) -> PlayRequest:
    base: dict[str, Any] = {"user_id": "p-1", "currency": "EUR", "game": "acme:slot", "game_id": "rd-1", "finished": False,
                "actions": list(actions)}
    base.update(kw)
    return PlayRequest(**base)


def bet(action_id: str = "a-bet", amount: int = 100) -> BetAction:
    return BetAction(action_id=action_id, amount=amount)


def win(action_id: str = "a-win", amount: int = 250) -> WinAction:
    return WinAction(action_id=action_id, amount=amount)


def to_command(req: PlayRequest, sess: GameSession | None = None):
    return play_to_command(req, sess, caller=CALLER, now_s=NOW, amount_minor_max=MAX, origin=ORIGIN)


# ==== signature (gateway/providers/softswiss/README.md "Signature") =========================================


def test_signature_is_hex_hmac_sha256_of_the_raw_body():
    body = b'{"user_id":"p-1","currency":"EUR","actions":[]}'
    expected = hmac.new(KEY, body, hashlib.sha256).hexdigest()
    assert sign(body, KEY) == expected
    assert verify(body, expected, KEY)
    assert verify(body, expected.upper(), KEY)  # hex is case-insensitive
    assert verify(body, expected.encode(), KEY)
    assert verify(body, f" {expected} ", KEY)


def test_signature_known_vector():
    """RFC 4231 test case 2 (HMAC-SHA256, key "Jefe"): the primitive is the standard one."""
    assert sign(b"what do ya want for nothing?", b"Jefe") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


@pytest.mark.parametrize("header", [None, "", "00" * 32, "zz" * 32, "ab", "a" * 65, "é" * 64,
                                    b"\xff" * 64])
def test_wrong_or_missing_signature_fails(header):
    assert not verify(b"{}", header, KEY)


def test_signature_with_another_key_fails():
    body = b'{"a":1}'
    assert not verify(body, sign(body, b"other-key"), KEY)


def test_body_altered_after_signing_fails():
    body = json.dumps({"user_id": "p-1", "actions": [{"action": "bet", "amount": 100}]}).encode()
    header = sign(body, KEY)
    for altered in (body.replace(b"100", b"900"), body + b" ", body[:-1], b" " + body):
        assert not verify(altered, header, KEY)


def test_signer_from_settings_uses_the_configured_auth_token():
    integration = make_settings(auth_token="configured-token").integration(PROVIDER)
    assert isinstance(integration, SoftSwissSettings)
    signer = SoftSwissSigner.from_settings(integration)
    body = b'{"x":1}'
    assert isinstance(integration.auth_token, str)
    assert signer.sign(body) == sign(body, integration.auth_token.encode()) == sign(body, b"configured-token")
    assert signer.verify(body, signer.sign(body))
    assert HEADER == "X-REQUEST-SIGN"
    with pytest.raises(ValueError):
        SoftSwissSigner("")
    with pytest.raises(TypeError):  # an unresolved { env = ... } reference is no key
        SoftSwissSigner.from_settings(msgspec.convert(
            {"provider": "softswiss", "partner_id": "demo", "auth_token": {"env": "X"}}, SoftSwissSettings))


def test_package_exports_prefix_and_adapter():
    assert PREFIX == "/providers/softswiss"
    assert callable(Adapter.routes) and callable(Adapter.close)


# ==== schemas ================================================================================


def test_play_decodes_spec_fields_and_ignores_unknown_ones():
    body = json.dumps({
        "user_id": "p-1", "currency": "EUR", "game": "acme:slot", "game_id": "rd-1",
        "finished": True, "extra": {"nested": [1, 2]},
        "actions": [{"action": "bet", "amount": 100, "action_id": "a1", "jackpot_contribution": 1},
                    {"action": "win", "amount": 0, "action_id": "a2"}],
    }).encode()
    req = decode_request(body, PlayRequest)
    assert req.actions == [BetAction(action_id="a1", amount=100), WinAction(action_id="a2", amount=0)]
    assert (req.user_id, req.currency, req.game, req.game_id, req.finished) == (
        "p-1", "EUR", "acme:slot", "rd-1", True)
    assert req.session_id is None


def test_play_without_actions_is_valid():
    req = decode_request(b'{"user_id":"p-1","currency":"EUR"}', PlayRequest)
    assert req.actions == [] and req.game is None and req.game_id is None


@pytest.mark.parametrize("action", [
    {"action": "rollback", "action_id": "a", "original_action_id": "b"},  # not a /play action
    {"action": "bet", "action_id": "a"},  # no amount
    {"action": "bet", "amount": 100},  # no action_id
    {"amount": 100, "action_id": "a"},  # no action
    {"action": "bet", "amount": 1.5, "action_id": "a"},
    {"action": "bet", "amount": 100.0, "action_id": "a"},
    {"action": "bet", "amount": "100", "action_id": "a"},
    {"action": "bet", "amount": True, "action_id": "a"},
    {"action": "bet", "amount": None, "action_id": "a"},
    {"action": "bet", "amount": 100, "action_id": ""},
    {"action": "bet", "amount": 100, "action_id": "x" * 129},
    {"action": "bet", "amount": 100, "action_id": 7},
])
def test_bad_play_actions_are_wrong_types(action):
    body = json.dumps({"user_id": "p-1", "currency": "EUR", "game": "g", "game_id": "r",
                       "actions": [action]}).encode()
    with pytest.raises(WrongTypes):
        decode_request(body, PlayRequest)


def test_actions_list_is_bounded():
    actions = [{"action": "bet", "amount": 1, "action_id": f"a{i}"} for i in range(ATOMIC_ACTIONS_MAX + 1)]
    body = json.dumps({"user_id": "p", "currency": "EUR", "game": "g", "game_id": "r",
                       "actions": actions}).encode()
    with pytest.raises(WrongTypes):
        decode_request(body, PlayRequest)
    body = json.dumps({"user_id": "p", "currency": "EUR", "game": "g", "game_id": "r",
                       "actions": actions[:-1]}).encode()
    assert len(decode_request(body, PlayRequest).actions) == ATOMIC_ACTIONS_MAX


@pytest.mark.parametrize("body", [
    b'{"currency":"EUR"}', b'{"user_id":"p"}', b'{"user_id":1,"currency":"EUR"}',
    b'{"user_id":"p","currency":"EUR","finished":"yes"}', b'{"user_id":"p","currency":"EUR","actions":{}}',
    b'{"user_id":"","currency":"EUR"}', b'[]', b'null', b'1',
])
def test_bad_play_envelopes_are_wrong_types(body):
    with pytest.raises(WrongTypes):
        decode_request(body, PlayRequest)


@pytest.mark.parametrize("body", [
    b"", b"{", b"not json", b"\xef\xbb\xbf{}", b"\xff\xfe",
    b'{"user_id":"p","currency":"EUR","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"user_id":"p","currency":"EUR"} {"user_id":"q","currency":"EUR"}',
], ids=["empty", "open", "text", "bom", "utf16-bom", "deep", "two-documents"])
def test_not_json_is_wrong_syntax(body):
    with pytest.raises(WrongSyntax):
        decode_request(body, PlayRequest)


@pytest.mark.parametrize("field", ["user_id", "currency", "game", "game_id", "session_id", "action_id"])
@pytest.mark.parametrize("char", ["\x00", "\x1f", "\n", "\x7f"])
def test_control_characters_in_strings_are_wrong_types(field, char):
    """A NUL cannot be stored in PostgreSQL text (it would fail the shard's whole batch):
    no string field may carry a control character."""
    payload = {"user_id": "p-1", "currency": "EUR", "game": "g", "game_id": "r", "session_id": "t",
               "actions": [{"action": "bet", "amount": 1, "action_id": "a"}]}
    if field == "action_id":
        payload["actions"][0]["action_id"] = "a" + char + "b"
    else:
        payload[field] = payload[field][:1] + char + payload[field][1:]
    with pytest.raises(WrongTypes):
        decode_request(json.dumps(payload).encode(), PlayRequest)


def test_lone_surrogates_are_wrong_syntax():
    with pytest.raises(WrongSyntax):
        decode_request(b'{"user_id":"p\\ud800","currency":"EUR"}', PlayRequest)


def test_rollback_and_freespins_strings_refuse_nul_too():
    with pytest.raises(WrongTypes):
        decode_request(json.dumps({"user_id": "p", "currency": "EUR", "actions": [
            {"action": "rollback", "action_id": "a", "original_action_id": "b\x00"}]}).encode(),
            RollbackRequest)
    for field in ("issue_id", "status", "user_id", "game"):
        payload = {"issue_id": "fs", "status": "played", "total_amount": 1, "user_id": "p",
                   "currency": "EUR", "game": "g"}
        payload[field] += "\x00"
        with pytest.raises(WrongTypes):
            decode_request(json.dumps(payload).encode(), FreespinsRequest)


def test_rollback_decodes_and_needs_at_least_one_rollback_action():
    req = decode_request(json.dumps({
        "user_id": "p-1", "currency": "EUR", "game": "g", "game_id": "r", "finished": True,
        "actions": [{"action": "rollback", "action_id": "rb1", "original_action_id": "a1"}],
    }).encode(), RollbackRequest)
    assert [(a.action_id, a.original_action_id) for a in req.actions] == [("rb1", "a1")]
    for actions in ([], [{"action": "bet", "action_id": "a", "amount": 1}],
                    [{"action": "rollback", "action_id": "a"}]):
        with pytest.raises(WrongTypes):
            decode_request(json.dumps({"user_id": "p", "currency": "EUR", "actions": actions}).encode(),
                           RollbackRequest)


def test_freespins_decodes():
    req = decode_request(b'{"issue_id":"fs-1","status":"played","total_amount":500,'
                         b'"user_id":"p-1","currency":"EUR","bet_level":3}', FreespinsRequest)
    assert (req.issue_id, req.status, req.total_amount, req.user_id, req.currency) == (
        "fs-1", "played", 500, "p-1", "EUR")
    # S1: total_amount is optional
    req = decode_request(b'{"issue_id":"fs-1","status":"expired","user_id":"p-1","currency":"EUR"}',
                         FreespinsRequest)
    assert req.total_amount is None
    with pytest.raises(WrongTypes):
        decode_request(b'{"issue_id":"fs-1","total_amount":5.5,"user_id":"p","currency":"EUR"}',
                       FreespinsRequest)


def test_responses_encode_as_the_spec_shapes():
    ok = PlayResponse(balance=900, game_id="rd-1", transactions=[])
    assert json.loads(encode_response(ok)) == {"balance": 900, "game_id": "rd-1", "transactions": []}
    assert json.loads(encode_response(PlayResponse(balance=5))) == {"balance": 5}
    err = ErrorResponse(code=100, message="m", balance=7)
    assert json.loads(encode_response(err)) == {"code": 100, "message": "m", "balance": 7}
    assert json.loads(encode_response(ErrorResponse(code=403, message="f"))) == {"code": 403, "message": "f"}


# ==== amounts (gateway/providers/softswiss/README.md: integers in the currency's subunits) ================================


def test_amount_is_kept_in_minor_units():
    assert amount_minor_from_wire(356, "EUR", amount_minor_max=MAX) == 356
    assert amount_minor_from_wire(1000, "JPY", amount_minor_max=MAX) == 1000
    assert amount_minor_from_wire(1, "KWD", amount_minor_max=MAX) == 1
    assert amount_minor_from_wire(0, "EUR", amount_minor_max=MAX) == 0
    assert amount_minor_from_wire(MAX, "EUR", amount_minor_max=MAX) == MAX


@pytest.mark.parametrize("amount", [-1, MAX + 1, 2**64, True, False, 1.5, 1.0, "100", None])
def test_bad_amounts_refused(amount):
    got = amount_minor_from_wire(amount, "EUR", amount_minor_max=MAX)
    assert isinstance(got, Refusal) and got.code is Code.INVALID_AMOUNT
    assert got.status.http == 400 and got.status.code == 400


def test_amount_in_unknown_currency_refused():
    got = amount_minor_from_wire(100, "XXX", amount_minor_max=MAX)
    assert isinstance(got, Refusal) and got.code is Code.UNKNOWN_CURRENCY and got.status.http == 400


# ==== the status table ==========================================================================


def test_every_code_has_a_row():
    assert set(STATUS_BY_CODE) == set(Code) == set(WIN_STATUS_BY_CODE)


@pytest.mark.parametrize("table", [STATUS_BY_CODE, WIN_STATUS_BY_CODE], ids=["default", "win"])
def test_every_row_uses_a_spec_code_and_the_http_convention(table):
    """README.md "Certification", status table: 412 only for code 100; 110 on 403; the other
    player and request codes on 400; a code of 400 or more is its own HTTP status."""
    for code, status in table.items():
        if code is Code.OK:
            assert status.http == 200 and status.code is None
            continue
        assert status.code in SPEC_CODES, (code, status)
        assert status.message
        if status.code == 100:
            assert status.http == 412, (code, status)
        elif status.code == 110:
            assert status.http == 403, (code, status)
        elif status.code < 400:
            assert status.http == 400, (code, status)
        else:
            assert status.http == status.code, (code, status)
        assert status.http != 500 and status.http < 500, (code, status)  # only RETRYABLE is 5xx
    assert RETRYABLE.http == 503 and RETRYABLE.code == 503 and RETRYABLE.code in SPEC_CODES


@pytest.mark.parametrize("code,http,ss_code", [
    (Code.INSUFFICIENT_FUNDS, 412, 100),  # case 5: S1 and S3
    (Code.INVALID_SIGNATURE, 403, 403),  # case 1
    (Code.PLAYER_BLOCKED, 403, 110),  # case 25
    (Code.UNKNOWN_PLAYER, 400, 101),  # case 24
    (Code.CURRENCY_MISMATCH, 400, 154),  # case 23
    (Code.TOKEN_EXPIRED, 400, 101),
    (Code.INVALID_TOKEN, 400, 101),
    (Code.LIMIT_REACHED, 400, 105),
    (Code.IDEMPOTENCY_CONFLICT, 400, 400),  # case 9
    (Code.TRANSACTION_ROLLED_BACK, 400, 400),  # cases 12, 19
    (Code.TRANSACTION_SETTLED, 400, 400),  # case 17
    (Code.UNKNOWN_TRANSACTION, 404, 404),  # case 14
    (Code.INVALID_REQUEST, 400, 400),
    (Code.INVALID_AMOUNT, 400, 400),
])
def test_documented_choices(code, http, ss_code):
    assert (status_for(code).http, status_for(code).code) == (http, ss_code)


def test_a_refused_win_differs_only_for_a_rolled_back_round():
    """Case 15 (S1: "Bet has been refunded" -> 403 / 403); every other code as for a bet."""
    assert (status_for(Code.TRANSACTION_ROLLED_BACK, win=True).http,
            status_for(Code.TRANSACTION_ROLLED_BACK, win=True).code) == (403, 403)
    differing = {c for c in Code if status_for(c, win=True) != status_for(c)}
    assert differing == {Code.TRANSACTION_ROLLED_BACK}
    assert (status_for(Code.UNKNOWN_TRANSACTION, win=True).http,
            status_for(Code.UNKNOWN_TRANSACTION, win=True).code) == (404, 404)  # case 14


def test_insufficient_funds_message_is_the_protocols():
    assert status_for(Code.INSUFFICIENT_FUNDS).message == "Player has not enough funds to process an action"


# ==== /play -> command ===========================================================================


def test_no_actions_is_a_balance_request():
    assert to_command(play([])) == GetBalance(partner_id="demo", player_id="p-1", currency="EUR")
    # a balance request needs neither game nor round, and may send them empty
    for game, game_id in ((None, None), ("", ""), ("acme:slot", "")):
        for finished in (None, False, True):
            assert to_command(play([], game=game, game_id=game_id, finished=finished)) == GetBalance(
                partner_id="demo", player_id="p-1", currency="EUR")


def test_finished_without_actions_closes_the_named_round():
    """Case 28: ``finished: true``, ``actions: []`` and a round -> a zero win keyed
    ``~end:<game_id>`` closes it (settles its open bets); a game may be absent."""
    cmd = to_command(play([], finished=True))
    assert cmd == Credit(scope=SCOPE, transaction_id=END_PREFIX + "rd-1", partner_id="demo", player_id="p-1",
                         currency="EUR", amount_minor=0, round_id="rd-1", game_id="acme:slot",
                         round_closed=True, credit_type="win", round_policy="any", origin=ORIGIN)
    assert to_command(play([], finished=True, game="")).game_id == ""
    assert to_command(play([], finished=True, game=None)).game_id == ""


def test_empty_optional_strings_are_absent():
    """``"session_id": ""``, ``"game_id": ""``, ``"game": ""`` decode; "" is the field absent."""
    body = json.dumps({"user_id": "p-1", "currency": "EUR", "game": "", "game_id": "", "session_id": "",
                       "finished": True, "actions": []}).encode()
    req = decode_request(body, PlayRequest)
    assert (req.game, req.game_id, req.session_id) == ("", "", "")
    assert given("") is None and given(None) is None and given("x") == "x"
    assert isinstance(to_command(req), GetBalance)
    # an empty session_id is no session: a bet with it is not checked against one
    with_bet = play([bet()], session_id="")
    assert not needs_session(with_bet) and isinstance(to_command(with_bet), Atomic)
    rb = decode_request(json.dumps({"user_id": "p-1", "currency": "EUR", "game": "", "game_id": "",
                                    "session_id": "", "actions": [
                                        {"action": "rollback", "action_id": "rb", "original_action_id": "a"}]}
                                   ).encode(), RollbackRequest)
    unit = rollback_to_command(rb, caller=CALLER)
    assert isinstance(unit, Atomic) and unit.actions[0].round_id is None


def test_bet_and_win_are_one_atomic_unit():
    cmd = to_command(play([bet("a1", 100), win("a2", 250)]))
    assert isinstance(cmd, Atomic)
    assert (cmd.scope, cmd.partner_id, cmd.player_id, cmd.origin) == (SCOPE, "demo", "p-1", ORIGIN)
    assert CALLER.scope == SCOPE
    assert cmd.actions == (
        Debit(scope=SCOPE, transaction_id="a1", partner_id="demo", player_id="p-1", currency="EUR",
              amount_minor=100, round_id="rd-1", game_id="acme:slot"),
        Credit(scope=SCOPE, transaction_id="a2", partner_id="demo", player_id="p-1", currency="EUR",
               amount_minor=250, round_id="rd-1", game_id="acme:slot", bet_transaction_id=None,
               round_closed=False, credit_type="win", round_policy="required"),
    )


def test_wins_need_a_bet_in_their_round():
    """Cases 14 and 15: every win is paid only in a round with a bet (the shard's
    ``round_policy="required"``); the derived closing win is zero and has no policy."""
    cmd = to_command(play([win("w")], finished=True))
    assert [(a.transaction_id, a.round_policy) for a in cmd.actions] == [("w", "required")]
    cmd = to_command(play([bet("b")], finished=True))
    assert [(a.transaction_id, getattr(a, "round_policy", None)) for a in cmd.actions] == [
        ("b", None), (CLOSE_PREFIX + "rd-1", "any")]


def test_finished_closes_the_round_on_the_last_win():
    cmd = to_command(play([bet("a1"), win("a2", 0)], finished=True))
    assert len(cmd.actions) == 2
    assert cmd.actions[1].round_closed is True and cmd.actions[1].transaction_id == "a2"
    assert cmd.actions[0] == to_command(play([bet("a1")])).actions[0]


def test_finished_without_a_final_win_appends_a_zero_closing_win():
    cmd = to_command(play([bet("a1", 300)], finished=True))
    assert len(cmd.actions) == 2
    close = cmd.actions[1]
    assert close == Credit(scope=SCOPE, transaction_id=CLOSE_PREFIX + "rd-1", partner_id="demo", player_id="p-1",
                           currency="EUR", amount_minor=0, round_id="rd-1", game_id="acme:slot",
                           round_closed=True, credit_type="win")
    # win then bet: the round closes after the bet
    cmd = to_command(play([win("w"), bet("b")], finished=True))
    assert [a.transaction_id for a in cmd.actions] == ["w", "b", CLOSE_PREFIX + "rd-1"]
    assert cmd.actions[0].round_closed is False


def test_not_finished_closes_nothing():
    for finished in (False, None):
        cmd = to_command(play([bet(), win()], finished=finished))
        assert all(not getattr(a, "round_closed", False) for a in cmd.actions)


@pytest.mark.parametrize("kw,code", [
    ({"game_id": None}, Code.INVALID_REQUEST),
    ({"game": None}, Code.INVALID_REQUEST),
    ({"game_id": ""}, Code.INVALID_REQUEST),  # S1: game and game_id "required" with actions
    ({"game": ""}, Code.INVALID_REQUEST),
    ({"currency": "XXX"}, Code.UNKNOWN_CURRENCY),
])
def test_actions_need_round_game_and_a_known_currency(kw, code):
    got = to_command(play([bet()], **kw))
    assert isinstance(got, Refusal) and got.code is code and got.status.http == 400


def test_unknown_currency_refused_on_balance_request_too():
    got = to_command(play([], currency="XXX"))
    assert isinstance(got, Refusal) and got.code is Code.UNKNOWN_CURRENCY


@pytest.mark.parametrize("actions", [
    [bet("a1"), win("a1")],  # one id twice
    [bet("~close:rd-1")],  # reserved
    [win("~freespins:x")],
])
def test_repeated_and_reserved_ids_refused(actions):
    got = to_command(play(actions))
    assert isinstance(got, Refusal) and got.code is Code.INVALID_REQUEST and got.status.http == 400


@pytest.mark.parametrize("amount", [-1, MAX + 1])
def test_bad_amount_in_any_action_refuses_the_request(amount):
    got = to_command(play([bet("a1", 100), win("a2", amount)]))
    assert isinstance(got, Refusal) and got.code is Code.INVALID_AMOUNT


def test_zero_bet_and_zero_win_accepted():
    cmd = to_command(play([bet("a1", 0), win("a2", 0)]))
    assert [a.amount_minor for a in cmd.actions] == [0, 0]


# ==== sessions (optional session_id; checked on bets only) ========================================


def test_session_checked_only_on_requests_with_bets():
    assert needs_session(play([bet()], session_id="t"))
    assert not needs_session(play([bet()]))
    assert not needs_session(play([win()], session_id="t"))
    assert not needs_session(play([], session_id="t"))
    # a win with a dead session still maps: the session is not looked at
    assert isinstance(to_command(play([win()], session_id="t")), Atomic)


def test_bet_with_live_session():
    cmd = to_command(play([bet()], session_id="tok-live"), session())
    assert isinstance(cmd, Atomic)


@pytest.mark.parametrize("sess,code", [
    (None, Code.INVALID_TOKEN),
    (session(replaced_by="tok-new"), Code.INVALID_TOKEN),
    (session(integration="hub88"), Code.INVALID_TOKEN),
    (session(partner_id="other"), Code.INVALID_TOKEN),
    (session(player_id="p-2"), Code.INVALID_TOKEN),
    (session(expires_at_s=int(NOW) - 1), Code.TOKEN_EXPIRED),
    (session(expires_at_s=int(NOW)), Code.TOKEN_EXPIRED),
    (session(currency="USD"), Code.CURRENCY_MISMATCH),
])
def test_bet_with_bad_session_refused(sess, code):
    got = to_command(play([bet()], session_id="tok"), sess)
    assert isinstance(got, Refusal) and got.code is code
    assert (got.status.http, got.status.code) == ((400, 154) if code is Code.CURRENCY_MISMATCH else (400, 101))
    assert check_session(sess, play([bet()], session_id="tok"), NOW, caller=CALLER) == got


# ==== /rollback and /freespins -> command ===========================================================


def _rollback(*pairs, currency="EUR") -> RollbackRequest:
    return RollbackRequest(user_id="p-1", currency=currency, game="g", game_id="rd-1", actions=[
        RollbackAction(action_id=a, original_action_id=o) for a, o in pairs])


def test_rollbacks_are_one_atomic_unit():
    """Case 16: every rollback of a request may name a win (``credit_reversible``): the shard
    undoes a refused unit whole, reversed wins included."""
    cmd = rollback_to_command(_rollback(("rb1", "a1"), ("rb2", "a2")), caller=CALLER, origin=ORIGIN)
    assert isinstance(cmd, Atomic) and cmd.origin == ORIGIN
    assert (cmd.scope, cmd.partner_id, cmd.player_id) == (SCOPE, "demo", "p-1")
    assert cmd.actions == (
        Rollback(scope=SCOPE, transaction_id="rb1", partner_id="demo", player_id="p-1",
                 reference_transaction_id="a1", currency="EUR", round_id="rd-1", credit_reversible=True),
        Rollback(scope=SCOPE, transaction_id="rb2", partner_id="demo", player_id="p-1",
                 reference_transaction_id="a2", currency="EUR", round_id="rd-1", credit_reversible=True),
    )
    unit = rollback_to_command(_rollback(("rb1", "a1")), caller=CALLER)
    assert isinstance(unit, Atomic)
    (single,) = unit.actions
    assert isinstance(single, Rollback) and single.credit_reversible is True


@pytest.mark.parametrize("pairs", [
    [("rb1", "rb1")],  # a rollback naming itself
    [("rb1", "a1"), ("rb2", "a1")],  # the same bet twice
    [("rb1", "a1"), ("rb1", "a2")],
    [("~close:r", "a1")],
])
def test_bad_rollback_ids_refused(pairs):
    got = rollback_to_command(_rollback(*pairs), caller=CALLER)
    assert isinstance(got, Refusal) and got.code is Code.INVALID_REQUEST


def test_rollback_in_unknown_currency_refused():
    got = rollback_to_command(_rollback(("rb", "a"), currency="XXX"), caller=CALLER)
    assert isinstance(got, Refusal) and got.code is Code.UNKNOWN_CURRENCY


def test_freespins_is_one_freespins_credit_per_issue_paid_only_in_credit_mode():
    """Case 29 (README.md "Freespins"): "notice" (the default) records the issue's end with a
    zero credit; "credit" pays ``total_amount``. Either way the amount must be valid."""
    req = FreespinsRequest(issue_id="fs-1", user_id="p-1", currency="EUR", total_amount=500,
                           status="played", game="acme:slot")
    expected = Credit(scope=SCOPE, transaction_id=FREESPINS_PREFIX + "fs-1", partner_id="demo", player_id="p-1",
                      currency="EUR", amount_minor=500, round_id=FREESPINS_PREFIX + "fs-1",
                      game_id="acme:slot", credit_type="freespins", origin=ORIGIN)
    cmd = freespins_to_command(req, caller=CALLER, amount_minor_max=MAX, payout="credit", origin=ORIGIN)
    assert cmd == expected
    notice = freespins_to_command(req, caller=CALLER, amount_minor_max=MAX, origin=ORIGIN)
    assert notice == msgspec.structs.replace(expected, amount_minor=0)
    assert freespins_to_command(req, caller=CALLER, amount_minor_max=MAX, payout="notice", origin=ORIGIN) == notice
    zero = freespins_to_command(msgspec.structs.replace(req, total_amount=None, status="expired", game=None),
                                caller=CALLER, amount_minor_max=MAX, payout="credit")
    assert isinstance(zero, Credit) and zero.amount_minor == 0 and zero.game_id == ""
    for payout in ("notice", "credit"):
        bad = freespins_to_command(msgspec.structs.replace(req, total_amount=-5), caller=CALLER,
                                   amount_minor_max=MAX, payout=payout)
        assert isinstance(bad, Refusal) and bad.code is Code.INVALID_AMOUNT
    assert SoftSwissSettings(partner_id="demo").freespins_payout == "notice"


# ==== result -> answer ===============================================================================


def _ok(txn: int, cash: int, bonus: int = 0, replayed: bool = False) -> Result:
    return Result(code=Code.OK, player_id="p-1", currency="EUR", cash_minor=cash, bonus_minor=bonus,
                  ledger_transaction_id=txn, replayed=replayed)


UNIT = to_command(play([bet("a1"), win("a2")], finished=True))
BET_THEN_WIN = to_command(play([bet("a1"), win("a2")]))


def test_unit_answer_lists_provider_actions_with_tx_ids():
    results = (_ok(11, 900), _ok(12, 1150), _ok(13, 1150))  # bet, win, derived close
    result = Result(code=Code.OK, player_id="p-1", currency="EUR", cash_minor=1100, bonus_minor=50,
                    results=results)
    status, body = units_answer(result, UNIT, action_ids=["a1", "a2"], game_id="rd-1",
                                now_us=1_700_000_000_123_456)
    assert status.http == 200
    assert body.balance == 1150 and body.game_id == "rd-1"
    assert [(t.action_id, t.tx_id, t.processed_at) for t in body.transactions] == [
        ("a1", "11", "2023-11-14T22:13:20.123456Z"), ("a2", "12", "2023-11-14T22:13:20.123456Z")]


def test_insufficient_funds_answer_carries_the_unchanged_balance():
    result = Result(code=Code.INSUFFICIENT_FUNDS, player_id="p-1", currency="EUR", cash_minor=1000,
                    bonus_minor=0, results=(_ok(1, 400), Result(code=Code.INSUFFICIENT_FUNDS)))
    status, body = units_answer(result, BET_THEN_WIN, action_ids=["a1", "a2"], game_id="r", now_us=0)
    assert (status.http, body.code, body.balance) == (412, 100, 1000)
    assert body.message == "Player has not enough funds to process an action"


def test_the_refused_action_picks_the_table():
    """A win refused on a rolled-back round: 403 / 403 (case 15); a bet whose id was rolled
    back before it arrived: 400 / 400 (case 12); a win in a round with no bet: 404 / 404."""
    def refused(code: Code, index: int) -> Result:
        return Result(code=code, currency="EUR", cash_minor=10, bonus_minor=0,
                      results=(*(_ok(1, 10) for _ in range(index)), Result(code=code)))

    status, body = units_answer(refused(Code.TRANSACTION_ROLLED_BACK, 1), BET_THEN_WIN, action_ids=["a1", "a2"],
                                game_id="r", now_us=0)
    assert (status.http, body.code, body.balance) == (403, 403, 10)
    status, body = units_answer(refused(Code.TRANSACTION_ROLLED_BACK, 0), BET_THEN_WIN, action_ids=["a1", "a2"],
                                game_id="r", now_us=0)
    assert (status.http, body.code) == (400, 400)
    status, body = units_answer(refused(Code.UNKNOWN_TRANSACTION, 1), BET_THEN_WIN, action_ids=["a1", "a2"],
                                game_id="r", now_us=0)
    assert (status.http, body.code) == (404, 404)
    rollbacks = rollback_to_command(_rollback(("rb1", "a1")), caller=CALLER)
    assert isinstance(rollbacks, Atomic)
    status, body = units_answer(refused(Code.TRANSACTION_ROLLED_BACK, 0), rollbacks, action_ids=["rb1"],
                                game_id="r", now_us=0)
    assert (status.http, body.code) == (400, 400)  # case 19


def test_refusal_without_balance_has_no_balance_field():
    status, body = units_answer(Result(code=Code.UNKNOWN_PLAYER, player_id="x"), BET_THEN_WIN, action_ids=["a"],
                                game_id="r", now_us=0)
    assert (status.http, body.code, body.balance) == (400, 101, None)
    assert "balance" not in json.loads(encode_response(body))


def test_ok_unit_without_balance_is_never_answered_as_success():
    status, _ = units_answer(Result(code=Code.OK), BET_THEN_WIN, action_ids=["a"], game_id="r", now_us=0)
    assert status is RETRYABLE


def test_balance_answer_picks_the_requested_currency():
    result = Result(code=Code.OK, player_id="p-1", balances=(Balance("EUR", 700, 30),))
    status, body = balance_answer(result, currency="EUR", game_id="rd")
    assert status.http == 200 and (body.balance, body.game_id, body.transactions) == (730, "rd", None)
    status, body = balance_answer(Result(code=Code.OK, balances=()), currency="EUR", game_id=None)
    assert (status.http, body.code) == (400, 154)
    status, body = balance_answer(Result(code=Code.CURRENCY_MISMATCH), currency="USD", game_id=None)
    assert (status.http, body.code) == (400, 154)
    status, body = balance_answer(Result(code=Code.UNKNOWN_PLAYER), currency="EUR", game_id=None)
    assert (status.http, body.code) == (400, 101)
    # the closing win of a round without actions answers like a balance request
    status, body = balance_answer(_ok(9, 700, 30), currency="EUR", game_id="rd")
    assert status.http == 200 and (body.balance, body.game_id, body.transactions) == (730, "rd", None)


def test_freespins_answer():
    status, body = freespins_answer(_ok(77, 1500), issue_id="fs-1", now_us=0)
    assert status.http == 200
    assert (body.balance, body.issue_id, body.tx_id, body.processed_at) == (
        1500, "fs-1", "77", "1970-01-01T00:00:00.000000Z")


def test_refusal_and_retryable_answers():
    status, body = refusal_answer(refusal_of(Code.INVALID_SIGNATURE, "bad"))
    assert (status.http, body.code, body.balance) == (403, 403, None)
    status, body = retryable_answer()
    assert (status.http, body.code) == (503, 503)


def test_iso_utc():
    assert iso_utc(0) == "1970-01-01T00:00:00.000000Z"
    assert iso_utc(1_700_000_000_000_001) == "2023-11-14T22:13:20.000001Z"


# ==== audit =========================================================================================


def test_audit_request_is_bounded_and_has_no_session_id():
    req = play([bet(f"a{i}") for i in range(30)], session_id="secret-token", game="g" * 200)
    audit = audit_request(req)
    assert audit["actions_count"] == 30 and len(audit["actions"]) == 10
    assert audit["actions"][0] == {"action": "bet", "action_id": "a0", "amount": 100}
    assert len(audit["game"]) == 128
    assert audit["session_sent"] is True and "secret-token" not in json.dumps(audit)
    generic = audit_request({"user_id": "u", "amount": 10**40, "actions": [{"amount": 10**40}, 5, []]})
    assert generic["actions"] == [{"amount": "<out of range>"}, 5, "<list>"]
    assert audit_request(None) == {} and audit_request([1, 2]) == {}
    json.dumps(generic)


def test_audit_of_an_undecodable_body_never_carries_a_nul():
    """A refused body's fields go to the audit record; a NUL there would fail the write."""
    assert str_field({"user_id": "p\x00"}, "user_id") is None
    assert str_field({"user_id": "p-1"}, "user_id") == "p-1"
    assert "\x00" not in json.loads(json.dumps(audit_request({"user_id": "a\x00b", "game": "\x00"})))["user_id"]


# ==== the HTTP pipeline in process (routes.py), with a scripted shard boundary =====================
# The HTTP tests run the real gateway; these cover what a real shard cannot be made to do on
# demand (raise Overloaded, fail unexpectedly) and the order of the checks.


class ScriptedEdge:
    """An EdgeContext whose ``submit`` answers from a script and records what it was given."""

    def __init__(self, *, answer=None, raises: Exception | None = None, admit: int | None = None,
                 session_error: Exception | None = None, session: GameSession | None = None) -> None:
        self.submitted: list = []
        self.answer = answer
        self.raises = raises
        self.admit_value = admit
        self.session_error = session_error
        self.session = session
        self.limiter_calls: list[tuple[str, str]] = []
        edge = self

        class Limiter:
            async def admit(self, kind: str, name: str) -> int | None:
                edge.limiter_calls.append((kind, name))
                return edge.admit_value

        class Sessions:
            async def get(self, token: str):
                if edge.session_error is not None:
                    raise edge.session_error
                return edge.session

        async def submit(command):
            self.submitted.append(command)
            if isinstance(command, RecordRefusal):
                return Result(code=command.code)
            if self.raises is not None:
                raise self.raises
            return self.answer

        self.ctx = EdgeContext(settings=make_settings(), submit=submit, sessions=Sessions(), limiter=Limiter())  # type: ignore[arg-type]  # fakes

    def refusals(self) -> list:
        return [c for c in self.submitted if isinstance(c, RecordRefusal)]

    def commands(self) -> list:
        return [c for c in self.submitted if not isinstance(c, RecordRefusal)]


async def call(edge: ScriptedEdge, endpoint: str, payload, *, signed: bool = True,
               content_type: str = "application/json", adapter: Adapter | None = None,
               key: bytes = KEY) -> httpx.Response:
    """POST ``payload`` to ``endpoint`` of ``adapter`` (default: the sandbox integration's on
    ``edge``), signed with ``key`` unless ``signed`` is false."""
    adapter = adapter if adapter is not None else Adapter(edge.ctx)
    app = Starlette(routes=[Mount(PREFIX, routes=adapter.routes())])
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": content_type}
    if signed:
        headers[HEADER] = sign(body, key)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        return await http.post(PREFIX + endpoint, content=body, headers=headers)


PLAY = {"user_id": "p-1", "currency": "EUR", "game": "g", "game_id": "r",
        "actions": [{"action": "bet", "amount": 100, "action_id": "a1"}]}


async def test_pipeline_rate_limited_is_503_without_audit_or_submit():
    edge = ScriptedEdge(admit=7)
    r = await call(edge, "/play", PLAY)
    assert (r.status_code, r.headers["Retry-After"], r.json()["code"]) == (503, "7", 503)
    assert edge.submitted == [] and edge.limiter_calls == [("provider", "softswiss")]


@pytest.mark.parametrize("exc,retry_after", [
    (Overloaded(3), "3"),
    (ShardUnavailable("down"), "1"),
    (RuntimeError("a bug"), "1"),
])
async def test_pipeline_retryable_failures_are_503_never_500(exc, retry_after):
    edge = ScriptedEdge(raises=exc)
    r = await call(edge, "/play", PLAY)
    assert (r.status_code, r.headers["Retry-After"]) == (503, retry_after)
    assert r.json() == {"code": 503, "message": "Service is unavailable"}


async def test_pipeline_session_store_down_is_503_for_bets_with_a_session_only():
    ok = Result(code=Code.OK, currency="EUR", cash_minor=900, bonus_minor=0,
                results=(Result(code=Code.OK, ledger_transaction_id=5),))
    edge = ScriptedEdge(answer=ok, session_error=SessionStoreUnavailable("redis down"))
    r = await call(edge, "/play", {**PLAY, "session_id": "tok"})
    assert r.status_code == 503 and edge.commands() == []
    r = await call(edge, "/play", PLAY)  # no session_id: Redis is not needed
    assert r.status_code == 200 and r.json()["transactions"][0]["tx_id"] == "5"
    win_only = {**PLAY, "session_id": "tok", "actions": [{"action": "win", "amount": 1, "action_id": "w"}]}
    assert (await call(edge, "/play", win_only)).status_code == 200


async def test_pipeline_checks_signature_before_content_type_and_decoding():
    edge = ScriptedEdge()
    r = await call(edge, "/play", b"not json at all", signed=False, content_type="text/plain")
    assert (r.status_code, r.json()["code"]) == (403, 403)
    assert [c.code for c in edge.refusals()] == [Code.INVALID_SIGNATURE] and edge.commands() == []
    r = await call(edge, "/play", PLAY, content_type="text/plain")
    assert (r.status_code, r.json()["code"]) == (400, 400)
    r = await call(edge, "/play", b"not json")
    assert (r.status_code, r.json()["code"]) == (400, 400)
    assert [c.code for c in edge.refusals()] == [Code.INVALID_SIGNATURE, Code.INVALID_REQUEST,
                                                 Code.INVALID_REQUEST]
    assert edge.commands() == []
    audit = edge.refusals()[1]
    assert audit.scope == SCOPE and audit.partner_id == "demo" and audit.player_id == "p-1"
    assert audit.origin.route == "softswiss /play"


async def test_pipeline_submits_one_atomic_unit_and_maps_the_refusal():
    refused = Result(code=Code.INSUFFICIENT_FUNDS, currency="EUR", cash_minor=50, bonus_minor=0)
    edge = ScriptedEdge(answer=refused)
    r = await call(edge, "/play", PLAY)
    assert r.status_code == 412 and r.json() == {
        "code": 100, "message": "Player has not enough funds to process an action", "balance": 50}
    (command,) = edge.commands()
    assert isinstance(command, Atomic) and command.origin.route == "softswiss /play"
    assert edge.refusals() == []  # the shard audits its own refusals


# ==== sessions and commands are bound to their integration (partner from the integration) ==========

OTHER_INTEGRATION = session(integration="hub88")
OTHER_SOFTSWISS = session(integration="softswiss-brand2")  # another SoftSwiss integration of demo
OTHER_PARTNER = session(partner_id="other")


@pytest.mark.parametrize("sess", [OTHER_INTEGRATION, OTHER_SOFTSWISS, OTHER_PARTNER],
                         ids=["integration", "softswiss-integration", "partner"])
async def test_a_session_of_another_integration_or_partner_is_refused_everywhere(sess):
    """/play with bets is the only endpoint that reads a session (README.md choice 7): a token
    not opened for this integration and its partner is refused like an unknown one (400 / 101),
    in the mapping and through the pipeline, and nothing is submitted."""
    got = to_command(play([bet()], session_id=sess.token), sess)
    assert isinstance(got, Refusal) and got.code is Code.INVALID_TOKEN
    assert (got.status.http, got.status.code) == (400, 101)
    assert check_session(sess, play([bet()], session_id=sess.token), NOW, caller=CALLER) == got
    assert check_session(sess, play([bet()], session_id=sess.token), NOW,
                         caller=Caller.of(sess.integration, PROVIDER, sess.partner_id)) is None  # its owner's
    edge = ScriptedEdge(session=msgspec.structs.replace(sess, expires_at_s=2**40))
    r = await call(edge, "/play", {**PLAY, "session_id": sess.token})
    assert (r.status_code, r.json()["code"]) == (400, 101) and edge.commands() == []
    (audit,) = edge.refusals()
    assert audit.code is Code.INVALID_TOKEN and audit.scope == SCOPE and audit.partner_id == "demo"


async def test_an_integration_signs_with_its_own_key_and_acts_for_its_own_partner():
    """A second SoftSwiss integration, of partner "acme": its own auth_token, scope
    "acme:ss-acme" and partner on every command, its own rate-limit name and audit route."""
    caller = Caller.of("ss-acme", PROVIDER, "acme")
    settings = SoftSwissSettings(partner_id="acme", auth_token="acme-token")
    ok = Result(code=Code.OK, currency="EUR", cash_minor=900, bonus_minor=0,
                results=(Result(code=Code.OK, ledger_transaction_id=5),))
    edge = ScriptedEdge(answer=ok)
    adapter = Adapter(edge.ctx, caller, settings)
    r = await call(edge, "/play", PLAY, adapter=adapter)  # signed with the sandbox's key
    assert r.status_code == 403 and edge.commands() == []
    r = await call(edge, "/play", PLAY, adapter=adapter, key=b"acme-token")
    assert r.status_code == 200, r.text
    (command,) = edge.commands()
    assert isinstance(command, Atomic)
    assert (command.scope, command.partner_id) == ("acme:ss-acme", "acme")
    assert all((a.scope, a.partner_id) == ("acme:ss-acme", "acme") for a in command.actions)
    assert command.origin is not None and command.origin.route == "ss-acme /play"
    assert edge.limiter_calls == [("provider", "ss-acme")] * 2
    (audit,) = edge.refusals()
    assert audit.code is Code.INVALID_SIGNATURE and (audit.scope, audit.partner_id) == ("acme:ss-acme", "acme")


# ==== certification paths through the pipeline (README.md "Certification") =========================


async def test_pipeline_finished_without_actions_closes_the_round_or_answers_the_balance():
    """Case 28: the closing win is submitted and answered ``{balance, game_id}``; if its key
    was already used with another game (the round closed before), the balance is read."""
    closed = Result(code=Code.OK, currency="EUR", cash_minor=900, bonus_minor=0, ledger_transaction_id=8)
    edge = ScriptedEdge(answer=closed)
    body = {"user_id": "p-1", "currency": "EUR", "game_id": "r", "finished": True, "actions": []}
    r = await call(edge, "/play", body)
    assert (r.status_code, r.json()) == (200, {"balance": 900, "game_id": "r"})
    (command,) = edge.commands()
    assert isinstance(command, Credit) and command.transaction_id == END_PREFIX + "r" and command.round_closed

    edge = ScriptedEdge()
    answers = iter([Result(code=Code.IDEMPOTENCY_CONFLICT), Result(code=Code.OK, balances=(Balance("EUR", 880, 0),))])
    original = edge.ctx.submit

    async def submit(command):
        await original(command)
        return next(answers)

    edge.ctx.submit = submit  # scripted: a conflict, then the balance
    r = await call(edge, "/play", body)
    assert (r.status_code, r.json()) == (200, {"balance": 880, "game_id": "r"})
    assert [type(c) for c in edge.commands()] == [Credit, GetBalance]
    # no round named, or named empty: a plain balance request
    edge = ScriptedEdge(answer=Result(code=Code.OK, balances=(Balance("EUR", 5, 0),)))
    r = await call(edge, "/play", {**body, "game_id": ""})
    assert (r.status_code, r.json()) == (200, {"balance": 5})
    assert [type(c) for c in edge.commands()] == [GetBalance]


async def test_pipeline_empty_session_id_is_no_session():
    """``"session_id": ""`` with a bet: no session is looked up (the store would fail here)."""
    ok = Result(code=Code.OK, currency="EUR", cash_minor=900, bonus_minor=0,
                results=(Result(code=Code.OK, ledger_transaction_id=5),))
    edge = ScriptedEdge(answer=ok, session_error=SessionStoreUnavailable("must not be asked"))
    r = await call(edge, "/play", {**PLAY, "session_id": ""})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("payout,amount", [(None, 0), ("notice", 0), ("credit", 500)])
async def test_pipeline_freespins_pays_only_in_credit_mode(payout, amount):
    """Case 29: ``freespins_payout`` of the integration ("notice" by default)."""
    ok = Result(code=Code.OK, currency="EUR", cash_minor=900 + amount, bonus_minor=0, ledger_transaction_id=3)
    edge = ScriptedEdge(answer=ok)
    settings = SoftSwissSettings(partner_id="demo", auth_token=KEY.decode(),
                                 **({} if payout is None else {"freespins_payout": payout}))
    adapter = Adapter(edge.ctx, CALLER, settings)
    r = await call(edge, "/freespins", {"issue_id": "fs", "status": "played", "total_amount": 500,
                                        "user_id": "p-1", "currency": "EUR"}, adapter=adapter)
    assert r.status_code == 200 and r.json()["balance"] == 900 + amount
    (command,) = edge.commands()
    assert isinstance(command, Credit) and command.amount_minor == amount and command.credit_type == "freespins"
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"provider": "softswiss", "partner_id": "demo", "freespins_payout": "both"},
                        SoftSwissSettings)
