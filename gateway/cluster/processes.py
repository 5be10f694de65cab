"""The two kinds of child process ``gateway serve`` runs: a shard process and an edge process.

A **shard process** does nothing but the shard's work: it takes its lease and buckets, then
serves its edges over its Unix socket (gateway/cluster/channel.py) and prefetches, applies
and commits. On SIGTERM it stops taking commands, commits what it applied and exits 0; on a
broken invariant it exits 3 (the supervisor restarts it from PostgreSQL).

An **edge process** serves HTTP on the listening socket the supervisor hands it (all edges
share it: the kernel spreads connections over them) and does all parsing, authentication,
signature checks and response signing; commands go to the owning shard process
(gateway/cluster/remote.py). On SIGTERM uvicorn stops accepting and finishes the requests
in flight, within ``cluster.drain_timeout_s``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from gateway.cluster.backends import RemoteBackend, ShardRuntime
from gateway.cluster.channel import NotOwner, ShardServer, split_tcp, tcp_address
from gateway.cluster.frames import CONTROL_ACQUIRE, CONTROL_RELEASE, CONTROL_STATS, Control, ControlReply, ShardStats
from gateway.config import Settings
from gateway.config_types import resolved
from gateway.logs import get_logger
from gateway.shards.commands import Command, Result, player_key_of
from gateway.shards.router import bucket_of
from gateway.shards.shard import Shard
from gateway.telemetry import tracing
from gateway.telemetry.command import CommandTrace

log = get_logger("gateway.process")


def shard_socket_path(settings: Settings, shard_id: int) -> str:
    """Where shard ``shard_id`` of ``gateway serve`` listens for its edges: a Unix socket
    in the socket dir, or ``tcp://shard_listen_host:shard_port_base + shard_id``."""
    cluster = settings.cluster
    if cluster.shard_transport == "tcp":
        return tcp_address(cluster.shard_listen_host, cluster.shard_port_base + shard_id)
    return str(settings.socket_dir() / f"shard-{shard_id}.sock")


def tune_runtime(settings: Settings) -> None:
    """GC thresholds and the GIL switch interval of a serving process (docs/BENCHMARKS.md).

    The database thread (gateway/ledger/io_thread.py) needs the GIL briefly per batch; the
    default 5 ms switch interval would make each of its steps wait behind HTTP work.
    """
    sys.setswitchinterval(0.0005)
    server = settings.server
    gc.set_threshold(server.gc_gen0_threshold, server.gc_gen1_threshold, server.gc_gen2_threshold)


ORPHAN_CHECK_INTERVAL_S = 0.5


def stop_when_orphaned() -> None:
    """Send this process SIGTERM (its graceful stop) once its supervisor is gone.

    A child whose supervisor died (kill -9, a crash) would otherwise go on serving: an edge
    keeps accepting on the shared port and a shard keeps its lease, out of every operator's
    sight. A daemon thread compares the parent pid every ``ORPHAN_CHECK_INTERVAL_S``; it runs
    for the process's life.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:  # the process's life
            time.sleep(ORPHAN_CHECK_INTERVAL_S)
        log.error("supervisor_gone", parent_pid=parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-guard", daemon=True).start()


async def run_shard(settings: Settings, shard_id: int, *, listen: str = "", advertise: str = "",
                    supervised: bool = True) -> int:
    """Run shard ``shard_id`` until SIGTERM/SIGINT; returns the exit code.

    ``listen``: where to serve edges (a Unix path or tcp://host:port; default
    ``shard_socket_path``); ``advertise``: the address written in the shard map for edges
    (default: ``listen``). ``supervised``: started by ``gateway serve`` (exit when it is gone).
    """
    settings.shard.shard_id = shard_id
    tracing.configure(settings, "shard")
    if supervised:
        stop_when_orphaned()
    listen = listen or shard_socket_path(settings, shard_id)
    advertise = advertise or listen
    if split_tcp(listen) is None:
        os.makedirs(os.path.dirname(listen), exist_ok=True)
    runtime = ShardRuntime(settings, settings.database.url, claimed_by=f"{socket.gethostname()}:{os.getpid()}",
                           address=advertise)
    shard = await runtime.start()
    bucket_count = settings.shard.bucket_count

    def submit(command: Command, trace: CommandTrace | None) -> asyncio.Future[Result]:
        player = player_key_of(command)
        if player is not None and bucket_of(player[0], player[1], bucket_count) not in shard.buckets:
            raise NotOwner(shard.map_revision)
        return shard.submit(command, trace)

    def bucket_of_player(player_key: tuple[str, str]) -> int:
        return bucket_of(player_key[0], player_key[1], bucket_count)

    release_timeout_s = settings.cluster.move_release_timeout_ms / 1000

    async def control(frame: Control) -> ControlReply:
        buckets = frozenset(frame.buckets)
        if not all(0 <= b < bucket_count for b in buckets):
            return ControlReply(frame.request_id, False, "bucket out of range", shard.epoch)
        if frame.op == CONTROL_RELEASE:
            released = await shard.release(buckets, frame.map_revision, bucket_of_player, release_timeout_s)
            return ControlReply(frame.request_id, released, "" if released else "release timed out", shard.epoch)
        if frame.op == CONTROL_ACQUIRE:
            shard.acquire(buckets, frame.map_revision)
            return ControlReply(frame.request_id, True, "", shard.epoch)
        if frame.op == CONTROL_STATS:
            return ControlReply(frame.request_id, True, "", shard.epoch, shard_stats(shard, advertise))
        return ControlReply(frame.request_id, False, f"unknown control op {frame.op!r}", shard.epoch)

    server = ShardServer(submit, lambda: (shard.ready, shard.map_revision), shard_id, control=control,
                         secret=resolved(settings.cluster.channel_secret))
    await server.start(listen)
    log.info("shard_process_ready", shard=shard_id, listen=listen, address=advertise, buckets=len(shard.buckets),
             epoch=shard.epoch)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shard_process_draining", shard=shard_id)
    await runtime.stop()  # refuses new commands, commits what it applied
    await server.close()
    log.info("shard_process_stopped", shard=shard_id)
    tracing.shutdown()
    return 0


def shard_stats(shard: Shard, address: str) -> ShardStats:
    """The shard's figures for ``gateway shards status``."""
    return ShardStats(
        shard_id=shard.shard_id, epoch=shard.epoch, map_revision=shard.map_revision, ready=shard.ready,
        buckets=len(shard.buckets), players_resident=len(shard.state.players),
        keys_resident=len(shard.state.keys), inbox_depth=len(shard.inbox),
        commands_total=shard.commands_applied, batches_total=shard.batches_total,
        flush_seconds_total=shard.flush_seconds_total, address=address)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How every HTTP-serving process runs uvicorn (the single process and each edge)."""
    server = settings.server
    return {
        "loop": "uvloop", "http": "httptools", "log_config": None, "access_log": False, "lifespan": "on",
        "timeout_graceful_shutdown": settings.cluster.drain_timeout_s,
        "timeout_keep_alive": server.keep_alive_timeout_s,
        "limit_concurrency": server.connections_max or settings.shard.inbox_depth_max,
        "backlog": 4096,
        "proxy_headers": False,  # nothing to trust by default; its middleware costs ~6% CPU per request
        "server_header": False, "date_header": False,
    }


def run_edge(settings: Settings, fd: int | None) -> int:
    """Serve HTTP until SIGTERM; returns the exit code. ``fd``: the listening socket
    inherited from ``gateway serve``; None: a standalone edge (``gateway edge``, e.g. a
    Kubernetes pod) that binds ``server.host:server.port`` itself."""
    import uvicorn

    from gateway.app import create_app

    tune_runtime(settings)
    app = create_app(settings, backend_factory=RemoteBackend)
    if fd is None:
        uvicorn.run(app, host=settings.server.host, port=settings.server.port, **uvicorn_options(settings))
        return 0
    stop_when_orphaned()
    sock = socket.socket(fileno=fd)
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings)))
    server.run(sockets=[sock])
    return 0
