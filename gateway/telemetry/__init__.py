"""Tracing (OpenTelemetry): the SDK set-up, the edge's request spans, the trace a command
carries to its shard and the shard's spans. Metrics are gateway/metrics.py."""
