"""Carbon (and price) shifting: the share of perfect foresight's saving the policy achieves.

For each zone with data in ../shared/data/grid/carbon/: history 2021–2022, evaluation on
2023, a 1 h job arriving every hour, windows of 4/8/12/24 h; the policy reads history in full
and 2023 only up to each decision hour (``boundgate schedule replay`` does the same per file).
Then the same on day-ahead prices (../shared/data/grid/prices/, benchmark-only data).

    python bench/shift.py [--data ../shared/data/grid] [--windows 4 8 12 24]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _harness import track
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
    took = time.perf_counter() - t0
    print(f"\n(share of the oracle's saving: 1.0 = perfect foresight; {took:.0f} s)")


if __name__ == "__main__":
    main()
