"""What every edge route (generic API, provider adapters) is handed: the EdgeContext.

An adapter never touches a shard's state, the database or Redis directly; it decodes its
wire format into a ``Command``, calls ``ctx.submit(command)`` and encodes the ``Result``.
``submit`` raises ``Overloaded`` / ``ShardUnavailable`` for retryable answers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.config import Settings
from gateway.edge.sessions import SessionStore
from gateway.shards.commands import Code, Command, Origin, RecordRefusal, Result

Submit = Callable[[Command], Awaitable[Result]]


class Limiter(Protocol):
    async def admit(self, kind: str, name: str) -> int | None: ...


@dataclass
class EdgeContext:
    settings: Settings
    submit: Submit
    sessions: SessionStore
    limiter: Limiter | None = None
    edge_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    _request_seq: int = 0
    _request_prefix: str = field(default_factory=lambda: f"{uuid.uuid4().hex[:12]}-")

    def origin(self, route: str, request_id: str | None = None) -> Origin:
        """Audit origin for a request arriving now on ``route``.

        Without a caller's request id, one is made from the edge id and a counter (unique per
        edge process; cheaper than a uuid4 per request).
        """
        if not request_id:
            self._request_seq += 1
            request_id = f"{self._request_prefix}{self._request_seq}"
        return Origin(
            edge=self.edge_id,
            route=route,
            request_id=request_id[:128],
            received_at_us=time.time_ns() // 1_000,
        )

    async def admit(self, kind: str, name: str) -> int | None:
        """Rate limit: None if the request may proceed, else the seconds to wait (>= 1).

        ``kind`` is "partner" (generic API, ``name`` = partner id) or "provider" (adapters,
        ``name`` = provider name, e.g. "evolution"). Limits come from ``[rate_limits]``;
        the limiter fails open when Redis is down (see ``gateway.edge.ratelimit``).
        """
        if self.limiter is None:
            return None
        return await self.limiter.admit(kind, name)

    async def record_refusal(
        self,
        *,
        scope: str,
        code: Code,
        detail: str,
        origin: Origin,
        request: dict | None = None,
        partner_id: str | None = None,
        player_id: str | None = None,
    ) -> None:
        """Write a refused request into the audit chain (docs/DESIGN.md section 4).

        Routed to the player's shard when the partner and a player id are known, else to shard 0's
        chain. Best effort under overload: a full shard drops the audit of a refusal rather
        than refuse to refuse (the refusal changes no money either way).
        """
        from gateway.shards.commands import Overloaded, ShardUnavailable

        command = RecordRefusal(
            scope=scope[:64],
            code=code,
            detail=detail[:512],
            request=request or {},
            partner_id=partner_id,
            player_id=player_id[:128] if isinstance(player_id, str) and partner_id is not None else None,
            origin=origin,
        )
        with contextlib.suppress(Overloaded, ShardUnavailable):
            await self.submit(command)
