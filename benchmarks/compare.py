"""A/B comparison of two gateway source trees: ``python -m benchmarks.compare --help``.

Method:
  1. each tree gets its own database (``<prefix><label>``, created if missing by
     ``benchmarks.run``) and runs its own code and migrations: the gateway command is
     ``sh -c 'cd TREE && exec env GATEWAY_MIGRATE_ON_START=1 PYTHON -m gateway serve'``, and
     ``python -m`` puts TREE first on ``sys.path`` (checked up front: ``gateway.__file__``
     must lie inside TREE);
  2. preparation, not measured: one short ``benchmarks.run`` per tree seeds its database if
     needed (``--seed auto``), then ``VACUUM ANALYZE`` and ``CHECKPOINT`` so that neither tree
     meets the other's seeding leftovers;
  3. ``--rounds`` pairs, in alternating order (A B, B A, A B, ...) to cancel drift (database
     growth, autovacuum, foreign load): each run is a fresh ``benchmarks.run --start-gateway
     --skip-baseline`` (same generator, workload and options for both trees);
  4. per run: ok ops/s, p50/p99 and CPU per operation = CPU % of one core / ops/s, for the
     gateway's process tree and PostgreSQL; per tree the medians; B vs A as the relative
     difference of the medians and, per pair, the median of the B/A ratios.
Prints markdown tables; writes every run's full result to
``benchmarks/results/compare-latest.json``. Other options go to ``benchmarks.run`` unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from benchmarks import report
from benchmarks.httpload import Target
from benchmarks.servers import REPO, with_database


@dataclass
class Tree:
    key: str  # "A" | "B"
    label: str
    path: Path
    database_url: str
    commit: str | None
    serve_args: str = ""  # appended to ``gateway serve``, e.g. "--edges 2 --shards 2"


@dataclass
class Row:
    """One workload of one run, with the figures the tables show."""

    pair: int
    tree: str  # label
    workload: str
    ops_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    incomplete: int
    gateway_cpu_pct: float | None
    postgres_cpu_pct: float | None
    other_cpu_pct: float | None
    gateway_us_per_op: float | None
    postgres_us_per_op: float | None
    flagged: bool  # foreign load or generator saturation during the window
    roles_us_per_op: str = ""  # the gateway's CPU by process role, e.g. "edge 120 / shard 60"


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--a-tree", type=Path, required=True, help="source tree A (the reference)")
    p.add_argument("--b-tree", type=Path, required=True, help="source tree B (compared to A)")
    p.add_argument("--a-label", default="A")
    p.add_argument("--b-label", default="B")
    p.add_argument("--a-serve-args", default="", help="extra `gateway serve` arguments for A "
                   "(e.g. '--single-process', '--edges 2 --shards 2'); the same tree may be A and B")
    p.add_argument("--b-serve-args", default="", help="extra `gateway serve` arguments for B")
    p.add_argument("--rounds", type=int, default=5, help="pairs; each tree runs this many times")
    p.add_argument("--players", type=int, default=100_000)
    p.add_argument("--duration-s", type=float, default=20.0)
    p.add_argument("--connections", type=int, default=256)
    p.add_argument("--workloads", default="uniform")
    p.add_argument("--python", default=sys.executable, help="interpreter for both gateways")
    p.add_argument("--bench-tree", type=Path, default=REPO,
                   help="tree whose benchmarks.run drives the load (the same for A and B)")
    p.add_argument("--pg-admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--database-prefix", default="bench_cmp_")
    p.add_argument("--database", default="",
                   help="one database for A and B (only when both are the same tree: same migrations), "
                        "instead of one per label")
    p.add_argument("--gateway-url", default="http://127.0.0.1:18080",
                   help="where the gateways listen (must be free)")
    p.add_argument("--tolerance-pct", type=float, default=5.0,
                   help="verdict threshold for the gateway CPU per operation, B vs A")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/compare-latest.json")
    args, extra = p.parse_known_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args, extra


def make_tree(key: str, label: str, path: Path, args: argparse.Namespace, serve_args: str = "") -> Tree:
    path = path.resolve()
    db = args.database or args.database_prefix + re.sub(r"[^a-z0-9_]", "_", label.lower())
    return Tree(key, label, path, with_database(args.pg_admin_dsn, db), report._git_rev(path), serve_args)


def gateway_cmd(tree: Tree, python: str) -> str:
    extra = " ".join(shlex.quote(a) for a in shlex.split(tree.serve_args))
    inner = (f"cd {shlex.quote(str(tree.path))} && exec env GATEWAY_MIGRATE_ON_START=1 "
             f"{shlex.quote(python)} -m gateway serve {extra}").rstrip()
    return shlex.join(["sh", "-c", inner])


def check_imports(tree: Tree, python: str) -> None:
    """``python -m`` from the tree must import the tree's gateway package, not another copy."""
    out = subprocess.run([python, "-c", "import gateway; print(gateway.__file__)"],
                         cwd=tree.path, capture_output=True, text=True, check=True)
    where = Path(out.stdout.strip()).resolve()
    if not where.is_relative_to(tree.path):
        raise SystemExit(f"[{tree.label}] imports gateway from {where}, not from {tree.path}")
    print(f"[{tree.label}] {tree.path} at {tree.commit}: gateway from {where}, "
          f"database {tree.database_url}", flush=True)


def port_free(url: str) -> bool:
    t = Target(url, "")
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((t.host, t.port)) != 0


def run_once(tree: Tree, args: argparse.Namespace, extra: list[str], out: Path,
             **override: object) -> dict[str, Any]:
    """One ``benchmarks.run`` against ``tree``'s gateway; its JSON document."""
    if not port_free(args.gateway_url):
        raise SystemExit(f"something already listens at {args.gateway_url}; pick --gateway-url")
    opts: dict[str, object] = {
        "gateway-cmd": gateway_cmd(tree, args.python), "gateway-database-url": tree.database_url,
        "gateway-url": args.gateway_url, "pg-admin-dsn": args.pg_admin_dsn,
        "players": args.players, "duration-s": args.duration_s,
        "connections": args.connections, "workloads": args.workloads, "out": out, **override}
    argv = [args.python, "-m", "benchmarks.run", *extra, "--start-gateway", "--skip-baseline"]
    for k, v in opts.items():
        argv += [f"--{k}", str(v)]
    print(f"\n=== [{tree.label}] {shlex.join(argv)}", flush=True)
    subprocess.run(argv, cwd=args.bench_tree, check=True)
    doc: dict[str, Any] = orjson.loads(out.read_bytes())
    return doc


async def settle(dsn: str) -> None:
    con = await asyncpg.connect(dsn)
    try:
        await con.execute("VACUUM ANALYZE")
        await con.execute("CHECKPOINT")
    finally:
        await con.close()


def _per_op(pct: object, ops: float) -> float | None:
    """CPU microseconds per operation from % of one core and ops/s."""
    return round(float(pct) * 1e4 / ops, 1) if isinstance(pct, int | float) and ops > 0 else None


def rows_of(pair: int, tree: Tree, doc: dict[str, Any]) -> list[Row]:
    rows = []
    for r in doc["results"]:
        cpu, ops = r["cpu"], float(r["ops_per_s"])
        rows.append(Row(pair, tree.label, r["workload"], ops, r["p50_ms"], r["p99_ms"],
                        r["error_count"], r["incomplete"], cpu["server_pct"],
                        cpu["postgres_pct"], cpu["other_pct"], _per_op(cpu["server_pct"], ops),
                        _per_op(cpu["postgres_pct"], ops),
                        bool({"foreign_load_pct", "generator_saturated"} & set(r["checks"])),
                        " / ".join(f"{role} {_f(_per_op(v, ops), '.0f')}"
                                   for role, v in (cpu.get("server_roles_pct") or {}).items())))
    return rows


def _f(v: float | None, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def _median(vals: list[float | None]) -> float | None:
    xs = [v for v in vals if v is not None]
    return statistics.median(xs) if xs else None


def _rel(b: float | None, a: float | None) -> str:
    return "n/a" if a is None or b is None or a == 0 else f"{100.0 * (b / a - 1):+.1f}%"


def tables(rows: list[Row], a: Tree, b: Tree, tolerance_pct: float) -> tuple[str, dict[str, Any]]:
    """The per-run table, the medians table and the medians as a dict, per workload."""
    out: list[str] = []
    medians: dict[str, Any] = {}
    for wl in dict.fromkeys(r.workload for r in rows):
        wrows = [r for r in rows if r.workload == wl]
        out += [f"### {wl}", "", "| pair | tree | ok ops/s | p50 ms | p99 ms | errors "
                "| gateway CPU | gateway µs/op | by role µs/op | PG CPU | PG µs/op | other CPU |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in wrows:
            out.append(f"| {r.pair} | {r.tree}{' †' if r.flagged else ''} | {r.ops_per_s:.0f} "
                       f"| {_f(r.p50_ms, '.2f')} | {_f(r.p99_ms, '.2f')} "
                       f"| {r.errors + r.incomplete} | {_f(r.gateway_cpu_pct, '.0f')}% "
                       f"| {_f(r.gateway_us_per_op)} | {r.roles_us_per_op or '-'} | {_f(r.postgres_cpu_pct, '.0f')}% "
                       f"| {_f(r.postgres_us_per_op)} | {_f(r.other_cpu_pct, '.0f')}% |")
        fields = ("ops_per_s", "p50_ms", "p99_ms", "gateway_us_per_op", "postgres_us_per_op")
        med = {t.label: {f: _median([getattr(r, f) for r in wrows if r.tree == t.label])
                         for f in fields} for t in (a, b)}
        ma, mb = med[a.label], med[b.label]
        out += ["", "| median of runs | ok ops/s | p50 ms | p99 ms | gateway µs/op | PG µs/op |",
                "|---|---|---|---|---|---|"]
        for t in (a, b):
            m = med[t.label]
            out.append(f"| {t.label} (`{t.commit}`) | {_f(m['ops_per_s'], '.0f')} "
                       f"| {_f(m['p50_ms'], '.2f')} | {_f(m['p99_ms'], '.2f')} "
                       f"| {_f(m['gateway_us_per_op'])} | {_f(m['postgres_us_per_op'])} |")
        out.append(f"| {b.label} vs {a.label} | {_rel(mb['ops_per_s'], ma['ops_per_s'])} "
                   f"| {_rel(mb['p50_ms'], ma['p50_ms'])} | {_rel(mb['p99_ms'], ma['p99_ms'])} "
                   f"| {_rel(mb['gateway_us_per_op'], ma['gateway_us_per_op'])} "
                   f"| {_rel(mb['postgres_us_per_op'], ma['postgres_us_per_op'])} |")
        # Paired view: B/A within each pair (the two runs closest in time).
        by = {(r.pair, r.tree): r for r in wrows}
        ratios = sorted(rb.gateway_us_per_op / ra.gateway_us_per_op
                        for p in {r.pair for r in wrows}
                        if (ra := by.get((p, a.label))) and (rb := by.get((p, b.label)))
                        and ra.gateway_us_per_op and rb.gateway_us_per_op)
        diff = (None if not ma["gateway_us_per_op"] or mb["gateway_us_per_op"] is None
                else 100.0 * (mb["gateway_us_per_op"] / ma["gateway_us_per_op"] - 1))
        verdict = "n/a" if diff is None else ("yes" if abs(diff) <= tolerance_pct else "no")
        out += ["", f"gateway CPU per op, {b.label} vs {a.label}: {_f(diff, '+.1f')}% "
                f"(within {tolerance_pct:g}%: {verdict}); per pair B/A: "
                + ", ".join(f"{100 * (x - 1):+.1f}%" for x in ratios)
                + (f"; median {100 * (statistics.median(ratios) - 1):+.1f}%" if ratios else ""),
                ""]
        medians[wl] = {"medians": med, "gateway_us_per_op_diff_pct": diff,
                       "pair_ratios_gateway_us_per_op": ratios, "within_tolerance": verdict}
    out.append("† foreign load above the idle threshold or a saturated generator in the window")
    return "\n".join(out), medians


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    a = make_tree("A", args.a_label, args.a_tree, args, args.a_serve_args)
    b = make_tree("B", args.b_label, args.b_tree, args, args.b_serve_args)
    if a.database_url == b.database_url and a.path != b.path:
        raise SystemExit("two trees need two databases (their migrations differ): --a-label and --b-label "
                         "must differ, and --database is for one tree only")
    for t in (a, b):
        check_imports(t, args.python)
    meta = asyncio.run(report.machine_info(args.pg_admin_dsn, REPO))
    rows: list[Row] = []
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="gw-compare-") as tmp:
        for t in (a, b):  # seed if needed, warm up; not measured
            prep = {"seed": "auto", "duration-s": 2, "warmup-s": 1, "workloads": "uniform"}
            run_once(t, args, extra, Path(tmp) / f"prep-{t.key}.json", **prep)
            asyncio.run(settle(t.database_url))
        for pair in range(1, args.rounds + 1):
            for t in (a, b) if pair % 2 else (b, a):
                doc = run_once(t, args, extra, Path(tmp) / f"{pair}-{t.key}.json", seed="auto")
                rows += rows_of(pair, t, doc)
                runs.append({"pair": pair, "tree": t.label, "result": doc})
    text, medians = tables(rows, a, b, args.tolerance_pct)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(
        {"meta": meta, "argv": sys.argv if argv is None else argv, "extra_args": extra,
         "trees": [asdict(t) for t in (a, b)], "rows": [asdict(r) for r in rows],
         "summary": medians, "runs": runs},
        option=orjson.OPT_INDENT_2, default=str))
    print(f"\n{text}\n\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
