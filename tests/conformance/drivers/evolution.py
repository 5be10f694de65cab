"""Evolution conformance driver: the wallet scenarios said in Evolution's One Wallet protocol.

Source: gateway/providers/evolution/README.md ("Protocol facts", "Common ground"). What it does, per request:

* POST JSON to ``/providers/evolution/<endpoint>`` (``/check``, ``/balance``, ``/debit``,
  ``/credit``, ``/cancel``) with the operator's API key as the ``authToken`` query
  parameter ("Transport"); the sandbox key is ``integrations.evolution.auth_token`` of
  config/sandbox.toml. Evolution signs nothing: a "bad signature" is a wrong key.
* Fields per "Request": ``sid``, ``userId``, ``uuid``, ``currency``,
  ``game{id, type, details{table{id, vid}}}``, ``transaction{id, refId, amount}``. The
  table's ``vid`` is sent as ``""``, as Evolution sends it for a table without a virtual
  table (README.md "Certification", case 26), so every scenario runs with it. A bet is
  a ``/debit`` with its own ``transaction.id`` and a ``refId``; a win is a ``/credit`` and a
  rollback a ``/cancel``, each naming the debit by that ``refId`` ("Credit and cancel find
  their debit by transaction.refId"). The scenario's bet id is the debit's ``refId``
  (``ref_id``), which is also the adapter's ledger key of the debit; the debit's own
  ``transaction.id`` is a different value (``debit_id``), as in Evolution's traffic. A
  win's or rollback's id is its ``transaction.id``.
* Amounts are decimal numbers in major units, sent as JSON numbers (never via float) and
  read back as ``Decimal``; an answer's ``balance`` must be exact in the currency
  (``12.50`` EUR), and ``Answer.balance_minor`` is ``balance + bonus`` in minor units.
* Every answer must be HTTP 200, JSON, with one of the statuses gateway/providers/evolution/README.md lists; anything
  else raises AssertionError -- a conformance failure of the adapter, whatever the scenario.
  Every answer of ``/balance``, ``/debit``, ``/credit`` and ``/cancel`` carries ``balance``
  and ``bonus`` (README.md "Answers"), refusals included, except the refusal of a wrong
  ``authToken`` (nothing is read for an unauthenticated caller) and ``TEMPORARY_ERROR``.
* A win is never rolled back in Evolution's protocol: a ``/cancel`` names a debit's
  ``refId``, never a credit (README.md "Certification"), so ``rollback_win`` answers None,
  ``reverses_wins`` is False; a credit names its debit, so a win with no bet is refused
  (``accepts_orphan_wins`` False).

The ``expect`` table is written from gateway/providers/evolution/README.md (the licensee test list), not from the
adapter's ``statuses.py``; the situations gateway/providers/evolution/README.md does not name a status for are
explained next to their rows.
"""

from __future__ import annotations

import json
import tomllib
import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec

from tests.conformance.driver import Answer, Seat

ROOT: Final = Path(__file__).resolve().parents[3]
PREFIX: Final = "/providers/evolution"

#: The operator's key Evolution sends (config/sandbox.toml ``[integrations.evolution]``).
AUTH_TOKEN: Final = tomllib.loads((ROOT / "config" / "sandbox.toml").read_text())["integrations"]["evolution"][
    "auth_token"]

#: Minor-unit exponents of the currencies the scenarios use (ISO 4217).
EXPONENTS: Final = {"EUR": 2, "USD": 2, "GBP": 2, "JPY": 0, "KWD": 3}

#: gateway/providers/evolution/README.md "Statuses": nothing else may ever be answered.
STATUSES: Final = frozenset({
    "OK", "TEMPORARY_ERROR", "UNKNOWN_ERROR", "INVALID_SID", "INVALID_TOKEN_ID", "INVALID_PARAMETER",
    "INSUFFICIENT_FUNDS", "BET_ALREADY_EXIST", "BET_ALREADY_SETTLED", "BET_DOES_NOT_EXIST",
    "FINAL_ERROR_ACTION_FAILED", "OPERATION_IN_PROCESS", "ACCOUNT_LOCKED",
})

#: The endpoints whose every answer carries ``balance`` and ``bonus`` (README.md "Answers").
BALANCE_ENDPOINTS: Final = frozenset({"/balance", "/debit", "/credit", "/cancel", "/promo_payout"})
#: ... except these answers: an unauthenticated caller (nothing read) and the retryable
#: answer (the wallet could not be asked).
NO_BALANCE_STATUSES: Final = frozenset({"INVALID_TOKEN_ID", "TEMPORARY_ERROR"})


def wire_from_minor(amount_minor: int, currency: str) -> Decimal:
    """Minor units -> Evolution's amount in major units, exact: EUR 1250 -> Decimal("12.50"),
    sent as the JSON number ``12.50`` (``_encoder``)."""
    exp = EXPONENTS[currency]
    sign = "-" if amount_minor < 0 else ""
    q, r = divmod(abs(amount_minor), 10 ** exp)
    return Decimal(f"{sign}{q}.{r:0{exp}d}" if exp else f"{sign}{q}")


def minor_from_wire(amount: object, currency: str) -> int:
    """Evolution amount (a JSON number read as Decimal) -> minor units; AssertionError if it
    is not a number or not exact in the currency (EUR 12.505)."""
    assert isinstance(amount, (Decimal, int)) and not isinstance(amount, bool), f"amount {amount!r} is not a number"
    scaled = Decimal(amount).scaleb(EXPONENTS[currency])
    assert scaled == scaled.to_integral_value(), f"amount {amount} is not exact in {currency}"
    return int(scaled)


def ref_id(bet_txn_id: str) -> str:
    """The ``refId`` of the scenario's bet ``bet_txn_id`` (its debit, credit and cancel)."""
    return bet_txn_id


def debit_id(bet_txn_id: str) -> str:
    """The debit's own ``transaction.id``: distinct from its ``refId``, stable per bet."""
    return "debit-" + bet_txn_id


def _uuid() -> str:
    return str(uuid.uuid4())


def _game(seat: Seat, round_id: str) -> dict[str, Any]:
    return {"id": round_id, "type": "blackjack", "details": {"table": {"id": seat.game_id, "vid": ""}}}


#: JSON encoder writing Decimal amounts as JSON numbers (``12.50``), never through a float.
_encoder: Final = msgspec.json.Encoder(decimal_format="number")


class Driver:
    """Evolution's side of the wire (see the module docstring); satisfies
    ``tests.conformance.driver.Driver``."""

    name = "evolution"
    wins_reference_bets = True  # a credit names its debit by refId
    accepts_orphan_wins = False  # "credit with an unknown refId -> BET_DOES_NOT_EXIST"
    reverses_wins = False  # a cancel names a debit's refId: no request rolls back a credit
    expect: Mapping[str, frozenset[str]] = {
        "ok": frozenset({"OK"}),
        # Licensee test list: "a repeated debit -> BET_ALREADY_EXIST or OK, never a second
        # deduction".
        "bet_replay": frozenset({"OK", "BET_ALREADY_EXIST"}),
        # The same debit (same refId) with another amount: a repeated debit that must not be
        # applied; OK would claim a stake that was not taken, so only BET_ALREADY_EXIST.
        "duplicate": frozenset({"BET_ALREADY_EXIST"}),
        # Licensee test list: "INSUFFICIENT_FUNDS returns the unchanged balance".
        "insufficient_funds": frozenset({"INSUFFICIENT_FUNDS"}),
        # Licensee test list: "credit or cancel with an unknown refId -> BET_DOES_NOT_EXIST".
        "win_unknown_bet": frozenset({"BET_DOES_NOT_EXIST"}),
        # Licensee test list: "credit after cancel -> BET_ALREADY_SETTLED".
        "win_after_rollback": frozenset({"BET_ALREADY_SETTLED"}),
        # Licensee test list: "cancel after credit -> BET_ALREADY_SETTLED".
        "rollback_after_win": frozenset({"BET_ALREADY_SETTLED"}),
        # Not in the licensee list: a debit whose refId was cancelled before it arrived.
        # Common ground: refused with a final status, nothing moved. README.md
        # "Certification" case 14: FINAL_ERROR_ACTION_FAILED (the one-wallet reference
        # implementation's answer; BET_ALREADY_SETTLED reads as success to Evolution).
        "bet_after_rollback": frozenset({"FINAL_ERROR_ACTION_FAILED"}),
        # "/check ... later calls with the old sid are refused with INVALID_SID": a sid that
        # is no longer valid is INVALID_SID.
        "bet_token_expired": frozenset({"INVALID_SID"}),
        # README.md "Statuses" / "Certification" case 28: a locked (blocked or self-excluded)
        # account's bet is ACCOUNT_LOCKED, a final refusal (Common ground).
        "bet_blocked": frozenset({"ACCOUNT_LOCKED"}),
        # Not named by gateway/providers/evolution/README.md: a currency the sid does not hold is a wrong parameter.
        "wrong_currency": frozenset({"INVALID_PARAMETER"}),
        # "with the operator's API key as the authToken query parameter": a wrong key is a
        # wrong token id.
        "bad_signature": frozenset({"INVALID_TOKEN_ID"}),
        # "credit or cancel with an unknown refId -> BET_DOES_NOT_EXIST" (licensee test
        # list); the wallet still remembers it, so the late debit is refused.
        "rollback_unknown": frozenset({"BET_DOES_NOT_EXIST"}),
        # Never sent (``rollback_win`` is None): a cancel naming something that is not a
        # debit's refId finds no bet -> BET_DOES_NOT_EXIST, nothing moved.
        "rollback_of_win": frozenset({"BET_DOES_NOT_EXIST"}),
    }

    # ---- transport ---------------------------------------------------------------------------

    async def send(self, client: httpx.AsyncClient, endpoint: str, payload: dict[str, Any], *,
                   currency: str, auth: str = AUTH_TOKEN) -> Answer:
        """POST ``payload`` with ``authToken=auth``, check the envelope; balance in ``currency`` minor units."""
        body = _encoder.encode(payload)
        response = await client.post(PREFIX + endpoint, content=body, params={"authToken": auth},
                                     headers={"Content-Type": "application/json"})
        assert response.status_code == 200, (endpoint, response.status_code, response.text[:300])
        assert response.headers.get("content-type", "").startswith("application/json"), response.headers
        answer = json.loads(response.content, parse_float=Decimal)
        assert isinstance(answer, dict), answer
        status = answer.get("status")
        assert status in STATUSES, f"{endpoint}: status {status!r} is not an Evolution status"
        if endpoint in BALANCE_ENDPOINTS and status not in NO_BALANCE_STATUSES:
            assert "balance" in answer and "bonus" in answer, f"{endpoint}: {status} without balance/bonus: {answer}"
        balance_minor = None
        if answer.get("balance") is not None:
            balance_minor = minor_from_wire(answer["balance"], currency)
            if answer.get("bonus") is not None:
                balance_minor += minor_from_wire(answer["bonus"], currency)
        return Answer(status=status, http_status=response.status_code, balance_minor=balance_minor,
                      body=answer)

    # ---- the contract --------------------------------------------------------------------------

    async def open(self, client: httpx.AsyncClient, seat: Seat) -> Seat:
        """``/check`` with the operator's sid, as Evolution does at game launch; the answer's
        new ``sid`` replaces the seat's token (the old one is refused from now on)."""
        got = await self.send(client, "/check", {
            "sid": seat.token, "userId": seat.player_id, "uuid": _uuid(), "channel": {"type": "P"}},
            currency=seat.currency)
        assert got.status == "OK", f"/check refused: {got.body}"
        new_sid = got.body.get("sid") if isinstance(got.body, dict) else None
        assert isinstance(new_sid, str) and new_sid, f"/check returned no sid: {got.body}"
        return Seat(player_id=seat.player_id, currency=seat.currency, token=new_sid, game_id=seat.game_id)

    async def balance(self, client: httpx.AsyncClient, seat: Seat) -> Answer:
        return await self.send(client, "/balance", {
            "sid": seat.token, "userId": seat.player_id, "currency": seat.currency, "uuid": _uuid(),
            "game": None}, currency=seat.currency)

    def _debit_payload(self, seat: Seat, txn_id: str, round_id: str, amount_minor: int,
                       currency: str) -> dict[str, Any]:
        return {
            "sid": seat.token, "userId": seat.player_id, "uuid": _uuid(), "currency": currency,
            "game": _game(seat, round_id),
            "transaction": {"id": debit_id(txn_id), "refId": ref_id(txn_id),
                            "amount": wire_from_minor(amount_minor, currency)},
        }

    async def bet(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str, round_id: str,
                  amount_minor: int, currency: str | None = None) -> Answer:
        currency = currency or seat.currency
        return await self.send(client, "/debit",
                               self._debit_payload(seat, txn_id, round_id, amount_minor, currency),
                               currency=seat.currency)

    async def win(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str, round_id: str,
                  amount_minor: int, bet_txn_id: str, round_closed: bool = False) -> Answer:
        # Evolution's credit has no round-closed flag: the credit settles the debit it names.
        return await self.send(client, "/credit", {
            "sid": seat.token, "userId": seat.player_id, "uuid": _uuid(), "currency": seat.currency,
            "game": _game(seat, round_id),
            "transaction": {"id": txn_id, "refId": ref_id(bet_txn_id),
                            "amount": wire_from_minor(amount_minor, seat.currency)},
        }, currency=seat.currency)

    async def rollback(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str,
                       bet_txn_id: str, round_id: str, amount_minor: int) -> Answer:
        return await self.send(client, "/cancel", {
            "sid": seat.token, "userId": seat.player_id, "uuid": _uuid(), "currency": seat.currency,
            "game": _game(seat, round_id),
            "transaction": {"id": txn_id, "refId": ref_id(bet_txn_id),
                            "amount": wire_from_minor(amount_minor, seat.currency)},
        }, currency=seat.currency)

    async def rollback_win(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str,
                           win_txn_id: str, round_id: str, amount_minor: int) -> Answer | None:
        """None: Evolution's ``/cancel`` names the debit (``refId``) it cancels; no request of
        the protocol takes a credit back (README.md "Certification")."""
        return None

    async def bet_bad_signature(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str,
                                round_id: str, amount_minor: int) -> Answer:
        """The same debit, sent with a key that is not the operator's (Evolution signs nothing)."""
        return await self.send(client, "/debit",
                               self._debit_payload(seat, txn_id, round_id, amount_minor, seat.currency),
                               currency=seat.currency, auth="not-" + AUTH_TOKEN)


EvolutionDriver = Driver  # the name other modules may prefer
#: ``tests/conformance/driver.py``: the provider's driver instance.
DRIVER: Final = Driver()
