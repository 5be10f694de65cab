"""A weekend day's traffic curve, read from a TOML file (``LOCUST_CURVE_FILE``): how many
players are on, how hard bettors bet, and when the trading desk settles in storms.

The file describes clock time of a real day (say Saturday 12:00-24:00) and the run
compresses it into ``run_seconds`` (``LOCUST_CURVE_SECONDS`` overrides), so the same curve
serves a 2-minute rehearsal and an hour-long soak. Pure: no locust, no I/O beyond reading
the file. Shape of the file (loadtests/curves/saturday.toml is the documented example):

    name = "saturday"
    day_start = "12:00"            # clock time at run second 0
    day_end = "24:00"              # clock time at the end of the run
    run_seconds = 600
    [[points]]                     # concurrent users at clock times, linear in between
    at = "12:00"
    users = 40
    [[bursts]]                     # bettors bet faster: think time divided by factor
    from = "14:40"
    to = "15:00"
    factor = 6                     # e.g. the minutes before a 15:00 kick-off
    label = "15:00 kick-off"
    [[settlements]]                # the trading desk settles this many markets at once
    at = "15:47"
    markets = 15
    label = "half-time"
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from pathlib import Path


def _minutes(clock: str) -> int:
    """Minutes since midnight of "HH:MM" ("24:00" allowed for the end of the day)."""
    hours, _, minutes = clock.partition(":")
    value = int(hours) * 60 + int(minutes or 0)
    if not (0 <= int(minutes or 0) < 60 and 0 <= value <= 24 * 60):
        raise ValueError(f"not a clock time: {clock!r}")
    return value


@dataclass(frozen=True)
class Burst:
    start_min: int
    end_min: int
    factor: float
    label: str


@dataclass(frozen=True)
class Settlement:
    at_min: int
    markets: int
    label: str


@dataclass(frozen=True)
class Curve:
    """A day's curve. Times inside are clock minutes; the methods take run seconds."""

    name: str
    start_min: int
    end_min: int
    run_s: float
    points: tuple[tuple[int, int], ...]  # (clock minute, users), sorted
    bursts: tuple[Burst, ...]
    settlements: tuple[Settlement, ...]

    @classmethod
    def load(cls, path: str | Path, run_s: float | None = None) -> Curve:
        """Read and check a curve file; ``run_s`` overrides its ``run_seconds``. Raises
        ValueError naming what is wrong."""
        doc = tomllib.loads(Path(path).read_text())
        start, end = _minutes(doc.get("day_start", "00:00")), _minutes(doc.get("day_end", "24:00"))
        if end <= start:
            raise ValueError("day_end must be after day_start")
        points = tuple(sorted((_minutes(p["at"]), int(p["users"])) for p in doc.get("points", [])))
        if not points or any(users < 0 for _, users in points):
            raise ValueError("a curve needs [[points]] with users >= 0")
        bursts = tuple(Burst(_minutes(b["from"]), _minutes(b["to"]), float(b["factor"]), b.get("label", ""))
                       for b in doc.get("bursts", []))
        if any(b.end_min <= b.start_min or b.factor < 1 for b in bursts):
            raise ValueError("a burst needs from < to and factor >= 1")
        settlements = tuple(Settlement(_minutes(s["at"]), int(s["markets"]), s.get("label", ""))
                            for s in doc.get("settlements", []))
        if any(s.markets < 1 for s in settlements):
            raise ValueError("a settlement storm needs markets >= 1")
        run = float(run_s if run_s is not None else doc.get("run_seconds", 600))
        if run <= 0:
            raise ValueError("run_seconds must be > 0")
        return cls(doc.get("name", Path(path).stem), start, end, run, points, bursts, settlements)

    def clock_min(self, t_s: float) -> float:
        """The day's clock minute at run second ``t_s``."""
        return self.start_min + (self.end_min - self.start_min) * t_s / self.run_s

    def users_at(self, t_s: float) -> int | None:
        """Concurrent users at run second ``t_s`` (linear between points, flat outside
        them); None once the run is over."""
        if t_s >= self.run_s:
            return None
        minute = self.clock_min(t_s)
        points = self.points
        if minute <= points[0][0]:
            return points[0][1]
        for (m0, u0), (m1, u1) in itertools.pairwise(points):
            if minute <= m1:
                return round(u0 + (u1 - u0) * (minute - m0) / (m1 - m0)) if m1 > m0 else u1
        return points[-1][1]

    def bet_factor(self, t_s: float) -> float:
        """How much faster bettors bet at ``t_s`` (1 outside bursts; overlapping bursts: the largest)."""
        minute = self.clock_min(t_s)
        return max((b.factor for b in self.bursts if b.start_min <= minute < b.end_min), default=1.0)

    def settlements_between(self, t0_s: float, t1_s: float) -> list[Settlement]:
        """The settlement storms whose clock time falls in (t0_s, t1_s]."""
        m0, m1 = self.clock_min(t0_s), self.clock_min(t1_s)
        return [s for s in self.settlements if m0 < s.at_min <= m1]

    def spawn_rate(self) -> float:
        """Users/s fast enough to follow the steepest segment of the curve."""
        steepest = 1.0
        seconds_per_min = self.run_s / (self.end_min - self.start_min)
        for (m0, u0), (m1, u1) in itertools.pairwise(self.points):
            if m1 > m0:
                steepest = max(steepest, abs(u1 - u0) / ((m1 - m0) * seconds_per_min))
        return max(1.0, 2.0 * steepest, float(self.points[0][1]))
