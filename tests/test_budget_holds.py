"""A request's budget holds over its whole life through the gateway: renewed while it runs,
of what it can really be charged, given back when it is refused.

The real gateway in process, a fake model whose tokens move a ``FakeClock``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from boundgate.assembly import build_app
from boundgate.backends.base import Chunk, GenerationRequest
from boundgate.backends.fake import FakeBackend
from boundgate.clock import FakeClock
from boundgate.errors import ErrorCode, RateLimitError
from boundgate.gateway import Gateway
from boundgate.tenants import Tenant
from helpers import arun, fake_settings, used_today

TOKEN_S = 30.0  # simulated seconds a generated token takes


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    clock = FakeClock()
    settings = fake_settings(tmp_path, '[reuse]\nembedder = "hash"\n')
    slow = FakeBackend("fake", token_delay_s=TOKEN_S, clock=clock, answers=lambda q: "w " * 99)
    app = build_app(settings, backends={"fake": slow}, clock=clock)
    gateway: Gateway = app.state.gateway
    gateway.store.open()
    yield gateway
    gateway.store.close()


def ask(question: str, max_tokens: int = 40) -> GenerationRequest:
    return GenerationRequest(model="fake", prompt=question, max_tokens=max_tokens, temperature=0)


def test_a_long_streams_hold_outlives_the_lease(gw: Gateway) -> None:
    """An audit's finding: a stream of 40 simulated minutes outlived its hold's lease (900 s),
    so a second request's claim freed the hold and both ran, over the budget.
    The running stream's hold is renewed (what ``keep_held`` does every third of the lease),
    and the second request is refused while the first runs."""
    acme = Tenant("acme", daily_tokens=100)  # one request of up to 81 at a time
    lease = gw.limiter.limits.reservation_lease_s
    clock = gw.clock
    assert isinstance(clock, FakeClock)

    async def main() -> int:
        events = gw.stream(gw.context(acme, "/v1/completions"), ask("1", 80))
        start, renewed = clock.time(), clock.time()
        async for event in events:
            if clock.time() - renewed >= lease / 3:
                await gw.limiter.renew()
                renewed = clock.time()
            if isinstance(event, Chunk) and clock.time() - start > 1.2 * lease:
                break  # 18 minutes in, still streaming
        with pytest.raises(RateLimitError) as exc:
            await gw.complete(gw.context(acme, "/v1/completions"), ask("2", 80))
        assert exc.value.code == ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED
        async for _ in events:
            pass
        return await used_today(gw, "acme")

    assert arun(main()) == 81  # the first request's prompt and 80 tokens: nothing else


@pytest.mark.parametrize(("renewed_after", "left"), [(False, False), (True, False), (True, True)])
def test_a_request_a_peer_recovered_as_interrupted_is_charged_once(
    gw: Gateway, renewed_after: bool, left: bool
) -> None:
    """A replicas trial: a request whose note's lease lapsed while it ran (its process could
    not reach the store, or stalled) was recovered by a live peer as ``interrupted``, its
    tokens so far charged; its own row then replaced that row and its settle charged the
    whole usage again (683 tokens counted against 552 in the ledger). Here the process's
    own recovery step plays the peer, while the request still streams. ``renewed_after``:
    the stalled process renews its notes once it runs again, before the request ends (a
    re-check's SIGSTOP: the renewal found no note, yet counted the lease as kept, and the
    charge stood twice). ``left``: then its client leaves (its note is closed before its
    `cancelled` row is recorded: the same re-check's, on a stream)."""
    acme = Tenant("acme", daily_tokens=1000)
    clock = gw.clock
    assert isinstance(clock, FakeClock)
    lease = gw.ledger.lease_s

    async def main() -> tuple[str, list[tuple[str, int]]]:
        ctx = gw.context(acme, "/v1/completions")
        events = gw.stream(ctx, ask("one two three four five six", 20))
        start, recovered = clock.time(), []
        async for _event in events:
            if recovered and renewed_after:
                await gw.ledger.renew()  # its heartbeat, running again
                if left:
                    await events.aclose()
                    break
            if not recovered and clock.time() - start > 2 * TOKEN_S:
                await gw.ledger.renew()  # its note carries its tokens so far
                clock.advance(lease + 1)  # and is renewed no more
                recovered = [
                    (row.outcome, row.prompt_tokens + row.completion_tokens)
                    for row in await gw.ledger.recover()
                ]
        await gw.drain()  # a cancelled row is recorded in the background
        return ctx.request_id, recovered

    request_id, recovered = arun(main())
    # the peer's view: the note's lease ran out; it charged the tokens the note carried
    assert [outcome for outcome, _ in recovered] == ["interrupted"] and recovered[0][1] > 0
    row = arun(gw.store.get_row(request_id))
    assert row is not None and row.outcome == ("cancelled" if left else "ok"), row  # replaced
    assert arun(used_today(gw, "acme")) == row.prompt_tokens + row.completion_tokens
