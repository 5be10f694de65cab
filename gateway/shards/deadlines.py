"""Callers never wait longer than ``shard.commit_timeout_ms`` (docs/ARCHITECTURE.md, "Failing fast").

Every submitted command's future is registered with its deadline; ``expire(now)`` answers
the overdue ones with ``CommitTimeout``, a retryable refusal (HTTP 503 + Retry-After on the
generic API, the protocol's retryable status on provider routes). Deadlines are registered
in submit order with one fixed timeout, so they come out of a FIFO already sorted.

What a timed-out command leaves behind:
- not yet applied (still in the inbox or awaiting its prefetch): it is dropped, never
  applied; the caller's retry is a first attempt;
- already applied (in a batch that has not committed): the batch commits when storage
  answers again, and the caller's retry with the same id gets the stored outcome, marked
  as a replay. Nothing is lost or applied twice either way.

Bounded: a future is registered once per accepted command, and accepted commands are
bounded by ``inbox_depth_max`` plus the two batches in flight.
"""

from __future__ import annotations

import asyncio
import collections

from gateway.shards.commands import Result, ShardUnavailable


class CommitTimeout(ShardUnavailable):
    """The command's batch did not commit within ``commit_timeout_ms``: retry with the same id."""


class Deadlines:
    """FIFO of (deadline in monotonic ns, future)."""

    def __init__(self, timeout_ns: int) -> None:
        assert timeout_ns > 0
        self.timeout_ns = timeout_ns
        self._queue: collections.deque[tuple[int, asyncio.Future[Result]]] = collections.deque()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, future: asyncio.Future[Result], now_ns: int) -> None:
        self._queue.append((now_ns + self.timeout_ns, future))

    def expire(self, now_ns: int) -> int:
        """Fail every pending future whose deadline passed; returns how many were failed."""
        expired = 0
        queue = self._queue
        while queue and (queue[0][0] <= now_ns or queue[0][1].done()):
            _, future = queue.popleft()
            if not future.done():
                future.set_exception(CommitTimeout(
                    f"not committed within {self.timeout_ns // 1_000_000} ms; retry with the same id"))
                expired += 1
        return expired
