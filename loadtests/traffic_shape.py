"""Weekend-peak traffic shape: ramp up from a base load, hold the peak, ramp back down, stop.

All durations derive from one total so a demo and a soak use the same shape:

    users
    peak |        ________________
         |       /                \\
    base |______/                  \\______|
         0    ramp_up     plateau   ramp_down  total -> None (the run ends by itself)

Environment (read when the locustfile is imported):
    LOCUST_SHAPE_SECONDS        total duration, default 30
    LOCUST_PEAK_USERS           users at the peak, default 20
    LOCUST_BASE_USERS           users before and after the peak, default peak // 5 (min 1)
    LOCUST_WARM_FRACTION        share of the total spent at base load first, default 0.1
    LOCUST_RAMP_UP_FRACTION     share of the total spent ramping up, default 0.3
    LOCUST_RAMP_DOWN_FRACTION   share of the total spent ramping down, default 0.2
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw.strip() else default


@dataclass(frozen=True)
class ShapeConfig:
    total_s: float
    peak_users: int
    base_users: int
    warm_s: float
    ramp_up_s: float
    ramp_down_s: float

    @classmethod
    def from_env(cls) -> ShapeConfig:
        total = _env_float("LOCUST_SHAPE_SECONDS", 30.0)
        peak = int(_env_float("LOCUST_PEAK_USERS", 20))
        base = int(_env_float("LOCUST_BASE_USERS", max(1, peak // 5)))
        warm = _env_float("LOCUST_WARM_FRACTION", 0.1)
        up = _env_float("LOCUST_RAMP_UP_FRACTION", 0.3)
        down = _env_float("LOCUST_RAMP_DOWN_FRACTION", 0.2)
        if total <= 0 or peak < 1 or not 0 <= base <= peak:
            raise ValueError("need LOCUST_SHAPE_SECONDS > 0 and 0 <= base users <= peak users")
        if min(warm, up, down) < 0 or warm + up + down > 1:
            raise ValueError("shape fractions must be >= 0 and sum to at most 1")
        return cls(total, peak, base, total * warm, total * up, total * down)

    def users_at(self, t: float) -> int | None:
        """Target user count ``t`` seconds into the run; None once the run is over."""
        if t >= self.total_s:
            return None
        up_start = self.warm_s
        up_end = up_start + self.ramp_up_s
        down_start = self.total_s - self.ramp_down_s
        span = self.peak_users - self.base_users
        if t < up_start:
            return self.base_users
        if t < up_end:
            return self.base_users + round(span * (t - up_start) / self.ramp_up_s)
        if t < down_start:
            return self.peak_users
        return self.peak_users - round(span * (t - down_start) / max(self.ramp_down_s, 1e-9))

    def spawn_rate(self) -> float:
        """Users/s fast enough to follow the steeper ramp (and the initial base load)."""
        span = self.peak_users - self.base_users
        steepest = max(span / max(self.ramp_up_s, 1.0), span / max(self.ramp_down_s, 1.0))
        return max(1.0, 2.0 * steepest, float(self.base_users))
