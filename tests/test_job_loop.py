"""The job runner's loop outlives store errors: a PostgreSQL connection blip or a SQLite
"database is locked" in a claim is logged and the loop polls again after a backoff, where it
used to end the loop task silently (the replica ran no more background jobs until it
restarted). Stopping the runner still stops the loop, also while it backs off.

The runner runs its real loop (``JobRunner.start``) on a real SQLite store whose claims fail
as told (a subclass of the store: the test's, not a patch of boundgate's code)."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from boundgate.assembly import build_app
from boundgate.clock import FakeClock
from boundgate.scheduler.jobs import HandBack, JobQueue, run_now
from boundgate.scheduler.runner import STORE_RETRY_S, JobRunner
from boundgate.store import JobRow, SQLiteStore, StoreUnavailableError
from helpers import Live, fake_settings, wait_until

START = 1_900_000_000.0
WAIT_S = 60.0  # a guard against a hang, never a timing the test depends on


class FlakyClaims(SQLiteStore):
    """A SQLite store whose first ``failures`` claims raise what a locked database raises
    (``BaseException`` subclasses too, with ``error``), counting every claim."""

    def __init__(self, path: Path, failures: int, error: BaseException | None = None) -> None:
        super().__init__(path)
        self.failures = failures
        self.error = error or sqlite3.OperationalError("database is locked")
        self.claims = 0
        self.failed = asyncio.Event()
        self.finished = asyncio.Event()

    async def claim_job(self, *args: Any, **kwargs: Any) -> JobRow | None:
        self.claims += 1
        if self.claims <= self.failures:
            self.failed.set()
            raise self.error
        return await super().claim_job(*args, **kwargs)

    async def finish_job(self, *args: Any, **kwargs: Any) -> bool:
        finished = await super().finish_job(*args, **kwargs)
        self.finished.set()
        return finished


def _runner(store: SQLiteStore, handlers: dict[str, Any], poll_s: float = 0.01) -> JobRunner:
    return JobRunner(store, handlers, clock=FakeClock(start=START), poll_s=poll_s, replan_s=3600.0)


def test_a_job_runs_after_claims_failed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ran: list[dict[str, Any]] = []

    async def scenario() -> None:
        store = FlakyClaims(tmp_path / "j.db", failures=3)
        store.open()
        try:

            async def handler(payload: dict[str, Any]) -> dict[str, Any]:
                ran.append(payload)
                return {}

            await JobQueue(store, FakeClock(start=START), run_now).submit("rebind", {"doc": "d1"})
            runner = _runner(store, {"rebind": handler})
            runner.start()
            loop = runner._task
            assert loop is not None
            # the job is finished, or the loop ends (it did, at the first failed claim)
            finished = asyncio.ensure_future(store.finished.wait())
            try:
                await asyncio.wait({finished, loop}, timeout=WAIT_S, return_when="FIRST_COMPLETED")
                assert not loop.done(), "the runner's loop ended"
                assert finished.done()
            finally:
                finished.cancel()
                await runner.stop()
            assert store.claims >= 4
            assert [j.state for j in await store.jobs()] == ["done"]
        finally:
            store.close()

    with caplog.at_level(logging.ERROR, logger="boundgate.jobs"):
        asyncio.run(scenario())
    assert ran == [{"doc": "d1"}]
    failures = [
        r
        for r in caplog.records
        if r.name == "boundgate.jobs" and r.exc_info and isinstance(r.exc_info[1], sqlite3.Error)
    ]
    assert len(failures) == 3  # each logged with its traceback


def test_the_loop_backs_off_while_the_store_fails_and_stops_when_told(tmp_path: Path) -> None:
    """A store that keeps failing is asked again after a growing wait, not in a busy loop (a
    busy loop claims thousands of times in the time given here; a loaded machine only claims
    fewer); stopping the runner while it waits ends the loop at once."""

    async def scenario() -> int:
        store = FlakyClaims(tmp_path / "j.db", failures=10**9)
        store.open()
        try:
            runner = _runner(store, {}, poll_s=0.05)
            runner.start()
            await asyncio.wait_for(store.failed.wait(), WAIT_S)
            await asyncio.sleep(0.3)  # waits of at least 0.05, 0.1, 0.2 s: at most 4 claims
            task = runner._task
            await asyncio.wait_for(runner.stop(), WAIT_S)
            assert task is not None and task.cancelled()
            return store.claims
        finally:
            store.close()

    assert 1 <= asyncio.run(scenario()) <= 10


class _Fatal(BaseException):
    """Not an ``Exception``: the loop lets it end the task (as it lets cancellation)."""


def test_a_loop_that_ends_by_an_error_says_so_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The loop task ending other than by :meth:`JobRunner.stop` is logged as it ends (it was
    silent: ``stop`` gathered the task's error and dropped it)."""

    async def scenario() -> None:
        store = FlakyClaims(tmp_path / "j.db", failures=1, error=_Fatal("fatal"))
        store.open()
        try:
            runner = _runner(store, {})
            runner.start()
            task = runner._task
            assert task is not None
            await asyncio.wait_for(asyncio.wait({task}), WAIT_S)
            await runner.stop()
        finally:
            store.close()

    with caplog.at_level(logging.ERROR, logger="boundgate.jobs"):
        asyncio.run(scenario())
    [record] = [r for r in caplog.records if r.name == "boundgate.jobs"]
    assert "no more background jobs" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], _Fatal)


class FlakyRenewals(SQLiteStore):
    """A SQLite store whose first lease renewal raises what a locked database raises."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.renewals = 0
        self.failed = asyncio.Event()

    async def renew_job(self, *args: Any, **kwargs: Any) -> bool:
        self.renewals += 1
        if self.renewals == 1:
            self.failed.set()
            raise sqlite3.OperationalError("database is locked")
        return await super().renew_job(*args, **kwargs)


def test_a_failed_lease_renewal_does_not_fail_the_job(tmp_path: Path) -> None:
    """A store error while renewing the lease of a running job was counted as the job's own
    failure: its work cancelled, the attempt spent. The work goes on; the next renewal works."""
    ran: list[dict[str, Any]] = []

    async def scenario() -> JobRow:
        store = FlakyRenewals(tmp_path / "j.db")
        store.open()
        try:

            async def handler(payload: dict[str, Any]) -> dict[str, Any]:
                await asyncio.wait_for(store.failed.wait(), WAIT_S)  # outlives a renewal
                ran.append(payload)
                return {"ok": True}

            clock = FakeClock(start=START)
            await JobQueue(store, clock, run_now).submit("rebind", {"doc": "d1"})
            runner = JobRunner(
                store, {"rebind": handler}, clock=clock, lease_s=0.03, poll_s=0.01, replan_s=3600.0
            )
            assert await runner.run_once()
            (job,) = await store.jobs()
            return job
        finally:
            store.close()

    job = asyncio.run(scenario())
    assert ran == [{"doc": "d1"}]
    assert (job.state, job.attempts) == ("done", 1), job


def test_a_poll_retried_shows_on_the_apps_metrics(tmp_path: Path) -> None:
    """The retry of a poll the store failed was counted by stamina in prometheus_client's
    default registry, which the app's /metrics does not serve: a store failing the job
    runner's polls was invisible there. It counts in the app's ``boundgate_retries_total``
    now, as a ``job_poll`` (the claim fails once; the hook counts it before the backoff's
    wait, so the test waits for the count, not for a time)."""
    store = FlakyClaims(tmp_path / "j.db", failures=1)
    settings = fake_settings(tmp_path)
    app = build_app(settings, store=store)

    def poll_retries(live: Live) -> float:
        for family in text_string_to_metric_families(live.http.get("/metrics").text):
            for sample in family.samples:
                if sample.name == "boundgate_retries_total" and sample.labels == {
                    "operation": "job_poll",
                    "model": "",
                }:
                    return sample.value
        raise AssertionError("no boundgate_retries_total{operation='job_poll'} on /metrics")

    with Live.in_process(app) as live:
        assert wait_until(lambda: poll_retries(live) == 1.0)
        assert store.claims >= 1


def test_a_stopped_runner_hands_its_running_job_back(tmp_path: Path) -> None:
    """A trial stopped the server (SIGTERM) in the middle of a batch: the job stayed leased
    to the stopped runner, so the restarted process left it for the lease's 5 minutes and a
    cancel of the batch waited as long. Stopping the runner now gives the job back, pending
    and due at once, the claim's attempt not counted; the next runner runs it."""
    started = asyncio.Event()
    runs: list[str] = []

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "j.db")
        store.open()
        try:

            async def blocking(payload: dict[str, Any]) -> dict[str, Any]:
                runs.append("first")
                started.set()
                await asyncio.Event().wait()  # until cancelled
                return {}

            await JobQueue(store, FakeClock(start=START), run_now).submit("batch", {"b": 1})
            first = _runner(store, {"batch": blocking})
            first.start()
            await asyncio.wait_for(started.wait(), WAIT_S)
            await asyncio.wait_for(first.stop(), WAIT_S)
            [job] = await store.jobs()
            assert (job.state, job.lease_owner, job.attempts) == ("pending", None, 0)

            async def finishing(payload: dict[str, Any]) -> dict[str, Any]:
                runs.append("second")
                return {"ok": True}

            second = _runner(store, {"batch": finishing})  # the same clock time: no wait
            assert await second.run_once()
            [job] = await store.jobs()
            assert job.state == "done"
        finally:
            store.close()

    asyncio.run(scenario())
    assert runs == ["first", "second"]


def test_a_job_cut_short_by_a_store_outage_is_handed_back_not_failed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A trial: outages of a few seconds during a batch spent the job's attempts (three
    outages failed it for good), each with a traceback. The outage is no fault of the job's:
    it is handed back, pending, the attempt not counted, due again in ``STORE_RETRY_S``, with
    one warning line."""

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "j.db")
        store.open()
        try:

            async def cut_short(payload: dict[str, Any]) -> dict[str, Any]:
                raise StoreUnavailableError("connection lost")

            await JobQueue(store, FakeClock(start=START), run_now).submit("batch", {"b": 1})
            runner = _runner(store, {"batch": cut_short})
            for _ in range(5):  # more than max_attempts
                assert await runner.run_once()
                [job] = await store.jobs()
                assert (job.state, job.attempts) == ("pending", 0), job
                assert job.not_before == pytest.approx(runner.clock.time() + STORE_RETRY_S)
                runner.clock.advance(STORE_RETRY_S)
        finally:
            store.close()

    with caplog.at_level(logging.WARNING, logger="boundgate.jobs"):
        asyncio.run(scenario())
    handed = [r for r in caplog.records if "handed back" in r.getMessage()]
    assert len(handed) == 5 and all(r.exc_info is None for r in handed)


def test_an_outage_of_the_store_is_logged_once_and_its_end_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A trial's outage: each failed poll logged a traceback, and, once that was mended, an
    "answers again" after every failed attempt (stamina swallows the attempt's error, so code
    after its block ran). One warning for the outage, one line for its end."""

    async def scenario() -> None:
        store = FlakyClaims(tmp_path / "j.db", failures=4, error=StoreUnavailableError("down"))
        store.open()
        try:

            async def handler(payload: dict[str, Any]) -> dict[str, Any]:
                return {}

            await JobQueue(store, FakeClock(start=START), run_now).submit("rebind", {"doc": "d1"})
            runner = _runner(store, {"rebind": handler})
            runner.start()
            try:
                await asyncio.wait_for(store.finished.wait(), WAIT_S)
            finally:
                await runner.stop()
        finally:
            store.close()

    with caplog.at_level(logging.DEBUG, logger="boundgate.jobs"):
        asyncio.run(scenario())
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "boundgate.jobs"]
    outage = [m for level, m in said if level == logging.WARNING and "cannot be reached" in m]
    back = [m for level, m in said if "answers again" in m]
    assert len(outage) == 1 and len(back) == 1, said
    assert not any(r.exc_info for r in caplog.records if r.name == "boundgate.jobs")


def test_a_stopping_runner_lets_the_step_in_flight_finish_then_hands_the_job_back(
    tmp_path: Path,
) -> None:
    """A SIGTERM cut a batch line's generation, which ran again after the restart: its
    energy was spent twice. ``stop(drain_s)`` sets ``stopping`` and waits for the handler to
    reach its next step: the step in flight is finished, the job handed back (pending, the
    attempt not counted). A handler that never looks is cancelled once ``drain_s`` is over."""
    release = asyncio.Event()
    done_steps: list[int] = []

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "j.db")
        store.open()
        try:
            runner: JobRunner

            async def stepping(payload: dict[str, Any]) -> dict[str, Any]:
                for step in range(3):
                    if runner.stopping:
                        raise HandBack("its process is shutting down", retry_after_s=0.0)
                    if step == 0:
                        started.set()
                        await release.wait()  # the step in flight when stop() is called
                    done_steps.append(step)
                return {}

            started = asyncio.Event()
            await JobQueue(store, FakeClock(start=START), run_now).submit("batch", {"b": 1})
            runner = _runner(store, {"batch": stepping})
            runner.start()
            await asyncio.wait_for(started.wait(), WAIT_S)
            stopping = asyncio.create_task(runner.stop(drain_s=WAIT_S))
            await asyncio.sleep(0.05)
            assert runner.stopping and not stopping.done()  # waiting for the step
            release.set()
            await asyncio.wait_for(stopping, WAIT_S)
            assert done_steps == [0]  # finished, and no further step taken
            [job] = await store.jobs()
            assert (job.state, job.lease_owner, job.attempts) == ("pending", None, 0)

            async def deaf(payload: dict[str, Any]) -> dict[str, Any]:
                started.set()
                await asyncio.Event().wait()  # never looks at stopping
                return {}

            started.clear()
            other = _runner(store, {"batch": deaf})
            other.start()
            await asyncio.wait_for(started.wait(), WAIT_S)
            await asyncio.wait_for(other.stop(drain_s=0.1), WAIT_S)  # cut after 0.1 s
            [job] = await store.jobs()
            assert (job.state, job.lease_owner, job.attempts) == ("pending", None, 0)
        finally:
            store.close()

    asyncio.run(scenario())


def _telling_failures(
    store: SQLiteStore, clock: FakeClock, handler: Any
) -> tuple[JobRunner, list[tuple[dict[str, Any], str]]]:
    """A runner of ``handler`` for kind "batch", and the (payload, error) its failure hook is
    told, in order."""
    failures: list[tuple[dict[str, Any], str]] = []

    async def failed(payload: dict[str, Any], error: str) -> None:
        failures.append((payload, error))

    runner = JobRunner(
        store, {"batch": handler}, clock=clock, poll_s=0.01, replan_s=3600.0,
        on_failure={"batch": failed},
    )  # fmt: skip
    return runner, failures


def test_a_job_whose_lease_ran_out_in_its_last_attempt_fails_unrun(tmp_path: Path) -> None:
    """A job whose runner dies on another host (where no runner can read whether its process
    lives) waits out its lease and is claimed again, its attempt counted. One that kills each
    process it runs in was taken up again once per lease without end: past its last attempt
    it fails now, unrun, its failure hook told. Its third attempt still runs."""

    async def scenario() -> tuple[list[str], list[tuple[dict[str, Any], str]], list[JobRow]]:
        store = SQLiteStore(tmp_path / "j.db")
        store.open()
        try:
            clock = FakeClock(start=START)
            queue = JobQueue(store, clock, run_now)
            await queue.submit("batch", {"batch": "kills its runners"})
            await queue.submit("batch", {"batch": "killed one runner less"})
            # runners on other hosts claim them for a second and die: each lease runs out
            for attempt in range(3):
                for _ in range(2 if attempt < 2 else 1):
                    assert await store.claim_job(f"runner_elsewhere{attempt}", clock.time(), 1.0)
                clock.advance(2.0)
            ran: list[str] = []

            async def handler(payload: dict[str, Any]) -> dict[str, Any]:
                ran.append(payload["batch"])
                return {}

            runner, failures = _telling_failures(store, clock, handler)
            assert await runner.run_once() and await runner.run_once()
            assert not await runner.run_once()  # nothing left
            return ran, failures, await store.jobs()
        finally:
            store.close()

    ran, failures, jobs = asyncio.run(scenario())
    assert ran == ["killed one runner less"]
    [(payload, error)] = failures
    assert payload == {"batch": "kills its runners"}
    assert "lease ran out during its last attempt: 3 attempts" in error
    states = {json.loads(j.payload)["batch"]: (j.state, j.attempts) for j in jobs}
    assert states == {"kills its runners": ("failed", 4), "killed one runner less": ("done", 3)}
    [failed_job] = [j for j in jobs if j.state == "failed"]
    assert json.loads(failed_job.result or "{}") == {"error": error}


class OutageAtHandBack(SQLiteStore):
    """A SQLite store whose next ``failing`` finishes raise what an unreachable PostgreSQL
    raises: the outage that failed the job's work lasts into its hand-back."""

    failing = 0

    async def finish_job(self, *args: Any, **kwargs: Any) -> bool:
        if self.failing:
            self.failing -= 1
            raise StoreUnavailableError("the store is out of reach")
        return await super().finish_job(*args, **kwargs)


def test_a_hand_back_the_store_cannot_take_yet_is_written_once_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A re-check: a job whose work met a store outage three times, each outage lasting into
    the hand-back's write, waited out its lease each time with the attempt counted, and past
    its last attempt it was failed unrun, where an outage is to leave the attempt uncounted.
    The hand-back is tried again until the store takes it, each retry logged with the job's
    id (stamina's own warning names none); the fourth run finishes."""

    async def scenario() -> tuple[int, list[tuple[dict[str, Any], str]], JobRow]:
        store = OutageAtHandBack(tmp_path / "j.db")
        store.open()
        try:
            clock = FakeClock(start=START)
            await JobQueue(store, clock, run_now).submit("batch", {"batch": "b1"})
            runs = 0

            async def handler(payload: dict[str, Any]) -> dict[str, Any]:
                nonlocal runs
                runs += 1
                if runs <= 3:
                    store.failing = 2  # the hand-back's first two writes fail too
                    raise StoreUnavailableError("the ledger write failed")
                return {"ok": True}

            runner, failures = _telling_failures(store, clock, handler)
            for _ in range(4):
                assert await runner.run_once()
                clock.advance(STORE_RETRY_S)
            (job,) = await store.jobs()
            return runs, failures, job
        finally:
            store.close()

    with caplog.at_level(logging.WARNING, logger="boundgate.jobs"):
        runs, failures, job = asyncio.run(scenario())
    assert (runs, failures, job.state, job.attempts) == (4, [], "done", 1), job
    retried = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    assert len(retried) == 6, retried  # two failed writes of each of three hand-backs
    assert all(m.startswith(f"job {job.id} (batch): pending not written") for m in retried)


def test_a_done_write_an_outage_cut_in_the_last_attempt_is_written_once_it_can(
    tmp_path: Path,
) -> None:
    """A re-check: a job's last attempt finished its work, but the one write of ``done`` met
    a store outage; its lease ran out and the next claim failed it as if its runner had died
    (the failure hook told, for work that was done). The write is tried again until the
    store takes it."""

    async def scenario() -> tuple[int, list[tuple[dict[str, Any], str]], JobRow]:
        store = OutageAtHandBack(tmp_path / "j.db")
        store.open()
        try:
            clock = FakeClock(start=START)
            queue = JobQueue(store, clock, run_now)
            await queue.submit("batch", {"batch": "b1"})
            for attempt in range(2):  # two runners elsewhere died with it
                assert await store.claim_job(f"runner_elsewhere{attempt}", clock.time(), 1.0)
                clock.advance(2.0)
            runs = 0

            async def handler(payload: dict[str, Any]) -> dict[str, Any]:
                nonlocal runs
                runs += 1
                store.failing = 1  # the done write meets the outage's last moment
                return {"ok": True}

            runner, failures = _telling_failures(store, clock, handler)
            assert await runner.run_once()
            clock.advance(400.0)  # past any lease
            assert not await runner.run_once()  # nothing left to claim
            (job,) = await store.jobs()
            return runs, failures, job
        finally:
            store.close()

    runs, failures, job = asyncio.run(scenario())
    assert (runs, failures, job.state, job.attempts) == (1, [], "done", 3), job


class OwnerOutage(SQLiteStore):
    """A SQLite store whose finishes raise what an unreachable PostgreSQL raises while
    ``down``, counting them, so a test knows the runner is waiting to try again."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.down = False
        self.tries = 0

    async def finish_job(self, *args: Any, **kwargs: Any) -> bool:
        self.tries += 1
        if self.down:
            raise StoreUnavailableError("the store is out of reach")
        return await super().finish_job(*args, **kwargs)


def test_a_stop_while_a_write_waits_for_the_store_writes_it_once_more(tmp_path: Path) -> None:
    """A re-check: the store came back while the runner waited to try its hand-back again,
    and a stop (SIGTERM) then cancelled the wait: the job stayed leased to the stopped runner
    for its whole lease, though only ``kill -9`` is to leave a lease to run out. Cancelled,
    the write is tried once more."""

    async def scenario() -> JobRow:
        store = OwnerOutage(tmp_path / "j.db")
        store.open()
        try:
            clock = FakeClock(start=START)
            await JobQueue(store, clock, run_now).submit("batch", {"batch": "b1"})

            async def handler(payload: dict[str, Any]) -> dict[str, Any]:
                store.down = True
                raise StoreUnavailableError("the ledger write failed")

            runner = JobRunner(store, {"batch": handler}, clock=clock, poll_s=0.01, replan_s=3600.0)
            runner.start()
            await wait_until_async(lambda: store.tries >= 5)  # backing off (~1.6 s next)
            store.down = False  # the store is back
            await asyncio.wait_for(runner.stop(drain_s=5.0), WAIT_S)
            (job,) = await store.jobs()
            return job
        finally:
            store.close()

    job = asyncio.run(scenario())
    assert (job.state, job.attempts, job.lease_owner) == ("pending", 0, None), job


async def wait_until_async(condition: Any) -> None:
    """Wait (at most ``WAIT_S``) for ``condition()`` in the event loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)
