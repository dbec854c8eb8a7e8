"""Batches a process that died left without a job, or with a job that ended without ending
them: found when a gateway starts (and every ``scheduler.replan_s``), queued again or ended,
once across processes (``server/batches/upkeep.py``)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import openai
import pytest

from boundgate.assembly import build_app, build_gateway, build_store
from boundgate.clock import FakeClock
from boundgate.gateway import Gateway
from boundgate.scheduler.jobs import new_job_id
from boundgate.server.batches.files import new_file
from boundgate.server.batches.objects import TERMINAL, create_batch, iso_utc
from boundgate.server.batches.running import run_batch
from boundgate.server.batches.upkeep import JOB_FAILED, BatchRecovery, batch_failed
from boundgate.store import BatchLineRow, Store
from boundgate.tenants import Tenant
from boundgate.testing import ThreadedServer
from helpers import Live, arun, fake_settings, wait_until
from test_batches import START, lines

REQUEST_S = 2.0  # scheduler.batch_request_s's default


def test_a_batch_stored_without_its_job_is_queued_at_start_and_completes(
    tmp_path: Path,
) -> None:
    """An audit's finding: a process that died between storing a batch (``put_batch``) and
    queuing its job (``jobs.submit``) left the batch ``in_progress`` for good; only a cancel
    ended it. The next start finds it, queues its job under the id its object names, and
    the batch runs and completes."""
    settings = fake_settings(tmp_path)
    settings.scheduler.poll_s = 0.05
    clock = FakeClock(start=START)
    with ThreadedServer(app := build_app(settings, clock=clock)) as srv:
        live = Live(srv, app)
        client: openai.OpenAI = live.openai()
        f = client.files.create(file=("in.jsonl", lines(3)), purpose="batch")
        b = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )  # deferred to the afternoon's solar dip
        live.http.close()
    job_id = b.model_extra["boundgate"]["job_id"]
    db = sqlite3.connect(settings.db_path)  # the batch as stored, its job never queued
    try:
        with db:
            assert db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1
    finally:
        db.close()
    settings.scheduler.policy = "now"
    settings.scheduler.replan_s = 1e9  # found as the gateway starts, not on a later round
    with ThreadedServer(app := build_app(settings, clock=clock)) as srv:
        live = Live(srv, app)
        client = live.openai()
        done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
        assert done.request_counts.completed == 3
        assert done.model_extra["boundgate"]["scheduled_start"] == iso_utc(START)  # as re-planned
        # the batch ends inside its job's run; the runner records the job done after it
        # returns (a busy CI machine read it "running" in between)
        (job,) = wait_until(
            lambda: (js := arun(live.gateway.store.jobs())) and js[0].state == "done" and js
        )
        assert (job.id, job.state, job.attempts) == (job_id, "done", 1)
        live.http.close()


@pytest.fixture(params=["sqlite", "postgres"])
def two_gateways(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Two gateways on one store, as two processes (workers, replicas) would be, at START."""
    settings = fake_settings(tmp_path)
    settings.reuse.enabled = False
    clock = FakeClock(start=START)

    def store() -> Store | None:  # None: the settings' SQLite file
        if request.param == "sqlite":
            return None
        from boundgate.store.postgres import PostgresStore

        return PostgresStore(request.getfixturevalue("postgres_schema"), max_size=4)

    gateways = [build_gateway(settings, store=store(), clock=clock) for _ in range(2)]
    for gw in gateways:
        gw.store.open()
    yield gateways, clock
    for gw in gateways:
        gw.store.close()


async def _batch(gw: Gateway) -> dict[str, Any]:
    """A batch of 2 lines created as ``POST /v1/batches`` creates it (its job queued)."""
    f = await new_file(gw, "acme", "batch", "in.jsonl", lines(2))
    ctx = gw.context(Tenant(name="acme"), "/v1/batches")
    return await create_batch(
        gw, ctx, input_file_id=f.id, endpoint="/v1/chat/completions",
        completion_window="24h", metadata=None, request_s=REQUEST_S,
    )  # fmt: skip


def test_processes_recovering_together_queue_a_batch_without_a_job_once(
    two_gateways: tuple[list[Gateway], FakeClock],
) -> None:
    gateways, _ = two_gateways
    a = gateways[0]

    async def scenario() -> tuple[list[int], dict[str, str]]:
        made = await _batch(a)
        # the same batch stored again under another id, its job never queued
        stray = {**made, "id": "batch_stray"}
        stray["boundgate"] = {**made["boundgate"], "job_id": new_job_id()}
        await a.store.put_batch("batch_stray", "acme", a.clock.time(), json.dumps(stray))
        sweeps = [BatchRecovery(gw, REQUEST_S) for gw in gateways]
        queued = list(await asyncio.gather(*(sweep() for sweep in sweeps)))
        queued += await asyncio.gather(*(sweep() for sweep in sweeps))  # nothing left
        jobs = {j.id: json.loads(j.payload)["batch"] for j in await a.store.jobs()}
        assert jobs[stray["boundgate"]["job_id"]] == "batch_stray"
        return queued, jobs

    queued, jobs = asyncio.run(scenario())
    assert sum(queued) == 1 and queued[2:] == [0, 0]  # one of the two queued it
    assert len(jobs) == 2  # the first batch's job, and the stray's: once


def test_a_batch_whose_job_ended_without_ending_it_is_ended_after_a_sweep(
    two_gateways: tuple[list[Gateway], FakeClock],
) -> None:
    """A job failed for good (or was cancelled) and its process died before the failure hook
    (or the cancel) ended the batch: the batch ends ``failed`` with the hook's reason (or
    ``cancelled``), once a sweep before found it so too (a live hook is done by then)."""
    gateways, clock = two_gateways
    gw = gateways[0]
    store = gw.store

    async def status(batch_id: str) -> dict[str, Any]:
        row = await store.get_batch(batch_id)
        assert row is not None
        return dict(json.loads(row[1]))

    async def scenario() -> tuple[list[int], list[str], list[dict[str, Any]]]:
        made = {b["boundgate"]["job_id"]: b for b in [await _batch(gw) for _ in range(3)]}
        claimed = await store.claim_job("runner_dead", START + 24 * 3600, 60.0)
        assert claimed is not None
        assert await store.finish_job(claimed.id, "runner_dead", "failed", None)
        failed = made.pop(claimed.id)  # (whichever the runner took)
        cancelled, waiting = made.values()
        assert await store.cancel_job(cancelled["boundgate"]["job_id"])
        ids = [b["id"] for b in (failed, cancelled, waiting)]
        sweep = BatchRecovery(gw, REQUEST_S)
        acted = [await sweep()]  # found: their hooks may be ending them right now
        first = [(await status(i))["status"] for i in ids]
        clock.advance(3600)
        acted += [await sweep(), await sweep()]
        return acted, first, [await status(i) for i in ids]

    acted, first, (failed, cancelled, waiting) = asyncio.run(scenario())
    assert first == ["in_progress"] * 3
    assert acted == [0, 2, 0]
    assert failed["status"] == "failed" and failed["boundgate"]["state"] == "failed"
    assert failed["errors"]["data"][0]["message"] == JOB_FAILED
    assert failed["failed_at"] == int(START + 3600)
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"] == int(START + 3600)
    assert waiting["status"] == "in_progress"  # its job is pending: not touched


class EndsTogether:
    """The store behind it, except that the first ``writers`` compare-and-sets that end a
    batch (their new object's status is an ended one) wait for each other: every writer has
    read the batch as not ended before any of them ends it, as when a batch's run closes
    while its job's failure hook (or a cancel, a recovery) ends it too."""

    def __init__(self, store: Store, writers: int = 2) -> None:
        self._store = store
        self._writers = writers
        self._all_there = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def replace_batch(self, batch_id: str, old: str, new: str, *files: Any) -> bool:
        if self._writers > 0 and json.loads(new)["status"] in TERMINAL:
            self._writers -= 1
            if self._writers == 0:
                self._all_there.set()
            await self._all_there.wait()
        return bool(await self._store.replace_batch(batch_id, old, new, *files))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_run_closing_as_its_failure_hook_ends_the_batch_writes_one_set_of_files(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """An audit's finding: the run's close and the failure hook (or a cancel) each wrote the
    batch's output and error files before their compare-and-set, so when both ended the batch
    at once the loser's files stayed, orphaned, in the tenant's file list. The files now go
    with the compare-and-set: whoever ends the batch writes them, the other writes none."""
    settings = fake_settings(tmp_path)
    settings.reuse.enabled = False
    if kind == "sqlite":
        store: Store = build_store(settings)
    else:
        from boundgate.store.postgres import PostgresStore

        store = PostgresStore(request.getfixturevalue("postgres_schema"), max_size=4)
    gw = build_gateway(settings, store=EndsTogether(store), clock=FakeClock(start=START))  # type: ignore[arg-type]
    gw.store.open()
    try:

        async def scenario() -> tuple[dict[str, Any], list[str]]:
            made = await _batch(gw)
            # a run before (its process died) answered line 0: whoever ends the batch has a
            # file to write
            record = json.dumps({"custom_id": "req-0"})
            await store.put_batch_line(BatchLineRow(made["id"], 0, "output", record, 0.5, 0.25, 0))
            await asyncio.gather(
                run_batch(gw, {"batch": made["id"]}),
                batch_failed(gw, {"batch": made["id"]}, "the job failed"),
            )
            _, body = await store.get_batch(made["id"]) or ("", "")
            files = await store.files(purpose="batch_output")
            return json.loads(body), [f.id for f in files]

        batch, files = asyncio.run(scenario())
    finally:
        gw.store.close()
    assert batch["status"] in ("completed", "failed")  # whichever ended it first
    kept = [batch[k] for k in ("output_file_id", "error_file_id") if batch[k] is not None]
    assert files == kept  # no second set beside the batch's own


def test_a_shutdown_lets_the_batch_line_in_flight_finish_and_the_restart_goes_on(
    tmp_path: Path,
) -> None:
    """A SIGTERM during a batch cut the line in flight; the restarted process ran it again,
    its energy spent twice. At shutdown the batch now finishes that line (within
    ``scheduler.stop_drain_s``) and hands its job back; the next process answers the rest, and
    every line is answered once."""
    settings = fake_settings(tmp_path)
    settings.scheduler.poll_s = 0.05
    settings.scheduler.policy = "now"
    settings.scheduler.stop_drain_s = 120.0  # a bound against a hang; the line takes ~1 s
    app = build_app(settings)
    fake = app.state.gateway.backends["fake"]
    fake.token_delay_s = 0.1  # about a second a line
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        client: openai.OpenAI = live.openai()
        f = client.files.create(file=("in.jsonl", lines(3)), purpose="batch")
        b = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        wait_until(lambda: fake.calls >= 1)  # the first line is being generated
        live.http.close()
    # stopped mid-line: that line was finished and kept, no further line started
    store = build_store(settings)
    store.open()
    try:
        kept = arun(store.batch_lines(b.id))
        [job] = arun(store.jobs())
    finally:
        store.close()
    assert [r.line for r in kept] == [0] and kept[0].kind == "output"
    assert fake.calls == 1
    assert (job.state, job.attempts) == ("pending", 0)
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        client = live.openai()
        done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
        assert done.request_counts.completed == 3
        assert app.state.gateway.backends["fake"].calls == 2  # lines 1 and 2 only
        ledger = live.ledger()
        answered = [r.extra.get("custom_id") for r in ledger.values() if r.extra.get("batch_id")]
        assert sorted(answered) == ["req-0", "req-1", "req-2"]  # each line once
        live.http.close()
