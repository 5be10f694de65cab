"""The trace context one command carries from its edge request to its shard, and back.

An edge creates a ``CommandTrace`` only for a command whose request span is sampled
(``request.py``); unsampled commands carry None and cost the shard nothing. Across
processes the context travels as a W3C ``traceparent`` string in the internal ``Request``
frame (gateway/cluster/frames.py) and the shard's batch id comes back in the ``Reply``.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.trace import Span, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


class CommandTrace:
    """``parent``: the context of the edge span the command belongs to; ``span``: the
    shard's ``shard.command`` span once the shard took the command; ``batch_id``: the batch
    that committed it (0 until then, and for a command that waits for no commit)."""

    __slots__ = ("batch_id", "parent", "span")

    def __init__(self, parent: Context) -> None:
        self.parent = parent
        self.span: Span | None = None
        self.batch_id = 0

    @classmethod
    def under(cls, span: Span) -> CommandTrace:
        """A trace whose parent is ``span`` (an edge request span in this process)."""
        return cls(set_span_in_context(span))

    @classmethod
    def from_traceparent(cls, traceparent: str) -> CommandTrace | None:
        """The trace of a ``traceparent`` received in a frame; None if it is not a valid
        W3C trace context (the command then runs untraced)."""
        context = _PROPAGATOR.extract({"traceparent": traceparent})
        from opentelemetry.trace import get_current_span

        if not get_current_span(context).get_span_context().is_valid:
            return None
        return cls(context)

    def traceparent(self) -> str:
        """The W3C ``traceparent`` of ``parent``, for the frame to the shard process."""
        return traceparent_of(self.parent)


def traceparent_of(context: Context) -> str:
    """The W3C ``traceparent`` header value of the span current in ``context`` ("" if none)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier.get("traceparent", "")


def extract(headers: dict[str, str]) -> Context:
    """The context a caller's ``traceparent`` / ``tracestate`` headers name (an empty
    context if they are missing or malformed: the request then starts a new trace)."""
    return _PROPAGATOR.extract(headers)
