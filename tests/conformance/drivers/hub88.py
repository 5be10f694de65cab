"""Hub88 conformance driver: the wallet scenarios said in Hub88's operator wallet API.

Source: gateway/providers/hub88/README.md, "Protocol facts" and "Common ground". What it does, per request:

* POST JSON to ``/providers/hub88/<endpoint>`` (``/user/info``, ``/user/balance``,
  ``/transaction/bet|win|rollback``), signed in ``X-Hub88-Signature`` with base64(RSA-SHA256
  PKCS#1 v1.5 over the raw body) under the sandbox's Hub88 demo private key
  (config/keys/hub88-demo-private.pem), as Hub88 does ("Signature").
* Every answer must be HTTP 200, JSON, one of the statuses gateway/providers/hub88/README.md lists, and signed by
  the operator (verified here with the demo public key); anything else raises
  AssertionError -- a conformance failure of the adapter, whatever the scenario.
* Amounts on the wire are major units x 100000 ("Amounts"): EUR 3.56 -> 356000. The answer's
  ``balance`` is converted back to minor units exactly (an inexact balance is a failure).

The ``expect`` table is written from gateway/providers/hub88/README.md ("Protocol facts",
"Certification"), not from the adapter's ``statuses.py``; the situations Hub88 names no
status for (rollback after a win: Hub88 has no "already settled" status; a rollback naming a
win: Hub88 rolls back bets only) are explained next to their rows.

Hub88 wins always name their bet (``reference_transaction_uuid``) and a win with no bet is
refused (``accepts_orphan_wins = False``); Hub88 and Caleta never roll back wins
(``reverses_wins = False``), but a rollback can name any transaction, so ``rollback_win``
sends one naming the win, which must be refused with nothing moved.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.conformance.driver import Answer, Seat

ROOT: Final = Path(__file__).resolve().parents[3]
KEYS: Final = ROOT / "config" / "keys"
PREFIX: Final = "/providers/hub88"
HEADER: Final = "X-Hub88-Signature"

#: Hub88's amount scale: wire amount = major units x 100000 (gateway/providers/hub88/README.md "Amounts").
AMOUNT_SCALE: Final = 100_000

#: Minor-unit exponents of the currencies the scenarios use (ISO 4217).
EXPONENTS: Final = {"EUR": 2, "USD": 2, "GBP": 2, "JPY": 0, "KWD": 3}

#: gateway/providers/hub88/README.md "Statuses": nothing else may ever be answered.
STATUSES: Final = frozenset({
    "RS_OK", "RS_ERROR_UNKNOWN", "RS_ERROR_INVALID_PARTNER", "RS_ERROR_INVALID_TOKEN",
    "RS_ERROR_INVALID_GAME", "RS_ERROR_WRONG_CURRENCY", "RS_ERROR_NOT_ENOUGH_MONEY",
    "RS_ERROR_USER_DISABLED", "RS_ERROR_INVALID_SIGNATURE", "RS_ERROR_TOKEN_EXPIRED",
    "RS_ERROR_WRONG_SYNTAX", "RS_ERROR_WRONG_TYPES", "RS_ERROR_DUPLICATE_TRANSACTION",
    "RS_ERROR_TRANSACTION_DOES_NOT_EXIST", "RS_ERROR_TRANSACTION_ROLLED_BACK",
})


def _load_private(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _load_public(path: Path) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


#: Hub88's key in the sandbox (the published demo pair signs both directions).
PRIVATE_KEY: Final = _load_private(KEYS / "hub88-demo-private.pem")
#: The operator's response-signing key, verified with the demo public key.
PUBLIC_KEY: Final = _load_public(KEYS / "hub88-demo-public.pem")
#: A key Hub88 does not own: what ``bet_bad_signature`` signs with.
OTHER_KEY: Final = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign(body: bytes, key: rsa.RSAPrivateKey = PRIVATE_KEY) -> str:
    """``X-Hub88-Signature`` of a raw body: base64(RSA-SHA256 PKCS#1 v1.5) (gateway/providers/hub88/README.md)."""
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def wire_from_minor(amount_minor: int, currency: str) -> int:
    """Minor units -> Hub88 wire amount (major x 100000): EUR 356 -> 356000 (exact)."""
    return amount_minor * (AMOUNT_SCALE // 10 ** EXPONENTS[currency])


def minor_from_wire(amount: int, currency: str) -> int:
    """Hub88 wire amount -> minor units; AssertionError if not exact (EUR 356001)."""
    assert isinstance(amount, int) and not isinstance(amount, bool), f"balance {amount!r} is not an integer"
    unit = AMOUNT_SCALE // 10 ** EXPONENTS[currency]
    assert amount % unit == 0, f"balance {amount} is not exact in {currency} minor units"
    return amount // unit


def _assert_signed(response: httpx.Response) -> None:
    signature = response.headers.get(HEADER)
    assert signature, f"unsigned Hub88 answer: {response.status_code} {response.content[:300]!r}"
    try:
        PUBLIC_KEY.verify(base64.b64decode(signature, validate=True), response.content,
                          padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        raise AssertionError(f"answer signature does not verify: {response.content[:300]!r}") from None


def _rq() -> str:
    return f"rq-{uuid.uuid4().hex[:16]}"


class Hub88Driver:
    """Hub88's side of the wire (see the module docstring)."""

    name = "hub88"
    wins_reference_bets = True
    # README "Certification" 14-15: a win names its bet; one whose bet is unknown is refused.
    accepts_orphan_wins = False
    # README "Certification" 23-24 (Caleta's test list: "winnings are never rolled back").
    reverses_wins = False
    expect: Mapping[str, frozenset[str]] = {
        "ok": frozenset({"RS_OK"}),
        # Common ground: "A replay gets the stored outcome."
        "bet_replay": frozenset({"RS_OK"}),
        # Hub88 Rules: "duplicate = same transaction_uuid with different content".
        "duplicate": frozenset({"RS_ERROR_DUPLICATE_TRANSACTION"}),
        "insufficient_funds": frozenset({"RS_ERROR_NOT_ENOUGH_MONEY"}),
        # Hub88 Rules: "a win whose bet does not exist -> RS_ERROR_TRANSACTION_DOES_NOT_EXIST".
        "win_unknown_bet": frozenset({"RS_ERROR_TRANSACTION_DOES_NOT_EXIST"}),
        # Hub88 Rules: "a win on a rolled-back bet -> RS_ERROR_TRANSACTION_ROLLED_BACK".
        "win_after_rollback": frozenset({"RS_ERROR_TRANSACTION_ROLLED_BACK"}),
        # Not named by gateway/providers/hub88/README.md: Hub88 has no "already settled" status. The answer must
        # be final (not RS_ERROR_UNKNOWN, which Hub88 retries for days), not a success and
        # not false (the bet exists and was not rolled back): the duplicate status
        # ("conflicts with what was already processed") is the only one left.
        "rollback_after_win": frozenset({"RS_ERROR_DUPLICATE_TRANSACTION"}),
        # Common ground: the late bet of a rolled-back id is refused; the id was rolled back.
        "bet_after_rollback": frozenset({"RS_ERROR_TRANSACTION_ROLLED_BACK",
                                         "RS_ERROR_DUPLICATE_TRANSACTION"}),
        "bet_token_expired": frozenset({"RS_ERROR_TOKEN_EXPIRED"}),
        "bet_blocked": frozenset({"RS_ERROR_USER_DISABLED"}),
        "wrong_currency": frozenset({"RS_ERROR_WRONG_CURRENCY"}),
        "bad_signature": frozenset({"RS_ERROR_INVALID_SIGNATURE"}),
        # Hub88 Rules: "rollback of an unknown transaction -> RS_OK with the balance".
        "rollback_unknown": frozenset({"RS_OK"}),
        # Not named by Hub88: only bets are rolled back, and the reference names no bet. The
        # status for "the bet referenced can't be found" is the one left that is true and
        # final for rollbacks (Caleta's list of final rollback statuses includes it).
        "rollback_of_win": frozenset({"RS_ERROR_TRANSACTION_DOES_NOT_EXIST"}),
    }

    # ---- transport -----------------------------------------------------------------------

    async def send(self, client: httpx.AsyncClient, endpoint: str, payload: dict[str, Any], *,
                   currency: str, key: rsa.RSAPrivateKey = PRIVATE_KEY) -> Answer:
        """Sign ``payload`` with ``key``, POST it, check the envelope; balance in ``currency`` minor units."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        response = await client.post(PREFIX + endpoint, content=body, headers={
            "Content-Type": "application/json", HEADER: sign(body, key)})
        assert response.status_code == 200, (endpoint, response.status_code, response.text[:300])
        assert response.headers.get("content-type", "").startswith("application/json"), response.headers
        _assert_signed(response)
        answer = response.json()
        assert isinstance(answer, dict), answer
        status = answer.get("status")
        assert status in STATUSES, f"{endpoint}: status {status!r} is not a Hub88 status"
        balance = answer.get("balance")
        balance_minor = None
        if balance is not None:
            answered_currency = answer.get("currency") or currency
            assert answered_currency == currency, f"answer in {answered_currency}, seat in {currency}"
            balance_minor = minor_from_wire(balance, currency)
        return Answer(status=status, http_status=response.status_code, balance_minor=balance_minor,
                      body=answer)

    # ---- the contract ----------------------------------------------------------------------

    async def open(self, client: httpx.AsyncClient, seat: Seat) -> Seat:
        """``/user/info`` with the token, as Hub88 does at game launch; the token is unchanged."""
        got = await self.send(client, "/user/info", {
            "request_uuid": _rq(), "user": seat.player_id, "token": seat.token,
            "game_code": seat.game_id}, currency=seat.currency)
        assert got.status == "RS_OK", f"/user/info refused: {got.body}"
        return seat

    async def balance(self, client: httpx.AsyncClient, seat: Seat) -> Answer:
        return await self.send(client, "/user/balance", {
            "request_uuid": _rq(), "token": seat.token, "user": seat.player_id,
            "game_code": seat.game_id, "supplier_user": "sup-" + seat.player_id},
            currency=seat.currency)

    def _bet_payload(self, seat: Seat, txn_id: str, round_id: str, amount_minor: int,
                     currency: str) -> dict[str, Any]:
        return {
            "request_uuid": _rq(), "token": seat.token, "user": seat.player_id,
            "transaction_uuid": txn_id, "supplier_transaction_id": "sup-" + txn_id,
            "supplier_user": "sup-" + seat.player_id, "round": round_id, "round_closed": False,
            "reward_uuid": None, "is_free": False, "is_aggregated": False,
            "game_code": seat.game_id, "currency": currency, "bet": "zero",
            "amount": wire_from_minor(amount_minor, currency), "meta": None,
        }

    async def bet(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str, round_id: str,
                  amount_minor: int, currency: str | None = None) -> Answer:
        currency = currency or seat.currency
        return await self.send(client, "/transaction/bet",
                               self._bet_payload(seat, txn_id, round_id, amount_minor, currency),
                               currency=seat.currency)

    async def win(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str, round_id: str,
                  amount_minor: int, bet_txn_id: str, round_closed: bool = False) -> Answer:
        return await self.send(client, "/transaction/win", {
            "request_uuid": _rq(), "token": seat.token, "user": seat.player_id,
            "transaction_uuid": txn_id, "reference_transaction_uuid": bet_txn_id,
            "supplier_transaction_id": "sup-" + txn_id, "supplier_user": "sup-" + seat.player_id,
            "round": round_id, "round_closed": round_closed, "reward_uuid": None,
            "is_free": False, "is_aggregated": False, "game_code": seat.game_id,
            "currency": seat.currency, "bet": "zero",
            "amount": wire_from_minor(amount_minor, seat.currency), "meta": None,
        }, currency=seat.currency)

    async def rollback(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str,
                       bet_txn_id: str, round_id: str, amount_minor: int) -> Answer:
        # Hub88's rollback carries no amount (gateway/providers/hub88/README.md "Request fields").
        return await self.send(client, "/transaction/rollback", {
            "request_uuid": _rq(), "token": seat.token, "user": seat.player_id,
            "transaction_uuid": txn_id, "reference_transaction_uuid": bet_txn_id,
            "round": round_id, "round_closed": False, "game_code": seat.game_id, "meta": None,
        }, currency=seat.currency)

    async def rollback_win(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str,
                           win_txn_id: str, round_id: str, amount_minor: int) -> Answer:
        """A rollback whose ``reference_transaction_uuid`` is the win's ``transaction_uuid``."""
        return await self.rollback(client, seat, txn_id=txn_id, bet_txn_id=win_txn_id,
                                   round_id=round_id, amount_minor=amount_minor)

    async def bet_bad_signature(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str,
                                round_id: str, amount_minor: int) -> Answer:
        """The same bet, signed with a key that is not Hub88's."""
        return await self.send(client, "/transaction/bet",
                               self._bet_payload(seat, txn_id, round_id, amount_minor, seat.currency),
                               currency=seat.currency, key=OTHER_KEY)


DRIVER: Final = Hub88Driver()
