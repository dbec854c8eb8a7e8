"""Forecasting grid carbon intensity (or price) from history alone.

The forecaster is a recency-weighted daily profile with a decaying anomaly:

    f(t+k) = P(hour_of_day(t+k)) + (x(t-1) - P(hour_of_day(t-1))) · ρ^k

- ``P(h)`` is the mean of the last ``profile_days`` days at hour-of-day ``h``, each day weighted
  by 2^(-age / half_life_days): the diurnal shape (solar noon dips, evening peaks) as it is
  *now*, following the seasons;
- ``x(t-1)`` is the last observed hour. Its deviation from the profile (a windy day, a cold
  snap) persists and fades by ``ρ`` per hour ahead.

Only values strictly before the decision time are used. The defaults (ρ = 0.97, half-life 7 days,
28 days of profile) were chosen on 2021–2022 → 2023 replays of the six bundled zones; they
sit on a plateau (ρ 0.93–0.99, half-life 3–14 days, 14–56 days all score within 0.02 of
each other), so they are not tuned to one zone. Errors per zone are in ``docs/scheduling.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SeasonalForecaster:
    rho: float = 0.97
    half_life_days: float = 7.0
    profile_days: int = 28

    def profile(self, values: Array, hours: npt.NDArray[np.int64], now_hour: int) -> Array:
        """Recency-weighted mean by hour of day of the observations in the last
        ``profile_days`` days before ``now_hour`` (``hours`` are absolute hours since the
        epoch, sorted; the series may have gaps)."""
        lo = int(np.searchsorted(hours, now_hour - self.profile_days * 24))
        hi = int(np.searchsorted(hours, now_hour))
        if hi - lo < 24:  # too little recent data: the latest profile_days of what exists
            lo = max(0, hi - self.profile_days * 24)
        seg, hrs = values[lo:hi], hours[lo:hi]
        if len(seg) == 0:
            raise ValueError("the forecaster needs at least one observed hour")
        w = 0.5 ** (((now_hour - hrs) / 24.0) / self.half_life_days)
        hod = (hrs % 24).astype(np.int64)
        num = np.bincount(hod, weights=seg * w, minlength=24)
        den = np.bincount(hod, weights=w, minlength=24)
        fallback = float(np.average(seg, weights=w))
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), fallback)

    def forecast(
        self,
        last_value: float,
        last_hour: int,
        now_hour: int,
        horizon: int,
        profile: Array,
    ) -> Array:
        """Forecasts for the ``horizon`` hours from ``now_hour`` (absolute hours), given the
        latest observation (``last_value`` at ``last_hour`` < ``now_hour``) and a profile."""
        dev = last_value - float(profile[last_hour % 24])
        ks = np.arange(1, horizon + 1)
        lead = ks + (now_hour - 1 - last_hour)  # hours since the last observation
        target_hod = (now_hour + ks - 1) % 24
        return np.asarray(profile[target_hod] + dev * self.rho**lead, dtype=np.float64)
