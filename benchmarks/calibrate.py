"""What does the load generator cost? ``python -m benchmarks.calibrate``

Runs the same drivers and request stream as ``benchmarks.run`` against ``nullserver`` (a
canned-answer server, far cheaper than any wallet) and prints the generator's CPU per
request and its CPU share at the open-loop rate and at closed-loop maximum. If the generator
needs X% of a core at rate R here, it needs about as much against a real server at R.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvloop

from benchmarks.cpu import CpuMeter
from benchmarks.drivers import run_closed, run_open
from benchmarks.httpload import Target, open_conns
from benchmarks.servers import REPO, VENV_BIN, ManagedServer, wait_ready
from benchmarks.stats import Recorder, summarize
from benchmarks.workloads import Rounds, new_run_id, player_ids


async def main_async(a: argparse.Namespace) -> None:
    server = ManagedServer(
        "nullserver",
        [str(VENV_BIN / "python"), "-m", "benchmarks.nullserver", "--port", str(a.port),
         "--max-s", str(20 + 3 * (a.duration_s + 2) * (len(a.rates) + 1))],
        {}, REPO / "benchmarks/results/nullserver.log")
    server.start()
    target = Target(f"http://127.0.0.1:{a.port}", "calibration")
    players = player_ids("cal-", 1000)
    try:
        await wait_ready(target, 20.0, server)
        runs: list[tuple[str, float | None]] = [("closed", None)] + [("open", r) for r in a.rates]
        print("| mode | connections | offered/s | achieved/s | gen CPU % of a core "
              "| gen CPU us/request | p50 ms | p99 ms | send lag p99 ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        for mode, rate in runs:
            n = a.connections if mode == "closed" else a.rate_connections
            conns = await open_conns(target, n)
            rec, meter = Recorder(), CpuMeter(server.pid)
            wl = Rounds(target, players, run_id=new_run_id())

            async def window(meter: CpuMeter = meter) -> None:
                await asyncio.sleep(1.05)
                meter.start()
                await asyncio.sleep(a.duration_s)

            w = asyncio.create_task(window())
            if mode == "closed":
                d = await run_closed(target, conns, wl, rec, duration_s=a.duration_s,
                                     warmup_s=1.0, drain_s=2.0)
            else:
                assert rate is not None
                d = await run_open(target, conns, wl, rec, rate=rate, duration_s=a.duration_s,
                                   warmup_s=1.0, drain_s=2.0)
            await w
            cpu = meter.stop()
            s = summarize(rec, target="null", workload="calibrate", mode=mode, connections=n,
                          duration_s=d, offered_rate=rate, cpu=cpu)
            per_req = 1e6 * cpu.generator_pct / 100.0 / max(s.ops_per_s, 1e-9)
            print(f"| {mode} | {n} | {rate or 'max'} | {s.ops_per_s:.0f} | "
                  f"{cpu.generator_pct:.0f}% | {per_req:.0f} | {s.p50_ms} | {s.p99_ms} | "
                  f"{s.send_lag_p99_ms} |", flush=True)
            await asyncio.sleep(1.0)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.calibrate", description=__doc__)
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--duration-s", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--rate-connections", type=int, default=128)
    p.add_argument("--rates", default="1000,5000,10000")
    a = p.parse_args(argv)
    a.rates = [float(x) for x in a.rates.split(",") if x]
    uvloop.run(main_async(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
