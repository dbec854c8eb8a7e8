"""``boundgate report``: per day and tenant, what was spent and what reuse and shifting avoided.

Rows come from the store's aggregates (:meth:`Store.report_by_period`); the plot is drawn with
matplotlib's object API on the Agg (PNG) or SVG canvas, so it needs no display and leaves no
global pyplot state. matplotlib is an extra (``boundgate[plot]``) and imported only for
``--plot``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from ..store import PeriodRow
from .console import cannot_write, fail

HOUR = 3600
DAY = 86400
PLOT_SUFFIXES = (".png", ".svg")

# Stable keys of the per-day rows (csv header, json objects); add new ones at the end.
DAY_FIELDS = [
    "day",  # UTC date, YYYY-MM-DD
    "tenant",
    "requests",  # every ledger row: answered, failed and cancelled
    "errors",
    "reused",  # answered from stored answers (store.aggregate.REUSED: hits and variants)
    "reuse_rate",  # reused ÷ (requests − errors); 0 when nothing was answered
    "wh",  # energy spent, central estimate
    "avoided_wh",  # generation energy the reuses did not spend (their original cost)
    "gco2",  # carbon emitted, gCO2e
    "avoided_gco2",  # carbon of the avoided generations
    "batches",  # batches that ran and finished that day
    "shifting_saved_gco2",  # their run-at-submission carbon minus what they emitted
    "routed",  # requests routed by model: "auto"
    "rightsizing_avoided_wh",  # the ladders' top rungs' estimate minus what the routes spent
    "rightsizing_avoided_gco2",
]
MODEL_FIELDS = [
    "tenant",
    "model",
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "wh",
    "wh_low",
    "wh_high",
    "gco2",
    "reused",
    "avoided_wh",
    "avoided_gco2",
    "avg_latency_ms",
    "reasoning_tokens",  # of completion_tokens, the reasoning ones (reasoning models)
    "routed",
    "rightsizing_avoided_wh",
    "rightsizing_avoided_gco2",
]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in ``30m``, ``24h``, ``7d``, ``2w``; ValueError with a readable message."""
    m = _DURATION.match(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(
            f"{text!r} is not a duration: use a positive number and a unit "
            "(s, m, h, d or w), e.g. 30m, 24h, 7d"
        )
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def day_rows(rows: Sequence[PeriodRow]) -> list[dict[str, Any]]:
    """Per-day store rows as dicts with :data:`DAY_FIELDS` keys, in that order."""
    out = []
    for r in rows:
        answered = r.requests - r.errors
        d = asdict(r)
        d["day"] = datetime.fromtimestamp(r.start, tz=UTC).strftime("%Y-%m-%d")
        d["reuse_rate"] = r.reused / answered if answered > 0 else 0.0
        out.append({k: d[k] for k in DAY_FIELDS})
    return out


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One row summing ``rows`` (for the table's last line)."""
    t: dict[str, Any] = {k: sum(r[k] for r in rows) for k in DAY_FIELDS[2:]}
    answered = t["requests"] - t["errors"]
    t["reuse_rate"] = t["reused"] / answered if answered > 0 else 0.0
    return {"day": "all", "tenant": "", **t}


def write_rows(
    fmt: str, rows: list[dict[str, Any]], fields: list[str], table: Callable[[], Table]
) -> None:
    """Print rows as JSON (a list of objects), CSV (with a header) or ``table()``."""
    from . import out

    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(buf.getvalue())
    else:
        out.print(table())  # whole when piped: the console has no width then


def _model_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(*MODEL_FIELDS, title=title)
    for d in rows:
        cells = [d[f] for f in MODEL_FIELDS]
        table.add_row(*[f"{v:.6g}" if isinstance(v, float) else str(v) for v in cells])
    return table


def _day_table(rows: list[dict[str, Any]], title: str) -> Table:
    """People's view of the day rows: units in the headers, a total line at the end."""
    table = Table(
        title=title,
        caption="avoided: by reuse · right-sized: the ladders' top rungs' estimate minus what "
        "auto-routed requests spent · shifted: the carbon batches saved by running later "
        "than submitted",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("day", no_wrap=True)
    table.add_column("tenant")
    for name in (
        "requests",
        "errors",
        "reused",
        "Wh\nspent",
        "Wh\navoided",
        "gCO2e\nspent",
        "gCO2e\navoided",
        "Wh\nright-sized",
        "batches",
        "gCO2e\nshifted",
    ):
        table.add_column(name, justify="right", no_wrap=name == "reused")
    for d in rows:
        if d["day"] == "all":
            table.add_section()
        table.add_row(
            d["day"],
            d["tenant"],
            str(d["requests"]),
            str(d["errors"]),
            f"{d['reused']} ({100 * d['reuse_rate']:.0f} %)",
            f"{d['wh']:.3g}",
            f"{d['avoided_wh']:.3g}",
            f"{d['gco2']:.3g}",
            f"{d['avoided_gco2']:.3g}",
            f"{d['rightsizing_avoided_wh']:.3g}",
            str(d["batches"]),
            f"{d['shifting_saved_gco2']:.3g}",
            style="bold" if d["day"] == "all" else None,
        )
    return table


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


def check_plot_path(path: Path) -> None:
    """Raises ValueError unless ``path`` names a .png or .svg file in a directory that
    exists (checked before the report is read: a trial's ``--plot /nonexistent/x.png``
    ended in matplotlib's traceback)."""
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise ValueError(f"{path.name!r}: the plot can be written to a .png or .svg file")
    if not path.parent.is_dir():
        raise ValueError(f"{str(path.parent)!r} is not a directory")


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib (not installed): pip install 'boundgate[plot]'"
        ) from None


def timeline(
    rows: Sequence[PeriodRow], since: float, until: float, period_s: int
) -> tuple[list[datetime], list[float], list[float]]:
    """Every period from ``since`` to ``until`` (empty ones as 0): starts, spent Wh, avoided Wh."""
    first, last = int(since // period_s), int(until // period_s)
    spent = [0.0] * (last - first + 1)
    avoided = [0.0] * (last - first + 1)
    for r in rows:
        k = int(r.start // period_s) - first
        if 0 <= k < len(spent):
            spent[k] += r.wh
            avoided[k] += r.avoided_wh
    starts = [datetime.fromtimestamp((first + k) * period_s, tz=UTC) for k in range(len(spent))]
    return starts, spent, avoided


def by_hour_of_day(hourly: Sequence[PeriodRow]) -> dict[str, list[float]]:
    """Carbon per UTC hour of day (0-23), summed over the days: spent, avoided, shifted."""
    out = {"spent": [0.0] * 24, "avoided": [0.0] * 24, "shifted": [0.0] * 24}
    for r in hourly:
        h = int(r.start // HOUR) % 24
        out["spent"][h] += r.gco2
        out["avoided"][h] += r.avoided_gco2
        out["shifted"][h] += r.shifting_saved_gco2
    return out


def plot(path: Path, hourly: Sequence[PeriodRow], since: float, until: float) -> None:
    """Two panels: energy spent vs avoided over time; carbon by hour of day. PNG or SVG."""
    check_plot_path(path)
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    period_s = HOUR if until - since < 2 * DAY else DAY
    starts, spent, avoided = timeline(hourly, since, until, period_s)
    fig = Figure(figsize=(10, 8), layout="constrained")
    FigureCanvasAgg(fig)  # headless; savefig switches to the SVG canvas for .svg
    energy_ax, carbon_ax = fig.subplots(2, 1)

    half = timedelta(seconds=0.2 * period_s)
    energy_ax.bar([t - half for t in starts], spent, 2 * half, label="spent")
    energy_ax.bar([t + half for t in starts], avoided, 2 * half, label="avoided by reuse")
    energy_ax.tick_params(axis="x", labelrotation=30)
    unit = "hour" if period_s == HOUR else "day"
    energy_ax.set_title(f"Energy per {unit}: spent vs avoided")
    energy_ax.set_xlabel(f"{unit} (UTC)")
    energy_ax.set_ylabel("energy (Wh)")
    energy_ax.legend()

    carbon = by_hour_of_day(hourly)
    hours = list(range(24))
    w = 0.28
    carbon_ax.bar([h - w for h in hours], carbon["spent"], w, label="spent")
    carbon_ax.bar(hours, carbon["avoided"], w, label="avoided by reuse")
    carbon_ax.bar([h + w for h in hours], carbon["shifted"], w, label="saved by shifting")
    carbon_ax.set_xticks(hours)
    carbon_ax.set_title("Carbon by hour of day (summed over the window)")
    carbon_ax.set_xlabel("hour of day (UTC)")
    carbon_ax.set_ylabel("carbon (gCO2e)")
    carbon_ax.legend()

    fmt = "%Y-%m-%d %H:%M"
    fig.suptitle(
        f"boundgate: energy and carbon, {time.strftime(fmt, time.gmtime(since))} to "
        f"{time.strftime(fmt, time.gmtime(until))} UTC"
    )
    fig.savefig(path, format=path.suffix.lower().lstrip("."))


ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (or BOUNDGATE_CONFIG).")
]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data directory.")]


def report(
    since: Annotated[str, typer.Option(help="Window back from now, e.g. 1h, 24h, 7d.")] = "24h",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    by: Annotated[
        str, typer.Option(help="day: per UTC day and tenant; model: totals per tenant and model.")
    ] = "day",
    plot_path: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Also draw energy over time and carbon by hour of day to a .png or .svg "
            "(needs boundgate\\[plot]).",
        ),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Requests, reuse, energy and carbon spent and avoided, right-sizing and shifting savings.

    Per UTC day and tenant (the first day may be partial). Right-sizing savings are the
    estimated energy of each auto-routed request's ladder top rung minus what its rungs spent.
    Shifting savings are what batches did not emit by running in the hours the scheduler chose
    instead of at submission.
    """
    from . import _settings, err, opened_store

    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("use table, csv or json", param_hint="'--format'")
    if by not in ("day", "model"):
        raise typer.BadParameter("use day or model", param_hint="'--by'")
    try:
        window = parse_duration(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--since'") from None
    if plot_path is not None:
        try:
            check_plot_path(plot_path)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--plot'") from None
        try:
            require_matplotlib()
        except PlotUnavailable as exc:
            raise fail(str(exc)) from None
    now = time.time()
    # a window longer than the clock's past is all of it (1e14 days was a traceback, 1e9
    # days "since -2735881-12-02")
    start = max(0.0, now - window)
    title = f"since {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(start))}"
    with opened_store(_settings(config, data_dir=data_dir), existing=True) as store:
        if by == "model":
            rows = [
                {k: asdict(r)[k] for k in MODEL_FIELDS} for r in asyncio.run(store.report(start))
            ]
            write_rows(fmt, rows, MODEL_FIELDS, lambda: _model_table(rows, title))
        else:
            rows = day_rows(asyncio.run(store.report_by_period(start, DAY)))
            with_total = [*rows, totals(rows)] if rows else rows
            write_rows(fmt, rows, DAY_FIELDS, lambda: _day_table(with_total, title))
        if plot_path is not None:
            try:
                plot(plot_path, asyncio.run(store.report_by_period(start, HOUR)), start, now)
            except OSError as exc:  # no permission, a full disk
                raise cannot_write(plot_path, exc) from None
            err.print(f"plot written to {plot_path}", highlight=False)
