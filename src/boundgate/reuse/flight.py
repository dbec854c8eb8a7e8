"""Request coalescing (single flight): identical concurrent requests cost one backend run.

A request whose lookup missed, but whose answer a later identical request would be served as
an exact hit, may find an identical request already computing that answer. Identical means
the same exact key (the tenant's scope: model and version, endpoint, context, the
output-shaping parameters; and the question's exact form) and the same ``max_tokens``, and
reusable: looked up and not bypassed (temperature at or below the dial, no tools, no
``Cache-Control: no-store``/``no-cache``, reuse not off). Then, instead of running the model
again, it waits for the first one (the *leader*) to store its answer and is served that
answer from the store as a hit, ``x-boundgate-reuse: hit-coalesced``, with the leader's
energy as avoided energy, like any hit. A streaming request waits for the whole answer and
gets it replayed as a stream, like any hit.

Only a request that will store its answer leads, and one about to lead looks at the exact key
once more first (``stored_meanwhile``): the flight it missed may have landed, its answer
stored, while it was being looked up. Whatever ends the leader's flight (its
answer stored, its failure, its client leaving, an answer that is not stored: empty,
filtered, over the limit it asked for) *lands* it, waking the waiters: each looks up the
exact key again and, finding no answer that fits, runs the model on its own as if it had
never waited. A leader's error is never theirs. On an upstream, waiting is bounded by
``reuse.coalesce_wait_s`` (0: no coalescing) and a waiter whose wait runs out runs on its own.
On a local model, which runs one generation at a time, a waiter that ran on its own would
queue behind the leader and then compute the same answer again, so it waits until the leader
lands (the gateway, ``Gateway._coalesce``); its client leaving still ends its wait.

Per process: the flights live in this process's memory. Across worker processes and
replicas each process leads its own flight, and the second answer stored is one more entry.
"""

from __future__ import annotations

import asyncio

FlightKey = tuple[str, int]  # (exact hash, max_tokens)


class Flight:
    """One leader's computation in progress; waiters wait for it to land."""

    def __init__(self, key: FlightKey) -> None:
        self.key = key
        self.waiters = 0  # requests waiting for it now
        # the leader's model answered (stored or not): its waiters would get an answer it
        # did not store no better by regrouping (``Gateway._coalesce``); they regroup after
        # a failure or a departure only
        self.answered = False
        self._landed = asyncio.Event()

    @property
    def landed(self) -> bool:
        return self._landed.is_set()

    async def wait(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` seconds for the flight to land; whether it did."""
        self.waiters += 1
        try:
            await asyncio.wait_for(self._landed.wait(), timeout_s)
        except TimeoutError:
            return False
        finally:
            self.waiters -= 1
        return True


class Flights:
    """The flights in progress in this process, by key (event-loop only, no locking)."""

    def __init__(self) -> None:
        self._open: dict[FlightKey, Flight] = {}

    def join(self, key: FlightKey, *, lead: bool) -> tuple[Flight | None, Flight | None]:
        """``(to wait for, led)``: the flight in progress for ``key`` if there is one;
        else, if ``lead``, a new flight this caller leads and must ``land``."""
        flight = self._open.get(key)
        if flight is not None:
            return flight, None
        if not lead:
            return None, None
        flight = self._open[key] = Flight(key)
        return None, flight

    def land(self, flight: Flight) -> None:
        """End ``flight``: its waiters wake (idempotent)."""
        if self._open.get(flight.key) is flight:
            del self._open[flight.key]
        flight._landed.set()

    def waiting(self) -> int:
        """How many requests wait for a flight now."""
        return sum(f.waiters for f in list(self._open.values()))

    def __len__(self) -> int:
        return len(self._open)
