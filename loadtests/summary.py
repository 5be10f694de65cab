"""The one-page summary of a load-test run, from locust's CSV files and the gateway's own
counters (``gateway_requests_total`` before and after). Pure apart from reading the files
it is given: ``render(...)`` returns Markdown.

Throughput and latency are the client's view (locust measures each request, including its
own queueing); errors by code are both views: locust's failures (what a studio would
see: wrong status, wrong balance, bad signature) and the gateway's answer codes over the
run (``code`` label: ``ok``, client refusals such as ``insufficient_funds``, server-side
``retryable`` / ``unavailable`` ...).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

_SAMPLE = re.compile(r'^gateway_requests_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def request_counts(exposition: str) -> Counter[tuple[str, str, str]]:
    """(provider, route, code) -> count, from a /metrics text exposition."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for line in exposition.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group("labels")))
        counts[(labels.get("provider", ""), labels.get("route", ""), labels.get("code", ""))] += int(
            float(match.group("value")))
    return counts


def _read(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def render(*, title: str, csv_prefix: Path, before: Counter, after: Counter, duration_s: float,
           ledger: tuple[bool, str] | None, locust_exit: int, html_report: Path) -> str:
    """The summary page of one run (Markdown)."""
    stats = _read(Path(f"{csv_prefix}_stats.csv"))
    failures = _read(Path(f"{csv_prefix}_failures.csv"))
    history = _read(Path(f"{csv_prefix}_stats_history.csv"))
    total = next((r for r in stats if r["Name"] == "Aggregated"), None)
    lines = [f"# {title}", ""]
    verdict = "PASS" if locust_exit == 0 and (ledger is None or ledger[0]) else "FAIL"
    lines += [f"**{verdict}**: locust exit {locust_exit}; ledger check "
              f"{'not run' if ledger is None else ('passed' if ledger[0] else 'FAILED')}; "
              f"charts in [{html_report.name}]({html_report.name}).", ""]
    if total is not None:
        requests, failed = int(total["Request Count"]), int(total["Failure Count"])
        peak = max((float(r["Requests/s"]) for r in history if r.get("Name") == "Aggregated"), default=0.0)
        lines += ["## Throughput", "",
                  "| requests | failed | duration s | mean req/s | peak req/s (10 s) |", "|---|---|---|---|---|",
                  f"| {requests:,} | {failed:,} | {duration_s:.0f} | {requests / max(duration_s, 1e-9):,.1f} | "
                  f"{peak:,.1f} |", ""]
    lines += ["## Latency (ms, client side)", "",
              "| request | count | failed | p50 | p95 | p99 | p99.9 | max |", "|---|---|---|---|---|---|---|---|"]
    for row in sorted(stats, key=lambda r: (r["Name"] == "Aggregated", -int(r["Request Count"]))):
        lines.append(f"| {row['Type']} {row['Name']} | {int(row['Request Count']):,} | {int(row['Failure Count']):,} | "
                     f"{row['50%']} | {row['95%']} | {row['99%']} | {row['99.9%']} | {float(row['Max Response Time']):.0f} |")
    lines += ["", "## Errors seen by the players (locust failures)", ""]
    if failures:
        lines += ["| request | error | occurrences |", "|---|---|---|"]
        for row in sorted(failures, key=lambda r: -int(r["Occurrences"])):
            lines.append(f"| {row['Method']} {row['Name']} | {row['Error'][:160]} | {row['Occurrences']} |")
    else:
        lines.append("None.")
    lines += ["", "## Answers by code (the gateway's counters over the run)", ""]
    delta = Counter({k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0})
    if delta:
        by_code: Counter[str] = Counter()
        for (_, _, code), n in delta.items():
            by_code[code] += n
        lines += ["| code | answers |", "|---|---|"]
        lines += [f"| {code} | {n:,} |" for code, n in by_code.most_common()]
        lines += ["", "| provider | route | code | answers |", "|---|---|---|---|"]
        lines += [f"| {p or '(partner API)'} | {r} | {c} | {n:,} |" for (p, r, c), n in sorted(delta.items())]
    else:
        lines.append("No /metrics counters were read (or nothing was counted).")
    lines += ["", "## Ledger check", ""]
    if ledger is None:
        lines.append("Not run (give --database-url, or GATEWAY_DATABASE_URL).")
    else:
        lines += ["passed" if ledger[0] else "FAILED", "", "```", ledger[1][-3000:].rstrip(), "```"]
    return "\n".join(lines) + "\n"
