"""The edge span of one HTTP request (tracing on; gateway/telemetry/tracing.py).

Opened by ``FastPath`` before routing, as a child of the caller's W3C ``traceparent`` /
``tracestate`` headers when they are valid (else a new trace, sampled at
``tracing.sample_ratio``), and made current so that log lines carry its ids (gateway/logs.py).
Closed after the answer with the route template, the HTTP status and what the request
noted (``gateway.provider``, ``gateway.partner``, ``gateway.outcome``, ``gateway.batch_id``).
An answer carries the span's own ``traceparent`` header (whenever the caller sent one, and
whenever the request is recorded), so a caller can quote it.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry.trace import Span, SpanKind, StatusCode, get_current_span, set_span_in_context
from starlette.types import Scope

from gateway.telemetry import tracing
from gateway.telemetry.command import extract, traceparent_of
from gateway.telemetry.request import RequestObservation

TRACEPARENT_HEADER = b"traceparent"
_TRACESTATE_HEADER = b"tracestate"
#: A header value longer than this is ignored (W3C: traceparent is 55 chars; tracestate 512).
_TRACE_HEADER_CHARS_MAX = 1024
_ATTACH_TOKEN = "gateway.otel_token"


def open(scope: Scope, request_id: bytes) -> Span | None:
    """Start the request's SERVER span, or None: no trace context from the caller and this
    new trace not sampled (``tracing.root_sampled``). ``scope`` gets the context token to
    detach when the span records."""
    tracer = tracing.tracer()
    assert tracer is not None
    carrier: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in (TRACEPARENT_HEADER, _TRACESTATE_HEADER) and len(value) <= _TRACE_HEADER_CHARS_MAX:
            carrier[name.decode()] = value.decode("latin-1")
    parent = extract(carrier) if carrier else None
    if (parent is None or not get_current_span(parent).get_span_context().is_valid) and not tracing.root_sampled():
        return None
    method = scope["method"]
    # Few attributes: the OTLP exporter's encoding, per attribute, is most of what a
    # sampled span costs (py-spy; docs/BENCHMARKS.md, "Tracing").
    span = tracer.start_span(f"{method} {scope['path'][:256]}", context=parent, kind=SpanKind.SERVER, attributes={
        "http.request.method": method, "gateway.request_id": request_id.decode("latin-1"),
    })
    if span.is_recording():
        scope[_ATTACH_TOKEN] = otel_context.attach(set_span_in_context(span))
    return span


def traceparent(span: Span) -> bytes:
    """The span's W3C ``traceparent`` header value."""
    return traceparent_of(set_span_in_context(span)).encode()


def close(span: Span, scope: Scope, observation: RequestObservation, status: int) -> None:
    """End the span with the route, status and the request's notes; detach its context."""
    token = scope.pop(_ATTACH_TOKEN, None)
    if token is not None:
        otel_context.detach(token)
    if not span.is_recording():
        span.end()
        return
    # A route with path parameters is named by its template (a bounded set of span names);
    # a fixed path (every money route) keeps the path as its name.
    template = getattr(scope.get("route"), "path", "")
    if "{" in template:
        span.update_name(f"{scope['method']} {template}")
        span.set_attribute("http.route", template)
    span.set_attribute("http.response.status_code", status)
    if observation.provider:
        span.set_attribute("gateway.provider", observation.provider)
    if observation.partner:
        span.set_attribute("gateway.partner", observation.partner)
    if observation.outcome:
        span.set_attribute("gateway.outcome", observation.outcome)
    if observation.batch_id:
        span.set_attribute("gateway.batch_id", observation.batch_id)
    if status >= 500 or status == 0:
        span.set_status(StatusCode.ERROR)
    span.end()
