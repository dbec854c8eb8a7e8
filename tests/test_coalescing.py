"""Request coalescing (single flight) through HTTP: identical concurrent requests cost one
backend run, waiters are served the stored answer as ``hit-coalesced``, and a leader that
fails or leaves lets them run on their own.

The fake backend's answer is long (200 tokens) and slow per token, so the first request stays
in flight until the test has seen the others wait; then the delay is dropped and it finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from boundgate.assembly import build_app
from boundgate.backends.fake import FakeBackend
from boundgate.testing import ThreadedServer
from helpers import Live, assert_error, fake_settings, wait_until

Q = "What is the capital of Australia?"
LONG = " ".join(f"w{i}" for i in range(200))


@contextlib.contextmanager
def slow_gateway(tmp_path: Path, extra: str = "") -> Iterator[tuple[Live, FakeBackend]]:
    app = build_app(fake_settings(tmp_path, extra))
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        fake = live.gateway.backends["fake"]
        fake.answers = lambda _question: LONG
        fake.token_delay_s = 0.1  # held in flight until the test lets it go (≤ 20 s)
        try:
            yield live, fake
        finally:
            live.http.close()


def body(question: str = Q, **kw: Any) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": 300,
        **kw,
    }


def post(live: Live, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    with httpx.Client(base_url=live.base, timeout=120) as client:
        return client.post("/v1/chat/completions", json=payload, headers=headers or {})


def streamed(live: Live, payload: dict[str, Any]) -> tuple[httpx.Headers, str]:
    """A streamed request's headers and the text its chunks carry."""
    with (
        httpx.Client(base_url=live.base, timeout=120) as client,
        client.stream("POST", "/v1/chat/completions", json={**payload, "stream": True}) as r,
    ):
        assert r.status_code == 200
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    return r.headers, text


def coalesced(live: Live) -> dict[str, float]:
    """boundgate_reuse_coalesced_total by result."""
    families = text_string_to_metric_families(live.http.get("/metrics").text)
    (family,) = [f for f in families if f.name == "boundgate_reuse_coalesced"]
    return {s.labels["result"]: s.value for s in family.samples if s.name.endswith("_total")}


def release(fake: FakeBackend) -> None:
    fake.token_delay_s = 0.0


def test_identical_concurrent_requests_cost_one_backend_run(tmp_path: Path) -> None:
    """One leader, two waiting non-streamed and one waiting streamed request: one backend
    call, four equal answers, the waiters ledgered as reuse with the leader's energy avoided."""
    with slow_gateway(tmp_path) as (live, fake), ThreadPoolExecutor(4) as pool:
        flights = live.gateway.reuse.flights
        leader = pool.submit(post, live, body())
        wait_until(lambda: fake.calls == 1 and len(flights) == 1)
        waiters = [pool.submit(post, live, body()) for _ in range(2)]
        stream_waiter = pool.submit(streamed, live, body())
        wait_until(lambda: flights.waiting() == 3)
        release(fake)
        first = leader.result()
        rest = [w.result() for w in waiters]
        stream_headers, stream_text = stream_waiter.result()

        assert fake.calls == 1
        assert first.status_code == 200 and first.headers["x-boundgate-reuse"] == "miss"
        text = first.json()["choices"][0]["message"]["content"]
        assert text == LONG
        doc = first.headers["x-boundgate-document"]
        for r in rest:
            assert r.status_code == 200, r.text
            assert r.headers["x-boundgate-reuse"] == "hit-coalesced"
            assert r.headers["x-boundgate-document"] == doc
            assert r.json()["choices"][0]["message"]["content"] == text
            assert float(r.headers["x-boundgate-energy-avoided-wh"]) > 0
        assert stream_headers["x-boundgate-reuse"] == "hit-coalesced"
        assert stream_text == text

        ledger = live.ledger()
        lead_row = ledger[first.headers["x-request-id"]]
        ids = [r.headers["x-request-id"] for r in rest] + [stream_headers["x-request-id"]]
        for rid in ids:
            row = ledger[rid]
            assert row.reuse == "hit-coalesced" and row.document_id == doc
            assert 0 < row.avoided_wh <= lead_row.wh and row.completion_tokens == 200
        (report,) = asyncio.run(live.gateway.store.report())
        assert report.reused == 3
        assert coalesced(live) == {"served": 3.0}
        assert flights.waiting() == 0 and len(flights) == 0


def test_a_failing_leader_lets_its_waiters_regroup_behind_one_of_them(tmp_path: Path) -> None:
    """The leader's backend error is the leader's: none of its waiters gets the error. They
    regroup: one runs the model and answers, the other is served its answer (they each ran
    the model, as five waiters of a leader whose client left did: a trial)."""
    with slow_gateway(tmp_path) as (live, fake), ThreadPoolExecutor(3) as pool:
        flights = live.gateway.reuse.flights
        fake.failures.append(150)  # the leader fails 150 tokens in; the others do not
        leader = pool.submit(post, live, body())
        wait_until(lambda: fake.calls == 1 and len(flights) == 1)
        waiters = [pool.submit(post, live, body()) for _ in range(2)]
        wait_until(lambda: flights.waiting() == 2)
        release(fake)
        assert_error(leader.result(), 503)
        answers = [w.result() for w in waiters]
        for r in answers:
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == LONG
        assert sorted(r.headers["x-boundgate-reuse"] for r in answers) == ["hit-coalesced", "miss"]
        assert fake.calls == 2
        assert coalesced(live) == {"alone": 1.0, "served": 1.0}
        assert flights.waiting() == 0 and len(flights) == 0


def test_a_leader_that_leaves_lets_its_waiters_run(tmp_path: Path) -> None:
    """A streamed leader whose client disconnects stores nothing; its waiter runs the model
    itself and gets the whole answer."""
    with slow_gateway(tmp_path) as (live, fake), ThreadPoolExecutor(1) as pool:
        flights = live.gateway.reuse.flights
        waiter: Future[Any] | None = None
        with (
            httpx.Client(base_url=live.base, timeout=120) as client,
            client.stream("POST", "/v1/chat/completions", json=body(stream=True)) as r,
        ):
            lines = r.iter_lines()
            assert next(line for line in lines if line.startswith("data: {"))
            waiter = pool.submit(post, live, body())
            wait_until(lambda: flights.waiting() == 1)
        # the leader's client is gone: its generation is cancelled, the waiter runs alone
        release(fake)
        answer = waiter.result()
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-boundgate-reuse"] == "miss"
        assert answer.json()["choices"][0]["message"]["content"] == LONG
        assert fake.calls == 2
        assert coalesced(live) == {"alone": 1.0}


def test_other_tenants_and_novel_requests_are_not_coalesced(tmp_path: Path) -> None:
    """Only requests that could share an answer wait: another tenant's identical question and
    a request above the temperature dial (never reused) each run the model."""
    with slow_gateway(tmp_path) as (live, fake), ThreadPoolExecutor(3) as pool:
        store = live.gateway.store
        acme = {"Authorization": f"Bearer {asyncio.run(store.create_key('acme')).secret}"}
        globex = {"Authorization": f"Bearer {asyncio.run(store.create_key('globex')).secret}"}
        flights = live.gateway.reuse.flights
        leader = pool.submit(post, live, body(), acme)
        wait_until(lambda: fake.calls == 1 and len(flights) == 1)
        others = [
            pool.submit(post, live, body(), globex),
            pool.submit(post, live, body(temperature=1.0), acme),
        ]
        wait_until(lambda: fake.calls == 3)  # both reached the model while the leader runs
        assert flights.waiting() == 0
        release(fake)
        assert leader.result().headers["x-boundgate-reuse"] == "miss"
        reuse = [o.result().headers["x-boundgate-reuse"] for o in others]
        assert reuse == ["miss", "bypass"]
        assert coalesced(live) == {}


def test_a_zero_wait_turns_coalescing_off(tmp_path: Path) -> None:
    with (
        slow_gateway(tmp_path, "\n[reuse]\ncoalesce_wait_s = 0\n") as (live, fake),
        ThreadPoolExecutor(2) as pool,
    ):
        first = pool.submit(post, live, body())
        wait_until(lambda: fake.calls == 1)
        second = pool.submit(post, live, body())
        wait_until(lambda: fake.calls == 2)
        release(fake)
        assert [f.result().headers["x-boundgate-reuse"] for f in (first, second)] == [
            "miss",
            "miss",
        ]
        assert len(live.gateway.reuse.flights) == 0


def test_on_a_local_model_a_waiter_outlasts_its_wait_bound(tmp_path: Path) -> None:
    """A local model runs one generation at a time, so a waiter whose wait bound runs out
    would only queue behind the leader and compute the same answer again: it waits on until
    the leader lands (a trial saw 96 s generations make 60 s waiters run the model again)."""
    extra = "\n[reuse]\ncoalesce_wait_s = 0.2\n"
    with slow_gateway(tmp_path, extra) as (live, fake), ThreadPoolExecutor(2) as pool:
        assert not fake.remote
        flights = live.gateway.reuse.flights
        leader = pool.submit(post, live, body())
        wait_until(lambda: fake.calls == 1 and len(flights) == 1)
        waiter = pool.submit(post, live, body())
        wait_until(lambda: flights.waiting() == 1)
        # several wait bounds pass while the leader is still generating
        time.sleep(1.0)
        assert flights.waiting() == 1 and not leader.done()
        release(fake)
        assert leader.result().headers["x-boundgate-reuse"] == "miss"
        r = waiter.result()
        assert r.status_code == 200 and r.headers["x-boundgate-reuse"] == "hit-coalesced"
        assert fake.calls == 1
        assert coalesced(live) == {"served": 1.0}


def test_identical_auto_requests_share_a_rungs_run(tmp_path: Path) -> None:
    """A trial: two identical ``model: "auto"`` requests at once ran the local rung twice
    (two 1,024-token generations), where the same two naming the model shared one. A rung
    waits for an identical request computing its answer, as a named model does."""
    ladder = (
        '[models.big]\nbackend = "fake"\nparams_b = 70\n'
        '[routing.ladders]\ndefault = ["fake", "big"]\n'
        # every task from the first rung (lookups and mathematics start one up by default)
        "[routing.policy.lookup]\nfirst_rung = 0\n[routing.policy.math]\nfirst_rung = 0\n"
    )
    with slow_gateway(tmp_path, ladder) as (live, fake), ThreadPoolExecutor(2) as pool:
        flights = live.gateway.reuse.flights
        leader = pool.submit(post, live, body(model="auto"))
        wait_until(lambda: fake.calls == 1 and len(flights) == 1)
        waiter = pool.submit(post, live, body(model="auto"))
        wait_until(lambda: flights.waiting() == 1)
        release(fake)
        first, second = leader.result(), waiter.result()
        assert first.status_code == 200 and second.status_code == 200, (first.text, second.text)
        assert fake.calls == 1 and live.gateway.backends["big"].calls == 0
        assert first.headers["x-boundgate-route"] == "fake;answered"
        assert second.headers["x-boundgate-route"] == "fake;reused"
        text = first.json()["choices"][0]["message"]["content"]
        assert second.json()["choices"][0]["message"]["content"] == text == LONG
        assert coalesced(live) == {"served": 1.0}
        assert flights.waiting() == 0 and len(flights) == 0
