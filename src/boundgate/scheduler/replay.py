"""Replaying the shifting policy over an hourly series, without look-ahead.

One job arrives at every hour of the intensity series' span (from its first day's end when no
history file reaches before it: the forecaster needs a day of observed hours, and a replay
without ``--history`` was a ValueError traceback); it runs for ``duration`` hours
and must finish within ``window`` hours of arriving. At each hour from its arrival the policy
forecasts the rest of the window from the history files and from the intensity series
*strictly before* that hour, and starts the job if the current hour is the forecast-cleanest
start that still meets the deadline; otherwise it waits and decides again an hour later (the
last feasible hour always starts). Reported per job: carbon of running at arrival (run-now),
of the plan, and of the best start in hindsight (perfect foresight).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..grid.forecast import Array, SeasonalForecaster
from ..grid.series import Series, SeriesError, merge, read_series

__all__ = ["Series", "SeriesError", "merge", "read_series", "replay", "write_plan"]

HOUR = 3600
HISTORY_HOURS = 24  # observed hours the forecaster is given before a job's first decision


@dataclass(frozen=True)
class Decision:
    arrival: int  # absolute hour
    start: int
    now_cost: float  # mean intensity over the run, started at arrival
    plan_cost: float
    oracle_cost: float


@dataclass(frozen=True)
class ReplayResult:
    decisions: list[Decision]
    duration_h: int
    window_h: int

    @property
    def run_now(self) -> float:
        return float(np.mean([d.now_cost for d in self.decisions]))

    @property
    def planned(self) -> float:
        return float(np.mean([d.plan_cost for d in self.decisions]))

    @property
    def oracle(self) -> float:
        return float(np.mean([d.oracle_cost for d in self.decisions]))

    @property
    def share_of_oracle(self) -> float:
        gap = self.run_now - self.oracle
        return (self.run_now - self.planned) / gap if gap > 0 else 1.0


class Shifter:
    """The policy: forecast the window, start when now is the forecast-cleanest start."""

    def __init__(self, known: Series, forecaster: SeasonalForecaster | None = None) -> None:
        self.known = known  # everything the policy may read (history ∪ intensity)
        self.forecaster = forecaster or SeasonalForecaster()
        self._profiles: dict[int, Array] = {}

    def profile_at(self, now: int) -> Array:
        day = now - now % 24  # profiles change slowly: one per day, from data before it
        p = self._profiles.get(day)
        if p is None:
            p = self.forecaster.profile(self.known.values, self.known.hours, day)
            self._profiles[day] = p
        return p

    def start_now(self, now: int, last_start: int, duration: int) -> bool:
        """Decide at hour ``now`` (reading only hours < now) whether to start."""
        if now >= last_start:
            return True
        i = int(np.searchsorted(self.known.hours, now)) - 1  # the last hour before now
        if i < 0:
            return True  # nothing known: no basis to wait
        profile = self.profile_at(now)
        horizon = last_start - now + duration
        f = self.forecaster.forecast(
            float(self.known.values[i]), int(self.known.hours[i]), now, horizon, profile
        )
        costs = np.convolve(f, np.ones(duration) / duration, "valid") if duration > 1 else f
        return int(np.argmin(costs)) == 0


def replay(
    intensity: Series,
    histories: list[Series],
    *,
    duration_h: int,
    window_h: int,
    forecaster: SeasonalForecaster | None = None,
) -> ReplayResult:
    if duration_h < 1 or window_h < duration_h:
        raise ValueError("need 1 ≤ duration ≤ window (whole hours)")
    first, last = int(intensity.hours[0]), int(intensity.hours[-1])
    span = np.arange(first, last + 1)
    # The truth the jobs pay: the intensity series, gaps filled with the previous hour.
    idx = np.searchsorted(intensity.hours, span, side="right") - 1
    truth = intensity.values[idx]
    csum = np.concatenate([[0.0], np.cumsum(truth)])

    def cost(start: int) -> float:
        o = start - first
        return float((csum[o + duration_h] - csum[o]) / duration_h)

    # History may be read whole; the intensity series only before each decision hour. The
    # shifter sees one merged series and reads hours < now from it; intensity hours win.
    known = merge([*histories, intensity])
    shifter = Shifter(known, forecaster)
    decisions = []
    # the first arrival with a day of observed hours before it (any history file's included)
    day = min(HISTORY_HOURS, len(known.hours)) - 1
    begin = max(first, int(known.hours[day]) + 1)
    if begin > last - window_h + 1:
        raise ValueError(
            f"the intensity file leaves no job its window after the first {HISTORY_HOURS} "
            "observed hours: give a longer file, or the hours before it with --history"
        )
    for arrival in range(begin, last - window_h + 2):
        last_start = arrival + window_h - duration_h
        now = arrival
        while not shifter.start_now(now, last_start, duration_h):
            now += 1
        costs = [cost(s) for s in range(arrival, last_start + 1)]
        decisions.append(Decision(arrival, now, costs[0], cost(now), min(costs)))
    return ReplayResult(decisions, duration_h, window_h)


def iso(hour: int) -> str:
    return datetime.fromtimestamp(hour * HOUR, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_plan(result: ReplayResult, path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arrival_utc", "start_utc"])
        for d in result.decisions:
            w.writerow([iso(d.arrival), iso(d.start)])


def parse_hours(text: str) -> int:
    """``1h``, ``8h``, ``2d`` or a bare number of hours → whole hours. Raises ``ValueError``
    (the CLI's usage error) for anything else, ``inf`` and ``nan`` included."""
    t = text.strip().lower()
    try:
        if t.endswith("d"):
            value = float(t[:-1]) * 24
        elif t.endswith("h"):
            value = float(t[:-1])
        else:
            value = float(t)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 1h, 8h, 2d)") from None
    if not math.isfinite(value):  # int() of it raised OverflowError (inf) or said "NaN"
        raise ValueError(f"not a duration: {text!r} (a finite number of whole hours)")
    if value <= 0 or value != int(value):
        raise ValueError(f"durations are whole hours > 0, got {text!r}")
    return int(value)
