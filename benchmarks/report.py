"""Machine description, the markdown tables and the JSON result file."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

import asyncpg
import orjson

from benchmarks.stats import Summary

WORKLOAD_TITLES = {
    "uniform": "debit+credit, 100k players, closed loop",
    "hot": "debit+credit, 1 hot player, closed loop",
    "rate": "debit+credit, constant rate, open loop",
}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _mem_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        return round(kib / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        return 0.0


def _git_rev(repo: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


async def machine_info(pg_dsn: str, repo: Path) -> dict[str, object]:
    info: dict[str, object] = {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "mem_gib": _mem_gib(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "git_rev": _git_rev(repo),
    }
    try:
        con = await asyncpg.connect(pg_dsn)
        try:
            info["postgres"] = (await con.fetchval("SHOW server_version"))
            for name in ("synchronous_commit", "fsync", "wal_sync_method", "full_page_writes",
                         "shared_buffers", "commit_delay", "max_connections"):
                info[f"pg_{name}"] = await con.fetchval(f"SHOW {name}")
        finally:
            await con.close()
    except (OSError, asyncpg.PostgresError) as exc:
        info["postgres"] = f"unavailable: {exc}"
    return info


def _ms(v: float | None) -> str:
    return "inf" if v is None else f"{v:.2f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}%"


def results_table(results: list[Summary]) -> str:
    head = ("| workload | target | conns | offered/s | ok ops/s | p50 ms | p99 ms | p99.9 ms "
            "| errors | incomplete | gen CPU | server CPU | PG CPU | other CPU |")
    rows = [head, "|" + "---|" * 14]
    for r in results:
        offered = f"{r.offered_rate:.0f}" if r.offered_rate else "max"
        rows.append(
            f"| {r.workload} | {r.target} | {r.connections} | {offered} | {r.ops_per_s:.0f} "
            f"| {_ms(r.p50_ms)} | {_ms(r.p99_ms)} | {_ms(r.p999_ms)} | {r.error_count} "
            f"| {r.incomplete} | {_pct(r.cpu.generator_pct)} | {_pct(r.cpu.server_pct)} "
            f"| {_pct(r.cpu.postgres_pct)} | {_pct(r.cpu.other_pct)} |")
    return "\n".join(rows)


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def _label(r: Summary) -> str:
    return f"{r.workload} {r.offered_rate:.0f}/s" if r.offered_rate else r.workload


def comparison_table(results: list[Summary]) -> str:
    by = {(r.target, _label(r)): r for r in results}
    workloads = list(dict.fromkeys(_label(r) for r in results))
    rows = ["| workload | gateway ops/s | baseline ops/s | ops/s gw/bl | gateway p99 ms "
            "| baseline p99 ms | p99 gw/bl |", "|---|---|---|---|---|---|---|"]
    for w in workloads:
        g, b = by.get(("gateway", w)), by.get(("baseline", w))
        rows.append(
            f"| {w} | {f'{g.ops_per_s:.0f}' if g else '-'} | {f'{b.ops_per_s:.0f}' if b else '-'} "
            f"| {_ratio(g.ops_per_s if g else None, b.ops_per_s if b else None)} "
            f"| {_ms(g.p99_ms) if g else '-'} | {_ms(b.p99_ms) if b else '-'} "
            f"| {_ratio(g.p99_ms if g else None, b.p99_ms if b else None)} |")
    return "\n".join(rows)


def error_lines(results: list[Summary]) -> str:
    lines = []
    for r in results:
        if r.errors or r.checks:
            lines.append(f"- {r.target}/{r.workload}: errors {r.errors or '{}'}"
                         + (f"; checks {r.checks}" if r.checks else ""))
    return "\n".join(lines)


def write_json(path: Path, meta: dict[str, object], results: list[Summary]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "results": [r.to_dict() for r in results]}
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
