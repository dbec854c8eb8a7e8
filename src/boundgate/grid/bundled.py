"""Carbon intensity from the hourly history bundled in the package (offline default).

The data are Electricity Maps' hourly lifecycle (LCA) and direct intensities for 2021-2023
(ODbL 1.0, see NOTICE). For a time outside the bundled years the source *replays* the same
hour of the year (month, day, hour; 29 February reads 28 February) from the most recent
bundled year, and says so: method ``historical-replay``. A time inside the bundled years gets
that hour's recorded value (method ``historical``).
"""

from __future__ import annotations

import csv
import gzip
import io
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from .base import CarbonSource, Intensity

ATTRIBUTION = "Electricity Maps (ODbL 1.0)"


@dataclass(frozen=True)
class HourlyPoint:
    at: datetime
    direct: float
    lca: float
    estimated: bool


def known_zone(zone: str, zones: list[str]) -> str | None:
    """``zone`` as ``zones`` spell it, whatever its case and surrounding spaces ("gb" is
    "GB"; zone keys are Electricity Maps' upper-case ones), or None when none is it."""
    wanted = zone.strip().casefold()
    return next((z for z in zones if z.casefold() == wanted), None)


class BundledCarbonSource(CarbonSource):
    def __init__(self) -> None:
        self._series: dict[str, dict[tuple[int, int, int, int], HourlyPoint]] = {}
        self._years: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def zones(self) -> list[str]:
        files = resources.files("boundgate.grid.data").iterdir()
        return sorted(f.name.removesuffix(".csv.gz") for f in files if f.name.endswith(".csv.gz"))

    def _load(self, zone: str) -> dict[tuple[int, int, int, int], HourlyPoint]:
        with self._lock:
            cached = self._series.get(zone)
            if cached is not None:
                return cached
            if zone not in self.zones():
                raise ValueError(
                    f"no bundled carbon data for zone {zone!r}; known zones: "
                    + ", ".join(self.zones())
                )
            raw = resources.files("boundgate.grid.data").joinpath(f"{zone}.csv.gz").read_bytes()
            series: dict[tuple[int, int, int, int], HourlyPoint] = {}
            text = gzip.decompress(raw).decode()
            for row in csv.DictReader(io.StringIO(text)):
                at = datetime.fromisoformat(row["datetime_utc"].replace("Z", "+00:00"))
                series[(at.year, at.month, at.day, at.hour)] = HourlyPoint(
                    at, float(row["direct"]), float(row["lca"]), row["estimated"] == "1"
                )
            self._series[zone] = series
            self._years[zone] = sorted({k[0] for k in series})
            return series

    def series(self, zone: str, year: int | None = None) -> list[HourlyPoint]:
        """Every bundled hour for ``zone`` (optionally one year), oldest first."""
        data = self._load(zone)
        points = sorted(data.values(), key=lambda p: p.at)
        return [p for p in points if year is None or p.at.year == year]

    def intensity(self, zone: str, at: datetime) -> Intensity:
        data = self._load(zone)
        at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
        hour = at.replace(minute=0, second=0, microsecond=0)
        point = data.get((at.year, at.month, at.day, at.hour))
        if point is not None:
            return Intensity(zone, hour, point.lca, "historical", f"bundled:{ATTRIBUTION}")
        day = 28 if (at.month, at.day) == (2, 29) else at.day
        for year in reversed(self._years[zone]):
            point = data.get((year, at.month, day, at.hour))
            if point is not None:
                return Intensity(
                    zone,
                    hour,
                    point.lca,
                    "historical-replay",
                    f"bundled:{ATTRIBUTION} {year}",
                )
        raise LookupError(f"no bundled hour for {zone} at {at.isoformat()}")  # pragma: no cover
