"""Background work refused for good: a request whose worst case is more than the whole daily
budget it runs under is a 400 ``invalid_value`` (``Gateway._beyond_budget``), which no wait
makes room for. A job that meets it ends saying why (a round of variants keeps what it made;
a rebind fails at once) instead of being retried after a backoff as if the refusal were
transient; a 429 (the budget spent for now) is still waited out (``test_documents.py``).

Gateways are driven in-process (``Gateway.complete``, ``JobRunner.run_once``) on a real
SQLite store and a fake clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai

from boundgate.assembly import build_app
from boundgate.backends.base import GenerationRequest, Message
from boundgate.clock import FakeClock
from boundgate.errors import (
    ErrorCode,
    InvalidRequestError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
)
from boundgate.gateway import Gateway
from boundgate.scheduler.jobs import JobQueue
from boundgate.scheduler.runner import JobRunner
from boundgate.store import SQLiteStore, Store
from boundgate.tenants import Tenant
from helpers import Live, arun, fake_settings, job_replica, job_runner, wait_until

START = 1_900_000_000.0
HAIKU = "Write a haiku about autumn."
Q = "What is the boiling point of water at sea level?"


def gateway(tmp: Path, store: Store, clock: FakeClock, version: str = "v1") -> Gateway:
    return job_replica(tmp, store, clock, version=version)


def runner(store: Store, gw: Gateway, clock: FakeClock) -> JobRunner:
    """``gw``'s job runner as the server makes it (``helpers.job_runner``)."""
    assert gw.store is store
    runner_: JobRunner = job_runner(gw, clock)
    return runner_


def test_permanent_errors_are_the_4xx_that_no_retry_changes() -> None:
    assert InvalidRequestError("too big").permanent
    assert not RateLimitError("later", retry_after=60.0).permanent
    assert not UpstreamError("down").permanent
    assert not UpstreamTimeoutError("slow").permanent


def test_a_round_of_variants_beyond_the_whole_budget_ends_saying_why(tmp_path: Path) -> None:
    """A round of variants runs under the key that asked, while it is active, else under the
    strictest of its tenant's keys. Here the asking key was revoked and the tenant's other
    key's whole daily budget is smaller than the prompt's worst case: each draw is a 400
    ``invalid_value``. The round was failed and retried after a backoff as if the refusal
    were transient (a traceback in the log each time); it ends now, done, its result saying
    why, and is not run again."""
    store = SQLiteStore(tmp_path / "v.db")
    store.open()
    clock = FakeClock(start=START)

    async def main() -> None:
        gw = gateway(tmp_path / "gw", store, clock)
        asker = await store.create_key("acme")
        await store.create_key("acme", daily_tokens=50)
        for user in ("u1", "u2"):  # two askers: a round of variants is queued
            req = GenerationRequest(
                model="fake",
                messages=[Message("user", HAIKU)],
                temperature=1.0,
                max_tokens=100,
                user=user,
            )
            ctx = gw.context(Tenant.of_key(asker.key), "/v1/chat/completions")
            await gw.complete(ctx, req)
        await store.revoke_key(asker.key.id)
        run = runner(store, gw, clock)
        assert await run.run_once()
        (job,) = [j for j in await store.jobs() if j.kind == "variants"]
        assert (job.state, job.attempts) == ("done", 1), job
        result = json.loads(job.result or "{}")
        assert result["variants"] == 0, result
        refused = result["refused"]
        assert refused["code"] == ErrorCode.INVALID_VALUE and refused["param"] == "max_tokens"
        assert "daily token budget of 50" in refused["message"]
        clock.advance(7200.0)  # past any retry's backoff: nothing is due
        assert not await run.run_once()
        # the refused draw gave its novelty unit back; its ledger row says 400
        rows = [r for r in await store.ledger() if r.status == 400]
        assert len(rows) == 1 and rows[0].error_code == ErrorCode.INVALID_VALUE
        await gw.drain()

    try:
        arun(main())
    finally:
        store.close()


def test_a_rebind_beyond_the_whole_budget_fails_at_once(tmp_path: Path) -> None:
    """A stale document's rebind runs under the strictest of its tenant's keys; when that
    key's whole daily budget cannot hold the recomputation, the 400 fails the job at once with
    the refusal as its result (it was tried three times, after a minute and two, as if it
    were transient), and the document stays stale (served as it is, marked so)."""
    store = SQLiteStore(tmp_path / "r.db")
    store.open()
    clock = FakeClock(start=START)

    async def main() -> None:
        v1 = gateway(tmp_path / "gw", store, clock)
        await v1.reuse.load()  # type: ignore[union-attr]
        req = GenerationRequest(
            model="fake", messages=[Message("user", Q)], temperature=0, max_tokens=60, user="u"
        )
        await v1.complete(v1.context(Tenant("acme"), "/v1/chat/completions"), req)
        await v1.drain()
        (doc,) = await store.documents()  # bound at its first asker
        await store.set_document_state(doc.id, "stale")
        await store.create_key("acme", daily_tokens=20)
        v2 = gateway(tmp_path / "gw", store, clock, version="v2")  # a replica upgraded
        await v2.reuse.load()  # type: ignore[union-attr]
        await JobQueue(store, clock).submit("rebind", {"document": doc.id, "version": "v2"})
        run = runner(store, v2, clock)
        assert await run.run_once()
        (job,) = [j for j in await store.jobs() if j.kind == "rebind"]
        assert (job.state, job.attempts) == ("failed", 1), job
        result = json.loads(job.result or "{}")
        assert result["code"] == ErrorCode.INVALID_VALUE and result["status"] == 400, result
        assert "daily token budget of 20" in result["error"]
        clock.advance(7200.0)
        assert not await run.run_once()  # not tried again
        assert [d.state for d in await store.documents()] == ["stale"]
        await v2.drain()

    try:
        arun(main())
    finally:
        store.close()


def test_a_job_refused_for_good_tells_its_failure_hook_and_a_429_still_waits(
    tmp_path: Path,
) -> None:
    """The runner's rule, whatever the kind: a permanent refusal fails the job at once and its
    kind's ``on_failure`` hook is told (a batch is ended ``failed``); a 429 holds it until
    its Retry-After, as before."""
    store = SQLiteStore(tmp_path / "j.db")
    store.open()
    clock = FakeClock(start=START)
    told: list[tuple[dict[str, Any], str]] = []

    async def refused(payload: dict[str, Any]) -> dict[str, Any]:
        raise InvalidRequestError("never fits", param="max_tokens")

    async def later(payload: dict[str, Any]) -> dict[str, Any]:
        raise RateLimitError("spent for today", retry_after=600.0)

    async def hook(payload: dict[str, Any], error: str) -> None:
        told.append((payload, error))

    async def main() -> None:
        queue = JobQueue(store, clock)
        await queue.submit("refused", {"n": 1})
        run = JobRunner(
            store,
            {"refused": refused, "later": later},
            clock=clock,
            poll_s=1.0,
            replan_s=3600.0,
            on_failure={"refused": hook},
        )
        assert await run.run_once()
        (job,) = await store.jobs()
        assert (job.state, job.attempts) == ("failed", 1)
        assert told == [({"n": 1}, "never fits")]
        await queue.submit("later", {"n": 2})
        assert await run.run_once()
        (held,) = [j for j in await store.jobs() if j.kind == "later"]
        assert held.state == "pending" and held.not_before >= clock.time() + 600.0 - 1e-6

    try:
        arun(main())
    finally:
        store.close()


def test_a_batch_line_beyond_the_whole_budget_is_that_lines_400(tmp_path: Path) -> None:
    """Batch lines were already right, and stay so: a line the whole budget can never hold
    gets its 400 in the error file, the batch goes on and completes (a 429 line likewise
    gets its 429: ``test_batches.py``); nothing is retried."""
    settings = fake_settings(tmp_path)
    settings.scheduler.policy = "now"
    settings.scheduler.poll_s = 0.05
    app = build_app(settings)
    with Live.in_process(app) as live:
        key = arun(live.gateway.store.create_key("acme", daily_tokens=500))
        client: openai.OpenAI = live.openai(key.secret)

        def line(i: int, max_tokens: int) -> str:
            body = {
                "model": "fake",
                "messages": [{"role": "user", "content": f"Question number {i}?"}],
                "temperature": 0,
                "max_tokens": max_tokens,
            }
            url = "/v1/chat/completions"
            return json.dumps({"custom_id": f"r{i}", "method": "POST", "url": url, "body": body})

        content = "\n".join([line(0, 20), line(1, 1000), line(2, 20)]).encode()
        f = client.files.create(file=("in.jsonl", content), purpose="batch")
        b = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
        assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
        assert done.error_file_id is not None
        (error,) = [
            json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()
        ]
        assert error["custom_id"] == "r1" and error["response"]["status_code"] == 400
        assert error["response"]["body"]["error"]["code"] == ErrorCode.INVALID_VALUE
        (job,) = arun(live.gateway.store.jobs())
        assert (job.state, job.attempts) == ("done", 1)
