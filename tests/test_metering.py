"""What a named model's request is metered and ledgered with, whatever its end: a generation
that fails after some tokens, a refusal after the reuse lookup, a client that leaves during a
hit's replay; and what the metrics count of it.

The real gateway in process, fake models (``FakeBackend``), a ``FakeClock``, ``FakeMeter``s of
fixed energy: 1 mWh a generation, 0.1 mWh a reuse lookup.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from boundgate.assembly import build_app
from boundgate.backends.base import Chunk, GenerationRequest, Message
from boundgate.backends.fake import FakeBackend
from boundgate.clock import FakeClock
from boundgate.energy import FakeMeter
from boundgate.errors import ErrorCode, RateLimitError, ServiceUnavailableError
from boundgate.gateway import Gateway
from boundgate.settings import load_settings
from boundgate.store import LedgerRow
from boundgate.tenants import DAY_S, Tenant, tokens_counter
from helpers import arun, write_config

GEN_WH, LOOKUP_WH = 0.001, 0.0001
Q = "What is the boiling point of water?"

CONFIG = """
[server]
data_dir = "{data}"
grid_zone = "DE-LU"

[limits]
default_max_tokens = 16

[reuse]
embedder = "hash"
scorer = "cosine"

[models.small]
backend = "fake"
default = true
params_b = 0.135
"""


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    clock = FakeClock()
    cfg = write_config(tmp_path / "boundgate.toml", CONFIG.format(data=tmp_path / "data"))
    app = build_app(
        load_settings(cfg),
        backends={"small": FakeBackend("small", params_b=0.135, clock=clock)},
        meter_for=lambda b: FakeMeter(wh=GEN_WH),
        reuse_meter=FakeMeter(wh=LOOKUP_WH),
        clock=clock,
    )
    gateway: Gateway = app.state.gateway
    gateway.store.open()
    yield gateway
    gateway.store.close()


def ask(question: str = Q, max_tokens: int = 0) -> GenerationRequest:
    return GenerationRequest(
        model="small", messages=[Message("user", question)], max_tokens=max_tokens, temperature=0
    )


def small(gw: Gateway) -> FakeBackend:
    b = gw.backends["small"]
    assert isinstance(b, FakeBackend)
    return b


async def row_of(gw: Gateway, request_id: str) -> LedgerRow:
    await gw.drain()
    rows = {r.id: r for r in await gw.store.ledger()}
    return rows[request_id]


async def used_today(gw: Gateway, tenant: str) -> int:
    await gw.drain()
    now = gw.clock.time()
    state = await gw.store.counter_state(tokens_counter(tenant), (now // DAY_S) * DAY_S, now)
    assert state.held == 0  # every hold was settled
    return state.used


# --- a generation that fails ------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_generation_that_fails_midway_is_ledgered_with_what_it_ran(
    gw: Gateway, stream: bool
) -> None:
    """The model fails after 5 tokens (a stream has sent them): the 503's row carries its
    prompt, those 5 tokens, the generation's energy metered up to the failure and the lookup's,
    and what the lookup decided; the daily budget is charged the same tokens."""
    small(gw).failures.append(5)
    acme = Tenant("acme", daily_tokens=10_000)

    async def main() -> tuple[LedgerRow, int, int]:
        ctx = gw.context(acme, "/v1/chat/completions")
        chunks = 0
        with pytest.raises(ServiceUnavailableError):
            if stream:
                async for event in gw.stream(ctx, ask()):
                    chunks += isinstance(event, Chunk)
            else:
                await gw.complete(ctx, ask())
        return await row_of(gw, ctx.request_id), await used_today(gw, "acme"), chunks

    row, used, chunks = arun(main())
    assert (row.outcome, row.status, row.stream) == ("error", 503, stream)
    assert chunks == (5 if stream else 0)
    assert row.completion_tokens == 5 and row.prompt_tokens > 0
    assert row.wh == pytest.approx(GEN_WH + LOOKUP_WH)
    assert row.gco2 > 0 and row.method == "estimate"
    assert row.reuse == "miss" and row.avoided_wh == 0.0
    assert used == row.prompt_tokens + row.completion_tokens


def test_a_budget_refusal_after_the_lookup_carries_the_lookups_energy(gw: Gateway) -> None:
    """The daily budget is spent and no stored answer fits: the 429 comes after the reuse
    lookup ran, so its row carries the lookup's energy and decision (as model "auto"'s did)."""
    poor = Tenant("poor", daily_tokens=3)

    async def main() -> LedgerRow:
        ctx = gw.context(poor, "/v1/chat/completions")
        with pytest.raises(RateLimitError) as refused:
            await gw.complete(ctx, ask())
        assert refused.value.code == ErrorCode.DAILY_TOKEN_BUDGET_EXCEEDED
        return await row_of(gw, ctx.request_id)

    row = arun(main())
    assert (row.outcome, row.status) == ("error", 429)
    assert row.wh == pytest.approx(LOOKUP_WH) and row.gco2 > 0
    assert row.reuse == "miss"
    assert (row.prompt_tokens, row.completion_tokens) == (0, 0)
    assert small(gw).calls == 0
