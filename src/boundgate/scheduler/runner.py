"""The job runner: claims due jobs with a lease, runs their handlers and finishes them.

A runner claims the next due job with a lease and renews it every third of ``lease_s``
while the handler runs (a batch may run for hours); if the process dies (``kill -9``) the
lease expires and another runner (or the restarted one) takes the job again; a runner on the
same host sees that the holder's process is gone (``liveness.py``; as it starts and every
third of ``lease_s`` while it polls) and gives the job back without waiting for its lease. A
runner that finds its lease taken over stops the handler. Completion only counts for the
lease holder, so a job whose lease was taken over cannot be completed twice. The jobs, their
queue and their requirements are ``jobs.py``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import stamina

from ..clock import Clock, SystemClock
from ..errors import BoundgateError, RateLimitError
from ..retries import counting
from ..store import JobRow, Store, StoreUnavailableError
from ..store.outages import OutageLog
from .jobs import (
    FailureHandler,
    HandBack,
    JobHandler,
    StartHandler,
    parse_requirement,
)
from .liveness import owner_gone, runner_name

log = logging.getLogger("boundgate.jobs")

# the longest wait, in seconds, before a runner polls again after its polls failed in a row
# (a store unreachable for minutes): it is back within this of the store
POLL_BACKOFF_MAX_S = 30.0
# how long a job handed back in a store outage waits before any runner takes it again (the
# Retry-After a client gets with its 503 store_unavailable)
STORE_RETRY_S = 5.0


class _LeaseLost(Exception):
    """The job's lease expired and another runner claimed it."""


def retry_backoff(attempts: int, base_s: float, max_s: float) -> float:
    """Seconds a job waits after its ``attempts``-th attempt failed: ``base_s`` doubled for
    each further attempt, ``min(max_s, base_s * 2 ** (attempts - 1))``: the exponential
    backoff of stamina (which retries the upstream calls), without its jitter, since a job's
    next attempt is a time kept in the store rather than a sleep, and a runner takes due jobs
    one at a time, so jobs that failed together do not come back as one burst."""
    doublings = min(max(attempts - 1, 0), 60)  # (2.0 ** 1024 overflows)
    return float(min(max_s, base_s * 2.0**doublings))


def _payload(job: JobRow) -> dict[str, Any]:
    """What a job's handler and failure hook are given: its JSON payload, the keys the queue
    keeps for itself (``_``-prefixed) left out. Raises ``ValueError`` for a payload that is
    not JSON."""
    return {k: v for k, v in json.loads(job.payload).items() if not k.startswith("_")}


class JobRunner:
    """Claims due jobs and runs their handlers, one at a time, in the event loop.

    A job whose handler fails is tried again up to ``max_attempts`` times, each time after
    :func:`retry_backoff` (``retry_backoff_s`` doubled per attempt, at most
    ``retry_backoff_max_s``); one its tenant's limits refuse (a 429) after their
    Retry-After instead. Either way it is held until then: a re-plan does not move it
    earlier (:meth:`JobQueue.replan`), and the kind's ``on_held`` hook is told the time (a
    batch shows it as its next start). One its handler hands back (:class:`HandBack`: not
    for this process) is held the same way without counting the attempt. One whose request
    is refused for good (a :attr:`BoundgateError.permanent` error: a 400 for a worst case
    above the tenant's whole daily budget, say) fails at once with that error as its result,
    never retried, and its kind's ``on_failure`` hook is told. One whose lease ran out during
    its last attempt (its runner killed on another host) fails when it is next claimed,
    unrun, that hook told. When it starts,
    and every ``replan_s`` after, it calls ``recover`` (work a process that died left without
    a job: a batch) and ``replan``.

    ``accepts`` says what this process runs (:func:`model_requirement` of each model at its
    version; called at every claim; None: nothing): the runner claims only jobs that require
    nothing or one of those, and, past their deadline, a job whose requirement no live
    runner meets: one it cannot run is then finished ``done``, ``{"skipped": ...}``, its
    handler not called. A late job that requires nothing and that its handler hands back is
    skipped so only when no other live runner runs what can run it (``HandBack.taken_by``,
    ``Store.live_requirements``); else it is handed back, for that one. It tells the store
    what it accepts and that it is alive (``Store.note_runner``) for ``alive_s`` =
    max(``lease_s``, 3 × ``poll_s``) s, again every third of that while it polls or runs a
    job, and when what it accepts changes; :meth:`stop` takes that back
    (``Store.forget_runner``).

    A poll the store fails (a claim, a finish) is logged and tried again after a backoff: the
    loop never ends by an error (``_loop``), and should it end other than by :meth:`stop`,
    the log says so at once. Each such retry is told to ``on_retry`` (the server counts them
    in ``boundgate_retries_total{operation="job_poll"}``)."""

    def __init__(
        self,
        store: Store,
        handlers: dict[str, JobHandler],
        *,
        clock: Clock | None = None,
        lease_s: float = 300.0,
        poll_s: float,
        max_attempts: int = 3,
        retry_backoff_s: float = 60.0,
        retry_backoff_max_s: float = 3600.0,
        replan: Callable[[], Awaitable[int]] | None = None,
        replan_s: float,
        recover: Callable[[], Awaitable[int]] | None = None,
        on_failure: dict[str, FailureHandler] | None = None,
        on_held: dict[str, StartHandler] | None = None,
        accepts: Callable[[], Collection[str]] | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        # told of each poll retried after the store failed it (the app counts them on its
        # /metrics: ``Metrics.retry_counter("job_poll")``)
        self.on_retry = on_retry
        self.accepts = accepts
        self.handlers = handlers
        # per kind: what to do when a job has failed for good (a batch is marked failed)
        self.on_failure = on_failure or {}
        # per kind: told a job's payload and the time a failed or refused run holds it until
        self.on_held = on_held or {}
        self.clock = clock or SystemClock()
        self.lease_s = lease_s
        self.poll_s = poll_s
        # how long what this runner tells the store (alive, what it accepts) holds; renewed
        # every third of it, also between two polls
        self.alive_s = max(lease_s, 3 * poll_s)
        # (clock time, accepts) of the runner's last note in the store; None: none stands
        self._noted: tuple[float, frozenset[str]] | None = None
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self.retry_backoff_max_s = retry_backoff_max_s
        self.replan = replan
        self.replan_s = replan_s
        # finds work whose job is missing or ended without finishing it (a process died
        # between two writes) and queues or ends it; returns how much
        self.recover = recover
        # when upkeep last ran (monotonic); None: not yet, so it runs as the runner starts
        # (0.0 waited until replan_s after the host booted: a VM up for less than an hour
        # skipped it)
        self._upkept: float | None = None
        # when the jobs of runners that are gone were last looked for (monotonic): as the
        # runner starts, then every third of ``lease_s`` while it polls (a replica beside a
        # killed one used to wait the whole lease, a re-check's finding)
        self._reclaimed: float | None = None
        # which process holds a lease: host, PID namespace and pid, for operators of several
        # replicas and for a runner on the same host to tell that the holder is gone
        # (``liveness.owner_gone``)
        self.owner = runner_name(uuid.uuid4().hex[:8])
        # a poll that fails: the store out of reach is logged once per outage
        self._outage = OutageLog(log, f"job runner {self.owner}: a poll (retried after a backoff)")
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # the job whose handler runs now (under this runner's lease); None between jobs
        self._running: JobRow | None = None
        # set by :meth:`stop`: claim nothing more; a handler that can stop between steps (a
        # batch between lines) hands its job back at the next one
        self.stopping = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())
            self._task.add_done_callback(self._ended)

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, drain_s: float = 0.0) -> None:
        """Stop the loop, hand the job it runs back (pending again, due at once, the claim's
        attempt not counted: ``Store.finish_job``'s ``handed_back``) and take back this
        runner's note in the store: a late job only it could run is no longer waited for.

        ``drain_s``: how long to wait first for the running handler to reach a point where it
        can stop (:attr:`stopping` is set; a batch hands its job back before its next line),
        so the step in flight is finished and kept rather than cut and run again (a trial: a
        SIGTERM cut a batch line's generation, whose energy was spent for nothing). Past it,
        or with 0, the handler is cancelled; handlers are resumable (a batch goes on from the
        lines it kept). A job left leased, as a stop used to leave it, waited for its lease to
        run out (``lease_s``, 5 min) before a restarted process took it up, and a cancel of
        its batch waited as long (a trial). Only a process that dies (``kill -9``) leaves its
        lease to run out. A hand-back the store fails is logged: the lease then runs out as
        before."""
        task, self._task = self._task, None
        self.stopping = True
        if task is not None:
            if drain_s > 0 and self._running is not None:
                self._wake.set()
                await asyncio.wait({task}, timeout=drain_s)
            running = self._running
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self._running = None
            if running is not None:
                await self._hand_back_on_stop(running)
        if self._noted is not None:
            self._noted = None
            try:
                await self.store.forget_runner(self.owner)
            except Exception:  # shutdown goes on; the note runs out by itself
                log.exception("job runner %s: its note in the store was not taken back", self.owner)

    async def _hand_back_on_stop(self, job: JobRow) -> None:
        result = {"handed_back": "its runner stopped"}
        try:
            if await self._finish(job, "pending", result, handed_back=True):
                log.info("job %s (%s) handed back: its runner stopped", job.id, job.kind)
        except Exception:  # shutdown goes on; the lease runs out by itself
            log.exception("job %s: not handed back as its runner stopped", job.id)

    def _accepts(self) -> frozenset[str]:
        return frozenset(self.accepts()) if self.accepts is not None else frozenset()

    async def _note_alive(self, accepts: frozenset[str], now: float, renew: bool = False) -> None:
        """Tell the store this runner is alive for ``alive_s`` and accepts ``accepts``, when
        the last note is a third of that old (``renew``: at once) or said other requirements;
        nothing while it accepts nothing and no note stands. A failure is logged: the runner
        goes on (its last note runs out; a job only it could run may then be skipped late)."""
        if self._noted is None:
            if not accepts:
                return
        elif not renew and self._noted[1] == accepts and now - self._noted[0] < self.alive_s / 3:
            return
        try:
            await self.store.note_runner(self.owner, accepts, now, now + self.alive_s)
        except StoreUnavailableError as exc:  # the poll's outage log says so, once
            log.debug("job runner %s: its note in the store was not renewed: %s", self.owner, exc)
            return
        except Exception:
            log.exception("job runner %s: its note in the store was not renewed", self.owner)
            return
        self._noted = (now, accepts) if accepts else None

    async def _loop(self) -> None:
        """Poll until stopped. A poll that fails (the store's error in a claim or a finish: a
        PostgreSQL connection lost, a SQLite database locked) is logged (the store out of
        reach once per outage, :class:`OutageLog`; anything else with its traceback) and
        tried again, without limit, after stamina's backoff: ``poll_s`` doubled for each
        failure in a row, plus up to ``poll_s`` of jitter, at most
        max(``poll_s``, :data:`POLL_BACKOFF_MAX_S`); each retry is told to ``on_retry``. An
        error used to end the loop, silently: the process ran no more background jobs until
        it restarted. Cancellation (:meth:`stop`) is not retried."""
        while not self.stopping:
            ran = False
            with counting(self.on_retry):
                async for attempt in stamina.retry_context(
                    on=self._poll_failed,
                    attempts=None,
                    timeout=None,
                    wait_initial=self.poll_s,
                    wait_max=max(self.poll_s, POLL_BACKOFF_MAX_S),
                    wait_jitter=self.poll_s,
                ):
                    with attempt:
                        ran = await self._poll()
                        # inside: a failed attempt's exception ends the block, and stamina
                        # swallows it to retry (after the block it said "answers again")
                        self._outage.succeeded()
            if not ran and not self.stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def _poll(self) -> bool:
        """The jobs of runners that are gone given back and upkeep, each when due, then
        :meth:`run_once`; False if no job was due."""
        if self._reclaimed is None or time.monotonic() - self._reclaimed >= self.lease_s / 3:
            self._reclaimed = time.monotonic()
            try:
                await self.reclaim_gone()
            except StoreUnavailableError as exc:  # the claim's outage log says so, once
                log.debug("job runner %s: runners gone not looked for: %s", self.owner, exc)
            except Exception:  # logged; the lease runs out by itself
                log.exception("giving back the jobs of runners that are gone failed")
        if self._upkept is None or time.monotonic() - self._upkept >= self.replan_s:
            self._upkept = time.monotonic()
            await self._upkeep()
        return await self.run_once()

    def _poll_failed(self, exc: BaseException) -> bool:
        """stamina's hook: log a failed poll and retry it; anything not an ``Exception``
        (cancellation) is not retried."""
        if not isinstance(exc, Exception):
            return False
        self._outage.failed(exc)  # the store out of reach: once per outage
        return True

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The loop task's done callback: an end other than by :meth:`stop` (an error the
        loop does not retry) is logged as it happens (``stop`` gathers the task and would
        drop its error)."""
        if task.cancelled() or task.exception() is None:
            return
        log.error(
            "job runner %s stopped: this process runs no more background jobs until it restarts",
            self.owner,
            exc_info=task.exception(),
        )

    async def _upkeep(self) -> None:
        """Recover work left without a job, then re-plan the pending jobs; a failure of either
        is logged and must not stop the runner (a forecast without data, a store hiccup)."""
        if self.recover is not None:
            try:
                recovered = await self.recover()
            except Exception:
                log.exception("recovering work left without a job failed")
            else:
                if recovered:
                    log.info("recovered %d piece(s) of work left without a job", recovered)
        if self.replan is not None:
            try:
                moved = await self.replan()
            except Exception:
                log.exception("re-planning jobs failed")
            else:
                if moved:
                    log.info("re-planned %d job(s)", moved)

    async def reclaim_gone(self) -> int:
        """Give back every running job leased to a runner whose process is gone
        (``liveness.owner_gone``: same host and PID namespace, no live process with its id):
        pending again, due at once, its lease dropped, the dead run's attempt counted as when
        a lease runs out. Without this a restarted process waited for the lease to run out
        (``lease_s``, 5 min) before it went on with a batch it was running when it was killed
        (a break-it trial's ``kill -9``). A job whose process died in each of its
        ``max_attempts`` attempts fails instead (its kind's ``on_failure`` hook told: a batch
        ends ``failed`` with the lines it kept): a job that kills its process (a line that
        runs it out of memory) would otherwise be taken up again at every restart, at once.
        Returns how many were given back or failed."""
        given = 0
        for job in await self.store.jobs("running"):
            owner = job.lease_owner
            if owner is None or owner == self.owner or not owner_gone(owner):
                continue
            if job.attempts >= self.max_attempts:
                reason = f"its process died during each of its {job.attempts} attempts"
                result = json.dumps({"error": reason}, sort_keys=True)
                if await self.store.finish_job(job.id, owner, "failed", result):
                    log.error("job %s (%s) failed: %s (%s)", job.id, job.kind, reason, owner)
                    await self._failed(job, _payload(job), reason)
                    given += 1
                continue
            result = json.dumps({"reclaimed": f"its runner {owner} is gone"}, sort_keys=True)
            if await self.store.finish_job(job.id, owner, "pending", result):
                log.warning(
                    "job %s (%s) given back: its runner %s is gone", job.id, job.kind, owner
                )
                given += 1
        return given

    async def run_once(self) -> bool:
        """Claim and run one due job; False if none was due (or the runner is stopping)."""
        if self.stopping:
            return False
        now = self.clock.time()
        accepts = self._accepts()
        await self._note_alive(accepts, now)
        job = await self.store.claim_job(self.owner, now, self.lease_s, accepts)
        if job is None:
            return False
        if job.attempts > self.max_attempts:
            await self._lease_ran_out(job)
            return True
        if job.requires is not None and job.requires not in accepts:
            # past its deadline, and no live runner meets its requirement
            log.info("job %s (%s) skipped past its deadline: requires %s", job.id, job.kind,
                     job.requires)  # fmt: skip
            reason = f"no process running {job.requires} took it before its deadline"
            await self._finish_in_loop(job, "done", {"skipped": reason})
            return True
        handler = self.handlers.get(job.kind)
        if handler is None:
            await self._finish_in_loop(
                job, "failed", {"error": f"no handler for kind {job.kind!r}"}
            )
            return True
        payload: dict[str, Any] = {}
        try:
            payload = _payload(job)
            self._running = job
            try:
                result = await self._run_leased(job, handler(payload))
            finally:
                self._running = None  # (stop() took it before cancelling the loop)
        except _LeaseLost:
            log.warning("job %s (%s): lease taken over by another runner", job.id, job.kind)
            return True
        except asyncio.CancelledError:
            raise
        except HandBack as back:
            now = self.clock.time()
            if now >= job.deadline and not await self._run_elsewhere(job, back, now):
                log.info("job %s (%s) skipped past its deadline: %s", job.id, job.kind, back)
                await self._finish_in_loop(job, "done", {"skipped": back.reason})
            else:
                log.info("job %s (%s) handed back: %s", job.id, job.kind, back)
                retry_at = now + back.retry_after_s
                result = {"handed_back": back.reason}
                await self._finish_in_loop(
                    job, "pending", result, retry_at=retry_at, handed_back=True
                )
            return True
        except StoreUnavailableError as exc:
            # the store's outage is no fault of the job's (a trial: a batch whose line could
            # not commit its ledger row failed for good after 5 s without PostgreSQL):
            # handed back, the attempt not counted, due again once the store may answer
            log.warning(
                "job %s (%s) handed back: the store is unavailable (%s)", job.id, job.kind, exc
            )
            # (the hand-back's own write tried again while the store is out of reach: a
            # re-check's three outages that failed it too failed the job past its last
            # attempt, where each was to leave its attempt uncounted)
            await self._finish_in_loop(
                job,
                "pending",
                {"handed_back": "the store was unavailable"},
                retry_at=self.clock.time() + STORE_RETRY_S,
                handed_back=True,
            )
            return True
        except RateLimitError as exc:
            # background work runs under its tenant's limits (rpm, daily token budget): wait
            # until they allow it, as a client would after a 429 with Retry-After
            # (held until then: a re-plan never moves it earlier)
            log.info("job %s (%s) deferred: %s", job.id, job.kind, exc.message)
            result = {"error": exc.message, "code": exc.code}
            if job.attempts < self.max_attempts:
                retry_at = self.clock.time() + (exc.retry_after or self._backoff(job))
                await self._hold(job, payload, result, retry_at)
            else:
                await self._finish_in_loop(job, "failed", result)
                await self._failed(job, payload, exc.message)
            return True
        except Exception as exc:  # a failing job must not stop the runner
            if isinstance(exc, BoundgateError) and exc.permanent:
                # the work's request is refused for good (a 400: its worst case is more than
                # its tenant's whole daily budget): no retry can change that, so the job
                # fails now, saying why, instead of after every attempt's backoff
                log.warning("job %s (%s) refused for good: %s", job.id, job.kind, exc.message)
                refused = {"error": exc.message, "code": exc.code, "status": exc.status_code}
                await self._finish_in_loop(job, "failed", refused)
                await self._failed(job, payload, exc.message)
                return True
            log.exception("job %s (%s) failed", job.id, job.kind)
            if job.attempts < self.max_attempts:
                retry_at = self.clock.time() + self._backoff(job)
                await self._hold(job, payload, {"error": str(exc)}, retry_at)
            else:
                await self._finish_in_loop(job, "failed", {"error": str(exc)})
                await self._failed(job, payload, str(exc) or type(exc).__name__)
            return True
        await self._finish_in_loop(job, "done", result)
        return True

    async def _lease_ran_out(self, job: JobRow) -> None:
        """Fail a job claimed for more than ``max_attempts`` attempts: only a lease that ran
        out takes a job past its last attempt (a failure at it fails the job), so its holder
        stopped during that attempt (killed or frozen, on a host whose processes this runner
        cannot read: ``reclaim_gone`` fails the job of a gone process on its own host before
        its lease runs out). Without this such a job, one that kills its process, was taken
        up again once per lease without end. Oban's Lifeline plugin discards orphaned jobs
        that used up their attempts likewise. Its kind's ``on_failure`` hook is told."""
        reason = (
            f"its lease ran out during its last attempt: {job.attempts - 1} attempts, at most "
            f"{self.max_attempts} (its runner was killed, froze or lost the store)"
        )
        if await self._finish_in_loop(job, "failed", {"error": reason}):
            log.error("job %s (%s) failed: %s", job.id, job.kind, reason)
            try:
                payload = _payload(job)
            except ValueError:
                payload = {}
            await self._failed(job, payload, reason)

    async def _run_elsewhere(self, job: JobRow, back: HandBack, now: float) -> bool:
        """Whether a job this runner hands back past its deadline is still another live
        runner's to run (handed back, not skipped): one without a requirement (queued before
        jobs had them; any runner claims it) while another runner alive at ``now`` runs a
        model at a version ``back.taken_by`` says can run it. A job with a requirement had
        this decided by its claim (``Store.claim_job``)."""
        if job.requires is not None or back.taken_by is None:
            return False
        for requires in await self.store.live_requirements(now, besides=self.owner):
            parsed = parse_requirement(requires)
            if parsed is not None and back.taken_by(*parsed):
                return True
        return False

    def _backoff(self, job: JobRow) -> float:
        return retry_backoff(job.attempts, self.retry_backoff_s, self.retry_backoff_max_s)

    async def _hold(
        self, job: JobRow, payload: dict[str, Any], result: dict[str, Any], until: float
    ) -> None:
        """Put the job back, held until ``until``, and tell its kind's ``on_held`` hook (only
        if this runner still held the lease: else the job is another runner's now)."""
        if not await self._finish_in_loop(job, "pending", result, retry_at=until):
            return
        hook = self.on_held.get(job.kind)
        if hook is None:
            return
        try:
            await hook(payload, until)
        except Exception:  # the runner goes on; the job's own row has its start
            log.exception("job %s (%s): its hold hook failed", job.id, job.kind)

    async def _failed(self, job: JobRow, payload: dict[str, Any], error: str) -> None:
        hook = self.on_failure.get(job.kind)
        if hook is None:
            return
        try:
            await hook(payload, error)
        except Exception:  # the runner goes on; the job's own row says it failed
            log.exception("job %s (%s): its failure hook failed", job.id, job.kind)

    async def _run_leased(self, job: JobRow, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """Await ``work`` while renewing the job's lease; raise :class:`_LeaseLost` (work
        cancelled) if a renewal finds the job leased to another runner. A renewal the store
        fails (a connection blip) is logged and tried again at the next third of the lease:
        the work goes on (it was counted as the job's own failure, its work cancelled); should
        the lease run out meanwhile and another runner take the job, the next renewal says so."""
        task = asyncio.ensure_future(work)
        every_s = self.lease_s / 3
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=every_s)
                if done:
                    return task.result()
                now = self.clock.time()
                try:
                    renewed = await self.store.renew_job(job.id, self.owner, now + self.lease_s)
                except StoreUnavailableError as exc:  # an outage: one line, no traceback
                    log.warning(
                        "job %s: its lease was not renewed (%s); the work goes on", job.id, exc
                    )
                    continue
                except Exception:
                    log.warning(
                        "job %s: its lease was not renewed (store error); the work goes on",
                        job.id,
                        exc_info=True,
                    )
                    continue
                if not renewed:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    raise _LeaseLost(job.id)
                # busy, still alive: the jobs it accepts stay its own past their deadlines
                await self._note_alive(self._accepts(), now, renew=True)
        finally:
            if not task.done():  # this runner was stopped: stop the work too
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _finish_in_loop(
        self,
        job: JobRow,
        state: str,
        result: dict[str, Any],
        retry_at: float | None = None,
        handed_back: bool = False,
    ) -> bool:
        """:meth:`_finish` from the runner's loop, tried again while the store is out of reach
        (``StoreUnavailableError``): after stamina's backoff (0.1 s doubled, at most
        :data:`POLL_BACKOFF_MAX_S`, plus up to 0.1 s of jitter) for up to ``lease_s``; the
        loop could claim nothing meanwhile. A write the store never takes leaves the job to
        wait out its lease, its attempt counted (logged; False). Stopped while it waits
        (:meth:`stop` cancels the loop), it writes once more before it ends, as a stop hands
        a running job back. A re-check: a job whose last attempt's ``done`` met a one-write
        outage was failed at its next claim as if its runner had died."""
        try:
            async for attempt in stamina.retry_context(
                on=self._write_retried(job, state),
                attempts=None,
                timeout=self.lease_s,
                wait_initial=0.1,
                wait_max=POLL_BACKOFF_MAX_S,
                wait_jitter=0.1,
            ):
                with attempt:
                    return await self._finish(job, state, result, retry_at, handed_back)
        except StoreUnavailableError as exc:
            log.warning(
                "job %s (%s) not finished %s: the store is unavailable (%s); its lease runs out",
                job.id, job.kind, state, exc,
            )  # fmt: skip
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._finish(job, state, result, retry_at, handed_back), STORE_RETRY_S
                )
            raise
        return False

    def _write_retried(self, job: JobRow, state: str) -> Callable[[BaseException], bool]:
        """stamina's hook for :meth:`_finish_in_loop`: whether a failed write of ``job``'s
        ``state`` is tried again (the store out of reach, the runner not stopping), logged
        with the job's id and kind (stamina's own warning names no job; each retry counts
        in ``boundgate_retries_total{operation="job_poll"}``, the loop's)."""

        def retried(exc: BaseException) -> bool:
            if not isinstance(exc, StoreUnavailableError) or self.stopping:
                return False
            log.warning(
                "job %s (%s): %s not written, the store is unavailable (%s); trying again",
                job.id, job.kind, state, exc,
            )  # fmt: skip
            return True

        return retried

    async def _finish(
        self,
        job: JobRow,
        state: str,
        result: dict[str, Any],
        retry_at: float | None = None,
        handed_back: bool = False,
    ) -> bool:
        """Finish the job as its lease holder; False if the lease was another runner's."""
        return await self.store.finish_job(
            job.id,
            self.owner,
            state,
            json.dumps(result, sort_keys=True),
            retry_at=retry_at,
            handed_back=handed_back,
        )
