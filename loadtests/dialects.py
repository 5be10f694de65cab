"""How a slot player's actions are said in each provider's wallet protocol (for locust).

A ``Dialect`` turns "bet this stake", "pay this win", "roll back that bet" and "what is my
balance" into the exact bytes one provider sends (signed as it signs: "Protocol facts" in
gateway/providers/<name>/README.md) and reads its answer back as (success, balance in minor units). The locust
player keeps the expected balance and checks every answer against it; a retry is the same
bytes sent again.

Sandbox credentials are config/sandbox.toml's. Currency EUR (2 decimals) is assumed by the
decimal formatting of Evolution and Pragmatic.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlencode

import hub88_client as hub88
import msgspec
import orjson

EVOLUTION_AUTH_TOKEN = "evolution-demo-auth-token"
PRAGMATIC_SECRET = "pragmatic-demo-secret"
PRAGMATIC_PROVIDER_ID = "PragmaticPlay"
SOFTSWISS_AUTH_TOKEN = b"softswiss-demo-auth-token"
REQUIRE_HUB88_RESPONSE_SIGNATURE = os.environ.get("HUB88_REQUIRE_RESPONSE_SIGNATURE", "0") == "1"
_DECIMAL_NUMBERS = msgspec.json.Encoder(decimal_format="number")  # Evolution sends 12.5, not "12.5"


@dataclass(frozen=True)
class Call:
    """One request: path under the gateway, body bytes, headers, and the locust name."""

    path: str
    body: bytes
    headers: dict[str, str]
    name: str


@dataclass
class Answer:
    ok: bool
    balance_minor: int | None
    detail: str


def new_id() -> str:
    return uuid.uuid4().hex


def _major(minor: int) -> str:
    """EUR minor units -> "12.34", exact."""
    return f"{minor // 100}.{minor % 100:02d}"


def _minor(major: Any) -> int | None:
    """A decimal number or string in EUR major units -> minor units; None if absent/odd."""
    if major is None or isinstance(major, bool):
        return None
    value = Decimal(str(major)) * 100
    return int(value) if value == value.to_integral_value() else None


class Dialect(Protocol):
    provider: str

    def bet(self, player: str, token: str, round_id: str, tx: str, stake_minor: int) -> Call: ...

    def win(self, player: str, token: str, round_id: str, tx: str, bet_tx: str,
            win_minor: int) -> Call: ...

    def rollback(self, player: str, token: str, round_id: str, tx: str, bet_tx: str,
                 stake_minor: int) -> Call: ...

    def balance(self, player: str, token: str) -> Call: ...

    def end_round(self, player: str, token: str, round_id: str) -> Call | None:
        """The call that closes a round after its win, for protocols that have one."""

    def read(self, call: Call, status: int, headers: Any, content: bytes) -> Answer: ...


class Hub88:
    """Hub88: JSON, RSA-signed both ways, amounts x 100000 (hub88_client.py)."""

    provider = "hub88"
    game = "hub88-demo-slot"

    def _call(self, path: str, body: bytes, name: str) -> Call:
        return Call("/providers/hub88" + path, body,
                    {"X-Hub88-Signature": hub88.sign(body), "Content-Type": "application/json"}, name)

    def bet(self, player, token, round_id, tx, stake_minor):
        return self._call("/transaction/bet", hub88.bet_body(
            token=token, user=player, currency="EUR", game_code=self.game, round_id=round_id,
            transaction_uuid=tx, amount=hub88.minor_to_hub88(stake_minor, "EUR")), "hub88 bet")

    def win(self, player, token, round_id, tx, bet_tx, win_minor):
        return self._call("/transaction/win", hub88.win_body(
            token=token, user=player, currency="EUR", game_code=self.game, round_id=round_id,
            transaction_uuid=tx, reference_transaction_uuid=bet_tx,
            amount=hub88.minor_to_hub88(win_minor, "EUR"), round_closed=True), "hub88 win")

    def rollback(self, player, token, round_id, tx, bet_tx, stake_minor):
        return self._call("/transaction/rollback", hub88.rollback_body(
            token=token, user=player, game_code=self.game, round_id=round_id, transaction_uuid=tx,
            reference_transaction_uuid=bet_tx), "hub88 rollback")

    def end_round(self, player, token, round_id):
        return None  # the win carries round_closed

    def balance(self, player, token):
        return self._call("/user/balance", hub88.balance_body(token=token, user=player, game_code=self.game),
                          "hub88 balance")

    def read(self, call, status, headers, content):
        doc = _doc(content)
        if status != 200 or doc is None:
            return Answer(False, None, f"HTTP {status}")
        sig = headers.get("X-Hub88-Signature")
        if sig is None and REQUIRE_HUB88_RESPONSE_SIGNATURE:
            return Answer(False, None, "answer not signed")
        if sig is not None and not hub88.verify(content, sig):
            return Answer(False, None, "answer signature does not verify")
        balance = doc.get("balance")
        minor = balance // hub88.minor_to_hub88(1, "EUR") if isinstance(balance, int) else None
        return Answer(doc.get("status") == "RS_OK", minor, f"status {doc.get('status')}")


class Evolution:
    """Evolution One Wallet: JSON, ``authToken`` query parameter, decimal major units."""

    provider = "evolution"
    table = "evo-lightning-roulette"

    def _call(self, path: str, doc: dict, name: str) -> Call:
        return Call(f"/providers/evolution{path}?authToken={EVOLUTION_AUTH_TOKEN}", _DECIMAL_NUMBERS.encode(doc),
                    {"Content-Type": "application/json"}, name)

    def _doc(self, player, token, round_id, tx, ref, minor) -> dict:
        return {"sid": token, "userId": player, "currency": "EUR", "uuid": new_id(),
                "game": {"id": round_id, "type": "roulette", "details": {"table": {"id": self.table, "vid": None}}},
                "transaction": {"id": tx, "refId": ref, "amount": Decimal(_major(minor))}}

    def bet(self, player, token, round_id, tx, stake_minor):
        return self._call("/debit", self._doc(player, token, round_id, tx, tx, stake_minor), "evolution debit")

    def win(self, player, token, round_id, tx, bet_tx, win_minor):
        return self._call("/credit", self._doc(player, token, round_id, tx, bet_tx, win_minor), "evolution credit")

    def rollback(self, player, token, round_id, tx, bet_tx, stake_minor):
        return self._call("/cancel", self._doc(player, token, round_id, tx, bet_tx, stake_minor), "evolution cancel")

    def end_round(self, player, token, round_id):
        return None  # Evolution settles a bet with its credit

    def balance(self, player, token):
        return self._call("/balance", {"sid": token, "userId": player, "currency": "EUR", "uuid": new_id()},
                          "evolution balance")

    def read(self, call, status, headers, content):
        doc = _doc(content)
        if status != 200 or doc is None:
            return Answer(False, None, f"HTTP {status}")
        cash, bonus = _minor(doc.get("balance")), _minor(doc.get("bonus"))
        ok = doc.get("status") == "OK" or (
            # Evolution's answer to a cancel of a bet it never sent (licensee test list)
            "(unknown bet)" in call.name and doc.get("status") == "BET_DOES_NOT_EXIST")
        return Answer(ok, cash, f"status {doc.get('status')} (bonus {bonus})")


class Pragmatic:
    """Pragmatic Play: form-encoded, md5 ``hash`` over sorted parameters + secret."""

    provider = "pragmatic"
    game = "vs20olympgate"

    def _call(self, path: str, params: dict[str, str], name: str) -> Call:
        params = {k: v for k, v in params.items() if v is not None}
        text = "&".join(f"{k}={params[k]}" for k in sorted(params)) + PRAGMATIC_SECRET
        params["hash"] = hashlib.md5(text.encode()).hexdigest()
        return Call(f"/providers/pragmatic{path}", urlencode(params).encode(),
                    {"Content-Type": "application/x-www-form-urlencoded"}, name)

    def _money(self, player, token, round_id, reference, minor) -> dict[str, str]:
        return {"providerId": PRAGMATIC_PROVIDER_ID, "userId": player, "token": token,
                "gameId": self.game, "roundId": round_id, "amount": _major(minor),
                "reference": reference, "timestamp": str(time.time_ns() // 1_000_000),
                "roundDetails": "spin"}

    def bet(self, player, token, round_id, tx, stake_minor):
        return self._call("/bet.html", self._money(player, token, round_id, tx, stake_minor), "pragmatic bet")

    def win(self, player, token, round_id, tx, bet_tx, win_minor):
        return self._call("/result.html", self._money(player, token, round_id, tx, win_minor), "pragmatic result")

    def rollback(self, player, token, round_id, tx, bet_tx, stake_minor):
        params = {"providerId": PRAGMATIC_PROVIDER_ID, "userId": player, "reference": bet_tx,
                  "roundId": round_id, "gameId": self.game, "timestamp": str(time.time_ns() // 1_000_000)}
        return self._call("/refund.html", params, "pragmatic refund")

    def end_round(self, player, token, round_id):
        params = {"providerId": PRAGMATIC_PROVIDER_ID, "userId": player, "gameId": self.game,
                  "roundId": round_id, "timestamp": str(time.time_ns() // 1_000_000)}
        return self._call("/endRound.html", params, "pragmatic endRound")

    def balance(self, player, token):
        return self._call("/balance.html", {"providerId": PRAGMATIC_PROVIDER_ID, "userId": player,
                                            "token": token}, "pragmatic balance")

    def read(self, call, status, headers, content):
        doc = _doc(content)
        if status != 200 or doc is None:
            return Answer(False, None, f"HTTP {status}")
        cash = _minor(doc.get("cash"))
        return Answer(doc.get("error") == 0, cash, f"error {doc.get('error')} {doc.get('description')}")


class SoftSwiss:
    """SoftSwiss /play and /rollback: JSON, HMAC-SHA256 ``X-REQUEST-SIGN``, subunits."""

    provider = "softswiss"
    game = "bgaming:ElvisFrogInVegas"

    def _call(self, path: str, doc: dict, name: str) -> Call:
        body = orjson.dumps(doc)
        sign = hmac.new(SOFTSWISS_AUTH_TOKEN, body, hashlib.sha256).hexdigest()
        return Call(f"/providers/softswiss{path}", body,
                    {"X-REQUEST-SIGN": sign, "Content-Type": "application/json"}, name)

    def _play(self, player, round_id, actions, finished, name):
        return self._call("/play", {"user_id": player, "currency": "EUR", "game": self.game,
                                    "game_id": round_id, "finished": finished, "actions": actions}, name)

    def bet(self, player, token, round_id, tx, stake_minor):
        return self._play(player, round_id, [{"action": "bet", "amount": stake_minor, "action_id": tx}],
                          False, "softswiss play bet")

    def win(self, player, token, round_id, tx, bet_tx, win_minor):
        return self._play(player, round_id, [{"action": "win", "amount": win_minor, "action_id": tx}],
                          True, "softswiss play win")

    def rollback(self, player, token, round_id, tx, bet_tx, stake_minor):
        return self._call("/rollback", {"user_id": player, "currency": "EUR", "game": self.game,
                                        "game_id": round_id, "finished": True,
                                        "actions": [{"action": "rollback", "action_id": tx,
                                                     "original_action_id": bet_tx}]}, "softswiss rollback")

    def end_round(self, player, token, round_id):
        return None  # the win carries finished: true

    def balance(self, player, token):
        return self._play(player, new_id(), [], False, "softswiss play balance")

    def read(self, call, status, headers, content):
        doc = _doc(content)
        if doc is None:
            return Answer(False, None, f"HTTP {status}")
        balance = doc.get("balance")
        return Answer(status == 200, balance if isinstance(balance, int) else None,
                      f"HTTP {status} code {doc.get('code')}")


def _doc(content: bytes | None) -> dict | None:
    try:
        doc = orjson.loads(content or b"")
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


DIALECTS: dict[str, Dialect] = {d.provider: d for d in (Hub88(), Evolution(), Pragmatic(), SoftSwiss())}
