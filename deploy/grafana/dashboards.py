"""The gateway's Grafana dashboards, built with grafanalib (the JSON in dashboards/ is its
output: edit this file, then run ``.venv/bin/python deploy/grafana/dashboards.py``).

tests/test_observability_deploy.py checks that the JSON files are this file's output and
that every query names a metric the gateway exports or a recording rule of
deploy/prometheus/rules/. docker-compose.yml provisions them (provisioning/).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard, GridPos, RowPanel, Target, Template, Templating, TimeSeries

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}  # provisioning/datasources/prometheus.yml
#: Answer codes that are the gateway's fault (docs/SLO.md, "What counts as an error").
SERVER_ERROR_CODES = "retryable|overloaded|unavailable|internal_error|session_store_unavailable|exposure_unavailable"

_PANEL_W, _PANEL_H = 12, 8


def _panels(rows: list[tuple[str, list[TimeSeries]]]) -> list:
    """Lay rows of panels out two per line, each row under its title."""
    out: list = []
    y = 0
    for title, panels in rows:
        out.append(RowPanel(title=title, gridPos=GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        for i, panel in enumerate(panels):
            panel.gridPos = GridPos(h=_PANEL_H, w=_PANEL_W, x=(i % 2) * _PANEL_W, y=y + (i // 2) * _PANEL_H)
            out.append(panel)
        y += ((len(panels) + 1) // 2) * _PANEL_H
    return out


def ts(title: str, exprs: list[tuple[str, str]], unit: str = "short", description: str = "") -> TimeSeries:
    """A time series panel of PromQL ``exprs`` as (expression, legend)."""
    return TimeSeries(
        title=title, description=description, dataSource=DATASOURCE, unit=unit,
        targets=[Target(expr=expr, legendFormat=legend, refId=chr(ord("A") + i), datasource=DATASOURCE)
                 for i, (expr, legend) in enumerate(exprs)],
    )


def _provider_variable() -> Templating:
    return Templating(list=[Template(
        name="provider", label="provider", dataSource=DATASOURCE, type="query", includeAll=True, multi=True,
        query="label_values(gateway_requests_total, provider)", allValue=".*", default="All",
    )])


def overview() -> Dashboard:
    """RED per route and provider, the SLOs' burn rates, refusals and business volume."""
    sel = 'provider=~"$provider"'
    return Dashboard(
        title="Wallet gateway: requests and SLOs", uid="gateway-overview", tags=["wallet-gateway"],
        timezone="utc", refresh="30s", templating=_provider_variable(),
        panels=_panels([
            ("Requests (RED)", [
                ts("Requests per second by provider", [
                    (f"sum by (provider) (rate(gateway_requests_total{{{sel}}}[1m]))", "{{provider}}")], "reqps",
                   'provider "" is the partner API (/v1).'),
                ts("Answers by code", [
                    (f"sum by (code) (rate(gateway_requests_total{{{sel}}}[1m]))", "{{code}}")], "reqps"),
                ts("Server-error ratio by route", [
                    (f'sum by (route) (rate(gateway_requests_total{{{sel},code=~"{SERVER_ERROR_CODES}"}}[5m])) '
                     f"/ sum by (route) (rate(gateway_requests_total{{{sel}}}[5m]))", "{{route}}")], "percentunit"),
                ts("Latency p99 by route", [
                    ("histogram_quantile(0.99, sum by (route, le) "
                     f"(rate(gateway_request_latency_seconds_bucket{{{sel}}}[5m])))", "{{route}}")], "s"),
                ts("Latency p50 by route", [
                    ("histogram_quantile(0.5, sum by (route, le) "
                     f"(rate(gateway_request_latency_seconds_bucket{{{sel}}}[5m])))", "{{route}}")], "s"),
                ts("Rate-limit refusals", [
                    ("sum by (kind, name) (rate(gateway_rate_limited_total[1m]))", "{{kind}} {{name}}"),
                    ("rate(gateway_rate_limit_unavailable_total[1m])", "let through: Redis down")], "reqps"),
            ]),
            ("SLOs (docs/SLO.md)", [
                ts("Availability: error budget burn rate (1 h)", [
                    (f"slo:gateway_request_errors:ratio_rate1h{{{sel}}} / 0.0005", "{{provider}} {{route}}")],
                   description="1 = spending the 30-day budget exactly; the page fires at 14.4 (with 5 m)."),
                ts("Latency: error budget burn rate (1 h)", [
                    (f"slo:gateway_request_slow:ratio_rate1h{{{sel}}} / 0.01", "{{provider}} {{route}}")],
                   description="Requests slower than 100 ms over the 1% budget."),
                ts("Availability over 30 days", [
                    (f"1 - slo:gateway_request_errors:ratio_rate30d{{{sel}}}", "{{provider}} {{route}}")],
                   "percentunit"),
                ts("Requests within 100 ms over 30 days", [
                    (f"1 - slo:gateway_request_slow:ratio_rate30d{{{sel}}}", "{{provider}} {{route}}")],
                   "percentunit"),
            ]),
            ("Business", [
                ts("Money movements per second", [
                    ("sum by (kind, currency) (rate(gateway_wallet_transactions_total[1m]))",
                     "{{kind}} {{currency}}")], "ops"),
                ts("Volume per minute (minor units)", [
                    ('sum by (kind, currency) (rate(gateway_wallet_amount_minor_total{kind=~"debit|credit"}[1m])) '
                     "* 60", "{{kind}} {{currency}}")],
                   description="Stakes (debit) and wins (credit) in minor units of each currency."),
                ts("Sportsbook bets", [
                    ("rate(gateway_sportsbook_bets_placed_total[1m])", "placed"),
                    ("rate(gateway_sportsbook_bets_settled_total[1m])", "settled"),
                    ("sum by (code) (rate(gateway_sportsbook_bets_refused_total[1m]))", "refused {{code}}")], "ops"),
                ts("Rollbacks per second", [
                    ('sum by (currency) (rate(gateway_wallet_transactions_total{kind="rollback"}[1m]))',
                     "{{currency}}")], "ops"),
            ]),
        ]),
    ).auto_panel_ids()


def shards() -> Dashboard:
    """Per-shard saturation, batching, storage and fencing."""
    return Dashboard(
        title="Wallet gateway: shards", uid="gateway-shards", tags=["wallet-gateway"], timezone="utc",
        refresh="30s",
        panels=_panels([
            ("Saturation", [
                ts("Inbox depth", [("max by (shard) (gateway_shard_inbox_depth)", "shard {{shard}}")],
                   description="Commands waiting; at shard.inbox_depth_max new ones are refused (overloaded)."),
                ts("Overload refusals", [("sum by (shard) (rate(gateway_overloaded_total[1m]))", "shard {{shard}}")],
                   "reqps"),
                ts("Resident players and keys", [
                    ("sum by (shard) (gateway_shard_players_resident)", "players {{shard}}"),
                    ("sum by (shard) (gateway_shard_keys_resident)", "keys {{shard}}")]),
                ts("Evictions per second", [
                    ("sum by (shard, kind) (rate(gateway_shard_evictions_total[1m]))", "{{kind}} {{shard}}")]),
            ]),
            ("Group commit", [
                ts("Batch size p50 / p99", [
                    ("histogram_quantile(0.5, sum by (shard, le) (rate(gateway_batch_size_commands_bucket[5m])))",
                     "p50 {{shard}}"),
                    ("histogram_quantile(0.99, sum by (shard, le) (rate(gateway_batch_size_commands_bucket[5m])))",
                     "p99 {{shard}}")]),
                ts("Batch fill (mean)", [
                    ("sum by (shard) (rate(gateway_batch_fill_ratio_sum[5m])) / "
                     "sum by (shard) (rate(gateway_batch_fill_ratio_count[5m]))", "shard {{shard}}")], "percentunit"),
                ts("Flush latency p99", [
                    ("histogram_quantile(0.99, sum by (shard, le) "
                     "(rate(gateway_batch_flush_latency_seconds_bucket[5m])))", "shard {{shard}}")], "s"),
                ts("Prefetch latency p99", [
                    ("histogram_quantile(0.99, sum by (shard, le) (rate(gateway_prefetch_latency_seconds_bucket[5m])))",
                     "shard {{shard}}")], "s"),
                ts("Batches per second", [
                    ("sum by (shard) (rate(gateway_batch_flush_latency_seconds_count[1m]))", "shard {{shard}}")], "ops"),
                ts("Key conflicts (re-applied batches)", [
                    ("sum by (shard) (rate(gateway_idempotency_key_conflicts_total[5m]))", "shard {{shard}}")]),
            ]),
            ("Storage, Redis and fencing", [
                ts("PostgreSQL degraded", [("max by (shard) (gateway_shard_storage_degraded)", "shard {{shard}}")],
                   description="1 while the shard refuses commands because its database does not answer."),
                ts("Flush retries and commit timeouts", [
                    ("sum by (shard) (rate(gateway_batch_flush_retries_total[1m]))", "retries {{shard}}"),
                    ("sum by (shard) (rate(gateway_commit_timeouts_total[1m]))", "timeouts {{shard}}"),
                    ("sum by (shard) (rate(gateway_storage_unavailable_refusals_total[1m]))",
                     "refused {{shard}}")]),
                ts("Redis unavailable", [
                    ("rate(gateway_redis_unavailable_total[1m])", "sessions"),
                    ("rate(gateway_rate_limit_unavailable_total[1m])", "rate limiter (fail open)")]),
                ts("Fencing and bucket moves", [
                    ("sum by (reason) (increase(gateway_fencing_events_total[5m]))", "fenced: {{reason}}"),
                    ("sum by (shard) (increase(gateway_shard_buckets_released_total[5m]))", "released {{shard}}"),
                    ("rate(gateway_bucket_moving_refusals_total[1m])", "refused while moving")]),
            ]),
        ]),
    ).auto_panel_ids()


DASHBOARDS = {"gateway-overview.json": overview, "gateway-shards.json": shards}


def render(build) -> str:
    """The dashboard's JSON, as committed (sorted keys, two-space indent, final newline)."""
    return json.dumps(build().to_json_data(), cls=DashboardEncoder, sort_keys=True, indent=2) + "\n"


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, build in DASHBOARDS.items():
        (OUT / name).write_text(render(build))
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
