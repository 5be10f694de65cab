"""Latency samples, error counts and the summary of one measured run."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field

import orjson


class Recorder:
    """Latencies (seconds) of completed operations inside the measurement window, and errors.

    Every completed operation is recorded, so percentiles are exact (no sampling). An
    operation that never completed (timeout, connection lost, still queued at the end of the
    drain) is counted in ``incomplete`` and enters the percentiles as an infinite latency.
    """

    def __init__(self) -> None:
        self.latencies = array("d")
        self.ok = 0
        self.ok_in_window = 0  # 2xx answers received inside the window, whenever sent (throughput)
        self.errors: Counter[str] = Counter()
        self.incomplete = 0
        self.send_lag = array("d")  # open loop only: actual send time - scheduled time

    def record(self, status: int, body: bytes, latency_s: float) -> bool:
        """Record one answer; True if it was a success (2xx)."""
        self.latencies.append(latency_s)
        if 200 <= status < 300:
            self.ok += 1
            return True
        self.errors[error_key(status, body)] += 1
        return False


def error_key(status: int, body: bytes) -> str:
    if status == 0:
        return f"0 {body.decode(errors='replace')[:40]}"
    code = ""
    try:
        doc = orjson.loads(body)
        if isinstance(doc, dict):
            code = str(doc.get("code") or doc.get("status") or "")
    except orjson.JSONDecodeError:
        pass
    return f"{status} {code}".strip()


def percentile_ms(sorted_s: list[float], incomplete: int, q: float) -> float | None:
    """q-quantile in ms over completed + incomplete (incomplete = +inf); None = infinite."""
    n = len(sorted_s) + incomplete
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))  # nearest-rank method
    if rank > len(sorted_s):
        return None
    return round(sorted_s[rank - 1] * 1000.0, 3)


@dataclass
class CpuUse:
    """CPU used during the measurement window, in % of one core (200 = both cores busy)."""

    generator_pct: float
    server_pct: float | None
    postgres_pct: float | None
    machine_pct: float  # whole machine, all processes
    other_pct: float | None = None  # machine - generator - server - postgres: foreign load
    background_pct: float | None = None  # machine busy just before the workload started
    # the server tree by process role ("edge", "shard", "supervisor", "single"), % of one core
    server_roles_pct: dict[str, float] | None = None


@dataclass
class Summary:
    target: str  # "gateway" | "baseline"
    workload: str  # "uniform" | "hot" | "rate"
    mode: str  # "closed" | "open"
    connections: int
    duration_s: float
    offered_rate: float | None
    completed: int
    ok: int
    ops_per_s: float  # 2xx answers received per second of the measurement window
    p50_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    max_ms: float | None
    errors: dict[str, int]
    error_count: int
    incomplete: int
    send_lag_p99_ms: float | None
    cpu: CpuUse
    checks: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def summarize(
    rec: Recorder,
    *,
    target: str,
    workload: str,
    mode: str,
    connections: int,
    duration_s: float,
    offered_rate: float | None,
    cpu: CpuUse,
) -> Summary:
    lat = sorted(rec.latencies)
    lag = sorted(rec.send_lag)
    return Summary(
        target=target,
        workload=workload,
        mode=mode,
        connections=connections,
        duration_s=round(duration_s, 3),
        offered_rate=offered_rate,
        completed=len(lat),
        ok=rec.ok,
        ops_per_s=round(rec.ok_in_window / duration_s, 1) if duration_s > 0 else 0.0,
        p50_ms=percentile_ms(lat, rec.incomplete, 0.50),
        p99_ms=percentile_ms(lat, rec.incomplete, 0.99),
        p999_ms=percentile_ms(lat, rec.incomplete, 0.999),
        max_ms=None if rec.incomplete or not lat else round(lat[-1] * 1000.0, 3),
        errors=dict(rec.errors.most_common()),
        error_count=sum(rec.errors.values()),
        incomplete=rec.incomplete,
        send_lag_p99_ms=percentile_ms(lag, 0, 0.99) if lag else None,
        cpu=cpu,
    )
