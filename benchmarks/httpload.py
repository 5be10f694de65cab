"""A lean HTTP/1.1 keep-alive client on asyncio Protocols, for load generation.

Why not httpx/aiohttp: they spend 100-300 us of CPU per request, which on a 2-core box shared
with the server and PostgreSQL would make the generator the bottleneck. This client builds
request bytes with ``%`` formatting, writes them to a raw transport and parses only the status
line and the body framing (Content-Length or chunked) of the answer. One request in flight
per connection (no pipelining), as a real client pool does.

Everything is callback based (no coroutine per request): ``HttpConn.send(data, cb)`` calls
``cb(status, body)`` once, with ``status == 0`` when the connection failed or was closed.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

Callback = Callable[[int, bytes], None]

_NO_BODY_STATUSES = frozenset({204, 304})


class Target:
    """Host/port of an ``http://`` base URL and the bytes of a request head prefix."""

    def __init__(self, base_url: str, api_key: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"only http:// targets are supported, got {base_url!r}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.base_path = parts.path.rstrip("/")
        self.host_header = f"{self.host}:{self.port}".encode()
        self.auth = f"Bearer {api_key}".encode()

    def post(self, path: str, body: bytes) -> bytes:
        """The full bytes of a keep-alive JSON POST."""
        return b"".join(
            (
                b"POST ",
                self.base_path.encode(),
                path.encode(),
                b" HTTP/1.1\r\nHost: ",
                self.host_header,
                b"\r\nAuthorization: ",
                self.auth,
                b"\r\nContent-Type: application/json\r\nContent-Length: ",
                str(len(body)).encode(),
                b"\r\n\r\n",
                body,
            )
        )

    def post_prefix(self, path: str) -> bytes:
        """Request head up to ``Content-Length: `` for hot paths: prefix + len + CRLFCRLF + body."""
        return b"".join(
            (
                b"POST ",
                self.base_path.encode(),
                path.encode(),
                b" HTTP/1.1\r\nHost: ",
                self.host_header,
                b"\r\nAuthorization: ",
                self.auth,
                b"\r\nContent-Type: application/json\r\nContent-Length: ",
            )
        )

    def get(self, path: str) -> bytes:
        return b"".join(
            (
                b"GET ",
                self.base_path.encode(),
                path.encode(),
                b" HTTP/1.1\r\nHost: ",
                self.host_header,
                b"\r\nAuthorization: ",
                self.auth,
                b"\r\n\r\n",
            )
        )


class HttpConn(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._cb: Callback | None = None
        self.closed = False

    # asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while self._cb is not None:
            hdr_end = buf.find(b"\r\n\r\n")
            if hdr_end < 0:
                return
            head = bytes(buf[:hdr_end]).lower()
            try:
                status = int(head[9:12])
            except ValueError:
                self.close()
                return
            start = hdr_end + 4
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                length = int(head[i + 17 : j if j >= 0 else len(head)])
                end = start + length
                if len(buf) < end:
                    return
                body = bytes(buf[start:end])
            elif b"\r\ntransfer-encoding: chunked" in head:
                parsed = _parse_chunked(buf, start)
                if parsed is None:
                    return
                body, end = parsed
            elif status in _NO_BODY_STATUSES or 100 <= status < 200:
                body, end = b"", start
            else:  # body delimited by close: not supported for keep-alive load generation
                self.close()
                return
            del buf[:end]
            if b"\r\nconnection: close" in head:
                # the server will close: never reuse this connection (the pool reconnects)
                self.closed = True
                if self.transport is not None:
                    self.transport.close()
            cb, self._cb = self._cb, None
            cb(status, body)

    # API --------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._cb is not None

    def send(self, data: bytes, cb: Callback) -> None:
        if self.closed or self.transport is None:
            cb(0, b"connection closed")
            return
        assert self._cb is None, "one request in flight per connection"
        self._cb = cb
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True
        self._fail()

    def _fail(self) -> None:
        cb, self._cb = self._cb, None
        if cb is not None:
            cb(0, b"connection lost")


def _parse_chunked(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``pos``; None while incomplete."""
    out = bytearray()
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n", pos)
            if trailer_end < 0:
                return None
            # no trailers expected; skip until an empty line
            while trailer_end != pos:
                pos = trailer_end + 2
                trailer_end = buf.find(b"\r\n", pos)
                if trailer_end < 0:
                    return None
            return bytes(out), pos + 2
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        pos += size + 2


async def open_conns(target: Target, n: int, timeout_s: float = 10.0) -> list[HttpConn]:
    """Open ``n`` connections (in parallel, bounded by the timeout)."""
    loop = asyncio.get_running_loop()

    async def one() -> HttpConn:
        _, proto = await loop.create_connection(HttpConn, target.host, target.port)
        return proto

    return list(await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), timeout_s))


async def request(conn: HttpConn, data: bytes, timeout_s: float = 10.0) -> tuple[int, bytes]:
    """Awaitable single request (for setup and checks, not for the hot path)."""
    fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

    def done(status: int, body: bytes) -> None:
        if not fut.done():
            fut.set_result((status, body))

    conn.send(data, done)
    try:
        return await asyncio.wait_for(fut, timeout_s)
    except TimeoutError:
        conn.close()
        return 0, b"timeout"
