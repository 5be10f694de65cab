"""The OpenTelemetry SDK of one process: provider, sampler, exporter (``[tracing]``).

``configure(settings, role)`` is called once per serving process (an edge's app, a shard
process). With ``tracing.exporter = "none"`` (the default) nothing is set up and ``tracer()``
is None: every tracing step in the request path is then a single ``is None`` test.

Sampling is decided once per trace, at the edge. A caller's ``traceparent`` decides for its
own trace (the SDK's ``ParentBased`` sampler: sampled is followed, not sampled is never
recorded). A request without one starts a trace with probability ``tracing.sample_ratio``,
decided by ``root_sampled()`` *before* the SDK is asked, so that an unsampled request
creates no span at all (the SDK's unsampled span still costs ~5 µs; docs/BENCHMARKS.md,
"Tracing"). The shard records spans only for commands whose edge span was sampled
(``gateway/telemetry/command.py``); it never samples on its own.

Spans leave the process through the SDK's ``BatchSpanProcessor`` (a bounded queue,
``tracing.queue_spans_max``; when it is full new spans are dropped, never waited for) to
OTLP over HTTP (``tracing.otlp_endpoint``, e.g. an OpenTelemetry Collector, Jaeger or Tempo)
or, for a look by hand, to JSON on stdout (``exporter = "console"``).
"""

from __future__ import annotations

import atexit
import os
import random
import socket

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Tracer

from gateway.config import Settings

EXPORTERS = ("none", "otlp", "console")

_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_links_max = 128
_sample_ratio = 0.0


def tracer() -> Tracer | None:
    """This process's tracer, or None when tracing is off."""
    return _tracer


def root_sampled() -> bool:
    """Whether a request that brings no trace context starts a recorded trace."""
    return _sample_ratio >= 1.0 or random.random() < _sample_ratio


def links_max() -> int:
    """Span links one span may carry (``tracing.links_per_span_max``, the SDK's limit)."""
    return _links_max


def configure(settings: Settings, role: str) -> None:
    """Set up (or replace) this process's tracer from ``settings.tracing``.

    ``role``: "edge", "shard" or "gateway" (one process doing both), recorded as the
    resource's ``service.instance.role`` beside ``service.name`` and the host and pid.
    """
    global _provider, _tracer, _links_max, _sample_ratio
    shutdown()
    config = settings.tracing
    assert config.exporter in EXPORTERS, config.exporter
    if config.exporter == "none":
        return
    _links_max = config.links_per_span_max
    _sample_ratio = config.sample_ratio
    resource = Resource.create({
        "service.name": config.service_name,
        "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
        "service.instance.role": role,
    })
    provider = TracerProvider(
        resource=resource,
        sampler=ParentBased(ALWAYS_ON),  # roots are sampled before the SDK is asked: root_sampled()
        span_limits=SpanLimits(max_links=config.links_per_span_max, max_attributes=64, max_events=32),
    )
    provider.add_span_processor(BatchSpanProcessor(
        _exporter(settings),
        max_queue_size=config.queue_spans_max,
        max_export_batch_size=min(config.export_batch_spans_max, config.queue_spans_max),
        schedule_delay_millis=config.export_interval_ms,
        export_timeout_millis=config.otlp_timeout_ms,
    ))
    _provider = provider
    _tracer = provider.get_tracer("gateway")


def _exporter(settings: Settings) -> SpanExporter:
    config = settings.tracing
    if config.exporter == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=config.otlp_endpoint, timeout=config.otlp_timeout_ms / 1000)


def shutdown() -> None:
    """Export what is queued (bounded by the exporter's timeout) and stop tracing."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


atexit.register(shutdown)
