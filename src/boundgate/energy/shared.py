"""One process-wide counter, several requests measuring at once: each gets its share.

RAPL's package counters, NVML's device counters and the process's CPU time each count the
work of every request in flight; two requests metered over overlapping intervals would each
read the other's energy too, and the ledger's total would exceed what the counter counted.

The rule is the one Kepler and Scaphandre follow to attribute a node's measured energy to its
workloads: cut time at each reading, and split each interval's measured energy among the
workloads active in it by their share of the activity in it (Kepler: workload energy =
workload CPU-time Δ / node CPU-time Δ × active energy, sustainable-computing-io/kepler
docs/developer/power-attribution-guide.md; Scaphandre: a process's share of the CPU time
between two readings times the host's power, hubblo-org/scaphandre
docs_src/explanations/how-scaph-computes-per-process-power-consumption.md). A request has no
CPU time of its own to weigh it by: they share the event loop's thread, and the model's and
the embedder's worker threads serve whichever request asks. So the interval between two
events (a measurement starting or ending, or read while open) is split in **equal shares**
among the measurements open during it: processor sharing, the assumption that the requests in
flight shared the machine equally. The shares of each interval sum to its energy, so the
measurements' sum is the counter's energy over the union of their intervals (time when none
is open is nobody's, as before).

The split is an estimate even where the counter is a measurement, and the range says so: an
interval shared by n measurements gives each its energy / n as the central figure, 0 as the
low end (a request may have done none of the work) and the interval's whole high end as the
high end (it cannot have done more than all of it). An interval a measurement had alone is
its own, with the counter's range. The method stays the counter's (``rapl``, ``nvml``,
``estimate``): what was read; the detail names the split.
"""

from __future__ import annotations

import threading
import weakref

from .base import Measurement, Meter, MeterToken, Work, combine

# a counter reading with nothing of its own (``Meter.own``): the counter's energy alone
_NOTHING = Work(backend_kind="shared", params_b=0.0)


class _Share(MeterToken):
    """What one measurement was given of the counter so far (Wh)."""

    def __init__(self) -> None:
        self.wh = self.wh_low = self.wh_high = 0.0
        self.intervals = 0  # intervals of the counter it was open in
        self.shared = 0  # of which another measurement was open in too


class SharedMeter(Meter):
    """``counter`` (a ``process_wide`` meter) shared by the measurements open at once: each
    interval between two events is split equally among the measurements open during it
    (module docstring). Thread-safe; a measurement whose token is dropped without being
    stopped (its request failed in an unforeseen way) leaves the split when it is garbage
    collected."""

    def __init__(self, counter: Meter) -> None:
        self.counter = counter
        self.name = counter.name
        self._lock = threading.Lock()
        self._open: weakref.WeakSet[_Share] = weakref.WeakSet()
        self._interval: MeterToken | None = None  # the counter's, since the last event

    def start(self) -> MeterToken:
        share = _Share()
        with self._lock:
            if len(self._open) == 0:
                self._interval = self.counter.start()
            else:
                self._split()
            self._open.add(share)
        return share

    def stop(self, token: MeterToken, work: Work) -> Measurement:
        assert isinstance(token, _Share)
        with self._lock:
            if token in self._open:
                self._split()
                self._open.discard(token)
                if len(self._open) == 0:
                    self._interval = None
        return self._measurement(token, work)

    def read(self, token: MeterToken, work: Work) -> Measurement:
        """The share of the measurement ``token`` so far; it stays open."""
        assert isinstance(token, _Share)
        with self._lock:
            if token in self._open:
                self._split()
        return self._measurement(token, work)

    def own(self, work: Work) -> Measurement | None:
        return self.counter.own(work)

    def _split(self) -> None:
        """Read the counter since the last event and give each open measurement its share."""
        if self._interval is None:
            return
        m, self._interval = self.counter.lap(self._interval, _NOTHING)
        shares = list(self._open)
        n = len(shares)
        for share in shares:
            share.intervals += 1
            share.wh += m.wh / n
            share.wh_high += m.wh_high
            if n == 1:
                share.wh_low += m.wh_low
            else:
                share.shared += 1

    def _measurement(self, share: _Share, work: Work) -> Measurement:
        detail = f"{self.counter.name} counter"
        if share.shared:
            detail += (
                f", {share.shared} of {share.intervals} interval(s) shared with other "
                "requests: equal shares"
            )
        # float sums: keep low <= central <= high exact
        wh = min(max(share.wh, share.wh_low), share.wh_high)
        m = Measurement(wh, share.wh_low, share.wh_high, self.name, detail)
        return combine(m, self.own(work))


class Sharing:
    """A gateway's meters, each process-wide one behind one ``SharedMeter``: the same meter
    given for the models and the lookups is shared by all of them. Meters are kept for the
    gateway's life (a ``meter_for`` returns long-lived meters)."""

    def __init__(self) -> None:
        self._shared: dict[int, tuple[Meter, SharedMeter]] = {}

    def __call__(self, meter: Meter) -> Meter:
        if not meter.process_wide or isinstance(meter, SharedMeter):
            return meter
        kept = self._shared.get(id(meter))
        if kept is None:
            kept = self._shared[id(meter)] = (meter, SharedMeter(meter))
        return kept[1]
