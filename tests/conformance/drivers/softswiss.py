"""SoftSwiss conformance driver: the wallet scenarios said in SoftSwiss's game-provider protocol.

Source: gateway/providers/softswiss/README.md ("Protocol facts", "Common ground").
What it does, per request:

* POST JSON to ``/providers/softswiss/play`` or ``/rollback``, signed in ``X-REQUEST-SIGN``
  with the hex HMAC-SHA256 of the raw body keyed with the casino's auth token (the sandbox's
  ``softswiss-demo-auth-token``), as SoftSwiss does ("Signature").
* A bet is ``/play`` with one ``bet`` action (``game_id`` = the round, ``game`` = the seat's
  game); a win is ``/play`` with one ``win`` action and ``finished`` = ``round_closed``; a
  balance request is ``/play`` without actions ("No actions = a balance request"); a rollback
  is ``/rollback`` with one ``rollback`` action naming the bet by ``original_action_id``, and
  a rollback of a win the same naming the win ("Certification", case 16: SoftSwiss rolls
  back wins).
* Every request carries the seat's token as ``session_id`` (the gateway's optional session
  field, checked on bets only): SoftSwiss's own protocol has no token, so this is how an
  expired game session reaches the wallet.
* Every answer must be JSON. ``Answer.status`` is ``"200"`` for a success, else
  ``"<http>:<code>"`` (e.g. ``"412:100"``); the code must be one gateway/providers/softswiss/README.md lists, and an
  error body must carry ``message``. Amounts and ``balance`` are integers in the currency's
  subunits = minor units ("Amounts"); a ``balance`` that is not an integer is a failure.

The ``expect`` table is written from gateway/providers/softswiss/README.md, not from the
adapter's ``statuses.py``: "Protocol facts" names two statuses (insufficient funds: 412 /
100; a bad signature: 403), its "Certification" section the others, case by case, from the
production BGaming wallet (S1) and the casino's SoftSwiss acceptance test (S3) it quotes;
each row names its case.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from typing import Any, Final

import httpx

from tests.conformance.driver import Answer, Seat

PREFIX: Final = "/providers/softswiss"
HEADER: Final = "X-REQUEST-SIGN"
#: The casino's auth token in the sandbox ([integrations.softswiss] auth_token).
AUTH_TOKEN: Final = b"softswiss-demo-auth-token"
#: A key that is not the casino's: what ``bet_bad_signature`` signs with.
OTHER_KEY: Final = b"not-the-casino-auth-token"

#: gateway/providers/softswiss/README.md "Errors": every code an error body may carry.
CODES: Final = frozenset({100, 101, 105, 106, 107, 110, 153, 154, 155, 400, 403, 404, 405, 406,
                          500, 502, 503, 504, *range(600, 621), 700})


def sign(body: bytes, key: bytes = AUTH_TOKEN) -> str:
    """``X-REQUEST-SIGN``: hex HMAC-SHA256 of the raw body (gateway/providers/softswiss/README.md)."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _round_trip_id() -> str:
    return f"ss-{uuid.uuid4().hex[:16]}"


class SoftSwissDriver:
    """SoftSwiss's side of the wire (see the module docstring)."""

    name = "softswiss"
    #: gateway/providers/softswiss/README.md: a ``win`` action names only the round (``game_id``), never a bet.
    wins_reference_bets = False
    #: "Certification", case 14: a win in a round with no bet is refused (404 / 404), not paid.
    accepts_orphan_wins = False
    #: "Certification", case 16: a rollback naming a win takes the win back (200).
    reverses_wins = True
    expect: Mapping[str, frozenset[str]] = {
        "ok": frozenset({"200"}),
        # "A repeated action_id returns the stored result with HTTP 200."
        "bet_replay": frozenset({"200"}),
        # Common ground: the same id with other content is a duplicate error. SoftSwiss has no
        # duplicate code; of the listed ones only 400 (bad request) is final, not a success
        # and not about the player (case 9).
        "duplicate": frozenset({"400:400"}),
        # "insufficient funds is HTTP 412 with {code: 100, message, balance}" (case 5).
        "insufficient_funds": frozenset({"412:100"}),
        # Case 14: a win for a round with no bet -> HTTP 404, code 404 ("Bet transaction
        # record not found"), nothing credited.
        "win_unknown_bet": frozenset({"404:404"}),
        # Case 15: a win after the round's bet was rolled back -> HTTP 403, code 403 ("Bet
        # has been refunded"), nothing credited.
        "win_after_rollback": frozenset({"403:403"}),
        # Common ground: refused with the "already settled / rolled back" status; SoftSwiss
        # has none, so the final bad-request code (case 17: kept).
        "rollback_after_win": frozenset({"400:400"}),
        # "a later bet with that action id is then not debited": refused, final (400; case 12:
        # kept).
        "bet_after_rollback": frozenset({"400:400"}),
        # The session vouches for the player's account; an expired one makes the player
        # invalid for betting: 101 "Player is invalid", on HTTP 400 (case 24).
        "bet_token_expired": frozenset({"400:101"}),
        # A blocked / self-excluded player is a disabled player: 110 on HTTP 403 (case 25).
        "bet_blocked": frozenset({"403:110"}),
        # A currency the player (or the session) does not have: 154 "Currency is not allowed
        # for the player", on HTTP 400 (case 23).
        "wrong_currency": frozenset({"400:154"}),
        # "a bad signature is 403" (case 1).
        "bad_signature": frozenset({"403:403"}),
        # "Rollback of an unknown original_action_id stores a zero-effect tombstone and
        # answers 200" (case 11).
        "rollback_unknown": frozenset({"200"}),
        # Case 16: a rollback of a win -> 200, the win amount taken back (even into a debt).
        "rollback_of_win": frozenset({"200"}),
    }

    # ---- transport -----------------------------------------------------------------------

    async def send(self, client: httpx.AsyncClient, endpoint: str, payload: dict[str, Any], *,
                   key: bytes = AUTH_TOKEN) -> Answer:
        """Sign ``payload`` with ``key``, POST it, check the envelope, decode the answer."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        response = await client.post(PREFIX + endpoint, content=body, headers={
            "Content-Type": "application/json", HEADER: sign(body, key)})
        assert response.headers.get("content-type", "").startswith("application/json"), (
            endpoint, response.status_code, response.headers, response.content[:300])
        answer = response.json()
        assert isinstance(answer, dict), answer
        if response.status_code == 200:
            status = "200"
            assert "code" not in answer, f"{endpoint}: a 200 answer with a code: {answer}"
        else:
            code = answer.get("code")
            assert isinstance(code, int) and code in CODES, (
                f"{endpoint}: HTTP {response.status_code}, code {code!r} is not a SoftSwiss code: {answer}")
            assert isinstance(answer.get("message"), str), answer
            status = f"{response.status_code}:{code}"
        balance = answer.get("balance")
        if balance is not None:
            assert type(balance) is int, f"balance {balance!r} is not integer subunits"
        return Answer(status=status, http_status=response.status_code, balance_minor=balance,
                      body=answer)

    # ---- the contract ----------------------------------------------------------------------

    async def open(self, client: httpx.AsyncClient, seat: Seat) -> Seat:
        """SoftSwiss makes no wallet call at game launch; the seat is used as it is."""
        return seat

    def _play(self, seat: Seat, round_id: str, actions: list[dict[str, Any]], *,
              finished: bool = False, currency: str | None = None) -> dict[str, Any]:
        return {"user_id": seat.player_id, "currency": currency or seat.currency,
                "game": seat.game_id, "game_id": round_id, "finished": finished,
                "actions": actions, "session_id": seat.token}

    async def balance(self, client: httpx.AsyncClient, seat: Seat) -> Answer:
        return await self.send(client, "/play", self._play(seat, _round_trip_id(), []))

    async def bet(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str, round_id: str,
                  amount_minor: int, currency: str | None = None) -> Answer:
        return await self.send(client, "/play", self._play(
            seat, round_id, [{"action": "bet", "amount": amount_minor, "action_id": txn_id}],
            currency=currency))

    async def win(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str, round_id: str,
                  amount_minor: int, bet_txn_id: str, round_closed: bool = False) -> Answer:
        # A win names no bet (gateway/providers/softswiss/README.md): ``bet_txn_id`` is not sent.
        return await self.send(client, "/play", self._play(
            seat, round_id, [{"action": "win", "amount": amount_minor, "action_id": txn_id}],
            finished=round_closed))

    async def rollback(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str,
                       bet_txn_id: str, round_id: str, amount_minor: int) -> Answer:
        # A rollback carries no amount (gateway/providers/softswiss/README.md "/rollback").
        return await self.send(client, "/rollback", {
            "user_id": seat.player_id, "currency": seat.currency, "game": seat.game_id,
            "game_id": round_id,
            "actions": [{"action": "rollback", "action_id": txn_id, "original_action_id": bet_txn_id}],
        })

    async def rollback_win(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str,
                           win_txn_id: str, round_id: str, amount_minor: int) -> Answer:
        # The same request as a bet's rollback: ``original_action_id`` names the win
        # (gateway/providers/softswiss/README.md "Certification", case 16).
        return await self.rollback(client, seat, txn_id=txn_id, bet_txn_id=win_txn_id,
                                   round_id=round_id, amount_minor=amount_minor)

    async def bet_bad_signature(self, client: httpx.AsyncClient, seat: Seat, *, txn_id: str,
                                round_id: str, amount_minor: int) -> Answer:
        """The same bet, signed with a key that is not the casino's auth token."""
        return await self.send(client, "/play", self._play(
            seat, round_id, [{"action": "bet", "amount": amount_minor, "action_id": txn_id}]),
            key=OTHER_KEY)


DRIVER: Final = SoftSwissDriver()
