"""NVIDIA GPU energy counters through NVML (``pynvml`` from the ``[gpu]`` extra).

``nvmlDeviceGetTotalEnergyConsumption`` reports millijoules since driver load, per device
(Volta and newer). Like RAPL it measures the whole device, other work included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Measurement, Meter, MeterToken, Work

COUNTER_UNCERTAINTY = 0.05


def _nvml() -> Any:
    import pynvml

    pynvml.nvmlInit()
    return pynvml


@dataclass(frozen=True)
class _NvmlToken(MeterToken):
    mj: tuple[int, ...]


class NvmlMeter(Meter):
    name = "nvml"
    process_wide = True  # the whole device's counter: shared among concurrent requests

    def __init__(self, *, pue: float) -> None:
        self.nvml = _nvml()
        n = self.nvml.nvmlDeviceGetCount()
        self.handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)]
        self.pue = pue

    @classmethod
    def available(cls) -> bool:
        try:
            nvml = _nvml()
            if nvml.nvmlDeviceGetCount() < 1:
                return False
            nvml.nvmlDeviceGetTotalEnergyConsumption(nvml.nvmlDeviceGetHandleByIndex(0))
        except Exception:  # no module, no driver, no GPU, or counter unsupported
            return False
        return True

    def _read(self) -> tuple[int, ...]:
        return tuple(int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self.handles)

    def start(self) -> MeterToken:
        return _NvmlToken(self._read())

    def stop(self, token: MeterToken, work: Work) -> Measurement:
        return self.lap(token, work)[0]

    def lap(self, token: MeterToken, work: Work) -> tuple[Measurement, MeterToken]:
        assert isinstance(token, _NvmlToken)
        now = self._read()
        mj = sum(max(0, a - b) for a, b in zip(now, token.mj, strict=True))
        wh = mj / 3.6e6 * self.pue
        m = Measurement(
            wh,
            wh * (1 - COUNTER_UNCERTAINTY),
            wh * (1 + COUNTER_UNCERTAINTY),
            "nvml",
            f"{len(self.handles)} GPU(s)",
        )
        return m, _NvmlToken(now)
