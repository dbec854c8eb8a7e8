"""Stored answers whose vector another embedder made (``reuse/reembed.py``): matched exactly
at once after a restart with another embedder, re-embedded and written back, then matched by
meaning too; revoked ones never come back. On SQLite and on PostgreSQL (a throwaway server,
as in ``test_store_contract.py``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from boundgate.backends.base import Completion, GenerationRequest, Message, Usage
from boundgate.clock import FakeClock
from boundgate.reuse.embedder import Embedder, HashEmbedder
from boundgate.reuse.engine import Lookup, ReuseEngine
from boundgate.settings import ReuseSettings
from boundgate.store import SQLiteStore, Store
from helpers import trusting_verifier

OLD, NEW = HashEmbedder(dim=64), HashEmbedder(dim=32)  # two vector spaces, two dimensions
CLOCK = FakeClock(start=1_800_000_000.0)

NewStore = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgres"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewStore]:
    """Opens another store instance (another process's) on the test's fresh database; closes
    them all afterwards."""
    if request.param == "postgres":
        from boundgate.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_schema")
    opened: list[Store] = []

    def new() -> Store:
        store: Store = (
            SQLiteStore(tmp_path / "b.db")
            if request.param == "sqlite"
            else PostgresStore(url, max_size=4)
        )
        store.open()
        opened.append(store)
        return store

    yield new
    for store in opened:
        store.close()


async def _engine(new_store: NewStore, embedder: Embedder) -> ReuseEngine:
    """A gateway process on the test's database (a store instance of its own), loaded, and
    trusting a semantic match from the start."""
    e = ReuseEngine(
        store=new_store(),
        embedder=embedder,
        verifier=trusting_verifier(),
        settings=ReuseSettings(),
        rebind_window_s=3600.0,
        clock=CLOCK,
    )
    await e.load()
    await e.observe(None, 0.99, True, "verify", None)  # one label: enough trust
    return e


async def _ask(
    e: ReuseEngine, question: str, answer: str | None = None, *, prompt: bool = False
) -> Lookup:
    """Look ``question`` up (a chat question, or with ``prompt`` a text completion's prompt);
    store ``answer`` for it on a miss."""
    if prompt:
        req = GenerationRequest(model="m", prompt=question, temperature=0)
        endpoint = "/v1/completions"
    else:
        req = GenerationRequest(model="m", messages=[Message("user", question)], temperature=0)
        endpoint = "/v1/chat/completions"
    p, k = e.plan_for(req, tenant="t", model_version="v", endpoint=endpoint, cache_control=None)
    lookup = await e.lookup(p, k)
    if answer is not None and not lookup.hit:
        done = Completion(answer, "stop", Usage(3, 3))
        await e.remember(
            lookup, done, tenant="t", model="m", model_version="v", cost_wh=0.1, cost_gco2=0.05
        )
    return lookup


async def _stored(e: ReuseEngine, question: str, answer: str) -> int:
    """Store ``answer`` for the new chat question ``question``; returns its entry key."""
    key = e.entry_key((await _ask(e, question, answer)).stored_id or "")
    assert key is not None
    return key


async def _until(cond: Callable[[], bool]) -> None:
    """Wait until ``cond()`` holds (at most 60 s: a bound for a broken test)."""
    for _ in range(6000):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def test_answers_stored_under_another_embedder_are_served_after_a_restart(
    new_store: NewStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator changes the embedder and restarts: every answer is an exact hit at once,
    a paraphrase is a semantic hit once the background re-embedding got to it, the new vectors
    are in the store (the next start needs no re-embedding), and a revoked answer stays
    unserved and is not re-embedded."""

    async def before() -> int:
        e = await _engine(new_store, OLD)
        everest = await _stored(e, "how tall is mount everest", "8849 m")
        trench = await _stored(e, "how deep is the mariana trench", "11 km")
        await _ask(e, "The capital of France is", " Paris.", prompt=True)  # exact only
        await e.store.note_hit(everest, 1_800_000_100.0, 4)
        await e.store.set_entry_document(trench, None, revoked=True)
        return trench

    async def after(revoked: int) -> None:
        e = await _engine(new_store, NEW)
        head = await e.store.change_head()
        # exact at once, before any re-embedding
        hit = await _ask(e, "how tall is mount everest")
        assert hit.status == "hit-exact" and hit.entry is not None
        assert hit.entry.answer == "8849 m"
        assert (await _ask(e, "The capital of France is", prompt=True)).status == "hit-exact"
        assert (await _ask(e, "how deep is the mariana trench")).status == "miss"
        # by meaning only once re-embedded; the text completion never
        assert e.stats()["vectors_pending"] == 1
        # start-up says why nothing was indexed: the answer waits for a vector
        assert e.stats()["index_load"]["waiting"] == 1
        assert (await _ask(e, "mount everest how tall is")).status == "miss"
        with caplog.at_level(logging.INFO, logger="boundgate.reuse"):
            assert await e.embed_pending() == 1
        assert "re-embedded 1 stored answers with hash-bow-32 (1 from hash-bow-64)" in caplog.text
        assert e.stats()["vectors_pending"] == 0
        assert e.counters["reembedded"] == 1
        semantic = await _ask(e, "mount everest how tall is")
        assert semantic.status == "hit-semantic" and semantic.entry is not None
        assert semantic.entry.id == hit.entry.id
        # written back under the same key, hits kept; the revoked one left as it was
        stored = {x.key: x for x in await e.store.entries()}
        now = stored[hit.entry.key]
        assert (now.embedder, len(now.vector)) == (NEW.name, 4 * NEW.dim)
        assert (now.hits, now.last_hit) == (4, 1_800_000_100.0)
        assert (stored[revoked].embedder, len(stored[revoked].vector)) == (OLD.name, 4 * 64)
        # the same answer, not a new one: nothing in the change log
        assert await e.store.changes(head) == []
        again = await _engine(new_store, NEW)
        assert again.stats()["vectors_pending"] == 0  # loaded with its vector
        assert again.stats()["index_load"]["waiting"] == 0
        assert (await _ask(again, "mount everest how tall is")).status == "hit-semantic"

    revoked = asyncio.run(before())
    asyncio.run(after(revoked))


def test_a_question_the_old_embedder_could_not_read_whole_gets_a_vector(
    new_store: NewStore,
) -> None:
    """An entry stored without a vector (its question longer than the old embedder's window)
    gets one from an embedder that reads it whole."""
    question = "summarise this report about the budget the project is approved"

    async def run() -> None:
        e = await _engine(new_store, HashEmbedder(window=6))
        await _ask(e, question, "approved: summary")
        assert (await e.store.entries())[0].vector == b""
        e = await _engine(new_store, HashEmbedder())
        assert e.stats()["vectors_pending"] == 1
        assert await e.embed_pending() == 1
        shuffled = "the project is approved summarise this report about the budget"
        assert (await _ask(e, shuffled)).status == "hit-semantic"

    asyncio.run(run())


def test_processes_re_embedding_at_once_share_the_work(new_store: NewStore) -> None:
    """Two processes start with the new embedder on one store: the second takes the vectors
    the first wrote (re-read per batch) instead of embedding them again; both serve them by
    meaning."""
    questions = [f"how tall is mountain number {i}" for i in range(5)]

    async def run() -> None:
        old = await _engine(new_store, OLD)
        for i, q in enumerate(questions):
            await _ask(old, q, f"{i} km")
        a, b = await _engine(new_store, NEW), await _engine(new_store, NEW)
        assert a.stats()["vectors_pending"] == b.stats()["vectors_pending"] == 5
        assert await a.embed_pending() == 5
        assert await b.embed_pending() == 5
        assert (a.counters["reembedded"], a.counters["reembedded_elsewhere"]) == (5, 0)
        assert (b.counters["reembedded"], b.counters["reembedded_elsewhere"]) == (0, 5)
        for e in (a, b):
            hit = await _ask(e, "mountain number 3 how tall is")
            assert hit.status == "hit-semantic" and hit.entry is not None
            assert hit.entry.answer == "3 km"

    asyncio.run(run())


def test_answers_another_process_stores_under_its_embedder_are_served_here(
    new_store: NewStore,
) -> None:
    """A replica (or ``docs import``) on another embedder stores answers while this process
    runs: read exactly from the store before a miss, admitted through the change log, and
    re-embedded here; one revoked before or after it arrives never is."""

    async def run() -> None:
        here, there = await _engine(new_store, NEW), await _engine(new_store, OLD)
        await _ask(there, "how tall is mount everest", "8849 m")
        if here.store.announces_changes:
            await here.catch_up()  # PostgreSQL: followers are told at once
        # (SQLite: not yet followed, the exact key is read from the store)
        hit = await _ask(here, "how tall is mount everest")
        assert hit.status == "hit-exact" and hit.entry is not None
        await _ask(there, "how deep is the mariana trench", "11 km")
        nile = await _stored(there, "how long is the river nile", "6650 km")
        await there.store.set_entry_document(nile, None, revoked=True)
        await here.catch_up()
        # everest and the trench, each once; the Nile was revoked
        assert here.counters["synced_entry"] + here.counters.get("read_exact", 0) == 2
        assert (await _ask(here, "how deep is the mariana trench")).status == "hit-exact"
        assert (await _ask(here, "how long is the river nile")).status == "miss"
        assert here.stats()["vectors_pending"] == 2
        # one queued here, then revoked there: dropped from the queue, never re-embedded
        tower = await _stored(there, "how high is the eiffel tower", "330 m")
        await here.catch_up()
        assert here.stats()["vectors_pending"] == 3
        await there.store.set_entry_document(tower, None, revoked=True)
        await here.catch_up()
        assert here.stats()["vectors_pending"] == 2
        # keep_embedded, as the server runs it: at once, then whatever arrives
        task = asyncio.create_task(here.keep_embedded())
        await _until(lambda: here.stats()["vectors_pending"] == 0)
        await _ask(there, "how wide is the atlantic ocean", "6000 km")
        await here.catch_up()
        await _until(lambda: here.counters.get("reembedded") == 3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        stored = {x.key: x.embedder for x in await here.store.entries()}
        assert (stored[tower], stored[nile]) == (OLD.name, OLD.name)
        assert list(stored.values()).count(NEW.name) == 3
        for asked, answer in (
            ("mount everest how tall is", "8849 m"),
            ("the mariana trench how deep is", "11 km"),
            ("the atlantic ocean how wide is", "6000 km"),
        ):
            got = await _ask(here, asked)
            assert got.status == "hit-semantic" and got.entry is not None
            assert got.entry.answer == answer
        assert (await _ask(here, "the river nile how long is")).status == "miss"
        assert (await _ask(here, "the eiffel tower how high is")).status == "miss"

    asyncio.run(run())
