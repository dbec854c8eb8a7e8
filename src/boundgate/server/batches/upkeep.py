"""The batch job's hooks: what a batch object says when its job's start moves, is held back or
fails for good.

The job queue owns a batch's schedule (``scheduler/jobs.py``); the batch object only reports
it. Each hook brings the object in line with the job as it is now, through the same
compare-and-set as every other write (``update_batch``):

- a re-plan moved the job (``JobQueue.on_moved``): ``boundgate.scheduled_start`` follows;
- a run failed, or its owner's limits refused it, and the job waits for its retry
  (``JobRunner.on_held``): the batch is ``scheduled`` again, at the retry's time;
- the job failed for good (``JobRunner.on_failure``): the batch ends ``failed``.
"""

from __future__ import annotations

from typing import Any

from ...gateway import Gateway
from .serving import TERMINAL, fail_batch, iso_utc, update_batch

# what a batch whose job failed for good tells its owner (the runner logged the error)
JOB_FAILED = "the batch's job failed after its retries; the server log has the details"


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
