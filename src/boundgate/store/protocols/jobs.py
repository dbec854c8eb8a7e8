"""Deferred work: the job queue and the creativity buffer's variants.

The conventions every method keeps are the package docstring's.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from ..rows import (
    JobRow,
    VariantRow,
)


class JobStore(Protocol):
    """The persistent job queue: deferrable work with a start window, leased to runners."""

    async def put_job(self, job: JobRow) -> bool:
        """Queue ``job``; False (and nothing written) if a job with its id exists already, or
        a pending or running one with its dedupe key (atomic: of concurrent puts with one
        dedupe key exactly one wins). The key of a job that is done, failed or cancelled can
        be used again."""

    async def claim_job(
        self, owner: str, now: float, lease_s: float, accepts: Collection[str] = ()
    ) -> JobRow | None:
        """Lease the due job with the earliest ``deadline`` (then ``not_before``; due:
        pending with ``not_before <= now``, or running with a lease that expired before
        ``now``) to ``owner`` until ``now + lease_s``: it becomes running, its attempts grow
        by one, and the returned row shows that. None if no job is due. Atomic: concurrent
        claims never get the same job. Earliest deadline first: two batches planned for one
        clean hour ran in the order they were planned, and a 2-line batch with a 1 h window
        expired unrun behind a 2,000-line one with 24 h (an auditor's trial).

        ``accepts``: the requirements the claiming process meets (``JobRow.requires``). A job
        that requires something else is passed over, never written, until its ``deadline``
        has passed and no live runner meets its requirement (:meth:`note_runner`); then any
        process may claim it, to finish it as skipped. Past its deadline a job is still only
        for a process that can run it while one is alive: that one runs it late."""

    async def note_runner(
        self, owner: str, accepts: Collection[str], now: float, until: float
    ) -> None:
        """Record that job runner ``owner`` is alive until ``until`` (s, the clock of
        ``claim_job``'s ``now``) and meets the requirements ``accepts`` (replacing what it
        recorded before; none: it is not waited for). Records whose time ran out by ``now``
        are dropped. One write; a runner renews it well before ``until``."""

    async def forget_runner(self, owner: str) -> None:
        """Drop what :meth:`note_runner` recorded for ``owner`` (its runner stopped): jobs
        only it could run are no longer waited for past their deadline."""

    async def live_requirements(self, now: float, besides: str | None = None) -> frozenset[str]:
        """The requirements (``JobRow.requires`` values) met by the job runners alive at
        ``now`` (what :meth:`note_runner` recorded, until after ``now``), leaving out what
        runner ``besides`` recorded (a runner asking about the others). One read: a runner
        deciding whether a late job without a requirement, which it cannot run, is another
        live runner's to run (``jobs.JobRunner``)."""

    async def finish_job(
        self,
        job_id: str,
        owner: str,
        state: str,
        result: str | None,
        *,
        retry_at: float | None = None,
        handed_back: bool = False,
    ) -> bool:
        """Set a running job leased to ``owner`` to ``state`` (done, failed, or pending to
        retry) with ``result`` (JSON) and drop the lease; False if the job is not running or
        the lease is someone else's (so only the lease holder's first call counts).
        ``retry_at`` (pending only): the job is held back until then, in the same write: its
        ``not_before`` and ``hold_until`` move there (a Retry-After, a retry's backoff).
        ``handed_back`` (pending only): the runner did not try the job but gave it back for
        another (``jobs.HandBack``): the claim's attempt is taken back (``attempts`` one
        lower), so it never counts towards failing the job."""

    async def renew_job(self, job_id: str, owner: str, until: float) -> bool:
        """Extend the lease of running job ``job_id`` to ``until`` if ``owner`` still holds it
        (a long job's heartbeat); False if the job is not running or leased to someone else
        (the lease expired and another runner claimed it)."""

    async def reschedule_job(self, job_id: str, not_before: float) -> bool:
        """Move a pending job's earliest start (re-planning); False if it is not pending or
        ``not_before`` is before its ``hold_until`` (a hold is never planned away)."""

    async def cancel_job(self, job_id: str) -> bool:
        """Cancel a job that has not started; False if it is running, finished or unknown."""

    async def jobs(self, state: str | None = None) -> list[JobRow]:
        """Jobs in ``state`` (None: any), oldest ``created`` first."""

    async def job_counts(self) -> dict[str, int]:
        """Jobs per state (states with none are absent), for metrics."""


class CreativityStore(Protocol):
    """The creativity buffer: creative (above-dial) asks and pre-generated variants of them,
    each served at most once to any one asker."""

    async def note_novel_ask(self, exact: str, asker: str, request: str, ts: float) -> int:
        """Record a creative ask of prompt ``exact`` by ``asker`` with its request JSON;
        returns the distinct askers of that prompt so far, this one included (atomic)."""

    async def novel_request(self, exact: str) -> str | None:
        """The latest recorded request (JSON) for prompt ``exact``; None if never asked."""

    async def add_variants(self, variants: list[VariantRow]) -> None:
        """Store pre-generated variants (their ``id`` is ignored: the store assigns one)."""

    async def take_variant(self, exact: str, asker: str, ts: float) -> VariantRow | None:
        """A variant of ``exact`` not yet served to ``asker``, the least served one first,
        marked as served to them at ``ts``; None if there is none left. Atomic: concurrent
        takes by one asker never get the same variant twice, and a variant never served is
        never handed to two askers while another unserved one is left."""

    async def variant_count(self, exact: str) -> int:
        """Variants stored for ``exact``."""

    async def unused_variants(self, exact: str) -> int:
        """Variants of ``exact`` nobody has been served yet."""
