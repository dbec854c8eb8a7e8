"""OpenAI Batch API end to end: files, scheduling into clean hours (fake clock), results."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest

from boundgate.assembly import build_app
from boundgate.clock import FakeClock
from boundgate.grid import BundledCarbonSource
from boundgate.scheduler.policy import CarbonAwareStart
from boundgate.store import SQLiteStore
from boundgate.testing import ThreadedServer
from helpers import Live, fake_settings, wait_until

# 2023-06-01 05:00 UTC: morning in Germany, before the solar dip that a 24 h window can reach
START = datetime(2023, 6, 1, 5, tzinfo=UTC).timestamp()


@pytest.fixture
def batch_live(tmp_path: Path) -> Any:
    settings = fake_settings(tmp_path)
    settings.scheduler.poll_s = 0.05
    clock = FakeClock(start=START)
    app = build_app(settings, clock=clock)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        yield live, clock
        live.http.close()


def lines(n: int) -> bytes:
    return "\n".join(
        json.dumps(
            {
                "custom_id": f"req-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "fake",
                    "messages": [{"role": "user", "content": f"Question number {i}?"}],
                    "temperature": 0,
                },
            }
        )
        for i in range(n)
    ).encode()


def test_batch_is_scheduled_into_clean_hours_and_returns_openai_results(batch_live: Any) -> None:
    live, clock = batch_live
    client: openai.OpenAI = live.openai()
    f = client.files.create(file=("in.jsonl", lines(3)), purpose="batch")
    assert f.purpose == "batch" and f.bytes > 0
    b = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    info = b.model_extra["boundgate"]
    scheduled = datetime.strptime(info["scheduled_start"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    # the start the carbon-aware policy picks for this window
    policy = CarbonAwareStart(BundledCarbonSource(), "DE-LU")
    expected = policy("batch", START, START + 24 * 3600, 60.0)
    assert scheduled.timestamp() == pytest.approx(expected if expected > START else START, abs=1)
    assert START <= scheduled.timestamp() <= START + 24 * 3600
    assert scheduled.timestamp() > START  # a June morning in DE: the solar dip is later
    time.sleep(0.3)  # the runner polls; nothing is due yet
    assert client.batches.retrieve(b.id).request_counts.completed == 0
    clock.set(scheduled.timestamp())
    done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
    assert done.request_counts.total == 3 and done.request_counts.completed == 3
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in out) == ["req-0", "req-1", "req-2"]
    for o in out:
        body = o["response"]["body"]
        assert o["response"]["status_code"] == 200
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
    bg = done.model_extra["boundgate"]
    assert bg["state"] == "done" and bg["energy_wh"] > 0 and bg["carbon_g"] > 0
    assert bg["shifting_saved_g"] == pytest.approx(bg["run_now_carbon_g"] - bg["carbon_g"])
    # every line went through the pipeline: a ledger row each
    rows = [o["response"]["request_id"] for o in out]
    ledger = live.ledger()
    assert all(r in ledger for r in rows)
    # the report counts the batch and its shifting saving, in the period it finished
    (period,) = [
        p for p in asyncio.run(live.gateway.store.report_by_period(START, 3600)) if p.batches
    ]
    assert period.batches == 1 and period.start <= done.completed_at < period.start + 3600
    assert period.shifting_saved_gco2 == pytest.approx(bg["shifting_saved_g"])


def test_cancel_before_start_and_bad_batches(batch_live: Any) -> None:
    live, _ = batch_live
    client: openai.OpenAI = live.openai()
    f = client.files.create(file=("in.jsonl", lines(2)), purpose="batch")
    b = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    # deferred to the afternoon solar dip (see the first test), so it has not started
    assert b.model_extra["boundgate"]["scheduled_start"] > "2023-06-01T05:00:00Z"
    c = client.batches.cancel(b.id)
    assert c.status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.batches.cancel(b.id)
    bad = client.files.create(file=("bad.jsonl", b'{"custom_id": "x"}\nnot json'), purpose="batch")
    with pytest.raises(openai.BadRequestError) as exc:
        client.batches.create(
            input_file_id=bad.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert "line 1" in str(exc.value)
    assert exc.value.code == "invalid_value" and exc.value.param == "input_file_id"
    line = b'{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    dup = client.files.create(file=("dup.jsonl", line + line), purpose="batch")
    with pytest.raises(openai.BadRequestError) as exc:
        client.batches.create(
            input_file_id=dup.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert "duplicate custom_id" in str(exc.value) and exc.value.code == "invalid_value"
    with pytest.raises(openai.BadRequestError):
        client.batches.create(
            input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )


def test_batch_lines_yield_to_interactive_requests(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    settings.scheduler.policy = "now"
    settings.scheduler.poll_s = 0.05
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        client: openai.OpenAI = live.openai()
        fake = live.gateway.backends["fake"]
        fake.simulated_queue = 1  # an interactive request is waiting for the model
        f = client.files.create(file=("in.jsonl", lines(2)), purpose="batch")
        b = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="1h"
        )
        time.sleep(0.5)
        assert client.batches.retrieve(b.id).request_counts.completed == 0
        fake.simulated_queue = 0
        done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
        assert done.request_counts.completed == 2
        live.http.close()


def test_pending_jobs_are_replanned_on_a_new_forecast(tmp_path: Path) -> None:
    from boundgate.scheduler.jobs import JobQueue
    from boundgate.store import SQLiteStore

    store = SQLiteStore(tmp_path / "j.db")
    store.open()
    clock = FakeClock(start=START)
    offsets = [2 * 3600.0]

    def policy(kind: str, now: float, deadline: float, duration_s: float) -> float:
        return now + offsets[0]

    try:
        queue = JobQueue(store, clock, policy)
        job_id = asyncio.run(
            queue.submit("batch", {"batch": "b"}, deadline_s=12 * 3600, duration_s=600)
        )
        (job,) = asyncio.run(store.jobs())
        assert job.not_before == START + 2 * 3600
        offsets[0] = 5 * 3600.0  # the new forecast prefers later
        clock.advance(3600)
        assert asyncio.run(queue.replan()) == 1
        (job,) = asyncio.run(store.jobs())
        assert job.id == job_id and job.not_before == START + 3600 + 5 * 3600
        assert asyncio.run(queue.replan()) == 0  # no change, no move
    finally:
        store.close()


def test_batch_lines_run_under_the_creating_keys_limits(tmp_path: Path) -> None:
    """Issue #13.4: batch lines ran as a bare tenant, outside the key's daily token budget,
    and their ledger rows had no key. Now they run as the key that created the batch: the
    budget is never exceeded, lines beyond it fail with the 429 error in the error file, and
    every line's ledger row carries the key."""
    settings = fake_settings(tmp_path)
    settings.scheduler.policy = "now"
    settings.scheduler.poll_s = 0.05
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(settings.db_path)
    store.open()
    budget = 1200  # each line reserves its prompt plus the default max_tokens (1024)
    key = asyncio.run(store.create_key("acme", daily_tokens=budget))
    store.close()
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        client: openai.OpenAI = live.openai(key.secret)
        f = client.files.create(file=("in.jsonl", lines(12)), purpose="batch")
        b = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
        assert done.request_counts.completed >= 1 and done.request_counts.failed >= 1
        errors = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
        for e in errors:
            assert e["response"]["status_code"] == 429
            assert e["response"]["body"]["error"]["code"] == "daily_token_budget_exceeded"
        rows = [r for r in live.ledger().values() if r.tenant == "acme"]
        assert rows and all(r.key_id == key.key.id for r in rows)
        assert sum(r.prompt_tokens + r.completion_tokens for r in rows) <= budget
        live.http.close()
