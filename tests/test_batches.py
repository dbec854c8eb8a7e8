"""OpenAI Batch API end to end: files, scheduling into clean hours (fake clock), results."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest

from boundgate.assembly import build_app
from boundgate.clock import FakeClock
from boundgate.errors import InvalidRequestError
from boundgate.grid import BundledCarbonSource
from boundgate.scheduler.policy import CarbonAwareStart
from boundgate.server.batches.lines import lines_model, parse_lines
from boundgate.server.batches.objects import with_progress
from boundgate.server.batches.protocol import Batch
from boundgate.settings import SchedulerSettings
from boundgate.store import SQLiteStore
from boundgate.testing import ThreadedServer
from helpers import Live, arun, assert_error, fake_settings, wait_until

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
    # and each row names its batch and line (an interrupted line's row too: same builder)
    named = {(ledger[o["response"]["request_id"]].extra.get("batch_id"),
              ledger[o["response"]["request_id"]].extra.get("custom_id")) for o in out}  # fmt: skip
    assert named == {(b.id, "req-0"), (b.id, "req-1"), (b.id, "req-2")}
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
    # a retried cancel (its answer lost) gets the cancelled batch as it is, not a 400
    again = client.batches.cancel(b.id)
    assert again.status == "cancelled" and again.cancelled_at == c.cancelled_at
    bad = client.files.create(file=("bad.jsonl", b'{"custom_id": "x"}\nnot json'), purpose="batch")
    with pytest.raises(openai.BadRequestError) as exc:
        client.batches.create(
            input_file_id=bad.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert "line 1" in str(exc.value)
    assert exc.value.code == "invalid_value" and exc.value.param == "input_file_id"
    line = _line("x", {"messages": ASK}) + b"\n"
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


def test_a_key_revoked_by_another_process_fails_the_lines_not_yet_run(tmp_path: Path) -> None:
    """An audit: the run read its key once, before its first line, so a batch went on
    answering (and spending) under a key revoked meanwhile. The key is read before every
    line: revoked by another store instance (another process) while line 1 runs, line 1
    completes and every later line fails with 401, as docs/api.md says."""
    settings = fake_settings(tmp_path)
    settings.scheduler.policy = "now"
    settings.scheduler.poll_s = 0.05
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(settings.db_path)
    store.open()
    key = asyncio.run(store.create_key("acme"))
    admin = asyncio.run(store.create_key("ops", admin=True))
    store.close()

    def revoke_elsewhere() -> None:
        other = SQLiteStore(settings.db_path)
        other.open()
        try:
            assert asyncio.run(other.revoke_key(key.key.id))
        finally:
            other.close()

    def answers(question: str) -> str:
        if "number 1?" in question:  # (on the event loop: the other store in a thread)
            thread = threading.Thread(target=revoke_elsewhere)
            thread.start()
            thread.join()
        return "forty-two"

    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        live.gateway.backends["fake"].answers = answers
        client: openai.OpenAI = live.openai(key.secret)
        f = client.files.create(file=("in.jsonl", lines(4)), purpose="batch")
        b = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        ops: openai.OpenAI = live.openai(admin.secret)
        done = wait_until(lambda: (r := ops.batches.retrieve(b.id)).status == "completed" and r)
        assert (done.request_counts.completed, done.request_counts.failed) == (2, 2)
        assert done.error_file_id is not None
        errors = [json.loads(x) for x in ops.files.content(done.error_file_id).text.splitlines()]
        assert [e["custom_id"] for e in errors] == ["req-2", "req-3"]
        for e in errors:
            assert e["response"]["status_code"] == 401
            assert e["response"]["body"]["error"]["code"] == "invalid_api_key"
        rows = [r for r in live.ledger().values() if r.tenant == "acme"]
        assert sorted(r.status for r in rows) == [200, 200, 401, 401]
        live.http.close()


def _line(cid: str, body: dict[str, Any], url: str = "/v1/chat/completions") -> bytes:
    return json.dumps({"custom_id": cid, "method": "POST", "url": url, "body": body}).encode()


ASK = [{"role": "user", "content": "Question number 1?"}]


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        # a lone surrogate passed creation, then failed every run of the batch
        (_line("b", {"messages": [{"role": "user", "content": "\ud800"}]}),
         "body.messages[0].content: lone surrogate"),
        # NUL: PostgreSQL's text cannot hold it (a trial: a 500 at run time on a shared store)
        (_line("b", {"messages": [{"role": "user", "content": "a\u0000b"}]}),
         "body.messages[0].content: holds the NUL character"),
        (_line("b\u0000", {"messages": ASK}), "custom_id holds the NUL character"),
        (_line("b", {"messages": [{"role": "wizard", "content": "x"}]}), "body.messages[0].role"),
        (_line("b", {"messages": ASK, "temperature": "0.2"}), "body.temperature"),
        # served by the default model, where OpenAI refuses it (a line left without one is)
        (_line("b", {"messages": ASK, "model": None}), "body.model: Input should be a valid"),
        (_line("b", {"messages": ASK, "stop": ""}), "body.stop"),
        (_line("b", {"messages": ASK, "stop": ["x", ""]}), "body.stop"),
        (_line("b", {"messages": ASK, "tools": [{"type": "function"}]}), "body.tools"),
        (_line("b", {}), "body.messages: required"),
        (_line("b", {"messages": [{"role": "user", "content": None}]}),
         "body.messages[0].content"),
        (_line("b", {"messages": ASK, "response_format": {"type": "bogus"}}),
         "body.response_format"),
        (_line("b", {"messages": ASK, "logit_bias": {"abc": 5}}), "body.logit_bias"),
        (_line("b", {"messages": ASK, "seed": 2**64}), "body.seed"),
        (_line("b", {"messages": ASK, "max_tokens": 10**20}), "body.max_tokens"),
        # a trial's: accepted, then failed at run time
        (_line("b", {"messages": ASK, "boundgate": {"reuse": "bogus"}}), "boundgate.reuse"),
        (_line("b", {"messages": ASK, "presence_penalty": 3}), "body.presence_penalty"),
        (b"[" * 50_000, "nested too deeply"),  # RecursionError: was a 500
        (_line("b", {"messages": ASK, "x": json.loads("[" * 500 + "]" * 500)}),
         "nested too deeply"),  # parsed, then a 500 at run time
        (b'{"custom_id": 5, "method": "POST"}', "custom_id must be a string (got 5)"),
        (b'{"method": "POST"}', "custom_id is required"),
        (b'{"custom_id": "", "method": "POST"}', "custom_id must not be empty"),  # "required"
        # a trial's: an unknown key was dropped unseen (OpenAI's line has these four only)
        (_line("b", {"messages": ASK})[:-1] + b', "metdata": {}}',
         "unknown key 'metdata'; a batch's metadata goes with the request that creates it"),
        (_line("b", {"messages": ASK})[:-1] + b', "priority": 1}',
         "unknown key 'priority'; a line has only custom_id, method, url and body"),
        (b'{"custom-id": "b", "method": "POST", "url": "/v1/chat/completions", "body": {}}',
         "unknown key 'custom-id'; did you mean 'custom_id'?"),
        (_line("b", {"messages": ASK}).replace(b'"body"', b'"Body"'),
         "unknown key 'Body'; did you mean 'body'?"),
        (b'{"custom_id": "b", "n": ' + b"9" * 5000 + b"}", "more than 4300 digits"),  # a 500
        (_line("b", {"messages": ASK})[:-1] + b', "custom_id": "c"}',
         "the member 'custom_id' is given twice in one object"),
        # a trial's: a line without method ran (OpenAI requires "POST")
        (b'{"custom_id": "b", "url": "/v1/chat/completions", "body": {"messages": []}}',
         'method is required (it must be "POST")'),
        (_line("b", {"messages": ASK}).replace(b'"POST"', b'"GET"'),
         'method must be POST (got "GET")'),
        (_line("b", {"messages": ASK}, url="/v1/completions"),
         "url must be the batch's endpoint /v1/chat/completions (got \"/v1/completions\")"),
    ],
)  # fmt: skip
def test_every_line_is_checked_when_the_batch_is_created(
    fake_live: Live, bad: bytes, says: str
) -> None:
    client: openai.OpenAI = fake_live.openai()
    good = _line("a", {"messages": ASK})
    f = client.files.create(file=("in.jsonl", good + b"\n" + bad + b"\n"), purpose="batch")
    r = fake_live.http.post(
        "/v1/batches",
        json={"input_file_id": f.id, "endpoint": "/v1/chat/completions"},
    )
    err = assert_error(r, 400, param="input_file_id")
    assert err["message"].startswith("line 2") and says in err["message"], err["message"]
    assert not arun(fake_live.gateway.store.jobs())  # nothing was queued


def test_text_completion_lines_are_checked_too(fake_live: Live) -> None:
    client: openai.OpenAI = fake_live.openai()
    bad = _line("a", {"prompt": "hi", "suffix": "x"}, url="/v1/completions")
    empty_stop = _line("b", {"prompt": "hi", "stop": ""}, url="/v1/completions")
    best_of = _line("c", {"prompt": "hi", "best_of": 3}, url="/v1/completions")
    null_model = _line("d", {"prompt": "hi", "model": None}, url="/v1/completions")
    for content, says in (
        (bad, "body.suffix"),
        (empty_stop, "body.stop"),
        (best_of, "body.best_of"),
        (null_model, "body.model"),
    ):
        f = client.files.create(file=("in.jsonl", content), purpose="batch")
        r = fake_live.http.post(
            "/v1/batches", json={"input_file_id": f.id, "endpoint": "/v1/completions"}
        )
        err = assert_error(r, 400, param="input_file_id")
        assert err["message"].startswith("line 1") and says in err["message"]


def test_an_unknown_input_file_is_404_naming_input_file_id(fake_live: Live) -> None:
    """A trial's 404 named ``file_id``, a parameter the request does not have."""
    r = fake_live.http.post(
        "/v1/batches",
        json={"input_file_id": "file-nope", "endpoint": "/v1/chat/completions"},
    )
    err = assert_error(r, 404, param="input_file_id", code="not_found")
    assert "file-nope" in err["message"]
    # the file routes name theirs as before
    assert_error(fake_live.http.get("/v1/files/file-nope"), 404, param="file_id")


def test_a_list_after_an_unknown_cursor_is_404_not_an_empty_last_page(fake_live: Live) -> None:
    """A break-it trial: listing files with ``after`` a file another client had just deleted
    answered an empty last page (``has_more: false``) where 48 files were left, and the SDK's
    pagination stopped there silently. A cursor naming nothing of the tenant's is 404."""
    http = fake_live.http
    ids = [
        http.post(
            "/v1/files",
            files={"file": ("in.jsonl", lines(1))},
            data={"purpose": "batch"},
        ).json()["id"]
        for _ in range(3)
    ]
    newest = http.get("/v1/files", params={"limit": 1}).json()
    assert newest["data"][0]["id"] == ids[-1]
    assert http.delete(f"/v1/files/{ids[-1]}").json()["deleted"]
    assert_error(http.get("/v1/files", params={"after": ids[-1]}), 404, param="after")
    assert_error(http.get("/v1/batches", params={"after": "batch_nope"}), 404, param="after")
    # a cursor at the end of the list is an empty last page, as before
    last = http.get("/v1/files", params={"after": ids[0]}).json()
    assert not [f for f in last["data"] if f["id"] in ids] and last["has_more"] is False


def test_a_misspelled_batch_parameter_is_400_naming_the_known_one(fake_live: Live) -> None:
    """A trial's ``metdata`` was "metdata: Extra inputs are not permitted" (``invalid_value``),
    with no word of ``metadata``; chat completions name the parameter a typo resembles."""
    create = {"input_file_id": "file-x", "endpoint": "/v1/chat/completions"}
    r = fake_live.http.post("/v1/batches", json={**create, "metdata": {"a": "b"}})
    err = assert_error(r, 400, param="metdata", code="unknown_parameter")
    assert err["message"] == "Unknown parameter: 'metdata'. Did you mean 'metadata'?"
    r = fake_live.http.post("/v1/batches", json={**create, "priority": 1})  # no typo
    assert_error(r, 400, param="priority", code="invalid_value")


def test_an_input_file_with_a_byte_order_mark_is_read(fake_live: Live) -> None:
    """A trial's file from a Windows tool, starting with a UTF-8 BOM, was refused with
    Python's "Unexpected UTF-8 BOM (decode using utf-8-sig)"."""
    client: openai.OpenAI = fake_live.openai()
    content = "\ufeff".encode() + _line("a", {"messages": ASK}) + b"\n"
    f = client.files.create(file=("in.jsonl", content), purpose="batch")
    r = fake_live.http.post(
        "/v1/batches", json={"input_file_id": f.id, "endpoint": "/v1/chat/completions"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["request_counts"]["total"] == 1


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (_line("b", {"messages": ASK, "temperature": float("nan")}),
         "line 2 (custom_id 'b'): body.temperature: must be a finite number"),
        (_line("b", {"messages": ASK}).replace(b'"POST"', b'"GET"'),
         "line 2 (custom_id 'b'): method must be POST"),
        (_line("b", {"messages": ASK})[:-1] + b', "priority": 1}',
         "line 2 (custom_id 'b'): unknown key 'priority'"),
        (_line("a", {"messages": ASK}),
         "line 2 (custom_id 'a'): duplicate custom_id (line 1 has it too)"),
        (_line("b", {"messages": ASK, "temperature": 5}),
         "line 2 (custom_id 'b'): body.temperature: "),
        # no custom_id to name
        (b'{"custom_id": 5, "method": "POST"}', "line 2: custom_id must be a string"),
        (b'{"custom_ids": "b"}', "line 2: unknown key 'custom_ids'; did you mean 'custom_id'?"),
        # a re-check: the misspelt keys unnamed, "body.messages: required parameter is missing"
        (_line("b", {"max_token": 3, "temprature": 0}),
         "line 2 (custom_id 'b'): body.max_token: Unknown parameter: 'max_token'. Did you "
         "mean 'max_tokens'? (and Unknown parameter: 'temprature'. Did you mean "
         "'temperature'?; messages: required parameter is missing)"),
    ],
)  # fmt: skip
def test_every_line_error_names_its_custom_id_the_same_way(
    fake_live: Live, bad: bytes, says: str
) -> None:
    """A trial's "line 1: body.temperature: must be a finite number" and "line 1: method
    must be POST…" did not name the line's custom_id, where a bad body's error did."""
    client: openai.OpenAI = fake_live.openai()
    good = _line("a", {"messages": ASK})
    f = client.files.create(file=("in.jsonl", good + b"\n" + bad + b"\n"), purpose="batch")
    r = fake_live.http.post(
        "/v1/batches", json={"input_file_id": f.id, "endpoint": "/v1/chat/completions"}
    )
    err = assert_error(r, 400, param="input_file_id")
    assert err["message"].startswith(says), err["message"]


def test_a_line_asking_for_a_stream_is_answered_whole(batch_live: Any) -> None:
    """A trial's finding: "stream": true alone was accepted, but with "stream_options":
    {"include_usage": true} (what a streamed request sends) the line was refused, as the
    check made it stream: false first. A line is never streamed: both are checked as online,
    then ignored, and the answer is one chat.completion in the output file."""
    live, clock = batch_live
    client: openai.OpenAI = live.openai()
    usage = {"stream_options": {"include_usage": True}}
    content = b"\n".join([
        _line("plain", {"model": "fake", "messages": ASK, "stream": True}),
        _line("usage", {"model": "fake", "messages": ASK, "stream": True, **usage}),
    ])  # fmt: skip
    f = client.files.create(file=("in.jsonl", content), purpose="batch")
    b = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    clock.set(START + 24 * 3600)  # due
    done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
    assert done.request_counts.completed == 2 and done.request_counts.failed == 0
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    for o in out:
        body = o["response"]["body"]
        assert body["object"] == "chat.completion" and body["usage"]["total_tokens"] > 0
    # as online, stream_options without stream: true is refused (when the batch is created)
    bad = _line("b", {"model": "fake", "messages": ASK, **usage})
    f = client.files.create(file=("in.jsonl", bad), purpose="batch")
    r = live.http.post(
        "/v1/batches", json={"input_file_id": f.id, "endpoint": "/v1/chat/completions"}
    )
    err = assert_error(r, 400, param="input_file_id")
    assert (
        "body.stream_options: stream_options is only allowed when stream is true"
        in (err["message"])
    )


def _swap_input(live: Live, batch_id: str, content: bytes) -> None:
    """Point a queued batch at an input file a former version accepted unchecked."""
    from boundgate.store import FileRow

    store = live.gateway.store
    tenant, body = arun(store.get_batch(batch_id))
    batch = json.loads(body)
    f = FileRow("file-old" + batch_id[-8:], tenant, "batch", "old.jsonl", len(content), 0.0,
                content)  # fmt: skip
    arun(store.put_file(f))
    batch["input_file_id"] = f.id
    arun(store.put_batch(batch_id, tenant, float(batch["created_at"]), json.dumps(batch)))


def test_a_failing_line_fails_alone_and_the_others_complete(batch_live: Any) -> None:
    """Any fault on one line (not only a BoundgateError) is that line's 500 in the error file;
    the lines before and after it are answered, and the batch completes."""
    live, clock = batch_live
    client: openai.OpenAI = live.openai()

    def answers(question: str) -> str:
        if "number 1?" in question:
            raise RuntimeError("an unexpected fault in the backend")
        return "forty-two"

    live.gateway.backends["fake"].answers = answers
    f = client.files.create(file=("in.jsonl", lines(3)), purpose="batch")
    b = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    # a line accepted before bodies were checked: its text cannot be encoded as UTF-8
    surrogate = _line(
        "req-3", {"model": "fake", "messages": [{"role": "user", "content": "\ud800"}]}
    )
    _swap_input(live, b.id, lines(3) + b"\n" + surrogate + b"\n")
    clock.set(START + 24 * 3600)  # due
    done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
    assert done.request_counts.completed == 2 and done.request_counts.failed == 2
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in out) == ["req-0", "req-2"]
    errs = {
        e["custom_id"]: e["response"]
        for e in map(json.loads, client.files.content(done.error_file_id).text.splitlines())
    }
    assert errs["req-1"]["status_code"] == 500
    assert errs["req-1"]["body"]["error"]["type"] == "server_error"
    assert errs["req-1"]["body"]["error"]["code"] == "internal_error"
    assert "fault" not in errs["req-1"]["body"]["error"]["message"]  # the log has it
    assert errs["req-3"]["status_code"] == 400  # checked at run time as at creation
    # the batch's usage: the answered lines' usage summed, the failed ones counting nothing
    used = [o["response"]["body"]["usage"] for o in out]
    assert done.model == "fake"
    assert done.usage is not None
    assert done.usage.input_tokens == sum(u["prompt_tokens"] for u in used) > 0
    assert done.usage.output_tokens == sum(u["completion_tokens"] for u in used) > 0
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens
    assert done.usage.input_tokens_details.cached_tokens == 0
    assert done.usage.output_tokens_details.reasoning_tokens == 0
    assert errs["req-3"]["body"]["error"]["param"] == "messages[0].content"
    # the runner records the job done after the run that ended the batch returns
    (job,) = wait_until(
        lambda: (js := arun(live.gateway.store.jobs())) and js[0].state == "done" and js
    )
    assert job.attempts == 1  # one run, no line answered twice


def test_a_batch_names_its_model_only_when_every_line_names_the_same() -> None:
    def body(model: Any) -> dict[str, Any]:
        return {"model": model, "messages": [{"role": "user", "content": "hi"}]}

    same = [{"body": body("fake")}, {"body": body("fake")}]
    assert lines_model(same) == "fake"
    assert lines_model([*same, {"body": body("auto")}]) is None
    assert lines_model([{"body": {"messages": []}}]) is None  # (run-time: fails that line)
    # an in-progress batch has no usage yet; one stored before the fields were kept shows null
    old = {"id": "batch_x", "status": "completed", "request_counts": {}}
    shown = arun(with_progress(None, old))  # type: ignore[arg-type]  (terminal: no store read)
    assert shown["model"] is None and shown["usage"] is None


def test_a_batch_past_its_completion_window_expires_keeping_the_lines_done(
    batch_live: Any,
) -> None:
    """An audit: nothing ever expired a batch; one whose gateway was down past its window
    ran to "completed" two days late. The lines done before the window ended stay in the
    output file; the others are in the error file as OpenAI writes them (batch_expired)."""
    live, clock = batch_live
    client: openai.OpenAI = live.openai()
    f = client.files.create(file=("in.jsonl", lines(3)), purpose="batch")
    b = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )

    def answers(question: str) -> str:
        if "number 0?" in question:
            clock.set(b.expires_at + 1)  # the window ends while the first line runs
        return "forty-two"

    live.gateway.backends["fake"].answers = answers
    clock.set(START + 23 * 3600)  # due
    done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "expired" and r)
    assert done.expired_at == b.expires_at + 1 and done.completed_at is None
    assert done.request_counts.completed == 1 and done.request_counts.failed == 2
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert [o["custom_id"] for o in out] == ["req-0"]
    errs = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert [e["custom_id"] for e in errs] == ["req-1", "req-2"]
    assert all(e["response"] is None and e["error"]["code"] == "batch_expired" for e in errs)


def test_a_batch_first_run_after_its_window_never_started(batch_live: Any) -> None:
    """A trial: a batch whose gateway was down past its window expired without a line run,
    yet said it started (``started_at`` after ``expires_at``) and reports counted it among
    the batches run. It expires, every line ``batch_expired``, and it never started."""
    live, clock = batch_live
    client: openai.OpenAI = live.openai()
    f = client.files.create(file=("in.jsonl", lines(2)), purpose="batch")
    b = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    clock.set(b.expires_at + 60)  # the first run comes after the window
    done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "expired" and r)
    assert done.request_counts.completed == 0 and done.request_counts.failed == 2
    assert done.model_extra["boundgate"]["started_at"] is None


def test_a_cancel_from_another_process_during_the_last_line_is_kept(batch_live: Any) -> None:
    """An audit: the run saved the object it had read, so a cancel saved while its last line
    ran was overwritten by "completed" (or, the other way round, left the batch "cancelling"
    for good). The run now ends the batch as it is in the store: cancelled, with the
    cancel's own cancelling_at, the lines done in the output file."""
    import sqlite3

    live, clock = batch_live
    client: openai.OpenAI = live.openai()
    f = client.files.create(file=("in.jsonl", lines(2)), purpose="batch")
    b = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancel_at = int(START + 23 * 3600)

    def answers(question: str) -> str:
        if "number 1?" in question:  # another gateway process on the store cancels now
            with sqlite3.connect(live.gateway.store.path) as db:
                (body,) = db.execute("SELECT body FROM batches WHERE id = ?", (b.id,)).fetchone()
                batch = json.loads(body)
                batch.update(status="cancelling", cancelling_at=cancel_at)
                db.execute("UPDATE batches SET body = ? WHERE id = ?", (json.dumps(batch), b.id))
        return "forty-two"

    live.gateway.backends["fake"].answers = answers
    clock.set(START + 23 * 3600)  # due
    done = wait_until(
        lambda: (r := client.batches.retrieve(b.id)).status in ("completed", "cancelled") and r
    )
    assert done.status == "cancelled" and done.cancelling_at == cancel_at
    assert done.request_counts.completed == 2 and done.output_file_id is not None


def test_json_lines_end_at_newlines_only_and_errors_name_the_editors_line() -> None:
    """An audit: str.splitlines() also split at U+2028, U+2029 and U+0085, which JSON
    strings may hold unescaped (json.dumps(..., ensure_ascii=False) writes them): a valid
    file got 400 "line 1 is not JSON: Unterminated string". And an error on the fourth line
    of a file with blank lines was called "line 2"."""
    body = {"model": "fake", "messages": [{"role": "user", "content": "a\u2028b\u2029c\x85d"}]}
    text = json.dumps(
        {"custom_id": "q", "method": "POST", "url": "/v1/chat/completions", "body": body},
        ensure_ascii=False,
    )
    (item,) = parse_lines((text + "\r\n").encode(), "/v1/chat/completions")
    assert item["body"]["messages"][0]["content"] == "a\u2028b\u2029c\x85d"
    with pytest.raises(InvalidRequestError, match=r"^line 4 is not JSON"):
        parse_lines(lines(1) + b"\n\n\n{oops\n", "/v1/chat/completions")


def test_every_state_a_batch_ends_in_is_in_its_schema() -> None:
    """An audit: a failed batch said boundgate.state "failed", which its schema refused."""
    states = Batch.model_json_schema()["$defs"]["BatchInfo"]["properties"]["state"]["enum"]
    assert {"scheduled", "running", "done", "cancelled", "expired", "failed"} <= set(states)


def test_a_line_with_another_key_accepted_before_keys_were_checked_runs(
    batch_live: Any,
) -> None:
    """Keys are checked when a batch is created: one queued by a former version, whose line
    carries another key, is answered rather than failed when it runs."""
    live, clock = batch_live
    client: openai.OpenAI = live.openai()
    f = client.files.create(file=("in.jsonl", lines(1)), purpose="batch")
    b = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    _swap_input(live, b.id, lines(1)[:-1] + b', "metdata": {}}\n')
    clock.set(START + 24 * 3600)  # due
    done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
    assert done.request_counts.completed == 1 and done.request_counts.failed == 0


def test_a_batch_that_cannot_run_is_failed_and_one_without_a_job_cancels(
    batch_live: Any,
) -> None:
    live, clock = batch_live
    client: openai.OpenAI = live.openai()
    store = live.gateway.store
    f = client.files.create(file=("in.jsonl", lines(2)), purpose="batch")
    make = dict(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    # (1) its input can no longer be read: the batch ends failed, with the reason
    broken = client.batches.create(**make)
    _swap_input(live, broken.id, b"not json\n")
    # (2) its job ended without finishing it (e.g. failed for good in a former version)
    orphan = client.batches.create(**make)
    assert arun(store.cancel_job(orphan.model_extra["boundgate"]["job_id"]))  # batch untouched
    assert client.batches.retrieve(orphan.id).status == "in_progress"
    c = client.batches.cancel(orphan.id)
    assert c.status == "cancelled" and c.cancelled_at is not None  # not "cancelling" for good
    # (3) as (1), but its owner had asked to cancel it: it ends cancelled
    asked = client.batches.create(**make)
    _swap_input(live, asked.id, b"not json\n")
    tenant, body = arun(store.get_batch(asked.id))
    arun(store.put_batch(asked.id, tenant, asked.created_at, body.replace(
        '"status": "in_progress"', '"status": "cancelling"')))  # fmt: skip
    clock.set(START + 24 * 3600)
    failed = wait_until(lambda: (r := client.batches.retrieve(broken.id)).status == "failed" and r)
    wait_until(lambda: client.batches.retrieve(asked.id).status == "cancelled")
    assert failed.failed_at is not None and failed.errors is not None
    assert "line 1" in (failed.errors.data[0].message or "")
    with pytest.raises(openai.BadRequestError):
        client.batches.cancel(broken.id)


def test_an_input_deleted_while_its_batch_runs_is_kept_until_the_batch_ends(
    batch_live: Any,
) -> None:
    """A break-it trial: a batch handed back after some lines (its key's rate limit, a
    restart) read its input again, found it deleted and failed: 5 of 8 accepted lines never
    ran (29 of 40 after a kill -9). Deleting the input of a batch not ended hides it from
    the API at once and keeps it for the batch, which runs every line; then it is dropped."""
    from boundgate.store import BatchLineRow

    live, clock = batch_live
    client: openai.OpenAI = live.openai()
    f = client.files.create(file=("in.jsonl", lines(4)), purpose="batch")
    b = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    answered = BatchLineRow(b.id, 0, "output", json.dumps({"custom_id": "req-0"}), 0.5, 0.25, 0.0)
    arun(live.gateway.store.put_batch_line(answered))  # what a run handed back had kept
    assert client.files.delete(f.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)
    assert f.id not in [x.id for x in client.files.list()]
    with pytest.raises(openai.NotFoundError):  # nor can another batch be made from it
        client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    clock.set(START + 24 * 3600)  # due: a runner takes the job over
    done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
    assert done.request_counts.completed == 4 and done.request_counts.failed == 0
    out = client.files.content(done.output_file_id or "").text.splitlines()
    assert sorted(json.loads(x)["custom_id"] for x in out) == [f"req-{i}" for i in range(4)]
    assert arun(live.gateway.store.get_file(f.id, deleted=True)) is None  # dropped after
    # a batch cancelled before it ran drops its deleted input at once (a re-check's stayed
    # until the next recovery sweep, an hour by default)
    g = client.files.create(file=("in.jsonl", lines(2)), purpose="batch")
    queued = client.batches.create(
        input_file_id=g.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert client.files.delete(g.id).deleted
    assert arun(live.gateway.store.get_file(g.id, deleted=True)) is not None
    assert client.batches.cancel(queued.id).status == "cancelled"
    assert arun(live.gateway.store.get_file(g.id, deleted=True)) is None


def test_lines_answered_before_the_input_was_lost_are_kept(batch_live: Any) -> None:
    """A trial's finding: a batch whose process died after answering lines, and whose input
    file was then gone (deleted before this version kept it for its batch), ended
    ``failed`` with no output file (the answers were gone) and ``boundgate.state`` still
    ``running``. The answered lines are written out; the error says what happened."""
    from boundgate.store import BatchLineRow

    live, clock = batch_live
    client: openai.OpenAI = live.openai()
    f = client.files.create(file=("in.jsonl", lines(4)), purpose="batch")
    b = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    answered = [
        BatchLineRow(b.id, i, "output", json.dumps({"custom_id": f"req-{i}"}), 0.5, 0.25, 0.0)
        for i in range(2)
    ]  # what a run that died had kept
    for row in answered:
        arun(live.gateway.store.put_batch_line(row))
    store = live.gateway.store
    tenant, body = arun(store.get_batch(b.id))
    arun(store.put_batch(b.id, tenant, float(b.created_at), body.replace(f.id, "file-gone")))
    clock.set(START + 24 * 3600)  # due: a runner takes the job over
    done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "failed" and r)
    assert done.request_counts.completed == 2 and done.output_file_id is not None
    out = client.files.content(done.output_file_id).text.splitlines()
    assert [json.loads(x)["custom_id"] for x in out] == ["req-0", "req-1"]
    assert done.errors is not None
    error = done.errors.data[0]
    assert error.code == "missing_file" and "file-gone" in (error.message or "")
    assert "2 of 4" in (error.message or "")
    assert error.line is None  # no line was at fault (a trial's said line 1)
    bg = done.model_extra["boundgate"]
    assert bg["state"] == "failed" and bg["energy_wh"] == 1.0


def test_a_batch_ended_without_a_run_counts_the_lines_it_answered(batch_live: Any) -> None:
    """An audit's finding: a batch a cancel or its job's failure hook ended after a run that
    died had answered lines showed 0 Wh and no saving, and the report left failed (and
    expired) batches out. The lines answered were shifted all the same: the batch object
    totals them, and the report counts the batch in the period it ended."""
    from boundgate.server.batches.objects import fail_batch
    from boundgate.store import BatchLineRow

    live, _clock = batch_live
    client: openai.OpenAI = live.openai()
    store = live.gateway.store
    f = client.files.create(file=("in.jsonl", lines(4)), purpose="batch")
    make = dict(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    cancelled, failed = client.batches.create(**make), client.batches.create(**make)
    for b in (cancelled, failed):  # what a run that died had done: started, 2 lines answered
        tenant, body = arun(store.get_batch(b.id))
        batch = json.loads(body)
        batch["boundgate"].update(state="running", started_at="2023-06-01T05:00:00Z")
        arun(store.put_batch(b.id, tenant, b.created_at, json.dumps(batch)))
        for i in range(2):
            record = json.dumps({"custom_id": f"req-{i}"})
            arun(store.put_batch_line(BatchLineRow(b.id, i, "output", record, 0.5, 0.25, 0.0)))
    ended = [client.batches.cancel(cancelled.id)]  # its job had not started again: at once
    arun(fail_batch(live.gateway, failed.id, "the batch's job failed after its retries"))
    ended.append(client.batches.retrieve(failed.id))
    assert [b.status for b in ended] == ["cancelled", "failed"]
    saved = 0.0
    for b in ended:
        bg = b.model_extra["boundgate"]
        assert b.request_counts.completed == 2
        assert (bg["energy_wh"], bg["carbon_g"]) == (1.0, 0.5)
        assert bg["run_now_carbon_g"] == pytest.approx(1.0 / 1000 * bg["submitted_gco2_per_kwh"])
        assert bg["shifting_saved_g"] == pytest.approx(bg["run_now_carbon_g"] - 0.5)
        saved += bg["shifting_saved_g"]
    periods = [p for p in arun(store.report_by_period(START, 3600)) if p.batches]
    assert sum(p.batches for p in periods) == 2
    assert sum(p.shifting_saved_gco2 for p in periods) == pytest.approx(saved)


def test_a_replan_keeps_a_batch_inside_its_window_and_shows_its_start(batch_live: Any) -> None:
    """A trial's finding: the job of a batch forgot the batch's estimated duration (60 s),
    so a replan could start a 40,000 s batch two hours before its deadline, and the batch
    object kept showing its first start."""
    live, _clock = batch_live
    client: openai.OpenAI = live.openai()
    f = client.files.create(file=("in.jsonl", lines(3)), purpose="batch")
    b = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    (job,) = arun(live.gateway.store.jobs())
    duration = 3 * SchedulerSettings().batch_request_s  # the default, as fake_settings keeps
    assert json.loads(job.payload)["_duration_s"] == max(60.0, duration)
    jobs = live.gateway.jobs
    assert jobs is not None
    jobs.policy = lambda kind, now, deadline, duration_s: deadline  # the cleanest: the end
    assert arun(jobs.replan()) == 1
    (job,) = arun(live.gateway.store.jobs())
    assert job.not_before == job.deadline - max(60.0, duration)  # still finishes in time
    moved = client.batches.retrieve(b.id).model_extra["boundgate"]["scheduled_start"]
    assert moved == datetime.fromtimestamp(job.not_before, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_job_that_fails_for_good_tells_its_failure_hook(tmp_path: Path) -> None:
    from boundgate.scheduler.jobs import JobQueue, run_now
    from boundgate.scheduler.runner import JobRunner

    told: list[tuple[dict[str, Any], str]] = []

    async def broken(payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("store unreachable")

    async def on_failed(payload: dict[str, Any], error: str) -> None:
        told.append((payload, error))

    async def scenario() -> list[str]:
        store = SQLiteStore(tmp_path / "j.db")
        store.open()
        try:
            await JobQueue(store, FakeClock(start=START), run_now).submit(
                "batch", {"batch": "b1"}, deadline_s=3600, duration_s=60
            )
            clock = FakeClock(start=START)
            runner = JobRunner(
                store, {"batch": broken}, clock=clock, poll_s=0.05,
                replan_s=3600, max_attempts=3, on_failure={"batch": on_failed},
            )  # fmt: skip
            states = []
            for _ in range(3):
                assert await runner.run_once()
                states.append((await store.jobs())[0].state)
                clock.advance(3600)  # past the retry's backoff
            return states
        finally:
            store.close()

    assert asyncio.run(scenario()) == ["pending", "pending", "failed"]
    assert told == [({"batch": "b1"}, "store unreachable")]  # once, when it failed for good


def test_a_job_held_back_tells_its_hold_hook_when_it_runs_next(tmp_path: Path) -> None:
    """A run that fails, or that its tenant's limits refuse (a 429), puts its job back until
    its retry; the kind's ``on_held`` hook is told that time (a batch shows it)."""
    from boundgate.errors import RateLimitError
    from boundgate.scheduler.jobs import JobQueue, run_now
    from boundgate.scheduler.runner import JobRunner

    told: list[tuple[dict[str, Any], float]] = []
    failures: list[Exception] = [
        RuntimeError("store unreachable"),
        RateLimitError("the tenant's requests per minute", retry_after=90),
    ]

    async def flaky(payload: dict[str, Any]) -> dict[str, Any]:
        raise failures.pop(0)

    async def on_held(payload: dict[str, Any], until: float) -> None:
        told.append((payload, until))

    async def scenario() -> list[float]:
        store = SQLiteStore(tmp_path / "j.db")
        store.open()
        try:
            clock = FakeClock(start=START)
            await JobQueue(store, clock, run_now).submit(
                "batch", {"batch": "b1"}, deadline_s=3 * 3600, duration_s=60
            )
            runner = JobRunner(
                store, {"batch": flaky}, clock=clock, poll_s=0.05, replan_s=3600,
                max_attempts=3, on_held={"batch": on_held},
            )  # fmt: skip
            holds = []
            for _ in range(2):
                assert await runner.run_once()
                (job,) = await store.jobs()
                assert job.state == "pending"
                holds.append(job.not_before)
                clock.set(job.not_before)
            return holds
        finally:
            store.close()

    holds = asyncio.run(scenario())
    assert holds == [START + 60, START + 60 + 90]  # the backoff, then the Retry-After
    assert told == [({"batch": "b1"}, holds[0]), ({"batch": "b1"}, holds[1])]


def test_a_held_batch_shows_when_it_runs_next(tmp_path: Path) -> None:
    """An audit's finding: a batch whose run failed (its store unreachable for a moment, say)
    and whose job was held back until its retry kept showing ``running`` since its first
    scheduled start. It shows ``scheduled``, at the time of its retry, and keeps its first
    ``started_at``."""
    from boundgate.scheduler.handlers import job_handlers
    from boundgate.server.batches.objects import iso_utc, update_batch
    from boundgate.server.batches.running import run_batch

    settings = fake_settings(tmp_path)
    settings.scheduler.poll_s = 0.05
    clock = FakeClock(start=START)
    app = build_app(settings, clock=clock)
    gw = app.state.gateway
    runs: list[str] = []

    async def flaky(payload: dict[str, Any]) -> dict[str, Any]:
        runs.append(str(payload["batch"]))
        if len(runs) == 1:  # the run starts, then the store fails under it
            started = iso_utc(clock.time())

            def start(b: dict[str, Any]) -> None:
                b["boundgate"].update(state="running", started_at=started)

            await update_batch(gw, str(payload["batch"]), start)
            raise RuntimeError("store unreachable")
        return await run_batch(gw, payload)

    app.state.job_handlers = lambda g: {**job_handlers(g), "batch": flaky}  # the app's seam
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        client: openai.OpenAI = live.openai()
        f = client.files.create(file=("in.jsonl", lines(2)), purpose="batch")
        b = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        first = b.model_extra["boundgate"]["scheduled_start"]
        (job,) = arun(gw.store.jobs())
        clock.set(job.not_before)  # due: the first run starts and fails

        def moved() -> Any:
            r = client.batches.retrieve(b.id)
            return r.model_extra["boundgate"]["scheduled_start"] != first and r

        held = wait_until(moved)
        (job,) = arun(gw.store.jobs())
        assert job.state == "pending" and job.attempts == 1
        bg = held.model_extra["boundgate"]
        assert bg["state"] == "scheduled" and bg["scheduled_start"] == iso_utc(job.not_before)
        assert bg["started_at"] == first  # the first run's start, kept
        clock.set(job.not_before)  # the retry
        done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
        assert done.request_counts.completed == 2 and len(runs) == 2
        assert done.model_extra["boundgate"]["started_at"] == first
        live.http.close()


def test_batch_files_have_their_own_size_limit(tmp_path: Path) -> None:
    """A batch input file may be larger than an API request (server.max_body_bytes, 1 MiB);
    server.max_file_bytes bounds it instead, with a 413 in OpenAI's shape."""
    settings = fake_settings(tmp_path)
    settings.server.max_file_bytes = 3 << 20
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)

        def upload(size: int) -> Any:
            body = _line("c0", {"messages": [{"role": "user", "content": "x" * size}]})
            return live.http.post(
                "/v1/files", files={"file": ("in.jsonl", body)}, data={"purpose": "batch"}
            )

        r = upload(2 << 20)  # over max_body_bytes, under max_file_bytes
        assert r.status_code == 200, r.text
        assert r.json()["bytes"] > settings.server.max_body_bytes
        err = assert_error(upload(4 << 20), 413)
        # the setting it names, not the setting and the form's slack summed (a trial's)
        limit = settings.server.max_file_bytes
        assert f"the limit is {limit} bytes for the file (server.max_file_bytes)" in err["message"]
        big = {"messages": [{"role": "user", "content": "x" * (2 << 20)}]}
        err = assert_error(live.http.post("/v1/chat/completions", json=big), 413)  # unchanged
        assert "(server.max_body_bytes)" in err["message"]
        live.http.close()


def test_the_sdk_lists_files_and_batches_page_by_page_per_tenant(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(settings.db_path)
    store.open()
    acme, globex = (asyncio.run(store.create_key(t)) for t in ("acme", "globex"))
    store.close()
    clock = FakeClock(start=START)  # nothing runs: all stay queued
    app = build_app(settings, clock=clock)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        a: openai.OpenAI = live.openai(acme.secret)
        g: openai.OpenAI = live.openai(globex.secret)
        made = []
        for i in range(3):
            clock.set(START + i)
            f = a.files.create(file=("in.jsonl", lines(2)), purpose="batch")
            b = a.batches.create(
                input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            made.append((f.id, b.id))
        other = g.files.create(file=("in.jsonl", lines(1)), purpose="batch")
        first = a.batches.list(limit=2)
        assert [b.id for b in first.data] == [made[2][1], made[1][1]]  # newest first
        assert first.has_more
        assert [b.id for b in a.batches.list(limit=2)] == [b for _, b in reversed(made)]  # pages
        assert all(b.request_counts.total == 2 for b in first.data)
        assert [f.id for f in a.files.list(order="asc")] == [f for f, _ in made]
        assert [f.id for f in g.files.list()] == [other.id]  # another tenant's are not listed
        assert list(g.batches.list()) == []
        # the SDK's delete (it answered 405); another tenant's file is not found
        with pytest.raises(openai.NotFoundError):
            g.files.delete(made[0][0])
        gone = a.files.delete(made[0][0])
        assert gone.deleted and gone.id == made[0][0]
        assert [f.id for f in a.files.list(order="asc")] == [f for f, _ in made[1:]]
        with pytest.raises(openai.NotFoundError):
            a.files.retrieve(made[0][0])
        r = live.http.get(
            "/v1/batches", params={"limit": 0}, headers={"Authorization": f"Bearer {acme.secret}"}
        )
        assert_error(r, 400, param="limit")
        # a parameter a list does not take is refused, not ignored (a trial's ?order=asc on
        # /v1/batches gave the list newest first)
        auth = {"Authorization": f"Bearer {acme.secret}"}
        for path, params, name in [
            ("/v1/batches", {"order": "asc"}, "order"),
            ("/v1/batches", {"foo": "1"}, "foo"),
            ("/v1/files", {"purpos": "batch"}, "purpos"),
        ]:
            r = live.http.get(path, params=params, headers=auth)
            assert_error(r, 400, param=name, code="unknown_parameter")
        live.http.close()


def test_cancelling_a_running_batch_answers_with_its_progress(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    settings.scheduler.policy = "now"
    settings.scheduler.poll_s = 0.05
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        live.gateway.backends["fake"].token_delay_s = 0.01  # lines take a moment each
        client: openai.OpenAI = live.openai()
        f = client.files.create(file=("in.jsonl", lines(200)), purpose="batch")
        b = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        wait_until(lambda: client.batches.retrieve(b.id).request_counts.completed >= 2)
        c = client.batches.cancel(b.id)
        assert c.status == "cancelling" and c.request_counts.completed >= 2  # it said 0
        done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "cancelled" and r)
        assert 2 <= done.request_counts.completed < 200
        live.http.close()


def test_a_saving_within_rounding_is_zero() -> None:
    from boundgate.server.batches.totals import saved_g

    run_now = 0.1 * 3 * 0.37  # a batch run in its submission hour: the same sum, other order
    carbon = 0.37 * 0.1 * 3
    assert run_now - carbon != 0  # -2.8e-17 showed as a (negative) saving
    assert saved_g(run_now, carbon) == 0.0
    assert saved_g(2.0, 1.5) == 0.5 and saved_g(1.0, 1.5) == -0.5  # a dirtier hour: negative


def _multipart(disposition: bytes, content: bytes) -> tuple[bytes, dict[str, str]]:
    """A hand-written multipart body (clients escape what these tests need raw)."""
    body = (
        b'--XX\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b"--XX\r\nContent-Disposition: " + disposition + b"\r\n"
        b"Content-Type: application/jsonl\r\n\r\n" + content + b"\r\n--XX--\r\n"
    )
    return body, {"content-type": "multipart/form-data; boundary=XX"}


def test_upload_errors_use_documented_codes_and_refuse_control_characters(
    fake_live: Live,
) -> None:
    """Malformed multipart data was 400 ``http_400`` (a code docs/api.md does not list); a
    line break in a quoted file name ended the part's header and the file was stored as
    ``"a``; other control characters were stored as they came."""
    content = lines(1)
    for name in (b"a\r\nb.jsonl", b"a\rb.jsonl"):  # the multipart parser refuses these
        body, headers = _multipart(b'form-data; name="file"; filename="' + name + b'"', content)
        assert_error(fake_live.http.post("/v1/files", content=body, headers=headers), 400,
                     code="invalid_value")  # fmt: skip
    for name in (
        b"a\r\nX-Other: b.jsonl",  # the header ends at the line break: filename '"a'
        b"a\nb.jsonl",
        b"a\tb.jsonl",
        b"a\x01b.jsonl",
        b"a\x7fb.jsonl",
        "a\u0085b.jsonl".encode(),
    ):
        body, headers = _multipart(b'form-data; name="file"; filename="' + name + b'"', content)
        r = fake_live.http.post("/v1/files", content=body, headers=headers)
        assert_error(r, 400, param="file", code="invalid_value")
    # a name longer than the parser's header line (a trial: "Invalid multipart data." alone)
    name = b"n" * 5000 + b".jsonl"
    body, headers = _multipart(b'form-data; name="file"; filename="' + name + b'"', content)
    r = fake_live.http.post("/v1/files", content=body, headers=headers)
    err = assert_error(r, 400, param="file", code="invalid_value")
    assert "header size" in err["message"] and "file name" in err["message"]
    # a trial: a right-to-left override ("a\u202egnp.exe" shows as "aexe.png"), a line
    # separator and a name of spaces were stored
    for name in ("a\u202egnp.exe".encode(), "a\u2028b.jsonl".encode(), b"   "):
        body, headers = _multipart(b'form-data; name="file"; filename="' + name + b'"', content)
        r = fake_live.http.post("/v1/files", content=body, headers=headers)
        assert_error(r, 400, param="file", code="invalid_value")
    # RFC 5987's filename* alone: the part has no file name (it was told "not a text field")
    body, headers = _multipart(b"form-data; name=\"file\"; filename*=UTF-8''r%C3%A9.jsonl", content)
    r = fake_live.http.post("/v1/files", content=body, headers=headers)
    assert "has none" in assert_error(r, 400, param="file")["message"]
    # a multipart type without its boundary: said as the other unreadable forms are
    r = fake_live.http.post(
        "/v1/files", content=b"x", headers={"content-type": "multipart/form-data"}
    )
    err = assert_error(r, 400, param="file", code="invalid_value")
    assert err["message"] == "the multipart form could not be read: Missing boundary in multipart."
    body, headers = _multipart('form-data; name="file"; filename="é q.jsonl"'.encode(), content)
    r = fake_live.http.post("/v1/files", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["filename"] == "é q.jsonl"
    assert not [f for f in fake_live.openai().files.list() if f.filename != "é q.jsonl"]


def test_an_upload_sent_as_json_is_told_to_use_multipart(fake_live: Live) -> None:
    """A trial sent the upload as JSON and was told only "file: required parameter is
    missing (also invalid: purpose)"."""
    r = fake_live.http.post("/v1/files", json={"file": "x", "purpose": "batch"})
    err = assert_error(r, 400, param="file")
    assert "takes a multipart/form-data upload with fields file and purpose" in err["message"]
    assert "not application/json" in err["message"], err


def test_a_file_part_with_a_content_encoding_is_refused(fake_live: Live) -> None:
    """A trial: a gzip-encoded file part was stored as sent (its lines no JSON), where the
    request's own Content-Encoding is refused."""
    import gzip

    line = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                       "body": {"messages": [{"role": "user", "content": "hi"}]}})  # fmt: skip
    body = gzip.compress(line.encode())
    boundary = "b0undary"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"'
            "\r\nContent-Type: application/jsonl\r\nContent-Encoding: gzip\r\n\r\n"
        ).encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    r = fake_live.http.post("/v1/files", content=form, headers=headers)
    err = assert_error(r, 400, param="file")
    assert "Content-Encoding 'gzip'" in err["message"], err


@pytest.mark.parametrize(
    "content",
    [b"", b"\n", b"\r\n \t\n\n", "\ufeff".encode(), "\ufeff\n\u00a0\n\u3000".encode()],
    ids=["0-bytes", "one-line-break", "blank-lines", "byte-order-mark", "unicode-blanks"],
)
def test_a_file_without_a_request_is_refused_at_upload(fake_live: Live, content: bytes) -> None:
    """An empty upload (0 bytes, or blank lines only) was stored, and refused only when a batch
    was created from it. It is 400 ``param: file`` at the upload now, and nothing is kept:
    no file, and no ``Idempotency-Key`` (the key then uploads a file with requests)."""
    for key in (None, "upload-1"):
        headers = {} if key is None else {"Idempotency-Key": key}
        r = fake_live.http.post(
            "/v1/files",
            files={"file": ("in.jsonl", content)},
            data={"purpose": "batch"},
            headers=headers,
        )
        err = assert_error(r, 400, param="file", code="invalid_value")
        assert err["type"] == "invalid_request_error"
        assert "at least one request" in err["message"]
    store = fake_live.gateway.store
    assert arun(store.files(None, None, 10, None, False)) == []
    r = fake_live.http.post(
        "/v1/files",
        files={"file": ("in.jsonl", lines(1))},
        data={"purpose": "batch"},
        headers={"Idempotency-Key": "upload-1"},
    )
    assert r.status_code == 200, r.text
    # a file with a request after blank lines, or one not UTF-8, is taken (a batch made from
    # the second says what is wrong with it)
    for taken in (b"\n\n" + lines(1), "\u00a0".encode() + lines(1), b"\xff\xfe{"):
        r = fake_live.http.post(
            "/v1/files", files={"file": ("in.jsonl", taken)}, data={"purpose": "batch"}
        )
        assert r.status_code == 200, r.text


def test_completion_window_and_metadata_are_checked_as_documented(fake_live: Live) -> None:
    """``01h`` was accepted and echoed (docs: whole hours 1h-168h; OpenAI only ``24h``), and
    batch metadata had no limits (OpenAI: 16 pairs, keys up to 64, values up to 512)."""
    client = fake_live.openai()
    f = client.files.create(file=("in.jsonl", lines(1)), purpose="batch")

    def create(**kw: Any) -> Any:
        body = {"input_file_id": f.id, "endpoint": "/v1/chat/completions", **kw}
        return fake_live.http.post("/v1/batches", json=body)

    for window in ("01h", "024h", "0h", "169h", "24h\n", "\uff12\uff14h", "1.5h", "h"):
        assert_error(create(completion_window=window), 400, param="completion_window")
    for window in ("1h", "168h"):
        r = create(completion_window=window)
        assert r.status_code == 200 and r.json()["completion_window"] == window
    for metadata, param in (
        ({"k" * 65: "v"}, "metadata." + "k" * 65),
        ({"a": "v" * 513}, "metadata.a"),
        ({str(i): "v" for i in range(17)}, "metadata"),
    ):
        assert_error(create(metadata=metadata), 400, param=param, code="invalid_value")
    most = {f"k{i:02d}" + "k" * 61: "v" * 512 for i in range(16)}
    r = create(metadata=most)
    assert r.status_code == 200 and r.json()["metadata"] == most


def test_a_scheduling_failure_never_breaks_a_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A trial's finding: with a price file of January 2024 alone, planning a job in
    November 2026 raised ``LookupError``, so ``POST /v1/batches`` and the third asker of a
    creative prompt (whose ask queues variants) got 500. The file's missing hours now fall
    back (``grid/signal.py``); and a start policy that fails anyway starts the job now."""
    import csv

    prices = tmp_path / "jan.csv"
    with prices.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["datetime_utc", "usd_per_mwh"])
        for d in range(1, 32):
            for h in range(24):
                w.writerow([f"2024-01-{d:02d}T{h:02d}:00:00Z", 50 + h])
    settings = fake_settings(tmp_path, f'[scheduler]\nprice_csv = "{prices}"\nprice_weight = 0.5\n')
    now = datetime(2026, 11, 3, 20, tzinfo=UTC).timestamp()
    app = build_app(settings, clock=FakeClock(start=now))
    with Live.in_process(app) as live:
        client: openai.OpenAI = live.openai()

        def batch() -> float:
            f = client.files.create(file=("in.jsonl", lines(2)), purpose="batch")
            b = client.batches.create(
                input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            start = b.model_extra["boundgate"]["scheduled_start"]
            return datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()

        def ask_three(prompt: str) -> list[int]:
            return [
                live.http.post(
                    "/v1/chat/completions",
                    json={
                        "messages": [{"role": "user", "content": prompt}],
                        "temperature": 1.0,
                        "max_tokens": 8,
                        "user": user,
                    },
                ).status_code
                for user in ("u1", "u2", "u3")
            ]

        def variant_jobs() -> list[Any]:
            return [j for j in arun(live.gateway.store.jobs()) if j.kind == "variants"]

        assert now <= batch() <= now + 24 * 3600
        assert ask_three("Write a limerick about cats") == [200, 200, 200]
        (job,) = variant_jobs()
        assert now <= job.not_before <= job.deadline

        # a start policy that fails: logged, the job starts now, the request is answered
        def broken(kind: str, at: float, deadline: float, duration_s: float) -> float:
            raise LookupError("no value in the usd_per_mwh signal")

        live.gateway.jobs.policy = broken
        with caplog.at_level("WARNING", logger="boundgate.jobs"):
            assert batch() == now
            assert ask_three("Write a limerick about dogs") == [200, 200, 200]
        assert [j.not_before for j in variant_jobs() if j.id != job.id] == [now]
        assert caplog.text.count("start policy failed") == 2


def test_a_line_that_fails_mid_answer_counts_the_energy_it_spent(batch_live: Any) -> None:
    """An audit's finding: a line whose generation failed after spending energy (the model
    went away mid-answer) showed 0 Wh on the batch object, though its ledger row had metered
    it: the batch's totals (and the run-now carbon, the shifting saving) left it out. Its
    metered energy and carbon count now; it claims no avoided energy."""
    live, clock = batch_live
    client: openai.OpenAI = live.openai()
    live.gateway.backends["fake"].failures.append(3)  # the first line's model goes after 3 tokens
    f = client.files.create(file=("in.jsonl", lines(2)), purpose="batch")
    b = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    clock.set(START + 24 * 3600)  # due
    done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
    assert done.request_counts.completed == 1 and done.request_counts.failed == 1
    (err,) = map(json.loads, client.files.content(done.error_file_id).text.splitlines())
    assert err["custom_id"] == "req-0" and err["response"]["status_code"] == 503
    ledger = live.ledger()
    rows = [r for r in ledger.values() if r.extra.get("batch_id") == b.id]
    failed = ledger[err["response"]["request_id"]]
    assert failed.outcome == "error" and failed.wh > 0 and failed.gco2 > 0
    bg = done.model_extra["boundgate"]
    assert len(rows) == 2
    assert bg["energy_wh"] == pytest.approx(sum(r.wh for r in rows))
    assert bg["carbon_g"] == pytest.approx(sum(r.gco2 for r in rows))
    assert bg["run_now_carbon_g"] == pytest.approx(
        bg["energy_wh"] / 1000 * bg["submitted_gco2_per_kwh"]
    )


def test_upload_fields_the_gateway_does_not_take_are_refused(fake_live: Live) -> None:
    """A trial: the SDK's ``expires_after`` (sent as ``expires_after[anchor]`` and
    ``expires_after[seconds]``), an unknown field and a second file part were dropped
    without a word (200, a file that never expires); a ``file`` sent as a text field was
    told "Expected UploadFile, received: <class 'str'>"; a list query's error carried the
    upload's multipart hint."""
    client = fake_live.openai()
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(
            file=("a.jsonl", lines(1)),
            purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 3600},
        )
    err = caught.value.body
    assert isinstance(err, dict)
    assert (err["param"], err["code"]) == ("expires_after", "unsupported_parameter")
    files = {"file": ("a.jsonl", lines(1))}
    r = fake_live.http.post("/v1/files", data={"purpose": "batch", "foo": "bar"}, files=files)
    assert_error(r, 400, param="foo", code="unknown_parameter")
    two = [("file", ("a.jsonl", lines(1))), ("file", ("b.jsonl", lines(2)))]
    r = fake_live.http.post("/v1/files", data={"purpose": "batch"}, files=two)
    assert "2 file fields" in assert_error(r, 400, param="file")["message"]
    r = fake_live.http.post("/v1/files", data={"purpose": "batch", "file": "x"}, files={"x": b""})
    err = assert_error(r, 400, param="file")
    assert "file part" in err["message"] and "UploadFile" not in err["message"], err
    assert not client.files.list().data  # nothing was stored
    r = fake_live.http.get("/v1/files", params={"limit": 0})
    err = assert_error(r, 400, param="limit")
    assert "multipart" not in err["message"], err


def test_batch_parameters_openai_has_and_the_gateway_does_not_are_named(fake_live: Live) -> None:
    """A trial's ``output_expires_after`` (an OpenAI SDK parameter) was refused as if it
    were a typo ("Extra inputs are not permitted", ``invalid_value``)."""
    client = fake_live.openai()
    f = client.files.create(file=("a.jsonl", lines(1)), purpose="batch")
    r = fake_live.http.post(
        "/v1/batches",
        json={
            "input_file_id": f.id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "output_expires_after": {"anchor": "created_at", "seconds": 3600},
        },
    )
    assert_error(r, 400, param="output_expires_after", code="unsupported_parameter")


def test_input_lines_are_held_to_the_endpoints_body_limit_and_utf8_errors_name_the_line() -> None:
    """A trial's 2 MiB line ran (the same body sent to the endpoint is a 413), and a file
    with one bad byte was told only "the input file is not UTF-8"."""
    big = {"model": "fake", "messages": [{"role": "user", "content": "x" * 2000}]}
    line = {"custom_id": "big", "method": "POST", "url": "/v1/chat/completions", "body": big}
    content = lines(2) + b"\n" + json.dumps(line).encode()
    with pytest.raises(InvalidRequestError, match=r"custom_id 'big'.*body is \d+ bytes"):
        parse_lines(content, "/v1/chat/completions", max_body_bytes=1000)
    assert len(parse_lines(content, "/v1/chat/completions", max_body_bytes=10_000)) == 3
    with pytest.raises(InvalidRequestError, match=r"not UTF-8: line 3 has byte 0xff"):
        parse_lines(lines(2) + b"\n" + b'{"custom_id": "\xff"}', "/v1/chat/completions")


def test_batches_are_planned_with_the_line_time_this_process_measured(batch_live: Any) -> None:
    """A trial: lines took about 6 s against the 2 s of ``scheduler.batch_request_s``, so a
    batch planned for the cleanest hour started 8 minutes before its deadline and expired
    with 81 of 150 lines unrun. Batches are planned with the measured mean line time when it
    is longer than the configured one."""
    from boundgate.server.batches.objects import line_estimate_s

    live, clock = batch_live
    gw = live.gateway
    assert line_estimate_s(gw, 2.0) == 2.0  # nothing measured yet
    gw.backends["fake"].token_delay_s = 0.05  # a few tokens a line: 0.1 s and more
    client: openai.OpenAI = live.openai()
    f = client.files.create(file=("in.jsonl", lines(3)), purpose="batch")
    b = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    start = b.model_extra["boundgate"]["scheduled_start"]
    clock.set(datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
    wait_until(lambda: client.batches.retrieve(b.id).status == "completed")
    measured = line_estimate_s(gw, 0.001)
    assert measured >= 0.1, measured  # what the lines took, not the configured 1 ms
    assert line_estimate_s(gw, 1000.0) == 1000.0  # a longer configured time stands


@pytest.mark.parametrize("moved_zone", [False, True], ids=["run-at-once", "zone-changed"])
def test_a_batch_the_scheduler_did_not_shift_saved_nothing(
    tmp_path: Path, moved_zone: bool
) -> None:
    """A metering trial: a batch run at once (``policy = "now"``) whose lines ran through
    three hours reported 5 % of its carbon saved by shifting (its energy priced at the
    submission hour against the hours it ran through), and one whose gateway moved to another
    zone before it ran 91 %. Neither was shifted: run-now carbon is what it emitted."""
    from boundgate.backends.fake import FakeBackend

    settings = fake_settings(tmp_path)
    # moved_zone: planned for the afternoon (the default carbon policy), so its object is
    # changed before it is due; else run at once
    settings.scheduler.policy = "carbon" if moved_zone else "now"
    settings.scheduler.poll_s = 0.05
    clock = FakeClock(start=START)
    fake = FakeBackend("fake", params_b=1, clock=clock)
    fake.token_delay_s = 600.0  # ten minutes a token: each line an hour or more
    app = build_app(settings, clock=clock, backends={"fake": fake})
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        client: openai.OpenAI = live.openai()
        f = client.files.create(file=("in.jsonl", lines(3)), purpose="batch")
        b = client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        if moved_zone:  # submitted by a gateway in another zone (restarted in DE-LU since)
            tenant, body = arun(live.gateway.store.get_batch(b.id))
            batch = json.loads(body)
            batch["boundgate"]["grid_zone"] = "NO"
            arun(live.gateway.store.put_batch(b.id, tenant, b.created_at, json.dumps(batch)))
            planned = batch["boundgate"]["scheduled_start"]
            assert planned > "2023-06-01T05:59:59Z"  # not due yet
            clock.set(datetime.fromisoformat(planned.replace("Z", "+00:00")).timestamp())
        done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
        out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
        ledger = live.ledger()
        hours = {ledger[o["response"]["request_id"]].gco2_per_kwh for o in out}
        assert len(hours) > 1 or moved_zone  # the lines ran at other intensities
        bg = done.model_extra["boundgate"]
        assert bg["carbon_g"] > 0
        assert bg["run_now_carbon_g"] == pytest.approx(bg["carbon_g"])
        assert bg["shifting_saved_g"] == 0.0
        live.http.close()


def test_a_batch_at_its_keys_rate_limit_leaves_the_slot_to_other_batches(tmp_path: Path) -> None:
    """A trial: a batch whose key was at its requests-per-minute limit waited in place for
    the window and held the process's one batch slot, so another tenant's batch waited
    behind it (168 s). Now it hands its job back until the window frees up (the fake clock
    stands still here, so it would wait for ever): the other batch completes meanwhile, and
    the first goes on from the lines it answered once the clock moves, none served twice."""
    settings = fake_settings(tmp_path)
    settings.scheduler.policy = "now"
    settings.scheduler.poll_s = 0.05
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(settings.db_path)
    store.open()
    slow = asyncio.run(store.create_key("slow", rpm=1))
    other = asyncio.run(store.create_key("other"))
    store.close()
    clock = FakeClock(start=START)
    app = build_app(settings, clock=clock)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        a: openai.OpenAI = live.openai(slow.secret)
        b: openai.OpenAI = live.openai(other.secret)
        fa = a.files.create(file=("a.jsonl", lines(3)), purpose="batch")
        ba = a.batches.create(
            input_file_id=fa.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        wait_until(lambda: a.batches.retrieve(ba.id).request_counts.completed == 1)
        fb = b.files.create(file=("b.jsonl", lines(2)), purpose="batch")
        bb = b.batches.create(
            input_file_id=fb.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = wait_until(lambda: (r := b.batches.retrieve(bb.id)).status == "completed" and r)
        assert done.request_counts.completed == 2
        waiting = a.batches.retrieve(ba.id)
        assert waiting.status == "in_progress" and waiting.request_counts.completed == 1
        for _ in range(2):  # one line a minute: each minute on the clock lets one more run
            before = a.batches.retrieve(ba.id).request_counts.completed
            clock.advance(61)
            wait_until(lambda n=before: a.batches.retrieve(ba.id).request_counts.completed > n)
        finished = wait_until(lambda: (r := a.batches.retrieve(ba.id)).status == "completed" and r)
        assert finished.request_counts.completed == 3 and finished.request_counts.failed == 0
        out = [json.loads(x) for x in a.files.content(finished.output_file_id).text.splitlines()]
        assert sorted(o["custom_id"] for o in out) == ["req-0", "req-1", "req-2"]
        rows = [r for r in live.ledger().values() if r.tenant == "slow"]
        assert len(rows) == 3  # each line served once
        live.http.close()


def test_an_embeddings_batch_returns_the_vectors_the_endpoint_would(batch_live: Any) -> None:
    """OpenAI's Batch API takes ``/v1/embeddings`` (bulk indexing is the deferrable work it is
    for); boundgate refused it. Each line is checked at creation as the endpoint checks a
    request (a misspelt parameter is a 400 naming the line); the model and the lengths are
    checked when the line runs, its own error; the vectors are the endpoint's."""
    live, clock = batch_live
    client: openai.OpenAI = live.openai()
    url = "/v1/embeddings"
    typo = client.files.create(
        file=("typo.jsonl", _line("e-0", {"inputs": ["a"], "input": "a"}, url)), purpose="batch"
    )
    with pytest.raises(openai.BadRequestError) as exc:
        client.batches.create(input_file_id=typo.id, endpoint=url, completion_window="24h")
    assert "e-0" in str(exc.value) and "'input'" in str(exc.value)
    content = b"\n".join([
        _line("e-0", {"input": "How do I reset my router?"}, url),
        _line("e-1", {"input": ["first text", "second text"], "encoding_format": "base64",
                      "model": "all-MiniLM-L6-v2"}, url),
        _line("e-2", {"input": "a text", "model": "fake"}, url),  # a chat model: its error
    ])  # fmt: skip
    f = client.files.create(file=("emb.jsonl", content), purpose="batch")
    b = client.batches.create(input_file_id=f.id, endpoint=url, completion_window="24h")
    assert b.endpoint == url and b.status == "in_progress"
    clock.set(START + 24 * 3600)  # due
    done = wait_until(lambda: (r := client.batches.retrieve(b.id)).status == "completed" and r)
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    out = {
        o["custom_id"]: o["response"]
        for o in map(json.loads, client.files.content(done.output_file_id).text.splitlines())
    }
    online = client.embeddings.create(input="How do I reset my router?", model="all-MiniLM-L6-v2")
    vector = online.data[0].embedding
    first = out["e-0"]["body"]
    assert out["e-0"]["status_code"] == 200 and first["object"] == "list"
    assert first["data"][0]["embedding"] == pytest.approx(vector, abs=1e-6)
    assert [d["index"] for d in out["e-1"]["body"]["data"]] == [0, 1]
    assert isinstance(out["e-1"]["body"]["data"][1]["embedding"], str)  # base64 as asked
    (err,) = map(json.loads, client.files.content(done.error_file_id).text.splitlines())
    assert err["custom_id"] == "e-2" and err["response"]["status_code"] == 404
    assert err["response"]["body"]["error"]["code"] == "model_not_found"
    # metered and ledgered as online: each answered line's row, the batch's energy and usage
    ledger = live.ledger()
    assert all(out[c]["request_id"] in ledger for c in ("e-0", "e-1"))
    bg = done.model_extra["boundgate"]
    assert bg["energy_wh"] > 0 and bg["carbon_g"] > 0
    assert done.usage is not None
    tokens = sum(out[c]["body"]["usage"]["prompt_tokens"] for c in ("e-0", "e-1"))
    assert done.usage.input_tokens == tokens > 0 and done.usage.output_tokens == 0


def test_an_embeddings_batch_is_held_to_openais_input_limit_and_needs_embeddings(
    tmp_path: Path,
) -> None:
    """A re-check: 25 lines of 2,048 inputs (51,200) were accepted, where OpenAI takes at most
    50,000 inputs across an embeddings batch; and a gateway with reuse disabled (no
    embedder: ``/v1/embeddings`` is a 404) accepted an embeddings batch whose every line then
    failed. Both are a 400 at creation."""
    from boundgate.server.batches.lines import MAX_EMBEDDING_INPUTS

    many = ["x"] * 2048
    lines_ = [_line(f"e-{i}", {"input": many}, "/v1/embeddings") for i in range(25)]
    with pytest.raises(InvalidRequestError, match="at most 50000 inputs"):
        parse_lines(b"\n".join(lines_), "/v1/embeddings")
    fits = MAX_EMBEDDING_INPUTS - 24 * 2048  # one input more is refused, not this
    lines_[-1] = _line("e-24", {"input": ["x"] * fits}, "/v1/embeddings")
    assert len(parse_lines(b"\n".join(lines_), "/v1/embeddings")) == 25
    settings = fake_settings(tmp_path)
    settings.reuse.enabled = False
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        client: openai.OpenAI = live.openai()
        f = client.files.create(
            file=("e.jsonl", _line("e-0", {"input": "a"}, "/v1/embeddings")), purpose="batch"
        )
        with pytest.raises(openai.BadRequestError) as exc:
            client.batches.create(
                input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h"
            )
        assert exc.value.param == "endpoint" and "serves no embeddings" in str(exc.value)
        live.http.close()
