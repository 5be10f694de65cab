"""Run the weekend-peak load test and write its report: locust's HTML report (with its
charts), its CSV files and a one-page ``summary.md`` (throughput, latency percentiles,
errors by code, the ledger check).

    # one host: a locust master and --processes worker processes (locust's own flag)
    .venv/bin/python loadtests/run.py --host http://127.0.0.1:8080 \\
        --curve loadtests/curves/saturday.toml --seconds 300 --processes 2

    # several hosts: the master waits for --expect-workers workers started elsewhere with
    #   .venv/bin/locust -f loadtests/locustfile.py --worker --master-host <this host> --processes -1
    .venv/bin/python loadtests/run.py --host http://gateway:8080 --expect-workers 8 --master-bind-host 0.0.0.0

The run ends by itself (the curve's length); the exit code is 1 if locust saw a failed
request or check, or the ledger check failed. Reports go to ``--out`` (default
``var/loadtest/<UTC time>``). The ledger check is ``gateway verify-ledger`` against
``--database-url`` (or ``GATEWAY_DATABASE_URL``); without one it is reported as not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
from summary import render, request_counts

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_BIN = Path(sys.executable).parent


def scrape(host: str) -> Counter:
    """The gateway's request counters now (empty when /metrics does not answer)."""
    try:
        return request_counts(httpx.get(f"{host}/metrics", timeout=5.0).text)
    except httpx.HTTPError as exc:
        print(f"warning: could not read {host}/metrics: {exc}", file=sys.stderr)
        return Counter()


def ledger_check(database_url: str) -> tuple[bool, str]:
    env = {**os.environ, "GATEWAY_DATABASE_URL": database_url}
    gateway = VENV_BIN / "gateway"
    argv = [str(gateway), "verify-ledger"] if gateway.exists() else [sys.executable, "-m", "gateway", "verify-ledger"]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    return done.returncode == 0, done.stdout + done.stderr


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="http://127.0.0.1:8080", help="the gateway")
    p.add_argument("--curve", default=str(HERE / "curves" / "saturday.toml"), help="a weekend curve (curve.py)")
    p.add_argument("--seconds", type=float, default=None, help="compress the curve into this many seconds")
    p.add_argument("--processes", type=int, default=1, help="local worker processes (-1: one per core)")
    p.add_argument("--expect-workers", type=int, default=0, help="workers on other hosts to wait for")
    p.add_argument("--master-bind-host", default="127.0.0.1")
    p.add_argument("--master-bind-port", type=int, default=5557)
    p.add_argument("--out", default="", help="report folder (default var/loadtest/<UTC time>)")
    p.add_argument("--database-url", default=os.environ.get("GATEWAY_DATABASE_URL", ""),
                   help="the gateway's PostgreSQL, for the ledger check")
    p.add_argument("--locust-arg", action="append", default=[], help="passed to locust as it is (repeatable)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out or REPO / "var" / "loadtest" / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"))
    out.mkdir(parents=True, exist_ok=True)
    csv_prefix, html = out / "locust", out / "report.html"
    env = {**os.environ, "LOCUST_CURVE_FILE": str(Path(args.curve).resolve())}
    if args.seconds is not None:
        env["LOCUST_CURVE_SECONDS"] = str(args.seconds)
    argv = [str(VENV_BIN / "locust"), "-f", str(HERE / "locustfile.py"), "--headless", "--host", args.host,
            "--html", str(html), "--csv", str(csv_prefix), "--csv-full-history", "--only-summary",
            "--master-bind-host", args.master_bind_host, "--master-bind-port", str(args.master_bind_port)]
    if args.expect_workers:
        argv += ["--master", "--expect-workers", str(args.expect_workers)]
        if args.processes > 1 or args.processes == -1:
            print("note: with --expect-workers the local --processes are not started", file=sys.stderr)
    elif args.processes != 1:
        argv += ["--processes", str(args.processes)]
    argv += args.locust_arg
    before = scrape(args.host)
    print("running:", " ".join(argv), flush=True)
    started = time.monotonic()
    locust_exit = subprocess.run(argv, cwd=REPO, env=env, check=False).returncode
    duration_s = time.monotonic() - started
    after = scrape(args.host)
    ledger = ledger_check(args.database_url) if args.database_url else None
    page = render(title=f"Load test: {Path(args.curve).stem} against {args.host}", csv_prefix=csv_prefix,
                  before=before, after=after, duration_s=duration_s, ledger=ledger, locust_exit=locust_exit,
                  html_report=html)
    (out / "summary.md").write_text(page)
    print(page)
    print(f"reports: {out}/summary.md, {html}")
    return 0 if locust_exit == 0 and (ledger is None or ledger[0]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
