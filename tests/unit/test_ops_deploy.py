"""deploy/'s Prometheus rules and Grafana dashboard only use metrics the code exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*sorted((ROOT / "relay" / "metrics").glob("*.py")), ROOT / "adapters" / "metrics.py"]
NAME = re.compile(r"\blienthong_[a-z_]+\b")
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def exposed() -> set[str]:
    return {
        name
        for path in SOURCES
        for name in re.findall(r'"(lienthong_[a-z_]+)"', path.read_text("utf-8"))
    }


def base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_the_alert_rules_use_only_exposed_metrics() -> None:
    used = set(NAME.findall((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text("utf-8")))
    assert used, "no lienthong_ metric in the alert rules"
    assert {base(n) for n in used} - exposed() == set()


def test_the_dashboard_uses_only_exposed_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "lienthong-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in NAME.findall(e)}
    assert len(used) >= 10
    assert {base(n) for n in used} - exposed() == set()


def test_every_exposed_metric_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    missing = [n for n in sorted(exposed()) if f"`{n}" not in readme]
    assert missing == [], f"add these to README's metrics table: {missing}"
