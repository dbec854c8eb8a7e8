"""Background jobs among replicas on one store, on SQLite and PostgreSQL: a job that requires
a model (at a version) is run by a replica that serves it, whichever replica polls first; one
that no live replica can run ends, visibly, at its deadline.

Each replica is a gateway with its own job runner, as the server makes it
(``JobRunner(accepts=model_requirements(gateway))``), on one shared store and one
``FakeClock``; which replica polls first is the test's choice, so the order is not a race."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pytest

from boundgate.backends.base import GenerationRequest, Message, model_versions
from boundgate.clock import FakeClock
from boundgate.gateway import Gateway
from boundgate.scheduler.handlers import job_handlers, model_requirements
from boundgate.scheduler.jobs import JobQueue, model_requirement
from boundgate.scheduler.runner import JobRunner
from boundgate.store import JobRow, Store
from boundgate.tenants import Tenant
from helpers import OpenStore, arun, job_replica, job_runner, store_opener

HAIKU = "Write a haiku about autumn."
Q = "What is the boiling point of water at sea level?"
ACME = Tenant("acme")
CLOCK_START = 1_900_000_000.0  # after any real time the stores see in these tests
LEASE_S = 300.0


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens a store on the test's fresh database (each call: another process's);
    ``open_store(Mixin)``: of a subclass of the implementation with ``Mixin`` first (a store
    that tells the test what it wrote). Closes them all afterwards."""
    yield from store_opener(request, tmp_path)


def replica(
    tmp: Path, store: Store, clock: FakeClock, model: str = "fake", version: str = "v1"
) -> Gateway:
    return job_replica(tmp, store, clock, model, version)


def runner(gw: Gateway, clock: FakeClock) -> JobRunner:
    """``gw``'s job runner, as the server makes it (``helpers.job_runner``)."""
    runner_: JobRunner = job_runner(gw, clock, LEASE_S)
    return runner_


async def started(gw: Gateway) -> Gateway:
    assert gw.reuse is not None
    await gw.reuse.load()
    return gw


async def earn_variants(gw: Gateway) -> None:
    """Two askers send one creative prompt to ``gw``: a round of variants is queued."""
    for user in ("u1", "u2"):
        req = GenerationRequest(
            model="fake",
            messages=[Message("user", HAIKU)],
            temperature=1.0,
            max_tokens=100,
            user=user,
        )
        await gw.complete(gw.context(ACME, "/v1/chat/completions"), req)
    await gw.drain()


# --- variants: run by a replica that serves the model ------------------------------------------


def test_a_round_of_variants_waits_for_a_replica_that_serves_its_model(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """Replicas serving different models share a store. A round of variants for ``fake``
    was claimed by whichever replica polled first; one without ``fake`` got a 404
    ``model_not_found`` from its own pipeline, a refusal for good, and the round ended
    ``done`` as refused: no variant was ever made. The job requires its model at its
    version now, so that replica passes it over, writing nothing, and the one serving
    ``fake`` makes the round."""

    async def main() -> None:
        clock = FakeClock(start=CLOCK_START)
        serving = await started(replica(tmp_path, open_store(), clock))
        other = await started(replica(tmp_path, open_store(), clock, model="other"))
        await earn_variants(serving)
        (queued,) = [j for j in await serving.store.jobs() if j.kind == "variants"]
        assert queued.requires == model_requirement("fake", "v1")

        assert not await runner(other, clock).run_once()
        assert await other.store.jobs("pending") == [queued]  # never claimed: not a write
        assert await runner(serving, clock).run_once()
        (job,) = [j for j in await serving.store.jobs() if j.kind == "variants"]
        assert (job.state, job.attempts) == ("done", 1), job
        result = json.loads(job.result or "{}")
        assert result["variants"] == 3 and "refused" not in result, result

    arun(main())


def test_a_round_of_variants_no_live_replica_serves_is_skipped_at_its_deadline(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """The replica that queued the round is gone; the one left does not serve its model.
    Past the round's deadline (``creativity.window_s``) that replica finishes it ``done``,
    skipped, saying why, its handler not run: it does not wait for a model that may never
    come back."""

    async def main() -> None:
        clock = FakeClock(start=CLOCK_START)
        serving = await started(replica(tmp_path, open_store(), clock))
        await earn_variants(serving)  # and its process ends (it never ran a runner)
        other = await started(replica(tmp_path, open_store(), clock, model="other"))
        left = runner(other, clock)
        (queued,) = [j for j in await other.store.jobs() if j.kind == "variants"]
        clock.advance(queued.deadline - clock.time() - 1.0)
        assert not await left.run_once()
        clock.advance(1.0)
        assert await left.run_once()
        (job,) = [j for j in await other.store.jobs() if j.kind == "variants"]
        assert job.state == "done"
        assert json.loads(job.result or "{}") == {
            "skipped": f"no process running {queued.requires} took it before its deadline"
        }
        assert await other.store.variant_count(json.loads(queued.payload)["exact"]) == 0

    arun(main())


def test_a_round_queued_without_a_requirement_is_handed_back_by_a_replica_without_its_model(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """A round of variants queued before rounds required their model is anyone's to claim.
    A replica without the model hands it back untried (pending again a minute later, its
    attempt not counted) instead of ending it refused with its own 404, and the replica that
    serves the model makes it."""

    async def main() -> None:
        clock = FakeClock(start=CLOCK_START)
        serving = await started(replica(tmp_path, open_store(), clock))
        other = await started(replica(tmp_path, open_store(), clock, model="other"))
        await earn_variants(serving)
        (queued,) = [j for j in await serving.store.jobs() if j.kind == "variants"]
        assert await serving.store.cancel_job(queued.id)
        payload = {k: v for k, v in json.loads(queued.payload).items() if k != "_duration_s"}
        await JobQueue(serving.store, clock).submit("variants", payload)  # no requirement

        assert await runner(other, clock).run_once()
        (job,) = await other.store.jobs("pending")
        assert (job.attempts, job.requires) == (0, None)
        assert "model fake is not served here" in json.loads(job.result or "{}")["handed_back"]
        assert not await runner(serving, clock).run_once()  # held a minute, for every runner
        clock.advance(60.0)
        assert await runner(serving, clock).run_once()
        (job,) = [j for j in await serving.store.jobs() if j.id == job.id]
        assert job.state == "done" and json.loads(job.result or "{}")["variants"] == 3

    arun(main())


async def _requiring_nothing(gw: Gateway, job: JobRow) -> JobRow:
    """``job`` queued again as jobs were before they had requirements: the same payload,
    start and deadline, ``requires`` NULL (and a rebind without the version it binds at)."""
    assert await gw.store.cancel_job(job.id)
    drop = {"_duration_s", "version"}
    payload = {k: v for k, v in json.loads(job.payload).items() if k not in drop}
    queue = JobQueue(gw.store, FakeClock(start=job.created))
    job_id = await queue.submit(job.kind, payload, planned=(job.not_before, job.deadline))
    (again,) = [j for j in await gw.store.jobs() if j.id == job_id]
    assert again.requires is None
    return again


def test_a_late_round_without_a_requirement_waits_for_the_live_replica_that_serves_its_model(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """A round of variants queued before rounds had requirements is any replica's to claim.
    Past its deadline the replica without its model polled first: it handed the round back
    and, the deadline passed, finished it ``done`` as skipped, though the replica serving
    the model was alive and would have made it (a late job waited for a live runner that
    can run it only when it had a requirement). It hands it back now while a live runner
    serves the model, and that replica makes the round, late."""

    async def main() -> None:
        clock = FakeClock(start=CLOCK_START)
        serving = await started(replica(tmp_path, open_store(), clock))
        other = await started(replica(tmp_path, open_store(), clock, model="other"))
        await earn_variants(serving)
        (queued,) = [j for j in await serving.store.jobs() if j.kind == "variants"]
        start = clock.time() + 100.0
        queued = dataclasses.replace(queued, not_before=start, deadline=start + 60.0)
        job = await _requiring_nothing(serving, queued)
        maker, left = runner(serving, clock), runner(other, clock)
        assert not await maker.run_once()  # alive (noted for a lease), nothing due yet
        clock.advance(job.deadline + 30.0 - clock.time())  # late; the other polls first
        assert await left.run_once()
        (job,) = [j for j in await other.store.jobs() if j.id == job.id]
        assert (job.state, job.attempts) == ("pending", 0), job
        assert "model fake is not served here" in json.loads(job.result or "{}")["handed_back"]
        clock.advance(60.0)  # held a minute, for every runner
        assert await maker.run_once()
        (job,) = [j for j in await serving.store.jobs() if j.id == job.id]
        assert job.state == "done" and json.loads(job.result or "{}")["variants"] == 3, job

    arun(main())


def test_a_late_round_without_a_requirement_no_live_replica_serves_is_skipped(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """The same round, its serving replica gone (it never ran a runner): past the deadline
    the replica left finishes it ``done``, skipped, at its first claim, rather than handing
    it back to no one, again and again."""

    async def main() -> None:
        clock = FakeClock(start=CLOCK_START)
        serving = await started(replica(tmp_path, open_store(), clock))
        other = await started(replica(tmp_path, open_store(), clock, model="other"))
        await earn_variants(serving)
        (queued,) = [j for j in await serving.store.jobs() if j.kind == "variants"]
        job = await _requiring_nothing(serving, queued)
        clock.advance(job.deadline + 30.0 - clock.time())
        assert await runner(other, clock).run_once()
        (job,) = [j for j in await other.store.jobs() if j.id == job.id]
        assert job.state == "done", job
        assert "model fake is not served here" in json.loads(job.result or "{}")["skipped"]

    arun(main())


# --- rebind: skipped late only when no replica at its version is alive -------------------------


def _last_minute(kind: str, now: float, deadline: float, duration_s: float) -> float:
    """A start policy whose cleanest minute is the last of the window."""
    return deadline


async def _stale_rebind_at_the_last_minute(
    tmp_path: Path, open_store: OpenStore, clock: FakeClock
) -> tuple[Gateway, Gateway, str]:
    """A rolling upgrade: a document bound on v1, found stale on v2, its rebind to v2
    planned for the last minute of its window (the grid's cleanest). The v1 and v2 replicas
    and the document."""
    v1 = await started(replica(tmp_path, open_store(), clock))
    req = GenerationRequest(
        model="fake", messages=[Message("user", Q)], temperature=0, max_tokens=60, user="u"
    )
    await v1.complete(v1.context(ACME, "/v1/chat/completions"), req)
    await v1.drain()
    (doc,) = await v1.store.documents()
    v2 = await started(replica(tmp_path, open_store(), clock, version="v2"))
    assert v2.reuse is not None
    assert v2.jobs is not None and v2.reuse.documents.jobs is v2.jobs
    v2.jobs.policy = _last_minute  # the queue's start policy seam
    assert await v2.reuse.documents.mark_stale(model_versions(v2.backends)) == [doc.id]
    (job,) = await v2.store.jobs()
    assert job.requires == model_requirement("fake", "v2")
    assert job.not_before == job.deadline - 60.0  # its planned start
    return v1, v2, doc.id


def test_a_rebind_queued_without_a_requirement_is_handed_back_by_a_replica_without_its_model(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """A rebind queued before jobs named their version requires nothing: any replica claims
    it. One without the document's model failed it for good, its own pipeline's 404
    ``model_not_found`` taken for a refusal; it hands it back now, untried, and the replica
    at the new version rebinds it."""

    async def main() -> None:
        clock = FakeClock(start=CLOCK_START)
        v1, v2, doc = await _stale_rebind_at_the_last_minute(tmp_path, open_store, clock)
        (queued,) = await v1.store.jobs()
        assert await v1.store.cancel_job(queued.id)
        await JobQueue(v1.store, clock).submit("rebind", {"document": doc})  # no version
        other = await started(replica(tmp_path, open_store(), clock, model="other"))
        assert await runner(other, clock).run_once()
        (job,) = await other.store.jobs("pending")
        assert (job.attempts, job.requires) == (0, None)
        assert "model fake is not served here" in json.loads(job.result or "{}")["handed_back"]
        clock.advance(60.0)
        assert await runner(v2, clock).run_once()
        (job,) = [j for j in await v2.store.jobs() if j.id == job.id]
        assert job.state == "done" and json.loads(job.result or "{}")["supersedes"] == doc

    arun(main())


def test_a_late_rebind_waits_for_the_live_replica_at_its_version(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """Both replicas poll. The rebind is due a minute before its deadline; the v2 replica,
    busy with another job then, polls next just after the deadline, the v1 replica first.
    The v1 replica took it as late and finished it ``done``, skipped, though the v2 replica,
    alive, would have run it: the document stayed stale until a restart queued it again.
    Now a replica that cannot run a job leaves it alone past its deadline while a live
    runner meets its requirement, and the v2 replica rebinds it (late, but the document is
    fresh again). The v1 replica never rebinds at v1."""

    async def main() -> None:
        clock = FakeClock(start=CLOCK_START)
        v1, v2, doc = await _stale_rebind_at_the_last_minute(tmp_path, open_store, clock)
        old, new = runner(v1, clock), runner(v2, clock)
        (job,) = await v1.store.jobs()
        clock.advance(job.deadline - clock.time() - 90.0)
        assert not await new.run_once()  # alive, nothing due yet
        assert not await old.run_once()
        clock.advance(120.0)  # past the deadline; the v1 replica polls first
        assert not await old.run_once()
        (job,) = await v1.store.jobs()
        assert (job.state, job.attempts, job.result) == ("pending", 0, None)
        assert await new.run_once()
        (job,) = await v2.store.jobs()
        assert job.state == "done", job
        result = json.loads(job.result or "{}")
        assert result["supersedes"] == doc, result
        row = await v2.store.get_document(result["document"])
        assert row is not None and row.model_version == "v2"

    arun(main())


def test_a_late_rebind_is_skipped_once_no_replica_at_its_version_is_alive(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """The v2 replica that queued the rebind stopped (its runner stopped: its registration
    is gone at once) or died (its registration runs out a lease after its last poll): past
    the deadline the v1 replica finishes the job ``done``, skipped, its handler not run."""

    async def main() -> None:
        clock = FakeClock(start=CLOCK_START)
        v1, v2, doc = await _stale_rebind_at_the_last_minute(tmp_path, open_store, clock)
        old, new = runner(v1, clock), runner(v2, clock)
        (job,) = await v1.store.jobs()
        clock.advance(job.deadline - clock.time() - 90.0)
        assert not await new.run_once()
        clock.advance(120.0)
        assert not await old.run_once()  # the v2 replica is alive
        clock.advance(LEASE_S)  # and then its process died: nothing heard for a lease
        assert await old.run_once()
        (job,) = await v1.store.jobs()
        assert job.state == "done"
        assert json.loads(job.result or "{}") == {
            "skipped": f"no process running {job.requires} took it before its deadline"
        }
        assert [(d.id, d.state) for d in await v1.store.documents()] == [(doc, "stale")]

    arun(main())


def test_a_late_rebind_without_a_requirement_waits_for_the_live_replica_at_a_new_version(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """A rebind queued before jobs named their version requires nothing. Past its deadline
    the v1 replica (the document's own version) polled first: it handed the rebind back and,
    the deadline passed, finished it ``done`` as skipped, though the v2 replica was alive to
    rebind it; the document stayed stale until a restart queued it again. It hands it back
    now, and the v2 replica rebinds it, late."""

    async def main() -> None:
        clock = FakeClock(start=CLOCK_START)
        v1, v2, doc = await _stale_rebind_at_the_last_minute(tmp_path, open_store, clock)
        (queued,) = await v1.store.jobs()
        job = await _requiring_nothing(v1, queued)
        old, new = runner(v1, clock), runner(v2, clock)
        clock.advance(job.deadline - clock.time() - 90.0)
        assert not await new.run_once()  # alive, nothing due yet
        clock.advance(120.0)  # past the deadline; the v1 replica polls first
        assert await old.run_once()
        (job,) = [j for j in await v1.store.jobs() if j.id == job.id]
        assert (job.state, job.attempts) == ("pending", 0), job
        assert "is at version v1 here" in json.loads(job.result or "{}")["handed_back"]
        clock.advance(60.0)
        assert await new.run_once()
        (job,) = [j for j in await v2.store.jobs() if j.id == job.id]
        assert job.state == "done", job
        result = json.loads(job.result or "{}")
        assert result["supersedes"] == doc, result
        row = await v2.store.get_document(result["document"])
        assert row is not None and row.model_version == "v2"

    arun(main())


def test_a_stopped_runner_is_no_longer_waited_for(tmp_path: Path, open_store: OpenStore) -> None:
    """A runner that stops (the process shuts down) takes its registration with it: a late job
    only it could run is skipped at the next poll of another, not a lease later."""

    async def main() -> None:
        clock = FakeClock(start=CLOCK_START)
        v1, v2, _doc = await _stale_rebind_at_the_last_minute(tmp_path, open_store, clock)
        old, new = runner(v1, clock), runner(v2, clock)
        (job,) = await v1.store.jobs()
        clock.advance(job.deadline - clock.time() - 90.0)
        assert not await new.run_once()
        await new.stop()
        clock.advance(120.0)
        assert await old.run_once()
        (job,) = await v1.store.jobs()
        assert job.state == "done" and "skipped" in json.loads(job.result or "{}")

    arun(main())


def test_a_busy_replica_is_still_waited_for(tmp_path: Path, open_store: OpenStore) -> None:
    """The v2 replica is running a long job (a batch) when the rebind becomes late: its
    runner renews its note in the store with the job's lease, so the v1 replica, polling
    meanwhile, still leaves the rebind to it, and the v2 replica rebinds it once the batch is
    done."""
    noted: list[float] = []
    renewed = asyncio.Event()
    after: list[float] = []

    class Watched:
        async def note_runner(
            self, owner: str, accepts: Collection[str], now: float, until: float
        ) -> None:
            await super().note_runner(owner, accepts, now, until)  # type: ignore[misc]
            noted.append(now)
            if after and now >= after[0]:
                renewed.set()

    async def main() -> None:
        clock = FakeClock(start=CLOCK_START)
        v1, v2, doc = await _stale_rebind_at_the_last_minute(tmp_path, open_store, clock)
        started_batch, done = asyncio.Event(), asyncio.Event()

        async def batch(payload: dict[str, Any]) -> dict[str, Any]:
            started_batch.set()
            await done.wait()
            return {"lines": 1}

        watched = open_store(Watched)
        busy = JobRunner(
            watched,
            {**job_handlers(v2), "batch": batch},
            clock=clock,
            lease_s=0.3,  # renewed every 0.1 s (real time) while the batch runs
            poll_s=0.05,
            replan_s=3600.0,
            accepts=model_requirements(v2),
        )
        await JobQueue(watched, clock).submit("batch", {}, deadline_s=86400.0)
        running = asyncio.ensure_future(busy.run_once())
        await asyncio.wait_for(started_batch.wait(), 60.0)
        (rebind,) = [j for j in await v1.store.jobs() if j.kind == "rebind"]
        clock.advance(rebind.deadline + 30.0 - clock.time())  # its note of the start ran out
        after.append(clock.time())
        await asyncio.wait_for(renewed.wait(), 60.0)  # renewed with the batch's lease
        assert not await runner(v1, clock).run_once()
        done.set()
        assert await running
        assert await busy.run_once()  # the rebind, late
        (rebind,) = [j for j in await v2.store.jobs() if j.kind == "rebind"]
        assert rebind.state == "done" and json.loads(rebind.result or "{}")["supersedes"] == doc
        await busy.stop()

    arun(main())
