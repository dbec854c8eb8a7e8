"""Grid signals: where carbon intensity comes from."""

from .base import CarbonSource, Intensity
from .bundled import ATTRIBUTION, BundledCarbonSource, HourlyPoint

__all__ = ["ATTRIBUTION", "BundledCarbonSource", "CarbonSource", "HourlyPoint", "Intensity"]
