"""Moving buckets while serving (gateway/cluster/mover.py, `gateway shards`; docs/SCALING.md).

Behaviour is asserted; the times (longest wait, hand-over per group) are measured and
printed, never asserted:
- resize 1 -> 2 -> 1 under load: every acknowledged operation is stored once, balances
  equal entries, audit chains verify; every error answer during the moves is retryable
  (503) and is counted; the second shard really served players in between;
- SIGSTOP a shard, move its buckets away, SIGCONT it: the move fences it (its lease epoch
  moves on), the batch it still held is refused, it restarts, and the command it had
  applied is acknowledged only once it is durable on the new owner;
- `gateway shards status --json` reports the map and each shard's figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import asyncpg
import httpx
import pytest

from tests.conftest import ROOT, TWO_PARTNERS_CONFIG
from tests.faultlib import (
    PairLoad,
    books_balance,
    create_players,
    deposit_op,
    send,
    send_until_acked,
)

pytestmark = pytest.mark.fault

LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64)


def cluster_env(edges: int, shards: int, **extra: str) -> dict[str, str]:
    return {"GATEWAY_CLUSTER__SINGLE_PROCESS": "false", "GATEWAY_CLUSTER__EDGES": str(edges),
            "GATEWAY_CLUSTER__SHARDS": str(shards), "GATEWAY_CLUSTER__LAYOUT_POLL_INTERVAL_MS": "200", **extra}


async def gateway_cli(gateway, *args: str, env: dict[str, str] | None = None,
                      timeout_s: float = 120) -> tuple[int, str, str]:
    """Run ``gateway <args>`` against ``gateway``'s database; (exit code, stdout, stderr)."""
    full_env = {**os.environ, "GATEWAY_DATABASE_URL": gateway.database_url, "GATEWAY_REDIS_URL": gateway.redis_url,
                "GATEWAY_CONFIG": str(TWO_PARTNERS_CONFIG), "GATEWAY_LOG_LEVEL": "warning",
                **gateway.extra_env, **(env or {})}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args, cwd=ROOT, env=full_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def fetch(database_url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def answers_between(ops, start: float, end: float) -> tuple[int, dict[object, int], float]:
    """(attempts sent in [start, end], their answers by status, the longest wait in seconds)."""
    sent = 0
    answers: dict[object, int] = {}
    longest = 0.0
    for op in ops:
        for status, (t0, t1) in zip(op.statuses, op.timings, strict=True):
            longest = max(longest, t1 - t0)
            if start <= t0 <= end:
                sent += 1
                answers[status] = answers.get(status, 0) + 1
    return sent, answers, longest


async def test_resize_one_to_two_to_one_under_load(spawn_gateway):
    gateway = await spawn_gateway(env=cluster_env(edges=1, shards=1))
    async with gateway.client(limits=LIMITS, timeout=15.0) as c:
        deposits = await create_players(c, 40, deposit_minor=1_000_000)
        load = PairLoad(c, list(deposits), workers=12, pairs_per_worker_max=5_000)
        task = asyncio.create_task(load.run())
        await asyncio.sleep(1.0)

        moves_started = time.monotonic()
        code, out, err = await gateway_cli(gateway, "shards", "resize", "2", "--group-size", "512")
        assert code == 0, err
        assert "resized to 2 shards: 2048 buckets moved in 4 groups" in out, out
        assert "group 4/4" in err, err
        await asyncio.sleep(1.0)  # load on two shards
        code, out, err = await gateway_cli(gateway, "shards", "status", "--json", "--interval-s", "0.5")
        assert code == 0, err
        status = json.loads(out)
        assert [(s["shard_id"], s["buckets"], s["answering"]) for s in status["shards"]] == [
            (0, 2048, True), (1, 2048, True)], status
        assert status["shards_wanted"] == 2 and all(s["ops_per_s"] > 0 for s in status["shards"]), status
        code, out, err = await gateway_cli(gateway, "shards", "resize", "1", "--group-size", "512")
        assert code == 0, err
        moves_ended = time.monotonic()
        await asyncio.sleep(1.0)
        load.stop.set()
        await asyncio.wait_for(task, timeout=60)

        ops = load.ops()
        sent, answers, longest = answers_between(ops, moves_started, moves_ended)
        errors = sum(n for s, n in answers.items() if s != 200)
        print(f"\n[resize 1->2->1] {sent} requests sent during the moves, {errors} error answers "
              f"({100 * errors / max(sent, 1):.2f}%), answers {answers}; longest wait {longest:.2f} s")
        assert all(s in (200, 503) or isinstance(s, str) for op in ops for s in op.statuses), answers
        await load.retry_unacked(c, concurrency=16, time_budget_s=30)
        assert not [op for op in ops if not op.acked], "requests never acknowledged"

    served = await fetch(gateway.database_url,
                         "SELECT shard_id, count(*) AS n FROM transactions GROUP BY shard_id ORDER BY shard_id")
    assert [r["shard_id"] for r in served] == [0, 1], "shard 1 served players between the resizes"
    moves = await fetch(gateway.database_url, "SELECT from_shard, to_shard, fenced, cardinality(buckets) AS n "
                                              "FROM shard_moves ORDER BY move_id")
    assert [(m["from_shard"], m["to_shard"], m["fenced"], m["n"]) for m in moves] == (
        [(0, 1, False, 512)] * 4 + [(1, 0, False, 512)] * 4)
    await books_balance(gateway.database_url, deposits, ops)
    # The supervisor stopped the emptied shard process.
    for _ in range(50):
        if len(gateway.children("_shard")) == 1:
            break
        await asyncio.sleep(0.1)
    assert len(gateway.children("_shard")) == 1


async def test_a_stopped_shard_is_fenced_when_its_buckets_move(spawn_gateway):
    gateway = await spawn_gateway(env=cluster_env(edges=1, shards=2, GATEWAY_CLUSTER__MOVE_RELEASE_TIMEOUT_MS="500",
                                                  GATEWAY_CLUSTER__CHANNEL_TIMEOUT_MS="3000"))
    async with gateway.client(limits=LIMITS, timeout=15.0) as c:
        deposits = await create_players(c, 30, deposit_minor=1_000_000)
        owners = {r["player_id"]: r["shard_id"] for r in await fetch(
            gateway.database_url, "SELECT DISTINCT player_id, shard_id FROM transactions")}
        victims = [p for p, s in owners.items() if s == 1]
        survivors = [p for p, s in owners.items() if s == 0]
        assert victims and survivors
        buckets = [r["bucket"] for r in await fetch(
            gateway.database_url, "SELECT bucket FROM shard_buckets WHERE shard_id = 1 ORDER BY bucket")]
        (victim_process,) = [p for p in gateway.children("_shard") if p.cmdline()[-1] == "1"]

        victim_process.suspend()  # SIGSTOP
        try:
            # A command the stopped shard will read, apply and try to commit when it wakes.
            probe = deposit_op(victims[0], 7)
            probe_task = asyncio.create_task(send(c, probe, "stopped"))
            await asyncio.sleep(0.2)
            stopped_at = time.monotonic()
            spec = f"{buckets[0]}-{buckets[-1]}" if buckets == list(range(buckets[0], buckets[-1] + 1)) else \
                ",".join(map(str, buckets))
            code, _, err = await gateway_cli(gateway, "shards", "move", "--buckets", spec, "--to", "0",
                                               "--group-size", "4096")
            assert code == 0, err
            assert "(fenced)" in err, err
            moved_in = time.monotonic() - stopped_at
            # Its players are served by shard 0 while it is still stopped.
            other = deposit_op(victims[-1], 3)
            assert await send_until_acked(c, other, "moved") is not None, other.statuses
            assert (await c.get(f"/v1/players/{survivors[0]}/balance")).status_code == 200
        finally:
            victim_process.resume()  # SIGCONT
        assert await probe_task is None and probe.statuses == [503], probe.statuses
        # Woken, the old owner applies the probe, its batch is refused by the fence, it exits.
        for _ in range(100):
            if not victim_process.is_running() or victim_process.status() == "zombie":
                break
            await asyncio.sleep(0.1)
        assert not victim_process.is_running() or victim_process.status() == "zombie", "the fenced shard stopped"
        assert await send_until_acked(c, probe, "retry") is not None, probe.statuses
        print(f"\n[SIGSTOP + move] {len(buckets)} buckets moved off the stopped shard in {moved_in:.2f} s (fenced)")

    log = gateway.log_path.read_text(errors="replace")
    assert "FenceLost" in log or "GW001" in log, "the old owner's batch was refused by fencing"
    rows = await fetch(gateway.database_url, "SELECT shard_id, amount_minor FROM transactions WHERE transaction_id = $1",
                       probe.transaction_id)
    assert [(r["shard_id"], r["amount_minor"]) for r in rows] == [(0, 7)], "stored once, by the new owner"
    moves = await fetch(gateway.database_url, "SELECT fenced FROM shard_moves")
    assert [m["fenced"] for m in moves] == [True]
    await books_balance(gateway.database_url, deposits, [probe, other])


async def test_move_refuses_bad_input_and_a_shard_that_is_not_running(spawn_gateway):
    gateway = await spawn_gateway(env=cluster_env(edges=1, shards=1))
    code, _, err = await gateway_cli(gateway, "shards", "move", "--buckets", "10-5", "--to", "0")
    assert code == 2 and "reversed" in err, err
    code, _, err = await gateway_cli(gateway, "shards", "move", "--buckets", "0-3", "--to", "5")
    assert code == 1 and "shard 5 is not running" in err and "Traceback" not in err, err
    code, _, err = await gateway_cli(gateway, "shards", "resize", "0")
    assert code == 2 and "Traceback" not in err, err
    async with gateway.client() as c:
        assert (await c.get("/readyz")).status_code == 200
