"""An OTLP/HTTP trace receiver for tests: what an OpenTelemetry Collector's ``otlphttp``
receiver accepts (POST /v1/traces, protobuf ``ExportTraceServiceRequest``), decoded with the
OpenTelemetry protobuf classes and kept in memory as plain dicts."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse


def _value(any_value) -> object:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class OtlpReceiver:
    """``endpoint``: the URL to export to; ``spans``: every span received, as dicts with
    ``trace_id``/``span_id``/``parent_span_id`` (hex), ``name``, ``start_ns``, ``end_ns``,
    ``attributes``, ``links`` (span ids) and ``resource`` (attributes)."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _add(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append({
                        "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(), "name": span.name,
                        "start_ns": span.start_time_unix_nano, "end_ns": span.end_time_unix_nano,
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                        "links": [link.span_id.hex() for link in span.links],
                        "resource": resource,
                    })
        with self._lock:
            self.spans.extend(found)

    def trace(self, trace_id: str) -> list[dict]:
        with self._lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]

    def wait_for(self, trace_id: str, names: set[str], timeout_s: float = 20.0) -> list[dict]:
        """The spans of ``trace_id`` once every name in ``names`` arrived (AssertionError after
        ``timeout_s`` naming what is missing)."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.trace(trace_id)
            missing = names - {s["name"] for s in spans}
            if not missing:
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"spans missing from trace {trace_id}: {sorted(missing)}; got {spans}")
            time.sleep(0.05)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
