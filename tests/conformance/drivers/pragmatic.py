"""Pragmatic Play conformance driver: the wallet scenarios said in Pragmatic's seamless wallet.

Source: gateway/providers/pragmatic/README.md ("Protocol facts", "Common ground"). What it does, per
request:

* POST ``application/x-www-form-urlencoded`` to ``/providers/pragmatic/<endpoint>.html``
  ("Transport"; endpoints ``/authenticate.html``, ``/balance.html``, ``/bet.html``,
  ``/result.html``, ``/endRound.html``, ``/refund.html``), with ``providerId`` and ``hash`` =
  md5 of every other parameter sorted by name as ``k=v&k=v`` with the secret appended
  ("Hash"). The sandbox secret and provider id are ``[integrations.pragmatic]`` of
  config/sandbox.toml. A "bad signature" is a hash made with another secret.
* A bet is ``/bet.html`` whose ``reference`` is the scenario's bet id ("reference: unique per
  money movement; the idempotency key"). A win is ``/result.html`` with its own reference; it
  names the round only, never the bet (``wins_reference_bets = False``); a win that closes the
  round is ``/result.html`` followed by ``/endRound.html``. A rollback is ``/refund.html``
  naming the bet's ``reference`` (Pragmatic's refund carries no id of its own, so the
  scenario's rollback id is not sent). Pragmatic defines no rollback of a win: the nearest
  request, ``/refund.html`` naming a result's ``reference``, must be refused
  (``reverses_wins = False``).
* Amounts are decimal strings in major units ("Fields": ``amount`` decimal string), written
  exactly from minor units. Answers' ``cash`` and ``bonus`` are read as ``Decimal`` and must
  be exact in the currency; ``Answer.balance_minor`` is their sum in minor units.
* Every answer must be HTTP 200, JSON, with an ``error`` from gateway/providers/pragmatic/README.md's list and a
  ``description``, and a ``transactionId``, when sent, a string; anything else raises
  AssertionError. ``Answer.status`` is ``error`` as text.

The ``expect`` table is written from gateway/providers/pragmatic/README.md, not from the adapter's ``statuses.py``;
where gateway/providers/pragmatic/README.md names no code for a situation the reasoning is next to the row.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import httpx

from tests.conformance.driver import Answer, Seat

ROOT: Final = Path(__file__).resolve().parents[3]
PREFIX: Final = "/providers/pragmatic"
FORM: Final = "application/x-www-form-urlencoded"

_CONFIG: Final = tomllib.loads((ROOT / "config" / "sandbox.toml").read_text())["integrations"]["pragmatic"]
#: The shared secret of the hash and Pragmatic's provider id (config/sandbox.toml).
SECRET: Final = _CONFIG["secret_key"]
PROVIDER_ID: Final = _CONFIG["provider_id"]
#: A secret that is not ours: what ``bet_bad_signature`` hashes with.
OTHER_SECRET: Final = SECRET + "-not-ours"

#: Minor-unit exponents of the currencies the scenarios use (ISO 4217).
EXPONENTS: Final = {"EUR": 2, "USD": 2, "GBP": 2, "JPY": 0, "KWD": 3}

#: gateway/providers/pragmatic/README.md "Error codes": nothing else may ever be answered.
ERRORS: Final = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 50, 100, 120, 130, 210, 310})


def md5_hash(params: Mapping[str, str], secret: str = SECRET) -> str:
    """gateway/providers/pragmatic/README.md: md5 of all other parameters sorted by name as k=v&k=v, secret appended."""
    text = "&".join(f"{k}={params[k]}" for k in sorted(params)) + secret
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def wire_from_minor(amount_minor: int, currency: str) -> str:
    """Minor units -> Pragmatic's decimal string in major units: EUR 356 -> "3.56", JPY 5 -> "5"."""
    exp = EXPONENTS[currency]
    if exp == 0:
        return str(amount_minor)
    whole, frac = divmod(amount_minor, 10 ** exp)
    return f"{whole}.{frac:0{exp}d}"


def minor_from_wire(value: Any, currency: str) -> int:
    """An answer's Decimal major units -> minor units; AssertionError if not exact."""
    assert isinstance(value, (Decimal, int)) and not isinstance(value, bool), f"amount {value!r} is not a number"
    scaled = Decimal(value).scaleb(EXPONENTS[currency])
    assert scaled == scaled.to_integral_value(), f"amount {value} is not exact in {currency}"
    return int(scaled)


class PragmaticDriver:
    """Pragmatic's side of the wire (see the module docstring)."""

    name = "pragmatic"
    wins_reference_bets = False
    # A result for a round with no bet is refused (T1 "Bet transaction not found", IqSoft
    # CanNotConnectCreditAndDebit -> 120; README.md "Certification" case 17): never paid.
    accepts_orphan_wins = False
    # Pragmatic's refund undoes a bet; no method takes a win back.
    reverses_wins = False
    expect: Mapping[str, frozenset[str]] = {
        "ok": frozenset({"0"}),
        # "A repeated reference gets success with the current balance and the original
        # transactionId."
        "bet_replay": frozenset({"0"}),
        # Common ground: same id, other content = duplicate error. Pragmatic's list has no
        # duplicate code; the answer must be final (not 100, which Pragmatic retries with the
        # same conflicting content) and not a success: 7 "bad parameters" (the parameters
        # contradict the stored transaction) or 120 "internal error (no retry)".
        "duplicate": frozenset({"7", "120"}),
        "insufficient_funds": frozenset({"1"}),
        # A result for a round the wallet never saw: 120, nothing credited (README.md
        # "Certification" case 17: T1 "Bet transaction not found", IqSoft -> 120).
        "win_unknown_bet": frozenset({"120"}),
        # A result for a round whose bet was refunded: 120 (case 18: T1 "Transaction already
        # processed by refund."). Not 3, which is the late bet's code.
        "win_after_rollback": frozenset({"120"}),
        # A refund naming a result's reference: not a bet, nothing to refund -> 120, the code
        # of a refund the wallet cannot apply (case 22's code); the win stays paid.
        "rollback_of_win": frozenset({"120"}),
        # Common ground: refused with the "already settled" status. Pragmatic has none; 120
        # is the final code gateway/providers/pragmatic/README.md reports Pragmatic wallets using for a refund they
        # cannot apply.
        "rollback_after_win": frozenset({"120"}),
        # Common ground: the late bet of a refunded reference is refused: 3 "bet not
        # allowed" names exactly that; 120 would be final too.
        "bet_after_rollback": frozenset({"3", "120"}),
        # 4 "token invalid or expired".
        "bet_token_expired": frozenset({"4"}),
        # 6 "player frozen".
        "bet_blocked": frozenset({"6"}),
        # Pragmatic's bet carries no currency ("Fields"): the driver adds a ``currency``
        # parameter the session does not have; the only fitting code is 7 "bad parameters".
        "wrong_currency": frozenset({"7"}),
        # 5 "invalid hash".
        "bad_signature": frozenset({"5"}),
        # "Refund of an unknown bet: ... success, remembered as a tombstone, is the safer
        # reading."
        "rollback_unknown": frozenset({"0"}),
    }

    # ---- transport -----------------------------------------------------------------------

    async def send(self, client: httpx.AsyncClient, endpoint: str, params: dict[str, str], *,
                   currency: str, secret: str = SECRET) -> Answer:
        """Hash ``params`` (with ``providerId``), POST the form, check the envelope."""
        params = {"providerId": PROVIDER_ID, **params}
        body = urlencode({**params, "hash": md5_hash(params, secret)}).encode()
        response = await client.post(PREFIX + endpoint, content=body, headers={"Content-Type": FORM})
        assert response.status_code == 200, (endpoint, response.status_code, response.text[:300])
        assert response.headers.get("content-type", "").startswith("application/json"), response.headers
        answer = json.loads(response.content, parse_float=Decimal)
        assert isinstance(answer, dict), answer
        error = answer.get("error")
        assert error in ERRORS, f"{endpoint}: error {error!r} is not a Pragmatic error code"
        assert isinstance(answer.get("description"), str), answer
        # README.md "Certification": transactionId is a string, as every implementation sends it
        assert "transactionId" not in answer or isinstance(answer["transactionId"], str), answer
        balance_minor = None
        if answer.get("cash") is not None:
            answered_currency = answer.get("currency") or currency
            assert answered_currency == currency, f"answer in {answered_currency}, seat in {currency}"
            balance_minor = (minor_from_wire(answer["cash"], currency)
                             + minor_from_wire(answer.get("bonus", 0), currency))
        return Answer(status=str(error), http_status=response.status_code,
                      balance_minor=balance_minor, body=answer)

    # ---- the contract ----------------------------------------------------------------------

    async def open(self, client: httpx.AsyncClient, seat: Seat) -> Seat:
        """``/authenticate.html`` with the launch token, as the game does; the token is unchanged."""
        got = await self.send(client, "/authenticate.html", {"token": seat.token, "gameId": seat.game_id},
                              currency=seat.currency)
        assert got.status == "0", f"/authenticate.html refused: {got.body}"
        assert got.body.get("userId") == seat.player_id, got.body  # type: ignore[attr-defined]  # a JSON object
        assert got.body.get("token") == seat.token, got.body  # type: ignore[attr-defined]  # kept, and said so
        return seat

    async def balance(self, client: httpx.AsyncClient, seat: Seat) -> Answer:
        return await self.send(client, "/balance.html", {"userId": seat.player_id, "token": seat.token},
                               currency=seat.currency)

    def _bet_params(self, seat: Seat, txn_id: str, round_id: str, amount_minor: int,
                    currency: str | None) -> dict[str, str]:
        params = {
            "userId": seat.player_id, "token": seat.token, "gameId": seat.game_id,
            "roundId": round_id, "amount": wire_from_minor(amount_minor, currency or seat.currency),
            "reference": txn_id, "timestamp": "1700000000000", "roundDetails": "spin",
            "platform": "WEB",
        }
        if currency is not None:
            params["currency"] = currency
        return params

    async def bet(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str, round_id: str,
                  amount_minor: int, currency: str | None = None) -> Answer:
        return await self.send(client, "/bet.html",
                               self._bet_params(seat, txn_id, round_id, amount_minor, currency),
                               currency=seat.currency)

    async def win(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str, round_id: str,
                  amount_minor: int, bet_txn_id: str, round_closed: bool = False) -> Answer:
        """``/result.html`` (naming the round; ``bet_txn_id`` has no place in it), then, when the
        round closes, ``/endRound.html``; the result's answer, or endRound's if it refused."""
        got = await self.send(client, "/result.html", {
            "userId": seat.player_id, "token": seat.token, "gameId": seat.game_id,
            "roundId": round_id, "amount": wire_from_minor(amount_minor, seat.currency),
            "reference": txn_id, "timestamp": "1700000000001", "roundDetails": "spin",
            "platform": "WEB",
        }, currency=seat.currency)
        if not round_closed or got.status != "0":
            return got
        end = await self.send(client, "/endRound.html", {
            "userId": seat.player_id, "token": seat.token, "gameId": seat.game_id, "roundId": round_id,
        }, currency=seat.currency)
        return got if end.status == "0" else end

    async def rollback(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str,
                       bet_txn_id: str, round_id: str, amount_minor: int) -> Answer:
        """``/refund.html`` of the bet's ``reference`` (the refund has no id of its own)."""
        return await self.send(client, "/refund.html", {
            "userId": seat.player_id, "token": seat.token, "gameId": seat.game_id,
            "roundId": round_id, "reference": bet_txn_id,
            "amount": wire_from_minor(amount_minor, seat.currency),
        }, currency=seat.currency)

    async def rollback_win(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str,
                           win_txn_id: str, round_id: str, amount_minor: int) -> Answer:
        """``/refund.html`` naming the result's ``reference``: Pragmatic has no rollback of a
        win, so this is the only way to say one, and it must be refused."""
        return await self.send(client, "/refund.html", {
            "userId": seat.player_id, "token": seat.token, "gameId": seat.game_id,
            "roundId": round_id, "reference": win_txn_id,
            "amount": wire_from_minor(amount_minor, seat.currency),
        }, currency=seat.currency)

    async def bet_bad_signature(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str,
                                round_id: str, amount_minor: int) -> Answer:
        """The same bet, hashed with a secret that is not ours."""
        return await self.send(client, "/bet.html",
                               self._bet_params(seat, txn_id, round_id, amount_minor, None),
                               currency=seat.currency, secret=OTHER_SECRET)


DRIVER: Final = PragmaticDriver()
