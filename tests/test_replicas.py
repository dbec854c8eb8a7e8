"""One gateway's reuse across replicas and worker processes (issue #14): several gateways on
one store serve each other's answers, learn from each other's labels, and stop serving what
another revoked, superseded or evicted within a second.

PostgreSQL: two in-process apps on one throwaway server (``pg_server.py``), one schema per
test (``BOUNDGATE_TEST_POSTGRES=0`` skips them). SQLite: two real ``boundgate serve``
processes on one data dir, and ``boundgate serve --workers 2``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boundgate.assembly import build_app
from boundgate.backends.fake import FakeBackend
from boundgate.scheduler.handlers import job_handlers
from boundgate.testing import ThreadedServer, free_port
from helpers import Live, arun, fake_settings, wait_until

PARAPHRASES = [
    "How can I reset my password?",
    "How do I reset my password?",
    "How should I reset my password?",
]


def ask(live: Live, content: str, user: str | None = None, **kw: Any) -> Any:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": content}], "temperature": 0}
    if user:
        body["user"] = user
    return live.http.post("/v1/chat/completions", json=body, **kw)


class Replicas:
    """Gateways on one PostgreSQL schema, sharing a data dir (so the signing key, as
    replicas share it through a file or secret); each its own store and process state."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp, self.url = tmp, url
        self._running: list[tuple[ThreadedServer, Live]] = []

    def start(self, version: str = "v1", handlers: Any = None, **reuse: Any) -> Live:
        """A replica; ``handlers``: its job handlers (``app.state.job_handlers``, a seam)."""
        from boundgate.store.postgres import PostgresStore

        settings = fake_settings(self.tmp)
        settings.scheduler.policy = "now"
        settings.reuse.embedder = "hash"
        settings.reuse.persist_index = False  # replicas on other hosts have their own disks
        for k, v in reuse.items():
            setattr(settings.reuse, k, v)
        app = build_app(
            settings,
            store=PostgresStore(self.url, max_size=4),
            backends={"fake": FakeBackend("fake", params_b=1, version=version)},
        )
        if handlers is not None:
            app.state.job_handlers = handlers
        srv = ThreadedServer(app).__enter__()
        live = Live(srv, app)
        self._running.append((srv, live))
        return live

    def close(self) -> None:
        for srv, live in reversed(self._running):
            live.http.close()
            srv.__exit__()


@pytest.fixture
def replicas(tmp_path: Path, postgres_schema: str) -> Iterator[Replicas]:
    r = Replicas(tmp_path, postgres_schema)
    yield r
    r.close()


def test_an_answer_and_a_label_from_one_replica_serve_through_another(
    replicas: Replicas,
) -> None:
    # trust earned from one label (as in test_reuse's semantic test), no prior
    trust = {"prior": False, "error_bound": 0.5, "initial_threshold": 0.8}
    trust |= {"min_observations": 1, "verify_rate": 0.0}
    a, b = replicas.start(**trust), replicas.start(**trust)
    for live in (a, b):
        live.gateway.backends["fake"].meanings = {q: "reset password" for q in PARAPHRASES}
    miss = ask(a, PARAPHRASES[0])
    assert miss.headers["x-boundgate-reuse"] == "miss"
    doc = miss.headers["x-boundgate-document"]
    # exact through B: B learnt the entry from the change log (NOTIFY), not from a restart
    wait_until(lambda: b.gateway.reuse.entry_key(doc) is not None, timeout=1.0)
    hit = ask(b, PARAPHRASES[0])
    assert hit.headers["x-boundgate-reuse"] == "hit-exact"
    assert hit.headers["x-boundgate-document"] == doc
    assert (
        hit.json()["choices"][0]["message"]["content"]
        == (miss.json()["choices"][0]["message"]["content"])
    )
    # A verifies a paraphrase: the label it learns reaches B's verifier ...
    verified = ask(a, PARAPHRASES[1])
    assert verified.headers["x-boundgate-reuse"] == "miss"
    wait_until(lambda: a.gateway.reuse.verifier.estimate().observations >= 1)
    wait_until(lambda: b.gateway.reuse.verifier.estimate().observations >= 1, timeout=1.0)
    # ... and A's two semantic lookups (h(t) is computed over them), which may arrive after
    # the label: with one label the bound holds only once B's h(t) is A's (1 of 2 scored)
    wait_until(lambda: b.gateway.reuse.verifier.estimate().lookups >= 2, timeout=1.0)
    # ... and everything else A changed meanwhile (the verified paraphrase's own answer is
    # dropped as a duplicate once it became a variant: a candidate B must not pick stale)
    wait_until(lambda: not a.gateway.reuse._background)
    head = arun(a.gateway.store.change_head())
    wait_until(lambda: b.gateway.reuse._seen >= head, timeout=1.0)
    # ... so B serves another paraphrase by meaning, from the entry A stored
    sem = ask(b, PARAPHRASES[2])
    assert sem.headers["x-boundgate-reuse"] == "hit-semantic", sem.headers
    # from either answer A stored (both paraphrases' entries are candidates, whichever B
    # has read and scores best)
    stored = {doc, verified.headers.get("x-boundgate-document")}
    assert sem.headers["x-boundgate-document"] in stored
    assert b.gateway.reuse.counters.get("synced_entry", 0) >= 1
    # a label is learnt once per replica: A does not count its own twice
    assert a.gateway.reuse.verifier.estimate().observations == 1


def test_a_sampled_answer_from_one_replica_is_not_served_greedy_by_another(
    replicas: Replicas,
) -> None:
    """An answer sampled at temperature 0.3 through replica A reaches replica B through the
    change log, and B, like A, serves it to a sampled request but not to one at
    temperature 0 (which decodes greedily and could never have received it)."""
    a, b = replicas.start(), replicas.start()
    q = "Write a one-line slogan for a bakery."
    miss = a.http.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": q}], "temperature": 0.3},
    )
    assert miss.headers["x-boundgate-reuse"] == "miss"
    doc = miss.headers["x-boundgate-document"]
    wait_until(lambda: b.gateway.reuse.entry_key(doc) is not None, timeout=1.0)
    hot = b.http.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": q}], "temperature": 0.2},
    )
    assert hot.headers["x-boundgate-reuse"] == "hit-exact"
    greedy = ask(b, q)  # temperature 0
    assert greedy.headers["x-boundgate-reuse"] == "miss"


def test_a_document_revoked_through_one_replica_is_refused_by_another(
    replicas: Replicas,
) -> None:
    a, b = replicas.start(bind_after=1), replicas.start(bind_after=1)
    q = "What is the boiling point of water at sea level?"
    doc_id = ask(a, q, "alice").headers["x-boundgate-document"]
    assert doc_id.startswith("doc_")
    wait_until(lambda: b.gateway.reuse.entry_key(doc_id) is not None, timeout=1.0)
    served = ask(b, q, "bob")
    assert served.headers["x-boundgate-reuse"] == "hit-exact"
    assert served.headers["x-boundgate-document"] == doc_id
    key = b.gateway.reuse.entry_key(doc_id)
    r = a.http.post(f"/v1/boundgate/documents/{doc_id}/revoke")
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    revoked_at = time.monotonic()
    # refused by B at once (a hit re-reads its entry), and gone from B's index within 1 s
    assert ask(b, q, "carol").headers["x-boundgate-reuse"] == "miss"
    wait_until(lambda: b.gateway.reuse.meta(key) is None, timeout=1.0)
    assert time.monotonic() - revoked_at < 5  # the bound of wait_until above, not a timing


def test_an_answer_evicted_through_one_replica_leaves_another(replicas: Replicas) -> None:
    a, b = replicas.start(), replicas.start()
    q = "Which planet is the largest?"
    first = ask(a, q)
    doc = first.headers["x-boundgate-document"]
    wait_until(lambda: b.gateway.reuse.entry_key(doc) is not None, timeout=1.0)
    key = b.gateway.reuse.entry_key(doc)
    hit = ask(a, q)
    assert hit.headers["x-boundgate-reuse"] == "hit-exact"
    # "wrong" feedback on an exact hit: A stops serving the answer and deletes it
    r = a.http.post(
        "/v1/boundgate/feedback",
        json={"request_id": hit.headers["x-request-id"], "correct": False},
    )
    assert r.status_code == 200
    wait_until(lambda: b.gateway.reuse.meta(key) is None, timeout=1.0)
    assert ask(b, q).headers["x-boundgate-reuse"] == "miss"
    # B's feedback table learnt the label too: the same request's feedback is a duplicate
    r = b.http.post(
        "/v1/boundgate/feedback",
        json={"request_id": hit.headers["x-request-id"], "correct": False},
    )
    assert r.json()["status"] == "duplicate"


def test_a_document_superseded_through_one_replica_is_no_longer_served_stale(
    replicas: Replicas,
) -> None:
    q = "What is the boiling point of water at sea level?"
    v1 = replicas.start(version="v1", bind_after=1)
    old_id = ask(v1, q, "alice").headers["x-boundgate-document"]
    assert old_id.startswith("doc_")
    # B: the new model version; its rebind of the old document waits for the gate
    gate = threading.Event()

    def gated(gw: Any) -> dict[str, Any]:
        real = job_handlers(gw)

        async def rebind(payload: dict[str, Any]) -> dict[str, Any]:
            await asyncio.to_thread(gate.wait, 60)
            return await real["rebind"](payload)

        return {**real, "rebind": rebind}

    b = replicas.start(version="v2", handlers=gated, bind_after=1)
    wait_until(lambda: [j.state for j in arun(b.gateway.store.jobs())] == ["running"])
    # C: the new version too: until the rebind, it serves the old document marked stale
    c = replicas.start(version="v2", bind_after=1)
    stale = ask(c, q, "bob")
    assert stale.headers["x-boundgate-reuse"] == "stale"
    assert stale.headers["x-boundgate-document"] == old_id
    gate.set()  # B rebinds: a new document supersedes the old one

    def rebound() -> str | None:
        data = b.http.get("/v1/boundgate/documents").json()["data"]
        new = [d["id"] for d in data if d["supersedes"] == old_id]
        return new[0] if new else None

    new_id = wait_until(rebound)
    wait_until(lambda: not c.gateway.reuse.documents.is_stale(old_id), timeout=1.0)
    after = ask(c, q, "carol")
    assert after.headers["x-boundgate-reuse"] == "hit-exact"
    assert after.headers["x-boundgate-document"] == new_id


# --- worker processes on one SQLite file -------------------------------------------------------


def _serve(data_dir: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """``boundgate serve`` on ``port``; its output goes to ``serve-<port>.log`` beside the
    data dir (``_wait_ready`` shows it when the process never gets ready)."""
    env = {**os.environ, "BOUNDGATE_REUSE__EMBEDDER": "hash"}
    config = data_dir.parent / "boundgate.toml"
    argv = ["serve", "--config", str(config), "--port", str(port), *extra]
    with (data_dir.parent / f"serve-{port}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "boundgate", *argv], env=env, stdout=log, stderr=log
        )


def _wait_ready(data_dir: Path, port: int) -> None:
    """Until the server on ``port`` is ready; failing, with what it printed."""
    try:
        wait_until(lambda: _ready(port), timeout=120)
    except AssertionError:
        log = (data_dir.parent / f"serve-{port}.log").read_text(errors="replace")
        raise AssertionError(f"the server on port {port} never got ready:\n{log[-4000:]}") from None


def _free_ports(n: int) -> list[int]:
    """``n`` different free ports (two asks in a row may return the same one)."""
    ports: list[int] = []
    while len(ports) < n:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _entries(port: int) -> int:
    """Answers the process (or the worker) that takes a fresh connection can serve."""
    r = httpx.get(f"http://127.0.0.1:{port}/v1/boundgate/stats", timeout=10)
    return int(r.json()["reuse"]["entries"])


def _chat(port: int, content: str) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": content}], "temperature": 0}
    # a fresh connection each time: with --workers, any worker may accept it
    return httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=60)


def test_two_processes_on_one_sqlite_file_share_answers(tmp_path: Path) -> None:
    fake_settings(tmp_path)  # writes tmp_path/boundgate.toml with data in tmp_path/data
    ports = _free_ports(2)
    procs = [_serve(tmp_path / "data", p) for p in ports]
    try:
        for p in ports:
            _wait_ready(tmp_path / "data", p)
        q = "Which river is the longest?"
        first = _chat(ports[0], q)
        assert first.headers["x-boundgate-reuse"] == "miss"
        doc = first.headers["x-boundgate-document"]
        # the other process reads the change log every reuse.sync_interval_s (0.25 s)
        wait_until(lambda: _entries(ports[1]) == 1)
        second = _chat(ports[1], q)
        assert second.headers["x-boundgate-reuse"] == "hit-exact"
        assert second.headers["x-boundgate-document"] == doc
    finally:
        for proc in procs:
            _stop(proc)


def test_serve_with_two_workers_shares_answers_between_them(tmp_path: Path) -> None:
    fake_settings(tmp_path)
    port = free_port()
    proc = _serve(tmp_path / "data", port, "--workers", "2")
    try:
        _wait_ready(tmp_path / "data", port)
        q = "What is the capital of Australia?"
        first = _chat(port, q)
        assert first.headers["x-boundgate-reuse"] == "miss"
        doc = first.headers["x-boundgate-document"]
        # each fresh connection goes to whichever worker accepts it: both have followed
        # the change log once several in a row see the answer
        wait_until(lambda: all(_entries(port) == 1 for _ in range(8)))
        served = [_chat(port, q) for _ in range(12)]
        assert {r.headers["x-boundgate-reuse"] for r in served} == {"hit-exact"}
        assert {r.headers["x-boundgate-document"] for r in served} == {doc}
    finally:
        _stop(proc)


def _workers_of(parent: int) -> list[int]:
    """The pids of ``parent``'s uvicorn workers (multiprocessing's spawned children; not its
    resource tracker), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _listening(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    """``kill -9`` of ``serve --workers 2``'s parent: its workers stop (as on SIGTERM) and
    free the port, so the gateway can be started again on it."""
    fake_settings(tmp_path)
    port = free_port()
    proc = _serve(tmp_path / "data", port, "--workers", "2")
    workers: list[int] = []
    try:
        _wait_ready(tmp_path / "data", port)
        workers = wait_until(lambda: (w := _workers_of(proc.pid)) and len(w) == 2 and w)
        proc.kill()
        proc.wait()
        wait_until(lambda: not any(_running(pid) for pid in workers), timeout=60)
        assert not _listening(port)
        again = _serve(tmp_path / "data", port)
        try:
            _wait_ready(tmp_path / "data", port)
        finally:
            _stop(again)
    finally:
        _stop(proc)
        for pid in workers:  # never leave a worker behind, whatever failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_the_parent_watch_sends_sigterm_once_the_parent_is_not_the_parent() -> None:
    """The portable half of ``exit_with_parent`` (no prctl needed): a process told its
    parent is a pid that is not its parent (as after its parent died and it was adopted)
    gets SIGTERM, the signal a normal shutdown sends."""
    code = (
        "import time\n"
        "from boundgate.cli.workers import exit_with_parent\n"
        "exit_with_parent(-1, poll_s=0.05)\n"
        "time.sleep(120)\n"
    )
    child = subprocess.run([sys.executable, "-c", code], timeout=120, check=False)
    assert child.returncode == -signal.SIGTERM


def test_a_job_longer_than_its_lease_is_not_taken_over_while_its_runner_lives(
    tmp_path: Path,
) -> None:
    """Two runners (two workers) on one store: the one running a long job renews its lease,
    so the other never starts the same job."""
    from boundgate.clock import FakeClock
    from boundgate.scheduler.jobs import JobQueue
    from boundgate.scheduler.runner import JobRunner
    from boundgate.store import SQLiteStore

    store = SQLiteStore(tmp_path / "jobs.db")
    store.open()
    clock = FakeClock(start=1_800_000_000.0)
    runs: list[str] = []
    release = threading.Event()
    started = asyncio.Event()

    async def long_job(payload: dict[str, Any]) -> dict[str, Any]:
        runs.append(payload["n"])
        started.set()
        await asyncio.to_thread(release.wait, 60)
        return {}

    async def renewed() -> None:
        for _ in range(2000):
            lease = (await store.jobs())[0].lease_expires
            if lease is not None and lease >= clock.time():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the lease was never renewed")

    def runner() -> JobRunner:
        return JobRunner(store, {"long": long_job}, clock=clock, lease_s=0.3, poll_s=0.05,
                         replan_s=3600)  # fmt: skip

    async def scenario() -> None:
        job_id = await JobQueue(store, clock).submit("long", {"n": "one"})
        a, b = runner(), runner()
        first = asyncio.create_task(a.run_once())
        await started.wait()
        clock.advance(100.0)  # far past the first lease: only a renewal keeps it
        await renewed()
        assert not await b.run_once()  # leased: nothing due for the other runner
        release.set()
        assert await first
        (done,) = await store.jobs()
        assert (done.id, done.state, done.attempts) == (job_id, "done", 1)

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        store.close()
    assert runs == ["one"]


def test_nul_in_a_request_is_a_400_on_postgresql(replicas: Replicas) -> None:
    """A trial: on PostgreSQL, whose text cannot hold U+0000, a NUL in a request's message,
    name, user or model was a 500 (SQLSTATE 22021) after the model ran; a 400 now, as on
    SQLite (test_errors), and the replica keeps serving."""
    from test_errors import NUL_BODIES

    live = replicas.start()
    for body, param in NUL_BODIES:
        r = live.http.post("/v1/chat/completions", json={**body, "temperature": 0})
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    from test_errors import NUL_URLS, assert_nul_refused

    for method, url, param in NUL_URLS:
        assert_nul_refused(live.http.request(method, url), url, param)
    assert ask(live, "Is it still serving?").status_code == 200
