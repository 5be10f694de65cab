"""The internal channel's messages: length-prefixed msgspec frames. Pure, no I/O.

An edge sends ``Request`` frames to a shard process over a persistent connection (a Unix
socket on one host; gateway/cluster/channel.py) and reads ``Reply`` frames back, matched by
``request_id``, so that many requests are in flight on one connection and answered in
any order. Every frame on the wire is a 4-byte big-endian length, then that many bytes of
msgpack (msgspec, the Structs below, array-like to keep them small).

``Reply.outcome`` (a traced command's ``Reply`` also carries its ``batch_id``):
- ``OUTCOME_RESULT``: ``result`` is the shard's Result (durable, as always);
- ``OUTCOME_OVERLOADED``: the shard's inbox is full; retry after ``retry_after_s``;
- ``OUTCOME_UNAVAILABLE``: the shard stopped, is draining or its storage fails, or the
  command's commit is overdue; retryable (``detail`` says which);
- ``OUTCOME_NOT_OWNER``: the shard does not own the command's bucket under map revision
  ``map_revision``: the edge refreshes its shard map and sends the command to the owner.
A ``Ping`` is answered with a ``Pong`` carrying the shard's readiness.

Control frames (``gateway shards move|resize|status``, gateway/cluster/mover.py): a
``Control`` asks the shard to ``release`` buckets (stop taking their commands, commit what
it applied for them, forget their players), to ``acquire`` buckets the map now gives it, or
for its ``stats``; it is answered by a ``ControlReply``.

Authentication (``cluster.channel_secret`` set): the shard opens every connection with a
``Challenge`` (a random nonce); the first frame the peer sends must be a ``Hello`` whose
``mac`` is ``channel_mac(secret, nonce)``, else the connection is closed unanswered.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Final

import msgspec

from gateway.shards.commands import Command, Result

LENGTH: Final = struct.Struct(">I")
#: Largest frame accepted either way (a command is a few hundred bytes; an Atomic unit of
#: ATOMIC_ACTIONS_MAX actions a few tens of kB).
FRAME_BYTES_MAX: Final = 1 << 20

OUTCOME_RESULT, OUTCOME_OVERLOADED, OUTCOME_UNAVAILABLE, OUTCOME_NOT_OWNER = 0, 1, 2, 3


class Request(msgspec.Struct, array_like=True, tag=1):
    """A command for the shard; ``bucket`` as the edge computed it (the shard checks it).
    ``traceparent``: the W3C trace context of the edge's request span, only when that span
    is sampled ("" otherwise: the shard records no spans for the command)."""

    request_id: int
    bucket: int
    command: Command
    traceparent: str = ""


class Ping(msgspec.Struct, array_like=True, tag=2):
    request_id: int


class Reply(msgspec.Struct, array_like=True, tag=3):
    request_id: int
    outcome: int
    result: Result | None = None
    retry_after_s: int = 0
    map_revision: int = 0
    detail: str = ""
    batch_id: int = 0  # the batch that committed a traced command (0: untraced or no commit)


class Pong(msgspec.Struct, array_like=True, tag=4):
    request_id: int
    ready: bool
    shard_id: int
    map_revision: int


CONTROL_RELEASE, CONTROL_ACQUIRE, CONTROL_STATS = "release", "acquire", "stats"


class Control(msgspec.Struct, array_like=True, tag=5):
    """``op`` one of CONTROL_*; ``buckets`` and ``map_revision`` (the revision the move
    writes) for release and acquire."""

    request_id: int
    op: str
    buckets: list[int] = []
    map_revision: int = 0


class ShardStats(msgspec.Struct, array_like=True):
    """What ``gateway shards status`` shows of one shard process. Counters are totals
    since the process started (the caller takes differences for rates)."""

    shard_id: int
    epoch: int
    map_revision: int
    ready: bool
    buckets: int
    players_resident: int
    keys_resident: int
    inbox_depth: int
    commands_total: int
    batches_total: int
    flush_seconds_total: float
    address: str = ""


class ControlReply(msgspec.Struct, array_like=True, tag=6):
    """``ok`` false: ``detail`` says why (the caller then fences the shard or gives up)."""

    request_id: int
    ok: bool
    detail: str = ""
    epoch: int = 0
    stats: ShardStats | None = None


class Challenge(msgspec.Struct, array_like=True, tag=7):
    nonce: bytes


class Hello(msgspec.Struct, array_like=True, tag=8):
    mac: bytes


NONCE_BYTES: Final = 32


def channel_mac(secret: str, nonce: bytes) -> bytes:
    """HMAC-SHA256 of the shard's nonce under the cluster's channel secret."""
    return hmac.new(secret.encode(), b"gateway-channel-v1:" + nonce, hashlib.sha256).digest()


Frame = Request | Ping | Reply | Pong | Control | ControlReply | Challenge | Hello

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Frame)


def encode(frame: Frame) -> bytes:
    """The frame with its length prefix, ready to write."""
    body = _encoder.encode(frame)
    assert len(body) <= FRAME_BYTES_MAX, "frame too large"
    return LENGTH.pack(len(body)) + body


class FrameError(Exception):
    """The peer sent something that is not a frame: the connection is closed."""


class FrameReader:
    """Cuts a byte stream into frames: ``feed(data)`` returns the frames completed so far."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        start = 0
        end = len(buffer)
        while end - start >= 4:
            (size,) = LENGTH.unpack_from(buffer, start)
            if size > FRAME_BYTES_MAX:
                raise FrameError(f"frame of {size} bytes exceeds {FRAME_BYTES_MAX}")
            if end - start - 4 < size:
                break
            try:
                frames.append(_decoder.decode(memoryview(buffer)[start + 4:start + 4 + size]))
            except msgspec.DecodeError as exc:
                raise FrameError(f"undecodable frame: {exc}") from None
            start += 4 + size
        if start:
            del buffer[:start]
        return frames
