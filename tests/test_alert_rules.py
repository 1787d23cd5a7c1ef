"""docs/prometheus-alerts.yml and docs/grafana-dashboard.json: valid, checked by promtool,
and naming only metrics ocrwatch exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ocrwatch.daemon.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "docs" / "prometheus-alerts.yml"
RULE_TESTS = ROOT / "tests" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exposed() -> set[str]:
    """Return every sample name ocrwatch's /metrics can expose."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(family.name + s for s in _SUFFIXES[family.type])
    return names


def named(expr: str) -> set[str]:
    return set(re.findall(r"\bocrwatch_[a-z_]+", expr))


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is not installed (scripts/setup.sh --test installs prometheus)")
    return subprocess.run(
        [tool, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def dashboard_exprs() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in data["panels"] for t in p.get("targets", [])]


class TestAlertRules:
    """The alerting rules."""

    def test_promtool_check_rules(self) -> None:
        """promtool accepts the file (YAML, PromQL, templates)."""
        proc = promtool("check", "rules", str(RULES))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SUCCESS: 7 rules found" in proc.stdout

    def test_promtool_test_rules(self) -> None:
        """Each alert fires on series that should fire it, not on a healthy neighbour
        (tests/prometheus/alerts.test.yml)."""
        proc = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_metric_names_exist(self) -> None:
        """Every ocrwatch_* name in the rules is one the daemon exposes."""
        text = RULES.read_text()
        assert named(text) and named(text) <= exposed(), named(text) - exposed()

    def test_the_four_conditions_are_covered(self) -> None:
        """Backlog age, quarantine rate, no success, a worker gone."""
        text = RULES.read_text()
        for alert in ("BacklogOld", "QuarantineRate", "NoSuccess", "WorkerGone"):
            assert f"alert: Ocrwatch{alert}" in text


class TestDashboard:
    """The Grafana dashboard."""

    def test_valid_json_with_panels(self) -> None:
        """It is JSON with uniquely numbered panels, each with at least one query."""
        data = json.loads(DASHBOARD.read_text())
        ids = [p["id"] for p in data["panels"]]
        assert len(ids) == len(set(ids)) >= 8
        assert all(p.get("targets") for p in data["panels"])

    def test_every_expr_names_an_existing_metric(self) -> None:
        """Each query names ocrwatch metrics, all of them exposed; every metric is shown."""
        exprs = dashboard_exprs()
        for expr in exprs:
            assert named(expr), expr
            assert named(expr) <= exposed(), (expr, named(expr) - exposed())
        used = set().union(*(named(e) for e in exprs))
        families = {n.removesuffix("_total").removesuffix("_bucket") for n in used}
        assert {f.name for f in Metrics().registry.collect()} <= families

    def test_exprs_are_valid_promql(self, tmp_path: Path) -> None:
        """Every query parses: promtool checks them as recording rules (Grafana's variables
        replaced by what Grafana would put there)."""
        lines = ["groups:", "  - name: dashboard", "    rules:"]
        for n, expr in enumerate(dashboard_exprs()):
            concrete = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
            lines += [f"      - record: dashboard:expr{n}", f"        expr: {json.dumps(concrete)}"]
        rules = tmp_path / "dashboard-rules.yml"
        rules.write_text("\n".join(lines) + "\n")
        proc = promtool("check", "rules", str(rules))
        assert proc.returncode == 0, proc.stdout + proc.stderr
