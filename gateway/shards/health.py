"""Is the shard's storage answering? A clock-driven state machine, free of I/O.

The shard reports every storage call's outcome here and asks two questions:

- ``degraded(now)``: storage has been failing for longer than ``failure_grace_ns`` (a
  dropped connection that the next attempt repairs is absorbed; an outage is not). While
  degraded the shard takes no new commands (they get the retryable answer at once, instead
  of queueing behind a commit that cannot happen) and ``/readyz`` says not ready
  (docs/ARCHITECTURE.md, "Failing fast").
- ``probe_due(now)``: nothing has told us about storage for ``probe_interval_ns``, or it
  is failing and the next probe is due; the shard then pings storage, so an idle shard
  still notices an outage, and a failing one notices the recovery within one interval.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StorageHealth:
    """Times in monotonic nanoseconds."""

    failure_grace_ns: int
    probe_interval_ns: int
    failing_since_ns: int | None = None
    last_heard_ns: int = 0  # last time any storage call finished, well or not

    def __post_init__(self) -> None:
        assert self.failure_grace_ns >= 0 and self.probe_interval_ns > 0

    def succeeded(self, now_ns: int) -> bool:
        """A storage call succeeded. Returns True if that ends an outage."""
        recovered = self.failing_since_ns is not None
        self.failing_since_ns = None
        self.last_heard_ns = now_ns
        return recovered

    def failed(self, now_ns: int) -> None:
        """A storage call failed with a transient fault."""
        if self.failing_since_ns is None:
            self.failing_since_ns = now_ns
        self.last_heard_ns = now_ns

    def degraded(self, now_ns: int) -> bool:
        return self.failing_since_ns is not None and now_ns - self.failing_since_ns >= self.failure_grace_ns

    def probe_due(self, now_ns: int) -> bool:
        return now_ns - self.last_heard_ns >= self.probe_interval_ns
