"""What requests cost and may spend: the ledger, budget and rate-limit counters, energy profiles.

The conventions every method keeps are the package docstring's.
"""

from __future__ import annotations

from typing import Protocol

from ..rows import (
    Claim,
    CounterState,
    EnergyProfileRow,
    Hold,
    LedgerQuery,
    LedgerRow,
    PeriodRow,
    Release,
    ReportRow,
    StoredEntry,
)


class LedgerStore(Protocol):
    """The ledger: one row per request, append-only (a row written again under the same id
    replaces it)."""

    async def record(self, row: LedgerRow) -> None:
        """Append ``row`` (or replace the row with its id); returns once it is committed."""

    async def record_hit(
        self, row: LedgerRow, entry: StoredEntry, release: Release | None = None
    ) -> bool:
        """Record ``row``, the row of a request answered with the stored ``entry``, only if
        that entry is still stored as it was read (same key and public id, not revoked, bound
        to ``entry.document_id``), and then give back the holds of ``release`` (as
        ``LimitStore.settle`` with 0 used would); check, write and release are one atomic
        statement (one round trip on a server). True once the row is committed; False:
        nothing was written or released, and the answer must not be served."""

    async def open_request(self, row: LedgerRow, owner: str, lease_until: float) -> None:
        """Note that request ``row.id`` was accepted and is in progress (a write-ahead record),
        with ``row`` the ledger row to write should its process die before recording the
        request's own row; the note is ``owner``'s until ``lease_until``. Returns once it is
        committed; a note with that id is replaced. Recording a row with that id (``record``,
        ``record_hit``) removes the note in the same transaction."""

    async def renew_requests(self, owner: str, until: float, rows: list[LedgerRow]) -> None:
        """Extend the lease of ``owner``'s notes of ``rows`` to ``until`` and keep ``rows`` as
        their rows (what the requests used so far). A row whose note is gone (its own row was
        recorded meanwhile) or is not ``owner``'s is skipped: no note is made again."""

    async def recover_requests(self, now: float) -> list[LedgerRow]:
        """Turn every note whose lease ran out before ``now`` into its ledger row, unless a
        row with its id is there already (that one stays), and remove the notes; returns the
        rows written. Atomic: of concurrent calls (any process) each row is written once."""

    async def ledger(self, since: float | None = None, limit: int | None = None) -> list[LedgerRow]:
        """Rows with ``ts >= since`` (None: all), newest first, at most ``limit`` (None: all)."""

    async def get_row(self, request_id: str) -> LedgerRow | None:
        """The row of request ``request_id``; None if there is none."""

    async def query_ledger(
        self, q: LedgerQuery, limit: int = 100, offset: int = 0
    ) -> list[LedgerRow]:
        """Rows matching every filter of ``q`` (``reuse="none"``: rows without a reuse
        outcome), newest first; ``offset`` rows skipped, at most ``limit`` returned."""

    async def ledger_facets(self, since: float | None = None) -> dict[str, list[str]]:
        """``{"tenant": [...], "model": [...]}``: the distinct non-null values seen since
        ``since`` (None: ever), each list sorted (for filter menus)."""

    async def latencies(self, since: float, limit: int = 100_000) -> list[tuple[str, bool, float]]:
        """``(model, reused, latency_ms)`` of requests since ``since`` with a status below 400,
        newest first, at most ``limit``. ``model`` is "" where unknown; ``reused`` is True for
        answers served from stored answers (hit-exact, hit-semantic, hit-coalesced, stale)."""

    async def report(self, since: float | None = None) -> list[ReportRow]:
        """Totals per (tenant, model) since ``since`` (None: ever), sorted by tenant then
        model; ``model`` is "" where unknown, ``avg_latency_ms`` in milliseconds."""

    async def report_by_period(self, since: float, period_s: int = 86400) -> list[PeriodRow]:
        """Totals per period of ``period_s`` seconds (aligned to the epoch, so UTC hours or
        days) and tenant, oldest first, then by tenant. A batch's shifting saving counts in the
        period it finished in; its lines' own energy and carbon count when they ran. Raises
        ``ValueError`` if ``period_s`` is not positive."""


class LimitStore(Protocol):
    """Budgets and rate limits as shared counters: per (counter, window) a settled ``used``
    and the holds of requests in flight, so every gateway process sharing the database
    enforces one limit (issue #14).

    Reserving never reads and then writes from the caller: each claim is one conditional
    update in the database (``used + held + amount <= limit``), all claims of one reservation
    in one transaction. A hold lives until it is settled or its lease (``Claim.hold_s``)
    runs out; expired holds stop counting (a gateway killed mid-request frees its holds when
    their lease ends), which also makes a counter of holds alone (``hold_s = 60``, never
    settled) a sliding window of requests. A request that runs longer than the lease has its
    holds renewed (:meth:`renew_holds`) by its process, so only a dead process's lapse."""

    async def reserve(self, hold_id: str, claims: list[Claim], now: float) -> int | None:
        """Take every claim or none (atomic): None when all fit, else the index of the
        first claim that did not (and nothing changed). Held claims are recorded under
        ``hold_id`` (unique per reservation) expiring at ``now + hold_s``; holds that expired
        before ``now`` do not count. Claims are taken in counter order, so concurrent
        reservations over the same counters cannot deadlock."""

    async def settle(self, hold_id: str, counter: str, window: float, used: int) -> None:
        """Replace hold ``hold_id`` on ``counter``'s ``window`` by ``used`` (atomic). If the
        hold expired meanwhile, ``used`` is still added. Call once per hold: every call adds
        ``used``. A negative ``used`` with a fresh ``hold_id`` gives back units a claim
        without a hold (``hold_s`` None) counted as used at once."""

    async def renew_holds(self, holds: list[Hold], until: float) -> None:
        """Extend the lease of each of ``holds`` (requests still running) to ``until``, never
        shortening one. A hold settled or freed meanwhile stays gone; one whose lease ran out
        but that no claim has freed yet counts again (nothing took its room)."""

    async def counter_state(self, counter: str, window: float, now: float) -> CounterState:
        """``counter`` in ``window`` at ``now`` (zeros for a counter never claimed)."""

    async def prune_counters(self, before: float) -> None:
        """Delete the counters of windows that started before ``before`` (and are not 0),
        with their holds: old days' budgets."""

    async def counters_used(self, prefix: str, window: float) -> dict[str, int]:
        """The settled ``used`` of every counter whose name starts with ``prefix`` (taken
        literally: ``%`` and ``_`` are not wildcards) in ``window``, by counter name; holds
        are not included. Counters never claimed in that window are absent."""


class ProfileStore(Protocol):
    """Measured energy profiles of local models (``boundgate models profile``)."""

    async def put_profile(self, profile: EnergyProfileRow) -> None:
        """Append a profile; returns once committed. Older profiles are kept (history)."""

    async def profiles(self, host: str | None = None) -> list[EnergyProfileRow]:
        """The newest profile of each model (measured on ``host``, when given; newest by
        ``measured_at``, then by insertion), sorted by model."""
