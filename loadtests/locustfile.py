"""Weekend-peak load test: slot and live-casino players across four providers, plus operator
traffic on the generic API.

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8080

Each simulated player is created and funded through the generic API, sits down at a game of
one provider (drawn by ``LOCUST_PROVIDER_MIX``, default a weekend lobby: Pragmatic Play 35%,
Hub88 25%, Evolution 25%, SoftSwiss 15%), opens a game session for it, then plays rounds in
that provider's own protocol (``dialects.py``): a bet, then either the win of the round (96%
return to player; a zero win is still sent and closes the round) or, for ~1% of bets, a
rollback. ~2% of money calls are sent a second time with the same bytes (a provider retrying
after a timeout): the answer must be a success with the same balance. Every user owns its
player, so it knows the exact balance to expect after each answer; any difference is a locust
failure. The run follows ``WeekendPeakShape`` and ends by itself.

Sportsbook traffic rides along: one ``Trader`` keeps pre-match markets open and settles one
at full time every few seconds (now and then correcting a result, which re-settles), and
``Bettor`` users (``LOCUST_SPORTSBOOK_WEIGHT``, against the slot players' weight 10) place
singles and four-leg accumulators in bursts.

Cashier traffic too (docs/PAYMENTS.md): ``Cashier`` users (``LOCUST_CASHIER_WEIGHT``) open
deposit intents that signed Adyen or Stripe webhooks confirm (some redelivered), request
withdrawals that the operator declines or the player cancels, and hit their own daily deposit
limit now and then.

Environment: GATEWAY_API_KEY (demo-key-change-me), LOCUST_PROVIDER_MIX
("pragmatic:35,hub88:25,evolution:25,softswiss:15"), LOCUST_WAIT_MIN_S / LOCUST_WAIT_MAX_S
(think time between actions, 0.5 / 2.0), LOCUST_RETRY_P (0.02), LOCUST_ROLLBACK_P (0.01),
LOCUST_ORPHAN_ROLLBACK_P (0.002: rollback of a bet the wallet never saw), plus the shape
variables in traffic_shape.py.
"""

from __future__ import annotations

import itertools
import os
import random
import secrets
import time
from typing import Any

import orjson
from curve import Curve
from dialects import DIALECTS, Call, new_id
from locust import FastHttpUser, LoadTestShape, between, events, task
from slot_math import STAKES_MINOR, draw_win_minor
from traffic_shape import ShapeConfig

#: A weekend day's curve (loadtests/curve.py), when ``LOCUST_CURVE_FILE`` names one: it then
#: drives the user count, the bettors' kick-off bursts and the trader's settlement storms.
CURVE = (Curve.load(os.environ["LOCUST_CURVE_FILE"],
                    float(os.environ["LOCUST_CURVE_SECONDS"]) if os.environ.get("LOCUST_CURVE_SECONDS") else None)
         if os.environ.get("LOCUST_CURVE_FILE") else None)
_run_started = time.monotonic()


@events.test_start.add_listener
def _on_test_start(**_kwargs: Any) -> None:
    """Run second 0 of the curve (every worker process hears it when its spawning starts)."""
    global _run_started
    _run_started = time.monotonic()


def run_seconds() -> float:
    return time.monotonic() - _run_started

API_KEY = os.environ.get("GATEWAY_API_KEY", "demo-key-change-me")
CURRENCY = "EUR"  # dialects.py formats decimals for a 2-decimal currency
WAIT_MIN_S = float(os.environ.get("LOCUST_WAIT_MIN_S", "0.5"))
WAIT_MAX_S = float(os.environ.get("LOCUST_WAIT_MAX_S", "2.0"))
RETRY_P = float(os.environ.get("LOCUST_RETRY_P", "0.02"))
ROLLBACK_P = float(os.environ.get("LOCUST_ROLLBACK_P", "0.01"))
ORPHAN_ROLLBACK_P = float(os.environ.get("LOCUST_ORPHAN_ROLLBACK_P", "0.002"))
INITIAL_DEPOSIT_MINOR = 50_000  # 500.00
TOP_UP_MINOR = (1_000, 2_000, 5_000)


def _provider_mix(text: str) -> tuple[list[str], list[int]]:
    names, weights = [], []
    for part in text.split(","):
        name, _, weight = part.strip().partition(":")
        if name not in DIALECTS:
            raise SystemExit(f"LOCUST_PROVIDER_MIX: unknown provider {name!r} (known: {', '.join(DIALECTS)})")
        names.append(name)
        weights.append(int(weight or 1))
    return names, weights


PROVIDERS, PROVIDER_WEIGHTS = _provider_mix(
    os.environ.get("LOCUST_PROVIDER_MIX", "pragmatic:35,hub88:25,evolution:25,softswiss:15"))

_RUN = secrets.token_hex(3)


def _run_id() -> str:
    """This run's id in ids the users make: the token and the pid, since ``--processes``
    forks the workers after this module was imported (they share ``_RUN`` and the
    counters, and would otherwise make the same players)."""
    return f"{_RUN}{os.getpid():x}"
_player_seq = itertools.count(1)
_AUTH = {"Authorization": f"Bearer {API_KEY}"}


class SlotPlayer(FastHttpUser):
    """One player at one provider's game; also the operator's calls about this player."""

    weight = 10
    wait_time = between(WAIT_MIN_S, WAIT_MAX_S)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.player_id = f"lt-{_run_id()}-{next(_player_seq)}"
        self.dialect = DIALECTS[self.rng.choices(PROVIDERS, PROVIDER_WEIGHTS)[0]]
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
        d, token = self.dialect, self._token()
        round_id, bet_tx = new_id(), new_id()
        if not self._money(d.bet(self.player_id, token, round_id, bet_tx, stake), -stake):
            return
        if self.rng.random() < ROLLBACK_P:
            self._money(d.rollback(self.player_id, token, round_id, new_id(), bet_tx, stake), stake)
            return
        win = draw_win_minor(self.rng, stake)
        if self._money(d.win(self.player_id, token, round_id, new_id(), bet_tx, win), win):
            closing = d.end_round(self.player_id, token, round_id)
            if closing is not None:
                self._money(closing, 0)

    def orphan_rollback(self) -> None:
        """Rollback of a bet that never reached the wallet: success, balance unchanged."""
        call = self.dialect.rollback(self.player_id, self._token(), new_id(), new_id(), new_id(), 100)
        self._money(Call(call.path, call.body, call.headers, call.name + " (unknown bet)"), 0)

    @task(2)
    def provider_balance(self) -> None:
        if self.ready:
            self._send(self.dialect.balance(self.player_id, self._token()), self.cash_minor)

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
            "transaction_id": f"dep-{new_id()}", "player_id": self.player_id,
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
                                             "provider": self.dialect.provider, "game_id": "lobby-game"},
                            name="POST /v1/sessions")
        self.token = doc.get("token") if doc else None
        return bool(self.token)

    def _token(self) -> str:
        assert self.token is not None
        return self.token

    # ---------------------------------------------------------------- providers
    def _money(self, call: Call, delta_minor: int) -> bool:
        """A money call: expect success and balance + delta; maybe replay it as a retry."""
        expected = None if self.cash_minor is None else self.cash_minor + delta_minor
        if not self._send(call, expected):
            self.cash_minor = None  # outcome unknown: resynchronise from the next answer
            return False
        if self.rng.random() < RETRY_P:
            # the provider timed out and sends the very same request again
            self._send(Call(call.path, call.body, call.headers, call.name + " (retry)"), expected)
        return True

    def _send(self, call: Call, expected_minor: int | None) -> bool:
        # the exact (signed) bytes go on the wire (FastHttpSession accepts bytes)
        with self.client.post(call.path, data=call.body,  # type: ignore[arg-type]
                              headers=call.headers, name=call.name, catch_response=True) as resp:
            answer = self.dialect.read(call, resp.status_code, resp.headers, resp.content or b"")
            if not answer.ok:
                resp.failure(f"{answer.detail}: {_snippet(resp)}")
                return False
            if expected_minor is not None and answer.balance_minor != expected_minor:
                resp.failure(f"balance {answer.balance_minor}, expected {expected_minor}")
            if answer.balance_minor is not None:
                self.cash_minor = answer.balance_minor
            return True


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


# ---- sportsbook (docs/SPORTSBOOK.md) ---------------------------------------------------------

TRADING_KEY = os.environ.get("GATEWAY_TRADING_KEY", "demo-trading-key-change-me")
SPORTSBOOK_WEIGHT = int(os.environ.get("LOCUST_SPORTSBOOK_WEIGHT", "2"))  # bettors per 10 slot players (about)
MARKETS_OPEN = int(os.environ.get("LOCUST_MARKETS_OPEN", "20"))
CORRECTION_P = float(os.environ.get("LOCUST_CORRECTION_P", "0.05"))
CASHOUT_P = float(os.environ.get("LOCUST_CASHOUT_P", "0.05"))  # of placed bets, cashed out (half of them in part)
_markets_open: list[str] = []  # shared by the users of one locust process
_market_seq = itertools.count(1)
_SELECTIONS = (("home", "2.10"), ("draw", "3.40"), ("away", "3.60"))


class Trader(FastHttpUser):
    """The trading desk: keeps ``LOCUST_MARKETS_OPEN`` pre-match markets open, and every
    few seconds settles the oldest one at its final whistle (a result for every selection),
    now and then correcting a result afterwards (a re-settlement)."""

    fixed_count = 1
    wait_time = between(2.0, 4.0)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.checked_s = run_seconds()
        while len(_markets_open) < MARKETS_OPEN:
            self._open_market()

    def _put(self, path: str, doc: dict[str, Any], name: str) -> bool:
        with self.client.request("PUT", path, data=orjson.dumps(doc), name=name, catch_response=True,  # type: ignore[arg-type]
                                 headers={"Authorization": f"Bearer {TRADING_KEY}",
                                          "Content-Type": "application/json"}) as resp:
            if resp.status_code not in (200, 201):
                resp.failure(f"HTTP {resp.status_code}: {_snippet(resp)}")
                return False
            return True

    def _result(self, market_id: str, winner: str, name: str) -> None:
        doc = {"result_id": f"res-{new_id()}", "market_id": market_id,
               "results": [{"selection_id": s, "outcome": "won" if s == winner else "lost"} for s, _ in _SELECTIONS]}
        with self.client.post("/v1/sportsbook/results", data=orjson.dumps(doc), name=name,  # type: ignore[arg-type]
                              catch_response=True, headers={"Authorization": f"Bearer {TRADING_KEY}",
                                                            "Content-Type": "application/json"}) as resp:
            if resp.status_code != 202:
                resp.failure(f"HTTP {resp.status_code}: {_snippet(resp)}")

    def _open_market(self) -> None:
        market_id = f"lt-{_run_id()}-m{next(_market_seq)}"
        if self._put(f"/v1/sportsbook/markets/{market_id}", {
                "event": "Home v Away", "status": "open", "price_version": 1, "currency": CURRENCY,
                "selections": [{"selection_id": s, "odds": {"decimal": o}} for s, o in _SELECTIONS],
                "limits": {"selection_liability_max_minor": 10**9}}, "PUT /v1/sportsbook/markets"):
            _markets_open.append(market_id)

    @task
    def full_time(self) -> None:
        if CURVE is not None:
            now_s = run_seconds()
            for storm in CURVE.settlements_between(self.checked_s, now_s):
                self._storm(storm.markets, storm.label)
            self.checked_s = now_s
        if not _markets_open:
            return
        market_id = _markets_open.pop(0)
        winner = self.rng.choice(_SELECTIONS)[0]
        self._result(market_id, winner, "POST /v1/sportsbook/results")
        if self.rng.random() < CORRECTION_P:
            self._result(market_id, self.rng.choice(_SELECTIONS)[0], "POST /v1/sportsbook/results (correction)")
        self._open_market()

    def _storm(self, markets: int, label: str) -> None:
        """A settlement storm (half-time, full-time): ``markets`` results at once (as many
        as are open), each paying every bet on its market, then as many new markets."""
        settled = 0
        while _markets_open and settled < markets:
            market_id = _markets_open.pop(0)
            self._result(market_id, self.rng.choice(_SELECTIONS)[0], f"POST /v1/sportsbook/results ({label or 'storm'})")
            settled += 1
        for _ in range(settled):
            self._open_market()


class Bettor(FastHttpUser):
    """A pre-match bettor: singles and four-leg accumulators, in bursts when odds move or a
    goal goes in; each placement must debit exactly its outlay; ``LOCUST_CASHOUT_P`` of the
    bets are cashed out at once, half of those in part."""

    weight = SPORTSBOOK_WEIGHT
    _think = between(WAIT_MIN_S, WAIT_MAX_S)

    def wait_time(self) -> float:
        """Think time, shortened by the curve's kick-off bursts (``bet_factor``)."""
        seconds = self._think()
        return seconds / CURVE.bet_factor(run_seconds()) if CURVE is not None else seconds

    def on_start(self) -> None:
        self.rng = random.Random()
        self.player_id = f"lb-{_run_id()}-{next(_player_seq)}"
        headers = {**_AUTH, "Content-Type": "application/json"}
        self.ready = False
        for path, doc in (("/v1/players", {"player_id": self.player_id, "currencies": [CURRENCY], "country": "GB"}),
                          ("/v1/wallet/deposit", {"transaction_id": f"dep-{new_id()}", "player_id": self.player_id,
                                                  "currency": CURRENCY, "amount_minor": INITIAL_DEPOSIT_MINOR})):
            with self.client.post(path, data=orjson.dumps(doc), headers=headers,  # type: ignore[arg-type]
                                  name=f"POST {path}", catch_response=True) as resp:
                if not 200 <= resp.status_code < 300:
                    resp.failure(f"HTTP {resp.status_code}: {_snippet(resp)}")
                    return
        self.ready = True

    @task
    def burst(self) -> None:
        if not self.ready or len(_markets_open) < 4:
            return
        for _ in range(self.rng.choice((1, 1, 2, 5))):
            if self.rng.random() < 0.7:
                legs = [self.rng.choice(_markets_open)]
                bet_type = "single"
            else:
                legs = self.rng.sample(_markets_open, 4)
                bet_type = "accumulator"
            picks = [(m, *self.rng.choice(_SELECTIONS)) for m in legs]
            doc = {"bet_id": f"bet-{new_id()}", "player_id": self.player_id, "currency": CURRENCY,
                   "bet_type": bet_type, "stake_minor": self.rng.choice(STAKES_MINOR), "stake_convention": "per_line",
                   "odds_change": "accept_higher",
                   "legs": [{"market_id": m, "selection_id": s, "odds": {"decimal": o}} for m, s, o in picks]}
            with self.client.post("/v1/sportsbook/bets", data=orjson.dumps(doc),  # type: ignore[arg-type]
                                  name=f"POST /v1/sportsbook/bets ({bet_type})", catch_response=True,
                                  headers={**_AUTH, "Content-Type": "application/json"}) as resp:
                out = _json(resp)
                if resp.status_code == 201 and out is not None:
                    if out.get("outlay_minor") != doc["stake_minor"]:
                        resp.failure(f"outlay {out.get('outlay_minor')}, expected {doc['stake_minor']}")
                    elif self.rng.random() < CASHOUT_P:
                        self._cash_out(out)
                elif resp.status_code in (402, 409):
                    resp.success()  # out of money, or the market closed meanwhile: a normal answer
                else:
                    resp.failure(f"HTTP {resp.status_code}: {_snippet(resp)}")

    def _cash_out(self, bet: dict[str, Any]) -> None:
        """Sell the bet back at half its stake's worth, in part (half the stake) or whole."""
        outlay = bet["outlay_minor"]
        partial = outlay >= 2 and self.rng.random() < 0.5
        doc = {"amount_minor": outlay // 4 if partial else outlay // 2}
        if partial:
            doc["stake_minor"] = outlay // 2
        with self.client.post(f"/v1/sportsbook/bets/{bet['bet_id']}/cashout", data=orjson.dumps(doc),  # type: ignore[arg-type]
                              name="POST /v1/sportsbook/bets/cashout" + (" (partial)" if partial else ""),
                              catch_response=True, headers={**_AUTH, "Content-Type": "application/json"}) as resp:
            out = _json(resp)
            if resp.status_code == 200 and out is not None and out.get("state") == "cashed_out":
                if partial and not out.get("continued_as"):
                    resp.failure("a partial cash-out names no continuation")
            elif resp.status_code == 409:
                resp.success()  # settled meanwhile: a normal answer
            else:
                resp.failure(f"HTTP {resp.status_code}: {_snippet(resp)}")


# ---- cashier ---------------------------------------------------------------------------

CASHIER_WEIGHT = int(os.environ.get("LOCUST_CASHIER_WEIGHT", "1"))  # cashier users per 10 slot players (about)
DEPOSIT_LIMIT_MINOR = 60_000  # each cashier player's own daily deposit limit: the busiest ones hit it
ADYEN_HMAC_KEY = os.environ.get("LOCUST_ADYEN_HMAC_KEY",
                                "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056")  # sandbox
STRIPE_SECRET = os.environ.get("LOCUST_STRIPE_SECRET", "whsec_demo_change_me")  # sandbox


class Cashier(FastHttpUser):
    """A player at the cashier (docs/PAYMENTS.md): deposit intents confirmed by signed PSP
    webhooks (Adyen or Stripe, ~10% redelivered), withdrawals (reviewed and declined or
    cancelled, or approved), and a daily deposit limit that some deposits hit. The user knows
    the exact balance after each step; any difference is a failure."""

    weight = CASHIER_WEIGHT
    wait_time = between(WAIT_MIN_S, WAIT_MAX_S)

    def on_start(self) -> None:
        from gateway.payments.adyen.signature import sign as adyen_sign
        from gateway.payments.stripe.signature import sign as stripe_sign

        self.adyen_sign, self.stripe_sign = adyen_sign, stripe_sign
        self.rng = random.Random()
        self.player_id = f"lc-{_run_id()}-{next(_player_seq)}"
        self.cash_minor = 0
        self.ready = (
            self._call("POST", "/v1/players", {"player_id": self.player_id, "currencies": [CURRENCY], "country": "GB"})
            is not None
            and self._call("PUT", f"/v1/players/{self.player_id}/limits", {"limits": [
                {"kind": "deposit", "period": "day", "currency": CURRENCY, "amount_minor": DEPOSIT_LIMIT_MINOR}]},
                name="PUT /v1/players/limits") is not None
        )

    def _call(self, method: str, path: str, doc: dict, name: str | None = None,
              ok: tuple[int, ...] = (200, 201)) -> tuple[int, dict[str, Any]] | None:
        with self.client.request(method, path, data=orjson.dumps(doc), name=name or f"{method} {path}",  # type: ignore[arg-type]
                                 catch_response=True, headers={**_AUTH, "Content-Type": "application/json"}) as resp:
            out = _json(resp)
            if resp.status_code in ok and out is not None:
                resp.success()
                return resp.status_code, out
            resp.failure(f"HTTP {resp.status_code}: {_snippet(resp)}")
            return None

    @task(3)
    def deposit(self) -> None:
        if not self.ready:
            return
        amount = self.rng.choice(TOP_UP_MINOR)
        reference = f"ld-{new_id()}"
        psp = self.rng.choice(("adyen", "stripe"))
        opened = self._call("POST", "/v1/payments/deposits", {
            "merchant_reference": reference, "player_id": self.player_id, "currency": CURRENCY,
            "amount_minor": amount, "psp": psp}, name="POST /v1/payments/deposits", ok=(201, 422))
        if opened is None:
            return
        if opened[0] == 422:  # the player's own limit: a normal answer
            if opened[1].get("code") != "deposit_limit_reached":
                self.environment.events.request.fire(request_type="CHECK", name="deposit limit", response_time=0,
                                                     response_length=0, exception=AssertionError(str(opened[1])))
            return
        for _ in range(2 if self.rng.random() < 0.1 else 1):  # a PSP redelivering
            self._confirm(psp, reference, amount)
        self.cash_minor += amount
        self._check_balance()

    def _confirm(self, psp: str, reference: str, amount: int) -> None:
        if psp == "adyen":
            item = {"eventCode": "AUTHORISATION", "success": "true", "pspReference": f"PSP{reference[3:]}".upper(),
                    "originalReference": "", "merchantAccountCode": "DemoCasinoECOM", "merchantReference": reference,
                    "amount": {"value": amount, "currency": CURRENCY}, "eventDate": "", "reason": ""}
            item["additionalData"] = {"hmacSignature": self.adyen_sign(item, ADYEN_HMAC_KEY)}
            body = orjson.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]})
            headers = {"Content-Type": "application/json"}
        else:
            body = orjson.dumps({"id": f"evt_{new_id()}", "type": "payment_intent.succeeded", "data": {"object": {
                "id": f"pi_{reference}", "object": "payment_intent", "amount": amount, "currency": CURRENCY.lower(),
                "metadata": {"merchant_reference": reference}}}})
            headers = {"Content-Type": "application/json", "Stripe-Signature": self.stripe_sign(body, STRIPE_SECRET)}
        with self.client.post(f"/v1/payments/webhooks/{psp}", data=body, headers=headers,  # type: ignore[arg-type]
                              name=f"POST /v1/payments/webhooks/{psp}", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {_snippet(resp)}")

    @task(1)
    def withdraw(self) -> None:
        if not self.ready or self.cash_minor < 1_000:
            return
        amount = self.rng.choice((500, 1_000))
        reference = f"lw-{new_id()}"
        made = self._call("POST", "/v1/payments/withdrawals", {
            "merchant_reference": reference, "player_id": self.player_id, "currency": CURRENCY,
            "amount_minor": amount, "psp": "adyen"}, name="POST /v1/payments/withdrawals")
        if made is None:
            return
        self.cash_minor -= amount  # it left the balance at once
        self._check_balance()
        if made[1].get("state") == "pending_review":  # the sandbox players' KYC is not verified
            verb = self.rng.choice(("decline", "cancel"))
            if self._call("POST", f"/v1/payments/withdrawals/{reference}/{verb}", {"actor": "locust"},
                          name=f"POST /v1/payments/withdrawals/{verb}") is not None:
                self.cash_minor += amount
                self._check_balance()

    def _check_balance(self) -> None:
        with self.client.get(f"/v1/players/{self.player_id}/balance", headers=_AUTH, name="GET /v1/players/balance",
                             catch_response=True) as resp:
            out = _json(resp)
            cash = next((b["cash_minor"] for b in (out or {}).get("balances", []) if b["currency"] == CURRENCY), None)
            if cash != self.cash_minor:
                resp.failure(f"cash {cash}, expected {self.cash_minor}")


class WeekendPeakShape(LoadTestShape):
    """The weekend day of ``LOCUST_CURVE_FILE`` (loadtests/curve.py), else base load, ramp
    to the peak, hold, ramp down, stop (traffic_shape.py)."""

    config = ShapeConfig.from_env()

    def tick(self) -> tuple[int, float] | None:
        source = CURVE if CURVE is not None else self.config
        users = source.users_at(self.get_run_time())
        return None if users is None else (users, source.spawn_rate())
