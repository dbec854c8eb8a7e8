"""A job whose runner's process is gone is given back at once, not after its lease.

A process killed mid-job (``kill -9``) leaves its job leased for ``scheduler.job_lease_s``
(300 s): a restarted gateway went on with its batch five minutes later (a break-it trial).
A runner on the same host and PID namespace now reads the lease owner's name
(``liveness.owner_gone``) and gives the job back when no live process has its id. Real
processes (a child killed, a zombie, a live one) and a real SQLite store; the clock is fake
and never moves, so a job runs only if its lease was given back."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boundgate.clock import FakeClock
from boundgate.scheduler.jobs import JobQueue, run_now
from boundgate.scheduler.liveness import owner_gone, pid_namespace, process_gone, runner_name
from boundgate.scheduler.runner import JobRunner
from boundgate.store import JobRow, SQLiteStore
from helpers import wait_until

START = 1_900_000_000.0
WAIT_S = 60.0  # a guard against a hang, never a timing the test depends on

pytestmark = pytest.mark.skipif(
    pid_namespace() is None, reason="needs Linux's /proc/self/ns/pid to read PID namespaces"
)


def _owner(pid: int, host: str | None = None, ns: str | None = None) -> str:
    """A runner name as ``runner_name`` writes it, for another process."""
    return f"runner_{host or socket.gethostname()}_pidns{ns or pid_namespace()}_{pid}_0a1b2c3d"


def _child() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


@pytest.fixture
def dead_pid() -> int:
    """The id of a child process that was killed and reaped: no process has it (until the
    kernel hands it out again, which takes a full turn of the PID space)."""
    child = _child()
    child.kill()
    child.wait()
    return child.pid


@pytest.fixture
def live_child() -> Iterator[subprocess.Popen[bytes]]:
    child = _child()
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def test_a_runner_name_says_where_its_process_runs() -> None:
    name = runner_name("abc123")
    assert name == f"runner_{socket.gethostname()}_pidns{pid_namespace()}_{os.getpid()}_abc123"
    assert not owner_gone(name)  # this process


def test_a_killed_process_is_gone_and_a_live_one_is_not(
    dead_pid: int, live_child: subprocess.Popen[bytes]
) -> None:
    assert process_gone(dead_pid) and owner_gone(_owner(dead_pid))
    assert not process_gone(live_child.pid) and not owner_gone(_owner(live_child.pid))


def test_a_zombie_is_gone() -> None:
    """Killed and not yet reaped by its parent: ``/proc/<pid>`` is still there, state Z."""
    child = _child()
    try:
        child.send_signal(signal.SIGKILL)
        stat = Path(f"/proc/{child.pid}/stat")
        wait_until(lambda: stat.read_text().rpartition(")")[2].split()[0] == "Z", WAIT_S)
        assert stat.exists()  # not reaped
        assert process_gone(child.pid) and owner_gone(_owner(child.pid))
    finally:
        child.wait()


def test_only_an_owner_known_to_be_here_is_read_as_gone(dead_pid: int) -> None:
    assert not owner_gone(_owner(dead_pid, host=socket.gethostname() + "-other"))
    assert not owner_gone(_owner(dead_pid, ns="1"))  # another container's process ids
    # the name's format before PID namespaces were written in it: never read as gone
    assert not owner_gone(f"runner_{socket.gethostname()}_{dead_pid}_0a1b2c3d")
    assert not owner_gone("a name of something else")


class Finishing(SQLiteStore):
    """A SQLite store that tells when a job was finished and when the running jobs were read
    (the test's subclass, not a patch)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.finished = asyncio.Event()
        self.looked = asyncio.Event()  # the running jobs were read
        # an owner whose claim goes before any other's: the test's neighbour, which a runner
        # polling every 10 ms could otherwise beat to the job on a busy machine (a CI did)
        self.first_claim_by: str | None = None
        self._first_claimed = asyncio.Event()

    async def claim_job(self, owner: str, *args: Any, **kwargs: Any) -> JobRow | None:
        if self.first_claim_by is not None and owner != self.first_claim_by:
            await self._first_claimed.wait()
        got = await super().claim_job(owner, *args, **kwargs)
        if owner == self.first_claim_by:
            self._first_claimed.set()
        return got

    async def jobs(self, state: str | None = None) -> list[JobRow]:
        got = await super().jobs(state)
        if state == "running":
            self.looked.set()
        return got

    async def finish_job(self, *args: Any, **kwargs: Any) -> bool:
        finished = await super().finish_job(*args, **kwargs)
        if finished and args[2] == "done":
            self.finished.set()
        return finished


def _runner(store: SQLiteStore, handlers: dict[str, Any]) -> JobRunner:
    return JobRunner(
        store, handlers, clock=FakeClock(start=START), poll_s=0.01, lease_s=300.0, replan_s=3600.0
    )


def test_a_job_leased_to_a_gone_process_runs_at_once_and_a_live_ones_is_left(
    tmp_path: Path, dead_pid: int, live_child: subprocess.Popen[bytes]
) -> None:
    async def scenario() -> None:
        store = Finishing(tmp_path / "j.db")
        store.open()
        try:
            clock = FakeClock(start=START)
            queue = JobQueue(store, clock, run_now)
            await queue.submit("batch", {"batch": "of the killed"})
            (first,) = await store.jobs()
            await queue.submit("batch", {"batch": "of the live"})
            # each claimed by a process of its own, leased for an hour that never passes
            gone, alive = _owner(dead_pid), _owner(live_child.pid)
            assert (await store.claim_job(gone, START, 3600.0)) is not None
            assert (await store.claim_job(alive, START, 3600.0)) is not None
            ran: list[dict[str, Any]] = []
            done = asyncio.Event()

            async def handler(payload: dict[str, Any]) -> dict[str, Any]:
                ran.append(payload)
                done.set()
                return {}

            runner = _runner(store, {"batch": handler})
            runner.start()
            try:
                await asyncio.wait_for(done.wait(), WAIT_S)
                await asyncio.wait_for(store.finished.wait(), WAIT_S)  # and finished by it
            finally:
                await runner.stop()
            assert ran == [{"batch": "of the killed"}]
            jobs = {j.id: j for j in await store.jobs()}
            assert jobs[first.id].state == "done" and jobs[first.id].attempts == 2
            (left,) = [j for j in jobs.values() if j.id != first.id]
            assert left.state == "running" and left.lease_owner == alive  # its holder lives
        finally:
            store.close()

    asyncio.run(scenario())


def test_a_runner_already_polling_gives_back_the_job_of_a_neighbour_that_died(
    tmp_path: Path,
) -> None:
    """A replica beside a killed one on the same host looks every third of its lease, not
    only as it starts (a re-check: a cancel through the survivor waited out the dead
    replica's 300 s lease)."""

    async def scenario() -> None:
        store = Finishing(tmp_path / "j.db")
        store.open()
        try:
            ran = asyncio.Event()

            async def handler(payload: dict[str, Any]) -> dict[str, Any]:
                ran.set()
                return {}

            runner = JobRunner(
                store, {"batch": handler}, clock=FakeClock(start=START), poll_s=0.01,
                lease_s=0.3, replan_s=3600.0,
            )  # fmt: skip
            runner.start()
            try:
                # the runner has started and looked for running jobs: none was leased yet
                await asyncio.wait_for(store.looked.wait(), WAIT_S)
                child = _child()  # a neighbour that takes the job, then dies
                store.first_claim_by = _owner(child.pid)
                await JobQueue(store, FakeClock(start=START), run_now).submit("batch", {})
                assert (await store.claim_job(_owner(child.pid), START, 3600.0)) is not None
                child.kill()
                child.wait()
                await asyncio.wait_for(ran.wait(), WAIT_S)
                await asyncio.wait_for(store.finished.wait(), WAIT_S)
            finally:
                await runner.stop()
            (job,) = await store.jobs()
            assert job.state == "done" and job.attempts == 2
        finally:
            store.close()

    asyncio.run(scenario())


def test_a_job_whose_process_died_in_each_attempt_fails_instead_of_running_again(
    tmp_path: Path, dead_pid: int
) -> None:
    """A job that kills its process (a batch line that runs it out of memory) was taken up
    again at once by every restart, now that a restart does not wait out the lease: after
    ``max_attempts`` deaths it fails, and its kind's failure hook is told (a batch ends
    ``failed`` with the lines it kept)."""

    async def scenario() -> None:
        store = Finishing(tmp_path / "j.db")
        store.open()
        try:
            await JobQueue(store, FakeClock(start=START), run_now).submit("batch", {"batch": "b"})
            gone = _owner(dead_pid)
            # three runs of it, each in a process that died (a lease of 0 s runs out at once)
            for i, lease_s in enumerate((0.0, 0.0, 3600.0)):
                assert (await store.claim_job(gone, START + 1 + i, lease_s)) is not None
            ran: list[dict[str, Any]] = []
            told: list[tuple[dict[str, Any], str]] = []
            hook_told = asyncio.Event()

            async def handler(payload: dict[str, Any]) -> dict[str, Any]:
                ran.append(payload)
                return {}

            async def on_failure(payload: dict[str, Any], error: str) -> None:
                told.append((payload, error))
                hook_told.set()

            runner = JobRunner(
                store, {"batch": handler}, clock=FakeClock(start=START + 10), poll_s=0.01,
                lease_s=300.0, replan_s=3600.0, max_attempts=3,
                on_failure={"batch": on_failure},
            )  # fmt: skip
            runner.start()
            try:
                await asyncio.wait_for(hook_told.wait(), WAIT_S)
            finally:
                await runner.stop()
            (job,) = await store.jobs()
            assert job.state == "failed" and job.attempts == 3 and job.lease_owner is None
            assert ran == []
            assert told == [({"batch": "b"}, "its process died during each of its 3 attempts")]
        finally:
            store.close()

    asyncio.run(scenario())
