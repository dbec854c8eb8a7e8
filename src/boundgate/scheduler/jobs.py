"""The job seam: persistent jobs, leased by a runner, completed once.

Jobs live in the store (table ``jobs``): kind, JSON payload, earliest start, deadline, state,
lease owner and expiry, attempts, result. :class:`JobQueue` submits and re-plans them;
``runner.py``'s ``JobRunner`` claims due ones with a lease and runs their handlers. A job
whose runner died is taken again, so handlers must be idempotent (rebinding a document twice
supersedes once: the second run finds the document already superseded).

*When* a job may start is a :class:`StartPolicy`: :func:`run_now` here, a grid-carbon-aware
policy in the scheduling work. Reuse submits rebind jobs through :class:`JobQueue`.

*Where* a job may run is its requirement (``JobRow.requires``, :func:`model_requirement`: a
rebind is for a model at one version, a round of variants for the model at the version its
prompt was asked of). A runner claims only jobs whose requirement its process meets
(``accepts``), so a replica still on the old model version in a rolling upgrade leaves the
new version's rebinds alone instead of claiming each one to hand it back (a write per job and
poll), and a replica without a model leaves its variants to one that serves it (it used to
claim them and end them refused, the model unknown to it). Who decides that a job is late is
a runner that could have run it, or all of them together: each runner records in the store
what it accepts and that it is alive (``Store.note_runner``, renewed every third of its
lease while it polls or runs a job, dropped when it stops). Past its deadline a job whose
requirement a live runner meets stays that runner's, which runs it late; once none is
alive, any runner claims it and finishes it ``done`` as skipped, its handler not run: no
process able to run it took it in its window. A job without a requirement (queued before
jobs had them) is any runner's, late too; one whose process cannot run it hands it back
(:class:`HandBack`), past its deadline too while another live runner runs what can run it,
and skips it only once none is alive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..clock import Clock, SystemClock
from ..store import JobRow, Store

log = logging.getLogger("boundgate.jobs")

JobHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
# (payload, error) -> None: told when a job of its kind has failed for good
FailureHandler = Callable[[dict[str, Any], str], Awaitable[None]]
# (payload, new start) -> None: told when a job of its kind will start at another time (a
# re-plan moved it; a failed or refused run holds it back until then)
StartHandler = Callable[[dict[str, Any], float], Awaitable[None]]
# (kind, now, deadline, estimated duration s) -> earliest start
StartPolicy = Callable[[str, float, float, float], float]


def run_now(kind: str, now: float, deadline: float, duration_s: float) -> float:
    return now


def model_requirement(model: str, version: str) -> str:
    """What a job that must run on ``model`` at ``version`` requires (``JobRow.requires``),
    and what a process running that model at that version accepts: the JSON array
    ``[model, version]`` without spaces (migrations write the same for jobs queued before)."""
    return json.dumps([model, version], separators=(",", ":"), ensure_ascii=False)


def parse_requirement(requires: str) -> tuple[str, str] | None:
    """(model, version) of :func:`model_requirement`'s ``[model, version]``; None for any
    other value."""
    try:
        parsed = json.loads(requires)
    except ValueError:
        return None
    if isinstance(parsed, list) and len(parsed) == 2 and all(isinstance(p, str) for p in parsed):
        return parsed[0], parsed[1]
    return None


def requirement_label(requires: str | None) -> str:
    """A job's requirement (``JobRow.requires``) as operators read it: ``model@version`` for
    :func:`model_requirement`'s ``[model, version]``; ``""`` for a job that requires nothing;
    any other value as it is stored."""
    if requires is None:
        return ""
    parsed = parse_requirement(requires)
    return f"{parsed[0]}@{parsed[1]}" if parsed is not None else requires


def decide_start(
    policy: StartPolicy,
    kind: str,
    now: float,
    deadline: float,
    duration_s: float,
    earliest: float = 0.0,
) -> float:
    """The policy's start for a job, kept within [``now``, ``deadline - duration_s``] (or
    ``now`` when the deadline is nearer than the duration). A job held back until
    ``earliest`` (a Retry-After, a retry's backoff) is planned from then: the policy is
    asked as of ``max(now, earliest)``, which is also the earliest start it can get. Raises
    whatever the policy raises: callers choose the fallback (:meth:`JobQueue.plan` starts
    the job now)."""
    now = max(now, earliest)
    start = min(policy(kind, now, deadline, duration_s), deadline - duration_s)
    return max(now, start)


class JobQueue:
    def __init__(
        self, store: Store, clock: Clock | None = None, policy: StartPolicy = run_now
    ) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.policy = policy
        # per kind: told a job's payload and new start when a replan moves it (a batch
        # shows its start in its own object)
        self.on_moved: dict[str, StartHandler] = {}

    def plan(self, kind: str, deadline_s: float, duration_s: float) -> tuple[float, float]:
        """(earliest start, deadline) the policy gives a job queued now.

        Never raises for the policy: a policy that fails (a forecast without data, a bug)
        is logged with its traceback and the job starts now, so the request that queued it
        (a batch, a chat request earning variants) is still answered."""
        now = self.clock.time()
        deadline = now + deadline_s
        try:
            start = decide_start(self.policy, kind, now, deadline, duration_s)
        except Exception:
            log.warning("start policy failed for a %s job: it starts now", kind, exc_info=True)
            start = now
        return start, deadline

    async def submit(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        deadline_s: float = 86400.0,
        duration_s: float = 60.0,
        dedupe: str | None = None,
        job_id: str | None = None,
        planned: tuple[float, float] | None = None,
        requires: str | None = None,
    ) -> str | None:
        """Queue a job; None if a pending or running job has the same dedupe key (one that
        is done, failed or cancelled does not stop it: the work can be asked for again).
        ``requires``: what a process must run to take it before its deadline
        (:func:`model_requirement`; None: any process).

        ``job_id`` and ``planned`` (from :meth:`plan`) let a caller record the job's id and
        start elsewhere *before* the job exists, so a runner can never see it first.
        """
        # the policy may read a forecast (blocking): off the event loop
        if planned is None:
            planned = await asyncio.to_thread(self.plan, kind, deadline_s, duration_s)
        not_before, deadline = planned
        job = JobRow(
            id=job_id or new_job_id(),
            kind=kind,
            payload=json.dumps({**payload, "_duration_s": duration_s}, sort_keys=True),
            state="pending",
            created=self.clock.time(),
            not_before=not_before,
            deadline=deadline,
            dedupe=dedupe,
            requires=requires,
        )
        return job.id if await self.store.put_job(job) else None

    async def replan(self) -> int:
        """Re-decide the start of pending jobs that have not started, with today's forecast,
        never before a job's hold (``hold_until``: a Retry-After, a retry's backoff); returns
        how many moved."""
        now = self.clock.time()
        pending = await self.store.jobs("pending")
        # the policy may read a forecast (blocking): off the event loop
        starts = await asyncio.to_thread(self._starts, pending, now)
        moved = 0
        for job, start in starts:
            if await self.store.reschedule_job(job.id, start):
                moved += 1
                if (told := self.on_moved.get(job.kind)) is not None:
                    await told(json.loads(job.payload), start)
        return moved

    def _starts(self, pending: list[JobRow], now: float) -> list[tuple[JobRow, float]]:
        """(job, new start) of the pending jobs the policy moves by a minute or more, each
        within [its hold, its deadline]. A job the policy fails for keeps its start (one
        warning per replan names how many)."""
        out = []
        failed: list[str] = []
        for job in pending:
            earliest = max(now, job.hold_until)
            if job.not_before <= now or job.deadline <= earliest:
                continue
            duration = float(json.loads(job.payload).get("_duration_s", 60.0))
            duration = min(duration, job.deadline - earliest)
            try:
                start = decide_start(
                    self.policy, job.kind, now, job.deadline, duration, job.hold_until
                )
            except Exception as exc:
                failed.append(f"{job.id}: {type(exc).__name__}: {exc}")
                continue
            if abs(start - job.not_before) >= 60:
                out.append((job, start))
        if failed:
            log.warning(
                "start policy failed for %d pending job(s), left at their starts (first: %s)",
                len(failed),
                failed[0],
            )
        return out


def new_job_id() -> str:
    return "job_" + uuid.uuid4().hex


class HandBack(Exception):
    """Raised by a handler that cannot run its job in this process but another process can
    (a replica still on the old model version during a rolling upgrade, given a rebind for
    the new one). The runner gives the job back, untried: pending again after
    ``retry_after_s`` (held until then, for every runner), the claim's attempt not counted,
    so handing back never fails a job. Once the job's deadline has passed it is finished
    ``done`` instead, its result ``{"skipped": reason}``: no process that can run it took it
    in its window (a rebind is queued again by the next start that finds the document
    stale); but a job without a requirement (queued before jobs had them) is handed back as
    before its deadline while another live runner runs a model at a version ``taken_by``
    (model, version) says can run it (what each runner noted, ``Store.live_requirements``),
    as a late job with a requirement stays a live runner's that meets it. ``taken_by``
    None: no other process is known to run it."""

    def __init__(
        self,
        reason: str,
        retry_after_s: float,
        taken_by: Callable[[str, str], bool] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.taken_by = taken_by
