"""Helpers the test modules share (import them from here, not from ``conftest``): a running
gateway with its clients (``Live``), polling for a condition, store calls from sync code, a
fake-backend configuration, and the OpenAI error shape."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from boundgate.assembly import build_app
from boundgate.backends.base import GenerationRequest, Message
from boundgate.gateway import Gateway
from boundgate.reuse.engine import Lookup, ReuseEngine
from boundgate.reuse.verifier import Verifier
from boundgate.settings import ReuseSettings, Settings, load_settings
from boundgate.store import LedgerRow, SQLiteStore, Store
from boundgate.store.keys import key_id_of
from boundgate.tenants import DAY_S, Tenant, key_counters, tokens_counter
from boundgate.testing import ThreadedServer

T = TypeVar("T")


def wait_until(cond: Any, timeout: float = 120.0) -> Any:
    """Poll ``cond`` until it returns something truthy (and return that), or fail after
    ``timeout`` seconds (a bound for a broken test on a busy machine, never a measurement)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def arun(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine (a store call) from synchronous test code; on a worker thread when
    this thread already runs an event loop (Playwright's sync API does)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def fake_settings(tmp: Path, extra: str = "") -> Settings:
    cfg = write_config(
        tmp / "boundgate.toml",
        f"""
[server]
data_dir = "{tmp / "data"}"
grid_zone = "DE-LU"

[models.fake]
backend = "fake"
default = true
params_b = 1
{extra}
""",
    )
    return load_settings(cfg)


class Live:
    """A running gateway and handy clients for it: on a real port (``Live(server, app)``), or
    in-process (``Live.in_process(app)``) where the socket adds nothing to what is tested."""

    def __init__(self, server: ThreadedServer | None, app: Any) -> None:
        self.server = server
        self.app = app
        if server is not None:
            self.url = server.url
            self.base = server.base_url
            self.http: httpx.Client = httpx.Client(base_url=server.base_url, timeout=120)

    @classmethod
    @contextlib.contextmanager
    def in_process(cls, app: Any) -> Iterator[Live]:
        """The app served through Starlette's ``TestClient`` (its lifespan runs; no socket).
        Its responses arrive whole, so streams are read only once they have ended: tests of
        disconnects and of the socket keep a real server."""
        from fastapi.testclient import TestClient

        live = cls(None, app)
        # a loopback name: open local mode answers no other Host (server/local.py)
        live.base = "http://127.0.0.1"
        live.url = live.base + "/v1"
        # a fault is answered as a server would (500 in OpenAI's shape), not raised here
        with TestClient(app, base_url=live.base, raise_server_exceptions=False) as client:
            live.http = client
            yield live

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway

    def openai(self, api_key: str = "unused") -> Any:
        import openai

        in_process = self.http if self.server is None else None
        return openai.OpenAI(
            base_url=self.url, api_key=api_key, max_retries=0, http_client=in_process
        )

    def ledger(self) -> dict[str, Any]:
        return {r.id: r for r in arun(self.gateway.store.ledger())}


def one_line_batch_file(path: Path) -> Path:
    """A batch input file at ``path`` of one greedy chat request ("q", custom_id "c0")."""
    line = {
        "custom_id": "c0",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"messages": [{"role": "user", "content": "q"}], "temperature": 0},
    }
    path.write_text(json.dumps(line) + "\n")
    return path


def assert_error(
    r: Any, status: int, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An error response in OpenAI's shape with this status (and param/code if given)."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"] and "Traceback" not in err["message"]
    if param is not None:
        assert err["param"] == param
    if code is not None:
        assert err["code"] == code
    return err


@contextlib.contextmanager
def local_server(tmp: Path, queue_size: int = 1) -> Iterator[Live]:
    """A gateway on the packaged SmolLM2 through llama.cpp, on a port of its own.

    One llama.cpp thread: the suite runs beside other work on few cores, where llama.cpp's
    spinning worker threads slow each other down by an order of magnitude (three 40-token
    generations took 50-110 s with two threads and 6 s with one on 2 busy cores)."""
    cfg = write_config(
        tmp / "boundgate.toml",
        f"""
[server]
data_dir = "{tmp / "data"}"

[limits]
queue_size = {queue_size}

[models.smollm2-135m]
backend = "llama_cpp"
default = true
n_ctx = 512
n_threads = 1
""",
    )
    with live_server(build_app(load_settings(cfg))) as live:
        yield live


@contextlib.contextmanager
def live_server(app: Any, header_read_timeout_s: float = 60.0) -> Iterator[Live]:
    """``app`` served on a port of its own, with a client; closed after. Served as
    ``boundgate serve`` serves, with a deadline for each request's headers
    (``server.header_read_timeout_s``)."""
    with ThreadedServer(app, header_read_timeout_s=header_read_timeout_s) as srv:
        live = Live(srv, app)
        try:
            yield live
        finally:
            live.http.close()


def trusting_verifier() -> Verifier:
    """A verifier that serves any candidate at or above 0.5 once it has one label (δ 0.9, no
    prior, no sampled verification): for tests of what is found, not of the bound."""
    return Verifier(
        ReuseSettings(
            error_bound=0.9,
            initial_threshold=0.5,
            verify_rate=0.0,
            prior=False,
            min_observations=1,
        )
    )


def greedy_chat(question: str) -> GenerationRequest:
    """One user message at temperature 0 (max 50 tokens) to model "m"."""
    return GenerationRequest(
        model="m", messages=[Message("user", question)], temperature=0.0, max_tokens=50
    )


async def engine_lookup(e: ReuseEngine, question: str) -> Lookup:
    """``e``'s lookup of ``question`` (``greedy_chat``) for tenant "t" on model version "v"."""
    p, k = e.plan_for(
        greedy_chat(question), tenant="t", model_version="v", endpoint="/e", cache_control=None
    )
    return await e.lookup(p, k)


async def complete_together(gw: Gateway, *requests: GenerationRequest) -> list[Any]:
    """``requests`` sent to ``gw`` at once (tenant "acme", chat completions), their results
    in order, once the gateway's pending writes are done."""

    async def one(req: GenerationRequest) -> Any:
        return await gw.complete(gw.context(Tenant("acme"), "/v1/chat/completions"), req)

    results = await asyncio.gather(*(one(r) for r in requests))
    await gw.drain()
    return list(results)


async def row_of(gw: Gateway, request_id: str) -> LedgerRow:
    """``gw``'s ledger row of ``request_id``, once its pending writes are done."""
    await gw.drain()
    rows = {r.id: r for r in await gw.store.ledger()}
    return rows[request_id]


def counted(secret: str) -> str:
    """Whose counters the requests of the key ``secret`` draw on (its own: limits are a
    key's)."""
    key_id = key_id_of(secret)
    assert key_id is not None
    return key_counters(key_id)


def charged_today(live: Live, owner: str) -> int:
    """What ``owner``'s daily budget has been charged today on a served gateway (``live``),
    once every hold is settled (settling follows the response: waited for, not drained
    from this thread's loop)."""
    gw = live.gateway

    def settled() -> tuple[int] | None:
        now = gw.clock.time()
        counter = tokens_counter(owner)
        state = arun(gw.store.counter_state(counter, (now // DAY_S) * DAY_S, now))
        return None if state.held else (state.used,)

    return int(wait_until(settled)[0])


async def used_today(gw: Gateway, owner: str) -> int:
    """The tokens ``owner``'s daily budget has been charged today (every hold settled):
    a tenant's name, or ``counted(secret)`` for a key's own budget."""
    await gw.drain()
    now = gw.clock.time()
    state = await gw.store.counter_state(tokens_counter(owner), (now // DAY_S) * DAY_S, now)
    assert state.held == 0  # every hold was settled
    return state.used


# The ledger rows the per-key counters' migration is tested on (SQLite 0021, PostgreSQL 0016):
# today's usage of each key counts, a hit, another day and a request without a key do not.
KEYS_LEDGER_INSERT = (
    "INSERT INTO ledger (id, ts, tenant, key_id, endpoint, prompt_tokens, completion_tokens, "
    "reasoning_tokens, outcome, status, reuse) "
    "VALUES (?, ?, 'acme', ?, '/v1/chat/completions', ?, ?, ?, 'ok', 200, ?)"
)


def keys_ledger_rows(now: float) -> list[tuple[object, ...]]:
    """(id, ts, key_id, prompt, completion, reasoning tokens, reuse) for ``KEYS_LEDGER_INSERT``."""
    return [
        ("a", now, "k1", 10, 20, 5, None),
        ("b", now, "k1", 1, 2, 0, "miss"),
        ("c", now, "k1", 5, 5, 5, "hit-exact"),  # served from a stored answer: free
        ("d", now - 2 * 86400, "k1", 100, 100, 0, None),  # another day
        ("e", now, "k2", 3, 4, 0, None),
        ("f", now, None, 50, 50, 0, None),  # no key: the tenant's own counter
    ]


def assert_keys_used_today(store: Any, now: float) -> None:
    """``store``'s per-key counters after the migration, from ``keys_ledger_rows``."""
    day = float(int(now // 86400) * 86400)
    assert asyncio.run(store.counters_used("tokens:key:", day)) == {
        "tokens:key:k1": 33,
        "tokens:key:k2": 7,
    }
    assert asyncio.run(store.counters_used("reasoning:key:", day)) == {"reasoning:key:k1": 5}


# The batches the open-batches index's migration is tested on (SQLite 0022, PostgreSQL 0017):
# many ended in every way, and one not ended whose job was never queued (stranded).
BATCHES_INSERT = "INSERT INTO batches (id, tenant, created, body) VALUES (?, 'acme', ?, ?)"
ENDED_BATCHES = 2000


def batches_rows() -> list[tuple[object, ...]]:
    """(id, created, body) for ``BATCHES_INSERT``: the stranded batch is the last one."""
    ended = ("completed", "failed", "expired", "cancelled")
    rows: list[tuple[object, ...]] = []
    for i in range(ENDED_BATCHES):
        body = {"id": f"b{i}", "status": ended[i % 4], "boundgate": {"job_id": f"job_{i}"}}
        rows.append((f"b{i}", float(i), json.dumps(body)))
    body = {"id": "b_open", "status": "in_progress", "boundgate": {"job_id": "job_never"}}
    rows.append(("b_open", float(ENDED_BATCHES), json.dumps(body)))
    return rows


# --- rebind jobs queued before jobs named their requirement (SQLite 0023, PostgreSQL 0018) ---

# a model name JSON has to escape, and a version of the local form: the migrations' JSON must
# be jobs.model_requirement's to the byte
ODD_MODEL = 'mödel "q" \\ ok'
REQUIRES_DOCUMENTS_INSERT = (
    "INSERT INTO documents (id, entry, tenant, model, model_version, state, created, body) "
    "VALUES (?, NULL, 't', ?, 'v1', 'stale', 1.0, '{}')"
)
REQUIRES_DOCUMENTS = [("doc_a", "fake"), ("doc_b", ODD_MODEL)]
REQUIRES_JOBS_INSERT = (
    "INSERT INTO jobs (id, kind, payload, state, created, not_before, deadline) "
    "VALUES (?, ?, ?, ?, 1.0, 2.0, 3.0)"
)


def requires_jobs() -> list[tuple[str, str, str, str]]:
    """(id, kind, payload, state) for ``REQUIRES_JOBS_INSERT``: rebind jobs as a gateway
    before job requirements queued them."""

    def rebind(document: str, version: str | None = None) -> str:
        payload = {"document": document, "_duration_s": 60.0}
        if version is not None:
            payload["version"] = version
        return json.dumps(payload, sort_keys=True)

    return [
        ("j_open", "rebind", rebind("doc_a", "v2"), "pending"),
        ("j_odd", "rebind", rebind("doc_b", "x.gguf@sha256:0f"), "running"),
        ("j_unversioned", "rebind", rebind("doc_a"), "pending"),  # handed back by its handler
        ("j_done", "rebind", rebind("doc_a", "v3"), "done"),
        ("j_unknown", "rebind", rebind("doc_gone", "v2"), "pending"),
        ("j_batch", "batch", json.dumps({"batch": "b", "version": "v2"}), "pending"),
    ]


def assert_job_requirements(store: Any) -> None:
    """After the migration: each open rebind job naming its version requires its document's
    model at that version (``jobs.model_requirement``); every other job requires nothing."""
    from boundgate.scheduler.jobs import model_requirement

    assert {j.id: j.requires for j in asyncio.run(store.jobs())} == {
        "j_open": model_requirement("fake", "v2"),
        "j_odd": model_requirement(ODD_MODEL, "x.gguf@sha256:0f"),
        "j_unversioned": None,
        "j_done": None,
        "j_unknown": None,
        "j_batch": None,
    }


OpenStore = Callable[..., Store]


def store_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """The body of an ``open_store`` fixture parametrized over ``sqlite`` / ``postgres``:
    yields a function that opens a store on the test's fresh database (each call: another
    process's); ``open_store(Mixin)``: of a subclass of the implementation with ``Mixin``
    first (a store that acts at one of its methods). Closes them all afterwards."""
    url = request.getfixturevalue("postgres_schema") if request.param == "postgres" else ""
    opened: list[Store] = []

    def open_(mixin: type | None = None) -> Store:
        if request.param == "postgres":
            from boundgate.store.postgres import PostgresStore

            base: type = PostgresStore
            args: tuple[Any, ...] = (url,)
            kw: dict[str, Any] = {"max_size": 4}
        else:
            base, args, kw = SQLiteStore, (tmp_path / "store.db",), {}
        cls = type(f"{mixin.__name__}{base.__name__}", (mixin, base), {}) if mixin else base
        store: Store = cls(*args, **kw)
        store.open()
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def job_replica(
    tmp: Path, store: Store, clock: Any, model: str = "fake", version: str = "v1"
) -> Gateway:
    """A gateway process on ``store`` serving only ``model`` (a fake backend) at ``version``
    (its data dir under ``tmp``), as the background-job tests run them: a meaning is bound at
    its first asker, two askers of a creative prompt earn a round of 3 variants, and jobs
    start at once."""
    from boundgate.assembly import build_gateway
    from boundgate.backends.fake import FakeBackend

    tmp.mkdir(parents=True, exist_ok=True)
    settings = fake_settings(tmp, '[reuse]\nembedder = "hash"')
    settings.reuse.persist_index = False
    settings.reuse.bind_after = 1
    settings.scheduler.policy = "now"
    settings.creativity.min_askers = 2
    settings.creativity.variants = 3
    backend = FakeBackend(model, params_b=1, version=version)
    return build_gateway(settings, store=store, backends={model: backend}, clock=clock)


def job_runner(gw: Gateway, clock: Any, lease_s: float = 300.0) -> Any:
    """``gw``'s job runner as the server makes it (a ``JobRunner``): it accepts the jobs that
    require its models at their versions; polls every second, re-plans hourly."""
    from boundgate.scheduler.handlers import job_handlers, model_requirements
    from boundgate.scheduler.runner import JobRunner

    return JobRunner(
        gw.store,
        job_handlers(gw),
        clock=clock,
        lease_s=lease_s,
        poll_s=1.0,
        replan_s=3600.0,
        accepts=model_requirements(gw),
    )


def semantic_hit(live: Live, tenant: str, question: str, score: float = 0.93) -> str:
    """The request id of a semantic hit of ``question``'s stored answer, for a label's test:
    ``question`` is asked as ``tenant``'s key would (temperature 0, its answer stored; open
    local mode or the tenant's own key: the caller's ``live.http`` headers are not used),
    then the hit of one of its paraphrases is ledgered as the gateway ledgers one
    (``hit-semantic``, the answer's id, cosine and pair score ``score``) through the store. A
    semantic hit's label is what the shared verifier learns; how a lookup comes to serve one
    is test_reuse's. Tenant ``tenant`` must have a key (``create_key``)."""
    import time
    import uuid

    from boundgate.store import LedgerRow

    key = arun(live.gateway.store.create_key(tenant))
    body = {"messages": [{"role": "user", "content": question}], "temperature": 0}
    headers = {"Authorization": f"Bearer {key.secret}"}
    r = live.http.post("/v1/chat/completions", json=body, headers=headers)
    assert r.status_code == 200, r.text
    answer = r.headers["x-boundgate-document"]
    row = LedgerRow(
        f"req_{uuid.uuid4().hex}",
        time.time(),
        tenant,
        "/v1/chat/completions",
        reuse="hit-semantic",
        document_id=answer,
        similarity=score,
        extra={"semantic_lookup": 1, "pair_score": score},
    )
    arun(live.gateway.store.record(row))
    return row.id
