"""Carbon from energy: gCO2e = Wh / 1000 × grid intensity (gCO2e/kWh)."""

from __future__ import annotations

from .base import Measurement


def carbon_g(m: Measurement, gco2_per_kwh: float) -> tuple[float, float, float]:
    """(central, low, high) grams CO2e. The range carries the energy range only: grid
    intensity is one hourly value from the source, whose own uncertainty is not modelled."""
    k = gco2_per_kwh / 1000.0
    return m.wh * k, m.wh_low * k, m.wh_high * k
