"""Time as a seam: the real clock, and a fake one tests can move by hand."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod


class Clock(ABC):
    @abstractmethod
    def time(self) -> float:
        """Wall-clock unix seconds (ledger timestamps, daily budget windows)."""

    def monotonic(self) -> float:
        """Monotonic seconds for durations; the wall clock unless a subclass knows better."""
        return self.time()


class SystemClock(Clock):
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock(Clock):
    """A clock that only moves when told to (thread-safe)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def set(self, now: float) -> None:
        with self._lock:
            self._now = now
