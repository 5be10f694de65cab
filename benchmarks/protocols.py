"""Bet-then-win rounds spoken in each provider's wire protocol, for the adapter benchmark.

Each ``Wire`` builds the raw HTTP request of a bet and of the win of the same round for one
protocol ("Protocol facts" in gateway/providers/<name>/README.md), signed the way the provider signs, and says whether an
answer was a success in that protocol's terms (Hub88 ``RS_OK``, Evolution ``OK``, Pragmatic
``error`` 0, SoftSwiss HTTP 200, generic API 2xx). ``ProtocolRounds`` drives them like
``workloads.Rounds``: a round's win is only sent after its bet succeeded.

Hub88 requests are RSA-signed: 0.3 ms of generator CPU each, as much as the gateway's own
work per request. So Hub88 rounds are signed ahead of the measurement (``presign``, in a
process pool) and the generator only replays bytes; the other protocols' signatures (md5,
HMAC-SHA256) cost microseconds and are made inline.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

from benchmarks.httpload import Target
from benchmarks.workloads import CREDIT, DEBIT, Op

REPO = Path(__file__).resolve().parent.parent
HUB88_KEY_PATH = REPO / "config" / "keys" / "hub88-demo-private.pem"
EVOLUTION_AUTH_TOKEN = "evolution-demo-auth-token"  # config/sandbox.toml [integrations.evolution]
PRAGMATIC_SECRET = "pragmatic-demo-secret"  # [integrations.pragmatic]
PRAGMATIC_PROVIDER_ID = "PragmaticPlay"
SOFTSWISS_AUTH_TOKEN = b"softswiss-demo-auth-token"  # [integrations.softswiss]
GAME = "bench-slot"
BET_MINOR = 100  # 1.00 EUR
WIN_MINOR = 96  # 0.96 EUR


@dataclass(frozen=True)
class Seat:
    """A seeded player with a game session token per provider (from POST /v1/sessions)."""

    player: str
    tokens: dict[str, str]


def _decimal(minor: int) -> str:
    """EUR minor units as a 2-decimal major-unit string, exact (no float)."""
    return f"{minor // 100}.{minor % 100:02d}"


def _head(target: Target, path: str, content_type: bytes, extra: bytes = b"") -> bytes:
    return b"".join((
        b"POST ", target.base_path.encode(), path.encode(), b" HTTP/1.1\r\nHost: ",
        target.host_header, b"\r\nContent-Type: ", content_type, b"\r\n", extra,
        b"Content-Length: ",
    ))


def _request(head: bytes, body: bytes) -> bytes:
    return b"%b%d\r\n\r\n%b" % (head, len(body), body)


class Wire(Protocol):
    name: str

    def bet(self, seat: Seat, tx: str, round_id: str) -> bytes: ...

    def win(self, seat: Seat, tx: str, bet_tx: str, round_id: str) -> bytes: ...

    def ok(self, status: int, body: bytes) -> bool: ...


class GenericWire:
    """The generic partner API v1 (gateway/edge/api_v1.py): the reference."""

    name = "generic"

    def __init__(self, target: Target) -> None:
        self._debit = target.post_prefix("/v1/wallet/debit")
        self._credit = target.post_prefix("/v1/wallet/credit")

    def bet(self, seat: Seat, tx: str, round_id: str) -> bytes:
        body = (b'{"transaction_id":"%s","player_id":"%s","currency":"EUR","amount_minor":%d,'
                b'"round_id":"%s","game_id":"%s"}'
                % (tx.encode(), seat.player.encode(), BET_MINOR, round_id.encode(), GAME.encode()))
        return _request(self._debit, body)

    def win(self, seat: Seat, tx: str, bet_tx: str, round_id: str) -> bytes:
        body = (b'{"transaction_id":"%s","player_id":"%s","currency":"EUR","amount_minor":%d,'
                b'"round_id":"%s","game_id":"%s","bet_transaction_id":"%s","round_closed":true}'
                % (tx.encode(), seat.player.encode(), WIN_MINOR, round_id.encode(), GAME.encode(),
                   bet_tx.encode()))
        return _request(self._credit, body)

    def ok(self, status: int, body: bytes) -> bool:
        return 200 <= status < 300


def _hub88_signed(args: tuple[str, bytes]) -> bytes:
    """(path, body) -> full request head+body signed with the demo key (process pool worker)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    global _HUB88_KEY
    try:
        key = _HUB88_KEY  # type: ignore[name-defined]  # set on the first call in each worker
    except NameError:
        key = _HUB88_KEY = serialization.load_pem_private_key(HUB88_KEY_PATH.read_bytes(), None)  # type: ignore[name-defined]
    path, body = args
    signature = base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256()))
    return path.encode() + b"\n" + signature + b"\n" + body


class Hub88Wire:
    """Hub88 /transaction/bet and /transaction/win, RSA-signed (signed ahead, see module doc)."""

    name = "hub88"

    def __init__(self, target: Target) -> None:
        self._target = target
        self._signed: dict[str, bytes] = {}  # tx -> full request

    @staticmethod
    def _bet_body(seat: Seat, tx: str, round_id: str) -> bytes:
        return (b'{"user":"%s","transaction_uuid":"%s","supplier_transaction_id":"%s","token":"%s",'
                b'"round":"%s","round_closed":false,"request_uuid":"%s","game_code":"%s",'
                b'"currency":"EUR","bet":"zero","amount":%d}'
                % (seat.player.encode(), tx.encode(), tx.encode(), seat.tokens["hub88"].encode(),
                   round_id.encode(), tx.encode(), GAME.encode(), BET_MINOR * 1000))

    @staticmethod
    def _win_body(seat: Seat, tx: str, bet_tx: str, round_id: str) -> bytes:
        return (b'{"user":"%s","transaction_uuid":"%s","supplier_transaction_id":"%s","token":"%s",'
                b'"round":"%s","round_closed":true,"request_uuid":"%s","game_code":"%s",'
                b'"currency":"EUR","amount":%d,"reference_transaction_uuid":"%s"}'
                % (seat.player.encode(), tx.encode(), tx.encode(), seat.tokens["hub88"].encode(),
                   round_id.encode(), tx.encode(), GAME.encode(), WIN_MINOR * 1000, bet_tx.encode()))

    def presign(self, plan: list[tuple[Seat, str, str]], workers: int = 2) -> float:
        """Sign the bet and the win of every planned round (seat, bet tx, round); returns seconds."""
        started = time.perf_counter()
        jobs = []
        for seat, tx, round_id in plan:
            jobs.append(("/providers/hub88/transaction/bet", self._bet_body(seat, tx, round_id)))
            jobs.append(("/providers/hub88/transaction/win",
                         self._win_body(seat, tx + "w", tx, round_id)))
        with ProcessPoolExecutor(workers) as pool:
            for (path, body), signed in zip(jobs, pool.map(_hub88_signed, jobs, chunksize=512), strict=True):
                _, signature, _ = signed.split(b"\n", 2)
                head = _head(self._target, path, b"application/json",
                             b"X-Hub88-Signature: " + signature + b"\r\n")
                tx = body.split(b'"transaction_uuid":"', 1)[1].split(b'"', 1)[0].decode()
                self._signed[tx] = _request(head, body)
        return time.perf_counter() - started

    def bet(self, seat: Seat, tx: str, round_id: str) -> bytes:
        return self._signed.pop(tx)

    def win(self, seat: Seat, tx: str, bet_tx: str, round_id: str) -> bytes:
        return self._signed.pop(tx)

    def ok(self, status: int, body: bytes) -> bool:
        return status == 200 and b'"status":"RS_OK"' in body


class EvolutionWire:
    """Evolution /debit and /credit with the ``authToken`` query parameter, decimal amounts."""

    name = "evolution"

    def __init__(self, target: Target) -> None:
        q = f"?authToken={EVOLUTION_AUTH_TOKEN}"
        self._debit = _head(target, "/providers/evolution/debit" + q, b"application/json")
        self._credit = _head(target, "/providers/evolution/credit" + q, b"application/json")

    def _body(self, seat: Seat, tx: str, ref: str, minor: int, round_id: str) -> bytes:
        return (b'{"sid":"%s","userId":"%s","currency":"EUR","game":{"id":"%s","type":"slots",'
                b'"details":{"table":{"id":"%s","vid":null}}},"transaction":{"id":"%s","refId":"%s",'
                b'"amount":%s},"uuid":"%s"}'
                % (seat.tokens["evolution"].encode(), seat.player.encode(), round_id.encode(),
                   GAME.encode(), tx.encode(), ref.encode(), _decimal(minor).encode(), tx.encode()))

    def bet(self, seat: Seat, tx: str, round_id: str) -> bytes:
        return _request(self._debit, self._body(seat, tx, tx, BET_MINOR, round_id))

    def win(self, seat: Seat, tx: str, bet_tx: str, round_id: str) -> bytes:
        return _request(self._credit, self._body(seat, tx, bet_tx, WIN_MINOR, round_id))

    def ok(self, status: int, body: bytes) -> bool:
        return status == 200 and b'"status":"OK"' in body


def pragmatic_hash(params: dict[str, str], secret: str = PRAGMATIC_SECRET) -> str:
    """md5 of the parameters sorted by name as k=v&k=v, the secret appended (gateway/providers/pragmatic/README.md, "Hash")."""
    text = "&".join(f"{k}={params[k]}" for k in sorted(params)) + secret
    return hashlib.md5(text.encode()).hexdigest()


class PragmaticWire:
    """Pragmatic Play /bet.html and /result.html: form-encoded, md5 ``hash``."""

    name = "pragmatic"

    def __init__(self, target: Target) -> None:
        form = b"application/x-www-form-urlencoded"
        self._bet = _head(target, "/providers/pragmatic/bet.html", form)
        self._result = _head(target, "/providers/pragmatic/result.html", form)

    def _body(self, seat: Seat, reference: str, minor: int, round_id: str) -> bytes:
        params = {
            "providerId": PRAGMATIC_PROVIDER_ID, "userId": seat.player,
            "token": seat.tokens["pragmatic"], "gameId": GAME, "roundId": round_id,
            "amount": _decimal(minor), "reference": reference,
            "timestamp": str(time.time_ns() // 1_000_000), "roundDetails": "spin",
        }
        params["hash"] = pragmatic_hash(params)
        return urlencode(params).encode()

    def bet(self, seat: Seat, tx: str, round_id: str) -> bytes:
        return _request(self._bet, self._body(seat, tx, BET_MINOR, round_id))

    def win(self, seat: Seat, tx: str, bet_tx: str, round_id: str) -> bytes:
        return _request(self._result, self._body(seat, tx, WIN_MINOR, round_id))

    def ok(self, status: int, body: bytes) -> bool:
        return status == 200 and b'"error":0' in body


class SoftSwissWire:
    """SoftSwiss /play: one bet action, then one win action with ``finished: true``; HMAC-SHA256."""

    name = "softswiss"

    def __init__(self, target: Target) -> None:
        self._target = target

    def _play(self, seat: Seat, action: bytes, tx: str, minor: int, round_id: str, finished: bool) -> bytes:
        body = (b'{"user_id":"%s","currency":"EUR","game":"%s","game_id":"%s","finished":%s,'
                b'"actions":[{"action":"%s","amount":%d,"action_id":"%s"}]}'
                % (seat.player.encode(), GAME.encode(), round_id.encode(),
                   b"true" if finished else b"false", action, minor, tx.encode()))
        sign = hmac.new(SOFTSWISS_AUTH_TOKEN, body, hashlib.sha256).hexdigest().encode()
        head = _head(self._target, "/providers/softswiss/play", b"application/json",
                     b"X-REQUEST-SIGN: " + sign + b"\r\n")
        return _request(head, body)

    def bet(self, seat: Seat, tx: str, round_id: str) -> bytes:
        return self._play(seat, b"bet", tx, BET_MINOR, round_id, False)

    def win(self, seat: Seat, tx: str, bet_tx: str, round_id: str) -> bytes:
        return self._play(seat, b"win", tx, WIN_MINOR, round_id, True)

    def ok(self, status: int, body: bytes) -> bool:
        return status == 200


WIRES = {w.name: w for w in (GenericWire, Hub88Wire, EvolutionWire, PragmaticWire, SoftSwissWire)}


class ProtocolRounds:
    """Bet then win of the same round over ``wire``, seats drawn at random.

    With ``plan`` (Hub88), rounds are taken from the pre-signed plan in order and the
    workload ends when it runs out. ``errors`` counts protocol-level refusals by status text.
    """

    def __init__(self, wire, seats: list[Seat], *, run_id: str, seed: int = 1,
                 plan: list[tuple[Seat, str, str]] | None = None) -> None:
        self.wire = wire
        self.seats = seats
        self._rng = random.Random(seed)
        self._run_id = run_id
        self._seq = 0
        self._plan = deque(plan) if plan is not None else None
        self._ready: deque[tuple[Seat, str, str]] = deque()
        self.unknown_outcomes = 0

    def next_op(self) -> Op | None:
        if self._ready:
            seat, tx, round_id = self._ready.popleft()
            data = self.wire.win(seat, tx + "w", tx, round_id)
            return Op(CREDIT, seat.player.encode(), (tx + "w").encode(), round_id.encode(), WIN_MINOR,
                      data)
        if self._plan is not None:
            if not self._plan:
                return None
            seat, tx, round_id = self._plan.popleft()
        else:
            self._seq += 1
            seat = self.seats[self._rng.randrange(len(self.seats))]
            tx = f"{self._run_id}-{self._seq}"
            round_id = f"{self._run_id}-r{self._seq}"
        op = Op(DEBIT, seat.player.encode(), tx.encode(), round_id.encode(), BET_MINOR,
                self.wire.bet(seat, tx, round_id))
        op.round = round_id.encode()
        op.player = seat  # type: ignore[assignment]  # kept for the win
        return op

    def on_done(self, op: Op, status: int, body: bytes) -> None:
        if status == 0:
            self.unknown_outcomes += 1
            return
        if op.kind == DEBIT and self.wire.ok(status, body):
            self._ready.append((op.player, op.tx.decode(), op.round.decode()))  # type: ignore[arg-type]


def plan_rounds(seats: list[Seat], n: int, run_id: str, seed: int = 1) -> list[tuple[Seat, str, str]]:
    """``n`` rounds (seat, bet tx, round id) for pre-signing."""
    rng = random.Random(seed)
    return [(seats[rng.randrange(len(seats))], f"{run_id}-{i}", f"{run_id}-r{i}") for i in range(n)]
