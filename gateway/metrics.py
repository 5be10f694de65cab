"""Prometheus metrics (exposed at ``/metrics``). Names follow Prometheus conventions: units last.

Under ``gateway serve``'s process model the supervisor sets ``PROMETHEUS_MULTIPROC_DIR``
for its children, so prometheus_client keeps every process's values in files there and
any edge's ``/metrics`` shows the whole tree (shard metrics included, labelled by shard):
prometheus_client's multiprocess mode, its documented way of doing this. Gauges say how
they combine across processes (``multiprocess_mode``); a child that exits is marked dead
by the supervisor so its live gauges disappear.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

REGISTRY = CollectorRegistry(auto_describe=True)
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def exposition() -> bytes:
    """The text exposition of this process's metrics, or of every process of the tree in
    multiprocess mode."""
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)

_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

#: The RED signals of every money route. ``route``: "POST /v1/wallet/debit" or a provider
#: integration's "hub88 /transaction/bet"; ``provider``: the studio protocol ("" for the
#: partner API); ``outcome``: the HTTP status; ``code``: the stable answer code ("ok",
#: "insufficient_funds", "retryable", ...; a provider answers 200 with its own status, so
#: its errors show here and not in ``outcome``). docs/SLO.md says which codes are errors.
REQUEST_LABELS = ("route", "provider", "outcome", "code")
requests_total = Counter(
    "gateway_requests_total", "HTTP requests by route, provider, HTTP status and answer code.",
    REQUEST_LABELS, registry=REGISTRY,
)
request_latency_seconds = Histogram(
    "gateway_request_latency_seconds", "HTTP request latency by route, provider, HTTP status and answer code.",
    REQUEST_LABELS, buckets=_LATENCY_BUCKETS_S, registry=REGISTRY,
)
inbox_depth = Gauge("gateway_shard_inbox_depth", "Commands waiting in the shard inbox.", ("shard",), registry=REGISTRY,
    multiprocess_mode="livesum")
players_resident = Gauge("gateway_shard_players_resident", "Players held in shard memory.", ("shard",), registry=REGISTRY,
    multiprocess_mode="livesum")
keys_resident = Gauge("gateway_shard_keys_resident", "Idempotency keys held in shard memory.", ("shard",), registry=REGISTRY,
    multiprocess_mode="livesum")
batch_size = Histogram(
    "gateway_batch_size_commands", "Commands per committed write-behind batch.", ("shard",),
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000), registry=REGISTRY,
)
batch_fill_ratio = Histogram(
    "gateway_batch_fill_ratio", "Commands per committed batch over shard.batch_size_max (1 = full).", ("shard",),
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0), registry=REGISTRY,
)
evictions_total = Counter(
    "gateway_shard_evictions_total", "Players and idempotency keys dropped from shard memory (LRU), by kind.",
    ("shard", "kind"), registry=REGISTRY,
)
storage_degraded = Gauge(
    "gateway_shard_storage_degraded",
    "1 while the shard's PostgreSQL has been failing past shard.storage_failure_grace_ms (or a commit "
    "is overdue), else 0.", ("shard",), registry=REGISTRY, multiprocess_mode="livemax",
)
fencing_events_total = Counter(
    "gateway_fencing_events_total",
    "Shard processes that found their lease fenced (a newer epoch took it: a restart elsewhere, or "
    "gateway shards move fencing an owner that did not release in time) and stopped; reason fence_lost.",
    ("reason",), registry=REGISTRY,
)
wallet_transactions_total = Counter(
    "gateway_wallet_transactions_total",
    "Committed money movements by kind (debit, credit, rollback, deposit, withdraw, ...) and currency.",
    ("kind", "currency"), registry=REGISTRY,
)
wallet_amount_minor_total = Counter(
    "gateway_wallet_amount_minor_total",
    "Sum of committed money movements in minor units, by kind and currency (bet and win volume).",
    ("kind", "currency"), registry=REGISTRY,
)
flush_latency_seconds = Histogram(
    "gateway_batch_flush_latency_seconds", "Time to commit one batch, retries included.", ("shard",),
    buckets=_LATENCY_BUCKETS_S, registry=REGISTRY,
)
flush_retries_total = Counter(
    "gateway_batch_flush_retries_total", "Batch commits retried after a transient database error.",
    ("shard",), registry=REGISTRY,
)
key_conflicts_total = Counter(
    "gateway_idempotency_key_conflicts_total",
    "Batches re-applied because the database already held some of their keys.", ("shard",), registry=REGISTRY,
)
prefetch_latency_seconds = Histogram(
    "gateway_prefetch_latency_seconds", "Time of one batched prefetch read.", ("shard",),
    buckets=_LATENCY_BUCKETS_S, registry=REGISTRY,
)
overloaded_total = Counter(
    "gateway_overloaded_total", "Commands refused with a retryable overload answer.", ("shard",), registry=REGISTRY,
)
redis_unavailable_total = Counter(
    "gateway_redis_unavailable_total", "Operations that needed Redis while it was unreachable.", registry=REGISTRY,
)
rate_limited_total = Counter(
    "gateway_rate_limited_total", "Requests refused by a rate limit (retryable answer, not audited).",
    ("kind", "name"), registry=REGISTRY,
)
rate_limit_unavailable_total = Counter(
    "gateway_rate_limit_unavailable_total",
    "Requests let through without rate limiting because Redis was unreachable (fail open).",
    registry=REGISTRY,
)
commit_timeouts_total = Counter(
    "gateway_commit_timeouts_total",
    "Callers answered retryably because their batch did not commit within shard.commit_timeout_ms.",
    ("shard",), registry=REGISTRY,
)
storage_unavailable_refusals_total = Counter(
    "gateway_storage_unavailable_refusals_total",
    "Commands refused at once (retryable) because the shard's storage was not answering.",
    ("shard",), registry=REGISTRY,
)
bucket_moving_refusals_total = Counter(
    "gateway_bucket_moving_refusals_total",
    "Commands an edge answered retryably because their bucket stayed in transit longer than "
    "cluster.move_wait_ms_max (gateway shards move|resize).",
    registry=REGISTRY,
)
buckets_released_total = Counter(
    "gateway_shard_buckets_released_total",
    "Buckets this shard handed over to another shard (gateway shards move|resize).",
    ("shard",), registry=REGISTRY,
)
buckets_acquired_total = Counter(
    "gateway_shard_buckets_acquired_total",
    "Buckets this shard took over from another shard while serving.",
    ("shard",), registry=REGISTRY,
)

# ---- sportsbook (docs/SPORTSBOOK.md) ----------------------------------------------------
sportsbook_bets_placed_total = Counter(
    "gateway_sportsbook_bets_placed_total", "Sportsbook bets accepted (stake debited)", registry=REGISTRY,
)
sportsbook_bets_refused_total = Counter(
    "gateway_sportsbook_bets_refused_total", "Sportsbook bets refused, by code", ["code"], registry=REGISTRY,
)
sportsbook_bets_settled_total = Counter(
    "gateway_sportsbook_bets_settled_total", "Sportsbook bets settled (payout committed)", registry=REGISTRY,
)
sportsbook_bets_resettled_total = Counter(
    "gateway_sportsbook_bets_resettled_total", "Sportsbook bets re-settled after a corrected result", registry=REGISTRY,
)
sportsbook_cashouts_total = Counter(
    "gateway_sportsbook_cashouts_total", "Sportsbook cash-outs paid, by kind (full, partial)", ["kind"],
    registry=REGISTRY,
)
sportsbook_reservations_swept_total = Counter(
    "gateway_sportsbook_reservations_swept_total",
    "Sportsbook liability reservations given back because their bet never committed", registry=REGISTRY,
)
sportsbook_settlement_refused_total = Counter(
    "gateway_sportsbook_settlement_refused_total",
    "Sportsbook payouts the shard refused (bet left open for an operator)", registry=REGISTRY,
)
