"""The metering seam: one small interface, several honest implementations.

A :class:`Meter` brackets a piece of work: ``start()`` before it, ``stop(token, work)``
after it. ``work`` says what happened (tokens, model size) so estimate-based meters can
use it; counter-based meters (RAPL, NVML) ignore it. The result always says which
method produced it and how uncertain it is.

A meter that reads a counter the whole process or machine advances (``process_wide``: RAPL,
NVML, the process's CPU time) sees every concurrent request's energy in each interval; the
gateway meters through a :class:`~boundgate.energy.shared.SharedMeter` over it, which splits
each stretch of the counter among the measurements open during it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

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
    # reads a counter that the whole process (or machine) advances, so two measurements
    # open at once each read the other's energy too: to be shared (``SharedMeter``)
    process_wide: bool = False

    @abstractmethod
    def start(self) -> MeterToken:
        """Read counters at the start of an interval."""

    @abstractmethod
    def stop(self, token: MeterToken, work: Work) -> Measurement:
        """Read counters at the end of an interval and return the energy used."""

    def lap(self, token: MeterToken, work: Work) -> tuple[Measurement, MeterToken]:
        """``stop(token, work)`` and the token of an interval starting where it ended: one
        reading of the counters, so consecutive laps lose nothing between them (a counter
        meter overrides it; this default reads twice)."""
        return self.stop(token, work), self.start()

    def read(self, token: MeterToken, work: Work) -> Measurement:
        """The energy of the interval ``token`` began so far, which goes on (an open
        request's renewals). Reading a counter changes nothing: ``stop`` by default."""
        return self.stop(token, work)

    def own(self, work: Work) -> Measurement | None:
        """The part of ``stop(token, work)`` that ``work`` alone determines rather than the
        counter (the CPU-time estimate's memory term, Wh): what a split of a shared counter
        leaves whole to each measurement. None: all of it is the counter's."""
        return None


class Span:
    """A meter over one request's reuse work (lookups), which may pause.

    A request that waits for an identical one in flight (request coalescing) pauses its span
    for the wait: what the machine spends meanwhile is the other request's generation, which
    that one's ledger row already carries, and a wall-time estimate would bill the idle wait.
    ``stop`` returns the energy of the intervals metered (None without a meter) and may be
    called again (it returns the same)."""

    def __init__(self, meter: Meter | None, monotonic: Callable[[], float]) -> None:
        self.meter = meter
        self.monotonic = monotonic
        self._spent: Measurement | None = None
        self._token: MeterToken | None = None
        self._t0 = 0.0
        self.resume()

    def resume(self) -> None:
        """Meter again (a no-op while metering)."""
        if self.meter is not None and self._token is None:
            self._token = self.meter.start()
            self._t0 = self.monotonic()

    def pause(self) -> None:
        """Stop metering until ``resume``; the interval so far is kept."""
        if self.meter is None or self._token is None:
            return
        m = self.meter.stop(self._token, self._interval())
        self._token = None
        self._spent = m if self._spent is None else combine(m, self._spent)

    def read(self) -> Measurement | None:
        """The energy of every interval metered so far, the current one read without ending
        it (an open request's renewals; ``Meter.read``). None without a meter."""
        if self.meter is None or self._token is None:
            return self._spent
        m = self.meter.read(self._token, self._interval())
        return m if self._spent is None else combine(m, self._spent)

    def _interval(self) -> Work:
        """The current interval's work, as its meter is told: reuse work, its wall time."""
        return Work(backend_kind="reuse", params_b=0.0, wall_s=self.monotonic() - self._t0)

    def stop(self) -> Measurement | None:
        """The energy of every interval metered, in Wh with its range and method."""
        self.pause()
        return self._spent


class GenerationSpan:
    """The metered interval of one generation: from when it starts to when it ends.

    ``deferred`` (a backend that ``reports_start``: a local model run one generation at a
    time, the others queued): the interval starts at :meth:`begin`, which the backend calls
    (as the request's ``on_start``) once the request has the model, so it is not billed for
    its wait in the queue, when the machine's energy is the running generation's (already on
    that request's row). A request that never got the model (cancelled or failed while
    queued) gets an empty interval. Not deferred (upstream models, metered by their tokens):
    the interval starts at once, when the backend is called."""

    def __init__(self, meter: Meter, monotonic: Callable[[], float], *, deferred: bool) -> None:
        self.meter = meter
        self.monotonic = monotonic
        self.token: Any = None
        self.t0 = 0.0
        if not deferred:
            self.begin()

    def begin(self) -> None:
        if self.token is None:
            self.token = self.meter.start()
            self.t0 = self.monotonic()

    def end(self) -> tuple[Any, float]:
        """The meter token and the interval's wall seconds (0 if it never started)."""
        self.begin()
        return self.token, self.monotonic() - self.t0
