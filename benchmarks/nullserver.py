"""A do-nothing HTTP/1.1 server (uvloop, raw Protocol) answering every request with a canned
200 JSON body. Used only by ``benchmarks.calibrate`` to measure what the load generator itself
costs, with a server far cheaper than anything under test.

    python -m benchmarks.nullserver --port 8099 --max-s 120
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop

_BODY = (b'{"transaction_id":"x","player_id":"p","currency":"EUR","cash_minor":1,'
         b'"bonus_minor":0,"replayed":false}')
_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
             + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)
_RESPONSE_CLOSE = _RESPONSE.replace(b"content-type:", b"connection: close\r\ncontent-type:", 1)


CLOSE_EVERY = 0  # test aid: close the connection after every N-th answer (0: never)


class NullProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out: list[bytes] = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buf[:end]).lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15 : head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0
                              else len(head)]) if i >= 0 else 0
            if len(buf) < end + 4 + length:
                break
            del buf[: end + 4 + length]
            closing = CLOSE_EVERY and self.answered + len(out) + 1 >= CLOSE_EVERY
            out.append(_RESPONSE_CLOSE if closing else _RESPONSE)
            if closing:
                break
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
            self.answered += len(out)
            if CLOSE_EVERY and self.answered >= CLOSE_EVERY:
                self.transport.close()


async def serve(port: int, max_s: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(NullProtocol, "127.0.0.1", port, backlog=1024)
    async with server:
        await asyncio.sleep(max_s)  # bounded: exits by itself


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--max-s", type=float, default=600.0)
    p.add_argument("--close-every", type=int, default=0)
    a = p.parse_args()
    global CLOSE_EVERY
    CLOSE_EVERY = a.close_every
    uvloop.run(serve(a.port, a.max_s))


if __name__ == "__main__":
    main()
