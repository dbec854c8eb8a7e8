"""``boundgate schedule``: replay the carbon-shifting policy over hourly data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

schedule_app = typer.Typer(help="Shift deferrable work into clean hours.", no_args_is_help=True)


@schedule_app.command("replay")
def schedule_replay(
    intensity: Annotated[
        Path, typer.Option("--intensity", help="CSV to evaluate on (datetime_utc + column).")
    ],
    history: Annotated[
        list[Path] | None,
        typer.Option("--history", help="CSV the policy may read in full (repeatable)."),
    ] = None,
    duration: Annotated[str, typer.Option(help="Job run time, e.g. 1h.")] = "1h",
    window: Annotated[str, typer.Option(help="Arrival to deadline, e.g. 8h.")] = "8h",
    column: Annotated[
        str, typer.Option(help="Value column (e.g. gco2_per_kwh_direct, usd_per_mwh).")
    ] = "gco2_per_kwh_lca",
    out_path: Annotated[Path, typer.Option("--out", help="Plan CSV to write.")] = Path("plan.csv"),
) -> None:
    """One job per hour of the intensity file; plan each without look-ahead; compare."""
    from ..scheduler.replay import SeriesError, parse_hours, read_series, replay, write_plan
    from . import err, out

    try:
        d, w = parse_hours(duration), parse_hours(window)
        if w < d:
            raise ValueError("--window must be at least --duration")
        series = read_series(intensity, column)
        histories = [read_series(p, column) for p in history or []]
    except (SeriesError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    if len(series) < w:
        err.print("[red]error:[/red] the intensity file is shorter than the window", markup=True)
        raise typer.Exit(2)
    result = replay(series, histories, duration_h=d, window_h=w)
    write_plan(result, out_path)
    out.print(f"jobs: {len(result.decisions)} (duration {d} h, window {w} h, column {column})")
    out.print(f"mean per job, run-now:           {result.run_now:.3f}")
    out.print(f"mean per job, plan:              {result.planned:.3f}")
    out.print(f"mean per job, perfect foresight: {result.oracle:.3f}")
    out.print(f"share of the oracle's saving achieved: {result.share_of_oracle:.3f}")
    out.print(f"plan written to {out_path}")
