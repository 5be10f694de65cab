"""CPU accounting from /proc (Linux): the generator itself, the server's process tree,
all PostgreSQL processes and the whole machine, over a measurement window."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from benchmarks.stats import CpuUse

_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> tuple[str, int, float] | None:
    """(comm, ppid, cpu seconds user+system) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    lpar, rpar = raw.find(b"("), raw.rfind(b")")
    comm = raw[lpar + 1 : rpar].decode(errors="replace")
    fields = raw[rpar + 2 :].split()
    # fields[0] is state (field 3); ppid is field 4, utime 14, stime 15
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def _all_procs() -> dict[int, tuple[str, int, float]]:
    out: dict[int, tuple[str, int, float]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(int(name))
            if st is not None:
                out[int(name)] = st
    return out


def _tree(procs: dict[int, tuple[str, int, float]], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    stack, seen = [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in procs:
            continue
        seen.add(pid)
        stack.extend(children.get(pid, ()))
    return seen


def _delta(a: dict[int, tuple[str, int, float]], b: dict[int, tuple[str, int, float]],
           pids: set[int]) -> float:
    """CPU seconds used between two snapshots by ``pids`` (as seen in ``b``).

    Per process, so that processes exiting in between (other users' short-lived database
    connections) cannot make the sum negative; a process born in between counts whole.
    """
    return sum(b[p][2] - (a[p][2] if p in a and a[p][0] == b[p][0] else 0.0) for p in pids)


def _machine_busy_s() -> float:
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = [int(v) for v in parts[:8]]
    # user nice system idle iowait irq softirq steal: busy = all but idle, iowait, steal
    return (sum(vals[:8]) - vals[3] - vals[4] - vals[7]) / _TICKS


@dataclass
class _Snap:
    wall: float
    own: float
    procs: dict[int, tuple[str, int, float]]
    machine: float


class CpuMeter:
    """``start()`` then ``stop()`` -> CpuUse over the window (all processes sampled twice)."""

    def __init__(self, server_pid: int | None, pg_database: str | None = None) -> None:
        self.server_pid = server_pid
        self.pg_database = pg_database
        self._start: _Snap | None = None

    def _snap(self) -> _Snap:
        return _Snap(time.monotonic(), time.process_time(), _all_procs(), _machine_busy_s())

    def start(self) -> None:
        self._start = self._snap()

    def stop(self) -> CpuUse:
        assert self._start is not None
        a, b = self._start, self._snap()
        wall = max(b.wall - a.wall, 1e-9)

        def pct(x: float) -> float:
            return round(100.0 * x / wall, 1)

        pg_pids = {p for p, (comm, _, _) in b.procs.items()
                   if comm.startswith("postgres") and _serves(p, self.pg_database)}
        gen, machine = pct(b.own - a.own), pct(b.machine - a.machine)
        pg = pct(_delta(a.procs, b.procs, pg_pids))
        server = roles = None
        if self.server_pid and self.server_pid in b.procs:
            tree = _tree(b.procs, self.server_pid)
            server = pct(_delta(a.procs, b.procs, tree))
            by_role: dict[str, set[int]] = {}
            for pid in tree:
                by_role.setdefault(_role(pid, self.server_pid, tree), set()).add(pid)
            roles = {role: pct(_delta(a.procs, b.procs, pids)) for role, pids in sorted(by_role.items())}
        other = None if server is None else round(max(0.0, machine - gen - server - pg), 1)
        return CpuUse(generator_pct=gen, server_pct=server, postgres_pct=pg,
                      machine_pct=machine, other_pct=other, server_roles_pct=roles)


def _role(pid: int, root: int, tree: set[int]) -> str:
    """``gateway serve``'s process roles: "edge" and "shard" children (their hidden
    subcommands ``_edge`` / ``_shard``), the "supervisor" when it has such children, else
    "single" (the one-process gateway, or any other server)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return "gone"
    if b"_edge" in argv:
        return "edge"
    if b"_shard" in argv:
        return "shard"
    return "supervisor" if len(tree) > 1 and pid == root else "single"


def _serves(pid: int, database: str | None) -> bool:
    """A PostgreSQL process working for ``database``: its client backends and the shared
    auxiliary processes (WAL writer, checkpointer, ...); other databases' backends are
    foreign load. Title format: ``postgres: 15/main: user db 127.0.0.1(port) state``."""
    if database is None:
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            title = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    words = title.split()
    client = any((w.endswith(")") and "(" in w) or w == "[local]" for w in words)
    return not client or database in words


def machine_busy_pct(window_s: float) -> float:
    """Whole-machine CPU busy over the next ``window_s`` seconds (blocking)."""
    a, t = _machine_busy_s(), time.monotonic()
    time.sleep(window_s)
    return round(100.0 * (_machine_busy_s() - a) / (time.monotonic() - t), 1)
