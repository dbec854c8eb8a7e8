"""docs/grafana/boundgate.json asks only for series and labels the gateway exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from boundgate.assembly import build_app
from boundgate.testing import ThreadedServer
from helpers import fake_settings

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana" / "boundgate.json"
METRIC = re.compile(r"\bboundgate_[a-z0-9_]+\b")
# labels Prometheus adds at scrape time, and the histogram's bucket label
SCRAPE_LABELS = {"job", "instance", "le"}
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
    "unknown": ("",),
}


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows hold their panels
    return out


def expressions(dash: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dash) for t in p.get("targets", [])]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Series name → label names, scraped from a running app after a miss and a hit."""
    app = build_app(fake_settings(tmp_path_factory.mktemp("grafana")))
    body = {"messages": [{"role": "user", "content": "What is 2+2?"}], "temperature": 0}
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.base_url, timeout=60) as http:
        for _ in range(2):  # a miss, then a hit: spent and avoided series both exist
            assert http.post("/v1/chat/completions", json=body).status_code == 200
        text = http.get("/metrics").text
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        labels = {k for s in family.samples for k in s.labels}
        for suffix in SUFFIXES[family.type]:
            series.setdefault(family.name + suffix, set()).update(labels)
    return series


def test_dashboard_is_importable_anywhere() -> None:
    dash = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))
    for p in panels(dash):
        assert {"h", "w", "x", "y"} <= set(p["gridPos"])
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert p["targets"] and all(
                t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in p["targets"]
            )


def test_every_metric_and_label_in_the_dashboard_is_exported(
    exported: dict[str, set[str]],
) -> None:
    dash = json.loads(DASHBOARD.read_text())
    exprs = expressions(dash)
    assert len(exprs) >= 10
    used: set[str] = set()
    for expr in exprs:
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
        names = set(METRIC.findall(expr))
        assert names, f"no boundgate metric in {expr!r}"
        unknown = names - set(exported)
        assert not unknown, f"{expr!r} uses {unknown}, not exported"
        used |= names
        available = set().union(*(exported[n] for n in names)) | SCRAPE_LABELS
        grouped = re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
        matched = re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"", expr)
        labels = {x.strip() for g in grouped for x in g.split(",") if x.strip()} | set(matched)
        assert labels <= available, f"{expr!r} uses labels {labels - available}"
    all_labels = set().union(*exported.values()) | SCRAPE_LABELS
    for p in panels(dash):
        for t in p.get("targets", []):
            for legend in re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")):
                assert legend in all_labels, (p["title"], legend)
    # the panels the dashboard promises are there
    for name in (
        "boundgate_requests_total",
        "boundgate_request_duration_seconds_bucket",
        "boundgate_energy_joules_total",
        "boundgate_carbon_grams_total",
        "boundgate_reuse_error_rate_estimate",
        "boundgate_reuse_error_rate_upper_bound",
        "boundgate_reuse_error_bound",
        "boundgate_documents",
        "boundgate_jobs",
        "boundgate_grid_intensity_gco2_per_kwh",
    ):
        assert name in used, name
    # energy in Wh: every joule counter read through an increase is divided by 3600
    for expr in exprs:
        if "boundgate_energy_joules_total" in expr and "increase(" in expr:
            assert expr.rstrip().endswith("/ 3600"), expr
