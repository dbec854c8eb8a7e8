"""Intel/AMD RAPL package energy counters, read from the Linux powercap sysfs tree.

Only top-level package domains (``intel-rapl:N``) are summed: their subzones (core, uncore,
dram) are already inside the package figure. Counters wrap at ``max_energy_range_uj``.
RAPL measures the whole package, other processes included; the range's low end attributes
only this process's share of the CPU time in the interval (see docs/energy.md).
"""

from __future__ import annotations

import os
import re
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from .base import Measurement, Meter, MeterToken, Work

_PACKAGE = re.compile(r"^intel-rapl:\d+$")
COUNTER_UNCERTAINTY = 0.05  # RAPL accuracy: within a few percent of plug power for the package


def package_domains(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if _PACKAGE.match(p.name) and (p / "energy_uj").exists()
    )


@dataclass(frozen=True)
class _RaplToken(MeterToken):
    counters: tuple[int, ...]
    cpu_s: float
    wall: float


class RaplMeter(Meter):
    name = "rapl"
    process_wide = True  # the whole package's counter: shared among concurrent requests

    def __init__(self, root: str | Path, *, pue: float) -> None:
        self.root = Path(root)
        self.pue = pue
        self.domains = package_domains(self.root)
        self.ranges = [self._read(d / "max_energy_range_uj", default=2**32) for d in self.domains]

    @staticmethod
    def _read(path: Path, default: int | None = None) -> int:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            if default is None:
                raise
            return default

    @classmethod
    def available(cls, root: str | Path) -> bool:
        domains = package_domains(Path(root))
        if not domains:
            return False
        try:
            for d in domains:
                cls._read(d / "energy_uj")
        except (OSError, ValueError):
            return False
        return True

    def start(self) -> MeterToken:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return _RaplToken(
            tuple(self._read(d / "energy_uj") for d in self.domains),
            ru.ru_utime + ru.ru_stime,
            time.monotonic(),
        )

    def stop(self, token: MeterToken, work: Work) -> Measurement:
        return self.lap(token, work)[0]

    def lap(self, token: MeterToken, work: Work) -> tuple[Measurement, MeterToken]:
        assert isinstance(token, _RaplToken)
        now = self.start()
        assert isinstance(now, _RaplToken)
        total_uj = 0
        for before, after, rng in zip(token.counters, now.counters, self.ranges, strict=True):
            total_uj += after - before if after >= before else after + rng - before
        wh = total_uj / 3.6e9 * self.pue
        cpu_s = now.cpu_s - token.cpu_s
        wall_s = max(now.wall - token.wall, 1e-9)
        share = min(1.0, max(0.0, cpu_s / (wall_s * (os.cpu_count() or 1))))
        m = Measurement(
            wh,
            wh * share * (1 - COUNTER_UNCERTAINTY),
            wh * (1 + COUNTER_UNCERTAINTY),
            "rapl",
            f"{len(self.domains)} package domain(s), process CPU share {share:.2f}",
        )
        return m, now
