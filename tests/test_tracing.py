"""Tracing end to end: a Hub88 bet through ``gateway serve`` (separate edge and shard
processes) with the caller's W3C ``traceparent``, exported over OTLP/HTTP to a receiver in
the test. Source: docs/OBSERVABILITY.md ("Traces"); W3C Trace Context (traceparent format).

The trace must hold the edge's SERVER span (child of the caller's span, with the batch id),
the shard's ``shard.apply`` span and the ``shard.batch.commit`` span with the batch id, size
and commit latency, ending at the commit (children of the edge span, linked to it, recorded
in the shard process); the answer carries the edge span's own ``traceparent``.
"""

from __future__ import annotations

import asyncio
import re
import secrets

import httpx
import pytest

from tests.conftest import new_id, new_player
from tests.otlp_receiver import OtlpReceiver
from tests.test_hub88_http import Hub88, bet_body, open_session

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")  # flags: sampled, random (level 2)


@pytest.fixture
def receiver():
    r = OtlpReceiver()
    yield r
    r.close()


def cluster_env(receiver: OtlpReceiver, sample_ratio: str) -> dict[str, str]:
    return {
        "GATEWAY_CLUSTER__SINGLE_PROCESS": "false", "GATEWAY_CLUSTER__EDGES": "1", "GATEWAY_CLUSTER__SHARDS": "1",
        "GATEWAY_TRACING__EXPORTER": "otlp", "GATEWAY_TRACING__OTLP_ENDPOINT": receiver.endpoint,
        "GATEWAY_TRACING__SAMPLE_RATIO": sample_ratio, "GATEWAY_TRACING__EXPORT_INTERVAL_MS": "100",
    }


async def test_hub88_bet_trace_crosses_edge_shard_and_batch(spawn_gateway, receiver):
    gateway = await spawn_gateway(env=cluster_env(receiver, "0"))  # only the caller's sampled trace records
    async with gateway.client() as client, httpx.AsyncClient(base_url=gateway.url, timeout=15.0) as http:
        player = await new_player(client, deposit_minor=10_000)
        token = await open_session(client, player)
        trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        body = bet_body(player, token, new_id("tx"), 356_000, round_id=new_id("rd"))
        hub = Hub88(http)
        from tests.test_hub88_http import encode

        answer = await hub.send("/transaction/bet", encode(body),
                                headers={"traceparent": f"00-{trace_id}-{caller_span}-01"})
        assert answer["status"] == "RS_OK", answer
        # The answer names the edge span: same trace, a span of ours, sampled.
        r = await http.post("/providers/hub88/user/balance", content=b"{}",
                            headers={"traceparent": f"00-{trace_id}-{caller_span}-01"})
        returned = TRACEPARENT.match(r.headers["traceparent"])
        assert returned and returned.group(1) == trace_id and returned.group(2) != caller_span, r.headers

    spans = await asyncio.to_thread(receiver.wait_for, trace_id,
                                    {"POST /providers/hub88/transaction/bet", "shard.apply", "shard.batch.commit"})
    by_name: dict[str, list[dict]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    (edge,) = by_name["POST /providers/hub88/transaction/bet"]
    assert edge["parent_span_id"] == caller_span
    assert edge["resource"]["service.instance.role"] == "edge"
    assert edge["attributes"]["gateway.provider"] == "hub88"
    assert edge["attributes"]["gateway.partner"] == "demo"
    assert edge["attributes"]["gateway.outcome"] == "ok"
    assert edge["attributes"]["http.response.status_code"] == 200
    batch_id = edge["attributes"]["gateway.batch_id"]
    assert batch_id > 0
    # The shard's spans of the bet: children of its edge span (the first traced command of
    # their group and batch), linked to it, recorded by the shard process.
    (apply,) = [s for s in by_name["shard.apply"] if s["parent_span_id"] == edge["span_id"]]
    (batch,) = [s for s in by_name["shard.batch.commit"] if s["attributes"]["gateway.batch_id"] == batch_id]
    for shard_span in (apply, batch):
        assert shard_span["resource"]["service.instance.role"] == "shard"
        assert shard_span["resource"]["service.instance.id"] != edge["resource"]["service.instance.id"]
        assert edge["span_id"] in shard_span["links"]
    assert batch["parent_span_id"] == edge["span_id"]
    assert batch["attributes"]["gateway.batch.size"] >= 1
    assert batch["attributes"]["gateway.batch.commit_latency_ms"] > 0
    # Order in time: the edge span holds the shard's; the commit ends before the answer.
    assert edge["start_ns"] <= apply["start_ns"] <= apply["end_ns"] <= batch["start_ns"] <= batch["end_ns"] <= edge["end_ns"]


async def test_unsampled_caller_and_zero_ratio_record_nothing(spawn_gateway, receiver):
    gateway = await spawn_gateway(env=cluster_env(receiver, "0"))
    async with gateway.client() as client:
        player = await new_player(client, deposit_minor=1_000)
        trace_id = secrets.token_hex(16)
        r = await client.get(f"/v1/players/{player}/balance",
                             headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-00"})
        assert r.status_code == 200
        assert TRACEPARENT.match(r.headers["traceparent"]).group(1) == trace_id
        # A malformed traceparent starts a new (here unsampled) trace and is never an error.
        r = await client.get(f"/v1/players/{player}/balance", headers={"traceparent": "00-zz-yy-01"})
        assert r.status_code == 200
    await asyncio.sleep(0.5)
    assert receiver.spans == []


async def test_full_sampling_records_partner_api_calls(spawn_gateway, receiver):
    gateway = await spawn_gateway(env={**cluster_env(receiver, "1"), "GATEWAY_CLUSTER__SINGLE_PROCESS": "true"})
    async with gateway.client() as client:
        player = await new_player(client, deposit_minor=1_000)
        r = await client.post("/v1/wallet/debit", json={"transaction_id": new_id("tx"), "player_id": player,
                                                        "currency": "EUR", "amount_minor": 5_000,
                                                        "round_id": new_id("rd"), "game_id": "g1"})
        assert r.status_code == 402 and r.json()["code"] == "insufficient_funds", r.text
        returned = TRACEPARENT.match(r.headers.get("traceparent", ""))
        assert returned, r.headers
        trace_id = returned.group(1)
    spans = await asyncio.to_thread(receiver.wait_for, trace_id, {"POST /v1/wallet/debit", "shard.apply"})
    (edge,) = [s for s in spans if s["name"] == "POST /v1/wallet/debit"]
    assert edge["attributes"]["gateway.outcome"] == "insufficient_funds"
    assert edge["resource"]["service.instance.role"] == "gateway"


def test_log_lines_carry_the_current_spans_ids() -> None:
    import io
    import json

    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

    from gateway.logs import configure_logging, get_logger

    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        context = SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=False, trace_flags=TraceFlags(1))
        with use_span(NonRecordingSpan(context)):
            get_logger("test").info("inside")
        get_logger("test").info("outside")
    finally:
        configure_logging("info")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines()[-2:])
    assert inside["trace_id"] == f"{0xABC:032x}" and inside["span_id"] == f"{0xDEF:016x}"
    assert "trace_id" not in outside
