"""Fault tests: kill -9 under load, database connections dropped mid-flush, a database outage,
and retries of old keys after a restart or an eviction (docs/DESIGN.md sections 2 and 5).

Every test runs real ``gateway serve`` processes on databases of their own (``spawn_gateway``)
and checks, from the client's side and from PostgreSQL:
- nothing acknowledged is lost: every 200 is in the transactions table exactly once, with
  the balance that was answered;
- nothing is applied twice: a retry (same id, same body) answers ``replayed=true`` with the
  balance of the first answer, and every player's balance equals its deposits minus the
  acknowledged debits plus the acknowledged credits and refunds;
- the ledger invariants hold (``check_ledger``: balances equal entries, audit chain verifies).

Loads are bounded in count and time and talk to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import GatewayProcess, check_ledger
from tests.faultlib import (
    Op,
    PairLoad,
    ReadyProbe,
    TcpProxy,
    api_cash,
    check_acked_durable,
    create_players,
    credit_op,
    db_name,
    debit_op,
    deposit_op,
    duplicate_applications,
    expected_cash,
    log_grep,
    log_tail,
    metric,
    player_cash,
    rollback_op,
    send_until_acked,
    set_allow_connections,
    stored_transactions,
    terminate_backends,
)

pytestmark = pytest.mark.fault

LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64)


@contextlib.contextmanager
def gateway_log_on_failure(*processes: GatewayProcess):
    """Append the gateways' warnings/errors and log tails to a failing assertion."""
    try:
        yield
    except AssertionError as exc:
        parts = [str(exc)]
        for p in processes:
            parts.append(f"--- {p.log_path}: warnings and errors ---")
            parts.append(log_grep(p.log_path, '"level":"warning"', '"level":"error"', '"level":"critical"'))
            parts.append(f"--- {p.log_path}: tail ---")
            parts.append(log_tail(p.log_path, 2500))
        raise AssertionError("\n".join(parts)) from exc


async def restart(process: GatewayProcess) -> float:
    """Start ``process`` again on the same database and port; returns seconds to ready."""
    started = time.monotonic()
    await asyncio.to_thread(process.start, 60.0)
    return time.monotonic() - started


async def ack(client: httpx.AsyncClient, op: Op, phase: str = "setup") -> dict:
    data = await send_until_acked(client, op, phase)
    assert data is not None, f"{op.kind} {op.transaction_id} not acknowledged: {op.statuses} {op.refusal}"
    return data


async def assert_replays(client: httpx.AsyncClient, ops: list[Op], concurrency: int = 16) -> list[str]:
    """Re-send acknowledged ``ops``: each must answer 200 replayed=true with the first balance."""
    sem = asyncio.Semaphore(concurrency)
    problems: list[str] = []

    async def one(op: Op) -> None:
        async with sem:
            try:
                r = await client.post(op.path, json=op.body)
            except httpx.HTTPError as exc:
                problems.append(f"retry of {op.kind} {op.transaction_id}: {exc!r}")
                return
            if r.status_code != 200:
                problems.append(f"retry of {op.kind} {op.transaction_id} (acked cash={op.ack_cash}): "
                                f"{r.status_code} {r.text[:300]}")
                return
            data = r.json()
            if data["replayed"] is not True or data["cash_minor"] != op.ack_cash:
                problems.append(f"retry of {op.kind} {op.transaction_id}: replayed={data['replayed']} "
                                f"cash={data['cash_minor']}, first answer cash={op.ack_cash}")

    await asyncio.gather(*(one(op) for op in ops))
    return problems


async def assert_books(process: GatewayProcess, client: httpx.AsyncClient, deposits: dict[str, Op],
                       ops: list[Op], database_url: str | None = None) -> None:
    """Acked ops durable once, no double application, balances as the client saw them, ledger ok."""
    database_url = database_url or process.database_url
    problems = await check_acked_durable(database_url, list(deposits.values()) + ops)
    assert not problems, "acknowledged but not durable as answered:\n" + "\n".join(problems[:20])
    duplicates = await duplicate_applications(database_url)
    assert not duplicates, f"applied twice: {duplicates}"
    expected = expected_cash(deposits, ops)
    stored = await player_cash(database_url, list(expected))
    drift = {p: (stored.get(p), want) for p, want in expected.items() if stored.get(p) != want}
    assert not drift, f"player cash (stored, expected from acks) differs for {len(drift)}: {list(drift.items())[:10]}"
    for player in random.Random(1).sample(sorted(expected), min(20, len(expected))):
        assert await api_cash(client, player) == expected[player], player
    report = await check_ledger(database_url)
    assert report["ok"], report


# ---- 1. kill -9 under concurrent load ---------------------------------------------------------


async def test_kill9_under_load_then_retry_everything(spawn_gateway):
    gw = await spawn_gateway()
    with gateway_log_on_failure(gw):
        async with gw.client(limits=LIMITS, timeout=10.0) as c:
            deposits = await create_players(c, 200, deposit_minor=1_000_000)
            load = PairLoad(c, list(deposits), workers=32, pairs_per_worker_max=400)
            task = asyncio.create_task(load.run())
            await asyncio.sleep(2.0)
            in_flight = sum(1 for op in load.ops() if op.attempts > len(op.statuses))
            gw.kill(signal.SIGKILL)
            load.stop.set()
            await asyncio.wait_for(task, timeout=30)

        load_ops = load.ops()
        acked_in_load = [op for op in load_ops if op.acked]
        unacked = [op for op in load_ops if not op.acked]
        assert acked_in_load, "no request was acknowledged before the kill"

        restart_s = await restart(gw)
        print(f"\n[kill -9] {len(load.pairs)} pairs started, {len(acked_in_load)} ops acked, "
              f"{len(unacked)} unacked ({in_flight} in flight at the kill); restart to ready {restart_s:.2f} s")
        assert restart_s < 15.0, f"restart to ready took {restart_s:.2f} s (target 5 s)"

        async with gw.client(limits=LIMITS, timeout=10.0) as c:
            # Acknowledged before the kill: durable exactly as answered.
            problems = await check_acked_durable(gw.database_url, acked_in_load)
            assert not problems, "acked before kill -9 but not durable as answered:\n" + "\n".join(problems[:20])

            await load.retry_unacked(c, concurrency=32, time_budget_s=60)
            ops = load.ops()
            refused = [(op.kind, op.transaction_id, op.refusal) for op in ops if op.refusal]
            assert not refused, f"retries refused: {refused[:10]}"
            still = [(op.kind, op.transaction_id, op.statuses) for op in ops if not op.acked]
            assert not still, f"{len(still)} ops never acknowledged after the restart: {still[:10]}"
            durable_unanswered = sum(1 for op in ops if op.ack_phase == "retry" and op.ack_replayed)
            print(f"[kill -9] retried {len(unacked)}: {durable_unanswered} had committed before the kill "
                  f"(answered replayed), {len(unacked) - durable_unanswered} applied on retry")

            # Re-send acknowledged ones: replayed, same balance.
            rng = random.Random(3)
            sample = rng.sample(acked_in_load, min(300, len(acked_in_load)))
            retried_ok = [op for op in ops if op.ack_phase == "retry"]
            sample += rng.sample(retried_ok, min(100, len(retried_ok)))
            replay_problems = await assert_replays(c, sample)

            await assert_books(gw, c, deposits, ops)
            stored = await stored_transactions(gw.database_url, [op.transaction_id for op in ops])
            assert len(stored) == len(ops), "transactions stored for ids never sent, or ids missing"
            by_kind: dict[str, int] = {}
            for problem in replay_problems:
                kind = problem.split()[2]
                by_kind[kind] = by_kind.get(kind, 0) + 1
            assert not replay_problems, (
                f"{len(replay_problems)} of {len(sample)} retries of acknowledged requests did not replay "
                f"(by kind: {by_kind}):\n" + "\n".join(replay_problems[:10])
            )


# ---- 2. database connections dropped, database unreachable ---------------------------------


async def test_backends_terminated_during_flushes(spawn_gateway, services):
    gw = await spawn_gateway()
    database = db_name(gw.database_url)
    with gateway_log_on_failure(gw):
        async with gw.client(limits=LIMITS, timeout=30.0) as c:
            deposits = await create_players(c, 50, deposit_minor=1_000_000)
            retries_before = await metric(c, "gateway_batch_flush_retries_total")
            probe = ReadyProbe(gw.url).start()
            load = PairLoad(c, list(deposits), workers=16, pairs_per_worker_max=2_000)
            task = asyncio.create_task(load.run())
            terminated = []
            try:
                for _ in range(6):
                    await asyncio.sleep(0.4)
                    terminated.append(await terminate_backends(services.admin_database_url, database))
                await asyncio.sleep(0.5)
            finally:
                load.stop.set()
                await asyncio.wait_for(task, timeout=60)
                await probe.stop()
            retries = await metric(c, "gateway_batch_flush_retries_total") - retries_before
            ops = load.ops()
            sent = [op for op in ops if op.attempts]
            print(f"\n[terminate] backends terminated per round {terminated}; {len(sent)} requests, "
                  f"{retries:.0f} flush retries")
            assert sum(terminated) > 0, "no gateway backend was terminated: the fault was not injected"

            # Each request in flight waited for the retried batch: its one and only answer is 200.
            not_ok = [(op.kind, op.transaction_id, op.statuses, op.refusal) for op in sent if op.statuses != [200]]
            assert not not_ok, f"{len(not_ok)} requests not answered 200 at the first attempt: {not_ok[:10]}"
            unsent = [op for op in ops if not op.attempts]
            assert not unsent, f"{len(unsent)} wins never sent (their bet failed)"
            assert not probe.not_ready, f"/readyz not 200 while backends were terminated: {probe.not_ready[:10]}"
            problems = await assert_replays(c, random.Random(5).sample(sent, min(100, len(sent))))
            assert not problems, "\n".join(problems[:20])
            await assert_books(gw, c, deposits, ops)


async def run_outage(gw: GatewayProcess, label: str, inject, heal, database_url: str | None = None,
                     outage_s_target: float = 1.5) -> tuple[list[Op], ReadyProbe, float, float]:
    """Bounded load; ``inject()`` makes PostgreSQL unreachable for ``outage_s_target``, then ``heal()``.

    During the outage requests wait or get a retryable 503, nothing else; afterwards the
    same process serves again (no restart), every request retried with its id succeeds once.
    Returns (the load's ops, the /readyz probe, monotonic time of the cut, of the heal).
    """
    async with gw.client(limits=LIMITS, timeout=30.0) as c:
        deposits = await create_players(c, 50, deposit_minor=1_000_000)
        probe = ReadyProbe(gw.url).start()
        load = PairLoad(c, list(deposits), workers=8, pairs_per_worker_max=1_000)
        task = asyncio.create_task(load.run())
        try:
            await asyncio.sleep(0.5)
            healed = False
            try:
                outage_started = time.monotonic()
                detail = await inject()
                await asyncio.sleep(outage_s_target)
            finally:
                outage_ended = time.monotonic()
                await heal()
                healed = True
            outage_s = outage_ended - outage_started
            await asyncio.sleep(1.5)  # served again after the outage
        finally:
            if not healed:
                await heal()
            load.stop.set()
            await asyncio.wait_for(task, timeout=60)
            await probe.stop()
        ops = load.ops()
        answers: dict[object, int] = {}
        for op in ops:
            for status in op.statuses:
                answers[status] = answers.get(status, 0) + 1
        print(f"\n[{label}] {outage_s:.2f} s unreachable ({detail}); answers during the run: {answers}; "
              f"/readyz not 200: {len(probe.not_ready)} of {len(probe.answers)}")

        # During the outage requests wait or get a retryable 503; nothing else.
        bad = [(op.kind, op.transaction_id, op.statuses, op.refusal) for op in ops
               if op.refusal or any(s not in (200, 503) for s in op.statuses)]
        assert not bad, f"{len(bad)} requests got a non-retryable answer: {bad[:10]}"
        # The same process serves again: nothing needed a restart.
        r = await c.get("/readyz")
        assert r.status_code == 200, f"/readyz after the outage: {r.status_code} {r.text}"
        await load.retry_unacked(c, concurrency=16, time_budget_s=30)
        missing = [(op.kind, op.transaction_id, op.statuses) for op in ops if not op.acked]
        assert not missing, f"{len(missing)} requests never acknowledged after the outage: {missing[:10]}"
        fresh = deposit_op(next(iter(deposits)), 1)
        await ack(c, fresh, "after")
        problems = await assert_replays(c, random.Random(6).sample(ops, min(100, len(ops))))
        assert not problems, "\n".join(problems[:20])
        await assert_books(gw, c, deposits, ops + [fresh], database_url=database_url)
    return ops, probe, outage_started, outage_ended


async def test_database_refusing_connections_for_two_seconds(spawn_gateway, services):
    """ALTER DATABASE .. ALLOW_CONNECTIONS false + terminate: every reconnect is refused by
    PostgreSQL itself (SQLSTATE 55000) until connections are allowed again."""
    gw = await spawn_gateway()
    database = db_name(gw.database_url)
    admin = services.admin_database_url

    async def inject() -> str:
        await set_allow_connections(admin, database, False)
        return f"{await terminate_backends(admin, database)} backends terminated, connections not allowed"

    async def heal() -> None:
        await set_allow_connections(admin, database, True)

    with gateway_log_on_failure(gw):
        await run_outage(gw, "refusing", inject, heal)


async def test_database_network_outage_for_two_seconds(spawn_gateway, services):
    """The gateway reaches PostgreSQL through a TCP proxy: every connection is reset and new
    ones are refused (ECONNREFUSED) for ~1.5 s, as when the server restarts or the network drops."""
    parts = urlsplit(services.admin_database_url)
    if not parts.hostname or "host=" in parts.query:
        pytest.skip("PostgreSQL is not reachable over TCP here")
    direct_url = await services.create_database()
    proxy = await TcpProxy(parts.hostname, parts.port or 5432).accept()
    netloc = parts.netloc.rsplit("@", 1)
    proxied = urlunsplit((parts.scheme, (netloc[0] + "@" if len(netloc) == 2 else "") + f"127.0.0.1:{proxy.port}",
                          urlsplit(direct_url).path, parts.query, parts.fragment))
    gw = None
    try:
        gw = await spawn_gateway(database_url=proxied)

        async def inject() -> str:
            await proxy.refuse()
            return f"{proxy.cut()} proxied sockets reset, new connections refused"

        async def heal() -> None:
            if proxy._server is None:
                await proxy.accept()

        with gateway_log_on_failure(gw):
            ops, probe, cut, healed = await run_outage(gw, "network", inject, heal, database_url=direct_url,
                                                       outage_s_target=3.0)
            # Failing fast (docs/ARCHITECTURE.md): callers got a retryable 503 while the database
            # was still unreachable, instead of waiting for it to come back ...
            answered_503 = [(sent, done) for op in ops for status, (sent, done) in zip(op.statuses, op.timings)
                            if status == 503 and cut <= sent and done < healed]
            assert answered_503, "no request was answered 503 during the outage: callers waited for the database"
            # ... /readyz said not ready during the outage and ready again after it.
            during = [status for at, status in probe.answers if cut <= at < healed]
            after = [status for at, status in probe.answers if at >= healed]
            assert any(status == 503 for status in during), f"/readyz stayed ready during the outage: {during}"
            assert after and after[-1] == 200, f"/readyz not ready again after the outage: {after[-10:]}"
            first_503 = min(done for _, done in answered_503) - cut
            not_ready = [at for at, status in probe.answers if cut <= at and status != 200]
            ready_again = [at for at, status in probe.answers if at >= healed and status == 200]
            print(f"[network] first 503 {first_503:.2f} s after the cut; /readyz not ready "
                  f"{(min(not_ready) - cut) if not_ready else float('nan'):.2f} s after the cut, ready again "
                  f"{(min(ready_again) - healed) if ready_again else float('nan'):.2f} s after the heal")
    finally:
        if gw is not None:
            gw.kill(signal.SIGKILL)
        await proxy.close()
        await services.drop_database(direct_url)


# ---- 3. retries of old keys: cold after a restart, evicted ------------------------------------


async def test_retry_after_restart_with_cold_player(spawn_gateway):
    gw = await spawn_gateway()
    with gateway_log_on_failure(gw):
        async with gw.client() as c:
            deposits = await create_players(c, 1, deposit_minor=10_000)
            (player,) = deposits
            bet1 = debit_op(player, 250, "r1")
            await ack(c, bet1)
            assert bet1.ack_cash == 9_750 and bet1.ack_replayed is False
            bet2 = debit_op(player, 100, "r2")
            await ack(c, bet2)
            assert bet2.ack_cash == 9_650
        gw.kill(signal.SIGKILL)
        restart_s = await restart(gw)
        print(f"\n[cold retry] restart to ready {restart_s:.2f} s")
        async with gw.client() as c:
            # The first request after the restart is the retry itself: the player is cold.
            problems = await assert_replays(c, [bet1])
            assert not problems, "\n".join(problems)
            assert await api_cash(c, player) == 9_650
            problems = await assert_replays(c, [deposits[player], bet2])
            assert not problems, "\n".join(problems)
            # The open bet survived the restart: a rollback refunds it, once.
            rb = rollback_op(player, bet2)
            data = await ack(c, rb)
            assert data["replayed"] is False and data["cash_minor"] == 9_750, data
            win = credit_op(player, 400, "r1", bet1.transaction_id)
            data = await ack(c, win)
            assert data["replayed"] is False and data["cash_minor"] == 10_150, data
        gw.kill(signal.SIGKILL)
        await restart(gw)
        async with gw.client() as c:
            problems = await assert_replays(c, [rb, win, bet1, bet2, deposits[player]])
            assert not problems, "\n".join(problems)
            assert await api_cash(c, player) == 10_150
            await assert_books(gw, c, deposits, [bet1, bet2, rb, win])


async def test_retry_bet_and_win_together_after_restart(spawn_gateway):
    """After a restart every player is resident again but none of its old keys is in memory.
    A provider re-sends an acknowledged bet and, a few milliseconds later, its win: both must
    replay. (The re-sent bet is first applied as new, then caught by the unique constraint
    and repaired; the win arrives while that repair is under way.)"""
    gw = await spawn_gateway()
    with gateway_log_on_failure(gw):
        async with gw.client(limits=LIMITS, timeout=30.0) as c:
            deposits = await create_players(c, 100, deposit_minor=100_000)
            pairs: dict[str, tuple[Op, Op]] = {}
            sem = asyncio.Semaphore(16)

            async def play(player: str) -> None:
                async with sem:
                    bet = debit_op(player, 100, "r1")
                    await ack(c, bet)
                    win = credit_op(player, 50, "r1", bet.transaction_id)
                    await ack(c, win)
                    pairs[player] = (bet, win)

            await asyncio.gather(*(play(p) for p in deposits))
        gw.kill(signal.SIGKILL)
        await restart(gw)
        async with gw.client(limits=httpx.Limits(max_connections=256), timeout=30.0) as c:
            await asyncio.gather(*(api_cash(c, p) for p in deposits))  # resident, keys cold
            problems: list[str] = []

            async def resend(player: str, delay_s: float) -> None:
                bet, win = pairs[player]

                async def later(op: Op) -> list[str]:
                    await asyncio.sleep(delay_s)
                    return await assert_replays(c, [op])

                for found in await asyncio.gather(assert_replays(c, [bet]), later(win)):
                    problems.extend(f"[win {delay_s * 1000:.0f} ms after its bet] {p}" for p in found)

            await asyncio.gather(*(resend(p, (i % 8) * 0.002) for i, p in enumerate(sorted(deposits))))
            ops = [op for pair in pairs.values() for op in pair]
            await assert_books(gw, c, deposits, ops)
            assert not problems, f"{len(problems)} of {len(ops)} retries did not replay:\n" + "\n".join(problems[:10])


async def test_new_win_in_a_repaired_batch_is_paid(spawn_gateway, services):
    """In-process shard on a restarted gateway's database, so that two commands land in the
    same group deterministically: a retry of an old deposit (not in memory after the
    restart, so applied again and caught by the unique constraint) and a NEW win for an open
    bet of the same player. The repair re-applies both: the deposit must replay and the win
    must be paid once (docs/DESIGN.md section 5: a retry never changes the fate of other requests)."""
    from gateway.cluster.backends import open_pool
    from gateway.config import load_settings
    from gateway.ledger.store import LedgerStore
    from gateway.shards.commands import Code, Credit, Debit, Deposit, GetBalance
    from gateway.shards.shard import Shard

    gw = await spawn_gateway()
    async with gw.client() as c:
        deposits = await create_players(c, 3, deposit_minor=10_000)
    gw.kill(signal.SIGKILL)  # the in-process shard below is the only writer

    settings = load_settings(environ={"GATEWAY_DATABASE_URL": gw.database_url, "GATEWAY_REDIS_URL": services.redis_url})
    pool = await open_pool(settings, gw.database_url, size_max=4)
    shard = Shard(settings, LedgerStore(pool, settings.shard.shard_id), claimed_by="test_faults")
    await shard.start()
    problems: list[str] = []
    ops: list[Op] = []
    try:
        for player, dep in sorted(deposits.items()):
            await shard.execute(GetBalance(partner_id="demo", player_id=player))  # resident; its keys are not
            bet = debit_op(player, 100, "r1")
            result = await shard.execute(Debit(scope="demo:api", partner_id="demo", round_id="r1", game_id="g-fault", **{
                k: bet.body[k] for k in ("transaction_id", "player_id", "currency", "amount_minor")}))
            assert result.code is Code.OK, result
            bet.acked, bet.ack_cash = True, result.cash_minor
            win = credit_op(player, 40, "r1", bet.transaction_id)
            # Both submitted in the same tick: one group, one batch.
            retry = shard.submit(Deposit(scope="demo:api", partner_id="demo", **{k: dep.body[k] for k in (
                "transaction_id", "player_id", "currency", "amount_minor")}))
            fresh = shard.submit(Credit(scope="demo:api", transaction_id=win.transaction_id, partner_id="demo", player_id=player,
                                        currency="EUR", amount_minor=40, round_id="r1", game_id="g-fault",
                                        bet_transaction_id=bet.transaction_id, round_closed=True))
            r_retry, r_win = await asyncio.wait_for(asyncio.gather(retry, fresh), timeout=30)
            if r_retry.code is not Code.OK or not r_retry.replayed or r_retry.cash_minor != dep.ack_cash:
                problems.append(f"deposit retry {dep.transaction_id}: {r_retry}")
            if r_win.code is not Code.OK or r_win.replayed or r_win.cash_minor != bet.ack_cash + 40:
                problems.append(f"new win {win.transaction_id} for open bet {bet.transaction_id} "
                                f"(cash after bet {bet.ack_cash}): {r_win.code.value} {r_win.detail!r} "
                                f"cash={r_win.cash_minor}")
            else:
                win.acked, win.ack_cash = True, r_win.cash_minor
            ops += [bet, win]
    finally:
        await shard.stop()
        await pool.close()
    await restart(gw)
    with gateway_log_on_failure(gw):
        async with gw.client() as c:
            assert not problems, f"{len(problems)} wrong answers:\n" + "\n".join(problems)
            await assert_books(gw, c, deposits, ops)


EVICTION_ENV = {
    # The smallest bounds Settings.check() accepts with these ratios: players >= 2 x prefetch,
    # keys >= 4 x batch, inbox >= batch.
    "GATEWAY_SHARD__PREFETCH_PLAYERS_MAX": "8",
    "GATEWAY_SHARD__PLAYERS_RESIDENT_MAX": "16",
    "GATEWAY_SHARD__BATCH_SIZE_MAX": "16",
    "GATEWAY_SHARD__KEYS_RESIDENT_MAX": "64",
    "GATEWAY_SHARD__INBOX_DEPTH_MAX": "1000",
}


async def test_retry_after_eviction(spawn_gateway):
    gw = await spawn_gateway(env=EVICTION_ENV)
    with gateway_log_on_failure(gw):
        async with gw.client() as c:
            deposits: dict[str, Op] = {}
            ops: list[Op] = []

            async def go(op: Op) -> dict:
                data = await ack(c, op)
                ops.append(op)
                return data

            # The anchor player stays resident (touched often) while its keys age out.
            anchor = (await create_players(c, 1, deposit_minor=100_000))
            deposits.update(anchor)
            (h,) = anchor
            h_bet1 = debit_op(h, 100, "rh1")
            await go(h_bet1)
            h_win1 = credit_op(h, 50, "rh1", h_bet1.transaction_id)
            await go(h_win1)
            h_bet2 = debit_op(h, 70, "rh2")
            await go(h_bet2)
            h_rb2 = rollback_op(h, h_bet2)
            await go(h_rb2)

            # Old players: a settled round and an open bet each; far more than stay resident.
            olds: list[dict[str, Op]] = []
            sem = asyncio.Semaphore(4)

            async def old_player() -> None:
                async with sem:
                    new = await create_players(c, 1, deposit_minor=10_000, concurrency=1)
                    deposits.update(new)
                    (p,) = new
                    bet_a = debit_op(p, 100, "ra")
                    await go(bet_a)
                    win_a = credit_op(p, 30, "ra", bet_a.transaction_id)
                    await go(win_a)
                    bet_b = debit_op(p, 200, "rb")
                    await go(bet_b)
                    olds.append({"player": p, "dep": new[p], "bet_a": bet_a, "win_a": win_a, "bet_b": bet_b})
                    await api_cash(c, h)  # keep the anchor most recently used

            await asyncio.gather(*(old_player() for _ in range(48)))
            olds.sort(key=lambda o: o["dep"].transaction_id)
            resident = await metric(c, "gateway_shard_players_resident")
            keys = await metric(c, "gateway_shard_keys_resident")
            print(f"\n[eviction] after {len(olds)} old players: players resident {resident:.0f}, keys resident {keys:.0f}")
            assert resident <= 16 + 8, "players were not evicted: the test does not exercise eviction"

            failures: list[str] = []

            def failed(path: str, problems: list[str]) -> None:
                failures.extend(f"[{path}] {p}" for p in problems)

            # (a) resident player, keys evicted from memory: the retry must find its stored
            # outcome (a re-applied write is caught by the unique constraint and repaired).
            conflicts_before = await metric(c, "gateway_idempotency_key_conflicts_total")
            await api_cash(c, h)
            for op in (deposits[h], h_bet1, h_win1, h_bet2, h_rb2):
                failed("resident player, evicted key", await assert_replays(c, [op]))
            conflicts = await metric(c, "gateway_idempotency_key_conflicts_total") - conflicts_before
            print(f"[eviction] resident-player retries caused {conflicts:.0f} key-conflict repairs")
            h_cash = await api_cash(c, h)
            if h_cash != 100_000 - 100 + 50:
                failures.append(f"anchor cash {h_cash} after retries, expected {100_000 - 100 + 50}")

            # (b) evicted players: the prefetch must find the stored outcomes, for one retry
            # alone and for several retries of the same player arriving together.
            first, sixth = olds[0], olds[5]
            failed("evicted player, one retry", await assert_replays(c, [first["win_a"]]))
            failed("resident again, evicted key", await assert_replays(c, [first["bet_a"]]))
            failed("evicted player, several retries at once",
                   await assert_replays(c, [sixth["dep"], sixth["bet_a"], sixth["bet_b"], sixth["win_a"]]))

            # (c) rollback of an old open bet of an evicted player refunds once.
            second = olds[1]
            rb = rollback_op(second["player"], second["bet_b"])
            data = await go(rb)
            assert data["replayed"] is False and data["cash_minor"] == second["bet_b"].ack_cash + 200, data
            failed("fresh rollback retried", await assert_replays(c, [rb]))
            # ... also when the same rollback arrives twice at once.
            third = olds[2]
            rb3 = rollback_op(third["player"], third["bet_b"])
            twins = await asyncio.gather(*(c.post(rb3.path, json=rb3.body) for _ in range(2)))
            assert [r.status_code for r in twins] == [200, 200], [r.text for r in twins]
            assert sorted(r.json()["replayed"] for r in twins) == [False, True], [r.text for r in twins]
            assert len({r.json()["cash_minor"] for r in twins}) == 1, [r.text for r in twins]
            rb3.acked, rb3.ack_cash = True, twins[0].json()["cash_minor"]
            ops.append(rb3)
            # A rollback of an old settled bet changes nothing.
            fourth = olds[3]
            r = await c.post("/v1/wallet/rollback", json=rollback_op(fourth["player"], fourth["bet_a"]).body)
            assert r.status_code == 409 and r.json()["code"] == "transaction_settled", r.text

            # Age the rollbacks out, then retry them cold.
            await asyncio.gather(*(old_player() for _ in range(24)))
            for op in (rb, rb3, first["win_a"]):
                failed("evicted player, one retry", await assert_replays(c, [op]))

        gw.kill(signal.SIGKILL)
        restart_s = await restart(gw)
        print(f"[eviction] restart to ready {restart_s:.2f} s")
        async with gw.client() as c:
            for op in (rb, rb3, second["bet_b"], h_win1):
                failed("after restart, one retry", await assert_replays(c, [op]))
            failed("after restart, several retries at once",
                   await assert_replays(c, [first["dep"], first["bet_a"], first["bet_b"], first["win_a"]]))
            # An old open bet is still settled by its win after the restart.
            fifth = olds[4]
            win_b = credit_op(fifth["player"], 500, "rb", fifth["bet_b"].transaction_id)
            data = await ack(c, win_b)
            ops.append(win_b)
            assert data["replayed"] is False and data["cash_minor"] == fifth["bet_b"].ack_cash + 500, data
            stored = await stored_transactions(gw.database_url, [second["bet_b"].transaction_id, third["bet_b"].transaction_id])
            for bet in (second["bet_b"], third["bet_b"]):
                assert stored[bet.transaction_id][0]["bet_state"] == "rolled_back", stored
            refunds = await stored_transactions(gw.database_url, [rb.transaction_id, rb3.transaction_id])
            assert all(len(v) == 1 for v in refunds.values()) and len(refunds) == 2, refunds

            assert not failures, "retries of old keys did not replay:\n" + "\n".join(failures)
            await assert_books(gw, c, deposits, ops)


async def test_fenced_shard_acknowledges_nothing_and_exits(spawn_gateway):
    """Another owner took the shard's lease (epoch bumped): the old process must not commit.

    docs/DESIGN.md section 6: batches commit only while the shard holds its epoch; section 8: a
    batch that cannot be fenced stops the shard loudly and the supervisor restarts it.
    """
    import asyncpg

    from gateway.app import SHARD_FAILED_EXIT_CODE

    gw = await spawn_gateway()
    async with gw.client() as client:
        player = next(iter(await create_players(client, 1, 10_000)))
        conn = await asyncpg.connect(gw.database_url)
        try:
            await conn.execute("UPDATE shard_leases SET epoch = epoch + 1 WHERE shard_id = 0")
            op = debit_op(player, 100, "r-fenced")
            r = await client.post(op.path, json=op.body)
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "unavailable"
            assert gw.proc.wait(timeout=10) == SHARD_FAILED_EXIT_CODE
            stored = await conn.fetchval(
                "SELECT count(*) FROM transactions WHERE transaction_id = $1", op.body["transaction_id"]
            )
            assert stored == 0
        finally:
            await conn.close()
    # The restarted process claims a newer epoch and serves again; the debit can be retried.
    await restart(gw)
    async with gw.client() as client:
        r = await client.post(op.path, json=op.body)
        assert r.status_code == 200, r.text
        assert r.json()["replayed"] is False
