"""Carbon from energy: gCO2e = Wh / 1000 × grid intensity (gCO2e/kWh), and the energy report
every answer carries (headers, the final stream chunk, the ledger row)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..fmt import plain_decimal as _dec
from .base import Measurement

if TYPE_CHECKING:
    from ..grid.base import CarbonSource


def carbon_g(m: Measurement, gco2_per_kwh: float) -> tuple[float, float, float]:
    """(central, low, high) grams CO2e. The range carries the energy range only: grid
    intensity is one hourly value from the source, whose own uncertainty is not modelled."""
    k = gco2_per_kwh / 1000.0
    return m.wh * k, m.wh_low * k, m.wh_high * k


@dataclass(frozen=True)
class EnergyReport:
    wh: float
    wh_low: float
    wh_high: float
    method: str
    gco2: float
    gco2_low: float
    gco2_high: float
    zone: str
    gco2_per_kwh: float
    # where the intensity came from (``Intensity.source``: the bundled data with its
    # attribution, "bundled:Electricity Maps (ODbL 1.0) 2023", or a live provider)
    grid_source: str = ""

    def headers(self) -> dict[str, str]:
        return {
            "x-boundgate-energy-wh": _dec(self.wh),
            "x-boundgate-energy-range-wh": f"{_dec(self.wh_low)}-{_dec(self.wh_high)}",
            "x-boundgate-energy-method": self.method,
            "x-boundgate-carbon-g": _dec(self.gco2),
            "x-boundgate-grid-zone": self.zone,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "energy_wh": self.wh,
            "energy_range_wh": [self.wh_low, self.wh_high],
            "energy_method": self.method,
            "carbon_g": self.gco2,
            "carbon_range_g": [self.gco2_low, self.gco2_high],
            "grid_zone": self.zone,
            "grid_gco2_per_kwh": self.gco2_per_kwh,
            "grid_source": self.grid_source,
        }


class EnergyReporter:
    """Turns a measurement into an :class:`EnergyReport` at the grid intensity of the hour a
    request started, for the configured zone."""

    def __init__(self, carbon: CarbonSource, zone: str) -> None:
        self.carbon = carbon
        self.zone = zone

    def report(self, m: Measurement, at: float) -> EnergyReport:
        when = datetime.fromtimestamp(at, tz=UTC)
        point = self.carbon.intensity(self.zone, when)
        intensity = point.gco2_per_kwh
        g, g_low, g_high = carbon_g(m, intensity)
        return EnergyReport(
            m.wh,
            m.wh_low,
            m.wh_high,
            m.method,
            g,
            g_low,
            g_high,
            self.zone,
            intensity,
            point.source,
        )
