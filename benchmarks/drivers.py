"""Closed-loop and open-loop (constant-rate) drivers over a pool of ``HttpConn``.

Closed loop: every connection sends its next request as soon as the previous answer is in;
latency is answer time - send time. This finds the maximum throughput for N connections.

Open loop: request k is *scheduled* at ``t0 + k / rate`` whatever happened before. When it is
due it goes out on an idle connection, or waits in a backlog if all are busy. Its latency is
answer time - **scheduled** time, so time spent queued behind a slow answer counts
(no coordinated omission, as in wrk2 / HdrHistogram's corrected mode). A request still
unanswered or unsent at the end of the drain counts as incomplete (= infinite latency).

Both drivers stop by themselves: after ``warmup_s + duration_s`` no new request starts, and
anything still in flight ``drain_s`` later is aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from benchmarks.httpload import HttpConn, Target
from benchmarks.stats import Recorder
from benchmarks.workloads import Op, Workload

perf = time.perf_counter
TICK_MIN_S = 0.001


class _Pool:
    """Connections plus reconnection of the ones the server closed."""

    def __init__(self, target: Target, conns: list[HttpConn]) -> None:
        self.target = target
        self.conns = conns
        self.aborting = False
        self.reconnects = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def reconnect(self, ready: Callable[[HttpConn], None]) -> None:
        if self.aborting:
            return
        loop = asyncio.get_running_loop()

        async def again() -> None:
            for attempt in range(50):
                if self.aborting:
                    return
                try:
                    _, conn = await loop.create_connection(
                        HttpConn, self.target.host, self.target.port
                    )
                except OSError:
                    await asyncio.sleep(min(0.01 * 2**attempt, 1.0))
                    continue
                self.reconnects += 1
                self.conns.append(conn)
                ready(conn)
                return

        task = loop.create_task(again())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def abort(self) -> None:
        self.aborting = True
        for conn in self.conns:
            if conn.busy:
                conn.close()
        for conn in self.conns:
            conn.close()


async def run_closed(
    target: Target,
    conns: list[HttpConn],
    workload: Workload,
    rec: Recorder,
    *,
    duration_s: float,
    warmup_s: float = 0.0,
    drain_s: float = 5.0,
) -> float:
    """Closed loop; returns the measurement window length in seconds.

    Ends early when the workload is exhausted (``next_op`` returned None on every
    connection), which is how seeding uses it.
    """
    loop = asyncio.get_running_loop()
    pool = _Pool(target, conns)
    t0 = perf()
    window_start = t0 + warmup_s
    window_end = window_start + duration_s
    finished = loop.create_future()
    running = 0
    last_done = t0

    def retire() -> None:
        nonlocal running
        running -= 1
        if running == 0 and not finished.done():
            finished.set_result(None)

    def fire(conn: HttpConn) -> None:
        now = perf()
        op = workload.next_op() if now < window_end else None
        if op is None:
            retire()
            return
        send(conn, op, now)

    def send(conn: HttpConn, op: Op, sent: float) -> None:
        if conn.closed:  # closed by the server while idle: the op was not sent, retry it
            pool.reconnect(lambda c: send(c, op, perf()))
            return

        def done(status: int, body: bytes) -> None:
            nonlocal last_done
            t = perf()
            if status == 0 and pool.aborting:
                if sent >= window_start:
                    rec.incomplete += 1
                workload.on_done(op, 0, b"aborted")  # outcome unknown
                return
            last_done = t
            ok = rec.record(status, body, t - sent) if sent >= window_start else 200 <= status < 300
            if ok and window_start <= t <= window_end:
                rec.ok_in_window += 1
            workload.on_done(op, status, body)
            if status == 0:
                pool.reconnect(fire)
            else:
                fire(conn)

        conn.send(op.data, done)

    running = len(conns)
    for conn in list(conns):
        fire(conn)
    timeout = max(0.0, window_end - perf()) + drain_s
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(finished), timeout)
    exhausted_early = finished.done() and last_done < window_end
    pool.abort()
    return max(1e-6, last_done - window_start) if exhausted_early else duration_s


async def run_open(
    target: Target,
    conns: list[HttpConn],
    workload: Workload,
    rec: Recorder,
    *,
    rate: float,
    duration_s: float,
    warmup_s: float = 0.0,
    drain_s: float = 5.0,
) -> float:
    """Open loop at ``rate`` requests/s; returns the measurement window length in seconds."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    loop = asyncio.get_running_loop()
    pool = _Pool(target, conns)
    idle: list[HttpConn] = list(conns)
    backlog: deque[float] = deque()  # scheduled times of due requests waiting for a connection
    t0 = perf() + 0.05
    window_start = t0 + warmup_s
    window_end = window_start + duration_s
    total = int(rate * (warmup_s + duration_s))
    interval = 1.0 / rate
    next_k = 0  # index of the next request to schedule
    in_flight = 0
    all_done = loop.create_future()

    def check_done() -> None:
        if next_k >= total and not backlog and in_flight == 0 and not all_done.done():
            all_done.set_result(None)

    def dispatch() -> None:
        nonlocal next_k
        if pool.aborting:
            return
        now = perf()
        due = min(total, int((now - t0) * rate) + 1)
        while next_k < due:
            backlog.append(t0 + next_k * interval)
            next_k += 1
        while backlog and idle:
            op = workload.next_op()
            if op is None:
                break
            send(idle.pop(), op, backlog.popleft(), now)

    def send(conn: HttpConn, op: Op, sched: float, now: float) -> None:
        nonlocal in_flight
        if conn.closed:  # closed by the server while idle: the op was not sent, retry it
            in_flight += 1

            def resend(c: HttpConn) -> None:
                nonlocal in_flight
                in_flight -= 1
                send(c, op, sched, perf())

            pool.reconnect(resend)
            return
        in_window = sched >= window_start
        if in_window:
            rec.send_lag.append(now - sched)
        in_flight += 1

        def done(status: int, body: bytes) -> None:
            nonlocal in_flight
            in_flight -= 1
            t = perf()
            if status == 0 and pool.aborting:
                if in_window:
                    rec.incomplete += 1
                workload.on_done(op, 0, b"aborted")  # outcome unknown
                return
            ok = rec.record(status, body, t - sched) if in_window else 200 <= status < 300
            if ok and window_start <= t <= window_end:
                rec.ok_in_window += 1
            workload.on_done(op, status, body)
            if status == 0:
                pool.reconnect(became_idle)
            else:
                idle.append(conn)
            dispatch()
            check_done()

        conn.send(op.data, done)

    def became_idle(conn: HttpConn) -> None:
        idle.append(conn)
        dispatch()

    def tick() -> None:
        if pool.aborting:
            return
        dispatch()
        if next_k < total:
            # Event-loop timers have 1 ms resolution (libuv); a shorter delay rounds to 0 and
            # would spin the CPU. Requests due meanwhile also go out on every answer received.
            loop.call_later(max(TICK_MIN_S, t0 + next_k * interval - perf()), tick)
        else:
            check_done()

    loop.call_later(max(0.0, t0 - perf()), tick)
    timeout = (t0 - perf()) + warmup_s + duration_s + drain_s
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(all_done), timeout)
    # whatever is still queued (never sent) inside the window is incomplete too
    rec.incomplete += sum(1 for s in backlog if s >= window_start)
    rec.incomplete += max(0, total - next_k)  # never even scheduled (cannot happen normally)
    backlog.clear()
    pool.abort()
    return duration_s
