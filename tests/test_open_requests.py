"""Write-ahead notes of generations in progress (``LedgerWriter.open``): noted before the model
starts, kept current by the renewals, closed by the request's own row, and turned into an
``interrupted`` row only when no process renews them (the real ``kill -9``:
``test_durability_cli.py``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from boundgate.assembly import build_gateway
from boundgate.backends.base import GenerationRequest
from boundgate.backends.fake import FakeBackend
from boundgate.clock import FakeClock
from boundgate.gateway import Finished, Gateway
from boundgate.reuse.embedder import HashEmbedder, Vectors
from boundgate.store import LedgerRow, SQLiteStore
from boundgate.tenants import OPEN_TENANT, Tenant, day_window, tokens_counter
from helpers import fake_settings, used_today

FAR = 1e12  # a time past every lease


def _gateway(tmp_path: Path, extra: str = "") -> tuple[Gateway, SQLiteStore, list[str]]:
    settings = fake_settings(tmp_path, '[reuse]\nembedder = "hash"\n' + extra)
    store = SQLiteStore(tmp_path / "g.db")
    store.open()
    gw = build_gateway(settings, store=store, backends={"fake": FakeBackend("fake")})
    noted: list[str] = []
    real = store.open_request

    async def counting(row: LedgerRow, owner: str, lease_until: float) -> None:
        noted.append(row.id)
        await real(row, owner, lease_until)

    store.open_request = counting  # type: ignore[method-assign]
    return gw, store, noted


def _req(question: str, **kw: Any) -> GenerationRequest:
    return GenerationRequest(model="fake", prompt=question, max_tokens=50, temperature=0, **kw)


def _killed_mid_generation(
    gw: Gateway, store: SQLiteStore, until: Callable[[LedgerRow], bool]
) -> LedgerRow:
    """A non-streamed generation whose process "dies" right after a renewal of its note,
    once the note shows ``until``: the interrupted row it becomes (the store is closed
    after)."""

    async def main() -> list[LedgerRow]:
        ctx = gw.context(OPEN_TENANT, "/v1/completions")
        task = asyncio.create_task(gw.complete(ctx, _req("tell me a long story")))
        for _ in range(500):
            note = gw.ledger.opened(ctx.request_id)
            if note is not None and until(note):
                await gw.ledger.renew()  # what the process kept before it "died"
                break
            await asyncio.sleep(0.01)
        rows = await store.recover_requests(FAR)  # the process "died" here
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await gw.drain()
        return rows

    try:
        (row,) = asyncio.run(main())
    finally:
        store.close()
    return row


def _left_mid_generation(gw: Gateway, store: SQLiteStore, question: str) -> LedgerRow:
    """A non-streamed generation whose client leaves once it produced 3 tokens: its ledger
    row (the store is closed after)."""

    async def main() -> list[LedgerRow]:
        ctx = gw.context(OPEN_TENANT, "/v1/completions")
        task = asyncio.create_task(gw.complete(ctx, _req(question)))
        for _ in range(500):
            note = gw.ledger.opened(ctx.request_id)
            if note is not None and note.completion_tokens >= 3:
                break
            await asyncio.sleep(0.01)
        task.cancel()  # the client left
        await asyncio.gather(task, return_exceptions=True)
        await gw.drain()
        return await store.ledger()

    try:
        (row,) = asyncio.run(main())
    finally:
        store.close()
    return row


def test_a_stream_is_noted_before_its_first_chunk_and_renewed_with_its_tokens(
    tmp_path: Path,
) -> None:
    gw, store, noted = _gateway(tmp_path)

    async def main() -> list[LedgerRow]:
        ctx = gw.context(OPEN_TENANT, "/v1/completions")
        events = gw.stream(ctx, _req("tell me more"))
        await anext(events)
        assert noted == [ctx.request_id]  # noted before the first chunk came out
        await anext(events)
        await gw.ledger.renew()  # what a heartbeat keeps: the tokens so far
        # the owner renews it: no process takes it over while the lease holds
        assert await store.recover_requests(time.time()) == []
        # the process "died" here (nothing closes it): its note becomes its row
        rows = await store.recover_requests(FAR)
        await events.aclose()
        await gw.drain()
        return rows

    try:
        (row,) = asyncio.run(main())
    finally:
        store.close()
    assert (row.outcome, row.status, row.error_code) == ("interrupted", 500, "interrupted")
    assert row.stream and row.model == "fake" and row.tenant == "local"
    assert row.prompt_tokens > 0 and row.completion_tokens == 2
    assert row.wh > 0 and row.method == "estimate" and row.gco2 > 0


def test_answered_and_cancelled_requests_leave_no_note(tmp_path: Path) -> None:
    gw, store, noted = _gateway(tmp_path)

    async def main() -> list[LedgerRow]:
        ctx = gw.context(OPEN_TENANT, "/v1/completions")
        events = [e async for e in gw.stream(ctx, _req("streamed"))]
        assert isinstance(events[-1], Finished)
        await gw.complete(gw.context(OPEN_TENANT, "/v1/completions"), _req("plain"))
        cut = gw.stream(gw.context(OPEN_TENANT, "/v1/completions"), _req("cut short"))
        await anext(cut)
        await cut.aclose()  # the client left
        await gw.drain()
        assert not gw.ledger._open  # nothing left to renew
        return await store.recover_requests(FAR)

    try:
        assert asyncio.run(main()) == []
        outcomes = sorted(r.outcome for r in asyncio.run(store.ledger()))
    finally:
        store.close()
    assert outcomes == ["cancelled", "ok", "ok"] and len(noted) == 3


def test_hits_are_not_noted(tmp_path: Path) -> None:
    """A stored answer's row is written at once (before a replay): no note, no extra write."""
    gw, store, noted = _gateway(tmp_path)

    async def main() -> None:
        first = await gw.complete(gw.context(OPEN_TENANT, "/v1/completions"), _req("again?"))
        await gw.drain()
        hit = await gw.complete(gw.context(OPEN_TENANT, "/v1/completions"), _req("again?"))
        assert hit.reuse is not None and hit.reuse.status == "hit-exact"
        assert hit.completion.text == first.completion.text
        events = [e async for e in gw.stream(gw.context(OPEN_TENANT, "/v1/completions"),
                                             _req("again?"))]  # fmt: skip
        assert isinstance(events[-1], Finished) and events[-1].reuse is not None
        await gw.drain()

    try:
        asyncio.run(main())
    finally:
        store.close()
    assert len(noted) == 1  # the miss only


def test_an_open_request_whose_row_failed_is_recovered_after_its_lease(tmp_path: Path) -> None:
    """The store refusing a request's own row leaves its note, no longer renewed: the request
    is ledgered as interrupted rather than lost."""
    gw, store, _ = _gateway(tmp_path)
    real = store.record

    async def failing(row: LedgerRow) -> None:
        raise RuntimeError("disk full")

    async def main() -> list[LedgerRow]:
        store.record = failing  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await gw.complete(gw.context(OPEN_TENANT, "/v1/completions"), _req("lost?"))
        store.record = real  # type: ignore[method-assign]
        assert not gw.ledger._open
        return await store.recover_requests(FAR)

    try:
        (row,) = asyncio.run(main())
    finally:
        store.close()
    assert row.outcome == "interrupted" and not row.stream


def test_an_open_generation_is_metered_as_its_own_row_would_be(tmp_path: Path) -> None:
    """A trial's finding: a non-streamed generation killed after 26 s became an interrupted
    row with 0 Wh (its tokens are unknown until it ends), and a streamed one on the local
    model took the per-token estimate of a datacenter GPU (about 100 times the CPU meter's
    figure). A note's energy is read from its generation's own meter at each renewal."""
    from boundgate.energy import FakeMeter

    settings = fake_settings(tmp_path, '[reuse]\nembedder = "hash"\n')
    store = SQLiteStore(tmp_path / "g.db")
    store.open()
    wall: list[float] = []
    meter = FakeMeter(method="rapl", per_work=lambda work: wall.append(work.wall_s) or 0.25)
    gw = build_gateway(
        settings,
        store=store,
        backends={"fake": FakeBackend("fake", token_delay_s=0.05)},
        meter_for=lambda backend: meter,
    )

    # once the model has it and produced: the renewal reads its meter
    row = _killed_mid_generation(gw, store, lambda note: note.completion_tokens >= 1)
    assert row.outcome == "interrupted" and not row.stream
    assert row.wh > 0 and row.method == "rapl"  # the generation's meter, not an estimate
    assert wall and wall[-1] > 0


def test_a_non_streamed_generation_counts_its_tokens_on_its_note(tmp_path: Path) -> None:
    """The last trial's finding: a non-streamed request killed mid-generation became an
    interrupted row with 0 completion tokens (its usage comes only at its end). Its note
    counts the tokens as the local model produces them, as a stream's does."""
    settings = fake_settings(tmp_path, '[reuse]\nembedder = "hash"\n')
    store = SQLiteStore(tmp_path / "g.db")
    store.open()
    gw = build_gateway(
        settings, store=store, backends={"fake": FakeBackend("fake", token_delay_s=0.05)}
    )

    # once a few tokens came out: the renewal keeps them
    row = _killed_mid_generation(gw, store, lambda note: note.completion_tokens >= 3)
    assert row.outcome == "interrupted" and not row.stream
    assert row.completion_tokens >= 3


def test_a_non_streamed_request_the_client_left_is_metered(tmp_path: Path) -> None:
    """A trial's finding: a client that timed out on a non-streamed request left a
    ``cancelled`` row with 0 completion tokens and 0 Wh, though the model had run for a
    second (a stream cut short was metered). The generation that ran is metered now."""
    from boundgate.energy import FakeMeter

    settings = fake_settings(tmp_path, '[reuse]\nembedder = "hash"\n')
    store = SQLiteStore(tmp_path / "g.db")
    store.open()
    meter = FakeMeter(method="rapl", per_work=lambda work: 0.25)
    gw = build_gateway(
        settings,
        store=store,
        backends={"fake": FakeBackend("fake", token_delay_s=0.05)},
        meter_for=lambda backend: meter,
    )

    row = _left_mid_generation(gw, store, "tell me a long story")
    assert (row.outcome, row.status, row.stream) == ("cancelled", 499, False)
    assert row.completion_tokens >= 3 and row.prompt_tokens > 0
    assert row.wh == pytest.approx(0.25, rel=1e-3)  # the generation's meter, and the lookup


def test_a_reasoning_generation_the_client_left_counts_its_reasoning(tmp_path: Path) -> None:
    """Read-back: a non-streamed reasoning generation whose client left counted its tokens
    but none as reasoning (a stream cut short counted them only up to a reasoning budget's
    hold, 0 for a tenant without one; the auto path up to the request's cap). One rule now:
    what a reasoning model produced, up to its cap (``cut_short_reasoning``)."""
    settings = fake_settings(tmp_path, '[reuse]\nembedder = "hash"\n')
    store = SQLiteStore(tmp_path / "g.db")
    store.open()
    backend = FakeBackend("fake", token_delay_s=0.05, reasoning=True, thinking_tokens=200)
    gw = build_gateway(settings, store=store, backends={"fake": backend})

    row = _left_mid_generation(gw, store, "think about it")
    assert row.outcome == "cancelled" and row.completion_tokens >= 3
    assert 3 <= row.reasoning_tokens <= row.completion_tokens


@pytest.mark.parametrize(("model", "stream"), [("fake", False), ("auto", False), ("fake", True)])
def test_a_generation_failing_unexpectedly_leaves_its_note_to_become_its_row(
    tmp_path: Path, model: str, stream: bool
) -> None:
    """A backend raising what is no ``BoundgateError`` (a bug) leaves the request without a
    row of its own: its note, no longer renewed, becomes its row once the lease runs out. So
    for a model "auto" request too (its note was renewed on, so while the process lived the
    request was never ledgered), and for a streamed one (its row said ``cancelled`` 499, as if
    the client had left)."""
    settings = fake_settings(
        tmp_path, '[reuse]\nembedder = "hash"\n[routing.ladders]\ndefault = ["fake"]\n'
    )
    store = SQLiteStore(tmp_path / "g.db")
    store.open()

    def bug(question: str) -> str:
        raise RuntimeError("a bug in the backend")

    gw = build_gateway(settings, store=store, backends={"fake": FakeBackend("fake", answers=bug)})

    async def main() -> list[LedgerRow]:
        ctx = gw.context(OPEN_TENANT, "/v1/completions")
        req = GenerationRequest(model=model, prompt="fails?", max_tokens=50, temperature=0)
        with pytest.raises(RuntimeError):
            if stream:
                async for _ in gw.stream(ctx, req):
                    pass
            else:
                await gw.complete(ctx, req)
        await gw.drain()
        assert not gw.ledger._open  # nothing left to renew
        return await store.recover_requests(FAR)

    try:
        (row,) = asyncio.run(main())
    finally:
        store.close()
    assert row.outcome == "interrupted" and row.model == "fake"


def test_an_interrupted_requests_tokens_are_charged_to_its_keys_budget(tmp_path: Path) -> None:
    """A trial's ``kill -9`` mid-stream: the interrupted row said 8 tokens, the key's budget
    was never charged them (its hold freed itself after the lease, charging nothing). The
    recovery charges the row's tokens to the key's daily budget."""
    settings = fake_settings(tmp_path, '[reuse]\nembedder = "hash"\n')
    store = SQLiteStore(tmp_path / "g.db")
    store.open()
    gw = build_gateway(
        settings, store=store, backends={"fake": FakeBackend("fake", token_delay_s=0.05)}
    )

    async def main() -> tuple[LedgerRow, int]:
        tenant = Tenant.of_key((await store.create_key("acme", daily_tokens=100_000)).key)
        ctx = gw.context(tenant, "/v1/completions")
        task = asyncio.create_task(gw.complete(ctx, _req("tell me a long story")))
        for _ in range(500):
            note = gw.ledger.opened(ctx.request_id)
            if note is not None and note.completion_tokens >= 3:
                await gw.ledger.renew()  # what the process kept before it "died"
                break
            await asyncio.sleep(0.01)
        alive = gw.ledger.clock
        gw.ledger.clock = FakeClock(start=FAR)  # the note's lease long run out
        try:
            (row,) = await gw.ledger.recover()
        finally:
            gw.ledger.clock = alive
        now = time.time()
        window = day_window(row.ts)
        charged = (await store.counter_state(tokens_counter(tenant.counted_as), window, now)).used
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await gw.drain()
        return row, charged

    try:
        row, charged = asyncio.run(main())
    finally:
        store.close()
    assert row.outcome == "interrupted" and row.completion_tokens >= 3
    assert charged == row.prompt_tokens + row.completion_tokens > 0


class _HeldEmbedder(HashEmbedder):
    """The hash embedder, holding each embedding until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.started, self.release = threading.Event(), threading.Event()

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.started.set()
        self.release.wait(10)
        return super().embed(texts)


def _held_gateway(tmp_path: Path) -> tuple[Gateway, SQLiteStore, _HeldEmbedder]:
    """A gateway whose embedder holds each embedding until its ``release`` is set."""
    embedder = _HeldEmbedder()
    settings = fake_settings(tmp_path, '[reuse]\nembedder = "hash"\n')
    store = SQLiteStore(tmp_path / "g.db")
    store.open()
    gw = build_gateway(settings, store=store, backends={"fake": FakeBackend("fake")},
                       embedder=embedder)  # fmt: skip
    return gw, store, embedder


def test_an_embeddings_request_is_noted_while_the_model_runs(tmp_path: Path) -> None:
    """An embeddings request (alone, or a batch's line) whose process died mid-run left no
    row; its note becomes the `interrupted` row, with its tokens and energy so far."""
    gw, store, embedder = _held_gateway(tmp_path)

    async def main() -> list[LedgerRow]:
        ctx = gw.context(OPEN_TENANT, "/v1/embeddings")
        task = asyncio.create_task(gw.embed(ctx, ["how do bees make honey"]))
        await asyncio.to_thread(embedder.started.wait, 10)
        assert gw.ledger.opened(ctx.request_id) is not None
        await gw.ledger.renew()  # what the process kept before it "died"
        rows = await store.recover_requests(FAR)  # the process "died" here
        embedder.release.set()
        await asyncio.gather(task, return_exceptions=True)
        await gw.drain()
        return rows

    try:
        (row,) = asyncio.run(main())
    finally:
        store.close()
    assert (row.outcome, row.status, row.endpoint) == ("interrupted", 500, "/v1/embeddings")
    assert row.model == "all-MiniLM-L6-v2" and row.prompt_tokens > 0
    assert row.wh > 0 and row.method == "estimate" and row.gco2 > 0


def test_an_answered_embeddings_request_leaves_no_note(tmp_path: Path) -> None:
    gw, store, noted = _gateway(tmp_path)

    async def main() -> list[LedgerRow]:
        ctx = gw.context(OPEN_TENANT, "/v1/embeddings")
        _, tokens, _ = await gw.embed(ctx, ["how do bees make honey", "why is the sky blue"])
        assert noted == [ctx.request_id] and tokens > 0
        await gw.drain()
        assert not gw.ledger._open
        assert await store.recover_requests(FAR) == []
        return await store.ledger()

    try:
        (row,) = asyncio.run(main())
    finally:
        store.close()
    assert row.outcome == "ok" and row.endpoint == "/v1/embeddings" and row.prompt_tokens > 0


def test_an_embeddings_request_its_client_left_is_ledgered_cancelled(tmp_path: Path) -> None:
    """A re-check: a client that left while its texts were embedded got an `ok` 200 row (chat
    ledgers `cancelled` 499). The model reads them all (a thread cannot be stopped): the
    row says cancelled, with the tokens it read, charged, and its energy."""
    gw, store, embedder = _held_gateway(tmp_path)
    acme = Tenant("acme", daily_tokens=10_000)

    async def main() -> tuple[list[LedgerRow], int]:
        ctx = gw.context(acme, "/v1/embeddings")
        task = asyncio.create_task(gw.embed(ctx, ["how do bees make honey"]))
        await asyncio.to_thread(embedder.started.wait, 10)
        task.cancel()  # the client left (server.common.until_disconnected)
        await asyncio.sleep(0.05)
        embedder.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        await gw.drain()
        assert not gw.ledger._open and await store.recover_requests(FAR) == []
        return await store.ledger(), await used_today(gw, "acme")

    try:
        (row,), used = asyncio.run(main())
    finally:
        store.close()
    assert (row.outcome, row.status, row.endpoint) == ("cancelled", 499, "/v1/embeddings")
    assert row.prompt_tokens > 0 and used == row.prompt_tokens
    assert row.wh > 0 and row.method == "estimate"


def test_a_request_waiting_for_an_identical_one_in_flight_is_noted(tmp_path: Path) -> None:
    """A trial's ``kill -9``: five requests waiting for an identical one in flight (to be
    served its answer, ``hit-coalesced``) left no row at all, while requests queued for the
    model left their ``interrupted`` rows. A waiter is noted while it waits (no tokens
    produced, no energy of its own); served, its own row closes the note."""

    def gateway(path: Path) -> tuple[Gateway, SQLiteStore]:
        path.mkdir()
        settings = fake_settings(path, '[reuse]\nembedder = "hash"\n')
        store = SQLiteStore(path / "g.db")
        store.open()
        backend = FakeBackend("fake", token_delay_s=0.05)
        return build_gateway(settings, store=store, backends={"fake": backend}), store

    async def waiting(gw: Gateway, kill: bool, store: SQLiteStore) -> tuple[list[LedgerRow], str]:
        async def noted() -> tuple[asyncio.Task[Any], str]:
            """An identical request, once it is noted."""
            ctx = gw.context(OPEN_TENANT, "/v1/completions")
            task = asyncio.create_task(gw.complete(ctx, _req("tell me a long story")))
            for _ in range(500):
                if gw.ledger.opened(ctx.request_id) is not None:
                    break
                await asyncio.sleep(0.01)
            return task, ctx.request_id

        leader, _ = await noted()
        waiter, waiter_id = await noted()
        assert gw.ledger.opened(waiter_id) is not None and not waiter.done()
        if kill:  # the process "dies" here: every note becomes its row
            rows = await store.recover_requests(FAR)
            for task in (leader, waiter):
                task.cancel()
            await asyncio.gather(leader, waiter, return_exceptions=True)
            await gw.drain()
            return rows, waiter_id
        await leader
        served = await waiter
        assert served.reuse is not None and served.reuse.status == "hit-coalesced"
        await gw.drain()
        assert not gw.ledger._open  # nothing left to renew
        return await store.recover_requests(FAR), waiter_id

    gw, store = gateway(tmp_path / "killed")
    try:
        rows, waiter_id = asyncio.run(waiting(gw, True, store))
    finally:
        store.close()
    assert len(rows) == 2  # the leader's and the waiter's
    assert {(r.outcome, r.status) for r in rows} == {("interrupted", 500)}
    (waiter_row,) = [r for r in rows if r.id == waiter_id]
    assert waiter_row.prompt_tokens > 0 and waiter_row.model == "fake"
    assert waiter_row.completion_tokens == 0 and waiter_row.wh == 0

    gw, store = gateway(tmp_path / "served")
    try:
        assert asyncio.run(waiting(gw, False, store))[0] == []  # no note outlives its request
        reuse = sorted(str(r.reuse) for r in asyncio.run(store.ledger()))
    finally:
        store.close()
    assert reuse == ["hit-coalesced", "miss"]
