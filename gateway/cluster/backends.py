"""What an edge submits commands to: the shard in its own process, or the shard processes.

``InProcessBackend`` (``cluster.single_process``): one shard on this process's loop, its
database I/O on a thread of its own (gateway/ledger/io_thread.py); the edge and the shard
share the process. ``RemoteBackend``: an edge process; shards are other processes reached
over the internal channel (gateway/cluster/remote.py). The app (gateway/app.py) sees only
``start`` / ``stop`` / ``submit`` / ``ready`` / ``alive``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Protocol

import asyncpg

from gateway.cluster.remote import RemoteShards
from gateway.config import Settings
from gateway.ledger import shard_map
from gateway.ledger.io_thread import DatabaseThread, ThreadedStore
from gateway.ledger.store import LedgerStore
from gateway.logs import get_logger
from gateway.shards.commands import Command, Result
from gateway.shards.router import LocalShards
from gateway.shards.shard import Shard
from gateway.telemetry.command import CommandTrace

log = get_logger("gateway.backends")

SHARD_FAILED_EXIT_CODE = 3


class Backend(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, command: Command, trace: CommandTrace | None = None) -> Result:
        """The durable Result; ``trace``: the sampled request's trace (gateway/telemetry/)."""
        ...

    @property
    def ready(self) -> bool:
        """Serving: /readyz answers 200."""
        ...

    @property
    def alive(self) -> bool:
        """Not broken beyond repair: /healthz answers 200."""
        ...


async def open_pool(settings: Settings, url: str, size_max: int | None = None, *,
                    session_state: bool = True) -> asyncpg.Pool:
    """asyncpg pool with the configured timeouts. Raises on connection failure.

    ``session_state=False``: for users that never leave session state behind (no session
    advisory locks, LISTEN, cursors or SET): a connection going back to the pool is only
    rolled back if a transaction was left open, instead of asyncpg's reset statement, a
    round trip on every release (docs/BENCHMARKS.md, "Sportsbook")."""
    return await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=size_max or settings.database.pool_size_max,
        timeout=settings.database.connect_timeout_ms / 1000,
        command_timeout=settings.database.statement_timeout_ms / 1000,
        server_settings={
            "application_name": "wallet-gateway",
            "statement_timeout": str(settings.database.statement_timeout_ms),
        },
        reset=None if session_state else _rollback_if_open,
    )


async def _rollback_if_open(conn: asyncpg.Connection) -> None:
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def exit_for_restart(exc: BaseException) -> None:
    """A shard stopped on a broken invariant: leave the process so the supervisor restarts it.

    Half a second lets the waiting callers receive their retryable answers. Nothing
    acknowledged is lost: acknowledgements only follow commits, and a restart reloads from
    PostgreSQL.
    """
    log.critical("exiting_for_restart", exit_code=SHARD_FAILED_EXIT_CODE, error=repr(exc))
    asyncio.get_running_loop().call_later(0.5, os._exit, SHARD_FAILED_EXIT_CODE)


class ShardRuntime:
    """One shard with its database thread and pool: what a shard process (or the single
    process) runs. ``address``: where its edges reach it ("" in the single process)."""

    def __init__(self, settings: Settings, database_url: str, claimed_by: str, *, address: str = "",
                 on_failure: Callable[[BaseException], None] | None = exit_for_restart) -> None:
        self.settings = settings
        self.database_url = database_url
        self.claimed_by = claimed_by
        self.address = address
        self.on_failure = on_failure
        self.shard: Shard | None = None
        self._db_thread: DatabaseThread | None = None
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> Shard:
        self._db_thread = DatabaseThread()
        self._pool = await self._db_thread.call(open_pool, self.settings, self.database_url)
        store = ThreadedStore(LedgerStore(self._pool, self.settings.shard.shard_id), self._db_thread)
        self.shard = Shard(self.settings, store, claimed_by=self.claimed_by, on_failure=self.on_failure,
                           address=self.address)
        await self.shard.start()
        return self.shard

    async def stop(self) -> None:
        if self.shard is not None:
            await self.shard.stop(drain_timeout_s=self.settings.cluster.drain_timeout_s)
        if self._db_thread is not None:
            if self._pool is not None:
                await self._db_thread.call(self._pool.close)
            self._db_thread.stop()


class InProcessBackend:
    """The edge and one shard (owning every bucket) in one process."""

    def __init__(self, settings: Settings, database_url: str, claimed_by: str) -> None:
        self._settings = settings
        self._database_url = database_url
        self._runtime = ShardRuntime(settings, database_url, claimed_by)
        self._shards: LocalShards | None = None

    async def start(self) -> None:
        conn = await asyncpg.connect(self._database_url)
        try:
            await shard_map.ensure_layout(conn, 1, self._settings.shard.bucket_count)
        finally:
            await conn.close()
        shard = await self._runtime.start()
        self._shards = LocalShards({shard.shard_id: shard}, None, self._settings.shard.bucket_count)

    async def stop(self) -> None:
        await self._runtime.stop()

    async def submit(self, command: Command, trace: CommandTrace | None = None) -> Result:
        assert self._shards is not None, "not started"
        return await self._shards.submit(command, trace)

    @property
    def ready(self) -> bool:
        return self._shards is not None and self._shards.ready

    @property
    def alive(self) -> bool:
        shard = self._runtime.shard
        return shard is None or shard.failed is None


class RemoteBackend:
    """An edge process: the shards are other processes (gateway/cluster/remote.py)."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self._settings = settings
        self._database_url = database_url
        self._pool: asyncpg.Pool | None = None
        self.shards = RemoteShards(settings, self._load_map)

    async def _load_map(self) -> shard_map.MapSnapshot:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            return await shard_map.load(conn)

    async def start(self) -> None:
        self._pool = await open_pool(self._settings, self._database_url, size_max=2)
        await self.shards.start()

    async def stop(self) -> None:
        await self.shards.stop()
        if self._pool is not None:
            await self._pool.close()

    async def submit(self, command: Command, trace: CommandTrace | None = None) -> Result:
        return await self.shards.submit(command, trace)

    @property
    def ready(self) -> bool:
        return self.shards.ready

    @property
    def alive(self) -> bool:
        return True
