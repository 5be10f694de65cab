"""The shard's database I/O on an event loop of its own thread.

Why: the edge's HTTP handling and the shard share one event loop in ``gateway serve``. Under
load one loop iteration runs hundreds of ready HTTP callbacks, and a batch commit that needs
several iterations (acquire a connection, send, receive, resume) waited a full iteration for
each: measured, 18 of 28 ms of a flush were spent queued behind HTTP work while PostgreSQL
itself took 10. Here the asyncpg pool lives on a private loop, so the whole round trip runs
there and the shard's loop is involved once, when the result comes back.

``ThreadedStore`` implements the storage port (``gateway/shards/port.py``) by forwarding
each call to a ``LedgerStore`` on the database thread; the store's state (the audit head)
is only ever touched there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import uvloop

from gateway.ledger.store import LedgerStore
from gateway.shards.port import BatchWrite, Claim, Heads, PrefetchResult, UsageRead
from gateway.shards.state import Key, PlayerKey, RoundKey

T = TypeVar("T")


class DatabaseThread:
    """A daemon thread running an event loop for database coroutines."""

    def __init__(self, name: str = "gateway-db") -> None:
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` on the database loop; await its result from the caller's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(fn(*args), self.loop))  # type: ignore[arg-type]  # fn(*args) is a coroutine

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class ThreadedStore:
    """``port.Storage``: a ``LedgerStore`` whose every call runs on a ``DatabaseThread``."""

    def __init__(self, store: LedgerStore, thread: DatabaseThread) -> None:
        self.store = store
        self.thread = thread
        self.shard_id = store.shard_id

    async def claim(self, claimed_by: str, address: str, now_us: int) -> Claim:
        return await self.thread.call(self.store.claim, claimed_by, address, now_us)

    async def load_heads(self) -> Heads:
        return await self.thread.call(self.store.load_heads)

    async def prefetch(self, players: list[PlayerKey], keys: list[Key], rounds: list[RoundKey],
                       usage: UsageRead | None = None) -> PrefetchResult:
        return await self.thread.call(self.store.prefetch, players, keys, rounds, usage)

    async def write_batch(self, batch: BatchWrite, epoch: int) -> None:
        await self.thread.call(self.store.write_batch, batch, epoch)

    async def batch_committed(self, batch_id: int) -> bool:
        return await self.thread.call(self.store.batch_committed, batch_id)

    async def ping(self, timeout_s: float) -> None:
        await self.thread.call(self.store.ping, timeout_s)
