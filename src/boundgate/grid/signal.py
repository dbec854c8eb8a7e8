"""Other hourly signals for scheduling, e.g. day-ahead electricity prices from a CSV.

``CsvSignal`` reads ``datetime_utc`` and one value column (the shape of the shared grid data,
e.g. ``usd_per_mwh`` in a day-ahead price file). For an hour the file does not cover, it
replays the same hour-of-year from the latest year it has (like the bundled carbon history),
so an offline file keeps giving a daily and weekly shape. No price data ships with boundgate:
the operator points ``scheduler.price_csv`` at their own file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from .series import read_series


class CsvSignal:
    def __init__(self, path: Path, column: str) -> None:
        series = read_series(path, column)
        self.column = column
        self._by_hour: dict[int, float] = dict(
            zip(series.hours.tolist(), series.values.tolist(), strict=True)
        )
        self._by_key: dict[tuple[int, int, int, int], float] = {}
        for h, v in self._by_hour.items():
            t = datetime.fromtimestamp(h * 3600, tz=UTC)
            self._by_key[(t.year, t.month, t.day, t.hour)] = v
        self._years = sorted({k[0] for k in self._by_key}, reverse=True)

    def value(self, at: datetime) -> float:
        hour = int(at.timestamp()) // 3600
        if hour in self._by_hour:
            return self._by_hour[hour]
        t = at.astimezone(UTC)
        day = 28 if (t.month, t.day) == (2, 29) else t.day
        for year in self._years:
            v = self._by_key.get((year, t.month, day, t.hour))
            if v is not None:
                return v
        raise LookupError(f"no value for {at.isoformat()} in the {self.column} signal")
