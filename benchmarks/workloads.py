"""Request streams for the benchmark: seeding, and bet-then-win rounds on the generic API.

A workload hands out ``Op``s (``next_op``) and learns their outcome (``on_done``). Rounds are
kept honest in both driver modes: a credit for a round is only issued once its debit was
answered 2xx, so "bet then win on the same round" holds whatever the concurrency.
"""

from __future__ import annotations

import random
import secrets
from collections import deque
from typing import Protocol

from benchmarks.httpload import Target

CURRENCY = "EUR"
GAME_ID = b"bench-slot"

DEBIT, CREDIT, CREATE, DEPOSIT = 1, 2, 3, 4
KIND_NAMES = {DEBIT: "debit", CREDIT: "credit", CREATE: "create", DEPOSIT: "deposit"}


class Op:
    __slots__ = ("amount", "data", "kind", "player", "round", "tx")

    def __init__(
        self, kind: int, player: bytes, tx: bytes, round_: bytes, amount: int, data: bytes
    ) -> None:
        self.kind = kind
        self.player = player
        self.tx = tx
        self.round = round_
        self.amount = amount
        self.data = data


class Workload(Protocol):
    def next_op(self) -> Op | None: ...

    def on_done(self, op: Op, status: int, body: bytes) -> None: ...


def player_ids(prefix: str, n: int) -> list[bytes]:
    return [f"{prefix}{i:07d}".encode() for i in range(n)]


def new_run_id() -> str:
    return secrets.token_hex(4)


class Rounds:
    """Bet then win on the same round, players drawn uniformly from ``players``.

    Each debit that succeeds queues the credit of its round; the next op taken is that credit
    if one is waiting, else a new round's debit. In steady state half the ops are debits.
    """

    def __init__(
        self,
        target: Target,
        players: list[bytes],
        *,
        run_id: str,
        bet_minor: int = 100,
        win_minor: int = 96,
        seed: int = 1,
    ) -> None:
        if not players:
            raise ValueError("no players")
        self.players = players
        self.bet_minor = bet_minor
        self.win_minor = win_minor
        self._rng = random.Random(seed)
        self._prefix = run_id.encode()
        self._seq = 0
        self._ready: deque[Op] = deque()  # debits answered 2xx, waiting for their credit
        self._debit_head = target.post_prefix("/v1/wallet/debit")
        self._credit_head = target.post_prefix("/v1/wallet/credit")
        # net effect on balances of the 2xx answers, for end-to-end checks
        self.net_minor = 0
        self.unknown_outcomes = 0

    def next_op(self) -> Op | None:
        if self._ready:
            bet = self._ready.popleft()
            tx = bet.tx + b"w"
            body = (
                b'{"transaction_id":"%b","player_id":"%b","currency":"EUR","amount_minor":%d,'
                b'"round_id":"%b","game_id":"%b","bet_transaction_id":"%b","round_closed":true}'
                % (tx, bet.player, self.win_minor, bet.round, GAME_ID, bet.tx)
            )
            return Op(
                CREDIT,
                bet.player,
                tx,
                bet.round,
                self.win_minor,
                b"%b%d\r\n\r\n%b" % (self._credit_head, len(body), body),
            )
        self._seq += 1
        player = self.players[self._rng.randrange(len(self.players))]
        tx = b"%b-%d" % (self._prefix, self._seq)
        round_ = b"%b-r%d" % (self._prefix, self._seq)
        body = (
            b'{"transaction_id":"%b","player_id":"%b","currency":"EUR","amount_minor":%d,'
            b'"round_id":"%b","game_id":"%b"}' % (tx, player, self.bet_minor, round_, GAME_ID)
        )
        return Op(
            DEBIT,
            player,
            tx,
            round_,
            self.bet_minor,
            b"%b%d\r\n\r\n%b" % (self._debit_head, len(body), body),
        )

    def settle_ops(self) -> list[Op]:
        """The credits of every bet still waiting for one, to send after the measured window:
        a run must leave no open bet behind, or a database reused across runs fills the hot
        player up to ``shard.open_bets_per_player_max`` (then every bet is ``limit_reached``)."""
        ops: list[Op] = []
        while self._ready:
            op = self.next_op()
            assert op is not None and op.kind == CREDIT
            ops.append(op)
        return ops

    def on_done(self, op: Op, status: int, body: bytes) -> None:
        if 200 <= status < 300:
            if op.kind == DEBIT:
                self.net_minor -= op.amount
                self._ready.append(op)
            else:
                self.net_minor += op.amount
        elif status == 0:
            self.unknown_outcomes += 1


class Seeder:
    """Create each player and deposit ``deposit_minor`` into it; safe to re-run.

    "player_exists" answers count as created and the deposit's transaction id is derived
    from the player id, so a re-run replays instead of depositing twice.
    """

    def __init__(
        self, target: Target, players: list[bytes], deposit_minor: int, country: str = "MT"
    ) -> None:
        self._todo = deque(players)
        self._deposits: deque[bytes] = deque()
        self.deposit_minor = deposit_minor
        self._target = target
        self._country = country.encode()
        self.failed: list[tuple[str, int, bytes]] = []
        self.created = 0
        self.deposited = 0

    def next_op(self) -> Op | None:
        if self._deposits:
            player = self._deposits.popleft()
            tx = b"seed-" + player
            body = (
                b'{"transaction_id":"%b","player_id":"%b","currency":"EUR","amount_minor":%d}'
                % (tx, player, self.deposit_minor)
            )
            return Op(DEPOSIT, player, tx, b"", self.deposit_minor,
                      self._target.post("/v1/wallet/deposit", body))
        if self._todo:
            player = self._todo.popleft()
            body = b'{"player_id":"%b","currencies":["EUR"],"country":"%b"}' % (
                player,
                self._country,
            )
            return Op(CREATE, player, b"", b"", 0, self._target.post("/v1/players", body))
        return None

    def on_done(self, op: Op, status: int, body: bytes) -> None:
        if op.kind == CREATE:
            if 200 <= status < 300 or (status == 409 and b"player_exists" in body):
                self.created += 1
                self._deposits.append(op.player)
            else:
                self.failed.append(("create", status, body[:200]))
        elif 200 <= status < 300:
            self.deposited += 1
        else:
            self.failed.append(("deposit", status, body[:200]))
