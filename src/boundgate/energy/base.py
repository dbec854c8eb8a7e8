"""The metering seam: one small interface, several honest implementations.

A :class:`Meter` brackets a piece of work: ``start()`` before it, ``stop(token, work)``
after it. ``work`` says what happened (tokens, model size) so estimate-based meters can
use it; counter-based meters (RAPL, NVML) ignore it. The result always says which
method produced it and how uncertain it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

Method = Literal["rapl", "nvml", "estimate"]


@dataclass(frozen=True)
class Work:
    """What a metered interval did, for estimate-based meters."""

    backend_kind: str  # "llama_cpp" | "openai" | "fake"
    params_b: float  # model size in billions of parameters
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    memory_gb: float = 0.0  # resident model weights (local models)


@dataclass(frozen=True)
class Measurement:
    wh: float
    wh_low: float
    wh_high: float
    method: Method
    detail: str = ""  # e.g. "cpu-time x 10 W/core + memory share", for docs/debug

    def __post_init__(self) -> None:
        if not (0.0 <= self.wh_low <= self.wh <= self.wh_high):
            raise ValueError(f"inconsistent measurement {self!r}")


def combine(a: Measurement, b: Measurement | None) -> Measurement:
    """Energy of two intervals of one request (e.g. reuse lookup + generation).

    Sums add; the method is the weaker of the two (an estimate taints a counter reading).
    """
    if b is None:
        return a
    method: Method = a.method if a.method == b.method else "estimate"
    detail = f"{a.detail} + {b.detail}".strip(" +")
    return Measurement(a.wh + b.wh, a.wh_low + b.wh_low, a.wh_high + b.wh_high, method, detail)


class MeterToken:
    """Opaque per-interval state returned by :meth:`Meter.start`."""


class Meter(ABC):
    name: Method

    @abstractmethod
    def start(self) -> MeterToken:
        """Read counters at the start of an interval."""

    @abstractmethod
    def stop(self, token: MeterToken, work: Work) -> Measurement:
        """Read counters at the end of an interval and return the energy used."""
