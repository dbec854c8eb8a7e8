"""PostgreSQL stopped under a running gateway, and started again (an operator's trial of two
replicas): real HTTP to a gateway on a port, a real PostgreSQL server of this module's own
(``pg_server.py``; ``halt`` stops it keeping its data, ``resume`` starts it again on its port).

What the trial saw, and what is checked here instead:

1. a request waited ~30 s for the pool (psycopg_pool's default), then as long again to ledger
   its error, and got a 500: now a 503 ``store_unavailable`` with ``Retry-After`` within
   ``store.connect_timeout_s``;
2. ``/readyz`` stayed 200 (it read a flag set at start-up): now 503 while the store cannot be
   reached, and ``/healthz`` (liveness) stays 200;
3. after PostgreSQL came back a request failed on a connection the restart had closed, or
   waited for the pool's reconnection backoff: now the next requests succeed and each has its
   ledger row, and a request accepted before the outage gets its row too.

The bounds below are generous (the machine is shared): they tell "answers" from "hangs"
(the old code took 30-60 s or more), they measure nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from boundgate.assembly import build_app
from helpers import Live, arun, assert_error, fake_settings, live_server, wait_until

pytestmark = pytest.mark.skipif(
    os.environ.get("BOUNDGATE_TEST_POSTGRES") == "0",
    reason="BOUNDGATE_TEST_POSTGRES=0: PostgreSQL store tests not run",
)

ANSWERS_WITHIN_S = 15.0  # "does not hang": the old code took 30 s, 60 s, or never answered
_schemas = itertools.count(1)


class Outage:
    """The module's PostgreSQL server: ``url`` of a fresh schema; ``halt`` and ``resume``."""

    def __init__(self) -> None:
        from pg_server import PostgresServer

        self.server = PostgresServer().start()

    def schema_url(self) -> str:
        schema = f"outage_{next(_schemas)}"
        with psycopg.connect(self.server.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{self.server.url}?options=-csearch_path%3D{schema}"

    def halt(self) -> None:
        self.server.halt()

    def resume(self) -> None:
        if not (self.server.data / "postmaster.pid").exists():
            self.server.resume()


@pytest.fixture(scope="module")
def outage() -> Iterator[Outage]:
    o = Outage()
    try:
        yield o
    finally:
        o.server.stop()


@contextlib.contextmanager
def outage_gateway(outage: Outage, tmp_path: Path, extra: str = "") -> Iterator[Live]:
    """A gateway on a fresh schema of the module's server, on a port of its own (``extra``:
    more of its config), with PostgreSQL running again after it whatever it did."""
    store = f'[store]\nurl = "{outage.schema_url()}"\nopen_request_lease_s = 1\n'
    settings = fake_settings(tmp_path, store + extra)
    settings.reuse.embedder = "hash"
    settings.reuse.persist_index = False
    try:
        with live_server(build_app(settings)) as live:
            live.http.timeout = httpx.Timeout(ANSWERS_WITHIN_S)
            yield live
    finally:
        outage.resume()


@pytest.fixture
def gateway(outage: Outage, tmp_path: Path) -> Iterator[Live]:
    with outage_gateway(outage, tmp_path) as live:
        yield live


def keyed(live: Live) -> str:
    """A key for tenant acme (a production gateway has keys); the client sends it."""
    secret: str = arun(live.gateway.store.create_key("acme")).secret
    live.http.headers["Authorization"] = f"Bearer {secret}"
    return secret


def chat(live: Live, content: str, **kw: Any) -> httpx.Response:
    body = {"model": "fake", "messages": [{"role": "user", "content": content}], **kw}
    return live.http.post("/v1/chat/completions", json=body)


def fill_the_pool(live: Live, n: int = 8) -> None:
    """Requests at once, so the pool holds several connections (which a restart closes)."""
    done: list[int] = []

    def one(i: int) -> None:
        with httpx.Client(base_url=live.base, timeout=ANSWERS_WITHIN_S) as c:
            body = {"messages": [{"role": "user", "content": f"warm {i}"}]}
            done.append(
                c.post("/v1/chat/completions", json=body, headers=live.http.headers).status_code
            )

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done == [200] * n


def test_readyz_answers_503_while_the_store_is_down_and_healthz_stays_200(
    outage: Outage, gateway: Live
) -> None:
    keyed(gateway)
    ready = gateway.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
    outage.halt()
    down = gateway.http.get("/readyz")  # within ANSWERS_WITHIN_S, or the client raises
    assert down.status_code == 503, down.text  # was 200 "ready": a flag set at start-up
    assert down.json() == {
        "status": "store_unreachable",
        "models": {"fake": True},
        "store": "unreachable",
    }
    assert gateway.http.get("/healthz").status_code == 200  # alive: no restart would help
    outage.resume()
    # ready again by itself, without a restart of the gateway
    ready = wait_until(lambda: (r := gateway.http.get("/readyz")).status_code == 200 and r, 60)
    assert ready.json() == {"status": "ready", "models": {"fake": True}, "store": "reachable"}


@pytest.mark.parametrize("with_keys", [True, False], ids=["keys", "open-local-mode"])
def test_a_request_while_the_store_is_down_is_refused_at_once_with_503_and_retry_after(
    outage: Outage, gateway: Live, with_keys: bool, caplog: pytest.LogCaptureFixture
) -> None:
    if with_keys:
        keyed(gateway)
    assert chat(gateway, "before").status_code == 200
    outage.halt()
    for stream in (False, True):
        started = time.monotonic()
        r = chat(gateway, "during", stream=stream)
        took = time.monotonic() - started
        err = assert_error(r, 503, code="store_unavailable")
        assert err["type"] == "server_error"
        assert int(r.headers["Retry-After"]) >= 1, r.headers
        assert took < ANSWERS_WITHIN_S  # the client's timeout says so too
    # liveness whatever the store does (open local mode asks the store whether keys exist)
    assert gateway.http.get("/healthz").status_code == 200
    outage.resume()
    r = wait_until(lambda: (r := chat(gateway, "after")).status_code == 200 and r, timeout=60)
    assert r.json()["choices"][0]["message"]["content"]
    # no ledger row, so not in requests_total (a trial: an outage was invisible there)
    metrics = gateway.http.get("/metrics").text
    refused = 'boundgate_unledgered_errors_total{code="store_unavailable",status="503"} 2.0'
    assert refused in metrics, [m for m in metrics.splitlines() if "unledgered" in m]
    # the outage is logged once by the store; psycopg_pool's line per attempt is dropped
    pool_lines = ("error connecting in", "reconnection attempt in pool")
    assert not [r for r in caplog.records if r.getMessage().startswith(pool_lines)]


def test_after_the_store_returns_the_next_requests_succeed_and_each_is_ledgered(
    outage: Outage, gateway: Live
) -> None:
    """A restart closes every pooled connection: none is handed to a request afterwards."""
    keyed(gateway)
    fill_the_pool(gateway)
    outage.halt()
    outage.resume()
    ids = []
    for i in range(8):
        r = chat(gateway, f"after the restart {i}")
        assert r.status_code == 200, r.text
        ids.append(r.headers["x-request-id"])
    rows = gateway.ledger()
    assert [rows[i].status for i in ids] == [200] * len(ids)


def test_a_request_accepted_before_the_outage_gets_its_row_once_the_store_returns(
    outage: Outage, gateway: Live
) -> None:
    """Its answer could not be ledgered (the store went down mid-stream): the client is told
    503 ``store_unavailable`` in the stream, and its row says so once the store is back, with
    the tokens it was sent (a trial's outage left the write-ahead note's ``interrupted`` row,
    0 tokens and 0 Wh, for an answer delivered in full)."""
    keyed(gateway)
    gateway.gateway.backends["fake"].token_delay_s = 0.2  # a few seconds of stream
    body = {"model": "fake", "messages": [{"role": "user", "content": "a long one"}]}
    events: list[str] = []
    with gateway.http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        request_id = r.headers["x-request-id"]
        lines = r.iter_lines()
        for line in lines:  # the model has started: its note is in the store
            if line.startswith("data: "):
                events.append(line)
                break
        outage.halt()
        events.extend(line for line in lines if line.startswith("data: "))
    last = json.loads(events[-1].removeprefix("data: "))
    assert last["error"]["code"] == "store_unavailable", events[-3:]
    outage.resume()
    gateway.gateway.backends["fake"].token_delay_s = 0.0
    assert chat(gateway, "after").status_code == 200

    def final() -> Any:  # its note may be recovered first: the row replaces it then
        row = gateway.ledger().get(request_id)
        return row if row is not None and row.outcome != "interrupted" else None

    row = wait_until(final, timeout=60)
    assert (row.outcome, row.status, row.error_code) == ("error", 503, "store_unavailable"), row
    # the generation's usage and energy (the note's row had its last renewal's: 0 and 0)
    assert row.completion_tokens > 1 and row.wh > 0, row


@pytest.mark.slow
def test_after_a_long_outage_the_first_request_does_not_wait_for_the_pools_backoff(
    outage: Outage, tmp_path: Path
) -> None:
    """psycopg_pool retries a lost connection after 1, 2, 4 … 64 s by default: a request soon
    after a 70 s outage waited for the attempt due at ~127 s (46 s in a run, then a 500). The
    pool now gives an attempt up after ``store.connect_timeout_s``, and the next request
    connects. Here with 2 s: the pool's own schedule (each attempt 2 s, then 1, 2, 4, 8, 16,
    32 s apart, ±10 %) would try next at about 75 s, 30 s after this 45 s outage ends."""
    with outage_gateway(outage, tmp_path, "connect_timeout_s = 2\n") as gateway:
        keyed(gateway)
        assert chat(gateway, "before").status_code == 200
        outage.halt()
        time.sleep(45)  # the gateway's own background work keeps asking the pool meanwhile
        outage.resume()
        r = chat(gateway, "after a long outage")  # within ANSWERS_WITHIN_S, or it raises
        assert r.status_code == 200, r.text
        assert gateway.ledger()[r.headers["x-request-id"]].status == 200


def test_a_call_the_server_does_not_answer_fails_its_request_with_503_not_a_hang(
    outage: Outage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A trial froze PostgreSQL (connections open, no replies) and held a lock on the ledger:
    requests waited 480 s and more, 19 s behind the lock. A call on a connection is now
    bounded by ``store.statement_timeout_s`` (here 1 s) and the request answered 503
    ``store_unavailable``; once the lock is gone, requests are answered again."""
    url = outage.schema_url()
    extra = f'[store]\nurl = "{url}"\nstatement_timeout_s = 1\n'
    settings = fake_settings(tmp_path, extra)
    settings.reuse.embedder = "hash"
    settings.reuse.persist_index = False
    with live_server(build_app(settings)) as live:
        live.http.timeout = httpx.Timeout(ANSWERS_WITHIN_S)
        assert chat(live, "before the lock").status_code == 200
        with psycopg.connect(url) as locker:  # a transaction holding the lock until it ends
            locker.execute("LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            r = chat(live, "behind the lock")  # within ANSWERS_WITHIN_S, or the client raises
            err = assert_error(r, 503, code="store_unavailable")
            assert err["type"] == "server_error"
            assert time.monotonic() - started < ANSWERS_WITHIN_S
            assert "did not answer within 1 s (store.statement_timeout_s)" in caplog.text
            locker.rollback()
        r = wait_until(lambda: (r := chat(live, "after")).status_code == 200 and r, timeout=30)
        assert r.json()["choices"][0]["message"]["content"]


def test_a_read_only_database_is_a_503_and_readyz_says_not_ready(
    outage: Outage, gateway: Live
) -> None:
    """A trial made the database read-only under a serving gateway (a failover to a standby
    does): requests got 500s, a cached question and a bad key no response at all, and
    ``/readyz`` stayed 200. Now 503 ``store_unavailable`` and ``/readyz`` 503, and serving
    again once the database takes writes."""
    keyed(gateway)
    assert chat(gateway, "asked before").status_code == 200

    def read_only(on: bool) -> None:
        with psycopg.connect(outage.server.url, autocommit=True) as conn:
            value = "on" if on else "off"
            conn.execute(f"ALTER SYSTEM SET default_transaction_read_only = {value}")
            conn.execute("SELECT pg_reload_conf()")

    read_only(True)
    try:
        wait_until(lambda: gateway.http.get("/readyz").status_code == 503, timeout=30)
        for r in (chat(gateway, "asked before"), chat(gateway, "new", stream=True)):
            assert_error(r, 503, code="store_unavailable")
        bad_key = gateway.http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": "Bearer bg-nope-nope"},
        )
        assert bad_key.status_code in (401, 503), bad_key.text  # an answer, not a reset
    finally:
        read_only(False)
    wait_until(lambda: gateway.http.get("/readyz").status_code == 200, timeout=30)
    assert chat(gateway, "after").status_code == 200


def test_the_dashboard_answers_a_page_while_the_store_is_down(
    outage: Outage, gateway: Live
) -> None:
    """A trial's outage answered every dashboard page and the login form with the API's JSON
    body; a browser gets a page (503, ``Retry-After``) as for the dashboard's other errors."""
    keyed(gateway)
    admin = arun(gateway.gateway.store.create_key("ops", admin=True)).secret
    same_origin = {"origin": gateway.base}  # as a browser on the dashboard sends it
    with httpx.Client(
        base_url=gateway.base, timeout=ANSWERS_WITHIN_S, headers=same_origin
    ) as browser:
        login = {"key": admin, "next": "/dashboard"}
        assert browser.post("/dashboard/login", data=login).status_code == 303
        assert browser.get("/dashboard/ledger").status_code == 200
        outage.halt()
        for r in (browser.get("/dashboard/ledger"), browser.post("/dashboard/login", data=login)):
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("text/html"), r.headers
            assert "cannot reach its store" in r.text and int(r.headers["Retry-After"]) >= 1
    api = chat(gateway, "the API keeps its JSON")
    assert_error(api, 503, code="store_unavailable")


@pytest.mark.parametrize("with_keys", [True, False], ids=["keys", "open-local-mode"])
def test_metrics_and_the_dashboard_answer_while_the_store_is_down(
    outage: Outage, gateway: Live, with_keys: bool
) -> None:
    """A trial: during an outage ``/metrics`` answered 503 (its counter of refused requests
    could be read only afterwards) and, in open local mode, the dashboard the API's JSON. The
    store's last answer on keys stands while it is down: the scrape renders, with the
    outage's refusals counted; the dashboard answers a page."""
    if with_keys:
        keyed(gateway)
    assert chat(gateway, "before").status_code == 200
    outage.halt()
    assert_error(chat(gateway, "during"), 503, code="store_unavailable")
    scrape = gateway.http.get("/metrics")
    assert scrape.status_code == 200, scrape.text
    refused = 'boundgate_unledgered_errors_total{code="store_unavailable",status="503"} 1.0'
    assert refused in scrape.text, [m for m in scrape.text.splitlines() if "unledgered" in m]
    if not with_keys:
        page = gateway.http.get("/dashboard")
        assert page.status_code == 503, page.text
        assert page.headers["content-type"].startswith("text/html"), page.headers
        # a page of another name is still refused (open local mode's Host check)
        other = gateway.http.get("/metrics", headers={"host": "rebound.example"})
        assert_error(other, 400, code="untrusted_host")


def test_a_budget_settle_the_outage_stopped_is_made_once_the_store_returns(
    outage: Outage, gateway: Live
) -> None:
    """A trial: a stream answered while PostgreSQL was down got its ledger row later, but its
    budget settle failed once and was never tried again; when the hold's lease ran out the
    key's counter held a fraction of what its rows said (753 tokens of 1,152, a budget of 900
    overrun). Settled once the store is back: the counter's tokens are the row's."""
    from boundgate.tenants import DAY_S, key_counters, tokens_counter

    made = arun(gateway.gateway.store.create_key("acme", daily_tokens=100_000))
    gateway.http.headers["Authorization"] = f"Bearer {made.secret}"
    gateway.gateway.backends["fake"].token_delay_s = 0.2
    body = {"model": "fake", "messages": [{"role": "user", "content": "a long one"}]}
    with gateway.http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        request_id = r.headers["x-request-id"]
        lines = r.iter_lines()
        for line in lines:
            if line.startswith("data: "):
                break
        outage.halt()
        for _ in lines:  # to its end: the settle fails with the store down
            pass
    time.sleep(8)  # past store.connect_timeout_s: its settle fails (no wait for a result)
    outage.resume()
    gateway.gateway.backends["fake"].token_delay_s = 0.0

    def final() -> Any:
        row = gateway.ledger().get(request_id)
        return row if row is not None and row.outcome != "interrupted" else None

    row = wait_until(final, timeout=60)
    spent = row.prompt_tokens + row.completion_tokens
    assert spent > 1
    counter = tokens_counter(key_counters(made.key.id))
    window = float(int(time.time() // DAY_S) * DAY_S)

    def settled() -> Any:
        state = arun(gateway.gateway.store.counter_state(counter, window, time.time()))
        # what the budget counts of the request (its prompt as held, the tokens it was sent)
        return state if state.used >= spent and state.held == 0 else None

    wait_until(settled, timeout=60)


def test_a_batch_goes_on_after_a_store_outage_cuts_a_line_short(
    outage: Outage, tmp_path: Path
) -> None:
    """A trial: PostgreSQL stopped for 5 s while a batch's line ran; the line's ledger row
    could not be committed, the line was written to the error file as a 500
    ``internal_error`` and, on the next outage, the batch ended ``failed`` with no retry (an
    outage spent one of the job's three attempts). The outage hands the job back, the
    attempt not counted, and the batch completes with every line answered."""
    scheduler = '[scheduler]\npolicy = "now"\npoll_s = 0.2\njob_lease_s = 3\n'
    with outage_gateway(outage, tmp_path, scheduler) as live:
        keyed(live)
        fake = live.gateway.backends["fake"]
        fake.token_delay_s = 0.15  # a line answers in a second or two
        lines = "".join(
            json.dumps(
                {
                    "custom_id": f"q{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"messages": [{"role": "user", "content": f"Question {i}?"}]},
                }
            )
            + "\n"
            for i in range(3)
        )
        f = live.http.post(
            "/v1/files",
            files={"file": ("in.jsonl", lines.encode())},
            data={"purpose": "batch"},
        )
        assert f.status_code == 200, f.text
        b = live.http.post(
            "/v1/batches",
            json={
                "input_file_id": f.json()["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        )
        assert b.status_code == 200, b.text
        batch_id = b.json()["id"]

        def line_running() -> Any:  # the first line's generation has started
            return fake.calls or None

        wait_until(line_running, timeout=60)
        outage.halt()
        time.sleep(8)  # past store.connect_timeout_s: the line's row cannot be committed
        outage.resume()
        fake.token_delay_s = 0.0

        def ended() -> Any:
            r = live.http.get(f"/v1/batches/{batch_id}")
            if r.status_code != 200 or r.json()["status"] not in ("completed", "failed"):
                return None
            return r.json()

        batch = wait_until(ended, timeout=90)
        assert batch["status"] == "completed", batch
        assert batch["request_counts"] == {"total": 3, "completed": 3, "failed": 0}, batch
