"""Energy metering: counters where readable (RAPL, NVML), labelled estimates otherwise."""

from .base import GenerationSpan, Measurement, Meter, MeterToken, Method, Span, Work, combine
from .carbon import EnergyReport, EnergyReporter, carbon_g
from .estimate import CpuTimeEstimateMeter, TokenEstimateMeter
from .fake import FakeCounterMeter, FakeMeter
from .nvml import NvmlMeter
from .rapl import RaplMeter
from .select import local_meter, upstream_meter
from .shared import SharedMeter, Sharing

__all__ = [
    "CpuTimeEstimateMeter",
    "EnergyReport",
    "EnergyReporter",
    "FakeCounterMeter",
    "FakeMeter",
    "GenerationSpan",
    "Measurement",
    "Meter",
    "MeterToken",
    "Method",
    "NvmlMeter",
    "RaplMeter",
    "SharedMeter",
    "Sharing",
    "Span",
    "TokenEstimateMeter",
    "Work",
    "carbon_g",
    "combine",
    "local_meter",
    "upstream_meter",
]
