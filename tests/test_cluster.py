"""The process model: a supervisor, edge processes and shard processes (docs/ARCHITECTURE.md,
"Processes"; issue "Edge processes, one process per shard").

Behaviour is asserted; recovery times are measured and printed (the benchmark reports them),
never asserted:
- players are spread over every shard process by their bucket, and everything works the
  same as in one process (money, replays, the ledger and every shard's audit chain);
- kill -9 of one shard process under load: the other shard keeps serving its players; the
  killed shard's players get retryable answers, then are served again after the restart;
- kill -9 of an edge: callers it had in flight retry with the same ids, nothing is lost or
  doubled, and the edge comes back;
- SIGTERM: edges finish their requests, shards commit, the supervisor exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import httpx
import pytest

from tests.conftest import check_ledger
from tests.faultlib import (
    PairLoad,
    books_balance,
    check_acked_durable,
    create_players,
    deposit_op,
    send,
)

pytestmark = pytest.mark.fault

LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64)


def cluster_env(edges: int, shards: int) -> dict[str, str]:
    return {"GATEWAY_CLUSTER__SINGLE_PROCESS": "false", "GATEWAY_CLUSTER__EDGES": str(edges),
            "GATEWAY_CLUSTER__SHARDS": str(shards)}


async def shard_of_players(database_url: str, players: list[str]) -> dict[str, int]:
    """Which shard each player's transactions were written by."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT player_id, shard_id FROM transactions WHERE player_id = ANY($1::text[])", players)
    finally:
        await conn.close()
    return {r["player_id"]: r["shard_id"] for r in rows}


async def test_players_are_spread_over_the_shard_processes(spawn_gateway):
    gateway = await spawn_gateway(env=cluster_env(edges=2, shards=2))
    assert len(gateway.children("_shard")) == 2 and len(gateway.children("_edge")) == 2
    async with gateway.client(limits=LIMITS) as c:
        deposits = await create_players(c, 40, deposit_minor=10_000)
        load = PairLoad(c, list(deposits), workers=8, pairs_per_worker_max=10)
        await load.run()
        ops = load.ops()
        assert all(op.acked for op in ops), [(op.kind, op.statuses) for op in ops if not op.acked][:5]
        for op in ops[:10]:  # replays answer from the owning shard's stored outcome
            r = await c.post(op.path, json=op.body)
            assert r.status_code == 200 and r.json()["replayed"] is True, r.text
        # any edge's /metrics shows the shard processes' metrics too (multiprocess mode)
        metrics = (await c.get("/metrics")).text
        for shard in ("0", "1"):
            assert f'gateway_batch_size_commands_count{{shard="{shard}"}}' in metrics, metrics[:2000]
    shards = await shard_of_players(gateway.database_url, list(deposits))
    assert set(shards.values()) == {0, 1}, shards
    report = await check_ledger(gateway.database_url)
    assert report["ok"] and set(report["audit_chains"]) == {"0", "1"}, report
    await books_balance(gateway.database_url, deposits, ops)


async def test_kill9_of_a_shard_process_under_load(spawn_gateway):
    gateway = await spawn_gateway(env=cluster_env(edges=1, shards=2))
    async with gateway.client(limits=LIMITS, timeout=15.0) as c:
        deposits = await create_players(c, 30, deposit_minor=1_000_000)
        shards = await shard_of_players(gateway.database_url, list(deposits))
        victims = [p for p, s in shards.items() if s == 1]
        survivors = [p for p, s in shards.items() if s == 0]
        assert victims and survivors

        load = PairLoad(c, list(deposits), workers=12, pairs_per_worker_max=2_000)
        task = asyncio.create_task(load.run())
        await asyncio.sleep(1.0)
        (victim_process,) = [p for p in gateway.children("_shard") if p.cmdline()[-1] == "1"]
        killed_at = time.monotonic()
        victim_process.kill()
        # During the outage the other shard's players are served.
        probe_ok: list[float] = []
        served_again = None
        while time.monotonic() - killed_at < 20:
            r_survivor = await c.get(f"/v1/players/{survivors[0]}/balance")
            assert r_survivor.status_code == 200, r_survivor.text
            probe = deposit_op(victims[0], 1)
            data = await send(c, probe, "probe")
            assert probe.statuses[-1] in (200, 503), probe.statuses
            if data is not None:
                served_again = time.monotonic() - killed_at
                break
            probe_ok.append(time.monotonic() - killed_at)
            await asyncio.sleep(0.05)
        assert served_again is not None, "the killed shard's players were never served again"
        await asyncio.sleep(0.5)
        load.stop.set()
        await asyncio.wait_for(task, timeout=60)
        ops = load.ops()
        answers: dict[object, int] = {}
        for op in ops:
            for status in op.statuses:
                answers[status] = answers.get(status, 0) + 1
        print(f"\n[kill -9 shard] its players served again {served_again:.2f} s after the kill; "
              f"answers during the run: {answers}")
        assert all(s in (200, 503) or isinstance(s, str) for op in ops for s in op.statuses), answers
        await load.retry_unacked(c, concurrency=16, time_budget_s=30)
        missing = [op for op in ops if not op.acked]
        assert not missing, f"{len(missing)} requests never acknowledged"
    await books_balance(gateway.database_url, deposits, ops + [probe])


async def test_kill9_of_an_edge_process_under_load(spawn_gateway):
    gateway = await spawn_gateway(env=cluster_env(edges=2, shards=1))
    async with gateway.client(limits=LIMITS, timeout=15.0) as c:
        deposits = await create_players(c, 20, deposit_minor=1_000_000)
    # a fresh client per worker connection set, so some of its connections land on the victim
    async with gateway.client(limits=LIMITS, timeout=15.0) as c:
        load = PairLoad(c, list(deposits), workers=16, pairs_per_worker_max=2_000)
        task = asyncio.create_task(load.run())
        await asyncio.sleep(1.0)
        edges = gateway.children("_edge")
        edges[0].kill()
        await asyncio.sleep(1.5)
        load.stop.set()
        await asyncio.wait_for(task, timeout=60)
    for _ in range(200):  # the supervisor restarts it within 20 s
        if len(gateway.children("_edge")) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(gateway.children("_edge")) == 2, "the killed edge was not restarted"
    ops = load.ops()
    errors = sum(1 for op in ops for s in op.statuses if isinstance(s, str))
    print(f"\n[kill -9 edge] {len(ops)} requests, {errors} transport errors on the way")
    async with gateway.client(limits=LIMITS, timeout=15.0) as c:
        await load.retry_unacked(c, concurrency=16, time_budget_s=30)
    assert not [op for op in ops if not op.acked]
    await books_balance(gateway.database_url, deposits, ops)


async def test_sigterm_drains_and_exits_cleanly(spawn_gateway):
    gateway = await spawn_gateway(env=cluster_env(edges=1, shards=2))
    async with gateway.client(limits=LIMITS, timeout=15.0) as c:
        deposits = await create_players(c, 10, deposit_minor=1_000_000)
        load = PairLoad(c, list(deposits), workers=8, pairs_per_worker_max=2_000)
        task = asyncio.create_task(load.run())
        await asyncio.sleep(1.0)
        started = time.monotonic()
        assert gateway.proc is not None
        gateway.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(gateway.proc.wait, 60)
        stopped_s = time.monotonic() - started
        load.stop.set()
        await asyncio.wait_for(task, timeout=60)
    assert code == 0, code
    assert not gateway.children("_shard") if gateway.proc.poll() is None else True
    print(f"\n[SIGTERM] the cluster stopped in {stopped_s:.2f} s")
    ops = [op for op in load.ops() if op.acked]
    problems = await check_acked_durable(gateway.database_url, list(deposits.values()) + ops)
    assert not problems, problems[:10]
    report = await check_ledger(gateway.database_url)
    assert report["ok"], report
