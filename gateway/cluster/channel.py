"""The internal channel between edge processes and shard processes (asyncio streams).

One persistent connection per (edge, shard), over a Unix socket on one host or TCP across
hosts (an address ``tcp://host:port``, docs/SCALING.md). With ``cluster.channel_secret`` set
every connection first proves the secret (frames.Challenge / frames.Hello). Frames
(gateway/cluster/frames.py) are length-prefixed msgspec; each request carries an id, many
are in flight at once, replies come back in any order. Both sides coalesce the frames a loop
iteration produces into one write.

Why asyncio streams and not a messaging library: the channel is one request/reply pattern
between processes we run ourselves; the standard library's Unix-socket streams plus
msgspec framing are all it needs, with no broker and no extra dependency on the hot path
(pyzmq was considered: its REQ/ROUTER sockets add a copy and a second event loop
integration for no feature we use).

Limits: ``cluster.channel_inflight_max`` requests in flight per connection (more: the edge
answers Overloaded at once); ``cluster.channel_timeout_ms`` per request (then the edge
answers retryably and forgets the request: the shard's own answer, if it comes, is
dropped, and the caller's retry with the same id gets the stored outcome);
``frames.FRAME_BYTES_MAX`` per frame.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Final

from gateway.cluster import frames
from gateway.cluster.frames import Challenge, Control, ControlReply, Hello, Ping, Pong, Reply, Request
from gateway.logs import get_logger
from gateway.shards.commands import Command, Overloaded, Result, ShardUnavailable
from gateway.telemetry.command import CommandTrace

log = get_logger("gateway.channel")

READ_BYTES: Final = 256 * 1024
HANDSHAKE_TIMEOUT_S: Final = 5.0  # a peer that has not proved the secret by then is dropped
TCP_PREFIX: Final = "tcp://"


def tcp_address(host: str, port: int) -> str:
    """The shard map's form of a TCP address (``tcp://host:port``; IPv6 hosts in brackets)."""
    return f"{TCP_PREFIX}[{host}]:{port}" if ":" in host else f"{TCP_PREFIX}{host}:{port}"


def split_tcp(address: str) -> tuple[str, int] | None:
    """(host, port) of a ``tcp://host:port`` address; None for a Unix socket path.
    Raises ValueError for a tcp address without a valid port."""
    if not address.startswith(TCP_PREFIX):
        return None
    rest = address[len(TCP_PREFIX):]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"not a tcp://host:port address: {address!r}")
    return host.strip("[]"), int(port)


async def open_stream(address: str, timeout_s: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a shard at ``address`` (Unix path or tcp://host:port)."""
    tcp = split_tcp(address)
    if tcp is None:
        return await asyncio.wait_for(asyncio.open_unix_connection(address, limit=READ_BYTES), timeout_s)
    return await asyncio.wait_for(asyncio.open_connection(tcp[0], tcp[1], limit=READ_BYTES), timeout_s)


async def answer_challenge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: str,
                           timeout_s: float) -> None:
    """The client side of the handshake: read the shard's Challenge, send the Hello.
    Raises ConnectionError if the shard sends anything else or nothing in time."""
    frame_reader = frames.FrameReader()
    deadline = time.monotonic() + timeout_s
    while True:  # bounded by the deadline
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ConnectionError("no channel challenge from the shard")
        data = await asyncio.wait_for(reader.read(256), remaining)
        if not data:
            raise ConnectionError("the shard closed the connection before its challenge")
        got = frame_reader.feed(data)
        if got:
            if not isinstance(got[0], Challenge) or len(got) > 1:
                raise ConnectionError("the shard did not open with a challenge (is channel_secret set on both?)")
            writer.write(frames.encode(Hello(frames.channel_mac(secret, got[0].nonce))))
            return


class _Coalescer:
    """Frames queued during one loop iteration leave in one ``write``."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._queued: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def send(self, data: bytes) -> None:
        if not self._queued:
            self._loop.call_soon(self._flush)
        self._queued.append(data)

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        if queued and not self._writer.is_closing():
            self._writer.write(b"".join(queued))


# ---- the shard side ------------------------------------------------------------------------


class ShardServer:
    """Serves one shard process's edges: a Request becomes ``submit(command)``, answered
    when its future resolves; a Ping is answered at once with the shard's readiness.

    ``submit(command, trace)``: the shard's entry point (raises Overloaded / ShardUnavailable
    / NotOwner); ``trace`` is the frame's sampled trace context, if any;
    ``status``: () -> (ready, map revision).
    """

    def __init__(self, submit: Callable[[Command, CommandTrace | None], asyncio.Future[Result]],
                 status: Callable[[], tuple[bool, int]], shard_id: int, *,
                 control: Callable[[Control], Awaitable[ControlReply]] | None = None,
                 secret: str = "") -> None:
        self._submit = submit
        self._status = status
        self._control = control
        self._secret = secret
        self._shard_id = shard_id
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._control_tasks: set[asyncio.Task[None]] = set()

    async def start(self, address: str) -> None:
        """Listen on ``address``: a Unix socket path, or ``tcp://host:port``."""
        tcp = split_tcp(address)
        if tcp is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address)  # a stale socket of an earlier process of this shard
            self._server = await asyncio.start_unix_server(self._serve, path=address, limit=READ_BYTES)
        else:
            self._server = await asyncio.start_server(self._serve, tcp[0], tcp[1], limit=READ_BYTES,
                                                      reuse_address=True)

    async def close(self) -> None:
        """Stop accepting and close every connection (replies not yet sent are lost: their
        edges answer retryably, and the callers' retries get the stored outcomes)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        out = _Coalescer(writer)
        frame_reader = frames.FrameReader()
        nonce = b""
        if self._secret:
            nonce = secrets.token_bytes(frames.NONCE_BYTES)
            writer.write(frames.encode(Challenge(nonce)))
        try:
            while nonce:  # the handshake: the first frame must prove the secret
                data = await asyncio.wait_for(reader.read(256), HANDSHAKE_TIMEOUT_S)
                if not data:
                    return
                got = frame_reader.feed(data)
                if not got:
                    continue
                hello = got[0]
                if not isinstance(hello, Hello) or not hmac.compare_digest(
                        hello.mac, frames.channel_mac(self._secret, nonce)):
                    log.warning("channel_peer_refused", peer=str(writer.get_extra_info("peername")))
                    return
                nonce = b""
                for frame in got[1:]:
                    self._dispatch(frame, out)
            while True:  # one connection's life: ends when the edge closes it
                data = await reader.read(READ_BYTES)
                if not data:
                    break
                for frame in frame_reader.feed(data):
                    self._dispatch(frame, out)
        except frames.FrameError as exc:
            log.error("channel_bad_frame", error=str(exc))
        except (ConnectionError, OSError, TimeoutError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    def _dispatch(self, frame: frames.Frame, out: _Coalescer) -> None:
        if isinstance(frame, Request):
            self._request(frame, out)
        elif isinstance(frame, Ping):
            ready, revision = self._status()
            out.send(frames.encode(Pong(frame.request_id, ready, self._shard_id, revision)))
        elif isinstance(frame, Control):
            task = asyncio.create_task(self._answer_control(frame, out))
            self._control_tasks.add(task)
            task.add_done_callback(self._control_tasks.discard)

    async def _answer_control(self, frame: Control, out: _Coalescer) -> None:
        if self._control is None:
            reply = ControlReply(frame.request_id, False, "this process takes no control frames")
        else:
            try:
                reply = await self._control(frame)
            except Exception as exc:  # answered, not raised: the mover decides
                log.exception("control_failed", op=frame.op)
                reply = ControlReply(frame.request_id, False, repr(exc)[:200])
        out.send(frames.encode(reply))

    def _request(self, frame: Request, out: _Coalescer) -> None:
        request_id = frame.request_id
        trace = CommandTrace.from_traceparent(frame.traceparent) if frame.traceparent else None
        try:
            future = self._submit(frame.command, trace)
        except NotOwner as exc:
            out.send(frames.encode(Reply(request_id, frames.OUTCOME_NOT_OWNER, map_revision=exc.map_revision)))
            return
        except Overloaded as exc:
            out.send(frames.encode(Reply(request_id, frames.OUTCOME_OVERLOADED, retry_after_s=exc.retry_after_s)))
            return
        except ShardUnavailable as exc:
            out.send(frames.encode(Reply(request_id, frames.OUTCOME_UNAVAILABLE, detail=str(exc)[:200])))
            return

        def done(f: asyncio.Future[Result]) -> None:
            if f.cancelled():
                reply = Reply(request_id, frames.OUTCOME_UNAVAILABLE, detail="cancelled")
            elif (exc := f.exception()) is not None:
                reply = Reply(request_id, frames.OUTCOME_UNAVAILABLE, detail=str(exc)[:200])
            else:
                reply = Reply(request_id, frames.OUTCOME_RESULT, result=f.result(),
                              batch_id=trace.batch_id if trace is not None else 0)
            out.send(frames.encode(reply))

        future.add_done_callback(done)


class NotOwner(Exception):
    """The shard does not own the command's bucket (as of ``map_revision``)."""

    def __init__(self, map_revision: int) -> None:
        super().__init__(f"not the owner under map revision {map_revision}")
        self.map_revision = map_revision


# ---- the edge side -------------------------------------------------------------------------


class ShardClient:
    """An edge's connection to one shard process: ``call(command) -> Reply``.

    Connects on first use and again after a loss (at most one attempt per
    ``reconnect_pause_s``). Raises Overloaded when ``inflight_max`` requests are already
    in flight, ShardUnavailable when the shard cannot be reached, the connection drops
    while waiting, or no reply came within ``timeout_s``.
    """

    def __init__(self, shard_id: int, address: str, *, inflight_max: int, timeout_s: float,
                 reconnect_pause_s: float = 0.1, secret: str = "") -> None:
        assert inflight_max >= 1 and timeout_s > 0
        self.shard_id = shard_id
        self.address = address
        self._secret = secret
        self._inflight_max = inflight_max
        self._timeout_ns = int(timeout_s * 1e9)
        self._reconnect_pause_s = reconnect_pause_s
        self._pending: dict[int, asyncio.Future[Reply | Pong | ControlReply]] = {}
        self._deadlines: collections.deque[tuple[int, int]] = collections.deque()  # (deadline ns, id)
        self._next_id = 0
        self._out: _Coalescer | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._last_attempt = 0.0
        self._sweeper: asyncio.Task[None] | None = None
        self.ready = False  # the shard's readiness, as its last Pong said
        self.map_revision = 0

    @property
    def inflight(self) -> int:
        return len(self._pending)

    async def call(self, command: Command, bucket: int, traceparent: str = "") -> Reply:
        reply = await self._exchange(lambda request_id: Request(request_id, bucket, command, traceparent))
        assert isinstance(reply, Reply)
        return reply

    async def ping(self) -> Pong:
        pong = await self._exchange(Ping)
        assert isinstance(pong, Pong)
        self.ready, self.map_revision = pong.ready, pong.map_revision
        return pong

    async def control(self, op: str, buckets: list[int] | None = None, map_revision: int = 0,
                      timeout_s: float | None = None) -> ControlReply:
        """Send a Control frame (frames.CONTROL_*). Raises ShardUnavailable when the shard
        cannot be reached or has not answered within ``timeout_s`` (default: the channel's)."""
        reply = await self._exchange(lambda request_id: Control(request_id, op, buckets or [], map_revision),
                                     timeout_s)
        assert isinstance(reply, ControlReply)
        return reply

    async def _exchange(self, make: Callable[[int], frames.Frame],
                        timeout_s: float | None = None) -> Reply | Pong | ControlReply:
        if len(self._pending) >= self._inflight_max:
            raise Overloaded(retry_after_s=1)
        if self._out is None:
            await self._connect()
        assert self._out is not None
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[Reply | Pong | ControlReply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        if timeout_s is not None:  # a control frame: its own deadline, off the sorted FIFO
            self._out.send(frames.encode(make(request_id)))
            try:
                return await asyncio.wait_for(future, timeout_s)
            except TimeoutError:
                raise ShardUnavailable(f"shard {self.shard_id} did not answer within {timeout_s:.1f} s") from None
            finally:
                self._pending.pop(request_id, None)
        self._deadlines.append((time.monotonic_ns() + self._timeout_ns, request_id))
        self._out.send(frames.encode(make(request_id)))
        try:
            return await future
        finally:
            self._pending.pop(request_id, None)

    async def _connect(self) -> None:
        if self._connecting is not None:  # another caller is connecting: wait for it
            await asyncio.shield(self._connecting)
            if self._out is None:
                raise ShardUnavailable(f"shard {self.shard_id} unreachable")
            return
        if time.monotonic() - self._last_attempt < self._reconnect_pause_s:
            raise ShardUnavailable(f"shard {self.shard_id} unreachable (reconnecting)")
        self._last_attempt = time.monotonic()
        self._connecting = asyncio.get_running_loop().create_future()
        try:
            timeout_s = min(self._timeout_ns / 1e9, HANDSHAKE_TIMEOUT_S)
            reader, writer = await open_stream(self.address, timeout_s)
            if self._secret:
                try:
                    await answer_challenge(reader, writer, self._secret, timeout_s)
                except BaseException:
                    writer.close()
                    raise
        except (OSError, TimeoutError, ValueError) as exc:
            self.ready = False
            raise ShardUnavailable(f"shard {self.shard_id} unreachable at {self.address}: {exc!r}") from None
        finally:
            self._connecting.set_result(None)
            self._connecting = None
        self._writer = writer
        self._out = _Coalescer(writer)
        self._reader_task = asyncio.create_task(self._read(reader), name=f"channel-{self.shard_id}-read")
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name=f"channel-{self.shard_id}-sweep")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        frame_reader = frames.FrameReader()
        try:
            while True:  # the connection's life: ends when the shard closes it
                data = await reader.read(READ_BYTES)
                if not data:
                    break
                for frame in frame_reader.feed(data):
                    if isinstance(frame, Reply | Pong | ControlReply):
                        future = self._pending.get(frame.request_id)
                        if future is not None and not future.done():
                            future.set_result(frame)
        except (frames.FrameError, ConnectionError, OSError) as exc:
            log.warning("channel_read_failed", shard=self.shard_id, error=repr(exc))
        finally:
            self._lost(f"connection to shard {self.shard_id} lost")

    def _lost(self, why: str) -> None:
        self.ready = False
        if self._writer is not None:
            self._writer.close()
        self._writer = self._out = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ShardUnavailable(why))

    async def _sweep(self) -> None:
        """Answer requests past their deadline (one timeout for all: the FIFO is sorted).
        Runs for the client's life; wakes every 20 ms."""
        deadlines = self._deadlines
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic_ns()
            while deadlines and deadlines[0][0] <= now:
                _, request_id = deadlines.popleft()
                future = self._pending.get(request_id)
                if future is not None and not future.done():
                    future.set_exception(ShardUnavailable(
                        f"shard {self.shard_id} did not answer within {self._timeout_ns // 1_000_000} ms"))
            while deadlines and deadlines[0][1] not in self._pending:
                deadlines.popleft()

    async def close(self) -> None:
        for task in (self._sweeper, self._reader_task):
            if task is not None:
                task.cancel()
        self._lost("edge closing")
