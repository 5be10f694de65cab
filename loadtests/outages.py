"""How long a fault lasted for callers, from a probe's timeline. Pure.

A probe calls the gateway every few tens of milliseconds and records ``(t_s, ok)``. For a
fault injected at ``t_s = start`` the outage as callers saw it runs from the first failed
call at or after ``start`` to the first successful call after the last failure before
``end`` (the next fault, or the end of the drill). No failed call: 0 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Outage:
    failed_calls: int
    calls: int
    first_failure_s: float | None  # seconds after the injection
    outage_s: float  # first failure to the recovery that followed the last one


def outage(timeline: Sequence[tuple[float, bool]], start: float, end: float) -> Outage:
    """The outage callers saw in ``[start, end)`` of ``timeline`` (sorted by time)."""
    window = [(t, ok) for t, ok in timeline if start <= t < end]
    failures = [t for t, ok in window if not ok]
    if not failures:
        return Outage(0, len(window), None, 0.0)
    last_failure = failures[-1]
    recovered = next((t for t, ok in window if ok and t > last_failure), last_failure)
    return Outage(len(failures), len(window), failures[0] - start, recovered - failures[0])
