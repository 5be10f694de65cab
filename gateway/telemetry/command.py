"""The trace context one command carries from its edge request to its shard, and back.

An edge creates a ``CommandTrace`` only for a command whose request span is sampled
(``request.py``); unsampled commands carry None and cost the shard nothing. Across
processes the context travels as a W3C ``traceparent`` string in the internal ``Request``
frame (gateway/cluster/frames.py) and the shard's batch id comes back in the ``Reply``.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, get_current_span, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


class CommandTrace:
    """``span_context``: the edge request span the command belongs to (the parent of, or
    linked from, the shard's spans); ``batch_id``: the batch that committed it (0 until
    then, and for a command that waits for no commit)."""

    __slots__ = ("batch_id", "span_context")

    def __init__(self, span_context: SpanContext) -> None:
        self.span_context = span_context
        self.batch_id = 0

    @classmethod
    def under(cls, span: Span) -> CommandTrace:
        """The trace of a command of ``span`` (an edge request span in this process)."""
        return cls(span.get_span_context())

    @classmethod
    def from_traceparent(cls, traceparent: str) -> CommandTrace | None:
        """The trace of a ``traceparent`` received in a frame; None if it is not a valid
        W3C trace context (the command then runs untraced)."""
        span_context = get_current_span(_PROPAGATOR.extract({"traceparent": traceparent})).get_span_context()
        return cls(span_context) if span_context.is_valid else None

    def context(self) -> Context:
        """A context whose current span is the edge span (to parent a shard span on)."""
        return set_span_in_context(NonRecordingSpan(self.span_context))

    def traceparent(self) -> str:
        """The W3C ``traceparent`` of the edge span, for the frame to the shard process."""
        return traceparent_of(self.context())


def traceparent_of(context: Context) -> str:
    """The W3C ``traceparent`` header value of the span current in ``context`` ("" if none)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier.get("traceparent", "")


def extract(headers: dict[str, str]) -> Context:
    """The context a caller's ``traceparent`` / ``tracestate`` headers name (an empty
    context if they are missing or malformed: the request then starts a new trace)."""
    return _PROPAGATOR.extract(headers)
