"""A meter for tests: returns configured figures (or a function of the work)."""

from __future__ import annotations

from collections.abc import Callable

from .base import Measurement, Meter, MeterToken, Method, Work


class FakeMeter(Meter):
    def __init__(
        self,
        wh: float = 0.001,
        low: float | None = None,
        high: float | None = None,
        method: Method = "estimate",
        per_work: Callable[[Work], float] | None = None,
    ) -> None:
        self.wh = wh
        self.low = low
        self.high = high
        self.name = method
        self.per_work = per_work
        self.calls = 0

    def start(self) -> MeterToken:
        return MeterToken()

    def stop(self, token: MeterToken, work: Work) -> Measurement:
        self.calls += 1
        wh = self.per_work(work) if self.per_work else self.wh
        low = wh * 0.5 if self.low is None else self.low
        high = wh * 1.5 if self.high is None else self.high
        return Measurement(wh, low, high, self.name, "fake")
