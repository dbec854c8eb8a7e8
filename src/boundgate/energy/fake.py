"""Meters for tests: configured figures (or a function of the work) per measurement, or a
process-wide counter that a fake clock drives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..clock import Clock
from .base import Measurement, Meter, MeterToken, Method, Work


class FakeMeter(Meter):
    """``wh`` (or ``per_work(work)``) for every measurement, whatever else is measured at the
    same time: not a counter, so never shared."""

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


@dataclass(frozen=True)
class _CounterToken(MeterToken):
    seconds: float


class FakeCounterMeter(Meter):
    """A counter the whole process advances, as RAPL's or the process's CPU time: ``watts``
    for every second ``clock`` moves (a ``FakeClock``: only when a test or a ``FakeBackend``
    moves it), whoever is measuring. Two measurements open over the same seconds each read
    them, so it is ``process_wide``: a gateway shares it (``SharedMeter``). Range: half to
    one and a half times the central figure, as ``FakeMeter``'s."""

    process_wide = True

    def __init__(self, clock: Clock, watts: float = 3.6, method: Method = "rapl") -> None:
        self.clock = clock
        self.watts = watts
        self.name = method

    def start(self) -> MeterToken:
        return _CounterToken(self.clock.monotonic())

    def stop(self, token: MeterToken, work: Work) -> Measurement:
        return self.lap(token, work)[0]

    def lap(self, token: MeterToken, work: Work) -> tuple[Measurement, MeterToken]:
        assert isinstance(token, _CounterToken)
        now = self.clock.monotonic()
        wh = max(0.0, now - token.seconds) * self.watts / 3600.0
        return Measurement(wh, wh * 0.5, wh * 1.5, self.name, "fake counter"), _CounterToken(now)
