"""The shard's spans, for the commands that carry a sampled ``CommandTrace``.

Per traced command (children of its edge request span, in the edge's trace):
- ``shard.command``: from ``Shard.submit`` until its batch committed (or, for a command that
  waits for no commit, until it was applied); attributes ``gateway.shard``,
  ``gateway.batch_id``, ``gateway.outcome``;
- ``shard.apply``: the synchronous apply step (``gateway.command``, ``gateway.outcome``).

Per group or batch holding at least one traced command (a child of the first traced
command's ``shard.command`` span, with a span link to every traced command of the group,
up to ``tracing.links_per_span_max``; the batch id is on every ``shard.command`` span in
any case):
- ``shard.prefetch``: one batched read of cold players and unknown keys
  (``gateway.prefetch.players``, ``gateway.prefetch.keys``);
- ``shard.batch.commit``: the write-behind group commit (``gateway.batch_id``,
  ``gateway.batch.size``, ``gateway.batch.commit_latency_ms``, ``gateway.batch.retries``),
  ending at the commit.

Times are wall-clock nanoseconds (``time.time_ns()``), as OpenTelemetry takes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.trace import Link, Span, set_span_in_context

from gateway.shards.commands import Command, Result
from gateway.telemetry import tracing
from gateway.telemetry.command import CommandTrace


def started(trace: CommandTrace, shard_id: int, now_ns: int) -> None:
    """The shard took the command (``Shard.submit``): open its ``shard.command`` span."""
    tracer = tracing.tracer()
    if tracer is None:
        return
    trace.span = tracer.start_span("shard.command", context=trace.parent, start_time=now_ns,
                                   attributes={"gateway.shard": shard_id})


def applied(trace: CommandTrace, command: Command, result: Result, started_ns: int, ended_ns: int,
            committing: bool) -> None:
    """The command went through ``apply()``; ``committing``: it now waits for its batch."""
    tracer = tracing.tracer()
    span = trace.span
    if tracer is None or span is None:
        return
    outcome = result.code.value
    child = tracer.start_span("shard.apply", context=set_span_in_context(span), start_time=started_ns,
                              attributes={"gateway.command": type(command).__name__, "gateway.outcome": outcome,
                                          "gateway.replayed": result.replayed})
    child.end(end_time=ended_ns)
    span.set_attribute("gateway.outcome", outcome)
    if not committing:
        span.end(end_time=ended_ns)
        trace.span = None


def _group_span(name: str, traces: Sequence[CommandTrace], started_ns: int,
                attributes: dict[str, int | str]) -> Span | None:
    tracer = tracing.tracer()
    spans = [t.span for t in traces if t.span is not None]
    if tracer is None or not spans:
        return None
    links = [Link(s.get_span_context()) for s in spans[:tracing.links_max()]]
    return tracer.start_span(name, context=set_span_in_context(spans[0]), links=links, start_time=started_ns,
                             attributes={**attributes, "gateway.traced_commands": len(spans)})


def prefetched(traces: Sequence[CommandTrace], shard_id: int, players: int, keys: int, started_ns: int,
               ended_ns: int) -> None:
    """One batched prefetch read served these traced commands (and maybe others)."""
    span = _group_span("shard.prefetch", traces, started_ns, {
        "gateway.shard": shard_id, "gateway.prefetch.players": players, "gateway.prefetch.keys": keys})
    if span is not None:
        span.end(end_time=ended_ns)


def committed(traces: Sequence[CommandTrace], shard_id: int, batch_id: int, size: int, retries: int,
              started_ns: int, ended_ns: int) -> None:
    """Batch ``batch_id`` of ``size`` commands committed: its span, then every traced
    command's ``shard.command`` span ends with the batch id."""
    latency_ms = (ended_ns - started_ns) / 1e6
    span = _group_span("shard.batch.commit", traces, started_ns, {
        "gateway.shard": shard_id, "gateway.batch_id": batch_id, "gateway.batch.size": size,
        "gateway.batch.retries": retries})
    if span is not None:
        span.set_attribute("gateway.batch.commit_latency_ms", latency_ms)
        span.end(end_time=ended_ns)
    for trace in traces:
        trace.batch_id = batch_id
        command_span = trace.span
        if command_span is not None:
            command_span.set_attribute("gateway.batch_id", batch_id)
            command_span.end(end_time=ended_ns)
            trace.span = None


def failed(trace: CommandTrace, why: str) -> None:
    """The command was answered with an error (shard stopped, commit overdue)."""
    span = trace.span
    if span is not None:
        span.set_attribute("gateway.outcome", "unavailable")
        span.set_attribute("error.type", why[:120])
        span.end()
        trace.span = None
