"""Pick the best meter that can actually be read on this machine."""

from __future__ import annotations

from ..settings import ConfigError, EnergySettings
from .base import Meter
from .estimate import CpuTimeEstimateMeter, TokenEstimateMeter
from .nvml import NvmlMeter
from .rapl import RaplMeter


def local_meter(settings: EnergySettings) -> Meter:
    """RAPL if readable, else NVML if a GPU answers, else the CPU-time estimate, configured
    by the ``[energy]`` section.

    ``energy.method`` forces one; forcing a counter that can't be read is an error, not a silent
    fallback, because the method shown to users must be the one used (``ConfigError``, which
    ``serve`` reports in one line with exit status 2).
    """
    method, rapl_root, pue = settings.method, settings.rapl_root, settings.pue
    if method in ("auto", "rapl") and RaplMeter.available(rapl_root):
        return RaplMeter(rapl_root, pue=pue)
    if method == "rapl":
        raise ConfigError(f"energy.method = 'rapl' but no readable RAPL counters under {rapl_root}")
    if method in ("auto", "nvml") and NvmlMeter.available():
        return NvmlMeter(pue=pue)
    if method == "nvml":
        raise ConfigError("energy.method = 'nvml' but NVML is not available (install [gpu])")
    return CpuTimeEstimateMeter(
        watts_per_core=settings.cpu_watts_per_core,
        watts_per_core_low=settings.cpu_watts_per_core_low,
        watts_per_core_high=settings.cpu_watts_per_core_high,
        memory_watts_per_gb=settings.memory_watts_per_gb,
        pue=pue,
    )


def upstream_meter(*, pue: float) -> Meter:
    return TokenEstimateMeter(pue=pue)
