"""The observability artefacts: Prometheus rules (deploy/prometheus/), their rule tests, the
runbooks (docs/runbooks/) and the Grafana dashboards (deploy/grafana/).

- ``promtool check rules`` and ``promtool test rules`` pass (promtool: Debian's
  ``prometheus`` package, which .ci/run installs);
- every alert has a runbook with the four sections, named by its ``runbook_url``, and a rule
  test in which it fires;
- the committed dashboard JSON is what deploy/grafana/dashboards.py builds, and every query
  of every dashboard names only metrics the gateway exports (gateway/metrics.py) or
  recording rules of deploy/prometheus/rules/.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gateway import metrics

ROOT = Path(__file__).resolve().parent.parent
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
RUNBOOK_SECTIONS = ("## What it means", "## How to confirm", "## What to do", "## How to roll back")
#: Series Prometheus makes itself (not the gateway's).
PROMETHEUS_SERIES = {"up"}
_PROMQL_WORDS = {"by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "offset",
                 "bool", "inf", "nan"}


def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        pytest.fail("promtool is missing: apt-get install prometheus (.ci/run installs it)")
    return found


def _rules() -> list[dict]:
    return [rule for path in RULES for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def _alerts() -> list[dict]:
    return [rule for rule in _rules() if "alert" in rule]


def exported_metrics() -> set[str]:
    """Every series name the gateway's registry can expose (histogram and counter suffixes
    included)."""
    return set(metrics.REGISTRY._names_to_collectors)  # prometheus_client's name index


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (functions, keywords, label matchers,
    grouping labels, ranges and strings left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _PROMQL_WORDS:
            continue
        names.add(name)
    return names


def test_metric_names_parser() -> None:
    assert metric_names('sum by (route, le) (rate(gateway_x_bucket{provider=~"$provider"}[5m])) / 0.01') == {
        "gateway_x_bucket"}
    assert metric_names("histogram_quantile(0.99, sum by (shard, le) (rate(a_b[1m]))) > 0.25 or up == 0") == {
        "a_b", "up"}


def test_promtool_check_rules() -> None:
    assert RULES
    result = subprocess.run([promtool(), "check", "rules", *map(str, RULES)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_tests() -> None:
    assert RULE_TESTS
    result = subprocess.run([promtool(), "test", "rules", *map(str, RULE_TESTS)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_runbook_and_a_firing_rule_test() -> None:
    alerts = _alerts()
    assert len(alerts) >= 10
    fired: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    for alert in alerts:
        name = alert["alert"]
        runbook = RUNBOOKS / f"{name}.md"
        assert alert["annotations"]["runbook_url"] == f"docs/runbooks/{name}.md", name
        assert runbook.exists(), f"{name}: no runbook {runbook}"
        text = runbook.read_text()
        for section in RUNBOOK_SECTIONS:
            assert section in text, f"{runbook}: no section {section!r}"
        assert alert["labels"]["severity"] in ("page", "ticket"), name
        assert name in fired, f"{name}: no rule test in which it fires"


def test_rules_name_only_exported_metrics() -> None:
    known = exported_metrics() | PROMETHEUS_SERIES | {r["record"] for r in _rules() if "record" in r}
    for rule in _rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: {sorted(unknown)}"


def _load_dashboards_module():
    spec = importlib.util.spec_from_file_location("gateway_dashboards", ROOT / "deploy" / "grafana" / "dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dashboards_are_the_builder_output() -> None:
    module = _load_dashboards_module()
    assert sorted(module.DASHBOARDS) == sorted(p.name for p in DASHBOARDS.glob("*.json"))
    for name, build in module.DASHBOARDS.items():
        assert (DASHBOARDS / name).read_text() == module.render(build), (
            f"{name} differs from deploy/grafana/dashboards.py: run .venv/bin/python deploy/grafana/dashboards.py")


def test_every_dashboard_query_resolves() -> None:
    known = exported_metrics() | {r["record"] for r in _rules() if "record" in r}
    queries = 0
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                names = metric_names(expr)
                assert names, f"{path.name} {panel['title']!r}: no metric in {expr!r}"
                assert not names - known, f"{path.name} {panel['title']!r}: unknown {sorted(names - known)}"
                queries += 1
        for variable in dashboard["templating"]["list"]:
            for name in re.findall(r"label_values\((\w+)", variable.get("query", "")):
                assert name in known, f"{path.name} variable {variable['name']}: unknown {name}"
    assert queries >= 30


def test_compose_loads_rules_and_dashboards() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in compose["prometheus"]["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in compose["grafana"]["volumes"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    provider = yaml.safe_load((ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "gateway.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load((ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["uid"] == "prometheus"
