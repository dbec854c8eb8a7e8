"""`boundgate report`: per day and tenant in table, CSV and JSON; the plot; clear errors."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from boundgate.cli import app as cli
from boundgate.cli.report import DAY_FIELDS
from boundgate.store import LedgerRow, SQLiteStore

HOUR = 3600.0
DOCS = Path(__file__).resolve().parent.parent / "docs"


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).date().isoformat()


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, list[LedgerRow], float]:
    """A data dir whose ledger has two tenants over two days, a reuse, an error and a batch."""
    data = tmp_path / "data"
    data.mkdir()
    now = time.time()
    rows = [
        LedgerRow(
            "a1", now - HOUR, "acme", "/v1/chat/completions", wh=1.0, gco2=0.4,
            completion_tokens=30, reasoning_tokens=12,
        ),
        LedgerRow(
            "a2", now - HOUR - 60, "acme", "/v1/chat/completions",
            reuse="hit-semantic", avoided_wh=2.0, avoided_gco2=0.9,
        ),
        LedgerRow("a3", now - 2 * HOUR, "acme", "/v1/completions", outcome="error", status=400),
        LedgerRow("b1", now - 30 * HOUR, "beta", "/v1/chat/completions", wh=0.5, gco2=0.2),
        LedgerRow("old", now - 10 * 24 * HOUR, "acme", "/v1/completions", wh=9.0, gco2=9.0),
    ]  # fmt: skip
    store = SQLiteStore(data / "boundgate.db")
    store.open()
    try:
        for r in rows:
            asyncio.run(store.record(r))
        batch = {
            "id": "batch_1",
            "completed_at": int(now - HOUR),
            "cancelled_at": None,
            "boundgate": {
                "state": "done",
                "started_at": "2024-01-01T00:00:00Z",
                "shifting_saved_g": 0.7,
            },
        }
        asyncio.run(store.put_batch("batch_1", "acme", now - 3 * HOUR, json.dumps(batch)))
    finally:
        store.close()
    return data, rows, now


def _expected(rows: list[LedgerRow], since: float) -> dict[tuple[str, str], dict[str, Any]]:
    want: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if r.ts < since:
            continue
        w = want.setdefault(
            (_day(r.ts), r.tenant),
            {"requests": 0, "errors": 0, "reused": 0, "wh": 0.0, "avoided_wh": 0.0, "gco2": 0.0},
        )
        w["requests"] += 1
        w["errors"] += r.outcome == "error"
        w["reused"] += r.reuse is not None and r.reuse.startswith("hit")
        w["wh"] += r.wh
        w["avoided_wh"] += r.avoided_wh
        w["gco2"] += r.gco2
    return want


def plain(text: str) -> str:
    """An error box's text on one line, without its borders."""
    return " ".join(text.replace("│", " ").split())


def run(*args: str, **kw: Any) -> Any:
    return CliRunner().invoke(cli, ["report", *args], **kw)


def test_json_is_a_list_of_day_tenant_objects(seeded: tuple[Path, list[LedgerRow], float]) -> None:
    data, rows, now = seeded
    res = run("--since", "7d", "--format", "json", "--data-dir", str(data))
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert isinstance(got, list) and all(list(o) == DAY_FIELDS for o in got)
    want = _expected(rows, now - 7 * 24 * HOUR)
    assert {(o["day"], o["tenant"]) for o in got} == set(want)
    for o in got:
        w = want[(o["day"], o["tenant"])]
        for key, value in w.items():
            assert o[key] == pytest.approx(value), key
    acme_total = [o for o in got if o["tenant"] == "acme"]
    assert sum(o["avoided_gco2"] for o in acme_total) == pytest.approx(0.9)
    assert sum(o["batches"] for o in acme_total) == 1
    assert sum(o["shifting_saved_gco2"] for o in acme_total) == pytest.approx(0.7)
    # reuse rate: reused / answered (the failed request does not count)
    answered = sum(o["requests"] - o["errors"] for o in acme_total)
    assert answered == 2
    if len(acme_total) == 1:  # all of acme's rows fell on one UTC day
        assert acme_total[0]["reuse_rate"] == pytest.approx(0.5)


def test_csv_has_a_header_and_parses(seeded: tuple[Path, list[LedgerRow], float]) -> None:
    data, rows, now = seeded
    res = run("--since", "2d", "--format", "csv", "--data-dir", str(data))
    assert res.exit_code == 0, res.output
    reader = csv.DictReader(io.StringIO(res.stdout))
    assert reader.fieldnames == DAY_FIELDS
    parsed = list(reader)
    want = _expected(rows, now - 2 * 24 * HOUR)
    assert {(r["day"], r["tenant"]) for r in parsed} == set(want)
    assert sum(float(r["wh"]) for r in parsed) == pytest.approx(1.5)
    assert all(0.0 <= float(r["reuse_rate"]) <= 1.0 for r in parsed)


def test_table_and_per_model_view(seeded: tuple[Path, list[LedgerRow], float]) -> None:
    data, _, _ = seeded
    res = run("--since", "7d", "--data-dir", str(data))
    assert res.exit_code == 0, res.output
    assert "acme" in res.stdout and "beta" in res.stdout and "all" in res.stdout
    # the failed request is a column of its own beside the requests (the JSON has it too)
    lines = res.stdout.splitlines()
    header = next(line.split() for line in lines if "requests" in line)
    assert header[header.index("requests") + 1] == "errors"
    total = next(line.split() for line in lines if line.split()[:1] == ["all"])
    assert total[1:4] == ["4", "1", "1"]  # requests, errors, reused (acme 3 + beta 1)
    res = run("--since", "7d", "--by", "model", "--format", "json", "--data-dir", str(data))
    assert res.exit_code == 0, res.output
    by_model = json.loads(res.stdout)
    assert {o["tenant"] for o in by_model} == {"acme", "beta"}
    assert all("model" in o and "avg_latency_ms" in o for o in by_model)
    reasoning = {o["tenant"]: o["reasoning_tokens"] for o in by_model}
    assert reasoning == {"acme": 12, "beta": 0}


def test_a_window_longer_than_the_clocks_past_is_all_of_it(
    seeded: tuple[Path, list[LedgerRow], float],
) -> None:
    """An operator's ``--since 100000000000000d`` was a traceback (a time before the epoch),
    ``1000000000d`` said "since -2735881-12-02": the window is everything recorded."""
    data, rows, _ = seeded
    for since in ("100000000000000d", "1000000000d"):
        res = run("--since", since, "--format", "json", "--data-dir", str(data))
        assert res.exit_code == 0, res.output
        assert sum(o["requests"] for o in json.loads(res.stdout)) == len(rows)
        res = run("--since", since, "--data-dir", str(data))
        assert res.exit_code == 0 and "since 1970-01-01" in res.stdout, res.output


@pytest.mark.parametrize("bad", ["7x", "7", "-1d", "0h", "week"])
def test_since_errors_are_clear(bad: str, tmp_path: Path) -> None:
    res = run("--since", bad, "--data-dir", str(tmp_path / "data"))
    assert res.exit_code == 2
    text = plain(res.stderr)
    assert "--since" in text and "not a duration" in text and "24h" in text


@pytest.mark.slow  # matplotlib renders two plots
def test_plot_png_and_svg(seeded: tuple[Path, list[LedgerRow], float], tmp_path: Path) -> None:
    data, _, _ = seeded
    png = tmp_path / "report.png"
    res = run("--since", "7d", "--plot", str(png), "--format", "json", "--data-dir", str(data))
    assert res.exit_code == 0, res.output
    json.loads(res.stdout)  # the plot's message goes to stderr: stdout stays JSON
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    svg = tmp_path / "report.svg"
    res = run("--since", "1d", "--plot", str(svg), "--data-dir", str(data))  # per hour
    assert res.exit_code == 0, res.output
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    panels = {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert {"axes_1", "axes_2"} <= panels and "axes_3" not in panels


def test_plot_refuses_other_suffixes(seeded: tuple[Path, list[LedgerRow], float]) -> None:
    data, _, _ = seeded
    target = data.parent / "report.pdf"
    res = run("--plot", str(target), "--data-dir", str(data))
    assert res.exit_code == 2
    assert "--plot" in plain(res.stderr) and ".png or .svg file" in plain(res.stderr)
    assert not target.exists()


def test_plot_into_a_missing_directory_is_one_line_and_exit_2(
    seeded: tuple[Path, list[LedgerRow], float],
) -> None:
    """A trial: ``--plot /nonexistent/dir/x.png`` ended in matplotlib's traceback (exit 1)."""
    data, _, _ = seeded
    target = data.parent / "missing" / "report.png"
    res = run("--plot", str(target), "--data-dir", str(data))
    assert res.exit_code == 2, res.stderr
    assert "is not a directory" in plain(res.stderr) and "Traceback" not in res.stderr
    assert not target.parent.exists()


def test_plot_without_matplotlib_says_what_to_install(
    seeded: tuple[Path, list[LedgerRow], float], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _, _ = seeded
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    target = data.parent / "report.png"
    res = run("--plot", str(target), "--format", "json", "--data-dir", str(data))
    assert res.exit_code == 1
    assert "pip install 'boundgate[plot]'" in plain(res.stderr)
    assert res.stdout == "" and not target.exists()


def test_right_sizing_is_reported_beside_reuse(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    now = time.time()
    rows = [
        LedgerRow(
            "r1", now - 60, "acme", "/v1/chat/completions", model="small", wh=0.1,
            task="math", route="small;answered", counterfactual_wh=0.5,
            rightsizing_avoided_wh=0.4, rightsizing_avoided_gco2=0.16,
        ),
        LedgerRow("n1", now - 120, "acme", "/v1/chat/completions", model="small", wh=0.2),
    ]  # fmt: skip
    store = SQLiteStore(data / "boundgate.db")
    store.open()
    try:
        for r in rows:
            asyncio.run(store.record(r))
    finally:
        store.close()
    (day,) = json.loads(run("--format", "json", "--data-dir", str(data)).stdout)
    assert (day["requests"], day["routed"]) == (2, 1)
    assert day["rightsizing_avoided_wh"] == pytest.approx(0.4)
    assert day["rightsizing_avoided_gco2"] == pytest.approx(0.16)
    (model,) = json.loads(run("--by", "model", "--format", "json", "--data-dir", str(data)).stdout)
    assert (model["routed"], model["rightsizing_avoided_wh"]) == (1, pytest.approx(0.4))
    table = run("--data-dir", str(data)).stdout
    assert "right-sized" in table and "0.4" in table


def test_creative_variants_count_as_reused(tmp_path: Path) -> None:
    """A trial's finding: ``hit-variant`` answers (a creative variant made earlier, in clean
    hours) were left out of ``reused`` while their avoided energy was counted."""
    data = tmp_path / "data"
    data.mkdir()
    now = time.time()
    store = SQLiteStore(data / "boundgate.db")
    store.open()
    try:
        for i, reuse in enumerate(["hit-exact", "hit-variant", "hit-variant", "miss"]):
            row = LedgerRow(f"v{i}", now - 60, "acme", "/v1/chat/completions", reuse=reuse)
            row.avoided_wh = 0.0 if reuse == "miss" else 0.5
            asyncio.run(store.record(row))
    finally:
        store.close()
    (day,) = json.loads(run("--format", "json", "--data-dir", str(data)).stdout)
    assert (day["requests"], day["reused"]) == (4, 3)
    assert day["avoided_wh"] == pytest.approx(1.5)


def test_the_observability_docs_list_every_report_key_in_order() -> None:
    """docs/observability.md's table of the JSON and CSV keys is the whole list, in the
    order the report writes them (it once left out ``routed`` and ``rightsizing_*``)."""
    text = (DOCS / "observability.md").read_text()
    table = text.split("both have these keys, in this order", 1)[1].split("\n\n", 2)[1]
    keys = [line.split("`")[1] for line in table.splitlines()[2:]]
    assert keys == DAY_FIELDS
