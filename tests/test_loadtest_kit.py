"""The load testers' kit's pure parts: the weekend curve (loadtests/curve.py), the outage
arithmetic of the chaos drill (loadtests/outages.py) and the run summary's counters
(loadtests/summary.py). The runs themselves are by hand (loadtests/README.md)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "loadtests"))  # the locustfile's modules import each other by name

from curve import Curve  # noqa: E402
from outages import outage  # noqa: E402
from summary import render, request_counts  # noqa: E402

SATURDAY = ROOT / "loadtests" / "curves" / "saturday.toml"


def test_the_saturday_curve_compresses_a_day_into_the_run() -> None:
    curve = Curve.load(SATURDAY, run_s=720)  # one second per clock minute
    assert curve.users_at(0) == 20  # 12:00
    assert curve.users_at(150) == 40  # 14:30
    assert curve.users_at(165) == 48  # halfway to 15:00's 55
    assert curve.users_at(540) == 100  # 21:00, the evening casino peak
    assert curve.users_at(720) is None  # the run is over
    assert curve.bet_factor(165) == 6  # 14:45, before the 15:00 kick-offs
    assert curve.bet_factor(300) == 1
    storms = curve.settlements_between(0, 720)
    assert [s.label for s in storms] == ["15:00 half-time", "15:00 full-time", "17:30 half-time", "17:30 full-time"]
    assert [s.label for s in curve.settlements_between(226, 227)] == ["15:00 half-time"]  # 15:47 = second 227
    assert curve.settlements_between(227, 228) == []
    assert curve.spawn_rate() >= 20


def test_a_bad_curve_is_refused_with_its_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('day_start = "12:00"\nday_end = "11:00"\n[[points]]\nat = "12:00"\nusers = 1\n')
    with pytest.raises(ValueError, match="day_end"):
        Curve.load(bad)
    bad.write_text('[[points]]\nat = "12:61"\nusers = 1\n')
    with pytest.raises(ValueError, match="clock time"):
        Curve.load(bad)
    bad.write_text('[[points]]\nat = "12:00"\nusers = 1\n[[bursts]]\nfrom = "13:00"\nto = "12:00"\nfactor = 2\n')
    with pytest.raises(ValueError, match="burst"):
        Curve.load(bad)


def test_outage_runs_from_first_failure_to_recovery() -> None:
    timeline = [(0.0, True), (1.0, True), (1.2, False), (1.4, False), (1.6, True), (1.8, False), (2.0, True),
                (5.0, False), (6.0, True)]
    o = outage(timeline, 1.0, 4.0)
    assert (o.failed_calls, o.calls) == (3, 6)
    assert o.first_failure_s == pytest.approx(0.2)
    assert o.outage_s == pytest.approx(0.8)  # 1.2 -> the success at 2.0
    assert outage(timeline, 0.0, 1.1).outage_s == 0.0 and outage(timeline, 0.0, 1.1).first_failure_s is None
    assert outage([(1.0, False)], 0.0, 2.0).outage_s == 0.0  # never recovered within the window: no end seen


def test_summary_counts_answers_by_code_over_the_run(tmp_path: Path) -> None:
    before = request_counts('gateway_requests_total{code="ok",outcome="200",provider="hub88",route="hub88 /transaction/bet"} 10.0\n')
    after = request_counts(
        '# TYPE gateway_requests_total counter\n'
        'gateway_requests_total{code="ok",outcome="200",provider="hub88",route="hub88 /transaction/bet"} 25.0\n'
        'gateway_requests_total{code="retryable",outcome="200",provider="hub88",route="hub88 /transaction/bet"} 2.0\n')
    assert after[("hub88", "hub88 /transaction/bet", "ok")] == 25
    (tmp_path / "locust_stats.csv").write_text(
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
        "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
        "POST,hub88 bet,17,2,5,6,1,40,80,1.7,0.2,5,6,7,8,9,20,30,35,40,40,40\n"
        ",Aggregated,17,2,5,6,1,40,80,1.7,0.2,5,6,7,8,9,20,30,35,40,40,40\n")
    (tmp_path / "locust_failures.csv").write_text("Method,Name,Error,Occurrences\nPOST,hub88 bet,status RS_ERROR_UNKNOWN,2\n")
    page = render(title="t", csv_prefix=tmp_path / "locust", before=before, after=after, duration_s=10.0,
                  ledger=(True, "{}"), locust_exit=1, html_report=tmp_path / "report.html")
    assert "**FAIL**" in page and "| ok | 15 |" in page and "| retryable | 2 |" in page
    assert "| POST hub88 bet | 17 | 2 | 5 | 20 | 35 | 40 | 40 |" in page
    assert "status RS_ERROR_UNKNOWN | 2 |" in page
    assert Counter() == request_counts("")
