"""The shard's spans, for the groups and batches that hold commands with a sampled
``CommandTrace``.

The shard works in groups (one prefetch and one apply pass for up to
``shard.prefetch_players_max`` commands) and batches (one group commit), so its spans are
per group and per batch, not per command: each is a child of the first traced command's
edge span (so it shows in that request's trace) with a span link to the edge span of every
traced command it served, up to ``tracing.links_per_span_max``; every traced command also
gets the batch id back, which its edge span records as ``gateway.batch_id``. Prefetch and
apply spans are recorded for the first group of a batch that holds a traced command (their
number would otherwise not fall with the sampling ratio; docs/BENCHMARKS.md, "Tracing");
the batch span links every traced command of the batch. Spans:

- ``shard.prefetch``: one batched read of cold players and unknown keys
  (``gateway.prefetch.players``, ``gateway.prefetch.keys``);
- ``shard.apply``: the synchronous apply pass over a group (``gateway.group.size``);
- ``shard.batch.commit``: the write-behind group commit (``gateway.batch_id``,
  ``gateway.batch.size``, ``gateway.batch.commit_latency_ms``, ``gateway.batch.retries``),
  ending at the commit.

Every span names ``gateway.shard`` and counts ``gateway.traced_commands``. Times are
wall-clock nanoseconds (``time.time_ns()``), as OpenTelemetry takes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.trace import Link

from gateway.telemetry import tracing
from gateway.telemetry.command import CommandTrace


def _record(name: str, traces: Sequence[CommandTrace], started_ns: int, ended_ns: int,
            attributes: dict[str, int | float | str]) -> None:
    tracer = tracing.tracer()
    if tracer is None or not traces:
        return
    links = [Link(t.span_context) for t in traces[:tracing.links_max()]]
    span = tracer.start_span(name, context=traces[0].context(), links=links, start_time=started_ns,
                             attributes={**attributes, "gateway.traced_commands": len(traces)})
    span.end(end_time=ended_ns)


def prefetched(traces: Sequence[CommandTrace], shard_id: int, players: int, keys: int, started_ns: int,
               ended_ns: int) -> None:
    """One batched prefetch read served these traced commands (and maybe others)."""
    _record("shard.prefetch", traces, started_ns, ended_ns, {
        "gateway.shard": shard_id, "gateway.prefetch.players": players, "gateway.prefetch.keys": keys})


def applied(traces: Sequence[CommandTrace], shard_id: int, group_size: int, started_ns: int, ended_ns: int) -> None:
    """A group of ``group_size`` commands, these traced among them, went through ``apply()``."""
    _record("shard.apply", traces, started_ns, ended_ns, {"gateway.shard": shard_id, "gateway.group.size": group_size})


def committed(traces: Sequence[CommandTrace], shard_id: int, batch_id: int, size: int, retries: int,
              started_ns: int, ended_ns: int) -> None:
    """Batch ``batch_id`` of ``size`` commands committed; its traced commands learn its id."""
    for trace in traces:
        trace.batch_id = batch_id
    _record("shard.batch.commit", traces, started_ns, ended_ns, {
        "gateway.shard": shard_id, "gateway.batch_id": batch_id, "gateway.batch.size": size,
        "gateway.batch.retries": retries, "gateway.batch.commit_latency_ms": (ended_ns - started_ns) / 1e6})
