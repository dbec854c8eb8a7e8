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
