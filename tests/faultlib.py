"""Helpers of the fault tests (tests/test_faults.py): a bounded load generator that remembers
what the gateway acknowledged, database-side checks of those acknowledgements, PostgreSQL
fault injection (terminate backends, refuse connections) and a /readyz prober.

Everything talks to 127.0.0.1 only, and every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

SCOPE = "demo:api"  # the sandbox partner's API scope: the idempotency scope of every request sent here
CURRENCY = "EUR"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def db_name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/")


def log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"<no log: {exc!r}>"


def log_grep(path: Path, *needles: str, limit: int = 30, width: int = 1200) -> str:
    """Log lines containing any of ``needles`` (the last ``limit``, cut at ``width`` characters)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"<no log: {exc!r}>"
    hits = [line[:width] for line in lines if any(n in line for n in needles)]
    return "\n".join(hits[-limit:])


# ---- operations and their acknowledgements --------------------------------------------


@dataclass
class Op:
    """One money request with a fixed body (so a retry is byte-for-byte the same request)."""

    kind: str  # deposit | debit | credit | rollback
    body: dict
    amount_minor: int  # what a success moves: +deposit/credit/rollback refund, -debit
    acked: bool = False  # got a 200 at least once
    ack_phase: str | None = None  # "load" or "retry": when the first 200 came
    ack_cash: int | None = None  # cash_minor of the first 200
    ack_replayed: bool | None = None
    attempts: int = 0
    statuses: list = field(default_factory=list)  # every answer: HTTP status or exception name
    refusal: dict | None = None  # a non-200, non-503 answer (kept for the report)
    timings: list = field(default_factory=list)  # (sent, answered) monotonic seconds, per attempt

    @property
    def transaction_id(self) -> str:
        return self.body["transaction_id"]

    @property
    def player_id(self) -> str:
        return self.body["player_id"]

    @property
    def path(self) -> str:
        return f"/v1/wallet/{self.kind}"


def debit_op(player: str, amount: int, round_id: str) -> Op:
    return Op("debit", {
        "transaction_id": new_id("bet"), "player_id": player, "currency": CURRENCY,
        "amount_minor": amount, "round_id": round_id, "game_id": "g-fault",
    }, -amount)


def credit_op(player: str, amount: int, round_id: str, bet_id: str | None, round_closed: bool = True) -> Op:
    body = {
        "transaction_id": new_id("win"), "player_id": player, "currency": CURRENCY,
        "amount_minor": amount, "round_id": round_id, "game_id": "g-fault", "round_closed": round_closed,
    }
    if bet_id is not None:
        body["bet_transaction_id"] = bet_id
    return Op("credit", body, amount)


def deposit_op(player: str, amount: int) -> Op:
    return Op("deposit", {
        "transaction_id": new_id("dep"), "player_id": player, "currency": CURRENCY, "amount_minor": amount,
    }, amount)


def rollback_op(player: str, bet: Op) -> Op:
    return Op("rollback", {
        "transaction_id": new_id("rb"), "player_id": player,
        "reference_transaction_id": bet.transaction_id, "currency": CURRENCY,
    }, bet.body["amount_minor"])


async def send(client: httpx.AsyncClient, op: Op, phase: str) -> dict | None:
    """Send ``op`` once. Returns the JSON of a 200 (recording the ack), else None."""
    op.attempts += 1
    sent = time.monotonic()
    try:
        r = await client.post(op.path, json=op.body)
    except httpx.HTTPError as exc:
        op.statuses.append(type(exc).__name__)
        op.timings.append((sent, time.monotonic()))
        return None
    op.statuses.append(r.status_code)
    op.timings.append((sent, time.monotonic()))
    if r.status_code != 200:
        if r.status_code != 503:
            op.refusal = {"status": r.status_code, "body": r.text[:500]}
        return None
    data = r.json()
    if not op.acked:
        op.acked, op.ack_phase = True, phase
        op.ack_cash, op.ack_replayed = data["cash_minor"], data["replayed"]
    return data


async def send_until_acked(client: httpx.AsyncClient, op: Op, phase: str, attempts_max: int = 40,
                           deadline: float | None = None) -> dict | None:
    """Retry ``op`` (same id, same body) on 503 / transport errors; bounded in count and time."""
    for _ in range(attempts_max):
        data = await send(client, op, phase)
        if data is not None:
            return data
        if op.refusal is not None:
            return None  # a definite answer: retrying would get the same one
        if deadline is not None and time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.1)
    return None


# ---- players ----------------------------------------------------------------------------


async def create_players(client: httpx.AsyncClient, count: int, deposit_minor: int,
                         concurrency: int = 16) -> dict[str, Op]:
    """Create ``count`` funded players; returns player id -> its acknowledged deposit."""
    sem = asyncio.Semaphore(concurrency)
    deposits: dict[str, Op] = {}

    async def one() -> None:
        async with sem:
            player = new_id("p")
            r = await client.post("/v1/players", json={"player_id": player, "currencies": [CURRENCY], "country": "MT"})
            assert r.status_code == 201, r.text
            dep = deposit_op(player, deposit_minor)
            assert await send_until_acked(client, dep, "setup") is not None, dep.statuses
            deposits[player] = dep

    await asyncio.gather(*(one() for _ in range(count)))
    return deposits


# ---- the load generator -------------------------------------------------------------------


@dataclass
class Pair:
    """A bet and the win that settles it (sent only once the bet was acknowledged)."""

    debit: Op
    credit: Op


class PairLoad:
    """``workers`` concurrent loops of debit -> credit pairs on random players.

    Bounded by ``pairs_per_worker_max`` and by ``stop`` (an asyncio.Event). A transport
    error or 503 leaves the op unacknowledged; it is retried later by ``retry_unacked``.
    """

    def __init__(self, client: httpx.AsyncClient, players: list[str], workers: int = 32,
                 pairs_per_worker_max: int = 400, seed: int = 7) -> None:
        self.client = client
        self.players = players
        self.workers = workers
        self.pairs_per_worker_max = pairs_per_worker_max
        self.rng = random.Random(seed)
        self.pairs: list[Pair] = []
        self.stop = asyncio.Event()

    def new_pair(self) -> Pair:
        player = self.rng.choice(self.players)
        round_id = new_id("r")
        debit = debit_op(player, self.rng.randint(1, 500), round_id)
        credit = credit_op(player, self.rng.randint(1, 600), round_id, debit.transaction_id)
        pair = Pair(debit, credit)
        self.pairs.append(pair)
        return pair

    async def _worker(self) -> None:
        for _ in range(self.pairs_per_worker_max):
            if self.stop.is_set():
                return
            pair = self.new_pair()
            if await send(self.client, pair.debit, "load") is None:
                if self.stop.is_set():
                    return
                continue
            await send(self.client, pair.credit, "load")

    async def run(self) -> None:
        await asyncio.gather(*(self._worker() for _ in range(self.workers)))

    def ops(self) -> list[Op]:
        return [op for p in self.pairs for op in (p.debit, p.credit)]

    async def retry_unacked(self, client: httpx.AsyncClient, concurrency: int = 32,
                            time_budget_s: float = 60.0) -> None:
        """Complete every pair: the debit until acknowledged, then the credit."""
        sem = asyncio.Semaphore(concurrency)
        deadline = time.monotonic() + time_budget_s

        async def complete(pair: Pair) -> None:
            async with sem:
                if not pair.debit.acked:
                    await send_until_acked(client, pair.debit, "retry", deadline=deadline)
                if pair.debit.acked and not pair.credit.acked:
                    await send_until_acked(client, pair.credit, "retry", deadline=deadline)

        await asyncio.gather(*(complete(p) for p in self.pairs))


# ---- database checks --------------------------------------------------------------------


async def stored_transactions(database_url: str, transaction_ids: list[str]) -> dict[str, list[dict]]:
    """transaction_id -> every transactions row with that id (any scope), for ``transaction_ids``."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """SELECT scope, transaction_id, kind, player_id, amount_minor, code, cash_after_minor,
                      bet_state, reference_id, txn_id
               FROM transactions WHERE transaction_id = ANY($1::text[])""",
            transaction_ids,
        )
    finally:
        await conn.close()
    out: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        out[r["transaction_id"]].append(dict(r))
    return out


async def check_acked_durable(database_url: str, ops: list[Op]) -> list[str]:
    """Problems: an acknowledged op missing, stored twice, or stored with another outcome."""
    acked = [op for op in ops if op.acked]
    stored = await stored_transactions(database_url, [op.transaction_id for op in acked])
    problems = []
    for op in acked:
        rows = stored.get(op.transaction_id, [])
        if len(rows) != 1:
            problems.append(f"{op.kind} {op.transaction_id} acked ({op.ack_phase}) but stored {len(rows)} times")
            continue
        row = rows[0]
        want_amount = op.body["amount_minor"] if op.kind != "rollback" else None
        if row["kind"] != op.kind or row["code"] != "ok" or row["player_id"] != op.player_id \
                or (want_amount is not None and row["amount_minor"] != want_amount) \
                or row["cash_after_minor"] != op.ack_cash:
            problems.append(f"{op.kind} {op.transaction_id} acked cash={op.ack_cash} but stored {row}")
    return problems


async def duplicate_applications(database_url: str) -> list[dict]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """SELECT scope, transaction_id, count(*) AS n FROM transactions
               GROUP BY scope, transaction_id HAVING count(*) > 1 LIMIT 20"""
        )
        # Each stored transaction moved its player's accounts by exactly its recorded deltas.
        rows += await conn.fetch(
            """SELECT t.scope, t.transaction_id, t.cash_delta_minor + t.bonus_delta_minor AS recorded,
                      coalesce(e.total, 0) AS posted
               FROM transactions t
               LEFT JOIN (SELECT txn_id, sum(delta_minor) AS total FROM entries
                          WHERE account LIKE 'player:%' GROUP BY txn_id) e USING (txn_id)
               WHERE coalesce(e.total, 0) <> t.cash_delta_minor + t.bonus_delta_minor LIMIT 20"""
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def player_cash(database_url: str, players: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """SELECT player_id, balance_minor FROM accounts
               WHERE player_id = ANY($1::text[]) AND account LIKE '%:cash' AND currency = $2""",
            players, CURRENCY,
        )
    finally:
        await conn.close()
    return {r["player_id"]: r["balance_minor"] for r in rows}


def expected_cash(deposits: dict[str, Op], ops: list[Op]) -> dict[str, int]:
    """Client's view: deposits + credits - debits (+ rollback refunds) that were acknowledged OK."""
    cash = {player: dep.body["amount_minor"] for player, dep in deposits.items()}
    for op in ops:
        if op.acked:
            cash[op.player_id] = cash.get(op.player_id, 0) + op.amount_minor
    return cash


async def api_cash(client: httpx.AsyncClient, player: str) -> int:
    r = await client.get(f"/v1/players/{player}/balance")
    assert r.status_code == 200, r.text
    return r.json()["balances"][0]["cash_minor"]


# ---- PostgreSQL fault injection -------------------------------------------------------------


async def terminate_backends(admin_url: str, database: str) -> int:
    """Terminate every backend connected to ``database``; returns how many."""
    conn = await asyncpg.connect(admin_url)
    try:
        rows = await conn.fetch(
            """SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
               WHERE datname = $1 AND pid <> pg_backend_pid()""",
            database,
        )
    finally:
        await conn.close()
    return sum(1 for r in rows if r["ok"])


async def set_allow_connections(admin_url: str, database: str, allow: bool) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {"true" if allow else "false"}')
    finally:
        await conn.close()


# ---- probes -------------------------------------------------------------------------------


class ReadyProbe:
    """Polls /readyz every ``interval_s`` while running; keeps every answer."""

    def __init__(self, url: str, interval_s: float = 0.05) -> None:
        self.url = url
        self.interval_s = interval_s
        self.answers: list[tuple[float, object]] = []
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as c:
            while True:
                try:
                    status: object = (await c.get("/readyz")).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self.answers.append((time.monotonic(), status))
                await asyncio.sleep(self.interval_s)

    def start(self) -> ReadyProbe:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def not_ready(self) -> list:
        return [a for a in self.answers if a[1] != 200]


async def metric(client: httpx.AsyncClient, name: str) -> float:
    """Sum of the samples of metric ``name`` (all label sets) on /metrics."""
    r = await client.get("/metrics")
    total = 0.0
    for line in r.text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---- a TCP proxy in front of PostgreSQL: cut connections, refuse new ones ----------------------


class TcpProxy:
    """127.0.0.1 TCP proxy to ``target``: ``cut()`` resets every live connection (the peer
    sees ECONNRESET), ``refuse()`` closes the listener (new connects get ECONNREFUSED) until
    ``accept()`` listens again on the same port. Runs on the test's event loop."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self.connections = 0

    async def accept(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def refuse(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def cut(self) -> int:
        live = list(self._live)
        for writer in live:
            writer.transport.abort()
        self._live.clear()
        return len(live)

    async def close(self) -> None:
        await self.refuse()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._live.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort()

        tasks = [asyncio.create_task(pipe(reader, up_writer)), asyncio.create_task(pipe(up_reader, writer))]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._tasks.difference_update(tasks)
            self._live.discard(writer)
            self._live.discard(up_writer)


async def books_balance(database_url: str, deposits: dict[str, Op], ops: list[Op]) -> None:
    """The ledger checks after a fault test: every acknowledged op durable as answered and
    applied once, every player's cash equal to its acknowledged ops, verify-ledger passes."""
    from tests.conftest import check_ledger

    problems = await check_acked_durable(database_url, list(deposits.values()) + ops)
    assert not problems, "acknowledged but not durable as answered:\n" + "\n".join(problems[:20])
    assert not await duplicate_applications(database_url)
    expected = expected_cash(deposits, ops)
    stored = await player_cash(database_url, list(expected))
    drift = {p: (stored.get(p), want) for p, want in expected.items() if stored.get(p) != want}
    assert not drift, f"player cash (stored, expected) differs: {list(drift.items())[:10]}"
    report = await check_ledger(database_url)
    assert report["ok"], report
