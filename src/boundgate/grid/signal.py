"""Other hourly signals for scheduling, e.g. day-ahead electricity prices from a CSV.

``CsvSignal`` reads ``datetime_utc`` and one value column (the shape of the shared grid data,
e.g. ``usd_per_mwh`` in a day-ahead price file). For an hour the file does not cover, it
replays the same hour-of-year from the latest year that has it (like the bundled carbon
history), so an offline file keeps giving a daily and weekly shape. A file shorter than a year
cannot replay every hour of the year; an hour no year of it covers takes the same hour of the
week from the file's nearest week (a file shorter than a week: the same hour of the day from
its nearest day; lacking that hour of the day too: its nearest hour). So every hour has a
value and a forecast never fails for want of data; :attr:`CsvSignal.hours_of_year` says how
much of the year the file covers (the gateway logs a warning when it is not all of it). No
price data ships with boundgate: the operator points ``scheduler.price_csv`` at their own file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .series import read_series

HOUR = 3600
HOURS_PER_YEAR = 8760  # 365 days; 29 February replays 28 February
# periods of the fallback for hours of the year the file lacks: the same hour of the week,
# of the day, then any hour, from the nearest stretch of the file that has it
_PERIODS = (168, 24, 1)


class CsvSignal:
    """One value per UTC hour from an hourly CSV, total over time.

    Raises :class:`~boundgate.grid.series.SeriesError` (a ``ValueError``) when the file cannot
    be read, lacks ``datetime_utc`` or ``column``, has a bad row, or has no rows.
    """

    def __init__(self, path: Path, column: str) -> None:
        series = read_series(path, column)
        self.column = column
        self.path = path
        self.first = datetime.fromtimestamp(int(series.hours[0]) * HOUR, tz=UTC)
        self.last = datetime.fromtimestamp(int(series.hours[-1]) * HOUR, tz=UTC)
        self._by_hour: dict[int, float] = dict(
            zip(series.hours.tolist(), series.values.tolist(), strict=True)
        )
        self._by_key: dict[tuple[int, int, int, int], float] = {}
        for h, v in self._by_hour.items():
            t = datetime.fromtimestamp(h * HOUR, tz=UTC)
            self._by_key[(t.year, t.month, t.day, t.hour)] = v
        self._years = sorted({k[0] for k in self._by_key}, reverse=True)
        self.hours_of_year = len({(m, d, h) for (_, m, d, h) in self._by_key if (m, d) != (2, 29)})
        """How many of the 8760 hours of a year (month, day, hour) some year of the file has;
        hours of the year it lacks fall back to the file's nearest week (see the module)."""
        hours = series.hours
        self._slots = [
            (period, {int(s): hours[hours % period == s] for s in np.unique(hours % period)})
            for period in _PERIODS
        ]

    def value(self, at: datetime) -> float:
        """The value for ``at``'s hour: the file's, else the same hour-of-year of the latest
        year that has it, else the nearest same hour of the week / day / any hour (never
        raises)."""
        hour = int(at.timestamp()) // HOUR
        if hour in self._by_hour:
            return self._by_hour[hour]
        t = at.astimezone(UTC)
        day = 28 if (t.month, t.day) == (2, 29) else t.day
        for year in self._years:
            v = self._by_key.get((year, t.month, day, t.hour))
            if v is not None:
                return v
        return self._by_hour[self._nearest(hour)]

    def _nearest(self, hour: int) -> int:
        """The file's hour nearest to ``hour`` with the same hour of the week (else of the
        day, else any); the earlier of two as near."""
        for period, slots in self._slots:
            same = slots.get(hour % period)
            if same is None:
                continue
            i = int(np.searchsorted(same, hour))
            near = [int(same[j]) for j in (i - 1, i) if 0 <= j < len(same)]
            return min(near, key=lambda h: (abs(h - hour), h))
        raise AssertionError("unreachable: period 1 covers every hour")  # pragma: no cover
