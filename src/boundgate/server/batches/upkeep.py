"""A batch object kept true to its job: the job's hooks, and batches no job will run.

The job queue owns a batch's schedule (``scheduler/jobs.py``); the batch object only reports
it. Each hook brings the object in line with the job as it is now, through the same
compare-and-set as every other write (``update_batch``):

- a re-plan moved the job (``JobQueue.on_moved``): ``boundgate.scheduled_start`` follows;
- a run failed, or its owner's limits refused it, and the job waits for its retry
  (``JobRunner.on_held``): the batch is ``scheduled`` again, at the retry's time;
- the job failed for good (``JobRunner.on_failure``): the batch ends ``failed``.

Nothing accepted is lost, also when a process dies between two writes. A batch is stored
before its job is queued (the job's runner must find the batch), so a process that dies in
between leaves a batch ``in_progress`` that no job will run; one that dies after a batch's job
failed for good or was cancelled, before the failure hook or the cancel ended the batch,
leaves one whose job will not run again. :class:`BatchRecovery` finds them
(``FileStore.stranded_batches``), run by the job runner when it starts and every
``scheduler.replan_s`` after (``JobRunner.recover``), in every process on the store:

- a batch without a job gets it, under the id its object names (planned for what is left
  of its window; one whose window is over runs at once and expires, as any late batch):
  processes recovering at once (workers, replicas) queue it once, a job id being unique, and
  a creator that was only slow finds its job queued already;
- a batch whose job was cancelled, or which was ``cancelling``, ends ``cancelled`` (its
  owner asked); one whose job failed, or ended without ending it, ends ``failed`` with the
  reason. Either only once a sweep before found it so too: the hook or the cancel ends such a
  batch moments after its job ends, with its own reason. (Ending it beside them is safe all
  the same: a batch's files are stored with the compare-and-set that ends it,
  ``FileStore.replace_batch``, so of writers ending it at once one ends it and writes files.)
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from ...gateway import Gateway
from .objects import (
    TERMINAL,
    end_without_a_run,
    fail_batch,
    iso_utc,
    line_estimate_s,
    run_estimate_s,
    update_batch,
)

log = logging.getLogger("boundgate.batches")

# what a batch whose job failed for good tells its owner (the runner logged the error)
JOB_FAILED = "the batch's job failed after its retries; the server log has the details"
# what one whose job finished without ending it does (today's run always ends its batch: one
# an older version left so, or a hand in the database; the recovery logs it)
JOB_ENDED = "the batch's job ended without finishing it; the server log has the details"


async def batch_moved(gw: Gateway, payload: dict[str, Any], start: float) -> None:
    """A replan moved a batch's job to ``start``: its object shows the new
    ``boundgate.scheduled_start`` (a batch that has started or ended keeps its own)."""

    def move(batch: dict[str, Any]) -> bool | None:
        if batch["status"] in TERMINAL or batch["boundgate"].get("state") != "scheduled":
            return False
        batch["boundgate"]["scheduled_start"] = iso_utc(start)
        return None

    await update_batch(gw, str(payload.get("batch")), move)


async def batch_held(gw: Gateway, payload: dict[str, Any], until: float) -> None:
    """A run of a batch's job failed (or its owner's limits refused it) and the job is held
    until ``until``: its object shows ``scheduled`` again, with ``until`` as its
    ``boundgate.scheduled_start`` (``started_at`` stays the first run's start), so
    ``GET /v1/batches/{id}`` says when it runs next instead of ``running`` since its first
    start; a replan that then moves it shows too (:func:`batch_moved`)."""

    def hold(batch: dict[str, Any]) -> bool | None:
        if batch["status"] in TERMINAL:
            return False
        batch["boundgate"].update(state="scheduled", scheduled_start=iso_utc(until))
        return None

    await update_batch(gw, str(payload.get("batch")), hold)


async def batch_failed(gw: Gateway, payload: dict[str, Any], error: str) -> None:
    """A batch's job failed for good: the batch ends ``failed`` (the client is told no
    internals: ``error`` is in the server log)."""
    await fail_batch(gw, str(payload.get("batch")), JOB_FAILED)


class BatchRecovery:
    """Batches no job will run, found and queued again or ended (the module's docstring);
    called, it sweeps once and returns how many batches it queued or ended. ``request_s``:
    the estimated run time of a line (``scheduler.batch_request_s``), to plan a job."""

    def __init__(self, gw: Gateway, request_s: float) -> None:
        self.gw = gw
        self.request_s = request_s
        # (batch id, job id, job state) of the batches the last sweep found with a job ended
        self._found: set[tuple[str, str, str]] = set()

    async def __call__(self) -> int:
        found: set[tuple[str, str, str]] = set()
        acted = 0
        for body, job_state in await self.gw.store.stranded_batches():
            batch: dict[str, Any] = {}
            try:
                batch = json.loads(body)
                if job_state is None:
                    acted += await self._queue(batch)
                    continue
                seen = (str(batch["id"]), str(batch["boundgate"]["job_id"]), job_state)
                found.add(seen)
                if seen in self._found:  # so for a whole sweep: no hook is ending it
                    acted += await self._end(batch, job_state)
            except Exception:  # one batch's fault (its object?) must not stop the others
                log.exception("batch %s: recovering it failed", batch.get("id"))
        self._found = found
        # inputs deleted while their batches ran, once those ended by another way
        await self.gw.store.purge_deleted_files()
        return acted

    async def _queue(self, batch: dict[str, Any]) -> int:
        """Queue the job a batch names, which was never queued; 1 if this call queued it."""
        jobs = self.gw.jobs
        if jobs is None:  # pragma: no cover - assembly always builds a queue
            return 0
        batch_id, job_id = str(batch["id"]), str(batch["boundgate"]["job_id"])
        window_s = max(0.0, float(batch["expires_at"]) - self.gw.clock.time())
        lines = int(batch["request_counts"]["total"])
        duration_s = run_estimate_s(lines, window_s, line_estimate_s(self.gw, self.request_s))
        planned = await asyncio.to_thread(jobs.plan, "batch", window_s, duration_s)
        queued = await jobs.submit(
            "batch",
            {"batch": batch_id},
            deadline_s=window_s,
            duration_s=duration_s,
            job_id=job_id,
            planned=planned,
        )
        if queued is None:  # queued meanwhile (its creator, another process)
            return 0
        log.warning(
            "batch %s had no job (its process stopped before queuing it): queued %s for %s",
            batch_id, job_id, iso_utc(planned[0]),
        )  # fmt: skip
        # its start as planned now (unless a runner has started it meanwhile)
        await batch_moved(self.gw, {"batch": batch_id}, planned[0])
        return 1

    async def _end(self, batch: dict[str, Any], job_state: str) -> int:
        """End a batch whose job ended (``job_state``) without ending it; 1."""
        batch_id = str(batch["id"])
        log.warning("batch %s: its job is %s but it was not ended; ending it", batch_id, job_state)
        reason = JOB_FAILED if job_state == "failed" else JOB_ENDED
        now = int(self.gw.clock.time())
        await end_without_a_run(
            self.gw, batch_id, now, cancelled=job_state == "cancelled", reason=reason
        )
        return 1
