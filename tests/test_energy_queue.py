"""A local model runs one generation at a time; a request's wait for it is not its energy.

``FakeBackend(serialize=True)`` queues generations behind a lock as ``LlamaCppBackend``
does, and advances a ``FakeClock`` by ``token_delay_s`` a token, so each generation takes
exactly its tokens' seconds. ``FakeMeter(per_work=...)`` bills 1 mWh per metered second: a
request billed for its wait would show the generation it waited for on its own row.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from boundgate.assembly import build_app
from boundgate.backends.base import GenerationRequest, Message
from boundgate.backends.fake import FakeBackend
from boundgate.clock import FakeClock
from boundgate.energy import FakeMeter, Work
from boundgate.tenants import Tenant
from helpers import arun, complete_together, fake_settings

TOKENS = 4  # each answer is cut at 4 tokens: a 4-second generation


def setup(tmp_path: Path) -> tuple[Any, FakeBackend, list[Work]]:
    clock = FakeClock()
    backend = FakeBackend("fake", params_b=1, token_delay_s=1.0, serialize=True, clock=clock)
    works: list[Work] = []

    def wh(work: Work) -> float:
        works.append(work)
        return work.wall_s * 0.001

    app = build_app(
        fake_settings(tmp_path),
        backends={"fake": backend},
        meter_for=lambda b: FakeMeter(per_work=wh),
        reuse_meter=FakeMeter(wh=0.0),
        clock=clock,
    )
    gw = app.state.gateway
    gw.store.open()
    return gw, backend, works


def request(question: str) -> GenerationRequest:
    return GenerationRequest(
        model="fake", messages=[Message("user", question)], max_tokens=TOKENS, temperature=1
    )


def test_a_queued_request_is_not_billed_for_the_generation_it_waited_for(
    tmp_path: Path,
) -> None:
    gw, backend, works = setup(tmp_path)

    try:
        first, second = arun(
            complete_together(gw, request("First question?"), request("Second question?"))
        )
    finally:
        gw.store.close()
    assert backend.calls == 2
    # each was metered over its own 4-second generation, not the second over 8 seconds
    assert [w.wall_s for w in works] == [TOKENS, TOKENS]
    assert first.energy.wh == second.energy.wh == TOKENS * 0.001


def test_streamed_requests_queued_are_metered_from_their_own_start(tmp_path: Path) -> None:
    gw, _, works = setup(tmp_path)

    async def main() -> None:
        async def one(q: str) -> None:
            ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
            async for _ in gw.stream(ctx, request(q)):
                pass

        await asyncio.gather(one("First question?"), one("Second question?"))
        await gw.drain()

    try:
        arun(main())
    finally:
        gw.store.close()
    assert [w.wall_s for w in works] == [TOKENS, TOKENS]


def test_a_stream_cancelled_while_queued_is_billed_no_generation(tmp_path: Path) -> None:
    gw, backend, works = setup(tmp_path)

    async def main() -> list[Any]:
        async def one(q: str) -> None:
            ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
            async for _ in gw.stream(ctx, request(q)):
                pass

        ctx = gw.context(Tenant("acme"), "/v1/chat/completions")
        first = gw.stream(ctx, request("First question?"))
        await first.__anext__()  # the first has the model (and holds it while paused)
        queued = asyncio.create_task(one("Second question?"))
        for _ in range(10_000):  # the second waits for the model
            if backend.queue_depth():
                break
            await asyncio.sleep(0.001)
        assert backend.queue_depth() == 1
        assert backend.clock is not None
        backend.clock.advance(3.0)  # the first generates for 3 s more while the second waits
        queued.cancel()
        await asyncio.gather(queued, return_exceptions=True)
        async for _ in first:
            pass
        await gw.drain()
        return list(await gw.store.ledger())

    try:
        rows = arun(main())
    finally:
        gw.store.close()
    cancelled = [r for r in rows if r.outcome == "cancelled"]
    ok = [r for r in rows if r.outcome != "cancelled"]
    assert len(cancelled) == 1 and len(ok) == 1
    assert cancelled[0].wh == 0.0
    assert ok[0].wh == (TOKENS + 3) * 0.001
    assert sorted(w.wall_s for w in works) == [0.0, TOKENS + 3]
