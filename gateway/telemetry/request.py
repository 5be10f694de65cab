"""What one HTTP request notes about itself while it is served, for its span and metrics.

``FastPath`` (gateway/edge/fastpath.py) opens a ``RequestObservation`` per request and
makes it current (a context variable: each request is its own asyncio task); the provider
pipeline and the partner API fill in who called (``provider``, ``partner``) and how it ended
(``outcome``, a stable code such as ``ok``, ``insufficient_funds``, ``retryable``); the
wrapped ``submit`` (``observed_submit``) passes a sampled request's trace to the shard and
keeps the id of the batch that committed its command.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable

from opentelemetry.trace import Span

from gateway.shards.commands import Command, Result
from gateway.telemetry.command import CommandTrace


class RequestObservation:
    """``span``: the request's edge span (None when tracing is off); ``sampled``: it records."""

    __slots__ = ("batch_id", "outcome", "partner", "provider", "sampled", "span")

    def __init__(self, span: Span | None = None) -> None:
        self.span = span
        self.sampled = span is not None and span.is_recording()
        self.provider = ""
        self.partner = ""
        self.outcome = ""
        self.batch_id = 0


CURRENT: contextvars.ContextVar[RequestObservation | None] = contextvars.ContextVar("gateway_request", default=None)


def current() -> RequestObservation | None:
    """The observation of the request being served in this task, if any."""
    return CURRENT.get()


def note(*, provider: str | None = None, partner: str | None = None, outcome: str | None = None) -> None:
    """Record facts of the current request (a no-op outside a request)."""
    observation = CURRENT.get()
    if observation is None:
        return
    if provider is not None:
        observation.provider = provider
    if partner is not None:
        observation.partner = partner
    if outcome is not None:
        observation.outcome = outcome


TracedSubmit = Callable[[Command, CommandTrace | None], Awaitable[Result]]


def observed_submit(submit: TracedSubmit) -> Callable[[Command], Awaitable[Result]]:
    """``submit(command)`` for the edge routes: hands the backend a ``CommandTrace`` when
    the current request is sampled, and notes the result's code and batch id on it."""

    async def submit_observed(command: Command) -> Result:
        observation = CURRENT.get()
        if observation is None:
            return await submit(command, None)
        trace = CommandTrace.under(observation.span) if observation.sampled and observation.span else None
        result = await submit(command, trace)
        observation.outcome = result.code.value
        if trace is not None and trace.batch_id:
            observation.batch_id = trace.batch_id
        return result

    return submit_observed
