"""Weekend-peak load test: slot players on Hub88 plus operator traffic on the generic API.

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8080

Each simulated player is created and funded through the generic API, opens a Hub88 game
session, then spins: a signed ``/transaction/bet``, then either a ``/transaction/win``
(96% return to player; a zero win is still sent with round_closed=true) or, for ~1% of bets,
a ``/transaction/rollback``. ~2% of Hub88 requests are sent a second time with the same body
(a provider retrying after a timeout): the answer must be RS_OK with the same balance.
Every user owns its player, so it knows the exact balance to expect after each answer; any
difference is a locust failure. The run follows ``WeekendPeakShape`` and ends by itself.

Environment: GATEWAY_API_KEY (demo-key-change-me), LOCUST_CURRENCY (EUR), LOCUST_WAIT_MIN_S /
LOCUST_WAIT_MAX_S (think time between actions, 0.5 / 2.0), LOCUST_RETRY_P (0.02),
LOCUST_ROLLBACK_P (0.01), LOCUST_ORPHAN_ROLLBACK_P (0.002: rollback of a bet the wallet never
saw), HUB88_REQUIRE_RESPONSE_SIGNATURE (0: verify the answer's signature when present; 1: also
fail when absent), plus the shape variables in traffic_shape.py.
"""

from __future__ import annotations

import itertools
import os
import random
import secrets
from typing import Any

import orjson
from locust import FastHttpUser, LoadTestShape, between, task

import hub88_client as hub88
from slot_math import STAKES_MINOR, draw_win_minor
from traffic_shape import ShapeConfig

API_KEY = os.environ.get("GATEWAY_API_KEY", "demo-key-change-me")
CURRENCY = os.environ.get("LOCUST_CURRENCY", "EUR")
GAME_CODE = os.environ.get("LOCUST_GAME_CODE", "hub88-demo-slot")
WAIT_MIN_S = float(os.environ.get("LOCUST_WAIT_MIN_S", "0.5"))
WAIT_MAX_S = float(os.environ.get("LOCUST_WAIT_MAX_S", "2.0"))
RETRY_P = float(os.environ.get("LOCUST_RETRY_P", "0.02"))
ROLLBACK_P = float(os.environ.get("LOCUST_ROLLBACK_P", "0.01"))
ORPHAN_ROLLBACK_P = float(os.environ.get("LOCUST_ORPHAN_ROLLBACK_P", "0.002"))
REQUIRE_RESPONSE_SIGNATURE = os.environ.get("HUB88_REQUIRE_RESPONSE_SIGNATURE", "0") == "1"
INITIAL_DEPOSIT_MINOR = 50_000  # 500.00
TOP_UP_MINOR = (1_000, 2_000, 5_000)

_RUN = secrets.token_hex(3)
_player_seq = itertools.count(1)
_AUTH = {"Authorization": f"Bearer {API_KEY}"}


class SlotPlayer(FastHttpUser):
    """One player on one Hub88 slot; also the operator's calls about this player."""

    wait_time = between(WAIT_MIN_S, WAIT_MAX_S)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.player_id = f"lt-{_RUN}-{next(_player_seq)}"
        self.cash_minor: int | None = None  # what the wallet must say; None = unknown
        self.token: str | None = None
        self.ready = (
            self._generic("/v1/players", {"player_id": self.player_id, "currencies": [CURRENCY],
                                          "country": "MT"}, name="POST /v1/players") is not None
            and self._deposit(INITIAL_DEPOSIT_MINOR, expect_from=0)
            and self._open_session()
        )

    # ---------------------------------------------------------------- tasks
    @task(20)
    def spin(self) -> None:
        if not self.ready or self.cash_minor is None:
            return
        if self.rng.random() < ORPHAN_ROLLBACK_P:
            self.orphan_rollback()
        stake = self.rng.choice(STAKES_MINOR)
        if self.cash_minor < stake and not self._deposit(self.rng.choice(TOP_UP_MINOR)):
            return
        round_id, bet_tx = hub88.new_id(), hub88.new_id()
        body = hub88.bet_body(token=self._token(), user=self.player_id, currency=CURRENCY,
                              game_code=GAME_CODE, round_id=round_id, transaction_uuid=bet_tx,
                              amount=hub88.minor_to_hub88(stake, CURRENCY))
        if not self._hub88_money("/transaction/bet", body, "hub88 bet", -stake):
            return
        if self.rng.random() < ROLLBACK_P:
            body = hub88.rollback_body(token=self._token(), user=self.player_id,
                                       game_code=GAME_CODE, round_id=round_id,
                                       transaction_uuid=hub88.new_id(),
                                       reference_transaction_uuid=bet_tx)
            self._hub88_money("/transaction/rollback", body, "hub88 rollback", stake)
            return
        win = draw_win_minor(self.rng, stake)
        body = hub88.win_body(token=self._token(), user=self.player_id, currency=CURRENCY,
                              game_code=GAME_CODE, round_id=round_id,
                              transaction_uuid=hub88.new_id(), reference_transaction_uuid=bet_tx,
                              amount=hub88.minor_to_hub88(win, CURRENCY), round_closed=True)
        self._hub88_money("/transaction/win", body, "hub88 win", win)

    def orphan_rollback(self) -> None:
        """Rollback of a bet that never reached the wallet: RS_OK, balance unchanged."""
        body = hub88.rollback_body(token=self._token(), user=self.player_id, game_code=GAME_CODE,
                                   round_id=hub88.new_id(), transaction_uuid=hub88.new_id(),
                                   reference_transaction_uuid=hub88.new_id())
        self._hub88_money("/transaction/rollback", body, "hub88 rollback (unknown bet)", 0)

    @task(2)
    def hub88_balance(self) -> None:
        if not self.ready:
            return
        body = hub88.balance_body(token=self._token(), user=self.player_id, game_code=GAME_CODE)
        self._hub88("/user/balance", body, "hub88 balance", self.cash_minor)

    @task(2)
    def operator_balance(self) -> None:
        if not self.ready:
            return
        with self.client.get(f"/v1/players/{self.player_id}/balance", headers=_AUTH,
                             name="GET /v1/players/{id}/balance", catch_response=True) as resp:
            doc = _json(resp)
            if resp.status_code != 200 or doc is None:
                resp.failure(f"HTTP {resp.status_code}: {_snippet(resp)}")
                return
            cash = next((b.get("cash_minor") for b in doc.get("balances", [])
                         if b.get("currency") == CURRENCY), None)
            if self.cash_minor is not None and cash != self.cash_minor:
                resp.failure(f"balance {cash}, expected {self.cash_minor}")
                self.cash_minor = cash if isinstance(cash, int) else None

    @task(1)
    def operator_deposit(self) -> None:
        if self.ready:
            self._deposit(self.rng.choice(TOP_UP_MINOR))

    # ---------------------------------------------------------------- generic API
    def _generic(self, path: str, doc: dict[str, Any], *, name: str) -> dict[str, Any] | None:
        # FastHttpSession sends bytes as they are (its annotation says str | dict)
        with self.client.post(path, data=orjson.dumps(doc),  # type: ignore[arg-type]
                              name=name, catch_response=True,
                              headers={**_AUTH, "Content-Type": "application/json"}) as resp:
            out = _json(resp)
            if not 200 <= resp.status_code < 300 or out is None:
                resp.failure(f"HTTP {resp.status_code}: {_snippet(resp)}")
                return None
            return out

    def _deposit(self, amount_minor: int, expect_from: int | None = None) -> bool:
        before = self.cash_minor if expect_from is None else expect_from
        doc = self._generic("/v1/wallet/deposit", {
            "transaction_id": f"dep-{hub88.new_id()}", "player_id": self.player_id,
            "currency": CURRENCY, "amount_minor": amount_minor}, name="POST /v1/wallet/deposit")
        if doc is None:
            self.cash_minor = None
            return False
        self.cash_minor = doc.get("cash_minor")
        if before is not None and self.cash_minor != before + amount_minor:
            _fail("POST /v1/wallet/deposit balance",
                  f"cash {self.cash_minor}, expected {before + amount_minor}")
        return isinstance(self.cash_minor, int)

    def _open_session(self) -> bool:
        doc = self._generic("/v1/sessions", {"player_id": self.player_id, "currency": CURRENCY,
                                             "provider": "hub88", "game_id": GAME_CODE},
                            name="POST /v1/sessions")
        self.token = doc.get("token") if doc else None
        return bool(self.token)

    def _token(self) -> str:
        assert self.token is not None
        return self.token

    # ---------------------------------------------------------------- Hub88
    def _hub88_money(self, path: str, body: bytes, name: str, delta_minor: int) -> bool:
        """A money call: expect RS_OK and balance + delta; maybe replay it as a retry."""
        expected = None if self.cash_minor is None else self.cash_minor + delta_minor
        doc = self._hub88(path, body, name, expected)
        if doc is None:
            self.cash_minor = None  # outcome unknown: resynchronise from the next answer
            return False
        if self.rng.random() < RETRY_P:
            # the provider timed out and sends the very same request again
            self._hub88(path, body, name + " (retry)", expected)
        return True

    def _hub88(self, path: str, body: bytes, name: str,
               expected_minor: int | None) -> dict[str, Any] | None:
        headers = {"X-Hub88-Signature": hub88.sign(body), "Content-Type": "application/json"}
        # the exact signed bytes go on the wire (FastHttpSession accepts bytes)
        with self.client.post("/providers/hub88" + path, data=body,  # type: ignore[arg-type]
                              headers=headers, name=name, catch_response=True) as resp:
            doc = _json(resp)
            if resp.status_code != 200 or doc is None:
                resp.failure(f"HTTP {resp.status_code}: {_snippet(resp)}")
                return None
            sig = resp.headers.get("X-Hub88-Signature")
            if sig is None and REQUIRE_RESPONSE_SIGNATURE:
                resp.failure("answer not signed")
                return None
            if sig is not None and not hub88.verify(resp.content or b"", sig):
                resp.failure("answer signature does not verify")
                return None
            if doc.get("status") != "RS_OK":
                resp.failure(f"status {doc.get('status')}")
                return None
            if doc.get("request_uuid") != orjson.loads(body)["request_uuid"]:
                resp.failure("request_uuid not echoed")
            balance = doc.get("balance")
            if expected_minor is not None:
                want = hub88.minor_to_hub88(expected_minor, CURRENCY)
                if balance != want:
                    resp.failure(f"balance {balance}, expected {want}")
            if isinstance(balance, int):
                self.cash_minor = balance // hub88.minor_to_hub88(1, CURRENCY)
            return doc


def _json(resp: Any) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(resp.content or b"")
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _snippet(resp: Any) -> str:
    return (resp.content or b"")[:200].decode(errors="replace")


def _fail(name: str, message: str) -> None:
    """Report a failed check that is not tied to one response."""
    from locust import events

    events.request.fire(request_type="CHECK", name=name, response_time=0, response_length=0,
                        exception=AssertionError(message), context={})


class WeekendPeakShape(LoadTestShape):
    """Base load, ramp to the weekend peak, hold, ramp down, stop (see traffic_shape.py)."""

    config = ShapeConfig.from_env()

    def tick(self) -> tuple[int, float] | None:
        users = self.config.users_at(self.get_run_time())
        return None if users is None else (users, self.config.spawn_rate())
