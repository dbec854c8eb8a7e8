"""The grid-signal seam: where carbon intensity comes from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Intensity:
    zone: str
    at: datetime  # the hour the value applies to (UTC)
    gco2_per_kwh: float
    method: str  # e.g. "historical-replay", "live", "forecast"
    source: str  # e.g. "bundled:Electricity Maps 2023"


class CarbonSource(ABC):
    @abstractmethod
    def intensity(self, zone: str, at: datetime) -> Intensity:
        """Grid carbon intensity (lifecycle gCO2e/kWh) for ``zone`` at ``at`` (UTC)."""

    def zones(self) -> list[str]:
        return []
