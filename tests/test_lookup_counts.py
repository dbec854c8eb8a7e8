"""Which semantic lookups the verifier counts (its h(t), the denominator of the wrong-reuse
estimate), and that every process on one store counts the same ones: those whose answered
request's ledger row was written, which the store's change log logs with it. A request
refused after its lookup (a spent daily budget), a stream cancelled before its answer, and a
hit answer from memory found revoked count nowhere (a trial saw one replica's
``semantic_lookups`` grow with each refused request while the log and the other replica did
not, and then swallow the other's real lookups, recognised by their values).

Gateways are driven in-process (``Gateway.complete`` / ``stream``, real stores, the fake
backend); each follows the log when the test says so (``ReuseEngine.catch_up``), so counts
are compared at fixed points. PostgreSQL: a throwaway server (``BOUNDGATE_TEST_POSTGRES=0``
skips it)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from boundgate.assembly import build_gateway
from boundgate.backends.base import Chunk, GenerationRequest, Message
from boundgate.errors import ErrorCode, RateLimitError
from boundgate.gateway import Gateway
from boundgate.store import Claim, LedgerRow, SQLiteStore, Store
from boundgate.tenants import Tenant, day_window, tokens_counter
from helpers import arun, fake_settings

PARAPHRASES = [
    "How can I reset my password?",
    "How do I reset my password?",
    "How should I reset my password?",
    "How would I reset my password?",
]
ACME = Tenant("acme")
SPENT = Tenant("spent", daily_tokens=1000)  # spent today (``spend``): no fresh answer


async def spend(store: Store) -> None:
    """Charge ``SPENT``'s whole budget today, as its earlier requests would have."""
    now = time.time()
    budget = SPENT.daily_tokens or 0
    claim = Claim(tokens_counter(SPENT.name), day_window(now), budget, budget, None)
    assert await store.reserve("spent-earlier", [claim], now) is None


def gateway(tmp: Path, store: Store) -> Gateway:
    """A gateway on ``store`` whose verifier serves by meaning after one label (no prior,
    δ = 0.5), the fake backend answering the paraphrases alike."""
    settings = fake_settings(tmp)
    settings.reuse.embedder = "hash"
    settings.reuse.persist_index = False
    settings.reuse.prior = False
    settings.reuse.error_bound = 0.5
    settings.reuse.initial_threshold = 0.8
    settings.reuse.min_observations = 1
    settings.reuse.verify_rate = 0.0
    gw = build_gateway(settings, store=store)
    gw.backends["fake"].meanings = {q: "reset password" for q in PARAPHRASES}
    return gw


def chat(question: str) -> GenerationRequest:
    return GenerationRequest(
        model="fake", messages=[Message("user", question)], temperature=0, max_tokens=60
    )


async def ask(gw: Gateway, question: str, tenant: Tenant = ACME) -> str:
    """The request's reuse status, or the error code it was refused with."""
    try:
        result = await gw.complete(gw.context(tenant, "/v1/chat/completions"), chat(question))
    except RateLimitError as err:
        return str(err.code)
    assert result.reuse is not None
    return result.reuse.status


async def cut_stream(gw: Gateway, question: str) -> None:
    """A streamed request whose client leaves after its first chunk (499)."""
    events = gw.stream(gw.context(ACME, "/v1/chat/completions"), chat(question))
    first = await events.__anext__()
    assert isinstance(first, Chunk) and first.text
    await events.aclose()


async def lookups(gw: Gateway) -> int:
    """The semantic lookups ``gw``'s verifier counts, once it has written what it was writing
    and read the change log."""
    assert gw.reuse is not None
    await gw.drain()
    await gw.reuse.catch_up()
    return int(gw.reuse.stats()["semantic_lookups"])


async def logged(store: Store) -> tuple[int, int]:
    """The semantic lookups in the change log, and in the ledger (what a restart counts)."""
    changes = await store.changes(0, 100_000)
    return sum(c.kind == "lookup" for c in changes), len(await store.lookup_similarities())


@pytest.fixture
def one(tmp_path: Path) -> Iterator[Gateway]:
    store = SQLiteStore(tmp_path / "one.db")
    store.open()
    yield gateway(tmp_path, store)
    store.close()


def test_a_spent_budgets_refused_requests_count_no_semantic_lookup(one: Gateway) -> None:
    """A tenant whose daily budget is spent is still looked up (a stored answer would be
    served); finding none, it is refused with 429 and gets no answer: neither the lookup count
    nor the estimate moves, however many it sends."""

    async def main() -> None:
        assert one.reuse is not None
        assert await ask(one, PARAPHRASES[0]) == "miss"
        assert await ask(one, PARAPHRASES[1]) == "miss"  # verified: a label
        assert await ask(one, PARAPHRASES[2]) == "hit-semantic"
        before = await lookups(one), one.reuse.verifier.estimate()
        assert before[0] == 3 and before[1].error_high > 0  # h(t) times the labels' bound
        await spend(one.store)
        for i in range(5):
            refused = await ask(one, f"Write one word about the number {i}.", SPENT)
            assert refused == ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED
        assert (await lookups(one), one.reuse.verifier.estimate()) == before
        assert await logged(one.store) == (3, 3)

    arun(main())


def test_a_cancelled_stream_counts_no_semantic_lookup(one: Gateway) -> None:
    """A fresh stream whose client leaves before its answer (499) is not counted; a streamed
    hit whose client leaves during its replay was answered (its row was written as served
    before the replay began) and is counted once, also in the log, whose SQLite store
    re-inserts the row as it turns it cancelled."""

    async def main() -> None:
        assert one.reuse is not None
        assert await ask(one, PARAPHRASES[0]) == "miss"
        assert await ask(one, PARAPHRASES[1]) == "miss"
        assert await lookups(one) == 2
        await cut_stream(one, "Write an essay about clouds.")
        assert await lookups(one) == 2
        await cut_stream(one, PARAPHRASES[2])  # served by meaning, cut during the replay
        await one.drain()
        rows = [r for r in await one.store.ledger() if r.reuse == "hit-semantic"]
        assert [(r.outcome, r.status) for r in rows] == [("cancelled", 499)]
        assert await lookups(one) == 3
        assert await logged(one.store) == (3, 3)

    arun(main())


def test_a_lookup_is_known_as_ones_own_by_its_id_not_its_values(one: Gateway) -> None:
    """The log's echo of a lookup this process is writing is its own only by id: another
    process's lookup of the same values (most misses have no candidate: the same values) is
    counted, whenever either arrives; and a write that failed yet committed (its echo came)
    counts once."""
    assert one.reuse is not None
    engine, store = one.reuse, one.store

    def row(lookup_id: int) -> LedgerRow:
        extra: dict[str, object] = {"semantic_lookup": 1, "lookup_id": lookup_id}
        return LedgerRow(id=f"r{lookup_id}", ts=1.0, tenant="t", endpoint="/e", extra=extra)

    async def main() -> None:
        engine.lookup_writing(row(1))  # this process's write, under way
        await store.record(row(2))  # another process's lookup, the same values
        assert await lookups(one) == 1
        engine.lookup_written(row(1), False)  # nothing was written: counted nowhere
        assert await lookups(one) == 1
        engine.lookup_writing(row(3))
        await store.record(row(3))
        assert await lookups(one) == 1  # its echo came first: not counted twice ...
        engine.lookup_written(row(3), True)
        assert await lookups(one) == 2  # ... but once, when its write returns
        engine.lookup_writing(row(4))
        await store.record(row(4))
        assert await lookups(one) == 2
        engine.lookup_written(row(4), False)  # reported failed, yet committed: it counts
        assert await lookups(one) == 3
        assert await logged(store) == (3, 3)

    arun(main())


def two_on_one_store(make_store: Callable[[], Store], tmp: Path) -> None:
    """Two gateways (each its own store connection, maps, index and verifier) take turns
    with misses, hits by meaning and exactly, refused and cancelled requests; after every
    step, once each has read the log, both count the same lookups as the log and the
    ledger, and reach the same estimate."""
    stores = [make_store(), make_store()]
    for s in stores:
        s.open()
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    a, b = gateway(tmp / "a", stores[0]), gateway(tmp / "b", stores[1])

    async def agree(expected: int) -> None:
        await a.drain()  # what each was writing (labels too) in the log before either reads
        await b.drain()
        counts = [await lookups(a), await lookups(b)]
        assert counts == [expected, expected], counts
        assert await logged(a.store) == (expected, expected)
        assert a.reuse is not None and b.reuse is not None
        assert a.reuse.verifier.estimate() == b.reuse.verifier.estimate()

    async def main() -> None:
        await spend(a.store)
        await agree(0)
        assert await ask(a, PARAPHRASES[0]) == "miss"
        await agree(1)
        assert await ask(b, "Name a bird.", SPENT) == ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED
        await agree(1)
        # a miss of A's with the same values as B's refused lookup (no candidate): B must
        # not take it for its own
        assert await ask(a, "Name a fish.") == "miss"
        await agree(2)
        assert await ask(b, PARAPHRASES[1]) == "miss"  # verified: a label for both
        await agree(3)
        assert await ask(a, PARAPHRASES[2]) == "hit-semantic"
        await agree(4)
        assert await ask(b, PARAPHRASES[0]) == "hit-exact"  # no semantic lookup
        await agree(4)
        await cut_stream(b, "Write an essay about clouds.")
        assert await ask(a, "Name a tree.", SPENT) == ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED
        await agree(4)
        assert await ask(b, PARAPHRASES[3]) == "hit-semantic"
        assert await ask(b, "Name a flower.", SPENT) == ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED
        await agree(5)
        await cut_stream(a, PARAPHRASES[3])  # a hit cut during its replay: answered
        await agree(6)

    try:
        arun(main())
    finally:
        for s in stores:
            s.close()


def test_two_gateways_on_one_sqlite_file_count_the_same_lookups(tmp_path: Path) -> None:
    two_on_one_store(lambda: SQLiteStore(tmp_path / "shared.db"), tmp_path)


def test_two_gateways_on_one_postgres_schema_count_the_same_lookups(
    tmp_path: Path, postgres_schema: str
) -> None:
    from boundgate.store.postgres import PostgresStore

    two_on_one_store(lambda: PostgresStore(postgres_schema, max_size=4), tmp_path)
