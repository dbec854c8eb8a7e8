"""Carbon (and price) shifting: the share of perfect foresight's saving the policy achieves.

For each zone with data in ../shared/data/grid/carbon/: history 2021–2022, evaluation on
2023, a 1 h job arriving every hour, windows of 4/8/12/24 h; the policy reads history in full
and 2023 only up to each decision hour (``boundgate schedule replay`` does the same per file).
Then the same on day-ahead prices (../shared/data/grid/prices/, benchmark-only data). Last,
the gateway's own start policy on the bundled history, as served (``gateway``).

    python bench/shift.py [--data ../shared/data/grid] [--windows 4 8 12 24]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from _harness import track
from boundgate.grid import BundledCarbonSource
from boundgate.scheduler.policy import HOUR, CarbonAwareStart
from boundgate.scheduler.replay import read_series, replay

ZONES = ["BR", "DE-LU", "ES", "GB", "NO", "US-CAL-CISO"]


def run(kind: str, folder: Path, column: str, windows: list[int]) -> None:
    print(f"\n## {kind} ({column}), 1 h jobs, history 2021–2022 → 2023\n")
    print("| zone | " + " | ".join(f"{w} h window" for w in windows) + " | run-now → plan (8 h) |")
    print("|---|" + "---:|" * (len(windows) + 1))
    means = {w: [] for w in windows}
    for zone in ZONES:
        files = {y: folder / f"{zone}_{y}.csv" for y in (2021, 2022, 2023)}
        if not all(f.exists() for f in files.values()):
            continue
        hist = [read_series(files[y], column) for y in (2021, 2022)]
        evaluation = read_series(files[2023], column)
        cells, detail = [], ""
        for w in track(windows, f"{kind}: {zone}"):
            r = replay(evaluation, hist, duration_h=1, window_h=w)
            means[w].append(r.share_of_oracle)
            cells.append(f"{r.share_of_oracle:.3f}")
            if w == 8:
                detail = f"{r.run_now:.1f} → {r.planned:.1f} (oracle {r.oracle:.1f})"
        print(f"| {zone} | " + " | ".join(cells) + f" | {detail} |")
    print("| mean | " + " | ".join(f"{sum(v) / len(v):.3f}" for v in means.values() if v) + " | |")


def mape(folder: Path, column: str, horizons: tuple[int, ...] = (1, 6, 24)) -> None:
    """Forecast error on 2023, forecasting from every hour with the replay's information."""
    import numpy as np

    from boundgate.scheduler.replay import Shifter, merge

    print(f"\n## Forecast error on 2023 (MAPE, {column})\n")
    print("| zone | " + " | ".join(f"{h} h ahead" for h in horizons) + " |")
    print("|---|" + "---:|" * len(horizons))
    for zone in ZONES:
        files = [folder / f"{zone}_{y}.csv" for y in (2021, 2022, 2023)]
        if not all(f.exists() for f in files):
            continue
        series = [read_series(f, column) for f in files]
        known = merge(series)
        shifter = Shifter(known)
        evaluation = series[2]
        errors: dict[int, list[float]] = {h: [] for h in horizons}
        pos = {int(h): i for i, h in enumerate(known.hours)}
        every_7th = evaluation.hours[::7].tolist()  # every 7th hour: all hours of day
        for now in track(every_7th, f"forecasting {zone}"):
            i = pos[now] - 1
            f = shifter.forecaster.forecast(
                float(known.values[i]),
                int(known.hours[i]),
                now,
                max(horizons),
                shifter.profile_at(now),
            )
            for h in horizons:
                j = pos.get(now + h - 1)
                if j is not None and known.values[j] > 0:
                    errors[h].append(abs(f[h - 1] - known.values[j]) / known.values[j])
        cells = [f"{100 * float(np.mean(errors[h])):.1f} %" for h in horizons]
        print(f"| {zone} | " + " | ".join(cells) + " |")


class _KnownNow(CarbonAwareStart):
    """The gateway's policy as it was before 2026-12-04: the current hour at its known value
    against the later hours' forecasts."""

    def score(self, now: float, hours_ahead: int, *, known_now: bool = True) -> np.ndarray:
        return super().score(now, hours_ahead, known_now=True)


def gateway(windows: list[int]) -> None:
    """The gateway's own start policy (``CarbonAwareStart``, as ``boundgate serve`` runs it
    on the bundled history): a 1 h job arriving every 7th hour of 2023, planned at arrival
    and re-planned hourly while it waits, as the job queue does; the current hour at its
    known value (the policy before 2026-12-04) and every hour at its forecast (shipped), side
    by side on the same jobs."""
    source = BundledCarbonSource()
    print("\n## The gateway's start policy on the bundled data, 1 h jobs every 7 h of 2023\n")
    heads = [f"{w} h: known now / forecast" for w in windows]
    print("| zone | " + " | ".join(heads) + " |")
    print("|---|" + "---:|" * len(windows))
    first = int(datetime(2023, 1, 2, tzinfo=UTC).timestamp() // HOUR)
    last = int(datetime(2023, 12, 30, tzinfo=UTC).timestamp() // HOUR)
    for zone in ZONES:
        values: dict[int, float] = {}

        def at(t: datetime, zone: str = zone, values: dict[int, float] = values) -> float:
            h = int(t.timestamp() // HOUR)
            if h not in values:
                values[h] = source.intensity(zone, t).gco2_per_kwh
            return values[h]

        cells = []
        for w in track(windows, f"gateway policy: {zone}"):
            shares = []
            for policy in (_KnownNow(source, zone), CarbonAwareStart(source, zone)):
                policy._intensity_at = at  # type: ignore[method-assign]  # cached lookups
                run_now = planned = oracle = 0.0
                for arrival in range(first, last, 7):
                    deadline = (arrival + w) * HOUR
                    start = int(policy("batch", arrival * HOUR, deadline, HOUR) // HOUR)
                    h = arrival
                    while h + 1 < start:  # re-planned every hour while it waits
                        h += 1
                        start = int(policy("batch", h * HOUR, deadline, HOUR) // HOUR)
                    window = [
                        at(datetime.fromtimestamp(x * HOUR, UTC))
                        for x in range(arrival, arrival + w)
                    ]
                    run_now += window[0]
                    planned += at(datetime.fromtimestamp(start * HOUR, UTC))
                    oracle += min(window)
                shares.append((run_now - planned) / (run_now - oracle))
            cells.append(f"{shares[0]:.3f} / {shares[1]:.3f}")
        print(f"| {zone} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "grid",
    )
    ap.add_argument("--windows", type=int, nargs="+", default=[4, 8, 12, 24])
    args = ap.parse_args()
    t0 = time.perf_counter()
    run("Carbon intensity", args.data / "carbon", "gco2_per_kwh_lca", args.windows)
    run("Day-ahead price", args.data / "prices", "usd_per_mwh", args.windows)
    mape(args.data / "carbon", "gco2_per_kwh_lca")
    gateway([8, 24])
    took = time.perf_counter() - t0
    print(f"\n(share of the oracle's saving: 1.0 = perfect foresight; {took:.0f} s)")


if __name__ == "__main__":
    main()
